/* fakevddk — a stand-in for VMware's libvixDiskLib.so, for tests.
 *
 * It serves raw files as if they were VMDKs on datastores, through the same C API (declared in
 * common/disk/vixdisklib_api.h) and enforces the rules vbak must respect:
 *   - QueryAllocatedBlocks only on the thread that opened the disk (release notes, multithreading
 *     caveat); from any other thread it fails with VIX_E_FAIL and says so through the warn log;
 *   - SAN transport is rejected for disks on vsan and VVOL datastores (since VDDK 6.7);
 *   - InitEx reads the config file; tmpDirectory is where open disks keep lock files; Cleanup
 *     removes what an earlier process left there. Without tmpDirectory the fake, like VDDK, uses a
 *     per-process folder, so Cleanup cannot find an earlier run's leftovers (release notes).
 *
 * Test-only config key: vbak.fakeDatastoreDir = "DIR". A disk "[ds1] vm/disk.vmdk" is the raw file
 * DIR/ds1/vm/disk.vmdk; the datastore's type (VMFS, NFS, vsan, VVOL) is the first line of
 * DIR/ds1/.type (VMFS when absent). vbak.fakeServerThumbprint = "AA:BB:.." makes ConnectEx refuse
 * any other thumbprint (VIX_E_NET_HTTP_SSL_SECURITY), as a host with that certificate would.
 * vbak.fakeVersion = "8.0.1" is the version InitEx names in its first log line (VDDK's
 * "VMware VixDiskLib (7.0.3) Release build-N"; default 7.0.3). With
 * serverName NULL (local mode) paths are local files and the only mode is "file". A server named
 * "unreachable.invalid" refuses connections (error 14009).
 *
 * A site (a vCenter simulator's inventory): when LIBDIR/fakevddk-site.conf exists (LIBDIR as
 * given to InitEx), it is read as the config is and describes what the vCenter would know:
 *   user = "NAME"  password_file = "FILE"    ConnectEx refuses other credentials (18000)
 *   vm.MOREF.disk = "[ds] dir/x.vmdk"         one line per disk: ConnectEx needs vmxSpec
 *                                             "moref=MOREF" of a listed VM, Open refuses a disk
 *                                             of another VM; a snapshotRef must be "snapshot-N"
 *   datastore.NAME.dir = "DIR"                where the datastore's files are
 *   datastore.NAME.type = "VMFS|NFS|vsan|VVOL|OTHER"
 *   datastore.NAME.lun = "naa.x"              the LUN a VMFS datastore sits on
 *   proxy_luns = "naa.x,naa.y"                LUNs the proxy sees: SAN needs the disk's LUN
 *   proxy_datastores = "ds1,ds2"              datastores the proxy's host mounts: HotAdd needs
 *                                             the disk's
 *   datastore.NAME.hosts = "h1,h2"            hosts that mount it
 *   vm.MOREF.host = "HOST"                    the host a VM runs on
 *   vm.MOREF.linked_clone = "1"               a linked clone: never HotAdd on a VVOL datastore
 *   require_encryption = "1"                  the hosts refuse plain NFC (NoNfcSession=1):
 *                                             mode nbd fails, nbdssl works
 *   proxy_vm = "vm-N"                         the VM the proxy runs in: HotAdd needs its host
 *                                             to mount the disk's datastore (else the
 *                                             proxy_datastores list decides)
 *   fcd.ID.disk = "[ds] fcd/ID.vmdk"          a First Class Disk (in the inventory file):
 *   fcd.ID.datastore = "datastore-N"          ConnectEx with specType VSTORAGE_OBJECT needs a
 *   fcd.ID.snapshot = "SSID"                  listed id, its datastore's moref, as ssId one
 *                                             of its snapshots (or none) and no snapshotRef;
 *                                             Open refuses any file but its disk. Read again
 *                                             at every such ConnectEx.
 *   inventory = "FILE"                        more vm.MOREF.* lines (the simulator fixture's
 *                                             -vddk-inventory), read again when ConnectEx meets
 *                                             a moref it does not know: a VM made since (a
 *                                             restore to a new VM) becomes known, as it would
 *                                             to vCenter; a known VM's disks stay as first read
 * A disk "[ds] dir/x.vmdk" whose "dir/x-flat.vmdk" exists is read from that flat extent, as a
 * monolithic-flat disk's descriptor points VDDK to it.
 *
 * LIBDIR/fakevddk-faults.conf, when it exists, is read at every Open: what went wrong on the
 * site since the job was planned.
 *   hotadd_unmounted = "ds1,ds2"              the proxy's host lost these datastores: HotAdd of
 *                                             their disks fails, the next mode is tried
 *   nfc_unreachable = "1"                     port 902 of the VMs' hosts cannot be reached:
 *                                             ConnectEx in mode nbd or nbdssl fails (14009)
 *   read_fails = "1"                          every Read of a disk opened now fails
 *   luns_lost = "naa.x,naa.y"                 the proxy no longer sees these LUNs: SAN of
 *                                             their datastores' disks fails
 *
 * VixDiskLib's own state is process-wide (InitEx/Exit), so this fake keeps process-wide state too,
 * behind one mutex. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define VB_VIXDISKLIB_DECLARE_FUNCTIONS
#include "disk/vixdisklib_api.h"

#define EXPORT __attribute__((visibility("default")))
#define PATHMAX 1024

static struct {
    pthread_mutex_t lock;
    int initialized;
    char tmpdir[PATHMAX];
    char dsdir[PATHMAX];
    char thumbprint[256];
    char version[32]; /* vbak.fakeVersion: the VDDK version it says it is */
    VixDiskLibGenericLogFunc *log;
    VixDiskLibGenericLogFunc *warn;
    unsigned next_lock;
    /* the site (fakevddk-site.conf) */
    int site;
    char user[256];
    char password_file[PATHMAX];
    char proxy_luns[1024];
    char proxy_datastores[1024];
    char inventory[PATHMAX];
    char proxy_vm[64];
    char libdir[PATHMAX];
    int rereading; /* reading the inventory file again: only new VMs are taken */
    int require_encryption;
    struct site_ds {
        char name[128], dir[PATHMAX], type[32], lun[128], hosts[1024];
    } ds[32];
    size_t nds;
    struct {
        char moref[64], host[128], disks[4096]; /* disks: "\n"-separated datastore paths */
        int linked_clone;
    } vm[64];
    size_t nvm;
    size_t vm_fixed; /* VMs [0, vm_fixed) keep their disks when the inventory is read again */
    struct {
        char id[64], datastore[64], disk[PATHMAX], snapshots[2048]; /* snapshots: "\n"-sep. */
    } fcd[16];
    size_t nfcd;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct VixDiskLibConnectParam {
    char *server;
    char *snapshot;
    int vm;  /* index in g.vm of the vmxSpec's VM; -1: no site, or an FCD */
    int fcd; /* index in g.fcd of the vStorageObject spec's FCD; -1: a VM's connection */
    char modes[128];
    Bool read_only;
};

