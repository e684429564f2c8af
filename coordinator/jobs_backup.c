/* jobs_backup — a VM's backup: snapshot and CBT on the prep thread, planning, indexes,
 * the Storage vMotion check and the one-commit restore point. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jobs_internal.h"
#include "log.h"
#include "path.h"
#include "policy/explain.h"
#include "repo/manifest.h"
#include "timefmt.h"
#include "wire.h"
#include "worker.h"

static int s_index_name(const jb_disk_t *d, char *buf, size_t size)
{
    char key[64];
    size_t n = 0;
    for (const char *p = d->inv->key; *p && n < sizeof key - 1; p++)
        key[n++] =
            (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p) && *p)
                ? *p
                : '_';
    key[n] = '\0';
    return vb_pathf(buf, size, "rp%lld-%s", (long long)d->vm->rp_id, key);
}

/* ---- the end of a VM's backup: indexes, Storage vMotion check, manifest, commit ----
 *
 * What waits for the repository or the provider runs on a worker (worker.h), never on the loop:
 * first every disk's index (inheriting unchanged chunks from the parent) and the Storage vMotion
 * check; then, once the loop has recorded the disks in the catalog, the manifest. The loop
 * commits the restore point when the manifest is durable. A VM that ends while a worker of its
 * runs (cancelled) has what it wrote removed once the worker has reported, also on a worker. */

typedef struct {
    char name[VB_INDEX_NAME_MAX + 1];
    char *parent; /* the parent's index (incremental); NULL: none */
    char *key, *datastore;
    uint64_t capacity;
    vb_chunk_result_t *results; /* moved from the disk */
    size_t nresults;
} s_disk_req_t;

typedef struct {
    vb_repo_t *repo; /* the engine's: shared read-only by threads; outlives its jobs */
    char *vm;
    s_disk_req_t *disks;
    size_t ndisks;
    vb_provider_factory_fn factory; /* the Storage vMotion check's own provider */
    void *ctx;
} s_index_req_t;

typedef struct {
    int rc;
    char *error;       /* which disk's index could not be written, and why */
    char *moved;       /* Storage vMotion moved a disk: why the backup is discarded */
    uint64_t *logical; /* per disk: bytes of its stored chunks */
    uint64_t *count;   /* per disk: chunks in its index */
    int64_t (*times)[2]; /* per disk: when its index write began and ended */
} s_index_res_t;

/* The manifest to write, or the indexes and manifest to remove. */
typedef struct {
    vb_repo_t *repo;
    vb_manifest_t manifest; /* write: owned */
    bool remove;
    int64_t job_id, rp_id; /* remove: whose */
    char **names;          /* remove: index names */
    size_t nnames;
} s_objects_req_t;

typedef struct {
    int rc;
    char *error;
} s_objects_res_t;

static void s_index_req_free(void *req_p)
{
    s_index_req_t **r = req_p;
    if (!*r)
        return;
    for (size_t i = 0; i < (*r)->ndisks; i++) {
        s_disk_req_t *d = &(*r)->disks[i];
        free(d->parent);
        free(d->key);
        free(d->datastore);
        free(d->results);
    }
    free((*r)->disks);
    free((*r)->vm);
    free(*r);
    *r = NULL;
}

static void s_index_res_free(s_index_res_t **res_p)
{
    if (!*res_p)
        return;
    free((*res_p)->error);
    free((*res_p)->moved);
    free((*res_p)->logical);
    free((*res_p)->count);
    free((*res_p)->times);
    free(*res_p);
    *res_p = NULL;
}

static void s_objects_req_free(void *req_p)
{
    s_objects_req_t **r = req_p;
    if (!*r)
        return;
    vb_manifest_clear(&(*r)->manifest);
    for (size_t i = 0; i < (*r)->nnames; i++)
        free((*r)->names[i]);
    free((*r)->names);
    free(*r);
    *r = NULL;
}

static void s_objects_res_free(s_objects_res_t **res_p)
{
    if (!*res_p)
        return;
    free((*res_p)->error);
    free(*res_p);
    *res_p = NULL;
}

/* ---- on the worker ---- */

