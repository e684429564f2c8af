/* gfs — a guest file system of a served disk, read with libguestfs (see gfs.h). */
#include "gfs.h"

#include <errno.h>
#include <fcntl.h>
#include <guestfs.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "path.h"

struct vb_gfs {
    guestfs_h *g;
    char accel[256];
    double launch_s;
    char *device, *fs_type;
    unsigned unreadable; /* entries a get skipped because the guest could not read them */
};

/* ---- KVM or TCG */

static bool s_cpu_has_virt(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[4096];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        if (strncmp(line, "flags", 5) == 0)
            found = strstr(line, " vmx") || strstr(line, " svm");
    if (f)
        fclose(f);
    return found;
}

bool vb_gfs_kvm_usable(char *why, size_t size)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, size, "/dev/kvm: %s", strerror(errno));
        return false;
    }
    close(fd);
    if (!s_cpu_has_virt()) {
        snprintf(why, size, "the CPU shows no vmx/svm flag");
        return false;
    }
    if (access("/sys/module/kvm_pvm", F_OK) == 0) {
        /* nested PVM: qemu aborts on an MSR or hangs until libguestfs's launch timeout */
        snprintf(why, size, "/dev/kvm is the nested kvm_pvm module");
        return false;
    }
    return true;
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int s_gfs_fail(vb_gfs_t *self, int code, const char *what)
{
    const char *err = self->g ? guestfs_last_error(self->g) : NULL;
    return vb_error_set(code, "%s: %s", what, err ? err : "libguestfs failed");
}

static int s_launch(vb_gfs_t *self, const char *socket_path, const char *export_name)
{
    char why[200];
    bool kvm = vb_gfs_kvm_usable(why, sizeof why);
    char *tcg[] = {"force_tcg", NULL}, *none[] = {NULL};
    char server[4200];
    snprintf(server, sizeof server, "unix:%s", socket_path);
    char *servers[] = {server, NULL};
    guestfs_set_error_handler(self->g, NULL, NULL); /* messages go into vbak's own errors */
    if (guestfs_set_backend(self->g, "direct") < 0 ||
        guestfs_set_backend_settings(self->g, kvm ? none : tcg) < 0)
        return s_gfs_fail(self, VB_EIO, "libguestfs backend");
    if (kvm)
        snprintf(self->accel, sizeof self->accel, "KVM");
    else
        snprintf(self->accel, sizeof self->accel, "TCG (no usable KVM: %s)", why);
    if (guestfs_add_drive_opts(self->g, export_name, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw",
                               GUESTFS_ADD_DRIVE_OPTS_READONLY, 1, GUESTFS_ADD_DRIVE_OPTS_PROTOCOL,
                               "nbd", GUESTFS_ADD_DRIVE_OPTS_SERVER, servers, -1) < 0)
        return s_gfs_fail(self, VB_EIO, "adding the served disk");
    double t0 = s_now();
    if (guestfs_launch(self->g) < 0)
        return s_gfs_fail(self, VB_EIO, "launching the libguestfs appliance");
    self->launch_s = s_now() - t0;
    return 0;
}

/* Mounts the first file system (in libguestfs's order: whole disk, then partitions) that
 * mounts read-only; the message lists every one tried. */
static int s_mount_first(vb_gfs_t *self)
{
    char **fs = guestfs_list_filesystems(self->g);
    if (!fs)
        return s_gfs_fail(self, VB_EIO, "listing the disk's file systems");
    char tried[2048] = "";
    size_t n = 0;
    int rc = VB_ECORRUPT;
    for (size_t i = 0; rc && fs[i] && fs[i + 1]; i += 2) {
        const char *dev = fs[i], *type = fs[i + 1], *why = "no file system recognised";
        if (strcmp(type, "swap") == 0)
            continue;
        if (strcmp(type, "unknown") != 0) {
            if (guestfs_mount_ro(self->g, dev, "/") == 0) {
                self->device = strdup(dev);
                self->fs_type = strdup(type);
                rc = 0;
                break;
            }
            why = guestfs_last_error(self->g) ? guestfs_last_error(self->g) : "?";
        }
        n += (size_t)snprintf(tried + n, n < sizeof tried ? sizeof tried - n : 0, "%s%s (%s): %s",
                              n ? "; " : "", dev, type, why);
    }
    for (size_t i = 0; fs[i]; i++)
        free(fs[i]);
    free(fs);
    if (rc)
        return vb_error_set(VB_ECORRUPT, "no file system on the disk could be mounted: %s",
                            n ? tried : "it has no partition or file system at all");
    if (!self->device || !self->fs_type)
        return vb_error_set(VB_ENOMEM, "out of memory");
    return 0;
}

