/* vb_bench_datapath — drives the real extent pipeline and repository code for
 * tests/bench/datapath.sh. Not a test: it prints figures.
 *
 *   vb_bench_datapath mkimage OUT SIZE SEED         1 MiB random runs alternating with 1 MiB holes
 *   vb_bench_datapath mutate IMAGE PERCENT SEED CHANGED
 *                                                   overwrite PERCENT% of the 64 KiB blocks at
 *                                                   random; write the changed areas to CHANGED
 *   vb_bench_datapath init REPO CHUNK [--compression zstd:N|none] [--key KEYFILE] [--format 1|2]
 *   vb_bench_datapath backup REPO IMAGE NAME [--parent NAME --changed FILE] [--key K] [--workers N]
 *   vb_bench_datapath restore REPO NAME OUT [--key K] [--workers N] [--direct-out]
 *                                                   --direct-out: write OUT as the agent writes a
 *                                                   restore to a file (disk_file, fsync at close)
 *   vb_bench_datapath verify REPO NAME [--key K] [--workers N]
 *
 * backup, like the agent's session thread, finds the extents to read itself (a full backup: the
 * image's data extents via SEEK_DATA/SEEK_HOLE; an incremental: the changed areas file) and hands
 * them to the pipeline; workers only read. Each command prints one `key=value` line.
 * REPO may be an s3:// location; its credentials file is then $VB_BENCH_CREDENTIALS. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "disk/disk.h"
#include "error.h"
#include "fileio.h"
#include "inventory/inventory.h"
#include "pipeline/pipeline.h"
#include "repo/index.h"
#include "repo/repo.h"

#define MIB (1024u * 1024u)

static int die(const char *what)
{
    fprintf(stderr, "vb_bench_datapath: %s: %s\n", what, vb_error_msg());
    return 1;
}

static void fill_random(uint8_t *p, size_t len, uint64_t *state)
{
    uint64_t x = *state;
    for (size_t i = 0; i + 8 <= len; i += 8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t v = x * 0x2545F4914F6CDD1Dull;
        memcpy(p + i, &v, 8);
    }
    *state = x;
}

static int write_all_at(int fd, const void *buf, size_t len, uint64_t off)
{
    if (vb_pwrite_full(fd, buf, len, off) != 0)
        return vb_error_set(VB_EIO, "pwrite at %" PRIu64 ": %s", off, strerror(errno));
    return 0;
}

static int cmd_mkimage(int argc, char **argv)
{
    uint64_t size = 0;
    if (argc != 5 || vb_parse_size(argv[3], "SIZE", &size) != 0)
        return fprintf(stderr, "usage: mkimage OUT SIZE SEED\n"), 2;
    uint64_t state = strtoull(argv[4], NULL, 10) * 0x9E3779B97F4A7C15ull + 1;
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    uint8_t *buf = malloc(MIB);
    if (fd < 0 || !buf || ftruncate(fd, (off_t)size) != 0)
        return fprintf(stderr, "mkimage %s: %s\n", argv[2], strerror(errno)), 1;
    for (uint64_t off = 0; off < size; off += 2 * MIB) {
        fill_random(buf, MIB, &state);
        uint64_t len = size - off < MIB ? size - off : MIB;
        if (write_all_at(fd, buf, len, off) != 0)
            return die("mkimage");
    }
    free(buf);
    close(fd);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmd_mutate(int argc, char **argv)
{
    if (argc != 6)
        return fprintf(stderr, "usage: mutate IMAGE PERCENT SEED CHANGED\n"), 2;
    const uint64_t blk = 64 * 1024;
    int fd = open(argv[2], O_RDWR);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return fprintf(stderr, "mutate %s: %s\n", argv[2], strerror(errno)), 1;
    uint64_t nblocks = (uint64_t)st.st_size / blk;
    uint64_t pick = nblocks * strtoull(argv[3], NULL, 10) / 100;
    uint64_t state = strtoull(argv[4], NULL, 10) * 0x9E3779B97F4A7C15ull + 7;
    uint64_t *all = malloc(nblocks * sizeof *all);
    uint8_t *buf = malloc(blk);
    for (uint64_t i = 0; i < nblocks; i++)
        all[i] = i;
    /* Partial Fisher-Yates: the first `pick` entries are a uniform random choice. */
    for (uint64_t i = 0; i < pick; i++) {
        uint64_t r;
        fill_random((uint8_t *)&r, 8, &state);
        uint64_t j = i + r % (nblocks - i);
        uint64_t t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    qsort(all, pick, sizeof *all, cmp_u64);
    FILE *out = fopen(argv[5], "w");
    if (!out)
        return fprintf(stderr, "mutate %s: %s\n", argv[5], strerror(errno)), 1;
    uint64_t run_start = 0, run_len = 0;
    for (uint64_t i = 0; i < pick; i++) {
        fill_random(buf, blk, &state);
        if (write_all_at(fd, buf, blk, all[i] * blk) != 0)
            return die("mutate");
        if (run_len && run_start + run_len == all[i] * blk) {
            run_len += blk;
        } else {
            if (run_len)
                fprintf(out, "%" PRIu64 " %" PRIu64 "\n", run_start, run_len);
            run_start = all[i] * blk;
            run_len = blk;
        }
    }
    if (run_len)
        fprintf(out, "%" PRIu64 " %" PRIu64 "\n", run_start, run_len);
    fclose(out);
    close(fd);
    free(all);
    free(buf);
    printf("blocks=%" PRIu64 " changed=%" PRIu64 "\n", nblocks, pick);
    return 0;
}

