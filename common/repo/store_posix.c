/* store_posix — the store as a POSIX directory: an object "a/b/c" is the file a/b/c under the
 * root. Files are written to a temp name (".tmp.<leaf>.<pid>.<seq>") in their directory and
 * renamed into place, so a reader sees a whole object or none; directories are made on demand.
 * Files are 0600 and directories 0700 whatever the umask (a repository may hold the plaintext of
 * an encrypted disk). Objects are written and read with O_DIRECT where the file system takes it
 * (backup data is written once and rarely read: the page cache costs CPU and throttles on
 * writeback); the barrier is one syncfs, when anything needs it: a put with VB_STORE_DURABLE
 * (a pack upload: fsync of the file and of its directory, off the commit's path) leaves
 * nothing for the barrier, and a barrier with nothing to do costs nothing, so a commit no
 * longer syncs the whole file system (disk images and all) for packs already durable. */
#include "repo/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"

#define S_FILE_MODE 0600
#define S_DIR_MODE 0700
#define S_ALIGN VB_DIRECT_ALIGN /* O_DIRECT alignment of buffer, offset and length */
#define S_DEPTH_MAX 8
#define S_TMP ".tmp."
#define S_ASIDE ".gc."

typedef struct {
    char *root;
    int dirfd;
    atomic_bool direct; /* the file system takes O_DIRECT (cleared on EINVAL) */
    atomic_uint_fast64_t seq;
    /* puts without VB_STORE_DURABLE, moves and removes counted so far (`changes`), and how
     * many of them a finished sync covers (`synced`): both only grow, so barriers at once on
     * one handle never undercount; changes == synced: nothing to make durable */
    atomic_uint_fast64_t changes, synced;
    long pid; /* in temp names, so writers in different processes never collide */
    long delay_us; /* tests: VBAK_TEST_STORE_DELAY_US per put, listed entry and remove */
    long read_delay_us; /* tests: VBAK_TEST_STORE_READ_DELAY_US per get and ranged get */
    /* tests: VBAK_TEST_STORE_SYNC_FAIL=N, the first N syncs fail (EIO), later ones succeed
     * (the kernel reports a writeback error once per descriptor) */
    atomic_long sync_fails;
} s_posix_t;

static long s_test_delay_us(const char *var)
{
    const char *v = getenv(var);
    char *end = NULL;
    long us = v ? strtol(v, &end, 10) : 0;
    return v && end != v && *end == '\0' && us > 0 && us <= 10000000 ? us : 0; /* up to 10 s */
}

/* Tests: VBAK_TEST_STORE_SYNC_FAIL_PROCESS=N, the first N syncs of this process fail (EIO),
 * whichever handle makes them, so a daemon's handle opened again afterwards syncs (the per
 * handle knob above would fail its first sync too). */
static atomic_long s_process_sync_fails;
static pthread_once_t s_process_sync_once = PTHREAD_ONCE_INIT;

static void s_process_sync_init(void)
{
    const char *v = getenv("VBAK_TEST_STORE_SYNC_FAIL_PROCESS");
    atomic_store(&s_process_sync_fails, v ? strtol(v, NULL, 10) : 0);
}

/* Whether this sync is to fail (the test knobs); counts it. */
static bool s_sync_fails(s_posix_t *p)
{
    pthread_once(&s_process_sync_once, s_process_sync_init);
    return atomic_fetch_sub(&p->sync_fails, 1) > 0 ||
           atomic_fetch_sub(&s_process_sync_fails, 1) > 0;
}

static void s_sleep_us(long us)
{
    if (us > 0)
        nanosleep(&(struct timespec){us / 1000000, us % 1000000 * 1000}, NULL);
}

static void s_test_delay(const s_posix_t *p)
{
    s_sleep_us(p->delay_us);
}

/* A put's test delay, in slices: an upload abandoned meanwhile (vb_store_abandon_when) stops
 * as a slow write would, before anything is written. True when abandoned. */
