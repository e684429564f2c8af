/* wire — the only module that packs and unpacks vbak's protobuf-c Envelope.
 *
 * Every message is one ZeroMQ frame holding one Envelope. Unpacking checks, in order: the frame
 * size against a maximum, that the bytes parse, the protocol version, and that the body is one
 * this build knows. Any failure returns VB_EPROTO with a message naming what was wrong; the
 * caller counts, logs and drops. */
#ifndef VB_WIRE_H
#define VB_WIRE_H

#include <czmq.h>
#include <stddef.h>

#include "error.h"
#include "vbak.pb-c.h"

#define VB_WIRE_VERSION 1u
/* Default largest frame accepted; daemons take theirs from config (max_frame_bytes). */
#define VB_WIRE_MAX_FRAME_DEFAULT (16u * 1024u * 1024u)

typedef Vbak__Envelope vb_envelope_t;

/* Packs `env` (its version is set to VB_WIRE_VERSION) into a new frame; caller owns *out. */
int vb_wire_pack(vb_envelope_t *env, zframe_t **out) VB_WUR;

/* Unpacks `size` bytes into a new Envelope; caller frees it with vb_wire_free. */
int vb_wire_unpack(const void *data, size_t size, size_t max_size, vb_envelope_t **out) VB_WUR;

/* Frees an unpacked Envelope and sets *env_p to NULL; NULL is fine. */
void vb_wire_free(vb_envelope_t **env_p);

/* Sends `env` on `sock`, preceded by a copy of `routing_id` when it is not NULL (ROUTER). */
int vb_wire_send(zsock_t *sock, zframe_t *routing_id, vb_envelope_t *env) VB_WUR;

/* The body's name for logs ("heartbeat", "task_result", ...; "none" when unset). */
const char *vb_wire_body_name(const vb_envelope_t *env);

#endif
