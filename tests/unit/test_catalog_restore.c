/* Restore points in the catalog: invisible until committed, queries, chains, prune, verify, GC. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "catalog_testutil.h"

TestSuite(catalog_restore, .init = catalog_setup, .fini = catalog_teardown);

static int64_t backup_job(vb_catalog_t *cat, const char *vm, int64_t started)
{
    vb_job_vm_t jv = {.vm = (char *)vm};
    vb_job_t job = {.kind = VB_JOB_BACKUP, .started = started, .vms = &jv, .vm_count = 1};
    int64_t id = 0;
    cr_assert_eq(vb_catalog_job_create(cat, &job, &id), 0, "%s", vb_error_msg());
    return id;
}

static char *s_transports[] = {"hotadd", "nbdssl"};

/* A pending restore point of `vm` with disks "2000" and "2001" (no index yet). */
static int64_t pending_rp(vb_catalog_t *cat, const char *vm, int64_t job, int64_t created,
                          int64_t parent)
{
    vb_rp_disk_t disks[2] = {
        {.key = "2000", .name = "Hard disk 1", .datastore = "vmfs-01", .capacity = 8ull << 30},
        {.key = "2001", .name = "Hard disk 2", .datastore = "nfs-01", .capacity = 2ull << 30}};
    vb_restore_point_t rp = {.vm = (char *)vm,
                             .job_id = job,
                             .created = created,
                             .kind = parent ? VB_RP_INCREMENTAL : VB_RP_FULL,
                             .parent_id = parent,
                             .disks = disks,
                             .disk_count = 2};
    int64_t id = 0;
    cr_assert_eq(vb_catalog_restore_point_create(cat, &rp, &id), 0, "%s", vb_error_msg());
    cr_assert_gt(id, 0);
    return id;
}

/* The final disk results for commit: index paths named after the restore point. */
static void results(int64_t rp, char paths[2][64], vb_rp_disk_t out[2])
{
    for (int i = 0; i < 2; i++) {
        snprintf(paths[i], 64, "indexes/rp%lld-%d.idx", (long long)rp, 2000 + i);
        memset(&out[i], 0, sizeof out[i]);
        out[i].key = i ? "2001" : "2000";
        out[i].change_id = i ? "52 aa/9" : "52 aa/7";
        out[i].index_path = paths[i];
        out[i].logical_bytes = (uint64_t)(i + 1) << 20;
        out[i].new_bytes = (uint64_t)(i + 1) << 10;
        out[i].chunk_count = (uint64_t)(i + 1) * 8;
        out[i].transports = s_transports;
        out[i].transport_count = 2;
    }
}

/* A committed restore point of `vm` written by its own (then succeeded) job. */
static int64_t complete_rp(vb_catalog_t *cat, const char *vm, int64_t created, int64_t parent)
{
    int64_t job = backup_job(cat, vm, created);
    int64_t id = pending_rp(cat, vm, job, created, parent);
    char paths[2][64];
    vb_rp_disk_t d[2];
    results(id, paths, d);
    cr_assert_eq(vb_catalog_restore_point_commit(cat, id, d, 2, created + 5), 0, "%s",
                 vb_error_msg());
    cr_assert_eq(vb_catalog_job_finish(cat, job, VB_JOB_SUCCEEDED, NULL, created + 6), 0);
    return id;
}

static size_t count_rps(vb_catalog_t *cat, const vb_rp_filter_t *f)
{
    vb_restore_point_t *list = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_restore_points_list(cat, f, &list, &n), 0, "%s", vb_error_msg());
    vb_restore_points_free(&list, n);
    return n;
}

