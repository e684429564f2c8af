/* scheduler — which queued task runs on which agent, with which transport.
 *
 * Pure bookkeeping, no I/O: the job engine adds agents, disks and tasks, calls
 * vb_sched_dispatch() to get assignments to send, and reports completions, failures and lost
 * agents. Rules (DESIGN.md "Scheduling"):
 *   - credit based: an agent gets a task only while it has a free slot;
 *   - placement: the best transport the policy allows for that disk from that agent
 *     (SAN > HotAdd > NBDSSL > NBD), then the least loaded agent (busy / slots), within the
 *     per-datastore and per-host concurrency limits, and within the budget of the machine an
 *     agent shares with others (vb_sched_agent_machine: their CPUs are the same ones, so a
 *     second agent there adds work, not speed, and the cheaper transports get it first); tasks of one disk spread over all eligible
 *     agents, so a large disk is read by several agents at once;
 *   - a lost agent's running tasks go back to the queue (not counted as attempts);
 *   - a failed open excludes that transport for that disk × agent pair, so the next allowed
 *     mode is used at once (fallback), without counting an attempt;
 *   - a failure that leaves nothing to fall back to (it ran and failed, or every mode of the
 *     pair failed to open: the pair starts again from its best mode) counts an attempt and is
 *     held, not queued, until the caller releases it: the caller backs off (a short outage is
 *     ridden out instead of burning every attempt in milliseconds); after max_attempts it is
 *     given up, and so is a failure the caller calls permanent (it cannot succeed on a retry).
 * The transport decision comes from the caller through `decide` (the transport policy), asked
 * once per disk × agent pair and cached. Agents are small integer ids chosen by the caller
 * (dense, from 0); disk ids are handed out by the scheduler and reused once a removed disk has no
 * task left, so a coordinator that runs for months holds state for its current disks only, and
 * a dispatch looks only at disks with queued tasks. */
#ifndef VB_SCHEDULER_H
#define VB_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "policy/transport.h"

typedef struct vb_sched vb_sched_t;

/* Fills `order` with the modes the policy allows for disk × agent, best first (at most
 * VB_TRANSPORT_COUNT) and returns how many; 0 when nothing is allowed. */
typedef size_t (*vb_sched_decide_fn)(void *ctx, uint32_t disk, uint32_t agent,
                                     vb_transport_t order[VB_TRANSPORT_COUNT]);

typedef struct {
    uint32_t per_datastore; /* running tasks per datastore (0: no limit) */
    uint32_t per_host;      /* running tasks per ESXi host (0: no limit) */
    uint32_t max_attempts;  /* failures before a task is given up (>= 1) */
} vb_sched_limits_t;

typedef struct {
    uint64_t task;
    uint32_t agent;
    vb_transport_t transport;
    uint32_t attempt;  /* 1 for the first try */
} vb_sched_assignment_t;

typedef enum {
    VB_SCHED_REQUEUED = 0, /* will run again now, with the next transport (fallback) */
    VB_SCHED_GIVEN_UP = 1, /* failed max_attempts times, permanently, or its disk was removed */
    VB_SCHED_HELD = 2,     /* will run again once vb_sched_task_release() is called */
} vb_sched_verdict_t;

typedef enum {
    VB_SCHED_FAIL_RUN = 0,       /* it ran and failed; a retry later may succeed */
    VB_SCHED_FAIL_OPEN = 1,      /* the transport could not open the disk: fall back */
    VB_SCHED_FAIL_PERMANENT = 2, /* cannot succeed on a retry (no space, corrupt, refused) */
} vb_sched_failure_t;

vb_sched_t *vb_sched_new(const vb_sched_limits_t *limits, vb_sched_decide_fn decide, void *ctx);
void vb_sched_destroy(vb_sched_t **self_p);

/* Agents: `slots` task slots. Adding an agent id again brings it back (after lost), and its
 * transport for every disk is decided again (it may have moved). */
