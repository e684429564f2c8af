/* catalog_jobs — jobs, the VMs they touch (snapshots, access) and their tasks. */
#include "catalog_internal.h"

#include <stdlib.h>
#include <string.h>

const char *const vb_cat_job_kinds[5] = {"backup", "restore", "verify", "prune", "serve"};
const char *const vb_cat_job_states[4] = {"running", "succeeded", "failed", "cancelled"};
const char *const vb_cat_snap_states[4] = {"none", "requested", "created", "removed"};
const char *const vb_cat_task_kinds[3] = {"map", "backup", "restore"};
const char *const vb_cat_task_states[5] = {"queued", "running", "done", "failed", "cancelled"};
const char *const vb_cat_rp_kinds[2] = {"full", "incremental"};
const char *const vb_cat_rp_states[2] = {"pending", "complete"};
const char *const vb_cat_verify_states[3] = {"unverified", "ok", "failed"};

int vb_cat_enum(const char *const *names, int n, const unsigned char *text)
{
    for (int i = 0; text && i < n; i++)
        if (strcmp(names[i], (const char *)text) == 0)
            return i;
    return -1;
}

const char *vb_job_kind_name(vb_job_kind_t k)
{
    return VB_CAT_NAME(vb_cat_job_kinds, k);
}
const char *vb_job_state_name(vb_job_state_t s)
{
    return VB_CAT_NAME(vb_cat_job_states, s);
}
const char *vb_snap_state_name(vb_snap_state_t s)
{
    return VB_CAT_NAME(vb_cat_snap_states, s);
}
const char *vb_task_kind_name(vb_task_kind_t k)
{
    return VB_CAT_NAME(vb_cat_task_kinds, k);
}
const char *vb_task_state_name(vb_task_state_t s)
{
    return VB_CAT_NAME(vb_cat_task_states, s);
}
const char *vb_rp_kind_name(vb_rp_kind_t k)
{
    return VB_CAT_NAME(vb_cat_rp_kinds, k);
}
const char *vb_rp_state_name(vb_rp_state_t s)
{
    return VB_CAT_NAME(vb_cat_rp_states, s);
}
const char *vb_verify_state_name(vb_verify_state_t s)
{
    return VB_CAT_NAME(vb_cat_verify_states, s);
}

#define JOB_COLUMNS "id, kind, state, full, options, started, finished, error, cancel_requested"
#define JOB_VM_COLUMNS                                                                             \
    "id, vm, is_fcd, state, mode, mode_reason, restore_point_id, snapshot_name, snapshot_id, "     \
    "snapshot_state, access_prepared, error, notes, snapshot_error, timing"
#define TASK_COLUMNS                                                                               \
    "t.id, t.job_id, v.vm, t.disk_key, t.kind, t.state, t.ext_offset, t.ext_length, t.agent, "     \
    "t.transport, t.transport_reason, t.attempts, t.failures, t.error, t.payload, t.bytes, "       \
    "t.started, t.finished, t.read_bytes FROM tasks t JOIN job_vms v ON v.id = t.job_vm_id"
#define JOB_VM_WHERE " WHERE job_id = ?1 AND vm = ?2"

