#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "repo/index.h"
#include "repo/repo.h"
#include "repo_testutil.h"

static const uint32_t s_sizes[] = {64u << 10, 256u << 10, 1u << 20, 4u << 20};

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

TestSuite(repo, .init = setup, .fini = teardown);

static vb_repo_t *make_repo(const char *name, uint32_t cs, int level, bool encrypt)
{
    char path[4096], key[4096];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    snprintf(key, sizeof key, "%s/%s.key", s_dir, name);
    if (encrypt)
        tu_write_key(key, 42);
    /* format 1: these tests read, damage and count chunk files (test_repo_pack.c: format 2) */
    vb_repo_params_t p = {.chunk_size = cs, .compression_level = level,
                          .key_file = encrypt ? key : NULL, .format = 1};
    cr_assert_eq(vb_repo_init(path, &p), 0, "init: %s", vb_error_msg());
    vb_repo_t *r = vb_repo_open(path, encrypt ? key : NULL);
    cr_assert_not_null(r, "open: %s", vb_error_msg());
    return r;
}

static void put_get(vb_repo_worker_t *w, const uint8_t *data, size_t len, bool expect_new)
{
    vb_digest_t d;
    uint64_t stored = 0;
    cr_assert_eq(vb_repo_digest(w, data, len, &d), 0);
    cr_assert_eq(vb_repo_chunk_put(w, &d, data, len, &stored), 0, "put: %s", vb_error_msg());
    cr_assert_eq(stored != 0, expect_new, "stored=%llu", (unsigned long long)stored);
    uint8_t *back = malloc(VB_REPO_CHUNK_MAX);
    size_t got = 0;
    cr_assert_eq(vb_repo_chunk_get(w, &d, back, VB_REPO_CHUNK_MAX, &got), 0, "get: %s",
                 vb_error_msg());
    cr_assert_eq(got, len);
    cr_assert_eq(memcmp(back, data, len), 0, "round trip changed the bytes");
    free(back);
}

Test(repo, chunk_round_trip_every_size_plain_and_encrypted)
{
    for (size_t s = 0; s < sizeof s_sizes / sizeof s_sizes[0]; s++) {
        for (int enc = 0; enc < 2; enc++) {
            char name[64];
            snprintf(name, sizeof name, "r%zu-%d", s, enc);
            uint32_t cs = s_sizes[s];
            vb_repo_t *r = make_repo(name, cs, 3, enc);
            cr_assert_eq(vb_repo_chunk_size(r), cs);
            cr_assert_eq(vb_repo_encrypted(r), (bool)enc);
            vb_repo_worker_t *w = vb_repo_worker_new(r);
            cr_assert_not_null(w);
            uint8_t *buf = malloc(cs);
            tu_fill_random(buf, cs, s * 10 + (size_t)enc);
            put_get(w, buf, cs, true);           /* incompressible: stored raw */
            put_get(w, buf, cs, false);          /* same chunk again: no-op */
            tu_fill_text(buf, cs, s);
            put_get(w, buf, cs, true);           /* compressible */
            memset(buf, 0, cs);
            tu_fill_random(buf, cs / 8, 99);     /* mostly zeros */
            put_get(w, buf, cs, true);
            tu_fill_random(buf, 1000, 7);
            put_get(w, buf, 1000, true);         /* a short last chunk of a disk */
            free(buf);
            vb_repo_worker_destroy(&w);
            vb_repo_destroy(&r);
        }
    }
}

/* Format 1: a task that finds every chunk already in place (written by another handle or
 * process, whose own barrier may not have run yet) still syncs before it reports them: the
 * commit's barrier covers whatever anyone wrote (its sync made to fail shows that it runs). */
