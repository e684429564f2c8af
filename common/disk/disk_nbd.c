/* disk_nbd — NBD and NBDSSL through libnbd.
 *
 * Which connect call each URI form uses, and why (DESIGN.md, pitfalls measured with libnbd 1.14):
 *   nbd://                      our own TCP socket + nbd_connect_socket (one place that names
 *                               host and port when the server cannot be reached);
 *   nbds:// + tls-psk-file      our own socket + nbd_connect_socket: libnbd sends no SNI name
 *                               then, so an IPv6 literal works; the key authenticates the server;
 *   nbds:// + X.509             nbd_connect_tcp with the host name, so libnbd checks the server
 *                               certificate against the CA dir AND the host; an IPv6 literal is
 *                               refused: it would be sent as SNI (the server rejects it), and the
 *                               socket route would skip the certificate check. */
#include <errno.h>
#include <libnbd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "disk/disk_backend.h"

#define NBD_DEFAULT_PORT 10809
#define NBD_IO_STEP (32u * 1024 * 1024)
#define NBD_STATUS_STEP (1ull << 30)

typedef struct {
    struct nbd_handle *h;
    char where[300]; /* "HOST port PORT" for messages */
    bool has_alloc;
    bool can_flush;
} nbd_disk_t;

/* Connects a TCP socket to host:port; -1 with a message naming both when it cannot. */
static int s_tcp_connect(const char *host, int port, const char *where)
{
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0) {
        vb_error_set(VB_ENOTFOUND, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        vb_error_set(VB_EIO, "cannot reach %s: %s", where, strerror(err));
    return fd;
}

static bool s_is_tls_failure(const char *msg)
{
    return strstr(msg, "gnutls") || strstr(msg, "TLS") || strstr(msg, "tls") ||
           strstr(msg, "certificate") || strstr(msg, "handshake");
}

/* Sets up TLS on h for an nbds URI; *own_socket says which connect call to use. */
static int s_setup_tls(struct nbd_handle *h, const vb_disk_uri_t *uri, const char *where,
                       bool *own_socket)
{
    const char *psk = vb_disk_uri_get(uri, "tls-psk-file");
    const char *certs = vb_disk_uri_get(uri, "tls-certificates");
    if (psk && certs)
        return vb_error_set(VB_EINVAL, "%s: give tls-psk-file or tls-certificates, not both",
                            where);
    if (nbd_set_tls(h, LIBNBD_TLS_REQUIRE) == -1)
        return vb_error_set(VB_EUNSUPPORTED, "libnbd without TLS support: %s", nbd_get_error());
    if (psk) {
        if (access(psk, R_OK) != 0)
            return vb_error_set(VB_ENOTFOUND, "TLS-PSK file %s: %s", psk, strerror(errno));
        const char *user = uri->user ? uri->user : vb_disk_uri_get(uri, "tls-username");
        if (nbd_set_tls_psk_file(h, psk) == -1 || (user && nbd_set_tls_username(h, user) == -1))
            return vb_error_set(VB_EINVAL, "TLS-PSK setup with %s: %s", psk, nbd_get_error());
        *own_socket = true;
        return 0;
    }
    if (uri->host_v6)
        return vb_error_set(VB_EPOLICY,
                            "refusing X.509 TLS to the IPv6 literal [%s]: libnbd 1.14 would send "
                            "it as the TLS SNI name (the server rejects that) and the only way "
                            "around it skips the certificate check; use tls-psk-file=, or a host "
                            "name that resolves to this address",
                            uri->host);
    if (certs) {
        if (access(certs, R_OK | X_OK) != 0)
            return vb_error_set(VB_ENOTFOUND, "TLS certificate dir %s: %s", certs, strerror(errno));
        if (nbd_set_tls_certificates(h, certs) == -1)
            return vb_error_set(VB_EINVAL, "TLS certificates %s: %s", certs, nbd_get_error());
    }
    if (nbd_set_tls_verify_peer(h, true) == -1)
        return vb_error_set(VB_EINVAL, "TLS verify setup: %s", nbd_get_error());
    *own_socket = false;
    return 0;
}

/* Turns a failed nbd_connect_* into a message a user can act on. */
static int s_connect_error(const vb_disk_uri_t *uri, const char *where, bool tls)
{
    const char *msg = nbd_get_error() ? nbd_get_error() : "unknown error";
    int e = nbd_get_errno();
    if (e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == ETIMEDOUT)
        return vb_error_set(VB_EIO, "cannot reach %s: %s", where, msg);
    if (tls && s_is_tls_failure(msg)) {
        const char *psk = vb_disk_uri_get(uri, "tls-psk-file");
        const char *certs = vb_disk_uri_get(uri, "tls-certificates");
        if (psk)
            return vb_error_set(
                VB_EAUTH, "TLS-PSK authentication with %s failed (PSK file %s, user %s): %s", where,
                psk,
                uri->user                              ? uri->user
                : vb_disk_uri_get(uri, "tls-username") ? vb_disk_uri_get(uri, "tls-username")
                                                       : "(login name)",
                msg);
        return vb_error_set(VB_EAUTH,
                            "TLS verification of %s failed (CA dir %s, expected host %s): %s",
                            where, certs ? certs : "(libnbd default)", uri->host, msg);
    }
    return vb_error_set(VB_EPROTO, "NBD handshake with %s failed: %s", where, msg);
}

static void s_close(void *impl)
{
    nbd_disk_t *n = impl;
    if (!n)
        return;
    if (n->h) {
        (void)nbd_shutdown(n->h, 0);
        nbd_close(n->h);
    }
    free(n);
}

static int s_open(vb_disk_conn_t *conn, const vb_disk_uri_t *uri, const char *mode,
                  const char *snapshot, bool read_only, void **impl_out, uint64_t *capacity_out)
{
    (void)conn;
    (void)mode;
    (void)snapshot;
    int rc = 0;
    bool tls = strcmp(uri->scheme, "nbds") == 0, own_socket = true;
    int port = uri->port ? uri->port : NBD_DEFAULT_PORT;
    nbd_disk_t *n = calloc(1, sizeof *n);
    if (!n)
        return vb_error_set(VB_ENOMEM, "out of memory opening an NBD disk");
    snprintf(n->where, sizeof n->where, "%s%s%s port %d", uri->host_v6 ? "[" : "", uri->host,
             uri->host_v6 ? "]" : "", port);
    n->h = nbd_create();
    if (!n->h) {
        rc = vb_error_set(VB_ENOMEM, "nbd_create: %s", nbd_get_error());
        goto out;
    }
    if (nbd_add_meta_context(n->h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
        nbd_set_export_name(n->h, uri->path) == -1) {
        rc = vb_error_set(VB_EINVAL, "NBD setup for %s: %s", n->where, nbd_get_error());
        goto out;
    }
    if (tls && (rc = s_setup_tls(n->h, uri, n->where, &own_socket)) != 0)
        goto out;
    if (own_socket) {
        int fd = s_tcp_connect(uri->host, port, n->where);
        if (fd < 0) {
            rc = vb_error_code();
            goto out;
        }
        if (nbd_connect_socket(n->h, fd) == -1) { /* libnbd owns fd from here */
            rc = s_connect_error(uri, n->where, tls);
            goto out;
        }
    } else {
        char service[8];
        snprintf(service, sizeof service, "%d", port);
        if (nbd_connect_tcp(n->h, uri->host, service) == -1) {
            rc = s_connect_error(uri, n->where, tls);
            goto out;
        }
    }
    int64_t size = nbd_get_size(n->h);
    if (size < 0) {
        rc = vb_error_set(VB_EPROTO, "export size from %s: %s", n->where, nbd_get_error());
        goto out;
    }
    if (!read_only && nbd_is_read_only(n->h) == 1) {
        rc = vb_error_set(VB_EPOLICY, "export '%s' on %s is read-only", uri->path, n->where);
        goto out;
    }
    n->has_alloc = nbd_can_meta_context(n->h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
    n->can_flush = nbd_can_flush(n->h) == 1;
    *capacity_out = (uint64_t)size;
out:
    if (rc) {
        s_close(n);
        return rc;
    }
    *impl_out = n;
    return 0;
}

typedef struct {
    vb_extent_list_t *out;
    uint64_t pos;
    uint64_t end;
    int rc;
} status_walk_t;

static int s_extent_cb(void *user, const char *context, uint64_t offset, uint32_t *entries,
                       size_t nr_entries, int *error)
{
    status_walk_t *w = user;
    (void)error;
    if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0 || w->rc)
        return 0;
    uint64_t at = offset;
    for (size_t i = 0; i + 1 < nr_entries && at < w->end; i += 2) {
        uint64_t len = entries[i];
        if (len > w->end - at)
            len = w->end - at;
        /* Only a run the server knows reads as zeros needs no reading: a hole without the zero
         * flag has contents the server does not know (the NBD protocol's base:allocation). */
        bool unallocated = (entries[i + 1] & LIBNBD_STATE_ZERO) != 0;
        if (!unallocated && (w->rc = vb_extent_list_add(w->out, at, len)) != 0)
            return 0;
        at += len;
    }
    if (at > w->pos)
        w->pos = at;
    return 0;
}

static int s_allocated(void *impl, uint64_t offset, uint64_t length, vb_extent_list_t *out)
{
    nbd_disk_t *n = impl;
    if (!n->has_alloc)
        return vb_error_set(VB_EUNSUPPORTED, "%s does not answer base:allocation", n->where);
    status_walk_t w = {.out = out, .pos = offset, .end = offset + length};
    while (w.pos < w.end) {
        uint64_t ask = w.end - w.pos < NBD_STATUS_STEP ? w.end - w.pos : NBD_STATUS_STEP;
        uint64_t before = w.pos;
        nbd_extent_callback cb = {.callback = s_extent_cb, .user_data = &w};
        if (nbd_block_status(n->h, ask, w.pos, cb, 0) == -1)
            return vb_error_set(VB_EUNSUPPORTED, "block status from %s: %s", n->where,
                                nbd_get_error());
        if (w.rc)
            return w.rc;
        if (w.pos == before)
            return vb_error_set(VB_EUNSUPPORTED, "block status from %s made no progress at %llu",
                                n->where, (unsigned long long)before);
    }
    return 0;
}

static int s_read(void *impl, void *buf, size_t len, uint64_t offset)
{
    nbd_disk_t *n = impl;
    char *p = buf;
    while (len > 0) {
        size_t step = len < NBD_IO_STEP ? len : NBD_IO_STEP;
        if (nbd_pread(n->h, p, step, offset, 0) == -1)
            return vb_error_set(VB_EIO, "NBD read of %zu bytes at %llu from %s: %s", step,
                                (unsigned long long)offset, n->where, nbd_get_error());
        p += step;
        len -= step;
        offset += step;
    }
    return 0;
}

static int s_write(void *impl, const void *buf, size_t len, uint64_t offset)
{
    nbd_disk_t *n = impl;
    const char *p = buf;
    while (len > 0) {
        size_t step = len < NBD_IO_STEP ? len : NBD_IO_STEP;
        if (nbd_pwrite(n->h, p, step, offset, 0) == -1)
            return vb_error_set(VB_EIO, "NBD write of %zu bytes at %llu to %s: %s", step,
                                (unsigned long long)offset, n->where, nbd_get_error());
        p += step;
        len -= step;
        offset += step;
    }
    return 0;
}

static int s_flush(void *impl)
{
    nbd_disk_t *n = impl;
    if (n->can_flush && nbd_flush(n->h, 0) == -1)
        return vb_error_set(VB_EIO, "NBD flush to %s: %s", n->where, nbd_get_error());
    return 0;
}

const vb_disk_backend_t vb_disk_nbd_backend = {
    .name = "nbd",
    .open = s_open,
    .allocated = s_allocated,
    .read = s_read,
    .write = s_write,
    .flush = s_flush,
    .close = s_close,
};
