/* vbak backup, restore, jobs, job, restore-points, restore-point, explain, verify, prune */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <czmq.h>

#include "cli.h"
#include "cli_repo.h"
#include "pipeline/pipeline.h"
#include "policy/explain.h"
#include "repo/index.h"
#include "repo/packcheck.h"
#include "repo/repo.h"
#include "timefmt.h"

typedef struct {
    bool json, wait;
} s_flags_t;

static bool s_is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static int s_usage(const char *text, bool help)
{
    fputs(text, help ? stdout : stderr);
    return help ? 0 : 2;
}

static const char *s_str(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

static int s_parse_id(const char *text, const char *what, int64_t *out)
{
    if (vb_parse_i64(text, 1, INT64_MAX, what, out) != 0)
        return vb_cli_fail("%s", vb_error_msg()) + 1;
    return 0;
}

static int s_parse_time(const char *text, const char *what, int64_t *out)
{
    if (!text || vb_time_parse(text, out) != 0)
        return vb_cli_fail("%s: %s", what, text ? vb_error_msg() : "needs a time (ISO 8601)") + 1;
    return 0;
}

static void s_mib(char *buf, size_t size, double bytes)
{
    snprintf(buf, size, "%.1f MiB", bytes / 1048576.0);
}

/* Follows a job until it ends, with a live bar on a terminal and plain lines otherwise. Each
 * `job.show` asks the coordinator to answer when the job ends or after the bar's refresh
 * interval, so the end is heard at once (not at the next poll). */
static int s_wait_job(vb_cli_t *cli, int64_t id, bool quiet, json_t **final)
{
    bool tty = isatty(STDERR_FILENO) && !quiet;
    int64_t t0 = zclock_mono(), last_line = 0;
    /* well inside the answer timeout */
    int64_t wait_ms = tty ? 200 : 1000;
    if (wait_ms > cli->settings.timeout_ms / 2)
        wait_ms = cli->settings.timeout_ms / 2;
    for (;;) {
        json_t *job = NULL;
        json_t *args = wait_ms ? json_pack("{s:I, s:I}", "id", (json_int_t)id, "wait_ms",
                                           (json_int_t)wait_ms)
                               : json_pack("{s:I}", "id", (json_int_t)id);
        int rc = vb_cli_call(cli, "job.show", args, &job);
        if (rc == VB_EINVAL && wait_ms && strstr(vb_error_msg(), "wait_ms")) {
            wait_ms = 0; /* a coordinator from before wait_ms: poll */
            continue;
        }
        if (rc != 0)
            return vb_cli_fail("%s", vb_error_msg());
        json_t *p = json_object_get(job, "progress");
        double total = (double)json_integer_value(json_object_get(p, "bytes_total"));
        double done = (double)json_integer_value(json_object_get(p, "bytes_done"));
        long long running = json_integer_value(json_object_get(p, "running"));
        double secs = (double)(zclock_mono() - t0) / 1000.0;
        double rate = secs > 0 ? done / secs : 0;
        double pct = total > 0 ? 100.0 * done / total : 0;
        char d[32], t[32], eta[32] = "-";
        s_mib(d, sizeof d, done);
        s_mib(t, sizeof t, total);
        if (rate > 0 && total > done)
            snprintf(eta, sizeof eta, "%.0fs", (total - done) / rate);
        bool ended = !s_is(s_str(job, "state"), "running");
        if (!quiet && (tty || ended || zclock_mono() - last_line >= 1000)) {
            int bar = (int)(pct / 5);
            /* the bar and the bytes are the read phase's; earlier phases show by name */
            fprintf(stderr,
                    "%sjob %lld %-8s [%.*s%.*s] %5.1f%% read %s/%s %.1f MiB/s ETA %s tasks "
                    "running %lld%s",
                    tty ? "\r" : "", (long long)id, s_str(p, "phase"), bar,
                    "####################", 20 - bar, "....................", pct, d, t,
                    rate / 1048576.0, eta, running, tty ? "  " : "\n");
            last_line = zclock_mono();
        }
        if (ended) {
            if (tty && !quiet)
                fputc('\n', stderr);
            *final = job;
            return 0;
        }
        json_decref(job);
        if (!wait_ms)
            zclock_sleep(tty ? 200 : 300);
    }
}

/* One aligned line per VM of a finished job: name, state, then mode, restore point, error. */
static void s_print_vm_outcomes(json_t *vms)
{
    const char *headers[] = {"  VM", "STATE", "OUTCOME"};
    vb_table_t *t = vb_table_new(3, headers);
    size_t i;
    json_t *v;
    json_array_foreach(vms, i, v) {
        char *vm = NULL, *outcome = NULL;
        char rp[48] = "";
        if (json_is_integer(json_object_get(v, "restore_point")))
            snprintf(rp, sizeof rp, " restore point %lld",
                     (long long)json_integer_value(json_object_get(v, "restore_point")));
        bool mode = json_is_string(json_object_get(v, "mode"));
        bool err = *s_str(v, "error") != '\0';
        if (asprintf(&vm, "  %s", s_str(v, "vm")) < 0)
            vm = NULL;
        if (asprintf(&outcome, "%s%s%s%s%s%s%s", mode ? s_str(v, "mode") : "", mode ? " (" : "",
                     mode ? s_str(v, "mode_reason") : "", mode ? ")" : "", rp,
                     err ? " error: " : "", err ? s_str(v, "error") : "") < 0)
            outcome = NULL;
        const char *row[] = {vm ? vm : "", s_str(v, "state"), outcome ? outcome : ""};
        vb_table_add(t, row);
        free(vm);
        free(outcome);
    }
    vb_table_print(t, stdout);
    vb_table_destroy(&t);
}

/* After the VMs' table: each VM's notes, and a snapshot whose removal is being retried. */
static void s_print_vm_notes(json_t *v)
{
    size_t k;
    json_t *note;
    json_array_foreach(json_object_get(v, "notes"), k, note)
        printf("  %s: note: %s\n", s_str(v, "vm"), json_string_value(note));
    if (!json_is_true(json_object_get(v, "snapshot_pending")))
        return;
    printf("  %s: snapshot %s: removal pending, retried until it succeeds", s_str(v, "vm"),
           s_str(v, "snapshot"));
    if (*s_str(v, "snapshot_error"))
        printf(" (last error: %s)", s_str(v, "snapshot_error"));
    printf("\n");
}

/* A backup VM's wall time per phase, one line: "vm: snapshot 0.012 s, ..., read 1.500 s (1.20
 * GiB, 0.80 GiB/s), ...". */
static void s_print_vm_timing(json_t *v)
{
    json_t *timing = json_object_get(v, "timing"), *p;
    size_t k;
    if (!json_array_size(timing))
        return;
    printf("  %s: time per phase:", s_str(v, "vm"));
    json_array_foreach(timing, k, p)
    {
        printf("%s %s %.3f s", k ? "," : "", s_str(p, "phase"),
               (double)json_integer_value(json_object_get(p, "ms")) / 1000.0);
        if (json_object_get(p, "bytes"))
            printf(" (%.2f GiB, %.2f GiB/s)",
                   (double)json_integer_value(json_object_get(p, "bytes")) / 1073741824.0,
                   json_real_value(json_object_get(p, "gib_per_s")));
    }
    printf("\n");
}

static int s_print_job_end(json_t *job, bool json)
{
    const char *state = s_str(job, "state");
    if (json) {
        vb_cli_print_json(job);
    } else {
        printf("job %lld %s", (long long)json_integer_value(json_object_get(job, "id")), state);
        const char *err = s_str(job, "error");
        if (*err)
            printf(": %s", err);
        printf("\n");
        json_t *vms = json_object_get(job, "vm_details"), *v;
        s_print_vm_outcomes(vms);
        size_t i;
        json_array_foreach(vms, i, v)
            s_print_vm_notes(v);
    }
    return s_is(state, "succeeded") ? 0 : 1;
}

/* Starts a job with `command`, then prints its id, or waits for it. */
static int s_run_job(vb_cli_t *cli, const char *command, json_t *args, s_flags_t f)
{
    json_t *res = NULL;
    if (vb_cli_call(cli, command, args, &res) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    int64_t id = json_integer_value(json_object_get(res, "job"));
    size_t k;
    json_t *note;
    json_array_foreach(json_object_get(json_object_get(res, "new_vm"), "notes"), k, note)
        fprintf(stderr, "vbak: note: %s\n", json_string_value(note));
    json_array_foreach(json_object_get(res, "notes"), k, note)
        fprintf(stderr, "vbak: note: %s\n", json_string_value(note));
    if (!f.wait) {
        if (f.json)
            vb_cli_print_json(res);
        else
            printf("job %lld started (vbak job show %lld)\n", (long long)id, (long long)id);
        json_decref(res);
        return 0;
    }
    json_decref(res);
    json_t *job = NULL;
    int rc = s_wait_job(cli, id, f.json, &job);
    if (rc)
        return rc;
    rc = s_print_job_end(job, f.json);
    json_decref(job);
    return rc;
}

int vb_cli_backup(vb_cli_t *cli, int argc, char **argv)
{
    static const char usage[] =
        "Usage: vbak backup VM... | --all [--fcd NAME]... [--full] [--wait] [--json]\n"
        "Back up VMs (and First Class Disks): incremental when the VM has a complete restore\n"
        "point whose change IDs are still valid, full otherwise (the reason is shown).\n"
        "  --all        every VM of the site\n"
        "  --fcd NAME   a First Class Disk (repeatable)\n"
        "  --full       a full backup even when an incremental is possible\n"
        "  --wait       wait for the job, with progress; exit status 1 when it fails\n"
        "  --json       {\"job\": ID}, or with --wait the finished job\n";
    s_flags_t f = {0};
    json_t *vms = json_array(), *fcds = json_array();
    bool all = false, full = false;
    for (int i = 1; i < argc; i++) {
        if (s_is(argv[i], "--help") || s_is(argv[i], "-h")) {
            json_decref(vms), json_decref(fcds);
            return s_usage(usage, true);
        } else if (s_is(argv[i], "--all"))
            all = true;
        else if (s_is(argv[i], "--full"))
            full = true;
        else if (s_is(argv[i], "--wait"))
            f.wait = true;
        else if (s_is(argv[i], "--json"))
            f.json = true;
        else if (s_is(argv[i], "--fcd") && i + 1 < argc)
            json_array_append_new(fcds, json_string(argv[++i]));
        else if (argv[i][0] == '-') {
            json_decref(vms), json_decref(fcds);
            return vb_cli_fail("backup: unknown option '%s' (see --help)", argv[i]) + 1;
        } else
            json_array_append_new(vms, json_string(argv[i]));
    }
    if (!all && json_array_size(vms) == 0 && json_array_size(fcds) == 0) {
        json_decref(vms), json_decref(fcds);
        return s_usage(usage, false);
    }
    json_t *args = json_pack("{s:o, s:o, s:b, s:b}", "vms", vms, "fcds", fcds, "all", all,
                             "full", full);
    return s_run_job(cli, "backup", args, f);
}

static char *s_absolute(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return NULL;
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s", cwd, path);
    return out;
}

/* What a restore option that takes a value needs ("a directory"), or NULL for any other. */
static const char *s_restore_value(const char *opt)
{
    static const char *const table[][2] = {
        {"--to-dir", "a directory"}, {"--new-vm", "a name"}, {"--datastore", "a datastore"}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (s_is(opt, table[i][0]))
            return table[i][1];
    return NULL;
}

int vb_cli_restore(vb_cli_t *cli, int argc, char **argv)
{
    static const char usage[] =
        "Usage: vbak restore RP (--to-dir DIR | --to-vm | --new-vm NAME [--datastore DS])\n"
        "                    [--delete-snapshots] [--wait] [--json]\n"
        "Restore a restore point's disks, as extent tasks on the agents.\n"
        "  --to-dir DIR        one sparse raw image per disk: DIR/<vm>-<disk key>.raw\n"
        "  --to-vm             into the VM's own disks (refused while the VM has snapshots)\n"
        "  --delete-snapshots  with --to-vm: delete the VM's snapshots first\n"
        "  --new-vm NAME       into a new VM NAME (refused when the name exists), with one new\n"
        "                      disk per disk of the restore point: same keys and capacities;\n"
        "                      an encrypted disk becomes a plain disk holding its plaintext\n"
        "  --datastore DS      with --new-vm: where its disks go (default: the datastore of\n"
        "                      the restore point's first disk); a host mounting DS runs it\n"
        "  --wait, --json      as for backup\n";
    s_flags_t f = {0};
    int64_t rp = 0;
    const char *dir = NULL, *new_vm = NULL, *ds = NULL;
    bool to_vm = false, del = false;
    for (int i = 1; i < argc; i++) {
        if (s_is(argv[i], "--help") || s_is(argv[i], "-h"))
            return s_usage(usage, true);
        if (s_restore_value(argv[i]) && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
            return vb_cli_fail("restore: %s needs %s", argv[i], s_restore_value(argv[i])) + 1;
        if (s_is(argv[i], "--to-dir"))
            dir = argv[++i];
        else if (s_is(argv[i], "--to-vm"))
            to_vm = true;
        else if (s_is(argv[i], "--new-vm"))
            new_vm = argv[++i];
        else if (s_is(argv[i], "--datastore"))
            ds = argv[++i];
        else if (s_is(argv[i], "--delete-snapshots"))
            del = true;
        else if (s_is(argv[i], "--wait"))
            f.wait = true;
        else if (s_is(argv[i], "--json"))
            f.json = true;
        else if (argv[i][0] != '-' && !rp) {
            int rc = s_parse_id(argv[i], "restore point", &rp);
            if (rc)
                return rc;
        } else
            return vb_cli_fail("restore: unexpected argument '%s' (see --help)", argv[i]) + 1;
    }
    if (!rp || (!dir && !to_vm && !new_vm))
        return s_usage(usage, false);
    if (!!dir + to_vm + !!new_vm > 1)
        return vb_cli_fail("restore: choose one of --to-dir, --to-vm, --new-vm") + 1;
    if (ds && !new_vm)
        return vb_cli_fail("restore: --datastore goes with --new-vm") + 1;
    char *abs = dir ? s_absolute(dir) : NULL;
    json_t *args = json_pack("{s:I, s:s?, s:b, s:b, s:s?, s:s?}", "rp", (json_int_t)rp, "to_dir",
                             abs, "to_vm", to_vm, "delete_snapshots", del, "new_vm", new_vm,
                             "datastore", ds);
    free(abs);
    return s_run_job(cli, "restore", args, f);
}

int vb_cli_jobs(vb_cli_t *cli, int argc, char **argv)
{
    bool json = argc > 1 && s_is(argv[1], "--json");
    if (argc > 1 && !json)
        return s_usage("Usage: vbak jobs [--json]\nList jobs, newest first.\n",
                       s_is(argv[1], "--help"));
    json_t *jobs = NULL;
    if (vb_cli_call(cli, "jobs", json_pack("{s:i}", "limit", 200), &jobs) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    if (json) {
        vb_cli_print_json(jobs);
        json_decref(jobs);
        return 0;
    }
    static const char *const h[] = {"ID", "KIND", "STATE", "VMS", "STARTED", "FINISHED", "ERROR"};
    vb_table_t *t = vb_table_new(7, h);
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j) {
        char id[24], vms[256] = "";
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(j, "id")));
        size_t k, used = 0;
        json_t *v;
        json_array_foreach(json_object_get(j, "vms"), k, v) {
            int w = snprintf(vms + used, sizeof vms - used, "%s%s", k ? "," : "", json_string_value(v));
            if (w < 0 || (size_t)w >= sizeof vms - used)
                break;
            used += (size_t)w;
        }
        char state[96];
        snprintf(state, sizeof state, "%s%s%s%s", s_str(j, "state"), *s_str(j, "phase") ? " (" : "",
                 s_str(j, "phase"), *s_str(j, "phase") ? ")" : "");
        const char *row[] = {id, s_str(j, "kind"), state, vms, s_str(j, "started"),
                             s_str(j, "finished"), s_str(j, "error")};
        vb_table_add(t, row);
    }
    vb_table_print(t, stdout);
    vb_table_destroy(&t);
    json_decref(jobs);
    return 0;
}

static void s_print_tasks(json_t *tasks)
{
    static const char *const h[] = {"TASK", "DISK", "KIND", "STATE", "AGENT", "TRANSPORT",
                                    "TRIES", "WHY / ERROR"};
    vb_table_t *t = vb_table_new(8, h);
    size_t i;
    json_t *x;
    json_array_foreach(tasks, i, x) {
        char id[24], tries[24], disk[128];
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(x, "id")));
        snprintf(tries, sizeof tries, "%lld", (long long)json_integer_value(json_object_get(x, "attempts")));
        snprintf(disk, sizeof disk, "%s/%s", s_str(x, "vm"), s_str(x, "disk"));
        const char *why = *s_str(x, "error") ? s_str(x, "error") : s_str(x, "reason");
        const char *row[] = {id, disk, s_str(x, "kind"), s_str(x, "state"), s_str(x, "agent"),
                             s_str(x, "transport"), tries, why};
        vb_table_add(t, row);
    }
    vb_table_print(t, stdout);
    vb_table_destroy(&t);
}

