#include "admin.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <czmq.h>

#include "catalog_json.h"
#include "log.h"
#include "repo/gc.h"
#include "repo/index.h"
#include "repo/manifest.h"
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

/* Ends the verify jobs whose lease has expired: they no longer protect anything. */
static int s_expire_verify_leases(vb_admin_t *self)
{
    vb_job_filter_t filter = {false, VB_JOB_RUNNING, 0};
    vb_job_t *jobs = NULL;
    size_t n = 0;
    int rc = vb_catalog_jobs_list(self->catalog, &filter, &jobs, &n);
    int64_t now = vb_time_now_ms();
    for (size_t i = 0; !rc && i < n; i++) {
        if (jobs[i].kind != VB_JOB_VERIFY)
            continue;
        json_t *o = jobs[i].options ? json_loads(jobs[i].options, 0, NULL) : NULL;
        int64_t until = (int64_t)json_integer_value(json_object_get(o, "lease_until"));
        json_decref(o);
        if (until > now)
            continue;
        VB_LOG_WARN("admin", "verify_lease_expired job=%lld", (long long)jobs[i].id);
        rc = vb_catalog_job_finish(self->catalog, jobs[i].id, VB_JOB_FAILED,
                                   "the verify did not report before its lease expired "
                                   "(verify_lease_s); its restore point is no longer protected",
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

/* A prune: what retention decides for every complete restore point, what running jobs use. */
typedef struct {
    vb_restore_point_t *rps;
    size_t n;
    unsigned *reasons;
    int64_t *doomed;
    size_t nd;
    json_t *list;
    size_t kept_in_use; /* restore points removed but for a running job that uses them */
} s_prune_t;

static void s_prune_clear(s_prune_t *p)
{
    vb_restore_points_free(&p->rps, p->n);
    free(p->reasons);
    free(p->doomed);
    json_decref(p->list);
}

/* One row of the prune list; a restore point a running job uses is kept, and says why. */
static json_t *s_prune_row(s_prune_t *p, size_t i, const vb_rp_use_t *uses, size_t nu)
{
    const vb_restore_point_t *rp = &p->rps[i];
    json_t *used_by = json_array();
    for (size_t k = 0; k < nu; k++) {
        char why[160];
        if (uses[k].rp_id != rp->id)
            continue;
        if (!p->reasons[i])
            p->kept_in_use++;
        p->reasons[i] |= VB_KEEP_IN_USE;
        json_array_append_new(used_by, json_string(vb_rp_use_text(&uses[k], why, sizeof why)));
    }
    char decision[96];
    return json_pack("{s:I, s:s, s:o, s:s, s:o}", "id", (json_int_t)rp->id, "vm", rp->vm,
                     "created", vb_json_time(rp->created), "decision",
                     vb_retention_reason_text(p->reasons[i], decision, sizeof decision),
                     "in_use", used_by);
}

static int s_prune_decide(vb_admin_t *self, const vb_retention_policy_t *policy, s_prune_t *p)
{
    vb_rp_use_t *uses = NULL;
    size_t nu = 0;
    int rc = vb_catalog_restore_points_list(self->catalog, NULL, &p->rps, &p->n);
    if (!rc)
        rc = vb_catalog_restore_points_in_use(self->catalog, &uses, &nu);
    if (rc)
        return rc;
    vb_rp_info_t *info = calloc(p->n ? p->n : 1, sizeof *info);
    char (*ids)[24] = calloc(p->n ? p->n : 1, sizeof *ids);
    p->reasons = calloc(p->n ? p->n : 1, sizeof *p->reasons);
    p->doomed = calloc(p->n ? p->n : 1, sizeof *p->doomed);
    p->list = json_array();
    if (!info || !ids || !p->reasons || !p->doomed) {
        rc = vb_error_set(VB_ENOMEM, "prune: out of memory");
        goto out;
    }
    for (size_t i = 0; i < p->n; i++) {
        snprintf(ids[i], sizeof ids[i], "%020lld", (long long)p->rps[i].id);
        info[i] = (vb_rp_info_t){ids[i], p->rps[i].vm, p->rps[i].created / 1000, true};
    }
    rc = vb_retention_select(policy, info, p->n, p->reasons);
    for (size_t i = 0; !rc && i < p->n; i++) {
        json_array_append_new(p->list, s_prune_row(p, i, uses, nu));
        if (!p->reasons[i])
            p->doomed[p->nd++] = p->rps[i].id;
    }
out:
    free(uses);
    free(info);
    free(ids);
    return rc;
}

static int s_push(char ***v, size_t *n, const char *text)
{
    char **grown = realloc(*v, (*n + 1) * sizeof *grown);
    if (!grown)
        return vb_error_set(VB_ENOMEM, "prune: out of memory");
    *v = grown;
    if (!(grown[*n] = strdup(text)))
        return vb_error_set(VB_ENOMEM, "prune: out of memory");
    (*n)++;
    return 0;
}

/* The index paths of the restore points a dry run would remove. */
static int s_doomed_indexes(vb_admin_t *self, const s_prune_t *p, char ***out, size_t *np)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < p->nd; i++) {
        vb_restore_point_t rp = {0};
        if ((rc = vb_catalog_restore_point_get(self->catalog, p->doomed[i], &rp)) != 0)
            break;
        for (size_t k = 0; !rc && k < rp.disk_count; k++)
            if (rp.disks[k].index_path)
                rc = s_push(out, np, rp.disks[k].index_path);
        vb_restore_point_clear(&rp);
    }
    return rc;
}

/* Deletes the doomed restore points and their indexes; a dry run only finds their indexes, so
 * that GC can say what it would free once they are gone. */
static int s_prune_remove(vb_admin_t *self, vb_repo_t *repo, const s_prune_t *p, bool dry,
                          char ***paths, size_t *np)
{
    if (dry)
        return s_doomed_indexes(self, p, paths, np);
    int rc = p->nd ? vb_catalog_restore_points_delete(self->catalog, p->doomed, p->nd, false,
                                                      paths, np)
                   : 0;
    for (size_t i = 0; !rc && repo && i < *np; i++)
        if (vb_index_remove(repo, (*paths)[i]) != 0)
            VB_LOG_WARN("admin", "index_remove_failed index=%s error=\"%s\"", (*paths)[i],
                        vb_error_msg());
    for (size_t i = 0; !rc && repo && i < p->nd; i++) {
        int mrc = vb_manifest_remove(vb_repo_store(repo), p->doomed[i]);
        if (mrc && mrc != VB_ENOTFOUND) /* a restore point from before manifests has none */
            VB_LOG_WARN("admin", "manifest_remove_failed rp=%lld error=\"%s\"",
                        (long long)p->doomed[i], vb_error_msg());
        vb_error_clear();
    }
    return rc;
}

/* Collects garbage older than the oldest running job, marking only from indexes that restore
 * points own; index files nobody owns are reported in `orphans`. */
static int s_prune_gc(vb_admin_t *self, vb_repo_t *repo, char **dropped, size_t nd, bool dry,
                      unsigned repack_below, vb_gc_stats_t *gc, json_t *orphans)
{
    int64_t oldest = 0;
    char **live = NULL;
    size_t nl = 0;
    int rc = vb_catalog_oldest_running_job(self->catalog, &oldest);
    if (!rc)
        rc = vb_catalog_index_paths_live(self->catalog, &live, &nl);
    if (rc)
        return rc;
    vb_gc_owners_t owners = {.owned = (const char *const *)live, .owned_count = nl,
                             .dropped = (const char *const *)dropped, .dropped_count = nd};
    time_t cutoff = oldest ? (time_t)(oldest / 1000) : time(NULL);
    rc = vb_repo_gc_ex(repo, &owners, cutoff, repack_below, dry, gc);
    for (size_t i = 0; i < owners.orphan_count; i++)
        json_array_append_new(orphans, json_string(owners.orphans[i]));
    vb_index_list_free(owners.orphans, owners.orphan_count);
    vb_catalog_strings_free(&live, nl);
    return rc;
}

static json_t *s_packs_counts_json(const vb_packgc_stats_t *g)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "packs", (json_int_t)g->packs,
                     "deleted", (json_int_t)g->packs_deleted, "rewritten",
                     (json_int_t)g->packs_rewritten, "written", (json_int_t)g->packs_written,
                     "kept_recent", (json_int_t)g->packs_recent, "kept_busy",
                     (json_int_t)g->packs_busy, "bytes_freed", (json_int_t)g->bytes_freed,
                     "index_objects_before", (json_int_t)g->index_before,
                     "index_objects_written", (json_int_t)g->index_written);
}

