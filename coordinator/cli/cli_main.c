/* vbak — the admin CLI. Finds its config (--config FILE or VBAK_CONFIG) and dispatches to the
 * command groups in cli_<group>.c. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "cli_catalog.h"
#include "cli_disk.h"
#include "cli_repo.h"

static int s_repo(vb_cli_t *cli, int argc, char **argv)
{
    (void)cli;
    return vb_cli_repo(argc, argv);
}

static int s_catalog(vb_cli_t *cli, int argc, char **argv)
{
    (void)cli;
    return vb_cli_catalog_io(argc, argv, stdout, stderr);
}

static int s_disk(vb_cli_t *cli, int argc, char **argv)
{
    (void)cli;
    return vb_cli_disk(argc, argv);
}

typedef struct {
    const char *name;
    int (*run)(vb_cli_t *cli, int argc, char **argv);
    bool needs_config; /* talks to the coordinator */
    const char *summary;
} s_command_t;

static const s_command_t s_commands[] = {
    {"agents", vb_cli_agents, true, "list agents: state, host, datastore, slots, transports"},
    {"status", vb_cli_status, true, "coordinator status and counters"},
    {"backup", vb_cli_backup, true, "back up VMs and First Class Disks"},
    {"restore", vb_cli_restore, true,
     "restore a restore point to a directory, into its VM or into a new VM"},
    {"jobs", vb_cli_jobs, true, "list jobs"},
    {"job", vb_cli_job, true, "show or cancel a job"},
    {"restore-points", vb_cli_restore_points, true, "list restore points"},
    {"restore-point", vb_cli_restore_point, true, "show a restore point"},
    {"explain", vb_cli_explain, true, "the transport decision for each disk x agent of a VM"},
    {"verify", vb_cli_verify, true, "re-read and re-hash every chunk of a restore point"},
    {"prune", vb_cli_prune, true, "apply a retention policy, then collect garbage"},
    {"orphans", vb_cli_orphans, true, "disk files on datastores that belong to no VM or FCD"},
    {"serve", vb_cli_serve, true, "serve a restore point's disks over NBD"},
    {"serves", vb_cli_serves, true, "list the restore points being served"},
    {"files", vb_cli_files, true, "list or copy out files of a restore point's guest file system"},
    {"mount", vb_cli_mount, true, "mount a restore point's guest file system read-only (FUSE)"},
    {"umount", vb_cli_umount, false, "unmount what vbak mount mounted"},
    {"site", vb_cli_site, false, "set up a site: keys, token, configs; rotate the token"},
    {"lab", vb_cli_lab, false, "create, start and stop a lab site (simulated vSphere)"},
    {"repo", s_repo, false, "create a repository, show its statistics"},
    {"catalog", s_catalog, false, "rebuild a catalog from a repository's manifests"},
    {"disk", s_disk, false, "read a disk through the disk access layer (reachability check)"},
};

static void s_usage(FILE *out)
{
    fprintf(out, "Usage: vbak [--config FILE] [--KEY=VALUE]... COMMAND [ARGS...]\n"
                 "The vbak admin CLI: drives the coordinator of a vbak backup site.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf(out, "  %-10s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf(out, "\nOptions:\n"
                 "  --config FILE   CLI configuration (default: $VBAK_CONFIG)\n"
                 "  --KEY=VALUE     set a vbak.conf key, overriding the file (e.g. "
                 "--timeout_ms=30000);\n"
                 "                  also accepted after the command\n"
                 "  --help          this help; `vbak COMMAND --help` for a command\n"
                 "  --version       show the version\n");
}

static bool s_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

/* Splits `--key=value` overrides of vbak.conf keys (before the command, or after it) from the
 * command's own arguments (after it only when `after`: a command that talks to the
 * coordinator): they go to cli->overrides; returns the command's argv (argv[cmd] and
 * the rest, NULL-terminated; caller frees) with its count in *cmd_argc, NULL when out of memory. */
static char **s_take_overrides(vb_cli_t *cli, int argc, char **argv, int cmd, bool after,
                               int *cmd_argc)
{
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    cli->overrides = calloc((size_t)argc + 1, sizeof *cli->overrides);
    if (!rest || !cli->overrides) {
        free(rest);
        return NULL;
    }
    int n = 0;
    for (int k = 1; k < argc; k++) {
        bool override = (k < cmd || after) && vb_config_is_override(vb_cli_config_table, argv[k]);
        if (k < cmd && !override)
            continue; /* --config FILE and the like */
        if (override)
            cli->overrides[cli->noverrides++] = argv[k];
        else
            rest[n++] = argv[k];
    }
    *cmd_argc = n;
    return rest;
}

int main(int argc, char **argv)
{
    /* the CLI speaks through its messages; library log lines below a warning are for daemons */
    vb_log_set_level(getenv("VBAK_DEBUG") ? VB_LOG_LEVEL_DEBUG : VB_LOG_LEVEL_WARN);
    vb_log_set_name("vbak");
    const char *config = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            s_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("vbak %s\n", VB_VERSION);
            return 0;
        }
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            config = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9))
            config = argv[i] + 9;
        else if (vb_config_is_override(vb_cli_config_table, argv[i]))
            continue; /* taken by s_take_overrides */
        else {
            fprintf(stderr, "vbak: unknown option '%s' (see vbak --help)\n", argv[i]);
            return 2;
        }
    }
    if (i >= argc) {
        s_usage(stderr);
        return 2;
    }
    const s_command_t *cmd = NULL;
    for (size_t k = 0; k < sizeof s_commands / sizeof s_commands[0]; k++)
        if (!strcmp(s_commands[k].name, argv[i]))
            cmd = &s_commands[k];
    if (!cmd) {
        fprintf(stderr, "vbak: unknown command '%s' (see vbak --help)\n", argv[i]);
        return 2;
    }
    vb_cli_t cli = {0};
    cli.config_path = config; /* for commands that load it themselves (vbak site token) */
    int rc, cmd_argc = argc - i;
    char **cmd_argv = s_take_overrides(&cli, argc, argv, i, cmd->needs_config, &cmd_argc);
    if (!cmd_argv) {
        fprintf(stderr, "vbak: out of memory\n");
        rc = 1;
    } else if (cmd->needs_config && !s_wants_help(cmd_argc, cmd_argv) &&
               vb_cli_load_config(&cli, config) != 0) {
        fprintf(stderr, "vbak: %s\n", vb_error_msg());
        rc = 2;
    } else {
        rc = cmd->run(&cli, cmd_argc, cmd_argv);
    }
    vb_config_free(vb_cli_config_table, &cli.settings);
    free(cli.overrides);
    free(cmd_argv);
    return rc;
}
