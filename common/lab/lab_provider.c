/* lab_provider — the inventory provider (inventory.h) over a lab site directory. Every call
 * re-reads site.json under the site lock, so edits and `vbak lab mutate` are seen at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lab/lab.h"
#include "lab/site.h"

typedef struct {
    char *dir;
} s_lab_t;

static char *s_dup(json_t *obj, const char *key, int *rc)
{
    const char *v = vb_lab_json_str(obj, key);
    if (!v)
        return NULL;
    char *d = strdup(v);
    if (!d)
        *rc = vb_error_set(VB_ENOMEM, "out of memory");
    return d;
}

static char **s_strv(json_t *arr, size_t *count, int *rc)
{
    *count = 0;
    size_t n = json_array_size(arr);
    char **v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        *rc = vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(arr, i);
        if (!json_is_string(s))
            continue;
        v[*count] = strdup(json_string_value(s));
        if (!v[*count]) {
            *rc = vb_error_set(VB_ENOMEM, "out of memory");
            break;
        }
        (*count)++;
    }
    return v;
}

static void s_disk(json_t *d, vb_inv_disk_t *out, int *rc)
{
    out->key = s_dup(d, "key", rc);
    out->name = s_dup(d, "name", rc);
    out->datastore = s_dup(d, "datastore", rc);
    out->path = s_dup(d, "path", rc);
    out->capacity = (uint64_t)json_integer_value(json_object_get(d, "capacity"));
    out->encrypted = json_is_true(json_object_get(d, "encrypted"));
    out->change_id = s_dup(d, "change_id", rc);
    out->parent = s_dup(d, "parent", rc);
    out->nbd_uri = s_dup(d, "nbd_uri", rc);
    out->nbds_uri = s_dup(d, "nbds_uri", rc);
    out->nbd_uri6 = s_dup(d, "nbd_uri6", rc);
    out->nbds_uri6 = s_dup(d, "nbds_uri6", rc);
    out->file_uri = s_dup(d, "file_uri", rc);
    /* the lab serves every disk as it is, for reads and writes alike */
    const char *uris[VB_TRANSPORT_COUNT] = {out->file_uri, out->file_uri, out->nbds_uri,
                                            out->nbd_uri};
    for (int op = VB_OP_BACKUP; op <= VB_OP_RESTORE && !*rc; op++)
        for (int m = 0; m < VB_TRANSPORT_COUNT && !*rc; m++)
            *rc = vb_inv_disk_set_route(out, (vb_transport_op_t)op, (vb_transport_t)m,
                                        vb_transport_name((vb_transport_t)m), uris[m]);
}

