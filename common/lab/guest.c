/* guest — lab disks that hold a real guest file system (an MBR partition table and ext4).
 *
 * Built without root from a file tree: sfdisk writes the partition table into the image file,
 * `mke2fs -d` copies the tree into the partition (E2FSPROGS_FAKE_TIME, a fixed UUID and hash
 * seed keep the bytes a function of the seed). Files are changed with `debugfs -w` on a copy of
 * the disk's content; the blocks that differ are then written through the disk's chain and
 * recorded by change tracking, as the lab's other writes are. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
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
#include "lab/row_layers.h"
#include "lab/site.h"

typedef enum { S_DIR, S_TEXT, S_LINK, S_SPARSE, S_RANDOM } s_kind_t;

/* The known tree (README "vbak lab create"): names with spaces and UTF-8, a symlink inside the
 * file system and one that points out of it, a sparse file, a larger file, several modes. */
static const struct {
    const char *path;
    s_kind_t kind;
    unsigned mode;
    const char *text; /* file content, or the symlink's target */
    uint64_t size;    /* S_SPARSE: apparent size; S_RANDOM: bytes */
} s_tree[] = {
    {"etc", S_DIR, 0755, NULL, 0},
    {"etc/hostname", S_TEXT, 0644, "vm-guest\n", 0},
    {"etc/motd", S_TEXT, 0644, "Welcome to the vbak lab guest.\n", 0},
    {"bin", S_DIR, 0755, NULL, 0},
    {"bin/hello.sh", S_TEXT, 0755, "#!/bin/sh\necho hello\n", 0},
    {"home", S_DIR, 0755, NULL, 0},
    {"home/alice", S_DIR, 0750, NULL, 0},
    {"home/alice/notes with spaces.txt", S_TEXT, 0640, "first notes\n", 0},
    {"home/alice/caf\xc3\xa9 \xc3\xbc", S_DIR, 0700, NULL, 0},
    {"home/alice/caf\xc3\xa9 \xc3\xbc/r\xc3\xa9sum\xc3\xa9.txt", S_TEXT, 0600,
     "Gr\xc3\xbc\xc3\x9f"
     "e aus dem Caf\xc3\xa9\n",
     0},
    {"home/alice/motd-link", S_LINK, 0777, "../../etc/motd", 0},
    {"home/alice/escape", S_LINK, 0777, "/etc/shadow", 0},
    {"data", S_DIR, 0755, NULL, 0},
    {"data/sparse.img", S_SPARSE, 0644, NULL, 16u << 20},
    {"data/large.bin", S_RANDOM, 0600, NULL, 5u << 20},
    {"data/setuid-tool", S_TEXT, 04755, "#!/bin/sh\necho tool\n", 0},
    /* a name that is not UTF-8 (Latin-1 "café"), as an older system may have written it */
    {"data/caf\xe9-latin1.txt", S_TEXT, 0644, "Latin-1 name\n", 0},
};

static int s_make_file(const char *p, unsigned mode, const char *text, uint64_t size, s_kind_t kind,
                       uint64_t seed)
{
    int rc = 0;
    unsigned char *buf = NULL;
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return vb_error_set(VB_EIO, "cannot create %s: %s", p, strerror(errno));
    if (kind == S_TEXT) {
        rc = vb_pwrite_full(fd, text, strlen(text), 0);
    } else if (kind == S_SPARSE) { /* 4 KiB of data at 0 and at the middle, holes around */
        char block[4096];
        memset(block, 0x5a, sizeof block);
        rc = vb_pwrite_full(fd, block, sizeof block, 0) ||
             vb_pwrite_full(fd, block, sizeof block, size / 2) || ftruncate(fd, (off_t)size);
    } else if ((buf = malloc(VB_LAB_BLOCK_SIZE))) {
        for (uint64_t off = 0; off < size && !rc; off += VB_LAB_BLOCK_SIZE) {
            vb_lab_fill(vb_lab_hash_u64(seed, off), buf, VB_LAB_BLOCK_SIZE);
            rc = vb_pwrite_full(fd, buf, VB_LAB_BLOCK_SIZE, off);
        }
    } else {
        rc = -1;
    }
    if (rc || fchmod(fd, mode) < 0)
        rc = vb_error_set(VB_EIO, "cannot write %s: %s", p, strerror(errno));
    close(fd);
    free(buf);
    return rc;
}

