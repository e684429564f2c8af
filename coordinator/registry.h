/* registry — the agents a coordinator knows: enrollment, registration, liveness.
 *
 * Backed by the catalog (the source of truth for who is enrolled) with an in-memory view for
 * liveness: last time heard and the ZeroMQ routing id of the agent's current connection.
 * Paranoid Pirate rules: an agent silent past its liveness is `lost`; heard again, `online`.
 * The registry is used by the coordinator actor's thread only. */
#ifndef VB_REGISTRY_H
#define VB_REGISTRY_H

#include <czmq.h>
#include <jansson.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "error.h"
#include "vbak.pb-c.h"

typedef struct vb_registry vb_registry_t;

typedef struct {
    uint64_t refused_token;       /* enrollments with a wrong token */
    uint64_t refused_unknown_key; /* registrations or traffic from keys never enrolled */
    uint64_t refused_name;        /* attempts to take a name enrolled under another key */
    uint64_t refused_facts;       /* enrollments with unusable facts (empty name, ...) */
    uint64_t refused_removed_key; /* enrollments with the key of a removed agent */
    uint64_t enrolled;
    uint64_t registered;
} vb_registry_counters_t;

/* `catalog` is borrowed; `token` is copied. Loads every enrolled agent; each counts as heard
 * at `now_ms`, so agents that were online before a coordinator restart get one liveness
 * period to show up. */
vb_registry_t *vb_registry_new(vb_catalog_t *catalog, const char *token, int64_t now_ms);
void vb_registry_destroy(vb_registry_t **self_p);

/* Enroll: a new key with the site token. Known keys are treated as a registration (the token
 * is not needed again). Returns 0 when accepted, VB_EAUTH / VB_EEXISTS / VB_EINVAL with the
 * reason in the error message when refused. `routing_id` is copied. */
int vb_registry_enroll(vb_registry_t *self, const char *key, zframe_t *routing_id,
                       const Vbak__Enroll *msg, int64_t now_ms) VB_WUR;

/* Register: a known key comes back (restart or reconnect) with its current facts. */
int vb_registry_register(vb_registry_t *self, const char *key, zframe_t *routing_id,
                         const Vbak__Register *msg, int64_t now_ms) VB_WUR;

/* Any other message from `key`: updates liveness and the routing id. VB_ENOTFOUND for a key
 * that is not enrolled. */
int vb_registry_heard(vb_registry_t *self, const char *key, zframe_t *routing_id,
                      int64_t now_ms) VB_WUR;

/* Records the busy slots a heartbeat reports. */
void vb_registry_set_load(vb_registry_t *self, const char *key, uint32_t busy);

/* Marks agents silent for more than `timeout_ms` lost (logged, written to the catalog). */
void vb_registry_purge(vb_registry_t *self, int64_t now_ms, int64_t timeout_ms);

/* Writes the last-seen times heard since the previous flush, in one transaction. */
int vb_registry_flush(vb_registry_t *self) VB_WUR;

/* Calls fn(routing_id, arg) for every online agent with a live connection. */
void vb_registry_foreach_online(vb_registry_t *self, void (*fn)(zframe_t *routing_id, void *arg),
                                void *arg);

/* The agents as a JSON array (name, state, host, datastore, luns, os, slots, busy_slots,
 * transports, version, public_key, enrolled_at, last_seen); caller owns the result. */
json_t *vb_registry_agents_json(vb_registry_t *self);

/* Online and lost counts. */
void vb_registry_census(vb_registry_t *self, size_t *online, size_t *lost);

const vb_registry_counters_t *vb_registry_counters(vb_registry_t *self);

/* Told when an agent becomes usable (online, or registered again: a restarted agent has lost
 * whatever it was running) and when it is lost. `rec` is borrowed for the call. */
typedef void(vb_registry_listener_fn)(void *arg, const vb_agent_record_t *rec, bool online);
void vb_registry_set_listener(vb_registry_t *self, vb_registry_listener_fn *fn, void *arg);

/* Enrollments from now on need `token` (copied); enrolled agents are not affected. */
int vb_registry_set_token(vb_registry_t *self, const char *token) VB_WUR;

/* Removes the agent `name`: its key is revoked in the catalog (refused from then on, even with
 * the token), its running tasks are requeued (the listener hears it go offline), and it is
 * forgotten. VB_ENOTFOUND when no agent has that name. */
int vb_registry_remove(vb_registry_t *self, const char *name, int64_t now_ms) VB_WUR;

/* The name of the agent enrolled with `key` (borrowed), NULL when none. */
const char *vb_registry_name(vb_registry_t *self, const char *key);

/* The routing id of an online agent's connection (borrowed), NULL when it has none. */
zframe_t *vb_registry_route(vb_registry_t *self, const char *name);

#endif
