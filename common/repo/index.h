/* index — a disk index: which chunk holds each chunk-sized piece of one disk in a restore point.
 *
 * In memory a plain struct the caller owns. In the repository's store (`indexes/NAME.idx`):
 *   magic "VBINDEX\0", u32 format version, u32 chunk size, u64 capacity, u64 chunk count,
 *   u16 disk key length + key, u16 parent name length + parent (0: none),
 *   count × 32-byte digests (all-zero digest: a hole / all-zero chunk),
 *   32-byte SHA-256 of everything before it.
 * All integers little-endian. Chunk i covers [i*chunk_size, min((i+1)*chunk_size, capacity)).
 *
 * Index names: 1..200 characters of [A-Za-z0-9._-], not starting with '.'. */
#ifndef VB_INDEX_H
#define VB_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "repo/repo.h"

#define VB_INDEX_FORMAT_VERSION 1
#define VB_INDEX_NAME_MAX 200

typedef struct {
    char *disk_key;      /* owned */
    char *parent;        /* owned; NULL when the index has no parent */
    uint64_t capacity;   /* disk size in bytes */
    uint32_t chunk_size;
    uint64_t count;      /* ceil(capacity / chunk_size) */
    vb_digest_t *digests;/* owned, count entries */
} vb_index_t;

/* A new index with every chunk a hole. NULL on failure (message set). `parent` may be NULL. */
vb_index_t *vb_index_new(const char *disk_key, uint64_t capacity, uint32_t chunk_size,
                         const char *parent);
void vb_index_destroy(vb_index_t **self_p);

/* Length of chunk i (the last one may be short). */
uint32_t vb_index_chunk_len(const vb_index_t *self, uint64_t i);

/* Builds the index of a backup from its chunk results (any order, offsets aligned to chunk_size
 * and below capacity). Chunks not in `results` inherit the digest of `parent` (same disk, same
 * chunk size; NULL for a full backup: they are holes); chunks past the parent's capacity are
 * holes. `parent_name` is recorded in the header (NULL: none). Caller owns *out. Errors:
 * VB_EINVAL (misaligned or out-of-range offset, parent with another chunk size), VB_ENOMEM. */
int vb_index_build(const vb_index_t *parent, const char *parent_name, const char *disk_key,
                   uint64_t capacity, uint32_t chunk_size, const vb_chunk_result_t *results,
                   size_t result_count, vb_index_t **out) VB_WUR;

/* VB_EINVAL unless `name` is a valid index name. */
int vb_index_check_name(const char *name) VB_WUR;

/* Writes the index as `name` after making the repository's chunks durable (vb_repo_sync), as a
 * durable store object (indexes/NAME.idx). Overwrites an index of the same name. The index's chunk
 * size must be the repository's. Errors: VB_EINVAL, VB_ENOSPC, VB_EIO; VB_EPOLICY when the
 * repository is not writable (vb_repo_writable). */
int vb_index_write(vb_repo_t *repo, const char *name, const vb_index_t *index) VB_WUR;

/* Reads index `name`. Caller owns *out. VB_ENOTFOUND, VB_ECORRUPT (bad magic, checksum,
 * truncated), VB_EUNSUPPORTED (newer format version), VB_EIO. */
int vb_index_read(vb_repo_t *repo, const char *name, vb_index_t **out) VB_WUR;

/* Size and mtime of index `name` in the store. VB_ENOTFOUND. */
int vb_index_stat(vb_repo_t *repo, const char *name, vb_store_stat_t *st) VB_WUR;

/* Removes index `name` (the chunks stay until garbage collection). VB_ENOTFOUND, VB_EIO;
 * VB_EPOLICY (nothing removed) while the chunk index is hidden by delete markers: run `vbak repo
 * undelete` first (vb_repo_writable). */
int vb_index_remove(vb_repo_t *repo, const char *name) VB_WUR;

/* Lists index names, sorted. Caller frees each name and the array (vb_index_list_free). */
int vb_index_list(vb_repo_t *repo, char ***names_out, size_t *count_out) VB_WUR;
void vb_index_list_free(char **names, size_t count);

#endif
