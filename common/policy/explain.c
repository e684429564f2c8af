#include "policy/explain.h"

#include <string.h>

#include "vddk/vddk_config.h"

vb_agent_facts_t vb_agent_facts_from_proxy(const vb_inv_proxy_t *proxy)
{
    return (vb_agent_facts_t){
        .name = proxy->name,
        .host = proxy->host,
        .datastore = proxy->datastore,
        .luns = (const char *const *)proxy->luns,
        .lun_count = proxy->lun_count,
        .transports = VB_TRANSPORT_ALL,
    };
}

/* The inventory's VM whose id is `id`; NULL when none. */
static const vb_inv_vm_t *s_vm_by_id(const vb_inventory_t *inv, const char *id)
{
    for (size_t i = 0; id && *id && i < inv->vm_count; i++)
        if (inv->vms[i].id && strcmp(inv->vms[i].id, id) == 0)
            return &inv->vms[i];
    return NULL;
}

void vb_explain_input(const vb_inventory_t *inv, const vb_inv_vm_t *vm, const vb_inv_disk_t *disk,
                      const vb_agent_facts_t *agent, vb_transport_op_t op,
                      vb_transport_input_t *out)
{
    const vb_inv_datastore_t *ds =
        disk->datastore ? vb_inventory_find_datastore(inv, disk->datastore) : NULL;
    /* where the agent's proxy VM is: the inventory's word, when it names the VM */
    const vb_inv_vm_t *proxy = s_vm_by_id(inv, agent->proxy_vm);
    const char *agent_host = proxy ? proxy->host : agent->host;
    const char *agent_datastore =
        proxy ? (proxy->disk_count ? proxy->disks[0].datastore : NULL) : agent->datastore;
    const vb_inv_datastore_t *agent_ds =
        agent_datastore ? vb_inventory_find_datastore(inv, agent_datastore) : NULL;
    const vb_inv_host_t *host = vm->host ? vb_inventory_find_host(inv, vm->host) : NULL;
    *out = (vb_transport_input_t){
        .vm = vm->name,
        .datastore = disk->datastore,
        .datastore_type = ds ? ds->type : NULL,
        .datastore_hosts = ds ? (const char *const *)ds->hosts : NULL,
        .datastore_host_count = ds ? ds->host_count : 0,
        .datastore_lun = ds ? ds->lun : NULL,
        .linked_clone = vm->linked_clone || disk->parent != NULL,
        .vm_host = vm->host,
        .vm_has_snapshots = vm->snapshot_count > 0,
        .routes = disk->routes[op],
        .vddk_routes = disk->vddk_routes[op],
        .provider = inv->provider,
        .agent = agent->name,
        .agent_host = agent_host,
        .agent_datastore = agent_datastore,
        .agent_datastore_type = agent_ds ? agent_ds->type : NULL,
        .agent_luns = agent->luns,
        .agent_lun_count = agent->lun_count,
        .agent_transports = agent->transports,
        .agent_vddk = agent->vddk,
        .op = op,
        .site_requires_encryption = inv->require_encryption,
        .host_requires_encryption = host && host->require_encryption,
    };
}

/* json_object_set_new that treats a NULL value (failed allocation) as failure. */
static int s_set(json_t *obj, const char *key, json_t *value)
{
    if (!value || json_object_set_new(obj, key, value) != 0)
        return vb_error_set(VB_ENOMEM, "out of memory building the explain table");
    return 0;
}

static json_t *s_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static int s_row(const vb_transport_input_t *in, const vb_inv_disk_t *disk,
                 const vb_transport_decision_t *d, json_t **row_out)
{
    int rc = VB_ENOMEM;
    json_t *row = json_object();
    json_t *refused = json_array();
    json_t *order = json_array();
    if (!row || !refused || !order)
        goto out;
    if ((rc = s_set(row, "vm", s_str_or_null(in->vm))) ||
        (rc = s_set(row, "disk", s_str_or_null(disk->key))) ||
        (rc = s_set(row, "disk_key", s_str_or_null(disk->key))) ||
        (rc = s_set(row, "disk_name", s_str_or_null(disk->name))) ||
        (rc = s_set(row, "datastore", s_str_or_null(disk->datastore))) ||
        (rc = s_set(row, "agent", s_str_or_null(in->agent))) ||
        (rc = s_set(row, "operation",
                    json_string(in->op == VB_OP_RESTORE ? "restore" : "backup"))) ||
        (rc = s_set(row, "chosen",
                    d->chosen == VB_TRANSPORT_NONE ? json_null()
                                                   : json_string(vb_transport_name(d->chosen)))) ||
        (rc = s_set(row, "route",
                    d->chosen == VB_TRANSPORT_NONE ? json_null() : json_string(d->route))) ||
        (rc = s_set(row, "why", json_string(d->why))))
        goto out;
    for (int m = 0; m < VB_TRANSPORT_COUNT; m++) {
        if (m == (int)d->chosen)
            continue;
        json_t *entry =
            json_pack("{s:s, s:s, s:b}", "mode", vb_transport_name((vb_transport_t)m), "reason",
                      d->verdicts[m].reason, "fallback", d->verdicts[m].allowed);
        if (!entry || json_array_append_new(refused, entry) != 0) {
            rc = vb_error_set(VB_ENOMEM, "out of memory building the explain table");
            goto out;
        }
    }
    for (size_t i = 0; i < d->order_count; i++) {
        if (json_array_append_new(order, json_string(vb_transport_name(d->order[i]))) != 0) {
            rc = vb_error_set(VB_ENOMEM, "out of memory building the explain table");
            goto out;
        }
    }
    rc = s_set(row, "refused", refused);
    refused = NULL;
    if (rc)
        goto out;
    rc = s_set(row, "order", order);
    order = NULL;
    if (rc)
        goto out;
    *row_out = row;
    row = NULL;
out:
    json_decref(row);
    json_decref(refused);
    json_decref(order);
    return rc;
}

