/* log — levelled logging in the form `module: event key=value ...`.
 *
 * Lines go to stderr (foreground) or syslog (vb_log_use_syslog). The level check happens in the
 * macro, before any argument is evaluated. The level and the sink are process-wide settings made
 * once at start-up by main(); they are not changed while threads run. */
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
