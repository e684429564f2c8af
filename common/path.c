#include "path.h"

#include <stdarg.h>
#include <stdio.h>

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
