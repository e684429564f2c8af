/* Format 2's building blocks: pack objects (pack.h) and the in-memory chunk index
 * (chunkidx.h). */
#include <pthread.h>
#include <stdatomic.h>

#include "repo/chunkidx.h"
#include "repo/pack.h"
#include "repo/packup.h"
#include "repo/undelete.h"

#include "repo_testutil.h"

#define S_CHUNK (1u << 20)
#define S_TARGET (4u << 20)

typedef struct {
    vb_pack_id_t ids[16];
    vb_pack_entry_t entries[16][16];
    size_t counts[16];
    size_t packs;
} s_sealed_t;

static int s_on_sealed(void *arg, const vb_pack_id_t *id, const vb_pack_entry_t *entries,
                       size_t count)
{
    s_sealed_t *s = arg;
    cr_assert_lt(s->packs, 16);
    cr_assert_leq(count, 16);
    s->ids[s->packs] = *id;
    memcpy(s->entries[s->packs], entries, count * sizeof *entries);
    s->counts[s->packs++] = count;
    return 0;
}

static char *s_dir;

static vb_repo_t *s_make_repo(bool encrypted)
{
    char path[4096], key[4096];
    s_dir = tu_tmpdir();
    snprintf(path, sizeof path, "%s/r", s_dir);
    snprintf(key, sizeof key, "%s/key", s_dir);
    tu_write_key(key, 5);
    vb_repo_params_t p = {.chunk_size = S_CHUNK, .compression_level = 3,
                          .key_file = encrypted ? key : NULL};
    cr_assert_eq(vb_repo_init(path, &p), 0, "%s", vb_error_msg());
    vb_repo_t *r = vb_repo_open(path, encrypted ? key : NULL);
    cr_assert_not_null(r, "%s", vb_error_msg());
    return r;
}

/* Nine 1 MiB chunks (incompressible, so each image is a little over 1 MiB) into 4 MiB packs:
 * three per pack. Every chunk reads back byte for byte from its pack through the trailer alone,
 * in a plain and in an encrypted repository. */
Test(pack, chunks_seal_into_packs_and_read_back_through_the_trailer)
{
    for (int enc = 0; enc < 2; enc++) {
        vb_repo_t *r = s_make_repo(enc);
        vb_repo_worker_t *w = vb_repo_worker_new(r);
        s_sealed_t sealed = {0};
        vb_pack_writer_t *pw =
            vb_pack_writer_new(vb_repo_store(r), S_TARGET, s_on_sealed, &sealed);
        cr_assert_not_null(pw, "%s", vb_error_msg());
        uint8_t *data = malloc(S_CHUNK), *out = malloc(S_CHUNK);
        vb_digest_t d[9];
        for (int i = 0; i < 9; i++) {
            const uint8_t *img = NULL;
            size_t img_len = 0;
            tu_fill_random(data, S_CHUNK, 40 + (uint64_t)i);
            cr_assert_eq(vb_repo_digest(w, data, S_CHUNK, &d[i]), 0);
            cr_assert_eq(vb_repo_chunk_encode(w, &d[i], data, S_CHUNK, &img, &img_len), 0, "%s",
                         vb_error_msg());
            cr_assert_eq(vb_pack_add(pw, &d[i], img, img_len, S_CHUNK), 0, "%s",
                         vb_error_msg());
        }
        cr_assert_eq(sealed.packs, 2, "two packs sealed on size, the third still open");
        cr_assert_eq(vb_pack_seal(pw), 0, "%s", vb_error_msg());
        cr_assert_eq(vb_pack_seal(pw), 0, "sealing an empty pack does nothing");
        cr_assert_eq(sealed.packs, 3);
        cr_assert_eq(vb_pack_writer_packs(pw), 3);
        cr_assert(vb_pack_writer_bytes(pw) > 9ull * S_CHUNK);

        size_t n = 0;
        for (size_t p = 0; p < sealed.packs; p++) {
            vb_pack_entry_t *ents = NULL;
            size_t count = 0;
            cr_assert_eq(vb_pack_read_trailer(vb_repo_store(r), &sealed.ids[p], &ents, &count),
                         0, "%s", vb_error_msg());
            cr_assert_eq(count, 3);
            cr_assert_eq(memcmp(ents, sealed.entries[p], count * sizeof *ents), 0,
                         "the trailer lists what the writer reported");
            char name[VB_PACK_NAME_LEN];
            vb_pack_name(&sealed.ids[p], name);
            for (size_t i = 0; i < count; i++, n++) {
                uint8_t *img = malloc(ents[i].length);
                size_t got = 0, len = 0;
                cr_assert_eq(vb_store_get_range(vb_repo_store(r), name, ents[i].offset, img,
                                                ents[i].length, &got),
                             0);
                cr_assert_eq(got, ents[i].length);
                cr_assert_eq(memcmp(ents[i].digest.b, d[n].b, VB_DIGEST_LEN), 0, "in order");
                cr_assert_eq(vb_repo_chunk_decode(w, &ents[i].digest, img, got, out, S_CHUNK,
                                                  &len),
                             0, "%s", vb_error_msg());
                tu_fill_random(data, S_CHUNK, 40 + (uint64_t)n);
                cr_assert_eq(len, S_CHUNK);
                cr_assert_eq(memcmp(out, data, S_CHUNK), 0, "chunk %zu restored byte for byte",
                             n);
                free(img);
            }
            free(ents);
        }
        cr_assert_eq(n, 9);
        free(data);
        free(out);
        vb_pack_writer_destroy(&pw);
        vb_pack_writer_destroy(&pw);
        vb_repo_worker_destroy(&w);
        vb_repo_destroy(&r);
        tu_rmrf(s_dir);
    }
}

/* A truncated pack, a pack whose trailer was damaged, and a pack deleted: each is named, none is
 * trusted. */
