#include <criterion/criterion.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pipeline/pipeline.h"
#include "repo/gc.h"
#include "repo/index.h"
#include "repo/packcheck.h"
#include "repo/repo.h"
#include "repo_testutil.h"

#define CS (64u << 10)

static char *s_dir;
static char s_path[4096];

static void setup(void)
{
    s_dir = tu_tmpdir();
    snprintf(s_path, sizeof s_path, "%s/r", s_dir);
}

static void teardown(void)
{
    tu_rmrf(s_dir);
    s_dir = NULL;
}

TestSuite(gc, .init = setup, .fini = teardown);

static int sum_sizes(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)name;
    *(uint64_t *)arg += st->size;
    return 0;
}

static vb_repo_t *make_repo(void)
{
    /* format 1: these tests age, count and quarantine chunk files (make_repo2: packs) */
    vb_repo_params_t p = {.chunk_size = CS, .compression_level = 1, .format = 1};
    cr_assert_eq(vb_repo_init(s_path, &p), 0, "%s", vb_error_msg());
    vb_repo_t *r = vb_repo_open(s_path, NULL);
    cr_assert_not_null(r);
    return r;
}

typedef struct {
    uint8_t *data;
    uint64_t size;
} disk_t;

static int disk_read(void *ctx, void *buf, size_t len, uint64_t off)
{
    disk_t *d = ctx;
    memcpy(buf, d->data + off, len);
    return 0;
}

/* A disk of `chunks` random chunks, seeds seed..seed+chunks-1 (equal seeds: equal chunks). */
static disk_t make_disk(unsigned chunks, uint64_t seed)
{
    disk_t d = {.size = (uint64_t)chunks * CS};
    d.data = malloc(d.size);
    for (unsigned i = 0; i < chunks; i++)
        tu_fill_random(d.data + (uint64_t)i * CS, CS, seed + i);
    return d;
}

/* Backs up the whole of d with `workers` pipeline workers; writes its index as `name` (NULL:
 * not written). */
static vb_index_t *backup_with(vb_repo_t *r, disk_t *d, const char *name, unsigned workers)
{
    vb_chunk_result_t *res = NULL;
    size_t n = 0;
    vb_extent_t all = {0, d->size};
    vb_pipeline_opts_t o = {.workers = workers};
    cr_assert_eq(vb_pipeline_backup_collect(r, &o, "2000", d->size, &all, 1, disk_read, d, &res,
                                            &n, NULL),
                 0, "%s", vb_error_msg());
    vb_index_t *idx = NULL;
    cr_assert_eq(vb_index_build(NULL, NULL, "2000", d->size, CS, res, n, &idx), 0);
    free(res);
    if (name)
        cr_assert_eq(vb_index_write(r, name, idx), 0, "%s", vb_error_msg());
    return idx;
}

static vb_index_t *backup(vb_repo_t *r, disk_t *d, const char *name)
{
    return backup_with(r, d, name, 2);
}

/* Sets the mtime of every chunk file to `ago` seconds in the past. */
static void age_all_chunks(vb_repo_t *r, const vb_index_t *idx, int ago)
{
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= ago;
    ts[1] = ts[0];
    for (uint64_t i = 0; i < idx->count; i++) {
        char p[4096];
        cr_assert_eq(vb_repo_chunk_path(r, &idx->digests[i], p, sizeof p), 0);
        cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
    }
}

static size_t count_chunks(void)
{
    char c[4096];
    snprintf(c, sizeof c, "%s/chunks", s_path);
    return tu_count_files(c, "");
}

static bool verify_ok(vb_repo_t *r, const vb_index_t *idx)
{
    vb_pipeline_opts_t o = {.workers = 2};
    return vb_pipeline_verify(r, &o, idx, NULL, NULL, NULL) == 0;
}

