#include "jobs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <czmq.h>

#include "log.h"
#include "path.h"
#include "plan.h"
#include "policy/explain.h"
#include "policy/transport.h"
#include "repo/index.h"
#include "repo/repo.h"
#include "scheduler.h"
#include "timefmt.h"
#include "wire.h"

typedef struct s_job s_job_t;
typedef struct s_vmrun s_vmrun_t;
typedef struct s_disk s_disk_t;

typedef struct {
    int64_t id; /* catalog task id */
    s_disk_t *disk;
    vb_task_kind_t kind;
    uint64_t offset, length;   /* window */
    vb_extent_t *extents;      /* backup: ranges to read */
    size_t count;
    uint64_t chunks_expected;  /* backup: chunks the ranges touch */
    char *agent;               /* running on; NULL while queued */
    bool abandoned;            /* its VM ended while an agent ran it: waits for the result to free
                                * the agent's slot, then is forgotten (disk is NULL) */
    vb_transport_t transport;
    uint32_t attempt;
    int64_t dispatched_ms;
    uint64_t assign_seq; /* numbers the assign to its agent */
} s_task_t;

struct s_disk {
    s_vmrun_t *vm;
    uint32_t sched_id;
    const vb_inv_disk_t *inv;
    char *routes[VB_TRANSPORT_COUNT]; /* URI per mode (at the snapshot for a backup) */
    char *dest_path;                  /* restore to a new file */
    char *parent_index;               /* incremental: the parent's index name */
    char *change_id;                  /* backup: change ID at the snapshot */
    vb_chunk_result_t *results;
    size_t nresults, cap;
    uint64_t bytes_new;
    unsigned transports_used;         /* VB_TRANSPORT_BIT of modes tasks used */
    vb_index_t *index;                /* restore: the source index */
    size_t tasks_left;
    bool map_pending;
    bool done;
};

struct s_vmrun {
    s_job_t *job;
    const vb_inv_vm_t *inv;
    vb_inv_vm_t own;            /* restore to a directory: the VM as the restore point saw it */
    zactor_t *prep;             /* backup: the snapshot/CBT thread while it runs */
    char *reason;               /* backup: why full or incremental */
    int64_t parent_id;          /* backup: the parent restore point of an incremental */
    char *name;
    int64_t rp_id;
    char *snapshot_id;
    bool access;
    s_disk_t *disks;
    size_t ndisks, disks_left;
    bool finished;
};

struct s_job {
    int64_t id;
    vb_job_kind_t kind;
    vb_inventory_t *inv;
    s_vmrun_t *vms;
    size_t nvms, vms_left;
    size_t vms_failed;
    char *first_error;
    bool cancelled;
    bool to_vm; /* restore into the VM's own disks */
    bool ended; /* finished in the catalog; freed by s_reap at the end of the event */
    vb_jobs_t *engine;
};

typedef struct {
    char *name;
    char *host;
    char *datastore;
    char **luns;
    size_t lun_count;
    unsigned transports;
    bool online;
    uint64_t assign_seq; /* assigns sent to this agent so far */
} s_agent_t;

struct vb_jobs {
    vb_jobs_config_t cfg;
    char *repository, *key_file;
    vb_repo_t *repo;
    vb_sched_t *sched;
    zhashx_t *jobs;  /* "id" -> s_job_t */
    zhashx_t *tasks; /* "id" -> s_task_t */
    zhashx_t *sent;  /* "id" of tasks sent to an agent (may be stale: checked against tasks) */
    s_disk_t **disk_by_sched;
    size_t disk_cap;
    uint32_t next_disk;
    s_agent_t *agents;
    size_t agent_count;
    zhashx_t *places; /* datastore/host name -> id + 1 */
    uint64_t dropped;
};

static void s_dispatch(vb_jobs_t *self);
static void s_reap(vb_jobs_t *self);
static void s_vm_fail(vb_jobs_t *self, s_vmrun_t *vm, const char *error);

static int64_t s_now(void)
{
    return vb_time_now_ms();
}

