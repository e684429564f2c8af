#include "scheduler.h"

#include <stdlib.h>
#include <string.h>

typedef enum { S_QUEUED, S_RUNNING, S_HELD } s_state_t;

typedef struct s_task {
    uint64_t id;
    uint32_t disk;
    uint32_t agent;
    vb_transport_t transport;
    uint32_t failures; /* attempts that failed (a fallback to the next mode is not one) */
    uint32_t tries;    /* every failed try, fallbacks too: numbers the next assignment */
    s_state_t state;
    struct s_task *next; /* queue link */
} s_task_t;

typedef struct {
    uint8_t decided;
    uint8_t count;
    uint8_t excluded; /* VB_TRANSPORT_BIT mask of modes that failed to open */
    vb_transport_t order[VB_TRANSPORT_COUNT];
} s_pair_t;

typedef struct {
    bool used;
    bool cancelled;
    uint32_t datastore;
    uint32_t host;
    s_task_t *head, *tail; /* queued tasks */
    size_t queued;
    size_t held;           /* failed, waiting for vb_sched_task_release */
    size_t tasks;          /* queued + running + held: the id is free again once cancelled and 0 */
    size_t active_pos;     /* 1 + its index in the active list while it has queued tasks */
    s_pair_t *pairs;       /* per agent id, grown on demand */
    size_t pair_cap;
} s_disk_t;

typedef struct {
    bool known;
    bool online;
    uint32_t slots;
    uint32_t busy;
    char *machine;           /* the machine it says it runs on; NULL: one of its own */
    uint32_t cpus;           /* that machine's CPUs */
    uint32_t leader;         /* the agent whose record counts for its machine (itself alone) */
    uint32_t machine_budget; /* on a leader's record: tasks its machine runs at once (0: any) */
    uint32_t machine_busy;   /* on a leader's record: tasks its machine's agents run now */
} s_agent_t;

struct vb_sched {
    vb_sched_limits_t limits;
    vb_sched_decide_fn decide;
    void *ctx;
    s_agent_t *agents;
    size_t agent_cap;
    s_disk_t *disks;
    size_t disk_cap, disk_count; /* ids below disk_count were handed out */
    uint32_t *free_ids;          /* ids handed back, reused first: memory stays bounded by the */
    size_t free_count, free_cap; /* most disks at once, not by every disk ever planned */
    uint32_t *active;            /* disks with queued tasks: dispatch looks at these only */
    size_t active_count, active_cap;
    uint32_t *ds_running, *host_running;
    size_t ds_cap, host_cap;
    /* task id -> task, open addressing with linear probing; tombstones are (void *)1 */
    s_task_t **table;
    size_t table_cap, table_used, table_live;
    size_t queued, running, held;
};

#define S_TOMB ((s_task_t *)1)

/* Works the machine groups out again (an agent came up, went down or moved): the online agents
 * that name one machine share its budget, max(its CPUs, the most slots one of them offers), on
 * the record of the lowest id among them; any other agent is alone, with no shared budget. An
 * agent's running tasks move with it. O(agents²): agents come and go rarely. */
static void s_regroup(vb_sched_t *self)
{
    for (uint32_t i = 0; i < self->agent_cap; i++) {
        s_agent_t *a = &self->agents[i];
        if (!a->known)
            continue;
        uint32_t leader = i, budget = 0, sharing = 0;
        for (uint32_t k = 0; a->online && a->machine && k < self->agent_cap; k++) {
            const s_agent_t *o = &self->agents[k];
            if (!o->online || !o->machine || strcmp(o->machine, a->machine) != 0)
                continue;
            leader = sharing++ ? leader : k;
            budget = o->slots > budget ? o->slots : budget;
            budget = o->cpus > budget ? o->cpus : budget;
        }
        if (sharing < 2) {
            leader = i;
            budget = 0;
        }
        self->agents[a->leader].machine_busy -= a->busy;
        a->leader = leader;
        self->agents[leader].machine_busy += a->busy;
        self->agents[leader].machine_budget = budget;
    }
}

