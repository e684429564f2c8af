/* admin_prune — `vbak prune`: the repository's state first, retention on the loop, the
 * repository's part on a worker.
 *
 * A prune job runs in two steps on worker threads (worker.h), with the loop's catalog work
 * between them. First the repository is opened and asked whether it may be written: a chunk
 * index hidden by delete markers (an S3 repository, undelete.h) or a repository that cannot be
 * opened fails the job with that message, and the catalog is as it was. Then, on the loop
 * (catalog work only): verify leases that expired end, retention picks the restore points to
 * remove (never one a running job uses), the catalog forgets them and the job records the rest.
 * Then, on a worker again with the handle the first step opened: their indexes and manifests
 * leave the repository, then garbage collection, which lists and reads every object and can take
 * minutes on a large or slow store. The loop keeps answering agents and the control socket
 * meanwhile; the outcome is applied to the catalog when the worker reports.
 *
 * Protection of running jobs is what it was with the collection on the loop: the cutoff is the
 * start of the oldest running job, taken before the collection starts, so a backup or restore
 * that starts while it runs is younger still: what it writes or freshens is newer than the
 * cutoff, and the restore points it reads were not removed (the catalog forgot the removed ones
 * first). */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_args.h"
#include "catalog_json.h"
#include "log.h"
#include "repo/gc.h"
#include "repo/index.h"
#include "repo/manifest.h"
#include "repo/retention.h"
#include "timefmt.h"
#include "worker.h"

/* A prune: what retention decides for every complete restore point, what running jobs use. */
typedef struct {
    vb_restore_point_t *rps;
    size_t n;
    unsigned *reasons;
    int64_t *doomed;
    size_t nd;
    json_t *list;
    size_t kept_in_use; /* restore points removed but for a running job that uses them */
} s_prune_t;

static void s_prune_clear(s_prune_t *p)
{
    vb_restore_points_free(&p->rps, p->n);
    free(p->reasons);
    free(p->doomed);
    json_decref(p->list);
}

/* One row of the prune list; a restore point a running job uses is kept, and says why. */
static json_t *s_prune_row(s_prune_t *p, size_t i, const vb_rp_use_t *uses, size_t nu)
{
    const vb_restore_point_t *rp = &p->rps[i];
    json_t *used_by = json_array();
    for (size_t k = 0; k < nu; k++) {
        char why[160];
        if (uses[k].rp_id != rp->id)
            continue;
        if (!p->reasons[i])
            p->kept_in_use++;
        p->reasons[i] |= VB_KEEP_IN_USE;
        json_array_append_new(used_by, json_string(vb_rp_use_text(&uses[k], why, sizeof why)));
    }
    char decision[96];
    return json_pack("{s:I, s:s, s:o, s:s, s:o}", "id", (json_int_t)rp->id, "vm", rp->vm,
                     "created", vb_json_time(rp->created), "decision",
                     vb_retention_reason_text(p->reasons[i], decision, sizeof decision),
                     "in_use", used_by);
}

static int s_prune_decide(vb_admin_t *self, const vb_retention_policy_t *policy, s_prune_t *p)
{
    vb_rp_use_t *uses = NULL;
    size_t nu = 0;
    int rc = vb_catalog_restore_points_list(self->catalog, NULL, &p->rps, &p->n);
    if (!rc)
        rc = vb_catalog_restore_points_in_use(self->catalog, &uses, &nu);
    if (rc)
        return rc;
    vb_rp_info_t *info = calloc(p->n ? p->n : 1, sizeof *info);
    char (*ids)[24] = calloc(p->n ? p->n : 1, sizeof *ids);
    p->reasons = calloc(p->n ? p->n : 1, sizeof *p->reasons);
    p->doomed = calloc(p->n ? p->n : 1, sizeof *p->doomed);
    p->list = json_array();
    if (!info || !ids || !p->reasons || !p->doomed) {
        rc = vb_error_set(VB_ENOMEM, "prune: out of memory");
        goto out;
    }
    for (size_t i = 0; i < p->n; i++) {
        snprintf(ids[i], sizeof ids[i], "%020lld", (long long)p->rps[i].id);
        info[i] = (vb_rp_info_t){ids[i], p->rps[i].vm, p->rps[i].created / 1000, true};
    }
    rc = vb_retention_select(policy, info, p->n, p->reasons);
    for (size_t i = 0; !rc && i < p->n; i++) {
        json_array_append_new(p->list, s_prune_row(p, i, uses, nu));
        if (!p->reasons[i])
            p->doomed[p->nd++] = p->rps[i].id;
    }
out:
    free(uses);
    free(info);
    free(ids);
    return rc;
}