static const char *s_key(int64_t id, char buf[24])
{
    snprintf(buf, 24, "%lld", (long long)id);
    return buf;
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

static void s_agent_clear(s_agent_t *a)
{
    free(a->host);
    free(a->datastore);
    for (size_t i = 0; i < a->lun_count; i++)
        free(a->luns[i]);
    free(a->luns);
    a->host = a->datastore = NULL;
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
static bool s_keep_unless_abandoned_on(void *item, void *agent)
{
    const s_task_t *t = item;
    return !(t->abandoned && t->agent && streq(t->agent, agent));
}

void vb_jobs_agent_event(void *arg, const vb_agent_record_t *rec, bool online)
{
    vb_jobs_t *self = arg;
    int id = s_agent_id(self, rec->name);
    if (id < 0) {
        if (!online)
            return;
        s_agent_t *grown = realloc(self->agents, (self->agent_count + 1) * sizeof *grown);
        if (!grown)
            return;
        self->agents = grown;
        id = (int)self->agent_count++;
        memset(&self->agents[id], 0, sizeof self->agents[id]);
        self->agents[id].name = strdup(rec->name);
    }
    s_agent_t *a = &self->agents[id];
    if (!online) {
        uint64_t requeued[256];
        size_t n = 0;
        vb_sched_agent_down(self->sched, (uint32_t)id, requeued, 256, &n);
        a->online = false;
        size_t count = 0;
        if (vb_catalog_tasks_requeue_agent(self->cfg.catalog, rec->name,
                                           "the agent was lost; the task runs elsewhere",
                                           &count) != 0)
            VB_LOG_ERROR("jobs", "requeue_failed agent=%s error=\"%s\"", rec->name,
                         vb_error_msg());
        for (size_t i = 0; i < n && i < 256; i++) {
            char key[24];
            s_task_t *t = zhashx_lookup(self->tasks, s_key((int64_t)requeued[i], key));
            if (t) {
                free(t->agent);
                t->agent = NULL;
            }
        }
        if (n)
            VB_LOG_WARN("jobs", "agent_lost agent=%s requeued=%zu", rec->name, n);
        s_hash_filter(self->tasks, s_keep_unless_abandoned_on, (void *)rec->name);
        s_dispatch(self);
        s_reap(self);
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
    a->online = true;
    if (vb_sched_agent_up(self->sched, (uint32_t)id, rec->slots) != 0)
        VB_LOG_ERROR("jobs", "agent_up_failed agent=%s error=\"%s\"", rec->name, vb_error_msg());
    s_dispatch(self);
    s_reap(self);
}

static vb_agent_facts_t s_facts(const s_agent_t *a)
{
    vb_agent_facts_t f = {a->name, a->host, a->datastore, (const char *const *)a->luns,
                          a->lun_count, a->transports};
    return f;
}

/* ---- the transport decision for a disk × agent ---- */

static void s_decide_full(vb_jobs_t *self, const s_disk_t *d, const s_agent_t *a,
                          vb_transport_decision_t *dec)
{
    (void)self;
    vb_agent_facts_t f = s_facts(a);
    vb_transport_input_t in;
    s_job_t *job = d->vm->job;
    vb_explain_input(job->inv, d->vm->inv, d->inv, &f,
                     job->kind == VB_JOB_RESTORE ? VB_OP_RESTORE : VB_OP_BACKUP, &in);
    vb_transport_decide(&in, dec);
}

static size_t s_decide(void *ctx, uint32_t disk, uint32_t agent, vb_transport_t order[4])
{
    vb_jobs_t *self = ctx;
    s_disk_t *d = disk < self->disk_cap ? self->disk_by_sched[disk] : NULL;
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
        if (d->routes[dec.order[i]])
            order[n++] = dec.order[i];
    return n;
}

/* ---- memory ---- */

static void s_task_free(void **item)
{
    s_task_t *t = *item;
    if (!t)
        return;
    free(t->extents);
    free(t->agent);
    free(t);
    *item = NULL;
}

static void s_job_free(void **item)
{
    s_job_t *job = *item;
    if (!job)
        return;
    for (size_t v = 0; v < job->nvms; v++) {
        s_vmrun_t *vm = &job->vms[v];
        for (size_t i = 0; i < vm->ndisks; i++) {
            s_disk_t *d = &vm->disks[i];
            for (int m = 0; m < VB_TRANSPORT_COUNT; m++)
                free(d->routes[m]);
            free(d->dest_path);
            free(d->parent_index);
            free(d->change_id);
            free(d->results);
            vb_index_destroy(&d->index);
        }
        zactor_destroy(&vm->prep);
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
    if (!self->cfg.task_bytes)
        self->cfg.task_bytes = 16u << 20;
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
    if (!self->sched || !self->sent) {
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
    vb_repo_destroy(&self->repo);
    free(self->repository);
    free(self->key_file);
    free(self);
    *self_p = NULL;
}

uint64_t vb_jobs_dropped_results(const vb_jobs_t *self)
{
    return self->dropped;
}

static vb_repo_t *s_repo(vb_jobs_t *self)
{
    if (!self->repo) {
        if (!self->repository) {
            vb_error_set(VB_EINVAL, "the coordinator has no repository configured");
            return NULL;
        }
        self->repo = vb_repo_open(self->repository, self->key_file);
    }
    return self->repo;
}

/* ---- URIs at a snapshot: the lab serves a disk at snapshot S as export "EXPORT@S" ---- */

static char *s_at_snapshot(const char *uri, const char *snapshot)
{
    if (!uri)
        return NULL;
    if (!snapshot)
        return strdup(uri);
    const char *q = strchr(uri, '?');
    size_t head = q ? (size_t)(q - uri) : strlen(uri);
    size_t n = strlen(uri) + strlen(snapshot) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%.*s@%s%s", (int)head, uri, snapshot, q ? q : "");
    return out;
}

static void s_set_routes(s_disk_t *d, const char *snapshot)
{
    d->routes[VB_TRANSPORT_SAN] = s_at_snapshot(d->inv->file_uri, snapshot);
    d->routes[VB_TRANSPORT_HOTADD] = s_at_snapshot(d->inv->file_uri, snapshot);
    d->routes[VB_TRANSPORT_NBDSSL] = s_at_snapshot(d->inv->nbds_uri, snapshot);
    d->routes[VB_TRANSPORT_NBD] = s_at_snapshot(d->inv->nbd_uri, snapshot);
    /* vSphere without an NBD server: the datastore file service (HTTPS, so encrypted) reads the
     * flat file in the NBDSSL slot; s_send_assign names the route "vsfile". Not rewritten at a
     * snapshot: the URI names the file the snapshot froze (disk.h, vsfile). */
    if (!d->routes[VB_TRANSPORT_NBDSSL] && !d->routes[VB_TRANSPORT_NBD] && d->inv->vsfile_uri)
        d->routes[VB_TRANSPORT_NBDSSL] = strdup(d->inv->vsfile_uri);
}

/* The disk-layer mode of a route: the transport's name, or "vsfile" for a file-service URI. */
static const char *s_route_mode(const s_disk_t *d, vb_transport_t m)
{
    if (m == VB_TRANSPORT_NBDSSL && d->routes[m] && strncmp(d->routes[m], "vsfile://", 9) == 0)
        return "vsfile";
    return vb_transport_name(m);
}

static int s_register_disk(vb_jobs_t *self, s_disk_t *d)
{
    uint32_t id = self->next_disk++;
    if (id >= self->disk_cap) {
        size_t cap = self->disk_cap ? self->disk_cap * 2 : 64;
        s_disk_t **grown = realloc(self->disk_by_sched, cap * sizeof *grown);
        if (!grown)
            return vb_error_set(VB_ENOMEM, "out of memory");
        memset(grown + self->disk_cap, 0, (cap - self->disk_cap) * sizeof *grown);
        self->disk_by_sched = grown;
        self->disk_cap = cap;
    }
    self->disk_by_sched[id] = d;
    d->sched_id = id;
    const char *host = d->vm->inv->host;
    return vb_sched_disk_add(self->sched, id, s_place(self, d->inv->datastore),
                             s_place(self, host));
}

static void s_unregister_disk(vb_jobs_t *self, s_disk_t *d)
{
    vb_sched_disk_cancel(self->sched, d->sched_id);
    if (d->sched_id < self->disk_cap)
        self->disk_by_sched[d->sched_id] = NULL;
}

/* ---- tasks ---- */

static uint64_t s_chunks_touched(const vb_extent_t *e, size_t n, uint32_t chunk)
{
    uint64_t count = 0, last = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        uint64_t first = e[i].offset / chunk, end = (e[i].offset + e[i].length - 1) / chunk;
        if (first == last)
            first++;
        if (end >= first)
            count += end - first + 1;
        last = end;
    }
    return count;
}

/* Adds tasks for one disk to the catalog and the scheduler. `plan` may be NULL for a map task. */
static int s_add_tasks(vb_jobs_t *self, s_disk_t *d, vb_task_kind_t kind, vb_plan_task_t *plan,
                       size_t n)
{
    s_job_t *job = d->vm->job;
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
    }
    if (!rc)
        rc = vb_catalog_tasks_add(self->cfg.catalog, job->id, rows, count, ids);
    uint32_t chunk = self->repo ? vb_repo_chunk_size(self->repo) : 0;
    for (size_t i = 0; !rc && i < count; i++) {
        s_task_t *t = calloc(1, sizeof *t);
        t->id = ids[i];
        t->disk = d;
        t->kind = kind;
        t->offset = rows[i].offset;
        t->length = rows[i].length;
        if (plan && kind == VB_TASK_BACKUP) {
            t->extents = plan[i].extents; /* moved */
            t->count = plan[i].count;
            plan[i].extents = NULL;
            t->chunks_expected = s_chunks_touched(t->extents, t->count, chunk);
        }
        char key[24];
        zhashx_insert(self->tasks, s_key(t->id, key), t);
        rc = vb_sched_task_add(self->sched, (uint64_t)t->id, d->sched_id);
        d->tasks_left++;
    }
    free(rows);
    free(ids);
    return rc;
}

static void s_task_forget(vb_jobs_t *self, s_task_t *t)
{
    char key[24];
    zhashx_delete(self->tasks, s_key(t->id, key));
}

static Vbak__Route *s_route(Vbak__Route *r, const char *mode, const char *uri)
{
    vbak__route__init(r);
    r->mode = (char *)mode;
    r->uri = (char *)uri;
    return r;
}

/* Sends a TaskAssign for task t to `agent` with the mode the scheduler chose; the modes the
 * policy allows after it go along as fallbacks the agent tries when the first fails to open. */
static int s_send_assign(vb_jobs_t *self, s_task_t *t, s_agent_t *agent, vb_transport_t mode,
                         uint32_t attempt, char *why, size_t why_size)
{
    s_disk_t *d = t->disk;
    Vbak__TaskAssign a = VBAK__TASK_ASSIGN__INIT;
    Vbak__Route route_store[VB_TRANSPORT_COUNT];
    Vbak__Route *routes[VB_TRANSPORT_COUNT];
    char *fallbacks[VB_TRANSPORT_COUNT];
    Vbak__Extent ext_store[1];
    Vbak__Extent **exts = NULL;
    Vbak__Extent *ext_heap = NULL;
    ProtobufCBinaryData *digests = NULL;
    char uri_file[PATH_MAX + 8];
    a.task_id = (uint64_t)t->id;
    a.job_id = (uint64_t)d->vm->job->id;
    a.assign_seq = t->assign_seq = ++agent->assign_seq;
    a.attempt = attempt;
    a.capacity = d->inv->capacity;
    a.repository = self->repository;
    a.chunk_size = vb_repo_chunk_size(self->repo);
    a.disk_key = d->inv->key;
    char disk_name[256];
    snprintf(disk_name, sizeof disk_name, "%s / %s", d->vm->name, d->inv->name ? d->inv->name : d->inv->key);
    a.disk_name = disk_name;
    a.snapshot = d->vm->snapshot_id ? d->vm->snapshot_id : "";
    a.routes = routes;
    a.fallbacks = fallbacks;
    if (d->dest_path) {
        snprintf(uri_file, sizeof uri_file, "file://%s", d->dest_path);
        routes[0] = s_route(&route_store[0], "file", uri_file);
        a.n_routes = 1;
        a.transport = "file";
        a.create_destination = true;
        snprintf(why, why_size, "restore to a new file %s: any agent may write it", d->dest_path);
    } else {
        vb_transport_decision_t dec;
        s_decide_full(self, d, agent, &dec);
        a.transport = (char *)s_route_mode(d, mode);
        routes[0] = s_route(&route_store[0], s_route_mode(d, mode), d->routes[mode]);
        a.n_routes = 1;
        bool after = false;
        for (size_t i = 0; i < dec.order_count; i++) {
            vb_transport_t m = dec.order[i];
            if (m == mode) {
                after = true;
                continue;
            }
            if (after && d->routes[m]) {
                fallbacks[a.n_fallbacks++] = (char *)s_route_mode(d, m);
                routes[a.n_routes] = s_route(&route_store[a.n_routes], s_route_mode(d, m),
                                             d->routes[m]);
                a.n_routes++;
            }
        }
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
    return rc;
}

static void s_dispatch(vb_jobs_t *self)
{
    vb_sched_assignment_t out[64];
    size_t n;
    while ((n = vb_sched_dispatch(self->sched, out, 64)) > 0) {
        bool txn = !vb_catalog_in_transaction(self->cfg.catalog) &&
                   vb_catalog_begin(self->cfg.catalog) == 0;
        for (size_t i = 0; i < n; i++) {
            char key[24];
            s_task_t *t = zhashx_lookup(self->tasks, s_key((int64_t)out[i].task, key));
            if (!t)
                continue;
            s_agent_t *agent = &self->agents[out[i].agent];
            char why[1024];
            t->transport = out[i].transport;
            t->attempt = out[i].attempt;
            t->dispatched_ms = s_now();
            free(t->agent);
            t->agent = strdup(agent->name);
            zhashx_update(self->sent, key, (void *)1);
            if (s_send_assign(self, t, agent, out[i].transport, out[i].attempt, why, sizeof why))
                VB_LOG_WARN("jobs", "assign_send_failed task=%lld agent=%s error=\"%s\"",
                            (long long)t->id, agent->name, vb_error_msg());
            const char *mode = t->disk->dest_path ? "file" : vb_transport_name(out[i].transport);
            if (vb_catalog_task_claim(self->cfg.catalog, t->id, agent->name, mode, why, s_now()))
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
        s_disk_t *d = stuck[i] < self->disk_cap ? self->disk_by_sched[stuck[i]] : NULL;
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
        s_vm_fail(self, d->vm, err);
    }
}

/* ---- finishing disks, VMs and jobs ---- */

static void s_job_maybe_finish(vb_jobs_t *self, s_job_t *job)
{
    if (job->vms_left > 0)
        return;
    vb_job_state_t state = job->cancelled          ? VB_JOB_CANCELLED
                           : job->vms_failed > 0 ? VB_JOB_FAILED
                                                  : VB_JOB_SUCCEEDED;
    char err[1200] = "";
    if (job->vms_failed && job->nvms > 1)
        snprintf(err, sizeof err, "%zu of %zu VMs failed; first: %s", job->vms_failed, job->nvms,
                 job->first_error);
    else if (job->first_error)
        snprintf(err, sizeof err, "%s", job->first_error);
    if (vb_catalog_job_finish(self->cfg.catalog, job->id, state, err[0] ? err : NULL, s_now()))
        VB_LOG_ERROR("jobs", "finish_failed job=%lld error=\"%s\"", (long long)job->id,
                     vb_error_msg());
    VB_LOG_INFO("jobs", "job_finished job=%lld kind=%s state=%s%s%s", (long long)job->id,
                vb_job_kind_name(job->kind), vb_job_state_name(state), err[0] ? " error=" : "",
                err);
    job->ended = true;
}

static bool s_keep_job(void *item, void *arg)
{
    (void)arg;
    const s_job_t *job = item;
    bool prep = false;
    for (size_t i = 0; i < job->nvms; i++)
        prep |= job->vms[i].prep != NULL;
    return !job->ended || prep;
}

/* Frees jobs that ended during this event (never while their VMs are still being walked, nor
 * while a prep thread of theirs still runs). */
static void s_reap(vb_jobs_t *self)
{
    s_hash_filter(self->jobs, s_keep_job, NULL);
}

/* Undo what a backup did to a VM: EndAccess, remove the snapshot. Errors are logged; the
 * catalog keeps what is outstanding so a later start cleans it. */
static void s_release_vm(vb_jobs_t *self, s_vmrun_t *vm)
{
    vb_provider_t *p = self->cfg.provider;
    if (vm->access && p->ops->end_access) {
        if (p->ops->end_access(p, vm->name) == 0) {
            vm->access = false;
            if (vb_catalog_job_vm_set_access(self->cfg.catalog, vm->job->id, vm->name, false))
                VB_LOG_ERROR("jobs", "catalog error=\"%s\"", vb_error_msg());
        } else {
            VB_LOG_ERROR("jobs", "end_access_failed vm=%s error=\"%s\"", vm->name, vb_error_msg());
        }
    }
    if (vm->snapshot_id) {
        if (p->ops->snapshot_remove(p, vm->name, vm->snapshot_id) == 0) {
            if (vb_catalog_snapshot_removed(self->cfg.catalog, vm->job->id, vm->name))
                VB_LOG_ERROR("jobs", "catalog error=\"%s\"", vb_error_msg());
            free(vm->snapshot_id);
            vm->snapshot_id = NULL;
        } else {
            VB_LOG_ERROR("jobs", "snapshot_remove_failed vm=%s error=\"%s\"", vm->name,
                         vb_error_msg());
        }
    }
}

/* A VM ended: its queued tasks go; those an agent runs are abandoned (they keep the agent's slot
 * until it answers). */
static bool s_keep_or_abandon(void *item, void *vm)
{
    s_task_t *t = item;
    if (t->abandoned || t->disk->vm != vm)
        return true;
    if (!t->agent)
        return false;
    t->abandoned = true;
    t->disk = NULL;
    return true;
}

static void s_vm_end(vb_jobs_t *self, s_vmrun_t *vm, vb_job_state_t state, const char *error)
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
        if (vm->rp_id && vb_catalog_restore_point_discard(self->cfg.catalog, vm->rp_id))
            VB_LOG_WARN("jobs", "discard_failed rp=%lld error=\"%s\"", (long long)vm->rp_id,
                        vb_error_msg());
    }
    if (vm->job->kind == VB_JOB_BACKUP && !vm->prep)
        s_release_vm(self, vm); /* with a prep still running, its reply releases the VM */
    if (vb_catalog_job_vm_finish(self->cfg.catalog, vm->job->id, vm->name, state, error))
        VB_LOG_ERROR("jobs", "vm_finish_failed error=\"%s\"", vb_error_msg());
    VB_LOG_INFO("jobs", "vm_finished job=%lld vm=%s state=%s%s%s", (long long)vm->job->id,
                vm->name, vb_job_state_name(state), error ? " error=" : "", error ? error : "");
    vm->job->vms_left--;
    s_job_maybe_finish(self, vm->job);
}

static void s_vm_fail(vb_jobs_t *self, s_vmrun_t *vm, const char *error)
{
    s_vm_end(self, vm, vm->job->cancelled ? VB_JOB_CANCELLED : VB_JOB_FAILED, error);
}

static int s_index_name(const s_disk_t *d, char *buf, size_t size)
{
    char key[64];
    size_t n = 0;
    for (const char *p = d->inv->key; *p && n < sizeof key - 1; p++)
        key[n++] = (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p)
                    && *p)
                       ? *p
                       : '_';
    key[n] = '\0';
    return vb_pathf(buf, size, "rp%lld-%s", (long long)d->vm->rp_id, key);
}

/* Every chunk of a backup disk is in: write its index (inheriting unchanged chunks from the
 * parent) and record it on the pending restore point. */
static int s_backup_disk_done(vb_jobs_t *self, s_disk_t *d)
{
    vb_repo_t *repo = s_repo(self);
    if (!repo)
        return vb_error_code();
    vb_index_t *parent = NULL, *index = NULL;
    int rc = 0;
    if (d->parent_index && (rc = vb_index_read(repo, d->parent_index, &parent)) != 0)
        return vb_error_prefix(rc, "disk %s: parent index %s", d->inv->key, d->parent_index);
    char name[VB_INDEX_NAME_MAX + 1];
    if (!rc)
        rc = s_index_name(d, name, sizeof name);
    if (!rc)
        rc = vb_index_build(parent, d->parent_index, d->inv->key, d->inv->capacity,
                            vb_repo_chunk_size(repo), d->results, d->nresults, &index);
    if (!rc)
        rc = vb_index_write(repo, name, index);
    uint64_t logical = 0;
    for (uint64_t i = 0; !rc && i < index->count; i++)
        if (!vb_digest_is_zero(&index->digests[i]))
            logical += vb_index_chunk_len(index, i);
    if (!rc) {
        char *modes[VB_TRANSPORT_COUNT + 1];
        size_t nm = 0;
        for (int m = 0; m < VB_TRANSPORT_COUNT; m++)
            if (d->transports_used & VB_TRANSPORT_BIT(m))
                modes[nm++] = (char *)vb_transport_name((vb_transport_t)m);
        vb_rp_disk_t rd = {0};
        rd.key = d->inv->key;
        rd.change_id = d->change_id;
        rd.index_path = name;
        rd.logical_bytes = logical;
        rd.new_bytes = d->bytes_new;
        rd.chunk_count = index->count;
        rd.transports = modes;
        rd.transport_count = nm;
        rc = vb_catalog_restore_point_set_disk(self->cfg.catalog, d->vm->rp_id, &rd);
    }
    vb_index_destroy(&parent);
    vb_index_destroy(&index);
    return rc;
}

/* Storage vMotion during the backup: the release notes say it conflicts with backup. */
static int s_check_svmotion(vb_jobs_t *self, s_vmrun_t *vm, char *err, size_t size)
{
    vb_inventory_t *now = NULL;
    if (self->cfg.provider->ops->inventory(self->cfg.provider, &now) != 0)
        return 0; /* cannot tell; the snapshot read stands */
    const vb_inv_vm_t *cur = vb_inventory_find_vm(now, vm->name);
    int moved = 0;
    for (size_t i = 0; cur && i < vm->ndisks && !moved; i++) {
        const vb_inv_disk_t *was = vm->disks[i].inv;
        for (size_t k = 0; k < cur->disk_count; k++) {
            if (streq(cur->disks[k].key, was->key) && !streq(cur->disks[k].datastore, was->datastore)) {
                snprintf(err, size,
                         "Storage vMotion moved disk %s of %s from %s to %s during the backup; "
                         "the backup was discarded (Storage vMotion conflicts with backup: run it "
                         "again)",
                         was->key, vm->name, was->datastore, cur->disks[k].datastore);
                moved = 1;
                break;
            }
        }
    }
    vb_inventory_free(&now);
    return moved;
}

static void s_vm_maybe_done(vb_jobs_t *self, s_vmrun_t *vm)
{
    if (vm->finished || vm->disks_left > 0)
        return;
    if (vm->job->kind != VB_JOB_BACKUP) {
        s_vm_end(self, vm, VB_JOB_SUCCEEDED, NULL);
        return;
    }
    char err[1024];
    if (s_check_svmotion(self, vm, err, sizeof err)) {
        VB_LOG_WARN("jobs", "svmotion_detected job=%lld vm=%s", (long long)vm->job->id, vm->name);
        s_vm_fail(self, vm, err);
        return;
    }
    s_release_vm(self, vm);
    if (vm->snapshot_id) {
        s_vm_fail(self, vm, "the snapshot could not be removed; the restore point was not kept");
        return;
    }
    if (vb_catalog_restore_point_commit(self->cfg.catalog, vm->rp_id, NULL, 0, s_now()) != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "committing the restore point: %s", vb_error_msg());
        s_vm_fail(self, vm, msg);
        return;
    }
    VB_LOG_INFO("jobs", "restore_point_committed job=%lld vm=%s rp=%lld", (long long)vm->job->id,
                vm->name, (long long)vm->rp_id);
    s_vm_end(self, vm, VB_JOB_SUCCEEDED, NULL);
}

static void s_disk_done(vb_jobs_t *self, s_disk_t *d)
{
    if (d->done)
        return;
    d->done = true;
    if (d->vm->job->kind == VB_JOB_BACKUP && s_backup_disk_done(self, d) != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "disk %s: %s", d->inv->key, vb_error_msg());
        s_vm_fail(self, d->vm, msg);
        return;
    }
    d->vm->disks_left--;
    s_vm_maybe_done(self, d->vm);
}

