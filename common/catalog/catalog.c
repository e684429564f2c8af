#include "catalog_internal.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Each migration takes the schema from version i to i + 1. Never edit one that has shipped:
 * add a new one. */
static const char *const s_migrations[] = {
    /* 1: agents */
    "CREATE TABLE agents ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  public_key TEXT NOT NULL UNIQUE,"
    "  host TEXT NOT NULL DEFAULT '',"
    "  datastore TEXT NOT NULL DEFAULT '',"
    "  luns TEXT NOT NULL DEFAULT '[]',"
    "  os TEXT NOT NULL DEFAULT '',"
    "  slots INTEGER NOT NULL DEFAULT 1,"
    "  transports TEXT NOT NULL DEFAULT '[]',"
    "  version TEXT NOT NULL DEFAULT '',"
    "  state TEXT NOT NULL DEFAULT 'online' CHECK (state IN ('online','lost')),"
    "  enrolled_at INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL"
    ");",
    /* 2: jobs, their VMs (with the snapshot each job takes, recorded before it is taken so a
     *    crash can clean it up), tasks, restore points and their disks. Times are Unix ms. */
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  kind TEXT NOT NULL CHECK (kind IN ('backup','restore','verify','prune')),"
    "  state TEXT NOT NULL DEFAULT 'running'"
    "    CHECK (state IN ('running','succeeded','failed','cancelled')),"
    "  full INTEGER NOT NULL DEFAULT 0,"
    "  options TEXT,"
    "  started INTEGER NOT NULL,"
    "  finished INTEGER,"
    "  error TEXT,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX jobs_running ON jobs(started) WHERE state = 'running';"
    "CREATE INDEX jobs_state ON jobs(state, id);"
    "CREATE TABLE job_vms ("
    "  id INTEGER PRIMARY KEY,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  vm TEXT NOT NULL,"
    "  is_fcd INTEGER NOT NULL DEFAULT 0,"
    "  state TEXT NOT NULL DEFAULT 'running'"
    "    CHECK (state IN ('running','succeeded','failed','cancelled')),"
    "  mode TEXT CHECK (mode IN ('full','incremental')),"
    "  mode_reason TEXT,"
    "  restore_point_id INTEGER REFERENCES restore_points(id) ON DELETE SET NULL,"
    "  snapshot_name TEXT,"
    "  snapshot_id TEXT,"
    "  snapshot_state TEXT NOT NULL DEFAULT 'none'"
    "    CHECK (snapshot_state IN ('none','requested','created','removed')),"
    "  access_prepared INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  UNIQUE (job_id, vm)"
    ");"
    "CREATE INDEX job_vms_outstanding ON job_vms(job_id)"
    "  WHERE snapshot_state IN ('requested','created') OR access_prepared = 1;"
    "CREATE INDEX job_vms_restore_point ON job_vms(restore_point_id);"
    "CREATE TABLE tasks ("
    "  id INTEGER PRIMARY KEY,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  job_vm_id INTEGER NOT NULL REFERENCES job_vms(id) ON DELETE CASCADE,"
    "  disk_key TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('map','backup','restore')),"
    "  state TEXT NOT NULL DEFAULT 'queued'"
    "    CHECK (state IN ('queued','running','done','failed','cancelled')),"
    "  ext_offset INTEGER NOT NULL DEFAULT 0 CHECK (ext_offset >= 0),"
    "  ext_length INTEGER NOT NULL DEFAULT 0 CHECK (ext_length >= 0),"
    "  agent TEXT,"
    "  transport TEXT,"
    "  transport_reason TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  failures INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  payload TEXT,"
    "  bytes INTEGER NOT NULL DEFAULT 0,"
    "  started INTEGER,"
    "  finished INTEGER"
    ");"
    "CREATE INDEX tasks_job ON tasks(job_id, state);"
    "CREATE INDEX tasks_job_vm ON tasks(job_vm_id);"
    "CREATE INDEX tasks_running_agent ON tasks(agent) WHERE state = 'running';"
    "CREATE TABLE restore_points ("
    "  id INTEGER PRIMARY KEY,"
    "  vm TEXT NOT NULL,"
    "  is_fcd INTEGER NOT NULL DEFAULT 0,"
    "  job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,"
    "  created INTEGER NOT NULL,"
    "  completed INTEGER,"
    "  kind TEXT NOT NULL CHECK (kind IN ('full','incremental')),"
    "  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','complete')),"
    "  parent_id INTEGER REFERENCES restore_points(id),"
    "  verify_state TEXT NOT NULL DEFAULT 'unverified'"
    "    CHECK (verify_state IN ('unverified','ok','failed')),"
    "  verified_at INTEGER,"
    "  verify_error TEXT,"
    "  CHECK (kind = 'incremental' OR parent_id IS NULL)"
    ");"
    "CREATE INDEX restore_points_vm ON restore_points(vm, state, created);"
    "CREATE INDEX restore_points_created ON restore_points(state, created);"
    "CREATE INDEX restore_points_parent ON restore_points(parent_id);"
    "CREATE INDEX restore_points_job ON restore_points(job_id);"
    "CREATE TABLE restore_point_disks ("
    "  id INTEGER PRIMARY KEY,"
    "  restore_point_id INTEGER NOT NULL REFERENCES restore_points(id) ON DELETE CASCADE,"
    "  disk_key TEXT NOT NULL,"
    "  name TEXT NOT NULL DEFAULT '',"
    "  datastore TEXT NOT NULL DEFAULT '',"
    "  capacity INTEGER NOT NULL DEFAULT 0,"
    "  change_id TEXT,"
    "  index_path TEXT,"
    "  logical_bytes INTEGER NOT NULL DEFAULT 0,"
    "  new_bytes INTEGER NOT NULL DEFAULT 0,"
    "  chunk_count INTEGER NOT NULL DEFAULT 0,"
    "  transports TEXT NOT NULL DEFAULT '[]',"
    "  UNIQUE (restore_point_id, disk_key)"
    ");",
    /* 3: a covering index for a VM's restore points, so that listing them reads the index only,
     *    in order, without a table lookup per row. */
    "DROP INDEX restore_points_vm;"
    "CREATE INDEX restore_points_vm ON restore_points(vm, state, created, id, is_fcd, job_id,"
    "  completed, kind, parent_id, verify_state, verified_at, verify_error);",
    /* 4: job, task and restore point ids are never reused (AUTOINCREMENT): a deleted newest row
     *    (a discarded pending restore point) must not hand its id, and the index names made from
     *    it, to the next one. SQLite cannot add AUTOINCREMENT in place, so each table is rebuilt
     *    and its rows copied (ids kept); runs with foreign keys off (see s_migrate). */
    "CREATE TABLE jobs_v4 ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind TEXT NOT NULL CHECK (kind IN ('backup','restore','verify','prune')),"
    "  state TEXT NOT NULL DEFAULT 'running'"
    "    CHECK (state IN ('running','succeeded','failed','cancelled')),"
    "  full INTEGER NOT NULL DEFAULT 0,"
    "  options TEXT,"
    "  started INTEGER NOT NULL,"
    "  finished INTEGER,"
    "  error TEXT,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0"
    ");"
    "INSERT INTO jobs_v4 SELECT * FROM jobs;"
    "DROP TABLE jobs;"
    "ALTER TABLE jobs_v4 RENAME TO jobs;"
    "CREATE INDEX jobs_running ON jobs(started) WHERE state = 'running';"
    "CREATE INDEX jobs_state ON jobs(state, id);"
    "CREATE TABLE tasks_v4 ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  job_vm_id INTEGER NOT NULL REFERENCES job_vms(id) ON DELETE CASCADE,"
    "  disk_key TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('map','backup','restore')),"
    "  state TEXT NOT NULL DEFAULT 'queued'"
    "    CHECK (state IN ('queued','running','done','failed','cancelled')),"
    "  ext_offset INTEGER NOT NULL DEFAULT 0 CHECK (ext_offset >= 0),"
    "  ext_length INTEGER NOT NULL DEFAULT 0 CHECK (ext_length >= 0),"
    "  agent TEXT,"
    "  transport TEXT,"
    "  transport_reason TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  failures INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  payload TEXT,"
    "  bytes INTEGER NOT NULL DEFAULT 0,"
    "  started INTEGER,"
    "  finished INTEGER"
    ");"
    "INSERT INTO tasks_v4 SELECT * FROM tasks;"
    "DROP TABLE tasks;"
    "ALTER TABLE tasks_v4 RENAME TO tasks;"
    "CREATE INDEX tasks_job ON tasks(job_id, state);"
    "CREATE INDEX tasks_job_vm ON tasks(job_vm_id);"
    "CREATE INDEX tasks_running_agent ON tasks(agent) WHERE state = 'running';"
    "CREATE TABLE restore_points_v4 ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  vm TEXT NOT NULL,"
    "  is_fcd INTEGER NOT NULL DEFAULT 0,"
    "  job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,"
    "  created INTEGER NOT NULL,"
    "  completed INTEGER,"
    "  kind TEXT NOT NULL CHECK (kind IN ('full','incremental')),"
    "  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','complete')),"
    "  parent_id INTEGER REFERENCES restore_points(id),"
    "  verify_state TEXT NOT NULL DEFAULT 'unverified'"
    "    CHECK (verify_state IN ('unverified','ok','failed')),"
    "  verified_at INTEGER,"
    "  verify_error TEXT,"
    "  CHECK (kind = 'incremental' OR parent_id IS NULL)"
    ");"
    "INSERT INTO restore_points_v4 SELECT * FROM restore_points;"
    "DROP TABLE restore_points;"
    "ALTER TABLE restore_points_v4 RENAME TO restore_points;"
    "CREATE INDEX restore_points_vm ON restore_points(vm, state, created, id, is_fcd, job_id,"
    "  completed, kind, parent_id, verify_state, verified_at, verify_error);"
    "CREATE INDEX restore_points_created ON restore_points(state, created);"
    "CREATE INDEX restore_points_parent ON restore_points(parent_id);"
    "CREATE INDEX restore_points_job ON restore_points(job_id);",
    /* 5 (job engine): notes said on a job's VM (e.g. an encrypted disk into a plain repository);
     *    the last error of a snapshot removal that is being retried; the bytes a task reads (the
     *    read phase's progress counts these, not extent windows or map tasks). */
    "ALTER TABLE job_vms ADD COLUMN notes TEXT;"
    "ALTER TABLE job_vms ADD COLUMN snapshot_error TEXT;"
    "ALTER TABLE tasks ADD COLUMN read_bytes INTEGER NOT NULL DEFAULT 0 CHECK (read_bytes >= 0);",
    /* 6 (job timing): a job VM's wall time per phase, a JSON array the job engine writes
     *    (opaque to the catalog, as jobs.options is). */
    "ALTER TABLE job_vms ADD COLUMN timing TEXT;",
    /* 7 (site): keys of removed agents, refused from then on (even with the site token). */
    "CREATE TABLE revoked_keys ("
    "  public_key TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  revoked_at INTEGER NOT NULL"
    ");",
    /* 8 (serve): jobs of kind 'serve', the lease of a restore point served over NBD. SQLite
     *    cannot change a CHECK in place: the table is rebuilt as in 4 (ids kept). */
    "CREATE TABLE jobs_v8 ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind TEXT NOT NULL CHECK (kind IN ('backup','restore','verify','prune','serve')),"
    "  state TEXT NOT NULL DEFAULT 'running'"
    "    CHECK (state IN ('running','succeeded','failed','cancelled')),"
    "  full INTEGER NOT NULL DEFAULT 0,"
    "  options TEXT,"
    "  started INTEGER NOT NULL,"
    "  finished INTEGER,"
    "  error TEXT,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0"
    ");"
    "INSERT INTO jobs_v8 SELECT * FROM jobs;"
    /* the id sequence goes on where it was, even past deleted rows: ids are never reused */
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'jobs_v8', 0 WHERE NOT EXISTS"
    "  (SELECT 1 FROM sqlite_sequence WHERE name = 'jobs_v8');"
    "UPDATE sqlite_sequence SET seq = (SELECT max(seq) FROM sqlite_sequence"
    "  WHERE name IN ('jobs', 'jobs_v8')) WHERE name = 'jobs_v8';"
    "DROP TABLE jobs;"
    "ALTER TABLE jobs_v8 RENAME TO jobs;"
    "CREATE INDEX jobs_running ON jobs(started) WHERE state = 'running';"
    "CREATE INDEX jobs_state ON jobs(state, id);",
};
#define VB_SCHEMA_VERSION ((int)(sizeof s_migrations / sizeof s_migrations[0]))

