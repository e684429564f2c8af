#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/pipeline.h"
#include "repo/gc.h"
#include "repo/index.h"
#include "repo/pack.h"
#include "repo/repo.h"
#include "repo_testutil.h"

static char *s_dir;

static void setup(void)
{
    s_dir = tu_tmpdir();
}

static void teardown(void)
{
    tu_rmrf(s_dir);
    s_dir = NULL;
}

TestSuite(pipeline, .init = setup, .fini = teardown);

/* An in-memory disk; read_at fails on demand at one offset. */
typedef struct {
    uint8_t *data;
    uint64_t size;
    uint64_t fail_at; /* UINT64_MAX: never */
} mem_disk_t;

static int mem_read(void *ctx, void *buf, size_t len, uint64_t off)
{
    mem_disk_t *d = ctx;
    if (off == d->fail_at)
        return vb_error_set(VB_EIO, "simulated read error");
    cr_assert_leq(off + len, d->size);
    memcpy(buf, d->data + off, len);
    return 0;
}

static int mem_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
    mem_disk_t *d = ctx;
    cr_assert_leq(off + len, d->size);
    memcpy(d->data + off, buf, len);
    return 0;
}

static int file_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
    int fd = *(int *)ctx;
    return pwrite(fd, buf, len, (off_t)off) == (ssize_t)len
               ? 0
               : vb_error_set(VB_EIO, "pwrite: %s", strerror(errno));
}

static vb_repo_t *make_repo(const char *name, uint32_t cs, bool encrypt)
{
    char path[4096], key[4096];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    snprintf(key, sizeof key, "%s/%s.key", s_dir, name);
    if (encrypt)
        tu_write_key(key, 7);
    /* format 1: some tests damage and count chunk files; packs have their own tests below */
    vb_repo_params_t p = {
        .chunk_size = cs, .compression_level = 3, .key_file = encrypt ? key : NULL, .format = 1};
    cr_assert_eq(vb_repo_init(path, &p), 0, "%s", vb_error_msg());
    vb_repo_t *r = vb_repo_open(path, encrypt ? key : NULL);
    cr_assert_not_null(r, "%s", vb_error_msg());
    return r;
}

/* A disk of `chunks` full chunks plus a short tail: random, zero, text and mixed chunks. */
static mem_disk_t make_disk(uint32_t cs, unsigned chunks, uint64_t seed)
{
    mem_disk_t d = {.size = (uint64_t)cs * chunks + 12345, .fail_at = UINT64_MAX};
    d.data = calloc(1, d.size);
    cr_assert_not_null(d.data);
    for (unsigned i = 0; i < chunks; i++) {
        uint8_t *c = d.data + (uint64_t)i * cs;
        switch (i % 4) {
        case 0:
            tu_fill_random(c, cs, seed + i);
            break;
        case 1:
            break; /* zero */
        case 2:
            tu_fill_text(c, cs, seed + i);
            break;
        case 3:
            tu_fill_random(c + cs / 2, cs / 4, seed + i);
            break;
        }
    }
    tu_fill_random(d.data + (uint64_t)cs * chunks, 12345, seed + 999);
    return d;
}

static vb_index_t *backup(vb_repo_t *r, const vb_pipeline_opts_t *o, mem_disk_t *d,
                          const vb_index_t *parent, const vb_extent_t *ext, size_t n,
                          vb_pipeline_stats_t *st)
{
    vb_chunk_result_t *res = NULL;
    size_t count = 0;
    vb_extent_t all = {0, d->size};
    if (!ext) {
        ext = &all;
        n = 1;
    }
    cr_assert_eq(
        vb_pipeline_backup_collect(r, o, "2000", d->size, ext, n, mem_read, d, &res, &count, st), 0,
        "backup: %s", vb_error_msg());
    for (size_t i = 1; i < count; i++)
        cr_assert_lt(res[i - 1].offset, res[i].offset, "results are not in disk order");
    vb_index_t *idx = NULL;
    cr_assert_eq(vb_index_build(parent, parent ? "parent" : NULL, "2000", d->size,
                                vb_repo_chunk_size(r), res, count, &idx),
                 0, "%s", vb_error_msg());
    free(res);
    return idx;
}

static void restore_compare_stats(vb_repo_t *r, const vb_pipeline_opts_t *o, const vb_index_t *idx,
                                  const mem_disk_t *d, vb_pipeline_stats_t *st_out)
{
    char out[4096];
    snprintf(out, sizeof out, "%s/restored.img", s_dir);
    int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(ftruncate(fd, (off_t)d->size), 0);
    vb_pipeline_stats_t st;
    cr_assert_eq(vb_pipeline_restore(r, o, idx, file_write, &fd, &st), 0, "restore: %s",
                 vb_error_msg());
    uint8_t *back = malloc(d->size);
    cr_assert_eq(pread(fd, back, d->size, 0), (ssize_t)d->size);
    cr_assert_eq(memcmp(back, d->data, d->size), 0, "restored bytes differ");
    struct stat sb;
    cr_assert_eq(fstat(fd, &sb), 0);
    cr_assert_lt((uint64_t)sb.st_blocks * 512, d->size, "restored file is not sparse");
    free(back);
    close(fd);
    unlink(out);
    if (st_out)
        *st_out = st;
}

static void restore_and_compare(vb_repo_t *r, const vb_pipeline_opts_t *o, const vb_index_t *idx,
                                const mem_disk_t *d)
{
    restore_compare_stats(r, o, idx, d, NULL);
}

Test(pipeline, round_trip_every_chunk_size_plain_and_encrypted)
{
    static const uint32_t sizes[] = {64u << 10, 256u << 10, 1u << 20, 4u << 20};
    for (size_t s = 0; s < 4; s++) {
        for (int enc = 0; enc < 2; enc++) {
            char name[32];
            snprintf(name, sizeof name, "r%zu%d", s, enc);
            vb_repo_t *r = make_repo(name, sizes[s], enc);
            mem_disk_t d = make_disk(sizes[s], 8, s * 2 + (uint64_t)enc);
            vb_pipeline_opts_t o = {.workers = 3, .queue_depth = 2};
            vb_pipeline_stats_t st;
            vb_index_t *idx = backup(r, &o, &d, NULL, NULL, 0, &st);
            cr_assert_eq(st.chunks, 9);
            cr_assert_eq(st.chunks_zero, 2, "zero chunks: %" PRIu64, st.chunks_zero);
            cr_assert_eq(st.chunks_new, 7);
            cr_assert(vb_digest_is_zero(&idx->digests[1]));
            restore_and_compare(r, &o, idx, &d);
            vb_pipeline_stats_t vs;
            cr_assert_eq(vb_pipeline_verify(r, &o, idx, NULL, NULL, &vs), 0, "%s", vb_error_msg());
            cr_assert_eq(vs.chunks, 7);
            cr_assert_eq(vs.reads, 7, "format 1: one read per chunk file");
            vb_index_destroy(&idx);
            free(d.data);
            vb_repo_destroy(&r);
        }
    }
}

