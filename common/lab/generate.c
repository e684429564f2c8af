/* generate — builds a lab site: hosts, datastores, VMs, FCDs, proxies, images, TLS material.
 *
 * Everything but the ports and the TLS keys is a function of the seed, so two sites made with the
 * same options hold the same bytes. The default site exercises every transport decision: a SAN
 * proxy, a HotAdd proxy on VMFS, a proxy on vSAN and an NBD-only proxy on a host that reaches
 * none of the VM datastores; a host that requires encryption; every datastore type. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "lab/lab.h"
#include "lab/lab_util.h"
#include "lab/ops.h"
#include "lab/site.h"
#include "netport.h"

#define S_LUN "naa.60003ff44dc75adc8f5e2d1a3b0c0001"

static const struct {
    const char *name;
    const char *type;
    const char *lun;
    const char *hosts[4];
} s_datastores[] = {
    {"san-vmfs-01", "VMFS", S_LUN, {"esx-01", "esx-02"}},
    {"nfs-01", "NFS", NULL, {"esx-01", "esx-02", "esx-03"}},
    {"vsanDatastore", "vsan", NULL, {"esx-03"}},
    {"vvol-01", "VVOL", NULL, {"esx-01", "esx-02"}},
    {"cloud-nfs-01", "NFS", NULL, {"esx-04"}},
    {"esx-05-local", "VMFS", NULL, {"esx-05"}},
};

/* VM roles, cycled when more VMs are asked for. */
static const struct {
    const char *prefix;
    const char *host;
    const char *datastore;
    int disks;
} s_vm_roles[] = {
    {"vm-vmfs", "esx-01", "san-vmfs-01", 2},   {"vm-nfs", "esx-02", "nfs-01", 1},
    {"vm-vsan", "esx-03", "vsanDatastore", 3}, {"vm-vvol", "esx-01", "vvol-01", 1},
    {"vm-vvol-clone", "esx-02", "vvol-01", 1}, {"vm-cloud", "esx-04", "cloud-nfs-01", 2},
    {"vm-guest", "esx-01", "san-vmfs-01", 2},
};
enum { S_ROLE_NFS = 1, S_ROLE_VSAN = 2, S_ROLE_VVOL = 3, S_ROLE_CLONE = 4, S_ROLE_GUEST = 6 };
#define S_ROLES ((int)(sizeof s_vm_roles / sizeof *s_vm_roles))

/* Proxy roles in agent order: SAN, HotAdd on VMFS, on vSAN, NBD only. */
static const struct {
    const char *role;
    const char *host;
    const char *datastore;
    bool san;
} s_proxy_roles[] = {
    {"san", "esx-01", "san-vmfs-01", true},
    {"hotadd", "esx-02", "san-vmfs-01", false},
    {"vsan", "esx-03", "vsanDatastore", false},
    {"nbd", "esx-05", "esx-05-local", false},
};

/* The special-character disk: spaces, #, %, & and non-ASCII in its file name. */
#define S_SPECIAL_STEM "data #2 100% & caf\xc3\xa9 \xc3\xbc"

