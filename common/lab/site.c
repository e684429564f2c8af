#include "lab/site.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/file.h>
#include <unistd.h>

#include "disk/disk_uri.h"
#include "lab/lab_util.h"

struct vb_lab_site {
    char *dir; /* absolute */
    int lock_fd;
    json_t *root;
    bool keep; /* an operation that failed changed what must be saved anyway */
};

const char *vb_lab_json_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- validation: a user edits site.json, so every field is checked with a message naming it */

static int s_need(json_t *obj, const char *key, json_type type, const char *where)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_typeof(v) != type) {
        static const char *names[] = {"an object", "an array",   "a string",   "an integer",
                                      "a number",  "true/false", "true/false", "null"};
        return vb_error_set(VB_EINVAL, "site.json: %s: \"%s\" must be %s", where, key, names[type]);
    }
    return 0;
}

static int s_need_bool(json_t *obj, const char *key, const char *where)
{
    if (!json_is_boolean(json_object_get(obj, key)))
        return vb_error_set(VB_EINVAL, "site.json: %s: \"%s\" must be true or false", where, key);
    return 0;
}

static int s_check_name(const char *what, const char *value, const char *where)
{
    if (!value[0] || strchr(value, '/') || strchr(value, '@') || value[0] == '.')
        return vb_error_set(VB_EINVAL,
                            "site.json: %s: %s \"%s\" must be non-empty, without '/' or '@', "
                            "not starting with '.'",
                            where, what, value);
    return 0;
}

static int s_check_disk(json_t *d, const char *where)
{
    static const char *strs[] = {"key", "name", "datastore", "path", "export", "change_epoch"};
    int rc;
    if (!json_is_object(d))
        return vb_error_set(VB_EINVAL, "site.json: %s must be an object", where);
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        if ((rc = s_need(d, strs[i], JSON_STRING, where)))
            return rc;
    if ((rc = s_need(d, "capacity", JSON_INTEGER, where)) ||
        (rc = s_need(d, "change_gen", JSON_INTEGER, where)) ||
        (rc = s_need_bool(d, "encrypted", where)))
        return rc;
    if (json_integer_value(json_object_get(d, "capacity")) <= 0 ||
        json_integer_value(json_object_get(d, "capacity")) % 512 != 0)
        return vb_error_set(VB_EINVAL, "site.json: %s: capacity must be a positive multiple of 512",
                            where);
    if (json_integer_value(json_object_get(d, "change_gen")) < 1)
        return vb_error_set(VB_EINVAL, "site.json: %s: change_gen must be at least 1", where);
    return s_check_name("export", vb_lab_json_str(d, "export"), where);
}

static int s_check_snapshots(json_t *obj, const char *where)
{
    int rc = s_need(obj, "snapshots", JSON_ARRAY, where);
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(obj, "snapshots"), i, s)
    {
        if (rc)
            break;
        char w[256];
        snprintf(w, sizeof w, "%s.snapshots[%zu]", where, i);
        if (!(rc = s_need(s, "id", JSON_STRING, w)) && !(rc = s_need(s, "name", JSON_STRING, w)) &&
            !(rc = s_need(s, "change_ids", JSON_OBJECT, w)))
            rc = s_check_name("snapshot id", vb_lab_json_str(s, "id"), w);
    }
    return rc;
}

static int s_check_list(json_t *root, const char *list, int (*check)(json_t *, const char *))
{
    int rc = s_need(root, list, JSON_ARRAY, "site");
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(root, list), i, o)
    {
        if (rc)
            break;
        char w[128];
        snprintf(w, sizeof w, "%s[%zu]", list, i);
        if (!json_is_object(o))
            return vb_error_set(VB_EINVAL, "site.json: %s must be an object", w);
        rc = check(o, w);
    }
    return rc;
}

static int s_check_host(json_t *h, const char *w)
{
    int rc = s_need(h, "name", JSON_STRING, w);
    if (rc || (rc = s_need_bool(h, "require_encryption", w)))
        return rc;
    json_t *v4 = json_object_get(h, "ipv4");
    struct in_addr a;
    if (v4 && (!json_is_string(v4) || inet_pton(AF_INET, json_string_value(v4), &a) != 1))
        return vb_error_set(VB_EINVAL, "site.json: %s: \"ipv4\" must be an IPv4 address", w);
    /* a host with an address names its servers' pid files and logs */
    return v4 ? s_check_name("name", vb_lab_json_str(h, "name"), w) : 0;
}