/* Format 2: what the collection did to packs and index objects. */
static json_t *s_packs_json(const vb_packgc_stats_t *g)
{
    json_t *o = s_packs_counts_json(g);
    if (o && g->packs_locked)
        json_object_update_missing_new(o, json_pack("{s:I, s:I, s:I}", "kept_locked",
                                                    (json_int_t)g->packs_locked, "bytes_locked",
                                                    (json_int_t)g->bytes_locked, "locked_until",
                                                    (json_int_t)g->locked_until));
    return o;
}

/* Retention: select, keep what running jobs use, delete the rest outside the policy (never a
 * VM's newest) with their indexes, then collect garbage older than the oldest running job. A dry
 * run changes nothing and says what would go. */
static int s_prune(vb_admin_t *self, json_t *args, json_t **result)
{
    vb_retention_policy_t policy = {(unsigned)s_int(args, "keep_last"),
                                    (unsigned)s_int(args, "keep_daily"),
                                    (unsigned)s_int(args, "keep_weekly"),
                                    (unsigned)s_int(args, "keep_monthly")};
    bool dry = json_is_true(json_object_get(args, "dry_run"));
    json_t *rb = json_object_get(args, "repack_below");
    unsigned repack_below = json_is_integer(rb) ? (unsigned)s_int(args, "repack_below")
                                                : VB_PACKGC_REPACK_DEFAULT;
    s_prune_t p = {0};
    char **paths = NULL;
    size_t np = 0;
    vb_gc_stats_t gc = {0};
    json_t *orphans = json_array();
    vb_repo_t *repo = NULL;
    int rc = s_expire_verify_leases(self);
    if (!rc && repack_below > 100)
        rc = vb_error_set(VB_EINVAL, "prune: repack_below is a percentage, 0 to 100");
    if (!rc)
        rc = s_prune_decide(self, &policy, &p);
    if (!rc && self->repository &&
        !(repo = vb_repo_open_opts(
              self->repository, self->repository_key_file,
              &(vb_store_opts_t){.credentials_file = self->repository_credentials_file})))
        rc = vb_error_code();
    if (!rc)
        rc = s_prune_remove(self, repo, &p, dry, &paths, &np);
    if (!rc && repo)
        rc = s_prune_gc(self, repo, paths, dry ? np : 0, dry, repack_below, &gc, orphans);
    if (!rc) {
        *result = json_pack("{s:b, s:I, s:I, s:O, s:{s:I, s:I, s:I, s:O}}", "dry_run", dry,
                            "removed", (json_int_t)p.nd, "kept_in_use", (json_int_t)p.kept_in_use,
                            "restore_points", p.list, "gc", "swept", (json_int_t)gc.swept,
                            "swept_bytes", (json_int_t)gc.swept_bytes, "kept_recent",
                            (json_int_t)gc.kept_recent, "orphan_indexes", orphans);
        if (*result && repo && vb_repo_format(repo) == VB_REPO_FORMAT_PACKED)
            json_object_set_new(json_object_get(*result, "gc"), "packs", s_packs_json(&gc.packs));
    }
    vb_repo_destroy(&repo);
    vb_catalog_strings_free(&paths, np);
    json_decref(orphans);
    s_prune_clear(&p);
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

/* One row per control command: adding a command is a row and a handler. */
typedef struct {
    const char *name;
    int (*handler)(vb_admin_t *self, json_t *args, json_t **result);
} s_command_t;

static const s_command_t s_commands[] = {
    {"backup", s_backup},
    {"restore", s_restore},
    {"explain", s_explain},
    {"jobs", s_jobs},
    {"job.show", s_job_show},
    {"job.cancel", s_job_cancel},
    {"restore-points", s_restore_points},
    {"restore-point.show", s_restore_point_show},
    {"verify.plan", s_verify_plan},
    {"verify.record", s_verify_record},
    {"prune", s_prune},
    {"orphans", s_orphans},
    {"agent.remove", vb_admin_agent_remove},
    {"token.rotate", vb_admin_token_rotate},
};

int vb_admin_handle(vb_admin_t *self, const char *command, json_t *args, json_t **result)
{
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (streq(command, s_commands[i].name))
            return s_commands[i].handler(self, args, result);
    return 1;
}
