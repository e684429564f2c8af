#include "repo/packed.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grow.h"
#include "repo/chunkidx.h"
#include "repo/idxobj.h"
#include "repo/pack.h"
#include "repo/packquar.h"
#include "repo/packup.h"

#define S_TOUCHED_MAX 64

typedef struct {
    vb_pack_id_t id;
    uint64_t seq; /* the seal's number (1, 2, ...): a commit that covers seq lists it */
} s_sealed_t;

struct vb_packed {
    vb_store_t *store;
    uint32_t pack_size;
    pthread_mutex_t lock; /* guards index, pending, sealed and the commit state */
    vb_chunkidx_t *index;
    vb_idxobj_t *pending; /* packs sealed by this process, not yet taken by a commit */
    bool hidden;          /* the index was read from index objects hidden by delete markers */
    s_sealed_t *sealed;   /* sealed, in no written index object yet (maybe still uploading) */
    size_t nsealed, capsealed;
    uint64_t nseal;      /* packs sealed so far */
    uint64_t ncommitted; /* seals 1..ncommitted are in written index objects */
    bool committing;     /* a commit is waiting for its uploads or writing its index object */
    pthread_cond_t committed; /* a commit ended */
    pthread_mutex_t wlock; /* guards the open pack: pw, open, nopen (taken before lock) */
    vb_pack_writer_t *pw;  /* the open pack every writer fills */
    vb_digest_t *open;     /* digests in the open pack */
    size_t nopen, capopen;
    vb_packup_t *up; /* sealed packs uploading */
    /* a sealed pack that could not be listed (out of memory), or a commit that failed: sticky,
     * every later commit fails (another writer may rely on a chunk of those packs) */
    int seal_rc;
    char seal_msg[512];
    /* tests: VBAK_TEST_COMMIT_DELAY_US, between the uploads' wait and the index write */
    long commit_delay_us;
};

struct vb_packed_writer {
    vb_packed_t *packed;
    vb_pack_id_t touched[S_TOUCHED_MAX]; /* packs freshened since the last flush */
    size_t ntouched;
};

static int s_load(vb_packed_t *self)
{
    vb_chunkidx_t *ci = vb_chunkidx_new();
    if (!ci)
        return vb_error_code();
    /* copies verify found bad: left out before the load seals (which keeps one copy of each) */
    bool hidden = false;
    int rc = vb_packquar_exclude(self->store, ci);
    if (rc == 0)
        rc = vb_idxobj_load(self->store, ci, NULL, &hidden);
    if (rc) {
        vb_chunkidx_destroy(&ci);
        return rc;
    }
    vb_chunkidx_destroy(&self->index);
    self->index = ci;
    self->hidden = hidden;
    return 0;
}

int vb_packed_writable(vb_packed_t *self)
{
    pthread_mutex_lock(&self->lock);
    bool hidden = self->hidden;
    pthread_mutex_unlock(&self->lock);
    if (!hidden)
        return 0;
    return vb_error_set(VB_EPOLICY,
                        "the repository's index objects are hidden by delete markers (a plain "
                        "DELETE on a locked bucket): run `vbak repo undelete %s` first",
                        vb_store_location(self->store));
}

/* A pack of this process was sealed (wlock held): its chunks are found from now on, and listed
 * in the next index object, which commit writes only once the pack's upload is done. */
static int s_sealed(void *arg, const vb_pack_id_t *id, const vb_pack_entry_t *entries, size_t count)
{
    vb_packed_t *p = arg;
    pthread_mutex_lock(&p->lock);
    int rc = VB_GROW(p->sealed, p->nsealed, p->capsealed, 64, "packs sealed");
    if (rc == 0)
        p->sealed[p->nsealed++] = (s_sealed_t){*id, ++p->nseal};
    if (rc == 0)
        rc = vb_idxobj_add_pack(p->pending, id, entries, count);
    if (rc == 0)
        rc = vb_chunkidx_add_pack(p->index, id, entries, count);
    if (rc != 0 && p->seal_rc == 0) {
        p->seal_rc = rc;
        snprintf(p->seal_msg, sizeof p->seal_msg, "a sealed pack could not be listed: %s",
                 vb_error_msg());
    }
    pthread_mutex_unlock(&p->lock);
    p->nopen = 0;
    return rc;
}