static int s_make_entry(const char *root, size_t i, uint64_t seed)
{
    char *p = vb_lab_strf("%s/%s", root, s_tree[i].path);
    if (!p)
        return VB_ENOMEM;
    int rc = 0;
    if (s_tree[i].kind == S_DIR) {
        if (mkdir(p, s_tree[i].mode) < 0 || chmod(p, s_tree[i].mode) < 0)
            rc = vb_error_set(VB_EIO, "cannot make %s: %s", p, strerror(errno));
    } else if (s_tree[i].kind == S_LINK) {
        if (symlink(s_tree[i].text, p) < 0)
            rc = vb_error_set(VB_EIO, "cannot make %s: %s", p, strerror(errno));
    } else {
        rc = s_make_file(p, s_tree[i].mode, s_tree[i].text, s_tree[i].size, s_tree[i].kind, seed);
    }
    free(p);
    return rc;
}

/* Every entry gets VB_LAB_GUEST_MTIME; directories last (creating entries moves their times). */
static int s_set_times(const char *root)
{
    const struct timespec ts[2] = {{VB_LAB_GUEST_MTIME, 0}, {VB_LAB_GUEST_MTIME, 0}};
    size_t n = sizeof s_tree / sizeof *s_tree;
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t i = n; i-- > 0;) {
            if ((s_tree[i].kind == S_DIR) != (pass == 1))
                continue;
            char *p = vb_lab_strf("%s/%s", root, s_tree[i].path);
            int r = p ? utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW) : -1;
            free(p);
            if (r < 0)
                return vb_error_set(VB_EIO, "cannot set the time of %s: %s", s_tree[i].path,
                                    strerror(errno));
        }
    }
    return utimensat(AT_FDCWD, root, ts, 0) < 0
               ? vb_error_set(VB_EIO, "cannot set the time of %s: %s", root, strerror(errno))
               : 0;
}

/* sfdisk SCRIPT on the image file (sfdisk reads its script on stdin). */
static int s_partition(const char *img, const char *work, const char *text, const char *log)
{
    char *script = vb_lab_strf("%s/sfdisk.script", work);
    if (!script)
        return VB_ENOMEM;
    int rc = vb_lab_write_file(script, text, 0600);
    const char *argv[] = {"sh", "-c", "exec sfdisk -q \"$1\" < \"$2\"", "sh", img, script, NULL};
    if (!rc)
        rc = vb_lab_run(argv, log);
    free(script);
    return rc;
}

static int s_mkfs(const char *img, const char *tree, uint64_t cap, uint64_t seed, const char *log)
{
    char ext[200], uuid[40], size[32];
    uint64_t h = vb_lab_hash_u64(seed, 1), g = vb_lab_hash_u64(seed, 2);
    snprintf(uuid, sizeof uuid,
             "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-8%03" PRIx64 "-%012" PRIx64, h >> 32,
             (h >> 16) & 0xffff, h & 0xfff, (g >> 52) & 0xfff, (uint64_t)(g & 0xffffffffffffull));
    snprintf(ext, sizeof ext, "offset=%" PRIu64 ",hash_seed=%s,root_owner=0:0",
             (uint64_t)VB_LAB_GUEST_FS_OFFSET, uuid);
    snprintf(size, sizeof size, "%" PRIu64 "k", (cap - VB_LAB_GUEST_FS_OFFSET) / 1024);
    const char *argv[] = {"env",       "E2FSPROGS_FAKE_TIME=1709294400",
                          "mke2fs",    "-q",
                          "-F",        "-t",
                          "ext4",      "-L",
                          "guestroot", "-U",
                          uuid,        "-E",
                          ext,         "-d",
                          tree,        img,
                          size,        NULL};
    return vb_lab_run(argv, log);
}

