#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

vb_log_level_t vb_log_threshold = VB_LOG_LEVEL_INFO;

static bool s_syslog;
static bool s_json;
static const char *s_name = "";
static char s_file[PATH_MAX]; /* the log file, "" when none */

static const char *const s_level_names[] = {"error", "warn", "info", "debug"};

int vb_log_level_parse(const char *text, vb_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, s_level_names[i]) == 0) {
            *out = (vb_log_level_t)i;
            return 0;
        }
    }
    return vb_error_set(VB_EINVAL, "unknown log level '%s' (error, warn, info, debug)", text);
}

void vb_log_set_level(vb_log_level_t level)
{
    vb_log_threshold = level;
}

void vb_log_use_syslog(const char *ident)
{
    openlog(ident, LOG_PID, LOG_DAEMON);
    s_syslog = true;
}

void vb_log_set_name(const char *name)
{
    s_name = name ? name : "";
}

int vb_log_set_format(const char *name)
{
    if (strcmp(name, "text") != 0 && strcmp(name, "json") != 0)
        return vb_error_set(VB_EINVAL, "unknown log format '%s' (text or json)", name);
    s_json = name[0] == 'j';
    return 0;
}

static int s_open_onto_stderr(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return vb_error_set(VB_EIO, "log file %s: %s", path, strerror(errno));
    fflush(stderr);
    int rc = dup2(fd, STDERR_FILENO) < 0 ? vb_error_set(VB_EIO, "log file %s: %s", path,
                                                         strerror(errno))
                                         : 0;
    close(fd);
    return rc;
}

int vb_log_open_file(const char *path)
{
    if (strlen(path) >= sizeof s_file)
        return vb_error_set(VB_EINVAL, "log file path %s is too long", path);
    int rc = s_open_onto_stderr(path);
    if (!rc)
        memcpy(s_file, path, strlen(path) + 1);
    return rc;
}

int vb_log_reopen(void)
{
    return s_file[0] ? s_open_onto_stderr(s_file) : 0;
}

static void s_write_json(const char *stamp, vb_log_level_t level, const char *module,
                         const char *line)
{
    size_t event = strcspn(line, " ");
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s%, s:s}", "time", stamp, "level",
                          s_level_names[level], "program", s_name, "module", module, "event",
                          line, event, "msg", line);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (text)
        fprintf(stderr, "%s\n", text);
    free(text);
    json_decref(o);
}

void vb_log_write(vb_log_level_t level, const char *module, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (s_syslog) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        syslog(prio[level], "%s: %s", module, line);
        return;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32], full[48];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(full, sizeof full, "%s.%03ldZ", stamp, ts.tv_nsec / 1000000L);
    if (s_json) {
        s_write_json(full, level, module, line);
        return;
    }
    fprintf(stderr, "%s %s%s%s %s: %s\n", full, s_name, s_name[0] ? " " : "",
            s_level_names[level], module, line);
}
