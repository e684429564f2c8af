/* phases — the wall time a VM's backup spends in each phase, for `job show`.
 *
 * Phases, in order: snapshot (CreateSnapshot), prepare (PrepareForAccess), map (the changed or
 * allocated areas: QueryChangedDiskAreas, and a full backup's map tasks), read (first read task
 * dispatched to last result in, with the bytes read), index (writing the disks' indexes), commit
 * (the Storage vMotion check and the restore point's commit) and remove (EndAccess and the
 * snapshot's removal). A phase that did not run is left out. Times are Unix ms. */
#ifndef VB_PHASES_H
#define VB_PHASES_H

#include <jansson.h>
#include <stdint.h>

typedef enum {
    VB_PHASE_SNAPSHOT,
    VB_PHASE_PREPARE,
    VB_PHASE_MAP,
    VB_PHASE_READ,
    VB_PHASE_INDEX,
    VB_PHASE_COMMIT,
    VB_PHASE_REMOVE,
    VB_PHASE_COUNT
} vb_phase_t;

typedef struct {
    int64_t start[VB_PHASE_COUNT]; /* 0: the phase has not run */
    int64_t end[VB_PHASE_COUNT];
    int64_t busy[VB_PHASE_COUNT]; /* summed time of its steps (index: one write per disk) */
    uint64_t read_bytes;
} vb_phase_times_t;

/* "snapshot", "prepare", ... */
const char *vb_phase_name(vb_phase_t p);

/* One step of phase p ran from start to end: the phase spans from its first step's start to its
 * last step's end, and its time is the sum of its steps (steps of a phase that overlap, as the
 * read tasks of several agents do, are counted once: see vb_phase_span). */
void vb_phase_add(vb_phase_times_t *t, vb_phase_t p, int64_t start, int64_t end);

/* The phase covers [start, end]: its time is its span, however many steps overlap in it. */
void vb_phase_span(vb_phase_times_t *t, vb_phase_t p, int64_t start, int64_t end);

/* [{"phase", "start_ms", "ms"} ...] in phase order, "bytes" and "gib_per_s" on read. Caller
 * decrefs. */
json_t *vb_phase_times_json(const vb_phase_times_t *t);

#endif