/* ---- results ---- */

static int s_take_map(vb_jobs_t *self, s_task_t *t, const Vbak__TaskResult *r)
{
    s_disk_t *d = t->disk;
    vb_extent_t *ext = calloc(r->n_allocated ? r->n_allocated : 1, sizeof *ext);
    for (size_t i = 0; i < r->n_allocated; i++)
        ext[i] = (vb_extent_t){r->allocated[i]->offset, r->allocated[i]->length};
    vb_plan_task_t *plan = NULL;
    size_t n = 0;
    int rc = vb_plan_split(ext, r->n_allocated, d->inv->capacity, vb_repo_chunk_size(self->repo),
                           self->cfg.task_bytes, &plan, &n);
    free(ext);
    if (!rc && n)
        rc = s_add_tasks(self, d, VB_TASK_BACKUP, plan, n);
    vb_plan_free(&plan, n);
    d->map_pending = false;
    return rc;
}

/* Checks a backup result against its task: one chunk per chunk the ranges touch, ascending,
 * aligned, each a full digest or a zero marker. */
static int s_take_chunks(vb_jobs_t *self, s_task_t *t, const Vbak__TaskResult *r)
{
    s_disk_t *d = t->disk;
    uint32_t chunk = vb_repo_chunk_size(self->repo);
    if (r->n_chunks != t->chunks_expected)
        return vb_error_set(VB_EPROTO, "result has %zu chunks, the task covers %llu",
                            r->n_chunks, (unsigned long long)t->chunks_expected);
    uint64_t prev = 0;
    for (size_t i = 0; i < r->n_chunks; i++) {
        const Vbak__ChunkRef *c = r->chunks[i];
        if (c->offset % chunk || c->offset < t->offset || c->offset >= t->offset + t->length ||
            (i && c->offset <= prev) || (c->digest.len != 0 && c->digest.len != VB_DIGEST_LEN))
            return vb_error_set(VB_EPROTO, "result chunk %zu (offset %llu) does not fit the task",
                                i, (unsigned long long)c->offset);
        prev = c->offset;
    }
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

void vb_jobs_on_result(vb_jobs_t *self, const char *agent, const Vbak__TaskResult *r)
{
    char key[24];
    s_task_t *t = zhashx_lookup(self->tasks, s_key((int64_t)r->task_id, key));
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
        s_dispatch(self);
        s_reap(self);
        return;
    }
    s_disk_t *d = t->disk;
    int64_t now = s_now();
    if (r->status == VBAK__TASK_STATUS__TASK_STATUS_REFUSED) {
        if (vb_sched_task_requeue(self->sched, (uint64_t)t->id) != 0 ||
            vb_catalog_task_requeue(self->cfg.catalog, t->id, r->error) != 0)
            VB_LOG_WARN("jobs", "requeue error=\"%s\"", vb_error_msg());
        free(t->agent);
        t->agent = NULL;
        s_dispatch(self);
        s_reap(self);
        return;
    }
    if (r->n_failed_opens) {
        char why[2048];
        size_t n = (size_t)snprintf(why, sizeof why, "opened with %s after:", r->transport);
        for (size_t i = 0; i < r->n_failed_opens && n < sizeof why; i++)
            n += (size_t)snprintf(why + n, sizeof why - n, " %s;", r->failed_opens[i]);
        if (vb_catalog_task_set_transport(self->cfg.catalog, t->id, r->transport, why))
            VB_LOG_WARN("jobs", "catalog error=\"%s\"", vb_error_msg());
    }
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
        vb_transport_t m;
        if (r->transport && vb_transport_from_name(r->transport, &m) == 0)
            d->transports_used |= VB_TRANSPORT_BIT(m);
        else if (r->transport && streq(r->transport, "vsfile")) /* the file service: ranked as NBDSSL */
            d->transports_used |= VB_TRANSPORT_BIT(VB_TRANSPORT_NBDSSL);
        if (vb_catalog_task_complete(self->cfg.catalog, t->id, r->bytes, now))
            VB_LOG_WARN("jobs", "catalog error=\"%s\"", vb_error_msg());
        if (vb_sched_task_done(self->sched, (uint64_t)t->id) != 0)
            VB_LOG_WARN("jobs", "sched error=\"%s\"", vb_error_msg());
        s_task_forget(self, t);
        d->tasks_left--;
        if (d->tasks_left == 0 && !d->map_pending)
            s_disk_done(self, d);
        s_dispatch(self);
        s_reap(self);
        return;
    }
    /* failed: retry (falling back to the next transport after a failed open) or give up */
    char error[1200];
    snprintf(error, sizeof error, "%s", rc ? vb_error_msg() : (r->error && *r->error ? r->error : "failed"));
    bool open_failed = r->status == VBAK__TASK_STATUS__TASK_STATUS_OPEN_FAILED;
    vb_sched_verdict_t verdict = VB_SCHED_GIVEN_UP;
    if (vb_sched_task_failed(self->sched, (uint64_t)t->id, open_failed, &verdict) != 0)
        verdict = VB_SCHED_GIVEN_UP;
    vb_task_state_t state;
    if (vb_catalog_task_fail(self->cfg.catalog, t->id, error,
                             verdict == VB_SCHED_GIVEN_UP ? 1 : self->cfg.max_attempts, now,
                             &state))
        VB_LOG_WARN("jobs", "catalog error=\"%s\"", vb_error_msg());
    VB_LOG_WARN("jobs", "task_failed task=%lld agent=%s attempt=%u %s error=\"%s\"",
                (long long)t->id, agent, t->attempt,
                verdict == VB_SCHED_GIVEN_UP ? "given_up" : "retry", error);
    free(t->agent);
    t->agent = NULL;
    if (verdict == VB_SCHED_GIVEN_UP) {
        char msg[1400];
        snprintf(msg, sizeof msg, "disk %s: task failed %u times: %s", d->inv->key, t->attempt,
                 error);
        s_vm_fail(self, d->vm, msg);
    }
    s_dispatch(self);
    s_reap(self);
}

