#include "pipeline/pipeline.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "log.h"

typedef enum { S_BACKUP, S_RESTORE, S_VERIFY } s_mode_t;

#define MIN_U32(a, b) ((a) < (b) ? (a) : (b))
/* Restore and verify hand a worker the chunks of one pack at a time, at most this many bytes of
 * the pack and this many chunks (the images are read ahead in one ranged read per run). Larger
 * reads were slower on the development machine, cold and warm: the images no longer fit the
 * cache between the read and the decode (see README, Repository formats). */
#define S_UNIT_BYTES VB_PIPELINE_READ_UNIT
#define S_UNIT_CHUNKS 1024u
#define S_UNIT_UNPLACED 1u   /* chunks per unit without a place (format 1, holes): as before */
#define S_NO_PACK UINT64_MAX /* a planned chunk without a place */

/* One chunk of a restore or verify plan: where it lies in the repository, and which it is. */
typedef struct {
    uint64_t pack; /* vb_repo_place_t.pack, or S_NO_PACK */
    uint32_t offset;
    uint32_t length;
    uint64_t chunk; /* in the index */
} s_planned_t;

/* State shared by the workers of one run; everything below `lock` is guarded by it. */
typedef struct {
    s_mode_t mode;
    vb_repo_t *repo;
    const char *disk;
    uint32_t chunk_size;
    uint64_t capacity;
    /* backup */
    const vb_extent_t *extents;
    size_t extent_count;
    vb_read_at_fn read_at;
    void *read_ctx;
    vb_chunk_emit_fn emit;
    void *emit_ctx;
    /* where the chunks read hold data; the rest reads as zeros (NULL: read chunks whole) */
    const vb_extent_t *read_map;
    size_t read_map_count;
    /* restore / verify */
    const vb_index_t *index;
    vb_write_at_fn write_at;
    void *write_ctx;
    vb_verify_report_fn report;
    void *report_ctx;
    bool write_zeros;
    uint64_t base; /* restore: disk offset of the index's first chunk */
    s_planned_t *plan; /* the index's chunks to read, in the order they lie in the repository */
    size_t plan_count;
    bool fetch_ahead; /* two units per worker: one read while the other is decoded */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t ext_pos;      /* backup cursor: current extent */
    uint64_t next_chunk; /* next chunk index to hand out (backup); next plan entry (restore) */
    uint64_t next_seq;   /* sequence number of the next chunk handed out */
    uint64_t emit_seq;   /* next sequence number to emit */
    unsigned window;
    vb_chunk_result_t *slots; /* reorder window, indexed by seq % window */
    bool *ready;
    bool stop;
    int rc;
    char msg[1024];
    uint64_t first_bad;
    vb_pipeline_stats_t stats;
} s_run_t;

/* Restore and verify, fetching ahead: the next unit's images, read on a helper thread into a
 * second repository worker while this one decodes the unit in hand. */
typedef struct {
    vb_repo_worker_t *rw;
    vb_digest_t *unit;
    size_t first, end, n; /* plan[first .. end); n digests with a place in unit */
    pthread_t thread;
    bool started;
} s_fetch_t;

typedef struct {
    s_run_t *run;
    pthread_t thread;
    vb_repo_worker_t *rw;
    uint8_t *buf;
    size_t buf_cap;      /* a chunk; restore: a run of them (VB_PIPELINE_WRITE_RUN) */
    uint64_t run_first;  /* restore: the chunk at buf[0] of the run held back in buf */
    uint32_t run_chunks; /* chunks in that run, 0: none */
    size_t run_len;      /* their bytes */
    vb_digest_t *unit; /* restore, verify: the digests of the unit in hand (S_UNIT_CHUNKS) */
    s_fetch_t ahead;   /* fetching ahead (run->fetch_ahead) */
    vb_pipeline_stats_t stats;
} s_worker_t;

/* Records the first failure (message from the calling thread) and stops the run. */
static void s_fail_locked(s_run_t *run, int rc)
{
    if (!run->rc) {
        run->rc = rc;
        snprintf(run->msg, sizeof run->msg, "%s", vb_error_msg());
    }
    run->stop = true;
    pthread_cond_broadcast(&run->cond);
}

