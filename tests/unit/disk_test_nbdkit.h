/* Starting nbdkit for the disk tests: the test binds a listening socket on an ephemeral port and
 * hands it to nbdkit with systemd socket activation (LISTEN_FDS), so the port is known before
 * nbdkit runs and connections queue until it accepts: no port race, no waiting. Also makes
 * X.509 certificate dirs with the openssl CLI and PSK files. */
#ifndef VB_DISK_TEST_NBDKIT_H
#define VB_DISK_TEST_NBDKIT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "disk_test_util.h"

typedef struct {
    pid_t pid;
    int port;
} tserver_t;

/* Starts nbdkit on addr ("127.0.0.1" or "::1") with argv (NULL-terminated, after "nbdkit -f"). */
static inline tserver_t nbdkit_start(const char *addr, const char *const *args)
{
    bool v6 = strchr(addr, ':') != NULL;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        cr_assert_eq(inet_pton(AF_INET6, addr, &a->sin6_addr), 1);
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        cr_assert_eq(inet_pton(AF_INET, addr, &a->sin_addr), 1);
        sl = sizeof *a;
    }
    cr_assert_eq(bind(fd, (struct sockaddr *)&ss, sl), 0);
    cr_assert_eq(listen(fd, 16), 0);
    sl = sizeof ss;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
    int port = v6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        const char *argv[40] = {"nbdkit", "-f", "--exit-with-parent", "--log=null"};
        size_t n = 4;
        for (size_t i = 0; args[i] && n < 38; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        if (fd != 3) {
            dup2(fd, 3);
            close(fd);
        }
        char pidbuf[16];
        snprintf(pidbuf, sizeof pidbuf, "%d", (int)getpid());
        setenv("LISTEN_PID", pidbuf, 1);
        setenv("LISTEN_FDS", "1", 1);
        execvp("nbdkit", (char *const *)argv);
        _exit(127);
    }
    close(fd);
    return (tserver_t){pid, port};
}

static inline void nbdkit_stop(tserver_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

static inline void run_ok(const char *cmd)
{
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "command failed: %s", cmd);
}

/* A CA and a server certificate for san (e.g. "IP:127.0.0.1,DNS:localhost") in dir, laid out as
 * nbdkit wants it (ca-cert.pem, server-cert.pem, server-key.pem); dir/client/ holds only the CA
 * certificate, as a client needs it. With ca_from set, signs with that dir's CA instead. */
static inline void certs_make(const char *dir, const char *san, const char *ca_from)
{
    char cmd[8192];
    const char *ca = ca_from ? ca_from : dir;
    snprintf(
        cmd, sizeof cmd,
        "set -e; mkdir -p '%s/client'; cd '%s';"
        "if [ -z '%s' ]; then openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
        " -nodes -keyout ca-key.pem -out ca-cert.pem -days 2 -subj '/CN=vbak test CA'"
        " 2>/dev/null; else cp '%s/ca-cert.pem' '%s/ca-key.pem' .; fi;"
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        " -keyout server-key.pem -out server.csr -subj '/CN=vbak test server' 2>/dev/null;"
        "printf 'subjectAltName=%s\\nextendedKeyUsage=serverAuth\\n' > ext.cnf;"
        "openssl x509 -req -in server.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial"
        " -out server-cert.pem -days 2 -extfile ext.cnf 2>/dev/null;"
        "cp ca-cert.pem client/",
        dir, dir, ca_from ? ca_from : "", ca, ca, san);
    run_ok(cmd);
}

/* Writes "user:hexkey" with a key derived from seed. */
static inline void psk_make(const char *path, const char *user, unsigned seed)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s:", user);
    for (unsigned i = 0; i < 32; i++)
        fprintf(f, "%02x", (seed * 131u + i * 29u + 7u) & 0xffu);
    fprintf(f, "\n");
    cr_assert_eq(fclose(f), 0);
}

#endif
