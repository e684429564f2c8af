#include "admin.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <czmq.h>

#include "catalog_json.h"
#include "log.h"
#include "repo/gc.h"
#include "repo/index.h"
#include "repo/retention.h"
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
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, vb_json_job(&jobs[i], false));
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
    vb_job_clear(&job);
    vb_task_counts_t counts = {0};
    if ((rc = vb_catalog_job_task_counts(self->catalog, id, &counts)) != 0) {
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

/* What `vbak verify` needs to re-read a restore point itself: the repository and the index of
 * every disk. The CLI reports the outcome back with verify.record. */
static int s_verify_plan(vb_admin_t *self, json_t *args, json_t **result)
{
    int64_t id = s_int(args, "rp");
    vb_restore_point_t rp = {0};
    int rc = vb_catalog_restore_point_get(self->catalog, id, &rp);
    if (rc)
        return vb_error_set(rc, "restore point %lld does not exist", (long long)id);
    json_t *disks = json_array();
    for (size_t i = 0; i < rp.disk_count; i++)
        json_array_append_new(disks, json_pack("{s:s, s:s}", "key", rp.disks[i].key, "index",
                                               rp.disks[i].index_path ? rp.disks[i].index_path : ""));
    *result = json_pack("{s:I, s:s, s:s?, s:s, s:o}", "rp", (json_int_t)id, "repository",
                        self->repository ? self->repository : "", "key_file",
                        self->repository_key_file, "vm", rp.vm, "disks", disks);
    vb_restore_point_clear(&rp);
    return 0;
}

static int s_verify_record(vb_admin_t *self, json_t *args, json_t **result)
{
    int64_t id = s_int(args, "rp");
    bool ok = json_is_true(json_object_get(args, "ok"));
    const char *error = json_string_value(json_object_get(args, "error"));
    int rc = vb_catalog_restore_point_set_verify(self->catalog, id,
                                                 ok ? VB_VERIFY_OK : VB_VERIFY_FAILED,
                                                 ok ? NULL : error, vb_time_now_ms());
    if (!rc)
        *result = json_pack("{s:I, s:s}", "rp", (json_int_t)id, "verify", ok ? "ok" : "failed");
    return rc;
}

/* Retention: select, delete the restore points outside the policy (never a VM's newest), remove
 * their indexes, then collect garbage older than the oldest running job. */
static int s_prune(vb_admin_t *self, json_t *args, json_t **result)
{
    vb_retention_policy_t policy = {(unsigned)s_int(args, "keep_last"),
                                    (unsigned)s_int(args, "keep_daily"),
                                    (unsigned)s_int(args, "keep_weekly"),
                                    (unsigned)s_int(args, "keep_monthly")};
    bool dry = json_is_true(json_object_get(args, "dry_run"));
    vb_restore_point_t *rps = NULL;
    size_t n = 0;
    int rc = vb_catalog_restore_points_list(self->catalog, NULL, &rps, &n);
    if (rc)
        return rc;
    vb_rp_info_t *info = calloc(n ? n : 1, sizeof *info);
    char (*ids)[24] = calloc(n ? n : 1, sizeof *ids);
    unsigned *reasons = calloc(n ? n : 1, sizeof *reasons);
    int64_t *doomed = calloc(n ? n : 1, sizeof *doomed);
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "%020lld", (long long)rps[i].id);
        info[i].id = ids[i];
        info[i].vm = rps[i].vm;
        info[i].time = rps[i].created / 1000;
        info[i].complete = true;
    }
    json_t *list = json_array();
    rc = vb_retention_select(&policy, info, n, reasons);
    for (size_t i = 0; !rc && i < n; i++) {
        char why[64];
        json_array_append_new(list, json_pack("{s:I, s:s, s:o, s:s}", "id", (json_int_t)rps[i].id,
                                              "vm", rps[i].vm, "created",
                                              vb_json_time(rps[i].created), "decision",
                                              vb_retention_reason_text(reasons[i], why, sizeof why)));
        if (!reasons[i])
            doomed[nd++] = rps[i].id;
    }
    char **paths = NULL;
    size_t np = 0;
    vb_gc_stats_t gc = {0};
    if (!rc && !dry && nd)
        rc = vb_catalog_restore_points_delete(self->catalog, doomed, nd, false, &paths, &np);
    vb_repo_t *repo = !rc && !dry && self->repository
                          ? vb_repo_open(self->repository, self->repository_key_file)
                          : NULL;
    for (size_t i = 0; repo && i < np; i++)
        if (vb_index_remove(repo, paths[i]) != 0)
            VB_LOG_WARN("admin", "index_remove_failed index=%s error=\"%s\"", paths[i],
                        vb_error_msg());
    if (repo) {
        int64_t oldest = 0;
        if (vb_catalog_oldest_running_job(self->catalog, &oldest) == 0) {
            time_t cutoff = oldest ? (time_t)(oldest / 1000) : time(NULL);
            rc = vb_repo_gc(repo, cutoff, false, &gc);
        }
        vb_repo_destroy(&repo);
    }
    if (!rc)
        *result = json_pack("{s:b, s:I, s:o, s:{s:I, s:I, s:I}}", "dry_run", dry, "removed",
                            (json_int_t)(dry ? 0 : nd), "restore_points", list, "gc", "swept",
                            (json_int_t)gc.swept, "swept_bytes", (json_int_t)gc.swept_bytes,
                            "kept_recent", (json_int_t)gc.kept_recent);
    else
        json_decref(list);
    vb_catalog_strings_free(&paths, np);
    vb_restore_points_free(&rps, n);
    free(info);
    free(ids);
    free(reasons);
    free(doomed);
    return rc;
}

/* Disk files on the site's datastores that belong to no VM or FCD; `delete` removes them. */
static int s_orphans(vb_admin_t *self, json_t *args, json_t **result)
{
    vb_provider_t *p = vb_jobs_provider(self->jobs);
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

int vb_admin_handle(vb_admin_t *self, const char *command, json_t *args, json_t **result)
{
    if (streq(command, "backup"))
        return vb_jobs_backup(self->jobs, args, result);
    if (streq(command, "restore"))
        return vb_jobs_restore(self->jobs, args, result);
    if (streq(command, "explain"))
        return vb_jobs_explain(self->jobs, args, result);
    if (streq(command, "jobs"))
        return s_jobs(self, args, result);
    if (streq(command, "job.show"))
        return s_job_show(self, args, result);
    if (streq(command, "job.cancel"))
        return vb_jobs_cancel(self->jobs, s_int(args, "id"), result);
    if (streq(command, "restore-points"))
        return s_restore_points(self, args, result);
    if (streq(command, "restore-point.show"))
        return s_restore_point_show(self, args, result);
    if (streq(command, "verify.plan"))
        return s_verify_plan(self, args, result);
    if (streq(command, "verify.record"))
        return s_verify_record(self, args, result);
    if (streq(command, "prune"))
        return s_prune(self, args, result);
    if (streq(command, "orphans"))
        return s_orphans(self, args, result);
    return 1;
}
