#include "catalog_copy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "grow.h"
#include "log.h"

/* catalog/catalog-20261207T081500Z-123.db: names sort by time */
static int s_name(int64_t now_ms, char *buf, size_t size)
{
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    char stamp[32];
    if (!gmtime_r(&t, &tm) || !strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm))
        return vb_error_set(VB_EINVAL, "catalog copy: bad time %" PRId64, now_ms);
    int n = snprintf(buf, size, VB_CATALOG_COPY_PREFIX "catalog-%s-%03d.db", stamp,
                     (int)(now_ms % 1000));
    return n < 0 || (size_t)n >= size ? vb_error_set(VB_EINVAL, "catalog copy: name too long") : 0;
}

/* Puts the file at `path` into the store as `name` (mapped, not read into a buffer). */
static int s_put_file(vb_store_t *store, const char *path, const char *name)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int rc = vb_error_set(VB_EIO, "catalog copy %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if (st.st_size == 0) {
        close(fd);
        return vb_error_set(VB_EIO, "catalog copy %s is empty", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return vb_error_set(VB_EIO, "catalog copy %s: mmap: %s", path, strerror(errno));
    int rc = vb_store_put(store, name, map, (size_t)st.st_size, VB_STORE_DURABLE);
    munmap(map, (size_t)st.st_size);
    return rc;
}

typedef struct {
    char **names;
    size_t n, cap;
} s_names_t;

static int s_collect(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)st;
    s_names_t *l = arg;
    int rc = VB_GROW(l->names, l->n, l->cap, 8, "catalog copies");
    if (rc)
        return rc;
    if (!(l->names[l->n] = strdup(name)))
        return vb_error_set(VB_ENOMEM, "out of memory listing catalog copies");
    l->n++;
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Removes all but the newest `keep` copies (names sort by time). */
static int s_trim(vb_store_t *store, unsigned keep)
{
    s_names_t l = {0};
    int rc = vb_store_list(store, VB_CATALOG_COPY_PREFIX, s_collect, &l);
    if (!rc && l.n > keep) {
        qsort(l.names, l.n, sizeof *l.names, s_cmp);
        for (size_t i = 0; !rc && i < l.n - keep; i++) {
            rc = vb_store_remove_or_hide(store, l.names[i]);
            if (rc == VB_ENOTFOUND) /* another coordinator's trim got there first */
                rc = 0;
        }
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.names[i]);
    free(l.names);
    return rc;
}

int vb_catalog_copy_put(const char *catalog_path, vb_store_t *store, unsigned keep, int64_t now_ms,
                        char *name_out, size_t name_size)
{
    char name[VB_STORE_NAME_MAX], tmp[4096];
    int rc = s_name(now_ms, name, sizeof name);
    int n = snprintf(tmp, sizeof tmp, "%s.copy-%d", catalog_path, (int)getpid());
    if (!rc && (n < 0 || (size_t)n >= sizeof tmp))
        rc = vb_error_set(VB_EINVAL, "catalog copy: path too long: %s", catalog_path);
    if (rc)
        return rc;
    unlink(tmp); /* a crashed copy's leftover */
    rc = vb_catalog_copy(catalog_path, tmp);
    if (!rc)
        rc = s_put_file(store, tmp, name);
    unlink(tmp);
    if (!rc)
        rc = s_trim(store, keep ? keep : 1);
    if (!rc && name_out)
        snprintf(name_out, name_size, "%s", name);
    return rc;
}

/* ---- the copier: one thread per copy, driven from the loop ---- */

struct vb_catalog_copier {
    zloop_t *loop;
    char *catalog_path;
    vb_store_t *store;
    unsigned keep;
    zactor_t *actor; /* the copy running, if any */
    bool again;      /* asked for while one ran */
    uint64_t done, failed;
};

typedef struct {
    const char *catalog_path;
    vb_store_t *store;
    unsigned keep;
} s_job_t;

static void s_actor(zsock_t *pipe, void *arg)
{
    s_job_t job = *(s_job_t *)arg;
    free(arg);
    zsock_signal(pipe, 0);
    char name[VB_STORE_NAME_MAX] = "";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int rc = vb_catalog_copy_put(job.catalog_path, job.store, job.keep, now, name, sizeof name);
    zstr_sendx(pipe, rc ? "failed" : "done", rc ? vb_error_msg() : name, NULL);
    char *term = zstr_recv(pipe); /* $TERM from zactor_destroy */
    zstr_free(&term);
}

static void s_start(vb_catalog_copier_t *self);

static int s_on_done(zloop_t *loop, zsock_t *reader, void *arg)
{
    vb_catalog_copier_t *self = arg;
    char *verdict = NULL, *what = NULL;
    zstr_recvx(reader, &verdict, &what, NULL);
    bool ok = verdict && streq(verdict, "done");
    if (ok) {
        self->done++;
        VB_LOG_INFO("catalog_copy", "stored object=%s", what ? what : "?");
    } else {
        self->failed++;
        VB_LOG_WARN("catalog_copy", "failed error=\"%s\"", what ? what : "the thread died");
    }
    zstr_free(&verdict);
    zstr_free(&what);
    zloop_reader_end(loop, reader);
    zactor_destroy(&self->actor);
    if (self->again)
        s_start(self);
    return 0;
}

static void s_start(vb_catalog_copier_t *self)
{
    self->again = false;
    s_job_t *job = malloc(sizeof *job);
    if (job) {
        *job = (s_job_t){self->catalog_path, self->store, self->keep};
        self->actor = zactor_new(s_actor, job);
    }
    if (!self->actor) {
        self->failed++;
        VB_LOG_WARN("catalog_copy", "failed error=\"cannot start a thread\"");
        return;
    }
    zloop_reader(self->loop, (zsock_t *)self->actor, s_on_done, self);
}

vb_catalog_copier_t *vb_catalog_copier_new(zloop_t *loop, const char *catalog_path,
                                           vb_store_t *store, unsigned keep)
{
    vb_catalog_copier_t *self = calloc(1, sizeof *self);
    if (!self || !(self->catalog_path = strdup(catalog_path))) {
        free(self);
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    self->loop = loop;
    self->store = store;
    self->keep = keep;
    return self;
}

void vb_catalog_copier_destroy(vb_catalog_copier_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_catalog_copier_t *self = *self_p;
    if (self->actor) {
        zloop_reader_end(self->loop, (zsock_t *)self->actor);
        zactor_destroy(&self->actor); /* waits for the copy in flight */
    }
    free(self->catalog_path);
    free(self);
    *self_p = NULL;
}

void vb_catalog_copier_request(vb_catalog_copier_t *self)
{
    if (self->actor)
        self->again = true;
    else
        s_start(self);
}

uint64_t vb_catalog_copier_done(const vb_catalog_copier_t *self)
{
    return self->done;
}

uint64_t vb_catalog_copier_failed(const vb_catalog_copier_t *self)
{
    return self->failed;
}
