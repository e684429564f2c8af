/* jobs — the coordinator's job engine: backups and restores as extent tasks on agents.
 *
 * Backup of a VM (DESIGN.md "Jobs"): snapshot `vbak-<job>` recorded in the catalog before the
 * call → PrepareForAccess → per disk the read set (full: a map task that an agent runs on the
 * thread that opened the disk; incremental: QueryChangedDiskAreas since the parent's change ID)
 * → chunk-aligned extent tasks → agents (scheduler.h) → each disk's index, inheriting unchanged
 * chunks from the parent → the restore point committed in one transaction → EndAccess,
 * snapshot removed (in the background, retried until done). A VM that fails leaves no restore
 * point, and no snapshot once its removal succeeded.
 *
 * Restore of a restore point: per disk, windows of chunks with their digests as restore tasks
 * to a new sparse file (`to_dir`) or into the VM's own disks (`to_vm`, with the restore rules of
 * the transport policy; refused when the VM has snapshots unless they are deleted first).
 *
 * A failed task is retried after a back-off (retry_delay_ms, doubling, with jitter, up to
 * retry_max_delay_ms, while its job is younger than retry_deadline_ms), so a short outage of a
 * disk server is ridden out; a failure the agent calls permanent fails its VM at once. EndAccess
 * and snapshot removal run on a thread; one that fails is retried in the background until it
 * succeeds (vb_jobs_pending_releases).
 *
 * Everything runs on the coordinator actor's thread. Messages go out through the `send`
 * callback. On start, vb_jobs_recover() stops jobs a previous coordinator left running and
 * cleans up what they left on VMs. */
#ifndef VB_JOBS_H
#define VB_JOBS_H

#include <jansson.h>
#include <stdint.h>

#include <czmq.h>

#include "catalog/catalog.h"
#include "metrics.h"
#include "prep.h"
#include "error.h"
#include "inventory/inventory.h"
#include "registry.h"
#include "vbak.pb-c.h"

typedef struct vb_jobs vb_jobs_t;

/* Sends an envelope to the named agent; 0 or an error (agent gone). */
typedef int (*vb_jobs_send_fn)(void *ctx, const char *agent, Vbak__Envelope *env);

typedef struct {
    vb_catalog_t *catalog;     /* borrowed */
    vb_provider_t *provider;   /* borrowed; NULL: jobs are refused with a reason */
    const char *repository;    /* repository path, shared with the agents */
    const char *repository_key_file;
    uint64_t task_bytes;       /* disk bytes per extent task */
    uint32_t per_datastore;    /* concurrent tasks per datastore (0: no limit) */
    uint32_t per_host;         /* concurrent tasks per ESXi host (0: no limit) */
    uint32_t max_attempts;     /* failures before a task fails its disk */
    uint32_t retry_delay_ms;   /* back-off before a failed task's 2nd attempt; doubles after */
    uint32_t retry_max_delay_ms;  /* the longest back-off (tasks and snapshot removals) */
    uint64_t retry_deadline_ms;   /* no task retry starts later than this after its job began */
    uint32_t snapshot_retry_ms;   /* back-off before a failed snapshot removal is tried again */
    vb_jobs_send_fn send;
    void *send_ctx;
    zloop_t *loop;                 /* the actor's loop: prep threads report through it */
    vb_provider_factory_fn provider_factory; /* a provider for a prep thread */
    void *factory_ctx;
    uint32_t catalog_copies; /* after each job, a catalog copy into the repository; keep this
                                many (0: none) */
    const char *repository_credentials_file; /* S3 access key file; NULL for a directory */
} vb_jobs_config_t;

vb_jobs_t *vb_jobs_new(const vb_jobs_config_t *config);
void vb_jobs_destroy(vb_jobs_t **self_p);

/* Stops jobs that were running when a coordinator stopped: snapshots removed, access ended,
 * jobs failed with the reason; no restore point of theirs becomes visible. */
int vb_jobs_recover(vb_jobs_t *self) VB_WUR;

/* Registry listener (registry.h): agents coming and going. */
void vb_jobs_agent_event(void *self, const vb_agent_record_t *rec, bool online);

/* A TaskResult from agent `agent` (by name). Never trusts it: unknown tasks, replays and results
 * from an agent that does not run the task are counted and dropped. */
void vb_jobs_on_result(vb_jobs_t *self, const char *agent, const Vbak__TaskResult *result);

