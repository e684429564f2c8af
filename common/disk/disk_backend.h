/* disk_backend — what each disk access backend (file, nbd, vddk, vsfile) provides to disk.c.
 * Internal to common/disk/. */
#ifndef VB_DISK_BACKEND_H
#define VB_DISK_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk/disk.h"
#include "disk/disk_uri.h"

typedef struct {
    const char *name;
    /* Optional, once per route before any mode is tried: what does not depend on the mode (the
     * vddk backend loads the library). A failure drops the route with one reason. */
    int (*prepare)(vb_disk_conn_t *conn, const vb_disk_uri_t *uri);
    /* Opens the disk the URI names through mode; *capacity_out in bytes. */
    int (*open)(vb_disk_conn_t *conn, const vb_disk_uri_t *uri, const char *mode,
                const char *snapshot, bool read_only, void **impl_out, uint64_t *capacity_out);
    /* Appends allocated extents of [offset, offset+length) to out. VB_EUNSUPPORTED when the
     * backend cannot answer (disk.c then falls back to "all allocated"). */
    int (*allocated)(void *impl, uint64_t offset, uint64_t length, vb_extent_list_t *out);
    int (*read)(void *impl, void *buf, size_t len, uint64_t offset);
    int (*write)(void *impl, const void *buf, size_t len, uint64_t offset);
    int (*flush)(void *impl);
    void (*close)(void *impl);
} vb_disk_backend_t;

extern const vb_disk_backend_t vb_disk_file_backend;
extern const vb_disk_backend_t vb_disk_nbd_backend;
extern const vb_disk_backend_t vb_disk_vddk_backend;
extern const vb_disk_backend_t vb_disk_vsfile_backend;

/* Connection settings the vddk backend reads (disk.c owns them). */
const char *vb_disk_conn_vddk_libdir(const vb_disk_conn_t *conn);
const char *vb_disk_conn_vddk_config(const vb_disk_conn_t *conn);
/* The per-connection VDDK library state (disk_vddk.c allocates it; disk.c frees it with
 * vb_disk_vddk_state_free at disconnect). */
void **vb_disk_conn_vddk_state(vb_disk_conn_t *conn);
void vb_disk_vddk_state_free(void *state);
/* VixDiskLib_Cleanup for a vddk URI. */
int vb_disk_vddk_cleanup(vb_disk_conn_t *conn, const vb_disk_uri_t *uri, unsigned *cleaned,
                         unsigned *remaining);

#endif
