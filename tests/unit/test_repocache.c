#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "pipeline/pipeline.h"
#include "repo_testutil.h"
#include "repocache.h"

#define CHUNK (64u * 1024u)

/* A new repository in a new directory (the caller removes the directory with tu_rmrf). */
static char *s_repo(char **dir)
{
    *dir = tu_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/repo", *dir);
    vb_repo_params_t p = {.chunk_size = CHUNK, .compression_level = 3};
    cr_assert_eq(vb_repo_init(path, &p), 0, "%s", vb_error_msg());
    return strdup(path);
}

/* Puts the chunk `buf` through `repo` without a commit; true when it was new. */
static bool s_put(vb_repo_t *repo, const uint8_t *buf, vb_digest_t *d)
{
    vb_repo_worker_t *w = vb_repo_worker_new(repo);
    cr_assert_not_null(w);
    uint64_t stored = 0;
    cr_assert_eq(vb_repo_digest(w, buf, CHUNK, d), 0);
    cr_assert_eq(vb_repo_chunk_put(w, d, buf, CHUNK, &stored), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_repo_worker_flush(w), 0);
    vb_repo_worker_destroy(&w);
    return stored != 0;
}

/* Stores one chunk of random bytes through `repo` and commits it; true when it was new. */
static bool s_store(vb_repo_t *repo, uint64_t seed, vb_digest_t *d)
{
    static uint8_t buf[CHUNK];
    tu_fill_random(buf, sizeof buf, seed);
    bool fresh = s_put(repo, buf, d);
    cr_assert_eq(vb_repo_sync(repo), 0, "%s", vb_error_msg());
    return fresh;
}

/* Two tasks of job `job` at once: they share one handle. */
static vb_repo_t *s_two_tasks(vb_repocache_t *c, const char *path, uint64_t job)
{
    vb_store_opts_t opts = {0};
    vb_repo_t *a = vb_repocache_acquire(c, path, job, NULL, &opts);
    vb_repo_t *b = vb_repocache_acquire(c, path, job, NULL, &opts);
    cr_assert_not_null(a, "%s", vb_error_msg());
    cr_assert_eq(a, b, "two tasks of job %llu at once share the handle", (unsigned long long)job);
    return a;
}

Test(repocache, tasks_of_one_job_share_a_handle_another_job_opens_anew)
{
    char *dir = NULL, *path = s_repo(&dir);
    vb_repocache_t *c = vb_repocache_new(60000);
    vb_store_opts_t opts = {0};
    vb_repo_t *a = s_two_tasks(c, path, 7), *b = a;
    vb_digest_t d;
    cr_assert(s_store(a, 1, &d));
    vb_repocache_release(c, a, false);
    vb_repocache_release(c, b, false);
    vb_repo_t *again = vb_repocache_acquire(c, path, 7, NULL, &opts);
    cr_assert_eq(again, a, "a later task of job 7 gets the idle handle");
    vb_repocache_release(c, again, false);
    /* job 8: a handle opened now, which finds what job 7 committed */
    vb_repo_t *next = vb_repocache_acquire(c, path, 8, NULL, &opts);
    cr_assert_not_null(next);
    cr_assert_eq(vb_repocache_sweep(c), 1, "job 7's idle handle was closed when job 8 came");
    cr_assert_not(s_store(next, 1, &d), "the chunk job 7 stored is deduplicated");
    cr_assert(s_store(next, 2, &d));
    vb_repocache_release(c, next, false);
    vb_repocache_destroy(&c);
    cr_assert_null(c);
    vb_repocache_destroy(&c);
    free(path);
    tu_rmrf(dir);
}

Test(repocache, a_failed_task_retires_its_handle_and_idle_handles_close)
{
    char *dir = NULL, *path = s_repo(&dir);
    vb_repocache_t *c = vb_repocache_new(0);
    vb_store_opts_t opts = {0};
    vb_repo_t *a = s_two_tasks(c, path, 1), *b = a;
    vb_repocache_release(c, a, true);
    vb_repo_t *fresh = vb_repocache_acquire(c, path, 1, NULL, &opts);
    cr_assert_not_null(fresh);
    cr_assert_neq(fresh, b, "no task gets a handle a task failed with");
    vb_digest_t d;
    cr_assert(s_store(b, 3, &d), "the other task goes on with the retired handle");
    cr_assert_eq(vb_repocache_sweep(c), 2, "both in use");
    vb_repocache_release(c, b, false);
    cr_assert_eq(vb_repocache_sweep(c), 1, "the retired one closed with its last user");
    vb_repocache_release(c, fresh, false);
    cr_assert_eq(vb_repocache_sweep(c), 0, "idle past idle_ms (0): closed");
    cr_assert_null(vb_repocache_acquire(c, "/nonexistent/vbak-repo", 1, NULL, &opts));
    cr_assert_eq(vb_repocache_sweep(c), 0);
    vb_repocache_destroy(&c);
    free(path);
    tu_rmrf(dir);
}

static int s_read(void *ctx, void *buf, size_t len, uint64_t offset)
{
    memcpy(buf, (const uint8_t *)ctx + offset, len);
    return 0;
}

/* Two tasks of one job share a handle: A puts a chunk into the shared open pack and fails
 * without committing; B's disk holds only that chunk, so B stores nothing new. B's success
 * must still mean the chunk is durable: the handle A retired is destroyed after both let go. */
