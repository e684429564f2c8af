#include "repo/index.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "grow.h"
#include "repo/le.h"

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

/* Writes `len` bytes to f and into the running checksum. */
#define S_PREFIX "indexes/"
#define S_SUFFIX ".idx"
#define S_OBJ_LEN (sizeof S_PREFIX + VB_INDEX_NAME_MAX + sizeof S_SUFFIX)
#define S_HEAD_MAX (S_FIXED_LEN + 2 + S_KEY_MAX + 2 + S_KEY_MAX)

/* The store object of index `name`: indexes/NAME.idx. */
static int s_object(const char *name, char obj[S_OBJ_LEN])
{
    int rc = vb_index_check_name(name);
    if (rc == 0)
        snprintf(obj, S_OBJ_LEN, S_PREFIX "%s" S_SUFFIX, name);
    return rc;
}

/* Everything before the digests: fixed header, disk key, parent. Caller frees *out. */
static int s_encode_head(const vb_index_t *index, uint8_t **out, size_t *len)
{
    size_t klen = strlen(index->disk_key), plen = index->parent ? strlen(index->parent) : 0;
    size_t n = S_FIXED_LEN + 2 + klen + 2 + plen;
    uint8_t *h = malloc(n);
    if (!h)
        return vb_error_set(VB_ENOMEM, "out of memory");
    memcpy(h, S_MAGIC, 8);
    vb_le_put(h + 8, VB_INDEX_FORMAT_VERSION, 4);
    vb_le_put(h + 12, index->chunk_size, 4);
    vb_le_put(h + 16, index->capacity, 8);
    vb_le_put(h + 24, index->count, 8);
    vb_le_put(h + S_FIXED_LEN, klen, 2);
    memcpy(h + S_FIXED_LEN + 2, index->disk_key, klen);
    vb_le_put(h + S_FIXED_LEN + 2 + klen, plen, 2);
    if (plen)
        memcpy(h + S_FIXED_LEN + 4 + klen, index->parent, plen);
    *out = h;
    *len = n;
    return 0;
}

