#include "timefmt.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define MS_PER_DAY 86400000LL

static bool s_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int s_days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && s_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date, counted in 400-year eras of 146097 days
 * with the year starting in March so that the leap day falls at the end. */
static int64_t s_days_from_date(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                         /* 0..399 */
    int64_t mp = (m + 9) % 12;                           /* March = 0 */
    int64_t doy = (153 * mp + 2) / 5 + d - 1;            /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; /* 0..146096 */
    return era * 146097 + doe - 719468;                  /* 719468: 0000-03-01 to 1970-01-01 */
}

static void s_date_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t s_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Writes unix_ms shifted by offset_minutes; the zone is "Z" when z, else "+HH:MM". */
static int s_format(int64_t unix_ms, int offset_minutes, bool z, bool with_ms, char *buf,
                    size_t size)
{
    if (offset_minutes < -(23 * 60 + 59) || offset_minutes > 23 * 60 + 59)
        return vb_error_set(VB_EINVAL, "UTC offset of %d minutes is out of range", offset_minutes);
    /* Far outside years 0000-9999: refuse before the arithmetic could overflow. */
    if (unix_ms < -62300000000000LL || unix_ms > 253500000000000LL)
        return vb_error_set(VB_EINVAL, "time %lld ms is outside years 0000-9999",
                            (long long)unix_ms);
    int64_t local = unix_ms + (int64_t)offset_minutes * 60000;
    int64_t days = s_floor_div(local, MS_PER_DAY);
    int64_t in_day = local - days * MS_PER_DAY;
    int64_t y;
    int m, d;
    s_date_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return vb_error_set(VB_EINVAL, "time %lld ms is outside years 0000-9999",
                            (long long)unix_ms);
    int hh = (int)(in_day / 3600000), mm = (int)(in_day / 60000 % 60);
    int ss = (int)(in_day / 1000 % 60), ms = (int)(in_day % 1000);
    char frac[8] = "", zone[8] = "Z";
    if (with_ms)
        snprintf(frac, sizeof frac, ".%03d", ms);
    if (!z) {
        int off = offset_minutes < 0 ? -offset_minutes : offset_minutes;
        snprintf(zone, sizeof zone, "%c%02d:%02d", offset_minutes < 0 ? '-' : '+', off / 60,
                 off % 60);
    }
    int n = snprintf(buf, size, "%04lld-%02d-%02dT%02d:%02d:%02d%s%s", (long long)y, m, d, hh, mm,
                     ss, frac, zone);
    if (n < 0 || (size_t)n >= size)
        return vb_error_set(VB_EINVAL, "a buffer of %zu bytes is too small for a time", size);
    return 0;
}

int vb_time_format_utc(int64_t unix_ms, bool with_ms, char *buf, size_t size)
{
    return s_format(unix_ms, 0, true, with_ms, buf, size);
}

int vb_time_format_offset(int64_t unix_ms, int offset_minutes, bool with_ms, char *buf, size_t size)
{
    return s_format(unix_ms, offset_minutes, false, with_ms, buf, size);
}

/* ---- parsing ---- */

typedef struct {
    const char *text; /* the whole input, for messages */
    const char *p;    /* cursor */
} s_cursor_t;

static bool s_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Exactly n digits into *out; false when they are not there. */
static bool s_digits(s_cursor_t *c, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!s_digit(c->p[i]))
            return false;
        v = v * 10 + (c->p[i] - '0');
    }
    c->p += n;
    *out = v;
    return true;
}

static int s_bad(const s_cursor_t *c, const char *what)
{
    return vb_error_set(VB_EINVAL,
                        "'%s' is not an ISO 8601 time (%s; expected e.g. 2026-11-30T09:40:13Z "
                        "or 2026-11-30T10:40:13+01:00)",
                        c->text, what);
}

static int s_parse_date(s_cursor_t *c, int *y, int *m, int *d)
{
    if (!s_digits(c, 4, y) || *c->p++ != '-' || !s_digits(c, 2, m) || *c->p++ != '-' ||
        !s_digits(c, 2, d))
        return s_bad(c, "the date must be YYYY-MM-DD");
    if (*m < 1 || *m > 12)
        return vb_error_set(VB_EINVAL, "'%s': month %d is out of range", c->text, *m);
    if (*d < 1 || *d > s_days_in_month(*y, *m))
        return vb_error_set(VB_EINVAL, "'%s': %04d-%02d has no day %d", c->text, *y, *m, *d);
    return 0;
}

