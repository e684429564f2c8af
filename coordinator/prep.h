/* prep — the slow parts of a VM's backup, off the coordinator's thread. Starting: create the
 * snapshot, PrepareForAccess, and ask changed block tracking for each disk (the change ID at the
 * snapshot, and for an incremental the areas changed since the parent). A snapshot of a large VM
 * or a busy vCenter can take minutes; the coordinator keeps serving agents meanwhile.
 *
 * The thread uses its own provider (made by the factory in the thread) and never touches the
 * catalog: the caller records the snapshot intent before starting it and the outcome after. */
#ifndef VB_PREP_H
#define VB_PREP_H

#include <czmq.h>
#include <stdbool.h>

#include "inventory/inventory.h"

typedef vb_provider_t *(*vb_provider_factory_fn)(void *ctx);

typedef struct {
    char *vm;
    char *snapshot_name;
    char *who;                 /* PrepareForAccess holder, e.g. "vbak job 7" */
    size_t ndisks;
    char **disk_keys;
    char **parent_change_ids;  /* per disk; all NULL for a full backup */
    bool incremental;
} vb_prep_request_t;

typedef struct {
    int rc;                    /* 0, or why the snapshot or access failed */
    char *error;
    char *snapshot_id;         /* set whenever the snapshot exists, even after a later failure */
    bool access;               /* PrepareForAccess in effect */
    bool incremental;          /* still incremental after asking CBT */
    char *full_reason;         /* why it became a full backup */
    char **change_ids;         /* per disk, at the snapshot (NULL entries when unknown) */
    vb_extent_list_t *areas;   /* per disk: changed areas of an incremental */
    size_t ndisks;
    /* Unix ms when the snapshot's creation began, it returned (PrepareForAccess began), that
     * returned (the change-tracking queries began) and they returned; 0: not reached */
    int64_t times[4];
} vb_prep_result_t;

/* Starts the thread; takes ownership of req. NULL (message set) when it cannot start. */
zactor_t *vb_prep_start(vb_prep_request_t *req, vb_provider_factory_fn factory, void *ctx);

/* Reads the result the thread sent (call when the actor is readable); caller frees it. */
vb_prep_result_t *vb_prep_receive(zactor_t *actor);

void vb_prep_request_free(vb_prep_request_t **req_p);
void vb_prep_result_free(vb_prep_result_t **res_p);

/* The other end of a backup, on a thread of its own as well: EndAccess (when end_access) and
 * the removal of the snapshot (when snapshot is set: its id, or its name when the id was never
 * learnt). A snapshot already gone counts as removed, and a VM that is gone has no access left
 * to end. */
typedef struct {
    char *vm;
    char *snapshot; /* NULL: none to remove */
    bool end_access;
} vb_release_request_t;

typedef struct {
    bool access_ended;     /* EndAccess done (or not asked for) */
    bool snapshot_removed; /* removed, found gone, or not asked for */
    char *error;           /* why one of them failed; NULL when both are done */
} vb_release_result_t;

/* Starts the thread; takes ownership of req. NULL (message set) when it cannot start. */
zactor_t *vb_release_start(vb_release_request_t *req, vb_provider_factory_fn factory, void *ctx);

/* Reads the result the thread sent; caller frees it. */
vb_release_result_t *vb_release_receive(zactor_t *actor);

/* Runs a release on this thread with `p` (a coordinator without an event loop, and tests). */
vb_release_result_t *vb_release_run(const vb_release_request_t *req, vb_provider_t *p);

void vb_release_request_free(vb_release_request_t **req_p);
void vb_release_result_free(vb_release_result_t **res_p);

/* A restore's preparation, on a thread of its own: the removal of the target VM's snapshots
 * (--delete-snapshots), the creation of a new VM (--new-vm), then the inventory read again so the
 * job sees the VM as it is now. Either can take minutes on a busy vCenter. */
typedef struct {
    char *vm;         /* the VM whose snapshots go */
    char **snapshots; /* their names, in the inventory's order */
    size_t nsnapshots;
    char *new_vm; /* NULL: no VM to create */
    char *datastore;
    vb_inv_new_disk_t *disks; /* key and name strings owned by the request */
    size_t ndisks;
} vb_restore_prep_request_t;

typedef struct {
    int rc;              /* 0, or why a removal, the creation or the inventory failed */
    char *error;
    vb_inventory_t *inv; /* the inventory after the changes (caller owns it); NULL on failure */
} vb_restore_prep_result_t;

/* Starts the thread; takes ownership of req. NULL (message set) when it cannot start. */
zactor_t *vb_restore_prep_start(vb_restore_prep_request_t *req, vb_provider_factory_fn factory,
                                void *ctx);

/* Runs a restore's preparation on this thread with `p` (a coordinator without an event loop). */
vb_restore_prep_result_t *vb_restore_prep_run(const vb_restore_prep_request_t *req,
                                              vb_provider_t *p);

/* Reads the result the thread sent; caller frees it. */
vb_restore_prep_result_t *vb_restore_prep_receive(zactor_t *actor);

void vb_restore_prep_request_free(vb_restore_prep_request_t **req_p);
void vb_restore_prep_result_free(vb_restore_prep_result_t **res_p);

#endif