int vb_gfs_open(const char *socket_path, const char *export_name, vb_gfs_t **out)
{
    *out = NULL;
    vb_gfs_t *self = calloc(1, sizeof *self);
    if (!self)
        return vb_error_set(VB_ENOMEM, "out of memory");
    int rc = 0;
    self->g = guestfs_create_flags(GUESTFS_CREATE_NO_ENVIRONMENT);
    if (!self->g)
        rc = vb_error_set(VB_EIO, "cannot create a libguestfs handle: %s", strerror(errno));
    if (!rc && guestfs_parse_environment(self->g) < 0) /* LIBGUESTFS_DEBUG, _TRACE, _PATH */
        rc = s_gfs_fail(self, VB_EIO, "libguestfs environment");
    if (!rc)
        rc = s_launch(self, socket_path, export_name);
    if (!rc)
        rc = s_mount_first(self);
    if (rc) {
        vb_gfs_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

void vb_gfs_destroy(vb_gfs_t **self_p)
{
    vb_gfs_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->g) {
        guestfs_shutdown(self->g);
        guestfs_close(self->g);
    }
    free(self->device);
    free(self->fs_type);
    free(self);
    *self_p = NULL;
}

const char *vb_gfs_accel_text(const vb_gfs_t *self)
{
    return self->accel;
}

double vb_gfs_launch_seconds(const vb_gfs_t *self)
{
    return self->launch_s;
}

const char *vb_gfs_device(const vb_gfs_t *self)
{
    return self->device;
}

const char *vb_gfs_fs_type(const vb_gfs_t *self)
{
    return self->fs_type;
}

/* ---- listing */

/* An entry the guest's kernel could not stat (a damaged file system: a directory linked into
 * itself, a bad inode) comes back with inode -1: "unreadable". */
static const char *s_type(const struct guestfs_statns *st)
{
    int64_t mode = st->st_mode;
    return st->st_ino == -1 ? "unreadable"
           : S_ISREG(mode)  ? "file"
           : S_ISDIR(mode)  ? "dir"
           : S_ISLNK(mode)  ? "symlink"
                            : "other";
}

static char *s_join(const char *dir, const char *name)
{
    char *p = NULL;
    size_t dl = strlen(dir);
    bool slash = dl > 0 && dir[dl - 1] == '/';
    return asprintf(&p, "%s%s%s", dir, slash ? "" : "/", name) < 0 ? NULL : p;
}

int vb_gfs_json_set_bytes(json_t *obj, const char *key, const char *bytes)
{
    json_t *v = json_string(bytes);
    if (v)
        return json_object_set_new(obj, key, v);
    size_t n = strlen(bytes);
    char *shown = malloc(4 * n + 1), *hex = malloc(2 * n + 1), hkey[64];
    int rc = -1;
    if (shown && hex) {
        static const char digit[] = "0123456789abcdef";
        char *o = shown;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)bytes[i];
            if (c < 0x80) {
                *o++ = (char)c;
            } else {
                *o++ = '\\';
                *o++ = 'x';
                *o++ = digit[c >> 4];
                *o++ = digit[c & 15];
            }
            hex[2 * i] = digit[c >> 4];
            hex[2 * i + 1] = digit[c & 15];
        }
        *o = '\0';
        hex[2 * n] = '\0';
        snprintf(hkey, sizeof hkey, "%s_hex", key);
        rc = json_object_set_new(obj, key, json_string(shown)) ||
             json_object_set_new(obj, hkey, json_string(hex));
    }
    free(shown);
    free(hex);
    return rc;
}

static unsigned s_hexval(char c)
{
    return c >= 'a' ? (unsigned)(c - 'a' + 10) : (unsigned)(c - '0') & 15u;
}

/* The bytes vb_gfs_json_set_bytes stored under `key` (caller frees); NULL when absent or out of memory. */
static char *s_get_bytes(json_t *obj, const char *key)
{
    char hkey[64];
    snprintf(hkey, sizeof hkey, "%s_hex", key);
    const char *hex = json_string_value(json_object_get(obj, hkey));
    if (!hex) {
        const char *v = json_string_value(json_object_get(obj, key));
        return v ? strdup(v) : NULL;
    }
    size_t n = strlen(hex) / 2;
    char *out = malloc(n + 1);
    for (size_t i = 0; out && i < n; i++)
        out[i] = (char)(s_hexval(hex[2 * i]) << 4 | s_hexval(hex[2 * i + 1]));
    if (out)
        out[n] = '\0';
    return out;
}