Test(repo, format1_commit_syncs_chunks_another_writer_put)
{
    static uint8_t data[64 << 10];
    memset(data, 0x5a, sizeof data);
    vb_repo_t *writer = make_repo("shared", sizeof data, 3, false);
    vb_repo_worker_t *w = vb_repo_worker_new(writer);
    put_get(w, data, sizeof data, true);
    char path[4096];
    snprintf(path, sizeof path, "%s/shared", s_dir);
    setenv("VBAK_TEST_STORE_SYNC_FAIL", "1", 1);
    vb_repo_t *reuser = vb_repo_open(path, NULL);
    unsetenv("VBAK_TEST_STORE_SYNC_FAIL");
    cr_assert_not_null(reuser, "%s", vb_error_msg());
    vb_repo_worker_t *w2 = vb_repo_worker_new(reuser);
    put_get(w2, data, sizeof data, false); /* found in place: nothing written by this handle */
    cr_assert_eq(vb_repo_sync(reuser), VB_EIO, "the commit did not sync another writer's chunk");
    cr_assert(strstr(vb_error_msg(), "sync failed"), "%s", vb_error_msg());
    vb_repo_worker_destroy(&w2);
    vb_repo_destroy(&reuser);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&writer);
}

Test(repo, compressible_data_is_stored_compressed_random_raw)
{
    vb_repo_t *r = make_repo("c", 1u << 20, 3, false);
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    uint8_t *buf = malloc(1u << 20);
    vb_digest_t d;
    uint64_t stored = 0;
    tu_fill_text(buf, 1u << 20, 1);
    cr_assert_eq(vb_repo_digest(w, buf, 1u << 20, &d), 0);
    cr_assert_eq(vb_repo_chunk_put(w, &d, buf, 1u << 20, &stored), 0);
    cr_assert_lt(stored, (1u << 20) / 4, "text was not compressed: %llu",
                 (unsigned long long)stored);
    tu_fill_random(buf, 1u << 20, 2);
    cr_assert_eq(vb_repo_digest(w, buf, 1u << 20, &d), 0);
    cr_assert_eq(vb_repo_chunk_put(w, &d, buf, 1u << 20, &stored), 0);
    cr_assert_eq(stored, (1u << 20) + 64, "random data must be stored raw");
    free(buf);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
}

Test(repo, zero_chunk_is_refused_and_digest_is_sha256_when_plain)
{
    vb_repo_t *r = make_repo("z", 64u << 10, 0, false);
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    uint8_t *buf = calloc(1, 64u << 10);
    vb_digest_t d;
    cr_assert_eq(vb_repo_digest(w, buf, 64u << 10, &d), 0);
    cr_assert_eq(vb_repo_chunk_put(w, &d, buf, 64u << 10, NULL), VB_EINVAL);
    /* SHA-256 of "abc" */
    cr_assert_eq(vb_repo_digest(w, "abc", 3, &d), 0);
    char hex[65];
    vb_digest_hex(&d, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    free(buf);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
}

Test(repo, encrypted_names_are_keyed_and_content_is_not_plaintext)
{
    vb_repo_t *r = make_repo("e", 64u << 10, 3, true);
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    uint8_t *buf = malloc(64u << 10);
    tu_fill_text(buf, 64u << 10, 5);
    vb_digest_t d;
    cr_assert_eq(vb_repo_digest(w, "abc", 3, &d), 0);
    char hex[65];
    vb_digest_hex(&d, hex);
    cr_assert_str_neq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cr_assert_eq(vb_repo_digest(w, buf, 64u << 10, &d), 0);
    cr_assert_eq(vb_repo_chunk_put(w, &d, buf, 64u << 10, NULL), 0);
    char path[4096];
    cr_assert_eq(vb_repo_chunk_path(r, &d, path, sizeof path), 0);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    char file[70000];
    size_t n = fread(file, 1, sizeof file, f);
    fclose(f);
    cr_assert_null(memmem(file, n, "backup restore chunk", 20), "plaintext visible in chunk");
    free(buf);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
}

Test(repo, wrong_key_or_missing_key_is_refused)
{
    vb_repo_t *r = make_repo("k", 64u << 10, 3, true);
    vb_repo_destroy(&r);
    char path[4096], other[4096];
    snprintf(path, sizeof path, "%s/k", s_dir);
    snprintf(other, sizeof other, "%s/other.key", s_dir);
    tu_write_key(other, 43);
    cr_assert_null(vb_repo_open(path, other));
    cr_assert_eq(vb_error_code(), VB_EAUTH);
    cr_assert(strstr(vb_error_msg(), "key check failed"), "%s", vb_error_msg());

    /* Metadata without a key is fine; chunk data is not. */
    r = vb_repo_open(path, NULL);
    cr_assert_not_null(r, "%s", vb_error_msg());
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    vb_digest_t d;
    cr_assert_eq(vb_repo_digest(w, "abc", 3, &d), VB_EAUTH);
    cr_assert(strstr(vb_error_msg(), "key file is needed"), "%s", vb_error_msg());
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);

    /* A too-short key file is refused at init. */
    char shortkey[4096], p2[4096];
    snprintf(shortkey, sizeof shortkey, "%s/short.key", s_dir);
    snprintf(p2, sizeof p2, "%s/k2", s_dir);
    tu_write_file(shortkey, "tooshort", 8);
    vb_repo_params_t p = {.chunk_size = 0, .compression_level = 0, .key_file = shortkey};
    cr_assert_eq(vb_repo_init(p2, &p), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "at least 32"), "%s", vb_error_msg());
}

