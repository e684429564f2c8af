/* jobs_release — undoing what a backup did to a VM (EndAccess, removing its snapshot) on a
 * thread, and trying again in the background until it is done: a vCenter that is unreachable for
 * a moment must not leave a snapshot on the VM until the coordinator restarts. The catalog keeps
 * what is outstanding (and the last error, for job show), so a restart picks it up as well. */
#include <stdlib.h>
#include <string.h>

#include "catalog_json.h"
#include "jobs_internal.h"
#include "log.h"

typedef struct {
    vb_jobs_t *engine;
    int64_t job_id;
    char *vm;
    char *snapshot;      /* id (or name) still to remove; NULL once removed */
    bool access;         /* PrepareForAccess still to end */
    zactor_t *actor;     /* the attempt running, if any */
    int timer;           /* the next attempt's timer, if any (-1: none) */
    jb_vmrun_t *waiting; /* the ended VM whose job waits for this first attempt, or NULL */
    uint32_t attempts;
    int64_t started_ms; /* the first attempt's start (the job's remove phase) */
    int64_t next_ms;
    char *error;
} jb_release_t;

static void s_release_free(void **item)
{
    jb_release_t *r = *item;
    if (!r)
        return;
    if (r->actor) {
        zloop_reader_end(r->engine->cfg.loop, (zsock_t *)r->actor);
        zactor_destroy(&r->actor);
    }
    if (r->timer >= 0)
        zloop_timer_end(r->engine->cfg.loop, r->timer);
    free(r->vm);
    free(r->snapshot);
    free(r->error);
    free(r);
    *item = NULL;
}

void jb_releases_destroy(vb_jobs_t *self)
{
    zlistx_destroy(&self->releases);
}

/* Records what the attempt achieved; true when nothing is left to do. */
static bool s_take_result(vb_jobs_t *self, jb_release_t *r, vb_release_result_t *res)
{
    vb_catalog_t *cat = self->cfg.catalog;
    if (r->access && res->access_ended) {
        r->access = false;
        if (vb_catalog_job_vm_set_access(cat, r->job_id, r->vm, false) != 0)
            VB_LOG_ERROR("jobs", "catalog error=\"%s\"", vb_error_msg());
    }
    if (r->snapshot && res->snapshot_removed) {
        VB_LOG_INFO("jobs", "snapshot_removed job=%lld vm=%s snapshot=%s attempt=%u",
                    (long long)r->job_id, r->vm, r->snapshot, r->attempts);
        free(r->snapshot);
        r->snapshot = NULL;
        if (vb_catalog_snapshot_removed(cat, r->job_id, r->vm) != 0)
            VB_LOG_ERROR("jobs", "catalog error=\"%s\"", vb_error_msg());
    }
    if (!r->access && !r->snapshot)
        return true;
    free(r->error);
    r->error = strdup(res->error ? res->error : "failed");
    if (r->snapshot && vb_catalog_snapshot_remove_failed(cat, r->job_id, r->vm, r->error) != 0)
        VB_LOG_ERROR("jobs", "catalog error=\"%s\"", vb_error_msg());
    return false;
}

static void s_attempt(vb_jobs_t *self, jb_release_t *r);

static int s_on_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    jb_release_t *r = arg;
    r->timer = -1;
    s_attempt(r->engine, r);
    return 0;
}

/* The attempt is over: done (forgotten) or tried again after a back-off. */
static void s_after(vb_jobs_t *self, jb_release_t *r, vb_release_result_t *res)
{
    r->attempts++;
    bool done = s_take_result(self, r, res);
    if (r->waiting) { /* the job can end now, whatever the first attempt did */
        vb_phase_add(&r->waiting->times, VB_PHASE_REMOVE, r->started_ms, jb_now());
        jb_vm_released(self, r->waiting);
        r->waiting = NULL;
        jb_reap(self);
    }
    if (done) {
        void *handle = zlistx_find(self->releases, r);
        if (handle)
            zlistx_delete(self->releases, handle);
        return;
    }
    int64_t delay = jb_backoff(self, self->cfg.snapshot_retry_ms, r->attempts);
    r->next_ms = jb_now() + delay;
    VB_LOG_WARN("jobs", "release_failed job=%lld vm=%s attempt=%u retry_ms=%lld error=\"%s\"",
                (long long)r->job_id, r->vm, r->attempts, (long long)delay, r->error);
    r->timer = zloop_timer(self->cfg.loop, (size_t)(delay > 0 ? delay : 1), 1, s_on_timer, r);
}