struct VixDiskLibHandleStruct {
    int fd;
    uint64_t sectors;
    pthread_t opener;
    char mode[16];
    char lockfile[PATHMAX];
    Bool read_only;
    int read_fails; /* the faults file's read_fails when it was opened */
};

static void s_say(VixDiskLibGenericLogFunc *fn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_say(VixDiskLibGenericLogFunc *fn, const char *fmt, ...)
{
    if (!fn)
        return;
    va_list ap;
    va_start(ap, fmt);
    fn(fmt, ap);
    va_end(ap);
}

static void s_trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

/* The datastore entry named name[0..n), made when absent (NULL when the table is full). */
static struct site_ds *s_site_ds(const char *name, size_t n)
{
    for (size_t i = 0; i < g.nds; i++)
        if (strlen(g.ds[i].name) == n && strncmp(g.ds[i].name, name, n) == 0)
            return &g.ds[i];
    if (g.nds == sizeof g.ds / sizeof g.ds[0] || n >= sizeof g.ds[0].name)
        return NULL;
    snprintf(g.ds[g.nds].name, sizeof g.ds[0].name, "%.*s", (int)n, name);
    snprintf(g.ds[g.nds].type, sizeof g.ds[0].type, "VMFS");
    return &g.ds[g.nds++];
}

static int s_site_vm(const char *moref, size_t n)
{
    for (size_t i = 0; i < g.nvm; i++)
        if (strlen(g.vm[i].moref) == n && strncmp(g.vm[i].moref, moref, n) == 0)
            return (int)i;
    if (g.nvm == sizeof g.vm / sizeof g.vm[0] || n >= sizeof g.vm[0].moref)
        return -1;
    snprintf(g.vm[g.nvm].moref, sizeof g.vm[0].moref, "%.*s", (int)n, moref);
    g.vm[g.nvm].disks[0] = '\0';
    return (int)g.nvm++;
}

/* The FCD entry with id[0..n), made when absent (-1 when the table is full). */
static int s_site_fcd(const char *id, size_t n)
{
    for (size_t i = 0; i < g.nfcd; i++)
        if (strlen(g.fcd[i].id) == n && strncmp(g.fcd[i].id, id, n) == 0)
            return (int)i;
    if (g.nfcd == sizeof g.fcd / sizeof g.fcd[0] || n >= sizeof g.fcd[0].id)
        return -1;
    memset(&g.fcd[g.nfcd], 0, sizeof g.fcd[0]);
    snprintf(g.fcd[g.nfcd].id, sizeof g.fcd[0].id, "%.*s", (int)n, id);
    return (int)g.nfcd++;
}

static void s_fcd_key(const char *k, const char *dot, const char *v)
{
    int i = s_site_fcd(k + 4, (size_t)(dot - k - 4));
    if (i < 0)
        return;
    size_t used = strlen(g.fcd[i].snapshots);
    if (strcmp(dot, ".disk") == 0)
        snprintf(g.fcd[i].disk, sizeof g.fcd[i].disk, "%s", v);
    else if (strcmp(dot, ".datastore") == 0)
        snprintf(g.fcd[i].datastore, sizeof g.fcd[i].datastore, "%s", v);
    else if (strcmp(dot, ".snapshot") == 0)
        snprintf(g.fcd[i].snapshots + used, sizeof g.fcd[i].snapshots - used, "%s\n", v);
}

/* The keys of the site file (see the top of this file). Reading again (rereading): 1 takes only
 * vm.* keys, 2 only fcd.* keys. */
static void s_site_key(const char *k, const char *v)
{
    const char *dot = strrchr(k, '.');
    if ((g.rereading == 1 && strncmp(k, "vm.", 3) != 0) ||
        (g.rereading == 2 && strncmp(k, "fcd.", 4) != 0))
        return;
    if (strncmp(k, "fcd.", 4) == 0 && dot > k + 4) {
        s_fcd_key(k, dot, v);
        return;
    }
    if (strncmp(k, "datastore.", 10) == 0 && dot > k + 10) {
        struct site_ds *d = s_site_ds(k + 10, (size_t)(dot - k - 10));
        if (!d)
            return;
        if (strcmp(dot, ".dir") == 0)
            snprintf(d->dir, sizeof d->dir, "%s", v);
        else if (strcmp(dot, ".type") == 0)
            snprintf(d->type, sizeof d->type, "%s", v);
        else if (strcmp(dot, ".lun") == 0)
            snprintf(d->lun, sizeof d->lun, "%s", v);
        else if (strcmp(dot, ".hosts") == 0)
            snprintf(d->hosts, sizeof d->hosts, "%s", v);
    } else if (strncmp(k, "vm.", 3) == 0 && dot > k + 3) {
        int i = s_site_vm(k + 3, (size_t)(dot - k - 3));
        size_t used = i < 0 ? 0 : strlen(g.vm[i].disks);
        if (i < 0 || (size_t)i < g.vm_fixed)
            return;
        if (strcmp(dot, ".disk") == 0)
            snprintf(g.vm[i].disks + used, sizeof g.vm[i].disks - used, "%s\n", v);
        else if (strcmp(dot, ".host") == 0)
            snprintf(g.vm[i].host, sizeof g.vm[i].host, "%s", v);
        else if (strcmp(dot, ".linked_clone") == 0)
            g.vm[i].linked_clone = strcmp(v, "1") == 0;
    } else if (strcmp(k, "user") == 0) {
        snprintf(g.user, sizeof g.user, "%s", v);
    } else if (strcmp(k, "password_file") == 0) {
        snprintf(g.password_file, sizeof g.password_file, "%s", v);
    } else if (strcmp(k, "proxy_luns") == 0) {
        snprintf(g.proxy_luns, sizeof g.proxy_luns, "%s", v);
    } else if (strcmp(k, "proxy_datastores") == 0) {
        snprintf(g.proxy_datastores, sizeof g.proxy_datastores, "%s", v);
    } else if (strcmp(k, "require_encryption") == 0) {
        g.require_encryption = strcmp(v, "1") == 0;
    } else if (strcmp(k, "proxy_vm") == 0) {
        snprintf(g.proxy_vm, sizeof g.proxy_vm, "%s", v);
    } else if (strcmp(k, "inventory") == 0) {
        snprintf(g.inventory, sizeof g.inventory, "%s", v);
    }
}

/* Reads `key = "value"` lines; keeps tmpDirectory, vbak.fakeDatastoreDir and the site keys. */
static VixError s_read_config(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        s_say(g.warn, "cannot read config file %s: %s\n", path, strerror(errno));
        return VIX_E_FILE_NOT_FOUND;
    }
    char line[2048];
    while (fgets(line, sizeof line, f)) {
        s_trim(line);
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\0')
            continue;
        char *eq = strchr(p, '=');
        if (!eq)
            continue;
        char *kend = eq;
        while (kend > p && (kend[-1] == ' ' || kend[-1] == '\t'))
            kend--;
        *kend = '\0';
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vn = strlen(v);
        if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
            v[vn - 1] = '\0';
            v++;
        }
        if (strcmp(p, "tmpDirectory") == 0)
            snprintf(g.tmpdir, sizeof g.tmpdir, "%s", v);
        else if (strcmp(p, "vbak.fakeDatastoreDir") == 0)
            snprintf(g.dsdir, sizeof g.dsdir, "%s", v);
        else if (strcmp(p, "vbak.fakeServerThumbprint") == 0)
            snprintf(g.thumbprint, sizeof g.thumbprint, "%s", v);
        else if (strcmp(p, "vbak.fakeVersion") == 0)
            snprintf(g.version, sizeof g.version, "%s", v);
        else
            s_site_key(p, v);
    }
    fclose(f);
    return VIX_OK;
}

