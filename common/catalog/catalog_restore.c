/* catalog_restore — restore points and their disks: create pending, commit in one transaction,
 * the queries users ask, retention input, deletion that keeps chains readable, verify state and
 * the live index set for garbage collection. */
#include "catalog_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RP_COLUMNS                                                                                 \
    "rp.id, rp.vm, rp.is_fcd, rp.job_id, rp.created, rp.completed, rp.kind, rp.state, "            \
    "rp.parent_id, rp.verify_state, rp.verified_at, rp.verify_error"
#define DISK_COLUMNS                                                                               \
    "disk_key, name, datastore, capacity, change_id, index_path, logical_bytes, new_bytes, "       \
    "chunk_count, transports"
#define RP_LIST_WHERE " AND rp.state = 'complete' AND rp.created >= ?2 AND rp.created <= ?3 "

void vb_cat_restore_sql(const char **sql)
{
    sql[ST_RP_INSERT] = "INSERT INTO restore_points (vm, is_fcd, job_id, created, kind, parent_id) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    sql[ST_RP_DISK_INSERT] = "INSERT INTO restore_point_disks (restore_point_id, " DISK_COLUMNS
                             ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
    sql[ST_RP_LINK_JOB_VM] =
        "UPDATE job_vms SET restore_point_id = ?3 WHERE job_id = ?1 AND vm = ?2";
    sql[ST_RP_DISK_UPDATE] =
        "UPDATE restore_point_disks SET change_id = coalesce(?3, change_id), "
        "index_path = coalesce(?4, index_path), logical_bytes = ?5, new_bytes = ?6, "
        "chunk_count = ?7, transports = ?8 WHERE restore_point_id = ?1 AND disk_key = ?2";
    sql[ST_RP_DISKS_WITHOUT_INDEX] =
        "SELECT disk_key FROM restore_point_disks WHERE restore_point_id = ?1 "
        "AND (index_path IS NULL OR index_path = '') ORDER BY id LIMIT 1";
    sql[ST_RP_COMMIT] = "UPDATE restore_points SET state = 'complete', completed = ?2 "
                        "WHERE id = ?1 AND state = 'pending'";
    sql[ST_RP_GET_ANY] = "SELECT " RP_COLUMNS " FROM restore_points rp WHERE rp.id = ?1";
    sql[ST_RP_GET] =
        "SELECT " RP_COLUMNS " FROM restore_points rp WHERE rp.id = ?1 AND rp.state = 'complete'";
    sql[ST_RP_DISKS] = "SELECT " DISK_COLUMNS " FROM restore_point_disks "
                       "WHERE restore_point_id = ?1 ORDER BY id";
    sql[ST_RP_LIST_VM_ASC] =
        "SELECT " RP_COLUMNS " FROM restore_points rp WHERE rp.vm = ?1" RP_LIST_WHERE
        "ORDER BY rp.created, rp.id LIMIT ?4";
    sql[ST_RP_LIST_VM_DESC] =
        "SELECT " RP_COLUMNS " FROM restore_points rp WHERE rp.vm = ?1" RP_LIST_WHERE
        "ORDER BY rp.created DESC, rp.id DESC LIMIT ?4";
    sql[ST_RP_LIST_ALL_ASC] =
        "SELECT " RP_COLUMNS " FROM restore_points rp WHERE ?1 IS NULL" RP_LIST_WHERE
        "ORDER BY rp.created, rp.id LIMIT ?4";
    sql[ST_RP_LIST_ALL_DESC] =
        "SELECT " RP_COLUMNS " FROM restore_points rp WHERE ?1 IS NULL" RP_LIST_WHERE
        "ORDER BY rp.created DESC, rp.id DESC LIMIT ?4";
    sql[ST_RP_CHAIN] =
        "WITH RECURSIVE chain(id, depth) AS ("
        "  SELECT id, 0 FROM restore_points WHERE id = ?1 AND state = 'complete'"
        "  UNION ALL"
        "  SELECT r.parent_id, c.depth + 1 FROM restore_points r JOIN chain c ON r.id = c.id"
        "  WHERE r.parent_id IS NOT NULL AND c.depth < 100000"
        ") SELECT " RP_COLUMNS " FROM chain c JOIN restore_points rp ON rp.id = c.id "
        "ORDER BY c.depth";
    sql[ST_RP_OF_JOB] =
        "SELECT " RP_COLUMNS " FROM restore_points rp WHERE rp.job_id = ?1 ORDER BY rp.id";
    sql[ST_RP_DISCARD] = "DELETE FROM restore_points WHERE id = ?1 AND state = 'pending'";
    /* What running jobs use complete restore points: a backup writes an incremental on one (its
     * parent), a restore or a verify reads one. ?1 = 0: every use. */
    sql[ST_RP_IN_USE] =
        "SELECT rp, job, kind, child FROM ("
        "  SELECT parent_id AS rp, job_id AS job, 'backup' AS kind, id AS child "
        "  FROM restore_points WHERE state = 'pending' AND parent_id IS NOT NULL"
        "  UNION ALL"
        "  SELECT v.restore_point_id, j.id, j.kind, 0 FROM job_vms v JOIN jobs j ON j.id = v.job_id"
        "  WHERE j.state = 'running' AND j.kind IN ('restore', 'verify', 'serve')"
        "  AND v.restore_point_id IS NOT NULL"
        ") WHERE ?1 = 0 OR rp = ?1 ORDER BY rp, job";
    sql[ST_RP_REPARENT] = "UPDATE restore_points SET parent_id = "
                          "(SELECT parent_id FROM restore_points WHERE id = ?1) "
                          "WHERE parent_id = ?1";
    sql[ST_RP_DELETE] = "DELETE FROM restore_points WHERE id = ?1 AND state = 'complete'";
    sql[ST_RP_LATEST_OF_VM] = "SELECT id FROM restore_points "
                              "WHERE vm = (SELECT vm FROM restore_points WHERE id = ?1) "
                              "AND state = 'complete' ORDER BY created DESC, id DESC LIMIT 1";
    sql[ST_RP_VERIFY] = "UPDATE restore_points SET verify_state = ?2, verify_error = ?3, "
                        "verified_at = ?4 WHERE id = ?1 AND state = 'complete'";
    /* a restore point read back from its manifest: its own id, complete; its parent only when
     * that point was imported too (else the chain reads as the retained lineage) */
    sql[ST_RP_IMPORT] = "INSERT INTO restore_points (id, vm, is_fcd, created, completed, kind, "
                        "state, parent_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'complete', "
                        "(SELECT id FROM restore_points WHERE id = ?7 AND vm = ?2 "
                        "AND state = 'complete'))";
    sql[ST_RP_LIVE_INDEXES] = "SELECT DISTINCT d.index_path FROM restore_point_disks d "
                              "JOIN restore_points rp ON rp.id = d.restore_point_id "
                              "LEFT JOIN jobs j ON j.id = rp.job_id "
                              "WHERE d.index_path IS NOT NULL AND d.index_path != '' "
                              "AND (rp.state = 'complete' OR j.state = 'running') ORDER BY 1";
}

/* ---- records ---- */

void vb_rp_disk_clear(vb_rp_disk_t *d)
{
    if (!d)
        return;
    free(d->key);
    free(d->name);
    free(d->datastore);
    free(d->change_id);
    free(d->index_path);
    vb_cat_strv_free(d->transports, d->transport_count);
    memset(d, 0, sizeof *d);
}

void vb_restore_point_clear(vb_restore_point_t *rp)
{
    if (!rp)
        return;
    for (size_t i = 0; i < rp->disk_count; i++)
        vb_rp_disk_clear(&rp->disks[i]);
    free(rp->disks);
    free(rp->vm);
    free(rp->verify_error);
    memset(rp, 0, sizeof *rp);
}

void vb_restore_points_free(vb_restore_point_t **rps_p, size_t count)
{
    if (!rps_p || !*rps_p)
        return;
    for (size_t i = 0; i < count; i++)
        vb_restore_point_clear(&(*rps_p)[i]);
    free(*rps_p);
    *rps_p = NULL;
}

void vb_catalog_strings_free(char ***v_p, size_t count)
{
    if (!v_p || !*v_p)
        return;
    vb_cat_strv_free(*v_p, count);
    *v_p = NULL;
}

static int s_oom(void)
{
    return vb_error_set(VB_ENOMEM, "out of memory");
}

static int s_read_rp(vb_catalog_t *self, sqlite3_stmt *st, vb_restore_point_t *rp)
{
    memset(rp, 0, sizeof *rp);
    rp->id = sqlite3_column_int64(st, 0);
    int kind = VB_CAT_ENUM(vb_cat_rp_kinds, sqlite3_column_text(st, 6));
    int state = VB_CAT_ENUM(vb_cat_rp_states, sqlite3_column_text(st, 7));
    int verify = VB_CAT_ENUM(vb_cat_verify_states, sqlite3_column_text(st, 9));
    if (kind < 0 || state < 0 || verify < 0)
        return vb_error_set(VB_ECORRUPT, "catalog %s: restore point %lld has an unknown state",
                            self->path, (long long)rp->id);
    rp->kind = (vb_rp_kind_t)kind;
    rp->state = (vb_rp_state_t)state;
    rp->verify_state = (vb_verify_state_t)verify;
    rp->is_fcd = sqlite3_column_int(st, 2) != 0;
    rp->job_id = sqlite3_column_int64(st, 3);
    rp->created = sqlite3_column_int64(st, 4);
    rp->completed = sqlite3_column_int64(st, 5);
    rp->parent_id = sqlite3_column_int64(st, 8);
    rp->verified_at = sqlite3_column_int64(st, 10);
    rp->vm = vb_cat_col_str(st, 1, true);
    rp->verify_error = vb_cat_col_str(st, 11, false);
    if (!rp->vm || (!rp->verify_error && sqlite3_column_type(st, 11) != SQLITE_NULL)) {
        vb_restore_point_clear(rp);
        return s_oom();
    }
    return 0;
}

static int s_read_disk(sqlite3_stmt *st, vb_rp_disk_t *d)
{
    memset(d, 0, sizeof *d);
    d->key = vb_cat_col_str(st, 0, true);
    d->name = vb_cat_col_str(st, 1, true);
    d->datastore = vb_cat_col_str(st, 2, true);
    d->capacity = (uint64_t)sqlite3_column_int64(st, 3);
    d->change_id = vb_cat_col_str(st, 4, false);
    d->index_path = vb_cat_col_str(st, 5, false);
    d->logical_bytes = (uint64_t)sqlite3_column_int64(st, 6);
    d->new_bytes = (uint64_t)sqlite3_column_int64(st, 7);
    d->chunk_count = (uint64_t)sqlite3_column_int64(st, 8);
    int rc = vb_cat_json_to_strv((const char *)sqlite3_column_text(st, 9), &d->transports,
                                 &d->transport_count);
    if (!rc && (!d->key || !d->name || !d->datastore ||
                (!d->change_id && sqlite3_column_type(st, 4) != SQLITE_NULL) ||
                (!d->index_path && sqlite3_column_type(st, 5) != SQLITE_NULL)))
        rc = s_oom();
    if (rc)
        vb_rp_disk_clear(d);
    return rc;
}

static int s_load_disks(vb_catalog_t *self, vb_restore_point_t *rp)
{
    sqlite3_stmt *st = self->st[ST_RP_DISKS];
    sqlite3_bind_int64(st, 1, rp->id);
    size_t cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = vb_cat_grow((void **)&rp->disks, &cap, rp->disk_count, sizeof *rp->disks)) != 0 ||
            (rc = s_read_disk(st, &rp->disks[rp->disk_count])) != 0)
            break;
        rp->disk_count++;
    }
    if (!rc && step != SQLITE_DONE)
        rc = vb_cat_db_error(self, "reading a restore point's disks");
    vb_cat_reset(st);
    return rc;
}

