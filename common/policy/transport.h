/* transport — which transport mode an agent uses for a disk, and why every other mode was refused.
 *
 * vb_transport_decide() is a pure function: it reads only its input, allocates nothing, cannot
 * fail, and gives the same answer for the same input. The planner and scheduler call it per
 * disk × agent; `vbak explain` (policy/explain.h) prints its answer. The rules are those of
 * DESIGN.md "Transport policy", which come from the VDDK 7.0.3.1 release notes.
 *
 * Modes are spelled as VDDK spells them: "san", "hotadd", "nbdssl", "nbd". The default preference
 * order is san:hotadd:nbdssl:nbd; the scheduler's ranking (SAN > HotAdd > NBDSSL > NBD) is the
 * same order (vb_transport_rank).
 *
 * Rules, and the order in which they are checked for each mode (the first rule that refuses a
 * mode gives its reason: facts about the disk and the VM first, then where the agent sits, then
 * what the agent supports, then the preference order):
 *
 * SAN
 *   1. never on a `vsan` or `VVOL` datastore (VDDK rejects SAN for vSAN and vVols since 6.7);
 *   2. only on a VMFS datastore that sits on a SAN LUN (NFS and other file datastores have no LUN;
 *      a VMFS datastore without a LUN is local storage);
 *   3. restore only into a VM without snapshots (the release notes make deleting pre-existing
 *      snapshots mandatory for SAN restores);
 *   4. only when the agent sees the datastore's LUN.
 * HotAdd — "co-located" read as: the proxy VM can have the disk attached to itself, which takes
 *   all of the following:
 *   1. not for a linked clone on a vVol datastore (known 7.0.3 regression: the proxy VM may
 *      become invalid);
 *   2. only on the datastore types these rules know (VMFS, NFS, NFS41, vsan, VVOL): a type such
 *      as `OTHER` (local or unknown storage) is read over the network only, as nothing says a
 *      proxy may attach its disks safely;
 *   3. the agent must be a VM on an ESXi host (host and datastore known);
 *   4. a disk on a vSAN datastore only from a proxy whose own datastore is that same vSAN
 *      datastore (release notes: target on vSAN + proxy elsewhere is not supported);
 *   5. the agent's host must mount the disk's datastore (a host cannot attach a disk it cannot
 *      reach);
 *   6. a disk on an NFS datastore (`NFS` or `NFS41`) only from a proxy on the VM's own host (NFS
 *      locks taken from another host stun the VM).
 * NBDSSL
 *   no placement rule: any host that serves the disk can serve it over TLS.
 * NBD
 *   1. refused where the site or the VM's host requires encrypted transfers (NoNfcSession=1).
 * All modes
 *   - a mode for which the inventory provider has no route to the disk (for this operation) is
 *     refused with that reason: the policy chooses only what can be done (the vSphere provider
 *     reads disks through VixDiskLib in every mode, or over the datastore file service in the
 *     NBDSSL slot, and writes none);
 *   - a mode whose only route goes through VixDiskLib is refused for an agent without it
 *     ("agent X has no vddk_libdir: VixDiskLib modes unavailable; the datastore file service is
 *     used"); an agent with it prefers the VixDiskLib route over the plain one;
 *   - a mode the agent does not support is refused with that reason;
 *   - a mode missing from the preference order is refused with that reason.
 *
 * The chosen mode is the first mode of the preference order that no rule refuses. Modes that are
 * allowed but come later in the order are reported as fallbacks (a failed open falls back to the
 * next allowed mode, DESIGN.md); `order` lists the allowed modes, chosen first. */
#ifndef VB_POLICY_TRANSPORT_H
#define VB_POLICY_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef enum {
    VB_TRANSPORT_NONE = -1,
    VB_TRANSPORT_SAN = 0,
    VB_TRANSPORT_HOTADD = 1,
    VB_TRANSPORT_NBDSSL = 2,
    VB_TRANSPORT_NBD = 3,
} vb_transport_t;

#define VB_TRANSPORT_COUNT 4
/* Bit of a mode in a set of modes (vb_transport_input_t.agent_transports). */
#define VB_TRANSPORT_BIT(m) (1u << (unsigned)(m))
#define VB_TRANSPORT_ALL 0xfu

typedef enum { VB_OP_BACKUP = 0, VB_OP_RESTORE = 1 } vb_transport_op_t;

/* How an agent reaches a disk with one transport mode: the disk-layer mode that opens it (the
 * transport's own name, or "vsfile": vSphere's HTTPS datastore file service, in the NBDSSL slot)
 * and the URI. uri NULL: the provider has no route for that mode. Strings owned by whoever holds
 * the route (an inventory disk). */
typedef struct {
    char *mode;
    char *uri;
} vb_route_t;

/* Longest reason or "why chosen" sentence, with its NUL; longer sentences are cut. */
#define VB_TRANSPORT_REASON_MAX 512

