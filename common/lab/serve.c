/* serve — the ESXi hosts' network disk service: nbdkit servers over a lab site.
 *
 * Six nbdkit processes, each bound to one address (nbdkit -i):
 *   nbd-ipv4  / nbd-ipv6   plain NBD of DIR/disks (file plugin, dir= mode: one export per file)
 *   nbds-ipv4 / nbds-ipv6  the same over TLS: X.509 (site CA) on 127.0.0.1, TLS-PSK on [::1]
 *   luks-ipv4 / luks-ipv6  DIR/disks-luks through the luks filter, TLS only, same split
 * IPv6 uses TLS-PSK because libnbd 1.14 sends an IPv6 literal as TLS SNI (refused by the server)
 * and does not verify an X.509 certificate on a socket it did not connect itself; a PSK
 * handshake authenticates both ends on a self-connected socket.
 *
 * nbdkit runs in the foreground (-f) of a detached grandchild so that its stderr stays in
 * DIR/log/NAME.log (a self-daemonising nbdkit sends it to /dev/null). It writes its pid file
 * once it listens, so a pid file means the server accepts connections. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lab/lab.h"
#include "lab/lab_util.h"
#include "lab/site.h"
#include "log.h"

typedef struct {
    const char *name;
    bool ipv6;
    const char *port_key;
    bool tls;
    bool luks;
} s_server_t;

static const s_server_t s_servers[] = {
    {"nbd-ipv4", false, "nbd_port", false, false}, {"nbd-ipv6", true, "nbd_port", false, false},
    {"nbds-ipv4", false, "tls_port", true, false}, {"nbds-ipv6", true, "tls_port", true, false},
    {"luks-ipv4", false, "luks_port", true, true}, {"luks-ipv6", true, "luks_port", true, true},
};
#define S_NSERVERS (sizeof s_servers / sizeof *s_servers)

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The pid in a pid file, or 0 when the file is absent or unreadable. */
static pid_t s_read_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[32] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end;
    long v = strtol(buf, &end, 10);
    /* Only a complete line counts: the writer may be half-way through. */
    if (end == buf || *end != '\n' || v <= 1 || v > 4194304)
        return 0;
    return (pid_t)v;
}

