#include "repo/readahead.h"

#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "repo/chunkidx.h"
#include "repo/pack.h"

/* One image the last load asked for: where it is in its pack and, once read, in buf. */
typedef struct {
    vb_digest_t digest;
    vb_chunkidx_loc_t loc;
    size_t at; /* offset in buf */
    bool held; /* read: buf[at .. at + loc.length) is the image */
} s_item_t;

struct vb_readahead {
    vb_packed_t *packed;
    s_item_t *items;
    size_t count, cap;
    uint8_t *buf;
    size_t buf_cap;
    size_t next; /* where the next take looks first (takes come in pack order, as loaded) */
    uint64_t reads;
};

vb_readahead_t *vb_readahead_new(vb_packed_t *packed)
{
    vb_readahead_t *self = calloc(1, sizeof *self);
    if (!self)
        vb_error_set(VB_ENOMEM, "out of memory");
    else
        self->packed = packed;
    return self;
}

void vb_readahead_destroy(vb_readahead_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->items);
    free((*self_p)->buf);
    free(*self_p);
    *self_p = NULL;
}

/* By pack, then offset in it. */
static int s_cmp(const void *a, const void *b)
{
    const s_item_t *x = a, *y = b;
    int c = memcmp(x->loc.pack.b, y->loc.pack.b, VB_PACK_ID_LEN);
    if (c)
        return c;
    return x->loc.offset < y->loc.offset ? -1 : x->loc.offset > y->loc.offset;
}

static bool s_reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    void *n = realloc(*arr, need * elem);
    if (!n)
        return false;
    *arr = n;
    *cap = need;
    return true;
}

/* Looks every digest up; keeps those the index holds, sorted by pack and offset. */
static void s_locate(vb_readahead_t *self, const vb_digest_t *digests, size_t n)
{
    self->count = 0;
    if (!s_reserve((void **)&self->items, &self->cap, n, sizeof *self->items))
        return; /* no read-ahead: every chunk is read the ordinary way */
    for (size_t i = 0; i < n; i++) {
        s_item_t *it = &self->items[self->count];
        if (!vb_packed_locate(self->packed, &digests[i], &it->loc))
            continue;
        it->digest = digests[i];
        it->held = false;
        self->count++;
    }
    qsort(self->items, self->count, sizeof *self->items, s_cmp);
}

/* Where the ranged read of a run that starts at pack offset `offset` begins: runs are read as
 * whole blocks into an aligned buffer, so a local store reads them past the page cache. */
static uint64_t s_block_start(uint64_t offset)
{
    return offset & ~(uint64_t)(VB_DIRECT_ALIGN - 1);
}

/* The end of the run that starts at item `first`: items [first, end) are read as one ranged
 * read of *span bytes (whole blocks) from s_block_start of the first item's offset. */
static size_t s_run_end(const vb_readahead_t *self, size_t first, size_t *span)
{
    const s_item_t *a = &self->items[first];
    uint64_t end = (uint64_t)a->loc.offset + a->loc.length;
    size_t i = first + 1;
    for (; i < self->count; i++) {
        const s_item_t *b = &self->items[i];
        uint64_t b_end = (uint64_t)b->loc.offset + b->loc.length;
        if (memcmp(a->loc.pack.b, b->loc.pack.b, VB_PACK_ID_LEN) != 0 ||
            b->loc.offset > end + VB_READAHEAD_GAP ||
            (b_end > end && b_end - a->loc.offset > VB_READAHEAD_RUN_MAX))
            break;
        if (b_end > end)
            end = b_end;
    }
    end = (end + VB_DIRECT_ALIGN - 1) & ~(uint64_t)(VB_DIRECT_ALIGN - 1);
    *span = (size_t)(end - s_block_start(a->loc.offset));
    return i;
}

/* Reads items [first, end) (span bytes) with one ranged read at buf + at; marks what arrived
 * whole. */
static void s_read_run(vb_readahead_t *self, size_t first, size_t end, size_t span, size_t at)
{
    uint64_t start = s_block_start(self->items[first].loc.offset);
    char name[VB_PACK_NAME_LEN];
    vb_pack_name(&self->items[first].loc.pack, name);
    size_t got = 0;
    self->reads++;
    if (vb_store_get_range(vb_packed_store(self->packed), name, start, self->buf + at, span,
                           &got) != 0) {
        vb_error_clear(); /* the ordinary read of each chunk names the problem */
        return;
    }
    for (size_t i = first; i < end; i++) {
        s_item_t *it = &self->items[i];
        it->at = at + (it->loc.offset - start);
        it->held = (uint64_t)it->loc.offset + it->loc.length <= start + got;
    }
}

void vb_readahead_load(vb_readahead_t *self, const vb_digest_t *digests, size_t n)
{
    s_locate(self, digests, n);
    self->next = 0;
    size_t total = 0, span = 0;
    for (size_t first = 0; first < self->count; total += span) /* room for every run first */
        first = s_run_end(self, first, &span);
    if (total > self->buf_cap) { /* what it held is spent: grown without copying that over */
        free(self->buf);
        void *buf = NULL;
        self->buf = posix_memalign(&buf, VB_DIRECT_ALIGN, total) == 0 ? buf : NULL;
        self->buf_cap = self->buf ? total : 0;
    }
    if (total > self->buf_cap) {
        self->count = 0;
        return;
    }
    size_t at = 0;
    for (size_t first = 0, end; first < self->count; first = end, at += span) {
        end = s_run_end(self, first, &span);
        s_read_run(self, first, end, span, at);
    }
}

bool vb_readahead_take(vb_readahead_t *self, const vb_digest_t *digest, uint8_t **img, size_t *len)
{
    for (size_t k = 0; k < self->count; k++) {
        size_t i = (self->next + k) % self->count;
        const s_item_t *it = &self->items[i];
        if (!it->held || memcmp(it->digest.b, digest->b, VB_DIGEST_LEN) != 0)
            continue;
        *img = self->buf + it->at;
        *len = it->loc.length;
        self->next = i + 1;
        return true;
    }
    return false;
}

uint64_t vb_readahead_reads(const vb_readahead_t *self)
{
    return self->reads;
}
