/* vmcreate — a new, empty VM on a lab site (a restore to a new VM creates one).
 *
 * The disks are registered exactly as the generator registers its own (vb_lab_op_disk_new), so
 * a new VM is served, tracked, snapshotted and backed up like any generated one. Its images are
 * sparse files of the disks' capacities: they read as zeros until written. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lab/lab.h"
#include "lab/lab_util.h"
#include "lab/ops.h"
#include "lab/site.h"

#define S_MAX_DISKS 64

static int s_check_vm_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 80 || name[0] == '.' || name[0] == '-' || strchr(name, '/') ||
        strchr(name, '@') || strstr(name, "--"))
        return vb_error_set(VB_EINVAL,
                            "VM name \"%s\" is not usable: 1..80 characters, no '/', '@' or "
                            "\"--\", not starting with '.' or '-'",
                            name ? name : "");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return vb_error_set(VB_EINVAL, "VM name \"%s\" holds a control character", name);
    return 0;
}

/* The host the VM runs on: `host` when it mounts the datastore, else the first that does. */
static int s_pick_host(vb_lab_site_t *site, json_t *ds, const char *host, const char **out)
{
    const char *dsname = vb_lab_json_str(ds, "name");
    if (host) {
        bool known = false;
        size_t i;
        json_t *h;
        json_array_foreach(json_object_get(vb_lab_site_root(site), "hosts"), i, h)
        {
            known |= strcmp(vb_lab_json_str(h, "name"), host) == 0;
        }
        if (!known)
            return vb_error_set(VB_ENOTFOUND, "no host named \"%s\" in the lab site", host);
        if (!vb_lab_datastore_mounted_on(ds, host))
            return vb_error_set(VB_EPOLICY, "host %s does not mount datastore %s", host, dsname);
        *out = host;
        return 0;
    }
    json_t *first = json_array_get(json_object_get(ds, "hosts"), 0);
    if (!json_is_string(first))
        return vb_error_set(VB_EPOLICY, "no host mounts datastore %s", dsname);
    *out = json_string_value(first);
    return 0;
}

/* "vm-N" one past the largest N among the site's VM ids. */
static char *s_next_id(vb_lab_site_t *site)
{
    long long max = 100;
    size_t i;
    json_t *vm;
    json_array_foreach(json_object_get(vb_lab_site_root(site), "vms"), i, vm)
    {
        const char *id = vb_lab_json_str(vm, "id");
        char *end = NULL;
        if (!id || strncmp(id, "vm-", 3) != 0)
            continue;
        errno = 0;
        long long v = strtoll(id + 3, &end, 10);
        if (!errno && end && !*end && v > max)
            max = v;
    }
    return vb_lab_strf("vm-%lld", max + 1);
}

/* Is `exp` an export of any disk of the site? */
static bool s_export_taken(vb_lab_site_t *site, const char *exp)
{
    json_t *root = vb_lab_site_root(site);
    size_t i, j;
    json_t *o, *d;
    json_array_foreach(json_object_get(root, "vms"), i, o)
    {
        json_array_foreach(json_object_get(o, "disks"), j, d)
        {
            if (strcmp(vb_lab_json_str(d, "export"), exp) == 0)
                return true;
        }
    }
    json_array_foreach(json_object_get(root, "fcds"), i, o)
    {
        if (strcmp(vb_lab_json_str(o, "export"), exp) == 0)
            return true;
    }
    return false;
}

static int s_check_disks(const vb_inv_new_disk_t *disks, size_t n)
{
    if (n == 0 || n > S_MAX_DISKS)
        return vb_error_set(VB_EINVAL, "a new VM needs 1..%d disks, not %zu", S_MAX_DISKS, n);
    for (size_t i = 0; i < n; i++) {
        const char *key = disks[i].key;
        if (disks[i].capacity == 0 || disks[i].capacity % 512 != 0 ||
            disks[i].capacity > (uint64_t)INT64_MAX)
            return vb_error_set(VB_EINVAL,
                                "disk %zu: capacity %llu is not a positive multiple of 512", i + 1,
                                (unsigned long long)disks[i].capacity);
        if (key && (!key[0] || strchr(key, '/') || strchr(key, '@')))
            return vb_error_set(VB_EINVAL, "disk %zu: key \"%s\" is not usable", i + 1, key);
        for (size_t k = 0; key && k < i; k++)
            if (disks[k].key && strcmp(disks[k].key, key) == 0)
                return vb_error_set(VB_EINVAL, "disk key \"%s\" is given twice", key);
    }
    return 0;
}

