/* catalog — vbak's SQLite catalog. The only module that includes <sqlite3.h>; all SQL lives here.
 *
 * One connection, used by one thread at a time (the coordinator actor; it is opened without
 * SQLite's own mutex, so never share it between threads). WAL journal, foreign keys on,
 * a busy timeout, statements prepared once. The schema is migrated on open, keyed on
 * PRAGMA user_version; a catalog from a newer vbak is refused.
 *
 * Records returned to the caller are plain structs the caller owns; free them with the matching
 * *_free function. */
#ifndef VB_CATALOG_H
#define VB_CATALOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct vb_catalog vb_catalog_t;

/* What an agent says about itself (wire AgentFacts) plus what the catalog knows of it. */
typedef struct {
    char *name;
    char *public_key; /* CURVE public key, Z85 text (40 characters) */
    char *host;
    char *datastore;
    char **luns;
    size_t lun_count;
    char *os;
    uint32_t slots;
    char **transports;
    size_t transport_count;
    char *version;
    bool vddk;           /* has VixDiskLib; not stored: the agent says it at every register */
    char *proxy_vm;      /* vSphere moref of its proxy VM, or NULL; not stored, as vddk */
    char *vddk_version;  /* its VixDiskLib's version, or NULL; not stored, as vddk */
    char *machine;       /* the machine it runs on, or NULL; not stored, as vddk */
    uint32_t cpus;       /* that machine's CPUs; not stored, as vddk */
    char *state;         /* "online" or "lost" */
    int64_t enrolled_at; /* Unix seconds */
    int64_t last_seen;   /* Unix milliseconds */
} vb_agent_record_t;

/* Frees the strings of one record (not the record itself) and zeroes it. */
void vb_agent_record_clear(vb_agent_record_t *rec);
/* Frees an array of records returned by vb_catalog_agents_list. */
void vb_agent_records_free(vb_agent_record_t **recs_p, size_t count);

/* Opens (creating if needed) the catalog at `path` and migrates it. NULL on failure, with the
 * message set. */
vb_catalog_t *vb_catalog_open(const char *path);
void vb_catalog_destroy(vb_catalog_t **self_p);

/* The file the catalog was opened from (borrowed). */
const char *vb_catalog_path(const vb_catalog_t *self);

/* Copies the catalog file at `path` into a new SQLite file `dest` (which must not exist) with
 * SQLite's online backup API, on its own connections: safe on any thread while the coordinator
 * keeps writing (the copy is one consistent read). The copy is a plain (non-WAL) file. VB_EDB. */
int vb_catalog_copy(const char *path, const char *dest) VB_WUR;

/* The schema version this build writes. */
int vb_catalog_schema_version(void);

int vb_catalog_begin(vb_catalog_t *self) VB_WUR;
/* True inside a transaction begun with vb_catalog_begin (callers batch only at the outermost). */
bool vb_catalog_in_transaction(vb_catalog_t *self);
int vb_catalog_commit(vb_catalog_t *self) VB_WUR;
void vb_catalog_rollback(vb_catalog_t *self);

/* Inserts a newly enrolled agent. VB_EEXISTS when the name or the key is taken (message says
 * which). `rec->state`, `enrolled_at` are set by the catalog. */
int vb_catalog_agent_enroll(vb_catalog_t *self, const vb_agent_record_t *rec,
                            int64_t now_ms) VB_WUR;

/* Updates what a known agent (by key) reports about itself; VB_ENOTFOUND for an unknown key,
 * VB_EEXISTS when it asks for a name another key holds. */
int vb_catalog_agent_update_facts(vb_catalog_t *self, const vb_agent_record_t *rec,
                                  int64_t now_ms) VB_WUR;

/* Sets state and last_seen of the agent with this key. */
int vb_catalog_agent_set_state(vb_catalog_t *self, const char *public_key, const char *state,
                               int64_t last_seen_ms) VB_WUR;

