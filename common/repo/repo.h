/* repo — the repository: a directory of content-addressed chunks plus disk indexes.
 *
 * A repository is a store (store.h: a POSIX directory today) opened from a location string; all
 * its I/O goes through the store. Its objects:
 *   config              versioned `key = "value"` object (format version, chunk size,
 *                       compression, encryption parameters, key check value)
 *   chunks/00 .. ff/    chunks named by the hex digest, sharded by its first byte
 *   indexes/NAME.idx    disk indexes (index.h)
 *   quarantine/DIGEST   chunks verify found bad, moved aside (vb_repo_chunk_quarantine);
 *                       format 2: quarantine/DIGEST-PACK records (packquar.h)
 *
 * Chunks are fixed-size pieces of a disk aligned to chunk_size (the last one of a disk may be
 * shorter). The digest is SHA-256 of the plaintext, or HMAC-SHA-256 under a key derived from the
 * key file when the repository is encrypted (equal plaintext does not show as equal names to
 * someone without the key). All-zero chunks are never stored: indexes hold the zero marker (an
 * all-zero digest) for them.
 *
 * A chunk file is a 64-byte header (magic "VBCHUNK\0", format version, flags compressed/encrypted,
 * raw size, stored size, GCM nonce and tag, header checksum) followed by the stored payload. The
 * payload is protected by the digest (re-hashed on every read) and, when encrypted, by the GCM tag
 * whose additional data is the header and the digest. Chunks are put-if-absent objects; writing a
 * chunk that exists is a no-op that freshens its mtime (so garbage collection, which sweeps only
 * chunks older than the oldest running job, never removes a chunk a running job has just
 * re-referenced).
 *
 * Durability: no sync per chunk. vb_repo_sync() (the store's barrier) makes everything written so
 * far stable; a task calls it before reporting success, and vb_index_write() calls it before it
 * writes an index.
 *
 * Threads: a vb_repo_t is shared read-only by any number of threads once opened. Chunk operations
 * go through a vb_repo_worker_t (its compression/cipher contexts and buffers), one per thread. */
#ifndef VB_REPO_H
#define VB_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"
#include "repo/store.h"

#define VB_REPO_FORMAT_VERSION 2 /* what vb_repo_init makes unless asked for another */
#define VB_REPO_FORMAT_PACKED 2  /* chunks in packs, found through index objects (packed.h) */
#define VB_REPO_CHUNK_MIN (64u * 1024u)
#define VB_REPO_CHUNK_MAX (4u * 1024u * 1024u)
#define VB_REPO_CHUNK_DEFAULT (1024u * 1024u)
#define VB_REPO_KEY_MIN 32 /* bytes a key file must hold at least */
/* Repository files and directories are private whatever the umask: a repository may hold the
 * plaintext of an encrypted disk. */
#define VB_REPO_FILE_MODE 0600
#define VB_REPO_DIR_MODE 0700
#define VB_REPO_QUARANTINE_DIR "quarantine"
#define VB_DIGEST_LEN 32
#define VB_DIGEST_HEX_LEN 64

typedef struct {
    uint8_t b[VB_DIGEST_LEN];
} vb_digest_t;

/* One chunk of a backup: its disk offset and its digest (zero marker for an all-zero chunk). */
typedef struct {
    uint64_t offset;
    vb_digest_t digest;
} vb_chunk_result_t;

typedef struct vb_repo vb_repo_t;
typedef struct vb_repo_worker vb_repo_worker_t;

typedef struct {
    uint32_t chunk_size;   /* 0: default 1 MiB; else a power of two in 64 KiB .. 4 MiB */
    int compression_level; /* 0: no compression; 1..19: zstd level */
    const char *key_file;  /* NULL: not encrypted; else AES-256-GCM + HMAC keyed from this file */
    int format;            /* 0: VB_REPO_FORMAT_VERSION; 1: a file per chunk; 2: packs */
    uint32_t pack_size;    /* format 2: 0 = 16 MiB; else 4 MiB .. 128 MiB */
    vb_store_opts_t store; /* S3: credentials file, create the bucket (store.h) */
} vb_repo_params_t;

/* Parses "zstd:N" (N 1..19), "zstd" (level 3) or "none" into a level (0 = none). */
int vb_repo_parse_compression(const char *text, int *level_out) VB_WUR;

