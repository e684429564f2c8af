/* repocache — repositories an agent keeps open across the restore tasks of one job.
 *
 * Opening a format 2 repository loads its chunk index: every index object is listed and read
 * (one per committed backup task, so hundreds after one backup of a large VM). A restore runs as
 * many 16 MiB tasks, several at once on each agent, and reopening the repository for each of
 * them cost more than the restore's own reads. The tasks of one job on this agent share one open
 * repository instead: the first task opens it, the others borrow it.
 *
 * Keyed by job id and repository location: a job sees the repository as it was when its first
 * task here opened it, which holds every chunk of the restore point it restores (committed before
 * the job started). A chunk found missing later is looked up again in a reloaded index by the
 * repository itself (a GC may have moved it), as for a repository opened per task. A repository
 * no task uses is closed when a task of another job asks for one, or by vb_repocache_expire.
 *
 * Thread-safe: tasks acquire and release from their own threads. */
#ifndef VB_REPOCACHE_H
#define VB_REPOCACHE_H

#include <stdint.h>

#include "repo/repo.h"
#include "repo/store.h"

typedef struct vb_repocache vb_repocache_t;

/* NULL on failure (message set). */
vb_repocache_t *vb_repocache_new(void);

/* Closes every repository; none may be borrowed any more. NULL-safe; sets *self_p to NULL. */
void vb_repocache_destroy(vb_repocache_t **self_p);

/* The repository at `location` opened for job `job_id` (opened now with `key_file` and `opts`
 * when this job has none open here yet). Borrowed until vb_repocache_release; NULL with the
 * message of the failed open. */
vb_repo_t *vb_repocache_acquire(vb_repocache_t *self, uint64_t job_id, const char *location,
                                const char *key_file, const vb_store_opts_t *opts);

/* Gives back a repository from vb_repocache_acquire; sets *repo_p to NULL. */
void vb_repocache_release(vb_repocache_t *self, vb_repo_t **repo_p);

/* Closes the repositories no task has used for `idle_ms` milliseconds (0: every unused one);
 * how many. */
size_t vb_repocache_expire(vb_repocache_t *self, int64_t idle_ms);

/* Repositories open now (for tests). */
size_t vb_repocache_size(vb_repocache_t *self);

#endif