Test(pipeline, zero_chunks_are_not_stored_and_equal_chunks_dedup_across_disks)
{
    vb_repo_t *r = make_repo("z", 64u << 10, false);
    char chunks[4096];
    snprintf(chunks, sizeof chunks, "%s/z/chunks", s_dir);
    mem_disk_t zero = {.size = 1u << 20, .fail_at = UINT64_MAX};
    zero.data = calloc(1, zero.size);
    vb_pipeline_stats_t st;
    vb_index_t *zi = backup(r, NULL, &zero, NULL, NULL, 0, &st);
    cr_assert_eq(st.chunks_zero, 16);
    cr_assert_eq(tu_count_files(chunks, ""), 0, "an all-zero chunk was stored");
    for (uint64_t i = 0; i < zi->count; i++)
        cr_assert(vb_digest_is_zero(&zi->digests[i]));
    vb_index_destroy(&zi);

    mem_disk_t a = make_disk(64u << 10, 8, 5);
    vb_index_t *ai = backup(r, NULL, &a, NULL, NULL, 0, &st);
    size_t files = tu_count_files(chunks, "");
    cr_assert_eq(files, 7);
    /* Another disk with the same content: nothing new is stored. */
    mem_disk_t b = {.size = a.size, .fail_at = UINT64_MAX};
    b.data = malloc(b.size);
    memcpy(b.data, a.data, a.size);
    vb_index_t *bi = backup(r, NULL, &b, NULL, NULL, 0, &st);
    cr_assert_eq(st.chunks_new, 0);
    cr_assert_eq(st.chunks_dedup, 7);
    cr_assert_eq(tu_count_files(chunks, ""), files);
    restore_and_compare(r, NULL, bi, &b);
    vb_index_destroy(&ai);
    vb_index_destroy(&bi);
    free(zero.data);
    free(a.data);
    free(b.data);
    vb_repo_destroy(&r);
}

Test(pipeline, incremental_reads_only_changed_chunks_and_inherits_the_rest)
{
    uint32_t cs = 256u << 10;
    vb_repo_t *r = make_repo("inc", cs, true);
    mem_disk_t d = make_disk(cs, 16, 77);
    vb_pipeline_stats_t st;
    vb_index_t *full = backup(r, NULL, &d, NULL, NULL, 0, &st);
    /* Change three 64 KiB blocks: two in chunk 3, one in chunk 9 (a zero chunk before). */
    vb_extent_t changed[3] = {{3 * (uint64_t)cs, 65536},
                              {3 * (uint64_t)cs + 131072, 65536},
                              {9 * (uint64_t)cs + 65536, 65536}};
    for (int i = 0; i < 3; i++)
        tu_fill_random(d.data + changed[i].offset, changed[i].length, 500 + (uint64_t)i);
    vb_pipeline_opts_t o = {.workers = 2, .queue_depth = 1};
    vb_index_t *incr = backup(r, &o, &d, full, changed, 3, &st);
    cr_assert_eq(st.chunks, 2, "incremental read %" PRIu64 " chunks", st.chunks);
    cr_assert_eq(st.chunks_new, 2);
    cr_assert_eq(memcmp(&incr->digests[0], &full->digests[0], sizeof(vb_digest_t)), 0);
    cr_assert_neq(memcmp(&incr->digests[3], &full->digests[3], sizeof(vb_digest_t)), 0);
    cr_assert_str_eq(incr->parent, "parent");
    restore_and_compare(r, NULL, incr, &d);
    vb_index_destroy(&full);
    vb_index_destroy(&incr);
    free(d.data);
    vb_repo_destroy(&r);
}

typedef struct {
    uint64_t offsets[16];
    int codes[16];
    int n;
} reports_t;

static void on_bad(void *ctx, uint64_t off, const vb_digest_t *d, int code, const char *msg)
{
    (void)d;
    reports_t *r = ctx;
    /* the caller prints disk and offset beside the message: it must not repeat them */
    cr_assert_null(strstr(msg, "disk 2000"), "report message repeats the disk: %s", msg);
    cr_assert_null(strstr(msg, "offset"), "report message repeats the offset: %s", msg);
    cr_assert(strstr(msg, "chunk"), "report message says what is wrong: %s", msg);
    if (r->n < 16) {
        r->offsets[r->n] = off;
        r->codes[r->n] = code;
    }
    r->n++;
}

