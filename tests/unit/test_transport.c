/* Transport policy: one table row per rule and per combination that matters, for backup and
 * restore. Every row states the chosen mode and the exact sentence for every mode not chosen. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "policy/transport.h"

static const char *const s_two_hosts[] = {"esx-01", "esx-02"};
static const char *const s_lun_01[] = {"naa.01"};
static const char *const s_lun_other[] = {"naa.99"};

/* The base scenario: VM web-01 on esx-01, its disk on VMFS datastore vmfs-01 (LUN naa.01,
 * mounted by esx-01 and esx-02); agent proxy-1 is a VM on esx-01 sitting on vmfs-01, sees LUN
 * naa.01 and supports every mode; a backup, no encryption requirement, default order. */
static vb_transport_input_t s_base(void)
{
    return (vb_transport_input_t){
        .vm = "web-01",
        .datastore = "vmfs-01",
        .datastore_type = "VMFS",
        .datastore_hosts = s_two_hosts,
        .datastore_host_count = 2,
        .datastore_lun = "naa.01",
        .vm_host = "esx-01",
        .agent = "proxy-1",
        .agent_host = "esx-01",
        .agent_datastore = "vmfs-01",
        .agent_datastore_type = "VMFS",
        .agent_luns = s_lun_01,
        .agent_lun_count = 1,
        .agent_transports = VB_TRANSPORT_ALL,
        .op = VB_OP_BACKUP,
    };
}

static void s_restore(vb_transport_input_t *in)
{
    in->op = VB_OP_RESTORE;
}
static void s_vsan(vb_transport_input_t *in)
{
    in->datastore = "vsanDatastore";
    in->datastore_type = "vsan";
    in->datastore_lun = NULL;
}
static void s_vvol(vb_transport_input_t *in)
{
    in->datastore = "vvol-01";
    in->datastore_type = "VVOL";
    in->datastore_lun = NULL;
}
static void s_nfs(vb_transport_input_t *in)
{
    in->datastore = "nfs-01";
    in->datastore_type = "NFS";
    in->datastore_lun = NULL;
}
static void s_agent_elsewhere(vb_transport_input_t *in)
{
    in->agent_host = "esx-02";
}
static void s_no_lun_view(vb_transport_input_t *in)
{
    in->agent_luns = s_lun_other;
}
static void s_site_encrypted(vb_transport_input_t *in)
{
    in->site_requires_encryption = true;
}

