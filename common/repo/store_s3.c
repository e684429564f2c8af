/* store_s3 — the store as a bucket of an S3 server (Ceph RGW, AWS S3, ...): an object "a/b" is
 * the key PREFIX/a/b. Requests, signing, retries and errors are s3req.c's; XML answers
 * s3xml.c's.
 *
 * Location: s3://BUCKET[/PREFIX]?endpoint=https://HOST[:PORT][&region=R][&style=path|virtual]
 *           [&ca=CAFILE][&retries=N][&multipart=BYTES][&page=N][&stall_timeout=SECONDS]
 * (the query's values may be percent-encoded; an unknown key is an error). The access key comes
 * from the credentials file the options name (vb_store_opts_t), never from the location.
 *
 * How each operation maps to S3:
 *   put        PUT with Content-MD5 and x-amz-content-sha256. Put-if-absent adds
 *              If-None-Match: * (412 → VB_EEXISTS). When an earlier attempt's answer was lost
 *              (reset, 5xx) and the retry gets 412, the object is ours if its ETag is our body's
 *              MD5. Objects above `multipart` bytes (default 64 MiB) go as a multipart upload
 *              with parts of that size; put-if-absent then checks with HEAD first, which leaves a
 *              window in which two writers of one name both upload and the last to complete
 *              wins (large objects are packs, named by a random id).
 *   get        GET; get_range GET with Range (416 past the end reads nothing).
 *   stat       HEAD: Content-Length and Last-Modified.
 *   freshen    a copy of the object onto itself with x-amz-metadata-directive: REPLACE, which
 *              gives it a new Last-Modified (S3 has no "touch"; the bytes are copied server-side).
 *   list       ListObjectsV2 page by page (continuation tokens): memory bounded by a page.
 *   remove     HEAD (a DELETE of a missing key also answers 204: the HEAD gives VB_ENOTFOUND and,
 *              with unless_since, a first look at the mtime), then DELETE. With unless_since the
 *              DELETE carries x-amz-delete-if-unmodified-since, which RGW checks atomically
 *              with the delete (412 → VB_EBUSY). A server that ignores that header (AWS) leaves
 *              the window between the HEAD and the DELETE: a freshen landing there is lost.
 *              Times are the server's: keep the clocks of the hosts and the server in step.
 *   move       copy, then delete the source (not atomic: a crash between them leaves both).
 *   barrier    nothing: a PUT answered 200 is durable.
 *   cleanup    aborts multipart uploads under the prefix initiated before older_than.
 *   local_path VB_EUNSUPPORTED.
 *
 * Object Lock (vb_store_opts_t.lock at open, or set_lock): the bucket is made with
 * x-amz-bucket-object-lock-enabled (or checked with GET ?object-lock=); every PUT, multipart
 * initiate and copy carries x-amz-object-lock-mode and -retain-until-date = now + the lock, and a
 * copy (freshen, move) then PUTs ?retention= too, as RGW drops a copy's lock headers. remove
 * HEADs first: a retain-until in the future is VB_EPOLICY with nothing sent; otherwise it
 * DELETEs ?versionId= (the bucket is versioned: a plain DELETE would only add a delete marker).
 * hide is that plain DELETE. extend_lock PUTs ?retention= (now + the lock) on the current
 * version. A delete marker anyone else left (a plain DELETE) is read through by get, get_range and
 * stat on a bucket with Object Lock (the newest version, found with ListObjectVersions);
 * list_hidden walks ListObjectVersions (a HEAD ?versionId= per hidden key for its retention) and
 * unhide DELETEs ?versionId=<marker> (see "hidden objects" below). */
#include "repo/store.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "repo/s3req.h"
#include "repo/s3xml.h"

#define S_KEY_MAX (VB_STORE_NAME_MAX * 2 + 2)
#define S_PART_MIN (5ull << 20)
#define S_MULTIPART_DEFAULT (64ull << 20)
#define S_PAGE_DEFAULT 1000
#define S_RETRIES_DEFAULT 8
#define S_QUERY_MAX 8192
#define S_VERSIONS_MAX 64 /* versions of one key a remove deletes at most */

typedef struct {
    vb_s3_conn_t *conn;
    char prefix[VB_STORE_NAME_MAX + 2]; /* "" or "dir/" */
    uint64_t multipart;
    int page;
    vb_store_lock_t lock; /* the retention every write gets (Object Lock) */
    int bucket_lock;      /* the bucket has Object Lock: 0 not asked yet, 1 no, 2 yes (atomic) */
} s_s3_t;

/* The two Object Lock headers of a write made now (nothing when the store has no lock). */
typedef struct {
    char mode[64], until[96];
} s_lockhdr_t;

/* Appends the lock headers to the NULL-terminated hdrs (room for two more). */
static void s_lock_headers(const s_s3_t *s, s_lockhdr_t *h, const char **hdrs)
{
    if (s->lock.seconds <= 0)
        return;
    size_t n = 0;
    while (hdrs[n])
        n++;
    time_t until = time(NULL) + (time_t)s->lock.seconds;
    struct tm tm;
    gmtime_r(&until, &tm);
    snprintf(h->mode, sizeof h->mode, "x-amz-object-lock-mode: %s",
             s->lock.governance ? "GOVERNANCE" : "COMPLIANCE");
    strftime(h->until, sizeof h->until, "x-amz-object-lock-retain-until-date: %Y-%m-%dT%H:%M:%SZ",
             &tm);
    hdrs[n] = h->mode;
    hdrs[n + 1] = h->until;
    hdrs[n + 2] = NULL;
}

/* ---------- location and credentials ---------- */

typedef struct {
    char *endpoint, *region, *style, *ca, *retries, *multipart, *page, *stall;
} s_query_t;

static const struct {
    const char *name;
    size_t off;
} s_query_keys[] = {
    {"endpoint", offsetof(s_query_t, endpoint)}, {"region", offsetof(s_query_t, region)},
    {"style", offsetof(s_query_t, style)},       {"ca", offsetof(s_query_t, ca)},
    {"retries", offsetof(s_query_t, retries)},   {"multipart", offsetof(s_query_t, multipart)},
    {"page", offsetof(s_query_t, page)},         {"stall_timeout", offsetof(s_query_t, stall)},
};

