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
    const char *enrollment_token_file; /* rewritten by token.rotate */
    const char *repository_credentials_file; /* S3 access key file (a path, never the key) */
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

#endif
