/* disk — disk access shaped like VixDiskLib.
 *
 *   vb_disk_connect(modes in preference order) → vb_disk_open(disk, snapshot) → vb_disk_get_info
 *   → vb_disk_query_allocated_blocks → vb_disk_read / vb_disk_write → vb_disk_close
 *   → vb_disk_disconnect, plus vb_disk_cleanup of what an earlier run left behind.
 *
 * Backends, chosen by the URI scheme of each way the disk can be reached (a "route"):
 *
 *   file:///abs/path  or  /abs/path
 *       A local path: the lab's view of a SAN LUN or a HotAdded disk. pread/pwrite; allocated
 *       blocks from SEEK_DATA/SEEK_HOLE. Default mode "file"; a route may name it "san" or
 *       "hotadd" instead.
 *   nbd://HOST:PORT/EXPORT            nbd://[::1]:PORT/EXPORT                    (mode "nbd")
 *   nbds://HOST:PORT/EXPORT?tls-certificates=DIR                              (mode "nbdssl")
 *       X.509: DIR holds ca-cert.pem; the server certificate is verified against it and against
 *       HOST (an IPv4 literal or a host name). An IPv6 literal with X.509 is REFUSED
 *       (VB_EPOLICY): libnbd 1.14 sends the literal as the TLS SNI name, which the server rejects,
 *       and the only way around it (connecting the socket ourselves) makes libnbd skip the
 *       certificate check. Use TLS-PSK for IPv6, or a host name that resolves to the address.
 *   nbds://USER@HOST:PORT/EXPORT?tls-psk-file=FILE   (also nbds://USER@[::1]:PORT/...)
 *       TLS-PSK: FILE holds "username:hexkey" lines; USER picks the line. vbak connects the TCP
 *       socket itself (no SNI), so it works over IPv6; the key authenticates both ends.
 *       "&tls-username=USER" may replace "USER@"; without either libnbd uses the login name.
 *   Every nbd/nbds connection asks for the "base:allocation" meta context (allocated blocks);
 *   a server without it makes query_allocated_blocks report everything allocated. Unknown URI
 *   parameters are refused (a typo must not silently drop TLS); TLS parameters need nbds://.
 *   vddk://[USER@]HOST[:PORT]/?file=[ds] dir/disk.vmdk&vm=moref=vm-42&thumbprint=AA:BB:..
 *          &transport=san:hotadd:nbdssl:nbd&libdir=DIR&config=FILE&password-file=FILE
 *          &snapshot=snapshot-7&esx=HOST
 *   vddk://[USER@]HOST[:PORT]/?file=[ds] fcd/ID.vmdk&fcd=ID&datastore=datastore-12&...
 *       A First Class Disk: ConnectEx with the vStorageObject spec (specType
 *       VIXDISKLIB_SPEC_VSTORAGE_OBJECT: id = fcd=, datastoreMoRef = datastore=, ssId = the
 *       snapshot), no vmxSpec and no snapshotRef; Open then names the FCD's backing file.
 *       VMware's libvixDiskLib.so, loaded with dlopen from libdir (DIR/lib64/libvixDiskLib.so,
 *       then DIR/libvixDiskLib.so). Query values are percent-decoded ("%20" for a space, "%5B"
 *       may be written "[" literally). HOST may be "local" for VixDiskLib's local mode (file is
 *       then a local path). vm= is the vmxSpec; snapshot= (else the snapshot given to
 *       vb_disk_open) is the snapshotRef of VixDiskLib_ConnectEx; esx= the ESXi host the VM runs on,
 *       which NFC (NBD, NBDSSL) reaches on port 902: errors name it. transport= narrows which
 *       VDDK modes this route offers (default all four). A vddk route is tried once per allowed mode, in the
 *       connection's preference order, each time with that single mode, so the reason each mode
 *       failed is ours to record.
 *   vsfile://HOST[:PORT]/?ds=DATASTORE&path=DIR%2Fx-flat.vmdk[&dc=DATACENTER]
 *          &user=USER&password-file=FILE&(ca-file=PEM|thumbprint=AA:BB:..)       (mode "vsfile")
 *       A vSphere datastore file read over the HTTP file service of https://HOST:PORT
 *       (/folder/PATH?dcPath=DC&dsName=DATASTORE, Range GETs), normally the flat extent of a
 *       monolithic-flat disk. Values are percent-decoded (ds and path carry spaces, '%', '#', '/'
 *       as %20, %25, %23, %2F). The first line of password-file is the password; the URI never
 *       holds it. TLS is always verified: ca-file (PEM CAs) or thumbprint (pinned SHA-256 of the
 *       server certificate; a mismatch names both thumbprints). Without dc the datacenter that
 *       holds the datastore is looked up. Read-only: opening for writing is refused (VB_EPOLICY;
 *       restores into a vSphere VM are not done this way, restores to a file are). The file
 *       service has no allocation map: query_allocated_blocks reports the whole disk allocated
 *       and says so in a log line (probe once, fall back to reading everything). Reads from many
 *       threads at once each borrow one of a few logged-in sessions (one HTTP connection each).
 *       Snapshots: the snapshot argument is only recorded. The vbak-<job> snapshot freezes the
 *       file the disk was backed by when it was taken, and new writes go to a redo log, so the
 *       route names that file (the vCenter simulator keeps no delta disks at all). A disk that
 *       already sits on a delta (earlier snapshots, linked clones) has no flat file to read.
 *
 * Modes: "san", "hotadd", "file", "nbdssl", "nbd", "vsfile". vb_disk_open walks the connection's modes in
 * order and, for each, every route that offers it; the first that opens wins. Every failed
 * attempt is kept as "MODE (URI): reason" (vb_disk_attempt) so a task can report why it fell
 * back. A URI printed with a secret in it never reaches a message: reasons name files, not keys.
 *
 * Snapshots: over NBD and in the lab a disk at a snapshot is its own export/file, so the caller
 * passes the snapshot's URI; the snapshot argument is then only recorded (vb_disk_info_t). For
 * vddk it is the snapshot's managed object reference handed to VixDiskLib_ConnectEx.
 *
 * Threads (VDDK 7.0.3.1 release notes, multithreading caveat): vb_disk_open,
 * vb_disk_query_allocated_blocks and vb_disk_close run on one thread, the one that opened the disk.
 * vb_disk_query_allocated_blocks from any other thread fails with VB_EPOLICY. vb_disk_read and
 * vb_disk_write are safe from any number of worker threads at once; on one nbd or vddk handle they
 * are serialised (one connection), so a reader that wants parallel streams opens the disk once per
 * stream, each on its own thread. Closing from another thread works but logs a warning.
 *
 * All functions return 0 or a negative VB_E* code with a message set (error.h). */
