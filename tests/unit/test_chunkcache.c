/* chunkcache: the bounded cache of decoded chunks with read-ahead behind `vbak serve`. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "repo/chunkcache.h"

#define CS 4096

typedef struct {
    pthread_mutex_t lock;
    unsigned loads[256]; /* per digest (its first byte) */
    unsigned total;
    int fail_first;      /* digest byte whose load fails, -1 none */
    long delay_ms;
} s_src_t;

static vb_digest_t s_digest(unsigned char n)
{
    vb_digest_t d;
    memset(&d, 0, sizeof d);
    d.b[0] = n;
    d.b[1] = 1; /* never the zero marker */
    return d;
}

/* Chunk n holds the byte n everywhere; chunk 255 is short (100 bytes). */
static int s_load(void *arg, const vb_digest_t *d, void *buf, size_t cap, size_t *len_out)
{
    s_src_t *src = arg;
    if (src->delay_ms) {
        struct timespec ts = {0, src->delay_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&src->lock);
    src->loads[d->b[0]]++;
    src->total++;
    pthread_mutex_unlock(&src->lock);
    if (d->b[0] == src->fail_first)
        return vb_error_set(VB_ECORRUPT, "chunk %u: content does not match its digest", d->b[0]);
    *len_out = d->b[0] == 255 ? 100 : cap;
    memset(buf, d->b[0], *len_out);
    return 0;
}

static s_src_t *s_src(void)
{
    static s_src_t src;
    memset(&src, 0, sizeof src);
    pthread_mutex_init(&src.lock, NULL);
    src.fail_first = -1;
    return &src;
}

static void s_read_ok(vb_chunkcache_t *c, unsigned char n)
{
    unsigned char buf[CS];
    vb_digest_t d = s_digest(n);
    cr_assert_eq(vb_chunkcache_read(c, &d, 0, CS, buf), 0, "%s", vb_error_msg());
    for (size_t i = 0; i < CS; i++)
        cr_assert_eq(buf[i], n, "chunk %u byte %zu", n, i);
}

Test(chunkcache, a_chunk_is_loaded_once_then_read_from_the_cache)
{
    s_src_t *src = s_src();
    vb_chunkcache_t *c = vb_chunkcache_new(4 * CS, CS, 0, 0, s_load, src);
    cr_assert_not_null(c, "%s", vb_error_msg());
    s_read_ok(c, 7);
    s_read_ok(c, 7);
    unsigned char part[10];
    vb_digest_t d = s_digest(7);
    cr_assert_eq(vb_chunkcache_read(c, &d, CS - 10, 10, part), 0);
    cr_assert_eq(part[9], 7);
    cr_assert_eq(src->loads[7], 1);
    vb_chunkcache_stats_t st;
    vb_chunkcache_stats(c, &st);
    cr_assert_eq(st.misses, 1);
    cr_assert_eq(st.hits, 2);
    vb_chunkcache_destroy(&c);
    cr_assert_null(c);
    vb_chunkcache_destroy(&c); /* safe twice */
}

Test(chunkcache, holds_at_most_its_capacity_and_evicts_the_least_recently_used)
{
    s_src_t *src = s_src();
    vb_chunkcache_t *c = vb_chunkcache_new(3 * CS, CS, 0, 0, s_load, src);
    cr_assert_eq(vb_chunkcache_slots(c), 3);
    s_read_ok(c, 1);
    s_read_ok(c, 2);
    s_read_ok(c, 3);
    s_read_ok(c, 1); /* 1 is now the most recent: 2 goes next */
    s_read_ok(c, 4);
    s_read_ok(c, 1);
    s_read_ok(c, 3);
    cr_assert_eq(src->loads[1], 1);
    cr_assert_eq(src->loads[3], 1);
    s_read_ok(c, 2);
    cr_assert_eq(src->loads[2], 2, "chunk 2 was not evicted");
    vb_chunkcache_stats_t st;
    vb_chunkcache_stats(c, &st);
    cr_assert_eq(st.evictions, 2);
    vb_chunkcache_destroy(&c);
}

Test(chunkcache, a_failed_load_is_reported_and_not_cached)
{
    s_src_t *src = s_src();
    src->fail_first = 9;
    vb_chunkcache_t *c = vb_chunkcache_new(4 * CS, CS, 0, 0, s_load, src);
    unsigned char buf[CS];
    vb_digest_t d = s_digest(9);
    cr_assert_eq(vb_chunkcache_read(c, &d, 0, CS, buf), VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "does not match"), "%s", vb_error_msg());
    cr_assert_eq(vb_chunkcache_read(c, &d, 0, CS, buf), VB_ECORRUPT);
    cr_assert_eq(src->loads[9], 2, "a failed load was cached");
    s_read_ok(c, 8); /* the cache still works */
    vb_chunkcache_destroy(&c);
}

