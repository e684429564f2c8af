/* The store contract (store.h), table-driven: every test runs against every kind of store in
 * s_kinds[]. A new store adds one row (how to make an empty one) and passes the same tests. */
#include "repo/store.h"

#include "repo_testutil.h"
#include "pagecache_testutil.h"
#include "s3_testutil.h"

#include <sys/uio.h>
#include <time.h>

typedef struct {
    const char *kind;
    /* A location of a new empty store; `tmp` is a fresh private directory it may use; *opts
     * what opening it needs besides (strings may point into `tmp`-lived statics). */
    void (*location)(const char *tmp, char *out, size_t outsz, vb_store_opts_t *opts);
} s_kind_t;

static void s_posix_plain(const char *tmp, char *out, size_t outsz, vb_store_opts_t *opts)
{
    (void)opts;
    snprintf(out, outsz, "%s/store", tmp);
}

static void s_posix_url(const char *tmp, char *out, size_t outsz, vb_store_opts_t *opts)
{
    (void)opts;
    snprintf(out, outsz, "file://%s/store", tmp);
}

/* A new bucket on the fixture's RGW, path-style over http or virtual-host style over TLS. */
static void s_s3(const char *tmp, char *out, size_t outsz, vb_store_opts_t *opts, bool tls)
{
    static char creds[4096];
    char bucket[64];
    tu_rgw_t g;
    tu_rgw_load(&g);
    tu_rgw_creds(&g, tmp, "s3.cred", g.secret, creds, sizeof creds);
    tu_rgw_bucket(bucket, sizeof bucket);
    if (tls)
        snprintf(out, outsz, "s3://%s/repo/one?ca=%s&endpoint=%s&region=%s&style=virtual", bucket,
                 g.ca, g.tls_endpoint, g.region);
    else
        snprintf(out, outsz, "s3://%s/repo?endpoint=%s&region=%s", bucket, g.endpoint, g.region);
    opts->credentials_file = creds;
    opts->create_bucket = true;
}

static void s_s3_path(const char *tmp, char *out, size_t outsz, vb_store_opts_t *opts)
{
    s_s3(tmp, out, outsz, opts, false);
}

static void s_s3_virtual_tls(const char *tmp, char *out, size_t outsz, vb_store_opts_t *opts)
{
    s_s3(tmp, out, outsz, opts, true);
}

static const s_kind_t s_kinds[] = {
    {"posix (path)", s_posix_plain},
    {"posix (file://)", s_posix_url},
    {"s3 (path style, http)", s_s3_path},
    {"s3 (virtual host, https)", s_s3_virtual_tls},
};
#define S_NKINDS (sizeof s_kinds / sizeof s_kinds[0])

static char *s_tmp;

static vb_store_t *s_open(size_t k)
{
    char loc[4096];
    vb_store_opts_t opts = {0};
    s_tmp = tu_tmpdir();
    s_kinds[k].location(s_tmp, loc, sizeof loc, &opts);
    vb_store_t *st = vb_store_open_opts(loc, true, &opts);
    cr_assert_not_null(st, "%s: open %s: %s", s_kinds[k].kind, loc, vb_error_msg());
    return st;
}

static void s_close(vb_store_t **st)
{
    vb_store_destroy(st);
    tu_rmrf(s_tmp);
    s_tmp = NULL;
}

static void s_put_str(vb_store_t *st, const char *name, const char *text, unsigned flags)
{
    cr_assert_eq(vb_store_put(st, name, text, strlen(text), flags), 0, "put %s: %s", name,
                 vb_error_msg());
}

static void s_assert_content(vb_store_t *st, const char *name, const char *want, const char *kind)
{
    char buf[256];
    size_t len = 0;
    cr_assert_eq(vb_store_get(st, name, buf, sizeof buf, &len), 0, "%s: get %s: %s", kind, name,
                 vb_error_msg());
    cr_assert_eq(len, strlen(want), "%s: %s has %zu bytes", kind, name, len);
    cr_assert_eq(memcmp(buf, want, len), 0, "%s: %s content", kind, name);
}