Test(gc, sweeps_only_unreferenced_chunks_older_than_the_cutoff)
{
    vb_repo_t *r = make_repo();
    disk_t a = make_disk(8, 100), b = make_disk(8, 104); /* chunks 104..107 shared */
    vb_index_t *ai = backup(r, &a, "a"), *bi = backup(r, &b, "b");
    cr_assert_eq(count_chunks(), 12);
    age_all_chunks(r, ai, 3600);
    age_all_chunks(r, bi, 3600);
    cr_assert_eq(vb_index_remove(r, "a"), 0);

    vb_gc_stats_t st;
    cr_assert_eq(vb_repo_gc(r, time(NULL), true, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(st.swept, 4, "dry run counts %llu", (unsigned long long)st.swept);
    cr_assert_eq(count_chunks(), 12, "dry run removed files");

    /* A cutoff older than the chunks: nothing may go. */
    cr_assert_eq(vb_repo_gc(r, time(NULL) - 7200, false, &st), 0);
    cr_assert_eq(st.swept, 0);
    cr_assert_eq(st.kept_recent, 4);

    cr_assert_eq(vb_repo_gc(r, time(NULL), false, &st), 0);
    cr_assert_eq(st.marked, 8);
    cr_assert_eq(st.swept, 4);
    cr_assert_eq(count_chunks(), 8);
    cr_assert(verify_ok(r, bi), "GC removed a chunk that index b references");
    cr_assert_not(verify_ok(r, ai));
    vb_index_destroy(&ai);
    vb_index_destroy(&bi);
    free(a.data);
    free(b.data);
    vb_repo_destroy(&r);
}

Test(gc, a_backup_that_rereferences_an_old_chunk_keeps_it)
{
    vb_repo_t *r = make_repo();
    disk_t a = make_disk(6, 200);
    vb_index_t *ai = backup(r, &a, "a");
    age_all_chunks(r, ai, 3600);
    cr_assert_eq(vb_index_remove(r, "a"), 0); /* a pruned: its chunks are garbage now */

    time_t job_start = time(NULL);      /* a new backup of the same data starts ... */
    vb_index_t *again = backup(r, &a, NULL); /* ... and re-references the old chunks */
    vb_gc_stats_t st;
    /* GC's cutoff is the start of the oldest running job. */
    cr_assert_eq(vb_repo_gc(r, job_start, false, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(st.swept, 0, "GC swept %llu chunks a running job references",
                 (unsigned long long)st.swept);
    cr_assert_eq(vb_index_write(r, "again", again), 0);
    cr_assert(verify_ok(r, again));
    vb_index_destroy(&ai);
    vb_index_destroy(&again);
    free(a.data);
    vb_repo_destroy(&r);
}

typedef struct {
    vb_repo_t *repo;
    time_t cutoff;
    atomic_bool done;
    int runs;
    int rc;
} gc_loop_t;

static void *gc_thread(void *arg)
{
    gc_loop_t *g = arg;
    /* Keep collecting while the backup runs, then once more after it finished. */
    for (bool last = false; !last;) {
        last = atomic_load(&g->done);
        vb_gc_stats_t st;
        g->rc = vb_repo_gc(g->repo, g->cutoff, false, &st);
        if (g->rc)
            break;
        g->runs++;
    }
    return NULL;
}

static vb_repo_t *make_repo2(void);
static void age_all_packs(int ago);

/* Format 1 or 2: a backup re-referencing old garbage while collections loop loses nothing. */
static void s_race(int format)
{
    vb_repo_t *r = format == 2 ? make_repo2() : make_repo();
    disk_t a = make_disk(256, 300);
    vb_index_t *ai = backup(r, &a, "a");
    if (format == 2)
        age_all_packs(3600);
    else
        age_all_chunks(r, ai, 3600);
    cr_assert_eq(vb_index_remove(r, "a"), 0); /* all 256 old chunks are garbage now */

    /* A new job starts; collections run in a loop (cutoff: the job's start) while its backup
     * re-references every other old chunk. */
    disk_t c = {.size = 128 * (uint64_t)CS};
    c.data = malloc(c.size);
    for (uint64_t i = 0; i < 128; i++)
        memcpy(c.data + i * CS, a.data + 2 * i * CS, CS);
    gc_loop_t g = {.repo = r, .cutoff = time(NULL)};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, gc_thread, &g), 0);
    vb_index_t *again = NULL;
    for (int round = 0; round < 3; round++) {
        vb_index_destroy(&again);
        again = backup(r, &c, NULL);
    }
    atomic_store(&g.done, true);
    pthread_join(t, NULL);
    cr_assert_eq(g.rc, 0, "%s", vb_error_msg());
    cr_assert_eq(vb_index_write(r, "again", again), 0);
    cr_assert(verify_ok(r, again), "a chunk of the running backup was swept");
    if (format == 1)
        cr_assert_eq(count_chunks(), 128, "the chunks nobody references were not swept");
    vb_index_destroy(&ai);
    vb_index_destroy(&again);
    free(a.data);
    free(c.data);
    vb_repo_destroy(&r);
    /* and a fresh process (index loaded from the objects GC left) reads every chunk */
    r = vb_repo_open(s_path, NULL);
    cr_assert_not_null(r, "%s", vb_error_msg());
    vb_index_t *back = NULL;
    cr_assert_eq(vb_index_read(r, "again", &back), 0, "%s", vb_error_msg());
    cr_assert(verify_ok(r, back), "a chunk of the committed backup is gone");
    vb_index_destroy(&back);
    vb_repo_destroy(&r);
}

Test(gc, racing_a_running_backup_never_loses_its_chunks)
{
    s_race(1);
}

Test(gc, leftovers_and_a_damaged_index)
{
    vb_repo_t *r = make_repo();
    disk_t a = make_disk(4, 400);
    vb_index_t *ai = backup(r, &a, "a");
    age_all_chunks(r, ai, 3600);
    /* A temp file from a crashed writer, old; and a chunk set aside by an interrupted GC. */
    char tmp[4096], p[4096], aside[4096];
    char hex[65];
    vb_digest_hex(&ai->digests[0], hex);
    snprintf(tmp, sizeof tmp, "%s/chunks/%.2s/.tmp.dead.1.1", s_path, hex);
    tu_write_file(tmp, "x", 1);
    struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, tmp, old, 0), 0);
    cr_assert_eq(vb_repo_chunk_path(r, &ai->digests[0], p, sizeof p), 0);
    snprintf(aside, sizeof aside, "%s/chunks/%.2s/.gc.%s", s_path, hex, hex);
    cr_assert_eq(rename(p, aside), 0);

    vb_gc_stats_t st;
    cr_assert_eq(vb_repo_gc(r, time(NULL), false, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(st.temp_removed, 1);
    cr_assert_eq(access(tmp, F_OK), -1);
    cr_assert_eq(access(p, F_OK), 0, "chunk set aside by an interrupted GC was not restored");
    cr_assert(verify_ok(r, ai));

    /* An unreadable index stops the collection before anything is swept. */
    disk_t b = make_disk(4, 500);
    vb_index_t *bi = backup(r, &b, "b");
    age_all_chunks(r, bi, 3600);
    cr_assert_eq(vb_index_remove(r, "b"), 0);
    char idx[4096];
    snprintf(idx, sizeof idx, "%s/indexes/a.idx", s_path);
    cr_assert_eq(truncate(idx, 40), 0);
    size_t before = count_chunks();
    cr_assert_eq(vb_repo_gc(r, time(NULL), false, &st), VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "nothing swept"), "%s", vb_error_msg());
    cr_assert_eq(count_chunks(), before);
    vb_index_destroy(&ai);
    vb_index_destroy(&bi);
    free(a.data);
    free(b.data);
    vb_repo_destroy(&r);
}

static void age_index(const char *name, int ago)
{
    char p[4096];
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= ago;
    ts[1] = ts[0];
    snprintf(p, sizeof p, "%s/indexes/%s.idx", s_path, name);
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
}

/* An index no restore point owns (a backup that failed before its commit) keeps nothing alive
 * once it is older than every running job; GC names it. A newer one may be a running job's. */
Test(gc, an_index_no_restore_point_owns_is_reported_and_keeps_nothing)
{
    vb_repo_t *r = make_repo();
    disk_t a = make_disk(4, 300), b = make_disk(4, 400);
    vb_index_t *ai = backup(r, &a, "rp1-2000"), *bi = backup(r, &b, "rp2-2000");
    age_all_chunks(r, ai, 3600);
    age_all_chunks(r, bi, 3600);
    const char *owned[] = {"rp1-2000"};

    /* rp2's index is new: a running job may be writing its restore point */
    vb_gc_owners_t own = {.owned = owned, .owned_count = 1};
    vb_gc_stats_t st;
    cr_assert_eq(vb_repo_gc_owned(r, &own, time(NULL) - 60, false, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(st.orphan_indexes, 0);
    cr_assert_eq(st.swept, 0);
    cr_assert(verify_ok(r, bi));

    age_index("rp2-2000", 3600);
    own = (vb_gc_owners_t){.owned = owned, .owned_count = 1};
    cr_assert_eq(vb_repo_gc_owned(r, &own, time(NULL), false, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(st.orphan_indexes, 1);
    cr_assert_eq(own.orphan_count, 1);
    cr_assert_str_eq(own.orphans[0], "rp2-2000");
    cr_assert_eq(st.swept, 4, "the orphan's chunks were kept: swept %llu",
                 (unsigned long long)st.swept);
    cr_assert(verify_ok(r, ai), "GC removed a chunk an owned index references");
    vb_index_list_free(own.orphans, own.orphan_count);
    vb_index_destroy(&ai);
    vb_index_destroy(&bi);
    free(a.data);
    free(b.data);
    vb_repo_destroy(&r);
}

/* A chunk verify found bad goes to quarantine/: the next put of its content stores it again
 * (instead of trusting the bad file), and GC removes the quarantined file after
 * VB_GC_QUARANTINE_DAYS. */
Test(gc, a_quarantined_chunk_is_stored_again_and_collected_later)
{
    vb_repo_t *r = make_repo();
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    uint8_t *buf = malloc(CS), *back = malloc(CS);
    tu_fill_random(buf, CS, 5);
    vb_digest_t d;
    uint64_t stored = 0;
    size_t got = 0;
    cr_assert_eq(vb_repo_digest(w, buf, CS, &d), 0);
    cr_assert_eq(vb_repo_chunk_put(w, &d, buf, CS, NULL), 0, "%s", vb_error_msg());
    char chunk[4096], q[4096];
    cr_assert_eq(vb_repo_chunk_path(r, &d, chunk, sizeof chunk), 0);
    tu_flip_byte(chunk, 100);
    cr_assert_eq(vb_repo_chunk_put(w, &d, buf, CS, &stored), 0);
    cr_assert_eq(stored, 0, "a bad chunk with a sound header is trusted by put");

    cr_assert_eq(vb_repo_chunk_quarantine(r, &d), 0, "%s", vb_error_msg());
    cr_assert(vb_repo_chunk_quarantined(r, &d));
    cr_assert_not(vb_repo_chunk_exists(r, &d));
    char hex[VB_DIGEST_HEX_LEN + 1];
    vb_digest_hex(&d, hex);
    snprintf(q, sizeof q, "%s/quarantine/%s", s_path, hex);
    struct stat st;
    cr_assert_eq(stat(q, &st), 0, "the bad chunk is kept for inspection");
    snprintf(q, sizeof q, "%s/quarantine", s_path);
    cr_assert_eq(stat(q, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    cr_assert_eq(vb_repo_chunk_quarantine(r, &d), VB_ENOTFOUND);

    cr_assert_eq(vb_repo_chunk_put(w, &d, buf, CS, &stored), 0, "%s", vb_error_msg());
    cr_assert_gt(stored, 0, "the next backup of this content stores it again");
    cr_assert_eq(vb_repo_chunk_get(w, &d, back, CS, &got), 0, "%s", vb_error_msg());
    cr_assert_eq(memcmp(back, buf, CS), 0);

    vb_gc_stats_t gs;
    cr_assert_eq(vb_repo_gc(r, time(NULL), false, &gs), 0, "%s", vb_error_msg());
    cr_assert_eq(gs.quarantine_removed, 0, "kept %d days", VB_GC_QUARANTINE_DAYS);
    snprintf(q, sizeof q, "%s/quarantine/%s", s_path, hex);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= (VB_GC_QUARANTINE_DAYS + 1) * 86400;
    ts[1] = ts[0];
    cr_assert_eq(utimensat(AT_FDCWD, q, ts, 0), 0);
    cr_assert_eq(vb_repo_gc(r, time(NULL), false, &gs), 0, "%s", vb_error_msg());
    cr_assert_eq(gs.quarantine_removed, 1);
    cr_assert_neq(stat(q, &st), 0, "removed after %d days", VB_GC_QUARANTINE_DAYS);
    free(buf);
    free(back);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
}

/* ---------- format 2: packs ---------- */

static vb_repo_t *make_repo2(void)
{
    vb_repo_params_t p = {.chunk_size = CS, .compression_level = 1, .format = 2,
                          .pack_size = 4u << 20};
    cr_assert_eq(vb_repo_init(s_path, &p), 0, "%s", vb_error_msg());
    vb_repo_t *r = vb_repo_open(s_path, NULL);
    cr_assert_not_null(r, "%s", vb_error_msg());
    return r;
}

static int s_age_ago;
static char s_found[4096];

static int age_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag != FTW_F)
        return 0;
    struct timespec ts[2] = {{time(NULL) - s_age_ago, 0}, {time(NULL) - s_age_ago, 0}};
    return utimensat(AT_FDCWD, path, ts, 0);
}

/* Every pack written `ago` seconds in the past. */
static void age_all_packs(int ago)
{
    char d[4096];
    snprintf(d, sizeof d, "%s/packs", s_path);
    s_age_ago = ago;
    cr_assert_eq(nftw(d, age_cb, 16, FTW_PHYS), 0);
}

static size_t count_in(const char *sub)
{
    char d[4096];
    snprintf(d, sizeof d, "%s/%s", s_path, sub);
    return tu_count_files(d, "");
}

/* One worker: one pack per backup here (40 chunks of 64 KiB fit one 4 MiB pack). */
static vb_index_t *backup1(vb_repo_t *r, disk_t *d, const char *name)
{
    return backup_with(r, d, name, 1);
}

Test(gc, packs_dead_deleted_sparse_repacked_index_merged)
{
    vb_repo_t *r = make_repo2();
    disk_t a = make_disk(40, 1000), b = make_disk(40, 2000), c = make_disk(10, 2000);
    vb_index_t *ai = backup1(r, &a, "a"), *bi = backup1(r, &b, "b");
    vb_index_t *ci = backup1(r, &c, "c"); /* all 10 chunks are b's first 10: no new pack */
    cr_assert_eq(count_in("packs"), 2);
    cr_assert_eq(count_in("index"), 2);
    age_all_packs(3600);
    cr_assert_eq(vb_index_remove(r, "a"), 0);
    cr_assert_eq(vb_index_remove(r, "b"), 0); /* a's pack: dead; b's: 10 of 40 chunks live */

    vb_gc_stats_t st;
    cr_assert_eq(vb_repo_gc(r, time(NULL), true, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(st.packs.packs_deleted, 1);
    cr_assert_eq(st.packs.packs_rewritten, 1);
    cr_assert(st.packs.bytes_freed > 60u * CS, "dry run estimate %llu",
              (unsigned long long)st.packs.bytes_freed);
    cr_assert_eq(count_in("packs"), 2, "a dry run removed a pack");
    cr_assert_eq(count_in("index"), 2);

    uint64_t before = 0;
    cr_assert_eq(vb_store_list(vb_repo_store(r), "packs/", sum_sizes, &before), 0);
    cr_assert_eq(vb_repo_gc(r, time(NULL), false, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(st.marked, 10);
    cr_assert_eq(st.packs.packs_deleted, 1);
    cr_assert_eq(st.packs.packs_rewritten, 1);
    cr_assert_eq(st.packs.packs_written, 1);
    cr_assert_eq(st.packs.index_before, 2);
    cr_assert_eq(count_in("packs"), 1, "one new pack of the 10 live chunks");
    cr_assert_eq(count_in("index"), 1, "the index objects were merged into one");
    uint64_t after = 0;
    cr_assert_eq(vb_store_list(vb_repo_store(r), "packs/", sum_sizes, &after), 0);
    cr_assert_eq(before - after, st.packs.bytes_freed, "freed %llu, reported %llu",
                 (unsigned long long)(before - after), (unsigned long long)st.packs.bytes_freed);
    cr_assert(after < 12u * CS, "%llu bytes of packs left for 10 chunks",
              (unsigned long long)after);
    cr_assert(verify_ok(r, ci), "GC lost a live chunk (this process)");
    vb_repo_destroy(&r);
    r = vb_repo_open(s_path, NULL); /* loads the compacted index */
    cr_assert_not_null(r, "%s", vb_error_msg());
    cr_assert(verify_ok(r, ci), "GC lost a live chunk (a new process)");
    cr_assert_not(verify_ok(r, bi));

    /* nothing more to do: a second collection changes nothing */
    cr_assert_eq(vb_repo_gc(r, time(NULL), false, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(st.packs.packs_deleted + st.packs.packs_rewritten, 0);
    cr_assert_eq(count_in("index"), 1);
    vb_index_destroy(&ai);
    vb_index_destroy(&bi);
    vb_index_destroy(&ci);
    free(a.data);
    free(b.data);
    free(c.data);
    vb_repo_destroy(&r);
}

Test(gc, packs_a_backup_reusing_garbage_keeps_it_or_stores_it_again)
{
    vb_repo_t *r = make_repo2();
    disk_t a = make_disk(20, 3000);
    vb_index_t *ai = backup1(r, &a, "a");
    age_all_packs(3600);
    cr_assert_eq(vb_index_remove(r, "a"), 0); /* a's pack is garbage now */

    /* A running backup whose process loaded the index before the collection: it re-uses the
     * chunks of a pack GC removes under it; the pack is gone, so it stores them again. */
    vb_repo_t *running = vb_repo_open(s_path, NULL);
    cr_assert_not_null(running, "%s", vb_error_msg());
    vb_gc_stats_t st;
    cr_assert_eq(vb_repo_gc(r, time(NULL), false, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(st.packs.packs_deleted, 1);
    vb_index_t *again = backup1(running, &a, "again");
    cr_assert(verify_ok(running, again), "the running backup referenced a removed pack");

    /* Re-used after its job started (the cutoff): the pack survives a collection. */
    age_all_packs(3600);
    time_t job_start = time(NULL);
    cr_assert_eq(vb_index_remove(r, "again"), 0);
    vb_index_t *third = backup1(running, &a, NULL); /* dedups every chunk, freshens the pack */
    cr_assert_eq(vb_repo_gc(r, job_start, false, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(st.packs.packs_deleted, 0, "GC removed the pack a running job re-uses");
    cr_assert_eq(vb_index_write(running, "third", third), 0);
    cr_assert(verify_ok(r, third));
    vb_index_destroy(&ai);
    vb_index_destroy(&again);
    vb_index_destroy(&third);
    free(a.data);
    vb_repo_destroy(&running);
    vb_repo_destroy(&r);
}

Test(gc, packs_racing_a_running_backup_never_loses_its_chunks)
{
    s_race(2);
}

typedef struct {
    int n;
    char names[4][128];
} bad_list_t;

static void on_bad(void *arg, const char *name, const char *problem)
{
    bad_list_t *b = arg;
    cr_assert(problem && *problem, "no problem said for %s", name);
    if (b->n < 4)
        snprintf(b->names[b->n], sizeof b->names[0], "%s", name);
    b->n++;
}

static int first_file(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag != FTW_F)
        return 0;
    snprintf(s_found, sizeof s_found, "%s", path);
    return 1;
}

static void find_first(const char *sub)
{
    char d[4096];
    snprintf(d, sizeof d, "%s/%s", s_path, sub);
    s_found[0] = '\0';
    nftw(d, first_file, 16, FTW_PHYS);
    cr_assert(s_found[0], "no file under %s", d);
}

Test(gc, packs_check_names_a_truncated_pack_and_a_damaged_index_object)
{
    vb_repo_t *r = make_repo2();
    disk_t a = make_disk(20, 5000);
    vb_index_t *ai = backup1(r, &a, "a");
    vb_repo_destroy(&r);
    vb_packcheck_stats_t st;
    bad_list_t bad = {0};
    cr_assert_eq(vb_repo_check_packs(s_path, on_bad, &bad, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(bad.n, 0);
    cr_assert_eq(st.packs, 1);
    cr_assert_eq(st.index_objects, 1);
    cr_assert_eq(st.chunks, 20);

    find_first("packs");
    cr_assert_eq(truncate(s_found, 1000), 0);
    char pack[128];
    snprintf(pack, sizeof pack, "%s", strstr(s_found, "packs/"));
    find_first("index");
    tu_flip_byte(s_found, 20);
    const char *idx = strstr(s_found, "index/");
    bad = (bad_list_t){0};
    cr_assert_eq(vb_repo_check_packs(s_path, on_bad, &bad, &st), 0, "%s", vb_error_msg());
    cr_assert_eq(bad.n, 2);
    cr_assert_eq(st.bad, 2);
    cr_assert(!strcmp(bad.names[0], idx) || !strcmp(bad.names[1], idx), "index not named");
    cr_assert(!strcmp(bad.names[0], pack) || !strcmp(bad.names[1], pack), "%s not named: %s %s",
              pack, bad.names[0], bad.names[1]);
    vb_index_destroy(&ai);
    free(a.data);
}

/* Format 2: a copy found bad inside a pack is set aside by a quarantine record: this process and
 * every one that loads the index lack that copy, the next backup stores the chunk again in a new
 * pack and verifies clean; GC never copies the bad copy into a new pack, and drops the record
 * only once its pack is gone and VB_GC_QUARANTINE_DAYS have passed. */
Test(gc, packs_a_quarantined_copy_is_stored_again_and_never_copied)
{
    vb_repo_t *r = make_repo2();
    disk_t a = make_disk(40, 3000);
    vb_index_t *ai = backup1(r, &a, "a");
    const vb_digest_t *bad = &ai->digests[3];
    vb_repo_place_t pl;
    cr_assert(vb_repo_chunk_place(r, bad, &pl));
    find_first("packs");
    char old_pack[4096];
    snprintf(old_pack, sizeof old_pack, "%s", s_found);
    tu_flip_byte(old_pack, (off_t)(pl.offset + pl.length / 2));
    cr_assert_not(verify_ok(r, ai));

    cr_assert_eq(vb_repo_chunk_quarantine(r, bad), 0, "%s", vb_error_msg());
    cr_assert(vb_repo_chunk_quarantined(r, bad));
    cr_assert_not(vb_repo_chunk_exists(r, bad), "this process still finds the bad copy");
    cr_assert_eq(vb_repo_chunk_quarantine(r, bad), VB_ENOTFOUND);
    cr_assert_eq(count_in("quarantine"), 1);
    find_first("quarantine");
    struct stat st;
    cr_assert_eq(stat(s_found, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(st.st_size, pl.length, "the record holds the bad image for inspection");
    vb_repo_destroy(&r);

    r = vb_repo_open(s_path, NULL); /* as the next job's process */
    cr_assert_not_null(r, "%s", vb_error_msg());
    cr_assert_not(vb_repo_chunk_exists(r, bad), "a loaded index still holds the bad copy");
    cr_assert(vb_repo_chunk_quarantined(r, bad));
    vb_index_t *a2 = backup1(r, &a, "a2");
    cr_assert_eq(count_in("packs"), 2, "the chunk was not stored again");
    cr_assert(verify_ok(r, a2));
    vb_repo_destroy(&r);
    r = vb_repo_open(s_path, NULL);
    cr_assert(verify_ok(r, a2), "a reopened repository finds the bad copy again");

    /* the old pack goes by repacking: its 39 good chunks are copied, the bad copy is not */
    cr_assert_eq(vb_index_remove(r, "a"), 0);
    age_all_packs(3600);
    vb_gc_stats_t gs;
    cr_assert_eq(vb_repo_gc_ex(r, NULL, time(NULL), 100, false, &gs), 0, "%s", vb_error_msg());
    cr_assert_geq(gs.packs.packs_rewritten, 1, "%llu",
                  (unsigned long long)gs.packs.packs_rewritten);
    cr_assert_neq(stat(old_pack, &st), 0, "the old pack was not removed");
    vb_repo_destroy(&r);
    r = vb_repo_open(s_path, NULL);
    cr_assert(verify_ok(r, a2), "the bad copy was carried into a new pack");

    /* its pack gone, the record goes after VB_GC_QUARANTINE_DAYS */
    find_first("quarantine");
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= (VB_GC_QUARANTINE_DAYS + 1) * 86400;
    ts[1] = ts[0];
    cr_assert_eq(utimensat(AT_FDCWD, s_found, ts, 0), 0);
    cr_assert_eq(vb_repo_gc(r, time(NULL), false, &gs), 0, "%s", vb_error_msg());
    cr_assert_eq(gs.quarantine_removed, 1);
    cr_assert_eq(count_in("quarantine"), 0);
    vb_index_destroy(&ai);
    vb_index_destroy(&a2);
    free(a.data);
    vb_repo_destroy(&r);
}

/* Format 2: a quarantine record keeps its copy out of the index as long as the pack holding it
 * exists, however old the record is; a repack of that pack leaves the copy behind (so the chunk
 * is missing, not found bad again), and then the record can go. */
Test(gc, packs_a_quarantine_record_stays_while_its_pack_does_and_a_repack_drops_the_copy)
{
    vb_repo_t *r = make_repo2();
    disk_t a = make_disk(40, 3100);
    vb_index_t *ai = backup1(r, &a, "a");
    cr_assert_eq(vb_repo_chunk_quarantine(r, &ai->digests[0]), 0, "%s", vb_error_msg());
    find_first("quarantine");
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= (VB_GC_QUARANTINE_DAYS + 1) * 86400;
    ts[1] = ts[0];
    cr_assert_eq(utimensat(AT_FDCWD, s_found, ts, 0), 0);
    vb_gc_stats_t gs;
    cr_assert_eq(vb_repo_gc(r, time(NULL), false, &gs), 0, "%s", vb_error_msg());
    cr_assert_eq(gs.quarantine_removed, 0, "removed while its pack exists");
    cr_assert_eq(count_in("quarantine"), 1);
    vb_repo_destroy(&r);
    r = vb_repo_open(s_path, NULL);
    cr_assert_not(vb_repo_chunk_exists(r, &ai->digests[0]));

    /* the index still references the chunk, but the repack copies only the 39 others */
    age_all_packs(3600);
    cr_assert_eq(vb_repo_gc_ex(r, NULL, time(NULL), 100, false, &gs), 0, "%s", vb_error_msg());
    cr_assert_eq(gs.packs.packs_rewritten, 1);
    cr_assert_eq(gs.quarantine_removed, 1, "its pack gone, the old record goes");
    cr_assert_eq(count_in("quarantine"), 0);
    vb_repo_destroy(&r);
    r = vb_repo_open(s_path, NULL);
    cr_assert_not(vb_repo_chunk_exists(r, &ai->digests[0]), "the repack copied the bad copy");
    cr_assert(vb_repo_chunk_exists(r, &ai->digests[1]));
    vb_index_destroy(&ai);
    free(a.data);
    vb_repo_destroy(&r);
}