/* Looks an agent up by key or by name; VB_ENOTFOUND when absent. Caller clears *out. */
int vb_catalog_agent_by_key(vb_catalog_t *self, const char *public_key,
                            vb_agent_record_t *out) VB_WUR;
int vb_catalog_agent_by_name(vb_catalog_t *self, const char *name, vb_agent_record_t *out) VB_WUR;

/* Removes the agent enrolled with `public_key` and revokes the key (one change): the key is
 * refused from then on, its name may be enrolled again with another key. VB_ENOTFOUND. */
int vb_catalog_agent_remove(vb_catalog_t *self, const char *public_key, const char *name,
                            int64_t now_ms) VB_WUR;

/* 0 with *name_out (caller frees: the name it was enrolled under) when `public_key` belongs to
 * a removed agent, VB_ENOTFOUND when it does not, VB_EDB on a catalog error. */
int vb_catalog_key_revoked(vb_catalog_t *self, const char *public_key, char **name_out) VB_WUR;

/* All agents ordered by name. Caller frees with vb_agent_records_free. */
int vb_catalog_agents_list(vb_catalog_t *self, vb_agent_record_t **out, size_t *count) VB_WUR;

/* ==== Jobs ====
 *
 * A job (backup, restore, verify, prune) has VMs and tasks. Its state is `running` until
 * vb_catalog_job_finish sets `succeeded`, `failed` or `cancelled`. Every change below is one
 * statement or one savepoint, so it is atomic on its own and can also be grouped by the caller in
 * vb_catalog_begin/commit (the scheduler batches task updates that way: thousands per commit).
 * Enum names are the strings stored in the catalog and shown in JSON (vb_*_name). */

/* A serve job (`vbak serve`) is a lease on the restore point it exposes over NBD: it runs while
 * the serve renews it (vb_catalog_job_set_options keeps the lease's end in its options). */
typedef enum { VB_JOB_BACKUP, VB_JOB_RESTORE, VB_JOB_VERIFY, VB_JOB_PRUNE, VB_JOB_SERVE } vb_job_kind_t;
typedef enum { VB_JOB_RUNNING, VB_JOB_SUCCEEDED, VB_JOB_FAILED, VB_JOB_CANCELLED } vb_job_state_t;
typedef enum { VB_SNAP_NONE, VB_SNAP_REQUESTED, VB_SNAP_CREATED, VB_SNAP_REMOVED } vb_snap_state_t;
typedef enum { VB_TASK_MAP, VB_TASK_BACKUP, VB_TASK_RESTORE } vb_task_kind_t;
typedef enum {
    VB_TASK_QUEUED,
    VB_TASK_RUNNING,
    VB_TASK_DONE,
    VB_TASK_FAILED,
    VB_TASK_CANCELLED
} vb_task_state_t;
typedef enum { VB_RP_FULL, VB_RP_INCREMENTAL } vb_rp_kind_t;
typedef enum { VB_RP_PENDING, VB_RP_COMPLETE } vb_rp_state_t;
typedef enum { VB_VERIFY_NONE, VB_VERIFY_OK, VB_VERIFY_FAILED } vb_verify_state_t;

/* "backup", "running", "requested", "map", "queued", "full", "pending", "unverified"/"ok"/
 * "failed", ... Static strings; "?" for a value out of range. */
const char *vb_job_kind_name(vb_job_kind_t k);
const char *vb_job_state_name(vb_job_state_t s);
const char *vb_snap_state_name(vb_snap_state_t s);
const char *vb_task_kind_name(vb_task_kind_t k);
const char *vb_task_state_name(vb_task_state_t s);
const char *vb_rp_kind_name(vb_rp_kind_t k);
const char *vb_rp_state_name(vb_rp_state_t s);
const char *vb_verify_state_name(vb_verify_state_t s);