/* Writes one disk's index; adds up its stored bytes and chunks. */
static int s_write_index(vb_repo_t *repo, const s_disk_req_t *d, uint64_t *logical,
                         uint64_t *count)
{
    vb_index_t *parent = NULL, *index = NULL;
    int rc = 0;
    if (d->parent && (rc = vb_index_read(repo, d->parent, &parent)) != 0)
        return vb_error_prefix(rc, "parent index %s", d->parent);
    rc = vb_index_build(parent, d->parent, d->key, d->capacity, vb_repo_chunk_size(repo),
                        d->results, d->nresults, &index);
    if (!rc)
        rc = vb_index_write(repo, d->name, index);
    for (uint64_t i = 0; !rc && i < index->count; i++)
        if (!vb_digest_is_zero(&index->digests[i]))
            *logical += vb_index_chunk_len(index, i);
    if (!rc)
        *count = index->count;
    vb_index_destroy(&parent);
    vb_index_destroy(&index);
    return rc;
}

/* Storage vMotion during the backup: the release notes say it conflicts with backup. Why the
 * backup is discarded (caller frees), or NULL when nothing moved or it cannot be told. */
static char *s_moved(const s_index_req_t *req)
{
    vb_provider_t *p = req->factory(req->ctx);
    vb_inventory_t *now = NULL;
    char *why = NULL;
    if (!p || p->ops->inventory(p, &now) != 0) { /* cannot tell; the snapshot read stands */
        vb_provider_destroy(&p);
        vb_error_clear();
        return NULL;
    }
    const vb_inv_vm_t *cur = vb_inventory_find_vm(now, req->vm);
    for (size_t i = 0; cur && i < req->ndisks && !why; i++) {
        const s_disk_req_t *was = &req->disks[i];
        for (size_t k = 0; k < cur->disk_count && !why; k++) {
            if (!streq(cur->disks[k].key, was->key) ||
                streq(cur->disks[k].datastore, was->datastore))
                continue;
            char msg[1024];
            snprintf(msg, sizeof msg,
                     "Storage vMotion moved disk %s of %s from %s to %s during the backup; the "
                     "backup was discarded (Storage vMotion conflicts with backup: run it again)",
                     was->key, req->vm, was->datastore, cur->disks[k].datastore);
            why = strdup(msg);
        }
    }
    vb_inventory_free(&now);
    vb_provider_destroy(&p);
    return why;
}

static void *s_index_work(void *arg)
{
    const s_index_req_t *req = arg;
    size_t n = req->ndisks ? req->ndisks : 1;
    s_index_res_t *res = calloc(1, sizeof *res);
    if (!res || !(res->logical = calloc(n, sizeof *res->logical)) ||
        !(res->count = calloc(n, sizeof *res->count)) ||
        !(res->times = calloc(n, sizeof *res->times))) {
        s_index_res_free(&res);
        return NULL;
    }
    for (size_t i = 0; !res->rc && i < req->ndisks; i++) {
        const s_disk_req_t *d = &req->disks[i];
        res->times[i][0] = jb_now();
        int rc = s_write_index(req->repo, d, &res->logical[i], &res->count[i]);
        res->times[i][1] = jb_now();
        if (rc) {
            char msg[1200];
            snprintf(msg, sizeof msg, "disk %s: %s", d->key, vb_error_msg());
            res->rc = rc;
            res->error = strdup(msg);
        }
    }
    if (!res->rc)
        res->moved = s_moved(req);
    return res;
}

/* A kept restore point's manifest goes into the repository; a discarded one's objects go. */
static void *s_objects_work(void *arg)
{
    const s_objects_req_t *req = arg;
    s_objects_res_t *res = calloc(1, sizeof *res);
    if (!res)
        return NULL;
    if (!req->remove) {
        if ((res->rc = vb_manifest_write(vb_repo_store(req->repo), &req->manifest)) != 0)
            res->error = strdup(vb_error_msg());
        return res;
    }
    int mrc = req->rp_id ? vb_manifest_remove(vb_repo_store(req->repo), req->rp_id) : 0;
    if (mrc && mrc != VB_ENOTFOUND)
        VB_LOG_WARN("jobs", "manifest_remove_failed rp=%lld error=\"%s\"", (long long)req->rp_id,
                    vb_error_msg());
    for (size_t i = 0; i < req->nnames; i++) {
        int rc = vb_index_remove(req->repo, req->names[i]);
        if (rc == 0)
            VB_LOG_INFO("jobs", "index_removed job=%lld index=%s (the restore point was not kept)",
                        (long long)req->job_id, req->names[i]);
        else if (rc != VB_ENOTFOUND)
            VB_LOG_WARN("jobs", "index_remove_failed index=%s error=\"%s\"", req->names[i],
                        vb_error_msg());
    }
    vb_error_clear();
    return res;
}