Test(repocache, a_task_that_only_reuses_another_tasks_uncommitted_chunk_commits_it)
{
    char *dir = NULL, *path = s_repo(&dir);
    vb_repocache_t *c = vb_repocache_new(60000);
    vb_repo_t *a = s_two_tasks(c, path, 9), *b = a;
    static uint8_t disk[CHUNK];
    tu_fill_random(disk, sizeof disk, 42);
    vb_digest_t d;
    cr_assert(s_put(a, disk, &d)); /* task A: put, no commit */
    vb_extent_t all = {0, CHUNK};
    vb_chunk_result_t *res = NULL;
    size_t n = 0;
    vb_pipeline_stats_t st = {0};
    cr_assert_eq(vb_pipeline_backup_collect(b, NULL, "disk-b", CHUNK, &all, 1, s_read, disk, &res,
                                            &n, &st),
                 0, "%s", vb_error_msg());
    cr_assert_eq(st.chunks_new, 0, "task B found the chunk task A put");
    free(res);
    vb_repocache_release(c, a, true); /* A failed: the handle is retired */
    vb_repocache_release(c, b, false);
    vb_repocache_destroy(&c);
    vb_repo_t *r = vb_repo_open(path, NULL); /* what the repository holds now */
    cr_assert_not_null(r, "%s", vb_error_msg());
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    static uint8_t back[CHUNK];
    size_t len = 0;
    cr_assert_eq(vb_repo_chunk_get(w, &d, back, sizeof back, &len), 0,
                 "the chunk task B reported is not in the repository: %s", vb_error_msg());
    cr_assert(len == CHUNK && memcmp(back, disk, CHUNK) == 0);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    free(path);
    tu_rmrf(dir);
}

/* A close the test holds until the sweep has returned, and where it ran. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t sweeper;
    bool sweep_returned, on_sweeper, waited_in_vain;
    int closed;
} s_slow = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void s_slow_close(vb_repo_t **repo_p)
{
    pthread_mutex_lock(&s_slow.mu);
    s_slow.on_sweeper = s_slow.on_sweeper || pthread_equal(pthread_self(), s_slow.sweeper);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30; /* turns a sweep that waits for its close into a failure, not a hang */
    while (!s_slow.on_sweeper && !s_slow.sweep_returned &&
           pthread_cond_timedwait(&s_slow.cv, &s_slow.mu, &until) == 0)
        ;
    s_slow.waited_in_vain = s_slow.waited_in_vain || !s_slow.sweep_returned;
    s_slow.closed++;
    pthread_mutex_unlock(&s_slow.mu);
    vb_repo_destroy(repo_p);
}

/* The sweep runs on the agent's event loop and closing an S3 store is network work: the sweep
 * only unlinks an idle handle, and a thread of its own closes it, however long that takes (here:
 * until the sweep has returned, which a close on the sweeping thread could never see). The
 * cache's end waits for that close. */
Test(repocache, the_sweep_returns_before_the_idle_handle_it_dropped_is_closed)
{
    char *dir = NULL, *path = s_repo(&dir);
    vb_repocache_t *c = vb_repocache_new(0);
    vb_repocache_set_close(c, s_slow_close);
    s_slow.sweeper = pthread_self();
    vb_repo_t *a = s_two_tasks(c, path, 5);
    vb_repocache_release(c, a, false);
    vb_repocache_release(c, a, false);
    cr_assert_eq(vb_repocache_sweep(c), 0, "the idle handle left the cache");
    pthread_mutex_lock(&s_slow.mu);
    int closed_during_sweep = s_slow.closed;
    s_slow.sweep_returned = true;
    pthread_cond_broadcast(&s_slow.cv);
    pthread_mutex_unlock(&s_slow.mu);
    vb_repocache_destroy(&c);
    cr_assert_eq(closed_during_sweep, 0, "the sweep closed the handle itself");
    cr_assert_not(s_slow.on_sweeper, "the handle was closed on the sweeping thread");
    cr_assert_not(s_slow.waited_in_vain, "the close never saw the sweep return");
    cr_assert_eq(s_slow.closed, 1, "closed once, before the cache's end returned");
    free(path);
    tu_rmrf(dir);
}

/* A handle whose sync failed (vb_store_broken: its later commits all fail) is not handed to the
 * next task of the job, even when the task that broke it let go without saying it failed: the
 * next task opens the repository again and commits. (Before, it got the broken handle.) */
Test(repocache, a_handle_a_failed_sync_broke_is_not_handed_out_again)
{
    char *dir = NULL, *path = s_repo(&dir);
    vb_repocache_t *c = vb_repocache_new(60000);
    vb_store_opts_t opts = {0};
    setenv("VBAK_TEST_STORE_SYNC_FAIL", "1", 1);
    vb_repo_t *a = vb_repocache_acquire(c, path, 7, NULL, &opts);
    unsetenv("VBAK_TEST_STORE_SYNC_FAIL");
    cr_assert_not_null(a, "%s", vb_error_msg());
    static uint8_t buf[CHUNK];
    tu_fill_random(buf, sizeof buf, 3);
    vb_digest_t d;
    s_put(a, buf, &d);
    cr_assert_neq(vb_store_barrier_all(vb_repo_store(a)), 0, "the sync was made to fail");
    cr_assert(vb_store_broken(vb_repo_store(a)));
    vb_repocache_release(c, a, false);
    vb_repo_t *b = vb_repocache_acquire(c, path, 7, NULL, &opts);
    cr_assert_not_null(b, "%s", vb_error_msg());
    cr_assert_neq(b, a, "the broken handle was handed out again");
    cr_assert_eq(vb_repo_sync(b), 0, "a handle opened again commits: %s", vb_error_msg());
    vb_repocache_release(c, b, false);
    vb_repocache_destroy(&c);
    free(path);
    tu_rmrf(dir);
}
