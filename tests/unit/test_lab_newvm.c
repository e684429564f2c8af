/* The lab's new VMs (vb_lab_vm_create) and orphaned disk files (vb_lab_orphans). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lab/lab.h"
#include "lab/lab_util.h"

#define DISK_SIZE (1u << 20)

static char s_dir[256];

static void setup(void)
{
    const char *base = getenv("VB_TEST_TMP");
    if (base)
        mkdir(base, 0755);
    snprintf(s_dir, sizeof s_dir, "%s/labnew-XXXXXX", base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(s_dir));
    vb_lab_options_t o = {.disk_size = DISK_SIZE, .seed = 11, .vms = 2};
    int rc = vb_lab_site_create(s_dir, &o);
    cr_assert_eq(rc, 0, "create: %s", vb_error_msg());
}

static void teardown(void)
{
    const char *argv[] = {"rm", "-rf", s_dir, NULL};
    cr_assert_eq(vb_lab_run(argv, NULL), 0);
}

TestSuite(lab_newvm, .init = setup, .fini = teardown, .timeout = 120);

static vb_inventory_t *inventory(void)
{
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    cr_assert_not_null(p, "%s", vb_error_msg());
    vb_inventory_t *inv = NULL;
    cr_assert_eq(p->ops->inventory(p, &inv), 0, "%s", vb_error_msg());
    vb_provider_destroy(&p);
    return inv;
}

static size_t orphan_count(void)
{
    vb_inv_orphans_t list;
    cr_assert_eq(vb_lab_orphans(s_dir, false, &list), 0, "%s", vb_error_msg());
    size_t n = list.count;
    vb_inv_orphans_free(&list);
    return n;
}

Test(lab_newvm, a_new_vm_has_empty_tracked_disks_of_the_given_sizes)
{
    vb_inv_new_disk_t disks[] = {{"2000", NULL, 3 << 20}, {"2001", "Data", 5 * 512}};
    int rc = vb_lab_vm_create(s_dir, "copy 1", NULL, "nfs-01", disks, 2);
    cr_assert_eq(rc, 0, "%s", vb_error_msg());
    vb_inventory_t *inv = inventory();
    const vb_inv_vm_t *vm = vb_inventory_find_vm(inv, "copy 1");
    cr_assert_not_null(vm);
    cr_expect_str_eq(vm->host, "esx-01", "the first host that mounts nfs-01");
    cr_assert_eq(vm->disk_count, 2);
    cr_expect_str_eq(vm->disks[0].name, "Hard disk 1");
    cr_expect_str_eq(vm->disks[1].name, "Data");
    for (size_t i = 0; i < 2; i++) {
        const vb_inv_disk_t *d = &vm->disks[i];
        cr_expect_str_eq(d->key, disks[i].key);
        cr_expect_str_eq(d->datastore, "nfs-01");
        cr_expect_eq(d->capacity, disks[i].capacity);
        cr_expect_not_null(d->change_id);
        cr_expect_not_null(d->nbd_uri);
        cr_expect_not_null(d->nbds_uri6);
        struct stat st;
        cr_assert_eq(stat(d->file_uri, &st), 0, "%s", d->file_uri);
        cr_expect_eq((uint64_t)st.st_size, disks[i].capacity);
        cr_expect_eq(st.st_blocks, 0, "a new disk is all hole");
        /* change tracking answers: nothing allocated, nothing changed since its first ID */
        vb_extent_list_t ext = {0};
        char *cid = NULL;
        cr_assert_eq(
            vb_lab_changed_areas(s_dir, "copy 1", d->key, NULL, 0, d->change_id, &ext, &cid), 0,
            "%s", vb_error_msg());
        cr_expect_eq(ext.count, 0);
        vb_extent_list_free(&ext);
        free(cid);
    }
    vb_inventory_free(&inv);
    cr_expect_eq(orphan_count(), 0, "the new VM's files are referenced");
}

