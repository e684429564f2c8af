/* admin — the control socket's commands: what `vbak` asks the coordinator, answered as JSON.
 * Runs on the coordinator actor's thread. */
#ifndef VB_ADMIN_H
#define VB_ADMIN_H

#include <czmq.h>
#include <jansson.h>

#include "catalog/catalog.h"
#include "error.h"
#include "jobs.h"
#include "registry.h"

typedef struct vb_admin_prune vb_admin_prune_t;

typedef struct {
    vb_catalog_t *catalog;
    vb_registry_t *registry;
    vb_jobs_t *jobs;
    const char *repository;
    const char *repository_key_file;
    int64_t verify_lease_ms; /* a verify job older than this no longer protects its restore point */
    int64_t serve_lease_ms;  /* a serve not renewed for this long no longer protects it */
    const char *enrollment_token_file; /* rewritten by token.rotate */
    const char *repository_credentials_file; /* S3 access key file (a path, never the key) */
    zloop_t *loop;             /* the actor's loop: the prune's worker reports through it */
    vb_admin_prune_t *prune;   /* the prune running on a worker, if any (admin_prune.c) */
} vb_admin_t;

/* How a control command runs (its row's `slow` in the command table, admin.c). */
typedef enum {
    VB_ADMIN_FAST,      /* on the loop */
    VB_ADMIN_INVENTORY, /* slow: the provider's inventory is read on a worker first, then the
                           handler runs on the loop with it (vb_jobs_lend_inventory) */
    VB_ADMIN_WORKER,    /* slow: runs whole on a worker with a provider of its own
                           (vb_admin_on_worker) */
} vb_admin_slow_t;

/* vb_admin_handle's answer for a request whose answer is the status document: the caller
 * answers it once a catalog census counted after the request is in. */
#define VB_ADMIN_AFTER_CENSUS 1
/* ... for `job.show` with wait_ms while the job runs: the caller answers it (calling again with
 * wait_ms removed) once the job has ended or wait_ms have passed, whichever comes first, so a
 * client waiting for a job hears of its end at once instead of at its next poll. */
#define VB_ADMIN_AFTER_JOB 2

/* Checks a request before anything runs: `command` is in the command table, `args_json` (NULL
 * or "" stand for {}) is a JSON object that meets the command's argument schema. 0 with *args
 * set (caller owns), or VB_ENOTFOUND ("unknown command 'x'") or VB_EINVAL (the message names
 * the command and the argument, as vb_args_check's) with *args NULL. Runs no handler. */
int vb_admin_request(const char *command, const char *args_json, json_t **args) VB_WUR;

/* How `command` runs; VB_ADMIN_FAST for one not in the table. */
vb_admin_slow_t vb_admin_slow(const char *command);

/* Runs `command` with `args` (a JSON object that passed vb_admin_request, borrowed). Returns 0
 * with *result set (caller owns), VB_ADMIN_AFTER_CENSUS, VB_ADMIN_AFTER_JOB, or a negative code
 * with the message set. */
int vb_admin_handle(vb_admin_t *self, const char *command, json_t *args, json_t **result);

/* A command that runs whole on a worker thread, with a provider made there (NULL when none
 * could be made); same results as vb_admin_handle. */
typedef int (*vb_admin_worker_fn)(vb_provider_t *p, json_t *args, json_t **result);
/* The worker form of `command`, or NULL when it runs on the loop. */
vb_admin_worker_fn vb_admin_on_worker(const char *command);

/* orphans {delete}: disk files on the datastores that belong to no VM or FCD (removed when
 * `delete`); answers {deleted, count, bytes, orphans: [{path, datastore, size, length,
 * removed}]}. */
int vb_admin_orphans(vb_provider_t *p, json_t *args, json_t **result) VB_WUR;

/* Site commands (admin_site.c). agent.remove {name}: the agent's key is revoked and its tasks
 * requeued; answers {name}. token.rotate {}: a new enrollment token is written to the token file
 * and required from now on (enrolled agents are not affected); answers {token_file}. */
int vb_admin_agent_remove(vb_admin_t *self, json_t *args, json_t **result) VB_WUR;
int vb_admin_token_rotate(vb_admin_t *self, json_t *args, json_t **result) VB_WUR;

/* Prune (admin_prune.c). prune {keep_last, keep_daily, keep_weekly, keep_monthly, repack_below,
 * dry_run}: a prune job (kind prune) whose first step, on a worker thread, opens the repository
 * and checks that it may be written (a refusal fails the job and changes nothing); then on the
 * loop retention decides and the catalog forgets the restore points it removes (a dry run:
 * nothing); then on a worker again their indexes and manifests leave the repository, then garbage
 * collection. Without a loop all of it runs in the call. Answers {job, dry_run} at once; job.show
 * gives the phase while it runs ("opening the repository", "collecting garbage") and `result`
 * once it ended (the restore points with their decisions, removed, kept_in_use, gc {...}). One
 * prune at a time: VB_EBUSY while one runs. */
int vb_admin_prune(vb_admin_t *self, json_t *args, json_t **result) VB_WUR;

/* For job.show of job `id` of kind prune: progress.phase (and phases) while it runs, and
 * `result` from the job's record once it ended (options_json: the job's options). */
void vb_admin_prune_show(vb_admin_t *self, int64_t id, vb_job_state_t state,
                         const char *options_json, json_t *out, json_t *progress);

/* The phase of job `id` when it waits for a worker thread (NULL otherwise): `vbak jobs`. */
const char *vb_admin_worker_phase(const vb_admin_t *self, int64_t id);

/* What runs on worker threads now: a JSON array of {job, kind, phase, running_ms} (caller owns;
 * `vbak status`). */
json_t *vb_admin_background_json(const vb_admin_t *self);

/* Waits for a prune's step in flight (its worker cannot be stopped halfway), then records it:
 * a prune that had not decided yet fails ("run it again") with the catalog as it was. */
void vb_admin_shutdown(vb_admin_t *self);

/* Serve commands (admin_serve.c), the lease of `vbak serve` on a restore point (a job of kind
 * serve). serve.start {rp, disks: [key] (empty: all), host, pid, exports: [{disk, uri}]}: answers
 * {rp, job, vm, repository, key_file, lease_ms, disks: [{key, index, capacity}]}; VB_ENOTFOUND
 * (no such restore point or disk), VB_EINVAL (not complete, no repository). serve.renew {job,
 * host, pid, exports}: the lease runs lease_ms from now; VB_ENOTFOUND when the job is not a
 * running serve (ended or expired). serve.stop {job}: the job succeeds. serves {}: the running
 * serves, oldest first: [{job, rp, vm, started, lease_until, host, pid, exports}]. */
int vb_admin_serve_start(vb_admin_t *self, json_t *args, json_t **result) VB_WUR;
int vb_admin_serve_renew(vb_admin_t *self, json_t *args, json_t **result) VB_WUR;
int vb_admin_serve_stop(vb_admin_t *self, json_t *args, json_t **result) VB_WUR;
int vb_admin_serves(vb_admin_t *self, json_t *args, json_t **result) VB_WUR;

/* Ends the verify and serve jobs whose lease has expired (they no longer protect anything). */
int vb_admin_expire_leases(vb_admin_t *self) VB_WUR;

#endif