/* Reads every row of a bound statement into an array of restore points (disks when asked). */
static int s_read_rps(vb_catalog_t *self, sqlite3_stmt *st, bool with_disks,
                      vb_restore_point_t **out, size_t *count, const char *what)
{
    vb_restore_point_t *rps = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = vb_cat_grow((void **)&rps, &cap, n, sizeof *rps)) != 0 ||
            (rc = s_read_rp(self, st, &rps[n])) != 0)
            break;
        n++;
    }
    if (!rc && step != SQLITE_DONE)
        rc = vb_cat_db_error(self, what);
    vb_cat_reset(st);
    for (size_t i = 0; with_disks && i < n && !rc; i++)
        rc = s_load_disks(self, &rps[i]);
    if (rc) {
        vb_restore_points_free(&rps, n);
        return rc;
    }
    *out = rps;
    *count = n;
    return 0;
}

/* One row by id with statement `which` (ST_RP_GET or ST_RP_GET_ANY); VB_ENOTFOUND when none. */
static int s_get(vb_catalog_t *self, int which, int64_t rp_id, vb_restore_point_t *out)
{
    sqlite3_stmt *st = self->st[which];
    sqlite3_bind_int64(st, 1, rp_id);
    int step = sqlite3_step(st), rc;
    if (step == SQLITE_ROW)
        rc = s_read_rp(self, st, out);
    else if (step == SQLITE_DONE)
        rc = vb_error_set(VB_ENOTFOUND, "restore point %lld does not exist%s", (long long)rp_id,
                          which == ST_RP_GET ? " (or is not complete)" : "");
    else
        rc = vb_cat_db_error(self, "reading a restore point");
    vb_cat_reset(st);
    return rc;
}

