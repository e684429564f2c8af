/* phases — see phases.h. */
#include "phases.h"

static const char *const s_names[VB_PHASE_COUNT] = {
    "snapshot", "prepare", "map", "read", "index", "commit", "remove",
};

const char *vb_phase_name(vb_phase_t p)
{
    return p < VB_PHASE_COUNT ? s_names[p] : "?";
}

static void s_cover(vb_phase_times_t *t, vb_phase_t p, int64_t start, int64_t end)
{
    if (end < start)
        end = start;
    if (!t->start[p] || start < t->start[p])
        t->start[p] = start;
    if (end > t->end[p])
        t->end[p] = end;
}

void vb_phase_add(vb_phase_times_t *t, vb_phase_t p, int64_t start, int64_t end)
{
    if (p >= VB_PHASE_COUNT || start <= 0)
        return;
    s_cover(t, p, start, end);
    t->busy[p] += end > start ? end - start : 0;
}

void vb_phase_span(vb_phase_times_t *t, vb_phase_t p, int64_t start, int64_t end)
{
    if (p >= VB_PHASE_COUNT || start <= 0)
        return;
    s_cover(t, p, start, end);
    t->busy[p] = t->end[p] - t->start[p];
}

json_t *vb_phase_times_json(const vb_phase_times_t *t)
{
    json_t *arr = json_array();
    for (int p = 0; p < VB_PHASE_COUNT; p++) {
        if (!t->start[p])
            continue;
        json_t *row = json_pack("{s:s, s:I, s:I}", "phase", s_names[p], "start_ms",
                                (json_int_t)t->start[p], "ms", (json_int_t)t->busy[p]);
        if (p == VB_PHASE_READ) {
            double secs = t->busy[p] > 0 ? (double)t->busy[p] / 1000.0 : 0.0;
            json_object_set_new(row, "bytes", json_integer((json_int_t)t->read_bytes));
            json_object_set_new(
                row, "gib_per_s",
                json_real(secs > 0 ? (double)t->read_bytes / secs / 1073741824.0 : 0.0));
        }
        json_array_append_new(arr, row);
    }
    return arr;
}
