/* cli — pieces the `vbak` admin CLI's commands share: its settings (vbak.conf), the call to the
 * coordinator's control socket, and table output. Each command group lives in cli_<group>.c and
 * exposes `int vb_cli_<group>(vb_cli_t *cli, int argc, char **argv)` returning the process exit
 * code (0 ok, 1 failed, 2 bad usage); argv[0] is the command's own name. */
#ifndef VB_CLI_H
#define VB_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

typedef struct {
    char *control_endpoint;
    char *coordinator_public_key;
    char *admin_key;   /* key pair path of this CLI's admin identity */
    char *site;        /* lab site directory, when the CLI drives a lab */
    int64_t timeout_ms;
    char *repository_credentials_file; /* S3 access key file for the repository commands */
} vb_cli_settings_t;

extern const vb_conf_key_t vb_cli_config_table[];

typedef struct {
    vb_cli_settings_t settings;
    bool configured;   /* a config file was found and loaded */
    const char *config_path;
    char **overrides;  /* `--key=value` arguments applied over the file (borrowed) */
    size_t noverrides;
} vb_cli_t;

/* Loads the config named by --config or VBAK_CONFIG into cli, then applies cli->overrides; 0 or
 * an error (message set). */
int vb_cli_load_config(vb_cli_t *cli, const char *path) VB_WUR;

/* Sends `command` with `args` (may be NULL; reference stolen) to the coordinator and returns
 * its JSON answer in *result (caller owns). Errors carry the coordinator's message, or say that
 * it did not answer in time. */
int vb_cli_call(vb_cli_t *cli, const char *command, json_t *args, json_t **result) VB_WUR;

/* Prints a one-line error "vbak: <message>" and returns exit code 1. */
int vb_cli_fail(const char *fmt, ...) VB_PRINTF(1, 2);

/* Simple aligned tables: add rows of `ncols` strings, print with a header. */
typedef struct vb_table vb_table_t;
vb_table_t *vb_table_new(size_t ncols, const char *const *headers);
void vb_table_add(vb_table_t *self, const char *const *cells);
void vb_table_print(vb_table_t *self, FILE *out);
void vb_table_destroy(vb_table_t **self_p);

/* Columns `text` (UTF-8) takes on a terminal: wide characters count two, combining ones none. */
size_t vb_cli_text_width(const char *text);
/* Prints `text` padded with spaces to `width` columns (as vb_cli_text_width counts them). */
void vb_cli_print_padded(FILE *out, const char *text, size_t width);

/* Prints a JSON value indented, with a newline. */
void vb_cli_print_json(json_t *value);

/* Command groups. */
int vb_cli_agents(vb_cli_t *cli, int argc, char **argv);
int vb_cli_status(vb_cli_t *cli, int argc, char **argv);
int vb_cli_lab(vb_cli_t *cli, int argc, char **argv);
int vb_cli_backup(vb_cli_t *cli, int argc, char **argv);
int vb_cli_restore(vb_cli_t *cli, int argc, char **argv);
int vb_cli_jobs(vb_cli_t *cli, int argc, char **argv);
int vb_cli_job(vb_cli_t *cli, int argc, char **argv);
int vb_cli_restore_points(vb_cli_t *cli, int argc, char **argv);
int vb_cli_restore_point(vb_cli_t *cli, int argc, char **argv);
int vb_cli_explain(vb_cli_t *cli, int argc, char **argv);
int vb_cli_verify(vb_cli_t *cli, int argc, char **argv);
int vb_cli_prune(vb_cli_t *cli, int argc, char **argv);
int vb_cli_orphans(vb_cli_t *cli, int argc, char **argv);
int vb_cli_site(vb_cli_t *cli, int argc, char **argv);
int vb_cli_serve(vb_cli_t *cli, int argc, char **argv);  /* cli_serve.c */
int vb_cli_serves(vb_cli_t *cli, int argc, char **argv);
int vb_cli_files(vb_cli_t *cli, int argc, char **argv);  /* cli_files.c */
int vb_cli_mount(vb_cli_t *cli, int argc, char **argv);
int vb_cli_umount(vb_cli_t *cli, int argc, char **argv);

#endif
