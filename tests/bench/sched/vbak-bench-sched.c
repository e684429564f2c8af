/* vbak-bench-sched — many agents with a null data path, to measure the coordinator's scheduling.
 *
 *   vbak-bench-sched ENDPOINT SERVER_KEY TOKEN_FILE [--agents N] [--slots N] [--host H]
 *                    [--datastore D] [--luns L1,L2] [--transports T1,T2] [--prefix NAME]
 *
 * Starts N threads (default 200), each one agent with its own CURVE key pair and DEALER socket,
 * enrolled with the site token under the name PREFIX-NNN (default bench-NNN) and the facts given
 * (copy a real proxy's host, datastore and LUNs so the transport policy finds a mode). Every
 * agent heartbeats at the interval the coordinator asks for, and answers each TaskAssign at once
 * with a correct TaskResult without touching a disk:
 *   - map task: the whole disk is allocated;
 *   - backup task: one ChunkRef per chunk its extents touch, in ascending order, digest empty
 *     (an all-zero chunk), so the coordinator builds an index of holes;
 *   - restore task: OK, nothing written.
 * Prints "ready agents=N" once all are enrolled, a progress line per second, and on SIGINT or
 * SIGTERM a last line
 *   SCHED agents=N assigns=A results=R map=M chunks=C dispatch_s=… completion_s=…
 *         dispatch_per_s=… completions_per_s=… peak_completions_1s=…
 * where the dispatch window runs from the first to the last TaskAssign received and the
 * completion window from the first TaskAssign to the last TaskResult sent. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keys.h"
#include "wire.h"

#define S_MAX_LIST 16

typedef struct {
    const char *endpoint, *server_key, *prefix, *host, *datastore;
    char *token;
    char *luns[S_MAX_LIST], *transports[S_MAX_LIST];
    size_t nluns, ntransports;
    unsigned agents, slots;
} s_opts_t;

typedef struct {
    const s_opts_t *o;
    atomic_uint enrolled, refused;
    atomic_ullong assigns, results, maps, chunks;
    atomic_llong first_assign_us, last_assign_us, last_result_us;
    atomic_bool stop;
} s_shared_t;

typedef struct {
    s_shared_t *sh;
    unsigned index;
    pthread_t thread;
} s_agent_t;

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_send(zsock_t *s, vb_envelope_t *env)
{
    if (vb_wire_send(s, NULL, env) != 0)
        fprintf(stderr, "vbak-bench-sched: send failed: %s\n", vb_error_msg());
}

static void s_hello(const s_agent_t *a, zsock_t *s)
{
    const s_opts_t *o = a->sh->o;
    char name[64];
    snprintf(name, sizeof name, "%s-%03u", o->prefix, a->index + 1);
    Vbak__AgentFacts facts = VBAK__AGENT_FACTS__INIT;
    facts.name = name;
    facts.host = (char *)o->host;
    facts.datastore = (char *)o->datastore;
    facts.luns = (char **)o->luns;
    facts.n_luns = o->nluns;
    facts.os = "bench";
    facts.slots = o->slots;
    facts.transports = (char **)o->transports;
    facts.n_transports = o->ntransports;
    facts.version = "bench";
    Vbak__Enroll enroll = VBAK__ENROLL__INIT;
    enroll.token = o->token;
    enroll.facts = &facts;
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_ENROLL;
    env.enroll = &enroll;
    s_send(s, &env);
}

/* The chunks a backup task's extents touch, ascending, each once. Caller frees *out. */
static size_t s_chunks(const Vbak__TaskAssign *t, uint64_t **out)
{
    uint64_t chunk = t->chunk_size ? t->chunk_size : 1;
    size_t n = 0, cap = 0;
    uint64_t *offs = NULL;
    for (size_t i = 0; i < t->n_extents; i++) {
        uint64_t end = t->extents[i]->offset + t->extents[i]->length;
        for (uint64_t c = t->extents[i]->offset / chunk * chunk; c < end; c += chunk) {
            if (n && c <= offs[n - 1])
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                uint64_t *grown = realloc(offs, cap * sizeof *offs);
                if (!grown)
                    abort();
                offs = grown;
            }
            offs[n++] = c;
        }
    }
    *out = offs;
    return n;
}