static void c_base(vb_transport_input_t *in)
{
    (void)in;
}
static void c_vsan_proxy_off_vsan(vb_transport_input_t *in)
{
    s_vsan(in);
}
static void c_vsan_proxy_on_vsan(vb_transport_input_t *in)
{
    s_vsan(in);
    in->agent_datastore = "vsanDatastore";
    in->agent_datastore_type = "vsan";
}
static void c_vsan_proxy_on_other_vsan(vb_transport_input_t *in)
{
    s_vsan(in);
    in->agent_datastore = "vsanDatastore-b";
    in->agent_datastore_type = "vsan";
}
static void c_vvol(vb_transport_input_t *in)
{
    s_vvol(in);
}
static void c_vvol_linked_clone(vb_transport_input_t *in)
{
    s_vvol(in);
    in->linked_clone = true;
}
static void c_vmfs_linked_clone(vb_transport_input_t *in)
{
    in->linked_clone = true;
}
static void c_nfs_same_host(vb_transport_input_t *in)
{
    s_nfs(in);
}
static void c_nfs_other_host(vb_transport_input_t *in)
{
    s_nfs(in);
    s_agent_elsewhere(in);
}
static void c_nfs41_other_host(vb_transport_input_t *in)
{
    c_nfs_other_host(in);
    in->datastore_type = "NFS41";
}
static void c_vmfs_local(vb_transport_input_t *in)
{
    in->datastore = "local-01";
    in->datastore_lun = NULL;
}
static void c_lun_not_seen(vb_transport_input_t *in)
{
    s_no_lun_view(in);
}
static void c_host_not_mounting(vb_transport_input_t *in)
{
    static const char *const only_esx1[] = {"esx-01"};
    in->datastore_hosts = only_esx1;
    in->datastore_host_count = 1;
    in->agent_host = "esx-03";
    s_no_lun_view(in);
}
static void c_physical_proxy(vb_transport_input_t *in)
{
    in->agent_host = NULL;
    in->agent_datastore = NULL;
    in->agent_datastore_type = NULL;
}
static void c_unknown_type(vb_transport_input_t *in)
{
    in->datastore = "ds-x";
    in->datastore_type = NULL;
    in->datastore_hosts = NULL;
    in->datastore_host_count = 0;
}
static void c_restore_snapshots(vb_transport_input_t *in)
{
    s_restore(in);
    in->vm_has_snapshots = true;
}
static void c_restore_clean(vb_transport_input_t *in)
{
    s_restore(in);
}
static void c_backup_snapshots(vb_transport_input_t *in)
{
    in->vm_has_snapshots = true;
}
static void c_restore_snapshots_vsan(vb_transport_input_t *in)
{
    c_restore_snapshots(in);
    s_vsan(in);
}
static void c_restore_snapshots_no_lun_view(vb_transport_input_t *in)
{
    c_restore_snapshots(in);
    s_no_lun_view(in);
    s_site_encrypted(in);
}
static void c_restore_nfs_same_host(vb_transport_input_t *in)
{
    s_restore(in);
    s_nfs(in);
}
static void c_restore_nfs_other_host_encrypted(vb_transport_input_t *in)
{
    s_restore(in);
    c_nfs_other_host(in);
    s_site_encrypted(in);
}
static void c_site_encryption(vb_transport_input_t *in)
{
    c_nfs_other_host(in);
    s_site_encrypted(in);
}
static void c_host_encryption(vb_transport_input_t *in)
{
    c_nfs_other_host(in);
    in->host_requires_encryption = true;
}
static void c_network_only_agent(vb_transport_input_t *in)
{
    in->agent_transports =
        VB_TRANSPORT_BIT(VB_TRANSPORT_NBDSSL) | VB_TRANSPORT_BIT(VB_TRANSPORT_NBD);
}
static void c_nothing_allowed(vb_transport_input_t *in)
{
    s_vsan(in);
    in->agent_transports =
        VB_TRANSPORT_BIT(VB_TRANSPORT_NBD) | VB_TRANSPORT_BIT(VB_TRANSPORT_HOTADD);
    s_site_encrypted(in);
}
static void c_order_nbd_first(vb_transport_input_t *in)
{
    static const vb_transport_t order[] = {VB_TRANSPORT_NBD, VB_TRANSPORT_NBDSSL};
    in->preference = order;
    in->preference_count = 2;
}
static void c_order_hotadd_first(vb_transport_input_t *in)
{
    static const vb_transport_t order[] = {VB_TRANSPORT_HOTADD, VB_TRANSPORT_SAN,
                                           VB_TRANSPORT_NBDSSL, VB_TRANSPORT_NBD};
    in->preference = order;
    in->preference_count = 4;
}
static void c_order_restore_snapshots_san_only(vb_transport_input_t *in)
{
    static const vb_transport_t order[] = {VB_TRANSPORT_SAN};
    c_restore_snapshots(in);
    in->preference = order;
    in->preference_count = 1;
}

typedef struct {
    const char *name;
    void (*setup)(vb_transport_input_t *in);
    vb_transport_t chosen;
    /* expected sentence for each mode, indexed by vb_transport_t; "" for the chosen mode */
    const char *reason[VB_TRANSPORT_COUNT];
} tcase_t;

#define FB(first)                                                                                  \
    "allowed, but " first                                                                          \
    " comes first in the preference order san:hotadd:nbdssl:nbd; kept as a fallback"
#define SAN_VSAN "SAN is not supported on vsan datastore vsanDatastore"
#define SAN_VVOL "SAN is not supported on VVOL datastore vvol-01"
#define SAN_NFS                                                                                    \
    "SAN is not possible on NFS datastore nfs-01: SAN reads VMFS datastores on a SAN LUN"
#define SAN_NO_VIEW "agent proxy-1 does not see LUN naa.01 of datastore vmfs-01"
#define SAN_SNAP                                                                                   \
    "SAN restore into VM web-01 is refused while it has snapshots: delete the snapshots first or " \
    "restore to a new location"