void vb_cat_jobs_sql(const char **sql)
{
    sql[ST_JOB_INSERT] = "INSERT INTO jobs (kind, full, options, started) VALUES (?1, ?2, ?3, ?4)";
    sql[ST_JOB_VM_INSERT] =
        "INSERT INTO job_vms (job_id, vm, is_fcd, restore_point_id) VALUES (?1, ?2, ?3, ?4)";
    sql[ST_JOB_GET] = "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1";
    sql[ST_JOB_LIST] = "SELECT " JOB_COLUMNS " FROM jobs ORDER BY id DESC LIMIT ?1";
    sql[ST_JOB_LIST_STATE] =
        "SELECT " JOB_COLUMNS " FROM jobs WHERE state = ?1 ORDER BY id DESC LIMIT ?2";
    sql[ST_JOB_VMS] = "SELECT " JOB_VM_COLUMNS " FROM job_vms WHERE job_id = ?1 ORDER BY id";
    sql[ST_JOB_VM_GET] = "SELECT " JOB_VM_COLUMNS " FROM job_vms" JOB_VM_WHERE;
    sql[ST_JOB_FINISH] = "UPDATE jobs SET state = ?2, error = ?3, finished = ?4 "
                         "WHERE id = ?1 AND state = 'running'";
    sql[ST_JOB_FINISH_VMS] = "UPDATE job_vms SET state = ?2, error = coalesce(error, ?3) "
                             "WHERE job_id = ?1 AND state = 'running'";
    sql[ST_JOB_FINISH_TASKS] = "UPDATE tasks SET state = 'cancelled', finished = ?2 "
                               "WHERE job_id = ?1 AND state IN ('queued', 'running')";
    sql[ST_JOB_FINISH_RPS] = "DELETE FROM restore_points WHERE job_id = ?1 AND state = 'pending'";
    sql[ST_JOB_CANCEL] = "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND state = 'running'";
    sql[ST_JOB_SET_OPTIONS] = "UPDATE jobs SET options = ?2 WHERE id = ?1 AND state = 'running'";
    sql[ST_JOB_OLDEST_RUNNING] = "SELECT min(started) FROM jobs WHERE state = 'running'";
    sql[ST_JOB_VM_PLAN] = "UPDATE job_vms SET mode = ?3, mode_reason = ?4" JOB_VM_WHERE;
    sql[ST_JOB_VM_FINISH] = "UPDATE job_vms SET state = ?3, error = ?4" JOB_VM_WHERE;
    sql[ST_JOB_VM_ACCESS] = "UPDATE job_vms SET access_prepared = ?3" JOB_VM_WHERE;
    sql[ST_SNAP_INTENT] =
        "UPDATE job_vms SET snapshot_name = ?3, snapshot_state = 'requested'" JOB_VM_WHERE
        " AND snapshot_state = 'none'";
    sql[ST_SNAP_CREATED] =
        "UPDATE job_vms SET snapshot_id = ?3, snapshot_state = 'created'" JOB_VM_WHERE
        " AND snapshot_state = 'requested'";
    sql[ST_SNAP_REMOVED] = "UPDATE job_vms SET snapshot_state = 'removed', snapshot_error = NULL"
                           JOB_VM_WHERE " AND snapshot_state IN ('requested', 'created')";
    sql[ST_SNAP_REMOVE_FAILED] = "UPDATE job_vms SET snapshot_error = ?3" JOB_VM_WHERE
                                 " AND snapshot_state IN ('requested', 'created')";
    sql[ST_JOB_VM_TIMING] = "UPDATE job_vms SET timing = ?3" JOB_VM_WHERE;
    sql[ST_JOB_VM_NOTE] = "UPDATE job_vms SET notes = CASE WHEN notes IS NULL THEN ?3 "
                          "ELSE notes || char(10) || ?3 END" JOB_VM_WHERE;
    sql[ST_SNAP_OUTSTANDING] =
        "SELECT v.job_id, j.state, v.vm, v.is_fcd, v.snapshot_name, v.snapshot_id, "
        "v.snapshot_state, v.access_prepared FROM job_vms v JOIN jobs j ON j.id = v.job_id "
        "WHERE v.snapshot_state IN ('requested','created') OR v.access_prepared = 1 "
        "ORDER BY v.job_id, v.id";
    sql[ST_TASK_INSERT] =
        "INSERT INTO tasks (job_id, job_vm_id, disk_key, kind, ext_offset, ext_length, payload, "
        "read_bytes) "
        "VALUES (?1, (SELECT id FROM job_vms WHERE job_id = ?1 AND vm = ?2), ?3, ?4, ?5, ?6, ?7, "
        "?8)";
    sql[ST_TASK_GET] = "SELECT " TASK_COLUMNS " WHERE t.id = ?1";
    sql[ST_TASK_LIST_JOB] = "SELECT " TASK_COLUMNS " WHERE t.job_id = ?1 ORDER BY t.id LIMIT ?2";
    sql[ST_TASK_LIST_JOB_STATE] =
        "SELECT " TASK_COLUMNS " WHERE t.job_id = ?1 AND t.state = ?2 ORDER BY t.id LIMIT ?3";
    sql[ST_TASK_LIST_AGENT] =
        "SELECT " TASK_COLUMNS " WHERE t.agent = ?1 AND t.state = 'running' ORDER BY t.id LIMIT ?2";
    sql[ST_TASK_CLAIM] = "UPDATE tasks SET state = 'running', agent = ?2, transport = ?3, "
                         "transport_reason = ?4, attempts = attempts + 1, started = ?5, "
                         "finished = NULL WHERE id = ?1 AND state = 'queued'";
    sql[ST_TASK_SET_TRANSPORT] = "UPDATE tasks SET transport = ?2, transport_reason = ?3 "
                                 "WHERE id = ?1 AND state = 'running'";
    sql[ST_TASK_COMPLETE] = "UPDATE tasks SET state = 'done', bytes = ?2, finished = ?3 "
                            "WHERE id = ?1 AND state IN ('queued', 'running')";
    sql[ST_TASK_FAIL] = "UPDATE tasks SET failures = failures + 1, error = ?2, "
                        "state = CASE WHEN failures + 1 >= ?3 THEN 'failed' ELSE 'queued' END, "
                        "finished = CASE WHEN failures + 1 >= ?3 THEN ?4 ELSE NULL END "
                        "WHERE id = ?1 AND state = 'running' RETURNING state";
    sql[ST_TASK_REQUEUE] =
        "UPDATE tasks SET state = 'queued', error = ?2 WHERE id = ?1 AND state = 'running'";
    sql[ST_TASK_REQUEUE_AGENT] =
        "UPDATE tasks SET state = 'queued', error = ?2 WHERE agent = ?1 AND state = 'running'";
    sql[ST_TASK_COUNTS] = "SELECT state, count(*), coalesce(sum(ext_length), 0), kind = 'map', "
                          "coalesce(sum(read_bytes), 0) FROM tasks "
                          "WHERE job_id = ?1 GROUP BY state, kind = 'map'";
}

/* ---- records ---- */

static void s_job_vm_clear(vb_job_vm_t *v)
{
    free(v->vm);
    free(v->mode_reason);
    free(v->snapshot_name);
    free(v->snapshot_id);
    free(v->error);
    free(v->notes);
    free(v->snapshot_error);
    free(v->timing);
    memset(v, 0, sizeof *v);
}

void vb_job_clear(vb_job_t *job)
{
    if (!job)
        return;
    for (size_t i = 0; i < job->vm_count; i++)
        s_job_vm_clear(&job->vms[i]);
    free(job->vms);
    free(job->options);
    free(job->error);
    memset(job, 0, sizeof *job);
}

void vb_jobs_free(vb_job_t **jobs_p, size_t count)
{
    if (!jobs_p || !*jobs_p)
        return;
    for (size_t i = 0; i < count; i++)
        vb_job_clear(&(*jobs_p)[i]);
    free(*jobs_p);
    *jobs_p = NULL;
}

void vb_task_clear(vb_task_t *task)
{
    if (!task)
        return;
    free(task->vm);
    free(task->disk_key);
    free(task->agent);
    free(task->transport);
    free(task->transport_reason);
    free(task->error);
    free(task->payload);
    memset(task, 0, sizeof *task);
}

void vb_tasks_free(vb_task_t **tasks_p, size_t count)
{
    if (!tasks_p || !*tasks_p)
        return;
    for (size_t i = 0; i < count; i++)
        vb_task_clear(&(*tasks_p)[i]);
    free(*tasks_p);
    *tasks_p = NULL;
}

