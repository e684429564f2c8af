/* cbt — changed block tracking, mutation, snapshots and Storage vMotion of lab disks.
 *
 * Each disk has a change-ID epoch and a generation. Every write the lab makes (mutate) advances
 * the generation and appends "GEN OFFSET LENGTH" lines to DIR/cbt/EXPORT.log. The areas changed
 * since change ID EPOCH/G, as seen at a snapshot taken at generation S, are the union of the log
 * records with G < gen <= S. A reset starts a new epoch with an empty log, so older IDs are
 * unknown, as on vSphere after CBT is reset. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "lab/lab.h"
#include "lab/lab_util.h"
#include "lab/ops.h"
#include "lab/site.h"
#include "log.h"

char *vb_lab_op_epoch(uint64_t h)
{
    unsigned char b[16];
    uint64_t s = h;
    for (int i = 0; i < 16; i += 8) {
        uint64_t v = vb_lab_rand_next(&s);
        memcpy(b + i, &v, 8);
    }
    return vb_lab_strf("%02x %02x %02x %02x %02x %02x %02x %02x-%02x %02x %02x %02x %02x %02x "
                       "%02x %02x",
                       b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
                       b[12], b[13], b[14], b[15]);
}

void vb_lab_changes_free(vb_lab_changes_t *changes)
{
    if (!changes)
        return;
    for (size_t i = 0; i < changes->count; i++) {
        free(changes->disks[i].disk_key);
        vb_extent_list_free(&changes->disks[i].written);
    }
    free(changes->disks);
    changes->disks = NULL;
    changes->count = 0;
}

static int s_qemu_escape(const char *in, char **out)
{
    size_t n = strlen(in), commas = 0;
    for (size_t i = 0; i < n; i++)
        commas += in[i] == ',';
    char *p = malloc(n + commas + 1);
    if (!p)
        return vb_error_set(VB_ENOMEM, "out of memory");
    *out = p;
    for (size_t i = 0; i < n; i++) {
        *p++ = in[i];
        if (in[i] == ',')
            *p++ = ',';
    }
    *p = '\0';
    return 0;
}

typedef enum { S_LUKS_CREATE, S_LUKS_ENCRYPT, S_LUKS_DECRYPT } s_luks_op_t;

/* Gives both images the same modification time, so "newer" means "written since last sync". */
static int s_same_mtime(const char *from, const char *to)
{
    struct stat st;
    if (stat(from, &st) < 0)
        return vb_error_set(VB_EIO, "cannot stat %s: %s", from, strerror(errno));
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    if (utimensat(AT_FDCWD, to, ts, 0) < 0)
        return vb_error_set(VB_EIO, "cannot set the time of %s: %s", to, strerror(errno));
    return 0;
}

/* cryptsetup lives in sbin, which a user's PATH often lacks. */
static const char *s_cryptsetup(void)
{
    static const char *const where[] = {"/usr/sbin/cryptsetup", "/sbin/cryptsetup"};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++)
        if (access(where[i], X_OK) == 0)
            return where[i];
    return "cryptsetup";
}

/* An empty LUKS1 image (the format qemu and nbdkit read) sized for PLAIN's data after a 2 MiB
 * header. cryptsetup rather than `qemu-img create -O luks`: qemu always measures the PBKDF speed
 * on the thread's CPU time first, and where that clock ticks coarsely (virtual machines) the
 * measurement reads zero and creation fails ("Unable to get accurate CPU usage") for a good share
 * of attempts. A fixed, low iteration count keeps opens quick: this protects test data, not
 * secrets. */
