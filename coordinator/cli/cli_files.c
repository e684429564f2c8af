/* vbak files / vbak mount / vbak umount — file-level restore from a restore point.
 *
 * Each session serves the restore point with `vbak serve` (this program, run as a child on a
 * private Unix socket: the serve's lease keeps prune away while the session reads), and reads
 * the disk's guest file system with libguestfs (gfs.h), which keeps the untrusted file system
 * out of the host kernel. The serve gets SIGTERM when its parent ends, however it ends, and
 * then ends its lease. A watchdog (--timeout) bounds the appliance launch and the work. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "gfs.h"
#include "path.h"

#define S_PATHS_MAX 256

/* The paths named after `ls` or after `get`. */
typedef struct {
    bool on;
    const char *paths[S_PATHS_MAX];
    size_t n;
} s_op_t;

typedef struct {
    int64_t rp;
    const char *disk, *to, *mount_dir;
    s_op_t ls, get, *op; /* op: the one the paths now go to */
    int64_t timeout_s;
    bool json;
} s_args_t;

/* A served restore point: the `vbak serve` child and where its export is. */
typedef struct {
    pid_t serve;
    char *run_dir, *sock;
    json_t *info; /* the serve's --json answer: rp, job, vm, exports */
    const char *disk;
} s_session_t;

/* The watchdog's state: a signal handler can reach nothing else. */
static volatile pid_t s_watch_serve;
static const char *s_watch_cmd = "vbak files";
static char s_watch_dir[PATH_MAX], s_watch_sock[PATH_MAX]; /* the session's, "" when none */

static void s_on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = ": timed out (--timeout): the libguestfs appliance did not "
                              "answer in time\n";
    if (s_watch_serve > 0)
        kill(s_watch_serve, SIGTERM);
    /* nothing half-done stays behind: the file being copied, the session's socket and dir */
    if (vb_gfs_partial_file()[0])
        unlink(vb_gfs_partial_file());
    if (s_watch_sock[0])
        unlink(s_watch_sock);
    if (s_watch_dir[0])
        rmdir(s_watch_dir);
    if (write(2, s_watch_cmd, strlen(s_watch_cmd)) < 0 || write(2, msg, sizeof msg - 1) < 0) {
        /* nothing more to say */
    }
    _exit(1);
}

static void s_watchdog(int64_t seconds)
{
    signal(SIGALRM, s_on_alarm);
    alarm((unsigned)seconds);
}

static const char s_files_usage[] =
    "Usage: vbak files RP [--disk KEY] [--timeout S] ls [PATH...] [--json]\n"
    "       vbak files RP [--disk KEY] [--timeout S] get PATH... --to DIR [--json]\n"
    "       vbak files RP [--disk KEY] [--timeout S] ls [PATH...] get PATH... --to DIR [--json]\n"
    "List or copy out files of a restore point's guest file system (MBR/GPT partitions, ext4,\n"
    "XFS, NTFS, ...), read with libguestfs from the restore point served over NBD. Guest paths\n"
    "start with '/'; ls and get together share one appliance launch (ls runs first). get keeps\n"
    "modes and mtimes, copies symlinks as symlinks and directories whole, keeps sparse files\n"
    "sparse. The launch of the libguestfs appliance (KVM or TCG) and its time go to stderr.\n"
    "  --disk KEY    the disk to read (default: the restore point's first disk)\n"
    "  --timeout S   give up after S seconds (default 600)\n";
static const char s_mount_usage[] =
    "Usage: vbak mount RP [--disk KEY] [--timeout S] DIR\n"
    "       vbak umount DIR\n"
    "Mount a restore point's guest file system read-only at DIR (FUSE) until vbak umount DIR\n"
    "(or fusermount -u DIR). The mount runs in the background and keeps the restore point\n"
    "served (prune keeps it) while mounted.\n";

static int s_usage_fail(const char *cmd, const char *what, const char *arg)
{
    fprintf(stderr, "vbak %s: %s%s%s (see --help)\n", cmd, what, arg ? " " : "", arg ? arg : "");
    return 2;
}

