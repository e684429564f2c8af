#include "repo/index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define S_MAGIC "VBINDEX"
#define S_FIXED_LEN 32 /* magic 8, version 4, chunk size 4, capacity 8, count 8 */
#define S_KEY_MAX 4096
#define S_CAPACITY_MAX (1ull << 50) /* 1 PiB: far beyond any virtual disk */

static uint64_t s_count(uint64_t capacity, uint32_t chunk_size)
{
    return (capacity + chunk_size - 1) / chunk_size;
}

vb_index_t *vb_index_new(const char *disk_key, uint64_t capacity, uint32_t chunk_size,
                         const char *parent)
{
    if (!disk_key || strlen(disk_key) > S_KEY_MAX || chunk_size == 0 ||
        capacity > S_CAPACITY_MAX || (parent && strlen(parent) > S_KEY_MAX)) {
        vb_error_set(VB_EINVAL, "index: bad disk key, chunk size or capacity");
        return NULL;
    }
    vb_index_t *self = calloc(1, sizeof *self);
    if (!self)
        goto nomem;
    self->capacity = capacity;
    self->chunk_size = chunk_size;
    self->count = s_count(capacity, chunk_size);
    self->disk_key = strdup(disk_key);
    self->parent = parent ? strdup(parent) : NULL;
    self->digests = calloc(self->count ? self->count : 1, sizeof *self->digests);
    if (!self->disk_key || (parent && !self->parent) || !self->digests)
        goto nomem;
    return self;
nomem:
    vb_index_destroy(&self);
    vb_error_set(VB_ENOMEM, "out of memory for an index of %" PRIu64 " bytes", capacity);
    return NULL;
}

void vb_index_destroy(vb_index_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_index_t *self = *self_p;
    free(self->disk_key);
    free(self->parent);
    free(self->digests);
    free(self);
    *self_p = NULL;
}

uint32_t vb_index_chunk_len(const vb_index_t *self, uint64_t i)
{
    uint64_t off = i * self->chunk_size;
    if (off >= self->capacity)
        return 0;
    uint64_t rest = self->capacity - off;
    return rest < self->chunk_size ? (uint32_t)rest : self->chunk_size;
}

int vb_index_build(const vb_index_t *parent, const char *parent_name, const char *disk_key,
                   uint64_t capacity, uint32_t chunk_size, const vb_chunk_result_t *results,
                   size_t result_count, vb_index_t **out)
{
    *out = NULL;
    if (parent && parent->chunk_size != chunk_size)
        return vb_error_set(VB_EINVAL,
                            "index: parent has chunk size %" PRIu32 ", this backup %" PRIu32,
                            parent->chunk_size, chunk_size);
    vb_index_t *idx = vb_index_new(disk_key, capacity, chunk_size, parent_name);
    if (!idx)
        return vb_error_code();
    /* When the disk size changed, the parent's last chunk had another length: its digest cannot
     * be inherited, so this backup must have re-read that chunk. */
    uint64_t stale = UINT64_MAX;
    if (parent) {
        uint64_t n = parent->count < idx->count ? parent->count : idx->count;
        memcpy(idx->digests, parent->digests, n * sizeof *idx->digests);
        if (n > 0 && vb_index_chunk_len(parent, n - 1) != vb_index_chunk_len(idx, n - 1) &&
            !vb_digest_is_zero(&idx->digests[n - 1]))
            stale = n - 1;
    }
    for (size_t i = 0; i < result_count; i++) {
        uint64_t off = results[i].offset;
        if (off % chunk_size || off >= capacity) {
            vb_index_destroy(&idx);
            return vb_error_set(VB_EINVAL,
                                "index: chunk result at offset %" PRIu64
                                " is not aligned to %" PRIu32 " or past the capacity %" PRIu64,
                                off, chunk_size, capacity);
        }
        idx->digests[off / chunk_size] = results[i].digest;
        if (off / chunk_size == stale)
            stale = UINT64_MAX;
    }
    if (stale != UINT64_MAX) {
        vb_index_destroy(&idx);
        return vb_error_set(VB_EINVAL,
                            "index: the disk size changed and the chunk at offset %" PRIu64
                            " was not re-read",
                            stale * chunk_size);
    }
    *out = idx;
    return 0;
}

int vb_index_check_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > VB_INDEX_NAME_MAX || name[0] == '.')
        return vb_error_set(VB_EINVAL, "index name '%s': 1..%d characters, not starting with '.'",
                            name ? name : "", VB_INDEX_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return vb_error_set(VB_EINVAL, "index name '%s': only letters, digits, '.', '_', '-'",
                                name);
    }
    return 0;
}

