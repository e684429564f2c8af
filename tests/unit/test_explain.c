/* explain: the decision table over a small site built in code that mirrors the lab's default
 * site (VMFS on a LUN, NFS, vSAN, vVol with a linked clone, a VM with a snapshot, a host that
 * requires encryption). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/explain.h"

static char *s_hosts12[] = {"esx-01", "esx-02"};
static char *s_hosts3[] = {"esx-03"};
static char *s_lun01[] = {"naa.01"};
static char *s_snapshots[] = {"before-upgrade"};

static vb_inv_datastore_t s_datastores[] = {
    {.name = "vmfs-01", .type = "VMFS", .lun = "naa.01", .hosts = s_hosts12, .host_count = 2},
    {.name = "nfs-01", .type = "NFS", .hosts = s_hosts12, .host_count = 2},
    {.name = "vsanDatastore", .type = "vsan", .hosts = s_hosts12, .host_count = 2},
    {.name = "vvol-01", .type = "VVOL", .hosts = s_hosts12, .host_count = 2},
    {.name = "local-03", .type = "VMFS", .hosts = s_hosts3, .host_count = 1},
};

static vb_inv_host_t s_hosts[] = {
    {.name = "esx-01"},
    {.name = "esx-02"},
    {.name = "esx-03", .require_encryption = true},
};

static vb_inv_disk_t s_web_disks[] = {
    {.key = "2000", .name = "Hard disk 1", .datastore = "vmfs-01"},
    {.key = "2001", .name = "Hard disk 2", .datastore = "nfs-01"},
};
static vb_inv_disk_t s_db_disks[] = {
    {.key = "2000", .name = "Hard disk 1", .datastore = "vsanDatastore"}};
static vb_inv_disk_t s_clone_disks[] = {{.key = "2000",
                                         .name = "Hard disk 1",
                                         .datastore = "vvol-01",
                                         .parent = "[vvol-01] golden/golden.vmdk"}};
static vb_inv_disk_t s_sec_disks[] = {
    {.key = "2000", .name = "Hard disk 1", .datastore = "local-03"}};

static vb_inv_vm_t s_vms[] = {
    {.name = "web-01",
     .host = "esx-01",
     .snapshots = s_snapshots,
     .snapshot_count = 1,
     .disks = s_web_disks,
     .disk_count = 2},
    {.name = "db-01", .host = "esx-02", .disks = s_db_disks, .disk_count = 1},
    {.name = "clone-01",
     .host = "esx-01",
     .linked_clone = true,
     .disks = s_clone_disks,
     .disk_count = 1},
    {.name = "sec-01", .host = "esx-03", .disks = s_sec_disks, .disk_count = 1},
};

static vb_inv_proxy_t s_proxies[] = {
    {.name = "proxy-1", .host = "esx-01", .datastore = "vmfs-01", .luns = s_lun01, .lun_count = 1},
    {.name = "proxy-2", .host = "esx-02", .datastore = "vsanDatastore"},
    {.name = "proxy-3", .host = "esx-03", .datastore = "local-03"},
};

static vb_inventory_t s_inv = {
    .datastores = s_datastores,
    .datastore_count = 5,
    .hosts = s_hosts,
    .host_count = 3,
    .vms = s_vms,
    .vm_count = 4,
    .proxies = s_proxies,
    .proxy_count = 3,
};

static vb_agent_facts_t s_agents[3];

/* The routes a lab provider gives every disk: each mode by its own name, for both operations. */
static char s_mode_names[VB_TRANSPORT_COUNT][8] = {"san", "hotadd", "nbdssl", "nbd"};
static char s_lab_uri[] = "lab://disk";

static void s_lab_routes(vb_inv_disk_t *d)
{
    for (int op = 0; op < 2; op++)
        for (int m = 0; m < VB_TRANSPORT_COUNT; m++)
            d->routes[op][m] = (vb_route_t){s_mode_names[m], s_lab_uri};
}

static void s_setup(void)
{
    for (size_t i = 0; i < 3; i++)
        s_agents[i] = vb_agent_facts_from_proxy(&s_proxies[i]);
    for (size_t v = 0; v < s_inv.vm_count; v++)
        for (size_t d = 0; d < s_inv.vms[v].disk_count; d++)
            s_lab_routes(&s_inv.vms[v].disks[d]);
    s_inv.provider = "lab";
}

