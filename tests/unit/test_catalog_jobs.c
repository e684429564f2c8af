/* Jobs, job VMs (snapshot bookkeeping for crash cleanup) and tasks in the catalog. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "catalog_testutil.h"

TestSuite(catalog_jobs, .init = catalog_setup, .fini = catalog_teardown);

/* A running backup job of the given VMs (the last one a First Class Disk when fcd_last). */
static int64_t backup_job(vb_catalog_t *cat, const char **vms, size_t n, bool fcd_last,
                          int64_t started)
{
    vb_job_vm_t jv[8] = {0};
    cr_assert(n <= 8);
    for (size_t i = 0; i < n; i++) {
        jv[i].vm = (char *)vms[i];
        jv[i].is_fcd = fcd_last && i == n - 1;
    }
    vb_job_t job = {.kind = VB_JOB_BACKUP, .started = started, .vms = jv, .vm_count = n};
    int64_t id = 0;
    cr_assert_eq(vb_catalog_job_create(cat, &job, &id), 0, "%s", vb_error_msg());
    cr_assert_gt(id, 0);
    return id;
}

static vb_task_t extent(const char *vm, const char *disk, uint64_t off, uint64_t len)
{
    vb_task_t t = {0};
    t.vm = (char *)vm;
    t.disk_key = (char *)disk;
    t.kind = VB_TASK_BACKUP;
    t.offset = off;
    t.length = len;
    return t;
}

Test(catalog_jobs, create_get_and_list)
{
    vb_catalog_t *cat = open_cat();
    const char *vms[] = {"web-01", "fcd-data"};
    int64_t j1 = backup_job(cat, vms, 2, true, 1000);
    vb_job_vm_t rv = {.vm = "db-01"};
    vb_job_t restore = {.kind = VB_JOB_RESTORE,
                        .started = 2000,
                        .vms = &rv,
                        .vm_count = 1,
                        .options = "{\"target\":\"new\"}"};
    int64_t j2 = 0;
    cr_assert_eq(vb_catalog_job_create(cat, &restore, &j2), 0, "%s", vb_error_msg());

    vb_job_t got;
    cr_assert_eq(vb_catalog_job_get(cat, j1, &got), 0, "%s", vb_error_msg());
    cr_assert_eq(got.kind, VB_JOB_BACKUP);
    cr_assert_eq(got.state, VB_JOB_RUNNING);
    cr_assert_eq(got.started, 1000);
    cr_assert_eq(got.finished, 0);
    cr_assert_null(got.error);
    cr_assert_eq(got.vm_count, 2);
    cr_assert_str_eq(got.vms[0].vm, "web-01");
    cr_assert_not(got.vms[0].is_fcd);
    cr_assert_str_eq(got.vms[1].vm, "fcd-data");
    cr_assert(got.vms[1].is_fcd);
    cr_assert_eq(got.vms[1].snapshot_state, VB_SNAP_NONE);
    vb_job_clear(&got);

    vb_job_t *list = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_jobs_list(cat, NULL, &list, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(list[0].id, j2, "newest first");
    cr_assert_str_eq(list[0].options, "{\"target\":\"new\"}");
    cr_assert_str_eq(vb_job_kind_name(list[0].kind), "restore");
    cr_assert_str_eq(list[0].vms[0].vm, "db-01");
    cr_assert_eq(list[1].vm_count, 2);
    vb_jobs_free(&list, n);
    cr_assert_null(list);

    cr_assert_eq(vb_catalog_job_get(cat, 999, &got), VB_ENOTFOUND);
    cr_assert(strstr(vb_error_msg(), "job 999"), "%s", vb_error_msg());
    vb_catalog_destroy(&cat);
}

Test(catalog_jobs, create_refuses_bad_input_atomically)
{
    vb_catalog_t *cat = open_cat();
    vb_job_vm_t twice[] = {{.vm = "web-01"}, {.vm = "web-01"}};
    vb_job_t job = {.kind = VB_JOB_BACKUP, .started = 1, .vms = twice, .vm_count = 2};
    int64_t id = -1;
    cr_assert_eq(vb_catalog_job_create(cat, &job, &id), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "web-01"), "%s", vb_error_msg());
    cr_assert_eq(id, -1);
    job.vm_count = 0;
    cr_assert_eq(vb_catalog_job_create(cat, &job, &id), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "at least one VM"), "%s", vb_error_msg());
    vb_job_vm_t src = {.vm = "db-01", .restore_point_id = 4242};
    vb_job_t restore = {.kind = VB_JOB_RESTORE, .started = 1, .vms = &src, .vm_count = 1};
    cr_assert_eq(vb_catalog_job_create(cat, &restore, &id), VB_ENOTFOUND);
    cr_assert(strstr(vb_error_msg(), "4242"), "%s", vb_error_msg());

    vb_job_t *list = NULL;
    size_t n = 9;
    cr_assert_eq(vb_catalog_jobs_list(cat, NULL, &list, &n), 0);
    cr_assert_eq(n, 0, "a refused job leaves no row behind");
    vb_jobs_free(&list, n);
    vb_catalog_destroy(&cat);
}