static int s_luks_format(const char *plain, const char *luks, const char *pass, const char *log)
{
    enum { HEADER_SECTORS = 4096 };
    struct stat st;
    if (stat(plain, &st) < 0)
        return vb_error_set(VB_EIO, "cannot stat %s: %s", plain, strerror(errno));
    int fd = open(luks, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return vb_error_set(VB_EIO, "cannot create %s: %s", luks, strerror(errno));
    int rc = 0;
    if (ftruncate(fd, st.st_size + (off_t)HEADER_SECTORS * 512) < 0)
        rc = vb_error_set(VB_EIO, "cannot size %s: %s", luks, strerror(errno));
    close(fd);
    const char *argv[] = {s_cryptsetup(),
                          "luksFormat",
                          "--batch-mode",
                          "--type",
                          "luks1",
                          "--pbkdf-force-iterations",
                          "1000",
                          "--align-payload",
                          "4096",
                          "--key-file",
                          pass,
                          luks,
                          NULL};
    if (!rc)
        rc = vb_lab_run(argv, log);
    if (rc)
        unlink(luks);
    return rc;
}

static int s_luks(vb_lab_site_t *site, json_t *disk, s_luks_op_t op)
{
    int rc = VB_ENOMEM;
    const char *dir = vb_lab_site_dir(site);
    char *plain = vb_lab_disk_image(site, disk, NULL);
    char *luks = vb_lab_disk_luks_image(site, disk, NULL);
    char *pass = vb_lab_strf("%s/tls/luks.pass", dir);
    char *log = vb_lab_strf("%s/log/luks.log", dir);
    char *tmp = plain ? vb_lab_strf("%s.decrypt", plain) : NULL;
    char *pass_e = NULL, *luks_e = NULL, *secret = NULL, *image = NULL;
    if (!plain || !luks || !pass || !log || !tmp || s_qemu_escape(pass, &pass_e) ||
        s_qemu_escape(luks, &luks_e))
        goto out;
    secret = vb_lab_strf("secret,id=sec0,file=%s", pass_e);
    image = vb_lab_strf("driver=luks,key-secret=sec0,file.filename=%s", luks_e);
    if (!secret || !image)
        goto out;
    rc = op == S_LUKS_CREATE ? s_luks_format(plain, luks, pass, log) : 0;
    if (rc) {
        /* said below */
    } else if (op != S_LUKS_DECRYPT) {
        /* -n writes into the existing image, whose payload does not read as zeros: every block is
         * written. */
        const char *argv[] = {
            "qemu-img", "convert", "-q", "-n", "--object", secret, "--target-image-opts",
            plain,      image,     NULL};
        rc = vb_lab_run(argv, log);
    } else {
        /* Zero detection in convert turns zero blocks back into holes. */
        const char *argv[] = {"qemu-img", "convert", "-q",  "--object", secret, "--image-opts",
                              image,      "-O",      "raw", tmp,        NULL};
        rc = vb_lab_run(argv, log);
        if (!rc && rename(tmp, plain) < 0)
            rc = vb_error_set(VB_EIO, "cannot rename %s: %s", tmp, strerror(errno));
        if (rc)
            unlink(tmp);
    }
    if (!rc)
        rc = s_same_mtime(luks, plain);
    if (rc)
        vb_error_prefix(rc, "%s disk %s", op == S_LUKS_DECRYPT ? "decrypting" : "encrypting",
                        vb_lab_json_str(disk, "export"));
out:
    free(plain);
    free(luks);
    free(pass);
    free(log);
    free(tmp);
    free(pass_e);
    free(luks_e);
    free(secret);
    free(image);
    return rc;
}

int vb_lab_op_create_luks(vb_lab_site_t *site, json_t *disk)
{
    return s_luks(site, disk, S_LUKS_CREATE);
}

int vb_lab_op_sync_luks(vb_lab_site_t *site, json_t *disk)
{
    return s_luks(site, disk, S_LUKS_ENCRYPT);
}

/* An encrypted disk has two images: the LUKS one (written by NBD clients through the server)
 * and the plaintext one (written by the lab and by file-mode clients). Whichever was written
 * since the last sync wins. */
static int s_reconcile(vb_lab_site_t *site, json_t *disk)
{
    if (!json_is_true(json_object_get(disk, "encrypted")))
        return 0;
    char *plain = vb_lab_disk_image(site, disk, NULL);
    char *luks = vb_lab_disk_luks_image(site, disk, NULL);
    struct stat sp, sl;
    int rc = 0;
    if (!plain || !luks)
        rc = vb_error_set(VB_ENOMEM, "out of memory");
    else if (stat(plain, &sp) < 0 || stat(luks, &sl) < 0)
        rc = vb_error_set(VB_EIO, "encrypted disk %s: missing image: %s",
                          vb_lab_json_str(disk, "export"), strerror(errno));
    else if (sl.st_mtim.tv_sec > sp.st_mtim.tv_sec ||
             (sl.st_mtim.tv_sec == sp.st_mtim.tv_sec && sl.st_mtim.tv_nsec > sp.st_mtim.tv_nsec))
        rc = s_luks(site, disk, S_LUKS_DECRYPT);
    else if (sp.st_mtim.tv_sec != sl.st_mtim.tv_sec || sp.st_mtim.tv_nsec != sl.st_mtim.tv_nsec)
        rc = s_luks(site, disk, S_LUKS_ENCRYPT);
    free(plain);
    free(luks);
    return rc;
}

/* Is block [off, off+len) entirely inside the allocated extents? `idx` walks `alloc` forward. */
static bool s_allocated(const vb_extent_list_t *alloc, size_t *idx, uint64_t off, uint64_t len)
{
    while (*idx < alloc->count && alloc->items[*idx].offset + alloc->items[*idx].length <= off)
        (*idx)++;
    if (*idx >= alloc->count)
        return false;
    const vb_extent_t *e = &alloc->items[*idx];
    return e->offset <= off && e->offset + e->length >= off + len;
}

static int s_log_append(vb_lab_site_t *site, json_t *disk, long long gen,
                        const vb_extent_list_t *ext)
{
    char *path = vb_lab_disk_cbt_log(site, disk);
    if (!path)
        return VB_ENOMEM;
    int rc = 0;
    FILE *f = fopen(path, "a");
    if (!f) {
        rc = vb_error_set(VB_EIO, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < ext->count; i++)
        fprintf(f, "%lld %" PRIu64 " %" PRIu64 "\n", gen, ext->items[i].offset,
                ext->items[i].length);
    if (fflush(f) != 0 || fsync(fileno(f)) < 0)
        rc = vb_error_set(VB_EIO, "cannot write %s: %s", path, strerror(errno));
    fclose(f);
out:
    free(path);
    return rc;
}

static int s_write_block(int fd, uint64_t seed, uint64_t off, size_t len, unsigned char *buf,
                         const char *path)
{
    vb_lab_fill(vb_lab_hash_u64(seed, off / VB_LAB_BLOCK_SIZE), buf, len);
    if ((errno = vb_lab_test_write_fault()) != 0 || vb_pwrite_full(fd, buf, len, off) != 0)
        return vb_error_set(VB_EIO, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

int vb_lab_op_commit_writes(vb_lab_site_t *site, json_t *disk, long long gen,
                            const vb_extent_list_t *written, int rc)
{
    if (written->count == 0)
        return rc;
    char why[512];
    snprintf(why, sizeof why, "%s", vb_error_msg());
    int lrc = s_log_append(site, disk, gen, written);
    if (lrc == 0) {
        json_object_set_new(disk, "change_gen", json_integer(gen));
        /* kept even when this or a later disk of the same edit fails */
        vb_lab_site_keep_on_error(site);
    } else if (rc != 0) {
        VB_LOG_ERROR("lab", "cbt-log-failed disk=%s reason=\"%s\"", vb_lab_json_str(disk, "export"),
                     vb_error_msg());
    }
    if (rc != 0) /* the first failure is the one to report */
        vb_error_set(rc, "%s", why);
    return rc != 0 ? rc : lrc;
}

/* VBAK_TEST_LAB_WRITES_BEFORE_FAULT=N: the lab's N+1-th block write of this process fails
 * (ENOSPC), so tests can see what a write failing half-way leaves. */
int vb_lab_test_write_fault(void)
{
    static long done; /* writes since the knob was first seen set */
    const char *v = getenv("VBAK_TEST_LAB_WRITES_BEFORE_FAULT");
    if (!v || !*v)
        return 0;
    if (done >= strtol(v, NULL, 10))
        return ENOSPC;
    done++;
    return 0;
}

/* Writes about `percent` % of the disk's blocks, at least one, and at least one in a hole when
 * the disk has holes; returns the block-aligned extents written. */
static int s_mutate_disk(vb_lab_site_t *site, json_t *disk, int percent, uint64_t seed,
                         vb_extent_list_t *written)
{
    int rc = 0, fd = -1;
    uint64_t cap = (uint64_t)json_integer_value(json_object_get(disk, "capacity"));
    uint64_t blocks = (cap + VB_LAB_BLOCK_SIZE - 1) / VB_LAB_BLOCK_SIZE;
    vb_extent_list_t alloc = {0};
    unsigned char *buf = malloc(VB_LAB_BLOCK_SIZE);
    unsigned char *pick = calloc(blocks / 8 + 1, 1);
    char *path = vb_lab_disk_image(site, disk, NULL);
    if (!buf || !pick || !path) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = vb_lab_disk_extents(site, disk, NULL, 0, cap, &alloc)))
        goto out;
    uint64_t state = seed;
    uint64_t threshold = (uint64_t)percent * (UINT64_MAX / 100);
    bool any = false, hole_picked = false;
    int64_t first_hole = -1;
    size_t idx = 0;
    for (uint64_t b = 0; b < blocks; b++) {
        uint64_t off = b * VB_LAB_BLOCK_SIZE;
        uint64_t len = cap - off < VB_LAB_BLOCK_SIZE ? cap - off : VB_LAB_BLOCK_SIZE;
        bool hole = !s_allocated(&alloc, &idx, off, len);
        if (hole && first_hole < 0)
            first_hole = (int64_t)b;
        if (vb_lab_rand_next(&state) < threshold) {
            pick[b / 8] |= (unsigned char)(1u << (b % 8));
            any = true;
            hole_picked |= hole;
        }
    }
    if (!any)
        pick[0] |= 1;
    if (!hole_picked && first_hole >= 0)
        pick[first_hole / 8] |= (unsigned char)(1u << (first_hole % 8));
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = vb_error_set(VB_EIO, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    for (uint64_t b = 0; b < blocks && !rc; b++) {
        if (!(pick[b / 8] & (1u << (b % 8))))
            continue;
        uint64_t off = b * VB_LAB_BLOCK_SIZE;
        size_t len = cap - off < VB_LAB_BLOCK_SIZE ? (size_t)(cap - off) : VB_LAB_BLOCK_SIZE;
        if (!(rc = s_write_block(fd, seed, off, len, buf, path)))
            rc = vb_extent_list_add(written, off, len);
    }
    if (!rc && fsync(fd) < 0)
        rc = vb_error_set(VB_EIO, "cannot sync %s: %s", path, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    vb_extent_list_free(&alloc);
    free(buf);
    free(pick);
    free(path);
    return rc;
}

int vb_lab_op_mutate(vb_lab_site_t *site, json_t *obj, bool is_fcd, int percent, uint64_t seed,
                     vb_lab_changes_t *out)
{
    int rc = 0;
    size_t n = vb_lab_object_disk_count(obj, is_fcd);
    if (percent <= 0)
        percent = 10;
    if (percent > 100)
        return vb_error_set(VB_EINVAL, "percent must be 1..100, not %d", percent);
    if (out) {
        out->disks = calloc(n, sizeof *out->disks);
        out->count = 0;
        if (!out->disks)
            return vb_error_set(VB_ENOMEM, "out of memory");
    }
    uint64_t site_seed =
        (uint64_t)json_integer_value(json_object_get(vb_lab_site_root(site), "seed"));
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *disk = vb_lab_object_disk(obj, is_fcd, i);
        long long gen = json_integer_value(json_object_get(disk, "change_gen")) + 1;
        uint64_t s = vb_lab_hash_str(seed ? seed : vb_lab_hash_u64(site_seed, (uint64_t)gen),
                                     vb_lab_json_str(disk, "export"));
        vb_extent_list_t written = {0};
        if (!(rc = s_reconcile(site, disk)))
            rc = s_mutate_disk(site, disk, percent, s, &written);
        /* what was written counts for change tracking, even when the rest failed */
        if ((rc = vb_lab_op_commit_writes(site, disk, gen, &written, rc))) {
            vb_extent_list_free(&written);
            break;
        }
        if (json_is_true(json_object_get(disk, "encrypted")))
            rc = vb_lab_op_sync_luks(site, disk);
        if (out) {
            out->disks[out->count].disk_key = strdup(vb_lab_json_str(disk, "key"));
            out->disks[out->count].written = written;
            out->count++;
        } else {
            vb_extent_list_free(&written);
        }
    }
    if (rc && out)
        vb_lab_changes_free(out);
    return rc;
}

int vb_lab_op_snapshot_create(vb_lab_site_t *site, json_t *obj, bool is_fcd, const char *name,
                              char **id_out)
{
    json_t *root = vb_lab_site_root(site);
    long long next = json_integer_value(json_object_get(root, "next_snapshot"));
    char *id = vb_lab_strf("snapshot-%lld", next);
    json_t *ids = json_object();
    int rc = 0;
    if (!id || !ids) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    if (!name[0] || vb_lab_object_find_snapshot(obj, name)) {
        rc = vb_error_set(name[0] ? VB_EEXISTS : VB_EINVAL, "snapshot name \"%s\" %s", name,
                          name[0] ? "exists already" : "is empty");
        goto out;
    }
    for (size_t i = 0; i < vb_lab_object_disk_count(obj, is_fcd) && !rc; i++) {
        json_t *disk = vb_lab_object_disk(obj, is_fcd, i);
        char *src = vb_lab_disk_image(site, disk, NULL);
        char *dst = vb_lab_disk_image(site, disk, id);
        char *cid = vb_lab_disk_change_id(disk);
        bool enc = json_is_true(json_object_get(disk, "encrypted"));
        rc = (!src || !dst || !cid) ? VB_ENOMEM : s_reconcile(site, disk);
        /* an encrypted disk's two images are synced by whole-image re-encryption, so its
         * snapshot stays a copy; a plain disk's is redirect-on-write (row.c) */
        if (!rc)
            rc = enc ? vb_lab_copy_sparse(src, dst) : vb_lab_row_snapshot_create(site, disk, id);
        if (!rc)
            rc = json_object_set_new(ids, vb_lab_json_str(disk, "key"), json_string(cid))
                     ? vb_error_set(VB_ENOMEM, "out of memory")
                     : 0;
        free(src);
        free(dst);
        free(cid);
        if (!rc && json_is_true(json_object_get(disk, "encrypted"))) {
            src = vb_lab_disk_luks_image(site, disk, NULL);
            dst = vb_lab_disk_luks_image(site, disk, id);
            rc = (!src || !dst) ? VB_ENOMEM : vb_lab_copy_sparse(src, dst);
            free(src);
            free(dst);
        }
    }
    if (rc)
        goto out;
    json_t *snap = json_pack("{s:s, s:s, s:O}", "id", id, "name", name, "change_ids", ids);
    if (!snap || json_array_append_new(json_object_get(obj, "snapshots"), snap)) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    json_object_set_new(root, "next_snapshot", json_integer(next + 1));
    if (id_out) {
        *id_out = id;
        id = NULL;
    }
out:
    free(id);
    json_decref(ids);
    return rc;
}

static void s_unlink_snapshot_files(vb_lab_site_t *site, json_t *obj, bool is_fcd, const char *id)
{
    for (size_t i = 0; i < vb_lab_object_disk_count(obj, is_fcd); i++) {
        json_t *disk = vb_lab_object_disk(obj, is_fcd, i);
        char *p = vb_lab_disk_image(site, disk, id);
        char *l = vb_lab_disk_luks_image(site, disk, id);
        if (p)
            unlink(p);
        if (l && json_is_true(json_object_get(disk, "encrypted")))
            unlink(l);
        free(p);
        free(l);
    }
}

/* Deletes an encrypted disk's snapshot images before the snapshot leaves site.json, as ESXi
 * consolidates before it drops a snapshot: a file that cannot be deleted (locked, immutable)
 * fails the removal and the snapshot stays, to be removed again later. Files already gone are
 * fine. A plain disk's removal is prepared here (journal) and carried out once site.json is
 * saved (vb_lab_sweep_interrupted). */
static int s_delete_snapshot_files(vb_lab_site_t *site, json_t *obj, bool is_fcd, const char *vm,
                                   const char *id)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < vb_lab_object_disk_count(obj, is_fcd); i++) {
        json_t *disk = vb_lab_object_disk(obj, is_fcd, i);
        if (!json_is_true(json_object_get(disk, "encrypted"))) {
            if ((rc = vb_lab_row_snapshot_remove(site, obj, disk, id)))
                vb_error_prefix(rc, "cannot remove snapshot %s of %s", id, vm);
            continue;
        }
        char *paths[2] = {vb_lab_disk_image(site, disk, id), vb_lab_disk_luks_image(site, disk, id)};
        for (int k = 0; k < 2 && !rc; k++)
            if (paths[k] && unlink(paths[k]) != 0 && errno != ENOENT)
                rc = vb_error_set(VB_EBUSY, "cannot remove snapshot %s of %s: deleting %s: %s", id,
                                  vm, paths[k], strerror(errno));
        free(paths[0]);
        free(paths[1]);
    }
    return rc;
}

/* After a snapshot operation's save (rc: its result): the sweep carries out the operation's
 * journals when the save went through, and drops them when it did not. */
static int s_sweep_after(vb_lab_site_t *site, int rc)
{
    if (!rc)
        return vb_lab_sweep_interrupted(site);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", vb_error_msg());
    if (vb_lab_sweep_interrupted(site) != 0)
        VB_LOG_WARN("lab", "snapshot-cleanup-failed error=\"%s\"", vb_error_msg());
    return vb_error_set(rc, "%s", msg);
}

/* Opens the site for writing and finds the VM or FCD. */
static int s_open_object(const char *dir, const char *vm, bool write, vb_lab_site_t **site,
                         json_t **obj, bool *is_fcd)
{
    int rc = vb_lab_site_open(dir, write, site);
    if (rc)
        return rc;
    *obj = vb_lab_site_find_object(*site, vm, is_fcd);
    if (!*obj) {
        vb_lab_site_destroy(site);
        return vb_error_set(VB_ENOTFOUND, "no VM or FCD named \"%s\" in the lab site", vm);
    }
    return 0;
}

/* One edit of a VM or FCD under the site's write lock: open, edit, save when the edit returns
 * 0 (S_UNCHANGED: nothing to save) or failed after a change it marked to keep, close. */
#define S_UNCHANGED 1
typedef int (*s_edit_fn)(vb_lab_site_t *site, json_t *obj, bool fcd, void *arg);

static int s_edit_object(const char *dir, const char *vm, s_edit_fn edit, void *arg)
{
    vb_lab_site_t *site;
    json_t *obj;
    bool fcd;
    int rc = s_open_object(dir, vm, true, &site, &obj, &fcd);
    if (rc)
        return rc;
    rc = edit(site, obj, fcd, arg);
    if (rc == S_UNCHANGED)
        rc = 0;
    else if (rc == 0)
        rc = vb_lab_site_save(site);
    else if (vb_lab_site_must_keep(site) && vb_lab_site_save(site) != 0)
        VB_LOG_ERROR("lab", "site-not-saved dir=%s reason=\"%s\"", dir, vb_error_msg());
    vb_lab_site_destroy(&site);
    return rc;
}

/* The two edits that write into a disk and report the blocks they changed. */
typedef struct {
    int percent;
    uint64_t seed;
    const char *path;
    const void *data;
    size_t len;
    vb_lab_changes_t *out;
} s_write_args_t;

static int s_mutate(vb_lab_site_t *site, json_t *obj, bool fcd, void *arg)
{
    s_write_args_t *a = arg;
    return vb_lab_op_mutate(site, obj, fcd, a->percent, a->seed, a->out);
}

static int s_guest_write(vb_lab_site_t *site, json_t *obj, bool fcd, void *arg)
{
    s_write_args_t *a = arg;
    return vb_lab_op_guest_write(site, obj, fcd, a->path, a->data, a->len, a->out);
}

static int s_write_edit(const char *dir, const char *vm, s_edit_fn edit, s_write_args_t *a)
{
    int rc = s_edit_object(dir, vm, edit, a);
    if (rc && a->out)
        vb_lab_changes_free(a->out);
    return rc;
}

int vb_lab_mutate(const char *dir, const char *vm, int percent, uint64_t seed,
                  vb_lab_changes_t *out)
{
    s_write_args_t a = {.percent = percent, .seed = seed, .out = out};
    return s_write_edit(dir, vm, s_mutate, &a);
}

int vb_lab_guest_write(const char *dir, const char *vm, const char *path, const void *data,
                       size_t len, vb_lab_changes_t *out)
{
    s_write_args_t a = {.path = path, .data = data, .len = len, .out = out};
    return s_write_edit(dir, vm, s_guest_write, &a);
}

int vb_lab_snapshot_create(const char *dir, const char *vm, const char *name, char **id_out)
{
    vb_lab_site_t *site;
    json_t *obj;
    bool fcd;
    char *id = NULL;
    int rc = s_open_object(dir, vm, true, &site, &obj, &fcd);
    if (rc)
        return rc;
    if (!(rc = vb_lab_sweep_interrupted(site)))
        rc = vb_lab_op_snapshot_create(site, obj, fcd, name, &id);
    if (!rc && (rc = vb_lab_site_save(site)))
        s_unlink_snapshot_files(site, obj, fcd, id);
    /* carries out the prepared redirect-on-write steps, or drops them when the create or the
     * save failed */
    rc = s_sweep_after(site, rc);
    if (!rc && id_out) {
        *id_out = id;
        id = NULL;
    }
    free(id);
    vb_lab_site_destroy(&site);
    return rc;
}

int vb_lab_snapshot_remove(const char *dir, const char *vm, const char *id_or_name)
{
    vb_lab_site_t *site;
    json_t *obj;
    bool fcd;
    int rc = s_open_object(dir, vm, true, &site, &obj, &fcd);
    if (rc)
        return rc;
    /* a restarted coordinator removes a crashed job's snapshot by name: what the crash left
     * goes too, even when the snapshot was never saved */
    if ((rc = vb_lab_sweep_interrupted(site)))
        goto out;
    json_t *snap = vb_lab_object_find_snapshot(obj, id_or_name);
    if (!snap) {
        rc = vb_error_set(VB_ENOTFOUND, "%s has no snapshot \"%s\"", vm, id_or_name);
        goto out;
    }
    char *id = strdup(vb_lab_json_str(snap, "id"));
    if (!id) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = s_delete_snapshot_files(site, obj, fcd, vm, id)) != 0) {
        free(id);
        rc = s_sweep_after(site, rc);
        goto out;
    }
    json_t *list = json_object_get(obj, "snapshots");
    for (size_t i = 0; i < json_array_size(list); i++)
        if (json_array_get(list, i) == snap) {
            json_array_remove(list, i);
            break;
        }
    rc = s_sweep_after(site, vb_lab_site_save(site));
    free(id);