/* Creates a repository at `path` (created if missing; must be empty if it exists). Returns 0,
 * VB_EEXISTS (not empty / already a repository), VB_EINVAL (bad parameter or key file; format 1
 * on S3, whose requests per chunk would cost too much), VB_EIO. An S3 location without a
 * format asked for is format 2. */
int vb_repo_init(const char *path, const vb_repo_params_t *params) VB_WUR;

/* Format 2: rebuilds the chunk index from the pack trailers alone (idxobj.h,
 * vb_idxobj_repair), without loading the old index (which may be damaged or gone). Works without
 * the key. VB_EINVAL for a format 1 repository (no chunk index); open errors as vb_repo_open. */
struct vb_idxobj_repair_s;
int vb_repo_repair_index(const char *path, struct vb_idxobj_repair_s *out) VB_WUR;
/* As vb_repo_repair_index, with what the location does not carry (S3 credentials; may be NULL). */
int vb_repo_repair_index_opts(const char *path, const vb_store_opts_t *store_opts,
                              struct vb_idxobj_repair_s *out) VB_WUR;

/* Format 2 on S3 with Object Lock: brings back the objects delete markers hide over a still
 * locked version, and rebuilds the chunk index when it then misses a pack (undelete.h). */
struct vb_undelete_stats_s;
int vb_repo_undelete_opts(const char *path, const vb_store_opts_t *store_opts, bool dry_run,
                          struct vb_undelete_stats_s *out) VB_WUR;

/* Format 2: checks every index object and every pack's trailer (packcheck.h), telling `bad`
 * about each damaged one; works without the key and without loading the index. VB_EINVAL for a
 * format 1 repository; open errors as vb_repo_open. */
struct vb_packcheck_stats_s;
int vb_repo_check_packs(const char *path, void (*bad)(void *, const char *, const char *),
                        void *arg, struct vb_packcheck_stats_s *out) VB_WUR;
/* As vb_repo_check_packs, with what the location does not carry (may be NULL). */
int vb_repo_check_packs_opts(const char *path, const vb_store_opts_t *store_opts,
                             void (*bad)(void *, const char *, const char *), void *arg,
                             struct vb_packcheck_stats_s *out) VB_WUR;

/* Opens a repository. `key_file` is required to read or write chunks of an encrypted repository;
 * without it only metadata operations (stats, index listing) work. Returns NULL with the message
 * set: no config (VB_ENOTFOUND), unknown format version (VB_EUNSUPPORTED), wrong key (VB_EAUTH),
 * malformed config (VB_ECORRUPT). */
vb_repo_t *vb_repo_open(const char *path, const char *key_file);
/* As vb_repo_open, with what the location does not carry (S3 credentials file; may be NULL). */
vb_repo_t *vb_repo_open_opts(const char *path, const char *key_file,
                             const vb_store_opts_t *store_opts);
void vb_repo_destroy(vb_repo_t **self_p);

const char *vb_repo_path(const vb_repo_t *self);      /* borrowed */
uint32_t vb_repo_chunk_size(const vb_repo_t *self);
int vb_repo_compression_level(const vb_repo_t *self); /* 0: none */
int vb_repo_format(const vb_repo_t *self);            /* 1 or 2 */
uint32_t vb_repo_pack_size(const vb_repo_t *self);    /* format 2; 0 for format 1 */
bool vb_repo_encrypted(const vb_repo_t *self);

/* 0 when a backup may write to the repository; VB_EPOLICY, saying to run `vbak repo undelete`,
 * when its chunk index could be read only through delete markers (packed.h). Reads go on. */
int vb_repo_writable(vb_repo_t *self) VB_WUR;

/* Makes everything written to the repository so far durable (the store's barrier); in format 2
 * then writes the index object of the packs sealed since (packs, then index). VB_EIO on
 * failure. */
int vb_repo_sync(vb_repo_t *self) VB_WUR;

/* The store the repository lives in (borrowed, valid until vb_repo_destroy). */
vb_store_t *vb_repo_store(vb_repo_t *self);