static json_t *s_explain(const char *vm, const char *agent, vb_transport_op_t op)
{
    vb_explain_request_t req = {.vm = vm, .agent = agent, .op = op};
    json_t *rows = NULL;
    cr_assert_eq(vb_explain_build(&s_inv, s_agents, 3, &req, &rows), 0, "%s", vb_error_msg());
    cr_assert(json_is_array(rows));
    return rows;
}

/* The row for disk × agent, or fails. */
static json_t *s_row(json_t *rows, const char *disk, const char *agent)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        if (!strcmp(json_string_value(json_object_get(row, "disk")), disk) &&
            !strcmp(json_string_value(json_object_get(row, "agent")), agent))
            return row;
    }
    cr_assert_fail("no row for %s on %s", disk, agent);
    return NULL;
}

static const char *s_chosen(json_t *row)
{
    json_t *c = json_object_get(row, "chosen");
    return json_is_null(c) ? NULL : json_string_value(c);
}

/* The reason given for `mode` in the row's refused list, or NULL when not listed. */
static const char *s_reason(json_t *row, const char *mode)
{
    size_t i;
    json_t *entry;
    json_array_foreach(json_object_get(row, "refused"), i, entry)
    {
        if (!strcmp(json_string_value(json_object_get(entry, "mode")), mode))
            return json_string_value(json_object_get(entry, "reason"));
    }
    return NULL;
}

static bool s_fallback(json_t *row, const char *mode)
{
    size_t i;
    json_t *entry;
    json_array_foreach(json_object_get(row, "refused"), i, entry)
    {
        if (!strcmp(json_string_value(json_object_get(entry, "mode")), mode))
            return json_is_true(json_object_get(entry, "fallback"));
    }
    cr_assert_fail("%s not listed", mode);
    return false;
}

TestSuite(explain, .init = s_setup);

Test(explain, row_shape_one_per_disk_and_agent)
{
    json_t *rows = s_explain("web-01", NULL, VB_OP_BACKUP);
    cr_assert_eq(json_array_size(rows), 2 * 3);
    json_t *row = s_row(rows, "2000", "proxy-1");
    cr_assert_str_eq(json_string_value(json_object_get(row, "vm")), "web-01");
    /* disks are named by key, as jobs name them; the display name goes along */
    cr_assert_str_eq(json_string_value(json_object_get(row, "disk")), "2000");
    cr_assert_str_eq(json_string_value(json_object_get(row, "disk_key")), "2000");
    cr_assert_str_eq(json_string_value(json_object_get(row, "disk_name")), "Hard disk 1");
    cr_assert_str_eq(json_string_value(json_object_get(row, "route")), "san");
    cr_assert_str_eq(json_string_value(json_object_get(row, "datastore")), "vmfs-01");
    cr_assert_str_eq(json_string_value(json_object_get(row, "operation")), "backup");
    cr_assert_str_eq(s_chosen(row), "san");
    cr_assert_str_eq(json_string_value(json_object_get(row, "why")),
                     "agent proxy-1 sees LUN naa.01 of VMFS datastore vmfs-01 and reads the disk "
                     "directly over the SAN");
    /* every mode not chosen is listed once, with a reason */
    json_t *refused = json_object_get(row, "refused");
    cr_assert_eq(json_array_size(refused), 3);
    cr_assert_null(s_reason(row, "san"));
    cr_assert(s_fallback(row, "hotadd"));
    cr_assert(s_fallback(row, "nbdssl"));
    cr_assert(s_fallback(row, "nbd"));
    json_t *order = json_object_get(row, "order");
    cr_assert_eq(json_array_size(order), 4);
    cr_assert_str_eq(json_string_value(json_array_get(order, 0)), "san");
    cr_assert_str_eq(json_string_value(json_array_get(order, 3)), "nbd");
    json_decref(rows);
}

