/* vbak-fuzzpeer — throws bad input at a coordinator for the robustness tests.
 *
 *   vbak-fuzzpeer raw HOST PORT [ROUNDS]
 *       plain TCP connections that send random bytes, a fake ZMTP greeting with junk, and
 *       nothing at all, then hang up.
 *   vbak-fuzzpeer curve ENDPOINT SERVER_KEY [--key KEYPAIR] [--max-frame N]
 *       a CURVE DEALER (a fresh key, or KEYPAIR) that sends random frames, a truncated envelope,
 *       an oversized frame, a wrong protocol version, an unknown body, an empty frame and a
 *       multi-frame message. Prints how many it sent.
 *   vbak-fuzzpeer results ENDPOINT SERVER_KEY --token FILE --tasks N
 *       enrolls a new identity ("intruder", no transports: it is never given a task) with the
 *       site token, then sends forged successful TaskResults for task ids 1..N, twice (a replay):
 *       garbage chunk digests and allocated extents. The coordinator must drop them all.
 *   vbak-fuzzpeer ack ENDPOINT SERVER_KEY --key KEYPAIR
 *       registers with KEYPAIR's identity and prints the coordinator's verdict as
 *       "accepted" or "refused: REASON" (exit 0 / 1).
 *   vbak-fuzzpeer admin ENDPOINT SERVER_KEY KEYPAIR COMMAND [ARGS_JSON]
 *       sends one control request as it is, however malformed (the args text unchecked), with
 *       KEYPAIR's identity (an admin key) and prints the answer: "CODE MESSAGE" (0 and the
 *       result on success). Exit 0 when an answer came, 2 when none did.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keys.h"
#include "wire.h"

static void s_random(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n > 256 ? 256 : n, 0);
        if (got <= 0)
            exit(3);
        p += got;
        n -= (size_t)got;
    }
}

static int s_raw(const char *host, int port, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, host, &a.sin_addr);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            perror("connect");
            return 1;
        }
        unsigned char buf[4096];
        s_random(buf, sizeof buf);
        if (r % 3 == 1) { /* a ZMTP 3 signature with a bogus mechanism and junk after it */
            unsigned char greet[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0, 'C', 'U', 'R', 'V', 'E'};
            memcpy(buf, greet, sizeof greet);
        }
        if (r % 3 != 2 && write(fd, buf, sizeof buf) < 0)
            perror("write");
        close(fd);
    }
    printf("raw: %d connections\n", rounds);
    return 0;
}

static zsock_t *s_dealer(const char *endpoint, const char *server_key, const char *keypair)
{
    zcert_t *cert = NULL;
    if (keypair) {
        if (vb_keys_load(keypair, &cert) != 0) {
            fprintf(stderr, "%s\n", vb_error_msg());
            exit(2);
        }
    } else {
        cert = zcert_new();
    }
    zsock_t *s = zsock_new(ZMQ_DEALER);
    zcert_apply(cert, s);
    zsock_set_curve_serverkey(s, server_key);
    zsock_set_linger(s, 2000);
    zsock_set_sndtimeo(s, 1000); /* a refused handshake leaves no pipe to queue on */
    zcert_destroy(&cert);
    if (zsock_connect(s, "%s", endpoint) != 0)
        exit(2);
    return s;
}

static void s_send_bytes(zsock_t *s, const void *data, size_t n)
{
    zframe_t *f = zframe_new(data, n);
    if (zframe_send(&f, s, 0) != 0)
        zframe_destroy(&f); /* not sent: refused handshake, send timeout */
}

