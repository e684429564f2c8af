/* cli_repo — the `vbak repo` commands: init and stats of a repository.
 *
 *   vbak repo init PATH|URL [--chunk-size SIZE] [--compression zstd:N|none] [--encrypt KEYFILE]
 *                  [--credentials FILE] [--create-bucket]
 *   vbak repo stats PATH|URL [--json] [--credentials FILE]
 *   vbak repo repair-index PATH
 *
 * argv[0] is "repo". Results go to `out`; an error is one line on `err`. Returns 0 on success,
 * 1 when the operation failed, 2 for a usage error. */
#ifndef VB_CLI_REPO_H
#define VB_CLI_REPO_H

#include <stddef.h>
#include <stdio.h>

/* Same as vb_cli_repo_io(argc, argv, stdout, stderr). */
int vb_cli_repo(int argc, char **argv);

int vb_cli_repo_io(int argc, char **argv, FILE *out, FILE *err);

/* The S3 credentials file for a repository command: `given` (--credentials) when not NULL,
 * else vbak.conf's repository_credentials_file (VBAK_CONFIG), else "" (none). */
void vb_cli_repo_credentials(const char *given, char *out, size_t outsz);

#endif
