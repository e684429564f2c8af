/* Lab snapshots shaped like VMware's (redirect-on-write): creating one allocates no data, later
 * writes go to a delta and leave the snapshot's bytes alone, removing it consolidates exactly
 * the blocks written since, chains work, and a process killed mid-operation leaves a site that
 * the next operation's sweep makes consistent. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
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
    snprintf(s_dir, sizeof s_dir, "%s/labrow-XXXXXX", base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(s_dir));
    vb_lab_options_t o = {.disk_size = DISK_SIZE, .seed = 9};
    cr_assert_eq(vb_lab_site_create(s_dir, &o), 0, "create: %s", vb_error_msg());
}

static void teardown(void)
{
    const char *argv[] = {"rm", "-rf", s_dir, NULL};
    cr_assert_eq(vb_lab_run(argv, NULL), 0);
}

TestSuite(lab_row, .init = setup, .fini = teardown, .timeout = 240);

/* Allocated bytes of every file in DIR/disks (what `du` counts). */
static uint64_t disks_du(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/disks", s_dir);
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_blocks * 512u;
    }
    closedir(d);
    return total;
}

static bool same_range(int fa, int fb, uint64_t off, uint64_t len)
{
    static unsigned char x[1 << 20], y[1 << 20];
    while (len > 0) {
        size_t n = len < sizeof x ? (size_t)len : sizeof x;
        ssize_t ra = pread(fa, x, n, (off_t)off), rb = pread(fb, y, n, (off_t)off);
        if (ra != (ssize_t)n || rb != (ssize_t)n || memcmp(x, y, n) != 0)
            return false;
        off += n;
        len -= n;
    }
    return true;
}

/* cmp(1) that reads only where either file has data: elsewhere both read as zeros. */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    cr_assert_eq(stat(a, &sa), 0, "%s", a);
    cr_assert_eq(stat(b, &sb), 0, "%s", b);
    if (sa.st_size != sb.st_size)
        return false;
    vb_extent_list_t ea = {0}, eb = {0};
    cr_assert_eq(vb_lab_file_extents(a, 0, (uint64_t)sa.st_size, &ea), 0);
    cr_assert_eq(vb_lab_file_extents(b, 0, (uint64_t)sb.st_size, &eb), 0);
    int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
    bool same = fa >= 0 && fb >= 0;
    for (size_t i = 0; same && i < ea.count; i++)
        same = same_range(fa, fb, ea.items[i].offset, ea.items[i].length);
    for (size_t i = 0; same && i < eb.count; i++)
        same = same_range(fa, fb, eb.items[i].offset, eb.items[i].length);
    close(fa);
    close(fb);
    vb_extent_list_free(&ea);
    vb_extent_list_free(&eb);
    return same;
}

static bool is_delta(const char *path)
{
    char buf[256];
    return getxattr(path, "user.vbak.parent", buf, sizeof buf) > 0;
}

/* DIR/NAME.raw := the content of VM's disk KEY, live (snap NULL) or at a snapshot. */
static const char *content(const char *vm, const char *key, const char *snap, const char *name)
{
    static char path[8][600];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 600, "%s/%s.raw", s_dir, name);
    cr_assert_eq(vb_lab_disk_copy(s_dir, vm, key, snap, p), 0, "%s", vb_error_msg());
    return p;
}

static vb_inv_vm_t *find_vm(vb_inventory_t **inv, const char *name)
{
    vb_provider_t *p = vb_lab_provider_new(s_dir);
    cr_assert_not_null(p);
    cr_assert_eq(p->ops->inventory(p, inv), 0, "%s", vb_error_msg());
    vb_provider_destroy(&p);
    vb_inv_vm_t *vm = (vb_inv_vm_t *)vb_inventory_find_vm(*inv, name);
    cr_assert_not_null(vm);
    return vm;
}

static size_t leftovers(void)
{
    vb_inv_orphans_t o = {0};
    cr_assert_eq(vb_lab_orphans(s_dir, false, &o), 0, "%s", vb_error_msg());
    size_t n = o.count;
    vb_inv_orphans_free(&o);
    char path[512];
    snprintf(path, sizeof path, "%s/disks", s_dir);
    DIR *d = opendir(path);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n; /* orphans, plus journals and temporary files */
}