static void s_object(vb_lab_site_t *site, json_t *o, bool fcd, vb_inv_vm_t *vm, int *rc)
{
    vm->name = s_dup(o, "name", rc);
    vm->id = s_dup(o, "id", rc);
    const char *host = vb_lab_object_host(site, o, fcd);
    vm->host = host ? strdup(host) : NULL;
    if (host && !vm->host)
        *rc = vb_error_set(VB_ENOMEM, "out of memory");
    vm->linked_clone = json_is_true(json_object_get(o, "linked_clone"));
    vm->is_fcd = fcd;
    json_t *snaps = json_object_get(o, "snapshots");
    vm->snapshots = calloc(json_array_size(snaps) + 1, sizeof *vm->snapshots);
    size_t n = vb_lab_object_disk_count(o, fcd);
    vm->disks = calloc(n + 1, sizeof *vm->disks);
    if (!vm->snapshots || !vm->disks) {
        *rc = vb_error_set(VB_ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < json_array_size(snaps); i++)
        vm->snapshots[vm->snapshot_count++] = s_dup(json_array_get(snaps, i), "name", rc);
    for (size_t i = 0; i < n; i++)
        s_disk(vb_lab_object_disk(o, fcd, i), &vm->disks[vm->disk_count++], rc);
}

static int s_build(vb_lab_site_t *site, vb_inventory_t *inv)
{
    json_t *root = vb_lab_site_root(site);
    json_t *hosts = json_object_get(root, "hosts"), *dss = json_object_get(root, "datastores");
    json_t *vms = json_object_get(root, "vms"), *fcds = json_object_get(root, "fcds");
    json_t *proxies = json_object_get(root, "proxies");
    int rc = 0;
    inv->hosts = calloc(json_array_size(hosts) + 1, sizeof *inv->hosts);
    inv->datastores = calloc(json_array_size(dss) + 1, sizeof *inv->datastores);
    inv->vms = calloc(json_array_size(vms) + json_array_size(fcds) + 1, sizeof *inv->vms);
    inv->proxies = calloc(json_array_size(proxies) + 1, sizeof *inv->proxies);
    if (!inv->hosts || !inv->datastores || !inv->vms || !inv->proxies)
        return vb_error_set(VB_ENOMEM, "out of memory");
    size_t i;
    json_t *o;
    json_array_foreach(hosts, i, o)
    {
        vb_inv_host_t *h = &inv->hosts[inv->host_count++];
        h->name = s_dup(o, "name", &rc);
        h->require_encryption = json_is_true(json_object_get(o, "require_encryption"));
    }
    json_array_foreach(dss, i, o)
    {
        vb_inv_datastore_t *d = &inv->datastores[inv->datastore_count++];
        d->name = s_dup(o, "name", &rc);
        d->type = s_dup(o, "type", &rc);
        d->url = s_dup(o, "url", &rc);
        d->lun = s_dup(o, "lun", &rc);
        d->hosts = s_strv(json_object_get(o, "hosts"), &d->host_count, &rc);
    }
    json_array_foreach(vms, i, o)
    {
        s_object(site, o, false, &inv->vms[inv->vm_count++], &rc);
    }
    json_array_foreach(fcds, i, o)
    {
        s_object(site, o, true, &inv->vms[inv->vm_count++], &rc);
    }
    json_array_foreach(proxies, i, o)
    {
        vb_inv_proxy_t *p = &inv->proxies[inv->proxy_count++];
        p->name = s_dup(o, "name", &rc);
        p->host = s_dup(o, "host", &rc);
        p->datastore = s_dup(o, "datastore", &rc);
        p->luns = s_strv(json_object_get(o, "luns"), &p->lun_count, &rc);
    }
    inv->require_encryption = json_is_true(json_object_get(root, "require_encryption"));
    return rc;
}

/* Tests: VBAK_TEST_INVENTORY_DELAY_MS stands in for a slow vCenter. */
static void s_test_delay(void)
{
    const char *v = getenv("VBAK_TEST_INVENTORY_DELAY_MS");
    char *end = NULL;
    long ms = v ? strtol(v, &end, 10) : 0;
    if (v && end != v && *end == '\0' && ms > 0 && ms <= 60000)
        nanosleep(&(struct timespec){ms / 1000, ms % 1000 * 1000000}, NULL);
}

static int s_inventory(vb_provider_t *self, vb_inventory_t **out)
{
    s_lab_t *lab = self->impl;
    s_test_delay();
    vb_lab_site_t *site;
    *out = NULL;
    int rc = vb_lab_site_open(lab->dir, false, &site);
    if (rc)
        return rc;
    vb_inventory_t *inv = calloc(1, sizeof *inv);
    if (inv)
        inv->provider = "lab";
    rc = inv ? s_build(site, inv) : vb_error_set(VB_ENOMEM, "out of memory");
    vb_lab_site_destroy(&site);
    if (rc) {
        vb_inventory_free(&inv);
        return rc;
    }
    *out = inv;
    return 0;
}

static int s_snapshot_create(vb_provider_t *self, const char *vm, const char *name, char **id)
{
    return vb_lab_snapshot_create(((s_lab_t *)self->impl)->dir, vm, name, id);
}

static int s_snapshot_remove(vb_provider_t *self, const char *vm, const char *id)
{
    return vb_lab_snapshot_remove(((s_lab_t *)self->impl)->dir, vm, id);
}

static int s_changed_areas(vb_provider_t *self, const char *vm, const char *disk_key,
                           const char *snapshot_id, uint64_t start, const char *change_id,
                           vb_extent_list_t *out, char **new_change_id_out)
{
    return vb_lab_changed_areas(((s_lab_t *)self->impl)->dir, vm, disk_key, snapshot_id, start,
                                change_id, out, new_change_id_out);
}

/* The lab serves a disk at snapshot S as the export "EXPORT@S" and the file "IMAGE@S" (lab.h).
 * A plain path (the file route) has no query: a '?' in it belongs to the file name. */
static char *s_uri_at_snapshot(vb_provider_t *self, const char *uri, const char *snapshot_id)
{
    (void)self;
    const char *q = uri[0] == '/' ? NULL : strchr(uri, '?');
    size_t head = q ? (size_t)(q - uri) : strlen(uri);
    size_t n = strlen(uri) + strlen(snapshot_id) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%.*s@%s%s", (int)head, uri, snapshot_id, q ? q : "");
    return out;
}

static int s_prepare_for_access(vb_provider_t *self, const char *vm, const char *who)
{
    return vb_lab_prepare_for_access(((s_lab_t *)self->impl)->dir, vm, who);
}

static int s_end_access(vb_provider_t *self, const char *vm)
{
    return vb_lab_end_access(((s_lab_t *)self->impl)->dir, vm);
}

static int s_create_vm(vb_provider_t *self, const char *name, const char *host,
                       const char *datastore, const vb_inv_new_disk_t *disks, size_t n)
{
    return vb_lab_vm_create(((s_lab_t *)self->impl)->dir, name, host, datastore, disks, n);
}

static int s_orphans(vb_provider_t *self, bool remove, vb_inv_orphans_t *out)
{
    s_test_delay();
    return vb_lab_orphans(((s_lab_t *)self->impl)->dir, remove, out);
}

static void s_destroy(vb_provider_t *self)
{
    s_lab_t *lab = self->impl;
    if (lab)
        free(lab->dir);
    free(lab);
    free(self);
}

static const vb_provider_ops_t s_ops = {
    .name = "lab",
    .inventory = s_inventory,
    .snapshot_create = s_snapshot_create,
    .snapshot_remove = s_snapshot_remove,
    .changed_areas = s_changed_areas,
    .uri_at_snapshot = s_uri_at_snapshot,
    .prepare_for_access = s_prepare_for_access,
    .end_access = s_end_access,
    .create_vm = s_create_vm,
    .orphans = s_orphans,
    .destroy = s_destroy,
};

vb_provider_t *vb_lab_provider_new(const char *dir)
{
    vb_lab_site_t *site;
    if (vb_lab_site_open(dir, false, &site) != 0)
        return NULL;
    const char *abs = vb_lab_site_dir(site);
    vb_provider_t *p = calloc(1, sizeof *p);
    s_lab_t *lab = calloc(1, sizeof *lab);
    if (!p || !lab || !(lab->dir = strdup(abs))) {
        vb_error_set(VB_ENOMEM, "out of memory");
        free(lab);
        free(p);
        vb_lab_site_destroy(&site);
        return NULL;
    }
    vb_lab_site_destroy(&site);
    p->ops = &s_ops;
    p->impl = lab;
    return p;
}
