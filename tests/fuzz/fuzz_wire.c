/* fuzz_wire — the envelope every agent and CLI frame is unpacked with (size limit, protobuf
 * parse, protocol version, known body), then the checks its body meets before a handler acts
 * (wire_check.h): an agent's facts, a task assignment and the disk URIs of its routes, a backup
 * result's chunks against a task window, and an admin request against the control command
 * table (admin.h: the command is known, its JSON arguments meet that command's schema; no
 * handler runs). */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "admin.h"
#include "disk/disk_uri.h"
#include "wire.h"
#include "wire_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check_assign(const Vbak__TaskAssign *a)
{
    if (vb_wire_check_assign(a) != 0)
        return;
    for (size_t i = 0; i < a->n_routes; i++) {
        vb_disk_uri_t uri;
        if (vb_disk_uri_parse(a->routes[i]->uri, &uri) == 0)
            vb_disk_uri_free(&uri);
    }
}

/* The window comes from the result itself, so the per-chunk checks are reached: a 1 MiB chunk
 * size as a repository has, the task at task_id chunks, `bytes` long. */
static void s_check_result(const Vbak__TaskResult *r)
{
    vb_wire_window_t w = {.chunk_size = 1u << 20,
                          .offset = (r->task_id & 0xffffffu) << 20,
                          .length = r->bytes,
                          .chunks_expected = r->n_chunks};
    (void)vb_wire_check_result_chunks(r, &w);
}

static void s_check_body(const vb_envelope_t *env)
{
    switch (env->body_case) {
    case VBAK__ENVELOPE__BODY_ENROLL: (void)vb_wire_check_facts(env->enroll->facts); break;
    case VBAK__ENVELOPE__BODY_REGISTER: (void)vb_wire_check_facts(env->register_->facts); break;
    case VBAK__ENVELOPE__BODY_TASK_ASSIGN: s_check_assign(env->task_assign); break;
    case VBAK__ENVELOPE__BODY_TASK_RESULT: s_check_result(env->task_result); break;
    case VBAK__ENVELOPE__BODY_ADMIN_REQUEST: {
        json_t *args = NULL;
        if (vb_admin_request(env->admin_request->command, env->admin_request->args_json,
                             &args) == 0)
            (void)vb_admin_slow(env->admin_request->command);
        json_decref(args);
        break;
    }
    default: break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vb_envelope_t *env = NULL;
    if (vb_wire_unpack(data, size, VB_WIRE_MAX_FRAME_DEFAULT, &env) == 0) {
        (void)vb_wire_body_name(env);
        s_check_body(env);
        vb_wire_free(&env);
    }
    return 0;
}
