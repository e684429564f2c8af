/* lab — a simulated vSphere site on the local machine.
 *
 * A site lives in a directory the caller owns (it may hold other files, e.g. daemon configs):
 *
 *   DIR/site.json        the site: hosts, datastores, VMs, FCDs, proxies, ports (user-editable)
 *   DIR/site.lock        flock(2) that serialises readers and writers of the site
 *   DIR/disks/           raw sparse images of unencrypted disks, served by nbdkit (dir= mode)
 *   DIR/disks-luks/      LUKSv1 images of encrypted disks, served through nbdkit's luks filter
 *   DIR/disks-clear/     plaintext of encrypted disks (the host's decrypted view; never served)
 *   DIR/cbt/EXPORT.log   per-disk change log: lines "GENERATION OFFSET LENGTH"
 *   DIR/tls/client/      ca-cert.pem (the site CA, made with openssl at create; its key is
 *                        deleted once the server certificate is signed)
 *   DIR/tls/server/      ca-cert.pem, server-cert.pem, server-key.pem (0600)
 *   DIR/tls/psk.keys     TLS-PSK keys, GnuTLS format "vbak:HEXKEY" (0600)
 *   DIR/tls/luks.pass    the LUKS passphrase (0600)
 *   DIR/run/NAME.pid     nbdkit pid files while the site is up
 *   DIR/log/NAME.log     nbdkit logs (and openssl.log, luks.log: cryptsetup and qemu-img)
 *
 * Naming (see site.h for the JSON): every disk has an export name (the image's file name, no '/'
 * and no '@'). The disk as it was at snapshot SNAP-ID is the export "EXPORT@SNAP-ID" and the file
 * "IMAGE@SNAP-ID" beside the live image, so a frozen snapshot is reachable over NBD and as a file.
 *
 * URIs (all complete libnbd URIs, export percent-encoded):
 *   nbd_uri    nbd://127.0.0.1:NBD_PORT/EXPORT   (nbd_uri and nbds_uri name the address of the
 *              object's host instead when it has one: hosts[].ipv4, see vb_lab_options_t)
 *   nbd_uri6   nbd://[::1]:NBD_PORT/EXPORT
 *   nbds_uri   nbds://127.0.0.1:TLS_PORT/EXPORT?tls-certificates=DIR/tls/client   (X.509; the
 *              server certificate has SAN IP:127.0.0.1 and DNS:localhost, signed by the site CA;
 *              libnbd 1.14 verifies the IPv4 literal)
 *   nbds_uri6  nbds://vbak@[::1]:TLS_PORT/EXPORT?tls-psk-file=DIR/tls/psk.keys     (TLS-PSK;
 *              libnbd's own connect sends the IPv6 literal as SNI, which nbdkit refuses: connect
 *              the socket yourself and use nbd_set_tls_psk_file + nbd_set_tls_username +
 *              nbd_connect_socket; a wrong key is refused by the handshake)
 *   Encrypted disks are served only over TLS (nbd_uri and nbd_uri6 are absent), on their own
 *   port (LUKS_PORT) through nbdkit's luks filter: the client sees the plaintext.
 *
 * Snapshots are shaped like VMware's (redirect-on-write, common/lab/row.c): for a plain disk the
 * newest snapshot's file "IMAGE@SNAP-ID" is the raw frozen base, the live file "IMAGE" is a sparse
 * delta over it (the blocks written since) and an older snapshot's file is a delta over the next
 * newer one; a delta names its parent in the extended attribute user.vbak.parent. Creating a
 * snapshot allocates no data; removing one consolidates only the blocks written since. The NBD
 * servers (the lab's nbdkit plugin) and vb_lab_disk_copy read through the chain; the file route
 * of the newest snapshot is a plain raw file. Encrypted disks keep whole copies.
 *
 * Writes: NBD servers are writable (restores); snapshot exports are read-only. Writes
 * by NBD clients or through file_uri are not recorded by change tracking; only the lab's own
 * writes (mutate) are. An encrypted disk has a LUKS image (what NBD clients read and write) and a
 * plaintext image (file_uri); whichever was written since the last sync wins, and the lab syncs
 * them at mutate and snapshot create, so a snapshot always holds the latest bytes.
 *
 * All functions return 0 or a negative VB_E* code with a message set (error.h). */
#ifndef VB_LAB_H
#define VB_LAB_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "inventory/inventory.h"

