/* metrics: the status document and the Prometheus text come from one table. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static vb_histogram_t s_hist(void)
{
    vb_histogram_t h = {0};
    h.bounds = vb_task_duration_bounds;
    h.nbounds = vb_task_duration_nbounds;
    return h;
}

Test(metrics, status_and_text_carry_the_same_figures)
{
    vb_metric_values_t v = {0};
    v.malformed = 3;
    v.bytes_read = 1048576;
    v.refused_removed_key = 2;
    vb_histogram_t h = s_hist();
    vb_histogram_observe(&h, 0.05);
    vb_histogram_observe(&h, 0.7);
    vb_histogram_observe(&h, 5000);
    json_t *census =
        json_pack("{s:{s:I}, s:{s:{s:I}}, s:I, s:{s:I}}", "tasks", "done", (json_int_t)7, "jobs",
                  "backup", "succeeded", (json_int_t)2, "restore_points", (json_int_t)2,
                  "last_backup", "web-01", (json_int_t)1700000000);
    json_t *st = vb_metrics_status(&v, &h, 4, 1, 1234, census);
    cr_assert_not_null(st);
    json_t *c = json_object_get(st, "counters");
    cr_assert_eq(json_integer_value(json_object_get(c, "malformed")), 3);
    cr_assert_eq(json_integer_value(json_object_get(c, "bytes_read")), 1048576);
    cr_assert_eq(json_integer_value(json_object_get(c, "refused_removed_key")), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "agents"), "lost")), 1);
    char *text = vb_metrics_render(st);
    cr_assert_not_null(text);
    cr_assert(strstr(text, "\nvbak_dropped_malformed_total 3\n"), "%s", text);
    cr_assert(strstr(text, "\nvbak_read_bytes_total 1048576\n"), "%s", text);
    cr_assert(strstr(text, "\nvbak_agents{state=\"online\"} 4\n"), "%s", text);
    cr_assert(strstr(text, "\nvbak_jobs{kind=\"backup\",state=\"succeeded\"} 2\n"), "%s", text);
    cr_assert(strstr(text, "\nvbak_last_backup_success_timestamp_seconds{vm=\"web-01\"} "
                           "1700000000\n"),
              "%s", text);
    cr_assert(strstr(text, "# TYPE vbak_task_duration_seconds histogram\n"), "%s", text);
    /* buckets are cumulative, +Inf holds them all */
    cr_assert(strstr(text, "vbak_task_duration_seconds_bucket{le=\"0.1\"} 1\n"), "%s", text);
    cr_assert(strstr(text, "vbak_task_duration_seconds_bucket{le=\"1\"} 2\n"), "%s", text);
    cr_assert(strstr(text, "vbak_task_duration_seconds_bucket{le=\"1800\"} 2\n"), "%s", text);
    cr_assert(strstr(text, "vbak_task_duration_seconds_bucket{le=\"+Inf\"} 3\n"), "%s", text);
    cr_assert(strstr(text, "vbak_task_duration_seconds_count 3\n"), "%s", text);
    free(text);
    json_decref(st);
}

Test(metrics, label_values_are_escaped)
{
    vb_metric_values_t v = {0};
    vb_histogram_t h = s_hist();
    json_t *census = json_pack("{s:{s:I}}", "last_backup", "odd \"vm\" \\ name\nx", (json_int_t)5);
    json_t *st = vb_metrics_status(&v, &h, 0, 0, 0, census);
    char *text = vb_metrics_render(st);
    cr_assert(strstr(text, "{vm=\"odd \\\"vm\\\" \\\\ name\\nx\"} 5\n"), "%s", text);
    free(text);
    json_decref(st);
}
