#include "prep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "worker.h"

/* What a thread does with its own provider (NULL when none could be made): returns the result
 * it sends back. */
typedef void *(*s_work_fn)(const void *req, vb_provider_t *p);
typedef void (*s_free_fn)(void *req_p);

typedef struct {
    void *req;
    s_work_fn work;
    s_free_fn free_req;
    vb_provider_factory_fn factory;
    void *ctx;
} s_args_t;

void vb_prep_request_free(vb_prep_request_t **req_p)
{
    if (!req_p || !*req_p)
        return;
    vb_prep_request_t *r = *req_p;
    for (size_t i = 0; i < r->ndisks; i++) {
        free(r->disk_keys[i]);
        free(r->parent_change_ids[i]);
    }
    free(r->disk_keys);
    free(r->parent_change_ids);
    free(r->vm);
    free(r->snapshot_name);
    free(r->who);
    free(r);
    *req_p = NULL;
}

void vb_prep_result_free(vb_prep_result_t **res_p)
{
    if (!res_p || !*res_p)
        return;
    vb_prep_result_t *r = *res_p;
    for (size_t i = 0; i < r->ndisks; i++) {
        free(r->change_ids[i]);
        vb_extent_list_free(&r->areas[i]);
    }
    free(r->change_ids);
    free(r->areas);
    free(r->error);
    free(r->snapshot_id);
    free(r->full_reason);
    free(r);
    *res_p = NULL;
}

static void s_fail(vb_prep_result_t *res, int rc, const char *what)
{
    char msg[1200];
    snprintf(msg, sizeof msg, "%s: %s", what, vb_error_msg());
    res->rc = rc;
    res->error = strdup(msg);
}

/* The backup is full because changed block tracking could not answer for disk `key` (rc). The
 * providers say why in one sentence that names the VM and disk (tracking off, on but without a
 * change ID yet, reset, not implemented): that sentence is the reason, as is. */
static void s_become_full(vb_prep_result_t *res, int rc, const char *key)
{
    char msg[1200];
    if (rc == VB_ENOTFOUND || rc == VB_EUNSUPPORTED)
        snprintf(msg, sizeof msg, "%s", vb_error_msg());
    else
        snprintf(msg, sizeof msg, "changed block tracking could not answer for disk %s: %s", key,
                 vb_error_msg());
    res->incremental = false;
    free(res->full_reason);
    res->full_reason = strdup(msg);
    for (size_t i = 0; i < res->ndisks; i++)
        vb_extent_list_free(&res->areas[i]);
}

static void s_run(const vb_prep_request_t *req, vb_provider_t *p, vb_prep_result_t *res)
{
    res->times[0] = zclock_time();
    int rc = p->ops->snapshot_create(p, req->vm, req->snapshot_name, &res->snapshot_id);
    res->times[1] = zclock_time();
    if (rc) {
        s_fail(res, rc, "creating the snapshot");
        return;
    }
    if (p->ops->prepare_for_access) {
        if ((rc = p->ops->prepare_for_access(p, req->vm, req->who)) != 0) {
            s_fail(res, rc, "PrepareForAccess");
            return;
        }
        res->access = true;
    }
    res->times[2] = zclock_time();
    for (size_t i = 0; i < req->ndisks; i++) {
        vb_extent_list_t all = {0};
        rc = p->ops->changed_areas(p, req->vm, req->disk_keys[i], res->snapshot_id, 0, "*", &all,
                                   &res->change_ids[i]);
        if (rc != 0) {
            res->change_ids[i] = NULL; /* no change ID: the next backup is full */
            /* a site without change tracking: that is why this and every later backup is full */
            if (rc == VB_EUNSUPPORTED && !res->incremental && !res->full_reason)
                s_become_full(res, rc, req->disk_keys[i]);
        }
        vb_extent_list_free(&all);
    }
    for (size_t i = 0; res->incremental && i < req->ndisks; i++) {
        rc = p->ops->changed_areas(p, req->vm, req->disk_keys[i], res->snapshot_id, 0,
                                   req->parent_change_ids[i], &res->areas[i], NULL);
        if (rc)
            s_become_full(res, rc, req->disk_keys[i]);
    }
    res->times[3] = zclock_time();
}