Test(lab_row, a_snapshot_of_a_2_gib_disk_allocates_nothing_and_removal_merges_the_writes)
{
    vb_inv_new_disk_t big[] = {{NULL, NULL, 2ull << 30}};
    cr_assert_eq(vb_lab_vm_create(s_dir, "big", NULL, "nfs-01", big, 1), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_lab_mutate(s_dir, "big", 1, 0, NULL), 0, "%s", vb_error_msg());
    vb_inventory_t *inv = NULL;
    vb_inv_vm_t *vm = find_vm(&inv, "big");
    const char *key = vm->disks[0].key, *live = vm->disks[0].file_uri;
    const char *before = content("big", key, NULL, "before");

    uint64_t du0 = disks_du();
    char *id = NULL;
    cr_assert_eq(vb_lab_snapshot_create(s_dir, "big", "backup", &id), 0, "%s", vb_error_msg());
    cr_expect_eq(disks_du(), du0, "the snapshot allocated %llu bytes",
                 (unsigned long long)(disks_du() - du0));
    char snapfile[700];
    snprintf(snapfile, sizeof snapfile, "%s@%s", live, id);
    cr_expect(!is_delta(snapfile), "the snapshot's file is a raw image (the file route)");
    cr_expect(is_delta(live), "the live disk is a delta");

    vb_lab_changes_t ch = {0};
    cr_assert_eq(vb_lab_mutate(s_dir, "big", 1, 0, &ch), 0, "%s", vb_error_msg());
    cr_expect(same_file(snapfile, before), "the snapshot kept its bytes");
    cr_expect(!same_file(content("big", key, NULL, "live"), before), "the live disk changed");
    /* the delta holds exactly the written blocks */
    vb_extent_list_t delta = {0};
    cr_assert_eq(vb_lab_file_extents(live, 0, 2ull << 30, &delta), 0, "%s", vb_error_msg());
    cr_assert_eq(ch.count, 1);
    cr_assert_eq(delta.count, ch.disks[0].written.count);
    for (size_t i = 0; i < delta.count; i++) {
        cr_expect_eq(delta.items[i].offset, ch.disks[0].written.items[i].offset);
        cr_expect_eq(delta.items[i].length, ch.disks[0].written.items[i].length);
    }
    const char *after = content("big", key, NULL, "after");
    cr_assert_eq(vb_lab_snapshot_remove(s_dir, "big", "backup"), 0, "%s", vb_error_msg());
    cr_expect(same_file(live, after), "the consolidated disk holds the live bytes");
    cr_expect(!is_delta(live), "with no snapshot left the live disk is raw again");
    cr_expect_neq(access(snapfile, F_OK), 0);
    cr_expect_eq(leftovers(), 0);
    vb_extent_list_free(&delta);
    vb_lab_changes_free(&ch);
    vb_inventory_free(&inv);
    free(id);
}

/* vm-nfs-01 has a pre-existing snapshot: the backup's makes a chain. Every snapshot keeps its
 * bytes through creates, writes and removals of the others, in any order. */
