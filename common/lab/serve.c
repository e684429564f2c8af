/* serve — the ESXi hosts' network disk service: nbdkit servers over a lab site.
 *
 * Six nbdkit processes, each bound to one address (nbdkit -i):
 *   nbd-ipv4  / nbd-ipv6   plain NBD of DIR/disks (the lab's own plugin, common/lab/nbdkit/:
 *                          one export per file, each read through its redirect-on-write chain)
 *   nbds-ipv4 / nbds-ipv6  the same over TLS: X.509 (site CA) on 127.0.0.1, TLS-PSK on [::1]
 *   luks-ipv4 / luks-ipv6  DIR/disks-luks (file plugin, dir= mode) through the luks filter, TLS
 *                          only, same split (encrypted disks' snapshots are copies)
 * A host with an address of its own (hosts[].ipv4) has its own nbd-ipv4, nbds-ipv4 and luks-ipv4
 * servers bound to that address (vb_lab_serve_host_start, pid files run/HOST-NAME.pid), as on a
 * network where each ESXi host is a machine of its own.
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
#include "proc.h"

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

/* Pid file (and log) name: NAME, or HOST-NAME for a host's own servers. */
static char *s_pidfile(const char *dir, const char *host, const s_server_t *s)
{
    return vb_lab_strf("%s/run/%s%s%s.pid", dir, host ? host : "", host ? "-" : "", s->name);
}

/* A server is identified by its pid file path, which is on its command line (nbdkit -P): a pid
 * reused by another site's nbdkit is never taken for ours. */
