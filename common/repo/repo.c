#include "repo/repo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <zstd.h>

#include "config.h"
#include "fileio.h"
#include "log.h"
#include "repo/index.h"

#define S_HDR_LEN 64
#define S_MAGIC "VBCHUNK"
#define S_CHUNK_VERSION 1
#define S_FLAG_COMPRESSED 1u
#define S_FLAG_ENCRYPTED 2u
#define S_NONCE_LEN 12
#define S_TAG_LEN 16
#define S_ID_LEN 16
#define S_CHECK_LEN 16
#define S_SAMPLE 4096
#define S_KEYFILE_MAX 4096
#define S_ALIGN 4096 /* O_DIRECT alignment of buffer, offset and length */

struct vb_repo {
    char *path;
    int dirfd;
    int chunks_fd;
    uint32_t chunk_size;
    int level;
    bool encrypted;
    bool have_key;
    uint8_t repo_id[S_ID_LEN];
    uint8_t mac_key[32];
    uint8_t enc_key[32];
    EVP_MD *sha256;
    EVP_MAC *hmac;
    EVP_CIPHER *aes;
    atomic_uint_fast64_t tmp_seq;
    atomic_bool direct; /* the file system takes O_DIRECT writes (cleared on EINVAL) */
    long pid; /* in temp names, so writers in different processes never collide */
};

struct vb_repo_worker {
    vb_repo_t *repo;
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    EVP_MD_CTX *md;
    EVP_MAC_CTX *mac;
    EVP_CIPHER_CTX *cipher;
    uint8_t *io; /* header + largest stored payload */
    size_t io_cap;
    uint8_t sample[S_SAMPLE + 512];
};

/* ---------- small helpers ---------- */

