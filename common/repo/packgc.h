/* packgc — the sweep of garbage collection in a format 2 repository: packs and index objects.
 *
 * gc.c marks the live chunks (from the live disk indexes) and hands a claim function here. Then:
 *   1. the index objects there now are noted (objects written later, by running jobs, stay);
 *   2. every pack's trailer is read (a damaged pack stops the collection: nothing is removed);
 *   3. a pack written or freshened at or after `cutoff` (the start of the oldest running job) is
 *      kept whole; an older one is deleted when none of its chunks is live, repacked when its
 *      live bytes are below repack_below_pct % of its size, kept otherwise. A pack to delete or
 *      repack that is still under Object Lock (store.h: stat's retain_until) is kept whole and
 *      counted in packs_locked; a later collection, after its lock ended, deletes it. A live
 *      chunk stored twice (two writers racing) is kept once: the first pack that claims it
 *      keeps it. Under Object Lock, a pack kept for its live chunks whose lock ends within half
 *      the lock period gets its lock extended (one request each, at most VB_PACKGC_EXTEND_MAX
 *      per collection, Kopia/Veeam style: locks are renewed in batches at collection time, not
 *      at every backup), so a restore point's packs stay locked while it lives, as long as a
 *      collection (prune) runs at least once per half period;
 *   4. the live chunks of repacked packs are copied into new packs (one read per old pack);
 *   5. one compacted index object lists every kept pack and every new pack; it is written only
 *      after the new packs are durable, and only then are the noted index objects removed and
 *      then the deleted and repacked packs (durable order: new packs, new index, removal);
 *   6. a pack is removed only unless it was freshened since the cutoff (atomic in the store): a
 *      running backup that re-uses a chunk freshens the chunk's pack (packed.h), so a pack it
 *      touched after step 3 survives, and a last index object lists such survivors.
 * A dry run does steps 1-3 and reports what 4-6 would do. */
#ifndef VB_PACKGC_H
#define VB_PACKGC_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "repo/store.h"

#define VB_PACKGC_REPACK_DEFAULT 50 /* % live bytes below which an old pack is repacked */
#define VB_PACKGC_EXTEND_MAX 4096   /* = VB_LOCKRENEW_MAX (lockrenew.h) */

typedef struct {
    uint64_t packs;           /* packs looked at */
    uint64_t packs_deleted;   /* no live chunk: removed (or would be) */
    uint64_t packs_rewritten; /* live chunks copied into new packs, old pack removed */
    uint64_t packs_written;   /* new packs the rewrite made */
    uint64_t packs_recent;    /* written or used since the cutoff: kept whole */
    uint64_t packs_busy;      /* freshened while the collection ran: kept whole */
    uint64_t packs_locked;    /* under Object Lock: kept whole, removed by a later collection */
    uint64_t bytes_locked;    /* their bytes */
    time_t locked_until;      /* the earliest end of their locks (0: none locked) */
    uint64_t locks_extended;  /* live packs whose lock was extended (dry run: would be); gc.c
                               * adds the disk indexes and manifests it renews */
    uint64_t locks_due;       /* live packs whose lock is due for extension but was not (the
                               * per-collection bound, or a failed request): the next does */
    uint64_t chunks_dropped;  /* chunks in removed packs not copied (dead or spare copies) */
    uint64_t bytes_freed;     /* bytes of removed packs less the bytes of the new ones */
    uint64_t index_before;    /* index objects noted at the start (removed after the rewrite) */
    uint64_t index_written;   /* index objects the collection wrote */
} vb_packgc_stats_t;

/* Called once per (pack, chunk) in pack order: 1 when the chunk is live and not yet claimed by
 * another pack (it is claimed now), 0 otherwise, < 0 an error code. */
typedef int (*vb_packgc_claim_fn)(void *arg, const void *digest32);

/* Collects the packs of `store`. pack_size: of the new packs (0 default). repack_below_pct:
 * 0..100 (0: never repack, only delete). Returns 0 or the error of the step that failed; a
 * damaged pack: VB_ECORRUPT naming it, nothing removed. */
int vb_packgc_run(vb_store_t *store, uint32_t pack_size, vb_packgc_claim_fn claim, void *arg,
                  time_t cutoff, unsigned repack_below_pct, bool dry_run,
                  vb_packgc_stats_t *out) VB_WUR;

#endif