EXPORT VixError VixDiskLib_InitEx(uint32_t major, uint32_t minor, VixDiskLibGenericLogFunc *log,
                                  VixDiskLibGenericLogFunc *warn, VixDiskLibGenericLogFunc *panic,
                                  const char *libDir, const char *configFile)
{
    (void)minor;
    (void)panic;
    if (major < 6)
        return VIX_E_NOT_SUPPORTED;
    pthread_mutex_lock(&g.lock);
    if (g.initialized > 0) {
        /* Already initialised in this process (the library's state is process-wide): other
         * threads are using it, so the configuration read first stays. */
        g.initialized++;
        pthread_mutex_unlock(&g.lock);
        return VIX_OK;
    }
    g.log = log;
    g.warn = warn;
    g.tmpdir[0] = g.dsdir[0] = g.thumbprint[0] = '\0';
    snprintf(g.version, sizeof g.version, "7.0.3");
    g.site = 0;
    g.nds = g.nvm = g.vm_fixed = g.nfcd = 0;
    g.user[0] = g.password_file[0] = g.proxy_luns[0] = g.proxy_datastores[0] = '\0';
    g.inventory[0] = g.proxy_vm[0] = '\0';
    g.require_encryption = 0;
    snprintf(g.libdir, sizeof g.libdir, "%s", libDir ? libDir : ".");
    VixError err = configFile && *configFile ? s_read_config(configFile) : VIX_OK;
    char site[PATHMAX];
    snprintf(site, sizeof site, "%s/fakevddk-site.conf", libDir ? libDir : ".");
    if (err == VIX_OK && access(site, R_OK) == 0) {
        err = s_read_config(site);
        if (err == VIX_OK && g.inventory[0])
            err = s_read_config(g.inventory);
        g.site = err == VIX_OK;
    }
    if (err == VIX_OK && !g.tmpdir[0])
        snprintf(g.tmpdir, sizeof g.tmpdir, "/tmp/vixdisklib-fake-%d", (int)getpid());
    if (err == VIX_OK && mkdir(g.tmpdir, 0700) != 0 && errno != EEXIST) {
        s_say(g.warn, "cannot create tmpDirectory %s: %s\n", g.tmpdir, strerror(errno));
        err = VIX_E_FILE_ERROR;
    }
    if (err == VIX_OK)
        g.initialized++;
    pthread_mutex_unlock(&g.lock);
    /* the line real VDDK starts its log with, which is where its version can be read */
    s_say(log, "VMware VixDiskLib (%s) Release build-19513565\n", g.version);
    s_say(log, "fake VixDiskLib initialised, tmpDirectory=%s\n", g.tmpdir);
    return err;
}

