#include "admin.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <czmq.h>

#include "catalog_json.h"
#include "log.h"
#include "timefmt.h"

static int64_t s_int(json_t *args, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(args, key));
}

static int s_jobs(vb_admin_t *self, json_t *args, json_t **result)
{
    vb_job_filter_t filter = {true, VB_JOB_RUNNING, (size_t)s_int(args, "limit")};
    vb_job_t *jobs = NULL;
    size_t n = 0;
    int rc = vb_catalog_jobs_list(self->catalog, &filter, &jobs, &n);
    if (rc)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *row = vb_json_job(&jobs[i], false);
        const char *phase = vb_admin_worker_phase(self, jobs[i].id);
        if (row && phase) /* on a worker: say what it does */
            json_object_set_new(row, "phase", json_string(phase));
        json_array_append_new(arr, row);
    }
    vb_jobs_free(&jobs, n);
    *result = arr;
    return 0;
}

static int s_job_show(vb_admin_t *self, json_t *args, json_t **result)
{
    int64_t id = s_int(args, "id");
    vb_job_t job = {0};
    int rc = vb_catalog_job_get(self->catalog, id, &job);
    if (rc)
        return vb_error_set(rc, "job %lld does not exist", (long long)id);
    json_t *out = vb_json_job(&job, true);
    vb_job_kind_t kind = job.kind;
    vb_job_state_t state = job.state;
    char *options = job.options; /* a prune's outcome */
    job.options = NULL;
    vb_job_clear(&job);
    vb_task_counts_t counts = {0};
    if ((rc = vb_catalog_job_task_counts(self->catalog, id, &counts)) != 0) {
        free(options);
        json_decref(out);
        return rc;
    }
    /* bytes are the read phase's only: a map task spans its disk but reads no data */
    json_t *progress = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "tasks", (json_int_t)counts.total,
        "queued", (json_int_t)counts.queued, "running", (json_int_t)counts.running, "done",
        (json_int_t)counts.done, "failed", (json_int_t)counts.failed, "map_tasks",
        (json_int_t)counts.map_total, "map_done", (json_int_t)counts.map_done, "bytes_total",
        (json_int_t)counts.read_bytes_total, "bytes_done", (json_int_t)counts.read_bytes_done);
    if (self->jobs)
        vb_jobs_progress_phases(self->jobs, id, kind, state, progress);
    if (kind == VB_JOB_PRUNE)
        vb_admin_prune_show(self, id, state, options, out, progress);
    free(options);
    json_object_set_new(out, "progress", progress);
    if (json_is_true(json_object_get(args, "tasks"))) {
        vb_task_filter_t filter = {id, NULL, true, VB_TASK_QUEUED, 0};
        vb_task_t *tasks = NULL;
        size_t n = 0;
        if ((rc = vb_catalog_tasks_list(self->catalog, &filter, &tasks, &n)) != 0) {
            json_decref(out);
            return rc;
        }
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, vb_json_task(&tasks[i]));
        vb_tasks_free(&tasks, n);
        json_object_set_new(out, "tasks", arr);
    }
    *result = out;
    return 0;
}

static int s_restore_points(vb_admin_t *self, json_t *args, json_t **result)
{
    vb_rp_filter_t filter = {0};
    filter.vm = json_string_value(json_object_get(args, "vm"));
    filter.before = s_int(args, "before");
    filter.after = s_int(args, "after");
    int64_t last = s_int(args, "last");
    if (last > 0) { /* the newest N, listed oldest first like the rest */
        filter.limit = (size_t)last;
        filter.newest_first = true;
    }
    vb_restore_point_t *rps = NULL;
    size_t n = 0;
    int rc = vb_catalog_restore_points_list(self->catalog, &filter, &rps, &n);
    if (rc)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr,
                              vb_json_restore_point(&rps[last > 0 ? n - 1 - i : i], false));
    vb_restore_points_free(&rps, n);
    *result = arr;
    return 0;
}

static int s_restore_point_show(vb_admin_t *self, json_t *args, json_t **result)
{
    int64_t id = s_int(args, "id");
    vb_restore_point_t rp = {0};
    int rc = vb_catalog_restore_point_get(self->catalog, id, &rp);
    if (rc)
        return vb_error_set(rc, "restore point %lld does not exist", (long long)id);
    json_t *out = vb_json_restore_point(&rp, true);
    vb_restore_point_clear(&rp);
    vb_restore_point_t *chain = NULL;
    size_t n = 0;
    if (vb_catalog_restore_point_chain(self->catalog, id, &chain, &n) == 0) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:I, s:s, s:o}", "id", (json_int_t)chain[i].id,
                                                 "kind", vb_rp_kind_name(chain[i].kind), "created",
                                                 vb_json_time(chain[i].created)));
        json_object_set_new(out, "chain", arr);
        vb_restore_points_free(&chain, n);
    }
    *result = out;
    return 0;
}

