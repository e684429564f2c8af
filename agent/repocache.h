/* repocache — the repositories an agent's backup tasks share, one open handle per repository and
 * job.
 *
 * Opening a repository loads its chunk index and gives it an open pack of its own; a task that
 * opened one per task paid that (and a fresh pack buffer, and one more index object for every
 * later task to load) for each task_bytes of data. Tasks of one job on one repository now share
 * a handle: their chunks go to one open pack, each task's end still seals and commits it
 * (vb_repo_sync) before the task reports, so every chunk a task reports is durable as before.
 *
 * A handle serves one job only: a later job opens the repository again and sees the index as it
 * is then (what a GC since removed or repacked), exactly as a task did when it opened its own.
 * A handle a task failed with is retired (its upload or store may be what failed): no task gets
 * it again, and it is closed when the last task using it lets go (on that task's thread). A handle
 * no task uses is closed once it has been idle for idle_ms (vb_repocache_sweep, which runs on the
 * agent's event loop, only unlinks it: a thread of its own closes it, since closing an S3 store
 * is network work), or at once when a task of another job asks for the same repository (on that
 * task's thread).
 *
 * Thread-safe: tasks acquire and release from their own threads. */
#ifndef VB_REPOCACHE_H
#define VB_REPOCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "repo/repo.h"

typedef struct vb_repocache vb_repocache_t;

/* NULL on failure (message set). idle_ms: how long a handle nobody uses stays open. */
vb_repocache_t *vb_repocache_new(int64_t idle_ms);
/* Waits for the handles the sweep is closing, then closes every other; the caller makes sure no
 * task still holds one. Takes NULL. */
void vb_repocache_destroy(vb_repocache_t **self_p);

/* How a handle is closed: vb_repo_destroy unless a test sets another (NULL: vb_repo_destroy), to
 * see on which thread, and when, handles close. Set it before the first acquire. */
typedef void (*vb_repocache_close_fn)(vb_repo_t **repo_p);
void vb_repocache_set_close(vb_repocache_t *self, vb_repocache_close_fn close);

/* The shared handle of repository `url` for job `job_id`, opened with the key file and store
 * options if there is none (a retired one is never handed out). Borrowed until
 * vb_repocache_release. NULL with the message set when it cannot be opened. */
vb_repo_t *vb_repocache_acquire(vb_repocache_t *self, const char *url, uint64_t job_id,
                                const char *key_file, const vb_store_opts_t *store_opts);

/* Lets go of a handle from vb_repocache_acquire; failed: the task failed with it, so it is
 * retired. */
void vb_repocache_release(vb_repocache_t *self, vb_repo_t *repo, bool failed);

/* Hands the handles no task has used for idle_ms to a thread that closes them, and returns
 * without waiting for it; returns how many handles are still in the cache. */
size_t vb_repocache_sweep(vb_repocache_t *self);

#endif