#define HA_VSAN_VMFS                                                                               \
    "HotAdd of a disk on vSAN datastore vsanDatastore needs a proxy on that vSAN datastore, and "  \
    "agent proxy-1 sits on VMFS datastore vmfs-01 (move the proxy VM to vsanDatastore)"
#define HA_NFS_OTHER                                                                               \
    "HotAdd of a disk on NFS datastore nfs-01 needs a proxy on the VM's own host esx-01, and "     \
    "agent proxy-1 is on esx-02: NFS locks taken from another host would stun the VM"
#define HA_LINKED_VVOL                                                                             \
    "HotAdd is not used for linked clone VM web-01 on vVol datastore vvol-01: opening its disk "   \
    "can leave the proxy VM invalid"
#define NBD_SITE                                                                                   \
    "plain NBD is refused: the site requires encrypted transfers (NoNfcSession=1), use NBDSSL"

static tcase_t s_cases[] = {
    {"base: SAN when the agent sees the LUN",
     c_base,
     VB_TRANSPORT_SAN,
     {"", FB("san"), FB("san"), FB("san")}},
    {"vsan: no SAN, no HotAdd from a proxy off that vSAN",
     c_vsan_proxy_off_vsan,
     VB_TRANSPORT_NBDSSL,
     {SAN_VSAN, HA_VSAN_VMFS, "", FB("nbdssl")}},
    {"vsan: HotAdd from a proxy on the same vSAN",
     c_vsan_proxy_on_vsan,
     VB_TRANSPORT_HOTADD,
     {SAN_VSAN, "", FB("hotadd"), FB("hotadd")}},
    {"vsan: a proxy on another vSAN datastore is not co-located",
     c_vsan_proxy_on_other_vsan,
     VB_TRANSPORT_NBDSSL,
     {SAN_VSAN,
      "HotAdd of a disk on vSAN datastore vsanDatastore needs a proxy on that vSAN datastore, and "
      "agent proxy-1 sits on vsan datastore vsanDatastore-b (move the proxy VM to vsanDatastore)",
      "", FB("nbdssl")}},
    {"vvol: no SAN, HotAdd for a full clone",
     c_vvol,
     VB_TRANSPORT_HOTADD,
     {SAN_VVOL, "", FB("hotadd"), FB("hotadd")}},
    {"vvol: no HotAdd for a linked clone",
     c_vvol_linked_clone,
     VB_TRANSPORT_NBDSSL,
     {SAN_VVOL, HA_LINKED_VVOL, "", FB("nbdssl")}},
    {"vmfs: a linked clone keeps SAN and HotAdd",
     c_vmfs_linked_clone,
     VB_TRANSPORT_SAN,
     {"", FB("san"), FB("san"), FB("san")}},
    {"nfs: no SAN, HotAdd from the VM's own host",
     c_nfs_same_host,
     VB_TRANSPORT_HOTADD,
     {SAN_NFS, "", FB("hotadd"), FB("hotadd")}},
    {"nfs: no HotAdd from another host",
     c_nfs_other_host,
     VB_TRANSPORT_NBDSSL,
     {SAN_NFS, HA_NFS_OTHER, "", FB("nbdssl")}},
    {"nfs41: no HotAdd from another host",
     c_nfs41_other_host,
     VB_TRANSPORT_NBDSSL,
     {"SAN is not possible on NFS41 datastore nfs-01: SAN reads VMFS datastores on a SAN LUN",
      HA_NFS_OTHER, "", FB("nbdssl")}},
    {"vmfs without a LUN: no SAN",
     c_vmfs_local,
     VB_TRANSPORT_HOTADD,
     {"SAN is not possible: VMFS datastore local-01 is not on a SAN LUN", "", FB("hotadd"),
      FB("hotadd")}},
    {"LUN not seen by the agent: no SAN",
     c_lun_not_seen,
     VB_TRANSPORT_HOTADD,
     {SAN_NO_VIEW, "", FB("hotadd"), FB("hotadd")}},
    {"agent host does not mount the datastore: no HotAdd",
     c_host_not_mounting,
     VB_TRANSPORT_NBDSSL,
     {SAN_NO_VIEW, "host esx-03 of agent proxy-1 does not mount datastore vmfs-01", "",
      FB("nbdssl")}},
    {"physical proxy: SAN but no HotAdd",
     c_physical_proxy,
     VB_TRANSPORT_SAN,
     {"", "HotAdd needs a proxy VM, and the host or datastore of agent proxy-1 is unknown",
      FB("san"), FB("san")}},
    {"unknown datastore type: network only",
     c_unknown_type,
     VB_TRANSPORT_NBDSSL,
     {"SAN is not possible: the type of datastore ds-x is unknown",
      "host esx-01 of agent proxy-1 does not mount datastore ds-x", "", FB("nbdssl")}},
    {"restore into a VM with snapshots: no SAN",
     c_restore_snapshots,
     VB_TRANSPORT_HOTADD,
     {SAN_SNAP, "", FB("hotadd"), FB("hotadd")}},
    {"restore into a VM without snapshots: SAN",
     c_restore_clean,
     VB_TRANSPORT_SAN,
     {"", FB("san"), FB("san"), FB("san")}},
    {"backup of a VM with snapshots: SAN",
     c_backup_snapshots,
     VB_TRANSPORT_SAN,
     {"", FB("san"), FB("san"), FB("san")}},
    {"restore with snapshots on vsan: the datastore reason comes first",
     c_restore_snapshots_vsan,
     VB_TRANSPORT_NBDSSL,
     {SAN_VSAN, HA_VSAN_VMFS, "", FB("nbdssl")}},
    {"restore with snapshots: the VM reason comes before the agent's LUN view",
     c_restore_snapshots_no_lun_view,
     VB_TRANSPORT_HOTADD,
     {SAN_SNAP, "", FB("hotadd"), NBD_SITE}},
    {"restore on nfs from the VM's host: HotAdd",
     c_restore_nfs_same_host,
     VB_TRANSPORT_HOTADD,
     {SAN_NFS, "", FB("hotadd"), FB("hotadd")}},
    {"restore on nfs from another host, encrypted site: NBDSSL",
     c_restore_nfs_other_host_encrypted,
     VB_TRANSPORT_NBDSSL,
     {SAN_NFS, HA_NFS_OTHER, "", NBD_SITE}},
    {"site requires encryption: no plain NBD",
     c_site_encryption,
     VB_TRANSPORT_NBDSSL,
     {SAN_NFS, HA_NFS_OTHER, "", NBD_SITE}},
    {"host requires encryption: no plain NBD",
     c_host_encryption,
     VB_TRANSPORT_NBDSSL,
     {SAN_NFS, HA_NFS_OTHER, "",
      "plain NBD is refused: host esx-01 requires encrypted transfers (NoNfcSession=1), use "
      "NBDSSL"}},
    {"agent without SAN and HotAdd support",
     c_network_only_agent,
     VB_TRANSPORT_NBDSSL,
     {"agent proxy-1 does not support SAN", "agent proxy-1 does not support HotAdd", "",
      FB("nbdssl")}},
    {"nothing allowed",
     c_nothing_allowed,
     VB_TRANSPORT_NONE,
     {SAN_VSAN, HA_VSAN_VMFS, "agent proxy-1 does not support NBDSSL", NBD_SITE}},
    {"preference order nbd:nbdssl",
     c_order_nbd_first,
     VB_TRANSPORT_NBD,
     {"SAN is not in the preference order nbd:nbdssl",
      "HotAdd is not in the preference order nbd:nbdssl",
      "allowed, but nbd comes first in the preference order nbd:nbdssl; kept as a fallback", ""}},
    {"preference order hotadd first",
     c_order_hotadd_first,
     VB_TRANSPORT_HOTADD,
     {"allowed, but hotadd comes first in the preference order hotadd:san:nbdssl:nbd; kept as a "
      "fallback",
      "",
      "allowed, but hotadd comes first in the preference order hotadd:san:nbdssl:nbd; kept as a "
      "fallback",
      "allowed, but hotadd comes first in the preference order hotadd:san:nbdssl:nbd; kept as a "
      "fallback"}},
    {"SAN-only order, restore into a VM with snapshots: nothing",
     c_order_restore_snapshots_san_only,
     VB_TRANSPORT_NONE,
     {SAN_SNAP, "HotAdd is not in the preference order san",
      "NBDSSL is not in the preference order san", "NBD is not in the preference order san"}},
};

