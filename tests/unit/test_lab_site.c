/* The lab site: its shape, allocation maps, change tracking, snapshots and Storage vMotion. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lab/lab.h"
#include "lab/lab_util.h"

#define DISK_SIZE (2u << 20)

static char s_dir[256];

static void setup(void)
{
    const char *base = getenv("VB_TEST_TMP");
    if (base)
        mkdir(base, 0755);
    snprintf(s_dir, sizeof s_dir, "%s/lab-XXXXXX", base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(s_dir));
    vb_lab_options_t o = {.disk_size = DISK_SIZE, .seed = 7};
    int rc = vb_lab_site_create(s_dir, &o);
    cr_assert_eq(rc, 0, "create: %s", vb_error_msg());
}

static void teardown(void)
{
    const char *argv[] = {"rm", "-rf", s_dir, NULL};
    cr_assert_eq(vb_lab_run(argv, NULL), 0);
}

TestSuite(lab_site, .init = setup, .fini = teardown, .timeout = 120);

static vb_inventory_t *inventory(void)
{
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    cr_assert_not_null(p, "%s", vb_error_msg());
    vb_inventory_t *inv = NULL;
    cr_assert_eq(p->ops->inventory(p, &inv), 0, "%s", vb_error_msg());
    vb_provider_destroy(&p);
    cr_assert_null(p);
    return inv;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len ? *len : 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

Test(lab_site, default_site_has_every_feature)
{
    vb_inventory_t *inv = inventory();
    const char *types[] = {"VMFS", "NFS", "vsan", "VVOL"};
    for (size_t t = 0; t < 4; t++) {
        bool vm_on_type = false;
        for (size_t i = 0; i < inv->vm_count; i++) {
            const vb_inv_vm_t *vm = &inv->vms[i];
            if (vm->is_fcd)
                continue;
            const vb_inv_datastore_t *ds = vb_inventory_find_datastore(inv, vm->disks[0].datastore);
            cr_assert_not_null(ds);
            vm_on_type |= strcmp(ds->type, types[t]) == 0;
        }
        cr_expect(vm_on_type, "no VM on a %s datastore", types[t]);
    }
    const vb_inv_datastore_t *san = vb_inventory_find_datastore(inv, "san-vmfs-01");
    cr_assert_not_null(san);
    cr_expect_not_null(san->lun);
    cr_expect_geq(san->host_count, 1);

    const vb_inv_vm_t *clone = vb_inventory_find_vm(inv, "vm-vvol-clone-01");
    cr_assert_not_null(clone);
    cr_expect(clone->linked_clone);
    cr_expect_str_eq(vb_inventory_find_datastore(inv, clone->disks[0].datastore)->type, "VVOL");
    cr_expect_not_null(clone->disks[0].parent);

    const vb_inv_vm_t *nfs = vb_inventory_find_vm(inv, "vm-nfs-01");
    cr_assert_not_null(nfs);
    cr_expect_eq(nfs->snapshot_count, 1);

    bool fcd = false, enc = false, special = false, requires = false;
    for (size_t i = 0; i < inv->vm_count; i++) {
        const vb_inv_vm_t *vm = &inv->vms[i];
        fcd |= vm->is_fcd && vm->disk_count == 1;
        cr_expect(vm->disk_count >= 1 && vm->disk_count <= 3, "%s has %zu disks", vm->name,
                  vm->disk_count);
        for (size_t d = 0; d < vm->disk_count; d++) {
            const vb_inv_disk_t *k = &vm->disks[d];
            if (k->encrypted) {
                enc = true;
                cr_expect_null(k->nbd_uri, "an encrypted disk is not served over plain NBD");
                cr_expect_not_null(k->nbds_uri);
                cr_expect_not_null(k->nbds_uri6);
            }
            if (strchr(k->path, ' ') && strchr(k->path, '#') && strchr(k->path, '%') &&
                strchr(k->path, '&') && strstr(k->path, "\xc3\xa9")) {
                special = true;
                cr_expect(strstr(k->nbd_uri, "%20%23") || strstr(k->nbd_uri, "%23"));
                cr_expect_eq(access(k->file_uri, R_OK), 0, "%s", k->file_uri);
            }
            cr_expect_not_null(k->change_id);
            cr_expect_gt(k->capacity, 0);
            /* the lab's routes: what it serves, by each mode's own name, for both operations */
            const char *want[VB_TRANSPORT_COUNT] = {k->file_uri, k->file_uri, k->nbds_uri,
                                                    k->nbd_uri};
            for (int op = VB_OP_BACKUP; op <= VB_OP_RESTORE; op++) {
                for (int m = 0; m < VB_TRANSPORT_COUNT; m++) {
                    const vb_route_t *r = &k->routes[op][m];
                    if (!want[m]) {
                        cr_expect_null(r->uri, "%s disk %s mode %d", vm->name, k->key, m);
                        continue;
                    }
                    cr_expect_str_eq(r->uri, want[m]);
                    cr_expect_str_eq(r->mode, vb_transport_name((vb_transport_t)m));
                }
            }
        }
    }
    cr_expect_str_eq(inv->provider, "lab");
    for (size_t h = 0; h < inv->host_count; h++)
    requires |= inv->hosts[h].require_encryption;
    cr_expect(fcd, "no First Class Disk");
    cr_expect(enc, "no encrypted disk");
    cr_expect(special, "no disk with special characters in its name");
    cr_expect(requires, "no host that requires encryption");

    cr_assert_eq(inv->proxy_count, 4);
    cr_expect_eq(inv->proxies[0].lun_count, 1, "proxy 1 sees the SAN LUN");
    cr_expect_str_eq(inv->proxies[0].luns[0], san->lun);
    cr_expect_str_eq(vb_inventory_find_datastore(inv, inv->proxies[1].datastore)->type, "VMFS");
    cr_expect_str_eq(vb_inventory_find_datastore(inv, inv->proxies[2].datastore)->type, "vsan");
    /* The NBD-only proxy's host reaches no VM datastore. */
    const char *nbd_host = inv->proxies[3].host;
    for (size_t i = 0; i < inv->vm_count; i++) {
        const vb_inv_datastore_t *ds =
            vb_inventory_find_datastore(inv, inv->vms[i].disks[0].datastore);
        for (size_t h = 0; h < ds->host_count; h++)
            cr_expect_str_neq(ds->hosts[h], nbd_host);
    }
    vb_inventory_free(&inv);
    cr_expect_null(inv);
}