/* A running verify is a job of kind verify whose VM names the restore point it reads: prune keeps
 * that restore point until verify.record ends the job, or until its lease (options.lease_until)
 * expires because the CLI that ran it went away. */
static int s_verify_lease(vb_admin_t *self, const vb_restore_point_t *rp, int64_t *job_out)
{
    int64_t now = vb_time_now_ms();
    char options[64];
    snprintf(options, sizeof options, "{\"lease_until\": %lld}",
             (long long)(now + self->verify_lease_ms));
    vb_job_vm_t vm = {.vm = rp->vm, .is_fcd = rp->is_fcd, .restore_point_id = rp->id};
    vb_job_t job = {.kind = VB_JOB_VERIFY, .options = options, .started = now, .vms = &vm,
                    .vm_count = 1};
    return vb_catalog_job_create(self->catalog, &job, job_out);
}

/* Ends the verify and serve jobs whose lease has expired: they no longer protect anything. */
int vb_admin_expire_leases(vb_admin_t *self)
{
    vb_job_filter_t filter = {false, VB_JOB_RUNNING, 0};
    vb_job_t *jobs = NULL;
    size_t n = 0;
    int rc = vb_catalog_jobs_list(self->catalog, &filter, &jobs, &n);
    int64_t now = vb_time_now_ms();
    for (size_t i = 0; !rc && i < n; i++) {
        if (jobs[i].kind != VB_JOB_VERIFY && jobs[i].kind != VB_JOB_SERVE)
            continue;
        json_t *o = jobs[i].options ? json_loads(jobs[i].options, 0, NULL) : NULL;
        int64_t until = (int64_t)json_integer_value(json_object_get(o, "lease_until"));
        json_decref(o);
        if (until > now)
            continue;
        bool serve = jobs[i].kind == VB_JOB_SERVE;
        VB_LOG_WARN("admin", "%s_lease_expired job=%lld", serve ? "serve" : "verify",
                    (long long)jobs[i].id);
        rc = vb_catalog_job_finish(self->catalog, jobs[i].id, VB_JOB_FAILED,
                                   serve ? "the serve did not renew its lease (serve_lease_s): "
                                           "its restore point is no longer protected"
                                         : "the verify did not report before its lease expired "
                                           "(verify_lease_s); its restore point is no longer "
                                           "protected",
                                   now);
    }
    vb_jobs_free(&jobs, n);
    return rc;
}

/* What `vbak verify` needs to re-read a restore point itself: the repository, the index of
 * every disk and the verify job that protects the restore point meanwhile. The CLI reports the
 * outcome back with verify.record. */
static int s_verify_plan(vb_admin_t *self, json_t *args, json_t **result)
{
    int64_t id = s_int(args, "rp"), job = 0;
    vb_restore_point_t rp = {0};
    int rc = vb_catalog_restore_point_get(self->catalog, id, &rp);
    if (rc)
        return vb_error_set(rc, "restore point %lld does not exist", (long long)id);
    if ((rc = s_verify_lease(self, &rp, &job)) != 0) {
        vb_restore_point_clear(&rp);
        return rc;
    }
    json_t *disks = json_array();
    for (size_t i = 0; i < rp.disk_count; i++)
        json_array_append_new(disks, json_pack("{s:s, s:s}", "key", rp.disks[i].key, "index",
                                               rp.disks[i].index_path ? rp.disks[i].index_path : ""));
    *result = json_pack("{s:I, s:I, s:s, s:s?, s:s?, s:s, s:o}", "rp", (json_int_t)id, "job",
                        (json_int_t)job, "repository", self->repository ? self->repository : "",
                        "key_file", self->repository_key_file, "credentials_file",
                        self->repository_credentials_file, "vm", rp.vm, "disks", disks);
    vb_restore_point_clear(&rp);
    return 0;
}

static int s_verify_record(vb_admin_t *self, json_t *args, json_t **result)
{
    int64_t id = s_int(args, "rp"), job = s_int(args, "job"), now = vb_time_now_ms();
    bool ok = json_is_true(json_object_get(args, "ok"));
    const char *error = json_string_value(json_object_get(args, "error"));
    /* The lease ends first: a verify whose lease expired (or whose job a restarted coordinator
     * ended) still records its result. */
    if (job > 0 &&
        vb_catalog_job_finish(self->catalog, job, ok ? VB_JOB_SUCCEEDED : VB_JOB_FAILED,
                              ok ? NULL : error, now) != 0)
        VB_LOG_WARN("admin", "verify_job_finish job=%lld error=\"%s\"", (long long)job,
                    vb_error_msg());
    if (json_is_true(json_object_get(args, "aborted"))) { /* nothing was checked */
        *result = json_pack("{s:I, s:s}", "rp", (json_int_t)id, "verify", "aborted");
        return 0;
    }
    int rc = vb_catalog_restore_point_set_verify(self->catalog, id,
                                                 ok ? VB_VERIFY_OK : VB_VERIFY_FAILED,
                                                 ok ? NULL : error, now);
    if (!rc)
        *result = json_pack("{s:I, s:s}", "rp", (json_int_t)id, "verify", ok ? "ok" : "failed");
    return rc;
}

