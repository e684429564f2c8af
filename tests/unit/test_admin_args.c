/* The control commands' argument schemas: the checker itself on a schema of every type, then
 * the command table's own rows through vb_admin_request (no handler runs). */
#include <criterion/criterion.h>
#include <string.h>

#include "admin.h"
#include "admin_args.h"

static const char *const s_modes[] = {"fast", "slow", NULL};
static const vb_arg_t s_schema[] = {{"id", VB_ARG_INT, true, 1, 1000, NULL},
                                    {"full", VB_ARG_BOOL, false, 0, 0, NULL},
                                    {"name", VB_ARG_STRING, false, 1, 8, NULL},
                                    {"mode", VB_ARG_STRING, false, 0, 0, s_modes},
                                    {"vms", VB_ARG_STRINGS, false, 0, 2, NULL},
                                    {"exports", VB_ARG_OBJECTS, false, 0, 0, NULL},
                                    VB_ARGS_END};

/* Checks JSON text against s_schema: the code, and the message when it fails. */
static int s_check(const char *text)
{
    json_error_t jerr;
    json_t *args = json_loads(text, JSON_DECODE_ANY, &jerr);
    cr_assert(args, "test input %s: %s", text, jerr.text);
    int rc = vb_args_check("cmd", s_schema, args);
    json_decref(args);
    return rc;
}

static void s_refused(const char *text, const char *message)
{
    cr_assert_eq(s_check(text), VB_EINVAL, "%s was accepted", text);
    cr_assert_str_eq(vb_error_msg(), message, "%s", text);
}

Test(admin_args, accepts_what_the_schema_names)
{
    cr_assert_eq(s_check("{\"id\": 1}"), 0, "%s", vb_error_msg());
    cr_assert_eq(s_check("{\"id\": 1000, \"full\": true, \"name\": \"a\", \"mode\": \"slow\", "
                         "\"vms\": [\"x\", \"y\"], \"exports\": [{\"disk\": \"2000\"}]}"),
                 0, "%s", vb_error_msg());
    /* null: an optional argument not given */
    cr_assert_eq(s_check("{\"id\": 5, \"name\": null, \"vms\": null}"), 0, "%s", vb_error_msg());
}

Test(admin_args, types)
{
    s_refused("{\"id\": \"1\"}", "cmd: 'id' must be an integer");
    s_refused("{\"id\": 1.5}", "cmd: 'id' must be an integer");
    s_refused("{\"id\": 1, \"full\": 1}", "cmd: 'full' must be a boolean");
    s_refused("{\"id\": 1, \"name\": 7}", "cmd: 'name' must be a string");
    s_refused("{\"id\": 1, \"vms\": \"x\"}", "cmd: 'vms' must be an array of strings");
    s_refused("{\"id\": 1, \"vms\": [\"x\", 3]}", "cmd: 'vms' must be an array of strings");
    s_refused("{\"id\": 1, \"exports\": [\"x\"]}", "cmd: 'exports' must be an array of objects");
    s_refused("[1]", "cmd: the arguments are not a JSON object");
}

Test(admin_args, missing_required_and_unknown_keys)
{
    s_refused("{}", "cmd: missing argument 'id'");
    s_refused("{\"id\": null}", "cmd: missing argument 'id'");
    s_refused("{\"id\": 1, \"vmm\": []}", "cmd: unknown argument 'vmm'");
    /* a name from the network is cut and made printable before it goes into a message */
    s_refused("{\"id\": 1, \"a\\u001b[2Jb\": 1}", "cmd: unknown argument 'a?[2Jb'");
    char text[256];
    snprintf(text, sizeof text, "{\"%0100d\": 1}", 0);
    cr_assert_eq(s_check(text), VB_EINVAL);
    cr_assert_lt(strlen(vb_error_msg()), 100, "%s", vb_error_msg());
}

Test(admin_args, bounds_and_choices)
{
    s_refused("{\"id\": 0}", "cmd: 'id' must be between 1 and 1000");
    s_refused("{\"id\": 1001}", "cmd: 'id' must be between 1 and 1000");
    s_refused("{\"id\": -9223372036854775807}", "cmd: 'id' must be between 1 and 1000");
    s_refused("{\"id\": 1, \"name\": \"\"}", "cmd: 'name' must be between 1 and 8 bytes long");
    s_refused("{\"id\": 1, \"name\": \"123456789\"}",
              "cmd: 'name' must be between 1 and 8 bytes long");
    s_refused("{\"id\": 1, \"vms\": [\"a\", \"b\", \"c\"]}",
              "cmd: 'vms' must be between 0 and 2 items long");
    s_refused("{\"id\": 1, \"mode\": \"medium\"}", "cmd: 'mode' must be one of fast, slow");
}

Test(admin_args, readers_give_defaults_for_what_was_not_given)
{
    json_t *args =
        json_pack("{s:I, s:b, s:s, s:n}", "id", (json_int_t)7, "full", 1, "name", "n", "vms");
    cr_assert_eq(vb_args_int(args, "id", 0), 7);
    cr_assert_eq(vb_args_int(args, "limit", 50), 50);
    cr_assert(vb_args_bool(args, "full"));
    cr_assert_not(vb_args_bool(args, "all"));
    cr_assert_str_eq(vb_args_str(args, "name"), "n");
    cr_assert_null(vb_args_str(args, "vms"));
    json_decref(args);
}

/* The command table: unknown commands, a misspelt argument, a wrong type, as the CLI shows them. */
Test(admin_args, command_table_checks_requests)
{
    json_t *args = NULL;
    cr_assert_eq(vb_admin_request("frobnicate", "{}", &args), VB_ENOTFOUND);
    cr_assert_str_eq(vb_error_msg(), "unknown command 'frobnicate'");
    cr_assert_eq(vb_admin_request("backup", "{\"vmm\": [\"vm-01\"]}", &args), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "backup: unknown argument 'vmm'");
    cr_assert_eq(vb_admin_request("restore", "{\"rp\": \"3\", \"to_vm\": true}", &args), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "restore: 'rp' must be an integer");
    cr_assert_eq(vb_admin_request("job.show", "{\"tasks\": true}", &args), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "job.show: missing argument 'id'");
    cr_assert_eq(vb_admin_request("prune", "{\"keep_last\": 1, \"repack_below\": 101}", &args),
                 VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "prune: 'repack_below' must be between 0 and 100");
    cr_assert_eq(vb_admin_request("ping", "{\"x\": 1}", &args), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "ping: unknown argument 'x'");
    cr_assert_eq(vb_admin_request("agents", "{not json", &args), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "agents: the arguments are not JSON"), "%s", vb_error_msg());
    cr_assert_null(args);
    /* what the CLI sends passes, with nulls for options not given */
    cr_assert_eq(vb_admin_request("restore",
                                  "{\"rp\": 3, \"to_dir\": null, \"to_vm\": true, "
                                  "\"delete_snapshots\": false, \"new_vm\": null, "
                                  "\"datastore\": null}",
                                  &args),
                 0, "%s", vb_error_msg());
    cr_assert_eq(vb_args_int(args, "rp", 0), 3);
    json_decref(args);
    cr_assert_eq(vb_admin_request("status", NULL, &args), 0, "%s", vb_error_msg());
    json_decref(args);
    cr_assert_eq(vb_admin_slow("backup"), VB_ADMIN_INVENTORY);
    cr_assert_eq(vb_admin_slow("orphans"), VB_ADMIN_WORKER);
    cr_assert_eq(vb_admin_slow("status"), VB_ADMIN_FAST);
}
