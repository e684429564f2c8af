#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "repo/retention.h"

#define DAY 86400
/* 2026-03-02 00:00:00 UTC, a Monday. */
#define T0 1772409600

static unsigned s_reasons[64];

static void select_ok(const vb_retention_policy_t *p, const vb_rp_info_t *rps, size_t n)
{
    cr_assert_eq(vb_retention_select(p, rps, n, s_reasons), 0, "%s", vb_error_msg());
}

Test(retention, keep_last_keeps_the_newest_per_vm)
{
    vb_rp_info_t rps[] = {
        {"a1", "vm-a", T0 + 1, true}, {"a2", "vm-a", T0 + 2, true}, {"a3", "vm-a", T0 + 3, true},
        {"b1", "vm-b", T0 + 1, true}, {"b2", "vm-b", T0 + 5, true},
    };
    vb_retention_policy_t p = {.keep_last = 2};
    select_ok(&p, rps, 5);
    cr_assert_eq(s_reasons[0], 0, "a1 is outside keep-last 2");
    cr_assert(s_reasons[1] & VB_KEEP_LAST);
    cr_assert(s_reasons[2] & VB_KEEP_LAST);
    cr_assert(s_reasons[2] & VB_KEEP_LATEST);
    cr_assert(s_reasons[3] & VB_KEEP_LAST, "keep-last counts per VM");
    cr_assert(s_reasons[4] & VB_KEEP_LAST);
}

Test(retention, daily_weekly_monthly_keep_the_newest_of_each_period)
{
    /* Three a day for 40 days. */
    vb_rp_info_t rps[120];
    char ids[120][8];
    for (int d = 0; d < 40; d++)
        for (int k = 0; k < 3; k++) {
            int i = d * 3 + k;
            snprintf(ids[i], sizeof ids[i], "r%03d", i);
            rps[i] = (vb_rp_info_t){ids[i], "vm", T0 + (int64_t)d * DAY + k * 3600, true};
        }
    unsigned reasons[120];
    vb_retention_policy_t p = {.keep_daily = 7};
    cr_assert_eq(vb_retention_select(&p, rps, 120, reasons), 0);
    int kept = 0;
    for (int i = 0; i < 120; i++)
        if (reasons[i]) {
            kept++;
            cr_assert_eq(i % 3, 2, "daily keeps the newest of a day, not %s", rps[i].id);
            cr_assert_geq(i / 3, 33, "daily keeps the 7 most recent days");
        }
    cr_assert_eq(kept, 7);

    vb_retention_policy_t w = {.keep_weekly = 3};
    cr_assert_eq(vb_retention_select(&w, rps, 120, reasons), 0);
    kept = 0;
    for (int i = 0; i < 120; i++)
        if (reasons[i] & VB_KEEP_WEEKLY) {
            kept++;
            int day = i / 3;
            /* Newest of its ISO week: a Sunday (day % 7 == 6) or the last day overall (39). */
            cr_assert(i % 3 == 2 && (day % 7 == 6 || day == 39), "weekly kept %s", rps[i].id);
        }
    cr_assert_eq(kept, 3);

    vb_retention_policy_t m = {.keep_monthly = 12};
    cr_assert_eq(vb_retention_select(&m, rps, 120, reasons), 0);
    kept = 0;
    for (int i = 0; i < 120; i++)
        if (reasons[i] & VB_KEEP_MONTHLY)
            kept++;
    cr_assert_eq(kept, 2, "40 days from March 2 span March and April");
    cr_assert(reasons[29 * 3 + 2] & VB_KEEP_MONTHLY, "March 31, newest of March");
    cr_assert(reasons[119] & VB_KEEP_MONTHLY);
}

Test(retention, the_last_complete_one_is_never_removed_and_running_ones_stay)
{
    vb_rp_info_t rps[] = {
        {"old", "vm", T0, true},
        {"running", "vm", T0 + 5 * DAY, false},
        {"older", "vm", T0 - 40 * DAY, true},
    };
    /* keep-daily 1 and keep-last 1 both select "old": the running one is not counted. */
    vb_retention_policy_t p = {.keep_last = 1};
    select_ok(&p, rps, 3);
    cr_assert(s_reasons[0] & VB_KEEP_LATEST);
    cr_assert_eq(s_reasons[1], VB_KEEP_INCOMPLETE);
    cr_assert_eq(s_reasons[2], 0);
    char buf[64];
    cr_assert_str_eq(vb_retention_reason_text(s_reasons[0], buf, sizeof buf), "last,latest");
    cr_assert_str_eq(vb_retention_reason_text(0, buf, sizeof buf), "remove");
}

Test(retention, empty_policy_is_refused_and_order_does_not_matter)
{
    vb_rp_info_t rps[] = {{"x", "vm", T0, true}, {"y", "vm", T0, true}, {"w", "vm", T0 - 1, true}};
    vb_retention_policy_t none = {0};
    cr_assert_eq(vb_retention_select(&none, rps, 3, s_reasons), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "no keep rule"), "%s", vb_error_msg());
    vb_retention_policy_t p = {.keep_last = 1};
    select_ok(&p, rps, 3);
    cr_assert(s_reasons[1] & VB_KEEP_LAST, "equal times: the larger id is the newer");
    cr_assert_eq(s_reasons[0], 0);
    vb_rp_info_t swapped[] = {rps[2], rps[1], rps[0]};
    select_ok(&p, swapped, 3);
    cr_assert(s_reasons[1] & VB_KEEP_LAST);
}