Test(catalog_restore, invisible_until_committed_and_a_failed_commit_changes_nothing)
{
    vb_catalog_t *cat = open_cat();
    int64_t job = backup_job(cat, "web-01", 1000);
    int64_t rp = pending_rp(cat, "web-01", job, 1000, 0);
    vb_rp_filter_t by_vm = {.vm = "web-01"};
    vb_restore_point_t got;

    cr_assert_eq(count_rps(cat, &by_vm), 0);
    cr_assert_eq(count_rps(cat, NULL), 0);
    cr_assert_eq(vb_catalog_restore_point_get(cat, rp, &got), VB_ENOTFOUND);
    cr_assert_eq(vb_catalog_restore_point_latest(cat, "web-01", 0, &got), VB_ENOTFOUND);
    cr_assert(strstr(vb_error_msg(), "web-01"), "%s", vb_error_msg());

    /* The job sees its own pending point, and the job VM links to it. */
    vb_restore_point_t *mine = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_job_restore_points(cat, job, &mine, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(mine[0].state, VB_RP_PENDING);
    cr_assert_eq(mine[0].disk_count, 2);
    cr_assert_null(mine[0].disks[0].index_path);
    vb_restore_points_free(&mine, n);
    vb_job_t j;
    cr_assert_eq(vb_catalog_job_get(cat, job, &j), 0);
    cr_assert_eq(j.vms[0].restore_point_id, rp);
    vb_job_clear(&j);

    /* Commit with one disk's index missing: refused, and the other disk's result is not kept. */
    char paths[2][64];
    vb_rp_disk_t d[2];
    results(rp, paths, d);
    cr_assert_eq(vb_catalog_restore_point_commit(cat, rp, d, 1, 1005), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "2001") && strstr(vb_error_msg(), "no index"), "%s",
              vb_error_msg());
    cr_assert_eq(count_rps(cat, &by_vm), 0, "still invisible");
    cr_assert_eq(vb_catalog_job_restore_points(cat, job, &mine, &n), 0);
    cr_assert_eq(mine[0].state, VB_RP_PENDING);
    cr_assert_null(mine[0].disks[0].index_path, "the failed commit left nothing");
    vb_restore_points_free(&mine, n);

    /* A disk key the restore point does not have: refused too. */
    vb_rp_disk_t stray = d[0];
    stray.key = "9999";
    cr_assert_eq(vb_catalog_restore_point_set_disk(cat, rp, &stray), VB_ENOTFOUND);
    cr_assert(strstr(vb_error_msg(), "9999"), "%s", vb_error_msg());

    cr_assert_eq(vb_catalog_restore_point_set_disk(cat, rp, &d[0]), 0);
    cr_assert_eq(vb_catalog_restore_point_commit(cat, rp, &d[1], 1, 1005), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_catalog_restore_point_commit(cat, rp, NULL, 0, 1006), VB_EINVAL);
    cr_assert_eq(vb_catalog_restore_point_set_disk(cat, rp, &d[0]), VB_EINVAL,
                 "a complete restore point is not changed");
    cr_assert_eq(count_rps(cat, &by_vm), 1);

    cr_assert_eq(vb_catalog_restore_point_get(cat, rp, &got), 0, "%s", vb_error_msg());
    cr_assert_str_eq(got.vm, "web-01");
    cr_assert_eq(got.state, VB_RP_COMPLETE);
    cr_assert_eq(got.kind, VB_RP_FULL);
    cr_assert_eq(got.job_id, job);
    cr_assert_eq(got.created, 1000);
    cr_assert_eq(got.completed, 1005);
    cr_assert_eq(got.parent_id, 0);
    cr_assert_eq(got.verify_state, VB_VERIFY_NONE);
    cr_assert_eq(got.disk_count, 2);
    cr_assert_str_eq(got.disks[0].key, "2000");
    cr_assert_str_eq(got.disks[0].name, "Hard disk 1");
    cr_assert_str_eq(got.disks[0].datastore, "vmfs-01");
    cr_assert_eq(got.disks[0].capacity, 8ull << 30);
    cr_assert_str_eq(got.disks[0].change_id, "52 aa/7");
    cr_assert_str_eq(got.disks[1].change_id, "52 aa/9");
    cr_assert_str_eq(got.disks[1].index_path, paths[1]);
    cr_assert_eq(got.disks[1].logical_bytes, 2u << 20);
    cr_assert_eq(got.disks[1].new_bytes, 2u << 10);
    cr_assert_eq(got.disks[1].chunk_count, 16);
    cr_assert_eq(got.disks[1].transport_count, 2);
    cr_assert_str_eq(got.disks[1].transports[0], "hotadd");
    vb_restore_point_clear(&got);
    vb_catalog_destroy(&cat);
}

Test(catalog_restore, a_failed_job_leaves_no_restore_point)
{
    vb_catalog_t *cat = open_cat();
    int64_t job = backup_job(cat, "web-01", 1000);
    int64_t rp = pending_rp(cat, "web-01", job, 1000, 0);
    char paths[2][64];
    vb_rp_disk_t d[2];
    results(rp, paths, d);
    cr_assert_eq(vb_catalog_restore_point_set_disk(cat, rp, &d[0]), 0);

    char **live = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_index_paths_live(cat, &live, &n), 0);
    cr_assert_eq(n, 1, "a running job's index is live");
    cr_assert_str_eq(live[0], paths[0]);
    vb_catalog_strings_free(&live, n);
    cr_assert_null(live);

    cr_assert_eq(
        vb_catalog_job_finish(cat, job, VB_JOB_FAILED, "disk 2001: read failed 3 times", 2000), 0);
    vb_restore_point_t *mine = NULL;
    cr_assert_eq(vb_catalog_job_restore_points(cat, job, &mine, &n), 0);
    cr_assert_eq(n, 0, "the pending restore point is gone");
    vb_restore_points_free(&mine, n);
    cr_assert_eq(vb_catalog_index_paths_live(cat, &live, &n), 0);
    cr_assert_eq(n, 0);
    vb_catalog_strings_free(&live, n);
    vb_restore_point_t got;
    cr_assert_eq(vb_catalog_restore_point_latest(cat, "web-01", 0, &got), VB_ENOTFOUND);
    vb_job_t j;
    cr_assert_eq(vb_catalog_job_get(cat, job, &j), 0);
    cr_assert_eq(j.vms[0].restore_point_id, 0);
    cr_assert_str_eq(j.error, "disk 2001: read failed 3 times");
    vb_job_clear(&j);

    /* Discard, for a backup the engine abandons itself. */
    int64_t job2 = backup_job(cat, "web-01", 3000);
    int64_t rp2 = pending_rp(cat, "web-01", job2, 3000, 0);
    cr_assert_eq(vb_catalog_restore_point_discard(cat, rp2), 0);
    cr_assert_eq(vb_catalog_restore_point_discard(cat, rp2), VB_ENOTFOUND);
    int64_t done = complete_rp(cat, "web-02", 4000, 0);
    cr_assert_eq(vb_catalog_restore_point_discard(cat, done), VB_EINVAL);
    vb_catalog_destroy(&cat);
}

