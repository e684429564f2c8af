/* pipeline — the agent's extent pipeline: disk ranges → chunks → repository, and back.
 *
 * Backup: the session thread (the one that opened the disk and, for a full backup, queried its
 * allocated blocks) passes the extents to read: the allocated extents for a full backup, the
 * changed areas for an incremental. The pipeline turns them into the set of chunk-aligned chunks
 * they touch, and N worker threads read each chunk through the caller's read_at, skip it when it
 * is all zeros, hash, compress, encrypt and store it. Workers never query allocation: they only
 * call read_at. Results come back in disk order, one per chunk read (digest, or the zero marker),
 * through the caller's emit callback; vb_index_build() turns them (plus the parent index of an
 * incremental) into the disk index. Before vb_pipeline_backup() returns 0, every chunk it wrote
 * is on stable storage (vb_repo_sync), so the caller may report success and write the index.
 *
 * Memory: each worker owns one chunk buffer and one compression buffer; results wait for their
 * turn in a reorder window of queue_depth entries (about 40 bytes each). Peak memory is
 * workers × ~2 × chunk_size + queue_depth × 40 bytes, whatever the disk size.
 *
 * Restore: index → chunks → read, decrypt, decompress, re-hash (a chunk whose digest does not
 * match is never written: the restore stops naming the disk and offset) → write_at. Holes (zero
 * markers) and all-zero 4 KiB blocks are skipped, so a destination pre-sized with ftruncate stays
 * sparse (see write_zeros for a destination that is not zero-filled).
 *
 * Verify: like restore without a destination; every corrupt or missing chunk is reported.
 *
 * Restore and verify read the index's chunks in the order they lie in the repository: in format
 * 2 a worker takes the chunks of one pack at a time (VB_PIPELINE_READ_UNIT bytes of it) and
 * reads their images with one ranged read per run of them (vb_repo_chunk_prefetch), then
 * decodes, checks and writes each at its disk offset(s); so each pack is read front to back,
 * once per disk index, however the disk's chunks are spread over it, and every bad chunk is
 * still named by its offset. Restore holds back each chunk that follows the previous one on the
 * disk and writes the run once it breaks or fills VB_PIPELINE_WRITE_RUN bytes. The plan costs
 * 24 bytes per non-hole chunk of the index, and each worker holds up to VB_PIPELINE_READ_UNIT
 * bytes of read-ahead images and (restore) a VB_PIPELINE_WRITE_RUN buffer.
 *
 * Callbacks: read_at/write_at are called from worker threads concurrently (pread/pwrite-like;
 * they must be thread-safe) and return 0 or a negative VB_E* code with a message set on the
 * calling thread. Their buffers are 4096-byte aligned, and so are offsets and lengths except at
 * the end of the disk, so a caller may use O_DIRECT. emit and report are called one at a time
 * (serialised), from worker threads. */
#ifndef VB_PIPELINE_H
#define VB_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "inventory/inventory.h"
#include "repo/index.h"
#include "repo/repo.h"

#define VB_PIPELINE_MAX_WORKERS 64
/* A full backup reads through a hole shorter than this between two allocated ranges rather than
 * split the read (the planner merges such ranges before they are sent). */
#define VB_PIPELINE_GAP_READ (64u * 1024u)
/* Runs of changed chunks closer than this share one allocation question (a block-status
 * request over NBD, two seeks in a file) */
#define VB_PIPELINE_GAP_ASK (4u * 1024u * 1024u)
/* Restore and verify read a pack's chunks in ranged reads of up to this many bytes. */
#define VB_PIPELINE_READ_UNIT (2u * 1024u * 1024u)
/* A restore worker writes chunks that follow each other on the disk as one write of up to this
 * many bytes (or one chunk, when chunks are larger): a direct write into a hole of a file holds
 * the file's lock until the device answers, so fewer, larger writes go faster. */
#define VB_PIPELINE_WRITE_RUN (4u * 1024u * 1024u)

typedef int (*vb_read_at_fn)(void *ctx, void *buf, size_t len, uint64_t offset);
/* Appends the allocated extents of [offset, offset+length) to *out (ascending). Non-zero when
 * the source cannot say: its chunks are then read whole. */
typedef int (*vb_allocated_fn)(void *ctx, uint64_t offset, uint64_t length,
                               vb_extent_list_t *out);
typedef int (*vb_write_at_fn)(void *ctx, const void *buf, size_t len, uint64_t offset);
/* Receives chunk results in ascending offset order. Non-zero return stops the backup with it. */
typedef int (*vb_chunk_emit_fn)(void *ctx, const vb_chunk_result_t *result);
/* Receives one bad chunk: its disk offset, digest, error code and message (borrowed; what is
 * wrong with the chunk, without the disk and offset, which the caller prints as it likes). */