Test(catalog_jobs, snapshot_lifecycle_and_crash_cleanup_list)
{
    vb_catalog_t *cat = open_cat();
    const char *vms[] = {"web-01", "web-02", "web-03"};
    int64_t job = backup_job(cat, vms, 3, false, 10);

    cr_assert_eq(vb_catalog_snapshot_created(cat, job, "web-01", "snap-1"), VB_EINVAL,
                 "created before intent is out of order");
    cr_assert(strstr(vb_error_msg(), "none"), "%s", vb_error_msg());
    cr_assert_eq(vb_catalog_snapshot_intent(cat, job, "nope", "vbak-1"), VB_ENOTFOUND);
    cr_assert(strstr(vb_error_msg(), "nope"), "%s", vb_error_msg());

    /* web-01: taken and removed; web-02: taken; web-03: crash between intent and the call. */
    cr_assert_eq(vb_catalog_snapshot_intent(cat, job, "web-01", "vbak-1"), 0);
    cr_assert_eq(vb_catalog_snapshot_created(cat, job, "web-01", "snapshot-101"), 0);
    cr_assert_eq(vb_catalog_snapshot_removed(cat, job, "web-01"), 0);
    cr_assert_eq(vb_catalog_snapshot_removed(cat, job, "web-01"), VB_EINVAL);
    cr_assert_eq(vb_catalog_snapshot_intent(cat, job, "web-02", "vbak-1"), 0);
    cr_assert_eq(vb_catalog_snapshot_created(cat, job, "web-02", "snapshot-102"), 0);
    cr_assert_eq(vb_catalog_snapshot_intent(cat, job, "web-03", "vbak-1"), 0);
    cr_assert_eq(vb_catalog_job_vm_set_access(cat, job, "web-01", true), 0);
    vb_catalog_destroy(&cat);

    cat = open_cat(); /* the coordinator restarts */
    vb_snapshot_ref_t *refs = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_snapshots_outstanding(cat, &refs, &n), 0, "%s", vb_error_msg());
    cr_assert_eq(n, 3);
    cr_assert_str_eq(refs[0].vm, "web-01");
    cr_assert(refs[0].access_prepared);
    cr_assert_null(refs[0].snapshot_name, "web-01's snapshot is gone; only access is left");
    cr_assert_str_eq(refs[1].vm, "web-02");
    cr_assert_eq(refs[1].snapshot_state, VB_SNAP_CREATED);
    cr_assert_str_eq(refs[1].snapshot_id, "snapshot-102");
    cr_assert_str_eq(refs[1].snapshot_name, "vbak-1");
    cr_assert_eq(refs[1].job_state, VB_JOB_RUNNING);
    cr_assert_str_eq(refs[2].vm, "web-03");
    cr_assert_eq(refs[2].snapshot_state, VB_SNAP_REQUESTED);
    cr_assert_null(refs[2].snapshot_id, "no id yet: cleanup looks it up by name");
    cr_assert_str_eq(refs[2].snapshot_name, "vbak-1");
    vb_snapshot_refs_free(&refs, n);

    /* A failed job still lists its snapshots until they are removed. */
    cr_assert_eq(vb_catalog_job_finish(cat, job, VB_JOB_FAILED, "coordinator restarted", 50), 0);
    cr_assert_eq(vb_catalog_snapshots_outstanding(cat, &refs, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(refs[1].job_state, VB_JOB_FAILED);
    vb_snapshot_refs_free(&refs, n);
    cr_assert_eq(vb_catalog_snapshot_removed(cat, job, "web-02"), 0);
    cr_assert_eq(vb_catalog_snapshot_removed(cat, job, "web-03"), 0);
    cr_assert_eq(vb_catalog_job_vm_set_access(cat, job, "web-01", false), 0);
    cr_assert_eq(vb_catalog_snapshots_outstanding(cat, &refs, &n), 0);
    cr_assert_eq(n, 0);
    vb_snapshot_refs_free(&refs, n);
    vb_catalog_destroy(&cat);
}

Test(catalog_jobs, task_lifecycle_with_agent_transport_and_reason)
{
    vb_catalog_t *cat = open_cat();
    const char *vms[] = {"web-01"};
    int64_t job = backup_job(cat, vms, 1, false, 10);
    vb_task_t add[3] = {extent("web-01", "2000", 0, 1 << 20),
                        extent("web-01", "2000", 1 << 20, 1 << 20),
                        extent("web-01", "2001", 0, 4 << 20)};
    add[0].kind = VB_TASK_MAP;
    add[2].payload = "{\"chunk\":1048576}";
    int64_t ids[3] = {0};
    cr_assert_eq(vb_catalog_tasks_add(cat, job, add, 3, ids), 0, "%s", vb_error_msg());
    cr_assert(ids[0] > 0 && ids[1] == ids[0] + 1 && ids[2] == ids[1] + 1);

    cr_assert_eq(
        vb_catalog_task_claim(cat, ids[0], "agent-a", "hotadd", "proxy on the VM's datastore", 100),
        0, "%s", vb_error_msg());
    cr_assert_eq(vb_catalog_task_claim(cat, ids[0], "agent-b", "nbd", "x", 101), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "running") && strstr(vb_error_msg(), "agent-a"), "%s",
              vb_error_msg());
    cr_assert_eq(vb_catalog_task_set_transport(cat, ids[0], "nbdssl",
                                               "hotadd: open failed (disk locked); fell back"),
                 0);
    cr_assert_eq(vb_catalog_task_complete(cat, ids[0], 12345, 150), 0);
    cr_assert_eq(vb_catalog_task_complete(cat, ids[0], 12345, 151), VB_EINVAL,
                 "a duplicate result is refused");
    cr_assert(strstr(vb_error_msg(), "done"), "%s", vb_error_msg());

    vb_task_t t;
    cr_assert_eq(vb_catalog_task_get(cat, ids[0], &t), 0);
    cr_assert_eq(t.kind, VB_TASK_MAP);
    cr_assert_eq(t.state, VB_TASK_DONE);
    cr_assert_str_eq(t.vm, "web-01");
    cr_assert_str_eq(t.disk_key, "2000");
    cr_assert_str_eq(t.agent, "agent-a");
    cr_assert_str_eq(t.transport, "nbdssl");
    cr_assert_str_eq(t.transport_reason, "hotadd: open failed (disk locked); fell back");
    cr_assert_eq(t.attempts, 1);
    cr_assert_eq(t.bytes, 12345);
    cr_assert_eq(t.started, 100);
    cr_assert_eq(t.finished, 150);
    vb_task_clear(&t);
    cr_assert_eq(vb_catalog_task_get(cat, ids[2], &t), 0);
    cr_assert_str_eq(t.payload, "{\"chunk\":1048576}");
    cr_assert_eq(t.offset, 0);
    cr_assert_eq(t.length, 4 << 20);
    cr_assert_null(t.agent);
    vb_task_clear(&t);

    vb_task_counts_t c;
    cr_assert_eq(vb_catalog_job_task_counts(cat, job, &c), 0);
    cr_assert_eq(c.total, 3);
    cr_assert_eq(c.done, 1);
    cr_assert_eq(c.queued, 2);
    cr_assert_eq(c.bytes_total, 6u << 20);
    cr_assert_eq(c.bytes_done, 1u << 20);
    cr_assert_eq(vb_catalog_task_get(cat, 777, &t), VB_ENOTFOUND);
    vb_catalog_destroy(&cat);
}

