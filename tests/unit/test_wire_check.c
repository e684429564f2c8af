#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "wire_check.h"

Test(wire_check, facts_name_and_slots)
{
    Vbak__AgentFacts f = VBAK__AGENT_FACTS__INIT;
    f.name = "agent-1.a_b";
    f.slots = 4;
    cr_assert_eq(vb_wire_check_facts(&f), 0, "%s", vb_error_msg());
    f.name = "agent 1";
    cr_assert_eq(vb_wire_check_facts(&f), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "characters other than"), "%s", vb_error_msg());
    f.name = "";
    cr_assert_eq(vb_wire_check_facts(&f), VB_EINVAL);
    f.name = "a";
    f.slots = 0;
    cr_assert_eq(vb_wire_check_facts(&f), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "0 task slots"), "%s", vb_error_msg());
    cr_assert_eq(vb_wire_check_facts(NULL), VB_EINVAL);
    f.slots = 1;
    f.vddk_version = "7.0.3";
    cr_assert_eq(vb_wire_check_facts(&f), 0, "%s", vb_error_msg());
    f.vddk_version = "7.0.3\x1b[2J"; /* it is logged and shown by vbak agents */
    cr_assert_eq(vb_wire_check_facts(&f), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "VixDiskLib version"), "%s", vb_error_msg());
    f.vddk_version = "11111111111111111111111111111111"; /* 32 */
    cr_assert_eq(vb_wire_check_facts(&f), VB_EINVAL);
    f.vddk_version = "7.0.3";
    f.machine = "0123456789abcdef0123456789abcdef@proxy-01.lab";
    f.cpus = 8;
    cr_assert_eq(vb_wire_check_facts(&f), 0, "%s", vb_error_msg());
    f.machine = "m\x1b[2J"; /* it is logged and shown by vbak agents */
    cr_assert_eq(vb_wire_check_facts(&f), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "machine"), "%s", vb_error_msg());
    char longer[129];
    memset(longer, 'm', 128);
    longer[128] = '\0';
    f.machine = longer;
    cr_assert_eq(vb_wire_check_facts(&f), VB_EINVAL);
}

Test(wire_check, result_chunks_fit_the_window)
{
    uint8_t digest[32] = {1};
    Vbak__ChunkRef c0 = VBAK__CHUNK_REF__INIT, c1 = VBAK__CHUNK_REF__INIT;
    c0.offset = 1 << 20;
    c0.digest = (ProtobufCBinaryData){sizeof digest, digest};
    c1.offset = 2 << 20; /* empty digest: an all-zero chunk */
    Vbak__ChunkRef *chunks[] = {&c0, &c1};
    Vbak__TaskResult r = VBAK__TASK_RESULT__INIT;
    r.n_chunks = 2;
    r.chunks = chunks;
    vb_wire_window_t w = {.chunk_size = 1 << 20, .offset = 1 << 20, .length = 2 << 20,
                          .chunks_expected = 2};
    cr_assert_eq(vb_wire_check_result_chunks(&r, &w), 0, "%s", vb_error_msg());
    c1.offset = 1 << 20; /* not ascending */
    cr_assert_eq(vb_wire_check_result_chunks(&r, &w), VB_EPROTO);
    c1.offset = 3 << 20; /* past the window */
    cr_assert_eq(vb_wire_check_result_chunks(&r, &w), VB_EPROTO);
    cr_assert(strstr(vb_error_msg(), "result chunk 1"), "%s", vb_error_msg());
    c1.offset = 2 << 20;
    c0.digest.len = 31;
    cr_assert_eq(vb_wire_check_result_chunks(&r, &w), VB_EPROTO);
    c0.digest.len = 32;
    w.chunks_expected = 3;
    cr_assert_eq(vb_wire_check_result_chunks(&r, &w), VB_EPROTO);
    cr_assert(strstr(vb_error_msg(), "the task covers 3"), "%s", vb_error_msg());
}

static Vbak__Route s_route = {PROTOBUF_C_MESSAGE_INIT(&vbak__route__descriptor), "nbd",
                              "nbd+unix:///d?socket=/x"};
static Vbak__Route *s_routes[] = {&s_route};

Test(wire_check, assign_needs_a_route_and_a_known_kind)
{
    Vbak__TaskAssign a = VBAK__TASK_ASSIGN__INIT;
    a.kind = VBAK__TASK_KIND__TASK_KIND_BACKUP;
    cr_assert_eq(vb_wire_check_assign(&a), VB_EPROTO);
    cr_assert(strstr(vb_error_msg(), "no way to the disk"), "%s", vb_error_msg());
    a.n_routes = 1;
    a.routes = s_routes;
    cr_assert_eq(vb_wire_check_assign(&a), 0, "%s", vb_error_msg());
    a.kind = (Vbak__TaskKind)77;
    cr_assert_eq(vb_wire_check_assign(&a), VB_EPROTO);
    cr_assert(strstr(vb_error_msg(), "unknown task kind 77"), "%s", vb_error_msg());
}

/* A restore window whose end wraps past 2^64 must be refused, not read as "inside the disk". */
Test(wire_check, restore_extent_inside_the_capacity)
{
    uint8_t digest[32] = {2};
    ProtobufCBinaryData digests[2] = {{32, digest}, {0, NULL}};
    Vbak__Extent e = VBAK__EXTENT__INIT;
    Vbak__Extent *extents[] = {&e};
    Vbak__TaskAssign a = VBAK__TASK_ASSIGN__INIT;
    a.kind = VBAK__TASK_KIND__TASK_KIND_RESTORE;
    a.n_routes = 1;
    a.routes = s_routes;
    a.n_extents = 1;
    a.extents = extents;
    a.n_digests = 2;
    a.digests = digests;
    a.chunk_size = 1 << 20;
    a.capacity = 4 << 20;
    e.offset = 2 << 20;
    e.length = 2 << 20;
    cr_assert_eq(vb_wire_check_assign(&a), 0, "%s", vb_error_msg());
    e.offset = UINT64_MAX - (UINT64_MAX % (1 << 20)); /* aligned, and offset + length wraps */
    cr_assert_eq(vb_wire_check_assign(&a), VB_EPROTO);
    cr_assert(strstr(vb_error_msg(), "extent and digests do not match"), "%s", vb_error_msg());
    e.offset = 0;
    e.length = UINT64_MAX; /* (length + chunk - 1) would wrap to a small chunk count */
    a.capacity = UINT64_MAX;
    a.n_digests = 0;
    cr_assert_eq(vb_wire_check_assign(&a), VB_EPROTO);
    e.length = 2 << 20;
    a.n_digests = 2;
    digests[1].len = 5;
    cr_assert_eq(vb_wire_check_assign(&a), VB_EPROTO);
    cr_assert(strstr(vb_error_msg(), "a digest of 5 bytes"), "%s", vb_error_msg());
}