static bool s_put_delay(const s_posix_t *p, const char *name)
{
    for (long left = p->delay_us; left > 0; left -= 10000) {
        if (vb_store_abandoned(name))
            return true;
        s_sleep_us(left < 10000 ? left : 10000);
    }
    return vb_store_abandoned(name);
}

static int s_errno_code(int err)
{
    if (err == ENOENT)
        return VB_ENOTFOUND;
    return (err == ENOSPC || err == EDQUOT || err == EFBIG) ? VB_ENOSPC : VB_EIO;
}

static int s_fail(const s_posix_t *p, int err, const char *what, const char *name)
{
    return vb_error_set(s_errno_code(err), "repository %s: %s %s: %s", p->root, what, name,
                        err == ENOENT ? "missing" : strerror(err));
}

static bool s_aligned(const void *ptr, size_t len)
{
    return ((uintptr_t)ptr % S_ALIGN) == 0 && len % S_ALIGN == 0;
}

/* Splits name into its directory (may be "") and its last component. */
static const char *s_split(const char *name, char dir[VB_STORE_NAME_MAX + 1])
{
    const char *slash = strrchr(name, '/');
    size_t n = slash ? (size_t)(slash - name) : 0;
    memcpy(dir, name, n);
    dir[n] = '\0';
    return slash ? slash + 1 : name;
}

/* Makes every directory of `dir` (relative to the root) that is missing, fsyncing its parent so
 * that the new entry survives a crash. */
static int s_make_dirs(s_posix_t *p, const char *dir)
{
    char part[VB_STORE_NAME_MAX + 1];
    size_t n = strlen(dir);
    for (size_t i = 0; i <= n; i++) {
        if (dir[i] != '/' && dir[i] != '\0')
            continue;
        memcpy(part, dir, i);
        part[i] = '\0';
        /* EEXIST: made by another writer at the same time (this runs only when the object's
         * directory was missing), which may not have synced its parent yet: sync it here too */
        if (mkdirat(p->dirfd, part, S_DIR_MODE) != 0 && errno != EEXIST)
            return s_fail(p, errno, "making directory", part);
        char parent[VB_STORE_NAME_MAX + 1];
        s_split(part, parent);
        int pfd = openat(p->dirfd, *parent ? parent : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd >= 0) {
            (void)fsync(pfd);
            close(pfd);
        }
    }
    return 0;
}

