#include "cli_disk.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/disk.h"
#include "log.h"
#include "repo/repo.h"

#define CAT_STEP (4u * 1024 * 1024)
#define ZERO_GRAIN 4096u /* the usual file system block: a skipped grain stays a hole */

typedef struct {
    const char *sub;
    const char *uri;
    const char *out;
    const char *snapshot;
    bool json;
    vb_disk_connect_params_t params;
} disk_args_t;

static void s_usage(FILE *f)
{
    fputs("usage: vbak disk cat URI [--out FILE] [--snapshot ID] [--modes M1:M2:...]\n"
          "                         [--vddk-libdir DIR] [--vddk-config FILE]\n"
          "       vbak disk info URI [--json] [same options]\n"
          "Reads a disk through vbak's disk access layer (the agent's code) to stdout or FILE,\n"
          "holes kept as holes in FILE. URI: file:///path, /path, nbd://HOST:PORT/EXPORT,\n"
          "nbds://HOST:PORT/EXPORT?tls-certificates=DIR, "
          "nbds://USER@[::1]:PORT/EXPORT?tls-psk-file=F,\n"
          "vddk://HOST/?file=[ds] vm/disk.vmdk&thumbprint=..&libdir=DIR&config=FILE.\n"
          "Modes (preference order): san, hotadd, file, nbdssl, nbd (default " VB_DISK_DEFAULT_MODES
          ").\n",
          f);
}

static int s_fail(const char *what)
{
    fprintf(stderr, "vbak disk: %s%s%s\n", what, vb_error_msg()[0] ? ": " : "", vb_error_msg());
    return 1;
}

static int s_parse(int argc, char **argv, disk_args_t *a)
{
    memset(a, 0, sizeof *a);
    a->params.read_only = true;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char **slot = NULL;
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0 || strcmp(s, "help") == 0) {
            s_usage(stdout);
            return 1;
        }
        if (strcmp(s, "--json") == 0) {
            a->json = true;
            continue;
        }
        if (strcmp(s, "--out") == 0 || strcmp(s, "-o") == 0)
            slot = &a->out;
        else if (strcmp(s, "--snapshot") == 0)
            slot = &a->snapshot;
        else if (strcmp(s, "--modes") == 0)
            slot = &a->params.modes;
        else if (strcmp(s, "--vddk-libdir") == 0)
            slot = &a->params.vddk_libdir;
        else if (strcmp(s, "--vddk-config") == 0)
            slot = &a->params.vddk_config;
        if (slot) {
            if (i + 1 >= argc) {
                fprintf(stderr, "vbak disk: %s needs a value\n", s);
                return 2;
            }
            *slot = argv[++i];
        } else if (s[0] == '-' && s[1] == '-') {
            fprintf(stderr, "vbak disk: unknown option %s (see vbak disk --help)\n", s);
            return 2;
        } else if (!a->sub) {
            a->sub = s;
        } else if (!a->uri) {
            a->uri = s;
        } else {
            fprintf(stderr, "vbak disk: unexpected argument '%s'\n", s);
            return 2;
        }
    }
    if (!a->sub) {
        s_usage(stderr);
        return 2;
    }
    if (strcmp(a->sub, "cat") && strcmp(a->sub, "info")) {
        fprintf(stderr, "vbak disk: unknown subcommand '%s' (cat, info)\n", a->sub);
        return 2;
    }
    if (!a->uri) {
        fprintf(stderr, "vbak disk %s: missing URI\n", a->sub);
        return 2;
    }
    if (a->out && strcmp(a->sub, "cat")) {
        fprintf(stderr, "vbak disk: --out is for cat\n");
        return 2;
    }
    if (a->json && strcmp(a->sub, "info")) {
        fprintf(stderr, "vbak disk: --json is for info\n");
        return 2;
    }
    return 0;
}

