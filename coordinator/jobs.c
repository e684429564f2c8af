#include "jobs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/disk_uri.h"
#include "jobs_internal.h"
#include "log.h"
#include "path.h"
#include "policy/explain.h"
#include "timefmt.h"
#include "wire.h"
#include "wire_check.h"

int64_t jb_now(void)
{
    return vb_time_now_ms();
}

const char *jb_key(int64_t id, char buf[24])
{
    snprintf(buf, 24, "%lld", (long long)id);
    return buf;
}

int64_t jb_backoff(vb_jobs_t *self, uint32_t base, uint32_t failures)
{
    uint64_t max = self->cfg.retry_max_delay_ms ? self->cfg.retry_max_delay_ms : base;
    uint64_t d = base;
    for (uint32_t i = 1; i < failures && d < max; i++)
        d *= 2;
    if (d > max)
        d = max;
    /* xorshift64: jitter needs no cryptographic quality, only independence between tasks */
    self->rand_state ^= self->rand_state << 13;
    self->rand_state ^= self->rand_state >> 7;
    self->rand_state ^= self->rand_state << 17;
    return (int64_t)(d - d / 4 + (d / 2 ? self->rand_state % (d / 2 + 1) : 0));
}

/* ---- agents and places ---- */

static uint32_t s_place(vb_jobs_t *self, const char *name)
{
    uintptr_t id = (uintptr_t)zhashx_lookup(self->places, name ? name : "");
    if (!id) {
        id = zhashx_size(self->places) + 1;
        zhashx_insert(self->places, name ? name : "", (void *)id);
    }
    return (uint32_t)(id - 1);
}

static int s_agent_id(vb_jobs_t *self, const char *name)
{
    for (size_t i = 0; i < self->agent_count; i++)
        if (streq(self->agents[i].name, name))
            return (int)i;
    return -1;
}

static void s_agent_clear(jb_agent_t *a)
{
    free(a->host);
    free(a->datastore);
    for (size_t i = 0; i < a->lun_count; i++)
        free(a->luns[i]);
    free(a->luns);
    free(a->proxy_vm);
    free(a->vddk_version);
    a->host = a->datastore = a->proxy_vm = a->vddk_version = NULL;
    a->luns = NULL;
    a->lun_count = 0;
}

/* Deletes the entries of `hash` for which keep(item, arg) is false (collecting their keys first:
 * a zhashx must not change while it is walked). */
