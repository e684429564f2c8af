/* The coordinator actor: one zloop with the agent ROUTER, the control ROUTER, the ZAP handler
 * and the heartbeat timer. Everything a peer sends is checked before it is believed: unpack
 * failures, unknown keys and unexpected bodies are counted, logged and dropped. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "admin_args.h"
#include "catalog/catalog.h"
#include "coordinator.h"
#include "jobs.h"
#include "keys.h"
#include "lab/lab.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "registry.h"
#include "repo_census.h"
#include "vsphere/vsphere.h"
#include "wire.h"
#include "worker.h"

const vb_conf_key_t vb_coord_config_table[] = {
    {"agent_endpoint", VB_CONF_STR, offsetof(vb_coord_settings_t, agent_endpoint),
     "tcp://0.0.0.0:7110", 0, 0, false, "where agents connect (ZeroMQ endpoint)"},
    {"control_endpoint", VB_CONF_STR, offsetof(vb_coord_settings_t, control_endpoint),
     "tcp://127.0.0.1:7111", 0, 0, false, "where the vbak CLI connects"},
    {"catalog", VB_CONF_STR, offsetof(vb_coord_settings_t, catalog), NULL, 0, 0, true,
     "SQLite catalog file"},
    {"server_key", VB_CONF_STR, offsetof(vb_coord_settings_t, server_key), NULL, 0, 0, true,
     "coordinator CURVE key pair (public file; <file>_secret beside it)"},
    {"enrollment_token_file", VB_CONF_STR,
     offsetof(vb_coord_settings_t, enrollment_token_file), NULL, 0, 0, true,
     "file with the site's enrollment token (mode 0600)"},
    {"admin_keys", VB_CONF_STR, offsetof(vb_coord_settings_t, admin_keys), NULL, 0, 0, true,
     "comma-separated Z85 public keys allowed on the control socket"},
    {"heartbeat_interval_ms", VB_CONF_INT,
     offsetof(vb_coord_settings_t, heartbeat_interval_ms), "1000", 50, 60000, false,
     "heartbeat interval both ways"},
    {"liveness", VB_CONF_INT, offsetof(vb_coord_settings_t, liveness), "3", 1, 100, false,
     "heartbeats an agent may miss before it is lost"},
    {"max_frame_bytes", VB_CONF_INT, offsetof(vb_coord_settings_t, max_frame_bytes), "16777216",
     1024, 268435456, false, "largest message accepted from a peer"},
    {"log_level", VB_CONF_STR, offsetof(vb_coord_settings_t, log_level), "info", 0, 0, false,
     "error, warn, info or debug"},
    VB_DAEMON_LOG_CONF(vb_coord_settings_t),
    {"pid_file", VB_CONF_STR, offsetof(vb_coord_settings_t, pid_file), NULL, 0, 0, false,
     "write the process id here"},
    {"site", VB_CONF_STR, offsetof(vb_coord_settings_t, site), NULL, 0, 0, false,
     "lab site directory (provider = lab)"},
    {"provider", VB_CONF_STR, offsetof(vb_coord_settings_t, provider), "lab", 0, 0, false,
     "inventory provider: lab or vsphere"},
    {"vsphere_url", VB_CONF_STR, offsetof(vb_coord_settings_t, vsphere_url), NULL, 0, 0, false,
     "vCenter or ESXi to use (provider = vsphere): https://host[:port]"},
    {"vsphere_user", VB_CONF_STR, offsetof(vb_coord_settings_t, vsphere_user), NULL, 0, 0, false,
     "vSphere user name (provider = vsphere)"},
    {"vsphere_password_file", VB_CONF_STR, offsetof(vb_coord_settings_t, vsphere_password_file),
     NULL, 0, 0, false,
     "file whose first line is the vSphere password; agents read the same path (mode 0600)"},
    {"vsphere_ca_file", VB_CONF_STR, offsetof(vb_coord_settings_t, vsphere_ca_file), NULL, 0, 0,
     false, "PEM CA certificates that verify the vSphere server (or vsphere_thumbprint)"},
    {"vsphere_thumbprint", VB_CONF_STR, offsetof(vb_coord_settings_t, vsphere_thumbprint), NULL,
     0, 0, false, "pinned SHA-256 thumbprint of the vSphere server certificate (AB:CD:...)"},
    {"vsphere_datacenter", VB_CONF_STR, offsetof(vb_coord_settings_t, vsphere_datacenter), NULL,
     0, 0, false,
     "datacenter path for the datastore file service (default: the one holding each datastore)"},
    {"repository", VB_CONF_STR, offsetof(vb_coord_settings_t, repository), NULL, 0, 0, false,
     "repository directory (every agent mounts it at the same path)"},
    {"repository_key_file", VB_CONF_STR, offsetof(vb_coord_settings_t, repository_key_file),
     NULL, 0, 0, false, "key file of an encrypted repository"},
    {"repository_credentials_file", VB_CONF_STR,
     offsetof(vb_coord_settings_t, repository_credentials_file), NULL, 0, 0, false,
     "access key file of an s3:// repository (mode 0600)"},
    {"task_bytes", VB_CONF_INT, offsetof(vb_coord_settings_t, task_bytes), "67108864", 65536,
     INT64_C(1) << 40, false, "disk bytes per extent task (a large disk spreads over agents)"},
    {"per_datastore_tasks", VB_CONF_INT, offsetof(vb_coord_settings_t, per_datastore_tasks), "0",
     0, 100000, false, "running tasks per datastore (0: no limit)"},
    {"per_host_tasks", VB_CONF_INT, offsetof(vb_coord_settings_t, per_host_tasks), "0", 0,
     100000, false, "running tasks per ESXi host (0: no limit)"},
    {"max_attempts", VB_CONF_INT, offsetof(vb_coord_settings_t, max_attempts), "4", 1, 100,
     false, "failures after which a task fails its disk and its job"},
    {"verify_lease_s", VB_CONF_INT, offsetof(vb_coord_settings_t, verify_lease_s), "21600", 60,
     INT64_C(2592000), false,
     "seconds a running `vbak verify` protects its restore point from prune (its lease)"},
    {"serve_lease_s", VB_CONF_INT, offsetof(vb_coord_settings_t, serve_lease_s), "60", 2, 86400,
     false, "seconds a `vbak serve` that stops renewing still protects its restore point"},
    {"retry_delay_ms", VB_CONF_INT, offsetof(vb_coord_settings_t, retry_delay_ms), "1000", 0,
     3600000, false, "wait before a failed task runs again; doubles per failure, with jitter"},
    {"retry_max_delay_ms", VB_CONF_INT, offsetof(vb_coord_settings_t, retry_max_delay_ms), "60000",
     0, 86400000, false, "the longest wait before a task or a snapshot removal is retried"},
    {"retry_deadline_ms", VB_CONF_INT, offsetof(vb_coord_settings_t, retry_deadline_ms),
     "3600000", 0, INT64_C(1) << 40, false,
     "no task is retried once its job has run this long (0: no deadline)"},
    {"snapshot_retry_ms", VB_CONF_INT, offsetof(vb_coord_settings_t, snapshot_retry_ms), "5000",
     1, 3600000, false,
     "wait before a failed snapshot removal (or EndAccess) is tried again; doubles, until done"},
    {"metrics_endpoint", VB_CONF_STR, offsetof(vb_coord_settings_t, metrics_endpoint), NULL, 0, 0,
     false, "serve Prometheus metrics at http://ADDRESS:PORT/metrics (e.g. 127.0.0.1:9464)"},
    {"metrics_refresh_ms", VB_CONF_INT, offsetof(vb_coord_settings_t, metrics_refresh_ms),
     "5000", 100, 3600000, false, "how often the figures served at /metrics are renewed"},
    {"catalog_copies", VB_CONF_INT, offsetof(vb_coord_settings_t, catalog_copies), "3", 0, 1000,
     false, "consistent catalog copies kept in the repository (catalog/), renewed after each job "
     "(0: none)"},
    {"repository_census_s", VB_CONF_INT, offsetof(vb_coord_settings_t, repository_census_s), "300",
     1, 86400, false,
     "how often the repository is listed for its object and byte counts (status, /metrics)"},
    VB_CONF_END};

typedef struct {
    const vb_coord_settings_t *settings;
    zsock_t *pipe;
    zsock_t *agents;
    zsock_t *control;
    zsock_t *zap;
    zloop_t *loop;
    zcert_t *cert;
    vb_catalog_t *catalog;
    vb_registry_t *registry;
    vb_provider_t *provider;
    vb_jobs_t *jobs;
    vb_admin_t admin;
    zlistx_t *admin_keys;
    vb_metric_values_t counters; /* ours; the registry's and the engine's are copied in */
    vb_metrics_http_t *metrics;
    int64_t started_ms;
    int64_t last_tick_ms;
    uint64_t heartbeat_seq;
    zactor_t *census;       /* the catalog's census being counted on a worker, if any */
    zlistx_t *census_for;   /* routing ids of `status` requests waiting for it */
    bool census_metrics;    /* the metrics wait for it too */
    json_t *repo_census;    /* the repository's last census (objects, bytes, at); NULL: none yet */
    int64_t repo_census_ms; /* when the last one was started */
    zactor_t *repo_worker;  /* the repository being listed, if it is */
    atomic_bool repo_stop;  /* set as the coordinator stops: the listing gives up */
    zlistx_t *deferred;     /* s_deferred_t: commands waiting for their provider work */
    zlistx_t *job_waiters;  /* s_job_waiter_t: `job.show` requests waiting for their job's end */
    int waiters_timer;      /* checks them while there are any; -1: none runs */
    bool job_ended;         /* a job ended since the last check (the catalog's callback) */
} self_t;

