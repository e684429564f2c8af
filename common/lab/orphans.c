/* orphans — disk images on a lab site's datastores that no VM or FCD references.
 *
 * A referenced file is a disk's live image or its image at one of its object's snapshots:
 * DIR/disks/EXPORT[@SNAP] for plain disks, DIR/disks-clear/EXPORT[@SNAP] and
 * DIR/disks-luks/EXPORT[@SNAP] for encrypted ones. Everything else in those directories is a
 * leftover (a failed job, a Storage vMotion that copied and did not clean up, a VM removed from
 * site.json by hand). The walk holds the site lock, exclusively when it removes files, so no lab
 * operation creates or renames an image meanwhile. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lab/lab.h"
#include "lab/lab_util.h"
#include "lab/ops.h"
#include "lab/site.h"
#include "log.h"

static const char *const s_dirs[] = {"disks", "disks-luks", "disks-clear"};

/* Is `file` (a name in DIR/SUB) the image of `disk`, live or at a snapshot of its object? */
static bool s_disk_owns(json_t *disk, json_t *obj, const char *sub, const char *file)
{
    bool enc = json_is_true(json_object_get(disk, "encrypted"));
    if (enc ? strcmp(sub, "disks") == 0 : strcmp(sub, "disks") != 0)
        return false;
    const char *exp = vb_lab_json_str(disk, "export");
    size_t n = strlen(exp);
    if (strncmp(file, exp, n) != 0)
        return false;
    if (file[n] == '\0')
        return true;
    if (file[n] != '@')
        return false;
    size_t i;
    json_t *snap;
    json_array_foreach(json_object_get(obj, "snapshots"), i, snap)
    {
        if (strcmp(vb_lab_json_str(snap, "id"), file + n + 1) == 0)
            return true;
    }
    return false;
}

static bool s_referenced(vb_lab_site_t *site, const char *sub, const char *file)
{
    json_t *root = vb_lab_site_root(site);
    size_t i, j;
    json_t *o, *d;
    json_array_foreach(json_object_get(root, "vms"), i, o)
    {
        json_array_foreach(json_object_get(o, "disks"), j, d)
        {
            if (s_disk_owns(d, o, sub, file))
                return true;
        }
    }
    json_array_foreach(json_object_get(root, "fcds"), i, o)
    {
        if (s_disk_owns(o, o, sub, file))
            return true;
    }
    return false;
}

/* The datastore of the site's disks kept in the same folder ("FOLDER--..."), if any. */
static const char *s_guess_datastore(vb_lab_site_t *site, const char *file)
{
    const char *sep = strstr(file, "--");
    if (!sep)
        return NULL;
    size_t n = (size_t)(sep - file) + 2;
    json_t *root = vb_lab_site_root(site);
    size_t i, j;
    json_t *o, *d;
    json_array_foreach(json_object_get(root, "vms"), i, o)
    {
        json_array_foreach(json_object_get(o, "disks"), j, d)
        {
            if (strncmp(vb_lab_json_str(d, "export"), file, n) == 0)
                return vb_lab_json_str(d, "datastore");
        }
    }
    json_array_foreach(json_object_get(root, "fcds"), i, o)
    {
        if (strncmp(vb_lab_json_str(o, "export"), file, n) == 0)
            return vb_lab_json_str(o, "datastore");
    }
    return NULL;
}

/* Files an operation in progress writes beside the images, and never an orphan. */
static bool s_transient(const char *file)
{
    size_t n = strlen(file);
    return file[0] == '.' || (n > 8 && strcmp(file + n - 8, ".decrypt") == 0) ||
           strstr(file, ".tmp.") != NULL;
}

static int s_add(vb_inv_orphans_t *out, size_t *cap, char *path, const char *ds,
                 const struct stat *st)
{
    if (out->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        vb_inv_orphan_t *items = realloc(out->items, ncap * sizeof *items);
        if (!items) {
            free(path);
            return vb_error_set(VB_ENOMEM, "out of memory");
        }
        out->items = items;
        *cap = ncap;
    }
    vb_inv_orphan_t *o = &out->items[out->count];
    memset(o, 0, sizeof *o);
    o->path = path;
    o->size = (uint64_t)st->st_blocks * 512u;
    o->length = (uint64_t)st->st_size;
    if (ds && !(o->datastore = strdup(ds))) {
        free(path);
        return vb_error_set(VB_ENOMEM, "out of memory");
    }
    out->count++;
    return 0;
}

