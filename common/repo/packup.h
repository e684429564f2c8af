/* packup — sealed packs uploaded in the background: up to N puts in flight while the pack
 * writer fills the next pack.
 *
 * A put (one PUT of a 16 MiB pack to S3) is a round trip one stream cannot fill; a writer that
 * waited for it would leave the pipeline idle meanwhile. vb_packup_put takes the sealed pack's
 * buffer, queues it for one of N upload threads (started at the first put) and hands back a
 * buffer of an upload that has finished, if any, so the writer goes on filling the next pack at
 * once. It blocks while N uploads are queued or running.
 *
 * Commit order: the caller lists a pack only once vb_packup_put took it, in an index object only
 * after vb_packup_wait returned 0 (every pack put so far is written), or vb_packup_wait_until
 * did for a mark taken after the pack was put. The first failure, of an
 * upload or of a put (no upload thread could start), is kept: every later put and wait returns
 * it (uploads still queued are dropped), so an index object is never written for a set of packs
 * one of which is missing.
 *
 * Memory: N buffers (queued, uploading, or kept for reuse) plus the writer's own: (N + 1) ×
 * the pack size; once nothing is in flight (after a wait) one spare is kept, the rest freed.
 * Across the process, vb_packup_limit_process bounds the uploads of every packup together (an
 * agent's repository handles: two jobs at once, or a retired handle and its replacement).
 *
 * Ending: destroy without a wait abandons what is queued or uploading (a failed or cancelled
 * task's packs are never listed, so writing them would only leave work for GC).
 *
 * Threads: put and wait may be called from any thread (one at a time per pack, as the pack
 * writer's owner does); destroy from one, once the others are done. */
#ifndef VB_PACKUP_H
#define VB_PACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "repo/store.h"

typedef struct vb_packup vb_packup_t;

/* Uploads into `store` (borrowed) with up to in_flight (1..VB_STORE_PUTS_IN_FLIGHT_MAX) puts
 * at once. NULL with the message set. */
vb_packup_t *vb_packup_new(vb_store_t *store, unsigned in_flight);
/* Ends the uploads and frees everything (NULL and twice are fine). Uploads a vb_packup_wait did
 * not see finish belong to a task that ends without a commit: those not begun are dropped and
 * those under way abandoned (vb_store_abandon_when; nothing is written under their names), and
 * destroy returns once their threads have stopped. */
void vb_packup_destroy(vb_packup_t **self_p);

/* Queues a put-if-absent of buf[0..len) as `name`. Takes *buf (allocated with malloc or
 * posix_memalign; *cap its capacity) and sets *buf and *cap to a free buffer of an earlier
 * upload, or NULL and 0. On error *buf stays the caller's: the first failed upload's code and
 * message (VB_EIO, VB_ENOSPC, ...), or VB_ENOMEM. */
int vb_packup_put(vb_packup_t *self, const char *name, uint8_t **buf, size_t *cap,
                  size_t len) VB_WUR;

/* Waits until no upload is queued or running. 0 when every put so far was written; otherwise
 * the first failure's code and message. */
int vb_packup_wait(vb_packup_t *self) VB_WUR;

/* One bound on the uploads queued or running in every packup of the process together: a put
 * waits while `limit` are (before it waits for its own packup's N). 0, the default: none beyond
 * each packup's own. */
void vb_packup_limit_process(unsigned limit);
/* The most uploads that were queued or running at once across the process so far. */
unsigned vb_packup_process_peak(void);
/* The puts queued so far: a mark for vb_packup_wait_until. */
uint64_t vb_packup_mark(vb_packup_t *self);
/* Waits until every put queued before `mark` is done (later ones may still be queued or
 * running: a commit waits for its own packs while the writers go on sealing). 0, or the first
 * failure's code and message (of any put so far: a failure is never forgotten). */
int vb_packup_wait_until(vb_packup_t *self, uint64_t mark) VB_WUR;

/* Uploads that were written, and the most that were in flight at once, so far. */
uint64_t vb_packup_puts(vb_packup_t *self);
unsigned vb_packup_peak(vb_packup_t *self);

#endif
