#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static zframe_t *pack_heartbeat(uint64_t seq)
{
    Vbak__Heartbeat hb = VBAK__HEARTBEAT__INIT;
    hb.sequence = seq;
    hb.free_slots = 3;
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    zframe_t *f = NULL;
    cr_assert_eq(vb_wire_pack(&env, &f), 0);
    return f;
}

Test(wire, round_trip)
{
    zframe_t *f = pack_heartbeat(42);
    vb_envelope_t *env = NULL;
    cr_assert_eq(vb_wire_unpack(zframe_data(f), zframe_size(f), 1024, &env), 0, "%s",
                 vb_error_msg());
    cr_assert_eq(env->version, VB_WIRE_VERSION);
    cr_assert_eq(env->body_case, VBAK__ENVELOPE__BODY_HEARTBEAT);
    cr_assert_eq(env->heartbeat->sequence, 42);
    cr_assert_eq(env->heartbeat->free_slots, 3);
    cr_assert_str_eq(vb_wire_body_name(env), "heartbeat");
    vb_wire_free(&env);
    cr_assert_null(env);
    vb_wire_free(&env); /* safe twice */
    zframe_destroy(&f);
}

Test(wire, oversized_frame_refused)
{
    zframe_t *f = pack_heartbeat(1);
    vb_envelope_t *env = NULL;
    cr_assert_eq(vb_wire_unpack(zframe_data(f), zframe_size(f), zframe_size(f) - 1, &env),
                 VB_EPROTO);
    cr_assert_null(env);
    cr_assert(strstr(vb_error_msg(), "over the"), "%s", vb_error_msg());
    zframe_destroy(&f);
}

Test(wire, garbage_and_truncated_refused)
{
    unsigned char junk[64];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 37 + 11);
    vb_envelope_t *env = NULL;
    cr_assert_eq(vb_wire_unpack(junk, sizeof junk, 1024, &env), VB_EPROTO);
    cr_assert_null(env);

    /* a task result with a long error string, cut in the middle */
    Vbak__TaskResult tr = VBAK__TASK_RESULT__INIT;
    tr.task_id = 7;
    tr.error = "a long enough error message to be cut in half";
    vb_envelope_t e = VBAK__ENVELOPE__INIT;
    e.body_case = VBAK__ENVELOPE__BODY_TASK_RESULT;
    e.task_result = &tr;
    zframe_t *f = NULL;
    cr_assert_eq(vb_wire_pack(&e, &f), 0);
    cr_assert_eq(vb_wire_unpack(zframe_data(f), zframe_size(f) - 10, 1024, &env), VB_EPROTO);
    cr_assert_null(env);
    zframe_destroy(&f);
}

Test(wire, wrong_version_and_empty_body_refused)
{
    Vbak__Heartbeat hb = VBAK__HEARTBEAT__INIT;
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    env.version = 99;
    unsigned char buf[64];
    size_t n = vbak__envelope__pack(&env, buf);
    vb_envelope_t *out = NULL;
    cr_assert_eq(vb_wire_unpack(buf, n, 1024, &out), VB_EPROTO);
    cr_assert(strstr(vb_error_msg(), "protocol version 99"), "%s", vb_error_msg());

    vb_envelope_t empty = VBAK__ENVELOPE__INIT;
    empty.version = VB_WIRE_VERSION;
    n = vbak__envelope__pack(&empty, buf);
    cr_assert_eq(vb_wire_unpack(buf, n, 1024, &out), VB_EPROTO);
    cr_assert(strstr(vb_error_msg(), "unknown or empty body"), "%s", vb_error_msg());
    cr_assert_null(out);
}

Test(wire, unknown_body_field_refused)
{
    /* field 99, varint 1, next to a valid version: an envelope from a newer peer */
    unsigned char buf[] = {0x08, 0x01, 0x98, 0x06, 0x01};
    vb_envelope_t *out = NULL;
    cr_assert_eq(vb_wire_unpack(buf, sizeof buf, 1024, &out), VB_EPROTO);
    cr_assert_null(out);
}

/* VBAK_WIRE_TRACE_DIR keeps what peers sent (0600, byte for byte) but never an enrollment,
 * which carries the site token. */
Test(wire, trace_keeps_frames_but_not_enrollments)
{
    char dir[] = "/tmp/vbak-wire-trace.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    setenv("VBAK_WIRE_TRACE_DIR", dir, 1);
    zframe_t *f = pack_heartbeat(9);
    vb_envelope_t *env = NULL;
    cr_assert_eq(vb_wire_unpack(zframe_data(f), zframe_size(f), 1024, &env), 0);
    vb_wire_free(&env);

    Vbak__Enroll en = VBAK__ENROLL__INIT;
    en.token = "site-token-secret";
    vb_envelope_t e = VBAK__ENVELOPE__INIT;
    e.body_case = VBAK__ENVELOPE__BODY_ENROLL;
    e.enroll = &en;
    zframe_t *g = NULL;
    cr_assert_eq(vb_wire_pack(&e, &g), 0);
    cr_assert_eq(vb_wire_unpack(zframe_data(g), zframe_size(g), 1024, &env), 0);
    vb_wire_free(&env);
    unsetenv("VBAK_WIRE_TRACE_DIR");

    char cmd[256], line[512] = "";
    snprintf(cmd, sizeof cmd, "cd %s && stat -c '%%a %%s %%n' * && cat *enroll* 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(line, 1, sizeof line - 1, p);
    line[n] = '\0';
    pclose(p);
    char want[64];
    snprintf(want, sizeof want, "600 %zu ", zframe_size(f));
    cr_assert(strncmp(line, want, strlen(want)) == 0, "trace listing: %s", line);
    cr_assert(strstr(line, "-heartbeat.pb\n"), "trace listing: %s", line);
    cr_assert_null(strchr(strchr(line, '\n') + 1, '\n'), "only one file: %s", line);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    zframe_destroy(&f);
    zframe_destroy(&g);
}
