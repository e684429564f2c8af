/* vbak serve / vbak serves — a restore point's disks over NBD, read straight from the repository.
 *
 * `vbak serve` asks the coordinator for the restore point's disks and a lease (serve.start: a
 * job of kind serve that keeps prune away from the restore point), runs nbdkit in front of the
 * repository's own plugin (common/repo/nbdkit/vbrepo.c) with the repository path and key file
 * the coordinator's configuration names (the key stays on this host), prints the export URIs,
 * then renews the lease every third of its length until SIGTERM/SIGINT, when it stops nbdkit
 * and ends the lease. nbdkit runs with --exit-with-parent: a serve killed without warning takes
 * its server with it, and its lease expires.
 *
 * --background forks before anything else (no ZeroMQ context crosses a fork): the child runs
 * the serve in its own session; the parent relays what the child prints until the exports
 * answer (or the serve fails), then exits with its status. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <czmq.h>

#include "cli.h"
#include "disk/disk_uri.h"
#include "fileio.h"
#include "proc.h"

#define S_DISKS_MAX 64

typedef struct {
    int64_t rp;
    const char *disks[S_DISKS_MAX];
    size_t ndisks;
    const char *listen, *socket, *tls_certs, *tls_psk, *pid_file, *log;
    bool overlay, background, json;
    /* filled while running */
    char host[256];
    int port;
    bool v6;
    char *run_dir, *sock_path, *psk_user;
    pid_t nbdkit;
    bool listened; /* nbdkit made sock_path: removed at stop (nbdkit leaves it) */
    int64_t job;
} s_serve_t;

static const char s_usage_text[] =
    "Usage: vbak serve RP [--disk KEY]... [--listen HOST:PORT | --socket PATH]\n"
    "                     [--tls-certificates DIR | --tls-psk FILE] [--overlay]\n"
    "                     [--background --pid-file FILE] [--log FILE] [--json]\n"
    "Serve a restore point's disks over NBD, one read-only export per disk named by its disk\n"
    "key, read straight from the repository. The export URIs are printed; the serve runs until\n"
    "SIGTERM or Ctrl-C (or, with --background, returns once the exports answer). Prune keeps\n"
    "the restore point while it is served (vbak serves lists the serves).\n"
    "  --disk KEY            serve only this disk (repeatable; default: every disk)\n"
    "  --listen HOST:PORT    TCP (IPv6: [::1]:PORT); default: a Unix socket in a new directory\n"
    "  --socket PATH         a Unix socket\n"
    "  --tls-certificates DIR  TLS with X.509 (nbdkit's ca-cert.pem, server-cert.pem, ...)\n"
    "  --tls-psk FILE        TLS with a pre-shared key (nbdkit's username:hexkey file)\n"
    "  --overlay             writable through a throw-away copy-on-write overlay (one disk);\n"
    "                        the repository is never written\n"
    "  --background          return once the exports answer; --pid-file FILE names the serve\n"
    "  --log FILE            nbdkit's messages (default: stderr; with --background,\n"
    "                        the pid file's name + .log)\n";

static bool s_is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static int s_usage_fail(const char *fmt, ...) VB_PRINTF(1, 2);
static int s_usage_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vbak serve: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see --help)\n");
    va_end(ap);
    return 2;
}

/* An option that takes a value: stores it, advances *i. */
static bool s_opt(int argc, char **argv, int *i, const char *name, const char **out)
{
    if (!s_is(argv[*i], name) || *i + 1 >= argc)
        return false;
    *out = argv[++*i];
    return true;
}

