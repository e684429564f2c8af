/* inventory — the one interface through which the coordinator sees a vSphere site.
 *
 * Two providers implement it: the lab site (common/lab/) and vSphere over its Web Services API
 * (common/vsphere/). The data types are plain structs the caller owns after a call returns;
 * free them with the matching vb_inv_*_free function. Strings are UTF-8, owned by their struct.
 *
 * Provider methods return 0 or a negative VB_E* code with a message set (error.h). */
#ifndef VB_INVENTORY_H
#define VB_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "policy/transport.h"

typedef struct {
    uint64_t offset;
    uint64_t length;
} vb_extent_t;

/* A growable list of extents in ascending, non-overlapping order. */
typedef struct {
    vb_extent_t *items;
    size_t count;
    size_t capacity;
} vb_extent_list_t;

int vb_extent_list_add(vb_extent_list_t *list, uint64_t offset, uint64_t length) VB_WUR;
void vb_extent_list_free(vb_extent_list_t *list);

/* Bounds a list of allocated blocks to at most max_count extents, in place, by widening it
 * (never narrowing: what is added reads as zeros): extents closer than `gap` are merged, then,
 * while still too many, each extent is widened to whole blocks of `block` bytes (a power of
 * two; the repository's chunk size), doubling the block each round. Returns the block size of
 * the last round (0 when merging the gaps sufficed). */
uint64_t vb_extent_list_bound(vb_extent_list_t *list, uint64_t gap, uint64_t block,
                              size_t max_count);

typedef struct {
    char *name;      /* datastore name, e.g. "vsanDatastore" */
    char *type;      /* summary.type as vSphere spells it: VMFS, NFS, vsan, VVOL, ... */
    char *url;       /* summary.url, may be NULL */
    char *lun;       /* VMFS on SAN: the LUN id; NULL otherwise */
    char **hosts;    /* hosts that mount it */
    size_t host_count;
    uint64_t free_space; /* bytes free (vSphere: summary.freeSpace); 0: unknown */
} vb_inv_datastore_t;

typedef struct {
    char *key;        /* stable disk key within its VM (vSphere: device key, e.g. "2000") */
    char *name;       /* display name, e.g. "Hard disk 1" */
    char *datastore;  /* datastore the disk file is on */
    char *path;       /* datastore path, e.g. "[ds1] vm/vm.vmdk" */
    uint64_t capacity;
    bool encrypted;
    char *change_id;  /* current CBT change ID; NULL when tracking is off */
    char *parent;     /* backing parent path for a linked clone; NULL otherwise */
    char *nbd_uri;    /* how an agent reaches it over the network; NULL when not served */
    char *nbds_uri;
    char *nbd_uri6;
    char *nbds_uri6;
    char *file_uri;   /* direct path (the lab's SAN LUN / HotAdd view); NULL when none */
    /* What the provider can do with the disk, per operation (vb_transport_op_t) and transport
     * mode: the route an agent opens (mode, URI), uri NULL where the provider has none. The lab:
     * file (SAN, HotAdd), NBDSSL and NBD URIs for both. vSphere: the flat file over the
     * datastore HTTP file service for backup reads (mode "vsfile" in the NBDSSL slot, disk.h's
     * vsfile:// form naming a password file, never a password), nothing for restores. */
    vb_route_t routes[2][VB_TRANSPORT_COUNT];
    /* Routes through VixDiskLib, same indexes: vSphere gives a vddk:// route (disk.h) for every
     * mode of a backup and of a restore; an agent with VDDK (agent.conf vddk_libdir) uses one in
     * place of the plain route of its mode, an agent without it cannot (policy/transport.h).
     * The lab: none. */
    vb_route_t vddk_routes[2][VB_TRANSPORT_COUNT];
} vb_inv_disk_t;

typedef struct {
    char *name;
    char *id;           /* provider's identifier (vSphere managed object reference value) */
    char *host;
    bool linked_clone;
    bool is_fcd;        /* a First Class Disk: no VM, one disk */
    char **snapshots;   /* snapshot names, oldest first */
    size_t snapshot_count;
    vb_inv_disk_t *disks;
    size_t disk_count;
} vb_inv_vm_t;

typedef struct {
    char *name;
    char *host;
    char *datastore;
    char **luns;
    size_t lun_count;
} vb_inv_proxy_t;

typedef struct {
    char *name;               /* ESXi host name, e.g. "esx-01" */
    bool require_encryption;  /* host refuses unencrypted NFC/NBD (NoNfcSession=1 sites) */
} vb_inv_host_t;

typedef struct {
    vb_inv_datastore_t *datastores;
    size_t datastore_count;
    vb_inv_host_t *hosts;
    size_t host_count;
    vb_inv_vm_t *vms;          /* VMs, then FCDs (is_fcd) */
    size_t vm_count;
    vb_inv_proxy_t *proxies;   /* lab: the proxy VMs agents run on; vSphere: empty */
    size_t proxy_count;
    bool require_encryption;   /* the whole site forbids plain NBD */
    const char *provider;      /* "lab", "vSphere" (static storage): names it in sentences */
} vb_inventory_t;

void vb_inventory_free(vb_inventory_t **inv_p);

