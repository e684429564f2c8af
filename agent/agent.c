/* The agent actor. One zloop: the pipe, the DEALER socket to the coordinator, a heartbeat timer
 * and a one-shot reconnect timer. zguide Paranoid Pirate: the coordinator silent for
 * liveness × interval means the connection is dead; make a new socket after a backoff that
 * doubles from reconnect_initial_ms up to reconnect_max_ms. */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "keys.h"
#include "daemon.h"
#include "disk/disk.h"
#include "log.h"
#include "path.h"
#include "policy/transport.h"
#include "repo/packup.h"
#include "repo/store.h"
#include "repocache.h"
#include "task.h"
#include "vddk/vddk_config.h"
#include "wire.h"

const vb_conf_key_t vb_agent_config_table[] = {
    {"name", VB_CONF_STR, offsetof(vb_agent_settings_t, name), NULL, 0, 0, true,
     "agent name, unique in the site"},
    {"proxy_vm", VB_CONF_STR, offsetof(vb_agent_settings_t, proxy_vm), "", 0, 0, false,
     "the proxy VM this agent runs in (vSphere: its moref, vm-42; HotAdd needs it)"},
    {"coordinator_endpoint", VB_CONF_STR, offsetof(vb_agent_settings_t, coordinator_endpoint),
     NULL, 0, 0, true, "the coordinator's agent endpoint, e.g. tcp://10.0.0.5:7110"},
    {"coordinator_public_key", VB_CONF_STR,
     offsetof(vb_agent_settings_t, coordinator_public_key), NULL, 0, 0, true,
     "the coordinator's CURVE public key (Z85)"},
    {"state_dir", VB_CONF_STR, offsetof(vb_agent_settings_t, state_dir), NULL, 0, 0, true,
     "directory for the agent's key pair and state (made 0700)"},
    {"enrollment_token_file", VB_CONF_STR,
     offsetof(vb_agent_settings_t, enrollment_token_file), NULL, 0, 0, false,
     "site enrollment token (needed on first start only)"},
    {"host", VB_CONF_STR, offsetof(vb_agent_settings_t, host), "", 0, 0, false,
     "ESXi host the proxy VM runs on"},
    {"datastore", VB_CONF_STR, offsetof(vb_agent_settings_t, datastore), "", 0, 0, false,
     "datastore the proxy VM sits on"},
    {"luns", VB_CONF_STR, offsetof(vb_agent_settings_t, luns), "", 0, 0, false,
     "comma-separated SAN LUN ids the proxy sees"},
    {"os", VB_CONF_STR, offsetof(vb_agent_settings_t, os), NULL, 0, 0, false,
     "operating system description (default: from /etc/os-release)"},
    {"machine", VB_CONF_STR, offsetof(vb_agent_settings_t, machine), "", 0, 0, false,
     "the machine this agent runs on (default: /etc/machine-id@host name); agents on one "
     "machine share its CPUs, so the coordinator runs no more tasks on them together than one "
     "may run there"},
    {"slots", VB_CONF_INT, offsetof(vb_agent_settings_t, slots), "4", 1, 1024, false,
     "task slots this agent offers"},
    {"transports", VB_CONF_STR, offsetof(vb_agent_settings_t, transports), "san,hotadd,nbdssl,nbd",
     0, 0, false, "transports this agent can use, comma-separated"},
    {"heartbeat_interval_ms", VB_CONF_INT, offsetof(vb_agent_settings_t, heartbeat_interval_ms),
     "1000", 50, 60000, false, "heartbeat interval (the coordinator's value wins once registered)"},
    {"liveness", VB_CONF_INT, offsetof(vb_agent_settings_t, liveness), "3", 1, 100, false,
     "heartbeats the coordinator may miss before the agent reconnects"},
    {"hello_timeout_ms", VB_CONF_INT, offsetof(vb_agent_settings_t, hello_timeout_ms), "10000",
     100, 600000, false,
     "how long a registration may go unanswered before the agent reconnects (the liveness "
     "applies once registered)"},
    {"reconnect_initial_ms", VB_CONF_INT, offsetof(vb_agent_settings_t, reconnect_initial_ms),
     "1000", 10, 600000, false, "first reconnect delay"},
    {"reconnect_max_ms", VB_CONF_INT, offsetof(vb_agent_settings_t, reconnect_max_ms), "32000",
     10, 3600000, false, "longest reconnect delay"},
    {"max_frame_bytes", VB_CONF_INT, offsetof(vb_agent_settings_t, max_frame_bytes), "67108864",
     1024, 1073741824, false, "largest message accepted from the coordinator"},
    {"log_level", VB_CONF_STR, offsetof(vb_agent_settings_t, log_level), "info", 0, 0, false,
     "error, warn, info or debug"},
    VB_DAEMON_LOG_CONF(vb_agent_settings_t),
    {"pid_file", VB_CONF_STR, offsetof(vb_agent_settings_t, pid_file), NULL, 0, 0, false,
     "write the process id here"},
    {"vddk_libdir", VB_CONF_STR, offsetof(vb_agent_settings_t, vddk_libdir), "", 0, 0, false,
     "VDDK install directory (lib64/libvixDiskLib.so); empty: vSphere disks over the file "
     "service only"},
    {"vddk_product_name", VB_CONF_STR, offsetof(vb_agent_settings_t, vddk_product_name), "vbak",
     0, 0, false, "VDDK phone-home product name (letters, digits, _ - . space)"},
    {"vddk_product_version", VB_CONF_STR, offsetof(vb_agent_settings_t, vddk_product_version),
     VB_VERSION, 0, 0, false, "VDDK phone-home product version"},
    {"no_nfc_session", VB_CONF_BOOL, offsetof(vb_agent_settings_t, no_nfc_session), "false", 0,
     0, false, "the site forbids NFC sessions (VDDK NoNfcSession = 1)"},
    {"nfc_buf_size_64k", VB_CONF_INT, offsetof(vb_agent_settings_t, nfc_buf_size_64k), "0", 0,
     256, false, "VDDK NFC AIO buffer size in 64 KiB units (0: VDDK default)"},
    {"nfc_buf_count", VB_CONF_INT, offsetof(vb_agent_settings_t, nfc_buf_count), "0", 0, 256,
     false, "VDDK NFC AIO buffer count (0: VDDK default)"},
    {"repository_key_file", VB_CONF_STR, offsetof(vb_agent_settings_t, repository_key_file),
     NULL, 0, 0, false, "key file of an encrypted repository"},
    {"repository_credentials_file", VB_CONF_STR,
     offsetof(vb_agent_settings_t, repository_credentials_file), NULL, 0, 0, false,
     "access key file of an s3:// repository (mode 0600)"},
    {"workers", VB_CONF_INT, offsetof(vb_agent_settings_t, workers), "2", 1, 64, false,
     "pipeline worker threads per task (read, hash, compress, store)"},
    {"s3_uploads_in_flight", VB_CONF_INT, offsetof(vb_agent_settings_t, s3_uploads_in_flight),
     "4", 1, VB_STORE_PUTS_IN_FLIGHT_MAX, false,
     "pack uploads to an s3:// repository in flight per task while its workers fill the next "
     "pack (memory: this + 1 packs per task)"},
    VB_CONF_END};

