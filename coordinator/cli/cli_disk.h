/* cli_disk — `vbak disk`: read a disk through the disk access layer (common/disk/disk.h), the
 * same code the agent uses; the admin's "can this proxy reach that disk" check.
 *
 *   vbak disk cat URI [--out FILE] [--snapshot ID] [--modes M1:M2] [--vddk-libdir DIR]
 *                     [--vddk-config FILE]
 *       The whole disk to stdout, or to FILE with holes kept as holes (the allocation map says
 *       where; all-zero blocks inside allocated extents are skipped too).
 *   vbak disk info URI [--json] [--snapshot ID] [--modes ...] [--vddk-libdir DIR] [--vddk-config F]
 *       Capacity, the mode that opened the disk, modes that failed first and why, and the
 *       allocated extents.
 *
 * URI: any form disk.h documents (every URI `vbak lab show` prints). */
#ifndef VB_CLI_DISK_H
#define VB_CLI_DISK_H

/* argv[0] is "disk". Returns the process exit status: 0 done, 1 failed (one line on stderr
 * starting "vbak disk: "), 2 usage error. */
int vb_cli_disk(int argc, char **argv);

#endif
