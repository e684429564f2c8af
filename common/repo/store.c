#include "repo/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vb_store {
    const vb_store_ops_t *ops;
    void *state;
    char *location;
    vb_store_lock_t lock;
    unsigned puts_in_flight;
    /* a barrier failed: every later one fails too, with its code and reason (vb_store_broken).
     * Barriers take turns (barrier_lock): the kernel reports a writeback error to one syncfs
     * only, and a barrier running beside the one that hears it must not succeed. */
    pthread_mutex_t barrier_lock;
    atomic_bool broken;
    int broken_rc;
    char why_broken[256];
};

/* Every kind of store: one row each. A location without "<scheme>://" is the first row's. */
static const vb_store_ops_t *const s_kinds[] = {&vb_store_posix_ops, &vb_store_s3_ops};

static const vb_store_ops_t *s_find_kind(const char *location, const char **where)
{
    const char *sep = strstr(location, "://");
    *where = location;
    if (!sep)
        return s_kinds[0];
    for (size_t i = 0; i < sizeof s_kinds / sizeof s_kinds[0]; i++) {
        size_t n = strlen(s_kinds[i]->scheme);
        if ((size_t)(sep - location) == n && strncmp(location, s_kinds[i]->scheme, n) == 0) {
            *where = sep + 3;
            return s_kinds[i];
        }
    }
    return NULL;
}

unsigned vb_store_puts_in_flight(const vb_store_t *self)
{
    return self->puts_in_flight;
}

bool vb_store_is_s3(const char *location)
{
    return location && strncmp(location, "s3://", 5) == 0;
}

vb_store_t *vb_store_open(const char *location, bool create)
{
    return vb_store_open_opts(location, create, NULL);
}

vb_store_t *vb_store_open_opts(const char *location, bool create, const vb_store_opts_t *opts)
{
    static const vb_store_opts_t none = {0};
    const char *where = NULL;
    const vb_store_ops_t *ops = location ? s_find_kind(location, &where) : NULL;
    if (!ops) {
        vb_error_set(VB_EUNSUPPORTED, "repository location %s: unknown kind of store",
                     location ? location : "(none)");
        return NULL;
    }
    if (!*where) {
        vb_error_set(VB_EINVAL, "repository location '%s' names no place", location);
        return NULL;
    }
    vb_store_t *self = calloc(1, sizeof *self);
    if (!self || !(self->location = strdup(location))) {
        free(self);
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    self->ops = ops;
    if (ops->open(where, create, opts ? opts : &none, &self->state) != 0) {
        free(self->location);
        free(self);
        return NULL;
    }
    pthread_mutex_init(&self->barrier_lock, NULL);
    self->lock = opts ? opts->lock : none.lock;
    self->puts_in_flight =
        opts && opts->puts_in_flight ? opts->puts_in_flight : ops->puts_in_flight;
    if (self->puts_in_flight < 1 || self->puts_in_flight > VB_STORE_PUTS_IN_FLIGHT_MAX)
        self->puts_in_flight = self->puts_in_flight < 1 ? 1 : VB_STORE_PUTS_IN_FLIGHT_MAX;
    return self;
}

void vb_store_destroy(vb_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_store_t *self = *self_p;
    self->ops->close(self->state);
    pthread_mutex_destroy(&self->barrier_lock);
    free(self->location);
    free(self);
    *self_p = NULL;
}

const char *vb_store_location(const vb_store_t *self)
{
    return self->location;
}

static bool s_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* Checks `name` as a name (prefix false) or a list prefix (may be "" or end with '/'). */
static int s_check(const char *name, bool prefix)
{
    size_t n = name ? strlen(name) : 0;
    bool ok = (n > 0 || prefix) && n <= VB_STORE_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        bool start = i == 0 || name[i - 1] == '/';
        if (name[i] == '/')
            ok = !start;
        else
            ok = s_name_char(name[i]) && !(start && name[i] == '.');
    }
    if (ok && n > 0 && name[n - 1] == '/' && !prefix)
        ok = false;
    if (!ok)
        return vb_error_set(VB_EINVAL,
                            "store object name '%s': '/'-separated parts of letters, digits, "
                            "'.', '_', '-', none empty or starting with '.'",
                            name ? name : "");
    return 0;
}