static void s_hash_filter(zhashx_t *hash, bool (*keep)(void *item, void *arg), void *arg)
{
    zlistx_t *gone = zlistx_new();
    zlistx_set_destructor(gone, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator(gone, (zlistx_duplicator_fn *)strdup);
    for (void *item = zhashx_first(hash); item; item = zhashx_next(hash))
        if (!keep(item, arg))
            zlistx_add_end(gone, (void *)zhashx_cursor(hash));
    for (const char *k = zlistx_first(gone); k; k = zlistx_next(gone))
        zhashx_delete(hash, k);
    zlistx_destroy(&gone);
}

/* A task abandoned by an ended VM stays until its agent answers, or is lost. */
/* A lost agent's tasks: the abandoned ones are forgotten, the others wait for another agent
 * (the scheduler has put them back in its queue). */
static bool s_release_from_lost_agent(void *item, void *agent)
{
    jb_task_t *t = item;
    if (!t->agent || !streq(t->agent, agent))
        return true;
    if (t->abandoned)
        return false;
    free(t->agent);
    t->agent = NULL;
    return true;
}

void vb_jobs_agent_event(void *arg, const vb_agent_record_t *rec, bool online)
{
    vb_jobs_t *self = arg;
    int id = s_agent_id(self, rec->name);
    if (id < 0) {
        if (!online)
            return;
        jb_agent_t *grown = realloc(self->agents, (self->agent_count + 1) * sizeof *grown);
        if (!grown)
            return;
        self->agents = grown;
        id = (int)self->agent_count++;
        memset(&self->agents[id], 0, sizeof self->agents[id]);
        self->agents[id].name = strdup(rec->name);
    }
    jb_agent_t *a = &self->agents[id];
    if (!online) {
        size_t n = vb_sched_agent_down(self->sched, (uint32_t)id);
        a->online = false;
        size_t count = 0;
        if (vb_catalog_tasks_requeue_agent(self->cfg.catalog, rec->name,
                                           "the agent was lost; the task runs elsewhere",
                                           &count) != 0)
            VB_LOG_ERROR("jobs", "requeue_failed agent=%s error=\"%s\"", rec->name, vb_error_msg());
        if (n)
            VB_LOG_WARN("jobs", "agent_lost agent=%s requeued=%zu", rec->name, n);
        s_hash_filter(self->tasks, s_release_from_lost_agent, (void *)rec->name);
        jb_dispatch(self);
        jb_reap(self);
        return;
    }
    s_agent_clear(a);
    a->host = strdup(rec->host ? rec->host : "");
    a->datastore = strdup(rec->datastore ? rec->datastore : "");
    a->luns = calloc(rec->lun_count ? rec->lun_count : 1, sizeof *a->luns);
    for (size_t i = 0; i < rec->lun_count; i++)
        a->luns[i] = strdup(rec->luns[i]);
    a->lun_count = rec->lun_count;
    a->transports = 0;
    for (size_t i = 0; i < rec->transport_count; i++) {
        vb_transport_t m;
        if (vb_transport_from_name(rec->transports[i], &m) == 0)
            a->transports |= VB_TRANSPORT_BIT(m);
    }
    a->vddk = rec->vddk;
    a->proxy_vm = rec->proxy_vm ? strdup(rec->proxy_vm) : NULL;
    a->vddk_version = rec->vddk_version ? strdup(rec->vddk_version) : NULL;
    a->online = true;
    if (vb_sched_agent_up(self->sched, (uint32_t)id, rec->slots) != 0 ||
        vb_sched_agent_machine(self->sched, (uint32_t)id, rec->machine, rec->cpus) != 0)
        VB_LOG_ERROR("jobs", "agent_up_failed agent=%s error=\"%s\"", rec->name, vb_error_msg());
    uint32_t shared = vb_sched_machine_budget(self->sched, (uint32_t)id);
    if (shared)
        VB_LOG_INFO("jobs", "machine_shared agent=%s machine=%s tasks_at_once=%u", rec->name,
                    rec->machine, shared);
    jb_dispatch(self);
    jb_reap(self);
}

static vb_agent_facts_t s_facts(const jb_agent_t *a)
{
    vb_agent_facts_t f = {a->name,        a->host,       a->datastore, (const char *const *)a->luns,
                          a->lun_count,   a->transports, a->vddk,      a->proxy_vm,
                          a->vddk_version};
    return f;
}

/* ---- the transport decision for a disk × agent ---- */

/* The operation a disk of this job is opened for. */
static vb_transport_op_t s_op(const jb_disk_t *d)
{
    return d->vm->job->kind == VB_JOB_RESTORE ? VB_OP_RESTORE : VB_OP_BACKUP;
}

/* A route of a disk as an agent opens it: the disk-layer mode and the URI (NULL: none). */
typedef struct {
    const char *mode;
    const char *uri;
} s_route_t;

/* The route for mode m the policy picked for this agent (dec): through VixDiskLib or plain. */
static s_route_t s_agent_route(const jb_disk_t *d, const vb_transport_decision_t *dec,
                               vb_transport_t m)
{
    bool vddk = dec->via_vddk[m];
    const vb_route_t *r = vddk ? &d->inv->vddk_routes[s_op(d)][m] : &d->inv->routes[s_op(d)][m];
    return (s_route_t){r->mode ? r->mode : vb_transport_name(m),
                       vddk ? d->vddk_routes[m] : d->routes[m]};
}

static void s_decide_full(vb_jobs_t *self, const jb_disk_t *d, const jb_agent_t *a,
                          vb_transport_decision_t *dec)
{
    (void)self;
    vb_agent_facts_t f = s_facts(a);
    vb_transport_input_t in;
    jb_job_t *job = d->vm->job;
    vb_explain_input(job->inv, d->vm->inv, d->inv, &f, s_op(d), &in);
    vb_transport_decide(&in, dec);
}

static size_t s_decide(void *ctx, uint32_t disk, uint32_t agent, vb_transport_t order[4])
{
    vb_jobs_t *self = ctx;
    jb_disk_t *d = disk < self->disk_cap ? self->disk_by_sched[disk] : NULL;
    if (!d || agent >= self->agent_count)
        return 0;
    if (d->dest_path) { /* a new file: no VM transport; any agent writes it */
        order[0] = VB_TRANSPORT_NBD;
        return 1;
    }
    vb_transport_decision_t dec;
    s_decide_full(self, d, &self->agents[agent], &dec);
    size_t n = 0;
    for (size_t i = 0; i < dec.order_count; i++)
        if (s_agent_route(d, &dec, dec.order[i]).uri)
            order[n++] = dec.order[i];
    return n;
}

/* ---- memory ---- */

static void s_task_free(void **item)
{
    jb_task_t *t = *item;
    if (!t)
        return;
    free(t->extents);
    free(t->agent);
    free(t);
    *item = NULL;
}

static void s_job_free(void **item)
{
    jb_job_t *job = *item;
    if (!job)
        return;
    for (size_t v = 0; v < job->nvms; v++) {
        jb_vmrun_t *vm = &job->vms[v];
        for (size_t i = 0; i < vm->ndisks; i++) {
            jb_disk_t *d = &vm->disks[i];
            for (int m = 0; m < VB_TRANSPORT_COUNT; m++) {
                free(d->routes[m]);
                free(d->vddk_routes[m]);
            }
            free(d->dest_path);
            free(d->parent_index);
            free(d->change_id);
            free(d->results);
            vb_index_destroy(&d->index);
        }
        zactor_destroy(&vm->prep);
        zactor_destroy(&vm->store);
        jb_restore_setup_free(&vm->setup);
        free(vm->disks);
        free(vm->name);
        free(vm->snapshot_id);
        free(vm->reason);
        for (size_t i = 0; i < vm->own.disk_count; i++) {
            free(vm->own.disks[i].key);
            free(vm->own.disks[i].name);
            free(vm->own.disks[i].datastore);
        }
        free(vm->own.disks);
        free(vm->own.name);
        free(vm->own.host);
    }
    free(job->vms);
    free(job->first_error);
    vb_inventory_free(&job->inv);
    free(job);
    *item = NULL;
}

vb_jobs_t *vb_jobs_new(const vb_jobs_config_t *config)
{
    vb_jobs_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    self->cfg = *config;
    self->stats.durations.bounds = vb_task_duration_bounds;
    self->stats.durations.nbounds = vb_task_duration_nbounds;
    if (!self->cfg.task_bytes)
        self->cfg.task_bytes = 64u << 20;
    if (!self->cfg.max_attempts)
        self->cfg.max_attempts = 4;
    self->repository = config->repository ? strdup(config->repository) : NULL;
    self->key_file = config->repository_key_file ? strdup(config->repository_key_file) : NULL;
    vb_sched_limits_t limits = {config->per_datastore, config->per_host, self->cfg.max_attempts};
    self->sched = vb_sched_new(&limits, s_decide, self);
    self->jobs = zhashx_new();
    zhashx_set_destructor(self->jobs, s_job_free);
    self->tasks = zhashx_new();
    zhashx_set_destructor(self->tasks, s_task_free);
    self->sent = zhashx_new();
    self->places = zhashx_new();
    self->held = zhashx_new();
    self->rand_state =
        (uint64_t)zclock_usecs() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
    if (!self->sched || !self->sent || !self->held) {
        vb_jobs_destroy(&self);
        return NULL;
    }
    return self;
}

void vb_jobs_destroy(vb_jobs_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_jobs_t *self = *self_p;
    jb_releases_destroy(self);
    vb_catalog_copier_destroy(&self->copier); /* before the repository its store belongs to */
    zhashx_destroy(&self->held);
    zhashx_destroy(&self->sent);
    zhashx_destroy(&self->tasks);
    zhashx_destroy(&self->jobs);
    zhashx_destroy(&self->places);
    vb_sched_destroy(&self->sched);
    for (size_t i = 0; i < self->agent_count; i++) {
        s_agent_clear(&self->agents[i]);
        free(self->agents[i].name);
    }
    free(self->agents);
    free(self->disk_by_sched);
    vb_jobs_lend_fetch(self, NULL);
    vb_repo_destroy(&self->repo);
    for (size_t i = 0; i < self->nretired; i++)
        vb_repo_destroy(&self->retired[i]);
    free(self->retired);
    vb_jobs_lend_inventory(self, NULL, 0, NULL);
    free(self->repository);
    free(self->key_file);
    free(self);
    *self_p = NULL;
}

uint64_t vb_jobs_dropped_results(const vb_jobs_t *self)
{
    return self->dropped;
}

const vb_jobs_stats_t *vb_jobs_stats(const vb_jobs_t *self)
{
    return &self->stats;
}

json_t *vb_jobs_task_census(vb_jobs_t *self)
{
    json_int_t queued = 0, running = 0, retrying = 0;
    for (jb_task_t *t = zhashx_first(self->tasks); t; t = zhashx_next(self->tasks)) {
        if (t->abandoned)
            continue;
        if (t->agent)
            running++;
        else if (t->held)
            retrying++;
        else
            queued++;
    }
    return json_pack("{s:I, s:I, s:I}", "queued", queued, "running", running, "retrying",
                     retrying);
}

static void s_stats_done(vb_jobs_t *self, const jb_task_t *t, const Vbak__TaskResult *r,
                         int64_t now)
{
    vb_jobs_stats_t *st = &self->stats;
    st->tasks_done++;
    if (t->dispatched_ms > 0 && now >= t->dispatched_ms)
        vb_histogram_observe(&st->durations, (double)(now - t->dispatched_ms) / 1000.0);
    if (t->kind != VB_TASK_BACKUP)
        return;
    st->bytes_read += r->bytes;
    st->bytes_stored += r->bytes_new;
    st->bytes_deduped += r->bytes > r->bytes_new ? r->bytes - r->bytes_new : 0;
}

/* The repository, opened by the worker of the command now running (vb_jobs_lend_fetch): opening
 * it may wait for the store's retries, which the loop must not. Opened here only by an engine
 * without an event loop. */
vb_repo_t *jb_repo(vb_jobs_t *self)
{
    if (self->repo)
        return self->repo;
    if (!self->repository) {
        vb_error_set(VB_EINVAL, "the coordinator has no repository configured");
        return NULL;
    }
    if (jb_fetched_repo_error(self))
        return NULL;
    if (self->cfg.loop) {
        vb_error_set(VB_EIO, "%s was not opened ahead of the command", self->repository);
        return NULL;
    }
    vb_store_opts_t so = {.credentials_file = self->cfg.repository_credentials_file};
    self->repo = vb_repo_open_opts(self->repository, self->key_file, &so);
    return self->repo;
}

/* ---- routes: how agents reach a disk ---- */

/* The disk's URI as the provider serves it at `snapshot` (NULL: live). */
static char *s_at_snapshot(vb_provider_t *p, const char *uri, const char *snapshot)
{
    if (!uri)
        return NULL;
    if (!snapshot || !p->ops->uri_at_snapshot)
        return strdup(uri);
    return p->ops->uri_at_snapshot(p, uri, snapshot);
}

/* Each route the provider gives for the job's operation, at the snapshot (the lab rewrites its
 * URIs; vSphere's file-service URI already names the file the snapshot froze, its VixDiskLib
 * URIs gain the snapshot's moref). */
void jb_set_routes(vb_jobs_t *self, jb_disk_t *d, const char *snapshot)
{
    vb_provider_t *p = self->cfg.provider;
    for (int m = 0; m < VB_TRANSPORT_COUNT; m++) {
        d->routes[m] = s_at_snapshot(p, d->inv->routes[s_op(d)][m].uri, snapshot);
        d->vddk_routes[m] = s_at_snapshot(p, d->inv->vddk_routes[s_op(d)][m].uri, snapshot);
    }
}

/* The transport mode whose route opened with disk-layer mode `route_mode` (vsfile: NBDSSL's
 * slot; a VixDiskLib route: its own mode); VB_TRANSPORT_NONE when no route has that mode. */
static vb_transport_t s_route_slot(const jb_disk_t *d, const char *route_mode)
{
    for (int m = 0; route_mode && m < VB_TRANSPORT_COUNT; m++) {
        const vb_route_t *plain = &d->inv->routes[s_op(d)][m];
        const char *mode = plain->mode ? plain->mode : vb_transport_name((vb_transport_t)m);
        if ((d->routes[m] && streq(mode, route_mode)) ||
            (d->vddk_routes[m] && streq(vb_transport_name((vb_transport_t)m), route_mode)))
            return (vb_transport_t)m;
    }
    return VB_TRANSPORT_NONE;
}

int jb_register_disk(vb_jobs_t *self, jb_disk_t *d)
{
    uint32_t id;
    int rc = vb_sched_disk_add(self->sched, s_place(self, d->inv->datastore),
                               s_place(self, d->vm->inv->host), &id);
    if (rc)
        return rc;
    if (id >= self->disk_cap) {
        size_t cap = self->disk_cap ? self->disk_cap * 2 : 64;
        while (cap <= id)
            cap *= 2;
        jb_disk_t **grown = realloc(self->disk_by_sched, cap * sizeof *grown);
        if (!grown) {
            vb_sched_disk_remove(self->sched, id);
            return vb_error_set(VB_ENOMEM, "out of memory");
        }
        memset(grown + self->disk_cap, 0, (cap - self->disk_cap) * sizeof *grown);
        self->disk_by_sched = grown;
        self->disk_cap = cap;
    }
    self->disk_by_sched[id] = d;
    d->sched_id = id;
    d->registered = true;
    return 0;
}

static void s_unregister_disk(vb_jobs_t *self, jb_disk_t *d)
{
    if (!d->registered)
        return;
    d->registered = false;
    vb_sched_disk_remove(self->sched, d->sched_id);
    if (d->sched_id < self->disk_cap)
        self->disk_by_sched[d->sched_id] = NULL;
}

/* ---- tasks ---- */

/* Adds tasks for one disk to the catalog and the scheduler. `plan` may be NULL for a map task. */
/* The bytes a task reads, what the read phase's progress counts: a backup task the whole chunks
 * its ranges touch (the disk's last chunk may be short), a restore task its window, a map task
 * nothing (it asks for allocated blocks, it reads no data). */
static uint64_t s_read_bytes(vb_jobs_t *self, const jb_disk_t *d, vb_task_kind_t kind,
                             const vb_plan_task_t *p)
{
    if (!p || kind == VB_TASK_MAP)
        return 0;
    if (kind == VB_TASK_RESTORE)
        return p->length;
    uint64_t chunk = vb_repo_chunk_size(self->repo), cap = d->inv->capacity, end = 0;
    uint64_t bytes = p->chunks * chunk, tail = chunk ? cap % chunk : 0;
    for (size_t i = 0; i < p->count; i++)
        if (p->extents[i].offset + p->extents[i].length > end)
            end = p->extents[i].offset + p->extents[i].length;
    if (tail && end > cap - tail && bytes >= chunk - tail)
        bytes -= chunk - tail;
    return bytes;
}

int jb_add_tasks(vb_jobs_t *self, jb_disk_t *d, vb_task_kind_t kind, vb_plan_task_t *plan, size_t n)
{
    jb_job_t *job = d->vm->job;
    size_t count = plan ? n : 1;
    vb_task_t *rows = calloc(count, sizeof *rows);
    int64_t *ids = calloc(count, sizeof *ids);
    int rc = rows && ids ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < count; i++) {
        rows[i].vm = d->vm->name;
        rows[i].disk_key = d->inv->key;
        rows[i].kind = kind;
        rows[i].offset = plan ? plan[i].offset : 0;
        rows[i].length = plan ? plan[i].length : d->inv->capacity;
        rows[i].read_bytes = s_read_bytes(self, d, kind, plan ? &plan[i] : NULL);
    }
    if (!rc)
        rc = vb_catalog_tasks_add(self->cfg.catalog, job->id, rows, count, ids);
    for (size_t i = 0; !rc && i < count; i++) {
        jb_task_t *t = calloc(1, sizeof *t);
        t->id = ids[i];
        t->disk = d;
        t->kind = kind;
        t->offset = rows[i].offset;
        t->length = rows[i].length;
        if (plan && kind == VB_TASK_BACKUP) {
            t->extents = plan[i].extents; /* moved */
            t->count = plan[i].count;
            plan[i].extents = NULL;
            t->chunks_expected = plan[i].chunks;
        }
        char key[24];
        zhashx_insert(self->tasks, jb_key(t->id, key), t);
        rc = vb_sched_task_add(self->sched, (uint64_t)t->id, d->sched_id);
        d->tasks_left++;
    }
    free(rows);
    free(ids);
    return rc;
}

