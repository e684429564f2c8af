#include "repo/gc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "repo/index.h"
#include "repo/lockrenew.h"
#include "repo/manifest.h"
#include "repo/packgc.h"

/* Open-addressing set of digests; the zero digest marks an empty slot (never inserted). */
typedef struct {
    vb_digest_t *slots;
    size_t cap; /* power of two */
    size_t count;
} s_set_t;

static size_t s_hash(const vb_digest_t *d)
{
    size_t h;
    memcpy(&h, d->b, sizeof h); /* digests are uniformly distributed already */
    return h;
}

static int s_set_grow(s_set_t *set)
{
    size_t ncap = set->cap ? set->cap * 2 : 1024;
    vb_digest_t *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return vb_error_set(VB_ENOMEM, "gc: out of memory for the mark set");
    for (size_t i = 0; i < set->cap; i++) {
        if (vb_digest_is_zero(&set->slots[i]))
            continue;
        size_t j = s_hash(&set->slots[i]) & (ncap - 1);
        while (!vb_digest_is_zero(&ns[j]))
            j = (j + 1) & (ncap - 1);
        ns[j] = set->slots[i];
    }
    free(set->slots);
    set->slots = ns;
    set->cap = ncap;
    return 0;
}

static int s_set_add(s_set_t *set, const vb_digest_t *d)
{
    if ((set->count + 1) * 2 > set->cap) {
        int rc = s_set_grow(set);
        if (rc)
            return rc;
    }
    size_t j = s_hash(d) & (set->cap - 1);
    while (!vb_digest_is_zero(&set->slots[j])) {
        if (memcmp(set->slots[j].b, d->b, VB_DIGEST_LEN) == 0)
            return 0;
        j = (j + 1) & (set->cap - 1);
    }
    set->slots[j] = *d;
    set->count++;
    return 0;
}

static bool s_set_has(const s_set_t *set, const vb_digest_t *d)
{
    if (!set->cap)
        return false;
    size_t j = s_hash(d) & (set->cap - 1);
    while (!vb_digest_is_zero(&set->slots[j])) {
        if (memcmp(set->slots[j].b, d->b, VB_DIGEST_LEN) == 0)
            return true;
        j = (j + 1) & (set->cap - 1);
    }
    return false;
}

static bool s_in(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] && strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* Whether GC marks from index *name: not when it is dropped (dry run of prune), nor when no
 * restore point owns it and it was written before the oldest running job started (left by a
 * backup that failed before its commit): then its name moves into owners->orphans. */
static int s_skip_index(vb_repo_t *repo, vb_gc_owners_t *owners, char **name, time_t cutoff,
                        bool *skip)
{
    vb_store_stat_t st;
    *skip = false;
    if (!owners)
        return 0;
    if (s_in(owners->dropped, owners->dropped_count, *name)) {
        *skip = true; /* as good as gone: keeps nothing alive */
        return 0;
    }
    if (s_in(owners->owned, owners->owned_count, *name))
        return 0;
    if (vb_index_stat(repo, *name, &st) != 0 || st.mtime >= cutoff) {
        vb_error_clear();
        return 0; /* gone, or maybe a running job's: mark from it if it is there */
    }
    char **grown = realloc(owners->orphans, (owners->orphan_count + 1) * sizeof *grown);
    if (!grown)
        return vb_error_set(VB_ENOMEM, "gc: out of memory");
    owners->orphans = grown;
    owners->orphans[owners->orphan_count++] = *name;
    *name = NULL;
    *skip = true;
    VB_LOG_WARN("gc", "orphan_index repo=%s index=%s (no restore point owns it: ignored)",
                vb_repo_path(repo), owners->orphans[owners->orphan_count - 1]);
    return 0;
}

static int s_mark(vb_repo_t *repo, vb_gc_owners_t *owners, time_t cutoff, s_set_t *set)
{
    char **names = NULL;
    size_t n = 0;
    int rc = vb_index_list(repo, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool skip = false;
        if ((rc = s_skip_index(repo, owners, &names[i], cutoff, &skip)) != 0 || skip)
            continue;
        vb_index_t *idx = NULL;
        if ((rc = vb_index_read(repo, names[i], &idx)) != 0) {
            rc = vb_error_prefix(rc, "gc: cannot mark from index %s; nothing swept", names[i]);
            break;
        }
        for (uint64_t c = 0; rc == 0 && c < idx->count; c++)
            if (!vb_digest_is_zero(&idx->digests[c]))
                rc = s_set_add(set, &idx->digests[c]);
        vb_index_destroy(&idx);
    }
    vb_index_list_free(names, n);
    return rc;
}

typedef struct {
    vb_repo_t *repo;
    const s_set_t *set;
    time_t cutoff;
    bool dry_run;
    vb_gc_stats_t *st;
} s_sweep_t;

/* One stored chunk: kept when marked or recent; else removed, unless the store finds it was
 * used meanwhile (a writer freshens a chunk it finds existing) and keeps it. */
