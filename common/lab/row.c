/* row — redirect-on-write snapshots of the lab's plain disks, shaped like VMware's.
 *
 * Files of disk EXPORT in DIR/disks (row_layers.h for the chain format):
 *   EXPORT            the live disk: raw while the disk has no snapshot, else a delta over the
 *                     newest snapshot (the blocks written since)
 *   EXPORT@NEWEST     the newest snapshot: a raw file, the frozen base (the file route reads it
 *                     at full file speed)
 *   EXPORT@OLDER      an older snapshot: a delta over the next newer one (where they differ)
 *
 * Costs: the first snapshot is two renames and an empty sparse file; a snapshot over one moves
 * the blocks written since the previous one; removing the only snapshot consolidates the blocks
 * written since into the base; removing one of a chain moves what it and its neighbour changed.
 * Nothing is O(disk).
 *
 * Crash safety: an operation first writes what it adds as ".tmp." files and a journal
 * DIR/disks/.EXPORT.journal naming the snapshot and the steps (apply a delta into a file, rename,
 * unlink), each guarded so that running it again is harmless. The site.json save that adds or
 * drops the snapshot is the commit point; vb_lab_row_replay (part of vb_lab_sweep_interrupted)
 * then runs the steps, and after a crash runs them again when the save happened, or drops the
 * journal and its temporary files when it did not. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "lab/lab_util.h"
#include "lab/ops.h"
#include "lab/row_layers.h"
#include "lab/site.h"
#include "log.h"

enum { S_COPY_CHUNK = 1 << 20 };

static char *s_path(vb_lab_site_t *site, const char *name)
{
    return vb_lab_strf("%s/disks/%s", vb_lab_site_dir(site), name);
}

static bool s_exists(vb_lab_site_t *site, const char *name)
{
    char *p = s_path(site, name);
    bool e = p && access(p, F_OK) == 0;
    free(p);
    return e;
}

/* The parent of file `name` ("" when raw or absent) into buf. */
static int s_parent_of(vb_lab_site_t *site, const char *name, char *buf, size_t size)
{
    buf[0] = '\0';
    char *p = s_path(site, name);
    if (!p)
        return VB_ENOMEM;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    int r = fd < 0 ? (errno == ENOENT ? 0 : -errno) : vb_row_parent(fd, buf, size);
    if (fd >= 0)
        close(fd);
    free(p);
    if (r < 0)
        return vb_error_set(VB_EIO, "lab disk %s: cannot read its parent: %s", name, strerror(-r));
    if (r == 0)
        buf[0] = '\0';
    return 0;
}

/* Test hook: VB_LAB_FAULT_UNITS=N ends the process after N units of work of a snapshot
 * operation's steps (a step, or a copied extent), as a kill would. */
static long s_fault_units = -1;

static void s_unit_done(void)
{
    if (s_fault_units > 0 && --s_fault_units == 0)
        _exit(86);
}

static int s_copy(int in, int out, uint64_t off, uint64_t len, unsigned char *buf, const char *what)
{
    while (len > 0) {
        size_t n = len < S_COPY_CHUNK ? (size_t)len : S_COPY_CHUNK;
        if (vb_pread_full(in, buf, n, (off_t)off) != 0 || vb_pwrite_full(out, buf, n, (off_t)off))
            return vb_error_set(VB_EIO, "lab disk %s: copy at %llu: %s", what,
                                (unsigned long long)off, strerror(errno));
        off += n;
        len -= n;
    }
    return 0;
}

/* Copies, for each data extent of file `pos`, the bytes of `src` there into `dst` (open), only
 * where `dst` has no data yet when `holes_only`. */
