/* vbak agents, vbak status */
#include <string.h>
#include <time.h>

#include "cli.h"

static bool s_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return true;
    return false;
}

static int s_check_args(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") != 0) {
            vb_cli_fail("%s: unexpected argument '%s' (see --help)", argv[0], argv[i]);
            return 2;
        }
    }
    return -1;
}

static const char *s_str(json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v ? v : "";
}

static void s_join(json_t *arr, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        int w = snprintf(buf + n, size - n, "%s%s", i ? "," : "", json_string_value(v));
        if (w < 0 || (size_t)w >= size - n)
            break;
        n += (size_t)w;
    }
}

#define S_REMOVE_USAGE                                                                             \
    "Usage: vbak agents remove NAME\n"                                                             \
    "Remove an agent from the site: its key is refused from then on (even with the enrollment\n"   \
    "token) and the tasks it was running go back to the queue. A proxy reinstalled under the\n"    \
    "same name enrolls again with a new key pair and the site token.\n"

static int s_agents_remove(vb_cli_t *cli, int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(S_REMOVE_USAGE, stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "vbak agents remove: expected one agent name\n" S_REMOVE_USAGE);
        return 2;
    }
    json_t *res = NULL;
    if (vb_cli_call(cli, "agent.remove", json_pack("{s:s}", "name", argv[1]), &res) != 0)
        return vb_cli_fail("agents remove: %s", vb_error_msg());
    json_decref(res);
    printf("agent %s removed: its key is refused from now on\n", argv[1]);
    return 0;
}

int vb_cli_agents(vb_cli_t *cli, int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "remove"))
        return s_agents_remove(cli, argc - 1, argv + 1);
    int rc = s_check_args(argc, argv,
                          "Usage: vbak agents [--json]\n"
                          "       vbak agents remove NAME\n"
                          "List the agents enrolled in the site: name, state (online/lost), the\n"
                          "host and datastore of their proxy VM, task slots, transports, last seen.\n");
    if (rc >= 0)
        return rc;
    json_t *agents = NULL;
    if (vb_cli_call(cli, "agents", NULL, &agents) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    if (s_flag(argc, argv, "--json")) {
        vb_cli_print_json(agents);
        json_decref(agents);
        return 0;
    }
    static const char *const headers[] = {"NAME",  "STATE",      "HOST",     "DATASTORE",
                                          "SLOTS", "TRANSPORTS", "LAST SEEN"};
    vb_table_t *table = vb_table_new(7, headers);
    size_t i;
    json_t *a;
    json_array_foreach(agents, i, a) {
        char slots[32], transports[128];
        snprintf(slots, sizeof slots, "%lld/%lld",
                 (long long)json_integer_value(json_object_get(a, "busy_slots")),
                 (long long)json_integer_value(json_object_get(a, "slots")));
        s_join(json_object_get(a, "transports"), transports, sizeof transports);
        const char *row[] = {s_str(a, "name"),      s_str(a, "state"), s_str(a, "host"),
                             s_str(a, "datastore"), slots,             transports,
                             s_str(a, "last_seen")};
        vb_table_add(table, row);
    }
    vb_table_print(table, stdout);
    vb_table_destroy(&table);
    if (json_array_size(agents) == 0)
        printf("(no agents enrolled yet)\n");
    /* an agent whose VixDiskLib does not support the server's vSphere version */
    json_array_foreach(agents, i, a)
    {
        if (json_string_value(json_object_get(a, "warning")))
            printf("warning: %s\n", s_str(a, "warning"));
    }
    json_decref(agents);
    return 0;
}

int vb_cli_status(vb_cli_t *cli, int argc, char **argv)
{
    int rc = s_check_args(argc, argv,
                          "Usage: vbak status [--json]\n"
                          "Show the coordinator's version, uptime, agent counts and the counters of\n"
                          "refused and dropped messages.\n");
    if (rc >= 0)
        return rc;
    json_t *st = NULL;
    if (vb_cli_call(cli, "status", NULL, &st) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    if (s_flag(argc, argv, "--json")) {
        vb_cli_print_json(st);
        json_decref(st);
        return 0;
    }
    json_t *agents = json_object_get(st, "agents");
    printf("coordinator %s, up %.1f s\n", s_str(st, "version"),
           (double)json_integer_value(json_object_get(st, "uptime_ms")) / 1000.0);
    printf("agents: %lld online, %lld lost\n",
           (long long)json_integer_value(json_object_get(agents, "online")),
           (long long)json_integer_value(json_object_get(agents, "lost")));
    /* serves are jobs of kind serve that run (vbak serves lists them) */
    printf("serving: %lld restore point(s)\n",
           (long long)json_integer_value(
               json_object_get(json_object_get(json_object_get(st, "jobs"), "serve"), "running")));
    json_t *repo = json_object_get(st, "repository");
    if (repo)
        printf("repository: %lld object(s), %.1f MiB (listed %lld s ago)\n",
               (long long)json_integer_value(json_object_get(repo, "objects")),
               (double)json_integer_value(json_object_get(repo, "bytes")) / (1024.0 * 1024.0),
               (long long)(time(NULL) - json_integer_value(json_object_get(repo, "at"))));
    const char *key;
    json_t *v;
    printf("counters:\n");
    json_object_foreach(json_object_get(st, "counters"), key, v)
        printf("  %-22s %lld\n", key, (long long)json_integer_value(v));
    size_t i;
    json_array_foreach(json_object_get(st, "pending_releases"), i, v) {
        const char *snap = json_string_value(json_object_get(v, "snapshot"));
        printf("pending: job %lld VM %s: %s%s%s, %lld attempt(s), last error: %s\n",
               (long long)json_integer_value(json_object_get(v, "job")), s_str(v, "vm"),
               snap ? "snapshot " : "", snap ? snap : "",
               json_is_true(json_object_get(v, "access")) ? " (and EndAccess)" : "",
               (long long)json_integer_value(json_object_get(v, "attempts")), s_str(v, "error"));
    }
    json_array_foreach(json_object_get(st, "background"), i, v)
        printf("background: job %lld (%s): %s for %.1f s\n",
               (long long)json_integer_value(json_object_get(v, "job")), s_str(v, "kind"),
               s_str(v, "phase"),
               (double)json_integer_value(json_object_get(v, "running_ms")) / 1000.0);
    json_decref(st);
    return 0;
}
