#include "repo/pack.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "repo/le.h"
#include "repo/packup.h"

#define S_MAGIC "VBPACK2"
#define S_PREFIX "packs/"
#define S_ENTRIES_MAX (VB_PACK_SIZE_MAX / 64) /* every image holds at least its header */

struct vb_pack_writer {
    vb_store_t *store;
    size_t target;
    vb_pack_sealed_fn sealed;
    void *arg;
    vb_packup_t *up; /* NULL: a seal puts the pack itself */
    uint8_t *buf;    /* images, then trailer and footer when sealing */
    size_t len, cap;
    vb_pack_entry_t *entries;
    size_t count, entries_cap;
    uint64_t packs, bytes;
};

vb_pack_writer_t *vb_pack_writer_new(vb_store_t *store, size_t target_size,
                                     vb_pack_sealed_fn sealed, void *arg)
{
    size_t target = target_size ? target_size : VB_PACK_SIZE_DEFAULT;
    if (target < VB_PACK_SIZE_MIN || target > VB_PACK_SIZE_MAX) {
        vb_error_set(VB_EINVAL, "pack size %zu: must be from 4 MiB to 128 MiB", target);
        return NULL;
    }
    vb_pack_writer_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    self->store = store;
    self->target = target;
    self->sealed = sealed;
    self->arg = arg;
    return self;
}

void vb_pack_writer_set_uploads(vb_pack_writer_t *self, vb_packup_t *up)
{
    self->up = up;
}

void vb_pack_writer_destroy(vb_pack_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_pack_writer_t *self = *self_p;
    vb_pack_buffer_release(self->buf, self->cap);
    free(self->entries);
    free(self);
    *self_p = NULL;
}

/* Grows *buf to hold at least `need` bytes (doubling; never past the hard limit). */
static int s_reserve(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    void *nb = realloc(*buf, ncap * elem);
    if (!nb)
        return vb_error_set(VB_ENOMEM, "out of memory for a pack");
    *buf = nb;
    *cap = ncap;
    return 0;
}

/* Pack buffers let go of are kept for the next pack, process-wide, up to S_POOL_MAX: a new
 * buffer costs a page fault and a zeroed page per 4 KiB as a pack fills it (measured: a quarter
 * of an agent's CPU in an incremental backup, each job's handle allocating its own). Kept
 * buffers are marked MADV_FREE: the kernel takes their pages back if memory runs short, and
 * otherwise the next pack fills them without a fault. */
#define S_POOL_MAX 4

static struct {
    pthread_mutex_t lock;
    void *buf[S_POOL_MAX];
    size_t cap[S_POOL_MAX];
    unsigned count;
} s_pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A pack buffer of `size` bytes: a kept one of that size, or a new one, aligned so that the
 * store may write the sealed pack past the page cache, and on huge pages where the kernel has
 * them (8 faults per 16 MiB instead of 4,096). */
static int s_alloc_pack_buffer(void **buf, size_t size)
{
    pthread_mutex_lock(&s_pool.lock);
    for (unsigned i = 0; i < s_pool.count; i++) {
        if (s_pool.cap[i] != size)
            continue;
        *buf = s_pool.buf[i];
        s_pool.count--;
        s_pool.buf[i] = s_pool.buf[s_pool.count];
        s_pool.cap[i] = s_pool.cap[s_pool.count];
        pthread_mutex_unlock(&s_pool.lock);
        return 0;
    }
    /* none of this size: one kept for another pack size (a repository closed since, most likely)
     * goes, so that buffers nothing will reuse do not stay */
    void *stale = s_pool.count ? s_pool.buf[--s_pool.count] : NULL;
    pthread_mutex_unlock(&s_pool.lock);
    free(stale);
    const size_t huge = 2u * 1024u * 1024u;
    if (posix_memalign(buf, size >= huge ? huge : 4096, size) != 0)
        return vb_error_set(VB_ENOMEM, "out of memory for a pack");
#ifdef MADV_HUGEPAGE
    if (size >= huge)
        (void)madvise(*buf, size / huge * huge, MADV_HUGEPAGE); /* advice: may be refused */
#endif
    return 0;
}

void vb_pack_buffer_release(void *buf, size_t cap)
{
    if (!buf)
        return;
    pthread_mutex_lock(&s_pool.lock);
    if (s_pool.count < S_POOL_MAX && cap % 4096 == 0) {
#ifdef MADV_FREE
        (void)madvise(buf, cap, MADV_FREE);
#endif
        s_pool.buf[s_pool.count] = buf;
        s_pool.cap[s_pool.count++] = cap;
        buf = NULL;
    }
    pthread_mutex_unlock(&s_pool.lock);
    free(buf);
}