static void *s_prep_work(const void *arg, vb_provider_t *p)
{
    const vb_prep_request_t *req = arg;
    vb_prep_result_t *res = calloc(1, sizeof *res);
    res->ndisks = req->ndisks;
    res->change_ids = calloc(req->ndisks ? req->ndisks : 1, sizeof *res->change_ids);
    res->areas = calloc(req->ndisks ? req->ndisks : 1, sizeof *res->areas);
    res->incremental = req->incremental;
    if (p)
        s_run(req, p, res);
    else
        s_fail(res, VB_EIO, "connecting to the inventory provider");
    return res;
}

/* A worker's request: the work, its own request, and how to make its provider in the thread. */
static void *s_with_provider(void *arg)
{
    s_args_t *args = arg;
    vb_provider_t *p = args->factory(args->ctx);
    void *res = args->work(args->req, p);
    vb_provider_destroy(&p);
    return res;
}

static void s_args_free(void *args_p)
{
    s_args_t **a = args_p;
    if (!*a)
        return;
    (*a)->free_req(&(*a)->req);
    free(*a);
    *a = NULL;
}

static zactor_t *s_start(void *req, s_work_fn work, s_free_fn free_req,
                         vb_provider_factory_fn factory, void *ctx)
{
    s_args_t *args = calloc(1, sizeof *args);
    if (!args) {
        free_req(&req);
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    *args = (s_args_t){req, work, free_req, factory, ctx};
    return vb_worker_start(s_with_provider, args, s_args_free);
}

zactor_t *vb_prep_start(vb_prep_request_t *req, vb_provider_factory_fn factory, void *ctx)
{
    return s_start(req, s_prep_work, (s_free_fn)vb_prep_request_free, factory, ctx);
}

vb_prep_result_t *vb_prep_receive(zactor_t *actor)
{
    return vb_worker_receive(actor);
}

/* ---- release: EndAccess and the snapshot's removal ---- */

void vb_release_request_free(vb_release_request_t **req_p)
{
    if (!req_p || !*req_p)
        return;
    free((*req_p)->vm);
    free((*req_p)->snapshot);
    free(*req_p);
    *req_p = NULL;
}

void vb_release_result_free(vb_release_result_t **res_p)
{
    if (!res_p || !*res_p)
        return;
    free((*res_p)->error);
    free(*res_p);
    *res_p = NULL;
}

static void s_release_error(vb_release_result_t *res, const char *what)
{
    if (res->error)
        return;
    char msg[1200];
    snprintf(msg, sizeof msg, "%s: %s", what, vb_error_msg());
    res->error = strdup(msg);
}

vb_release_result_t *vb_release_run(const vb_release_request_t *req, vb_provider_t *p)
{
    vb_release_result_t *res = calloc(1, sizeof *res);
    res->access_ended = !req->end_access;
    res->snapshot_removed = !req->snapshot;
    if (!p) {
        s_release_error(res, "connecting to the inventory provider");
        return res;
    }
    /* a VM that is gone has no access to end, as it has no snapshot to remove */
    int erc = !res->access_ended && p->ops->end_access ? p->ops->end_access(p, req->vm) : 0;
    if (erc != 0 && erc != VB_ENOTFOUND)
        s_release_error(res, "EndAccess");
    else
        res->access_ended = true;
    if (!res->snapshot_removed) {
        int rc = p->ops->snapshot_remove(p, req->vm, req->snapshot);
        if (rc == 0 || rc == VB_ENOTFOUND)
            res->snapshot_removed = true;
        else
            s_release_error(res, "removing the snapshot");
    }
    return res;
}

static void *s_release_work(const void *req, vb_provider_t *p)
{
    return vb_release_run(req, p);
}

zactor_t *vb_release_start(vb_release_request_t *req, vb_provider_factory_fn factory, void *ctx)
{
    return s_start(req, s_release_work, (s_free_fn)vb_release_request_free, factory, ctx);
}

vb_release_result_t *vb_release_receive(zactor_t *actor)
{
    return vb_worker_receive(actor);
}

/* ---- a restore's preparation: snapshots removed, a new VM created ---- */

void vb_restore_prep_request_free(vb_restore_prep_request_t **req_p)
{
    if (!req_p || !*req_p)
        return;
    vb_restore_prep_request_t *r = *req_p;
    for (size_t i = 0; i < r->nsnapshots; i++)
        free(r->snapshots[i]);
    for (size_t i = 0; i < r->ndisks; i++) {
        free((char *)r->disks[i].key);
        free((char *)r->disks[i].name);
    }
    free(r->snapshots);
    free(r->disks);
    free(r->vm);
    free(r->new_vm);
    free(r->datastore);
    free(r);
    *req_p = NULL;
}

void vb_restore_prep_result_free(vb_restore_prep_result_t **res_p)
{
    if (!res_p || !*res_p)
        return;
    free((*res_p)->error);
    vb_inventory_free(&(*res_p)->inv);
    free(*res_p);
    *res_p = NULL;
}

static int s_restore_prep_run(const vb_restore_prep_request_t *req, vb_provider_t *p,
                              vb_inventory_t **inv)
{
    for (size_t i = 0; i < req->nsnapshots; i++) {
        int rc = p->ops->snapshot_remove(p, req->vm, req->snapshots[i]);
        if (rc)
            return vb_error_prefix(rc, "deleting snapshot %s of %s", req->snapshots[i], req->vm);
        VB_LOG_INFO("jobs", "snapshot_deleted vm=%s snapshot=%s (asked by --delete-snapshots)",
                    req->vm, req->snapshots[i]);
    }
    if (req->new_vm) {
        int rc = p->ops->create_vm(p, req->new_vm, NULL, req->datastore, req->disks, req->ndisks);
        if (rc)
            return vb_error_prefix(rc, "restore to a new VM");
        VB_LOG_INFO("jobs", "vm_created vm=\"%s\" datastore=\"%s\" disks=%zu", req->new_vm,
                    req->datastore, req->ndisks);
    }
    int rc = p->ops->inventory(p, inv);
    if (rc)
        return vb_error_prefix(rc, "reading the inventory again");
    if (req->new_vm && !vb_inventory_find_vm(*inv, req->new_vm))
        return vb_error_set(VB_ENOTFOUND, "VM %s was created but is not in the inventory",
                            req->new_vm);
    return 0;
}

vb_restore_prep_result_t *vb_restore_prep_run(const vb_restore_prep_request_t *req,
                                              vb_provider_t *p)
{
    vb_restore_prep_result_t *res = calloc(1, sizeof *res);
    int rc = p ? s_restore_prep_run(req, p, &res->inv)
               : vb_error_set(VB_EIO, "connecting to the inventory provider");
    if (rc) {
        res->rc = rc;
        res->error = strdup(vb_error_msg());
        vb_inventory_free(&res->inv);
    }
    return res;
}

static void *s_restore_prep_work(const void *req, vb_provider_t *p)
{
    return vb_restore_prep_run(req, p);
}

zactor_t *vb_restore_prep_start(vb_restore_prep_request_t *req, vb_provider_factory_fn factory,
                                void *ctx)
{
    return s_start(req, s_restore_prep_work, (s_free_fn)vb_restore_prep_request_free, factory, ctx);
}

vb_restore_prep_result_t *vb_restore_prep_receive(zactor_t *actor)
{
    return vb_worker_receive(actor);
}
