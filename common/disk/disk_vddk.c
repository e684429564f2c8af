/* disk_vddk — VMware's libvixDiskLib.so, loaded with dlopen on proxies that have it.
 *
 * One library session per connection: the first vddk route loads the library from the libdir
 * (connection setting, then the URI's libdir=, then VB_DISK_VDDK_DEFAULT_LIBDIR) and calls
 * VixDiskLib_InitEx with the config file (which must set tmpDirectory for Cleanup to work: release
 * notes, "Clean-up function not working with default tmpDirectory"). Each open is one
 * VixDiskLib_ConnectEx with a single transport mode + VixDiskLib_Open, so disk.c decides the
 * fallback order and records each mode's failure. A VDDK handle is not for concurrent use: reads
 * and writes from worker threads take the handle's mutex. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk/disk_backend.h"
#include "disk/vixdisklib_api.h"
#include "log.h"

#define VDDK_CHUNK_SECTORS 128ull /* 64 KiB, VIXDISKLIB_MIN_CHUNK_SIZE */
#define VDDK_PATH_MAX 1024

typedef struct {
    void *dl;
    char version[32]; /* from InitEx's "VMware VixDiskLib (7.0.3) Release ..." line; "" unknown */
    char libdir[VDDK_PATH_MAX];
    char libpath[VDDK_PATH_MAX];
    bool initialized;
    VixDiskLib_InitEx_fn InitEx;
    VixDiskLib_Exit_fn Exit;
    VixDiskLib_AllocateConnectParams_fn AllocateConnectParams; /* optional (VDDK ≥ 6.7) */
    VixDiskLib_FreeConnectParams_fn FreeConnectParams;         /* optional */
    VixDiskLib_ConnectEx_fn ConnectEx;
    VixDiskLib_Disconnect_fn Disconnect;
    VixDiskLib_Open_fn Open;
    VixDiskLib_Close_fn Close;
    VixDiskLib_GetInfo_fn GetInfo;
    VixDiskLib_FreeInfo_fn FreeInfo;
    VixDiskLib_GetTransportMode_fn GetTransportMode; /* optional */
    VixDiskLib_QueryAllocatedBlocks_fn QueryAllocatedBlocks;
    VixDiskLib_FreeBlockList_fn FreeBlockList;
    VixDiskLib_Read_fn Read;
    VixDiskLib_Write_fn Write;
    VixDiskLib_Cleanup_fn Cleanup;
    VixDiskLib_GetErrorText_fn GetErrorText;
    VixDiskLib_FreeErrorText_fn FreeErrorText;
} vddk_lib_t;

typedef struct {
    vddk_lib_t *lib;
    VixDiskLibConnection conn;
    VixDiskLibHandle handle;
    pthread_mutex_t lock;
    uint64_t capacity;
    char file[VDDK_PATH_MAX];
} vddk_disk_t;

/* VixDiskLib's log callbacks carry no user pointer. The last warning of the calling thread is
 * kept here so the error of the call that caused it can quote it; per thread, not shared. */
static _Thread_local char s_last_warning[512];
/* The version the library names in its log while InitEx runs on this thread. */
static _Thread_local char s_init_version[32];

VB_PRINTF(3, 0) static void s_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    vsnprintf(buf, cap, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
}

VB_PRINTF(1, 0) static void s_log_cb(const char *fmt, va_list ap)
{
    char line[512];
    s_vformat(line, sizeof line, fmt, ap);
    VB_LOG_DEBUG("vddk", "log msg=\"%s\"", line);
    /* VDDK starts its log with "VMware VixDiskLib (7.0.3) Release build-19513565" */
    const char *v = strstr(line, "VixDiskLib (");
    if (v && !s_init_version[0]) {
        v += strlen("VixDiskLib (");
        size_t n = strspn(v, "0123456789.");
        if (n > 0 && n < sizeof s_init_version && v[n] == ')')
            snprintf(s_init_version, sizeof s_init_version, "%.*s", (int)n, v);
    }
}

VB_PRINTF(1, 0) static void s_warn_cb(const char *fmt, va_list ap)
{
    s_vformat(s_last_warning, sizeof s_last_warning, fmt, ap);
    VB_LOG_WARN("vddk", "warning msg=\"%s\"", s_last_warning);
}