static int64_t s_now_ms(void)
{
    return zclock_time();
}

static void s_self_destroy(self_t **self_p)
{
    self_t *self = *self_p;
    if (!self)
        return;
    if (self->registry && vb_registry_flush(self->registry) != 0)
        VB_LOG_WARN("coordinator", "flush_failed error=\"%s\"", vb_error_msg());
    vb_metrics_http_destroy(&self->metrics);
    zactor_destroy(&self->census);
    zlistx_destroy(&self->census_for);
    atomic_store(&self->repo_stop, true);
    zactor_destroy(&self->repo_worker);
    json_decref(self->repo_census);
    zlistx_destroy(&self->deferred);
    zlistx_destroy(&self->job_waiters);
    vb_admin_shutdown(&self->admin);
    vb_jobs_destroy(&self->jobs);
    vb_registry_destroy(&self->registry);
    vb_provider_destroy(&self->provider);
    vb_catalog_destroy(&self->catalog);
    zloop_destroy(&self->loop);
    zsock_destroy(&self->agents);
    zsock_destroy(&self->control);
    zsock_destroy(&self->zap);
    zcert_destroy(&self->cert);
    zlistx_destroy(&self->admin_keys);
    free(self);
    *self_p = NULL;
}

/* ---- ZAP: every CURVE handshake on either socket comes here first ---- */

static int s_on_zap(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    self_t *self = arg;
    zmsg_t *req = zmsg_recv(reader);
    if (!req)
        return 0;
    char *version = zmsg_popstr(req);
    char *request_id = zmsg_popstr(req);
    char *domain = zmsg_popstr(req);
    char *address = zmsg_popstr(req);
    zframe_t *identity = zmsg_pop(req);
    char *mechanism = zmsg_popstr(req);
    zframe_t *client_key = zmsg_pop(req);
    const char *status = "400", *text = "denied";
    char key_text[VB_KEY_Z85_LEN + 1] = "";
    if (version && streq(version, "1.0") && mechanism && streq(mechanism, "CURVE") &&
        client_key && zframe_size(client_key) == 32) {
        zmq_z85_encode(key_text, zframe_data(client_key), 32);
        if (domain && streq(domain, "agents")) {
            /* any key may attempt enrollment; the registry decides what it may do */
            status = "200";
            text = "OK";
        } else if (domain && streq(domain, "control")) {
            for (const char *k = zlistx_first(self->admin_keys); k;
                 k = zlistx_next(self->admin_keys)) {
                if (streq(k, key_text)) {
                    status = "200";
                    text = "OK";
                }
            }
            if (*status != '2') {
                self->counters.control_denied++;
                VB_LOG_WARN("coordinator", "control_denied address=%s key=%.8s...",
                            address ? address : "?", key_text);
            }
        }
    }
    zmsg_t *reply = zmsg_new();
    zmsg_addstr(reply, "1.0");
    zmsg_addstr(reply, request_id ? request_id : "");
    zmsg_addstr(reply, status);
    zmsg_addstr(reply, text);
    zmsg_addstr(reply, *status == '2' ? key_text : "");
    zmsg_addmem(reply, NULL, 0);
    if (zmsg_send(&reply, reader) != 0)
        zmsg_destroy(&reply);
    zstr_free(&version);
    zstr_free(&request_id);
    zstr_free(&domain);
    zstr_free(&address);
    zstr_free(&mechanism);
    zframe_destroy(&identity);
    zframe_destroy(&client_key);
    zmsg_destroy(&req);
    return 0;
}