static void s_answer(s_agent_t *a, zsock_t *s, const Vbak__TaskAssign *t)
{
    s_shared_t *sh = a->sh;
    int64_t now = s_now_us();
    int64_t zero = 0;
    atomic_compare_exchange_strong(&sh->first_assign_us, &zero, now);
    atomic_store(&sh->last_assign_us, now);
    atomic_fetch_add(&sh->assigns, 1);

    Vbak__TaskResult r = VBAK__TASK_RESULT__INIT;
    r.task_id = t->task_id;
    r.attempt = t->attempt;
    r.status = VBAK__TASK_STATUS__TASK_STATUS_OK;
    r.transport = t->transport;
    Vbak__Extent whole = VBAK__EXTENT__INIT;
    Vbak__Extent *allocated[] = {&whole};
    uint64_t *offs = NULL;
    Vbak__ChunkRef *refs = NULL, **ptrs = NULL;
    uint64_t bytes = 0;
    for (size_t i = 0; i < t->n_extents; i++)
        bytes += t->extents[i]->length;
    r.bytes = bytes;
    if (t->kind == VBAK__TASK_KIND__TASK_KIND_MAP) {
        whole.offset = 0;
        whole.length = t->capacity;
        r.allocated = allocated;
        r.n_allocated = 1;
        r.bytes = 0;
        atomic_fetch_add(&sh->maps, 1);
    } else if (t->kind == VBAK__TASK_KIND__TASK_KIND_BACKUP) {
        size_t n = s_chunks(t, &offs);
        refs = calloc(n ? n : 1, sizeof *refs);
        ptrs = calloc(n ? n : 1, sizeof *ptrs);
        if (!refs || !ptrs)
            abort();
        for (size_t i = 0; i < n; i++) {
            vbak__chunk_ref__init(&refs[i]);
            refs[i].offset = offs[i];
            ptrs[i] = &refs[i];
        }
        r.chunks = ptrs;
        r.n_chunks = n;
        atomic_fetch_add(&sh->chunks, n);
    }
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_TASK_RESULT;
    env.task_result = &r;
    s_send(s, &env);
    atomic_store(&sh->last_result_us, s_now_us());
    atomic_fetch_add(&sh->results, 1);
    free(offs);
    free(refs);
    free(ptrs);
}

static void s_heartbeat(zsock_t *s, uint64_t seq, unsigned slots)
{
    Vbak__Heartbeat hb = VBAK__HEARTBEAT__INIT;
    hb.sequence = seq;
    hb.free_slots = slots; /* every answer goes out at once: nothing is ever running */
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    s_send(s, &env);
}

static void *s_agent_run(void *arg)
{
    s_agent_t *a = arg;
    s_shared_t *sh = a->sh;
    zcert_t *cert = zcert_new();
    zsock_t *s = zsock_new(ZMQ_DEALER);
    if (!cert || !s) {
        fprintf(stderr, "vbak-bench-sched: agent %u: no socket\n", a->index + 1);
        atomic_fetch_add(&sh->refused, 1);
        goto out;
    }
    zcert_apply(cert, s);
    zsock_set_curve_serverkey(s, sh->o->server_key);
    zsock_set_linger(s, 0);
    zsock_set_sndhwm(s, 0);
    zsock_set_rcvhwm(s, 0);
    if (zsock_connect(s, "%s", sh->o->endpoint) != 0) {
        fprintf(stderr, "vbak-bench-sched: agent %u: cannot connect\n", a->index + 1);
        atomic_fetch_add(&sh->refused, 1);
        goto out;
    }
    s_hello(a, s);
    int64_t interval_ms = 1000, next_hb = 0;
    uint64_t seq = 0;
    bool accepted = false;
    zmq_pollitem_t item = {zsock_resolve(s), 0, ZMQ_POLLIN, 0};
    while (!atomic_load(&sh->stop)) {
        int64_t now = zclock_mono();
        if (accepted && now >= next_hb) {
            s_heartbeat(s, ++seq, sh->o->slots);
            next_hb = now + interval_ms;
        }
        if (zmq_poll(&item, 1, 100) <= 0)
            continue;
        for (;;) { /* drain what is queued before polling again */
            zframe_t *frame = zframe_recv_nowait(s);
            if (!frame)
                break;
            vb_envelope_t *env = NULL;
            if (vb_wire_unpack(zframe_data(frame), zframe_size(frame), VB_WIRE_MAX_FRAME_DEFAULT,
                               &env) == 0) {
                if (env->body_case == VBAK__ENVELOPE__BODY_REGISTER_ACK) {
                    if (env->register_ack->accepted) {
                        accepted = true;
                        if (env->register_ack->heartbeat_interval_ms)
                            interval_ms = env->register_ack->heartbeat_interval_ms;
                        atomic_fetch_add(&sh->enrolled, 1);
                    } else {
                        fprintf(stderr, "vbak-bench-sched: agent %u refused: %s\n", a->index + 1,
                                env->register_ack->reason);
                        atomic_fetch_add(&sh->refused, 1);
                    }
                } else if (env->body_case == VBAK__ENVELOPE__BODY_TASK_ASSIGN) {
                    s_answer(a, s, env->task_assign);
                }
            }
            vb_wire_free(&env);
            zframe_destroy(&frame);
        }
    }
out:
    zsock_destroy(&s);
    zcert_destroy(&cert);
    return NULL;
}

/* Splits a comma-separated list in place. */
static size_t s_split(char *text, char **out)
{
    size_t n = 0;
    while (*text && n < S_MAX_LIST) {
        out[n++] = text;
        char *comma = strchr(text, ',');
        if (!comma)
            break;
        *comma = '\0';
        text = comma + 1;
    }
    return n;
}