/* One VM (or First Class Disk) of a job. */
typedef struct {
    int64_t id; /* catalog row id of this job VM */
    char *vm;   /* VM or FCD name */
    bool is_fcd;
    vb_job_state_t state; /* running until vb_catalog_job_vm_finish or the job finishes */
    bool has_mode;        /* backup: the plan chose full/incremental */
    vb_rp_kind_t mode;
    char *mode_reason;        /* why, e.g. "change tracking was reset"; NULL when none */
    int64_t restore_point_id; /* backup: the restore point being written (0 until created);
                                 restore/verify: the source restore point given at creation */
    char *snapshot_name;      /* NULL until vb_catalog_snapshot_intent */
    char *snapshot_id;        /* NULL until vb_catalog_snapshot_created */
    vb_snap_state_t snapshot_state;
    bool access_prepared; /* PrepareForAccess in effect (Storage vMotion blocked) */
    char *error;          /* NULL unless the VM failed or was cancelled */
    char *notes;          /* lines said on the VM that are not errors (NULL: none) */
    char *snapshot_error; /* why the last removal of its snapshot failed, while it is retried */
    char *timing;         /* backup: wall time per phase, JSON text the job engine wrote (NULL:
                             none yet) */
} vb_job_vm_t;

typedef struct {
    int64_t id;
    vb_job_kind_t kind;
    vb_job_state_t state;
    bool full; /* backup: --full was asked for */
    bool cancel_requested;
    char *options;    /* opaque text the job engine keeps with the job (JSON); may be NULL */
    int64_t started;  /* Unix ms */
    int64_t finished; /* Unix ms; 0 while running */
    char *error;      /* NULL unless failed or cancelled */
    vb_job_vm_t *vms;
    size_t vm_count;
} vb_job_t;

void vb_job_clear(vb_job_t *job);
void vb_jobs_free(vb_job_t **jobs_p, size_t count);

/* Creates a running job and its VMs in one transaction. Reads job->kind, full, options, started
 * and, per VM, vm, is_fcd and restore_point_id (0: none); other fields are ignored. At least one
 * VM is required unless the kind is prune. *id_out is the new job id. VB_EINVAL (no VMs, a VM
 * twice: the message names it), VB_ENOTFOUND (a restore point that does not exist), VB_EDB. */
int vb_catalog_job_create(vb_catalog_t *self, const vb_job_t *job, int64_t *id_out) VB_WUR;

/* The job with its VMs. VB_ENOTFOUND when there is no such job. Caller clears *out. */
int vb_catalog_job_get(vb_catalog_t *self, int64_t job_id, vb_job_t *out) VB_WUR;

typedef struct {
    bool any_state; /* true: every job; false: only jobs in `state` */
    vb_job_state_t state;
    size_t limit; /* 0: no limit */
} vb_job_filter_t;

/* Jobs newest first (by id), each with its VMs. `filter` NULL: all jobs. Caller frees with
 * vb_jobs_free. */
int vb_catalog_jobs_list(vb_catalog_t *self, const vb_job_filter_t *filter, vb_job_t **out,
                         size_t *count) VB_WUR;

/* Ends a running job, in one transaction: the job gets `state` (succeeded, failed or cancelled),
 * `error` (may be NULL) and `finished`; its VMs still running get the same state and error; its
 * queued and running tasks become cancelled; and, unless it succeeded, its pending restore points
 * are deleted (so a failed job leaves no restore point, visible or not). Snapshots are NOT touched:
 * remove them first, or find them later with vb_catalog_snapshots_outstanding. VB_ENOTFOUND (no
 * such job), VB_EINVAL (state is running, or the job has already finished: message says how). */
int vb_catalog_job_finish(vb_catalog_t *self, int64_t job_id, vb_job_state_t state,
                          const char *error, int64_t now_ms) VB_WUR;

/* Called after vb_catalog_job_finish has recorded a job's end (on the caller's thread, maybe
 * inside an enclosing transaction: read the catalog later, not from the callback). */
typedef void (*vb_catalog_job_end_fn)(void *arg, int64_t job_id);
/* Sets the one job-end callback (NULL: none); for whoever waits on jobs (the control socket's
 * `job.show` with wait_ms). */
