/* disk_uri — parses the disk URIs of disk.h (file, nbd, nbds, vddk, vsfile; a plain absolute
 * path).
 *
 * scheme://[user@]host[:port]/path[?key=value&...]; host may be a bracketed IPv6 literal. Path,
 * user and query values are percent-decoded. The parser keeps no reference to its input. */
#ifndef VB_DISK_URI_H
#define VB_DISK_URI_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define VB_DISK_URI_MAX 4096
#define VB_DISK_URI_MAX_PARAMS 16

typedef struct {
    char *scheme; /* "file", "nbd", "nbds", "vddk", "vsfile" */
    char *user;   /* NULL when absent */
    char *host;   /* without brackets; NULL for file */
    bool host_v6; /* host was a bracketed IPv6 literal */
    int port;     /* 0 when absent */
    char *path;   /* file: the path; nbd: the export name (without the leading '/') */
    size_t nparams;
    char *keys[VB_DISK_URI_MAX_PARAMS];
    char *values[VB_DISK_URI_MAX_PARAMS];
} vb_disk_uri_t;

/* Parses text into *out (caller owns; vb_disk_uri_free). VB_EINVAL with a message naming what
 * was wrong. Unknown keys are the backend's business. */
int vb_disk_uri_parse(const char *text, vb_disk_uri_t *out) VB_WUR;
void vb_disk_uri_free(vb_disk_uri_t *uri);

/* The value of key, or NULL (borrowed). */
const char *vb_disk_uri_get(const vb_disk_uri_t *uri, const char *key);

/* The host as a connection names it: "[::1]:10809" style into buf. */
void vb_disk_uri_hostport(const vb_disk_uri_t *uri, char *buf, size_t cap);

/* Percent-encodes text for a URI: every byte but RFC 3986's unreserved characters (letters,
 * digits, "-._~") and those in `keep` (NULL: none; e.g. "/" for a path) becomes %XX. Every name
 * or path that goes into a URI goes through here, so that vb_disk_uri_parse, which decodes
 * exactly once, gives it back byte for byte ('%', '#', '?', spaces, non-ASCII, "%2f").
 * Caller frees; NULL (message set) when out of memory. */
char *vb_disk_uri_escape(const char *text, const char *keep);

/* "file://" + path escaped (with '/' kept): the file route of an absolute path. Caller frees;
 * NULL (message set) when out of memory. */
char *vb_disk_uri_file(const char *path);

#endif