static int s_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need < *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n <= need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return vb_error_set(VB_ENOMEM, "scheduler: out of memory");
    memset((char *)p + *cap * elem, 0, (n - *cap) * elem);
    *arr = p;
    *cap = n;
    return 0;
}

static size_t s_hash(uint64_t id, size_t cap)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

static s_task_t **s_slot(vb_sched_t *self, uint64_t id, bool for_insert)
{
    if (!self->table_cap)
        return NULL;
    size_t i = s_hash(id, self->table_cap);
    s_task_t **tomb = NULL;
    for (size_t probes = 0; probes < self->table_cap; probes++, i = (i + 1) & (self->table_cap - 1)) {
        s_task_t *t = self->table[i];
        if (!t)
            return for_insert && tomb ? tomb : (for_insert ? &self->table[i] : NULL);
        if (t == S_TOMB) {
            if (!tomb)
                tomb = &self->table[i];
        } else if (t->id == id) {
            return &self->table[i];
        }
    }
    return for_insert ? tomb : NULL;
}

static int s_rehash(vb_sched_t *self)
{
    size_t cap = self->table_cap ? self->table_cap * 2 : 1024;
    while (self->table_live * 2 >= cap)
        cap *= 2;
    s_task_t **old = self->table;
    size_t old_cap = self->table_cap;
    self->table = calloc(cap, sizeof *self->table);
    if (!self->table) {
        self->table = old;
        return vb_error_set(VB_ENOMEM, "scheduler: out of memory");
    }
    self->table_cap = cap;
    self->table_used = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] && old[i] != S_TOMB) {
            *s_slot(self, old[i]->id, true) = old[i];
            self->table_used++;
        }
    }
    free(old);
    return 0;
}

static s_task_t *s_lookup(vb_sched_t *self, uint64_t id)
{
    s_task_t **slot = s_slot(self, id, false);
    return slot ? *slot : NULL;
}

static void s_activate(vb_sched_t *self, uint32_t disk)
{
    s_disk_t *d = &self->disks[disk];
    if (d->active_pos)
        return;
    self->active[self->active_count++] = disk; /* sized to disk_cap in disk_add */
    d->active_pos = self->active_count;
}

static void s_deactivate(vb_sched_t *self, uint32_t disk)
{
    s_disk_t *d = &self->disks[disk];
    if (!d->active_pos)
        return;
    size_t i = d->active_pos - 1;
    uint32_t last = self->active[--self->active_count];
    self->active[i] = last;
    self->disks[last].active_pos = i + 1;
    d->active_pos = 0;
}

/* A cancelled disk with no task left: its state is dropped and its id handed out again. */
static void s_disk_release(vb_sched_t *self, uint32_t disk)
{
    s_disk_t *d = &self->disks[disk];
    free(d->pairs);
    memset(d, 0, sizeof *d);
    self->free_ids[self->free_count++] = disk; /* sized to disk_cap in disk_add */
}

static void s_forget_task(vb_sched_t *self, s_task_t *t)
{
    s_task_t **slot = s_slot(self, t->id, false);
    if (slot)
        *slot = S_TOMB;
    self->table_live--;
    free(t);
}

/* The task leaves the scheduler for good. */
static void s_forget(vb_sched_t *self, s_task_t *t)
{
    uint32_t disk = t->disk;
    s_forget_task(self, t);
    s_disk_t *d = &self->disks[disk];
    if (--d->tasks == 0 && d->cancelled)
        s_disk_release(self, disk);
}

vb_sched_t *vb_sched_new(const vb_sched_limits_t *limits, vb_sched_decide_fn decide, void *ctx)
{
    vb_sched_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "scheduler: out of memory");
        return NULL;
    }
    self->limits = *limits;
    if (self->limits.max_attempts < 1)
        self->limits.max_attempts = 1;
    self->decide = decide;
    self->ctx = ctx;
    return self;
}