static bool s_uint(const char *text, unsigned max, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || !end || *end || v == 0 || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

static int s_usage(void)
{
    fprintf(stderr, "usage: vbak-bench-sched ENDPOINT SERVER_KEY TOKEN_FILE [--agents N] "
                    "[--slots N] [--host H] [--datastore D] [--luns L,..] [--transports T,..] "
                    "[--prefix NAME]\n");
    return 2;
}

static double s_rate(unsigned long long n, int64_t us)
{
    return us > 0 ? (double)n * 1e6 / (double)us : 0.0;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return s_usage();
    char luns[256] = "", transports[256] = "san,hotadd,nbdssl,nbd";
    s_opts_t o = {.endpoint = argv[1], .server_key = argv[2], .prefix = "bench", .host = "",
                  .datastore = "", .agents = 200, .slots = 4};
    for (int i = 4; i < argc; i += 2) {
        if (i + 1 >= argc)
            return s_usage();
        const char *v = argv[i + 1];
        if (!strcmp(argv[i], "--agents") && s_uint(v, 1000, &o.agents))
            continue;
        if (!strcmp(argv[i], "--slots") && s_uint(v, 1024, &o.slots))
            continue;
        if (!strcmp(argv[i], "--host"))
            o.host = v;
        else if (!strcmp(argv[i], "--datastore"))
            o.datastore = v;
        else if (!strcmp(argv[i], "--prefix"))
            o.prefix = v;
        else if (!strcmp(argv[i], "--luns"))
            snprintf(luns, sizeof luns, "%s", v);
        else if (!strcmp(argv[i], "--transports"))
            snprintf(transports, sizeof transports, "%s", v);
        else
            return s_usage();
    }
    o.nluns = s_split(luns, o.luns);
    o.ntransports = s_split(transports, o.transports);
    if (vb_keys_read_token(argv[3], &o.token) != 0) {
        fprintf(stderr, "vbak-bench-sched: %s\n", vb_error_msg());
        return 1;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* threads inherit the mask; main waits below */
    zsys_handler_set(NULL);
    zsys_set_max_sockets(4 * o.agents + 64);
    zsys_init();

    s_shared_t sh = {.o = &o};
    s_agent_t *agents = calloc(o.agents, sizeof *agents);
    for (unsigned i = 0; i < o.agents; i++) {
        agents[i] = (s_agent_t){.sh = &sh, .index = i};
        if (pthread_create(&agents[i].thread, NULL, s_agent_run, &agents[i]) != 0) {
            fprintf(stderr, "vbak-bench-sched: cannot start thread %u\n", i + 1);
            return 1;
        }
    }
    int64_t start = s_now_us();
    int rc = 0;
    while (atomic_load(&sh.enrolled) + atomic_load(&sh.refused) < o.agents) {
        if (s_now_us() - start > 120 * 1000000LL)
            break;
        zclock_sleep(50);
    }
    if (atomic_load(&sh.enrolled) != o.agents) {
        fprintf(stderr, "vbak-bench-sched: only %u of %u agents enrolled\n",
                atomic_load(&sh.enrolled), o.agents);
        rc = 1;
    } else {
        printf("ready agents=%u enroll_s=%.2f\n", o.agents, (double)(s_now_us() - start) / 1e6);
        fflush(stdout);
    }
    unsigned long long prev = 0, peak = 0;
    struct timespec second = {1, 0};
    for (int64_t t = 1; !rc; t++) {
        int sig = sigtimedwait(&sigs, NULL, &second);
        unsigned long long done = atomic_load(&sh.results);
        if (sig == SIGINT || sig == SIGTERM)
            break;
        if (done - prev > peak)
            peak = done - prev;
        if (done != prev)
            printf("t=%llds assigns=%llu results=%llu (+%llu)\n", (long long)t,
                   (unsigned long long)atomic_load(&sh.assigns), done, done - prev);
        fflush(stdout);
        prev = done;
    }
    atomic_store(&sh.stop, true);
    for (unsigned i = 0; i < o.agents; i++)
        pthread_join(agents[i].thread, NULL);
    int64_t first = atomic_load(&sh.first_assign_us);
    int64_t dispatch_us = atomic_load(&sh.last_assign_us) - first;
    int64_t complete_us = atomic_load(&sh.last_result_us) - first;
    unsigned long long assigns = atomic_load(&sh.assigns), results = atomic_load(&sh.results);
    printf("SCHED agents=%u assigns=%llu results=%llu map=%llu chunks=%llu dispatch_s=%.3f "
           "completion_s=%.3f dispatch_per_s=%.0f completions_per_s=%.0f peak_completions_1s=%llu\n",
           o.agents, assigns, results, (unsigned long long)atomic_load(&sh.maps),
           (unsigned long long)atomic_load(&sh.chunks), (double)dispatch_us / 1e6,
           (double)complete_us / 1e6, s_rate(assigns, dispatch_us), s_rate(results, complete_us),
           peak);
    free(agents);
    zstr_free(&o.token);
    return rc;
}
