#include "repo/packup.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "repo/pack.h"

typedef struct {
    char name[VB_STORE_NAME_MAX + 1];
    uint8_t *buf;
    size_t cap, len;
    uint64_t seq; /* the puts queued before this one */
} s_job_t;

typedef struct {
    uint8_t *buf;
    size_t cap;
} s_spare_t;

struct vb_packup {
    vb_store_t *store;
    unsigned max;
    pthread_t *threads;
    unsigned nthreads;    /* started at the first put */
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;
    s_job_t *queue; /* ring of max jobs */
    unsigned head, queued, busy;
    uint64_t *running; /* seq of each upload under way (UINT64_MAX: a free slot), max slots */
    uint64_t seq;      /* puts queued so far */
    s_spare_t *spare; /* buffers of finished uploads, for the writer to reuse */
    unsigned nspare;
    bool stop;
    atomic_bool abandon; /* destroy: uploads under way give up (vb_store_abandon_when) */
    int rc;              /* the first failed upload's code, and its message */
    char msg[1024];
    uint64_t puts;
    unsigned peak;
};

/* The process-wide bound (vb_packup_limit_process): one token per upload queued or running in
 * any packup of the process, taken before a put queues and given back when its upload ends. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned limit, used, peak;
} s_proc = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

void vb_packup_limit_process(unsigned limit)
{
    pthread_mutex_lock(&s_proc.lock);
    s_proc.limit = limit;
    pthread_cond_broadcast(&s_proc.cond);
    pthread_mutex_unlock(&s_proc.lock);
}

unsigned vb_packup_process_peak(void)
{
    pthread_mutex_lock(&s_proc.lock);
    unsigned n = s_proc.peak;
    pthread_mutex_unlock(&s_proc.lock);
    return n;
}

/* Called without a packup's lock: the uploads that give tokens back need it. idle: the packup
 * has nothing queued or running and takes its token whatever the bound (one slow repository
 * holding every token must not stop the others: memory stays bounded by the limit plus one
 * pack per packup). */
static void s_proc_take(bool idle)
{
    pthread_mutex_lock(&s_proc.lock);
    while (!idle && s_proc.limit && s_proc.used >= s_proc.limit)
        pthread_cond_wait(&s_proc.cond, &s_proc.lock);
    if (++s_proc.used > s_proc.peak)
        s_proc.peak = s_proc.used;
    pthread_mutex_unlock(&s_proc.lock);
}

static void s_proc_give(unsigned n)
{
    pthread_mutex_lock(&s_proc.lock);
    s_proc.used -= n;
    pthread_cond_broadcast(&s_proc.cond);
    pthread_mutex_unlock(&s_proc.lock);
}

vb_packup_t *vb_packup_new(vb_store_t *store, unsigned in_flight)
{
    if (in_flight < 1 || in_flight > VB_STORE_PUTS_IN_FLIGHT_MAX) {
        vb_error_set(VB_EINVAL, "pack uploads in flight: %u (1 to %d)", in_flight,
                     VB_STORE_PUTS_IN_FLIGHT_MAX);
        return NULL;
    }
    vb_packup_t *self = calloc(1, sizeof *self);
    if (self) {
        self->threads = calloc(in_flight, sizeof *self->threads);
        self->queue = calloc(in_flight, sizeof *self->queue);
        self->spare = calloc(in_flight, sizeof *self->spare);
        self->running = calloc(in_flight, sizeof *self->running);
    }
    if (!self || !self->threads || !self->queue || !self->spare || !self->running) {
        if (self) {
            free(self->threads);
            free(self->queue);
            free(self->spare);
            free(self->running);
        }
        free(self);
        vb_error_set(VB_ENOMEM, "out of memory for pack uploads");
        return NULL;
    }
    self->store = store;
    self->max = in_flight;
    for (unsigned i = 0; i < in_flight; i++)
        self->running[i] = UINT64_MAX;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->cond, NULL);
    return self;
}

void vb_packup_destroy(vb_packup_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_packup_t *self = *self_p;
    /* What a commit did not wait for belongs to a task that ended without one: nothing will
     * list it, so uploads not begun are dropped and those under way abandoned (a retry loop
     * against a store that is down ends at once instead of after minutes). */
    pthread_mutex_lock(&self->lock);
    self->stop = true;
    atomic_store(&self->abandon, true);
    for (unsigned i = 0; i < self->queued; i++)
        vb_pack_buffer_release(self->queue[(self->head + i) % self->max].buf,
                               self->queue[(self->head + i) % self->max].cap);
    s_proc_give(self->queued);
    self->queued = 0;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    for (unsigned i = 0; i < self->nthreads; i++)
        pthread_join(self->threads[i], NULL);
    for (unsigned i = 0; i < self->nspare; i++)
        vb_pack_buffer_release(self->spare[i].buf, self->spare[i].cap);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->lock);
    free(self->threads);
    free(self->queue);
    free(self->spare);
    free(self->running);
    free(self);
    *self_p = NULL;
}

/* Keeps the first failure (code and message): every later put and wait returns it. */
static int s_keep_failure_locked(vb_packup_t *self, int rc)
{
    if (rc && !self->rc) {
        self->rc = rc;
        snprintf(self->msg, sizeof self->msg, "%s", vb_error_msg());
    }
    return rc;
}