void vb_catalog_on_job_end(vb_catalog_t *self, vb_catalog_job_end_fn fn, void *arg);

/* Records that the user asked to cancel a running job (the job engine acts on it and finishes the
 * job as cancelled). VB_ENOTFOUND, VB_EINVAL when the job is not running (message gives its state).
 */
int vb_catalog_job_request_cancel(vb_catalog_t *self, int64_t job_id) VB_WUR;

/* Replaces a running job's options (opaque text; NULL clears them). VB_ENOTFOUND, VB_EINVAL when
 * the job is not running (message gives its state). */
int vb_catalog_job_set_options(vb_catalog_t *self, int64_t job_id, const char *options) VB_WUR;

/* Start time of the oldest running job (GC keeps chunks newer than it); *started_ms_out = 0 when
 * no job is running. */
int vb_catalog_oldest_running_job(vb_catalog_t *self, int64_t *started_ms_out) VB_WUR;

/* The VM `vm` of job `job_id` (VB_ENOTFOUND when the job has no such VM in every call below). */

/* Backup planning result: full or incremental, and why (may be NULL). */
int vb_catalog_job_vm_set_mode(vb_catalog_t *self, int64_t job_id, const char *vm,
                               vb_rp_kind_t mode, const char *reason) VB_WUR;

/* Ends one VM of a job (state succeeded, failed or cancelled; error may be NULL). VB_EINVAL for
 * state running. The job itself stays running. */
int vb_catalog_job_vm_finish(vb_catalog_t *self, int64_t job_id, const char *vm,
                             vb_job_state_t state, const char *error) VB_WUR;

/* Records PrepareForAccess (true, before the call) and EndAccess (false, after it succeeded). */
int vb_catalog_job_vm_set_access(vb_catalog_t *self, int64_t job_id, const char *vm,
                                 bool prepared) VB_WUR;

/* Snapshot bookkeeping, so that a crash never leaves a snapshot behind:
 *   intent  — BEFORE calling CreateSnapshot: the name (e.g. "vbak-17"); state requested.
 *   created — after it returned: the provider's snapshot id; state created.
 *   removed — after RemoveSnapshot returned (or the snapshot was found absent); state removed.
 * VB_EINVAL when the step is out of order (the message gives the current state). */
int vb_catalog_snapshot_intent(vb_catalog_t *self, int64_t job_id, const char *vm,
                               const char *name) VB_WUR;
int vb_catalog_snapshot_created(vb_catalog_t *self, int64_t job_id, const char *vm,
                                const char *snapshot_id) VB_WUR;
int vb_catalog_snapshot_removed(vb_catalog_t *self, int64_t job_id, const char *vm) VB_WUR;
/* A removal failed and will be tried again: `error` is kept (job show) until it is removed. */
int vb_catalog_snapshot_remove_failed(vb_catalog_t *self, int64_t job_id, const char *vm,
                                      const char *error) VB_WUR;

/* Adds a one-line note to a job's VM (something true the user should know that is not an
 * error, e.g. plaintext of an encrypted disk stored in an unencrypted repository). VB_EINVAL for
 * an empty or multi-line note. */
int vb_catalog_job_vm_add_note(vb_catalog_t *self, int64_t job_id, const char *vm,
                               const char *note) VB_WUR;

/* Records a job VM's timing (opaque text, JSON by the job engine; NULL clears it). */
int vb_catalog_job_vm_set_timing(vb_catalog_t *self, int64_t job_id, const char *vm,
                                 const char *timing) VB_WUR;

/* Something a job may have left on a VM: a snapshot requested or created and not yet removed
 * (snapshot_id NULL when the crash came between intent and created: look it up by name), or
 * access still prepared. */
typedef struct {
    int64_t job_id;
    vb_job_state_t job_state;
    char *vm;
    bool is_fcd;
    char *snapshot_name; /* NULL when only access is outstanding */
    char *snapshot_id;   /* may be NULL */
    vb_snap_state_t snapshot_state;
    bool access_prepared;
} vb_snapshot_ref_t;

