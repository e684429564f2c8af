#include "repo/s3req.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "repo/s3xml.h"
#include "repo/store.h"

#define S_POOL_MAX 64            /* idle curl handles kept (each with its open connections) */
#define S_RESP_LIMIT (16u << 20) /* an XML answer larger than this is refused */
#define S_BACKOFF_FIRST_MS 200
#define S_BACKOFF_MAX_MS 5000
#define S_CONNECT_TIMEOUT_S 10L

struct vb_s3_conn {
    char *endpoint; /* without a trailing '/' */
    char *scheme;
    char *hostport; /* host[:port] as the endpoint spells it */
    char *bucket;
    char *sigv4; /* "aws:amz:REGION:s3" */
    char *ca_file;
    char *access_key;
    char *secret_key;
    bool virtual_host;
    int retries;
    long stall_timeout_s;
    char where[512];
    pthread_mutex_t mu;
    CURL *idle[S_POOL_MAX];
    size_t nidle;
};

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;
static void s_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Loopback by its name: localhost and *.localhost (RFC 6761; libcurl resolves them to
 * loopback itself), 127.0.0.0/8 and ::1. */
static bool s_loopback(const char *host)
{
    size_t n = strlen(host);
    return strcmp(host, "localhost") == 0 || (n > 10 && strcmp(host + n - 10, ".localhost") == 0) ||
           strncmp(host, "127.", 4) == 0 || strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

/* A bucket name as S3 allows it (DNS-compatible, so virtual-host addressing works too). */
static bool s_bucket_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63 || b[0] == '.' || b[0] == '-' || b[n - 1] == '.' || b[n - 1] == '-')
        return false;
    return strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789.-") == n;
}

/* Splits and checks the endpoint: scheme http(s), a host, no path, http only on loopback. */
static int s_endpoint(vb_s3_conn_t *c, const char *endpoint)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *path = NULL, *port = NULL;
    int rc = 0;
    if (!u || curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        rc = vb_error_set(VB_EINVAL, "S3 endpoint '%s' is not a URL (https://HOST[:PORT])",
                          endpoint);
        goto out;
    }
    (void)curl_url_get(u, CURLUPART_PATH, &path, 0);
    (void)curl_url_get(u, CURLUPART_PORT, &port, 0);
    if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)
        rc = vb_error_set(VB_EINVAL, "S3 endpoint '%s': the scheme must be https", endpoint);
    else if (strcmp(scheme, "http") == 0 && !s_loopback(host))
        rc = vb_error_set(VB_EPOLICY,
                          "S3 endpoint '%s': http:// only for a loopback host; use https://",
                          endpoint);
    else if (path && strcmp(path, "/") != 0)
        rc = vb_error_set(VB_EINVAL,
                          "S3 endpoint '%s': no path expected (the bucket is given "
                          "as s3://BUCKET/...)",
                          endpoint);
    if (rc)
        goto out;
    size_t hp_len = strlen(host) + (port ? strlen(port) + 1 : 0) + 1;
    c->hostport = malloc(hp_len);
    c->scheme = strdup(scheme);
    c->endpoint = malloc(strlen(scheme) + 3 + hp_len);
    if (!c->hostport || !c->scheme || !c->endpoint) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(c->hostport, hp_len, "%s%s%s", host, port ? ":" : "", port ? port : "");
    snprintf(c->endpoint, strlen(scheme) + 3 + hp_len, "%s://%s", scheme, c->hostport);
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(path);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

static char *s_dup(const char *s, int *rc)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d && *rc == 0)
        *rc = vb_error_set(VB_ENOMEM, "out of memory");
    return d;
}

