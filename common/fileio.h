/* fileio — whole positional reads and writes on a file descriptor (short transfers and EINTR
 * retried), for the places that read or write a file at an offset: disk images, chunk files. */
#ifndef VB_FILEIO_H
#define VB_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Reads exactly len bytes at off. 0, or -1 with errno set: ENODATA when the file ends first. */
int vb_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* Writes exactly len bytes at off. 0, or -1 with errno set (EIO when nothing could be written). */
int vb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

#endif
