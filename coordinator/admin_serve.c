/* The control commands of `vbak serve`: a served restore point is a running job of kind serve
 * whose options hold its lease and what it serves:
 *   {"lease_until": MS, "host": "...", "pid": N, "exports": [{"disk": "2000", "uri": "..."}]}
 * Prune keeps the restore point while the job runs (vb_catalog_restore_points_in_use), the
 * serve renews the lease while it runs and ends the job when it stops; a serve that went away
 * without a word stops protecting it when the lease expires (vb_admin_expire_leases). */
#include "admin.h"

#include <string.h>

#include "admin_args.h"
#include "catalog_json.h"
#include "log.h"
#include "timefmt.h"

static int64_t s_int(json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

static const char *s_str(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

/* A new reference to o's array `key`, or a new empty array. */
static json_t *s_array(json_t *o, const char *key)
{
    json_t *a = json_object_get(o, key);
    return json_is_array(a) ? json_incref(a) : json_array();
}

/* The options text of a serve job: its lease from now, and who serves what. */
static char *s_options(const vb_admin_t *self, json_t *args)
{
    json_t *o = json_pack("{s:I, s:s, s:I, s:o}", "lease_until",
                          (json_int_t)(vb_time_now_ms() + self->serve_lease_ms), "host",
                          s_str(args, "host"), "pid", (json_int_t)s_int(args, "pid"), "exports",
                          s_array(args, "exports"));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* The disks asked for (all when `want` is empty), each with its index; VB_ENOTFOUND names a
 * disk the restore point does not have. */
static int s_disks(const vb_restore_point_t *rp, json_t *want, json_t **out)
{
    json_t *disks = json_array();
    size_t i;
    json_t *w;
    json_array_foreach(want, i, w) {
        const char *key = json_string_value(w);
        size_t k = 0;
        while (k < rp->disk_count && (!key || strcmp(rp->disks[k].key, key) != 0))
            k++;
        if (k == rp->disk_count) {
            json_decref(disks);
            return vb_error_set(VB_ENOTFOUND, "restore point %lld has no disk '%s'",
                                (long long)rp->id, key ? key : "");
        }
    }
    for (size_t k = 0; k < rp->disk_count; k++) {
        bool wanted = json_array_size(want) == 0;
        json_array_foreach(want, i, w) wanted |= !strcmp(json_string_value(w), rp->disks[k].key);
        if (wanted)
            json_array_append_new(disks, json_pack("{s:s, s:s, s:I}", "key", rp->disks[k].key,
                                                   "index", rp->disks[k].index_path ? rp->disks[k].index_path : "",
                                                   "capacity", (json_int_t)rp->disks[k].capacity));
    }
    *out = disks;
    return 0;
}

int vb_admin_serve_start(vb_admin_t *self, json_t *args, json_t **result)
{
    int64_t id = s_int(args, "rp"), job = 0;
    vb_restore_point_t rp = {0};
    json_t *disks = NULL;
    char *options = NULL;
    int rc = vb_catalog_restore_point_get(self->catalog, id, &rp);
    if (rc) {
        vb_error_set(rc, "restore point %lld does not exist", (long long)id);
        goto out;
    }
    if (rp.state != VB_RP_COMPLETE) {
        rc = vb_error_set(VB_EINVAL, "restore point %lld is not complete (its backup runs)",
                          (long long)id);
        goto out;
    }
    if (!self->repository) {
        rc = vb_error_set(VB_EINVAL, "the coordinator has no repository");
        goto out;
    }
    if ((rc = s_disks(&rp, json_object_get(args, "disks"), &disks)) != 0) /* checked: strings */
        goto out;
    if (!(options = s_options(self, args))) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    vb_job_vm_t vm = {.vm = rp.vm, .is_fcd = rp.is_fcd, .restore_point_id = rp.id};
    vb_job_t j = {.kind = VB_JOB_SERVE, .options = options, .started = vb_time_now_ms(),
                  .vms = &vm, .vm_count = 1};
    if ((rc = vb_catalog_job_create(self->catalog, &j, &job)) != 0)
        goto out;
    VB_LOG_INFO("admin", "serve_start job=%lld rp=%lld", (long long)job, (long long)id);
    *result = json_pack("{s:I, s:I, s:s, s:s, s:s?, s:s?, s:I, s:O}", "rp", (json_int_t)id,
                        "job", (json_int_t)job, "vm", rp.vm, "repository", self->repository,
                        "key_file", self->repository_key_file, "credentials_file",
                        self->repository_credentials_file, "lease_ms",
                        (json_int_t)self->serve_lease_ms, "disks", disks);
out:
    free(options);
    json_decref(disks);
    vb_restore_point_clear(&rp);
    return rc;
}

/* The running serve job `id`; VB_ENOTFOUND when there is none (ended, expired, or not a serve). */
static int s_serve_job(vb_admin_t *self, int64_t id, vb_job_t *job)
{
    int rc = vb_catalog_job_get(self->catalog, id, job);
    if (rc == VB_ENOTFOUND || (!rc && (job->kind != VB_JOB_SERVE || job->state != VB_JOB_RUNNING)))
        rc = vb_error_set(VB_ENOTFOUND, "serve job %lld is not running (ended, or its lease "
                                        "expired)", (long long)id);
    return rc;
}

int vb_admin_serve_renew(vb_admin_t *self, json_t *args, json_t **result)
{
    vb_job_t job = {0};
    int64_t id = s_int(args, "job");
    char *options = NULL;
    int rc = s_serve_job(self, id, &job);
    if (!rc && !(options = s_options(self, args)))
        rc = vb_error_set(VB_ENOMEM, "out of memory");
    if (!rc)
        rc = vb_catalog_job_set_options(self->catalog, id, options);
    if (!rc)
        *result = json_pack("{s:I, s:I}", "job", (json_int_t)id, "lease_ms",
                            (json_int_t)self->serve_lease_ms);
    free(options);
    vb_job_clear(&job);
    return rc;
}

int vb_admin_serve_stop(vb_admin_t *self, json_t *args, json_t **result)
{
    int64_t id = s_int(args, "job");
    vb_job_t job = {0};
    int rc = s_serve_job(self, id, &job);
    vb_job_clear(&job);
    if (!rc)
        rc = vb_catalog_job_finish(self->catalog, id, VB_JOB_SUCCEEDED, NULL, vb_time_now_ms());
    if (!rc) {
        VB_LOG_INFO("admin", "serve_stop job=%lld", (long long)id);
        *result = json_pack("{s:I}", "job", (json_int_t)id);
    }
    return rc;
}

static json_t *s_serve_json(const vb_job_t *job)
{
    json_t *o = job->options ? json_loads(job->options, 0, NULL) : NULL;
    json_t *row = json_pack(
        "{s:I, s:I, s:s, s:o, s:o, s:s, s:I, s:o}", "job", (json_int_t)job->id, "rp",
        (json_int_t)(job->vm_count ? job->vms[0].restore_point_id : 0), "vm",
        job->vm_count ? job->vms[0].vm : "", "started", vb_json_time(job->started),
        "lease_until", vb_json_time(s_int(o, "lease_until")), "host", s_str(o, "host"), "pid",
        (json_int_t)s_int(o, "pid"), "exports", s_array(o, "exports"));
    json_decref(o);
    return row;
}

int vb_admin_serves(vb_admin_t *self, json_t *args, json_t **result)
{
    (void)args;
    vb_job_filter_t filter = {false, VB_JOB_RUNNING, 0};
    vb_job_t *jobs = NULL;
    size_t n = 0;
    int rc = vb_admin_expire_leases(self);
    if (!rc)
        rc = vb_catalog_jobs_list(self->catalog, &filter, &jobs, &n);
    json_t *arr = rc ? NULL : json_array();
    for (size_t i = n; arr && i-- > 0;) /* oldest first */
        if (jobs[i].kind == VB_JOB_SERVE)
            json_array_append_new(arr, s_serve_json(&jobs[i]));
    vb_jobs_free(&jobs, n);
    if (!rc)
        *result = arr;
    return rc;
}
