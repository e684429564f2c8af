#include "repo/idxobj.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "grow.h"
#include "log.h"
#include "repo/le.h"

#define S_MAGIC "VBCIDX1"
#define S_PREFIX "index/"
#define S_HEAD_LEN 16 /* magic 8, version 4, pack count 4 */
#define S_PACK_HEAD_LEN (VB_PACK_ID_LEN + 4)
#define S_ENTRY_LEN 48 /* digest 32, offset 8, length 4, raw length 4 */

struct vb_idxobj {
    uint8_t *buf; /* the object body being built, from its head on */
    size_t len, cap;
    uint32_t packs;
};

vb_idxobj_t *vb_idxobj_new(void)
{
    vb_idxobj_t *self = calloc(1, sizeof *self);
    if (!self)
        vb_error_set(VB_ENOMEM, "out of memory");
    return self;
}

void vb_idxobj_destroy(vb_idxobj_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->buf);
    free(*self_p);
    *self_p = NULL;
}

static int s_reserve(vb_idxobj_t *self, size_t more)
{
    size_t need = (self->len ? self->len : S_HEAD_LEN) + more + 32;
    if (need > VB_IDXOBJ_MAX)
        return vb_error_set(VB_ENOMEM, "index object past %u bytes", VB_IDXOBJ_MAX);
    if (need > self->cap) {
        size_t ncap = self->cap ? self->cap : 4096;
        while (ncap < need)
            ncap *= 2;
        uint8_t *n = realloc(self->buf, ncap);
        if (!n)
            return vb_error_set(VB_ENOMEM, "out of memory for an index object");
        self->buf = n;
        self->cap = ncap;
    }
    /* a builder written before and reused: its next object starts after the head again (the
     * buffer it kept may be large enough already) */
    if (self->len == 0)
        self->len = S_HEAD_LEN;
    return 0;
}

int vb_idxobj_add_pack(vb_idxobj_t *self, const vb_pack_id_t *id, const vb_pack_entry_t *entries,
                       size_t count)
{
    if (count > UINT32_MAX / S_ENTRY_LEN)
        return vb_error_set(VB_EINVAL, "index object: %zu chunks in one pack", count);
    int rc = s_reserve(self, S_PACK_HEAD_LEN + count * S_ENTRY_LEN);
    if (rc)
        return rc;
    uint8_t *p = self->buf + self->len;
    memcpy(p, id->b, VB_PACK_ID_LEN);
    vb_le_put(p + VB_PACK_ID_LEN, count, 4);
    p += S_PACK_HEAD_LEN;
    for (size_t i = 0; i < count; i++, p += S_ENTRY_LEN) {
        memcpy(p, entries[i].digest.b, VB_DIGEST_LEN);
        vb_le_put(p + 32, entries[i].offset, 8);
        vb_le_put(p + 40, entries[i].length, 4);
        vb_le_put(p + 44, entries[i].raw_len, 4);
    }
    self->len = (size_t)(p - self->buf);
    self->packs++;
    return 0;
}

int vb_idxobj_sealed(void *arg, const vb_pack_id_t *id, const vb_pack_entry_t *entries,
                     size_t count)
{
    return vb_idxobj_add_pack(arg, id, entries, count);
}

size_t vb_idxobj_packs(const vb_idxobj_t *self)
{
    return self->packs;
}

static void s_name(const uint8_t id[VB_PACK_ID_LEN], char out[VB_IDXOBJ_NAME_LEN])
{
    static const char digits[] = "0123456789abcdef";
    char *p = out + snprintf(out, VB_IDXOBJ_NAME_LEN, S_PREFIX);
    for (size_t i = 0; i < VB_PACK_ID_LEN; i++) {
        *p++ = digits[id[i] >> 4];
        *p++ = digits[id[i] & 15];
    }
    *p = '\0';
}