out:
    vb_lab_site_destroy(&site);
    return rc;
}

/* "[old] folder/file.vmdk" -> "[new] folder/file.vmdk" */
static char *s_repath(const char *path, const char *ds)
{
    const char *rest = path[0] == '[' ? strchr(path, ']') : NULL;
    rest = rest ? rest + 1 : path;
    while (*rest == ' ')
        rest++;
    return vb_lab_strf("[%s] %s", ds, rest);
}

static void s_rename_parent(vb_lab_site_t *site, const char *old, const char *new_path)
{
    size_t i, j;
    json_t *vm, *d;
    json_array_foreach(json_object_get(vb_lab_site_root(site), "vms"), i, vm)
    {
        json_array_foreach(json_object_get(vm, "disks"), j, d)
        {
            const char *p = vb_lab_json_str(d, "parent");
            if (p && strcmp(p, old) == 0)
                json_object_set_new(d, "parent", json_string(new_path));
        }
    }
}

typedef struct {
    const char *vm, *datastore;
    bool force;
} s_svmotion_t;

static int s_svmotion(vb_lab_site_t *site, json_t *obj, bool fcd, void *arg)
{
    const s_svmotion_t *a = arg;
    json_t *ds = vb_lab_site_find_datastore(site, a->datastore);
    const char *host = vb_lab_object_host(site, obj, fcd);
    if (!ds)
        return vb_error_set(VB_ENOTFOUND, "no datastore named \"%s\" in the lab site",
                            a->datastore);
    const char *holder = vb_lab_json_str(obj, "access_blocked_by");
    if (holder && !a->force)
        return vb_error_set(VB_EBUSY,
                            "Storage vMotion of %s is blocked: prepared for access by %s "
                            "(EndAccess releases it)",
                            a->vm, holder);
    if (!fcd && host && !vb_lab_datastore_mounted_on(ds, host))
        return vb_error_set(VB_EPOLICY, "cannot move %s to %s: its host %s does not mount %s",
                            a->vm, a->datastore, host, a->datastore);
    for (size_t i = 0; i < vb_lab_object_disk_count(obj, fcd); i++) {
        json_t *disk = vb_lab_object_disk(obj, fcd, i);
        char *old = strdup(vb_lab_json_str(disk, "path"));
        char *np = s_repath(old ? old : "", a->datastore);
        if (!old || !np) {
            free(old);
            free(np);
            return vb_error_set(VB_ENOMEM, "out of memory");
        }
        json_object_set_new(disk, "datastore", json_string(a->datastore));
        json_object_set_new(disk, "path", json_string(np));
        s_rename_parent(site, old, np);
        free(old);
        free(np);
    }
    return 0;
}

