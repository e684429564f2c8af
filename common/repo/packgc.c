#include "repo/packgc.h"

#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "log.h"
#include "repo/idxobj.h"
#include "repo/lockrenew.h"
#include "repo/pack.h"
#include "repo/packquar.h"

enum { S_KEEP, S_REPACK, S_DELETE };

typedef struct {
    vb_pack_id_t id;
    char name[VB_PACK_NAME_LEN];
    vb_store_stat_t st;
    vb_pack_entry_t *ents;
    size_t n;
    uint8_t *copy; /* per entry: live and claimed by this pack */
    uint64_t live_bytes;
    int action;
} s_pack_t;

typedef struct {
    vb_digest_t digest;
    vb_pack_id_t pack;
} s_quar_t;

typedef struct {
    vb_store_t *store;
    s_pack_t *packs;
    size_t n, cap;
    char **old; /* index objects noted at the start */
    size_t nold, capold;
    s_quar_t *quar; /* copies verify quarantined (packquar.h) */
    size_t nquar, capquar;
    vb_packgc_stats_t *st;
} s_gc_t;

static int s_note_index(void *arg, const char *name, const vb_store_stat_t *s)
{
    (void)s;
    s_gc_t *g = arg;
    int rc = VB_GROW(g->old, g->nold, g->capold, 16, "index objects (gc)");
    if (rc)
        return rc;
    if (!(g->old[g->nold] = strdup(name)))
        return vb_error_set(VB_ENOMEM, "gc: out of memory");
    g->nold++;
    return 0;
}

static int s_note_pack(void *arg, const char *name, const vb_store_stat_t *s)
{
    s_gc_t *g = arg;
    vb_pack_id_t id;
    if (vb_pack_parse_name(name, &id) != 0) {
        vb_error_clear();
        return 0; /* not a pack */
    }
    int rc = VB_GROW(g->packs, g->n, g->cap, 64, "packs (gc)");
    if (rc)
        return rc;
    s_pack_t *p = &g->packs[g->n];
    memset(p, 0, sizeof *p);
    p->id = id;
    p->st = *s;
    vb_pack_name(&id, p->name);
    rc = vb_pack_read_trailer(g->store, &id, &p->ents, &p->n);
    if (rc == VB_ENOTFOUND) { /* removed since it was listed */
        vb_error_clear();
        return 0;
    }
    if (rc)
        return vb_error_prefix(rc,
                               "gc: pack %s is damaged (run vbak verify --repo); nothing "
                               "removed",
                               name);
    g->n++;
    if (!(p->copy = calloc(p->n ? p->n : 1, 1)))
        return vb_error_set(VB_ENOMEM, "gc: out of memory");
    return 0;
}

static int s_note_quarantined(void *arg, const vb_digest_t *digest, const vb_pack_id_t *pack,
                              const char *name, const vb_store_stat_t *st)
{
    (void)name;
    (void)st;
    s_gc_t *g = arg;
    int rc = VB_GROW(g->quar, g->nquar, g->capquar, 16, "quarantined chunks (gc)");
    if (rc)
        return rc;
    g->quar[g->nquar++] = (s_quar_t){*digest, *pack};
    return 0;
}

/* A copy verify quarantined is never live: neither kept for nor copied into a new pack. */
static bool s_quarantined(const s_gc_t *g, const s_pack_t *p, const vb_pack_entry_t *e)
{
    for (size_t i = 0; i < g->nquar; i++)
        if (memcmp(g->quar[i].pack.b, p->id.b, VB_PACK_ID_LEN) == 0 &&
            memcmp(g->quar[i].digest.b, e->digest.b, VB_DIGEST_LEN) == 0)
            return true;
    return false;
}

/* Recent packs first, so that a chunk they hold is not copied out of an older one. */
static int s_decide(s_gc_t *g, vb_packgc_claim_fn claim, void *arg, time_t cutoff, unsigned pct)
{
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < g->n; k++) {
            s_pack_t *p = &g->packs[k];
            bool recent = p->st.mtime >= cutoff;
            if (recent != (pass == 0))
                continue;
            for (size_t i = 0; i < p->n; i++) {
                int c = g->nquar && s_quarantined(g, p, &p->ents[i])
                            ? 0
                            : claim(arg, p->ents[i].digest.b);
                if (c < 0)
                    return c;
                p->copy[i] = (uint8_t)c;
                p->live_bytes += c ? p->ents[i].length : 0;
            }
            if (recent)
                p->action = S_KEEP;
            else if (p->live_bytes == 0)
                p->action = S_DELETE;
            else if (p->live_bytes * 100 < (uint64_t)pct * p->st.size)
                p->action = S_REPACK;
            else
                p->action = S_KEEP;
            g->st->packs_recent += recent;
        }
    return 0;
}

