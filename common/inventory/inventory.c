#include "inventory.h"

#include <stdlib.h>
#include <string.h>

int vb_extent_list_add(vb_extent_list_t *list, uint64_t offset, uint64_t length)
{
    if (length == 0)
        return 0;
    if (list->count > 0) {
        vb_extent_t *last = &list->items[list->count - 1];
        if (last->offset + last->length == offset) {
            last->length += length;
            return 0;
        }
    }
    if (list->count == list->capacity) {
        size_t cap = list->capacity ? list->capacity * 2 : 64;
        vb_extent_t *items = realloc(list->items, cap * sizeof *items);
        if (!items)
            return vb_error_set(VB_ENOMEM, "out of memory for %zu extents", cap);
        list->items = items;
        list->capacity = cap;
    }
    list->items[list->count++] = (vb_extent_t){offset, length};
    return 0;
}

void vb_extent_list_free(vb_extent_list_t *list)
{
    free(list->items);
    memset(list, 0, sizeof *list);
}

/* Merges, in place, extents less than `gap` apart after widening each to whole `block`s. */
static void s_extents_merge(vb_extent_list_t *list, uint64_t gap, uint64_t block)
{
    size_t k = 0;
    for (size_t i = 0; i < list->count; i++) {
        uint64_t start = list->items[i].offset / block * block;
        uint64_t end = list->items[i].offset + list->items[i].length;
        end = (end + block - 1) / block * block;
        if (k) {
            vb_extent_t *prev = &list->items[k - 1];
            uint64_t prev_end = prev->offset + prev->length;
            if (start <= prev_end || start - prev_end < gap) {
                if (end > prev_end)
                    prev->length = end - prev->offset;
                continue;
            }
        }
        list->items[k++] = (vb_extent_t){start, end - start};
    }
    list->count = k;
}

uint64_t vb_extent_list_bound(vb_extent_list_t *list, uint64_t gap, uint64_t block,
                              size_t max_count)
{
    if (list->count <= max_count)
        return 0;
    s_extents_merge(list, gap, 1);
    uint64_t used = 0;
    for (uint64_t b = block ? block : 1; list->count > max_count; b *= 2) {
        s_extents_merge(list, 1, b);
        used = b;
    }
    return used;
}

static void s_free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void s_free_disk(vb_inv_disk_t *d)
{
    free(d->key);
    free(d->name);
    free(d->datastore);
    free(d->path);
    free(d->change_id);
    free(d->parent);
    free(d->nbd_uri);
    free(d->nbds_uri);
    free(d->nbd_uri6);
    free(d->nbds_uri6);
    free(d->file_uri);
    for (int op = 0; op < 2; op++) {
        for (int m = 0; m < VB_TRANSPORT_COUNT; m++) {
            free(d->routes[op][m].mode);
            free(d->routes[op][m].uri);
            free(d->vddk_routes[op][m].mode);
            free(d->vddk_routes[op][m].uri);
        }
    }
}

static int s_set_route(vb_route_t *r, const char *route_mode, const char *uri)
{
    free(r->mode);
    free(r->uri);
    r->mode = NULL;
    r->uri = NULL;
    if (!uri)
        return 0;
    r->mode = strdup(route_mode);
    r->uri = strdup(uri);
    if (!r->mode || !r->uri)
        return vb_error_set(VB_ENOMEM, "out of memory");
    return 0;
}

int vb_inv_disk_set_route(vb_inv_disk_t *disk, vb_transport_op_t op, vb_transport_t mode,
                          const char *route_mode, const char *uri)
{
    return s_set_route(&disk->routes[op][mode], route_mode, uri);
}

int vb_inv_disk_set_vddk_route(vb_inv_disk_t *disk, vb_transport_op_t op, vb_transport_t mode,
                               const char *uri)
{
    return s_set_route(&disk->vddk_routes[op][mode], vb_transport_name(mode), uri);
}

void vb_inventory_free(vb_inventory_t **inv_p)
{
    if (!inv_p || !*inv_p)
        return;
    vb_inventory_t *inv = *inv_p;
    for (size_t i = 0; i < inv->datastore_count; i++) {
        vb_inv_datastore_t *ds = &inv->datastores[i];
        free(ds->name);
        free(ds->type);
        free(ds->url);
        free(ds->lun);
        s_free_strv(ds->hosts, ds->host_count);
    }
    free(inv->datastores);
    for (size_t i = 0; i < inv->host_count; i++)
        free(inv->hosts[i].name);
    free(inv->hosts);
    for (size_t i = 0; i < inv->vm_count; i++) {
        vb_inv_vm_t *vm = &inv->vms[i];
        free(vm->name);
        free(vm->id);
        free(vm->host);
        s_free_strv(vm->snapshots, vm->snapshot_count);
        for (size_t d = 0; d < vm->disk_count; d++)
            s_free_disk(&vm->disks[d]);
        free(vm->disks);
    }
    free(inv->vms);
    for (size_t i = 0; i < inv->proxy_count; i++) {
        free(inv->proxies[i].name);
        free(inv->proxies[i].host);
        free(inv->proxies[i].datastore);
        s_free_strv(inv->proxies[i].luns, inv->proxies[i].lun_count);
    }
    free(inv->proxies);
    free(inv);
    *inv_p = NULL;
}

const vb_inv_vm_t *vb_inventory_find_vm(const vb_inventory_t *inv, const char *name)
{
    for (size_t i = 0; i < inv->vm_count; i++)
        if (strcmp(inv->vms[i].name, name) == 0)
            return &inv->vms[i];
    return NULL;
}

const vb_inv_datastore_t *vb_inventory_find_datastore(const vb_inventory_t *inv, const char *name)
{
    for (size_t i = 0; i < inv->datastore_count; i++)
        if (strcmp(inv->datastores[i].name, name) == 0)
            return &inv->datastores[i];
    return NULL;
}

const char *vb_provider_server_version(vb_provider_t *self)
{
    return self && self->ops && self->ops->server_version ? self->ops->server_version(self) : NULL;
}

void vb_provider_destroy(vb_provider_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_provider_t *self = *self_p;
    *self_p = NULL;
    if (self->ops && self->ops->destroy)
        self->ops->destroy(self);
}

const vb_inv_host_t *vb_inventory_find_host(const vb_inventory_t *inv, const char *name)
{
    for (size_t i = 0; i < inv->host_count; i++)
        if (strcmp(inv->hosts[i].name, name) == 0)
            return &inv->hosts[i];
    return NULL;
}

void vb_inv_orphans_free(vb_inv_orphans_t *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].path);
        free(list->items[i].datastore);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}
