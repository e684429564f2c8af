/* vs_inventory — the PropertyCollector over a ContainerView, and the inventory built from it. */
#include <stdlib.h>
#include <string.h>

#include "disk/disk_uri.h"
#include "log.h"
#include "vsphere/vs_internal.h"

const vb_xml_node_t *vb_vs_prop(const vb_xml_node_t *oc, const char *name)
{
    for (const vb_xml_node_t *p = vb_xml_child(oc, "propSet"); p; p = vb_xml_next(p, "propSet")) {
        const char *n = vb_xml_path_text(p, "name");
        if (n && strcmp(n, name) == 0)
            return vb_xml_child(p, "val");
    }
    return NULL;
}

int vb_vs_walk_result(const vb_xml_node_t *result, vb_vs_object_fn fn, void *ud, char **token_out)
{
    *token_out = NULL;
    if (!result)
        return 0; /* an empty answer has no returnval */
    /* The token first: a caller that stops early still has it to cancel the retrieval. */
    const char *tok = vb_xml_path_text(result, "token");
    if (tok && *tok && !(*token_out = strdup(tok)))
        return vb_error_set(VB_ENOMEM, "out of memory");
    for (const vb_xml_node_t *o = vb_xml_child(result, "objects"); o;
         o = vb_xml_next(o, "objects")) {
        for (const vb_xml_node_t *m = vb_xml_child(o, "missingSet"); m;
             m = vb_xml_next(m, "missingSet")) {
            const char *t = vb_xml_xsi_type(vb_xml_path(m, "fault/fault"));
            if (t && strcmp(t, "NotAuthenticated") == 0)
                return vb_error_set(VB_EAUTH, "NotAuthenticated reading %s",
                                    vb_xml_path_text(o, "obj"));
            VB_LOG_WARN("vsphere", "property missing obj=%s path=%s fault=%s",
                        vb_xml_path_text(o, "obj"), vb_xml_path_text(m, "path"), t ? t : "?");
        }
        int rc = fn(ud, o);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* <propSet> entries: paths is comma-separated. */
static int s_put_propspec(vb_buf_t *b, const char *type, const char *paths)
{
    int rc = vb_buf_puts(b, "<propSet>");
    if (rc == 0)
        rc = vb_buf_put_elem(b, "type", type);
    if (rc == 0)
        rc = vb_buf_puts(b, "<all>false</all>");
    for (const char *p = paths; rc == 0 && *p;) {
        size_t n = strcspn(p, ",");
        char *one = strndup(p, n);
        if (!one)
            return vb_error_set(VB_ENOMEM, "out of memory");
        rc = vb_buf_put_elem(b, "pathSet", one);
        free(one);
        p += n + (p[n] == ',');
    }
    if (rc == 0)
        rc = vb_buf_puts(b, "</propSet>");
    return rc;
}

/* A best-effort PropertyCollector call whose failure must not replace the message of the
 * failure that led to it. */
static int s_call_quiet(vb_vsphere_t *self, const char *method, const char *args)
{
    char saved[1024];
    int code = vb_error_code();
    snprintf(saved, sizeof saved, "%s", vb_error_msg());
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    vb_soap_fault_t fault = {0};
    int rc = vb_soap_call(self->soap, method, "PropertyCollector", self->property_collector, args,
                          &doc, &resp, &fault);
    vb_soap_fault_clear(&fault);
    vb_xml_doc_destroy(&doc);
    vb_error_set(code, "%s", saved);
    return rc;
}

/* Runs RetrievePropertiesEx with a prepared specSet and follows the continuation tokens. */
static int s_retrieve(vb_vsphere_t *self, const char *spec, vb_vs_object_fn fn, void *ud)
{
    vb_buf_t args = {0};
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    char *token = NULL;
    unsigned pages = 1;
    int rc = vb_buf_printf(&args, "%s<options><maxObjects>%d</maxObjects></options>", spec,
                           self->page_objects);
    if (rc == 0)
        rc = vb_vs_call(self, "RetrievePropertiesEx", "PropertyCollector", self->property_collector,
                        args.data, &doc, &resp);
    while (rc == 0) {
        rc = vb_vs_walk_result(vb_xml_child(resp, "returnval"), fn, ud, &token);
        vb_xml_doc_destroy(&doc);
        if (rc != 0 || !token)
            break;
        args.len = 0;
        pages++;
        rc = vb_buf_put_elem(&args, "token", token);
        free(token);
        token = NULL;
        if (rc == 0)
            rc = vb_vs_call(self, "ContinueRetrievePropertiesEx", "PropertyCollector",
                            self->property_collector, args.data, &doc, &resp);
    }
    if (rc != 0 && token) {
        /* Stopped early: let the server drop the rest of the result. */
        args.len = 0;
        vb_xml_doc_destroy(&doc);
        if (vb_buf_put_elem(&args, "token", token) == 0 &&
            s_call_quiet(self, "CancelRetrievePropertiesEx", args.data) != 0)
            VB_LOG_DEBUG("vsphere", "CancelRetrievePropertiesEx failed");
    }
    free(token);
    vb_xml_doc_destroy(&doc);
    vb_buf_free(&args);
    if (rc == 0 && pages > 1)
        VB_LOG_DEBUG("vsphere", "retrieve pages=%u max_objects=%d", pages, self->page_objects);
    return rc;
}

static int s_create_view(vb_vsphere_t *self, const char *const *types, char **view_out)
{
    vb_buf_t args = {0};
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    int rc = vb_buf_put_moref(&args, "container", "Folder", self->root_folder);
    for (size_t i = 0; rc == 0 && types[i]; i++)
        rc = vb_buf_put_elem(&args, "type", types[i]);
    if (rc == 0)
        rc = vb_buf_puts(&args, "<recursive>true</recursive>");
    if (rc == 0)
        rc = vb_vs_call(self, "CreateContainerView", "ViewManager", self->view_manager, args.data,
                        &doc, &resp);
    if (rc == 0) {
        const char *v = vb_xml_path_text(resp, "returnval");
        if (!v || !*v)
            rc = vb_error_set(VB_EPROTO, "CreateContainerView answered no view");
        else if (!(*view_out = strdup(v)))
            rc = vb_error_set(VB_ENOMEM, "out of memory");
    }
    vb_xml_doc_destroy(&doc);
    vb_buf_free(&args);
    return rc;
}

static void s_destroy_view(vb_vsphere_t *self, const char *view)
{
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    if (vb_vs_call(self, "DestroyView", "ContainerView", view, NULL, &doc, &resp) != 0)
        VB_LOG_DEBUG("vsphere", "DestroyView failed: %s", vb_error_msg());
    vb_xml_doc_destroy(&doc);
}

static int s_retrieve_view_once(vb_vsphere_t *self, const char *const *types,
                                const char *const *paths, vb_vs_object_fn fn, void *ud)
{
    char *view = NULL;
    vb_buf_t spec = {0};
    int rc = s_create_view(self, types, &view);
    if (rc != 0)
        return rc;
    rc = vb_buf_puts(&spec, "<specSet>");
    for (size_t i = 0; rc == 0 && types[i]; i++)
        rc = s_put_propspec(&spec, types[i], paths[i]);
    if (rc == 0)
        rc = vb_buf_puts(&spec, "<objectSet>");
    if (rc == 0)
        rc = vb_buf_put_moref(&spec, "obj", "ContainerView", view);
    if (rc == 0)
        rc = vb_buf_puts(&spec, "<skip>true</skip><selectSet xsi:type=\"TraversalSpec\">"
                                "<name>traverseView</name><type>ContainerView</type>"
                                "<path>view</path><skip>false</skip></selectSet></objectSet>"
                                "</specSet>");
    if (rc == 0)
        rc = s_retrieve(self, spec.data, fn, ud);
    s_destroy_view(self, view);
    free(view);
    vb_buf_free(&spec);
    return rc;
}

int vb_vs_retrieve_view(vb_vsphere_t *self, const char *const *types, const char *const *paths,
                        vb_vs_object_fn fn, void *ud)
{
    int rc = s_retrieve_view_once(self, types, paths, fn, ud);
    if (rc == VB_EAUTH) {
        /* Some servers answer an expired session with NotAuthenticated inside missingSet
         * rather than as a fault. */
        rc = vb_vs_relogin(self);
        if (rc == 0)
            rc = s_retrieve_view_once(self, types, paths, fn, ud);
    }
    return rc;
}

int vb_vs_retrieve_object(vb_vsphere_t *self, const char *type, const char *value,
                          const char *paths, vb_vs_object_fn fn, void *ud)
{
    vb_buf_t spec = {0};
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        spec.len = 0;
        rc = vb_buf_puts(&spec, "<specSet>");
        if (rc == 0)
            rc = s_put_propspec(&spec, type, paths);
        if (rc == 0)
            rc = vb_buf_puts(&spec, "<objectSet>");
        if (rc == 0)
            rc = vb_buf_put_moref(&spec, "obj", type, value);
        if (rc == 0)
            rc = vb_buf_puts(&spec, "<skip>false</skip></objectSet></specSet>");
        if (rc == 0)
            rc = s_retrieve(self, spec.data, fn, ud);
        if (rc != VB_EAUTH || attempt == 1)
            break;
        rc = vb_vs_relogin(self);
        if (rc != 0)
            break;
    }
    vb_buf_free(&spec);
    return rc;
}

/* ---- finding a VM ---- */

typedef struct {
    const char *want;
    char *id;
    int matches;
} s_find_t;

static int s_find_cb(void *ud, const vb_xml_node_t *oc)
{
    s_find_t *f = ud;
    const char *id = vb_xml_path_text(oc, "obj");
    const vb_xml_node_t *nm = vb_vs_prop(oc, "name");
    if (!id)
        return 0;
    if (strcmp(id, f->want) == 0 || (nm && strcmp(nm->text, f->want) == 0)) {
        f->matches++;
        if (!f->id && !(f->id = strdup(id)))
            return vb_error_set(VB_ENOMEM, "out of memory");
    }
    return 0;
}

int vb_vs_find_vm(vb_vsphere_t *self, const char *vm, char **id_out)
{
    static const char *const types[] = {"VirtualMachine", NULL};
    static const char *const paths[] = {"name", NULL};
    s_find_t f = {.want = vm};
    *id_out = NULL;
    int rc = vb_vs_retrieve_view(self, types, paths, s_find_cb, &f);
    if (rc == 0 && f.matches == 0)
        rc = vb_error_set(VB_ENOTFOUND, "no VM named '%s' on %s", vm, vb_soap_base_url(self->soap));
    else if (rc == 0 && f.matches > 1)
        rc = vb_error_set(VB_EINVAL, "%d VMs are named '%s'; give the VM's id", f.matches, vm);
    if (rc == 0) {
        *id_out = f.id;
        f.id = NULL;
    }
    free(f.id);
    return rc;
}

/* ---- the inventory builder ---- */

typedef struct {
    char *ref;
    char *name;
} s_ref_t;

typedef struct {
    char *ref;
    char **disk_ds_refs; /* per disk, the backing's datastore reference (or NULL) */
    size_t ndisks;
    char *host_ref;
} s_vmx_t;

struct vb_vs_builder {
    vb_inventory_t *inv;
    size_t vm_cap, ds_cap, host_cap;
    s_vmx_t *vmx;           /* parallel to inv->vms */
    char **ds_refs;         /* parallel to inv->datastores */
    char **host_refs;       /* parallel to inv->hosts */
    size_t nvm, nds, nhost; /* entries of the side tables, kept past finish */
};

vb_vs_builder_t *vb_vs_builder_new(void)
{
    vb_vs_builder_t *b = calloc(1, sizeof *b);
    if (b)
        b->inv = calloc(1, sizeof *b->inv);
    if (!b || !b->inv) {
        free(b);
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    return b;
}

void vb_vs_builder_destroy(vb_vs_builder_t **b_p)
{
    if (!b_p || !*b_p)
        return;
    vb_vs_builder_t *b = *b_p;
    for (size_t i = 0; i < b->nvm; i++) {
        free(b->vmx[i].ref);
        free(b->vmx[i].host_ref);
        for (size_t d = 0; d < b->vmx[i].ndisks; d++)
            free(b->vmx[i].disk_ds_refs[d]);
        free(b->vmx[i].disk_ds_refs);
    }
    free(b->vmx);
    for (size_t i = 0; i < b->nds; i++)
        free(b->ds_refs[i]);
    free(b->ds_refs);
    for (size_t i = 0; i < b->nhost; i++)
        free(b->host_refs[i]);
    free(b->host_refs);
    vb_inventory_free(&b->inv);
    free(b);
    *b_p = NULL;
}

/* Grows a parallel pair of arrays to hold one more element. */
static int s_grow(void **a, size_t elem, void **b, size_t belem, size_t count, size_t *cap)
{
    if (count < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *na = realloc(*a, nc * elem);
    if (!na)
        return vb_error_set(VB_ENOMEM, "out of memory");
    *a = na;
    void *nb = realloc(*b, nc * belem);
    if (!nb)
        return vb_error_set(VB_ENOMEM, "out of memory");
    *b = nb;
    memset((char *)*a + count * elem, 0, (nc - count) * elem);
    memset((char *)*b + count * belem, 0, (nc - count) * belem);
    *cap = nc;
    return 0;
}

static int s_dup(const char *s, char **out)
{
    *out = NULL;
    if (!s)
        return 0;
    *out = strdup(s);
    return *out ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
}

static int s_strv_add(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv)
        return vb_error_set(VB_ENOMEM, "out of memory");
    *v = nv;
    if (s_dup(s, &nv[*n]) != 0)
        return VB_ENOMEM;
    (*n)++;
    return 0;
}

/* Snapshot tree, depth first: a parent before its children, so a chain reads oldest first. */
static int s_add_snapshots(vb_inv_vm_t *vm, const vb_xml_node_t *list_parent, const char *elem,
                           int depth)
{
    if (depth > 64)
        return vb_error_set(VB_EPROTO, "snapshot tree of VM %s deeper than 64", vm->name);
    for (const vb_xml_node_t *t = vb_xml_child(list_parent, elem); t; t = vb_xml_next(t, elem)) {
        const char *name = vb_xml_path_text(t, "name");
        int rc = s_strv_add(&vm->snapshots, &vm->snapshot_count, name ? name : "");
        if (rc == 0)
            rc = s_add_snapshots(vm, t, "childSnapshotList", depth + 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* "[ds name] path": the datastore name between the brackets. */
static char *s_bracket_name(const char *file)
{
    if (!file || file[0] != '[')
        return NULL;
    const char *end = strchr(file, ']');
    return end ? strndup(file + 1, (size_t)(end - file - 1)) : NULL;
}

static int s_add_disk(vb_inv_vm_t *vm, s_vmx_t *x, const vb_xml_node_t *dev)
{
    const vb_xml_node_t *backing = vb_xml_child(dev, "backing");
    const char *file = vb_xml_path_text(backing, "fileName");
    int64_t key = 0, cap = 0;
    int rc = vb_xml_i64(vb_xml_child(dev, "key"), "VirtualDisk key", &key);
    if (rc != 0)
        return rc;
    const vb_xml_node_t *cb = vb_xml_child(dev, "capacityInBytes");
    if (cb) {
        rc = vb_xml_i64(cb, "capacityInBytes", &cap);
    } else {
        rc = vb_xml_i64(vb_xml_child(dev, "capacityInKB"), "capacityInKB", &cap);
        cap *= 1024;
    }
    if (rc != 0)
        return rc;
    if (cap < 0)
        return vb_error_set(VB_EPROTO, "disk %lld of VM %s has a negative capacity", (long long)key,
                            vm->name);
    vb_inv_disk_t *nd = realloc(vm->disks, (vm->disk_count + 1) * sizeof *nd);
    if (!nd)
        return vb_error_set(VB_ENOMEM, "out of memory");
    vm->disks = nd;
    char **nr = realloc(x->disk_ds_refs, (vm->disk_count + 1) * sizeof *nr);
    if (!nr)
        return vb_error_set(VB_ENOMEM, "out of memory");
    x->disk_ds_refs = nr;
    vb_inv_disk_t *d = &vm->disks[vm->disk_count];
    memset(d, 0, sizeof *d);
    nr[vm->disk_count] = NULL;
    vm->disk_count++;
    x->ndisks = vm->disk_count;
    if (asprintf(&d->key, "%lld", (long long)key) < 0) {
        d->key = NULL;
        return vb_error_set(VB_ENOMEM, "out of memory");
    }
    d->capacity = (uint64_t)cap;
    const char *parent = vb_xml_path_text(backing, "parent/fileName");
    rc = s_dup(vb_xml_path_text(dev, "deviceInfo/label"), &d->name);
    if (rc == 0)
        rc = s_dup(file, &d->path);
    if (rc == 0)
        rc = s_dup(vb_xml_path_text(backing, "changeId"), &d->change_id);
    if (rc == 0)
        rc = s_dup(parent, &d->parent);
    if (rc == 0)
        rc = s_dup(vb_xml_path_text(backing, "datastore"), &nr[vm->disk_count - 1]);
    if (rc != 0)
        return rc;
    d->datastore = s_bracket_name(file);
    d->encrypted = vb_xml_child(backing, "keyId") != NULL;
    if (parent)
        vm->linked_clone = true;
    return 0;
}

static int s_add_vm(vb_vs_builder_t *b, const char *ref, const vb_xml_node_t *oc)
{
    vb_inventory_t *inv = b->inv;
    int rc = s_grow((void **)&inv->vms, sizeof *inv->vms, (void **)&b->vmx, sizeof *b->vmx,
                    inv->vm_count, &b->vm_cap);
    if (rc != 0)
        return rc;
    vb_inv_vm_t *vm = &inv->vms[inv->vm_count];
    s_vmx_t *x = &b->vmx[inv->vm_count];
    inv->vm_count++;
    b->nvm = inv->vm_count;
    const vb_xml_node_t *name = vb_vs_prop(oc, "name");
    rc = s_dup(name ? name->text : ref, &vm->name);
    if (rc == 0)
        rc = s_dup(ref, &vm->id);
    if (rc == 0)
        rc = s_dup(ref, &x->ref);
    if (rc == 0) {
        const vb_xml_node_t *h = vb_vs_prop(oc, "runtime.host");
        rc = s_dup(h ? h->text : NULL, &x->host_ref);
    }
    const vb_xml_node_t *devs = vb_vs_prop(oc, "config.hardware.device");
    for (const vb_xml_node_t *d = vb_xml_child(devs, NULL); rc == 0 && d;
         d = vb_xml_next(d, NULL)) {
        const char *t = vb_xml_xsi_type(d);
        if (t && strcmp(t, "VirtualDisk") == 0)
            rc = s_add_disk(vm, x, d);
    }
    const vb_xml_node_t *snap = vb_vs_prop(oc, "snapshot");
    if (rc == 0 && snap)
        rc = s_add_snapshots(vm, snap, "rootSnapshotList", 0);
    if (rc != 0)
        return vb_error_prefix(rc, "VM %s", ref);
    return 0;
}

static int s_add_datastore(vb_vs_builder_t *b, const char *ref, const vb_xml_node_t *oc)
{
    vb_inventory_t *inv = b->inv;
    int rc = s_grow((void **)&inv->datastores, sizeof *inv->datastores, (void **)&b->ds_refs,
                    sizeof *b->ds_refs, inv->datastore_count, &b->ds_cap);
    if (rc != 0)
        return rc;
    vb_inv_datastore_t *ds = &inv->datastores[inv->datastore_count];
    char **dref = &b->ds_refs[inv->datastore_count];
    inv->datastore_count++;
    b->nds = inv->datastore_count;
    const vb_xml_node_t *name = vb_vs_prop(oc, "name");
    const vb_xml_node_t *type = vb_vs_prop(oc, "summary.type");
    const vb_xml_node_t *url = vb_vs_prop(oc, "summary.url");
    rc = s_dup(name ? name->text : ref, &ds->name);
    if (rc == 0)
        rc = s_dup(type ? type->text : "", &ds->type);
    if (rc == 0)
        rc = s_dup(url ? url->text : NULL, &ds->url);
    if (rc == 0)
        rc = s_dup(ref, dref);
    /* A VMFS volume on a SAN LUN: its (first) extent's disk is the LUN's canonical name, the
     * one an agent lists in `luns` when its proxy sees it. vSAN, vVol and NFS have no extent. */
    const vb_xml_node_t *info = vb_vs_prop(oc, "info");
    const char *info_type = vb_xml_xsi_type(info);
    if (rc == 0 && info_type && strcmp(info_type, "VmfsDatastoreInfo") == 0)
        rc = s_dup(vb_xml_path_text(info, "vmfs/extent/diskName"), &ds->lun);
    int64_t free_space = 0;
    const vb_xml_node_t *fs = vb_vs_prop(oc, "summary.freeSpace");
    if (rc == 0 && fs && vb_xml_i64(fs, "summary.freeSpace", &free_space) == 0 && free_space > 0)
        ds->free_space = (uint64_t)free_space;
    /* host: ArrayOfDatastoreHostMount; every DatastoreHostMount has key = the HostSystem.
     * The references are resolved to names in finish. */
    const vb_xml_node_t *mounts = vb_vs_prop(oc, "host");
    for (const vb_xml_node_t *m = vb_xml_child(mounts, NULL); rc == 0 && m;
         m = vb_xml_next(m, NULL)) {
        const char *key = vb_xml_path_text(m, "key");
        const char *mounted = vb_xml_path_text(m, "mountInfo/mounted");
        if (key && !(mounted && strcmp(mounted, "false") == 0))
            rc = s_strv_add(&ds->hosts, &ds->host_count, key);
    }
    return rc;
}

static int s_add_host(vb_vs_builder_t *b, const char *ref, const vb_xml_node_t *oc)
{
    vb_inventory_t *inv = b->inv;
    int rc = s_grow((void **)&inv->hosts, sizeof *inv->hosts, (void **)&b->host_refs,
                    sizeof *b->host_refs, inv->host_count, &b->host_cap);
    if (rc != 0)
        return rc;
    vb_inv_host_t *h = &inv->hosts[inv->host_count];
    char **href = &b->host_refs[inv->host_count];
    inv->host_count++;
    b->nhost = inv->host_count;
    const vb_xml_node_t *name = vb_vs_prop(oc, "name");
    rc = s_dup(name ? name->text : ref, &h->name);
    if (rc == 0)
        rc = s_dup(ref, href);
    return rc;
}

int vb_vs_builder_add(void *ud, const vb_xml_node_t *oc)
{
    vb_vs_builder_t *b = ud;
    const vb_xml_node_t *obj = vb_xml_child(oc, "obj");
    const char *type = vb_xml_attr(obj, NULL, "type");
    if (!obj || !type || !obj->text[0])
        return vb_error_set(VB_EPROTO, "ObjectContent without an object reference");
    if (strcmp(type, "VirtualMachine") == 0)
        return s_add_vm(b, obj->text, oc);
    if (strcmp(type, "Datastore") == 0)
        return s_add_datastore(b, obj->text, oc);
    if (strcmp(type, "HostSystem") == 0)
        return s_add_host(b, obj->text, oc);
    return 0; /* other types are not part of the inventory */
}

static const char *s_lookup(char **refs, size_t n, const char *ref,
                            const char *(*name)(size_t, void *), void *ud)
{
    for (size_t i = 0; ref && i < n; i++)
        if (refs[i] && strcmp(refs[i], ref) == 0)
            return name(i, ud);
    return NULL;
}

static const char *s_host_name(size_t i, void *ud)
{
    return ((vb_inventory_t *)ud)->hosts[i].name;
}

static const char *s_ds_name(size_t i, void *ud)
{
    return ((vb_inventory_t *)ud)->datastores[i].name;
}

int vb_vs_builder_finish(vb_vs_builder_t *b, vb_inventory_t **out)
{
    vb_inventory_t *inv = b->inv;
    inv->provider = "vSphere";
    for (size_t i = 0; i < inv->datastore_count; i++) {
        vb_inv_datastore_t *ds = &inv->datastores[i];
        for (size_t h = 0; h < ds->host_count; h++) {
            const char *n = s_lookup(b->host_refs, inv->host_count, ds->hosts[h], s_host_name, inv);
            if (n) {
                char *c = strdup(n);
                if (!c)
                    return vb_error_set(VB_ENOMEM, "out of memory");
                free(ds->hosts[h]);
                ds->hosts[h] = c;
            }
        }
    }
    for (size_t i = 0; i < inv->vm_count; i++) {
        vb_inv_vm_t *vm = &inv->vms[i];
        const char *hn =
            s_lookup(b->host_refs, inv->host_count, b->vmx[i].host_ref, s_host_name, inv);
        if (hn && s_dup(hn, &vm->host) != 0)
            return VB_ENOMEM;
        for (size_t d = 0; d < vm->disk_count; d++) {
            const char *dn = s_lookup(b->ds_refs, inv->datastore_count, b->vmx[i].disk_ds_refs[d],
                                      s_ds_name, inv);
            if (dn) {
                free(vm->disks[d].datastore);
                if (s_dup(dn, &vm->disks[d].datastore) != 0)
                    return VB_ENOMEM;
            }
        }
    }
    /* Hand the inventory over; the side tables stay with the builder for destroy. */
    *out = inv;
    b->inv = NULL;
    return 0;
}

/* Appends s percent-encoded for a disk URI's query value ('/' and ':' stay readable). */
static int s_put_value(vb_buf_t *b, const char *s)
{
    char *esc = vb_disk_uri_escape(s, "/:");
    int rc = esc ? vb_buf_puts(b, esc) : VB_ENOMEM;
    free(esc);
    return rc;
}

/* Appends "&key=" (or "?key=" first) and the value percent-encoded, when rc is still 0. */
static int s_put_param(vb_buf_t *b, int rc, const char *key, const char *value)
{
    if (rc == 0)
        rc = vb_buf_printf(b, "%c%s=", strchr(b->data ? b->data : "", '?') ? '&' : '?', key);
    if (rc == 0)
        rc = s_put_value(b, value);
    return rc;
}

/* The vsfile:// URI of a disk's flat file (disk.h): the server, the file, and the settings an
 * agent needs to log in and verify TLS itself. The password stays in its file. */
static int s_vsfile_uri(vb_vsphere_t *self, const vb_inv_disk_t *d, char **out)
{
    *out = NULL;
    const char *base = vb_soap_base_url(self->soap);
    if (!self->password_file || !d->path || strncmp(base, "https://", 8) != 0)
        return 0; /* no way for an agent to log in (password given inline), or nothing to read */
    char *flat = vb_vsphere_flat_path(d->path), *ds = NULL, *path = NULL;
    if (!flat)
        return VB_ENOMEM;
    int rc = vb_vsphere_split_ds_path(flat, &ds, &path);
    free(flat);
    if (rc != 0) {
        VB_LOG_WARN("vsphere", "no-file-route disk=\"%s\" reason=\"%s\"", d->path, vb_error_msg());
        return 0;
    }
    const char *dc = NULL;
    if (vb_vs_datacenter_of(self, ds, &dc) != 0)
        dc = NULL; /* the agent's session looks it up (or names the problem) */
    vb_buf_t b = {NULL, 0, 0, 8192};
    rc = vb_buf_printf(&b, "vsfile://%s/", base + 8);
    rc = s_put_param(&b, rc, "ds", ds);
    rc = s_put_param(&b, rc, "path", path);
    if (dc)
        rc = s_put_param(&b, rc, "dc", dc);
    rc = s_put_param(&b, rc, "user", self->user);
    rc = s_put_param(&b, rc, "password-file", self->password_file);
    if (self->ca_file)
        rc = s_put_param(&b, rc, "ca-file", self->ca_file);
    else if (self->thumbprint)
        rc = s_put_param(&b, rc, "thumbprint", self->thumbprint);
    free(ds);
    free(path);
    if (rc) {
        vb_buf_free(&b);
        return rc;
    }
    *out = b.data; /* taken over */
    return 0;
}

/* The vddk:// URI of a VM's disk (disk.h): VixDiskLib_ConnectEx to the vCenter with the VM's
 * moref as vmxSpec, the server's SHA-256 thumbprint and the user whose password is in the
 * password file (never the password), then VixDiskLib_Open of the disk's datastore path. The
 * snapshot's moref is added per job (uri_at_snapshot). A First Class Disk (fcd_ds_ref: its
 * datastore's moref) connects with the vStorageObject spec instead: fcd= its id, datastore= that
 * moref, and per job its snapshot id. NULL when an agent could not log in (no password file) or
 * the thumbprint is unknown. */
static int s_vddk_uri(vb_vsphere_t *self, const vb_inv_vm_t *vm, const vb_inv_disk_t *d,
                      const char *fcd_ds_ref, char **out)
{
    *out = NULL;
    const char *base = vb_soap_base_url(self->soap);
    const char *thumb = self->thumbprint ? self->thumbprint
                                         : vb_soap_server_thumbprint(self->soap);
    if (!self->password_file || !d->path || !vm->id || strncmp(base, "https://", 8) != 0)
        return 0;
    if (!thumb) {
        VB_LOG_WARN("vsphere", "no-vddk-route disk=\"%s\" reason=\"server thumbprint unknown\"",
                    d->path);
        return 0;
    }
    char *user = vb_disk_uri_escape(self->user, NULL), *spec = NULL;
    if (!user || asprintf(&spec, "moref=%s", vm->id) < 0) {
        free(user);
        return vb_error_set(VB_ENOMEM, "out of memory");
    }
    vb_buf_t b = {NULL, 0, 0, 8192};
    int rc = vb_buf_printf(&b, "vddk://%s@%s/", user, base + 8);
    rc = s_put_param(&b, rc, "file", d->path);
    if (fcd_ds_ref) {
        rc = s_put_param(&b, rc, "fcd", vm->id);
        rc = s_put_param(&b, rc, "datastore", fcd_ds_ref);
    } else {
        rc = s_put_param(&b, rc, "vm", spec);
    }
    rc = s_put_param(&b, rc, "thumbprint", thumb);
    rc = s_put_param(&b, rc, "password-file", self->password_file);
    if (vm->host)
        rc = s_put_param(&b, rc, "esx", vm->host);
    free(user);
    free(spec);
    if (rc) {
        vb_buf_free(&b);
        return rc;
    }
    *out = b.data; /* taken over */
    return 0;
}

/* What this provider can do with a disk: backups read it and restores write into it through
 * VixDiskLib in every mode (vddk routes, for agents with VDDK); backups may also read its flat
 * file over the datastore file service (HTTPS, so in the NBDSSL slot, route mode "vsfile"),
 * which is read-only: a restore has no route but VixDiskLib's. */
static int s_routes(vb_vsphere_t *self, const vb_inv_vm_t *vm, vb_inv_disk_t *d,
                    const char *fcd_ds_ref)
{
    char *uri = NULL, *vddk = NULL;
    int rc = 0;
    /* An FCD's snapshot is no file the file service could name: VixDiskLib only. */
    if (!vm->is_fcd)
        rc = s_vsfile_uri(self, d, &uri);
    if (rc == 0)
        rc = vb_inv_disk_set_route(d, VB_OP_BACKUP, VB_TRANSPORT_NBDSSL, "vsfile", uri);
    if (rc == 0)
        rc = s_vddk_uri(self, vm, d, fcd_ds_ref, &vddk);
    for (int m = 0; rc == 0 && m < VB_TRANSPORT_COUNT; m++) {
        rc = vb_inv_disk_set_vddk_route(d, VB_OP_BACKUP, (vb_transport_t)m, vddk);
        if (rc == 0)
            rc = vb_inv_disk_set_vddk_route(d, VB_OP_RESTORE, (vb_transport_t)m, vddk);
    }
    free(uri);
    free(vddk);
    return rc;
}

/* ---- First Class Disks: after the VMs, each as an object of one disk (key: its id) ---- */

typedef struct {
    vb_inventory_t *inv;
    size_t cap;
    const vb_inv_datastore_t *ds;
} s_fcd_add_t;

static int s_add_fcd(void *ud, const vb_vs_fcd_t *f)
{
    s_fcd_add_t *a = ud;
    vb_inventory_t *inv = a->inv;
    if (inv->vm_count == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 16;
        vb_inv_vm_t *nv = realloc(inv->vms, nc * sizeof *nv);
        if (!nv)
            return vb_error_set(VB_ENOMEM, "out of memory");
        inv->vms = nv;
        a->cap = nc;
    }
    vb_inv_vm_t *vm = &inv->vms[inv->vm_count];
    memset(vm, 0, sizeof *vm);
    inv->vm_count++;
    vm->is_fcd = true;
    if (!(vm->disks = calloc(1, sizeof *vm->disks)))
        return vb_error_set(VB_ENOMEM, "out of memory");
    vm->disk_count = 1;
    vb_inv_disk_t *d = &vm->disks[0];
    d->capacity = f->capacity;
    /* an FCD has no host of its own: the first host that mounts its datastore */
    int rc = s_dup(f->name, &vm->name);
    if (rc == 0)
        rc = s_dup(f->id, &vm->id);
    if (rc == 0 && a->ds->host_count)
        rc = s_dup(a->ds->hosts[0], &vm->host);
    if (rc == 0)
        rc = s_dup(f->id, &d->key);
    if (rc == 0)
        rc = s_dup(f->name, &d->name);
    if (rc == 0)
        rc = s_dup(a->ds->name, &d->datastore);
    if (rc == 0)
        rc = s_dup(f->path, &d->path);
    return rc;
}

/* The datastore moref behind an FCD's datastore name (the builder's side table). */
static const char *s_ds_ref_of(const vb_vs_builder_t *b, const vb_inventory_t *inv,
                               const char *name)
{
    for (size_t i = 0; name && i < b->nds && i < inv->datastore_count; i++)
        if (strcmp(inv->datastores[i].name, name) == 0)
            return b->ds_refs[i];
    return NULL;
}

static int s_add_fcds(vb_vsphere_t *self, const vb_vs_builder_t *b, vb_inventory_t *inv)
{
    s_fcd_add_t a = {.inv = inv, .cap = inv->vm_count};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->nds && i < inv->datastore_count; i++) {
        a.ds = &inv->datastores[i];
        rc = vb_vs_fcd_list(self, b->ds_refs[i], s_add_fcd, &a);
    }
    return rc;
}

int vb_vsphere_inventory(vb_vsphere_t *self, vb_inventory_t **out)
{
    static const char *const types[] = {"HostSystem", "Datastore", "VirtualMachine", NULL};
    static const char *const paths[] = {
        "name",
        "name,summary.type,summary.url,summary.freeSpace,host,info",
        "name,runtime.host,config.hardware.device,snapshot",
        NULL,
    };
    *out = NULL;
    vb_vs_builder_t *b = vb_vs_builder_new();
    if (!b)
        return VB_ENOMEM;
    int rc = vb_vs_retrieve_view(self, types, paths, vb_vs_builder_add, b);
    if (rc == 0)
        rc = vb_vs_builder_finish(b, out);
    if (rc == 0)
        rc = s_add_fcds(self, b, *out);
    for (size_t i = 0; rc == 0 && i < (*out)->vm_count; i++) {
        vb_inv_vm_t *vm = &(*out)->vms[i];
        const char *fcd_ds = vm->is_fcd ? s_ds_ref_of(b, *out, vm->disks[0].datastore) : NULL;
        for (size_t k = 0; rc == 0 && k < vm->disk_count; k++)
            rc = s_routes(self, vm, &vm->disks[k], fcd_ds);
    }
    vb_vs_builder_destroy(&b);
    if (rc != 0)
        vb_inventory_free(out);
    return rc;
}