typedef struct {
    const char *key;
    const char *parent;
    const char *changed;
    const char *compression;
    int format;
    unsigned workers;
    bool direct_out;
} opts_t;

static int parse_opts(int argc, char **argv, int first, opts_t *o)
{
    o->workers = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "--direct-out")) {
            o->direct_out = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return fprintf(stderr, "%s needs a value\n", argv[i]), -1;
        if (!strcmp(argv[i], "--key"))
            o->key = v;
        else if (!strcmp(argv[i], "--parent"))
            o->parent = v;
        else if (!strcmp(argv[i], "--changed"))
            o->changed = v;
        else if (!strcmp(argv[i], "--compression"))
            o->compression = v;
        else if (!strcmp(argv[i], "--format"))
            o->format = (int)strtol(v, NULL, 10);
        else if (!strcmp(argv[i], "--workers"))
            o->workers = (unsigned)strtoul(v, NULL, 10);
        else
            return fprintf(stderr, "unknown option %s\n", argv[i]), -1;
        i++;
    }
    return 0;
}

/* What an s3:// REPO needs besides its location (tests/bench/s3.sh). */
static vb_store_opts_t store_opts(void)
{
    return (vb_store_opts_t){.credentials_file = getenv("VB_BENCH_CREDENTIALS"),
                             .create_bucket = true};
}

static int cmd_init(int argc, char **argv)
{
    opts_t o = {0};
    uint64_t cs = 0;
    if (argc < 4 || parse_opts(argc, argv, 4, &o) != 0 ||
        vb_parse_size(argv[3], "CHUNK", &cs) != 0)
        return fprintf(stderr, "usage: init REPO CHUNK [--compression C] [--key K] [--format F]\n"),
               2;
    vb_repo_params_t p = {.chunk_size = (uint32_t)cs,
                          .compression_level = 3,
                          .key_file = o.key,
                          .format = o.format,
                          .store = store_opts()};
    if (o.compression && vb_repo_parse_compression(o.compression, &p.compression_level) != 0)
        return die("init");
    return vb_repo_init(argv[2], &p) ? die("init") : 0;
}

/* The session thread's job for a full backup: the image's data extents. */
static int data_extents(int fd, uint64_t size, vb_extent_list_t *out)
{
    off_t pos = 0;
    while ((uint64_t)pos < size) {
        off_t data = lseek(fd, pos, SEEK_DATA);
        if (data < 0)
            break; /* ENXIO: only a hole is left */
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0)
            hole = (off_t)size;
        if (vb_extent_list_add(out, (uint64_t)data, (uint64_t)(hole - data)) != 0)
            return -1;
        pos = hole;
    }
    return 0;
}

static int read_changed(const char *path, vb_extent_list_t *out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return vb_error_set(VB_EIO, "%s: %s", path, strerror(errno));
    unsigned long long off, len;
    int rc = 0;
    while (rc == 0 && fscanf(f, "%llu %llu", &off, &len) == 2)
        rc = vb_extent_list_add(out, off, len);
    fclose(f);
    return rc;
}

static int image_read(void *ctx, void *buf, size_t len, uint64_t off)
{
    if (vb_pread_full(*(int *)ctx, buf, len, off) != 0)
        return vb_error_set(VB_EIO, "reading the image at %" PRIu64 ": %s", off, strerror(errno));
    return 0;
}

/* The restore destination: through the page cache (as restic and borg write theirs), or with
 * --direct-out as the agent writes a restore to a file: the file disk backend (aligned blocks
 * with O_DIRECT, the rest through the cache, fsync at close). */
static int image_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
    return write_all_at(*(int *)ctx, buf, len, off);
}

static int disk_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
    return vb_disk_write(ctx, buf, len, off);
}