bool vb_explain_vddk_warning(const char *agent, const char *vddk_version,
                             const char *server_version, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (!vddk_version || !*vddk_version || !server_version || !*server_version)
        return false;
    if (vb_vddk_check_compat(vddk_version, server_version) == 0)
        return false;
    snprintf(buf, cap, "agent %s: %s", agent ? agent : "?", vb_error_msg());
    return true;
}

/* Adds the row's "warning" when the agent's VDDK does not support the server's version. */
static int s_warn(json_t *row, const vb_agent_facts_t *agent, const char *server_version)
{
    char msg[512];
    if (!agent->vddk ||
        !vb_explain_vddk_warning(agent->name, agent->vddk_version, server_version, msg, sizeof msg))
        return 0;
    return s_set(row, "warning", json_string(msg));
}

static int s_find_agent(const vb_agent_facts_t *agents, size_t agent_count, const char *name,
                        size_t *index_out)
{
    char known[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < agent_count; i++) {
        if (agents[i].name && strcmp(agents[i].name, name) == 0) {
            *index_out = i;
            return 0;
        }
        if (agents[i].name && used < sizeof known) {
            int w = snprintf(known + used, sizeof known - used, "%s%s", used ? ", " : "",
                             agents[i].name);
            if (w > 0)
                used += (size_t)w;
        }
    }
    return vb_error_set(VB_ENOTFOUND, "agent '%s' is not known (known agents: %s)", name, known);
}

int vb_explain_build(const vb_inventory_t *inv, const vb_agent_facts_t *agents, size_t agent_count,
                     const vb_explain_request_t *req, json_t **out)
{
    if (!inv || !req || !req->vm || !out || (agent_count && !agents))
        return vb_error_set(VB_EINVAL, "explain: missing inventory, VM name or output");
    const vb_inv_vm_t *vm = vb_inventory_find_vm(inv, req->vm);
    if (!vm)
        return vb_error_set(VB_ENOTFOUND, "VM '%s' is not in the inventory", req->vm);
    if (agent_count == 0)
        return vb_error_set(VB_ENOTFOUND,
                            "no agents are registered: explain needs at least one agent");
    size_t first = 0, last = agent_count;
    if (req->agent) {
        int rc = s_find_agent(agents, agent_count, req->agent, &first);
        if (rc)
            return rc;
        last = first + 1;
    }
    json_t *rows = json_array();
    if (!rows)
        return vb_error_set(VB_ENOMEM, "out of memory building the explain table");
    int rc = 0;
    for (size_t d = 0; d < vm->disk_count; d++) {
        for (size_t a = first; a < last; a++) {
            vb_transport_input_t in;
            vb_explain_input(inv, vm, &vm->disks[d], &agents[a], req->op, &in);
            in.preference = req->preference;
            in.preference_count = req->preference_count;
            vb_transport_decision_t decision;
            vb_transport_decide(&in, &decision);
            json_t *row = NULL;
            if ((rc = s_row(&in, &vm->disks[d], &decision, &row)) != 0)
                goto out;
            if ((rc = s_warn(row, &agents[a], req->server_version)) != 0) {
                json_decref(row);
                goto out;
            }
            if (json_array_append_new(rows, row) != 0) {
                rc = vb_error_set(VB_ENOMEM, "out of memory building the explain table");
                goto out;
            }
        }
    }
    *out = rows;
    rows = NULL;
out:
    json_decref(rows);
    return rc;
}

static const char *s_get(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "?";
}

void vb_explain_print(FILE *out, const json_t *rows)
{
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row)
    {
        if (i > 0)
            fputc('\n', out);
        const char *name = json_string_value(json_object_get(row, "disk_name"));
        fprintf(out, "%s / disk %s%s%s%s on %s / agent %s (%s)\n", s_get(row, "vm"),
                s_get(row, "disk"), name ? " \"" : "", name ? name : "", name ? "\"" : "",
                s_get(row, "datastore"), s_get(row, "agent"), s_get(row, "operation"));
        const char *chosen = json_string_value(json_object_get(row, "chosen"));
        const char *route = json_string_value(json_object_get(row, "route"));
        if (chosen && route && strcmp(route, chosen) != 0)
            fprintf(out, "  %-9s %-8s route %s: %s\n", "chosen", chosen, route, s_get(row, "why"));
        else
            fprintf(out, "  %-9s %-8s %s\n", "chosen", chosen ? chosen : "none", s_get(row, "why"));
        const char *warning = json_string_value(json_object_get(row, "warning"));
        if (warning)
            fprintf(out, "  %-9s %s\n", "warning", warning);
        size_t k;
        const json_t *entry;
        json_array_foreach(json_object_get(row, "refused"), k, entry)
        {
            fprintf(out, "  %-9s %-8s %s\n",
                    json_is_true(json_object_get(entry, "fallback")) ? "fallback" : "refused",
                    s_get(entry, "mode"), s_get(entry, "reason"));
        }
    }
}