/* ---- starting a backup ---- */

/* Can VM be backed up incrementally from its newest restore point? Fills `parent` (caller
 * clears) and returns true, or false with the reason for a full backup. */
static bool s_parent_usable(vb_jobs_t *self, s_vmrun_t *vm, bool full, vb_restore_point_t *parent,
                            char *reason, size_t size)
{
    if (full) {
        snprintf(reason, size, "a full backup was asked for");
        return false;
    }
    if (vb_catalog_restore_point_latest(self->cfg.catalog, vm->name, 0, parent) != 0) {
        snprintf(reason, size, "no earlier restore point of %s", vm->name);
        return false;
    }
    for (size_t i = 0; i < vm->ndisks; i++) {
        const vb_inv_disk_t *disk = vm->disks[i].inv;
        const vb_rp_disk_t *was = NULL;
        for (size_t k = 0; k < parent->disk_count; k++)
            if (streq(parent->disks[k].key, disk->key))
                was = &parent->disks[k];
        if (!was)
            snprintf(reason, size, "disk %s is new since restore point %lld", disk->key,
                     (long long)parent->id);
        else if (was->capacity != disk->capacity)
            snprintf(reason, size, "disk %s changed size since restore point %lld", disk->key,
                     (long long)parent->id);
        else if (!was->change_id || !*was->change_id || !was->index_path)
            snprintf(reason, size, "restore point %lld has no change ID for disk %s",
                     (long long)parent->id, disk->key);
        else
            continue;
        return false;
    }
    snprintf(reason, size, "changes since restore point %lld", (long long)parent->id);
    return true;
}