/* ---- create, fill, commit, discard ---- */

static int s_check_parent(vb_catalog_t *self, const vb_restore_point_t *rp)
{
    if (rp->kind == VB_RP_FULL)
        return rp->parent_id
                   ? vb_error_set(VB_EINVAL, "a full restore point of VM '%s' cannot have a parent",
                                  rp->vm)
                   : 0;
    if (!rp->parent_id)
        return vb_error_set(VB_EINVAL, "an incremental restore point of VM '%s' needs a parent",
                            rp->vm);
    vb_restore_point_t parent;
    int rc = s_get(self, ST_RP_GET, rp->parent_id, &parent);
    if (rc)
        return vb_error_prefix(rc, "parent of the new restore point of VM '%s'", rp->vm);
    if (strcmp(parent.vm, rp->vm) != 0)
        rc = vb_error_set(VB_EINVAL, "restore point %lld belongs to VM '%s', not '%s'",
                          (long long)parent.id, parent.vm, rp->vm);
    vb_restore_point_clear(&parent);
    return rc;
}

static int s_link_job(vb_catalog_t *self, const vb_restore_point_t *rp, int64_t id)
{
    vb_job_t job;
    int rc = vb_catalog_job_get(self, rp->job_id, &job);
    if (rc)
        return rc;
    if (job.state != VB_JOB_RUNNING)
        rc = vb_error_set(VB_EINVAL, "job %lld has already %s: it cannot add a restore point",
                          (long long)job.id, vb_job_state_name(job.state));
    vb_job_clear(&job);
    if (rc)
        return rc;
    sqlite3_stmt *st = self->st[ST_RP_LINK_JOB_VM];
    sqlite3_bind_int64(st, 1, rp->job_id);
    sqlite3_bind_text(st, 2, rp->vm, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, id);
    if ((rc = vb_cat_step_done(self, st, "linking a restore point to its job")) != 0)
        return rc;
    if (sqlite3_changes(self->db) == 0)
        return vb_error_set(VB_ENOTFOUND, "job %lld has no VM '%s'", (long long)rp->job_id, rp->vm);
    return 0;
}