vb_s3_conn_t *vb_s3_conn_new(const vb_s3_conn_params_t *p)
{
    pthread_once(&s_curl_once, s_curl_init);
    vb_s3_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    int rc = s_endpoint(c, p->endpoint);
    if (rc == 0 && !s_bucket_ok(p->bucket))
        rc = vb_error_set(VB_EINVAL,
                          "S3 bucket name '%s': 3 to 63 lowercase letters, digits, '.' and '-'",
                          p->bucket);
    if (rc == 0 && (!p->access_key || !*p->access_key || !p->secret_key || !*p->secret_key))
        rc = vb_error_set(VB_EAUTH, "S3 %s: no access key (repository_credentials_file)",
                          c->endpoint);
    char sig[160];
    snprintf(sig, sizeof sig, "aws:amz:%s:s3", p->region && *p->region ? p->region : "us-east-1");
    c->bucket = s_dup(p->bucket, &rc);
    c->sigv4 = s_dup(sig, &rc);
    c->ca_file = s_dup(p->ca_file, &rc);
    c->access_key = s_dup(p->access_key, &rc);
    c->secret_key = s_dup(p->secret_key, &rc);
    c->virtual_host = p->virtual_host;
    c->retries = p->retries;
    c->stall_timeout_s = p->stall_timeout_s > 0 ? p->stall_timeout_s : 60;
    if (rc == 0)
        snprintf(c->where, sizeof c->where, "s3 %s bucket %s", c->endpoint, c->bucket);
    if (rc)
        vb_s3_conn_destroy(&c);
    return c;
}

void vb_s3_conn_destroy(vb_s3_conn_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_s3_conn_t *c = *self_p;
    for (size_t i = 0; i < c->nidle; i++)
        curl_easy_cleanup(c->idle[i]);
    pthread_mutex_destroy(&c->mu);
    if (c->secret_key)
        OPENSSL_cleanse(c->secret_key, strlen(c->secret_key));
    free(c->endpoint);
    free(c->scheme);
    free(c->hostport);
    free(c->bucket);
    free(c->sigv4);
    free(c->ca_file);
    free(c->access_key);
    free(c->secret_key);
    free(c);
    *self_p = NULL;
}

const char *vb_s3_conn_where(const vb_s3_conn_t *self)
{
    return self->where;
}

const char *vb_s3_conn_bucket(const vb_s3_conn_t *self)
{
    return self->bucket;
}

int vb_s3_escape(const char *s, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        bool plain = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        if (o + (plain ? 1 : 3) >= outsz)
            return vb_error_set(VB_ENOMEM, "S3 request: a query value is too long");
        if (plain) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return 0;
}

/* ---------- the handle pool ---------- */

static CURL *s_handle_get(vb_s3_conn_t *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->nidle)
        h = c->idle[--c->nidle];
    pthread_mutex_unlock(&c->mu);
    if (h)
        curl_easy_reset(h); /* keeps the connection and TLS session caches */
    else
        h = curl_easy_init();
    return h;
}