int vb_sched_agent_up(vb_sched_t *self, uint32_t agent, uint32_t slots) VB_WUR;
/* The machine `agent` runs on (NULL or "": not said, a machine of its own) and its CPUs. Agents
 * that share a machine share its CPUs: the online agents naming one machine run at most
 * max(cpus, the most slots one of them offers) tasks at once together, which is what one agent
 * there may run alone, placed by transport as always (the cheaper transports get them). Groups
 * are worked out again whenever an agent comes up, goes down or moves. VB_EINVAL for an agent
 * never brought up; VB_ENOMEM. */
int vb_sched_agent_machine(vb_sched_t *self, uint32_t agent, const char *machine,
                           uint32_t cpus) VB_WUR;
/* The agent is gone: its running tasks are requeued (those of removed disks forgotten); returns
 * how many were requeued. */
size_t vb_sched_agent_down(vb_sched_t *self, uint32_t agent);

/* A disk on `datastore` and `host` (small ids for the limits); *disk is its id, until
 * vb_sched_disk_remove(). */
int vb_sched_disk_add(vb_sched_t *self, uint32_t datastore, uint32_t host, uint32_t *disk) VB_WUR;

/* Queues a task of `disk`. Task ids are the caller's, unique. */
int vb_sched_task_add(vb_sched_t *self, uint64_t task, uint32_t disk) VB_WUR;

/* Fills up to `cap` assignments; returns how many. Call after anything that frees a slot. */
size_t vb_sched_dispatch(vb_sched_t *self, vb_sched_assignment_t *out, size_t cap);

/* The task finished well: its slot is free. VB_ENOTFOUND when the task is not running (a
 * replayed or late result: ignore it). */
int vb_sched_task_done(vb_sched_t *self, uint64_t task) VB_WUR;

/* The task failed, how says `how`. *verdict says whether it runs again now, after a release,
 * or never. VB_ENOTFOUND when the task is not running. */
int vb_sched_task_failed(vb_sched_t *self, uint64_t task, vb_sched_failure_t how,
                         vb_sched_verdict_t *verdict) VB_WUR;

/* A held task goes back to the front of its queue (its back-off is over); a held task of a
 * removed disk is forgotten instead. VB_ENOTFOUND when the task is not held. */
int vb_sched_task_release(vb_sched_t *self, uint64_t task) VB_WUR;

/* The task was handed back without failing (the agent had no free slot): back to the front of
 * its queue, no attempt counted. VB_ENOTFOUND when the task is not running. */
int vb_sched_task_requeue(vb_sched_t *self, uint64_t task) VB_WUR;

/* The disk is finished with (its VM's backup or restore ended, well or not): every queued or
 * held task of it is dropped. Tasks still running keep their agent's slot until their result comes
 * (task_done / task_failed: then they are forgotten, never requeued), because the agent is still
 * busy with them; a lost agent's ones are forgotten. After the last of them the id may be handed
 * out again by vb_sched_disk_add(): the caller forgets it now. */
void vb_sched_disk_remove(vb_sched_t *self, uint32_t disk);

/* Queued tasks no online agent can take, because the policy allows no online agent to reach
 * their disk (failed opens do not count: they are retried): their disks are written to `disks`
 * (up to cap); returns the count. */
size_t vb_sched_unreachable(vb_sched_t *self, uint32_t *disks, size_t cap);

typedef struct {
    size_t queued;
    size_t running;
    size_t held;
    size_t agents_online;
    size_t slots_free;
} vb_sched_stats_t;

void vb_sched_stats(const vb_sched_t *self, vb_sched_stats_t *out);

/* The task budget `agent` shares with the other agents of its machine (0: alone, or unknown). */
uint32_t vb_sched_machine_budget(const vb_sched_t *self, uint32_t agent);

/* Tasks the scheduler has running on `agent` (0 for an unknown agent). */
uint32_t vb_sched_agent_busy(const vb_sched_t *self, uint32_t agent);

#endif
