/* site_setup — makes what a vbak site needs to run, with no lab: the coordinator's and the
 * admin's CURVE key pairs, the enrollment token (0600), coordinator.conf and vbak.conf; and the
 * agent.conf of one proxy. `vbak site init` / `vbak site agent-conf` and `vbak lab create` all
 * go through these two functions (the lab adds its own keys as extra pairs).
 *
 * Layout under DIR: coordinator.conf, vbak.conf, catalog.db (made by the coordinator), keys/
 * (0700: coordinator.key, admin.key with their _secret files, enrollment.token). */
#ifndef VB_SITE_SETUP_H
#define VB_SITE_SETUP_H

#include <stdio.h>

#include "error.h"

/* One `key = "value"` line; arrays of these end with a {NULL, NULL} row. */
typedef struct {
    const char *key;
    const char *value;
} vb_conf_pair_t;

typedef struct {
    const char *dir;                         /* absolute path; made (with parents) when absent */
    const char *agent_endpoint;              /* required: where agents connect, tcp://HOST:PORT */
    const char *control_endpoint;            /* NULL: tcp://127.0.0.1:7111 */
    const char *provider;                    /* NULL: lab */
    const char *repository;                  /* NULL: none written */
    const char *catalog;                     /* NULL: DIR/catalog.db */
    const vb_conf_pair_t *coordinator_extra; /* more coordinator.conf keys, or NULL */
    const vb_conf_pair_t *cli_extra;         /* more vbak.conf keys, or NULL */
    const char *written_by; /* for the files' first comment line, e.g. "vbak site init" */
} vb_site_init_t;

/* Makes the site's keys, token and configs in o->dir. Refuses (VB_EEXISTS, naming the file)
 * when any of them exists already: nothing is overwritten. */
int vb_site_init(const vb_site_init_t *o) VB_WUR;

typedef struct {
    const char *name;       /* required: the agent's name */
    const char *endpoint;   /* NULL: the site's agent_endpoint (refused when it is a wildcard) */
    const char *state_dir;  /* NULL: /var/lib/vbak/agent */
    const char *token_file; /* NULL: the site's enrollment_token_file */
    const char *host, *datastore, *luns; /* NULL: not written */
    long slots;                          /* 0: not written (the agent's default) */
    const vb_conf_pair_t *extra;         /* more agent.conf keys, or NULL */
    const char *written_by;
} vb_site_agent_t;

/* Writes the agent.conf of one proxy of the site in `dir` (read from DIR/coordinator.conf and
 * the coordinator's key) to `out`. VB_EINVAL for a bad name or an endpoint agents cannot
 * connect to; the errors of reading the site's files. */
int vb_site_agent_conf(const char *dir, const vb_site_agent_t *a, FILE *out) VB_WUR;

#endif