static void s_task_forget(vb_jobs_t *self, jb_task_t *t)
{
    char key[24];
    zhashx_delete(self->tasks, jb_key(t->id, key));
}

static Vbak__Route *s_route(Vbak__Route *r, const char *mode, const char *uri)
{
    vbak__route__init(r);
    r->mode = (char *)mode;
    r->uri = (char *)uri;
    return r;
}

/* After the VixDiskLib routes: the plain routes of the same allowed modes whose disk-layer mode
 * differs (vSphere's datastore file service behind NBDSSL), so an agent that cannot open the
 * disk through VixDiskLib (port 902 unreachable) still reads it where the provider allows. */
static void s_plain_fallbacks(const jb_disk_t *d, const vb_transport_decision_t *dec,
                              const char *first_mode, Vbak__Route *store, Vbak__TaskAssign *a)
{
    for (size_t i = 0; i < dec->order_count; i++) {
        vb_transport_t m = dec->order[i];
        const vb_route_t *plain = &d->inv->routes[s_op(d)][m];
        if (!dec->via_vddk[m] || !d->routes[m] || !plain->mode)
            continue;
        bool listed = streq(plain->mode, first_mode);
        for (size_t k = 0; k < a->n_fallbacks && !listed; k++)
            listed = streq(plain->mode, a->fallbacks[k]);
        if (listed)
            continue;
        a->fallbacks[a->n_fallbacks++] = plain->mode;
        a->routes[a->n_routes] = s_route(&store[a->n_routes], plain->mode, d->routes[m]);
        a->n_routes++;
    }
}

/* Sends a TaskAssign for task t to `agent` with the mode the scheduler chose; the modes the
 * policy allows after it go along as fallbacks the agent tries when the first fails to open.
 * *route_mode_out: the disk-layer mode of the first route (static or the inventory's). */
