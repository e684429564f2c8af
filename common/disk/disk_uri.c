#include "disk/disk_uri.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into a new string; NULL (message set) on a bad escape or a NUL. */
static char *s_decode(const char *s, size_t n, const char *what)
{
    char *out = malloc(n + 1);
    if (!out) {
        vb_error_set(VB_ENOMEM, "out of memory parsing a disk URI");
        return NULL;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n || s_hex(s[i + 1]) < 0 || s_hex(s[i + 2]) < 0) {
                free(out);
                vb_error_set(VB_EINVAL, "bad percent escape in the %s of a disk URI", what);
                return NULL;
            }
            char c = (char)(s_hex(s[i + 1]) * 16 + s_hex(s[i + 2]));
            if (c == '\0') {
                free(out);
                vb_error_set(VB_EINVAL, "%%00 in the %s of a disk URI", what);
                return NULL;
            }
            out[j++] = c;
            i += 2;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return out;
}

char *vb_disk_uri_escape(const char *text, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(text) * 3 + 1);
    if (!out) {
        vb_error_set(VB_ENOMEM, "out of memory escaping a URI");
        return NULL;
    }
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        unsigned char c = *p;
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     strchr("-._~", c) || (keep && strchr(keep, c));
        if (plain) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

char *vb_disk_uri_file(const char *path)
{
    char *esc = vb_disk_uri_escape(path, "/");
    size_t n = esc ? strlen(esc) + sizeof "file://" : 0;
    char *out = esc ? malloc(n) : NULL;
    if (out)
        snprintf(out, n, "file://%s", esc);
    else if (esc)
        vb_error_set(VB_ENOMEM, "out of memory escaping a URI");
    free(esc);
    return out;
}

void vb_disk_uri_free(vb_disk_uri_t *uri)
{
    if (!uri)
        return;
    free(uri->scheme);
    free(uri->user);
    free(uri->host);
    free(uri->path);
    for (size_t i = 0; i < uri->nparams; i++) {
        free(uri->keys[i]);
        free(uri->values[i]);
    }
    memset(uri, 0, sizeof *uri);
}

const char *vb_disk_uri_get(const vb_disk_uri_t *uri, const char *key)
{
    for (size_t i = 0; i < uri->nparams; i++)
        if (strcmp(uri->keys[i], key) == 0)
            return uri->values[i];
    return NULL;
}

void vb_disk_uri_hostport(const vb_disk_uri_t *uri, char *buf, size_t cap)
{
    const char *h = uri->host ? uri->host : "";
    if (uri->host_v6)
        snprintf(buf, cap, "[%s]:%d", h, uri->port);
    else
        snprintf(buf, cap, "%s:%d", h, uri->port);
}

static int s_parse_query(const char *q, vb_disk_uri_t *out)
{
    while (*q) {
        const char *end = strchr(q, '&');
        size_t n = end ? (size_t)(end - q) : strlen(q);
        if (n > 0) {
            const char *eq = memchr(q, '=', n);
            if (!eq)
                return vb_error_set(VB_EINVAL, "disk URI parameter '%.*s' has no '='", (int)n, q);
            if (out->nparams == VB_DISK_URI_MAX_PARAMS)
                return vb_error_set(VB_EINVAL, "disk URI has more than %d parameters",
                                    VB_DISK_URI_MAX_PARAMS);
            char *k = s_decode(q, (size_t)(eq - q), "parameters");
            char *v = k ? s_decode(eq + 1, n - (size_t)(eq - q) - 1, "parameters") : NULL;
            if (!k || !v) {
                free(k);
                return vb_error_code();
            }
            if (vb_disk_uri_get(out, k)) {
                int rc = vb_error_set(VB_EINVAL, "disk URI parameter '%s' given twice", k);
                free(k);
                free(v);
                return rc;
            }
            out->keys[out->nparams] = k;
            out->values[out->nparams++] = v;
        }
        q += n + (end ? 1 : 0);
    }
    return 0;
}

