/* vbak-bench-catalog — how fast the catalog answers what the CLI and the scheduler ask.
 *
 *   vbak-bench-catalog DIR [--vms N] [--rps N] [--hot N] [--tasks N] [--batch N] [--iters N]
 *
 * Builds DIR/catalog.db through the public catalog API:
 *   - N restore points (--rps, default 100000) spread evenly over --vms VMs (default 1000),
 *     each an incremental on the previous one of its VM, one disk each;
 *   - plus --hot restore points (default 100000) of one extra VM "hot-vm": the worst case of a
 *     single VM holding 100,000 restore points;
 * then times (median and 99th percentile over --iters runs, default 200):
 *   - restore points of a VM (all; --after; --before + --after window; newest 20),
 *   - the latest restore point of a VM before a time (with disks),
 * and the scheduler's task path: --tasks (default 50000) inserts, claims and completions in
 * transactions of --batch (default 1000) updates, printing updates per second.
 * The database is left in DIR for inspection (sqlite3 DIR/catalog.db 'EXPLAIN QUERY PLAN ...'). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/catalog.h"

typedef struct {
    size_t vms, rps, hot, tasks, batch, iters;
} s_opts_t;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static bool s_parse_size(const char *text, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || !end || *end || v == 0 || v > 100000000ULL)
        return false;
    *out = (size_t)v;
    return true;
}

static void s_die(const char *what)
{
    fprintf(stderr, "vbak-bench-catalog: %s: %s\n", what, vb_error_msg());
    exit(1);
}

/* One complete restore point of `vm` at `created` on top of *parent (0: a full). */
static void s_add_rp(vb_catalog_t *cat, const char *vm, int64_t created, int64_t *parent)
{
    char path[96], change[32];
    snprintf(path, sizeof path, "indexes/%s-%lld.idx", vm, (long long)created);
    snprintf(change, sizeof change, "52 aa/%lld", (long long)created);
    char *transports[] = {"nbdssl"};
    vb_rp_disk_t disk = {.key = "2000",
                         .name = "Hard disk 1",
                         .datastore = "vmfs-01",
                         .capacity = 40ULL << 30,
                         .change_id = change,
                         .index_path = path,
                         .logical_bytes = 10ULL << 30,
                         .new_bytes = 64ULL << 20,
                         .chunk_count = 40960,
                         .transports = transports,
                         .transport_count = 1};
    vb_restore_point_t rp = {.vm = (char *)vm,
                             .created = created,
                             .kind = *parent ? VB_RP_INCREMENTAL : VB_RP_FULL,
                             .parent_id = *parent,
                             .disks = &disk,
                             .disk_count = 1};
    int64_t id = 0;
    if (vb_catalog_restore_point_create(cat, &rp, &id) != 0)
        s_die("creating a restore point");
    if (vb_catalog_restore_point_commit(cat, id, NULL, 0, created + 60000) != 0)
        s_die("committing a restore point");
    *parent = id;
}

static void s_populate(vb_catalog_t *cat, const s_opts_t *o)
{
    const int64_t t0 = 1700000000000LL, hour = 3600000LL;
    size_t per_vm = o->rps / o->vms;
    int64_t *parents = calloc(o->vms, sizeof *parents);
    int64_t hot_parent = 0;
    if (!parents)
        s_die("out of memory");
    double start = s_now();
    if (vb_catalog_begin(cat) != 0)
        s_die("begin");
    size_t done = 0;
    for (size_t round = 0; round < per_vm || round < o->hot; round++) {
        for (size_t v = 0; round < per_vm && v < o->vms; v++) {
            char vm[32];
            snprintf(vm, sizeof vm, "vm-%04zu", v);
            s_add_rp(cat, vm, t0 + (int64_t)round * hour + (int64_t)v * 1000, &parents[v]);
            done++;
        }
        if (round < o->hot) {
            s_add_rp(cat, "hot-vm", t0 + (int64_t)round * 60000, &hot_parent);
            done++;
        }
        if (done >= 10000) {
            if (vb_catalog_commit(cat) != 0 || vb_catalog_begin(cat) != 0)
                s_die("commit");
            done = 0;
        }
    }
    if (vb_catalog_commit(cat) != 0)
        s_die("commit");
    printf("populate: %zu restore points over %zu VMs + %zu of hot-vm in %.1f s\n", per_vm * o->vms,
           o->vms, o->hot, s_now() - start);
    free(parents);
}