/* SHA-256 of head and digests: the index's trailing checksum. */
static int s_checksum(const uint8_t *head, size_t head_len, const vb_digest_t *digests,
                      uint64_t count, uint8_t sum[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned n = 0;
    int ok = md && EVP_DigestInit_ex2(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, head, head_len) == 1 &&
             EVP_DigestUpdate(md, digests, count * sizeof *digests) == 1 &&
             EVP_DigestFinal_ex(md, sum, &n) == 1 && n == 32;
    EVP_MD_CTX_free(md);
    return ok ? 0 : vb_error_set(VB_EIO, "SHA-256 failed");
}

int vb_index_write(vb_repo_t *repo, const char *name, const vb_index_t *index)
{
    char obj[S_OBJ_LEN];
    uint8_t *head = NULL, sum[32];
    size_t head_len = 0;
    int rc = s_object(name, obj);
    if (rc)
        return rc;
    if (index->chunk_size != vb_repo_chunk_size(repo))
        return vb_error_set(VB_EINVAL, "index %s: chunk size %" PRIu32 " is not the repository's",
                            name, index->chunk_size);
    /* An index must never name chunks that are not yet on stable storage, nor chunks of
     * packs hidden by delete markers (nothing renews their locks). */
    if ((rc = vb_repo_writable(repo)) != 0 || (rc = vb_repo_sync(repo)) != 0)
        return rc;
    if ((rc = s_encode_head(index, &head, &head_len)) != 0 ||
        (rc = s_checksum(head, head_len, index->digests, index->count, sum)) != 0)
        goto out;
    struct iovec iov[3] = {{head, head_len},
                           {index->digests, index->count * sizeof *index->digests},
                           {sum, sizeof sum}};
    rc = vb_store_putv(vb_repo_store(repo), obj, iov, 3, VB_STORE_REPLACE | VB_STORE_DURABLE);
    if (rc)
        rc = vb_error_prefix(rc, "repository %s: writing index %s", vb_repo_path(repo), name);
out:
    free(head);
    return rc;
}

/* Reads a length-prefixed string at *pos of head (head_len bytes). NULL when it does not fit. */
static char *s_take_string(const uint8_t *head, size_t head_len, size_t *pos)
{
    if (*pos + 2 > head_len)
        return NULL;
    size_t n = (size_t)vb_le_get(head + *pos, 2);
    if (*pos + 2 + n > head_len)
        return NULL;
    char *s = strndup((const char *)head + *pos + 2, n);
    *pos += 2 + n;
    return s;
}

/* Checks the fixed header; fills chunk size, capacity and count. */
static int s_check_fixed(const char *obj, const uint8_t *h, size_t got, uint32_t *chunk_size,
                         uint64_t *capacity, uint64_t *count)
{
    if (got < S_FIXED_LEN || memcmp(h, S_MAGIC, 8) != 0)
        return vb_error_set(VB_ECORRUPT, "index %s: not a vbak index (bad magic or truncated)",
                            obj);
    uint32_t version = (uint32_t)vb_le_get(h + 8, 4);
    *chunk_size = (uint32_t)vb_le_get(h + 12, 4);
    *capacity = vb_le_get(h + 16, 8);
    *count = vb_le_get(h + 24, 8);
    if (version != VB_INDEX_FORMAT_VERSION)
        return vb_error_set(VB_EUNSUPPORTED,
                            "index %s has format version %" PRIu32 "; this vbak reads version %d",
                            obj, version, VB_INDEX_FORMAT_VERSION);
    if (*chunk_size == 0 || *capacity > S_CAPACITY_MAX ||
        *count != s_count(*capacity, *chunk_size))
        return vb_error_set(VB_ECORRUPT, "index %s: inconsistent header", obj);
    return 0;
}

int vb_index_read(vb_repo_t *repo, const char *name, vb_index_t **out)
{
    char obj[S_OBJ_LEN];
    vb_store_t *store = vb_repo_store(repo);
    uint8_t *head = NULL, sum[32], stored_sum[32];
    char *key = NULL, *parent = NULL;
    vb_index_t *idx = NULL;
    vb_store_stat_t st;
    size_t got = 0, pos = S_FIXED_LEN;
    uint32_t chunk_size = 0;
    uint64_t capacity = 0, count = 0;
    *out = NULL;
    int rc = s_object(name, obj);
    if (rc || (rc = vb_store_stat(store, obj, &st)) != 0)
        return rc;
    if (!(head = malloc(S_HEAD_MAX)))
        return vb_error_set(VB_ENOMEM, "out of memory");
    if ((rc = vb_store_get_range(store, obj, 0, head, S_HEAD_MAX, &got)) != 0 ||
        (rc = s_check_fixed(obj, head, got, &chunk_size, &capacity, &count)) != 0)
        goto out;
    if (!(key = s_take_string(head, got, &pos)) || !(parent = s_take_string(head, got, &pos)) ||
        st.size != pos + count * VB_DIGEST_LEN + sizeof sum) {
        rc = vb_error_set(VB_ECORRUPT, "index %s is truncated or has trailing bytes", obj);
        goto out;
    }
    if (!(idx = vb_index_new(key, capacity, chunk_size, parent[0] ? parent : NULL))) {
        rc = vb_error_code();
        goto out;
    }
    size_t dlen = count * VB_DIGEST_LEN, g1 = 0, g2 = 0;
    if ((rc = vb_store_get_range(store, obj, pos, idx->digests, dlen, &g1)) != 0 ||
        (rc = vb_store_get_range(store, obj, pos + dlen, stored_sum, sizeof stored_sum, &g2)) !=
            0)
        goto out;
    if (g1 != dlen || g2 != sizeof stored_sum) {
        rc = vb_error_set(VB_ECORRUPT, "index %s is truncated", obj);
        goto out;
    }
    if ((rc = s_checksum(head, pos, idx->digests, count, sum)) != 0)
        goto out;
    if (memcmp(sum, stored_sum, sizeof sum) != 0) {
        rc = vb_error_set(VB_ECORRUPT, "index %s: checksum mismatch (the file is damaged)", obj);
        goto out;
    }
    *out = idx;
    idx = NULL;
out:
    free(head);
    free(key);
    free(parent);
    vb_index_destroy(&idx);
    return rc;
}

int vb_index_stat(vb_repo_t *repo, const char *name, vb_store_stat_t *st)
{
    char obj[S_OBJ_LEN];
    int rc = s_object(name, obj);
    return rc ? rc : vb_store_stat(vb_repo_store(repo), obj, st);
}

int vb_index_remove(vb_repo_t *repo, const char *name)
{
    char obj[S_OBJ_LEN];
    /* prune with the chunk index hidden by delete markers: refused as backups are (undelete
     * first), since what it sees listed is not what the hidden objects reference */
    int rc = vb_repo_writable(repo);
    if (rc == 0)
        rc = s_object(name, obj);
    if (rc == 0)
        rc = vb_store_remove_or_hide(vb_repo_store(repo), obj);
    if (rc == VB_ENOTFOUND)
        return vb_error_set(VB_ENOTFOUND, "index %s: no such index", name);
    /* A removed index that came back after a crash would keep its chunks alive: make it stick. */
    return rc ? rc : vb_repo_sync(repo);
}

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
    char **names;
    size_t n, cap;
} s_names_t;

static int s_collect(void *arg, const char *obj, const vb_store_stat_t *st)
{
    (void)st;
    s_names_t *l = arg;
    const char *rest = obj + sizeof S_PREFIX - 1;
    size_t len = strlen(rest);
    if (strchr(rest, '/') || len <= sizeof S_SUFFIX - 1 ||
        strcmp(rest + len - (sizeof S_SUFFIX - 1), S_SUFFIX) != 0)
        return 0;
    int rc = VB_GROW(l->names, l->n, l->cap, 16, "disk index names");
    if (rc)
        return rc;
    if (!(l->names[l->n] = strndup(rest, len - (sizeof S_SUFFIX - 1))))
        return vb_error_set(VB_ENOMEM, "out of memory");
    l->n++;
    return 0;
}

int vb_index_list(vb_repo_t *repo, char ***names_out, size_t *count_out)
{
    s_names_t l = {0};
    *names_out = NULL;
    *count_out = 0;
    int rc = vb_store_list(vb_repo_store(repo), S_PREFIX, s_collect, &l);
    if (rc) {
        vb_index_list_free(l.names, l.n);
        return rc;
    }
    if (l.n)
        qsort(l.names, l.n, sizeof *l.names, s_cmp_names);
    *names_out = l.names;
    *count_out = l.n;
    return 0;
}

void vb_index_list_free(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}
