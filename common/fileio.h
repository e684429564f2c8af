/* fileio — whole positional reads and writes on a file descriptor (short transfers and EINTR
 * retried), for the places that read or write a file at an offset: disk images, chunk files;
 * and the check that a file holding a secret is private. */
#ifndef VB_FILEIO_H
#define VB_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Reads exactly len bytes at off. 0, or -1 with errno set: ENODATA when the file ends first. */
int vb_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* Writes exactly len bytes at off. 0, or -1 with errno set (EIO when nothing could be written). */
int vb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Checks that the file holding a secret (`what`: "token file", "password file") is private:
 * neither group nor others may read or write it. 0; VB_ENOTFOUND when it cannot be looked at;
 * VB_EAUTH "<what> <path> is readable by others (mode 644); chmod 600 it". Every file that holds a
 * secret is checked with this one function, in every program. */
int vb_secret_file_check(const char *path, const char *what) VB_WUR;

#endif