int vb_cli_job(vb_cli_t *cli, int argc, char **argv)
{
    static const char usage[] = "Usage: vbak job show ID [--json] | vbak job cancel ID\n"
                                "Show a job (VMs, tasks, agents, transports and why, retries,\n"
                                "errors) or cancel it.\n";
    if (argc < 3)
        return s_usage(usage, argc > 1 && s_is(argv[1], "--help"));
    int64_t id;
    int rc = s_parse_id(argv[2], "job", &id);
    if (rc)
        return rc;
    bool json = argc > 3 && s_is(argv[3], "--json");
    json_t *res = NULL;
    if (s_is(argv[1], "cancel")) {
        if (vb_cli_call(cli, "job.cancel", json_pack("{s:I}", "id", (json_int_t)id), &res) != 0)
            return vb_cli_fail("%s", vb_error_msg());
        printf("job %lld cancelled\n", (long long)id);
        json_decref(res);
        return 0;
    }
    if (!s_is(argv[1], "show"))
        return s_usage(usage, false);
    if (vb_cli_call(cli, "job.show", json_pack("{s:I, s:b}", "id", (json_int_t)id, "tasks", 1),
                    &res) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    if (json) {
        vb_cli_print_json(res);
    } else {
        (void)s_print_job_end(res, false);
        printf("  started %s  finished %s\n", s_str(res, "started"), s_str(res, "finished"));
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(res, "vm_details"), i, v)
            s_print_vm_timing(v);
        s_print_tasks(json_object_get(res, "tasks"));
    }
    json_decref(res);
    return 0;
}