#define N_CASES (sizeof s_cases / sizeof s_cases[0])

/* Criterion runs each parameter in a fresh process (addresses differ), so the parameter is the
 * row's index, not a pointer into the table. */
ParameterizedTestParameters(transport, rules)
{
    static size_t rows[N_CASES];
    for (size_t i = 0; i < N_CASES; i++)
        rows[i] = i;
    return cr_make_param_array(size_t, rows, N_CASES);
}

ParameterizedTest(size_t *row, transport, rules)
{
    const tcase_t *c = &s_cases[*row];
    vb_transport_input_t in = s_base();
    c->setup(&in);
    vb_transport_decision_t d;
    vb_transport_decide(&in, &d);
    cr_assert_eq(d.chosen, c->chosen, "%s: chose %s, expected %s", c->name,
                 vb_transport_name(d.chosen), vb_transport_name(c->chosen));
    for (int m = 0; m < VB_TRANSPORT_COUNT; m++)
        cr_expect_str_eq(d.verdicts[m].reason, c->reason[m], "%s: %s reason", c->name,
                         vb_transport_name((vb_transport_t)m));
    /* the chosen mode heads the list of allowed modes, and only allowed modes are listed */
    if (c->chosen == VB_TRANSPORT_NONE) {
        cr_expect_eq(d.order_count, 0, "%s", c->name);
    } else {
        cr_assert_gt(d.order_count, 0, "%s", c->name);
        cr_expect_eq(d.order[0], c->chosen, "%s", c->name);
    }
    for (size_t i = 0; i < d.order_count; i++)
        cr_expect(d.verdicts[d.order[i]].allowed, "%s: %s listed but refused", c->name,
                  vb_transport_name(d.order[i]));
    cr_expect_neq(d.why[0], '\0', "%s: no why sentence", c->name);
}

