/* vbrepo — nbdkit plugin that serves a restore point's disks straight from a vbak repository
 * (`vbak serve`): one read-only export per disk, named by its disk key.
 *
 *   nbdkit nbdkit-vbrepo-plugin.so repo=PATH [key=KEYFILE] disk=KEY:INDEX [disk=KEY:INDEX]...
 *          [cache=MiB] [readahead=CHUNKS] [loaders=N]
 *
 * Each disk=KEY:INDEX names a disk key (the export name) and its disk index in the repository
 * (index.h). Chunks are read, decrypted, decompressed and re-hashed by the repository code that
 * restores and verifies use (vb_repo_chunk_get, formats 1 and 2), one repository worker per
 * thread, so requests run in parallel. Decoded chunks live in a bounded cache (chunkcache.h,
 * cache=MiB, default 64); a read near where earlier reads of the disk ended queues the next
 * `readahead` chunks (default 16, at most a quarter of the cache) for `loaders` read-ahead
 * threads (default 4).
 *
 * Holes (chunks the index marks all-zero) read as zeros without touching the repository and are
 * reported as holes through extents (base:allocation). A chunk that is missing or fails its
 * checks is an EIO for the client and a log line naming the disk, the offset and the problem;
 * the server keeps running. key= is the path of the repository's key file on this host: the key
 * itself never leaves it. Writes are not supported (nbdkit's cow filter in front gives a
 * throw-away writable overlay). */
#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#include <nbdkit-plugin.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "repo/chunkcache.h"
#include "repo/index.h"
#include "repo/repo.h"

#define S_DISKS_MAX 64

#define S_STREAMS 8 /* sequential readers of one disk followed at once */

typedef struct {
    char *key;   /* export name */
    char *index; /* index name in the repository */
    vb_index_t *idx;
    pthread_mutex_t lock; /* guards ends */
    uint64_t ends[S_STREAMS]; /* where recent sequential streams of reads ended */
    unsigned next;            /* the stream slot to reuse */
} s_disk_t;

/* Plugin-wide state: nbdkit loads one plugin per process. */
static struct {
    char *repo_path, *key_file;
    char *credentials_file; /* an s3:// repository's access key file */
    s_disk_t disks[S_DISKS_MAX];
    size_t ndisks;
    uint64_t cache_mib, readahead, loaders;
    vb_repo_t *repo;
    vb_chunkcache_t *cache;
    pthread_key_t worker_key;
    bool worker_key_made;
} s = {.cache_mib = 64, .readahead = 16, .loaders = 4};

typedef struct {
    s_disk_t *disk;
} s_handle_t;

static void s_worker_free(void *w)
{
    vb_repo_worker_destroy((vb_repo_worker_t **)&w);
}

/* The calling thread's repository worker (made on first use, freed when the thread exits). */
static vb_repo_worker_t *s_worker(void)
{
    vb_repo_worker_t *w = pthread_getspecific(s.worker_key);
    if (!w && (w = vb_repo_worker_new(s.repo)) && pthread_setspecific(s.worker_key, w) != 0)
        vb_repo_worker_destroy(&w);
    return w;
}

static int s_load(void *arg, const vb_digest_t *d, void *buf, size_t cap, size_t *len_out)
{
    (void)arg;
    vb_repo_worker_t *w = s_worker();
    if (!w)
        return vb_error_code() ? vb_error_code() : VB_ENOMEM;
    return vb_repo_chunk_get(w, d, buf, cap, len_out);
}

static void s_unload(void)
{
    vb_chunkcache_destroy(&s.cache);
    for (size_t i = 0; i < s.ndisks; i++) {
        free(s.disks[i].key);
        free(s.disks[i].index);
        vb_index_destroy(&s.disks[i].idx);
        pthread_mutex_destroy(&s.disks[i].lock);
    }
    vb_repo_destroy(&s.repo);
    if (s.worker_key_made)
        pthread_key_delete(s.worker_key);
    free(s.repo_path);
    free(s.key_file);
    free(s.credentials_file);
}