static int s_fill(vb_lab_site_t *site, const char *pos, const char *src, int dst, bool holes_only,
                  const char *what)
{
    char *pos_p = s_path(site, pos), *src_p = s_path(site, src);
    unsigned char *buf = malloc(S_COPY_CHUNK);
    vb_extent_list_t ext = {0};
    int in = -1, rc = 0;
    struct stat st;
    if (!pos_p || !src_p || !buf) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    if ((in = open(src_p, O_RDONLY | O_CLOEXEC)) < 0 || fstat(in, &st) < 0) {
        rc = vb_error_set(VB_EIO, "cannot open %s: %s", src_p, strerror(errno));
        goto out;
    }
    if ((rc = vb_lab_file_extents(pos_p, 0, (uint64_t)st.st_size, &ext)))
        goto out;
    for (size_t i = 0; i < ext.count && !rc; i++) {
        uint64_t a = ext.items[i].offset, b = a + ext.items[i].length;
        while (a < b && !rc) {
            /* the next stretch of [a, b) where dst has no data (all of it unless holes_only) */
            off_t h = holes_only ? lseek(dst, (off_t)a, SEEK_HOLE) : (off_t)a;
            uint64_t hs = h < 0 || (uint64_t)h > b ? b : (uint64_t)h;
            off_t d = holes_only ? lseek(dst, (off_t)hs, SEEK_DATA) : (off_t)b;
            uint64_t he = d < 0 || (uint64_t)d > b ? b : (uint64_t)d;
            if (he > hs)
                rc = s_copy(in, dst, hs, he - hs, buf, what);
            a = he > hs ? he : b;
        }
        s_unit_done();
    }
out:
    if (in >= 0)
        close(in);
    vb_extent_list_free(&ext);
    free(buf);
    free(pos_p);
    free(src_p);
    return rc;
}

/* Builds temporary delta `tmp` over `parent`: a copy of `from`'s own blocks (an empty file when
 * NULL), then `src`'s bytes where `pos` has data and the copy has none. */