int vb_idxobj_write(vb_idxobj_t *self, vb_store_t *store, char name_out[VB_IDXOBJ_NAME_LEN])
{
    char name[VB_IDXOBJ_NAME_LEN];
    uint8_t id[VB_PACK_ID_LEN];
    unsigned n = 0;
    if (name_out)
        name_out[0] = '\0';
    if (self->packs == 0)
        return 0;
    /* packs first: an index object never names a pack that is not on stable storage */
    int rc = vb_store_barrier(store);
    if (rc)
        return rc;
    memcpy(self->buf, S_MAGIC, 8);
    vb_le_put(self->buf + 8, VB_IDXOBJ_FORMAT_VERSION, 4);
    vb_le_put(self->buf + 12, self->packs, 4);
    if (EVP_Digest(self->buf, self->len, self->buf + self->len, &n, EVP_sha256(), NULL) != 1 ||
        RAND_bytes(id, sizeof id) != 1)
        return vb_error_set(VB_EIO, "index object: SHA-256 or random bytes failed");
    s_name(id, name);
    if ((rc = vb_store_put(store, name, self->buf, self->len + 32, VB_STORE_DURABLE)) != 0)
        return rc;
    if (name_out)
        memcpy(name_out, name, VB_IDXOBJ_NAME_LEN);
    self->len = 0;
    self->packs = 0;
    return 0;
}

/* A set of pack ids: sorted once filled, then searched. */
typedef struct {
    vb_pack_id_t *ids;
    size_t n, cap;
} s_packset_t;

static int s_packset_add(s_packset_t *ps, const vb_pack_id_t *id)
{
    int rc = VB_GROW(ps->ids, ps->n, ps->cap, 64, "pack ids");
    if (rc == 0)
        ps->ids[ps->n++] = *id;
    return rc;
}

static int s_id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, VB_PACK_ID_LEN);
}

static void s_packset_sort(s_packset_t *ps)
{
    if (ps->n)
        qsort(ps->ids, ps->n, sizeof ps->ids[0], s_id_cmp);
}

static bool s_packset_has(const s_packset_t *ps, const vb_pack_id_t *id)
{
    return ps->n && bsearch(id, ps->ids, ps->n, sizeof ps->ids[0], s_id_cmp) != NULL;
}

/* Where the packs of an index object go: into ci (only those in `only`, when given), and their
 * ids into `seen` (when given). */
typedef struct {
    vb_chunkidx_t *ci;
    const s_packset_t *only;
    s_packset_t *seen;
} s_sink_t;

static int s_sink_pack(const s_sink_t *k, const vb_pack_id_t *id, const vb_pack_entry_t *ents,
                       size_t count)
{
    int rc = k->seen ? s_packset_add(k->seen, id) : 0;
    if (rc == 0 && k->ci && (!k->only || s_packset_has(k->only, id)))
        rc = vb_chunkidx_add_pack(k->ci, id, ents, count);
    return rc;
}

/* Hands the packs of one object body (checksum verified) to the sink. */
static int s_parse(const char *name, const uint8_t *b, size_t len, const s_sink_t *sink)
{
    size_t pos = S_HEAD_LEN, end = len - 32;
    uint32_t packs = (uint32_t)vb_le_get(b + 12, 4);
    vb_pack_entry_t *ents = NULL;
    int rc = 0;
    for (uint32_t k = 0; rc == 0 && k < packs; k++) {
        vb_pack_id_t id;
        if (pos + S_PACK_HEAD_LEN > end) {
            rc = vb_error_set(VB_ECORRUPT, "index object %s is truncated", name);
            break;
        }
        memcpy(id.b, b + pos, VB_PACK_ID_LEN);
        size_t count = (size_t)vb_le_get(b + pos + VB_PACK_ID_LEN, 4);
        pos += S_PACK_HEAD_LEN;
        if (count > (end - pos) / S_ENTRY_LEN) {
            rc = vb_error_set(VB_ECORRUPT, "index object %s is truncated", name);
            break;
        }
        vb_pack_entry_t *n = realloc(ents, (count ? count : 1) * sizeof *ents);
        if (!n) {
            rc = vb_error_set(VB_ENOMEM, "out of memory");
            break;
        }
        ents = n;
        for (size_t i = 0; i < count; i++, pos += S_ENTRY_LEN) {
            memcpy(ents[i].digest.b, b + pos, VB_DIGEST_LEN);
            ents[i].offset = vb_le_get(b + pos + 32, 8);
            ents[i].length = (uint32_t)vb_le_get(b + pos + 40, 4);
            ents[i].raw_len = (uint32_t)vb_le_get(b + pos + 44, 4);
        }
        rc = s_sink_pack(sink, &id, ents, count);
    }
    if (rc == 0 && pos != end)
        rc = vb_error_set(VB_ECORRUPT, "index object %s has trailing bytes", name);
    free(ents);
    return rc;
}

