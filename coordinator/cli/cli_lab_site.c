#include "cli_lab_site.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lab/lab.h"
#include "lab/site.h"

#define S_SHOW_USAGE "usage: vbak lab show DIR [--json]\n"
#define S_MUTATE_USAGE                                                                             \
    "usage: vbak lab mutate DIR VM [--percent P] [--seed S]\n"                                     \
    "       vbak lab mutate DIR VM --file PATH --content TEXT\n"
#define S_SVMOTION_USAGE "usage: vbak lab svmotion DIR VM DATASTORE [--force]\n"
#define S_ACCESS_USAGE                                                                             \
    "usage: vbak lab access prepare DIR VM WHO\n"                                                  \
    "       vbak lab access end DIR VM\n"
#define S_SNAPSHOT_USAGE                                                                           \
    "usage: vbak lab snapshot create DIR VM NAME\n"                                                \
    "       vbak lab snapshot remove DIR VM ID-OR-NAME\n"                                          \
    "       vbak lab snapshot list DIR VM\n"
#define S_CBT_RESET_USAGE "usage: vbak lab cbt-reset DIR VM\n"
#define S_CAT_USAGE "usage: vbak lab cat DIR VM DISK-KEY OUT [--snapshot ID-OR-NAME]\n"

const char *vb_cli_lab_site_usage(void)
{
    return S_SHOW_USAGE S_MUTATE_USAGE S_SVMOTION_USAGE S_SNAPSHOT_USAGE S_CBT_RESET_USAGE
        S_ACCESS_USAGE S_CAT_USAGE;
}

static int s_fail(const char *cmd)
{
    fprintf(stderr, "vbak lab %s: %s\n", cmd, vb_error_msg());
    return 1;
}

static int s_usage_error(const char *cmd, const char *usage, const char *what)
{
    fprintf(stderr, "vbak lab %s: %s\n%s", cmd, what, usage);
    return 2;
}

/* Parses options common to every subcommand; leaves operands at argv[optind..]. Returns -1 to
 * go on, else the exit status (help printed or usage error). */
static int s_getopt(int argc, char **argv, const char *usage, const struct option *extra,
                    int (*on_opt)(int c, const char *arg, void *ctx), void *ctx)
{
    struct option opts[8];
    size_t n = 0;
    for (; extra && extra[n].name && n < 6; n++)
        opts[n] = extra[n];
    opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    opts[n] = (struct option){NULL, 0, NULL, 0};
    optind = 0; /* GNU: reinitialise, the dispatcher may have parsed before us */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return 0;
        }
        if (c == '?') {
            char msg[128];
            snprintf(msg, sizeof msg, "unknown option %s", argv[optind - 1]);
            return s_usage_error(argv[0], usage, msg);
        }
        int rc = on_opt ? on_opt(c, optarg, ctx) : 2;
        if (rc >= 0)
            return rc;
    }
    return -1;
}

static int s_need_operands(int argc, char **argv, int n, const char *usage)
{
    if (argc - optind != n) {
        char msg[64];
        snprintf(msg, sizeof msg, "expected %d operand%s, got %d", n, n == 1 ? "" : "s",
                 argc - optind);
        return s_usage_error(argv[0], usage, msg);
    }
    return -1;
}

/* ---- show */

static void s_human_size(uint64_t v, char *buf, size_t size)
{
    if (v >= (1ull << 30) && v % (1ull << 30) == 0)
        snprintf(buf, size, "%" PRIu64 " GiB", v >> 30);
    else if (v >= (1ull << 20) && v % (1ull << 20) == 0)
        snprintf(buf, size, "%" PRIu64 " MiB", v >> 20);
    else
        snprintf(buf, size, "%" PRIu64 " KiB", v >> 10);
}

static void s_print_strv(json_t *arr)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        printf("%s%s", i ? ", " : "", json_is_string(v) ? json_string_value(v) : "?");
    }
}