static void s_handle_put(vb_s3_conn_t *c, CURL *h)
{
    pthread_mutex_lock(&c->mu);
    if (c->nidle < S_POOL_MAX) {
        c->idle[c->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (h)
        curl_easy_cleanup(h);
}

/* ---------- the body: a slice of an iovec ---------- */

typedef struct {
    const struct iovec *iov;
    int iovcnt;
    int idx;
    size_t off; /* within iov[idx] */
    uint64_t left;
} s_src_t;

static void s_src_init(s_src_t *s, const vb_s3_req_t *r)
{
    *s = (s_src_t){.iov = r->iov, .iovcnt = r->iovcnt, .left = r->body_len};
    uint64_t skip = r->body_off;
    while (s->idx < s->iovcnt && skip >= s->iov[s->idx].iov_len) {
        skip -= s->iov[s->idx].iov_len;
        s->idx++;
    }
    s->off = (size_t)skip;
}

/* Copies up to n bytes of the slice to dst (NULL: hands each piece to a digest). */
static size_t s_src_read_into(s_src_t *s, char *dst, size_t n, EVP_MD_CTX *const *mds, int nmd)
{
    size_t done = 0;
    while (done < n && s->left > 0 && s->idx < s->iovcnt) {
        const struct iovec *v = &s->iov[s->idx];
        size_t take = v->iov_len - s->off;
        if (take > n - done)
            take = n - done;
        if (take > s->left)
            take = (size_t)s->left;
        const char *from = (const char *)v->iov_base + s->off;
        if (dst)
            memcpy(dst + done, from, take);
        for (int i = 0; i < nmd; i++)
            EVP_DigestUpdate(mds[i], from, take);
        done += take;
        s->left -= take;
        s->off += take;
        if (s->off == v->iov_len) {
            s->idx++;
            s->off = 0;
        }
    }
    return done;
}

static size_t s_read_cb(char *buf, size_t size, size_t n, void *ud)
{
    return s_src_read_into(ud, buf, size * n, NULL, 0);
}

static void s_hex(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* SHA-256 (hex, for x-amz-content-sha256) and MD5 (base64 for Content-MD5, hex to compare with
 * an ETag) of the body, in one pass. */
static int s_digests(vb_s3_req_t *r, char sha_hex[65], char md5_b64[32])
{
    EVP_MD_CTX *md[2] = {EVP_MD_CTX_new(), EVP_MD_CTX_new()};
    unsigned char sha[32], md5[16];
    int rc = 0;
    if (!md[0] || !md[1] || !EVP_DigestInit_ex(md[0], EVP_sha256(), NULL) ||
        !EVP_DigestInit_ex(md[1], EVP_md5(), NULL)) {
        rc = vb_error_set(VB_ENOMEM, "cannot set up SHA-256/MD5 for an S3 request");
        goto out;
    }
    s_src_t s;
    s_src_init(&s, r);
    while (s_src_read_into(&s, NULL, SIZE_MAX, md, 2) > 0)
        ;
    EVP_DigestFinal_ex(md[0], sha, NULL);
    EVP_DigestFinal_ex(md[1], md5, NULL);
    s_hex(sha, 32, sha_hex);
    s_hex(md5, 16, r->md5_hex);
    EVP_EncodeBlock((unsigned char *)md5_b64, md5, 16);
out:
    EVP_MD_CTX_free(md[0]);
    EVP_MD_CTX_free(md[1]);
    return rc;
}

/* ---------- one attempt ---------- */

typedef struct {
    vb_s3_req_t *r;
    CURL *h;
    s_src_t src;
} s_attempt_t;

static size_t s_write_cb(char *data, size_t size, size_t n, void *ud)
{
    s_attempt_t *a = ud;
    vb_s3_req_t *r = a->r;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &status);
    if (r->dst && status >= 200 && status < 300) {
        size_t room = r->cap - r->got, take = len < room ? len : room;
        memcpy((char *)r->dst + r->got, data, take);
        r->got += take;
        if (take < len) {
            r->overflow = true;
            return 0; /* stops the transfer: the caller's buffer is full */
        }
        return len;
    }
    if (r->resp.len + len > S_RESP_LIMIT)
        return 0;
    r->resp.limit = S_RESP_LIMIT + 1;
    return vb_buf_append(&r->resp, data, len) == 0 ? len : 0;
}

time_t vb_s3_parse_time(const char *iso)
{
    struct tm tm = {0};
    const char *end = iso ? strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!end)
        return 0;
    time_t t = timegm(&tm);
    return t > 0 ? t : 0;
}

static bool s_header_is(const char *line, size_t len, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (len <= n + 1 || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    *value = line + n + 1;
    while (**value == ' ')
        (*value)++;
    return true;
}

static size_t s_header_cb(char *line, size_t size, size_t n, void *ud)
{
    vb_s3_req_t *r = ((s_attempt_t *)ud)->r;
    size_t len = size * n;
    char text[256];
    const char *v = NULL;
    if (len >= sizeof text)
        return len;
    memcpy(text, line, len);
    text[len] = '\0';
    text[strcspn(text, "\r\n")] = '\0';
    if (s_header_is(text, len, "content-length", &v)) {
        r->length = strtoull(v, NULL, 10);
    } else if (s_header_is(text, len, "last-modified", &v)) {
        time_t t = curl_getdate(v, NULL);
        r->mtime = t > 0 ? t : 0;
    } else if (s_header_is(text, len, "etag", &v)) {
        size_t l = strlen(v);
        if (l >= 2 && v[0] == '"' && v[l - 1] == '"')
            v++, l -= 2;
        snprintf(r->etag, sizeof r->etag, "%.*s", (int)l, v);
    } else if (s_header_is(text, len, "x-amz-version-id", &v)) {
        snprintf(r->version_id, sizeof r->version_id, "%s", v);
    } else if (s_header_is(text, len, "x-amz-object-lock-retain-until-date", &v)) {
        r->retain_until = vb_s3_parse_time(v);
    }
    return len;
}

static int s_url(const vb_s3_conn_t *c, const vb_s3_req_t *r, vb_buf_t *url)
{
    int rc;
    if (c->virtual_host)
        rc = vb_buf_printf(url, "%s://%s.%s/%s", c->scheme, c->bucket, c->hostport,
                           r->key ? r->key : "");
    else
        rc = vb_buf_printf(url, "%s/%s%s%s", c->endpoint, c->bucket, r->key ? "/" : "",
                           r->key ? r->key : "");
    if (rc == 0 && r->query && *r->query)
        rc = vb_buf_printf(url, "?%s", r->query);
    return rc;
}

/* An upload whose writer gave it up (vb_store_abandon_when) stops mid-transfer. */
static int s_progress_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const vb_s3_req_t *r = ud;
    return vb_store_abandoned(r->key) ? 1 : 0;
}

static CURLcode s_setopt(vb_s3_conn_t *c, s_attempt_t *a, const char *url, struct curl_slist *hdrs,
                         char *errbuf)
{
    CURL *h = a->h;
    vb_s3_req_t *r = a->r;
    CURLcode e = curl_easy_setopt(h, CURLOPT_URL, url);
    e |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    e |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    e |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, S_CONNECT_TIMEOUT_S);
    e |= curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    e |= curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->stall_timeout_s);
    e |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    e |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file)
        e |= curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    e |= curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
    e |= curl_easy_setopt(h, CURLOPT_USERNAME, c->access_key);
    e |= curl_easy_setopt(h, CURLOPT_PASSWORD, c->secret_key);
    e |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    e |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    e |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_write_cb);
    e |= curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    e |= curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s_header_cb);
    e |= curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    if (strcmp(r->method, "HEAD") == 0) {
        e |= curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0) {
        e |= curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        e |= curl_easy_setopt(h, CURLOPT_READFUNCTION, s_read_cb);
        e |= curl_easy_setopt(h, CURLOPT_READDATA, &a->src);
        e |= curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        e |= curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, s_progress_cb);
        e |= curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)r);
        e |= curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        if (strcmp(r->method, "POST") == 0)
            e |= curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
    } else if (strcmp(r->method, "GET") != 0) {
        e |= curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
    return e;
}

