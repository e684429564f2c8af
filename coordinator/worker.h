/* worker — slow work off the coordinator's event loop: one function on a thread of its own,
 * its one result posted back over the actor's pipe, which the loop reads like any socket.
 *
 * The coordinator's loop must answer heartbeats and the control socket on time, so anything that
 * waits for the repository (writes, listings, garbage collection), the inventory provider or a
 * slow catalog query runs here. A work function gets plain data (its request) and never touches
 * the coordinator's catalog connection: what it found is applied by the loop when the result
 * arrives.
 *
 * The caller owns the zactor: it registers it as a reader on its loop, reads the result with
 * vb_worker_receive when it is readable, then ends the reader and destroys the actor (which waits
 * for a thread still running: a coordinator that stops waits for the work in flight). */
#ifndef VB_WORKER_H
#define VB_WORKER_H

#include <czmq.h>

/* Runs on the worker thread: returns the result (may be NULL) that the loop receives. */
typedef void *(*vb_worker_fn)(void *req);
/* Frees a request (after the work ran, on the worker thread); takes a pointer to it. */
typedef void (*vb_worker_free_fn)(void *req_p);
/* Starts work(req) on a thread; takes ownership of req. NULL (message set, req freed) when the
 * thread cannot start. */
zactor_t *vb_worker_start(vb_worker_fn work, void *req, vb_worker_free_fn free_req);
/* The same, but when the thread cannot start req stays the caller's (for work that must run even
 * so: the caller runs it itself). */
zactor_t *vb_worker_try_start(vb_worker_fn work, void *req, vb_worker_free_fn free_req);

/* The result the thread sent (call when the actor is readable); caller owns it. */
void *vb_worker_receive(zactor_t *actor);

#endif