/* A failed backup's pending restore point is the newest row when it is discarded: its id (and the
 * index names made from it) must not come back, neither at once nor after a reopen. The same for
 * jobs and tasks, whatever removed the newest row. */
Test(catalog_restore, ids_are_never_reused)
{
    vb_catalog_t *cat = open_cat();
    int64_t kept = complete_rp(cat, "web-01", 1000, 0);
    int64_t job = backup_job(cat, "web-01", 2000);
    int64_t failed = pending_rp(cat, "web-01", job, 2000, 0);
    cr_assert_gt(failed, kept);
    cr_assert_eq(vb_catalog_job_finish(cat, job, VB_JOB_FAILED, "read failed", 2100), 0);
    int64_t next = pending_rp(cat, "web-01", backup_job(cat, "web-01", 3000), 3000, 0);
    cr_assert_gt(next, failed, "restore point id %lld reused (failed one was %lld)",
                 (long long)next, (long long)failed);
    cr_assert_eq(vb_catalog_restore_point_discard(cat, next), 0);
    vb_job_vm_t jv = {.vm = "web-01"};
    vb_task_t t = {.vm = "web-01", .disk_key = "2000", .kind = VB_TASK_BACKUP, .length = 1};
    int64_t last_job = backup_job(cat, "web-01", 4000);
    cr_assert_eq(vb_catalog_tasks_add(cat, last_job, &t, 1, NULL), 0, "%s", vb_error_msg());
    vb_catalog_destroy(&cat);

    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' 'PRAGMA foreign_keys = ON; DELETE FROM jobs WHERE id = %lld' && "
             "test \"$(sqlite3 '%s' 'SELECT count(*) FROM tasks WHERE job_id = %lld')\" = 0",
             s_path, (long long)last_job, s_path, (long long)last_job);
    cr_assert_eq(system(cmd), 0);
    cat = open_cat();
    cr_assert_gt(pending_rp(cat, "web-01", backup_job(cat, "web-01", 5000), 5000, 0), next,
                 "after a reopen");
    vb_job_t job5 = {.kind = VB_JOB_BACKUP, .started = 6000, .vms = &jv, .vm_count = 1};
    int64_t id5 = 0;
    cr_assert_eq(vb_catalog_job_create(cat, &job5, &id5), 0, "%s", vb_error_msg());
    cr_assert_gt(id5, last_job + 1, "job id %lld reused", (long long)id5);
    cr_assert_eq(vb_catalog_tasks_add(cat, id5, &t, 1, NULL), 0, "%s", vb_error_msg());
    vb_catalog_destroy(&cat);
    snprintf(cmd, sizeof cmd, "test \"$(sqlite3 '%s' 'SELECT max(id) FROM tasks')\" = 2", s_path);
    cr_assert_eq(system(cmd), 0, "the deleted job's task id 1 was not reused");
}