static int s_send_assign(vb_jobs_t *self, jb_task_t *t, jb_agent_t *agent, vb_transport_t mode,
                         uint32_t attempt, char *why, size_t why_size,
                         const char **route_mode_out)
{
    jb_disk_t *d = t->disk;
    Vbak__TaskAssign a = VBAK__TASK_ASSIGN__INIT;
    /* each allowed mode's route, then the plain routes behind VixDiskLib ones */
    Vbak__Route route_store[2 * VB_TRANSPORT_COUNT];
    Vbak__Route *routes[2 * VB_TRANSPORT_COUNT];
    char *fallbacks[2 * VB_TRANSPORT_COUNT];
    Vbak__Extent ext_store[1];
    Vbak__Extent **exts = NULL;
    Vbak__Extent *ext_heap = NULL;
    ProtobufCBinaryData *digests = NULL;
    char *uri_file = NULL; /* the destination file's route, its path percent-encoded */
    a.task_id = (uint64_t)t->id;
    a.job_id = (uint64_t)d->vm->job->id;
    a.assign_seq = t->assign_seq = ++agent->assign_seq;
    a.attempt = attempt;
    a.capacity = d->inv->capacity;
    a.repository = self->repository;
    a.chunk_size = vb_repo_chunk_size(self->repo);
    a.disk_key = d->inv->key;
    char disk_name[256];
    snprintf(disk_name, sizeof disk_name, "%s / %s", d->vm->name,
             d->inv->name ? d->inv->name : d->inv->key);
    a.disk_name = disk_name;
    a.snapshot = d->vm->snapshot_id ? d->vm->snapshot_id : "";
    a.routes = routes;
    a.fallbacks = fallbacks;
    if (d->dest_path) {
        snprintf(why, why_size, "restore to a new file %s: any agent may write it", d->dest_path);
        if (!(uri_file = vb_disk_uri_file(d->dest_path)))
            return vb_error_code();
        routes[0] = s_route(&route_store[0], "file", uri_file);
        a.n_routes = 1;
        a.transport = "file";
        *route_mode_out = "file";
        a.create_destination = true;
    } else {
        vb_transport_decision_t dec;
        s_decide_full(self, d, agent, &dec);
        s_route_t first = s_agent_route(d, &dec, mode);
        a.transport = (char *)first.mode;
        *route_mode_out = first.mode;
        routes[0] = s_route(&route_store[0], first.mode, first.uri);
        a.n_routes = 1;
        bool after = false;
        for (size_t i = 0; i < dec.order_count; i++) {
            vb_transport_t m = dec.order[i];
            if (m == mode) {
                after = true;
                continue;
            }
            s_route_t next = s_agent_route(d, &dec, m);
            if (after && next.uri) {
                fallbacks[a.n_fallbacks++] = (char *)next.mode;
                routes[a.n_routes] = s_route(&route_store[a.n_routes], next.mode, next.uri);
                a.n_routes++;
            }
        }
        s_plain_fallbacks(d, &dec, first.mode, route_store, &a);
        snprintf(why, why_size, "%s", dec.chosen == mode ? dec.why : dec.verdicts[mode].reason);
        if (dec.chosen != mode)
            snprintf(why + strlen(why), why_size - strlen(why), " (after %s failed to open)",
                     vb_transport_name(dec.chosen));
        a.write_zeros = d->vm->job->to_vm;
    }
    switch (t->kind) {
    case VB_TASK_MAP:
        a.kind = VBAK__TASK_KIND__TASK_KIND_MAP;
        break;
    case VB_TASK_BACKUP:
        a.kind = VBAK__TASK_KIND__TASK_KIND_BACKUP;
        exts = calloc(t->count ? t->count : 1, sizeof *exts);
        ext_heap = calloc(t->count ? t->count : 1, sizeof *ext_heap);
        for (size_t i = 0; i < t->count; i++) {
            vbak__extent__init(&ext_heap[i]);
            ext_heap[i].offset = t->extents[i].offset;
            ext_heap[i].length = t->extents[i].length;
            exts[i] = &ext_heap[i];
        }
        a.extents = exts;
        a.n_extents = t->count;
        a.extents_allocated = d->read_allocated;
        break;
    case VB_TASK_RESTORE: {
        a.kind = VBAK__TASK_KIND__TASK_KIND_RESTORE;
        vbak__extent__init(&ext_store[0]);
        ext_store[0].offset = t->offset;
        ext_store[0].length = t->length;
        exts = calloc(1, sizeof *exts);
        exts[0] = &ext_store[0];
        a.extents = exts;
        a.n_extents = 1;
        uint64_t first = t->offset / a.chunk_size;
        uint64_t n = (t->length + a.chunk_size - 1) / a.chunk_size;
        digests = calloc(n ? n : 1, sizeof *digests);
        for (uint64_t i = 0; i < n; i++)
            if (!vb_digest_is_zero(&d->index->digests[first + i])) {
                digests[i].data = d->index->digests[first + i].b;
                digests[i].len = VB_DIGEST_LEN;
            }
        a.digests = digests;
        a.n_digests = n;
        break;
    }
    }
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_TASK_ASSIGN;
    env.task_assign = &a;
    int rc = self->cfg.send(self->cfg.send_ctx, agent->name, &env);
    free(ext_heap);
    free(exts);
    free(digests);
    free(uri_file);
    return rc;
}

void jb_dispatch(vb_jobs_t *self)
{
    vb_sched_assignment_t out[64];
    size_t n;
    while ((n = vb_sched_dispatch(self->sched, out, 64)) > 0) {
        bool txn = !vb_catalog_in_transaction(self->cfg.catalog) &&
                   vb_catalog_begin(self->cfg.catalog) == 0;
        for (size_t i = 0; i < n; i++) {
            char key[24];
            jb_task_t *t = zhashx_lookup(self->tasks, jb_key((int64_t)out[i].task, key));
            if (!t)
                continue;
            jb_agent_t *agent = &self->agents[out[i].agent];
            char why[1024];
            t->transport = out[i].transport;
            t->attempt = out[i].attempt;
            t->dispatched_ms = jb_now();
            free(t->agent);
            t->agent = strdup(agent->name);
            zhashx_update(self->sent, key, (void *)1);
            const char *mode = vb_transport_name(out[i].transport);
            if (s_send_assign(self, t, agent, out[i].transport, out[i].attempt, why, sizeof why,
                              &mode))
                VB_LOG_WARN("jobs", "assign_send_failed task=%lld agent=%s error=\"%s\"",
                            (long long)t->id, agent->name, vb_error_msg());
            if (vb_catalog_task_claim(self->cfg.catalog, t->id, agent->name, mode, why, jb_now()))
                VB_LOG_ERROR("jobs", "claim_failed task=%lld error=\"%s\"", (long long)t->id,
                             vb_error_msg());
        }
        if (txn && vb_catalog_commit(self->cfg.catalog) != 0)
            VB_LOG_ERROR("jobs", "commit_failed error=\"%s\"", vb_error_msg());
    }
    /* disks no online agent may reach fail with the policy's reasons */
    uint32_t stuck[16];
    size_t k = vb_sched_unreachable(self->sched, stuck, 16);
    for (size_t i = 0; i < k; i++) {
        jb_disk_t *d = stuck[i] < self->disk_cap ? self->disk_by_sched[stuck[i]] : NULL;
        if (!d || d->vm->finished)
            continue;
        char msg[1024] = "";
        size_t used = 0;
        for (size_t a = 0; a < self->agent_count && used < sizeof msg - 1; a++) {
            if (!self->agents[a].online)
                continue;
            vb_transport_decision_t dec;
            s_decide_full(self, d, &self->agents[a], &dec);
            const char *best = dec.verdicts[VB_TRANSPORT_NBD].reason;
            int w = snprintf(msg + used, sizeof msg - used, "%s%s: %s", used ? "; " : "",
                             self->agents[a].name, best);
            used += w > 0 ? (size_t)w : 0;
        }
        char err[1200];
        snprintf(err, sizeof err, "no online agent may reach disk %s (%s)", d->inv->key, msg);
        jb_vm_fail(self, d->vm, err);
    }
}

/* ---- finishing disks, VMs and jobs ---- */

