#include "repocache.h"

#include <czmq.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef struct s_entry {
    struct s_entry *next;
    char *url;
    uint64_t job_id;
    vb_repo_t *repo;
    unsigned users;
    bool retired;
    int64_t idle_since_ms;
} s_entry_t;

struct vb_repocache {
    pthread_mutex_t lock;
    pthread_cond_t closed; /* a closer thread ended */
    unsigned closers;      /* closer threads still running (the sweep's) */
    s_entry_t *entries;
    int64_t idle_ms;
    vb_repocache_close_fn close;
};

vb_repocache_t *vb_repocache_new(int64_t idle_ms)
{
    vb_repocache_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->closed, NULL);
    self->idle_ms = idle_ms;
    self->close = vb_repo_destroy;
    return self;
}

void vb_repocache_set_close(vb_repocache_t *self, vb_repocache_close_fn close)
{
    self->close = close ? close : vb_repo_destroy;
}

static void s_entry_free(vb_repocache_t *self, s_entry_t *e)
{
    self->close(&e->repo);
    free(e->url);
    free(e);
}

void vb_repocache_destroy(vb_repocache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_repocache_t *self = *self_p;
    pthread_mutex_lock(&self->lock);
    while (self->closers) /* a handle the sweep handed over is closed before the agent goes */
        pthread_cond_wait(&self->closed, &self->lock);
    pthread_mutex_unlock(&self->lock);
    while (self->entries) {
        s_entry_t *e = self->entries;
        self->entries = e->next;
        s_entry_free(self, e);
    }
    pthread_cond_destroy(&self->closed);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* Unlinks and returns the entries matching `drop` that no task uses (closed by the caller
 * outside the lock: closing may wait on the store). */
static s_entry_t *s_unlink_unused_locked(vb_repocache_t *self,
                                         bool (*drop)(const s_entry_t *, const void *),
                                         const void *arg)
{
    s_entry_t *gone = NULL, **pp = &self->entries;
    while (*pp) {
        s_entry_t *e = *pp;
        if (e->users == 0 && drop(e, arg)) {
            *pp = e->next;
            e->next = gone;
            gone = e;
        } else {
            pp = &e->next;
        }
    }
    return gone;
}

static void s_free_list(vb_repocache_t *self, s_entry_t *e)
{
    while (e) {
        s_entry_t *next = e->next;
        s_entry_free(self, e);
        e = next;
    }
}

typedef struct {
    vb_repocache_t *cache;
    s_entry_t *gone;
} s_closer_t;

static void *s_closer(void *arg)
{
    s_closer_t *c = arg;
    vb_repocache_t *self = c->cache;
    s_free_list(self, c->gone);
    free(c);
    pthread_mutex_lock(&self->lock);
    self->closers--;
    pthread_cond_broadcast(&self->closed);
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

/* Closes the unlinked entries on a detached thread of their own: closing a handle may be network
 * work (an S3 store), and the sweep runs on the agent's event loop. Closed here only when no
 * thread can start. */
static void s_close_apart(vb_repocache_t *self, s_entry_t *gone)
{
    if (!gone)
        return;
    s_closer_t *c = malloc(sizeof *c);
    pthread_attr_t attr;
    pthread_t tid;
    bool started = false;
    if (c && pthread_attr_init(&attr) == 0) {
        *c = (s_closer_t){self, gone};
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&self->lock);
        self->closers++;
        started = pthread_create(&tid, &attr, s_closer, c) == 0;
        if (!started)
            self->closers--;
        pthread_mutex_unlock(&self->lock);
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        VB_LOG_WARN("agent", "repocache_close_inline reason=\"no closer thread\"");
        free(c);
        s_free_list(self, gone);
    }
}

typedef struct {
    const char *url;
    uint64_t job_id;
} s_key_t;

/* an idle handle of the same repository for another job: a new job sees the index anew */
static bool s_other_job(const s_entry_t *e, const void *arg)
{
    const s_key_t *k = arg;
    return strcmp(e->url, k->url) == 0 && e->job_id != k->job_id;
}

vb_repo_t *vb_repocache_acquire(vb_repocache_t *self, const char *url, uint64_t job_id,
                                const char *key_file, const vb_store_opts_t *store_opts)
{
    s_key_t key = {url, job_id};
    pthread_mutex_lock(&self->lock);
    s_entry_t *gone = s_unlink_unused_locked(self, s_other_job, &key);
    s_entry_t *e = self->entries;
    /* a broken handle (a sync failed, vb_store_broken) is not handed out: it is retired when
     * a task lets go of it */
    while (e && (e->retired || e->job_id != job_id || strcmp(e->url, url) != 0 ||
                 vb_store_broken(vb_repo_store(e->repo))))
        e = e->next;
    if (e)
        e->users++;
    pthread_mutex_unlock(&self->lock);
    s_free_list(self, gone); /* on the task's thread */
    if (e)
        return e->repo;
    /* opened outside the lock (it reads the index); two tasks starting at once may both open
     * one: the second is kept too, and both serve until they are idle */
    vb_repo_t *repo = vb_repo_open_opts(url, key_file, store_opts);
    if (!repo)
        return NULL;
    e = calloc(1, sizeof *e);
    if (!e || !(e->url = strdup(url))) {
        free(e);
        vb_repo_destroy(&repo);
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    e->repo = repo;
    e->job_id = job_id;
    e->users = 1;
    pthread_mutex_lock(&self->lock);
    e->next = self->entries;
    self->entries = e;
    pthread_mutex_unlock(&self->lock);
    return repo;
}

static bool s_retired(const s_entry_t *e, const void *arg)
{
    (void)arg;
    return e->retired;
}

void vb_repocache_release(vb_repocache_t *self, vb_repo_t *repo, bool failed)
{
    if (!repo)
        return;
    pthread_mutex_lock(&self->lock);
    for (s_entry_t *e = self->entries; e; e = e->next) {
        if (e->repo != repo)
            continue;
        if (e->users)
            e->users--;
        e->retired = e->retired || failed || vb_store_broken(vb_repo_store(repo));
        e->idle_since_ms = zclock_mono();
        break;
    }
    s_entry_t *gone = s_unlink_unused_locked(self, s_retired, NULL);
    pthread_mutex_unlock(&self->lock);
    s_free_list(self, gone); /* on the releasing task's thread */
}

static bool s_idle_long(const s_entry_t *e, const void *arg)
{
    const int64_t *cutoff = arg;
    return e->idle_since_ms <= *cutoff;
}

size_t vb_repocache_sweep(vb_repocache_t *self)
{
    int64_t cutoff = zclock_mono() - self->idle_ms;
    pthread_mutex_lock(&self->lock);
    s_entry_t *gone = s_unlink_unused_locked(self, s_idle_long, &cutoff);
    size_t open = 0;
    for (s_entry_t *e = self->entries; e; e = e->next)
        open++;
    pthread_mutex_unlock(&self->lock);
    s_close_apart(self, gone); /* the loop only unlinks */
    return open;
}