static void s_print_disk(json_t *d, const char *indent)
{
    char size[32];
    s_human_size((uint64_t)json_integer_value(json_object_get(d, "capacity")), size, sizeof size);
    printf("%sdisk %s \"%s\" %s %s%s\n", indent, vb_lab_json_str(d, "key"),
           vb_lab_json_str(d, "name"), size, vb_lab_json_str(d, "path"),
           json_is_true(json_object_get(d, "encrypted")) ? " encrypted" : "");
    if (vb_lab_json_str(d, "parent"))
        printf("%s  parent   %s\n", indent, vb_lab_json_str(d, "parent"));
    printf("%s  change   %s\n", indent, vb_lab_json_str(d, "change_id"));
    printf("%s  file     %s\n", indent, vb_lab_json_str(d, "file_uri"));
    static const char *uris[] = {"nbd_uri", "nbd_uri6", "nbds_uri", "nbds_uri6"};
    for (size_t i = 0; i < 4; i++)
        if (vb_lab_json_str(d, uris[i]))
            printf("%s  %-8s %s\n", indent, uris[i], vb_lab_json_str(d, uris[i]));
}

static void s_print_snapshots(json_t *obj, const char *indent)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(obj, "snapshots"), i, s)
    {
        printf("%ssnapshot %s \"%s\"\n", indent, vb_lab_json_str(s, "id"),
               vb_lab_json_str(s, "name"));
    }
}

static void s_show_human(vb_lab_site_t *site, int running)
{
    json_t *root = vb_lab_site_root(site);
    json_t *net = json_object_get(root, "network");
    size_t i;
    json_t *o;
    printf("lab site %s (seed %lld), servers %s; ports nbd %lld, nbds %lld, encrypted disks %lld\n",
           vb_lab_site_dir(site), (long long)json_integer_value(json_object_get(root, "seed")),
           running ? "up" : "down", (long long)json_integer_value(json_object_get(net, "nbd_port")),
           (long long)json_integer_value(json_object_get(net, "tls_port")),
           (long long)json_integer_value(json_object_get(net, "luks_port")));
    printf("\nhosts:\n");
    json_array_foreach(json_object_get(root, "hosts"), i, o)
    {
        printf("  %-10s%s\n", vb_lab_json_str(o, "name"),
               json_is_true(json_object_get(o, "require_encryption")) ? " requires encryption"
                                                                      : "");
    }
    printf("\ndatastores:\n");
    json_array_foreach(json_object_get(root, "datastores"), i, o)
    {
        printf("  %-14s %-5s hosts ", vb_lab_json_str(o, "name"), vb_lab_json_str(o, "type"));
        s_print_strv(json_object_get(o, "hosts"));
        if (vb_lab_json_str(o, "lun"))
            printf("  lun %s", vb_lab_json_str(o, "lun"));
        printf("\n");
    }
    printf("\nvms:\n");
    json_array_foreach(json_object_get(root, "vms"), i, o)
    {
        printf("  %s (%s) on %s%s\n", vb_lab_json_str(o, "name"), vb_lab_json_str(o, "id"),
               vb_lab_json_str(o, "host"),
               json_is_true(json_object_get(o, "linked_clone")) ? ", linked clone" : "");
        if (vb_lab_json_str(o, "access_blocked_by"))
            printf("    prepared for access by %s (Storage vMotion blocked)\n",
                   vb_lab_json_str(o, "access_blocked_by"));
        s_print_snapshots(o, "    ");
        size_t j;
        json_t *d;
        json_array_foreach(json_object_get(o, "disks"), j, d)
        {
            s_print_disk(d, "    ");
        }
    }
    printf("\nfcds:\n");
    json_array_foreach(json_object_get(root, "fcds"), i, o)
    {
        printf("  %s (%s)\n", vb_lab_json_str(o, "name"), vb_lab_json_str(o, "id"));
        s_print_snapshots(o, "    ");
        s_print_disk(o, "    ");
    }
    printf("\nproxies:\n");
    json_array_foreach(json_object_get(root, "proxies"), i, o)
    {
        printf("  %-9s %-7s host %s, datastore %s, luns: ", vb_lab_json_str(o, "name"),
               vb_lab_json_str(o, "role") ? vb_lab_json_str(o, "role") : "-",
               vb_lab_json_str(o, "host"), vb_lab_json_str(o, "datastore"));
        if (json_array_size(json_object_get(o, "luns")))
            s_print_strv(json_object_get(o, "luns"));
        else
            printf("none");
        printf("\n");
    }
}

