#include "repo/lockrenew.h"

#include <stdlib.h>

#include "log.h"

uint64_t vb_lockrenew_max(void)
{
    const char *v = getenv("VBAK_TEST_LOCKRENEW_MAX");
    char *end = NULL;
    unsigned long long n = v ? strtoull(v, &end, 10) : 0;
    return v && end != v && *end == '\0' && n >= 1 && n <= VB_LOCKRENEW_MAX ? n : VB_LOCKRENEW_MAX;
}

void vb_lockrenew_object(vb_store_t *store, const char *name, time_t mtime, bool dry_run,
                         vb_lockrenew_stats_t *st)
{
    const vb_store_lock_t *lock = vb_store_lock(store);
    time_t now = time(NULL), margin = (time_t)(lock->seconds / 2);
    vb_store_stat_t ss = {0};
    if (lock->seconds <= 0 || mtime + lock->seconds >= now + margin)
        return; /* no lock, or written or freshened within the last half period */
    if (st->extended >= vb_lockrenew_max()) {
        st->due++; /* no request: the next collection asks */
        return;
    }
    int rc = vb_store_stat(store, name, &ss);
    if (rc == VB_ENOTFOUND || (rc == 0 && ss.retain_until >= now + margin)) {
        vb_error_clear(); /* gone: nothing to keep; extended already by an earlier run */
        return;
    }
    if (rc != 0) {
        VB_LOG_WARN("gc", "lock_check_failed object=%s error=\"%s\"", name, vb_error_msg());
        st->due++;
    } else if (dry_run || vb_store_extend_lock(store, name) == 0) {
        st->extended++;
    } else {
        VB_LOG_WARN("gc", "lock_extend_failed object=%s error=\"%s\"", name, vb_error_msg());
        st->due++;
    }
}

typedef struct {
    vb_store_t *store;
    bool dry_run;
    vb_lockrenew_stats_t *st;
} s_renew_t;

static int s_renew_listed(void *arg, const char *name, const vb_store_stat_t *s)
{
    s_renew_t *r = arg;
    vb_lockrenew_object(r->store, name, s->mtime, r->dry_run, r->st);
    return 0;
}

int vb_lockrenew_prefix(vb_store_t *store, const char *prefix, bool dry_run,
                        vb_lockrenew_stats_t *st)
{
    s_renew_t r = {store, dry_run, st};
    if (vb_store_lock(store)->seconds <= 0)
        return 0;
    return vb_store_list(store, prefix, s_renew_listed, &r);
}