VB_PRINTF(1, 0) static void s_panic_cb(const char *fmt, va_list ap)
{
    char line[512];
    s_vformat(line, sizeof line, fmt, ap);
    VB_LOG_ERROR("vddk", "panic msg=\"%s\"", line);
}

/* "TEXT (VIX error N)[; VDDK said: WARNING]" into buf. */
static void s_vix_text(vddk_lib_t *lib, VixError err, char *buf, size_t cap)
{
    char *text = lib->GetErrorText(err, NULL);
    snprintf(buf, cap, "%s (VIX error %llu)%s%s", text ? text : "unknown error",
             (unsigned long long)VIX_ERROR_CODE(err), s_last_warning[0] ? "; VDDK said: " : "",
             s_last_warning);
    if (text)
        lib->FreeErrorText(text);
}

static int s_vix_code(VixError err)
{
    switch (VIX_ERROR_CODE(err)) {
    case VIX_E_FILE_NOT_FOUND:
        return VB_ENOTFOUND;
    case VIX_E_NOT_SUPPORTED:
        return VB_EPOLICY;
    case VIX_E_NET_HTTP_SSL_SECURITY:
        return VB_EAUTH;
    case VIX_E_OUT_OF_MEMORY:
        return VB_ENOMEM;
    case VIX_E_INVALID_ARG:
        return VB_EINVAL;
    default:
        return VB_EIO;
    }
}

void vb_disk_vddk_state_free(void *state)
{
    vddk_lib_t *lib = state;
    if (!lib)
        return;
    if (lib->initialized)
        lib->Exit();
    if (lib->dl)
        dlclose(lib->dl);
    free(lib);
}