static int s_parse(s_serve_t *s, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *disk = NULL;
        if (s_is(argv[i], "--help") || s_is(argv[i], "-h")) {
            fputs(s_usage_text, stdout);
            return 1;
        } else if (s_opt(argc, argv, &i, "--disk", &disk)) {
            if (s->ndisks == S_DISKS_MAX)
                return s_usage_fail("%s: too many --disk", argv[i]);
            s->disks[s->ndisks++] = disk;
        } else if (s_opt(argc, argv, &i, "--listen", &s->listen) ||
                   s_opt(argc, argv, &i, "--socket", &s->socket) ||
                   s_opt(argc, argv, &i, "--tls-certificates", &s->tls_certs) ||
                   s_opt(argc, argv, &i, "--tls-psk", &s->tls_psk) ||
                   s_opt(argc, argv, &i, "--pid-file", &s->pid_file) ||
                   s_opt(argc, argv, &i, "--log", &s->log)) {
        } else if (s_is(argv[i], "--overlay")) {
            s->overlay = true;
        } else if (s_is(argv[i], "--background")) {
            s->background = true;
        } else if (s_is(argv[i], "--json")) {
            s->json = true;
        } else if (argv[i][0] != '-' && !s->rp) {
            if (vb_parse_i64(argv[i], 1, INT64_MAX, "restore point", &s->rp) != 0)
                return s_usage_fail("%s", vb_error_msg());
        } else {
            return s_usage_fail("unexpected argument '%s'", argv[i]);
        }
    }
    if (!s->rp)
        return s_usage_fail("%s", "which restore point? (vbak serve RP)");
    if (s->listen && s->socket)
        return s_usage_fail("%s", "choose one of --listen and --socket");
    if (s->tls_certs && s->tls_psk)
        return s_usage_fail("%s", "choose one of --tls-certificates and --tls-psk");
    if (s->background != !!s->pid_file)
        return s_usage_fail("%s", "--background and --pid-file go together");
    return 0;
}

/* --listen HOST:PORT or [V6]:PORT into s->host, s->port, s->v6. */
static int s_parse_listen(s_serve_t *s)
{
    const char *l = s->listen, *colon = strrchr(l, ':');
    const char *h = l, *he = colon;
    if (l[0] == '[') {
        const char *close = strchr(l, ']');
        if (!close || close[1] != ':')
            return vb_error_set(VB_EINVAL, "--listen %s: expected [IPV6]:PORT", l);
        h = l + 1, he = close, colon = close + 1;
        s->v6 = true;
    }
    int64_t port;
    if (!colon || he == h || (size_t)(he - h) >= sizeof s->host ||
        vb_parse_i64(colon + 1, 1, 65535, "--listen port", &port) != 0)
        return vb_error_set(VB_EINVAL, "--listen %s: expected HOST:PORT", l);
    memcpy(s->host, h, (size_t)(he - h));
    s->host[he - h] = '\0';
    s->port = (int)port;
    return 0;
}

/* The PSK file's first user name (nbdkit's format: username:hexkey per line). */
static int s_psk_user(s_serve_t *s)
{
    FILE *f = fopen(s->tls_psk, "r");
    char line[512];
    char *colon = f && fgets(line, sizeof line, f) ? strchr(line, ':') : NULL;
    if (f)
        fclose(f);
    if (!colon || colon == line)
        return vb_error_set(VB_EINVAL, "--tls-psk %s: expected USER:HEXKEY lines", s->tls_psk);
    *colon = '\0';
    return (s->psk_user = strdup(line)) ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
}

/* The URI a client uses for disk `key` (caller frees). */
static char *s_uri(const s_serve_t *s, const char *key)
{
    char *enc = vb_disk_uri_escape(key, NULL), *psk = NULL, *out = NULL;
    bool tls = s->tls_certs || s->tls_psk;
    if (!enc)
        return NULL;
    if (s->tls_psk) {
        char *f = vb_disk_uri_escape(s->tls_psk, "/");
        if (f && asprintf(&psk, "tls-psk-file=%s", f) < 0)
            psk = NULL;
        free(f);
        if (!psk)
            goto out;
    }
    int n;
    if (s->sock_path) {
        char *sp = vb_disk_uri_escape(s->sock_path, "/");
        n = sp ? asprintf(&out, "nbd%s+unix:///%s?socket=%s%s%s", tls ? "s" : "", enc, sp,
                          psk ? "&" : "", psk ? psk : "")
               : -1;
        free(sp);
    } else {
        n = asprintf(&out, "nbd%s://%s%s%s%s%s:%d/%s%s%s", tls ? "s" : "",
                     s->psk_user ? s->psk_user : "", s->psk_user ? "@" : "", s->v6 ? "[" : "",
                     s->host, s->v6 ? "]" : "", s->port, enc, psk ? "?" : "", psk ? psk : "");
    }
    if (n < 0)
        out = NULL;
out:
    free(enc);
    free(psk);
    return out;
}

static json_t *s_exports(const s_serve_t *s, json_t *disks)
{
    json_t *arr = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(disks, i, d) {
        char *uri = s_uri(s, json_string_value(json_object_get(d, "key")));
        if (!uri) {
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, json_pack("{s:O, s:s}", "disk", json_object_get(d, "key"),
                                             "uri", uri));
        free(uri);
    }
    return arr;
}

