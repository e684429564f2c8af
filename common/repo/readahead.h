/* readahead — format 2 reads chunk images in runs: one ranged read per run of chunks that lie
 * back to back in a pack, not one read per chunk.
 *
 * A reader about to read a batch of chunks (restore and verify hand over the chunks of one
 * pack that a disk index references, a few MiB at a time) gives their digests to
 * vb_readahead_load: each is looked up in the chunk index, the batch is sorted by pack and
 * offset, and every run of images in one pack whose gaps are below VB_READAHEAD_GAP is read with
 * one ranged read (at most VB_READAHEAD_RUN_MAX bytes), widened to whole 4 KiB blocks into an
 * aligned buffer so that a local store reads it past the page cache (vb_store get_range). vb_readahead_take then hands out an
 * image in place (no copy). Takes in the order the images lie (as restore and verify make them)
 * find each at once; others search.
 *
 * Errors are never reported by load: an image it could not read (a pack missing or cut short,
 * a chunk not in the index) is simply not held, and the caller reads that chunk the ordinary
 * way (vb_packed_get), which names the problem. So a damaged pack costs the reader no more than
 * before, and every bad chunk is still named on its own.
 *
 * Memory: the images of one batch (the caller bounds the batch; up to 8 KiB more per run) plus
 * 56 bytes per chunk of it.
 *
 * Threads: one per thread (a repository worker owns one). */
#ifndef VB_READAHEAD_H
#define VB_READAHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo/packed.h"
#include "repo/repo.h"

#define VB_READAHEAD_GAP (256u * 1024u)            /* read through gaps up to this size */
#define VB_READAHEAD_RUN_MAX (32u * 1024u * 1024u) /* bytes of one ranged read at most */

typedef struct vb_readahead vb_readahead_t;

/* A read-ahead over the packs of `packed` (borrowed). NULL with the message set. */
vb_readahead_t *vb_readahead_new(vb_packed_t *packed);
void vb_readahead_destroy(vb_readahead_t **self_p);

/* Forgets what was held and reads the images of digests[0..n) ahead (see above). */
void vb_readahead_load(vb_readahead_t *self, const vb_digest_t *digests, size_t n);

/* The image of `digest` when the last load read it: true, *img (borrowed until the next load)
 * and *len its size. The same image may be taken again until then, so a caller that changes it
 * (decrypts in place) copies it first. False: not held (read it the ordinary way). */
bool vb_readahead_take(vb_readahead_t *self, const vb_digest_t *digest, uint8_t **img, size_t *len);

/* Ranged reads made by loads so far. */
uint64_t vb_readahead_reads(const vb_readahead_t *self);

#endif