typedef struct {
    const vb_agent_settings_t *settings;
    zsock_t *pipe;
    zsock_t *dealer;
    zloop_t *loop;
    zcert_t *cert;
    char *token;          /* NULL once enrolled and no token file is configured */
    char *os;
    char **luns;
    size_t lun_count;
    char **transports;
    size_t transport_count;
    char vddk_config[PATH_MAX]; /* the vddk.conf this agent wrote for VixDiskLib_InitEx */
    char vddk_version[32];      /* the version its VixDiskLib says it is; "" unknown or none */
    char machine[128];          /* the machine it runs on; "" unknown */
    uint32_t cpus;              /* that machine's online CPUs */
    bool enrolled;        /* the coordinator has our key */
    bool registered;      /* the current connection was accepted */
    bool hello_is_enroll; /* what the current connection said first */
    int64_t last_heard_ms;
    int64_t interval_ms;
    int64_t liveness;
    int64_t backoff_ms;
    int reconnect_timer;
    uint64_t heartbeat_seq;
    uint64_t dropped;
    zlistx_t *tasks;    /* s_running_t * of running tasks */
    zlistx_t *unsent;   /* zframe_t * results waiting for a connection */
    uint64_t assigns_received; /* highest TaskAssign.assign_seq seen */
    vb_repocache_t *repos;     /* repositories the tasks of a job share */
} self_t;

