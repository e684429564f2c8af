/* vs_internal — what the vsphere modules share (session, builder), and what unit tests drive.
 * Not for use outside common/vsphere/ and its tests. */
#ifndef VB_VSPHERE_INTERNAL_H
#define VB_VSPHERE_INTERNAL_H

#include "vsphere/soap.h"
#include "vsphere/vsphere.h"
#include "vsphere/xml.h"

struct vb_vsphere {
    vb_soap_t *soap;
    char *user;
    char *password;
    char *datacenter; /* option: dcPath for every datastore; NULL: found per datastore */
    char *password_file; /* options an agent needs to reach the file service itself (vsfile */
    char *ca_file;       /* URIs of the inventory); NULL when not given */
    char *thumbprint;
    char **dcmap_ds;  /* datastore name -> inventory path of its datacenter (NULL: several) */
    char **dcmap_dc;
    size_t dcmap_n;
    long task_timeout_s;
    int page_objects;
    char *root_folder;
    char *property_collector;
    char *view_manager;
    char *session_manager;
    char *authorization_manager; /* NULL: the server has none (no PrepareForAccess) */
    char *vstorage_object_manager; /* NULL: the server has none (no First Class Disks) */
    char *api_version;
    char *about;
    bool logged_in;
    unsigned logins;
    char last_fault[64];      /* fault type of the last vb_vs_call, "" when none */
    vb_vs_encoding_t enc;     /* what the file service was found to need */
    vb_vs_encoding_t enc_try; /* first guess while enc is UNKNOWN */
    CURL *file_h;             /* file service requests: one handle, so its connection (and TLS
                               * session) is kept from one read to the next */
    vb_soap_tls_t file_tls;   /* lives as long as file_h */
};

/* A SOAP call that logs in again once when the session expired (NotAuthenticated). The fault
 * type of a failed call stays in self->last_fault. */
int vb_vs_call(vb_vsphere_t *self, const char *method, const char *this_type,
               const char *this_value, const char *args, vb_xml_doc_t **doc_out,
               const vb_xml_node_t **resp_out) VB_WUR;

/* One changed-areas call (QueryChangedDiskAreas of a VM's disk or of a First Class Disk: method
 * on this_type/this_value with args, which start at pos) into out; *next_out is where its span
 * ends. A server without change tracking is VB_EUNSUPPORTED, a change ID it does not know
 * VB_ENOTFOUND, a span that does not move past pos VB_EPROTO; `what` names the disk in each. */
int vb_vs_changed_span(vb_vsphere_t *self, const char *method, const char *this_type,
                       const char *this_value, const char *args, const char *what,
                       const char *change_id, uint64_t pos, vb_extent_list_t *out,
                       uint64_t *next_out) VB_WUR;

/* Logs in again (after a NotAuthenticated found inside an answer rather than as a fault). */
int vb_vs_relogin(vb_vsphere_t *self) VB_WUR;

/* Reads properties of every object of the given types below the root folder (a ContainerView),
 * page by page; calls fn for every ObjectContent element. types/paths: NULL-terminated lists;
 * paths[i] is a comma-separated property list for types[i]. */
typedef int (*vb_vs_object_fn)(void *ud, const vb_xml_node_t *object_content);
int vb_vs_retrieve_view(vb_vsphere_t *self, const char *const *types, const char *const *paths,
                        vb_vs_object_fn fn, void *ud) VB_WUR;
/* Reads properties (comma-separated) of one object; fn gets its ObjectContent. */
int vb_vs_retrieve_object(vb_vsphere_t *self, const char *type, const char *value,
                          const char *paths, vb_vs_object_fn fn, void *ud) VB_WUR;
/* Every <objects> of one RetrieveResult (the returnval of RetrievePropertiesEx or
 * ContinueRetrievePropertiesEx) to fn; *token_out (caller owns) is the continuation token or
 * NULL. A propSet/missingSet NotAuthenticated fault is returned as VB_EAUTH. */
int vb_vs_walk_result(const vb_xml_node_t *result, vb_vs_object_fn fn, void *ud,
                      char **token_out) VB_WUR;

/* The inventory builder: ObjectContent elements in, vb_inventory_t out. */
typedef struct vb_vs_builder vb_vs_builder_t;
vb_vs_builder_t *vb_vs_builder_new(void);
int vb_vs_builder_add(void *builder, const vb_xml_node_t *object_content) VB_WUR;
/* Resolves references to names; *out (caller owns). The builder stays to be destroyed. */
int vb_vs_builder_finish(vb_vs_builder_t *b, vb_inventory_t **out) VB_WUR;
void vb_vs_builder_destroy(vb_vs_builder_t **b_p);