int vb_cli_restore_points(vb_cli_t *cli, int argc, char **argv)
{
    static const char usage[] =
        "Usage: vbak restore-points [VM] [--before TIME] [--after TIME] [--last N] [--json]\n"
        "List complete restore points, oldest first. TIME is ISO 8601, e.g. 2026-11-30T10:00:00Z.\n"
        "--last N: only the newest N of those that match.\n";
    const char *vm = NULL;
    int64_t before = 0, after = 0, last = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        int rc = 0;
        if (s_is(argv[i], "--help"))
            return s_usage(usage, true);
        if (s_is(argv[i], "--json"))
            json = true;
        else if (s_is(argv[i], "--before"))
            rc = s_parse_time(i + 1 < argc ? argv[++i] : NULL, "--before", &before);
        else if (s_is(argv[i], "--after"))
            rc = s_parse_time(i + 1 < argc ? argv[++i] : NULL, "--after", &after);
        else if (s_is(argv[i], "--last") && i + 1 < argc) {
            if (vb_parse_i64(argv[++i], 1, INT32_MAX, "--last", &last) != 0)
                rc = vb_cli_fail("restore-points: %s", vb_error_msg()) + 1;
        } else if (argv[i][0] != '-' && !vm)
            vm = argv[i];
        else
            return vb_cli_fail("restore-points: unexpected argument '%s'", argv[i]) + 1;
        if (rc)
            return rc;
    }
    json_t *res = NULL;
    if (vb_cli_call(cli, "restore-points",
                    json_pack("{s:s?, s:I, s:I, s:I}", "vm", vm, "before", (json_int_t)before,
                              "after", (json_int_t)after, "last", (json_int_t)last),
                    &res) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    if (json) {
        vb_cli_print_json(res);
        json_decref(res);
        return 0;
    }
    static const char *const h[] = {"ID", "VM", "CREATED", "KIND", "PARENT", "VERIFY"};
    vb_table_t *t = vb_table_new(6, h);
    size_t i;
    json_t *r;
    json_array_foreach(res, i, r) {
        char id[24], parent[24] = "-";
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(r, "id")));
        if (json_is_integer(json_object_get(r, "parent")))
            snprintf(parent, sizeof parent, "%lld",
                     (long long)json_integer_value(json_object_get(r, "parent")));
        const char *row[] = {id, s_str(r, "vm"), s_str(r, "created"), s_str(r, "kind"), parent,
                             s_str(r, "verify")};
        vb_table_add(t, row);
    }
    vb_table_print(t, stdout);
    vb_table_destroy(&t);
    json_decref(res);
    return 0;
}