static void replace_in_file(const char *path, const char *from, const char *to)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strstr(text, from);
    cr_assert_not_null(at, "'%s' not in %s", from, path);
    char out[8192];
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    tu_write_file(path, out, strlen(out));
}

Test(repo, unknown_format_version_is_refused)
{
    vb_repo_t *r = make_repo("v", 0, 3, false);
    cr_assert_eq(vb_repo_chunk_size(r), VB_REPO_CHUNK_DEFAULT);
    vb_repo_destroy(&r);
    char cfg[4096], path[4096];
    snprintf(path, sizeof path, "%s/v", s_dir);
    snprintf(cfg, sizeof cfg, "%s/config", path);
    replace_in_file(cfg, "format_version = \"1\"", "format_version = \"3\"\nnew_feature = \"x\"");
    cr_assert_null(vb_repo_open(path, NULL));
    cr_assert_eq(vb_error_code(), VB_EUNSUPPORTED);
    cr_assert(strstr(vb_error_msg(), "format version 3"), "%s", vb_error_msg());
    cr_assert_null(vb_repo_open(s_dir, NULL));
    cr_assert_eq(vb_error_code(), VB_ENOTFOUND);
}

Test(repo, init_refuses_bad_parameters_and_existing_repository)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/p", s_dir);
    vb_repo_params_t p = {.chunk_size = 3u << 20};
    cr_assert_eq(vb_repo_init(path, &p), VB_EINVAL);
    p.chunk_size = 32u << 10;
    cr_assert_eq(vb_repo_init(path, &p), VB_EINVAL);
    p.chunk_size = 8u << 20;
    cr_assert_eq(vb_repo_init(path, &p), VB_EINVAL);
    p.chunk_size = 64u << 10;
    cr_assert_eq(vb_repo_init(path, &p), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_repo_init(path, &p), VB_EEXISTS);
    cr_assert(strstr(vb_error_msg(), "repository exists there already"), "%s", vb_error_msg());
    int level = -1;
    cr_assert_eq(vb_repo_parse_compression("zstd:7", &level), 0);
    cr_assert_eq(level, 7);
    cr_assert_eq(vb_repo_parse_compression("none", &level), 0);
    cr_assert_eq(level, 0);
    cr_assert_eq(vb_repo_parse_compression("zstd:99", &level), VB_EINVAL);
    cr_assert_eq(vb_repo_parse_compression("lz4", &level), VB_EINVAL);
}

/* Stores one chunk and returns its path for damage tests. */
static void store_one(vb_repo_worker_t *w, vb_repo_t *r, const uint8_t *buf, size_t len,
                      vb_digest_t *d, char *path)
{
    cr_assert_eq(vb_repo_digest(w, buf, len, d), 0);
    cr_assert_eq(vb_repo_chunk_put(w, d, buf, len, NULL), 0);
    cr_assert_eq(vb_repo_chunk_path(r, d, path, 4096), 0);
}

