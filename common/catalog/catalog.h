/* catalog — vbak's SQLite catalog. The only module that includes <sqlite3.h>; all SQL lives here.
 *
 * One connection, used by one thread (the coordinator actor). WAL journal, foreign keys on,
 * a busy timeout, statements prepared once. The schema is migrated on open, keyed on
 * PRAGMA user_version; a catalog from a newer vbak is refused.
 *
 * Records returned to the caller are plain structs the caller owns; free them with the matching
 * *_free function. */
#ifndef VB_CATALOG_H
#define VB_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct vb_catalog vb_catalog_t;

/* What an agent says about itself (wire AgentFacts) plus what the catalog knows of it. */
typedef struct {
    char *name;
    char *public_key;   /* CURVE public key, Z85 text (40 characters) */
    char *host;
    char *datastore;
    char **luns;
    size_t lun_count;
    char *os;
    uint32_t slots;
    char **transports;
    size_t transport_count;
    char *version;
    char *state;        /* "online" or "lost" */
    int64_t enrolled_at; /* Unix seconds */
    int64_t last_seen;   /* Unix milliseconds */
} vb_agent_record_t;

/* Frees the strings of one record (not the record itself) and zeroes it. */
void vb_agent_record_clear(vb_agent_record_t *rec);
/* Frees an array of records returned by vb_catalog_agents_list. */
void vb_agent_records_free(vb_agent_record_t **recs_p, size_t count);
/* Deep copy; returns VB_ENOMEM on failure. */
int vb_agent_record_copy(vb_agent_record_t *dst, const vb_agent_record_t *src) VB_WUR;

/* Opens (creating if needed) the catalog at `path` and migrates it. NULL on failure, with the
 * message set. */
vb_catalog_t *vb_catalog_open(const char *path);
void vb_catalog_destroy(vb_catalog_t **self_p);

/* The schema version this build writes. */
int vb_catalog_schema_version(void);

int vb_catalog_begin(vb_catalog_t *self) VB_WUR;
int vb_catalog_commit(vb_catalog_t *self) VB_WUR;
void vb_catalog_rollback(vb_catalog_t *self);

/* Inserts a newly enrolled agent. VB_EEXISTS when the name or the key is taken (message says
 * which). `rec->state`, `enrolled_at` are set by the catalog. */
int vb_catalog_agent_enroll(vb_catalog_t *self, const vb_agent_record_t *rec, int64_t now_ms) VB_WUR;

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

/* All agents ordered by name. Caller frees with vb_agent_records_free. */
int vb_catalog_agents_list(vb_catalog_t *self, vb_agent_record_t **out, size_t *count) VB_WUR;

#endif
