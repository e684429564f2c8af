/* disk — the VixDiskLib-shaped front: mode walk, attempt reasons, the thread rule, bounds. The
 * backends (disk_file.c, disk_nbd.c, disk_vddk.c, disk_vsfile.c) only move bytes. */
#include "disk/disk.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk/disk_backend.h"
#include "log.h"

#define MODE_SAN 0x01u
#define MODE_HOTADD 0x02u
#define MODE_FILE 0x04u
#define MODE_NBDSSL 0x08u
#define MODE_NBD 0x10u
#define MODE_VSFILE 0x20u
#define MODE_VDDK_ALL (MODE_SAN | MODE_HOTADD | MODE_NBDSSL | MODE_NBD)
#define MAX_MODES 8
#define MAX_ATTEMPTS 32

static const struct {
    const char *name;
    unsigned bit;
} s_modes[] = {{"san", MODE_SAN},
               {"hotadd", MODE_HOTADD},
               {"file", MODE_FILE},
               {"nbdssl", MODE_NBDSSL},
               {"nbd", MODE_NBD},
               {"vsfile", MODE_VSFILE}};

struct vb_disk_conn {
    char *modes[MAX_MODES];
    size_t mode_count;
    char *vddk_libdir;
    char *vddk_config;
    bool read_only;
    void *vddk_state;
};

struct vb_disk {
    const vb_disk_backend_t *backend;
    void *impl;
    pthread_t opener;
    uint64_t capacity;
    bool read_only;
    char mode[16];
    char snapshot[128];
    char *attempts[MAX_ATTEMPTS];
    size_t attempt_count;
};

static unsigned s_mode_bit(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof s_modes / sizeof s_modes[0]; i++)
        if (strlen(s_modes[i].name) == n && strncmp(s_modes[i].name, name, n) == 0)
            return s_modes[i].bit;
    return 0;
}

/* Parses "a:b:c" into a bit set; VB_EINVAL naming the unknown mode. */
static int s_mode_set(const char *text, unsigned *out, const char *what)
{
    unsigned set = 0;
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, ":");
        unsigned bit = s_mode_bit(p, n);
        if (!bit)
            return vb_error_set(VB_EINVAL,
                                "unknown transport mode '%.*s' in %s (san, hotadd, file, "
                                "nbdssl, nbd, vsfile)",
                                (int)n, p, what);
        set |= bit;
        p += n + (p[n] == ':');
    }
    *out = set;
    return 0;
}

const char *vb_disk_conn_vddk_libdir(const vb_disk_conn_t *conn)
{
    return conn->vddk_libdir;
}

const char *vb_disk_conn_vddk_config(const vb_disk_conn_t *conn)
{
    return conn->vddk_config;
}

void **vb_disk_conn_vddk_state(vb_disk_conn_t *conn)
{
    return &conn->vddk_state;
}

int vb_disk_connect(const vb_disk_connect_params_t *params, vb_disk_conn_t **out)
{
    *out = NULL;
    const char *modes = params && params->modes ? params->modes : VB_DISK_DEFAULT_MODES;
    unsigned set = 0;
    int rc = s_mode_set(modes, &set, "the connection's modes");
    if (rc)
        return rc;
    if (!set)
        return vb_error_set(VB_EINVAL, "no transport mode given");
    vb_disk_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return vb_error_set(VB_ENOMEM, "out of memory for a disk connection");
    const char *p = modes;
    while (*p) {
        size_t n = strcspn(p, ":");
        if (n && c->mode_count < MAX_MODES) {
            c->modes[c->mode_count] = strndup(p, n);
            if (!c->modes[c->mode_count++])
                goto nomem;
        }
        p += n + (p[n] == ':');
    }
    if (params && params->vddk_libdir && !(c->vddk_libdir = strdup(params->vddk_libdir)))
        goto nomem;
    if (params && params->vddk_config && !(c->vddk_config = strdup(params->vddk_config)))
        goto nomem;
    c->read_only = params ? params->read_only : false;
    *out = c;
    return 0;
nomem:
    vb_disk_disconnect(&c);
    return vb_error_set(VB_ENOMEM, "out of memory for a disk connection");
}

void vb_disk_disconnect(vb_disk_conn_t **conn_p)
{
    if (!conn_p || !*conn_p)
        return;
    vb_disk_conn_t *c = *conn_p;
    if (c->vddk_state)
        vb_disk_vddk_state_free(c->vddk_state);
    for (size_t i = 0; i < c->mode_count; i++)
        free(c->modes[i]);
    free(c->vddk_libdir);
    free(c->vddk_config);
    free(c);
    *conn_p = NULL;
}