Test(lab_site, create_refuses_an_existing_site_and_counts_are_honoured)
{
    cr_expect_eq(vb_lab_site_create(s_dir, NULL), VB_EEXISTS);
    char other[300];
    snprintf(other, sizeof other, "%s/second", s_dir);
    cr_assert_eq(mkdir(other, 0755), 0);
    vb_lab_options_t o = {.proxies = 6, .vms = 8, .disk_size = 1u << 20};
    cr_assert_eq(vb_lab_site_create(other, &o), 0, "%s", vb_error_msg());
    vb_provider_t *p = vb_lab_provider_new(other);
    vb_inventory_t *inv = NULL;
    cr_assert_eq(p->ops->inventory(p, &inv), 0);
    size_t vms = 0;
    for (size_t i = 0; i < inv->vm_count; i++)
        vms += !inv->vms[i].is_fcd;
    cr_expect_eq(vms, 8);
    cr_expect_eq(inv->proxy_count, 6);
    cr_expect_str_eq(inv->proxies[4].luns[0], inv->proxies[0].luns[0], "roles cycle");
    vb_inventory_free(&inv);
    vb_provider_destroy(&p);
}

Test(lab_site, allocated_map_matches_image_holes)
{
    vb_inventory_t *inv = inventory();
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    for (size_t i = 0; i < inv->vm_count; i++) {
        const vb_inv_vm_t *vm = &inv->vms[i];
        for (size_t d = 0; d < vm->disk_count; d++) {
            vb_extent_list_t ext = {0};
            char *cid = NULL;
            cr_assert_eq(
                p->ops->changed_areas(p, vm->name, vm->disks[d].key, NULL, 0, "*", &ext, &cid), 0,
                "%s", vb_error_msg());
            cr_expect_str_eq(cid, vm->disks[d].change_id);
            /* Every byte outside the extents reads zero, every extent is not all zero. */
            size_t len;
            unsigned char *img = slurp(vm->disks[d].file_uri, &len);
            cr_assert_eq(len, vm->disks[d].capacity);
            cr_assert_gt(ext.count, 0);
            uint64_t pos = 0, allocated = 0;
            for (size_t e = 0; e <= ext.count; e++) {
                uint64_t end = e < ext.count ? ext.items[e].offset : len;
                for (uint64_t b = pos; b < end; b++)
                    cr_assert_eq(img[b], 0, "%s disk %s: byte %llu in a hole is not zero", vm->name,
                                 vm->disks[d].key, (unsigned long long)b);
                if (e < ext.count) {
                    cr_assert_gt(ext.items[e].offset + ext.items[e].length, pos);
                    pos = ext.items[e].offset + ext.items[e].length;
                    allocated += ext.items[e].length;
                }
            }
            cr_expect_lt(allocated, len, "%s has holes", vm->name);
            free(img);
            free(cid);
            vb_extent_list_free(&ext);
        }
    }
    vb_provider_destroy(&p);
    vb_inventory_free(&inv);
}