Test(transport, why_chosen_sentences)
{
    vb_transport_input_t in = s_base();
    vb_transport_decision_t d;
    vb_transport_decide(&in, &d);
    cr_assert_str_eq(d.why, "agent proxy-1 sees LUN naa.01 of VMFS datastore vmfs-01 and reads "
                            "the disk directly over the SAN");
    in.op = VB_OP_RESTORE;
    vb_transport_decide(&in, &d);
    cr_assert_str_eq(d.why, "agent proxy-1 sees LUN naa.01 of VMFS datastore vmfs-01 and writes "
                            "the disk directly over the SAN");
    in = s_base();
    c_nfs_same_host(&in);
    vb_transport_decide(&in, &d);
    cr_assert_str_eq(d.why, "host esx-01 of agent proxy-1 mounts datastore nfs-01, so the disk is "
                            "attached to the proxy VM and the agent reads it locally");
    in = s_base();
    c_nfs_other_host(&in);
    vb_transport_decide(&in, &d);
    cr_assert_str_eq(d.why, "encrypted network transfer (NFC over TLS) through host esx-01: the "
                            "best mode this agent may use");
    in = s_base();
    c_order_nbd_first(&in);
    vb_transport_decide(&in, &d);
    cr_assert_str_eq(d.why, "plain network transfer (NFC) through host esx-01: the best mode this "
                            "agent may use, and neither the site nor the host requires encryption");
    in = s_base();
    c_nothing_allowed(&in);
    vb_transport_decide(&in, &d);
    cr_assert_str_eq(d.why, "no transport mode is allowed for this disk on agent proxy-1: every "
                            "mode was refused");
}

Test(transport, fallback_order_follows_preference)
{
    vb_transport_input_t in = s_base();
    c_lun_not_seen(&in);
    vb_transport_decision_t d;
    vb_transport_decide(&in, &d);
    cr_assert_eq(d.order_count, 3);
    cr_assert_eq(d.order[0], VB_TRANSPORT_HOTADD);
    cr_assert_eq(d.order[1], VB_TRANSPORT_NBDSSL);
    cr_assert_eq(d.order[2], VB_TRANSPORT_NBD);
    cr_assert_not(d.verdicts[VB_TRANSPORT_SAN].allowed);
}

Test(transport, pure_same_answer_twice)
{
    vb_transport_input_t in = s_base();
    c_vvol_linked_clone(&in);
    vb_transport_decision_t a, b;
    vb_transport_decide(&in, &a);
    vb_transport_decide(&in, &b);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
}

