/* vbak-vsphere-probe — drives the vSphere provider from the command line for the shell tests.
 *
 *   vbak-vsphere-probe --url U --user U (--password P | --password-file F)
 *                      [--ca-file F | --thumbprint T] [--datacenter DC] [--encoding single|double]
 *                      [--page-size N] [--debug] COMMAND [ARGS]
 *   about                                   {"api_version":..,"about":..}
 *   inventory                               the inventory as JSON
 *   snapshot-create VM NAME                 prints the snapshot id
 *   snapshot-remove VM ID|NAME
 *   snapshot-disk SNAPSHOT_ID DISK_KEY      the disk's file as the snapshot froze it
 *   changed-areas VM DISK_KEY [SNAPSHOT [CHANGE_ID]]   {"extents":[[off,len],..],"change_id":..}
 *   file-size DS_FILE                       prints the size
 *   file-get DS_FILE OFFSET LENGTH OUT      writes the bytes; prints {"got":N,"encoding":..}
 *   file-put DS_FILE IN
 *   read-extents DS_FILE THREADS OUT OFF:LEN...   parallel reader; OUT gets the extents in order
 *   relogin                                 logs out behind the session, then reads the inventory
 *   create-vm NAME DATASTORE HOST|- BYTES...  CreateVM_Task with one empty disk per BYTES
 *
 * Inventory, snapshots and changed areas go through the provider interface (inventory.h).
 * Exit status: 0 ok, 1 failure (message on stderr, with the error's name), 2 usage. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk/disk_uri.h"
#include "log.h"
#include "vsphere/vsphere.h"

static int fail(void)
{
    fprintf(stderr, "vbak-vsphere-probe: %s (%s)\n", vb_error_msg(), vb_strerror(vb_error_code()));
    return 1;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: vbak-vsphere-probe --url URL --user USER --password P|--password-file F "
            "[--ca-file F|--thumbprint T] [--datacenter DC] [--encoding single|double] "
            "COMMAND [ARGS]\n");
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return vb_error_set(VB_EINVAL, "'%s' is not a number", s);
    *out = v;
    return 0;
}

static json_t *strv(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* A disk's VixDiskLib backup routes as an agent reads them: the modes that have one, and the
 * NBDSSL route's URI decoded (null when the provider gives none). */
static json_t *vddk_json(const vb_inv_disk_t *d)
{
    json_t *modes = json_array();
    for (int m = 0; m < VB_TRANSPORT_COUNT; m++)
        if (d->vddk_routes[VB_OP_BACKUP][m].uri)
            json_array_append_new(modes, json_string(d->vddk_routes[VB_OP_BACKUP][m].mode));
    const char *uri = d->vddk_routes[VB_OP_BACKUP][VB_TRANSPORT_NBDSSL].uri;
    vb_disk_uri_t u;
    if (!uri || vb_disk_uri_parse(uri, &u) != 0) {
        json_decref(modes);
        return json_null();
    }
    json_t *o = json_pack("{s:s,s:o,s:s,s:o,s:o,s:o,s:o,s:o}", "uri", uri, "modes", modes, "host",
                          u.host, "user", str_or_null(u.user), "file",
                          str_or_null(vb_disk_uri_get(&u, "file")), "vm",
                          str_or_null(vb_disk_uri_get(&u, "vm")), "thumbprint",
                          str_or_null(vb_disk_uri_get(&u, "thumbprint")), "password_file",
                          str_or_null(vb_disk_uri_get(&u, "password-file")));
    /* a First Class Disk's: the vStorageObject spec's id and datastore moref */
    if (vb_disk_uri_get(&u, "fcd")) {
        json_object_set_new(o, "fcd", json_string(vb_disk_uri_get(&u, "fcd")));
        json_object_set_new(o, "datastore", str_or_null(vb_disk_uri_get(&u, "datastore")));
    }
    vb_disk_uri_free(&u);
    return o;
}