/* HH:MM[:SS[.fraction]] into milliseconds of the day. */
static int s_parse_clock(s_cursor_t *c, int64_t *ms_of_day)
{
    int hh = 0, mm = 0, ss = 0, ms = 0;
    if (!s_digits(c, 2, &hh) || *c->p++ != ':' || !s_digits(c, 2, &mm))
        return s_bad(c, "the time of day must be HH:MM or HH:MM:SS");
    if (*c->p == ':') {
        c->p++;
        if (!s_digits(c, 2, &ss))
            return s_bad(c, "seconds must be two digits");
        if (*c->p == '.' || *c->p == ',') {
            c->p++;
            int n = 0;
            for (; s_digit(*c->p); c->p++, n++)
                if (n < 3)
                    ms = ms * 10 + (*c->p - '0');
            if (n == 0 || n > 9)
                return s_bad(c, "a fraction of a second needs 1 to 9 digits");
            for (; n < 3; n++)
                ms *= 10;
        }
    }
    if (hh > 23 || mm > 59 || ss > 59)
        return vb_error_set(VB_EINVAL, "'%s': %02d:%02d:%02d is not a time of day", c->text, hh, mm,
                            ss);
    *ms_of_day = ((int64_t)hh * 3600 + mm * 60 + ss) * 1000 + ms;
    return 0;
}

/* Z, or +HH[:MM] / -HH[MM]; nothing at all means UTC. */
static int s_parse_zone(s_cursor_t *c, int *offset_minutes)
{
    *offset_minutes = 0;
    if (*c->p == 'Z' || *c->p == 'z') {
        c->p++;
        return 0;
    }
    if (*c->p != '+' && *c->p != '-')
        return 0;
    int sign = *c->p++ == '-' ? -1 : 1, hh = 0, mm = 0;
    if (!s_digits(c, 2, &hh))
        return s_bad(c, "an offset must be +HH:MM, +HHMM or +HH");
    if (*c->p == ':') {
        c->p++;
        if (!s_digits(c, 2, &mm))
            return s_bad(c, "an offset must be +HH:MM, +HHMM or +HH");
    } else if (s_digit(*c->p) && !s_digits(c, 2, &mm)) {
        return s_bad(c, "an offset must be +HH:MM, +HHMM or +HH");
    }
    if (hh > 23 || mm > 59)
        return vb_error_set(VB_EINVAL, "'%s': UTC offset %02d:%02d is out of range", c->text, hh,
                            mm);
    *offset_minutes = sign * (hh * 60 + mm);
    return 0;
}

int vb_time_parse(const char *text, int64_t *unix_ms_out)
{
    if (!text)
        return vb_error_set(VB_EINVAL, "no time given");
    s_cursor_t c = {.text = text, .p = text};
    int y = 0, m = 0, d = 0, offset = 0;
    int64_t ms_of_day = 0;
    int rc = s_parse_date(&c, &y, &m, &d);
    if (rc)
        return rc;
    if (*c.p == 'T' || *c.p == 't' || (*c.p == ' ' && s_digit(c.p[1]))) {
        c.p++;
        if ((rc = s_parse_clock(&c, &ms_of_day)) != 0 || (rc = s_parse_zone(&c, &offset)) != 0)
            return rc;
    }
    if (*c.p != '\0')
        return s_bad(&c, "unexpected characters after the time");
    *unix_ms_out = s_days_from_date(y, m, d) * MS_PER_DAY + ms_of_day - (int64_t)offset * 60000;
    return 0;
}

int vb_time_local_offset(int64_t unix_ms, int *offset_minutes_out)
{
    time_t t = (time_t)s_floor_div(unix_ms, 1000);
    struct tm tm;
    tzset(); /* localtime_r need not read TZ itself */
    if (!localtime_r(&t, &tm))
        return vb_error_set(VB_EINVAL, "time %lld ms has no local time", (long long)unix_ms);
    *offset_minutes_out = (int)(tm.tm_gmtoff / 60);
    return 0;
}

int64_t vb_time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