Test(transport, names_and_ranking)
{
    cr_assert_str_eq(vb_transport_name(VB_TRANSPORT_SAN), "san");
    cr_assert_str_eq(vb_transport_name(VB_TRANSPORT_HOTADD), "hotadd");
    cr_assert_str_eq(vb_transport_name(VB_TRANSPORT_NBDSSL), "nbdssl");
    cr_assert_str_eq(vb_transport_name(VB_TRANSPORT_NBD), "nbd");
    cr_assert_str_eq(vb_transport_name(VB_TRANSPORT_NONE), "none");
    vb_transport_t m;
    cr_assert_eq(vb_transport_from_name("NBDSSL", &m), 0);
    cr_assert_eq(m, VB_TRANSPORT_NBDSSL);
    cr_assert_eq(vb_transport_from_name("file", &m), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "'file' is not a transport mode (san, hotadd, nbdssl, nbd)");
    /* scheduler ranking: SAN > HotAdd > NBDSSL > NBD > nothing */
    cr_assert_lt(vb_transport_compare(VB_TRANSPORT_SAN, VB_TRANSPORT_HOTADD), 0);
    cr_assert_lt(vb_transport_compare(VB_TRANSPORT_HOTADD, VB_TRANSPORT_NBDSSL), 0);
    cr_assert_lt(vb_transport_compare(VB_TRANSPORT_NBDSSL, VB_TRANSPORT_NBD), 0);
    cr_assert_lt(vb_transport_compare(VB_TRANSPORT_NBD, VB_TRANSPORT_NONE), 0);
    cr_assert_eq(vb_transport_compare(VB_TRANSPORT_NBD, VB_TRANSPORT_NBD), 0);
    cr_assert_eq(vb_transport_rank(VB_TRANSPORT_SAN), 0);
    cr_assert_eq(vb_transport_rank(VB_TRANSPORT_NONE), VB_TRANSPORT_COUNT);
    const vb_transport_t *def = vb_transport_default_order();
    for (int i = 0; i < VB_TRANSPORT_COUNT; i++)
        cr_assert_eq(vb_transport_rank(def[i]), i);
}

Test(transport, parse_order)
{
    vb_transport_t order[VB_TRANSPORT_COUNT];
    size_t n = 0;
    cr_assert_eq(vb_transport_parse_order("nbdssl:hotadd", order, &n), 0, "%s", vb_error_msg());
    cr_assert_eq(n, 2);
    cr_assert_eq(order[0], VB_TRANSPORT_NBDSSL);
    cr_assert_eq(order[1], VB_TRANSPORT_HOTADD);
    cr_assert_eq(vb_transport_parse_order("san,hotadd,nbdssl,nbd", order, &n), 0);
    cr_assert_eq(n, 4);
    cr_assert_eq(order[3], VB_TRANSPORT_NBD);

    cr_assert_eq(vb_transport_parse_order("san:file", order, &n), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "transport order 'san:file': 'file' is not a transport mode "
                                     "(san, hotadd, nbdssl, nbd)");
    cr_assert_eq(vb_transport_parse_order("nbd:san:nbd", order, &n), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "transport order 'nbd:san:nbd' names nbd twice");
    cr_assert_eq(vb_transport_parse_order("", order, &n), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "empty"), "%s", vb_error_msg());
    cr_assert_eq(vb_transport_parse_order("san::nbd", order, &n), VB_EINVAL);
    cr_assert_eq(vb_transport_parse_order("san:", order, &n), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "transport order 'san:' ends with a separator");
}

/* ---- routes: the policy chooses only what the provider can do ---- */

static char s_vsfile[] = "vsfile";
static char s_vsfile_uri[] = "vsfile://vcenter:443/?ds=vmfs-01&path=web-01/web-01-flat.vmdk";

/* What the vSphere provider gives for a backup: the file service in the NBDSSL slot only. */
static const vb_route_t s_vsphere_backup[VB_TRANSPORT_COUNT] = {
    [VB_TRANSPORT_NBDSSL] = {s_vsfile, s_vsfile_uri}};
/* ... and for a restore into a VM: nothing. */
static const vb_route_t s_vsphere_restore[VB_TRANSPORT_COUNT] = {{NULL, NULL}};

