/* manifest — a restore point described in the repository, so the repository alone says which VM,
 * time, kind, parent and change IDs each disk index belongs to (`vbak catalog rebuild`).
 *
 * One store object per committed restore point, `manifests/rp<ID>.json`, JSON (jansson):
 *   {"format": "vbak-manifest", "version": 1, "restore_point": ID, "vm": NAME, "vm_id": ID|null,
 *    "is_fcd": BOOL, "provider": NAME|null, "job": ID|null, "created": MS, "completed": MS,
 *    "kind": "full"|"incremental", "parent": ID|null, "chunk_size": N,
 *    "disks": [{"key", "name", "datastore", "capacity", "change_id"|null, "index",
 *               "logical_bytes", "new_bytes", "chunk_count", "transports": [..]}]}
 * Times are Unix milliseconds. Written durable after the disk indexes and before the catalog
 * commit; removed when prune deletes the restore point. A reader refuses a newer version. */
#ifndef VB_MANIFEST_H
#define VB_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "repo/store.h"

#define VB_MANIFEST_VERSION 1
#define VB_MANIFEST_PREFIX "manifests/"

typedef struct {
    vb_restore_point_t rp; /* id, vm, is_fcd, job_id, created, completed, kind, parent_id, disks */
    char *vm_id;           /* provider's id of the VM or FCD; NULL when unknown */
    char *provider;        /* "lab", "vsphere"; NULL when unknown */
    uint32_t chunk_size;
} vb_manifest_t;

/* Frees what the manifest owns and zeroes it. */
void vb_manifest_clear(vb_manifest_t *m);
void vb_manifests_free(vb_manifest_t **ms_p, size_t count);

/* The object name of restore point rp_id's manifest into buf. VB_EINVAL when it does not fit. */
int vb_manifest_name(int64_t rp_id, char *buf, size_t size) VB_WUR;

/* The manifest as a new JSON object (caller owns); NULL on out of memory. */
json_t *vb_manifest_to_json(const vb_manifest_t *m);
/* Parses a manifest; caller clears *out. VB_ECORRUPT naming `what` and the field, VB_EUNSUPPORTED
 * for a newer version. */
int vb_manifest_from_json(const json_t *j, const char *what, vb_manifest_t *out) VB_WUR;

/* Writes the manifest of m->rp.id durably (replacing one a crashed commit left). VB_EIO,
 * VB_ENOSPC. */
int vb_manifest_write(vb_store_t *store, const vb_manifest_t *m) VB_WUR;
/* Reads restore point rp_id's manifest. Caller clears *out. VB_ENOTFOUND, VB_ECORRUPT. */
int vb_manifest_read(vb_store_t *store, int64_t rp_id, vb_manifest_t *out) VB_WUR;
/* Removes restore point rp_id's manifest. VB_ENOTFOUND. */
int vb_manifest_remove(vb_store_t *store, int64_t rp_id) VB_WUR;

/* Every manifest in the store, by restore point id. A manifest that cannot be read is an error
 * naming it (VB_ECORRUPT), not skipped. Caller frees with vb_manifests_free. */
int vb_manifest_list(vb_store_t *store, vb_manifest_t **out, size_t *count) VB_WUR;

#endif
