/* packquar — quarantine in a format 2 repository: a chunk copy verify found bad is set aside by
 * a record, since the pack that holds it is immutable.
 *
 * A record is the store object quarantine/<64 hex digits of the digest>-<32 of the pack id>
 * holding the bad image as it was read from the pack (for inspection; it may be short or empty
 * when the pack was cut off). Its name says which copy is bad, so that:
 *   - loading the chunk index leaves that copy out (vb_packquar_exclude): the chunk is missing
 *     to restore and verify ("in quarantine"), and the next backup that reads its content
 *     stores it again, in a new pack, which the index then finds; other copies stay;
 *   - garbage collection never counts that copy as live (it is neither kept for it nor copied
 *     into a new pack), so the pack goes once its other chunks are dead or repacked;
 *   - a record goes (vb_packquar_expire) only once it is old enough and its pack is gone: while
 *     the pack exists the record keeps the bad copy out of the index.
 * Records are written put-if-absent: quarantining the same copy twice keeps the first. */
#ifndef VB_PACKQUAR_H
#define VB_PACKQUAR_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "repo/chunkidx.h"
#include "repo/pack.h"
#include "repo/repo.h"
#include "repo/store.h"

#define VB_PACKQUAR_NAME_LEN                                                                       \
    (sizeof VB_REPO_QUARANTINE_DIR + VB_DIGEST_HEX_LEN + 1 + 2 * VB_PACK_ID_LEN + 1)

/* Called once per record. Return as for vb_store_list_fn. */
typedef int (*vb_packquar_fn)(void *arg, const vb_digest_t *digest, const vb_pack_id_t *pack,
                              const char *name, const vb_store_stat_t *st);

/* The record name of the copy of `digest` in `pack`. */
void vb_packquar_name(const vb_digest_t *digest, const vb_pack_id_t *pack,
                      char out[VB_PACKQUAR_NAME_LEN]);

/* Calls fn for every record (objects under quarantine/ that are not records are skipped). */
int vb_packquar_list(vb_store_t *store, vb_packquar_fn fn, void *arg) VB_WUR;

/* Quarantines the copy of `digest` at `loc`: reads its image from the pack (as much as is
 * there) and writes the record. 0 also when it was quarantined already. VB_ENOSPC, VB_EIO. */
int vb_packquar_put(vb_store_t *store, const vb_digest_t *digest,
                    const vb_chunkidx_loc_t *loc) VB_WUR;

/* Leaves every quarantined copy out of ci (vb_chunkidx_exclude). */
int vb_packquar_exclude(vb_store_t *store, vb_chunkidx_t *ci) VB_WUR;

/* True when some copy of `digest` is quarantined. */
bool vb_packquar_has(vb_store_t *store, const vb_digest_t *digest);

/* Removes records written before `before` whose pack is gone; *removed counts them (or those
 * that would be, with dry_run). */
int vb_packquar_expire(vb_store_t *store, time_t before, bool dry_run, uint64_t *removed) VB_WUR;

#endif