/* Restores idx into the file at path (made at the index's capacity). */
static int restore_to(vb_repo_t *repo, const vb_pipeline_opts_t *po, const vb_index_t *idx,
                      const char *path, bool direct_out, vb_pipeline_stats_t *s)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)idx->capacity) != 0) {
        int rc = vb_error_set(VB_EIO, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if (!direct_out) {
        int rc = vb_pipeline_restore(repo, po, idx, image_write, &fd, s);
        close(fd);
        return rc;
    }
    close(fd);
    char abs[4096];
    vb_disk_conn_t *conn = NULL;
    vb_disk_t *disk = NULL;
    int rc = realpath(path, abs) ? 0 : vb_error_set(VB_EIO, "%s: %s", path, strerror(errno));
    if (rc == 0 && (rc = vb_disk_connect(NULL, &conn)) == 0 &&
        (rc = vb_disk_open_uri(conn, abs, NULL, &disk)) == 0) {
        rc = vb_pipeline_restore(repo, po, idx, disk_write, disk, s);
        int close_rc = vb_disk_close(&disk);
        rc = rc ? rc : close_rc;
    }
    vb_disk_disconnect(&conn);
    return rc;
}

static int cmd_backup(int argc, char **argv)
{
    opts_t o = {0};
    if (argc < 5 || parse_opts(argc, argv, 5, &o) != 0 || (o.parent && !o.changed))
        return fprintf(stderr, "usage: backup REPO IMAGE NAME [--parent P --changed F]\n"), 2;
    vb_store_opts_t so = store_opts();
    vb_repo_t *repo = vb_repo_open_opts(argv[2], o.key, &so);
    if (!repo)
        return die("open");
    int fd = open(argv[3], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return fprintf(stderr, "%s: %s\n", argv[3], strerror(errno)), 1;
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    uint64_t size = (uint64_t)st.st_size;
    vb_extent_list_t ext = {0};
    vb_index_t *parent = NULL, *idx = NULL;
    if (o.parent) {
        if (vb_index_read(repo, o.parent, &parent) != 0 || read_changed(o.changed, &ext) != 0)
            return die("incremental");
    } else if (data_extents(fd, size, &ext) != 0) {
        return die("extents");
    }
    vb_pipeline_opts_t po = {.workers = o.workers};
    vb_pipeline_stats_t s;
    vb_chunk_result_t *res = NULL;
    size_t n = 0;
    if (vb_pipeline_backup_collect(repo, &po, "bench", size, ext.items, ext.count, image_read,
                                   &fd, &res, &n, &s) != 0)
        return die("backup");
    if (vb_index_build(parent, o.parent, "bench", size, vb_repo_chunk_size(repo), res, n, &idx) ||
        vb_index_write(repo, argv[4], idx))
        return die("index");
    printf("chunks_read=%" PRIu64 " zero=%" PRIu64 " new=%" PRIu64 " dedup=%" PRIu64
           " bytes_read=%" PRIu64 " new_bytes=%" PRIu64 " stored_bytes=%" PRIu64 "\n",
           s.chunks, s.chunks_zero, s.chunks_new, s.chunks_dedup, s.bytes_read, s.bytes_new,
           s.bytes_stored);
    free(res);
    vb_extent_list_free(&ext);
    vb_index_destroy(&parent);
    vb_index_destroy(&idx);
    close(fd);
    vb_repo_destroy(&repo);
    return 0;
}

static int cmd_restore_verify(int argc, char **argv, bool restore)
{
    opts_t o = {0};
    int first = restore ? 5 : 4;
    if (argc < first || parse_opts(argc, argv, first, &o) != 0)
        return fprintf(stderr, "usage: restore REPO NAME OUT | verify REPO NAME\n"), 2;
    vb_store_opts_t so = store_opts();
    vb_repo_t *repo = vb_repo_open_opts(argv[2], o.key, &so);
    vb_index_t *idx = NULL;
    if (!repo || vb_index_read(repo, argv[3], &idx) != 0)
        return die("open");
    vb_pipeline_opts_t po = {.workers = o.workers};
    vb_pipeline_stats_t s;
    if (restore) {
        if (restore_to(repo, &po, idx, argv[4], o.direct_out, &s) != 0)
            return die("restore");
    } else if (vb_pipeline_verify(repo, &po, idx, NULL, NULL, &s) != 0) {
        return die("verify");
    }
    printf("chunks=%" PRIu64 " holes=%" PRIu64 " bytes_written=%" PRIu64 " reads=%" PRIu64 "\n",
           s.chunks, s.chunks_zero, s.bytes_written, s.reads);
    vb_index_destroy(&idx);
    vb_repo_destroy(&repo);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return fprintf(stderr, "usage: vb_bench_datapath mkimage|mutate|init|backup|restore|verify"
                               " ...\n"),
               2;
    const char *c = argv[1];
    if (!strcmp(c, "mkimage"))
        return cmd_mkimage(argc, argv);
    if (!strcmp(c, "mutate"))
        return cmd_mutate(argc, argv);
    if (!strcmp(c, "init"))
        return cmd_init(argc, argv);
    if (!strcmp(c, "backup"))
        return cmd_backup(argc, argv);
    if (!strcmp(c, "restore"))
        return cmd_restore_verify(argc, argv, true);
    if (!strcmp(c, "verify"))
        return cmd_restore_verify(argc, argv, false);
    fprintf(stderr, "vb_bench_datapath: unknown command %s\n", c);
    return 2;
}
