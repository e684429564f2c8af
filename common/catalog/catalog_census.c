/* Counts over the catalog for monitoring: jobs by kind and state, restore points, each VM's
 * last successful backup. Each is one grouped query. (Tasks are counted by the job engine in
 * memory: the tasks table holds every task ever run.) */
#include "catalog_internal.h"

#include <sqlite3.h>

void vb_cat_census_sql(const char **sql)
{
    sql[ST_CENSUS_JOBS] = "SELECT kind, state, count(*) FROM jobs GROUP BY kind, state";
    sql[ST_CENSUS_RPS] = "SELECT count(*) FROM restore_points WHERE state = 'complete'";
    sql[ST_CENSUS_LAST_BACKUP] = "SELECT vm, max(completed) FROM restore_points "
                                 "WHERE state = 'complete' GROUP BY vm";
}

/* Runs `which` and sets each row into `into`: columns 0..depth-1 are the nested keys, the next
 * one the number. */
static int s_grouped(vb_catalog_t *self, int which, int depth, json_t *into, const char *what)
{
    sqlite3_stmt *st = self->st[which];
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *obj = into;
        for (int c = 0; c + 1 < depth; c++) {
            const char *k = (const char *)sqlite3_column_text(st, c);
            json_t *next = json_object_get(obj, k ? k : "");
            if (!next) {
                next = json_object();
                json_object_set_new(obj, k ? k : "", next);
            }
            obj = next;
        }
        const char *k = (const char *)sqlite3_column_text(st, depth - 1);
        json_object_set_new(obj, k ? k : "", json_integer(sqlite3_column_int64(st, depth)));
    }
    vb_cat_reset(st);
    return step == SQLITE_DONE ? 0 : vb_cat_db_error(self, what);
}

int vb_catalog_census(vb_catalog_t *self, json_t **out)
{
    json_t *c = json_pack("{s:{}, s:I, s:{}}", "jobs", "restore_points", (json_int_t)0,
                          "last_backup");
    if (!c)
        return vb_error_set(VB_ENOMEM, "out of memory");
    int rc = s_grouped(self, ST_CENSUS_JOBS, 2, json_object_get(c, "jobs"), "counting jobs");
    if (!rc)
        rc = s_grouped(self, ST_CENSUS_LAST_BACKUP, 1, json_object_get(c, "last_backup"),
                       "finding the last backups");
    sqlite3_stmt *st = self->st[ST_CENSUS_RPS];
    if (!rc && sqlite3_step(st) == SQLITE_ROW)
        json_object_set_new(c, "restore_points", json_integer(sqlite3_column_int64(st, 0)));
    else if (!rc)
        rc = vb_cat_db_error(self, "counting restore points");
    vb_cat_reset(st);
    if (rc) {
        json_decref(c);
        return rc;
    }
    /* completed is in ms: the metric is Unix seconds */
    const char *vm;
    json_t *v;
    json_object_foreach(json_object_get(c, "last_backup"), vm, v)
        json_integer_set(v, json_integer_value(v) / 1000);
    *out = c;
    return 0;
}