Test(catalog_jobs, failing_task_is_retried_then_fails)
{
    vb_catalog_t *cat = open_cat();
    const char *vms[] = {"web-01"};
    int64_t job = backup_job(cat, vms, 1, false, 10);
    vb_task_t add = extent("web-01", "2000", 0, 65536);
    int64_t id;
    cr_assert_eq(vb_catalog_tasks_add(cat, job, &add, 1, &id), 0);
    vb_task_state_t st;
    cr_assert_eq(vb_catalog_task_fail(cat, id, "not running", 2, 20, &st), VB_EINVAL);
    cr_assert_eq(vb_catalog_task_claim(cat, id, "agent-a", "nbd", "only mode", 21), 0);
    cr_assert_eq(vb_catalog_task_fail(cat, id, "read error at 0", 2, 22, &st), 0);
    cr_assert_eq(st, VB_TASK_QUEUED, "first failure: retried");
    cr_assert_eq(vb_catalog_task_claim(cat, id, "agent-b", "nbd", "only mode", 23), 0);
    cr_assert_eq(vb_catalog_task_fail(cat, id, "read error at 65536", 2, 24, &st), 0);
    cr_assert_eq(st, VB_TASK_FAILED, "second failure with max 2: failed");
    vb_task_t t;
    cr_assert_eq(vb_catalog_task_get(cat, id, &t), 0);
    cr_assert_eq(t.state, VB_TASK_FAILED);
    cr_assert_eq(t.attempts, 2);
    cr_assert_eq(t.failures, 2);
    cr_assert_str_eq(t.error, "read error at 65536");
    cr_assert_str_eq(t.agent, "agent-b");
    cr_assert_eq(t.finished, 24);
    vb_task_clear(&t);
    vb_catalog_destroy(&cat);
}

