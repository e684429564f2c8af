/* retention — which restore points a policy keeps (a pure function; the catalog applies it).
 *
 * Rules, per VM, over its complete restore points sorted newest first (like the keep-* options of
 * other backup tools): keep_last N keeps the N newest; keep_daily N keeps the newest of each of
 * the N most recent UTC days that have one; keep_weekly likewise per ISO week, keep_monthly per
 * calendar month. A restore point kept by any rule is kept. The newest complete restore point of
 * every VM is always kept, whatever the policy. Incomplete restore points (a job still running)
 * are never selected for removal and count for no rule.
 *
 * Indexes are self-contained (an incremental's index holds every digest), so removing a restore
 * point never breaks a later one: there is no chain to respect. */
#ifndef VB_RETENTION_H
#define VB_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct {
    const char *id;   /* borrowed; used to order equal times */
    const char *vm;   /* borrowed */
    int64_t time;     /* Unix seconds */
    bool complete;
} vb_rp_info_t;

typedef struct {
    unsigned keep_last;
    unsigned keep_daily;
    unsigned keep_weekly;
    unsigned keep_monthly;
} vb_retention_policy_t;

/* Reasons a restore point is kept (bit mask; 0 = remove). */
enum {
    VB_KEEP_LAST = 1u << 0,
    VB_KEEP_DAILY = 1u << 1,
    VB_KEEP_WEEKLY = 1u << 2,
    VB_KEEP_MONTHLY = 1u << 3,
    VB_KEEP_LATEST = 1u << 4,     /* newest complete one of its VM */
    VB_KEEP_INCOMPLETE = 1u << 5, /* still running */
    VB_KEEP_IN_USE = 1u << 6,     /* a running job uses it (set by prune, not by the policy) */
};

/* Fills reasons_out[i] for each of the n restore points (any order). Returns 0, VB_EINVAL when
 * the policy has no rule at all (refusing to prune everything but the newest by accident), or
 * VB_ENOMEM. */
int vb_retention_select(const vb_retention_policy_t *policy, const vb_rp_info_t *rps, size_t n,
                        unsigned *reasons_out) VB_WUR;

/* "last,daily", "latest", ... or "remove"; writes into buf (size sz) and returns it. */
const char *vb_retention_reason_text(unsigned reasons, char *buf, size_t sz);

#endif
