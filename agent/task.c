#include "task.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/disk.h"
#include "disk/disk_uri.h"
#include "log.h"
#include "pipeline/pipeline.h"
#include "repo/index.h"
#include "repo/repo.h"
#include "wire.h"
#include "wire_check.h"

typedef struct {
    zframe_t *assign;
    vb_task_env_t env;
} s_args_t;

typedef struct {
    Vbak__TaskResult result;
    char *error;              /* owned */
    char *mode;               /* owned: the mode that opened the disk (outlives the disk) */
    char *warning;            /* owned */
    char **failed;            /* owned */
    size_t failed_count;
    Vbak__ChunkRef *chunk_store;
    Vbak__ChunkRef **chunks;
    uint8_t (*digests)[VB_DIGEST_LEN];
    Vbak__Extent *extent_store;
    Vbak__Extent **extents;
} s_outcome_t;

static int s_read_at(void *ctx, void *buf, size_t len, uint64_t offset)
{
    return vb_disk_read(ctx, buf, len, offset);
}

static int s_allocated_in(void *ctx, uint64_t offset, uint64_t length, vb_extent_list_t *out)
{
    return vb_disk_try_allocated_blocks(ctx, offset, length, out);
}

static int s_write_at(void *ctx, const void *buf, size_t len, uint64_t offset)
{
    return vb_disk_write(ctx, buf, len, offset);
}

static void s_set_error(s_outcome_t *o, Vbak__TaskStatus status, const char *what)
{
    o->result.status = status;
    free(o->error);
    o->error = strdup(what ? what : vb_error_msg());
    o->result.error = o->error;
}

/* Failures a retry cannot mend: the task fails at once instead of backing off (a short outage,
 * a dropped connection, a busy file are worth retrying; these are not). */
static const int s_permanent_codes[] = {VB_EINVAL,   VB_ENOTFOUND, VB_EPROTO, VB_EPOLICY,
                                        VB_ECORRUPT, VB_EAUTH,     VB_ENOSPC, VB_EUNSUPPORTED};

/* A disk that cannot be opened because of what the route is (refused by policy, not supported,
 * a wrong certificate), not because its server is away for a moment. */
static const int s_permanent_open_codes[] = {VB_EPOLICY, VB_EUNSUPPORTED, VB_EAUTH};

static bool s_in(int rc, const int *codes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (rc == codes[i])
            return true;
    return false;
}

static bool s_is_permanent(int rc)
{
    return s_in(rc, s_permanent_codes, sizeof s_permanent_codes / sizeof s_permanent_codes[0]);
}

static bool s_is_permanent_open(int rc)
{
    return s_in(rc, s_permanent_open_codes,
                sizeof s_permanent_open_codes / sizeof s_permanent_open_codes[0]);
}

/* A destination the agent cannot create stays so: a full file system, a path through a file, a
 * read-only or forbidden directory. */
static int s_create_error(int err)
{
    switch (err) {
    case ENOSPC:
    case EDQUOT:
        return VB_ENOSPC;
    case ENOTDIR:
    case EISDIR:
    case EROFS:
    case EACCES:
    case EPERM:
    case ENAMETOOLONG:
    case ENOENT:
        return VB_EINVAL;
    default:
        return VB_EIO;
    }
}

/* A restore into a new file: make it at full capacity, sparse, private (mode 0600 whatever the
 * umask: it holds a disk's data); every task may race to do so. The route's URI is decoded here
 * by the same parser that opens it, so both name the same file. */
static int s_create_destination(const Vbak__TaskAssign *a)
{
    vb_disk_uri_t uri;
    int rc = vb_disk_uri_parse(a->routes[0]->uri, &uri);
    if (rc)
        return rc;
    if (strcmp(uri.scheme, "file") != 0) {
        rc = vb_error_set(VB_EPROTO, "a restore to a new file names a %s:// route", uri.scheme);
        goto out;
    }
    int fd = open(uri.path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = vb_error_set(s_create_error(errno), "cannot create %s: %s", uri.path,
                          strerror(errno));
        goto out;
    }
    /* fchmod only when needed: it waits for the inode lock behind the other tasks' writes */
    struct stat st;
    if (fstat(fd, &st) != 0 || ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600) != 0) ||
        ((uint64_t)st.st_size < a->capacity && ftruncate(fd, (off_t)a->capacity) != 0))
        rc = vb_error_set(s_create_error(errno), "cannot size %s: %s", uri.path, strerror(errno));
    close(fd);
out:
    vb_disk_uri_free(&uri);
    return rc;
}