/* host[:port] or [v6][:port] in [a, b). */
static int s_parse_authority(const char *a, const char *b, vb_disk_uri_t *out)
{
    const char *at = memchr(a, '@', (size_t)(b - a));
    if (at) {
        out->user = s_decode(a, (size_t)(at - a), "user name");
        if (!out->user)
            return vb_error_code();
        a = at + 1;
    }
    const char *port = NULL;
    if (a < b && *a == '[') {
        const char *close = memchr(a, ']', (size_t)(b - a));
        if (!close)
            return vb_error_set(VB_EINVAL, "disk URI has '[' without ']' around an IPv6 address");
        out->host = strndup(a + 1, (size_t)(close - a - 1));
        out->host_v6 = true;
        if (close + 1 < b) {
            if (close[1] != ':')
                return vb_error_set(VB_EINVAL, "disk URI: unexpected text after ']'");
            port = close + 2;
        }
    } else {
        const char *colon = memchr(a, ':', (size_t)(b - a));
        out->host = strndup(a, (size_t)((colon ? colon : b) - a));
        if (colon)
            port = colon + 1;
    }
    if (!out->host)
        return vb_error_set(VB_ENOMEM, "out of memory parsing a disk URI");
    if (port) {
        char num[8];
        size_t n = (size_t)(b - port);
        if (n == 0 || n >= sizeof num)
            return vb_error_set(VB_EINVAL, "disk URI has a bad port '%.*s'", (int)n, port);
        memcpy(num, port, n);
        num[n] = '\0';
        char *end = NULL;
        errno = 0;
        unsigned long p = strtoul(num, &end, 10);
        if (errno || *end || p == 0 || p > 65535 || num[0] == '-' || num[0] == '+')
            return vb_error_set(VB_EINVAL, "disk URI has a bad port '%s'", num);
        out->port = (int)p;
    }
    return 0;
}

int vb_disk_uri_parse(const char *text, vb_disk_uri_t *out)
{
    memset(out, 0, sizeof *out);
    int rc = 0;
    if (!text || !*text)
        return vb_error_set(VB_EINVAL, "empty disk URI");
    if (strlen(text) > VB_DISK_URI_MAX)
        return vb_error_set(VB_EINVAL, "disk URI longer than %d bytes", VB_DISK_URI_MAX);
    if (text[0] == '/') {
        out->scheme = strdup("file");
        out->path = strdup(text);
        if (!out->scheme || !out->path)
            rc = vb_error_set(VB_ENOMEM, "out of memory parsing a disk URI");
        goto out;
    }
    const char *sep = strstr(text, "://");
    if (!sep) {
        rc = vb_error_set(VB_EINVAL,
                          "'%s' is not a disk URI (file:///path, nbd://, nbds://, vddk://, "
                          "vsfile:// or an absolute path)",
                          text);
        goto out;
    }
    out->scheme = strndup(text, (size_t)(sep - text));
    if (!out->scheme) {
        rc = vb_error_set(VB_ENOMEM, "out of memory parsing a disk URI");
        goto out;
    }
    if (strcmp(out->scheme, "file") && strcmp(out->scheme, "nbd") && strcmp(out->scheme, "nbds") &&
        strcmp(out->scheme, "vddk") && strcmp(out->scheme, "vsfile")) {
        rc = vb_error_set(VB_EINVAL,
                          "unknown disk URI scheme '%s' (file, nbd, nbds, vddk, vsfile)",
                          out->scheme);
        goto out;
    }
    const char *auth = sep + 3;
    const char *q = strchr(auth, '?');
    const char *rest_end = q ? q : auth + strlen(auth);
    const char *slash = memchr(auth, '/', (size_t)(rest_end - auth));
    const char *auth_end = slash ? slash : rest_end;
    if (strcmp(out->scheme, "file") == 0) {
        if (auth_end != auth && strncmp(auth, "localhost", (size_t)(auth_end - auth)) != 0) {
            rc = vb_error_set(VB_EINVAL, "file URI names a remote host: %s", text);
            goto out;
        }
        if (!slash) {
            rc = vb_error_set(VB_EINVAL, "file URI without a path: %s", text);
            goto out;
        }
        out->path = s_decode(slash, (size_t)(rest_end - slash), "path");
    } else {
        if (auth_end == auth) {
            rc = vb_error_set(VB_EINVAL, "disk URI without a host: %s", text);
            goto out;
        }
        rc = s_parse_authority(auth, auth_end, out);
        if (rc)
            goto out;
        if (!out->host[0]) {
            rc = vb_error_set(VB_EINVAL, "disk URI without a host: %s", text);
            goto out;
        }
        if (slash)
            out->path = s_decode(slash + 1, (size_t)(rest_end - slash - 1), "path");
        else
            out->path = strdup("");
    }
    if (!out->path) {
        rc = vb_error_code() ? vb_error_code() : VB_ENOMEM;
        goto out;
    }
    if (q)
        rc = s_parse_query(q + 1, out);
out:
    if (rc)
        vb_disk_uri_free(out);
    return rc;
}
