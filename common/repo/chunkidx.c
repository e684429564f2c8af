#include "repo/chunkidx.h"

#include <stdlib.h>
#include <string.h>

#define S_KEY_LEN 12
#define S_BUCKETS 65536 /* by the digest's first two bytes: a look-up searches 1/65536 */

typedef struct {
    uint8_t key[S_KEY_LEN]; /* the digest's first bytes */
    uint32_t pack;          /* number in the pack table */
    uint32_t offset;
    uint32_t length;
} s_entry_t;

_Static_assert(sizeof(s_entry_t) == VB_CHUNKIDX_ENTRY_BYTES, "24 bytes per chunk");

typedef struct {
    uint8_t key[S_KEY_LEN];
    vb_pack_id_t pack;
} s_excluded_t;

struct vb_chunkidx {
    s_entry_t *entries;
    size_t count, cap;
    vb_pack_id_t *packs;
    size_t npacks, packs_cap;
    s_excluded_t *excluded; /* quarantined copies: few */
    size_t nexcluded, excluded_cap;
    size_t *bucket; /* S_BUCKETS + 1 starts once sealed */
    bool sorted;
};

vb_chunkidx_t *vb_chunkidx_new(void)
{
    vb_chunkidx_t *self = calloc(1, sizeof *self);
    if (!self)
        vb_error_set(VB_ENOMEM, "out of memory");
    else
        self->sorted = true;
    return self;
}

void vb_chunkidx_destroy(vb_chunkidx_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->entries);
    free((*self_p)->packs);
    free((*self_p)->bucket);
    free((*self_p)->excluded);
    free(*self_p);
    *self_p = NULL;
}

static int s_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap += ncap / 2; /* 1.5×: less slack than doubling at 40 M entries */
    void *n = realloc(*arr, ncap * elem);
    if (!n)
        return vb_error_set(VB_ENOMEM, "out of memory for a chunk index of %zu chunks", need);
    *arr = n;
    *cap = ncap;
    return 0;
}

int vb_chunkidx_reserve(vb_chunkidx_t *self, size_t chunks)
{
    if (chunks <= self->cap)
        return 0;
    s_entry_t *n = realloc(self->entries, chunks * sizeof *n);
    if (!n)
        return vb_error_set(VB_ENOMEM, "out of memory for a chunk index of %zu chunks", chunks);
    self->entries = n;
    self->cap = chunks;
    return 0;
}

int vb_chunkidx_add_pack(vb_chunkidx_t *self, const vb_pack_id_t *pack,
                         const vb_pack_entry_t *entries, size_t count)
{
    void *arr = self->packs;
    int rc = s_grow(&arr, &self->packs_cap, self->npacks + 1, sizeof *self->packs);
    if (rc)
        return rc;
    self->packs = arr;
    arr = self->entries;
    if ((rc = s_grow(&arr, &self->cap, self->count + count, sizeof *self->entries)) != 0)
        return rc;
    self->entries = arr;
    if (self->npacks >= UINT32_MAX)
        return vb_error_set(VB_ENOMEM, "chunk index: too many packs");
    uint32_t no = (uint32_t)self->npacks;
    self->packs[self->npacks++] = *pack;
    for (size_t i = 0; i < count; i++) {
        if (entries[i].offset > UINT32_MAX)
            return vb_error_set(VB_ECORRUPT, "chunk index: offset %llu past 4 GiB in a pack",
                                (unsigned long long)entries[i].offset);
        s_entry_t *e = &self->entries[self->count++];
        memcpy(e->key, entries[i].digest.b, S_KEY_LEN);
        e->pack = no;
        e->offset = (uint32_t)entries[i].offset;
        e->length = entries[i].length;
    }
    if (count)
        self->sorted = false;
    return 0;
}

int vb_chunkidx_exclude(vb_chunkidx_t *self, const vb_digest_t *digest, const vb_pack_id_t *pack)
{
    void *arr = self->excluded;
    int rc = s_grow(&arr, &self->excluded_cap, self->nexcluded + 1, sizeof *self->excluded);
    if (rc)
        return rc;
    self->excluded = arr;
    s_excluded_t *x = &self->excluded[self->nexcluded++];
    memcpy(x->key, digest->b, S_KEY_LEN);
    x->pack = *pack;
    self->sorted = false;
    return 0;
}

static bool s_is_excluded(const vb_chunkidx_t *self, const s_entry_t *e)
{
    for (size_t i = 0; i < self->nexcluded; i++)
        if (memcmp(self->excluded[i].key, e->key, S_KEY_LEN) == 0 &&
            memcmp(self->excluded[i].pack.b, self->packs[e->pack].b, VB_PACK_ID_LEN) == 0)
            return true;
    return false;
}

/* By key; equal keys by pack number, so the first added comes first (qsort is not stable). */
static int s_cmp(const void *a, const void *b)
{
    const s_entry_t *x = a, *y = b;
    int c = memcmp(x->key, y->key, S_KEY_LEN);
    if (c)
        return c;
    return x->pack < y->pack ? -1 : x->pack > y->pack;
}

void vb_chunkidx_seal(vb_chunkidx_t *self)
{
    if (self->sorted)
        return;
    qsort(self->entries, self->count, sizeof *self->entries, s_cmp);
    size_t w = 0;
    for (size_t r = 0; r < self->count; r++)
        if ((w == 0 || memcmp(self->entries[w - 1].key, self->entries[r].key, S_KEY_LEN) != 0) &&
            !(self->nexcluded && s_is_excluded(self, &self->entries[r])))
            self->entries[w++] = self->entries[r];
    self->count = w;
    self->sorted = true;
    if (!self->bucket && !(self->bucket = malloc((S_BUCKETS + 1) * sizeof *self->bucket)))
        return; /* look-ups search the whole array */
    size_t e = 0;
    for (size_t b = 0; b <= S_BUCKETS; b++) {
        while (e < self->count &&
               ((size_t)self->entries[e].key[0] << 8 | self->entries[e].key[1]) < b)
            e++;
        self->bucket[b] = e;
    }
}

bool vb_chunkidx_find(vb_chunkidx_t *self, const vb_digest_t *digest, vb_chunkidx_loc_t *out)
{
    vb_chunkidx_seal(self);
    size_t lo = 0, hi = self->count;
    if (self->bucket) {
        size_t b = (size_t)digest->b[0] << 8 | digest->b[1];
        lo = self->bucket[b];
        hi = self->bucket[b + 1];
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(self->entries[mid].key, digest->b, S_KEY_LEN);
        if (c == 0) {
            const s_entry_t *e = &self->entries[mid];
            out->pack = self->packs[e->pack];
            out->offset = e->offset;
            out->length = e->length;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

size_t vb_chunkidx_count(const vb_chunkidx_t *self)
{
    return self->count;
}

size_t vb_chunkidx_memory(const vb_chunkidx_t *self)
{
    return sizeof *self + self->cap * sizeof *self->entries +
           self->packs_cap * sizeof *self->packs +
           (self->bucket ? (S_BUCKETS + 1) * sizeof *self->bucket : 0);
}