Test(store, put_if_absent_keeps_the_first_and_replace_overwrites)
{
    for (size_t k = 0; k < S_NKINDS; k++) {
        vb_store_t *st = s_open(k);
        const char *kind = s_kinds[k].kind;
        s_put_str(st, "packs/ab/one", "first", 0);
        cr_assert_eq(vb_store_put(st, "packs/ab/one", "second", 6, 0), VB_EEXISTS, "%s", kind);
        s_assert_content(st, "packs/ab/one", "first", kind);
        s_put_str(st, "packs/ab/one", "third!", VB_STORE_REPLACE | VB_STORE_DURABLE);
        s_assert_content(st, "packs/ab/one", "third!", kind);
        /* several buffers make one object */
        struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cdef", 4}};
        cr_assert_eq(vb_store_putv(st, "config", iov, 3, VB_STORE_DURABLE), 0, "%s", kind);
        s_assert_content(st, "config", "abcdef", kind);
        cr_assert_eq(vb_store_barrier(st), 0, "%s: %s", kind, vb_error_msg());
        s_close(&st);
    }
}

Test(store, get_and_get_range_and_missing_objects)
{
    for (size_t k = 0; k < S_NKINDS; k++) {
        vb_store_t *st = s_open(k);
        const char *kind = s_kinds[k].kind;
        s_put_str(st, "x/y", "0123456789", 0);
        char buf[16];
        size_t got = 99;
        cr_assert_eq(vb_store_get_range(st, "x/y", 3, buf, 4, &got), 0, "%s", kind);
        cr_assert_eq(got, 4);
        cr_assert_eq(memcmp(buf, "3456", 4), 0, "%s", kind);
        cr_assert_eq(vb_store_get_range(st, "x/y", 8, buf, 8, &got), 0, "%s", kind);
        cr_assert_eq(got, 2, "%s: a range past the end is short", kind);
        cr_assert_eq(vb_store_get(st, "x/y", buf, 4, &got), VB_ECORRUPT,
                     "%s: an object larger than the buffer", kind);
        cr_assert_eq(vb_store_get(st, "x/z", buf, sizeof buf, &got), VB_ENOTFOUND, "%s", kind);
        cr_assert_eq(vb_store_get_range(st, "nope", 0, buf, 1, &got), VB_ENOTFOUND, "%s", kind);
        cr_assert_eq(vb_store_get(st, "x", buf, sizeof buf, &got), VB_ENOTFOUND,
                     "%s: a prefix of a name is no object", kind);
        void *all = NULL;
        size_t len = 0;
        cr_assert_eq(vb_store_get_alloc(st, "x/y", 64, &all, &len), 0, "%s", kind);
        cr_assert_eq(len, 10);
        cr_assert_eq(memcmp(all, "0123456789", 10), 0);
        free(all);
        cr_assert_eq(vb_store_get_alloc(st, "x/y", 9, &all, &len), VB_ECORRUPT, "%s", kind);
        vb_store_stat_t s;
        cr_assert_eq(vb_store_stat(st, "x/y", &s), 0, "%s", kind);
        cr_assert_eq(s.size, 10, "%s", kind);
        cr_assert(llabs((long long)(s.mtime - time(NULL))) < 60, "%s: mtime is now", kind);
        cr_assert(vb_store_exists(st, "x/y"));
        /* exists is a predicate: the message of the error being reported survives it */
        vb_error_set(VB_ENOTFOUND, "chunk abc is missing");
        cr_assert(!vb_store_exists(st, "x/q"));
        cr_assert_str_eq(vb_error_msg(), "chunk abc is missing", "%s", kind);
        cr_assert_eq(vb_error_code(), VB_ENOTFOUND);
        s_close(&st);
    }
}

typedef struct {
    char names[16][64];
    size_t n;
    size_t stop_after;
} s_seen_t;

