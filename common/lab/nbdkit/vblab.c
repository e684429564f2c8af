/* vblab — the lab's nbdkit plugin: serves every disk image of a directory (one export per file,
 * as the file plugin's dir= mode) through its redirect-on-write chain (row_layers.h), so the live
 * disk of a VM with snapshots is its delta over the newest snapshot's frozen image, and a
 * snapshot export "EXPORT@SNAP" is the disk as it was at the snapshot.
 *
 *   nbdkit /path/to/nbdkit-vblab-plugin.so dir=DIR/disks
 *
 * Why a plugin of the project's own rather than qemu-nbd over qcow2 overlays: the images stay
 * raw files (the newest snapshot is the frozen base, read at full file speed by the lab's file
 * route, SAN and HotAdd), the servers keep nbdkit's TLS, TLS-PSK, dir-mode export listing and
 * filters (luks), and a snapshot is two renames and an empty sparse file.
 *
 * Writes go to the top file of the chain (the live delta); snapshot exports are read-only. A
 * chain is resolved when a client connects, under a shared lock on the site's lock file
 * (DIR/../site.lock), so a snapshot operation of the lab is never seen half done; a client
 * connected across a snapshot operation should reconnect. */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "lab/row_layers.h"

static char *s_dir;
static int s_dirfd = -1;
static pthread_mutex_t s_write_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
    vb_row_chain_t chain;
    bool readonly;
} s_handle_t;

static void s_unload(void)
{
    if (s_dirfd >= 0)
        close(s_dirfd);
    free(s_dir);
}

static int s_config(const char *key, const char *value)
{
    if (strcmp(key, "dir") != 0) {
        nbdkit_error("unknown parameter '%s'", key);
        return -1;
    }
    free(s_dir);
    s_dir = nbdkit_realpath(value);
    return s_dir ? 0 : -1;
}

static int s_config_complete(void)
{
    if (!s_dir) {
        nbdkit_error("the dir parameter is required");
        return -1;
    }
    s_dirfd = open(s_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s_dirfd < 0) {
        nbdkit_error("open %s: %m", s_dir);
        return -1;
    }
    return 0;
}

/* Files an operation of the lab writes beside the images: never an export. */
static bool s_exportable(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && name[0] != '.' && !strchr(name, '/') && !strstr(name, ".tmp.") &&
           !(n > 8 && strcmp(name + n - 8, ".decrypt") == 0);
}

static int s_list_exports(int readonly, int is_tls, struct nbdkit_exports *exports)
{
    (void)readonly;
    (void)is_tls;
    DIR *d = opendir(s_dir);
    if (!d) {
        nbdkit_error("opendir %s: %m", s_dir);
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d)) != NULL)
        if ((e->d_type == DT_REG || e->d_type == DT_UNKNOWN) && s_exportable(e->d_name))
            rc = nbdkit_add_export(exports, e->d_name, NULL);
    closedir(d);
    return rc;
}

static void *s_open(int readonly)
{
    const char *name = nbdkit_export_name();
    if (!name || !s_exportable(name)) {
        nbdkit_error("no such export: '%s'", name ? name : "");
        return NULL;
    }
    s_handle_t *h = calloc(1, sizeof *h);
    if (!h) {
        nbdkit_error("calloc: %m");
        return NULL;
    }
    h->readonly = readonly || strchr(name, '@') != NULL;
    int lock = openat(s_dirfd, "../site.lock", O_RDONLY | O_CLOEXEC);
    if (lock >= 0)
        while (flock(lock, LOCK_SH) < 0 && errno == EINTR)
            ;
    int r = vb_row_open(s_dirfd, name, !h->readonly, &h->chain);
    if (lock >= 0)
        close(lock);
    if (r < 0) {
        nbdkit_error("open %s/%s: %s", s_dir, name, strerror(-r));
        free(h);
        return NULL;
    }
    return h;
}

static void s_close(void *handle)
{
    s_handle_t *h = handle;
    vb_row_close(&h->chain);
    free(h);
}

static int64_t s_get_size(void *handle)
{
    return (int64_t)((s_handle_t *)handle)->chain.size;
}