static int s_connect(self_t *self);

static void s_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int s_split(const char *text, char ***out, size_t *count)
{
    *out = NULL;
    *count = 0;
    char *copy = strdup(text ? text : "");
    size_t cap = 4;
    char **v = calloc(cap, sizeof *v);
    char *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (*count == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
        }
        v[(*count)++] = strdup(t);
    }
    free(copy);
    *out = v;
    return 0;
}

static char *s_detect_os(void)
{
    FILE *f = fopen("/etc/os-release", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "PRETTY_NAME=", 12) == 0) {
            char *v = line + 12;
            v[strcspn(v, "\n")] = '\0';
            if (*v == '"') {
                v++;
                v[strcspn(v, "\"")] = '\0';
            }
            fclose(f);
            return strdup(v);
        }
    }
    if (f)
        fclose(f);
    struct utsname u;
    if (uname(&u) == 0) {
        char buf[200];
        snprintf(buf, sizeof buf, "%s %s", u.sysname, u.release);
        return strdup(buf);
    }
    return strdup("unknown");
}

static void s_self_destroy(self_t **self_p)
{
    self_t *self = *self_p;
    if (!self)
        return;
    zloop_destroy(&self->loop);
    zlistx_destroy(&self->tasks); /* waits for running tasks: none holds a repository after */
    vb_repocache_destroy(&self->repos);
    zlistx_destroy(&self->unsent);
    zsock_destroy(&self->dealer);
    zcert_destroy(&self->cert);
    zstr_free(&self->token);
    free(self->os);
    s_strv_free(self->luns, self->lun_count);
    s_strv_free(self->transports, self->transport_count);
    free(self);
    *self_p = NULL;
}

static void s_marker_path(self_t *self, char *buf, size_t size)
{
    snprintf(buf, size, "%s/enrolled", self->settings->state_dir);
}

static int s_prepare_state(self_t *self)
{
    const char *dir = self->settings->state_dir;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return vb_error_set(VB_EIO, "state_dir %s: %s", dir, strerror(errno));
    chmod(dir, 0700);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/agent.key", dir);
    bool created = false;
    int rc = vb_keys_load_or_create(path, &self->cert, &created);
    if (rc)
        return rc;
    if (created)
        VB_LOG_INFO("agent", "made_key_pair path=%s public=%.8s...", path,
                    zcert_public_txt(self->cert));
    s_marker_path(self, path, sizeof path);
    self->enrolled = access(path, F_OK) == 0;
    if (self->settings->enrollment_token_file && *self->settings->enrollment_token_file) {
        rc = vb_keys_read_token(self->settings->enrollment_token_file, &self->token);
        if (rc && !self->enrolled)
            return rc;
        if (rc) /* enrolled already: the token is not needed */
            VB_LOG_WARN("agent", "token_unreadable error=\"%s\"", vb_error_msg());
    }
    if (!self->enrolled && !self->token)
        return vb_error_set(VB_EAUTH, "agent '%s' is not enrolled yet and has no "
                                      "enrollment_token_file",
                            self->settings->name);
    return 0;
}

/* Removes what an earlier run left in the agent's fixed tmpDirectory (VixDiskLib_Cleanup's job:
 * nothing of this agent runs yet, so everything there is a leftover). Returns the count. */
static int s_cleanup_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0 ||
            unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) == 0)
            removed++;
        else
            VB_LOG_WARN("agent", "cleanup_failed path=%s/%s error=\"%s\"", dir, e->d_name,
                        strerror(errno));
    }
    closedir(d);
    return removed;
}

/* The VDDK config this agent hands to VixDiskLib: a fixed tmpDirectory, phone-home vendor
 * details checked against VDDK's legal characters, NoNfcSession, NFC buffers. */