/* Admin commands; *result is the JSON answer (caller owns), errors set the message. */
int vb_jobs_backup(vb_jobs_t *self, json_t *args, json_t **result) VB_WUR;
int vb_jobs_restore(vb_jobs_t *self, json_t *args, json_t **result) VB_WUR;
int vb_jobs_cancel(vb_jobs_t *self, int64_t job_id, json_t **result) VB_WUR;

/* The inventory for the next command (backup, restore, explain), read on a worker before the
 * command runs on the loop: inv (taken; NULL with rc and error when it could not be read). The
 * command takes it instead of asking the provider; vb_jobs_lend_inventory(self, NULL, 0, NULL)
 * after the command frees what it did not take. */
void vb_jobs_lend_inventory(vb_jobs_t *self, vb_inventory_t *inv, int rc, const char *error);

/* What a backup or restore needs from the repository, read on the worker that reads its inventory
 * (vb_jobs_lend_inventory) so the loop never waits for the store: the repository, opened once
 * (on s3:// a GET of its config with the store's retries), and a restore's source indexes.
 * vb_jobs_fetch_new runs on the loop (NULL: the command needs nothing read; caller owns),
 * vb_jobs_fetch_run on the worker (errors are kept in the fetch), vb_jobs_lend_fetch on the loop
 * before the command (takes f; NULL frees what the last command did not take). */
typedef struct vb_jobs_fetch vb_jobs_fetch_t;
vb_jobs_fetch_t *vb_jobs_fetch_new(vb_jobs_t *self, const char *command, json_t *args);
void vb_jobs_fetch_run(vb_jobs_fetch_t *f);
void vb_jobs_lend_fetch(vb_jobs_t *self, vb_jobs_fetch_t *f);
void vb_jobs_fetch_free(vb_jobs_fetch_t **f_p);

/* The inventory provider the engine was configured with (borrowed; NULL when none). */
vb_provider_t *vb_jobs_provider(vb_jobs_t *self);

/* Explain for a VM: the transport decision table over the online agents. */
int vb_jobs_explain(vb_jobs_t *self, json_t *args, json_t **result) VB_WUR;

/* An agent's heartbeat listed the tasks it runs and the last assign it had received. A task the
 * agent has received (its assign_seq is not above `assigns_received`) that is not in the list,
 * and that was sent more than `grace_ms` ago, lost its result (a message that never arrived): it
 * runs again, without counting a failure. Assigns still in flight are never taken for lost, however
 * far behind the coordinator is. */
void vb_jobs_agent_running(vb_jobs_t *self, const char *agent, const uint64_t *ids, size_t n,
                           uint64_t assigns_received, int64_t grace_ms);

/* Counters of results dropped (unknown task, replay, wrong agent). */
uint64_t vb_jobs_dropped_results(const vb_jobs_t *self);

/* What the engine counted since start, for /metrics and `vbak status --json`. */
typedef struct {
    uint64_t tasks_done, tasks_failed;
    uint64_t bytes_read, bytes_stored, bytes_deduped; /* backup tasks */
    vb_histogram_t durations;                         /* seconds from sent to success */
} vb_jobs_stats_t;
const vb_jobs_stats_t *vb_jobs_stats(const vb_jobs_t *self);

/* The tasks of running jobs by state, counted in memory (no catalog query): a new JSON object
 * {queued, running, retrying (waiting out a back-off)}; caller owns it. */
json_t *vb_jobs_task_census(vb_jobs_t *self);

/* Sets progress.phase (the phase the job is in: for a backup snapshot, map, read, index or
 * commit, the earliest its VMs are in; for a restore, restore; once ended, the job's state) and
 * progress.phases ([{name, state}], state done, running, pending, or ended for a job that did
 * not succeed). */
void vb_jobs_progress_phases(vb_jobs_t *self, int64_t job_id, vb_job_kind_t kind,
                             vb_job_state_t state, json_t *progress);

/* Snapshots (and PrepareForAccess holds) of ended backups whose removal failed and is being
 * retried in the background, until it succeeds. */
size_t vb_jobs_pending_releases(const vb_jobs_t *self);
/* The same as a JSON array of {job, vm, snapshot, access, attempts, error, next_try} (caller
 * owns). */
json_t *vb_jobs_pending_releases_json(const vb_jobs_t *self);

#endif
