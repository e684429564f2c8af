#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double vb_task_duration_bounds[] = {0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800};
const size_t vb_task_duration_nbounds =
    sizeof vb_task_duration_bounds / sizeof vb_task_duration_bounds[0];

void vb_histogram_observe(vb_histogram_t *h, double value)
{
    size_t i = 0;
    while (i < h->nbounds && i < VB_HISTOGRAM_MAX && value > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += value;
}

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } s_type_t;

/* One metric. `path` finds its value in the status document: "counters.KEY" (a number),
 * "agents" (an object {label value: number}), "jobs" (nested once per label). `offset` is the
 * field of vb_metric_values_t of a counters.KEY row (the status document takes it from there). */
typedef struct {
    const char *path;
    const char *name;
    s_type_t type;
    const char *labels; /* comma-separated label names, one per nesting level; NULL: none */
    size_t offset;
    const char *help;
} s_metric_t;

#define S_NO_FIELD SIZE_MAX
#define S_C(key, name, help)                                                                       \
    {                                                                                              \
        "counters." #key, name, S_COUNTER, NULL, offsetof(vb_metric_values_t, key), help           \
    }
#define S_G(key, name, help)                                                                       \
    {                                                                                              \
        "counters." #key, name, S_GAUGE, NULL, offsetof(vb_metric_values_t, key), help             \
    }

static const s_metric_t s_metrics[] = {
    {"agents", "vbak_agents", S_GAUGE, "state", S_NO_FIELD, "Enrolled agents by state."},
    {"tasks", "vbak_tasks", S_GAUGE, "state", S_NO_FIELD,
     "Tasks of running jobs by state (queued, running, retrying after a failure)."},
    {"task_duration", "vbak_task_duration_seconds", S_HISTOGRAM, NULL, S_NO_FIELD,
     "Time from sending a task to an agent to its successful result."},
    S_C(tasks_done, "vbak_tasks_done_total", "Tasks finished successfully since start."),
    S_C(tasks_failed, "vbak_tasks_failed_total", "Task attempts that failed since start."),
    S_C(bytes_read, "vbak_read_bytes_total", "Disk bytes agents read for backups since start."),
    S_C(bytes_stored, "vbak_stored_bytes_total",
        "Raw bytes of chunks new to the repository since start."),
    S_C(bytes_deduped, "vbak_deduplicated_bytes_total",
        "Bytes read whose chunks the repository held already (or zeros) since start."),
    {"jobs", "vbak_jobs", S_GAUGE, "kind,state", S_NO_FIELD,
     "Jobs in the catalog by kind and state (succeeded, failed, cancelled, running)."},
    {"restore_points", "vbak_restore_points", S_GAUGE, NULL, S_NO_FIELD,
     "Complete restore points in the catalog."},
    {"last_backup", "vbak_last_backup_success_timestamp_seconds", S_GAUGE, "vm", S_NO_FIELD,
     "Unix time of the newest complete restore point of each VM or FCD."},
    {"repository.objects", "vbak_repository_objects", S_GAUGE, NULL, S_NO_FIELD,
     "Objects in the repository at its last listing (every repository_census_s)."},
    {"repository.bytes", "vbak_repository_bytes", S_GAUGE, NULL, S_NO_FIELD,
     "Bytes of the objects in the repository at its last listing."},
    S_G(snapshots_pending, "vbak_snapshot_removals_pending",
        "Ended backups whose snapshot removal or EndAccess is being retried."),
    S_C(malformed, "vbak_dropped_malformed_total", "Dropped frames that are no valid envelope."),
    S_C(oversized, "vbak_dropped_oversized_total", "Dropped frames over max_frame_bytes."),
    S_C(unauthenticated, "vbak_dropped_unauthenticated_total",
        "Dropped frames without a CURVE identity."),
    S_C(unexpected, "vbak_dropped_unexpected_total", "Dropped messages of an unexpected kind."),
    S_C(results_dropped, "vbak_dropped_results_total",
        "Task results for no task the sending agent runs."),
    S_C(refused_token, "vbak_refused_token_total", "Enrollments with a wrong token."),
    S_C(refused_unknown_key, "vbak_refused_unknown_key_total",
        "Registrations or traffic from keys never enrolled."),
    S_C(refused_name, "vbak_refused_name_total", "Attempts to take another agent's name."),
    S_C(refused_facts, "vbak_refused_facts_total", "Enrollments with unusable facts."),
    S_C(refused_removed_key, "vbak_refused_removed_key_total",
        "Enrollments with the key of a removed agent."),
    S_C(control_denied, "vbak_control_denied_total",
        "Control-socket handshakes from keys that are not admins."),
    S_C(enrolled, "vbak_enrolled_total", "Agents enrolled since start."),
    S_C(registered, "vbak_registered_total", "Agent registrations since start."),
    S_C(control_requests, "vbak_control_requests_total", "Control commands received."),
};

