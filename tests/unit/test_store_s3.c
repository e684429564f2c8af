/* The S3 store against a real Ceph RGW (the ctest fixture "rgw"): what only S3 has — list pages
 * and continuation, multipart uploads and their cleanup, ranges across parts — and the failures
 * users meet (wrong secret, missing bucket, unreachable endpoint, CA mismatch, a plain-http
 * endpoint elsewhere than loopback, a credentials file others can read): each one clear line
 * naming the endpoint and bucket, nothing written, no secret in it. The store contract shared with
 * the POSIX store is test_store.c's (its S3 rows). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "repo/gc.h"
#include "repo/index.h"
#include "repo/repo.h"
#include "repo/s3req.h"
#include "repo/store.h"
#include "repo/undelete.h"

#include "repo_testutil.h"
#include "s3_testutil.h"

typedef struct {
    tu_rgw_t g;
    char *tmp; /* tu_rmrf frees it */
    char creds[4096];
    char bucket[64];
    char loc[8192];
    vb_store_opts_t opts;
} s_env_t;

/* A fresh bucket (made by the open, with Object Lock when lock_s > 0) and a location for it
 * with `extra` query parameters. */
static vb_store_t *s_open_lock(s_env_t *e, const char *extra, int64_t lock_s)
{
    e->tmp = tu_tmpdir();
    tu_rgw_load(&e->g);
    tu_rgw_creds(&e->g, e->tmp, "s3.cred", e->g.secret, e->creds, sizeof e->creds);
    tu_rgw_bucket(e->bucket, sizeof e->bucket);
    snprintf(e->loc, sizeof e->loc, "s3://%s/pfx?endpoint=%s&region=%s%s", e->bucket, e->g.endpoint,
             e->g.region, extra ? extra : "");
    e->opts = (vb_store_opts_t){.credentials_file = e->creds, .create_bucket = true,
                                .lock = {.seconds = lock_s}};
    vb_store_t *st = vb_store_open_opts(e->loc, true, &e->opts);
    cr_assert_not_null(st, "open %s: %s", e->loc, vb_error_msg());
    return st;
}

static vb_store_t *s_open(s_env_t *e, const char *extra)
{
    return s_open_lock(e, extra, 0);
}

static int s_count(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)name;
    (void)st;
    size_t *n = arg;
    (*n)++;
    return 0;
}

static size_t s_objects(vb_store_t *st)
{
    size_t n = 0;
    cr_assert_eq(vb_store_list(st, "", s_count, &n), 0, "%s", vb_error_msg());
    return n;
}

/* The failure is one line naming the endpoint and bucket, without the secret key. */
static void s_assert_line(const s_env_t *e, const char *endpoint, const char *want)
{
    const char *m = vb_error_msg();
    cr_assert(strstr(m, want), "'%s' not in: %s", want, m);
    cr_assert(strstr(m, endpoint), "the endpoint %s not in: %s", endpoint, m);
    cr_assert(strstr(m, e->bucket), "the bucket %s not in: %s", e->bucket, m);
    cr_assert_null(strchr(m, '\n'), "one line: %s", m);
    cr_assert_null(strstr(m, e->g.secret), "the secret key shows in: %s", m);
}

/* stderr (where the store logs its retries) into a file while a call runs. */
typedef struct {
    int saved;
    char path[4200];
} s_capture_t;

static void s_capture_begin(s_capture_t *c, const char *dir)
{
    snprintf(c->path, sizeof c->path, "%s/stderr.txt", dir);
    fflush(stderr);
    c->saved = dup(2);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(c->saved >= 0 && fd >= 0 && dup2(fd, 2) == 2);
    close(fd);
}

/* Ends the capture; the number of retries the store logged meanwhile. */
static size_t s_capture_retries(s_capture_t *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    FILE *f = fopen(c->path, "r");
    cr_assert_not_null(f);
    char line[2048];
    size_t n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, "store_s3: event=retry") != NULL;
    fclose(f);
    return n;
}

typedef struct {
    size_t n, stop_after;
    char last[64];
} s_seen_t;

static int s_seen(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)st;
    s_seen_t *s = arg;
    s->n++;
    snprintf(s->last, sizeof s->last, "%s", name);
    return s->stop_after && s->n == s->stop_after;
}

static int s_remove_it(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)st;
    return vb_store_remove(arg, name, 0);
}

Test(store_s3, list_goes_on_across_pages_and_stops_when_asked)
{
    s_env_t e;
    vb_store_t *st = s_open(&e, "&page=2");
    char name[64];
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof name, "packs/p%d", i);
        cr_assert_eq(vb_store_put(st, name, "x", 1, 0), 0, "%s", vb_error_msg());
    }
    cr_assert_eq(vb_store_put(st, "packsX", "y", 1, 0), 0);
    s_seen_t seen = {0};
    cr_assert_eq(vb_store_list(st, "packs/", s_seen, &seen), 0, "%s", vb_error_msg());
    cr_assert_eq(seen.n, 7, "4 pages of 2 give every object once: %zu", seen.n);
    seen = (s_seen_t){.stop_after = 3};
    cr_assert_eq(vb_store_list(st, "packs/", s_seen, &seen), 0);
    cr_assert_eq(seen.n, 3, "a callback's stop holds across pages");
    cr_assert_str_eq(seen.last, "packs/p2");
    /* a callback may remove what it is given, also on later pages */
    cr_assert_eq(vb_store_list(st, "packs/", s_remove_it, st), 0, "%s", vb_error_msg());
    cr_assert_eq(s_objects(st), 1, "only packsX is left");
    vb_store_destroy(&st);
    tu_rmrf(e.tmp);
}

static void s_fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 2654435761u + seed) >> 13);
}

Test(store_s3, multipart_objects_read_back_whole_and_in_ranges)
{
    s_env_t e;
    vb_store_t *st = s_open(&e, "&multipart=5242880");
    size_t n = (12u << 20) + 12345;
    unsigned char *data = malloc(n), *back = malloc(n + 1);
    cr_assert(data && back);
    s_fill(data, n, 7);
    /* three buffers, the parts' edges inside the first and the last */
    struct iovec iov[3] = {{data, 6u << 20},
                           {data + (6u << 20), 100},
                           {data + (6u << 20) + 100, n - (6u << 20) - 100}};
    cr_assert_eq(vb_store_putv(st, "packs/big", iov, 3, 0), 0, "%s", vb_error_msg());
    size_t len = 0;
    cr_assert_eq(vb_store_get(st, "packs/big", back, n + 1, &len), 0, "%s", vb_error_msg());
    cr_assert_eq(len, n);
    cr_assert_eq(memcmp(back, data, n), 0, "the bytes read back are the bytes written");
    size_t got = 0;
    uint64_t off = (5u << 20) - 10; /* across the first parts' boundary */
    cr_assert_eq(vb_store_get_range(st, "packs/big", off, back, 100, &got), 0);
    cr_assert_eq(got, 100);
    cr_assert_eq(memcmp(back, data + off, 100), 0);
    vb_store_stat_t s;
    cr_assert_eq(vb_store_stat(st, "packs/big", &s), 0);
    cr_assert_eq(s.size, n);
    cr_assert_eq(vb_store_putv(st, "packs/big", iov, 3, 0), VB_EEXISTS,
                 "put-if-absent of a large object that exists");
    cr_assert(strstr(vb_error_msg(), "exists"), "%s", vb_error_msg());
    s_fill(data, n, 8);
    cr_assert_eq(vb_store_putv(st, "packs/big", iov, 3, VB_STORE_REPLACE), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_store_get(st, "packs/big", back, n, &len), 0);
    cr_assert_eq(memcmp(back, data, n), 0, "replaced");
    uint64_t removed = 9;
    cr_assert_eq(vb_store_cleanup(st, time(NULL) + 3600, false, &removed), 0);
    cr_assert_eq(removed, 0, "completed uploads leave nothing to clean up");
    free(data);
    free(back);
    vb_store_destroy(&st);
    tu_rmrf(e.tmp);
}