/* Appends a formatted argument to argv, its string kept in owned[] (freed by the caller). */
static int s_arg(const char **argv, size_t *n, char **owned, size_t *k, const char *fmt, ...)
    VB_PRINTF(5, 6);
static int s_arg(const char **argv, size_t *n, char **owned, size_t *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&owned[*k], fmt, ap);
    va_end(ap);
    if (r < 0) {
        owned[*k] = NULL;
        return vb_error_set(VB_ENOMEM, "out of memory");
    }
    argv[(*n)++] = owned[(*k)++];
    return 0;
}

/* nbdkit's command line into argv; owned[0] is nbdkit's pid file. Every string argv points to
 * is a literal, in s or in owned[] (freed by the caller), never in this frame. */
static int s_nbdkit_argv(s_serve_t *s, json_t *plan, const char **argv, char **owned)
{
    size_t n = 0, k = 0;
    char plugin[4200];
    const char *key_file = json_string_value(json_object_get(plan, "key_file"));
    argv[n++] = "nbdkit";
    argv[n++] = "-f";
    argv[n++] = "--exit-with-parent";
    /* one worker per connection: nbdkit 1.32 asserts (and dies) when a client disconnects while
     * another worker of its connection still sends a reply; requests still run in parallel
     * over the connections of a multi-conn client and in the plugin's read-ahead threads */
    argv[n++] = "--threads=1";
    argv[n++] = "-P";
    int rc = s_arg(argv, &n, owned, &k, "%s/nbdkit.pid", s->run_dir); /* owned[0] */
    if (!s->overlay)
        argv[n++] = "-r";
    if (s->sock_path) {
        argv[n++] = "-U";
        argv[n++] = s->sock_path;
    } else {
        argv[n++] = "-i";
        argv[n++] = s->host;
        argv[n++] = "-p";
        if (!rc)
            rc = s_arg(argv, &n, owned, &k, "%d", s->port);
    }
    if (s->tls_certs || s->tls_psk) {
        argv[n++] = "--tls=require";
        if (!rc)
            rc = s_arg(argv, &n, owned, &k, "--tls-%s=%s", s->tls_psk ? "psk" : "certificates",
                       s->tls_psk ? s->tls_psk : s->tls_certs);
    }
    if (s->overlay)
        argv[n++] = "--filter=cow";
    if (!rc)
        rc = s_arg(argv, &n, owned, &k, "%s",
                   vb_proc_module_path("VBAK_SERVE_PLUGIN", VB_REPO_NBDKIT_PLUGIN_INSTALLED,
                                       VB_REPO_NBDKIT_PLUGIN, plugin, sizeof plugin));
    if (!rc)
        rc = s_arg(argv, &n, owned, &k, "repo=%s",
                   json_string_value(json_object_get(plan, "repository")));
    if (!rc && key_file)
        rc = s_arg(argv, &n, owned, &k, "key=%s", key_file);
    const char *creds = json_string_value(json_object_get(plan, "credentials_file"));
    if (!rc && creds) /* an s3:// repository: the path of its access key file, never the key */
        rc = s_arg(argv, &n, owned, &k, "credentials=%s", creds);
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(plan, "disks"), i, d) {
        if (!rc)
            rc = s_arg(argv, &n, owned, &k, "disk=%s:%s",
                       json_string_value(json_object_get(d, "key")),
                       json_string_value(json_object_get(d, "index")));
    }
    argv[n] = NULL;
    return rc;
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts nbdkit and waits until it listens (it writes its pid file pf once it does). */
static int s_start_nbdkit(s_serve_t *s, const char *const *argv, const char *pf)
{
    int logfd = s->log ? open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
    if (s->log && logfd < 0)
        return vb_error_set(VB_EIO, "--log %s: %s", s->log, strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || (logfd >= 0 && dup2(logfd, 2) < 0) ||
            dup2(2, 1) < 0)
            _exit(126);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (logfd >= 0)
        close(logfd);
    if (pid < 0)
        return vb_error_set(VB_EIO, "fork: %s", strerror(errno));
    s->nbdkit = pid;
    for (int waited = 0; waited < 60000; waited += 10) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->nbdkit = 0;
            return vb_error_set(VB_EIO, "nbdkit did not start (%s %d)%s%s",
                                WIFEXITED(status) ? "exit status" : "signal",
                                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                                s->log ? ": see " : "", s->log ? s->log : "");
        }
        struct stat st;
        if (stat(pf, &st) == 0 && st.st_size > 0) {
            s->listened = true;
            return 0;
        }
        s_sleep_ms(10);
    }
    return vb_error_set(VB_ETIMEOUT, "nbdkit did not listen within 60 s");
}