static int s_scan(vb_lab_site_t *site, const char *sub, bool remove, vb_inv_orphans_t *out,
                  size_t *cap)
{
    char *dpath = vb_lab_strf("%s/%s", vb_lab_site_dir(site), sub);
    if (!dpath)
        return VB_ENOMEM;
    int rc = 0;
    DIR *d = opendir(dpath);
    if (!d) {
        if (errno != ENOENT)
            rc = vb_error_set(VB_EIO, "cannot read %s: %s", dpath, strerror(errno));
        free(dpath);
        return rc;
    }
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        struct stat st;
        if (s_transient(e->d_name) || s_referenced(site, sub, e->d_name))
            continue;
        char *path = vb_lab_strf("%s/%s", dpath, e->d_name);
        if (!path) {
            rc = VB_ENOMEM;
            break;
        }
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if ((rc = s_add(out, cap, path, s_guess_datastore(site, e->d_name), &st)))
            break;
        if (remove) {
            if (unlink(path) < 0) {
                rc = vb_error_set(VB_EIO, "cannot remove %s: %s", path, strerror(errno));
                break;
            }
            out->items[out->count - 1].removed = true;
            VB_LOG_INFO("lab", "orphan-removed path=\"%s\"", path);
        }
    }
    closedir(d);
    free(dpath);
    return rc;
}

/* Is `file` what an interrupted lab operation left: a temporary file, or the image of a disk
 * that is still on the site at a snapshot that its object does not have (a snapshot create
 * killed before the site was saved, or a removal killed before its images were unlinked)? */
static bool s_interrupted_leftover(vb_lab_site_t *site, const char *sub, const char *file)
{
    if (s_transient(file))
        return file[0] != '.' || strstr(file, ".tmp.") != NULL;
    const char *at = strrchr(file, '@');
    if (!at || at == file || s_referenced(site, sub, file))
        return false;
    char *live = strndup(file, (size_t)(at - file));
    bool leftover = live && s_referenced(site, sub, live);
    free(live);
    return leftover;
}

static int s_sweep_dir(vb_lab_site_t *site, const char *sub)
{
    char *dpath = vb_lab_strf("%s/%s", vb_lab_site_dir(site), sub);
    if (!dpath)
        return VB_ENOMEM;
    DIR *d = opendir(dpath);
    if (!d) {
        int rc = errno == ENOENT ? 0 : vb_error_set(VB_EIO, "cannot read %s: %s", dpath,
                                                    strerror(errno));
        free(dpath);
        return rc;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            !s_interrupted_leftover(site, sub, e->d_name))
            continue;
        char *path = vb_lab_strf("%s/%s", dpath, e->d_name);
        if (path && unlink(path) == 0)
            VB_LOG_WARN("lab", "interrupted_leftover_removed path=\"%s\"", path);
        free(path);
    }
    closedir(d);
    free(dpath);
    return 0;
}

int vb_lab_sweep_interrupted(vb_lab_site_t *site)
{
    int rc = vb_lab_row_replay(site);
    for (size_t i = 0; i < sizeof s_dirs / sizeof *s_dirs && !rc; i++)
        rc = s_sweep_dir(site, s_dirs[i]);
    return rc;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(((const vb_inv_orphan_t *)a)->path, ((const vb_inv_orphan_t *)b)->path);
}

int vb_lab_orphans(const char *dir, bool remove, vb_inv_orphans_t *out)
{
    *out = (vb_inv_orphans_t){0};
    vb_lab_site_t *site = NULL;
    int rc = vb_lab_site_open(dir, remove, &site);
    if (rc)
        return rc;
    size_t cap = 0;
    for (size_t i = 0; i < sizeof s_dirs / sizeof *s_dirs && !rc; i++)
        rc = s_scan(site, s_dirs[i], remove, out, &cap);
    if (rc) {
        /* What was removed already stays removed: say so rather than forget it. */
        if (remove && out->count)
            vb_error_prefix(rc, "orphans (%zu file(s) handled before the failure)", out->count);
        vb_inv_orphans_free(out);
    } else if (out->count > 1) {
        qsort(out->items, out->count, sizeof *out->items, s_cmp);
    }
    vb_lab_site_destroy(&site);
    return rc;
}
