#include "vddk/vddk_config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_LEGAL "(legal: letters A-Z a-z, digits, '_', '-', '.', space)"

void vb_vddk_config_init(vb_vddk_config_t *cfg, const char *tmp_directory)
{
    *cfg = (vb_vddk_config_t){
        .tmp_directory = tmp_directory,
        .product_name = "vbak",
        .product_version = VB_VERSION,
    };
}

static bool s_ascii_alnum(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int vb_vddk_tmp_directory(const char *state_dir, const char *agent_name, char *buf, size_t size)
{
    if (!state_dir || state_dir[0] != '/')
        return vb_error_set(VB_EINVAL, "VDDK tmpDirectory: state directory '%s' is not absolute",
                            state_dir ? state_dir : "");
    if (!agent_name || !*agent_name || !strcmp(agent_name, ".") || !strcmp(agent_name, ".."))
        return vb_error_set(VB_EINVAL, "VDDK tmpDirectory: agent name '%s' cannot be a folder name",
                            agent_name ? agent_name : "");
    for (const char *p = agent_name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!s_ascii_alnum(c) && c != '_' && c != '-' && c != '.')
            return vb_error_set(VB_EINVAL,
                                "VDDK tmpDirectory: agent name '%s' has a character (byte 0x%02x) "
                                "other than letters, digits, '_', '-', '.'",
                                agent_name, c);
    }
    size_t len = strlen(state_dir);
    while (len > 1 && state_dir[len - 1] == '/')
        len--;
    int w = snprintf(buf, size, "%.*s/vddk-tmp/%s", (int)len, state_dir, agent_name);
    if (w < 0 || (size_t)w >= size)
        return vb_error_set(VB_ENOMEM, "VDDK tmpDirectory: path for agent '%s' is too long",
                            agent_name);
    return 0;
}

int vb_vddk_check_phone_home(const char *key, const char *value)
{
    if (!value || !*value)
        return vb_error_set(VB_EINVAL, "%s: the value is empty", key);
    size_t len = strlen(value);
    if (len > VB_VDDK_PHONE_HOME_MAX)
        return vb_error_set(VB_EINVAL, "%s: %zu characters is longer than the %d accepted", key,
                            len, VB_VDDK_PHONE_HOME_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (s_ascii_alnum(c) || c == '_' || c == '-' || c == '.' || c == ' ')
            continue;
        /* Positions count from 1, as a user counts characters. */
        if (c < 0x20 || c == 0x7f)
            return vb_error_set(VB_EINVAL,
                                "%s: a control character (byte 0x%02x) at position %zu is not "
                                "allowed " S_LEGAL,
                                key, c, i + 1);
        if (c >= 0x80)
            return vb_error_set(VB_EINVAL,
                                "%s: a non-ASCII character (byte 0x%02x) at position %zu of \"%s\" "
                                "is not allowed " S_LEGAL,
                                key, c, i + 1, value);
        char what[24];
        if (c == '"' || c == '\'')
            snprintf(what, sizeof what, "a %s quote (%c)", c == '"' ? "double" : "single", c);
        else
            snprintf(what, sizeof what, "'%c'", c);
        return vb_error_set(VB_EINVAL, "%s: %s at position %zu of \"%s\" is not allowed " S_LEGAL,
                            key, what, i + 1, value);
    }
    return 0;
}

/* A path VDDK reads from a double-quoted value: absolute, no quote, no control character. */
static int s_check_path(const char *key, const char *value)
{
    if (!value || !*value)
        return vb_error_set(VB_EINVAL, "%s: is not set (a fixed folder per agent is required)",
                            key);
    if (value[0] != '/')
        return vb_error_set(VB_EINVAL, "%s: '%s' is not an absolute path", key, value);
    for (const char *p = value; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return vb_error_set(VB_EINVAL, "%s: '%s' contains a double quote", key, value);
        if (c < 0x20 || c == 0x7f)
            return vb_error_set(VB_EINVAL, "%s: a control character (byte 0x%02x) is in the path",
                                key, c);
    }
    return 0;
}

