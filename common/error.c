#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define VB_ERROR_MSG_MAX 1024

static _Thread_local char s_msg[VB_ERROR_MSG_MAX];
static _Thread_local int s_code;

int vb_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s_msg, sizeof s_msg, fmt, ap);
    va_end(ap);
    s_code = code;
    return code;
}

int vb_error_prefix(int code, const char *fmt, ...)
{
    char prefix[VB_ERROR_MSG_MAX];
    char old[VB_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, s_msg, sizeof old);
    size_t n = strnlen(prefix, sizeof prefix - 1);
    memcpy(s_msg, prefix, n);
    if (old[0] && n + 2 < sizeof s_msg) {
        s_msg[n++] = ':';
        s_msg[n++] = ' ';
        size_t rest = strnlen(old, sizeof old);
        if (rest > sizeof s_msg - 1 - n)
            rest = sizeof s_msg - 1 - n;
        memcpy(s_msg + n, old, rest);
        n += rest;
    }
    s_msg[n] = '\0';
    s_code = code;
    return code;
}

const char *vb_error_msg(void)
{
    return s_msg;
}

int vb_error_code(void)
{
    return s_code;
}

void vb_error_clear(void)
{
    s_msg[0] = '\0';
    s_code = 0;
}

const char *vb_strerror(int code)
{
    switch (code) {
    case VB_OK: return "ok";
    case VB_EINVAL: return "invalid argument";
    case VB_ENOMEM: return "out of memory or over a limit";
    case VB_EIO: return "I/O error";
    case VB_ENOTFOUND: return "not found";
    case VB_EEXISTS: return "already exists";
    case VB_EPROTO: return "protocol error";
    case VB_ETIMEOUT: return "timed out";
    case VB_EPOLICY: return "refused by policy";
    case VB_ECORRUPT: return "corrupt data";
    case VB_EAUTH: return "authentication failed";
    case VB_EDB: return "catalog error";
    case VB_EBUSY: return "busy";
    case VB_ENOSPC: return "no space left";
    case VB_EUNSUPPORTED: return "unsupported";
    default: return "unknown error";
    }
}