/* ---- agents ---- */

static void s_send_ack(self_t *self, zframe_t *rid, bool accepted, const char *reason)
{
    Vbak__RegisterAck ack = VBAK__REGISTER_ACK__INIT;
    ack.accepted = accepted;
    ack.reason = (char *)(reason ? reason : "");
    ack.heartbeat_interval_ms = (uint32_t)self->settings->heartbeat_interval_ms;
    ack.liveness = (uint32_t)self->settings->liveness;
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_REGISTER_ACK;
    env.register_ack = &ack;
    if (vb_wire_send(self->agents, rid, &env) != 0)
        VB_LOG_WARN("coordinator", "send_failed error=\"%s\"", vb_error_msg());
}

/* Receives one message from a ROUTER socket: [routing id][envelope]. Returns the unpacked
 * envelope, or NULL after counting and logging why it was dropped. *key_out is the peer's
 * CURVE public key (Z85) as ZAP authenticated it. */
static vb_envelope_t *s_recv(self_t *self, zsock_t *sock, zframe_t **rid_out,
                             char key_out[VB_KEY_Z85_LEN + 1])
{
    zmsg_t *msg = zmsg_recv(sock);
    if (!msg)
        return NULL;
    vb_envelope_t *env = NULL;
    zframe_t *rid = zmsg_pop(msg);
    zframe_t *body = zmsg_pop(msg);
    const char *user = body ? zframe_meta(body, "User-Id") : NULL;
    if (!rid || !body || zmsg_size(msg) != 0) {
        self->counters.malformed++;
        VB_LOG_WARN("coordinator", "dropped reason=\"wrong frame count\" frames=%zu",
                    zmsg_size(msg) + (rid ? 1 : 0) + (body ? 1 : 0));
        goto out;
    }
    if (!user || strlen(user) != VB_KEY_Z85_LEN) {
        self->counters.unauthenticated++;
        VB_LOG_WARN("coordinator", "dropped reason=\"no CURVE identity\"");
        goto out;
    }
    size_t max = (size_t)self->settings->max_frame_bytes;
    if (vb_wire_unpack(zframe_data(body), zframe_size(body), max, &env) != 0) {
        if (zframe_size(body) > max)
            self->counters.oversized++;
        else
            self->counters.malformed++;
        VB_LOG_WARN("coordinator", "dropped peer=%.8s... reason=\"%s\"", user, vb_error_msg());
        goto out;
    }
    memcpy(key_out, user, VB_KEY_Z85_LEN + 1);
    *rid_out = rid;
    rid = NULL;
out:
    zframe_destroy(&rid);
    zframe_destroy(&body);
    zmsg_destroy(&msg);
    return env;
}

static void s_on_agent_message(self_t *self, zsock_t *reader);

/* Takes what the agents sent, up to a batch, in one catalog transaction: every result and the
 * claims it frees are one commit instead of two each (the catalog's fsync is the bottleneck at
 * thousands of tasks per second). */
static int s_on_agent(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    self_t *self = arg;
    bool txn = !vb_catalog_in_transaction(self->catalog) && vb_catalog_begin(self->catalog) == 0;
    for (int i = 0; i < 256; i++) {
        s_on_agent_message(self, reader);
        if (!(zsock_events(reader) & ZMQ_POLLIN))
            break;
    }
    if (txn && vb_catalog_commit(self->catalog) != 0) {
        VB_LOG_ERROR("coordinator", "commit_failed error=\"%s\"", vb_error_msg());
        vb_catalog_rollback(self->catalog);
    }
    return 0;
}

static void s_on_agent_message(self_t *self, zsock_t *reader)
{
    zframe_t *rid = NULL;
    char key[VB_KEY_Z85_LEN + 1];
    vb_envelope_t *env = s_recv(self, reader, &rid, key);
    if (!env)
        return;
    int64_t now = s_now_ms();
    int rc;
    switch (env->body_case) {
    case VBAK__ENVELOPE__BODY_ENROLL:
        rc = vb_registry_enroll(self->registry, key, rid, env->enroll, now);
        if (rc)
            VB_LOG_WARN("coordinator", "enroll_refused key=%.8s... reason=\"%s\"", key,
                        vb_error_msg());
        s_send_ack(self, rid, rc == 0, rc ? vb_error_msg() : NULL);
        break;
    case VBAK__ENVELOPE__BODY_REGISTER:
        rc = vb_registry_register(self->registry, key, rid, env->register_, now);
        if (rc)
            VB_LOG_WARN("coordinator", "register_refused key=%.8s... reason=\"%s\"", key,
                        vb_error_msg());
        s_send_ack(self, rid, rc == 0, rc ? vb_error_msg() : NULL);
        break;
    case VBAK__ENVELOPE__BODY_HEARTBEAT:
        if (vb_registry_heard(self->registry, key, rid, now) != 0) {
            VB_LOG_DEBUG("coordinator", "dropped key=%.8s... reason=\"%s\"", key, vb_error_msg());
            break;
        }
        vb_registry_set_load(self->registry, key, env->heartbeat->busy_slots);
        vb_jobs_agent_running(self->jobs, vb_registry_name(self->registry, key),
                              env->heartbeat->running_tasks, env->heartbeat->n_running_tasks,
                              env->heartbeat->assigns_received,
                              2 * self->settings->heartbeat_interval_ms);
        break;
    case VBAK__ENVELOPE__BODY_TASK_RESULT:
    case VBAK__ENVELOPE__BODY_TASK_PROGRESS: {
        if (vb_registry_heard(self->registry, key, rid, now) != 0)
            break;
        if (env->body_case == VBAK__ENVELOPE__BODY_TASK_RESULT)
            vb_jobs_on_result(self->jobs, vb_registry_name(self->registry, key),
                              env->task_result);
        break;
    }
    default:
        if (vb_registry_heard(self->registry, key, rid, now) != 0)
            break;
        self->counters.unexpected++;
        VB_LOG_WARN("coordinator", "dropped key=%.8s... reason=\"unexpected %s\"", key,
                    vb_wire_body_name(env));
        break;
    }
    zframe_destroy(&rid);
    vb_wire_free(&env);
}