void vb_snapshot_refs_free(vb_snapshot_ref_t **refs_p, size_t count);

/* Every job VM (of any job, running or finished) with a snapshot not removed or access still
 * prepared, ordered by job id. This is the crash-cleanup list. Caller frees. */
int vb_catalog_snapshots_outstanding(vb_catalog_t *self, vb_snapshot_ref_t **out,
                                     size_t *count) VB_WUR;

/* ==== Tasks ==== */

typedef struct {
    int64_t id;
    int64_t job_id;
    char *vm; /* the job VM the task belongs to */
    char *disk_key;
    vb_task_kind_t kind;
    vb_task_state_t state;
    uint64_t offset; /* extent; a map task uses 0/capacity or 0/0 */
    uint64_t length;
    char *agent;            /* name of the agent that ran it last; NULL until claimed */
    char *transport;        /* transport of the last attempt; NULL until claimed */
    char *transport_reason; /* why it was chosen (and what fell back) */
    uint32_t attempts;      /* times the task was started */
    uint32_t failures;      /* times it failed (a lost agent is not the task's failure) */
    char *error;            /* last error or requeue reason; kept after a retry */
    char *payload;          /* opaque text for the job engine; may be NULL */
    uint64_t bytes;         /* bytes the agent reported for the finished task */
    int64_t started;        /* Unix ms of the last claim; 0 never */
    int64_t finished;       /* Unix ms; 0 while not done/failed/cancelled */
    uint64_t read_bytes;    /* bytes the task reads (backup: whole chunks it touches; restore:
                             * its extent; map: 0), given when it is added */
} vb_task_t;

void vb_task_clear(vb_task_t *task);
void vb_tasks_free(vb_task_t **tasks_p, size_t count);

/* Adds n queued tasks to job `job_id`, in one transaction. Reads vm, disk_key, kind, offset,
 * length, payload, read_bytes of each. ids_out (may be NULL) receives the n new ids in order.
 * VB_ENOTFOUND (no such job, or a VM not in the job: the message names it), VB_EINVAL (job not
 * running, offset/length/read_bytes beyond INT64_MAX), VB_EDB. Nothing is added on failure. */
int vb_catalog_tasks_add(vb_catalog_t *self, int64_t job_id, const vb_task_t *tasks, size_t n,
                         int64_t *ids_out) VB_WUR;

/* One task. VB_ENOTFOUND. Caller clears *out. */
int vb_catalog_task_get(vb_catalog_t *self, int64_t task_id, vb_task_t *out) VB_WUR;

typedef struct {
    int64_t job_id;    /* required unless agent is set */
    const char *agent; /* non-NULL: running tasks of this agent (job_id, state ignored) */
    bool any_state;
    vb_task_state_t state;
    size_t limit; /* 0: no limit */
} vb_task_filter_t;

/* Tasks by id: of a job (all, or in one state), or running on an agent. Caller frees. */
int vb_catalog_tasks_list(vb_catalog_t *self, const vb_task_filter_t *filter, vb_task_t **out,
                          size_t *count) VB_WUR;

/* queued -> running on `agent` with `transport` chosen for `reason`: attempts + 1, started = now.
 * VB_ENOTFOUND; VB_EINVAL when the task is not queued (message gives its state and agent). */
int vb_catalog_task_claim(vb_catalog_t *self, int64_t task_id, const char *agent,
                          const char *transport, const char *reason, int64_t now_ms) VB_WUR;

/* A running task changed transport (a failed open fell back to the next allowed mode): records
 * the new transport and the reason (which should say what failed). VB_EINVAL when not running. */
int vb_catalog_task_set_transport(vb_catalog_t *self, int64_t task_id, const char *transport,
                                  const char *reason) VB_WUR;