static int s_check_datastore(json_t *d, const char *w)
{
    int rc;
    if ((rc = s_need(d, "name", JSON_STRING, w)) || (rc = s_need(d, "type", JSON_STRING, w)) ||
        (rc = s_need(d, "hosts", JSON_ARRAY, w)))
        return rc;
    json_t *lun = json_object_get(d, "lun");
    if (lun && !json_is_null(lun) && !json_is_string(lun))
        return vb_error_set(VB_EINVAL, "site.json: %s: \"lun\" must be a string or null", w);
    return 0;
}

static int s_check_vm(json_t *vm, const char *w)
{
    int rc;
    json_t *holder = json_object_get(vm, "access_blocked_by");
    if (holder && !json_is_string(holder) && !json_is_null(holder))
        return vb_error_set(VB_EINVAL, "site.json: %s: \"access_blocked_by\" must be a string", w);
    if ((rc = s_need(vm, "name", JSON_STRING, w)) || (rc = s_need(vm, "id", JSON_STRING, w)) ||
        (rc = s_need(vm, "host", JSON_STRING, w)) || (rc = s_need_bool(vm, "linked_clone", w)) ||
        (rc = s_need(vm, "disks", JSON_ARRAY, w)) || (rc = s_check_snapshots(vm, w)))
        return rc;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(vm, "disks"), i, d)
    {
        char dw[160];
        snprintf(dw, sizeof dw, "%s.disks[%zu]", w, i);
        if ((rc = s_check_disk(d, dw)))
            return rc;
    }
    return 0;
}

static int s_check_fcd(json_t *f, const char *w)
{
    int rc;
    json_t *holder = json_object_get(f, "access_blocked_by");
    if (holder && !json_is_string(holder) && !json_is_null(holder))
        return vb_error_set(VB_EINVAL, "site.json: %s: \"access_blocked_by\" must be a string", w);
    if ((rc = s_need(f, "id", JSON_STRING, w)) || (rc = s_check_disk(f, w)) ||
        (rc = s_check_snapshots(f, w)))
        return rc;
    return 0;
}

static int s_check_proxy(json_t *p, const char *w)
{
    int rc;
    if ((rc = s_need(p, "name", JSON_STRING, w)) || (rc = s_need(p, "host", JSON_STRING, w)) ||
        (rc = s_need(p, "datastore", JSON_STRING, w)) || (rc = s_need(p, "luns", JSON_ARRAY, w)))
        return rc;
    return 0;
}

static int s_validate(json_t *root)
{
    int rc;
    if (!json_is_object(root))
        return vb_error_set(VB_EINVAL, "site.json: the top level must be an object");
    if (json_integer_value(json_object_get(root, "version")) != 1)
        return vb_error_set(VB_EINVAL, "site.json: \"version\" must be 1");
    if ((rc = s_need(root, "seed", JSON_INTEGER, "site")) ||
        (rc = s_need(root, "next_snapshot", JSON_INTEGER, "site")) ||
        (rc = s_need(root, "network", JSON_OBJECT, "site")))
        return rc;
    json_t *req = json_object_get(root, "require_encryption");
    if (req && !json_is_boolean(req))
        return vb_error_set(VB_EINVAL, "site.json: \"require_encryption\" must be true or false");
    json_t *net = json_object_get(root, "network");
    static const char *ports[] = {"nbd_port", "tls_port", "luks_port"};
    for (size_t i = 0; i < 3; i++) {
        json_int_t p = json_integer_value(json_object_get(net, ports[i]));
        if (p < 1 || p > 65535)
            return vb_error_set(VB_EINVAL, "site.json: network.%s must be a port 1..65535",
                                ports[i]);
    }
    if ((rc = s_need(net, "ipv4", JSON_STRING, "network")) ||
        (rc = s_need(net, "ipv6", JSON_STRING, "network")) ||
        (rc = s_need(net, "psk_user", JSON_STRING, "network")))
        return rc;
    if ((rc = s_check_list(root, "hosts", s_check_host)) ||
        (rc = s_check_list(root, "datastores", s_check_datastore)) ||
        (rc = s_check_list(root, "vms", s_check_vm)) ||
        (rc = s_check_list(root, "fcds", s_check_fcd)) ||
        (rc = s_check_list(root, "proxies", s_check_proxy)))
        return rc;
    return 0;
}

