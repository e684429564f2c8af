#include <criterion/criterion.h>

#include "plan.h"

#define K 1024ull
#define M (1024ull * 1024ull)

Test(plan, windows_are_chunk_aligned_and_bounded)
{
    vb_extent_t ext[] = {{100, 10}, {5 * M + 3, 2 * M}, {40 * M, 20 * M}};
    vb_plan_task_t *t = NULL;
    size_t n = 0;
    cr_assert_eq(vb_plan_split(ext, 3, 64 * M, 256 * K, 16 * M, &t, &n), 0);
    /* windows: [0,16M) holds the first two ranges; [32M,48M) and [48M,64M) the third */
    cr_assert_eq(n, 3);
    cr_assert_eq(t[0].offset, 0);
    cr_assert_eq(t[0].length, 16 * M);
    cr_assert_eq(t[0].count, 2);
    cr_assert_eq(t[0].chunks, 1 + 9, "chunk 0, and chunks 20..28");
    cr_assert_eq(t[1].offset, 32 * M);
    cr_assert_eq(t[1].extents[0].offset, 40 * M);
    cr_assert_eq(t[1].extents[0].length, 8 * M);
    cr_assert_eq(t[2].offset, 48 * M);
    cr_assert_eq(t[2].extents[0].length, 12 * M);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(t[i].offset % (256 * K), 0);
    vb_plan_free(&t, n);
    cr_assert_null(t);
}

Test(plan, overlapping_unsorted_and_past_capacity)
{
    vb_extent_t ext[] = {{3 * M, M}, {0, 2 * M}, {M, 3 * M}, {9 * M, 5 * M}, {20 * M, M}};
    vb_plan_task_t *t = NULL;
    size_t n = 0;
    cr_assert_eq(vb_plan_split(ext, 5, 10 * M + 5, 64 * K, 64 * M, &t, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(t[0].length, 10 * M + 5, "the last window ends at the capacity");
    cr_assert_eq(t[0].count, 2);
    cr_assert_eq(t[0].extents[0].offset, 0);
    cr_assert_eq(t[0].extents[0].length, 4 * M);
    cr_assert_eq(t[0].extents[1].offset, 9 * M);
    cr_assert_eq(t[0].extents[1].length, M + 5, "clipped to the capacity");
    cr_assert_eq(t[0].chunks, 64 + 17, "[0,4M) and [9M,10M+5) in 64 KiB chunks");
    vb_plan_free(&t, n);
}

Test(plan, scattered_blocks_in_one_chunk_count_once)
{
    /* four 4 KiB writes inside one 1 MiB chunk, and one in the next */
    vb_extent_t ext[] = {{0, 4 * K}, {100 * K, 4 * K}, {500 * K, 4 * K}, {1020 * K, 8 * K}};
    vb_plan_task_t *t = NULL;
    size_t n = 0;
    cr_assert_eq(vb_plan_split(ext, 4, 8 * M, M, 4 * M, &t, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(t[0].chunks, 2, "two chunks are read, not five");
    cr_assert_eq(t[0].count, 4, "the ranges stay exact (a full backup reads only them)");
    cr_assert_eq(t[0].extents[1].offset, 100 * K);
    cr_assert_eq(t[0].extents[1].length, 4 * K);
    vb_plan_free(&t, n);
}

Test(plan, ranges_closer_than_the_read_through_gap_merge)
{
    /* a disk allocated in 4 KiB pieces every 8 KiB over 2 MiB, then a piece 1 MiB further on */
    vb_extent_t ext[257];
    for (int i = 0; i < 256; i++)
        ext[i] = (vb_extent_t){(uint64_t)i * 8 * K, 4 * K};
    ext[256] = (vb_extent_t){3 * M, 4 * K};
    vb_plan_task_t *t = NULL;
    size_t n = 0;
    cr_assert_eq(vb_plan_split(ext, 257, 8 * M, M, 16 * M, &t, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(t[0].count, 2, "%zu ranges: the 4 KiB gaps are read through", t[0].count);
    cr_assert_eq(t[0].extents[0].offset, 0);
    cr_assert_eq(t[0].extents[0].length, 255 * 8 * K + 4 * K);
    cr_assert_eq(t[0].extents[1].offset, 3 * M);
    cr_assert_eq(t[0].chunks, 3, "chunks 0, 1 (the pieces) and 3");
    vb_plan_free(&t, n);
}

Test(plan, whole_disk_windows_and_empty_input)
{
    vb_plan_task_t *t = NULL;
    size_t n = 0;
    cr_assert_eq(vb_plan_windows(33 * M, M, 16 * M, &t, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(t[2].offset, 32 * M);
    cr_assert_eq(t[2].length, M);
    vb_plan_free(&t, n);
    cr_assert_eq(vb_plan_split(NULL, 0, 8 * M, M, 4 * M, &t, &n), 0);
    cr_assert_eq(n, 0);
    vb_plan_free(&t, n);
    cr_assert_eq(vb_plan_split(NULL, 0, 8 * M, 0, 4 * M, &t, &n), VB_EINVAL);
}
