/* cli_repo — the `vbak repo` commands: init and stats of a repository.
 *
 *   vbak repo init PATH [--chunk-size SIZE] [--compression zstd:N|none] [--encrypt KEYFILE]
 *   vbak repo stats PATH [--json]
 *   vbak repo repair-index PATH
 *
 * argv[0] is "repo". Results go to `out`; an error is one line on `err`. Returns 0 on success,
 * 1 when the operation failed, 2 for a usage error. */
#ifndef VB_CLI_REPO_H
#define VB_CLI_REPO_H

#include <stdio.h>

/* Same as vb_cli_repo_io(argc, argv, stdout, stderr). */
int vb_cli_repo(int argc, char **argv);

int vb_cli_repo_io(int argc, char **argv, FILE *out, FILE *err);

#endif