int vb_lab_svmotion(const char *dir, const char *vm, const char *datastore, bool force)
{
    s_svmotion_t a = {vm, datastore, force};
    return s_edit_object(dir, vm, s_svmotion, &a);
}

typedef struct {
    const char *vm, *who;
} s_access_t;

static int s_prepare(vb_lab_site_t *site, json_t *obj, bool fcd, void *arg)
{
    (void)site;
    (void)fcd;
    const s_access_t *a = arg;
    const char *holder = vb_lab_json_str(obj, "access_blocked_by");
    if (holder && strcmp(holder, a->who) != 0)
        VB_LOG_WARN("lab", "prepare-for-access vm=%s holder=%s replaced-by=%s", a->vm, holder,
                    a->who);
    if (json_object_set_new(obj, "access_blocked_by", json_string(a->who)))
        return vb_error_set(VB_ENOMEM, "out of memory");
    return 0;
}

int vb_lab_prepare_for_access(const char *dir, const char *vm, const char *who)
{
    if (!who || !who[0])
        return vb_error_set(VB_EINVAL, "PrepareForAccess needs the name of who holds the VM");
    s_access_t a = {vm, who};
    return s_edit_object(dir, vm, s_prepare, &a);
}

static int s_end_access(vb_lab_site_t *site, json_t *obj, bool fcd, void *arg)
{
    (void)site;
    (void)fcd;
    (void)arg;
    if (!json_object_get(obj, "access_blocked_by"))
        return S_UNCHANGED;
    json_object_del(obj, "access_blocked_by");
    return 0;
}

