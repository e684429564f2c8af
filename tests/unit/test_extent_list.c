/* Extent lists: a map too large for one message is bounded by widening, never narrowing. */
#include <criterion/criterion.h>

#include "inventory/inventory.h"

#define K 1024ull
#define M (1024ull * 1024ull)

/* Every byte of `inner` lies inside some extent of `outer`. */
static bool covers(const vb_extent_list_t *outer, const vb_extent_t *inner, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        while (j < outer->count &&
               outer->items[j].offset + outer->items[j].length <= inner[i].offset)
            j++;
        if (j == outer->count || outer->items[j].offset > inner[i].offset ||
            outer->items[j].offset + outer->items[j].length < inner[i].offset + inner[i].length)
            return false;
    }
    return true;
}

Test(extent_list, a_small_map_is_left_as_it_is)
{
    vb_extent_list_t l = {0};
    for (uint64_t i = 0; i < 10; i++)
        cr_assert_eq(vb_extent_list_add(&l, i * 8 * K, 4 * K), 0);
    cr_assert_eq(vb_extent_list_bound(&l, 64 * K, M, 10), 0);
    cr_assert_eq(l.count, 10);
    vb_extent_list_free(&l);
}

Test(extent_list, a_large_map_is_widened_until_it_fits)
{
    /* 100,000 pieces of 4 KiB, 200 KiB apart (no gap merge helps), over about 20 GiB */
    enum { N = 100000 };
    static vb_extent_t orig[N];
    vb_extent_list_t l = {0};
    for (uint64_t i = 0; i < N; i++) {
        orig[i] = (vb_extent_t){i * 200 * K, 4 * K};
        cr_assert_eq(vb_extent_list_add(&l, orig[i].offset, orig[i].length), 0);
    }
    uint64_t block = vb_extent_list_bound(&l, 64 * K, M, 1000);
    cr_assert_leq(l.count, 1000);
    cr_assert_geq(block, M, "widened to whole chunks at least");
    cr_assert(covers(&l, orig, N), "a bounded map lost allocated bytes");
    for (size_t i = 0; i < l.count; i++) {
        cr_assert_eq(l.items[i].offset % block, 0);
        if (i)
            cr_assert_gt(l.items[i].offset, l.items[i - 1].offset + l.items[i - 1].length,
                         "extents overlap or touch");
    }
    vb_extent_list_free(&l);
}

Test(extent_list, close_pieces_merge_first)
{
    vb_extent_list_t l = {0};
    vb_extent_t orig[64];
    for (uint64_t i = 0; i < 64; i++) {
        orig[i] = (vb_extent_t){i * 16 * K, 4 * K};
        cr_assert_eq(vb_extent_list_add(&l, orig[i].offset, orig[i].length), 0);
    }
    cr_assert_eq(vb_extent_list_bound(&l, 64 * K, M, 8), 0, "merging the 12 KiB gaps sufficed");
    cr_assert_eq(l.count, 1);
    cr_assert_eq(l.items[0].offset, 0);
    cr_assert_eq(l.items[0].length, 63 * 16 * K + 4 * K);
    cr_assert(covers(&l, orig, 64));
    vb_extent_list_free(&l);
}
