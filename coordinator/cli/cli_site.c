/* vbak site init | agent-conf | token rotate: setting up a site without the lab. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "path.h"
#include "site_setup.h"

#define S_USAGE                                                                                    \
    "Usage: vbak site init DIR --agent-endpoint tcp://HOST:PORT [--control-endpoint ENDPOINT]\n"   \
    "                      [--provider lab|vsphere] [--repository PATH] [--catalog FILE]\n"        \
    "    make the site's key pairs (coordinator, admin), its enrollment token (0600),\n"           \
    "    DIR/coordinator.conf and DIR/vbak.conf; refuses to overwrite anything\n"                  \
    "       vbak site agent-conf DIR NAME [--host H] [--datastore DS] [--luns L1,L2]\n"            \
    "                      [--slots N] [--state-dir DIR] [--token-file FILE] [--endpoint E]\n"     \
    "    print the agent.conf of one proxy on stdout (copy it there with the token file)\n"        \
    "       vbak site token rotate\n"                                                              \
    "    make a new enrollment token (the coordinator rewrites its token file); the old one\n"     \
    "    is refused for new enrollments, enrolled agents are not affected\n"

static int s_usage_error(const char *what)
{
    fprintf(stderr, "vbak site: %s\n%s", what, S_USAGE);
    return 2;
}

/* getopt_long over argv (argv[0]: the subcommand); 'h' prints the usage. Returns -1 to go on,
 * else the exit status. Each other option is handed to set(ctx, c, optarg). */
static int s_getopt(int argc, char **argv, const struct option *opts,
                    int (*set)(void *ctx, int c, const char *arg), void *ctx)
{
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(S_USAGE, stdout);
            return 0;
        }
        if (c == '?' || c == ':') {
            char msg[160];
            snprintf(msg, sizeof msg, "%s: unknown option or missing value: %.60s", argv[0],
                     argv[optind - 1]);
            return s_usage_error(msg);
        }
        int rc = set(ctx, c, optarg);
        if (rc >= 0)
            return rc;
    }
    return -1;
}

/* ---- init ---- */

static int s_init_opt(void *ctx, int c, const char *arg)
{
    vb_site_init_t *o = ctx;
    if (c == 'a')
        o->agent_endpoint = arg;
    else if (c == 'c')
        o->control_endpoint = arg;
    else if (c == 'p')
        o->provider = arg;
    else if (c == 'r')
        o->repository = arg;
    else if (c == 'C')
        o->catalog = arg;
    return -1;
}

static int s_init(int argc, char **argv)
{
    static const struct option opts[] = {{"agent-endpoint", required_argument, NULL, 'a'},
                                         {"control-endpoint", required_argument, NULL, 'c'},
                                         {"provider", required_argument, NULL, 'p'},
                                         {"repository", required_argument, NULL, 'r'},
                                         {"catalog", required_argument, NULL, 'C'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    vb_site_init_t o = {0};
    int rc = s_getopt(argc, argv, opts, s_init_opt, &o);
    if (rc >= 0)
        return rc;
    if (argc - optind != 1)
        return s_usage_error("init: expected one directory");
    if (!o.agent_endpoint)
        return s_usage_error("init: --agent-endpoint tcp://HOST:PORT is required (the address "
                             "agents connect to)");
    char dir[PATH_MAX];
    if (vb_mkdir_p(argv[optind], 0755) != 0)
        return vb_cli_fail("site init: %s", vb_error_msg());
    if (!realpath(argv[optind], dir))
        return vb_cli_fail("site init: %s: %s", argv[optind], strerror(errno));
    o.dir = dir;
    if (vb_site_init(&o) != 0)
        return vb_cli_fail("site init: %s", vb_error_msg());
    printf("site set up in %s\n"
           "  coordinator:  vbak-coordinator --config %s/coordinator.conf\n"
           "  agent config: vbak site agent-conf %s NAME > agent.conf (copy it and "
           "%s/keys/enrollment.token to the proxy)\n"
           "  admin CLI:    export VBAK_CONFIG=%s/vbak.conf\n",
           dir, dir, dir, dir, dir);
    if (o.repository)
        printf("  repository:   vbak repo init %s (when it does not exist yet)\n", o.repository);
    return 0;
}

/* ---- agent-conf ---- */

static int s_agent_opt(void *ctx, int c, const char *arg)
{
    vb_site_agent_t *a = ctx;
    switch (c) {
    case 'H':
        a->host = arg;
        break;
    case 'd':
        a->datastore = arg;
        break;
    case 'l':
        a->luns = arg;
        break;
    case 's':
        a->state_dir = arg;
        break;
    case 't':
        a->token_file = arg;
        break;
    case 'e':
        a->endpoint = arg;
        break;
    case 'n': {
        int64_t v;
        if (vb_parse_i64(arg, 1, 1024, "--slots", &v) != 0)
            return s_usage_error(vb_error_msg());
        a->slots = (long)v;
        break;
    }
    default:
        break;
    }
    return -1;
}

static int s_agent_conf(int argc, char **argv)
{
    static const struct option opts[] = {{"host", required_argument, NULL, 'H'},
                                         {"datastore", required_argument, NULL, 'd'},
                                         {"luns", required_argument, NULL, 'l'},
                                         {"slots", required_argument, NULL, 'n'},
                                         {"state-dir", required_argument, NULL, 's'},
                                         {"token-file", required_argument, NULL, 't'},
                                         {"endpoint", required_argument, NULL, 'e'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    vb_site_agent_t a = {0};
    int rc = s_getopt(argc, argv, opts, s_agent_opt, &a);
    if (rc >= 0)
        return rc;
    if (argc - optind != 2)
        return s_usage_error("agent-conf: expected the site directory and the agent's name");
    a.name = argv[optind + 1];
    if (vb_site_agent_conf(argv[optind], &a, stdout) != 0)
        return vb_cli_fail("site agent-conf: %s", vb_error_msg());
    return 0;
}

/* ---- token rotate ---- */

static int s_token(vb_cli_t *cli, int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(S_USAGE, stdout);
        return 0;
    }
    if (argc != 2 || strcmp(argv[1], "rotate") != 0)
        return s_usage_error("token: expected `token rotate`");
    if (vb_cli_load_config(cli, cli->config_path) != 0) {
        fprintf(stderr, "vbak: %s\n", vb_error_msg());
        return 2;
    }
    json_t *res = NULL;
    if (vb_cli_call(cli, "token.rotate", NULL, &res) != 0)
        return vb_cli_fail("site token rotate: %s", vb_error_msg());
    printf("new enrollment token written to %s (on the coordinator's host): copy it to proxies "
           "that are not enrolled yet; the old token is refused from now on\n",
           json_string_value(json_object_get(res, "token_file")));
    json_decref(res);
    return 0;
}

int vb_cli_site(vb_cli_t *cli, int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(S_USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "init"))
        return s_init(argc - 1, argv + 1);
    if (!strcmp(argv[1], "agent-conf"))
        return s_agent_conf(argc - 1, argv + 1);
    if (!strcmp(argv[1], "token"))
        return s_token(cli, argc - 1, argv + 1);
    return vb_cli_fail("site: unknown command '%s' (see vbak site --help)", argv[1]) + 1;
}