int vb_pack_add(vb_pack_writer_t *self, const vb_digest_t *digest, const uint8_t *img,
                size_t img_len, uint32_t raw_len)
{
    int rc = 0;
    if (img_len == 0 || img_len > VB_PACK_SIZE_MAX / 2)
        return vb_error_set(VB_EINVAL, "pack: a chunk image of %zu bytes", img_len);
    if (self->len > 0 && self->len + img_len > self->target && (rc = vb_pack_seal(self)) != 0)
        return rc;
    void *buf = self->buf, *ents = self->entries;
    /* One allocation of a full pack with its trailer, not a doubling past it: every worker of
     * an agent holds one (untouched pages cost no memory until a pack fills them). */
    if (self->cap == 0) {
        size_t full = self->target + (self->target / 64 + 1) * VB_PACK_ENTRY_LEN +
                      VB_PACK_FOOTER_LEN;
        full = (full + 4095) & ~(size_t)4095;
        if ((rc = s_alloc_pack_buffer(&buf, full)) != 0)
            return rc;
        self->buf = buf;
        self->cap = full;
    }
    if ((rc = s_reserve(&buf, &self->cap, self->len + img_len, 1)) != 0)
        return rc;
    self->buf = buf;
    if ((rc = s_reserve(&ents, &self->entries_cap, self->count + 1, sizeof *self->entries)) != 0)
        return rc;
    self->entries = ents;
    memcpy(self->buf + self->len, img, img_len);
    self->entries[self->count++] = (vb_pack_entry_t){
        .digest = *digest, .offset = self->len, .length = (uint32_t)img_len, .raw_len = raw_len};
    self->len += img_len;
    return 0;
}

static int s_sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return vb_error_set(VB_EIO, "SHA-256 failed");
    return 0;
}

/* Appends trailer and footer to the images in self->buf. */
static int s_finish(vb_pack_writer_t *self, size_t *total)
{
    size_t tlen = self->count * VB_PACK_ENTRY_LEN;
    void *buf = self->buf;
    int rc = s_reserve(&buf, &self->cap, self->len + tlen + VB_PACK_FOOTER_LEN, 1);
    if (rc)
        return rc;
    self->buf = buf;
    uint8_t *t = self->buf + self->len;
    for (size_t i = 0; i < self->count; i++) {
        uint8_t *e = t + i * VB_PACK_ENTRY_LEN;
        memcpy(e, self->entries[i].digest.b, VB_DIGEST_LEN);
        vb_le_put(e + 32, self->entries[i].offset, 8);
        vb_le_put(e + 40, self->entries[i].length, 4);
        vb_le_put(e + 44, self->entries[i].raw_len, 4);
    }
    uint8_t *f = t + tlen;
    memcpy(f, S_MAGIC, 8);
    vb_le_put(f + 8, VB_PACK_FORMAT_VERSION, 4);
    vb_le_put(f + 12, self->count, 4);
    vb_le_put(f + 16, self->len, 8);
    if ((rc = s_sha256(t, tlen, f + 24)) != 0)
        return rc;
    *total = self->len + tlen + VB_PACK_FOOTER_LEN;
    return 0;
}

int vb_pack_seal(vb_pack_writer_t *self)
{
    vb_pack_id_t id;
    char name[VB_PACK_NAME_LEN];
    size_t total = 0, count = self->count;
    if (count == 0)
        return 0;
    int rc = s_finish(self, &total);
    if (rc)
        return rc;
    if (RAND_bytes(id.b, sizeof id.b) != 1)
        return vb_error_set(VB_EIO, "no random bytes for a pack id");
    vb_pack_name(&id, name);
    /* handed to the uploads (which give the writer a free buffer) or written */
    rc = self->up ? vb_packup_put(self->up, name, &self->buf, &self->cap, total)
                  : vb_store_put(self->store, name, self->buf, total, 0);
    if (rc)
        return rc;
    self->packs++;
    self->bytes += total;
    self->len = 0;
    self->count = 0;
    /* Listed only now: a pack the uploads refused is in no index object (the caller writes
     * one only once the uploads are done, and a failed one fails every later wait). */
    return self->sealed ? self->sealed(self->arg, &id, self->entries, count) : 0;
}

uint64_t vb_pack_writer_packs(const vb_pack_writer_t *self)
{
    return self->packs;
}

uint64_t vb_pack_writer_bytes(const vb_pack_writer_t *self)
{
    return self->bytes;
}

void vb_pack_name(const vb_pack_id_t *id, char out[VB_PACK_NAME_LEN])
{
    static const char digits[] = "0123456789abcdef";
    char hex[2 * VB_PACK_ID_LEN + 1];
    for (size_t i = 0; i < VB_PACK_ID_LEN; i++) {
        hex[2 * i] = digits[id->b[i] >> 4];
        hex[2 * i + 1] = digits[id->b[i] & 15];
    }
    hex[2 * VB_PACK_ID_LEN] = '\0';
    snprintf(out, VB_PACK_NAME_LEN, S_PREFIX "%.2s/%s", hex, hex);
}