Test(explain, refuses_san_on_vsan_and_vvol)
{
    json_t *rows = s_explain("db-01", NULL, VB_OP_BACKUP);
    for (int a = 1; a <= 3; a++) {
        char agent[16];
        snprintf(agent, sizeof agent, "proxy-%d", a);
        json_t *row = s_row(rows, "2000", agent);
        cr_assert_str_eq(s_reason(row, "san"),
                         "SAN is not supported on vsan datastore vsanDatastore");
        cr_assert_not(s_fallback(row, "san"));
    }
    json_decref(rows);

    rows = s_explain("clone-01", "proxy-1", VB_OP_BACKUP);
    cr_assert_eq(json_array_size(rows), 1);
    cr_assert_str_eq(s_reason(json_array_get(rows, 0), "san"),
                     "SAN is not supported on VVOL datastore vvol-01");
    json_decref(rows);
}

Test(explain, refuses_hotadd_for_vsan_vm_from_proxy_off_that_vsan)
{
    json_t *rows = s_explain("db-01", NULL, VB_OP_BACKUP);
    json_t *row = s_row(rows, "2000", "proxy-1");
    cr_assert_str_eq(s_reason(row, "hotadd"),
                     "HotAdd of a disk on vSAN datastore vsanDatastore needs a proxy on that vSAN "
                     "datastore, and agent proxy-1 sits on VMFS datastore vmfs-01 (move the proxy "
                     "VM to vsanDatastore)");
    cr_assert_str_eq(s_chosen(row), "nbdssl");
    /* the proxy on the vSAN datastore gets HotAdd */
    row = s_row(rows, "2000", "proxy-2");
    cr_assert_str_eq(s_chosen(row), "hotadd");
    json_decref(rows);
}

Test(explain, refuses_hotadd_for_vvol_linked_clone)
{
    json_t *rows = s_explain("clone-01", NULL, VB_OP_BACKUP);
    cr_assert_eq(json_array_size(rows), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *row = json_array_get(rows, i);
        cr_assert_str_eq(s_reason(row, "hotadd"),
                         "HotAdd is not used for linked clone VM clone-01 on vVol datastore "
                         "vvol-01: opening its disk can leave the proxy VM invalid");
        cr_assert_not(s_fallback(row, "hotadd"));
    }
    json_decref(rows);
}

Test(explain, refuses_plain_nbd_where_host_requires_encryption)
{
    json_t *rows = s_explain("sec-01", NULL, VB_OP_BACKUP);
    for (size_t i = 0; i < json_array_size(rows); i++)
        cr_assert_str_eq(s_reason(json_array_get(rows, i), "nbd"),
                         "plain NBD is refused: host esx-03 requires encrypted transfers "
                         "(NoNfcSession=1), use NBDSSL");
    /* proxy-3 sits on the same host and datastore: HotAdd */
    cr_assert_str_eq(s_chosen(s_row(rows, "2000", "proxy-3")), "hotadd");
    cr_assert_str_eq(s_chosen(s_row(rows, "2000", "proxy-1")), "nbdssl");
    json_decref(rows);
}

Test(explain, refuses_plain_nbd_where_site_requires_encryption)
{
    s_inv.require_encryption = true;
    json_t *rows = s_explain("web-01", "proxy-2", VB_OP_BACKUP);
    json_t *row = s_row(rows, "2001", "proxy-2");
    cr_assert_str_eq(s_reason(row, "nbd"), "plain NBD is refused: the site requires encrypted "
                                           "transfers (NoNfcSession=1), use NBDSSL");
    cr_assert_not(s_fallback(row, "nbd"));
    json_decref(rows);
}

Test(explain, refuses_san_restore_into_vm_with_snapshots)
{
    json_t *rows = s_explain("web-01", "proxy-1", VB_OP_RESTORE);
    json_t *row = s_row(rows, "2000", "proxy-1");
    cr_assert_str_eq(json_string_value(json_object_get(row, "operation")), "restore");
    cr_assert_str_eq(s_reason(row, "san"),
                     "SAN restore into VM web-01 is refused while it has snapshots: delete the "
                     "snapshots first or restore to a new location");
    cr_assert_str_eq(s_chosen(row), "hotadd");
    json_decref(rows);
    /* the same VM backs up over SAN */
    rows = s_explain("web-01", "proxy-1", VB_OP_BACKUP);
    cr_assert_str_eq(s_chosen(s_row(rows, "2000", "proxy-1")), "san");
    json_decref(rows);
}

