/* admin_prune — `vbak prune`: retention decided on the loop, the repository's part on a worker.
 *
 * On the coordinator's loop (catalog work only): verify leases that expired end, retention picks
 * the restore points to remove (never one a running job uses), the catalog forgets them and a
 * prune job records the rest. On a worker thread (worker.h): their indexes and manifests leave
 * the repository, then garbage collection, which lists and reads every object and can take
 * minutes on a large or slow store. The loop keeps answering agents and the control socket
 * meanwhile; the outcome is applied to the catalog when the worker reports.
 *
 * Protection of running jobs is what it was with the collection on the loop: the cutoff is the
 * start of the oldest running job, taken before the worker starts, so a backup or restore that
 * starts while it runs is younger still: what it writes or freshens is newer than the cutoff, and
 * the restore points it reads were not removed (the catalog forgot the removed ones first). */
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

#define S_PHASE "collecting garbage"

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

/* ---- the repository's part, on the worker ---- */

typedef struct {
    char *repository, *key_file; /* NULL repository: nothing to collect */
    char *credentials_file;      /* an s3:// repository's access key file */
    char **remove;               /* index names of the restore points the catalog forgot */
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

static void s_gc_req_free(void *req_p)
{
    s_gc_req_t **r = req_p;
    if (!*r)
        return;
    free((*r)->repository);
    free((*r)->key_file);
    free((*r)->credentials_file);
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
 * index files nobody owns are reported as orphans. */
static void *s_gc_work(void *arg)
{
    const s_gc_req_t *req = arg;
    s_gc_res_t *res = calloc(1, sizeof *res);
    if (!res || !req->repository)
        return res;
    vb_repo_t *repo = vb_repo_open_opts(req->repository, req->key_file,
                                        &(vb_store_opts_t){.credentials_file = req->credentials_file});
    int rc = repo ? 0 : (vb_error_code() ? vb_error_code() : VB_EIO);
    if (!rc) /* a chunk index hidden by delete markers: nothing removed, "undelete first" */
        rc = vb_repo_writable(repo);
    if (!rc) {
        s_remove_objects(repo, req);
        vb_gc_owners_t owners = {.owned = (const char *const *)req->live,
                                 .owned_count = req->nlive,
                                 .dropped = (const char *const *)req->dropped,
                                 .dropped_count = req->ndropped};
        rc = vb_repo_gc_ex(repo, &owners, req->cutoff, req->repack_below, req->dry, &res->gc);
        res->orphans = owners.orphans;
        res->norphans = owners.orphan_count;
        res->packed = vb_repo_format(repo) == VB_REPO_FORMAT_PACKED;
    }
    if (rc) {
        res->rc = rc;
        res->error = strdup(vb_error_msg());
    }
    vb_repo_destroy(&repo);
    return res;
}

/* ---- on the loop ---- */

struct vb_admin_prune {
    int64_t job;
    int64_t started_ms;
    bool dry;
    zactor_t *actor;
    json_t *head; /* dry_run, removed, kept_in_use, restore_points: decided on the loop */
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

/* The worker's outcome goes to the prune job: its result in the job's options, its state. */
static void s_record(vb_admin_t *self, vb_admin_prune_t *run, s_gc_res_t *res)
{
    const char *error = !res ? "the garbage collection thread stopped without an answer"
                        : res->rc ? res->error
                                  : NULL;
    json_t *result = res && !res->rc ? s_result_json(run, res) : NULL;
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
}

static int s_on_gc_done(zloop_t *loop, zsock_t *reader, void *arg)
{
    vb_admin_t *self = arg;
    vb_admin_prune_t *run = self->prune;
    zloop_reader_end(loop, reader);
    s_gc_res_t *res = vb_worker_receive(run->actor);
    self->prune = NULL;
    s_record(self, run, res);
    s_gc_res_free(&res);
    s_run_free(&run);
    return 0;
}

void vb_admin_shutdown(vb_admin_t *self)
{
    vb_admin_prune_t *run = self->prune;
    if (!run)
        return;
    VB_LOG_INFO("admin", "waiting for prune job=%lld to finish its garbage collection",
                (long long)run->job);
    if (self->loop)
        zloop_reader_end(self->loop, (zsock_t *)run->actor);
    s_gc_res_t *res = vb_worker_receive(run->actor);
    self->prune = NULL;
    s_record(self, run, res);
    s_gc_res_free(&res);
    s_run_free(&run);
}

/* The worker's request: what the catalog says, read on the loop. A dry run removes nothing from
 * the catalog and only names the indexes it would remove. */
static int s_gc_request(vb_admin_t *self, const s_prune_t *p, s_gc_req_t *req)
{
    int64_t oldest = 0;
    int rc = 0;
    if (req->dry) {
        rc = s_doomed_indexes(self, p, &req->dropped, &req->ndropped);
    } else if (p->nd) {
        rc = vb_catalog_restore_points_delete(self->catalog, p->doomed, p->nd, false, &req->remove,
                                              &req->nremove);
        if (!rc && !(req->manifests = malloc(p->nd * sizeof *req->manifests)))
            rc = vb_error_set(VB_ENOMEM, "prune: out of memory");
        for (size_t i = 0; !rc && i < p->nd; i++)
            req->manifests[req->nmanifests++] = p->doomed[i];
    }
    if (!rc)
        rc = vb_catalog_oldest_running_job(self->catalog, &oldest);
    if (!rc)
        rc = vb_catalog_index_paths_live(self->catalog, &req->live, &req->nlive);
    req->cutoff = oldest ? (time_t)(oldest / 1000) : time(NULL);
    if (!rc && self->repository && !(req->repository = strdup(self->repository)))
        rc = vb_error_set(VB_ENOMEM, "prune: out of memory");
    if (!rc && self->repository_key_file && !(req->key_file = strdup(self->repository_key_file)))
        rc = vb_error_set(VB_ENOMEM, "prune: out of memory");
    if (!rc && self->repository_credentials_file &&
        !(req->credentials_file = strdup(self->repository_credentials_file)))
        rc = vb_error_set(VB_ENOMEM, "prune: out of memory");
    return rc;
}

/* Hands the request to a worker thread that reports to the loop; without a loop (in-process
 * tests) the work runs here. */
static int s_start(vb_admin_t *self, vb_admin_prune_t *run, s_gc_req_t *req)
{
    self->prune = run;
    if (!self->loop) {
        s_gc_res_t *res = s_gc_work(req);
        s_gc_req_free(&req);
        self->prune = NULL;
        s_record(self, run, res);
        s_gc_res_free(&res);
        s_run_free(&run);
        return 0;
    }
    run->actor = vb_worker_start(s_gc_work, req, s_gc_req_free);
    if (!run->actor || zloop_reader(self->loop, (zsock_t *)run->actor, s_on_gc_done, self) != 0) {
        self->prune = NULL;
        int rc = vb_error_code() ? vb_error_code() : VB_EIO;
        char why[512];
        snprintf(why, sizeof why, "%s", run->actor ? "cannot watch the worker" : vb_error_msg());
        return vb_error_set(rc, "prune: %s", why);
    }
    return 0;
}

/* Retention: select, keep what running jobs use, delete the rest outside the policy (never a
 * VM's newest) with their indexes, then collect garbage older than the oldest running job, on a
 * worker. A dry run changes nothing and says what would go. */
int vb_admin_prune(vb_admin_t *self, json_t *args, json_t **result)
{
    if (self->prune)
        return vb_error_set(VB_EBUSY, "prune: job %lld is still collecting garbage; wait for it "
                                      "to end (vbak job show %lld)",
                            (long long)self->prune->job, (long long)self->prune->job);
    /* the schema bounds them: keep_* 0..100000, repack_below 0..100 */
    vb_retention_policy_t policy = {(unsigned)vb_args_int(args, "keep_last", 0),
                                    (unsigned)vb_args_int(args, "keep_daily", 0),
                                    (unsigned)vb_args_int(args, "keep_weekly", 0),
                                    (unsigned)vb_args_int(args, "keep_monthly", 0)};
    bool dry = vb_args_bool(args, "dry_run");
    unsigned repack_below =
        (unsigned)vb_args_int(args, "repack_below", VB_PACKGC_REPACK_DEFAULT);
    s_prune_t p = {0};
    vb_admin_prune_t *run = NULL;
    s_gc_req_t *req = NULL;
    int rc = vb_admin_expire_leases(self);
    if (!rc)
        rc = s_prune_decide(self, &policy, &p);
    if (!rc && (!(run = calloc(1, sizeof *run)) || !(req = calloc(1, sizeof *req))))
        rc = vb_error_set(VB_ENOMEM, "prune: out of memory");
    if (rc)
        goto out;
    run->dry = req->dry = dry;
    req->repack_below = repack_below;
    run->started_ms = vb_time_now_ms();
    vb_job_t job = {.kind = VB_JOB_PRUNE,
                    .options = dry ? "{\"dry_run\": true}" : "{\"dry_run\": false}",
                    .started = run->started_ms};
    if ((rc = vb_catalog_job_create(self->catalog, &job, &run->job)) != 0)
        goto out;
    if ((rc = s_gc_request(self, &p, req)) == 0) {
        run->head = json_pack("{s:b, s:I, s:I, s:O}", "dry_run", dry, "removed", (json_int_t)p.nd,
                              "kept_in_use", (json_int_t)p.kept_in_use, "restore_points", p.list);
        *result = json_pack("{s:I, s:b}", "job", (json_int_t)run->job, "dry_run", dry);
        VB_LOG_INFO("admin", "prune_started job=%lld dry_run=%d removed=%zu", (long long)run->job,
                    dry, p.nd);
        int64_t job_id = run->job;
        rc = s_start(self, run, req); /* takes req; run too unless it failed */
        req = NULL;
        if (!rc)
            run = NULL;
        else if (vb_catalog_job_finish(self->catalog, job_id, VB_JOB_FAILED, vb_error_msg(),
                                       vb_time_now_ms()) != 0)
            VB_LOG_ERROR("admin", "finish_failed job=%lld", (long long)job_id);
    } else if (vb_catalog_job_finish(self->catalog, run->job, VB_JOB_FAILED, vb_error_msg(),
                                     vb_time_now_ms()) != 0) {
        VB_LOG_ERROR("admin", "finish_failed job=%lld", (long long)run->job);
    }
out:
    if (rc && result) {
        json_decref(*result);
        *result = NULL;
    }
    s_gc_req_free(&req);
    s_run_free(&run);
    s_prune_clear(&p);
    return rc;
}

/* ---- what users see while it runs ---- */

const char *vb_admin_worker_phase(const vb_admin_t *self, int64_t id)
{
    return self->prune && self->prune->job == id ? S_PHASE : NULL;
}

void vb_admin_prune_show(vb_admin_t *self, int64_t id, vb_job_state_t state,
                         const char *options_json, json_t *out, json_t *progress)
{
    if (state == VB_JOB_RUNNING && vb_admin_worker_phase(self, id)) {
        json_object_set_new(progress, "phase", json_string(S_PHASE));
        json_object_set_new(progress, "phases", json_pack("[{s:s, s:s}]", "name", S_PHASE,
                                                          "state", "running"));
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
                                             "kind", "prune", "phase", S_PHASE, "running_ms",
                                             (json_int_t)(vb_time_now_ms() - run->started_ms)));
    return arr;
}
