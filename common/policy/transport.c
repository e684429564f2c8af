#include "policy/transport.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const s_names[VB_TRANSPORT_COUNT] = {"san", "hotadd", "nbdssl", "nbd"};
/* How the sentences spell the modes. */
static const char *const s_titles[VB_TRANSPORT_COUNT] = {"SAN", "HotAdd", "NBDSSL", "NBD"};
static const vb_transport_t s_default_order[VB_TRANSPORT_COUNT] = {
    VB_TRANSPORT_SAN, VB_TRANSPORT_HOTADD, VB_TRANSPORT_NBDSSL, VB_TRANSPORT_NBD};

static bool s_valid(vb_transport_t mode)
{
    return mode >= 0 && mode < VB_TRANSPORT_COUNT;
}

const char *vb_transport_name(vb_transport_t mode)
{
    return s_valid(mode) ? s_names[mode] : "none";
}

int vb_transport_from_name(const char *name, vb_transport_t *out)
{
    for (int m = 0; m < VB_TRANSPORT_COUNT; m++) {
        if (name && strcasecmp(name, s_names[m]) == 0) {
            *out = (vb_transport_t)m;
            return 0;
        }
    }
    return vb_error_set(VB_EINVAL, "'%s' is not a transport mode (san, hotadd, nbdssl, nbd)",
                        name ? name : "");
}

int vb_transport_parse_order(const char *text, vb_transport_t out[VB_TRANSPORT_COUNT],
                             size_t *count_out)
{
    size_t count = 0;
    const char *p = text ? text : "";
    while (*p) {
        size_t len = strcspn(p, ":,");
        char word[16];
        if (len == 0 || len >= sizeof word)
            return vb_error_set(VB_EINVAL,
                                "transport order '%s': expected modes like "
                                "san:hotadd:nbdssl:nbd",
                                text);
        memcpy(word, p, len);
        word[len] = '\0';
        vb_transport_t mode = VB_TRANSPORT_NONE;
        if (vb_transport_from_name(word, &mode) != 0)
            return vb_error_prefix(VB_EINVAL, "transport order '%s'", text);
        for (size_t i = 0; i < count; i++)
            if (out[i] == mode)
                return vb_error_set(VB_EINVAL, "transport order '%s' names %s twice", text,
                                    s_names[mode]);
        out[count++] = mode;
        p += len;
        if (*p && !*++p)
            return vb_error_set(VB_EINVAL, "transport order '%s' ends with a separator", text);
    }
    if (count == 0)
        return vb_error_set(VB_EINVAL, "transport order is empty: name at least one of san, "
                                       "hotadd, nbdssl, nbd");
    *count_out = count;
    return 0;
}

const vb_transport_t *vb_transport_default_order(void)
{
    return s_default_order;
}

int vb_transport_rank(vb_transport_t mode)
{
    /* The enum is declared in rank order. */
    return s_valid(mode) ? (int)mode : VB_TRANSPORT_COUNT;
}

int vb_transport_compare(vb_transport_t a, vb_transport_t b)
{
    return vb_transport_rank(a) - vb_transport_rank(b);
}

/* ---- the rules ---- */

static const char *s_str(const char *s)
{
    return s && *s ? s : "(unknown)";
}

static bool s_is_type(const char *type, const char *want)
{
    return type && strcasecmp(type, want) == 0;
}

static bool s_is_nfs(const char *type)
{
    return s_is_type(type, "NFS") || s_is_type(type, "NFS41");
}

/* The datastore types the rules know (summary.type); any other (OTHER, ...) gets network modes. */
static bool s_known_type(const char *type)
{
    static const char *const known[] = {"VMFS", "NFS", "NFS41", "vsan", "VVOL"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (s_is_type(type, known[i]))
            return true;
    return false;
}

static bool s_same(const char *a, const char *b)
{
    return a && b && *a && strcmp(a, b) == 0;
}

static bool s_contains(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; list && i < n; i++)
        if (s_same(list[i], s))
            return true;
    return false;
}

/* Records a refusal for `mode` and returns false, so rules read `return s_refuse(...)`. */
static bool s_refuse(vb_transport_decision_t *out, vb_transport_t mode, const char *fmt, ...)
    VB_PRINTF(3, 4);