int vb_vddk_config_validate(const vb_vddk_config_t *cfg)
{
    int rc;
    if ((rc = s_check_path(VB_VDDK_KEY_TMP_DIRECTORY, cfg->tmp_directory)) != 0)
        return rc;
    if (cfg->product_name &&
        (rc = vb_vddk_check_phone_home(VB_VDDK_KEY_PRODUCT_NAME, cfg->product_name)) != 0)
        return rc;
    if (cfg->product_version &&
        (rc = vb_vddk_check_phone_home(VB_VDDK_KEY_PRODUCT_VERSION, cfg->product_version)) != 0)
        return rc;
    if (cfg->database_dir && (rc = s_check_path(VB_VDDK_KEY_DATABASE_DIR, cfg->database_dir)) != 0)
        return rc;
    if (cfg->nfc_buf_size_64k < 0)
        return vb_error_set(VB_EINVAL, "%s: %" PRId64 " is negative (0 keeps VDDK's default)",
                            VB_VDDK_KEY_NFC_BUF_SIZE, cfg->nfc_buf_size_64k);
    if (cfg->nfc_buf_count < 0)
        return vb_error_set(VB_EINVAL, "%s: %" PRId64 " is negative (0 keeps VDDK's default)",
                            VB_VDDK_KEY_NFC_BUF_COUNT, cfg->nfc_buf_count);
    /* VDDK's defaults when a key is not written: 1 × 64 KiB, 4 buffers. */
    uint64_t size = cfg->nfc_buf_size_64k ? (uint64_t)cfg->nfc_buf_size_64k : 1;
    uint64_t count = cfg->nfc_buf_count ? (uint64_t)cfg->nfc_buf_count : 4;
    uint64_t limit_units = VB_VDDK_NFC_SESSION_MAX / (64 * 1024);
    if (size > limit_units || count > limit_units || size * count > limit_units)
        return vb_error_set(VB_EINVAL,
                            "%s x %s: %" PRIu64 " x 64 KiB x %" PRIu64 " buffers is more than the "
                            "16 MiB per NFC session VDDK accepts (disk opens would fail)",
                            VB_VDDK_KEY_NFC_BUF_SIZE, VB_VDDK_KEY_NFC_BUF_COUNT, size, count);
    return 0;
}

/* key = value, in double quotes when the value has a space (validation has excluded quotes). */
static void s_put(FILE *f, const char *key, const char *value)
{
    if (strchr(value, ' '))
        fprintf(f, "%s = \"%s\"\n", key, value);
    else
        fprintf(f, "%s = %s\n", key, value);
}

static void s_render(FILE *f, const vb_vddk_config_t *cfg)
{
    fputs("# VDDK configuration written by vbak-agent; regenerated at every start.\n", f);
    s_put(f, VB_VDDK_KEY_TMP_DIRECTORY, cfg->tmp_directory);
    if (cfg->product_name)
        s_put(f, VB_VDDK_KEY_PRODUCT_NAME, cfg->product_name);
    if (cfg->product_version)
        s_put(f, VB_VDDK_KEY_PRODUCT_VERSION, cfg->product_version);
    if (cfg->database_dir)
        s_put(f, VB_VDDK_KEY_DATABASE_DIR, cfg->database_dir);
    fprintf(f, "%s = %d\n", VB_VDDK_KEY_NO_NFC_SESSION, cfg->no_nfc_session ? 1 : 0);
    if (cfg->nfc_buf_size_64k)
        fprintf(f, "%s = %" PRId64 "\n", VB_VDDK_KEY_NFC_BUF_SIZE, cfg->nfc_buf_size_64k);
    if (cfg->nfc_buf_count)
        fprintf(f, "%s = %" PRId64 "\n", VB_VDDK_KEY_NFC_BUF_COUNT, cfg->nfc_buf_count);
}

int vb_vddk_config_write(const vb_vddk_config_t *cfg, const char *path)
{
    int rc = vb_vddk_config_validate(cfg);
    if (rc)
        return rc;
    char tmp[4096];
    int w = snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    if (w < 0 || (size_t)w >= sizeof tmp)
        return vb_error_set(VB_EINVAL, "VDDK config path '%s' is too long", path);
    FILE *f = NULL;
    int fd = mkstemp(tmp);
    if (fd < 0)
        return vb_error_set(VB_EIO, "VDDK config %s: cannot create a temp file: %s", path,
                            strerror(errno));
    if (fchmod(fd, 0644) != 0) {
        rc = vb_error_set(VB_EIO, "VDDK config %s: chmod: %s", tmp, strerror(errno));
        close(fd);
        goto out;
    }
    f = fdopen(fd, "w");
    if (!f) {
        rc = vb_error_set(VB_EIO, "VDDK config %s: %s", tmp, strerror(errno));
        close(fd);
        goto out;
    }
    s_render(f, cfg);
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0) {
        rc = vb_error_set(VB_EIO, "VDDK config %s: write: %s", tmp, strerror(errno));
        goto out;
    }
    int closed = fclose(f);
    f = NULL;
    if (closed != 0) {
        rc = vb_error_set(VB_EIO, "VDDK config %s: close: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = vb_error_set(VB_EIO, "VDDK config %s: rename into place: %s", path, strerror(errno));
        goto out;
    }
    return 0;
out:
    if (f)
        fclose(f);
    unlink(tmp);
    return rc;
}