static int s_build(vb_lab_site_t *site, const char *tmp, const char *from, const char *pos,
                   const char *src, const char *parent, uint64_t cap)
{
    char *tp = s_path(site, tmp), *fp = from ? s_path(site, from) : NULL;
    int fd = -1, rc = 0;
    if (!tp || (from && !fp)) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    if (from && (rc = vb_lab_copy_sparse(fp, tp)))
        goto out;
    fd = open(tp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || (!from && ftruncate(fd, (off_t)cap) < 0)) {
        rc = vb_error_set(VB_EIO, "cannot create %s: %s", tp, strerror(errno));
        goto out;
    }
    int r = vb_row_set_parent(fd, parent);
    if (r < 0) {
        rc = vb_error_set(VB_EIO, "cannot mark %s as a delta: %s", tp, strerror(-r));
        goto out;
    }
    if (pos && (rc = s_fill(site, pos, src, fd, true, tmp)))
        goto out;
    if (fsync(fd) < 0)
        rc = vb_error_set(VB_EIO, "cannot sync %s: %s", tp, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (rc && tp)
        unlink(tp);
    free(tp);
    free(fp);
    return rc;
}

static int s_step(json_t *steps, const char *op, const char *a, const char *b, const char *unless)
{
    json_t *s =
        unless ? json_pack("[s,s,s,s]", op, a, b, unless) : json_pack("[s,s,s]", op, a, b ? b : "");
    if (!s || json_array_append_new(steps, s))
        return vb_error_set(VB_ENOMEM, "out of memory");
    return 0;
}

static char *s_journal_path(vb_lab_site_t *site, const char *export)
{
    return vb_lab_strf("%s/disks/.%s.journal", vb_lab_site_dir(site), export);
}

/* Writes the journal: steps to run once site.json has (present) or has not the snapshot. */
static int s_journal(vb_lab_site_t *site, json_t *disk, const char *id, bool present, json_t *steps)
{
    char *path = s_journal_path(site, vb_lab_json_str(disk, "export"));
    json_t *j = json_pack("{s:s, s:b, s:O}", "snapshot", id, "present", present, "steps", steps);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int rc = (!path || !text) ? vb_error_set(VB_ENOMEM, "out of memory")
                              : vb_lab_write_file(path, text, 0644);
    free(path);
    free(text);
    json_decref(j);
    return rc;
}

int vb_lab_row_snapshot_create(vb_lab_site_t *site, json_t *disk, const char *id)
{
    const char *e = vb_lab_json_str(disk, "export");
    uint64_t cap = (uint64_t)json_integer_value(json_object_get(disk, "capacity"));
    char parent[256], pp[256];
    char *snap = vb_lab_strf("%s@%s", e, id), *tmp_live = vb_lab_strf("%s.tmp.live", e);
    char *tmp_r = NULL;
    json_t *steps = json_array();
    int rc = (!snap || !tmp_live || !steps) ? vb_error_set(VB_ENOMEM, "out of memory") : 0;
    if (rc || (rc = s_parent_of(site, e, parent, sizeof parent)) ||
        (rc = s_build(site, tmp_live, NULL, NULL, NULL, snap, cap)))
        goto out;
    if (!parent[0]) { /* the first snapshot: the live image becomes the frozen base */
        rc = s_step(steps, "move", e, snap, NULL);
    } else {
        /* a snapshot over one: the base takes the live delta's blocks and becomes the new
         * snapshot; the previous snapshot keeps the base's old blocks there as a delta */
        if ((rc = s_parent_of(site, parent, pp, sizeof pp)))
            goto out;
        if (pp[0]) {
            rc =
                vb_error_set(VB_ECORRUPT, "lab disk %s: its base %s is not a raw image", e, parent);
            goto out;
        }
        if (!(tmp_r = vb_lab_strf("%s.tmp.rebase", parent))) {
            rc = VB_ENOMEM;
            goto out;
        }
        if ((rc = s_build(site, tmp_r, NULL, e, parent, snap, cap)) ||
            (rc = s_step(steps, "apply", e, parent, snap)) ||
            (rc = s_step(steps, "move", parent, snap, NULL)) ||
            (rc = s_step(steps, "replace", tmp_r, parent, NULL)))
            goto out;
    }
    if (!rc && !(rc = s_step(steps, "replace", tmp_live, e, NULL)))
        rc = s_journal(site, disk, id, true, steps);
out:
    free(snap);
    free(tmp_live);
    free(tmp_r);
    json_decref(steps);
    return rc;
}

/* A snapshot file that cannot be written (locked, immutable) cannot be consolidated or
 * deleted: refused before anything is committed, so the snapshot stays, as on ESXi. */
static int s_writable(vb_lab_site_t *site, const char *name)
{
    char *p = s_path(site, name);
    if (!p)
        return vb_error_set(VB_ENOMEM, "out of memory");
    int fd = open(p, O_WRONLY | O_CLOEXEC), rc = 0;
    if (fd >= 0)
        close(fd);
    else if (errno != ENOENT)
        rc = vb_error_set(VB_EBUSY, "consolidating %s: %s", p, strerror(errno));
    free(p);
    return rc;
}

/* The files of the disk whose parent is `name`: the live one and its object's snapshots'. */
static int s_children(vb_lab_site_t *site, json_t *obj, const char *e, const char *name,
                      json_t *out)
{
    char parent[256];
    json_t *snaps = json_object_get(obj, "snapshots");
    for (size_t i = 0; i <= json_array_size(snaps); i++) {
        char *f = i < json_array_size(snaps)
                      ? vb_lab_strf("%s@%s", e, vb_lab_json_str(json_array_get(snaps, i), "id"))
                      : strdup(e);
        int rc = f ? s_parent_of(site, f, parent, sizeof parent) : VB_ENOMEM;
        if (!rc && strcmp(parent, name) == 0 && json_array_append_new(out, json_string(f)))
            rc = VB_ENOMEM;
        free(f);
        if (rc)
            return rc == VB_ENOMEM ? vb_error_set(rc, "out of memory") : rc;
    }
    return 0;
}

/* Each child in `kids` but `skip` is rebuilt as a delta over `parent` holding, besides its own
 * blocks, `src`'s bytes where `pos` has data. */
static int s_rebase(vb_lab_site_t *site, json_t *kids, const char *skip, const char *pos,
                    const char *src, const char *parent, uint64_t cap, json_t *steps)
{
    size_t i;
    json_t *k;
    json_array_foreach(kids, i, k)
    {
        const char *c = json_string_value(k);
        if (skip && strcmp(c, skip) == 0)
            continue;
        char *tmp = vb_lab_strf("%s.tmp.rebase", c);
        int rc = tmp ? s_build(site, tmp, c, pos, src, parent, cap) : VB_ENOMEM;
        if (!rc)
            rc = s_step(steps, "replace", tmp, c, NULL);
        free(tmp);
        if (rc)
            return rc;
    }
    return 0;
}

int vb_lab_row_snapshot_remove(vb_lab_site_t *site, json_t *obj, json_t *disk, const char *id)
{
    const char *e = vb_lab_json_str(disk, "export");
    uint64_t cap = (uint64_t)json_integer_value(json_object_get(disk, "capacity"));
    char px[256];
    char *x = vb_lab_strf("%s@%s", e, id);
    json_t *kids = json_array(), *steps = json_array();
    int rc = (!x || !kids || !steps) ? vb_error_set(VB_ENOMEM, "out of memory") : 0;
    if (rc || (rc = s_writable(site, x)) || (rc = s_parent_of(site, x, px, sizeof px)) ||
        (rc = s_children(site, obj, e, x, kids)))
        goto out;
    if (px[0]) {
        /* a delta: its children take its blocks where they have none, and its parent */
        rc = s_rebase(site, kids, NULL, x, x, px, cap, steps);
    } else if (json_array_size(kids) > 0) {
        /* the base: one child (an older snapshot, else the live disk) is consolidated into it
         * and takes its place; the other children take the base's old blocks where that child
         * had its own */
        const char *y = json_string_value(json_array_get(kids, 0));
        for (size_t i = 0; i < json_array_size(kids); i++)
            if (strchr(json_string_value(json_array_get(kids, i)), '@'))
                y = json_string_value(json_array_get(kids, i));
        if (!(rc = s_rebase(site, kids, y, y, x, y, cap, steps))) {
            json_t *moves = steps;
            steps = json_array();
            if (!steps || s_step(steps, "apply", y, x, NULL) ||
                s_step(steps, "replace", x, y, NULL) || json_array_extend(steps, moves))
                rc = vb_error_set(VB_ENOMEM, "out of memory");
            json_decref(moves);
        }
    }
    if (!rc && !(rc = s_step(steps, "unlink", x, NULL, NULL)))
        rc = s_journal(site, disk, id, false, steps);
out:
    free(x);
    json_decref(kids);
    json_decref(steps);
    return rc;
}

/* ---- running a journal */

static int s_apply(vb_lab_site_t *site, const char *from, const char *into)
{
    char *ip = s_path(site, into);
    int fd = ip ? open(ip, O_WRONLY | O_CLOEXEC) : -1;
    int rc = 0;
    if (fd < 0)
        rc = ip ? vb_error_set(VB_EIO, "cannot open %s: %s", ip, strerror(errno)) : VB_ENOMEM;
    else if (!(rc = s_fill(site, from, from, fd, false, into)) && fsync(fd) < 0)
        rc = vb_error_set(VB_EIO, "cannot sync %s: %s", ip, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(ip);
    return rc;
}

static int s_rename(vb_lab_site_t *site, const char *from, const char *to)
{
    char *f = s_path(site, from), *t = s_path(site, to);
    int rc = (!f || !t) ? VB_ENOMEM : 0;
    if (!rc && rename(f, t) < 0)
        rc = vb_error_set(VB_EIO, "cannot rename %s: %s", f, strerror(errno));
    free(f);
    free(t);
    return rc;
}

static int s_run_step(vb_lab_site_t *site, json_t *s)
{
    const char *op = json_string_value(json_array_get(s, 0));
    const char *a = json_string_value(json_array_get(s, 1));
    const char *b = json_string_value(json_array_get(s, 2));
    const char *unless = json_string_value(json_array_get(s, 3));
    if (!op || !a || !b)
        return vb_error_set(VB_ECORRUPT, "lab journal: bad step");
    if (!s_exists(site, a) || (unless && s_exists(site, unless)))
        return 0;
    if (strcmp(op, "apply") == 0)
        return s_exists(site, b) ? s_apply(site, a, b) : 0;
    if (strcmp(op, "move") == 0)
        return s_exists(site, b) ? 0 : s_rename(site, a, b);
    if (strcmp(op, "replace") == 0)
        return s_rename(site, a, b);
    if (strcmp(op, "unlink") == 0) {
        char *p = s_path(site, a);
        int rc = p && unlink(p) < 0 && errno != ENOENT
                     ? vb_error_set(VB_EIO, "cannot remove %s: %s", p, strerror(errno))
                     : 0;
        free(p);
        return p ? rc : VB_ENOMEM;
    }
    return vb_error_set(VB_ECORRUPT, "lab journal: unknown step \"%s\"", op);
}

/* The VM or FCD of document `root` that has a disk exported as `export`, and that disk. */
static json_t *s_owner(json_t *root, const char *export, json_t **disk)
{
    const char *lists[] = {"vms", "fcds"};
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(root, lists[l]), i, o)
        {
            for (size_t k = 0; k < vb_lab_object_disk_count(o, l == 1); k++) {
                json_t *d = vb_lab_object_disk(o, l == 1, k);
                if (strcmp(vb_lab_json_str(d, "export"), export) == 0) {
                    *disk = d;
                    return o;
                }
            }
        }
    }
    return NULL;
}