/* Tests: VBAK_TEST_COMMIT_DELAY_US (up to 10 s) widens the commit's window between the uploads'
 * wait and the index object's write (writers may seal packs meanwhile: the next commit's). */
static long s_test_commit_delay_us(void)
{
    const char *v = getenv("VBAK_TEST_COMMIT_DELAY_US");
    char *end = NULL;
    long us = v ? strtol(v, &end, 10) : 0;
    return v && end != v && *end == '\0' && us > 0 && us <= 10000000 ? us : 0;
}

vb_packed_t *vb_packed_open(vb_store_t *store, uint32_t pack_size)
{
    vb_packed_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    self->store = store;
    self->pack_size = pack_size;
    self->commit_delay_us = s_test_commit_delay_us();
    pthread_mutex_init(&self->lock, NULL);
    pthread_mutex_init(&self->wlock, NULL);
    pthread_cond_init(&self->committed, NULL);
    if (!(self->pending = vb_idxobj_new()) ||
        !(self->up = vb_packup_new(store, vb_store_puts_in_flight(store))) ||
        !(self->pw = vb_pack_writer_new(store, pack_size, s_sealed, self)) || s_load(self) != 0) {
        vb_packed_destroy(&self);
        return NULL;
    }
    vb_pack_writer_set_uploads(self->pw, self->up);
    return self;
}