static void s_stop_nbdkit(s_serve_t *s)
{
    if (s->nbdkit <= 0)
        return;
    kill(s->nbdkit, SIGTERM);
    for (int waited = 0; waited < 5000; waited += 10) {
        if (waitpid(s->nbdkit, NULL, WNOHANG) == s->nbdkit) {
            s->nbdkit = 0;
            return;
        }
        s_sleep_ms(10);
    }
    kill(s->nbdkit, SIGKILL);
    waitpid(s->nbdkit, NULL, 0);
    s->nbdkit = 0;
}

/* serve.start / serve.renew arguments: who serves what. */
static json_t *s_lease_args(const s_serve_t *s, json_t *exports)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    json_t *disks = json_array();
    for (size_t i = 0; i < s->ndisks; i++)
        json_array_append_new(disks, json_string(s->disks[i]));
    return json_pack("{s:I, s:I, s:o, s:s, s:I, s:O}", "rp", (json_int_t)s->rp, "job",
                     (json_int_t)s->job, "disks", disks, "host", host, "pid",
                     (json_int_t)getpid(), "exports", exports ? exports : json_null());
}

/* Renews the lease; a lease that ended meanwhile (expired while the coordinator was away) is
 * taken again as a new serve job. */
static void s_renew(vb_cli_t *cli, s_serve_t *s, json_t *exports)
{
    json_t *res = NULL;
    if (vb_cli_call(cli, "serve.renew", s_lease_args(s, exports), &res) == 0) {
        json_decref(res);
        return;
    }
    fprintf(stderr, "vbak serve: renewing the lease of serve job %lld: %s\n", (long long)s->job,
            vb_error_msg());
    if (vb_error_code() != VB_ENOTFOUND) /* the coordinator is away: try again next time */
        return;
    if (vb_cli_call(cli, "serve.start", s_lease_args(s, exports), &res) == 0) {
        s->job = (int64_t)json_integer_value(json_object_get(res, "job"));
        fprintf(stderr, "vbak serve: restore point %lld protected again by serve job %lld\n",
                (long long)s->rp, (long long)s->job);
    }
    json_decref(res);
}

/* The signals s_wait takes: blocked from the start, so that none is lost before it waits. */
static void s_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* Serves until SIGTERM, SIGINT or SIGHUP (0), or until nbdkit stops by itself (1). */
static int s_wait(vb_cli_t *cli, s_serve_t *s, json_t *exports, int64_t lease_ms)
{
    sigset_t set;
    s_signals(&set);
    int64_t every = lease_ms / 3 > 500 ? lease_ms / 3 : 500;
    for (;;) {
        struct timespec ts = {every / 1000, (every % 1000) * 1000000L};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGCHLD) {
            int status;
            if (waitpid(s->nbdkit, &status, WNOHANG) != s->nbdkit)
                continue;
            s->nbdkit = 0;
            fprintf(stderr, "vbak serve: nbdkit stopped (%s %d)\n",
                    WIFEXITED(status) ? "exit status" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            return 1;
        }
        if (sig > 0)
            return 0;
        if (errno == EAGAIN)
            s_renew(cli, s, exports);
    }
}

static void s_print(const s_serve_t *s, json_t *plan, json_t *exports)
{
    if (s->json) {
        json_t *out = json_pack("{s:I, s:I, s:O, s:I, s:O}", "rp", (json_int_t)s->rp, "job",
                                (json_int_t)s->job, "vm", json_object_get(plan, "vm"), "pid",
                                (json_int_t)getpid(), "exports", exports);
        vb_cli_print_json(out);
        json_decref(out);
    } else {
        printf("serving restore point %lld of %s (%s%s), prune keeps it (serve job %lld)\n",
               (long long)s->rp, json_string_value(json_object_get(plan, "vm")),
               s->overlay ? "writable overlay, thrown away at stop" : "read-only",
               s->tls_certs || s->tls_psk ? ", TLS" : "", (long long)s->job);
        size_t i;
        json_t *e;
        json_array_foreach(exports, i, e)
            printf("  disk %s  %s\n", json_string_value(json_object_get(e, "disk")),
                   json_string_value(json_object_get(e, "uri")));
    }
    fflush(stdout);
}

