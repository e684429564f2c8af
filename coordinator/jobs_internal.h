/* jobs_internal — what the job engine's files share (jobs.c: the engine, tasks, results, agents;
 * jobs_backup.c: starting and finishing a backup; jobs_restore.c: restores). Private to them. */
#ifndef VB_JOBS_INTERNAL_H
#define VB_JOBS_INTERNAL_H

#include "phases.h"
#include <czmq.h>

#include "jobs.h"
#include "plan.h"
#include "policy/transport.h"
#include "prep.h"
#include "repo/index.h"
#include "repo/repo.h"
#include "catalog_copy.h"
#include "scheduler.h"

typedef struct jb_job jb_job_t;
typedef struct jb_vmrun jb_vmrun_t;
typedef struct jb_disk jb_disk_t;
typedef struct jb_restore_setup jb_restore_setup_t;

typedef struct {
    int64_t id; /* catalog task id */
    jb_disk_t *disk;
    vb_task_kind_t kind;
    uint64_t offset, length; /* window */
    vb_extent_t *extents;    /* backup: ranges to read */
    size_t count;
    uint64_t chunks_expected; /* backup: chunks the ranges touch */
    char *agent;              /* running on; NULL while queued */
    bool abandoned;           /* its VM ended while an agent ran it: waits for the result to free
                               * the agent's slot, then is forgotten (disk is NULL) */
    vb_transport_t transport;
    uint32_t attempt;
    uint32_t failures;  /* attempts that failed (fallbacks to the next mode are not) */
    bool held;          /* waiting out a back-off before it is queued again */
    int64_t retry_at;   /* when held: when it is released */
    int64_t dispatched_ms;
    uint64_t assign_seq; /* numbers the assign to its agent */
} jb_task_t;

struct jb_disk {
    jb_vmrun_t *vm;
    uint32_t sched_id; /* the scheduler's id while registered */
    bool registered;
    const vb_inv_disk_t *inv;
    char *routes[VB_TRANSPORT_COUNT]; /* URI per mode (at the snapshot for a backup) */
    char *vddk_routes[VB_TRANSPORT_COUNT]; /* the same through VixDiskLib (agents with VDDK) */
    char *dest_path;                  /* restore to a new file */
    char *parent_index;               /* incremental: the parent's index name */
    bool read_allocated;              /* backup: its tasks' ranges are its allocated blocks */
    char *change_id;                  /* backup: change ID at the snapshot */
    vb_chunk_result_t *results;
    size_t nresults, cap;
    uint64_t bytes_new;
    unsigned transports_used; /* VB_TRANSPORT_BIT of modes tasks used */
    vb_index_t *index;        /* restore: the source index */
    size_t tasks_left;
    bool map_pending;
    bool done;
};

struct jb_vmrun {
    jb_job_t *job;
    const vb_inv_vm_t *inv;
    vb_inv_vm_t own;   /* restore to a directory: the VM as the restore point saw it */
    zactor_t *prep;    /* the snapshot/CBT thread (backup) or the restore's preparation */
    jb_restore_setup_t *setup; /* restore: what its tasks are planned from once prepared */
    char *reason;      /* backup: why full or incremental */
    int64_t parent_id; /* backup: the parent restore point of an incremental */
    char *name;
    int64_t rp_id;
    char *snapshot_id;
    bool access;
    bool releasing; /* ended; its job waits for the first EndAccess/snapshot removal attempt */
    vb_phase_times_t times; /* backup: wall time per phase (job show) */
    zactor_t *store;   /* backup: its indexes, its manifest, or their removal on a worker */
    bool indexed;      /* backup: indexes written; the manifest is next */
    bool remove_after; /* backup: ended while `store` ran; what it wrote goes when it reports */
    int64_t completed; /* backup: when all was indexed (the manifest's and commit's time) */
    jb_disk_t *disks;
    size_t ndisks, disks_left;
    bool finished;
};

struct jb_job {
    int64_t id;
    vb_job_kind_t kind;
    vb_inventory_t *inv;
    jb_vmrun_t *vms;
    size_t nvms, vms_left;
    size_t vms_failed;
    char *first_error;
    bool cancelled;
    bool to_vm; /* restore into the VM's own disks */
    bool full;  /* backup: --full was asked for */
    int64_t started_ms;
    bool ended; /* finished in the catalog; freed by jb_reap at the end of the event */
    vb_jobs_t *engine;
};

typedef struct {
    char *name;
    char *host;
    char *datastore;
    char **luns;
    size_t lun_count;
    unsigned transports;
    bool vddk; /* has VixDiskLib: may use the disks' vddk routes */
    char *proxy_vm; /* vSphere moref of its proxy VM (HotAdd), or NULL */
    char *vddk_version; /* its VixDiskLib's version, or NULL */
    bool online;
    uint64_t assign_seq; /* assigns sent to this agent so far */
} jb_agent_t;