Test(catalog_jobs, lost_agent_tasks_go_back_to_the_queue)
{
    vb_catalog_t *cat = open_cat();
    const char *vms[] = {"web-01", "web-02"};
    int64_t job = backup_job(cat, vms, 2, false, 10);
    vb_task_t add[5];
    for (int i = 0; i < 5; i++)
        add[i] = extent(i < 3 ? "web-01" : "web-02", "2000", (uint64_t)i << 20, 1 << 20);
    int64_t ids[5];
    cr_assert_eq(vb_catalog_tasks_add(cat, job, add, 5, ids), 0);
    cr_assert_eq(vb_catalog_task_claim(cat, ids[0], "agent-a", "san", "sees the LUN", 1), 0);
    cr_assert_eq(vb_catalog_task_claim(cat, ids[1], "agent-a", "san", "sees the LUN", 1), 0);
    cr_assert_eq(vb_catalog_task_claim(cat, ids[3], "agent-a", "san", "sees the LUN", 1), 0);
    cr_assert_eq(vb_catalog_task_claim(cat, ids[2], "agent-b", "nbdssl", "no LUN", 1), 0);
    cr_assert_eq(vb_catalog_task_complete(cat, ids[3], 1, 2), 0);

    vb_task_filter_t f = {.agent = "agent-a"};
    vb_task_t *list = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_tasks_list(cat, &f, &list, &n), 0);
    cr_assert_eq(n, 2, "agent-a runs tasks 0 and 1 (3 is done)");
    vb_tasks_free(&list, n);

    size_t moved = 0;
    cr_assert_eq(vb_catalog_tasks_requeue_agent(cat, "agent-a", "agent agent-a lost", &moved), 0);
    cr_assert_eq(moved, 2);
    vb_task_filter_t queued = {.job_id = job, .state = VB_TASK_QUEUED};
    cr_assert_eq(vb_catalog_tasks_list(cat, &queued, &list, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(list[0].id, ids[0]);
    cr_assert_str_eq(list[0].error, "agent agent-a lost");
    cr_assert_eq(list[0].failures, 0, "a lost agent is not the task's failure");
    cr_assert_eq(list[1].id, ids[1]);
    cr_assert_eq(list[2].id, ids[4]);
    vb_tasks_free(&list, n);

    vb_task_t t;
    cr_assert_eq(vb_catalog_task_get(cat, ids[2], &t), 0);
    cr_assert_eq(t.state, VB_TASK_RUNNING, "agent-b's task is untouched");
    vb_task_clear(&t);
    cr_assert_eq(vb_catalog_task_get(cat, ids[3], &t), 0);
    cr_assert_eq(t.state, VB_TASK_DONE, "a finished task stays done");
    vb_task_clear(&t);

    /* They run elsewhere; the second claim counts a second attempt. */
    cr_assert_eq(vb_catalog_task_claim(cat, ids[0], "agent-b", "nbdssl", "no LUN", 5), 0);
    cr_assert_eq(vb_catalog_task_get(cat, ids[0], &t), 0);
    cr_assert_eq(t.attempts, 2);
    cr_assert_str_eq(t.agent, "agent-b");
    vb_task_clear(&t);
    cr_assert_eq(vb_catalog_task_requeue(cat, ids[0], "agent handed it back"), 0);
    cr_assert_eq(vb_catalog_task_requeue(cat, ids[0], "again"), VB_EINVAL);

    vb_task_filter_t all = {.job_id = job, .any_state = true, .limit = 2};
    cr_assert_eq(vb_catalog_tasks_list(cat, &all, &list, &n), 0);
    cr_assert_eq(n, 2, "limit applies");
    vb_tasks_free(&list, n);
    vb_catalog_destroy(&cat);
}

Test(catalog_jobs, tasks_add_is_all_or_nothing)
{
    vb_catalog_t *cat = open_cat();
    const char *vms[] = {"web-01"};
    int64_t job = backup_job(cat, vms, 1, false, 10);
    vb_task_t add[3] = {extent("web-01", "2000", 0, 1), extent("web-01", "2000", 1, 1),
                        extent("web-09", "2000", 2, 1)};
    cr_assert_eq(vb_catalog_tasks_add(cat, job, add, 3, NULL), VB_ENOTFOUND);
    cr_assert(strstr(vb_error_msg(), "web-09"), "%s", vb_error_msg());
    cr_assert_eq(vb_catalog_tasks_add(cat, 555, add, 1, NULL), VB_ENOTFOUND);
    vb_task_counts_t c;
    cr_assert_eq(vb_catalog_job_task_counts(cat, job, &c), 0);
    cr_assert_eq(c.total, 0);

    /* Also inside the caller's transaction: the failed batch rolls back, the rest commits. */
    cr_assert_eq(vb_catalog_begin(cat), 0);
    cr_assert_eq(vb_catalog_tasks_add(cat, job, add, 2, NULL), 0);
    cr_assert_eq(vb_catalog_tasks_add(cat, job, add, 3, NULL), VB_ENOTFOUND);
    cr_assert_eq(vb_catalog_commit(cat), 0);
    cr_assert_eq(vb_catalog_job_task_counts(cat, job, &c), 0);
    cr_assert_eq(c.total, 2);
    vb_catalog_destroy(&cat);
}

Test(catalog_jobs, finish_cancels_open_tasks_and_closes_the_job)
{
    vb_catalog_t *cat = open_cat();
    const char *vms[] = {"web-01", "web-02"};
    int64_t job = backup_job(cat, vms, 2, false, 500);
    const char *later[] = {"web-03"};
    int64_t job2 = backup_job(cat, later, 1, false, 900);
    int64_t oldest = -1;
    cr_assert_eq(vb_catalog_oldest_running_job(cat, &oldest), 0);
    cr_assert_eq(oldest, 500);

    vb_task_t add[3] = {extent("web-01", "2000", 0, 1), extent("web-01", "2000", 1, 1),
                        extent("web-02", "2000", 0, 1)};
    int64_t ids[3];
    cr_assert_eq(vb_catalog_tasks_add(cat, job, add, 3, ids), 0);
    cr_assert_eq(vb_catalog_task_claim(cat, ids[0], "agent-a", "nbd", "r", 1), 0);
    cr_assert_eq(vb_catalog_task_complete(cat, ids[0], 1, 2), 0);
    cr_assert_eq(vb_catalog_task_claim(cat, ids[1], "agent-a", "nbd", "r", 1), 0);
    cr_assert_eq(
        vb_catalog_job_vm_set_mode(cat, job, "web-01", VB_RP_FULL, "change tracking was reset"), 0);
    cr_assert_eq(vb_catalog_job_vm_finish(cat, job, "web-01", VB_JOB_SUCCEEDED, NULL), 0);
    cr_assert_eq(vb_catalog_job_vm_finish(cat, job, "web-01", VB_JOB_RUNNING, NULL), VB_EINVAL);

    cr_assert_eq(vb_catalog_job_request_cancel(cat, job), 0);
    cr_assert_eq(vb_catalog_job_finish(cat, job, VB_JOB_RUNNING, NULL, 3), VB_EINVAL);
    cr_assert_eq(vb_catalog_job_finish(cat, job, VB_JOB_CANCELLED, "cancelled by the user", 600),
                 0);
    cr_assert_eq(vb_catalog_job_finish(cat, job, VB_JOB_FAILED, "x", 601), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "cancelled"), "%s", vb_error_msg());
    cr_assert_eq(vb_catalog_job_request_cancel(cat, job), VB_EINVAL);
    cr_assert_eq(vb_catalog_tasks_add(cat, job, add, 1, NULL), VB_EINVAL,
                 "no new tasks for a finished job");

    vb_job_t got;
    cr_assert_eq(vb_catalog_job_get(cat, job, &got), 0);
    cr_assert_eq(got.state, VB_JOB_CANCELLED);
    cr_assert(got.cancel_requested);
    cr_assert_eq(got.finished, 600);
    cr_assert_str_eq(got.error, "cancelled by the user");
    cr_assert_eq(got.vms[0].state, VB_JOB_SUCCEEDED, "a VM that finished keeps its state");
    cr_assert(got.vms[0].has_mode);
    cr_assert_eq(got.vms[0].mode, VB_RP_FULL);
    cr_assert_str_eq(got.vms[0].mode_reason, "change tracking was reset");
    cr_assert_eq(got.vms[1].state, VB_JOB_CANCELLED);
    cr_assert_str_eq(got.vms[1].error, "cancelled by the user");
    vb_job_clear(&got);

    vb_task_counts_t c;
    cr_assert_eq(vb_catalog_job_task_counts(cat, job, &c), 0);
    cr_assert_eq(c.done, 1);
    cr_assert_eq(c.cancelled, 2, "the running and the queued task are cancelled");
    cr_assert_eq(c.running + c.queued, 0);

    cr_assert_eq(vb_catalog_oldest_running_job(cat, &oldest), 0);
    cr_assert_eq(oldest, 900);
    cr_assert_eq(vb_catalog_job_finish(cat, job2, VB_JOB_SUCCEEDED, NULL, 950), 0);
    cr_assert_eq(vb_catalog_oldest_running_job(cat, &oldest), 0);
    cr_assert_eq(oldest, 0, "no job running");

    vb_job_filter_t f = {.state = VB_JOB_SUCCEEDED};
    vb_job_t *list = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_jobs_list(cat, &f, &list, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(list[0].id, job2);
    vb_jobs_free(&list, n);
    vb_catalog_destroy(&cat);
}

Test(catalog_jobs, batched_task_updates_and_reopen)
{
    vb_catalog_t *cat = open_cat();
    const char *vms[] = {"big-vm"};
    int64_t job = backup_job(cat, vms, 1, false, 10);
    enum { N = 2000 };
    vb_task_t *add = calloc(N, sizeof *add);
    int64_t *ids = calloc(N, sizeof *ids);
    for (size_t i = 0; i < N; i++)
        add[i] = extent("big-vm", "2000", (uint64_t)i << 20, 1 << 20);
    cr_assert_eq(vb_catalog_tasks_add(cat, job, add, N, ids), 0);
    cr_assert_eq(vb_catalog_begin(cat), 0);
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(
            vb_catalog_task_claim(cat, ids[i], i % 2 ? "agent-a" : "agent-b", "nbd", "r", 1), 0);
        if (i % 4 != 0)
            cr_assert_eq(vb_catalog_task_complete(cat, ids[i], 1 << 20, 2), 0);
    }
    cr_assert_eq(vb_catalog_commit(cat), 0);
    vb_catalog_destroy(&cat);

    cat = open_cat();
    vb_task_counts_t c;
    cr_assert_eq(vb_catalog_job_task_counts(cat, job, &c), 0);
    cr_assert_eq(c.total, N);
    cr_assert_eq(c.done, N * 3 / 4);
    cr_assert_eq(c.running, N / 4);
    vb_job_t got;
    cr_assert_eq(vb_catalog_job_get(cat, job, &got), 0);
    cr_assert_eq(got.state, VB_JOB_RUNNING);
    vb_job_clear(&got);
    free(add);
    free(ids);
    vb_catalog_destroy(&cat);
}