static const vb_disk_backend_t *s_backend(const char *scheme)
{
    if (strcmp(scheme, "file") == 0)
        return &vb_disk_file_backend;
    if (strcmp(scheme, "nbd") == 0 || strcmp(scheme, "nbds") == 0)
        return &vb_disk_nbd_backend;
    if (strcmp(scheme, "vsfile") == 0)
        return &vb_disk_vsfile_backend;
    return &vb_disk_vddk_backend;
}

/* Unknown URI parameters are errors (a typo must not silently drop TLS or a setting). */
static int s_check_params(const vb_disk_uri_t *u)
{
    static const char *const nbds_keys[] = {"tls-certificates", "tls-psk-file", "tls-username",
                                            NULL};
    static const char *const vddk_keys[] = {"file",   "vm",     "thumbprint",    "transport",
                                            "libdir", "config", "password-file", "snapshot",
                                            "esx",    "fcd",    "datastore",     NULL};
    static const char *const vsfile_keys[] = {"ds",      "path", "dc",           "thumbprint",
                                              "ca-file", "user", "password-file", NULL};
    static const char *const none[] = {NULL};
    const char *const *keys = strcmp(u->scheme, "nbds") == 0     ? nbds_keys
                              : strcmp(u->scheme, "vddk") == 0   ? vddk_keys
                              : strcmp(u->scheme, "vsfile") == 0 ? vsfile_keys
                                                                 : none;
    for (size_t i = 0; i < u->nparams; i++) {
        bool known = false;
        for (size_t k = 0; keys[k] && !known; k++)
            known = strcmp(keys[k], u->keys[i]) == 0;
        if (!known)
            return vb_error_set(VB_EINVAL, "unknown parameter '%s' in a %s:// URI%s", u->keys[i],
                                u->scheme,
                                strncmp(u->keys[i], "tls-", 4) == 0 && strcmp(u->scheme, "nbd") == 0
                                    ? " (TLS settings need nbds://)"
                                    : "");
    }
    return 0;
}

/* The modes a route offers, checked against its scheme. */
static int s_route_modes(const vb_disk_route_t *r, const vb_disk_uri_t *u, unsigned *out)
{
    unsigned allowed, dflt;
    if (strcmp(u->scheme, "file") == 0) {
        allowed = MODE_FILE | MODE_SAN | MODE_HOTADD;
        dflt = MODE_FILE;
    } else if (strcmp(u->scheme, "nbd") == 0) {
        allowed = dflt = MODE_NBD;
    } else if (strcmp(u->scheme, "nbds") == 0) {
        allowed = dflt = MODE_NBDSSL;
    } else if (strcmp(u->scheme, "vsfile") == 0) {
        allowed = dflt = MODE_VSFILE;
    } else if (strcmp(u->host, "local") == 0) {
        allowed = dflt = MODE_FILE; /* VixDiskLib local mode */
    } else {
        allowed = MODE_VDDK_ALL;
        dflt = MODE_VDDK_ALL;
        const char *t = vb_disk_uri_get(u, "transport");
        if (t) {
            int rc = s_mode_set(t, &dflt, "the vddk URI's transport=");
            if (rc)
                return rc;
        }
    }
    unsigned set = dflt;
    if (r->mode) {
        int rc = s_mode_set(r->mode, &set, "a route's mode");
        if (rc)
            return rc;
    }
    if (set & ~allowed)
        return vb_error_set(VB_EINVAL, "a %s:// URI cannot stand for mode '%s'", u->scheme,
                            r->mode ? r->mode : "?");
    *out = set & allowed;
    return 0;
}

static void s_disk_free(vb_disk_t *d)
{
    for (size_t i = 0; i < d->attempt_count; i++)
        free(d->attempts[i]);
    free(d);
}

static void s_add_attempt(vb_disk_t *d, const char *mode, const char *uri, const char *why)
{
    if (d->attempt_count == MAX_ATTEMPTS)
        return;
    char *s = NULL;
    if (asprintf(&s, "%s (%s): %s", mode, uri, why) >= 0)
        d->attempts[d->attempt_count++] = s;
}

