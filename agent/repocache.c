#include "repocache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    s_entry_t *entries;
    int64_t idle_ms;
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

vb_repocache_t *vb_repocache_new(int64_t idle_ms)
{
    vb_repocache_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->idle_ms = idle_ms;
    return self;
}

static void s_entry_free(s_entry_t *e)
{
    vb_repo_destroy(&e->repo);
    free(e->url);
    free(e);
}

void vb_repocache_destroy(vb_repocache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_repocache_t *self = *self_p;
    while (self->entries) {
        s_entry_t *e = self->entries;
        self->entries = e->next;
        s_entry_free(e);
    }
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

static void s_free_list(s_entry_t *e)
{
    while (e) {
        s_entry_t *next = e->next;
        s_entry_free(e);
        e = next;
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
    while (e && (e->retired || e->job_id != job_id || strcmp(e->url, url) != 0))
        e = e->next;
    if (e)
        e->users++;
    pthread_mutex_unlock(&self->lock);
    s_free_list(gone);
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
        e->retired = e->retired || failed;
        e->idle_since_ms = s_now_ms();
        break;
    }
    s_entry_t *gone = s_unlink_unused_locked(self, s_retired, NULL);
    pthread_mutex_unlock(&self->lock);
    s_free_list(gone);
}

static bool s_idle_long(const s_entry_t *e, const void *arg)
{
    const int64_t *cutoff = arg;
    return e->idle_since_ms <= *cutoff;
}

size_t vb_repocache_sweep(vb_repocache_t *self)
{
    int64_t cutoff = s_now_ms() - self->idle_ms;
    pthread_mutex_lock(&self->lock);
    s_entry_t *gone = s_unlink_unused_locked(self, s_idle_long, &cutoff);
    size_t open = 0;
    for (s_entry_t *e = self->entries; e; e = e->next)
        open++;
    pthread_mutex_unlock(&self->lock);
    s_free_list(gone);
    return open;
}
