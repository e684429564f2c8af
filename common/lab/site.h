/* site — the lab site model: DIR/site.json loaded into jansson, locked, validated, saved.
 *
 * site.json (version 1):
 * {
 *   "version": 1, "seed": S, "block_size": 65536, "next_snapshot": N,
 *   "require_encryption": false          (true: the whole site forbids plain NBD),
 *   "network": { "ipv4": "127.0.0.1", "ipv6": "::1", "nbd_port": P, "tls_port": P,
 *                "luks_port": P, "psk_user": "vbak" },
 *   "hosts":      [ { "name": "esx-01", "require_encryption": false,
 *                     "ipv4": "10.213.0.21" (optional: the host's own address) } ],
 *   "datastores": [ { "name", "type": "VMFS"|"NFS"|"vsan"|"VVOL", "lun": "naa..." or null,
 *                     "hosts": ["esx-01", ...] } ],
 *   "vms":  [ { "name", "id", "host", "linked_clone": bool, "snapshots": [SNAP], "disks": [DISK],
 *               "access_blocked_by": "who" (optional: PrepareForAccess holder) } ],
 *   "fcds": [ DISK + { "id", "snapshots": [SNAP] } ],          (an FCD is its own single disk)
 *   "proxies": [ { "name", "role": "san"|"hotadd"|"vsan"|"nbd", "host", "datastore",
 *                  "luns": [...] } ]
 * }
 * DISK = { "key", "name", "datastore", "path" ("[ds] folder/file.vmdk"), "capacity" (bytes),
 *          "encrypted", "parent" (linked clone: the parent disk's path, else null),
 *          "export" (image file name and NBD export name), "change_epoch", "change_gen",
 *          derived on every load and save: "change_id", "file_uri", "nbd_uri", "nbds_uri",
 *          "nbd_uri6", "nbds_uri6" (null when not served) }
 * SNAP = { "id": "snapshot-N", "name", "change_ids": { DISK-KEY: CHANGE-ID } }
 *
 * Change IDs look like vSphere's: "EPOCH/GEN", EPOCH = 16 hex bytes "52 3a ... 65". */
#ifndef VB_LAB_SITE_H
#define VB_LAB_SITE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define VB_LAB_BLOCK_SIZE 65536u

typedef struct vb_lab_site vb_lab_site_t;

/* Opens DIR's site: takes the site lock (exclusive when `write`), loads and validates site.json.
 * VB_ENOTFOUND when DIR has no site.json, VB_EINVAL (message names the field) when it is bad.
 * The lock is held until vb_lab_site_destroy. */
int vb_lab_site_open(const char *dir, bool write, vb_lab_site_t **out) VB_WUR;

/* Wraps a fresh document (site creation); takes the lock exclusively. Steals `root`. */
int vb_lab_site_wrap(const char *dir, json_t *root, vb_lab_site_t **out) VB_WUR;

/* Writes site.json atomically (temp file, fsync, rename) after refreshing derived fields. */
int vb_lab_site_save(vb_lab_site_t *site) VB_WUR;

void vb_lab_site_destroy(vb_lab_site_t **site_p);

/* Borrowed views. */
/* An operation that fails after a change that must stay (disk blocks written and logged for
 * change tracking) marks the site, and the caller saves it despite the failure. */
void vb_lab_site_keep_on_error(vb_lab_site_t *site);
bool vb_lab_site_must_keep(const vb_lab_site_t *site);
json_t *vb_lab_site_root(vb_lab_site_t *site);
const char *vb_lab_site_dir(const vb_lab_site_t *site); /* absolute */

/* A VM or FCD by name; *is_fcd tells which. NULL when none (no message set). */
json_t *vb_lab_site_find_object(vb_lab_site_t *site, const char *name, bool *is_fcd);
/* The disks of an object: a VM's disks[], or the FCD itself. */
size_t vb_lab_object_disk_count(json_t *obj, bool is_fcd);
json_t *vb_lab_object_disk(json_t *obj, bool is_fcd, size_t i);
json_t *vb_lab_object_find_disk(json_t *obj, bool is_fcd, const char *key);
/* A snapshot of an object by id or name; NULL when none. */
json_t *vb_lab_object_find_snapshot(json_t *obj, const char *id_or_name);
json_t *vb_lab_site_find_datastore(vb_lab_site_t *site, const char *name);
/* Does `host` mount datastore `ds`? */
bool vb_lab_datastore_mounted_on(json_t *ds, const char *host);
/* The IPv4 address that serves the disks of `host`: its own (hosts[].ipv4), else the site's
 * network.ipv4. Borrowed. */
const char *vb_lab_host_ipv4(vb_lab_site_t *site, const char *host);
/* The host an object runs on (an FCD: the first host mounting its datastore). */
const char *vb_lab_object_host(vb_lab_site_t *site, json_t *obj, bool is_fcd);

/* Absolute path of a disk's live image (plaintext for encrypted disks); with snapshot_id, the
 * frozen image. Caller frees. NULL on allocation failure. */
char *vb_lab_disk_image(const vb_lab_site_t *site, json_t *disk, const char *snapshot_id);
/* Absolute path of an encrypted disk's LUKS image (live or at snapshot). Caller frees. */
char *vb_lab_disk_luks_image(const vb_lab_site_t *site, json_t *disk, const char *snapshot_id);
/* The disk's change log path. Caller frees. */
char *vb_lab_disk_cbt_log(const vb_lab_site_t *site, json_t *disk);

/* "EPOCH/GEN" for the disk now. Caller frees. */
char *vb_lab_disk_change_id(json_t *disk);

/* String field or NULL. */
const char *vb_lab_json_str(json_t *obj, const char *key);


#endif