static int s_write_vddk_config(self_t *self)
{
    const vb_agent_settings_t *s = self->settings;
    char tmp_dir[PATH_MAX], path[PATH_MAX];
    int rc = vb_vddk_tmp_directory(s->state_dir, s->name, tmp_dir, sizeof tmp_dir);
    if (!rc)
        rc = vb_mkdir_p(tmp_dir, 0700);
    if (!rc)
        rc = vb_pathf(path, sizeof path, "%s/vddk.conf", s->state_dir);
    vb_vddk_config_t cfg;
    vb_vddk_config_init(&cfg, tmp_dir);
    cfg.product_name = s->vddk_product_name;
    cfg.product_version = s->vddk_product_version;
    cfg.no_nfc_session = s->no_nfc_session;
    cfg.nfc_buf_size_64k = s->nfc_buf_size_64k;
    cfg.nfc_buf_count = s->nfc_buf_count;
    if (!rc)
        rc = vb_vddk_config_write(&cfg, path);
    if (!rc)
        snprintf(self->vddk_config, sizeof self->vddk_config, "%s", path);
    if (rc)
        return vb_error_prefix(rc, "VDDK configuration");
    int removed = s_cleanup_tmp(tmp_dir);
    VB_LOG_INFO("agent", "vddk_config path=%s tmp_directory=%s cleaned_up=%d", path, tmp_dir,
                removed);
    return 0;
}

static void s_fill_facts(self_t *self, Vbak__AgentFacts *facts)
{
    const vb_agent_settings_t *s = self->settings;
    facts->name = s->name;
    facts->host = s->host ? s->host : "";
    facts->datastore = s->datastore ? s->datastore : "";
    facts->luns = self->luns;
    facts->n_luns = self->lun_count;
    facts->os = self->os;
    facts->slots = (uint32_t)s->slots;
    facts->transports = self->transports;
    facts->n_transports = self->transport_count;
    facts->version = VB_VERSION;
    facts->vddk = s->vddk_libdir && *s->vddk_libdir;
    facts->proxy_vm = s->proxy_vm ? s->proxy_vm : "";
    facts->vddk_version = self->vddk_version;
    facts->machine = self->machine;
    facts->cpus = self->cpus;
}

/* The machine this agent runs on: agent.conf's `machine`, else the systemd machine id with the
 * host name (`ID@NAME`: proxies cloned from one template without clearing the id still differ
 * by name; agents started on one system find the same), else nothing. */
static int s_detect_machine(self_t *self)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@";
    const char *conf = self->settings->machine;
    self->cpus = (uint32_t)(sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 0);
    self->machine[0] = '\0';
    if (conf && *conf) {
        if (strlen(conf) > 127 || strspn(conf, ok) != strlen(conf))
            return vb_error_set(VB_EINVAL, "machine '%s': up to 127 letters, digits, '-', '_', "
                                           "'.' and '@'", conf);
        snprintf(self->machine, sizeof self->machine, "%s", conf);
        return 0;
    }
    char id[64] = "";
    FILE *f = fopen("/etc/machine-id", "r");
    if (f && fgets(id, sizeof id, f))
        id[strspn(id, "0123456789abcdef")] = '\0'; /* 32 hex digits; "uninitialized" is none */
    if (f)
        fclose(f);
    struct utsname u;
    if (strlen(id) != 32 || uname(&u) != 0)
        return 0;
    size_t n = strcspn(u.nodename, "@");
    n = strspn(u.nodename, ok) < n ? strspn(u.nodename, ok) : n;
    snprintf(self->machine, sizeof self->machine, "%s@%.*s", id, (int)(n < 80 ? n : 80),
             u.nodename);
    return 0;
}

/* The VixDiskLib version, told at register so the coordinator can check it against vCenter's:
 * the library is loaded and initialised once at start (its first log line names its version),
 * then released. A library that cannot load is not fatal here: tasks will say why. */