static json_t *s_histogram_json(const vb_histogram_t *h)
{
    json_t *buckets = json_array();
    uint64_t cumulative = 0;
    for (size_t i = 0; buckets && i < h->nbounds; i++) {
        cumulative += h->counts[i];
        json_array_append_new(
            buckets, json_pack("{s:f, s:I}", "le", h->bounds[i], "count", (json_int_t)cumulative));
    }
    return json_pack("{s:o, s:f, s:I}", "buckets", buckets, "sum_s", h->sum, "count",
                     (json_int_t)h->count);
}

json_t *vb_metrics_status(const vb_metric_values_t *v, const vb_histogram_t *durations,
                          size_t online, size_t lost, int64_t uptime_ms, json_t *census)
{
    json_t *counters = json_object();
    for (size_t i = 0; counters && i < sizeof s_metrics / sizeof *s_metrics; i++) {
        const s_metric_t *m = &s_metrics[i];
        if (m->offset == S_NO_FIELD)
            continue;
        uint64_t n;
        memcpy(&n, (const char *)v + m->offset, sizeof n);
        json_object_set_new(counters, m->path + strlen("counters."), json_integer((json_int_t)n));
    }
    json_t *st = json_pack("{s:s, s:I, s:{s:I, s:I}, s:o, s:o}", "version", VB_VERSION, "uptime_ms",
                           (json_int_t)uptime_ms, "agents", "online", (json_int_t)online, "lost",
                           (json_int_t)lost, "counters", counters, "task_duration",
                           s_histogram_json(durations));
    if (st && census)
        json_object_update(st, census);
    json_decref(census);
    return st;
}

/* ---- Prometheus text ---- */

/* Appends label="value" with the value escaped as the format asks (\\, \", \n). */
static void s_label(FILE *f, const char *name, const char *value)
{
    fprintf(f, "%s=\"", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void s_number(FILE *f, json_t *v)
{
    if (json_is_integer(v))
        fprintf(f, "%lld\n", (long long)json_integer_value(v));
    else
        fprintf(f, "%.17g\n", json_number_value(v));
}

/* Writes one sample per leaf of `obj`, nested once per label; `prefix` holds the labels of the
 * levels above ("" at the top). */
static void s_labeled(FILE *f, const char *name, const char *labels, json_t *obj,
                      const char *prefix)
{
    const char *comma = strchr(labels, ',');
    size_t len = comma ? (size_t)(comma - labels) : strlen(labels);
    char label[32];
    snprintf(label, sizeof label, "%.*s", (int)(len < sizeof label ? len : sizeof label - 1),
             labels);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        char *here = NULL;
        size_t size = 0;
        FILE *m = open_memstream(&here, &size);
        if (!m)
            return;
        fputs(prefix, m);
        if (*prefix)
            fputc(',', m);
        s_label(m, label, key);
        fclose(m);
        if (comma && json_is_object(v)) {
            s_labeled(f, name, comma + 1, v, here);
        } else if (!comma && json_is_number(v)) {
            fprintf(f, "%s{%s} ", name, here);
            s_number(f, v);
        }
        free(here);
    }
}

static void s_histogram(FILE *f, const char *name, json_t *h)
{
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(h, "buckets"), i, b)
    {
        fprintf(f, "%s_bucket{le=\"%g\"} %lld\n", name, json_number_value(json_object_get(b, "le")),
                (long long)json_integer_value(json_object_get(b, "count")));
    }
    long long count = (long long)json_integer_value(json_object_get(h, "count"));
    fprintf(f, "%s_bucket{le=\"+Inf\"} %lld\n", name, count);
    fprintf(f, "%s_sum %.17g\n", name, json_number_value(json_object_get(h, "sum_s")));
    fprintf(f, "%s_count %lld\n", name, count);
}

static json_t *s_find(json_t *status, const char *path)
{
    const char *dot = strchr(path, '.');
    if (!dot)
        return json_object_get(status, path);
    char head[32];
    snprintf(head, sizeof head, "%.*s", (int)(dot - path), path);
    return json_object_get(json_object_get(status, head), dot + 1);
}

char *vb_metrics_render(json_t *status)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return NULL;
    for (size_t i = 0; i < sizeof s_metrics / sizeof *s_metrics; i++) {
        const s_metric_t *m = &s_metrics[i];
        json_t *v = s_find(status, m->path);
        if (!v)
            continue;
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->type]);
        if (m->type == S_HISTOGRAM)
            s_histogram(f, m->name, v);
        else if (m->labels)
            s_labeled(f, m->name, m->labels, v, "");
        else {
            fprintf(f, "%s ", m->name);
            s_number(f, v);
        }
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