static void s_query_free(s_query_t *q)
{
    for (size_t i = 0; i < sizeof s_query_keys / sizeof s_query_keys[0]; i++)
        curl_free(*(char **)((char *)q + s_query_keys[i].off));
}

static int s_query_set(s_query_t *q, const char *item, size_t n)
{
    const char *eq = memchr(item, '=', n);
    size_t klen = eq ? (size_t)(eq - item) : n;
    for (size_t i = 0; eq && i < sizeof s_query_keys / sizeof s_query_keys[0]; i++) {
        if (strlen(s_query_keys[i].name) != klen || strncmp(item, s_query_keys[i].name, klen))
            continue;
        char **slot = (char **)((char *)q + s_query_keys[i].off);
        curl_free(*slot);
        *slot = curl_easy_unescape(NULL, eq + 1, (int)(n - klen - 1), NULL);
        return *slot ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
    }
    return vb_error_set(VB_EINVAL,
                        "S3 location: unknown parameter '%.*s' (endpoint, region, style, ca, "
                        "retries, multipart, page, stall_timeout)",
                        (int)klen, item);
}

static int s_query_parse(const char *query, s_query_t *q)
{
    for (const char *p = query; p && *p;) {
        size_t n = strcspn(p, "&");
        int rc = n ? s_query_set(q, p, n) : 0;
        if (rc)
            return rc;
        p += n + (p[n] == '&');
    }
    return 0;
}

static int s_num(const char *text, int64_t min, int64_t max, int64_t def, const char *what,
                 int64_t *out)
{
    *out = def;
    return text ? vb_parse_i64(text, min, max, what, out) : 0;
}

typedef struct {
    char *access_key_id;
    char *secret_access_key;
} s_creds_t;

static const vb_conf_key_t s_creds_keys[] = {
    {"access_key_id", VB_CONF_STR, offsetof(s_creds_t, access_key_id), NULL, 0, 0, true,
     "the S3 access key id"},
    {"secret_access_key", VB_CONF_STR, offsetof(s_creds_t, secret_access_key), NULL, 0, 0, true,
     "the S3 secret access key"},
    VB_CONF_END,
};

static void s_creds_free(s_creds_t *c)
{
    if (c->secret_access_key)
        OPENSSL_cleanse(c->secret_access_key, strlen(c->secret_access_key));
    vb_config_free(s_creds_keys, c);
}

/* The credentials file: VDDK style, owner-only (0600), or refused. */
static int s_creds_load(const char *path, s_creds_t *c)
{
    struct stat st;
    memset(c, 0, sizeof *c);
    if (!path || !*path)
        return vb_error_set(VB_EAUTH, "an S3 repository needs a credentials file "
                                      "(repository_credentials_file or --credentials)");
    if (stat(path, &st) != 0)
        return vb_error_set(VB_ENOTFOUND, "S3 credentials file %s: %s", path, strerror(errno));
    if (st.st_mode & 077)
        return vb_error_set(VB_EPOLICY,
                            "S3 credentials file %s has mode %04o: others may read it; make it "
                            "0600 (chmod 600 %s)",
                            path, (unsigned)(st.st_mode & 07777), path);
    int rc = vb_config_defaults(s_creds_keys, c);
    if (rc == 0)
        rc = vb_config_load_file(s_creds_keys, c, path);
    if (rc == 0)
        rc = vb_config_check_required(s_creds_keys, c);
    if (rc)
        vb_error_prefix(rc, "S3 credentials file %s", path);
    return rc;
}

/* BUCKET[/PREFIX] → bucket, prefix ("" or "p/"). */
static int s_bucket_prefix(const char *path, size_t n, char *bucket, size_t bsz, char *prefix)
{
    const char *slash = memchr(path, '/', n);
    size_t blen = slash ? (size_t)(slash - path) : n;
    if (blen == 0 || blen >= bsz)
        return vb_error_set(VB_EINVAL, "S3 location: no bucket (s3://BUCKET/PREFIX?endpoint=...)");
    memcpy(bucket, path, blen);
    bucket[blen] = '\0';
    prefix[0] = '\0';
    size_t plen = slash ? n - blen - 1 : 0;
    while (plen && slash[plen] == '/')
        plen--;
    if (plen == 0)
        return 0;
    if (plen > VB_STORE_NAME_MAX)
        return vb_error_set(VB_EINVAL, "S3 location: the prefix is too long");
    memcpy(prefix, slash + 1, plen);
    prefix[plen] = '\0';
    int rc = vb_store_check_name(prefix);
    if (rc)
        return vb_error_prefix(rc, "S3 location prefix");
    prefix[plen] = '/';
    prefix[plen + 1] = '\0';
    return 0;
}

static int s_conn(s_s3_t *s, const char *bucket, const s_query_t *q, const s_creds_t *cr)
{
    int64_t retries, multipart, page, stall;
    int rc = s_num(q->retries, 0, 100, S_RETRIES_DEFAULT, "S3 retries", &retries);
    if (rc == 0)
        rc = s_num(q->multipart, (int64_t)S_PART_MIN, INT64_C(5) << 30,
                   (int64_t)S_MULTIPART_DEFAULT, "S3 multipart threshold", &multipart);
    if (rc == 0)
        rc = s_num(q->page, 1, 1000, S_PAGE_DEFAULT, "S3 list page size", &page);
    if (rc == 0)
        rc = s_num(q->stall, 1, 3600, 60, "S3 stall timeout", &stall);
    if (rc == 0 && q->style && strcmp(q->style, "path") && strcmp(q->style, "virtual"))
        rc = vb_error_set(VB_EINVAL, "S3 location: style is path or virtual, not '%s'", q->style);
    if (rc)
        return rc;
    vb_s3_conn_params_t p = {
        .endpoint = q->endpoint,
        .bucket = bucket,
        .region = q->region,
        .virtual_host = q->style && strcmp(q->style, "virtual") == 0,
        .ca_file = q->ca,
        .access_key = cr->access_key_id,
        .secret_key = cr->secret_access_key,
        .retries = (int)retries,
        .stall_timeout_s = (long)stall,
    };
    s->multipart = (uint64_t)multipart;
    s->page = (int)page;
    s->conn = vb_s3_conn_new(&p);
    return s->conn ? 0 : vb_error_code();
}

/* ---------- helpers ---------- */