static int s_insert_disk(vb_catalog_t *self, int64_t rp_id, const vb_rp_disk_t *d)
{
    if (!d->key || !d->key[0])
        return vb_error_set(VB_EINVAL, "a restore point disk needs a key");
    char *transports = vb_cat_strv_to_json(d->transports, d->transport_count);
    if (!transports)
        return s_oom();
    sqlite3_stmt *st = self->st[ST_RP_DISK_INSERT];
    sqlite3_bind_int64(st, 1, rp_id);
    sqlite3_bind_text(st, 2, d->key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, d->name ? d->name : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, d->datastore ? d->datastore : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, (int64_t)d->capacity);
    vb_cat_bind_str(st, 6, d->change_id);
    vb_cat_bind_str(st, 7, d->index_path);
    sqlite3_bind_int64(st, 8, (int64_t)d->logical_bytes);
    sqlite3_bind_int64(st, 9, (int64_t)d->new_bytes);
    sqlite3_bind_int64(st, 10, (int64_t)d->chunk_count);
    sqlite3_bind_text(st, 11, transports, -1, SQLITE_TRANSIENT);
    int rc = vb_cat_step_done(self, st, "adding a restore point disk");
    free(transports);
    if (rc == VB_EEXISTS)
        return vb_error_set(VB_EINVAL, "disk '%s' is named twice in the restore point", d->key);
    return rc;
}

static int s_create(vb_catalog_t *self, const vb_restore_point_t *rp, int64_t *id_out)
{
    int rc = s_check_parent(self, rp);
    if (rc)
        return rc;
    sqlite3_stmt *st = self->st[ST_RP_INSERT];
    sqlite3_bind_text(st, 1, rp->vm, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, rp->is_fcd ? 1 : 0);
    if (rp->job_id)
        sqlite3_bind_int64(st, 3, rp->job_id);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int64(st, 4, rp->created);
    sqlite3_bind_text(st, 5, vb_rp_kind_name(rp->kind), -1, SQLITE_STATIC);
    if (rp->parent_id)
        sqlite3_bind_int64(st, 6, rp->parent_id);
    else
        sqlite3_bind_null(st, 6);
    if ((rc = vb_cat_step_done(self, st, "creating a restore point")) != 0)
        return rc;
    int64_t id = sqlite3_last_insert_rowid(self->db);
    if (rp->job_id && (rc = s_link_job(self, rp, id)) != 0)
        return rc;
    for (size_t i = 0; i < rp->disk_count && !rc; i++)
        rc = s_insert_disk(self, id, &rp->disks[i]);
    if (!rc)
        *id_out = id;
    return rc;
}

