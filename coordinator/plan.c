#include "plan.h"

#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"

static int s_cmp_extent(const void *a, const void *b)
{
    const vb_extent_t *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Sorted, clipped, merged copy of the ranges. */
static int s_normalise(const vb_extent_t *in, size_t n, uint64_t capacity, vb_extent_t **out,
                       size_t *count)
{
    vb_extent_t *v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return vb_error_set(VB_ENOMEM, "out of memory for %zu extents", n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i].offset >= capacity || in[i].length == 0)
            continue;
        uint64_t end = in[i].offset + in[i].length;
        if (end > capacity || end < in[i].offset)
            end = capacity;
        v[k++] = (vb_extent_t){in[i].offset, end - in[i].offset};
    }
    qsort(v, k, sizeof *v, s_cmp_extent);
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (m && v[i].offset <= v[m - 1].offset + v[m - 1].length) {
            uint64_t end = v[i].offset + v[i].length;
            if (end > v[m - 1].offset + v[m - 1].length)
                v[m - 1].length = end - v[m - 1].offset;
        } else {
            v[m++] = v[i];
        }
    }
    *out = v;
    *count = m;
    return 0;
}

static int s_push(vb_plan_task_t **tasks, size_t *count, size_t *cap, uint64_t offset,
                  uint64_t length)
{
    if (*count == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        vb_plan_task_t *t = realloc(*tasks, c * sizeof *t);
        if (!t)
            return vb_error_set(VB_ENOMEM, "out of memory for %zu tasks", c);
        *tasks = t;
        *cap = c;
    }
    (*tasks)[*count] = (vb_plan_task_t){.offset = offset, .length = length};
    (*count)++;
    return 0;
}

static int s_add_range(vb_plan_task_t *t, uint64_t offset, uint64_t length, uint32_t chunk)
{
    vb_extent_t *e = realloc(t->extents, (t->count + 1) * sizeof *e);
    if (!e)
        return vb_error_set(VB_ENOMEM, "out of memory");
    t->extents = e;
    e[t->count++] = (vb_extent_t){offset, length};
    uint64_t first = offset / chunk, end = (offset + length - 1) / chunk + 1;
    if (first < t->chunk_end) /* a chunk the previous range touched too: counted once */
        first = t->chunk_end;
    if (end > first)
        t->chunks += end - first;
    if (end > t->chunk_end)
        t->chunk_end = end;
    return 0;
}

/* Where the piece of a range starting at `pos` must end for task t to hold at most `budget`
 * chunks: a chunk the task already counts is free, each further one takes one from the budget.
 * Always a chunk boundary past pos (a task with room left takes at least one chunk). */
static uint64_t s_budget_end(const vb_plan_task_t *t, uint64_t pos, uint64_t budget,
                             uint32_t chunk)
{
    uint64_t first = pos / chunk;
    if (first < t->chunk_end) /* shares its first chunk with the task's last one */
        first = t->chunk_end;
    uint64_t room = budget > t->chunks ? budget - t->chunks : 0;
    return (first + room) * chunk;
}

int vb_plan_split(const vb_extent_t *extents, size_t n, uint64_t capacity, uint32_t chunk_size,
                  uint64_t task_bytes, vb_plan_task_t **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    if (!chunk_size)
        return vb_error_set(VB_EINVAL, "plan: chunk size 0");
    uint64_t budget = task_bytes / chunk_size; /* chunks per task */
    if (budget == 0)
        budget = 1;
    vb_extent_t *v = NULL;
    size_t m = 0;
    int rc = s_normalise(extents, n, capacity, &v, &m);
    if (rc)
        return rc;
    /* Ranges stay exact, several in one chunk if need be: a full backup's are the allocated
     * blocks, and the agent reads only those (the rest of the chunk is zeros). Ranges closer
     * than VB_PIPELINE_GAP_READ are merged, as the agent would read through that gap anyway:
     * a disk allocated in 4 KiB pieces costs a few ranges per chunk, not hundreds. The merge
     * adds no chunk: the gap is shorter than the smallest chunk size. */
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        uint64_t prev_end = k ? v[k - 1].offset + v[k - 1].length : 0;
        if (k && v[i].offset - prev_end < VB_PIPELINE_GAP_READ)
            v[k - 1].length = v[i].offset + v[i].length - v[k - 1].offset;
        else
            v[k++] = v[i];
    }
    m = k;
    /* A task is `budget` chunks of work, wherever they lie: scattered changes (an incremental)
     * make a few tasks of task_bytes each, not one small task per window of disk, and every
     * task pays its set-up (disk open, repository, pack) once for a full share of data. A
     * task's window runs from its first chunk to the end of its last; a chunk is never split
     * between two tasks. */
    vb_plan_task_t *tasks = NULL;
    size_t cap = 0, ntasks = 0;
    for (size_t i = 0; i < m && !rc; i++) {
        uint64_t pos = v[i].offset, end = v[i].offset + v[i].length;
        while (pos < end && !rc) {
            vb_plan_task_t *t = ntasks ? &tasks[ntasks - 1] : NULL;
            if (!t || (t->chunks >= budget && pos / chunk_size >= t->chunk_end)) {
                rc = s_push(&tasks, &ntasks, &cap, pos / chunk_size * chunk_size, 0);
                if (rc)
                    break;
                t = &tasks[ntasks - 1];
            }
            uint64_t stop = s_budget_end(t, pos, budget, chunk_size);
            uint64_t piece_end = end < stop ? end : stop;
            rc = s_add_range(t, pos, piece_end - pos, chunk_size);
            uint64_t w1 = t->chunk_end * chunk_size;
            t->length = (w1 < capacity ? w1 : capacity) - t->offset;
            pos = piece_end;
        }
    }
    free(v);
    if (rc) {
        vb_plan_free(&tasks, ntasks);
        return rc;
    }
    *out = tasks;
    *count = ntasks;
    return 0;
}

int vb_plan_windows(uint64_t capacity, uint32_t chunk_size, uint64_t task_bytes,
                    vb_plan_task_t **out, size_t *count)
{
    vb_extent_t all = {0, capacity};
    return vb_plan_split(&all, capacity ? 1 : 0, capacity, chunk_size, task_bytes, out, count);
}

void vb_plan_free(vb_plan_task_t **tasks_p, size_t count)
{
    if (!tasks_p || !*tasks_p)
        return;
    for (size_t i = 0; i < count; i++)
        free((*tasks_p)[i].extents);
    free(*tasks_p);
    *tasks_p = NULL;
}