/* A child writes a large uncommitted transaction (big enough that SQLite spills pages to the WAL
 * before the commit) and is killed with SIGKILL. The parent reopens: the committed job is there,
 * nothing of the half-written one is, and the database passes its integrity check. */
Test(catalog_jobs, survives_sigkill_in_a_write_transaction)
{
    vb_catalog_t *cat = open_cat();
    const char *vms[] = {"committed-vm"};
    int64_t kept = backup_job(cat, vms, 1, false, 10);
    vb_catalog_destroy(&cat);

    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(pipefd[0]);
        vb_catalog_t *c = vb_catalog_open(s_path);
        if (!c || vb_catalog_begin(c) != 0)
            _exit(2);
        const char *half[] = {"half-vm"};
        vb_job_vm_t jv = {.vm = (char *)half[0]};
        vb_job_t job = {.kind = VB_JOB_BACKUP, .started = 20, .vms = &jv, .vm_count = 1};
        int64_t id;
        if (vb_catalog_job_create(c, &job, &id) != 0)
            _exit(3);
        static char payload[512];
        memset(payload, 'p', sizeof payload - 1);
        vb_task_t t = extent("half-vm", "2000", 0, 1);
        t.payload = payload;
        for (int i = 0; i < 20000; i++) {
            t.offset = (uint64_t)i;
            if (vb_catalog_tasks_add(c, id, &t, 1, NULL) != 0)
                _exit(4);
        }
        if (write(pipefd[1], "w", 1) != 1)
            _exit(5);
        for (;;)
            pause(); /* killed here, mid-transaction */
    }
    close(pipefd[1]);
    char b = 0;
    cr_assert_eq(read(pipefd[0], &b, 1), 1, "the child wrote its transaction");
    close(pipefd[0]);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    char cmd[256];
    snprintf(cmd, sizeof cmd, "test \"$(sqlite3 '%s' 'PRAGMA integrity_check')\" = ok", s_path);
    cr_assert_eq(system(cmd), 0, "integrity check after SIGKILL");
    cat = open_cat();
    vb_job_t *list = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_jobs_list(cat, NULL, &list, &n), 0);
    cr_assert_eq(n, 1, "the half-written job is absent");
    cr_assert_eq(list[0].id, kept);
    cr_assert_str_eq(list[0].vms[0].vm, "committed-vm");
    vb_jobs_free(&list, n);
    vb_task_counts_t c;
    cr_assert_eq(vb_catalog_job_task_counts(cat, kept + 1, &c), 0);
    cr_assert_eq(c.total, 0, "none of its tasks either");
    /* and the catalog takes writes again */
    int64_t next = backup_job(cat, vms, 1, false, 30);
    cr_assert_gt(next, kept);
    vb_catalog_destroy(&cat);
}