Test(transport, a_mode_without_a_route_is_refused)
{
    /* every placement rule allows SAN and HotAdd here: the agent is on the VM's host, sees the
     * LUN and its host mounts the datastore; only the provider cannot do them */
    vb_transport_input_t in = s_base();
    in.routes = s_vsphere_backup;
    in.provider = "vSphere";
    vb_transport_decision_t d;
    vb_transport_decide(&in, &d);
    cr_assert_eq(d.chosen, VB_TRANSPORT_NBDSSL);
    cr_assert_str_eq(d.route, "vsfile");
    cr_assert(strstr(d.why, "HTTPS datastore file service"), "%s", d.why);
    cr_assert_null(strstr(d.why, "NFC"), "%s", d.why);
    cr_assert_str_eq(d.verdicts[VB_TRANSPORT_SAN].reason,
                     "the vSphere provider has no SAN route for reading this disk");
    cr_assert_str_eq(d.verdicts[VB_TRANSPORT_HOTADD].reason,
                     "the vSphere provider has no HotAdd route for reading this disk");
    cr_assert_str_eq(d.verdicts[VB_TRANSPORT_NBD].reason,
                     "the vSphere provider has no NBD route for reading this disk");
    cr_assert_eq(d.order_count, 1, "no fallback without a route");
    cr_assert_eq(d.order[0], VB_TRANSPORT_NBDSSL);
    /* a rule about the disk still comes first: the reason is the stronger one */
    s_vsan(&in);
    vb_transport_decide(&in, &d);
    cr_assert_str_eq(d.verdicts[VB_TRANSPORT_SAN].reason,
                     "SAN is not supported on vsan datastore vsanDatastore");
}

static char s_vddk_uri[] = "vddk://u@vcenter:443/?file=%5Bvmfs-01%5D%20web-01/web-01.vmdk";
/* vSphere's VixDiskLib routes: one per mode, for agents that have VDDK. */
static const vb_route_t s_vsphere_vddk[VB_TRANSPORT_COUNT] = {
    [VB_TRANSPORT_SAN] = {(char *)"san", s_vddk_uri},
    [VB_TRANSPORT_HOTADD] = {(char *)"hotadd", s_vddk_uri},
    [VB_TRANSPORT_NBDSSL] = {(char *)"nbdssl", s_vddk_uri},
    [VB_TRANSPORT_NBD] = {(char *)"nbd", s_vddk_uri}};

Test(transport, vddk_routes_only_for_an_agent_with_vddk)
{
    vb_transport_input_t in = s_base();
    in.routes = s_vsphere_backup;
    in.vddk_routes = s_vsphere_vddk;
    in.provider = "vSphere";
    vb_transport_decision_t d;
    /* without vddk_libdir: the file service, and every sentence says why */
    vb_transport_decide(&in, &d);
    cr_assert_eq(d.chosen, VB_TRANSPORT_NBDSSL);
    cr_assert_str_eq(d.route, "vsfile");
    cr_assert_not(d.via_vddk[VB_TRANSPORT_NBDSSL]);
    const char *no_vddk = "agent proxy-1 has no vddk_libdir: VixDiskLib modes unavailable; the "
                          "datastore file service is used";
    cr_assert(strstr(d.why, no_vddk), "%s", d.why);
    cr_assert_str_eq(d.verdicts[VB_TRANSPORT_SAN].reason, no_vddk);
    cr_assert_str_eq(d.verdicts[VB_TRANSPORT_HOTADD].reason, no_vddk);
    cr_assert_str_eq(d.verdicts[VB_TRANSPORT_NBD].reason, no_vddk);
    cr_assert_eq(d.order_count, 1);
    /* with it: every mode through VixDiskLib, placement rules as on the lab */
    in.agent_vddk = true;
    vb_transport_decide(&in, &d);
    cr_assert_eq(d.chosen, VB_TRANSPORT_SAN);
    cr_assert_str_eq(d.route, "san");
    cr_assert_eq(d.order_count, 4);
    for (int m = 0; m < VB_TRANSPORT_COUNT; m++)
        cr_assert(d.via_vddk[m], "mode %d not through VixDiskLib", m);
    /* a physical proxy without the LUN: NBDSSL through VixDiskLib, not the file service */
    in.agent_host = NULL;
    in.agent_datastore = NULL;
    s_no_lun_view(&in);
    vb_transport_decide(&in, &d);
    cr_assert_eq(d.chosen, VB_TRANSPORT_NBDSSL);
    cr_assert_str_eq(d.route, "nbdssl");
    cr_assert(strstr(d.why, "NFC over TLS"), "%s", d.why);
}