/* Disk files on the site's datastores that belong to no VM or FCD; `delete` removes them. On a
 * worker with a provider of its own (listing datastores is slow); here without an event loop. */
int vb_admin_orphans(vb_provider_t *p, json_t *args, json_t **result)
{
    bool remove = json_is_true(json_object_get(args, "delete"));
    if (!p)
        return vb_error_set(VB_EINVAL, "the coordinator has no inventory provider (set site or "
                                       "provider in coordinator.conf)");
    if (!p->ops->orphans)
        return vb_error_set(VB_EUNSUPPORTED, "orphans: not supported by this provider (%s)",
                            p->ops->name);
    vb_inv_orphans_t list = {0};
    int rc = p->ops->orphans(p, remove, &list);
    if (rc)
        return rc;
    json_t *arr = json_array();
    uint64_t bytes = 0;
    for (size_t i = 0; i < list.count; i++) {
        const vb_inv_orphan_t *o = &list.items[i];
        bytes += o->size;
        json_array_append_new(arr, json_pack("{s:s, s:s?, s:I, s:I, s:b}", "path", o->path,
                                             "datastore", o->datastore, "size",
                                             (json_int_t)o->size, "length", (json_int_t)o->length,
                                             "removed", o->removed));
        if (o->removed)
            VB_LOG_INFO("admin", "orphan_removed path=\"%s\" size=%llu", o->path,
                        (unsigned long long)o->size);
    }
    *result = json_pack("{s:b, s:I, s:I, s:o}", "deleted", remove, "count", (json_int_t)list.count,
                        "bytes", (json_int_t)bytes, "orphans", arr);
    vb_inv_orphans_free(&list);
    return 0;
}

static int s_orphans(vb_admin_t *self, json_t *args, json_t **result)
{
    return vb_admin_orphans(vb_jobs_provider(self->jobs), args, result);
}

/* The job engine's commands, in the table's handler shape. */
static int s_backup(vb_admin_t *self, json_t *args, json_t **result)
{
    return vb_jobs_backup(self->jobs, args, result);
}

static int s_restore(vb_admin_t *self, json_t *args, json_t **result)
{
    return vb_jobs_restore(self->jobs, args, result);
}

static int s_explain(vb_admin_t *self, json_t *args, json_t **result)
{
    return vb_jobs_explain(self->jobs, args, result);
}

static int s_job_cancel(vb_admin_t *self, json_t *args, json_t **result)
{
    return vb_jobs_cancel(self->jobs, s_int(args, "id"), result);
}

/* One row per control command: adding a command is a row and a handler. `inventory`: the
 * handler begins with the provider's inventory, which is read on a worker first (slow on a busy
 * vCenter) and lent to it (vb_jobs_lend_inventory). `worker`: the whole command runs on a
 * worker with a provider of its own (it needs no catalog); `handler` is its form for a
 * coordinator without an event loop. */
typedef struct {
    const char *name;
    int (*handler)(vb_admin_t *self, json_t *args, json_t **result);
    bool inventory;
    vb_admin_worker_fn worker;
} s_command_t;

static const s_command_t s_commands[] = {
    {"backup", s_backup, true, NULL},
    {"restore", s_restore, true, NULL},
    {"explain", s_explain, true, NULL},
    {"jobs", s_jobs, false, NULL},
    {"job.show", s_job_show, false, NULL},
    {"job.cancel", s_job_cancel, false, NULL},
    {"restore-points", s_restore_points, false, NULL},
    {"restore-point.show", s_restore_point_show, false, NULL},
    {"verify.plan", s_verify_plan, false, NULL},
    {"verify.record", s_verify_record, false, NULL},
    {"serve.start", vb_admin_serve_start, false, NULL},
    {"serve.renew", vb_admin_serve_renew, false, NULL},
    {"serve.stop", vb_admin_serve_stop, false, NULL},
    {"serves", vb_admin_serves, false, NULL},
    {"prune", vb_admin_prune, false, NULL},
    {"orphans", s_orphans, false, vb_admin_orphans},
    {"agent.remove", vb_admin_agent_remove, false, NULL},
    {"token.rotate", vb_admin_token_rotate, false, NULL},
};

bool vb_admin_reads_inventory(const char *command)
{
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (streq(command, s_commands[i].name))
            return s_commands[i].inventory;
    return false;
}

vb_admin_worker_fn vb_admin_on_worker(const char *command)
{
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (streq(command, s_commands[i].name))
            return s_commands[i].worker;
    return NULL;
}

int vb_admin_handle(vb_admin_t *self, const char *command, json_t *args, json_t **result)
{
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (streq(command, s_commands[i].name))
            return s_commands[i].handler(self, args, result);
    return 1;
}