/* ---- on the loop ---- */

/* Runs work(req) on a worker that reports to on_done with the VM; its job is kept meanwhile. */
static int s_store_start(vb_jobs_t *self, jb_vmrun_t *vm, vb_worker_fn work, void *req,
                         vb_worker_free_fn free_req, zloop_reader_fn *on_done)
{
    if (!(vm->store = vb_worker_start(work, req, free_req)))
        return vb_error_code();
    if (zloop_reader(self->cfg.loop, (zsock_t *)vm->store, on_done, vm) != 0) {
        zactor_destroy(&vm->store);
        return vb_error_set(VB_EIO, "cannot watch a worker thread");
    }
    return 0;
}

/* The worker's result; the VM has no worker any more. */
static void *s_store_receive(zloop_t *loop, zsock_t *reader, jb_vmrun_t *vm)
{
    void *res = vb_worker_receive(vm->store);
    zloop_reader_end(loop, reader);
    zactor_destroy(&vm->store);
    return res;
}

static int s_on_removed(zloop_t *loop, zsock_t *reader, void *arg)
{
    jb_vmrun_t *vm = arg;
    s_objects_res_t *res = s_store_receive(loop, reader, vm);
    s_objects_res_free(&res);
    jb_reap(vm->job->engine);
    return 0;
}

/* A restore point that will not be kept: its disk indexes and its manifest (when the commit
 * after it failed) go, on a worker; after the one running, if any. */
void jb_backup_remove_indexes(vb_jobs_t *self, jb_vmrun_t *vm)
{
    vm->remove_after = vm->store != NULL;
    vb_repo_t *repo = vm->rp_id ? jb_repo(self) : NULL;
    vb_error_clear();
    if (vm->store || !repo)
        return;
    s_objects_req_t *req = calloc(1, sizeof *req);
    if (req)
        req->names = calloc(vm->ndisks ? vm->ndisks : 1, sizeof *req->names);
    for (size_t i = 0; req && req->names && i < vm->ndisks; i++) {
        char name[VB_INDEX_NAME_MAX + 1];
        if (vm->disks[i].inv && s_index_name(&vm->disks[i], name, sizeof name) == 0)
            req->names[req->nnames++] = strdup(name);
    }
    if (!req || !req->names) {
        s_objects_req_free(&req);
        VB_LOG_WARN("jobs", "index_remove_failed rp=%lld error=\"out of memory\"",
                    (long long)vm->rp_id);
        return;
    }
    *req = (s_objects_req_t){.repo = repo, .remove = true, .job_id = vm->job->id,
                             .rp_id = vm->rp_id, .names = req->names, .nnames = req->nnames};
    if (s_store_start(self, vm, s_objects_work, req, s_objects_req_free, s_on_removed) != 0)
        VB_LOG_WARN("jobs", "index_remove_failed rp=%lld error=\"%s\"", (long long)vm->rp_id,
                    vb_error_msg());
}

/* A VM that ended while its worker ran: what the worker wrote goes now. */
static void s_store_after_end(vb_jobs_t *self, jb_vmrun_t *vm)
{
    if (vm->remove_after)
        jb_backup_remove_indexes(self, vm);
}