typedef struct {
    int proxies;        /* proxy VMs (one per agent); 0 = 4. Roles cycle: SAN, HotAdd, vSAN, NBD */
    int vms;            /* VMs; 0 = 7 (one per role: VMFS, NFS+snapshot, vSAN, VVOL, linked
                           clone on VVOL, cloud host that requires encryption, a guest file
                           system). Roles cycle. */
    uint64_t disk_size; /* bytes per disk, rounded up to the 64 KiB block; 0 = 64 MiB */
    uint64_t seed;      /* content and layout seed; 0 = 1 */
    /* Hosts with an IPv4 address of their own, "esx-01=10.213.0.21" each, NULL-terminated (NULL:
     * none): their disks' nbd_uri/nbds_uri name that address, the server certificate lists it,
     * and vb_lab_serve_host_start serves them there (a host on a network of its own). */
    const char *const *host_addresses;
} vb_lab_options_t;

/* Writes DIR/site.json, the disk images, TLS material and picks free ports. DIR must exist;
 * VB_EEXISTS if it holds a site already. The default site also has two FCDs (one encrypted),
 * a pre-existing snapshot and a disk whose file name has spaces, #, %, & and non-ASCII. */
int vb_lab_site_create(const char *dir, const vb_lab_options_t *opts) VB_WUR;

/* Starts the nbdkit servers in the background (pid files DIR/run/, logs DIR/log/) and returns
 * when every one accepts connections. VB_EBUSY if they are already running. On failure nothing
 * is left running. */
int vb_lab_serve_start(const char *dir) VB_WUR;

/* Starts the disk servers of one host that has an address of its own (site.json
 * hosts[].ipv4): plain NBD, NBD over TLS (X.509) and the LUKS server, bound to that address only
 * (pid files DIR/run/HOST-NAME.pid), and returns when they accept connections. Run it in the
 * host's network namespace, or wherever that address is configured. VB_EINVAL when the host
 * has no address, VB_EBUSY when its servers run already. */
int vb_lab_serve_host_start(const char *dir, const char *host) VB_WUR;

/* Stops the servers started by vb_lab_serve_start and vb_lab_serve_host_start; nothing is left
 * running. 0 if none ran. */
int vb_lab_serve_stop(const char *dir) VB_WUR;

/* *count = how many of the site's nbdkit servers are running now. */
int vb_lab_serve_running(const char *dir, int *count) VB_WUR;

/* A provider (inventory.h) over the site in DIR. NULL with a message when DIR holds no site.
 * Caller destroys it with vb_provider_destroy. */
vb_provider_t *vb_lab_provider_new(const char *dir);

/* The extents one operation wrote, per disk. */
typedef struct {
    char *disk_key;
    vb_extent_list_t written; /* block-aligned, sorted, merged */
} vb_lab_disk_change_t;

typedef struct {
    vb_lab_disk_change_t *disks;
    size_t count;
} vb_lab_changes_t;

void vb_lab_changes_free(vb_lab_changes_t *changes);

/* Overwrites about `percent` % of the blocks (1..100; 0 = 10) of every disk of VM (or FCD) `vm`,
 * some of them in holes, with new content, and advances each disk's change ID. seed 0 = derived
 * from the site seed and the disk's generation. `out` (may be NULL) receives what was written;
 * caller frees it with vb_lab_changes_free. VB_ENOTFOUND for an unknown VM. */
int vb_lab_mutate(const char *dir, const char *vm, int percent, uint64_t seed,
                  vb_lab_changes_t *out) VB_WUR;

/* Guest file systems. The site's "vm-guest-NN" VMs have one disk of VB_LAB_GUEST_DISK_SIZE
 * (site.json: "guest_fs": "ext4") with an MBR partition table and one Linux partition at
 * VB_LAB_GUEST_FS_OFFSET holding an ext4 file system with a known tree (README, "vbak lab
 * create"): every entry's mtime is VB_LAB_GUEST_MTIME. */
#define VB_LAB_GUEST_DISK_SIZE (64ull << 20)
#define VB_LAB_GUEST_FS_OFFSET (1u << 20)
#define VB_LAB_GUEST_MTIME 1709294400 /* 2024-03-01 12:00:00 UTC */

/* Replaces (or creates) the file `path` (absolute; its directory must exist) in the guest file
 * system of VM `vm` with `len` bytes of `data`, mode 0644, as a guest would write it: the disk
 * blocks that change are written through the disk (its live delta when it has snapshots) and
 * recorded by change tracking, and the change ID advances. `out` (may be NULL) receives what
 * was written; caller frees it with vb_lab_changes_free. VB_ENOTFOUND for an unknown VM,
 * VB_EINVAL when it has no guest file system or the path is bad, VB_EIO when debugfs fails. */