static int s_collect(void *arg, const char *name, const vb_store_stat_t *st)
{
    s_seen_t *s = arg;
    cr_assert_lt(s->n, 16);
    snprintf(s->names[s->n++], 64, "%s:%llu", name, (unsigned long long)st->size);
    return s->stop_after && s->n == s->stop_after ? 1 : 0;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void s_list_sorted(vb_store_t *st, const char *prefix, s_seen_t *seen)
{
    memset(seen, 0, sizeof *seen);
    cr_assert_eq(vb_store_list(st, prefix, s_collect, seen), 0, "list %s: %s", prefix,
                 vb_error_msg());
    qsort(seen->names, seen->n, sizeof seen->names[0], s_cmp);
}

Test(store, list_prefix_names_exactly_the_objects_under_it)
{
    for (size_t k = 0; k < S_NKINDS; k++) {
        vb_store_t *st = s_open(k);
        const char *kind = s_kinds[k].kind;
        s_put_str(st, "config", "c", 0);
        s_put_str(st, "chunks/00/aa", "12", 0);
        s_put_str(st, "chunks/01/ab", "345", 0);
        s_put_str(st, "chunksmore", "4444", 0);
        s_put_str(st, "manifests/vm-1/rp1", "x", 0);
        s_seen_t seen;
        s_list_sorted(st, "chunks/", &seen);
        cr_assert_eq(seen.n, 2, "%s: %zu", kind, seen.n);
        cr_assert_str_eq(seen.names[0], "chunks/00/aa:2", "%s", kind);
        cr_assert_str_eq(seen.names[1], "chunks/01/ab:3", "%s", kind);
        s_list_sorted(st, "chunks", &seen);
        cr_assert_eq(seen.n, 3, "%s: a prefix need not end at a '/'", kind);
        s_list_sorted(st, "", &seen);
        cr_assert_eq(seen.n, 5, "%s", kind);
        s_list_sorted(st, "manifests/vm-1/", &seen);
        cr_assert_eq(seen.n, 1, "%s", kind);
        cr_assert_str_eq(seen.names[0], "manifests/vm-1/rp1:1");
        s_list_sorted(st, "nothing/", &seen);
        cr_assert_eq(seen.n, 0, "%s", kind);
        /* a callback returning > 0 stops the listing, which still succeeds */
        memset(&seen, 0, sizeof seen);
        seen.stop_after = 1;
        cr_assert_eq(vb_store_list(st, "", s_collect, &seen), 0, "%s", kind);
        cr_assert_eq(seen.n, 1, "%s", kind);
        s_close(&st);
    }
}

Test(store, names_outside_the_grammar_are_refused)
{
    static const char *bad[] = {"", "/abs", "a//b", "a/", "../up", "a/../b", ".hidden",
                                "a/.tmp.x", "sp ace", "a\\b"};
    for (size_t k = 0; k < S_NKINDS; k++) {
        vb_store_t *st = s_open(k);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            cr_assert_eq(vb_store_put(st, bad[i], "x", 1, 0), VB_EINVAL, "%s: '%s'",
                         s_kinds[k].kind, bad[i]);
            cr_assert_eq(vb_store_check_name(bad[i]), VB_EINVAL);
        }
        char long_name[VB_STORE_NAME_MAX + 2];
        memset(long_name, 'a', sizeof long_name - 1);
        long_name[sizeof long_name - 1] = '\0';
        cr_assert_eq(vb_store_put(st, long_name, "x", 1, 0), VB_EINVAL);
        s_seen_t seen;
        s_list_sorted(st, "", &seen);
        cr_assert_eq(seen.n, 0, "%s: a refused put left something", s_kinds[k].kind);
        s_close(&st);
    }
}

/* Makes the objects older than the cutoff it returns: their mtimes set an hour back where the
 * store has files, else (S3: the server sets mtimes) the clock waited past them. */
static time_t s_age(vb_store_t *st, const char *const *names, size_t n)
{
    char path[4096];
    time_t newest = 0;
    for (size_t i = 0; i < n; i++) {
        if (vb_store_local_path(st, names[i], path, sizeof path) != 0) {
            vb_store_stat_t s;
            cr_assert_eq(vb_store_stat(st, names[i], &s), 0, "%s", vb_error_msg());
            newest = s.mtime > newest ? s.mtime : newest;
            continue;
        }
        struct timespec ts[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
        cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0, "%s", strerror(errno));
    }
    if (!newest)
        return time(NULL) - 60;
    tu_clock_past(newest);
    return time(NULL);
}

Test(store, remove_move_and_remove_unless_used_since)
{
    for (size_t k = 0; k < S_NKINDS; k++) {
        vb_store_t *st = s_open(k);
        const char *kind = s_kinds[k].kind;
        s_put_str(st, "a/1", "one", 0);
        s_put_str(st, "a/2", "two", 0);
        s_put_str(st, "a/3", "three", 0);
        cr_assert_eq(vb_store_remove(st, "a/1", 0), 0, "%s", kind);
        cr_assert(!vb_store_exists(st, "a/1"), "%s", kind);
        cr_assert_eq(vb_store_remove(st, "a/1", 0), VB_ENOTFOUND, "%s", kind);

        /* conditional: an object freshened since the cutoff is kept */
        static const char *const aged[] = {"a/2", "a/3"};
        time_t cutoff = s_age(st, aged, 2);
        cr_assert_eq(vb_store_freshen(st, "a/2"), 0, "%s", kind);
        cr_assert_eq(vb_store_remove(st, "a/2", cutoff), VB_EBUSY, "%s", kind);
        s_assert_content(st, "a/2", "two", kind);
        cr_assert_eq(vb_store_remove(st, "a/3", cutoff), 0, "%s", kind);
        cr_assert(!vb_store_exists(st, "a/3"), "%s", kind);
        cr_assert_eq(vb_store_freshen(st, "a/3"), VB_ENOTFOUND, "%s", kind);

        cr_assert_eq(vb_store_move(st, "a/2", "q/2"), 0, "%s: %s", kind, vb_error_msg());
        s_assert_content(st, "q/2", "two", kind);
        cr_assert(!vb_store_exists(st, "a/2"), "%s", kind);
        cr_assert_eq(vb_store_move(st, "a/2", "q/3"), VB_ENOTFOUND, "%s", kind);
        s_close(&st);
    }
}

