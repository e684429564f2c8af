/* packed — where a format 2 repository keeps its chunks: packs (pack.h) found through the chunk
 * index (chunkidx.h, idxobj.h). repo.c encodes chunks and hands the images here; this module
 * only decides where they go and where to find them.
 *
 * Writes: the repository workers (vb_packed_writer_t, one per thread) fill one open pack
 * together, of up to the repository's pack size in memory, so that a task leaves one partly
 * filled pack, not one per worker. A sealed pack is added to the shared in-memory index and to
 * the index object pending for this process, and handed to the uploads (packup.h): up to
 * vb_store_puts_in_flight() of them run in the background while the workers fill the next pack
 * (S3: 4 by default; a directory: 1). vb_packed_commit() seals the open pack, waits for the
 * uploads of the packs sealed so far and only then writes the index object listing exactly
 * them (packs, then index; the restore point comes after, from the coordinator), without
 * stopping the writers meanwhile; commits at about the same time share one index object; a
 * failed upload fails that commit and every later one. A chunk
 * already in the index, or in the open pack, is not stored again; two agents storing the same
 * chunk at once may both keep a copy.
 *
 * Memory: (uploads in flight + 1) × the pack size, whatever the number of workers.
 *
 * Reads: the index is loaded from the store's index objects when opened, and loaded again once
 * when a chunk is not found (another agent may have stored it since) or its pack is gone (a
 * garbage collection repacked it). A chunk is read with one ranged read of its pack.
 *
 * Threads: a vb_packed_t is shared by the workers (mutexes guard the index and the open pack); a
 * writer belongs to one thread. */
#ifndef VB_PACKED_H
#define VB_PACKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo/repo.h"
#include "repo/store.h"

typedef struct vb_packed vb_packed_t;
typedef struct vb_packed_writer vb_packed_writer_t;

/* Opens the packed chunks of `store` (borrowed) and loads its index objects. NULL with the
 * message set (a damaged index object: VB_ECORRUPT naming it). */
vb_packed_t *vb_packed_open(vb_store_t *store, uint32_t pack_size);
/* Packs sealed since the last commit are abandoned: those not uploaded yet are not written
 * (packup.h), as no index object will list them. */
void vb_packed_destroy(vb_packed_t **self_p);

vb_packed_writer_t *vb_packed_writer_new(vb_packed_t *packed);
/* Chunks added since the last flush are dropped (flush first). */
void vb_packed_writer_destroy(vb_packed_writer_t **self_p);

/* 0 when backups may write: VB_EPOLICY, saying to run `vbak repo undelete`, when the chunk
 * index was read from index objects hidden by delete markers (reads go on through them, but a
 * backup would lean on hidden packs whose locks nothing renews). */
int vb_packed_writable(vb_packed_t *self) VB_WUR;

/* Stores one encoded chunk image unless the repository has the chunk: *stored true when it was
 * added to the open pack. Sealing a full pack may fail: VB_ENOSPC, VB_EIO, or the error of an
 * earlier upload (packup.h); VB_EPOLICY when not writable (above). */
int vb_packed_put(vb_packed_writer_t *w, const vb_digest_t *digest, const uint8_t *img,
                  size_t img_len, uint32_t raw_len, bool *stored) VB_WUR;

/* Seals the open pack (which all writers share) and hands it to the uploads. */
int vb_packed_flush(vb_packed_writer_t *w) VB_WUR;

/* Seals the open pack, waits for the uploads of every pack sealed so far (later seals go on
 * meanwhile), makes them durable, then writes the index object that lists them; a commit
 * already under way is waited for, and one index object may cover several commits. A failed
 * upload or index write: its error, now and at every later commit. */
int vb_packed_commit(vb_packed_t *self) VB_WUR;

/* Reads the image of chunk `digest` into buf (capacity cap); *len its size. VB_ENOTFOUND
 * ("chunk … is missing"), VB_ECORRUPT (the pack is shorter than the index says), VB_EIO. */
int vb_packed_get(vb_packed_t *self, const vb_digest_t *digest, void *buf, size_t cap,
                  size_t *len) VB_WUR;

bool vb_packed_has(vb_packed_t *self, const vb_digest_t *digest);

/* Where the index (as loaded, not loaded again) says chunk `digest` is: true and *loc filled. */
struct vb_chunkidx_loc_s;
bool vb_packed_locate(vb_packed_t *self, const vb_digest_t *digest, struct vb_chunkidx_loc_s *loc);

/* Sets aside the copy of chunk `digest` the index finds (packquar.h): from now on the index of
 * this and every process that loads it lacks that copy. VB_ENOTFOUND (not in the index),
 * VB_ENOSPC, VB_EIO. */
int vb_packed_quarantine(vb_packed_t *self, const vb_digest_t *digest) VB_WUR;

/* The store (borrowed). */
vb_store_t *vb_packed_store(vb_packed_t *self);

/* Whether a writer may reference chunk `digest` without storing it: true when it is in the
 * writer's open pack, or in the index and its pack could be freshened (once per pack per task:
 * vb_packed_flush forgets), so that a garbage collection running meanwhile keeps that pack
 * (packgc.h). A pack removed since the index was loaded: the index is loaded again and the
 * chunk looked up once more. False: store the chunk. */
bool vb_packed_reuse(vb_packed_writer_t *w, const vb_digest_t *digest);

/* Chunks in the index; packs, their bytes and the raw bytes their trailers list. */
int vb_packed_stats(vb_packed_t *self, uint64_t *chunks, uint64_t *packs, uint64_t *pack_bytes,
                    uint64_t *raw_bytes) VB_WUR;

#endif