static void s_send_heartbeat(zframe_t *rid, void *arg)
{
    self_t *self = arg;
    Vbak__Heartbeat hb = VBAK__HEARTBEAT__INIT;
    hb.sequence = self->heartbeat_seq;
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    if (vb_wire_send(self->agents, rid, &env) != 0)
        VB_LOG_DEBUG("coordinator", "heartbeat_send_failed error=\"%s\"", vb_error_msg());
}

static int s_on_heartbeat_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = arg;
    int64_t now = s_now_ms();
    /* A tick that comes late means this thread was busy (a long provider call): the agents'
     * heartbeats are still queued unread, so silence is ours, not theirs. Purge next time. */
    bool late = self->last_tick_ms && now - self->last_tick_ms > self->settings->heartbeat_interval_ms * 3 / 2;
    self->last_tick_ms = now;
    if (!late)
        vb_registry_purge(self->registry, now,
                          self->settings->heartbeat_interval_ms * self->settings->liveness);
    self->heartbeat_seq++;
    vb_registry_foreach_online(self->registry, s_send_heartbeat, self);
    if (vb_registry_flush(self->registry) != 0)
        VB_LOG_ERROR("coordinator", "flush_failed error=\"%s\"", vb_error_msg());
    return 0;
}

/* ---- control socket ---- */

/* The status document: every figure of the metrics table, the catalog's census, and the
 * pending snapshot removals. */
static json_t *s_status_json(self_t *self, json_t *census)
{
    size_t online, lost;
    vb_registry_census(self->registry, &online, &lost);
    vb_metric_values_t *v = &self->counters;
    const vb_registry_counters_t *rc = vb_registry_counters(self->registry);
    v->refused_token = rc->refused_token;
    v->refused_unknown_key = rc->refused_unknown_key;
    v->refused_name = rc->refused_name;
    v->refused_facts = rc->refused_facts;
    v->refused_removed_key = rc->refused_removed_key;
    v->enrolled = rc->enrolled;
    v->registered = rc->registered;
    v->results_dropped = vb_jobs_dropped_results(self->jobs);
    v->snapshots_pending = vb_jobs_pending_releases(self->jobs);
    const vb_jobs_stats_t *js = vb_jobs_stats(self->jobs);
    v->tasks_done = js->tasks_done;
    v->tasks_failed = js->tasks_failed;
    v->bytes_read = js->bytes_read;
    v->bytes_stored = js->bytes_stored;
    v->bytes_deduped = js->bytes_deduped;
    if (census)
        json_object_set_new(census, "tasks", vb_jobs_task_census(self->jobs));
    json_t *st = vb_metrics_status(v, &js->durations, online, lost,
                                   s_now_ms() - self->started_ms, census);
    if (st) {
        json_object_set_new(st, "pending_releases", vb_jobs_pending_releases_json(self->jobs));
        json_object_set_new(st, "background", vb_admin_background_json(&self->admin));
    }
    return st;
}

/* ---- the census: counted over the whole catalog, so on a worker with its own connection ---- */

/* The census of the catalog at `path` (a connection of this thread's own: SQLite in WAL mode
 * lets it read while the loop writes); NULL when it could not be counted. */
static void *s_census_work(void *path)
{
    vb_catalog_t *cat = vb_catalog_open(path);
    json_t *census = NULL;
    if (!cat || vb_catalog_census(cat, &census) != 0)
        VB_LOG_WARN("coordinator", "census_failed error=\"%s\"", vb_error_msg());
    vb_catalog_destroy(&cat);
    return census;
}

static void s_path_free(void *path_p)
{
    zstr_free((char **)path_p);
}

/* ---- the repository's census: one listing of the whole store, on a worker of its own (a
 * status request never waits for it: it shows the last figures); at most every
 * repository_census_s, and given up as the coordinator stops ---- */

typedef struct {
    char *location;
    char *credentials;  /* its access key file, or NULL */
    atomic_bool *stop;  /* the coordinator's: set as it stops */
} s_repo_req_t;

static void s_repo_req_free(void *req_p)
{
    s_repo_req_t **r = req_p;
    if (!*r)
        return;
    free((*r)->location);
    free((*r)->credentials);
    free(*r);
    *r = NULL;
}

static void *s_repo_census_work(void *arg)
{
    s_repo_req_t *req = arg;
    json_t *census = NULL;
    if (vb_repo_census(req->location, req->credentials, req->stop, &census) != 0)
        VB_LOG_WARN("coordinator", "repository_census_failed error=\"%s\"", vb_error_msg());
    return census;
}

static int s_on_repo_census(zloop_t *loop, zsock_t *reader, void *arg)
{
    self_t *self = arg;
    json_t *census = vb_worker_receive(self->repo_worker);
    zloop_reader_end(loop, reader);
    zactor_destroy(&self->repo_worker);
    if (census) {
        json_decref(self->repo_census);
        self->repo_census = census;
    }
    return 0;
}

static void s_repo_census_start(self_t *self)
{
    const vb_coord_settings_t *st = self->settings;
    if (self->repo_worker || !st->repository || !*st->repository ||
        (self->repo_census_ms &&
         s_now_ms() - self->repo_census_ms < st->repository_census_s * 1000))
        return;
    self->repo_census_ms = s_now_ms();
    s_repo_req_t *req = calloc(1, sizeof *req);
    if (req && (req->location = strdup(st->repository)) &&
        (!st->repository_credentials_file ||
         (req->credentials = strdup(st->repository_credentials_file)))) {
        req->stop = &self->repo_stop;
        self->repo_worker = vb_worker_start(s_repo_census_work, req, s_repo_req_free);
    } else {
        s_repo_req_free(&req);
    }
    if (!self->repo_worker ||
        zloop_reader(self->loop, (zsock_t *)self->repo_worker, s_on_repo_census, self)) {
        VB_LOG_WARN("coordinator", "repository_census_failed error=\"cannot start a worker\"");
        zactor_destroy(&self->repo_worker);
    }
}