static bool s_refuse(vb_transport_decision_t *out, vb_transport_t mode, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->verdicts[mode].reason, sizeof out->verdicts[mode].reason, fmt, ap);
    va_end(ap);
    out->verdicts[mode].allowed = false;
    return false;
}

static bool s_san(const vb_transport_input_t *in, vb_transport_decision_t *out)
{
    const vb_transport_t m = VB_TRANSPORT_SAN;
    const char *ds = s_str(in->datastore);
    if (s_is_type(in->datastore_type, "vsan") || s_is_type(in->datastore_type, "VVOL"))
        return s_refuse(out, m, "SAN is not supported on %s datastore %s", in->datastore_type, ds);
    if (!in->datastore_type || !*in->datastore_type)
        return s_refuse(out, m, "SAN is not possible: the type of datastore %s is unknown", ds);
    if (!s_is_type(in->datastore_type, "VMFS"))
        return s_refuse(out, m,
                        "SAN is not possible on %s datastore %s: SAN reads VMFS datastores on a "
                        "SAN LUN",
                        in->datastore_type, ds);
    if (!in->datastore_lun || !*in->datastore_lun)
        return s_refuse(out, m, "SAN is not possible: VMFS datastore %s is not on a SAN LUN", ds);
    if (in->op == VB_OP_RESTORE && in->vm_has_snapshots)
        return s_refuse(out, m,
                        "SAN restore into VM %s is refused while it has snapshots: delete the "
                        "snapshots first or restore to a new location",
                        s_str(in->vm));
    if (!s_contains(in->agent_luns, in->agent_lun_count, in->datastore_lun))
        return s_refuse(out, m, "agent %s does not see LUN %s of datastore %s", s_str(in->agent),
                        in->datastore_lun, ds);
    return true;
}

static bool s_hotadd(const vb_transport_input_t *in, vb_transport_decision_t *out)
{
    const vb_transport_t m = VB_TRANSPORT_HOTADD;
    const char *ds = s_str(in->datastore);
    const char *agent = s_str(in->agent);
    if (in->linked_clone && s_is_type(in->datastore_type, "VVOL"))
        return s_refuse(out, m,
                        "HotAdd is not used for linked clone VM %s on vVol datastore %s: opening "
                        "its disk can leave the proxy VM invalid",
                        s_str(in->vm), ds);
    if (in->datastore_type && *in->datastore_type && !s_known_type(in->datastore_type))
        return s_refuse(out, m,
                        "HotAdd is not used on datastore %s of type %s, a kind of storage the "
                        "policy does not know: nothing says a proxy may attach its disks safely, "
                        "so it is read over the network only",
                        ds, in->datastore_type);
    if (!in->agent_host || !*in->agent_host || !in->agent_datastore || !*in->agent_datastore)
        return s_refuse(out, m,
                        "HotAdd needs a proxy VM, and the host or datastore of agent %s is "
                        "unknown",
                        agent);
    if (s_is_type(in->datastore_type, "vsan") && !s_same(in->agent_datastore, in->datastore)) {
        if (in->agent_datastore_type && *in->agent_datastore_type)
            return s_refuse(out, m,
                            "HotAdd of a disk on vSAN datastore %s needs a proxy on that vSAN "
                            "datastore, and agent %s sits on %s datastore %s (move the proxy "
                            "VM to %s)",
                            ds, agent, in->agent_datastore_type, in->agent_datastore, ds);
        return s_refuse(out, m,
                        "HotAdd of a disk on vSAN datastore %s needs a proxy on that vSAN "
                        "datastore, and agent %s sits on datastore %s (move the proxy VM to %s)",
                        ds, agent, in->agent_datastore, ds);
    }
    if (!s_contains(in->datastore_hosts, in->datastore_host_count, in->agent_host))
        return s_refuse(out, m, "host %s of agent %s does not mount datastore %s", in->agent_host,
                        agent, ds);
    if (s_is_nfs(in->datastore_type) && !s_same(in->agent_host, in->vm_host))
        return s_refuse(out, m,
                        "HotAdd of a disk on NFS datastore %s needs a proxy on the VM's own host "
                        "%s, and agent %s is on %s: NFS locks taken from another host would stun "
                        "the VM",
                        ds, s_str(in->vm_host), agent, in->agent_host);
    return true;
}