Test(pack, damaged_packs_are_refused)
{
    vb_repo_t *r = s_make_repo(false);
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    s_sealed_t sealed = {0};
    vb_pack_writer_t *pw = vb_pack_writer_new(vb_repo_store(r), 0, s_on_sealed, &sealed);
    uint8_t data[8192];
    for (int i = 0; i < 3; i++) {
        vb_digest_t d;
        const uint8_t *img = NULL;
        size_t img_len = 0;
        tu_fill_random(data, sizeof data, 7 + (uint64_t)i);
        cr_assert_eq(vb_repo_digest(w, data, sizeof data, &d), 0);
        cr_assert_eq(vb_repo_chunk_encode(w, &d, data, sizeof data, &img, &img_len), 0);
        cr_assert_eq(vb_pack_add(pw, &d, img, img_len, sizeof data), 0);
    }
    cr_assert_eq(vb_pack_seal(pw), 0, "%s", vb_error_msg());
    cr_assert_eq(sealed.packs, 1, "one pack below the default 16 MiB");
    char name[VB_PACK_NAME_LEN], path[4096];
    vb_pack_name(&sealed.ids[0], name);
    cr_assert_eq(vb_store_local_path(vb_repo_store(r), name, path, sizeof path), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    vb_pack_entry_t *ents = NULL;
    size_t count = 0;

    tu_flip_byte(path, (uint64_t)st.st_size - VB_PACK_FOOTER_LEN - 5); /* in the trailer */
    cr_assert_eq(vb_pack_read_trailer(vb_repo_store(r), &sealed.ids[0], &ents, &count),
                 VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "checksum"), "%s", vb_error_msg());
    cr_assert(strstr(vb_error_msg(), name), "names the pack: %s", vb_error_msg());

    cr_assert_eq(truncate(path, st.st_size - 100), 0);
    cr_assert_eq(vb_pack_read_trailer(vb_repo_store(r), &sealed.ids[0], &ents, &count),
                 VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "truncated or not a pack"), "%s", vb_error_msg());
    cr_assert_null(ents);

    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(vb_pack_read_trailer(vb_repo_store(r), &sealed.ids[0], &ents, &count),
                 VB_ENOTFOUND);
    vb_pack_writer_destroy(&pw);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    tu_rmrf(s_dir);
}

