/* coordinator — the vbak-coordinator actor: agent socket, control socket, ZAP, catalog.
 *
 * vb_coordinator_new() starts the actor and returns once its sockets are bound (or NULL with the
 * message set when something failed: bad key file, port in use, unreadable catalog). Destroying
 * the actor stops it cleanly. Settings are borrowed and must outlive the actor. */
#ifndef VB_COORDINATOR_H
#define VB_COORDINATOR_H

#include <czmq.h>
#include <stdint.h>

#include "config.h"

typedef struct {
    char *agent_endpoint;     /* ROUTER for agents, e.g. tcp://0.0.0.0:7110 */
    char *control_endpoint;   /* ROUTER for the admin CLI */
    char *catalog;            /* SQLite file */
    char *server_key;         /* key pair path (public file; `<path>_secret` beside it) */
    char *enrollment_token_file;
    char *admin_keys;         /* comma-separated Z85 public keys allowed on the control socket */
    int64_t heartbeat_interval_ms;
    int64_t liveness;         /* heartbeats missed before an agent is lost */
    int64_t max_frame_bytes;
    char *log_level;
    char *log_file;           /* NULL: stderr; reopened on SIGHUP */
    char *log_format;         /* text | json */
    char *pid_file;
    char *site;               /* lab site directory (provider = lab) */
    char *provider;           /* lab | vsphere */
    char *vsphere_url;        /* provider = vsphere: https://vcenter[:port] */
    char *vsphere_user;
    char *vsphere_password_file; /* first line: the password (agents read the same file) */
    char *vsphere_ca_file;    /* PEM CAs that verify the server, or: */
    char *vsphere_thumbprint; /* its pinned SHA-256 certificate thumbprint */
    char *vsphere_datacenter; /* dcPath for the file service; NULL: found per datastore */
    char *repository;         /* repository directory (shared with the agents) */
    char *repository_key_file; /* key of an encrypted repository */
    char *repository_credentials_file; /* S3 access key of an s3:// repository */
    int64_t task_bytes;       /* disk bytes per extent task */
    int64_t per_datastore_tasks;
    int64_t per_host_tasks;
    int64_t max_attempts;
    int64_t verify_lease_s;   /* how long a `vbak verify` protects its restore point */
    int64_t serve_lease_s;    /* how long a `vbak serve` lease lasts without renewal */
    int64_t retry_delay_ms;
    int64_t retry_max_delay_ms;
    int64_t retry_deadline_ms;
    int64_t snapshot_retry_ms;
    char *metrics_endpoint;   /* ADDRESS:PORT of /metrics; NULL: not served */
    int64_t metrics_refresh_ms;
    int64_t catalog_copies;   /* catalog copies kept in the repository (0: none) */
    int64_t repository_census_s; /* seconds between listings of the repository (status, metrics) */
} vb_coord_settings_t;

extern const vb_conf_key_t vb_coord_config_table[];

/* Starts the coordinator. NULL (message set) when it cannot start. */
zactor_t *vb_coordinator_new(const vb_coord_settings_t *settings);

#endif