typedef struct {
    const char *name;
    const char *vm; /* NULL: a random one of vm-0000..; else this VM */
    int64_t after, before;
    size_t limit;
    bool newest_first;
    bool latest; /* vb_catalog_restore_point_latest instead of the list */
} s_query_t;

static void s_time_query(vb_catalog_t *cat, const s_opts_t *o, const s_query_t *q)
{
    double *lat = calloc(o->iters, sizeof *lat);
    size_t rows = 0;
    if (!lat)
        s_die("out of memory");
    for (size_t i = 0; i < o->iters; i++) {
        char vm[32];
        if (q->vm)
            snprintf(vm, sizeof vm, "%s", q->vm);
        else
            snprintf(vm, sizeof vm, "vm-%04zu", (i * 7919) % o->vms);
        double start = s_now();
        if (q->latest) {
            vb_restore_point_t rp;
            if (vb_catalog_restore_point_latest(cat, vm, q->before, &rp) != 0)
                s_die(q->name);
            rows = 1;
            vb_restore_point_clear(&rp);
        } else {
            vb_rp_filter_t f = {.vm = vm,
                                .after = q->after,
                                .before = q->before,
                                .limit = q->limit,
                                .newest_first = q->newest_first};
            vb_restore_point_t *list = NULL;
            if (vb_catalog_restore_points_list(cat, &f, &list, &rows) != 0)
                s_die(q->name);
            vb_restore_points_free(&list, rows);
        }
        lat[i] = (s_now() - start) * 1000.0;
    }
    qsort(lat, o->iters, sizeof *lat, s_cmp_double);
    printf("  %-44s rows %6zu  median %8.3f ms  p99 %8.3f ms\n", q->name, rows, lat[o->iters / 2],
           lat[(o->iters * 99) / 100 < o->iters ? (o->iters * 99) / 100 : o->iters - 1]);
    free(lat);
}

static void s_queries(vb_catalog_t *cat, const s_opts_t *o)
{
    const int64_t t0 = 1700000000000LL, hour = 3600000LL, minute = 60000LL;
    size_t per_vm = o->rps / o->vms;
    int64_t mid = t0 + (int64_t)(per_vm / 2) * hour;
    int64_t hot_mid = t0 + (int64_t)(o->hot / 2) * minute;
    const s_query_t queries[] = {
        {"restore-points VM (all)", NULL, 0, 0, 0, false, false},
        {"restore-points VM --after (newer half)", NULL, mid, 0, 0, false, false},
        {"restore-points VM --after --before (10 h)", NULL, mid, mid + 10 * hour, 0, false, false},
        {"latest before a time (with disks)", NULL, 0, mid + hour, 0, false, true},
        {"hot-vm: restore-points (all)", "hot-vm", 0, 0, 0, false, false},
        {"hot-vm: newest 20", "hot-vm", 0, 0, 20, true, false},
        {"hot-vm: --after --before (1 day)", "hot-vm", hot_mid, hot_mid + 24 * hour, 0, false,
         false},
        {"hot-vm: latest before a time (with disks)", "hot-vm", 0, hot_mid, 0, false, true},
    };
    printf("queries (%zu runs each):\n", o->iters);
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        if (queries[i].vm && o->hot == 0)
            continue;
        s_time_query(cat, o, &queries[i]);
    }
}