static void s_key(const s_s3_t *s, const char *name, char *out)
{
    snprintf(out, S_KEY_MAX, "%s%s", s->prefix, name);
}

/* A request without a body or answer buffer; the answer's status and headers in *r. */
static int s_simple(s_s3_t *s, vb_s3_req_t *r, const char *method, const char *key,
                    const char *query, const char *const *headers)
{
    r->method = method;
    r->key = key;
    r->query = query;
    r->headers = headers;
    return vb_s3_request(s->conn, r);
}

/* ---------- paged listings ----------
 *
 * ListObjectsV2, ListObjectVersions and ListMultipartUploads answer a page at a time and name
 * where the next one starts (one or two markers). s_paged asks page after page: the query is
 * the listing's fixed parameters plus the markers of the last page, sorted by name as SigV4
 * signs it; s_page_fn hands a page's entries on and takes its next markers (NULL: the last
 * page). Memory is bounded by a page. */

typedef struct {
    const char *name;
    const char *value; /* percent-encoded here */
} s_param_t;

/* Parses one answer, hands its entries on, and moves the page's next markers into next[0..1]
 * (both NULL on the last page). > 0 stops the listing (s_paged returns 0). */
typedef int (*s_page_fn)(s_s3_t *s, const vb_buf_t *answer, void *arg, char *next[2]);

static int s_param_cmp(const void *a, const void *b)
{
    return strcmp(((const s_param_t *)a)->name, ((const s_param_t *)b)->name);
}

static int s_query_build(s_param_t *p, size_t n, vb_buf_t *q)
{
    char esc[S_KEY_MAX * 3];
    int rc = 0;
    qsort(p, n, sizeof *p, s_param_cmp);
    q->len = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if ((rc = vb_s3_escape(p[i].value, esc, sizeof esc)) == 0)
            rc = vb_buf_printf(q, "%s%s=%s", i ? "&" : "", p[i].name, esc);
    return rc;
}

/* Lists with `fixed` (at most 4) parameters, carrying markers named marker_names from page to
 * page. */
static int s_paged(s_s3_t *s, const s_param_t *fixed, size_t nfixed,
                   const char *const marker_names[2], s_page_fn fn, void *arg)
{
    char *mark[2] = {NULL, NULL};
    vb_buf_t q = {0};
    int rc = 0;
    do {
        s_param_t p[6];
        size_t n = nfixed;
        memcpy(p, fixed, nfixed * sizeof *p);
        for (int k = 0; k < 2; k++)
            if (mark[k] && marker_names[k])
                p[n++] = (s_param_t){marker_names[k], mark[k]};
        if ((rc = s_query_build(p, n, &q)) != 0)
            break;
        vb_s3_req_t r = {0};
        char *next[2] = {NULL, NULL};
        if ((rc = s_simple(s, &r, "GET", NULL, q.data, NULL)) == 0)
            rc = fn(s, &r.resp, arg, next);
        vb_s3_req_free(&r);
        for (int k = 0; k < 2; k++) {
            free(mark[k]);
            mark[k] = next[k];
        }
    } while (rc == 0 && mark[0]);
    free(mark[0]);
    free(mark[1]);
    vb_buf_free(&q);
    return rc > 0 ? 0 : rc;
}

/* HEAD of the key's version `query` ("versionId=V"; NULL: the current one). */
static int s_head_version(s_s3_t *s, const char *key, const char *query, vb_store_stat_t *st)
{
    vb_s3_req_t r = {0};
    int rc = s_simple(s, &r, "HEAD", key, query, NULL);
    if (rc == 0 && st) {
        st->size = r.length;
        st->mtime = r.mtime;
        st->retain_until = r.retain_until;
    }
    vb_s3_req_free(&r);
    return rc;
}

static int s_head(s_s3_t *s, const char *key, vb_store_stat_t *st)
{
    return s_head_version(s, key, NULL, st);
}

/* Sets the retention of key's current version to now + the lock (RGW does not apply the lock
 * headers of a copy). */