int vb_store_check_name(const char *name)
{
    return s_check(name, false);
}

/* Per thread, as the error message is: the uploading thread says once which flag it obeys, and
 * every store below it (and s3req's retry loop) sees it without a parameter on each operation. */
static _Thread_local const atomic_bool *s_abandon_flag;

void vb_store_abandon_when(const atomic_bool *flag)
{
    s_abandon_flag = flag;
}

bool vb_store_abandoned(const char *name)
{
    if (!s_abandon_flag || !atomic_load(s_abandon_flag))
        return false;
    vb_error_set(VB_EBUSY, "upload of %s abandoned: the task that wrote it ended without a commit",
                 name ? name : "an object");
    return true;
}

int vb_store_putv(vb_store_t *self, const char *name, const struct iovec *iov, int iovcnt,
                  unsigned flags)
{
    int rc = s_check(name, false);
    if (rc == 0 && vb_store_abandoned(name))
        rc = VB_EBUSY;
    return rc ? rc : self->ops->put(self->state, name, iov, iovcnt, flags);
}

int vb_store_put(vb_store_t *self, const char *name, const void *buf, size_t len, unsigned flags)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return vb_store_putv(self, name, &iov, 1, flags);
}

int vb_store_get(vb_store_t *self, const char *name, void *buf, size_t cap, size_t *len)
{
    int rc = s_check(name, false);
    return rc ? rc : self->ops->get(self->state, name, buf, cap, len);
}

int vb_store_get_range(vb_store_t *self, const char *name, uint64_t off, void *buf, size_t len,
                       size_t *got)
{
    int rc = s_check(name, false);
    return rc ? rc : self->ops->get_range(self->state, name, off, buf, len, got);
}

int vb_store_stat(vb_store_t *self, const char *name, vb_store_stat_t *st)
{
    int rc = s_check(name, false);
    return rc ? rc : self->ops->stat(self->state, name, st);
}

bool vb_store_exists(vb_store_t *self, const char *name)
{
    /* A predicate: callers ask it while reporting another error (verify asks whether a missing
     * chunk is in quarantine), so the thread's message stays theirs. */
    char saved[1024]; /* as long as error.c keeps a message */
    int code = vb_error_code();
    snprintf(saved, sizeof saved, "%s", vb_error_msg());
    vb_store_stat_t st;
    bool found = vb_store_stat(self, name, &st) == 0;
    if (code)
        vb_error_set(code, "%s", saved);
    else
        vb_error_clear();
    return found;
}

int vb_store_freshen(vb_store_t *self, const char *name)
{
    int rc = s_check(name, false);
    return rc ? rc : self->ops->freshen(self->state, name);
}

int vb_store_list(vb_store_t *self, const char *prefix, vb_store_list_fn fn, void *arg)
{
    int rc = s_check(prefix, true);
    return rc ? rc : self->ops->list(self->state, prefix, fn, arg);
}

int vb_store_remove(vb_store_t *self, const char *name, time_t unless_since)
{
    int rc = s_check(name, false);
    return rc ? rc : self->ops->remove(self->state, name, unless_since);
}

int vb_store_hide(vb_store_t *self, const char *name)
{
    int rc = s_check(name, false);
    return rc ? rc : self->ops->hide(self->state, name);
}

int vb_store_remove_or_hide(vb_store_t *self, const char *name)
{
    int rc = vb_store_remove(self, name, 0);
    if (rc == VB_EPOLICY) {
        vb_error_clear();
        rc = vb_store_hide(self, name);
    }
    return rc;
}