/* A catalog written by the previous schema (agents only) is upgraded in place, agents kept. */
Test(catalog_jobs, upgrades_a_version_1_catalog)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' \"CREATE TABLE agents (id INTEGER PRIMARY KEY, name TEXT NOT NULL "
             "UNIQUE, public_key TEXT NOT NULL UNIQUE, host TEXT NOT NULL DEFAULT '', datastore "
             "TEXT NOT NULL DEFAULT '', luns TEXT NOT NULL DEFAULT '[]', os TEXT NOT NULL "
             "DEFAULT '', slots INTEGER NOT NULL DEFAULT 1, transports TEXT NOT NULL DEFAULT "
             "'[]', version TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT 'online' CHECK "
             "(state IN ('online','lost')), enrolled_at INTEGER NOT NULL, last_seen INTEGER NOT "
             "NULL); INSERT INTO agents (name, public_key, enrolled_at, last_seen) VALUES "
             "('agent-old', 'OLDKEY', 1, 2); PRAGMA user_version = 1;\"",
             s_path);
    cr_assert_eq(system(cmd), 0);
    vb_catalog_t *cat = open_cat();
    vb_agent_record_t a;
    cr_assert_eq(vb_catalog_agent_by_key(cat, "OLDKEY", &a), 0, "%s", vb_error_msg());
    cr_assert_str_eq(a.name, "agent-old");
    vb_agent_record_clear(&a);
    const char *vms[] = {"web-01"};
    int64_t job = backup_job(cat, vms, 1, false, 10);
    cr_assert_gt(job, 0);
    vb_catalog_destroy(&cat);
    snprintf(cmd, sizeof cmd, "test \"$(sqlite3 '%s' 'PRAGMA user_version')\" = %d", s_path,
             vb_catalog_schema_version());
    cr_assert_eq(system(cmd), 0);
    cr_assert_geq(vb_catalog_schema_version(), 2);
}