static int s_put_retention(s_s3_t *s, const char *key)
{
    char body[256], date[40];
    time_t until = time(NULL) + (time_t)s->lock.seconds;
    struct tm tm;
    gmtime_r(&until, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int n = snprintf(body, sizeof body,
                     "<Retention><Mode>%s</Mode><RetainUntilDate>%s</RetainUntilDate></Retention>",
                     s->lock.governance ? "GOVERNANCE" : "COMPLIANCE", date);
    struct iovec iov = {.iov_base = body, .iov_len = (size_t)n};
    vb_s3_req_t r = {.method = "PUT",
                     .key = key,
                     .query = "retention=",
                     .iov = &iov,
                     .iovcnt = 1,
                     .body_len = (uint64_t)n,
                     .content_md5 = true};
    int rc = vb_s3_request(s->conn, &r);
    vb_s3_req_free(&r);
    return rc;
}

/* A server-side copy of the key src onto key; replace_meta: a copy onto itself (S3 refuses one
 * that changes nothing). */
static int s_copy(s_s3_t *s, const char *src, const char *key, bool replace_meta)
{
    char copy[S_KEY_MAX + 96];
    snprintf(copy, sizeof copy, "x-amz-copy-source: /%s/%s", vb_s3_conn_bucket(s->conn), src);
    const char *headers[5] = {copy, replace_meta ? "x-amz-metadata-directive: REPLACE" : NULL};
    s_lockhdr_t lh;
    s_lock_headers(s, &lh, headers);
    vb_s3_req_t r = {0};
    int rc = s_simple(s, &r, "PUT", key, NULL, headers);
    /* a copy may fail after its 200 status line: the error is then in the body */
    vb_s3_error_t e = {0};
    if (rc == 0 && vb_s3_error_parse(r.resp.data, r.resp.len, &e) == 0 && e.code)
        rc = vb_error_set(strcmp(e.code, "NoSuchKey") == 0 ? VB_ENOTFOUND : VB_EIO,
                          "%s key %s: copy from %s: %s", vb_s3_conn_where(s->conn), key, src,
                          e.code);
    vb_s3_error_free(&e);
    vb_s3_req_free(&r);
    if (rc == 0 && s->lock.seconds > 0)
        rc = s_put_retention(s, key);
    return rc;
}

/* Read-through of a hidden object (the hidden-objects section below). */
static int s_hidden_query(s_s3_t *s, const char *key, char *query, size_t qsz);

/* ---------- open/close ---------- */

static void s_close(void *state)
{
    s_s3_t *s = state;
    if (!s)
        return;
    vb_s3_conn_destroy(&s->conn);
    free(s);
}

/* A store with a lock needs a bucket with Object Lock: one line refusing any other. */
static int s_check_lock(s_s3_t *s)
{
    vb_s3_req_t r = {0};
    int rc = s_simple(s, &r, "GET", NULL, "object-lock=", NULL);
    bool on = rc == 0 && r.resp.data &&
              memmem(r.resp.data, r.resp.len, "<ObjectLockEnabled>Enabled<", 27) != NULL;
    if ((rc == 0 && !on) || (rc == VB_ENOTFOUND && r.s3_code &&
                             strcmp(r.s3_code, "ObjectLockConfigurationNotFoundError") == 0))
        rc = vb_error_set(VB_EPOLICY,
                          "%s has no Object Lock (it can only be enabled when a bucket is made: "
                          "use a new bucket with --create-bucket)",
                          vb_s3_conn_where(s->conn));
    vb_s3_req_free(&r);
    return rc;
}

static int s_set_lock(void *state, const vb_store_lock_t *lock)
{
    s_s3_t *s = state;
    s->lock = *lock;
    return 0;
}

/* Checks the bucket answers (and the key is right) with a one-key listing. */
static int s_probe(s_s3_t *s, const vb_store_opts_t *opts)
{
    vb_s3_req_t r = {0};
    char query[S_QUERY_MAX], pfx[VB_STORE_NAME_MAX * 3 + 8];
    const char *const locked[] = {"x-amz-bucket-object-lock-enabled: true", NULL};
    int rc = 0;
    if (opts->create_bucket) {
        rc = s_simple(s, &r, "PUT", NULL, NULL, opts->lock.seconds > 0 ? locked : NULL);
        if (rc == VB_EEXISTS || (r.s3_code && strcmp(r.s3_code, "BucketAlreadyOwnedByYou") == 0)) {
            vb_error_clear();
            rc = 0;
        }
        vb_s3_req_free(&r);
        memset(&r, 0, sizeof r);
    }
    if (rc == 0)
        rc = vb_s3_escape(s->prefix, pfx, sizeof pfx);
    if (rc == 0) {
        snprintf(query, sizeof query, "list-type=2&max-keys=1&prefix=%s", pfx);
        rc = s_simple(s, &r, "GET", NULL, query, NULL);
    }
    if (rc == VB_ENOTFOUND && !opts->create_bucket) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", vb_error_msg());
        vb_error_set(rc, "%s (create it, or vbak repo init --create-bucket)", msg);
    }
    vb_s3_req_free(&r);
    if (rc == 0 && opts->lock.seconds > 0 && (rc = s_check_lock(s)) == 0) {
        s->lock = opts->lock;
        s->bucket_lock = 2;
    }
    return rc;
}

static int s_open(const char *where, bool create, const vb_store_opts_t *opts, void **state)
{
    (void)create; /* an S3 store has no directory to make: the bucket is the store */
    s_query_t q = {0};
    s_creds_t cr = {0};
    char bucket[64];
    const char *qm = strchr(where, '?');
    size_t plen = qm ? (size_t)(qm - where) : strlen(where);
    s_s3_t *s = calloc(1, sizeof *s);
    int rc = s ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
    if (rc == 0)
        rc = s_bucket_prefix(where, plen, bucket, sizeof bucket, s->prefix);
    if (rc == 0)
        rc = s_query_parse(qm ? qm + 1 : NULL, &q);
    if (rc == 0 && !q.endpoint)
        rc = vb_error_set(VB_EINVAL,
                          "S3 location s3://%s: endpoint=https://HOST[:PORT] is "
                          "required",
                          where);
    if (rc == 0)
        rc = s_creds_load(opts->credentials_file, &cr);
    if (rc == 0)
        rc = s_conn(s, bucket, &q, &cr);
    if (rc == 0)
        rc = s_probe(s, opts);
    s_creds_free(&cr);
    s_query_free(&q);
    if (rc) {
        s_close(s);
        return rc;
    }
    *state = s;
    return 0;
}

/* ---------- put ---------- */

static uint64_t s_iov_len(const struct iovec *iov, int iovcnt)
{
    uint64_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    return n;
}

static int s_put_single(s_s3_t *s, const char *key, const struct iovec *iov, int iovcnt,
                        uint64_t len, bool if_absent)
{
    const char *headers[4] = {if_absent ? "If-None-Match: *" : NULL};
    s_lockhdr_t lh;
    s_lock_headers(s, &lh, headers);
    vb_s3_req_t r = {.method = "PUT",
                     .key = key,
                     .headers = headers,
                     .iov = iov,
                     .iovcnt = iovcnt,
                     .body_len = len,
                     .content_md5 = true};
    int rc = vb_s3_request(s->conn, &r);
    if (rc == VB_EEXISTS && r.retried_lost) {
        /* an attempt whose answer was lost may have made it: then the object is ours */
        vb_s3_req_t h = {0};
        if (s_simple(s, &h, "HEAD", key, NULL, NULL) == 0 && strcmp(h.etag, r.md5_hex) == 0)
            rc = 0;
        vb_s3_req_free(&h);
    }
    if (rc == VB_EEXISTS)
        vb_error_set(rc, "%s key %s: exists already", vb_s3_conn_where(s->conn), key);
    vb_s3_req_free(&r);
    return rc;
}

/* The parts of a multipart upload, then CompleteMultipartUpload's body listing them. */
static int s_put_parts(s_s3_t *s, const char *key, const char *id, const struct iovec *iov,
                       int iovcnt, uint64_t len, vb_buf_t *done)
{
    char query[S_QUERY_MAX], eid[1024];
    int rc = vb_s3_escape(id, eid, sizeof eid);
    if (rc == 0)
        rc = vb_buf_puts(done, "<CompleteMultipartUpload>");
    for (uint64_t off = 0, part = 1; rc == 0 && off < len; off += s->multipart, part++) {
        uint64_t n = len - off < s->multipart ? len - off : s->multipart;
        snprintf(query, sizeof query, "partNumber=%llu&uploadId=%s", (unsigned long long)part, eid);
        vb_s3_req_t r = {.method = "PUT",
                         .key = key,
                         .query = query,
                         .iov = iov,
                         .iovcnt = iovcnt,
                         .body_off = off,
                         .body_len = n,
                         .content_md5 = true};
        rc = vb_s3_request(s->conn, &r);
        if (rc == 0)
            rc =
                vb_buf_printf(done, "<Part><PartNumber>%llu</PartNumber><ETag>\"%s\"</ETag></Part>",
                              (unsigned long long)part, r.etag);
        vb_s3_req_free(&r);
    }
    return rc ? rc : vb_buf_puts(done, "</CompleteMultipartUpload>");
}