#define AGENT_COLUMNS                                                                              \
    "name, public_key, host, datastore, luns, os, slots, transports, version, state, "             \
    "enrolled_at, last_seen"

static const char *const s_sql[ST_COUNT] = {
    [ST_AGENT_INSERT] = "INSERT INTO agents (" AGENT_COLUMNS ") "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'online', ?10, ?11)",
    [ST_AGENT_UPDATE] = "UPDATE agents SET name = ?1, host = ?3, datastore = ?4, luns = ?5, "
                        "os = ?6, slots = ?7, transports = ?8, version = ?9, state = 'online', "
                        "last_seen = ?11 WHERE public_key = ?2",
    [ST_AGENT_SET_STATE] = "UPDATE agents SET state = ?2, last_seen = ?3 WHERE public_key = ?1",
    [ST_AGENT_BY_KEY] = "SELECT " AGENT_COLUMNS " FROM agents WHERE public_key = ?1",
    [ST_AGENT_BY_NAME] = "SELECT " AGENT_COLUMNS " FROM agents WHERE name = ?1",
    [ST_AGENT_LIST] = "SELECT " AGENT_COLUMNS " FROM agents ORDER BY name",
    [ST_AGENT_DELETE] = "DELETE FROM agents WHERE public_key = ?1",
    [ST_KEY_REVOKE] = ("INSERT OR REPLACE INTO revoked_keys (public_key, name, revoked_at) "
                       "VALUES (?1, ?2, ?3)"),
    [ST_KEY_REVOKED] = "SELECT name FROM revoked_keys WHERE public_key = ?1",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT vb_op",
    [ST_RELEASE] = "RELEASE vb_op",
    [ST_ROLLBACK_TO] = "ROLLBACK TO vb_op",
};