static int s_parse(const char *cmd, int argc, char **argv, s_args_t *a)
{
    a->timeout_s = 600;
    bool files = strcmp(cmd, "files") == 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(files ? s_files_usage : s_mount_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--disk") && v) {
            a->disk = argv[++i];
        } else if (!strcmp(argv[i], "--to") && v && files) {
            a->to = argv[++i];
        } else if (!strcmp(argv[i], "--timeout") && v) {
            if (vb_parse_i64(argv[++i], 1, 86400, "--timeout", &a->timeout_s) != 0)
                return s_usage_fail(cmd, vb_error_msg(), NULL);
        } else if (!strcmp(argv[i], "--json") && files) {
            a->json = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return s_usage_fail(cmd, "unknown option", argv[i]);
        } else if (!a->rp) {
            if (vb_parse_i64(argv[i], 1, INT64_MAX, "restore point", &a->rp) != 0)
                return s_usage_fail(cmd, vb_error_msg(), NULL);
        } else if (files && (!strcmp(argv[i], "ls") || !strcmp(argv[i], "get"))) {
            a->op = argv[i][0] == 'l' ? &a->ls : &a->get;
            if (a->op->on)
                return s_usage_fail(cmd, "given twice:", argv[i]);
            a->op->on = true;
        } else if (files && !a->op) {
            return s_usage_fail(cmd, "expected ls or get, not", argv[i]);
        } else if (files && a->op->n < S_PATHS_MAX) {
            a->op->paths[a->op->n++] = argv[i];
        } else if (!files && !a->mount_dir) {
            a->mount_dir = argv[i];
        } else {
            return s_usage_fail(cmd, "unexpected argument", argv[i]);
        }
    }
    if (!a->rp)
        return s_usage_fail(cmd, "which restore point?", NULL);
    if (files && !a->op)
        return s_usage_fail(cmd, "expected ls or get", NULL);
    if (files && !a->get.on && a->to)
        return s_usage_fail(cmd, "--to goes with get", NULL);
    if (files && a->get.on && (!a->get.n || !a->to))
        return s_usage_fail(cmd, "get needs PATH... and --to DIR", NULL);
    if (!files && !a->mount_dir)
        return s_usage_fail(cmd, "where? (vbak mount RP DIR)", NULL);
    return -1;
}

/* ---- the serve child */

/* This program's command line for `serve`: --config and --key=value overrides carried over. */
static char **s_serve_argv(vb_cli_t *cli, const s_args_t *a, const char *sock, char *rp)
{
    char **v = calloc(cli->noverrides + 16, sizeof *v);
    size_t n = 0;
    if (!v)
        return NULL;
    v[n++] = "/proc/self/exe";
    if (cli->config_path) {
        v[n++] = "--config";
        v[n++] = (char *)cli->config_path;
    }
    for (size_t i = 0; i < cli->noverrides; i++)
        v[n++] = cli->overrides[i];
    v[n++] = "serve";
    v[n++] = rp;
    if (a->disk) {
        v[n++] = "--disk";
        v[n++] = (char *)a->disk;
    }
    v[n++] = "--socket";
    v[n++] = (char *)sock;
    v[n++] = "--json";
    return v;
}

/* Reads the serve's JSON answer (it prints it once the exports answer). */
static json_t *s_read_answer(int fd)
{
    char buf[65536];
    size_t len = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (len < sizeof buf - 1 && poll(&p, 1, 120000) > 0) {
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        json_t *j = json_loadb(buf, len, 0, NULL);
        if (j)
            return j;
    }
    return NULL;
}

/* The last non-empty line of a small text file into buf ("" when none). */
static void s_last_line(const char *path, char *buf, size_t size)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    char line[1024];
    buf[0] = '\0';
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            snprintf(buf, size, "%s", line);
    }
    if (f)
        fclose(f);
}