static int s_push(char ***v, size_t *n, const char *text)
{
    char **grown = realloc(*v, (*n + 1) * sizeof *grown);
    if (!grown)
        return vb_error_set(VB_ENOMEM, "prune: out of memory");
    *v = grown;
    if (!(grown[*n] = strdup(text)))
        return vb_error_set(VB_ENOMEM, "prune: out of memory");
    (*n)++;
    return 0;
}

/* The index paths of the restore points a dry run would remove. */
static int s_doomed_indexes(vb_admin_t *self, const s_prune_t *p, char ***out, size_t *np)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < p->nd; i++) {
        vb_restore_point_t rp = {0};
        if ((rc = vb_catalog_restore_point_get(self->catalog, p->doomed[i], &rp)) != 0)
            break;
        for (size_t k = 0; !rc && k < rp.disk_count; k++)
            if (rp.disks[k].index_path)
                rc = s_push(out, np, rp.disks[k].index_path);
        vb_restore_point_clear(&rp);
    }
    return rc;
}

/* ---- the repository's part, on workers ---- */

/* The first step: the repository to open (NULL repository: nothing to collect). */
typedef struct {
    char *repository, *key_file;
    char *credentials_file; /* an s3:// repository's access key file */
} s_open_req_t;

/* What the first step found: the repository open and writable (NULL when there is none), or
 * why not. */
typedef struct {
    int rc;
    char *error;
    vb_repo_t *repo;
} s_open_res_t;

/* The second step: what the catalog forgot and what it still owns, on the first step's handle. */
typedef struct {
    vb_repo_t *repo; /* owned: closed on the worker; NULL: nothing to collect */
    char **remove;   /* index names of the restore points the catalog forgot */
    size_t nremove;
    int64_t *manifests; /* their ids: their manifests go too */
    size_t nmanifests;
    char **live; /* index names restore points own */
    size_t nlive;
    char **dropped; /* a dry run: the index names of what it would remove */
    size_t ndropped;
    time_t cutoff;
    unsigned repack_below;
    bool dry;
} s_gc_req_t;

typedef struct {
    int rc;
    char *error;
    vb_gc_stats_t gc;
    bool packed; /* format 2: gc.packs is meaningful */
    char **orphans;
    size_t norphans;
} s_gc_res_t;

static void s_open_req_free(void *req_p)
{
    s_open_req_t **r = req_p;
    if (!*r)
        return;
    free((*r)->repository);
    free((*r)->key_file);
    free((*r)->credentials_file);
    free(*r);
    *r = NULL;
}

static void s_open_res_free(s_open_res_t **res_p)
{
    if (!*res_p)
        return;
    free((*res_p)->error);
    vb_repo_destroy(&(*res_p)->repo);
    free(*res_p);
    *res_p = NULL;
}

static void s_gc_req_free(void *req_p)
{
    s_gc_req_t **r = req_p;
    if (!*r)
        return;
    vb_repo_destroy(&(*r)->repo);
    vb_catalog_strings_free(&(*r)->remove, (*r)->nremove);
    vb_catalog_strings_free(&(*r)->live, (*r)->nlive);
    vb_catalog_strings_free(&(*r)->dropped, (*r)->ndropped);
    free((*r)->manifests);
    free(*r);
    *r = NULL;
}

static void s_gc_res_free(s_gc_res_t **res_p)
{
    if (!*res_p)
        return;
    free((*res_p)->error);
    vb_index_list_free((*res_p)->orphans, (*res_p)->norphans);
    free(*res_p);
    *res_p = NULL;
}

/* Opens the repository and asks whether it may be written: a chunk index hidden by delete
 * markers refuses ("undelete first") before the catalog has forgotten anything. */