Test(explain, nfs_hotadd_only_from_the_vms_host)
{
    json_t *rows = s_explain("web-01", NULL, VB_OP_BACKUP);
    cr_assert_str_eq(s_chosen(s_row(rows, "2001", "proxy-1")), "hotadd");
    json_t *row = s_row(rows, "2001", "proxy-2");
    cr_assert_str_eq(s_reason(row, "hotadd"),
                     "HotAdd of a disk on NFS datastore nfs-01 needs a proxy on the VM's own host "
                     "esx-01, and agent proxy-2 is on esx-02: NFS locks taken from another host "
                     "would stun the VM");
    json_decref(rows);
}

Test(explain, chosen_is_null_when_nothing_is_allowed)
{
    static const char *const no_luns[] = {NULL};
    vb_agent_facts_t agent = {.name = "phys-1",
                              .luns = no_luns,
                              .lun_count = 0,
                              .transports = VB_TRANSPORT_BIT(VB_TRANSPORT_NBD)};
    vb_explain_request_t req = {.vm = "sec-01", .op = VB_OP_BACKUP};
    json_t *rows = NULL;
    cr_assert_eq(vb_explain_build(&s_inv, &agent, 1, &req, &rows), 0, "%s", vb_error_msg());
    json_t *row = json_array_get(rows, 0);
    cr_assert(json_is_null(json_object_get(row, "chosen")));
    cr_assert_eq(json_array_size(json_object_get(row, "refused")), 4);
    cr_assert_eq(json_array_size(json_object_get(row, "order")), 0);
    cr_assert_str_eq(s_reason(row, "nbdssl"), "agent phys-1 does not support NBDSSL");
    cr_assert_str_eq(s_reason(row, "hotadd"),
                     "HotAdd needs a proxy VM, and the host or datastore of agent phys-1 is "
                     "unknown");
    json_decref(rows);
}

Test(explain, a_proxy_vm_in_the_inventory_places_the_agent)
{
    /* the agent says it runs in VM db-01 (by its id): db-01's host and datastore are where it
     * is, whatever its agent.conf host and datastore say; an id the inventory lacks changes
     * nothing */
    s_vms[1].id = "vm-7";
    vb_agent_facts_t agent = {.name = "vm-proxy",
                              .host = "esx-01",
                              .datastore = "vmfs-01",
                              .transports = VB_TRANSPORT_ALL,
                              .proxy_vm = "vm-7"};
    vb_explain_request_t req = {.vm = "db-01", .op = VB_OP_BACKUP};
    json_t *rows = NULL;
    cr_assert_eq(vb_explain_build(&s_inv, &agent, 1, &req, &rows), 0, "%s", vb_error_msg());
    cr_assert_str_eq(s_chosen(json_array_get(rows, 0)), "hotadd");
    json_decref(rows);
    agent.proxy_vm = "vm-404";
    cr_assert_eq(vb_explain_build(&s_inv, &agent, 1, &req, &rows), 0, "%s", vb_error_msg());
    cr_assert_str_eq(s_reason(json_array_get(rows, 0), "hotadd"),
                     "HotAdd of a disk on vSAN datastore vsanDatastore needs a proxy on that "
                     "vSAN datastore, and agent vm-proxy sits on VMFS datastore vmfs-01 (move the "
                     "proxy VM to vsanDatastore)");
    json_decref(rows);
    s_vms[1].id = NULL;
}

Test(explain, preference_order_is_passed_through)
{
    vb_transport_t order[VB_TRANSPORT_COUNT];
    size_t n = 0;
    cr_assert_eq(vb_transport_parse_order("nbdssl:nbd", order, &n), 0);
    vb_explain_request_t req = {.vm = "web-01",
                                .agent = "proxy-1",
                                .op = VB_OP_BACKUP,
                                .preference = order,
                                .preference_count = n};
    json_t *rows = NULL;
    cr_assert_eq(vb_explain_build(&s_inv, s_agents, 3, &req, &rows), 0, "%s", vb_error_msg());
    json_t *row = s_row(rows, "2000", "proxy-1");
    cr_assert_str_eq(s_chosen(row), "nbdssl");
    cr_assert_str_eq(s_reason(row, "san"), "SAN is not in the preference order nbdssl:nbd");
    json_decref(rows);
}

