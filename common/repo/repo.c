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
#include "repo/chunkidx.h"
#include "repo/idxobj.h"
#include "repo/le.h"
#include "repo/index.h"
#include "repo/pack.h"
#include "repo/packcheck.h"
#include "repo/packed.h"
#include "repo/packquar.h"
#include "repo/readahead.h"
#include "repo/store.h"
#include "repo/undelete.h"

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
#define S_ALIGN 4096 /* lets the store bypass the page cache (O_DIRECT alignment) */
#define S_CONFIG "config"
#define S_CONFIG_MAX (64u * 1024u)
#define S_CHUNKS "chunks/"
#define S_NAME_LEN (sizeof S_CHUNKS - 1 + 3 + VB_DIGEST_HEX_LEN + 1) /* chunks/ab/<hex> */
#define S_QNAME_LEN (sizeof VB_REPO_QUARANTINE_DIR + VB_DIGEST_HEX_LEN + 1) /* quarantine/<hex> */

struct vb_repo {
    char *path;
    vb_store_t *store;
    vb_packed_t *packed; /* format 2: where chunks go; NULL for format 1 (a file per chunk) */
    int format;
    uint32_t pack_size;
    uint32_t chunk_size;
    vb_store_lock_t lock; /* S3 Object Lock from the config (seconds 0: none) */
    int level;
    bool encrypted;
    bool have_key;
    uint8_t repo_id[S_ID_LEN];
    uint8_t mac_key[32];
    uint8_t enc_key[32];
    EVP_MD *sha256;
    EVP_MAC *hmac;
    EVP_CIPHER *aes;
};

struct vb_repo_worker {
    vb_repo_t *repo;
    vb_packed_writer_t *pw; /* format 2 */
    vb_readahead_t *ahead;  /* format 2 */
    uint64_t reads;         /* chunk images read one by one */
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
    int64_t pack_size;
    int64_t object_lock_seconds;
    char *object_lock_mode;
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
    {"pack_size", VB_CONF_INT, offsetof(s_conf_t, pack_size), "16777216", VB_PACK_SIZE_MIN,
     VB_PACK_SIZE_MAX, false, "format 2: pack size in bytes"},
    {"object_lock_seconds", VB_CONF_INT, offsetof(s_conf_t, object_lock_seconds), "0", 0,
     INT64_C(36500) * 86400, false, "S3 Object Lock: retention of each object written"},
    {"object_lock_mode", VB_CONF_STR, offsetof(s_conf_t, object_lock_mode), "compliance", 0, 0,
     false, "S3 Object Lock: compliance or governance"},
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

/* Writes the config object (durable: it is what makes the location a repository). */
static int s_write_config(vb_store_t *store, const char *path, const s_conf_t *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return vb_error_set(VB_ENOMEM, "out of memory");
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
    if (c->format_version == VB_REPO_FORMAT_PACKED) {
        snprintf(num, sizeof num, "%" PRId64, c->pack_size);
        vb_config_write(f, "pack_size", num);
    }
    if (c->object_lock_seconds > 0) {
        snprintf(num, sizeof num, "%" PRId64, c->object_lock_seconds);
        vb_config_write(f, "object_lock_seconds", num);
        vb_config_write(f, "object_lock_mode", c->object_lock_mode);
    }
    int rc = 0;
    if (fclose(f) != 0 || !text)
        rc = vb_error_set(VB_ENOMEM, "out of memory");
    else if ((rc = vb_store_put(store, S_CONFIG, text, len, VB_STORE_DURABLE)) != 0)
        rc = vb_error_prefix(rc, "repository %s: cannot write config", path);
    free(text);
    return rc;
}

static int s_any_object(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)name;
    (void)st;
    *(bool *)arg = true;
    return 1; /* one is enough */
}

/* VB_EEXISTS unless the store holds no object yet. */
static int s_check_empty(vb_store_t *store, const char *path)
{
    bool any = false;
    int rc = vb_store_list(store, "", s_any_object, &any);
    if (rc)
        return rc;
    if (!any)
        return 0;
    return vb_error_set(VB_EEXISTS, "repository %s: %s", path,
                        vb_store_exists(store, S_CONFIG) ? "a repository exists there already"
                                                         : "directory is not empty");
}