static int s_load_obj(vb_store_t *store, const char *name, const s_sink_t *sink)
{
    void *buf = NULL;
    size_t len = 0;
    uint8_t sum[32];
    unsigned n = 0;
    int rc = vb_store_get_alloc(store, name, VB_IDXOBJ_MAX, &buf, &len);
    if (rc)
        return rc;
    const uint8_t *b = buf;
    if (len < S_HEAD_LEN + 32 || memcmp(b, S_MAGIC, 8) != 0)
        rc = vb_error_set(VB_ECORRUPT, "index object %s: bad magic or truncated", name);
    else if (vb_le_get(b + 8, 4) != VB_IDXOBJ_FORMAT_VERSION)
        rc = vb_error_set(VB_EUNSUPPORTED, "index object %s has format version %" PRIu64, name,
                          vb_le_get(b + 8, 4));
    else if (EVP_Digest(b, len - 32, sum, &n, EVP_sha256(), NULL) != 1 ||
             memcmp(sum, b + len - 32, 32) != 0)
        rc = vb_error_set(VB_ECORRUPT, "index object %s: checksum mismatch", name);
    else
        rc = s_parse(name, b, len, sink);
    free(buf);
    return rc;
}

int vb_idxobj_load_one(vb_store_t *store, const char *name, vb_chunkidx_t *ci)
{
    s_sink_t sink = {.ci = ci};
    return s_load_obj(store, name, &sink);
}

typedef struct {
    vb_store_t *store;
    vb_chunkidx_t *ci;
    size_t objects;
} s_load_t;

static int s_load_visit(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)st;
    s_load_t *l = arg;
    int rc = vb_idxobj_load_one(l->store, name, l->ci);
    if (rc == 0)
        l->objects++;
    return rc;
}

/* ---------- through delete markers ---------- */

typedef struct {
    char **names;
    size_t n, cap;
} s_names_t;

typedef struct {
    vb_store_t *store;
    s_sink_t sink;
    s_packset_t packs;
    size_t objects;
} s_hidden_load_t;

static int s_note_pack_id(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)st;
    vb_pack_id_t id;
    if (vb_pack_parse_name(name, &id) != 0) {
        vb_error_clear();
        return 0; /* not a pack */
    }
    return s_packset_add(arg, &id);
}

/* The packs there are, visible or hidden by a delete marker (read through it by name). */
static int s_all_packs(vb_store_t *store, s_packset_t *ps)
{
    int rc = vb_store_list(store, "packs/", s_note_pack_id, ps);
    if (rc == 0)
        rc = vb_store_list_hidden(store, "packs/", s_note_pack_id, ps);
    s_packset_sort(ps);
    return rc;
}

static int s_load_hidden_visit(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)st;
    s_hidden_load_t *h = arg;
    int rc = s_load_obj(h->store, name, &h->sink);
    h->objects += rc == 0;
    return rc;
}