/* A disk that opens smaller than the capacity the inventory gives (a datastore file shorter than
 * its disk, e.g. a 0-byte flat file) reads short: the rest is zeros in the backup. Say so. */
static void s_check_capacity(const Vbak__TaskAssign *a, vb_disk_t *disk, s_outcome_t *o)
{
    vb_disk_info_t info;
    if (vb_disk_get_info(disk, &info) != 0 || info.capacity >= a->capacity)
        return;
    char msg[512];
    snprintf(msg, sizeof msg,
             "disk %s opened with %llu bytes, fewer than its capacity of %llu: the rest was "
             "not read and counts as zeros",
             a->disk_name, (unsigned long long)info.capacity, (unsigned long long)a->capacity);
    VB_LOG_WARN("task", "short-disk task=%llu %s", (unsigned long long)a->task_id, msg);
    free(o->warning);
    o->warning = strdup(msg);
    o->result.warning = o->warning;
}

static int s_open(const Vbak__TaskAssign *a, const vb_task_env_t *env, vb_disk_conn_t **conn,
                  vb_disk_t **disk, s_outcome_t *o)
{
    char modes[128];
    size_t n = 0;
    int w = snprintf(modes, sizeof modes, "%s", a->transport);
    n = w > 0 ? (size_t)w : 0;
    for (size_t i = 0; i < a->n_fallbacks && n < sizeof modes; i++) {
        w = snprintf(modes + n, sizeof modes - n, ":%s", a->fallbacks[i]);
        n += w > 0 ? (size_t)w : 0;
    }
    vb_disk_connect_params_t params = {modes, env->vddk_libdir, env->vddk_config,
                                       a->kind != VBAK__TASK_KIND__TASK_KIND_RESTORE};
    int rc = vb_disk_connect(&params, conn);
    if (rc)
        return rc;
    vb_disk_route_t *routes = calloc(a->n_routes ? a->n_routes : 1, sizeof *routes);
    for (size_t i = 0; i < a->n_routes; i++)
        routes[i] = (vb_disk_route_t){a->routes[i]->mode, a->routes[i]->uri};
    rc = vb_disk_open(*conn, routes, a->n_routes, a->snapshot, disk);
    free(routes);
    if (rc)
        return rc;
    size_t k = vb_disk_attempt_count(*disk);
    o->failed = calloc(k ? k : 1, sizeof *o->failed);
    for (size_t i = 0; i < k; i++)
        o->failed[i] = strdup(vb_disk_attempt(*disk, i));
    o->failed_count = k;
    o->result.failed_opens = o->failed;
    o->result.n_failed_opens = k;
    o->mode = strdup(vb_disk_mode(*disk));
    o->result.transport = o->mode;
    return 0;
}

/* The most extents a map result carries: about 16 bytes each on the wire, so at most 8 MiB, in
 * a frame of 16 MiB by default. A larger map (a disk of terabytes allocated in small pieces) is
 * widened to whole chunks, then to larger blocks: a superset, whose additions read as zeros. */
#define S_MAP_MAX_EXTENTS (512u * 1024u)

static int s_run_map(const Vbak__TaskAssign *a, vb_disk_t *disk, s_outcome_t *o)
{
    vb_extent_list_t list = {0};
    bool exact = true;
    int rc = vb_disk_query_allocated_blocks(disk, 0, 0, &list, &exact);
    if (rc)
        return rc;
    size_t found = list.count;
    uint64_t block = vb_extent_list_bound(&list, VB_PIPELINE_GAP_READ, a->chunk_size,
                                          S_MAP_MAX_EXTENTS);
    if (list.count != found)
        VB_LOG_INFO("task", "map-bounded disk=\"%s\" extents=%zu sent=%zu block=%llu",
                    a->disk_name, found, list.count, (unsigned long long)block);
    o->extent_store = calloc(list.count ? list.count : 1, sizeof *o->extent_store);
    o->extents = calloc(list.count ? list.count : 1, sizeof *o->extents);
    uint64_t total = 0;
    for (size_t i = 0; i < list.count; i++) {
        vbak__extent__init(&o->extent_store[i]);
        o->extent_store[i].offset = list.items[i].offset;
        o->extent_store[i].length = list.items[i].length;
        o->extents[i] = &o->extent_store[i];
        total += list.items[i].length;
    }
    o->result.allocated = o->extents;
    o->result.n_allocated = list.count;
    o->result.bytes = total;
    vb_extent_list_free(&list);
    return 0;
}