static int s_show_opt(int c, const char *arg, void *ctx)
{
    (void)arg;
    if (c == 'j')
        *(bool *)ctx = true;
    return -1;
}

int vb_cli_lab_show(int argc, char **argv)
{
    static const struct option extra[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    bool json = false;
    int rc = s_getopt(argc, argv, S_SHOW_USAGE, extra, s_show_opt, &json);
    if (rc >= 0 || (rc = s_need_operands(argc, argv, 1, S_SHOW_USAGE)) >= 0)
        return rc;
    vb_lab_site_t *site;
    int running = 0;
    if (vb_lab_site_open(argv[optind], false, &site) != 0)
        return s_fail("show");
    if (vb_lab_serve_running(argv[optind], &running) != 0)
        running = 0;
    if (json) {
        char *text = json_dumps(vb_lab_site_root(site), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text)
            printf("%s\n", text);
        free(text);
        rc = text ? 0 : 1;
    } else {
        s_show_human(site, running);
        rc = 0;
    }
    vb_lab_site_destroy(&site);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "vbak lab show: cannot write: %s\n", strerror(errno));
        rc = 1;
    }
    return rc;
}

/* ---- mutate */

typedef struct {
    long percent;
    uint64_t seed;
    const char *bad;
    const char *file, *content; /* a file of the guest file system */
} s_mutate_opts_t;

static int s_mutate_opt(int c, const char *arg, void *ctx)
{
    s_mutate_opts_t *o = ctx;
    char *end;
    errno = 0;
    if (c == 'p') {
        o->percent = strtol(arg, &end, 10);
        if (errno || *end || end == arg || o->percent < 1 || o->percent > 100) {
            o->bad = "--percent must be a whole number from 1 to 100";
            return 2;
        }
    } else if (c == 'f' || c == 'c') {
        *(c == 'f' ? &o->file : &o->content) = arg;
    } else if (c == 's') {
        if (arg[0] == '-') {
            o->bad = "--seed must be a non-negative integer";
            return 2;
        }
        o->seed = strtoull(arg, &end, 0);
        if (errno || *end || end == arg) {
            o->bad = "--seed must be a non-negative integer";
            return 2;
        }
    }
    return -1;
}

int vb_cli_lab_mutate(int argc, char **argv)
{
    static const struct option extra[] = {{"percent", required_argument, NULL, 'p'},
                                          {"seed", required_argument, NULL, 's'},
                                          {"file", required_argument, NULL, 'f'},
                                          {"content", required_argument, NULL, 'c'},
                                          {NULL, 0, NULL, 0}};
    s_mutate_opts_t o = {10, 0, NULL, NULL, NULL};
    int rc = s_getopt(argc, argv, S_MUTATE_USAGE, extra, s_mutate_opt, &o);
    if (!o.bad && (!o.file != !o.content))
        o.bad = "--file and --content go together";
    if (o.bad)
        return s_usage_error(argv[0], S_MUTATE_USAGE, o.bad);
    if (rc >= 0 || (rc = s_need_operands(argc, argv, 2, S_MUTATE_USAGE)) >= 0)
        return rc;
    const char *dir = argv[optind], *vm = argv[optind + 1];
    vb_lab_changes_t ch = {0};
    rc = o.file ? vb_lab_guest_write(dir, vm, o.file, o.content, strlen(o.content), &ch)
                : vb_lab_mutate(dir, vm, (int)o.percent, o.seed, &ch);
    if (rc != 0)
        return s_fail("mutate");
    for (size_t i = 0; i < ch.count; i++) {
        uint64_t bytes = 0;
        for (size_t e = 0; e < ch.disks[i].written.count; e++)
            bytes += ch.disks[i].written.items[e].length;
        printf("%s disk %s: wrote %" PRIu64 " bytes in %zu extents:", vm, ch.disks[i].disk_key,
               bytes, ch.disks[i].written.count);
        for (size_t e = 0; e < ch.disks[i].written.count; e++)
            printf(" %" PRIu64 "+%" PRIu64, ch.disks[i].written.items[e].offset,
                   ch.disks[i].written.items[e].length);
        printf("\n");
    }
    vb_lab_changes_free(&ch);
    return 0;
}