/* ---------- outcome ---------- */

static const struct {
    const char *code;
    int vb;
    const char *hint;
} s_codes[] = {
    {"SignatureDoesNotMatch", VB_EAUTH, "wrong secret key or clock skew"},
    {"InvalidAccessKeyId", VB_EAUTH, "the server does not know this access key id"},
    {"AccessDenied", VB_EAUTH, "the access key may not do this"},
    {"RequestTimeTooSkewed", VB_EAUTH, "this machine's clock is too far from the server's"},
    {"NoSuchBucket", VB_ENOTFOUND, "the bucket does not exist"},
    {"NoSuchKey", VB_ENOTFOUND, NULL},
    {"NoSuchUpload", VB_ENOTFOUND, NULL},
    {"PreconditionFailed", VB_EEXISTS, NULL},
    {"QuotaExceeded", VB_ENOSPC, "the account's quota is used up"},
    {"EntityTooLarge", VB_ENOSPC, "the object is larger than the server takes"},
    {"BadDigest", VB_EIO, "the body was damaged on the way"},
};

static bool s_retryable(CURLcode cc, long status, const char *s3_code)
{
    switch (cc) {
    case CURLE_OK:
        return status >= 500 || status == 429 ||
               (s3_code &&
                (strcmp(s3_code, "SlowDown") == 0 || strcmp(s3_code, "RequestTimeout") == 0));
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_LOGIN_DENIED:
        return false;
    case CURLE_WRITE_ERROR:
        return false; /* the caller's buffer was full, or an answer was too large */
    default:
        return true; /* connect, reset, timeout, DNS */
    }
}

