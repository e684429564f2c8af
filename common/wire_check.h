/* wire_check — what each received message must satisfy before a handler acts on it.
 *
 * vb_wire_unpack checks the envelope (size, parse, version, known body); these check a body's
 * fields against the rules of its message, as pure functions with no state, so that the
 * coordinator, the agent and the fuzzer all run the same checks. Each returns 0, or VB_EINVAL /
 * VB_EPROTO with a message naming the field that was wrong. */
#ifndef VB_WIRE_CHECK_H
#define VB_WIRE_CHECK_H

#include <stdint.h>

#include "error.h"
#include "vbak.pb-c.h"

/* An agent's facts (Enroll, Register): a name of 1–64 letters, digits, '-', '_', '.'; 1–1024
 * task slots; a VixDiskLib version of at most 31 digits and dots (or none). */
int vb_wire_check_facts(const Vbak__AgentFacts *facts) VB_WUR;

/* The window a backup task covers, as the coordinator planned it. */
typedef struct {
    uint32_t chunk_size;
    uint64_t offset, length;
    uint64_t chunks_expected;
} vb_wire_window_t;

/* A backup TaskResult's chunks against its task: one per chunk the window touches, ascending,
 * chunk-aligned, inside the window, each a full digest or empty (an all-zero chunk). */
int vb_wire_check_result_chunks(const Vbak__TaskResult *r, const vb_wire_window_t *w) VB_WUR;

/* A TaskAssign before the agent opens anything: a known kind, at least one route, and for a
 * restore one chunk-aligned extent inside the capacity with one digest (full or empty) per
 * chunk. */
int vb_wire_check_assign(const Vbak__TaskAssign *a) VB_WUR;

#endif