Test(explain, errors_name_what_was_not_found)
{
    vb_explain_request_t req = {.vm = "nope", .op = VB_OP_BACKUP};
    json_t *rows = NULL;
    cr_assert_eq(vb_explain_build(&s_inv, s_agents, 3, &req, &rows), VB_ENOTFOUND);
    cr_assert_str_eq(vb_error_msg(), "VM 'nope' is not in the inventory");
    cr_assert_null(rows);
    req.vm = "web-01";
    req.agent = "proxy-9";
    cr_assert_eq(vb_explain_build(&s_inv, s_agents, 3, &req, &rows), VB_ENOTFOUND);
    cr_assert_str_eq(vb_error_msg(),
                     "agent 'proxy-9' is not known (known agents: proxy-1, proxy-2, proxy-3)");
    req.agent = NULL;
    cr_assert_eq(vb_explain_build(&s_inv, s_agents, 0, &req, &rows), VB_ENOTFOUND);
    cr_assert_str_eq(vb_error_msg(), "no agents are registered: explain needs at least one agent");
    cr_assert_null(rows);
}

Test(explain, unknown_datastore_is_refused_not_crashed)
{
    vb_inv_disk_t disk = {.key = "2000", .name = "Hard disk 1", .datastore = "gone-ds"};
    s_lab_routes(&disk);
    vb_inv_vm_t vm = {.name = "orphan", .host = "esx-09", .disks = &disk, .disk_count = 1};
    vb_inventory_t inv = s_inv;
    inv.vms = &vm;
    inv.vm_count = 1;
    vb_explain_request_t req = {.vm = "orphan", .agent = "proxy-1", .op = VB_OP_BACKUP};
    json_t *rows = NULL;
    cr_assert_eq(vb_explain_build(&inv, s_agents, 3, &req, &rows), 0, "%s", vb_error_msg());
    json_t *row = json_array_get(rows, 0);
    cr_assert_str_eq(s_chosen(row), "nbdssl");
    cr_assert_str_eq(s_reason(row, "san"),
                     "SAN is not possible: the type of datastore gone-ds is unknown");
    cr_assert_str_eq(s_reason(row, "hotadd"),
                     "host esx-01 of agent proxy-1 does not mount datastore gone-ds");
    json_decref(rows);
}

Test(explain, text_table)
{
    json_t *rows = s_explain("clone-01", "proxy-1", VB_OP_BACKUP);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    vb_explain_print(f, rows);
    fclose(f);
    const char *want =
        "clone-01 / disk 2000 \"Hard disk 1\" on vvol-01 / agent proxy-1 (backup)\n"
        "  chosen    nbdssl   encrypted network transfer (NFC over TLS) through host esx-01: the "
        "best mode this agent may use\n"
        "  refused   san      SAN is not supported on VVOL datastore vvol-01\n"
        "  refused   hotadd   HotAdd is not used for linked clone VM clone-01 on vVol datastore "
        "vvol-01: opening its disk can leave the proxy VM invalid\n"
        "  fallback  nbd      allowed, but nbdssl comes first in the preference order "
        "san:hotadd:nbdssl:nbd; kept as a fallback\n";
    cr_assert_str_eq(text, want);
    free(text);
    json_decref(rows);
}

Test(explain, text_table_tolerates_missing_fields)
{
    json_t *rows = json_pack("[{s:s, s:n}]", "vm", "x", "chosen");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    vb_explain_print(f, rows);
    fclose(f);
    cr_assert_str_eq(text, "x / disk ? on ? / agent ? (?)\n  chosen    none     ?\n");
    free(text);
    json_decref(rows);
}

/* A vSphere VM: its provider reads disks over the datastore file service only and writes none.
 * Agent proxy-1 sits on the VM's host, sees the LUN and mounts the datastore: every placement
 * rule would allow SAN and HotAdd, and still neither is chosen. */