static int s_on_prep(zloop_t *loop, zsock_t *reader, void *arg);

/* Phase one of a VM's backup, on this thread: the snapshot intent goes to the catalog BEFORE the
 * snapshot is made (a crash can then always clean it up), then the prep thread runs. */
static int s_backup_vm_start(vb_jobs_t *self, s_vmrun_t *vm, bool full)
{
    vb_provider_t *p = self->cfg.provider;
    char name[64], who[64];
    snprintf(name, sizeof name, "vbak-%lld", (long long)vm->job->id);
    snprintf(who, sizeof who, "vbak job %lld", (long long)vm->job->id);
    int rc = vb_catalog_snapshot_intent(self->cfg.catalog, vm->job->id, vm->name, name);
    if (!rc && p->ops->prepare_for_access)
        rc = vb_catalog_job_vm_set_access(self->cfg.catalog, vm->job->id, vm->name, true);
    if (rc)
        return rc;
    vb_restore_point_t parent = {0};
    char reason[512];
    bool incremental = s_parent_usable(self, vm, full, &parent, reason, sizeof reason);
    vm->reason = strdup(reason);
    vb_prep_request_t *req = calloc(1, sizeof *req);
    req->vm = strdup(vm->name);
    req->snapshot_name = strdup(name);
    req->who = strdup(who);
    req->ndisks = vm->ndisks;
    req->incremental = incremental;
    req->disk_keys = calloc(vm->ndisks ? vm->ndisks : 1, sizeof *req->disk_keys);
    req->parent_change_ids = calloc(vm->ndisks ? vm->ndisks : 1, sizeof *req->parent_change_ids);
    for (size_t i = 0; i < vm->ndisks; i++) {
        s_disk_t *d = &vm->disks[i];
        req->disk_keys[i] = strdup(d->inv->key);
        for (size_t k = 0; incremental && k < parent.disk_count; k++)
            if (streq(parent.disks[k].key, d->inv->key)) {
                req->parent_change_ids[i] = strdup(parent.disks[k].change_id);
                d->parent_index = strdup(parent.disks[k].index_path);
            }
    }
    vm->parent_id = incremental ? parent.id : 0;
    vb_restore_point_clear(&parent);
    vm->prep = vb_prep_start(req, self->cfg.provider_factory, self->cfg.factory_ctx);
    if (!vm->prep)
        return vb_error_code();
    zloop_reader(self->cfg.loop, (zsock_t *)vm->prep, s_on_prep, vm);
    return 0;
}

/* Phase two, when the prep thread is done: record the snapshot, plan the disks, queue tasks. */
static int s_backup_vm_plan(vb_jobs_t *self, s_vmrun_t *vm, vb_prep_result_t *res)
{
    bool incremental = res->incremental;
    const char *reason = incremental || !res->full_reason ? vm->reason : res->full_reason;
    vb_rp_kind_t mode = incremental ? VB_RP_INCREMENTAL : VB_RP_FULL;
    int rc = vb_catalog_job_vm_set_mode(self->cfg.catalog, vm->job->id, vm->name, mode, reason);
    vb_rp_disk_t *rd = calloc(vm->ndisks ? vm->ndisks : 1, sizeof *rd);
    for (size_t i = 0; i < vm->ndisks; i++) {
        s_disk_t *d = &vm->disks[i];
        d->change_id = res->change_ids[i];
        res->change_ids[i] = NULL;
        if (!incremental) {
            free(d->parent_index);
            d->parent_index = NULL;
        }
        rd[i].key = d->inv->key;
        rd[i].name = d->inv->name;
        rd[i].datastore = d->inv->datastore;
        rd[i].capacity = d->inv->capacity;
        rd[i].change_id = d->change_id;
    }
    vb_restore_point_t rp = {0};
    rp.vm = vm->name;
    rp.is_fcd = vm->inv->is_fcd;
    rp.job_id = vm->job->id;
    rp.created = s_now();
    rp.kind = mode;
    rp.parent_id = incremental ? vm->parent_id : 0;
    rp.disks = rd;
    rp.disk_count = vm->ndisks;
    if (!rc)
        rc = vb_catalog_restore_point_create(self->cfg.catalog, &rp, &vm->rp_id);
    free(rd);
    VB_LOG_INFO("jobs", "backup_planned job=%lld vm=%s mode=%s reason=\"%s\" rp=%lld",
                (long long)vm->job->id, vm->name, vb_rp_kind_name(mode), reason,
                (long long)vm->rp_id);
    uint32_t chunk = vb_repo_chunk_size(self->repo);
    for (size_t i = 0; !rc && i < vm->ndisks; i++) {
        s_disk_t *d = &vm->disks[i];
        s_set_routes(d, vm->snapshot_id);
        if ((rc = s_register_disk(self, d)) != 0)
            break;
        if (!incremental) {
            d->map_pending = true;
            rc = s_add_tasks(self, d, VB_TASK_MAP, NULL, 0);
        } else {
            vb_plan_task_t *plan = NULL;
            size_t n = 0;
            rc = vb_plan_split(res->areas[i].items, res->areas[i].count, d->inv->capacity, chunk,
                               self->cfg.task_bytes, &plan, &n);
            if (!rc && n)
                rc = s_add_tasks(self, d, VB_TASK_BACKUP, plan, n);
            vb_plan_free(&plan, n);
        }
    }
    /* disks with nothing to read (no change since the parent) are done at once */
    for (size_t i = 0; !rc && i < vm->ndisks && !vm->finished; i++)
        if (vm->disks[i].tasks_left == 0 && !vm->disks[i].map_pending)
            s_disk_done(self, &vm->disks[i]);
    return rc;
}