/* After a job, a consistent copy of the catalog goes into the repository, on a thread. */
static void s_copy_catalog(vb_jobs_t *self)
{
    vb_repo_t *repo = self->cfg.catalog_copies ? self->repo : NULL; /* open: a job ran */
    if (repo && !self->copier)
        self->copier = vb_catalog_copier_new(self->cfg.loop, vb_catalog_path(self->cfg.catalog),
                                             vb_repo_store(repo), self->cfg.catalog_copies);
    if (self->copier)
        vb_catalog_copier_request(self->copier);
    vb_error_clear();
}

static void s_job_maybe_finish(vb_jobs_t *self, jb_job_t *job)
{
    if (job->vms_left > 0)
        return;
    vb_job_state_t state = job->cancelled        ? VB_JOB_CANCELLED
                           : job->vms_failed > 0 ? VB_JOB_FAILED
                                                 : VB_JOB_SUCCEEDED;
    char err[1200] = "";
    if (job->vms_failed && job->nvms > 1)
        snprintf(err, sizeof err, "%zu of %zu VMs failed; first: %s", job->vms_failed, job->nvms,
                 job->first_error);
    else if (job->first_error)
        snprintf(err, sizeof err, "%s", job->first_error);
    if (vb_catalog_job_finish(self->cfg.catalog, job->id, state, err[0] ? err : NULL, jb_now()))
        VB_LOG_ERROR("jobs", "finish_failed job=%lld error=\"%s\"", (long long)job->id,
                     vb_error_msg());
    VB_LOG_INFO("jobs", "job_finished job=%lld kind=%s state=%s%s%s", (long long)job->id,
                vb_job_kind_name(job->kind), vb_job_state_name(state), err[0] ? " error=" : "",
                err);
    job->ended = true;
    s_copy_catalog(self);
}

static bool s_keep_job(void *item, void *arg)
{
    (void)arg;
    const jb_job_t *job = item;
    bool prep = false;
    for (size_t i = 0; i < job->nvms; i++)
        prep |= job->vms[i].prep != NULL || job->vms[i].releasing || job->vms[i].store != NULL;
    return !job->ended || prep;
}

/* Frees jobs that ended during this event (never while their VMs are still being walked, nor
 * while a prep thread of theirs still runs). */
void jb_reap(vb_jobs_t *self)
{
    s_hash_filter(self->jobs, s_keep_job, NULL);
}

/* A VM ended: its queued tasks go; those an agent runs are abandoned (they keep the agent's slot
 * until it answers). */
static bool s_keep_or_abandon(void *item, void *vm)
{
    jb_task_t *t = item;
    if (t->abandoned || t->disk->vm != vm)
        return true;
    if (!t->agent)
        return false;
    t->abandoned = true;
    t->disk = NULL;
    return true;
}

void jb_vm_end(vb_jobs_t *self, jb_vmrun_t *vm, vb_job_state_t state, const char *error)
{
    if (vm->finished)
        return;
    vm->finished = true;
    for (size_t i = 0; i < vm->ndisks; i++)
        s_unregister_disk(self, &vm->disks[i]);
    /* forget the VM's queued tasks; running ones wait for their agent */
    s_hash_filter(self->tasks, s_keep_or_abandon, vm);
    if (state != VB_JOB_SUCCEEDED) {
        vm->job->vms_failed++;
        if (!vm->job->first_error)
            vm->job->first_error = strdup(error ? error : "failed");
        if (vm->job->kind == VB_JOB_BACKUP)
            jb_backup_remove_indexes(self, vm);
        if (vm->rp_id && vb_catalog_restore_point_discard(self->cfg.catalog, vm->rp_id))
            VB_LOG_WARN("jobs", "discard_failed rp=%lld error=\"%s\"", (long long)vm->rp_id,
                        vb_error_msg());
    }
    /* with a prep still running, its reply releases the VM */
    bool waits = vm->job->kind == VB_JOB_BACKUP && !vm->prep && jb_release_vm(self, vm, true);
    if (vb_catalog_job_vm_finish(self->cfg.catalog, vm->job->id, vm->name, state, error))
        VB_LOG_ERROR("jobs", "vm_finish_failed error=\"%s\"", vb_error_msg());
    VB_LOG_INFO("jobs", "vm_finished job=%lld vm=%s state=%s%s%s", (long long)vm->job->id, vm->name,
                vb_job_state_name(state), error ? " error=" : "", error ? error : "");
    if (waits) /* the job ends once the snapshot's removal was tried: normally it is gone then */
        vm->releasing = true;
    else
        jb_vm_released(self, vm);
}

/* A backup VM's phase times go to the catalog once its snapshot's removal was tried. */
static void s_save_timing(vb_jobs_t *self, jb_vmrun_t *vm)
{
    json_t *j = vb_phase_times_json(&vm->times);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!text || vb_catalog_job_vm_set_timing(self->cfg.catalog, vm->job->id, vm->name, text))
        VB_LOG_WARN("jobs", "timing_not_saved job=%lld vm=%s error=\"%s\"",
                    (long long)vm->job->id, vm->name, text ? vb_error_msg() : "out of memory");
    free(text);
    json_decref(j);
}

void jb_vm_released(vb_jobs_t *self, jb_vmrun_t *vm)
{
    if (vm->job->kind == VB_JOB_BACKUP)
        s_save_timing(self, vm);
    vm->releasing = false;
    vm->job->vms_left--;
    s_job_maybe_finish(self, vm->job);
}

void jb_vm_fail(vb_jobs_t *self, jb_vmrun_t *vm, const char *error)
{
    jb_vm_end(self, vm, vm->job->cancelled ? VB_JOB_CANCELLED : VB_JOB_FAILED, error);
}

static void s_vm_maybe_done(vb_jobs_t *self, jb_vmrun_t *vm)
{
    if (vm->finished || vm->disks_left > 0)
        return;
    if (vm->job->kind == VB_JOB_BACKUP)
        jb_backup_vm_finish(self, vm);
    else
        jb_vm_end(self, vm, VB_JOB_SUCCEEDED, NULL);
}

void jb_disk_done(vb_jobs_t *self, jb_disk_t *d)
{
    if (d->done)
        return;
    d->done = true; /* a backup's index is written with the VM's others, on a worker */
    d->vm->disks_left--;
    s_vm_maybe_done(self, d->vm);
}

/* ---- results ---- */

static int s_take_map(vb_jobs_t *self, jb_task_t *t, const Vbak__TaskResult *r)
{
    jb_disk_t *d = t->disk;
    vb_extent_t *ext = calloc(r->n_allocated ? r->n_allocated : 1, sizeof *ext);
    for (size_t i = 0; i < r->n_allocated; i++)
        ext[i] = (vb_extent_t){r->allocated[i]->offset, r->allocated[i]->length};
    vb_plan_task_t *plan = NULL;
    size_t n = 0;
    int rc = vb_plan_split(ext, r->n_allocated, d->inv->capacity, vb_repo_chunk_size(self->repo),
                           self->cfg.task_bytes, &plan, &n);
    free(ext);
    d->read_allocated = true;
    if (!rc && n)
        rc = jb_add_tasks(self, d, VB_TASK_BACKUP, plan, n);
    vb_plan_free(&plan, n);
    d->map_pending = false;
    vb_phase_span(&d->vm->times, VB_PHASE_MAP, t->dispatched_ms, jb_now());
    return rc;
}

/* Checks a backup result against its task: one chunk per chunk the ranges touch, ascending,
 * aligned, each a full digest or a zero marker. */