#define LOAD(name, required)                                                                       \
    do {                                                                                           \
        *(void **)&lib->name = dlsym(lib->dl, "VixDiskLib_" #name);                                \
        if ((required) && !lib->name) {                                                            \
            rc = vb_error_set(VB_EUNSUPPORTED, "%s has no VixDiskLib_%s: not a usable VDDK",       \
                              lib->libpath, #name);                                                \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Loads the library and calls InitEx, once per connection. */
static int s_lib(vb_disk_conn_t *conn, const vb_disk_uri_t *uri, vddk_lib_t **out)
{
    void **slot = vb_disk_conn_vddk_state(conn);
    const char *libdir = vb_disk_conn_vddk_libdir(conn);
    if (!libdir)
        libdir = vb_disk_uri_get(uri, "libdir");
    if (!libdir)
        libdir = VB_DISK_VDDK_DEFAULT_LIBDIR;
    if (*slot) {
        vddk_lib_t *have = *slot;
        if (strcmp(have->libdir, libdir) != 0)
            return vb_error_set(VB_EINVAL, "VDDK already loaded from %s, cannot also use %s",
                                have->libdir, libdir);
        *out = have;
        return 0;
    }
    int rc = 0;
    vddk_lib_t *lib = calloc(1, sizeof *lib);
    if (!lib)
        return vb_error_set(VB_ENOMEM, "out of memory loading VDDK");
    snprintf(lib->libdir, sizeof lib->libdir, "%s", libdir);
    static const char *const names[] = {"lib64/libvixDiskLib.so", "lib64/libvixDiskLib.so.7",
                                        "libvixDiskLib.so"};
    char tried[1536] = "";
    size_t tn = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib->dl; i++) {
        snprintf(lib->libpath, sizeof lib->libpath, "%s/%s", libdir, names[i]);
        lib->dl = dlopen(lib->libpath, RTLD_NOW | RTLD_LOCAL);
        if (!lib->dl && tn < sizeof tried) {
            int w = snprintf(tried + tn, sizeof tried - tn, "%s%s", tn ? ", " : "", lib->libpath);
            if (w > 0)
                tn += (size_t)w;
        }
    }
    if (!lib->dl) {
        rc = vb_error_set(VB_ENOTFOUND,
                          "VMware VDDK library libvixDiskLib.so not found (searched %s); install "
                          "VDDK on this proxy or give its directory (libdir= / vddk_libdir)",
                          tried);
        goto out;
    }
    LOAD(InitEx, true);
    LOAD(Exit, true);
    LOAD(AllocateConnectParams, false);
    LOAD(FreeConnectParams, false);
    LOAD(ConnectEx, true);
    LOAD(Disconnect, true);
    LOAD(Open, true);
    LOAD(Close, true);
    LOAD(GetInfo, true);
    LOAD(FreeInfo, true);
    LOAD(GetTransportMode, false);
    LOAD(QueryAllocatedBlocks, true);
    LOAD(FreeBlockList, true);
    LOAD(Read, true);
    LOAD(Write, true);
    LOAD(Cleanup, true);
    LOAD(GetErrorText, true);
    LOAD(FreeErrorText, true);
    const char *config = vb_disk_conn_vddk_config(conn);
    if (!config)
        config = vb_disk_uri_get(uri, "config");
    s_last_warning[0] = '\0';
    s_init_version[0] = '\0';
    VixError err = lib->InitEx(VIXDISKLIB_VERSION_MAJOR, VIXDISKLIB_VERSION_MINOR, s_log_cb,
                               s_warn_cb, s_panic_cb, libdir, config);
    if (err != VIX_OK) {
        char text[768];
        s_vix_text(lib, err, text, sizeof text);
        rc = vb_error_set(VB_EIO, "VixDiskLib_InitEx (library %s, config %s): %s", lib->libpath,
                          config ? config : "(none)", text);
        goto out;
    }
    lib->initialized = true;
    snprintf(lib->version, sizeof lib->version, "%s", s_init_version);
    VB_LOG_INFO("vddk", "loaded lib=%s config=%s version=%s", lib->libpath,
                config ? config : "(none)", lib->version[0] ? lib->version : "unknown");
out:
    if (rc) {
        vb_disk_vddk_state_free(lib);
        return rc;
    }
    *slot = lib;
    *out = lib;
    return 0;
}

/* Connection parameters from the URI; caller frees with s_params_free. */
typedef struct {
    VixDiskLibConnectParams *p;
    bool allocated_by_lib;
    char *password;
} vddk_params_t;

static void s_params_free(vddk_lib_t *lib, vddk_params_t *vp)
{
    if (vp->p) {
        if (vp->allocated_by_lib)
            lib->FreeConnectParams(vp->p);
        else
            free(vp->p);
    }
    if (vp->password) {
        memset(vp->password, 0, strlen(vp->password));
        free(vp->password);
    }
    memset(vp, 0, sizeof *vp);
}

/* The connection spec: a VM's (vmxSpec "moref=vm-N"; the snapshot goes to ConnectEx as its
 * snapshotRef) or a First Class Disk's (fcd= and datastore= of the route; the snapshot is the
 * spec's ssId). Returns whether it is an FCD's. */
static bool s_spec(VixDiskLibConnectParams *p, const vb_disk_uri_t *uri, const char *snapshot)
{
    const char *fcd = vb_disk_uri_get(uri, "fcd");
    if (!fcd) {
        p->specType = VIXDISKLIB_SPEC_VMX;
        p->vmxSpec = (char *)vb_disk_uri_get(uri, "vm");
        return false;
    }
    p->specType = VIXDISKLIB_SPEC_VSTORAGE_OBJECT;
    p->spec.vStorageObjSpec.id = (char *)fcd;
    p->spec.vStorageObjSpec.datastoreMoRef = (char *)vb_disk_uri_get(uri, "datastore");
    p->spec.vStorageObjSpec.ssId = (char *)snapshot;
    return true;
}

static int s_params(vddk_lib_t *lib, const vb_disk_uri_t *uri, vddk_params_t *vp)
{
    memset(vp, 0, sizeof *vp);
    if (lib->AllocateConnectParams && lib->FreeConnectParams) {
        vp->p = lib->AllocateConnectParams();
        vp->allocated_by_lib = vp->p != NULL;
    } else {
        vp->p = calloc(1, sizeof *vp->p);
    }
    if (!vp->p)
        return vb_error_set(VB_ENOMEM, "out of memory for VDDK connection parameters");
    const char *pwfile = vb_disk_uri_get(uri, "password-file");
    if (pwfile) {
        FILE *f = fopen(pwfile, "r");
        char line[512];
        if (!f)
            return vb_error_set(VB_ENOTFOUND, "password file %s: %s", pwfile, strerror(errno));
        bool got = fgets(line, sizeof line, f) != NULL;
        fclose(f);
        if (!got)
            return vb_error_set(VB_EINVAL, "password file %s is empty", pwfile);
        line[strcspn(line, "\r\n")] = '\0';
        vp->password = strdup(line);
        memset(line, 0, sizeof line);
        if (!vp->password)
            return vb_error_set(VB_ENOMEM, "out of memory reading %s", pwfile);
    }
    bool local = strcmp(uri->host, "local") == 0;
    /* The library only reads these strings during ConnectEx/Cleanup; the URI outlives the call. */
    vp->p->serverName = local ? NULL : uri->host;
    vp->p->thumbPrint = (char *)vb_disk_uri_get(uri, "thumbprint");
    vp->p->credType = VIXDISKLIB_CRED_UID;
    vp->p->creds.uid.userName = uri->user;
    vp->p->creds.uid.password = vp->password;
    vp->p->port = (uint32_t)uri->port;
    (void)s_spec(vp->p, uri, NULL);
    return 0;
}

static void s_close(void *impl)
{
    vddk_disk_t *v = impl;
    if (!v)
        return;
    if (v->handle)
        v->lib->Close(v->handle);
    if (v->conn)
        v->lib->Disconnect(v->conn);
    pthread_mutex_destroy(&v->lock);
    free(v);
}

static int s_open(vb_disk_conn_t *conn, const vb_disk_uri_t *uri, const char *mode,
                  const char *snapshot, bool read_only, void **impl_out, uint64_t *capacity_out)
{
    const char *file = vb_disk_uri_get(uri, "file");
    if (!file || !*file)
        return vb_error_set(VB_EINVAL, "vddk URI without file= (the datastore path of the disk)");
    vddk_lib_t *lib = NULL;
    int rc = s_lib(conn, uri, &lib);
    if (rc)
        return rc;
    vddk_params_t vp;
    vddk_disk_t *v = calloc(1, sizeof *v);
    if (!v)
        return vb_error_set(VB_ENOMEM, "out of memory opening a VDDK disk");
    v->lib = lib;
    pthread_mutex_init(&v->lock, NULL);
    snprintf(v->file, sizeof v->file, "%s", file);
    rc = s_params(lib, uri, &vp);
    if (rc)
        goto out;
    char text[768];
    s_last_warning[0] = '\0';
    /* The route's snapshot (vSphere jobs) wins over the caller's snapshot argument. */
    const char *ss = vb_disk_uri_get(uri, "snapshot");
    if (!ss)
        ss = snapshot;
    bool fcd = s_spec(vp.p, uri, ss);
    VixError err = lib->ConnectEx(vp.p, read_only, fcd ? NULL : ss, mode, &v->conn);
    if (err != VIX_OK) {
        s_vix_text(lib, err, text, sizeof text);
        if (VIX_ERROR_CODE(err) == VIX_E_NET_HTTP_SSL_SECURITY)
            rc = vb_error_set(
                VB_EAUTH, "certificate of %s does not match the expected thumbprint %s: %s",
                uri->host, vp.p->thumbPrint ? vp.p->thumbPrint : "(none given)", text);
        else if (VIX_ERROR_CODE(err) == VIX_E_HOST_NETWORK_CONN_REFUSED)
            rc = vb_error_set(VB_EIO,
                              "cannot reach %s port 902 (NFC) in mode %s: %s; open TCP port 902 "
                              "from this proxy to the ESXi host",
                              vb_disk_uri_get(uri, "esx") ? vb_disk_uri_get(uri, "esx")
                                                          : uri->host,
                              mode, text);
        else
            rc = vb_error_set(s_vix_code(err), "VixDiskLib_ConnectEx to %s in mode %s: %s",
                              uri->host, mode, text);
        v->conn = NULL;
        goto out;
    }
    s_last_warning[0] = '\0';
    uint32_t flags = read_only ? VIXDISKLIB_FLAG_OPEN_READ_ONLY : 0;
    err = lib->Open(v->conn, file, flags, &v->handle);
    if (err != VIX_OK) {
        s_vix_text(lib, err, text, sizeof text);
        rc =
            vb_error_set(s_vix_code(err), "VixDiskLib_Open of %s in mode %s: %s", file, mode, text);
        v->handle = NULL;
        goto out;
    }
    VixDiskLibInfo *info = NULL;
    err = lib->GetInfo(v->handle, &info);
    if (err != VIX_OK || !info) {
        s_vix_text(lib, err, text, sizeof text);
        rc = vb_error_set(VB_EIO, "VixDiskLib_GetInfo of %s: %s", file, text);
        goto out;
    }
    v->capacity = info->capacity * VIXDISKLIB_SECTOR_SIZE;
    lib->FreeInfo(info);
    if (lib->GetTransportMode) {
        const char *got = lib->GetTransportMode(v->handle);
        VB_LOG_INFO("vddk", "opened file=\"%s\" asked=%s got=%s", file, mode, got ? got : "?");
        if (got && strcmp(got, mode) != 0) {
            rc = vb_error_set(VB_EPROTO, "VDDK opened %s in mode %s, not the %s asked for", file,
                              got, mode);
            goto out;
        }
    }
    *capacity_out = v->capacity;
out:
    s_params_free(lib, &vp);
    if (rc) {
        s_close(v);
        return rc;
    }
    *impl_out = v;
    return 0;
}

static int s_prepare(vb_disk_conn_t *conn, const vb_disk_uri_t *uri)
{
    vddk_lib_t *lib = NULL;
    return s_lib(conn, uri, &lib);
}

static int s_allocated(void *impl, uint64_t offset, uint64_t length, vb_extent_list_t *out)
{
    vddk_disk_t *v = impl;
    const uint64_t chunk_bytes = VDDK_CHUNK_SECTORS * VIXDISKLIB_SECTOR_SIZE;
    uint64_t end = offset + length;
    /* VDDK answers whole chunks inside the capacity; a partial last chunk counts as allocated. */
    uint64_t qstart = offset / chunk_bytes * chunk_bytes;
    uint64_t qend = (end + chunk_bytes - 1) / chunk_bytes * chunk_bytes;
    uint64_t cap_chunks = v->capacity / chunk_bytes * chunk_bytes;
    if (qend > cap_chunks)
        qend = cap_chunks;
    const uint64_t step = (uint64_t)VIXDISKLIB_MAX_CHUNK_NUMBER / 2 * chunk_bytes;
    for (uint64_t pos = qstart; pos < qend; pos += step) {
        uint64_t n = qend - pos < step ? qend - pos : step;
        VixDiskLibBlockList *bl = NULL;
        s_last_warning[0] = '\0';
        VixError err =
            v->lib->QueryAllocatedBlocks(v->handle, pos / VIXDISKLIB_SECTOR_SIZE,
                                         n / VIXDISKLIB_SECTOR_SIZE, VDDK_CHUNK_SECTORS, &bl);
        if (err != VIX_OK) {
            char text[768];
            s_vix_text(v->lib, err, text, sizeof text);
            return vb_error_set(VB_EUNSUPPORTED, "VixDiskLib_QueryAllocatedBlocks on %s: %s",
                                v->file, text);
        }
        int rc = 0;
        for (uint32_t i = 0; bl && i < bl->numBlocks && rc == 0; i++) {
            uint64_t s = bl->blocks[i].offset * VIXDISKLIB_SECTOR_SIZE;
            uint64_t e = s + bl->blocks[i].length * VIXDISKLIB_SECTOR_SIZE;
            if (s < offset)
                s = offset;
            if (e > end)
                e = end;
            if (s < e)
                rc = vb_extent_list_add(out, s, e - s);
        }
        v->lib->FreeBlockList(bl);
        if (rc)
            return rc;
    }
    uint64_t tail = qend > offset ? qend : offset;
    if (tail < end)
        return vb_extent_list_add(out, tail, end - tail);
    return 0;
}

static int s_io(vddk_disk_t *v, void *rbuf, const void *wbuf, size_t len, uint64_t offset)
{
    VixError err;
    pthread_mutex_lock(&v->lock);
    s_last_warning[0] = '\0';
    if (rbuf)
        err = v->lib->Read(v->handle, offset / VIXDISKLIB_SECTOR_SIZE, len / VIXDISKLIB_SECTOR_SIZE,
                           rbuf);
    else
        err = v->lib->Write(v->handle, offset / VIXDISKLIB_SECTOR_SIZE,
                            len / VIXDISKLIB_SECTOR_SIZE, wbuf);
    pthread_mutex_unlock(&v->lock);
    if (err == VIX_OK)
        return 0;
    char text[768];
    s_vix_text(v->lib, err, text, sizeof text);
    return vb_error_set(VB_EIO, "VixDiskLib_%s of %zu bytes at %llu on %s: %s",
                        rbuf ? "Read" : "Write", len, (unsigned long long)offset, v->file, text);
}

static int s_read(void *impl, void *buf, size_t len, uint64_t offset)
{
    vddk_disk_t *v = impl;
    const uint64_t ss = VIXDISKLIB_SECTOR_SIZE;
    if (offset % ss == 0 && len % ss == 0)
        return s_io(v, buf, NULL, len, offset);
    /* Unaligned: read the covering sectors into a bounce buffer. */
    uint64_t s = offset / ss * ss, e = (offset + len + ss - 1) / ss * ss;
    uint8_t *bounce = malloc((size_t)(e - s));
    if (!bounce)
        return vb_error_set(VB_ENOMEM, "out of memory for a %llu byte read",
                            (unsigned long long)(e - s));
    int rc = s_io(v, bounce, NULL, (size_t)(e - s), s);
    if (rc == 0)
        memcpy(buf, bounce + (offset - s), len);
    free(bounce);
    return rc;
}

static int s_write(void *impl, const void *buf, size_t len, uint64_t offset)
{
    if (offset % VIXDISKLIB_SECTOR_SIZE || len % VIXDISKLIB_SECTOR_SIZE)
        return vb_error_set(VB_EINVAL, "VDDK writes must be whole 512-byte sectors");
    return s_io(impl, NULL, buf, len, offset);
}

static int s_flush(void *impl)
{
    (void)impl; /* VixDiskLib_Close flushes */
    return 0;
}

int vb_disk_vddk_cleanup(vb_disk_conn_t *conn, const vb_disk_uri_t *uri, unsigned *cleaned,
                         unsigned *remaining)
{
    vddk_lib_t *lib = NULL;
    int rc = s_lib(conn, uri, &lib);
    if (rc)
        return rc;
    vddk_params_t vp;
    rc = s_params(lib, uri, &vp);
    if (rc == 0) {
        uint32_t c = 0, r = 0;
        s_last_warning[0] = '\0';
        VixError err = lib->Cleanup(vp.p, &c, &r);
        if (err != VIX_OK) {
            char text[768];
            s_vix_text(lib, err, text, sizeof text);
            rc = vb_error_set(VB_EIO, "VixDiskLib_Cleanup: %s", text);
        } else {
            *cleaned = c;
            *remaining = r;
            VB_LOG_INFO("vddk", "cleanup removed=%u remaining=%u", c, r);
        }
    }
    s_params_free(lib, &vp);
    return rc;
}

int vb_disk_vddk_version(vb_disk_conn_t *conn, char *out, size_t cap)
{
    vb_disk_uri_t none;
    memset(&none, 0, sizeof none);
    vddk_lib_t *lib = NULL;
    int rc = s_lib(conn, &none, &lib);
    if (rc)
        return rc;
    if (!lib->version[0])
        return vb_error_set(VB_ENOTFOUND, "%s did not say its version when it started",
                            lib->libpath);
    snprintf(out, cap, "%s", lib->version);
    return 0;
}

const vb_disk_backend_t vb_disk_vddk_backend = {
    .name = "vddk",
    .prepare = s_prepare,
    .open = s_open,
    .allocated = s_allocated,
    .read = s_read,
    .write = s_write,
    .flush = s_flush,
    .close = s_close,
};
