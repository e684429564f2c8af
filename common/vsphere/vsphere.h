/* vsphere — the vSphere inventory provider: vCenter or ESXi through the Web Services API.
 *
 * A vb_vsphere_t is one logged-in session: vb_vsphere_new retrieves the ServiceContent, refuses
 * an API version outside what vbak supports (vSphere 6.5 through 8.x: the N-2 ... N+1 policy of
 * the VDDK release notes), and logs in. Every call re-logs in once when the server answers
 * NotAuthenticated (an expired session). A session is used by one thread at a time; the
 * parallel file reader makes its own connections.
 *
 * TLS is always verified: against a CA file, against a pinned SHA-256 thumbprint of the server
 * certificate (a mismatch is refused, naming both thumbprints), or against the system CAs.
 *
 * The datastore HTTP file service (/folder/<path>?dcPath=&dsName=) reads and writes files on
 * datastores. vSphere 6.7 before U2 decodes names twice: when a request for a name with special
 * characters answers 404, the other encoding (single/double) is tried, and what worked is kept
 * for the rest of the session (the adaptive decoding the release notes ask for). */
#ifndef VB_VSPHERE_H
#define VB_VSPHERE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "inventory/inventory.h"

typedef enum {
    VB_VS_ENC_UNKNOWN = 0, /* not learned yet: single encoding first */
    VB_VS_ENC_SINGLE = 1,  /* percent-encode once (vSphere 6.5, 6.7 U2 and later, 7, 8) */
    VB_VS_ENC_DOUBLE = 2,  /* percent-encode twice (vSphere 6.7, 6.7 U1) */
} vb_vs_encoding_t;

typedef struct {
    const char *url; /* "https://vcenter.example.com[:port]" */
    const char *user;
    const char *password;      /* or: */
    const char *password_file; /* its first line is the password */
    const char *ca_file;       /* PEM CAs to verify the server with */
    const char *thumbprint;    /* pinned SHA-256 of the server certificate, "AB:CD:..." */
    const char *datacenter;    /* dcPath for the file service ("folder/dc"); NULL: the datacenter
                                * holding the datastore, found in the inventory */
    long timeout_s;            /* per HTTP request; 0: 300 */
    long task_timeout_s;       /* CreateSnapshot/RemoveSnapshot; 0: 3600 */
    vb_vs_encoding_t encoding; /* first guess for the file service; UNKNOWN: single */
    int page_objects;          /* RetrievePropertiesEx maxObjects per page; 0: 100 */
} vb_vsphere_options_t;

typedef struct vb_vsphere vb_vsphere_t;

/* Connects, checks the API version, logs in. NULL on failure with the message set: VB_EAUTH
 * (bad user or password: "InvalidLogin"; thumbprint mismatch), VB_EUNSUPPORTED (version). */
vb_vsphere_t *vb_vsphere_new(const vb_vsphere_options_t *opts);
/* Logs out (best effort) and frees. */
void vb_vsphere_destroy(vb_vsphere_t **self_p);

/* Returns 0 when an API version ("6.5", "7.0.3.0", "8.0.2.0") is in the supported range,
 * VB_EUNSUPPORTED naming the range otherwise. */
int vb_vsphere_check_api_version(const char *api_version) VB_WUR;

const char *vb_vsphere_api_version(const vb_vsphere_t *self); /* borrowed */
const char *vb_vsphere_about(const vb_vsphere_t *self);       /* about.fullName, borrowed */
/* Logs out on the server now. The session keeps its (now dead) cookie, so the next call meets
 * NotAuthenticated and logs in again, exactly as after a server-side session expiry. */
int vb_vsphere_logout(vb_vsphere_t *self) VB_WUR;
/* How many times the session logged in (1 after new; more after re-logins). */
unsigned vb_vsphere_login_count(const vb_vsphere_t *self);

/* The whole inventory: datastores (summary.type, url, mounting hosts), hosts, VMs with disks
 * and snapshots. Caller owns *out. */
int vb_vsphere_inventory(vb_vsphere_t *self, vb_inventory_t **out) VB_WUR;

/* VM by name or managed object id. CreateSnapshot_Task (memory false, quiesce false) polled to
 * completion; *snapshot_id_out (caller owns) is the snapshot's managed object id. */
int vb_vsphere_snapshot_create(vb_vsphere_t *self, const char *vm, const char *name,
                               const char *description, char **snapshot_id_out) VB_WUR;
/* RemoveSnapshot_Task of a snapshot given by id or name; VB_ENOTFOUND when the VM has none. */
int vb_vsphere_snapshot_remove(vb_vsphere_t *self, const char *vm, const char *snapshot) VB_WUR;

/* What VixDiskLib_PrepareForAccess / EndAccess do through vCenter: DisableMethods /
 * EnableMethods of RelocateVM_Task (Storage vMotion) on the VM, source "vbak" (`who`, the job,
 * goes to the log). VB_ENOTFOUND when the VM is gone; VB_EUNSUPPORTED when the server has no
 * AuthorizationManager. */