/* The names are the catalog's stored values and what JSON shows; scripts depend on them. */
Test(catalog_jobs, state_names_are_stable)
{
    cr_assert_str_eq(vb_job_kind_name(VB_JOB_BACKUP), "backup");
    cr_assert_str_eq(vb_job_kind_name(VB_JOB_RESTORE), "restore");
    cr_assert_str_eq(vb_job_state_name(VB_JOB_RUNNING), "running");
    cr_assert_str_eq(vb_job_state_name(VB_JOB_SUCCEEDED), "succeeded");
    cr_assert_str_eq(vb_job_state_name(VB_JOB_FAILED), "failed");
    cr_assert_str_eq(vb_job_state_name(VB_JOB_CANCELLED), "cancelled");
    cr_assert_str_eq(vb_task_kind_name(VB_TASK_MAP), "map");
    cr_assert_str_eq(vb_task_state_name(VB_TASK_QUEUED), "queued");
    cr_assert_str_eq(vb_task_state_name(VB_TASK_DONE), "done");
    cr_assert_str_eq(vb_snap_state_name(VB_SNAP_REQUESTED), "requested");
    cr_assert_str_eq(vb_rp_kind_name(VB_RP_FULL), "full");
    cr_assert_str_eq(vb_rp_kind_name(VB_RP_INCREMENTAL), "incremental");
    cr_assert_str_eq(vb_rp_state_name(VB_RP_COMPLETE), "complete");
    cr_assert_str_eq(vb_verify_state_name(VB_VERIFY_NONE), "unverified");
    cr_assert_str_eq(vb_job_state_name((vb_job_state_t)42), "?");
}

