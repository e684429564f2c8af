#include "wire.h"

#include <stdio.h>

#include "trace.h"

int vb_wire_pack(vb_envelope_t *env, zframe_t **out)
{
    env->version = VB_WIRE_VERSION;
    size_t size = vbak__envelope__get_packed_size(env);
    zframe_t *frame = zframe_new(NULL, size);
    if (!frame)
        return vb_error_set(VB_ENOMEM, "wire: cannot allocate a %zu byte frame", size);
    vbak__envelope__pack(env, zframe_data(frame));
    *out = frame;
    return 0;
}

static int s_body_known(const vb_envelope_t *env)
{
    switch (env->body_case) {
    case VBAK__ENVELOPE__BODY_ENROLL:
    case VBAK__ENVELOPE__BODY_REGISTER:
    case VBAK__ENVELOPE__BODY_REGISTER_ACK:
    case VBAK__ENVELOPE__BODY_HEARTBEAT:
    case VBAK__ENVELOPE__BODY_TASK_ASSIGN:
    case VBAK__ENVELOPE__BODY_TASK_PROGRESS:
    case VBAK__ENVELOPE__BODY_TASK_RESULT:
    case VBAK__ENVELOPE__BODY_CANCEL:
    case VBAK__ENVELOPE__BODY_ADMIN_REQUEST:
    case VBAK__ENVELOPE__BODY_ADMIN_REPLY:
        return 1;
    default:
        return 0;
    }
}

int vb_wire_unpack(const void *data, size_t size, size_t max_size, vb_envelope_t **out)
{
    *out = NULL;
    if (size > max_size)
        return vb_error_set(VB_EPROTO, "frame of %zu bytes is over the %zu byte limit", size,
                            max_size);
    vb_envelope_t *env = vbak__envelope__unpack(NULL, size, data);
    if (!env)
        return vb_error_set(VB_EPROTO, "frame of %zu bytes is not a valid envelope", size);
    if (env->version != VB_WIRE_VERSION) {
        int rc = vb_error_set(VB_EPROTO, "protocol version %u, expected %u", env->version,
                              VB_WIRE_VERSION);
        vbak__envelope__free_unpacked(env, NULL);
        return rc;
    }
    if (!s_body_known(env)) {
        int rc = vb_error_set(VB_EPROTO, "envelope with unknown or empty body %d",
                              (int)env->body_case);
        vbak__envelope__free_unpacked(env, NULL);
        return rc;
    }
    if (env->body_case != VBAK__ENVELOPE__BODY_ENROLL) { /* enrollment carries the token */
        char what[64];
        snprintf(what, sizeof what, "%s.pb", vb_wire_body_name(env));
        vb_trace_write(VB_TRACE_WIRE_ENV, what, data, size);
    }
    *out = env;
    return 0;
}

void vb_wire_free(vb_envelope_t **env_p)
{
    if (env_p && *env_p) {
        vbak__envelope__free_unpacked(*env_p, NULL);
        *env_p = NULL;
    }
}

int vb_wire_send(zsock_t *sock, zframe_t *routing_id, vb_envelope_t *env)
{
    zframe_t *frame = NULL;
    int rc = vb_wire_pack(env, &frame);
    if (rc)
        return rc;
    zmsg_t *msg = zmsg_new();
    if (routing_id)
        zmsg_append(msg, &(zframe_t *){zframe_dup(routing_id)});
    zmsg_append(msg, &frame);
    if (zmsg_send(&msg, sock) != 0) {
        zmsg_destroy(&msg);
        return vb_error_set(VB_EIO, "wire: send failed: %s", zmq_strerror(zmq_errno()));
    }
    return 0;
}

const char *vb_wire_body_name(const vb_envelope_t *env)
{
    switch (env->body_case) {
    case VBAK__ENVELOPE__BODY_ENROLL: return "enroll";
    case VBAK__ENVELOPE__BODY_REGISTER: return "register";
    case VBAK__ENVELOPE__BODY_REGISTER_ACK: return "register_ack";
    case VBAK__ENVELOPE__BODY_HEARTBEAT: return "heartbeat";
    case VBAK__ENVELOPE__BODY_TASK_ASSIGN: return "task_assign";
    case VBAK__ENVELOPE__BODY_TASK_PROGRESS: return "task_progress";
    case VBAK__ENVELOPE__BODY_TASK_RESULT: return "task_result";
    case VBAK__ENVELOPE__BODY_CANCEL: return "cancel";
    case VBAK__ENVELOPE__BODY_ADMIN_REQUEST: return "admin_request";
    case VBAK__ENVELOPE__BODY_ADMIN_REPLY: return "admin_reply";
    default: return "none";
    }
}