/* ---- derived fields */

char *vb_lab_disk_change_id(json_t *disk)
{
    return vb_lab_strf("%s/%lld", vb_lab_json_str(disk, "change_epoch"),
                       (long long)json_integer_value(json_object_get(disk, "change_gen")));
}

static const char *s_disk_dir(json_t *disk)
{
    return json_is_true(json_object_get(disk, "encrypted")) ? "disks-clear" : "disks";
}

char *vb_lab_disk_image(const vb_lab_site_t *site, json_t *disk, const char *snapshot_id)
{
    const char *exp = vb_lab_json_str(disk, "export");
    if (snapshot_id)
        return vb_lab_strf("%s/%s/%s@%s", site->dir, s_disk_dir(disk), exp, snapshot_id);
    return vb_lab_strf("%s/%s/%s", site->dir, s_disk_dir(disk), exp);
}

char *vb_lab_disk_luks_image(const vb_lab_site_t *site, json_t *disk, const char *snapshot_id)
{
    const char *exp = vb_lab_json_str(disk, "export");
    if (snapshot_id)
        return vb_lab_strf("%s/disks-luks/%s@%s", site->dir, exp, snapshot_id);
    return vb_lab_strf("%s/disks-luks/%s", site->dir, exp);
}

char *vb_lab_disk_cbt_log(const vb_lab_site_t *site, json_t *disk)
{
    return vb_lab_strf("%s/cbt/%s.log", site->dir, vb_lab_json_str(disk, "export"));
}

static int s_set_str(json_t *obj, const char *key, char *owned)
{
    if (!owned)
        return VB_ENOMEM;
    int rc = json_object_set_new(obj, key, json_string(owned));
    free(owned);
    return rc ? vb_error_set(VB_ENOMEM, "out of memory setting %s", key) : 0;
}

const char *vb_lab_host_ipv4(vb_lab_site_t *site, const char *host)
{
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(site->root, "hosts"), i, h)
    {
        if (host && json_is_string(json_object_get(h, "ipv4")) &&
            strcmp(vb_lab_json_str(h, "name"), host) == 0)
            return vb_lab_json_str(h, "ipv4");
    }
    return vb_lab_json_str(json_object_get(site->root, "network"), "ipv4");
}

/* The disk's URIs; `host` (may be NULL) is its object's, whose own address serves it. */
static int s_refresh_disk(vb_lab_site_t *site, json_t *disk, const char *host)
{
    json_t *net = json_object_get(site->root, "network");
    const char *v4 = vb_lab_host_ipv4(site, host);
    const char *v6 = vb_lab_json_str(net, "ipv6");
    const char *user = vb_lab_json_str(net, "psk_user");
    long long nbd = json_integer_value(json_object_get(net, "nbd_port"));
    bool enc = json_is_true(json_object_get(disk, "encrypted"));
    long long tls = json_integer_value(json_object_get(net, enc ? "luks_port" : "tls_port"));
    int rc = VB_ENOMEM;
    char *exp = vb_disk_uri_escape(vb_lab_json_str(disk, "export"), NULL);
    char *ca = vb_lab_strf("%s/tls/client", site->dir);
    char *psk = vb_lab_strf("%s/tls/psk.keys", site->dir);
    char *ca_e = ca ? vb_disk_uri_escape(ca, NULL) : NULL;
    char *psk_e = psk ? vb_disk_uri_escape(psk, NULL) : NULL;
    if (!exp || !ca_e || !psk_e)
        goto out;
    if ((rc = s_set_str(disk, "change_id", vb_lab_disk_change_id(disk))) ||
        (rc = s_set_str(disk, "file_uri", vb_lab_disk_image(site, disk, NULL))))
        goto out;
    if (enc) {
        json_object_set_new(disk, "nbd_uri", json_null());
        json_object_set_new(disk, "nbd_uri6", json_null());
    } else if ((rc = s_set_str(disk, "nbd_uri", vb_lab_strf("nbd://%s:%lld/%s", v4, nbd, exp))) ||
               (rc =
                    s_set_str(disk, "nbd_uri6", vb_lab_strf("nbd://[%s]:%lld/%s", v6, nbd, exp)))) {
        goto out;
    }
    if ((rc =
             s_set_str(disk, "nbds_uri",
                       vb_lab_strf("nbds://%s:%lld/%s?tls-certificates=%s", v4, tls, exp, ca_e))) ||
        (rc = s_set_str(
             disk, "nbds_uri6",
             vb_lab_strf("nbds://%s@[%s]:%lld/%s?tls-psk-file=%s", user, v6, tls, exp, psk_e))))
        goto out;
    rc = 0;
out:
    free(exp);
    free(ca);
    free(psk);
    free(ca_e);
    free(psk_e);
    return rc;
}

