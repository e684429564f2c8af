/* admin — the control socket's commands: what `vbak` asks the coordinator, answered as JSON.
 * Runs on the coordinator actor's thread. */
#ifndef VB_ADMIN_H
#define VB_ADMIN_H

#include <jansson.h>

#include "catalog/catalog.h"
#include "error.h"
#include "jobs.h"
#include "registry.h"

typedef struct {
    vb_catalog_t *catalog;
    vb_registry_t *registry;
    vb_jobs_t *jobs;
    const char *repository;
    const char *repository_key_file;
    int64_t verify_lease_ms; /* a verify job older than this no longer protects its restore point */
    int64_t serve_lease_ms;  /* a serve not renewed for this long no longer protects it */
    const char *enrollment_token_file; /* rewritten by token.rotate */
} vb_admin_t;

/* Runs `command` with `args` (a JSON object, borrowed). Returns 0 with *result set (caller owns),
 * or a negative code with the message set. VB_ENOTFOUND for an unknown command is left to the
 * caller (returns 1 when the command is not one of these). */
int vb_admin_handle(vb_admin_t *self, const char *command, json_t *args, json_t **result);

/* Site commands (admin_site.c). agent.remove {name}: the agent's key is revoked and its tasks
 * requeued; answers {name}. token.rotate {}: a new enrollment token is written to the token file
 * and required from now on (enrolled agents are not affected); answers {token_file}. */
int vb_admin_agent_remove(vb_admin_t *self, json_t *args, json_t **result) VB_WUR;
int vb_admin_token_rotate(vb_admin_t *self, json_t *args, json_t **result) VB_WUR;

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
