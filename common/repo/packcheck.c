#include "repo/packcheck.h"

#include <stdlib.h>

#include "repo/chunkidx.h"
#include "repo/idxobj.h"
#include "repo/pack.h"

typedef struct {
    vb_store_t *store;
    vb_packcheck_bad_fn bad;
    void *arg;
    vb_packcheck_stats_t *st;
} s_check_t;

/* A damaged object is reported; only what stops the whole check (memory) is returned. */
static int s_verdict(s_check_t *c, const char *name, int rc)
{
    if (rc == 0 || rc == VB_ENOTFOUND) { /* gone since it was listed: a GC removed it */
        vb_error_clear();
        return 0;
    }
    if (rc == VB_ENOMEM)
        return rc;
    c->st->bad++;
    c->bad(c->arg, name, vb_error_msg());
    vb_error_clear();
    return 0;
}

static int s_check_index(void *arg, const char *name, const vb_store_stat_t *s)
{
    (void)s;
    s_check_t *c = arg;
    vb_chunkidx_t *ci = vb_chunkidx_new();
    if (!ci)
        return vb_error_code();
    int rc = vb_idxobj_load_one(c->store, name, ci);
    vb_chunkidx_destroy(&ci);
    c->st->index_objects += rc == 0;
    return s_verdict(c, name, rc);
}

static int s_check_pack(void *arg, const char *name, const vb_store_stat_t *s)
{
    (void)s;
    s_check_t *c = arg;
    vb_pack_id_t id;
    vb_pack_entry_t *ents = NULL;
    size_t n = 0;
    int rc = vb_pack_parse_name(name, &id);
    if (rc)
        rc = vb_error_set(VB_ECORRUPT, "not a pack name");
    else
        rc = vb_pack_read_trailer(c->store, &id, &ents, &n);
    free(ents);
    c->st->packs += rc == 0;
    c->st->chunks += rc == 0 ? n : 0;
    return s_verdict(c, name, rc);
}

int vb_packcheck_run(vb_store_t *store, vb_packcheck_bad_fn bad, void *arg,
                     vb_packcheck_stats_t *out)
{
    vb_packcheck_stats_t st = {0};
    s_check_t c = {.store = store, .bad = bad, .arg = arg, .st = &st};
    int rc = vb_store_list(store, "index/", s_check_index, &c);
    if (rc == 0)
        rc = vb_store_list(store, "packs/", s_check_pack, &c);
    if (out)
        *out = st;
    return rc;
}
