#include "daemon.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static void s_usage(const vb_daemon_info_t *info, FILE *out)
{
    fprintf(out,
            "Usage: %s --config FILE [--KEY=VALUE ...]\n"
            "%s\n\n"
            "Options:\n"
            "  --config FILE     configuration file (key = \"value\" lines)\n"
            "  --KEY=VALUE       set a configuration key, overriding the file\n"
            "  --help            show this help\n"
            "  --version         show the version\n\n"
            "Configuration keys:\n",
            info->program, info->summary);
    vb_config_print_help(info->table, out);
}

int vb_daemon_configure(const vb_daemon_info_t *info, void *settings, int argc, char **argv)
{
    int rc = vb_config_defaults(info->table, settings);
    if (rc)
        return rc;
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
            s_usage(info, stdout);
            return 1;
        }
        if (streq(argv[i], "--version")) {
            printf("%s %s\n", info->program, VB_VERSION);
            return 1;
        }
        if (streq(argv[i], "--config")) {
            if (i + 1 >= argc)
                return vb_error_set(VB_EINVAL, "--config needs a file name");
            config = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config = argv[i] + 9;
        }
    }
    if (config && (rc = vb_config_load_file(info->table, settings, config)) != 0)
        return rc;
    for (int i = 1; i < argc; i++) {
        if (streq(argv[i], "--config")) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--config=", 9) == 0)
            continue;
        if (strncmp(argv[i], "--", 2) != 0 || !strchr(argv[i], '='))
            return vb_error_set(VB_EINVAL, "unexpected argument '%s' (see --help)", argv[i]);
        if ((rc = vb_config_override(info->table, settings, argv[i])) != 0)
            return rc;
    }
    rc = vb_config_check_required(info->table, settings);
    if (rc)
        return vb_error_prefix(rc, "%s", config ? config : "no --config given");
    return rc;
}

int vb_daemon_init_log(const vb_daemon_info_t *info, const vb_daemon_log_t *log)
{
    vb_log_level_t lvl;
    int rc = vb_log_level_parse(log->level ? log->level : "info", &lvl);
    if (!rc)
        rc = vb_log_set_format(log->format ? log->format : "text");
    if (!rc && log->file && *log->file)
        rc = vb_log_open_file(log->file);
    if (rc)
        return rc;
    vb_log_set_level(lvl);
    vb_log_set_name(info->program);
    /* SIGHUP would interrupt the threads' polls (a zloop stops on EINTR): it stays pending
     * until vb_daemon_wait() takes it */
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hup, NULL);
    return 0;
}

/* Takes a pending SIGHUP, if any, and reopens the log file. */
static void s_take_hangup(void)
{
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    struct timespec none = {0, 0};
    if (sigtimedwait(&hup, NULL, &none) != SIGHUP)
        return;
    if (vb_log_reopen() != 0)
        VB_LOG_ERROR("daemon", "log_reopen_failed error=\"%s\"", vb_error_msg());
    else
        VB_LOG_INFO("daemon", "log_reopened");
}

int vb_daemon_write_pid(const char *path)
{
    if (!path || !*path)
        return 0;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return vb_error_set(VB_EIO, "pid file %s: %s", tmp, strerror(errno));
    fprintf(f, "%d\n", (int)getpid());
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return vb_error_set(VB_EIO, "pid file %s: %s", path, strerror(errno));
    return 0;
}

/* The protocol is a plain datagram (documented as stable in sd_notify(3)), so the daemons need no
 * libsystemd: one sendto, and the package depends on nothing more. */
int vb_daemon_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof addr.sun_path)
        return vb_error_set(VB_EINVAL, "NOTIFY_SOCKET=%s is not a socket path or abstract name",
                            path);
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@')
        addr.sun_path[0] = '\0';
    char msg[256];
    int n = snprintf(msg, sizeof msg, "%s\nMAINPID=%ld", state, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof msg)
        return vb_error_set(VB_EINVAL, "notification too long: %s", state);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return vb_error_set(VB_EIO, "NOTIFY_SOCKET %s: socket: %s", path, strerror(errno));
    int rc = 0;
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&addr, alen) != n)
        rc = vb_error_set(VB_EIO, "NOTIFY_SOCKET %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

char *vb_daemon_wait(zactor_t *actor)
{
    zpoller_t *poller = zpoller_new(actor, NULL);
    char *said = NULL;
    while (!zsys_interrupted) {
        s_take_hangup();
        void *which = zpoller_wait(poller, 500);
        if (which == actor) {
            said = zstr_recv(actor);
            break;
        }
        if (zpoller_terminated(poller))
            break;
    }
    zpoller_destroy(&poller);
    return said;
}