void vb_sched_destroy(vb_sched_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_sched_t *self = *self_p;
    for (size_t i = 0; i < self->table_cap; i++)
        if (self->table[i] && self->table[i] != S_TOMB)
            free(self->table[i]);
    free(self->table);
    for (size_t d = 0; d < self->disk_cap; d++)
        free(self->disks[d].pairs);
    free(self->disks);
    free(self->free_ids);
    free(self->active);
    for (size_t a = 0; a < self->agent_cap; a++)
        free(self->agents[a].machine);
    free(self->agents);
    free(self->ds_running);
    free(self->host_running);
    free(self);
    *self_p = NULL;
}

int vb_sched_agent_up(vb_sched_t *self, uint32_t agent, uint32_t slots)
{
    int rc = s_grow((void **)&self->agents, &self->agent_cap, agent, sizeof *self->agents);
    if (rc)
        return rc;
    s_agent_t *a = &self->agents[agent];
    if (!a->known)
        a->leader = agent;
    a->known = true;
    a->online = true;
    a->slots = slots;
    /* It may come back with other facts (host, datastore, LUNs, transports): decide again. */
    for (size_t d = 0; d < self->disk_count; d++)
        if (agent < self->disks[d].pair_cap)
            self->disks[d].pairs[agent] = (s_pair_t){0};
    s_regroup(self);
    return 0;
}

int vb_sched_agent_machine(vb_sched_t *self, uint32_t agent, const char *machine, uint32_t cpus)
{
    if (agent >= self->agent_cap || !self->agents[agent].known)
        return vb_error_set(VB_EINVAL, "agent %u was never up", agent);
    char *copy = machine && *machine ? strdup(machine) : NULL;
    if (machine && *machine && !copy)
        return vb_error_set(VB_ENOMEM, "scheduler: out of memory");
    s_agent_t *a = &self->agents[agent];
    free(a->machine);
    a->machine = copy;
    a->cpus = cpus;
    s_regroup(self);
    return 0;
}

static void s_busy_add(vb_sched_t *self, uint32_t agent, int delta)
{
    s_agent_t *a = &self->agents[agent];
    a->busy = (uint32_t)((int64_t)a->busy + delta);
    self->agents[a->leader].machine_busy =
        (uint32_t)((int64_t)self->agents[a->leader].machine_busy + delta);
}

/* The agent may take one more task: a free slot of its own, and room on its machine. */
static bool s_has_room(const vb_sched_t *self, const s_agent_t *a)
{
    const s_agent_t *m = &self->agents[a->leader];
    return a->online && a->busy < a->slots &&
           (m->machine_budget == 0 || m->machine_busy < m->machine_budget);
}

static void s_requeue_front(vb_sched_t *self, s_task_t *t)
{
    s_disk_t *d = &self->disks[t->disk];
    t->state = S_QUEUED;
    t->next = d->head;
    d->head = t;
    if (!d->tail)
        d->tail = t;
    d->queued++;
    self->queued++;
    s_activate(self, t->disk);
}

static void s_release(vb_sched_t *self, s_task_t *t)
{
    s_disk_t *d = &self->disks[t->disk];
    s_busy_add(self, t->agent, -1);
    self->ds_running[d->datastore]--;
    self->host_running[d->host]--;
    self->running--;
}

size_t vb_sched_agent_down(vb_sched_t *self, uint32_t agent)
{
    size_t count = 0;
    if (agent >= self->agent_cap || !self->agents[agent].known)
        return 0;
    for (size_t i = 0; i < self->table_cap; i++) {
        s_task_t *t = self->table[i];
        if (!t || t == S_TOMB || t->state != S_RUNNING || t->agent != agent)
            continue;
        s_release(self, t);
        if (self->disks[t->disk].cancelled) {
            s_forget(self, t);
            continue;
        }
        s_requeue_front(self, t);
        count++;
    }
    self->agents[agent].online = false;
    s_regroup(self);
    return count;
}