Test(explain, vsphere_routes_are_what_the_provider_can_do)
{
    static char vsfile[] = "vsfile", uri[] = "vsfile://vc:443/?ds=vmfs-01&path=vs/vs-flat.vmdk";
    vb_inv_disk_t disk = {.key = "2000", .name = "Hard disk 1", .datastore = "vmfs-01"};
    disk.routes[VB_OP_BACKUP][VB_TRANSPORT_NBDSSL] = (vb_route_t){vsfile, uri};
    vb_inv_vm_t vm = {.name = "vs-01", .host = "esx-01", .disks = &disk, .disk_count = 1};
    vb_inventory_t inv = s_inv;
    inv.vms = &vm;
    inv.vm_count = 1;
    inv.provider = "vSphere";
    vb_explain_request_t req = {.vm = "vs-01", .agent = "proxy-1", .op = VB_OP_BACKUP};
    json_t *rows = NULL;
    cr_assert_eq(vb_explain_build(&inv, s_agents, 3, &req, &rows), 0, "%s", vb_error_msg());
    json_t *row = s_row(rows, "2000", "proxy-1");
    cr_assert_str_eq(s_chosen(row), "nbdssl");
    cr_assert_str_eq(json_string_value(json_object_get(row, "route")), "vsfile");
    cr_assert(
        strstr(json_string_value(json_object_get(row, "why")), "HTTPS datastore file service"));
    cr_assert_str_eq(s_reason(row, "hotadd"),
                     "the vSphere provider has no HotAdd route for reading this disk");
    cr_assert_str_eq(s_reason(row, "san"),
                     "the vSphere provider has no SAN route for reading this disk");
    cr_assert_not(s_fallback(row, "nbd"));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    vb_explain_print(f, rows);
    fclose(f);
    cr_assert(strstr(text, "vs-01 / disk 2000 \"Hard disk 1\" on vmfs-01 / agent proxy-1 (backup)\n"
                           "  chosen    nbdssl   route vsfile: encrypted network transfer over "
                           "the HTTPS datastore file service"),
              "%s", text);
    free(text);
    json_decref(rows);

    req.op = VB_OP_RESTORE;
    cr_assert_eq(vb_explain_build(&inv, s_agents, 3, &req, &rows), 0, "%s", vb_error_msg());
    row = s_row(rows, "2000", "proxy-1");
    cr_assert_null(s_chosen(row), "a restore into a vSphere VM has no route");
    cr_assert(json_is_null(json_object_get(row, "route")));
    cr_assert_str_eq(s_reason(row, "nbdssl"),
                     "the vSphere provider has no NBDSSL route for writing into this disk");
    json_decref(rows);
}

Test(explain, warns_when_the_agents_vddk_does_not_support_the_server_version)
{
    /* VDDK 8.0 supports vSphere 6.7 through 9.0: against 6.5 every row of that agent warns;
     * against 7.0.3 none does; an agent without VDDK never does */
    vb_agent_facts_t agents[2] = {{.name = "vddk-8",
                                   .host = "esx-01",
                                   .datastore = "vmfs-01",
                                   .transports = VB_TRANSPORT_ALL,
                                   .vddk = true,
                                   .vddk_version = "8.0.1"},
                                  {.name = "no-vddk",
                                   .host = "esx-01",
                                   .datastore = "vmfs-01",
                                   .transports = VB_TRANSPORT_ALL,
                                   .vddk_version = "8.0.1"}};
    vb_explain_request_t req = {.vm = "web-01", .op = VB_OP_BACKUP, .server_version = "6.5"};
    json_t *rows = NULL;
    cr_assert_eq(vb_explain_build(&s_inv, agents, 2, &req, &rows), 0, "%s", vb_error_msg());
    cr_assert_eq(json_array_size(rows), 4);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *w = json_string_value(json_object_get(row, "warning"));
        if (i % 2 == 1) {
            cr_expect_null(w, "an agent without VDDK warned: %s", w);
            continue;
        }
        cr_expect_str_eq(w, "agent vddk-8: VDDK 8.0.1 does not support vSphere 6.5: VDDK 8.0 "
                            "supports vSphere 6.7 through 9.0 (N-2 to N+1); install a VDDK "
                            "release for vSphere 6.5 on this proxy");
    }
    json_decref(rows);
    req.server_version = "7.0.3.0";
    cr_assert_eq(vb_explain_build(&s_inv, agents, 2, &req, &rows), 0, "%s", vb_error_msg());
    json_array_foreach(rows, i, row) cr_expect_null(json_object_get(row, "warning"));
    json_decref(rows);
}