Test(catalog_restore, queries_by_vm_and_time)
{
    vb_catalog_t *cat = open_cat();
    int64_t a[5];
    for (int i = 0; i < 5; i++) {
        a[i] = complete_rp(cat, "web-01", 1000 * (i + 1), i ? a[i - 1] : 0);
        (void)complete_rp(cat, "db-01", 1000 * (i + 1) + 500, 0);
    }
    int64_t job = backup_job(cat, "web-01", 9000);
    (void)pending_rp(cat, "web-01", job, 9000, a[4]); /* running: never listed */

    vb_rp_filter_t f = {.vm = "web-01"};
    vb_restore_point_t *list = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_restore_points_list(cat, &f, &list, &n), 0);
    cr_assert_eq(n, 5);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(list[i].id, a[i], "oldest first");
        cr_assert_str_eq(list[i].vm, "web-01");
        cr_assert_eq(list[i].kind, i ? VB_RP_INCREMENTAL : VB_RP_FULL);
        cr_assert_eq(list[i].parent_id, i ? a[i - 1] : 0);
        cr_assert_null(list[i].disks);
    }
    vb_restore_points_free(&list, n);

    f.after = 2000; /* inclusive bounds */
    f.before = 4000;
    cr_assert_eq(vb_catalog_restore_points_list(cat, &f, &list, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(list[0].created, 2000);
    cr_assert_eq(list[2].created, 4000);
    vb_restore_points_free(&list, n);
    f.newest_first = true;
    f.limit = 2;
    cr_assert_eq(vb_catalog_restore_points_list(cat, &f, &list, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(list[0].created, 4000);
    cr_assert_eq(list[1].created, 3000);
    vb_restore_points_free(&list, n);
    vb_rp_filter_t only_before = {.vm = "web-01", .before = 2999};
    cr_assert_eq(count_rps(cat, &only_before), 2);
    vb_rp_filter_t only_after = {.vm = "db-01", .after = 3501};
    cr_assert_eq(count_rps(cat, &only_after), 2);
    vb_rp_filter_t nobody = {.vm = "no-such-vm"};
    cr_assert_eq(count_rps(cat, &nobody), 0);

    /* Retention input: every complete restore point of every VM, by time. */
    cr_assert_eq(vb_catalog_restore_points_list(cat, NULL, &list, &n), 0);
    cr_assert_eq(n, 10);
    for (size_t i = 1; i < n; i++)
        cr_assert_geq(list[i].created, list[i - 1].created);
    cr_assert_str_eq(list[0].vm, "web-01");
    cr_assert_str_eq(list[1].vm, "db-01");
    vb_restore_points_free(&list, n);
    vb_rp_filter_t all_recent = {.after = 4000, .newest_first = true};
    cr_assert_eq(vb_catalog_restore_points_list(cat, &all_recent, &list, &n), 0);
    cr_assert_eq(n, 4);
    cr_assert_eq(list[0].created, 5500);
    cr_assert_eq(list[3].created, 4000);
    vb_restore_points_free(&list, n);

    /* Latest (for incremental planning: with the disks' change IDs), and latest before a time. */
    vb_restore_point_t got;
    cr_assert_eq(vb_catalog_restore_point_latest(cat, "web-01", 0, &got), 0);
    cr_assert_eq(got.id, a[4]);
    cr_assert_eq(got.disk_count, 2);
    cr_assert_str_eq(got.disks[0].change_id, "52 aa/7");
    vb_restore_point_clear(&got);
    cr_assert_eq(vb_catalog_restore_point_latest(cat, "web-01", 3500, &got), 0);
    cr_assert_eq(got.id, a[2]);
    vb_restore_point_clear(&got);
    cr_assert_eq(vb_catalog_restore_point_latest(cat, "web-01", 3000, &got), 0);
    cr_assert_eq(got.id, a[2], "at the exact time counts");
    vb_restore_point_clear(&got);
    cr_assert_eq(vb_catalog_restore_point_latest(cat, "web-01", 999, &got), VB_ENOTFOUND);

    /* Show: the parent chain. */
    vb_restore_point_t *chain = NULL;
    cr_assert_eq(vb_catalog_restore_point_chain(cat, a[3], &chain, &n), 0);
    cr_assert_eq(n, 4);
    cr_assert_eq(chain[0].id, a[3]);
    cr_assert_eq(chain[3].id, a[0]);
    cr_assert_eq(chain[3].kind, VB_RP_FULL);
    vb_restore_points_free(&chain, n);
    cr_assert_eq(vb_catalog_restore_point_chain(cat, 99999, &chain, &n), VB_ENOTFOUND);
    vb_catalog_destroy(&cat);
}

Test(catalog_restore, create_refuses_inconsistent_points)
{
    vb_catalog_t *cat = open_cat();
    int64_t other = complete_rp(cat, "db-01", 1000, 0);
    int64_t base = complete_rp(cat, "web-01", 1000, 0);
    vb_rp_disk_t disk = {.key = "2000"};
    vb_restore_point_t rp = {.vm = "web-01",
                             .created = 2000,
                             .kind = VB_RP_INCREMENTAL,
                             .disks = &disk,
                             .disk_count = 1};
    int64_t id = -1;
    cr_assert_eq(vb_catalog_restore_point_create(cat, &rp, &id), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "needs a parent"), "%s", vb_error_msg());
    rp.parent_id = other;
    cr_assert_eq(vb_catalog_restore_point_create(cat, &rp, &id), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "db-01"), "%s", vb_error_msg());
    rp.parent_id = 4242;
    cr_assert_eq(vb_catalog_restore_point_create(cat, &rp, &id), VB_ENOTFOUND);
    rp.kind = VB_RP_FULL;
    rp.parent_id = base;
    cr_assert_eq(vb_catalog_restore_point_create(cat, &rp, &id), VB_EINVAL);
    rp.parent_id = 0;
    rp.disk_count = 0;
    cr_assert_eq(vb_catalog_restore_point_create(cat, &rp, &id), VB_EINVAL);
    vb_rp_disk_t twice[2] = {{.key = "2000"}, {.key = "2000"}};
    rp.disks = twice;
    rp.disk_count = 2;
    cr_assert_eq(vb_catalog_restore_point_create(cat, &rp, &id), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "2000"), "%s", vb_error_msg());
    rp.disk_count = 1;
    rp.job_id = 777;
    cr_assert_eq(vb_catalog_restore_point_create(cat, &rp, &id), VB_ENOTFOUND);
    int64_t job = backup_job(cat, "web-01", 5);
    cr_assert_eq(vb_catalog_job_finish(cat, job, VB_JOB_FAILED, "x", 6), 0);
    rp.job_id = job;
    cr_assert_eq(vb_catalog_restore_point_create(cat, &rp, &id), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "failed"), "%s", vb_error_msg());
    cr_assert_eq(id, -1);
    vb_restore_point_t *mine = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_job_restore_points(cat, job, &mine, &n), 0);
    cr_assert_eq(n, 0, "nothing half-created for the failed job");
    vb_restore_points_free(&mine, n);
    vb_rp_filter_t f = {.vm = "web-01"};
    cr_assert_eq(count_rps(cat, &f), 1, "only the base: no refused point was created");
    vb_catalog_destroy(&cat);
}

