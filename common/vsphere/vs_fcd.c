/* vs_fcd — First Class Disks through vCenter's VStorageObjectManager: listed per datastore
 * (ListVStorageObject + RetrieveVStorageObject), snapshotted for a backup
 * (VStorageObjectCreateSnapshot_Task) and the snapshot deleted after it (DeleteSnapshot_Task).
 * An FCD belongs to no VM: VixDiskLib opens it through the vStorageObject connection spec (its
 * id, its datastore's moref, the snapshot id), which its vddk:// route carries (disk.h). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vsphere/vs_internal.h"

void vb_vs_fcd_clear(vb_vs_fcd_t *f)
{
    free(f->id);
    free(f->name);
    free(f->ds_ref);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* <id><id>ID</id></id><datastore type="Datastore">REF</datastore>: how every call names an FCD. */
static int s_put_fcd(vb_buf_t *b, const char *id, const char *ds_ref)
{
    int rc = vb_buf_puts(b, "<id>");
    if (rc == 0)
        rc = vb_buf_put_elem(b, "id", id);
    if (rc == 0)
        rc = vb_buf_puts(b, "</id>");
    if (rc == 0)
        rc = vb_buf_put_moref(b, "datastore", "Datastore", ds_ref);
    return rc;
}

static int s_need_manager(vb_vsphere_t *self)
{
    if (!self->vstorage_object_manager)
        return vb_error_set(VB_EUNSUPPORTED,
                            "%s has no VStorageObjectManager: no First Class Disks",
                            vb_soap_base_url(self->soap));
    return 0;
}

/* RetrieveVStorageObject's answer: the FCD's name, capacity and backing file. */
int vb_vs_fcd_parse(const vb_xml_node_t *resp, const char *id, const char *ds_ref,
                    vb_vs_fcd_t *out)
{
    const vb_xml_node_t *cfg = vb_xml_path(resp, "returnval/config");
    const char *name = vb_xml_path_text(cfg, "name");
    const char *path = vb_xml_path_text(cfg, "backing/filePath");
    int64_t mb = 0;
    int rc = 0;
    if (!name || !path)
        rc = vb_error_set(VB_EPROTO, "First Class Disk %s: no name or backing file path", id);
    if (rc == 0)
        rc = vb_xml_i64(vb_xml_child(cfg, "capacityInMB"), "capacityInMB", &mb);
    if (rc == 0 && (mb < 0 || (uint64_t)mb > UINT64_MAX >> 20))
        rc = vb_error_set(VB_EPROTO, "First Class Disk %s has a capacity of %lld MB", id,
                          (long long)mb);
    if (rc == 0) {
        out->id = strdup(id);
        out->name = strdup(name);
        out->ds_ref = strdup(ds_ref);
        out->path = strdup(path);
        out->capacity = (uint64_t)mb << 20;
        if (!out->id || !out->name || !out->ds_ref || !out->path)
            rc = vb_error_set(VB_ENOMEM, "out of memory");
    }
    if (rc != 0)
        vb_vs_fcd_clear(out);
    return rc;
}

static int s_retrieve(vb_vsphere_t *self, const char *id, const char *ds_ref, vb_vs_fcd_t *out)
{
    vb_buf_t args = {0};
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    int rc = s_put_fcd(&args, id, ds_ref);
    if (rc == 0)
        rc = vb_vs_call(self, "RetrieveVStorageObject", "VcenterVStorageObjectManager",
                        self->vstorage_object_manager, args.data, &doc, &resp);
    if (rc == 0)
        rc = vb_vs_fcd_parse(resp, id, ds_ref, out);
    vb_xml_doc_destroy(&doc);
    vb_buf_free(&args);
    return rc;
}

/* A fault that says the datastore or FCD cannot be described (a datastore that holds no FCDs
 * or cannot, an FCD whose backing is gone) costs that datastore or FCD only, said in a warning;
 * the inventory goes on. Any other fault (NoPermission, SystemError, ...) fails the listing:
 * skipping it would make FCDs vanish from the inventory without a word. */
static int s_skip_fault(vb_vsphere_t *self, int rc, const char *what, const char *ref)
{
    static const char *const skippable[] = {"NotFound",         "FileNotFound",
                                            "InvalidDatastore", "InaccessibleDatastore",
                                            "NotSupported",     "InvalidArgument",
                                            NULL};
    if (rc == 0 || !vb_vs_fault_in(self->last_fault, skippable))
        return rc;
    VB_LOG_WARN("vsphere", "fcd-skipped %s=%s fault=%s reason=\"%s\"", what, ref, self->last_fault,
                vb_error_msg());
    return 0;
}

