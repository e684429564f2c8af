/* plan — how a disk's read (or write) set becomes extent tasks.
 *
 * The set of byte ranges to back up (allocated blocks for a full backup, changed areas for an
 * incremental) is cut into tasks of at most `task_bytes` of chunks each (the chunks the ranges
 * touch, however far apart they lie), so that no chunk is split between two tasks, each task is
 * a bounded and full share of work (scattered changes do not make one small task per stretch of
 * disk), and a large disk spreads over several agents. A task's window runs from its first chunk
 * to the end of its last; it keeps its exact ranges, several per chunk if need be: the pipeline
 * backs up every chunk they touch, and for a full backup (ranges = the allocated blocks) reads
 * only the ranges, the rest of a chunk being zeros. */
#ifndef VB_PLAN_H
#define VB_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "inventory/inventory.h"

typedef struct {
    uint64_t offset;       /* window start, chunk aligned */
    uint64_t length;       /* window length (the last window may end at the capacity) */
    vb_extent_t *extents;  /* ranges inside the window, ascending */
    size_t count;
    uint64_t chunks;       /* chunks these ranges touch, each once */
    uint64_t chunk_end;    /* (while splitting: index after the last chunk counted) */
} vb_plan_task_t;

/* Splits `extents` (any order, may overlap, may pass the capacity: clipped) of a disk of
 * `capacity` bytes into tasks, in ascending, non-overlapping windows. Each task touches at most
 * task_bytes / chunk_size chunks (at least one). Caller frees with vb_plan_free. */
int vb_plan_split(const vb_extent_t *extents, size_t n, uint64_t capacity, uint32_t chunk_size,
                  uint64_t task_bytes, vb_plan_task_t **out, size_t *count) VB_WUR;

/* Windows covering the whole disk (restores: every chunk range, holes included). */
int vb_plan_windows(uint64_t capacity, uint32_t chunk_size, uint64_t task_bytes,
                    vb_plan_task_t **out, size_t *count) VB_WUR;

void vb_plan_free(vb_plan_task_t **tasks_p, size_t count);

#endif