/* Block-by-block comparison of two images: the 64 KiB blocks whose bytes differ. */
static void diff_blocks(const char *a, const char *b, vb_extent_list_t *out)
{
    size_t la, lb;
    unsigned char *x = slurp(a, &la), *y = slurp(b, &lb);
    cr_assert_eq(la, lb);
    for (size_t off = 0; off < la; off += 65536) {
        size_t n = la - off < 65536 ? la - off : 65536;
        if (memcmp(x + off, y + off, n) != 0)
            cr_assert_eq(vb_extent_list_add(out, off, n), 0);
    }
    free(x);
    free(y);
}

static void copy(const char *src, const char *dst)
{
    cr_assert_eq(vb_lab_copy_sparse(src, dst), 0);
}

Test(lab_site, changed_areas_are_exactly_the_written_blocks)
{
    vb_inventory_t *inv = inventory();
    const vb_inv_vm_t *vm = vb_inventory_find_vm(inv, "vm-vmfs-01");
    cr_assert_not_null(vm);
    char before[2][512];
    for (size_t d = 0; d < vm->disk_count; d++) {
        snprintf(before[d], sizeof before[d], "%s/before-%zu", s_dir, d);
        copy(vm->disks[d].file_uri, before[d]);
    }
    vb_lab_changes_t ch = {0};
    cr_assert_eq(vb_lab_mutate(s_dir, "vm-vmfs-01", 20, 99, &ch), 0, "%s", vb_error_msg());
    cr_assert_eq(ch.count, vm->disk_count);
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    for (size_t d = 0; d < vm->disk_count; d++) {
        vb_extent_list_t diff = {0}, areas = {0}, alloc_before = {0};
        diff_blocks(before[d], vm->disks[d].file_uri, &diff);
        char *cid = NULL;
        cr_assert_eq(p->ops->changed_areas(p, vm->name, vm->disks[d].key, NULL, 0,
                                           vm->disks[d].change_id, &areas, &cid),
                     0, "%s", vb_error_msg());
        cr_expect_str_neq(cid, vm->disks[d].change_id, "the change ID advanced");
        cr_assert_eq(areas.count, diff.count, "disk %s", vm->disks[d].key);
        cr_assert_eq(areas.count, ch.disks[d].written.count);
        for (size_t e = 0; e < diff.count; e++) {
            cr_expect_eq(areas.items[e].offset, diff.items[e].offset);
            cr_expect_eq(areas.items[e].length, diff.items[e].length);
            cr_expect_eq(ch.disks[d].written.items[e].offset, diff.items[e].offset);
        }
        /* Some writes landed in holes. */
        cr_assert_eq(vb_lab_file_extents(before[d], 0, vm->disks[d].capacity, &alloc_before), 0);
        bool in_hole = false;
        for (size_t e = 0; e < areas.count; e++) {
            bool inside = false;
            for (size_t a = 0; a < alloc_before.count; a++)
                inside |= areas.items[e].offset >= alloc_before.items[a].offset &&
                          areas.items[e].offset <
                              alloc_before.items[a].offset + alloc_before.items[a].length;
            in_hole |= !inside;
        }
        cr_expect(in_hole, "disk %s: no write landed in a hole", vm->disks[d].key);
        /* From a start offset: only areas at or after it. */
        vb_extent_list_t tail = {0};
        uint64_t start = areas.items[areas.count - 1].offset;
        cr_assert_eq(p->ops->changed_areas(p, vm->name, vm->disks[d].key, NULL, start,
                                           vm->disks[d].change_id, &tail, NULL),
                     0);
        cr_expect_eq(tail.count, 1);
        cr_expect_eq(tail.items[0].offset, start);
        /* Since the new change ID: nothing changed. */
        vb_extent_list_t none = {0};
        cr_assert_eq(
            p->ops->changed_areas(p, vm->name, vm->disks[d].key, NULL, 0, cid, &none, NULL), 0);
        cr_expect_eq(none.count, 0);
        free(cid);
        vb_extent_list_free(&diff);
        vb_extent_list_free(&areas);
        vb_extent_list_free(&alloc_before);
        vb_extent_list_free(&tail);
    }
    vb_lab_changes_free(&ch);
    vb_provider_destroy(&p);
    vb_inventory_free(&inv);
}