int vb_cli_restore_point(vb_cli_t *cli, int argc, char **argv)
{
    static const char usage[] = "Usage: vbak restore-point show RP [--json]\n"
                                "Disks, sizes, change IDs, parent chain, transports, verify state.\n";
    if (argc < 3 || !s_is(argv[1], "show"))
        return s_usage(usage, argc > 1 && s_is(argv[1], "--help"));
    int64_t id;
    int rc = s_parse_id(argv[2], "restore point", &id);
    if (rc)
        return rc;
    json_t *r = NULL;
    if (vb_cli_call(cli, "restore-point.show", json_pack("{s:I}", "id", (json_int_t)id), &r) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    if (argc > 3 && s_is(argv[3], "--json")) {
        vb_cli_print_json(r);
        json_decref(r);
        return 0;
    }
    printf("restore point %lld of %s, %s, created %s, verify %s\n", (long long)id, s_str(r, "vm"),
           s_str(r, "kind"), s_str(r, "created"), s_str(r, "verify"));
    printf("chain:");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(r, "chain"), i, c)
        printf(" %s%lld (%s)", i ? "<- " : "", (long long)json_integer_value(json_object_get(c, "id")),
               s_str(c, "kind"));
    printf("\n");
    json_array_foreach(json_object_get(r, "disks"), i, c) {
        char cap[32], logical[32], newb[32], tr[64] = "";
        s_mib(cap, sizeof cap, (double)json_integer_value(json_object_get(c, "capacity")));
        s_mib(logical, sizeof logical, (double)json_integer_value(json_object_get(c, "logical_bytes")));
        s_mib(newb, sizeof newb, (double)json_integer_value(json_object_get(c, "new_bytes")));
        size_t k, used = 0;
        json_t *m;
        json_array_foreach(json_object_get(c, "transports"), k, m)
            used += (size_t)snprintf(tr + used, used < sizeof tr ? sizeof tr - used : 0, "%s%s",
                                     k ? "," : "", json_string_value(m));
        printf("  disk %s \"%s\" on %s: %s, data %s, new %s, transports %s\n    change id %s\n",
               s_str(c, "key"), s_str(c, "name"), s_str(c, "datastore"), cap, logical, newb, tr,
               s_str(c, "change_id"));
    }
    json_decref(r);
    return 0;
}