Test(catalog_restore, prune_relinks_children_and_keeps_the_newest)
{
    vb_catalog_t *cat = open_cat();
    int64_t a = complete_rp(cat, "web-01", 1000, 0);
    int64_t b = complete_rp(cat, "web-01", 2000, a);
    int64_t c = complete_rp(cat, "web-01", 3000, b);
    int64_t other = complete_rp(cat, "db-01", 1500, 0);

    /* All or nothing: an unknown id in the set deletes nothing. */
    int64_t bad[] = {a, 4242};
    cr_assert_eq(vb_catalog_restore_points_delete(cat, bad, 2, false, NULL, NULL), VB_ENOTFOUND);
    cr_assert(strstr(vb_error_msg(), "4242"), "%s", vb_error_msg());
    cr_assert_eq(count_rps(cat, NULL), 4);

    int64_t newest[] = {c};
    cr_assert_eq(vb_catalog_restore_points_delete(cat, newest, 1, false, NULL, NULL), VB_EPOLICY);
    cr_assert(strstr(vb_error_msg(), "newest") && strstr(vb_error_msg(), "web-01"), "%s",
              vb_error_msg());
    int64_t lone[] = {other};
    cr_assert_eq(vb_catalog_restore_points_delete(cat, lone, 1, false, NULL, NULL), VB_EPOLICY);

    int64_t mid[] = {b};
    char **removed = NULL;
    size_t nr = 0;
    cr_assert_eq(vb_catalog_restore_points_delete(cat, mid, 1, false, &removed, &nr), 0, "%s",
                 vb_error_msg());
    cr_assert_eq(nr, 2);
    char want[64];
    snprintf(want, sizeof want, "indexes/rp%lld-2000.idx", (long long)b);
    cr_assert_str_eq(removed[0], want);
    vb_catalog_strings_free(&removed, nr);

    vb_restore_point_t *chain = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_restore_point_chain(cat, c, &chain, &n), 0);
    cr_assert_eq(n, 2, "c now follows a");
    cr_assert_eq(chain[0].id, c);
    cr_assert_eq(chain[0].kind, VB_RP_INCREMENTAL);
    cr_assert_eq(chain[1].id, a);
    vb_restore_points_free(&chain, n);

    /* A running job builds on c: c cannot go while it runs. */
    int64_t job = backup_job(cat, "web-01", 4000);
    int64_t d = pending_rp(cat, "web-01", job, 4000, c);
    int64_t both[] = {a, c};
    cr_assert_eq(vb_catalog_restore_points_delete(cat, both, 2, true, NULL, NULL), VB_EBUSY);
    cr_assert(strstr(vb_error_msg(), "job"), "%s", vb_error_msg());
    int64_t pend[] = {d};
    cr_assert_eq(vb_catalog_restore_points_delete(cat, pend, 1, true, NULL, NULL), VB_EINVAL);
    cr_assert_eq(count_rps(cat, NULL), 3, "the refused prunes deleted nothing");

    cr_assert_eq(vb_catalog_job_finish(cat, job, VB_JOB_CANCELLED, "cancelled", 4500), 0);
    cr_assert_eq(vb_catalog_restore_points_delete(cat, both, 2, true, NULL, NULL), 0, "%s",
                 vb_error_msg());
    vb_rp_filter_t f = {.vm = "web-01"};
    cr_assert_eq(count_rps(cat, &f), 0);
    cr_assert_eq(count_rps(cat, NULL), 1);
    vb_catalog_destroy(&cat);
}

/* A restore or a verify reading a restore point protects it from prune exactly as a backup that
 * builds on it does; each use says which job and why. */
Test(catalog_restore, restore_points_read_by_running_jobs_cannot_be_pruned)
{
    vb_catalog_t *cat = open_cat();
    int64_t a = complete_rp(cat, "web-01", 1000, 0);
    int64_t b = complete_rp(cat, "web-01", 2000, a);
    complete_rp(cat, "web-01", 3000, b);
    vb_job_vm_t rv = {.vm = "web-01", .restore_point_id = a};
    vb_job_t restore = {.kind = VB_JOB_RESTORE, .started = 4000, .vms = &rv, .vm_count = 1};
    int64_t rjob = 0, vjob = 0;
    cr_assert_eq(vb_catalog_job_create(cat, &restore, &rjob), 0, "%s", vb_error_msg());
    vb_job_vm_t vv = {.vm = "web-01", .restore_point_id = b};
    vb_job_t verify = {.kind = VB_JOB_VERIFY, .started = 4100, .vms = &vv, .vm_count = 1};
    cr_assert_eq(vb_catalog_job_create(cat, &verify, &vjob), 0, "%s", vb_error_msg());

    vb_rp_use_t *uses = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_restore_points_in_use(cat, &uses, &n), 0, "%s", vb_error_msg());
    cr_assert_eq(n, 2);
    char why[128];
    cr_assert_eq(uses[0].rp_id, a);
    cr_assert_str_eq(vb_rp_use_text(&uses[0], why, sizeof why), "restore job 4 is reading it");
    cr_assert_eq(uses[0].job_id, rjob);
    cr_assert_eq(uses[1].rp_id, b);
    cr_assert_eq(uses[1].kind, VB_JOB_VERIFY);
    free(uses);

    int64_t ids[] = {a};
    cr_assert_eq(vb_catalog_restore_points_delete(cat, ids, 1, false, NULL, NULL), VB_EBUSY);
    cr_assert(strstr(vb_error_msg(), "restore job"), "%s", vb_error_msg());
    ids[0] = b;
    cr_assert_eq(vb_catalog_restore_points_delete(cat, ids, 1, false, NULL, NULL), VB_EBUSY);
    cr_assert(strstr(vb_error_msg(), "verify job"), "%s", vb_error_msg());

    cr_assert_eq(vb_catalog_job_finish(cat, rjob, VB_JOB_SUCCEEDED, NULL, 5000), 0);
    cr_assert_eq(vb_catalog_job_finish(cat, vjob, VB_JOB_SUCCEEDED, NULL, 5000), 0);
    cr_assert_eq(vb_catalog_restore_points_in_use(cat, &uses, &n), 0);
    cr_assert_eq(n, 0, "finished jobs use nothing");
    free(uses);
    int64_t both[] = {a, b};
    cr_assert_eq(vb_catalog_restore_points_delete(cat, both, 2, false, NULL, NULL), 0, "%s",
                 vb_error_msg());
    vb_catalog_destroy(&cat);
}

