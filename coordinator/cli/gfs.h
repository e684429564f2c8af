/* gfs — a guest file system of a served disk, read with libguestfs (file-level restore).
 *
 * Guest file systems are untrusted input: libguestfs parses them inside its appliance (a small
 * VM), never in the host kernel. The disk is read through an NBD export on a Unix socket (the
 * restore point served by `vbak serve`), read-only. vb_gfs_open launches the appliance, finds the
 * partitions and file systems, and mounts the first one it can read, read-only, at "/".
 *
 * The appliance needs hardware virtualisation to start quickly. vb_gfs_accel decides up front
 * whether KVM is usable (a /dev/kvm that opens, the CPU's vmx/svm flag, and not the nested
 * "PVM" kvm module on which qemu aborts or hangs); when it is not, the appliance runs under TCG
 * (emulation: LIBGUESTFS_BACKEND=direct with the backend setting force_tcg), which works but
 * takes 15-30 s to launch. All functions return 0 or a negative VB_E* code with a message set. */
#ifndef VB_GFS_H
#define VB_GFS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct vb_gfs vb_gfs_t;

/* Whether KVM is usable here: true, or false with the reason in `why`. */
bool vb_gfs_kvm_usable(char *why, size_t size);

/* Launches the appliance on the NBD export `export_name` served at Unix socket `socket_path`,
 * mounts the disk's first readable file system read-only. *out: destroy with vb_gfs_destroy.
 * VB_ECORRUPT when no partition or whole disk holds a file system that mounts (the message
 * names each one tried and why it failed); VB_EIO for other libguestfs failures. libguestfs
 * bounds nothing itself (a launch that hangs waits 20 minutes): callers arm a watchdog. */
int vb_gfs_open(const char *socket_path, const char *export_name, vb_gfs_t **out) VB_WUR;
void vb_gfs_destroy(vb_gfs_t **self_p);

/* What the launch used and how long it took, e.g. "TCG (no usable KVM: /dev/kvm is missing)"
 * and the seconds; the mounted device and its type ("/dev/sda1", "ext4"). Borrowed. */
const char *vb_gfs_accel_text(const vb_gfs_t *self);
double vb_gfs_launch_seconds(const vb_gfs_t *self);
const char *vb_gfs_device(const vb_gfs_t *self);
const char *vb_gfs_fs_type(const vb_gfs_t *self);

/* The entries of directory `path` (or the one entry when `path` is not a directory), sorted by
 * name: [{name, path, type: "file"|"dir"|"symlink"|"other", mode (permission bits), size,
 * mtime (seconds), target (symlinks: the link text, never followed)}]. Caller owns *out.
 * VB_ENOTFOUND when path does not exist. */
int vb_gfs_ls(vb_gfs_t *self, const char *path, json_t **out) VB_WUR;

/* Copies `path` (a file, a symlink as a symlink, a directory with everything under it) into
 * directory `to_dir` under its base name, with its mode and mtime; a file's runs of zero bytes
 * become holes, so a sparse file stays sparse. *bytes: the file bytes written. VB_EEXISTS when
 * the target exists, VB_ENOTFOUND when path does not. */
int vb_gfs_get(vb_gfs_t *self, const char *path, const char *to_dir, size_t *bytes) VB_WUR;

/* Entries gets of this session skipped because the guest could not read them (each named on
 * stderr); the caller fails once everything else is done. */
unsigned vb_gfs_unreadable(const vb_gfs_t *self);

/* A guest's names are bytes, not always UTF-8 (a Latin-1 name from an old system), and JSON
 * strings must be UTF-8: sets `key` to the bytes when they are UTF-8; otherwise `key` to a
 * readable form (every byte from 0x80 up as \xNN) and `key`_hex to the bytes in hex. Nonzero
 * when out of memory. */
int vb_gfs_json_set_bytes(json_t *obj, const char *key, const char *bytes) VB_WUR;

/* The local file a get is writing now ("" when none): a signal handler that ends the program
 * (a --timeout) removes it, so no partial copy is left. Async-signal-safe to read. */
const char *vb_gfs_partial_file(void);

/* Mounts the file system read-only at the local directory `dir` (FUSE) and serves it until it
 * is unmounted (fusermount -u DIR): `ready` is called once the mount is visible. */
int vb_gfs_mount_run(vb_gfs_t *self, const char *dir, void (*ready)(void *arg), void *arg) VB_WUR;

#endif