/* Is pid a live (not zombie) nbdkit? Guards against a recycled pid. */
static bool s_is_nbdkit(pid_t pid)
{
    char path[64], comm[64] = "", stat[256] = "";
    snprintf(path, sizeof path, "/proc/%ld/comm", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(comm, sizeof comm, f) && strncmp(comm, "nbdkit", 6) == 0;
    fclose(f);
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if (ok && (f = fopen(path, "r"))) {
        if (fgets(stat, sizeof stat, f)) {
            const char *rp = strrchr(stat, ')');
            ok = !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
        }
        fclose(f);
    }
    return ok;
}

static char *s_pidfile(const char *dir, const s_server_t *s)
{
    return vb_lab_strf("%s/run/%s.pid", dir, s->name);
}

static int s_stop_one(const char *dir, const s_server_t *s, int *stopped)
{
    char *pf = s_pidfile(dir, s);
    if (!pf)
        return VB_ENOMEM;
    pid_t pid = s_read_pid(pf);
    int rc = 0;
    if (pid > 0 && s_is_nbdkit(pid)) {
        kill(pid, SIGTERM);
        int waited = 0;
        while (s_is_nbdkit(pid) && waited < 5000) {
            s_sleep_ms(20);
            waited += 20;
        }
        if (s_is_nbdkit(pid)) {
            kill(pid, SIGKILL);
            for (waited = 0; s_is_nbdkit(pid) && waited < 2000; waited += 20)
                s_sleep_ms(20);
        }
        if (s_is_nbdkit(pid))
            rc = vb_error_set(VB_EBUSY, "nbdkit %s (pid %ld) does not stop", s->name, (long)pid);
        else
            (*stopped)++;
    }
    if (!rc)
        unlink(pf);
    free(pf);
    return rc;
}

int vb_lab_serve_stop(const char *dir)
{
    char *abs = realpath(dir, NULL);
    if (!abs)
        return vb_error_set(VB_ENOTFOUND, "lab site %s: %s", dir, strerror(errno));
    int rc = 0, stopped = 0;
    for (size_t i = 0; i < S_NSERVERS; i++) {
        int r = s_stop_one(abs, &s_servers[i], &stopped);
        if (r && !rc)
            rc = r;
    }
    if (stopped)
        VB_LOG_INFO("lab", "serve-stop dir=%s servers=%d", abs, stopped);
    free(abs);
    return rc;
}

int vb_lab_serve_running(const char *dir, int *count)
{
    *count = 0;
    char *abs = realpath(dir, NULL);
    if (!abs)
        return vb_error_set(VB_ENOTFOUND, "lab site %s: %s", dir, strerror(errno));
    int rc = 0;
    for (size_t i = 0; i < S_NSERVERS && !rc; i++) {
        char *pf = s_pidfile(abs, &s_servers[i]);
        if (!pf) {
            rc = VB_ENOMEM;
            break;
        }
        pid_t pid = s_read_pid(pf);
        *count += pid > 0 && s_is_nbdkit(pid);
        free(pf);
    }
    free(abs);
    return rc;
}

/* Runs argv detached from us (new session, reparented to init), stdin from /dev/null, stdout and
 * stderr appended to log_path. Returns once the intermediate child has exited. */
static int s_spawn_detached(const char *const argv[], const char *log_path)
{
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int rc = 0;
    if (logfd < 0 || nullfd < 0) {
        rc = vb_error_set(VB_EIO, "cannot open %s: %s", log_path, strerror(errno));
        goto out;
    }
    pid_t child = fork();
    if (child < 0) {
        rc = vb_error_set(VB_EIO, "fork: %s", strerror(errno));
        goto out;
    }
    if (child == 0) {
        /* Only async-signal-safe calls until exec. */
        if (setsid() < 0)
            _exit(126);
        pid_t g = fork();
        if (g != 0)
            _exit(g < 0 ? 126 : 0);
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(126);
        close_range(3, ~0u, 0);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        rc = vb_error_set(VB_EIO, "cannot start %s in the background", argv[0]);
out:
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    return rc;
}

static bool s_log_has_error(const char *log)
{
    char last[512];
    vb_lab_last_line(log, last, sizeof last);
    return strstr(last, "error") != NULL;
}

static int s_start_one(vb_lab_site_t *site, const s_server_t *s)
{
    const char *dir = vb_lab_site_dir(site);
    json_t *net = json_object_get(vb_lab_site_root(site), "network");
    int rc = VB_ENOMEM;
    char port[16];
    snprintf(port, sizeof port, "%lld",
             (long long)json_integer_value(json_object_get(net, s->port_key)));
    const char *addr = vb_lab_json_str(net, s->ipv6 ? "ipv6" : "ipv4");
    char *pf = s_pidfile(dir, s);
    char *log = vb_lab_strf("%s/log/%s.log", dir, s->name);
    char *tls = s->tls ? (s->ipv6 ? vb_lab_strf("--tls-psk=%s/tls/psk.keys", dir)
                                  : vb_lab_strf("--tls-certificates=%s/tls/server", dir))
                       : vb_lab_strf("--tls=off");
    char *files = vb_lab_strf("dir=%s/%s", dir, s->luks ? "disks-luks" : "disks");
    char *pass = vb_lab_strf("passphrase=+%s/tls/luks.pass", dir);
    if (!pf || !log || !tls || !files || !pass)
        goto out;
    unlink(pf);
    const char *argv[20];
    int n = 0;
    argv[n++] = "nbdkit";
    argv[n++] = "-f";
    argv[n++] = "--log=stderr";
    argv[n++] = "-P";
    argv[n++] = pf;
    argv[n++] = "-i";
    argv[n++] = addr;
    argv[n++] = "-p";
    argv[n++] = port;
    if (s->tls)
        argv[n++] = "--tls=require";
    argv[n++] = tls;
    if (s->luks)
        argv[n++] = "--filter=luks";
    argv[n++] = "file";
    argv[n++] = files;
    if (s->luks)
        argv[n++] = pass;
    argv[n] = NULL;
    if ((rc = s_spawn_detached(argv, log))) {
        vb_error_prefix(rc, "starting nbdkit %s on %s port %s", s->name, addr, port);
        goto out;
    }
    pid_t pid = 0;
    /* A server that fails exits at once; a slow machine may take a while to bind. */
    for (int waited = 0; waited < 10000 && !(pid = s_read_pid(pf)); waited += 10) {
        if (waited >= 300 && s_log_has_error(log))
            break;
        s_sleep_ms(10);
    }
    if (!pid || !s_is_nbdkit(pid)) {
        char last[512];
        vb_lab_last_line(log, last, sizeof last);
        rc = vb_error_set(VB_EIO, "nbdkit %s on %s port %s did not start: %s (log %s)", s->name,
                          addr, port, last[0] ? last : "no message", log);
        goto out;
    }
    VB_LOG_DEBUG("lab", "serve-start server=%s addr=%s port=%s pid=%ld", s->name, addr, port,
                 (long)pid);
out:
    free(pf);
    free(log);
    free(tls);
    free(files);
    free(pass);
    return rc;
}

int vb_lab_serve_start(const char *dir)
{
    vb_lab_site_t *site;
    int running = 0;
    int rc = vb_lab_serve_running(dir, &running);
    if (rc)
        return rc;
    if (running)
        return vb_error_set(VB_EBUSY, "the lab site %s is up already (%d servers running)", dir,
                            running);
    if ((rc = vb_lab_site_open(dir, false, &site)))
        return rc;
    for (size_t i = 0; i < S_NSERVERS && !rc; i++)
        rc = s_start_one(site, &s_servers[i]);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", vb_error_msg());
        if (vb_lab_serve_stop(dir) != 0)
            VB_LOG_WARN("lab", "serve-cleanup-failed dir=%s error=%s", dir, vb_error_msg());
        vb_error_set(rc, "%s", msg);
    } else {
        VB_LOG_INFO("lab", "serve-start dir=%s servers=%zu", vb_lab_site_dir(site), S_NSERVERS);
    }
    vb_lab_site_destroy(&site);
    return rc;
}