/* An upload a crashed writer left: started, never completed. */
static void s_start_upload(const s_env_t *e, const char *key)
{
    vb_s3_conn_params_t p = {.endpoint = e->g.endpoint,
                             .bucket = e->bucket,
                             .region = e->g.region,
                             .access_key = e->g.access,
                             .secret_key = e->g.secret};
    vb_s3_conn_t *c = vb_s3_conn_new(&p);
    cr_assert_not_null(c, "%s", vb_error_msg());
    vb_s3_req_t r = {.method = "POST", .key = key, .query = "uploads="};
    cr_assert_eq(vb_s3_request(c, &r), 0, "%s", vb_error_msg());
    vb_s3_req_free(&r);
    vb_s3_conn_destroy(&c);
}

/* remove(unless_since) relies on RGW refusing a DELETE whose x-amz-delete-if-unmodified-since
 * is older than the object (the check made with the delete, not the HEAD before it). */
Test(store_s3, the_server_refuses_a_conditional_delete_of_an_object_used_since)
{
    s_env_t e;
    vb_store_t *st = s_open(&e, NULL);
    cr_assert_eq(vb_store_put(st, "packs/used", "x", 1, 0), 0);
    vb_s3_conn_params_t p = {.endpoint = e.g.endpoint, .bucket = e.bucket,
                             .region = e.g.region, .access_key = e.g.access,
                             .secret_key = e.g.secret};
    vb_s3_conn_t *c = vb_s3_conn_new(&p);
    cr_assert_not_null(c, "%s", vb_error_msg());
    const char *const old[] = {"x-amz-delete-if-unmodified-since: 2020-01-01T00:00:00Z", NULL};
    vb_s3_req_t r = {.method = "DELETE", .key = "pfx/packs/used", .headers = old};
    cr_assert_eq(vb_s3_request(c, &r), VB_EEXISTS, "%s", vb_error_msg());
    cr_assert_eq(r.status, 412);
    vb_s3_req_free(&r);
    cr_assert(vb_store_exists(st, "packs/used"), "kept");
    const char *const later[] = {"x-amz-delete-if-unmodified-since: 2100-01-01T00:00:00Z", NULL};
    r = (vb_s3_req_t){.method = "DELETE", .key = "pfx/packs/used", .headers = later};
    cr_assert_eq(vb_s3_request(c, &r), 0, "%s", vb_error_msg());
    vb_s3_req_free(&r);
    cr_assert(!vb_store_exists(st, "packs/used"), "deleted");
    vb_s3_conn_destroy(&c);
    vb_store_destroy(&st);
    tu_rmrf(e.tmp);
}

Test(store_s3, cleanup_aborts_uploads_a_crashed_writer_left)
{
    s_env_t e;
    vb_store_t *st = s_open(&e, NULL);
    s_start_upload(&e, "pfx/packs/left");
    s_start_upload(&e, "other/packs/not-ours");
    uint64_t removed = 0;
    cr_assert_eq(vb_store_cleanup(st, time(NULL) - 3600, false, &removed), 0);
    cr_assert_eq(removed, 0, "an upload that may still be in flight stays");
    cr_assert_eq(vb_store_cleanup(st, time(NULL) + 3600, true, &removed), 0);
    cr_assert_eq(removed, 1, "only the uploads under the store's prefix");
    cr_assert_eq(vb_store_cleanup(st, time(NULL) + 3600, false, &removed), 0, "%s", vb_error_msg());
    cr_assert_eq(removed, 1);
    cr_assert_eq(vb_store_cleanup(st, time(NULL) + 3600, true, &removed), 0);
    cr_assert_eq(removed, 0, "aborted");
    char path[16];
    cr_assert_eq(vb_store_local_path(st, "packs/x", path, sizeof path), VB_EUNSUPPORTED);
    vb_store_destroy(&st);
    tu_rmrf(e.tmp);
}

Test(store_s3, a_wrong_secret_key_is_one_clear_line_and_writes_nothing)
{
    s_env_t e;
    vb_store_t *good = s_open(&e, NULL);
    char bad[4096];
    tu_rgw_creds(&e.g, e.tmp, "bad.cred", "not-the-secret-key-at-all", bad, sizeof bad);
    vb_store_opts_t o = {.credentials_file = bad, .create_bucket = true};
    s_capture_t cap;
    s_capture_begin(&cap, e.tmp);
    cr_assert_null(vb_store_open_opts(e.loc, true, &o));
    cr_assert_eq(s_capture_retries(&cap), 0, "a 403 cannot succeed by trying again");
    cr_assert_eq(vb_error_code(), VB_EAUTH, "%s", vb_error_msg());
    s_assert_line(&e, e.g.endpoint, "SignatureDoesNotMatch: wrong secret key or clock skew");
    cr_assert_null(strstr(vb_error_msg(), "not-the-secret"), "%s", vb_error_msg());
    cr_assert_eq(s_objects(good), 0, "nothing written");
    vb_store_destroy(&good);
    tu_rmrf(e.tmp);
}

Test(store_s3, a_missing_bucket_is_named_and_not_made)
{
    s_env_t e;
    vb_store_t *st = s_open(&e, NULL);
    vb_store_destroy(&st);
    char other[8192];
    snprintf(other, sizeof other, "s3://%s-nope/pfx?endpoint=%s", e.bucket, e.g.endpoint);
    snprintf(e.bucket + strlen(e.bucket), sizeof e.bucket - strlen(e.bucket), "-nope");
    vb_store_opts_t o = {.credentials_file = e.creds};
    for (int i = 0; i < 2; i++) {
        cr_assert_null(vb_store_open_opts(other, true, &o));
        cr_assert_eq(vb_error_code(), VB_ENOTFOUND, "%s", vb_error_msg());
        s_assert_line(&e, e.g.endpoint, "NoSuchBucket: the bucket does not exist");
        cr_assert(strstr(vb_error_msg(), "--create-bucket"), "%s", vb_error_msg());
    }
    tu_rmrf(e.tmp);
}

Test(store_s3, an_unreachable_endpoint_is_one_clear_line)
{
    s_env_t e;
    vb_store_t *st = s_open(&e, NULL);
    vb_store_destroy(&st);
    char loc[8192];
    snprintf(loc, sizeof loc, "s3://%s/pfx?endpoint=http://127.0.0.1:1&retries=2", e.bucket);
    s_capture_t cap;
    s_capture_begin(&cap, e.tmp);
    cr_assert_null(vb_store_open_opts(loc, false, &e.opts));
    cr_assert_eq(s_capture_retries(&cap), 2, "a refused connection is tried again, `retries` times");
    cr_assert_eq(vb_error_code(), VB_EIO, "%s", vb_error_msg());
    s_assert_line(&e, "http://127.0.0.1:1", "no answer");
    tu_rmrf(e.tmp);
}

static void *s_raise_later(void *arg)
{
    nanosleep(&(struct timespec){0, 300000000}, NULL);
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}

/* An upload against an endpoint that is down, with retries enough for hours of backoff: once
 * its writer gives it up (vb_store_abandon_when, as a task ending without a commit does), the
 * retry loop ends with "abandoned" instead of going on; reads on the same thread are unaffected
 * once the flag is gone. */