/* queued or running -> done (a late result from an agent that was thought lost is valid: results
 * are idempotent), with the bytes the agent reported. VB_EINVAL when already done, failed or
 * cancelled (the caller ignores such a duplicate). */
int vb_catalog_task_complete(vb_catalog_t *self, int64_t task_id, uint64_t bytes,
                             int64_t now_ms) VB_WUR;

/* A running task failed with `error`: failures + 1; back to queued while failures < max_failures,
 * else failed (finished = now). *state_out (may be NULL) says which. VB_EINVAL when not running. */
int vb_catalog_task_fail(vb_catalog_t *self, int64_t task_id, const char *error,
                         uint32_t max_failures, int64_t now_ms, vb_task_state_t *state_out) VB_WUR;

/* A running task goes back to the queue without counting a failure (its agent went away or
 * handed it back); `reason` is kept as the task's error. VB_EINVAL when not running. */
int vb_catalog_task_requeue(vb_catalog_t *self, int64_t task_id, const char *reason) VB_WUR;

/* Every running task of `agent` goes back to the queue (agent lost), with `reason`; one statement.
 * *count_out (may be NULL): how many. */
int vb_catalog_tasks_requeue_agent(vb_catalog_t *self, const char *agent, const char *reason,
                                   size_t *count_out) VB_WUR;


typedef struct {
    size_t queued, running, done, failed, cancelled, total;
    uint64_t bytes_total; /* sum of extent lengths */
    uint64_t bytes_done;  /* sum of extent lengths of done tasks */
    size_t map_total, map_done; /* map tasks (backup: finding a disk's allocated blocks) */
    uint64_t read_bytes_total;  /* sum of read_bytes of the backup and restore tasks */
    uint64_t read_bytes_done;   /* the same, of the done ones */
} vb_task_counts_t;

/* Task counters of one job (an index scan of the job's tasks: for job show and restart, not for
 * every completion). A job without tasks gives zeros. */
int vb_catalog_job_task_counts(vb_catalog_t *self, int64_t job_id, vb_task_counts_t *out) VB_WUR;

/* ==== Restore points ====
 *
 * A backup creates a restore point `pending` (with its disks) before it reads anything, fills in
 * each disk as its index is written, and commits it: one transaction makes it `complete`. Only
 * complete restore points are visible to the queries below (get, list, latest, chain); a pending
 * one is seen only by its job (vb_catalog_job_restore_points) and is deleted when its job finishes
 * without success (vb_catalog_job_finish) or by vb_catalog_restore_point_discard.
 *
 * Chains: an incremental records its parent (the restore point its changed areas were computed
 * from). A disk index is self-contained (it holds every chunk's digest, unchanged ones inherited
 * when it was written), so deleting a parent never breaks a child: the child is re-linked to the
 * deleted point's own parent, and the chain reads as the retained lineage. The one dependency that
 * is enforced: a restore point that a running job is building on (the parent of a pending point)
 * cannot be deleted, because that job's index still inherits from it. */

typedef struct {
    char *key;  /* disk key within the VM (e.g. "2000"); an FCD's id */
    char *name; /* "Hard disk 1" */
    char *datastore;
    uint64_t capacity;      /* bytes */
    char *change_id;        /* CBT change ID at the snapshot; NULL when tracking is off */
    char *index_path;       /* the disk index in the repository; NULL until written */
    uint64_t logical_bytes; /* bytes of data the disk holds (allocated) */
    uint64_t new_bytes;     /* bytes this backup stored that the repository did not have */
    uint64_t chunk_count;   /* chunks in the index */
    char **transports;      /* transports the disk's tasks used */
    size_t transport_count;
} vb_rp_disk_t;