void vb_snapshot_refs_free(vb_snapshot_ref_t **refs_p, size_t count)
{
    if (!refs_p || !*refs_p)
        return;
    for (size_t i = 0; i < count; i++) {
        vb_snapshot_ref_t *r = &(*refs_p)[i];
        free(r->vm);
        free(r->snapshot_name);
        free(r->snapshot_id);
    }
    free(*refs_p);
    *refs_p = NULL;
}

static int s_corrupt(vb_catalog_t *self, const char *table, int64_t id, const char *column)
{
    return vb_error_set(VB_ECORRUPT, "catalog %s: %s row %lld has an unknown %s", self->path, table,
                        (long long)id, column);
}

static int s_oom(void)
{
    return vb_error_set(VB_ENOMEM, "out of memory");
}

static int s_read_job(vb_catalog_t *self, sqlite3_stmt *st, vb_job_t *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(st, 0);
    int kind = VB_CAT_ENUM(vb_cat_job_kinds, sqlite3_column_text(st, 1));
    int state = VB_CAT_ENUM(vb_cat_job_states, sqlite3_column_text(st, 2));
    if (kind < 0 || state < 0)
        return s_corrupt(self, "jobs", out->id, kind < 0 ? "kind" : "state");
    out->kind = (vb_job_kind_t)kind;
    out->state = (vb_job_state_t)state;
    out->full = sqlite3_column_int(st, 3) != 0;
    out->started = sqlite3_column_int64(st, 5);
    out->finished = sqlite3_column_int64(st, 6);
    out->cancel_requested = sqlite3_column_int(st, 8) != 0;
    bool oom = false;
    if (sqlite3_column_type(st, 4) != SQLITE_NULL)
        oom |= !(out->options = vb_cat_col_str(st, 4, false));
    if (sqlite3_column_type(st, 7) != SQLITE_NULL)
        oom |= !(out->error = vb_cat_col_str(st, 7, false));
    if (oom) {
        vb_job_clear(out);
        return s_oom();
    }
    return 0;
}

static int s_read_job_vm(vb_catalog_t *self, sqlite3_stmt *st, vb_job_vm_t *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(st, 0);
    int state = VB_CAT_ENUM(vb_cat_job_states, sqlite3_column_text(st, 3));
    int snap = VB_CAT_ENUM(vb_cat_snap_states, sqlite3_column_text(st, 9));
    if (state < 0 || snap < 0)
        return s_corrupt(self, "job_vms", out->id, state < 0 ? "state" : "snapshot_state");
    out->state = (vb_job_state_t)state;
    out->snapshot_state = (vb_snap_state_t)snap;
    out->is_fcd = sqlite3_column_int(st, 2) != 0;
    if (sqlite3_column_type(st, 4) != SQLITE_NULL) {
        int mode = VB_CAT_ENUM(vb_cat_rp_kinds, sqlite3_column_text(st, 4));
        if (mode < 0)
            return s_corrupt(self, "job_vms", out->id, "mode");
        out->has_mode = true;
        out->mode = (vb_rp_kind_t)mode;
    }
    out->restore_point_id = sqlite3_column_int64(st, 6);
    out->access_prepared = sqlite3_column_int(st, 10) != 0;
    out->vm = vb_cat_col_str(st, 1, true);
    out->mode_reason = vb_cat_col_str(st, 5, false);
    out->snapshot_name = vb_cat_col_str(st, 7, false);
    out->snapshot_id = vb_cat_col_str(st, 8, false);
    out->error = vb_cat_col_str(st, 11, false);
    out->notes = vb_cat_col_str(st, 12, false);
    out->snapshot_error = vb_cat_col_str(st, 13, false);
    out->timing = vb_cat_col_str(st, 14, false);
    if ((!out->timing && sqlite3_column_type(st, 14) != SQLITE_NULL) ||
        !out->vm || (!out->mode_reason && sqlite3_column_type(st, 5) != SQLITE_NULL) ||
        (!out->snapshot_name && sqlite3_column_type(st, 7) != SQLITE_NULL) ||
        (!out->snapshot_id && sqlite3_column_type(st, 8) != SQLITE_NULL) ||
        (!out->error && sqlite3_column_type(st, 11) != SQLITE_NULL) ||
        (!out->notes && sqlite3_column_type(st, 12) != SQLITE_NULL) ||
        (!out->snapshot_error && sqlite3_column_type(st, 13) != SQLITE_NULL)) {
        s_job_vm_clear(out);
        return s_oom();
    }
    return 0;
}

static int s_load_vms(vb_catalog_t *self, vb_job_t *job)
{
    sqlite3_stmt *st = self->st[ST_JOB_VMS];
    sqlite3_bind_int64(st, 1, job->id);
    size_t cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = vb_cat_grow((void **)&job->vms, &cap, job->vm_count, sizeof *job->vms)) != 0 ||
            (rc = s_read_job_vm(self, st, &job->vms[job->vm_count])) != 0)
            break;
        job->vm_count++;
    }
    if (!rc && step != SQLITE_DONE)
        rc = vb_cat_db_error(self, "reading a job's VMs");
    vb_cat_reset(st);
    return rc;
}

/* ---- jobs ---- */

