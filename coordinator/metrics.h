/* metrics — the coordinator's figures, described once: one table of metrics feeds both
 * `vbak status --json` (a JSON document) and the Prometheus text format served at /metrics.
 *
 * The coordinator fills a vb_metric_values_t (its counters, the registry's, the job engine's),
 * asks the catalog for its census, and builds the status document with vb_metrics_status();
 * vb_metrics_render() turns that same document into Prometheus text, row by row of the table.
 * Neither touches a socket or the catalog: the HTTP thread (metrics_http.h) only serves the
 * last rendered text. */
#ifndef VB_METRICS_H
#define VB_METRICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* A histogram with fixed upper bounds (seconds); counts[i] counts observations <= bounds[i]
 * and above the bound before (not cumulative: the renderer sums). */
#define VB_HISTOGRAM_MAX 16
typedef struct {
    const double *bounds; /* ascending; +Inf is implied */
    size_t nbounds;
    uint64_t counts[VB_HISTOGRAM_MAX + 1]; /* the last one: above every bound */
    uint64_t count;
    double sum;
} vb_histogram_t;

void vb_histogram_observe(vb_histogram_t *h, double value);

/* The upper bounds of task durations, in seconds. */
extern const double vb_task_duration_bounds[];
extern const size_t vb_task_duration_nbounds;

/* Every scalar the coordinator counts. */
typedef struct {
    uint64_t malformed, oversized, unauthenticated, unexpected; /* dropped messages */
    uint64_t refused_token, refused_unknown_key, refused_name, refused_facts, refused_removed_key;
    uint64_t control_denied, enrolled, registered, control_requests, results_dropped;
    uint64_t snapshots_pending;
    uint64_t tasks_done, tasks_failed;
    uint64_t bytes_read, bytes_stored, bytes_deduped;
} vb_metric_values_t;

/* Builds the status document (caller owns): version, uptime_ms, agents {online, lost},
 * counters {KEY: n} (every scalar of the table), task_duration {buckets [{le, count}], sum_s,
 * count}, and `census` (stolen): tasks, jobs, restore_points, last_backup. */
json_t *vb_metrics_status(const vb_metric_values_t *v, const vb_histogram_t *durations,
                          size_t online, size_t lost, int64_t uptime_ms, json_t *census);

/* Prometheus text exposition (format 0.0.4) of a status document; caller frees. NULL when out
 * of memory. */
char *vb_metrics_render(json_t *status);

#endif
