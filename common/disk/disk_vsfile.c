/* disk_vsfile — a vSphere datastore file (the flat extent of a disk) read over the datastore HTTP
 * file service with Range GETs (vsphere.h's vb_vsphere_file_get).
 *
 * A vb_vsphere_t session serves one thread at a time, and vb_disk_read comes from several
 * pipeline workers at once: the disk keeps a small pool of logged-in sessions. A reader borrows
 * an idle one, or logs in another while fewer than POOL_MAX exist, or waits for one to come
 * back. The session made at open proves the password and the TLS trust before any task runs. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk/disk_backend.h"
#include "log.h"
#include "vsphere/vsphere.h"

#define POOL_MAX 8
#define GET_MAX (8u * 1024u * 1024u) /* bytes asked for in one GET */

typedef struct {
    char *url;
    char *user;
    char *password_file;
    char *ca_file;
    char *thumbprint;
    char *dc;
    char *ds_file; /* "[datastore] dir/x-flat.vmdk" */
    pthread_mutex_t lock;
    pthread_cond_t freed;
    vb_vsphere_t *idle[POOL_MAX];
    size_t nidle;
    size_t nsessions; /* idle + lent out + being made */
} vsfile_disk_t;

static void s_free(vsfile_disk_t *v)
{
    for (size_t i = 0; i < v->nidle; i++)
        vb_vsphere_destroy(&v->idle[i]);
    free(v->url);
    free(v->user);
    free(v->password_file);
    free(v->ca_file);
    free(v->thumbprint);
    free(v->dc);
    free(v->ds_file);
    pthread_mutex_destroy(&v->lock);
    pthread_cond_destroy(&v->freed);
    free(v);
}

static int s_dup_param(const vb_disk_uri_t *uri, const char *key, bool required, char **out)
{
    const char *v = vb_disk_uri_get(uri, key);
    *out = NULL;
    if (!v || !*v)
        return required ? vb_error_set(VB_EINVAL, "a vsfile:// URI needs %s=", key) : 0;
    if (!(*out = strdup(v)))
        return vb_error_set(VB_ENOMEM, "out of memory opening a vsfile:// disk");
    return 0;
}

static vb_vsphere_t *s_login(const vsfile_disk_t *v)
{
    vb_vsphere_options_t o = {0};
    o.url = v->url;
    o.user = v->user;
    o.password_file = v->password_file;
    o.ca_file = v->ca_file;
    o.thumbprint = v->thumbprint;
    o.datacenter = v->dc;
    return vb_vsphere_new(&o);
}

/* Fills v from the URI; the URL is https://HOST[:PORT]. */
static int s_settings(vsfile_disk_t *v, const vb_disk_uri_t *uri)
{
    char *ds = NULL, *path = NULL;
    int rc = s_dup_param(uri, "ds", true, &ds);
    if (!rc)
        rc = s_dup_param(uri, "path", true, &path);
    if (!rc)
        rc = s_dup_param(uri, "user", true, &v->user);
    if (!rc)
        rc = s_dup_param(uri, "password-file", true, &v->password_file);
    if (!rc)
        rc = s_dup_param(uri, "ca-file", false, &v->ca_file);
    if (!rc)
        rc = s_dup_param(uri, "thumbprint", false, &v->thumbprint);
    if (!rc)
        rc = s_dup_param(uri, "dc", false, &v->dc);
    if (!rc && v->ca_file && v->thumbprint)
        rc = vb_error_set(VB_EINVAL, "a vsfile:// URI takes ca-file= or thumbprint=, not both");
    if (!rc) {
        const char *l = uri->host_v6 ? "[" : "", *r = uri->host_v6 ? "]" : "";
        int w = uri->port ? asprintf(&v->url, "https://%s%s%s:%d", l, uri->host, r, uri->port)
                          : asprintf(&v->url, "https://%s%s%s", l, uri->host, r);
        int w2 = asprintf(&v->ds_file, "[%s] %s", ds, path);
        if (w < 0 || w2 < 0) {
            v->url = w < 0 ? NULL : v->url;
            v->ds_file = w2 < 0 ? NULL : v->ds_file;
            rc = vb_error_set(VB_ENOMEM, "out of memory opening a vsfile:// disk");
        }
    }
    free(ds);
    free(path);
    return rc;
}