static int s_insert_job(vb_catalog_t *self, const vb_job_t *job, int64_t *id_out)
{
    sqlite3_stmt *st = self->st[ST_JOB_INSERT];
    sqlite3_bind_text(st, 1, vb_job_kind_name(job->kind), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, job->full ? 1 : 0);
    vb_cat_bind_str(st, 3, job->options);
    sqlite3_bind_int64(st, 4, job->started);
    int rc = vb_cat_step_done(self, st, "creating a job");
    if (rc)
        return rc;
    *id_out = sqlite3_last_insert_rowid(self->db);
    st = self->st[ST_JOB_VM_INSERT];
    for (size_t i = 0; i < job->vm_count && !rc; i++) {
        const vb_job_vm_t *v = &job->vms[i];
        if (!v->vm || !v->vm[0])
            return vb_error_set(VB_EINVAL, "job VM %zu has no name", i + 1);
        sqlite3_bind_int64(st, 1, *id_out);
        sqlite3_bind_text(st, 2, v->vm, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 3, v->is_fcd ? 1 : 0);
        if (v->restore_point_id)
            sqlite3_bind_int64(st, 4, v->restore_point_id);
        else
            sqlite3_bind_null(st, 4);
        rc = vb_cat_step_done(self, st, "adding a VM to a job");
        if (rc == VB_EEXISTS)
            rc = vb_error_set(VB_EINVAL, "VM '%s' is named twice in the job", v->vm);
        else if (rc == VB_ENOTFOUND)
            rc = vb_error_set(VB_ENOTFOUND, "restore point %lld (for VM '%s') does not exist",
                              (long long)v->restore_point_id, v->vm);
    }
    return rc;
}

int vb_catalog_job_create(vb_catalog_t *self, const vb_job_t *job, int64_t *id_out)
{
    if ((unsigned)job->kind > VB_JOB_SERVE)
        return vb_error_set(VB_EINVAL, "unknown job kind %d", (int)job->kind);
    if (job->vm_count == 0 && job->kind != VB_JOB_PRUNE)
        return vb_error_set(VB_EINVAL, "a %s job needs at least one VM",
                            vb_job_kind_name(job->kind));
    int rc = vb_cat_sp_begin(self);
    if (rc)
        return rc;
    int64_t id = 0;
    rc = vb_cat_sp_end(self, s_insert_job(self, job, &id));
    if (rc == 0)
        *id_out = id;
    return rc;
}

int vb_catalog_job_get(vb_catalog_t *self, int64_t job_id, vb_job_t *out)
{
    sqlite3_stmt *st = self->st[ST_JOB_GET];
    sqlite3_bind_int64(st, 1, job_id);
    int step = sqlite3_step(st), rc;
    if (step == SQLITE_ROW)
        rc = s_read_job(self, st, out);
    else if (step == SQLITE_DONE)
        rc = vb_error_set(VB_ENOTFOUND, "job %lld does not exist", (long long)job_id);
    else
        rc = vb_cat_db_error(self, "reading a job");
    vb_cat_reset(st);
    if (rc == 0 && (rc = s_load_vms(self, out)) != 0)
        vb_job_clear(out);
    return rc;
}

static int64_t s_limit(size_t limit)
{
    return limit ? (int64_t)limit : -1;
}

int vb_catalog_jobs_list(vb_catalog_t *self, const vb_job_filter_t *filter, vb_job_t **out,
                         size_t *count)
{
    sqlite3_stmt *st;
    if (filter && !filter->any_state) {
        st = self->st[ST_JOB_LIST_STATE];
        sqlite3_bind_text(st, 1, vb_job_state_name(filter->state), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, s_limit(filter->limit));
    } else {
        st = self->st[ST_JOB_LIST];
        sqlite3_bind_int64(st, 1, s_limit(filter ? filter->limit : 0));
    }
    vb_job_t *jobs = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = vb_cat_grow((void **)&jobs, &cap, n, sizeof *jobs)) != 0 ||
            (rc = s_read_job(self, st, &jobs[n])) != 0)
            break;
        n++;
    }
    if (!rc && step != SQLITE_DONE)
        rc = vb_cat_db_error(self, "listing jobs");
    vb_cat_reset(st);
    for (size_t i = 0; i < n && !rc; i++)
        rc = s_load_vms(self, &jobs[i]);
    if (rc) {
        vb_jobs_free(&jobs, n);
        return rc;
    }
    *out = jobs;
    *count = n;
    return 0;
}

/* After an UPDATE ... WHERE id = ? AND state = ... changed nothing: says why. */
static int s_job_not_changed(vb_catalog_t *self, int64_t job_id, const char *what)
{
    vb_job_t job;
    int rc = vb_catalog_job_get(self, job_id, &job);
    if (rc)
        return rc;
    rc = vb_error_set(VB_EINVAL, "cannot %s job %lld: it has already %s", what, (long long)job_id,
                      vb_job_state_name(job.state));
    vb_job_clear(&job);
    return rc;
}

static int s_finish(vb_catalog_t *self, int64_t job_id, vb_job_state_t state, const char *error,
                    int64_t now_ms)
{
    sqlite3_stmt *st = self->st[ST_JOB_FINISH];
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_text(st, 2, vb_job_state_name(state), -1, SQLITE_STATIC);
    vb_cat_bind_str(st, 3, error);
    sqlite3_bind_int64(st, 4, now_ms);
    int rc = vb_cat_step_done(self, st, "finishing a job");
    if (rc)
        return rc;
    if (sqlite3_changes(self->db) == 0)
        return s_job_not_changed(self, job_id, "finish");
    st = self->st[ST_JOB_FINISH_VMS];
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_text(st, 2, vb_job_state_name(state), -1, SQLITE_STATIC);
    vb_cat_bind_str(st, 3, error);
    if ((rc = vb_cat_step_done(self, st, "finishing a job's VMs")) != 0)
        return rc;
    st = self->st[ST_JOB_FINISH_TASKS];
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int64(st, 2, now_ms);
    if ((rc = vb_cat_step_done(self, st, "cancelling a job's tasks")) != 0)
        return rc;
    if (state != VB_JOB_SUCCEEDED) {
        st = self->st[ST_JOB_FINISH_RPS];
        sqlite3_bind_int64(st, 1, job_id);
        rc = vb_cat_step_done(self, st, "discarding a job's pending restore points");
    }
    return rc;
}