static void s_reply(self_t *self, zframe_t *rid, int code, const char *message, json_t *result);

/* The status requests waiting for the census (stolen; NULL: none could be counted) are answered,
 * the metrics renewed. */
static void s_census_deliver(self_t *self, json_t *census)
{
    /* the repository is listed now and then: its last figures go with every census */
    if (census && self->repo_census)
        json_object_set(census, "repository", self->repo_census);
    json_t *st = s_status_json(self, census);
    for (zframe_t *rid = zlistx_first(self->census_for); rid; rid = zlistx_next(self->census_for))
        s_reply(self, rid, 0, NULL, json_incref(st));
    zlistx_purge(self->census_for);
    char *text = st && self->census_metrics ? vb_metrics_render(st) : NULL;
    if (text)
        vb_metrics_http_publish(self->metrics, text);
    self->census_metrics = false;
    json_decref(st);
}

static int s_on_census(zloop_t *loop, zsock_t *reader, void *arg)
{
    self_t *self = arg;
    json_t *census = vb_worker_receive(self->census);
    zloop_reader_end(loop, reader);
    zactor_destroy(&self->census);
    s_census_deliver(self, census);
    return 0;
}

/* Starts counting, unless a count runs already (its answer serves every request waiting). */
static void s_census_start(self_t *self)
{
    s_repo_census_start(self);
    if (self->census)
        return;
    char *path = strdup(vb_catalog_path(self->catalog));
    self->census = path ? vb_worker_start(s_census_work, path, s_path_free) : NULL;
    if (!self->census || zloop_reader(self->loop, (zsock_t *)self->census, s_on_census, self)) {
        VB_LOG_WARN("coordinator", "census_failed error=\"cannot start a worker\"");
        zactor_destroy(&self->census);
        s_census_deliver(self, NULL);
    }
}

/* Renders the figures for the metrics thread once the census is counted. */
static int s_on_metrics_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = arg;
    self->census_metrics = true;
    s_census_start(self);
    return 0;
}

static void s_reply(self_t *self, zframe_t *rid, int code, const char *message, json_t *result)
{
    Vbak__AdminReply reply = VBAK__ADMIN_REPLY__INIT;
    reply.code = code;
    reply.message = (char *)(message ? message : "");
    char *text = result ? json_dumps(result, JSON_COMPACT) : NULL;
    reply.result_json = text ? text : "";
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_ADMIN_REPLY;
    env.admin_reply = &reply;
    if (vb_wire_send(self->control, rid, &env) != 0)
        VB_LOG_WARN("coordinator", "control_send_failed error=\"%s\"", vb_error_msg());
    free(text);
    json_decref(result);
}

/* ---- `job.show` with wait_ms: answered when the job ends ---- */

/* How often waiting requests are looked at: the latency of a job's end, and of a wait's end. The
 * catalog is read only after a job ended (s_on_job_end), not for every request at every tick. */
#define S_WAITERS_TICK_MS 20

typedef struct {
    zframe_t *rid;
    json_t *args; /* the request's, wait_ms in it */
    int64_t deadline_ms;
} s_job_waiter_t;

static void s_job_waiter_free(void **item)
{
    s_job_waiter_t *w = *item;
    if (!w)
        return;
    zframe_destroy(&w->rid);
    json_decref(w->args);
    free(w);
    *item = NULL;
}

/* The catalog recorded a job's end (maybe inside a transaction not committed yet): the next tick
 * asks the waiting requests' jobs again. */
static void s_on_job_end(void *arg, int64_t job_id)
{
    (void)job_id;
    ((self_t *)arg)->job_ended = true;
}

/* Answers each waiting request whose wait is over (asked again without wait_ms) or, after a job
 * ended, whose job has ended; the timer stops when none waits. */
static int s_on_waiters_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = arg;
    int64_t now = zclock_mono();
    bool ended = self->job_ended;
    self->job_ended = false;
    s_job_waiter_t *w = zlistx_first(self->job_waiters);
    while (w) {
        void *handle = zlistx_cursor(self->job_waiters);
        s_job_waiter_t *next = zlistx_next(self->job_waiters);
        bool over = now >= w->deadline_ms;
        if (over)
            json_object_del(w->args, "wait_ms");
        json_t *result = NULL;
        int rc = over || ended ? vb_admin_handle(&self->admin, "job.show", w->args, &result)
                               : VB_ADMIN_AFTER_JOB;
        if (rc != VB_ADMIN_AFTER_JOB) {
            s_reply(self, w->rid, rc, rc ? vb_error_msg() : NULL, rc ? NULL : result);
            if (rc)
                json_decref(result);
            zlistx_delete(self->job_waiters, handle);
        }
        w = next;
    }
    if (zlistx_size(self->job_waiters) == 0 && self->waiters_timer >= 0) {
        zloop_timer_end(self->loop, self->waiters_timer);
        self->waiters_timer = -1;
    }
    return 0;
}

/* The coordinator stops: a client waiting for a job hears it now, not at its answer timeout. */
static void s_job_waiters_stop(self_t *self)
{
    for (s_job_waiter_t *w = zlistx_first(self->job_waiters); w;
         w = zlistx_next(self->job_waiters)) {
        int64_t id = vb_args_int(w->args, "id", 0);
        vb_error_set(VB_EBUSY,
                     "the coordinator is stopping; job %lld goes on when it is back "
                     "(vbak job show %lld)",
                     (long long)id, (long long)id);
        s_reply(self, w->rid, VB_EBUSY, vb_error_msg(), NULL);
    }
    zlistx_purge(self->job_waiters);
}