/* Runs (committed in `root`) or drops (not committed) the journal in DIR/disks/NAME. */
static int s_replay_one(vb_lab_site_t *site, json_t *root, const char *name)
{
    char *path = s_path(site, name);
    char *export = strndup(name + 1, strlen(name) - 1 - strlen(".journal"));
    json_error_t jerr;
    json_t *j = path ? json_load_file(path, 0, &jerr) : NULL, *disk = NULL;
    int rc = 0;
    if (!path || !export) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    json_t *obj = j ? s_owner(root, export, &disk) : NULL;
    const char *id = j ? vb_lab_json_str(j, "snapshot") : NULL;
    bool committed = obj && id &&
                     (vb_lab_object_find_snapshot(obj, id) != NULL) ==
                         json_is_true(json_object_get(j, "present"));
    size_t i;
    json_t *s;
    if (committed) {
        const char *fault = getenv("VB_LAB_FAULT_UNITS");
        s_fault_units = fault ? strtol(fault, NULL, 10) : -1;
        json_array_foreach(json_object_get(j, "steps"), i, s)
        {
            if ((rc = s_run_step(site, s)))
                goto out;
            s_unit_done();
        }
    } else {
        VB_LOG_WARN("lab", "snapshot-operation-dropped journal=\"%s\"", path);
    }
    /* what the steps did not rename away is a temporary file the sweep removes next */
    if (unlink(path) < 0)
        rc = vb_error_set(VB_EIO, "cannot remove %s: %s", path, strerror(errno));
out:
    if (rc)
        vb_error_prefix(rc, "lab journal %s", name);
    json_decref(j);
    free(path);
    free(export);
    return rc;
}