/* The disks as the catalog keeps them on the pending restore point, with their index phase. */
static int s_record_disks(vb_jobs_t *self, jb_vmrun_t *vm, const s_index_res_t *res)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < vm->ndisks; i++) {
        jb_disk_t *d = &vm->disks[i];
        char name[VB_INDEX_NAME_MAX + 1];
        char *modes[VB_TRANSPORT_COUNT + 1];
        size_t nm = 0;
        vb_phase_add(&vm->times, VB_PHASE_INDEX, res->times[i][0], res->times[i][1]);
        for (int m = 0; m < VB_TRANSPORT_COUNT; m++)
            if (d->transports_used & VB_TRANSPORT_BIT(m))
                modes[nm++] = (char *)vb_transport_name((vb_transport_t)m);
        if ((rc = s_index_name(d, name, sizeof name)) != 0)
            break;
        vb_rp_disk_t rd = {0};
        rd.key = d->inv->key;
        rd.change_id = d->change_id;
        rd.index_path = name;
        rd.logical_bytes = res->logical[i];
        rd.new_bytes = d->bytes_new;
        rd.chunk_count = res->count[i];
        rd.transports = modes;
        rd.transport_count = nm;
        rc = vb_catalog_restore_point_set_disk(self->cfg.catalog, vm->rp_id, &rd);
    }
    return rc;
}

/* The restore point's manifest (from the catalog, as the disks were just recorded), to be
 * written durable after its disk indexes and before the catalog commit, so that the repository
 * alone can say what each index belongs to. */
static int s_manifest(vb_jobs_t *self, jb_vmrun_t *vm, vb_manifest_t *m)
{
    vb_restore_point_t *rps = NULL;
    size_t n = 0;
    int rc = vb_catalog_job_restore_points(self->cfg.catalog, vm->job->id, &rps, &n);
    for (size_t i = 0; !rc && i < n; i++)
        if (rps[i].id == vm->rp_id) {
            m->rp = rps[i]; /* moved */
            memset(&rps[i], 0, sizeof rps[i]);
        }
    if (!rc && !m->rp.id)
        rc = vb_error_set(VB_ENOTFOUND, "restore point %lld is not in job %lld",
                          (long long)vm->rp_id, (long long)vm->job->id);
    if (!rc) {
        m->rp.completed = vm->completed;
        m->vm_id = vm->inv->id ? strdup(vm->inv->id) : NULL;
        m->provider = strdup(self->cfg.provider->ops->name);
        m->chunk_size = vb_repo_chunk_size(self->repo);
    }
    vb_restore_points_free(&rps, n);
    return rc;
}

static int s_on_manifest(zloop_t *loop, zsock_t *reader, void *arg)
{
    jb_vmrun_t *vm = arg;
    vb_jobs_t *self = vm->job->engine;
    s_objects_res_t *res = s_store_receive(loop, reader, vm);
    char msg[1200];
    if (vm->finished) {
        s_store_after_end(self, vm);
    } else if (!res || res->rc) {
        snprintf(msg, sizeof msg, "writing the restore point's manifest: %s",
                 !res ? "the worker stopped without an answer"
                 : res->error ? res->error
                              : "failed");
        jb_vm_fail(self, vm, msg);
    } else if (vb_catalog_restore_point_commit(self->cfg.catalog, vm->rp_id, NULL, 0,
                                               vm->completed) != 0) {
        snprintf(msg, sizeof msg, "committing the restore point: %s", vb_error_msg());
        jb_vm_fail(self, vm, msg);
    } else {
        vb_phase_add(&vm->times, VB_PHASE_COMMIT, vm->completed, jb_now());
        VB_LOG_INFO("jobs", "restore_point_committed job=%lld vm=%s rp=%lld",
                    (long long)vm->job->id, vm->name, (long long)vm->rp_id);
        jb_vm_end(self, vm, VB_JOB_SUCCEEDED, NULL);
    }
    s_objects_res_free(&res);
    jb_dispatch(self);
    jb_reap(self);
    return 0;
}

/* The data is read and indexed: the restore point stands whatever the snapshot's removal does
 * next (jb_vm_end releases the VM; a removal that fails is retried until done). */
static int s_manifest_start(vb_jobs_t *self, jb_vmrun_t *vm)
{
    vm->completed = jb_now();
    vm->indexed = true;
    s_objects_req_t *req = calloc(1, sizeof *req);
    if (!req)
        return vb_error_set(VB_ENOMEM, "out of memory");
    req->repo = self->repo;
    int rc = s_manifest(self, vm, &req->manifest);
    if (rc) {
        s_objects_req_free(&req);
        return rc;
    }
    return s_store_start(self, vm, s_objects_work, req, s_objects_req_free, s_on_manifest);
}