EXPORT void VixDiskLib_Exit(void)
{
    pthread_mutex_lock(&g.lock);
    if (g.initialized > 0)
        g.initialized--;
    pthread_mutex_unlock(&g.lock);
}

EXPORT VixDiskLibConnectParams *VixDiskLib_AllocateConnectParams(void)
{
    return calloc(1, sizeof(VixDiskLibConnectParams));
}

EXPORT void VixDiskLib_FreeConnectParams(VixDiskLibConnectParams *params)
{
    free(params);
}

static int s_known_modes(const char *modes)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", modes);
    for (char *save = NULL, *m = strtok_r(buf, ":", &save); m; m = strtok_r(NULL, ":", &save))
        if (strcmp(m, "file") && strcmp(m, "san") && strcmp(m, "hotadd") && strcmp(m, "nbdssl") &&
            strcmp(m, "nbd"))
            return 0;
    return 1;
}

/* The site's login: the user and the first line of its password file. */
static VixError s_site_login(const VixDiskLibConnectParams *p)
{
    char want[512] = "";
    FILE *f = fopen(g.password_file, "r");
    if (f) {
        if (!fgets(want, sizeof want, f))
            want[0] = '\0';
        fclose(f);
        want[strcspn(want, "\r\n")] = '\0';
    }
    const char *user = p->creds.uid.userName, *pw = p->creds.uid.password;
    if (!f || !user || !pw || strcmp(user, g.user) != 0 || strcmp(pw, want) != 0) {
        s_say(g.warn, "Cannot complete login due to an incorrect user name or password (user %s)\n",
              user ? user : "(none)");
        return VIX_E_CANNOT_CONNECT_TO_HOST;
    }
    return VIX_OK;
}

static int s_find_vm(const char *moref)
{
    for (size_t i = 0; i < g.nvm; i++)
        if (strcmp(g.vm[i].moref, moref) == 0)
            return (int)i;
    return -1;
}

/* vmxSpec "moref=vm-N" of a VM the site knows, and a snapshotRef of the form "snapshot-N". */
static VixError s_site_vm_spec(const VixDiskLibConnectParams *p, const char *snapshotRef,
                               int *vm_out)
{
    const char *spec = p->vmxSpec;
    if (!spec || strncmp(spec, "moref=", 6) != 0) {
        s_say(g.warn, "a connection to vCenter needs vmxSpec moref=<vm>, not '%s'\n",
              spec ? spec : "(none)");
        return VIX_E_INVALID_ARG;
    }
    pthread_mutex_lock(&g.lock);
    *vm_out = s_find_vm(spec + 6);
    if (*vm_out < 0 && g.inventory[0]) { /* a VM made since the inventory was read */
        g.vm_fixed = g.nvm;
        g.rereading = 1;
        (void)s_read_config(g.inventory);
        g.rereading = 0;
        *vm_out = s_find_vm(spec + 6);
    }
    pthread_mutex_unlock(&g.lock);
    if (*vm_out < 0) {
        s_say(g.warn, "no virtual machine with moref %s\n", spec + 6);
        return VIX_E_FILE_NOT_FOUND;
    }
    if (snapshotRef && *snapshotRef &&
        (strncmp(snapshotRef, "snapshot-", 9) != 0 || !snapshotRef[9] ||
         strspn(snapshotRef + 9, "0123456789") != strlen(snapshotRef + 9))) {
        s_say(g.warn, "'%s' is not a snapshot moref of VM %s\n", snapshotRef, spec + 6);
        return VIX_E_INVALID_ARG;
    }
    return VIX_OK;
}

/* `word` is one of the "\n"-separated lines of list. */
static int s_line_listed(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; word[0] && *p;) {
        size_t k = strcspn(p, "\n");
        if (k == n && strncmp(p, word, n) == 0)
            return 1;
        p += k + (p[k] == '\n');
    }
    return 0;
}

/* The vStorageObject spec of a First Class Disk the site knows: its id, the moref of the
 * datastore that holds it, and as ssId one of its snapshots (or none); a snapshotRef (a VM
 * snapshot's moref) has no place in it. The FCDs are read again each time: snapshots come and go.
 */
static VixError s_site_fcd_spec(const VixDiskLibConnectParams *p, const char *snapshotRef,
                                int *fcd_out)
{
    const VixDiskLibVStorageObjectSpec *o = &p->spec.vStorageObjSpec;
    if (snapshotRef && *snapshotRef) {
        s_say(g.warn,
              "a First Class Disk's snapshot is the vStorageObject spec's ssId, not a "
              "snapshotRef ('%s')\n",
              snapshotRef);
        return VIX_E_INVALID_ARG;
    }
    if (!o->id || !*o->id || !o->datastoreMoRef || !*o->datastoreMoRef) {
        s_say(g.warn, "a vStorageObject connection needs the FCD's id and datastore moref\n");
        return VIX_E_INVALID_ARG;
    }
    pthread_mutex_lock(&g.lock);
    g.nfcd = 0;
    g.rereading = 2;
    if (g.inventory[0])
        (void)s_read_config(g.inventory);
    g.rereading = 0;
    int i = -1;
    for (size_t k = 0; k < g.nfcd && i < 0; k++)
        if (strcmp(g.fcd[k].id, o->id) == 0)
            i = (int)k;
    VixError err = VIX_OK;
    if (i < 0) {
        s_say(g.warn, "no First Class Disk with id %s\n", o->id);
        err = VIX_E_FILE_NOT_FOUND;
    } else if (strcmp(g.fcd[i].datastore, o->datastoreMoRef) != 0) {
        s_say(g.warn, "First Class Disk %s is on datastore %s, not %s\n", o->id, g.fcd[i].datastore,
              o->datastoreMoRef);
        err = VIX_E_INVALID_ARG;
    } else if (o->ssId && *o->ssId && !s_line_listed(g.fcd[i].snapshots, o->ssId)) {
        s_say(g.warn, "First Class Disk %s has no snapshot %s\n", o->id, o->ssId);
        err = VIX_E_FILE_NOT_FOUND;
    }
    pthread_mutex_unlock(&g.lock);
    *fcd_out = i;
    return err;
}

