#include <criterion/criterion.h>

#include "plan.h"

#define K 1024ull
#define M (1024ull * 1024ull)

Test(plan, tasks_are_chunk_aligned_and_bounded_by_work)
{
    vb_extent_t ext[] = {{100, 10}, {5 * M + 3, 2 * M}, {40 * M, 20 * M}};
    vb_plan_task_t *t = NULL;
    size_t n = 0;
    cr_assert_eq(vb_plan_split(ext, 3, 64 * M, 256 * K, 16 * M, &t, &n), 0);
    /* 64 chunks per task: chunk 0, chunks 20..28 and the first 54 chunks of the third range,
     * then its last 26 */
    cr_assert_eq(n, 2);
    cr_assert_eq(t[0].offset, 0);
    cr_assert_eq(t[0].count, 3);
    cr_assert_eq(t[0].chunks, 64);
    cr_assert_eq(t[0].extents[2].offset, 40 * M);
    cr_assert_eq(t[0].extents[2].length, 54 * 256 * K);
    cr_assert_eq(t[0].length, 40 * M + 54 * 256 * K, "the window ends with its last chunk");
    cr_assert_eq(t[1].offset, 40 * M + 54 * 256 * K);
    cr_assert_eq(t[1].length, 26 * 256 * K);
    cr_assert_eq(t[1].chunks, 26);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(t[i].offset % (256 * K), 0);
    vb_plan_free(&t, n);
    cr_assert_null(t);
}

/* An incremental after scattered writes: 64 KiB changed in every 4 MiB of a 1 GiB disk. Cut
 * along 16 MiB stretches of disk it made 64 tasks of 4 chunks each, every one paying a task's
 * set-up for 1 MiB of data; by work it is 4 tasks of 16 chunks. */
Test(plan, scattered_changes_fill_whole_tasks)
{
    enum { N = 256 };
    vb_extent_t ext[N];
    for (size_t i = 0; i < N; i++)
        ext[i] = (vb_extent_t){i * 4 * M + 96 * K, 64 * K};
    vb_plan_task_t *t = NULL;
    size_t n = 0;
    cr_assert_eq(vb_plan_split(ext, N, 1024 * M, 256 * K, 4 * M, &t, &n), 0);
    cr_assert_eq(n, 16, "%zu tasks", n);
    uint64_t chunks = 0, prev_end = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(t[i].chunks, 16);
        cr_assert_eq(t[i].count, 16);
        cr_assert_geq(t[i].offset, prev_end, "windows ascend and do not overlap");
        cr_assert_eq(t[i].offset, i * 16 * 4 * M);
        cr_assert_eq(t[i].length, 15 * 4 * M + 256 * K);
        prev_end = t[i].offset + t[i].length;
        chunks += t[i].chunks;
    }
    cr_assert_eq(chunks, N);
    vb_plan_free(&t, n);
}

/* Ranges in one chunk after the task's budget is spent: the chunk stays in that task (it is
 * already counted); the next chunk starts a new task. */
Test(plan, a_chunk_is_never_split_between_tasks)
{
    vb_extent_t ext[] = {{0, 4 * K}, {512 * K, 4 * K}, {M - 4 * K, 4 * K}, {M + 200 * K, 4 * K}};
    vb_plan_task_t *t = NULL;
    size_t n = 0;
    cr_assert_eq(vb_plan_split(ext, 4, 4 * M, M, M, &t, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(t[0].chunks, 1);
    cr_assert_eq(t[0].count, 3, "every range of chunk 0 in the first task");
    cr_assert_eq(t[0].length, M);
    cr_assert_eq(t[1].offset, M);
    cr_assert_eq(t[1].chunks, 1);
    cr_assert_eq(t[1].extents[0].offset, M + 200 * K);
    vb_plan_free(&t, n);
}