Test(pack, names_and_sizes)
{
    vb_pack_id_t id, back;
    for (size_t i = 0; i < sizeof id.b; i++)
        id.b[i] = (uint8_t)(0xa0 + i);
    char name[VB_PACK_NAME_LEN];
    vb_pack_name(&id, name);
    cr_assert_str_eq(name, "packs/a0/a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    cr_assert_eq(vb_store_check_name(name), 0);
    cr_assert_eq(vb_pack_parse_name(name, &back), 0);
    cr_assert_eq(memcmp(&id, &back, sizeof id), 0);
    static const char *bad[] = {"packs/a1/a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
                                "packs/a0/a0a1a2a3a4a5a6a7a8a9aaabacadaeaX",
                                "packs/a0/a0a1a2a3a4a5a6a7a8a9aaabacadae",
                                "chunks/a0/a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", "packs/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(vb_pack_parse_name(bad[i], &back), VB_EINVAL, "%s", bad[i]);
    cr_assert_null(vb_pack_writer_new(NULL, 1u << 20, NULL, NULL), "below 4 MiB");
    cr_assert_null(vb_pack_writer_new(NULL, 256u << 20, NULL, NULL), "above 128 MiB");
}

static void s_entry(vb_pack_entry_t *e, uint64_t seed, uint64_t off)
{
    tu_fill_random(e->digest.b, VB_DIGEST_LEN, seed);
    e->offset = off;
    e->length = 1000 + (uint32_t)seed;
    e->raw_len = 4096;
}

Test(chunkidx, finds_every_chunk_where_its_pack_put_it)
{
    vb_chunkidx_t *ci = vb_chunkidx_new();
    vb_pack_id_t p1 = {{1}}, p2 = {{2}};
    vb_pack_entry_t a[3], b[2];
    for (int i = 0; i < 3; i++)
        s_entry(&a[i], 100 + (uint64_t)i, (uint64_t)i * 5000);
    s_entry(&b[0], 200, 0);
    s_entry(&b[1], 101, 7000); /* a[1]'s chunk again: a spare copy from a racing agent */
    cr_assert_eq(vb_chunkidx_reserve(ci, 5), 0);
    size_t mem = vb_chunkidx_memory(ci);
    cr_assert_eq(vb_chunkidx_add_pack(ci, &p1, a, 3), 0);
    cr_assert_eq(vb_chunkidx_add_pack(ci, &p2, b, 2), 0);
    cr_assert_eq(vb_chunkidx_memory(ci) - mem, 1024 * sizeof(vb_pack_id_t),
                 "reserved entries: only the pack table grew");
    vb_chunkidx_loc_t loc;
    for (int i = 0; i < 3; i++) {
        cr_assert(vb_chunkidx_find(ci, &a[i].digest, &loc));
        cr_assert_eq(memcmp(&loc.pack, &p1, sizeof p1), 0, "chunk %d: the first copy", i);
        cr_assert_eq(loc.offset, a[i].offset);
        cr_assert_eq(loc.length, a[i].length);
    }
    cr_assert(vb_chunkidx_find(ci, &b[0].digest, &loc));
    cr_assert_eq(memcmp(&loc.pack, &p2, sizeof p2), 0);
    cr_assert_eq(loc.offset, 0);
    cr_assert_eq(vb_chunkidx_count(ci), 4, "the spare copy is one chunk");
    vb_digest_t none;
    tu_fill_random(none.b, sizeof none.b, 999);
    cr_assert(!vb_chunkidx_find(ci, &none, &loc));
    vb_chunkidx_destroy(&ci);
    vb_chunkidx_destroy(&ci);
}

/* Enough chunks that every first-two-bytes bucket boundary is crossed many times. */
Test(chunkidx, many_chunks_all_found_none_invented)
{
    enum { N = 200000, PER = 64 };
    vb_chunkidx_t *ci = vb_chunkidx_new();
    vb_pack_entry_t *e = calloc(N, sizeof *e);
    for (size_t i = 0; i < N; i++)
        s_entry(&e[i], 1000 + i, i % PER * 4096);
    for (size_t i = 0; i < N; i += PER) {
        vb_pack_id_t id = {{(uint8_t)i, (uint8_t)(i >> 8), (uint8_t)(i >> 16)}};
        cr_assert_eq(vb_chunkidx_add_pack(ci, &id, e + i, PER), 0);
    }
    cr_assert_eq(vb_chunkidx_count(ci), 0 + N, "%zu", vb_chunkidx_count(ci));
    vb_chunkidx_loc_t loc;
    for (size_t i = 0; i < N; i++) {
        cr_assert(vb_chunkidx_find(ci, &e[i].digest, &loc), "chunk %zu", i);
        cr_assert_eq(loc.pack.b[0], (uint8_t)(i - i % PER));
        cr_assert_eq(loc.offset, e[i].offset);
    }
    for (size_t i = 0; i < 1000; i++) {
        vb_digest_t none;
        tu_fill_random(none.b, sizeof none.b, 10000000 + i);
        cr_assert(!vb_chunkidx_find(ci, &none, &loc));
    }
    free(e);
    vb_chunkidx_destroy(&ci);
}

/* ---------- index objects: packs, then index; repair from the trailers ---------- */

#include "repo/idxobj.h"

#define S_SMALL 200000 /* chunk bytes: 21 of them pass a 4 MiB pack */

/* Stores `n` random chunks through a pack writer into 4 MiB packs, collecting the index object;
 * writes it. Returns the digests (caller frees). */
static vb_digest_t *s_store_chunks(vb_repo_t *r, vb_repo_worker_t *w, int n, uint64_t seed)
{
    vb_idxobj_t *obj = vb_idxobj_new();
    vb_pack_writer_t *pw = vb_pack_writer_new(vb_repo_store(r), S_TARGET, vb_idxobj_sealed, obj);
    vb_digest_t *d = calloc((size_t)n, sizeof *d);
    uint8_t *data = malloc(S_SMALL);
    for (int i = 0; i < n; i++) {
        const uint8_t *img = NULL;
        size_t img_len = 0;
        tu_fill_random(data, S_SMALL, seed + (uint64_t)i);
        cr_assert_eq(vb_repo_digest(w, data, S_SMALL, &d[i]), 0);
        cr_assert_eq(vb_repo_chunk_encode(w, &d[i], data, S_SMALL, &img, &img_len), 0);
        cr_assert_eq(vb_pack_add(pw, &d[i], img, img_len, S_SMALL), 0, "%s", vb_error_msg());
    }
    cr_assert_eq(vb_pack_seal(pw), 0, "%s", vb_error_msg());
    char name[VB_IDXOBJ_NAME_LEN];
    cr_assert_eq(vb_idxobj_write(obj, vb_repo_store(r), name), 0, "%s", vb_error_msg());
    cr_assert(strncmp(name, "index/", 6) == 0, "%s", name);
    cr_assert_eq(vb_idxobj_write(obj, vb_repo_store(r), name), 0);
    cr_assert_str_eq(name, "", "nothing more to write");
    free(data);
    vb_pack_writer_destroy(&pw);
    vb_idxobj_destroy(&obj);
    return d;
}

/* How many of the chunks read back byte for byte through the index (get-range of the pack). */
static int s_restorable(vb_repo_t *r, vb_repo_worker_t *w, const vb_digest_t *d, int n,
                        uint64_t seed)
{
    vb_chunkidx_t *ci = vb_chunkidx_new();
    size_t objects = 0;
    cr_assert_eq(vb_idxobj_load(vb_repo_store(r), ci, &objects, NULL), 0, "%s", vb_error_msg());
    uint8_t *img = malloc(2 * S_SMALL), *out = malloc(S_SMALL), *want = malloc(S_SMALL);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        vb_chunkidx_loc_t loc;
        char pack[VB_PACK_NAME_LEN];
        size_t got = 0, len = 0;
        if (!vb_chunkidx_find(ci, &d[i], &loc))
            continue;
        vb_pack_name(&loc.pack, pack);
        cr_assert_eq(vb_store_get_range(vb_repo_store(r), pack, loc.offset, img, loc.length,
                                        &got),
                     0, "%s", vb_error_msg());
        cr_assert_eq(vb_repo_chunk_decode(w, &d[i], img, got, out, S_SMALL, &len), 0, "%s",
                     vb_error_msg());
        tu_fill_random(want, S_SMALL, seed + (uint64_t)i);
        cr_assert_eq(memcmp(out, want, S_SMALL), 0, "chunk %d", i);
        ok++;
    }
    free(img);
    free(out);
    free(want);
    vb_chunkidx_destroy(&ci);
    return ok;
}

static size_t s_count_objects(vb_repo_t *r, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", vb_repo_path(r), dir);
    return tu_count_files(path, "");
}

Test(idxobj, chunks_restore_through_index_objects_and_a_lost_index_is_repaired)
{
    vb_repo_t *r = s_make_repo(true);
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    vb_digest_t *a = s_store_chunks(r, w, 50, 1000), *b = s_store_chunks(r, w, 30, 2000);
    cr_assert_eq(s_count_objects(r, "packs"), 5, "50 chunks in 3 packs, 30 in 2");
    cr_assert_eq(s_count_objects(r, "index"), 2, "one index object per writer");
    cr_assert_eq(s_restorable(r, w, a, 50, 1000), 50);
    cr_assert_eq(s_restorable(r, w, b, 30, 2000), 30);

    /* every index object deleted: nothing is found, until repair rebuilds them from packs */
    char path[4096];
    snprintf(path, sizeof path, "%s/r/index", s_dir);
    tu_rmrf(strdup(path));
    cr_assert_eq(s_restorable(r, w, a, 50, 1000), 0);
    vb_idxobj_repair_t rep;
    cr_assert_eq(vb_idxobj_repair(vb_repo_store(r), &rep), 0, "%s", vb_error_msg());
    cr_assert_eq(rep.packs, 5);
    cr_assert_eq(rep.chunks, 80);
    cr_assert_eq(rep.bad_packs, 0);
    cr_assert_eq(rep.removed, 0);
    cr_assert_eq(s_restorable(r, w, a, 50, 1000), 50);
    cr_assert_eq(s_restorable(r, w, b, 30, 2000), 30);

    /* one pack truncated: repair says so, and recovers every chunk of the other packs */
    vb_chunkidx_t *ci = vb_chunkidx_new();
    cr_assert_eq(vb_idxobj_load(vb_repo_store(r), ci, NULL, NULL), 0);
    vb_chunkidx_loc_t loc;
    cr_assert(vb_chunkidx_find(ci, &b[0], &loc));
    vb_chunkidx_destroy(&ci);
    char pack[VB_PACK_NAME_LEN], pack_path[4096];
    vb_pack_name(&loc.pack, pack);
    cr_assert_eq(vb_store_local_path(vb_repo_store(r), pack, pack_path, sizeof pack_path), 0);
    cr_assert_eq(truncate(pack_path, 1000), 0);
    cr_assert_eq(vb_idxobj_repair(vb_repo_store(r), &rep), 0, "%s", vb_error_msg());
    cr_assert_eq(rep.packs, 4);
    cr_assert_eq(rep.bad_packs, 1);
    cr_assert_eq(rep.removed, 1, "the repair's own earlier object is replaced");
    cr_assert_eq(s_count_objects(r, "index"), 1);
    cr_assert_eq(s_restorable(r, w, a, 50, 1000), 50);
    int left = s_restorable(r, w, b, 30, 2000);
    cr_assert(left > 0 && left < 30, "the truncated pack's chunks are gone: %d left", left);
    free(a);
    free(b);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    tu_rmrf(s_dir);
}

Test(idxobj, a_damaged_index_object_is_named)
{
    vb_repo_t *r = s_make_repo(false);
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    vb_digest_t *a = s_store_chunks(r, w, 3, 5);
    char dir[4096], path[4096], obj[256];
    snprintf(dir, sizeof dir, "%s/r/index", s_dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)) && e->d_name[0] == '.')
        ;
    cr_assert_not_null(e);
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    snprintf(obj, sizeof obj, "index/%s", e->d_name);
    closedir(d);
    tu_flip_byte(path, 30);
    vb_chunkidx_t *ci = vb_chunkidx_new();
    cr_assert_eq(vb_idxobj_load(vb_repo_store(r), ci, NULL, NULL), VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "checksum mismatch"), "%s", vb_error_msg());
    cr_assert(strstr(vb_error_msg(), obj), "names %s: %s", obj, vb_error_msg());
    vb_chunkidx_destroy(&ci);
    free(a);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    tu_rmrf(s_dir);
}

