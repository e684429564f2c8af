#include "repo/undelete.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grow.h"
#include "log.h"

typedef struct {
    vb_undelete_stats_t *st;
    time_t now;
    char **names; /* hidden objects to bring back */
    size_t n, cap;
} s_undelete_t;

static bool s_under(const char *name, const char *prefix)
{
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

static int s_note_hidden(void *arg, const char *name, const vb_store_stat_t *st)
{
    s_undelete_t *u = arg;
    if (st->retain_until <= u->now) {
        u->st->expired++; /* unlocked: vbak's own removal left it, or the lock ended */
        return 0;
    }
    if (s_under(name, "index/")) {
        u->st->index_objects++; /* the chunk index comes from the packs instead */
        return 0;
    }
    int rc = VB_GROW(u->names, u->n, u->cap, 64, "hidden objects");
    if (rc == 0 && !(u->names[u->n] = strdup(name)))
        rc = vb_error_set(VB_ENOMEM, "out of memory");
    if (rc)
        return rc;
    u->n++;
    u->st->brought_back++;
    u->st->bytes += st->size;
    u->st->packs += s_under(name, "packs/");
    u->st->indexes += s_under(name, "indexes/");
    u->st->manifests += s_under(name, "manifests/");
    u->st->other +=
        !s_under(name, "packs/") && !s_under(name, "indexes/") && !s_under(name, "manifests/");
    return 0;
}

static int s_bring_back(vb_store_t *store, const s_undelete_t *u)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < u->n; i++) {
        rc = vb_store_unhide(store, u->names[i]);
        if (rc == VB_ENOTFOUND) { /* brought back meanwhile */
            vb_error_clear();
            rc = 0;
        }
        if (rc == 0)
            VB_LOG_INFO("repo", "undelete object=%s", u->names[i]);
    }
    return rc;
}

int vb_undelete_run(vb_store_t *store, bool dry_run, vb_undelete_stats_t *out)
{
    vb_undelete_stats_t st = {0};
    s_undelete_t u = {.st = &st, .now = time(NULL)};
    int rc = vb_store_list_hidden(store, "", s_note_hidden, &u);
    if (rc == 0 && !dry_run)
        rc = s_bring_back(store, &u);
    if (rc == 0)
        rc =
            vb_idxobj_unindexed_packs(store, u.now - VB_UNDELETE_GRACE_S, &st.unindexed, &st.young);
    if (rc == 0 && st.young)
        VB_LOG_INFO("repo",
                    "undelete young_packs=%llu (written within %d s and in no index object: a "
                    "backup still writing them; not a reason to rebuild the chunk index)",
                    (unsigned long long)st.young, VB_UNDELETE_GRACE_S);
    st.index_rebuilt = rc == 0 && st.unindexed > 0;
    if (st.index_rebuilt && !dry_run)
        rc = vb_idxobj_repair(store, &st.repair);
    for (size_t i = 0; i < u.n; i++)
        free(u.names[i]);
    free(u.names);
    *out = st;
    return rc;
}