static void s_probe_vddk(self_t *self)
{
    const vb_agent_settings_t *s = self->settings;
    if (!s->vddk_libdir || !*s->vddk_libdir)
        return;
    vb_disk_connect_params_t p = {.vddk_libdir = s->vddk_libdir, .vddk_config = self->vddk_config};
    vb_disk_conn_t *conn = NULL;
    int rc = vb_disk_connect(&p, &conn);
    if (rc == 0)
        rc = vb_disk_vddk_version(conn, self->vddk_version, sizeof self->vddk_version);
    if (rc != 0)
        VB_LOG_WARN("agent", "vddk_version unknown libdir=%s reason=\"%s\"", s->vddk_libdir,
                    vb_error_msg());
    else
        VB_LOG_INFO("agent", "vddk_version=%s libdir=%s", self->vddk_version, s->vddk_libdir);
    vb_disk_disconnect(&conn);
}

static int s_send(self_t *self, vb_envelope_t *env)
{
    if (!self->dealer)
        return vb_error_set(VB_EIO, "not connected");
    return vb_wire_send(self->dealer, NULL, env);
}

static void s_send_hello(self_t *self)
{
    Vbak__AgentFacts facts = VBAK__AGENT_FACTS__INIT;
    s_fill_facts(self, &facts);
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    Vbak__Enroll enroll = VBAK__ENROLL__INIT;
    Vbak__Register reg = VBAK__REGISTER__INIT;
    self->hello_is_enroll = !self->enrolled;
    if (self->hello_is_enroll) {
        enroll.token = self->token;
        enroll.facts = &facts;
        env.body_case = VBAK__ENVELOPE__BODY_ENROLL;
        env.enroll = &enroll;
    } else {
        reg.facts = &facts;
        env.body_case = VBAK__ENVELOPE__BODY_REGISTER;
        env.register_ = &reg;
    }
    if (s_send(self, &env) != 0)
        VB_LOG_WARN("agent", "send_failed error=\"%s\"", vb_error_msg());
    VB_LOG_DEBUG("agent", "hello kind=%s", self->hello_is_enroll ? "enroll" : "register");
}

/* A refusal that retrying cannot fix: tell main and stop. */
static int s_fail(self_t *self, const char *reason)
{
    VB_LOG_ERROR("agent", "refused agent=%s reason=\"%s\"", self->settings->name, reason);
    zstr_sendf(self->pipe, "FAILED %s", reason);
    return -1;
}

static int s_on_ack(self_t *self, const Vbak__RegisterAck *ack)
{
    if (!ack->accepted) {
        const char *reason = ack->reason && *ack->reason ? ack->reason : "no reason given";
        if (!self->hello_is_enroll && self->token) {
            /* the coordinator lost our key (a new catalog): enroll again with the token */
            VB_LOG_WARN("agent", "register_refused reason=\"%s\" action=enroll", reason);
            char path[PATH_MAX];
            s_marker_path(self, path, sizeof path);
            remove(path);
            self->enrolled = false;
            s_send_hello(self);
            return 0;
        }
        return s_fail(self, reason);
    }
    if (self->hello_is_enroll) {
        char path[PATH_MAX];
        s_marker_path(self, path, sizeof path);
        FILE *f = fopen(path, "w");
        if (f)
            fclose(f);
        else
            VB_LOG_WARN("agent", "marker_write_failed path=%s error=\"%s\"", path,
                        strerror(errno));
        self->enrolled = true;
    }
    if (ack->heartbeat_interval_ms)
        self->interval_ms = ack->heartbeat_interval_ms;
    if (ack->liveness)
        self->liveness = ack->liveness;
    self->registered = true;
    self->backoff_ms = self->settings->reconnect_initial_ms;
    VB_LOG_INFO("agent", "%s agent=%s coordinator=%s heartbeat_ms=%lld",
                self->hello_is_enroll ? "enrolled" : "registered", self->settings->name,
                self->settings->coordinator_endpoint, (long long)self->interval_ms);
    return 0;
}

typedef struct {
    zactor_t *actor;
    uint64_t task_id;
} s_running_t;

static void s_running_destroy(void **item)
{
    s_running_t *r = *item;
    if (r) {
        zactor_destroy(&r->actor);
        free(r);
        *item = NULL;
    }
}

