/* proc — background processes tracked by pid files (the lab's daemons and servers).
 *
 * A pid file holds one decimal pid and a newline. A process counts as running only when the pid
 * is alive AND its command line contains an identity string unique to it (its configuration file
 * or pid file path, not merely its program name: pids wrap at 32768 on many machines, and a stale
 * pid reused by the same program of another site must never be signalled). */
#ifndef VB_PROC_H
#define VB_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

/* Starts argv[0] (a path) in a new session, stdin from /dev/null, stdout and stderr appended to
 * `log_path`; writes its pid to `pid_path`. Returns 0 with *pid_out set. */
int vb_proc_spawn(char *const argv[], const char *log_path, const char *pid_path,
                  pid_t *pid_out) VB_WUR;

/* True when the pid in `pid_path` is alive and its command line contains `identity`; *pid_out
 * set when not NULL. */
bool vb_proc_running(const char *pid_path, const char *identity, pid_t *pid_out);

/* A module the program loads by path (an nbdkit plugin): $env_var when set; else the installed
 * copy beside the running program (PREFIX/bin/vbak -> PREFIX/installed_rel), so an installed vbak
 * never depends on its build tree; else build_path. The result is buf, env's value or
 * build_path (borrowed). */
const char *vb_proc_module_path(const char *env_var, const char *installed_rel,
                                const char *build_path, char *buf, size_t cap);

/* True when `pid` has exited (reaps it when it is our child). */
bool vb_proc_exited(pid_t pid);

/* Stops the process of `pid_path` (SIGTERM, then SIGKILL after timeout_ms), removes the pid
 * file. 0 when nothing runs afterwards (also when nothing ran). */
int vb_proc_stop(const char *pid_path, const char *identity, int timeout_ms) VB_WUR;

/* The directory of the running executable (for finding sibling binaries); caller frees. */
char *vb_proc_self_dir(void);

#endif