/* The commit point is the saved site.json: what it says, not the document in memory (a caller
 * whose save failed holds an edit that did not happen). A site being created has no saved
 * site.json yet: its document in memory is all there is. */
static json_t *s_committed_root(vb_lab_site_t *site)
{
    char *path = vb_lab_strf("%s/site.json", vb_lab_site_dir(site));
    json_error_t jerr;
    json_t *saved = path && access(path, F_OK) == 0 ? json_load_file(path, 0, &jerr) : NULL;
    if (!saved && path && access(path, F_OK) != 0)
        saved = json_incref(vb_lab_site_root(site));
    free(path);
    return saved;
}

int vb_lab_row_replay(vb_lab_site_t *site)
{
    char *dpath = vb_lab_strf("%s/disks", vb_lab_site_dir(site));
    DIR *d = dpath ? opendir(dpath) : NULL;
    json_t *root = NULL;
    int rc = 0;
    if (!d) {
        rc = !dpath            ? VB_ENOMEM
             : errno == ENOENT ? 0
                               : vb_error_set(VB_EIO, "cannot read %s: %s", dpath, strerror(errno));
        free(dpath);
        return rc;
    }
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] != '.' || n <= 9 || strcmp(e->d_name + n - 8, ".journal") != 0)
            continue;
        if (!root && !(root = s_committed_root(site)))
            rc = vb_error_set(VB_EIO, "%s/site.json: cannot read it", vb_lab_site_dir(site));
        else
            rc = s_replay_one(site, root, e->d_name);
    }
    json_decref(root);
    closedir(d);
    free(dpath);
    return rc;
}