static void s_tasks(vb_catalog_t *cat, const s_opts_t *o)
{
    vb_job_vm_t jv = {.vm = "big-vm"};
    vb_job_t job = {.kind = VB_JOB_BACKUP, .started = 1, .vms = &jv, .vm_count = 1};
    int64_t job_id = 0;
    if (vb_catalog_job_create(cat, &job, &job_id) != 0)
        s_die("creating a job");
    int64_t *ids = calloc(o->tasks, sizeof *ids);
    vb_task_t *batch = calloc(o->batch, sizeof *batch);
    if (!ids || !batch)
        s_die("out of memory");

    double start = s_now();
    for (size_t i = 0; i < o->tasks; i += o->batch) {
        size_t n = o->tasks - i < o->batch ? o->tasks - i : o->batch;
        for (size_t k = 0; k < n; k++)
            batch[k] = (vb_task_t){.vm = "big-vm",
                                   .disk_key = "2000",
                                   .kind = VB_TASK_BACKUP,
                                   .offset = (uint64_t)(i + k) << 20,
                                   .length = 1 << 20};
        if (vb_catalog_begin(cat) != 0 || vb_catalog_tasks_add(cat, job_id, batch, n, ids + i) ||
            vb_catalog_commit(cat) != 0)
            s_die("adding tasks");
    }
    double add_s = s_now() - start;

    start = s_now();
    for (size_t i = 0; i < o->tasks; i += o->batch) {
        if (vb_catalog_begin(cat) != 0)
            s_die("begin");
        for (size_t k = i; k < o->tasks && k < i + o->batch; k++)
            if (vb_catalog_task_claim(cat, ids[k], k % 2 ? "agent-a" : "agent-b", "nbdssl",
                                      "agent has no SAN path; NBDSSL before NBD", 2) != 0)
                s_die("claiming a task");
        if (vb_catalog_commit(cat) != 0)
            s_die("commit");
    }
    double claim_s = s_now() - start;

    start = s_now();
    for (size_t i = 0; i < o->tasks; i += o->batch) {
        if (vb_catalog_begin(cat) != 0)
            s_die("begin");
        for (size_t k = i; k < o->tasks && k < i + o->batch; k++)
            if (vb_catalog_task_complete(cat, ids[k], 1 << 20, 3) != 0)
                s_die("completing a task");
        if (vb_catalog_commit(cat) != 0)
            s_die("commit");
    }
    double done_s = s_now() - start;

    vb_task_counts_t c;
    if (vb_catalog_job_task_counts(cat, job_id, &c) != 0 || c.done != o->tasks)
        s_die("counting tasks");
    printf("tasks (%zu, transactions of %zu):\n", o->tasks, o->batch);
    printf("  inserts      %9.0f /s  (%.3f s)\n", (double)o->tasks / add_s, add_s);
    printf("  claims       %9.0f /s  (%.3f s)\n", (double)o->tasks / claim_s, claim_s);
    printf("  completions  %9.0f /s  (%.3f s)\n", (double)o->tasks / done_s, done_s);
    free(ids);
    free(batch);
}

int main(int argc, char **argv)
{
    s_opts_t o = {
        .vms = 1000, .rps = 100000, .hot = 100000, .tasks = 50000, .batch = 1000, .iters = 200};
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: vbak-bench-catalog DIR [--vms N] [--rps N] [--hot N|0] "
                        "[--tasks N] [--batch N] [--iters N]\n");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        size_t *slot = !strcmp(argv[i], "--vms")     ? &o.vms
                       : !strcmp(argv[i], "--rps")   ? &o.rps
                       : !strcmp(argv[i], "--hot")   ? &o.hot
                       : !strcmp(argv[i], "--tasks") ? &o.tasks
                       : !strcmp(argv[i], "--batch") ? &o.batch
                       : !strcmp(argv[i], "--iters") ? &o.iters
                                                     : NULL;
        if (!slot || i + 1 >= argc) {
            fprintf(stderr, "vbak-bench-catalog: unknown or incomplete option '%s'\n", argv[i]);
            return 2;
        }
        if (slot == &o.hot && !strcmp(argv[i + 1], "0"))
            o.hot = 0;
        else if (!s_parse_size(argv[i + 1], slot)) {
            fprintf(stderr, "vbak-bench-catalog: %s needs a positive number\n", argv[i]);
            return 2;
        }
        i++;
    }
    if (o.rps < o.vms) {
        fprintf(stderr, "vbak-bench-catalog: --rps must be at least --vms\n");
        return 2;
    }
    char path[4096];
    if (snprintf(path, sizeof path, "%s/catalog.db", argv[1]) >= (int)sizeof path) {
        fprintf(stderr, "vbak-bench-catalog: directory name too long\n");
        return 2;
    }
    vb_catalog_t *cat = vb_catalog_open(path);
    if (!cat)
        s_die("opening the catalog");
    s_populate(cat, &o);
    s_queries(cat, &o);
    s_tasks(cat, &o);
    vb_catalog_destroy(&cat);
    return 0;
}
