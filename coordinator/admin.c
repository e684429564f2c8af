#include "admin.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <czmq.h>

#include "admin_args.h"
#include "catalog_json.h"
#include "log.h"
#include "policy/explain.h"
#include "timefmt.h"

static int64_t s_int(json_t *args, const char *key)
{
    return vb_args_int(args, key, 0);
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
    if (job.state == VB_JOB_RUNNING && s_int(args, "wait_ms") > 0) {
        vb_job_clear(&job);
        return VB_ADMIN_AFTER_JOB;
    }
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
    if (vb_args_bool(args, "tasks")) {
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
    filter.vm = vb_args_str(args, "vm");
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
    bool ok = vb_args_bool(args, "ok");
    const char *error = vb_args_str(args, "error");
    /* The lease ends first: a verify whose lease expired (or whose job a restarted coordinator
     * ended) still records its result. */
    if (job > 0 &&
        vb_catalog_job_finish(self->catalog, job, ok ? VB_JOB_SUCCEEDED : VB_JOB_FAILED,
                              ok ? NULL : error, now) != 0)
        VB_LOG_WARN("admin", "verify_job_finish job=%lld error=\"%s\"", (long long)job,
                    vb_error_msg());
    if (vb_args_bool(args, "aborted")) { /* nothing was checked */
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
    bool remove = vb_args_bool(args, "delete");
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

static int s_ping(vb_admin_t *self, json_t *args, json_t **result)
{
    (void)self;
    (void)args;
    *result = json_pack("{s:s}", "version", VB_VERSION);
    return *result ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
}

/* `vbak agents`: the registry's view, and a "warning" on each agent whose VixDiskLib does not
 * support the server's version (explain says the same on its rows). */
static int s_agents(vb_admin_t *self, json_t *args, json_t **result)
{
    (void)args;
    json_t *agents = vb_registry_agents_json(self->registry);
    const char *server =
        vb_provider_server_version(self->jobs ? vb_jobs_provider(self->jobs) : NULL);
    size_t i;
    json_t *a;
    char msg[512];
    json_array_foreach(agents, i, a)
    {
        const char *name = json_string_value(json_object_get(a, "name"));
        const char *v = json_string_value(json_object_get(a, "vddk_version"));
        if (vb_explain_vddk_warning(name, v, server, msg, sizeof msg))
            json_object_set_new(a, "warning", json_string(msg));
    }
    *result = agents;
    return agents ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
}

/* `vbak status`: answered with a census counted after the request (the server counts it on a
 * worker); an expired serve or verify is not counted as running. */
static int s_status(vb_admin_t *self, json_t *args, json_t **result)
{
    (void)args;
    (void)result;
    if (vb_admin_expire_leases(self) != 0)
        VB_LOG_WARN("admin", "lease_expiry_failed error=\"%s\"", vb_error_msg());
    return VB_ADMIN_AFTER_CENSUS;
}

/* ---- the command table ---- */

#define S_ID(name) {name, VB_ARG_INT, true, 1, INT64_MAX, NULL}
#define S_BOOL(name) {name, VB_ARG_BOOL, false, 0, 0, NULL}
#define S_NAME(name, required) {name, VB_ARG_STRING, required, 1, 0, NULL}

static const vb_arg_t s_no_args[] = {VB_ARGS_END};
static const vb_arg_t s_id_args[] = {S_ID("id"), VB_ARGS_END};
static const vb_arg_t s_backup_args[] = {{"vms", VB_ARG_STRINGS, false, 0, 0, NULL},
                                         {"fcds", VB_ARG_STRINGS, false, 0, 0, NULL},
                                         S_BOOL("all"), S_BOOL("full"), VB_ARGS_END};
static const vb_arg_t s_restore_args[] = {
    S_ID("rp"),         S_NAME("to_dir", false), S_BOOL("to_vm"), S_BOOL("delete_snapshots"),
    S_NAME("new_vm", false), S_NAME("datastore", false), VB_ARGS_END};
static const vb_arg_t s_explain_args[] = {S_NAME("vm", true), S_NAME("agent", false),
                                          S_BOOL("restore"), VB_ARGS_END};
static const vb_arg_t s_jobs_args[] = {{"limit", VB_ARG_INT, false, 0, 1000000, NULL},
                                       VB_ARGS_END};
/* wait_ms: answer when the job ends or after that long (VB_ADMIN_AFTER_JOB) */
static const vb_arg_t s_job_show_args[] = {
    S_ID("id"), S_BOOL("tasks"), {"wait_ms", VB_ARG_INT, false, 0, 60000, NULL}, VB_ARGS_END};
/* before, after: ms since the epoch, 0 for none */
static const vb_arg_t s_restore_points_args[] = {
    S_NAME("vm", false), {"before", VB_ARG_INT, false, 0, INT64_MAX, NULL},
    {"after", VB_ARG_INT, false, 0, INT64_MAX, NULL}, {"last", VB_ARG_INT, false, 0, INT32_MAX, NULL},
    VB_ARGS_END};
static const vb_arg_t s_verify_plan_args[] = {S_ID("rp"), VB_ARGS_END};
static const vb_arg_t s_verify_record_args[] = {
    S_ID("rp"),     {"job", VB_ARG_INT, false, 0, INT64_MAX, NULL}, S_BOOL("ok"), S_BOOL("aborted"),
    {"error", VB_ARG_STRING, false, 0, 65536, NULL}, VB_ARGS_END};
/* serve.start and serve.renew take the same lease arguments; a renew names its job */
#define S_LEASE_ARGS                                                                           \
    {"disks", VB_ARG_STRINGS, false, 0, 1024, NULL},                                           \
        {"host", VB_ARG_STRING, false, 0, 255, NULL},                                          \
        {"pid", VB_ARG_INT, false, 0, INT32_MAX, NULL},                                        \
        {"exports", VB_ARG_OBJECTS, false, 0, 1024, NULL}
static const vb_arg_t s_serve_start_args[] = {
    S_ID("rp"), {"job", VB_ARG_INT, false, 0, INT64_MAX, NULL}, S_LEASE_ARGS, VB_ARGS_END};
static const vb_arg_t s_serve_renew_args[] = {
    {"rp", VB_ARG_INT, false, 0, INT64_MAX, NULL}, S_ID("job"), S_LEASE_ARGS, VB_ARGS_END};
static const vb_arg_t s_serve_stop_args[] = {S_ID("job"), VB_ARGS_END};
static const vb_arg_t s_prune_args[] = {{"keep_last", VB_ARG_INT, false, 0, 100000, NULL},
                                        {"keep_daily", VB_ARG_INT, false, 0, 100000, NULL},
                                        {"keep_weekly", VB_ARG_INT, false, 0, 100000, NULL},
                                        {"keep_monthly", VB_ARG_INT, false, 0, 100000, NULL},
                                        {"repack_below", VB_ARG_INT, false, 0, 100, NULL},
                                        S_BOOL("dry_run"), VB_ARGS_END};
static const vb_arg_t s_orphans_args[] = {S_BOOL("delete"), VB_ARGS_END};
static const vb_arg_t s_agent_remove_args[] = {{"name", VB_ARG_STRING, true, 1, 255, NULL},
                                               VB_ARGS_END};

/* One row per control command, as Redis's command table: adding a command is a row and a
 * handler. `args`: the schema its arguments are checked against before anything runs (the
 * handler reads them with vb_args_*). `slow`: where it runs (vb_admin_slow_t); `worker`: the
 * form of a VB_ADMIN_WORKER command that runs on a worker, `handler` its form for a coordinator
 * without an event loop. */
typedef struct {
    const char *name;
    int (*handler)(vb_admin_t *self, json_t *args, json_t **result);
    const vb_arg_t *args;
    vb_admin_slow_t slow;
    vb_admin_worker_fn worker;
} s_command_t;

static const s_command_t s_commands[] = {
    {"ping", s_ping, s_no_args, VB_ADMIN_FAST, NULL},
    {"agents", s_agents, s_no_args, VB_ADMIN_FAST, NULL},
    {"status", s_status, s_no_args, VB_ADMIN_FAST, NULL},
    {"backup", s_backup, s_backup_args, VB_ADMIN_INVENTORY, NULL},
    {"restore", s_restore, s_restore_args, VB_ADMIN_INVENTORY, NULL},
    {"explain", s_explain, s_explain_args, VB_ADMIN_INVENTORY, NULL},
    {"jobs", s_jobs, s_jobs_args, VB_ADMIN_FAST, NULL},
    {"job.show", s_job_show, s_job_show_args, VB_ADMIN_FAST, NULL},
    {"job.cancel", s_job_cancel, s_id_args, VB_ADMIN_FAST, NULL},
    {"restore-points", s_restore_points, s_restore_points_args, VB_ADMIN_FAST, NULL},
    {"restore-point.show", s_restore_point_show, s_id_args, VB_ADMIN_FAST, NULL},
    {"verify.plan", s_verify_plan, s_verify_plan_args, VB_ADMIN_FAST, NULL},
    {"verify.record", s_verify_record, s_verify_record_args, VB_ADMIN_FAST, NULL},
    {"serve.start", vb_admin_serve_start, s_serve_start_args, VB_ADMIN_FAST, NULL},
    {"serve.renew", vb_admin_serve_renew, s_serve_renew_args, VB_ADMIN_FAST, NULL},
    {"serve.stop", vb_admin_serve_stop, s_serve_stop_args, VB_ADMIN_FAST, NULL},
    {"serves", vb_admin_serves, s_no_args, VB_ADMIN_FAST, NULL},
    {"prune", vb_admin_prune, s_prune_args, VB_ADMIN_FAST, NULL},
    {"orphans", s_orphans, s_orphans_args, VB_ADMIN_WORKER, vb_admin_orphans},
    {"agent.remove", vb_admin_agent_remove, s_agent_remove_args, VB_ADMIN_FAST, NULL},
    {"token.rotate", vb_admin_token_rotate, s_no_args, VB_ADMIN_FAST, NULL},
};

static const s_command_t *s_command(const char *name)
{
    for (size_t i = 0; name && i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (streq(name, s_commands[i].name))
            return &s_commands[i];
    return NULL;
}

int vb_admin_request(const char *command, const char *args_json, json_t **args)
{
    *args = NULL;
    const s_command_t *c = s_command(command);
    char name[72];
    if (!c)
        return vb_error_set(VB_ENOTFOUND, "unknown command '%s'",
                            vb_args_printable(command, name, sizeof name));
    json_error_t jerr;
    json_t *parsed = json_loads(args_json && *args_json ? args_json : "{}", 0, &jerr);
    if (!parsed)
        return vb_error_set(VB_EINVAL, "%s: the arguments are not JSON (%s)", c->name,
                            vb_args_printable(jerr.text, name, sizeof name));
    int rc = vb_args_check(c->name, c->args, parsed);
    if (rc)
        json_decref(parsed);
    else
        *args = parsed;
    return rc;
}

vb_admin_slow_t vb_admin_slow(const char *command)
{
    const s_command_t *c = s_command(command);
    return c ? c->slow : VB_ADMIN_FAST;
}

vb_admin_worker_fn vb_admin_on_worker(const char *command)
{
    const s_command_t *c = s_command(command);
    return c ? c->worker : NULL;
}

int vb_admin_handle(vb_admin_t *self, const char *command, json_t *args, json_t **result)
{
    const s_command_t *c = s_command(command);
    char name[72];
    if (!c)
        return vb_error_set(VB_ENOTFOUND, "unknown command '%s'",
                            vb_args_printable(command, name, sizeof name));
    return c->handler(self, args, result);
}