static int s_open(vb_disk_conn_t *conn, const vb_disk_uri_t *uri, const char *mode,
                  const char *snapshot, bool read_only, void **impl_out, uint64_t *capacity_out)
{
    (void)conn;
    (void)mode;
    (void)snapshot; /* the route already names the file frozen by the snapshot (disk.h) */
    if (!read_only)
        return vb_error_set(VB_EPOLICY,
                            "the datastore file service route is read-only: writing to a vSphere "
                            "disk this way is not supported (restore to a file instead)");
    vsfile_disk_t *v = calloc(1, sizeof *v);
    if (!v)
        return vb_error_set(VB_ENOMEM, "out of memory opening a vsfile:// disk");
    pthread_mutex_init(&v->lock, NULL);
    pthread_cond_init(&v->freed, NULL);
    int rc = s_settings(v, uri);
    vb_vsphere_t *vs = rc ? NULL : s_login(v);
    if (!rc && !vs)
        rc = vb_error_code() ? vb_error_code() : VB_EIO;
    uint64_t size = 0;
    if (!rc)
        rc = vb_vsphere_file_size(vs, v->ds_file, &size);
    if (rc) {
        vb_vsphere_destroy(&vs);
        s_free(v);
        return rc;
    }
    v->idle[v->nidle++] = vs;
    v->nsessions = 1;
    VB_LOG_INFO("disk", "vsfile-open file=\"%s\" server=%s bytes=%llu", v->ds_file, v->url,
                (unsigned long long)size);
    *impl_out = v;
    *capacity_out = size;
    return 0;
}

static int s_allocated(void *impl, uint64_t offset, uint64_t length, vb_extent_list_t *out)
{
    (void)offset;
    (void)length;
    (void)out;
    const vsfile_disk_t *v = impl;
    /* disk.c logs this and reports the whole range allocated: every byte is read. */
    return vb_error_set(VB_EUNSUPPORTED,
                        "the datastore file service has no allocation map for %s: the whole disk "
                        "counts as allocated",
                        v->ds_file);
}

/* Borrows an idle session, logs in a new one while the pool has room, or waits. */
static vb_vsphere_t *s_borrow(vsfile_disk_t *v)
{
    pthread_mutex_lock(&v->lock);
    while (v->nidle == 0 && v->nsessions >= POOL_MAX)
        pthread_cond_wait(&v->freed, &v->lock);
    if (v->nidle > 0) {
        vb_vsphere_t *vs = v->idle[--v->nidle];
        pthread_mutex_unlock(&v->lock);
        return vs;
    }
    v->nsessions++;
    pthread_mutex_unlock(&v->lock);
    vb_vsphere_t *vs = s_login(v);
    if (!vs) {
        pthread_mutex_lock(&v->lock);
        v->nsessions--;
        pthread_cond_signal(&v->freed);
        pthread_mutex_unlock(&v->lock);
    }
    return vs;
}

static void s_give_back(vsfile_disk_t *v, vb_vsphere_t *vs)
{
    pthread_mutex_lock(&v->lock);
    v->idle[v->nidle++] = vs;
    pthread_cond_signal(&v->freed);
    pthread_mutex_unlock(&v->lock);
}

static int s_read(void *impl, void *buf, size_t len, uint64_t offset)
{
    vsfile_disk_t *v = impl;
    vb_vsphere_t *vs = s_borrow(v);
    if (!vs)
        return vb_error_code() ? vb_error_code() : VB_EIO;
    char *p = buf;
    int rc = 0;
    while (len > 0 && rc == 0) {
        size_t want = len < GET_MAX ? len : GET_MAX, got = 0;
        rc = vb_vsphere_file_get(vs, v->ds_file, offset, want, p, &got);
        if (rc == 0 && got != want)
            rc = vb_error_set(VB_EIO, "%s ended at %llu while reading (%zu of %zu bytes)",
                              v->ds_file, (unsigned long long)(offset + got), got, want);
        p += want;
        len -= want;
        offset += want;
    }
    s_give_back(v, vs);
    return rc;
}

static int s_write(void *impl, const void *buf, size_t len, uint64_t offset)
{
    (void)buf;
    (void)len;
    (void)offset;
    const vsfile_disk_t *v = impl;
    return vb_error_set(VB_EPOLICY, "%s: the datastore file service route is read-only",
                        v->ds_file);
}

static int s_flush(void *impl)
{
    (void)impl;
    return 0;
}

static void s_close(void *impl)
{
    s_free(impl);
}

const vb_disk_backend_t vb_disk_vsfile_backend = {
    .name = "vsfile",
    .open = s_open,
    .allocated = s_allocated,
    .read = s_read,
    .write = s_write,
    .flush = s_flush,
    .close = s_close,
};