int vb_lab_disk_extents(vb_lab_site_t *site, json_t *disk, const char *snapshot_id, uint64_t start,
                        uint64_t limit, vb_extent_list_t *out)
{
    char *path = vb_lab_disk_image(site, disk, snapshot_id);
    char *slash = path ? strrchr(path, '/') : NULL;
    if (!slash) {
        free(path);
        return vb_error_set(VB_ENOMEM, "out of memory");
    }
    *slash = '\0';
    int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
    vb_row_chain_t c = {0};
    int r = dirfd < 0 ? -errno : vb_row_open(dirfd, slash + 1, false, &c);
    if (r < 0) {
        rc = vb_error_set(r == -ENOENT ? VB_ENOTFOUND : VB_EIO, "cannot open %s/%s: %s", path,
                          slash + 1, strerror(-r));
        goto out;
    }
    for (uint64_t pos = start, s, e; pos < limit && !rc; pos = e) {
        if ((r = vb_row_next_data(&c, c.n, pos, limit, &s, &e)) <= 0) {
            if (r < 0)
                rc = vb_error_set(VB_EIO, "allocation of %s/%s: %s", path, slash + 1, strerror(-r));
            break;
        }
        rc = vb_extent_list_add(out, s, e - s);
    }
out:
    vb_row_close(&c);
    if (dirfd >= 0)
        close(dirfd);
    free(path);
    return rc;
}

/* Copies chain `c`'s content to `out`, data extents only. */
static int s_copy_chain(const vb_row_chain_t *c, int out, const char *dst)
{
    unsigned char *buf = malloc(S_COPY_CHUNK);
    int rc = buf ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
    uint64_t pos = 0, s, e;
    while (!rc && pos < c->size) {
        int r = vb_row_next_data(c, c->n, pos, c->size, &s, &e);
        if (r <= 0) {
            if (r < 0)
                rc = vb_error_set(VB_EIO, "allocation map: %s", strerror(-r));
            break;
        }
        for (pos = s; !rc && pos < e;) {
            size_t n = e - pos < S_COPY_CHUNK ? (size_t)(e - pos) : S_COPY_CHUNK;
            if ((r = vb_row_pread(c, buf, n, pos)) < 0)
                rc =
                    vb_error_set(VB_EIO, "read at %llu: %s", (unsigned long long)pos, strerror(-r));
            else if (vb_pwrite_full(out, buf, n, pos) != 0)
                rc = vb_error_set(VB_EIO, "cannot write %s: %s", dst, strerror(errno));
            pos += n;
        }
    }
    free(buf);
    return rc;
}

int vb_lab_disk_copy(const char *dir, const char *vm, const char *disk_key, const char *snapshot_id,
                     const char *dst)
{
    vb_lab_site_t *site;
    bool fcd;
    int rc = vb_lab_site_open(dir, false, &site), out = -1, dirfd = -1;
    if (rc)
        return rc;
    vb_row_chain_t c = {0};
    char *path = NULL;
    json_t *obj = vb_lab_site_find_object(site, vm, &fcd);
    json_t *disk = obj ? vb_lab_object_find_disk(obj, fcd, disk_key) : NULL;
    json_t *snap = obj && snapshot_id ? vb_lab_object_find_snapshot(obj, snapshot_id) : NULL;
    if (!disk || (snapshot_id && !snap)) {
        rc = vb_error_set(VB_ENOTFOUND, "no %s %s in the lab site",
                          !obj    ? "VM or FCD"
                          : !disk ? "disk"
                                  : "snapshot",
                          !obj    ? vm
                          : !disk ? disk_key
                                  : snapshot_id);
        goto out;
    }
    path = vb_lab_disk_image(site, disk, snap ? vb_lab_json_str(snap, "id") : NULL);
    char *slash = path ? strrchr(path, '/') : NULL;
    if (!slash) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    *slash = '\0';
    dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = dirfd < 0 ? -errno : vb_row_open(dirfd, slash + 1, false, &c);
    if (r < 0) {
        rc = vb_error_set(VB_EIO, "cannot open %s/%s: %s", path, slash + 1, strerror(-r));
        goto out;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0 || ftruncate(out, (off_t)c.size) < 0) {
        rc = vb_error_set(VB_EIO, "cannot create %s: %s", dst, strerror(errno));
        goto out;
    }
    rc = s_copy_chain(&c, out, dst);
out:
    if (out >= 0)
        close(out);
    if (dirfd >= 0)
        close(dirfd);
    vb_row_close(&c);
    free(path);
    vb_lab_site_destroy(&site);
    return rc;
}
