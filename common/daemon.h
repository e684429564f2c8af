/* daemon — what vbak-coordinator and vbak-agent share at start-up: option parsing into a config
 * table (`--config FILE`, `--key=value` overrides, `--help`, `--version`), the pid file, and
 * waiting for SIGINT/SIGTERM while an actor runs. */
#ifndef VB_DAEMON_H
#define VB_DAEMON_H

#include <czmq.h>
#include <stdbool.h>

#include "config.h"

typedef struct {
    const char *program;     /* "vbak-agent" */
    const char *summary;     /* one line: what the daemon is */
    const vb_conf_key_t *table;
} vb_daemon_info_t;

/* Fills `settings` from defaults, the --config file, then --key=value overrides, and checks
 * required keys. Returns 0 to run, 1 when --help/--version was printed (exit 0), or a negative
 * code with the message set (print it and exit 2). */
int vb_daemon_configure(const vb_daemon_info_t *info, void *settings, int argc, char **argv) VB_WUR;

/* The config rows of log_file and log_format, for a settings struct `type` with those fields. */
#define VB_DAEMON_LOG_CONF(type)                                                                   \
    {"log_file", VB_CONF_STR, offsetof(type, log_file), NULL, 0, 0, false,                       \
     "append log lines to this file (reopened on SIGHUP); none: stderr"},                         \
    {                                                                                              \
        "log_format", VB_CONF_STR, offsetof(type, log_format), "text", 0, 0, false,               \
            "text, or json: one JSON object per line (time, level, program, module, event, msg)"  \
    }

/* The log settings of a daemon's config: log_level, log_file (NULL: stderr), log_format. */
typedef struct {
    const char *level;
    const char *file;
    const char *format;
} vb_daemon_log_t;

/* Applies the log settings and names log lines after the program. Blocks SIGHUP in this thread
 * and so in every thread started later (call it before any): vb_daemon_wait() takes it and
 * reopens the log file. */
int vb_daemon_init_log(const vb_daemon_info_t *info, const vb_daemon_log_t *log) VB_WUR;

/* Writes the process id to `path` (temp + rename); NULL path: nothing. */
int vb_daemon_write_pid(const char *path) VB_WUR;

/* Tells the service manager the daemon's state with systemd's notification protocol (sd_notify(3)):
 * `state` (e.g. "READY=1", "STOPPING=1") as one datagram to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or an abstract name starting with '@'), with MAINPID added. Without
 * $NOTIFY_SOCKET (not run by systemd with Type=notify) it does nothing and returns 0; a socket
 * that cannot be reached returns VB_EIO with the message set. */
int vb_daemon_notify(const char *state) VB_WUR;

/* Blocks until SIGINT/SIGTERM or until the actor sends something (it stopped by itself); on
 * SIGHUP reopens the log file (logrotate's postrotate, `systemctl reload`).
 * Returns the actor's message when it sent one (caller frees), NULL on a signal. */
char *vb_daemon_wait(zactor_t *actor);

#endif
