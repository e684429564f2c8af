/* row_layers — see row_layers.h. */
#include "lab/row_layers.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

int vb_row_parent(int fd, char *buf, size_t size)
{
    ssize_t n = fgetxattr(fd, VB_ROW_PARENT_XATTR, buf, size - 1);
    if (n < 0)
        return errno == ENODATA ? 0 : -errno;
    buf[n] = '\0';
    return n > 0;
}

int vb_row_set_parent(int fd, const char *parent)
{
    return fsetxattr(fd, VB_ROW_PARENT_XATTR, parent, strlen(parent), 0) < 0 ? -errno : 0;
}

void vb_row_close(vb_row_chain_t *c)
{
    for (int i = 0; i < c->n; i++)
        close(c->fd[i]);
    c->n = 0;
}

int vb_row_open(int dirfd, const char *name, bool write, vb_row_chain_t *c)
{
    char parent[256];
    struct stat st;
    c->n = 0;
    int fd = openat(dirfd, name, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    c->fd[c->n++] = fd;
    if (fstat(fd, &st) < 0)
        goto fail;
    c->size = (uint64_t)st.st_size;
    for (;;) {
        int r = vb_row_parent(c->fd[c->n - 1], parent, sizeof parent);
        if (r < 0) {
            errno = -r;
            goto fail;
        }
        if (r == 0)
            return 0;
        if (c->n == VB_ROW_MAX_DEPTH || strchr(parent, '/')) {
            errno = ELOOP;
            goto fail;
        }
        if ((fd = openat(dirfd, parent, O_RDONLY | O_CLOEXEC)) < 0)
            goto fail;
        c->fd[c->n++] = fd;
    }
fail:;
    int err = errno;
    vb_row_close(c);
    return -err;
}

/* pread that reads past the end of the file as zeros. */
static int s_pread_full(int fd, unsigned char *buf, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pread(fd, buf, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0) {
            memset(buf, 0, len);
            return 0;
        }
        buf += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int s_pwrite_full(int fd, const unsigned char *buf, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* Where the next data of `fd` at or after `off` starts, clipped to `limit`. */
static int s_seek(int fd, uint64_t off, uint64_t limit, int whence, uint64_t *out)
{
    off_t r = lseek(fd, (off_t)off, whence);
    *out = limit;
    if (r < 0 && errno != ENXIO)
        return -errno;
    *out = (r < 0 || (uint64_t)r > limit) ? limit : (uint64_t)r;
    return 0;
}

static int s_read_layer(const vb_row_chain_t *c, int i, unsigned char *buf, size_t len,
                        uint64_t off)
{
    if (i == c->n - 1)
        return s_pread_full(c->fd[i], buf, len, off);
    uint64_t pos = off, end = off + len;
    while (pos < end) {
        uint64_t ds, he;
        int rc = s_seek(c->fd[i], pos, end, SEEK_DATA, &ds);
        if (!rc && ds > pos)
            rc = s_read_layer(c, i + 1, buf + (pos - off), (size_t)(ds - pos), pos);
        if (rc || ds >= end)
            return rc;
        if ((rc = s_seek(c->fd[i], ds, end, SEEK_HOLE, &he)) ||
            (rc = s_pread_full(c->fd[i], buf + (ds - off), (size_t)(he - ds), ds)))
            return rc;
        pos = he;
    }
    return 0;
}

int vb_row_pread(const vb_row_chain_t *c, void *buf, size_t len, uint64_t off)
{
    return s_read_layer(c, 0, buf, len, off);
}

/* Writes the part [off, end) of the block at `b` into the delta, completing the block from the
 * chain first unless the delta holds it already. */
static int s_write_partial(const vb_row_chain_t *c, uint64_t b, const unsigned char *src,
                           uint64_t off, uint64_t end)
{
    uint64_t at;
    int rc = s_seek(c->fd[0], b, b + VB_ROW_BLOCK, SEEK_DATA, &at);
    if (rc)
        return rc;
    if (at == b) /* held already: a plain write keeps the block whole */
        return s_pwrite_full(c->fd[0], src, (size_t)(end - off), off);
    unsigned char block[VB_ROW_BLOCK];
    size_t blen = c->size - b < VB_ROW_BLOCK ? (size_t)(c->size - b) : VB_ROW_BLOCK;
    if (end - b > blen)
        blen = (size_t)(end - b);
    if ((rc = s_read_layer(c, 0, block, blen, b)))
        return rc;
    memcpy(block + (off - b), src, (size_t)(end - off));
    return s_pwrite_full(c->fd[0], block, blen, b);
}

int vb_row_pwrite(const vb_row_chain_t *c, const void *buf, size_t len, uint64_t off)
{
    const unsigned char *p = buf;
    if (c->n == 1)
        return s_pwrite_full(c->fd[0], p, len, off);
    uint64_t end = off + len;
    uint64_t head_b = off & ~(uint64_t)(VB_ROW_BLOCK - 1);
    uint64_t tail_b = end & ~(uint64_t)(VB_ROW_BLOCK - 1);
    int rc = 0;
    if (head_b == tail_b || (off != head_b && end - head_b <= VB_ROW_BLOCK))
        return off == head_b && end == head_b + VB_ROW_BLOCK
                   ? s_pwrite_full(c->fd[0], p, len, off)
                   : s_write_partial(c, head_b, p, off, end);
    uint64_t mid = off;
    if (off != head_b) {
        mid = head_b + VB_ROW_BLOCK;
        if ((rc = s_write_partial(c, head_b, p, off, mid)))
            return rc;
    }
    if (tail_b > mid &&
        (rc = s_pwrite_full(c->fd[0], p + (mid - off), (size_t)(tail_b - mid), mid)))
        return rc;
    if (end > tail_b && tail_b >= mid)
        rc = s_write_partial(c, tail_b, p + (tail_b - off), tail_b, end);
    return rc;
}

int vb_row_next_data(const vb_row_chain_t *c, int depth, uint64_t off, uint64_t limit,
                     uint64_t *start, uint64_t *end)
{
    uint64_t best = limit;
    if (depth > c->n)
        depth = c->n;
    for (int i = 0; i < depth; i++) {
        uint64_t d;
        int rc = s_seek(c->fd[i], off, limit, SEEK_DATA, &d);
        if (rc)
            return rc;
        if (d < best)
            best = d;
    }
    if (best >= limit)
        return 0;
    uint64_t e = best;
    for (bool grew = true; grew && e < limit;) {
        grew = false;
        for (int i = 0; i < depth && e < limit; i++) {
            uint64_t d, h;
            int rc = s_seek(c->fd[i], e, limit, SEEK_DATA, &d);
            if (!rc && d == e && d < limit)
                rc = s_seek(c->fd[i], e, limit, SEEK_HOLE, &h);
            else
                h = e;
            if (rc)
                return rc;
            if (h > e) {
                e = h;
                grew = true;
            }
        }
    }
    *start = best;
    *end = e;
    return 1;
}
