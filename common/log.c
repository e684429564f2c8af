#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

vb_log_level_t vb_log_threshold = VB_LOG_LEVEL_INFO;

static bool s_syslog;
static const char *s_name = "";

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
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %s%s%s %s: %s\n", stamp, ts.tv_nsec / 1000000L, s_name,
            s_name[0] ? " " : "", s_level_names[level], module, line);
}
