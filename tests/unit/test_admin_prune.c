/* vbak prune in-process (admin_prune.c without a loop): the repository is opened and checked
 * before the catalog forgets any restore point, then retention and the collection run. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "catalog_testutil.h"
#include "repo/repo.h"

TestSuite(admin_prune, .init = catalog_setup, .fini = catalog_teardown);

/* A complete restore point of `vm` with one disk, written by its own (succeeded) job. */
static int64_t s_rp(vb_catalog_t *cat, const char *vm, int64_t created)
{
    vb_job_vm_t jv = {.vm = (char *)vm};
    vb_job_t job = {.kind = VB_JOB_BACKUP, .started = created, .vms = &jv, .vm_count = 1};
    int64_t job_id = 0, id = 0;
    cr_assert_eq(vb_catalog_job_create(cat, &job, &job_id), 0, "%s", vb_error_msg());
    vb_rp_disk_t disk = {.key = "2000", .name = "Hard disk 1", .capacity = 1 << 20};
    vb_restore_point_t rp = {.vm = (char *)vm,
                             .job_id = job_id,
                             .created = created,
                             .kind = VB_RP_FULL,
                             .disks = &disk,
                             .disk_count = 1};
    cr_assert_eq(vb_catalog_restore_point_create(cat, &rp, &id), 0, "%s", vb_error_msg());
    char path[64];
    snprintf(path, sizeof path, "rp%lld-2000", (long long)id);
    disk.index_path = path;
    disk.change_id = "52 aa/7";
    cr_assert_eq(vb_catalog_restore_point_commit(cat, id, &disk, 1, created + 5), 0, "%s",
                 vb_error_msg());
    cr_assert_eq(vb_catalog_job_finish(cat, job_id, VB_JOB_SUCCEEDED, NULL, created + 6), 0);
    return id;
}

static size_t s_count(vb_catalog_t *cat)
{
    vb_restore_point_t *list = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_restore_points_list(cat, NULL, &list, &n), 0, "%s", vb_error_msg());
    vb_restore_points_free(&list, n);
    return n;
}

/* Runs `vbak prune --keep-last 1` in-process; the job it made ends before the call returns. */
static void s_prune(vb_admin_t *admin, vb_job_t *job)
{
    json_t *args = json_pack("{s:i}", "keep_last", 1), *result = NULL;
    cr_assert_eq(vb_admin_prune(admin, args, &result), 0, "%s", vb_error_msg());
    int64_t id = json_integer_value(json_object_get(result, "job"));
    cr_assert_gt(id, 0, "the answer names the prune job");
    cr_assert_null(admin->prune, "no loop: nothing is left running");
    cr_assert_eq(vb_catalog_job_get(admin->catalog, id, job), 0, "%s", vb_error_msg());
    cr_assert_eq(job->kind, VB_JOB_PRUNE);
    json_decref(args);
    json_decref(result);
}

/* A repository that cannot be opened (or, on S3, whose chunk index is hidden) fails the prune
 * with that message before the catalog forgets anything (before, the catalog forgot the restore
 * points first and only the collection found the repository unusable). */
Test(admin_prune, a_repository_that_cannot_be_opened_fails_the_prune_and_keeps_the_catalog)
{
    vb_catalog_t *cat = open_cat();
    for (int i = 0; i < 3; i++)
        s_rp(cat, "web-01", 1000 * (i + 1));
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no-repo", s_dir);
    vb_admin_t admin = {.catalog = cat, .repository = missing};
    vb_job_t job = {0};
    s_prune(&admin, &job);
    cr_assert_eq(job.state, VB_JOB_FAILED);
    cr_assert(job.error && strstr(job.error, "no-repo"), "the error names the repository: %s",
              job.error ? job.error : "(none)");
    cr_assert_eq(s_count(cat), 3, "the refused prune removed no restore point");
    vb_job_clear(&job);
    vb_catalog_destroy(&cat);
}

/* With a repository it may write, the same prune removes what retention does not keep and
 * records what it decided as its result. */
Test(admin_prune, a_writable_repository_is_pruned_in_two_steps)
{
    vb_catalog_t *cat = open_cat();
    int64_t ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = s_rp(cat, "web-01", 1000 * (i + 1));
    char repo[160];
    snprintf(repo, sizeof repo, "%s/repo", s_dir);
    cr_assert_eq(vb_repo_init(repo, &(vb_repo_params_t){.format = 2}), 0, "%s", vb_error_msg());
    vb_admin_t admin = {.catalog = cat, .repository = repo};
    vb_job_t job = {0};
    s_prune(&admin, &job);
    cr_assert_eq(job.state, VB_JOB_SUCCEEDED, "%s", job.error ? job.error : "");
    cr_assert_eq(s_count(cat), 1, "keep-last 1 keeps the newest");
    vb_restore_point_t kept = {0};
    cr_assert_eq(vb_catalog_restore_point_get(cat, ids[2], &kept), 0, "%s", vb_error_msg());
    vb_restore_point_clear(&kept);
    json_t *o = json_loads(job.options, 0, NULL);
    json_t *res = json_object_get(o, "result");
    cr_assert_eq(json_integer_value(json_object_get(res, "removed")), 2, "%s", job.options);
    cr_assert_eq(json_array_size(json_object_get(res, "restore_points")), 3, "%s", job.options);
    cr_assert(json_is_object(json_object_get(res, "gc")), "%s", job.options);
    json_decref(o);
    vb_job_clear(&job);
    vb_catalog_destroy(&cat);
}