/* A VM's managed object id by name or id; caller owns *id_out. */
int vb_vs_find_vm(vb_vsphere_t *self, const char *vm, char **id_out) VB_WUR;
/* Polls a Task to completion: 0 with *result_out (caller owns, may be NULL) the text of a
 * ManagedObjectReference result; the task's fault as a code and message otherwise. */
int vb_vs_wait_task(vb_vsphere_t *self, const char *task, const char *what,
                    char **result_out) VB_WUR;

/* Runs `method` (which returns a Task) on this_type/this_value with args and waits for it:
 * as vb_vs_wait_task; a failed call is prefixed with `what`. */
int vb_vs_run_task(vb_vsphere_t *self, const char *method, const char *this_type,
                   const char *this_value, const char *args, const char *what,
                   char **result_out) VB_WUR;

/* One TaskInfo: queued/running -> 0 with *done false; success -> 0, *done true, *result_out
 * (caller owns, NULL when none) the result's text; error -> the fault's code and the message
 * "<what> failed: <FaultType>: <localizedMessage>". */
int vb_vs_task_info_parse(const vb_xml_node_t *info, const char *what, bool *done,
                          char **result_out) VB_WUR;

/* The dcPath of the datastore named ds: the datacenter option, or the datacenter holding it
 * (borrowed; VB_ENOTFOUND, VB_EINVAL when several datacenters have a datastore of that name). */
int vb_vs_datacenter_of(vb_vsphere_t *self, const char *ds, const char **dc_out) VB_WUR;

/* ---- First Class Disks (vs_fcd.c) ---- */
typedef struct {
    char *id; /* the FCD's id (a UUID) */
    char *name;
    char *ds_ref; /* moref of the datastore that holds it */
    char *path;   /* its backing file, "[ds] fcd/<id>.vmdk" */
    uint64_t capacity;
} vb_vs_fcd_t;
void vb_vs_fcd_clear(vb_vs_fcd_t *f);
/* RetrieveVStorageObject's answer `resp` for FCD `id` on `ds_ref` into *out (the caller's). */
int vb_vs_fcd_parse(const vb_xml_node_t *resp, const char *id, const char *ds_ref,
                    vb_vs_fcd_t *out) VB_WUR;
/* Every FCD on the datastore ds_ref to fn (borrowed for the call); 0 with no call when the
 * server has no VStorageObjectManager. */
typedef int (*vb_vs_fcd_fn)(void *ud, const vb_vs_fcd_t *fcd);
int vb_vs_fcd_list(vb_vsphere_t *self, const char *ds_ref, vb_vs_fcd_fn fn, void *ud) VB_WUR;
/* The FCD named (or with the id) `name` on any datastore; *out the caller's (vb_vs_fcd_clear).
 * VB_ENOTFOUND when there is none, VB_EINVAL when several share the name. */
int vb_vs_fcd_find(vb_vsphere_t *self, const char *name, vb_vs_fcd_t *out) VB_WUR;
/* VStorageObjectCreateSnapshot_Task; *snapshot_id_out (caller owns) the snapshot's id. */
int vb_vs_fcd_snapshot_create(vb_vsphere_t *self, const vb_vs_fcd_t *fcd, const char *description,
                              char **snapshot_id_out) VB_WUR;
/* DeleteSnapshot_Task; VB_ENOTFOUND when the FCD has no such snapshot. */
int vb_vs_fcd_snapshot_remove(vb_vsphere_t *self, const vb_vs_fcd_t *fcd,
                              const char *snapshot_id) VB_WUR;

/* Changed areas of FCD `fcd` (name or id) at its snapshot since change_id ("*": all allocated
 * areas), from `start` (the provider's changed_areas contract): RetrieveSnapshotDetails gives
 * the snapshot's changedBlockTrackingId (*new_change_id_out, caller owns), then
 * VstorageObjectVCenterQueryChangedDiskAreas is asked span by span. VB_EUNSUPPORTED when the
 * server has neither call or tracking is off; VB_ENOTFOUND for an unknown change ID. */
int vb_vs_fcd_changed_areas(vb_vsphere_t *self, const char *fcd, const char *snapshot_id,
                            uint64_t start, const char *change_id, vb_extent_list_t *out,
                            char **new_change_id_out) VB_WUR;

/* The fault name is one of the NULL-terminated set. */
bool vb_vs_fault_in(const char *name, const char *const *set);

/* Property-value helpers on an ObjectContent's propSet. */
const vb_xml_node_t *vb_vs_prop(const vb_xml_node_t *object_content, const char *name);

#endif