/* Worker context for one thread. NULL on failure (message set). */
vb_repo_worker_t *vb_repo_worker_new(vb_repo_t *repo);
/* Format 2: seals the worker's open pack (chunks put since the last flush are dropped when the
 * worker is destroyed without it). Format 1: nothing. Then vb_repo_sync() writes the index. */
int vb_repo_worker_flush(vb_repo_worker_t *w) VB_WUR;
void vb_repo_worker_destroy(vb_repo_worker_t **self_p);

/* True when all `len` bytes are zero. */
bool vb_buf_is_zero(const void *buf, size_t len);
/* True for the zero marker (all-zero digest). */
bool vb_digest_is_zero(const vb_digest_t *d);
/* Writes 64 lowercase hex characters and a NUL into out[65]. */
void vb_digest_hex(const vb_digest_t *d, char out[VB_DIGEST_HEX_LEN + 1]);
/* Parses 64 hex characters; VB_EINVAL otherwise. */
int vb_digest_parse(const char *hex, vb_digest_t *out) VB_WUR;

/* Computes the chunk name of `len` bytes (SHA-256, or HMAC-SHA-256 when encrypted). */
int vb_repo_digest(vb_repo_worker_t *w, const void *data, size_t len, vb_digest_t *out) VB_WUR;

/* Encoding, apart from where the bytes go. Encodes a chunk (compressed when worth it, encrypted
 * in an encrypted repository) into its stored image: a 64-byte header and the payload.
 * *img_out is borrowed from the worker until its next call. VB_EINVAL (empty, too large or all
 * zero), VB_EAUTH (no key). */
int vb_repo_chunk_encode(vb_repo_worker_t *w, const vb_digest_t *digest, const void *data,
                         size_t len, const uint8_t **img_out, size_t *img_len) VB_WUR;

/* Decodes a stored image (img_len bytes, decrypted in place) into out (capacity cap), checking
 * header, authentication and digest; *len_out is the raw length. VB_ECORRUPT, VB_EAUTH,
 * VB_EINVAL (does not fit). */
int vb_repo_chunk_decode(vb_repo_worker_t *w, const vb_digest_t *digest, uint8_t *img,
                         size_t img_len, void *out, size_t cap, size_t *len_out) VB_WUR;

/* Stores a chunk whose digest the caller computed with vb_repo_digest. `len` is at most the
 * chunk size; the caller does not store all-zero chunks (VB_EINVAL if it tries). If the chunk
 * exists with a sound header and its full size, only its mtime is refreshed and
 * *stored_bytes_out is 0 (a file a crash left incomplete is replaced). Otherwise it is compressed
 * (when sampling shows it compresses, and the result saves at least 1/16), encrypted, written to
 * a temp name (O_DIRECT where the file system allows it: chunk data bypasses the page cache)
 * and renamed, and *stored_bytes_out is the file size. Out params may be NULL. Errors: VB_ENOSPC (file system
 * full: the temp file is removed, the message names the repository), VB_EIO, VB_EAUTH (no key). */
int vb_repo_chunk_put(vb_repo_worker_t *w, const vb_digest_t *digest, const void *data, size_t len,
                      uint64_t *stored_bytes_out) VB_WUR;

/* Reads chunk `digest` into `out` (capacity `cap`), decrypts, decompresses and re-hashes it; the
 * bytes in `out` are valid only when 0 is returned. *len_out is the raw length. Errors:
 * VB_ENOTFOUND (missing), VB_ECORRUPT (bad header, truncated, authentication or digest mismatch),
 * VB_EAUTH (encrypted repository opened without key), VB_EIO. */
int vb_repo_chunk_get(vb_repo_worker_t *w, const vb_digest_t *digest, void *out, size_t cap,
                      size_t *len_out) VB_WUR;

/* Where a chunk is stored, for reading chunks in the order they lie in the repository. */
typedef struct {
    uint64_t pack;   /* equal for the chunks of one pack (a number, not an object name) */
    uint32_t offset; /* of the chunk's image in its pack */
    uint32_t length; /* of the image */
} vb_repo_place_t;

/* Format 2: where chunk `digest` is (the chunk index as loaded): true and *out filled. False in
 * a format 1 repository (a file per chunk: no order to follow) or when the index lacks it. */
bool vb_repo_chunk_place(vb_repo_t *self, const vb_digest_t *digest, vb_repo_place_t *out);