static int s_session_start(vb_cli_t *cli, const s_args_t *a, s_session_t *ss)
{
    const char *tmp = getenv("TMPDIR");
    char rp[32];
    snprintf(rp, sizeof rp, "%" PRId64, a->rp);
    if (asprintf(&ss->run_dir, "%s/vbak-files-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 ||
        !mkdtemp(ss->run_dir) || asprintf(&ss->sock, "%s/nbd.sock", ss->run_dir) < 0)
        return vb_error_set(VB_EIO, "cannot make a private directory: %s", strerror(errno));
    if (vb_pathf(s_watch_dir, sizeof s_watch_dir, "%s", ss->run_dir) != 0 ||
        vb_pathf(s_watch_sock, sizeof s_watch_sock, "%s", ss->sock) != 0)
        return VB_EINVAL;
    char **argv = s_serve_argv(cli, a, ss->sock, rp);
    int fds[2];
    if (!argv || pipe2(fds, O_CLOEXEC) < 0) {
        free(argv);
        return vb_error_set(VB_EIO, "cannot start the serve: %s", strerror(errno));
    }
    char *log = NULL;
    if (asprintf(&log, "%s/serve.log", ss->run_dir) < 0)
        log = NULL;
    int logfd = log ? open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    fflush(NULL);
    pid_t parent = getpid();
    ss->serve = logfd < 0 ? -1 : fork();
    if (ss->serve == 0) {
        /* the serve ends (and ends its lease) when this session's process ends, however */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent || dup2(fds[1], 1) < 0 ||
            dup2(logfd, 2) < 0)
            _exit(1);
        execv(argv[0], argv);
        _exit(127);
    }
    free(argv);
    close(fds[1]);
    if (logfd >= 0)
        close(logfd);
    s_watch_serve = ss->serve;
    ss->info = ss->serve > 0 ? s_read_answer(fds[0]) : NULL;
    close(fds[0]);
    json_t *e = json_array_get(json_object_get(ss->info, "exports"), 0);
    ss->disk = json_string_value(json_object_get(e, "disk"));
    int rc = 0;
    if (!ss->disk) {
        char last[1024];
        s_last_line(log, last, sizeof last);
        rc = vb_error_set(VB_EIO, "the serve of restore point %" PRId64 " did not start%s%s", a->rp,
                          last[0] ? ": " : "", last);
    }
    if (log)
        unlink(log);
    free(log);
    return rc;
}

static void s_session_stop(s_session_t *ss)
{
    if (ss->serve > 0) {
        kill(ss->serve, SIGTERM);
        waitpid(ss->serve, NULL, 0);
        s_watch_serve = 0;
    }
    s_watch_dir[0] = s_watch_sock[0] = '\0';
    if (ss->run_dir)
        rmdir(ss->run_dir);
    free(ss->run_dir);
    free(ss->sock);
    json_decref(ss->info);
}

/* Serves the restore point and opens its guest file system; says how the launch went. */
static int s_open(vb_cli_t *cli, const s_args_t *a, const char *cmd, s_session_t *ss, vb_gfs_t **g)
{
    int rc = s_session_start(cli, a, ss);
    if (!rc)
        rc = vb_gfs_open(ss->sock, ss->disk, g);
    if (rc)
        return rc;
    fprintf(stderr,
            "vbak %s: restore point %" PRId64 " of %s, disk %s: libguestfs appliance launched "
            "in %.1f s under %s; %s (%s) mounted read-only\n",
            cmd, a->rp, json_string_value(json_object_get(ss->info, "vm")), ss->disk,
            vb_gfs_launch_seconds(*g), vb_gfs_accel_text(*g), vb_gfs_device(*g),
            vb_gfs_fs_type(*g));
    return 0;
}

/* ---- files ls / get */

/* A guest's name on a terminal: control bytes (ESC, CR, newline) and DEL as \xNN, so a name
 * cannot rewrite the screen or forge a line. */