void vb_packed_destroy(vb_packed_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_packed_t *self = *self_p;
    vb_packup_destroy(&self->up); /* abandons uploads no commit waited for (packup.h) */
    vb_pack_writer_destroy(&self->pw);
    free(self->open);
    free(self->sealed);
    vb_chunkidx_destroy(&self->index);
    vb_idxobj_destroy(&self->pending);
    pthread_cond_destroy(&self->committed);
    pthread_mutex_destroy(&self->wlock);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

vb_packed_writer_t *vb_packed_writer_new(vb_packed_t *packed)
{
    vb_packed_writer_t *w = calloc(1, sizeof *w);
    if (!w) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    w->packed = packed;
    return w;
}

void vb_packed_writer_destroy(vb_packed_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

bool vb_packed_locate(vb_packed_t *self, const vb_digest_t *digest, vb_chunkidx_loc_t *loc)
{
    pthread_mutex_lock(&self->lock);
    bool has = vb_chunkidx_find(self->index, digest, loc);
    pthread_mutex_unlock(&self->lock);
    return has;
}

bool vb_packed_has(vb_packed_t *self, const vb_digest_t *digest)
{
    vb_chunkidx_loc_t loc;
    return vb_packed_locate(self, digest, &loc);
}

vb_store_t *vb_packed_store(vb_packed_t *self)
{
    return self->store;
}

/* wlock held */
static bool s_in_open_pack_locked(const vb_packed_t *p, const vb_digest_t *digest)
{
    for (size_t i = 0; i < p->nopen; i++)
        if (memcmp(p->open[i].b, digest->b, VB_DIGEST_LEN) == 0)
            return true;
    return false;
}

static bool s_in_open_pack(vb_packed_t *p, const vb_digest_t *digest)
{
    pthread_mutex_lock(&p->wlock);
    bool in = s_in_open_pack_locked(p, digest);
    pthread_mutex_unlock(&p->wlock);
    return in;
}

int vb_packed_put(vb_packed_writer_t *w, const vb_digest_t *digest, const uint8_t *img,
                  size_t img_len, uint32_t raw_len, bool *stored)
{
    vb_packed_t *p = w->packed;
    *stored = false;
    int rc = vb_packed_writable(p);
    if (rc)
        return rc;
    if (vb_packed_reuse(w, digest))
        return 0;
    pthread_mutex_lock(&p->wlock);
    if (s_in_open_pack_locked(p, digest)) /* another worker added it meanwhile */
        goto out;
    if ((rc = VB_GROW(p->open, p->nopen, p->capopen, 64, "chunks of the open pack")) != 0)
        goto out;
    /* may seal the open pack first (handing it to the uploads), which empties p->open */
    if ((rc = vb_pack_add(p->pw, digest, img, img_len, raw_len)) != 0)
        goto out;
    p->open[p->nopen++] = *digest;
    *stored = true;
out:
    pthread_mutex_unlock(&p->wlock);
    return rc;
}

static int s_seal(vb_packed_t *p)
{
    pthread_mutex_lock(&p->wlock);
    int rc = vb_pack_seal(p->pw);
    pthread_mutex_unlock(&p->wlock);
    return rc;
}

int vb_packed_flush(vb_packed_writer_t *w)
{
    w->ntouched = 0; /* the next task (maybe of a later job) freshens again */
    return s_seal(w->packed);
}

/* Commits, and why they are shaped so: every backup task commits before it reports (its chunks
 * must be durable), several tasks share this handle (agent/repocache.h), and a commit waits for
 * uploads and writes: if it held the writers' lock meanwhile, no other task could add a chunk
 * and the commits would serialize the agent. So a commit seals the open pack under the lock and
 * releases it at once; the seal's number says which packs it must cover. One commit at a time
 * (the leader) takes every pack sealed so far out of `pending`, waits for those packs' uploads
 * only (vb_packup_wait_until: packs sealed later go on uploading), then writes the one index
 * object listing exactly them. A commit that finds a leader at work waits for it; if that
 * leader's packs did not cover its own seal, the next leader covers all who waited (group
 * commit: one barrier and one index object for them). Packs, then index, as before: no index
 * object names a pack that is not written, and a failed upload or write fails that commit and
 * every later one (seal_rc), since a task sharing the handle may rely on a chunk of it. */

/* lock held: the sticky failure, if any, with its message */
static int s_failed_locked(const vb_packed_t *self)
{
    return self->seal_rc ? vb_error_set(self->seal_rc, "%s", self->seal_msg) : 0;
}

/* lock held: the sealed packs are listed in a written index object up to seal `upto` */
static void s_committed_locked(vb_packed_t *self, uint64_t upto)
{
    size_t n = 0;
    while (n < self->nsealed && self->sealed[n].seq <= upto)
        n++;
    memmove(self->sealed, self->sealed + n, (self->nsealed - n) * sizeof *self->sealed);
    self->nsealed -= n;
    self->ncommitted = upto;
}

/* Waits for the uploads of `batch` and writes it (a barrier first: idxobj.h). */
static int s_write_batch(vb_packed_t *self, vb_idxobj_t *batch)
{
    int rc = vb_packup_wait_until(self->up, vb_packup_mark(self->up));
    if (rc == 0 && self->commit_delay_us)
        nanosleep(&(struct timespec){self->commit_delay_us / 1000000,
                                     self->commit_delay_us % 1000000 * 1000},
                  NULL);
    if (rc == 0)
        rc = vb_idxobj_write(batch, self->store, NULL);
    return rc;
}

/* lock held (released meanwhile): one commit of every pack sealed so far */
static int s_lead_locked(vb_packed_t *self)
{
    vb_idxobj_t *batch = self->pending, *fresh = vb_idxobj_new();
    if (!fresh)
        return vb_error_code();
    self->pending = fresh;
    uint64_t upto = self->nseal;
    self->committing = true;
    pthread_mutex_unlock(&self->lock);
    /* the mark is taken after the batch: every pack in it was put before (s_sealed runs after
     * the put), so the wait covers them all (and maybe a pack sealed since: harmless) */
    int rc = s_write_batch(self, batch);
    pthread_mutex_lock(&self->lock);
    if (rc == 0)
        s_committed_locked(self, upto);
    else if (self->seal_rc == 0) {
        self->seal_rc = rc;
        snprintf(self->seal_msg, sizeof self->seal_msg, "%s", vb_error_msg());
    }
    self->committing = false;
    pthread_cond_broadcast(&self->committed);
    vb_idxobj_destroy(&batch);
    return rc;
}

int vb_packed_commit(vb_packed_t *self)
{
    int rc = s_seal(self);
    if (rc)
        return rc;
    pthread_mutex_lock(&self->lock);
    uint64_t mine = self->nseal; /* this commit's seal, and every one before it */
    bool barrier = mine == self->ncommitted;
    while ((rc = s_failed_locked(self)) == 0 && self->ncommitted < mine) {
        if (!self->committing)
            rc = s_lead_locked(self);
        else
            pthread_cond_wait(&self->committed, &self->lock);
        if (rc)
            break;
    }
    pthread_mutex_unlock(&self->lock);
    /* nothing of this process to list: the barrier alone (a format-1-style guarantee for the
     * caller; free when nothing is waiting to be made durable) */
    if (rc == 0 && barrier)
        rc = vb_store_barrier(self->store);
    return rc;
}

static int s_get(vb_packed_t *self, const vb_digest_t *digest, void *buf, size_t cap, size_t *len);

static bool s_find(vb_packed_t *self, const vb_digest_t *digest, vb_chunkidx_loc_t *loc,
                   bool reload)
{
    pthread_mutex_lock(&self->lock);
    bool found = vb_chunkidx_find(self->index, digest, loc);
    /* Not found: another agent may have stored it since the index was loaded. Packs this process
     * sealed but has not committed stay known only while nothing reloads: commit first. */
    if (!found && reload && self->nsealed == 0 && s_load(self) == 0)
        found = vb_chunkidx_find(self->index, digest, loc);
    vb_error_clear();
    pthread_mutex_unlock(&self->lock);
    return found;
}

/* Loads the index again (a GC may have moved chunks), unless this process has packs that no
 * index object lists yet (they would drop out of the index). False when it did not. */
static bool s_reload(vb_packed_t *self)
{
    pthread_mutex_lock(&self->lock);
    bool done = self->nsealed == 0 && s_load(self) == 0;
    vb_error_clear();
    pthread_mutex_unlock(&self->lock);
    return done;
}

int vb_packed_quarantine(vb_packed_t *self, const vb_digest_t *digest)
{
    vb_chunkidx_loc_t loc;
    char hex[VB_DIGEST_HEX_LEN + 1];
    if (!vb_packed_locate(self, digest, &loc)) {
        vb_digest_hex(digest, hex);
        return vb_error_set(VB_ENOTFOUND, "chunk %s is in no pack of the index", hex);
    }
    int rc = vb_packquar_put(self->store, digest, &loc);
    if (rc)
        return rc;
    pthread_mutex_lock(&self->lock); /* this process stops finding it too */
    rc = vb_chunkidx_exclude(self->index, digest, &loc.pack);
    pthread_mutex_unlock(&self->lock);
    if (rc == 0)
        (void)s_reload(self); /* another copy, dropped as a repeat when the index was sealed */
    return rc;
}

/* Sealed by this process since the last commit (maybe still uploading: the commit waits for it
 * before any index object names it)? */
static bool s_sealed_here(vb_packed_t *p, const vb_pack_id_t *id)
{
    bool found = false;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; !found && i < p->nsealed; i++)
        found = memcmp(p->sealed[i].id.b, id->b, VB_PACK_ID_LEN) == 0;
    pthread_mutex_unlock(&p->lock);
    return found;
}

static bool s_touched(vb_packed_writer_t *w, const vb_pack_id_t *id)
{
    for (size_t i = 0; i < w->ntouched; i++)
        if (memcmp(w->touched[i].b, id->b, VB_PACK_ID_LEN) == 0)
            return true;
    if (w->ntouched == S_TOUCHED_MAX)
        w->ntouched = 0;
    return false;
}

bool vb_packed_reuse(vb_packed_writer_t *w, const vb_digest_t *digest)
{
    vb_chunkidx_loc_t loc;
    char name[VB_PACK_NAME_LEN];
    if (s_in_open_pack(w->packed, digest))
        return true;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!s_find(w->packed, digest, &loc, false))
            return false;
        if (s_touched(w, &loc.pack))
            return true;
        vb_pack_name(&loc.pack, name);
        int rc = vb_store_freshen(w->packed->store, name);
        vb_error_clear();
        if (rc == 0) {
            w->touched[w->ntouched++] = loc.pack;
            return true;
        }
        /* not there yet: a pack of this process still uploading */
        if (rc == VB_ENOTFOUND && s_sealed_here(w->packed, &loc.pack))
            return true;
        /* gone (a GC removed or repacked it): look again in the index as it is now; any other
         * failure: store the chunk again rather than rely on a pack GC might not keep */
        if (rc != VB_ENOTFOUND || !s_reload(w->packed))
            return false;
    }
    return false;
}