static void *s_open_work(void *arg)
{
    const s_open_req_t *req = arg;
    s_open_res_t *res = calloc(1, sizeof *res);
    if (!res || !req->repository)
        return res;
    res->repo = vb_repo_open_opts(req->repository, req->key_file,
                                  &(vb_store_opts_t){.credentials_file = req->credentials_file});
    int rc =
        !res->repo ? (vb_error_code() ? vb_error_code() : VB_EIO) : vb_repo_writable(res->repo);
    if (rc) {
        res->rc = rc;
        res->error = strdup(vb_error_msg());
        /* closed here, not on the loop: closing a store may be network work */
        vb_repo_destroy(&res->repo);
    }
    return res;
}

/* The indexes and manifests of the removed restore points (one that cannot go is logged: GC
 * reports an index left behind as an orphan). */
static void s_remove_objects(vb_repo_t *repo, const s_gc_req_t *req)
{
    for (size_t i = 0; i < req->nremove; i++)
        if (vb_index_remove(repo, req->remove[i]) != 0)
            VB_LOG_WARN("admin", "index_remove_failed index=%s error=\"%s\"", req->remove[i],
                        vb_error_msg());
    for (size_t i = 0; i < req->nmanifests; i++) {
        int mrc = vb_manifest_remove(vb_repo_store(repo), req->manifests[i]);
        if (mrc && mrc != VB_ENOTFOUND) /* a restore point from before manifests has none */
            VB_LOG_WARN("admin", "manifest_remove_failed rp=%lld error=\"%s\"",
                        (long long)req->manifests[i], vb_error_msg());
        vb_error_clear();
    }
}

/* Collects garbage older than the cutoff, marking only from indexes that restore points own;
 * index files nobody owns are reported as orphans. The handle is closed when the request is
 * freed, on this thread too. */
static void *s_gc_work(void *arg)
{
    const s_gc_req_t *req = arg;
    s_gc_res_t *res = calloc(1, sizeof *res);
    if (!res || !req->repo)
        return res;
    s_remove_objects(req->repo, req);
    vb_gc_owners_t owners = {.owned = (const char *const *)req->live,
                             .owned_count = req->nlive,
                             .dropped = (const char *const *)req->dropped,
                             .dropped_count = req->ndropped};
    int rc = vb_repo_gc_ex(req->repo, &owners, req->cutoff, req->repack_below, req->dry, &res->gc);
    res->orphans = owners.orphans;
    res->norphans = owners.orphan_count;
    res->packed = vb_repo_format(req->repo) == VB_REPO_FORMAT_PACKED;
    if (rc) {
        res->rc = rc;
        res->error = strdup(vb_error_msg());
    }
    return res;
}

/* ---- on the loop ---- */

/* A prune's steps on workers: the repository's state first, then (once the loop decided and the
 * catalog forgot) the removal and the collection. */
typedef enum { S_OPENING, S_COLLECTING, S_STEPS } s_step_t;
static const char *const s_phase[S_STEPS] = {"opening the repository", "collecting garbage"};

/* Takes the result of the step that ended (may be NULL); starts the next one or ends the run. */
typedef void (*s_then_fn)(vb_admin_t *self, vb_admin_prune_t *run, void *res);

struct vb_admin_prune {
    int64_t job;
    int64_t started_ms;
    bool dry;
    bool stopping; /* the coordinator stops: no step starts after the one in flight */
    vb_retention_policy_t policy;
    unsigned repack_below;
    s_step_t step;
    s_then_fn then;
    zactor_t *actor; /* the step in flight */
    json_t *head;    /* dry_run, removed, kept_in_use, restore_points: decided on the loop */
};

static void s_run_free(vb_admin_prune_t **run_p)
{
    if (!*run_p)
        return;
    zactor_destroy(&(*run_p)->actor);
    json_decref((*run_p)->head);
    free(*run_p);
    *run_p = NULL;
}