/* Joins the attempts into the error message. */
static int s_fail_all(vb_disk_t *d, int code)
{
    char msg[1024];
    size_t n = 0;
    msg[0] = '\0';
    for (size_t i = 0; i < d->attempt_count && n < sizeof msg; i++) {
        int w = snprintf(msg + n, sizeof msg - n, "%s%s", i ? "; " : "", d->attempts[i]);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    return vb_error_set(code, "cannot open the disk: %s", msg);
}

int vb_disk_open(vb_disk_conn_t *conn, const vb_disk_route_t *routes, size_t route_count,
                 const char *snapshot, vb_disk_t **out)
{
    *out = NULL;
    if (!conn || !routes || route_count == 0)
        return vb_error_set(VB_EINVAL, "vb_disk_open needs a connection and at least one route");
    vb_disk_uri_t uris[8];
    unsigned offers[8];
    size_t nuris = 0;
    int rc = 0;
    vb_disk_t *d = calloc(1, sizeof *d);
    if (!d)
        return vb_error_set(VB_ENOMEM, "out of memory opening a disk");
    if (route_count > sizeof uris / sizeof uris[0]) {
        rc = vb_error_set(VB_EINVAL, "more than %zu routes to one disk",
                          sizeof uris / sizeof uris[0]);
        goto out;
    }
    for (; nuris < route_count; nuris++) {
        rc = vb_disk_uri_parse(routes[nuris].uri, &uris[nuris]);
        if (rc)
            goto out;
        rc = s_check_params(&uris[nuris]);
        if (rc == 0)
            rc = s_route_modes(&routes[nuris], &uris[nuris], &offers[nuris]);
        if (rc) {
            nuris++;
            goto out;
        }
    }
    int last = VB_ENOTFOUND; /* the code of the last failed attempt */
    for (size_t r = 0; r < nuris; r++) {
        const vb_disk_backend_t *be = s_backend(uris[r].scheme);
        vb_error_clear();
        int prc = be->prepare ? be->prepare(conn, &uris[r]) : 0;
        if (prc) {
            last = prc;
            VB_LOG_INFO("disk", "route-unusable uri=%s reason=\"%s\"", routes[r].uri,
                        vb_error_msg());
            s_add_attempt(d, be->name, routes[r].uri, vb_error_msg());
            offers[r] = 0;
        }
    }
    snprintf(d->snapshot, sizeof d->snapshot, "%s", snapshot ? snapshot : "");
    d->read_only = conn->read_only;
    for (size_t m = 0; m < conn->mode_count; m++) {
        unsigned bit = s_mode_bit(conn->modes[m], strlen(conn->modes[m]));
        for (size_t r = 0; r < nuris; r++) {
            if (!(offers[r] & bit))
                continue;
            const vb_disk_backend_t *be = s_backend(uris[r].scheme);
            vb_error_clear();
            rc = be->open(conn, &uris[r], conn->modes[m], snapshot, conn->read_only, &d->impl,
                          &d->capacity);
            if (rc == 0) {
                d->backend = be;
                d->opener = pthread_self();
                snprintf(d->mode, sizeof d->mode, "%s", conn->modes[m]);
                goto out;
            }
            last = rc;
            VB_LOG_INFO("disk", "open-failed mode=%s uri=%s reason=\"%s\"", conn->modes[m],
                        routes[r].uri, vb_error_msg());
            s_add_attempt(d, conn->modes[m], routes[r].uri, vb_error_msg());
        }
    }
    if (d->attempt_count == 0)
        rc = vb_error_set(VB_ENOTFOUND, "no route to the disk offers any of the modes allowed");
    else
        rc = s_fail_all(d, last ? last : VB_ENOTFOUND);
out:
    for (size_t i = 0; i < nuris; i++)
        vb_disk_uri_free(&uris[i]);
    if (rc)
        s_disk_free(d);
    else
        *out = d;
    return rc;
}

int vb_disk_open_uri(vb_disk_conn_t *conn, const char *uri, const char *snapshot, vb_disk_t **out)
{
    vb_disk_route_t r = {NULL, uri};
    return vb_disk_open(conn, &r, 1, snapshot, out);
}

int vb_disk_get_info(const vb_disk_t *disk, vb_disk_info_t *out)
{
    memset(out, 0, sizeof *out);
    out->capacity = disk->capacity;
    out->sector_size = 512;
    snprintf(out->mode, sizeof out->mode, "%s", disk->mode);
    snprintf(out->backend, sizeof out->backend, "%s", disk->backend->name);
    snprintf(out->snapshot, sizeof out->snapshot, "%s", disk->snapshot);
    return 0;
}

const char *vb_disk_mode(const vb_disk_t *disk)
{
    return disk->mode;
}

size_t vb_disk_attempt_count(const vb_disk_t *disk)
{
    return disk->attempt_count;
}

const char *vb_disk_attempt(const vb_disk_t *disk, size_t i)
{
    return i < disk->attempt_count ? disk->attempts[i] : NULL;
}

/* [offset, offset+length) clipped to the capacity, length 0 meaning to the end; false when
 * nothing of it is on the disk. */
static bool s_clip(const vb_disk_t *disk, uint64_t offset, uint64_t *length)
{
    if (offset >= disk->capacity)
        return false;
    if (*length == 0 || *length > disk->capacity - offset)
        *length = disk->capacity - offset;
    return true;
}

int vb_disk_try_allocated_blocks(vb_disk_t *disk, uint64_t offset, uint64_t length,
                                 vb_extent_list_t *out)
{
    /* The release notes' multithreading caveat: QueryAllocatedBlocks belongs to the thread that
     * opened (and will close) the disk, never to read/write workers. */
    if (!pthread_equal(pthread_self(), disk->opener))
        return vb_error_set(VB_EPOLICY,
                            "query_allocated_blocks called from a thread other than the one that "
                            "opened the disk (VDDK rule: only the opening thread may ask; read "
                            "workers never do)");
    if (!s_clip(disk, offset, &length))
        return 0;
    size_t before = out->count;
    int rc = disk->backend->allocated(disk->impl, offset, length, out);
    if (rc)
        out->count = before;
    return rc;
}

int vb_disk_query_allocated_blocks(vb_disk_t *disk, uint64_t offset, uint64_t length,
                                   vb_extent_list_t *out, bool *exact_out)
{
    if (exact_out)
        *exact_out = false;
    int rc = vb_disk_try_allocated_blocks(disk, offset, length, out);
    if (rc == 0) {
        if (exact_out)
            *exact_out = true;
        return 0;
    }
    if (rc == VB_ENOMEM || rc == VB_EPOLICY)
        return rc;
    /* Probe once, fall back to reading everything, say so. */
    VB_LOG_WARN("disk", "allocated-blocks-unavailable mode=%s reason=\"%s\" fallback=read-all",
                disk->mode, vb_error_msg());
    return s_clip(disk, offset, &length) ? vb_extent_list_add(out, offset, length) : 0;
}

static int s_check_range(const vb_disk_t *disk, size_t len, uint64_t offset, const char *op)
{
    if (len > VB_DISK_IO_MAX)
        return vb_error_set(VB_EINVAL, "%s of %zu bytes exceeds the %u byte limit", op, len,
                            VB_DISK_IO_MAX);
    if (offset > disk->capacity || len > disk->capacity - offset)
        return vb_error_set(VB_EINVAL,
                            "%s of %zu bytes at %llu is past the end of the disk (%llu bytes)", op,
                            len, (unsigned long long)offset, (unsigned long long)disk->capacity);
    return 0;
}

int vb_disk_read(vb_disk_t *disk, void *buf, size_t len, uint64_t offset)
{
    int rc = s_check_range(disk, len, offset, "read");
    if (rc || len == 0)
        return rc;
    return disk->backend->read(disk->impl, buf, len, offset);
}

int vb_disk_write(vb_disk_t *disk, const void *buf, size_t len, uint64_t offset)
{
    if (disk->read_only)
        return vb_error_set(VB_EPOLICY, "the disk was opened read-only");
    int rc = s_check_range(disk, len, offset, "write");
    if (rc || len == 0)
        return rc;
    return disk->backend->write(disk->impl, buf, len, offset);
}

int vb_disk_close(vb_disk_t **disk_p)
{
    if (!disk_p || !*disk_p)
        return 0;
    vb_disk_t *d = *disk_p;
    int rc = 0;
    if (!pthread_equal(pthread_self(), d->opener))
        VB_LOG_WARN("disk",
                    "close-from-other-thread mode=%s (VDDK wants open, "
                    "QueryAllocatedBlocks and close on one thread)",
                    d->mode);
    if (!d->read_only)
        rc = d->backend->flush(d->impl);
    d->backend->close(d->impl);
    s_disk_free(d);
    *disk_p = NULL;
    return rc;
}

int vb_disk_cleanup(vb_disk_conn_t *conn, const char *uri, unsigned *cleaned_out,
                    unsigned *remaining_out)
{
    unsigned cleaned = 0, remaining = 0;
    vb_disk_uri_t u;
    int rc = vb_disk_uri_parse(uri, &u);
    if (rc)
        return rc;
    if (strcmp(u.scheme, "vddk") == 0)
        rc = vb_disk_vddk_cleanup(conn, &u, &cleaned, &remaining);
    vb_disk_uri_free(&u);
    if (cleaned_out)
        *cleaned_out = cleaned;
    if (remaining_out)
        *remaining_out = remaining;
    return rc;
}

int vb_disk_uri_mode(const char *uri, char *mode, size_t cap)
{
    vb_disk_uri_t u;
    int rc = vb_disk_uri_parse(uri, &u);
    if (rc)
        return rc;
    const char *m = strcmp(u.scheme, "nbds") == 0 ? "nbdssl" : u.scheme;
    snprintf(mode, cap, "%s", m);
    vb_disk_uri_free(&u);
    return 0;
}