Test(lab_site, unknown_or_reset_change_id_is_not_found)
{
    vb_inventory_t *inv = inventory();
    const vb_inv_vm_t *vm = vb_inventory_find_vm(inv, "vm-vsan-01");
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    vb_extent_list_t ext = {0};
    const char *key = vm->disks[0].key;
    cr_expect_eq(p->ops->changed_areas(p, vm->name, key, NULL, 0, "bogus", &ext, NULL),
                 VB_ENOTFOUND);
    cr_expect_eq(p->ops->changed_areas(p, vm->name, key, NULL, 0, "52 aa/1", &ext, NULL),
                 VB_ENOTFOUND);
    cr_assert_eq(vb_lab_mutate(s_dir, vm->name, 5, 0, NULL), 0);
    cr_assert_eq(
        p->ops->changed_areas(p, vm->name, key, NULL, 0, vm->disks[0].change_id, &ext, NULL), 0);
    cr_expect_gt(ext.count, 0);
    vb_extent_list_free(&ext);
    cr_assert_eq(vb_lab_cbt_reset(s_dir, vm->name), 0, "%s", vb_error_msg());
    cr_expect_eq(
        p->ops->changed_areas(p, vm->name, key, NULL, 0, vm->disks[0].change_id, &ext, NULL),
        VB_ENOTFOUND);
    cr_expect(strstr(vb_error_msg(), "reset"), "message: %s", vb_error_msg());
    cr_expect_eq(p->ops->changed_areas(p, "no-such-vm", key, NULL, 0, "*", &ext, NULL),
                 VB_ENOTFOUND);
    cr_expect_eq(vb_lab_mutate(s_dir, "no-such-vm", 5, 0, NULL), VB_ENOTFOUND);
    vb_extent_list_free(&ext);
    vb_provider_destroy(&p);
    vb_inventory_free(&inv);
}

Test(lab_site, snapshot_freezes_content_while_the_disk_changes)
{
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    vb_inventory_t *inv = inventory();
    const vb_inv_vm_t *vm = vb_inventory_find_vm(inv, "vm-vmfs-01");
    char frozen[512], snapfile[600];
    snprintf(frozen, sizeof frozen, "%s/frozen", s_dir);
    copy(vm->disks[0].file_uri, frozen);
    char *id = NULL;
    cr_assert_eq(p->ops->snapshot_create(p, vm->name, "vbak-1", &id), 0, "%s", vb_error_msg());
    cr_expect_eq(p->ops->snapshot_create(p, vm->name, "vbak-1", NULL), VB_EEXISTS);
    cr_assert_eq(vb_lab_mutate(s_dir, vm->name, 30, 0, NULL), 0);
    snprintf(snapfile, sizeof snapfile, "%s@%s", vm->disks[0].file_uri, id);
    vb_extent_list_t d1 = {0}, d2 = {0}, at_snap = {0}, live = {0};
    diff_blocks(frozen, snapfile, &d1);
    cr_expect_eq(d1.count, 0, "the snapshot image kept its content");
    /* the live file is a delta over the snapshot's: the disk's content is the chain's */
    char live_copy[512];
    snprintf(live_copy, sizeof live_copy, "%s/live", s_dir);
    cr_assert_eq(vb_lab_disk_copy(s_dir, vm->name, vm->disks[0].key, NULL, live_copy), 0, "%s",
                 vb_error_msg());
    diff_blocks(frozen, live_copy, &d2);
    cr_expect_gt(d2.count, 0, "the live disk changed");
    /* Changed areas as seen at the snapshot: none since the pre-snapshot ID; live: the mutation. */
    char *snap_cid = NULL;
    cr_assert_eq(p->ops->changed_areas(p, vm->name, vm->disks[0].key, id, 0, vm->disks[0].change_id,
                                       &at_snap, &snap_cid),
                 0);
    cr_expect_eq(at_snap.count, 0);
    cr_expect_str_eq(snap_cid, vm->disks[0].change_id);
    cr_assert_eq(
        p->ops->changed_areas(p, vm->name, vm->disks[0].key, NULL, 0, snap_cid, &live, NULL), 0);
    cr_expect_eq(live.count, d2.count);
    vb_inventory_t *inv2 = NULL;
    cr_assert_eq(p->ops->inventory(p, &inv2), 0);
    cr_expect_eq(vb_inventory_find_vm(inv2, vm->name)->snapshot_count, 1);
    cr_assert_eq(p->ops->snapshot_remove(p, vm->name, id), 0, "%s", vb_error_msg());
    cr_expect_neq(access(snapfile, F_OK), 0, "the snapshot image is gone");
    cr_expect_eq(p->ops->snapshot_remove(p, vm->name, id), VB_ENOTFOUND);
    free(id);
    free(snap_cid);
    vb_extent_list_free(&d1);
    vb_extent_list_free(&d2);
    vb_extent_list_free(&at_snap);
    vb_extent_list_free(&live);
    vb_inventory_free(&inv2);
    vb_inventory_free(&inv);
    vb_provider_destroy(&p);
}

