/* explain — the transport decision table for a VM × agents, as JSON and as a text table.
 *
 * `vbak explain VM [--agent NAME] [--restore] [--json]` runs vb_transport_decide() for every disk
 * of the VM and every agent (or the one named) and shows, per disk × agent, the chosen mode and
 * why every other mode was not chosen. The coordinator builds the JSON with vb_explain_build()
 * from its inventory and the facts its agents registered; the CLI prints it with --json or
 * renders it with vb_explain_print().
 *
 * JSON: an array, one object per disk × agent, disks in inventory order, agents in the order
 * given; a disk is named by its key, as jobs name it ("disk_key" is the same, kept for old
 * readers; "disk_name" is the display name):
 *   { "vm": "web-01", "disk": "2000", "disk_key": "2000", "disk_name": "Hard disk 1",
 *     "datastore": "vmfs-01", "agent": "proxy-1", "operation": "backup" | "restore",
 *     "chosen": "san" | "hotadd" | "nbdssl" | "nbd" | null,   (null: nothing is allowed)
 *     "route": "vsfile" | "san" | ... | null,  (the disk-layer mode of the chosen route: what the
 *                                               tasks of a job record as their transport)
 *     "why": "sentence: why chosen, or why nothing could be",
 *     "refused": [ { "mode": "nbd", "reason": "sentence", "fallback": false }, ... ],
 *     "order": [ "san", "hotadd", ... ],
 *     "warning": "agent A: VDDK 8.0.1 does not support vSphere 6.5: ..." }  (only when the
 *                agent's VDDK does not support the server's version; see below)
 * `refused` has one entry per mode not chosen, in ranking order (san, hotadd, nbdssl, nbd);
 * `fallback` is true for a mode that is allowed but comes later in the preference order (a failed
 * open falls back to it). `order` is the list of allowed modes, chosen first: what the agent hands
 * to the disk access connect(). */
#ifndef VB_POLICY_EXPLAIN_H
#define VB_POLICY_EXPLAIN_H

#include <jansson.h>
#include <stdio.h>

#include "error.h"
#include "inventory/inventory.h"
#include "policy/transport.h"

/* What the policy needs to know about one agent (from its registration or, in the lab, from the
 * proxy VM it runs on). All pointers borrowed. */
typedef struct {
    const char *name;
    const char *host;        /* ESXi host the proxy VM runs on; NULL: not a VM */
    const char *datastore;   /* datastore the proxy VM sits on; NULL: not a VM */
    const char *const *luns; /* SAN LUNs the agent sees */
    size_t lun_count;
    unsigned transports; /* VB_TRANSPORT_BIT set of modes the agent supports */
    bool vddk;           /* the agent has VixDiskLib (agent.conf vddk_libdir) */
    const char *proxy_vm; /* vSphere moref of the VM the agent runs in; NULL: none. When the
                           * inventory has that VM, its host and the datastore of its first disk
                           * stand for host and datastore (HotAdd attaches disks to it) */
    const char *vddk_version; /* the version its VixDiskLib says it is; NULL: unknown */
} vb_agent_facts_t;

typedef struct {
    const char *vm;                   /* VM (or First Class Disk) name */
    const char *agent;                /* NULL: every agent */
    vb_transport_op_t op;             /* backup or restore */
    const vb_transport_t *preference; /* NULL: default san:hotadd:nbdssl:nbd */
    size_t preference_count;
    const char *server_version; /* the vCenter's/ESXi's API version; NULL: unknown */
} vb_explain_request_t;

/* An agent whose VixDiskLib does not support the server's vSphere version (VDDK of release line
 * N supports vSphere N-2 ... N+1; vddk/vddk_config.h): "agent A: VDDK V does not support vSphere
 * S: ..." into buf and true; false (buf "") when it does or a version is unknown. */
bool vb_explain_vddk_warning(const char *agent, const char *vddk_version,
                             const char *server_version, char *buf, size_t cap);

/* Facts of a lab proxy VM, supporting every mode. The result borrows from *proxy. */
vb_agent_facts_t vb_agent_facts_from_proxy(const vb_inv_proxy_t *proxy);

/* Fills the policy input for one disk of one VM on one agent from the inventory: the disk's
 * datastore (type, hosts, LUN), linked clone (the VM is one or the disk has a parent), the VM's
 * host and snapshots, the agent's datastore type, and the site's and host's encryption
 * requirement. A datastore or host missing from the inventory leaves those facts unknown (NULL),
 * which the policy refuses with a reason. The result borrows from its arguments; its
 * preference is NULL (the default order). */
void vb_explain_input(const vb_inventory_t *inv, const vb_inv_vm_t *vm, const vb_inv_disk_t *disk,
                      const vb_agent_facts_t *agent, vb_transport_op_t op,
                      vb_transport_input_t *out);

/* Builds the JSON array described above into *out (caller owns; json_decref).
 * Returns 0, VB_EINVAL (missing argument), VB_ENOTFOUND (VM not in the inventory, agent name not
 * among `agents`, or no agents at all; the message names what was looked for) or VB_ENOMEM. */
int vb_explain_build(const vb_inventory_t *inv, const vb_agent_facts_t *agents, size_t agent_count,
                     const vb_explain_request_t *req, json_t **out) VB_WUR;

/* Writes the rows of a vb_explain_build() array as a text table, one block per disk × agent:
 *   web-01 / disk 2000 "Hard disk 1" on vmfs-01 / agent proxy-1 (backup)
 *     chosen    san      agent proxy-1 sees LUN ...
 * (a chosen route other than the mode's own is shown: "chosen    nbdssl   route vsfile: ...")
 *     warning   agent proxy-1: VDDK 8.0.1 does not support vSphere 6.5: ...   (when there is one)
 *     fallback  hotadd   allowed, but san comes first ...
 *     refused   nbd      plain NBD is refused: ...
 * Tolerates missing fields (prints "?"), so it can render JSON received from the coordinator. */
void vb_explain_print(FILE *out, const json_t *rows);

#endif