Test(lab_row, a_chain_of_snapshots_keeps_every_snapshot_s_bytes)
{
    vb_inventory_t *inv = NULL;
    vb_inv_vm_t *vm = find_vm(&inv, "vm-nfs-01");
    cr_assert_geq(vm->disk_count, 1);
    for (size_t i = 0; i < vm->disk_count; i++) {
        const char *key = vm->disks[i].key;
        char n[64];
        snprintf(n, sizeof n, "c0-%zu", i);
        const char *c0 = content("vm-nfs-01", key, "before-upgrade", n);
        snprintf(n, sizeof n, "l0-%zu", i);
        const char *l0 = content("vm-nfs-01", key, NULL, n);
        cr_assert_eq(vb_lab_snapshot_create(s_dir, "vm-nfs-01", "a", NULL), 0, "%s",
                     vb_error_msg());
        cr_assert_eq(vb_lab_mutate(s_dir, "vm-nfs-01", 20, 0, NULL), 0);
        snprintf(n, sizeof n, "l1-%zu", i);
        const char *l1 = content("vm-nfs-01", key, NULL, n);
        cr_assert_eq(vb_lab_snapshot_create(s_dir, "vm-nfs-01", "b", NULL), 0, "%s",
                     vb_error_msg());
        cr_assert_eq(vb_lab_mutate(s_dir, "vm-nfs-01", 20, 0, NULL), 0);
        snprintf(n, sizeof n, "l2-%zu", i);
        const char *l2 = content("vm-nfs-01", key, NULL, n);
        cr_expect(same_file(content("vm-nfs-01", key, "before-upgrade", "x"), c0));
        cr_expect(same_file(content("vm-nfs-01", key, "a", "x"), l0));
        cr_expect(same_file(content("vm-nfs-01", key, "b", "x"), l1));
        cr_expect(!same_file(l1, l2));
        /* the middle one goes, then the newest, then the oldest */
        cr_assert_eq(vb_lab_snapshot_remove(s_dir, "vm-nfs-01", "a"), 0, "%s", vb_error_msg());
        cr_expect(same_file(content("vm-nfs-01", key, "before-upgrade", "x"), c0));
        cr_expect(same_file(content("vm-nfs-01", key, "b", "x"), l1));
        cr_expect(same_file(content("vm-nfs-01", key, NULL, "x"), l2));
        cr_assert_eq(vb_lab_snapshot_remove(s_dir, "vm-nfs-01", "b"), 0, "%s", vb_error_msg());
        cr_expect(same_file(content("vm-nfs-01", key, "before-upgrade", "x"), c0));
        cr_expect(same_file(content("vm-nfs-01", key, NULL, "x"), l2));
        cr_expect_eq(leftovers(), 0);
        if (i + 1 == vm->disk_count) {
            cr_assert_eq(vb_lab_snapshot_remove(s_dir, "vm-nfs-01", "before-upgrade"), 0);
            cr_expect(same_file(vm->disks[i].file_uri, l2), "the last removal leaves a raw disk");
            cr_expect(!is_delta(vm->disks[i].file_uri));
        }
    }
    cr_expect_eq(leftovers(), 0);
    vb_inventory_free(&inv);
}

/* Runs a snapshot create ("create") or remove of snapshot "b" of vm-nfs-01 in a child killed
 * after `units` units of its steps. True when the child was killed (the operation not done). */
static bool killed_mid(const char *op, int units)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", units);
        setenv("VB_LAB_FAULT_UNITS", v, 1);
        int rc = strcmp(op, "create") == 0 ? vb_lab_snapshot_create(s_dir, "vm-nfs-01", "b", NULL)
                                           : vb_lab_snapshot_remove(s_dir, "vm-nfs-01", "b");
        _exit(rc == 0 ? 0 : 1);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    cr_assert_neq(WEXITSTATUS(status), 1, "the operation failed");
    return WEXITSTATUS(status) == 86;
}

static void sweep(void)
{
    cr_assert_eq(vb_lab_snapshot_remove(s_dir, "vm-nfs-01", "no-such"), VB_ENOTFOUND, "%s",
                 vb_error_msg());
}

Test(lab_row, a_snapshot_operation_killed_midway_is_completed_by_the_next_sweep)
{
    vb_inventory_t *inv = NULL;
    vb_inv_vm_t *vm = find_vm(&inv, "vm-nfs-01");
    const char *key = vm->disks[0].key;
    cr_assert_eq(vb_lab_mutate(s_dir, "vm-nfs-01", 30, 0, NULL), 0);
    const char *c0 = content("vm-nfs-01", key, "before-upgrade", "c0");
    const char *l0 = content("vm-nfs-01", key, NULL, "l0");
    int kills = 0;
    for (int units = 1; units < 64; units++) {
        bool k1 = killed_mid("create", units);
        sweep();
        cr_expect(same_file(content("vm-nfs-01", key, "b", "x"), l0), "create killed at %d", units);
        cr_expect(same_file(content("vm-nfs-01", key, "before-upgrade", "x"), c0));
        cr_expect(same_file(content("vm-nfs-01", key, NULL, "x"), l0));
        bool k2 = killed_mid("remove", units);
        sweep();
        char x[600];
        snprintf(x, sizeof x, "%s/x.raw", s_dir);
        cr_expect_eq(vb_lab_disk_copy(s_dir, "vm-nfs-01", key, "b", x), VB_ENOTFOUND,
                     "remove killed at %d: the snapshot is gone", units);
        cr_expect(same_file(content("vm-nfs-01", key, "before-upgrade", "x"), c0));
        cr_expect(same_file(content("vm-nfs-01", key, NULL, "x"), l0), "remove killed at %d",
                  units);
        cr_expect_eq(leftovers(), 0);
        kills += k1 + k2;
        if (!k1 && !k2)
            break;
    }
    cr_expect_geq(kills, 4, "the operations were killed midway %d times", kills);
    vb_inventory_free(&inv);
}
