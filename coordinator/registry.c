#include "registry.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog_json.h"
#include "keys.h"
#include "log.h"
#include "wire_check.h"

typedef struct {
    vb_agent_record_t rec;
    zframe_t *routing_id; /* current connection; NULL until heard after a restart */
    int64_t last_heard_ms;
    bool online;
    bool dirty; /* heard since the last flush */
    uint32_t busy_slots;
} s_agent_t;

struct vb_registry {
    vb_catalog_t *catalog;
    char *token;
    zhashx_t *by_key; /* public key -> s_agent_t */
    vb_registry_counters_t counters;
    vb_registry_listener_fn *listener;
    void *listener_arg;
};

static void s_tell(vb_registry_t *self, const s_agent_t *a, bool online)
{
    if (self->listener)
        self->listener(self->listener_arg, &a->rec, online);
}

static void s_agent_destroy(void **item)
{
    s_agent_t *a = *item;
    if (!a)
        return;
    vb_agent_record_clear(&a->rec);
    zframe_destroy(&a->routing_id);
    free(a);
    *item = NULL;
}

vb_registry_t *vb_registry_new(vb_catalog_t *catalog, const char *token, int64_t now_ms)
{
    vb_registry_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    self->catalog = catalog;
    self->token = strdup(token);
    self->by_key = zhashx_new();
    zhashx_set_destructor(self->by_key, s_agent_destroy);
    vb_agent_record_t *recs = NULL;
    size_t n = 0;
    if (!self->token || vb_catalog_agents_list(catalog, &recs, &n) != 0) {
        vb_registry_destroy(&self);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        s_agent_t *a = calloc(1, sizeof *a);
        a->rec = recs[i];
        memset(&recs[i], 0, sizeof recs[i]); /* moved */
        a->online = strcmp(a->rec.state, "online") == 0;
        a->last_heard_ms = now_ms;
        zhashx_insert(self->by_key, a->rec.public_key, a);
    }
    vb_agent_records_free(&recs, n);
    return self;
}

void vb_registry_destroy(vb_registry_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_registry_t *self = *self_p;
    zhashx_destroy(&self->by_key);
    free(self->token);
    free(self);
    *self_p = NULL;
}

/* Copies wire facts into a record view (borrowed strings; valid while `facts` lives). */
static vb_agent_record_t s_facts_view(const Vbak__AgentFacts *facts, const char *key)
{
    vb_agent_record_t r = {0};
    r.name = facts->name;
    r.public_key = (char *)key;
    r.host = facts->host;
    r.datastore = facts->datastore;
    r.luns = facts->luns;
    r.lun_count = facts->n_luns;
    r.os = facts->os;
    r.slots = facts->slots;
    r.transports = facts->transports;
    r.transport_count = facts->n_transports;
    r.version = facts->version;
    r.vddk = facts->vddk;
    return r;
}

static int s_check_facts(vb_registry_t *self, const Vbak__AgentFacts *facts)
{
    int rc = vb_wire_check_facts(facts);
    if (rc)
        self->counters.refused_facts++;
    return rc;
}

static void s_set_connection(s_agent_t *a, zframe_t *routing_id, int64_t now_ms)
{
    if (routing_id && (!a->routing_id || !zframe_eq(a->routing_id, routing_id))) {
        zframe_destroy(&a->routing_id);
        a->routing_id = zframe_dup(routing_id);
    }
    a->last_heard_ms = now_ms;
    a->dirty = true;
}

/* Refreshes the in-memory record from the catalog after a write; `facts` gives what the catalog
 * does not keep (whether the agent has VixDiskLib). */
static int s_reload(vb_registry_t *self, s_agent_t *a, const char *key,
                    const Vbak__AgentFacts *facts)
{
    vb_agent_record_t fresh;
    int rc = vb_catalog_agent_by_key(self->catalog, key, &fresh);
    if (rc)
        return rc;
    vb_agent_record_clear(&a->rec);
    a->rec = fresh;
    a->rec.vddk = facts->vddk;
    a->rec.proxy_vm = facts->proxy_vm && *facts->proxy_vm ? strdup(facts->proxy_vm) : NULL;
    a->rec.vddk_version =
        facts->vddk_version && *facts->vddk_version ? strdup(facts->vddk_version) : NULL;
    a->rec.machine = facts->machine && *facts->machine ? strdup(facts->machine) : NULL;
    a->rec.cpus = facts->cpus;
    return 0;
}