Test(store_s3, an_upload_given_up_stops_retrying_against_an_endpoint_that_is_down)
{
    vb_s3_conn_params_t p = {.endpoint = "http://127.0.0.1:1",
                             .bucket = "vbt-down",
                             .region = "default",
                             .access_key = "k",
                             .secret_key = "s",
                             .retries = 1000};
    vb_s3_conn_t *c = vb_s3_conn_new(&p);
    cr_assert_not_null(c, "%s", vb_error_msg());
    atomic_bool flag = false;
    vb_store_abandon_when(&flag);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, s_raise_later, &flag), 0);
    struct iovec iov = {.iov_base = "bytes", .iov_len = 5};
    vb_s3_req_t r = {
        .method = "PUT", .key = "pfx/packs/x", .iov = &iov, .iovcnt = 1, .body_len = 5};
    int rc = vb_s3_request(c, &r);
    pthread_join(t, NULL);
    cr_assert_eq(rc, VB_EBUSY, "%d %s", rc, vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "abandoned") && strstr(vb_error_msg(), "pfx/packs/x"), "%s",
              vb_error_msg());
    vb_s3_req_free(&r);
    vb_store_abandon_when(NULL);
    r = (vb_s3_req_t){
        .method = "PUT", .key = "pfx/packs/x", .iov = &iov, .iovcnt = 1, .body_len = 5};
    vb_s3_conn_destroy(&c);
    p.retries = 0;
    c = vb_s3_conn_new(&p);
    cr_assert_eq(vb_s3_request(c, &r), VB_EIO, "without the flag: the endpoint's own error");
    vb_s3_req_free(&r);
    vb_s3_conn_destroy(&c);
}

Test(store_s3, a_server_certificate_from_another_ca_is_refused)
{
    s_env_t e;
    vb_store_t *st = s_open(&e, NULL);
    char loc[8192];
    const char *cas[] = {e.g.other_ca, NULL};
    for (size_t i = 0; i < 2; i++) {
        snprintf(loc, sizeof loc, "s3://%s/pfx?endpoint=%s%s%s", e.bucket, e.g.tls_endpoint,
                 cas[i] ? "&ca=" : "", cas[i] ? cas[i] : "");
        cr_assert_null(vb_store_open_opts(loc, false, &e.opts), "%s", loc);
        cr_assert_eq(vb_error_code(), VB_EAUTH, "%s", vb_error_msg());
        s_assert_line(&e, e.g.tls_endpoint, "TLS certificate not trusted");
    }
    snprintf(loc, sizeof loc, "s3://%s/pfx?endpoint=%s&ca=%s", e.bucket, e.g.tls_endpoint, e.g.ca);
    vb_store_t *tls = vb_store_open_opts(loc, false, &e.opts);
    cr_assert_not_null(tls, "the right CA: %s", vb_error_msg());
    cr_assert_eq(s_objects(st), 0, "nothing written");
    vb_store_destroy(&tls);
    vb_store_destroy(&st);
    tu_rmrf(e.tmp);
}

Test(store_s3, locations_and_credentials_files_that_are_refused)
{
    s_env_t e;
    vb_store_t *st = s_open(&e, NULL);
    vb_store_destroy(&st);
    static const struct {
        const char *query;
        int code;
        const char *says;
    } bad[] = {
        {"endpoint=http://192.0.2.1:7480", VB_EPOLICY, "http:// only for a loopback host"},
        {"endpoint=ftp://127.0.0.1", VB_EINVAL, "scheme"},
        {"endpoint=https://h/path", VB_EINVAL, "no path"},
        {"region=x", VB_EINVAL, "endpoint=https://HOST[:PORT] is required"},
        {"endpoint=https://h&colour=red", VB_EINVAL, "unknown parameter 'colour'"},
        {"endpoint=https://h&style=sideways", VB_EINVAL, "style"},
        {"endpoint=https://h&multipart=1024", VB_EINVAL, "multipart"},
    };
    char loc[8192];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(loc, sizeof loc, "s3://%s/pfx?%s", e.bucket, bad[i].query);
        cr_assert_null(vb_store_open_opts(loc, false, &e.opts), "%s", loc);
        cr_assert_eq(vb_error_code(), bad[i].code, "%s: %s", loc, vb_error_msg());
        cr_assert(strstr(vb_error_msg(), bad[i].says), "%s: %s", loc, vb_error_msg());
    }
    snprintf(loc, sizeof loc, "s3://Bad_Bucket/p?endpoint=%s", e.g.endpoint);
    cr_assert_null(vb_store_open_opts(loc, false, &e.opts));
    cr_assert(strstr(vb_error_msg(), "bucket name"), "%s", vb_error_msg());
    /* a credentials file others may read, and none at all */
    cr_assert_eq(chmod(e.creds, 0644), 0);
    cr_assert_null(vb_store_open_opts(e.loc, false, &e.opts));
    cr_assert_eq(vb_error_code(), VB_EPOLICY, "%s", vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "chmod 600"), "%s", vb_error_msg());
    cr_assert_null(vb_store_open(e.loc, false));
    cr_assert(strstr(vb_error_msg(), "repository_credentials_file"), "%s", vb_error_msg());
    tu_rmrf(e.tmp);
}

/* ---------- Object Lock ---------- */

#define S_LOCK_S 3 /* seconds of retention in these tests */

static int s_count_under(vb_store_t *st, const char *prefix);

/* A client of the bucket that goes around the store, as an attacker with the keys would. */
static vb_s3_conn_t *s_raw(const s_env_t *e)
{
    vb_s3_conn_params_t p = {.endpoint = e->g.endpoint, .bucket = e->bucket,
                             .region = e->g.region, .access_key = e->g.access,
                             .secret_key = e->g.secret};
    vb_s3_conn_t *c = vb_s3_conn_new(&p);
    cr_assert_not_null(c, "%s", vb_error_msg());
    return c;
}

/* method key[?versionId=vid]: the result; *version_out (when given) the answer's version id. */
static int s_raw_req(vb_s3_conn_t *c, const char *method, const char *key, const char *vid,
                     void *buf, size_t cap, char *version_out)
{
    char q[512] = "";
    if (vid)
        snprintf(q, sizeof q, "versionId=%s", vid);
    vb_s3_req_t r = {.method = method, .key = key, .query = vid ? q : NULL, .dst = buf,
                     .cap = cap};
    int rc = vb_s3_request(c, &r);
    if (version_out)
        snprintf(version_out, 128, "%s", r.version_id);
    vb_s3_req_free(&r);
    return rc;
}

/* Removes `name` as soon as its lock lets it (polling; bounded well past the lock). */
static int s_remove_when_unlocked(vb_store_t *st, const char *name)
{
    int rc;
    time_t give_up = time(NULL) + S_LOCK_S + 30;
    while ((rc = vb_store_remove(st, name, 0)) == VB_EPOLICY && time(NULL) < give_up)
        usleep(200 * 1000);
    return rc;
}

