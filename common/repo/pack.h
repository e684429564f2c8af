/* pack — format 2's pack objects: many encoded chunks in one immutable store object.
 *
 * A pack is the store object packs/<first two hex digits>/<32 hex digits of a random id>:
 *   the chunk images one after the other (each as vb_repo_chunk_encode makes it: a 64-byte
 *   header and its payload), then a trailer of count entries
 *     digest (32) | offset u64 | length u32 | raw length u32          (48 bytes each)
 *   then a footer
 *     magic "VBPACK2\0" | u32 format version | u32 count | u64 trailer offset |
 *     SHA-256 of the trailer entries (32)                              (56 bytes)
 * All integers little-endian. The trailer makes a pack self-describing: the chunk index can be
 * rebuilt from the packs alone (vb_pack_read_trailer).
 *
 * A writer collects chunk images in memory up to a target size and seals the pack (one
 * put-if-absent of the whole object) when the next chunk would pass it, or when asked (at the
 * end of a task). Sealing tells a callback which chunks went where, so that the caller can write
 * the chunk index after the pack is durable (packs, then index, then restore point).
 *
 * Threads: a writer is used by one thread at a time; any number of writers may share a store. */
#ifndef VB_PACK_H
#define VB_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo/repo.h"
#include "repo/store.h"

#define VB_PACK_FORMAT_VERSION 1
#define VB_PACK_SIZE_MIN (4u * 1024u * 1024u)
#define VB_PACK_SIZE_MAX (128u * 1024u * 1024u)
#define VB_PACK_SIZE_DEFAULT (16u * 1024u * 1024u)
#define VB_PACK_ID_LEN 16
#define VB_PACK_NAME_LEN (sizeof "packs/" + 3 + 2 * VB_PACK_ID_LEN)
#define VB_PACK_ENTRY_LEN 48
#define VB_PACK_FOOTER_LEN 56

typedef struct {
    uint8_t b[VB_PACK_ID_LEN];
} vb_pack_id_t;

/* Where one chunk lives in a pack. */
typedef struct {
    vb_digest_t digest;
    uint64_t offset;  /* of its image in the pack */
    uint32_t length;  /* of its image (header + payload) */
    uint32_t raw_len; /* of the chunk's plaintext */
} vb_pack_entry_t;

/* Told once per sealed pack, after the pack was put (durable at the store's next barrier), or,
 * with uploads in flight (vb_pack_writer_set_uploads), after the uploads took it (written once
 * vb_packup_wait returns 0); never for a pack the store or the uploads refused. entries are
 * borrowed for the call. A non-zero return fails the seal with that code (the pack stays put:
 * in no index object, it is garbage a collection removes). */
typedef int (*vb_pack_sealed_fn)(void *arg, const vb_pack_id_t *id, const vb_pack_entry_t *entries,
                                 size_t count);

typedef struct vb_pack_writer vb_pack_writer_t;

/* A writer into `store` (borrowed) sealing at about target_size bytes (VB_PACK_SIZE_MIN ..
 * VB_PACK_SIZE_MAX; 0: the default). NULL with the message set. */
vb_pack_writer_t *vb_pack_writer_new(vb_store_t *store, size_t target_size,
                                     vb_pack_sealed_fn sealed, void *arg);
/* Seals from now on hand the pack to `up` (borrowed; packup.h) instead of putting it: the
 * writer goes on with a free buffer of an earlier upload while up to N uploads run. */
struct vb_packup;
void vb_pack_writer_set_uploads(vb_pack_writer_t *self, struct vb_packup *up);

/* Lets go of a pack buffer a writer handed over (a sealed pack's, of `cap` bytes): kept for a
 * later pack of this process, or freed. Takes NULL. */
void vb_pack_buffer_release(void *buf, size_t cap);

/* Destroys the writer; chunks added since the last seal are dropped (call vb_pack_seal first). */
void vb_pack_writer_destroy(vb_pack_writer_t **self_p);

/* Appends one chunk image; seals the pack first when the image would take it past the target
 * size. Errors are those of vb_pack_seal, or VB_EINVAL (empty image). */
int vb_pack_add(vb_pack_writer_t *self, const vb_digest_t *digest, const uint8_t *img,
                size_t img_len, uint32_t raw_len) VB_WUR;

/* Seals the current pack (nothing when it is empty): writes it and calls the sealed callback.
 * VB_ENOSPC, VB_EIO, or the callback's code. */
int vb_pack_seal(vb_pack_writer_t *self) VB_WUR;

/* Packs sealed and bytes written by this writer so far. */
uint64_t vb_pack_writer_packs(const vb_pack_writer_t *self);
uint64_t vb_pack_writer_bytes(const vb_pack_writer_t *self);

/* The object name of a pack. */
void vb_pack_name(const vb_pack_id_t *id, char out[VB_PACK_NAME_LEN]);
/* Parses a pack object name; VB_EINVAL when it is not one. */
int vb_pack_parse_name(const char *name, vb_pack_id_t *out) VB_WUR;

/* Reads a pack's trailer (one ranged read of the footer, one of the entries) and checks it
 * against the pack's size. Caller frees *entries. VB_ENOTFOUND; VB_ECORRUPT (truncated pack,
 * bad magic or checksum, entries outside the pack); VB_EUNSUPPORTED (newer format). */
int vb_pack_read_trailer(vb_store_t *store, const vb_pack_id_t *id, vb_pack_entry_t **entries,
                         size_t *count) VB_WUR;

#endif