int vb_catalog_restore_point_create(vb_catalog_t *self, const vb_restore_point_t *rp,
                                    int64_t *id_out)
{
    if (!rp->vm || !rp->vm[0])
        return vb_error_set(VB_EINVAL, "a restore point needs a VM");
    if ((unsigned)rp->kind > VB_RP_INCREMENTAL)
        return vb_error_set(VB_EINVAL, "unknown restore point kind %d", (int)rp->kind);
    if (rp->disk_count == 0)
        return vb_error_set(VB_EINVAL, "a restore point of VM '%s' needs at least one disk",
                            rp->vm);
    int rc = vb_cat_sp_begin(self);
    if (rc)
        return rc;
    return vb_cat_sp_end(self, s_create(self, rp, id_out));
}

static int s_require_pending(vb_catalog_t *self, int64_t rp_id, const char *what)
{
    vb_restore_point_t rp;
    int rc = s_get(self, ST_RP_GET_ANY, rp_id, &rp);
    if (rc)
        return rc;
    if (rp.state != VB_RP_PENDING)
        rc = vb_error_set(VB_EINVAL, "cannot %s restore point %lld: it is already complete", what,
                          (long long)rp_id);
    vb_restore_point_clear(&rp);
    return rc;
}

static int s_update_disk(vb_catalog_t *self, int64_t rp_id, const vb_rp_disk_t *d)
{
    if (!d->key)
        return vb_error_set(VB_EINVAL, "a restore point disk needs a key");
    char *transports = vb_cat_strv_to_json(d->transports, d->transport_count);
    if (!transports)
        return s_oom();
    sqlite3_stmt *st = self->st[ST_RP_DISK_UPDATE];
    sqlite3_bind_int64(st, 1, rp_id);
    sqlite3_bind_text(st, 2, d->key, -1, SQLITE_TRANSIENT);
    vb_cat_bind_str(st, 3, d->change_id);
    vb_cat_bind_str(st, 4, d->index_path);
    sqlite3_bind_int64(st, 5, (int64_t)d->logical_bytes);
    sqlite3_bind_int64(st, 6, (int64_t)d->new_bytes);
    sqlite3_bind_int64(st, 7, (int64_t)d->chunk_count);
    sqlite3_bind_text(st, 8, transports, -1, SQLITE_TRANSIENT);
    int rc = vb_cat_step_done(self, st, "recording a restore point disk");
    free(transports);
    if (rc == 0 && sqlite3_changes(self->db) == 0)
        rc = vb_error_set(VB_ENOTFOUND, "restore point %lld has no disk '%s'", (long long)rp_id,
                          d->key);
    return rc;
}

int vb_catalog_restore_point_set_disk(vb_catalog_t *self, int64_t rp_id, const vb_rp_disk_t *disk)
{
    int rc = s_require_pending(self, rp_id, "change a disk of");
    return rc ? rc : s_update_disk(self, rp_id, disk);
}

