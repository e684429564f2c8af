/* vddk_config — the VDDK configuration file an agent hands to VixDiskLib_InitEx, and the check
 * of a vCenter/ESXi version against what VDDK 7.0.3.1 supports.
 *
 * Keys written (VDDK names them; release notes 7.0.3 / 7.0.3.1 and the VDDK programming guide):
 *   tmpDirectory                                a fixed directory per agent: with VDDK's default
 *                                               the folder can change from job to job and
 *                                               VixDiskLib_Cleanup misses leftovers
 *   vixDiskLib.phoneHome.ProductName            vendor details, else VMware analytics shows
 *   vixDiskLib.phoneHome.ProductVersion         "Unknown"; legal characters: letters A-Z a-z,
 *                                               digits, '_', '-', '.', space; double quotes are
 *                                               mandatory when the value has a space
 *   vixDiskLib.phoneHome.DatabaseDir            optional folder for phone-home data
 *   vixDiskLib.transport.hotadd.NoNfcSession    1 on sites that forbid NFC sessions (cloud / VMC)
 *   vixDiskLib.nfcAio.Session.BufSizeIn64KB     NBD/NBDSSL async I/O buffer size, in 64 KiB units
 *                                               (VDDK default 1)
 *   vixDiskLib.nfcAio.Session.BufCount          number of those buffers (VDDK default 4); VDDK
 *                                               fails to open disks when size × count per
 *                                               session passes 16 MiB
 * A value is written bare, or in double quotes when it contains a space. */
#ifndef VB_VDDK_CONFIG_H
#define VB_VDDK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define VB_VDDK_KEY_TMP_DIRECTORY "tmpDirectory"
#define VB_VDDK_KEY_PRODUCT_NAME "vixDiskLib.phoneHome.ProductName"
#define VB_VDDK_KEY_PRODUCT_VERSION "vixDiskLib.phoneHome.ProductVersion"
#define VB_VDDK_KEY_DATABASE_DIR "vixDiskLib.phoneHome.DatabaseDir"
#define VB_VDDK_KEY_NO_NFC_SESSION "vixDiskLib.transport.hotadd.NoNfcSession"
#define VB_VDDK_KEY_NFC_BUF_SIZE "vixDiskLib.nfcAio.Session.BufSizeIn64KB"
#define VB_VDDK_KEY_NFC_BUF_COUNT "vixDiskLib.nfcAio.Session.BufCount"

/* Longest phone-home string accepted (a sanity limit, not a VDDK one). */
#define VB_VDDK_PHONE_HOME_MAX 128
/* VDDK refuses to open a disk when BufSizeIn64KB × 64 KiB × BufCount passes this. */
#define VB_VDDK_NFC_SESSION_MAX (16u * 1024 * 1024)

/* The settings. Strings are borrowed (the caller keeps them alive while it validates or writes).
 * NULL / 0 means "not written: VDDK's default". */
typedef struct {
    const char *tmp_directory;   /* required: absolute path, no '"', no control characters */
    const char *product_name;    /* phone-home vendor/application name */
    const char *product_version; /* phone-home version */
    const char *database_dir;    /* optional phone-home data folder (absolute path) */
    bool no_nfc_session;         /* NoNfcSession = 1 (always written, 0 or 1) */
    int64_t nfc_buf_size_64k;    /* 0: not written; else 1.. */
    int64_t nfc_buf_count;       /* 0: not written; else 1.. */
} vb_vddk_config_t;

/* Defaults: product "vbak", version VB_VERSION, NoNfcSession 0, NFC buffers not written, and
 * tmp_directory as given (borrowed). */
void vb_vddk_config_init(vb_vddk_config_t *cfg, const char *tmp_directory);

/* The fixed tmpDirectory of an agent: "<state_dir>/vddk-tmp/<agent_name>" into buf.
 * VB_EINVAL when state_dir is not absolute or agent_name is empty, ".", "..", or has '/' or a
 * character outside letters, digits, '_', '-', '.'; VB_ENOMEM when buf is too small. */
int vb_vddk_tmp_directory(const char *state_dir, const char *agent_name, char *buf,
                          size_t size) VB_WUR;

/* Checks a phone-home value: VB_EINVAL with a message naming `key`, the character class and
 * where it is, e.g.
 *   vixDiskLib.phoneHome.ProductName: '/' at position 5 of "Acme/Backup" is not allowed
 *   (legal: letters A-Z a-z, digits, '_', '-', '.', space)
 * Control characters and non-ASCII bytes are named as such with their byte value. */
int vb_vddk_check_phone_home(const char *key, const char *value) VB_WUR;

/* Checks every setting; the first problem gives VB_EINVAL with a message naming the key. */
int vb_vddk_config_validate(const vb_vddk_config_t *cfg) VB_WUR;

/* Validates, then writes the file at `path`: to a temp file in the same directory, fsync, mode
 * 0644, rename over `path`. Returns 0, VB_EINVAL (validation) or VB_EIO (message names the path
 * and the system error); on error `path` is untouched and no temp file is left. */
int vb_vddk_config_write(const vb_vddk_config_t *cfg, const char *path) VB_WUR;

/* The VDDK 7.0 support policy (N-2 … N+1) as the concrete range vSphere 6.5 through 8.x:
 * 6.5, 6.7, 7.x and 8.x with their updates ("6.7.3", "7.0.3.1", "8.0 U2", "7.0U3") give 0;
 * anything else (6.0, 5.5, 9.x, ...) gives VB_EUNSUPPORTED with a sentence naming the version
 * and the supported range; text that is not a version gives VB_EINVAL. Accepts what vSphere's
 * AboutInfo.version / apiVersion carry ("7.0.3", "8.0.2.0") and the way people write updates. */
int vb_vddk_check_server_version(const char *version) VB_WUR;

/* Whether VDDK `vddk_version` ("7.0.3", from the library's own log line) supports the vSphere
 * `server_version` (AboutInfo.apiVersion): VMware's policy is that VDDK of release line N works
 * with vSphere N-2 through N+1, the lines being 5.5, 6.0, 6.5, 6.7, 7.0, 8.0, 9.0 (VDDK 7.0:
 * vSphere 6.5 through 8.0). 0 inside that range; VB_EUNSUPPORTED with one sentence naming both
 * versions, the range and the fix outside it; VB_EINVAL when either is not a version (or the
 * VDDK's line is unknown). */
int vb_vddk_check_compat(const char *vddk_version, const char *server_version) VB_WUR;

#endif