Test(store_s3, object_lock_a_locked_object_outlives_every_deletion_until_its_lock_ends)
{
    s_env_t e;
    vb_store_t *st = s_open_lock(&e, NULL, S_LOCK_S);
    time_t t0 = time(NULL);
    cr_assert_eq(vb_store_put(st, "packs/a", "locked a", 8, 0), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_store_put(st, "packs/b", "locked b", 8, 0), 0, "%s", vb_error_msg());
    vb_store_stat_t ss;
    cr_assert_eq(vb_store_stat(st, "packs/a", &ss), 0, "%s", vb_error_msg());
    cr_assert(ss.retain_until >= t0 + S_LOCK_S - 1 && ss.retain_until <= time(NULL) + S_LOCK_S + 1,
              "retain-until %lld for a lock of %d s from %lld", (long long)ss.retain_until,
              S_LOCK_S, (long long)t0);

    /* the store refuses, naming the lock, and changes nothing */
    cr_assert_eq(vb_store_remove(st, "packs/a", 0), VB_EPOLICY);
    cr_assert(strstr(vb_error_msg(), "under Object Lock until"), "%s", vb_error_msg());
    cr_assert(vb_store_exists(st, "packs/a"));

    /* an attacker with the keys: deleting the version is refused by the server (403) */
    vb_s3_conn_t *c = s_raw(&e);
    char vid[128], marker[128];
    cr_assert_eq(s_raw_req(c, "HEAD", "pfx/packs/a", NULL, NULL, 0, vid), 0);
    cr_assert(vid[0], "a bucket with Object Lock is versioned");
    cr_assert_eq(s_raw_req(c, "DELETE", "pfx/packs/a", vid, NULL, 0, NULL), VB_EAUTH,
                 "a locked version was deleted: %s", vb_error_msg());
    /* a DELETE without versionId only adds a delete marker: hidden, the bytes are still there */
    cr_assert_eq(s_raw_req(c, "DELETE", "pfx/packs/a", NULL, NULL, 0, marker), 0);
    cr_assert_eq(s_count_under(st, "packs/"), 1, "hidden from the listing by the marker");
    cr_assert(vb_store_exists(st, "packs/a"), "a read by name goes through the marker");
    char buf[64] = "";
    cr_assert_eq(s_raw_req(c, "GET", "pfx/packs/a", vid, buf, sizeof buf, NULL), 0,
                 "%s", vb_error_msg());
    cr_assert_str_eq(buf, "locked a");
    /* and deleting the marker (by its version id) brings the object back */
    cr_assert(marker[0]);
    cr_assert_eq(s_raw_req(c, "DELETE", "pfx/packs/a", marker, NULL, 0, NULL), 0, "%s",
                 vb_error_msg());
    cr_assert_eq(s_count_under(st, "packs/"), 2, "back once the marker is gone");

    /* a freshen (what a backup re-using the object does) locks it anew from then */
    while (time(NULL) <= ss.retain_until - S_LOCK_S + 1)
        usleep(100 * 1000);
    cr_assert_eq(vb_store_freshen(st, "packs/a"), 0, "%s", vb_error_msg());
    vb_store_stat_t fresh;
    cr_assert_eq(vb_store_stat(st, "packs/a", &fresh), 0, "%s", vb_error_msg());
    cr_assert(fresh.retain_until > ss.retain_until,
              "retain-until %lld after a freshen, %lld before", (long long)fresh.retain_until,
              (long long)ss.retain_until);

    /* once the lock has ended, remove deletes the version itself, not just hides it */
    cr_assert_eq(s_raw_req(c, "HEAD", "pfx/packs/b", NULL, NULL, 0, vid), 0);
    cr_assert_eq(s_remove_when_unlocked(st, "packs/b"), 0, "%s", vb_error_msg());
    cr_assert(time(NULL) >= t0 + S_LOCK_S - 1, "removed before its lock ended");
    cr_assert_eq(s_raw_req(c, "GET", "pfx/packs/b", vid, buf, sizeof buf, NULL), VB_ENOTFOUND,
                 "the version is still there: only hidden");
    /* a freshened object has two versions: removing it removes both (none comes back) */
    cr_assert_eq(s_remove_when_unlocked(st, "packs/a"), 0, "%s", vb_error_msg());
    cr_assert(!vb_store_exists(st, "packs/a"), "an older version came back after the remove");
    vb_s3_conn_destroy(&c);
    vb_store_destroy(&st);
    tu_rmrf(e.tmp);
}

Test(store_s3, object_lock_on_a_bucket_without_it_is_refused_in_one_line)
{
    s_env_t e;
    vb_store_t *st = s_open(&e, NULL); /* a bucket made without Object Lock */
    vb_store_destroy(&st);
    vb_store_opts_t o = {.credentials_file = e.creds, .lock = {.seconds = 30}};
    cr_assert_null(vb_store_open_opts(e.loc, false, &o));
    cr_assert_eq(vb_error_code(), VB_EPOLICY);
    s_assert_line(&e, e.g.endpoint, "has no Object Lock");
    tu_rmrf(e.tmp);
}

static int s_count_under(vb_store_t *st, const char *prefix)
{
    size_t n = 0;
    cr_assert_eq(vb_store_list(st, prefix, s_count, &n), 0, "%s", vb_error_msg());
    return (int)n;
}

/* A new repository (64 KiB chunks) in a new bucket made with Object Lock of lock_s seconds, opened
 * (the lock comes from its config). */
static vb_repo_t *s_locked_repo(s_env_t *e, int64_t lock_s)
{
    vb_store_t *st = s_open(e, NULL); /* for the credentials and a bucket name */
    vb_store_destroy(&st);
    tu_rgw_bucket(e->bucket, sizeof e->bucket);
    snprintf(e->loc, sizeof e->loc, "s3://%s/repo?endpoint=%s&region=%s", e->bucket,
             e->g.endpoint, e->g.region);
    vb_repo_params_t p = {.chunk_size = 64 * 1024,
                          .store = {.credentials_file = e->creds, .create_bucket = true,
                                    .lock = {.seconds = lock_s}}};
    cr_assert_eq(vb_repo_init(e->loc, &p), 0, "%s", vb_error_msg());
    vb_store_opts_t so = {.credentials_file = e->creds};
    vb_repo_t *r = vb_repo_open_opts(e->loc, NULL, &so);
    cr_assert_not_null(r, "%s", vb_error_msg());
    return r;
}

/* Garbage collection of a repository under Object Lock: a dead pack still locked is kept and
 * reported with the end of its lock, stays readable, and a later collection after the lock
 * ended deletes it. */
Test(store_s3, object_lock_gc_keeps_a_dead_pack_until_its_lock_ends_then_deletes_it)
{
    s_env_t e;
    vb_repo_t *r = s_locked_repo(&e, S_LOCK_S);
    vb_store_t *st;
    vb_store_opts_t so = {.credentials_file = e.creds};
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    static uint8_t data[2][64 * 1024], back[64 * 1024];
    vb_digest_t d[2];
    for (int i = 0; i < 2; i++) { /* two tasks: two packs, two index objects */
        tu_fill_random(data[i], sizeof data[i], 7 + (uint64_t)i);
        cr_assert_eq(vb_repo_digest(w, data[i], sizeof data[i], &d[i]), 0);
        cr_assert_eq(vb_repo_chunk_put(w, &d[i], data[i], sizeof data[i], NULL), 0, "%s",
                     vb_error_msg());
        cr_assert_eq(vb_repo_worker_flush(w), 0, "%s", vb_error_msg());
        cr_assert_eq(vb_repo_sync(r), 0, "%s", vb_error_msg());
    }
    st = vb_repo_store(r);
    vb_store_stat_t ss;
    cr_assert_eq(vb_store_stat(st, "config", &ss), 0);
    cr_assert(ss.retain_until > 0, "the config object is locked too");
    cr_assert_eq(s_count_under(st, "packs/"), 2);
    cr_assert_eq(s_count_under(st, "index/"), 2);
    vb_repo_stats_t rs;
    cr_assert_eq(vb_repo_stats(r, &rs), 0, "%s", vb_error_msg());
    cr_assert_eq(rs.lock.seconds, S_LOCK_S);
    cr_assert_eq(rs.locked_objects, 5, "config, 2 packs and 2 index objects: %llu",
                 (unsigned long long)rs.locked_objects);
    cr_assert(rs.locked_bytes > rs.stored_bytes, "%llu locked bytes",
              (unsigned long long)rs.locked_bytes);
    cr_assert(rs.earliest_unlock == ss.retain_until, "earliest unlock %lld, config's %lld",
              (long long)rs.earliest_unlock, (long long)ss.retain_until);

    /* no restore point references the chunks: the packs are dead, but locked; the two index
     * objects, locked too, are merged into one (the old ones hidden) */
    vb_gc_stats_t gs;
    cr_assert_eq(vb_repo_gc(r, time(NULL) + 60, false, &gs), 0, "%s", vb_error_msg());
    cr_assert_eq(gs.packs.packs_locked, 2);
    cr_assert_eq(gs.packs.packs_deleted, 0);
    cr_assert(gs.packs.locked_until > time(NULL) - 2 && gs.packs.locked_until <= time(NULL) + 30,
              "locked until %lld", (long long)gs.packs.locked_until);
    cr_assert_eq(s_count_under(st, "packs/"), 2, "a locked pack was removed");
    cr_assert_eq(s_count_under(st, "index/"), 1, "the index objects were not merged");
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    r = vb_repo_open_opts(e.loc, NULL, &so); /* reads the merged index */
    cr_assert_not_null(r, "%s", vb_error_msg());
    st = vb_repo_store(r);
    w = vb_repo_worker_new(r);
    for (int i = 0; i < 2; i++) {
        size_t got = 0;
        cr_assert_eq(vb_repo_chunk_get(w, &d[i], back, sizeof back, &got), 0, "%s",
                     vb_error_msg());
        cr_assert_eq(memcmp(back, data[i], sizeof back), 0);
    }

    /* a later collection, once the lock has ended, deletes it */
    time_t give_up = time(NULL) + S_LOCK_S + 30;
    while (time(NULL) <= gs.packs.locked_until && time(NULL) < give_up)
        usleep(200 * 1000);
    cr_assert_eq(vb_repo_gc(r, time(NULL) + 60, false, &gs), 0, "%s", vb_error_msg());
    cr_assert_eq(gs.packs.packs_locked, 0);
    cr_assert_eq(gs.packs.packs_deleted, 2);
    cr_assert_eq(s_count_under(st, "packs/"), 0);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    tu_rmrf(e.tmp);
}