int vb_cli_explain(vb_cli_t *cli, int argc, char **argv)
{
    static const char usage[] =
        "Usage: vbak explain VM [--agent NAME] [--restore] [--json]\n"
        "For each disk x agent: the transport mode chosen, and why every other mode was refused.\n";
    const char *vm = NULL, *agent = NULL;
    bool restore = false, json = false;
    for (int i = 1; i < argc; i++) {
        if (s_is(argv[i], "--help"))
            return s_usage(usage, true);
        if (s_is(argv[i], "--agent") && i + 1 < argc)
            agent = argv[++i];
        else if (s_is(argv[i], "--restore"))
            restore = true;
        else if (s_is(argv[i], "--json"))
            json = true;
        else if (argv[i][0] != '-' && !vm)
            vm = argv[i];
        else
            return vb_cli_fail("explain: unexpected argument '%s'", argv[i]) + 1;
    }
    if (!vm)
        return s_usage(usage, false);
    json_t *rows = NULL;
    if (vb_cli_call(cli, "explain",
                    json_pack("{s:s, s:s?, s:b}", "vm", vm, "agent", agent, "restore", restore),
                    &rows) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    if (json)
        vb_cli_print_json(rows);
    else
        vb_explain_print(stdout, rows);
    json_decref(rows);
    return 0;
}

typedef struct {
    vb_repo_t *repo;
    const char *disk;
    json_t *bad; /* {disk, offset, digest, problem} per bad chunk */
} s_verify_ctx_t;

/* Called by the pipeline's workers (one at a time) for each bad chunk. */
static void s_verify_report(void *ctx, uint64_t offset, const vb_digest_t *digest, int code,
                            const char *message)
{
    s_verify_ctx_t *v = ctx;
    char hex[VB_DIGEST_HEX_LEN + 1], problem[512];
    vb_digest_hex(digest, hex);
    if (code == VB_ENOTFOUND && vb_repo_chunk_quarantined(v->repo, digest))
        snprintf(problem, sizeof problem,
                 "the chunk is in quarantine (an earlier verify found it bad)");
    else
        snprintf(problem, sizeof problem, "%s", message);
    json_array_append_new(v->bad, json_pack("{s:s, s:I, s:s, s:s, s:s}", "disk", v->disk,
                                            "offset", (json_int_t)offset, "digest", hex,
                                            "problem", problem, "code", vb_strerror(code)));
}

/* Moves each corrupt chunk into quarantine (once: a chunk may be bad at several offsets), so that
 * the next backup that reads its content stores it again. Returns how many were moved. */
static size_t s_quarantine(vb_repo_t *repo, json_t *bad)
{
    size_t i, moved = 0;
    json_t *b;
    json_array_foreach(bad, i, b) {
        vb_digest_t d;
        if (!streq(s_str(b, "code"), vb_strerror(VB_ECORRUPT)) ||
            vb_digest_parse(s_str(b, "digest"), &d) != 0)
            continue;
        int rc = vb_repo_chunk_quarantine(repo, &d);
        if (rc == 0)
            moved++;
        else if (rc != VB_ENOTFOUND)
            fprintf(stderr, "vbak: %s\n", vb_error_msg());
        json_object_set_new(b, "quarantined", json_boolean(rc == 0 || rc == VB_ENOTFOUND));
    }
    return moved;
}

/* Verifies every disk of the plan: bad chunks (or an unreadable index) go into `bad`, one row per
 * disk into `report`, the first error into first_error. */
static void s_verify_disks(vb_repo_t *repo, json_t *plan, json_t *bad, json_t *report,
                           char *first_error, size_t size)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(plan, "disks"), i, d) {
        vb_index_t *index = NULL;
        s_verify_ctx_t ctx = {repo, s_str(d, "key"), bad};
        vb_pipeline_stats_t stats = {0};
        size_t before = json_array_size(bad);
        int rc = vb_index_read(repo, s_str(d, "index"), &index);
        if (!rc)
            rc = vb_pipeline_verify(repo, NULL, index, s_verify_report, &ctx, &stats);
        if (rc && !first_error[0] && json_array_size(bad) > before)
            snprintf(first_error, size, "%s", vb_error_msg()); /* names the disk already */
        else if (rc && !first_error[0])
            snprintf(first_error, size, "disk %s: %s", ctx.disk, vb_error_msg());
        if (rc && json_array_size(bad) == before) /* not a chunk: the index itself */
            json_array_append_new(bad, json_pack("{s:s, s:n, s:n, s:s, s:s}", "disk", ctx.disk,
                                                 "offset", "digest", "problem", vb_error_msg(),
                                                 "code", vb_strerror(rc)));
        json_array_append_new(report, json_pack("{s:s, s:I, s:I}", "disk", ctx.disk, "chunks",
                                                (json_int_t)stats.chunks, "bad",
                                                (json_int_t)(json_array_size(bad) - before)));
        vb_index_destroy(&index);
    }
}