static int cmd_inventory(vb_provider_t *p)
{
    vb_inventory_t *inv = NULL;
    if (p->ops->inventory(p, &inv) != 0)
        return fail();
    json_t *root = json_object(), *dss = json_array(), *hosts = json_array(), *vms = json_array();
    for (size_t i = 0; i < inv->datastore_count; i++) {
        const vb_inv_datastore_t *d = &inv->datastores[i];
        json_array_append_new(dss,
                              json_pack("{s:s,s:s,s:o,s:o,s:o}", "name", d->name, "type", d->type,
                                        "url", str_or_null(d->url), "hosts",
                                        strv(d->hosts, d->host_count), "lun", str_or_null(d->lun)));
    }
    for (size_t i = 0; i < inv->host_count; i++)
        json_array_append_new(hosts, json_string(inv->hosts[i].name));
    for (size_t i = 0; i < inv->vm_count; i++) {
        const vb_inv_vm_t *vm = &inv->vms[i];
        json_t *disks = json_array();
        for (size_t k = 0; k < vm->disk_count; k++) {
            const vb_inv_disk_t *d = &vm->disks[k];
            json_array_append_new(
                disks, json_pack("{s:s,s:o,s:o,s:s,s:I,s:o,s:o,s:b,s:o}", "key", d->key, "name",
                                 str_or_null(d->name), "datastore", str_or_null(d->datastore),
                                 "path", d->path ? d->path : "", "capacity",
                                 (json_int_t)d->capacity, "change_id", str_or_null(d->change_id),
                                 "parent", str_or_null(d->parent), "encrypted", d->encrypted,
                                 "vddk", vddk_json(d)));
        }
        json_array_append_new(vms,
                              json_pack("{s:s,s:s,s:o,s:b,s:b,s:o,s:o}", "name", vm->name, "id",
                                        vm->id, "host", str_or_null(vm->host), "linked_clone",
                                        vm->linked_clone, "fcd", vm->is_fcd, "snapshots",
                                        strv(vm->snapshots, vm->snapshot_count), "disks", disks));
    }
    json_object_set_new(root, "datastores", dss);
    json_object_set_new(root, "hosts", hosts);
    json_object_set_new(root, "vms", vms);
    char *txt = json_dumps(root, JSON_COMPACT);
    printf("%s\n", txt);
    free(txt);
    json_decref(root);
    vb_inventory_free(&inv);
    return 0;
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        vb_error_set(VB_EIO, "cannot write %s: %s", path, strerror(errno));
        return fail();
    }
    return 0;
}

static const char *enc_name(vb_vs_encoding_t e)
{
    return e == VB_VS_ENC_SINGLE ? "single" : e == VB_VS_ENC_DOUBLE ? "double" : "unknown";
}

static int cmd_file_get(vb_vsphere_t *vs, char **a)
{
    uint64_t off = 0, len = 0;
    if (parse_u64(a[1], &off) != 0 || parse_u64(a[2], &len) != 0)
        return fail();
    char *buf = malloc(len ? len : 1);
    size_t got = 0;
    int rc = buf ? vb_vsphere_file_get(vs, a[0], off, len, buf, &got) : VB_ENOMEM;
    if (rc == 0)
        rc = write_file(a[3], buf, got);
    else
        rc = fail();
    if (rc == 0)
        printf("{\"got\":%zu,\"encoding\":\"%s\"}\n", got, enc_name(vb_vsphere_file_encoding(vs)));
    free(buf);
    return rc;
}