/* ---- svmotion, cbt-reset */

static int s_force_opt(int c, const char *arg, void *ctx)
{
    (void)arg;
    if (c == 'f')
        *(bool *)ctx = true;
    return -1;
}

int vb_cli_lab_svmotion(int argc, char **argv)
{
    static const struct option extra[] = {{"force", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
    bool force = false;
    int rc = s_getopt(argc, argv, S_SVMOTION_USAGE, extra, s_force_opt, &force);
    if (rc >= 0 || (rc = s_need_operands(argc, argv, 3, S_SVMOTION_USAGE)) >= 0)
        return rc;
    if (vb_lab_svmotion(argv[optind], argv[optind + 1], argv[optind + 2], force) != 0)
        return s_fail("svmotion");
    printf("moved %s to %s\n", argv[optind + 1], argv[optind + 2]);
    return 0;
}

int vb_cli_lab_cbt_reset(int argc, char **argv)
{
    int rc = s_getopt(argc, argv, S_CBT_RESET_USAGE, NULL, NULL, NULL);
    if (rc >= 0 || (rc = s_need_operands(argc, argv, 2, S_CBT_RESET_USAGE)) >= 0)
        return rc;
    if (vb_lab_cbt_reset(argv[optind], argv[optind + 1]) != 0)
        return s_fail("cbt-reset");
    printf("change tracking of %s reset: earlier change IDs are unknown now\n", argv[optind + 1]);
    return 0;
}

int vb_cli_lab_access(int argc, char **argv)
{
    int rc = s_getopt(argc, argv, S_ACCESS_USAGE, NULL, NULL, NULL);
    if (rc >= 0)
        return rc;
    const char *op = argc - optind >= 1 ? argv[optind++] : "";
    if (strcmp(op, "prepare") == 0) {
        if ((rc = s_need_operands(argc, argv, 3, S_ACCESS_USAGE)) >= 0)
            return rc;
        if (vb_lab_prepare_for_access(argv[optind], argv[optind + 1], argv[optind + 2]) != 0)
            return s_fail("access prepare");
        printf("%s prepared for access by %s: Storage vMotion is blocked\n", argv[optind + 1],
               argv[optind + 2]);
        return 0;
    }
    if (strcmp(op, "end") == 0) {
        if ((rc = s_need_operands(argc, argv, 2, S_ACCESS_USAGE)) >= 0)
            return rc;
        if (vb_lab_end_access(argv[optind], argv[optind + 1]) != 0)
            return s_fail("access end");
        printf("%s released: Storage vMotion is allowed\n", argv[optind + 1]);
        return 0;
    }
    return s_usage_error(argv[0], S_ACCESS_USAGE, "expected prepare or end");
}

/* ---- snapshot */

static int s_snapshot_list(const char *dir, const char *vm)
{
    vb_lab_site_t *site;
    bool fcd;
    if (vb_lab_site_open(dir, false, &site) != 0)
        return s_fail("snapshot list");
    json_t *obj = vb_lab_site_find_object(site, vm, &fcd);
    if (!obj) {
        vb_lab_site_destroy(&site);
        fprintf(stderr, "vbak lab snapshot list: no VM or FCD named \"%s\" in the lab site\n", vm);
        return 1;
    }
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(obj, "snapshots"), i, s)
    {
        printf("%s\t%s\n", vb_lab_json_str(s, "id"), vb_lab_json_str(s, "name"));
    }
    vb_lab_site_destroy(&site);
    return 0;
}

int vb_cli_lab_snapshot(int argc, char **argv)
{
    int rc = s_getopt(argc, argv, S_SNAPSHOT_USAGE, NULL, NULL, NULL);
    if (rc >= 0)
        return rc;
    if (argc - optind < 1)
        return s_usage_error(argv[0], S_SNAPSHOT_USAGE, "missing create, remove or list");
    const char *op = argv[optind++];
    if (strcmp(op, "list") == 0) {
        if ((rc = s_need_operands(argc, argv, 2, S_SNAPSHOT_USAGE)) >= 0)
            return rc;
        return s_snapshot_list(argv[optind], argv[optind + 1]);
    }
    if (strcmp(op, "create") != 0 && strcmp(op, "remove") != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown snapshot operation \"%.60s\"", op);
        return s_usage_error(argv[0], S_SNAPSHOT_USAGE, msg);
    }
    if ((rc = s_need_operands(argc, argv, 3, S_SNAPSHOT_USAGE)) >= 0)
        return rc;
    const char *dir = argv[optind], *vm = argv[optind + 1], *name = argv[optind + 2];
    if (op[0] == 'c') {
        char *id = NULL;
        if (vb_lab_snapshot_create(dir, vm, name, &id) != 0)
            return s_fail("snapshot create");
        printf("%s\n", id);
        free(id);
    } else {
        if (vb_lab_snapshot_remove(dir, vm, name) != 0)
            return s_fail("snapshot remove");
        printf("removed snapshot %s of %s\n", name, vm);
    }
    return 0;
}