/* ---------- uploads in flight (packup.h) ---------- */

/* Makes shard directory packs/XX unusable for every XX but `keep` (a regular file where the
 * directory would be: even root cannot write under it), so that 255 of 256 packs fail to
 * upload. */
static void s_block_shards_but(const char *repo, unsigned keep, bool block)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/packs", repo);
    mkdir(path, 0700);
    for (unsigned i = 0; i < 256; i++) {
        if (i == keep)
            continue;
        snprintf(path, sizeof path, "%s/packs/%02x", repo, i);
        if (block)
            tu_write_file(path, "x", 1);
        else
            unlink(path);
    }
}

static void s_block_pack_shards(const char *repo, bool block)
{
    s_block_shards_but(repo, 0, block);
}

static uint8_t *s_upload_buf(uint8_t fill)
{
    uint8_t *b = malloc(4096);
    cr_assert_not_null(b);
    memset(b, fill, 4096);
    return b;
}

/* The packup tests' set-up: a POSIX store in a fresh directory (its pack shards but 00 made
 * unusable when `block`), put delays of delay_us (0: none), and uploads in flight. */
typedef struct {
    vb_store_t *st;
    vb_packup_t *up;
} s_up_t;

static s_up_t s_up_open(unsigned in_flight, bool block, long delay_us)
{
    s_dir = tu_tmpdir();
    if (delay_us) {
        char v[32];
        snprintf(v, sizeof v, "%ld", delay_us);
        setenv("VBAK_TEST_STORE_DELAY_US", v, 1);
    }
    s_up_t u = {.st = vb_store_open(s_dir, false)};
    cr_assert_not_null(u.st, "%s", vb_error_msg());
    if (block)
        s_block_pack_shards(s_dir, true);
    u.up = vb_packup_new(u.st, in_flight);
    cr_assert_not_null(u.up, "%s", vb_error_msg());
    return u;
}

static void s_up_close(s_up_t *u)
{
    vb_packup_destroy(&u->up);
    vb_packup_destroy(&u->up);
    vb_store_destroy(&u->st);
    unsetenv("VBAK_TEST_STORE_DELAY_US");
    tu_rmrf(s_dir);
}

/* One 4096-byte put of bytes `fill` that must be taken; frees the buffer handed back. */
static void s_up_put(s_up_t *u, const char *name, uint8_t fill)
{
    uint8_t *buf = s_upload_buf(fill);
    size_t cap = 4096;
    cr_assert_eq(vb_packup_put(u->up, name, &buf, &cap, 4096), 0, "%s", vb_error_msg());
    cr_assert((buf == NULL) == (cap == 0), "a buffer handed back has its capacity");
    free(buf);
}

/* Six puts through four uploads in flight (each put slowed to 0.1 s): four run at once while
 * the caller goes on, each buffer handed back is one an upload finished with, and every object
 * reads back as put once wait returns. */
Test(packup, four_uploads_run_at_once_and_every_pack_is_written_when_wait_returns)
{
    s_up_t u = s_up_open(4, false, 100000);
    for (uint8_t i = 0; i < 6; i++) {
        char name[64];
        snprintf(name, sizeof name, "packs/00/p%u", i);
        s_up_put(&u, name, i);
    }
    cr_assert_eq(vb_packup_wait(u.up), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_packup_puts(u.up), 6);
    cr_assert_eq(vb_packup_peak(u.up), 4, "uploads at once: %u", vb_packup_peak(u.up));
    for (uint8_t i = 0; i < 6; i++) {
        char name[64];
        uint8_t back[4096];
        size_t len = 0;
        snprintf(name, sizeof name, "packs/00/p%u", i);
        cr_assert_eq(vb_store_get(u.st, name, back, sizeof back, &len), 0, "%s", vb_error_msg());
        cr_assert(len == 4096 && back[0] == i && back[4095] == i, "%s reads back as put", name);
    }
    s_up_close(&u);
}

/* A put of bytes `fill` into `up`; true when it handed back a buffer (a spare). */
static bool s_put_spare(vb_packup_t *up, const char *name, uint8_t fill)
{
    uint8_t *buf = s_upload_buf(fill);
    size_t cap = 4096;
    cr_assert_eq(vb_packup_put(up, name, &buf, &cap, 4096), 0, "%s", vb_error_msg());
    bool spare = buf != NULL;
    free(buf);
    return spare;
}

/* One bound for the process (an agent's handles: two jobs at once, or a retired handle and its
 * replacement): two packups of 4 uploads each with the process limited to 3 (each put slowed
 * to 0.1 s) never have more than 3 queued or running together, and every pack is written. Once
 * a wait returned, a packup keeps one spare buffer, not one per upload: a put hands one back,
 * the put right after it none. */
Test(packup, two_packups_together_keep_to_the_process_limit)
{
    vb_packup_limit_process(3);
    s_up_t u = s_up_open(4, false, 100000);
    vb_packup_t *up[2] = {u.up, vb_packup_new(u.st, 4)};
    cr_assert_not_null(up[1], "%s", vb_error_msg());
    for (uint8_t i = 0; i < 12; i++) {
        char name[64];
        snprintf(name, sizeof name, "packs/00/%c%u", i % 2 ? 'b' : 'a', i / 2);
        (void)s_put_spare(up[i % 2], name, i);
    }
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(vb_packup_wait(up[k]), 0, "%s", vb_error_msg());
        cr_assert_eq(vb_packup_puts(up[k]), 6);
    }
    /* the bound, plus at most one put per packup that found it idle (the test below) */
    cr_assert(vb_packup_process_peak() >= 3 && vb_packup_process_peak() <= 3 + 2,
              "uploads at once in the process: %u", vb_packup_process_peak());
    cr_assert(s_put_spare(up[0], "packs/00/c0", 1), "one spare is kept");
    cr_assert_not(s_put_spare(up[0], "packs/00/c1", 2), "only one spare is kept once idle");
    cr_assert_eq(vb_packup_wait(up[0]), 0, "%s", vb_error_msg());
    vb_packup_destroy(&up[1]);
    s_up_close(&u);
}

/* One slow repository holding every token of the process's bound does not stop another: a
 * packup with nothing in flight puts at once (each upload to the slow store takes 3 s; the
 * other store is quick). Before, the second packup's put, which a seal makes under its
 * handle's writers' lock, waited for the slow uploads. */