int vb_vs_fcd_list(vb_vsphere_t *self, const char *ds_ref, vb_vs_fcd_fn fn, void *ud)
{
    if (!self->vstorage_object_manager)
        return 0; /* no FCDs on this server */
    vb_buf_t args = {0};
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    int rc = vb_buf_put_moref(&args, "datastore", "Datastore", ds_ref);
    if (rc == 0)
        rc = s_skip_fault(self,
                          vb_vs_call(self, "ListVStorageObject", "VcenterVStorageObjectManager",
                                     self->vstorage_object_manager, args.data, &doc, &resp),
                          "datastore", ds_ref);
    for (const vb_xml_node_t *r = vb_xml_child(resp, "returnval"); rc == 0 && r;
         r = vb_xml_next(r, "returnval")) {
        const char *id = vb_xml_path_text(r, "id");
        vb_vs_fcd_t f = {0};
        if (!id || !*id)
            continue;
        rc = s_retrieve(self, id, ds_ref, &f);
        if (rc == 0)
            rc = fn(ud, &f);
        else
            rc = s_skip_fault(self, rc, "fcd", id);
        vb_vs_fcd_clear(&f);
    }
    if (rc != 0)
        rc = vb_error_prefix(rc, "First Class Disks on datastore %s", ds_ref);
    vb_xml_doc_destroy(&doc);
    vb_buf_free(&args);
    return rc;
}

/* ---- finding one FCD by name or id ---- */

typedef struct {
    vb_vsphere_t *self;
    const char *want;
    vb_vs_fcd_t found;
    int matches;
} s_find_t;

static int s_match(void *ud, const vb_vs_fcd_t *f)
{
    s_find_t *s = ud;
    if (strcmp(f->name, s->want) != 0 && strcmp(f->id, s->want) != 0)
        return 0;
    if (s->matches++ > 0)
        return 0;
    s->found.id = strdup(f->id);
    s->found.name = strdup(f->name);
    s->found.ds_ref = strdup(f->ds_ref);
    s->found.path = strdup(f->path);
    s->found.capacity = f->capacity;
    if (!s->found.id || !s->found.name || !s->found.ds_ref || !s->found.path)
        return vb_error_set(VB_ENOMEM, "out of memory");
    return 0;
}

static int s_each_datastore(void *ud, const vb_xml_node_t *oc)
{
    s_find_t *s = ud;
    const char *ref = vb_xml_path_text(oc, "obj");
    return ref ? vb_vs_fcd_list(s->self, ref, s_match, s) : 0;
}

int vb_vs_fcd_find(vb_vsphere_t *self, const char *name, vb_vs_fcd_t *out)
{
    static const char *const types[] = {"Datastore", NULL};
    static const char *const paths[] = {"name", NULL};
    s_find_t s = {.self = self, .want = name};
    memset(out, 0, sizeof *out);
    int rc = s_need_manager(self);
    if (rc == 0)
        rc = vb_vs_retrieve_view(self, types, paths, s_each_datastore, &s);
    if (rc == 0 && s.matches == 0)
        rc = vb_error_set(VB_ENOTFOUND, "no VM or First Class Disk named '%s' on %s", name,
                          vb_soap_base_url(self->soap));
    else if (rc == 0 && s.matches > 1)
        rc = vb_error_set(VB_EINVAL, "%d First Class Disks are named '%s'; give the FCD's id",
                          s.matches, name);
    if (rc == 0)
        *out = s.found;
    else
        vb_vs_fcd_clear(&s.found);
    return rc;
}

int vb_vs_fcd_snapshot_create(vb_vsphere_t *self, const vb_vs_fcd_t *fcd, const char *description,
                              char **snapshot_id_out)
{
    char what[256];
    vb_buf_t args = {0};
    *snapshot_id_out = NULL;
    snprintf(what, sizeof what, "snapshot of First Class Disk %s (%s)", fcd->name, fcd->id);
    int rc = s_put_fcd(&args, fcd->id, fcd->ds_ref);
    if (rc == 0)
        rc = vb_buf_put_elem(&args, "description", description ? description : "");
    if (rc == 0)
        rc = vb_vs_run_task(self, "VStorageObjectCreateSnapshot_Task",
                            "VcenterVStorageObjectManager", self->vstorage_object_manager,
                            args.data, what, snapshot_id_out);
    if (rc == 0 && (!*snapshot_id_out || !**snapshot_id_out))
        rc = vb_error_set(VB_EPROTO, "%s: the task gave no snapshot id", what);
    if (rc == 0)
        VB_LOG_INFO("vsphere", "fcd snapshot created fcd=\"%s\" id=%s snapshot=%s", fcd->name,
                    fcd->id, *snapshot_id_out);
    if (rc != 0) {
        free(*snapshot_id_out);
        *snapshot_id_out = NULL;
    }
    vb_buf_free(&args);
    return rc;
}

int vb_vs_fcd_snapshot_remove(vb_vsphere_t *self, const vb_vs_fcd_t *fcd, const char *snapshot_id)
{
    char what[256];
    vb_buf_t args = {0};
    snprintf(what, sizeof what, "deleting snapshot %s of First Class Disk %s (%s)", snapshot_id,
             fcd->name, fcd->id);
    int rc = s_put_fcd(&args, fcd->id, fcd->ds_ref);
    if (rc == 0)
        rc = vb_buf_puts(&args, "<snapshotId>");
    if (rc == 0)
        rc = vb_buf_put_elem(&args, "id", snapshot_id);
    if (rc == 0)
        rc = vb_buf_puts(&args, "</snapshotId>");
    if (rc == 0)
        rc = vb_vs_run_task(self, "DeleteSnapshot_Task", "VcenterVStorageObjectManager",
                            self->vstorage_object_manager, args.data, what, NULL);
    /* the task fails with InvalidArgument for a snapshot that is not there (any more) */
    if (rc == VB_EINVAL && strstr(vb_error_msg(), "InvalidArgument"))
        rc = vb_error_set(VB_ENOTFOUND, "%s: no such snapshot", what);
    if (rc == 0)
        VB_LOG_INFO("vsphere", "fcd snapshot removed fcd=\"%s\" id=%s snapshot=%s", fcd->name,
                    fcd->id, snapshot_id);
    vb_buf_free(&args);
    return rc;
}