static int s_put_multipart(s_s3_t *s, const char *key, const struct iovec *iov, int iovcnt,
                           uint64_t len, bool if_absent)
{
    vb_s3_req_t r = {0};
    vb_buf_t done = {0};
    char *id = NULL, query[S_QUERY_MAX], eid[1024];
    int rc = if_absent ? s_head(s, key, NULL) : VB_ENOTFOUND;
    if (rc == 0)
        return vb_error_set(VB_EEXISTS, "%s key %s: exists already", vb_s3_conn_where(s->conn),
                            key);
    if (rc != VB_ENOTFOUND)
        return rc;
    vb_error_clear();
    const char *headers[3] = {NULL};
    s_lockhdr_t lh;
    s_lock_headers(s, &lh, headers);
    if ((rc = s_simple(s, &r, "POST", key, "uploads=", headers)) == 0)
        rc = vb_s3_initiate_parse(r.resp.data, r.resp.len, &id);
    vb_s3_req_free(&r);
    if (rc)
        return rc;
    rc = s_put_parts(s, key, id, iov, iovcnt, len, &done);
    if (rc == 0)
        rc = vb_s3_escape(id, eid, sizeof eid);
    snprintf(query, sizeof query, "uploadId=%s", eid);
    if (rc == 0) {
        struct iovec body = {.iov_base = done.data, .iov_len = done.len};
        vb_s3_req_t c = {.method = "POST",
                         .key = key,
                         .query = query,
                         .iov = &body,
                         .iovcnt = 1,
                         .body_len = done.len};
        rc = vb_s3_request(s->conn, &c);
        vb_s3_error_t e = {0}; /* Complete may fail after its 200 status line */
        if (rc == 0 && vb_s3_error_parse(c.resp.data, c.resp.len, &e) == 0 && e.code)
            rc = vb_error_set(VB_EIO, "%s key %s: completing the upload: %s",
                              vb_s3_conn_where(s->conn), key, e.code);
        vb_s3_error_free(&e);
        vb_s3_req_free(&c);
    }
    if (rc) { /* abort: nothing of the upload stays (cleanup retries what this misses) */
        char first[1024];
        snprintf(first, sizeof first, "%s", vb_error_msg());
        vb_s3_req_t a = {0};
        (void)s_simple(s, &a, "DELETE", key, query, NULL);
        vb_s3_req_free(&a);
        vb_error_set(rc, "%s", first);
    }
    vb_buf_free(&done);
    free(id);
    return rc;
}

static int s_put(void *state, const char *name, const struct iovec *iov, int iovcnt, unsigned flags)
{
    s_s3_t *s = state;
    char key[S_KEY_MAX];
    s_key(s, name, key);
    uint64_t len = s_iov_len(iov, iovcnt);
    bool if_absent = !(flags & VB_STORE_REPLACE);
    if (len > s->multipart)
        return s_put_multipart(s, key, iov, iovcnt, len, if_absent);
    return s_put_single(s, key, iov, iovcnt, len, if_absent);
}

/* ---------- get, stat, freshen ---------- */

static int s_get(void *state, const char *name, void *buf, size_t cap, size_t *len)
{
    s_s3_t *s = state;
    char key[S_KEY_MAX];
    s_key(s, name, key);
    char vq[512];
    vb_s3_req_t r = {.method = "GET", .key = key, .dst = buf, .cap = cap};
    int rc = vb_s3_request(s->conn, &r);
    if (rc == VB_ENOTFOUND && (rc = s_hidden_query(s, key, vq, sizeof vq)) == 0) {
        vb_s3_req_free(&r);
        r = (vb_s3_req_t){.method = "GET", .key = key, .query = vq, .dst = buf, .cap = cap};
        rc = vb_s3_request(s->conn, &r);
    }
    if (rc == 0 && r.overflow)
        rc = vb_error_set(VB_ECORRUPT, "%s key %s: holds more than %zu bytes",
                          vb_s3_conn_where(s->conn), key, cap);
    *len = r.got;
    vb_s3_req_free(&r);
    return rc;
}

static int s_get_range(void *state, const char *name, uint64_t off, void *buf, size_t len,
                       size_t *got)
{
    s_s3_t *s = state;
    char key[S_KEY_MAX], range[80];
    *got = 0;
    s_key(s, name, key);
    if (len == 0)
        return s_head(s, key, NULL);
    snprintf(range, sizeof range, "Range: bytes=%llu-%llu", (unsigned long long)off,
             (unsigned long long)(off + len - 1));
    const char *const headers[] = {range, NULL};
    char vq[512];
    vb_s3_req_t r = {.method = "GET", .key = key, .headers = headers, .dst = buf, .cap = len};
    int rc = vb_s3_request(s->conn, &r);
    if (rc == VB_ENOTFOUND && (rc = s_hidden_query(s, key, vq, sizeof vq)) == 0) {
        vb_s3_req_free(&r);
        r = (vb_s3_req_t){
            .method = "GET", .key = key, .query = vq, .headers = headers, .dst = buf, .cap = len};
        rc = vb_s3_request(s->conn, &r);
    }
    if (rc == VB_EINVAL && r.status == 416) { /* starts past the end: nothing to read */
        vb_error_clear();
        rc = 0;
    }
    if (rc == 0 && r.status == 200 && off > 0) /* a server that ignored the Range */
        rc = vb_error_set(VB_EPROTO, "%s key %s: the server ignored a Range request",
                          vb_s3_conn_where(s->conn), key);
    *got = rc == 0 ? r.got : 0;
    vb_s3_req_free(&r);
    return rc;
}