int vb_catalog_job_finish(vb_catalog_t *self, int64_t job_id, vb_job_state_t state,
                          const char *error, int64_t now_ms)
{
    if (state != VB_JOB_SUCCEEDED && state != VB_JOB_FAILED && state != VB_JOB_CANCELLED)
        return vb_error_set(VB_EINVAL, "a job finishes as succeeded, failed or cancelled, not %s",
                            vb_job_state_name(state));
    int rc = vb_cat_sp_begin(self);
    if (rc)
        return rc;
    rc = vb_cat_sp_end(self, s_finish(self, job_id, state, error, now_ms));
    if (rc == 0 && self->on_job_end)
        self->on_job_end(self->on_job_end_arg, job_id);
    return rc;
}

void vb_catalog_on_job_end(vb_catalog_t *self, vb_catalog_job_end_fn fn, void *arg)
{
    self->on_job_end = fn;
    self->on_job_end_arg = arg;
}

int vb_catalog_job_request_cancel(vb_catalog_t *self, int64_t job_id)
{
    sqlite3_stmt *st = self->st[ST_JOB_CANCEL];
    sqlite3_bind_int64(st, 1, job_id);
    int rc = vb_cat_step_done(self, st, "cancelling a job");
    if (rc == 0 && sqlite3_changes(self->db) == 0)
        return s_job_not_changed(self, job_id, "cancel");
    return rc;
}

int vb_catalog_job_set_options(vb_catalog_t *self, int64_t job_id, const char *options)
{
    sqlite3_stmt *st = self->st[ST_JOB_SET_OPTIONS];
    sqlite3_bind_int64(st, 1, job_id);
    vb_cat_bind_str(st, 2, options);
    int rc = vb_cat_step_done(self, st, "setting a job's options");
    if (rc == 0 && sqlite3_changes(self->db) == 0)
        return s_job_not_changed(self, job_id, "renew");
    return rc;
}

int vb_catalog_oldest_running_job(vb_catalog_t *self, int64_t *started_ms_out)
{
    sqlite3_stmt *st = self->st[ST_JOB_OLDEST_RUNNING];
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        *started_ms_out = sqlite3_column_int64(st, 0); /* NULL reads as 0: none running */
    else
        rc = vb_cat_db_error(self, "finding the oldest running job");
    vb_cat_reset(st);
    return rc;
}

/* ---- job VMs and snapshots ---- */