static int s_vb_code(long status, const char *s3_code, const char **hint)
{
    *hint = NULL;
    for (size_t i = 0; s3_code && i < sizeof s_codes / sizeof s_codes[0]; i++)
        if (strcmp(s3_code, s_codes[i].code) == 0) {
            *hint = s_codes[i].hint;
            return s_codes[i].vb;
        }
    switch (status) {
    case 404:
        return VB_ENOTFOUND;
    case 401:
    case 403:
        return VB_EAUTH;
    case 412:
        return VB_EEXISTS;
    case 416:
        return VB_EINVAL;
    case 507:
        return VB_ENOSPC;
    default:
        return VB_EIO;
    }
}

static int s_fail(const vb_s3_conn_t *c, vb_s3_req_t *r, CURLcode cc, const char *errbuf)
{
    const char *key = r->key ? r->key : "(bucket)";
    if (cc != CURLE_OK) {
        bool tls = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
                   cc == CURLE_SSL_ISSUER_ERROR || cc == CURLE_SSL_CERTPROBLEM;
        return vb_error_set(tls ? VB_EAUTH : VB_EIO, "%s key %s: %s %s: %s%s", c->where, key,
                            r->method, tls ? "TLS certificate not trusted" : "no answer",
                            *errbuf ? errbuf : curl_easy_strerror(cc),
                            tls && !c->ca_file ? " (give the server's CA with ca=FILE)" : "");
    }
    const char *hint = NULL;
    int code = s_vb_code(r->status, r->s3_code, &hint);
    return vb_error_set(code, "%s key %s: %s: HTTP %ld%s%s%s%s", c->where, key, r->method,
                        r->status, r->s3_code ? " " : "", r->s3_code ? r->s3_code : "",
                        hint ? ": " : "", hint ? hint : "");
}