static int s_commit(vb_catalog_t *self, int64_t rp_id, const vb_rp_disk_t *disks, size_t n,
                    int64_t now_ms)
{
    int rc = s_require_pending(self, rp_id, "commit");
    for (size_t i = 0; i < n && !rc; i++)
        rc = s_update_disk(self, rp_id, &disks[i]);
    if (rc)
        return rc;
    sqlite3_stmt *st = self->st[ST_RP_DISKS_WITHOUT_INDEX];
    sqlite3_bind_int64(st, 1, rp_id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = vb_error_set(VB_EINVAL, "cannot commit restore point %lld: disk '%s' has no index",
                          (long long)rp_id, (const char *)sqlite3_column_text(st, 0));
    else if (step != SQLITE_DONE)
        rc = vb_cat_db_error(self, "checking a restore point's disks");
    vb_cat_reset(st);
    if (rc)
        return rc;
    st = self->st[ST_RP_COMMIT];
    sqlite3_bind_int64(st, 1, rp_id);
    sqlite3_bind_int64(st, 2, now_ms);
    return vb_cat_step_done(self, st, "committing a restore point");
}

int vb_catalog_restore_point_commit(vb_catalog_t *self, int64_t rp_id, const vb_rp_disk_t *disks,
                                    size_t n, int64_t now_ms)
{
    int rc = vb_cat_sp_begin(self);
    if (rc)
        return rc;
    return vb_cat_sp_end(self, s_commit(self, rp_id, disks, n, now_ms));
}

int vb_catalog_restore_point_discard(vb_catalog_t *self, int64_t rp_id)
{
    int rc = s_require_pending(self, rp_id, "discard");
    if (rc)
        return rc;
    sqlite3_stmt *st = self->st[ST_RP_DISCARD];
    sqlite3_bind_int64(st, 1, rp_id);
    return vb_cat_step_done(self, st, "discarding a restore point");
}

static int s_import(vb_catalog_t *self, const vb_restore_point_t *rp)
{
    sqlite3_stmt *st = self->st[ST_RP_IMPORT];
    sqlite3_bind_int64(st, 1, rp->id);
    sqlite3_bind_text(st, 2, rp->vm, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, rp->is_fcd ? 1 : 0);
    sqlite3_bind_int64(st, 4, rp->created);
    sqlite3_bind_int64(st, 5, rp->completed);
    sqlite3_bind_text(st, 6, vb_rp_kind_name(rp->kind), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, rp->parent_id);
    int rc = vb_cat_step_done(self, st, "importing a restore point");
    if (rc == VB_EEXISTS)
        return vb_error_set(VB_EEXISTS, "restore point %lld is already in the catalog",
                            (long long)rp->id);
    for (size_t i = 0; i < rp->disk_count && !rc; i++)
        rc = s_insert_disk(self, rp->id, &rp->disks[i]);
    return rc;
}

int vb_catalog_restore_point_import(vb_catalog_t *self, const vb_restore_point_t *rp)
{
    if (rp->id <= 0 || !rp->vm || !rp->vm[0] || (unsigned)rp->kind > VB_RP_INCREMENTAL ||
        rp->disk_count == 0)
        return vb_error_set(VB_EINVAL, "restore point %lld: an id, a VM, a kind and disks are "
                                       "needed to import it",
                            (long long)rp->id);
    for (size_t i = 0; i < rp->disk_count; i++)
        if (!rp->disks[i].index_path || !rp->disks[i].index_path[0])
            return vb_error_set(VB_EINVAL, "restore point %lld: disk '%s' has no index",
                                (long long)rp->id, rp->disks[i].key ? rp->disks[i].key : "?");
    int rc = vb_cat_sp_begin(self);
    if (rc)
        return rc;
    return vb_cat_sp_end(self, s_import(self, rp));
}

/* ---- queries ---- */

int vb_catalog_restore_point_get(vb_catalog_t *self, int64_t rp_id, vb_restore_point_t *out)
{
    int rc = s_get(self, ST_RP_GET, rp_id, out);
    if (rc == 0 && (rc = s_load_disks(self, out)) != 0)
        vb_restore_point_clear(out);
    return rc;
}

static sqlite3_stmt *s_bind_filter(vb_catalog_t *self, const vb_rp_filter_t *f)
{
    int which = f->vm ? (f->newest_first ? ST_RP_LIST_VM_DESC : ST_RP_LIST_VM_ASC)
                      : (f->newest_first ? ST_RP_LIST_ALL_DESC : ST_RP_LIST_ALL_ASC);
    sqlite3_stmt *st = self->st[which];
    vb_cat_bind_str(st, 1, f->vm);
    sqlite3_bind_int64(st, 2, f->after ? f->after : INT64_MIN);
    sqlite3_bind_int64(st, 3, f->before ? f->before : INT64_MAX);
    sqlite3_bind_int64(st, 4, f->limit ? (int64_t)f->limit : -1);
    return st;
}

int vb_catalog_restore_points_list(vb_catalog_t *self, const vb_rp_filter_t *filter,
                                   vb_restore_point_t **out, size_t *count)
{
    vb_rp_filter_t all = {0};
    sqlite3_stmt *st = s_bind_filter(self, filter ? filter : &all);
    return s_read_rps(self, st, false, out, count, "listing restore points");
}

int vb_catalog_restore_point_latest(vb_catalog_t *self, const char *vm, int64_t before_ms,
                                    vb_restore_point_t *out)
{
    if (!vm)
        return vb_error_set(VB_EINVAL, "the latest restore point of which VM?");
    vb_rp_filter_t f = {.vm = vm, .before = before_ms, .limit = 1, .newest_first = true};
    vb_restore_point_t *rps = NULL;
    size_t n = 0;
    int rc = s_read_rps(self, s_bind_filter(self, &f), true, &rps, &n,
                        "finding the latest restore point");
    if (rc)
        return rc;
    if (n == 0) {
        free(rps);
        return vb_error_set(VB_ENOTFOUND, "VM '%s' has no complete restore point%s", vm,
                            before_ms ? " at or before that time" : "");
    }
    *out = rps[0];
    free(rps);
    return 0;
}

int vb_catalog_restore_point_chain(vb_catalog_t *self, int64_t rp_id, vb_restore_point_t **out,
                                   size_t *count)
{
    sqlite3_stmt *st = self->st[ST_RP_CHAIN];
    sqlite3_bind_int64(st, 1, rp_id);
    vb_restore_point_t *rps = NULL;
    size_t n = 0;
    int rc = s_read_rps(self, st, false, &rps, &n, "reading a restore point's chain");
    if (rc)
        return rc;
    if (n == 0) {
        free(rps);
        return vb_error_set(VB_ENOTFOUND, "restore point %lld does not exist (or is not complete)",
                            (long long)rp_id);
    }
    *out = rps;
    *count = n;
    return 0;
}

int vb_catalog_job_restore_points(vb_catalog_t *self, int64_t job_id, vb_restore_point_t **out,
                                  size_t *count)
{
    sqlite3_stmt *st = self->st[ST_RP_OF_JOB];
    sqlite3_bind_int64(st, 1, job_id);
    return s_read_rps(self, st, true, out, count, "listing a job's restore points");
}

/* ---- delete (prune), verify, live indexes ---- */

static int s_push_string(char ***v, size_t *n, size_t *cap, const char *s)
{
    int rc = vb_cat_grow((void **)v, cap, *n, sizeof **v);
    if (rc)
        return rc;
    if (!((*v)[*n] = strdup(s)))
        return s_oom();
    (*n)++;
    return 0;
}

static void s_use_row(sqlite3_stmt *st, vb_rp_use_t *u)
{
    u->rp_id = sqlite3_column_int64(st, 0);
    u->job_id = sqlite3_column_int64(st, 1);
    u->kind = (vb_job_kind_t)VB_CAT_ENUM(vb_cat_job_kinds, sqlite3_column_text(st, 2));
    u->child_id = sqlite3_column_int64(st, 3);
}

/* Fails when a running job uses rp_id (see vb_catalog_restore_points_in_use). */
static int s_check_not_in_use(vb_catalog_t *self, int64_t rp_id)
{
    sqlite3_stmt *st = self->st[ST_RP_IN_USE];
    sqlite3_bind_int64(st, 1, rp_id);
    int step = sqlite3_step(st), rc = 0;
    if (step == SQLITE_ROW) {
        vb_rp_use_t u;
        char why[128];
        s_use_row(st, &u);
        rc = vb_error_set(VB_EBUSY,
                          "restore point %lld is in use (%s); prune it after that job ends",
                          (long long)rp_id, vb_rp_use_text(&u, why, sizeof why));
    } else if (step != SQLITE_DONE) {
        rc = vb_cat_db_error(self, "checking what uses a restore point");
    }
    vb_cat_reset(st);
    return rc;
}

int vb_catalog_restore_points_in_use(vb_catalog_t *self, vb_rp_use_t **out, size_t *count)
{
    sqlite3_stmt *st = self->st[ST_RP_IN_USE];
    vb_rp_use_t *uses = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, step;
    sqlite3_bind_int64(st, 1, 0);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            vb_rp_use_t *grown = realloc(uses, cap * sizeof *grown);
            if (!grown) {
                rc = vb_error_set(VB_ENOMEM, "out of memory");
                break;
            }
            uses = grown;
        }
        s_use_row(st, &uses[n++]);
    }
    if (!rc && step != SQLITE_DONE)
        rc = vb_cat_db_error(self, "listing restore points in use");
    vb_cat_reset(st);
    if (rc) {
        free(uses);
        return rc;
    }
    *out = uses;
    *count = n;
    return 0;
}