static int s_job_vm_get(vb_catalog_t *self, int64_t job_id, const char *vm, vb_job_vm_t *out)
{
    sqlite3_stmt *st = self->st[ST_JOB_VM_GET];
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_text(st, 2, vm, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(st), rc;
    if (step == SQLITE_ROW)
        rc = s_read_job_vm(self, st, out);
    else if (step == SQLITE_DONE)
        rc = vb_error_set(VB_ENOTFOUND, "job %lld has no VM '%s'", (long long)job_id, vm);
    else
        rc = vb_cat_db_error(self, "reading a job VM");
    vb_cat_reset(st);
    return rc;
}

/* Runs one of the job VM updates bound as (job_id, vm, ?3, ?4); when it changes nothing, says
 * whether the VM is missing or in the wrong snapshot state. */
static int s_job_vm_update(vb_catalog_t *self, int64_t job_id, const char *vm, sqlite3_stmt *st,
                           const char *what)
{
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_text(st, 2, vm, -1, SQLITE_TRANSIENT);
    int rc = vb_cat_step_done(self, st, what);
    if (rc || sqlite3_changes(self->db) > 0)
        return rc;
    vb_job_vm_t v;
    if ((rc = s_job_vm_get(self, job_id, vm, &v)) != 0)
        return rc;
    rc = vb_error_set(VB_EINVAL, "cannot %s for VM '%s' of job %lld: its snapshot is %s", what, vm,
                      (long long)job_id, vb_snap_state_name(v.snapshot_state));
    s_job_vm_clear(&v);
    return rc;
}

int vb_catalog_job_vm_set_mode(vb_catalog_t *self, int64_t job_id, const char *vm,
                               vb_rp_kind_t mode, const char *reason)
{
    if ((unsigned)mode > VB_RP_INCREMENTAL)
        return vb_error_set(VB_EINVAL, "unknown backup mode %d", (int)mode);
    sqlite3_stmt *st = self->st[ST_JOB_VM_PLAN];
    sqlite3_bind_text(st, 3, vb_rp_kind_name(mode), -1, SQLITE_STATIC);
    vb_cat_bind_str(st, 4, reason);
    return s_job_vm_update(self, job_id, vm, st, "record the backup mode");
}

int vb_catalog_job_vm_finish(vb_catalog_t *self, int64_t job_id, const char *vm,
                             vb_job_state_t state, const char *error)
{
    if (state != VB_JOB_SUCCEEDED && state != VB_JOB_FAILED && state != VB_JOB_CANCELLED)
        return vb_error_set(VB_EINVAL,
                            "a job VM finishes as succeeded, failed or cancelled, not %s",
                            vb_job_state_name(state));
    sqlite3_stmt *st = self->st[ST_JOB_VM_FINISH];
    sqlite3_bind_text(st, 3, vb_job_state_name(state), -1, SQLITE_STATIC);
    vb_cat_bind_str(st, 4, error);
    return s_job_vm_update(self, job_id, vm, st, "finish the VM");
}

int vb_catalog_job_vm_set_access(vb_catalog_t *self, int64_t job_id, const char *vm, bool prepared)
{
    sqlite3_stmt *st = self->st[ST_JOB_VM_ACCESS];
    sqlite3_bind_int(st, 3, prepared ? 1 : 0);
    return s_job_vm_update(self, job_id, vm, st, "record access");
}

int vb_catalog_snapshot_intent(vb_catalog_t *self, int64_t job_id, const char *vm, const char *name)
{
    if (!name || !name[0])
        return vb_error_set(VB_EINVAL, "a snapshot needs a name");
    sqlite3_stmt *st = self->st[ST_SNAP_INTENT];
    sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
    return s_job_vm_update(self, job_id, vm, st, "record a snapshot request");
}

int vb_catalog_snapshot_created(vb_catalog_t *self, int64_t job_id, const char *vm,
                                const char *snapshot_id)
{
    if (!snapshot_id || !snapshot_id[0])
        return vb_error_set(VB_EINVAL, "a created snapshot needs its id");
    sqlite3_stmt *st = self->st[ST_SNAP_CREATED];
    sqlite3_bind_text(st, 3, snapshot_id, -1, SQLITE_TRANSIENT);
    return s_job_vm_update(self, job_id, vm, st, "record a created snapshot");
}

int vb_catalog_snapshot_removed(vb_catalog_t *self, int64_t job_id, const char *vm)
{
    return s_job_vm_update(self, job_id, vm, self->st[ST_SNAP_REMOVED],
                           "record a removed snapshot");
}

int vb_catalog_snapshot_remove_failed(vb_catalog_t *self, int64_t job_id, const char *vm,
                                      const char *error)
{
    sqlite3_stmt *st = self->st[ST_SNAP_REMOVE_FAILED];
    vb_cat_bind_str(st, 3, error);
    return s_job_vm_update(self, job_id, vm, st, "record a failed snapshot removal");
}

int vb_catalog_job_vm_add_note(vb_catalog_t *self, int64_t job_id, const char *vm,
                               const char *note)
{
    if (!note || !note[0] || strchr(note, '\n'))
        return vb_error_set(VB_EINVAL, "a note is one line of text");
    sqlite3_stmt *st = self->st[ST_JOB_VM_NOTE];
    sqlite3_bind_text(st, 3, note, -1, SQLITE_TRANSIENT);
    return s_job_vm_update(self, job_id, vm, st, "add a note");
}

int vb_catalog_job_vm_set_timing(vb_catalog_t *self, int64_t job_id, const char *vm,
                                 const char *timing)
{
    sqlite3_stmt *st = self->st[ST_JOB_VM_TIMING];
    vb_cat_bind_str(st, 3, timing);
    return s_job_vm_update(self, job_id, vm, st, "record the timing");
}

static int s_read_snapshot_ref(vb_catalog_t *self, sqlite3_stmt *st, vb_snapshot_ref_t *r)
{
    memset(r, 0, sizeof *r);
    r->job_id = sqlite3_column_int64(st, 0);
    int js = VB_CAT_ENUM(vb_cat_job_states, sqlite3_column_text(st, 1));
    int ss = VB_CAT_ENUM(vb_cat_snap_states, sqlite3_column_text(st, 6));
    if (js < 0 || ss < 0)
        return s_corrupt(self, "job_vms of job", r->job_id, "state");
    r->job_state = (vb_job_state_t)js;
    r->snapshot_state = (vb_snap_state_t)ss;
    r->is_fcd = sqlite3_column_int(st, 3) != 0;
    r->access_prepared = sqlite3_column_int(st, 7) != 0;
    r->vm = vb_cat_col_str(st, 2, true);
    if (r->snapshot_state == VB_SNAP_REQUESTED || r->snapshot_state == VB_SNAP_CREATED) {
        r->snapshot_name = vb_cat_col_str(st, 4, true);
        r->snapshot_id = vb_cat_col_str(st, 5, false);
        if (!r->snapshot_name || (!r->snapshot_id && sqlite3_column_type(st, 5) != SQLITE_NULL))
            return s_oom();
    }
    return r->vm ? 0 : s_oom();
}

int vb_catalog_snapshots_outstanding(vb_catalog_t *self, vb_snapshot_ref_t **out, size_t *count)
{
    sqlite3_stmt *st = self->st[ST_SNAP_OUTSTANDING];
    vb_snapshot_ref_t *refs = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = vb_cat_grow((void **)&refs, &cap, n, sizeof *refs)) != 0)
            break;
        rc = s_read_snapshot_ref(self, st, &refs[n]);
        n++; /* counted even on failure so that vb_snapshot_refs_free frees what was read */
        if (rc)
            break;
    }
    if (!rc && step != SQLITE_DONE)
        rc = vb_cat_db_error(self, "listing outstanding snapshots");
    vb_cat_reset(st);
    if (rc) {
        vb_snapshot_refs_free(&refs, n);
        return rc;
    }
    *out = refs;
    *count = n;
    return 0;
}

/* ---- tasks ---- */

static int s_read_task(vb_catalog_t *self, sqlite3_stmt *st, vb_task_t *t)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    int kind = VB_CAT_ENUM(vb_cat_task_kinds, sqlite3_column_text(st, 4));
    int state = VB_CAT_ENUM(vb_cat_task_states, sqlite3_column_text(st, 5));
    if (kind < 0 || state < 0)
        return s_corrupt(self, "tasks", t->id, kind < 0 ? "kind" : "state");
    t->kind = (vb_task_kind_t)kind;
    t->state = (vb_task_state_t)state;
    t->job_id = sqlite3_column_int64(st, 1);
    t->offset = (uint64_t)sqlite3_column_int64(st, 6);
    t->length = (uint64_t)sqlite3_column_int64(st, 7);
    t->attempts = (uint32_t)sqlite3_column_int64(st, 11);
    t->failures = (uint32_t)sqlite3_column_int64(st, 12);
    t->bytes = (uint64_t)sqlite3_column_int64(st, 15);
    t->started = sqlite3_column_int64(st, 16);
    t->finished = sqlite3_column_int64(st, 17);
    t->read_bytes = (uint64_t)sqlite3_column_int64(st, 18);
    t->vm = vb_cat_col_str(st, 2, true);
    t->disk_key = vb_cat_col_str(st, 3, true);
    char **opt[] = {&t->agent, &t->transport, &t->transport_reason, &t->error, &t->payload};
    const int cols[] = {8, 9, 10, 13, 14};
    bool oom = !t->vm || !t->disk_key;
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        *opt[i] = vb_cat_col_str(st, cols[i], false);
        oom |= !*opt[i] && sqlite3_column_type(st, cols[i]) != SQLITE_NULL;
    }
    if (oom) {
        vb_task_clear(t);
        return s_oom();
    }
    return 0;
}

