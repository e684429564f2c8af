#include "repo/chunkcache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S_LOADERS_MAX 16

typedef enum { S_EMPTY, S_LOADING, S_READY } s_state_t;

typedef struct {
    vb_digest_t digest;
    s_state_t state;
    unsigned refs; /* readers copying out of buf */
    uint64_t tick; /* last use, for LRU */
    size_t len;
    uint8_t *buf;
} s_slot_t;

struct vb_chunkcache {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a slot finished loading or lost its last reader */
    pthread_cond_t queued;  /* the read-ahead queue got a chunk, or stop */
    s_slot_t *slots;
    size_t nslots, chunk_size;
    uint64_t tick;
    vb_digest_t *queue; /* ring of chunks to read ahead */
    size_t qcap, qhead, qcount;
    pthread_t loaders[S_LOADERS_MAX];
    unsigned nloaders;
    bool stop;
    vb_chunk_load_fn load;
    void *load_arg;
    vb_chunkcache_stats_t stats;
};

static s_slot_t *s_find(vb_chunkcache_t *self, const vb_digest_t *d)
{
    for (size_t i = 0; i < self->nslots; i++)
        if (self->slots[i].state != S_EMPTY && !memcmp(&self->slots[i].digest, d, sizeof *d))
            return &self->slots[i];
    return NULL;
}

/* An empty slot, else the least recently used ready one no reader holds; NULL when every slot
 * is loading or being read. */
static s_slot_t *s_victim(vb_chunkcache_t *self)
{
    s_slot_t *best = NULL;
    for (size_t i = 0; i < self->nslots; i++) {
        s_slot_t *s = &self->slots[i];
        if (s->state == S_EMPTY)
            return s;
        if (s->state == S_READY && !s->refs && (!best || s->tick < best->tick))
            best = s;
    }
    return best;
}

/* Loads d into slot s; called and returns with the lock held, which it drops while loading.
 * On success the slot is ready (with one reference when `hold`); on failure it is empty. */
static int s_load_locked(vb_chunkcache_t *self, s_slot_t *s, const vb_digest_t *d, bool hold)
{
    if (s->state == S_READY)
        self->stats.evictions++;
    s->digest = *d;
    s->state = S_LOADING;
    pthread_mutex_unlock(&self->lock);
    size_t len = 0;
    int rc = self->load(self->load_arg, d, s->buf, self->chunk_size, &len);
    pthread_mutex_lock(&self->lock);
    s->state = rc ? S_EMPTY : S_READY;
    s->len = rc ? 0 : len;
    s->tick = ++self->tick;
    s->refs = (!rc && hold) ? 1 : 0;
    pthread_cond_broadcast(&self->changed);
    return rc;
}

/* Returns the ready slot of d with a reference taken (lock held on entry and return). */
static int s_acquire(vb_chunkcache_t *self, const vb_digest_t *d, s_slot_t **out)
{
    for (;;) {
        s_slot_t *s = s_find(self, d);
        if (s && s->state == S_READY) {
            self->stats.hits++;
            s->refs++;
            s->tick = ++self->tick;
            *out = s;
            return 0;
        }
        if (s) { /* another thread loads it */
            self->stats.waits++;
            pthread_cond_wait(&self->changed, &self->lock);
            continue;
        }
        if (!(s = s_victim(self))) {
            pthread_cond_wait(&self->changed, &self->lock);
            continue;
        }
        self->stats.misses++;
        int rc = s_load_locked(self, s, d, true);
        if (!rc)
            *out = s;
        return rc;
    }
}