/* ext4 in an MBR partition: the tree made under work/root, copied in by mke2fs -d. */
static int s_build_ext4(const char *img, const char *work, uint64_t cap, uint64_t seed,
                        const char *log)
{
    char *tree = vb_lab_strf("%s/root", work);
    if (!tree)
        return VB_ENOMEM;
    int rc = mkdir(tree, 0755) < 0
                 ? vb_error_set(VB_EIO, "cannot make %s: %s", tree, strerror(errno))
                 : 0;
    for (size_t i = 0; i < sizeof s_tree / sizeof *s_tree && !rc; i++)
        rc = s_make_entry(tree, i, seed);
    char text[96];
    snprintf(text, sizeof text, "label: dos\nlabel-id: 0x7662616b\nstart=%u, type=83\n",
             (unsigned)(VB_LAB_GUEST_FS_OFFSET / 512));
    if (!rc && !(rc = s_set_times(tree)) && !(rc = s_partition(img, work, text, log)))
        rc = s_mkfs(img, tree, cap, seed, log);
    free(tree);
    return rc;
}

/* The NTFS disk's files (ntfscp copies files into the root; it makes no directories). */
static const struct {
    const char *name, *text;
    uint64_t size; /* text == NULL: this many deterministic random bytes */
} s_ntfs_files[] = {
    {"Read me.txt", "NTFS volume of the vbak lab guest.\r\n", 0},
    {"caf\xc3\xa9 \xc3\xbc.txt",
     "Gr\xc3\xbc\xc3\x9f"
     "e\r\n",
     0},
    {"large.bin", NULL, 1u << 20},
};

/* NTFS in a GPT partition ("Microsoft basic data"): mkntfs makes the file system in a file of
 * the partition's size, ntfscp fills it, dd copies it into the partition keeping holes. */