static void s_put_shown(const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

/* A guest path as the listings show it: bytes that are not UTF-8 as \xNN, control bytes too. */
static void s_put_path(const char *path)
{
    json_t *t = json_object();
    if (t && !vb_gfs_json_set_bytes(t, "p", path))
        s_put_shown(json_string_value(json_object_get(t, "p")));
    else
        s_put_shown(path);
    json_decref(t);
}

static void s_print_entry(json_t *e)
{
    static const char types[] = "-dl?";
    const char *type = json_string_value(json_object_get(e, "type"));
    int t = !strcmp(type, "file") ? 0 : !strcmp(type, "dir") ? 1 : !strcmp(type, "symlink") ? 2 : 3;
    unsigned mode = (unsigned)json_integer_value(json_object_get(e, "mode"));
    char perm[11] = {types[t]}, when[32];
    for (int i = 0; i < 9; i++)
        perm[1 + i] = mode & (0400u >> i) ? "rwxrwxrwx"[i] : '-';
    time_t mt = (time_t)json_integer_value(json_object_get(e, "mtime"));
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%SZ", gmtime_r(&mt, &tm));
    printf("%s %12lld %s ", perm, (long long)json_integer_value(json_object_get(e, "size")), when);
    s_put_shown(json_string_value(json_object_get(e, "name")));
    if (json_object_get(e, "target")) {
        fputs(" -> ", stdout);
        s_put_shown(json_string_value(json_object_get(e, "target")));
    }
    putchar('\n');
}

/* Lists each ls PATH (default "/"): as text, a "PATH:" line before each listing when there
 * are several; as JSON, into out's "listings" (and the first one's entries as "entries"). */
static int s_ls(vb_gfs_t *g, const s_args_t *a, json_t *out)
{
    static const char *root = "/";
    const char *const *paths = a->ls.n ? a->ls.paths : &root;
    size_t n = a->ls.n ? a->ls.n : 1;
    json_t *listings = json_array();
    int rc = listings ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        json_t *entries = NULL;
        rc = vb_gfs_ls(g, paths[i], &entries);
        if (rc)
            break;
        if (out) {
            if (!i)
                json_object_set(out, "entries", entries);
            json_array_append_new(listings,
                                  json_pack("{s:s, s:o}", "path", paths[i], "entries", entries));
            continue;
        }
        if (n > 1)
            printf("%s%s:\n", i ? "\n" : "", paths[i]);
        size_t j;
        json_t *e;
        json_array_foreach(entries, j, e) s_print_entry(e);
        json_decref(entries);
    }
    if (!rc && out)
        json_object_set(out, "listings", listings);
    json_decref(listings);
    return rc;
}

/* Copies each get PATH into --to: "PATH: N bytes" lines, or out's "copied" as JSON. */
static int s_get(vb_gfs_t *g, const s_args_t *a, json_t *out)
{
    struct stat st;
    if (stat(a->to, &st) < 0 || !S_ISDIR(st.st_mode))
        return vb_error_set(VB_ENOTFOUND, "--to %s: not a directory", a->to);
    json_t *copied = json_array();
    int rc = copied ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < a->get.n; i++) {
        size_t bytes = 0;
        unsigned before = vb_gfs_unreadable(g);
        rc = vb_gfs_get(g, a->get.paths[i], a->to, &bytes);
        if (rc)
            break;
        unsigned skipped = vb_gfs_unreadable(g) - before;
        if (out) {
            json_t *c = json_pack("{s:I, s:i}", "bytes", (json_int_t)bytes, "unreadable",
                                  (int)skipped);
            if (!c || vb_gfs_json_set_bytes(c, "path", a->get.paths[i])) {
                json_decref(c);
                rc = vb_error_set(VB_ENOMEM, "out of memory");
            } else if (json_array_append_new(copied, c)) {
                rc = vb_error_set(VB_ENOMEM, "out of memory");
            }
            continue;
        }
        s_put_path(a->get.paths[i]);
        if (skipped)
            printf(": %zu bytes (%u entries could not be read)\n", bytes, skipped);
        else
            printf(": %zu bytes\n", bytes);
    }
    if (!rc && out)
        json_object_set(out, "copied", copied);
    json_decref(copied);
    return rc;
}