/* The collection's pack and index object counts. */
static json_t *s_packs_counts_json(const vb_packgc_stats_t *g)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "packs", (json_int_t)g->packs,
                     "deleted", (json_int_t)g->packs_deleted, "rewritten",
                     (json_int_t)g->packs_rewritten, "written", (json_int_t)g->packs_written,
                     "kept_recent", (json_int_t)g->packs_recent, "kept_busy",
                     (json_int_t)g->packs_busy, "bytes_freed", (json_int_t)g->bytes_freed,
                     "index_objects_before", (json_int_t)g->index_before,
                     "index_objects_written", (json_int_t)g->index_written);
}

/* Format 2: what the collection did to packs and index objects (and, under Object Lock, what it
 * had to keep and the locks of live packs it extended). */
static json_t *s_packs_json(const vb_packgc_stats_t *g)
{
    json_t *o = s_packs_counts_json(g);
    if (o && g->packs_locked)
        json_object_update_missing_new(o, json_pack("{s:I, s:I, s:I}", "kept_locked",
                                                    (json_int_t)g->packs_locked, "bytes_locked",
                                                    (json_int_t)g->bytes_locked, "locked_until",
                                                    (json_int_t)g->locked_until));
    if (o && (g->locks_extended || g->locks_due))
        json_object_update_missing_new(o, json_pack("{s:I, s:I}", "locks_extended",
                                                    (json_int_t)g->locks_extended, "locks_due",
                                                    (json_int_t)g->locks_due));
    return o;
}

/* The prune's answer: what the loop decided and what the collection did (caller owns). */
static json_t *s_result_json(const vb_admin_prune_t *run, const s_gc_res_t *res)
{
    json_t *orphans = json_array();
    for (size_t i = 0; i < res->norphans; i++)
        json_array_append_new(orphans, json_string(res->orphans[i]));
    json_t *gc = json_pack("{s:I, s:I, s:I, s:o}", "swept", (json_int_t)res->gc.swept,
                           "swept_bytes", (json_int_t)res->gc.swept_bytes, "kept_recent",
                           (json_int_t)res->gc.kept_recent, "orphan_indexes", orphans);
    if (gc && res->packed)
        json_object_set_new(gc, "packs", s_packs_json(&res->gc.packs));
    json_t *out = json_deep_copy(run->head);
    if (out)
        json_object_set_new(out, "gc", gc);
    else
        json_decref(gc);
    return out;
}

/* The prune job ends (error NULL: it succeeded): its result (taken; NULL when it failed) in the
 * job's options, its state; the run is over and freed. */
static void s_finish(vb_admin_t *self, vb_admin_prune_t *run, const char *error, json_t *result)
{
    self->prune = NULL;
    json_t *options = json_pack("{s:b, s:o*}", "dry_run", run->dry, "result", result);
    char *text = options ? json_dumps(options, JSON_COMPACT) : NULL;
    int64_t now = vb_time_now_ms();
    if (!text || vb_catalog_job_set_options(self->catalog, run->job, text) != 0)
        VB_LOG_ERROR("admin", "prune_not_recorded job=%lld error=\"%s\"", (long long)run->job,
                     text ? vb_error_msg() : "out of memory");
    if (vb_catalog_job_finish(self->catalog, run->job, error ? VB_JOB_FAILED : VB_JOB_SUCCEEDED,
                              error, now) != 0)
        VB_LOG_ERROR("admin", "finish_failed job=%lld error=\"%s\"", (long long)run->job,
                     vb_error_msg());
    VB_LOG_INFO("jobs", "job_finished job=%lld kind=prune state=%s ms=%lld%s%s",
                (long long)run->job, error ? "failed" : "succeeded",
                (long long)(now - run->started_ms), error ? " error=" : "", error ? error : "");
    free(text);
    json_decref(options);
    s_run_free(&run);
}

/* The prune fails with the message set now (copied: recording it sets others). */
static void s_fail(vb_admin_t *self, vb_admin_prune_t *run)
{
    char why[512];
    snprintf(why, sizeof why, "%s", vb_error_msg());
    s_finish(self, run, why, NULL);
}

static int s_on_step_done(zloop_t *loop, zsock_t *reader, void *arg)
{
    vb_admin_t *self = arg;
    vb_admin_prune_t *run = self->prune;
    zloop_reader_end(loop, reader);
    void *res = vb_worker_receive(run->actor);
    zactor_destroy(&run->actor);
    run->then(self, run, res);
    return 0;
}