Test(packup, an_idle_packup_is_not_held_up_by_another_repositorys_uploads)
{
    vb_packup_limit_process(2);
    s_up_t slow = s_up_open(4, false, 3000000);
    unsetenv("VBAK_TEST_STORE_DELAY_US");
    vb_store_t *quick = vb_store_open(s_dir, false);
    cr_assert_not_null(quick, "%s", vb_error_msg());
    vb_packup_t *other = vb_packup_new(quick, 4);
    cr_assert_not_null(other, "%s", vb_error_msg());
    s_up_put(&slow, "packs/00/s0", 1);
    s_up_put(&slow, "packs/00/s1", 2);
    (void)s_put_spare(other, "packs/00/q0", 3);
    cr_assert_eq(vb_packup_puts(slow.up), 0, "the put waited for the slow repository's uploads");
    cr_assert_eq(vb_packup_wait(other), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_packup_wait(slow.up), 0, "%s", vb_error_msg());
    vb_packup_destroy(&other);
    vb_store_destroy(&quick);
    s_up_close(&slow);
}

/* A task that ends without a commit (a read error, a cancel): its repository is destroyed with
 * two uploads still under way (each put slowed to 2 s). They are abandoned: neither pack is
 * written, nor any temp file left, since no index object will ever list them. (Before, destroy
 * waited for both and wrote them: garbage for GC, and minutes of retries during an outage.) */
Test(packup, a_task_ending_without_a_commit_abandons_its_uploads_and_writes_no_pack)
{
    s_up_t u = s_up_open(2, false, 2000000);
    s_up_put(&u, "packs/00/a", 1);
    s_up_put(&u, "packs/00/b", 2);
    vb_packup_destroy(&u.up);
    cr_assert(!vb_store_exists(u.st, "packs/00/a") && !vb_store_exists(u.st, "packs/00/b"),
              "an abandoned upload writes nothing");
    cr_assert_eq(tu_count_files(s_dir, ""), 0, "no temp file either");
    s_up_close(&u);
}

/* One upload among those in flight fails (the last put: no earlier put can have seen it
 * fail): wait names it, and every later put and wait returns
 * that failure (the caller keeps its buffer), so nothing is listed as written after it. */
Test(packup, a_failed_upload_is_kept_and_fails_every_later_put)
{
    s_up_t u = s_up_open(4, true, 0);
    const char *names[] = {"packs/00/a", "packs/00/b", "packs/00/c", "packs/ff/d"};
    for (size_t i = 0; i < 4; i++)
        s_up_put(&u, names[i], (uint8_t)i);
    cr_assert_eq(vb_packup_wait(u.up), VB_EIO);
    cr_assert(strstr(vb_error_msg(), "packs/ff"), "names where: %s", vb_error_msg());
    uint8_t *buf = s_upload_buf(9);
    size_t cap = 4096;
    cr_assert_eq(vb_packup_put(u.up, "packs/00/e", &buf, &cap, 4096), VB_EIO);
    cr_assert(strstr(vb_error_msg(), "packs/ff"), "%s", vb_error_msg());
    cr_assert_not_null(buf, "a refused put leaves the buffer with the caller");
    free(buf);
    cr_assert_eq(vb_packup_wait(u.up), VB_EIO);
    cr_assert(!vb_store_exists(u.st, "packs/00/e"), "nothing is put after the failure");
    s_up_close(&u);
}

/* No upload thread can start (thread stacks larger than memory): the put fails, and so does
 * every later put and wait once threads could start again, so a pack that was never queued
 * cannot be followed by a commit whose wait says every pack is written. */
Test(packup, a_put_that_starts_no_upload_thread_fails_every_later_put_and_wait)
{
    s_up_t u = s_up_open(2, false, 0);
    pthread_attr_t dflt, huge;
    cr_assert_eq(pthread_getattr_default_np(&dflt), 0);
    cr_assert_eq(pthread_attr_init(&huge), 0);
    cr_assert_eq(pthread_attr_setstacksize(&huge, (size_t)1 << 62), 0);
    cr_assert_eq(pthread_setattr_default_np(&huge), 0);
    uint8_t *buf = s_upload_buf(1);
    size_t cap = 4096;
    int rc = vb_packup_put(u.up, "packs/00/a", &buf, &cap, 4096);
    cr_assert_eq(pthread_setattr_default_np(&dflt), 0);
    cr_assert_eq(rc, VB_ENOMEM, "%d %s", rc, vb_error_msg());
    cr_assert_not_null(buf, "a refused put leaves the buffer with the caller");
    cr_assert_eq(vb_packup_put(u.up, "packs/00/b", &buf, &cap, 4096), VB_ENOMEM,
                 "a later put fails too");
    cr_assert(strstr(vb_error_msg(), "upload thread"), "%s", vb_error_msg());
    cr_assert_eq(vb_packup_wait(u.up), VB_ENOMEM, "and so does the commit's wait");
    cr_assert(!vb_store_exists(u.st, "packs/00/b"));
    free(buf);
    pthread_attr_destroy(&huge);
    pthread_attr_destroy(&dflt);
    s_up_close(&u);
}

/* A pack writer with uploads in flight (most shard directories unusable): the first seal's
 * upload fails in the background, so the second seal's put is refused. Only the pack the
 * uploads took is told to the sealed callback (listed); the refused one is not, and the writer
 * starts afresh after a seal the uploads took. */
Test(packup, a_pack_the_uploads_refuse_is_never_listed)
{
    s_up_t u = s_up_open(1, true, 0);
    s_sealed_t sealed = {0};
    vb_pack_writer_t *pw = vb_pack_writer_new(u.st, S_TARGET, s_on_sealed, &sealed);
    vb_pack_writer_set_uploads(pw, u.up);
    uint8_t img[100];
    vb_digest_t d[2] = {{{1}}, {{2}}};
    int rc = 0;
    /* retried while the random pack id lands in the one usable shard (00) */
    for (int i = 0; i < 15 && rc == 0; i++) {
        cr_assert_eq(vb_pack_add(pw, &d[0], img, sizeof img, sizeof img), 0);
        cr_assert_eq(vb_pack_seal(pw), 0, "%s", vb_error_msg());
        rc = vb_packup_wait(u.up);
    }
    cr_assert_eq(rc, VB_EIO, "an upload failed: %s", vb_error_msg());
    size_t listed = sealed.packs;
    cr_assert_eq(sealed.counts[listed - 1], 1, "one chunk per seal: the writer started afresh");
    cr_assert_eq(vb_pack_add(pw, &d[1], img, sizeof img, sizeof img), 0);
    cr_assert_eq(vb_pack_seal(pw), VB_EIO);
    cr_assert_eq(sealed.packs, listed, "the refused pack is not listed");
    vb_pack_writer_destroy(&pw);
    s_up_close(&u);
}