static int s_write_all(int fd, const uint8_t *p, size_t n, uint64_t off, bool positional)
{
    while (n > 0) {
        ssize_t w = positional ? pwrite(fd, p, n, (off_t)off) : write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return vb_error_set(errno == ENOSPC ? VB_ENOSPC : VB_EIO, "write at %llu: %s",
                                (unsigned long long)off, w < 0 ? strerror(errno) : "short write");
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Writes [off, off+n) of buf, leaving all-zero grains unwritten when sparse. */
static int s_emit(int fd, const uint8_t *buf, size_t n, uint64_t off, bool sparse)
{
    if (!sparse)
        return s_write_all(fd, buf, n, off, false);
    for (size_t g = 0; g < n; g += ZERO_GRAIN) {
        size_t len = n - g < ZERO_GRAIN ? n - g : ZERO_GRAIN;
        if (!vb_buf_is_zero(buf + g, len)) {
            int rc = s_write_all(fd, buf + g, len, off + g, true);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int s_cat(vb_disk_t *disk, const vb_disk_info_t *info, const vb_extent_list_t *map,
                 const char *out_path, uint64_t *read_out)
{
    int rc = 0, fd = STDOUT_FILENO;
    bool sparse = false;
    uint8_t *buf = malloc(CAT_STEP);
    uint8_t *zeros = calloc(1, CAT_STEP);
    if (!buf || !zeros) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    if (out_path) {
        fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            rc = vb_error_set(VB_EIO, "cannot create %s: %s", out_path, strerror(errno));
            goto out;
        }
        struct stat st;
        /* A regular file gets its size first, so whatever is never written stays a hole. */
        sparse =
            fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ftruncate(fd, (off_t)info->capacity) == 0;
    }
    uint64_t pos = 0;
    for (size_t i = 0; i <= map->count && rc == 0; i++) {
        uint64_t ext_off = i < map->count ? map->items[i].offset : info->capacity;
        uint64_t ext_end = i < map->count ? ext_off + map->items[i].length : info->capacity;
        for (; pos < ext_off && !sparse && rc == 0;) { /* a hole, streamed as zeros */
            size_t n = ext_off - pos < CAT_STEP ? (size_t)(ext_off - pos) : CAT_STEP;
            rc = s_write_all(fd, zeros, n, pos, false);
            pos += n;
        }
        pos = ext_off > pos ? ext_off : pos;
        while (pos < ext_end && rc == 0) {
            size_t n = ext_end - pos < CAT_STEP ? (size_t)(ext_end - pos) : CAT_STEP;
            rc = vb_disk_read(disk, buf, n, pos);
            if (rc == 0)
                rc = s_emit(fd, buf, n, pos, sparse);
            *read_out += n;
            pos += n;
        }
    }
    if (rc == 0 && out_path && fsync(fd) != 0 && errno != EINVAL)
        rc = vb_error_set(VB_EIO, "fsync of %s: %s", out_path, strerror(errno));
out:
    if (out_path && fd >= 0 && close(fd) != 0 && rc == 0)
        rc = vb_error_set(VB_EIO, "close of %s: %s", out_path, strerror(errno));
    free(buf);
    free(zeros);
    return rc;
}

static int s_info_json(vb_disk_t *disk, const vb_disk_info_t *info, const vb_extent_list_t *map,
                       bool exact, uint64_t allocated)
{
    json_t *o = json_object(), *ext = json_array(), *att = json_array();
    if (!o || !ext || !att) {
        json_decref(o);
        json_decref(ext);
        json_decref(att);
        return vb_error_set(VB_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < map->count; i++)
        json_array_append_new(ext, json_pack("[II]", (json_int_t)map->items[i].offset,
                                             (json_int_t)map->items[i].length));
    for (size_t i = 0; i < vb_disk_attempt_count(disk); i++)
        json_array_append_new(att, json_string(vb_disk_attempt(disk, i)));
    json_object_set_new(o, "capacity", json_integer((json_int_t)info->capacity));
    json_object_set_new(o, "mode", json_string(info->mode));
    json_object_set_new(o, "backend", json_string(info->backend));
    json_object_set_new(o, "snapshot", json_string(info->snapshot));
    json_object_set_new(o, "allocation_exact", json_boolean(exact));
    json_object_set_new(o, "allocated_bytes", json_integer((json_int_t)allocated));
    json_object_set_new(o, "extents", ext);
    json_object_set_new(o, "failed_attempts", att);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        return vb_error_set(VB_ENOMEM, "out of memory");
    printf("%s\n", text);
    free(text);
    return 0;
}

static void s_info_text(vb_disk_t *disk, const vb_disk_info_t *info, const vb_extent_list_t *map,
                        bool exact, uint64_t allocated, const char *uri)
{
    printf("uri:       %s\n", uri);
    printf("capacity:  %llu bytes\n", (unsigned long long)info->capacity);
    printf("mode:      %s (backend %s)\n", info->mode, info->backend);
    if (info->snapshot[0])
        printf("snapshot:  %s\n", info->snapshot);
    for (size_t i = 0; i < vb_disk_attempt_count(disk); i++)
        printf("failed:    %s\n", vb_disk_attempt(disk, i));
    printf("allocated: %llu bytes in %zu extents%s\n", (unsigned long long)allocated, map->count,
           exact ? "" : " (the server cannot tell: everything counted as allocated)");
    for (size_t i = 0; i < map->count; i++)
        printf("  %llu +%llu\n", (unsigned long long)map->items[i].offset,
               (unsigned long long)map->items[i].length);
}

int vb_cli_disk(int argc, char **argv)
{
    disk_args_t a;
    int prc = s_parse(argc, argv, &a);
    if (prc)
        return prc == 1 ? 0 : prc;
    int status = 1;
    vb_disk_conn_t *conn = NULL;
    vb_disk_t *disk = NULL;
    vb_extent_list_t map = {0};
    vb_disk_info_t info;
    bool exact = false;
    vb_error_clear();
    if (vb_disk_connect(&a.params, &conn) != 0) {
        s_fail("bad options");
        goto out;
    }
    if (vb_disk_open_uri(conn, a.uri, a.snapshot, &disk) != 0) {
        fprintf(stderr, "vbak disk: %s\n", vb_error_msg());
        goto out;
    }
    if (vb_disk_get_info(disk, &info) != 0 ||
        vb_disk_query_allocated_blocks(disk, 0, 0, &map, &exact) != 0) {
        s_fail(a.uri);
        goto out;
    }
    uint64_t allocated = 0;
    for (size_t i = 0; i < map.count; i++)
        allocated += map.items[i].length;
    if (strcmp(a.sub, "info") == 0) {
        if (a.json) {
            if (s_info_json(disk, &info, &map, exact, allocated) != 0) {
                s_fail("info");
                goto out;
            }
        } else {
            s_info_text(disk, &info, &map, exact, allocated, a.uri);
        }
        status = 0;
        goto out;
    }
    uint64_t read_bytes = 0;
    if (s_cat(disk, &info, &map, a.out, &read_bytes) != 0) {
        s_fail(a.out ? a.out : "writing to stdout");
        goto out;
    }
    if (a.out)
        printf("%s: %llu bytes, %llu read in %zu extents through %s\n", a.out,
               (unsigned long long)info.capacity, (unsigned long long)read_bytes, map.count,
               info.mode);
    status = 0;
out:
    vb_extent_list_free(&map);
    if (vb_disk_close(&disk) != 0 && status == 0)
        status = s_fail("close");
    vb_disk_disconnect(&conn);
    return status;
}