/* Keeps a `job.show` request (args borrowed) until its job ends or its wait_ms pass. */
static void s_job_wait(self_t *self, zframe_t *rid, json_t *args)
{
    s_job_waiter_t *w = calloc(1, sizeof *w);
    if (w) {
        w->rid = zframe_dup(rid);
        w->args = json_deep_copy(args);
        w->deadline_ms = zclock_mono() + vb_args_int(args, "wait_ms", 0);
    }
    if (!w || !w->rid || !w->args || !zlistx_add_end(self->job_waiters, w)) {
        s_job_waiter_free((void **)&w);
        s_reply(self, rid, VB_ENOMEM, "out of memory", NULL);
        return;
    }
    if (self->waiters_timer < 0 &&
        (self->waiters_timer =
             zloop_timer(self->loop, S_WAITERS_TICK_MS, 0, s_on_waiters_timer, self)) < 0) {
        /* no timer: answered now, as without wait_ms */
        w->deadline_ms = 0;
        s_on_waiters_timer(self->loop, -1, self);
    }
}

/* Runs an admin command that passed vb_admin_request and answers it; takes args. `status`
 * is answered once a census counted after the request is in, `job.show` with wait_ms once its
 * job ended or the wait is over. */
static void s_command_run(self_t *self, zframe_t *rid, const char *cmd, json_t *args)
{
    json_t *result = NULL;
    int rc = vb_admin_handle(&self->admin, cmd, args, &result);
    if (rc == VB_ADMIN_AFTER_JOB) {
        s_job_wait(self, rid, args);
    } else if (rc == VB_ADMIN_AFTER_CENSUS) {
        zlistx_add_end(self->census_for, zframe_dup(rid));
        s_census_start(self);
    } else {
        s_reply(self, rid, rc, rc ? vb_error_msg() : NULL, rc ? NULL : result);
        if (rc)
            json_decref(result);
    }
    json_decref(args);
}

/* ---- commands with slow provider calls: on a worker first ----
 *
 * A command that begins with the inventory (backup, restore, explain) has it read on a worker,
 * then runs on the loop with it; a command that needs no catalog (orphans) runs whole on the
 * worker. Either way the worker makes a provider of its own (a session is one thread's). */

typedef struct {
    self_t *self;
    zactor_t *actor;
    zframe_t *rid;
    char *cmd;
    json_t *args;
} s_deferred_t;

typedef struct {
    const vb_coord_settings_t *settings; /* borrowed: they outlive the coordinator */
    vb_admin_worker_fn fn;               /* NULL: read the inventory */
    json_t *args;                        /* a copy of the worker's own */
    vb_jobs_fetch_t *fetch;              /* and what the command reads from the repository */
} s_wreq_t;

typedef struct {
    int rc;
    char *error;
    vb_inventory_t *inv; /* the inventory read */
    json_t *result;      /* or the command's answer */
    vb_jobs_fetch_t *fetch;
} s_wres_t;

static vb_provider_t *s_provider_factory(void *ctx);

static void s_deferred_free(void **item)
{
    s_deferred_t *d = *item;
    if (!d)
        return;
    zactor_destroy(&d->actor);
    zframe_destroy(&d->rid);
    free(d->cmd);
    json_decref(d->args);
    free(d);
    *item = NULL;
}

static void s_wreq_free(void *req_p)
{
    s_wreq_t **r = req_p;
    if (!*r)
        return;
    json_decref((*r)->args);
    vb_jobs_fetch_free(&(*r)->fetch);
    free(*r);
    *r = NULL;
}

/* On the worker: a provider of its own, then the inventory or the command; then what the command
 * reads from the repository. */
static void *s_provider_work(void *arg)
{
    s_wreq_t *req = arg;
    s_wres_t *res = calloc(1, sizeof *res);
    if (!res)
        return NULL;
    vb_provider_t *p = s_provider_factory((void *)req->settings);
    if (!p)
        res->rc = vb_error_code() ? vb_error_code() : VB_EIO;
    else if (req->fn)
        res->rc = req->fn(p, req->args, &res->result);
    else
        res->rc = p->ops->inventory(p, &res->inv);
    if (res->rc) {
        res->error = strdup(vb_error_msg());
        json_decref(res->result);
        res->result = NULL;
    }
    vb_provider_destroy(&p);
    if (req->fetch) {
        vb_jobs_fetch_run(req->fetch);
        res->fetch = req->fetch;
        req->fetch = NULL;
    }
    return res;
}

static int s_on_provider_work(zloop_t *loop, zsock_t *reader, void *arg)
{
    s_deferred_t *d = arg;
    self_t *self = d->self;
    s_wres_t *res = vb_worker_receive(d->actor);
    zloop_reader_end(loop, reader);
    if (vb_admin_on_worker(d->cmd)) {
        s_reply(self, d->rid, res ? res->rc : VB_EIO,
                !res ? "the worker stopped without an answer" : res->rc ? res->error : NULL,
                res ? res->result : NULL);
    } else {
        if (res)
            vb_jobs_lend_inventory(self->jobs, res->inv, res->rc, res->error);
        else
            vb_jobs_lend_inventory(self->jobs, NULL, VB_EIO, "the inventory reader stopped");
        vb_jobs_lend_fetch(self->jobs, res ? res->fetch : NULL);
        if (res)
            res->fetch = NULL;
        s_command_run(self, d->rid, d->cmd, d->args);
        d->args = NULL;
        vb_jobs_lend_inventory(self->jobs, NULL, 0, NULL);
        vb_jobs_lend_fetch(self->jobs, NULL);
    }
    if (res) {
        vb_jobs_fetch_free(&res->fetch);
        free(res->error);
    }
    free(res);
    void *handle = zlistx_find(self->deferred, d);
    if (handle)
        zlistx_delete(self->deferred, handle);
    return 0;
}