#ifndef VB_DISK_H
#define VB_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "inventory/inventory.h" /* vb_extent_list_t */

typedef struct vb_disk_conn vb_disk_conn_t;
typedef struct vb_disk vb_disk_t;

/* Preference order used when vb_disk_connect_params_t.modes is NULL. */
#define VB_DISK_DEFAULT_MODES "san:hotadd:file:nbdssl:vsfile:nbd"
/* Where libvixDiskLib.so is looked for when neither the params nor the URI say. */
#define VB_DISK_VDDK_DEFAULT_LIBDIR "/usr/lib/vmware-vix-disklib"
/* Hard limit on one vb_disk_read/vb_disk_write request. */
#define VB_DISK_IO_MAX (64u * 1024 * 1024)

typedef struct {
    const char *modes;       /* transport modes in preference order, ':'-separated; NULL: default */
    const char *vddk_libdir; /* vddk: directory of libvixDiskLib.so; NULL: URI libdir=, default */
    const char *vddk_config; /* vddk: config file for VixDiskLib_InitEx; NULL: URI config=, none */
    bool read_only;          /* open disks read-only (backups) */
} vb_disk_connect_params_t;

/* One way to reach a disk: a URI (forms above) and the mode it stands for. mode NULL: from the
 * scheme (file → "file", nbd → "nbd", nbds → "nbdssl", vddk → the VDDK modes in transport=). */
typedef struct {
    const char *mode;
    const char *uri;
} vb_disk_route_t;

typedef struct {
    uint64_t capacity;    /* bytes */
    uint32_t sector_size; /* 512 */
    char mode[16];        /* the transport mode that opened the disk */
    char backend[8];      /* "file", "nbd", "vddk" or "vsfile" */
    char snapshot[128];   /* as given to vb_disk_open ("" when none) */
} vb_disk_info_t;

/* Validates the parameters and returns a connection (caller owns; vb_disk_disconnect). Nothing is
 * contacted yet. VB_EINVAL for an unknown mode. The params' strings are copied. */
int vb_disk_connect(const vb_disk_connect_params_t *params, vb_disk_conn_t **out) VB_WUR;