/* Copies the live chunks of one pack into the writer, with one read of the pack. */
static int s_copy_live(s_gc_t *g, const s_pack_t *p, vb_pack_writer_t *w)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = vb_store_get_alloc(g->store, p->name, VB_PACK_SIZE_MAX * 2u, &buf, &len);
    for (size_t i = 0; rc == 0 && i < p->n; i++) {
        const vb_pack_entry_t *e = &p->ents[i];
        if (!p->copy[i])
            continue;
        if (e->offset > len || e->length > len - e->offset)
            rc = vb_error_set(VB_ECORRUPT, "gc: pack %s is shorter than its trailer says", p->name);
        else
            rc =
                vb_pack_add(w, &e->digest, (const uint8_t *)buf + e->offset, e->length, e->raw_len);
    }
    free(buf);
    return rc;
}

/* Big collections write more than one index object, each well below VB_IDXOBJ_MAX. */
static int s_add_index(s_gc_t *g, vb_idxobj_t *obj, const s_pack_t *p)
{
    int rc = vb_idxobj_add_pack(obj, &p->id, p->ents, p->n);
    if (rc == 0 && vb_idxobj_packs(obj) >= 1024) {
        rc = vb_idxobj_write(obj, g->store, NULL);
        g->st->index_written += rc == 0;
    }
    return rc;
}

static int s_write_index(s_gc_t *g, vb_idxobj_t *obj)
{
    bool any = vb_idxobj_packs(obj) > 0;
    int rc = vb_idxobj_write(obj, g->store, NULL);
    g->st->index_written += rc == 0 && any;
    return rc;
}

/* New packs, then the index of what stays (kept and new packs). */
static int s_rewrite(s_gc_t *g, uint32_t pack_size, vb_idxobj_t *obj)
{
    vb_pack_writer_t *w = vb_pack_writer_new(g->store, pack_size, vb_idxobj_sealed, obj);
    if (!w)
        return vb_error_code();
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < g->n; k++)
        if (g->packs[k].action == S_REPACK)
            rc = s_copy_live(g, &g->packs[k], w);
    if (rc == 0)
        rc = vb_pack_seal(w);
    g->st->packs_written = vb_pack_writer_packs(w);
    uint64_t written = vb_pack_writer_bytes(w);
    g->st->bytes_freed -= written < g->st->bytes_freed ? written : g->st->bytes_freed;
    vb_pack_writer_destroy(&w);
    for (size_t k = 0; rc == 0 && k < g->n; k++)
        if (g->packs[k].action == S_KEEP)
            rc = s_add_index(g, obj, &g->packs[k]);
    return rc ? rc : s_write_index(g, obj);
}

/* A pack found used or locked when its removal came: kept after all, listed by the survivors'
 * index object (its new copies, when repacked, are not undone: a spare copy is harmless). */
static int s_keep(s_gc_t *g, const s_pack_t *p, vb_idxobj_t *survivors)
{
    g->st->packs_deleted -= p->action == S_DELETE;
    g->st->packs_rewritten -= p->action == S_REPACK;
    g->st->bytes_freed -= p->st.size < g->st->bytes_freed ? p->st.size : g->st->bytes_freed;
    return vb_idxobj_add_pack(survivors, &p->id, p->ents, p->n);
}

/* A pack Object Lock keeps: counted, with the earliest end of the locks. True when locked. */
static bool s_note_locked(s_gc_t *g, const s_pack_t *p)
{
    vb_store_stat_t st = {0};
    if (vb_store_stat(g->store, p->name, &st) != 0) {
        vb_error_clear(); /* gone or unreadable: the removal says */
        return false;
    }
    if (st.retain_until <= time(NULL))
        return false;
    g->st->packs_locked++;
    g->st->bytes_locked += p->st.size;
    if (!g->st->locked_until || st.retain_until < g->st->locked_until)
        g->st->locked_until = st.retain_until;
    return true;
}

/* Under Object Lock, a pack kept for its live chunks gets its lock renewed when it ends within
 * half the lock period (lockrenew.h: one request per pack, bounded per collection). Call before
 * s_spare_locked (whose spared packs are dead: their locks must end). */
static void s_extend_locks(s_gc_t *g, bool dry_run)
{
    vb_lockrenew_stats_t ls = {0};
    for (size_t k = 0; k < g->n; k++)
        if (g->packs[k].action == S_KEEP)
            vb_lockrenew_object(g->store, g->packs[k].name, g->packs[k].st.mtime, dry_run, &ls);
    g->st->locks_extended = ls.extended;
    g->st->locks_due = ls.due;
}

/* A pack to delete or repack that is still locked is kept whole (a repack would only add
 * copies of its live chunks while it cannot go): one stat per such pack. */
static void s_spare_locked(s_gc_t *g)
{
    for (size_t k = 0; k < g->n; k++)
        if (g->packs[k].action != S_KEEP && s_note_locked(g, &g->packs[k]))
            g->packs[k].action = S_KEEP;
}