int vb_lab_end_access(const char *dir, const char *vm)
{
    return s_edit_object(dir, vm, s_end_access, NULL);
}

static int s_cbt_reset(vb_lab_site_t *site, json_t *obj, bool fcd, void *arg)
{
    (void)arg;
    int rc = 0;
    for (size_t i = 0; i < vb_lab_object_disk_count(obj, fcd) && !rc; i++) {
        json_t *disk = vb_lab_object_disk(obj, fcd, i);
        char *epoch =
            vb_lab_op_epoch(vb_lab_hash_str(0x5eed, vb_lab_json_str(disk, "change_epoch")));
        char *log = vb_lab_disk_cbt_log(site, disk);
        if (!epoch || !log) {
            rc = vb_error_set(VB_ENOMEM, "out of memory");
        } else {
            json_object_set_new(disk, "change_epoch", json_string(epoch));
            json_object_set_new(disk, "change_gen", json_integer(1));
            rc = vb_lab_write_file(log, "", 0644);
        }
        free(epoch);
        free(log);
    }
    return rc;
}

int vb_lab_cbt_reset(const char *dir, const char *vm)
{
    return s_edit_object(dir, vm, s_cbt_reset, NULL);
}

/* ---- QueryChangedDiskAreas */

static int s_parse_change_id(const char *id, char **epoch, long long *gen)
{
    const char *slash = strrchr(id, '/');
    char *end;
    if (!slash)
        return vb_error_set(VB_ENOTFOUND, "change ID \"%s\" is not one this site issued", id);
    errno = 0;
    *gen = strtoll(slash + 1, &end, 10);
    if (errno || *end || end == slash + 1 || *gen < 1)
        return vb_error_set(VB_ENOTFOUND, "change ID \"%s\" is not one this site issued", id);
    *epoch = strndup(id, (size_t)(slash - id));
    return *epoch ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
}