/* Runs ls, then get, in the session; with --json, prints one object for both. */
static int s_run(vb_gfs_t *g, const s_args_t *a, s_session_t *ss)
{
    json_t *out = NULL;
    if (a->json) {
        out = json_pack("{s:I, s:O, s:s, s:s, s:s, s:s, s:f}", "rp", (json_int_t)a->rp, "vm",
                        json_object_get(ss->info, "vm"), "disk", ss->disk, "device",
                        vb_gfs_device(g), "fs", vb_gfs_fs_type(g), "accel", vb_gfs_accel_text(g),
                        "launch_s", vb_gfs_launch_seconds(g));
        if (!out)
            return vb_error_set(VB_ENOMEM, "out of memory");
    }
    int rc = a->ls.on ? s_ls(g, a, out) : 0;
    if (!rc && a->get.on)
        rc = s_get(g, a, out);
    unsigned unreadable = vb_gfs_unreadable(g);
    if (!rc && out) {
        json_object_set_new(out, "unreadable", json_integer(unreadable));
        vb_cli_print_json(out);
    }
    json_decref(out);
    if (!rc && unreadable)
        rc = vb_error_set(VB_EIO, "%u entries could not be read (named above); everything else "
                                  "was copied",
                          unreadable);
    return rc;
}

int vb_cli_files(vb_cli_t *cli, int argc, char **argv)
{
    s_args_t a = {0};
    int rc = s_parse("files", argc, argv, &a);
    if (rc >= 0)
        return rc;
    s_session_t ss = {0};
    vb_gfs_t *g = NULL;
    s_watchdog(a.timeout_s);
    rc = s_open(cli, &a, "files", &ss, &g);
    if (!rc)
        rc = s_run(g, &a, &ss);
    if (rc)
        fprintf(stderr, "vbak files: restore point %" PRId64 "%s%s: %s\n", a.rp,
                ss.disk ? " disk " : "", ss.disk ? ss.disk : "", vb_error_msg());
    vb_gfs_destroy(&g);
    s_session_stop(&ss);
    alarm(0);
    return rc ? 1 : 0;
}

/* ---- mount / umount */

static void s_mount_ready(void *arg)
{
    int *fd = arg;
    unsigned char ok = 0;
    alarm(0); /* mounted: from now on it serves until unmounted */
    fflush(stderr);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) { /* the caller stops listening once it has the status */
        dup2(null, 2);
        close(null);
    }
    if (write(*fd, &ok, 1) != 1) {
        /* the parent is gone: serve anyway, until unmounted */
    }
    close(*fd);
    *fd = -1;
}

/* The background process: serves, mounts, runs until unmounted. */
static int s_mount_child(vb_cli_t *cli, const s_args_t *a, int status_fd)
{
    s_session_t ss = {0};
    vb_gfs_t *g = NULL;
    s_watch_cmd = "vbak mount";
    s_watchdog(a->timeout_s);
    int rc = s_open(cli, a, "mount", &ss, &g);
    if (!rc)
        rc = vb_gfs_mount_run(g, a->mount_dir, s_mount_ready, &status_fd);
    if (rc)
        fprintf(stderr, "vbak mount: restore point %" PRId64 ": %s\n", a->rp, vb_error_msg());
    vb_gfs_destroy(&g);
    s_session_stop(&ss);
    return rc ? 1 : 0;
}

/* Relays the mount child's stderr until it reports (a status byte on st), then what is left. */
static unsigned char s_relay(int st, int err)
{
    unsigned char ok = 1;
    char buf[4096];
    struct pollfd p[2] = {{st, POLLIN, 0}, {err, POLLIN, 0}};
    for (bool done = false; !done;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents & POLLIN) {
            ssize_t r = read(err, buf, sizeof buf);
            if (r > 0)
                fwrite(buf, 1, (size_t)r, stderr);
        }
        if (p[0].revents & (POLLIN | POLLHUP)) {
            done = true;
            if (read(st, &ok, 1) != 1)
                ok = 1; /* the child died before it said */
        }
    }
    p[1].revents = 0;
    while (poll(&p[1], 1, 100) > 0 && (p[1].revents & POLLIN)) {
        ssize_t r = read(err, buf, sizeof buf);
        if (r <= 0)
            break;
        fwrite(buf, 1, (size_t)r, stderr);
    }
    return ok;
}