Test(repo, flipped_byte_is_caught_in_every_stored_form)
{
    for (int enc = 0; enc < 2; enc++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", enc);
        vb_repo_t *r = make_repo(name, 64u << 10, 3, enc);
        vb_repo_worker_t *w = vb_repo_worker_new(r);
        uint8_t *buf = malloc(64u << 10), *out = malloc(64u << 10);
        for (int kind = 0; kind < 2; kind++) {
            if (kind == 0)
                tu_fill_random(buf, 64u << 10, 11 + (uint64_t)enc);
            else
                tu_fill_text(buf, 64u << 10, 12 + (uint64_t)enc);
            vb_digest_t d;
            char path[4096];
            size_t got = 0;
            store_one(w, r, buf, 64u << 10, &d, path);
            struct stat st;
            cr_assert_eq(stat(path, &st), 0);
            off_t mid = 64 + (st.st_size - 64) / 2;
            tu_flip_byte(path, mid);
            memset(out, 0, 64u << 10);
            cr_assert_eq(vb_repo_chunk_get(w, &d, out, 64u << 10, &got), VB_ECORRUPT,
                         "enc=%d kind=%d: %s", enc, kind, vb_error_msg());
            char hex[65];
            vb_digest_hex(&d, hex);
            cr_assert(strstr(vb_error_msg(), hex), "message names the chunk: %s",
                      vb_error_msg());
            tu_flip_byte(path, mid);
            tu_flip_byte(path, 13); /* header: raw size */
            cr_assert_eq(vb_repo_chunk_get(w, &d, out, 64u << 10, &got), VB_ECORRUPT);
            cr_assert(strstr(vb_error_msg(), "damaged header"), "%s", vb_error_msg());
        }
        free(buf);
        free(out);
        vb_repo_worker_destroy(&w);
        vb_repo_destroy(&r);
    }
}

Test(repo, truncated_and_missing_chunks_are_reported)
{
    vb_repo_t *r = make_repo("t", 64u << 10, 3, false);
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    uint8_t *buf = malloc(64u << 10);
    tu_fill_random(buf, 64u << 10, 3);
    vb_digest_t d;
    char path[4096];
    size_t got;
    store_one(w, r, buf, 64u << 10, &d, path);
    cr_assert_eq(truncate(path, 64 + 1000), 0);
    cr_assert_eq(vb_repo_chunk_get(w, &d, buf, 64u << 10, &got), VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "truncated"), "%s", vb_error_msg());
    cr_assert_eq(truncate(path, 10), 0);
    cr_assert_eq(vb_repo_chunk_get(w, &d, buf, 64u << 10, &got), VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "truncated"), "%s", vb_error_msg());
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(vb_repo_chunk_get(w, &d, buf, 64u << 10, &got), VB_ENOTFOUND);
    cr_assert(strstr(vb_error_msg(), "missing"), "%s", vb_error_msg());
    free(buf);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
}

static const char *enospc_chunks(const char *mnt, char *msg, size_t msgsz)
{
    char path[4096], chunks[4096];
    snprintf(path, sizeof path, "%s/repo", mnt);
    vb_repo_params_t p = {.chunk_size = 1u << 20, .compression_level = 3, .format = 1};
    TU_CHECK(vb_repo_init(path, &p) == 0, "init: %s", vb_error_msg());
    vb_repo_t *r = vb_repo_open(path, NULL);
    TU_CHECK(r, "open: %s", vb_error_msg());
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    uint8_t *buf = malloc(1u << 20), *out = malloc(1u << 20);
    vb_digest_t digests[16];
    int rc = 0, stored = 0;
    for (int i = 0; i < 16; i++) {
        tu_fill_random(buf, 1u << 20, 100 + (uint64_t)i);
        TU_CHECK(vb_repo_digest(w, buf, 1u << 20, &digests[i]) == 0, "digest");
        rc = vb_repo_chunk_put(w, &digests[i], buf, 1u << 20, NULL);
        if (rc)
            break;
        stored++;
    }
    TU_CHECK(rc == VB_ENOSPC, "expected ENOSPC, got %d: %s", rc, vb_error_msg());
    TU_CHECK(strstr(vb_error_msg(), path), "message names the repository: %s", vb_error_msg());
    TU_CHECK(stored < 4, "%d chunks of 1 MiB fit in 4 MiB", stored);
    snprintf(chunks, sizeof chunks, "%s/chunks", path);
    TU_CHECK(tu_count_files(chunks, ".tmp") == 0, "a temp file was left behind");
    TU_CHECK(tu_count_files(chunks, "") == (size_t)stored, "a partial chunk is visible");
    for (int i = 0; i < stored; i++) {
        size_t got = 0;
        TU_CHECK(vb_repo_chunk_get(w, &digests[i], out, 1u << 20, &got) == 0, "%s",
                 vb_error_msg());
    }
    free(buf);
    free(out);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    return NULL;
}

