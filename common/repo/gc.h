/* gc — garbage collection of unreferenced chunks in a repository.
 *
 * Mark and sweep. Marks every chunk named by any index in indexes/ (an
 * unreadable index aborts the collection with its error: nothing is swept), then removes chunk
 * files that are unmarked AND whose mtime is older than `cutoff` (the start of the oldest
 * running job, or now when none runs), and temp files older than `cutoff` left by crashed
 * writers. A chunk a running job wrote or re-referenced (put refreshes the mtime) is never
 * swept; the sweep moves a candidate aside and re-checks its mtime before unlinking it, so a
 * writer touching it concurrently wins. Indexes being written by running jobs are not in
 * indexes/ yet; the chunks they inherit from a parent are safe as long as the parent index is
 * kept while such a job runs (the catalog's prune does not remove a running job's parent). */
#ifndef VB_GC_H
#define VB_GC_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "repo/repo.h"

typedef struct {
    uint64_t marked;        /* distinct digests referenced by indexes */
    uint64_t swept;         /* chunk files removed (or that would be, with dry_run) */
    uint64_t swept_bytes;
    uint64_t kept_recent;   /* unreferenced but not older than the cutoff */
    uint64_t temp_removed;
} vb_gc_stats_t;

/* Returns 0 or the error of the step that failed (nothing more is swept after it). */
int vb_repo_gc(vb_repo_t *self, time_t cutoff, bool dry_run, vb_gc_stats_t *out) VB_WUR;

#endif