/* A backup whose pack uploads fail (four in flight, 4 MiB packs, most shard directories
 * unusable) fails its commit and writes no index object, so no restore point can name a pack
 * that is not there; once the store is repaired the same chunks back up, and every chunk reads
 * back byte for byte through the index object. Puts are slowed (0.3 s each) so that all three
 * packs are still uploading when the commit starts: only the commit's wait can see the
 * failures (a commit that did not wait, or ignored what it found, writes the index object). */
Test(packup, a_backup_whose_upload_fails_writes_no_index_object)
{
    enum { S_CHUNKS = 9 }; /* three per 4 MiB pack: three packs, the last sealed by the commit */
    char path[4096], index_dir[4096];
    s_dir = tu_tmpdir();
    snprintf(path, sizeof path, "%s/r", s_dir);
    snprintf(index_dir, sizeof index_dir, "%s/index", path);
    vb_repo_params_t p = {.chunk_size = S_CHUNK, .pack_size = S_TARGET};
    cr_assert_eq(vb_repo_init(path, &p), 0, "%s", vb_error_msg());
    uint8_t *data = malloc((size_t)S_CHUNKS * S_CHUNK), *back = malloc(S_CHUNK);
    tu_fill_random(data, (size_t)S_CHUNKS * S_CHUNK, 21);
    vb_digest_t d[S_CHUNKS];
    vb_store_opts_t so = {.puts_in_flight = 4};
    setenv("VBAK_TEST_STORE_DELAY_US", "300000", 1);
    for (int attempt = 0; attempt < 2; attempt++) {
        s_block_pack_shards(path, attempt == 0);
        vb_repo_t *r = vb_repo_open_opts(path, NULL, &so);
        cr_assert_not_null(r, "%s", vb_error_msg());
        vb_repo_worker_t *w = vb_repo_worker_new(r);
        int rc = 0;
        for (int i = 0; i < S_CHUNKS && rc == 0; i++) {
            const uint8_t *c = data + (size_t)i * S_CHUNK;
            cr_assert_eq(vb_repo_digest(w, c, S_CHUNK, &d[i]), 0);
            rc = vb_repo_chunk_put(w, &d[i], c, S_CHUNK, NULL);
        }
        if (rc == 0)
            rc = vb_repo_worker_flush(w);
        if (rc == 0)
            rc = vb_repo_sync(r);
        if (attempt == 0) {
            cr_assert_eq(rc, VB_EIO, "the commit fails: %d %s", rc, vb_error_msg());
            cr_assert(strstr(vb_error_msg(), "packs/"), "names a pack: %s", vb_error_msg());
            cr_assert_eq(vb_repo_sync(r), VB_EIO, "a later commit fails too");
            cr_assert_eq(tu_count_files(index_dir, ""), 0, "no index object");
        } else {
            cr_assert_eq(rc, 0, "%s", vb_error_msg());
            cr_assert_eq(tu_count_files(index_dir, ""), 1);
        }
        vb_repo_worker_destroy(&w);
        vb_repo_destroy(&r);
    }
    unsetenv("VBAK_TEST_STORE_DELAY_US");
    vb_repo_t *r = vb_repo_open(path, NULL); /* the index as another process loads it */
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    for (int i = 0; i < S_CHUNKS; i++) {
        size_t len = 0;
        cr_assert_eq(vb_repo_chunk_get(w, &d[i], back, S_CHUNK, &len), 0, "chunk %d: %s", i,
                     vb_error_msg());
        cr_assert(len == S_CHUNK && memcmp(back, data + (size_t)i * S_CHUNK, S_CHUNK) == 0);
    }
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    free(data);
    free(back);
    tu_rmrf(s_dir);
}

/* A chunk whose pack this process sealed is not stored again while that pack is still uploading
 * (puts slowed to 0.3 s: its freshen finds no object yet), and the commit makes it readable from
 * a fresh open. */
Test(packup, a_chunk_in_a_pack_still_uploading_is_not_stored_again)
{
    char path[4096];
    s_dir = tu_tmpdir();
    snprintf(path, sizeof path, "%s/r", s_dir);
    vb_repo_params_t p = {.chunk_size = S_CHUNK, .pack_size = S_TARGET};
    cr_assert_eq(vb_repo_init(path, &p), 0, "%s", vb_error_msg());
    uint8_t *data = malloc(4 * (size_t)S_CHUNK), *back = malloc(S_CHUNK);
    tu_fill_random(data, 4 * (size_t)S_CHUNK, 31);
    vb_digest_t d[4];
    vb_store_opts_t so = {.puts_in_flight = 2};
    setenv("VBAK_TEST_STORE_DELAY_US", "300000", 1);
    vb_repo_t *r = vb_repo_open_opts(path, NULL, &so);
    cr_assert_not_null(r, "%s", vb_error_msg());
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    for (int i = 0; i < 4; i++) { /* the fourth seals the first three into a pack */
        uint64_t stored = 0;
        cr_assert_eq(vb_repo_digest(w, data + (size_t)i * S_CHUNK, S_CHUNK, &d[i]), 0);
        cr_assert_eq(vb_repo_chunk_put(w, &d[i], data + (size_t)i * S_CHUNK, S_CHUNK, &stored),
                     0, "%s", vb_error_msg());
        cr_assert_gt(stored, 0, "chunk %d is new", i);
    }
    uint64_t again = 0;
    cr_assert_eq(vb_repo_chunk_put(w, &d[0], data, S_CHUNK, &again), 0, "%s", vb_error_msg());
    cr_assert_eq(again, 0, "stored again (%llu bytes) while its pack uploads",
                 (unsigned long long)again);
    cr_assert_eq(vb_repo_worker_flush(w), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_repo_sync(r), 0, "%s", vb_error_msg());
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    unsetenv("VBAK_TEST_STORE_DELAY_US");
    char packs[4200];
    snprintf(packs, sizeof packs, "%s/packs", path);
    cr_assert_eq(tu_count_files(packs, ""), 2, "the full pack and the one the commit sealed");
    r = vb_repo_open(path, NULL);
    w = vb_repo_worker_new(r);
    for (int i = 0; i < 4; i++) {
        size_t len = 0;
        cr_assert_eq(vb_repo_chunk_get(w, &d[i], back, S_CHUNK, &len), 0, "chunk %d: %s", i,
                     vb_error_msg());
        cr_assert(len == S_CHUNK && memcmp(back, data + (size_t)i * S_CHUNK, S_CHUNK) == 0);
    }
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    free(data);
    free(back);
    tu_rmrf(s_dir);
}

/* One builder written twice (an agent's or a collection's, reused after a write): the second
 * object is as whole as the first, and both load. */