/* A coordinator killed while the lab copied a snapshot's images leaves a half-written image
 * that no snapshot of site.json names (the snapshot was never saved). The next snapshot
 * operation on the site, here the restarted coordinator's removal of the job's snapshot by
 * name, which finds no such snapshot, cleans it up. */
Test(lab_site, a_snapshot_interrupted_mid_copy_leaves_nothing_behind)
{
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    vb_inventory_t *inv = inventory();
    const vb_inv_vm_t *vm = vb_inventory_find_vm(inv, "vm-vmfs-01");
    char half[600], tmp[600];
    /* the copy a killed snapshot create left: under its final name (a copy made before images
     * were copied to a temporary name) and under a temporary one */
    snprintf(half, sizeof half, "%s@snapshot-99", vm->disks[0].file_uri);
    snprintf(tmp, sizeof tmp, "%s@snapshot-98.tmp.999999", vm->disks[0].file_uri);
    for (int i = 0; i < 2; i++) {
        int fd = open(i ? tmp : half, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "half", 4), 4);
        close(fd);
    }
    vb_inv_orphans_t before = {0}, after = {0};
    cr_assert_eq(vb_lab_orphans(s_dir, false, &before), 0, "%s", vb_error_msg());
    cr_expect_eq(before.count, 1, "the half copy is an orphan until cleaned");
    cr_expect_eq(p->ops->snapshot_remove(p, vm->name, "vbak-5"), VB_ENOTFOUND);
    cr_expect_neq(access(half, F_OK), 0, "the half-copied snapshot image is removed");
    cr_expect_neq(access(tmp, F_OK), 0, "the temporary copy is removed");
    cr_assert_eq(vb_lab_orphans(s_dir, false, &after), 0, "%s", vb_error_msg());
    cr_expect_eq(after.count, 0);
    /* the live image and a real snapshot's image are untouched by the sweep */
    char *id = NULL;
    cr_assert_eq(p->ops->snapshot_create(p, vm->name, "kept", &id), 0, "%s", vb_error_msg());
    char snapfile[600];
    snprintf(snapfile, sizeof snapfile, "%s@%s", vm->disks[0].file_uri, id);
    cr_assert_eq(p->ops->snapshot_remove(p, vm->name, "no-such"), VB_ENOTFOUND);
    cr_expect_eq(access(snapfile, F_OK), 0, "a real snapshot's image stays");
    cr_expect_eq(access(vm->disks[0].file_uri, F_OK), 0);
    free(id);
    vb_inv_orphans_free(&before);
    vb_inv_orphans_free(&after);
    vb_inventory_free(&inv);
    vb_provider_destroy(&p);
}

Test(lab_site, svmotion_moves_disks_where_the_host_reaches)
{
    cr_expect_eq(vb_lab_svmotion(s_dir, "vm-vmfs-01", "vsanDatastore", false), VB_EPOLICY);
    cr_expect_eq(vb_lab_svmotion(s_dir, "vm-vmfs-01", "nope", false), VB_ENOTFOUND);
    cr_assert_eq(vb_lab_prepare_for_access(s_dir, "vm-vmfs-01", "vbak job 7"), 0);
    cr_expect_eq(vb_lab_svmotion(s_dir, "vm-vmfs-01", "nfs-01", false), VB_EBUSY);
    cr_expect(strstr(vb_error_msg(), "vbak job 7"), "%s", vb_error_msg());
    cr_assert_eq(vb_lab_end_access(s_dir, "vm-vmfs-01"), 0);
    cr_assert_eq(vb_lab_end_access(s_dir, "vm-vmfs-01"), 0, "ending twice is fine");
    cr_assert_eq(vb_lab_svmotion(s_dir, "vm-vmfs-01", "nfs-01", false), 0, "%s", vb_error_msg());
    vb_inventory_t *inv = inventory();
    const vb_inv_vm_t *vm = vb_inventory_find_vm(inv, "vm-vmfs-01");
    for (size_t d = 0; d < vm->disk_count; d++) {
        cr_expect_str_eq(vm->disks[d].datastore, "nfs-01");
        cr_expect_eq(strncmp(vm->disks[d].path, "[nfs-01] vm-vmfs-01/", 20), 0, "%s",
                     vm->disks[d].path);
    }
    vb_inventory_free(&inv);
    /* Forced while held: moves anyway (what a running backup must notice). */
    cr_assert_eq(vb_lab_prepare_for_access(s_dir, "vm-vmfs-01", "vbak job 8"), 0);
    cr_assert_eq(vb_lab_svmotion(s_dir, "vm-vmfs-01", "san-vmfs-01", true), 0);
    inv = inventory();
    cr_expect_str_eq(vb_inventory_find_vm(inv, "vm-vmfs-01")->disks[0].datastore, "san-vmfs-01");
    vb_inventory_free(&inv);
}