static vb_repo_t *s_repo_acquire(const Vbak__TaskAssign *a, const vb_task_env_t *env)
{
    vb_store_opts_t opts = {.credentials_file = env->repository_credentials_file,
                            .puts_in_flight = env->uploads_in_flight};
    if (env->repos)
        return vb_repocache_acquire(env->repos, a->repository, a->job_id,
                                    env->repository_key_file, &opts);
    return vb_repo_open_opts(a->repository, env->repository_key_file, &opts);
}

static void s_repo_release(const vb_task_env_t *env, vb_repo_t **repo, bool failed)
{
    if (env->repos)
        vb_repocache_release(env->repos, *repo, failed);
    else
        vb_repo_destroy(repo);
    *repo = NULL;
}

static int s_run_backup(const Vbak__TaskAssign *a, const vb_task_env_t *env, vb_disk_t *disk,
                        s_outcome_t *o)
{
    vb_repo_t *repo = s_repo_acquire(a, env);
    if (!repo)
        return vb_error_code() ? vb_error_code() : VB_EIO;
    vb_extent_t *ext = calloc(a->n_extents ? a->n_extents : 1, sizeof *ext);
    for (size_t i = 0; i < a->n_extents; i++)
        ext[i] = (vb_extent_t){a->extents[i]->offset, a->extents[i]->length};
    vb_pipeline_opts_t opts = {0};
    opts.workers = env->workers;
    opts.extents_allocated = a->extents_allocated;
    opts.allocated = s_allocated_in; /* changed areas: holes inside their chunks are not read */
    opts.allocated_ctx = disk;
    vb_chunk_result_t *results = NULL;
    size_t count = 0;
    vb_pipeline_stats_t stats = {0};
    int rc = vb_pipeline_backup_collect(repo, &opts, a->disk_name, a->capacity, ext, a->n_extents,
                                        s_read_at, disk, &results, &count, &stats);
    free(ext);
    s_repo_release(env, &repo, rc != 0);
    if (rc)
        return rc;
    o->chunk_store = calloc(count ? count : 1, sizeof *o->chunk_store);
    o->chunks = calloc(count ? count : 1, sizeof *o->chunks);
    o->digests = calloc(count ? count : 1, sizeof *o->digests);
    for (size_t i = 0; i < count; i++) {
        vbak__chunk_ref__init(&o->chunk_store[i]);
        o->chunk_store[i].offset = results[i].offset;
        if (!vb_digest_is_zero(&results[i].digest)) {
            memcpy(o->digests[i], results[i].digest.b, VB_DIGEST_LEN);
            o->chunk_store[i].digest.data = o->digests[i];
            o->chunk_store[i].digest.len = VB_DIGEST_LEN;
        }
        o->chunks[i] = &o->chunk_store[i];
    }
    free(results);
    o->result.chunks = o->chunks;
    o->result.n_chunks = count;
    o->result.bytes = stats.bytes_read;
    o->result.bytes_new = stats.bytes_new;
    o->result.chunks_new = stats.chunks_new;
    return 0;
}

/* A restore task is one contiguous, chunk-aligned extent with one digest per chunk. It runs as a
 * restore of a small index covering just that window, so holes outside it are never touched. */
static int s_run_restore(const Vbak__TaskAssign *a, const vb_task_env_t *env, vb_disk_t *disk,
                         s_outcome_t *o)
{
    uint64_t base = a->extents[0]->offset, len = a->extents[0]->length; /* vb_wire_check_assign */
    vb_index_t *index = vb_index_new(a->disk_key, len, a->chunk_size, NULL);
    if (!index)
        return VB_ENOMEM;
    for (size_t i = 0; i < a->n_digests; i++)
        if (a->digests[i].len == VB_DIGEST_LEN)
            memcpy(index->digests[i].b, a->digests[i].data, VB_DIGEST_LEN);
    vb_repo_t *repo = s_repo_acquire(a, env); /* shared by the job's tasks here */
    if (!repo) {
        vb_index_destroy(&index);
        return vb_error_code() ? vb_error_code() : VB_EIO;
    }
    vb_pipeline_opts_t opts = {0};
    opts.workers = env->workers;
    opts.write_zeros = a->write_zeros;
    opts.base = base;
    vb_pipeline_stats_t stats = {0};
    int rc = vb_pipeline_restore(repo, &opts, index, s_write_at, disk, &stats);
    if (rc)
        vb_error_prefix(rc, "%s", a->disk_name);
    s_repo_release(env, &repo, rc != 0);
    vb_index_destroy(&index);
    o->result.bytes = len;
    return rc;
}