Test(idxobj, a_builder_reused_after_a_write_writes_a_whole_second_object)
{
    vb_repo_t *r = s_make_repo(false);
    vb_idxobj_t *obj = vb_idxobj_new();
    vb_pack_entry_t e[2] = {{.offset = 0, .length = 100, .raw_len = 200},
                            {.offset = 100, .length = 50, .raw_len = 60}};
    vb_pack_id_t id[2] = {{{1}}, {{2}}};
    e[0].digest.b[0] = 0xaa;
    e[1].digest.b[0] = 0xbb;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(vb_idxobj_add_pack(obj, &id[i], &e[i], 1), 0, "%s", vb_error_msg());
        cr_assert_eq(vb_idxobj_write(obj, vb_repo_store(r), NULL), 0, "%s", vb_error_msg());
    }
    vb_chunkidx_t *ci = vb_chunkidx_new();
    size_t objects = 0;
    cr_assert_eq(vb_idxobj_load(vb_repo_store(r), ci, &objects, NULL), 0, "%s", vb_error_msg());
    cr_assert_eq(objects, 2);
    for (int i = 0; i < 2; i++) {
        vb_chunkidx_loc_t loc;
        cr_assert(vb_chunkidx_find(ci, &e[i].digest, &loc), "chunk of object %d", i + 1);
        cr_assert_eq(memcmp(loc.pack.b, id[i].b, VB_PACK_ID_LEN), 0);
        cr_assert_eq(loc.offset, e[i].offset);
    }
    vb_chunkidx_destroy(&ci);
    vb_idxobj_destroy(&obj);
    vb_repo_destroy(&r);
}

/* ---------- undelete and a backup still writing (undelete.h) ---------- */

/* A repository with a committed backup and a pack a backup is still writing (sealed and
 * uploaded, no index object yet): undelete does not rebuild the chunk index for that pack, and
 * says it skipped it. The same pack once older than the grace period (a crashed writer's) is a
 * reason to rebuild, as before. (Undelete used to rebuild whenever any pack was unindexed,
 * racing a live backup's commit.) */
Test(idxobj, undelete_leaves_the_packs_of_a_backup_still_writing_alone)
{
    vb_repo_t *r = s_make_repo(false);
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    char path[4096], file[4096];
    snprintf(path, sizeof path, "%s", vb_repo_path(r));
    uint8_t *data = malloc(S_CHUNK);
    vb_digest_t d[2];
    tu_fill_random(data, S_CHUNK, 61);
    cr_assert_eq(vb_repo_digest(w, data, S_CHUNK, &d[0]), 0);
    cr_assert_eq(vb_repo_chunk_put(w, &d[0], data, S_CHUNK, NULL), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_repo_worker_flush(w), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_repo_sync(r), 0, "%s", vb_error_msg()); /* the committed backup */
    /* the running backup: a pack written, its commit still to come */
    s_sealed_t sealed = {0};
    vb_pack_writer_t *pw = vb_pack_writer_new(vb_repo_store(r), S_TARGET, s_on_sealed, &sealed);
    const uint8_t *img = NULL;
    size_t img_len = 0;
    tu_fill_random(data, S_CHUNK, 62);
    cr_assert_eq(vb_repo_digest(w, data, S_CHUNK, &d[1]), 0);
    cr_assert_eq(vb_repo_chunk_encode(w, &d[1], data, S_CHUNK, &img, &img_len), 0);
    cr_assert_eq(vb_pack_add(pw, &d[1], img, img_len, S_CHUNK), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_pack_seal(pw), 0, "%s", vb_error_msg());
    char live[VB_PACK_NAME_LEN];
    vb_pack_name(&sealed.ids[0], live);
    vb_pack_writer_destroy(&pw);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);

    vb_undelete_stats_t us;
    cr_assert_eq(vb_repo_undelete_opts(path, NULL, false, &us), 0, "%s", vb_error_msg());
    cr_assert_eq(us.young, 1, "the running backup's pack is skipped: %llu",
                 (unsigned long long)us.young);
    cr_assert_eq(us.unindexed, 0);
    cr_assert(!us.index_rebuilt, "no rebuild under a live backup");
    cr_assert_eq(us.repair.packs, 0);

    /* the same pack two days old: a writer that never committed; rebuilt as before */
    r = vb_repo_open(path, NULL);
    cr_assert_eq(vb_store_local_path(vb_repo_store(r), live, file, sizeof file), 0, "%s",
                 vb_error_msg());
    vb_repo_destroy(&r);
    struct timespec old[2] = {{time(NULL) - 2 * 86400, 0}, {time(NULL) - 2 * 86400, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, file, old, 0), 0, "%s: %s", file, strerror(errno));
    cr_assert_eq(vb_repo_undelete_opts(path, NULL, false, &us), 0, "%s", vb_error_msg());
    cr_assert_eq(us.young, 0);
    cr_assert_eq(us.unindexed, 1);
    cr_assert(us.index_rebuilt);
    cr_assert_eq(us.repair.packs, 2);
    free(data);
    tu_rmrf(s_dir);
}

/* ---------- the commit's lock scope (packed.c) ---------- */

typedef struct {
    vb_repo_t *r;
    int rc;
    atomic_bool done;
    /* a task: put this chunk and flush before the commit (else: the commit only) */
    bool put;
    const uint8_t *chunk;
    vb_digest_t digest;
} s_commit_t;

static void *s_commit_thread(void *arg)
{
    s_commit_t *c = arg;
    c->rc = 0;
    if (c->put) {
        vb_repo_worker_t *w = vb_repo_worker_new(c->r);
        c->rc = w ? vb_repo_digest(w, c->chunk, S_CHUNK, &c->digest) : VB_ENOMEM;
        if (c->rc == 0)
            c->rc = vb_repo_chunk_put(w, &c->digest, c->chunk, S_CHUNK, NULL);
        if (c->rc == 0)
            c->rc = vb_repo_worker_flush(w);
        vb_repo_worker_destroy(&w);
    }
    if (c->rc == 0)
        c->rc = vb_repo_sync(c->r);
    atomic_store(&c->done, true);
    return NULL;
}


static int s_pack_name_of(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)st;
    snprintf(arg, VB_STORE_NAME_MAX + 1, "%s", name);
    return 1;
}