/* Backup cursor: the next chunk index touched by the extents, each chunk once. */
static bool s_next_backup_chunk(s_run_t *run, uint64_t *chunk)
{
    while (run->ext_pos < run->extent_count) {
        const vb_extent_t *e = &run->extents[run->ext_pos];
        uint64_t first = e->offset / run->chunk_size;
        uint64_t last = (e->offset + e->length - 1) / run->chunk_size;
        if (e->length == 0 || run->next_chunk > last) {
            run->ext_pos++;
            continue;
        }
        if (run->next_chunk < first)
            run->next_chunk = first;
        *chunk = run->next_chunk++;
        return true;
    }
    return false;
}

/* Restore and verify cursor: the next unit of the plan, plan[*first .. *end): chunks of one
 * pack within S_UNIT_BYTES of the first, or up to S_UNIT_UNPLACED chunks without a place. */
static bool s_next_unit(s_run_t *run, size_t *first, size_t *end)
{
    size_t i = run->next_chunk, n = run->plan_count;
    if (i >= n)
        return false;
    const s_planned_t *a = &run->plan[i];
    size_t max = a->pack == S_NO_PACK ? S_UNIT_UNPLACED : S_UNIT_CHUNKS, j = i + 1;
    while (j < n && j - i < max && run->plan[j].pack == a->pack &&
           (a->pack == S_NO_PACK ||
            (uint64_t)run->plan[j].offset + run->plan[j].length - a->offset <= S_UNIT_BYTES))
        j++;
    *first = i;
    *end = run->next_chunk = j;
    return true;
}

static uint32_t s_chunk_len(const s_run_t *run, uint64_t chunk)
{
    uint64_t off = chunk * run->chunk_size;
    uint64_t rest = run->capacity - off;
    return rest < run->chunk_size ? (uint32_t)rest : run->chunk_size;
}

/* Reads the chunk [off, off+len) where the allocated extents cover it and zero-fills the rest
 * (holes: reading them costs a zero-filled page per 4 KiB, or zeros over the network). Gaps
 * shorter than VB_PIPELINE_GAP_READ are read through rather than split into another request. */
