#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_repo.h"
#include "repo/index.h"
#include "repo/repo.h"
#include "repo_testutil.h"

static char *s_dir;
static char s_out[65536], s_err[65536];

static void setup(void)
{
    s_dir = tu_tmpdir();
}

static void teardown(void)
{
    tu_rmrf(s_dir);
    s_dir = NULL;
}

TestSuite(repo_cli, .init = setup, .fini = teardown);

static void slurp(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs `vbak repo ARGS...` in-process; output into s_out and s_err. */
static int run(int argc, const char **args)
{
    FILE *out = tmpfile(), *err = tmpfile();
    cr_assert(out && err);
    int rc = vb_cli_repo_io(argc, (char **)args, out, err);
    slurp(out, s_out, sizeof s_out);
    slurp(err, s_err, sizeof s_err);
    return rc;
}

static size_t lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(repo_cli, help_and_usage_errors)
{
    cr_assert_eq(run(2, (const char *[]){"repo", "--help"}), 0);
    cr_assert(strstr(s_out, "vbak repo init PATH"), "%s", s_out);
    cr_assert(strstr(s_out, "--compression zstd:N"), "%s", s_out);
    cr_assert_eq(run(1, (const char *[]){"repo"}), 2);
    cr_assert_eq(lines(s_err), 1, "%s", s_err);
    cr_assert_eq(run(2, (const char *[]){"repo", "frobnicate"}), 2);
    cr_assert(strstr(s_err, "unknown command 'frobnicate'"), "%s", s_err);
    cr_assert_eq(run(2, (const char *[]){"repo", "init"}), 2);
    cr_assert(strstr(s_err, "missing PATH"), "%s", s_err);
    /* stats and undelete read their arguments alike; --dry-run is undelete's only */
    cr_assert_eq(run(2, (const char *[]){"repo", "stats"}), 2);
    cr_assert(strstr(s_err, "vbak repo stats: missing URL"), "%s", s_err);
    cr_assert_eq(run(3, (const char *[]){"repo", "undelete", "--dry-run"}), 2);
    cr_assert(strstr(s_err, "vbak repo undelete: missing URL"), "%s", s_err);
    cr_assert_eq(run(4, (const char *[]){"repo", "stats", "/nowhere", "--dry-run"}), 2);
    cr_assert(strstr(s_err, "unexpected argument '--dry-run'"), "%s", s_err);
}

Test(repo_cli, init_and_stats)
{
    char path[4096], key[4096];
    snprintf(path, sizeof path, "%s/r", s_dir);
    snprintf(key, sizeof key, "%s/k", s_dir);
    cr_assert_eq(run(8, (const char *[]){"repo", "init", path, "--chunk-size", "256K",
                                         "--compression=zstd:5", "--encrypt", key}),
                 0, "%s", s_err);
    cr_assert(strstr(s_out, "created key file"), "%s", s_out);
    cr_assert(strstr(s_out, "chunk size 256 KiB, compression zstd:5, encryption aes-256-gcm, "
                            "format 2, packs of 16 MiB"),
              "format 2 is the default: %s", s_out);
    vb_repo_t *r = vb_repo_open(path, key);
    cr_assert_not_null(r, "the created key opens the repository: %s", vb_error_msg());
    cr_assert_eq(vb_repo_chunk_size(r), 256u << 10);
    cr_assert_eq(vb_repo_compression_level(r), 5);

    /* Back up the same 1 MiB twice under two indexes: dedup ratio 2. */
    uint8_t *data = malloc(1u << 20);
    tu_fill_random(data, 1u << 20, 4);
    vb_repo_worker_t *w = vb_repo_worker_new(r);
    vb_chunk_result_t res[4];
    for (int i = 0; i < 4; i++) {
        res[i].offset = (uint64_t)i << 18;
        cr_assert_eq(vb_repo_digest(w, data + res[i].offset, 256u << 10, &res[i].digest), 0);
        cr_assert_eq(vb_repo_chunk_put(w, &res[i].digest, data + res[i].offset, 256u << 10, NULL),
                     0);
    }
    cr_assert_eq(vb_repo_worker_flush(w), 0, "%s", vb_error_msg()); /* seal the pack */
    cr_assert_eq(vb_repo_sync(r), 0, "%s", vb_error_msg());         /* then its index object */
    for (int k = 0; k < 2; k++) {
        vb_index_t *idx = NULL;
        cr_assert_eq(vb_index_build(NULL, NULL, "2000", 2u << 20, 256u << 10, res, 4, &idx), 0);
        cr_assert_eq(vb_index_write(r, k ? "b" : "a", idx), 0);
        vb_index_destroy(&idx);
    }
    vb_repo_worker_destroy(&w);
    vb_repo_destroy(&r);
    free(data);

    cr_assert_eq(run(4, (const char *[]){"repo", "stats", path, "--json"}), 0, "%s", s_err);
    json_error_t je;
    json_t *o = json_loads(s_out, 0, &je);
    cr_assert_not_null(o, "not JSON: %s", s_out);
    cr_assert_eq(json_integer_value(json_object_get(o, "chunks")), 4);
    cr_assert_eq(json_integer_value(json_object_get(o, "indexes")), 2);
    cr_assert_eq(json_integer_value(json_object_get(o, "logical_bytes")), 2 << 20);
    cr_assert_eq(json_integer_value(json_object_get(o, "raw_bytes")), 1 << 20);
    cr_assert_float_eq(json_real_value(json_object_get(o, "dedup_ratio")), 2.0, 1e-9);
    cr_assert(json_is_true(json_object_get(o, "encrypted")));
    cr_assert_eq(json_integer_value(json_object_get(o, "format_version")), 2);
    cr_assert_eq(json_integer_value(json_object_get(o, "packs")), 1);
    json_decref(o);

    cr_assert_eq(run(3, (const char *[]){"repo", "stats", path}), 0, "%s", s_err);
    cr_assert(strstr(s_out, "dedup ratio        2.00"), "%s", s_out);
    cr_assert(strstr(s_out, "chunks             4"), "%s", s_out);
}

Test(repo_cli, errors_are_one_line_naming_the_cause)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/r", s_dir);
    cr_assert_eq(run(5, (const char *[]){"repo", "init", path, "--chunk-size", "3M"}), 1);
    cr_assert(strstr(s_err, "power of two"), "%s", s_err);
    cr_assert_eq(lines(s_err), 1, "%s", s_err);
    cr_assert_eq(run(5, (const char *[]){"repo", "init", path, "--compression", "gzip"}), 2);
    cr_assert(strstr(s_err, "gzip"), "%s", s_err);
    cr_assert_eq(run(4, (const char *[]){"repo", "init", path, "--chunk-size"}), 2);
    cr_assert(strstr(s_err, "needs a value"), "%s", s_err);
    cr_assert_eq(run(3, (const char *[]){"repo", "init", path}), 0, "%s", s_err);
    cr_assert_eq(run(3, (const char *[]){"repo", "init", path}), 1);
    cr_assert(strstr(s_err, "exists there already"), "%s", s_err);
    cr_assert_eq(run(3, (const char *[]){"repo", "stats", s_dir}), 1);
    cr_assert(strstr(s_err, "not a vbak repository"), "%s", s_err);
    cr_assert_eq(lines(s_err), 1, "%s", s_err);
}

Test(repo_cli, format_1_is_made_only_when_asked_for)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/f1", s_dir);
    cr_assert_eq(run(5, (const char *[]){"repo", "init", path, "--format", "1"}), 0, "%s", s_err);
    cr_assert(strstr(s_out, "format 1, a file per chunk"), "%s", s_out);
    vb_repo_t *r = vb_repo_open(path, NULL);
    cr_assert_not_null(r, "%s", vb_error_msg());
    cr_assert_eq(vb_repo_format(r), 1);
    vb_repo_destroy(&r);
    cr_assert_eq(run(7, (const char *[]){"repo", "init", path, "--format", "1", "--pack-size",
                                         "8M"}),
                 2);
    cr_assert(strstr(s_err, "for --format 2"), "%s", s_err);
}