int vb_sched_disk_add(vb_sched_t *self, uint32_t datastore, uint32_t host, uint32_t *disk)
{
    uint32_t id = self->free_count ? self->free_ids[self->free_count - 1]
                                   : (uint32_t)self->disk_count;
    int rc = s_grow((void **)&self->disks, &self->disk_cap, id, sizeof *self->disks);
    /* the free and active lists never hold more ids than there are disk slots */
    if (!rc)
        rc = s_grow((void **)&self->free_ids, &self->free_cap, self->disk_cap, sizeof(uint32_t));
    if (!rc)
        rc = s_grow((void **)&self->active, &self->active_cap, self->disk_cap, sizeof(uint32_t));
    if (!rc)
        rc = s_grow((void **)&self->ds_running, &self->ds_cap, datastore, sizeof(uint32_t));
    if (!rc)
        rc = s_grow((void **)&self->host_running, &self->host_cap, host, sizeof(uint32_t));
    if (rc)
        return rc;
    if (self->free_count)
        self->free_count--;
    else
        self->disk_count++;
    s_disk_t *d = &self->disks[id];
    d->used = true;
    d->datastore = datastore;
    d->host = host;
    *disk = id;
    return 0;
}

int vb_sched_task_add(vb_sched_t *self, uint64_t task, uint32_t disk)
{
    if (disk >= self->disk_cap || !self->disks[disk].used)
        return vb_error_set(VB_ENOTFOUND, "scheduler: task %llu names unknown disk %u",
                            (unsigned long long)task, disk);
    if (s_lookup(self, task))
        return vb_error_set(VB_EEXISTS, "scheduler: task %llu added twice",
                            (unsigned long long)task);
    if ((self->table_used + 1) * 2 >= self->table_cap && s_rehash(self) != 0)
        return VB_ENOMEM;
    s_task_t *t = calloc(1, sizeof *t);
    if (!t)
        return vb_error_set(VB_ENOMEM, "scheduler: out of memory");
    t->id = task;
    t->disk = disk;
    t->state = S_QUEUED;
    s_task_t **slot = s_slot(self, task, true);
    if (*slot == NULL)
        self->table_used++;
    *slot = t;
    self->table_live++;
    s_disk_t *d = &self->disks[disk];
    if (d->tail)
        d->tail->next = t;
    else
        d->head = t;
    d->tail = t;
    d->queued++;
    d->tasks++;
    self->queued++;
    s_activate(self, disk);
    return 0;
}

/* The policy's decision for disk × agent (asked once), or NULL when out of memory. */
static s_pair_t *s_pair(vb_sched_t *self, s_disk_t *d, uint32_t disk, uint32_t agent)
{
    if (s_grow((void **)&d->pairs, &d->pair_cap, agent, sizeof *d->pairs) != 0)
        return NULL;
    s_pair_t *p = &d->pairs[agent];
    if (!p->decided) {
        p->count = (uint8_t)self->decide(self->ctx, disk, agent, p->order);
        p->decided = 1;
    }
    return p;
}

/* The best mode for disk × agent that has not failed to open, or NONE. */
static vb_transport_t s_mode(vb_sched_t *self, s_disk_t *d, uint32_t disk, uint32_t agent)
{
    s_pair_t *p = s_pair(self, d, disk, agent);
    if (!p)
        return VB_TRANSPORT_NONE;
    for (uint8_t i = 0; i < p->count; i++)
        if (!(p->excluded & VB_TRANSPORT_BIT(p->order[i])))
            return p->order[i];
    return VB_TRANSPORT_NONE;
}

static bool s_within_limits(const vb_sched_t *self, const s_disk_t *d)
{
    if (self->limits.per_datastore && self->ds_running[d->datastore] >= self->limits.per_datastore)
        return false;
    if (self->limits.per_host && self->host_running[d->host] >= self->limits.per_host)
        return false;
    return true;
}

/* Better: lower transport rank, then lower load busy/slots, then lower id. */
static bool s_better(const s_agent_t *a, vb_transport_t ma, const s_agent_t *b, vb_transport_t mb)
{
    if (vb_transport_rank(ma) != vb_transport_rank(mb))
        return vb_transport_rank(ma) < vb_transport_rank(mb);
    return (uint64_t)a->busy * b->slots < (uint64_t)b->busy * a->slots;
}