static void s_flush_unsent(self_t *self)
{
    zframe_t *frame;
    while (self->dealer && (frame = zlistx_first(self->unsent)) != NULL) {
        zframe_t *copy = zframe_dup(frame);
        if (zframe_send(&copy, self->dealer, 0) != 0) {
            zframe_destroy(&copy);
            break;
        }
        zlistx_delete(self->unsent, zlistx_cursor(self->unsent));
    }
}

/* A task thread finished: forward its result and free the slot. */
static int s_on_task(zloop_t *loop, zsock_t *reader, void *arg)
{
    self_t *self = arg;
    zframe_t *frame = zframe_recv(reader);
    zloop_reader_end(loop, reader);
    for (s_running_t *r = zlistx_first(self->tasks); r; r = zlistx_next(self->tasks)) {
        if ((void *)r->actor == (void *)reader) {
            zlistx_delete(self->tasks, zlistx_cursor(self->tasks)); /* zactor_destroy */
            break;
        }
    }
    if (frame) {
        zlistx_add_end(self->unsent, frame);
        s_flush_unsent(self);
    }
    return 0;
}

/* Pack uploads in flight on S3: the tasks of a job share one repository handle, so its uploads
 * are what the slots would have had each; the agent's handles together keep as many (two jobs
 * at once, or a retired handle and its replacement, would otherwise double the memory). */
static unsigned s_uploads(const vb_agent_settings_t *s)
{
    int64_t uploads = s->s3_uploads_in_flight * s->slots;
    return (unsigned)(uploads > VB_STORE_PUTS_IN_FLIGHT_MAX ? VB_STORE_PUTS_IN_FLIGHT_MAX
                                                            : uploads);
}

static void s_start_task(self_t *self, zframe_t *frame, const Vbak__TaskAssign *assign)
{
    if (zlistx_size(self->tasks) >= (size_t)self->settings->slots) {
        VB_LOG_WARN("agent", "task_refused task=%llu reason=\"no free slot\"",
                    (unsigned long long)assign->task_id);
        Vbak__TaskResult r = VBAK__TASK_RESULT__INIT;
        r.task_id = assign->task_id;
        r.attempt = assign->attempt;
        r.status = VBAK__TASK_STATUS__TASK_STATUS_REFUSED;
        r.error = "the agent has no free task slot";
        vb_envelope_t env = VBAK__ENVELOPE__INIT;
        env.body_case = VBAK__ENVELOPE__BODY_TASK_RESULT;
        env.task_result = &r;
        if (s_send(self, &env) != 0)
            VB_LOG_WARN("agent", "send_failed error=\"%s\"", vb_error_msg());
        return;
    }
    const vb_agent_settings_t *s = self->settings;
    vb_task_env_t env = {s->repository_key_file,
                         (unsigned)s->workers,
                         s->vddk_libdir && *s->vddk_libdir ? s->vddk_libdir : NULL,
                         self->vddk_config,
                         s->repository_credentials_file,
                         vb_store_is_s3(assign->repository) ? s_uploads(s) : 0,
                         self->repos};
    zactor_t *task = vb_task_start(frame, &env);
    if (!task) {
        VB_LOG_ERROR("agent", "task_start_failed error=\"%s\"", vb_error_msg());
        return;
    }
    s_running_t *r = calloc(1, sizeof *r);
    r->actor = task;
    r->task_id = assign->task_id;
    zlistx_add_end(self->tasks, r);
    zloop_reader(self->loop, (zsock_t *)task, s_on_task, self);
    VB_LOG_DEBUG("agent", "task_started task=%llu kind=%d transport=%s",
                 (unsigned long long)assign->task_id, (int)assign->kind, assign->transport);
}