static int s_stop_one(const char *dir, const char *host, const s_server_t *s, int *stopped)
{
    char *pf = s_pidfile(dir, host, s);
    if (!pf)
        return VB_ENOMEM;
    bool was_running = vb_proc_running(pf, pf, NULL);
    int rc = vb_proc_stop(pf, pf, 5000);
    if (!rc && was_running)
        (*stopped)++;
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
        int r = s_stop_one(abs, NULL, &s_servers[i], &stopped);
        if (r && !rc)
            rc = r;
    }
    /* the servers of hosts with an address of their own */
    vb_lab_site_t *site;
    if (vb_lab_site_open(abs, false, &site) == 0) {
        size_t h;
        json_t *host;
        json_array_foreach(json_object_get(vb_lab_site_root(site), "hosts"), h, host)
        {
            for (size_t i = 0; json_object_get(host, "ipv4") && i < S_NSERVERS; i++) {
                int r = s_stop_one(abs, vb_lab_json_str(host, "name"), &s_servers[i], &stopped);
                if (r && !rc)
                    rc = r;
            }
        }
        vb_lab_site_destroy(&site);
    } else {
        vb_error_clear();
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
        char *pf = s_pidfile(abs, NULL, &s_servers[i]);
        if (!pf) {
            rc = VB_ENOMEM;
            break;
        }
        *count += vb_proc_running(pf, pf, NULL);
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
        pid_t intermediate = getpid();
        pid_t g = fork();
        if (g != 0)
            _exit(g < 0 ? 126 : 0);
        /* nbdkit arms PR_SET_PDEATHSIG(SIGTERM) as it starts: had this intermediate process not
         * exited by then (a loaded machine may not run it for a while), its exit would stop
         * nbdkit at once, without a word. So exec only once handed over to init (or a
         * subreaper), which outlives it. */
        for (int waited = 0; getppid() == intermediate && waited < 10000; waited++) {
            struct timespec ts = {0, 1000000L};
            nanosleep(&ts, NULL);
        }
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

enum { S_START_ATTEMPTS = 3 };

/* Starts one nbdkit and waits for it to listen (its pid file appears once it does). On failure
 * *silent tells whether it exited without saying why. */
static int s_launch(const char *const argv[], const char *pf, const char *log, bool *silent)
{
    *silent = false;
    unlink(pf);
    int rc = s_spawn_detached(argv, log);
    if (rc)
        return rc;
    /* A server that fails exits at once; a loaded machine may take a while to bind. */
    for (int waited = 0; waited < 30000; waited += 10) {
        if (vb_proc_running(pf, pf, NULL))
            return 0;
        if (access(pf, F_OK) == 0) {
            s_sleep_ms(50); /* a pid file being written, or a server that just died */
            if (vb_proc_running(pf, pf, NULL))
                return 0;
            char last[512];
            vb_lab_last_line(log, last, sizeof last);
            if (last[0])
                return vb_error_set(VB_EIO, "exited at start: %s (log %s)", last, log);
            *silent = true;
            return vb_error_set(VB_EIO, "exited at start with no message (log %s)", log);
        }
        if (waited >= 300 && s_log_has_error(log))
            break;
        s_sleep_ms(10);
    }
    char last[512];
    vb_lab_last_line(log, last, sizeof last);
    return vb_error_set(VB_EIO, "did not start: %s (log %s)", last[0] ? last : "no message", log);
}

/* The lab's nbdkit plugin: $VBAK_LAB_PLUGIN, the installed copy, or the build tree's. */
static const char *s_plugin_path(char *buf, size_t cap)
{
    return vb_proc_module_path("VBAK_LAB_PLUGIN", VB_LAB_NBDKIT_PLUGIN_INSTALLED,
                               VB_LAB_NBDKIT_PLUGIN, buf, cap);
}

/* Starts server s of the site (host NULL), or of a host with an address of its own. */
static int s_start_one(vb_lab_site_t *site, const s_server_t *s, const char *host)
{
    const char *dir = vb_lab_site_dir(site);
    json_t *net = json_object_get(vb_lab_site_root(site), "network");
    int rc = VB_ENOMEM;
    char port[16];
    snprintf(port, sizeof port, "%lld",
             (long long)json_integer_value(json_object_get(net, s->port_key)));
    const char *addr = host ? vb_lab_host_ipv4(site, host)
                            : vb_lab_json_str(net, s->ipv6 ? "ipv6" : "ipv4");
    char *pf = s_pidfile(dir, host, s);
    char *log = vb_lab_strf("%s/log/%s%s%s.log", dir, host ? host : "", host ? "-" : "", s->name);
    char *tls = s->tls ? (s->ipv6 ? vb_lab_strf("--tls-psk=%s/tls/psk.keys", dir)
                                  : vb_lab_strf("--tls-certificates=%s/tls/server", dir))
                       : vb_lab_strf("--tls=off");
    char *files = vb_lab_strf("dir=%s/%s", dir, s->luks ? "disks-luks" : "disks");
    char *pass = vb_lab_strf("passphrase=+%s/tls/luks.pass", dir);
    if (!pf || !log || !tls || !files || !pass)
        goto out;
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
    char plugin[4200];
    argv[n++] = s->luks ? "file" : s_plugin_path(plugin, sizeof plugin);
    argv[n++] = files;
    if (s->luks)
        argv[n++] = pass;
    argv[n] = NULL;
    /* A server that dies at once without a word is started again, with a warning; one that says
     * why it failed (a port in use, a bad certificate) is not: the same start would fail the
     * same way. */
    for (int attempt = 1;; attempt++) {
        bool silent;
        rc = s_launch(argv, pf, log, &silent);
        if (!rc || !silent || attempt == S_START_ATTEMPTS)
            break;
        VB_LOG_WARN("lab", "serve-restart server=%s addr=%s port=%s attempt=%d reason=\"%s\"",
                    s->name, addr, port, attempt, vb_error_msg());
    }
    if (rc)
        vb_error_prefix(rc, "nbdkit %s on %s port %s", s->name, addr, port);
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
        rc = s_start_one(site, &s_servers[i], NULL);
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

static json_t *s_find_host(vb_lab_site_t *site, const char *host)
{
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(vb_lab_site_root(site), "hosts"), i, h)
    {
        if (strcmp(vb_lab_json_str(h, "name"), host) == 0)
            return h;
    }
    return NULL;
}

int vb_lab_serve_host_start(const char *dir, const char *host)
{
    vb_lab_site_t *site;
    int rc = vb_lab_site_open(dir, false, &site);
    if (rc)
        return rc;
    json_t *h = s_find_host(site, host);
    if (!h) {
        rc = vb_error_set(VB_ENOTFOUND, "the lab site %s has no host %s", dir, host);
        goto out;
    }
    if (!json_object_get(h, "ipv4")) {
        rc = vb_error_set(VB_EINVAL, "host %s has no address of its own (vbak lab create "
                                     "--host-address %s=IPV4)", host, host);
        goto out;
    }
    for (size_t i = 0; i < S_NSERVERS && !rc; i++) {
        char *pf = s_servers[i].ipv6 ? NULL : s_pidfile(vb_lab_site_dir(site), host, &s_servers[i]);
        if (pf && vb_proc_running(pf, pf, NULL))
            rc = vb_error_set(VB_EBUSY, "the disk servers of host %s run already", host);
        free(pf);
    }
    if (rc)
        goto out;
    for (size_t i = 0; i < S_NSERVERS && !rc; i++)
        if (!s_servers[i].ipv6)
            rc = s_start_one(site, &s_servers[i], host);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", vb_error_msg());
        int stopped = 0;
        for (size_t i = 0; i < S_NSERVERS; i++)
            (void)s_stop_one(vb_lab_site_dir(site), host, &s_servers[i], &stopped);
        vb_error_set(rc, "%s", msg);
    } else {
        VB_LOG_INFO("lab", "serve-start dir=%s host=%s addr=%s", vb_lab_site_dir(site), host,
                    vb_lab_host_ipv4(site, host));
    }
out:
    vb_lab_site_destroy(&site);
    return rc;
}