static void s_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void s_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void s_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t s_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t s_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t s_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* FNV-1a 64 over the header fields: catches a damaged header before any size in it is used. */
static uint64_t s_hdr_checksum(const uint8_t *hdr)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 56; i++) {
        h ^= hdr[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void s_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int s_unhex(const char *hex, uint8_t *out, size_t n)
{
    if (strlen(hex) != 2 * n)
        return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = hex[i];
        int v = (c >= '0' && c <= '9') ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    return 0;
}

bool vb_buf_is_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (len == 0)
        return true;
    /* A zero first byte and every byte equal to its successor: memcmp runs vectorised. */
    return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

bool vb_digest_is_zero(const vb_digest_t *d)
{
    return vb_buf_is_zero(d->b, VB_DIGEST_LEN);
}

void vb_digest_hex(const vb_digest_t *d, char out[VB_DIGEST_HEX_LEN + 1])
{
    s_hex(d->b, VB_DIGEST_LEN, out);
}

int vb_digest_parse(const char *hex, vb_digest_t *out)
{
    if (!hex || s_unhex(hex, out->b, VB_DIGEST_LEN) != 0)
        return vb_error_set(VB_EINVAL, "'%s' is not a 64-digit hex digest", hex ? hex : "");
    return 0;
}

static int s_errno_code(int err)
{
    return (err == ENOSPC || err == EDQUOT || err == EFBIG) ? VB_ENOSPC : VB_EIO;
}

static int s_fsync_path(int dirfd, const char *rel)
{
    int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

/* ---------- keys ---------- */

static int s_read_key_file(const char *key_file, uint8_t *buf, size_t *len_out)
{
    int fd = open(key_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vb_error_set(VB_EINVAL, "key file %s: %s", key_file, strerror(errno));
    size_t len = 0;
    while (len < S_KEYFILE_MAX) {
        ssize_t n = read(fd, buf + len, S_KEYFILE_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            return vb_error_set(VB_EINVAL, "key file %s: %s", key_file, strerror(err));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (len < VB_REPO_KEY_MIN)
        return vb_error_set(VB_EINVAL,
                            "key file %s holds %zu bytes; at least %d are needed (for example "
                            "`head -c 32 /dev/urandom > %s`)",
                            key_file, len, VB_REPO_KEY_MIN, key_file);
    *len_out = len;
    return 0;
}

static int s_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, const char *info,
                  uint8_t *out, size_t out_len)
{
    int rc = VB_EIO;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (!kctx) {
        rc = vb_error_set(VB_EIO, "HKDF is not available in this OpenSSL");
        goto out;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, S_ID_LEN),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
        OSSL_PARAM_construct_end()};
    if (EVP_KDF_derive(kctx, out, out_len, params) != 1) {
        rc = vb_error_set(VB_EIO, "HKDF derivation failed");
        goto out;
    }
    rc = 0;
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

/* Derives the MAC key, the encryption key and the key check value from a key file. */
static int s_derive(const char *key_file, const uint8_t *repo_id, uint8_t *mac_key,
                    uint8_t *enc_key, uint8_t *check)
{
    uint8_t *ikm = malloc(S_KEYFILE_MAX);
    if (!ikm)
        return vb_error_set(VB_ENOMEM, "out of memory");
    size_t len = 0;
    int rc = s_read_key_file(key_file, ikm, &len);
    if (rc == 0)
        rc = s_hkdf(ikm, len, repo_id, "vbak repository v1 mac key", mac_key, 32);
    if (rc == 0)
        rc = s_hkdf(ikm, len, repo_id, "vbak repository v1 encryption key", enc_key, 32);
    if (rc == 0)
        rc = s_hkdf(ikm, len, repo_id, "vbak repository v1 key check", check, S_CHECK_LEN);
    OPENSSL_cleanse(ikm, S_KEYFILE_MAX);
    free(ikm);
    return rc;
}

/* ---------- config ---------- */

typedef struct {
    int64_t format_version;
    char *repo_id;
    int64_t chunk_size;
    char *compression;
    char *encryption;
    char *key_check;
} s_conf_t;

static const vb_conf_key_t s_conf_table[] = {
    {"format_version", VB_CONF_INT, offsetof(s_conf_t, format_version), NULL, 0, INT32_MAX, true,
     "repository format version"},
    {"repo_id", VB_CONF_STR, offsetof(s_conf_t, repo_id), NULL, 0, 0, true, "repository id"},
    {"chunk_size", VB_CONF_INT, offsetof(s_conf_t, chunk_size), NULL, VB_REPO_CHUNK_MIN,
     VB_REPO_CHUNK_MAX, true, "chunk size in bytes"},
    {"compression", VB_CONF_STR, offsetof(s_conf_t, compression), "none", 0, 0, false,
     "zstd:N or none"},
    {"encryption", VB_CONF_STR, offsetof(s_conf_t, encryption), "none", 0, 0, false,
     "aes-256-gcm or none"},
    {"key_check", VB_CONF_STR, offsetof(s_conf_t, key_check), NULL, 0, 0, false,
     "key check value"},
    VB_CONF_END};

int vb_repo_parse_compression(const char *text, int *level_out)
{
    if (!text)
        return vb_error_set(VB_EINVAL, "compression: missing value");
    if (strcmp(text, "none") == 0) {
        *level_out = 0;
        return 0;
    }
    if (strcmp(text, "zstd") == 0) {
        *level_out = 3;
        return 0;
    }
    if (strncmp(text, "zstd:", 5) == 0) {
        int64_t v = 0;
        int rc = vb_parse_i64(text + 5, 1, 19, "compression level", &v);
        if (rc)
            return rc;
        *level_out = (int)v;
        return 0;
    }
    return vb_error_set(VB_EINVAL, "compression '%s': expected zstd:N (1..19) or none", text);
}

static bool s_is_pow2(uint32_t v)
{
    return v && (v & (v - 1)) == 0;
}

static int s_write_config(int dirfd, const char *path, const s_conf_t *c)
{
    int rc = VB_EIO;
    FILE *f = NULL;
    int fd =
        openat(dirfd, "config.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, VB_REPO_FILE_MODE);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        rc = vb_error_set(s_errno_code(errno), "repository %s: cannot write config: %s", path,
                          strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    char num[32];
    fprintf(f, "# vbak repository configuration. Do not edit.\n");
    snprintf(num, sizeof num, "%" PRId64, c->format_version);
    vb_config_write(f, "format_version", num);
    vb_config_write(f, "repo_id", c->repo_id);
    snprintf(num, sizeof num, "%" PRId64, c->chunk_size);
    vb_config_write(f, "chunk_size", num);
    vb_config_write(f, "compression", c->compression);
    vb_config_write(f, "encryption", c->encryption);
    if (c->key_check)
        vb_config_write(f, "key_check", c->key_check);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = vb_error_set(s_errno_code(errno), "repository %s: cannot write config: %s", path,
                          strerror(errno));
        goto out;
    }
    if (fclose(f) != 0) {
        f = NULL;
        rc = vb_error_set(s_errno_code(errno), "repository %s: cannot write config: %s", path,
                          strerror(errno));
        goto out;
    }
    f = NULL;
    if (renameat(dirfd, "config.tmp", dirfd, "config") != 0 || fsync(dirfd) != 0) {
        rc = vb_error_set(VB_EIO, "repository %s: cannot install config: %s", path,
                          strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (f)
        fclose(f);
    if (rc)
        unlinkat(dirfd, "config.tmp", 0);
    return rc;
}

static int s_dir_is_empty(const char *path, bool *empty)
{
    DIR *d = opendir(path);
    if (!d)
        return vb_error_set(VB_EIO, "repository %s: %s", path, strerror(errno));
    *empty = true;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            *empty = false;
            break;
        }
    closedir(d);
    return 0;
}

static int s_make_layout(int dirfd, const char *path)
{
    if (mkdirat(dirfd, "chunks", VB_REPO_DIR_MODE) != 0 ||
        mkdirat(dirfd, "indexes", VB_REPO_DIR_MODE) != 0)
        return vb_error_set(s_errno_code(errno), "repository %s: mkdir: %s", path,
                            strerror(errno));
    int cfd = openat(dirfd, "chunks", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cfd < 0)
        return vb_error_set(VB_EIO, "repository %s: %s", path, strerror(errno));
    int rc = 0;
    for (int i = 0; i < 256 && rc == 0; i++) {
        char name[3];
        s_hex((const uint8_t[]){(uint8_t)i}, 1, name);
        if (mkdirat(cfd, name, VB_REPO_DIR_MODE) != 0 || s_fsync_path(cfd, name) != 0)
            rc = vb_error_set(s_errno_code(errno), "repository %s: chunks/%s: %s", path, name,
                              strerror(errno));
    }
    if (rc == 0 && (fsync(cfd) != 0 || s_fsync_path(dirfd, "indexes") != 0 || fsync(dirfd) != 0))
        rc = vb_error_set(s_errno_code(errno), "repository %s: fsync: %s", path, strerror(errno));
    close(cfd);
    return rc;
}

int vb_repo_init(const char *path, const vb_repo_params_t *params)
{
    int rc = 0;
    int dirfd = -1;
    s_conf_t c = {0};
    char id_hex[2 * S_ID_LEN + 1], check_hex[2 * S_CHECK_LEN + 1], comp[32];
    uint8_t id[S_ID_LEN], mac_key[32], enc_key[32], check[S_CHECK_LEN];
    uint32_t cs = params->chunk_size ? params->chunk_size : VB_REPO_CHUNK_DEFAULT;

    if (!s_is_pow2(cs) || cs < VB_REPO_CHUNK_MIN || cs > VB_REPO_CHUNK_MAX)
        return vb_error_set(VB_EINVAL,
                            "chunk size %" PRIu32 ": must be a power of two from 64K to 4M", cs);
    if (params->compression_level < 0 || params->compression_level > 19)
        return vb_error_set(VB_EINVAL, "compression level %d: must be 0 (none) or 1..19",
                            params->compression_level);
    if (RAND_bytes(id, sizeof id) != 1)
        return vb_error_set(VB_EIO, "no random bytes for the repository id");
    if (params->key_file && (rc = s_derive(params->key_file, id, mac_key, enc_key, check)) != 0)
        goto out;

    if (mkdir(path, VB_REPO_DIR_MODE) != 0 && errno != EEXIST) {
        rc = vb_error_set(s_errno_code(errno), "repository %s: cannot create: %s", path,
                          strerror(errno));
        goto out;
    }
    bool empty = false;
    if ((rc = s_dir_is_empty(path, &empty)) != 0)
        goto out;
    if (!empty) {
        char cfg[4096];
        snprintf(cfg, sizeof cfg, "%s/config", path);
        bool is_repo = access(cfg, F_OK) == 0;
        rc = vb_error_set(VB_EEXISTS, "repository %s: %s", path,
                          is_repo ? "a repository exists there already"
                                  : "directory is not empty");
        goto out;
    }
    dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        rc = vb_error_set(VB_EIO, "repository %s: %s", path, strerror(errno));
        goto out;
    }
    if ((rc = s_make_layout(dirfd, path)) != 0)
        goto out;

    s_hex(id, sizeof id, id_hex);
    c.format_version = VB_REPO_FORMAT_VERSION;
    c.repo_id = id_hex;
    c.chunk_size = cs;
    if (params->compression_level)
        snprintf(comp, sizeof comp, "zstd:%d", params->compression_level);
    else
        snprintf(comp, sizeof comp, "none");
    c.compression = comp;
    c.encryption = params->key_file ? "aes-256-gcm" : "none";
    if (params->key_file) {
        s_hex(check, sizeof check, check_hex);
        c.key_check = check_hex;
    }
    rc = s_write_config(dirfd, path, &c);
out:
    OPENSSL_cleanse(mac_key, sizeof mac_key);
    OPENSSL_cleanse(enc_key, sizeof enc_key);
    if (dirfd >= 0)
        close(dirfd);
    return rc;
}

/* ---------- open ---------- */

static int s_load_config(vb_repo_t *self, const char *key_file)
{
    s_conf_t c = {0};
    int rc = 0;
    char cfg[4096];
    uint8_t check[S_CHECK_LEN], stored_check[S_CHECK_LEN];
    snprintf(cfg, sizeof cfg, "%s/config", self->path);
    if (access(cfg, F_OK) != 0) {
        rc = vb_error_set(VB_ENOTFOUND, "%s is not a vbak repository (no config file)",
                          self->path);
        goto out;
    }
    if ((rc = vb_config_defaults(s_conf_table, &c)) != 0)
        goto out;
    rc = vb_config_load_file(s_conf_table, &c, cfg);
    /* The version decides how the rest reads: check it first, even when a later key failed. */
    if (c.format_version != 0 && c.format_version != VB_REPO_FORMAT_VERSION) {
        rc = vb_error_set(VB_EUNSUPPORTED,
                          "repository %s has format version %" PRId64
                          "; this vbak reads version %d only (upgrade vbak)",
                          self->path, c.format_version, VB_REPO_FORMAT_VERSION);
        goto out;
    }
    if (rc == 0)
        rc = vb_config_check_required(s_conf_table, &c);
    if (rc) {
        rc = vb_error_prefix(VB_ECORRUPT, "repository %s: bad config", self->path);
        goto out;
    }
    self->chunk_size = (uint32_t)c.chunk_size;
    if (!s_is_pow2(self->chunk_size) || s_unhex(c.repo_id, self->repo_id, S_ID_LEN) != 0) {
        rc = vb_error_set(VB_ECORRUPT, "repository %s: bad chunk_size or repo_id in config",
                          self->path);
        goto out;
    }
    if ((rc = vb_repo_parse_compression(c.compression, &self->level)) != 0) {
        rc = vb_error_prefix(VB_ECORRUPT, "repository %s: config", self->path);
        goto out;
    }
    if (strcmp(c.encryption, "none") == 0) {
        self->encrypted = false;
    } else if (strcmp(c.encryption, "aes-256-gcm") == 0) {
        self->encrypted = true;
        if (!c.key_check || s_unhex(c.key_check, stored_check, S_CHECK_LEN) != 0) {
            rc = vb_error_set(VB_ECORRUPT, "repository %s: config lacks a valid key_check",
                              self->path);
            goto out;
        }
    } else {
        rc = vb_error_set(VB_EUNSUPPORTED, "repository %s: unknown encryption '%s'", self->path,
                          c.encryption);
        goto out;
    }
    if (self->encrypted && key_file) {
        if ((rc = s_derive(key_file, self->repo_id, self->mac_key, self->enc_key, check)) != 0)
            goto out;
        if (CRYPTO_memcmp(check, stored_check, S_CHECK_LEN) != 0) {
            rc = vb_error_set(VB_EAUTH,
                              "repository %s: key file %s is not this repository's key (key "
                              "check failed)",
                              self->path, key_file);
            goto out;
        }
        self->have_key = true;
    } else if (!self->encrypted && key_file) {
        rc = vb_error_set(VB_EINVAL, "repository %s is not encrypted; do not give a key file",
                          self->path);
        goto out;
    }
out:
    vb_config_free(s_conf_table, &c);
    return rc;
}

vb_repo_t *vb_repo_open(const char *path, const char *key_file)
{
    vb_repo_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    self->dirfd = self->chunks_fd = -1;
    if (!(self->path = strdup(path))) {
        vb_error_set(VB_ENOMEM, "out of memory");
        goto fail;
    }
    if (s_load_config(self, key_file) != 0)
        goto fail;
    self->pid = (long)getpid();
    atomic_store(&self->direct, true);
    self->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    self->chunks_fd = self->dirfd >= 0 ? openat(self->dirfd, "chunks",
                                                O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                                       : -1;
    if (self->chunks_fd < 0) {
        vb_error_set(VB_ECORRUPT, "repository %s: cannot open chunks/: %s", path,
                     strerror(errno));
        goto fail;
    }
    self->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    self->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    self->aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    if (!self->sha256 || !self->hmac || !self->aes) {
        vb_error_set(VB_EIO, "OpenSSL lacks SHA256, HMAC or AES-256-GCM");
        goto fail;
    }
    return self;
fail:
    vb_repo_destroy(&self);
    return NULL;
}

void vb_repo_destroy(vb_repo_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_repo_t *self = *self_p;
    if (self->chunks_fd >= 0)
        close(self->chunks_fd);
    if (self->dirfd >= 0)
        close(self->dirfd);
    EVP_MD_free(self->sha256);
    EVP_MAC_free(self->hmac);
    EVP_CIPHER_free(self->aes);
    OPENSSL_cleanse(self->mac_key, sizeof self->mac_key);
    OPENSSL_cleanse(self->enc_key, sizeof self->enc_key);
    free(self->path);
    free(self);
    *self_p = NULL;
}

const char *vb_repo_path(const vb_repo_t *self)
{
    return self->path;
}
uint32_t vb_repo_chunk_size(const vb_repo_t *self)
{
    return self->chunk_size;
}
int vb_repo_compression_level(const vb_repo_t *self)
{
    return self->level;
}
bool vb_repo_encrypted(const vb_repo_t *self)
{
    return self->encrypted;
}

int vb_repo_sync(vb_repo_t *self)
{
    if (syncfs(self->dirfd) != 0)
        return vb_error_set(s_errno_code(errno), "repository %s: sync failed: %s", self->path,
                            strerror(errno));
    return 0;
}

/* ---------- workers ---------- */

vb_repo_worker_t *vb_repo_worker_new(vb_repo_t *repo)
{
    vb_repo_worker_t *w = calloc(1, sizeof *w);
    if (!w) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    w->repo = repo;
    w->io_cap = (S_HDR_LEN + ZSTD_compressBound(repo->chunk_size) + 64 + S_ALIGN - 1) &
                ~(size_t)(S_ALIGN - 1);
    void *io = NULL;
    w->io = posix_memalign(&io, S_ALIGN, w->io_cap) == 0 ? io : NULL; /* O_DIRECT needs it */
    w->cctx = ZSTD_createCCtx();
    w->dctx = ZSTD_createDCtx();
    w->md = EVP_MD_CTX_new();
    w->cipher = EVP_CIPHER_CTX_new();
    if (!w->io || !w->cctx || !w->dctx || !w->md || !w->cipher) {
        vb_error_set(VB_ENOMEM, "out of memory for a repository worker");
        goto fail;
    }
    if (repo->have_key) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
            OSSL_PARAM_construct_end()};
        w->mac = EVP_MAC_CTX_new(repo->hmac);
        if (!w->mac || EVP_MAC_init(w->mac, repo->mac_key, sizeof repo->mac_key, params) != 1) {
            vb_error_set(VB_EIO, "HMAC-SHA-256 setup failed");
            goto fail;
        }
    }
    return w;
fail:
    vb_repo_worker_destroy(&w);
    return NULL;
}

void vb_repo_worker_destroy(vb_repo_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_repo_worker_t *w = *self_p;
    free(w->io);
    ZSTD_freeCCtx(w->cctx);
    ZSTD_freeDCtx(w->dctx);
    EVP_MD_CTX_free(w->md);
    EVP_MAC_CTX_free(w->mac);
    EVP_CIPHER_CTX_free(w->cipher);
    free(w);
    *self_p = NULL;
}

int vb_repo_digest(vb_repo_worker_t *w, const void *data, size_t len, vb_digest_t *out)
{
    if (w->repo->encrypted) {
        size_t outl = 0;
        if (!w->mac)
            return vb_error_set(VB_EAUTH, "repository %s is encrypted: a key file is needed",
                                w->repo->path);
        /* NULL key: re-initialise with the key set when the worker was created. */
        if (EVP_MAC_init(w->mac, NULL, 0, NULL) != 1 || EVP_MAC_update(w->mac, data, len) != 1 ||
            EVP_MAC_final(w->mac, out->b, &outl, sizeof out->b) != 1 || outl != VB_DIGEST_LEN)
            return vb_error_set(VB_EIO, "HMAC-SHA-256 failed");
        return 0;
    }
    unsigned int outl = 0;
    if (EVP_DigestInit_ex2(w->md, w->repo->sha256, NULL) != 1 ||
        EVP_DigestUpdate(w->md, data, len) != 1 || EVP_DigestFinal_ex(w->md, out->b, &outl) != 1)
        return vb_error_set(VB_EIO, "SHA-256 failed");
    return 0;
}

static void s_rel_path(const vb_digest_t *d, char rel[3 + VB_DIGEST_HEX_LEN + 1])
{
    char hex[VB_DIGEST_HEX_LEN + 1];
    vb_digest_hex(d, hex);
    rel[0] = hex[0];
    rel[1] = hex[1];
    rel[2] = '/';
    memcpy(rel + 3, hex, VB_DIGEST_HEX_LEN + 1);
}

int vb_repo_chunk_path(const vb_repo_t *self, const vb_digest_t *digest, char *out, size_t outsz)
{
    char rel[3 + VB_DIGEST_HEX_LEN + 1];
    s_rel_path(digest, rel);
    int n = snprintf(out, outsz, "%s/chunks/%s", self->path, rel);
    if (n < 0 || (size_t)n >= outsz)
        return vb_error_set(VB_EINVAL, "chunk path too long");
    return 0;
}

int vb_repo_chunk_quarantine(vb_repo_t *self, const vb_digest_t *digest)
{
    char rel[3 + VB_DIGEST_HEX_LEN + 1], dst[sizeof VB_REPO_QUARANTINE_DIR + VB_DIGEST_HEX_LEN + 2];
    s_rel_path(digest, rel);
    snprintf(dst, sizeof dst, "%s/%s", VB_REPO_QUARANTINE_DIR, rel + 3);
    if (mkdirat(self->dirfd, VB_REPO_QUARANTINE_DIR, VB_REPO_DIR_MODE) != 0 && errno != EEXIST)
        return vb_error_set(s_errno_code(errno), "repository %s: %s/: %s", self->path,
                            VB_REPO_QUARANTINE_DIR, strerror(errno));
    if (renameat(self->chunks_fd, rel, self->dirfd, dst) != 0)
        return vb_error_set(errno == ENOENT ? VB_ENOTFOUND : s_errno_code(errno),
                            "repository %s: quarantining chunk %s: %s", self->path, rel + 3,
                            strerror(errno));
    /* The mtime says when it was quarantined: GC removes it VB_GC_QUARANTINE_DAYS later. */
    (void)utimensat(self->dirfd, dst, NULL, 0);
    (void)fsync(self->dirfd);
    VB_LOG_INFO("repo", "chunk_quarantined repo=%s chunk=%s", self->path, rel + 3);
    return 0;
}

bool vb_repo_chunk_quarantined(vb_repo_t *self, const vb_digest_t *digest)
{
    char rel[3 + VB_DIGEST_HEX_LEN + 1], dst[sizeof VB_REPO_QUARANTINE_DIR + VB_DIGEST_HEX_LEN + 2];
    s_rel_path(digest, rel);
    snprintf(dst, sizeof dst, "%s/%s", VB_REPO_QUARANTINE_DIR, rel + 3);
    return faccessat(self->dirfd, dst, F_OK, 0) == 0;
}

bool vb_repo_chunk_exists(vb_repo_t *self, const vb_digest_t *digest)
{
    char rel[3 + VB_DIGEST_HEX_LEN + 1];
    s_rel_path(digest, rel);
    return faccessat(self->chunks_fd, rel, F_OK, 0) == 0;
}

/* Compressing random data costs time for nothing: compress a few small samples spread over the
 * chunk first and compress the whole chunk only when one of them shrinks. */
static bool s_worth_compressing(vb_repo_worker_t *w, const uint8_t *data, size_t len)
{
    if (len <= 4 * S_SAMPLE)
        return true;
    for (int i = 0; i < 4; i++) {
        size_t off = (len / 4) * (size_t)i + (len / 8) - S_SAMPLE / 2;
        size_t n = ZSTD_compressCCtx(w->cctx, w->sample, sizeof w->sample, data + off, S_SAMPLE,
                                     1);
        if (!ZSTD_isError(n) && n < S_SAMPLE - S_SAMPLE / 8)
            return true;
    }
    return false;
}

static int s_encrypt(vb_repo_worker_t *w, const vb_digest_t *digest, uint8_t *hdr,
                     const uint8_t *in, size_t len, uint8_t *out)
{
    int outl = 0, fin = 0;
    EVP_CIPHER_CTX *c = w->cipher;
    if (EVP_EncryptInit_ex2(c, w->repo->aes, w->repo->enc_key, hdr + 20, NULL) != 1 ||
        EVP_EncryptUpdate(c, NULL, &outl, hdr, 32) != 1 ||
        EVP_EncryptUpdate(c, NULL, &outl, digest->b, VB_DIGEST_LEN) != 1 ||
        EVP_EncryptUpdate(c, out, &outl, in, (int)len) != 1 ||
        EVP_EncryptFinal_ex(c, out + outl, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, S_TAG_LEN, hdr + 32) != 1)
        return vb_error_set(VB_EIO, "AES-256-GCM encryption failed");
    return 0;
}

/* Chunk files are written with O_DIRECT where the file system allows it: backup data is written
 * once and rarely read, so copying it through the page cache (and throttling on its writeback)
 * costs CPU and wall time for nothing. The final syncfs still makes the files durable. */
static int s_create_chunk_file(vb_repo_t *repo, const char *tmp)
{
    int base = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    if (atomic_load(&repo->direct)) {
        int fd = openat(repo->chunks_fd, tmp, base | O_DIRECT, VB_REPO_FILE_MODE);
        if (fd >= 0 || errno != EINVAL)
            return fd;
        atomic_store(&repo->direct, false); /* e.g. a file system without O_DIRECT */
    }
    return openat(repo->chunks_fd, tmp, base, VB_REPO_FILE_MODE);
}

/* Writes the aligned part directly and the short tail through the page cache. */
static int s_write_chunk_file(vb_repo_t *repo, int fd, const uint8_t *img, size_t total)
{
    int fl = fcntl(fd, F_GETFL);
    size_t aligned = (fl >= 0 && (fl & O_DIRECT)) ? total & ~(size_t)(S_ALIGN - 1) : 0;
    if (aligned && vb_pwrite_full(fd, img, aligned, 0) != 0) {
        if (errno != EINVAL)
            return -1;
        atomic_store(&repo->direct, false); /* alignment this device refuses: go buffered */
        aligned = 0;
    }
    if (fl >= 0 && (fl & O_DIRECT) && fcntl(fd, F_SETFL, fl & ~O_DIRECT) != 0)
        return -1;
    if (total > aligned && vb_pwrite_full(fd, img + aligned, total - aligned, aligned) != 0)
        return -1;
    /* Start writeback of the buffered part now (no wait), so the final syncfs has less to do. */
    (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    return 0;
}

static bool s_existing_ok(vb_repo_t *repo, const char *rel, size_t len);

int vb_repo_chunk_put(vb_repo_worker_t *w, const vb_digest_t *digest, const void *data, size_t len,
                      uint64_t *stored_bytes_out)
{
    vb_repo_t *repo = w->repo;
    char rel[3 + VB_DIGEST_HEX_LEN + 1], tmp[128];
    int fd = -1, rc = 0;
    bool tmp_made = false;

    if (stored_bytes_out)
        *stored_bytes_out = 0;
    if (len == 0 || len > repo->chunk_size || vb_buf_is_zero(data, len))
        return vb_error_set(VB_EINVAL, "chunk of %zu bytes is empty, too large or all zero", len);
    if (repo->encrypted && !repo->have_key)
        return vb_error_set(VB_EAUTH, "repository %s is encrypted: a key file is needed",
                            repo->path);
    s_rel_path(digest, rel);
    /* Exists already: refresh the mtime so that a concurrent GC sees it as recently used, and
     * check its header and size, so that a file a crash left incomplete (renamed before its data
     * reached the disk) is replaced rather than trusted. */
    if (utimensat(repo->chunks_fd, rel, NULL, 0) == 0) {
        if (s_existing_ok(repo, rel, len))
            return 0;
        VB_LOG_WARN("repo", "replacing damaged chunk repo=%s chunk=%s", repo->path, rel + 3);
    } else if (errno != ENOENT) {
        return vb_error_set(VB_EIO, "repository %s: chunk %s: %s", repo->path, rel,
                            strerror(errno));
    }

    uint8_t *hdr = w->io, *payload = w->io + S_HDR_LEN;
    const uint8_t *src = data;
    size_t stored = len;
    uint16_t flags = 0;
    if (repo->level > 0 && s_worth_compressing(w, data, len)) {
        size_t n = ZSTD_compressCCtx(w->cctx, payload, w->io_cap - S_HDR_LEN, data, len,
                                     repo->level);
        if (!ZSTD_isError(n) && n <= len - len / 16) {
            flags |= S_FLAG_COMPRESSED;
            src = payload;
            stored = n;
        }
    }
    memset(hdr, 0, S_HDR_LEN);
    memcpy(hdr, S_MAGIC, sizeof S_MAGIC);
    s_put16(hdr + 8, S_CHUNK_VERSION);
    s_put32(hdr + 12, (uint32_t)len);
    s_put32(hdr + 16, (uint32_t)stored);
    if (repo->encrypted) {
        flags |= S_FLAG_ENCRYPTED;
        s_put16(hdr + 10, flags);
        if (RAND_bytes(hdr + 20, S_NONCE_LEN) != 1)
            return vb_error_set(VB_EIO, "no random bytes for a nonce");
        if ((rc = s_encrypt(w, digest, hdr, src, stored, payload)) != 0)
            return rc;
        src = payload;
    }
    s_put16(hdr + 10, flags);
    s_put64(hdr + 56, s_hdr_checksum(hdr));

    /* The whole file image in w->io: header, then payload (copied when it is the caller's). */
    if (src != payload)
        memcpy(payload, src, stored);
    uint64_t seq = atomic_fetch_add(&repo->tmp_seq, 1);
    snprintf(tmp, sizeof tmp, "%.2s/.tmp.%s.%ld.%" PRIu64, rel, rel + 3, repo->pid, seq);
    fd = s_create_chunk_file(repo, tmp);
    if (fd < 0) {
        rc = vb_error_set(s_errno_code(errno), "repository %s: cannot create chunk %s: %s",
                          repo->path, rel, strerror(errno));
        goto out;
    }
    tmp_made = true;
    if (s_write_chunk_file(repo, fd, w->io, S_HDR_LEN + stored) != 0) {
        rc = vb_error_set(s_errno_code(errno), "repository %s: writing chunk %s: %s", repo->path,
                          rel, strerror(errno));
        goto out;
    }
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        rc = vb_error_set(s_errno_code(errno), "repository %s: writing chunk %s: %s", repo->path,
                          rel, strerror(errno));
        goto out;
    }
    if (renameat(repo->chunks_fd, tmp, repo->chunks_fd, rel) != 0) {
        rc = vb_error_set(s_errno_code(errno), "repository %s: installing chunk %s: %s",
                          repo->path, rel, strerror(errno));
        goto out;
    }
    tmp_made = false;
    if (stored_bytes_out)
        *stored_bytes_out = S_HDR_LEN + stored;
out:
    if (fd >= 0)
        close(fd);
    if (tmp_made)
        unlinkat(repo->chunks_fd, tmp, 0);
    return rc;
}

/* Reads and checks a chunk header; fills raw size, stored size and flags from it. */
static int s_check_header(vb_repo_t *repo, const char *rel, const uint8_t *hdr, off_t size,
                          uint32_t *raw, uint32_t *stored, uint16_t *flags)
{
    if (memcmp(hdr, S_MAGIC, sizeof S_MAGIC) != 0 || s_get64(hdr + 56) != s_hdr_checksum(hdr))
        return vb_error_set(VB_ECORRUPT, "chunk %s has a damaged header", rel + 3);
    if (s_get16(hdr + 8) != S_CHUNK_VERSION)
        return vb_error_set(VB_EUNSUPPORTED, "chunk %s has format version %u", rel + 3,
                            s_get16(hdr + 8));
    *flags = s_get16(hdr + 10);
    *raw = s_get32(hdr + 12);
    *stored = s_get32(hdr + 16);
    if ((*flags & ~(S_FLAG_COMPRESSED | S_FLAG_ENCRYPTED)) || *raw == 0 ||
        *raw > repo->chunk_size || *stored > ZSTD_compressBound(repo->chunk_size) ||
        (!(*flags & S_FLAG_COMPRESSED) && *stored != *raw))
        return vb_error_set(VB_ECORRUPT, "chunk %s has an inconsistent header", rel + 3);
    if ((uint64_t)size != S_HDR_LEN + (uint64_t)*stored)
        return vb_error_set(VB_ECORRUPT,
                            "chunk %s is truncated or padded: header says %u stored bytes, the "
                            "file holds %lld",
                            rel + 3, *stored, (long long)size - S_HDR_LEN);
    return 0;
}

static int s_read_header(vb_repo_t *repo, int fd, const char *rel, uint8_t *hdr, uint32_t *raw,
                         uint32_t *stored, uint16_t *flags)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return vb_error_set(VB_EIO, "chunk %s: %s", rel + 3, strerror(errno));
    if (st.st_size < S_HDR_LEN || vb_pread_full(fd, hdr, S_HDR_LEN, 0) != 0)
        return vb_error_set(VB_ECORRUPT, "chunk %s is truncated (%lld bytes, shorter than its "
                            "header)", rel + 3, (long long)st.st_size);
    return s_check_header(repo, rel, hdr, st.st_size, raw, stored, flags);
}

/* Reads a whole chunk file into w->io: with O_DIRECT when the repository takes it (one large
 * read per chunk, no page cache), else buffered. Returns the file size in *size. */
static int s_read_chunk_file(vb_repo_worker_t *w, const char *rel, off_t *size)
{
    vb_repo_t *repo = w->repo;
    bool direct = atomic_load(&repo->direct);
    int fd = openat(repo->chunks_fd, rel, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
    if (fd < 0 && direct && errno == EINVAL) {
        direct = false;
        fd = openat(repo->chunks_fd, rel, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return vb_error_set(errno == ENOENT ? VB_ENOTFOUND : VB_EIO, "chunk %s is %s", rel + 3,
                            errno == ENOENT ? "missing" : strerror(errno));
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = vb_error_set(VB_EIO, "chunk %s: %s", rel + 3, strerror(errno));
        goto out;
    }
    if (st.st_size < S_HDR_LEN || (uint64_t)st.st_size > w->io_cap) {
        rc = vb_error_set(VB_ECORRUPT, "chunk %s is truncated or oversized (%lld bytes)",
                          rel + 3, (long long)st.st_size);
        goto out;
    }
    size_t want = (size_t)st.st_size, got = 0;
    if (direct)
        want = (want + S_ALIGN - 1) & ~(size_t)(S_ALIGN - 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, w->io + got, want - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EINVAL && direct && got == 0) {
            /* the device refuses this alignment: read this one through the page cache */
            int bfd = openat(repo->chunks_fd, rel, O_RDONLY | O_CLOEXEC);
            if (bfd < 0)
                break;
            close(fd);
            fd = bfd;
            direct = false;
            want = (size_t)st.st_size;
            continue;
        }
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < (size_t)st.st_size)
        rc = vb_error_set(VB_EIO, "chunk %s: short read: %s", rel + 3, strerror(errno));
    *size = st.st_size;
out:
    close(fd);
    return rc;
}

/* A cheap check of a chunk file found existing: a sound header, the expected raw size, the
 * whole payload present. The content itself is checked by verify and restore. */
static bool s_existing_ok(vb_repo_t *repo, const char *rel, size_t len)
{
    uint8_t hdr[S_HDR_LEN];
    uint32_t raw = 0, stored = 0;
    uint16_t flags = 0;
    int fd = openat(repo->chunks_fd, rel, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = s_read_header(repo, fd, rel, hdr, &raw, &stored, &flags) == 0 && raw == len;
    close(fd);
    if (!ok)
        vb_error_clear();
    return ok;
}

static int s_decrypt(vb_repo_worker_t *w, const vb_digest_t *digest, const uint8_t *hdr,
                     uint8_t *buf, size_t len, const char *rel)
{
    int outl = 0, fin = 0;
    EVP_CIPHER_CTX *c = w->cipher;
    if (EVP_DecryptInit_ex2(c, w->repo->aes, w->repo->enc_key, hdr + 20, NULL) != 1 ||
        EVP_DecryptUpdate(c, NULL, &outl, hdr, 32) != 1 ||
        EVP_DecryptUpdate(c, NULL, &outl, digest->b, VB_DIGEST_LEN) != 1 ||
        EVP_DecryptUpdate(c, buf, &outl, buf, (int)len) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, S_TAG_LEN, (void *)(hdr + 32)) != 1)
        return vb_error_set(VB_EIO, "AES-256-GCM decryption failed");
    if (EVP_DecryptFinal_ex(c, buf + outl, &fin) != 1)
        return vb_error_set(VB_ECORRUPT, "chunk %s failed authentication (damaged or forged)",
                            rel + 3);
    return 0;
}

int vb_repo_chunk_get(vb_repo_worker_t *w, const vb_digest_t *digest, void *out, size_t cap,
                      size_t *len_out)
{
    vb_repo_t *repo = w->repo;
    char rel[3 + VB_DIGEST_HEX_LEN + 1];
    uint8_t hdr[S_HDR_LEN];
    uint32_t raw = 0, stored = 0;
    uint16_t flags = 0;
    int rc = 0;

    if (repo->encrypted && !repo->have_key)
        return vb_error_set(VB_EAUTH, "repository %s is encrypted: a key file is needed",
                            repo->path);
    s_rel_path(digest, rel);
    off_t size = 0;
    if ((rc = s_read_chunk_file(w, rel, &size)) != 0)
        return rc;
    memcpy(hdr, w->io, S_HDR_LEN);
    if ((rc = s_check_header(repo, rel, hdr, size, &raw, &stored, &flags)) != 0)
        goto out;
    if (raw > cap) {
        rc = vb_error_set(VB_EINVAL, "chunk %s: %u bytes do not fit a %zu-byte buffer", rel + 3,
                          raw, cap);
        goto out;
    }
    bool compressed = flags & S_FLAG_COMPRESSED;
    uint8_t *buf = w->io + S_HDR_LEN;
    if ((flags & S_FLAG_ENCRYPTED) != (repo->encrypted ? S_FLAG_ENCRYPTED : 0)) {
        rc = vb_error_set(VB_ECORRUPT, "chunk %s: encryption flag does not match the repository",
                          rel + 3);
        goto out;
    }
    if (repo->encrypted && (rc = s_decrypt(w, digest, hdr, buf, stored, rel)) != 0)
        goto out;
    if (compressed) {
        size_t n = ZSTD_decompressDCtx(w->dctx, out, cap, buf, stored);
        if (ZSTD_isError(n) || n != raw) {
            rc = vb_error_set(VB_ECORRUPT, "chunk %s does not decompress to %u bytes", rel + 3,
                              raw);
            goto out;
        }
    } else {
        memcpy(out, buf, raw);
    }
    vb_digest_t check;
    if ((rc = vb_repo_digest(w, out, raw, &check)) != 0)
        goto out;
    if (memcmp(check.b, digest->b, VB_DIGEST_LEN) != 0) {
        rc = vb_error_set(VB_ECORRUPT, "chunk %s: content does not match its digest", rel + 3);
        goto out;
    }
    *len_out = raw;
out:
    return rc;
}

/* ---------- stats ---------- */

static int s_scan_chunks(vb_repo_t *self, vb_repo_stats_t *st)
{
    for (int i = 0; i < 256; i++) {
        char shard[3];
        s_hex((const uint8_t[]){(uint8_t)i}, 1, shard);
        int sfd = openat(self->chunks_fd, shard, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = sfd >= 0 ? fdopendir(sfd) : NULL;
        if (!d) {
            if (sfd >= 0)
                close(sfd);
            return vb_error_set(VB_EIO, "repository %s: chunks/%s: %s", self->path, shard,
                                strerror(errno));
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strlen(e->d_name) != VB_DIGEST_HEX_LEN)
                continue;
            int fd = openat(sfd, e->d_name, O_RDONLY | O_CLOEXEC);
            struct stat s;
            uint8_t hdr[S_HDR_LEN];
            if (fd < 0)
                continue; /* removed meanwhile */
            st->chunks++;
            if (fstat(fd, &s) == 0)
                st->stored_bytes += (uint64_t)s.st_size;
            if (vb_pread_full(fd, hdr, S_HDR_LEN, 0) == 0 && memcmp(hdr, S_MAGIC, 8) == 0)
                st->raw_bytes += s_get32(hdr + 12);
            close(fd);
        }
        closedir(d);
    }
    return 0;
}

int vb_repo_stats(vb_repo_t *self, vb_repo_stats_t *out)
{
    memset(out, 0, sizeof *out);
    int rc = s_scan_chunks(self, out);
    char **names = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = vb_index_list(self, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        vb_index_t *idx = NULL;
        if ((rc = vb_index_read(self, names[i], &idx)) != 0)
            break;
        out->indexes++;
        for (uint64_t c = 0; c < idx->count; c++)
            if (!vb_digest_is_zero(&idx->digests[c]))
                out->logical_bytes += vb_index_chunk_len(idx, c);
        vb_index_destroy(&idx);
    }
    vb_index_list_free(names, n);
    out->dedup_ratio = out->raw_bytes ? (double)out->logical_bytes / (double)out->raw_bytes : 0;
    out->compression_ratio =
        out->stored_bytes ? (double)out->raw_bytes / (double)out->stored_bytes : 0;
    return rc;
}