static int s_check_job_running(vb_catalog_t *self, int64_t job_id)
{
    vb_job_t job;
    int rc = vb_catalog_job_get(self, job_id, &job);
    if (rc)
        return rc;
    if (job.state != VB_JOB_RUNNING)
        rc = vb_error_set(VB_EINVAL, "job %lld has already %s: no new tasks", (long long)job_id,
                          vb_job_state_name(job.state));
    vb_job_clear(&job);
    return rc;
}

static int s_add_tasks(vb_catalog_t *self, int64_t job_id, const vb_task_t *tasks, size_t n,
                       int64_t *ids_out)
{
    int rc = s_check_job_running(self, job_id);
    sqlite3_stmt *st = self->st[ST_TASK_INSERT];
    for (size_t i = 0; i < n && !rc; i++) {
        const vb_task_t *t = &tasks[i];
        if (!t->vm || !t->disk_key)
            return vb_error_set(VB_EINVAL, "task %zu has no VM or disk", i + 1);
        if ((unsigned)t->kind > VB_TASK_RESTORE || t->offset > INT64_MAX ||
            t->length > INT64_MAX || t->read_bytes > INT64_MAX)
            return vb_error_set(VB_EINVAL, "task %zu (disk %s of VM '%s') is out of range", i + 1,
                                t->disk_key, t->vm);
        sqlite3_bind_int64(st, 1, job_id);
        sqlite3_bind_text(st, 2, t->vm, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, t->disk_key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, vb_task_kind_name(t->kind), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, (int64_t)t->offset);
        sqlite3_bind_int64(st, 6, (int64_t)t->length);
        vb_cat_bind_str(st, 7, t->payload);
        sqlite3_bind_int64(st, 8, (int64_t)t->read_bytes);
        rc = vb_cat_step_done(self, st, "adding a task");
        if (rc == VB_EINVAL) /* job_vm_id NOT NULL: the subquery found no such VM */
            return vb_error_set(VB_ENOTFOUND, "job %lld has no VM '%s'", (long long)job_id, t->vm);
        if (!rc && ids_out)
            ids_out[i] = sqlite3_last_insert_rowid(self->db);
    }
    return rc;
}

int vb_catalog_tasks_add(vb_catalog_t *self, int64_t job_id, const vb_task_t *tasks, size_t n,
                         int64_t *ids_out)
{
    int rc = vb_cat_sp_begin(self);
    if (rc)
        return rc;
    return vb_cat_sp_end(self, s_add_tasks(self, job_id, tasks, n, ids_out));
}

int vb_catalog_task_get(vb_catalog_t *self, int64_t task_id, vb_task_t *out)
{
    sqlite3_stmt *st = self->st[ST_TASK_GET];
    sqlite3_bind_int64(st, 1, task_id);
    int step = sqlite3_step(st), rc;
    if (step == SQLITE_ROW)
        rc = s_read_task(self, st, out);
    else if (step == SQLITE_DONE)
        rc = vb_error_set(VB_ENOTFOUND, "task %lld does not exist", (long long)task_id);
    else
        rc = vb_cat_db_error(self, "reading a task");
    vb_cat_reset(st);
    return rc;
}

int vb_catalog_tasks_list(vb_catalog_t *self, const vb_task_filter_t *f, vb_task_t **out,
                          size_t *count)
{
    sqlite3_stmt *st;
    if (!f || (!f->agent && f->job_id <= 0))
        return vb_error_set(VB_EINVAL, "listing tasks needs a job or an agent");
    if (f->agent) {
        st = self->st[ST_TASK_LIST_AGENT];
        sqlite3_bind_text(st, 1, f->agent, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, s_limit(f->limit));
    } else if (f->any_state) {
        st = self->st[ST_TASK_LIST_JOB];
        sqlite3_bind_int64(st, 1, f->job_id);
        sqlite3_bind_int64(st, 2, s_limit(f->limit));
    } else {
        st = self->st[ST_TASK_LIST_JOB_STATE];
        sqlite3_bind_int64(st, 1, f->job_id);
        sqlite3_bind_text(st, 2, vb_task_state_name(f->state), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, s_limit(f->limit));
    }
    vb_task_t *tasks = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = vb_cat_grow((void **)&tasks, &cap, n, sizeof *tasks)) != 0 ||
            (rc = s_read_task(self, st, &tasks[n])) != 0)
            break;
        n++;
    }
    if (!rc && step != SQLITE_DONE)
        rc = vb_cat_db_error(self, "listing tasks");
    vb_cat_reset(st);
    if (rc) {
        vb_tasks_free(&tasks, n);
        return rc;
    }
    *out = tasks;
    *count = n;
    return 0;
}

/* After a task UPDATE that changed nothing: not found, or in the wrong state. */
static int s_task_not_changed(vb_catalog_t *self, int64_t task_id, const char *what)
{
    vb_task_t t;
    int rc = vb_catalog_task_get(self, task_id, &t);
    if (rc)
        return rc;
    if (t.agent)
        rc = vb_error_set(VB_EINVAL, "cannot %s task %lld: it is %s (agent %s)", what,
                          (long long)task_id, vb_task_state_name(t.state), t.agent);
    else
        rc = vb_error_set(VB_EINVAL, "cannot %s task %lld: it is %s", what, (long long)task_id,
                          vb_task_state_name(t.state));
    vb_task_clear(&t);
    return rc;
}