Test(catalog_restore, verify_state_and_live_indexes)
{
    vb_catalog_t *cat = open_cat();
    int64_t a = complete_rp(cat, "web-01", 1000, 0);
    int64_t b = complete_rp(cat, "web-02", 1000, 0);
    cr_assert_eq(vb_catalog_restore_point_set_verify(cat, a, VB_VERIFY_OK, NULL, 5000), 0);
    cr_assert_eq(vb_catalog_restore_point_set_verify(cat, b, VB_VERIFY_FAILED,
                                                     "chunk 3f2a... digest mismatch", 5001),
                 0);
    cr_assert_eq(vb_catalog_restore_point_set_verify(cat, 999, VB_VERIFY_OK, NULL, 1),
                 VB_ENOTFOUND);
    vb_restore_point_t got;
    cr_assert_eq(vb_catalog_restore_point_get(cat, a, &got), 0);
    cr_assert_eq(got.verify_state, VB_VERIFY_OK);
    cr_assert_eq(got.verified_at, 5000);
    cr_assert_null(got.verify_error);
    cr_assert_str_eq(vb_verify_state_name(got.verify_state), "ok");
    vb_restore_point_clear(&got);
    cr_assert_eq(vb_catalog_restore_point_get(cat, b, &got), 0);
    cr_assert_eq(got.verify_state, VB_VERIFY_FAILED);
    cr_assert_str_eq(got.verify_error, "chunk 3f2a... digest mismatch");
    vb_restore_point_clear(&got);

    int64_t job = backup_job(cat, "web-03", 2000);
    int64_t p = pending_rp(cat, "web-03", job, 2000, 0);
    vb_rp_disk_t d = {.key = "2001", .index_path = "indexes/aaa-in-progress.idx"};
    cr_assert_eq(vb_catalog_restore_point_set_disk(cat, p, &d), 0);
    char **live = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_index_paths_live(cat, &live, &n), 0);
    cr_assert_eq(n, 5);
    cr_assert_str_eq(live[0], "indexes/aaa-in-progress.idx", "sorted");
    for (size_t i = 1; i < n; i++)
        cr_assert_lt(strcmp(live[i - 1], live[i]), 0);
    vb_catalog_strings_free(&live, n);
    vb_catalog_destroy(&cat);
}

