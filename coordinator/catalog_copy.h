/* catalog_copy — a consistent copy of the catalog kept in the repository, so that a lost
 * coordinator disk loses nothing the repository cannot give back (besides the manifests,
 * `vbak catalog rebuild`): store objects `catalog/catalog-<UTC time>-<ms>.db`, the newest `keep`.
 *
 * vb_catalog_copy_put does the work on the calling thread; vb_catalog_copier_t runs it on a
 * thread of its own, so the coordinator's loop never waits for it (one copy at a time; a request
 * while one runs makes one more copy after it, not one per request). */
#ifndef VB_CATALOG_COPY_H
#define VB_CATALOG_COPY_H

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "repo/store.h"

#define VB_CATALOG_COPY_PREFIX "catalog/"

/* Copies the catalog at catalog_path (SQLite online backup into a temp file beside it), puts it
 * durably into `store` as catalog/catalog-<time>.db and removes all but the newest `keep` copies.
 * name_out (may be NULL) receives the object's name. VB_EDB, VB_EIO, VB_ENOSPC. */
int vb_catalog_copy_put(const char *catalog_path, vb_store_t *store, unsigned keep, int64_t now_ms,
                        char *name_out, size_t name_size) VB_WUR;

typedef struct vb_catalog_copier vb_catalog_copier_t;

/* A copier for the catalog at catalog_path into `store` (borrowed: it must outlive the copier),
 * keeping `keep` copies; it reports to `loop`. NULL on out of memory. */
vb_catalog_copier_t *vb_catalog_copier_new(zloop_t *loop, const char *catalog_path,
                                           vb_store_t *store, unsigned keep);
/* Waits for a copy in flight, then frees. */
void vb_catalog_copier_destroy(vb_catalog_copier_t **self_p);
/* Asks for a copy now (after the one running, if any). */
void vb_catalog_copier_request(vb_catalog_copier_t *self);
/* Copies made and failed so far. */
uint64_t vb_catalog_copier_done(const vb_catalog_copier_t *self);
uint64_t vb_catalog_copier_failed(const vb_catalog_copier_t *self);

#endif