static int s_add_disk(const char *value)
{
    const char *colon = strrchr(value, ':');
    if (!colon || colon == value || !colon[1]) {
        nbdkit_error("disk=%s: expected disk=KEY:INDEX", value);
        return -1;
    }
    if (s.ndisks == S_DISKS_MAX) {
        nbdkit_error("more than %d disks", S_DISKS_MAX);
        return -1;
    }
    s_disk_t *d = &s.disks[s.ndisks];
    pthread_mutex_init(&d->lock, NULL);
    if (!(d->key = strndup(value, (size_t)(colon - value))) || !(d->index = strdup(colon + 1))) {
        nbdkit_error("strdup: %m");
        return -1;
    }
    for (size_t i = 0; i < s.ndisks; i++)
        if (!strcmp(s.disks[i].key, d->key)) {
            nbdkit_error("disk %s is named twice", d->key);
            return -1;
        }
    s.ndisks++;
    return 0;
}

static int s_parse_u64(const char *key, const char *value, uint64_t max, uint64_t *out)
{
    int64_t v;
    if (nbdkit_parse_int64_t(key, value, &v) < 0)
        return -1;
    if (v < 0 || (uint64_t)v > max) {
        nbdkit_error("%s=%s: must be 0 to %llu", key, value, (unsigned long long)max);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int s_config(const char *key, const char *value)
{
    if (!strcmp(key, "repo")) { /* a directory, or a location such as s3://BUCKET/PREFIX?... */
        free(s.repo_path);
        s.repo_path = strstr(value, "://") ? strdup(value) : nbdkit_realpath(value);
        return s.repo_path ? 0 : -1;
    }
    if (!strcmp(key, "key")) {
        free(s.key_file);
        return (s.key_file = nbdkit_realpath(value)) ? 0 : -1;
    }
    if (!strcmp(key, "credentials")) {
        free(s.credentials_file);
        return (s.credentials_file = nbdkit_realpath(value)) ? 0 : -1;
    }
    if (!strcmp(key, "disk"))
        return s_add_disk(value);
    if (!strcmp(key, "cache"))
        return s_parse_u64(key, value, 1u << 20, &s.cache_mib);
    if (!strcmp(key, "readahead"))
        return s_parse_u64(key, value, 256, &s.readahead);
    if (!strcmp(key, "loaders"))
        return s_parse_u64(key, value, 16, &s.loaders);
    nbdkit_error("unknown parameter '%s'", key);
    return -1;
}

/* Opens the repository (checking the key) and reads every disk's index, so that a wrong key or a
 * missing index stops the server before it listens. */
static int s_config_complete(void)
{
    if (!s.repo_path || !s.ndisks) {
        nbdkit_error("repo=PATH and at least one disk=KEY:INDEX are required");
        return -1;
    }
    if (pthread_key_create(&s.worker_key, s_worker_free) != 0) {
        nbdkit_error("pthread_key_create failed");
        return -1;
    }
    s.worker_key_made = true;
    if (!(s.repo = vb_repo_open_opts(s.repo_path, s.key_file,
                                     &(vb_store_opts_t){.credentials_file = s.credentials_file}))) {
        nbdkit_error("repository %s: %s", s.repo_path, vb_error_msg());
        return -1;
    }
    if (vb_repo_encrypted(s.repo) && !s.key_file) {
        nbdkit_error("repository %s is encrypted: key=KEYFILE is required", s.repo_path);
        return -1;
    }
    for (size_t i = 0; i < s.ndisks; i++)
        if (vb_index_read(s.repo, s.disks[i].index, &s.disks[i].idx) != 0) {
            nbdkit_error("disk %s: index %s: %s", s.disks[i].key, s.disks[i].index,
                         vb_error_msg());
            return -1;
        }
    return 0;
}

/* The cache's read-ahead threads start in the process that serves (after nbdkit forks). */
static int s_after_fork(void)
{
    /* read-ahead never takes more than a quarter of the cache: what it loads must still be
     * there when the reader comes */
    uint64_t slots = (s.cache_mib << 20) / vb_repo_chunk_size(s.repo);
    if (s.readahead > slots / 4)
        s.readahead = slots / 4 ? slots / 4 : 1;
    s.cache = vb_chunkcache_new((size_t)s.cache_mib << 20, vb_repo_chunk_size(s.repo),
                                s.readahead ? (unsigned)s.loaders : 0,
                                (unsigned)(s.readahead * 2 + 1), s_load, NULL);
    if (!s.cache) {
        nbdkit_error("%s", vb_error_msg());
        return -1;
    }
    nbdkit_debug("vbrepo: repository %s format %d, %zu disk(s), cache %zu chunks", s.repo_path,
                 vb_repo_format(s.repo), s.ndisks, vb_chunkcache_slots(s.cache));
    return 0;
}

static int s_list_exports(int readonly, int is_tls, struct nbdkit_exports *exports)
{
    (void)readonly;
    (void)is_tls;
    for (size_t i = 0; i < s.ndisks; i++)
        if (nbdkit_add_export(exports, s.disks[i].key, NULL) < 0)
            return -1;
    return 0;
}

static const char *s_default_export(int readonly, int is_tls)
{
    (void)readonly;
    (void)is_tls;
    return s.disks[0].key;
}

static void *s_open(int readonly)
{
    (void)readonly;
    const char *name = nbdkit_export_name();
    s_disk_t *disk = NULL;
    for (size_t i = 0; i < s.ndisks && !disk; i++)
        if (!strcmp(s.disks[i].key, name && *name ? name : s.disks[0].key))
            disk = &s.disks[i];
    if (!disk) {
        nbdkit_error("no such export: '%s' (this restore point's disks are the exports)", name);
        return NULL;
    }
    s_handle_t *h = calloc(1, sizeof *h);
    if (!h) {
        nbdkit_error("calloc: %m");
        return NULL;
    }
    h->disk = disk;
    return h;
}

static void s_close(void *handle)
{
    free(handle);
}

static int64_t s_get_size(void *handle)
{
    return (int64_t)((s_handle_t *)handle)->disk->idx->capacity;
}

static int s_can_write(void *handle)
{
    (void)handle;
    return 0;
}

static int s_one(void *handle)
{
    (void)handle;
    return 1; /* multi-conn (read-only: every connection sees the same bytes), extents */
}

static int s_can_cache(void *handle)
{
    (void)handle;
    return NBDKIT_CACHE_NATIVE;
}

/* Queues chunks [first, first + n) of the disk for read-ahead (holes need none). */
static void s_prefetch(const vb_index_t *idx, uint64_t first, uint64_t n)
{
    for (uint64_t i = first; i < idx->count && i < first + n; i++)
        if (!vb_digest_is_zero(&idx->digests[i]))
            vb_chunkcache_prefetch(s.cache, &idx->digests[i]);
}

/* A read that starts near where one of the disk's recent streams of reads ended (a copy with
 * multi-conn runs one stream per connection, each over its own part of the disk) continues that
 * stream; one that reaches a new chunk queues the chunks after it. Any other read starts a new
 * stream in the least recently started slot. */
static void s_read_ahead(s_disk_t *disk, uint64_t offset, uint64_t end)
{
    uint64_t cs = disk->idx->chunk_size, window = s.readahead * cs;
    bool near = false;
    pthread_mutex_lock(&disk->lock);
    for (unsigned i = 0; i < S_STREAMS && !near; i++)
        if (offset + window >= disk->ends[i] && offset <= disk->ends[i] + window) {
            near = true;
            if (end > disk->ends[i])
                disk->ends[i] = end;
        }
    if (!near)
        disk->ends[disk->next++ % S_STREAMS] = end;
    pthread_mutex_unlock(&disk->lock);
    bool new_chunk = offset / cs != (end - 1) / cs || offset % cs == 0;
    if (s.readahead && near && new_chunk)
        s_prefetch(disk->idx, (end + cs - 1) / cs, s.readahead);
}

static int s_pread(void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    (void)flags;
    s_handle_t *h = handle;
    const vb_index_t *idx = h->disk->idx;
    uint64_t cs = idx->chunk_size, pos = offset, end = offset + count;
    uint8_t *out = buf;
    s_read_ahead(h->disk, offset, end);
    while (pos < end) {
        uint64_t i = pos / cs, in = pos % cs;
        size_t n = (size_t)((cs - in) < (end - pos) ? (cs - in) : (end - pos));
        if (vb_digest_is_zero(&idx->digests[i]))
            memset(out, 0, n);
        else if (vb_chunkcache_read(s.cache, &idx->digests[i], (size_t)in, n, out) != 0) {
            char hex[VB_DIGEST_HEX_LEN + 1];
            vb_digest_hex(&idx->digests[i], hex);
            nbdkit_error("disk %s offset %llu: %s (chunk %.16s...)", h->disk->key,
                         (unsigned long long)(i * cs), vb_error_msg(), hex);
            errno = EIO;
            return -1;
        }
        out += n;
        pos += n;
    }
    return 0;
}

/* NBD_CMD_CACHE: load the chunks of the range into the cache ahead of the reads. */
static int s_cache(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
    (void)flags;
    const vb_index_t *idx = ((s_handle_t *)handle)->disk->idx;
    uint64_t cs = idx->chunk_size;
    s_prefetch(idx, offset / cs, (offset % cs + count + cs - 1) / cs);
    return 0;
}

/* Runs of holes and of data, chunk by chunk, from offset to the end of the request. */
static int s_extents(void *handle, uint32_t count, uint64_t offset, uint32_t flags,
                     struct nbdkit_extents *extents)
{
    (void)flags;
    const vb_index_t *idx = ((s_handle_t *)handle)->disk->idx;
    uint64_t cs = idx->chunk_size, end = offset + count, pos = offset;
    while (pos < end) {
        uint64_t i = pos / cs;
        bool hole = vb_digest_is_zero(&idx->digests[i]);
        uint64_t run_end = (i + 1) * cs;
        while (run_end < end && run_end / cs < idx->count &&
               vb_digest_is_zero(&idx->digests[run_end / cs]) == hole)
            run_end += cs;
        if (run_end > idx->capacity)
            run_end = idx->capacity;
        if (nbdkit_add_extent(extents, pos, run_end - pos,
                              hole ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0) < 0)
            return -1;
        pos = run_end;
    }
    return 0;
}

static struct nbdkit_plugin s_plugin = {
    .name = "vbrepo",
    .longname = "vbak restore point disks, read from a vbak repository",
    .version = "1",
    .unload = s_unload,
    .config = s_config,
    .config_complete = s_config_complete,
    .config_help = "repo=<LOCATION>     (required) the repository: a directory or s3:// URL\n"
                   "disk=<KEY>:<INDEX>  (required, repeatable) an export and its disk index\n"
                   "key=<FILE>          the repository's key file (encrypted repositories)\n"
                   "credentials=<FILE>  an s3:// repository's access key file\n"
                   "cache=<MiB>         decoded chunk cache size (default 64)\n"
                   "readahead=<N>       chunks read ahead of a sequential reader (default 16)\n"
                   "loaders=<N>         read-ahead threads (default 4)",
    .after_fork = s_after_fork,
    .list_exports = s_list_exports,
    .default_export = s_default_export,
    .open = s_open,
    .close = s_close,
    .get_size = s_get_size,
    .can_write = s_can_write,
    .can_multi_conn = s_one,
    .can_extents = s_one,
    .can_cache = s_can_cache,
    .pread = s_pread,
    .cache = s_cache,
    .extents = s_extents,
    .errno_is_preserved = 1,
};

/* The entry point the macro below defines (declared first for -Wmissing-prototypes). */
struct nbdkit_plugin *plugin_init(void);
NBDKIT_REGISTER_PLUGIN(s_plugin)