/* Waits until the store holds a pack (the first commit's upload is done): its name. */
static void s_wait_for_a_pack(vb_store_t *st, char pack[VB_STORE_NAME_MAX + 1])
{
    for (int i = 0; i < 10000 && !pack[0]; i++) {
        cr_assert_eq(vb_store_list(st, "packs/", s_pack_name_of, pack), 0, "%s", vb_error_msg());
        if (!pack[0])
            nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    cr_assert(pack[0], "the commit's pack was not written within 10 s");
}

/* A fresh format 2 repository in a new s_dir (path: its location), opened with each commit's
 * window before its index object write widened to 1 s and two uploads in flight. */
static vb_repo_t *s_open_slow_commits(char *path, size_t size)
{
    s_dir = tu_tmpdir();
    snprintf(path, size, "%s/r", s_dir);
    vb_repo_params_t p = {.chunk_size = S_CHUNK, .pack_size = S_TARGET};
    cr_assert_eq(vb_repo_init(path, &p), 0, "%s", vb_error_msg());
    setenv("VBAK_TEST_COMMIT_DELAY_US", "1000000", 1);
    vb_repo_t *r = vb_repo_open_opts(path, NULL, &(vb_store_opts_t){.puts_in_flight = 2});
    unsetenv("VBAK_TEST_COMMIT_DELAY_US");
    cr_assert_not_null(r, "%s", vb_error_msg());
    return r;
}

/* A writer seals a pack while another thread's commit is between its uploads' wait and its
 * index object's write (the window widened to 1 s by VBAK_TEST_COMMIT_DELAY_US), and that
 * pack's upload fails (every shard but the commit's own pack's made unusable once that pack is
 * written). The commit took its packs (those sealed before it) before the window and the
 * writers' lock is free meanwhile, so the seal goes in at once: the commit succeeds and its
 * index object names only the chunk whose pack is there; the later pack is the next commit's.
 * The seal is over while the commit still runs: a commit no longer stops the other tasks'
 * writers while it waits for I/O (with the lock held through the window, as before, the seal
 * returned only after the commit). (A commit that listed every pack pending at its write named
 * a chunk in a pack that never got written.) */
Test(packed, a_pack_sealed_during_a_commit_is_not_in_its_index_object)
{
    char path[4096], pack[VB_STORE_NAME_MAX + 1] = "";
    vb_repo_t *r = s_open_slow_commits(path, sizeof path);
    vb_repo_worker_t *wa = vb_repo_worker_new(r), *wb = vb_repo_worker_new(r);
    uint8_t *data = malloc(2 * (size_t)S_CHUNK);
    tu_fill_random(data, 2 * (size_t)S_CHUNK, 71);
    vb_digest_t d[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(vb_repo_digest(wa, data + (size_t)i * S_CHUNK, S_CHUNK, &d[i]), 0);
    cr_assert_eq(vb_repo_chunk_put(wa, &d[0], data, S_CHUNK, NULL), 0, "%s", vb_error_msg());
    s_commit_t c = {.r = r};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, s_commit_thread, &c), 0);
    s_wait_for_a_pack(vb_repo_store(r), pack); /* the commit's pack is written: its wait */
    s_block_shards_but(path, (unsigned)strtoul((char[3]){pack[6], pack[7], 0}, NULL, 16), true);
    cr_assert_eq(vb_repo_chunk_put(wb, &d[1], data + S_CHUNK, S_CHUNK, NULL), 0, "%s",
                 vb_error_msg());
    cr_assert_eq(vb_repo_worker_flush(wb), 0, "the seal: %s", vb_error_msg());
    cr_assert(!atomic_load(&c.done), "the seal waited for the commit's index object");
    pthread_join(t, NULL);
    cr_assert_eq(c.rc, 0, "the commit: %s", vb_error_msg());
    vb_repo_worker_destroy(&wa);
    vb_repo_worker_destroy(&wb);
    vb_repo_destroy(&r);
    vb_chunkidx_t *ci = vb_chunkidx_new();
    r = vb_repo_open(path, NULL);
    cr_assert_not_null(r, "%s", vb_error_msg());
    cr_assert_eq(vb_idxobj_load(vb_repo_store(r), ci, NULL, NULL), 0, "%s", vb_error_msg());
    vb_chunkidx_loc_t loc;
    cr_assert(vb_chunkidx_find(ci, &d[0], &loc), "the committed chunk is indexed");
    cr_assert(!vb_chunkidx_find(ci, &d[1], &loc),
              "the chunk sealed during the commit is not in its index object");
    vb_chunkidx_destroy(&ci);
    vb_repo_destroy(&r);
    free(data);
    tu_rmrf(s_dir);
}

/* Group commit: while one task's commit writes its index object (the window widened to 1 s),
 * three more tasks each store a chunk, seal it into a pack of its own and commit. Their seals
 * are not held up, and the three commits share one index object, written once the first is
 * done: two index objects for four commits, and every chunk is found through them by a fresh
 * open. (One index object per commit would write four, each with its barrier.) */
Test(packed, commits_at_about_the_same_time_share_one_index_object)
{
    enum { S_TASKS = 4 };
    char path[4096], index_dir[4096], pack[VB_STORE_NAME_MAX + 1] = "";
    vb_repo_t *r = s_open_slow_commits(path, sizeof path);
    snprintf(index_dir, sizeof index_dir, "%s/index", path);
    uint8_t *data = malloc(S_TASKS * (size_t)S_CHUNK);
    tu_fill_random(data, S_TASKS * (size_t)S_CHUNK, 81);
    s_commit_t c[S_TASKS];
    pthread_t t[S_TASKS];
    /* the first task's chunk is sealed by its commit: once its pack is there, that commit
     * has taken its packs and is in its window */
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    c[0] = (s_commit_t){.r = r, .chunk = data};
    cr_assert_eq(vb_repo_digest(w, data, S_CHUNK, &c[0].digest), 0);
    cr_assert_eq(vb_repo_chunk_put(w, &c[0].digest, data, S_CHUNK, NULL), 0, "%s",
                 vb_error_msg());
    for (int i = 0; i < S_TASKS; i++) {
        if (i > 0)
            c[i] = (s_commit_t){.r = r, .put = true, .chunk = data + (size_t)i * S_CHUNK};
        cr_assert_eq(pthread_create(&t[i], NULL, s_commit_thread, &c[i]), 0);
        if (i == 0)
            s_wait_for_a_pack(vb_repo_store(r), pack);
    }
    for (int i = 0; i < S_TASKS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(c[i].rc, 0, "task %d: %s", i, vb_error_msg());
    }
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    cr_assert_eq(tu_count_files(index_dir, ""), 2, "index objects for %d commits: %zu", S_TASKS,
                 tu_count_files(index_dir, ""));
    r = vb_repo_open(path, NULL);
    cr_assert_not_null(r, "%s", vb_error_msg());
    w = vb_repo_worker_new(r);
    uint8_t *back = malloc(S_CHUNK);
    for (int i = 0; i < S_TASKS; i++) {
        size_t len = 0;
        cr_assert_eq(vb_repo_chunk_get(w, &c[i].digest, back, S_CHUNK, &len), 0, "chunk %d: %s",
                     i, vb_error_msg());
        cr_assert(len == S_CHUNK && memcmp(back, c[i].chunk, S_CHUNK) == 0, "chunk %d", i);
    }
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    free(back);
    free(data);
    tu_rmrf(s_dir);
}