static int s_on_prep(zloop_t *loop, zsock_t *reader, void *arg)
{
    s_vmrun_t *vm = arg;
    vb_jobs_t *self = vm->job->engine;
    vb_prep_result_t *res = vb_prep_receive(vm->prep);
    zloop_reader_end(loop, reader);
    zactor_destroy(&vm->prep);
    if (!res)
        res = calloc(1, sizeof *res), res->rc = VB_EIO, res->error = strdup("the prep thread died");
    if (res->snapshot_id) {
        vm->snapshot_id = strdup(res->snapshot_id);
        if (vb_catalog_snapshot_created(self->cfg.catalog, vm->job->id, vm->name, vm->snapshot_id))
            VB_LOG_ERROR("jobs", "catalog error=\"%s\"", vb_error_msg());
    }
    vm->access = res->access;
    if (!res->access && self->cfg.provider->ops->prepare_for_access &&
        vb_catalog_job_vm_set_access(self->cfg.catalog, vm->job->id, vm->name, false))
        VB_LOG_ERROR("jobs", "catalog error=\"%s\"", vb_error_msg());
    if (vm->finished) /* cancelled while the snapshot was being made */
        s_release_vm(self, vm);
    else if (res->rc)
        s_vm_fail(self, vm, res->error);
    else if (s_backup_vm_plan(self, vm, res) != 0 && !vm->finished)
        s_vm_fail(self, vm, vb_error_msg());
    vb_prep_result_free(&res);
    s_dispatch(self);
    s_reap(self);
    return 0;
}

static s_job_t *s_job_new(vb_jobs_t *self, int64_t id, vb_job_kind_t kind, vb_inventory_t *inv,
                          size_t nvms)
{
    s_job_t *job = calloc(1, sizeof *job);
    job->id = id;
    job->kind = kind;
    job->inv = inv;
    job->vms = calloc(nvms ? nvms : 1, sizeof *job->vms);
    job->nvms = job->vms_left = nvms;
    job->engine = self;
    char key[24];
    zhashx_insert(self->jobs, s_key(id, key), job);
    return job;
}

static void s_vmrun_init(s_job_t *job, s_vmrun_t *vm, const vb_inv_vm_t *inv)
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

static int s_ready(vb_jobs_t *self)
{
    if (!self->cfg.provider)
        return vb_error_set(VB_EINVAL, "the coordinator has no inventory provider (set site or "
                                       "provider in coordinator.conf)");
    if (!s_repo(self))
        return vb_error_prefix(vb_error_code() ? vb_error_code() : VB_EIO, "repository");
    return 0;
}

int vb_jobs_backup(vb_jobs_t *self, json_t *args, json_t **result)
{
    int rc = s_ready(self);
    if (rc)
        return rc;
    vb_inventory_t *inv = NULL;
    if ((rc = self->cfg.provider->ops->inventory(self->cfg.provider, &inv)) != 0)
        return vb_error_prefix(rc, "inventory");
    bool all = json_is_true(json_object_get(args, "all"));
    json_t *names = json_object_get(args, "vms");
    json_t *fcds = json_object_get(args, "fcds");
    const vb_inv_vm_t **pick = calloc(inv->vm_count + 1, sizeof *pick);
    size_t n = 0;
    for (size_t i = 0; all && i < inv->vm_count; i++)
        if (!inv->vms[i].is_fcd)
            pick[n++] = &inv->vms[i];
    size_t idx;
    json_t *v;
    json_t *lists[2] = {names, fcds};
    for (int l = 0; !rc && l < 2; l++) {
        json_array_foreach(lists[l], idx, v) {
            const char *name = json_string_value(v);
            const vb_inv_vm_t *vm = name ? vb_inventory_find_vm(inv, name) : NULL;
            if (!vm || vm->is_fcd != (l == 1)) {
                rc = vb_error_set(VB_ENOTFOUND, "%s '%s' is not in the inventory",
                                  l ? "First Class Disk" : "VM", name ? name : "?");
                break;
            }
            bool dup = false;
            for (size_t k = 0; k < n; k++)
                dup |= pick[k] == vm;
            if (!dup && n < inv->vm_count)
                pick[n++] = vm;
        }
    }
    if (!rc && n == 0)
        rc = vb_error_set(VB_EINVAL, "nothing to back up: name VMs, --fcd NAME or --all");
    vb_job_t row = {0};
    int64_t id = 0;
    if (!rc) {
        row.kind = VB_JOB_BACKUP;
        row.full = json_is_true(json_object_get(args, "full"));
        row.started = s_now();
        row.vms = calloc(n, sizeof *row.vms);
        row.vm_count = n;
        for (size_t i = 0; i < n; i++) {
            row.vms[i].vm = pick[i]->name;
            row.vms[i].is_fcd = pick[i]->is_fcd;
        }
        rc = vb_catalog_job_create(self->cfg.catalog, &row, &id);
        free(row.vms);
    }
    if (rc) {
        free(pick);
        vb_inventory_free(&inv);
        return rc;
    }
    s_job_t *job = s_job_new(self, id, VB_JOB_BACKUP, inv, n);
    for (size_t i = 0; i < n; i++)
        s_vmrun_init(job, &job->vms[i], pick[i]);
    free(pick);
    VB_LOG_INFO("jobs", "backup_started job=%lld vms=%zu full=%d", (long long)id, n, row.full);
    *result = json_pack("{s:I}", "job", (json_int_t)id);
    for (size_t i = 0; i < n; i++) {
        s_vmrun_t *vm = &job->vms[i];
        if (s_backup_vm_start(self, vm, row.full) != 0 && !vm->finished)
            s_vm_fail(self, vm, vb_error_msg());
    }
    s_dispatch(self);
    s_reap(self);
    return 0;
}

/* ---- restores ---- */

static bool s_window_all_holes(const vb_index_t *index, uint64_t offset, uint64_t length)
{
    uint64_t first = offset / index->chunk_size;
    uint64_t last = (offset + length + index->chunk_size - 1) / index->chunk_size;
    for (uint64_t i = first; i < last && i < index->count; i++)
        if (!vb_digest_is_zero(&index->digests[i]))
            return false;
    return true;
}

static int s_restore_plan_disk(vb_jobs_t *self, s_disk_t *d, bool skip_holes)
{
    vb_plan_task_t *plan = NULL;
    size_t n = 0;
    int rc = vb_plan_windows(d->index->capacity, d->index->chunk_size, self->cfg.task_bytes, &plan,
                             &n);
    size_t keep = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        if (skip_holes && s_window_all_holes(d->index, plan[i].offset, plan[i].length)) {
            free(plan[i].extents);
            continue;
        }
        plan[keep++] = plan[i];
    }
    if (!rc && keep)
        rc = s_add_tasks(self, d, VB_TASK_RESTORE, plan, keep);
    vb_plan_free(&plan, keep);
    return rc;
}

/* Which VM restore may go into: refused while it has snapshots (snapshot contention), unless
 * the user asked to delete them first. */