/* Starts the command's provider work on a worker; the loop finishes it. Takes args. */
static void s_command_defer(self_t *self, zframe_t *rid, const char *cmd, json_t *args)
{
    s_deferred_t *d = calloc(1, sizeof *d);
    s_wreq_t *req = calloc(1, sizeof *req);
    if (d && req && (d->cmd = strdup(cmd)) != NULL) {
        d->self = self;
        d->rid = zframe_dup(rid);
        d->args = args;
        *req = (s_wreq_t){self->settings, vb_admin_on_worker(cmd), json_deep_copy(args),
                          vb_jobs_fetch_new(self->jobs, cmd, args)};
        d->actor = vb_worker_start(s_provider_work, req, s_wreq_free);
        req = NULL;
    }
    free(req);
    if (!d || !d->actor ||
        zloop_reader(self->loop, (zsock_t *)d->actor, s_on_provider_work, d) != 0) {
        if (d)
            d->args = NULL;
        s_deferred_free((void **)&d);
        s_command_run(self, rid, cmd, args); /* on the loop, as it always could */
        return;
    }
    zlistx_add_end(self->deferred, d);
}

static int s_on_control(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    self_t *self = arg;
    zframe_t *rid = NULL;
    char key[VB_KEY_Z85_LEN + 1];
    vb_envelope_t *env = s_recv(self, reader, &rid, key);
    if (!env)
        return 0;
    if (env->body_case != VBAK__ENVELOPE__BODY_ADMIN_REQUEST) {
        self->counters.unexpected++;
        VB_LOG_WARN("coordinator", "dropped control peer=%.8s... reason=\"unexpected %s\"", key,
                    vb_wire_body_name(env));
        goto out;
    }
    self->counters.control_requests++;
    const char *cmd = env->admin_request->command ? env->admin_request->command : "";
    VB_LOG_DEBUG("coordinator", "control command=%.64s", cmd);
    /* the command table and its argument schemas: nothing runs for a request that fails them */
    json_t *args = NULL;
    if (vb_admin_request(cmd, env->admin_request->args_json, &args) != 0) {
        VB_LOG_WARN("coordinator", "control_refused peer=%.8s... reason=\"%s\"", key,
                    vb_error_msg());
        s_reply(self, rid, vb_error_code(), vb_error_msg(), NULL);
        goto out;
    }
    if (vb_admin_slow(cmd) != VB_ADMIN_FAST && vb_jobs_provider(self->jobs))
        s_command_defer(self, rid, cmd, args);
    else
        s_command_run(self, rid, cmd, args);
out:
    zframe_destroy(&rid);
    vb_wire_free(&env);
    return 0;
}

static int s_on_pipe(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    (void)arg;
    zmsg_t *msg = zmsg_recv(reader);
    if (!msg)
        return -1;
    char *command = zmsg_popstr(msg);
    int rc = command && streq(command, "$TERM") ? -1 : 0;
    zstr_free(&command);
    zmsg_destroy(&msg);
    return rc;
}

/* ---- start-up ---- */

static int s_send_to_agent(void *ctx, const char *agent, vb_envelope_t *env)
{
    self_t *self = ctx;
    zframe_t *rid = vb_registry_route(self->registry, agent);
    if (!rid)
        return vb_error_set(VB_ENOTFOUND, "agent %s has no connection", agent);
    return vb_wire_send(self->agents, rid, env);
}

static bool s_is_vsphere(const vb_coord_settings_t *s)
{
    return s->provider && streq(s->provider, "vsphere");
}

/* A new, logged-in vSphere session from the settings; NULL with the message set. */
static vb_provider_t *s_vsphere_provider(const vb_coord_settings_t *s)
{
    if (!s->vsphere_url || !s->vsphere_user || !s->vsphere_password_file) {
        vb_error_set(VB_EINVAL, "provider = \"vsphere\" needs vsphere_url, vsphere_user and "
                                "vsphere_password_file");
        return NULL;
    }
    vb_vsphere_options_t o = {0};
    o.url = s->vsphere_url;
    o.user = s->vsphere_user;
    o.password_file = s->vsphere_password_file;
    o.ca_file = s->vsphere_ca_file;
    o.thumbprint = s->vsphere_thumbprint;
    o.datacenter = s->vsphere_datacenter;
    return vb_vsphere_provider_new(&o); /* its errors name the URL */
}

/* The prep thread's own provider (a session is used by one thread at a time). */
static vb_provider_t *s_provider_factory(void *ctx)
{
    const vb_coord_settings_t *s = ctx;
    if (s->provider && streq(s->provider, "lab") && s->site)
        return vb_lab_provider_new(s->site);
    if (s_is_vsphere(s))
        return s_vsphere_provider(s);
    vb_error_set(VB_EINVAL, "no inventory provider configured");
    return NULL;
}

static int s_make_jobs(self_t *self)
{
    const vb_coord_settings_t *s = self->settings;
    if (s->provider && streq(s->provider, "lab") && s->site) {
        if (!(self->provider = vb_lab_provider_new(s->site)))
            return vb_error_prefix(vb_error_code() ? vb_error_code() : VB_EIO, "lab site %s",
                                   s->site);
    } else if (s_is_vsphere(s)) {
        /* logs in now: a bad password or thumbprint stops the coordinator at start */
        if (!(self->provider = s_vsphere_provider(s)))
            return vb_error_code() ? vb_error_code() : VB_EIO;
    } else if (s->provider && !streq(s->provider, "lab") && !streq(s->provider, "vsphere")) {
        return vb_error_set(VB_EINVAL, "provider '%s' is not lab or vsphere", s->provider);
    }
    vb_jobs_config_t cfg = {self->catalog,
                            self->provider,
                            s->repository,
                            s->repository_key_file,
                            (uint64_t)s->task_bytes,
                            (uint32_t)s->per_datastore_tasks,
                            (uint32_t)s->per_host_tasks,
                            (uint32_t)s->max_attempts,
                            (uint32_t)s->retry_delay_ms,
                            (uint32_t)s->retry_max_delay_ms,
                            (uint64_t)s->retry_deadline_ms,
                            (uint32_t)s->snapshot_retry_ms,
                            s_send_to_agent,
                            self,
                            self->loop,
                            s_provider_factory,
                            (void *)s,
                            (uint32_t)s->catalog_copies,
                            s->repository_credentials_file};
    if (!(self->jobs = vb_jobs_new(&cfg)))
        return vb_error_code();
    vb_registry_set_listener(self->registry, vb_jobs_agent_event, self->jobs);
    self->admin = (vb_admin_t){self->catalog, self->registry, self->jobs, s->repository,
                               s->repository_key_file, s->verify_lease_s * 1000,
                               s->serve_lease_s * 1000, s->enrollment_token_file,
                               s->repository_credentials_file, self->loop, NULL};
    if (vb_jobs_recover(self->jobs) != 0)
        VB_LOG_ERROR("coordinator", "recovery_incomplete error=\"%s\"", vb_error_msg());
    return 0;
}

