/* fileio — whole positional reads and writes on a file descriptor (short transfers and EINTR
 * retried), for the places that read or write a file at an offset: disk images, chunk files;
 * and the check that a file holding a secret is private. */
#ifndef VB_FILEIO_H
#define VB_FILEIO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* Reads exactly len bytes at off. 0, or -1 with errno set: ENODATA when the file ends first. */
int vb_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* Writes exactly len bytes at off. 0, or -1 with errno set (EIO when nothing could be written). */
int vb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* O_DIRECT transfers move whole blocks: buffer address, file offset and length multiples of
 * this (the logical block size of the disks vbak writes to is at most 4096). */
#define VB_DIRECT_ALIGN 4096u

/* The direct half of a write that bypasses the page cache (restored images, repository packs:
 * written once, rarely read back soon, and the page cache costs a copy and throttles on
 * writeback). direct_fd is the file opened with O_DIRECT (or -1); *direct says it still works.
 * When buf and off are aligned, writes the whole blocks at the start of [buf, len) through
 * direct_fd and returns how many bytes that was; the caller writes the rest (an unaligned tail,
 * or everything when 0 is returned) through a buffered descriptor. A file system or device that
 * refuses (EINVAL) clears *direct, so later calls go buffered at once. -1 with errno on other
 * failures (ENOSPC, EIO). Safe from many threads on one descriptor. */
ssize_t vb_pwrite_direct(int direct_fd, atomic_bool *direct, const void *buf, size_t len,
                         uint64_t off);

/* Checks that the file holding a secret (`what`: "token file", "password file") is private:
 * neither group nor others may read or write it. 0; VB_ENOTFOUND when it cannot be looked at;
 * VB_EAUTH "<what> <path> is readable by others (mode 644); chmod 600 it". Every file that holds a
 * secret is checked with this one function, in every program. */
int vb_secret_file_check(const char *path, const char *what) VB_WUR;

#endif