static int s_read_allocated(s_run_t *run, uint8_t *buf, uint32_t len, uint64_t off)
{
    const vb_extent_t *e = run->read_map;
    size_t lo = 0, hi = run->read_map_count;
    while (lo < hi) { /* the first extent ending after off */
        size_t mid = lo + (hi - lo) / 2;
        if (e[mid].offset + e[mid].length <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t end = off + len, filled = off, rs = 0, re = 0;
    bool pending = false;
    for (size_t i = lo; i <= run->read_map_count; i++) {
        bool last = i == run->read_map_count || e[i].offset >= end;
        uint64_t ps = last ? end : (e[i].offset > off ? e[i].offset : off);
        uint64_t pe =
            last ? end : (e[i].offset + e[i].length < end ? e[i].offset + e[i].length : end);
        if (pending && !last && ps - re < VB_PIPELINE_GAP_READ) {
            re = pe; /* read through a short gap: it reads as zeros */
            continue;
        }
        if (pending) {
            memset(buf + (filled - off), 0, rs - filled);
            int rc = run->read_at(run->read_ctx, buf + (rs - off), re - rs, rs);
            if (rc)
                return rc;
            filled = re;
            pending = false;
        }
        if (last)
            break;
        rs = ps;
        re = pe;
        pending = true;
    }
    memset(buf + (filled - off), 0, end - filled);
    return 0;
}

static int s_backup_chunk(s_worker_t *w, uint64_t chunk, vb_chunk_result_t *res)
{
    s_run_t *run = w->run;
    uint32_t len = s_chunk_len(run, chunk);
    uint64_t off = chunk * run->chunk_size;
    memset(res, 0, sizeof *res);
    res->offset = off;
    int rc = run->read_map ? s_read_allocated(run, w->buf, len, off)
                           : run->read_at(run->read_ctx, w->buf, len, off);
    if (rc)
        return vb_error_prefix(rc, "disk %s: reading %" PRIu32 " bytes at offset %" PRIu64,
                               run->disk, len, off);
    w->stats.chunks++;
    w->stats.bytes_read += len;
    if (vb_buf_is_zero(w->buf, len)) {
        w->stats.chunks_zero++;
        return 0;
    }
    if ((rc = vb_repo_digest(w->rw, w->buf, len, &res->digest)) != 0)
        return rc;
    uint64_t stored = 0;
    if ((rc = vb_repo_chunk_put(w->rw, &res->digest, w->buf, len, &stored)) != 0)
        return vb_error_prefix(rc, "disk %s: storing the chunk at offset %" PRIu64, run->disk, off);
    if (stored) {
        w->stats.chunks_new++;
        w->stats.bytes_new += len;
        w->stats.bytes_stored += stored;
    } else {
        w->stats.chunks_dedup++;
    }
    return 0;
}

/* Writes verified chunks from w->buf. On a zero-filled destination, all-zero 4 KiB blocks are
 * left out so the output stays sparse even where a chunk is partly zeros. */
static int s_write_chunk(s_worker_t *w, uint64_t off, uint32_t len)
{
    s_run_t *run = w->run;
    const uint32_t blk = 4096;
    uint32_t pos = 0;
    while (pos < len) {
        uint32_t start = pos, end;
        if (!run->write_zeros) {
            while (start < len && vb_buf_is_zero(w->buf + start, MIN_U32(blk, len - start)))
                start += blk;
            if (start >= len)
                break;
        }
        end = start;
        while (end < len &&
               (run->write_zeros || !vb_buf_is_zero(w->buf + end, MIN_U32(blk, len - end))))
            end += MIN_U32(blk, len - end);
        uint64_t at = run->base + off + start;
        int rc = run->write_at(run->write_ctx, w->buf + start, end - start, at);
        if (rc)
            return vb_error_prefix(rc, "disk %s: writing %" PRIu32 " bytes at offset %" PRIu64,
                                   run->index->disk_key, end - start, at);
        w->stats.bytes_written += end - start;
        pos = end;
    }
    return 0;
}

/* Writes the run held back in w->buf, if any, and starts none. */
static int s_flush_run(s_worker_t *w)
{
    int rc = 0;
    if (w->run_chunks)
        rc = s_write_chunk(w, w->run_first * w->run->chunk_size, (uint32_t)w->run_len);
    w->run_chunks = 0;
    w->run_len = 0;
    return rc;
}

/* Where chunk `chunk` goes in w->buf: after the run held back when it follows it on the disk and
 * fits, else at the start once the run is written (restore); at the start (verify). */
static int s_chunk_dst(s_worker_t *w, uint64_t chunk, uint8_t **dst)
{
    s_run_t *run = w->run;
    int rc = 0;
    if (run->mode == S_RESTORE &&
        (chunk != w->run_first + w->run_chunks || w->run_len + run->chunk_size > w->buf_cap))
        rc = s_flush_run(w);
    if (w->run_chunks == 0)
        w->run_first = chunk;
    *dst = w->buf + w->run_len;
    return rc;
}

/* Reads chunk `chunk` of the index into dst and checks its length; the message (on error)
 * says what is wrong with the chunk, not where it is. */
static int s_get_chunk(s_worker_t *w, uint64_t chunk, uint32_t len, uint8_t *dst)
{
    size_t got = 0;
    int rc =
        vb_repo_chunk_get(w->rw, &w->run->index->digests[chunk], dst, w->run->chunk_size, &got);
    if (rc == 0 && got != len)
        rc = vb_error_set(VB_ECORRUPT, "chunk holds %zu bytes, the index expects %" PRIu32, got,
                          len);
    return rc;
}

/* Restore and verify: read and check one chunk; restore also writes it (as part of a run, see
 * s_chunk_dst). Verify reports the disk and offset beside the message (vb_verify_report_fn), so
 * it gets the message bare. */
static int s_read_chunk(s_worker_t *w, uint64_t chunk)
{
    s_run_t *run = w->run;
    const vb_index_t *idx = run->index;
    uint32_t len = vb_index_chunk_len(idx, chunk);
    uint64_t off = chunk * idx->chunk_size;
    uint8_t *dst = NULL;
    int rc = s_chunk_dst(w, chunk, &dst);
    if (rc)
        return rc;
    if (vb_digest_is_zero(&idx->digests[chunk])) { /* a hole, written only with write_zeros */
        memset(dst, 0, len);
        w->stats.chunks_zero++;
    } else if ((rc = s_get_chunk(w, chunk, len, dst)) != 0) {
        if (run->mode == S_VERIFY)
            return rc;
        return vb_error_prefix(rc, "disk %s offset %" PRIu64, idx->disk_key, run->base + off);
    } else {
        w->stats.chunks++;
    }
    if (run->mode == S_RESTORE) {
        w->run_chunks++;
        w->run_len += len;
    }
    return 0;
}

/* Backup results leave in disk order: store this one, then emit every ready one in order. */
static void s_deliver_locked(s_run_t *run, uint64_t seq, const vb_chunk_result_t *res)
{
    unsigned slot = (unsigned)(seq % run->window);
    run->slots[slot] = *res;
    run->ready[slot] = true;
    while (!run->stop && run->ready[run->emit_seq % run->window]) {
        unsigned s = (unsigned)(run->emit_seq % run->window);
        run->ready[s] = false;
        int rc = run->emit ? run->emit(run->emit_ctx, &run->slots[s]) : 0;
        if (rc) {
            s_fail_locked(run, rc);
            return;
        }
        run->emit_seq++;
    }
    pthread_cond_broadcast(&run->cond);
}

static void s_backup_worker(s_worker_t *w)
{
    s_run_t *run = w->run;
    pthread_mutex_lock(&run->lock);
    for (;;) {
        if (run->stop)
            break;
        uint64_t chunk = 0, seq = run->next_seq;
        if (seq >= run->emit_seq + run->window) {
            pthread_cond_wait(&run->cond, &run->lock); /* window full: wait for emission */
            continue;
        }
        if (!s_next_backup_chunk(run, &chunk))
            break;
        run->next_seq++;
        pthread_mutex_unlock(&run->lock);

        vb_chunk_result_t res;
        int rc = s_backup_chunk(w, chunk, &res);

        pthread_mutex_lock(&run->lock);
        if (rc) {
            s_fail_locked(run, rc);
            break;
        }
        s_deliver_locked(run, seq, &res);
    }
    pthread_mutex_unlock(&run->lock);
}

/* A chunk of a restore or verify failed: verify goes on past a bad chunk (the user wants all of
 * them) and returns true; anything else stops the run. */
static bool s_chunk_failed_locked(s_run_t *run, uint64_t chunk, int rc)
{
    if (run->mode == S_VERIFY &&
        (rc == VB_ECORRUPT || rc == VB_ENOTFOUND || rc == VB_EUNSUPPORTED)) {
        if (!run->stats.chunks_bad || chunk * run->chunk_size < run->first_bad)
            run->first_bad = chunk * run->chunk_size;
        run->stats.chunks_bad++;
        if (run->report)
            run->report(run->report_ctx, chunk * run->chunk_size, &run->index->digests[chunk], rc,
                        vb_error_msg());
        return true;
    }
    s_fail_locked(run, rc);
    return false;
}

/* The digests of plan[first .. end) that have a place, into unit; how many. */
static size_t s_unit_digests(const s_run_t *run, size_t first, size_t end, vb_digest_t *unit)
{
    size_t n = 0;
    for (size_t i = first; i < end; i++)
        if (run->plan[i].pack != S_NO_PACK)
            unit[n++] = run->index->digests[run->plan[i].chunk];
    return n;
}

/* Decodes (and writes) the chunks of plan[first .. end), read ahead into w->rw. False when the
 * run must stop. */
static bool s_decode_unit(s_worker_t *w, size_t first, size_t end)
{
    s_run_t *run = w->run;
    bool go = true;
    for (size_t i = first; go && i < end; i++) {
        int rc = s_read_chunk(w, run->plan[i].chunk);
        if (rc) {
            pthread_mutex_lock(&run->lock);
            go = s_chunk_failed_locked(run, run->plan[i].chunk, rc);
            pthread_mutex_unlock(&run->lock);
        }
    }
    return go;
}

static bool s_take_unit(s_run_t *run, size_t *first, size_t *end)
{
    pthread_mutex_lock(&run->lock);
    bool got = !run->stop && s_next_unit(run, first, end);
    pthread_mutex_unlock(&run->lock);
    return got;
}

static void *s_fetch_main(void *arg)
{
    s_fetch_t *f = arg;
    vb_repo_chunk_prefetch(f->rw, f->unit, f->n);
    return NULL;
}

/* Takes the next unit and starts reading it on a helper thread (or here, when none starts).
 * False when the plan is done. */
static bool s_fetch_next(s_worker_t *w)
{
    s_fetch_t *f = &w->ahead;
    f->started = false;
    if (!s_take_unit(w->run, &f->first, &f->end))
        return false;
    f->n = s_unit_digests(w->run, f->first, f->end, f->unit);
    if (f->n && !(f->started = pthread_create(&f->thread, NULL, s_fetch_main, f) == 0))
        vb_repo_chunk_prefetch(f->rw, f->unit, f->n);
    return true;
}

/* Restore: writes what the worker holds back once the plan is done (unless the run stops). */
static void s_index_worker_end(s_worker_t *w)
{
    s_run_t *run = w->run;
    pthread_mutex_lock(&run->lock);
    bool stop = run->stop;
    pthread_mutex_unlock(&run->lock);
    int rc = stop ? 0 : s_flush_run(w);
    if (rc) {
        pthread_mutex_lock(&run->lock);
        s_fail_locked(run, rc);
        pthread_mutex_unlock(&run->lock);
    }
}

/* Restore and verify: one unit of the plan at a time, its images read ahead together; fetching
 * ahead, the next unit is read while this one is decoded (two reads in flight per worker). */
static void s_index_worker(s_worker_t *w)
{
    s_run_t *run = w->run;
    size_t first = 0, end = 0;
    bool go = s_take_unit(run, &first, &end);
    if (go) {
        size_t n = s_unit_digests(run, first, end, w->unit);
        if (n)
            vb_repo_chunk_prefetch(w->rw, w->unit, n);
    }
    while (go) {
        bool next = run->fetch_ahead && s_fetch_next(w);
        go = s_decode_unit(w, first, end);
        if (next && w->ahead.started)
            pthread_join(w->ahead.thread, NULL);
        if (!next) {
            go = go && s_take_unit(run, &first, &end);
            size_t n = go ? s_unit_digests(run, first, end, w->unit) : 0;
            if (n)
                vb_repo_chunk_prefetch(w->rw, w->unit, n);
            continue;
        }
        /* the unit read ahead becomes the one in hand */
        vb_repo_worker_t *rw = w->rw;
        vb_digest_t *unit = w->unit;
        w->rw = w->ahead.rw;
        w->unit = w->ahead.unit;
        w->ahead.rw = rw;
        w->ahead.unit = unit;
        first = w->ahead.first;
        end = w->ahead.end;
    }
    s_index_worker_end(w);
}

static void *s_worker_main(void *arg)
{
    s_worker_t *w = arg;
    if (w->run->mode == S_BACKUP)
        s_backup_worker(w);
    else
        s_index_worker(w);
    return NULL;
}

static void s_add_stats(vb_pipeline_stats_t *a, const vb_pipeline_stats_t *b)
{
    a->chunks += b->chunks;
    a->chunks_zero += b->chunks_zero;
    a->chunks_new += b->chunks_new;
    a->chunks_dedup += b->chunks_dedup;
    a->bytes_read += b->bytes_read;
    a->bytes_written += b->bytes_written;
    a->bytes_new += b->bytes_new;
    a->bytes_stored += b->bytes_stored;
    a->chunks_bad += b->chunks_bad;
    a->reads += b->reads;
}

/* Starts the workers, waits for them, and folds their results into run->rc and stats. */
static int s_run(s_run_t *run, const vb_pipeline_opts_t *opts, vb_pipeline_stats_t *stats_out)
{
    unsigned n = opts && opts->workers ? opts->workers : 2;
    if (n > VB_PIPELINE_MAX_WORKERS)
        return vb_error_set(VB_EINVAL, "pipeline: %u workers; at most %d", n,
                            VB_PIPELINE_MAX_WORKERS);
    run->window = opts && opts->queue_depth ? opts->queue_depth : 4 * n;
    if (run->window < n)
        run->window = n;
    int rc = 0;
    unsigned started = 0;
    s_worker_t *ws = calloc(n, sizeof *ws);
    run->slots = calloc(run->window, sizeof *run->slots);
    run->ready = calloc(run->window, sizeof *run->ready);
    pthread_mutex_init(&run->lock, NULL);
    pthread_cond_init(&run->cond, NULL);
    if (!ws || !run->slots || !run->ready) {
        rc = vb_error_set(VB_ENOMEM, "pipeline: out of memory");
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        ws[i].run = run;
        ws[i].rw = vb_repo_worker_new(run->repo);
        void *buf = NULL;
        ws[i].buf_cap = run->chunk_size;
        if (run->mode == S_RESTORE && ws[i].buf_cap < VB_PIPELINE_WRITE_RUN)
            ws[i].buf_cap = VB_PIPELINE_WRITE_RUN / run->chunk_size * run->chunk_size;
        ws[i].buf = posix_memalign(&buf, 4096, ws[i].buf_cap) == 0 ? buf : NULL;
        if (run->mode != S_BACKUP)
            ws[i].unit = malloc(S_UNIT_CHUNKS * sizeof *ws[i].unit);
        if (run->fetch_ahead && ws[i].rw) {
            ws[i].ahead.rw = vb_repo_worker_new(run->repo);
            ws[i].ahead.unit = malloc(S_UNIT_CHUNKS * sizeof *ws[i].ahead.unit);
        }
        if (!ws[i].rw || !ws[i].buf || (run->mode != S_BACKUP && !ws[i].unit) ||
            (run->fetch_ahead && (!ws[i].ahead.rw || !ws[i].ahead.unit))) {
            rc = ws[i].rw ? vb_error_set(VB_ENOMEM, "pipeline: out of memory") : vb_error_code();
            goto out;
        }
    }
    for (; started < n; started++)
        if (pthread_create(&ws[started].thread, NULL, s_worker_main, &ws[started]) != 0) {
            pthread_mutex_lock(&run->lock);
            vb_error_set(VB_ENOMEM, "pipeline: cannot start a worker thread");
            s_fail_locked(run, VB_ENOMEM);
            pthread_mutex_unlock(&run->lock);
            break;
        }
    for (unsigned i = 0; i < started; i++)
        pthread_join(ws[i].thread, NULL);
    for (unsigned i = 0; i < n; i++) {
        ws[i].stats.reads = vb_repo_worker_reads(ws[i].rw) +
                            (ws[i].ahead.rw ? vb_repo_worker_reads(ws[i].ahead.rw) : 0);
        s_add_stats(&run->stats, &ws[i].stats);
    }
    if (run->rc)
        rc = vb_error_set(run->rc, "%s", run->msg);
    /* a format 2 repository: seal each worker's open pack */
    for (unsigned i = 0; rc == 0 && i < started; i++)
        rc = vb_repo_worker_flush(ws[i].rw);
out:
    for (unsigned i = 0; ws && i < n; i++) {
        vb_repo_worker_destroy(&ws[i].rw);
        vb_repo_worker_destroy(&ws[i].ahead.rw);
        free(ws[i].buf);
        free(ws[i].unit);
        free(ws[i].ahead.unit);
    }
    free(ws);
    free(run->slots);
    free(run->ready);
    pthread_cond_destroy(&run->cond);
    pthread_mutex_destroy(&run->lock);
    if (stats_out)
        *stats_out = run->stats;
    return rc;
}

static int s_check_extents(const char *disk, uint64_t capacity, const vb_extent_t *ext, size_t n)
{
    uint64_t end = 0;
    for (size_t i = 0; i < n; i++) {
        if (ext[i].offset < end || ext[i].length > capacity ||
            ext[i].offset > capacity - ext[i].length)
            return vb_error_set(VB_EINVAL,
                                "disk %s: extent %zu (offset %" PRIu64 ", length %" PRIu64
                                ") is out of order or past the capacity %" PRIu64,
                                disk, i, ext[i].offset, ext[i].length, capacity);
        end = ext[i].offset + ext[i].length;
    }
    return 0;
}

/* The allocated blocks of the chunks the (changed) extents touch, asked once per run of chunks
 * within VB_PIPELINE_GAP_ASK of each other. Non-zero: the source cannot say (read whole). */
static int s_ask_allocated(const s_run_t *run, const vb_pipeline_opts_t *opts,
                           vb_extent_list_t *map)
{
    uint64_t cs = run->chunk_size, ask_start = 0, ask_end = 0;
    for (size_t i = 0; i <= run->extent_count; i++) {
        const vb_extent_t *e = i < run->extent_count ? &run->extents[i] : NULL;
        if (e && e->length == 0)
            continue;
        uint64_t start = e ? e->offset / cs * cs : 0;
        uint64_t end = e ? (e->offset + e->length + cs - 1) / cs * cs : 0;
        if (end > run->capacity)
            end = run->capacity;
        if (e && ask_end > ask_start && start <= ask_end + VB_PIPELINE_GAP_ASK) {
            ask_end = end > ask_end ? end : ask_end;
            continue;
        }
        if (ask_end > ask_start) {
            int rc = opts->allocated(opts->allocated_ctx, ask_start, ask_end - ask_start, map);
            if (rc)
                return rc;
        }
        ask_start = start;
        ask_end = end;
    }
    return 0;
}

int vb_pipeline_backup(vb_repo_t *repo, const vb_pipeline_opts_t *opts, const char *disk,
                       uint64_t capacity, const vb_extent_t *extents, size_t extent_count,
                       vb_read_at_fn read_at, void *read_ctx, vb_chunk_emit_fn emit, void *emit_ctx,
                       vb_pipeline_stats_t *stats)
{
    int rc = s_check_extents(disk, capacity, extents, extent_count);
    if (rc)
        return rc;
    s_run_t run = {.mode = S_BACKUP,
                   .repo = repo,
                   .disk = disk,
                   .chunk_size = vb_repo_chunk_size(repo),
                   .capacity = capacity,
                   .extents = extents,
                   .extent_count = extent_count,
                   .read_at = read_at,
                   .read_ctx = read_ctx,
                   .emit = emit,
                   .emit_ctx = emit_ctx,
                   .read_map = opts && opts->extents_allocated ? extents : NULL,
                   .read_map_count = extent_count};
    static const vb_extent_t no_data[1];
    vb_extent_list_t map = {0};
    if (!run.read_map && opts && opts->allocated) {
        if (s_ask_allocated(&run, opts, &map) == 0) {
            run.read_map = map.count ? map.items : no_data; /* empty: every chunk reads as zeros */
            run.read_map_count = map.count;
        } else {
            VB_LOG_DEBUG("pipeline", "allocation-unknown disk=%s reason=\"%s\" reading=whole",
                         disk, vb_error_msg());
        }
    }
    rc = s_run(&run, opts, stats);
    vb_extent_list_free(&map);
    /* The task may report success only once its chunks are on stable storage: those it stored
     * and those it found stored by another task sharing the handle (repocache.h) — in the open
     * pack or a pack still uploading — which that task may never commit. With nothing pending
     * the commit is a barrier. */
    if (rc == 0)
        rc = vb_repo_sync(repo);
    VB_LOG_DEBUG("pipeline", "backup disk=%s chunks=%" PRIu64 " new=%" PRIu64 " rc=%d", disk,
                 run.stats.chunks, run.stats.chunks_new, rc);
    return rc;
}

typedef struct {
    vb_chunk_result_t *items;
    size_t count, cap;
} s_collect_t;

static int s_collect(void *ctx, const vb_chunk_result_t *r)
{
    s_collect_t *c = ctx;
    int rc = VB_GROW(c->items, c->count, c->cap, 256, "chunk results");
    if (rc)
        return rc;
    c->items[c->count++] = *r;
    return 0;
}

int vb_pipeline_backup_collect(vb_repo_t *repo, const vb_pipeline_opts_t *opts, const char *disk,
                               uint64_t capacity, const vb_extent_t *extents, size_t extent_count,
                               vb_read_at_fn read_at, void *read_ctx,
                               vb_chunk_result_t **results_out, size_t *count_out,
                               vb_pipeline_stats_t *stats)
{
    s_collect_t c = {0};
    int rc = vb_pipeline_backup(repo, opts, disk, capacity, extents, extent_count, read_at,
                                read_ctx, s_collect, &c, stats);
    if (rc) {
        free(c.items);
        c.items = NULL;
        c.count = 0;
    }
    *results_out = c.items;
    *count_out = c.count;
    return rc;
}

static int s_check_index(vb_repo_t *repo, const vb_index_t *index)
{
    if (index->chunk_size != vb_repo_chunk_size(repo))
        return vb_error_set(
            VB_EINVAL, "disk %s: index chunk size %" PRIu32 " is not the repository's %" PRIu32,
            index->disk_key, index->chunk_size, vb_repo_chunk_size(repo));
    return 0;
}

static int s_cmp_planned(const void *a, const void *b)
{
    const s_planned_t *x = a, *y = b;
    if (x->pack != y->pack)
        return x->pack < y->pack ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->chunk < y->chunk ? -1 : x->chunk > y->chunk;
}

/* Restore and verify read the index's chunks in the order they lie in the repository: pack by
 * pack in format 2 (so each run of a pack is read once, whatever disk offsets its chunks have),
 * in index order otherwise. Holes are counted and left out unless they must be written. */
static int s_plan(s_run_t *run)
{
    const vb_index_t *idx = run->index;
    run->plan = malloc((idx->count ? idx->count : 1) * sizeof *run->plan);
    if (!run->plan)
        return vb_error_set(VB_ENOMEM, "disk %s: out of memory for the plan of %" PRIu64 " chunks",
                            idx->disk_key, idx->count);
    size_t n = 0;
    for (uint64_t c = 0; c < idx->count; c++) {
        const vb_digest_t *d = &idx->digests[c];
        bool hole = vb_digest_is_zero(d);
        vb_repo_place_t pl;
        if (hole && !run->write_zeros) {
            run->stats.chunks_zero++;
            continue;
        }
        s_planned_t *p = &run->plan[n++];
        *p = (s_planned_t){.pack = S_NO_PACK, .chunk = c};
        if (!hole && vb_repo_chunk_place(run->repo, d, &pl)) {
            p->pack = pl.pack;
            p->offset = pl.offset;
            p->length = pl.length;
        }
    }
    run->plan_count = n;
    qsort(run->plan, n, sizeof *run->plan, s_cmp_planned);
    return 0;
}

/* A restore or verify run over the chunks of `index`. Units are fetched ahead where the store
 * keeps several requests in flight (a network store such as S3), where a read is a round trip
 * worth overlapping with the decoding; a local directory reads one unit at a time per worker. */
static s_run_t s_index_run(s_mode_t mode, vb_repo_t *repo, const vb_index_t *index)
{
    return (s_run_t){.mode = mode,
                     .repo = repo,
                     .disk = index->disk_key,
                     .chunk_size = index->chunk_size,
                     .capacity = index->capacity,
                     .index = index,
                     .fetch_ahead = vb_repo_format(repo) == VB_REPO_FORMAT_PACKED &&
                                    vb_store_puts_in_flight(vb_repo_store(repo)) > 1};
}

int vb_pipeline_restore(vb_repo_t *repo, const vb_pipeline_opts_t *opts, const vb_index_t *index,
                        vb_write_at_fn write_at, void *write_ctx, vb_pipeline_stats_t *stats)
{
    int rc = s_check_index(repo, index);
    if (rc)
        return rc;
    s_run_t run = s_index_run(S_RESTORE, repo, index);
    run.write_at = write_at;
    run.write_ctx = write_ctx;
    run.write_zeros = opts && opts->write_zeros;
    run.base = opts ? opts->base : 0;
    if ((rc = s_plan(&run)) == 0)
        rc = s_run(&run, opts, stats);
    free(run.plan);
    return rc;
}

int vb_pipeline_verify(vb_repo_t *repo, const vb_pipeline_opts_t *opts, const vb_index_t *index,
                       vb_verify_report_fn report, void *report_ctx, vb_pipeline_stats_t *stats)
{
    int rc = s_check_index(repo, index);
    if (rc)
        return rc;
    s_run_t run = s_index_run(S_VERIFY, repo, index);
    run.report = report;
    run.report_ctx = report_ctx;
    if ((rc = s_plan(&run)) == 0)
        rc = s_run(&run, opts, stats);
    free(run.plan);
    if (rc == 0 && run.stats.chunks_bad)
        rc = vb_error_set(VB_ECORRUPT,
                          "disk %s: %" PRIu64
                          " corrupt or missing chunks, the first at offset %" PRIu64,
                          index->disk_key, run.stats.chunks_bad, run.first_bad);
    return rc;
}
