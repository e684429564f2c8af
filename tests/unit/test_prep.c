/* prep: the release a backup leaves for its VM (EndAccess, the snapshot's removal), run in
 * process against a lab site. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static vb_provider_t *s_lab_factory(void *ctx)
{
    return vb_lab_provider_new(ctx);
}

/* A restore's preparation runs on its own thread with its own provider: the new VM is made with
 * the disks asked for, and the inventory it returns already has it. */
Test(prep, a_restore_preparation_creates_the_new_vm_on_its_thread)
{
    vb_restore_prep_request_t *req = calloc(1, sizeof *req);
    req->new_vm = strdup("copy of vm-nfs-01");
    req->datastore = strdup("nfs-01");
    req->ndisks = 1;
    req->disks = calloc(1, sizeof *req->disks);
    req->disks[0].key = strdup("2000");
    req->disks[0].name = strdup("Hard disk 1");
    req->disks[0].capacity = 1u << 20;
    zactor_t *actor = vb_restore_prep_start(req, s_lab_factory, s_dir);
    cr_assert_not_null(actor, "%s", vb_error_msg());
    vb_restore_prep_result_t *res = vb_restore_prep_receive(actor);
    zactor_destroy(&actor);
    cr_assert_not_null(res);
    cr_assert_eq(res->rc, 0, "%s", res->error);
    const vb_inv_vm_t *vm = vb_inventory_find_vm(res->inv, "copy of vm-nfs-01");
    cr_assert_not_null(vm, "the new VM is not in the inventory the preparation returned");
    cr_assert_eq(vm->disk_count, 1);
    cr_expect_eq(vm->disks[0].capacity, 1u << 20);
    cr_expect_str_eq(vm->disks[0].datastore, "nfs-01");
    vb_restore_prep_result_free(&res);
}

/* A snapshot that cannot be deleted ends the preparation with a reason naming it and its VM. */
Test(prep, a_restore_preparation_that_fails_says_why)
{
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    cr_assert_not_null(p, "%s", vb_error_msg());
    char vm[] = "vm-nfs-01", snap[] = "no-such-snapshot";
    char *snaps[] = {snap};
    vb_restore_prep_request_t req = {.vm = vm, .snapshots = snaps, .nsnapshots = 1};
    vb_restore_prep_result_t *res = vb_restore_prep_run(&req, p);
    cr_assert_not_null(res);
    cr_expect_neq(res->rc, 0);
    cr_expect_null(res->inv);
    cr_expect(res->error && strstr(res->error, "deleting snapshot no-such-snapshot of vm-nfs-01"),
              "%s", res->error);
    vb_restore_prep_result_free(&res);
    vb_provider_destroy(&p);
}