static int s_name_of(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)st;
    snprintf(arg, VB_STORE_NAME_MAX + 1, "%s", name);
    return 1;
}

#define S_EXTEND_LOCK_S 10 /* the lock of the extension test: extended within its last 5 s */

/* A collection extends the lock of a pack a restore point still needs once it ends within half
 * the lock period (one request, counted in the stats), and of the restore point's disk index and
 * manifest; sooner it sends none. They then outlive their first lock: a deletion after that is
 * still refused. The bound on extensions per collection is lowered to 2: packs and metadata
 * each have their own share, so the pack's extension does not starve the manifest (with one
 * bound for both, the manifest was left due). */
Test(store_s3, object_lock_gc_extends_the_lock_of_a_live_pack_near_its_end)
{
    setenv("VBAK_TEST_LOCKRENEW_MAX", "2", 1);
    s_env_t e;
    vb_repo_t *r = s_locked_repo(&e, S_EXTEND_LOCK_S);
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    static uint8_t data[64 * 1024];
    vb_digest_t d;
    tu_fill_random(data, sizeof data, 11);
    cr_assert_eq(vb_repo_digest(w, data, sizeof data, &d), 0);
    cr_assert_eq(vb_repo_chunk_put(w, &d, data, sizeof data, NULL), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_repo_worker_flush(w), 0, "%s", vb_error_msg());
    vb_index_t *idx = vb_index_new("2000", sizeof data, sizeof data, NULL);
    cr_assert_not_null(idx);
    idx->digests[0] = d; /* a restore point's disk index: the pack is live */
    cr_assert_eq(vb_index_write(r, "live", idx), 0, "%s", vb_error_msg());
    vb_index_destroy(&idx);
    vb_store_t *st = vb_repo_store(r);
    /* the restore point's manifest (its disk index is "live" above) */
    cr_assert_eq(vb_store_put(st, "manifests/rp1.json", "{}", 2, VB_STORE_DURABLE), 0, "%s",
                 vb_error_msg());
    char pack[VB_STORE_NAME_MAX + 1] = "", disk_index[VB_STORE_NAME_MAX + 1] = "";
    cr_assert_eq(vb_store_list(st, "packs/", s_name_of, pack), 0);
    cr_assert_eq(vb_store_list(st, "indexes/", s_name_of, disk_index), 0);
    cr_assert(disk_index[0]);
    vb_store_stat_t first, now, meta_first[2];
    const char *meta[2] = {disk_index, "manifests/rp1.json"};
    cr_assert_eq(vb_store_stat(st, pack, &first), 0, "%s", vb_error_msg());
    for (int i = 0; i < 2; i++)
        cr_assert_eq(vb_store_stat(st, meta[i], &meta_first[i]), 0, "%s", vb_error_msg());

    vb_gc_stats_t gs;
    cr_assert_eq(vb_repo_gc(r, time(NULL) + 60, false, &gs), 0, "%s", vb_error_msg());
    cr_assert_eq(gs.packs.locks_extended, 0, "a lock far from its end is left alone");
    cr_assert_eq(vb_store_stat(st, pack, &now), 0);
    cr_assert_eq(now.retain_until, first.retain_until);

    while (time(NULL) < first.retain_until - 2) /* within the last half of the lock */
        usleep(100 * 1000);
    time_t gc_start = time(NULL);
    cr_assert_eq(vb_repo_gc(r, time(NULL) + 60, false, &gs), 0, "%s", vb_error_msg());
    cr_assert_eq(gs.packs.locks_extended, 3, "the pack, the disk index and the manifest: %llu",
                 (unsigned long long)gs.packs.locks_extended);
    cr_assert_eq(gs.packs.locks_due, 0);
    cr_assert_eq(gs.packs.packs_deleted, 0);
    cr_assert_eq(vb_store_stat(st, pack, &now), 0);
    cr_assert(now.retain_until >= gc_start + S_EXTEND_LOCK_S - 1,
              "extended until %lld, the collection started at %lld", (long long)now.retain_until,
              (long long)gc_start);
    for (int i = 0; i < 2; i++) {
        vb_store_stat_t m;
        cr_assert_eq(vb_store_stat(st, meta[i], &m), 0, "%s", vb_error_msg());
        cr_assert(m.retain_until > meta_first[i].retain_until &&
                      m.retain_until >= gc_start + S_EXTEND_LOCK_S - 1,
                  "%s: locked until %lld, first until %lld", meta[i], (long long)m.retain_until,
                  (long long)meta_first[i].retain_until);
    }
    cr_assert_eq(vb_repo_gc(r, time(NULL) + 60, false, &gs), 0, "%s", vb_error_msg());
    cr_assert_eq(gs.packs.locks_extended, 0, "an extended lock is not extended again at once");

    while (time(NULL) <= first.retain_until) /* past the lock the pack was written with */
        usleep(100 * 1000);
    cr_assert_eq(vb_store_remove(st, pack, 0), VB_EPOLICY, "a live pack lost its lock: %s",
                 vb_error_msg());
    for (int i = 0; i < 2; i++)
        cr_assert_eq(vb_store_remove(st, meta[i], 0), VB_EPOLICY, "%s lost its lock: %s",
                     meta[i], vb_error_msg());
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    unsetenv("VBAK_TEST_LOCKRENEW_MAX");
    tu_rmrf(e.tmp);
}

/* The attacker: a plain DELETE (no versionId) of every object the store lists, as `vbak prune
 * --keep-last 0` or a script holding the keys would send; each only adds a delete marker. */
typedef struct {
    vb_s3_conn_t *c;
    char names[64][VB_STORE_NAME_MAX + 1];
    size_t n;
} s_attack_t;

static int s_note_name(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)st;
    s_attack_t *a = arg;
    cr_assert(a->n < 64);
    snprintf(a->names[a->n++], VB_STORE_NAME_MAX + 1, "%s", name);
    return 0;
}

static size_t s_delete_all(const s_env_t *e, vb_store_t *st, const char *key_prefix)
{
    s_attack_t a = {.c = s_raw(e)};
    cr_assert_eq(vb_store_list(st, "", s_note_name, &a), 0, "%s", vb_error_msg());
    for (size_t i = 0; i < a.n; i++) {
        char key[VB_STORE_NAME_MAX * 2];
        snprintf(key, sizeof key, "%s%s", key_prefix, a.names[i]);
        cr_assert_eq(s_raw_req(a.c, "DELETE", key, NULL, NULL, 0, NULL), 0, "%s", vb_error_msg());
    }
    vb_s3_conn_destroy(&a.c);
    return a.n;
}