static int s_on_dealer(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    self_t *self = arg;
    zframe_t *frame = zframe_recv(reader);
    if (!frame)
        return 0;
    vb_envelope_t *env = NULL;
    int rc = 0;
    if (vb_wire_unpack(zframe_data(frame), zframe_size(frame),
                       (size_t)self->settings->max_frame_bytes, &env) != 0) {
        self->dropped++;
        VB_LOG_WARN("agent", "dropped reason=\"%s\"", vb_error_msg());
        goto out;
    }
    self->last_heard_ms = zclock_time();
    switch (env->body_case) {
    case VBAK__ENVELOPE__BODY_REGISTER_ACK:
        rc = s_on_ack(self, env->register_ack);
        break;
    case VBAK__ENVELOPE__BODY_HEARTBEAT:
        break;
    case VBAK__ENVELOPE__BODY_TASK_ASSIGN:
        if (env->task_assign->assign_seq > self->assigns_received)
            self->assigns_received = env->task_assign->assign_seq;
        s_start_task(self, frame, env->task_assign);
        break;
    case VBAK__ENVELOPE__BODY_CANCEL:
        VB_LOG_INFO("agent", "cancel task=%llu (it finishes; its result is ignored)",
                    (unsigned long long)env->cancel->task_id);
        break;
    default:
        self->dropped++;
        VB_LOG_WARN("agent", "dropped reason=\"unexpected %s\"", vb_wire_body_name(env));
        break;
    }
out:
    vb_wire_free(&env);
    zframe_destroy(&frame);
    return rc;
}

static void s_disconnect(self_t *self)
{
    if (self->dealer) {
        zloop_reader_end(self->loop, self->dealer);
        zsock_destroy(&self->dealer);
    }
    self->registered = false;
}

static int s_on_reconnect_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    self_t *self = arg;
    self->reconnect_timer = -1;
    if (s_connect(self) != 0)
        VB_LOG_WARN("agent", "connect_failed error=\"%s\"", vb_error_msg());
    return 0;
}

static int s_on_heartbeat_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)timer_id;
    self_t *self = arg;
    (void)vb_repocache_sweep(self->repos);
    if (!self->dealer)
        return 0; /* waiting for the reconnect timer */
    int64_t now = zclock_time();
    /* A hello may sit in a coordinator that is starting (or in a socket still connecting): it is
     * given the handshake deadline, not the liveness of a live connection, so that its answer
     * does not arrive just after the agent gave up and made a new connection. */
    int64_t limit =
        self->registered ? self->interval_ms * self->liveness : self->settings->hello_timeout_ms;
    if (now - self->last_heard_ms > limit) {
        VB_LOG_WARN("agent", "%s endpoint=%s silent_ms=%lld limit_ms=%lld retry_in_ms=%lld",
                    self->registered ? "coordinator_silent" : "hello_unanswered",
                    self->settings->coordinator_endpoint, (long long)(now - self->last_heard_ms),
                    (long long)limit, (long long)self->backoff_ms);
        s_disconnect(self);
        self->reconnect_timer =
            zloop_timer(loop, (size_t)self->backoff_ms, 1, s_on_reconnect_timer, self);
        self->backoff_ms *= 2;
        if (self->backoff_ms > self->settings->reconnect_max_ms)
            self->backoff_ms = self->settings->reconnect_max_ms;
        return 0;
    }
    Vbak__Heartbeat hb = VBAK__HEARTBEAT__INIT;
    hb.sequence = ++self->heartbeat_seq;
    hb.busy_slots = (uint32_t)zlistx_size(self->tasks);
    hb.free_slots = (uint32_t)self->settings->slots - hb.busy_slots;
    uint64_t running[1024];
    size_t n = 0;
    for (s_running_t *r = zlistx_first(self->tasks); r && n < 1024; r = zlistx_next(self->tasks))
        running[n++] = r->task_id;
    hb.running_tasks = running;
    hb.n_running_tasks = n;
    hb.assigns_received = self->assigns_received;
    vb_envelope_t env = VBAK__ENVELOPE__INIT;
    env.body_case = VBAK__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    if (s_send(self, &env) != 0)
        VB_LOG_DEBUG("agent", "heartbeat_send_failed error=\"%s\"", vb_error_msg());
    return 0;
}