Test(lab_site, a_bad_site_file_is_refused_with_the_field_named)
{
    char path[300];
    snprintf(path, sizeof path, "%s/site.json", s_dir);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    cr_assert_not_null(root);
    json_t *d = json_array_get(
        json_object_get(json_array_get(json_object_get(root, "vms"), 1), "disks"), 0);
    json_object_set_new(d, "capacity", json_string("big"));
    cr_assert_eq(json_dump_file(root, path, 0), 0);
    json_decref(root);
    cr_expect_null(vb_lab_provider_new(s_dir));
    cr_expect(strstr(vb_error_msg(), "vms[1].disks[0]") && strstr(vb_error_msg(), "capacity"), "%s",
              vb_error_msg());
}

Test(lab_site, edits_to_the_site_file_are_seen)
{
    char path[300];
    snprintf(path, sizeof path, "%s/site.json", s_dir);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    cr_assert_not_null(root);
    json_object_set_new(root, "require_encryption", json_true());
    json_object_set_new(json_array_get(json_object_get(root, "hosts"), 0), "require_encryption",
                        json_true());
    json_object_set_new(json_object_get(root, "network"), "nbd_port", json_integer(4321));
    cr_assert_eq(json_dump_file(root, path, JSON_INDENT(2)), 0);
    json_decref(root);
    vb_inventory_t *inv = inventory();
    cr_expect(inv->require_encryption);
    cr_expect(vb_inventory_find_host(inv, "esx-01")->require_encryption);
    cr_expect_str_eq(inv->vms[0].disks[0].nbd_uri, "nbd://127.0.0.1:4321/vm-vmfs-01--vm-vmfs-01");
    vb_inventory_free(&inv);
}

/* A host with an address of its own: its VMs' disks are served there (and only its), the server
 * certificate names the address, and a bad address is refused at create and in site.json. */