static void s_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t s_get(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Writes `len` bytes to f and into the running checksum. */
static int s_emit(FILE *f, EVP_MD_CTX *md, const void *buf, size_t len)
{
    if (len && fwrite(buf, 1, len, f) != len)
        return -1;
    return EVP_DigestUpdate(md, buf, len) == 1 ? 0 : -1;
}

static int s_write_body(FILE *f, EVP_MD_CTX *md, const vb_index_t *index)
{
    uint8_t fixed[S_FIXED_LEN], len2[2], sum[EVP_MAX_MD_SIZE];
    unsigned sum_len = 0;
    memcpy(fixed, S_MAGIC, 8);
    s_le(fixed + 8, VB_INDEX_FORMAT_VERSION, 4);
    s_le(fixed + 12, index->chunk_size, 4);
    s_le(fixed + 16, index->capacity, 8);
    s_le(fixed + 24, index->count, 8);
    size_t klen = strlen(index->disk_key), plen = index->parent ? strlen(index->parent) : 0;
    if (EVP_DigestInit_ex2(md, EVP_sha256(), NULL) != 1 || s_emit(f, md, fixed, sizeof fixed))
        return -1;
    s_le(len2, klen, 2);
    if (s_emit(f, md, len2, 2) || s_emit(f, md, index->disk_key, klen))
        return -1;
    s_le(len2, plen, 2);
    if (s_emit(f, md, len2, 2) || s_emit(f, md, index->parent, plen))
        return -1;
    if (s_emit(f, md, index->digests, index->count * sizeof *index->digests))
        return -1;
    if (EVP_DigestFinal_ex(md, sum, &sum_len) != 1 || fwrite(sum, 1, sum_len, f) != sum_len)
        return -1;
    return fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -1;
}

int vb_index_write(vb_repo_t *repo, const char *name, const vb_index_t *index)
{
    char tmp[4096], dst[4096], dir[4096];
    int rc = vb_index_check_name(name);
    if (rc)
        return rc;
    if (index->chunk_size != vb_repo_chunk_size(repo))
        return vb_error_set(VB_EINVAL, "index %s: chunk size %" PRIu32 " is not the repository's",
                            name, index->chunk_size);
    /* An index must never name chunks that are not yet on stable storage. */
    if ((rc = vb_repo_sync(repo)) != 0)
        return rc;
    if (snprintf(dir, sizeof dir, "%s/indexes", vb_repo_path(repo)) >= (int)sizeof dir - 256 ||
        snprintf(tmp, sizeof tmp, "%s/.tmp.%s.%ld", dir, name, (long)getpid()) >= (int)sizeof tmp ||
        snprintf(dst, sizeof dst, "%s/%s.idx", dir, name) >= (int)sizeof dst)
        return vb_error_set(VB_EINVAL, "repository path too long");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, VB_REPO_FILE_MODE);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fd >= 0 && !f)
        close(fd);
    if (!md || !f) {
        rc = vb_error_set(errno == ENOSPC ? VB_ENOSPC : VB_EIO, "repository %s: index %s: %s",
                          vb_repo_path(repo), name, strerror(errno));
        goto out;
    }
    int wr = s_write_body(f, md, index);
    int err = errno;
    if (fclose(f) != 0 && wr == 0) {
        wr = -1;
        err = errno;
    }
    f = NULL;
    if (wr != 0) {
        rc = vb_error_set(err == ENOSPC || err == EDQUOT ? VB_ENOSPC : VB_EIO,
                          "repository %s: writing index %s: %s", vb_repo_path(repo), name,
                          strerror(err));
        goto out;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rename(tmp, dst) != 0 || dfd < 0 || fsync(dfd) != 0) {
        rc = vb_error_set(VB_EIO, "repository %s: installing index %s: %s", vb_repo_path(repo),
                          name, strerror(errno));
    }
    if (dfd >= 0)
        close(dfd);
out:
    if (f)
        fclose(f);
    if (rc)
        unlink(tmp);
    EVP_MD_CTX_free(md);
    return rc;
}

static int s_read_exact(FILE *f, EVP_MD_CTX *md, void *buf, size_t len)
{
    if (len && fread(buf, 1, len, f) != len)
        return -1;
    return EVP_DigestUpdate(md, buf, len) == 1 ? 0 : -1;
}

static int s_read_string(FILE *f, EVP_MD_CTX *md, char **out)
{
    uint8_t len2[2];
    if (s_read_exact(f, md, len2, 2))
        return -1;
    size_t n = (size_t)s_get(len2, 2);
    char *s = malloc(n + 1);
    if (!s || s_read_exact(f, md, s, n)) {
        free(s);
        return -1;
    }
    s[n] = '\0';
    *out = s;
    return 0;
}