static int s_stat(void *state, const char *name, vb_store_stat_t *st)
{
    s_s3_t *s = state;
    char key[S_KEY_MAX], vq[512];
    s_key(s, name, key);
    int rc = s_head(s, key, st);
    if (rc == VB_ENOTFOUND && (rc = s_hidden_query(s, key, vq, sizeof vq)) == 0)
        rc = s_head_version(s, key, vq, st);
    return rc;
}

static int s_freshen(void *state, const char *name)
{
    s_s3_t *s = state;
    char key[S_KEY_MAX];
    s_key(s, name, key);
    return s_copy(s, key, key, true);
}

static int s_extend_lock(void *state, const char *name)
{
    s_s3_t *s = state;
    if (s->lock.seconds <= 0)
        return vb_error_set(VB_EUNSUPPORTED, "%s: the repository has no Object Lock",
                            vb_s3_conn_where(s->conn));
    char key[S_KEY_MAX];
    s_key(s, name, key);
    return s_put_retention(s, key);
}

/* ---------- list ---------- */

typedef struct {
    vb_store_list_fn fn;
    void *arg;
} s_list_t;

/* One page of ListObjectsV2: the names of this store's objects to fn. */
static int s_list_page(s_s3_t *s, const vb_buf_t *answer, void *arg, char *next[2])
{
    s_list_t *l = arg;
    vb_s3_list_t page = {0};
    int rc = vb_s3_list_parse(answer->data, answer->len, &page);
    size_t plen = strlen(s->prefix);
    for (size_t i = 0; rc == 0 && i < page.n; i++) {
        const char *name = page.objs[i].key + plen;
        if (strncmp(page.objs[i].key, s->prefix, plen) != 0 || vb_store_check_name(name)) {
            vb_error_clear(); /* not an object of this store */
            continue;
        }
        vb_store_stat_t st = {.size = page.objs[i].size, .mtime = page.objs[i].mtime};
        rc = l->fn(l->arg, name, &st);
    }
    next[0] = page.next_token;
    page.next_token = NULL;
    vb_s3_list_free(&page);
    return rc;
}

static int s_list(void *state, const char *prefix, vb_store_list_fn fn, void *arg)
{
    s_s3_t *s = state;
    char full[S_KEY_MAX], max[16];
    s_key(s, prefix, full);
    snprintf(max, sizeof max, "%d", s->page);
    const s_param_t fixed[] = {{"list-type", "2"}, {"max-keys", max}, {"prefix", full}};
    static const char *const markers[2] = {"continuation-token", NULL};
    s_list_t l = {fn, arg};
    return s_paged(s, fixed, 3, markers, s_list_page, &l);
}

/* ---------- remove, move ---------- */

/* HEAD before a removal: VB_EPOLICY while locked; *query "versionId=V" on a versioned bucket
 * (a plain DELETE there only hides the object behind a marker), else "". */
static int s_remove_check(s_s3_t *s, const char *key, time_t *mtime, char *query, size_t qsz)
{
    char vid[128 * 3];
    vb_s3_req_t h = {0};
    int rc = s_simple(s, &h, "HEAD", key, NULL, NULL);
    *mtime = h.mtime;
    query[0] = '\0';
    if (rc == 0 && h.retain_until > time(NULL)) {
        char date[32];
        struct tm ut;
        gmtime_r(&h.retain_until, &ut);
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", &ut);
        rc = vb_error_set(VB_EPOLICY, "%s key %s: under Object Lock until %s, kept",
                          vb_s3_conn_where(s->conn), key, date);
    }
    if (rc == 0 && h.version_id[0] && (rc = vb_s3_escape(h.version_id, vid, sizeof vid)) == 0)
        snprintf(query, qsz, "versionId=%s", vid);
    vb_s3_req_free(&h);
    return rc;
}

/* Removes the key's current version (the object, on a bucket without versions). */
static int s_remove_current(s_s3_t *s, const char *key, time_t unless_since, bool *versioned)
{
    char cond[96], query[512];
    time_t mtime = 0;
    int rc = s_remove_check(s, key, &mtime, query, sizeof query);
    *versioned = query[0] != '\0';
    if (rc)
        return rc;
    if (unless_since && mtime >= unless_since)
        return vb_error_set(VB_EBUSY, "%s key %s: used since the cutoff, kept",
                            vb_s3_conn_where(s->conn), key);
    struct tm tm;
    time_t since = unless_since;
    gmtime_r(&since, &tm);
    strftime(cond, sizeof cond, "x-amz-delete-if-unmodified-since: %Y-%m-%dT%H:%M:%SZ", &tm);
    const char *const headers[] = {cond, NULL};
    vb_s3_req_t r = {0};
    rc = s_simple(s, &r, "DELETE", key, *versioned ? query : NULL, unless_since ? headers : NULL);
    if (rc == VB_EEXISTS) /* 412: freshened between the HEAD and the DELETE */
        rc = vb_error_set(VB_EBUSY, "%s key %s: used since the cutoff, kept",
                          vb_s3_conn_where(s->conn), key);
    vb_s3_req_free(&r);
    return rc;
}

/* On a versioned bucket, deleting the current version brings back the one before it (a
 * freshen's copy leaves the older one): remove them all, newest first, as long as none is
 * locked (an older version's lock ends before a newer one's). */
static int s_remove(void *state, const char *name, time_t unless_since)
{
    s_s3_t *s = state;
    char key[S_KEY_MAX];
    s_key(s, name, key);
    bool versioned = false;
    int rc = s_remove_current(s, key, unless_since, &versioned);
    for (int i = 0; rc == 0 && versioned && i < S_VERSIONS_MAX; i++) {
        rc = s_remove_current(s, key, unless_since, &versioned);
        if (rc == VB_ENOTFOUND) { /* no version left */
            vb_error_clear();
            return 0;
        }
    }
    return rc;
}

static int s_hide(void *state, const char *name)
{
    s_s3_t *s = state;
    char key[S_KEY_MAX];
    s_key(s, name, key);
    int rc = s_head(s, key, NULL);
    vb_s3_req_t r = {0};
    if (rc == 0)
        rc = s_simple(s, &r, "DELETE", key, NULL, NULL);
    vb_s3_req_free(&r);
    return rc;
}

