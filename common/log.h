/* log — levelled logging in the form `module: event key=value ...`.
 *
 * Lines go to stderr (foreground; a log file is opened onto stderr, so it catches what the
 * libraries print there too) or syslog (vb_log_use_syslog), as text or as JSON lines. The level
 * check happens in the macro, before any argument is evaluated. The level, the format and the
 * sink are process-wide settings made once at start-up by main(); vb_log_reopen() may run while
 * threads log (it replaces the file under stderr's descriptor in one dup2). */
#ifndef VB_LOG_H
#define VB_LOG_H

#include <stdbool.h>

#include "error.h"

typedef enum { VB_LOG_LEVEL_ERROR = 0, VB_LOG_LEVEL_WARN, VB_LOG_LEVEL_INFO, VB_LOG_LEVEL_DEBUG } vb_log_level_t;

extern vb_log_level_t vb_log_threshold;

/* Parses "error", "warn", "info", "debug"; returns VB_EINVAL (message set) otherwise. */
int vb_log_level_parse(const char *text, vb_log_level_t *out) VB_WUR;

void vb_log_set_level(vb_log_level_t level);
/* Sends lines to syslog with the given identity instead of stderr. */
void vb_log_use_syslog(const char *ident);
/* Prefixes stderr lines with a name (the daemon's name); borrowed, must outlive logging. */
void vb_log_set_name(const char *name);

/* "text" (default) or "json": one JSON object per line with time, level, program, module, event
 * (the first word of the message) and msg. VB_EINVAL for another name. */
int vb_log_set_format(const char *name) VB_WUR;

/* Appends log lines (and whatever is written to stderr) to `path` (made 0640 when absent);
 * the path is kept for vb_log_reopen(). */
int vb_log_open_file(const char *path) VB_WUR;

/* Opens the log file again by its path (after logrotate moved it); 0 when no file is used. */
int vb_log_reopen(void) VB_WUR;

void vb_log_write(vb_log_level_t level, const char *module, const char *fmt, ...) VB_PRINTF(3, 4);

#define VB_LOG_AT(lvl, module, ...)                                                                \
    do {                                                                                           \
        if ((lvl) <= vb_log_threshold)                                                             \
            vb_log_write((lvl), (module), __VA_ARGS__);                                            \
    } while (0)
#define VB_LOG_ERROR(module, ...) VB_LOG_AT(VB_LOG_LEVEL_ERROR, module, __VA_ARGS__)
#define VB_LOG_WARN(module, ...) VB_LOG_AT(VB_LOG_LEVEL_WARN, module, __VA_ARGS__)
#define VB_LOG_INFO(module, ...) VB_LOG_AT(VB_LOG_LEVEL_INFO, module, __VA_ARGS__)
#define VB_LOG_DEBUG(module, ...) VB_LOG_AT(VB_LOG_LEVEL_DEBUG, module, __VA_ARGS__)

#endif
