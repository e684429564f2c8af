/* lockrenew — Object Lock renewal of what restore points still need, in batches at collection
 * time (Kopia/Veeam style), not one request per object per backup.
 *
 * An object whose lock ends within half the lock period gets a new lock of the full period from
 * now (store.h extend_lock: one request). An object written or freshened within the last half
 * period is passed over without a request (its lock, set then, ends later); an older one costs a
 * stat to learn its retain-until. At most VB_LOCKRENEW_MAX extensions per collection for each
 * kind — packs, and metadata (disk indexes and manifests together) — so that a large repository
 * whose packs use up their share still renews the few small objects restore points are listed
 * by: the rest is counted due, for the next collection. A caller keeps one stats per kind.
 *
 * garbage collection renews the packs it keeps (packgc.c) and then the disk indexes and manifests
 * there are (vb_lockrenew_prefix over "indexes/" and "manifests/": every one listed belongs to a
 * restore point or a running job; prune removes, or hides, the others first). */
#ifndef VB_REPO_LOCKRENEW_H
#define VB_REPO_LOCKRENEW_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "repo/store.h"

#define VB_LOCKRENEW_MAX 4096 /* Object Lock extensions of one kind a collection makes at most */

/* VB_LOCKRENEW_MAX; tests lower it with VBAK_TEST_LOCKRENEW_MAX=N (1..VB_LOCKRENEW_MAX) to reach
 * the bound with a few objects. */
uint64_t vb_lockrenew_max(void);

typedef struct {
    uint64_t extended; /* locks extended (dry run: would be); at most vb_lockrenew_max() */
    uint64_t due;      /* due but not extended (the bound, or a failed request) */
} vb_lockrenew_stats_t;

/* One object whose listing said `mtime`: extended, passed over, or counted due. Logs what fails
 * (a failure is counted due, never returned). Does nothing on a store without a lock. */
void vb_lockrenew_object(vb_store_t *store, const char *name, time_t mtime, bool dry_run,
                         vb_lockrenew_stats_t *st);

/* Every object listed under prefix, as vb_lockrenew_object. Returns the listing's error. */
int vb_lockrenew_prefix(vb_store_t *store, const char *prefix, bool dry_run,
                        vb_lockrenew_stats_t *st) VB_WUR;

#endif
