/* agent — the vbak-agent actor: enrolls or registers with the coordinator over a CURVE DEALER
 * socket, heartbeats both ways, reconnects with backoff when the coordinator goes silent.
 *
 * vb_agent_new() returns once the agent's key pair is loaded (made on first start) and its first
 * connection attempt is under way; NULL with the message set when it cannot start. When the
 * coordinator refuses the agent for good (wrong token, unknown key, name taken), the actor sends
 * "FAILED <reason>" on its pipe and stops. Settings are borrowed and must outlive the actor. */
#ifndef VB_AGENT_H
#define VB_AGENT_H

#include <czmq.h>
#include <stdint.h>

#include "config.h"

typedef struct {
    char *name;
    char *proxy_vm;     /* the VM this agent runs in (vSphere: its moref) */
    char *coordinator_endpoint;
    char *coordinator_public_key;
    char *state_dir;
    char *enrollment_token_file;
    char *host;
    char *datastore;
    char *luns;         /* comma-separated SAN LUN ids the proxy sees */
    char *os;
    char *machine;      /* the machine it runs on ("": /etc/machine-id) */
    int64_t slots;
    char *transports;   /* comma-separated: san,hotadd,nbdssl,nbd */
    int64_t heartbeat_interval_ms;
    int64_t liveness;
    int64_t hello_timeout_ms; /* a Register/Enroll unanswered this long: reconnect */
    int64_t reconnect_initial_ms;
    int64_t reconnect_max_ms;
    int64_t max_frame_bytes;
    char *log_level;
    char *log_file;   /* NULL: stderr; reopened on SIGHUP */
    char *log_format; /* text | json */
    char *pid_file;
    char *vddk_libdir;          /* VDDK install directory; "": no VixDiskLib on this proxy */
    char *vddk_product_name;    /* vixDiskLib.phoneHome.ProductName */
    char *vddk_product_version; /* vixDiskLib.phoneHome.ProductVersion */
    bool no_nfc_session;        /* sites that forbid NFC sessions (NoNfcSession = 1) */
    int64_t nfc_buf_size_64k;   /* 0: VDDK's default */
    int64_t nfc_buf_count;      /* 0: VDDK's default */
    char *repository_key_file;  /* key of an encrypted repository */
    char *repository_credentials_file; /* S3 access key of an s3:// repository */
    int64_t workers;            /* pipeline worker threads per task */
    int64_t s3_uploads_in_flight; /* pack uploads in flight per task on S3 */
} vb_agent_settings_t;

extern const vb_conf_key_t vb_agent_config_table[];

zactor_t *vb_agent_new(const vb_agent_settings_t *settings);

#endif