static int s_cmp_extent(const void *a, const void *b)
{
    const vb_extent_t *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Union of log records with since < gen <= upto, clipped to [start, cap), sorted and merged. */
static int s_log_areas(const char *path, long long since, long long upto, uint64_t start,
                       uint64_t cap, vb_extent_list_t *out)
{
    vb_extent_list_t raw = {0};
    int rc = 0;
    FILE *f = fopen(path, "r");
    if (!f && errno != ENOENT)
        return vb_error_set(VB_EIO, "cannot open %s: %s", path, strerror(errno));
    long long g;
    uint64_t off, len;
    while (f && fscanf(f, "%lld %" SCNu64 " %" SCNu64, &g, &off, &len) == 3) {
        if (g <= since || g > upto || off >= cap || off + len <= start)
            continue;
        uint64_t s = off < start ? start : off;
        uint64_t e = off + len > cap ? cap : off + len;
        if (raw.count == raw.capacity) {
            size_t ncap = raw.capacity ? raw.capacity * 2 : 64;
            vb_extent_t *items = realloc(raw.items, ncap * sizeof *items);
            if (!items) {
                rc = vb_error_set(VB_ENOMEM, "out of memory");
                goto out;
            }
            raw.items = items;
            raw.capacity = ncap;
        }
        raw.items[raw.count++] = (vb_extent_t){s, e - s};
    }
    if (f && ferror(f)) {
        rc = vb_error_set(VB_EIO, "cannot read %s", path);
        goto out;
    }
    if (raw.count)
        qsort(raw.items, raw.count, sizeof *raw.items, s_cmp_extent);
    for (size_t i = 0; i < raw.count && !rc; i++) {
        vb_extent_t e = raw.items[i];
        if (out->count > 0) {
            vb_extent_t *last = &out->items[out->count - 1];
            if (e.offset <= last->offset + last->length) {
                uint64_t end = e.offset + e.length;
                if (end > last->offset + last->length)
                    last->length = end - last->offset;
                continue;
            }
        }
        rc = vb_extent_list_add(out, e.offset, e.length);
    }
out:
    if (f)
        fclose(f);
    vb_extent_list_free(&raw);
    return rc;
}

int vb_lab_changed_areas(const char *dir, const char *vm, const char *disk_key,
                         const char *snapshot_id, uint64_t start, const char *change_id,
                         vb_extent_list_t *out, char **new_change_id_out)
{
    vb_lab_site_t *site;
    json_t *obj;
    bool fcd;
    char *at_epoch = NULL, *since_epoch = NULL, *at_id = NULL, *path = NULL;
    long long at_gen = 0, since_gen = 0;
    if (new_change_id_out)
        *new_change_id_out = NULL;
    int rc = s_open_object(dir, vm, false, &site, &obj, &fcd);
    if (rc)
        return rc;
    json_t *disk = vb_lab_object_find_disk(obj, fcd, disk_key);
    if (!disk) {
        rc = vb_error_set(VB_ENOTFOUND, "%s has no disk with key %s", vm, disk_key);
        goto out;
    }
    if (snapshot_id && snapshot_id[0]) {
        json_t *snap = vb_lab_object_find_snapshot(obj, snapshot_id);
        const char *cid =
            snap ? vb_lab_json_str(json_object_get(snap, "change_ids"), disk_key) : NULL;
        if (!cid) {
            rc = vb_error_set(VB_ENOTFOUND, "%s has no snapshot \"%s\" of disk %s", vm, snapshot_id,
                              disk_key);
            goto out;
        }
        at_id = strdup(cid);
        snapshot_id = vb_lab_json_str(snap, "id");
    } else {
        at_id = vb_lab_disk_change_id(disk);
        snapshot_id = NULL;
    }
    if (!at_id) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = s_parse_change_id(at_id, &at_epoch, &at_gen)))
        goto out;
    uint64_t cap = (uint64_t)json_integer_value(json_object_get(disk, "capacity"));
    if (strcmp(change_id, "*") == 0) {
        rc = vb_lab_disk_extents(site, disk, snapshot_id, start, cap, out);
        goto out;
    }
    if ((rc = s_parse_change_id(change_id, &since_epoch, &since_gen)))
        goto out;
    if (strcmp(since_epoch, vb_lab_json_str(disk, "change_epoch")) != 0 ||
        strcmp(at_epoch, since_epoch) != 0) {
        rc = vb_error_set(VB_ENOTFOUND,
                          "change ID \"%s\" of disk %s of %s is unknown (change tracking was "
                          "reset, or the ID is from another disk)",
                          change_id, disk_key, vm);
        goto out;
    }
    if (since_gen > at_gen) {
        rc = vb_error_set(VB_ENOTFOUND, "change ID \"%s\" of %s disk %s is newer than %s",
                          change_id, vm, disk_key, at_id);
        goto out;
    }
    path = vb_lab_disk_cbt_log(site, disk);
    rc = path ? s_log_areas(path, since_gen, at_gen, start, cap, out) : VB_ENOMEM;
out:
    if (!rc && new_change_id_out) {
        *new_change_id_out = at_id;
        at_id = NULL;
    }
    free(at_id);
    free(at_epoch);
    free(since_epoch);
    free(path);
    vb_lab_site_destroy(&site);
    return rc;
}