Test(catalog_restore, reopening_keeps_everything)
{
    vb_catalog_t *cat = open_cat();
    int64_t a = complete_rp(cat, "fcd-data", 1000, 0);
    int64_t job = backup_job(cat, "fcd-data", 2000);
    int64_t p = pending_rp(cat, "fcd-data", job, 2000, a);
    vb_catalog_destroy(&cat);

    cat = open_cat();
    vb_restore_point_t got;
    cr_assert_eq(vb_catalog_restore_point_latest(cat, "fcd-data", 0, &got), 0);
    cr_assert_eq(got.id, a, "the pending one stays invisible after a restart");
    cr_assert_eq(got.disk_count, 2);
    cr_assert_str_eq(got.disks[1].transports[1], "nbdssl");
    vb_restore_point_clear(&got);
    vb_restore_point_t *mine = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_job_restore_points(cat, job, &mine, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(mine[0].id, p);
    cr_assert_eq(mine[0].parent_id, a);
    vb_restore_points_free(&mine, n);
    char paths[2][64];
    vb_rp_disk_t d[2];
    results(p, paths, d);
    cr_assert_eq(vb_catalog_restore_point_commit(cat, p, d, 2, 2100), 0);
    cr_assert_eq(vb_catalog_job_finish(cat, job, VB_JOB_SUCCEEDED, NULL, 2200), 0);
    vb_catalog_destroy(&cat);

    cat = open_cat();
    cr_assert_eq(vb_catalog_restore_point_latest(cat, "fcd-data", 0, &got), 0);
    cr_assert_eq(got.id, p);
    cr_assert_eq(got.kind, VB_RP_INCREMENTAL);
    vb_restore_point_clear(&got);
    vb_catalog_destroy(&cat);
}

/* A schema 2 catalog (before the covering index) is upgraded in place; its restore points stay. */
Test(catalog_restore, upgrades_a_version_2_catalog)
{
    vb_catalog_t *cat = open_cat();
    int64_t a = complete_rp(cat, "web-01", 1000, 0);
    int64_t b = complete_rp(cat, "web-01", 2000, a);
    vb_catalog_destroy(&cat);
    char cmd[640];
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' 'DROP INDEX restore_points_vm; CREATE INDEX restore_points_vm ON "
             "restore_points(vm, state, created); ALTER TABLE job_vms DROP COLUMN notes; "
             "ALTER TABLE job_vms DROP COLUMN snapshot_error; "
             "ALTER TABLE job_vms DROP COLUMN timing; "
             "ALTER TABLE tasks DROP COLUMN read_bytes; DROP TABLE revoked_keys; "
             "PRAGMA user_version = 2;'",
             s_path);
    cr_assert_eq(system(cmd), 0);

    cat = open_cat();
    vb_rp_filter_t f = {.vm = "web-01", .newest_first = true};
    vb_restore_point_t *list = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_restore_points_list(cat, &f, &list, &n), 0, "%s", vb_error_msg());
    cr_assert_eq(n, 2);
    cr_assert_eq(list[0].id, b);
    cr_assert_eq(list[0].parent_id, a);
    vb_restore_points_free(&list, n);
    vb_catalog_destroy(&cat);
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' \"SELECT sql FROM sqlite_master WHERE name = 'restore_points_vm'\" "
             "| grep -q verify_error",
             s_path);
    cr_assert_eq(system(cmd), 0, "the covering index replaced the old one");
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' \"SELECT sql FROM sqlite_master WHERE name IN ('jobs', 'tasks', "
             "'restore_points')\" | grep -c AUTOINCREMENT | grep -qx 3",
             s_path);
    cr_assert_eq(system(cmd), 0, "ids of jobs, tasks and restore points are never reused");
    cat = open_cat();
    cr_assert_gt(complete_rp(cat, "web-01", 3000, b), b, "rows kept, new ids after them");
    vb_catalog_destroy(&cat);
}

/* Catalog rebuild: restore points imported from manifests keep their ids, chains and change IDs;
 * a parent that was not imported (pruned) leaves the child without one; an id is never taken
 * twice, and new restore points get ids after the imported ones. */
Test(catalog_restore, import_keeps_ids_chains_and_change_ids)
{
    vb_catalog_t *cat = open_cat();
    char paths[2][64];
    vb_rp_disk_t d[2];
    results(7, paths, d);
    vb_restore_point_t full = {.id = 7, .vm = "vm1", .created = 1000, .completed = 1005,
                               .kind = VB_RP_FULL, .disks = d, .disk_count = 2};
    vb_restore_point_t incr = full;
    incr.id = 9, incr.kind = VB_RP_INCREMENTAL, incr.parent_id = 7, incr.created = 2000;
    vb_restore_point_t orphan = incr;
    orphan.id = 12, orphan.parent_id = 11, orphan.created = 3000;
    cr_assert_eq(vb_catalog_restore_point_import(cat, &full), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_catalog_restore_point_import(cat, &incr), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_catalog_restore_point_import(cat, &orphan), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_catalog_restore_point_import(cat, &incr), VB_EEXISTS);
    vb_rp_disk_t nameless = d[0];
    nameless.index_path = NULL;
    vb_restore_point_t bad = full;
    bad.id = 20, bad.disks = &nameless, bad.disk_count = 1;
    cr_assert_eq(vb_catalog_restore_point_import(cat, &bad), VB_EINVAL);

    vb_restore_point_t got = {0};
    cr_assert_eq(vb_catalog_restore_point_latest(cat, "vm1", 2500, &got), 0, "%s", vb_error_msg());
    cr_assert_eq(got.id, 9);
    cr_assert_eq(got.parent_id, 7);
    cr_assert_eq(got.state, VB_RP_COMPLETE);
    cr_assert_eq(got.completed, 1005);
    cr_assert_eq(got.disk_count, 2);
    cr_assert_str_eq(got.disks[1].change_id, "52 aa/9");
    cr_assert_str_eq(got.disks[1].index_path, paths[1]);
    cr_assert_eq(got.disks[1].transport_count, 2);
    vb_restore_point_clear(&got);
    cr_assert_eq(vb_catalog_restore_point_get(cat, 12, &got), 0, "%s", vb_error_msg());
    cr_assert_eq(got.parent_id, 0, "a parent that was not imported is not linked");
    vb_restore_point_clear(&got);
    cr_assert_eq(vb_catalog_restore_point_get(cat, 20, &got), VB_ENOTFOUND);

    int64_t next = complete_rp(cat, "vm2", 4000, 0);
    cr_assert_gt(next, 12, "new restore point %lld reuses an imported id", (long long)next);
    vb_catalog_destroy(&cat);
}

/* A serve (`vbak serve`) is a job of kind serve: prune keeps the restore point it serves while it
 * runs, its lease lives in its options (renewed only while it runs), and it ends like any job. */
