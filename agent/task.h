/* task — one task of the coordinator, run on its own thread (the "session thread" that opens the
 * disk; VDDK's multithreading rule: open, query allocated blocks and close happen here, while the
 * pipeline's workers only read or write).
 *
 * vb_task_start() copies the packed TaskAssign and starts the thread. When the task is over the
 * thread sends one frame on the actor's pipe: a packed Envelope with the TaskResult, ready to
 * forward to the coordinator. Then it waits for $TERM (zactor_destroy). */
#ifndef VB_TASK_H
#define VB_TASK_H

#include <czmq.h>
#include <stdint.h>

#include "error.h"
#include "repocache.h"

typedef struct {
    const char *repository_key_file; /* borrowed; NULL for an unencrypted repository */
    unsigned workers;                /* pipeline workers */
    const char *vddk_libdir;         /* borrowed; NULL: no VixDiskLib on this agent */
    const char *vddk_config;         /* borrowed; the agent's vddk.conf for VixDiskLib_InitEx */
    const char *repository_credentials_file; /* borrowed; S3 access key file, or NULL */
    unsigned uploads_in_flight; /* pack uploads in flight (vb_store_opts_t); 0: the store's */
    vb_repocache_t *repos; /* borrowed: repositories a restore's tasks share; NULL: each task
                              opens its own */
} vb_task_env_t;

/* `assign_frame` holds a packed Envelope whose body is a TaskAssign; it is copied. `env` is
 * copied too (its strings must outlive the actor). NULL with the message set on failure. */
zactor_t *vb_task_start(zframe_t *assign_frame, const vb_task_env_t *env);

#endif