/* The value of `key` in LIBDIR/fakevddk-faults.conf into out ("" when none). */
static void s_fault(const char *key, char *out, size_t cap)
{
    char path[PATHMAX + 32], line[1024];
    out[0] = '\0';
    snprintf(path, sizeof path, "%s/fakevddk-faults.conf", g.libdir);
    FILE *f = fopen(path, "r");
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f)) {
        s_trim(line);
        char *v = line + n;
        if (strncmp(line, key, n) != 0 || strncmp(v, " = \"", 4) != 0)
            continue;
        v += 4;
        v[strcspn(v, "\"")] = '\0';
        snprintf(out, cap, "%s", v);
    }
    if (f)
        fclose(f);
}

/* The faults file's nfc_unreachable: a network mode cannot reach the VM's host on port 902. */
static VixError s_nfc_reachable(int vm, const char *modes)
{
    char down[8];
    s_fault("nfc_unreachable", down, sizeof down);
    if (strcmp(down, "1") != 0 || (strcmp(modes, "nbd") != 0 && strcmp(modes, "nbdssl") != 0))
        return VIX_OK;
    s_say(g.warn, "NBD_ERR_NETWORK_CONNECT: cannot connect to host %s port 902: connection "
                  "timed out\n", vm >= 0 && g.vm[vm].host[0] ? g.vm[vm].host : "(unknown)");
    return VIX_E_HOST_NETWORK_CONN_REFUSED;
}

EXPORT VixError VixDiskLib_ConnectEx(const VixDiskLibConnectParams *p, Bool readOnly,
                                     const char *snapshotRef, const char *transportModes,
                                     VixDiskLibConnection *connection)
{
    if (!g.initialized)
        return VIX_E_DISK_NOINIT;
    if (!p || !connection)
        return VIX_E_INVALID_ARG;
    const char *modes = transportModes && *transportModes ? transportModes
                        : p->serverName                   ? "san:hotadd:nbdssl:nbd"
                                                          : "file";
    if (strlen(modes) >= 128 || !s_known_modes(modes))
        return VIX_E_INVALID_ARG;
    if (p->serverName && strcmp(p->serverName, "unreachable.invalid") == 0) {
        s_say(g.warn, "cannot connect to host %s port 902: connection refused\n", p->serverName);
        return VIX_E_HOST_NETWORK_CONN_REFUSED;
    }
    if (p->serverName && g.thumbprint[0] &&
        (!p->thumbPrint || strcasecmp(p->thumbPrint, g.thumbprint) != 0)) {
        s_say(g.warn, "host %s presents certificate thumbprint %s, not the expected %s\n",
              p->serverName, g.thumbprint, p->thumbPrint ? p->thumbPrint : "(none)");
        return VIX_E_NET_HTTP_SSL_SECURITY;
    }
    int vm = -1, fcd = -1;
    if (p->serverName && g.site) {
        VixError err = s_site_login(p);
        if (err == VIX_OK && p->specType == VIXDISKLIB_SPEC_VSTORAGE_OBJECT)
            err = s_site_fcd_spec(p, snapshotRef, &fcd);
        else if (err == VIX_OK)
            err = s_site_vm_spec(p, snapshotRef, &vm);
        if (err == VIX_OK)
            err = s_nfc_reachable(vm, modes);
        if (err != VIX_OK)
            return err;
    }
    struct VixDiskLibConnectParam *c = calloc(1, sizeof *c);
    if (!c)
        return VIX_E_OUT_OF_MEMORY;
    c->vm = vm;
    c->fcd = fcd;
    c->server = p->serverName ? strdup(p->serverName) : NULL;
    c->snapshot = snapshotRef ? strdup(snapshotRef) : NULL;
    snprintf(c->modes, sizeof c->modes, "%s", modes);
    c->read_only = readOnly;
    *connection = c;
    return VIX_OK;
}

EXPORT VixError VixDiskLib_Disconnect(VixDiskLibConnection c)
{
    if (!c)
        return VIX_E_INVALID_ARG;
    free(c->server);
    free(c->snapshot);
    free(c);
    return VIX_OK;
}

/* A monolithic-flat disk: the descriptor "x.vmdk" names its data in "x-flat.vmdk". */
static void s_flat_extent(char *file, size_t cap)
{
    size_t n = strlen(file);
    char flat[PATHMAX];
    if (n < 5 || strcmp(file + n - 5, ".vmdk") != 0 ||
        snprintf(flat, sizeof flat, "%.*s-flat.vmdk", (int)(n - 5), file) >= (int)sizeof flat ||
        access(flat, F_OK) != 0)
        return;
    snprintf(file, cap, "%s", flat);
}

/* "[ds] rel/path" → DSDIR/ds/rel/path (the site's datastore directory when it names one) and the
 * datastore's type; *site_ds the site's entry (-1: none). */
