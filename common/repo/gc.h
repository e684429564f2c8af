/* gc — garbage collection of unreferenced chunks in a repository.
 *
 * Mark and sweep. Marks every chunk named by any live index in indexes/ (an
 * unreadable index aborts the collection with its error: nothing is swept), then removes chunks
 * that are unmarked AND whose mtime is older than `cutoff` (the start of the oldest running job,
 * or now when none runs), and the store's temp objects older than `cutoff` left by crashed
 * writers. A chunk a running job wrote or re-referenced (put freshens the mtime) is never
 * swept; the sweep removes a candidate only "unless used since the cutoff" (the store re-checks
 * its mtime atomically), so a writer touching it concurrently wins. Indexes being written by running jobs are not in
 * indexes/ yet; the chunks they inherit from a parent are safe as long as the parent index is
 * kept while such a job runs (the catalog's prune does not remove a running job's parent).
 * Chunks verify moved to quarantine/ are removed VB_GC_QUARANTINE_DAYS after they were moved.
 * In a format 2 repository the sweep is packgc.h's: packs are deleted or repacked, index objects
 * compacted; a running backup's re-used chunks are kept by the same cutoff (it freshens their
 * packs). */
#ifndef VB_GC_H
#define VB_GC_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "repo/packgc.h"
#include "repo/repo.h"

typedef struct {
    uint64_t marked;        /* distinct digests referenced by indexes */
    uint64_t swept;         /* chunk files removed (or that would be, with dry_run) */
    uint64_t swept_bytes;
    uint64_t kept_recent;   /* unreferenced but not older than the cutoff */
    uint64_t temp_removed;
    uint64_t orphan_indexes;     /* index files no restore point owns (vb_repo_gc_owned) */
    uint64_t quarantine_removed; /* quarantined chunks removed (older than the keep time) */
    vb_packgc_stats_t packs;     /* format 2: what happened to packs and index objects; swept
                                  * is then packs.chunks_dropped, swept_bytes packs.bytes_freed */
} vb_gc_stats_t;

/* Quarantined chunks (repo.h) stay this long for inspection, then GC removes them. */
#define VB_GC_QUARANTINE_DAYS 14

/* Returns 0 or the error of the step that failed (nothing more is swept after it). Every index
 * file in indexes/ is live. VB_EPOLICY (nothing done, dry run too) while the chunk index is
 * hidden by delete markers: run `vbak repo undelete` first (vb_repo_writable). */
int vb_repo_gc(vb_repo_t *self, time_t cutoff, bool dry_run, vb_gc_stats_t *out) VB_WUR;

/* Which indexes restore points own (from the catalog), and what GC found besides them. */
typedef struct {
    const char *const *owned; /* index names (borrowed, any order) */
    size_t owned_count;
    const char *const *dropped; /* index names to count as removed already (a dry run of prune:
                                 * what GC would free after it); not marked from, not reported */
    size_t dropped_count;
    char **orphans; /* out: names of index files no restore point owns, older than the
                     * cutoff: not marked from (their chunks may be swept) and left in
                     * place for the administrator; free with vb_index_list_free */
    size_t orphan_count;
} vb_gc_owners_t;

/* As vb_repo_gc, but an index file that is not in owners->owned and whose mtime is older than
 * `cutoff` is an orphan (a backup that failed before its commit, in an older vbak): it keeps
 * nothing alive and is reported in owners->orphans. A newer one may belong to a running job and
 * is marked from as usual. owners NULL: as vb_repo_gc. */
int vb_repo_gc_owned(vb_repo_t *self, vb_gc_owners_t *owners, time_t cutoff, bool dry_run,
                     vb_gc_stats_t *out) VB_WUR;

/* As vb_repo_gc_owned; in a format 2 repository, a pack older than the cutoff whose live bytes
 * are below repack_below_pct % of its size is repacked (packgc.h; vb_repo_gc_owned uses
 * VB_PACKGC_REPACK_DEFAULT). Format 1 ignores it. */
int vb_repo_gc_ex(vb_repo_t *self, vb_gc_owners_t *owners, time_t cutoff,
                  unsigned repack_below_pct, bool dry_run, vb_gc_stats_t *out) VB_WUR;

#endif