/* --background: the parent relays the child's output until the child says it serves (or
 * failed) and returns the child's status; the child (in its own session) returns -1 and goes
 * on with its ends of the pipes as stdout and stderr and *status_fd to report on. */
static int s_fork_background(int *status_fd)
{
    int out[2], err[2], st[2];
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(st, O_CLOEXEC) < 0) {
        fprintf(stderr, "vbak serve: pipe: %s\n", strerror(errno));
        return 1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "vbak serve: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (setsid() < 0 || null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 ||
            dup2(err[1], 2) < 0)
            _exit(1);
        close(null);
        close(out[0]), close(out[1]), close(err[0]), close(err[1]), close(st[0]);
        *status_fd = st[1];
        return -1;
    }
    close(out[1]), close(err[1]), close(st[1]);
    unsigned char code = 1;
    ssize_t r;
    while ((r = read(st[0], &code, 1)) < 0 && errno == EINTR)
        ;
    if (r != 1)
        code = 1; /* the child died before it said */
    char buf[4096];
    while ((r = read(out[0], buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)r, stdout);
    while ((r = read(err[0], buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)r, stderr);
    close(out[0]), close(err[0]), close(st[0]);
    if (code != 0)
        waitpid(pid, NULL, 0);
    return code;
}

/* The background child reports: from now on its output goes nowhere. */
static void s_report(int *status_fd, int code)
{
    if (*status_fd < 0)
        return;
    fflush(stdout);
    fflush(stderr);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, 1);
        dup2(null, 2);
        close(null);
    }
    unsigned char c = (unsigned char)code;
    if (write(*status_fd, &c, 1) != 1) {
        /* the parent is gone: nobody to tell */
    }
    close(*status_fd);
    *status_fd = -1;
}

static int s_write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
        if (f)
            fclose(f);
        return vb_error_set(VB_EIO, "--pid-file %s: %s", path, strerror(errno));
    }
    return 0;
}

/* Where nbdkit listens, its pid file, the default socket, and the log of a background serve. */
static int s_prepare(s_serve_t *s, char *log_buf, size_t log_cap)
{
    const char *tmp = getenv("TMPDIR");
    if (asprintf(&s->run_dir, "%s/vbak-serve-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0) {
        s->run_dir = NULL;
        return vb_error_set(VB_ENOMEM, "out of memory");
    }
    if (!mkdtemp(s->run_dir))
        return vb_error_set(VB_EIO, "mkdtemp %s: %s", s->run_dir, strerror(errno));
    if (s->listen && s_parse_listen(s) != 0)
        return VB_EINVAL;
    if (s->tls_psk && s_psk_user(s) != 0)
        return VB_EINVAL;
    if (!s->listen) {
        char *abs = s->socket ? realpath(".", NULL) : NULL;
        int n = s->socket ? (s->socket[0] == '/' ? asprintf(&s->sock_path, "%s", s->socket)
                                                 : asprintf(&s->sock_path, "%s/%s",
                                                            abs ? abs : ".", s->socket))
                          : asprintf(&s->sock_path, "%s/nbd.sock", s->run_dir);
        free(abs);
        if (n < 0) {
            s->sock_path = NULL;
            return vb_error_set(VB_ENOMEM, "out of memory");
        }
    }
    if (s->background && !s->log) {
        snprintf(log_buf, log_cap, "%s.log", s->pid_file);
        s->log = log_buf;
    }
    return 0;
}

static void s_cleanup(s_serve_t *s)
{
    if (s->run_dir) {
        char *pf = NULL;
        if (asprintf(&pf, "%s/nbdkit.pid", s->run_dir) >= 0) {
            unlink(pf);
            free(pf);
        }
        if (s->sock_path && s->listened)
            unlink(s->sock_path);
        rmdir(s->run_dir);
    }
    if (s->pid_file)
        unlink(s->pid_file);
    free(s->run_dir);
    free(s->sock_path);
    free(s->psk_user);
}

/* Takes the lease, starts nbdkit, says where the exports are, serves until told to stop. */
static int s_serve(vb_cli_t *cli, s_serve_t *s, int *status_fd)
{
    json_t *plan = NULL, *exports = NULL;
    const char *argv[S_DISKS_MAX + 32];
    char *owned[S_DISKS_MAX + 8] = {0}, log_buf[4200];
    int rc = s_prepare(s, log_buf, sizeof log_buf), code = 1;
    if (!rc)
        rc = vb_cli_call(cli, "serve.start", s_lease_args(s, NULL), &plan);
    if (rc)
        goto out;
    s->job = (int64_t)json_integer_value(json_object_get(plan, "job"));
    json_t *disks = json_object_get(plan, "disks");
    if (s->overlay && json_array_size(disks) != 1) {
        rc = vb_error_set(VB_EINVAL, "restore point %lld has %zu disks: --overlay serves one "
                                     "(name it with --disk KEY)",
                          (long long)s->rp, json_array_size(disks));
        goto out;
    }
    if (!(exports = s_exports(s, disks))) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = s_nbdkit_argv(s, plan, argv, owned)) != 0 || (rc = s_start_nbdkit(s, argv, owned[0])) != 0 ||
        (s->pid_file && (rc = s_write_pid_file(s->pid_file)) != 0))
        goto out;
    s_renew(cli, s, exports); /* records the exports on the lease */
    s_print(s, plan, exports);
    s_report(status_fd, 0);
    code = s_wait(cli, s, exports, (int64_t)json_integer_value(json_object_get(plan, "lease_ms")));