static VixError s_resolve(const char *path, char *file, size_t cap, char *dstype, size_t tcap,
                          int *site_ds)
{
    snprintf(dstype, tcap, "VMFS");
    *site_ds = -1;
    const char *close = path[0] == '[' ? strchr(path, ']') : NULL;
    if (!close)
        return VIX_E_FILE_NOT_FOUND;
    const char *rel = close + 1;
    while (*rel == ' ')
        rel++;
    int n = (int)(close - path - 1);
    for (size_t i = 0; g.site && i < g.nds; i++) {
        if ((int)strlen(g.ds[i].name) == n && strncmp(g.ds[i].name, path + 1, (size_t)n) == 0 &&
            g.ds[i].dir[0]) {
            snprintf(file, cap, "%s/%s", g.ds[i].dir, rel);
            snprintf(dstype, tcap, "%s", g.ds[i].type);
            *site_ds = (int)i;
            s_flat_extent(file, cap);
            return VIX_OK;
        }
    }
    if (!g.dsdir[0])
        return VIX_E_FILE_NOT_FOUND;
    snprintf(file, cap, "%s/%.*s/%s", g.dsdir, n, path + 1, rel);
    char tpath[PATHMAX];
    snprintf(tpath, sizeof tpath, "%s/%.*s/.type", g.dsdir, n, path + 1);
    FILE *f = fopen(tpath, "r");
    if (f) {
        if (fgets(dstype, (int)tcap, f))
            s_trim(dstype);
        fclose(f);
    }
    return VIX_OK;
}

/* `word` is one of the comma-separated items of list. */
static int s_listed(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; word[0] && *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, word, n) == 0)
            return 1;
        p += k + (p[k] == ',');
    }
    return 0;
}

/* Why HotAdd cannot attach a disk on datastore ds to the proxy ("" when it can): the proxy VM's
 * host must mount it (still: the faults file), or without proxy_vm the proxy_datastores list. */
static void s_hotadd_refusal(int ds, const char *path, char *why, size_t cap)
{
    char lost[1024];
    int proxy = g.proxy_vm[0] ? s_find_vm(g.proxy_vm) : -1;
    s_fault("hotadd_unmounted", lost, sizeof lost);
    if (g.proxy_vm[0] && proxy < 0)
        snprintf(why, cap, "HotAdd cannot attach %s: proxy VM %s is not in the inventory", path,
                 g.proxy_vm);
    else if (proxy >= 0 &&
             (!s_listed(g.ds[ds].hosts, g.vm[proxy].host) || s_listed(lost, g.ds[ds].name)))
        snprintf(why, cap,
                 "HotAdd cannot attach %s: host %s of proxy VM %s does not mount datastore %s",
                 path, g.vm[proxy].host, g.proxy_vm, g.ds[ds].name);
    else if (proxy < 0 && !s_listed(g.proxy_datastores, g.ds[ds].name))
        snprintf(why, cap, "HotAdd cannot attach %s: the proxy's host does not mount datastore %s",
                 path, g.ds[ds].name);
}

/* Why SAN cannot read a disk on datastore ds ("" when it can): the datastore must sit on a LUN
 * the proxy sees (proxy_luns), and still sees (the faults file's luns_lost). */
static void s_san_refusal(int ds, const char *path, char *why, size_t cap)
{
    char lost[1024];
    s_fault("luns_lost", lost, sizeof lost);
    if (!g.ds[ds].lun[0] || !s_listed(g.proxy_luns, g.ds[ds].lun) || s_listed(lost, g.ds[ds].lun))
        snprintf(why, cap,
                 "SAN transport cannot open %s: the proxy does not see the LUN%s%s of datastore %s",
                 path, g.ds[ds].lun[0] ? " " : "", g.ds[ds].lun, g.ds[ds].name);
}

/* Why the site refuses mode m for a disk on its datastore ds ("" when it does not): SAN needs a
 * LUN the proxy sees, HotAdd a datastore the proxy's host mounts. */
static void s_site_refusal(const char *m, int ds, int vm, const char *path, char *why,
                           size_t cap)
{
    why[0] = '\0';
    if (!g.site || ds < 0)
        return;
    if (strcmp(m, "nbd") == 0 && g.require_encryption)
        snprintf(why, cap,
                 "NBD cannot open %s: the host requires encrypted NFC transfers (NoNfcSession), "
                 "use NBDSSL",
                 path);
    else if (strcmp(m, "hotadd") == 0 && vm >= 0 && g.vm[vm].linked_clone &&
             strcmp(g.ds[ds].type, "VVOL") == 0)
        snprintf(why, cap,
                 "HotAdd of %s is not supported: VM %s is a linked clone on vVol datastore %s",
                 path, g.vm[vm].moref, g.ds[ds].name);
    else if (strcmp(m, "san") == 0)
        s_san_refusal(ds, path, why, cap);
    else if (strcmp(m, "hotadd") == 0)
        s_hotadd_refusal(ds, path, why, cap);
}

/* The first mode of the connection's list that may open a disk on a datastore of this type. */
static VixError s_pick_mode(const struct VixDiskLibConnectParam *c, const char *dstype, int ds,
                            const char *path, char *mode, size_t cap)
{
    char buf[128], why[512] = "", site_why[512];
    snprintf(buf, sizeof buf, "%s", c->modes);
    for (char *save = NULL, *m = strtok_r(buf, ":", &save); m; m = strtok_r(NULL, ":", &save)) {
        if (strcmp(m, "san") == 0 && (strcmp(dstype, "vsan") == 0 || strcmp(dstype, "VVOL") == 0)) {
            snprintf(why, sizeof why, "SAN transport is not supported for %s: its datastore is %s",
                     path, dstype);
            s_say(g.log, "%s\n", why);
            continue;
        }
        s_site_refusal(m, ds, c->vm, path, site_why, sizeof site_why);
        if (site_why[0]) {
            snprintf(why, sizeof why, "%s", site_why);
            s_say(g.log, "%s\n", why);
            continue;
        }
        if ((strcmp(m, "file") == 0) != (c->server == NULL))
            continue;
        snprintf(mode, cap, "%s", m);
        return VIX_OK;
    }
    if (why[0])
        s_say(g.warn, "%s\n", why);
    else
        s_say(g.warn, "no transport mode in '%s' can open %s\n", c->modes, path);
    return VIX_E_NOT_SUPPORTED;
}

/* The site lists `path` as a disk of VM vm. */
static int s_vm_has_disk(int vm, const char *path)
{
    return s_line_listed(g.vm[vm].disks, path);
}