static void s_run(const Vbak__TaskAssign *a, const vb_task_env_t *env, s_outcome_t *o)
{
    vb_disk_conn_t *conn = NULL;
    vb_disk_t *disk = NULL;
    int rc = 0;
    if ((rc = vb_wire_check_assign(a)) != 0) {
        s_set_error(o, VBAK__TASK_STATUS__TASK_STATUS_FAILED, NULL);
        o->result.permanent = true;
        return;
    }
    if (a->kind == VBAK__TASK_KIND__TASK_KIND_RESTORE && a->create_destination &&
        (rc = s_create_destination(a)) != 0) {
        s_set_error(o, VBAK__TASK_STATUS__TASK_STATUS_FAILED, NULL);
        o->result.permanent = s_is_permanent(rc);
        return;
    }
    if ((rc = s_open(a, env, &conn, &disk, o)) != 0) {
        s_set_error(o, VBAK__TASK_STATUS__TASK_STATUS_OPEN_FAILED, NULL);
        o->result.permanent = s_is_permanent_open(rc);
        vb_disk_disconnect(&conn);
        return;
    }
    s_check_capacity(a, disk, o);
    switch (a->kind) {
    case VBAK__TASK_KIND__TASK_KIND_MAP: rc = s_run_map(a, disk, o); break;
    case VBAK__TASK_KIND__TASK_KIND_BACKUP: rc = s_run_backup(a, env, disk, o); break;
    case VBAK__TASK_KIND__TASK_KIND_RESTORE: rc = s_run_restore(a, env, disk, o); break;
    default: rc = vb_error_set(VB_EPROTO, "unknown task kind %d", (int)a->kind); break;
    }
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", vb_error_msg());
    int close_rc = vb_disk_close(&disk);
    if (!rc && close_rc)
        rc = close_rc, snprintf(saved, sizeof saved, "%s", vb_error_msg());
    vb_disk_disconnect(&conn);
    if (rc) {
        s_set_error(o, VBAK__TASK_STATUS__TASK_STATUS_FAILED, saved);
        o->result.permanent = s_is_permanent(rc);
    } else {
        o->result.status = VBAK__TASK_STATUS__TASK_STATUS_OK;
    }
}

static void s_outcome_free(s_outcome_t *o)
{
    free(o->error);
    free(o->mode);
    free(o->warning);
    for (size_t i = 0; i < o->failed_count; i++)
        free(o->failed[i]);
    free(o->failed);
    free(o->chunk_store);
    free(o->chunks);
    free(o->digests);
    free(o->extent_store);
    free(o->extents);
}

static void s_actor(zsock_t *pipe, void *arg)
{
    s_args_t *args = arg;
    zsock_signal(pipe, 0);
    vb_envelope_t *env = NULL;
    s_outcome_t o = {0};
    vbak__task_result__init(&o.result);
    if (vb_wire_unpack(zframe_data(args->assign), zframe_size(args->assign), SIZE_MAX, &env) == 0 &&
        env->body_case == VBAK__ENVELOPE__BODY_TASK_ASSIGN) {
        const Vbak__TaskAssign *a = env->task_assign;
        o.result.task_id = a->task_id;
        o.result.attempt = a->attempt;
        o.result.transport = a->transport;
        s_run(a, &args->env, &o);
        VB_LOG_INFO("task", "done task=%llu kind=%d disk=\"%s\" transport=%s status=%d%s%s",
                    (unsigned long long)a->task_id, (int)a->kind, a->disk_name,
                    o.result.transport ? o.result.transport : "", (int)o.result.status,
                    o.error ? " error=" : "", o.error ? o.error : "");
    } else {
        s_set_error(&o, VBAK__TASK_STATUS__TASK_STATUS_FAILED, "unreadable task");
    }
    vb_envelope_t out = VBAK__ENVELOPE__INIT;
    out.body_case = VBAK__ENVELOPE__BODY_TASK_RESULT;
    out.task_result = &o.result;
    zframe_t *frame = NULL;
    if (vb_wire_pack(&out, &frame) == 0 && zframe_send(&frame, pipe, 0) != 0)
        zframe_destroy(&frame);
    s_outcome_free(&o);
    vb_wire_free(&env);
    zframe_destroy(&args->assign);
    free(args);
    /* wait for $TERM from zactor_destroy */
    char *cmd = zstr_recv(pipe);
    zstr_free(&cmd);
}

zactor_t *vb_task_start(zframe_t *assign_frame, const vb_task_env_t *env)
{
    s_args_t *args = calloc(1, sizeof *args);
    if (!args) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    args->assign = zframe_dup(assign_frame);
    args->env = *env;
    zactor_t *actor = zactor_new(s_actor, args);
    if (!actor) {
        zframe_destroy(&args->assign);
        free(args);
        vb_error_set(VB_EIO, "cannot start a task thread");
    }
    return actor;
}