static int s_on_result(zloop_t *loop, zsock_t *reader, void *arg)
{
    jb_release_t *r = arg;
    vb_jobs_t *self = r->engine;
    vb_release_result_t *res = vb_release_receive(r->actor);
    zloop_reader_end(loop, reader);
    zactor_destroy(&r->actor);
    if (!res) {
        res = calloc(1, sizeof *res);
        res->error = strdup("the release thread died");
    }
    s_after(self, r, res);
    vb_release_result_free(&res);
    return 0;
}

static void s_attempt(vb_jobs_t *self, jb_release_t *r)
{
    vb_release_request_t *req = calloc(1, sizeof *req);
    req->vm = strdup(r->vm);
    req->snapshot = r->snapshot ? strdup(r->snapshot) : NULL;
    req->end_access = r->access;
    if (!r->started_ms)
        r->started_ms = jb_now();
    r->actor = vb_release_start(req, self->cfg.provider_factory, self->cfg.factory_ctx);
    if (r->actor) {
        zloop_reader(self->cfg.loop, (zsock_t *)r->actor, s_on_result, r);
        return;
    }
    char *why = strdup(vb_error_msg());
    vb_release_result_t res = {false, false, why};
    s_after(self, r, &res);
    free(why);
}

static jb_release_t *s_release_new(vb_jobs_t *self, int64_t job_id, const char *vm,
                                   const char *snapshot, bool access)
{
    jb_release_t *r = calloc(1, sizeof *r);
    *r = (jb_release_t){.engine = self,
                        .job_id = job_id,
                        .vm = strdup(vm),
                        .snapshot = snapshot ? strdup(snapshot) : NULL,
                        .access = access,
                        .timer = -1,
                        .next_ms = jb_now()};
    return r;
}

/* Without an event loop (tests that drive the engine by hand): once, here, with the provider. */
static void s_release_now(vb_jobs_t *self, int64_t job_id, const char *vm, const char *snapshot,
                          bool access)
{
    vb_release_request_t req = {(char *)vm, (char *)snapshot, access};
    vb_release_result_t *res = vb_release_run(&req, self->cfg.provider);
    void *r = s_release_new(self, job_id, vm, snapshot, access);
    if (!s_take_result(self, r, res))
        VB_LOG_ERROR("jobs", "release_failed job=%lld vm=%s error=\"%s\"", (long long)job_id, vm,
                     ((jb_release_t *)r)->error);
    s_release_free(&r);
    vb_release_result_free(&res);
}

void jb_release_queue(vb_jobs_t *self, int64_t job_id, const char *vm, const char *snapshot,
                      bool access, jb_vmrun_t *waiting)
{
    if (!snapshot && !access)
        return;
    if (!self->cfg.loop || !self->cfg.provider_factory) {
        s_release_now(self, job_id, vm, snapshot, access);
        return;
    }
    if (!self->releases) {
        self->releases = zlistx_new();
        zlistx_set_destructor(self->releases, s_release_free);
    }
    jb_release_t *r = s_release_new(self, job_id, vm, snapshot, access);
    r->waiting = waiting;
    zlistx_add_end(self->releases, r);
    s_attempt(self, r);
}

/* Undo what a backup did to a VM: EndAccess, remove the snapshot, on a thread; what fails is
 * tried again until it is done. The VM run forgets both at once: the release owns them now. */
bool jb_release_vm(vb_jobs_t *self, jb_vmrun_t *vm, bool wait)
{
    bool waits =
        wait && (vm->snapshot_id || vm->access) && self->cfg.loop && self->cfg.provider_factory;
    jb_release_queue(self, vm->job->id, vm->name, vm->snapshot_id, vm->access, waits ? vm : NULL);
    free(vm->snapshot_id);
    vm->snapshot_id = NULL;
    vm->access = false;
    return waits;
}

size_t vb_jobs_pending_releases(const vb_jobs_t *self)
{
    return self->releases ? zlistx_size(self->releases) : 0;
}

json_t *vb_jobs_pending_releases_json(const vb_jobs_t *self)
{
    json_t *arr = json_array();
    if (!self->releases)
        return arr;
    for (jb_release_t *r = zlistx_first(self->releases); r; r = zlistx_next(self->releases))
        json_array_append_new(arr,
                              json_pack("{s:I, s:s, s:o, s:b, s:i, s:o, s:o}", "job",
                                        (json_int_t)r->job_id, "vm", r->vm, "snapshot",
                                        r->snapshot ? json_string(r->snapshot) : json_null(),
                                        "access", r->access, "attempts", (int)r->attempts, "error",
                                        r->error ? json_string(r->error) : json_null(), "next_try",
                                        r->actor ? json_null() : vb_json_time(r->next_ms)));
    return arr;
}