static int s_note_name(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)st;
    s_names_t *l = arg;
    int rc = VB_GROW(l->names, l->n, l->cap, 16, "hidden index objects");
    if (rc == 0 && !(l->names[l->n] = strdup(name)))
        rc = vb_error_set(VB_ENOMEM, "out of memory");
    l->n += rc == 0;
    return rc;
}

/* No index object is visible: every one may be hidden by delete markers (someone deleted the
 * repository's objects). The hidden ones are read, an entry kept only when its pack is there
 * (an index object GC merged away may name packs it has deleted since), so any location kept
 * is right. A store without hidden index objects (a directory, a new repository) costs one
 * listing of them and nothing more. */
static int s_load_hidden(vb_store_t *store, vb_chunkidx_t *ci, size_t *objects)
{
    s_hidden_load_t h = {.store = store, .sink = {.ci = ci}};
    s_names_t hidden = {0};
    int rc = vb_store_list_hidden(store, S_PREFIX, s_note_name, &hidden);
    if (rc == 0 && hidden.n)
        rc = s_all_packs(store, &h.packs);
    h.sink.only = &h.packs;
    for (size_t i = 0; rc == 0 && h.packs.n && i < hidden.n; i++)
        rc = s_load_hidden_visit(&h, hidden.names[i], NULL);
    if (rc == 0 && h.objects)
        VB_LOG_WARN("repo",
                    "chunk_index_hidden repo=%s index_objects=%zu packs=%zu (every index object "
                    "is hidden by a delete marker: read through them; vbak repo undelete "
                    "brings them back)",
                    vb_store_location(store), h.objects, h.packs.n);
    *objects += h.objects;
    for (size_t i = 0; i < hidden.n; i++)
        free(hidden.names[i]);
    free(hidden.names);
    free(h.packs.ids);
    return rc;
}

typedef struct {
    const s_packset_t *indexed;
    time_t young_since;
    uint64_t *count;
    s_packset_t young; /* unindexed packs written since young_since */
} s_unindexed_t;

static int s_note_unindexed(void *arg, const char *name, const vb_store_stat_t *st)
{
    s_unindexed_t *u = arg;
    vb_pack_id_t id;
    if (vb_pack_parse_name(name, &id) != 0) {
        vb_error_clear();
        return 0; /* not a pack */
    }
    if (s_packset_has(u->indexed, &id))
        return 0;
    if (st->mtime >= u->young_since)
        return s_packset_add(&u->young, &id);
    (*u->count)++;
    return 0;
}

/* The young unindexed packs a hidden index object names were committed (their index object was
 * deleted since): unindexed. The others are a writer's not yet committed: young. */
static int s_split_young(vb_store_t *store, const s_packset_t *young, uint64_t *count,
                         uint64_t *young_out)
{
    s_packset_t named = {0};
    s_hidden_load_t h = {.store = store, .sink = {.seen = &named}};
    int rc = vb_store_list_hidden(store, S_PREFIX, s_load_hidden_visit, &h);
    s_packset_sort(&named);
    for (size_t i = 0; rc == 0 && i < young->n; i++) {
        bool committed = s_packset_has(&named, &young->ids[i]);
        *count += committed;
        *young_out += !committed;
    }
    free(named.ids);
    return rc;
}

int vb_idxobj_unindexed_packs(vb_store_t *store, time_t young_since, uint64_t *count,
                              uint64_t *young)
{
    s_packset_t indexed = {0};
    s_hidden_load_t h = {.store = store, .sink = {.seen = &indexed}};
    s_unindexed_t u = {.indexed = &indexed, .young_since = young_since, .count = count};
    *count = *young = 0;
    int rc = vb_store_list(store, S_PREFIX, s_load_hidden_visit, &h);
    s_packset_sort(&indexed);
    if (rc == 0)
        rc = vb_store_list(store, "packs/", s_note_unindexed, &u);
    if (rc == 0 && u.young.n)
        rc = s_split_young(store, &u.young, count, young);
    free(indexed.ids);
    free(u.young.ids);
    return rc;
}