static int s_hexval(char c)
{
    return (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

int vb_pack_parse_name(const char *name, vb_pack_id_t *out)
{
    size_t plen = sizeof S_PREFIX - 1;
    const char *hex = name + plen + 3;
    bool ok = strlen(name) == VB_PACK_NAME_LEN - 1 && strncmp(name, S_PREFIX, plen) == 0 &&
              name[plen + 2] == '/' && strncmp(name + plen, hex, 2) == 0;
    for (size_t i = 0; ok && i < 2 * VB_PACK_ID_LEN; i++) {
        int v = s_hexval(hex[i]);
        ok = v >= 0;
        if (i % 2 == 0)
            out->b[i / 2] = (uint8_t)(v << 4);
        else
            out->b[i / 2] |= (uint8_t)v;
    }
    return ok ? 0 : vb_error_set(VB_EINVAL, "'%s' is not a pack name", name);
}

/* Checks the footer against the pack's size; fills count and trailer offset. */
static int s_check_footer(const char *name, const uint8_t *f, uint64_t size, uint32_t *count,
                          uint64_t *toff)
{
    if (memcmp(f, S_MAGIC, 8) != 0)
        return vb_error_set(VB_ECORRUPT, "pack %s: no trailer (truncated or not a pack)", name);
    if (vb_le_get(f + 8, 4) != VB_PACK_FORMAT_VERSION)
        return vb_error_set(VB_EUNSUPPORTED, "pack %s has format version %" PRIu64, name,
                            vb_le_get(f + 8, 4));
    *count = (uint32_t)vb_le_get(f + 12, 4);
    *toff = vb_le_get(f + 16, 8);
    if (*count > S_ENTRIES_MAX ||
        *toff + (uint64_t)*count * VB_PACK_ENTRY_LEN + VB_PACK_FOOTER_LEN != size)
        return vb_error_set(VB_ECORRUPT, "pack %s: trailer does not match its size", name);
    return 0;
}

static int s_parse_entries(const char *name, const uint8_t *t, uint32_t count, uint64_t toff,
                           vb_pack_entry_t *out)
{
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = t + (size_t)i * VB_PACK_ENTRY_LEN;
        memcpy(out[i].digest.b, e, VB_DIGEST_LEN);
        out[i].offset = vb_le_get(e + 32, 8);
        out[i].length = (uint32_t)vb_le_get(e + 40, 4);
        out[i].raw_len = (uint32_t)vb_le_get(e + 44, 4);
        if (out[i].length == 0 || out[i].offset + out[i].length > toff)
            return vb_error_set(VB_ECORRUPT, "pack %s: entry %" PRIu32 " lies outside the pack",
                                name, i);
    }
    return 0;
}

int vb_pack_read_trailer(vb_store_t *store, const vb_pack_id_t *id, vb_pack_entry_t **entries,
                         size_t *count_out)
{
    char name[VB_PACK_NAME_LEN];
    uint8_t f[VB_PACK_FOOTER_LEN], sum[32];
    uint8_t *t = NULL;
    vb_pack_entry_t *out = NULL;
    vb_store_stat_t st;
    size_t got = 0;
    uint32_t count = 0;
    uint64_t toff = 0;
    *entries = NULL;
    *count_out = 0;
    vb_pack_name(id, name);
    int rc = vb_store_stat(store, name, &st);
    if (rc)
        return rc;
    if (st.size < VB_PACK_FOOTER_LEN)
        return vb_error_set(VB_ECORRUPT, "pack %s is truncated (%" PRIu64 " bytes)", name,
                            st.size);
    if ((rc = vb_store_get_range(store, name, st.size - VB_PACK_FOOTER_LEN, f, sizeof f, &got)) ||
        (rc = got == sizeof f ? 0 : vb_error_set(VB_ECORRUPT, "pack %s is truncated", name)) ||
        (rc = s_check_footer(name, f, st.size, &count, &toff)))
        return rc;
    size_t tlen = (size_t)count * VB_PACK_ENTRY_LEN;
    t = malloc(tlen ? tlen : 1);
    out = calloc(count ? count : 1, sizeof *out);
    if (!t || !out) {
        rc = vb_error_set(VB_ENOMEM, "out of memory for the trailer of pack %s", name);
        goto out;
    }
    if ((rc = vb_store_get_range(store, name, toff, t, tlen, &got)) != 0)
        goto out;
    if (got != tlen || (rc = s_sha256(t, tlen, sum)) != 0 || memcmp(sum, f + 24, 32) != 0) {
        rc = rc ? rc : vb_error_set(VB_ECORRUPT, "pack %s: trailer checksum mismatch", name);
        goto out;
    }
    if ((rc = s_parse_entries(name, t, count, toff, out)) != 0)
        goto out;
    *entries = out;
    *count_out = count;
    out = NULL;
out:
    free(t);
    free(out);
    return rc;
}
