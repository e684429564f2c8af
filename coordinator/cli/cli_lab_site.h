/* cli_lab_site — the `vbak lab` subcommands that inspect and change a lab site.
 *
 * Each function takes the arguments after `vbak lab`: argv[0] is the subcommand word ("show",
 * "mutate", ...), options and operands follow. --help/-h prints usage on stdout and returns 0.
 * Errors are one line on stderr ("vbak lab show: ..."); the return value is the process exit
 * status: 0 ok, 1 the operation failed, 2 bad usage.
 *
 *   vbak lab show DIR [--json]
 *   vbak lab mutate DIR VM [--percent P] [--seed S]
 *   vbak lab svmotion DIR VM DATASTORE [--force]
 *   vbak lab snapshot create DIR VM NAME | remove DIR VM ID-OR-NAME | list DIR VM
 *   vbak lab cbt-reset DIR VM
 *   vbak lab access prepare DIR VM WHO | end DIR VM   (PrepareForAccess / EndAccess) */
#ifndef VB_CLI_LAB_SITE_H
#define VB_CLI_LAB_SITE_H

#include <stdbool.h>

int vb_cli_lab_show(int argc, char **argv);
int vb_cli_lab_mutate(int argc, char **argv);
int vb_cli_lab_svmotion(int argc, char **argv);
int vb_cli_lab_snapshot(int argc, char **argv);
int vb_cli_lab_cbt_reset(int argc, char **argv);
int vb_cli_lab_access(int argc, char **argv);

/* True when `sub` is one of the subcommands above. */
bool vb_cli_lab_site_handles(const char *sub);
/* Runs the subcommand named by argv[0] (one of the above); 2 with a message when unknown. */
int vb_cli_lab_site(int argc, char **argv);
/* The usage lines of these subcommands, for `vbak lab --help`. */
const char *vb_cli_lab_site_usage(void);

#endif
