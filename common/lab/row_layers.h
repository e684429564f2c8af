/* row_layers — reading and writing a lab disk stored as a redirect-on-write chain of files.
 *
 * A lab disk with snapshots is shaped like a VMware disk with snapshots: the newest snapshot's
 * image is a plain raw file (the base, frozen), the live disk is a sparse delta file over it
 * that holds only the blocks written since, and an older snapshot is a sparse delta over the
 * next newer one holding the blocks where the two differ. A delta names its parent, a file in
 * the same directory, in the extended attribute VB_ROW_PARENT_XATTR; a file without it is raw.
 * A block is in a delta when the delta's file has data there (SEEK_DATA), so a delta's
 * allocation is its block map: deltas are only ever written with whole file-system blocks of
 * real bytes (zeros included), never trimmed or hole-punched.
 *
 * This module needs only libc: the lab (libvbak_common) and the lab's nbdkit plugin both build
 * it. Functions return 0 or a negative errno; they set no vbak error message. */
#ifndef VB_ROW_LAYERS_H
#define VB_ROW_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VB_ROW_PARENT_XATTR "user.vbak.parent"
#define VB_ROW_MAX_DEPTH 32
#define VB_ROW_BLOCK 4096u /* the granularity of copy-up in a delta */

typedef struct {
    int fd[VB_ROW_MAX_DEPTH]; /* fd[0]: the file named at open; fd[n-1]: the raw base */
    int n;
    uint64_t size; /* the top file's size: the disk's capacity */
} vb_row_chain_t;

/* The parent file name of the delta open at `fd` into buf: 1 when it has one, 0 when the file is
 * raw, negative errno on failure. */
int vb_row_parent(int fd, char *buf, size_t size);

/* Marks the file open at `fd` as a delta over `parent` (a name in the same directory). */
int vb_row_set_parent(int fd, const char *parent);

/* Opens `name` in directory `dirfd` and its ancestors. The top file is opened read-write when
 * `write`, ancestors read-only. -ELOOP past VB_ROW_MAX_DEPTH. Close with vb_row_close. */
int vb_row_open(int dirfd, const char *name, bool write, vb_row_chain_t *c);
void vb_row_close(vb_row_chain_t *c);

/* Reads the disk's content: each byte from the first file of the chain that has data there. */
int vb_row_pread(const vb_row_chain_t *c, void *buf, size_t len, uint64_t off);

/* Writes into the top file. In a delta, a file-system block the write covers only partly and
 * the delta does not hold yet is first completed from the chain (copy-up), so that the delta
 * holds whole blocks. Callers serialise writes to one chain. */
int vb_row_pwrite(const vb_row_chain_t *c, const void *buf, size_t len, uint64_t off);

/* The first range [*start, *end) at or after `off` and before `limit` where some file of the
 * chain has data (the union of the layers' allocations): 1 when found, 0 when the rest is a hole
 * in every layer. With depth 1 it is the file's own allocation. */
int vb_row_next_data(const vb_row_chain_t *c, int depth, uint64_t off, uint64_t limit,
                     uint64_t *start, uint64_t *end);

#endif
