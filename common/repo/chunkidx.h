/* chunkidx — the in-memory chunk index of format 2: digest → (pack, offset, length).
 *
 * Memory: 24 bytes per chunk in one array (a 12-byte digest prefix, pack number, offset,
 * length), plus 16 bytes per pack in the pack table and a fixed 512 KiB table of where each
 * digest's first two bytes start in the sorted array. A 10 TiB repository at 256 KiB chunks holds
 * 40 M chunks: 40 M × 24 B = 0.96 GB (0.89 GiB) in one allocation, and no per-entry pointers or
 * hash-table slack; tests/bench/vb_bench_chunkidx measures it. vb_chunkidx_reserve() presizes
 * the array when the number of chunks is known (the index objects say it), so loading never
 * holds two copies.
 *
 * A 12-byte prefix (96 bits) names a chunk: two of 40 M chunks share one with a probability
 * below 2^-44, and a look-up of a chunk that is not stored hits another's prefix with a
 * probability below 2^-70. Readers re-hash what they read (vb_repo_chunk_decode), so a prefix
 * collision shows as a mismatch, never as wrong data restored.
 *
 * Look-ups binary-search the digest's 1/65536 of the array, sorted by vb_chunkidx_seal() (also done by the first
 * look-up after adds). A digest added twice (two agents racing to store the same chunk) keeps
 * the first location; garbage collection drops the spare copy.
 *
 * Threads: one writer; look-ups from many threads once sealed. */
#ifndef VB_CHUNKIDX_H
#define VB_CHUNKIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo/pack.h"
#include "repo/repo.h"

#define VB_CHUNKIDX_ENTRY_BYTES 24

typedef struct vb_chunkidx vb_chunkidx_t;

typedef struct vb_chunkidx_loc_s {
    vb_pack_id_t pack;
    uint32_t offset; /* of the chunk's image in the pack (packs are below 4 GiB) */
    uint32_t length; /* of the image */
} vb_chunkidx_loc_t;

vb_chunkidx_t *vb_chunkidx_new(void);
void vb_chunkidx_destroy(vb_chunkidx_t **self_p);

/* Makes room for `chunks` entries in all, so that adding them allocates nothing more. */
int vb_chunkidx_reserve(vb_chunkidx_t *self, size_t chunks) VB_WUR;

/* Adds the entries of one pack (as its trailer or the pack writer lists them). */
int vb_chunkidx_add_pack(vb_chunkidx_t *self, const vb_pack_id_t *pack,
                         const vb_pack_entry_t *entries, size_t count) VB_WUR;

/* Leaves out, from the next seal on, the copy of chunk `digest` that pack `pack` holds (a copy
 * verify found bad and quarantined); other copies of the chunk stay, unless a seal before the
 * exclusion dropped them as repeats: exclude before adding. */
int vb_chunkidx_exclude(vb_chunkidx_t *self, const vb_digest_t *digest,
                        const vb_pack_id_t *pack) VB_WUR;

/* Sorts the entries, drops excluded copies and then repeated digests (keeping the first
 * added). */
void vb_chunkidx_seal(vb_chunkidx_t *self);

/* Where chunk `digest` is: true and *out filled, or false when the index does not hold it. */
bool vb_chunkidx_find(vb_chunkidx_t *self, const vb_digest_t *digest, vb_chunkidx_loc_t *out);

size_t vb_chunkidx_count(const vb_chunkidx_t *self);
/* Bytes the index holds allocated (entries and pack table, capacity included). */
size_t vb_chunkidx_memory(const vb_chunkidx_t *self);

#endif