/* Runs a step: work(req) on a worker thread that reports to the loop, then `then` with its
 * result on the loop; without a loop (in-process tests), or for the collection when no thread
 * can start, both run here. Takes req; on failure (message set) the caller still owns run. */
static int s_step(vb_admin_t *self, vb_admin_prune_t *run, s_step_t step, vb_worker_fn work,
                  void *req, vb_worker_free_fn free_req, s_then_fn then)
{
    run->step = step;
    run->then = then;
    self->prune = run;
    run->actor = self->loop ? vb_worker_try_start(work, req, free_req) : NULL;
    /* the collection runs whatever happens: the catalog has forgotten what it removes */
    if (!run->actor && (!self->loop || step == S_COLLECTING)) {
        if (self->loop)
            VB_LOG_WARN("admin", "prune_inline job=%lld reason=\"%s\"", (long long)run->job,
                        vb_error_msg());
        void *res = work(req);
        free_req(&req);
        then(self, run, res);
        return 0;
    }
    if (!run->actor || zloop_reader(self->loop, (zsock_t *)run->actor, s_on_step_done, self) != 0) {
        if (!run->actor)
            free_req(&req);
        self->prune = NULL;
        int rc = vb_error_code() ? vb_error_code() : VB_EIO;
        char why[512];
        snprintf(why, sizeof why, "%s", run->actor ? "cannot watch the worker" : vb_error_msg());
        return vb_error_set(rc, "prune: %s", why);
    }
    return 0;
}

/* Drops from live (sorted or not) every name in gone; keeps the order of the rest. */
static void s_strings_without(char **live, size_t *nlive, char *const *gone, size_t ngone)
{
    size_t kept = 0;
    for (size_t i = 0; i < *nlive; i++) {
        bool drop = false;
        for (size_t k = 0; !drop && k < ngone; k++)
            drop = strcmp(live[i], gone[k]) == 0;
        if (drop)
            free(live[i]);
        else
            live[kept++] = live[i];
    }
    *nlive = kept;
}

/* The collection's request: what the catalog says, read on the loop. A dry run removes nothing
 * from the catalog and only names the indexes it would remove.
 *
 * Every read that can fail comes before the catalog forgets: once it has, nothing may stop the
 * second step from removing the forgotten restore points' indexes and manifests (left behind, a
 * later collection would take those indexes for orphans and sweep their chunks, and a catalog
 * rebuild would bring the restore points back without them; the step runs on the loop if no
 * worker thread can start). So the live indexes are read before the delete and the removed ones
 * taken out of them (an index belongs to one restore point). */
static int s_gc_request(vb_admin_t *self, const s_prune_t *p, s_gc_req_t *req)
{
    int64_t oldest = 0;
    int rc = vb_catalog_oldest_running_job(self->catalog, &oldest);
    if (!rc)
        rc = vb_catalog_index_paths_live(self->catalog, &req->live, &req->nlive);
    if (!rc && req->dry)
        rc = s_doomed_indexes(self, p, &req->dropped, &req->ndropped);
    if (!rc && !req->dry && p->nd && !(req->manifests = malloc(p->nd * sizeof *req->manifests)))
        rc = vb_error_set(VB_ENOMEM, "prune: out of memory");
    if (!rc && !req->dry && p->nd) {
        rc = vb_catalog_restore_points_delete(self->catalog, p->doomed, p->nd, false, &req->remove,
                                              &req->nremove);
        for (size_t i = 0; !rc && i < p->nd; i++)
            req->manifests[req->nmanifests++] = p->doomed[i];
        if (!rc)
            s_strings_without(req->live, &req->nlive, req->remove, req->nremove);
    }
    req->cutoff = oldest ? (time_t)(oldest / 1000) : time(NULL);
    return rc;
}

/* Retention decides (verify and serve leases that expired end first), the catalog forgets what
 * it removes, and *req is what the collection needs. */