static int s_connect(self_t *self)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    if (!dealer)
        return vb_error_set(VB_EIO, "cannot create a socket");
    zcert_apply(self->cert, dealer);
    zsock_set_curve_serverkey(dealer, self->settings->coordinator_public_key);
    zsock_set_linger(dealer, 0);
    zsock_set_sndtimeo(dealer, 0);
    zsock_set_maxmsgsize(dealer, (int)(self->settings->max_frame_bytes + 4096));
    if (zsock_connect(dealer, "%s", self->settings->coordinator_endpoint) != 0) {
        zsock_destroy(&dealer);
        return vb_error_set(VB_EINVAL, "cannot connect to %s: %s",
                            self->settings->coordinator_endpoint, zmq_strerror(zmq_errno()));
    }
    self->dealer = dealer;
    zloop_reader(self->loop, dealer, s_on_dealer, self);
    self->last_heard_ms = zclock_time();
    s_send_hello(self);
    s_flush_unsent(self);
    return 0;
}

static int s_on_pipe(zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    (void)arg;
    char *command = zstr_recv(reader);
    int rc = !command || streq(command, "$TERM") ? -1 : 0;
    zstr_free(&command);
    return rc;
}

static self_t *s_self_new(zsock_t *pipe, const vb_agent_settings_t *settings)
{
    self_t *self = calloc(1, sizeof *self);
    self->settings = settings;
    self->pipe = pipe;
    self->interval_ms = settings->heartbeat_interval_ms;
    self->liveness = settings->liveness;
    self->backoff_ms = settings->reconnect_initial_ms;
    self->reconnect_timer = -1;
    self->tasks = zlistx_new();
    zlistx_set_destructor(self->tasks, s_running_destroy);
    self->unsent = zlistx_new();
    zlistx_set_destructor(self->unsent, (zlistx_destructor_fn *)zframe_destroy);
    self->os = settings->os && *settings->os ? strdup(settings->os) : s_detect_os();
    if (!vb_keys_z85_valid(settings->coordinator_public_key)) {
        vb_error_set(VB_EINVAL, "coordinator_public_key is not a 40-character Z85 key");
        goto fail;
    }
    if (s_split(settings->luns, &self->luns, &self->lun_count) != 0 ||
        s_split(settings->transports, &self->transports, &self->transport_count) != 0)
        goto fail;
    for (size_t i = 0; i < self->transport_count; i++) {
        vb_transport_t mode;
        if (vb_transport_from_name(self->transports[i], &mode) != 0) {
            vb_error_prefix(VB_EINVAL, "transports");
            goto fail;
        }
    }
    if (s_write_vddk_config(self) != 0 || s_prepare_state(self) != 0)
        goto fail;
    s_probe_vddk(self);
    if (s_detect_machine(self) != 0)
        goto fail;
    /* a repository no task used for a heartbeat interval is closed */
    if (!(self->repos = vb_repocache_new(settings->heartbeat_interval_ms)))
        goto fail;
    vb_packup_limit_process(s_uploads(settings));
    self->loop = zloop_new();
    zloop_reader(self->loop, pipe, s_on_pipe, self);
    zloop_timer(self->loop, (size_t)self->interval_ms, 0, s_on_heartbeat_timer, self);
    if (s_connect(self) != 0)
        goto fail;
    return self;
fail:
    s_self_destroy(&self);
    return NULL;
}

static void s_actor(zsock_t *pipe, void *args)
{
    self_t *self = s_self_new(pipe, args);
    zsock_signal(pipe, 0);
    zstr_send(pipe, self ? "" : vb_error_msg());
    if (!self)
        return;
    VB_LOG_INFO("agent", "started agent=%s coordinator=%s slots=%lld hello_timeout_ms=%lld "
                "key=%.8s...",
                self->settings->name, self->settings->coordinator_endpoint,
                (long long)self->settings->slots, (long long)self->settings->hello_timeout_ms,
                zcert_public_txt(self->cert));
    zloop_start(self->loop);
    s_self_destroy(&self);
}

zactor_t *vb_agent_new(const vb_agent_settings_t *settings)
{
    zactor_t *actor = zactor_new(s_actor, (void *)settings);
    if (!actor) {
        vb_error_set(VB_EIO, "cannot start the agent thread");
        return NULL;
    }
    char *why = zstr_recv(actor);
    if (!why || *why) {
        vb_error_set(VB_EIO, "%s", why ? why : "the agent thread stopped");
        zstr_free(&why);
        zactor_destroy(&actor);
        return NULL;
    }
    zstr_free(&why);
    return actor;
}