/* ---- changed block tracking of an FCD ---- */

static const char *const s_unsupported[] = {"MethodNotFound", "NotSupported", "NotImplemented",
                                            NULL};

/* <snapshotId><id>SSID</id></snapshotId> after the FCD's id and datastore. */
static int s_put_snapshot(vb_buf_t *b, const vb_vs_fcd_t *fcd, const char *snapshot_id)
{
    int rc = s_put_fcd(b, fcd->id, fcd->ds_ref);
    if (rc == 0)
        rc = vb_buf_puts(b, "<snapshotId>");
    if (rc == 0)
        rc = vb_buf_put_elem(b, "id", snapshot_id);
    if (rc == 0)
        rc = vb_buf_puts(b, "</snapshotId>");
    return rc;
}

/* RetrieveSnapshotDetails: the snapshot's changedBlockTrackingId (caller owns). */
static int s_cbt_id(vb_vsphere_t *self, const vb_vs_fcd_t *fcd, const char *snapshot_id, char **out)
{
    vb_buf_t args = {0};
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    int rc = s_put_snapshot(&args, fcd, snapshot_id);
    if (rc == 0)
        rc = vb_vs_call(self, "RetrieveSnapshotDetails", "VcenterVStorageObjectManager",
                        self->vstorage_object_manager, args.data, &doc, &resp);
    if (rc != 0 && vb_vs_fault_in(self->last_fault, s_unsupported))
        rc = vb_error_set(VB_EUNSUPPORTED,
                          "changed block tracking is unavailable for First Class Disk %s: the "
                          "server does not implement RetrieveSnapshotDetails",
                          fcd->name);
    const char *id = vb_xml_path_text(resp, "returnval/changedBlockTrackingId");
    if (rc == 0 && (!id || !*id))
        rc = vb_error_set(VB_EUNSUPPORTED,
                          "changed block tracking is off for First Class Disk %s: each backup of "
                          "it is full",
                          fcd->name);
    if (rc == 0 && !(*out = strdup(id)))
        rc = vb_error_set(VB_ENOMEM, "out of memory");
    vb_xml_doc_destroy(&doc);
    vb_buf_free(&args);
    return rc;
}

/* One VstorageObjectVCenterQueryChangedDiskAreas from pos; *next_out where its span ends. */
static int s_cbt_span(vb_vsphere_t *self, const vb_vs_fcd_t *fcd, const char *snapshot_id,
                      const char *change_id, uint64_t pos, vb_extent_list_t *out,
                      uint64_t *next_out)
{
    vb_buf_t args = {0};
    char what[320];
    int rc = s_put_snapshot(&args, fcd, snapshot_id);
    if (rc == 0)
        rc = vb_buf_printf(&args, "<startOffset>%llu</startOffset>", (unsigned long long)pos);
    if (rc == 0)
        rc = vb_buf_put_elem(&args, "changeId", change_id);
    snprintf(what, sizeof what, "First Class Disk %s", fcd->name);
    if (rc == 0)
        rc = vb_vs_changed_span(self, "VstorageObjectVCenterQueryChangedDiskAreas",
                                "VcenterVStorageObjectManager", self->vstorage_object_manager,
                                args.data, what, change_id, pos, out, next_out);
    vb_buf_free(&args);
    return rc;
}

int vb_vs_fcd_changed_areas(vb_vsphere_t *self, const char *name, const char *snapshot_id,
                            uint64_t start, const char *change_id, vb_extent_list_t *out,
                            char **new_change_id_out)
{
    vb_vs_fcd_t fcd = {0};
    char *cbt_id = NULL;
    if (new_change_id_out)
        *new_change_id_out = NULL;
    if (!change_id || !*change_id)
        change_id = "*";
    int rc = vb_vs_fcd_find(self, name, &fcd);
    if (rc == 0 && (!snapshot_id || !*snapshot_id))
        rc =
            vb_error_set(VB_EINVAL, "changed areas of First Class Disk %s need its snapshot", name);
    if (rc == 0)
        rc = s_cbt_id(self, &fcd, snapshot_id, &cbt_id);
    for (uint64_t pos = start; rc == 0 && pos < fcd.capacity;)
        rc = s_cbt_span(self, &fcd, snapshot_id, change_id, pos, out, &pos);
    if (rc == 0 && new_change_id_out) {
        *new_change_id_out = cbt_id;
        cbt_id = NULL;
    }
    free(cbt_id);
    vb_vs_fcd_clear(&fcd);
    return rc;
}