int vb_cat_db_error(vb_catalog_t *self, const char *what)
{
    return vb_error_set(VB_EDB, "catalog %s: %s: %s", self->path, what, sqlite3_errmsg(self->db));
}

static int s_exec(vb_catalog_t *self, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(self->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        int rc = vb_error_set(VB_EDB, "catalog %s: %s", self->path, err ? err : "error");
        sqlite3_free(err);
        return rc;
    }
    return 0;
}

static int s_user_version(vb_catalog_t *self, int *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(self->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return vb_cat_db_error(self, "reading the schema version");
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    else
        rc = vb_cat_db_error(self, "reading the schema version");
    sqlite3_finalize(st);
    return rc;
}

static int s_migrate(vb_catalog_t *self)
{
    int version = 0;
    int rc = s_user_version(self, &version);
    if (rc)
        return rc;
    if (version > VB_SCHEMA_VERSION)
        return vb_error_set(VB_EUNSUPPORTED,
                            "catalog %s has schema version %d; this vbak supports up to %d "
                            "(upgrade vbak)",
                            self->path, version, VB_SCHEMA_VERSION);
    for (int v = version; v < VB_SCHEMA_VERSION; v++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if ((rc = s_exec(self, "BEGIN IMMEDIATE")) != 0)
            return rc;
        if ((rc = s_exec(self, s_migrations[v])) != 0 || (rc = s_exec(self, pragma)) != 0) {
            sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
            return vb_error_prefix(rc, "migrating to schema version %d", v + 1);
        }
        if ((rc = s_exec(self, "COMMIT")) != 0)
            return rc;
        VB_LOG_INFO("catalog", "migrated path=%s version=%d", self->path, v + 1);
    }
    return 0;
}

vb_catalog_t *vb_catalog_open(const char *path)
{
    vb_catalog_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    /* NOMUTEX: one thread owns the connection (the coordinator actor), so SQLite's per-call
     * locking is pure overhead (a tenth of the time of a long restore point listing). */
    if (sqlite3_open_v2(path, &self->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        vb_cat_db_error(self, "open");
        goto fail;
    }
    sqlite3_busy_timeout(self->db, 5000);
    /* Migrations run before foreign keys are enforced: rebuilding a table drops the old one,
     * which with enforcement on would cascade to the rows that reference it. */
    if (s_exec(self, "PRAGMA journal_mode = WAL") || s_exec(self, "PRAGMA synchronous = NORMAL") ||
        s_exec(self, "PRAGMA cache_size = -32768")) /* KiB: keeps the hot indexes in memory */
        goto fail;
    if (s_migrate(self) || s_exec(self, "PRAGMA foreign_keys = ON"))
        goto fail;
    const char *sql[ST_COUNT];
    memcpy(sql, s_sql, sizeof sql);
    vb_cat_jobs_sql(sql);
    vb_cat_restore_sql(sql);
    vb_cat_census_sql(sql);
    for (int i = 0; i < ST_COUNT; i++) {
        if (!sql[i]) {
            vb_error_set(VB_EDB, "catalog %s: statement %d has no SQL", self->path, i);
            goto fail;
        }
        if (sqlite3_prepare_v3(self->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &self->st[i],
                               NULL) != SQLITE_OK) {
            vb_cat_db_error(self, "preparing statements");
            goto fail;
        }
    }
    return self;
fail:
    vb_catalog_destroy(&self);
    return NULL;
}

void vb_catalog_destroy(vb_catalog_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_catalog_t *self = *self_p;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(self->st[i]);
    sqlite3_close(self->db);
    free(self->path);
    free(self);
    *self_p = NULL;
}

int vb_catalog_schema_version(void)
{
    return VB_SCHEMA_VERSION;
}

int vb_cat_step_done(vb_catalog_t *self, sqlite3_stmt *st, const char *what)
{
    int step = sqlite3_step(st);
    int rc = 0;
    if (step != SQLITE_DONE) {
        int ext = sqlite3_extended_errcode(self->db);
        int code = VB_EDB;
        if ((ext & 0xff) == SQLITE_CONSTRAINT) {
            if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
                code = VB_ENOTFOUND;
            else if (ext == SQLITE_CONSTRAINT_CHECK || ext == SQLITE_CONSTRAINT_NOTNULL)
                code = VB_EINVAL;
            else
                code = VB_EEXISTS;
        }
        rc = vb_error_set(code, "catalog %s: %s: %s", self->path, what, sqlite3_errmsg(self->db));
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

void vb_cat_reset(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int vb_cat_sp_begin(vb_catalog_t *self)
{
    return vb_cat_step_done(self, self->st[ST_SAVEPOINT], "starting a change");
}

int vb_cat_sp_end(vb_catalog_t *self, int rc)
{
    if (rc == 0) {
        int released = vb_cat_step_done(self, self->st[ST_RELEASE], "committing a change");
        if (released == 0)
            return 0;
        rc = released;
    }
    /* Keep the message of the failure that made us roll back. */
    sqlite3_stmt *to = self->st[ST_ROLLBACK_TO], *rel = self->st[ST_RELEASE];
    (void)sqlite3_step(to);
    sqlite3_reset(to);
    (void)sqlite3_step(rel);
    sqlite3_reset(rel);
    return rc;
}

char *vb_cat_col_str(sqlite3_stmt *st, int col, bool or_empty)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    if (!t)
        return or_empty ? strdup("") : NULL;
    return strdup((const char *)t);
}

void vb_cat_bind_str(sqlite3_stmt *st, int idx, const char *s)
{
    if (s)
        sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, idx);
}

int vb_cat_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *grown = realloc(*arr, ncap * elem);
    if (!grown)
        return vb_error_set(VB_ENOMEM, "out of memory");
    memset((char *)grown + *cap * elem, 0, (ncap - *cap) * elem);
    *arr = grown;
    *cap = ncap;
    return 0;
}

int vb_catalog_begin(vb_catalog_t *self)
{
    return vb_cat_step_done(self, self->st[ST_BEGIN], "begin");
}

bool vb_catalog_in_transaction(vb_catalog_t *self)
{
    return !sqlite3_get_autocommit(self->db);
}

int vb_catalog_commit(vb_catalog_t *self)
{
    return vb_cat_step_done(self, self->st[ST_COMMIT], "commit");
}

void vb_catalog_rollback(vb_catalog_t *self)
{
    if (!sqlite3_get_autocommit(self->db))
        (void)vb_cat_step_done(self, self->st[ST_ROLLBACK], "rollback");
}

/* ---- agents ---- */

char *vb_cat_strv_to_json(char **v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(v[i]));
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

int vb_cat_json_to_strv(const char *text, char ***out, size_t *count)
{
    *out = NULL;
    *count = 0;
    json_t *arr = json_loads(text ? text : "[]", 0, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return vb_error_set(VB_ECORRUPT, "catalog: a list column is not a JSON array");
    }
    size_t n = json_array_size(arr);
    char **v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        json_decref(arr);
        return vb_error_set(VB_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        v[i] = strdup(s ? s : "");
    }
    json_decref(arr);
    *out = v;
    *count = n;
    return 0;
}

static void s_bind_agent(sqlite3_stmt *st, const vb_agent_record_t *rec, char *luns,
                         char *transports, int64_t now_ms)
{
    sqlite3_bind_text(st, 1, rec->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, rec->public_key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, rec->host ? rec->host : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, rec->datastore ? rec->datastore : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, luns, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, rec->os ? rec->os : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 7, rec->slots);
    sqlite3_bind_text(st, 8, transports, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 9, rec->version ? rec->version : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 10, now_ms / 1000);
    sqlite3_bind_int64(st, 11, now_ms);
}

static int s_write_agent(vb_catalog_t *self, int which, const vb_agent_record_t *rec,
                         int64_t now_ms, const char *what)
{
    char *luns = vb_cat_strv_to_json(rec->luns, rec->lun_count);
    char *transports = vb_cat_strv_to_json(rec->transports, rec->transport_count);
    if (!luns || !transports) {
        free(luns);
        free(transports);
        return vb_error_set(VB_ENOMEM, "out of memory");
    }
    s_bind_agent(self->st[which], rec, luns, transports, now_ms);
    int rc = vb_cat_step_done(self, self->st[which], what);
    free(luns);
    free(transports);
    return rc;
}

int vb_catalog_agent_enroll(vb_catalog_t *self, const vb_agent_record_t *rec, int64_t now_ms)
{
    int rc = s_write_agent(self, ST_AGENT_INSERT, rec, now_ms, "enrolling an agent");
    if (rc == VB_EEXISTS)
        vb_error_set(VB_EEXISTS, "an agent named '%s' or with this key is already enrolled",
                     rec->name);
    return rc;
}

int vb_catalog_agent_update_facts(vb_catalog_t *self, const vb_agent_record_t *rec, int64_t now_ms)
{
    int rc = s_write_agent(self, ST_AGENT_UPDATE, rec, now_ms, "updating an agent");
    if (rc == VB_EEXISTS)
        return vb_error_set(VB_EEXISTS, "agent name '%s' belongs to another enrolled agent",
                            rec->name);
    if (rc == 0 && sqlite3_changes(self->db) == 0)
        return vb_error_set(VB_ENOTFOUND, "no agent is enrolled with key %.8s...", rec->public_key);
    return rc;
}

int vb_catalog_agent_set_state(vb_catalog_t *self, const char *public_key, const char *state,
                               int64_t last_seen_ms)
{
    sqlite3_stmt *st = self->st[ST_AGENT_SET_STATE];
    sqlite3_bind_text(st, 1, public_key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, last_seen_ms);
    int rc = vb_cat_step_done(self, st, "updating an agent's state");
    if (rc == 0 && sqlite3_changes(self->db) == 0)
        return vb_error_set(VB_ENOTFOUND, "no agent is enrolled with key %.8s...", public_key);
    return rc;
}

int vb_catalog_agent_remove(vb_catalog_t *self, const char *public_key, const char *name,
                            int64_t now_ms)
{
    int rc = vb_cat_sp_begin(self);
    if (rc)
        return rc;
    sqlite3_stmt *del = self->st[ST_AGENT_DELETE], *rev = self->st[ST_KEY_REVOKE];
    sqlite3_bind_text(del, 1, public_key, -1, SQLITE_TRANSIENT);
    rc = vb_cat_step_done(self, del, "removing an agent");
    if (rc == 0 && sqlite3_changes(self->db) == 0)
        rc = vb_error_set(VB_ENOTFOUND, "no agent is enrolled with key %.8s...", public_key);
    if (rc == 0) {
        sqlite3_bind_text(rev, 1, public_key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(rev, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(rev, 3, now_ms);
        rc = vb_cat_step_done(self, rev, "revoking an agent's key");
    }
    return vb_cat_sp_end(self, rc);
}

int vb_catalog_key_revoked(vb_catalog_t *self, const char *public_key, char **name_out)
{
    sqlite3_stmt *st = self->st[ST_KEY_REVOKED];
    sqlite3_bind_text(st, 1, public_key, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(st), rc = 0;
    if (step == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        *name_out = strdup(t ? (const char *)t : "");
        if (!*name_out)
            rc = vb_error_set(VB_ENOMEM, "out of memory");
    } else if (step == SQLITE_DONE) {
        rc = VB_ENOTFOUND;
    } else {
        rc = vb_cat_db_error(self, "looking up a revoked key");
    }
    vb_cat_reset(st);
    return rc;
}

static char *s_col_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return strdup(t ? (const char *)t : "");
}

static int s_read_agent(sqlite3_stmt *st, vb_agent_record_t *out)
{
    memset(out, 0, sizeof *out);
    out->name = s_col_dup(st, 0);
    out->public_key = s_col_dup(st, 1);
    out->host = s_col_dup(st, 2);
    out->datastore = s_col_dup(st, 3);
    int rc =
        vb_cat_json_to_strv((const char *)sqlite3_column_text(st, 4), &out->luns, &out->lun_count);
    out->os = s_col_dup(st, 5);
    out->slots = (uint32_t)sqlite3_column_int64(st, 6);
    if (!rc)
        rc = vb_cat_json_to_strv((const char *)sqlite3_column_text(st, 7), &out->transports,
                                 &out->transport_count);
    out->version = s_col_dup(st, 8);
    out->state = s_col_dup(st, 9);
    out->enrolled_at = sqlite3_column_int64(st, 10);
    out->last_seen = sqlite3_column_int64(st, 11);
    if (!rc && (!out->name || !out->public_key || !out->host || !out->datastore || !out->os ||
                !out->version || !out->state))
        rc = vb_error_set(VB_ENOMEM, "out of memory");
    if (rc)
        vb_agent_record_clear(out);
    return rc;
}

static int s_agent_lookup(vb_catalog_t *self, int which, const char *value, vb_agent_record_t *out)
{
    sqlite3_stmt *st = self->st[which];
    sqlite3_bind_text(st, 1, value, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(st);
    int rc;
    if (step == SQLITE_ROW)
        rc = s_read_agent(st, out);
    else if (step == SQLITE_DONE)
        rc = vb_error_set(VB_ENOTFOUND, "no such agent");
    else
        rc = vb_cat_db_error(self, "looking up an agent");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int vb_catalog_agent_by_key(vb_catalog_t *self, const char *public_key, vb_agent_record_t *out)
{
    return s_agent_lookup(self, ST_AGENT_BY_KEY, public_key, out);
}

int vb_catalog_agent_by_name(vb_catalog_t *self, const char *name, vb_agent_record_t *out)
{
    return s_agent_lookup(self, ST_AGENT_BY_NAME, name, out);
}

int vb_catalog_agents_list(vb_catalog_t *self, vb_agent_record_t **out, size_t *count)
{
    sqlite3_stmt *st = self->st[ST_AGENT_LIST];
    vb_agent_record_t *recs = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            vb_agent_record_t *grown = realloc(recs, cap * sizeof *recs);
            if (!grown) {
                rc = vb_error_set(VB_ENOMEM, "out of memory");
                break;
            }
            recs = grown;
        }
        if ((rc = s_read_agent(st, &recs[n])) != 0)
            break;
        n++;
    }
    if (!rc && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = vb_cat_db_error(self, "listing agents");
    sqlite3_reset(st);
    if (rc) {
        vb_agent_records_free(&recs, n);
        return rc;
    }
    *out = recs;
    *count = n;
    return 0;
}

void vb_cat_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void vb_agent_record_clear(vb_agent_record_t *rec)
{
    free(rec->name);
    free(rec->public_key);
    free(rec->host);
    free(rec->datastore);
    vb_cat_strv_free(rec->luns, rec->lun_count);
    free(rec->os);
    vb_cat_strv_free(rec->transports, rec->transport_count);
    free(rec->version);
    free(rec->state);
    free(rec->proxy_vm);
    free(rec->vddk_version);
    free(rec->machine);
    memset(rec, 0, sizeof *rec);
}

void vb_agent_records_free(vb_agent_record_t **recs_p, size_t count)
{
    if (!recs_p || !*recs_p)
        return;
    for (size_t i = 0; i < count; i++)
        vb_agent_record_clear(&(*recs_p)[i]);
    free(*recs_p);
    *recs_p = NULL;
}

const char *vb_catalog_path(const vb_catalog_t *self)
{
    return self->path;
}

/* Opens `path` with flags; VB_EDB naming it when it cannot. */
static int s_open_for_copy(const char *path, int flags, sqlite3 **db)
{
    if (sqlite3_open_v2(path, db, flags, NULL) == SQLITE_OK)
        return 0;
    int rc = vb_error_set(VB_EDB, "catalog copy: cannot open %s: %s", path,
                          *db ? sqlite3_errmsg(*db) : "out of memory");
    sqlite3_close(*db);
    *db = NULL;
    return rc;
}

int vb_catalog_copy(const char *path, const char *dest)
{
    sqlite3 *src = NULL, *dst = NULL;
    int rc = s_open_for_copy(path, SQLITE_OPEN_READONLY, &src);
    if (!rc)
        rc = s_open_for_copy(dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &dst);
    if (rc)
        goto out;
    sqlite3_busy_timeout(src, 5000);
    /* one step over every page: the copy is one read transaction of the source, consistent
     * whatever the coordinator commits meanwhile (WAL readers do not block the writer) */
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    int step = b ? sqlite3_backup_step(b, -1) : SQLITE_ERROR;
    if (b)
        sqlite3_backup_finish(b);
    if (step != SQLITE_DONE)
        rc = vb_error_set(VB_EDB, "catalog copy of %s into %s: %s", path, dest,
                          sqlite3_errmsg(dst));
    else if (sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL) != SQLITE_OK)
        rc = vb_error_set(VB_EDB, "catalog copy %s: %s", dest, sqlite3_errmsg(dst));
out:
    sqlite3_close(src);
    sqlite3_close(dst);
    return rc;
}