EXPORT VixError VixDiskLib_Open(const VixDiskLibConnection c, const char *path, uint32_t flags,
                                VixDiskLibHandle *out)
{
    if (!c || !path || !out)
        return VIX_E_INVALID_ARG;
    char file[PATHMAX], dstype[32], mode[16];
    int ds = -1;
    if (c->server && c->vm >= 0 && !s_vm_has_disk(c->vm, path)) {
        s_say(g.warn, "%s is not a disk of virtual machine %s\n", path, g.vm[c->vm].moref);
        return VIX_E_FILE_NOT_FOUND;
    }
    if (c->server && c->fcd >= 0 && strcmp(path, g.fcd[c->fcd].disk) != 0) {
        s_say(g.warn, "%s is not the backing of First Class Disk %s\n", path, g.fcd[c->fcd].id);
        return VIX_E_FILE_NOT_FOUND;
    }
    if (c->server) {
        if (s_resolve(path, file, sizeof file, dstype, sizeof dstype, &ds) != VIX_OK) {
            s_say(g.warn, "cannot resolve datastore path %s\n", path);
            return VIX_E_FILE_NOT_FOUND;
        }
    } else {
        snprintf(file, sizeof file, "%s", path);
        snprintf(dstype, sizeof dstype, "local");
    }
    VixError err = s_pick_mode(c, dstype, ds, path, mode, sizeof mode);
    if (err != VIX_OK)
        return err;
    Bool ro = c->read_only || (flags & VIXDISKLIB_FLAG_OPEN_READ_ONLY);
    int fd = open(file, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) {
        s_say(g.warn, "cannot open %s (%s): %s\n", path, file, strerror(errno));
        return errno == ENOENT ? VIX_E_FILE_NOT_FOUND : VIX_E_FILE_ACCESS_ERROR;
    }
    struct VixDiskLibHandleStruct *h = calloc(1, sizeof *h);
    if (!h) {
        close(fd);
        return VIX_E_OUT_OF_MEMORY;
    }
    h->fd = fd;
    h->sectors = (uint64_t)lseek(fd, 0, SEEK_END) / VIXDISKLIB_SECTOR_SIZE;
    h->opener = pthread_self();
    h->read_only = ro;
    char fails[8];
    s_fault("read_fails", fails, sizeof fails);
    h->read_fails = strcmp(fails, "1") == 0;
    snprintf(h->mode, sizeof h->mode, "%s", mode);
    pthread_mutex_lock(&g.lock);
    snprintf(h->lockfile, sizeof h->lockfile, "%s/vixdisklib-%d-%u.lck", g.tmpdir, (int)getpid(),
             g.next_lock++);
    pthread_mutex_unlock(&g.lock);
    int lfd = open(h->lockfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (lfd >= 0)
        close(lfd);
    s_say(g.log, "opened %s in mode %s\n", path, mode);
    *out = h;
    return VIX_OK;
}

EXPORT VixError VixDiskLib_Close(VixDiskLibHandle h)
{
    if (!h)
        return VIX_E_INVALID_ARG;
    close(h->fd);
    unlink(h->lockfile);
    free(h);
    return VIX_OK;
}

EXPORT const char *VixDiskLib_GetTransportMode(VixDiskLibHandle h)
{
    return h ? h->mode : NULL;
}

EXPORT VixError VixDiskLib_GetInfo(VixDiskLibHandle h, VixDiskLibInfo **info)
{
    if (!h || !info)
        return VIX_E_INVALID_ARG;
    VixDiskLibInfo *i = calloc(1, sizeof *i);
    if (!i)
        return VIX_E_OUT_OF_MEMORY;
    i->capacity = h->sectors;
    i->adapterType = 3;
    i->numLinks = 1;
    *info = i;
    return VIX_OK;
}

EXPORT void VixDiskLib_FreeInfo(VixDiskLibInfo *info)
{
    free(info);
}

/* Appends [s, e) in sectors, merged with the previous block. */
static int s_add_block(VixDiskLibBlockList **list, uint32_t *cap, uint64_t s, uint64_t e)
{
    VixDiskLibBlockList *l = *list;
    if (l->numBlocks &&
        l->blocks[l->numBlocks - 1].offset + l->blocks[l->numBlocks - 1].length >= s) {
        VixDiskLibBlock *b = &l->blocks[l->numBlocks - 1];
        if (e > b->offset + b->length)
            b->length = e - b->offset;
        return 0;
    }
    if (l->numBlocks == *cap) {
        uint32_t ncap = *cap * 2;
        l = realloc(l, sizeof *l + ncap * sizeof l->blocks[0]);
        if (!l)
            return -1;
        *list = l;
        *cap = ncap;
    }
    l->blocks[l->numBlocks++] = (VixDiskLibBlock){s, e - s};
    return 0;
}

EXPORT VixError VixDiskLib_QueryAllocatedBlocks(VixDiskLibHandle h, VixDiskLibSectorType start,
                                                VixDiskLibSectorType num,
                                                VixDiskLibSectorType chunk,
                                                VixDiskLibBlockList **out)
{
    if (!h || !out)
        return VIX_E_INVALID_ARG;
    if (!pthread_equal(pthread_self(), h->opener)) {
        s_say(g.warn, "QueryAllocatedBlocks called from a thread other than the one that opened "
                      "the disk\n");
        return VIX_E_FAIL;
    }
    if (chunk < VIXDISKLIB_MIN_CHUNK_SIZE || (chunk & (chunk - 1)) || start % chunk ||
        num % chunk || num / chunk > VIXDISKLIB_MAX_CHUNK_NUMBER || start + num > h->sectors)
        return VIX_E_INVALID_ARG;
    uint32_t cap = 16;
    VixDiskLibBlockList *l = calloc(1, sizeof *l + cap * sizeof l->blocks[0]);
    if (!l)
        return VIX_E_OUT_OF_MEMORY;
    uint64_t pos = start * VIXDISKLIB_SECTOR_SIZE, end = (start + num) * VIXDISKLIB_SECTOR_SIZE;
    uint64_t cb = chunk * VIXDISKLIB_SECTOR_SIZE;
    while (pos < end) {
        off_t d = lseek(h->fd, (off_t)pos, SEEK_DATA);
        if (d < 0 || (uint64_t)d >= end)
            break;
        off_t hole = lseek(h->fd, d, SEEK_HOLE);
        uint64_t e = hole < 0 || (uint64_t)hole > end ? end : (uint64_t)hole;
        uint64_t cs = (uint64_t)d / cb * cb, ce = (e + cb - 1) / cb * cb;
        if (s_add_block(&l, &cap, cs / VIXDISKLIB_SECTOR_SIZE, ce / VIXDISKLIB_SECTOR_SIZE) != 0) {
            free(l);
            return VIX_E_OUT_OF_MEMORY;
        }
        pos = e;
    }
    *out = l;
    return VIX_OK;
}

EXPORT VixError VixDiskLib_FreeBlockList(VixDiskLibBlockList *l)
{
    free(l);
    return VIX_OK;
}

EXPORT VixError VixDiskLib_Read(VixDiskLibHandle h, VixDiskLibSectorType start,
                                VixDiskLibSectorType num, uint8_t *buf)
{
    if (!h || !buf)
        return VIX_E_INVALID_ARG;
    if (start + num > h->sectors)
        return VIX_E_DISK_OUTOFRANGE;
    if (h->read_fails) {
        s_say(g.warn, "NBD_ERR_GENERIC: read of %llu sectors at %llu failed\n",
              (unsigned long long)num, (unsigned long long)start);
        return VIX_E_FILE_ERROR;
    }
    size_t len = num * VIXDISKLIB_SECTOR_SIZE;
    off_t off = (off_t)(start * VIXDISKLIB_SECTOR_SIZE);
    while (len) {
        ssize_t n = pread(h->fd, buf, len, off);
        if (n <= 0)
            return VIX_E_FILE_ERROR;
        buf += n;
        len -= (size_t)n;
        off += n;
    }
    return VIX_OK;
}

EXPORT VixError VixDiskLib_Write(VixDiskLibHandle h, VixDiskLibSectorType start,
                                 VixDiskLibSectorType num, const uint8_t *buf)
{
    if (!h || !buf)
        return VIX_E_INVALID_ARG;
    if (h->read_only)
        return VIX_E_FILE_READ_ONLY;
    if (start + num > h->sectors)
        return VIX_E_DISK_OUTOFRANGE;
    size_t len = num * VIXDISKLIB_SECTOR_SIZE;
    off_t off = (off_t)(start * VIXDISKLIB_SECTOR_SIZE);
    while (len) {
        ssize_t n = pwrite(h->fd, buf, len, off);
        if (n <= 0)
            return VIX_E_FILE_ERROR;
        buf += n;
        len -= (size_t)n;
        off += n;
    }
    return VIX_OK;
}

/* Removes what another process left in tmpDirectory; counts this process's live lock files as
 * remaining. */
EXPORT VixError VixDiskLib_Cleanup(const VixDiskLibConnectParams *p, uint32_t *cleaned,
                                   uint32_t *remaining)
{
    (void)p;
    if (!g.initialized)
        return VIX_E_DISK_NOINIT;
    uint32_t done = 0, left = 0;
    char mine[64];
    snprintf(mine, sizeof mine, "vixdisklib-%d-", (int)getpid());
    DIR *d = opendir(g.tmpdir);
    if (!d)
        return VIX_E_FILE_ERROR;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strncmp(e->d_name, mine, strlen(mine)) == 0) {
            left++;
            continue;
        }
        char path[PATHMAX + 256];
        snprintf(path, sizeof path, "%s/%s", g.tmpdir, e->d_name);
        if (unlink(path) == 0)
            done++;
        else
            left++;
    }
    closedir(d);
    if (cleaned)
        *cleaned = done;
    if (remaining)
        *remaining = left;
    s_say(g.log, "cleanup of %s: %u removed, %u remaining\n", g.tmpdir, done, left);
    return VIX_OK;
}

