#include "repocache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "log.h"

typedef struct s_entry {
    struct s_entry *next;
    uint64_t job_id;
    char *location;
    vb_repo_t *repo;
    unsigned refs;
    int64_t last_used_ms;
} s_entry_t;

struct vb_repocache {
    pthread_mutex_t lock; /* guards the list; held while a repository opens, so the tasks of a
                             job that start together wait for one open instead of each making
                             their own */
    s_entry_t *entries;
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

vb_repocache_t *vb_repocache_new(void)
{
    vb_repocache_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    return self;
}

static void s_entry_free(s_entry_t *e)
{
    vb_repo_destroy(&e->repo);
    free(e->location);
    free(e);
}

/* Unlinks and closes the unused entries that `drop` selects (lock held); how many. */
static size_t s_drop_locked(vb_repocache_t *self, bool (*drop)(const s_entry_t *, const void *),
                            const void *arg)
{
    size_t n = 0;
    for (s_entry_t **p = &self->entries; *p;) {
        s_entry_t *e = *p;
        if (e->refs == 0 && drop(e, arg)) {
            *p = e->next;
            VB_LOG_DEBUG("repocache", "closed job=%llu repo=%s", (unsigned long long)e->job_id,
                         e->location);
            s_entry_free(e);
            n++;
        } else {
            p = &e->next;
        }
    }
    return n;
}

static bool s_always(const s_entry_t *e, const void *arg)
{
    (void)e;
    (void)arg;
    return true;
}

static bool s_other_job(const s_entry_t *e, const void *arg)
{
    return e->job_id != *(const uint64_t *)arg;
}

static bool s_idle_since(const s_entry_t *e, const void *arg)
{
    return e->last_used_ms <= *(const int64_t *)arg;
}

void vb_repocache_destroy(vb_repocache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_repocache_t *self = *self_p;
    for (s_entry_t *e = self->entries, *next; e; e = next) {
        next = e->next;
        s_entry_free(e);
    }
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

vb_repo_t *vb_repocache_acquire(vb_repocache_t *self, uint64_t job_id, const char *location,
                                const char *key_file, const vb_store_opts_t *opts)
{
    vb_repo_t *repo = NULL;
    pthread_mutex_lock(&self->lock);
    /* one job at a time holds memory for its index here: the others' unused ones go */
    s_drop_locked(self, s_other_job, &job_id);
    for (s_entry_t *e = self->entries; e && !repo; e = e->next)
        if (e->job_id == job_id && strcmp(e->location, location) == 0) {
            e->refs++;
            repo = e->repo;
        }
    if (!repo) {
        s_entry_t *e = calloc(1, sizeof *e);
        if (!e || !(e->location = strdup(location))) {
            free(e);
            vb_error_set(VB_ENOMEM, "out of memory");
            goto out;
        }
        if (!(e->repo = vb_repo_open_opts(location, key_file, opts))) {
            free(e->location);
            free(e);
            goto out;
        }
        e->job_id = job_id;
        e->refs = 1;
        e->next = self->entries;
        self->entries = e;
        repo = e->repo;
    }
out:
    pthread_mutex_unlock(&self->lock);
    return repo;
}

void vb_repocache_release(vb_repocache_t *self, vb_repo_t **repo_p)
{
    if (!repo_p || !*repo_p)
        return;
    pthread_mutex_lock(&self->lock);
    for (s_entry_t *e = self->entries; e; e = e->next)
        if (e->repo == *repo_p && e->refs > 0) {
            e->refs--;
            e->last_used_ms = s_now_ms();
            break;
        }
    pthread_mutex_unlock(&self->lock);
    *repo_p = NULL;
}

size_t vb_repocache_expire(vb_repocache_t *self, int64_t idle_ms)
{
    int64_t before = s_now_ms() - idle_ms;
    pthread_mutex_lock(&self->lock);
    size_t n = idle_ms > 0 ? s_drop_locked(self, s_idle_since, &before)
                           : s_drop_locked(self, s_always, NULL);
    pthread_mutex_unlock(&self->lock);
    return n;
}

size_t vb_repocache_size(vb_repocache_t *self)
{
    size_t n = 0;
    pthread_mutex_lock(&self->lock);
    for (const s_entry_t *e = self->entries; e; e = e->next)
        n++;
    pthread_mutex_unlock(&self->lock);
    return n;
}