/* An upload is over: keep its buffer for the writer (or free it), record a failure. */
static void s_done_locked(vb_packup_t *self, s_job_t *job, int rc)
{
    self->busy--;
    s_proc_give(1);
    for (unsigned i = 0; i < self->max; i++)
        if (self->running[i] == job->seq)
            self->running[i] = UINT64_MAX;
    if (rc == 0)
        self->puts++;
    (void)s_keep_failure_locked(self, rc);
    if (self->nspare < self->max)
        self->spare[self->nspare++] = (s_spare_t){job->buf, job->cap};
    else
        vb_pack_buffer_release(job->buf, job->cap);
    /* nothing in flight (a commit's wait returns): until uploads run again the writer needs one
     * spare at most; the rest go back to the process's pool (pack.h) */
    while (self->queued + self->busy == 0 && self->nspare > 1) {
        self->nspare--;
        vb_pack_buffer_release(self->spare[self->nspare].buf, self->spare[self->nspare].cap);
    }
    pthread_cond_broadcast(&self->cond);
}

static void *s_uploader(void *arg)
{
    vb_packup_t *self = arg;
    vb_store_abandon_when(&self->abandon);
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (!self->queued && !self->stop)
            pthread_cond_wait(&self->cond, &self->lock);
        if (!self->queued)
            break; /* stopped, and nothing left to write */
        s_job_t job = self->queue[self->head];
        self->head = (self->head + 1) % self->max;
        self->queued--;
        self->busy++;
        for (unsigned i = 0; i < self->max; i++)
            if (self->running[i] == UINT64_MAX) {
                self->running[i] = job.seq;
                break;
            }
        bool failed = self->rc != 0; /* after a failure, what is queued is dropped */
        pthread_mutex_unlock(&self->lock);
        /* durable here, off the commit's path and overlapping the writers: the commit's
         * barrier then has nothing left to do for the packs (store_posix.c) */
        int rc = failed ? 0
                        : vb_store_put(self->store, job.name, job.buf, job.len, VB_STORE_DURABLE);
        pthread_mutex_lock(&self->lock);
        s_done_locked(self, &job, rc);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

/* Starts the upload threads (at the first put: a repository opened only to read starts none). */
static int s_start_locked(vb_packup_t *self)
{
    while (self->nthreads < self->max) {
        if (pthread_create(&self->threads[self->nthreads], NULL, s_uploader, self) != 0)
            break;
        self->nthreads++;
    }
    return self->nthreads ? 0 : vb_error_set(VB_ENOMEM, "cannot start a pack upload thread");
}

static int s_failed_locked(const vb_packup_t *self)
{
    return self->rc ? vb_error_set(self->rc, "%s", self->msg) : 0;
}

int vb_packup_put(vb_packup_t *self, const char *name, uint8_t **buf, size_t *cap, size_t len)
{
    pthread_mutex_lock(&self->lock); /* puts to one packup come one at a time (the seal) */
    bool idle = self->queued + self->busy == 0;
    pthread_mutex_unlock(&self->lock);
    s_proc_take(idle); /* the process's bound first: its uploads end without this packup's lock */
    pthread_mutex_lock(&self->lock);
    int rc = s_failed_locked(self);
    if (rc == 0)
        rc = s_start_locked(self);
    while (rc == 0 && self->queued + self->busy >= self->nthreads) {
        pthread_cond_wait(&self->cond, &self->lock); /* N in flight: wait for one to end */
        rc = s_failed_locked(self);
    }
    if (rc == 0) {
        s_job_t *job = &self->queue[(self->head + self->queued) % self->max];
        *job = (s_job_t){.buf = *buf, .cap = *cap, .len = len, .seq = self->seq++};
        snprintf(job->name, sizeof job->name, "%s", name);
        self->queued++;
        if (self->queued + self->busy > self->peak)
            self->peak = self->queued + self->busy;
        s_spare_t sp = self->nspare ? self->spare[--self->nspare] : (s_spare_t){NULL, 0};
        *buf = sp.buf;
        *cap = sp.cap;
        pthread_cond_broadcast(&self->cond);
    } else {
        s_proc_give(1);
    }
    (void)s_keep_failure_locked(self, rc); /* a pack not queued fails every later wait */
    pthread_mutex_unlock(&self->lock);
    return rc;
}

int vb_packup_wait(vb_packup_t *self)
{
    return vb_packup_wait_until(self, UINT64_MAX);
}

uint64_t vb_packup_mark(vb_packup_t *self)
{
    pthread_mutex_lock(&self->lock);
    uint64_t n = self->seq;
    pthread_mutex_unlock(&self->lock);
    return n;
}

/* The oldest put not done yet: the queue's head (a FIFO) or an upload under way. */
static uint64_t s_oldest_locked(const vb_packup_t *self)
{
    uint64_t oldest = self->queued ? self->queue[self->head].seq : UINT64_MAX;
    for (unsigned i = 0; i < self->max; i++)
        if (self->running[i] < oldest)
            oldest = self->running[i];
    return oldest;
}

int vb_packup_wait_until(vb_packup_t *self, uint64_t mark)
{
    pthread_mutex_lock(&self->lock);
    while (s_oldest_locked(self) < mark)
        pthread_cond_wait(&self->cond, &self->lock);
    int rc = s_failed_locked(self);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

uint64_t vb_packup_puts(vb_packup_t *self)
{
    pthread_mutex_lock(&self->lock);
    uint64_t n = self->puts;
    pthread_mutex_unlock(&self->lock);
    return n;
}

unsigned vb_packup_peak(vb_packup_t *self)
{
    pthread_mutex_lock(&self->lock);
    unsigned n = self->peak;
    pthread_mutex_unlock(&self->lock);
    return n;
}