static int s_refresh(vb_lab_site_t *site)
{
    size_t i, j;
    json_t *o, *d;
    int rc;
    json_array_foreach(json_object_get(site->root, "vms"), i, o)
    {
        json_array_foreach(json_object_get(o, "disks"), j, d)
        {
            if ((rc = s_refresh_disk(site, d, vb_lab_json_str(o, "host"))))
                return rc;
        }
    }
    json_array_foreach(json_object_get(site->root, "fcds"), i, o)
    {
        if ((rc = s_refresh_disk(site, o, vb_lab_object_host(site, o, true))))
            return rc;
    }
    return 0;
}

/* ---- open / save */

static int s_lock(vb_lab_site_t *site, bool write)
{
    char *path = vb_lab_strf("%s/site.lock", site->dir);
    if (!path)
        return VB_ENOMEM;
    site->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int rc = 0;
    if (site->lock_fd < 0)
        rc = vb_error_set(VB_EIO, "cannot open %s: %s", path, strerror(errno));
    else if (flock(site->lock_fd, write ? LOCK_EX : LOCK_SH) < 0)
        rc = vb_error_set(VB_EIO, "cannot lock %s: %s", path, strerror(errno));
    free(path);
    return rc;
}

static vb_lab_site_t *s_new(const char *dir)
{
    vb_lab_site_t *site = calloc(1, sizeof *site);
    if (!site) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    site->lock_fd = -1;
    site->dir = realpath(dir, NULL);
    if (!site->dir) {
        vb_error_set(errno == ENOENT ? VB_ENOTFOUND : VB_EIO, "lab site %s: %s", dir,
                     strerror(errno));
        free(site);
        return NULL;
    }
    return site;
}

int vb_lab_site_open(const char *dir, bool write, vb_lab_site_t **out)
{
    *out = NULL;
    vb_lab_site_t *site = s_new(dir);
    if (!site)
        return vb_error_code() ? vb_error_code() : VB_ENOMEM;
    int rc;
    char *path = vb_lab_strf("%s/site.json", site->dir);
    if (!path) {
        rc = VB_ENOMEM;
        goto out;
    }
    if (access(path, F_OK) < 0) {
        rc = vb_error_set(VB_ENOTFOUND, "%s holds no lab site (no site.json)", dir);
        goto out;
    }
    if ((rc = s_lock(site, write)))
        goto out;
    json_error_t jerr;
    site->root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!site->root) {
        rc = vb_error_set(VB_EINVAL, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        goto out;
    }
    if ((rc = s_validate(site->root)) || (rc = s_refresh(site)))
        goto out;
    *out = site;
    site = NULL;
out:
    free(path);
    vb_lab_site_destroy(&site);
    return rc;
}

int vb_lab_site_wrap(const char *dir, json_t *root, vb_lab_site_t **out)
{
    *out = NULL;
    vb_lab_site_t *site = s_new(dir);
    if (!site) {
        json_decref(root);
        return vb_error_code() ? vb_error_code() : VB_ENOMEM;
    }
    site->root = root;
    int rc = s_lock(site, true);
    if (rc) {
        vb_lab_site_destroy(&site);
        return rc;
    }
    *out = site;
    return 0;
}