static bool s_nbd(const vb_transport_input_t *in, vb_transport_decision_t *out)
{
    if (in->site_requires_encryption)
        return s_refuse(out, VB_TRANSPORT_NBD,
                        "plain NBD is refused: the site requires encrypted transfers "
                        "(NoNfcSession=1), use NBDSSL");
    if (in->host_requires_encryption)
        return s_refuse(out, VB_TRANSPORT_NBD,
                        "plain NBD is refused: host %s requires encrypted transfers "
                        "(NoNfcSession=1), use NBDSSL",
                        s_str(in->vm_host));
    return true;
}

/* Writes the preference order as "a:b:c" into buf. */
static void s_order_text(const vb_transport_t *order, size_t n, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++) {
        int w =
            snprintf(buf + used, size - used, "%s%s", i ? ":" : "", vb_transport_name(order[i]));
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* The route the agent uses for `m`: through VixDiskLib when the agent has it and the provider
 * gives one, else the plain route; NULL when there is none (*vddk says which). */
static const vb_route_t *s_route(const vb_transport_input_t *in, vb_transport_t m, bool *vddk)
{
    *vddk = in->agent_vddk && in->vddk_routes && in->vddk_routes[m].uri;
    if (*vddk)
        return &in->vddk_routes[m];
    return in->routes && in->routes[m].uri ? &in->routes[m] : NULL;
}

/* The disk-layer mode of the route for `m` (its own name when the input lists no routes); NULL
 * when the provider has no route for it. */
static const char *s_route_mode(const vb_transport_input_t *in, vb_transport_t m)
{
    bool vddk;
    if (!in->routes && !in->vddk_routes)
        return s_names[m];
    const vb_route_t *r = s_route(in, m, &vddk);
    if (!r)
        return NULL;
    return r->mode && *r->mode ? r->mode : s_names[m];
}

/* The agent lacks VixDiskLib and the provider has a VixDiskLib route for `m`. */
static bool s_lacks_vddk(const vb_transport_input_t *in, vb_transport_t m)
{
    return !in->agent_vddk && in->vddk_routes && in->vddk_routes[m].uri;
}

/* "agent X has no vddk_libdir: VixDiskLib modes unavailable; ..." into buf. */
static void s_no_vddk(const vb_transport_input_t *in, char *buf, size_t size)
{
    bool file_service = false;
    for (int m = 0; in->routes && m < VB_TRANSPORT_COUNT; m++)
        file_service = file_service || (in->routes[m].uri && in->routes[m].mode &&
                                        strcmp(in->routes[m].mode, "vsfile") == 0);
    snprintf(buf, size, "agent %s has no vddk_libdir: VixDiskLib modes unavailable; %s",
             s_str(in->agent),
             file_service              ? "the datastore file service is used"
             : in->op == VB_OP_RESTORE ? "no other route writes into the disk (the datastore "
                                         "file service is read-only)"
                                       : "no other route reaches the disk");
}

static void s_why(const vb_transport_input_t *in, vb_transport_decision_t *out)
{
    const char *agent = s_str(in->agent);
    const char *ds = s_str(in->datastore);
    const char *verb = in->op == VB_OP_RESTORE ? "writes" : "reads";
    switch (out->chosen) {
    case VB_TRANSPORT_SAN:
        snprintf(out->why, sizeof out->why,
                 "agent %s sees LUN %s of VMFS datastore %s and %s the disk directly over the SAN",
                 agent, in->datastore_lun, ds, verb);
        break;
    case VB_TRANSPORT_HOTADD:
        snprintf(out->why, sizeof out->why,
                 "host %s of agent %s mounts datastore %s, so the disk is attached to the proxy "
                 "VM and the agent %s it locally",
                 in->agent_host, agent, ds, verb);
        break;
    case VB_TRANSPORT_NBDSSL:
        if (strcmp(out->route, "vsfile") == 0) {
            snprintf(out->why, sizeof out->why,
                     "encrypted network transfer over the HTTPS datastore file service (route "
                     "vsfile): the agent %s the disk's flat file through the %s server, the best "
                     "mode this agent may use",
                     verb, in->provider ? in->provider : "inventory");
            if (s_lacks_vddk(in, VB_TRANSPORT_NBDSSL)) {
                char why[VB_TRANSPORT_REASON_MAX];
                s_no_vddk(in, why, sizeof why);
                size_t n = strlen(out->why);
                snprintf(out->why + n, sizeof out->why - n, " (%s)", why);
            }
            break;
        }
        snprintf(out->why, sizeof out->why,
                 "encrypted network transfer (NFC over TLS) through host %s: the best mode this "
                 "agent may use",
                 s_str(in->vm_host));
        break;
    case VB_TRANSPORT_NBD:
        snprintf(out->why, sizeof out->why,
                 "plain network transfer (NFC) through host %s: the best mode this agent may use, "
                 "and neither the site nor the host requires encryption",
                 s_str(in->vm_host));
        break;
    default:
        snprintf(out->why, sizeof out->why,
                 "no transport mode is allowed for this disk on agent %s: every mode was refused",
                 agent);
        break;
    }
}

void vb_transport_decide(const vb_transport_input_t *in, vb_transport_decision_t *out)
{
    memset(out, 0, sizeof *out);
    out->chosen = VB_TRANSPORT_NONE;
    const vb_transport_t *pref = in->preference ? in->preference : s_default_order;
    size_t pref_count = in->preference ? in->preference_count : VB_TRANSPORT_COUNT;
    if (pref_count > VB_TRANSPORT_COUNT)
        pref_count = VB_TRANSPORT_COUNT;
    char order_text[64];
    s_order_text(pref, pref_count, order_text, sizeof order_text);

    for (int i = 0; i < VB_TRANSPORT_COUNT; i++) {
        vb_transport_t m = (vb_transport_t)i;
        bool ok = true;
        switch (m) {
        case VB_TRANSPORT_SAN:
            ok = s_san(in, out);
            break;
        case VB_TRANSPORT_HOTADD:
            ok = s_hotadd(in, out);
            break;
        case VB_TRANSPORT_NBD:
            ok = s_nbd(in, out);
            break;
        default:
            break;
        }
        if (ok && !s_route_mode(in, m) && s_lacks_vddk(in, m)) {
            char why[VB_TRANSPORT_REASON_MAX];
            s_no_vddk(in, why, sizeof why);
            ok = s_refuse(out, m, "%s", why);
        }
        if (ok && !s_route_mode(in, m))
            ok = s_refuse(out, m, "the %s provider has no %s route for %s this disk",
                          in->provider ? in->provider : "inventory", s_titles[m],
                          in->op == VB_OP_RESTORE ? "writing into" : "reading");
        if (ok && !(in->agent_transports & VB_TRANSPORT_BIT(m)))
            ok = s_refuse(out, m, "agent %s does not support %s", s_str(in->agent), s_titles[m]);
        bool listed = false;
        for (size_t p = 0; p < pref_count; p++)
            listed = listed || pref[p] == m;
        if (ok && !listed)
            ok = s_refuse(out, m, "%s is not in the preference order %s", s_titles[m], order_text);
        out->verdicts[m].allowed = ok;
        s_route(in, m, &out->via_vddk[m]);
    }

    for (size_t p = 0; p < pref_count; p++) {
        vb_transport_t m = pref[p];
        if (!s_valid(m) || !out->verdicts[m].allowed)
            continue;
        bool seen = false;
        for (size_t k = 0; k < out->order_count; k++)
            seen = seen || out->order[k] == m;
        if (seen)
            continue;
        out->order[out->order_count++] = m;
        if (out->chosen == VB_TRANSPORT_NONE) {
            out->chosen = m;
            snprintf(out->route, sizeof out->route, "%s", s_route_mode(in, m));
        } else
            snprintf(out->verdicts[m].reason, sizeof out->verdicts[m].reason,
                     "allowed, but %s comes first in the preference order %s; kept as a fallback",
                     s_names[out->chosen], order_text);
    }
    s_why(in, out);
}