int vb_repo_init(const char *path, const vb_repo_params_t *params)
{
    int rc = 0;
    vb_store_t *store = NULL;
    s_conf_t c = {0};
    char id_hex[2 * S_ID_LEN + 1], check_hex[2 * S_CHECK_LEN + 1], comp[32];
    uint8_t id[S_ID_LEN], mac_key[32], enc_key[32], check[S_CHECK_LEN];
    uint32_t cs = params->chunk_size ? params->chunk_size : VB_REPO_CHUNK_DEFAULT;
    int format = params->format          ? params->format
                 : vb_store_is_s3(path) ? VB_REPO_FORMAT_PACKED /* a request per chunk: no */
                                        : VB_REPO_FORMAT_VERSION;
    uint32_t ps = params->pack_size ? params->pack_size : VB_PACK_SIZE_DEFAULT;

    if (format != 1 && format != VB_REPO_FORMAT_PACKED)
        return vb_error_set(VB_EINVAL, "repository format %d: must be 1 or 2", format);
    if (format == 1 && vb_store_is_s3(path))
        return vb_error_set(VB_EINVAL, "repository format 1 on S3 is refused (an object per "
                                       "chunk): use format 2");
    if (ps < VB_PACK_SIZE_MIN || ps > VB_PACK_SIZE_MAX)
        return vb_error_set(VB_EINVAL, "pack size %" PRIu32 ": must be from 4M to 128M", ps);
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
    if (!(store = vb_store_open_opts(path, true, &params->store))) {
        rc = vb_error_code();
        goto out;
    }
    if ((rc = s_check_empty(store, path)) != 0)
        goto out;

    s_hex(id, sizeof id, id_hex);
    c.format_version = format;
    c.pack_size = ps;
    c.repo_id = id_hex;
    c.chunk_size = cs;
    if (params->compression_level)
        snprintf(comp, sizeof comp, "zstd:%d", params->compression_level);
    else
        snprintf(comp, sizeof comp, "none");
    c.compression = comp;
    c.encryption = params->key_file ? "aes-256-gcm" : "none";
    c.object_lock_seconds = params->store.lock.seconds;
    c.object_lock_mode = params->store.lock.governance ? "governance" : "compliance";
    if (params->key_file) {
        s_hex(check, sizeof check, check_hex);
        c.key_check = check_hex;
    }
    rc = s_write_config(store, path, &c);
out:
    OPENSSL_cleanse(mac_key, sizeof mac_key);
    OPENSSL_cleanse(enc_key, sizeof enc_key);
    vb_store_destroy(&store);
    return rc;
}

/* ---------- open ---------- */

/* The config's Object Lock becomes the retention of every object the store writes. */
static int s_apply_lock(vb_repo_t *self, const s_conf_t *c)
{
    bool gov = strcmp(c->object_lock_mode, "governance") == 0;
    if (!gov && strcmp(c->object_lock_mode, "compliance") != 0)
        return vb_error_set(VB_ECORRUPT,
                            "repository %s: object_lock_mode '%s': compliance or "
                            "governance",
                            self->path, c->object_lock_mode);
    vb_store_lock_t lock = {.seconds = c->object_lock_seconds, .governance = gov};
    self->lock = lock;
    int rc = vb_store_set_lock(self->store, &lock);
    return rc ? vb_error_prefix(rc, "repository %s", self->path) : 0;
}

static int s_load_config(vb_repo_t *self, const char *key_file)
{
    s_conf_t c = {0};
    int rc = 0;
    char cfg[4096];
    uint8_t check[S_CHECK_LEN], stored_check[S_CHECK_LEN];
    void *text = NULL;
    size_t len = 0;
    FILE *f = NULL;
    if ((rc = vb_store_get_alloc(self->store, S_CONFIG, S_CONFIG_MAX, &text, &len)) != 0) {
        if (rc == VB_ENOTFOUND)
            rc = vb_error_set(VB_ENOTFOUND, "%s is not a vbak repository (no config file)",
                              self->path);
        goto out;
    }
    if ((rc = vb_config_defaults(s_conf_table, &c)) != 0)
        goto out;
    if (!(f = fmemopen(text, len ? len : 1, "r"))) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(cfg, sizeof cfg, "%s/config", self->path);
    rc = vb_config_load_stream(s_conf_table, &c, f, cfg);
    /* The version decides how the rest reads: check it first, even when a later key failed. */
    if (c.format_version != 0 && c.format_version != 1 &&
        c.format_version != VB_REPO_FORMAT_PACKED) {
        rc = vb_error_set(VB_EUNSUPPORTED,
                          "repository %s has format version %" PRId64
                          "; this vbak reads versions 1 and 2 only (upgrade vbak)",
                          self->path, c.format_version);
        goto out;
    }
    self->format = (int)c.format_version;
    self->pack_size = self->format == VB_REPO_FORMAT_PACKED ? (uint32_t)c.pack_size : 0;
    if (rc == 0)
        rc = vb_config_check_required(s_conf_table, &c);
    if (rc) {
        rc = vb_error_prefix(VB_ECORRUPT, "repository %s: bad config", self->path);
        goto out;
    }
    self->chunk_size = (uint32_t)c.chunk_size;
    if ((rc = s_apply_lock(self, &c)) != 0)
        goto out;
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
    if (f)
        fclose(f);
    free(text);
    vb_config_free(s_conf_table, &c);
    return rc;
}