Test(catalog_jobs, read_progress_notes_and_pending_snapshot_removal)
{
    vb_catalog_t *cat = open_cat();
    const char *vms[] = {"web-01"};
    int64_t job = backup_job(cat, vms, 1, false, 10);
    /* a map task spans the whole disk but reads nothing; read tasks count their read bytes */
    vb_task_t add[3] = {extent("web-01", "2000", 0, 64 << 20),
                        extent("web-01", "2000", 0, 16 << 20),
                        extent("web-01", "2000", 16 << 20, 16 << 20)};
    add[0].kind = VB_TASK_MAP;
    add[1].read_bytes = 3 << 20;
    add[2].read_bytes = 1 << 20;
    int64_t ids[3] = {0};
    cr_assert_eq(vb_catalog_tasks_add(cat, job, add, 3, ids), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_catalog_task_claim(cat, ids[0], "a", "nbd", "r", 11), 0);
    cr_assert_eq(vb_catalog_task_complete(cat, ids[0], 0, 12), 0);
    cr_assert_eq(vb_catalog_task_claim(cat, ids[1], "a", "nbd", "r", 13), 0);
    cr_assert_eq(vb_catalog_task_complete(cat, ids[1], 3 << 20, 14), 0);
    vb_task_counts_t c;
    cr_assert_eq(vb_catalog_job_task_counts(cat, job, &c), 0);
    cr_assert_eq(c.map_total, 1);
    cr_assert_eq(c.map_done, 1);
    cr_assert_eq(c.done, 2);
    cr_assert_eq(c.read_bytes_total, 4u << 20, "map tasks are not data");
    cr_assert_eq(c.read_bytes_done, 3u << 20);
    vb_task_t t;
    cr_assert_eq(vb_catalog_task_get(cat, ids[2], &t), 0);
    cr_assert_eq(t.read_bytes, 1u << 20);
    vb_task_clear(&t);

    cr_assert_eq(vb_catalog_job_vm_add_note(cat, job, "web-01", "first"), 0);
    cr_assert_eq(vb_catalog_job_vm_add_note(cat, job, "web-01", "second"), 0);
    cr_assert_eq(vb_catalog_job_vm_add_note(cat, job, "web-01", "two\nlines"), VB_EINVAL);
    cr_assert_eq(vb_catalog_snapshot_intent(cat, job, "web-01", "vbak-1"), 0);
    cr_assert_eq(vb_catalog_snapshot_created(cat, job, "web-01", "snapshot-3"), 0);
    cr_assert_eq(vb_catalog_snapshot_remove_failed(cat, job, "web-01", "the site is locked"), 0);
    vb_job_t j;
    cr_assert_eq(vb_catalog_job_get(cat, job, &j), 0);
    cr_assert_str_eq(j.vms[0].notes, "first\nsecond");
    cr_assert_str_eq(j.vms[0].snapshot_error, "the site is locked");
    vb_job_clear(&j);
    cr_assert_eq(vb_catalog_snapshot_removed(cat, job, "web-01"), 0);
    cr_assert_eq(vb_catalog_job_get(cat, job, &j), 0);
    cr_assert_null(j.vms[0].snapshot_error, "a removed snapshot has no pending error");
    cr_assert_eq(j.vms[0].snapshot_state, VB_SNAP_REMOVED);
    vb_job_clear(&j);
    cr_assert_eq(vb_catalog_snapshot_remove_failed(cat, job, "web-01", "late"), VB_EINVAL);
    vb_catalog_destroy(&cat);
}

/* Schema 6: a job VM's time per phase, kept as the job engine wrote it. */
Test(catalog_jobs, a_job_vm_keeps_its_timing)
{
    vb_catalog_t *cat = open_cat();
    const char *vms[] = {"web-01"};
    int64_t job = backup_job(cat, vms, 1, false, 10);
    vb_job_t j;
    cr_assert_eq(vb_catalog_job_get(cat, job, &j), 0);
    cr_assert_null(j.vms[0].timing, "no timing before the engine writes it");
    vb_job_clear(&j);
    const char *timing = "[{\"phase\":\"snapshot\",\"start_ms\":11,\"ms\":2}]";
    cr_assert_eq(vb_catalog_job_vm_set_timing(cat, job, "web-01", timing), 0, "%s",
                 vb_error_msg());
    cr_assert_eq(vb_catalog_job_vm_set_timing(cat, job, "db-01", timing), VB_ENOTFOUND);
    cr_assert_eq(vb_catalog_job_get(cat, job, &j), 0);
    cr_assert_str_eq(j.vms[0].timing, timing);
    vb_job_clear(&j);
    cr_assert_geq(vb_catalog_schema_version(), 6);
    vb_catalog_destroy(&cat);
}

static int64_t s_ended[4];
static size_t s_nended;
static void s_on_end(void *arg, int64_t job_id)
{
    (*(int *)arg)++;
    if (s_nended < 4)
        s_ended[s_nended++] = job_id;
}

/* The job-end callback (what `job.show` with wait_ms waits on) hears each recorded end once,
 * with the job's id, and nothing for a finish that was refused. */
Test(catalog_jobs, the_job_end_callback_hears_each_recorded_end)
{
    vb_catalog_t *cat = open_cat();
    int calls = 0;
    vb_catalog_on_job_end(cat, s_on_end, &calls);
    const char *vms[] = {"web-01"};
    int64_t a = backup_job(cat, vms, 1, false, 1000), b = backup_job(cat, vms, 1, false, 2000);
    cr_assert_neq(vb_catalog_job_finish(cat, a, VB_JOB_RUNNING, NULL, 3000), 0);
    cr_assert_eq(calls, 0, "a refused finish is not an end");
    cr_assert_eq(vb_catalog_job_finish(cat, b, VB_JOB_SUCCEEDED, NULL, 3000), 0);
    cr_assert_eq(vb_catalog_job_finish(cat, a, VB_JOB_FAILED, "x", 3100), 0);
    cr_assert_eq(calls, 2);
    cr_assert_eq(s_ended[0], b);
    cr_assert_eq(s_ended[1], a);
    vb_catalog_on_job_end(cat, NULL, NULL);
    vb_catalog_destroy(&cat);
}