static void damage_chunk(vb_repo_t *r, const vb_digest_t *d, bool truncate_it)
{
    char path[4096];
    cr_assert_eq(vb_repo_chunk_path(r, d, path, sizeof path), 0);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    if (truncate_it) {
        cr_assert_eq(truncate(path, sb.st_size / 2), 0);
        return;
    }
    int fd = open(path, O_RDWR);
    uint8_t b;
    off_t at = 64 + (sb.st_size - 64) / 2;
    cr_assert_eq(pread(fd, &b, 1, at), 1);
    b ^= 1;
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

static void check_damage_caught(bool encrypt, bool truncate_it)
{
    uint32_t cs = 64u << 10;
    vb_repo_t *r = make_repo(encrypt ? "de" : "dp", cs, encrypt);
    mem_disk_t d = make_disk(cs, 12, 3);
    /* Chunk 4 repeats chunk 0, so one damaged file is referenced at two offsets. */
    memcpy(d.data + 4 * (uint64_t)cs, d.data, cs);
    vb_index_t *idx = backup(r, NULL, &d, NULL, NULL, 0, NULL);
    damage_chunk(r, &idx->digests[0], truncate_it);

    reports_t rep = {0};
    vb_pipeline_opts_t o = {.workers = 2};
    cr_assert_eq(vb_pipeline_verify(r, &o, idx, on_bad, &rep, NULL), VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "2 corrupt or missing"), "%s", vb_error_msg());
    cr_assert_eq(rep.n, 2);
    cr_assert((rep.offsets[0] == 0 && rep.offsets[1] == 4 * (uint64_t)cs) ||
              (rep.offsets[1] == 0 && rep.offsets[0] == 4 * (uint64_t)cs));
    cr_assert_eq(rep.codes[0], VB_ECORRUPT);

    /* Restore stops naming the offset and never writes the damaged bytes. */
    mem_disk_t out = {.size = d.size, .fail_at = UINT64_MAX};
    out.data = malloc(out.size);
    memset(out.data, 0xAB, out.size);
    vb_pipeline_opts_t one = {.workers = 1};
    cr_assert_eq(vb_pipeline_restore(r, &one, idx, mem_write, &out, NULL), VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "disk 2000 offset 0"), "%s", vb_error_msg());
    for (uint64_t i = 0; i < cs; i++)
        cr_assert_eq(out.data[i], 0xAB, "restore wrote bytes of a damaged chunk");
    for (uint64_t i = 4 * (uint64_t)cs; i < 5 * (uint64_t)cs; i++)
        cr_assert_eq(out.data[i], 0xAB, "restore wrote bytes of a damaged chunk");
    free(out.data);

    /* A missing chunk is named too. */
    char path[4096];
    cr_assert_eq(vb_repo_chunk_path(r, &idx->digests[2], path, sizeof path), 0);
    cr_assert_eq(unlink(path), 0);
    rep.n = 0;
    cr_assert_eq(vb_pipeline_verify(r, &o, idx, on_bad, &rep, NULL), VB_ECORRUPT);
    cr_assert_eq(rep.n, 3);
    bool seen_missing = false;
    for (int i = 0; i < 3; i++)
        if (rep.offsets[i] == 2 * (uint64_t)cs && rep.codes[i] == VB_ENOTFOUND)
            seen_missing = true;
    cr_assert(seen_missing, "missing chunk at offset %u not reported", 2 * cs);
    vb_index_destroy(&idx);
    free(d.data);
    vb_repo_destroy(&r);
}

Test(pipeline, flipped_byte_is_caught_by_verify_and_restore)
{
    check_damage_caught(false, false);
    check_damage_caught(true, false);
}

Test(pipeline, truncated_chunk_is_caught_by_verify_and_restore)
{
    check_damage_caught(false, true);
    check_damage_caught(true, true);
}

/* A write target that fails from an absolute disk offset on, as a full file system does. */
static int full_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
    mem_disk_t *d = ctx;
    if (off + len > d->fail_at)
        return vb_error_set(VB_ENOSPC, "write at %" PRIu64 ": no space left on device", off);
    return mem_write(ctx, buf, len, off);
}

/* A restore task covers one window of the disk: an index of just its chunks, restored at its
 * disk offset (opts.base), as the agent does. */
Test(pipeline, a_window_restores_at_its_disk_offset_and_errors_name_absolute_offsets)
{
    uint32_t cs = 64u << 10;
    vb_repo_t *r = make_repo("win", cs, false);
    mem_disk_t d = make_disk(cs, 12, 21);
    vb_index_t *idx = backup(r, NULL, &d, NULL, NULL, 0, NULL);
    uint64_t base = 4 * (uint64_t)cs; /* the window of chunks 4..7 */
    vb_index_t *win = vb_index_new("2000", 4 * (uint64_t)cs, cs, NULL);
    cr_assert_not_null(win);
    memcpy(win->digests, &idx->digests[4], 4 * sizeof *win->digests);
    vb_pipeline_opts_t o = {.workers = 1, .base = base};

    /* the bytes land at the window's disk offsets */
    mem_disk_t out = {.size = d.size, .fail_at = UINT64_MAX};
    out.data = calloc(1, out.size);
    cr_assert_eq(vb_pipeline_restore(r, &o, win, mem_write, &out, NULL), 0, "%s", vb_error_msg());
    cr_assert_eq(memcmp(out.data + base, d.data + base, 4 * (size_t)cs), 0);
    for (uint64_t i = 0; i < base; i++)
        cr_assert_eq(out.data[i], 0, "the window wrote before its disk offset");

    /* a target that fills up in chunk 7: one offset, the absolute one (chunk 7 holds data from
     * half its length on, so the first write there is at 7 * cs + cs / 2) */
    memset(out.data, 0, out.size);
    out.fail_at = 7 * (uint64_t)cs;
    cr_assert_eq(vb_pipeline_restore(r, &o, win, full_write, &out, NULL), VB_ENOSPC);
    cr_assert_str_eq(vb_error_msg(), "disk 2000: writing 16384 bytes at offset 491520: write at "
                                     "491520: no space left on device");

    /* a corrupt chunk in the window: named by its disk offset, not its offset in the window */
    damage_chunk(r, &idx->digests[6], false);
    out.fail_at = UINT64_MAX;
    cr_assert_eq(vb_pipeline_restore(r, &o, win, mem_write, &out, NULL), VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "disk 2000 offset 393216: "), "%s", vb_error_msg());
    vb_index_destroy(&win);
    vb_index_destroy(&idx);
    free(out.data);
    free(d.data);
    vb_repo_destroy(&r);
}

/* A destination that records how it was written. */
typedef struct {
    mem_disk_t disk;
    unsigned writes;
    size_t largest;
} counted_disk_t;

static int counted_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
    counted_disk_t *c = ctx;
    c->writes++;
    c->largest = len > c->largest ? len : c->largest;
    return mem_write(&c->disk, buf, len, off);
}

/* Chunks that follow each other on the disk reach the destination as one write of up to
 * VB_PIPELINE_WRITE_RUN bytes, not one write per chunk; a zero chunk between them is still
 * never written. */