Test(repo, full_file_system_fails_cleanly)
{
    char mnt[4096];
    snprintf(mnt, sizeof mnt, "%s/mnt", s_dir);
    cr_assert_eq(mkdir(mnt, 0755), 0);
    tu_run_on_small_fs(mnt, "4m", enospc_chunks);
}

Test(repo, index_round_trip_inheritance_and_damage)
{
    vb_repo_t *r = make_repo("i", 64u << 10, 3, false);
    uint32_t cs = 64u << 10;
    uint64_t cap = 10 * (uint64_t)cs + 1000; /* 11 chunks, the last short */
    vb_chunk_result_t res[3];
    memset(res, 0, sizeof res);
    for (int i = 0; i < 3; i++) {
        res[i].offset = (uint64_t)(2 * i) * cs;
        memset(res[i].digest.b, 0x11 * (i + 1), VB_DIGEST_LEN);
    }
    vb_index_t *full = NULL, *incr = NULL, *back = NULL;
    cr_assert_eq(vb_index_build(NULL, NULL, "2000", cap, cs, res, 3, &full), 0);
    cr_assert_eq(full->count, 11);
    cr_assert_eq(vb_index_chunk_len(full, 10), 1000);
    cr_assert(vb_digest_is_zero(&full->digests[1]));
    cr_assert_eq(vb_index_write(r, "vm1-2000-a", full), 0, "%s", vb_error_msg());

    vb_chunk_result_t change = {.offset = 2 * (uint64_t)cs};
    memset(change.digest.b, 0x77, VB_DIGEST_LEN);
    cr_assert_eq(vb_index_build(full, "vm1-2000-a", "2000", cap, cs, &change, 1, &incr), 0);
    cr_assert_eq(incr->digests[0].b[0], 0x11, "unchanged chunk inherits the parent digest");
    cr_assert_eq(incr->digests[2].b[0], 0x77, "changed chunk has the new digest");
    cr_assert_eq(incr->digests[4].b[0], 0x33);
    cr_assert_eq(vb_index_write(r, "vm1-2000-b", incr), 0);

    cr_assert_eq(vb_index_read(r, "vm1-2000-b", &back), 0, "%s", vb_error_msg());
    cr_assert_str_eq(back->disk_key, "2000");
    cr_assert_str_eq(back->parent, "vm1-2000-a");
    cr_assert_eq(back->capacity, cap);
    cr_assert_eq(memcmp(back->digests, incr->digests, 11 * sizeof(vb_digest_t)), 0);
    vb_index_destroy(&back);

    char **names = NULL;
    size_t n = 0;
    cr_assert_eq(vb_index_list(r, &names, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(names[0], "vm1-2000-a");
    vb_index_list_free(names, n);

    /* Misaligned results and bad names are refused. */
    vb_chunk_result_t bad = {.offset = 100};
    vb_index_t *x = NULL;
    cr_assert_eq(vb_index_build(NULL, NULL, "2000", cap, cs, &bad, 1, &x), VB_EINVAL);
    cr_assert_eq(vb_index_write(r, "../evil", full), VB_EINVAL);

    /* A damaged index is detected. */
    char path[4096];
    snprintf(path, sizeof path, "%s/i/indexes/vm1-2000-a.idx", s_dir);
    tu_flip_byte(path, 60);
    cr_assert_eq(vb_index_read(r, "vm1-2000-a", &back), VB_ECORRUPT);
    cr_assert(strstr(vb_error_msg(), "checksum"), "%s", vb_error_msg());
    cr_assert_eq(truncate(path, 50), 0);
    cr_assert_eq(vb_index_read(r, "vm1-2000-a", &back), VB_ECORRUPT);
    cr_assert_eq(vb_index_read(r, "nope", &back), VB_ENOTFOUND);
    cr_assert_eq(vb_index_remove(r, "vm1-2000-b"), 0);
    cr_assert_eq(vb_index_read(r, "vm1-2000-b", &back), VB_ENOTFOUND);

    vb_index_destroy(&full);
    vb_index_destroy(&incr);
    vb_repo_destroy(&r);
}

Test(repo, grown_disk_must_reread_the_old_last_chunk)
{
    uint32_t cs = 64u << 10;
    vb_chunk_result_t r0 = {.offset = 0};
    memset(r0.digest.b, 0x22, VB_DIGEST_LEN);
    vb_index_t *small = NULL, *grown = NULL;
    cr_assert_eq(vb_index_build(NULL, NULL, "d", 1000, cs, &r0, 1, &small), 0);
    cr_assert_eq(vb_index_build(small, "s", "d", 3 * (uint64_t)cs, cs, NULL, 0, &grown),
                 VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "re-read"), "%s", vb_error_msg());
    memset(r0.digest.b, 0x23, VB_DIGEST_LEN);
    cr_assert_eq(vb_index_build(small, "s", "d", 3 * (uint64_t)cs, cs, &r0, 1, &grown), 0);
    cr_assert_eq(grown->count, 3);
    vb_index_destroy(&small);
    vb_index_destroy(&grown);
}

Test(repo, an_incomplete_chunk_left_by_a_crash_is_replaced_not_trusted)
{
    vb_repo_t *r = make_repo("crash", 64u << 10, 3, false);
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    uint8_t *buf = malloc(64u << 10), *out = malloc(64u << 10);
    tu_fill_random(buf, 64u << 10, 21);
    vb_digest_t d;
    char path[4096];
    size_t got = 0;
    uint64_t stored = 0;
    store_one(w, r, buf, 64u << 10, &d, path);
    for (int kind = 0; kind < 2; kind++) {
        cr_assert_eq(truncate(path, kind == 0 ? 0 : 64 + 4096), 0); /* empty, then partial */
        cr_assert_eq(vb_repo_chunk_put(w, &d, buf, 64u << 10, &stored), 0, "%s", vb_error_msg());
        cr_assert_gt(stored, 0, "the damaged file was trusted as the chunk");
        cr_assert_eq(vb_repo_chunk_get(w, &d, out, 64u << 10, &got), 0, "%s", vb_error_msg());
        cr_assert_eq(memcmp(out, buf, 64u << 10), 0);
    }
    cr_assert_eq(vb_repo_chunk_put(w, &d, buf, 64u << 10, &stored), 0);
    cr_assert_eq(stored, 0, "a sound existing chunk is not rewritten");
    free(buf);
    free(out);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
}

static void assert_mode(const char *path, mode_t want)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    cr_assert_eq(st.st_mode & 07777, want, "%s has mode %04o, expected %04o", path,
                 (unsigned)(st.st_mode & 07777), (unsigned)want);
}

