#include "keys.h"

#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int vb_keys_load(const char *path, zcert_t **out)
{
    char secret[PATH_MAX];
    snprintf(secret, sizeof secret, "%s_secret", path);
    if (access(path, R_OK) != 0 || access(secret, R_OK) != 0)
        return vb_error_set(VB_ENOTFOUND, "key pair %s (and %s_secret) not found", path, path);
    zcert_t *cert = zcert_load(path);
    if (!cert)
        return vb_error_set(VB_ECORRUPT, "key pair %s cannot be read", path);
    *out = cert;
    return 0;
}

int vb_keys_create(const char *path, zcert_t **out)
{
    if (access(path, F_OK) == 0)
        return vb_error_set(VB_EEXISTS, "key pair %s exists already", path);
    zcert_t *cert = zcert_new();
    if (!cert)
        return vb_error_set(VB_EIO, "cannot make a key pair");
    mode_t old = umask(077);
    int rc = zcert_save(cert, path);
    umask(old);
    if (rc != 0) {
        zcert_destroy(&cert);
        return vb_error_set(VB_EIO, "cannot save key pair %s: %s", path, strerror(errno));
    }
    char secret[PATH_MAX];
    snprintf(secret, sizeof secret, "%s_secret", path);
    chmod(secret, 0600);
    chmod(path, 0644);
    *out = cert;
    return 0;
}

int vb_keys_load_or_create(const char *path, zcert_t **out, bool *created)
{
    int rc = vb_keys_load(path, out);
    *created = false;
    if (rc != VB_ENOTFOUND)
        return rc;
    *created = true;
    return vb_keys_create(path, out);
}

bool vb_keys_z85_valid(const char *text)
{
    if (!text || strlen(text) != VB_KEY_Z85_LEN)
        return false;
    uint8_t raw[32];
    return zmq_z85_decode(raw, text) != NULL;
}

int vb_keys_read_token(const char *path, char **out)
{
    int rc = vb_secret_file_check(path, "token file");
    if (rc)
        return rc;
    FILE *f = fopen(path, "r");
    if (!f)
        return vb_error_set(VB_EIO, "token file %s: %s", path, strerror(errno));
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (n < 16)
        return vb_error_set(VB_EAUTH, "token file %s holds no token of at least 16 characters",
                            path);
    *out = strdup(buf);
    return *out ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
}

bool vb_keys_secret_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

int vb_keys_write_token(const char *path, bool replace)
{
    unsigned char raw[24];
    char text[sizeof raw * 2 + 2], tmp[PATH_MAX];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return vb_error_set(VB_EIO, "no random bytes: %s", strerror(errno));
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(text + 2 * i, 3, "%02x", raw[i]);
    text[sizeof raw * 2] = '\n';
    text[sizeof raw * 2 + 1] = '\0';
    if (!replace && access(path, F_OK) == 0)
        return vb_error_set(VB_EEXISTS, "token file %s exists already", path);
    if (snprintf(tmp, sizeof tmp, "%s.new", path) >= (int)sizeof tmp)
        return vb_error_set(VB_EINVAL, "token file path %s is too long", path);
    /* written beside it and renamed: a reader sees the old token or the new one, never half */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return vb_error_set(VB_EIO, "cannot write %s: %s", tmp, strerror(errno));
    size_t len = strlen(text);
    int rc = 0;
    if (fchmod(fd, 0600) < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
        rc = vb_error_set(VB_EIO, "cannot write %s: %s", tmp, strerror(errno));
    if (close(fd) < 0 && !rc)
        rc = vb_error_set(VB_EIO, "cannot write %s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) < 0)
        rc = vb_error_set(VB_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc)
        unlink(tmp);
    return rc;
}