int vb_lab_guest_write(const char *dir, const char *vm, const char *path, const void *data,
                       size_t len, vb_lab_changes_t *out) VB_WUR;

/* Copies the content of disk `disk_key` of VM (or FCD) `vm` — live, or at `snapshot_id` (id or
 * name) when not NULL — to the raw file `dst` (created or replaced, holes kept): the bytes the
 * lab's servers serve for it. A plain disk with snapshots is a chain of files (see below), so its
 * live file alone is not its content. VB_ENOTFOUND for an unknown VM, disk or snapshot. */
int vb_lab_disk_copy(const char *dir, const char *vm, const char *disk_key,
                     const char *snapshot_id, const char *dst) VB_WUR;

/* Snapshots of a VM or FCD. create freezes each disk's content and change ID; *id_out (may be
 * NULL; caller frees) gets the snapshot id ("snapshot-N"). remove takes an id or a name. */
int vb_lab_snapshot_create(const char *dir, const char *vm, const char *name, char **id_out) VB_WUR;
int vb_lab_snapshot_remove(const char *dir, const char *vm, const char *id_or_name) VB_WUR;

/* Storage vMotion: moves the VM's (or FCD's) disks to DATASTORE, which the VM's host must mount
 * (VB_EPOLICY otherwise). Content, export names and change tracking are kept; datastore and path
 * change. While the VM is prepared for access it is refused with VB_EBUSY naming the holder,
 * unless `force` (an administrator who moves it anyway: what a backup must detect). */
int vb_lab_svmotion(const char *dir, const char *vm, const char *datastore, bool force) VB_WUR;

/* VixDiskLib_PrepareForAccess / EndAccess: `who` (e.g. "vbak job 12") holds the VM so that
 * Storage vMotion is blocked; EndAccess releases it (0 also when it was not held). The holder is
 * the VM's "access_blocked_by" field in site.json. */
int vb_lab_prepare_for_access(const char *dir, const char *vm, const char *who) VB_WUR;
int vb_lab_end_access(const char *dir, const char *vm) VB_WUR;

/* Resets change tracking of every disk of VM: new change-ID epoch, old change IDs become
 * unknown (changed_areas answers VB_ENOTFOUND for them). */
int vb_lab_cbt_reset(const char *dir, const char *vm) VB_WUR;

/* Creates VM `name` (the provider's create_vm): on `host` (NULL: the first host that mounts
 * `datastore`; given, it must mount it: VB_EPOLICY), with `n` (1..64) empty sparse disks of the
 * given capacities, registered like the generator's disks: folder `name`, files `name`,
 * `name_1`, ... (export "NAME--STEM"), change tracking on (generation 1, an empty change log),
 * served by the running nbdkit servers at once (dir= mode). The disks are plain: a lab VM made
 * here has no encrypted disk. VB_EEXISTS when a VM or FCD is called `name` or one of the image
 * files exists already (a leftover: see vb_lab_orphans); VB_ENOTFOUND for an unknown datastore
 * or host; VB_EINVAL for a bad name, key or capacity. On failure nothing is left behind. */
int vb_lab_vm_create(const char *dir, const char *name, const char *host, const char *datastore,
                     const vb_inv_new_disk_t *disks, size_t n) VB_WUR;

/* Image files under DIR/disks, DIR/disks-luks and DIR/disks-clear that no VM or FCD disk
 * references, live or at one of its snapshots (the provider's orphans). Temp files of an
 * operation in progress (names ending ".decrypt" or starting with '.') are not listed. The
 * datastore is guessed from the file name's folder part ("FOLDER--STEM") when a VM or FCD of
 * the site keeps disks in that folder, else NULL. With `remove`, each file is deleted (under the
 * site lock, so no lab operation races it). *out: caller frees with vb_inv_orphans_free. */
int vb_lab_orphans(const char *dir, bool remove, vb_inv_orphans_t *out) VB_WUR;

/* Changed areas (the provider's changed_areas, usable without a provider). */
int vb_lab_changed_areas(const char *dir, const char *vm, const char *disk_key,
                         const char *snapshot_id, uint64_t start, const char *change_id,
                         vb_extent_list_t *out, char **new_change_id_out) VB_WUR;

#endif