static int s_accept_known(vb_registry_t *self, s_agent_t *a, const Vbak__AgentFacts *facts,
                          zframe_t *routing_id, int64_t now_ms)
{
    if (strcmp(facts->name, a->rec.name) != 0) {
        /* a name is bound to its key at enrollment */
        self->counters.refused_name++;
        return vb_error_set(VB_EEXISTS, "this key is enrolled as agent '%s'; it cannot register "
                                        "as '%s'", a->rec.name, facts->name);
    }
    vb_agent_record_t view = s_facts_view(facts, a->rec.public_key);
    int rc = vb_catalog_agent_update_facts(self->catalog, &view, now_ms);
    if (rc == VB_EEXISTS)
        self->counters.refused_name++;
    if (rc)
        return rc;
    if ((rc = s_reload(self, a, a->rec.public_key, facts)) != 0)
        return rc;
    bool was_online = a->online;
    if (was_online)
        s_tell(self, a, false); /* registered again: it lost what it ran before */
    a->online = true;
    s_set_connection(a, routing_id, now_ms);
    self->counters.registered++;
    s_tell(self, a, true);
    VB_LOG_INFO("registry", "registered agent=%s host=%s datastore=%s slots=%u%s", a->rec.name,
                a->rec.host, a->rec.datastore, a->rec.slots, was_online ? "" : " state=online");
    return 0;
}