static int s_check_target_vm(vb_jobs_t *self, const char *vm_name, bool delete_snapshots,
                             vb_inventory_t **inv)
{
    const vb_inv_vm_t *vm = vb_inventory_find_vm(*inv, vm_name);
    if (!vm)
        return vb_error_set(VB_ENOTFOUND, "VM %s is not in the inventory (restore it to a "
                                          "directory instead)", vm_name);
    if (vm->snapshot_count == 0)
        return 0;
    if (!delete_snapshots)
        return vb_error_set(VB_EPOLICY,
                            "VM %s has %zu snapshot(s) (first: %s); restoring into a VM with "
                            "snapshots is refused: the restore would contend with the snapshot "
                            "(VDDK best practice). Delete the snapshots (--delete-snapshots) or "
                            "restore to a new location (--to-dir)",
                            vm_name, vm->snapshot_count, vm->snapshots[0]);
    vb_provider_t *p = self->cfg.provider;
    for (size_t i = 0; i < vm->snapshot_count; i++) {
        int rc = p->ops->snapshot_remove(p, vm_name, vm->snapshots[i]);
        if (rc)
            return vb_error_prefix(rc, "deleting snapshot %s of %s", vm->snapshots[i], vm_name);
        VB_LOG_INFO("jobs", "snapshot_deleted vm=%s snapshot=%s (asked by --delete-snapshots)",
                    vm_name, vm->snapshots[i]);
    }
    vb_inventory_free(inv);
    return p->ops->inventory(p, inv);
}

static void s_own_vm(s_vmrun_t *vm, const vb_restore_point_t *rp)
{
    vm->own.name = strdup(rp->vm);
    vm->own.host = strdup("");
    vm->own.is_fcd = rp->is_fcd;
    vm->own.disks = calloc(rp->disk_count ? rp->disk_count : 1, sizeof *vm->own.disks);
    vm->own.disk_count = rp->disk_count;
    for (size_t i = 0; i < rp->disk_count; i++) {
        vm->own.disks[i].key = strdup(rp->disks[i].key);
        vm->own.disks[i].name = strdup(rp->disks[i].name ? rp->disks[i].name : rp->disks[i].key);
        vm->own.disks[i].datastore = strdup(rp->disks[i].datastore ? rp->disks[i].datastore : "");
        vm->own.disks[i].capacity = rp->disks[i].capacity;
    }
}

static int s_dest_path(const char *dir, const char *vm, const char *key, char *buf, size_t size)
{
    char safe[200];
    size_t n = 0;
    for (const char *p = vm; *p && n < 120; p++)
        safe[n++] = (*p == '/' || *p == ' ') ? '_' : *p;
    safe[n++] = '-';
    for (const char *p = key; *p && n < sizeof safe - 1; p++)
        safe[n++] = *p == '/' ? '_' : *p;
    safe[n] = '\0';
    return vb_pathf(buf, size, "%s/%s.raw", dir, safe);
}

/* Restore to a new VM: creates VM `name` through the provider with one empty disk per disk of
 * the restore point (same keys, names and capacities) on `datastore` (NULL: the datastore of the
 * restore point's first disk), then re-reads the inventory into *inv. An encrypted source disk
 * becomes a plain disk holding its plaintext; `notes` gets a line saying so. */
static int s_create_new_vm(vb_jobs_t *self, const vb_restore_point_t *rp, vb_index_t **indexes,
                           const char *name, const char *datastore, vb_inventory_t **inv,
                           json_t *notes)
{
    vb_provider_t *p = self->cfg.provider;
    if (!p->ops->create_vm)
        return vb_error_set(VB_EUNSUPPORTED, "restore to a new VM: creating a VM is not "
                                             "supported by this provider (%s)", p->ops->name);
    if (vb_inventory_find_vm(*inv, name))
        return vb_error_set(VB_EEXISTS, "a VM or FCD named %s exists already; choose another "
                                        "name for the new VM (or restore into it with --to-vm)",
                            name);
    if (!datastore)
        datastore = rp->disk_count ? rp->disks[0].datastore : NULL;
    if (!datastore || !datastore[0])
        return vb_error_set(VB_EINVAL, "restore point %lld does not say which datastore its disks "
                                       "were on: name one with --datastore",
                            (long long)rp->id);
    vb_inv_new_disk_t *disks = calloc(rp->disk_count ? rp->disk_count : 1, sizeof *disks);
    if (!disks)
        return vb_error_set(VB_ENOMEM, "out of memory");
    const vb_inv_vm_t *src = vb_inventory_find_vm(*inv, rp->vm);
    for (size_t i = 0; i < rp->disk_count; i++) {
        disks[i].key = rp->disks[i].key;
        disks[i].name = rp->disks[i].name;
        disks[i].capacity = indexes[i] ? indexes[i]->capacity : rp->disks[i].capacity;
        for (size_t k = 0; src && k < src->disk_count; k++) {
            if (!src->disks[k].encrypted || !streq(src->disks[k].key, rp->disks[i].key))
                continue;
            char note[512];
            snprintf(note, sizeof note, "disk %s of %s is encrypted: the new VM's disk is a plain "
                                        "disk holding its plaintext (encrypt it in vSphere if "
                                        "it must stay encrypted)", rp->disks[i].key, rp->vm);
            json_array_append_new(notes, json_string(note));
        }
    }
    int rc = p->ops->create_vm(p, name, NULL, datastore, disks, rp->disk_count);
    free(disks);
    if (rc)
        return vb_error_prefix(rc, "restore to a new VM");
    VB_LOG_INFO("jobs", "vm_created vm=\"%s\" datastore=\"%s\" disks=%zu from_rp=%lld", name,
                datastore, rp->disk_count, (long long)rp->id);
    vb_inventory_free(inv);
    if ((rc = p->ops->inventory(p, inv)) != 0)
        return vb_error_prefix(rc, "inventory after creating VM %s", name);
    if (!vb_inventory_find_vm(*inv, name))
        return vb_error_set(VB_ENOTFOUND, "VM %s was created but is not in the inventory", name);
    return 0;
}