static int cmd_file_put(vb_vsphere_t *vs, char **a)
{
    FILE *f = fopen(a[1], "rb");
    if (!f) {
        vb_error_set(VB_EIO, "cannot open %s: %s", a[1], strerror(errno));
        return fail();
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[65536];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n > cap) {
            cap = (len + n) * 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    int rc = vb_vsphere_file_put(vs, a[0], buf ? buf : "", len) == 0 ? 0 : fail();
    free(buf);
    return rc;
}

static int cmd_read_extents(vb_vsphere_t *vs, int argc, char **a)
{
    uint64_t threads = 0;
    if (parse_u64(a[1], &threads) != 0)
        return fail();
    size_t count = (size_t)argc - 3;
    vb_extent_t *ext = calloc(count, sizeof *ext);
    uint64_t total = 0;
    for (size_t i = 0; ext && i < count; i++) {
        char *colon = strchr(a[3 + i], ':');
        if (!colon)
            return usage();
        *colon = '\0';
        if (parse_u64(a[3 + i], &ext[i].offset) != 0 || parse_u64(colon + 1, &ext[i].length) != 0)
            return fail();
        total += ext[i].length;
    }
    char *buf = ext ? malloc(total ? total : 1) : NULL;
    int rc;
    if (!buf)
        rc = vb_error_set(VB_ENOMEM, "out of memory");
    else
        rc = vb_vsphere_file_read_extents(vs, a[0], ext, count, (unsigned)threads, buf);
    rc = rc == 0 ? write_file(a[2], buf, total) : fail();
    if (rc == 0)
        printf("{\"bytes\":%llu,\"encoding\":\"%s\"}\n", (unsigned long long)total,
               enc_name(vb_vsphere_file_encoding(vs)));
    free(buf);
    free(ext);
    return rc;
}

/* create-vm NAME DATASTORE HOST|- BYTES...: disks keyed 2000, 2001, ... */
static int cmd_create_vm(vb_provider_t *p, int n, char **a)
{
    size_t nd = (size_t)n - 3;
    vb_inv_new_disk_t *disks = calloc(nd ? nd : 1, sizeof *disks);
    if (!disks)
        return fail();
    for (size_t i = 0; i < nd; i++) {
        char *end = NULL;
        errno = 0;
        disks[i].capacity = strtoull(a[3 + i], &end, 10);
        if (errno || !end || *end) {
            fprintf(stderr, "vbak-vsphere-probe: '%s' is not a byte count\n", a[3 + i]);
            free(disks);
            return 2;
        }
    }
    int rc = p->ops->create_vm(p, a[0], strcmp(a[2], "-") == 0 ? NULL : a[2], a[1], disks, nd);
    free(disks);
    return rc == 0 ? 0 : fail();
}

static int cmd_changed(vb_provider_t *p, int argc, char **a)
{
    vb_extent_list_t list = {0};
    char *cid = NULL;
    const char *snap = argc > 2 ? a[2] : NULL;
    const char *change = argc > 3 ? a[3] : "*";
    if (p->ops->changed_areas(p, a[0], a[1], snap, 0, change, &list, &cid) != 0)
        return fail();
    json_t *ext = json_array();
    for (size_t i = 0; i < list.count; i++)
        json_array_append_new(ext, json_pack("[I,I]", (json_int_t)list.items[i].offset,
                                             (json_int_t)list.items[i].length));
    json_t *root = json_pack("{s:o,s:o}", "extents", ext, "change_id", str_or_null(cid));
    char *txt = json_dumps(root, JSON_COMPACT);
    printf("%s\n", txt);
    free(txt);
    json_decref(root);
    free(cid);
    vb_extent_list_free(&list);
    return 0;
}

static int run(vb_provider_t *p, int argc, char **argv)
{
    vb_vsphere_t *vs = vb_vsphere_provider_session(p);
    const char *cmd = argv[0];
    char **a = argv + 1;
    int n = argc - 1;
    if (strcmp(cmd, "about") == 0) {
        printf("{\"api_version\":\"%s\",\"about\":\"%s\"}\n", vb_vsphere_api_version(vs),
               vb_vsphere_about(vs));
        return 0;
    }
    if (strcmp(cmd, "inventory") == 0)
        return cmd_inventory(p);
    if (strcmp(cmd, "snapshot-create") == 0 && n == 2) {
        char *id = NULL;
        if (p->ops->snapshot_create(p, a[0], a[1], &id) != 0)
            return fail();
        printf("%s\n", id);
        free(id);
        return 0;
    }
    if (strcmp(cmd, "snapshot-disk") == 0 && n == 2) {
        char *path = NULL;
        if (vb_vsphere_snapshot_disk_path(vs, a[0], a[1], &path) != 0)
            return fail();
        printf("%s\n", path);
        free(path);
        return 0;
    }
    if (strcmp(cmd, "create-vm") == 0 && n >= 3)
        return cmd_create_vm(p, n, a);
    if (strcmp(cmd, "snapshot-remove") == 0 && n == 2)
        return p->ops->snapshot_remove(p, a[0], a[1]) == 0 ? 0 : fail();
    if (strcmp(cmd, "changed-areas") == 0 && n >= 2 && n <= 4)
        return cmd_changed(p, n, a);
    if (strcmp(cmd, "file-size") == 0 && n == 1) {
        uint64_t size = 0;
        if (vb_vsphere_file_size(vs, a[0], &size) != 0)
            return fail();
        printf("%llu\n", (unsigned long long)size);
        return 0;
    }
    if (strcmp(cmd, "file-get") == 0 && n == 4)
        return cmd_file_get(vs, a);
    if (strcmp(cmd, "file-put") == 0 && n == 2)
        return cmd_file_put(vs, a);
    if (strcmp(cmd, "read-extents") == 0 && n >= 4)
        return cmd_read_extents(vs, n, a);
    if (strcmp(cmd, "relogin") == 0) {
        if (vb_vsphere_logout(vs) != 0)
            return fail();
        vb_inventory_t *inv = NULL;
        if (vb_vsphere_inventory(vs, &inv) != 0)
            return fail();
        char *id = NULL;
        /* A method the server refuses without a session: proves the fault path logs in too. */
        if (vb_vsphere_logout(vs) != 0 ||
            vb_vsphere_snapshot_create(vs, inv->vms[0].name, "relogin-probe", NULL, &id) != 0 ||
            vb_vsphere_snapshot_remove(vs, inv->vms[0].name, id) != 0) {
            free(id);
            vb_inventory_free(&inv);
            return fail();
        }
        printf("{\"logins\":%u,\"vms\":%zu}\n", vb_vsphere_login_count(vs), inv->vm_count);
        free(id);
        vb_inventory_free(&inv);
        return 0;
    }
    return usage();
}

int main(int argc, char **argv)
{
    vb_vsphere_options_t o = {0};
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"user", required_argument, NULL, 'U'},
        {"password", required_argument, NULL, 'p'},
        {"password-file", required_argument, NULL, 'P'},
        {"ca-file", required_argument, NULL, 'c'},
        {"thumbprint", required_argument, NULL, 't'},
        {"datacenter", required_argument, NULL, 'd'},
        {"encoding", required_argument, NULL, 'e'},
        {"page-size", required_argument, NULL, 'n'},
        {"debug", no_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            o.url = optarg;
            break;
        case 'U':
            o.user = optarg;
            break;
        case 'p':
            o.password = optarg;
            break;
        case 'P':
            o.password_file = optarg;
            break;
        case 'c':
            o.ca_file = optarg;
            break;
        case 't':
            o.thumbprint = optarg;
            break;
        case 'd':
            o.datacenter = optarg;
            break;
        case 'e':
            if (strcmp(optarg, "single") == 0)
                o.encoding = VB_VS_ENC_SINGLE;
            else if (strcmp(optarg, "double") == 0)
                o.encoding = VB_VS_ENC_DOUBLE;
            else
                return usage();
            break;
        case 'n': {
            uint64_t n = 0;
            if (parse_u64(optarg, &n) != 0 || n == 0 || n > 100000)
                return usage();
            o.page_objects = (int)n;
            break;
        }
        case 'D':
            vb_log_set_level(VB_LOG_LEVEL_DEBUG);
            break;
        default:
            return usage();
        }
    }
    if (optind >= argc || !o.url)
        return usage();
    /* Everything the provider interface offers goes through it (inventory, snapshots, changed
     * areas); the rest uses the session inside. */
    vb_provider_t *p = vb_vsphere_provider_new(&o);
    if (!p)
        return fail();
    if (strcmp(p->ops->name, "vsphere") != 0 || !vb_vsphere_provider_session(p)) {
        vb_provider_destroy(&p);
        vb_error_set(VB_EINVAL, "not a vsphere provider");
        return fail();
    }
    int rc = run(p, argc - optind, argv + optind);
    vb_provider_destroy(&p);
    return rc;
}
