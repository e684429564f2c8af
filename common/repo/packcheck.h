/* packcheck — the repository-wide check of format 2 (`vbak verify --repo`): every index object
 * is read and its checksum and layout checked, every pack's footer and trailer are read and
 * checked against its size. Chunk contents are verify's per restore point (pipeline.h). Works
 * without the key: trailers and index objects are plaintext. */
#ifndef VB_PACKCHECK_H
#define VB_PACKCHECK_H

#include <stdint.h>

#include "repo/store.h"

typedef struct vb_packcheck_stats_s {
    uint64_t index_objects; /* read */
    uint64_t packs;         /* read */
    uint64_t chunks;        /* entries the sound packs' trailers list */
    uint64_t bad;           /* damaged index objects and packs */
} vb_packcheck_stats_t;

/* Told once per damaged object: its name and what is wrong (both borrowed for the call). */
typedef void (*vb_packcheck_bad_fn)(void *arg, const char *name, const char *problem);

/* Checks every index object and pack of `store`; a damaged one is reported and counted, and the
 * check goes on. Returns 0 when the check ran (whatever it found; see out->bad), or the error
 * that stopped it (listing the store failed, out of memory). */
int vb_packcheck_run(vb_store_t *store, vb_packcheck_bad_fn bad, void *arg,
                     vb_packcheck_stats_t *out) VB_WUR;

#endif
