/* s3req — one signed S3 request with retries, for the S3 store (store_s3.c).
 *
 * A vb_s3_conn_t holds where requests go (endpoint, bucket, region, addressing style, CA file),
 * the access key, the retry policy and a pool of curl handles (each keeps its connections open,
 * so requests of one thread after another reuse them). Every request is signed by libcurl
 * (CURLOPT_AWS_SIGV4) with x-amz-content-sha256 set here (curl 7.88 does not add it), TLS is
 * always verified (system CAs or the CA file), and a request is retried with exponential backoff
 * and jitter after a transport failure (connect, reset, timeout), a 5xx, 429, SlowDown or
 * RequestTimeout — never after another 4xx, which cannot succeed by trying again. A request with
 * a body whose thread's writer gave it up (vb_store_abandon_when) is not sent or retried any
 * more, and one under way is aborted: VB_EBUSY, "abandoned".
 *
 * Errors are one line naming the endpoint, bucket, key, HTTP status and S3 error code, with a
 * hint for the codes users meet ("SignatureDoesNotMatch: wrong secret key or clock skew").
 * The secret key never appears in any message. Threads: a connection is used by any number of
 * threads at once. */
#ifndef VB_REPO_S3REQ_H
#define VB_REPO_S3REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "error.h"
#include "vsphere/xml.h"

typedef struct vb_s3_conn vb_s3_conn_t;

typedef struct {
    const char *endpoint; /* "https://host:port" (http:// only for a loopback host) */
    const char *bucket;
    const char *region;
    bool virtual_host;   /* BUCKET.host instead of host/BUCKET */
    const char *ca_file; /* NULL: the system's CAs */
    const char *access_key;
    const char *secret_key;
    int retries;          /* attempts after the first */
    long stall_timeout_s; /* a transfer that moves no byte for this long fails */
} vb_s3_conn_params_t;

/* Checks the parameters (endpoint scheme and host, bucket name). NULL with the message set. */
vb_s3_conn_t *vb_s3_conn_new(const vb_s3_conn_params_t *p);
void vb_s3_conn_destroy(vb_s3_conn_t **self_p);
/* "s3 ENDPOINT bucket BUCKET", for messages. Borrowed. */
const char *vb_s3_conn_where(const vb_s3_conn_t *self);
/* The bucket's name. Borrowed. */
const char *vb_s3_conn_bucket(const vb_s3_conn_t *self);

typedef struct {
    const char *method;         /* GET PUT HEAD DELETE POST */
    const char *key;            /* the whole object key; NULL: the bucket */
    const char *query;          /* sorted by name and percent-encoded (SigV4 signs it as written) */
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated; may be NULL */
    /* body (PUT/POST): bytes [body_off, body_off + body_len) of the iov concatenation */
    const struct iovec *iov;
    int iovcnt;
    uint64_t body_off, body_len;
    bool content_md5; /* send Content-MD5 (the server refuses a body that differs: BadDigest) */
    /* answer body: into dst (capacity cap) when dst != NULL and the status is 2xx, else into
     * resp (XML answers, error bodies; bounded) */
    void *dst;
    size_t cap;
    /* filled by vb_s3_request */
    long status;
    size_t got;           /* bytes written to dst */
    bool overflow;        /* the answer held more than cap bytes */
    bool retried_lost;    /* an earlier attempt may have reached the server (answer lost) */
    uint64_t length;      /* Content-Length of the answer */
    time_t mtime;         /* Last-Modified; 0 when absent */
    char etag[96];        /* ETag without quotes; "" when absent */
    char md5_hex[33];     /* the body's MD5 when content_md5 (what a single-part ETag is) */
    char version_id[128]; /* x-amz-version-id (versioned buckets); "" when absent */
    time_t retain_until;  /* x-amz-object-lock-retain-until-date; 0 when absent */
    vb_buf_t resp;
    char *s3_code; /* the S3 error code of a failed answer; NULL when none */
} vb_s3_req_t;

/* Performs r with the retry policy. 0 for a 2xx answer. Otherwise the message names the request
 * and the code is: 404 VB_ENOTFOUND, 401/403 VB_EAUTH, 412 VB_EEXISTS, 416 VB_EINVAL,
 * quota/too large VB_ENOSPC, TLS verification VB_EAUTH, anything else VB_EIO. r->status and
 * r->s3_code say more. Free r with vb_s3_req_free. */
int vb_s3_request(vb_s3_conn_t *self, vb_s3_req_t *r) VB_WUR;
void vb_s3_req_free(vb_s3_req_t *r);

/* Percent-encodes s (everything but RFC 3986 unreserved) into out; VB_ENOMEM past outsz. */
int vb_s3_escape(const char *s, char *out, size_t outsz) VB_WUR;

/* "2026-12-07T10:50:00[.000]Z" (S3's ISO 8601 UTC times) → seconds; 0 when malformed. */
time_t vb_s3_parse_time(const char *iso);

#endif