static int s_decide(vb_admin_t *self, vb_admin_prune_t *run, s_gc_req_t **req)
{
    s_prune_t p = {0};
    int rc = vb_admin_expire_leases(self);
    if (!rc)
        rc = s_prune_decide(self, &run->policy, &p);
    if (!rc && !(*req = calloc(1, sizeof **req)))
        rc = vb_error_set(VB_ENOMEM, "prune: out of memory");
    /* the answer's head before the catalog forgets: nothing after the delete may fail */
    if (!rc && !(run->head = json_pack("{s:b, s:I, s:I, s:O}", "dry_run", run->dry, "removed",
                                       (json_int_t)p.nd, "kept_in_use",
                                       (json_int_t)p.kept_in_use, "restore_points", p.list)))
        rc = vb_error_set(VB_ENOMEM, "prune: out of memory");
    if (!rc) {
        (*req)->dry = run->dry;
        (*req)->repack_below = run->repack_below;
        rc = s_gc_request(self, &p, *req);
    }
    if (!rc)
        VB_LOG_INFO("admin", "prune_decided job=%lld dry_run=%d removed=%zu", (long long)run->job,
                    run->dry, p.nd);
    s_prune_clear(&p);
    return rc;
}

static void s_collected(vb_admin_t *self, vb_admin_prune_t *run, void *res_v)
{
    s_gc_res_t *res = res_v;
    const char *error = !res      ? "the garbage collection thread stopped without an answer"
                        : res->rc ? (res->error ? res->error : "out of memory")
                                  : NULL;
    s_finish(self, run, error, res && !res->rc ? s_result_json(run, res) : NULL);
    s_gc_res_free(&res);
}

/* The first step's answer. Refused (the repository cannot be opened, or its chunk index is
 * hidden): the prune fails and the catalog is as it was. Else retention decides on the loop, the
 * catalog forgets, and the collection runs on the handle the first step opened. */
static void s_opened(vb_admin_t *self, vb_admin_prune_t *run, void *res_v)
{
    s_open_res_t *res = res_v;
    s_gc_req_t *req = NULL;
    if (!res || res->rc || run->stopping) {
        s_finish(self, run,
                 !res      ? "the thread that opens the repository stopped without an answer"
                 : res->rc ? (res->error ? res->error : "out of memory")
                           : "the coordinator stopped before the prune decided; run it again",
                 NULL);
        s_open_res_free(&res); /* a handle left open only when the coordinator stops */
        return;
    }
    if (s_decide(self, run, &req) != 0) {
        s_fail(self, run);
        s_gc_req_free(&req);
        s_open_res_free(&res); /* a catalog failure: the handle is closed here, rarely */
        return;
    }
    req->repo = res->repo;
    res->repo = NULL;
    s_open_res_free(&res);
    if (s_step(self, run, S_COLLECTING, s_gc_work, req, s_gc_req_free, s_collected) != 0)
        s_fail(self, run);
}

void vb_admin_shutdown(vb_admin_t *self)
{
    vb_admin_prune_t *run = self->prune;
    if (!run)
        return;
    VB_LOG_INFO("admin", "waiting for prune job=%lld to finish %s", (long long)run->job,
                s_phase[run->step]);
    if (self->loop)
        zloop_reader_end(self->loop, (zsock_t *)run->actor);
    run->stopping = true;
    void *res = vb_worker_receive(run->actor);
    zactor_destroy(&run->actor);
    run->then(self, run, res);
}

/* The first step's request: the repository's location (none: nothing to collect). */
static s_open_req_t *s_open_request(const vb_admin_t *self)
{
    s_open_req_t *req = calloc(1, sizeof *req);
    bool ok = req && (!self->repository || (req->repository = strdup(self->repository))) &&
              (!self->repository_key_file || (req->key_file = strdup(self->repository_key_file))) &&
              (!self->repository_credentials_file ||
               (req->credentials_file = strdup(self->repository_credentials_file)));
    if (!ok) {
        s_open_req_free(&req);
        vb_error_set(VB_ENOMEM, "prune: out of memory");
    }
    return req;
}

/* A prune job: on a worker, the repository is opened and must be writable; only then, on the
 * loop, retention selects, keeps what running jobs use and deletes the rest outside the policy
 * (never a VM's newest) with their indexes; then, on a worker again, garbage older than the
 * oldest running job is collected. A dry run changes nothing and says what would go. */