/* Opens the directory of an object; create: make it when missing. -1 with the message set. */
static int s_open_dir(s_posix_t *p, const char *dir, bool create)
{
    int fd = openat(p->dirfd, *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create && *dir) {
        if (s_make_dirs(p, dir) != 0)
            return -1;
        fd = openat(p->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (fd < 0)
        s_fail(p, errno, "directory", *dir ? dir : ".");
    return fd;
}

static int s_set_lock(void *state, const vb_store_lock_t *lock);

static int s_open(const char *where, bool create, const vb_store_opts_t *opts, void **state)
{
    if (opts->lock.seconds > 0)
        return s_set_lock(NULL, &opts->lock);
    if (create && mkdir(where, S_DIR_MODE) != 0 && errno != EEXIST)
        return vb_error_set(s_errno_code(errno) == VB_ENOTFOUND ? VB_EIO : s_errno_code(errno),
                            "repository %s: cannot create: %s", where, strerror(errno));
    int fd = open(where, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return vb_error_set(errno == ENOENT ? VB_ENOTFOUND : VB_EIO, "repository %s: %s", where,
                            strerror(errno));
    s_posix_t *p = calloc(1, sizeof *p);
    if (!p || !(p->root = strdup(where))) {
        free(p);
        close(fd);
        return vb_error_set(VB_ENOMEM, "out of memory");
    }
    p->dirfd = fd;
    p->pid = (long)getpid();
    p->delay_us = s_test_delay_us("VBAK_TEST_STORE_DELAY_US");
    p->read_delay_us = s_test_delay_us("VBAK_TEST_STORE_READ_DELAY_US");
    const char *sf = getenv("VBAK_TEST_STORE_SYNC_FAIL");
    atomic_store(&p->sync_fails, sf ? strtol(sf, NULL, 10) : 0);
    atomic_store(&p->direct, true);
    *state = p;
    return 0;
}

static void s_close(void *state)
{
    s_posix_t *p = state;
    close(p->dirfd);
    free(p->root);
    free(p);
}

static int s_create_tmp(s_posix_t *p, int dfd, const char *tmp, bool direct)
{
    int base = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    if (direct && atomic_load(&p->direct)) {
        int fd = openat(dfd, tmp, base | O_DIRECT, S_FILE_MODE);
        if (fd >= 0 || errno != EINVAL)
            return fd;
        atomic_store(&p->direct, false); /* e.g. a file system without O_DIRECT */
    }
    return openat(dfd, tmp, base, S_FILE_MODE);
}

/* Writes the buffers one after the other: an aligned prefix of the first directly when the file
 * was opened with O_DIRECT, the rest through the page cache. */
static int s_write_iov(s_posix_t *p, int fd, const struct iovec *iov, int iovcnt)
{
    int fl = fcntl(fd, F_GETFL);
    bool direct = fl >= 0 && (fl & O_DIRECT);
    uint64_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        const uint8_t *b = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        if (direct) {
            ssize_t a = vb_pwrite_direct(fd, &p->direct, b, len, off);
            if (a < 0)
                return -1;
            b += a;
            len -= (size_t)a;
            off += (uint64_t)a;
            if (fcntl(fd, F_SETFL, fl & ~O_DIRECT) != 0)
                return -1;
            direct = false;
        }
        if (len && vb_pwrite_full(fd, b, len, off) != 0)
            return -1;
        off += len;
    }
    /* Start writeback now (no wait), so the barrier has less to do. */
    (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    return 0;
}

/* Renames tmp to leaf, failing with EEXIST when leaf exists (link where renameat2 is missing). */
static int s_install_new(int dfd, const char *tmp, const char *leaf)
{
    if (renameat2(dfd, tmp, dfd, leaf, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    if (linkat(dfd, tmp, dfd, leaf, 0) != 0)
        return -1;
    (void)unlinkat(dfd, tmp, 0);
    return 0;
}

static int s_put(void *state, const char *name, const struct iovec *iov, int iovcnt,
                 unsigned flags)
{
    s_posix_t *p = state;
    char dir[VB_STORE_NAME_MAX + 1], tmp[VB_STORE_NAME_MAX + 64];
    const char *leaf = s_split(name, dir);
    int rc = 0, fd = -1;
    bool tmp_made = false;
    if (s_put_delay(p, name))
        return VB_EBUSY;
    int dfd = s_open_dir(p, dir, true);
    if (dfd < 0)
        return vb_error_code();
    snprintf(tmp, sizeof tmp, S_TMP "%s.%ld.%" PRIu64, leaf, p->pid,
             (uint64_t)atomic_fetch_add(&p->seq, 1));
    fd = s_create_tmp(p, dfd, tmp, iovcnt == 1 && s_aligned(iov[0].iov_base, 0));
    if (fd < 0) {
        rc = s_fail(p, errno, "cannot create", name);
        goto out;
    }
    tmp_made = true;
    if (s_write_iov(p, fd, iov, iovcnt) != 0 ||
        ((flags & VB_STORE_DURABLE) && fsync(fd) != 0)) {
        rc = s_fail(p, errno, "writing", name);
        goto out;
    }
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        rc = s_fail(p, errno, "writing", name);
        goto out;
    }
    int ins = (flags & VB_STORE_REPLACE) ? renameat(dfd, tmp, dfd, leaf)
                                         : s_install_new(dfd, tmp, leaf);
    if (ins != 0) {
        rc = errno == EEXIST ? vb_error_set(VB_EEXISTS, "repository %s: %s exists", p->root, name)
                             : s_fail(p, errno, "installing", name);
        goto out;
    }
    tmp_made = false;
    if (!(flags & VB_STORE_DURABLE))
        atomic_fetch_add(&p->changes, 1);
    else if (fsync(dfd) != 0)
        rc = s_fail(p, errno, "installing", name);
out:
    if (fd >= 0)
        close(fd);
    if (tmp_made)
        (void)unlinkat(dfd, tmp, 0);
    close(dfd);
    return rc;
}

/* Opens an object to read, with O_DIRECT when *direct asks and the file system takes it (then
 * *direct stays true). -1 with errno. */
static int s_open_read(s_posix_t *p, const char *name, bool *direct)
{
    *direct = *direct && atomic_load(&p->direct);
    int fd = openat(p->dirfd, name, O_RDONLY | O_CLOEXEC | (*direct ? O_DIRECT : 0));
    if (fd < 0 && *direct && errno == EINVAL) {
        *direct = false;
        fd = openat(p->dirfd, name, O_RDONLY | O_CLOEXEC);
    }
    return fd;
}

/* Reads size bytes (the whole file) into buf: a direct fd reads whole aligned blocks. */
static int s_read_all(int fd, bool direct, uint8_t *buf, size_t size, size_t cap)
{
    size_t want = direct ? (size + S_ALIGN - 1) & ~(size_t)(S_ALIGN - 1) : size, got = 0;
    if (want > cap)
        want = size;
    while (got < size) {
        ssize_t n = pread(fd, buf + got, want - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? (errno = ENODATA, -1) : -1;
        got += (size_t)n;
    }
    return 0;
}

static int s_get(void *state, const char *name, void *buf, size_t cap, size_t *len)
{
    s_posix_t *p = state;
    s_sleep_us(p->read_delay_us);
    bool direct = s_aligned(buf, cap);
    int fd = s_open_read(p, name, &direct);
    if (fd < 0)
        return s_fail(p, errno, "object", name);
    int rc = 0;
    struct stat st = {.st_mode = S_IFREG}; /* a failed fstat reports its errno */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = s_fail(p, S_ISREG(st.st_mode) ? errno : ENOENT, "object", name);
        goto out;
    }
    if ((uint64_t)st.st_size > cap) {
        rc = vb_error_set(VB_ECORRUPT, "repository %s: object %s holds %lld bytes, more than %zu",
                          p->root, name, (long long)st.st_size, cap);
        goto out;
    }
    if (s_read_all(fd, direct, buf, (size_t)st.st_size, cap) != 0) {
        if (!direct || errno != EINVAL) {
            rc = s_fail(p, errno, "reading", name);
            goto out;
        }
        /* the device refuses this alignment: read this one through the page cache */
        int bfd = openat(p->dirfd, name, O_RDONLY | O_CLOEXEC);
        if (bfd < 0 || s_read_all(bfd, false, buf, (size_t)st.st_size, cap) != 0)
            rc = s_fail(p, errno, "reading", name);
        if (bfd >= 0)
            close(bfd);
    }
    *len = (size_t)st.st_size;
out:
    close(fd);
    return rc;
}

static int s_get_range(void *state, const char *name, uint64_t off, void *buf, size_t len,
                       size_t *got)
{
    s_posix_t *p = state;
    s_sleep_us(p->read_delay_us);
    bool direct = s_aligned(buf, len) && off % S_ALIGN == 0;
    int fd = s_open_read(p, name, &direct);
    if (fd < 0)
        return s_fail(p, errno, "object", name);
    size_t n = 0;
    int rc = 0;
    struct stat st = {.st_mode = S_IFREG}; /* a failed fstat reports its errno */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = s_fail(p, S_ISREG(st.st_mode) ? errno : ENOENT, "object", name);
        len = 0;
    }
    while (n < len) {
        ssize_t r = pread(fd, (uint8_t *)buf + n, len - n, (off_t)(off + n));
        if (r < 0 && errno == EINTR)
            continue;
        if (direct && ((r < 0 && errno == EINVAL) || (r > 0 && (n + (size_t)r) % S_ALIGN))) {
            /* refused, or short at the end of the file: the rest (if any) reads buffered */
            direct = false;
            int fl = fcntl(fd, F_GETFL);
            if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_DIRECT) != 0) {
                rc = s_fail(p, errno, "reading", name);
                break;
            }
            if (r < 0)
                continue;
        }
        if (r < 0) {
            rc = s_fail(p, errno, "reading", name);
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *got = n;
    return rc;
}

static int s_stat(void *state, const char *name, vb_store_stat_t *out)
{
    s_posix_t *p = state;
    struct stat st;
    if (fstatat(p->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return s_fail(p, errno, "object", name);
    if (!S_ISREG(st.st_mode))
        return s_fail(p, ENOENT, "object", name);
    out->size = (uint64_t)st.st_size;
    out->mtime = st.st_mtim.tv_sec;
    out->retain_until = 0;
    return 0;
}

static int s_freshen(void *state, const char *name)
{
    s_posix_t *p = state;
    if (utimensat(p->dirfd, name, NULL, 0) != 0)
        return s_fail(p, errno, "object", name);
    return 0;
}

/* ---------- walking ---------- */

typedef struct {
    s_posix_t *p;
    const char *prefix; /* only paths that can lead to it are entered */
    /* Called for every file (hidden ones too); > 0 stops the walk, < 0 fails it. */
    int (*visit)(void *ctx, int dfd, const char *leaf, const char *path, const struct stat *st);
    void *ctx;
} s_walk_t;

static bool s_may_lead(const char *path, const char *prefix)
{
    size_t a = strlen(path), b = strlen(prefix);
    return strncmp(path, prefix, a < b ? a : b) == 0;
}

/* Walks the directory dfd whose relative path is path[0..plen) (with a trailing '/' or empty).
 * Memory: one open directory and one path buffer per level. */
static int s_walk(s_walk_t *w, int dfd, char *path, size_t plen, int depth)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return s_fail(w->p, errno, "listing", plen ? path : ".");
    }
    rewinddir(d); /* a dup shares the offset a previous listing left at the end */
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || plen + n + 2 > VB_STORE_NAME_MAX)
            continue;
        memcpy(path + plen, e->d_name, n + 1);
        if (!s_may_lead(path, w->prefix) ||
            fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* not wanted, or gone meanwhile */
        if (S_ISREG(st.st_mode)) {
            rc = w->visit(w->ctx, dfd, e->d_name, path, &st);
        } else if (S_ISDIR(st.st_mode) && e->d_name[0] != '.' && depth < S_DEPTH_MAX) {
            int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sub < 0)
                continue;
            path[plen + n] = '/';
            path[plen + n + 1] = '\0';
            rc = s_walk(w, sub, path, plen + n + 1, depth + 1);
            close(sub);
        }
    }
    closedir(d);
    path[plen] = '\0';
    return rc;
}

static int s_walk_root(s_walk_t *w)
{
    char path[VB_STORE_NAME_MAX + 2] = "";
    int rc = s_walk(w, w->p->dirfd, path, 0, 0);
    return rc > 0 ? 0 : rc;
}

typedef struct {
    const s_posix_t *p;
    const char *prefix;
    vb_store_list_fn fn;
    void *arg;
} s_list_t;

static int s_list_visit(void *ctx, int dfd, const char *leaf, const char *path,
                        const struct stat *st)
{
    (void)dfd;
    s_list_t *l = ctx;
    if (leaf[0] == '.' || strncmp(path, l->prefix, strlen(l->prefix)) != 0)
        return 0;
    s_test_delay(l->p);
    vb_store_stat_t s = {.size = (uint64_t)st->st_size, .mtime = st->st_mtim.tv_sec};
    return l->fn(l->arg, path, &s);
}

static int s_list(void *state, const char *prefix, vb_store_list_fn fn, void *arg)
{
    s_list_t l = {.p = state, .prefix = prefix, .fn = fn, .arg = arg};
    s_walk_t w = {.p = state, .prefix = prefix, .visit = s_list_visit, .ctx = &l};
    return s_walk_root(&w);
}

typedef struct {
    time_t older_than;
    bool dry_run;
    uint64_t removed;
} s_clean_t;

static int s_clean_visit(void *ctx, int dfd, const char *leaf, const char *path,
                         const struct stat *st)
{
    (void)path;
    s_clean_t *c = ctx;
    if (strncmp(leaf, S_ASIDE, strlen(S_ASIDE)) == 0) {
        /* Set aside by an interrupted conditional remove: put back unless it exists again. */
        const char *orig = leaf + strlen(S_ASIDE);
        if (faccessat(dfd, orig, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            (void)unlinkat(dfd, leaf, 0);
        else
            (void)renameat(dfd, leaf, dfd, orig);
    } else if (strncmp(leaf, S_TMP, strlen(S_TMP)) == 0 && st->st_mtim.tv_sec < c->older_than) {
        if (!c->dry_run)
            (void)unlinkat(dfd, leaf, 0);
        c->removed++;
    }
    return 0;
}

static int s_cleanup(void *state, time_t older_than, bool dry_run, uint64_t *removed)
{
    s_clean_t c = {.older_than = older_than, .dry_run = dry_run};
    s_walk_t w = {.p = state, .prefix = "", .visit = s_clean_visit, .ctx = &c};
    int rc = s_walk_root(&w);
    *removed = c.removed;
    return rc;
}

/* ---------- remove, move, barrier ---------- */

/* Moves the object aside, re-checks its mtime (a writer may just have freshened it), then
 * removes it or puts it back. */
static int s_remove_if_old(s_posix_t *p, const char *name, time_t unless_since)
{
    char dir[VB_STORE_NAME_MAX + 1], aside[VB_STORE_NAME_MAX + 8];
    const char *leaf = s_split(name, dir);
    int dfd = s_open_dir(p, dir, false);
    if (dfd < 0)
        return vb_error_code();
    snprintf(aside, sizeof aside, S_ASIDE "%s", leaf);
    int rc = 0;
    struct stat st;
    if (renameat(dfd, leaf, dfd, aside) != 0) {
        rc = s_fail(p, errno, "removing", name);
    } else if (fstatat(dfd, aside, &st, 0) == 0 && st.st_mtim.tv_sec < unless_since) {
        if (unlinkat(dfd, aside, 0) != 0)
            rc = s_fail(p, errno, "removing", name);
        else
            atomic_fetch_add(&p->changes, 1);
    } else if (renameat(dfd, aside, dfd, leaf) != 0) {
        rc = s_fail(p, errno, "restoring", name);
    } else {
        rc = vb_error_set(VB_EBUSY, "repository %s: %s was used meanwhile: kept", p->root, name);
    }
    close(dfd);
    return rc;
}

static int s_remove(void *state, const char *name, time_t unless_since)
{
    s_posix_t *p = state;
    s_test_delay(p);
    if (unless_since)
        return s_remove_if_old(p, name, unless_since);
    if (unlinkat(p->dirfd, name, 0) != 0)
        return s_fail(p, errno, "removing", name);
    atomic_fetch_add(&p->changes, 1);
    return 0;
}

static int s_hide(void *state, const char *name)
{
    return s_remove(state, name, 0); /* a directory keeps no versions to hide behind */
}

static int s_set_lock(void *state, const vb_store_lock_t *lock)
{
    (void)state;
    if (lock->seconds > 0)
        return vb_error_set(VB_EUNSUPPORTED, "Object Lock needs an S3 repository (a bucket "
                                             "made with Object Lock), not a directory");
    return 0;
}

static int s_extend_lock(void *state, const char *name)
{
    (void)state;
    (void)name;
    return vb_error_set(VB_EUNSUPPORTED, "Object Lock needs an S3 repository, not a directory");
}

static int s_list_hidden(void *state, const char *prefix, vb_store_list_fn fn, void *arg)
{
    (void)state; /* a directory keeps no versions: nothing is ever hidden */
    (void)prefix;
    (void)fn;
    (void)arg;
    return 0;
}

static int s_unhide(void *state, const char *name)
{
    s_posix_t *p = state;
    return vb_error_set(VB_ENOTFOUND,
                        "repository %s: %s is not hidden (a directory keeps no "
                        "versions)",
                        p->root, name);
}

static int s_move(void *state, const char *from, const char *to)
{
    s_posix_t *p = state;
    char dir[VB_STORE_NAME_MAX + 1];
    s_split(to, dir);
    int dfd = s_open_dir(p, dir, true);
    if (dfd < 0)
        return vb_error_code();
    int rc = 0;
    if (renameat(p->dirfd, from, p->dirfd, to) != 0)
        rc = s_fail(p, errno, "moving", from);
    else {
        (void)fsync(dfd);
        atomic_fetch_add(&p->changes, 1); /* the source directory's entry */
    }
    close(dfd);
    return rc;
}

/* What was counted before the syncfs began is durable after it; what is counted while it runs
 * stays for the next barrier. everything: a sync whatever this handle counted (another handle
 * or process may have written what the caller relies on). */
static int s_barrier(void *state, bool everything)
{
    s_posix_t *p = state;
    uint64_t want = atomic_load(&p->changes);
    if (!everything && atomic_load(&p->synced) >= want)
        return 0;
    if ((s_sync_fails(p) ? (errno = EIO, -1) : syncfs(p->dirfd)) != 0) {
        /* the kernel reports a writeback error once: the handle is broken from now on
         * (vb_store_barrier), whatever a later syncfs says */
        int rc = s_errno_code(errno) == VB_ENOSPC ? VB_ENOSPC : VB_EIO;
        return vb_error_set(rc, "repository %s: sync failed: %s", p->root, strerror(errno));
    }
    uint64_t seen = atomic_load(&p->synced);
    while (seen < want && !atomic_compare_exchange_weak(&p->synced, &seen, want))
        ;
    return 0;
}

static int s_local_path(void *state, const char *name, char *out, size_t outsz)
{
    s_posix_t *p = state;
    int n = snprintf(out, outsz, "%s/%s", p->root, name);
    if (n < 0 || (size_t)n >= outsz)
        return vb_error_set(VB_EINVAL, "repository %s: path of %s too long", p->root, name);
    return 0;
}

const vb_store_ops_t vb_store_posix_ops = {
    .scheme = "file",
    /* two pack writes at once: each is an O_DIRECT write then an fsync, and the disk takes a
     * second one while the first waits (datapath full backup, 256 KiB chunks: 1.18-1.26 s with
     * one, 1.04-1.19 s with two); the cost is one more pack buffer per open repository */
    .puts_in_flight = 2,
    .open = s_open,
    .close = s_close,
    .put = s_put,
    .get = s_get,
    .get_range = s_get_range,
    .stat = s_stat,
    .freshen = s_freshen,
    .list = s_list,
    .remove = s_remove,
    .hide = s_hide,
    .set_lock = s_set_lock,
    .extend_lock = s_extend_lock,
    .list_hidden = s_list_hidden,
    .unhide = s_unhide,
    .move = s_move,
    .barrier = s_barrier,
    .cleanup = s_cleanup,
    .local_path = s_local_path,
};