static int s_task_update(vb_catalog_t *self, sqlite3_stmt *st, int64_t task_id, const char *what)
{
    sqlite3_bind_int64(st, 1, task_id);
    int rc = vb_cat_step_done(self, st, what);
    if (rc == 0 && sqlite3_changes(self->db) == 0)
        return s_task_not_changed(self, task_id, what);
    return rc;
}

int vb_catalog_task_claim(vb_catalog_t *self, int64_t task_id, const char *agent,
                          const char *transport, const char *reason, int64_t now_ms)
{
    if (!agent || !transport)
        return vb_error_set(VB_EINVAL, "claiming task %lld needs an agent and a transport",
                            (long long)task_id);
    sqlite3_stmt *st = self->st[ST_TASK_CLAIM];
    sqlite3_bind_text(st, 2, agent, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, transport, -1, SQLITE_TRANSIENT);
    vb_cat_bind_str(st, 4, reason);
    sqlite3_bind_int64(st, 5, now_ms);
    return s_task_update(self, st, task_id, "claim");
}

int vb_catalog_task_set_transport(vb_catalog_t *self, int64_t task_id, const char *transport,
                                  const char *reason)
{
    if (!transport)
        return vb_error_set(VB_EINVAL, "task %lld: no transport given", (long long)task_id);
    sqlite3_stmt *st = self->st[ST_TASK_SET_TRANSPORT];
    sqlite3_bind_text(st, 2, transport, -1, SQLITE_TRANSIENT);
    vb_cat_bind_str(st, 3, reason);
    return s_task_update(self, st, task_id, "change the transport of");
}

int vb_catalog_task_complete(vb_catalog_t *self, int64_t task_id, uint64_t bytes, int64_t now_ms)
{
    sqlite3_stmt *st = self->st[ST_TASK_COMPLETE];
    sqlite3_bind_int64(st, 2, bytes > INT64_MAX ? INT64_MAX : (int64_t)bytes);
    sqlite3_bind_int64(st, 3, now_ms);
    return s_task_update(self, st, task_id, "complete");
}

int vb_catalog_task_fail(vb_catalog_t *self, int64_t task_id, const char *error,
                         uint32_t max_failures, int64_t now_ms, vb_task_state_t *state_out)
{
    sqlite3_stmt *st = self->st[ST_TASK_FAIL];
    sqlite3_bind_int64(st, 1, task_id);
    vb_cat_bind_str(st, 2, error);
    sqlite3_bind_int64(st, 3, max_failures ? max_failures : 1);
    sqlite3_bind_int64(st, 4, now_ms);
    int step = sqlite3_step(st), rc = 0, state = -1;
    if (step == SQLITE_ROW) {
        state = VB_CAT_ENUM(vb_cat_task_states, sqlite3_column_text(st, 0));
        step = sqlite3_step(st);
    }
    if (step != SQLITE_DONE)
        rc = vb_cat_db_error(self, "failing a task");
    vb_cat_reset(st);
    if (rc)
        return rc;
    if (state < 0)
        return s_task_not_changed(self, task_id, "fail");
    if (state_out)
        *state_out = (vb_task_state_t)state;
    return 0;
}

int vb_catalog_task_requeue(vb_catalog_t *self, int64_t task_id, const char *reason)
{
    sqlite3_stmt *st = self->st[ST_TASK_REQUEUE];
    vb_cat_bind_str(st, 2, reason);
    return s_task_update(self, st, task_id, "requeue");
}

int vb_catalog_tasks_requeue_agent(vb_catalog_t *self, const char *agent, const char *reason,
                                   size_t *count_out)
{
    if (!agent)
        return vb_error_set(VB_EINVAL, "requeueing an agent's tasks needs the agent's name");
    sqlite3_stmt *st = self->st[ST_TASK_REQUEUE_AGENT];
    sqlite3_bind_text(st, 1, agent, -1, SQLITE_TRANSIENT);
    vb_cat_bind_str(st, 2, reason);
    int rc = vb_cat_step_done(self, st, "requeueing an agent's tasks");
    if (rc == 0 && count_out)
        *count_out = (size_t)sqlite3_changes(self->db);
    return rc;
}

int vb_catalog_job_task_counts(vb_catalog_t *self, int64_t job_id, vb_task_counts_t *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = self->st[ST_TASK_COUNTS];
    sqlite3_bind_int64(st, 1, job_id);
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_int64(st, 1);
        uint64_t bytes = (uint64_t)sqlite3_column_int64(st, 2);
        bool map = sqlite3_column_int(st, 3) != 0;
        uint64_t read = map ? 0 : (uint64_t)sqlite3_column_int64(st, 4);
        switch (VB_CAT_ENUM(vb_cat_task_states, sqlite3_column_text(st, 0))) {
        case VB_TASK_QUEUED:
            out->queued += n;
            break;
        case VB_TASK_RUNNING:
            out->running += n;
            break;
        case VB_TASK_DONE:
            out->done += n;
            out->bytes_done += bytes;
            out->read_bytes_done += read;
            out->map_done += map ? n : 0;
            break;
        case VB_TASK_FAILED:
            out->failed += n;
            break;
        case VB_TASK_CANCELLED:
            out->cancelled += n;
            break;
        default:
            rc = s_corrupt(self, "tasks of job", job_id, "state");
            break;
        }
        out->total += n;
        out->bytes_total += bytes;
        out->read_bytes_total += read;
        out->map_total += map ? n : 0;
    }
    if (!rc && step != SQLITE_DONE)
        rc = vb_cat_db_error(self, "counting a job's tasks");
    vb_cat_reset(st);
    return rc;
}