static int s_hidden_count(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)name;
    cr_assert(st->retain_until > time(NULL), "%s: a hidden locked version", name);
    (*(size_t *)arg)++;
    return 0;
}

/* Reads by name go through a delete marker to the newest version; list_hidden names the hidden
 * object with its lock; unhide deletes the marker and the object is listed again. */
Test(store_s3, object_lock_reads_go_through_a_delete_marker_and_unhide_brings_it_back)
{
    s_env_t e;
    vb_store_t *st = s_open_lock(&e, NULL, 60);
    cr_assert_eq(vb_store_put(st, "manifests/1", "version one", 11, 0), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_store_put(st, "manifests/1", "version two!", 12, VB_STORE_REPLACE), 0);
    cr_assert_eq(vb_store_put(st, "manifests/10", "another", 7, 0), 0);
    cr_assert_eq(s_delete_all(&e, st, "pfx/"), 2);
    cr_assert_eq(s_objects(st), 0, "a delete marker hides an object from the listing");

    char buf[64] = "";
    size_t len = 0, got = 0;
    cr_assert_eq(vb_store_get(st, "manifests/1", buf, sizeof buf, &len), 0, "%s", vb_error_msg());
    cr_assert_eq(len, 12);
    cr_assert_eq(memcmp(buf, "version two!", 12), 0, "the newest version is read");
    cr_assert_eq(vb_store_get_range(st, "manifests/1", 8, buf, 4, &got), 0, "%s", vb_error_msg());
    cr_assert_eq(got, 4);
    cr_assert_eq(memcmp(buf, "two!", 4), 0);
    vb_store_stat_t ss;
    cr_assert_eq(vb_store_stat(st, "manifests/1", &ss), 0, "%s", vb_error_msg());
    cr_assert_eq(ss.size, 12);
    cr_assert(ss.retain_until > time(NULL));
    cr_assert_eq(vb_store_get(st, "manifests/2", buf, sizeof buf, &len), VB_ENOTFOUND,
                 "an object that never was is still not found");
    cr_assert(strstr(vb_error_msg(), "manifests/2"), "%s", vb_error_msg());

    size_t hidden = 0;
    cr_assert_eq(vb_store_list_hidden(st, "manifests/", s_hidden_count, &hidden), 0, "%s",
                 vb_error_msg());
    cr_assert_eq(hidden, 2);
    cr_assert_eq(vb_store_unhide(st, "manifests/1"), 0, "%s", vb_error_msg());
    cr_assert_eq(s_objects(st), 1, "back in the listing");
    cr_assert_eq(vb_store_unhide(st, "manifests/1"), VB_ENOTFOUND, "not hidden any more");
    hidden = 0;
    cr_assert_eq(vb_store_list_hidden(st, "", s_hidden_count, &hidden), 0, "%s", vb_error_msg());
    cr_assert_eq(hidden, 1);
    vb_store_destroy(&st);
    tu_rmrf(e.tmp);
}

/* An object hidden by more delete markers than one walk keeps (70, listed 7 versions a page):
 * unhide removes every marker above its locked version, and the object is listed and read
 * again. (Markers past the 64th used to stay: the object stayed hidden.) RGW adds no marker over
 * a marker, so they are stacked as a client can: put an unlocked version, hide it with a plain
 * DELETE, delete that version by id; each round leaves one more marker over the locked one. */
Test(store_s3, object_lock_unhide_removes_every_marker_however_many)
{
    s_env_t e;
    vb_store_t *st = s_open_lock(&e, "&page=7", 60);
    cr_assert_eq(vb_store_put(st, "manifests/1", "version one", 11, 0), 0, "%s", vb_error_msg());
    vb_s3_conn_t *c = s_raw(&e);
    cr_assert_eq(s_raw_req(c, "DELETE", "pfx/manifests/1", NULL, NULL, 0, NULL), 0, "%s",
                 vb_error_msg());
    for (int i = 1; i < 70; i++) {
        char vid[128];
        cr_assert_eq(s_raw_req(c, "PUT", "pfx/manifests/1", NULL, NULL, 0, vid), 0, "%s",
                     vb_error_msg());
        cr_assert_eq(s_raw_req(c, "DELETE", "pfx/manifests/1", NULL, NULL, 0, NULL), 0, "%s",
                     vb_error_msg());
        cr_assert_eq(s_raw_req(c, "DELETE", "pfx/manifests/1", vid, NULL, 0, NULL), 0, "%s",
                     vb_error_msg());
    }
    vb_s3_req_t r = {.method = "GET", .query = "prefix=pfx%2Fmanifests%2F1&versions="};
    cr_assert_eq(vb_s3_request(c, &r), 0, "%s", vb_error_msg());
    size_t markers = 0;
    for (const char *p = r.resp.data;
         p && (p = memmem(p, r.resp.len - (size_t)(p - r.resp.data), "<DeleteMarker>", 14));
         p += 14)
        markers++;
    vb_s3_req_free(&r);
    vb_s3_conn_destroy(&c);
    cr_assert_eq(markers, 70, "markers stacked over the locked version: %zu", markers);
    cr_assert_eq(s_objects(st), 0, "hidden");
    cr_assert_eq(vb_store_unhide(st, "manifests/1"), 0, "%s", vb_error_msg());
    cr_assert_eq(s_objects(st), 1, "listed again: no marker is left above the version");
    size_t hidden = 0;
    cr_assert_eq(vb_store_list_hidden(st, "", s_hidden_count, &hidden), 0, "%s", vb_error_msg());
    cr_assert_eq(hidden, 0);
    cr_assert_eq(vb_store_unhide(st, "manifests/1"), VB_ENOTFOUND, "not hidden any more");
    vb_store_destroy(&st);
    tu_rmrf(e.tmp);
}

/* A repository whose every object was deleted with plain DELETEs: a new reader still restores
 * each chunk (disk index and packs read through the markers, the chunk index from the hidden
 * index objects), and undelete brings the objects back so that listings see them again. */