int vb_jobs_restore(vb_jobs_t *self, json_t *args, json_t **result)
{
    int rc = s_ready(self);
    if (rc)
        return rc;
    json_int_t rp_id = json_integer_value(json_object_get(args, "rp"));
    const char *to_dir = json_string_value(json_object_get(args, "to_dir"));
    bool to_vm = json_is_true(json_object_get(args, "to_vm"));
    bool delete_snapshots = json_is_true(json_object_get(args, "delete_snapshots"));
    const char *new_vm = json_string_value(json_object_get(args, "new_vm"));
    const char *datastore = json_string_value(json_object_get(args, "datastore"));
    if (!!to_dir + to_vm + !!new_vm != 1)
        return vb_error_set(VB_EINVAL,
                            "say where to restore: one of --to-dir DIR, --to-vm, --new-vm NAME");
    if (datastore && !new_vm)
        return vb_error_set(VB_EINVAL, "--datastore goes with --new-vm");
    if (to_dir && to_dir[0] != '/')
        return vb_error_set(VB_EINVAL, "--to-dir needs an absolute path");
    vb_restore_point_t rp = {0};
    if ((rc = vb_catalog_restore_point_get(self->cfg.catalog, rp_id, &rp)) != 0)
        return vb_error_set(rc, "restore point %lld does not exist", (long long)rp_id);
    vb_inventory_t *inv = NULL;
    json_t *notes = json_array();
    vb_index_t **indexes = calloc(rp.disk_count ? rp.disk_count : 1, sizeof *indexes);
    char **dests = calloc(rp.disk_count ? rp.disk_count : 1, sizeof *dests);
    rc = self->cfg.provider->ops->inventory(self->cfg.provider, &inv);
    if (!rc && to_vm)
        rc = s_check_target_vm(self, rp.vm, delete_snapshots, &inv);
    const char *target_name = new_vm ? new_vm : rp.vm;
    const vb_inv_vm_t *target = !rc && to_vm ? vb_inventory_find_vm(inv, target_name) : NULL;
    if (!rc && to_dir && mkdir(to_dir, 0755) != 0 && errno != EEXIST)
        rc = vb_error_set(VB_EIO, "cannot make %s: %s", to_dir, strerror(errno));
    for (size_t i = 0; !rc && i < rp.disk_count; i++) {
        const vb_rp_disk_t *rd = &rp.disks[i];
        if ((rc = vb_index_read(self->repo, rd->index_path, &indexes[i])) != 0) {
            vb_error_prefix(rc, "disk %s", rd->key);
            break;
        }
        if (to_dir) {
            char path[PATH_MAX];
            if ((rc = s_dest_path(to_dir, rp.vm, rd->key, path, sizeof path)) != 0)
                break;
            if (access(path, F_OK) == 0) {
                rc = vb_error_set(VB_EEXISTS, "%s exists; remove it or restore elsewhere", path);
                break;
            }
            dests[i] = strdup(path);
        } else if (target) {
            bool found = false;
            for (size_t k = 0; k < target->disk_count; k++)
                if (streq(target->disks[k].key, rd->key)) {
                    found = true;
                    if (target->disks[k].capacity < indexes[i]->capacity)
                        rc = vb_error_set(VB_EINVAL, "disk %s of %s is smaller now (%llu bytes) "
                                                     "than in the restore point (%llu)",
                                          rd->key, target_name,
                                          (unsigned long long)target->disks[k].capacity,
                                          (unsigned long long)indexes[i]->capacity);
                }
            if (!found && !rc)
                rc = vb_error_set(VB_ENOTFOUND, "VM %s has no disk %s any more", target_name,
                                  rd->key);
        }
    }
    /* The new VM is made once every index has been read: a restore that cannot run leaves none. */
    if (!rc && new_vm)
        rc = s_create_new_vm(self, &rp, indexes, new_vm, datastore, &inv, notes);
    int64_t id = 0;
    if (!rc) {
        vb_job_t row = {0};
        vb_job_vm_t jv = {0};
        jv.vm = new_vm ? (char *)new_vm : rp.vm;
        jv.is_fcd = rp.is_fcd && !new_vm;
        jv.restore_point_id = rp.id;
        row.kind = VB_JOB_RESTORE;
        row.started = s_now();
        row.vms = &jv;
        row.vm_count = 1;
        char opts[PATH_MAX + 64];
        snprintf(opts, sizeof opts, "{\"to\": \"%s\"}", to_dir ? "dir" : "vm");
        json_t *o = new_vm ? json_pack("{s:s, s:s, s:O}", "to", "new-vm", "vm", new_vm, "notes",
                                       notes)
                           : NULL;
        char *new_opts = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        row.options = new_opts ? new_opts : opts;
        rc = vb_catalog_job_create(self->cfg.catalog, &row, &id);
        free(new_opts);
    }
    if (!rc) {
        s_job_t *job = s_job_new(self, id, VB_JOB_RESTORE, inv, 1);
        inv = NULL;
        job->to_vm = to_vm; /* write_zeros: a new VM's disks read as zeros already */
        s_vmrun_t *vm = &job->vms[0];
        if (!to_dir) {
            s_vmrun_init(job, vm, vb_inventory_find_vm(job->inv, target_name));
        } else {
            s_own_vm(vm, &rp);
            s_vmrun_init(job, vm, &vm->own);
        }
        vm->ndisks = vm->disks_left = rp.disk_count;
        for (size_t i = 0; i < rp.disk_count && !rc; i++) {
            s_disk_t *d = &vm->disks[i];
            for (size_t k = 0; k < vm->inv->disk_count; k++)
                if (streq(vm->inv->disks[k].key, rp.disks[i].key))
                    d->inv = &vm->inv->disks[k];
            d->index = indexes[i];
            indexes[i] = NULL;
            d->dest_path = dests[i];
            dests[i] = NULL;
            if (!to_dir)
                s_set_routes(d, NULL);
            if (!(rc = s_register_disk(self, d)))
                rc = s_restore_plan_disk(self, d, !to_vm);
        }
        *result = json_pack("{s:I}", "job", (json_int_t)id);
        if (new_vm)
            json_object_set_new(*result, "new_vm", json_pack("{s:s, s:O}", "name", new_vm,
                                                             "notes", notes));
        VB_LOG_INFO("jobs", "restore_started job=%lld rp=%lld vm=%s to=%s", (long long)id,
                    (long long)rp.id, rp.vm,
                    to_dir ? to_dir : new_vm ? new_vm : "the VM");
        for (size_t i = 0; !rc && i < vm->ndisks && !vm->finished; i++)
            if (vm->disks[i].tasks_left == 0)
                s_disk_done(self, &vm->disks[i]);
        if (rc && !vm->finished)
            s_vm_fail(self, vm, vb_error_msg());
        rc = 0;
    }
    for (size_t i = 0; i < rp.disk_count; i++) {
        vb_index_destroy(&indexes[i]);
        free(dests[i]);
    }
    free(indexes);
    free(dests);
    json_decref(notes);
    vb_inventory_free(&inv);
    vb_restore_point_clear(&rp);
    s_dispatch(self);
    s_reap(self);
    return rc;
}

vb_provider_t *vb_jobs_provider(vb_jobs_t *self)
{
    return self->cfg.provider;
}

/* ---- cancel, recovery, explain ---- */

int vb_jobs_cancel(vb_jobs_t *self, int64_t job_id, json_t **result)
{
    char key[24];
    s_job_t *job = zhashx_lookup(self->jobs, s_key(job_id, key));
    int rc = vb_catalog_job_request_cancel(self->cfg.catalog, job_id);
    if (rc)
        return rc;
    if (job && !job->ended) {
        job->cancelled = true;
        for (size_t i = 0; i < job->nvms; i++)
            if (!job->vms[i].finished)
                s_vm_fail(self, &job->vms[i], "cancelled by the user");
    } else if (vb_catalog_job_finish(self->cfg.catalog, job_id, VB_JOB_CANCELLED,
                                     "cancelled by the user", s_now()) != 0) {
        return vb_error_code();
    }
    s_reap(self);
    *result = json_pack("{s:I, s:s}", "job", (json_int_t)job_id, "state", "cancelled");
    return 0;
}

int vb_jobs_recover(vb_jobs_t *self)
{
    vb_snapshot_ref_t *refs = NULL;
    size_t n = 0;
    int rc = vb_catalog_snapshots_outstanding(self->cfg.catalog, &refs, &n);
    vb_provider_t *p = self->cfg.provider;
    for (size_t i = 0; !rc && p && i < n; i++) {
        vb_snapshot_ref_t *r = &refs[i];
        if (r->access_prepared && p->ops->end_access && p->ops->end_access(p, r->vm) == 0 &&
            vb_catalog_job_vm_set_access(self->cfg.catalog, r->job_id, r->vm, false) == 0)
            VB_LOG_INFO("jobs", "recovered_access job=%lld vm=%s", (long long)r->job_id, r->vm);
        if (!r->snapshot_name)
            continue;
        const char *which = r->snapshot_id ? r->snapshot_id : r->snapshot_name;
        int removed = p->ops->snapshot_remove(p, r->vm, which);
        if (removed == 0 || removed == VB_ENOTFOUND) {
            if (vb_catalog_snapshot_removed(self->cfg.catalog, r->job_id, r->vm) == 0)
                VB_LOG_INFO("jobs", "recovered_snapshot job=%lld vm=%s snapshot=%s",
                            (long long)r->job_id, r->vm, r->snapshot_name);
        } else {
            VB_LOG_ERROR("jobs", "snapshot_cleanup_failed job=%lld vm=%s error=\"%s\"",
                         (long long)r->job_id, r->vm, vb_error_msg());
        }
    }
    vb_snapshot_refs_free(&refs, n);
    vb_job_t *jobs = NULL;
    vb_job_filter_t running = {false, VB_JOB_RUNNING, 0};
    if (!rc)
        rc = vb_catalog_jobs_list(self->cfg.catalog, &running, &jobs, &n);
    for (size_t i = 0; !rc && i < n; i++) {
        if (vb_catalog_job_finish(self->cfg.catalog, jobs[i].id, VB_JOB_FAILED,
                                  "the coordinator stopped while this job ran; its snapshots "
                                  "were removed and no restore point of it was kept",
                                  s_now()) == 0)
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
    int rc = self->cfg.provider->ops->inventory(self->cfg.provider, &inv);
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
    int64_t now = s_now();
    zlistx_t *lost = zlistx_new();
    zlistx_t *stale = zlistx_new();
    zlistx_set_destructor(stale, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator(stale, (zlistx_duplicator_fn *)strdup);
    /* only tasks sent to agents, not the whole plan: every heartbeat of every agent comes here */
    for (void *v = zhashx_first(self->sent); v; v = zhashx_next(self->sent)) {
        const char *key = zhashx_cursor(self->sent);
        s_task_t *t = zhashx_lookup(self->tasks, key);
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
    for (s_task_t *t = zlistx_first(lost); t; t = zlistx_next(lost)) {
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
        s_dispatch(self);
        s_reap(self);
    }
}