static int s_sweep_one(void *arg, const vb_digest_t *d, const vb_store_stat_t *s)
{
    s_sweep_t *w = arg;
    if (s_set_has(w->set, d))
        return 0;
    if (s->mtime >= w->cutoff) {
        w->st->kept_recent++;
        return 0;
    }
    int rc = w->dry_run ? 0 : vb_repo_chunk_remove(w->repo, d, w->cutoff);
    if (rc == 0) {
        w->st->swept++;
        w->st->swept_bytes += s->size;
    } else if (rc == VB_EBUSY) {
        w->st->kept_recent++;
    }
    if (rc == VB_EBUSY || rc == VB_ENOTFOUND) {
        vb_error_clear();
        return 0;
    }
    return rc;
}

int vb_repo_gc(vb_repo_t *self, time_t cutoff, bool dry_run, vb_gc_stats_t *out)
{
    return vb_repo_gc_owned(self, NULL, cutoff, dry_run, out);
}

/* Format 2: a chunk is live in the first pack that claims it (packgc.h). */
typedef struct {
    const s_set_t *live;
    s_set_t claimed;
} s_claim_t;

static int s_claim(void *arg, const void *digest32)
{
    s_claim_t *c = arg;
    vb_digest_t d;
    memcpy(d.b, digest32, VB_DIGEST_LEN);
    if (!s_set_has(c->live, &d) || s_set_has(&c->claimed, &d))
        return 0;
    int rc = s_set_add(&c->claimed, &d);
    return rc ? rc : 1;
}

static int s_sweep_packs(vb_repo_t *self, const s_set_t *set, time_t cutoff, unsigned pct,
                         bool dry_run, vb_gc_stats_t *st)
{
    s_claim_t c = {.live = set};
    int rc = vb_packgc_run(vb_repo_store(self), vb_repo_pack_size(self), s_claim, &c, cutoff, pct,
                           dry_run, &st->packs);
    free(c.claimed.slots);
    st->swept = st->packs.chunks_dropped;
    st->swept_bytes = st->packs.bytes_freed;
    return rc;
}

/* Under Object Lock, the disk indexes and manifests restore points need are renewed as their
 * packs are, with a share of the per-collection bound of their own (lockrenew.h: packs cannot
 * starve them), and counted with them. */
static int s_renew_metadata(vb_repo_t *self, bool dry_run, vb_gc_stats_t *st)
{
    static const char *const prefixes[] = {"indexes/", VB_MANIFEST_PREFIX};
    vb_lockrenew_stats_t ls = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof prefixes / sizeof prefixes[0]; i++)
        rc = vb_lockrenew_prefix(vb_repo_store(self), prefixes[i], dry_run, &ls);
    st->packs.locks_extended += ls.extended;
    st->packs.locks_due += ls.due;
    return rc;
}

int vb_repo_gc_owned(vb_repo_t *self, vb_gc_owners_t *owners, time_t cutoff, bool dry_run,
                     vb_gc_stats_t *out)
{
    return vb_repo_gc_ex(self, owners, cutoff, VB_PACKGC_REPACK_DEFAULT, dry_run, out);
}

int vb_repo_gc_ex(vb_repo_t *self, vb_gc_owners_t *owners, time_t cutoff,
                  unsigned repack_below_pct, bool dry_run, vb_gc_stats_t *out)
{
    s_set_t set = {0};
    vb_gc_stats_t st = {0};
    /* with the chunk index hidden by delete markers the listings miss what restore points use:
     * refused, dry run too, until `vbak repo undelete` (vb_repo_writable says so) */
    int rc = vb_repo_writable(self);
    if (rc == 0)
        rc = s_mark(self, owners, cutoff, &set);
    st.orphan_indexes = owners ? owners->orphan_count : 0;
    if (rc)
        goto out;
    st.marked = set.count;
    /* Leftovers first: a chunk an interrupted collection set aside is put back before the sweep
     * looks at it. */
    if ((rc = vb_store_cleanup(vb_repo_store(self), cutoff, dry_run, &st.temp_removed)) != 0)
        goto out;
    if (vb_repo_format(self) == VB_REPO_FORMAT_PACKED) {
        rc = s_sweep_packs(self, &set, cutoff, repack_below_pct, dry_run, &st);
        if (rc == 0)
            rc = s_renew_metadata(self, dry_run, &st);
    } else {
        s_sweep_t w = {.repo = self, .set = &set, .cutoff = cutoff, .dry_run = dry_run,
                       .st = &st};
        rc = vb_repo_chunk_foreach(self, s_sweep_one, &w);
    }
    if (rc)
        goto out;
    time_t before = time(NULL) - (time_t)VB_GC_QUARANTINE_DAYS * 86400;
    rc = vb_repo_quarantine_expire(self, before, dry_run, &st.quarantine_removed);
    VB_LOG_INFO("gc", "done repo=%s marked=%llu swept=%llu bytes=%llu kept_recent=%llu dry_run=%d",
                vb_repo_path(self), (unsigned long long)st.marked, (unsigned long long)st.swept,
                (unsigned long long)st.swept_bytes, (unsigned long long)st.kept_recent, dry_run);
out:
    free(set.slots);
    if (out)
        *out = st;
    return rc;
}
