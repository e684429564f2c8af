#include "path.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int vb_pathf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        return vb_error_set(VB_EINVAL, "file name too long: %.60s...", buf);
    return 0;
}

int vb_mkdir_p(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    int rc = vb_pathf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; !rc && *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
            rc = vb_error_set(VB_EIO, "cannot make %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (!rc && mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
        rc = vb_error_set(VB_EIO, "cannot make %s: %s", buf, strerror(errno));
    return rc;
}

int vb_path_check_component(const char *name)
{
    if (!name || !*name || !strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/'))
        return vb_error_set(VB_ECORRUPT, "a directory entry named '%s' is not a file name: refused "
                                         "(it would be written outside the target directory)",
                            name ? name : "");
    return 0;
}