int vb_packed_get(vb_packed_t *self, const vb_digest_t *digest, void *buf, size_t cap, size_t *len)
{
    int rc = s_get(self, digest, buf, cap, len);
    /* a GC may have repacked the chunk since the index was loaded: once more, reloaded */
    if (rc == VB_ENOTFOUND && s_reload(self))
        rc = s_get(self, digest, buf, cap, len);
    return rc;
}

static int s_get(vb_packed_t *self, const vb_digest_t *digest, void *buf, size_t cap, size_t *len)
{
    vb_chunkidx_loc_t loc;
    char hex[VB_DIGEST_HEX_LEN + 1], pack[VB_PACK_NAME_LEN];
    vb_digest_hex(digest, hex);
    if (!s_find(self, digest, &loc, true))
        return vb_error_set(VB_ENOTFOUND, "chunk %s is missing (in no pack of the index)", hex);
    vb_pack_name(&loc.pack, pack);
    if (loc.length > cap)
        return vb_error_set(VB_ECORRUPT, "chunk %s: the index gives it %u bytes in pack %s", hex,
                            loc.length, pack);
    size_t got = 0;
    int rc = vb_store_get_range(self->store, pack, loc.offset, buf, loc.length, &got);
    if (rc == VB_ENOTFOUND)
        return vb_error_set(VB_ENOTFOUND, "chunk %s is missing: its pack %s is missing", hex, pack);
    if (rc)
        return rc;
    if (got != loc.length)
        return vb_error_set(VB_ECORRUPT, "chunk %s is truncated: its pack %s ends early", hex,
                            pack);
    *len = got;
    return 0;
}

