#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timefmt.h"

static int64_t parse_ok(const char *text)
{
    int64_t ms = 0;
    cr_assert_eq(vb_time_parse(text, &ms), 0, "%s: %s", text, vb_error_msg());
    return ms;
}

static void parse_bad(const char *text, const char *why)
{
    int64_t ms = 12345;
    cr_assert_eq(vb_time_parse(text, &ms), VB_EINVAL, "'%s' must be refused", text);
    cr_assert_eq(ms, 12345, "a refused text leaves the output alone");
    cr_assert(strstr(vb_error_msg(), why), "'%s': message '%s' should mention '%s'", text,
              vb_error_msg(), why);
}

Test(timefmt, formats_utc)
{
    char buf[VB_TIME_BUF];
    cr_assert_eq(vb_time_format_utc(0, false, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "1970-01-01T00:00:00Z");
    /* 2026-11-30T09:40:13.123Z */
    cr_assert_eq(vb_time_format_utc(1796031613123LL, true, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2026-11-30T09:40:13.123Z");
    cr_assert_eq(vb_time_format_utc(1796031613123LL, false, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2026-11-30T09:40:13Z");
    /* leap day and the day after */
    cr_assert_eq(vb_time_format_utc(951782400000LL, false, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2000-02-29T00:00:00Z");
    cr_assert_eq(vb_time_format_utc(951868800000LL, false, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2000-03-01T00:00:00Z");
    /* before 1970: one millisecond before the epoch */
    cr_assert_eq(vb_time_format_utc(-1, true, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
    cr_assert_eq(vb_time_format_utc(253402300799999LL, true, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "9999-12-31T23:59:59.999Z");
    cr_assert_eq(vb_time_format_utc(253402300800000LL, false, buf, sizeof buf), VB_EINVAL);
    cr_assert_eq(vb_time_format_utc(INT64_MAX, false, buf, sizeof buf), VB_EINVAL);
    cr_assert_eq(vb_time_format_utc(INT64_MIN, false, buf, sizeof buf), VB_EINVAL);
    char small[10];
    cr_assert_eq(vb_time_format_utc(0, false, small, sizeof small), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "too small"), "%s", vb_error_msg());
}

Test(timefmt, formats_with_offsets)
{
    char buf[VB_TIME_BUF];
    int64_t t = 1796031613000LL; /* 2026-11-30T09:40:13Z */
    cr_assert_eq(vb_time_format_offset(t, 60, false, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2026-11-30T10:40:13+01:00");
    cr_assert_eq(vb_time_format_offset(t, -(5 * 60 + 30), false, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2026-11-30T04:10:13-05:30");
    cr_assert_eq(vb_time_format_offset(t, 0, false, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2026-11-30T09:40:13+00:00");
    /* an offset that crosses midnight and a month end */
    cr_assert_eq(vb_time_format_offset(1796083200000LL, -60, true, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2026-11-30T23:00:00.000-01:00");
    cr_assert_eq(vb_time_format_offset(1796079600000LL, 14 * 60, false, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2026-12-01T13:00:00+14:00");
    cr_assert_eq(vb_time_format_offset(t, 24 * 60, false, buf, sizeof buf), VB_EINVAL);
}

Test(timefmt, parses_the_usual_forms)
{
    int64_t t = 1796031613000LL;
    cr_assert_eq(parse_ok("2026-11-30T09:40:13Z"), t);
    cr_assert_eq(parse_ok("2026-11-30t09:40:13z"), t);
    cr_assert_eq(parse_ok("2026-11-30 09:40:13Z"), t);
    cr_assert_eq(parse_ok("2026-11-30T09:40:13"), t, "no zone: UTC");
    cr_assert_eq(parse_ok("2026-11-30T10:40:13+01:00"), t);
    cr_assert_eq(parse_ok("2026-11-30T10:40:13+0100"), t);
    cr_assert_eq(parse_ok("2026-11-30T10:40:13+01"), t);
    cr_assert_eq(parse_ok("2026-11-30T04:10:13-05:30"), t);
    cr_assert_eq(parse_ok("2026-12-01T00:10:13+14:30"), t);
    cr_assert_eq(parse_ok("2026-11-30T09:40Z"), t - 13000);
    cr_assert_eq(parse_ok("2026-11-30"), t - (9 * 3600 + 40 * 60 + 13) * 1000LL);
    cr_assert_eq(parse_ok("2026-11-30T09:40:13.123Z"), t + 123);
    cr_assert_eq(parse_ok("2026-11-30T09:40:13.5Z"), t + 500);
    cr_assert_eq(parse_ok("2026-11-30T09:40:13,25Z"), t + 250);
    cr_assert_eq(parse_ok("2026-11-30T09:40:13.123999999Z"), t + 123, "kept to the ms");
    cr_assert_eq(parse_ok("1970-01-01T00:00:00Z"), 0);
    cr_assert_eq(parse_ok("1969-12-31T23:59:59.999Z"), -1);
    cr_assert_eq(parse_ok("2000-02-29"), 951782400000LL);
    cr_assert_eq(parse_ok("0000-01-01T00:00:00Z"), -62167219200000LL);
    cr_assert_eq(parse_ok("9999-12-31T23:59:59.999Z"), 253402300799999LL);
}

Test(timefmt, refuses_what_is_not_a_time)
{
    parse_bad("", "YYYY-MM-DD");
    parse_bad("yesterday", "YYYY-MM-DD");
    parse_bad("2026-11", "YYYY-MM-DD");
    parse_bad("26-11-30", "YYYY-MM-DD");
    parse_bad("2026/11/30", "YYYY-MM-DD");
    parse_bad("2026-13-01", "month 13");
    parse_bad("2026-00-10", "month 0");
    parse_bad("2026-02-29", "no day 29");
    parse_bad("1900-02-29", "no day 29");
    parse_bad("2026-04-31", "no day 31");
    parse_bad("2026-11-30T24:00:00Z", "not a time of day");
    parse_bad("2026-11-30T09:60Z", "not a time of day");
    parse_bad("2026-11-30T09:40:60Z", "not a time of day");
    parse_bad("2026-11-30T9:40Z", "HH:MM");
    parse_bad("2026-11-30T", "HH:MM");
    parse_bad("2026-11-30T09:40:13.Z", "1 to 9 digits");
    parse_bad("2026-11-30T09:40:13.1234567891Z", "1 to 9 digits");
    parse_bad("2026-11-30T09:40:13+24:00", "offset 24:00");
    parse_bad("2026-11-30T09:40:13+01:60", "offset 01:60");
    parse_bad("2026-11-30T09:40:13+1", "+HH:MM");
    parse_bad("2026-11-30T09:40:13Zjunk", "unexpected characters");
    parse_bad("2026-11-30 ", "unexpected characters");
    parse_bad("2026-11-30T09:40:13 UTC", "unexpected characters");
    int64_t ms;
    cr_assert_eq(vb_time_parse(NULL, &ms), VB_EINVAL);
}

Test(timefmt, round_trips)
{
    char buf[VB_TIME_BUF];
    const int64_t samples[] = {0,
                               -1,
                               1,
                               951782400000LL,
                               1796031613123LL,
                               -62167219200000LL,
                               253402300799999LL,
                               4102444800000LL,
                               -2208988800001LL};
    const int offsets[] = {0, 60, -330, 14 * 60, -(23 * 60 + 59), 345};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        cr_assert_eq(vb_time_format_utc(samples[i], true, buf, sizeof buf), 0);
        int64_t back = 0;
        cr_assert_eq(vb_time_parse(buf, &back), 0, "%s", buf);
        cr_assert_eq(back, samples[i], "%s", buf);
        for (size_t j = 0; j < sizeof offsets / sizeof offsets[0]; j++) {
            if (vb_time_format_offset(samples[i], offsets[j], true, buf, sizeof buf) != 0)
                continue; /* the local date falls outside 0000-9999 */
            cr_assert_eq(vb_time_parse(buf, &back), 0, "%s", buf);
            cr_assert_eq(back, samples[i], "%s", buf);
        }
    }
    /* every day of four years, at noon */
    for (int64_t day = 0; day < 4 * 366; day++) {
        int64_t t = day * 86400000LL + 43200000LL;
        cr_assert_eq(vb_time_format_utc(t, false, buf, sizeof buf), 0);
        int64_t back = 0;
        cr_assert_eq(vb_time_parse(buf, &back), 0, "%s", buf);
        cr_assert_eq(back, t, "%s", buf);
    }
}

Test(timefmt, local_offset_and_now)
{
    setenv("TZ", "UTC", 1);
    tzset();
    int off = 99;
    cr_assert_eq(vb_time_local_offset(1796031613000LL, &off), 0);
    cr_assert_eq(off, 0);
    setenv("TZ", "<+0530>-5:30", 1);
    tzset();
    cr_assert_eq(vb_time_local_offset(1796031613000LL, &off), 0);
    cr_assert_eq(off, 330);
    int64_t now = vb_time_now_ms();
    cr_assert_gt(now, 1700000000000LL, "now is after 2023");
}