int vb_vsphere_prepare_for_access(vb_vsphere_t *self, const char *vm, const char *who) VB_WUR;
int vb_vsphere_end_access(vb_vsphere_t *self, const char *vm) VB_WUR;

/* CreateVM_Task: VM `name` on `datastore` (in the datacenter that holds it, on `host` or the
 * first host that mounts it, in that host's root resource pool) with n new, empty, thin disks
 * of the given keys (2000 + position when a key is not a number) and capacities on one SCSI
 * controller (at most 15). VB_EEXISTS when a VM has that name; VB_ENOTFOUND naming a datastore
 * or host that is not there. */
int vb_vsphere_create_vm(vb_vsphere_t *self, const char *name, const char *host,
                         const char *datastore, const vb_inv_new_disk_t *disks, size_t n) VB_WUR;

/* QueryChangedDiskAreas over the whole disk from `start` (the provider interface's contract).
 * VB_EUNSUPPORTED when the server does not implement it, tracking is off, or it is on but the
 * disk has no change ID yet (the message says which, in one sentence naming the VM and disk);
 * VB_ENOTFOUND when change_id is unknown. */
int vb_vsphere_changed_areas(vb_vsphere_t *self, const char *vm, const char *disk_key,
                             const char *snapshot_id, uint64_t start, const char *change_id,
                             vb_extent_list_t *out, char **new_change_id_out) VB_WUR;

/* One DiskChangeInfo element (the returnval of QueryChangedDiskAreas): appends its
 * changedArea start/length to out in order and gives the covered span. */
struct vb_xml_node;
int vb_vsphere_parse_disk_change_info(const struct vb_xml_node *info, vb_extent_list_t *out,
                                      uint64_t *span_start, uint64_t *span_length) VB_WUR;

/* The file behind disk `disk_key` as snapshot `snapshot_id` froze it (the backing fileName in
 * the snapshot's configuration): what a reader over the file service reads while the VM writes
 * to its redo log. Caller owns *path_out. VB_ENOTFOUND when the snapshot has no such disk. */
int vb_vsphere_snapshot_disk_path(vb_vsphere_t *self, const char *snapshot_id, const char *disk_key,
                                  char **path_out) VB_WUR;

/* ---- datastore file service ---- */

/* Splits "[ds name] dir/file.vmdk" into a datastore name and a path (caller owns both). */
int vb_vsphere_split_ds_path(const char *ds_path, char **ds_out, char **path_out) VB_WUR;
/* The flat extent of a monolithic-flat disk: "dir/x.vmdk" -> "dir/x-flat.vmdk" (caller owns). */
char *vb_vsphere_flat_path(const char *descriptor_path);
/* Percent-encodes a path for /folder/: once (SINGLE) or twice (DOUBLE); '/' stays. */
char *vb_vsphere_encode_path(const char *path, vb_vs_encoding_t enc);

/* GET of [offset, offset+length) of a datastore file ("[ds] dir/file") into buf; length 0 with
 * buf NULL asks for nothing and just checks the file exists. *got_out: bytes read (short at
 * end of file). VB_ENOTFOUND when neither encoding finds the file. */
int vb_vsphere_file_get(vb_vsphere_t *self, const char *ds_file, uint64_t offset, size_t length,
                        void *buf, size_t *got_out) VB_WUR;
/* The file's size (HEAD); VB_ENOTFOUND when missing. */
int vb_vsphere_file_size(vb_vsphere_t *self, const char *ds_file, uint64_t *size_out) VB_WUR;
/* PUT of a whole file. */
int vb_vsphere_file_put(vb_vsphere_t *self, const char *ds_file, const void *data,
                        size_t len) VB_WUR;
/* What the file service was found to need (UNKNOWN until a name with special characters was
 * fetched). */
vb_vs_encoding_t vb_vsphere_file_encoding(const vb_vsphere_t *self);

/* The read path for agents over the file service: reads many extents of one datastore file
 * with up to `threads` connections in parallel, each extent into dst + its position in the
 * array (extent i lands at the sum of the lengths before it). Uses the session's cookie and TLS
 * policy; the session itself is not touched by the workers. */
int vb_vsphere_file_read_extents(vb_vsphere_t *self, const char *ds_file,
                                 const vb_extent_t *extents, size_t count, unsigned threads,
                                 void *dst) VB_WUR;

/* The provider (inventory.h) over a new session; NULL on failure (message set). */
vb_provider_t *vb_vsphere_provider_new(const vb_vsphere_options_t *opts);
/* The session inside a provider made by vb_vsphere_provider_new (borrowed), for the file
 * service and the reader. */
vb_vsphere_t *vb_vsphere_provider_session(vb_provider_t *provider);

#endif