/* Sets disk->routes[op][mode] to a copy of (route_mode, uri); uri NULL leaves no route.
 * VB_ENOMEM. */
int vb_inv_disk_set_route(vb_inv_disk_t *disk, vb_transport_op_t op, vb_transport_t mode,
                          const char *route_mode, const char *uri) VB_WUR;
/* The same for disk->vddk_routes[op][mode]; the route's mode is the transport's name. */
int vb_inv_disk_set_vddk_route(vb_inv_disk_t *disk, vb_transport_op_t op, vb_transport_t mode,
                               const char *uri) VB_WUR;
const vb_inv_vm_t *vb_inventory_find_vm(const vb_inventory_t *inv, const char *name);
const vb_inv_datastore_t *vb_inventory_find_datastore(const vb_inventory_t *inv, const char *name);
const vb_inv_host_t *vb_inventory_find_host(const vb_inventory_t *inv, const char *name);

/* A disk of a VM to create (create_vm). */
typedef struct {
    const char *key;   /* disk key within the new VM; NULL: "2000", "2001", ... by position */
    const char *name;  /* display name; NULL: "Hard disk N" */
    uint64_t capacity; /* bytes; a positive multiple of 512 */
} vb_inv_new_disk_t;

/* A disk file on a datastore that no VM or FCD references (orphans). */
typedef struct {
    char *path;        /* where the file is (lab: an absolute path) */
    char *datastore;   /* the datastore it was on, when it can be guessed; NULL otherwise */
    uint64_t size;     /* bytes the file takes on disk (allocated) */
    uint64_t length;   /* the file's length (a disk's capacity) */
    bool removed;      /* orphans(remove = true): the file is gone */
} vb_inv_orphan_t;

typedef struct {
    vb_inv_orphan_t *items;
    size_t count;
} vb_inv_orphans_t;

void vb_inv_orphans_free(vb_inv_orphans_t *list);

typedef struct vb_provider vb_provider_t;

typedef struct {
    const char *name; /* "lab", "vsphere" */
    /* Reads the whole inventory; caller owns *out. */
    int (*inventory)(vb_provider_t *self, vb_inventory_t **out);
    /* Creates a snapshot named `name` on VM `vm`; *snapshot_id_out (caller owns) identifies it. */
    int (*snapshot_create)(vb_provider_t *self, const char *vm, const char *name,
                           char **snapshot_id_out);
    /* Removes a snapshot by the id snapshot_create returned (or by name). */
    int (*snapshot_remove)(vb_provider_t *self, const char *vm, const char *snapshot_id);
    /* QueryChangedDiskAreas: areas of disk `disk_key` changed since `change_id` ("*": all
     * allocated areas) as seen at `snapshot_id`, from `start`. VB_ENOTFOUND when the change ID is
     * unknown or was reset (the caller then runs a full backup); VB_EUNSUPPORTED when the site
     * cannot answer at all. *new_change_id_out (caller owns) is the disk's change ID at the
     * snapshot. */
    int (*changed_areas)(vb_provider_t *self, const char *vm, const char *disk_key,
                         const char *snapshot_id, uint64_t start, const char *change_id,
                         vb_extent_list_t *out, char **new_change_id_out);
    /* VixDiskLib_PrepareForAccess / EndAccess: while `who` reads the VM, Storage vMotion is
     * blocked. NULL when the provider has no such call. */
    /* The URI through which a disk reached at `uri` is read as it was at `snapshot_id` (caller
     * frees). NULL op: the URI already reads what the snapshot froze. vSphere adds the snapshot's
     * moref to its vddk:// routes and keeps its file-service route as it is. */
    char *(*uri_at_snapshot)(vb_provider_t *self, const char *uri, const char *snapshot_id);
    int (*prepare_for_access)(vb_provider_t *self, const char *vm, const char *who);
    int (*end_access)(vb_provider_t *self, const char *vm);
    /* Creates VM `name` on `datastore` with `n` new, empty disks (they read as zeros), on `host`
     * (NULL: a host that mounts the datastore). VB_EEXISTS when a VM or FCD has that name.
     * NULL when the provider cannot create VMs. */
    int (*create_vm)(vb_provider_t *self, const char *name, const char *host,
                     const char *datastore, const vb_inv_new_disk_t *disks, size_t n);
    /* Disk files on the site's datastores that belong to no VM and no FCD (nor to one of their
     * snapshots): leftovers of Storage vMotion or failed jobs. With `remove`, each is deleted
     * and marked removed. *out is the caller's (vb_inv_orphans_free). NULL when unsupported. */
    int (*orphans)(vb_provider_t *self, bool remove, vb_inv_orphans_t *out);
    /* The server's version (vSphere: the ServiceContent's about.apiVersion), borrowed, read
     * without a call to the server; NULL op or result: none (the lab). */
    const char *(*server_version)(vb_provider_t *self);
    void (*destroy)(vb_provider_t *self);
} vb_provider_ops_t;

struct vb_provider {
    const vb_provider_ops_t *ops;
    void *impl;
};

/* The provider's server_version, or NULL (no provider, no such op). */
const char *vb_provider_server_version(vb_provider_t *self);

/* Calls the provider's destroy and sets *self_p to NULL; NULL is fine. */
void vb_provider_destroy(vb_provider_t **self_p);

#endif