Test(pipeline, restore_writes_chunks_that_follow_each_other_as_one_run)
{
    uint32_t cs = 64u << 10;
    unsigned chunks = 160; /* 10 MiB */
    vb_repo_t *r = make_repo("runs", cs, false);
    mem_disk_t d = {.size = (uint64_t)cs * chunks, .fail_at = UINT64_MAX};
    d.data = calloc(1, d.size);
    for (unsigned i = 0; i < chunks; i++)
        if (i != 80)
            tu_fill_random(d.data + (uint64_t)i * cs, cs, 7 + i);
    vb_pipeline_opts_t o = {.workers = 1};
    vb_index_t *idx = backup(r, &o, &d, NULL, NULL, 0, NULL);
    counted_disk_t out = {.disk = {.size = d.size, .fail_at = UINT64_MAX}};
    out.disk.data = malloc(d.size);
    memset(out.disk.data, 0xAB, d.size);
    cr_assert_eq(vb_pipeline_restore(r, &o, idx, counted_write, &out, NULL), 0, "%s",
                 vb_error_msg());
    for (unsigned i = 0; i < chunks; i++) {
        size_t at = (size_t)i * cs;
        if (i == 80)
            cr_assert_eq(out.disk.data[at], 0xAB, "the zero chunk was written");
        else
            cr_assert_eq(memcmp(out.disk.data + at, d.data + at, cs), 0, "chunk %u differs", i);
    }
    /* 80 and 79 chunks of data either side of the zero one: two runs of about 5 MiB, each in
     * writes of at most VB_PIPELINE_WRITE_RUN (one write per chunk before) */
    unsigned most = (80 * cs + VB_PIPELINE_WRITE_RUN - 1) / VB_PIPELINE_WRITE_RUN +
                    (79 * cs + VB_PIPELINE_WRITE_RUN - 1) / VB_PIPELINE_WRITE_RUN;
    cr_assert_leq(out.writes, most, "%u writes for %u chunks", out.writes, chunks - 1);
    cr_assert_leq(out.largest, VB_PIPELINE_WRITE_RUN);
    vb_index_destroy(&idx);
    free(out.disk.data);
    free(d.data);
    vb_repo_destroy(&r);
}

Test(pipeline, read_error_stops_the_backup_naming_disk_and_offset)
{
    uint32_t cs = 64u << 10;
    vb_repo_t *r = make_repo("re", cs, false);
    mem_disk_t d = make_disk(cs, 32, 9);
    d.fail_at = 17 * (uint64_t)cs;
    vb_chunk_result_t *res = NULL;
    size_t n = 0;
    vb_extent_t all = {0, d.size};
    vb_pipeline_opts_t o = {.workers = 4, .queue_depth = 4};
    cr_assert_eq(
        vb_pipeline_backup_collect(r, &o, "disk-a", d.size, &all, 1, mem_read, &d, &res, &n, NULL),
        VB_EIO);
    cr_assert(strstr(vb_error_msg(), "disk disk-a: reading 65536 bytes at offset 1114112"), "%s",
              vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "simulated read error"), "%s", vb_error_msg());
    cr_assert_null(res);
    vb_extent_t bad[2] = {{cs, 10}, {0, 10}};
    cr_assert_eq(
        vb_pipeline_backup_collect(r, &o, "disk-a", d.size, bad, 2, mem_read, &d, &res, &n, NULL),
        VB_EINVAL);
    free(d.data);
    vb_repo_destroy(&r);
}

static const char *enospc_backup(const char *mnt, char *msg, size_t msgsz)
{
    char path[4096], chunks[4096];
    snprintf(path, sizeof path, "%s/repo", mnt);
    vb_repo_params_t p = {.chunk_size = 256u << 10, .compression_level = 1, .format = 1};
    TU_CHECK(vb_repo_init(path, &p) == 0, "init: %s", vb_error_msg());
    vb_repo_t *r = vb_repo_open(path, NULL);
    TU_CHECK(r, "open: %s", vb_error_msg());
    mem_disk_t d = {.size = 16u << 20, .fail_at = UINT64_MAX};
    d.data = malloc(d.size);
    tu_fill_random(d.data, d.size, 1234);
    vb_chunk_result_t *res = NULL;
    size_t n = 0;
    vb_extent_t all = {0, d.size};
    vb_pipeline_opts_t o = {.workers = 2};
    int rc =
        vb_pipeline_backup_collect(r, &o, "2000", d.size, &all, 1, mem_read, &d, &res, &n, NULL);
    TU_CHECK(rc == VB_ENOSPC, "expected ENOSPC, got %d: %s", rc, vb_error_msg());
    TU_CHECK(strstr(vb_error_msg(), path), "message names the repository: %s", vb_error_msg());
    TU_CHECK(!res, "results returned by a failed backup");
    snprintf(chunks, sizeof chunks, "%s/chunks", path);
    TU_CHECK(tu_count_files(chunks, ".tmp") == 0, "temp files left behind");
    /* Every chunk that is visible is complete and correct. */
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    uint8_t *buf = malloc(256u << 10);
    size_t checked = 0;
    for (uint64_t off = 0; off < d.size; off += 256u << 10) {
        vb_digest_t dg;
        size_t got = 0;
        TU_CHECK(vb_repo_digest(w, d.data + off, 256u << 10, &dg) == 0, "digest");
        if (!vb_repo_chunk_exists(r, &dg))
            continue;
        TU_CHECK(vb_repo_chunk_get(w, &dg, buf, 256u << 10, &got) == 0, "%s", vb_error_msg());
        checked++;
    }
    TU_CHECK(checked == tu_count_files(chunks, ""), "a visible chunk is not a sound chunk");
    free(buf);
    vb_repo_worker_destroy(&w);
    free(d.data);
    vb_repo_destroy(&r);
    return NULL;
}

Test(pipeline, full_file_system_fails_the_backup_cleanly)
{
    char mnt[4096];
    snprintf(mnt, sizeof mnt, "%s/mnt", s_dir);
    cr_assert_eq(mkdir(mnt, 0755), 0);
    tu_run_on_small_fs(mnt, "4m", enospc_backup);
}