Test(chunkcache, reads_past_a_short_chunk_are_refused)
{
    s_src_t *src = s_src();
    vb_chunkcache_t *c = vb_chunkcache_new(4 * CS, CS, 0, 0, s_load, src);
    unsigned char buf[CS];
    vb_digest_t d = s_digest(255);
    cr_assert_eq(vb_chunkcache_read(c, &d, 0, 100, buf), 0);
    cr_assert_eq(buf[99], 255);
    cr_assert_eq(vb_chunkcache_read(c, &d, 50, 51, buf), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "holds 100 bytes"), "%s", vb_error_msg());
    vb_chunkcache_destroy(&c);
}

typedef struct {
    vb_chunkcache_t *c;
    unsigned char n;
    int rc;
} s_reader_t;

static void *s_reader(void *arg)
{
    s_reader_t *r = arg;
    unsigned char buf[CS];
    vb_digest_t d = s_digest(r->n);
    r->rc = vb_chunkcache_read(r->c, &d, 0, CS, buf);
    if (!r->rc && (buf[0] != r->n || buf[CS - 1] != r->n))
        r->rc = -100;
    return NULL;
}

/* Many readers of one chunk at once: one load, every reader gets the bytes. With a cache of 2
 * slots and 4 chunks read by 16 threads, nobody deadlocks and every read is right. */
Test(chunkcache, concurrent_readers_share_one_load)
{
    s_src_t *src = s_src();
    src->delay_ms = 20;
    vb_chunkcache_t *c = vb_chunkcache_new(2 * CS, CS, 0, 0, s_load, src);
    pthread_t t[16];
    s_reader_t r[16];
    for (int i = 0; i < 8; i++) {
        r[i] = (s_reader_t){c, 5, 0};
        pthread_create(&t[i], NULL, s_reader, &r[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(r[i].rc, 0, "reader %d: %d", i, r[i].rc);
    }
    cr_assert_eq(src->loads[5], 1, "%u loads of one chunk", src->loads[5]);
    for (int i = 0; i < 16; i++) {
        r[i] = (s_reader_t){c, (unsigned char)(10 + i % 4), 0};
        pthread_create(&t[i], NULL, s_reader, &r[i]);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(r[i].rc, 0, "reader %d: %d", i, r[i].rc);
    }
    vb_chunkcache_destroy(&c);
}

static bool s_prefetched(vb_chunkcache_t *c, uint64_t n)
{
    vb_chunkcache_stats_t st;
    vb_chunkcache_stats(c, &st);
    return st.prefetched >= n;
}

/* Read-ahead: chunks queued for the loader threads are in the cache when the reader comes. */
Test(chunkcache, prefetched_chunks_are_read_from_the_cache)
{
    s_src_t *src = s_src();
    vb_chunkcache_t *c = vb_chunkcache_new(8 * CS, CS, 2, 4, s_load, src);
    cr_assert_not_null(c, "%s", vb_error_msg());
    for (unsigned char n = 20; n < 24; n++) {
        vb_digest_t d = s_digest(n);
        vb_chunkcache_prefetch(c, &d);
        vb_chunkcache_prefetch(c, &d); /* a chunk queued twice loads once */
    }
    for (int waited = 0; !s_prefetched(c, 4) && waited < 5000; waited++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_assert(s_prefetched(c, 4), "the loader threads did not load 4 chunks");
    for (unsigned char n = 20; n < 24; n++)
        s_read_ok(c, n);
    vb_chunkcache_stats_t st;
    vb_chunkcache_stats(c, &st);
    cr_assert_eq(st.misses, 0, "a prefetched chunk was loaded again by its reader");
    cr_assert_eq(src->total, 4);
    vb_chunkcache_destroy(&c);
}