/* Everything the decision depends on. All pointers are borrowed for the duration of the call;
 * any string may be NULL (unknown), which refuses the modes that need it. */
typedef struct {
    /* the disk and its VM */
    const char *vm;                     /* VM name, for the sentences */
    const char *datastore;              /* the disk's datastore name */
    const char *datastore_type;         /* VMFS, NFS, NFS41, vsan, VVOL (summary.type) */
    const char *const *datastore_hosts; /* hosts that mount the disk's datastore */
    size_t datastore_host_count;
    const char *datastore_lun; /* the datastore's SAN LUN; NULL when not on a LUN */
    bool linked_clone;         /* the disk is (part of) a linked clone */
    const char *vm_host;       /* the host the VM runs on */
    bool vm_has_snapshots;     /* pre-existing snapshots on the VM */
    /* what the provider can do for this disk and operation: VB_TRANSPORT_COUNT routes indexed
     * by mode; NULL: every mode has a route of its own name */
    const vb_route_t *routes;
    /* routes through VixDiskLib (vSphere's vddk:// routes), VB_TRANSPORT_COUNT indexed by mode;
     * NULL: none. An agent with VDDK (agent_vddk) uses such a route in place of the plain one;
     * an agent without it uses the plain route, and a mode that has only a VDDK route is refused
     * for it ("agent X has no vddk_libdir: ..."). */
    const vb_route_t *vddk_routes;
    const char *provider; /* "lab", "vSphere": names the provider in the sentences */
    /* the agent */
    const char *agent;           /* agent name, for the sentences */
    const char *agent_host;      /* host the proxy VM runs on; NULL: not a VM */
    const char *agent_datastore; /* datastore the proxy VM sits on */
    const char *agent_datastore_type;
    const char *const *agent_luns; /* LUNs the agent sees */
    size_t agent_lun_count;
    unsigned agent_transports; /* VB_TRANSPORT_BIT set of modes the agent supports */
    bool agent_vddk;           /* the agent has VixDiskLib (agent.conf vddk_libdir) */
    /* the job and the site */
    vb_transport_op_t op;
    bool site_requires_encryption;    /* the whole site forbids plain NBD */
    bool host_requires_encryption;    /* the VM's host forbids plain NBD */
    const vb_transport_t *preference; /* NULL: default san:hotadd:nbdssl:nbd */
    size_t preference_count;
} vb_transport_input_t;

typedef struct {
    bool allowed;                         /* no rule refuses this mode */
    char reason[VB_TRANSPORT_REASON_MAX]; /* why not chosen; "" for the chosen mode */
} vb_transport_verdict_t;

typedef struct {
    vb_transport_t chosen; /* VB_TRANSPORT_NONE when nothing is allowed */
    char route[16];        /* disk-layer mode of the chosen route ("vsfile", or the chosen mode's
                            * name); "" when nothing is chosen */
    char why[VB_TRANSPORT_REASON_MAX]; /* why chosen (or why nothing could be chosen) */
    vb_transport_verdict_t verdicts[VB_TRANSPORT_COUNT]; /* indexed by vb_transport_t */
    vb_transport_t order[VB_TRANSPORT_COUNT]; /* allowed modes, chosen first, then fallbacks */
    size_t order_count;
    bool via_vddk[VB_TRANSPORT_COUNT]; /* the mode's route is the input's vddk_routes[mode] */
} vb_transport_decision_t;

/* Decides. Pure: fills *out from *in only. */
void vb_transport_decide(const vb_transport_input_t *in, vb_transport_decision_t *out);

/* "san", "hotadd", "nbdssl", "nbd"; "none" for VB_TRANSPORT_NONE or an unknown value. */
const char *vb_transport_name(vb_transport_t mode);

/* Parses a mode name (case-insensitive). VB_EINVAL naming the word and the valid names. */
int vb_transport_from_name(const char *name, vb_transport_t *out) VB_WUR;

/* Parses a preference order "san:hotadd:nbdssl:nbd" (':' or ',' between modes) into out[],
 * *count_out modes. VB_EINVAL for an empty list, an unknown mode or a mode named twice. */
int vb_transport_parse_order(const char *text, vb_transport_t out[VB_TRANSPORT_COUNT],
                             size_t *count_out) VB_WUR;

/* The default preference order san:hotadd:nbdssl:nbd (static storage, VB_TRANSPORT_COUNT long). */
const vb_transport_t *vb_transport_default_order(void);

/* The scheduler's ranking: 0 for SAN (best), 1 HotAdd, 2 NBDSSL, 3 NBD, VB_TRANSPORT_COUNT for
 * VB_TRANSPORT_NONE. Lower is better. */
int vb_transport_rank(vb_transport_t mode);

/* qsort-style comparison by rank: negative when a is the better transport. */
int vb_transport_compare(vb_transport_t a, vb_transport_t b);

#endif