/* A removed agent's key is refused even with the site token: removal means "never again". */
static int s_check_revoked(vb_registry_t *self, const char *key, const char *asked)
{
    char *was = NULL;
    int rc = vb_catalog_key_revoked(self->catalog, key, &was);
    if (rc == VB_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    self->counters.refused_removed_key++;
    rc = vb_error_set(VB_EAUTH,
                      "agent '%s' presents the key of agent '%s', which was removed from this "
                      "site (vbak agents remove); a removed key is refused for good: delete "
                      "agent.key in the agent's state_dir to enroll it with a new key",
                      asked, was);
    free(was);
    return rc;
}

int vb_registry_enroll(vb_registry_t *self, const char *key, zframe_t *routing_id,
                       const Vbak__Enroll *msg, int64_t now_ms)
{
    int rc = s_check_facts(self, msg->facts);
    if (rc)
        return rc;
    s_agent_t *a = zhashx_lookup(self->by_key, key);
    if (a)
        return s_accept_known(self, a, msg->facts, routing_id, now_ms);
    if ((rc = s_check_revoked(self, key, msg->facts->name)) != 0)
        return rc;
    if (!msg->token || !vb_keys_secret_equal(msg->token, self->token)) {
        self->counters.refused_token++;
        return vb_error_set(VB_EAUTH, "enrollment token refused for agent '%s'",
                            msg->facts->name);
    }
    vb_agent_record_t view = s_facts_view(msg->facts, key);
    rc = vb_catalog_agent_enroll(self->catalog, &view, now_ms);
    if (rc == VB_EEXISTS) {
        self->counters.refused_name++;
        return vb_error_set(VB_EEXISTS,
                            "agent name '%s' is enrolled with another key; it cannot be taken over",
                            msg->facts->name);
    }
    if (rc)
        return rc;
    a = calloc(1, sizeof *a);
    if (!a)
        return vb_error_set(VB_ENOMEM, "out of memory");
    if ((rc = s_reload(self, a, key, msg->facts)) != 0) {
        free(a);
        return rc;
    }
    a->online = true;
    s_set_connection(a, routing_id, now_ms);
    zhashx_insert(self->by_key, key, a);
    self->counters.enrolled++;
    s_tell(self, a, true);
    VB_LOG_INFO("registry", "enrolled agent=%s key=%.8s... host=%s datastore=%s slots=%u",
                a->rec.name, key, a->rec.host, a->rec.datastore, a->rec.slots);
    return 0;
}

int vb_registry_register(vb_registry_t *self, const char *key, zframe_t *routing_id,
                         const Vbak__Register *msg, int64_t now_ms)
{
    int rc = s_check_facts(self, msg->facts);
    if (rc)
        return rc;
    s_agent_t *a = zhashx_lookup(self->by_key, key);
    if (!a) {
        self->counters.refused_unknown_key++;
        return vb_error_set(VB_EAUTH,
                            "agent '%s' presents a key this site never enrolled; enroll it with "
                            "the site token",
                            msg->facts->name);
    }
    return s_accept_known(self, a, msg->facts, routing_id, now_ms);
}

int vb_registry_heard(vb_registry_t *self, const char *key, zframe_t *routing_id, int64_t now_ms)
{
    s_agent_t *a = zhashx_lookup(self->by_key, key);
    if (!a) {
        self->counters.refused_unknown_key++;
        return vb_error_set(VB_ENOTFOUND, "traffic from a key that is not enrolled");
    }
    bool had_route = a->routing_id != NULL;
    s_set_connection(a, routing_id, now_ms);
    if (!had_route && a->online)
        s_tell(self, a, true); /* known from the catalog, heard for the first time since start */
    if (!a->online) {
        a->online = true;
        s_tell(self, a, true);
        if (vb_catalog_agent_set_state(self->catalog, key, "online", now_ms) != 0)
            VB_LOG_ERROR("registry", "catalog_write_failed agent=%s error=\"%s\"", a->rec.name,
                         vb_error_msg());
        VB_LOG_INFO("registry", "agent_back agent=%s state=online", a->rec.name);
    }
    return 0;
}

void vb_registry_set_load(vb_registry_t *self, const char *key, uint32_t busy)
{
    s_agent_t *a = zhashx_lookup(self->by_key, key);
    if (a)
        a->busy_slots = busy;
}

void vb_registry_purge(vb_registry_t *self, int64_t now_ms, int64_t timeout_ms)
{
    for (s_agent_t *a = zhashx_first(self->by_key); a; a = zhashx_next(self->by_key)) {
        if (!a->online || now_ms - a->last_heard_ms <= timeout_ms)
            continue;
        a->online = false;
        zframe_destroy(&a->routing_id);
        s_tell(self, a, false);
        VB_LOG_WARN("registry", "agent_lost agent=%s silent_ms=%lld", a->rec.name,
                    (long long)(now_ms - a->last_heard_ms));
        if (vb_catalog_agent_set_state(self->catalog, a->rec.public_key, "lost",
                                       a->last_heard_ms) != 0)
            VB_LOG_ERROR("registry", "catalog_write_failed agent=%s error=\"%s\"", a->rec.name,
                         vb_error_msg());
        a->dirty = false;
    }
}

int vb_registry_flush(vb_registry_t *self)
{
    int rc = vb_catalog_begin(self->catalog);
    if (rc)
        return rc;
    for (s_agent_t *a = zhashx_first(self->by_key); a; a = zhashx_next(self->by_key)) {
        if (!a->dirty || !a->online)
            continue;
        if ((rc = vb_catalog_agent_set_state(self->catalog, a->rec.public_key, "online",
                                             a->last_heard_ms)) != 0) {
            vb_catalog_rollback(self->catalog);
            return rc;
        }
        a->dirty = false;
    }
    return vb_catalog_commit(self->catalog);
}

void vb_registry_foreach_online(vb_registry_t *self, void (*fn)(zframe_t *routing_id, void *arg),
                                void *arg)
{
    for (s_agent_t *a = zhashx_first(self->by_key); a; a = zhashx_next(self->by_key))
        if (a->online && a->routing_id)
            fn(a->routing_id, arg);
}

static json_t *s_strv_json(char **v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(v[i]));
    return arr;
}