int vb_admin_prune(vb_admin_t *self, json_t *args, json_t **result)
{
    if (self->prune)
        return vb_error_set(VB_EBUSY,
                            "prune: job %lld is still %s; wait for it to end (vbak job show %lld)",
                            (long long)self->prune->job, s_phase[self->prune->step],
                            (long long)self->prune->job);
    vb_admin_prune_t *run = calloc(1, sizeof *run);
    if (!run)
        return vb_error_set(VB_ENOMEM, "prune: out of memory");
    /* the schema bounds them: keep_* 0..100000, repack_below 0..100 */
    run->policy = (vb_retention_policy_t){(unsigned)vb_args_int(args, "keep_last", 0),
                                          (unsigned)vb_args_int(args, "keep_daily", 0),
                                          (unsigned)vb_args_int(args, "keep_weekly", 0),
                                          (unsigned)vb_args_int(args, "keep_monthly", 0)};
    run->dry = vb_args_bool(args, "dry_run");
    run->repack_below = (unsigned)vb_args_int(args, "repack_below", VB_PACKGC_REPACK_DEFAULT);
    run->started_ms = vb_time_now_ms();
    vb_job_t job = {.kind = VB_JOB_PRUNE,
                    .options = run->dry ? "{\"dry_run\": true}" : "{\"dry_run\": false}",
                    .started = run->started_ms};
    int rc = vb_catalog_job_create(self->catalog, &job, &run->job);
    if (rc) {
        s_run_free(&run);
        return rc;
    }
    *result = json_pack("{s:I, s:b}", "job", (json_int_t)run->job, "dry_run", run->dry);
    VB_LOG_INFO("admin", "prune_started job=%lld dry_run=%d", (long long)run->job, run->dry);
    int64_t job_id = run->job;
    s_open_req_t *req = s_open_request(self);
    rc = req ? s_step(self, run, S_OPENING, s_open_work, req, s_open_req_free, s_opened)
             : vb_error_code();
    if (rc) { /* the job is recorded failed; the caller hears why */
        if (vb_catalog_job_finish(self->catalog, job_id, VB_JOB_FAILED, vb_error_msg(),
                                  vb_time_now_ms()) != 0)
            VB_LOG_ERROR("admin", "finish_failed job=%lld", (long long)job_id);
        json_decref(*result);
        *result = NULL;
        s_run_free(&run);
    }
    return rc;
}

/* ---- what users see while it runs ---- */

const char *vb_admin_worker_phase(const vb_admin_t *self, int64_t id)
{
    return self->prune && self->prune->job == id ? s_phase[self->prune->step] : NULL;
}

void vb_admin_prune_show(vb_admin_t *self, int64_t id, vb_job_state_t state,
                         const char *options_json, json_t *out, json_t *progress)
{
    if (state == VB_JOB_RUNNING && vb_admin_worker_phase(self, id)) {
        s_step_t now = self->prune->step;
        json_t *phases = json_array();
        for (s_step_t s = S_OPENING; s < S_STEPS; s++)
            json_array_append_new(phases, json_pack("{s:s, s:s}", "name", s_phase[s], "state",
                                                    s < now    ? "done"
                                                    : s == now ? "running"
                                                               : "pending"));
        json_object_set_new(progress, "phase", json_string(s_phase[now]));
        json_object_set_new(progress, "phases", phases);
        return;
    }
    json_t *o = options_json ? json_loads(options_json, 0, NULL) : NULL;
    json_t *res = json_object_get(o, "result");
    if (json_is_object(res))
        json_object_set(out, "result", res);
    json_decref(o);
}

json_t *vb_admin_background_json(const vb_admin_t *self)
{
    json_t *arr = json_array();
    const vb_admin_prune_t *run = self->prune;
    if (run)
        json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:I}", "job", (json_int_t)run->job,
                                             "kind", "prune", "phase", s_phase[run->step],
                                             "running_ms",
                                             (json_int_t)(vb_time_now_ms() - run->started_ms)));
    return arr;
}