static bool s_place_one(vb_sched_t *self, uint32_t disk, vb_sched_assignment_t *out)
{
    s_disk_t *d = &self->disks[disk];
    if (!d->head || !s_within_limits(self, d))
        return false;
    uint32_t best = UINT32_MAX;
    vb_transport_t best_mode = VB_TRANSPORT_NONE;
    for (uint32_t a = 0; a < self->agent_cap; a++) {
        s_agent_t *ag = &self->agents[a];
        if (!s_has_room(self, ag))
            continue;
        vb_transport_t m = s_mode(self, d, disk, a);
        if (m == VB_TRANSPORT_NONE)
            continue;
        if (best == UINT32_MAX || s_better(ag, m, &self->agents[best], best_mode)) {
            best = a;
            best_mode = m;
        }
    }
    if (best == UINT32_MAX)
        return false;
    s_task_t *t = d->head;
    d->head = t->next;
    if (!d->head)
        d->tail = NULL;
    t->next = NULL;
    if (--d->queued == 0)
        s_deactivate(self, disk);
    self->queued--;
    t->state = S_RUNNING;
    t->agent = best;
    t->transport = best_mode;
    s_busy_add(self, best, +1);
    self->ds_running[d->datastore]++;
    self->host_running[d->host]++;
    self->running++;
    *out = (vb_sched_assignment_t){t->id, best, best_mode, t->tries + 1};
    return true;
}

size_t vb_sched_dispatch(vb_sched_t *self, vb_sched_assignment_t *out, size_t cap)
{
    size_t n = 0;
    bool progress = true;
    /* round robin over disks, one task each per round, so concurrent jobs share the agents */
    while (progress && n < cap && self->queued > 0) {
        progress = false;
        for (size_t i = 0; i < self->active_count && n < cap;) {
            uint32_t disk = self->active[i];
            if (s_place_one(self, disk, &out[n])) {
                n++;
                progress = true;
            }
            /* a disk whose queue ran dry left the list: the one moved into its place is next */
            if (i < self->active_count && self->active[i] == disk)
                i++;
        }
    }
    return n;
}

int vb_sched_task_done(vb_sched_t *self, uint64_t task)
{
    s_task_t *t = s_lookup(self, task);
    if (!t || t == S_TOMB || t->state != S_RUNNING)
        return vb_error_set(VB_ENOTFOUND, "task %llu is not running", (unsigned long long)task);
    s_release(self, t);
    s_forget(self, t);
    return 0;
}

/* A failed open: that mode is excluded for the pair. True when the pair has a mode left to fall
 * back to; false when every mode failed, and the pair starts again from its best one. */
static bool s_fall_back(vb_sched_t *self, s_task_t *t)
{
    s_disk_t *d = &self->disks[t->disk];
    if (t->agent >= d->pair_cap)
        return false;
    s_pair_t *p = &d->pairs[t->agent];
    p->excluded |= (uint8_t)VB_TRANSPORT_BIT(t->transport);
    if (s_mode(self, d, t->disk, t->agent) != VB_TRANSPORT_NONE)
        return true;
    p->excluded = 0;
    return false;
}

int vb_sched_task_failed(vb_sched_t *self, uint64_t task, vb_sched_failure_t how,
                         vb_sched_verdict_t *verdict)
{
    s_task_t *t = s_lookup(self, task);
    if (!t || t == S_TOMB || t->state != S_RUNNING)
        return vb_error_set(VB_ENOTFOUND, "task %llu is not running", (unsigned long long)task);
    s_release(self, t);
    t->tries++;
    s_disk_t *d = &self->disks[t->disk];
    if (how == VB_SCHED_FAIL_OPEN && !d->cancelled && s_fall_back(self, t)) {
        *verdict = VB_SCHED_REQUEUED;
        s_requeue_front(self, t);
        return 0;
    }
    t->failures++;
    if (how == VB_SCHED_FAIL_PERMANENT || d->cancelled ||
        t->failures >= self->limits.max_attempts) {
        *verdict = VB_SCHED_GIVEN_UP;
        s_forget(self, t);
        return 0;
    }
    *verdict = VB_SCHED_HELD;
    t->state = S_HELD;
    d->held++;
    self->held++;
    return 0;
}

