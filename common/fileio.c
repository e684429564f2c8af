#include "fileio.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int vb_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = ENODATA;
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

int vb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

ssize_t vb_pwrite_direct(int direct_fd, atomic_bool *direct, const void *buf, size_t len,
                         uint64_t off)
{
    if (direct_fd < 0 || !atomic_load(direct) || ((uintptr_t)buf | off) % VB_DIRECT_ALIGN)
        return 0;
    size_t want = len & ~(size_t)(VB_DIRECT_ALIGN - 1), done = 0;
    while (done < want) {
        ssize_t n = pwrite(direct_fd, (const char *)buf + done, want - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EINVAL) {
            atomic_store(direct, false); /* e.g. a file system without O_DIRECT */
            break;
        }
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        done += (size_t)n;
        if (done % VB_DIRECT_ALIGN)
            break; /* a short write that left the blocks: the rest goes buffered */
    }
    return (ssize_t)done;
}

int vb_secret_file_check(const char *path, const char *what)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return vb_error_set(VB_ENOTFOUND, "%s %s: %s", what, path, strerror(errno));
    if (st.st_mode & 077)
        return vb_error_set(VB_EAUTH, "%s %s is readable by others (mode %o); chmod 600 it", what,
                            path, (unsigned)(st.st_mode & 0777));
    return 0;
}