static int s_on_indexed(zloop_t *loop, zsock_t *reader, void *arg)
{
    jb_vmrun_t *vm = arg;
    vb_jobs_t *self = vm->job->engine;
    s_index_res_t *res = s_store_receive(loop, reader, vm);
    char msg[1200];
    if (vm->finished) {
        s_store_after_end(self, vm);
    } else if (!res || res->rc) {
        jb_vm_fail(self, vm, res ? res->error : "the index writer stopped without an answer");
    } else if (res->moved) {
        VB_LOG_WARN("jobs", "svmotion_detected job=%lld vm=%s", (long long)vm->job->id, vm->name);
        jb_vm_fail(self, vm, res->moved);
    } else if (s_record_disks(self, vm, res) != 0 || s_manifest_start(self, vm) != 0) {
        snprintf(msg, sizeof msg, "writing the restore point's manifest: %s", vb_error_msg());
        jb_vm_fail(self, vm, msg);
    }
    s_index_res_free(&res);
    jb_dispatch(self);
    jb_reap(self);
    return 0;
}

/* What the index writer needs of the VM: plain data; the chunk results move. */
static s_index_req_t *s_index_request(vb_jobs_t *self, jb_vmrun_t *vm)
{
    s_index_req_t *req = calloc(1, sizeof *req);
    if (!req || !(req->disks = calloc(vm->ndisks ? vm->ndisks : 1, sizeof *req->disks)) ||
        !(req->vm = strdup(vm->name))) {
        s_index_req_free(&req);
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    req->repo = self->repo;
    req->factory = self->cfg.provider_factory;
    req->ctx = self->cfg.factory_ctx;
    req->ndisks = vm->ndisks;
    for (size_t i = 0; i < vm->ndisks; i++) {
        jb_disk_t *d = &vm->disks[i];
        s_disk_req_t *r = &req->disks[i];
        if (s_index_name(d, r->name, sizeof r->name) != 0) {
            s_index_req_free(&req);
            return NULL;
        }
        r->parent = d->parent_index ? strdup(d->parent_index) : NULL;
        r->key = strdup(d->inv->key);
        r->datastore = strdup(d->inv->datastore ? d->inv->datastore : "");
        r->capacity = d->inv->capacity;
        r->results = d->results;
        r->nresults = d->nresults;
        d->results = NULL;
        d->nresults = d->cap = 0;
    }
    return req;
}

/* Every disk of a backed-up VM has its chunks: indexes, the Storage vMotion check, manifest and
 * commit follow, the slow parts on workers. */
void jb_backup_vm_finish(vb_jobs_t *self, jb_vmrun_t *vm)
{
    s_index_req_t *req = jb_repo(self) ? s_index_request(self, vm) : NULL;
    if (!req || s_store_start(self, vm, s_index_work, req, s_index_req_free, s_on_indexed) != 0)
        jb_vm_fail(self, vm, vb_error_msg());
}

/* ---- starting a backup ---- */

/* Can VM be backed up incrementally from its newest restore point? Fills `parent` (caller
 * clears) and returns true, or false with the reason for a full backup. */
static bool s_parent_usable(vb_jobs_t *self, jb_vmrun_t *vm, bool full, vb_restore_point_t *parent,
                            char *reason, size_t size)
{
    if (full) {
        snprintf(reason, size, "a full backup was asked for");
        return false;
    }
    if (vb_catalog_restore_point_latest(self->cfg.catalog, vm->name, 0, parent) != 0) {
        snprintf(reason, size, "no earlier restore point of %s", vm->name);
        return false;
    }
    if (parent->verify_state == VB_VERIFY_FAILED) { /* its bad chunks are in quarantine now */
        snprintf(reason, size, "restore point %lld failed verify: its chunks are read again",
                 (long long)parent->id);
        return false;
    }
    for (size_t i = 0; i < vm->ndisks; i++) {
        const vb_inv_disk_t *disk = vm->disks[i].inv;
        const vb_rp_disk_t *was = NULL;
        for (size_t k = 0; k < parent->disk_count; k++)
            if (streq(parent->disks[k].key, disk->key))
                was = &parent->disks[k];
        if (!was)
            snprintf(reason, size, "disk %s is new since restore point %lld", disk->key,
                     (long long)parent->id);
        else if (was->capacity != disk->capacity)
            snprintf(reason, size, "disk %s changed size since restore point %lld", disk->key,
                     (long long)parent->id);
        else if (!was->change_id || !*was->change_id || !was->index_path)
            snprintf(reason, size, "restore point %lld has no change ID for disk %s",
                     (long long)parent->id, disk->key);
        else
            continue;
        return false;
    }
    snprintf(reason, size, "changes since restore point %lld", (long long)parent->id);
    return true;
}

static int s_on_prep(zloop_t *loop, zsock_t *reader, void *arg);

/* Phase one of a VM's backup, on this thread: the snapshot intent goes to the catalog BEFORE the
 * snapshot is made (a crash can then always clean it up), then the prep thread runs. */
int jb_backup_vm_start(vb_jobs_t *self, jb_vmrun_t *vm, bool full)
{
    vb_provider_t *p = self->cfg.provider;
    char name[64], who[64];
    snprintf(name, sizeof name, "vbak-%lld", (long long)vm->job->id);
    snprintf(who, sizeof who, "vbak job %lld", (long long)vm->job->id);
    int rc = vb_catalog_snapshot_intent(self->cfg.catalog, vm->job->id, vm->name, name);
    if (!rc && p->ops->prepare_for_access)
        rc = vb_catalog_job_vm_set_access(self->cfg.catalog, vm->job->id, vm->name, true);
    if (rc)
        return rc;
    vb_restore_point_t parent = {0};
    char reason[512];
    bool incremental = s_parent_usable(self, vm, full, &parent, reason, sizeof reason);
    vm->reason = strdup(reason);
    vb_prep_request_t *req = calloc(1, sizeof *req);
    req->vm = strdup(vm->name);
    req->snapshot_name = strdup(name);
    req->who = strdup(who);
    req->ndisks = vm->ndisks;
    req->incremental = incremental;
    req->disk_keys = calloc(vm->ndisks ? vm->ndisks : 1, sizeof *req->disk_keys);
    req->parent_change_ids = calloc(vm->ndisks ? vm->ndisks : 1, sizeof *req->parent_change_ids);
    for (size_t i = 0; i < vm->ndisks; i++) {
        jb_disk_t *d = &vm->disks[i];
        req->disk_keys[i] = strdup(d->inv->key);
        for (size_t k = 0; incremental && k < parent.disk_count; k++)
            if (streq(parent.disks[k].key, d->inv->key)) {
                req->parent_change_ids[i] = strdup(parent.disks[k].change_id);
                d->parent_index = strdup(parent.disks[k].index_path);
            }
    }
    vm->parent_id = incremental ? parent.id : 0;
    vb_restore_point_clear(&parent);
    vm->prep = vb_prep_start(req, self->cfg.provider_factory, self->cfg.factory_ctx);
    if (!vm->prep)
        return vb_error_code();
    zloop_reader(self->cfg.loop, (zsock_t *)vm->prep, s_on_prep, vm);
    return 0;
}

/* Phase two, when the prep thread is done: record the snapshot, plan the disks, queue tasks. */
static int s_backup_vm_plan(vb_jobs_t *self, jb_vmrun_t *vm, vb_prep_result_t *res)
{
    bool incremental = res->incremental;
    /* asked for, it is just that; otherwise what CBT said beats "no earlier restore point" */
    const char *reason =
        incremental || vm->job->full || !res->full_reason ? vm->reason : res->full_reason;
    vb_rp_kind_t mode = incremental ? VB_RP_INCREMENTAL : VB_RP_FULL;
    int rc = vb_catalog_job_vm_set_mode(self->cfg.catalog, vm->job->id, vm->name, mode, reason);
    vb_rp_disk_t *rd = calloc(vm->ndisks ? vm->ndisks : 1, sizeof *rd);
    for (size_t i = 0; i < vm->ndisks; i++) {
        jb_disk_t *d = &vm->disks[i];
        d->change_id = res->change_ids[i];
        res->change_ids[i] = NULL;
        if (!incremental) {
            free(d->parent_index);
            d->parent_index = NULL;
        }
        rd[i].key = d->inv->key;
        rd[i].name = d->inv->name;
        rd[i].datastore = d->inv->datastore;
        rd[i].capacity = d->inv->capacity;
        rd[i].change_id = d->change_id;
    }
    vb_restore_point_t rp = {0};
    rp.vm = vm->name;
    rp.is_fcd = vm->inv->is_fcd;
    rp.job_id = vm->job->id;
    rp.created = jb_now();
    rp.kind = mode;
    rp.parent_id = incremental ? vm->parent_id : 0;
    rp.disks = rd;
    rp.disk_count = vm->ndisks;
    if (!rc)
        rc = vb_catalog_restore_point_create(self->cfg.catalog, &rp, &vm->rp_id);
    free(rd);
    VB_LOG_INFO("jobs", "backup_planned job=%lld vm=%s mode=%s reason=\"%s\" rp=%lld",
                (long long)vm->job->id, vm->name, vb_rp_kind_name(mode), reason,
                (long long)vm->rp_id);
    uint32_t chunk = vb_repo_chunk_size(self->repo);
    for (size_t i = 0; !rc && i < vm->ndisks; i++) {
        jb_disk_t *d = &vm->disks[i];
        jb_set_routes(self, d, vm->snapshot_id);
        if ((rc = jb_register_disk(self, d)) != 0)
            break;
        if (!incremental) {
            d->map_pending = true;
            rc = jb_add_tasks(self, d, VB_TASK_MAP, NULL, 0);
        } else {
            vb_plan_task_t *plan = NULL;
            size_t n = 0;
            rc = vb_plan_split(res->areas[i].items, res->areas[i].count, d->inv->capacity, chunk,
                               self->cfg.task_bytes, &plan, &n);
            if (!rc && n)
                rc = jb_add_tasks(self, d, VB_TASK_BACKUP, plan, n);
            vb_plan_free(&plan, n);
        }
    }
    /* disks with nothing to read (no change since the parent) are done at once */
    for (size_t i = 0; !rc && i < vm->ndisks && !vm->finished; i++)
        if (vm->disks[i].tasks_left == 0 && !vm->disks[i].map_pending)
            jb_disk_done(self, &vm->disks[i]);
    return rc;
}

static int s_on_prep(zloop_t *loop, zsock_t *reader, void *arg)
{
    jb_vmrun_t *vm = arg;
    vb_jobs_t *self = vm->job->engine;
    vb_prep_result_t *res = vb_prep_receive(vm->prep);
    zloop_reader_end(loop, reader);
    zactor_destroy(&vm->prep);
    if (!res)
        res = calloc(1, sizeof *res), res->rc = VB_EIO, res->error = strdup("the prep thread died");
    if (res->snapshot_id) {
        vm->snapshot_id = strdup(res->snapshot_id);
        if (vb_catalog_snapshot_created(self->cfg.catalog, vm->job->id, vm->name, vm->snapshot_id))
            VB_LOG_ERROR("jobs", "catalog error=\"%s\"", vb_error_msg());
    }
    vm->access = res->access;
    vb_phase_add(&vm->times, VB_PHASE_SNAPSHOT, res->times[0], res->times[1]);
    if (res->access)
        vb_phase_add(&vm->times, VB_PHASE_PREPARE, res->times[1], res->times[2]);
    if (res->times[3])
        vb_phase_span(&vm->times, VB_PHASE_MAP, res->times[2], res->times[3]);
    if (!res->access && self->cfg.provider->ops->prepare_for_access &&
        vb_catalog_job_vm_set_access(self->cfg.catalog, vm->job->id, vm->name, false))
        VB_LOG_ERROR("jobs", "catalog error=\"%s\"", vb_error_msg());
    if (vm->finished) /* cancelled while the snapshot was being made */
        (void)jb_release_vm(self, vm, false);
    else if (res->rc)
        jb_vm_fail(self, vm, res->error);
    else if (s_backup_vm_plan(self, vm, res) != 0 && !vm->finished)
        jb_vm_fail(self, vm, vb_error_msg());
    vb_prep_result_free(&res);
    jb_dispatch(self);
    jb_reap(self);
    return 0;
}

/* An encrypted disk backed up into an unencrypted repository: allowed, and said on the job (its
 * plaintext is what the repository keeps). Notes go to the catalog (job show) and `notes`. */
static void s_note_encrypted(vb_jobs_t *self, jb_vmrun_t *vm, json_t *notes)
{
    if (vb_repo_encrypted(self->repo))
        return;
    for (size_t i = 0; i < vm->ndisks; i++) {
        if (!vm->disks[i].inv->encrypted)
            continue;
        char note[512];
        snprintf(note, sizeof note,
                 "disk %s of %s is encrypted but the repository is not: its plaintext is stored "
                 "unencrypted (back it up into an encrypted repository to keep it encrypted)",
                 vm->disks[i].inv->key, vm->name);
        json_array_append_new(notes, json_string(note));
        if (vb_catalog_job_vm_add_note(self->cfg.catalog, vm->job->id, vm->name, note) != 0)
            VB_LOG_ERROR("jobs", "catalog error=\"%s\"", vb_error_msg());
    }
}

int vb_jobs_backup(vb_jobs_t *self, json_t *args, json_t **result)
{
    int rc = jb_ready(self);
    if (rc)
        return rc;
    vb_inventory_t *inv = NULL;
    if ((rc = jb_inventory(self, &inv)) != 0)
        return vb_error_prefix(rc, "inventory");
    bool all = json_is_true(json_object_get(args, "all"));
    json_t *names = json_object_get(args, "vms");
    json_t *fcds = json_object_get(args, "fcds");
    const vb_inv_vm_t **pick = calloc(inv->vm_count + 1, sizeof *pick);
    size_t n = 0;
    for (size_t i = 0; all && i < inv->vm_count; i++)
        if (!inv->vms[i].is_fcd)
            pick[n++] = &inv->vms[i];
    size_t idx;
    json_t *v;
    json_t *lists[2] = {names, fcds};
    for (int l = 0; !rc && l < 2; l++) {
        json_array_foreach(lists[l], idx, v)
        {
            const char *name = json_string_value(v);
            const vb_inv_vm_t *vm = name ? vb_inventory_find_vm(inv, name) : NULL;
            if (!vm || vm->is_fcd != (l == 1)) {
                rc = vb_error_set(VB_ENOTFOUND, "%s '%s' is not in the inventory",
                                  l ? "First Class Disk" : "VM", name ? name : "?");
                break;
            }
            bool dup = false;
            for (size_t k = 0; k < n; k++)
                dup |= pick[k] == vm;
            if (!dup && n < inv->vm_count)
                pick[n++] = vm;
        }
    }
    if (!rc && n == 0)
        rc = vb_error_set(VB_EINVAL, "nothing to back up: name VMs, --fcd NAME or --all");
    vb_job_t row = {0};
    int64_t id = 0;
    if (!rc) {
        row.kind = VB_JOB_BACKUP;
        row.full = json_is_true(json_object_get(args, "full"));
        row.started = jb_now();
        row.vms = calloc(n, sizeof *row.vms);
        row.vm_count = n;
        for (size_t i = 0; i < n; i++) {
            row.vms[i].vm = pick[i]->name;
            row.vms[i].is_fcd = pick[i]->is_fcd;
        }
        rc = vb_catalog_job_create(self->cfg.catalog, &row, &id);
        free(row.vms);
    }
    if (rc) {
        free(pick);
        vb_inventory_free(&inv);
        return rc;
    }
    jb_job_t *job = jb_job_new(self, id, VB_JOB_BACKUP, inv, n);
    job->full = row.full;
    for (size_t i = 0; i < n; i++)
        jb_vmrun_init(job, &job->vms[i], pick[i]);
    free(pick);
    VB_LOG_INFO("jobs", "backup_started job=%lld vms=%zu full=%d", (long long)id, n, row.full);
    json_t *notes = json_array();
    for (size_t i = 0; i < n; i++)
        s_note_encrypted(self, &job->vms[i], notes);
    *result = json_pack("{s:I, s:o}", "job", (json_int_t)id, "notes", notes);
    for (size_t i = 0; i < n; i++) {
        jb_vmrun_t *vm = &job->vms[i];
        if (jb_backup_vm_start(self, vm, row.full) != 0 && !vm->finished)
            jb_vm_fail(self, vm, vb_error_msg());
    }
    jb_dispatch(self);
    jb_reap(self);
    return 0;
}