EXPORT char *VixDiskLib_GetErrorText(VixError err, const char *locale)
{
    (void)locale;
    const char *t;
    switch (VIX_ERROR_CODE(err)) {
    case VIX_OK:
        t = "The operation was successful";
        break;
    case VIX_E_FAIL:
        t = "Unknown error";
        break;
    case VIX_E_OUT_OF_MEMORY:
        t = "Memory allocation failed: out of memory";
        break;
    case VIX_E_INVALID_ARG:
        t = "One of the parameters was invalid";
        break;
    case VIX_E_FILE_NOT_FOUND:
        t = "The file was not found";
        break;
    case VIX_E_NOT_SUPPORTED:
        t = "The operation is not supported";
        break;
    case VIX_E_FILE_READ_ONLY:
        t = "The file is write-protected";
        break;
    case VIX_E_HOST_NETWORK_CONN_REFUSED:
        t = "Connection refused by the host";
        break;
    case VIX_E_NET_HTTP_SSL_SECURITY:
        t = "SSL security error";
        break;
    case VIX_E_CANNOT_CONNECT_TO_HOST:
        t = "Cannot connect to host";
        break;
    case VIX_E_DISK_NOINIT:
        t = "The disk library has not been initialized";
        break;
    case VIX_E_DISK_OUTOFRANGE:
        t = "The specified sector is out of range";
        break;
    default:
        t = "Unknown error";
        break;
    }
    return strdup(t);
}

EXPORT void VixDiskLib_FreeErrorText(char *text)
{
    free(text);
}