int vb_cli_mount(vb_cli_t *cli, int argc, char **argv)
{
    s_args_t a = {0};
    int rc = s_parse("mount", argc, argv, &a), st[2], err[2];
    if (rc >= 0)
        return rc;
    char *dir = realpath(a.mount_dir, NULL);
    if (!dir)
        return vb_cli_fail("mount: %s: %s", a.mount_dir, strerror(errno));
    a.mount_dir = dir;
    if (pipe2(st, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
        free(dir);
        return vb_cli_fail("mount: pipe: %s", strerror(errno));
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* in the background: nothing it or its children hold keeps the caller's output open */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (setsid() < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
            dup2(err[1], 2) < 0)
            _exit(1);
        close(st[0]), close(err[0]), close(err[1]), close(null);
        _exit(s_mount_child(cli, &a, st[1]));
    }
    close(st[1]), close(err[1]);
    unsigned char ok = pid > 0 ? s_relay(st[0], err[0]) : 1;
    close(st[0]), close(err[0]);
    if (ok != 0) {
        if (pid > 0)
            waitpid(pid, NULL, 0);
        free(dir);
        return 1; /* the child said why */
    }
    printf("restore point %" PRId64 " mounted read-only at %s (vbak umount %s to end)\n", a.rp, dir,
           dir);
    free(dir);
    return 0;
}

/* Is `dir` a mount point now (in /proc/self/mountinfo)? *owner: the `vbak mount` process
 * serving it (its FUSE source names it, "vbak-mount-PID"), or 0. */
static bool s_mounted(const char *dir, pid_t *owner)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[8192], mp[4096], src[256];
    bool found = false;
    *owner = 0;
    while (f && !found && fgets(line, sizeof line, f))
        found = vb_mountinfo_line(line, mp, sizeof mp, src, sizeof src) == 0 &&
                strcmp(mp, dir) == 0;
    int pid = 0;
    if (found && sscanf(src, "vbak-mount-%d", &pid) == 1 && pid > 0)
        *owner = (pid_t)pid;
    if (f)
        fclose(f);
    return found;
}

/* Has process pid ended (gone, a zombie its new parent has not reaped yet, or no longer a
 * `vbak` process: its pid reused)? The state follows the last ')' of /proc/PID/stat (the name
 * before it may hold one). */
static bool s_ended(pid_t pid)
{
    char path[64], st[512], comm[64] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    bool vbak = f && fgets(comm, sizeof comm, f) && strcmp(comm, "vbak\n") == 0;
    if (f)
        fclose(f);
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (!vbak || !(f = fopen(path, "r")))
        return true;
    const char *close_paren = fgets(st, sizeof st, f) ? strrchr(st, ')') : NULL;
    fclose(f);
    return !close_paren || strncmp(close_paren, ") Z", 3) == 0;
}

int vb_cli_umount(vb_cli_t *cli, int argc, char **argv)
{
    (void)cli;
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(s_mount_usage, stdout);
        return 0;
    }
    if (argc != 2)
        return s_usage_fail("umount", "expected DIR", NULL);
    char *dir = realpath(argv[1], NULL);
    pid_t owner = 0;
    if (!dir || !s_mounted(dir, &owner)) {
        free(dir);
        return vb_cli_fail("umount: %s is not mounted", argv[1]);
    }
    pid_t pid;
    char *fm[] = {"fusermount", "-u", dir, NULL};
    int status = 1;
    if (posix_spawnp(&pid, fm[0], NULL, NULL, fm, environ) != 0 || waitpid(pid, &status, 0) < 0 ||
        !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(dir);
        return vb_cli_fail("umount: fusermount -u could not unmount %s", argv[1]);
    }
    /* fusermount returns once the kernel let go; the mount's process then ends its serve and
     * with it the lease: wait for that, so a prune right after sees the restore point free */
    for (int i = 0; i < 600 && owner > 0 && !s_ended(owner); i++)
        nanosleep(&(struct timespec){0, 50000000L}, NULL);
    bool ended = owner <= 0 || s_ended(owner);
    free(dir);
    if (!ended)
        return vb_cli_fail("umount: %s is unmounted, but its vbak mount process %d has not ended "
                           "in 30 s (its serve lease may still hold the restore point)",
                           argv[1], (int)owner);
    return 0;
}