/* What only the POSIX directory store promises: private modes, temp files of crashed writers
 * cleaned up, objects an interrupted conditional remove set aside put back. */
Test(store, posix_files_are_private_and_crash_leftovers_are_cleaned)
{
    mode_t old = umask(0);
    vb_store_t *st = s_open(0);
    s_put_str(st, "d1/d2/obj", "x", 0);
    umask(old);
    char path[4096], dir[4096];
    struct stat s;
    cr_assert_eq(vb_store_local_path(st, "d1/d2/obj", path, sizeof path), 0);
    cr_assert_eq(stat(path, &s), 0);
    cr_assert_eq(s.st_mode & 0777, 0600, "object mode %o", s.st_mode & 0777);
    snprintf(dir, sizeof dir, "%s/store/d1", s_tmp);
    cr_assert_eq(stat(dir, &s), 0);
    cr_assert_eq(s.st_mode & 0777, 0700, "directory mode %o", s.st_mode & 0777);

    char tmp_old[4096], tmp_new[4096], aside[4096];
    snprintf(tmp_old, sizeof tmp_old, "%s/store/d1/d2/.tmp.obj.1.1", s_tmp);
    snprintf(tmp_new, sizeof tmp_new, "%s/store/d1/d2/.tmp.obj.1.2", s_tmp);
    snprintf(aside, sizeof aside, "%s/store/d1/.gc.gone", s_tmp);
    tu_write_file(tmp_old, "t", 1);
    tu_write_file(tmp_new, "t", 1);
    tu_write_file(aside, "g", 1);
    struct timespec ts[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, tmp_old, ts, 0), 0);
    s_seen_t seen;
    s_list_sorted(st, "", &seen);
    cr_assert_eq(seen.n, 1, "temp and set-aside files are not objects");
    uint64_t removed = 0;
    cr_assert_eq(vb_store_cleanup(st, time(NULL) - 60, true, &removed), 0);
    cr_assert_eq(removed, 1);
    cr_assert_eq(access(tmp_old, F_OK), 0, "a dry run removes nothing");
    cr_assert_eq(vb_store_cleanup(st, time(NULL) - 60, false, &removed), 0);
    cr_assert_eq(removed, 1);
    cr_assert_eq(access(tmp_old, F_OK), -1, "an old temp file is removed");
    cr_assert_eq(access(tmp_new, F_OK), 0, "a writer in flight keeps its temp file");
    s_assert_content(st, "d1/gone", "g", "posix");
    s_close(&st);
}

/* A ranged read of whole blocks into an aligned buffer (a restore's read-ahead) goes past the
 * page cache and still stops where the object ends. */
