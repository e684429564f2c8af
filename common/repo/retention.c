#include "repo/retention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Newest first; equal times by id (descending) so the result does not depend on input order. */
static int s_newest_first(const vb_rp_info_t *a, const vb_rp_info_t *b)
{
    if (a->time != b->time)
        return a->time > b->time ? -1 : 1;
    return -strcmp(a->id ? a->id : "", b->id ? b->id : "");
}

static int s_cmp(const void *x, const void *y, void *ctx)
{
    const vb_rp_info_t *base = ctx;
    const vb_rp_info_t *a = &base[*(const size_t *)x], *b = &base[*(const size_t *)y];
    int c = strcmp(a->vm ? a->vm : "", b->vm ? b->vm : "");
    return c ? c : s_newest_first(a, b);
}

/* Period keys: UTC day, ISO week, calendar month. */
static int64_t s_period(int64_t t, int kind)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    if (kind == 0)
        return (int64_t)(tm.tm_year + 1900) * 1000 + tm.tm_yday;
    if (kind == 1) {
        char buf[16];
        strftime(buf, sizeof buf, "%G%V", &tm);
        return strtoll(buf, NULL, 10);
    }
    return (int64_t)(tm.tm_year + 1900) * 100 + tm.tm_mon;
}

/* Applies one periodic rule to one VM's complete restore points (newest first). */
static void s_periodic(const vb_rp_info_t *rps, const size_t *idx, size_t n, unsigned keep,
                       int kind, unsigned bit, unsigned *reasons)
{
    unsigned kept = 0;
    int64_t last = INT64_MIN;
    for (size_t i = 0; i < n && kept < keep; i++) {
        int64_t p = s_period(rps[idx[i]].time, kind);
        if (p == last)
            continue;
        last = p;
        reasons[idx[i]] |= bit;
        kept++;
    }
}

int vb_retention_select(const vb_retention_policy_t *policy, const vb_rp_info_t *rps, size_t n,
                        unsigned *reasons_out)
{
    if (!policy->keep_last && !policy->keep_daily && !policy->keep_weekly &&
        !policy->keep_monthly)
        return vb_error_set(VB_EINVAL, "retention: no keep rule given (--keep-last, "
                                       "--keep-daily, --keep-weekly or --keep-monthly)");
    memset(reasons_out, 0, n * sizeof *reasons_out);
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    size_t *complete = malloc((n ? n : 1) * sizeof *complete);
    if (!order || !complete) {
        free(order);
        free(complete);
        return vb_error_set(VB_ENOMEM, "retention: out of memory");
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (rps[i].complete)
            order[m++] = i;
        else
            reasons_out[i] |= VB_KEEP_INCOMPLETE;
    }
    qsort_r(order, m, sizeof *order, s_cmp, (void *)rps);
    for (size_t start = 0; start < m;) {
        size_t end = start, k = 0;
        while (end < m && strcmp(rps[order[end]].vm ? rps[order[end]].vm : "",
                                 rps[order[start]].vm ? rps[order[start]].vm : "") == 0)
            complete[k++] = order[end++];
        reasons_out[complete[0]] |= VB_KEEP_LATEST;
        for (size_t i = 0; i < k && i < policy->keep_last; i++)
            reasons_out[complete[i]] |= VB_KEEP_LAST;
        s_periodic(rps, complete, k, policy->keep_daily, 0, VB_KEEP_DAILY, reasons_out);
        s_periodic(rps, complete, k, policy->keep_weekly, 1, VB_KEEP_WEEKLY, reasons_out);
        s_periodic(rps, complete, k, policy->keep_monthly, 2, VB_KEEP_MONTHLY, reasons_out);
        start = end;
    }
    free(order);
    free(complete);
    return 0;
}

const char *vb_retention_reason_text(unsigned reasons, char *buf, size_t sz)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{VB_KEEP_LAST, "last"},       {VB_KEEP_DAILY, "daily"},
                 {VB_KEEP_WEEKLY, "weekly"},   {VB_KEEP_MONTHLY, "monthly"},
                 {VB_KEEP_LATEST, "latest"},   {VB_KEEP_INCOMPLETE, "running"},
                 {VB_KEEP_IN_USE, "in-use"}};
    size_t len = 0;
    if (sz)
        buf[0] = '\0';
    if (!reasons) {
        snprintf(buf, sz, "remove");
        return buf;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(reasons & names[i].bit))
            continue;
        int w = snprintf(buf + len, sz > len ? sz - len : 0, "%s%s", len ? "," : "",
                         names[i].name);
        if (w > 0)
            len += (size_t)w;
        if (len >= sz)
            break;
    }
    return buf;
}