/* The noted index objects go (hidden when locked), then the packs; a pack used since the cutoff
 * stays and is listed in one more index object. */
static int s_remove(s_gc_t *g, time_t cutoff, vb_idxobj_t *survivors)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < g->nold; i++)
        if ((rc = vb_store_remove_or_hide(g->store, g->old[i])) == VB_ENOTFOUND) {
            vb_error_clear();
            rc = 0;
        }
    for (size_t k = 0; rc == 0 && k < g->n; k++) {
        s_pack_t *p = &g->packs[k];
        if (p->action == S_KEEP)
            continue;
        rc = vb_store_remove(g->store, p->name, cutoff);
        if (rc == VB_EBUSY || rc == VB_EPOLICY) {
            vb_error_clear();
            if (rc == VB_EBUSY || !s_note_locked(g, p))
                g->st->packs_busy++;
            rc = s_keep(g, p, survivors);
        } else if (rc == VB_ENOTFOUND) {
            vb_error_clear();
            rc = 0;
        }
    }
    if (rc == 0)
        rc = s_write_index(g, survivors);
    return rc ? rc : vb_store_barrier(g->store);
}

static void s_count(s_gc_t *g)
{
    vb_packgc_stats_t *st = g->st;
    st->packs = g->n;
    st->index_before = g->nold;
    for (size_t k = 0; k < g->n; k++) {
        const s_pack_t *p = &g->packs[k];
        if (p->action == S_KEEP)
            continue;
        st->packs_deleted += p->action == S_DELETE;
        st->packs_rewritten += p->action == S_REPACK;
        st->bytes_freed += p->st.size;
        for (size_t i = 0; i < p->n; i++)
            st->chunks_dropped += !p->copy[i];
        if (p->action == S_REPACK) /* what a dry run expects the copy to cost */
            st->bytes_freed -= p->live_bytes < st->bytes_freed ? p->live_bytes : st->bytes_freed;
    }
}

int vb_packgc_run(vb_store_t *store, uint32_t pack_size, vb_packgc_claim_fn claim, void *arg,
                  time_t cutoff, unsigned repack_below_pct, bool dry_run, vb_packgc_stats_t *out)
{
    vb_packgc_stats_t st = {0};
    s_gc_t g = {.store = store, .st = &st};
    vb_idxobj_t *obj = vb_idxobj_new(), *survivors = vb_idxobj_new();
    int rc = obj && survivors ? 0 : VB_ENOMEM;
    if (rc == 0)
        rc = vb_store_list(store, "index/", s_note_index, &g);
    if (rc == 0)
        rc = vb_store_list(store, "packs/", s_note_pack, &g);
    if (rc == 0)
        rc = vb_packquar_list(store, s_note_quarantined, &g);
    if (rc == 0)
        rc = s_decide(&g, claim, arg, cutoff, repack_below_pct > 100 ? 100 : repack_below_pct);
    if (rc)
        goto out;
    s_extend_locks(&g, dry_run);
    s_spare_locked(&g);
    s_count(&g);
    bool work = st.packs_deleted || st.packs_rewritten || g.nold > 1;
    if (dry_run || !work)
        goto out;
    if (st.packs_rewritten) /* the estimate; s_rewrite counts what the new packs really take */
        for (size_t k = 0; k < g.n; k++)
            if (g.packs[k].action == S_REPACK)
                st.bytes_freed += g.packs[k].live_bytes;
    if ((rc = s_rewrite(&g, pack_size, obj)) == 0)
        rc = s_remove(&g, cutoff, survivors);
    VB_LOG_INFO("gc",
                "packs repo=%s packs=%llu deleted=%llu rewritten=%llu written=%llu "
                "busy=%llu locked=%llu locked_until=%lld locks_extended=%llu locks_due=%llu "
                "bytes_freed=%llu index_before=%llu index_written=%llu",
                vb_store_location(store), (unsigned long long)st.packs,
                (unsigned long long)st.packs_deleted, (unsigned long long)st.packs_rewritten,
                (unsigned long long)st.packs_written, (unsigned long long)st.packs_busy,
                (unsigned long long)st.packs_locked, (long long)st.locked_until,
                (unsigned long long)st.locks_extended, (unsigned long long)st.locks_due,
                (unsigned long long)st.bytes_freed, (unsigned long long)st.index_before,
                (unsigned long long)st.index_written);
out:
    for (size_t k = 0; k < g.n; k++) {
        free(g.packs[k].ents);
        free(g.packs[k].copy);
    }
    free(g.packs);
    for (size_t i = 0; i < g.nold; i++)
        free(g.old[i]);
    free(g.old);
    free(g.quar);
    vb_idxobj_destroy(&obj);
    vb_idxobj_destroy(&survivors);
    if (out)
        *out = st;
    return rc;
}
