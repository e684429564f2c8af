/* disk_vddk — not written yet. */
#include "disk/disk_backend.h"

static int s_open(vb_disk_conn_t *conn, const vb_disk_uri_t *uri, const char *mode,
                  const char *snapshot, bool read_only, void **impl_out, uint64_t *capacity_out)
{
    (void)conn, (void)uri, (void)mode, (void)snapshot, (void)read_only, (void)impl_out,
        (void)capacity_out;
    return vb_error_set(VB_EUNSUPPORTED, "the vddk backend is not built yet");
}

const vb_disk_backend_t vb_disk_vddk_backend = {.name = "vddk", .open = s_open};

void vb_disk_vddk_state_free(void *state)
{
    (void)state;
}

int vb_disk_vddk_cleanup(vb_disk_conn_t *conn, const vb_disk_uri_t *uri, unsigned *cleaned,
                         unsigned *remaining)
{
    (void)conn, (void)uri, (void)cleaned, (void)remaining;
    return 0;
}
