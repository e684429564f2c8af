/* repocache: the repository a restore's tasks on one agent share. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"
#include "repo/index.h"
#include "repo/repo.h"
#include "repocache.h"
#include "repo_testutil.h"

static char *s_dir;
static char s_repo[4096];

static void setup(void)
{
    s_dir = tu_tmpdir();
    snprintf(s_repo, sizeof s_repo, "%s/repo", s_dir);
    vb_repo_params_t p = {.chunk_size = 64u << 10, .compression_level = 1, .format = 2};
    cr_assert_eq(vb_repo_init(s_repo, &p), 0, "%s", vb_error_msg());
}

static void teardown(void)
{
    tu_rmrf(s_dir);
}

TestSuite(repocache, .init = setup, .fini = teardown);

typedef struct {
    uint8_t *data;
    uint64_t size;
} s_mem_t;

static int s_mem_read(void *ctx, void *buf, size_t len, uint64_t off)
{
    s_mem_t *m = ctx;
    memcpy(buf, m->data + off, len);
    return 0;
}

static int s_mem_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
    s_mem_t *m = ctx;
    memcpy(m->data + off, buf, len);
    return 0;
}

/* Backs up `m` through a repository opened for the purpose (committed when it returns). */
static vb_index_t *s_backup(s_mem_t *m)
{
    vb_repo_t *r = vb_repo_open(s_repo, NULL);
    cr_assert_not_null(r, "%s", vb_error_msg());
    vb_chunk_result_t *res = NULL;
    size_t n = 0;
    vb_extent_t all = {0, m->size};
    cr_assert_eq(vb_pipeline_backup_collect(r, NULL, "2000", m->size, &all, 1, s_mem_read, m,
                                            &res, &n, NULL),
                 0, "%s", vb_error_msg());
    vb_index_t *idx = NULL;
    cr_assert_eq(vb_index_build(NULL, NULL, "2000", m->size, 64u << 10, res, n, &idx), 0, "%s",
                 vb_error_msg());
    free(res);
    vb_repo_destroy(&r);
    return idx;
}

Test(repocache, the_tasks_of_one_job_share_one_open_repository_and_another_job_gets_its_own)
{
    vb_repocache_t *c = vb_repocache_new();
    cr_assert_not_null(c);
    vb_repo_t *a = vb_repocache_acquire(c, 7, s_repo, NULL, NULL);
    vb_repo_t *b = vb_repocache_acquire(c, 7, s_repo, NULL, NULL);
    cr_assert_not_null(a, "%s", vb_error_msg());
    cr_assert_eq(a, b, "two tasks of job 7 opened the repository twice");
    cr_assert_eq(vb_repocache_size(c), 1);
    vb_repo_t *other = vb_repocache_acquire(c, 8, s_repo, NULL, NULL);
    cr_assert_not_null(other, "%s", vb_error_msg());
    cr_assert_neq(other, a, "job 8 got job 7's repository");
    cr_assert_eq(vb_repocache_size(c), 2, "job 7's repository closed while its tasks use it");
    vb_repocache_release(c, &a);
    cr_assert_null(a);
    vb_repocache_release(c, &b);
    vb_repocache_release(c, &other);
    /* job 9 starts: the unused repositories of jobs 7 and 8 are closed */
    vb_repo_t *next = vb_repocache_acquire(c, 9, s_repo, NULL, NULL);
    cr_assert_not_null(next, "%s", vb_error_msg());
    cr_assert_eq(vb_repocache_size(c), 1);
    cr_assert_eq(vb_repocache_expire(c, 0), 0, "a repository in use was closed");
    vb_repocache_release(c, &next);
    cr_assert_eq(vb_repocache_expire(c, 60000), 0, "closed before it was idle that long");
    cr_assert_eq(vb_repocache_expire(c, 0), 1);
    cr_assert_eq(vb_repocache_size(c), 0);
    vb_repocache_destroy(&c);
    cr_assert_null(c);
    vb_repocache_destroy(&c);
}

Test(repocache, a_failed_open_names_the_repository_and_keeps_nothing)
{
    vb_repocache_t *c = vb_repocache_new();
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/none", s_dir);
    cr_assert_null(vb_repocache_acquire(c, 1, missing, NULL, NULL));
    cr_assert(strstr(vb_error_msg(), "not a vbak repository"), "%s", vb_error_msg());
    cr_assert_eq(vb_repocache_size(c), 0);
    vb_repocache_destroy(&c);
}

/* A repository kept open from before a backup committed still restores that backup's chunks
 * byte for byte (its index is loaded again when a chunk is not in it). */
Test(repocache, a_repository_open_since_before_a_backup_restores_that_backup)
{
    vb_repocache_t *c = vb_repocache_new();
    vb_repo_t *held = vb_repocache_acquire(c, 3, s_repo, NULL, NULL);
    cr_assert_not_null(held, "%s", vb_error_msg());
    s_mem_t disk = {.size = (64u << 10) * 24 + 4096};
    disk.data = calloc(1, disk.size);
    for (uint64_t i = 0; i < 24; i += 2) /* every other chunk holds data, the rest are holes */
        tu_fill_random(disk.data + i * (64u << 10), 64u << 10, 40 + i);
    tu_fill_random(disk.data + (64u << 10) * 24, 4096, 99);
    vb_index_t *idx = s_backup(&disk);
    vb_repo_t *same = vb_repocache_acquire(c, 3, s_repo, NULL, NULL);
    cr_assert_eq(same, held);
    s_mem_t out = {.data = calloc(1, disk.size), .size = disk.size};
    vb_pipeline_stats_t st;
    cr_assert_eq(vb_pipeline_restore(same, &(vb_pipeline_opts_t){.workers = 2}, idx, s_mem_write,
                                     &out, &st),
                 0, "%s", vb_error_msg());
    cr_assert_eq(memcmp(out.data, disk.data, disk.size), 0, "restored bytes differ");
    cr_assert_eq(st.chunks, 13);
    vb_repocache_release(c, &same);
    vb_repocache_release(c, &held);
    vb_index_destroy(&idx);
    free(disk.data);
    free(out.data);
    vb_repocache_destroy(&c);
}