struct vb_jobs {
    vb_jobs_config_t cfg;
    char *repository, *key_file;
    vb_repo_t *repo;
    vb_repo_t **retired; /* handles a failed sync broke: workers may hold them; closed at the end */
    size_t nretired;
    vb_sched_t *sched;
    zhashx_t *jobs;  /* "id" -> jb_job_t */
    zhashx_t *tasks; /* "id" -> jb_task_t */
    zhashx_t *sent;  /* "id" of tasks sent to an agent (may be stale: checked against tasks) */
    jb_disk_t **disk_by_sched;
    size_t disk_cap;
    jb_agent_t *agents;
    size_t agent_count;
    zhashx_t *places; /* datastore/host name -> id + 1 */
    zhashx_t *held;   /* "id" of tasks waiting out a back-off (may be stale: checked) */
    zlistx_t *releases; /* jb_release_t: EndAccess/snapshot removals not yet done */
    vb_catalog_copier_t *copier; /* catalog copies into the repository, off the loop */
    vb_inventory_t *lent_inv;    /* read on a worker for the command now running (or: */
    int lent_rc;                 /* why it could not be read; 0 with lent_inv NULL: none lent) */
    char *lent_error;
    vb_jobs_fetch_t *fetched;    /* what a worker read from the repository for this command */
    uint64_t rand_state;
    uint64_t dropped;
    vb_jobs_stats_t stats;
};

/* engine (jobs.c) */
int64_t jb_now(void);
const char *jb_key(int64_t id, char buf[24]);
void jb_dispatch(vb_jobs_t *self);
void jb_reap(vb_jobs_t *self);
void jb_vm_fail(vb_jobs_t *self, jb_vmrun_t *vm, const char *error);
void jb_vm_end(vb_jobs_t *self, jb_vmrun_t *vm, vb_job_state_t state, const char *error);
vb_repo_t *jb_repo(vb_jobs_t *self);
void jb_set_routes(vb_jobs_t *self, jb_disk_t *d, const char *snapshot);
int jb_register_disk(vb_jobs_t *self, jb_disk_t *d);
int jb_add_tasks(vb_jobs_t *self, jb_disk_t *d, vb_task_kind_t kind, vb_plan_task_t *plan,
                 size_t n);
void jb_disk_done(vb_jobs_t *self, jb_disk_t *d);
jb_job_t *jb_job_new(vb_jobs_t *self, int64_t id, vb_job_kind_t kind, vb_inventory_t *inv,
                     size_t nvms);
void jb_vmrun_init(jb_job_t *job, jb_vmrun_t *vm, const vb_inv_vm_t *inv);
int jb_ready(vb_jobs_t *self);
/* The provider's inventory: the one read on a worker for this command, else read now. */
int jb_inventory(vb_jobs_t *self, vb_inventory_t **out);

/* fetches (jobs_fetch.c) */
/* Why the worker could not open the repository for this command (message set), or 0. */
int jb_fetched_repo_error(vb_jobs_t *self);
/* Restore: source index `path` as the worker read it for this command (caller owns), or its
 * error; read here only by an engine without an event loop. */
int jb_read_index(vb_jobs_t *self, const char *path, vb_index_t **out);

/* A back-off of `base` ms doubled per earlier failure (failures >= 1), capped at the configured
 * maximum, with ±25 % jitter so retries of many tasks do not come back in step. */
int64_t jb_backoff(vb_jobs_t *self, uint32_t base, uint32_t failures);

/* releases (jobs_release.c) */
/* Releases what the backup holds on vm. wait: the VM's job ends only once the first attempt is
 * over (jb_vm_released is called then); returns whether it waits. */
bool jb_release_vm(vb_jobs_t *self, jb_vmrun_t *vm, bool wait);
void jb_vm_released(vb_jobs_t *self, jb_vmrun_t *vm);
/* Takes a release of what a job left on `vm` (snapshot id or name, may be NULL; access held) and
 * runs it in the background, retried until done. */
void jb_release_queue(vb_jobs_t *self, int64_t job_id, const char *vm, const char *snapshot,
                      bool access, jb_vmrun_t *waiting);
void jb_releases_destroy(vb_jobs_t *self);

/* restores (jobs_restore.c) */
void jb_restore_setup_free(jb_restore_setup_t **st_p);

/* backups (jobs_backup.c) */
int jb_backup_vm_start(vb_jobs_t *self, jb_vmrun_t *vm, bool full);
void jb_backup_vm_finish(vb_jobs_t *self, jb_vmrun_t *vm);
/* A backup of `vm` that will not commit: removes the disk indexes (and manifest) it wrote, on a
 * worker, so that no index is left that no restore point owns. */
void jb_backup_remove_indexes(vb_jobs_t *self, jb_vmrun_t *vm);

#endif
