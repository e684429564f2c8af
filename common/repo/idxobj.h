/* idxobj — format 2's chunk index objects: immutable store objects that say which pack holds
 * each chunk, written after their packs are durable (packs, then index, then restore point).
 *
 * An index object is index/<32 hex digits of a random id>:
 *   magic "VBCIDX1\0" | u32 format version | u32 pack count
 *   per pack: pack id (16) | u32 entry count | entries × (digest 32 | offset u64 | length u32 |
 *             raw length u32)
 *   SHA-256 of everything before it (32)
 * All integers little-endian. Objects are never changed; a repair writes new ones from the
 * packs' trailers and then removes the old ones.
 *
 * A builder collects what pack writers report (vb_idxobj_sealed is a vb_pack_sealed_fn) and
 * writes it as one object. Loading adds every index object's packs to a vb_chunkidx_t. */
#ifndef VB_IDXOBJ_H
#define VB_IDXOBJ_H

#include <stddef.h>
#include <stdint.h>

#include "repo/chunkidx.h"
#include "repo/pack.h"
#include "repo/store.h"

#define VB_IDXOBJ_FORMAT_VERSION 1
#define VB_IDXOBJ_NAME_LEN (sizeof "index/" + 2 * VB_PACK_ID_LEN)
#define VB_IDXOBJ_MAX (512u * 1024u * 1024u) /* 11 M chunks: beyond any one task */

typedef struct vb_idxobj vb_idxobj_t;

vb_idxobj_t *vb_idxobj_new(void);
void vb_idxobj_destroy(vb_idxobj_t **self_p);

/* Adds one pack's chunk list (copied). */
int vb_idxobj_add_pack(vb_idxobj_t *self, const vb_pack_id_t *id, const vb_pack_entry_t *entries,
                       size_t count) VB_WUR;
/* vb_pack_sealed_fn adapter: arg is a vb_idxobj_t. */
int vb_idxobj_sealed(void *arg, const vb_pack_id_t *id, const vb_pack_entry_t *entries,
                     size_t count);

/* Packs collected since the last write. */
size_t vb_idxobj_packs(const vb_idxobj_t *self);

/* Makes the store's packs durable (barrier), then writes what was collected as a new durable
 * index object and forgets it. Nothing collected: writes nothing, *name_out "". name_out may be
 * NULL. VB_ENOSPC, VB_EIO. */
int vb_idxobj_write(vb_idxobj_t *self, vb_store_t *store,
                    char name_out[VB_IDXOBJ_NAME_LEN]) VB_WUR;

/* Adds the packs of every index object in the store to ci. *objects counts the objects read.
 * A damaged object fails the load with VB_ECORRUPT naming it. When no index object is visible
 * but some are hidden by delete markers (store.h list_hidden: someone deleted the repository's
 * objects on an S3 bucket with Object Lock), the hidden ones are read instead, keeping only the
 * packs that are there, visible or hidden (so no entry names a pack a collection deleted), and
 * *hidden (may be NULL) is set: fine to read through, not to write on (nothing renews the
 * locks of hidden packs). */
int vb_idxobj_load(vb_store_t *store, vb_chunkidx_t *ci, size_t *objects, bool *hidden) VB_WUR;

/* Adds the packs of the one index object `name` to ci (vb_chunkidx_seal not called).
 * VB_ENOTFOUND; VB_ECORRUPT (bad magic, checksum or layout) naming it; VB_EUNSUPPORTED. */
int vb_idxobj_load_one(vb_store_t *store, const char *name, vb_chunkidx_t *ci) VB_WUR;

/* *count: packs in the store (visible ones) that no visible index object names; the chunk
 * index does not find their chunks until vb_idxobj_repair. A pack written (or freshened) since
 * young_since that no index object names, hidden ones included, is a running backup's not yet
 * committed (or a crashed writer's, which nothing references): counted in *young instead. */
int vb_idxobj_unindexed_packs(vb_store_t *store, time_t young_since, uint64_t *count,
                              uint64_t *young) VB_WUR;

typedef struct vb_idxobj_repair_s {
    uint64_t packs;      /* packs whose trailers were read */
    uint64_t chunks;     /* chunk entries they list */
    uint64_t bad_packs;  /* packs whose trailer could not be read: their chunks are lost */
    uint64_t removed;    /* old index objects removed */
} vb_idxobj_repair_t;

/* Rebuilds the chunk index from the packs alone: reads every pack's trailer, writes new index
 * objects, then removes every index object that was there before. A pack with a bad trailer is
 * logged by name and counted; it is not in the new index. */
int vb_idxobj_repair(vb_store_t *store, vb_idxobj_repair_t *out) VB_WUR;

#endif