int vb_store_list_hidden(vb_store_t *self, const char *prefix, vb_store_list_fn fn, void *arg)
{
    int rc = s_check(prefix, true);
    return rc ? rc : self->ops->list_hidden(self->state, prefix, fn, arg);
}

int vb_store_unhide(vb_store_t *self, const char *name)
{
    int rc = s_check(name, false);
    return rc ? rc : self->ops->unhide(self->state, name);
}

int vb_store_set_lock(vb_store_t *self, const vb_store_lock_t *lock)
{
    int rc = self->ops->set_lock(self->state, lock);
    if (rc == 0)
        self->lock = *lock;
    return rc;
}

int vb_store_extend_lock(vb_store_t *self, const char *name)
{
    int rc = s_check(name, false);
    return rc ? rc : self->ops->extend_lock(self->state, name);
}

const vb_store_lock_t *vb_store_lock(const vb_store_t *self)
{
    return &self->lock;
}

int vb_store_move(vb_store_t *self, const char *from, const char *to)
{
    int rc = s_check(from, false);
    if (rc == 0)
        rc = s_check(to, false);
    return rc ? rc : self->ops->move(self->state, from, to);
}

/* A failed barrier breaks the handle for good. The kernel reports a writeback error once per
 * file descriptor: the next syncfs may succeed though the pages that failed are lost, so a later
 * commit on this handle would call durable what is not. Every later barrier fails with the first
 * failure's reason; the handle's owner opens the repository again (vb_store_broken). */
static int s_barrier(vb_store_t *self, bool everything)
{
    pthread_mutex_lock(&self->barrier_lock);
    int rc;
    if (atomic_load(&self->broken)) {
        rc = vb_error_set(self->broken_rc,
                          "%s: an earlier sync failed (%s); nothing written through this handle "
                          "since can be called durable: open the repository again",
                          self->location, self->why_broken);
    } else if ((rc = self->ops->barrier(self->state, everything)) != 0) {
        self->broken_rc = rc;
        snprintf(self->why_broken, sizeof self->why_broken, "%s", vb_error_msg());
        atomic_store(&self->broken, true);
    }
    pthread_mutex_unlock(&self->barrier_lock);
    return rc;
}

int vb_store_barrier(vb_store_t *self)
{
    return s_barrier(self, false);
}

int vb_store_barrier_all(vb_store_t *self)
{
    return s_barrier(self, true);
}

bool vb_store_broken(const vb_store_t *self)
{
    return self && atomic_load(&self->broken);
}

int vb_store_cleanup(vb_store_t *self, time_t older_than, bool dry_run, uint64_t *removed)
{
    uint64_t n = 0;
    int rc = self->ops->cleanup(self->state, older_than, dry_run, &n);
    if (removed)
        *removed = n;
    return rc;
}

int vb_store_local_path(vb_store_t *self, const char *name, char *out, size_t outsz)
{
    int rc = s_check(name, false);
    return rc ? rc : self->ops->local_path(self->state, name, out, outsz);
}

int vb_store_get_alloc(vb_store_t *self, const char *name, size_t max, void **out, size_t *len)
{
    vb_store_stat_t st;
    *out = NULL;
    *len = 0;
    int rc = vb_store_stat(self, name, &st);
    if (rc)
        return rc;
    if (st.size > max)
        return vb_error_set(VB_ECORRUPT, "%s: object %s holds %llu bytes, more than %zu",
                            self->location, name, (unsigned long long)st.size, max);
    /* One byte more than the size: an object that grew meanwhile shows as too large. */
    void *buf = malloc((size_t)st.size + 1);
    if (!buf)
        return vb_error_set(VB_ENOMEM, "out of memory for object %s", name);
    size_t got = 0;
    rc = vb_store_get_range(self, name, 0, buf, (size_t)st.size + 1, &got);
    if (rc == 0 && got != st.size)
        rc =
            vb_error_set(VB_EBUSY, "%s: object %s changed while it was read", self->location, name);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = got;
    return 0;
}