out:
    if (rc)
        fprintf(stderr, "vbak serve: %s\n", vb_error_msg());
    s_report(status_fd, rc ? 1 : code);
    s_stop_nbdkit(s);
    json_t *res = NULL;
    if (s->job && vb_cli_call(cli, "serve.stop", json_pack("{s:I}", "job", (json_int_t)s->job),
                              &res) != 0 && !rc)
        fprintf(stderr, "vbak serve: ending the lease: %s\n", vb_error_msg());
    json_decref(res);
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
        free(owned[i]);
    json_decref(exports);
    json_decref(plan);
    s_cleanup(s);
    return rc ? 1 : code;
}

int vb_cli_serve(vb_cli_t *cli, int argc, char **argv)
{
    s_serve_t s = {0};
    int rc = s_parse(&s, argc, argv), status_fd = -1;
    if (rc)
        return rc == 1 ? 0 : rc;
    /* the stop signals are taken by sigtimedwait, not by a handler of the messaging library */
    zsys_handler_set(NULL);
    sigset_t set;
    s_signals(&set);
    if (s.background && (rc = s_fork_background(&status_fd)) >= 0)
        return rc;
    return s_serve(cli, &s, &status_fd);
}

int vb_cli_serves(vb_cli_t *cli, int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (s_is(argv[i], "--help") || s_is(argv[i], "-h")) {
            printf("Usage: vbak serves [--json]\n"
                   "The restore points being served (vbak serve): job, restore point, VM, host,\n"
                   "pid, start, lease end and export URIs.\n");
            return 0;
        }
        if (!s_is(argv[i], "--json"))
            return s_usage_fail("unexpected argument '%s'", argv[i]);
        json = true;
    }
    json_t *res = NULL;
    if (vb_cli_call(cli, "serves", json_object(), &res) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    if (json) {
        vb_cli_print_json(res);
        json_decref(res);
        return 0;
    }
    static const char *const h[] = {"JOB", "RP", "VM", "HOST", "PID", "STARTED", "EXPORTS"};
    vb_table_t *t = vb_table_new(7, h);
    size_t i, k;
    json_t *r, *e;
    json_array_foreach(res, i, r) {
        char job[24], rp[24], pid[24], *uris = NULL;
        size_t len = 0;
        snprintf(job, sizeof job, "%lld", (long long)json_integer_value(json_object_get(r, "job")));
        snprintf(rp, sizeof rp, "%lld", (long long)json_integer_value(json_object_get(r, "rp")));
        snprintf(pid, sizeof pid, "%lld", (long long)json_integer_value(json_object_get(r, "pid")));
        FILE *m = open_memstream(&uris, &len);
        if (m) {
            json_array_foreach(json_object_get(r, "exports"), k, e)
                fprintf(m, "%s%s", k ? " " : "", json_string_value(json_object_get(e, "uri")));
            fclose(m);
        }
        const char *row[] = {job, rp, json_string_value(json_object_get(r, "vm")),
                             json_string_value(json_object_get(r, "host")), pid,
                             json_string_value(json_object_get(r, "started")), uris ? uris : ""};
        vb_table_add(t, row);
        free(uris);
    }
    vb_table_print(t, stdout);
    vb_table_destroy(&t);
    json_decref(res);
    return 0;
}