static int s_move(void *state, const char *from, const char *to)
{
    s_s3_t *s = state;
    char kfrom[S_KEY_MAX], kto[S_KEY_MAX];
    s_key(s, from, kfrom);
    s_key(s, to, kto);
    int rc = s_copy(s, kfrom, kto, false);
    vb_s3_req_t r = {0};
    if (rc == 0)
        rc = s_simple(s, &r, "DELETE", kfrom, NULL, NULL);
    vb_s3_req_free(&r);
    return rc;
}

static int s_barrier(void *state, bool everything)
{
    (void)state; /* a PUT, copy or DELETE answered 2xx is durable, whoever sent it */
    (void)everything;
    return 0;
}

/* ---------- cleanup ---------- */

static int s_abort_old(s_s3_t *s, const vb_s3_uploads_t *u, time_t older_than, bool dry_run,
                       uint64_t *removed)
{
    char query[S_QUERY_MAX], eid[1024];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < u->n; i++) {
        if (u->ups[i].initiated >= older_than)
            continue;
        (*removed)++;
        if (dry_run || (rc = vb_s3_escape(u->ups[i].upload_id, eid, sizeof eid)) != 0)
            continue;
        snprintf(query, sizeof query, "uploadId=%s", eid);
        vb_s3_req_t r = {0};
        rc = s_simple(s, &r, "DELETE", u->ups[i].key, query, NULL);
        if (rc == VB_ENOTFOUND) { /* completed or aborted meanwhile */
            vb_error_clear();
            rc = 0;
        }
        vb_s3_req_free(&r);
    }
    return rc;
}

typedef struct {
    time_t older_than;
    bool dry_run;
    uint64_t *removed;
} s_cleanup_t;

/* One page of ListMultipartUploads: the old ones aborted. */
static int s_uploads_page(s_s3_t *s, const vb_buf_t *answer, void *arg, char *next[2])
{
    s_cleanup_t *c = arg;
    vb_s3_uploads_t u = {0};
    int rc = vb_s3_uploads_parse(answer->data, answer->len, &u);
    if (rc == 0)
        rc = s_abort_old(s, &u, c->older_than, c->dry_run, c->removed);
    next[0] = u.next_key;
    next[1] = u.next_upload_id;
    u.next_key = u.next_upload_id = NULL;
    vb_s3_uploads_free(&u);
    return rc;
}

static int s_cleanup(void *state, time_t older_than, bool dry_run, uint64_t *removed)
{
    s_s3_t *s = state;
    *removed = 0;
    const s_param_t fixed[] = {{"prefix", s->prefix}, {"uploads", ""}};
    static const char *const markers[2] = {"key-marker", "upload-id-marker"};
    s_cleanup_t c = {older_than, dry_run, removed};
    return s_paged(s, fixed, 2, markers, s_uploads_page, &c);
}

static int s_local_path(void *state, const char *name, char *out, size_t outsz)
{
    s_s3_t *s = state;
    (void)out;
    (void)outsz;
    return vb_error_set(VB_EUNSUPPORTED, "%s: object %s has no local file path",
                        vb_s3_conn_where(s->conn), name);
}

/* ---------- hidden objects (delete markers) ----------
 *
 * On a versioned bucket (every Object Lock bucket is one) a DELETE without versionId, as anyone
 * holding the keys may send, adds a delete marker: the object is hidden from GET, HEAD and
 * ListObjectsV2, but its locked versions stay. Reads by name (get, get_range, stat) on a bucket
 * with Object Lock go through the markers to the newest version; list_hidden and unhide walk
 * ListObjectVersions. */

/* A hidden key met while walking the versions: its newest version, the markers above it. */
typedef struct {
    const char *key;
    const vb_s3_version_t *version;
    char *markers[S_VERSIONS_MAX];
    size_t nmarkers;
} s_hidden_t;

typedef int (*s_hidden_fn)(s_s3_t *s, const s_hidden_t *h, void *arg);

/* Walk state: entries of one key come newest first and may span pages. */
typedef struct {
    char *key;    /* the key being read */
    bool settled; /* its newest version was met (or it is not hidden) */
    s_hidden_t h;
} s_walk_t;

static void s_walk_reset(s_walk_t *w)
{
    free(w->key);
    for (size_t i = 0; i < w->h.nmarkers; i++)
        free(w->h.markers[i]);
    memset(w, 0, sizeof *w);
}

/* One entry: a key whose current entry is a marker and that has a version below is hidden. */
static int s_walk_entry(s_s3_t *s, s_walk_t *w, const vb_s3_version_t *v, const char *exact,
                        s_hidden_fn fn, void *arg)
{
    if (exact && strcmp(v->key, exact) != 0)
        return 0;
    if (!w->key || strcmp(w->key, v->key) != 0) {
        s_walk_reset(w);
        if (!(w->key = strdup(v->key)))
            return vb_error_set(VB_ENOMEM, "out of memory");
        w->settled = !(v->marker && v->latest); /* not hidden: its other entries are history */
    }
    if (w->settled)
        return 0;
    if (v->marker) {
        if (w->h.nmarkers < S_VERSIONS_MAX &&
            !(w->h.markers[w->h.nmarkers++] = strdup(v->version_id)))
            return vb_error_set(VB_ENOMEM, "out of memory");
        return 0;
    }
    w->settled = true;
    w->h.key = w->key;
    w->h.version = v;
    return fn(s, &w->h, arg);
}

typedef struct {
    s_walk_t w;
    const char *exact;
    s_hidden_fn fn;
    void *arg;
} s_walk_list_t;

/* One page of ListObjectVersions: its entries through the walk. */
static int s_versions_page(s_s3_t *s, const vb_buf_t *answer, void *arg, char *next[2])
{
    s_walk_list_t *l = arg;
    vb_s3_versions_t page = {0};
    int rc = vb_s3_versions_parse(answer->data, answer->len, &page);
    for (size_t i = 0; rc == 0 && i < page.n; i++)
        rc = s_walk_entry(s, &l->w, &page.vers[i], l->exact, l->fn, l->arg);
    next[0] = page.next_key;
    next[1] = page.next_version_id;
    page.next_key = page.next_version_id = NULL;
    vb_s3_versions_free(&page);
    return rc;
}

/* Walks ListObjectVersions of the keys under the full key prefix `pfx` (exact: only that key),
 * calling fn for each hidden one. fn > 0 stops the walk. */