static int s_take_chunks(vb_jobs_t *self, jb_task_t *t, const Vbak__TaskResult *r)
{
    jb_disk_t *d = t->disk;
    uint32_t chunk = vb_repo_chunk_size(self->repo);
    vb_wire_window_t w = {.chunk_size = chunk, .offset = t->offset, .length = t->length,
                          .chunks_expected = t->chunks_expected};
    int rc = vb_wire_check_result_chunks(r, &w);
    if (rc)
        return rc;
    if (d->nresults + r->n_chunks > d->cap) {
        size_t cap = d->cap ? d->cap : 64;
        while (cap < d->nresults + r->n_chunks)
            cap *= 2;
        vb_chunk_result_t *grown = realloc(d->results, cap * sizeof *grown);
        if (!grown)
            return vb_error_set(VB_ENOMEM, "out of memory");
        d->results = grown;
        d->cap = cap;
    }
    for (size_t i = 0; i < r->n_chunks; i++) {
        vb_chunk_result_t *out = &d->results[d->nresults++];
        memset(out, 0, sizeof *out);
        out->offset = r->chunks[i]->offset;
        if (r->chunks[i]->digest.len)
            memcpy(out->digest.b, r->chunks[i]->digest.data, VB_DIGEST_LEN);
    }
    d->bytes_new += r->bytes_new;
    return 0;
}

/* What the agent says about how the disk opened goes into the task's transport reason, which
 * `job show` prints: the modes that failed before one opened, and a warning (a disk that read
 * shorter than its capacity) after the reason the transport was chosen. */
static void s_record_open(vb_jobs_t *self, const jb_task_t *t, const Vbak__TaskResult *r)
{
    bool warn = r->warning && *r->warning;
    if (!r->transport || (!r->n_failed_opens && !warn))
        return;
    char why[2560];
    size_t n = 0;
    vb_task_t row = {0};
    if (r->n_failed_opens) {
        n = (size_t)snprintf(why, sizeof why, "opened with %s after:", r->transport);
        for (size_t i = 0; i < r->n_failed_opens && n < sizeof why; i++)
            n += (size_t)snprintf(why + n, sizeof why - n, " %s;", r->failed_opens[i]);
    } else if (vb_catalog_task_get(self->cfg.catalog, t->id, &row) == 0) {
        n = (size_t)snprintf(why, sizeof why, "%s",
                             row.transport_reason ? row.transport_reason : "");
    }
    if (warn && n < sizeof why)
        snprintf(why + n, sizeof why - n, "%swarning: %s", n ? "; " : "", r->warning);
    vb_task_clear(&row);
    if (vb_catalog_task_set_transport(self->cfg.catalog, t->id, r->transport, why))
        VB_LOG_WARN("jobs", "catalog error=\"%s\"", vb_error_msg());
}

/* ---- failed tasks: fall back, back off, or give up ---- */

static int s_on_retry_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    vb_jobs_t *self = arg;
    int64_t now = jb_now(), next = 0;
    zlistx_t *due = zlistx_new();
    for (void *v = zhashx_first(self->held); v; v = zhashx_next(self->held)) {
        jb_task_t *t = zhashx_lookup(self->tasks, zhashx_cursor(self->held));
        if (!t || !t->held || t->retry_at <= now)
            zlistx_add_end(due, (void *)zhashx_cursor(self->held));
        else if (!next || t->retry_at < next)
            next = t->retry_at;
    }
    /* the loop's clock and ours may differ by a little: a task not due yet gets a timer of its
     * own, so none is ever left held */
    if (next)
        zloop_timer(self->cfg.loop, (size_t)(next - now), 1, s_on_retry_timer, self);
    for (const char *key = zlistx_first(due); key; key = zlistx_next(due)) {
        jb_task_t *t = zhashx_lookup(self->tasks, key);
        if (t && t->held) {
            t->held = false;
            if (vb_sched_task_release(self->sched, (uint64_t)t->id) != 0)
                VB_LOG_WARN("jobs", "sched error=\"%s\"", vb_error_msg());
        }
        zhashx_delete(self->held, key); /* key is the hash's own: deleted last */
    }
    zlistx_destroy(&due);
    jb_dispatch(self);
    jb_reap(self);
    return 0;
}

/* The task waits `delay` ms before it is queued again. */
static void s_hold(vb_jobs_t *self, jb_task_t *t, int64_t delay)
{
    if (!self->cfg.loop || delay <= 0) {
        if (vb_sched_task_release(self->sched, (uint64_t)t->id) != 0)
            VB_LOG_WARN("jobs", "sched error=\"%s\"", vb_error_msg());
        return;
    }
    char key[24];
    t->held = true;
    t->retry_at = jb_now() + delay;
    zhashx_update(self->held, jb_key(t->id, key), (void *)1);
    zloop_timer(self->cfg.loop, (size_t)delay, 1, s_on_retry_timer, self);
}

static vb_sched_failure_t s_failure_kind(const Vbak__TaskResult *r, int rc)
{
    if (!rc && r->status == VBAK__TASK_STATUS__TASK_STATUS_OPEN_FAILED)
        return VB_SCHED_FAIL_OPEN;
    return !rc && r->permanent ? VB_SCHED_FAIL_PERMANENT : VB_SCHED_FAIL_RUN;
}

/* A failed try of t: the scheduler says fall back, back off or give up; a back-off that would
 * start past the job's retry deadline gives up too. The VM's error is this task's own. */
static void s_task_failed(vb_jobs_t *self, jb_task_t *t, const Vbak__TaskResult *r,
                          const char *why)
{
    char error[1200];
    self->stats.tasks_failed++;
    snprintf(error, sizeof error, "%s", why);
    int rc = r->status == VBAK__TASK_STATUS__TASK_STATUS_OK ? VB_EPROTO : 0;
    vb_sched_failure_t how = s_failure_kind(r, rc);
    vb_sched_verdict_t verdict = VB_SCHED_GIVEN_UP;
    if (vb_sched_task_failed(self->sched, (uint64_t)t->id, how, &verdict) != 0)
        verdict = VB_SCHED_GIVEN_UP;
    int64_t now = jb_now(), delay = 0;
    if (verdict != VB_SCHED_REQUEUED)
        t->failures++;
    /* a route refused for what it is (read-only, wrong certificate): once nothing is left to
     * fall back to, waiting will not change it */
    bool refused = how == VB_SCHED_FAIL_OPEN && r->permanent;
    if (verdict == VB_SCHED_HELD && refused)
        verdict = VB_SCHED_GIVEN_UP; /* its disk's removal (jb_vm_fail) forgets the held task */
    bool late = false;
    if (verdict == VB_SCHED_HELD) {
        delay = jb_backoff(self, self->cfg.retry_delay_ms, t->failures);
        late = self->cfg.retry_deadline_ms &&
               now + delay - t->disk->vm->job->started_ms > (int64_t)self->cfg.retry_deadline_ms;
    }
    int crc = verdict == VB_SCHED_REQUEUED
                  ? vb_catalog_task_requeue(self->cfg.catalog, t->id, error)
                  : vb_catalog_task_fail(self->cfg.catalog, t->id, error,
                                         verdict == VB_SCHED_HELD && !late ? UINT32_MAX : 1, now,
                                         NULL);
    if (crc)
        VB_LOG_WARN("jobs", "catalog error=\"%s\"", vb_error_msg());
    static const char *const verdicts[] = {"fall_back", "given_up", "retry"};
    VB_LOG_WARN("jobs", "task_failed task=%lld agent=%s attempt=%u failures=%u %s retry_ms=%lld "
                "error=\"%s\"", (long long)t->id, t->agent, t->attempt, t->failures,
                late ? "past_deadline" : verdicts[verdict], (long long)delay, error);
    free(t->agent);
    t->agent = NULL;
    jb_disk_t *d = t->disk;
    char msg[1400];
    if (verdict == VB_SCHED_HELD && !late) {
        s_hold(self, t, delay);
        return;
    }
    if (verdict == VB_SCHED_REQUEUED)
        return;
    if (how == VB_SCHED_FAIL_PERMANENT || refused)
        snprintf(msg, sizeof msg, "disk %s: %s (not retried: a retry cannot mend it)", d->inv->key,
                 error);
    else if (late)
        snprintf(msg, sizeof msg,
                 "disk %s: task failed %u times and its job is past its retry deadline: %s",
                 d->inv->key, t->failures, error);
    else
        snprintf(msg, sizeof msg, "disk %s: task failed %u times: %s", d->inv->key, t->failures,
                 error);
    jb_vm_fail(self, d->vm, msg);
}