static int s_by_name(const void *a, const void *b)
{
    const char *na = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    const char *nb = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(na ? na : "", nb ? nb : "");
}

json_t *vb_registry_agents_json(vb_registry_t *self)
{
    size_t n = zhashx_size(self->by_key), i = 0;
    json_t **items = calloc(n ? n : 1, sizeof *items);
    for (s_agent_t *a = zhashx_first(self->by_key); a; a = zhashx_next(self->by_key)) {
        const vb_agent_record_t *r = &a->rec;
        items[i++] = json_pack(
            "{s:s, s:s, s:s, s:s, s:o, s:s, s:i, s:i, s:o, s:b, s:s?, s:s?, s:s?, s:i, s:s, s:s, "
            "s:I, s:o, s:I}",
            "name", r->name, "state", a->online ? "online" : "lost", "host", r->host, "datastore",
            r->datastore, "luns", s_strv_json(r->luns, r->lun_count), "os", r->os, "slots",
            (int)r->slots, "busy_slots", (int)a->busy_slots, "transports",
            s_strv_json(r->transports, r->transport_count), "vddk", r->vddk, "proxy_vm",
            r->proxy_vm, "vddk_version", r->vddk_version, "machine", r->machine, "cpus",
            (int)r->cpus, "version", r->version, "public_key",
            r->public_key, "enrolled_at", (json_int_t)r->enrolled_at, "last_seen",
            vb_json_time(a->last_heard_ms), "last_seen_ms", (json_int_t)a->last_heard_ms);
    }
    qsort(items, i, sizeof *items, s_by_name);
    json_t *arr = json_array();
    for (size_t k = 0; k < i; k++)
        json_array_append_new(arr, items[k]);
    free(items);
    return arr;
}

void vb_registry_census(vb_registry_t *self, size_t *online, size_t *lost)
{
    *online = *lost = 0;
    for (s_agent_t *a = zhashx_first(self->by_key); a; a = zhashx_next(self->by_key))
        (*(a->online ? online : lost))++;
}

const vb_registry_counters_t *vb_registry_counters(vb_registry_t *self)
{
    return &self->counters;
}

void vb_registry_set_listener(vb_registry_t *self, vb_registry_listener_fn *fn, void *arg)
{
    self->listener = fn;
    self->listener_arg = arg;
}

zframe_t *vb_registry_route(vb_registry_t *self, const char *name)
{
    for (s_agent_t *a = zhashx_first(self->by_key); a; a = zhashx_next(self->by_key))
        if (a->online && streq(a->rec.name, name))
            return a->routing_id;
    return NULL;
}

const char *vb_registry_name(vb_registry_t *self, const char *key)
{
    s_agent_t *a = zhashx_lookup(self->by_key, key);
    return a ? a->rec.name : NULL;
}

int vb_registry_set_token(vb_registry_t *self, const char *token)
{
    char *copy = strdup(token);
    if (!copy)
        return vb_error_set(VB_ENOMEM, "out of memory");
    free(self->token);
    self->token = copy;
    VB_LOG_INFO("registry", "token_rotated");
    return 0;
}

int vb_registry_remove(vb_registry_t *self, const char *name, int64_t now_ms)
{
    s_agent_t *a = NULL;
    for (a = zhashx_first(self->by_key); a; a = zhashx_next(self->by_key))
        if (strcmp(a->rec.name, name) == 0)
            break;
    if (!a)
        return vb_error_set(VB_ENOTFOUND, "no agent named '%s' is enrolled", name);
    int rc = vb_catalog_agent_remove(self->catalog, a->rec.public_key, name, now_ms);
    if (rc)
        return rc;
    if (a->online)
        s_tell(self, a, false); /* its running tasks go back to the queue */
    VB_LOG_INFO("registry", "removed agent=%s key=%.8s...", name, a->rec.public_key);
    char key[VB_KEY_Z85_LEN + 1];
    snprintf(key, sizeof key, "%s", a->rec.public_key);
    zhashx_delete(self->by_key, key);
    return 0;
}