Test(lab_site, a_host_address_routes_its_disks_and_is_validated)
{
    char other[300], path[700];
    snprintf(other, sizeof other, "%s/hosts", s_dir);
    cr_assert_eq(mkdir(other, 0755), 0);
    const char *addrs[] = {"esx-01=10.213.0.21", NULL};
    vb_lab_options_t o = {.vms = 2, .proxies = 1, .disk_size = 1u << 20, .host_addresses = addrs};
    cr_assert_eq(vb_lab_site_create(other, &o), 0, "%s", vb_error_msg());
    vb_provider_t *p = vb_lab_provider_new(other);
    cr_assert_not_null(p, "%s", vb_error_msg());
    vb_inventory_t *inv = NULL;
    cr_assert_eq(p->ops->inventory(p, &inv), 0, "%s", vb_error_msg());
    cr_expect_str_eq(inv->vms[0].host, "esx-01");
    cr_expect(strncmp(inv->vms[0].disks[0].nbd_uri, "nbd://10.213.0.21:", 18) == 0, "%s",
              inv->vms[0].disks[0].nbd_uri);
    cr_expect(strncmp(inv->vms[0].disks[0].nbds_uri, "nbds://10.213.0.21:", 19) == 0, "%s",
              inv->vms[0].disks[0].nbds_uri);
    cr_expect_str_neq(inv->vms[1].host, "esx-01");
    cr_expect(strncmp(inv->vms[1].disks[0].nbd_uri, "nbd://127.0.0.1:", 16) == 0, "%s",
              inv->vms[1].disks[0].nbd_uri);
    vb_inventory_free(&inv);
    vb_provider_destroy(&p);
    snprintf(path, sizeof path,
             "openssl x509 -in %s/tls/server/server-cert.pem -noout -ext subjectAltName | "
             "grep -q 'IP Address:10.213.0.21'",
             other);
    cr_expect_eq(system(path), 0, "the server certificate does not name 10.213.0.21");

    /* a host that does not exist, an address that is not IPv4 */
    const char *unknown[] = {"esx-99=10.213.0.21", NULL}, *bad[] = {"esx-01=10.213.0", NULL};
    snprintf(path, sizeof path, "%s/bad", s_dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    o.host_addresses = unknown;
    cr_expect_eq(vb_lab_site_create(path, &o), VB_ENOTFOUND);
    cr_expect(strstr(vb_error_msg(), "no host esx-99"), "%s", vb_error_msg());
    o.host_addresses = bad;
    cr_expect_eq(vb_lab_site_create(path, &o), VB_EINVAL);
    cr_expect(strstr(vb_error_msg(), "esx-01=10.213.0"), "%s", vb_error_msg());

    /* edited into site.json */
    snprintf(path, sizeof path, "%s/site.json", other);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    cr_assert_not_null(root);
    json_object_set_new(json_array_get(json_object_get(root, "hosts"), 0), "ipv4",
                        json_string("esx-01.example"));
    cr_assert_eq(json_dump_file(root, path, 0), 0);
    json_decref(root);
    cr_expect_null(vb_lab_provider_new(other));
    cr_expect(strstr(vb_error_msg(), "hosts[0]") && strstr(vb_error_msg(), "ipv4"), "%s",
              vb_error_msg());
}

/* The guest VM's disk holds an MBR partition table and an ext4 file system with the known tree;
 * writing a file through the lab changes only the blocks change tracking reports. */
static char *guest_cat(const char *img, const char *path, const char *out)
{
    char spec[600], cmd[1200];
    snprintf(spec, sizeof spec, "%s?offset=%u", img, (unsigned)VB_LAB_GUEST_FS_OFFSET);
    snprintf(cmd, sizeof cmd, "dump \"%s\" \"%s\"", path, out);
    unlink(out);
    const char *argv[] = {"debugfs", "-R", cmd, spec, NULL};
    cr_assert_eq(vb_lab_run(argv, NULL), 0, "%s", vb_error_msg());
    size_t len;
    unsigned char *b = slurp(out, &len);
    char *s = calloc(1, len + 1);
    memcpy(s, b, len);
    free(b);
    return s;
}

Test(lab_site, guest_vm_has_an_ext4_tree_and_file_writes_are_tracked)
{
    vb_inventory_t *inv = inventory();
    const vb_inv_vm_t *vm = vb_inventory_find_vm(inv, "vm-guest-01");
    cr_assert_not_null(vm, "the default site has a guest VM");
    cr_assert_eq(vm->disk_count, 2);
    const char *img = vm->disks[0].file_uri;
    cr_expect_eq(vm->disks[0].capacity, VB_LAB_GUEST_DISK_SIZE);
    size_t len;
    unsigned char *raw = slurp(img, &len);
    cr_expect(raw[510] == 0x55 && raw[511] == 0xaa, "MBR signature");
    cr_expect_eq(raw[446 + 4], 0x83, "a Linux partition");
    cr_expect_eq(raw[1024 * 1024 + 1024 + 56] | raw[1024 * 1024 + 1024 + 57] << 8, 0xef53,
                 "ext4 superblock at the partition");
    free(raw);
    char out[400], before[400];
    snprintf(out, sizeof out, "%s/guest-out", s_dir);
    char *name = guest_cat(img, "/home/alice/caf\xc3\xa9 \xc3\xbc/r\xc3\xa9sum\xc3\xa9.txt", out);
    cr_expect_str_eq(name, "Gr\xc3\xbc\xc3\x9f" "e aus dem Caf\xc3\xa9\n");
    free(name);
    /* the second disk: GPT, an NTFS boot sector at the partition */
    raw = slurp(vm->disks[1].file_uri, &len);
    cr_expect(memcmp(raw + 512, "EFI PART", 8) == 0, "GPT header");
    cr_expect(memcmp(raw + VB_LAB_GUEST_FS_OFFSET + 3, "NTFS    ", 8) == 0, "NTFS boot sector");
    free(raw);

    snprintf(before, sizeof before, "%s/guest-before", s_dir);
    copy(img, before);
    vb_lab_changes_t ch = {0};
    cr_assert_eq(vb_lab_guest_write(s_dir, "vm-guest-01", "/etc/motd", "changed\n", 8, &ch), 0,
                 "%s", vb_error_msg());
    char *motd = guest_cat(img, "/etc/motd", out);
    cr_expect_str_eq(motd, "changed\n");
    free(motd);
    vb_extent_list_t diff = {0}, areas = {0};
    diff_blocks(before, img, &diff);
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    char *cid = NULL;
    cr_assert_eq(p->ops->changed_areas(p, vm->name, "2000", NULL, 0, vm->disks[0].change_id,
                                       &areas, &cid),
                 0, "%s", vb_error_msg());
    cr_assert_gt(diff.count, 0);
    cr_assert_eq(areas.count, diff.count);
    cr_assert_eq(ch.count, 1);
    for (size_t e = 0; e < diff.count; e++)
        cr_expect_eq(areas.items[e].offset, diff.items[e].offset);

    cr_expect_eq(vb_lab_guest_write(s_dir, "vm-guest-01", "/no/such/dir/x", "x", 1, NULL), VB_EIO);
    cr_expect_eq(vb_lab_guest_write(s_dir, "vm-vmfs-01", "/etc/motd", "x", 1, NULL), VB_EINVAL);
    free(cid);
    vb_extent_list_free(&diff);
    vb_extent_list_free(&areas);
    vb_lab_changes_free(&ch);
    vb_provider_destroy(&p);
    vb_inventory_free(&inv);
}

/* The blocks of `uri` that differ from the copy `before`, against what change tracking reports
 * since `since` (no snapshot: the disk as it is now): they must be the same. */
static void expect_tracked(vb_provider_t *p, const char *vm, const char *key, const char *since,
                           const char *before, const char *uri, size_t want_blocks)
{
    vb_extent_list_t diff = {0}, areas = {0};
    diff_blocks(before, uri, &diff);
    cr_assert_eq(p->ops->changed_areas(p, vm, key, NULL, 0, since, &areas, NULL), 0, "%s",
                 vb_error_msg());
    uint64_t diff_bytes = 0;
    for (size_t e = 0; e < diff.count; e++)
        diff_bytes += diff.items[e].length;
    cr_expect_eq(diff_bytes, want_blocks * 65536, "%s disk %s: %llu bytes changed", vm, key,
                 (unsigned long long)diff_bytes);
    cr_assert_eq(areas.count, diff.count, "%s disk %s: %zu areas tracked, %zu changed", vm, key,
                 areas.count, diff.count);
    for (size_t e = 0; e < diff.count; e++) {
        cr_expect_eq(areas.items[e].offset, diff.items[e].offset);
        cr_expect_eq(areas.items[e].length, diff.items[e].length);
    }
    vb_extent_list_free(&diff);
    vb_extent_list_free(&areas);
}

/* A write that fails half-way (a full disk) must not leave blocks it did write untracked: the
 * next incremental would miss them and its restore point would differ from the disk. Before the
 * fix, the changed areas after a failed mutate were empty. And a guest write removes the work
 * copy of the disk an earlier, killed one left in log/. */
Test(lab_site, blocks_written_before_a_failure_are_tracked)
{
    vb_inventory_t *inv = inventory();
    const vb_inv_vm_t *vm = vb_inventory_find_vm(inv, "vm-vmfs-01");
    const vb_inv_vm_t *guest = vb_inventory_find_vm(inv, "vm-guest-01");
    cr_assert(vm && guest);
    char before[512], gbefore[512];
    snprintf(before, sizeof before, "%s/before", s_dir);
    snprintf(gbefore, sizeof gbefore, "%s/guest-before", s_dir);
    copy(vm->disks[0].file_uri, before);
    copy(guest->disks[0].file_uri, gbefore);
    setenv("VBAK_TEST_LAB_WRITES_BEFORE_FAULT", "3", 1);
    cr_expect_neq(vb_lab_mutate(s_dir, vm->name, 20, 5, NULL), 0, "the fourth write fails");
    cr_expect(strstr(vb_error_msg(), "No space left on device"), "%s", vb_error_msg());
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    expect_tracked(p, vm->name, vm->disks[0].key, vm->disks[0].change_id, before,
                   vm->disks[0].file_uri, 3);
    /* a guest file write through the snapshot chain: the same (the knob's 3 writes are spent,
     * so allow one more) */
    char stale[600];
    snprintf(stale, sizeof stale, "%s/log/.guest-killed", s_dir);
    cr_assert_eq(mkdir(stale, 0700), 0);
    snprintf(stale, sizeof stale, "%s/log/.guest-killed/disk.raw", s_dir);
    copy(before, stale);
    setenv("VBAK_TEST_LAB_WRITES_BEFORE_FAULT", "4", 1);
    static const char text[] = "a file longer than one block? no: one block is enough\n";
    cr_expect_neq(vb_lab_guest_write(s_dir, guest->name, "/etc/motd", text, sizeof text - 1, NULL),
                  0, "the guest write fails after one block");
    unsetenv("VBAK_TEST_LAB_WRITES_BEFORE_FAULT");
    cr_expect_neq(access(stale, F_OK), 0, "the work copy a killed guest write left is removed");
    expect_tracked(p, guest->name, guest->disks[0].key, guest->disks[0].change_id, gbefore,
                   guest->disks[0].file_uri, 1);
    vb_provider_destroy(&p);
    vb_inventory_free(&inv);
}