/* Creates the empty sparse image of one new disk; VB_EEXISTS when the file is there already. */
static int s_create_image(const char *path, uint64_t cap)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return vb_error_set(errno == EEXIST ? VB_EEXISTS : VB_EIO,
                            errno == EEXIST ? "%s exists already (a leftover disk? see vbak "
                                              "orphans)"
                                            : "cannot create %s: %s",
                            path, strerror(errno));
    int rc = 0;
    if (ftruncate(fd, (off_t)cap) < 0 || fsync(fd) < 0)
        rc = vb_error_set(VB_EIO, "cannot size %s: %s", path, strerror(errno));
    close(fd);
    if (rc)
        unlink(path);
    return rc;
}

/* Builds the disks' entries, creates their images and empty change logs. `made` counts the
 * images created (the caller removes them on failure). */
static int s_add_disks(vb_lab_site_t *site, const char *name, const char *ds,
                       const vb_inv_new_disk_t *disks, size_t n, json_t *arr, char **made)
{
    uint64_t seed = (uint64_t)json_integer_value(json_object_get(vb_lab_site_root(site), "seed"));
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char key[24], dname[32];
        char *stem = i == 0 ? vb_lab_strf("%s", name) : vb_lab_strf("%s_%zu", name, i);
        snprintf(key, sizeof key, "%zu", 2000 + i);
        snprintf(dname, sizeof dname, "Hard disk %zu", i + 1);
        json_t *d = stem ? vb_lab_op_disk_new(seed, disks[i].key ? disks[i].key : key,
                                              disks[i].name ? disks[i].name : dname, ds, name, stem,
                                              disks[i].capacity, false)
                         : NULL;
        free(stem);
        if (!d)
            return vb_error_set(VB_ENOMEM, "out of memory");
        const char *exp = vb_lab_json_str(d, "export");
        if (s_export_taken(site, exp)) {
            rc = vb_error_set(VB_EEXISTS, "a disk of the site is served as \"%s\" already", exp);
            json_decref(d);
            return rc;
        }
        if (json_array_append_new(arr, d))
            return vb_error_set(VB_ENOMEM, "out of memory");
        char *path = vb_lab_disk_image(site, d, NULL);
        char *log = vb_lab_disk_cbt_log(site, d);
        if (!path || !log) {
            free(path);
            free(log);
            return vb_error_set(VB_ENOMEM, "out of memory");
        }
        rc = s_create_image(path, disks[i].capacity);
        if (!rc) {
            made[i] = path;
            path = NULL;
            rc = vb_lab_write_file(log, "", 0644);
        }
        free(path);
        free(log);
    }
    return rc;
}

int vb_lab_vm_create(const char *dir, const char *name, const char *host, const char *datastore,
                     const vb_inv_new_disk_t *disks, size_t n)
{
    vb_lab_site_t *site = NULL;
    char *made[S_MAX_DISKS] = {0};
    char *id = NULL;
    bool fcd;
    int rc;
    if ((rc = s_check_vm_name(name)) || (rc = s_check_disks(disks, n)))
        return rc;
    if ((rc = vb_lab_site_open(dir, true, &site)))
        return rc;
    if (vb_lab_site_find_object(site, name, &fcd)) {
        rc = vb_error_set(VB_EEXISTS, "%s named \"%s\" exists already in the lab site",
                          fcd ? "an FCD" : "a VM", name);
        goto out;
    }
    json_t *ds = datastore ? vb_lab_site_find_datastore(site, datastore) : NULL;
    if (!ds) {
        rc = vb_error_set(VB_ENOTFOUND, "no datastore named \"%s\" in the lab site",
                          datastore ? datastore : "");
        goto out;
    }
    const char *on_host = NULL;
    if ((rc = s_pick_host(site, ds, host, &on_host)))
        goto out;
    json_t *arr = json_array();
    if (!arr || !(id = s_next_id(site))) {
        json_decref(arr);
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    json_t *vm = json_pack("{s:s, s:s, s:s, s:b, s:[], s:o}", "name", name, "id", id, "host",
                           on_host, "linked_clone", 0, "snapshots", "disks", arr);
    if (!vm || json_array_append_new(json_object_get(vb_lab_site_root(site), "vms"), vm)) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = s_add_disks(site, name, datastore, disks, n, arr, made)))
        goto out;
    rc = vb_lab_site_save(site);
out:
    if (rc) {
        vb_error_prefix(rc, "creating VM %s", name);
        for (size_t i = 0; i < n && i < S_MAX_DISKS; i++)
            if (made[i])
                unlink(made[i]);
    }
    for (size_t i = 0; i < S_MAX_DISKS; i++)
        free(made[i]);
    free(id);
    vb_lab_site_destroy(&site);
    return rc;
}