int vb_index_read_file(const char *path, vb_index_t **out)
{
    int rc = 0;
    uint8_t fixed[S_FIXED_LEN], sum[EVP_MAX_MD_SIZE], stored_sum[32];
    unsigned sum_len = 0;
    char *key = NULL, *parent = NULL;
    vb_index_t *idx = NULL;
    struct stat st;
    *out = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    FILE *f = fopen(path, "re");
    if (!f) {
        rc = vb_error_set(errno == ENOENT ? VB_ENOTFOUND : VB_EIO, "index %s: %s", path,
                          strerror(errno));
        goto out;
    }
    if (!md || EVP_DigestInit_ex2(md, EVP_sha256(), NULL) != 1 || fstat(fileno(f), &st) != 0) {
        rc = vb_error_set(VB_EIO, "index %s: cannot read", path);
        goto out;
    }
    if (s_read_exact(f, md, fixed, sizeof fixed) || memcmp(fixed, S_MAGIC, 8) != 0) {
        rc = vb_error_set(VB_ECORRUPT, "index %s: not a vbak index (bad magic or truncated)", path);
        goto out;
    }
    uint32_t version = (uint32_t)s_get(fixed + 8, 4);
    uint32_t chunk_size = (uint32_t)s_get(fixed + 12, 4);
    uint64_t capacity = s_get(fixed + 16, 8), count = s_get(fixed + 24, 8);
    if (version != VB_INDEX_FORMAT_VERSION) {
        rc = vb_error_set(VB_EUNSUPPORTED, "index %s has format version %" PRIu32
                          "; this vbak reads version %d", path, version, VB_INDEX_FORMAT_VERSION);
        goto out;
    }
    if (chunk_size == 0 || capacity > S_CAPACITY_MAX || count != s_count(capacity, chunk_size) ||
        (uint64_t)st.st_size < S_FIXED_LEN + count * VB_DIGEST_LEN + 36) {
        rc = vb_error_set(VB_ECORRUPT, "index %s: inconsistent header or truncated file", path);
        goto out;
    }
    if (s_read_string(f, md, &key) || s_read_string(f, md, &parent)) {
        rc = vb_error_set(VB_ECORRUPT, "index %s is truncated", path);
        goto out;
    }
    if (!(idx = vb_index_new(key, capacity, chunk_size, parent[0] ? parent : NULL))) {
        rc = vb_error_code();
        goto out;
    }
    if (s_read_exact(f, md, idx->digests, count * VB_DIGEST_LEN) ||
        fread(stored_sum, 1, sizeof stored_sum, f) != sizeof stored_sum || fgetc(f) != EOF) {
        rc = vb_error_set(VB_ECORRUPT, "index %s is truncated or has trailing bytes", path);
        goto out;
    }
    if (EVP_DigestFinal_ex(md, sum, &sum_len) != 1 || memcmp(sum, stored_sum, 32) != 0) {
        rc = vb_error_set(VB_ECORRUPT, "index %s: checksum mismatch (the file is damaged)", path);
        goto out;
    }
    *out = idx;
    idx = NULL;
out:
    if (f)
        fclose(f);
    EVP_MD_CTX_free(md);
    free(key);
    free(parent);
    vb_index_destroy(&idx);
    return rc;
}

int vb_index_read(vb_repo_t *repo, const char *name, vb_index_t **out)
{
    char path[4096];
    *out = NULL;
    int rc = vb_index_check_name(name);
    if (rc)
        return rc;
    if (snprintf(path, sizeof path, "%s/indexes/%s.idx", vb_repo_path(repo), name) >=
        (int)sizeof path)
        return vb_error_set(VB_EINVAL, "repository path too long");
    return vb_index_read_file(path, out);
}

int vb_index_remove(vb_repo_t *repo, const char *name)
{
    char path[4096], dir[4096];
    int rc = vb_index_check_name(name);
    if (rc)
        return rc;
    if (snprintf(dir, sizeof dir, "%s/indexes", vb_repo_path(repo)) >= (int)sizeof dir ||
        snprintf(path, sizeof path, "%s/%s.idx", dir, name) >= (int)sizeof path)
        return vb_error_set(VB_EINVAL, "repository path too long");
    if (unlink(path) != 0)
        return vb_error_set(errno == ENOENT ? VB_ENOTFOUND : VB_EIO, "index %s: %s", name,
                            strerror(errno));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int vb_index_list(vb_repo_t *repo, char ***names_out, size_t *count_out)
{
    char dir[4096];
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    *names_out = NULL;
    *count_out = 0;
    snprintf(dir, sizeof dir, "%s/indexes", vb_repo_path(repo));
    DIR *d = opendir(dir);
    if (!d)
        return vb_error_set(VB_EIO, "repository %s: indexes/: %s", vb_repo_path(repo),
                            strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= 4 || strcmp(e->d_name + len - 4, ".idx") != 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (!nn) {
                rc = vb_error_set(VB_ENOMEM, "out of memory");
                break;
            }
            names = nn;
            cap = ncap;
        }
        if (!(names[n] = strndup(e->d_name, len - 4))) {
            rc = vb_error_set(VB_ENOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc) {
        vb_index_list_free(names, n);
        return rc;
    }
    if (n)
        qsort(names, n, sizeof *names, s_cmp_names);
    *names_out = names;
    *count_out = n;
    return 0;
}

void vb_index_list_free(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}
