/* disk_file — a local path (the lab's SAN LUN or HotAdded disk, a restore's image): pread/pwrite,
 * which are safe from many threads on one descriptor, and SEEK_DATA/SEEK_HOLE for allocated
 * blocks. Opened for writing, it also holds an O_DIRECT descriptor: aligned writes (a restore's
 * chunks) bypass the page cache, which costs a copy per byte and throttles on writeback; an
 * unaligned tail, or a file system that refuses O_DIRECT, goes through the page cache. The flush
 * (at close) fsyncs the file, so what was written either way is on disk. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/disk_backend.h"
#include "fileio.h"

typedef struct {
    int fd;
    int direct_fd;      /* O_DIRECT, for writes; -1 read-only or refused */
    atomic_bool direct; /* direct_fd still works (cleared on EINVAL) */
    char *path;
} file_disk_t;

static int s_open(vb_disk_conn_t *conn, const vb_disk_uri_t *uri, const char *mode,
                  const char *snapshot, bool read_only, void **impl_out, uint64_t *capacity_out)
{
    (void)conn;
    (void)mode;
    (void)snapshot;
    if (uri->path[0] != '/')
        return vb_error_set(VB_EINVAL, "disk path '%s' is not absolute", uri->path);
    int fd = open(uri->path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return vb_error_set(errno == ENOENT ? VB_ENOTFOUND : VB_EIO, "cannot open %s: %s",
                            uri->path, strerror(errno));
    struct stat st;
    off_t end = lseek(fd, 0, SEEK_END);
    if (fstat(fd, &st) != 0 || end < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
        close(fd);
        return vb_error_set(VB_EINVAL, "%s is not a regular file or a block device", uri->path);
    }
    file_disk_t *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(uri->path))) {
        free(f);
        close(fd);
        return vb_error_set(VB_ENOMEM, "out of memory opening %s", uri->path);
    }
    f->fd = fd;
    /* a file system that refuses O_DIRECT says EINVAL; then every write goes buffered */
    f->direct_fd = read_only ? -1 : open(uri->path, O_RDWR | O_DIRECT | O_CLOEXEC);
    atomic_store(&f->direct, f->direct_fd >= 0);
    *impl_out = f;
    *capacity_out = (uint64_t)end;
    return 0;
}

static int s_allocated(void *impl, uint64_t offset, uint64_t length, vb_extent_list_t *out)
{
    file_disk_t *f = impl;
    uint64_t end = offset + length, pos = offset;
    while (pos < end) {
        off_t data = lseek(f->fd, (off_t)pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) /* no data past pos */
                return 0;
            return vb_error_set(VB_EUNSUPPORTED, "SEEK_DATA on %s: %s", f->path, strerror(errno));
        }
        if ((uint64_t)data >= end)
            return 0;
        off_t hole = lseek(f->fd, data, SEEK_HOLE);
        if (hole < 0)
            return vb_error_set(VB_EUNSUPPORTED, "SEEK_HOLE on %s: %s", f->path, strerror(errno));
        uint64_t stop = (uint64_t)hole < end ? (uint64_t)hole : end;
        int rc = vb_extent_list_add(out, (uint64_t)data, stop - (uint64_t)data);
        if (rc)
            return rc;
        pos = stop;
    }
    return 0;
}

static int s_read(void *impl, void *buf, size_t len, uint64_t offset)
{
    file_disk_t *f = impl;
    if (vb_pread_full(f->fd, buf, len, offset) == 0)
        return 0;
    if (errno == ENODATA)
        return vb_error_set(VB_EIO, "%s ended before %zu bytes at %llu", f->path, len,
                            (unsigned long long)offset);
    return vb_error_set(VB_EIO, "read of %s at %llu: %s", f->path, (unsigned long long)offset,
                        strerror(errno));
}

static int s_write(void *impl, const void *buf, size_t len, uint64_t offset)
{
    file_disk_t *f = impl;
    ssize_t done = vb_pwrite_direct(f->direct_fd, &f->direct, buf, len, offset);
    if (done >= 0 && vb_pwrite_full(f->fd, (const uint8_t *)buf + done, len - (size_t)done,
                                    offset + (uint64_t)done) == 0)
        return 0;
    return vb_error_set(errno == ENOSPC ? VB_ENOSPC : VB_EIO, "write of %s at %llu: %s", f->path,
                        (unsigned long long)offset, strerror(errno));
}

static int s_flush(void *impl)
{
    file_disk_t *f = impl;
    if (fsync(f->fd) != 0 && errno != EINVAL)
        return vb_error_set(VB_EIO, "fsync of %s: %s", f->path, strerror(errno));
    return 0;
}

static void s_close(void *impl)
{
    file_disk_t *f = impl;
    if (f->direct_fd >= 0)
        close(f->direct_fd);
    close(f->fd);
    free(f->path);
    free(f);
}

const vb_disk_backend_t vb_disk_file_backend = {
    .name = "file",
    .open = s_open,
    .allocated = s_allocated,
    .read = s_read,
    .write = s_write,
    .flush = s_flush,
    .close = s_close,
};