/* Format 2: reads the images of these chunks ahead with one ranged read per run of them that
 * lie back to back in a pack (readahead.h), so that the vb_repo_chunk_get calls for them that
 * follow, until the next prefetch, read from memory. Reports no error (a chunk it could not read
 * is read, and its problem named, by vb_repo_chunk_get). Format 1: nothing. */
void vb_repo_chunk_prefetch(vb_repo_worker_t *w, const vb_digest_t *digests, size_t n);

/* Reads from the store this worker made for chunk images (gets and prefetches). */
uint64_t vb_repo_worker_reads(const vb_repo_worker_t *w);

/* Moves a chunk found bad (by verify) out of chunks/ into quarantine/ (created 0700 when
 * missing), named by its digest, so that the next backup that produces its content stores it
 * again instead of trusting the bad file; a chunk quarantined twice keeps the newer file. The
 * file stays there for inspection until garbage collection removes it (gc.h). Format 2: the copy
 * the chunk index finds is set aside by a record quarantine/<digest>-<pack> holding its image
 * (packquar.h): the index of every process that loads it lacks that copy from then on, so the
 * next backup stores the chunk again in a new pack. VB_ENOTFOUND (no such chunk), VB_EIO. */
int vb_repo_chunk_quarantine(vb_repo_t *self, const vb_digest_t *digest) VB_WUR;

/* True when a chunk of this digest is in quarantine/ (format 2: some copy of it). */
bool vb_repo_chunk_quarantined(vb_repo_t *self, const vb_digest_t *digest);

/* True when the chunk file exists (no content check). */
bool vb_repo_chunk_exists(vb_repo_t *self, const vb_digest_t *digest);

/* The local file path of a chunk (for tests and tools): writes into out (size outsz).
 * VB_EUNSUPPORTED when the store has no local files. */
int vb_repo_chunk_path(const vb_repo_t *self, const vb_digest_t *digest, char *out,
                       size_t outsz) VB_WUR;

/* Called once per stored chunk by vb_repo_chunk_foreach with its digest, size and mtime; return
 * as for vb_store_list_fn. The callback may remove the chunk it is given. */
typedef int (*vb_repo_chunk_fn)(void *arg, const vb_digest_t *digest, const vb_store_stat_t *st);
int vb_repo_chunk_foreach(vb_repo_t *self, vb_repo_chunk_fn fn, void *arg) VB_WUR;

/* Removes a chunk unless it was written or freshened at or after unless_since (0: remove
 * anyway). VB_EBUSY (kept: in use meanwhile), VB_ENOTFOUND, VB_EIO. */
int vb_repo_chunk_remove(vb_repo_t *self, const vb_digest_t *digest,
                         time_t unless_since) VB_WUR;

/* Removes quarantined chunks moved there before `before` (format 2: records whose pack is gone
 * too); *removed counts them (or those that would be, with dry_run). */
int vb_repo_quarantine_expire(vb_repo_t *self, time_t before, bool dry_run,
                              uint64_t *removed) VB_WUR;

typedef struct {
    uint64_t chunks;         /* chunk files (format 2: chunks in the index) */
    uint64_t packs;          /* format 2: pack objects */
    uint64_t stored_bytes;   /* sum of chunk file sizes (headers included) */
    uint64_t raw_bytes;      /* sum of the chunks' raw (uncompressed) sizes */
    uint64_t indexes;        /* index files */
    uint64_t logical_bytes;  /* sum over indexes of the bytes their non-zero chunks hold */
    double dedup_ratio;      /* logical_bytes / raw_bytes (0 when empty) */
    double compression_ratio;/* raw_bytes / stored_bytes (0 when empty) */
    /* S3 Object Lock (lock.seconds 0: none; the rest then 0): objects whose lock has not ended */
    vb_store_lock_t lock;
    uint64_t locked_objects;
    uint64_t locked_bytes;
    time_t earliest_unlock; /* the first of their locks to end */
} vb_repo_stats_t;

/* Scans chunk headers and indexes (and, under Object Lock, asks each object's retention: one
 * request per object). Works without the key. */
int vb_repo_stats(vb_repo_t *self, vb_repo_stats_t *out) VB_WUR;

#endif
