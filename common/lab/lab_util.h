/* lab_util — helpers shared by the lab modules (not part of the public lab API).
 *
 * Deterministic randomness (splitmix64), path building, running a helper program, sparse file
 * copies and allocation maps. Functions returning int give 0 or a negative VB_E* code with a
 * message set. */
#ifndef VB_LAB_UTIL_H
#define VB_LAB_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "inventory/inventory.h"

/* splitmix64 step: advances *state and returns the next value. */
uint64_t vb_lab_rand_next(uint64_t *state);
/* Mixes a string into a hash (FNV-1a then splitmix finaliser). */
uint64_t vb_lab_hash_str(uint64_t h, const char *s);
uint64_t vb_lab_hash_u64(uint64_t h, uint64_t v);
/* Fills buf with len bytes from a stream seeded by `seed`. */
void vb_lab_fill(uint64_t seed, unsigned char *buf, size_t len);

/* asprintf that returns NULL on failure (message set). Caller frees. */
char *vb_lab_strf(const char *fmt, ...) VB_PRINTF(1, 2);

/* Runs argv[0] (searched in PATH) with stdin from /dev/null and stdout+stderr appended to
 * log_path (NULL: /dev/null). Returns 0 when it exits 0, else VB_EIO naming the program and the
 * last line of its log. */
int vb_lab_run(const char *const argv[], const char *log_path) VB_WUR;

/* The last non-empty line of a text file ("" when none) into buf. */
void vb_lab_last_line(const char *path, char *buf, size_t size);

/* Copies src to dst (created 0644, replaced if present) keeping holes as holes. The copy is
 * written as "dst.tmp.PID" and renamed to dst once complete and synced. */
int vb_lab_copy_sparse(const char *src, const char *dst) VB_WUR;

/* Allocated (data) extents of a file from `start`, via SEEK_DATA/SEEK_HOLE, clipped to `limit`.*/
int vb_lab_file_extents(const char *path, uint64_t start, uint64_t limit,
                        vb_extent_list_t *out) VB_WUR;

/* Writes `text` to path atomically with the given mode (temp, fsync, rename). */
int vb_lab_write_file(const char *path, const char *text, unsigned mode) VB_WUR;

/* mkdir that accepts an existing directory. */
int vb_lab_mkdir(const char *path, unsigned mode) VB_WUR;

#endif