static int s_walk_hidden(s_s3_t *s, const char *pfx, const char *exact, s_hidden_fn fn, void *arg)
{
    char max[16];
    snprintf(max, sizeof max, "%d", s->page);
    const s_param_t fixed[] = {{"max-keys", max}, {"prefix", pfx}, {"versions", ""}};
    static const char *const markers[2] = {"key-marker", "version-id-marker"};
    s_walk_list_t l = {.exact = exact, .fn = fn, .arg = arg};
    int rc = s_paged(s, fixed, 3, markers, s_versions_page, &l);
    s_walk_reset(&l.w);
    return rc;
}

/* Does the bucket have Object Lock? Asked until the server answers, then remembered: an answer
 * (a configuration, or a 4xx such as ObjectLockConfigurationNotFoundError) is kept; a failure
 * to get one (the endpoint down, a 5xx after the retries) is returned and not remembered, so
 * one blip does not turn lock handling off for the life of the store (nor does a 408 or 429
 * that outlasted the retries). */
static int s_bucket_has_lock(s_s3_t *s, bool *on)
{
    int known = __atomic_load_n(&s->bucket_lock, __ATOMIC_RELAXED);
    *on = known == 2;
    if (known)
        return 0;
    vb_s3_req_t r = {0};
    int rc = s_simple(s, &r, "GET", NULL, "object-lock=", NULL);
    /* 408 and 429 (SlowDown) are "ask again later", not answers */
    bool answered = rc == 0 || (r.status >= 400 && r.status <= 499 && r.status != 408 &&
                                r.status != 429);
    *on = rc == 0 && r.resp.data &&
          memmem(r.resp.data, r.resp.len, "<ObjectLockEnabled>Enabled<", 27) != NULL;
    vb_s3_req_free(&r);
    if (!answered)
        return vb_error_prefix(rc, "cannot tell whether the bucket has Object Lock");
    vb_error_clear();
    __atomic_store_n(&s->bucket_lock, *on ? 2 : 1, __ATOMIC_RELAXED);
    return 0;
}

static int s_found_version(s_s3_t *s, const s_hidden_t *h, void *arg)
{
    (void)s;
    char *vq = arg; /* 512 bytes */
    char vid[400];
    int rc = vb_s3_escape(h->version->version_id, vid, sizeof vid);
    if (rc)
        return rc;
    snprintf(vq, 512, "versionId=%s", vid);
    return 1;
}

/* On a bucket with Object Lock, a key that answered 404 may be hidden by a delete marker: 0
 * with *query "versionId=V" of its newest version. VB_ENOTFOUND, with the caller's error as it
 * was, when it is not hidden; another code when that could not be found out (the lock probe or
 * the version listing failed): a transient failure is reported, not taken for "missing". */
static int s_hidden_query(s_s3_t *s, const char *key, char *query, size_t qsz)
{
    if (qsz < 512)
        return VB_ENOTFOUND;
    char saved[1024];
    int code = vb_error_code();
    snprintf(saved, sizeof saved, "%s", vb_error_msg());
    query[0] = '\0';
    bool on = false;
    int rc = s_bucket_has_lock(s, &on);
    if (rc == 0 && on)
        rc = s_walk_hidden(s, key, key, s_found_version, query);
    if (rc)
        return rc;
    if (!query[0])
        return vb_error_set(code, "%s", saved);
    vb_error_clear();
    return 0;
}

typedef struct {
    vb_store_list_fn fn;
    void *arg;
} s_hidden_list_t;

/* list_hidden: the version's retention comes from a HEAD of it (a listing does not carry it). */
static int s_list_one_hidden(s_s3_t *s, const s_hidden_t *h, void *arg)
{
    s_hidden_list_t *l = arg;
    size_t plen = strlen(s->prefix);
    const char *name = h->key + plen;
    char vq[512];
    vb_store_stat_t st = {.size = h->version->size, .mtime = h->version->mtime};
    if (strncmp(h->key, s->prefix, plen) != 0 || vb_store_check_name(name) != 0) {
        vb_error_clear(); /* not an object of this store */
        return 0;
    }
    int rc = s_found_version(s, h, vq) < 0 ? vb_error_code() : 0;
    if (rc == 0) /* s_found_version answers 1: found */
        rc = s_head_version(s, h->key, vq, &st);
    if (rc == VB_ENOTFOUND) { /* the version went meanwhile */
        vb_error_clear();
        return 0;
    }
    return rc ? rc : l->fn(l->arg, name, &st);
}

static int s_list_hidden(void *state, const char *prefix, vb_store_list_fn fn, void *arg)
{
    s_s3_t *s = state;
    char full[S_KEY_MAX];
    s_hidden_list_t l = {fn, arg};
    s_key(s, prefix, full);
    return s_walk_hidden(s, full, NULL, s_list_one_hidden, &l);
}

static int s_remove_markers(s_s3_t *s, const s_hidden_t *h, void *arg)
{
    char query[512], vid[400];
    int rc = 0;
    *(bool *)arg = true;
    for (size_t i = 0; rc == 0 && i < h->nmarkers; i++) {
        if ((rc = vb_s3_escape(h->markers[i], vid, sizeof vid)) != 0)
            break;
        snprintf(query, sizeof query, "versionId=%s", vid);
        vb_s3_req_t r = {0};
        rc = s_simple(s, &r, "DELETE", h->key, query, NULL);
        vb_s3_req_free(&r);
    }
    return rc ? rc : 1;
}

static int s_unhide(void *state, const char *name)
{
    s_s3_t *s = state;
    char key[S_KEY_MAX];
    bool found = false;
    s_key(s, name, key);
    int rc = s_walk_hidden(s, key, key, s_remove_markers, &found);
    if (rc == 0 && !found)
        rc = vb_error_set(VB_ENOTFOUND, "%s key %s: not hidden by a delete marker",
                          vb_s3_conn_where(s->conn), key);
    /* A walk keeps at most S_VERSIONS_MAX markers of a key (the newest): walked again until
     * none is left above the version, however many plain DELETEs were sent. Each round removes
     * at least one, so this ends. */
    for (bool more = found; rc == 0 && more;) {
        more = false;
        rc = s_walk_hidden(s, key, key, s_remove_markers, &more);
    }
    return rc;
}

const vb_store_ops_t vb_store_s3_ops = {
    .scheme = "s3",
    .puts_in_flight = 4,
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