/* ---- cat: a disk's content (through its snapshot chain) to a raw file */

static int s_cat_opt(int c, const char *arg, void *ctx)
{
    if (c == 'S')
        *(const char **)ctx = arg;
    return -1;
}

static int s_cat(int argc, char **argv)
{
    static const struct option extra[] = {{"snapshot", required_argument, NULL, 'S'},
                                          {NULL, 0, NULL, 0}};
    const char *snap = NULL;
    int rc = s_getopt(argc, argv, S_CAT_USAGE, extra, s_cat_opt, &snap);
    if (rc >= 0 || (rc = s_need_operands(argc, argv, 4, S_CAT_USAGE)) >= 0)
        return rc;
    if (vb_lab_disk_copy(argv[optind], argv[optind + 1], argv[optind + 2], snap,
                         argv[optind + 3]) != 0)
        return s_fail("cat");
    return 0;
}

/* ---- dispatch */

static const struct {
    const char *name;
    int (*fn)(int, char **);
} s_cmds[] = {
    {"show", vb_cli_lab_show},           {"mutate", vb_cli_lab_mutate},
    {"svmotion", vb_cli_lab_svmotion},   {"snapshot", vb_cli_lab_snapshot},
    {"cbt-reset", vb_cli_lab_cbt_reset}, {"access", vb_cli_lab_access},
    {"cat", s_cat},
};

bool vb_cli_lab_site_handles(const char *sub)
{
    for (size_t i = 0; sub && i < sizeof s_cmds / sizeof *s_cmds; i++)
        if (strcmp(s_cmds[i].name, sub) == 0)
            return true;
    return false;
}

int vb_cli_lab_site(int argc, char **argv)
{
    for (size_t i = 0; argc > 0 && i < sizeof s_cmds / sizeof *s_cmds; i++)
        if (strcmp(s_cmds[i].name, argv[0]) == 0)
            return s_cmds[i].fn(argc, argv);
    fprintf(stderr, "vbak lab: unknown subcommand \"%s\"\n%s", argc > 0 ? argv[0] : "",
            vb_cli_lab_site_usage());
    return 2;
}