Test(store, posix_aligned_ranged_reads_bypass_the_page_cache)
{
    vb_store_t *st = s_open(0);
    size_t size = 3 * 4096 + 100;
    void *mem = NULL;
    cr_assert_eq(posix_memalign(&mem, 4096, 5 * 4096), 0);
    uint8_t *buf = mem;
    for (size_t i = 0; i < size; i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    cr_assert_eq(vb_store_put(st, "packs/p", buf, size, 0), 0, "%s", vb_error_msg());
    char path[4096];
    cr_assert_eq(vb_store_local_path(st, "packs/p", path, sizeof path), 0);
    void *back_mem = NULL;
    cr_assert_eq(posix_memalign(&back_mem, 4096, 4 * 4096), 0);
    uint8_t *back = back_mem;
    size_t got = 0;
    cr_assert_eq(vb_store_get_range(st, "packs/p", 4096, back, 4 * 4096, &got), 0, "%s",
                 vb_error_msg());
    cr_assert_eq(got, size - 4096);
    cr_assert_eq(memcmp(back, buf + 4096, got), 0);
    if (tpc_bypassable(path))
        cr_expect_eq(tpc_cached_pages(path, 0, 3 * 4096), 0,
                     "the whole blocks were read through the page cache");
    cr_assert_eq(vb_store_get_range(st, "packs/p", 5, back, 4096, &got), 0, "%s", vb_error_msg());
    cr_assert_eq(got, 4096);
    cr_assert_eq(memcmp(back, buf + 5, got), 0, "an unaligned range still reads");
    free(back_mem);
    free(mem);
    s_close(&st);
}

/* The directory store's barrier syncs only when something is not durable yet (its sync made
 * to fail, VBAK_TEST_STORE_SYNC_FAIL=N: the first N syncs fail, shows when it runs): after
 * nothing, or after puts with VB_STORE_DURABLE only (packs, which their upload fsyncs), it has
 * nothing to do and succeeds; after a plain put (a format 1 chunk) it syncs; the barrier over
 * everything (vb_store_barrier_all) syncs whatever this handle wrote. (Before, every barrier
 * synced the whole file system.) */
Test(store, posix_barrier_syncs_only_what_is_not_durable_yet)
{
    setenv("VBAK_TEST_STORE_SYNC_FAIL", "1", 1);
    vb_store_t *st = s_open(0);
    cr_assert_eq(vb_store_barrier(st), 0, "nothing written: %s", vb_error_msg());
    vb_store_t *all = vb_store_open(vb_store_location(st), false);
    unsetenv("VBAK_TEST_STORE_SYNC_FAIL");
    cr_assert_not_null(all, "%s", vb_error_msg());
    cr_assert_eq(vb_store_barrier_all(all), VB_EIO, "the barrier over everything syncs");
    vb_store_destroy(&all);
    s_put_str(st, "packs/00/p", "pack", VB_STORE_DURABLE);
    cr_assert_eq(vb_store_barrier(st), 0, "durable puts only: %s", vb_error_msg());
    s_put_str(st, "chunks/00/c", "chunk", 0);
    cr_assert_eq(vb_store_barrier(st), VB_EIO, "a plain put: the sync runs");
    cr_assert(strstr(vb_error_msg(), "sync failed"), "%s", vb_error_msg());
    s_close(&st);
}

/* A failed sync breaks the handle: the kernel reports a writeback error once, so the next syncfs
 * succeeds though what the failed one covered may be lost; a later commit on the handle must not
 * call that durable. Every later barrier fails with the first failure's reason, even one with
 * nothing of its own to sync; a handle opened again works. (Before, the second barrier synced
 * again and passed.) */
Test(store, a_failed_sync_breaks_the_handle_for_good)
{
    setenv("VBAK_TEST_STORE_SYNC_FAIL", "1", 1);
    vb_store_t *st = s_open(0);
    unsetenv("VBAK_TEST_STORE_SYNC_FAIL");
    cr_assert_not(vb_store_broken(st));
    s_put_str(st, "chunks/00/c", "chunk", 0);
    cr_assert_eq(vb_store_barrier(st), VB_EIO, "the first sync fails");
    cr_assert(vb_store_broken(st));
    cr_assert_eq(vb_store_barrier(st), VB_EIO, "the kernel would let this sync pass");
    cr_assert(strstr(vb_error_msg(), "an earlier sync failed") &&
                  strstr(vb_error_msg(), "sync failed: "),
              "names the first failure: %s", vb_error_msg());
    s_put_str(st, "packs/00/p", "pack", VB_STORE_DURABLE);
    cr_assert_eq(vb_store_barrier_all(st), VB_EIO, "nor does any later barrier");
    vb_store_t *again = vb_store_open(vb_store_location(st), false);
    cr_assert_not_null(again, "%s", vb_error_msg());
    cr_assert_not(vb_store_broken(again));
    cr_assert_eq(vb_store_barrier_all(again), 0, "opened again: %s", vb_error_msg());
    vb_store_destroy(&again);
    s_close(&st);
}

Test(store, locations)
{
    cr_assert_null(vb_store_open("nope://bucket/repo", false));
    cr_assert_eq(vb_error_code(), VB_EUNSUPPORTED);
    cr_assert(strstr(vb_error_msg(), "nope://bucket/repo"), "%s", vb_error_msg());
    cr_assert_null(vb_store_open("file://", false));
    cr_assert_eq(vb_error_code(), VB_EINVAL);
    char *tmp = tu_tmpdir();
    char loc[4096];
    snprintf(loc, sizeof loc, "%s/none", tmp);
    cr_assert_null(vb_store_open(loc, false));
    cr_assert_eq(vb_error_code(), VB_ENOTFOUND, "%s", vb_error_msg());
    vb_store_t *st = vb_store_open(loc, true);
    cr_assert_not_null(st, "%s", vb_error_msg());
    cr_assert_str_eq(vb_store_location(st), loc);
    vb_store_destroy(&st);
    vb_store_destroy(&st); /* safe twice */
    tu_rmrf(tmp);
}
