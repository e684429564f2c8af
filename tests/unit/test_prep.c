/* prep: the release a backup leaves for its VM (EndAccess, the snapshot's removal), run in
 * process against a lab site. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "lab/lab.h"
#include "lab/lab_util.h"
#include "prep.h"

static char s_dir[256];

static void setup(void)
{
    const char *base = getenv("VB_TEST_TMP");
    if (base)
        mkdir(base, 0755);
    snprintf(s_dir, sizeof s_dir, "%s/prep-XXXXXX", base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(s_dir));
    vb_lab_options_t o = {.disk_size = 1u << 20, .seed = 3};
    cr_assert_eq(vb_lab_site_create(s_dir, &o), 0, "create: %s", vb_error_msg());
}

static void teardown(void)
{
    const char *argv[] = {"rm", "-rf", s_dir, NULL};
    cr_assert_eq(vb_lab_run(argv, NULL), 0);
}

TestSuite(prep, .init = setup, .fini = teardown, .timeout = 60);

/* A VM deleted since its backup has no access to end and no snapshot to remove: the release is
 * done, not retried for ever in the background. */
Test(prep, a_release_for_a_vm_that_is_gone_is_done)
{
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    cr_assert_not_null(p, "%s", vb_error_msg());
    char vm[] = "deleted-vm", snap[] = "vbak-9";
    vb_release_request_t req = {.vm = vm, .snapshot = snap, .end_access = true};
    vb_release_result_t *res = vb_release_run(&req, p);
    cr_assert_not_null(res);
    cr_expect(res->access_ended, "EndAccess of a VM that is gone: %s", res->error);
    cr_expect(res->snapshot_removed, "snapshot of a VM that is gone: %s", res->error);
    cr_expect_null(res->error, "%s", res->error);
    vb_release_result_free(&res);
    vb_provider_destroy(&p);
}