void vb_jobs_on_result(vb_jobs_t *self, const char *agent, const Vbak__TaskResult *r)
{
    char key[24];
    jb_task_t *t = zhashx_lookup(self->tasks, jb_key((int64_t)r->task_id, key));
    if (!t || !t->agent || !streq(t->agent, agent) || r->attempt != t->attempt) {
        self->dropped++;
        VB_LOG_WARN("jobs", "result_dropped task=%llu agent=%s reason=\"%s\"",
                    (unsigned long long)r->task_id, agent,
                    !t ? "unknown or finished task" : "not this agent's current attempt");
        return;
    }
    if (t->abandoned) { /* its VM ended meanwhile: the agent's slot is free again, nothing else */
        if (vb_sched_task_done(self->sched, (uint64_t)t->id) != 0)
            VB_LOG_DEBUG("jobs", "sched error=\"%s\"", vb_error_msg());
        s_task_forget(self, t);
        jb_dispatch(self);
        jb_reap(self);
        return;
    }
    jb_disk_t *d = t->disk;
    int64_t now = jb_now();
    if (r->status == VBAK__TASK_STATUS__TASK_STATUS_REFUSED) {
        if (vb_sched_task_requeue(self->sched, (uint64_t)t->id) != 0 ||
            vb_catalog_task_requeue(self->cfg.catalog, t->id, r->error) != 0)
            VB_LOG_WARN("jobs", "requeue error=\"%s\"", vb_error_msg());
        free(t->agent);
        t->agent = NULL;
        jb_dispatch(self);
        jb_reap(self);
        return;
    }
    s_record_open(self, t, r);
    int rc = 0;
    bool ok = r->status == VBAK__TASK_STATUS__TASK_STATUS_OK;
    if (ok && t->kind == VB_TASK_MAP)
        rc = s_take_map(self, t, r);
    else if (ok && t->kind == VB_TASK_BACKUP)
        rc = s_take_chunks(self, t, r);
    if (ok && rc == VB_EPROTO) {
        self->dropped++;
        VB_LOG_WARN("jobs", "result_rejected task=%lld agent=%s reason=\"%s\"", (long long)t->id,
                    agent, vb_error_msg());
        ok = false;
    }
    if (ok && !rc) {
        vb_transport_t m = s_route_slot(d, r->transport);
        if (m != VB_TRANSPORT_NONE)
            d->transports_used |= VB_TRANSPORT_BIT(m);
        s_stats_done(self, t, r, now);
        if (vb_catalog_task_complete(self->cfg.catalog, t->id, r->bytes, now))
            VB_LOG_WARN("jobs", "catalog error=\"%s\"", vb_error_msg());
        if (t->kind == VB_TASK_BACKUP) {
            vb_phase_span(&d->vm->times, VB_PHASE_READ, t->dispatched_ms, now);
            d->vm->times.read_bytes += r->bytes;
        }
        if (vb_sched_task_done(self->sched, (uint64_t)t->id) != 0)
            VB_LOG_WARN("jobs", "sched error=\"%s\"", vb_error_msg());
        s_task_forget(self, t);
        d->tasks_left--;
        if (d->tasks_left == 0 && !d->map_pending)
            jb_disk_done(self, d);
        jb_dispatch(self);
        jb_reap(self);
        return;
    }
    s_task_failed(self, t, r, rc ? vb_error_msg() : (r->error && *r->error ? r->error : "failed"));
    jb_dispatch(self);
    jb_reap(self);
}

jb_job_t *jb_job_new(vb_jobs_t *self, int64_t id, vb_job_kind_t kind, vb_inventory_t *inv,
                     size_t nvms)
{
    jb_job_t *job = calloc(1, sizeof *job);
    job->id = id;
    job->kind = kind;
    job->inv = inv;
    job->vms = calloc(nvms ? nvms : 1, sizeof *job->vms);
    job->nvms = job->vms_left = nvms;
    job->engine = self;
    job->started_ms = jb_now();
    char key[24];
    zhashx_insert(self->jobs, jb_key(id, key), job);
    return job;
}

void jb_vmrun_init(jb_job_t *job, jb_vmrun_t *vm, const vb_inv_vm_t *inv)
{
    vm->job = job;
    vm->inv = inv;
    vm->name = strdup(inv->name);
    vm->ndisks = vm->disks_left = inv->disk_count;
    vm->disks = calloc(inv->disk_count ? inv->disk_count : 1, sizeof *vm->disks);
    for (size_t i = 0; i < inv->disk_count; i++) {
        vm->disks[i].vm = vm;
        vm->disks[i].inv = &inv->disks[i];
    }
}

int jb_ready(vb_jobs_t *self)
{
    if (!self->cfg.provider)
        return vb_error_set(VB_EINVAL, "the coordinator has no inventory provider (set site or "
                                       "provider in coordinator.conf)");
    if (!jb_repo(self))
        return vb_error_prefix(vb_error_code() ? vb_error_code() : VB_EIO, "repository");
    return 0;
}

void vb_jobs_lend_inventory(vb_jobs_t *self, vb_inventory_t *inv, int rc, const char *error)
{
    vb_inventory_free(&self->lent_inv);
    free(self->lent_error);
    self->lent_inv = inv;
    self->lent_rc = inv ? 0 : rc;
    self->lent_error = !inv && rc && error ? strdup(error) : NULL;
}

int jb_inventory(vb_jobs_t *self, vb_inventory_t **out)
{
    if (!self->lent_inv && !self->lent_rc)
        return self->cfg.provider->ops->inventory(self->cfg.provider, out);
    int rc = self->lent_rc;
    if (rc)
        vb_error_set(rc, "%s", self->lent_error ? self->lent_error : "the inventory was not read");
    *out = self->lent_inv;
    self->lent_inv = NULL;
    vb_jobs_lend_inventory(self, NULL, 0, NULL);
    return rc;
}

/* ---- progress: the phases of a job ---- */

/* A backup VM goes through these in order; a restore is prepared (snapshots deleted, a new VM
 * created), then runs its restore tasks. */
static const char *const s_backup_phases[] = {"snapshot", "map", "read", "index", "commit"};
static const char *const s_restore_phases[] = {"preparing", "restore"};

/* The phase a running VM is in (an index in s_backup_phases). */
static size_t s_vm_phase(const jb_vmrun_t *vm)
{
    if (vm->prep || !vm->rp_id)
        return 0;
    if (vm->store) /* on a worker: writing the indexes, then the manifest */
        return vm->indexed ? 4 : 3;
    size_t phase = 4;
    for (size_t i = 0; i < vm->ndisks; i++) {
        const jb_disk_t *d = &vm->disks[i];
        size_t p = d->map_pending ? 1 : d->tasks_left ? 2 : !d->done ? 3 : 4;
        phase = p < phase ? p : phase;
    }
    return phase;
}

void vb_jobs_progress_phases(vb_jobs_t *self, int64_t job_id, vb_job_kind_t kind,
                             vb_job_state_t state, json_t *progress)
{
    char key[24];
    const jb_job_t *job = zhashx_lookup(self->jobs, jb_key(job_id, key));
    bool backup = kind == VB_JOB_BACKUP;
    const char *const *names = backup ? s_backup_phases : s_restore_phases;
    size_t n = backup ? 5 : kind == VB_JOB_RESTORE ? 2 : 0;
    size_t now = n; /* n: past the last one, the job ended */
    bool running = state == VB_JOB_RUNNING && job && !job->ended;
    for (size_t v = 0; running && v < job->nvms; v++)
        if (!job->vms[v].finished) {
            size_t p = backup ? s_vm_phase(&job->vms[v]) : job->vms[v].prep ? 0 : 1;
            now = p < now ? p : now;
        }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *st = i < now ? "done" : i == now ? "running" : "pending";
        if (!running)
            st = state == VB_JOB_SUCCEEDED ? "done" : "ended";
        json_array_append_new(arr, json_pack("{s:s, s:s}", "name", names[i], "state", st));
    }
    json_object_set_new(progress, "phase",
                        json_string(running && now < n ? names[now] : vb_job_state_name(state)));
    json_object_set_new(progress, "phases", arr);
}