const char *vb_rp_use_text(const vb_rp_use_t *use, char *buf, size_t size)
{
    if (use->kind == VB_JOB_BACKUP)
        snprintf(buf, size, "backup job %lld is writing restore point %lld on it",
                 (long long)use->job_id, (long long)use->child_id);
    else
        snprintf(buf, size, "%s job %lld is reading it", vb_job_kind_name(use->kind),
                 (long long)use->job_id);
    return buf;
}

static int s_check_not_newest(vb_catalog_t *self, const vb_restore_point_t *rp)
{
    sqlite3_stmt *st = self->st[ST_RP_LATEST_OF_VM];
    sqlite3_bind_int64(st, 1, rp->id);
    int step = sqlite3_step(st), rc = 0;
    if (step == SQLITE_ROW && sqlite3_column_int64(st, 0) == rp->id)
        rc = vb_error_set(VB_EPOLICY,
                          "restore point %lld is the newest complete one of VM '%s'; "
                          "it is always kept",
                          (long long)rp->id, rp->vm);
    else if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = vb_cat_db_error(self, "finding the newest restore point");
    vb_cat_reset(st);
    return rc;
}

static int s_delete_one(vb_catalog_t *self, int64_t rp_id, bool allow_newest, char ***paths,
                        size_t *n, size_t *cap)
{
    vb_restore_point_t rp;
    int rc = s_get(self, ST_RP_GET_ANY, rp_id, &rp);
    if (rc)
        return rc;
    if (rp.state != VB_RP_COMPLETE)
        rc = vb_error_set(VB_EINVAL,
                          "restore point %lld is not complete (job %lld is writing it): "
                          "it cannot be pruned",
                          (long long)rp_id, (long long)rp.job_id);
    if (!rc)
        rc = s_check_not_in_use(self, rp_id);
    if (!rc && !allow_newest)
        rc = s_check_not_newest(self, &rp);
    if (!rc && paths)
        rc = s_load_disks(self, &rp);
    for (size_t i = 0; !rc && paths && i < rp.disk_count; i++)
        if (rp.disks[i].index_path)
            rc = s_push_string(paths, n, cap, rp.disks[i].index_path);
    vb_restore_point_clear(&rp);
    if (rc)
        return rc;
    sqlite3_stmt *st = self->st[ST_RP_REPARENT];
    sqlite3_bind_int64(st, 1, rp_id);
    if ((rc = vb_cat_step_done(self, st, "re-linking the children of a restore point")) != 0)
        return rc;
    st = self->st[ST_RP_DELETE];
    sqlite3_bind_int64(st, 1, rp_id);
    return vb_cat_step_done(self, st, "deleting a restore point");
}