static int s_parse_admin_keys(self_t *self)
{
    self->admin_keys = zlistx_new();
    zlistx_set_destructor(self->admin_keys, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator(self->admin_keys, (zlistx_duplicator_fn *)strdup);
    char *copy = strdup(self->settings->admin_keys);
    char *save = NULL;
    int rc = 0;
    for (char *k = strtok_r(copy, ", ", &save); k; k = strtok_r(NULL, ", ", &save)) {
        if (!vb_keys_z85_valid(k)) {
            rc = vb_error_set(VB_EINVAL, "admin_keys: '%s' is not a Z85 CURVE public key", k);
            break;
        }
        zlistx_add_end(self->admin_keys, k);
    }
    free(copy);
    if (!rc && zlistx_size(self->admin_keys) == 0)
        rc = vb_error_set(VB_EINVAL, "admin_keys: no key given");
    return rc;
}

static zsock_t *s_bind_router(self_t *self, const char *endpoint, const char *domain)
{
    zsock_t *sock = zsock_new(ZMQ_ROUTER);
    if (!sock) {
        vb_error_set(VB_EIO, "cannot create a socket");
        return NULL;
    }
    zcert_apply(self->cert, sock);
    zsock_set_curve_server(sock, 1);
    zsock_set_zap_domain(sock, domain);
    /* libzmq drops frames far over the limit before they are read; the wire module counts
     * everything between max_frame_bytes and this */
    zsock_set_maxmsgsize(sock, (int)(self->settings->max_frame_bytes * 4 + 4096));
    zsock_set_router_mandatory(sock, 0);
    zsock_set_sndhwm(sock, 10000);
    zsock_set_rcvhwm(sock, 10000);
    if (zsock_bind(sock, "%s", endpoint) < 0) {
        vb_error_set(VB_EIO, "cannot listen on %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&sock);
    }
    return sock;
}

static self_t *s_self_new(zsock_t *pipe, const vb_coord_settings_t *settings)
{
    self_t *self = calloc(1, sizeof *self);
    self->settings = settings;
    self->pipe = pipe;
    self->started_ms = s_now_ms();
    char *token = NULL;
    if (s_parse_admin_keys(self) != 0)
        goto fail;
    if (vb_keys_load(settings->server_key, &self->cert) != 0)
        goto fail;
    if (vb_keys_read_token(settings->enrollment_token_file, &token) != 0)
        goto fail;
    if (!(self->catalog = vb_catalog_open(settings->catalog)))
        goto fail;
    if (!(self->registry = vb_registry_new(self->catalog, token, s_now_ms())))
        goto fail;
    self->loop = zloop_new();
    self->census_for = zlistx_new();
    zlistx_set_destructor(self->census_for, (zlistx_destructor_fn *)zframe_destroy);
    self->deferred = zlistx_new();
    zlistx_set_destructor(self->deferred, s_deferred_free);
    self->job_waiters = zlistx_new();
    zlistx_set_destructor(self->job_waiters, s_job_waiter_free);
    self->waiters_timer = -1;
    vb_catalog_on_job_end(self->catalog, s_on_job_end, self);
    if (s_make_jobs(self) != 0)
        goto fail;
    /* the ZAP handler must exist before any handshake can start */
    self->zap = zsock_new_rep("inproc://zeromq.zap.01");
    if (!self->zap) {
        vb_error_set(VB_EBUSY, "another ZAP handler runs in this process");
        goto fail;
    }
    if (!(self->agents = s_bind_router(self, settings->agent_endpoint, "agents")))
        goto fail;
    if (!(self->control = s_bind_router(self, settings->control_endpoint, "control")))
        goto fail;
    zloop_reader(self->loop, self->pipe, s_on_pipe, self);
    zloop_reader(self->loop, self->zap, s_on_zap, self);
    zloop_reader(self->loop, self->agents, s_on_agent, self);
    zloop_reader(self->loop, self->control, s_on_control, self);
    zloop_timer(self->loop, (size_t)settings->heartbeat_interval_ms, 0, s_on_heartbeat_timer,
                self);
    if (settings->metrics_endpoint && *settings->metrics_endpoint) {
        if (!(self->metrics = vb_metrics_http_new(settings->metrics_endpoint)))
            goto fail;
        s_on_metrics_timer(self->loop, 0, self);
        zloop_timer(self->loop, (size_t)settings->metrics_refresh_ms, 0, s_on_metrics_timer, self);
    }
    zstr_free(&token);
    return self;
fail:
    zstr_free(&token);
    s_self_destroy(&self);
    return NULL;
}

static void s_actor(zsock_t *pipe, void *args)
{
    const vb_coord_settings_t *settings = args;
    self_t *self = s_self_new(pipe, settings);
    /* zactor_new waits for the signal; the start-up verdict follows it: "" or the reason */
    zsock_signal(pipe, 0);
    zstr_send(pipe, self ? "" : vb_error_msg());
    if (!self)
        return;
    VB_LOG_INFO("coordinator", "started agents=%s control=%s catalog=%s heartbeat_ms=%lld "
                               "liveness=%lld",
                settings->agent_endpoint, settings->control_endpoint, settings->catalog,
                (long long)settings->heartbeat_interval_ms, (long long)settings->liveness);
    zloop_start(self->loop);
    VB_LOG_INFO("coordinator", "stopping");
    s_job_waiters_stop(self);
    s_self_destroy(&self);
}

zactor_t *vb_coordinator_new(const vb_coord_settings_t *settings)
{
    zactor_t *actor = zactor_new(s_actor, (void *)settings);
    if (!actor) {
        vb_error_set(VB_EIO, "cannot start the coordinator thread");
        return NULL;
    }
    char *why = zstr_recv(actor);
    if (!why || *why) {
        vb_error_set(VB_EIO, "%s", why ? why : "the coordinator thread stopped");
        zstr_free(&why);
        zactor_destroy(&actor);
        return NULL;
    }
    zstr_free(&why);
    return actor;
}