static void s_verify_print(json_t *plan, int64_t id, json_t *bad, size_t moved)
{
    size_t i;
    json_t *b;
    json_array_foreach(bad, i, b) {
        if (json_is_null(json_object_get(b, "digest"))) {
            printf("  disk %s: %s\n", s_str(b, "disk"), s_str(b, "problem"));
            continue;
        }
        /* the problem may name the chunk already ("chunk D has a damaged header") */
        const char *problem = s_str(b, "problem"), *digest = s_str(b, "digest");
        printf("  disk %s offset %lld: %s", s_str(b, "disk"),
               (long long)json_integer_value(json_object_get(b, "offset")), problem);
        printf(strstr(problem, digest) ? "\n" : " (chunk %.16s...)\n", digest);
    }
    const char *vm = s_str(plan, "vm");
    if (!json_array_size(bad)) {
        printf("restore point %lld of %s: all chunks verified\n", (long long)id, vm);
        return;
    }
    printf("restore point %lld of %s: CORRUPT (%zu bad chunk(s))\n", (long long)id, vm,
           json_array_size(bad));
    if (moved)
        printf("quarantined %zu bad chunk(s) (the repository's quarantine/); ", moved);
    printf("the next backup of %s reads every chunk again (vbak backup %s) and stores what is "
           "bad or missing: restore points made after it verify clean\n",
           vm, vm);
}

static void s_repo_bad(void *arg, const char *name, const char *problem)
{
    json_array_append_new(arg, json_pack("{s:s, s:s}", "object", name, "problem", problem));
}

/* vbak verify --repo PATH: every index object and pack trailer of a format 2 repository. */
static int s_verify_repo(const char *path, bool json)
{
    vb_packcheck_stats_t st;
    json_t *bad = json_array();
    char cred_file[4096];
    vb_cli_repo_credentials(NULL, cred_file, sizeof cred_file); /* vbak.conf's, for S3 */
    vb_store_opts_t so = {.credentials_file = cred_file[0] ? cred_file : NULL};
    if (vb_repo_check_packs_opts(path, &so, s_repo_bad, bad, &st) != 0) {
        json_decref(bad);
        return vb_cli_fail("verify --repo: %s", vb_error_msg());
    }
    size_t i;
    json_t *b;
    if (json) {
        json_t *out = json_pack("{s:s, s:I, s:I, s:I, s:O}", "repository", path, "index_objects",
                                (json_int_t)st.index_objects, "packs", (json_int_t)st.packs,
                                "chunks", (json_int_t)st.chunks, "damaged", bad);
        vb_cli_print_json(out);
        json_decref(out);
    } else {
        json_array_foreach(bad, i, b)
            printf("damaged: %s: %s\n", s_str(b, "object"), s_str(b, "problem"));
        printf("checked %llu index object(s) and %llu pack(s) listing %llu chunk(s): %zu "
               "damaged\n",
               (unsigned long long)st.index_objects, (unsigned long long)st.packs,
               (unsigned long long)st.chunks, json_array_size(bad));
    }
    int rc = json_array_size(bad) ? 1 : 0;
    json_decref(bad);
    return rc;
}