/* Reads a decimal number of up to 4 digits at *p; advances *p. -1 when there is none. */
static int s_number(const char **p)
{
    int v = 0, digits = 0;
    while (**p >= '0' && **p <= '9' && digits < 5) {
        v = v * 10 + (**p - '0');
        (*p)++;
        digits++;
    }
    return digits == 0 || digits > 4 ? -1 : v;
}

#define S_SUPPORTED "vbak supports vSphere 6.5, 6.7, 7.0 and 8.x (VDDK 7.0: N-2 to N+1)"

/* "major.minor[.N...][ U3|u2|-...]" into *major, *minor; VB_EINVAL naming `what` otherwise. */
static int s_parse_version(const char *version, const char *what, int *major_out, int *minor_out)
{
    const char *p = version ? version : "";
    int major = s_number(&p);
    int minor = -1;
    if (major >= 0 && *p == '.') {
        p++;
        minor = s_number(&p);
    }
    /* After major.minor: further ".N" groups, or an update suffix ("U3", " U2", "u1", "-..."). */
    while (minor >= 0 && *p == '.' && p[1] >= '0' && p[1] <= '9') {
        p++;
        if (s_number(&p) < 0)
            minor = -1;
    }
    if (major < 0 || minor < 0 || (*p && *p != ' ' && *p != 'U' && *p != 'u' && *p != '-'))
        return vb_error_set(VB_EINVAL, "'%s' is not a %s version (expected e.g. 7.0.3)",
                            version ? version : "", what);
    *major_out = major;
    *minor_out = minor;
    return 0;
}

int vb_vddk_check_server_version(const char *version)
{
    int major = 0, minor = 0;
    int rc = s_parse_version(version, "vSphere", &major, &minor);
    if (rc != 0)
        return rc;
    bool ok = (major == 6 && (minor == 5 || minor == 7)) || major == 7 || major == 8;
    if (!ok)
        return vb_error_set(VB_EUNSUPPORTED, "vSphere %d.%d is not supported: " S_SUPPORTED, major,
                            minor);
    return 0;
}

/* The release lines, oldest first: "N-2 ... N+1" counts in these steps (6.5 is N-2 of 7.0). From
 * 7.0 on, a major version is one line whatever its updates. */
static const struct {
    int major, minor;
} s_lines[] = {{5, 5}, {6, 0}, {6, 5}, {6, 7}, {7, 0}, {8, 0}, {9, 0}};
#define S_NLINES ((int)(sizeof s_lines / sizeof s_lines[0]))

static int s_line(int major, int minor)
{
    for (int i = 0; i < S_NLINES; i++)
        if (s_lines[i].major == major && (major >= 7 || s_lines[i].minor == minor))
            return i;
    return -1;
}

int vb_vddk_check_compat(const char *vddk_version, const char *server_version)
{
    int vmaj = 0, vmin = 0, smaj = 0, smin = 0;
    int rc = s_parse_version(vddk_version, "VDDK", &vmaj, &vmin);
    if (rc == 0)
        rc = s_parse_version(server_version, "vSphere", &smaj, &smin);
    if (rc != 0)
        return rc;
    int v = s_line(vmaj, vmin), sv = s_line(smaj, smin);
    if (v < 0)
        return vb_error_set(VB_EINVAL, "VDDK %s is of no release line vbak knows", vddk_version);
    int lo = v >= 2 ? v - 2 : 0, hi = v + 1 < S_NLINES ? v + 1 : S_NLINES - 1;
    if (sv >= lo && sv <= hi)
        return 0;
    return vb_error_set(VB_EUNSUPPORTED,
                        "VDDK %s does not support vSphere %s: VDDK %d.%d supports vSphere %d.%d "
                        "through %d.%d (N-2 to N+1); install a VDDK release for vSphere %d.%d on "
                        "this proxy",
                        vddk_version, server_version, s_lines[v].major, s_lines[v].minor,
                        s_lines[lo].major, s_lines[lo].minor, s_lines[hi].major, s_lines[hi].minor,
                        smaj, smin);
}