/* A repository may hold the plaintext of an encrypted disk: whatever the umask, nobody but its
 * owner may read it. */
Test(repo, files_are_private_whatever_the_umask)
{
    mode_t old = umask(0);
    vb_repo_t *r = make_repo("m", 64u << 10, 3, false);
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    uint8_t buf[4096];
    tu_fill_random(buf, sizeof buf, 7);
    vb_digest_t d;
    cr_assert_eq(vb_repo_digest(w, buf, sizeof buf, &d), 0);
    cr_assert_eq(vb_repo_chunk_put(w, &d, buf, sizeof buf, NULL), 0, "%s", vb_error_msg());
    vb_chunk_result_t res = {.offset = 0, .digest = d};
    vb_index_t *idx = NULL;
    cr_assert_eq(vb_index_build(NULL, NULL, "2000", sizeof buf, 64u << 10, &res, 1, &idx), 0);
    cr_assert_eq(vb_index_write(r, "rp1-2000", idx), 0, "%s", vb_error_msg());
    umask(old);

    char path[4096], chunk[4096];
    static const struct {
        const char *name;
        mode_t mode;
    } expect[] = {{"", 0700},
                  {"/config", 0600},
                  {"/chunks", 0700},
                  {"/indexes", 0700},
                  {"/indexes/rp1-2000.idx", 0600}};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        snprintf(path, sizeof path, "%s/m%s", s_dir, expect[i].name);
        assert_mode(path, expect[i].mode);
    }
    cr_assert_eq(vb_repo_chunk_path(r, &d, chunk, sizeof chunk), 0);
    assert_mode(chunk, 0600);
    *strrchr(chunk, '/') = '\0'; /* its shard directory, made when the chunk was written */
    assert_mode(chunk, 0700);
    vb_index_destroy(&idx);
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
}