static int s_generate_image(const char *path, uint64_t cap, uint64_t seed)
{
    int rc = 0;
    unsigned char *buf = malloc(VB_LAB_BLOCK_SIZE);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (!buf || fd < 0 || ftruncate(fd, (off_t)cap) < 0) {
        rc = vb_error_set(buf ? VB_EIO : VB_ENOMEM, "cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    uint64_t blocks = (cap + VB_LAB_BLOCK_SIZE - 1) / VB_LAB_BLOCK_SIZE;
    uint64_t state = seed;
    bool data = true; /* block 0 holds data, as a partition table would */
    for (uint64_t b = 0; b < blocks;) {
        uint64_t run = 1 + vb_lab_rand_next(&state) % 12;
        for (uint64_t i = 0; i < run && b < blocks; i++, b++) {
            if (!data)
                continue;
            uint64_t off = b * VB_LAB_BLOCK_SIZE;
            size_t len = cap - off < VB_LAB_BLOCK_SIZE ? (size_t)(cap - off) : VB_LAB_BLOCK_SIZE;
            vb_lab_fill(vb_lab_hash_u64(seed, b), buf, len);
            if (vb_pwrite_full(fd, buf, len, off) != 0) {
                rc = vb_error_set(VB_EIO, "cannot write %s: %s", path, strerror(errno));
                goto out;
            }
        }
        data = !data;
    }
    if (fsync(fd) < 0)
        rc = vb_error_set(VB_EIO, "cannot sync %s: %s", path, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

static json_t *s_strv(const char *const *v, size_t max)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < max && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *s_disk(uint64_t seed, const char *key, const char *name, const char *ds,
                      const char *folder, const char *stem, uint64_t cap, bool enc)
{
    char *path = vb_lab_strf("[%s] %s/%s.vmdk", ds, folder, stem);
    char *exp = vb_lab_strf("%s--%s", folder, stem);
    char *epoch = exp ? vb_lab_op_epoch(vb_lab_hash_str(seed, exp)) : NULL;
    json_t *d = NULL;
    if (path && exp && epoch)
        d = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:n, s:s, s:s, s:i}", "key", key, "name",
                      name, "datastore", ds, "path", path, "capacity", (json_int_t)cap, "encrypted",
                      enc, "parent", "export", exp, "change_epoch", epoch, "change_gen", 1);
    free(path);
    free(exp);
    free(epoch);
    return d;
}

json_t *vb_lab_op_disk_new(uint64_t seed, const char *key, const char *name, const char *ds,
                           const char *folder, const char *stem, uint64_t cap, bool enc)
{
    return s_disk(seed, key, name, ds, folder, stem, cap, enc);
}

static uint64_t s_round(uint64_t v)
{
    return (v + VB_LAB_BLOCK_SIZE - 1) / VB_LAB_BLOCK_SIZE * VB_LAB_BLOCK_SIZE;
}

/* One VM of role r, occurrence k. `clone_base` is the last vVol VM (for the linked clone). */
static json_t *s_vm(uint64_t seed, int index, int r, int k, uint64_t size, json_t *clone_base)
{
    char name[64], stem[96], key[16], dname[32];
    snprintf(name, sizeof name, "%s-%02d", s_vm_roles[r].prefix, k);
    json_t *disks = json_array();
    bool clone = r == S_ROLE_CLONE && clone_base;
    for (int i = 0; disks && i < s_vm_roles[r].disks; i++) {
        if (r == S_ROLE_VSAN && i == 1)
            snprintf(stem, sizeof stem, "%s %s", name, S_SPECIAL_STEM);
        else if (clone)
            snprintf(stem, sizeof stem, "%s-000001", name);
        else if (i == 0)
            snprintf(stem, sizeof stem, "%s", name);
        else
            snprintf(stem, sizeof stem, "%s_%d", name, i);
        snprintf(key, sizeof key, "%d", 2000 + i);
        snprintf(dname, sizeof dname, "Hard disk %d", i + 1);
        /* The second disk is not a multiple of 1 MiB, so chunk edges are exercised. */
        uint64_t cap = i == 1 ? s_round(size / 4 * 3 + 3 * VB_LAB_BLOCK_SIZE) : size;
        if (r == S_ROLE_GUEST) /* its own size: the file system's tree must fit */
            cap = VB_LAB_GUEST_DISK_SIZE;
        json_t *d = s_disk(seed, key, dname, s_vm_roles[r].datastore, name, stem, cap, false);
        if (!d || json_array_append_new(disks, d))
            goto fail;
        if (r == S_ROLE_GUEST)
            json_object_set_new(d, "guest_fs", json_string(i == 0 ? "ext4" : "ntfs"));
        if (clone) {
            json_t *pd = json_array_get(json_object_get(clone_base, "disks"), 0);
            json_object_set(d, "parent", json_object_get(pd, "path"));
            json_object_set(d, "capacity", json_object_get(pd, "capacity"));
        }
    }
    char id[32];
    snprintf(id, sizeof id, "vm-%d", 101 + index);
    json_t *vm = json_pack("{s:s, s:s, s:s, s:b, s:[], s:o}", "name", name, "id", id, "host",
                           s_vm_roles[r].host, "linked_clone", clone, "snapshots", "disks", disks);
    return vm;
fail:
    json_decref(disks);
    return NULL;
}

static json_t *s_fcd(uint64_t seed, int k, const char *ds, uint64_t size, bool enc)
{
    char name[32], id[64];
    snprintf(name, sizeof name, enc ? "fcd-enc-%02d" : "fcd-%02d", k);
    uint64_t h = vb_lab_hash_str(seed, name);
    snprintf(id, sizeof id, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(h >> 32),
             (unsigned)(h >> 16) & 0xffff, (unsigned)h & 0xffff, (unsigned)(h >> 48),
             (unsigned long long)(vb_lab_hash_u64(h, 1) & 0xffffffffffffull));
    json_t *d = s_disk(seed, id, name, ds, "fcd", name, size, enc);
    if (!d)
        return NULL;
    json_object_set_new(d, "id", json_string(id));
    json_object_set_new(d, "name", json_string(name));
    json_object_set_new(d, "snapshots", json_array());
    return d;
}

static json_t *s_build(const vb_lab_options_t *o, const int ports[3])
{
    json_t *root = json_pack(
        "{s:i, s:I, s:i, s:i, s:b, s:{s:s, s:s, s:i, s:i, s:i, s:s}, s:[], s:[], s:[], s:[], "
        "s:[]}",
        "version", 1, "seed", (json_int_t)o->seed, "block_size", (int)VB_LAB_BLOCK_SIZE,
        "next_snapshot", 1, "require_encryption", 0, "network", "ipv4", "127.0.0.1", "ipv6", "::1",
        "nbd_port", ports[0], "tls_port", ports[1], "luks_port", ports[2], "psk_user", "vbak",
        "hosts", "datastores", "vms", "fcds", "proxies");
    if (!root)
        return NULL;
    static const char *hosts[] = {"esx-01", "esx-02", "esx-03", "esx-04", "esx-05"};
    for (size_t i = 0; i < 5; i++)
        json_array_append_new(json_object_get(root, "hosts"),
                              json_pack("{s:s, s:b}", "name", hosts[i], "require_encryption",
                                        strcmp(hosts[i], "esx-04") == 0));
    for (size_t i = 0; i < sizeof s_datastores / sizeof *s_datastores; i++)
        json_array_append_new(json_object_get(root, "datastores"),
                              json_pack("{s:s, s:s, s:s?, s:o}", "name", s_datastores[i].name,
                                        "type", s_datastores[i].type, "lun", s_datastores[i].lun,
                                        "hosts", s_strv(s_datastores[i].hosts, 4)));
    json_t *clone_base = NULL;
    for (int i = 0; i < o->vms; i++) {
        int r = i % S_ROLES;
        json_t *vm = s_vm(o->seed, i, r, i / S_ROLES + 1, o->disk_size, clone_base);
        if (!vm || json_array_append_new(json_object_get(root, "vms"), vm))
            goto fail;
        if (r == S_ROLE_VVOL)
            clone_base = vm;
    }
    json_t *f1 = s_fcd(o->seed, 1, "san-vmfs-01", o->disk_size, false);
    json_t *f2 = s_fcd(o->seed, 1, "vsanDatastore", o->disk_size, true);
    if (json_array_append_new(json_object_get(root, "fcds"), f1) ||
        json_array_append_new(json_object_get(root, "fcds"), f2))
        goto fail;
    for (int i = 0; i < o->proxies; i++) {
        int r = i % 4;
        char name[32];
        snprintf(name, sizeof name, "proxy-%02d", i + 1);
        const char *luns[] = {S_LUN, NULL};
        json_array_append_new(json_object_get(root, "proxies"),
                              json_pack("{s:s, s:s, s:s, s:s, s:o}", "name", name, "role",
                                        s_proxy_roles[r].role, "host", s_proxy_roles[r].host,
                                        "datastore", s_proxy_roles[r].datastore, "luns",
                                        s_strv(luns, s_proxy_roles[r].san ? 1 : 0)));
    }
    return root;
fail:
    json_decref(root);
    return NULL;
}

static int s_hex_secret(const char *path, const char *prefix, size_t bytes)
{
    unsigned char raw[64];
    char text[200];
    if (bytes > sizeof raw || getrandom(raw, bytes, 0) != (ssize_t)bytes)
        return vb_error_set(VB_EIO, "cannot get random bytes: %s", strerror(errno));
    size_t n = (size_t)snprintf(text, sizeof text, "%s", prefix);
    for (size_t i = 0; i < bytes; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%02x", raw[i]);
    if (prefix[0])
        snprintf(text + n, sizeof text - n, "\n");
    return vb_lab_write_file(path, text, 0600);
}

/* Gives the hosts named in `pairs` ("HOST=IPV4", NULL-terminated) their own address, and appends
 * ", IP:ADDR" per address to `san` (the server certificate's names). */
static int s_host_addresses(json_t *root, const char *const *pairs, char *san, size_t cap)
{
    for (size_t k = 0; pairs && pairs[k]; k++) {
        const char *eq = strchr(pairs[k], '=');
        struct in_addr a;
        if (!eq || eq == pairs[k] || inet_pton(AF_INET, eq + 1, &a) != 1)
            return vb_error_set(VB_EINVAL, "host address '%s' is not HOST=IPV4", pairs[k]);
        size_t i;
        json_t *h, *found = NULL;
        json_array_foreach(json_object_get(root, "hosts"), i, h)
        {
            const char *name = vb_lab_json_str(h, "name");
            if (strlen(name) == (size_t)(eq - pairs[k]) && !strncmp(name, pairs[k], strlen(name)))
                found = h;
        }
        if (!found)
            return vb_error_set(VB_ENOTFOUND, "host address '%s': the site has no host %.*s",
                                pairs[k], (int)(eq - pairs[k]), pairs[k]);
        json_object_set_new(found, "ipv4", json_string(eq + 1));
        size_t n = strlen(san);
        if ((size_t)snprintf(san + n, cap - n, ", IP:%s", eq + 1) >= cap - n)
            return vb_error_set(VB_EINVAL, "too many host addresses");
    }
    return 0;
}

/* Site CA and a server certificate for IP:127.0.0.1 / DNS:localhost and `extra_san` (", IP:..."
 * per host address), made with openssl(1). The CA key is deleted once the server certificate is
 * signed. */
static int s_make_tls(const char *dir, const char *extra_san)
{
    int rc = VB_ENOMEM;
    char *t = vb_lab_strf("%s/tls", dir);
    char *cakey = vb_lab_strf("%s/tls/ca-key.pem", dir);
    char *cacert = vb_lab_strf("%s/tls/client/ca-cert.pem", dir);
    char *scacert = vb_lab_strf("%s/tls/server/ca-cert.pem", dir);
    char *skey = vb_lab_strf("%s/tls/server/server-key.pem", dir);
    char *scert = vb_lab_strf("%s/tls/server/server-cert.pem", dir);
    char *csr = vb_lab_strf("%s/tls/server.csr", dir);
    char *ext = vb_lab_strf("%s/tls/server.ext", dir);
    char *log = vb_lab_strf("%s/log/openssl.log", dir);
    char *cl = vb_lab_strf("%s/tls/client", dir), *sv = vb_lab_strf("%s/tls/server", dir);
    if (!t || !cakey || !cacert || !scacert || !skey || !scert || !csr || !ext || !log || !cl ||
        !sv)
        goto out;
    if ((rc = vb_lab_mkdir(t, 0700)) || (rc = vb_lab_mkdir(cl, 0755)) ||
        (rc = vb_lab_mkdir(sv, 0700)))
        goto out;
    const char *ca[] = {"openssl",
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-keyout",
                        cakey,
                        "-out",
                        cacert,
                        "-days",
                        "3650",
                        "-subj",
                        "/CN=vbak lab CA",
                        NULL};
    const char *req[] = {
        "openssl", "req",     "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes",  "-keyout", skey,   "-out",    csr,  "-subj",    "/CN=localhost",
        NULL};
    const char *sign[] = {"openssl", "x509",     "-req", "-in",         csr,   "-CA",
                          cacert,    "-CAkey",   cakey,  "-set_serial", "2",   "-days",
                          "3650",    "-extfile", ext,    "-out",        scert, NULL};
    char ext_text[1400];
    snprintf(ext_text, sizeof ext_text,
             "subjectAltName = IP:127.0.0.1, DNS:localhost%s\n"
             "extendedKeyUsage = serverAuth\n"
             "keyUsage = digitalSignature, keyEncipherment\n"
             "basicConstraints = CA:FALSE\n",
             extra_san);
    if ((rc = vb_lab_write_file(ext, ext_text, 0600)) ||
        (rc = vb_lab_run(ca, log)) || (rc = vb_lab_run(req, log)) || (rc = vb_lab_run(sign, log)) ||
        (rc = vb_lab_copy_sparse(cacert, scacert)))
        goto out;
    if (chmod(skey, 0600) < 0) {
        rc = vb_error_set(VB_EIO, "cannot protect %s: %s", skey, strerror(errno));
        goto out;
    }
    unlink(cakey);
    unlink(csr);
    unlink(ext);
    char *psk = vb_lab_strf("%s/tls/psk.keys", dir), *pass = vb_lab_strf("%s/tls/luks.pass", dir);
    rc = (!psk || !pass) ? VB_ENOMEM : s_hex_secret(psk, "vbak:", 32);
    if (!rc)
        rc = s_hex_secret(pass, "", 24);
    free(psk);
    free(pass);
out:
    if (rc == VB_ENOMEM && !vb_error_msg()[0])
        vb_error_set(rc, "out of memory");
    free(t), free(cakey), free(cacert), free(scacert), free(skey), free(scert);
    free(csr), free(ext), free(log), free(cl), free(sv);
    return rc;
}

static int s_make_images(vb_lab_site_t *site, uint64_t seed)
{
    json_t *root = vb_lab_site_root(site);
    json_t *clone_src = NULL;
    size_t i;
    json_t *vm;
    int rc = 0;
    json_array_foreach(json_object_get(root, "vms"), i, vm)
    {
        json_t *disks = json_object_get(vm, "disks");
        for (size_t j = 0; j < json_array_size(disks) && !rc; j++) {
            json_t *d = json_array_get(disks, j);
            char *path = vb_lab_disk_image(site, d, NULL);
            uint64_t cap = (uint64_t)json_integer_value(json_object_get(d, "capacity"));
            if (!path)
                return VB_ENOMEM;
            if (json_is_true(json_object_get(vm, "linked_clone")) && clone_src) {
                /* A linked clone reads as its parent plus its own changes. */
                char *src = vb_lab_disk_image(site, clone_src, NULL);
                rc = src ? vb_lab_copy_sparse(src, path) : VB_ENOMEM;
                free(src);
            } else if (vb_lab_json_str(d, "guest_fs")) {
                rc = vb_lab_guest_image(vb_lab_site_dir(site), path,
                                        vb_lab_json_str(d, "guest_fs"), cap,
                                        vb_lab_hash_str(seed, vb_lab_json_str(d, "export")));
            } else {
                rc = s_generate_image(path, cap,
                                      vb_lab_hash_str(seed, vb_lab_json_str(d, "export")));
            }
            free(path);
        }
        if (rc)
            return rc;
        if (strncmp(vb_lab_json_str(vm, "name"), "vm-vvol-", 8) == 0 &&
            !json_is_true(json_object_get(vm, "linked_clone")))
            clone_src = json_array_get(disks, 0);
        if (json_is_true(json_object_get(vm, "linked_clone")) &&
            (rc = vb_lab_op_mutate(site, vm, false, 3, vb_lab_hash_u64(seed, 77), NULL)))
            return rc;
    }
    json_array_foreach(json_object_get(root, "fcds"), i, vm)
    {
        char *path = vb_lab_disk_image(site, vm, NULL);
        uint64_t cap = (uint64_t)json_integer_value(json_object_get(vm, "capacity"));
        rc = path
                 ? s_generate_image(path, cap, vb_lab_hash_str(seed, vb_lab_json_str(vm, "export")))
                 : VB_ENOMEM;
        free(path);
        if (!rc && json_is_true(json_object_get(vm, "encrypted")))
            rc = vb_lab_op_create_luks(site, vm);
        if (rc)
            return rc;
    }
    return 0;
}

/* The NFS VMs get a pre-existing snapshot, then their live disks move on. */
static int s_pre_existing_snapshots(vb_lab_site_t *site)
{
    size_t i;
    json_t *vm;
    json_array_foreach(json_object_get(vb_lab_site_root(site), "vms"), i, vm)
    {
        if (strncmp(vb_lab_json_str(vm, "name"), "vm-nfs-", 7) != 0)
            continue;
        int rc = vb_lab_op_snapshot_create(site, vm, false, "before-upgrade", NULL);
        if (!rc) /* no site.json yet: the document in memory commits the snapshot */
            rc = vb_lab_row_replay(site);
        if (!rc)
            rc = vb_lab_op_mutate(site, vm, false, 5, 0, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

int vb_lab_site_create(const char *dir, const vb_lab_options_t *opts)
{
    vb_lab_options_t o = opts ? *opts : (vb_lab_options_t){0};
    vb_lab_site_t *site = NULL;
    int rc, ports[3] = {0, 0, 0};
    if (o.proxies < 0 || o.vms < 0 || o.proxies > 1000 || o.vms > 10000)
        return vb_error_set(VB_EINVAL, "proxies must be 0..1000 and vms 0..10000");
    o.proxies = o.proxies ? o.proxies : 4;
    o.vms = o.vms ? o.vms : S_ROLES;
    o.disk_size = s_round(o.disk_size ? o.disk_size : 64ull << 20);
    o.seed = o.seed ? o.seed : 1;
    if (o.seed > (uint64_t)INT64_MAX)
        return vb_error_set(VB_EINVAL, "seed must be below 2^63");
    char *json = vb_lab_strf("%s/site.json", dir);
    if (!json)
        return VB_ENOMEM;
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        rc = vb_error_set(VB_ENOTFOUND, "lab directory %s does not exist", dir);
        goto out;
    }
    if (access(json, F_OK) == 0) {
        rc = vb_error_set(VB_EEXISTS, "%s holds a lab site already", dir);
        goto out;
    }
    static const char *subdirs[] = {"disks", "disks-luks", "disks-clear", "cbt", "run", "log"};
    for (size_t i = 0; i < sizeof subdirs / sizeof *subdirs; i++) {
        char *p = vb_lab_strf("%s/%s", dir, subdirs[i]);
        rc = p ? vb_lab_mkdir(p, strcmp(subdirs[i], "disks-clear") == 0 ? 0700 : 0755) : VB_ENOMEM;
        free(p);
        if (rc)
            goto out;
    }
    /* Both address families share each port number (the IPv4 and IPv6 servers). */
    for (int i = 0; i < 3; i++)
        if ((rc = vb_netport_pick(true, ports, (size_t)i, &ports[i])))
            goto out;
    json_t *root = s_build(&o, ports);
    if (!root) {
        rc = vb_error_set(VB_ENOMEM, "out of memory building the site");
        goto out;
    }
    char san[1024] = "";
    if ((rc = s_host_addresses(root, o.host_addresses, san, sizeof san))) {
        json_decref(root);
        goto out;
    }
    if ((rc = vb_lab_site_wrap(dir, root, &site)) || (rc = s_make_tls(vb_lab_site_dir(site), san)) ||
        (rc = s_make_images(site, o.seed)) || (rc = s_pre_existing_snapshots(site)))
        goto out;
    rc = vb_lab_site_save(site);
out:
    if (rc)
        vb_error_prefix(rc, "lab create %s", dir);
    vb_lab_site_destroy(&site);
    free(json);
    return rc;
}