Test(store_s3, object_lock_a_repository_whose_objects_were_all_deleted_stays_readable)
{
    s_env_t e;
    vb_repo_t *r = s_locked_repo(&e, 60);
    vb_store_opts_t so = {.credentials_file = e.creds};
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    static uint8_t data[2][64 * 1024], back[64 * 1024];
    vb_digest_t d[2];
    for (int i = 0; i < 2; i++) {
        tu_fill_random(data[i], sizeof data[i], 21 + (uint64_t)i);
        cr_assert_eq(vb_repo_digest(w, data[i], sizeof data[i], &d[i]), 0);
        cr_assert_eq(vb_repo_chunk_put(w, &d[i], data[i], sizeof data[i], NULL), 0, "%s",
                     vb_error_msg());
        cr_assert_eq(vb_repo_worker_flush(w), 0, "%s", vb_error_msg());
        cr_assert_eq(vb_repo_sync(r), 0, "%s", vb_error_msg());
    }
    vb_index_t *idx = vb_index_new("2000", 2 * sizeof data[0], sizeof data[0], NULL);
    cr_assert_not_null(idx);
    idx->digests[0] = d[0];
    idx->digests[1] = d[1];
    cr_assert_eq(vb_index_write(r, "rp1-disk", idx), 0, "%s", vb_error_msg());
    vb_index_destroy(&idx);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);

    vb_store_t *st = vb_store_open_opts(e.loc, false, &so);
    cr_assert_not_null(st, "%s", vb_error_msg());
    /* config, 2 packs, 2 index objects, the disk index */
    cr_assert_eq(s_delete_all(&e, st, "repo/"), 6);
    cr_assert_eq(s_objects(st), 0);

    r = vb_repo_open_opts(e.loc, NULL, &so);
    cr_assert_not_null(r, "a repository hidden by delete markers: %s", vb_error_msg());
    cr_assert_eq(vb_index_read(r, "rp1-disk", &idx), 0, "%s", vb_error_msg());
    w = vb_repo_worker_new(r);
    for (int i = 0; i < 2; i++) {
        size_t got = 0;
        cr_assert_eq(vb_repo_chunk_get(w, &idx->digests[i], back, sizeof back, &got), 0, "%s",
                     vb_error_msg());
        cr_assert_eq(memcmp(back, data[i], sizeof back), 0, "chunk %d restored", i);
    }
    /* a backup in this state would inherit chunks in hidden packs nothing renews: refused,
     * naming the way out, and nothing is written */
    static uint8_t fresh[64 * 1024];
    vb_digest_t df;
    tu_fill_random(fresh, sizeof fresh, 99);
    cr_assert_eq(vb_repo_digest(w, fresh, sizeof fresh, &df), 0);
    for (int i = 0; i < 2; i++) { /* a new chunk, and one the hidden index has */
        const uint8_t *c = i ? data[0] : fresh;
        int rc = vb_repo_chunk_put(w, i ? &d[0] : &df, c, sizeof fresh, NULL);
        cr_assert_eq(rc, VB_EPOLICY, "chunk %d: %d %s", i, rc, vb_error_msg());
        cr_assert(strstr(vb_error_msg(), "hidden by delete markers") &&
                      strstr(vb_error_msg(), "vbak repo undelete s3://"),
                  "%s", vb_error_msg());
    }
    cr_assert_eq(vb_index_write(r, "rp2-disk", idx), VB_EPOLICY, "an incremental with no new "
                 "chunk writes no disk index either: %s", vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "vbak repo undelete"), "%s", vb_error_msg());
    /* nor may prune or GC run: what they see listed is not what the hidden index references
     * (GC would find no live chunk at all) */
    cr_assert_eq(vb_index_remove(r, "rp1-disk"), VB_EPOLICY, "prune: %s", vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "vbak repo undelete s3://"), "%s", vb_error_msg());
    vb_gc_stats_t gs;
    cr_assert_eq(vb_repo_gc(r, time(NULL), true, &gs), VB_EPOLICY, "gc --dry-run: %s",
                 vb_error_msg());
    cr_assert_eq(vb_repo_gc(r, time(NULL), false, &gs), VB_EPOLICY, "gc: %s", vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "vbak repo undelete s3://"), "%s", vb_error_msg());
    cr_assert_eq(vb_repo_worker_flush(w), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_repo_sync(r), 0, "%s", vb_error_msg());
    cr_assert_eq(s_objects(st), 0, "the refused backup wrote nothing");
    vb_index_destroy(&idx);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);

    vb_undelete_stats_t us;
    cr_assert_eq(vb_repo_undelete_opts(e.loc, &so, true, &us), 0, "%s", vb_error_msg());
    cr_assert_eq(us.brought_back, 4, "dry run: config, 2 packs, the disk index: %llu",
                 (unsigned long long)us.brought_back);
    cr_assert_eq(s_objects(st), 0, "a dry run changes nothing");
    cr_assert_eq(vb_repo_undelete_opts(e.loc, &so, false, &us), 0, "%s", vb_error_msg());
    cr_assert_eq(us.brought_back, 4);
    cr_assert_eq(us.packs, 2);
    cr_assert_eq(us.indexes, 1);
    cr_assert_eq(us.index_objects, 2, "index objects are left hidden");
    cr_assert(us.index_rebuilt, "the chunk index is rebuilt from the packs");
    cr_assert_eq(us.repair.packs, 2);
    cr_assert_eq(s_count_under(st, "packs/"), 2);
    cr_assert_eq(s_count_under(st, "indexes/"), 1);
    cr_assert_eq(s_count_under(st, "index/"), 1, "one index object, rebuilt from the packs");
    cr_assert_eq(vb_repo_undelete_opts(e.loc, &so, false, &us), 0, "%s", vb_error_msg());
    cr_assert_eq(us.brought_back, 0, "nothing left to bring back");
    cr_assert(!us.index_rebuilt, "the chunk index is whole: not rebuilt again");
    /* undeleted: the backup goes on */
    r = vb_repo_open_opts(e.loc, NULL, &so);
    cr_assert_not_null(r, "%s", vb_error_msg());
    w = vb_repo_worker_new(r);
    cr_assert_eq(vb_repo_chunk_put(w, &df, fresh, sizeof fresh, NULL), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_repo_worker_flush(w), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_repo_sync(r), 0, "%s", vb_error_msg());
    size_t got = 0;
    cr_assert_eq(vb_repo_chunk_get(w, &df, back, sizeof back, &got), 0, "%s", vb_error_msg());
    cr_assert(got == sizeof fresh && memcmp(back, fresh, got) == 0);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    vb_store_destroy(&st);
    tu_rmrf(e.tmp);
}

/* vbak-tcpproxy (built beside this test) in front of the RGW; its endpoint in `ep`. SIGUSR2 to
 * the pid it returns makes it drop the server's next answer and reset the connection. */
/* The relay (vbak-tcpproxy) between a test and the RGW; reset: the first two requests that
 * contain it are reset (NULL: none), one blip that libcurl's own resend on a new connection
 * does not hide. */
static pid_t s_proxy_start(const s_env_t *e, char *ep, size_t epsz, const char *reset)
{
    char exe[4096], proxy[4200], port_file[4200], port[16] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(proxy, sizeof proxy, "%s/vbak-tcpproxy", exe);
    snprintf(port_file, sizeof port_file, "%s/proxy.port", e->tmp);
    const char *to = strstr(e->g.endpoint, "://") + 3;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* it goes when the test does, whatever its outcome */
        if (reset)
            execl(proxy, proxy, "--to", to, "--port-file", port_file, "--reset", reset, "--times",
                  "2", (char *)NULL);
        else
            execl(proxy, proxy, "--to", to, "--port-file", port_file, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && !port[0]; i++) { /* up to 5 s for it to listen */
        FILE *f = fopen(port_file, "r");
        if (!f || !fgets(port, sizeof port, f))
            nanosleep(&(struct timespec){0, 10000000}, NULL);
        if (f)
            fclose(f);
    }
    cr_assert(port[0], "%s did not listen", proxy);
    port[strcspn(port, "\n")] = '\0';
    snprintf(ep, epsz, "http://127.0.0.1:%s", port);
    return pid;
}

static void s_proxy_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* A put-if-absent whose answer is lost is retried; the retry gets 412 (the first attempt made the
 * object): that is success when the object's content is ours, and "exists" when it is not. */
Test(store_s3, a_conditional_put_whose_answer_was_lost_succeeds_when_the_object_is_ours)
{
    s_env_t e;
    vb_store_t *direct = s_open(&e, NULL);
    char ep[300], loc[8192];
    pid_t proxy = s_proxy_start(&e, ep, sizeof ep, NULL);
    snprintf(loc, sizeof loc, "s3://%s/pfx?endpoint=%s&region=%s", e.bucket, ep, e.g.region);
    vb_store_t *st = vb_store_open_opts(loc, false, &e.opts);
    cr_assert_not_null(st, "open %s: %s", loc, vb_error_msg());

    s_capture_t cap;
    s_capture_begin(&cap, e.tmp);
    kill(proxy, SIGUSR2);
    int rc = vb_store_put(st, "packs/ours", "our bytes", 9, 0);
    size_t retries = s_capture_retries(&cap);
    cr_assert_eq(rc, 0, "the lost answer's object is ours: %s", vb_error_msg());
    cr_assert_eq(retries, 1, "the lost answer was retried once (%zu)", retries);
    char back[32];
    size_t len = 0;
    cr_assert_eq(vb_store_get(direct, "packs/ours", back, sizeof back, &len), 0);
    cr_assert(len == 9 && memcmp(back, "our bytes", 9) == 0);

    s_capture_begin(&cap, e.tmp);
    kill(proxy, SIGUSR2);
    rc = vb_store_put(st, "packs/ours", "not these", 9, 0);
    retries = s_capture_retries(&cap);
    cr_assert_eq(rc, VB_EEXISTS, "another writer's object is not ours: %d %s", rc, vb_error_msg());
    cr_assert_eq(retries, 1, "the lost 412 was retried once (%zu)", retries);
    cr_assert_eq(vb_store_put(st, "packs/ours", "our bytes", 9, 0), VB_EEXISTS,
                 "without a lost answer, 412 is 'exists' even for the same bytes");
    cr_assert_eq(vb_store_get(direct, "packs/ours", back, sizeof back, &len), 0);
    cr_assert(len == 9 && memcmp(back, "our bytes", 9) == 0, "the first writer's bytes stay");
    vb_store_destroy(&st);
    vb_store_destroy(&direct);
    s_proxy_stop(proxy);
    tu_rmrf(e.tmp);
}