Test(lab_newvm, refusals_leave_nothing_behind)
{
    vb_inv_new_disk_t one[] = {{NULL, NULL, DISK_SIZE}};
    cr_expect_eq(vb_lab_vm_create(s_dir, "vm-vmfs-01", NULL, "nfs-01", one, 1), VB_EEXISTS);
    cr_expect(strstr(vb_error_msg(), "exists already"), "%s", vb_error_msg());
    cr_expect_eq(vb_lab_vm_create(s_dir, "fcd-01", NULL, "nfs-01", one, 1), VB_EEXISTS);
    cr_expect_eq(vb_lab_vm_create(s_dir, "x", NULL, "nope", one, 1), VB_ENOTFOUND);
    cr_expect_eq(vb_lab_vm_create(s_dir, "x", "esx-05", "nfs-01", one, 1), VB_EPOLICY);
    cr_expect(strstr(vb_error_msg(), "esx-05 does not mount datastore nfs-01"), "%s",
              vb_error_msg());
    cr_expect_eq(vb_lab_vm_create(s_dir, "a/b", NULL, "nfs-01", one, 1), VB_EINVAL);
    cr_expect_eq(vb_lab_vm_create(s_dir, "x", NULL, "nfs-01", one, 0), VB_EINVAL);
    vb_inv_new_disk_t odd[] = {{NULL, NULL, 1000}};
    cr_expect_eq(vb_lab_vm_create(s_dir, "x", NULL, "nfs-01", odd, 1), VB_EINVAL);
    vb_inv_new_disk_t twice[] = {{"7", NULL, DISK_SIZE}, {"7", NULL, DISK_SIZE}};
    cr_expect_eq(vb_lab_vm_create(s_dir, "x", NULL, "nfs-01", twice, 2), VB_EINVAL);
    /* a leftover file with the new disk's name: refused, the leftover kept, nothing registered */
    char path[512];
    snprintf(path, sizeof path, "%s/disks/y--y_1", s_dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "old", 3), 3);
    close(fd);
    vb_inv_new_disk_t two[] = {{NULL, NULL, DISK_SIZE}, {NULL, NULL, DISK_SIZE}};
    cr_expect_eq(vb_lab_vm_create(s_dir, "y", NULL, "nfs-01", two, 2), VB_EEXISTS);
    struct stat st;
    cr_expect_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_size, 3, "the leftover was not overwritten");
    snprintf(path, sizeof path, "%s/disks/y--y", s_dir);
    cr_expect_neq(stat(path, &st), 0, "the first disk's image was removed again");
    vb_inventory_t *inv = inventory();
    cr_expect_null(vb_inventory_find_vm(inv, "x"));
    cr_expect_null(vb_inventory_find_vm(inv, "y"));
    vb_inventory_free(&inv);
    cr_expect_eq(orphan_count(), 1, "only the planted leftover");
}

Test(lab_newvm, orphans_are_unreferenced_images_only)
{
    cr_expect_eq(orphan_count(), 0, "a fresh site has no orphan");
    vb_inventory_t *inv = inventory();
    const vb_inv_vm_t *nfs = vb_inventory_find_vm(inv, "vm-nfs-01");
    cr_assert_not_null(nfs);
    cr_assert_geq(nfs->snapshot_count, 1, "the NFS VM has a pre-existing snapshot");
    char copy[512], stale[600], luks[512];
    snprintf(copy, sizeof copy, "%s/disks/vm-nfs-01--leftover", s_dir);
    snprintf(stale, sizeof stale, "%s@snapshot-77", nfs->disks[0].file_uri);
    snprintf(luks, sizeof luks, "%s/disks-luks/stray", s_dir);
    cr_assert_eq(vb_lab_copy_sparse(nfs->disks[0].file_uri, copy), 0);
    cr_assert_eq(vb_lab_copy_sparse(nfs->disks[0].file_uri, stale), 0);
    cr_assert_eq(vb_lab_copy_sparse(nfs->disks[0].file_uri, luks), 0);
    vb_inv_orphans_t list;
    cr_assert_eq(vb_lab_orphans(s_dir, false, &list), 0, "%s", vb_error_msg());
    cr_assert_eq(list.count, 3);
    /* sorted by path: disks-luks/stray, disks/vm-nfs-01--leftover, disks/...@snapshot-77 */
    cr_expect_str_eq(list.items[0].path, luks);
    cr_expect_null(list.items[0].datastore);
    cr_expect_str_eq(list.items[1].path, copy);
    cr_expect_str_eq(list.items[1].datastore, "nfs-01");
    cr_expect_eq(list.items[1].length, DISK_SIZE);
    cr_expect_gt(list.items[1].size, 0);
    cr_expect_str_eq(list.items[2].path, stale);
    for (size_t i = 0; i < list.count; i++)
        cr_expect_not(list.items[i].removed);
    vb_inv_orphans_free(&list);
    cr_assert_eq(vb_lab_orphans(s_dir, true, &list), 0, "%s", vb_error_msg());
    cr_expect_eq(list.count, 3);
    for (size_t i = 0; i < list.count; i++) {
        cr_expect(list.items[i].removed);
        cr_expect_neq(access(list.items[i].path, F_OK), 0, "%s still there", list.items[i].path);
    }
    vb_inv_orphans_free(&list);
    cr_expect_eq(orphan_count(), 0);
    /* every disk of every VM and FCD is still there */
    for (size_t i = 0; i < inv->vm_count; i++)
        for (size_t k = 0; k < inv->vms[i].disk_count; k++)
            cr_expect_eq(access(inv->vms[i].disks[k].file_uri, F_OK), 0, "%s",
                         inv->vms[i].disks[k].file_uri);
    vb_inventory_free(&inv);
}
