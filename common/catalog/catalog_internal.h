/* catalog_internal — shared by the catalog's own source files only (catalog.c, catalog_jobs.c,
 * catalog_restore.c). Nothing outside common/catalog/ includes it.
 *
 * The handle owns every prepared statement. Each source file keeps the SQL of its statements
 * beside the code that runs them and hands the text over with its *_sql() filler; catalog.c
 * prepares them all once at open. */
#ifndef VB_CATALOG_INTERNAL_H
#define VB_CATALOG_INTERNAL_H

#include <sqlite3.h>

#include "catalog.h"

enum {
    /* catalog.c */
    ST_AGENT_INSERT,
    ST_AGENT_UPDATE,
    ST_AGENT_SET_STATE,
    ST_AGENT_BY_KEY,
    ST_AGENT_BY_NAME,
    ST_AGENT_LIST,
    ST_AGENT_DELETE,
    ST_KEY_REVOKE,
    ST_KEY_REVOKED,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    /* catalog_jobs.c */
    ST_JOB_INSERT,
    ST_JOB_VM_INSERT,
    ST_JOB_GET,
    ST_JOB_LIST,
    ST_JOB_LIST_STATE,
    ST_JOB_VMS,
    ST_JOB_VM_GET,
    ST_JOB_FINISH,
    ST_JOB_FINISH_VMS,
    ST_JOB_FINISH_TASKS,
    ST_JOB_FINISH_RPS,
    ST_JOB_CANCEL,
    ST_JOB_SET_OPTIONS,
    ST_JOB_OLDEST_RUNNING,
    ST_JOB_VM_PLAN,
    ST_JOB_VM_FINISH,
    ST_JOB_VM_ACCESS,
    ST_SNAP_INTENT,
    ST_SNAP_CREATED,
    ST_SNAP_REMOVED,
    ST_SNAP_REMOVE_FAILED,
    ST_JOB_VM_NOTE,
    ST_JOB_VM_TIMING,
    ST_SNAP_OUTSTANDING,
    ST_TASK_INSERT,
    ST_TASK_GET,
    ST_TASK_LIST_JOB,
    ST_TASK_LIST_JOB_STATE,
    ST_TASK_LIST_AGENT,
    ST_TASK_CLAIM,
    ST_TASK_SET_TRANSPORT,
    ST_TASK_COMPLETE,
    ST_TASK_FAIL,
    ST_TASK_REQUEUE,
    ST_TASK_REQUEUE_AGENT,
    ST_TASK_COUNTS,
    /* catalog_restore.c */
    ST_RP_INSERT,
    ST_RP_DISK_INSERT,
    ST_RP_LINK_JOB_VM,
    ST_RP_DISK_UPDATE,
    ST_RP_DISKS_WITHOUT_INDEX,
    ST_RP_COMMIT,
    ST_RP_GET_ANY,
    ST_RP_GET,
    ST_RP_DISKS,
    ST_RP_LIST_VM_ASC,
    ST_RP_LIST_VM_DESC,
    ST_RP_LIST_ALL_ASC,
    ST_RP_LIST_ALL_DESC,
    ST_RP_CHAIN,
    ST_RP_OF_JOB,
    ST_RP_DISCARD,
    ST_RP_IN_USE,
    ST_RP_REPARENT,
    ST_RP_DELETE,
    ST_RP_LATEST_OF_VM,
    ST_RP_VERIFY,
    ST_RP_LIVE_INDEXES,
    ST_RP_IMPORT,
    ST_CENSUS_JOBS,
    ST_CENSUS_RPS,
    ST_CENSUS_LAST_BACKUP,
    ST_COUNT
};

struct vb_catalog {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[ST_COUNT];
    vb_catalog_job_end_fn on_job_end; /* vb_catalog_on_job_end */
    void *on_job_end_arg;
};

/* Fill sql[ST_*] for the statements each file owns. */
void vb_cat_jobs_sql(const char **sql);
void vb_cat_restore_sql(const char **sql);
void vb_cat_census_sql(const char **sql);

/* Sets VB_EDB with the SQLite message, naming the catalog file and `what` failed. */
int vb_cat_db_error(vb_catalog_t *self, const char *what);

/* Steps a statement that returns no rows, then resets it and clears its bindings. Constraint
 * failures map to VB_EEXISTS (unique), VB_ENOTFOUND (foreign key) or VB_EINVAL (check, not null),
 * each with a message naming `what`. */
int vb_cat_step_done(vb_catalog_t *self, sqlite3_stmt *st, const char *what);

/* Resets a statement after reading rows and clears its bindings. */
void vb_cat_reset(sqlite3_stmt *st);

/* A savepoint around a multi-statement change: works inside the caller's begin/commit and alone.
 * vb_cat_sp_end releases it when rc == 0, else rolls it back; returns rc. */
int vb_cat_sp_begin(vb_catalog_t *self) VB_WUR;
int vb_cat_sp_end(vb_catalog_t *self, int rc);

/* Column text as a new string ("" for NULL when or_empty, else NULL for NULL). */
char *vb_cat_col_str(sqlite3_stmt *st, int col, bool or_empty);
/* Binds text, or NULL when s is NULL. */
void vb_cat_bind_str(sqlite3_stmt *st, int idx, const char *s);

/* Grows *arr (elements of size elem) so that it holds at least n + 1; VB_ENOMEM on failure. */
int vb_cat_grow(void **arr, size_t *cap, size_t n, size_t elem) VB_WUR;

/* Name tables of the enums (catalog_jobs.c) and the reverse lookup: the index of `text` in
 * names[0..n), or -1 (a value this build does not know: the caller reports VB_ECORRUPT). */
extern const char *const vb_cat_job_kinds[5];
extern const char *const vb_cat_job_states[4];
extern const char *const vb_cat_snap_states[4];
extern const char *const vb_cat_task_kinds[3];
extern const char *const vb_cat_task_states[5];
extern const char *const vb_cat_rp_kinds[2];
extern const char *const vb_cat_rp_states[2];
extern const char *const vb_cat_verify_states[3];
int vb_cat_enum(const char *const *names, int n, const unsigned char *text);
#define VB_CAT_ENUM(names, text) vb_cat_enum(names, (int)(sizeof names / sizeof names[0]), text)
#define VB_CAT_NAME(names, v)                                                                      \
    ((unsigned)(v) < sizeof names / sizeof names[0] ? names[(unsigned)(v)] : "?")

/* String lists stored as JSON arrays (agents' LUNs and transports, disks' transports). */
char *vb_cat_strv_to_json(char **v, size_t n);
int vb_cat_json_to_strv(const char *text, char ***out, size_t *count) VB_WUR;
void vb_cat_strv_free(char **v, size_t n);

#endif