int vb_cli_verify(vb_cli_t *cli, int argc, char **argv)
{
    static const char usage[] =
        "Usage: vbak verify RP [--json]\n"
        "       vbak verify --repo PATH [--json]\n"
        "Re-read and re-hash every chunk of a restore point; name every corrupt or missing chunk\n"
        "by disk and offset, and move corrupt ones into the repository's quarantine/ so that the\n"
        "next backup of the VM stores them again. Exit status 1 when any is bad. The result is\n"
        "kept on the restore point; prune keeps the restore point while verify runs.\n"
        "--repo PATH: in a format 2 repository, read every chunk index object and every pack's\n"
        "trailer and name each damaged one (chunk contents are checked per restore point).\n";
    if (argc < 2 || s_is(argv[1], "--help"))
        return s_usage(usage, argc > 1);
    if (s_is(argv[1], "--repo"))
        return argc > 2 ? s_verify_repo(argv[2], argc > 3 && s_is(argv[3], "--json"))
                        : s_usage(usage, false);
    int64_t id;
    int rc = s_parse_id(argv[1], "restore point", &id);
    if (rc)
        return rc;
    bool json = argc > 2 && s_is(argv[2], "--json");
    json_t *plan = NULL;
    if (vb_cli_call(cli, "verify.plan", json_pack("{s:I}", "rp", (json_int_t)id), &plan) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    json_int_t job = json_integer_value(json_object_get(plan, "job"));
    char cred_file[4096];
    vb_cli_repo_credentials(json_string_value(json_object_get(plan, "credentials_file")),
                            cred_file, sizeof cred_file);
    vb_store_opts_t so = {.credentials_file = cred_file[0] ? cred_file : NULL};
    vb_repo_t *repo = vb_repo_open_opts(s_str(plan, "repository"),
                                        json_string_value(json_object_get(plan, "key_file")), &so);
    json_t *bad = json_array(), *report = json_array();
    char first_error[512] = "";
    size_t moved = 0;
    bool opened = repo != NULL;
    if (repo) {
        s_verify_disks(repo, plan, bad, report, first_error, sizeof first_error);
        moved = s_quarantine(repo, bad);
    } else { /* nothing was checked: end the lease, leave the restore point's state alone */
        snprintf(first_error, sizeof first_error, "%s", vb_error_msg());
    }
    vb_repo_destroy(&repo);
    bool ok = !first_error[0];
    json_t *res = NULL;
    if (vb_cli_call(cli, "verify.record",
                    json_pack("{s:I, s:I, s:b, s:b, s:s}", "rp", (json_int_t)id, "job", job,
                              "ok", ok, "aborted", !opened, "error", first_error),
                    &res) != 0)
        vb_cli_fail("recording the result: %s", vb_error_msg());
    json_decref(res);
    if (json) {
        json_t *out = json_pack("{s:I, s:b, s:s?, s:I, s:I, s:O, s:O}", "rp", (json_int_t)id, "ok",
                                ok, "error", ok ? NULL : first_error, "bad_chunks",
                                (json_int_t)json_array_size(bad), "quarantined", (json_int_t)moved,
                                "disks", report, "bad", bad);
        vb_cli_print_json(out);
        json_decref(out);
    } else if (json_array_size(bad) || ok) {
        s_verify_print(plan, id, bad, moved);
    } else {
        vb_cli_fail("%s", first_error);
    }
    json_decref(bad);
    json_decref(report);
    json_decref(plan);
    return ok ? 0 : 1;
}

static long long s_ll(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* Format 2: packs deleted and rewritten, index objects merged. */
static void s_prune_packs_print(json_t *packs, bool dry)
{
    if (!packs)
        return;
    double mib = (double)s_ll(packs, "bytes_freed") / 1048576.0;
    if (dry)
        printf("packs: %lld looked at; would delete %lld and rewrite %lld, freeing about %.1f MiB, "
               "and merge %lld index object(s)\n",
               s_ll(packs, "packs"), s_ll(packs, "deleted"), s_ll(packs, "rewritten"), mib,
               s_ll(packs, "index_objects_before"));
    else
        printf("packs: %lld looked at; %lld deleted, %lld rewritten into %lld new, %lld kept as "
               "recently used; %.1f MiB freed; %lld index object(s) merged into %lld\n",
               s_ll(packs, "packs"), s_ll(packs, "deleted"), s_ll(packs, "rewritten"),
               s_ll(packs, "written"), s_ll(packs, "kept_recent") + s_ll(packs, "kept_busy"), mib,
               s_ll(packs, "index_objects_before"), s_ll(packs, "index_objects_written"));
    if (!dry && s_ll(packs, "kept_locked")) {
        time_t until = (time_t)s_ll(packs, "locked_until");
        char date[32] = "?";
        struct tm tm;
        if (until && gmtime_r(&until, &tm))
            strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", &tm);
        printf("packs: %lld object(s) (%.1f MiB) kept under Object Lock until %s; a later prune "
               "or gc deletes them\n",
               s_ll(packs, "kept_locked"), (double)s_ll(packs, "bytes_locked") / 1048576.0, date);
    }
    long long extended = s_ll(packs, "locks_extended"), due = s_ll(packs, "locks_due");
    if (extended)
        printf("packs: the Object Lock of %lld live object(s) (packs, disk indexes, manifests) %s "
               "by the lock period\n",
               extended,
               dry ? "would be extended" : "extended");
    if (due)
        printf("packs: the Object Lock of %lld more live object(s) is due: the next prune extends "
               "it\n",
               due);
}

/* Each restore point and the decision; a kept one a running job uses says which job. */
static void s_prune_print(json_t *res)
{
    const char *headers[] = {"  RP", "VM", "CREATED", "DECISION"};
    vb_table_t *t = vb_table_new(4, headers);
    size_t i, k;
    json_t *r, *use;
    json_array_foreach(json_object_get(res, "restore_points"), i, r) {
        char id[32];
        snprintf(id, sizeof id, "  %lld", (long long)json_integer_value(json_object_get(r, "id")));
        char *decision = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&decision, &len);
        if (m) {
            fputs(s_str(r, "decision"), m);
            json_array_foreach(json_object_get(r, "in_use"), k, use)
                fprintf(m, "%s%s", k ? "; " : " (kept: ", json_string_value(use));
            fputs(json_array_size(json_object_get(r, "in_use")) ? ")" : "", m);
            fclose(m);
        }
        const char *row[] = {id, s_str(r, "vm"), s_str(r, "created"), decision ? decision : ""};
        vb_table_add(t, row);
        free(decision);
    }
    vb_table_print(t, stdout);
    vb_table_destroy(&t);
    bool dry = json_is_true(json_object_get(res, "dry_run"));
    json_t *gc = json_object_get(res, "gc");
    long long removed = (long long)json_integer_value(json_object_get(res, "removed"));
    long long swept = (long long)json_integer_value(json_object_get(gc, "swept"));
    double mib = (double)json_integer_value(json_object_get(gc, "swept_bytes")) / 1048576.0;
    if (dry)
        printf("would remove %lld restore point(s); garbage collection would then free about "
               "%lld chunk(s) (%.1f MiB); nothing was changed\n",
               removed, swept, mib);
    else
        printf("removed %lld restore point(s); garbage collection removed %lld chunk(s) "
               "(%.1f MiB)\n",
               removed, swept, mib);
    s_prune_packs_print(json_object_get(gc, "packs"), dry);
    long long in_use = (long long)json_integer_value(json_object_get(res, "kept_in_use"));
    if (in_use)
        printf("kept %lld restore point(s) outside the policy that running jobs use; the next "
               "prune after those jobs end removes them\n",
               in_use);
    json_array_foreach(json_object_get(gc, "orphan_indexes"), i, r)
        printf("index %s belongs to no restore point (left by a failed backup): ignored; "
               "delete it from the repository's indexes/ when you wish\n",
               json_string_value(r));
}

int vb_cli_prune(vb_cli_t *cli, int argc, char **argv)
{
    static const char usage[] =
        "Usage: vbak prune [--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N]\n"
        "                  [--repack-below PCT] [--dry-run] [--json]\n"
        "Remove restore points outside the policy (never the newest complete one of a VM, nor one\n"
        "a running backup, restore or verify uses), then collect unreferenced chunks that are\n"
        "older than the oldest running job. At least one N must be 1 or more. --dry-run changes\n"
        "nothing and says what would be removed and about how much garbage collection would\n"
        "free. In a format 2 repository, packs with no live chunk are deleted and packs older\n"
        "than the oldest running job whose live bytes are below PCT %% (default 50) are\n"
        "repacked; the chunk index objects are merged into one.\n";
    const char *keys[] = {"--keep-last", "--keep-daily", "--keep-weekly", "--keep-monthly"};
    const char *names[] = {"keep_last", "keep_daily", "keep_weekly", "keep_monthly"};
    json_t *args = json_object();
    bool json = false;
    int64_t rules = 0;
    for (int i = 1; i < argc; i++) {
        bool matched = false;
        for (int k = 0; k < 4; k++) {
            if (s_is(argv[i], keys[k]) && i + 1 < argc) {
                int64_t v;
                if (vb_parse_i64(argv[++i], 0, 100000, keys[k], &v) != 0) {
                    json_decref(args);
                    return vb_cli_fail("%s", vb_error_msg()) + 1;
                }
                json_object_set_new(args, names[k], json_integer(v));
                rules += v;
                matched = true;
            }
        }
        if (matched)
            continue;
        int64_t pct;
        if (s_is(argv[i], "--dry-run")) {
            json_object_set_new(args, "dry_run", json_true());
        } else if (s_is(argv[i], "--json")) {
            json = true;
        } else if (s_is(argv[i], "--repack-below") && i + 1 < argc) {
            if (vb_parse_i64(argv[++i], 0, 100, "--repack-below", &pct) != 0) {
                json_decref(args);
                return vb_cli_fail("%s", vb_error_msg()) + 1;
            }
            json_object_set_new(args, "repack_below", json_integer(pct));
        } else {
            json_decref(args);
            return s_usage(usage, s_is(argv[i], "--help"));
        }
    }
    if (!rules) { /* a policy that keeps nothing would prune all but the newest: refuse it */
        json_decref(args);
        return vb_cli_fail("prune: give at least one of --keep-last, --keep-daily, --keep-weekly "
                           "or --keep-monthly with N of 1 or more") + 1;
    }
    json_t *started = NULL, *job = NULL;
    if (vb_cli_call(cli, "prune", args, &started) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    /* the coordinator collects garbage on a worker: wait for the prune job, then its result */
    int64_t id = json_integer_value(json_object_get(started, "job"));
    json_decref(started);
    int rc = s_wait_job(cli, id, true, &job);
    if (rc)
        return rc;
    json_t *res = json_object_get(job, "result");
    if (!s_is(s_str(job, "state"), "succeeded") || !json_is_object(res)) {
        rc = vb_cli_fail("prune (job %lld): %s", (long long)id,
                         *s_str(job, "error") ? s_str(job, "error") : s_str(job, "state"));
        json_decref(job);
        return rc;
    }
    json_object_set_new(res, "job", json_integer(id));
    if (json)
        vb_cli_print_json(res);
    else
        s_prune_print(res);
    json_decref(job);
    return 0;
}