Test(transport, a_restore_without_routes_chooses_nothing)
{
    vb_transport_input_t in = s_base();
    s_restore(&in);
    in.routes = s_vsphere_restore;
    in.provider = "vSphere";
    vb_transport_decision_t d;
    vb_transport_decide(&in, &d);
    cr_assert_eq(d.chosen, VB_TRANSPORT_NONE);
    cr_assert_str_eq(d.route, "");
    cr_assert_eq(d.order_count, 0);
    cr_assert_str_eq(d.verdicts[VB_TRANSPORT_NBDSSL].reason,
                     "the vSphere provider has no NBDSSL route for writing into this disk");
    cr_assert_str_eq(d.verdicts[VB_TRANSPORT_HOTADD].reason,
                     "the vSphere provider has no HotAdd route for writing into this disk");
}

Test(transport, a_vsphere_restore_writes_through_vddk_only)
{
    vb_transport_input_t in = s_base();
    s_restore(&in);
    in.routes = s_vsphere_restore;
    in.vddk_routes = s_vsphere_vddk;
    in.provider = "vSphere";
    vb_transport_decision_t d;
    /* no vddk_libdir: nothing writes (the file service only reads), and each mode says so */
    vb_transport_decide(&in, &d);
    cr_assert_eq(d.chosen, VB_TRANSPORT_NONE);
    const char *why = "agent proxy-1 has no vddk_libdir: VixDiskLib modes unavailable; no other "
                      "route writes into the disk (the datastore file service is read-only)";
    for (int m = 0; m < VB_TRANSPORT_COUNT; m++)
        cr_assert_str_eq(d.verdicts[m].reason, why, "mode %d: %s", m, d.verdicts[m].reason);
    /* with VDDK: the restore rules as on the lab, every mode through VixDiskLib */
    in.agent_vddk = true;
    vb_transport_decide(&in, &d);
    cr_assert_eq(d.chosen, VB_TRANSPORT_SAN);
    cr_assert(d.via_vddk[VB_TRANSPORT_SAN]);
    in.vm_has_snapshots = true;
    vb_transport_decide(&in, &d);
    cr_assert_eq(d.chosen, VB_TRANSPORT_HOTADD);
    cr_assert(strstr(d.verdicts[VB_TRANSPORT_SAN].reason, "while it has snapshots"), "%s",
              d.verdicts[VB_TRANSPORT_SAN].reason);
}

Test(transport, lab_routes_keep_their_own_names)
{
    vb_transport_input_t in = s_base();
    vb_transport_decision_t d;
    vb_transport_decide(&in, &d);
    cr_assert_eq(d.chosen, VB_TRANSPORT_SAN);
    cr_assert_str_eq(d.route, "san");
    in.agent_luns = s_lun_other;
    vb_transport_decide(&in, &d);
    cr_assert_str_eq(d.route, "hotadd");
}

Test(transport, unknown_datastore_type_gets_network_modes_only)
{
    /* vSphere's summary.type OTHER: local or unknown storage, even if it sat on a LUN and the
     * agent's host mounted it */
    vb_transport_input_t in = s_base();
    in.datastore = "LocalDS_0";
    in.datastore_type = "OTHER";
    vb_transport_decision_t d;
    vb_transport_decide(&in, &d);
    cr_assert_eq(d.chosen, VB_TRANSPORT_NBDSSL);
    cr_assert_str_eq(d.verdicts[VB_TRANSPORT_SAN].reason,
                     "SAN is not possible on OTHER datastore LocalDS_0: SAN reads VMFS datastores "
                     "on a SAN LUN");
    cr_assert_str_eq(d.verdicts[VB_TRANSPORT_HOTADD].reason,
                     "HotAdd is not used on datastore LocalDS_0 of type OTHER, a kind of storage "
                     "the policy does not know: nothing says a proxy may attach its disks "
                     "safely, so it is read over the network only");
    cr_assert(d.verdicts[VB_TRANSPORT_NBD].allowed);
}
