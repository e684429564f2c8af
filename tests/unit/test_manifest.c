/* Restore point manifests in a store: written, read back field for field, listed by id, removed;
 * a newer version and a damaged manifest are refused with a message naming them. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "repo/manifest.h"
#include "repo_testutil.h"

static char *s_modes[] = {"san", "nbdssl"};

static void s_fill(vb_manifest_t *m, vb_rp_disk_t *d, int64_t id, int64_t parent)
{
    memset(m, 0, sizeof *m);
    memset(d, 0, sizeof *d);
    d->key = "2000";
    d->name = "Hard disk 1";
    d->datastore = "san-vmfs-01";
    d->capacity = 8ull << 30;
    d->change_id = parent ? "52 de/4" : NULL;
    d->index_path = "rp7-2000";
    d->logical_bytes = 3ull << 30;
    d->new_bytes = 1u << 20;
    d->chunk_count = 8192;
    d->transports = s_modes;
    d->transport_count = 2;
    m->rp = (vb_restore_point_t){.id = id,
                                 .vm = "db 01",
                                 .job_id = 3,
                                 .created = 1700000000123,
                                 .completed = 1700000000456,
                                 .kind = parent ? VB_RP_INCREMENTAL : VB_RP_FULL,
                                 .parent_id = parent,
                                 .disks = d,
                                 .disk_count = 1};
    m->vm_id = "vm-101";
    m->provider = "lab";
    m->chunk_size = 1u << 20;
}

Test(manifest, written_read_listed_and_removed)
{
    char *dir = tu_tmpdir();
    vb_store_t *store = vb_store_open(dir, true);
    cr_assert_not_null(store, "%s", vb_error_msg());
    vb_manifest_t m;
    vb_rp_disk_t d;
    s_fill(&m, &d, 12, 7);
    cr_assert_eq(vb_manifest_write(store, &m), 0, "%s", vb_error_msg());
    s_fill(&m, &d, 7, 0);
    cr_assert_eq(vb_manifest_write(store, &m), 0, "%s", vb_error_msg());

    vb_manifest_t got;
    cr_assert_eq(vb_manifest_read(store, 12, &got), 0, "%s", vb_error_msg());
    cr_assert_eq(got.rp.id, 12);
    cr_assert_str_eq(got.rp.vm, "db 01");
    cr_assert_str_eq(got.vm_id, "vm-101");
    cr_assert_str_eq(got.provider, "lab");
    cr_assert_eq(got.rp.kind, VB_RP_INCREMENTAL);
    cr_assert_eq(got.rp.parent_id, 7);
    cr_assert_eq(got.rp.created, 1700000000123);
    cr_assert_eq(got.rp.completed, 1700000000456);
    cr_assert_eq(got.chunk_size, 1u << 20);
    cr_assert_eq(got.rp.disk_count, 1);
    cr_assert_str_eq(got.rp.disks[0].change_id, "52 de/4");
    cr_assert_str_eq(got.rp.disks[0].index_path, "rp7-2000");
    cr_assert_eq(got.rp.disks[0].capacity, 8ull << 30);
    cr_assert_eq(got.rp.disks[0].transport_count, 2);
    cr_assert_str_eq(got.rp.disks[0].transports[1], "nbdssl");
    vb_manifest_clear(&got);

    vb_manifest_t *all = NULL;
    size_t n = 0;
    cr_assert_eq(vb_manifest_list(store, &all, &n), 0, "%s", vb_error_msg());
    cr_assert_eq(n, 2);
    cr_assert_eq(all[0].rp.id, 7);
    cr_assert_null(all[0].rp.disks[0].change_id);
    cr_assert_eq(all[1].rp.id, 12);
    vb_manifests_free(&all, n);

    cr_assert_eq(vb_manifest_remove(store, 7), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_manifest_read(store, 7, &got), VB_ENOTFOUND);
    cr_assert_eq(vb_manifest_remove(store, 7), VB_ENOTFOUND);
    vb_store_destroy(&store);
    tu_rmrf(dir);
}

Test(manifest, newer_or_damaged_manifests_are_refused_by_name)
{
    char *dir = tu_tmpdir();
    vb_store_t *store = vb_store_open(dir, true);
    cr_assert_not_null(store, "%s", vb_error_msg());
    const char *newer = "{\"format\": \"vbak-manifest\", \"version\": 99, \"restore_point\": 3}";
    cr_assert_eq(vb_store_put(store, "manifests/rp3.json", newer, strlen(newer), 0), 0);
    vb_manifest_t got;
    cr_assert_eq(vb_manifest_read(store, 3, &got), VB_EUNSUPPORTED);
    cr_assert(strstr(vb_error_msg(), "manifests/rp3.json"), "%s", vb_error_msg());

    const char *nodisks = "{\"format\": \"vbak-manifest\", \"version\": 1, \"restore_point\": 4, "
                          "\"vm\": \"a\", \"created\": 1, \"kind\": \"full\", \"disks\": []}";
    cr_assert_eq(vb_store_put(store, "manifests/rp4.json", nodisks, strlen(nodisks), 0), 0);
    cr_assert_eq(vb_manifest_read(store, 4, &got), VB_ECORRUPT);
    cr_assert_eq(vb_store_put(store, "manifests/rp5.json", "{not json", 9, 0), 0);
    cr_assert_eq(vb_manifest_read(store, 5, &got), VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "rp5.json in "), "%s", vb_error_msg());

    vb_manifest_t *all = NULL;
    size_t n = 0;
    cr_assert_neq(vb_manifest_list(store, &all, &n), 0, "a damaged manifest is not skipped");
    cr_assert_null(all);
    vb_store_destroy(&store);
    tu_rmrf(dir);
}