/* Ends the VDDK session if one was started (VixDiskLib_Exit) and frees; NULL is fine. Close every
 * disk first. */
void vb_disk_disconnect(vb_disk_conn_t **conn_p);

/* Opens a disk through the first mode (in the connection's order) that works, over the routes
 * given. Errors: VB_ENOTFOUND (no route offers any of the connection's modes; missing file;
 * missing libvixDiskLib.so, naming the paths searched), VB_EIO ("cannot reach HOST port PORT"),
 * VB_EAUTH (TLS verification or PSK refused, naming the CA dir or PSK file), VB_EPOLICY
 * (IPv6 literal with X.509). When every attempt fails, the message lists each attempt's reason
 * and the code is that of the last one. Caller owns *out (vb_disk_close). */
int vb_disk_open(vb_disk_conn_t *conn, const vb_disk_route_t *routes, size_t route_count,
                 const char *snapshot, vb_disk_t **out) VB_WUR;

/* vb_disk_open with one route whose mode comes from the URI's scheme. */
int vb_disk_open_uri(vb_disk_conn_t *conn, const char *uri, const char *snapshot,
                     vb_disk_t **out) VB_WUR;

int vb_disk_get_info(const vb_disk_t *disk, vb_disk_info_t *out) VB_WUR;

/* The mode that opened the disk (borrowed, lives with the disk). */
const char *vb_disk_mode(const vb_disk_t *disk);
/* Attempts that failed before the one that opened: "MODE (URI): reason". Borrowed. */
size_t vb_disk_attempt_count(const vb_disk_t *disk);
const char *vb_disk_attempt(const vb_disk_t *disk, size_t i);

/* Appends the allocated extents of [offset, offset+length) to *out (merged, ascending; bytes).
 * Runs only on the thread that opened the disk: VB_EPOLICY from any other thread. When the
 * backend cannot answer (no base:allocation, QueryAllocatedBlocks failed), the whole range is
 * reported allocated, a warning is logged, and *exact_out (may be NULL) is false. Length 0 or a
 * range past the capacity is clipped to the capacity. */
int vb_disk_query_allocated_blocks(vb_disk_t *disk, uint64_t offset, uint64_t length,
                                   vb_extent_list_t *out, bool *exact_out) VB_WUR;
/* The same question without the fallback: non-zero (VB_EUNSUPPORTED when the backend cannot
 * answer), with *out as it was, and nothing logged. */
int vb_disk_try_allocated_blocks(vb_disk_t *disk, uint64_t offset, uint64_t length,
                                 vb_extent_list_t *out) VB_WUR;

/* Reads exactly len bytes at offset (len ≤ VB_DISK_IO_MAX, offset+len ≤ capacity). Any thread.
 * vddk: offset and len need not be sector aligned for reads; writes must be. */
int vb_disk_read(vb_disk_t *disk, void *buf, size_t len, uint64_t offset) VB_WUR;
int vb_disk_write(vb_disk_t *disk, const void *buf, size_t len, uint64_t offset) VB_WUR;

/* Flushes (when written), closes and frees; *disk_p becomes NULL; NULL is fine. Returns the flush
 * error, the disk is closed either way. Call it on the opening thread. */
int vb_disk_close(vb_disk_t **disk_p);

/* Removes what an earlier run left behind for the given route (vddk: VixDiskLib_Cleanup with the
 * route's connection parameters, which cleans the configured tmpDirectory). Other backends keep no
 * state: 0 and both counts 0. Counts may be NULL. */
/* The version of the VDDK library of this connection (its libdir and config), as it names
 * itself in its log when VixDiskLib_InitEx runs ("VMware VixDiskLib (7.0.3) Release ..."): "7.0.3"
 * into out. Loads and initialises the library if it is not yet. VB_ENOTFOUND when it did not
 * say; the load's errors otherwise. */
int vb_disk_vddk_version(vb_disk_conn_t *conn, char *out, size_t cap) VB_WUR;

int vb_disk_cleanup(vb_disk_conn_t *conn, const char *uri, unsigned *cleaned_out,
                    unsigned *remaining_out) VB_WUR;

/* The mode a URI stands for when a route gives none ("file", "nbd", "nbdssl", "vddk", "vsfile").
 * VB_EINVAL for an unknown scheme. Writes at most cap bytes. */
int vb_disk_uri_mode(const char *uri, char *mode, size_t cap) VB_WUR;

#endif