typedef struct {
    int64_t id;
    char *vm; /* VM or FCD name */
    bool is_fcd;
    int64_t job_id;    /* the backup job that wrote it; 0 when unknown */
    int64_t created;   /* Unix ms: the point in time (the snapshot) */
    int64_t completed; /* Unix ms of the commit; 0 while pending */
    vb_rp_kind_t kind;
    vb_rp_state_t state;
    int64_t parent_id; /* 0: none (a full, or an incremental whose parents were pruned) */
    vb_verify_state_t verify_state;
    int64_t verified_at; /* Unix ms; 0 never */
    char *verify_error;  /* NULL unless verify failed */
    vb_rp_disk_t *disks; /* filled by the calls that say so; else NULL/0 */
    size_t disk_count;
} vb_restore_point_t;

void vb_rp_disk_clear(vb_rp_disk_t *disk);
void vb_restore_point_clear(vb_restore_point_t *rp);
void vb_restore_points_free(vb_restore_point_t **rps_p, size_t count);
/* Frees an array of strings (vb_catalog_index_paths_live, removed paths) and NULLs *v_p. */
void vb_catalog_strings_free(char ***v_p, size_t count);

/* Creates a pending restore point with its disks, in one transaction. Reads vm, is_fcd, job_id
 * (0: none; else a running job that has this VM, whose restore_point_id is set to the new id),
 * created, kind, parent_id and the disks (key required and unique; all other disk fields may be
 * filled now or later). An incremental needs a parent: a complete restore point of the same VM.
 * VB_EINVAL (no disks, a disk key twice, incremental without parent or parent of another VM, a
 * full with a parent, job not running), VB_ENOTFOUND (parent or job unknown), VB_EDB. */
int vb_catalog_restore_point_create(vb_catalog_t *self, const vb_restore_point_t *rp,
                                    int64_t *id_out) VB_WUR;

/* Records one disk's result in a pending restore point (by disk->key): change_id and index_path
 * when non-NULL, logical_bytes, new_bytes, chunk_count and transports. VB_ENOTFOUND (no such
 * restore point or disk), VB_EINVAL (the restore point is complete). */
int vb_catalog_restore_point_set_disk(vb_catalog_t *self, int64_t rp_id,
                                      const vb_rp_disk_t *disk) VB_WUR;

/* Adds a complete restore point as a repository manifest describes it (catalog rebuild), in one
 * transaction: its own id, vm, is_fcd, created, completed, kind and disks (each with an index);
 * job_id is not kept (the jobs are not in the repository). parent_id is kept only when that
 * restore point of the same VM is in the catalog already (import oldest first), else the point
 * has no parent. VB_EINVAL (missing id, VM, disks or index), VB_EEXISTS (the id is taken), VB_EDB. */
int vb_catalog_restore_point_import(vb_catalog_t *self, const vb_restore_point_t *rp) VB_WUR;

/* Makes a pending restore point complete, in one transaction: first applies `disks` (n may be 0)
 * as vb_catalog_restore_point_set_disk does, then checks that every disk has an index, then sets
 * state complete and completed = now. On any failure nothing changes (it stays pending and
 * invisible). VB_ENOTFOUND, VB_EINVAL (already complete; a disk without an index: the message
 * names it). */
int vb_catalog_restore_point_commit(vb_catalog_t *self, int64_t rp_id, const vb_rp_disk_t *disks,
                                    size_t n, int64_t now_ms) VB_WUR;

/* Deletes a pending restore point and its disks (a backup that will not complete). VB_ENOTFOUND;
 * VB_EINVAL when it is complete (use vb_catalog_restore_points_delete). */
int vb_catalog_restore_point_discard(vb_catalog_t *self, int64_t rp_id) VB_WUR;

/* A complete restore point with its disks. VB_ENOTFOUND when absent or not complete. Caller
 * clears *out. */
int vb_catalog_restore_point_get(vb_catalog_t *self, int64_t rp_id, vb_restore_point_t *out) VB_WUR;

typedef struct {
    const char *vm;    /* NULL: every VM */
    int64_t after;     /* created >= after (Unix ms); 0: no bound */
    int64_t before;    /* created <= before (Unix ms); 0: no bound */
    size_t limit;      /* 0: no limit */
    bool newest_first; /* default oldest first (by created, then id) */
} vb_rp_filter_t;