static int s_curve(const char *endpoint, const char *server_key, const char *keypair,
                   size_t max_frame)
{
    zsock_t *s = s_dealer(endpoint, server_key, keypair);
    int sent = 0;
    unsigned char buf[512];
    for (int i = 0; i < 20; i++, sent++) { /* random frames of random sizes */
        s_random(buf, sizeof buf);
        s_send_bytes(s, buf, 1 + buf[0] % sizeof buf);
    }
    /* a truncated envelope */
    Vbak__TaskResult tr = VBAK__TASK_RESULT__INIT;
    tr.task_id = 99;
    tr.error = "truncated truncated truncated truncated";
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_TASK_RESULT;
    env.task_result = &tr;
    env.version = VB_WIRE_VERSION;
    size_t n = vbak__envelope__pack(&env, buf);
    s_send_bytes(s, buf, n / 2), sent++;
    /* a wrong protocol version */
    env.version = 7;
    n = vbak__envelope__pack(&env, buf);
    s_send_bytes(s, buf, n), sent++;
    /* an unknown body: field 99 */
    unsigned char unknown[] = {0x08, 0x01, 0x9a, 0x06, 0x02, 0x08, 0x01};
    s_send_bytes(s, unknown, sizeof unknown), sent++;
    /* an empty frame and a multi-frame message */
    s_send_bytes(s, "", 0), sent++;
    zstr_sendm(s, "one");
    zstr_send(s, "two"), sent++;
    /* an oversized frame whose first bytes look like a valid envelope */
    unsigned char *big = calloc(1, max_frame + 1);
    memcpy(big, buf, n);
    s_send_bytes(s, big, max_frame + 1), sent++;
    free(big);
    /* a task result nobody asked for, well-formed */
    env.version = VB_WIRE_VERSION;
    zframe_t *f = NULL;
    if (vb_wire_pack(&env, &f) == 0 && zframe_send(&f, s, 0) != 0)
        zframe_destroy(&f);
    sent++;
    zclock_sleep(300);
    zsock_destroy(&s);
    printf("curve: %d bad messages sent\n", sent);
    return 0;
}

static int s_ack(const char *endpoint, const char *server_key, const char *keypair)
{
    zsock_t *s = s_dealer(endpoint, server_key, keypair);
    Vbak__AgentFacts facts = VBAK__AGENT_FACTS__INIT;
    facts.name = "fuzzpeer";
    facts.slots = 1;
    Vbak__Register reg = VBAK__REGISTER__INIT;
    reg.facts = &facts;
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    if (vb_wire_send(s, NULL, &env) != 0)
        return 2;
    zsock_set_rcvtimeo(s, 5000);
    zframe_t *frame = zframe_recv(s);
    vb_envelope_t *in = NULL;
    int rc = 2;
    if (frame && vb_wire_unpack(zframe_data(frame), zframe_size(frame), 1 << 20, &in) == 0 &&
        in->body_case == VBAK__ENVELOPE__BODY_REGISTER_ACK) {
        if (in->register_ack->accepted)
            printf("accepted\n"), rc = 0;
        else
            printf("refused: %s\n", in->register_ack->reason), rc = 1;
    } else {
        printf("no answer\n");
    }
    vb_wire_free(&in);
    zframe_destroy(&frame);
    zsock_destroy(&s);
    return rc;
}

static int s_results(const char *endpoint, const char *server_key, const char *token_file,
                     long tasks)
{
    char *token = NULL;
    if (vb_keys_read_token(token_file, &token) != 0) {
        fprintf(stderr, "%s\n", vb_error_msg());
        return 2;
    }
    zsock_t *s = s_dealer(endpoint, server_key, NULL);
    Vbak__AgentFacts facts = VBAK__AGENT_FACTS__INIT;
    facts.name = "intruder";
    facts.slots = 1;
    Vbak__Enroll enroll = VBAK__ENROLL__INIT;
    enroll.token = token;
    enroll.facts = &facts;
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_ENROLL;
    env.enroll = &enroll;
    if (vb_wire_send(s, NULL, &env) != 0)
        return 2;
    zsock_set_rcvtimeo(s, 5000);
    zframe_t *ack = zframe_recv(s);
    zframe_destroy(&ack);
    uint8_t digest[32];
    Vbak__ChunkRef chunk = VBAK__CHUNK_REF__INIT;
    Vbak__ChunkRef *chunks[] = {&chunk};
    Vbak__Extent ext = VBAK__EXTENT__INIT;
    Vbak__Extent *exts[] = {&ext};
    long sent = 0;
    for (int round = 0; round < 2; round++) {
        for (long id = 1; id <= tasks; id++) {
            s_random(digest, sizeof digest);
            chunk.offset = (uint64_t)id * 4096;
            chunk.digest.data = digest;
            chunk.digest.len = sizeof digest;
            ext.offset = 0;
            ext.length = 4096;
            Vbak__TaskResult r = VBAK__TASK_RESULT__INIT;
            r.task_id = (uint64_t)id;
            r.status = VBAK__TASK_STATUS__TASK_STATUS_OK;
            r.attempt = 1;
            r.transport = "nbd";
            r.chunks = chunks;
            r.n_chunks = 1;
            r.allocated = exts;
            r.n_allocated = 1;
            vb_envelope_t out = VBAK__ENVELOPE__INIT;
            out.body_case = VBAK__ENVELOPE__BODY_TASK_RESULT;
            out.task_result = &r;
            if (vb_wire_send(s, NULL, &out) == 0)
                sent++;
        }
    }
    zclock_sleep(300);
    zsock_destroy(&s);
    zstr_free(&token);
    printf("results: %ld forged results sent\n", sent);
    return 0;
}