typedef void (*vb_verify_report_fn)(void *ctx, uint64_t offset, const vb_digest_t *digest,
                                    int code, const char *message);

typedef struct {
    unsigned workers;     /* worker threads, 1..64 (0: 2) */
    unsigned queue_depth; /* results that may wait for an earlier chunk (0: 4 × workers) */
    /* Restore: false (default) for a destination that reads as zeros where nothing is written
     * (a new file pre-sized with ftruncate, a new disk): holes and all-zero 4 KiB blocks inside
     * chunks are skipped, so the output stays sparse. true for a destination with old contents:
     * every byte is written, zeros included. */
    bool write_zeros;
    /* Backup: the extents are the disk's allocated blocks (a full backup), so only they are read
     * and the rest of each chunk is zeros; false (default) when they are changed areas (an
     * incremental), whose chunks must be read whole. */
    bool extents_allocated;
    /* Backup of changed areas (extents_allocated false): asked on the calling thread, before
     * any read, for the allocated blocks of the chunks to read (one question per run of chunks
     * lying within VB_PIPELINE_GAP_ASK of each other), so that the holes inside those chunks
     * are zero-filled instead of read: a hole read costs a zeroed page per 4 KiB, or zeros
     * over the network. NULL, or a failure of it: the chunks are read whole. */
    vb_allocated_fn allocated;
    void *allocated_ctx;
    /* Restore: the disk offset of the index's first chunk, for an index that covers one window
     * of the disk (a restore task). write_at gets, and every error names, the disk offset:
     * base + the offset in the index. 0 (default): the index covers the disk from its start. */
    uint64_t base;
} vb_pipeline_opts_t;

typedef struct {
    uint64_t chunks;        /* chunks read (backup) / referenced non-zero chunks (restore, verify) */
    uint64_t chunks_zero;   /* backup: all-zero chunks (not stored); restore: holes skipped */
    uint64_t chunks_new;    /* backup: chunks written to the repository */
    uint64_t chunks_dedup;  /* backup: chunks the repository had already */
    uint64_t bytes_read;    /* backup: bytes read from the source */
    uint64_t bytes_written; /* restore: bytes written to the destination */
    uint64_t bytes_new;     /* backup: raw bytes of new chunks */
    uint64_t bytes_stored;  /* backup: bytes the new chunk files take */
    uint64_t chunks_bad;    /* verify: corrupt or missing chunks */
    uint64_t reads;         /* restore, verify: reads of chunk images from the repository (format
                               2: one per run of chunks lying together in a pack) */
} vb_pipeline_stats_t;

/* Backs up the chunks that `extents` (ascending, non-overlapping, within capacity) touch.
 * `disk` names the disk in messages. Returns 0 (everything written is durable), or the first
 * error: from read_at (prefixed with the disk and offset), the repository (VB_ENOSPC, VB_EIO,
 * ...), or emit. `stats` may be NULL. */
int vb_pipeline_backup(vb_repo_t *repo, const vb_pipeline_opts_t *opts, const char *disk,
                       uint64_t capacity, const vb_extent_t *extents, size_t extent_count,
                       vb_read_at_fn read_at, void *read_ctx, vb_chunk_emit_fn emit,
                       void *emit_ctx, vb_pipeline_stats_t *stats) VB_WUR;

/* The same, collecting the results into an array the caller frees with free(). */
int vb_pipeline_backup_collect(vb_repo_t *repo, const vb_pipeline_opts_t *opts, const char *disk,
                               uint64_t capacity, const vb_extent_t *extents,
                               size_t extent_count, vb_read_at_fn read_at, void *read_ctx,
                               vb_chunk_result_t **results_out, size_t *count_out,
                               vb_pipeline_stats_t *stats) VB_WUR;

/* Restores every non-hole chunk of `index` through write_at (at opts->base + the offset in the
 * index). Returns 0, or the first error:
 * VB_ECORRUPT / VB_ENOTFOUND naming the disk key and disk offset (those bytes are not written),
 * the error of write_at, VB_EINVAL (index chunk size is not the repository's). */
int vb_pipeline_restore(vb_repo_t *repo, const vb_pipeline_opts_t *opts, const vb_index_t *index,
                        vb_write_at_fn write_at, void *write_ctx,
                        vb_pipeline_stats_t *stats) VB_WUR;

/* Re-reads and re-hashes every non-hole chunk of `index`; calls `report` (may be NULL) for each
 * corrupt or missing one. Returns 0 when all are good, VB_ECORRUPT when some are not (message:
 * how many and the first offset), or another error that stopped the check. */
int vb_pipeline_verify(vb_repo_t *repo, const vb_pipeline_opts_t *opts, const vb_index_t *index,
                       vb_verify_report_fn report, void *report_ctx,
                       vb_pipeline_stats_t *stats) VB_WUR;

#endif