static json_t *s_entry(const char *dir, const char *name, const struct guestfs_statns *st,
                       const char *target)
{
    char *path = s_join(dir, name);
    json_t *e =
        path ? json_pack("{s:s, s:I, s:I, s:I, s:I}", "type", s_type(st), "mode",
                         (json_int_t)(st->st_mode & 07777), "size", (json_int_t)st->st_size,
                         "mtime", (json_int_t)st->st_mtime_sec, "inode", (json_int_t)st->st_ino)
             : NULL;
    if (e && (vb_gfs_json_set_bytes(e, "name", name) || vb_gfs_json_set_bytes(e, "path", path) ||
              (target && vb_gfs_json_set_bytes(e, "target", target)))) {
        json_decref(e);
        e = NULL;
    }
    free(path);
    return e;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void s_free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* The entries `names` of directory `dir` into *out. */
static int s_stat_names(vb_gfs_t *self, const char *dir, char **names, json_t *out)
{
    struct guestfs_statns_list *st = guestfs_lstatnslist(self->g, dir, names);
    char **links = st ? guestfs_readlinklist(self->g, dir, names) : NULL;
    if (!st || !links) {
        if (st)
            guestfs_free_statns_list(st);
        return s_gfs_fail(self, VB_EIO, dir);
    }
    int rc = 0;
    for (size_t i = 0; i < st->len && !rc; i++) {
        const struct guestfs_statns *s = &st->val[i];
        json_t *e = s_entry(dir, names[i], s, S_ISLNK(s->st_mode) ? links[i] : NULL);
        if (!e || json_array_append_new(out, e))
            rc = vb_error_set(VB_ENOMEM, "out of memory");
    }
    guestfs_free_statns_list(st);
    s_free_strv(links);
    return rc;
}

/* The directory part and the base name of an absolute guest path (caller frees both). */
static int s_split(const char *path, char **dir, char **base)
{
    const char *slash = strrchr(path, '/');
    *dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    *base = strdup(slash + 1);
    return *dir && *base ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
}

static int s_check_path(vb_gfs_t *self, const char *path)
{
    if (path[0] != '/')
        return vb_error_set(VB_EINVAL, "%s: a path in the guest starts with '/'", path);
    int exists = guestfs_exists(self->g, path);
    if (exists < 0)
        return s_gfs_fail(self, VB_EIO, path);
    return exists ? 0 : vb_error_set(VB_ENOTFOUND, "%s: no such file or directory", path);
}

int vb_gfs_ls(vb_gfs_t *self, const char *path, json_t **out)
{
    *out = NULL;
    int rc = s_check_path(self, path);
    if (rc)
        return rc;
    json_t *arr = json_array();
    char **names = NULL, *dir = NULL, *base = NULL;
    int isdir = guestfs_is_dir_opts(self->g, path, GUESTFS_IS_DIR_OPTS_FOLLOWSYMLINKS, 0, -1);
    if (!arr || isdir < 0) {
        rc = arr ? s_gfs_fail(self, VB_EIO, path) : vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    if (isdir) {
        if (!(names = guestfs_ls(self->g, path))) {
            rc = s_gfs_fail(self, VB_EIO, path);
            goto out;
        }
        size_t n = 0;
        while (names[n])
            n++;
        qsort(names, n, sizeof *names, s_cmp_str);
        rc = n ? s_stat_names(self, path, names, arr) : 0;
    } else if (!(rc = s_split(path, &dir, &base))) {
        char *one[] = {base, NULL};
        rc = s_stat_names(self, dir, one, arr);
    }
out:
    s_free_strv(names);
    free(dir);
    free(base);
    if (rc)
        json_decref(arr);
    else
        *out = arr;
    return rc;
}

/* ---- get */

static int s_set_meta(const char *local, json_t *e, bool link)
{
    json_int_t mtime = json_integer_value(json_object_get(e, "mtime"));
    const struct timespec ts[2] = {{(time_t)mtime, 0}, {(time_t)mtime, 0}};
    /* the guest's set-user-ID and set-group-ID bits are not carried over: a restore run as root
     * must not make a root-owned setuid program of a guest's file */
    mode_t mode = (mode_t)json_integer_value(json_object_get(e, "mode")) & 01777;
    if (!link && chmod(local, mode) < 0)
        return vb_error_set(VB_EIO, "chmod %s: %s", local, strerror(errno));
    if (utimensat(AT_FDCWD, local, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return vb_error_set(VB_EIO, "setting the times of %s: %s", local, strerror(errno));
    return 0;
}

static int s_get_entry(vb_gfs_t *self, json_t *e, const char *to_dir, size_t *bytes);

/* The reader of a download: what libguestfs writes into the pipe goes to the file, except whole
 * 4 KiB blocks of zeros, which stay holes — a sparse file stays sparse and never needs its
 * apparent size in free space, even for a moment. After an error it keeps draining the pipe, so
 * the download ends. */
typedef struct {
    int pipe_fd, file_fd;
    off_t size;
    int err; /* errno of the first failed write, 0 */
} s_sink_t;

static void *s_sink_run(void *arg)
{
    s_sink_t *k = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the watchdog's SIGALRM is the main thread's */
    static const unsigned char zero[4096];
    unsigned char buf[1 << 16];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(k->pipe_fd, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && !k->err)
            k->err = errno; /* not an end: the copy would look whole */
        if (n > 0)
            have += (size_t)n;
        bool end = n <= 0;
        size_t whole = end ? have : have / sizeof zero * sizeof zero;
        for (size_t off = 0; off < whole && !k->err; off += sizeof zero) {
            size_t len = whole - off < sizeof zero ? whole - off : sizeof zero;
            if ((len < sizeof zero || memcmp(buf + off, zero, len) != 0) &&
                vb_pwrite_full(k->file_fd, buf + off, len, (uint64_t)(k->size + (off_t)off)) != 0)
                k->err = errno ? errno : EIO;
        }
        k->size += (off_t)whole;
        memmove(buf, buf + whole, have - whole);
        have -= whole;
        if (end)
            break;
    }
    if (!k->err && ftruncate(k->file_fd, k->size) < 0) /* the holes at the end */
        k->err = errno;
    return NULL;
}

/* Downloads guest file `path` into a new file `local`: created here with O_EXCL|O_NOFOLLOW (a
 * symlink put there meanwhile is never followed), written by s_sink_run from the pipe libguestfs
 * writes into (as /dev/fd/N). A download that fails (a full disk, the appliance gone) leaves no
 * partial file behind. *got: the bytes the file has — what counts, whatever size the guest's
 * file system claimed. */
/* The file a download is writing, for a signal handler: s_partial_on is set only once the file
 * exists and s_partial holds its whole name, and cleared before either changes. */
static char s_partial[PATH_MAX];
static volatile sig_atomic_t s_partial_on;

unsigned vb_gfs_unreadable(const vb_gfs_t *self)
{
    return self->unreadable;
}

const char *vb_gfs_partial_file(void)
{
    return s_partial_on ? s_partial : "";
}

static int s_download_new(vb_gfs_t *self, const char *path, const char *local, off_t *got)
{
    s_partial_on = 0;
    if (vb_pathf(s_partial, sizeof s_partial, "%s", local) != 0)
        return VB_EINVAL;
    s_sink_t k = {.file_fd = open(local, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                  0600)};
    if (k.file_fd < 0)
        return vb_error_set(errno == EEXIST ? VB_EEXISTS : VB_EIO, "%s: %s", local,
                            strerror(errno));
    s_partial_on = 1;
    int pfd[2], rc = 0;
    pthread_t t;
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        rc = vb_error_set(VB_EIO, "pipe: %s", strerror(errno));
    } else {
        k.pipe_fd = pfd[0];
        int terr = pthread_create(&t, NULL, s_sink_run, &k);
        char dev[32];
        snprintf(dev, sizeof dev, "/dev/fd/%d", pfd[1]);
        if (terr)
            rc = vb_error_set(VB_EIO, "starting the download's writer: %s", strerror(terr));
        else if (guestfs_download(self->g, path, dev) < 0)
            rc = s_gfs_fail(self, VB_EIO, path);
        close(pfd[1]); /* the writer sees the end */
        if (!terr)
            pthread_join(t, NULL);
        close(pfd[0]);
    }
    if (rc == 0 && k.err)
        rc = vb_error_set(VB_EIO, "%s: %s", local, strerror(k.err));
    close(k.file_fd);
    s_partial_on = 0;
    if (rc == 0)
        *got = k.size;
    else if (unlink(local) == 0)
        vb_error_prefix(rc, "%s was not copied (its partial copy is removed)", path);
    return rc;
}

static int s_get_dir(vb_gfs_t *self, json_t *e, const char *path, const char *local,
                     size_t *bytes)
{
    json_t *children = NULL;
    if (mkdir(local, 0700) < 0)
        return vb_error_set(errno == EEXIST ? VB_EEXISTS : VB_EIO, "%s: %s", local,
                            strerror(errno));
    int rc = vb_gfs_ls(self, path, &children);
    size_t i;
    json_t *c;
    json_array_foreach(children, i, c)
    {
        if (!rc)
            rc = s_get_entry(self, c, local, bytes);
    }
    json_decref(children);
    return rc ? rc : s_set_meta(local, e, false);
}

static int s_get_file(vb_gfs_t *self, json_t *e, const char *path, const char *local,
                      size_t *bytes)
{
    off_t got = 0;
    int rc = s_download_new(self, path, local, &got);
    if (!rc && !(rc = s_set_meta(local, e, false)))
        *bytes += (size_t)got;
    json_int_t said = json_integer_value(json_object_get(e, "size"));
    if (!rc && got != said)
        fprintf(stderr, "vbak files: %s: %lld bytes copied where the guest's file system said "
                        "%lld\n",
                path, (long long)got, (long long)said);
    return rc;
}

static int s_get_entry(vb_gfs_t *self, json_t *e, const char *to_dir, size_t *bytes)
{
    const char *type = json_string_value(json_object_get(e, "type"));
    char *path = s_get_bytes(e, "path"), *name = s_get_bytes(e, "name"),
         *target = s_get_bytes(e, "target"), *local = NULL;
    int rc = path && name ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
    if (!rc)
        rc = vb_path_check_component(name); /* the guest's file system is untrusted */
    if (!rc && !(local = s_join(to_dir, name)))
        rc = vb_error_set(VB_ENOMEM, "out of memory");
    struct stat lst;
    if (rc) {
        /* said above */
    } else if (lstat(local, &lst) == 0 || errno != ENOENT) { /* a dangling symlink exists too */
        rc = vb_error_set(VB_EEXISTS, "%s exists already", local);
    } else if (strcmp(type, "dir") == 0) {
        rc = s_get_dir(self, e, path, local, bytes);
    } else if (strcmp(type, "symlink") == 0 && target) {
        if (symlink(target, local) < 0)
            rc = vb_error_set(VB_EIO, "symlink %s: %s", local, strerror(errno));
        else
            rc = s_set_meta(local, e, true);
    } else if (strcmp(type, "file") == 0) {
        rc = s_get_file(self, e, path, local, bytes);
    } else if (strcmp(type, "unreadable") == 0) {
        self->unreadable++;
        fprintf(stderr, "vbak files: %s: skipped: the guest's file system could not read it "
                        "(damaged?)\n",
                json_string_value(json_object_get(e, "path")));
    } else {
        fprintf(stderr, "vbak files: %s: not a file, directory or symlink: skipped\n",
                json_string_value(json_object_get(e, "path")));
    }
    free(local);
    free(path);
    free(name);
    free(target);
    return rc;
}

int vb_gfs_get(vb_gfs_t *self, const char *path, const char *to_dir, size_t *bytes)
{
    json_t *one = NULL;
    char *dir = NULL, *base = NULL;
    int rc = s_check_path(self, path);
    /* a PATH the guest's kernel cannot even look at (EUCLEAN: a damaged file system) is an
     * unreadable entry of its directory, skipped like one found inside a directory */
    if (rc == VB_EIO && path[0] == '/')
        rc = 0;
    if (!rc && strcmp(path, "/") == 0)
        rc = vb_error_set(VB_EINVAL, "get /: name a file or directory under it");
    if (!rc && !(rc = s_split(path, &dir, &base))) {
        char *names[] = {base, NULL};
        if (!(one = json_array()))
            rc = vb_error_set(VB_ENOMEM, "out of memory");
        else if (!(rc = s_stat_names(self, dir, names, one)))
            rc = s_get_entry(self, json_array_get(one, 0), to_dir, bytes);
    }

    json_decref(one);
    free(dir);
    free(base);
    return rc;
}

/* ---- mount */

int vb_gfs_mount_run(vb_gfs_t *self, const char *dir, void (*ready)(void *arg), void *arg)
{
    /* the FUSE source names this process, so `vbak umount` can wait for it to end */
    char opts[64];
    snprintf(opts, sizeof opts, "fsname=vbak-mount-%d", (int)getpid());
    if (guestfs_mount_local(self->g, dir, GUESTFS_MOUNT_LOCAL_READONLY, 1,
                            GUESTFS_MOUNT_LOCAL_OPTIONS, opts, -1) < 0)
        return s_gfs_fail(self, VB_EIO, dir);
    ready(arg);
    if (guestfs_mount_local_run(self->g) < 0)
        return s_gfs_fail(self, VB_EIO, dir);
    return 0;
}
