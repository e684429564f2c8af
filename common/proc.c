#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int s_read_pid(const char *pid_path, pid_t *out)
{
    FILE *f = fopen(pid_path, "r");
    if (!f)
        return VB_ENOTFOUND;
    char buf[32] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    /* Only a complete line counts: a server writing its own pid file may be half-way through. */
    if (end == buf || *end != '\n' || errno || v <= 1 || v > INT_MAX)
        return VB_ECORRUPT;
    *out = (pid_t)v;
    return 0;
}

static bool s_cmdline_has(pid_t pid, const char *identity)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    return strstr(buf, identity) != NULL;
}

static bool s_is_zombie(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return !p || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X';
}

bool vb_proc_exited(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid)
        return true;
    return kill(pid, 0) != 0 || s_is_zombie(pid);
}

bool vb_proc_running(const char *pid_path, const char *identity, pid_t *pid_out)
{
    pid_t pid;
    if (s_read_pid(pid_path, &pid) != 0)
        return false;
    if (vb_proc_exited(pid) || !s_cmdline_has(pid, identity))
        return false;
    if (pid_out)
        *pid_out = pid;
    return true;
}

int vb_proc_spawn(char *const argv[], const char *log_path, const char *pid_path, pid_t *pid_out)
{
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0)
        return vb_error_set(VB_EIO, "log file %s: %s", log_path, strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(log_fd);
        return vb_error_set(VB_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        setsid();
        int null_fd = open("/dev/null", O_RDONLY);
        dup2(null_fd, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(log_fd);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.spawn", pid_path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", (int)pid) < 0 || fclose(f) != 0 || rename(tmp, pid_path) != 0)
        return vb_error_set(VB_EIO, "pid file %s: %s", pid_path, strerror(errno));
    *pid_out = pid;
    return 0;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int vb_proc_stop(const char *pid_path, const char *identity, int timeout_ms)
{
    pid_t pid;
    if (!vb_proc_running(pid_path, identity, &pid)) {
        remove(pid_path);
        return 0;
    }
    kill(pid, SIGTERM);
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (vb_proc_exited(pid)) {
            remove(pid_path);
            return 0;
        }
        s_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    for (int waited = 0; waited < 5000; waited += 20) {
        if (vb_proc_exited(pid)) {
            remove(pid_path);
            return 0;
        }
        s_sleep_ms(20);
    }
    return vb_error_set(VB_EBUSY, "process %d (%s) does not stop", (int)pid, identity);
}

char *vb_proc_self_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
    return strdup(buf);
}

const char *vb_proc_module_path(const char *env_var, const char *installed_rel,
                                const char *build_path, char *buf, size_t cap)
{
    const char *env = getenv(env_var);
    if (env && *env)
        return env;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    if (!slash)
        return build_path;
    *slash = '\0'; /* PREFIX/bin */
    char installed[4200];
    snprintf(installed, sizeof installed, "%s/../%s", exe, installed_rel);
    char *real = realpath(installed, NULL);
    const char *found = build_path;
    if (real && strlen(real) < cap && access(real, R_OK) == 0) {
        memcpy(buf, real, strlen(real) + 1);
        found = buf;
    }
    free(real);
    return found;
}