Test(catalog_restore, served_restore_points_cannot_be_pruned)
{
    vb_catalog_t *cat = open_cat();
    int64_t a = complete_rp(cat, "web-01", 1000, 0);
    complete_rp(cat, "web-01", 2000, 0);
    vb_job_vm_t sv = {.vm = "web-01", .restore_point_id = a};
    vb_job_t serve = {.kind = VB_JOB_SERVE, .options = "{\"lease_until\": 5000}", .started = 4000,
                      .vms = &sv, .vm_count = 1};
    int64_t job = 0;
    cr_assert_eq(vb_catalog_job_create(cat, &serve, &job), 0, "%s", vb_error_msg());
    vb_job_t got = {0};
    cr_assert_eq(vb_catalog_job_get(cat, job, &got), 0);
    cr_assert_eq(got.kind, VB_JOB_SERVE);
    cr_assert_str_eq(vb_job_kind_name(got.kind), "serve");
    vb_job_clear(&got);

    vb_rp_use_t *uses = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_restore_points_in_use(cat, &uses, &n), 0, "%s", vb_error_msg());
    cr_assert_eq(n, 1);
    cr_assert_eq(uses[0].rp_id, a);
    char why[128], want[64];
    snprintf(want, sizeof want, "serve job %lld is reading it", (long long)job);
    cr_assert_str_eq(vb_rp_use_text(&uses[0], why, sizeof why), want);
    free(uses);
    int64_t ids[] = {a};
    cr_assert_eq(vb_catalog_restore_points_delete(cat, ids, 1, false, NULL, NULL), VB_EBUSY);
    cr_assert(strstr(vb_error_msg(), "serve job"), "%s", vb_error_msg());

    cr_assert_eq(vb_catalog_job_set_options(cat, job, "{\"lease_until\": 9000}"), 0, "%s",
                 vb_error_msg());
    cr_assert_eq(vb_catalog_job_get(cat, job, &got), 0);
    cr_assert_str_eq(got.options, "{\"lease_until\": 9000}");
    vb_job_clear(&got);
    cr_assert_eq(vb_catalog_job_finish(cat, job, VB_JOB_SUCCEEDED, NULL, 6000), 0);
    cr_assert_eq(vb_catalog_job_set_options(cat, job, "{}"), VB_EINVAL, "an ended lease renewed");
    cr_assert_eq(vb_catalog_job_set_options(cat, job + 100, "{}"), VB_ENOTFOUND);
    cr_assert_eq(vb_catalog_restore_points_delete(cat, ids, 1, false, NULL, NULL), 0, "%s",
                 vb_error_msg());
    vb_catalog_destroy(&cat);
}

/* A schema 7 catalog (no serve jobs) is upgraded in place: its jobs are kept, serve jobs are
 * accepted, and job ids go on after the highest ever given (not reused after deleted rows). */
Test(catalog_restore, upgrades_a_version_7_catalog_to_serve_jobs)
{
    vb_catalog_t *cat = open_cat();
    int64_t a = complete_rp(cat, "web-01", 1000, 0), vjob = 0;
    vb_job_vm_t vv = {.vm = "web-01", .restore_point_id = a};
    vb_job_t verify = {.kind = VB_JOB_VERIFY, .started = 2000, .vms = &vv, .vm_count = 1};
    cr_assert_eq(vb_catalog_job_create(cat, &verify, &vjob), 0, "%s", vb_error_msg());
    vb_catalog_destroy(&cat);
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' \"PRAGMA foreign_keys = OFF; CREATE TABLE jobs_old ("
             "id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL CHECK (kind IN "
             "('backup','restore','verify','prune')), state TEXT NOT NULL DEFAULT 'running' "
             "CHECK (state IN ('running','succeeded','failed','cancelled')), full INTEGER NOT "
             "NULL DEFAULT 0, options TEXT, started INTEGER NOT NULL, finished INTEGER, error "
             "TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0); INSERT INTO jobs_old SELECT * "
             "FROM jobs; DROP TABLE jobs; ALTER TABLE jobs_old RENAME TO jobs; "
             "CREATE INDEX jobs_running ON jobs(started) WHERE state = 'running'; "
             "CREATE INDEX jobs_state ON jobs(state, id); "
             "UPDATE sqlite_sequence SET seq = 50 WHERE name = 'jobs'; "
             "PRAGMA user_version = 7;\"",
             s_path);
    cr_assert_eq(system(cmd), 0);
    cat = open_cat();
    vb_job_filter_t all = {0};
    vb_job_t *jobs = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_jobs_list(cat, &all, &jobs, &n), 0, "%s", vb_error_msg());
    cr_assert_eq(n, 1);
    cr_assert_eq(jobs[0].id, vjob, "the verify job was kept");
    cr_assert_eq(jobs[0].kind, VB_JOB_VERIFY);
    vb_jobs_free(&jobs, n);
    vb_job_vm_t sv = {.vm = "web-01", .restore_point_id = a};
    vb_job_t serve = {.kind = VB_JOB_SERVE, .started = 4000, .vms = &sv, .vm_count = 1};
    int64_t job = 0;
    cr_assert_eq(vb_catalog_job_create(cat, &serve, &job), 0, "%s", vb_error_msg());
    cr_assert_eq(job, 51, "job id %lld after the highest given (50)", (long long)job);
    vb_catalog_destroy(&cat);
}