/* Opens a repository; load_index false: without loading a format 2 chunk index (to repair it). */
static vb_repo_t *s_open(const char *path, const char *key_file, const vb_store_opts_t *opts,
                         bool load_index)
{
    vb_repo_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    if (!(self->path = strdup(path))) {
        vb_error_set(VB_ENOMEM, "out of memory");
        goto fail;
    }
    if (!(self->store = vb_store_open_opts(path, false, opts))) {
        if (vb_error_code() == VB_ENOTFOUND && !vb_store_is_s3(path)) /* S3 names the bucket */
            vb_error_set(VB_ENOTFOUND, "%s is not a vbak repository (no config file)", path);
        goto fail;
    }
    if (s_load_config(self, key_file) != 0)
        goto fail;
    if (self->format == VB_REPO_FORMAT_PACKED && load_index &&
        !(self->packed = vb_packed_open(self->store, self->pack_size))) {
        vb_error_prefix(vb_error_code(), "repository %s", path);
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

vb_repo_t *vb_repo_open(const char *path, const char *key_file)
{
    return s_open(path, key_file, NULL, true);
}

vb_repo_t *vb_repo_open_opts(const char *path, const char *key_file,
                             const vb_store_opts_t *store_opts)
{
    return s_open(path, key_file, store_opts, true);
}

int vb_repo_repair_index(const char *path, vb_idxobj_repair_t *out)
{
    return vb_repo_repair_index_opts(path, NULL, out);
}

int vb_repo_repair_index_opts(const char *path, const vb_store_opts_t *store_opts,
                              vb_idxobj_repair_t *out)
{
    memset(out, 0, sizeof *out);
    vb_repo_t *self = s_open(path, NULL, store_opts, false); /* trailers are plaintext: no key */
    if (!self)
        return vb_error_code();
    int rc = self->format == VB_REPO_FORMAT_PACKED
                 ? vb_idxobj_repair(self->store, out)
                 : vb_error_set(VB_EINVAL,
                                "repository %s is format %d: it has no chunk index to repair",
                                path, self->format);
    vb_repo_destroy(&self);
    return rc;
}

int vb_repo_undelete_opts(const char *path, const vb_store_opts_t *store_opts, bool dry_run,
                          vb_undelete_stats_t *out)
{
    memset(out, 0, sizeof *out);
    vb_repo_t *self = s_open(path, NULL, store_opts, false); /* no key: names and trailers */
    if (!self)
        return vb_error_code();
    int rc = vb_undelete_run(self->store, dry_run, out);
    vb_repo_destroy(&self);
    return rc;
}

int vb_repo_check_packs(const char *path, vb_packcheck_bad_fn bad, void *arg,
                        vb_packcheck_stats_t *out)
{
    return vb_repo_check_packs_opts(path, NULL, bad, arg, out);
}

int vb_repo_check_packs_opts(const char *path, const vb_store_opts_t *store_opts,
                             vb_packcheck_bad_fn bad, void *arg, vb_packcheck_stats_t *out)
{
    memset(out, 0, sizeof *out);
    vb_repo_t *self = s_open(path, NULL, store_opts, false); /* a maybe damaged index: not loaded */
    if (!self)
        return vb_error_code();
    int rc = self->format == VB_REPO_FORMAT_PACKED
                 ? vb_packcheck_run(self->store, bad, arg, out)
                 : vb_error_set(VB_EINVAL,
                                "repository %s is format %d: it has no packs nor index objects",
                                path, self->format);
    vb_repo_destroy(&self);
    return rc;
}

void vb_repo_destroy(vb_repo_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_repo_t *self = *self_p;
    vb_packed_destroy(&self->packed);
    vb_store_destroy(&self->store);
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

int vb_repo_writable(vb_repo_t *self)
{
    return self->packed ? vb_packed_writable(self->packed) : 0;
}

int vb_repo_sync(vb_repo_t *self)
{
    if (self->packed)
        return vb_packed_commit(self->packed); /* a barrier, then the index object */
    /* format 1: a chunk file found in place may be another handle's or process's, not synced
     * yet (its writer syncs it at its own next barrier): sync whatever anyone wrote */
    return vb_store_barrier_all(self->store);
}

int vb_repo_format(const vb_repo_t *self)
{
    return self->format;
}

uint32_t vb_repo_pack_size(const vb_repo_t *self)
{
    return self->pack_size;
}

vb_store_t *vb_repo_store(vb_repo_t *self)
{
    return self->store;
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
    if (repo->packed && (!(w->pw = vb_packed_writer_new(repo->packed)) ||
                         !(w->ahead = vb_readahead_new(repo->packed))))
        goto fail;
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
    vb_packed_writer_destroy(&w->pw);
    vb_readahead_destroy(&w->ahead);
    free(w->io);
    ZSTD_freeCCtx(w->cctx);
    ZSTD_freeDCtx(w->dctx);
    EVP_MD_CTX_free(w->md);
    EVP_MAC_CTX_free(w->mac);
    EVP_CIPHER_CTX_free(w->cipher);
    free(w);
    *self_p = NULL;
}

int vb_repo_worker_flush(vb_repo_worker_t *w)
{
    return w->pw ? vb_packed_flush(w->pw) : 0;
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

/* The object name of a chunk: chunks/<first byte in hex>/<digest in hex>. */
static void s_chunk_name(const vb_digest_t *d, char name[S_NAME_LEN])
{
    char hex[VB_DIGEST_HEX_LEN + 1];
    vb_digest_hex(d, hex);
    snprintf(name, S_NAME_LEN, S_CHUNKS "%.2s/%s", hex, hex);
}

/* The digest in hex of a chunk name (for messages). */
static const char *s_hex_of(const char *name)
{
    return name + sizeof S_CHUNKS - 1 + 3;
}

static void s_quarantine_name(const vb_digest_t *d, char name[S_QNAME_LEN])
{
    char hex[VB_DIGEST_HEX_LEN + 1];
    vb_digest_hex(d, hex);
    snprintf(name, S_QNAME_LEN, VB_REPO_QUARANTINE_DIR "/%s", hex);
}

int vb_repo_chunk_path(const vb_repo_t *self, const vb_digest_t *digest, char *out, size_t outsz)
{
    char name[S_NAME_LEN];
    s_chunk_name(digest, name);
    return vb_store_local_path(self->store, name, out, outsz);
}

int vb_repo_chunk_quarantine(vb_repo_t *self, const vb_digest_t *digest)
{
    char name[S_NAME_LEN], dst[S_QNAME_LEN];
    s_chunk_name(digest, name);
    s_quarantine_name(digest, dst);
    int rc = self->packed ? vb_packed_quarantine(self->packed, digest)
                          : vb_store_move(self->store, name, dst);
    if (rc)
        return vb_error_prefix(rc, "repository %s: quarantining chunk %s", self->path,
                               s_hex_of(name));
    /* The mtime says when it was quarantined: GC removes it VB_GC_QUARANTINE_DAYS later (a
     * format 2 record was just written, or kept from the first time) */
    if (!self->packed && vb_store_freshen(self->store, dst) != 0)
        vb_error_clear();
    VB_LOG_INFO("repo", "chunk_quarantined repo=%s chunk=%s", self->path, s_hex_of(name));
    return 0;
}

bool vb_repo_chunk_quarantined(vb_repo_t *self, const vb_digest_t *digest)
{
    char name[S_QNAME_LEN];
    if (self->format == VB_REPO_FORMAT_PACKED)
        return vb_packquar_has(self->store, digest);
    s_quarantine_name(digest, name);
    return vb_store_exists(self->store, name);
}

bool vb_repo_chunk_exists(vb_repo_t *self, const vb_digest_t *digest)
{
    if (self->packed)
        return vb_packed_has(self->packed, digest);
    char name[S_NAME_LEN];
    s_chunk_name(digest, name);
    return vb_store_exists(self->store, name);
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

static bool s_existing_ok(vb_repo_t *repo, const char *name, size_t len);

/* Builds the stored image of a chunk in w->io (header, then payload); *total its size. */
static int s_encode(vb_repo_worker_t *w, const vb_digest_t *digest, const void *data, size_t len,
                    size_t *total)
{
    vb_repo_t *repo = w->repo;
    uint8_t *hdr = w->io, *payload = w->io + S_HDR_LEN;
    const uint8_t *src = data;
    size_t stored = len;
    uint16_t flags = 0;
    int rc = 0;
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
    vb_le_put(hdr + 8, S_CHUNK_VERSION, 2);
    vb_le_put(hdr + 12, (uint32_t)len, 4);
    vb_le_put(hdr + 16, (uint32_t)stored, 4);
    if (repo->encrypted) {
        flags |= S_FLAG_ENCRYPTED;
        vb_le_put(hdr + 10, flags, 2);
        if (RAND_bytes(hdr + 20, S_NONCE_LEN) != 1)
            return vb_error_set(VB_EIO, "no random bytes for a nonce");
        if ((rc = s_encrypt(w, digest, hdr, src, stored, payload)) != 0)
            return rc;
        src = payload;
    }
    vb_le_put(hdr + 10, flags, 2);
    vb_le_put(hdr + 56, s_hdr_checksum(hdr), 8);
    if (src != payload)
        memcpy(payload, src, stored);
    *total = S_HDR_LEN + stored;
    return 0;
}

int vb_repo_chunk_encode(vb_repo_worker_t *w, const vb_digest_t *digest, const void *data,
                         size_t len, const uint8_t **img_out, size_t *img_len)
{
    vb_repo_t *repo = w->repo;
    if (len == 0 || len > repo->chunk_size || vb_buf_is_zero(data, len))
        return vb_error_set(VB_EINVAL, "chunk of %zu bytes is empty, too large or all zero", len);
    if (repo->encrypted && !repo->have_key)
        return vb_error_set(VB_EAUTH, "repository %s is encrypted: a key file is needed",
                            repo->path);
    int rc = s_encode(w, digest, data, len, img_len);
    if (rc == 0)
        *img_out = w->io;
    return rc;
}

/* Format 2: into the worker's open pack, unless the repository has the chunk. */
static int s_put_packed(vb_repo_worker_t *w, const vb_digest_t *digest, const void *data,
                        size_t len, uint64_t *stored_bytes_out)
{
    const uint8_t *img = NULL;
    size_t img_len = 0;
    bool stored = false;
    int rc = vb_repo_writable(w->repo); /* before reuse: no chunk in a hidden pack */
    if (rc)
        return rc;
    if (vb_packed_reuse(w->pw, digest)) /* freshens its pack: a concurrent GC keeps it */
        return 0;
    rc = vb_repo_chunk_encode(w, digest, data, len, &img, &img_len);
    if (rc == 0)
        rc = vb_packed_put(w->pw, digest, img, img_len, (uint32_t)len, &stored);
    if (rc == 0 && stored && stored_bytes_out)
        *stored_bytes_out = img_len;
    return rc;
}

int vb_repo_chunk_put(vb_repo_worker_t *w, const vb_digest_t *digest, const void *data, size_t len,
                      uint64_t *stored_bytes_out)
{
    vb_repo_t *repo = w->repo;
    char name[S_NAME_LEN];
    unsigned flags = 0;
    int rc = 0;

    if (stored_bytes_out)
        *stored_bytes_out = 0;
    if (len == 0 || len > repo->chunk_size || vb_buf_is_zero(data, len))
        return vb_error_set(VB_EINVAL, "chunk of %zu bytes is empty, too large or all zero", len);
    if (repo->encrypted && !repo->have_key)
        return vb_error_set(VB_EAUTH, "repository %s is encrypted: a key file is needed",
                            repo->path);
    if (w->pw)
        return s_put_packed(w, digest, data, len, stored_bytes_out);
    s_chunk_name(digest, name);
    /* Exists already: refresh the mtime so that a concurrent GC sees it as recently used, and
     * check its header and size, so that an object a crash left incomplete (renamed before its
     * data reached the disk) is replaced rather than trusted. */
    rc = vb_store_freshen(repo->store, name);
    if (rc == 0) {
        if (s_existing_ok(repo, name, len))
            return 0;
        VB_LOG_WARN("repo", "replacing damaged chunk repo=%s chunk=%s", repo->path,
                    s_hex_of(name));
        flags = VB_STORE_REPLACE;
    } else if (rc != VB_ENOTFOUND) {
        return rc;
    }
    vb_error_clear();
    size_t total = 0;
    const uint8_t *img = NULL;
    if ((rc = vb_repo_chunk_encode(w, digest, data, len, &img, &total)) != 0)
        return rc;
    rc = vb_store_put(repo->store, name, img, total, flags);
    if (rc == VB_EEXISTS) { /* another writer stored the same content meanwhile */
        vb_error_clear();
        return 0;
    }
    if (rc)
        return rc;
    if (stored_bytes_out)
        *stored_bytes_out = total;
    return 0;
}

/* Checks a chunk header against the object's size; fills raw size, stored size and flags. */
static int s_check_header(vb_repo_t *repo, const char *hex, const uint8_t *hdr, uint64_t size,
                          uint32_t *raw, uint32_t *stored, uint16_t *flags)
{
    if (size < S_HDR_LEN)
        return vb_error_set(VB_ECORRUPT,
                            "chunk %s is truncated (%llu bytes, shorter than its header)", hex,
                            (unsigned long long)size);
    if (memcmp(hdr, S_MAGIC, sizeof S_MAGIC) != 0 ||
        vb_le_get(hdr + 56, 8) != s_hdr_checksum(hdr))
        return vb_error_set(VB_ECORRUPT, "chunk %s has a damaged header", hex);
    if ((uint16_t)vb_le_get(hdr + 8, 2) != S_CHUNK_VERSION)
        return vb_error_set(VB_EUNSUPPORTED, "chunk %s has format version %u", hex,
                            (uint16_t)vb_le_get(hdr + 8, 2));
    *flags = (uint16_t)vb_le_get(hdr + 10, 2);
    *raw = (uint32_t)vb_le_get(hdr + 12, 4);
    *stored = (uint32_t)vb_le_get(hdr + 16, 4);
    if ((*flags & ~(S_FLAG_COMPRESSED | S_FLAG_ENCRYPTED)) || *raw == 0 ||
        *raw > repo->chunk_size || *stored > ZSTD_compressBound(repo->chunk_size) ||
        (!(*flags & S_FLAG_COMPRESSED) && *stored != *raw))
        return vb_error_set(VB_ECORRUPT, "chunk %s has an inconsistent header", hex);
    if (size != S_HDR_LEN + (uint64_t)*stored)
        return vb_error_set(VB_ECORRUPT,
                            "chunk %s is truncated or padded: header says %u stored bytes, the "
                            "file holds %lld",
                            hex, *stored, (long long)size - S_HDR_LEN);
    return 0;
}

/* A cheap check of a chunk found existing: a sound header, the expected raw size, the whole
 * payload present. The content itself is checked by verify and restore. */
static bool s_existing_ok(vb_repo_t *repo, const char *name, size_t len)
{
    uint8_t hdr[S_HDR_LEN];
    uint32_t raw = 0, stored = 0;
    uint16_t flags = 0;
    vb_store_stat_t st;
    size_t got = 0;
    bool ok = vb_store_stat(repo->store, name, &st) == 0 &&
              vb_store_get_range(repo->store, name, 0, hdr, sizeof hdr, &got) == 0 &&
              (got == sizeof hdr || st.size < S_HDR_LEN) &&
              s_check_header(repo, s_hex_of(name), hdr, st.size, &raw, &stored, &flags) == 0 &&
              raw == len;
    if (!ok)
        vb_error_clear();
    return ok;
}

static int s_decrypt(vb_repo_worker_t *w, const vb_digest_t *digest, const uint8_t *hdr,
                     uint8_t *buf, size_t len, const char *hex)
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
                            hex);
    return 0;
}

int vb_repo_chunk_decode(vb_repo_worker_t *w, const vb_digest_t *digest, uint8_t *img,
                         size_t img_len, void *out, size_t cap, size_t *len_out)
{
    vb_repo_t *repo = w->repo;
    char hex[VB_DIGEST_HEX_LEN + 1];
    uint8_t hdr[S_HDR_LEN] = {0};
    uint32_t raw = 0, stored = 0;
    uint16_t flags = 0;
    int rc = 0;

    if (repo->encrypted && !repo->have_key)
        return vb_error_set(VB_EAUTH, "repository %s is encrypted: a key file is needed",
                            repo->path);
    vb_digest_hex(digest, hex);
    memcpy(hdr, img, img_len < S_HDR_LEN ? img_len : S_HDR_LEN);
    if ((rc = s_check_header(repo, hex, hdr, img_len, &raw, &stored, &flags)) != 0)
        return rc;
    if (raw > cap)
        return vb_error_set(VB_EINVAL, "chunk %s: %u bytes do not fit a %zu-byte buffer", hex,
                            raw, cap);
    uint8_t *buf = img + S_HDR_LEN;
    if ((flags & S_FLAG_ENCRYPTED) != (repo->encrypted ? S_FLAG_ENCRYPTED : 0))
        return vb_error_set(VB_ECORRUPT,
                            "chunk %s: encryption flag does not match the repository", hex);
    if (repo->encrypted && (rc = s_decrypt(w, digest, hdr, buf, stored, hex)) != 0)
        return rc;
    if (flags & S_FLAG_COMPRESSED) {
        size_t n = ZSTD_decompressDCtx(w->dctx, out, cap, buf, stored);
        if (ZSTD_isError(n) || n != raw)
            return vb_error_set(VB_ECORRUPT, "chunk %s does not decompress to %u bytes", hex,
                                raw);
    } else {
        memcpy(out, buf, raw);
    }
    vb_digest_t check;
    if ((rc = vb_repo_digest(w, out, raw, &check)) != 0)
        return rc;
    if (memcmp(check.b, digest->b, VB_DIGEST_LEN) != 0)
        return vb_error_set(VB_ECORRUPT, "chunk %s: content does not match its digest", hex);
    *len_out = raw;
    return 0;
}

int vb_repo_chunk_get(vb_repo_worker_t *w, const vb_digest_t *digest, void *out, size_t cap,
                      size_t *len_out)
{
    vb_repo_t *repo = w->repo;
    char name[S_NAME_LEN];
    if (repo->encrypted && !repo->have_key)
        return vb_error_set(VB_EAUTH, "repository %s is encrypted: a key file is needed",
                            repo->path);
    size_t size = 0;
    uint8_t *img = NULL;
    if (repo->packed && vb_readahead_take(w->ahead, digest, &img, &size) &&
        (!repo->encrypted || size <= w->io_cap)) {
        /* decode changes an image only to decrypt it: a plain one is decoded where it was read */
        if (repo->encrypted) {
            memcpy(w->io, img, size);
            img = w->io;
        }
        return vb_repo_chunk_decode(w, digest, img, size, out, cap, len_out);
    }
    w->reads++;
    if (repo->packed) {
        int rc = vb_packed_get(repo->packed, digest, w->io, w->io_cap, &size);
        return rc ? rc : vb_repo_chunk_decode(w, digest, w->io, size, out, cap, len_out);
    }
    s_chunk_name(digest, name);
    int rc = vb_store_get(repo->store, name, w->io, w->io_cap, &size);
    if (rc == VB_ENOTFOUND)
        return vb_error_set(VB_ENOTFOUND, "chunk %s is missing", s_hex_of(name));
    if (rc == VB_ECORRUPT)
        return vb_error_prefix(VB_ECORRUPT, "chunk %s is oversized", s_hex_of(name));
    if (rc)
        return rc;
    return vb_repo_chunk_decode(w, digest, w->io, size, out, cap, len_out);
}

bool vb_repo_chunk_place(vb_repo_t *self, const vb_digest_t *digest, vb_repo_place_t *out)
{
    vb_chunkidx_loc_t loc;
    if (!self->packed || !vb_packed_locate(self->packed, digest, &loc))
        return false;
    uint64_t pack = 0;
    memcpy(&pack, loc.pack.b, sizeof pack); /* random ids: 64 bits tell packs apart */
    *out = (vb_repo_place_t){.pack = pack, .offset = loc.offset, .length = loc.length};
    return true;
}

void vb_repo_chunk_prefetch(vb_repo_worker_t *w, const vb_digest_t *digests, size_t n)
{
    if (w->ahead)
        vb_readahead_load(w->ahead, digests, n);
}

uint64_t vb_repo_worker_reads(const vb_repo_worker_t *w)
{
    return w->reads + (w->ahead ? vb_readahead_reads(w->ahead) : 0);
}

/* ---------- listing and removing (garbage collection) ---------- */

typedef struct {
    vb_repo_chunk_fn fn;
    void *arg;
} s_foreach_t;

static int s_foreach_one(void *arg, const char *name, const vb_store_stat_t *st)
{
    s_foreach_t *f = arg;
    vb_digest_t d;
    const char *hex = name + sizeof S_CHUNKS - 1 + 3;
    if (strlen(name) != S_NAME_LEN - 1 || vb_digest_parse(hex, &d) != 0 ||
        strncmp(name + sizeof S_CHUNKS - 1, hex, 2) != 0) {
        vb_error_clear();
        return 0; /* not ours: leave it alone */
    }
    return f->fn(f->arg, &d, st);
}

int vb_repo_chunk_foreach(vb_repo_t *self, vb_repo_chunk_fn fn, void *arg)
{
    s_foreach_t f = {.fn = fn, .arg = arg};
    return vb_store_list(self->store, S_CHUNKS, s_foreach_one, &f);
}

int vb_repo_chunk_remove(vb_repo_t *self, const vb_digest_t *digest, time_t unless_since)
{
    char name[S_NAME_LEN];
    s_chunk_name(digest, name);
    return vb_store_remove(self->store, name, unless_since);
}

typedef struct {
    vb_store_t *store;
    time_t before;
    bool dry_run;
    uint64_t removed;
} s_expire_t;

static int s_expire_one(void *arg, const char *name, const vb_store_stat_t *st)
{
    s_expire_t *e = arg;
    if (st->mtime < e->before && (e->dry_run || vb_store_remove(e->store, name, 0) == 0))
        e->removed++;
    vb_error_clear();
    return 0;
}

int vb_repo_quarantine_expire(vb_repo_t *self, time_t before, bool dry_run, uint64_t *removed)
{
    if (self->format == VB_REPO_FORMAT_PACKED)
        return vb_packquar_expire(self->store, before, dry_run, removed);
    s_expire_t e = {.store = self->store, .before = before, .dry_run = dry_run};
    int rc = vb_store_list(self->store, VB_REPO_QUARANTINE_DIR "/", s_expire_one, &e);
    *removed = e.removed;
    return rc;
}

/* ---------- stats ---------- */

static int s_stat_one(void *arg, const vb_digest_t *d, const vb_store_stat_t *st)
{
    vb_repo_stats_t *out = ((void **)arg)[1];
    vb_repo_t *self = ((void **)arg)[0];
    char name[S_NAME_LEN];
    uint8_t hdr[S_HDR_LEN];
    size_t got = 0;
    s_chunk_name(d, name);
    out->chunks++;
    out->stored_bytes += st->size;
    if (vb_store_get_range(self->store, name, 0, hdr, sizeof hdr, &got) == 0 &&
        got == sizeof hdr && memcmp(hdr, S_MAGIC, 8) == 0)
        out->raw_bytes += (uint32_t)vb_le_get(hdr + 12, 4);
    vb_error_clear(); /* removed meanwhile */
    return 0;
}

static int s_lock_one(void *arg, const char *name, const vb_store_stat_t *ls)
{
    void **ctx = arg;
    vb_repo_t *self = ctx[0];
    vb_repo_stats_t *out = ctx[1];
    vb_store_stat_t st;
    int rc = vb_store_stat(self->store, name, &st); /* a listing has no retention */
    if (rc == VB_ENOTFOUND) {                        /* removed since it was listed */
        vb_error_clear();
        return 0;
    }
    if (rc == 0 && st.retain_until > time(NULL)) {
        out->locked_objects++;
        out->locked_bytes += ls->size;
        if (!out->earliest_unlock || st.retain_until < out->earliest_unlock)
            out->earliest_unlock = st.retain_until;
    }
    return rc;
}

int vb_repo_stats(vb_repo_t *self, vb_repo_stats_t *out)
{
    memset(out, 0, sizeof *out);
    void *ctx[2] = {self, out};
    int rc = self->packed ? vb_packed_stats(self->packed, &out->chunks, &out->packs,
                                            &out->stored_bytes, &out->raw_bytes)
                          : vb_repo_chunk_foreach(self, s_stat_one, ctx);
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
    out->lock = self->lock;
    if (rc == 0 && self->lock.seconds > 0)
        rc = vb_store_list(self->store, "", s_lock_one, ctx);
    out->dedup_ratio = out->raw_bytes ? (double)out->logical_bytes / (double)out->raw_bytes : 0;
    out->compression_ratio =
        out->stored_bytes ? (double)out->raw_bytes / (double)out->stored_bytes : 0;
    return rc;
}
