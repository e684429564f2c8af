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

/* The n-th space-separated field of line (0-based) unescaped into out. */
static int s_mountinfo_field(const char *line, int n, char *out, size_t size)
{
    const char *p = line;
    for (int i = 0; i < n && p; i++) {
        p = strchr(p, ' ');
        p = p ? p + 1 : NULL;
    }
    if (!p || !*p || *p == ' ' || *p == '\n')
        return VB_EINVAL;
    size_t o = 0;
    for (; *p && *p != ' ' && *p != '\n'; p++) {
        char c = *p;
        if (c == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            c = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
            p += 3;
        }
        if (o + 1 >= size)
            return VB_EINVAL;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

int vb_mountinfo_line(const char *line, char *mnt, size_t mnt_size, char *source,
                      size_t source_size)
{
    const char *sep = strstr(line, " - ");
    if (!sep || s_mountinfo_field(line, 4, mnt, mnt_size) != 0 ||
        s_mountinfo_field(sep + 3, 1, source, source_size) != 0)
        return vb_error_set(VB_EINVAL, "not a mountinfo line: %.60s", line);
    return 0;
}