/* ---------- pack uploads in flight ---------- */

/* Polls a store through the proxy until a stat of `name` succeeds (want_ok) or fails (an outage
 * began), for up to 10 s. */
static void s_await_reachable(vb_store_t *st, const char *name, bool want_ok)
{
    vb_store_stat_t ss;
    for (int i = 0; i < 200; i++) {
        if ((vb_store_stat(st, name, &ss) == 0) == want_ok)
            return;
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    cr_assert_fail("the proxy's outage did not %s", want_ok ? "end" : "begin");
}

/* A repository on S3 uploads up to 4 packs at once (the default). The network drops every
 * connection (the proxy's outage, no retries) while the last pack of a backup uploads: the
 * commit fails naming a pack, a later commit fails too, and no index object is written, so no
 * restore point can reference a pack that is not there. Once the network is back the same
 * chunks back up, and every one reads back byte for byte through the index object. */
Test(store_s3, a_pack_upload_that_fails_in_flight_leaves_no_index_object)
{
    enum { S_CHUNKS = 9, S_CS = 1 << 20 }; /* three per 4 MiB pack: three packs */
    s_env_t e;
    vb_store_t *st = s_open(&e, NULL);
    vb_store_destroy(&st);
    char ep[300], loc[8192], dloc[8192];
    pid_t proxy = s_proxy_start(&e, ep, sizeof ep, NULL);
    snprintf(loc, sizeof loc, "s3://%s/repo?endpoint=%s&region=%s&retries=0", e.bucket, ep,
             e.g.region);
    snprintf(dloc, sizeof dloc, "s3://%s/repo?endpoint=%s&region=%s", e.bucket, e.g.endpoint,
             e.g.region);
    vb_store_opts_t so = {.credentials_file = e.creds};
    vb_repo_params_t p = {.chunk_size = S_CS, .pack_size = 4u << 20, .store = so};
    cr_assert_eq(vb_repo_init(dloc, &p), 0, "%s", vb_error_msg());
    vb_store_t *direct = vb_store_open_opts(dloc, false, &so);
    cr_assert_not_null(direct, "%s", vb_error_msg());
    uint8_t *data = malloc((size_t)S_CHUNKS * S_CS), *back = malloc(S_CS);
    tu_fill_random(data, (size_t)S_CHUNKS * S_CS, 31);
    vb_digest_t d[S_CHUNKS];
    for (int attempt = 0; attempt < 2; attempt++) {
        vb_repo_t *r = vb_repo_open_opts(loc, NULL, &so);
        cr_assert_not_null(r, "%s", vb_error_msg());
        cr_assert_eq(vb_store_puts_in_flight(vb_repo_store(r)), 4);
        vb_repo_worker_t *w = vb_repo_worker_new(r);
        for (int i = 0; i < S_CHUNKS; i++) {
            const uint8_t *c = data + (size_t)i * S_CS;
            cr_assert_eq(vb_repo_digest(w, c, S_CS, &d[i]), 0);
            cr_assert_eq(vb_repo_chunk_put(w, &d[i], c, S_CS, NULL), 0, "%s", vb_error_msg());
        }
        if (attempt == 0) { /* the outage starts before the last pack is sealed */
            kill(proxy, SIGUSR1);
            s_await_reachable(vb_repo_store(r), "config", false);
        }
        int rc = vb_repo_worker_flush(w);
        if (rc == 0)
            rc = vb_repo_sync(r);
        if (attempt == 0) {
            cr_assert_eq(rc, VB_EIO, "the commit fails: %d %s", rc, vb_error_msg());
            cr_assert(strstr(vb_error_msg(), "packs/"), "names a pack: %s", vb_error_msg());
            cr_assert_eq(vb_repo_sync(r), VB_EIO, "a later commit fails too");
            cr_assert_eq(s_count_under(direct, "index/"), 0, "no index object");
            s_await_reachable(vb_repo_store(r), "config", true);
        } else {
            cr_assert_eq(rc, 0, "%s", vb_error_msg());
            cr_assert_eq(s_count_under(direct, "index/"), 1);
        }
        vb_repo_worker_destroy(&w);
        vb_repo_destroy(&r);
    }
    vb_repo_t *r = vb_repo_open_opts(dloc, NULL, &so);
    cr_assert_not_null(r, "%s", vb_error_msg());
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    for (int i = 0; i < S_CHUNKS; i++) {
        size_t len = 0;
        cr_assert_eq(vb_repo_chunk_get(w, &d[i], back, S_CS, &len), 0, "chunk %d: %s", i,
                     vb_error_msg());
        cr_assert(len == S_CS && memcmp(back, data + (size_t)i * S_CS, S_CS) == 0);
    }
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    vb_store_destroy(&direct);
    s_proxy_stop(proxy);
    free(data);
    free(back);
    tu_rmrf(e.tmp);
}

/* Whether the bucket has Object Lock is asked once a read meets a 404 (the object may be hidden
 * by a delete marker). A network blip on that question is reported as what it is, and the
 * question is asked again next time: the hidden object is then read through its marker. (It
 * used to be remembered as "no lock", so the object read as missing for the life of the store.) */
Test(store_s3, object_lock_a_blip_on_the_lock_question_is_reported_and_asked_again)
{
    s_env_t e;
    vb_store_t *direct = s_open_lock(&e, NULL, 60);
    cr_assert_eq(vb_store_put(direct, "manifests/1", "version one", 11, 0), 0, "%s",
                 vb_error_msg());
    cr_assert_eq(s_delete_all(&e, direct, "pfx/"), 1);
    char ep[300], loc[8192];
    pid_t proxy = s_proxy_start(&e, ep, sizeof ep, "object-lock=");
    snprintf(loc, sizeof loc, "s3://%s/pfx?endpoint=%s&region=%s&retries=0", e.bucket, ep,
             e.g.region);
    vb_store_opts_t so = {.credentials_file = e.creds};
    vb_store_t *st = vb_store_open_opts(loc, false, &so);
    cr_assert_not_null(st, "open %s: %s", loc, vb_error_msg());
    vb_store_stat_t ss;
    int rc = vb_store_stat(st, "manifests/1", &ss);
    cr_assert(rc != 0 && rc != VB_ENOTFOUND, "a blip is not 'missing': %d %s", rc, vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "Object Lock"), "%s", vb_error_msg());
    cr_assert_eq(vb_store_stat(st, "manifests/1", &ss), 0, "asked again: %s", vb_error_msg());
    cr_assert_eq(ss.size, 11);
    char buf[32];
    size_t len = 0;
    cr_assert_eq(vb_store_get(st, "manifests/1", buf, sizeof buf, &len), 0, "%s", vb_error_msg());
    cr_assert(len == 11 && memcmp(buf, "version one", 11) == 0);
    cr_assert_eq(vb_store_stat(st, "manifests/2", &ss), VB_ENOTFOUND, "%s", vb_error_msg());
    vb_store_destroy(&st);
    vb_store_destroy(&direct);
    s_proxy_stop(proxy);
    tu_rmrf(e.tmp);
}