static int s_admin(const char *endpoint, const char *server_key, const char *keypair,
                   const char *command, const char *args_json)
{
    zsock_t *s = s_dealer(endpoint, server_key, keypair);
    Vbak__AdminRequest req = VBAK__ADMIN_REQUEST__INIT;
    req.command = (char *)command;
    req.args_json = (char *)args_json;
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_ADMIN_REQUEST;
    env.admin_request = &req;
    int rc = 2;
    zframe_t *frame = NULL;
    vb_envelope_t *in = NULL;
    if (vb_wire_send(s, NULL, &env) != 0)
        goto out;
    zsock_set_rcvtimeo(s, 10000);
    frame = zframe_recv(s);
    if (frame && vb_wire_unpack(zframe_data(frame), zframe_size(frame), 1 << 24, &in) == 0 &&
        in->body_case == VBAK__ENVELOPE__BODY_ADMIN_REPLY) {
        printf("%d %s\n", in->admin_reply->code,
               in->admin_reply->code ? in->admin_reply->message : in->admin_reply->result_json);
        rc = 0;
    } else {
        printf("no answer\n");
    }
out:
    vb_wire_free(&in);
    zframe_destroy(&frame);
    zsock_destroy(&s);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && !strcmp(argv[1], "admin"))
        return s_admin(argv[2], argv[3], argv[4], argv[5], argc > 6 ? argv[6] : "");
    if (argc >= 4 && !strcmp(argv[1], "raw"))
        return s_raw(argv[2], (int)strtol(argv[3], NULL, 10), argc > 4 ? (int)strtol(argv[4], NULL, 10) : 9);
    const char *key = NULL, *token = NULL;
    size_t max_frame = VB_WIRE_MAX_FRAME_DEFAULT;
    long tasks = 100;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--key"))
            key = argv[i + 1];
        else if (!strcmp(argv[i], "--token"))
            token = argv[i + 1];
        else if (!strcmp(argv[i], "--tasks"))
            tasks = strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--max-frame"))
            max_frame = strtoul(argv[i + 1], NULL, 10);
    }
    if (argc >= 4 && !strcmp(argv[1], "results") && token)
        return s_results(argv[2], argv[3], token, tasks);
    if (argc >= 4 && !strcmp(argv[1], "curve"))
        return s_curve(argv[2], argv[3], key, max_frame);
    if (argc >= 4 && !strcmp(argv[1], "ack") && key)
        return s_ack(argv[2], argv[3], key);
    fprintf(stderr, "usage: vbak-fuzzpeer raw HOST PORT [ROUNDS] | curve ENDPOINT SERVER_KEY "
                    "[--key KEYPAIR] [--max-frame N] | ack ENDPOINT SERVER_KEY --key KEYPAIR | admin "
                    "ENDPOINT SERVER_KEY KEYPAIR COMMAND [ARGS_JSON]\n");
    return 2;
}