int vb_chunkcache_read(vb_chunkcache_t *self, const vb_digest_t *digest, size_t off, size_t len,
                       void *out)
{
    s_slot_t *s = NULL;
    pthread_mutex_lock(&self->lock);
    int rc = s_acquire(self, digest, &s);
    pthread_mutex_unlock(&self->lock);
    if (rc)
        return rc;
    if (off > s->len || len > s->len - off) {
        char hex[VB_DIGEST_HEX_LEN + 1];
        vb_digest_hex(digest, hex);
        rc = vb_error_set(VB_EINVAL, "chunk %.16s... holds %zu bytes: cannot read %zu at %zu",
                          hex, s->len, len, off);
    } else {
        memcpy(out, s->buf + off, len);
    }
    pthread_mutex_lock(&self->lock);
    if (--s->refs == 0)
        pthread_cond_broadcast(&self->changed);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

static bool s_queued(const vb_chunkcache_t *self, const vb_digest_t *d)
{
    for (size_t i = 0; i < self->qcount; i++)
        if (!memcmp(&self->queue[(self->qhead + i) % self->qcap], d, sizeof *d))
            return true;
    return false;
}

void vb_chunkcache_prefetch(vb_chunkcache_t *self, const vb_digest_t *digest)
{
    if (!self->nloaders)
        return;
    pthread_mutex_lock(&self->lock);
    if (self->qcount < self->qcap && !s_find(self, digest) && !s_queued(self, digest)) {
        self->queue[(self->qhead + self->qcount) % self->qcap] = *digest;
        self->qcount++;
        pthread_cond_signal(&self->queued);
    }
    pthread_mutex_unlock(&self->lock);
}

static void *s_loader(void *arg)
{
    vb_chunkcache_t *self = arg;
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (!self->stop && !self->qcount)
            pthread_cond_wait(&self->queued, &self->lock);
        if (self->stop)
            break;
        vb_digest_t d = self->queue[self->qhead];
        self->qhead = (self->qhead + 1) % self->qcap;
        self->qcount--;
        s_slot_t *s;
        if (s_find(self, &d) || !(s = s_victim(self)))
            continue; /* there already, or no room: a hint only */
        /* a failed read-ahead caches nothing; the reader that needs the chunk reports it */
        if (s_load_locked(self, s, &d, false) == 0)
            self->stats.prefetched++;
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

static void s_stop_loaders(vb_chunkcache_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->stop = true;
    pthread_cond_broadcast(&self->queued);
    pthread_mutex_unlock(&self->lock);
    for (unsigned i = 0; i < self->nloaders; i++)
        pthread_join(self->loaders[i], NULL);
    self->nloaders = 0;
}

vb_chunkcache_t *vb_chunkcache_new(size_t capacity, size_t chunk_size, unsigned loaders,
                                   unsigned queue_depth, vb_chunk_load_fn load, void *load_arg)
{
    if (!chunk_size || !load || loaders > S_LOADERS_MAX) {
        vb_error_set(VB_EINVAL, "chunk cache: chunk size 0, no loader or more than %d loader "
                                "threads", S_LOADERS_MAX);
        return NULL;
    }
    vb_chunkcache_t *self = calloc(1, sizeof *self);
    size_t n = capacity / chunk_size < 2 ? 2 : capacity / chunk_size;
    size_t qcap = queue_depth ? queue_depth : 4u * (loaders ? loaders : 1);
    if (!self)
        goto oom;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->changed, NULL);
    pthread_cond_init(&self->queued, NULL);
    self->chunk_size = chunk_size;
    self->load = load;
    self->load_arg = load_arg;
    self->qcap = qcap;
    if (!(self->slots = calloc(n, sizeof *self->slots)) ||
        !(self->queue = calloc(qcap, sizeof *self->queue)))
        goto oom;
    for (self->nslots = 0; self->nslots < n; self->nslots++)
        if (!(self->slots[self->nslots].buf = malloc(chunk_size)))
            goto oom;
    for (; self->nloaders < loaders; self->nloaders++)
        if (pthread_create(&self->loaders[self->nloaders], NULL, s_loader, self) != 0) {
            vb_error_set(VB_EIO, "chunk cache: cannot start a read-ahead thread");
            vb_chunkcache_destroy(&self);
            return NULL;
        }
    return self;
oom:
    vb_chunkcache_destroy(&self);
    vb_error_set(VB_ENOMEM, "chunk cache: out of memory for %zu chunks of %zu bytes", n,
                 chunk_size);
    return NULL;
}

void vb_chunkcache_destroy(vb_chunkcache_t **self_p)
{
    vb_chunkcache_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    s_stop_loaders(self);
    for (size_t i = 0; self->slots && i < self->nslots; i++)
        free(self->slots[i].buf);
    free(self->slots);
    free(self->queue);
    pthread_cond_destroy(&self->queued);
    pthread_cond_destroy(&self->changed);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

size_t vb_chunkcache_slots(const vb_chunkcache_t *self)
{
    return self->nslots;
}

void vb_chunkcache_stats(vb_chunkcache_t *self, vb_chunkcache_stats_t *out)
{
    pthread_mutex_lock(&self->lock);
    *out = self->stats;
    pthread_mutex_unlock(&self->lock);
}