/* Complete restore points matching the filter, without disks (disks NULL). `filter` NULL: all of
 * them, oldest first — the input of retention selection (vm + created of every complete point).
 * Caller frees with vb_restore_points_free. */
int vb_catalog_restore_points_list(vb_catalog_t *self, const vb_rp_filter_t *filter,
                                   vb_restore_point_t **out, size_t *count) VB_WUR;

/* The newest complete restore point of `vm` created at or before `before_ms` (0: no bound), with
 * its disks (their change IDs are what an incremental backup starts from). VB_ENOTFOUND when the
 * VM has none. Caller clears *out. */
int vb_catalog_restore_point_latest(vb_catalog_t *self, const char *vm, int64_t before_ms,
                                    vb_restore_point_t *out) VB_WUR;

/* The parent chain of a complete restore point: itself first, then its parent, up to a full (or
 * the oldest retained point), without disks. VB_ENOTFOUND. Caller frees. */
int vb_catalog_restore_point_chain(vb_catalog_t *self, int64_t rp_id, vb_restore_point_t **out,
                                   size_t *count) VB_WUR;

/* Every restore point a job wrote, pending or complete, with disks. Caller frees. */
int vb_catalog_job_restore_points(vb_catalog_t *self, int64_t job_id, vb_restore_point_t **out,
                                  size_t *count) VB_WUR;

/* Deletes complete restore points (prune), in one transaction: all or none. Children of a deleted
 * point are re-linked to its parent (see the chain note above). Refused (nothing deleted):
 * VB_ENOTFOUND (an id that does not exist), VB_EINVAL (a pending one), VB_EBUSY (a running job
 * uses it: vb_catalog_restore_points_in_use), VB_EPOLICY (it is the newest complete restore point
 * of its VM and allow_newest is false — retention always keeps one). Each message names the restore
 * point. removed_paths (may be NULL) receives the index paths of the deleted disks, for removal
 * from the repository; free with vb_catalog_strings_free. */
int vb_catalog_restore_points_delete(vb_catalog_t *self, const int64_t *ids, size_t n,
                                     bool allow_newest, char ***removed_paths,
                                     size_t *removed_count) VB_WUR;

/* A running job that uses a complete restore point: a backup writing an incremental on it (its
 * parent; child_id is the pending one), or a restore, verify or serve reading it. Prune keeps
 * these. */
typedef struct {
    int64_t rp_id;
    int64_t job_id;
    vb_job_kind_t kind;
    int64_t child_id; /* backup: the restore point it writes; else 0 */
} vb_rp_use_t;

/* Every use of a restore point by a running job, by restore point then job. Caller frees *out
 * with free(). */
int vb_catalog_restore_points_in_use(vb_catalog_t *self, vb_rp_use_t **out, size_t *count) VB_WUR;

/* "restore job 12 is reading it", "backup job 9 is writing restore point 14 on it"; into buf. */
const char *vb_rp_use_text(const vb_rp_use_t *use, char *buf, size_t size);

/* Records a verify result (ok or failed with error; none resets) on a complete restore point.
 * VB_ENOTFOUND. */
int vb_catalog_restore_point_set_verify(vb_catalog_t *self, int64_t rp_id, vb_verify_state_t state,
                                        const char *error, int64_t now_ms) VB_WUR;

/* Index paths GC must treat as live: those of complete restore points and of pending ones whose
 * job is still running; sorted, without duplicates. Caller frees with vb_catalog_strings_free. */
int vb_catalog_index_paths_live(vb_catalog_t *self, char ***out, size_t *count) VB_WUR;

/* The catalog's figures for `vbak status --json` and /metrics, as a new JSON object (caller
 * owns): "jobs" {kind: {state: count}}, "restore_points" (complete ones),
 * "last_backup" {vm: Unix seconds of its newest complete restore point}. */
int vb_catalog_census(vb_catalog_t *self, json_t **out) VB_WUR;

#endif