Test(pipeline, restore_leaves_zero_blocks_as_holes_unless_asked_to_write_zeros)
{
    uint32_t cs = 1u << 20;
    vb_repo_t *r = make_repo("sp", cs, false);
    /* Every chunk holds 256 KiB of data and 768 KiB of zeros. */
    mem_disk_t d = {.size = 8 * (uint64_t)cs, .fail_at = UINT64_MAX};
    d.data = calloc(1, d.size);
    for (int i = 0; i < 8; i++)
        tu_fill_random(d.data + (uint64_t)i * cs, 256u << 10, 40 + (uint64_t)i);
    vb_index_t *idx = backup(r, NULL, &d, NULL, NULL, 0, NULL);

    char out[4096];
    snprintf(out, sizeof out, "%s/sparse.img", s_dir);
    int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_eq(ftruncate(fd, (off_t)d.size), 0);
    vb_pipeline_stats_t st;
    cr_assert_eq(vb_pipeline_restore(r, NULL, idx, file_write, &fd, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(st.bytes_written, 8 * (256u << 10));
    struct stat sb;
    cr_assert_eq(fstat(fd, &sb), 0);
    cr_assert_leq((uint64_t)sb.st_blocks * 512, 8 * (uint64_t)(256u << 10) + (1u << 20),
                  "zero blocks inside chunks were written: %lld bytes allocated",
                  (long long)sb.st_blocks * 512);
    uint8_t *back = malloc(d.size);
    cr_assert_eq(pread(fd, back, d.size, 0), (ssize_t)d.size);
    cr_assert_eq(memcmp(back, d.data, d.size), 0);
    close(fd);

    /* An old destination: zeros must overwrite what was there. */
    mem_disk_t old = {.size = d.size + 100, .fail_at = UINT64_MAX};
    old.data = malloc(old.size);
    memset(old.data, 0xCD, old.size);
    vb_index_t *with_hole = NULL;
    vb_chunk_result_t res[1] = {{.offset = 0, .digest = idx->digests[0]}};
    cr_assert_eq(vb_index_build(NULL, NULL, "2000", d.size, cs, res, 1, &with_hole), 0);
    vb_pipeline_opts_t o = {.workers = 2, .write_zeros = true};
    cr_assert_eq(vb_pipeline_restore(r, &o, with_hole, mem_write, &old, &st), 0, "%s",
                 vb_error_msg());
    cr_assert_eq(memcmp(old.data, d.data, cs), 0);
    for (uint64_t i = cs; i < d.size; i++)
        cr_assert_eq(old.data[i], 0, "byte %llu of a hole was not zeroed", (unsigned long long)i);
    cr_assert_eq(old.data[d.size], 0xCD, "wrote past the capacity");
    free(back);
    free(old.data);
    free(d.data);
    vb_index_destroy(&idx);
    vb_index_destroy(&with_hole);
    vb_repo_destroy(&r);
}

/* Counts what a backup reads, and refuses any read that is not inside [lo_ok, hi_ok) ranges. */
typedef struct {
    mem_disk_t *disk;
    const vb_extent_t *allowed;
    size_t n_allowed;
    uint64_t bytes, calls;
} counting_t;

static int counting_read(void *ctx, void *buf, size_t len, uint64_t off)
{
    counting_t *c = ctx;
    bool inside = false;
    for (size_t i = 0; i < c->n_allowed && !inside; i++)
        inside =
            off >= c->allowed[i].offset && off + len <= c->allowed[i].offset + c->allowed[i].length;
    cr_assert(inside, "read of %zu bytes at %" PRIu64 " outside the allocated blocks", len, off);
    __atomic_add_fetch(&c->bytes, len, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->calls, 1, __ATOMIC_RELAXED);
    return mem_read(c->disk, buf, len, off);
}

Test(pipeline, full_backup_reads_only_the_allocated_blocks)
{
    const uint32_t cs = 1u << 20;
    vb_repo_t *r = make_repo("alloc", cs, false);
    mem_disk_t d = {.size = 8ull * cs, .fail_at = UINT64_MAX};
    d.data = calloc(1, d.size);
    /* per chunk: 128 KiB of data, a 4 KiB gap, 60 KiB of data, then a 256 KiB gap and 64 KiB */
    vb_extent_t ext[24], reads[16];
    size_t n = 0, nr = 0;
    uint64_t allocated = 0;
    for (uint64_t k = 0; k < 8; k++) {
        uint64_t base = k * cs + (k % 3) * 64 * 1024;
        vb_extent_t runs[3] = {
            {base, 128 * 1024}, {base + 132 * 1024, 60 * 1024}, {base + 448 * 1024, 64 * 1024}};
        for (int j = 0; j < 3; j++) {
            tu_fill_random(d.data + runs[j].offset, runs[j].length, 40 + k * 3 + (uint64_t)j);
            ext[n++] = runs[j];
            allocated += runs[j].length;
        }
        reads[nr++] = (vb_extent_t){base, 192 * 1024}; /* the 4 KiB gap is read through */
        reads[nr++] = runs[2];
    }
    /* the reference: the whole disk read, chunk by chunk */
    vb_pipeline_opts_t whole = {.workers = 2};
    vb_index_t *expect = backup(r, &whole, &d, NULL, NULL, 0, NULL);
    /* the longer holes hold garbage now: they must never be read */
    mem_disk_t g = {.size = d.size, .fail_at = UINT64_MAX};
    g.data = malloc(g.size);
    memset(g.data, 0xAA, g.size);
    for (size_t i = 0; i < nr; i++) /* what is read, short gaps included (holes read as zeros) */
        memcpy(g.data + reads[i].offset, d.data + reads[i].offset, reads[i].length);
    counting_t c = {.disk = &g, .allowed = reads, .n_allowed = nr};
    vb_pipeline_opts_t o = {.workers = 3, .extents_allocated = true};
    vb_chunk_result_t *res = NULL;
    size_t count = 0;
    vb_pipeline_stats_t st;
    cr_assert_eq(vb_pipeline_backup_collect(r, &o, "2000", g.size, ext, n, counting_read, &c, &res,
                                            &count, &st),
                 0, "%s", vb_error_msg());
    cr_assert_eq(count, 8);
    for (size_t i = 0; i < count; i++)
        cr_assert_eq(memcmp(res[i].digest.b, expect->digests[i].b, VB_DIGEST_LEN), 0,
                     "chunk %zu differs from the whole-disk read", i);
    cr_assert_eq(c.bytes, allocated + 8 * 4 * 1024, "read %" PRIu64 " bytes", c.bytes);
    cr_assert_eq(c.calls, 16, "one read per run, short gaps read through");
    free(res);
    free(g.data);
    free(d.data);
    vb_index_destroy(&expect);
    vb_repo_destroy(&r);
}

/* The allocation map of an incremental's chunks, as a disk answers it: the runs of `map` inside
 * the range asked, counting the questions. fail: the disk cannot say. */
typedef struct {
    const vb_extent_t *map;
    size_t n;
    unsigned asked;
    bool fail;
} alloc_map_t;

static int map_allocated(void *ctx, uint64_t off, uint64_t len, vb_extent_list_t *out)
{
    alloc_map_t *m = ctx;
    m->asked++;
    if (m->fail)
        return vb_error_set(VB_EUNSUPPORTED, "no allocation map here");
    for (size_t i = 0; i < m->n; i++) {
        uint64_t s = m->map[i].offset, e = s + m->map[i].length;
        s = s > off ? s : off;
        e = e < off + len ? e : off + len;
        if (s < e && vb_extent_list_add(out, s, e - s) != 0)
            return VB_ENOMEM;
    }
    return 0;
}

/* An incremental reads the chunks its changed areas touch, but not their holes: those read as
 * zeros without a read (a hole costs a zeroed page per 4 KiB from a file, zeros over NBD). A
 * changed chunk that is all hole now (trimmed) is a zero chunk, read not at all. A disk that
 * cannot say where its data is gets its chunks read whole. */
Test(pipeline, incremental_skips_the_holes_of_the_chunks_it_reads)
{
    const uint32_t cs = 1u << 20;
    vb_repo_t *r = make_repo("incr-holes", cs, false);
    mem_disk_t d = {.size = 8ull * cs, .fail_at = UINT64_MAX};
    d.data = calloc(1, d.size);
    /* data in chunks 1, 3 and 6 (two runs in 6); chunk 5 holds none */
    vb_extent_t map[4] = {{1 * cs + 64 * 1024, 256 * 1024},
                          {3 * cs, 512 * 1024},
                          {6 * cs + 128 * 1024, 64 * 1024},
                          {6 * cs + 768 * 1024, 128 * 1024}};
    for (size_t i = 0; i < 4; i++)
        tu_fill_random(d.data + map[i].offset, map[i].length, 90 + i);
    vb_extent_t changed[4] = {{1 * cs + 64 * 1024, 64 * 1024},
                              {3 * cs + 448 * 1024, 128 * 1024},
                              {5 * cs + 256 * 1024, 64 * 1024},
                              {6 * cs + 768 * 1024, 4096}};
    vb_pipeline_opts_t whole = {.workers = 2};
    vb_index_t *expect = backup(r, &whole, &d, NULL, NULL, 0, NULL);
    /* holes hold garbage now: a read of one would change a digest (and the reads are checked) */
    mem_disk_t g = {.size = d.size, .fail_at = UINT64_MAX};
    g.data = malloc(g.size);
    memset(g.data, 0xAA, g.size);
    for (size_t i = 0; i < 4; i++)
        memcpy(g.data + map[i].offset, d.data + map[i].offset, map[i].length);
    counting_t c = {.disk = &g, .allowed = map, .n_allowed = 4};
    alloc_map_t m = {.map = map, .n = 4};
    vb_pipeline_opts_t o = {.workers = 3, .allocated = map_allocated, .allocated_ctx = &m};
    vb_chunk_result_t *res = NULL;
    size_t count = 0;
    vb_pipeline_stats_t st;
    cr_assert_eq(vb_pipeline_backup_collect(r, &o, "2000", g.size, changed, 4, counting_read, &c,
                                            &res, &count, &st),
                 0, "%s", vb_error_msg());
    cr_assert_eq(count, 4, "one result per changed chunk");
    const uint64_t chunk_of[4] = {1, 3, 5, 6};
    for (size_t i = 0; i < count; i++) {
        cr_assert_eq(res[i].offset, chunk_of[i] * cs);
        cr_assert_eq(memcmp(res[i].digest.b, expect->digests[chunk_of[i]].b, VB_DIGEST_LEN), 0,
                     "chunk %" PRIu64 " differs from the whole-disk read", chunk_of[i]);
    }
    cr_assert(vb_digest_is_zero(&res[2].digest), "the chunk that is all hole is a zero chunk");
    cr_assert_eq(c.bytes, (256 + 512 + 64 + 128) * 1024, "read %" PRIu64 " bytes", c.bytes);
    cr_assert_eq(m.asked, 1, "changed chunks within 4 MiB share one question");
    free(res);

    /* no map: every changed chunk read whole, from a disk whose holes read as zeros */
    alloc_map_t none = {.fail = true};
    o.allocated_ctx = &none;
    vb_extent_t all = {0, d.size};
    counting_t cd = {.disk = &d, .allowed = &all, .n_allowed = 1};
    cr_assert_eq(vb_pipeline_backup_collect(r, &o, "2000", d.size, changed, 4, counting_read, &cd,
                                            &res, &count, &st),
                 0, "%s", vb_error_msg());
    cr_assert_eq(count, 4);
    for (size_t i = 0; i < count; i++)
        cr_assert_eq(memcmp(res[i].digest.b, expect->digests[chunk_of[i]].b, VB_DIGEST_LEN), 0);
    cr_assert_eq(cd.bytes, 4ull * cs, "the chunks are read whole");
    free(res);
    free(g.data);
    free(d.data);
    vb_index_destroy(&expect);
    vb_repo_destroy(&r);
}

/* Format 2: the pipeline's chunks go into packs (each worker seals its own at the end) and one
 * index object per backup; a reopened repository finds them through that index: a second backup
 * of the same disk stores nothing, restore and verify read byte for byte from the packs. */
Test(pipeline, format2_packs_round_trip_and_dedup_after_reopen)
{
    for (int enc = 0; enc < 2; enc++) {
        char path[4096], key[4096], packs[4096], index[4096];
        snprintf(path, sizeof path, "%s/p2%d", s_dir, enc);
        snprintf(key, sizeof key, "%s/p2%d.key", s_dir, enc);
        snprintf(packs, sizeof packs, "%s/packs", path);
        snprintf(index, sizeof index, "%s/index", path);
        tu_write_key(key, 11);
        vb_repo_params_t p = {.chunk_size = 64u << 10, .compression_level = 3,
                              .key_file = enc ? key : NULL, .format = 2,
                              .pack_size = 4u << 20};
        cr_assert_eq(vb_repo_init(path, &p), 0, "%s", vb_error_msg());
        vb_repo_t *r = vb_repo_open(path, enc ? key : NULL);
        cr_assert_not_null(r, "%s", vb_error_msg());
        cr_assert_eq(vb_repo_format(r), 2);
        mem_disk_t d = make_disk(64u << 10, 200, 77 + (uint64_t)enc);
        vb_pipeline_opts_t o = {.workers = 3};
        vb_pipeline_stats_t st;
        vb_index_t *idx = backup(r, &o, &d, NULL, NULL, 0, &st);
        cr_assert_eq(st.chunks_new, 151, "%" PRIu64, st.chunks_new);
        size_t npacks = tu_count_files(packs, "");
        cr_assert(npacks >= 1 && npacks <= 3 + 2, "%zu packs for 151 chunks, 3 workers", npacks);
        cr_assert_eq(tu_count_files(index, ""), 1, "one index object per backup");
        char chunks[4096];
        snprintf(chunks, sizeof chunks, "%s/chunks", path);
        cr_assert_eq(tu_count_files(chunks, ""), 0, "no chunk files in format 2");
        cr_assert_eq(vb_index_write(r, "rp1-2000", idx), 0, "%s", vb_error_msg());
        vb_repo_destroy(&r);

        r = vb_repo_open(path, enc ? key : NULL);
        cr_assert_not_null(r, "%s", vb_error_msg());
        restore_and_compare(r, &o, idx, &d);
        vb_pipeline_stats_t vs;
        cr_assert_eq(vb_pipeline_verify(r, &o, idx, NULL, NULL, &vs), 0, "%s", vb_error_msg());
        cr_assert_eq(vs.chunks, 151);
        vb_index_t *again = backup(r, &o, &d, NULL, NULL, 0, &st);
        cr_assert_eq(st.chunks_new, 0, "the reopened repository knows every chunk");
        cr_assert_eq(tu_count_files(packs, ""), npacks);
        cr_assert_eq(tu_count_files(index, ""), 1, "nothing new, no new index object");
        vb_repo_stats_t rs;
        cr_assert_eq(vb_repo_stats(r, &rs), 0, "%s", vb_error_msg());
        cr_assert_eq(rs.chunks, 151);
        cr_assert_eq(rs.packs, npacks);
        cr_assert_eq(rs.raw_bytes, rs.logical_bytes, "the trailers list every chunk's size");
        cr_assert(rs.stored_bytes > 0 && rs.compression_ratio > 1.0, "%f", rs.compression_ratio);
        vb_gc_stats_t gs;
        cr_assert_eq(vb_repo_gc(r, time(NULL), true, &gs), 0, "%s", vb_error_msg());
        cr_assert_eq(gs.packs.packs_deleted + gs.packs.packs_rewritten, 0,
                     "every chunk is live: no pack to delete or rewrite");
        vb_index_destroy(&again);
        vb_index_destroy(&idx);
        free(d.data);
        vb_repo_destroy(&r);
    }
}

/* The pack file holding the copy of chunk `d` the index finds (two writers may both have stored
 * it), and where its image is in it (from the packs' trailers). */
static void find_in_packs(vb_repo_t *r, const char *repo_path, const vb_digest_t *d, char *file,
                          size_t filesz, vb_pack_entry_t *where)
{
    vb_repo_place_t pl;
    cr_assert(vb_repo_chunk_place(r, d, &pl));
    char packs[4096];
    snprintf(packs, sizeof packs, "%s/packs", repo_path);
    DIR *shards = opendir(packs);
    cr_assert_not_null(shards);
    struct dirent *s, *f;
    while ((s = readdir(shards))) {
        char sub[4200];
        snprintf(sub, sizeof sub, "%s/%s", packs, s->d_name);
        DIR *dir = s->d_name[0] == '.' ? NULL : opendir(sub);
        while (dir && (f = readdir(dir))) {
            char name[600];
            vb_pack_id_t id;
            vb_pack_entry_t *e = NULL;
            size_t n = 0;
            snprintf(name, sizeof name, "packs/%s/%s", s->d_name, f->d_name);
            if (vb_pack_parse_name(name, &id) != 0 ||
                vb_pack_read_trailer(vb_repo_store(r), &id, &e, &n) != 0)
                continue;
            for (size_t i = 0; i < n; i++)
                if (memcmp(e[i].digest.b, d->b, VB_DIGEST_LEN) == 0 &&
                    memcmp(&pl.pack, id.b, sizeof pl.pack) == 0) {
                    *where = e[i];
                    snprintf(file, filesz, "%s/%s", sub, f->d_name);
                    free(e);
                    closedir(dir);
                    closedir(shards);
                    return;
                }
            free(e);
        }
        if (dir)
            closedir(dir);
    }
    cr_assert_fail("chunk not in any pack");
}

/* Format 2: restore and verify read each pack's chunks together (one read per pack here: every
 * chunk of each pack is referenced), restore byte-identical, and a flipped byte in one chunk of
 * a pack is still named at both offsets that reference it, while the rest of its pack verifies. */
Test(pipeline, format2_restore_and_verify_read_packs_in_runs_and_name_bad_chunks)
{
    uint32_t cs = 64u << 10;
    char path[4096], packs[4096];
    snprintf(path, sizeof path, "%s/runs", s_dir);
    snprintf(packs, sizeof packs, "%s/packs", path);
    vb_repo_params_t p = {.chunk_size = cs, .compression_level = 3, .pack_size = 4u << 20};
    cr_assert_eq(vb_repo_init(path, &p), 0, "%s", vb_error_msg());
    vb_repo_t *r = vb_repo_open(path, NULL);
    cr_assert_not_null(r, "%s", vb_error_msg());
    cr_assert_eq(vb_repo_format(r), 2, "format 2 is the default");
    mem_disk_t d = make_disk(cs, 200, 91);
    memcpy(d.data + 4 * (uint64_t)cs, d.data, cs); /* chunk 4 repeats chunk 0 */
    vb_pipeline_opts_t o = {.workers = 3}; /* three workers filling one open pack at a time */
    vb_pipeline_stats_t st, vs, rs;
    vb_index_t *idx = backup(r, &o, &d, NULL, NULL, 0, &st);
    size_t npacks = tu_count_files(packs, "");
    cr_assert(npacks >= 1, "%zu packs", npacks);

    /* each pack in reads of up to VB_PIPELINE_READ_UNIT */
    uint64_t most = st.bytes_stored / VB_PIPELINE_READ_UNIT + npacks;
    restore_compare_stats(r, &o, idx, &d, &rs);
    cr_assert_leq(rs.reads, most, "restore: %" PRIu64 " reads for %zu packs", rs.reads, npacks);
    cr_assert_eq(vb_pipeline_verify(r, &o, idx, NULL, NULL, &vs), 0, "%s", vb_error_msg());
    cr_assert_leq(vs.reads, most, "verify: %" PRIu64 " reads for %zu packs", vs.reads, npacks);
    cr_assert_eq(vs.chunks, st.chunks - st.chunks_zero);
    cr_assert_lt(vs.reads * 10, vs.chunks, "not one read per chunk");

    char file[4400];
    vb_pack_entry_t where;
    find_in_packs(r, path, &idx->digests[0], file, sizeof file, &where);
    tu_flip_byte(file, (off_t)(where.offset + where.length / 2));
    reports_t rep = {0};
    cr_assert_eq(vb_pipeline_verify(r, &o, idx, on_bad, &rep, &vs), VB_ECORRUPT);
    cr_assert_eq(rep.n, 2, "%d bad", rep.n);
    cr_assert((rep.offsets[0] == 0 && rep.offsets[1] == 4 * (uint64_t)cs) ||
              (rep.offsets[1] == 0 && rep.offsets[0] == 4 * (uint64_t)cs));
    cr_assert_eq(rep.codes[0], VB_ECORRUPT);
    cr_assert_eq(vs.chunks_bad, 2);
    mem_disk_t out = {.size = d.size, .fail_at = UINT64_MAX};
    out.data = malloc(out.size);
    memset(out.data, 0xAB, out.size);
    cr_assert_eq(vb_pipeline_restore(r, &o, idx, mem_write, &out, NULL), VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "disk 2000 offset "), "%s", vb_error_msg());
    for (uint64_t i = 0; i < cs; i++)
        cr_assert(out.data[i] == 0xAB && out.data[4 * (uint64_t)cs + i] == 0xAB,
                  "restore wrote bytes of a damaged chunk");
    free(out.data);
    vb_index_destroy(&idx);
    free(d.data);
    vb_repo_destroy(&r);
}

/* Format 2 at the default pack size (16 MiB): a pack holding more than 8 MiB of a disk's chunks
 * (about 250 chunks) is read front to back in VB_PIPELINE_READ_UNIT reads by verify and by
 * restore, not chunk by chunk. */
Test(pipeline, format2_a_default_pack_is_read_in_runs)
{
    uint32_t cs = 64u << 10;
    char path[4096], packs[4096];
    snprintf(path, sizeof path, "%s/once", s_dir);
    snprintf(packs, sizeof packs, "%s/packs", path);
    vb_repo_params_t p = {.chunk_size = cs, .compression_level = 3};
    cr_assert_eq(vb_repo_init(path, &p), 0, "%s", vb_error_msg());
    vb_repo_t *r = vb_repo_open(path, NULL);
    cr_assert_not_null(r, "%s", vb_error_msg());
    mem_disk_t d = make_disk(cs, 640, 5);
    vb_pipeline_opts_t one = {.workers = 1}, two = {.workers = 2};
    vb_pipeline_stats_t st, vs, rs;
    vb_index_t *idx = backup(r, &one, &d, NULL, NULL, 0, &st);
    cr_assert_eq(tu_count_files(packs, ""), 1, "one writer, one pack");
    cr_assert_gt(st.bytes_stored, 8u << 20, "the pack holds %" PRIu64 " bytes", st.bytes_stored);
    uint64_t most = st.bytes_stored / VB_PIPELINE_READ_UNIT + 1;
    cr_assert_eq(vb_pipeline_verify(r, &two, idx, NULL, NULL, &vs), 0, "%s", vb_error_msg());
    cr_assert_leq(vs.reads, most, "verify read the pack in %" PRIu64 " reads", vs.reads);
    restore_compare_stats(r, &two, idx, &d, &rs);
    cr_assert_leq(rs.reads, most, "restore read the pack in %" PRIu64 " reads", rs.reads);
    cr_assert_lt(rs.reads * 20, vs.chunks, "%" PRIu64 " reads, %" PRIu64 " chunks", rs.reads,
                 vs.chunks);
    vb_index_destroy(&idx);
    free(d.data);
    vb_repo_destroy(&r);
}

/* Restore and verify fetching ahead (a store that keeps several requests in flight, as S3 does:
 * here a directory opened with two): each worker reads the next unit on a helper thread while
 * it decodes the one in hand. Over packs of several units, encrypted, the restore is
 * byte-identical, reads stay one per run, and a flipped byte is still named at both offsets
 * that reference its chunk while everything else verifies. */
Test(pipeline, format2_fetching_ahead_restores_byte_identical_and_names_bad_chunks)
{
    uint32_t cs = 64u << 10;
    char path[4096], key[4096];
    snprintf(path, sizeof path, "%s/ahead", s_dir);
    snprintf(key, sizeof key, "%s/ahead.key", s_dir);
    tu_write_key(key, 17);
    vb_repo_params_t p = {.chunk_size = cs, .pack_size = 4u << 20, .key_file = key};
    cr_assert_eq(vb_repo_init(path, &p), 0, "%s", vb_error_msg());
    vb_repo_t *r = vb_repo_open_opts(path, key, &(vb_store_opts_t){.puts_in_flight = 2});
    cr_assert_not_null(r, "%s", vb_error_msg());
    cr_assert_eq(vb_store_puts_in_flight(vb_repo_store(r)), 2);
    mem_disk_t d = make_disk(cs, 320, 93); /* 20 MiB: several 2 MiB units per pack */
    memcpy(d.data + 7 * (uint64_t)cs, d.data + 300 * (uint64_t)cs, cs); /* 7 repeats 300 */
    vb_pipeline_opts_t o = {.workers = 3};
    vb_pipeline_stats_t st, vs, rs;
    vb_index_t *idx = backup(r, &o, &d, NULL, NULL, 0, &st);
    restore_compare_stats(r, &o, idx, &d, &rs);
    cr_assert_eq(rs.chunks, st.chunks - st.chunks_zero);
    cr_assert_eq(vb_pipeline_verify(r, &o, idx, NULL, NULL, &vs), 0, "%s", vb_error_msg());
    cr_assert_eq(vs.chunks, st.chunks - st.chunks_zero);
    cr_assert_lt(vs.reads * 4, vs.chunks, "%" PRIu64 " reads: not one per chunk", vs.reads);

    char file[4400];
    vb_pack_entry_t where;
    find_in_packs(r, path, &idx->digests[300], file, sizeof file, &where);
    tu_flip_byte(file, (off_t)(where.offset + where.length / 2));
    reports_t rep = {0};
    cr_assert_eq(vb_pipeline_verify(r, &o, idx, on_bad, &rep, &vs), VB_ECORRUPT);
    cr_assert_eq(rep.n, 2, "%d bad", rep.n);
    cr_assert((rep.offsets[0] == 7 * (uint64_t)cs && rep.offsets[1] == 300 * (uint64_t)cs) ||
              (rep.offsets[1] == 7 * (uint64_t)cs && rep.offsets[0] == 300 * (uint64_t)cs));
    cr_assert_eq(vs.chunks_bad, 2);
    vb_index_destroy(&idx);
    free(d.data);
    vb_repo_destroy(&r);
}