/* ---- cancel, recovery, explain ---- */

int vb_jobs_cancel(vb_jobs_t *self, int64_t job_id, json_t **result)
{
    char key[24];
    jb_job_t *job = zhashx_lookup(self->jobs, jb_key(job_id, key));
    int rc = vb_catalog_job_request_cancel(self->cfg.catalog, job_id);
    if (rc)
        return rc;
    if (job && !job->ended) {
        /* VMs that ended already keep their outcome (a job waiting only for a snapshot removal
         * attempt is not made cancelled by it) */
        for (size_t i = 0; i < job->nvms; i++)
            job->cancelled |= !job->vms[i].finished;
        for (size_t i = 0; i < job->nvms; i++)
            if (!job->vms[i].finished)
                jb_vm_fail(self, &job->vms[i], "cancelled by the user");
    } else if (vb_catalog_job_finish(self->cfg.catalog, job_id, VB_JOB_CANCELLED,
                                     "cancelled by the user", jb_now()) != 0) {
        return vb_error_code();
    }
    jb_reap(self);
    *result = json_pack("{s:I, s:s}", "job", (json_int_t)job_id, "state", "cancelled");
    return 0;
}

int vb_jobs_recover(vb_jobs_t *self)
{
    vb_snapshot_ref_t *refs = NULL;
    size_t n = 0;
    int rc = vb_catalog_snapshots_outstanding(self->cfg.catalog, &refs, &n);
    /* what earlier runs left on VMs is released like any ended backup: on a thread, retried
     * until done */
    for (size_t i = 0; !rc && self->cfg.provider && i < n; i++) {
        vb_snapshot_ref_t *r = &refs[i];
        const char *which = r->snapshot_id ? r->snapshot_id : r->snapshot_name;
        VB_LOG_INFO("jobs", "recovering job=%lld vm=%s snapshot=%s access=%d",
                    (long long)r->job_id, r->vm, which ? which : "-", r->access_prepared);
        jb_release_queue(self, r->job_id, r->vm, which, r->access_prepared, NULL);
    }
    vb_snapshot_refs_free(&refs, n);
    vb_job_t *jobs = NULL;
    vb_job_filter_t running = {false, VB_JOB_RUNNING, 0};
    if (!rc)
        rc = vb_catalog_jobs_list(self->cfg.catalog, &running, &jobs, &n);
    /* what a user must know of each kind of job the stop cut short */
    static const char *const why[] = {
        [VB_JOB_BACKUP] = "the coordinator stopped while this job ran: no restore point of it "
                          "was kept, and its snapshots are removed",
        [VB_JOB_RESTORE] = "the coordinator stopped while this restore ran: what it wrote is "
                           "incomplete; run the restore again",
        [VB_JOB_VERIFY] = "the coordinator stopped while this verify ran: its restore point was "
                          "no longer kept from prune; verify it again",
        [VB_JOB_PRUNE] = "the coordinator stopped while this prune ran; run it again"};
    for (size_t i = 0; !rc && i < n; i++) {
        vb_job_kind_t kind = jobs[i].kind;
        if (kind == VB_JOB_SERVE)
            continue; /* a lease: the serve renews it across the stop, or it expires */
        const char *error =
            (size_t)kind < sizeof why / sizeof why[0] ? why[kind] : why[VB_JOB_BACKUP];
        if (vb_catalog_job_finish(self->cfg.catalog, jobs[i].id, VB_JOB_FAILED, error,
                                  jb_now()) == 0)
            VB_LOG_WARN("jobs", "recovered_job job=%lld state=failed", (long long)jobs[i].id);
    }
    vb_jobs_free(&jobs, n);
    return rc;
}

int vb_jobs_explain(vb_jobs_t *self, json_t *args, json_t **result)
{
    if (!self->cfg.provider)
        return vb_error_set(VB_EINVAL, "the coordinator has no inventory provider");
    vb_inventory_t *inv = NULL;
    int rc = jb_inventory(self, &inv);
    if (rc)
        return rc;
    vb_agent_facts_t *facts = calloc(self->agent_count + 1, sizeof *facts);
    size_t n = 0;
    for (size_t i = 0; i < self->agent_count; i++)
        if (self->agents[i].online)
            facts[n++] = s_facts(&self->agents[i]);
    vb_explain_request_t req = {0};
    req.vm = json_string_value(json_object_get(args, "vm"));
    req.agent = json_string_value(json_object_get(args, "agent"));
    req.op = json_is_true(json_object_get(args, "restore")) ? VB_OP_RESTORE : VB_OP_BACKUP;
    req.server_version = vb_provider_server_version(self->cfg.provider);
    rc = vb_explain_build(inv, facts, n, &req, result);
    free(facts);
    vb_inventory_free(&inv);
    return rc;
}

void vb_jobs_agent_running(vb_jobs_t *self, const char *agent, const uint64_t *ids, size_t n,
                           uint64_t assigns_received, int64_t grace_ms)
{
    int id = agent ? s_agent_id(self, agent) : -1;
    /* the common case: the agent runs as many tasks as it was given, nothing to look for */
    if (id < 0 || vb_sched_agent_busy(self->sched, (uint32_t)id) <= n)
        return;
    int64_t now = jb_now();
    zlistx_t *lost = zlistx_new();
    zlistx_t *stale = zlistx_new();
    zlistx_set_destructor(stale, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator(stale, (zlistx_duplicator_fn *)strdup);
    /* only tasks sent to agents, not the whole plan: every heartbeat of every agent comes here */
    for (void *v = zhashx_first(self->sent); v; v = zhashx_next(self->sent)) {
        const char *key = zhashx_cursor(self->sent);
        jb_task_t *t = zhashx_lookup(self->tasks, key);
        if (!t || !t->agent) {
            zlistx_add_end(stale, (void *)key);
            continue;
        }
        if (!streq(t->agent, agent) || now - t->dispatched_ms < grace_ms ||
            t->assign_seq > assigns_received)
            continue;
        bool running = false;
        for (size_t i = 0; i < n && !running; i++)
            running = ids[i] == (uint64_t)t->id;
        if (!running)
            zlistx_add_end(lost, t);
    }
    for (const char *key = zlistx_first(stale); key; key = zlistx_next(stale))
        zhashx_delete(self->sent, key);
    zlistx_destroy(&stale);
    for (jb_task_t *t = zlistx_first(lost); t; t = zlistx_next(lost)) {
        VB_LOG_WARN("jobs", "result_lost task=%lld agent=%s action=%s", (long long)t->id, agent,
                    t->abandoned ? "forget" : "run again");
        if (t->abandoned) {
            if (vb_sched_task_done(self->sched, (uint64_t)t->id) != 0)
                VB_LOG_DEBUG("jobs", "sched error=\"%s\"", vb_error_msg());
            s_task_forget(self, t);
            continue;
        }
        if (vb_sched_task_requeue(self->sched, (uint64_t)t->id) != 0 ||
            vb_catalog_task_requeue(self->cfg.catalog, t->id,
                                    "the agent no longer runs it and its result never came") != 0)
            VB_LOG_WARN("jobs", "requeue error=\"%s\"", vb_error_msg());
        free(t->agent);
        t->agent = NULL;
    }
    size_t count = zlistx_size(lost);
    zlistx_destroy(&lost);
    if (count) {
        jb_dispatch(self);
        jb_reap(self);
    }
}
