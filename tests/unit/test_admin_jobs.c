/* `job.show` as the control socket runs it (admin.c, in process): with wait_ms, a running job's
 * answer is deferred (VB_ADMIN_AFTER_JOB: the server answers when the job ends or the wait is
 * over, so `vbak … --wait` hears the end at once); an ended job, or no wait_ms, answers now. */
#include <criterion/criterion.h>
#include <string.h>

#include "admin.h"
#include "catalog_testutil.h"

TestSuite(admin_jobs, .init = catalog_setup, .fini = catalog_teardown);

static int s_show(vb_admin_t *admin, int64_t id, int wait_ms, json_t **out)
{
    json_t *args = NULL;
    char text[96];
    snprintf(text, sizeof text, wait_ms ? "{\"id\": %lld, \"wait_ms\": %d}" : "{\"id\": %lld}",
             (long long)id, wait_ms);
    cr_assert_eq(vb_admin_request("job.show", text, &args), 0, "%s", vb_error_msg());
    *out = NULL;
    int rc = vb_admin_handle(admin, "job.show", args, out);
    json_decref(args);
    return rc;
}

Test(admin_jobs, job_show_with_wait_ms_waits_for_a_running_job_only)
{
    vb_catalog_t *cat = open_cat();
    vb_admin_t admin = {.catalog = cat};
    vb_job_vm_t jv = {.vm = "web-01"};
    vb_job_t job = {.kind = VB_JOB_BACKUP, .started = 1000, .vms = &jv, .vm_count = 1};
    int64_t id = 0;
    cr_assert_eq(vb_catalog_job_create(cat, &job, &id), 0, "%s", vb_error_msg());
    json_t *out = NULL;
    cr_assert_eq(s_show(&admin, id, 500, &out), VB_ADMIN_AFTER_JOB, "a running job waits");
    cr_assert_null(out);
    cr_assert_eq(s_show(&admin, id, 0, &out), 0, "%s", vb_error_msg());
    cr_assert_str_eq(json_string_value(json_object_get(out, "state")), "running");
    json_decref(out);
    cr_assert_eq(vb_catalog_job_finish(cat, id, VB_JOB_SUCCEEDED, NULL, 2000), 0);
    cr_assert_eq(s_show(&admin, id, 500, &out), 0, "an ended job answers at once");
    cr_assert_str_eq(json_string_value(json_object_get(out, "state")), "succeeded");
    json_decref(out);
    cr_assert_neq(s_show(&admin, id + 1, 500, &out), VB_ADMIN_AFTER_JOB, "no such job");
    json_t *bad = NULL;
    cr_assert_neq(vb_admin_request("job.show", "{\"id\": 1, \"wait_ms\": 60001}", &bad), 0,
                  "wait_ms is bounded");
    vb_catalog_destroy(&cat);
}
