/* ops — operations on an opened lab site (internal to common/lab/).
 *
 * The public functions in lab.h open the site, call one of these and save. Site creation calls
 * them on the site it is building. All return 0 or a negative VB_E* code with a message set. */
#ifndef VB_LAB_OPS_H
#define VB_LAB_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "lab/lab.h"
#include "lab/site.h"

int vb_lab_op_mutate(vb_lab_site_t *site, json_t *obj, bool is_fcd, int percent, uint64_t seed,
                     vb_lab_changes_t *out) VB_WUR;
int vb_lab_op_snapshot_create(vb_lab_site_t *site, json_t *obj, bool is_fcd, const char *name,
                              char **id_out) VB_WUR;
/* Re-encrypts an encrypted disk's plaintext image into its existing LUKS image. */
int vb_lab_op_sync_luks(vb_lab_site_t *site, json_t *disk) VB_WUR;
/* Creates the LUKS image of an encrypted disk from its plaintext image. */
int vb_lab_op_create_luks(vb_lab_site_t *site, json_t *disk) VB_WUR;
/* A new change-ID epoch derived from `h`: "52 3a ... 0d-8e 54 ... 65". Caller frees. */
char *vb_lab_op_epoch(uint64_t h);

/* Removes what an interrupted lab operation left in the site's disk folders: first carries out
 * or drops the journals of snapshot operations (vb_lab_row_replay), then removes temporary files
 * (".tmp.", ".decrypt") and images of a live disk at a snapshot its object does not have (a
 * snapshot create killed mid-copy or before the site was saved). The caller holds the site's
 * write lock, so no operation that writes such files is running. */
int vb_lab_sweep_interrupted(vb_lab_site_t *site) VB_WUR;

/* Redirect-on-write snapshots of a plain disk (row.c). create and remove prepare the operation:
 * they write its temporary files and journal, and change nothing a reader sees. The caller then
 * saves site.json with the snapshot added (create) or dropped (remove) and runs
 * vb_lab_sweep_interrupted, which carries the journal out; a caller that fails before the save
 * runs the sweep too, which drops it. */
int vb_lab_row_snapshot_create(vb_lab_site_t *site, json_t *disk, const char *id) VB_WUR;
int vb_lab_row_snapshot_remove(vb_lab_site_t *site, json_t *obj, json_t *disk,
                               const char *id) VB_WUR;
/* Carries out or drops every journal of DIR/disks (see row.c). */
int vb_lab_row_replay(vb_lab_site_t *site) VB_WUR;

/* The allocated extents of a disk's content (live, or at snapshot_id) in [start, limit): the
 * union of its chain's files' allocations. Appends to *out. */
int vb_lab_disk_extents(vb_lab_site_t *site, json_t *disk, const char *snapshot_id,
                        uint64_t start, uint64_t limit, vb_extent_list_t *out) VB_WUR;

/* A new disk's site.json entry, as the generator registers disks: path "[ds] folder/stem.vmdk",
 * export "folder--stem", a change-ID epoch from the seed and the export, generation 1, no
 * parent. NULL on allocation failure. Caller owns the reference. */
json_t *vb_lab_op_disk_new(uint64_t seed, const char *key, const char *name, const char *ds,
                           const char *folder, const char *stem, uint64_t cap, bool enc);

/* Appends the extents `ext` as written at generation `gen` to the disk's change log. */
/* After blocks were written into `disk` (rc: how the writing went): logs them for change
 * tracking as generation `gen` and advances the disk to it — also when rc says the writing
 * failed half-way, so no written block escapes the next incremental (the site is then marked to
 * be saved anyway). Returns rc, or the logging's failure. */
int vb_lab_op_commit_writes(vb_lab_site_t *site, json_t *disk, long long gen,
                            const vb_extent_list_t *written, int rc) VB_WUR;
/* The test knob VBAK_TEST_LAB_WRITES_BEFORE_FAULT: an errno for a write that is to fail, 0. */
int vb_lab_test_write_fault(void);
/* Writes the raw image `img` (created or replaced, `cap` bytes, sparse) with one partition at
 * VB_LAB_GUEST_FS_OFFSET: `fs` "ext4" (MBR, the lab's guest tree, deterministic from `seed`) or
 * "ntfs" (GPT, a few files in the root; its serial number and times are not deterministic).
 * Helper programs log to DIR/log/guest.log. */
int vb_lab_guest_image(const char *site_dir, const char *img, const char *fs, uint64_t cap,
                       uint64_t seed) VB_WUR;
/* vb_lab_guest_write on an opened site (the caller saves it). */
int vb_lab_op_guest_write(vb_lab_site_t *site, json_t *obj, bool fcd, const char *path,
                          const void *data, size_t len, vb_lab_changes_t *out) VB_WUR;
#endif