static void s_backoff(int attempt)
{
    long ms = S_BACKOFF_FIRST_MS;
    for (int i = 0; i < attempt && ms < S_BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > S_BACKOFF_MAX_MS)
        ms = S_BACKOFF_MAX_MS;
    ms = ms / 2 + (long)arc4random_uniform((uint32_t)(ms / 2 + 1)); /* jitter: [ms/2, ms] */
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct curl_slist *s_headers(const vb_s3_req_t *r, const char *sha_hex, const char *md5_b64)
{
    char line[160];
    struct curl_slist *l = NULL, *t;
    snprintf(line, sizeof line, "x-amz-content-sha256: %s", sha_hex);
    /* no "Expect:" line to turn 100-continue off: curl 7.88 signs it, then drops it, and the
     * server finds a signature that does not match */
    if (!(l = curl_slist_append(l, line)))
        goto fail;
    if (r->content_md5) {
        snprintf(line, sizeof line, "Content-MD5: %s", md5_b64);
        if (!(t = curl_slist_append(l, line)))
            goto fail;
    }
    for (size_t i = 0; r->headers && r->headers[i]; i++)
        if (!(t = curl_slist_append(l, r->headers[i])))
            goto fail;
    return l;
fail:
    curl_slist_free_all(l);
    return NULL;
}

/* One attempt: *cc the transfer's outcome, r->status and r->s3_code the answer's. */
static int s_attempt(vb_s3_conn_t *c, vb_s3_req_t *r, const char *url, struct curl_slist *hdrs,
                     CURLcode *cc, char *errbuf)
{
    s_attempt_t a = {.r = r, .h = s_handle_get(c)};
    if (!a.h)
        return vb_error_set(VB_ENOMEM, "cannot make a curl handle");
    s_src_init(&a.src, r);
    r->got = 0;
    r->overflow = false;
    r->resp.len = 0;
    r->status = 0;
    r->length = 0;
    r->mtime = 0;
    r->etag[0] = '\0';
    free(r->s3_code);
    r->s3_code = NULL;
    errbuf[0] = '\0';
    if (s_setopt(c, &a, url, hdrs, errbuf) != CURLE_OK) {
        s_handle_put(c, a.h);
        return vb_error_set(VB_EIO, "libcurl refused an option (SigV4 needs libcurl 7.75)");
    }
    *cc = curl_easy_perform(a.h);
    curl_easy_getinfo(a.h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_setopt(a.h, CURLOPT_ERRORBUFFER, NULL);
    s_handle_put(c, a.h);
    if (*cc == CURLE_OK && (r->status < 200 || r->status > 299)) {
        vb_s3_error_t e;
        if (vb_s3_error_parse(r->resp.data, r->resp.len, &e) == 0) {
            r->s3_code = e.code;
            e.code = NULL;
            vb_s3_error_free(&e);
        }
    }
    return 0;
}

int vb_s3_request(vb_s3_conn_t *c, vb_s3_req_t *r)
{
    char sha_hex[65], md5_b64[32], errbuf[CURL_ERROR_SIZE];
    vb_buf_t url = {0};
    struct curl_slist *hdrs = NULL;
    int rc = s_digests(r, sha_hex, md5_b64);
    if (rc == 0 && (rc = s_url(c, r, &url)) == 0 && !(hdrs = s_headers(r, sha_hex, md5_b64)))
        rc = vb_error_set(VB_ENOMEM, "out of memory");
    r->retried_lost = false;
    for (int attempt = 0; rc == 0; attempt++) {
        CURLcode cc = CURLE_OK;
        if (r->iov && vb_store_abandoned(r->key)) { /* given up: neither sent nor retried */
            rc = VB_EBUSY;
            break;
        }
        if ((rc = s_attempt(c, r, url.data, hdrs, &cc, errbuf)) != 0)
            break;
        if (cc == CURLE_ABORTED_BY_CALLBACK && vb_store_abandoned(r->key)) {
            rc = VB_EBUSY;
            break;
        }
        if (cc == CURLE_WRITE_ERROR && r->overflow)
            break; /* the caller sees r->overflow */
        if (cc == CURLE_OK && r->status >= 200 && r->status <= 299)
            break;
        if (attempt >= c->retries || !s_retryable(cc, r->status, r->s3_code)) {
            rc = s_fail(c, r, cc, errbuf);
            break;
        }
        VB_LOG_WARN("store_s3",
                    "event=retry endpoint=%s bucket=%s key=%s method=%s status=%ld "
                    "code=%s error=\"%s\" attempt=%d",
                    c->endpoint, c->bucket, r->key ? r->key : "", r->method, r->status,
                    r->s3_code ? r->s3_code : "-", cc ? curl_easy_strerror(cc) : "", attempt + 1);
        r->retried_lost |= cc != CURLE_OK || r->status >= 500;
        s_backoff(attempt);
    }
    curl_slist_free_all(hdrs);
    vb_buf_free(&url);
    return rc;
}

void vb_s3_req_free(vb_s3_req_t *r)
{
    vb_buf_free(&r->resp);
    free(r->s3_code);
    r->s3_code = NULL;
}