int vb_idxobj_load(vb_store_t *store, vb_chunkidx_t *ci, size_t *objects, bool *hidden)
{
    s_load_t l = {.store = store, .ci = ci};
    int rc = vb_store_list(store, S_PREFIX, s_load_visit, &l);
    bool from_hidden = false;
    if (rc == 0 && l.objects == 0) {
        rc = s_load_hidden(store, ci, &l.objects);
        from_hidden = l.objects > 0;
    }
    if (objects)
        *objects = l.objects;
    if (hidden)
        *hidden = from_hidden;
    if (rc == 0)
        vb_chunkidx_seal(ci);
    return rc;
}

/* ---------- repair ---------- */

typedef struct {
    vb_store_t *store;
    vb_idxobj_t *obj;
    vb_idxobj_repair_t *st;
    char **old; /* index objects there before the repair */
    size_t nold, capold;
} s_repair_t;

static int s_repair_pack(void *arg, const char *name, const vb_store_stat_t *s)
{
    (void)s;
    s_repair_t *r = arg;
    vb_pack_id_t id;
    vb_pack_entry_t *ents = NULL;
    size_t count = 0;
    if (vb_pack_parse_name(name, &id) != 0) {
        vb_error_clear();
        return 0; /* not a pack */
    }
    int rc = vb_pack_read_trailer(r->store, &id, &ents, &count);
    if (rc == VB_ENOTFOUND) { /* removed since it was listed */
        vb_error_clear();
        return 0;
    }
    if (rc == VB_ECORRUPT || rc == VB_EUNSUPPORTED) {
        VB_LOG_WARN("repo", "repair_bad_pack pack=%s error=\"%s\" (its chunks are lost)", name,
                    vb_error_msg());
        vb_error_clear();
        r->st->bad_packs++;
        return 0;
    }
    if (rc == 0)
        rc = vb_idxobj_add_pack(r->obj, &id, ents, count);
    free(ents);
    if (rc)
        return rc;
    r->st->packs++;
    r->st->chunks += count;
    /* one object per ~1 M chunks keeps each one well below VB_IDXOBJ_MAX */
    return r->obj->len > 48u * 1024u * 1024u ? vb_idxobj_write(r->obj, r->store, NULL) : 0;
}

static int s_note_old(void *arg, const char *name, const vb_store_stat_t *s)
{
    (void)s;
    s_repair_t *r = arg;
    int rc = VB_GROW(r->old, r->nold, r->capold, 16, "index objects (repair)");
    if (rc)
        return rc;
    if (!(r->old[r->nold] = strdup(name)))
        return vb_error_set(VB_ENOMEM, "out of memory");
    r->nold++;
    return 0;
}

int vb_idxobj_repair(vb_store_t *store, vb_idxobj_repair_t *out)
{
    vb_idxobj_repair_t st = {0};
    s_repair_t r = {.store = store, .st = &st};
    int rc = 0;
    if (!(r.obj = vb_idxobj_new()))
        return vb_error_code();
    if ((rc = vb_store_list(store, S_PREFIX, s_note_old, &r)) != 0 ||
        (rc = vb_store_list(store, "packs/", s_repair_pack, &r)) != 0 ||
        (rc = vb_idxobj_write(r.obj, store, NULL)) != 0)
        goto out;
    /* The new objects are durable: only now may the old ones go. */
    for (size_t i = 0; i < r.nold; i++) {
        int del = vb_store_remove_or_hide(store, r.old[i]);
        if (del == 0)
            st.removed++;
        else if (del != VB_ENOTFOUND && (rc = del) != 0)
            goto out;
        vb_error_clear();
    }
    rc = vb_store_barrier(store);
out:
    for (size_t i = 0; i < r.nold; i++)
        free(r.old[i]);
    free(r.old);
    vb_idxobj_destroy(&r.obj);
    if (out)
        *out = st;
    return rc;
}
