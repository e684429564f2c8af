/* vbak orphans: disk files on the site's datastores that belong to no VM and no FCD. */
#include <string.h>

#include "cli.h"

static const char s_usage[] =
    "Usage: vbak orphans [--delete] [--json]\n"
    "List disk files on the site's datastores that belong to no VM and no First Class Disk\n"
    "(nor to one of their snapshots): what a Storage vMotion or a failed job can leave behind.\n"
    "Each line: the file, its size on disk, its length and the datastore it was on (a guess,\n"
    "from the folder it was kept in; '-' when there is none).\n"
    "  --delete   remove them (the lines then say \"removed\")\n"
    "  --json     {deleted, count, bytes, orphans: [{path, datastore, size, length, removed}]}\n";

static void s_size(char *buf, size_t size, json_int_t bytes)
{
    if (bytes >= 1048576)
        snprintf(buf, size, "%.1f MiB", (double)bytes / 1048576.0);
    else
        snprintf(buf, size, "%.1f KiB", (double)bytes / 1024.0);
}

int vb_cli_orphans(vb_cli_t *cli, int argc, char **argv)
{
    bool json = false, del = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(s_usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--delete"))
            del = true;
        else
            return vb_cli_fail("orphans: unexpected argument '%s' (see --help)", argv[i]) + 1;
    }
    json_t *res = NULL;
    if (vb_cli_call(cli, "orphans", json_pack("{s:b}", "delete", del), &res) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    if (json) {
        vb_cli_print_json(res);
        json_decref(res);
        return 0;
    }
    static const char *const headers[] = {"PATH", "SIZE", "LENGTH", "DATASTORE", "STATE"};
    vb_table_t *table = vb_table_new(5, headers);
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(res, "orphans"), i, o)
    {
        char size[32], length[32];
        s_size(size, sizeof size, json_integer_value(json_object_get(o, "size")));
        s_size(length, sizeof length, json_integer_value(json_object_get(o, "length")));
        const char *ds = json_string_value(json_object_get(o, "datastore"));
        const char *row[] = {json_string_value(json_object_get(o, "path")), size, length,
                             ds ? ds : "-",
                             json_is_true(json_object_get(o, "removed")) ? "removed" : "orphan"};
        vb_table_add(table, row);
    }
    long long count = json_integer_value(json_object_get(res, "count"));
    char total[32];
    s_size(total, sizeof total, json_integer_value(json_object_get(res, "bytes")));
    if (count)
        vb_table_print(table, stdout);
    vb_table_destroy(&table);
    if (!count)
        printf("no orphaned disk files\n");
    else
        printf("%lld file(s), %s on disk%s\n", count, total,
               del ? ", removed" : " (vbak orphans --delete removes them)");
    json_decref(res);
    return 0;
}
