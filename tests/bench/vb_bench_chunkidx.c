/* vb_bench_chunkidx [CHUNKS] — memory and speed of the in-memory chunk index (chunkidx.h).
 *
 * Loads CHUNKS (default 1 M) random digests in packs of 64 (16 MiB packs of 256 KiB chunks), as
 * the coordinator loads a repository's index objects: presized with vb_chunkidx_reserve, then
 * sealed. Prints the resident memory it took (VmRSS before and after), bytes per chunk, the
 * extrapolation to 40 M chunks (a 10 TiB repository at 256 KiB chunks), and look-ups per second
 * for stored and for absent digests. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repo/chunkidx.h"

#define PER_PACK 64

static uint64_t s_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtoull(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t s_x = 88172645463325252ull;
static uint64_t s_rand(void)
{
    s_x ^= s_x << 13;
    s_x ^= s_x >> 7;
    s_x ^= s_x << 17;
    return s_x;
}

static void s_digest(vb_digest_t *d, uint64_t seed)
{
    uint64_t v = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < 4; i++) {
        v ^= v >> 29;
        v *= 0xBF58476D1CE4E5B9ull;
        v ^= v >> 32;
        memcpy(d->b + 8 * i, &v, 8);
    }
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    if (n == 0 || n > 400000000ull) {
        fprintf(stderr, "usage: vb_bench_chunkidx [CHUNKS 1..400000000]\n");
        return 2;
    }
    uint64_t before = s_rss_kib();
    vb_chunkidx_t *ci = vb_chunkidx_new();
    if (!ci || vb_chunkidx_reserve(ci, n) != 0)
        return 1;
    vb_pack_entry_t pack[PER_PACK];
    double t0 = s_now();
    for (uint64_t i = 0; i < n; i += PER_PACK) {
        vb_pack_id_t id;
        for (size_t k = 0; k < sizeof id.b; k += 8) {
            uint64_t r = s_rand();
            memcpy(id.b + k, &r, 8);
        }
        size_t count = n - i < PER_PACK ? (size_t)(n - i) : PER_PACK;
        for (size_t k = 0; k < count; k++) {
            s_digest(&pack[k].digest, i + k);
            pack[k].offset = k * 200000;
            pack[k].length = 190000;
            pack[k].raw_len = 262144;
        }
        if (vb_chunkidx_add_pack(ci, &id, pack, count) != 0)
            return 1;
    }
    vb_chunkidx_seal(ci);
    double t1 = s_now();
    uint64_t after = s_rss_kib();
    uint64_t found = 0, lookups = n < 2000000 ? n : 2000000;
    vb_chunkidx_loc_t loc;
    for (uint64_t i = 0; i < lookups; i++) {
        vb_digest_t d;
        s_digest(&d, (s_rand() % n));
        found += vb_chunkidx_find(ci, &d, &loc);
    }
    double t2 = s_now();
    uint64_t absent = 0;
    for (uint64_t i = 0; i < lookups; i++) {
        vb_digest_t d;
        s_digest(&d, n + i);
        absent += vb_chunkidx_find(ci, &d, &loc);
    }
    double t3 = s_now();
    double per_chunk = (double)(after - before) * 1024.0 / (double)n;
    printf("chunks              %" PRIu64 "\n", n);
    printf("index memory        %zu bytes allocated (%.1f per chunk)\n", vb_chunkidx_memory(ci),
           (double)vb_chunkidx_memory(ci) / (double)n);
    printf("resident (VmRSS)    %.1f MiB more (%.1f bytes per chunk)\n",
           (double)(after - before) / 1024.0, per_chunk);
    printf("at 40 M chunks      %.2f GiB\n", per_chunk * 40e6 / (1u << 30));
    printf("load + seal         %.2f s (%.1f M chunks/s)\n", t1 - t0, (double)n / (t1 - t0) / 1e6);
    printf("look-ups, stored    %.2f M/s (%" PRIu64 " of %" PRIu64 " found)\n",
           (double)lookups / (t2 - t1) / 1e6, found, lookups);
    printf("look-ups, absent    %.2f M/s (%" PRIu64 " false hits)\n",
           (double)lookups / (t3 - t2) / 1e6, absent);
    vb_chunkidx_destroy(&ci);
    return found == lookups && absent == 0 ? 0 : 1;
}
