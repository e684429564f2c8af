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

/* A task's smallest share when vb_plan_task_bytes makes tasks smaller: below it, a task's
 * set-up (the disk opened, a result sent and committed) costs more than the parallelism gains. */
#define VB_PLAN_TASK_BYTES_MIN (8u << 20)
/* Tasks per slot vb_plan_task_bytes aims at for one disk: several, so the slots stay busy to the
 * disk's end (tasks read at different speeds; the last wave is what leaves slots idle). */
#define VB_PLAN_TASKS_PER_SLOT 2

/* How much one backup task of a disk reads, for `areas` (its allocated or changed areas) and
 * `slots` task slots on the online agents: task_bytes, or less when that would leave slots idle
 * (100 MiB of changes in 64 MiB tasks is two tasks for four or more slots): then the work over
 * VB_PLAN_TASKS_PER_SLOT tasks per slot, never under VB_PLAN_TASK_BYTES_MIN (nor over
 * task_bytes). */
uint64_t vb_plan_task_bytes(uint64_t task_bytes, const vb_extent_t *areas, size_t n, size_t slots);

/* Windows covering the whole disk (restores: every chunk range, holes included). */
int vb_plan_windows(uint64_t capacity, uint32_t chunk_size, uint64_t task_bytes,
                    vb_plan_task_t **out, size_t *count) VB_WUR;

void vb_plan_free(vb_plan_task_t **tasks_p, size_t count);

#endif