int vb_catalog_restore_points_delete(vb_catalog_t *self, const int64_t *ids, size_t n,
                                     bool allow_newest, char ***removed_paths,
                                     size_t *removed_count)
{
    char **paths = NULL;
    size_t np = 0, cap = 0;
    int rc = vb_cat_sp_begin(self);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !rc; i++)
        rc = s_delete_one(self, ids[i], allow_newest, removed_paths ? &paths : NULL, &np, &cap);
    rc = vb_cat_sp_end(self, rc);
    if (rc || !removed_paths) {
        vb_cat_strv_free(paths, np);
        return rc;
    }
    *removed_paths = paths;
    *removed_count = np;
    return 0;
}

int vb_catalog_restore_point_set_verify(vb_catalog_t *self, int64_t rp_id, vb_verify_state_t state,
                                        const char *error, int64_t now_ms)
{
    if ((unsigned)state > VB_VERIFY_FAILED)
        return vb_error_set(VB_EINVAL, "unknown verify state %d", (int)state);
    sqlite3_stmt *st = self->st[ST_RP_VERIFY];
    sqlite3_bind_int64(st, 1, rp_id);
    sqlite3_bind_text(st, 2, vb_verify_state_name(state), -1, SQLITE_STATIC);
    vb_cat_bind_str(st, 3, state == VB_VERIFY_FAILED ? error : NULL);
    if (state == VB_VERIFY_NONE)
        sqlite3_bind_null(st, 4);
    else
        sqlite3_bind_int64(st, 4, now_ms);
    int rc = vb_cat_step_done(self, st, "recording a verify result");
    if (rc == 0 && sqlite3_changes(self->db) == 0)
        return vb_error_set(VB_ENOTFOUND, "restore point %lld does not exist (or is not complete)",
                            (long long)rp_id);
    return rc;
}

int vb_catalog_index_paths_live(vb_catalog_t *self, char ***out, size_t *count)
{
    sqlite3_stmt *st = self->st[ST_RP_LIVE_INDEXES];
    char **paths = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = s_push_string(&paths, &n, &cap, (const char *)sqlite3_column_text(st, 0))) != 0)
            break;
    if (!rc && step != SQLITE_DONE)
        rc = vb_cat_db_error(self, "listing live indexes");
    vb_cat_reset(st);
    if (rc) {
        vb_cat_strv_free(paths, n);
        return rc;
    }
    *out = paths;
    *count = n;
    return 0;
}