int vb_sched_task_release(vb_sched_t *self, uint64_t task)
{
    s_task_t *t = s_lookup(self, task);
    if (!t || t == S_TOMB || t->state != S_HELD)
        return vb_error_set(VB_ENOTFOUND, "task %llu is not held", (unsigned long long)task);
    self->disks[t->disk].held--;
    self->held--;
    if (self->disks[t->disk].cancelled)
        s_forget(self, t);
    else
        s_requeue_front(self, t);
    return 0;
}

/* The held tasks of a removed disk are forgotten (nothing will release them into a queue). */
static void s_forget_held(vb_sched_t *self, uint32_t disk)
{
    for (size_t i = 0; i < self->table_cap && self->disks[disk].held > 0; i++) {
        s_task_t *t = self->table[i];
        if (!t || t == S_TOMB || t->state != S_HELD || t->disk != disk)
            continue;
        self->disks[disk].held--;
        self->held--;
        self->disks[disk].tasks--;
        s_forget_task(self, t);
    }
}

int vb_sched_task_requeue(vb_sched_t *self, uint64_t task)
{
    s_task_t *t = s_lookup(self, task);
    if (!t || t == S_TOMB || t->state != S_RUNNING)
        return vb_error_set(VB_ENOTFOUND, "task %llu is not running", (unsigned long long)task);
    s_release(self, t);
    if (self->disks[t->disk].cancelled)
        s_forget(self, t);
    else
        s_requeue_front(self, t);
    return 0;
}

void vb_sched_disk_remove(vb_sched_t *self, uint32_t disk)
{
    if (disk >= self->disk_cap || !self->disks[disk].used || self->disks[disk].cancelled)
        return;
    s_disk_t *d = &self->disks[disk];
    d->cancelled = true;
    s_deactivate(self, disk);
    while (d->head) {
        s_task_t *t = d->head;
        d->head = t->next;
        s_forget_task(self, t);
    }
    self->queued -= d->queued;
    d->tasks -= d->queued;
    d->queued = 0;
    d->tail = NULL;
    s_forget_held(self, disk);
    if (d->tasks == 0)
        s_disk_release(self, disk);
}

size_t vb_sched_unreachable(vb_sched_t *self, uint32_t *disks, size_t cap)
{
    size_t n = 0, online = 0;
    for (uint32_t a = 0; a < self->agent_cap; a++)
        online += self->agents[a].online;
    if (!online)
        return 0;
    for (size_t i = 0; i < self->active_count; i++) {
        uint32_t disk = self->active[i];
        s_disk_t *d = &self->disks[disk];
        bool reachable = false;
        for (uint32_t a = 0; a < self->agent_cap && !reachable; a++) {
            const s_pair_t *p = self->agents[a].online ? s_pair(self, d, disk, a) : NULL;
            reachable = p && p->count > 0;
        }
        if (!reachable && n < cap)
            disks[n++] = disk;
    }
    return n;
}

void vb_sched_stats(const vb_sched_t *self, vb_sched_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->queued = self->queued;
    out->running = self->running;
    out->held = self->held;
    for (uint32_t a = 0; a < self->agent_cap; a++) {
        const s_agent_t *ag = &self->agents[a];
        if (ag->online) {
            out->agents_online++;
            out->slots_free += ag->slots > ag->busy ? ag->slots - ag->busy : 0;
        }
    }
}

uint32_t vb_sched_machine_budget(const vb_sched_t *self, uint32_t agent)
{
    if (agent >= self->agent_cap || !self->agents[agent].known)
        return 0;
    return self->agents[self->agents[agent].leader].machine_budget;
}

uint32_t vb_sched_agent_busy(const vb_sched_t *self, uint32_t agent)
{
    return agent < self->agent_cap ? self->agents[agent].busy : 0;
}