static int s_build_ntfs(const char *img, const char *work, uint64_t cap, uint64_t seed,
                        const char *log)
{
    uint64_t start = VB_LAB_GUEST_FS_OFFSET / 512, sectors = (cap >> 9) - start - 2048;
    char *fs = vb_lab_strf("%s/ntfs.img", work), *src = vb_lab_strf("%s/src", work);
    char text[160], seek[40], count[24];
    int rc = !fs || !src ? VB_ENOMEM : 0;
    int fd = rc ? -1 : open(fs, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (!rc && (fd < 0 || ftruncate(fd, (off_t)(sectors << 9)) < 0))
        rc = vb_error_set(VB_EIO, "cannot create %s: %s", fs, strerror(errno));
    if (fd >= 0)
        close(fd);
    snprintf(text, sizeof text,
             "label: gpt\nstart=%" PRIu64 ", size=%" PRIu64
             ", type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n",
             start, sectors);
    snprintf(count, sizeof count, "%" PRIu64, start);
    const char *mk[] = {"mkntfs", "-F", "-f", "-q", "-T", "-p", count, "-L", "guestntfs", fs, NULL};
    if (!rc && !(rc = s_partition(img, work, text, log)))
        rc = vb_lab_run(mk, log);
    for (size_t i = 0; i < sizeof s_ntfs_files / sizeof *s_ntfs_files && !rc; i++) {
        s_kind_t kind = s_ntfs_files[i].text ? S_TEXT : S_RANDOM;
        const char *cp[] = {"ntfscp", "-f", fs, src, s_ntfs_files[i].name, NULL};
        if (!(rc = s_make_file(src, 0644, s_ntfs_files[i].text, s_ntfs_files[i].size, kind, seed)))
            rc = vb_lab_run(cp, log);
    }
    snprintf(seek, sizeof seek, "seek=%" PRIu64, start);
    char *in = vb_lab_strf("if=%s", fs), *out = vb_lab_strf("of=%s", img);
    const char *dd[] = {"dd", in ? in : "",          out ? out : "", "bs=512",
                        seek, "conv=sparse,notrunc", "status=none",  NULL};
    if (!rc)
        rc = in && out ? vb_lab_run(dd, log) : VB_ENOMEM;
    free(in), free(out), free(fs), free(src);
    return rc;
}

static const struct {
    const char *fs;
    int (*build)(const char *img, const char *work, uint64_t cap, uint64_t seed, const char *log);
} s_builders[] = {
    {"ext4", s_build_ext4},
    {"ntfs", s_build_ntfs},
};

int vb_lab_guest_image(const char *site_dir, const char *img, const char *fs, uint64_t cap,
                       uint64_t seed)
{
    int rc = VB_ENOMEM;
    size_t b = 0, nb = sizeof s_builders / sizeof *s_builders;
    while (b < nb && strcmp(s_builders[b].fs, fs) != 0)
        b++;
    if (b == nb)
        return vb_error_set(VB_EINVAL, "guest file system \"%s\": the lab makes ext4 or ntfs", fs);
    char *work = vb_lab_strf("%s/log/.guest-XXXXXX", site_dir);
    char *log = vb_lab_strf("%s/log/guest.log", site_dir);
    if (!work || !log)
        goto out;
    if (!mkdtemp(work)) {
        rc = vb_error_set(VB_EIO, "cannot make %s: %s", work, strerror(errno));
        goto out;
    }
    int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    rc = fd < 0 || ftruncate(fd, (off_t)cap) < 0
             ? vb_error_set(VB_EIO, "cannot create %s: %s", img, strerror(errno))
             : 0;
    if (fd >= 0)
        close(fd);
    if (!rc)
        rc = s_builders[b].build(img, work, cap, seed, log);
    const char *rm[] = {"rm", "-rf", work, NULL};
    if (vb_lab_run(rm, NULL) != 0 && !rc)
        rc = vb_error_set(VB_EIO, "cannot remove %s", work);
out:
    if (rc == VB_ENOMEM && !vb_error_msg()[0])
        vb_error_set(rc, "out of memory");
    if (rc)
        vb_error_prefix(rc, "%s guest file system on %s", fs, img);
    free(work);
    free(log);
    return rc;
}

/* ---- changing a file: debugfs on a copy, the differing blocks written through the chain */

static int s_copy_out(const vb_row_chain_t *c, const char *dst, unsigned char *buf)
{
    int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 || ftruncate(fd, (off_t)c->size) < 0 ? -errno : 0;
    uint64_t pos = 0, s, e;
    int more = 0;
    while (!rc && (more = vb_row_next_data(c, c->n, pos, c->size, &s, &e)) == 1) {
        for (uint64_t o = s; o < e && !rc; o += VB_LAB_BLOCK_SIZE) {
            size_t len = e - o < VB_LAB_BLOCK_SIZE ? (size_t)(e - o) : VB_LAB_BLOCK_SIZE;
            rc = vb_row_pread(c, buf, len, o);
            if (!rc && vb_pwrite_full(fd, buf, len, o) != 0)
                rc = -errno;
        }
        pos = e;
    }
    if (!rc && more < 0)
        rc = more;
    if (fd >= 0)
        close(fd);
    return rc < 0 ? vb_error_set(VB_EIO, "cannot copy the disk to %s: %s", dst, strerror(-rc)) : 0;
}

/* Writes the blocks where `edited` differs from the chain; appends them to *written. */
static int s_copy_back(const vb_row_chain_t *c, const char *edited, unsigned char *a,
                       unsigned char *b, vb_extent_list_t *written)
{
    int fd = open(edited, O_RDONLY | O_CLOEXEC), rc = 0;
    if (fd < 0)
        return vb_error_set(VB_EIO, "cannot open %s: %s", edited, strerror(errno));
    for (uint64_t o = 0; o < c->size && !rc; o += VB_LAB_BLOCK_SIZE) {
        size_t len = c->size - o < VB_LAB_BLOCK_SIZE ? (size_t)(c->size - o) : VB_LAB_BLOCK_SIZE;
        int r = vb_pread_full(fd, a, len, o) != 0 ? -EIO : vb_row_pread(c, b, len, o);
        if (!r && memcmp(a, b, len) != 0 && !(r = -vb_lab_test_write_fault()) &&
            !(r = vb_row_pwrite(c, a, len, o)))
            rc = vb_extent_list_add(written, o, len);
        if (r < 0)
            rc = vb_error_set(VB_EIO, "cannot write the disk at %" PRIu64 ": %s", o, strerror(-r));
    }
    close(fd);
    return rc;
}

/* debugfs -w on IMG's file system: PATH replaced by the file SRC. debugfs carries on past a
 * failed command and exits 0, so the result is checked by dumping the file back. */
static int s_debugfs_write(const char *img, const char *work, const char *path, const char *src,
                           const char *log)
{
    char *cmds = vb_lab_strf("%s/cmds", work), *check = vb_lab_strf("%s/check", work);
    char *spec = vb_lab_strf("%s?offset=%u", img, (unsigned)VB_LAB_GUEST_FS_OFFSET);
    char *text = vb_lab_strf("rm \"%s\"\nwrite \"%s\" \"%s\"\ndump \"%s\" \"%s\"\n", path, src,
                             path, path, check);
    int rc = VB_ENOMEM;
    if (!cmds || !check || !spec || !text)
        goto out;
    const char *argv[] = {"debugfs", "-w", "-f", cmds, spec, NULL};
    if ((rc = vb_lab_write_file(cmds, text, 0600)) || (rc = vb_lab_run(argv, log)))
        goto out;
    const char *cmp[] = {"cmp", "-s", src, check, NULL};
    if (vb_lab_run(cmp, NULL) != 0)
        rc = vb_error_set(VB_EIO, "debugfs could not write %s (see %s)", path, log);
out:
    free(cmds), free(check), free(spec), free(text);
    return rc;
}

static int s_write_source(const char *src, const void *data, size_t len)
{
    int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 || vb_pwrite_full(fd, data, len, 0) != 0 || fchmod(fd, 0644) < 0;
    if (fd >= 0)
        close(fd);
    return rc ? vb_error_set(VB_EIO, "cannot write %s: %s", src, strerror(errno)) : 0;
}

static bool s_path_ok(const char *path)
{
    return path[0] == '/' && !strpbrk(path, "\"\n\\") && strlen(path) < 1024;
}

static json_t *s_guest_disk(json_t *obj, bool fcd)
{
    for (size_t i = 0; i < vb_lab_object_disk_count(obj, fcd); i++) {
        json_t *d = vb_lab_object_disk(obj, fcd, i);
        const char *fs = vb_lab_json_str(d, "guest_fs");
        if (fs && strcmp(fs, "ext4") == 0) /* debugfs edits ext4 */
            return d;
    }
    return NULL;
}

/* Edits disk `d` through a copy in `work`; *written gets the blocks that changed. */
static int s_edit_disk(vb_lab_site_t *site, json_t *d, const char *work, const char *path,
                       const void *data, size_t len, vb_extent_list_t *written)
{
    int rc = VB_ENOMEM, dirfd = -1;
    vb_row_chain_t c = {0};
    char *img = vb_lab_disk_image(site, d, NULL), *copy = vb_lab_strf("%s/disk.raw", work);
    char *src = vb_lab_strf("%s/content", work);
    char *log = vb_lab_strf("%s/log/guest.log", vb_lab_site_dir(site));
    unsigned char *a = malloc(VB_LAB_BLOCK_SIZE), *b = malloc(VB_LAB_BLOCK_SIZE);
    char *slash = img ? strrchr(img, '/') : NULL;
    if (!slash || !copy || !src || !log || !a || !b)
        goto out;
    *slash = '\0';
    dirfd = open(img, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = dirfd < 0 ? -errno : vb_row_open(dirfd, slash + 1, true, &c);
    if (r < 0) {
        rc = vb_error_set(VB_EIO, "cannot open %s/%s: %s", img, slash + 1, strerror(-r));
        goto out;
    }
    if (!(rc = s_copy_out(&c, copy, a)) && !(rc = s_write_source(src, data, len)) &&
        !(rc = s_debugfs_write(copy, work, path, src, log)))
        rc = s_copy_back(&c, copy, a, b, written);
    if (!rc && fsync(c.fd[0]) < 0)
        rc = vb_error_set(VB_EIO, "cannot sync the disk: %s", strerror(errno));
out:
    if (rc == VB_ENOMEM && !vb_error_msg()[0])
        vb_error_set(rc, "out of memory");
    vb_row_close(&c);
    if (dirfd >= 0)
        close(dirfd);
    free(img), free(copy), free(src), free(log), free(a), free(b);
    return rc;
}

/* Work directories (log/.guest-*, each with a copy of a disk) that a guest write killed
 * mid-way left: none can be in use, since edits hold the site's write lock. */
static int s_remove_stale_work(vb_lab_site_t *site)
{
    char *log = vb_lab_strf("%s/log", vb_lab_site_dir(site));
    DIR *d = log ? opendir(log) : NULL;
    int rc = log ? 0 : VB_ENOMEM;
    for (struct dirent *e; d && !rc && (e = readdir(d));) {
        if (strncmp(e->d_name, ".guest-", 7) != 0)
            continue;
        char *p = vb_lab_strf("%s/%s", log, e->d_name);
        const char *rm[] = {"rm", "-rf", p, NULL};
        if (!p || vb_lab_run(rm, NULL) != 0)
            rc = vb_error_set(VB_EIO, "cannot remove %s/%s", log, e->d_name);
        free(p);
    }
    if (d)
        closedir(d);
    free(log);
    return rc;
}

int vb_lab_op_guest_write(vb_lab_site_t *site, json_t *obj, bool fcd, const char *path,
                          const void *data, size_t len, vb_lab_changes_t *out)
{
    json_t *d = s_guest_disk(obj, fcd);
    if (!d)
        return vb_error_set(VB_EINVAL, "%s has no disk with an ext4 guest file system",
                            vb_lab_json_str(obj, "name"));
    if (!s_path_ok(path))
        return vb_error_set(VB_EINVAL,
                            "guest path \"%s\" must be absolute, without '\"', '\\' "
                            "or a newline",
                            path);
    int stale = s_remove_stale_work(site);
    if (stale)
        return stale;
    char *work = vb_lab_strf("%s/log/.guest-XXXXXX", vb_lab_site_dir(site));
    if (!work || !mkdtemp(work)) {
        free(work);
        return vb_error_set(VB_EIO, "cannot make a work directory: %s", strerror(errno));
    }
    vb_extent_list_t written = {0};
    long long gen = json_integer_value(json_object_get(d, "change_gen")) + 1;
    int rc = s_edit_disk(site, d, work, path, data, len, &written);
    /* blocks written before a failure count for change tracking too */
    rc = vb_lab_op_commit_writes(site, d, gen, &written, rc);
    const char *rm[] = {"rm", "-rf", work, NULL};
    if (vb_lab_run(rm, NULL) != 0 && !rc)
        rc = vb_error_set(VB_EIO, "cannot remove %s", work);
    free(work);
    if (!rc && out) {
        out->disks = calloc(1, sizeof *out->disks);
        char *key = strdup(vb_lab_json_str(d, "key"));
        if (!out->disks || !key) {
            free(key);
            vb_extent_list_free(&written);
            return vb_error_set(VB_ENOMEM, "out of memory");
        }
        out->disks[0] = (vb_lab_disk_change_t){key, written};
        out->count = 1;
        return 0;
    }
    vb_extent_list_free(&written);
    return rc;
}