typedef struct {
    vb_store_t *store;
    uint64_t packs, bytes, raw;
} s_count_t;

static int s_count_pack(void *arg, const char *name, const vb_store_stat_t *st)
{
    s_count_t *c = arg;
    vb_pack_id_t id;
    vb_pack_entry_t *ents = NULL;
    size_t n = 0;
    if (vb_pack_parse_name(name, &id) == 0 && vb_pack_read_trailer(c->store, &id, &ents, &n) == 0)
        for (size_t i = 0; i < n; i++)
            c->raw += ents[i].raw_len;
    vb_error_clear(); /* a damaged pack is verify's to report */
    free(ents);
    c->packs++;
    c->bytes += st->size;
    return 0;
}

int vb_packed_stats(vb_packed_t *self, uint64_t *chunks, uint64_t *packs, uint64_t *pack_bytes,
                    uint64_t *raw_bytes)
{
    s_count_t c = {.store = self->store};
    int rc = vb_store_list(self->store, "packs/", s_count_pack, &c);
    pthread_mutex_lock(&self->lock);
    vb_chunkidx_seal(self->index);
    *chunks = vb_chunkidx_count(self->index);
    pthread_mutex_unlock(&self->lock);
    *packs = c.packs;
    *pack_bytes = c.bytes;
    *raw_bytes = c.raw;
    return rc;
}