int vb_lab_site_save(vb_lab_site_t *site)
{
    int rc = s_refresh(site);
    if (rc)
        return rc;
    char *path = vb_lab_strf("%s/site.json", site->dir);
    char *text = json_dumps(site->root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!path || !text) {
        rc = vb_error_set(VB_ENOMEM, "out of memory writing site.json");
        goto out;
    }
    size_t len = strlen(text);
    char *nl = realloc(text, len + 2);
    if (!nl) {
        rc = vb_error_set(VB_ENOMEM, "out of memory writing site.json");
        goto out;
    }
    text = nl;
    text[len] = '\n';
    text[len + 1] = '\0';
    rc = vb_lab_write_file(path, text, 0644);
out:
    free(path);
    free(text);
    return rc;
}

void vb_lab_site_destroy(vb_lab_site_t **site_p)
{
    if (!site_p || !*site_p)
        return;
    vb_lab_site_t *site = *site_p;
    if (site->lock_fd >= 0)
        close(site->lock_fd);
    json_decref(site->root);
    free(site->dir);
    free(site);
    *site_p = NULL;
}

void vb_lab_site_keep_on_error(vb_lab_site_t *site)
{
    site->keep = true;
}

bool vb_lab_site_must_keep(const vb_lab_site_t *site)
{
    return site->keep;
}

json_t *vb_lab_site_root(vb_lab_site_t *site)
{
    return site->root;
}

const char *vb_lab_site_dir(const vb_lab_site_t *site)
{
    return site->dir;
}

json_t *vb_lab_site_find_object(vb_lab_site_t *site, const char *name, bool *is_fcd)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(site->root, "vms"), i, o)
    {
        if (strcmp(vb_lab_json_str(o, "name"), name) == 0) {
            *is_fcd = false;
            return o;
        }
    }
    json_array_foreach(json_object_get(site->root, "fcds"), i, o)
    {
        if (strcmp(vb_lab_json_str(o, "name"), name) == 0 ||
            strcmp(vb_lab_json_str(o, "id"), name) == 0) {
            *is_fcd = true;
            return o;
        }
    }
    return NULL;
}

size_t vb_lab_object_disk_count(json_t *obj, bool is_fcd)
{
    return is_fcd ? 1 : json_array_size(json_object_get(obj, "disks"));
}

json_t *vb_lab_object_disk(json_t *obj, bool is_fcd, size_t i)
{
    return is_fcd ? (i == 0 ? obj : NULL) : json_array_get(json_object_get(obj, "disks"), i);
}

json_t *vb_lab_object_find_disk(json_t *obj, bool is_fcd, const char *key)
{
    for (size_t i = 0; i < vb_lab_object_disk_count(obj, is_fcd); i++) {
        json_t *d = vb_lab_object_disk(obj, is_fcd, i);
        if (strcmp(vb_lab_json_str(d, "key"), key) == 0)
            return d;
    }
    return NULL;
}

json_t *vb_lab_object_find_snapshot(json_t *obj, const char *id_or_name)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(obj, "snapshots"), i, s)
    {
        if (strcmp(vb_lab_json_str(s, "id"), id_or_name) == 0)
            return s;
    }
    json_array_foreach(json_object_get(obj, "snapshots"), i, s)
    {
        if (strcmp(vb_lab_json_str(s, "name"), id_or_name) == 0)
            return s;
    }
    return NULL;
}

json_t *vb_lab_site_find_datastore(vb_lab_site_t *site, const char *name)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(site->root, "datastores"), i, d)
    {
        if (strcmp(vb_lab_json_str(d, "name"), name) == 0)
            return d;
    }
    return NULL;
}

bool vb_lab_datastore_mounted_on(json_t *ds, const char *host)
{
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(ds, "hosts"), i, h)
    {
        if (json_is_string(h) && strcmp(json_string_value(h), host) == 0)
            return true;
    }
    return false;
}

const char *vb_lab_object_host(vb_lab_site_t *site, json_t *obj, bool is_fcd)
{
    if (!is_fcd)
        return vb_lab_json_str(obj, "host");
    json_t *ds = vb_lab_site_find_datastore(site, vb_lab_json_str(obj, "datastore"));
    json_t *h = ds ? json_array_get(json_object_get(ds, "hosts"), 0) : NULL;
    return json_is_string(h) ? json_string_value(h) : NULL;
}