static int s_can_write(void *handle)
{
    return !((s_handle_t *)handle)->readonly;
}

static int s_can_multi_conn(void *handle)
{
    (void)handle;
    return 1; /* one file per disk: a flush on any connection syncs every connection's writes */
}

static int s_fail(int r, const char *what)
{
    errno = -r;
    nbdkit_error("%s: %s", what, strerror(-r));
    return -1;
}

static int s_pread(void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    (void)flags;
    int r = vb_row_pread(&((s_handle_t *)handle)->chain, buf, count, offset);
    return r < 0 ? s_fail(r, "pread") : 0;
}

static int s_flush(void *handle, uint32_t flags)
{
    (void)flags;
    if (fdatasync(((s_handle_t *)handle)->chain.fd[0]) < 0) {
        nbdkit_error("fdatasync: %m");
        return -1;
    }
    return 0;
}

static int s_pwrite(void *handle, const void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    s_handle_t *h = handle;
    /* copy-up reads then writes a block: two writers of one block must not interleave */
    pthread_mutex_lock(&s_write_lock);
    int r = vb_row_pwrite(&h->chain, buf, count, offset);
    pthread_mutex_unlock(&s_write_lock);
    if (r < 0)
        return s_fail(r, "pwrite");
    return (flags & NBDKIT_FLAG_FUA) ? s_flush(handle, 0) : 0;
}

/* A raw image (no snapshot) punches a hole, as the file plugin does; a delta must hold the zeros
 * as data (a hole in it shows the base through), so it writes them. */
static int s_zero(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
    s_handle_t *h = handle;
    if (h->chain.n == 1) {
        if (fallocate(h->chain.fd[0], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                      (off_t)count) == 0)
            return (flags & NBDKIT_FLAG_FUA) ? s_flush(handle, 0) : 0;
        if (errno != EOPNOTSUPP) {
            nbdkit_error("fallocate: %m");
            return -1;
        }
    }
    static const unsigned char zeros[1 << 16];
    while (count > 0) {
        uint32_t n = count < sizeof zeros ? count : (uint32_t)sizeof zeros;
        if (s_pwrite(handle, zeros, n, offset, 0) < 0)
            return -1;
        offset += n;
        count -= n;
    }
    return (flags & NBDKIT_FLAG_FUA) ? s_flush(handle, 0) : 0;
}

static int s_extents(void *handle, uint32_t count, uint64_t offset, uint32_t flags,
                     struct nbdkit_extents *extents)
{
    (void)flags;
    s_handle_t *h = handle;
    uint64_t pos = offset, end = offset + count;
    while (pos < end) {
        uint64_t ds, de;
        int r = vb_row_next_data(&h->chain, h->chain.n, pos, end, &ds, &de);
        if (r < 0)
            return s_fail(r, "extents");
        if (r == 0)
            ds = de = end;
        if (ds > pos &&
            nbdkit_add_extent(extents, pos, ds - pos, NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO))
            return -1;
        if (de > ds && nbdkit_add_extent(extents, ds, de - ds, 0))
            return -1;
        pos = de;
    }
    return 0;
}

static int s_can_extents(void *handle)
{
    (void)handle;
    return 1;
}

static struct nbdkit_plugin s_plugin = {
    .name = "vblab",
    .longname = "vbak lab disks (redirect-on-write snapshots)",
    .version = "1",
    .unload = s_unload,
    .config = s_config,
    .config_complete = s_config_complete,
    .config_help = "dir=<DIRECTORY>  (required) the lab site's disks directory",
    .magic_config_key = "dir",
    .list_exports = s_list_exports,
    .open = s_open,
    .close = s_close,
    .get_size = s_get_size,
    .can_write = s_can_write,
    .can_multi_conn = s_can_multi_conn,
    .can_extents = s_can_extents,
    .pread = s_pread,
    .pwrite = s_pwrite,
    .zero = s_zero,
    .flush = s_flush,
    .extents = s_extents,
};

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
/* The entry point the registration macro defines, declared for -Wmissing-prototypes (clang). */
struct nbdkit_plugin *plugin_init(void);
NBDKIT_REGISTER_PLUGIN(s_plugin)
