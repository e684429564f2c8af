/* vs_create — CreateVM_Task: a new VM with empty disks on a datastore (restore to a new VM).
 *
 * Where the VM goes is found from the datastore: the datacenter that holds it (its vmFolder),
 * a host that mounts it (or the one asked for), and the root resource pool of that host's
 * compute resource. The disks are thin, on one paravirtual SCSI controller, with the keys asked
 * for (vCenter numbers a VM's first disks 2000, 2001, ... by unit, as the restore point's keys
 * usually are) and file names vCenter chooses ("[ds]": NAME/NAME.vmdk, NAME/NAME_1.vmdk, ...). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vsphere/vs_internal.h"

#define VS_SCSI_KEY 1000
#define VS_SCSI_UNITS 16 /* unit 7 is the controller's own */

/* The references found for a new VM's place. */
typedef struct {
    const char *ds_name;
    char *ds_ref;
    char **mounts; /* hosts that mount the datastore */
    size_t nmounts;
    const char *host_name; /* asked for; NULL: the first host that mounts the datastore */
    char *host_ref;
    char *compute_ref, *compute_type; /* the host's parent */
    char *pool_ref;
    char *folder_ref; /* the datacenter's vmFolder */
    int matches;
} s_place_t;

static void s_place_free(s_place_t *p)
{
    for (size_t i = 0; i < p->nmounts; i++)
        free(p->mounts[i]);
    free(p->mounts);
    free(p->ds_ref);
    free(p->host_ref);
    free(p->compute_ref);
    free(p->compute_type);
    free(p->pool_ref);
    free(p->folder_ref);
}

static int s_set(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? vb_error_set(VB_ENOMEM, "out of memory") : 0;
}

/* Datastore objects: the one named ds_name and the hosts that mount it. */
static int s_ds_cb(void *ud, const vb_xml_node_t *oc)
{
    s_place_t *p = ud;
    const vb_xml_node_t *name = vb_vs_prop(oc, "name");
    if (!name || strcmp(name->text, p->ds_name) != 0)
        return 0;
    if (p->matches++)
        return 0;
    int rc = s_set(&p->ds_ref, vb_xml_path_text(oc, "obj"));
    const vb_xml_node_t *mounts = vb_vs_prop(oc, "host");
    for (const vb_xml_node_t *m = vb_xml_child(mounts, NULL); rc == 0 && m;
         m = vb_xml_next(m, NULL)) {
        const char *key = vb_xml_path_text(m, "key");
        const char *mounted = vb_xml_path_text(m, "mountInfo/mounted");
        if (!key || (mounted && strcmp(mounted, "false") == 0))
            continue;
        char **grown = realloc(p->mounts, (p->nmounts + 1) * sizeof *grown);
        if (!grown)
            return vb_error_set(VB_ENOMEM, "out of memory");
        p->mounts = grown;
        p->mounts[p->nmounts] = NULL;
        rc = s_set(&p->mounts[p->nmounts++], key);
    }
    return rc;
}

static bool s_mounts(const s_place_t *p, const char *host_ref)
{
    for (size_t i = 0; i < p->nmounts; i++)
        if (strcmp(p->mounts[i], host_ref) == 0)
            return true;
    return false;
}

/* HostSystem objects: the first that mounts the datastore (and has the name asked for). */
static int s_host_cb(void *ud, const vb_xml_node_t *oc)
{
    s_place_t *p = ud;
    const char *ref = vb_xml_path_text(oc, "obj");
    const vb_xml_node_t *name = vb_vs_prop(oc, "name");
    const vb_xml_node_t *parent = vb_vs_prop(oc, "parent");
    if (p->host_ref || !ref || !parent || !s_mounts(p, ref) ||
        (p->host_name && (!name || strcmp(name->text, p->host_name) != 0)))
        return 0;
    int rc = s_set(&p->host_ref, ref);
    if (rc == 0)
        rc = s_set(&p->compute_ref, parent->text);
    if (rc == 0)
        rc = s_set(&p->compute_type, vb_xml_attr(parent, NULL, "type"));
    return rc;
}

static int s_pool_cb(void *ud, const vb_xml_node_t *oc)
{
    const vb_xml_node_t *pool = vb_vs_prop(oc, "resourcePool");
    return pool ? s_set(&((s_place_t *)ud)->pool_ref, pool->text) : 0;
}

/* Datacenter objects: the vmFolder of the one whose datastores include ours. */
static int s_dc_cb(void *ud, const vb_xml_node_t *oc)
{
    s_place_t *p = ud;
    const vb_xml_node_t *list = vb_vs_prop(oc, "datastore");
    const vb_xml_node_t *folder = vb_vs_prop(oc, "vmFolder");
    for (const vb_xml_node_t *d = vb_xml_child(list, NULL); folder && d; d = vb_xml_next(d, NULL))
        if (strcmp(d->text, p->ds_ref) == 0)
            return s_set(&p->folder_ref, folder->text);
    return 0;
}

static int s_find_place(vb_vsphere_t *self, s_place_t *p)
{
    static const char *const ds_types[] = {"Datastore", NULL};
    static const char *const ds_paths[] = {"name,host", NULL};
    static const char *const h_types[] = {"HostSystem", NULL};
    static const char *const h_paths[] = {"name,parent", NULL};
    static const char *const dc_types[] = {"Datacenter", NULL};
    static const char *const dc_paths[] = {"vmFolder,datastore", NULL};
    int rc = vb_vs_retrieve_view(self, ds_types, ds_paths, s_ds_cb, p);
    if (rc == 0 && p->matches == 0)
        return vb_error_set(VB_ENOTFOUND, "no datastore named '%s' on %s", p->ds_name,
                            vb_soap_base_url(self->soap));
    if (rc == 0 && p->matches > 1)
        return vb_error_set(VB_EINVAL, "%d datastores are named '%s'", p->matches, p->ds_name);
    if (rc == 0)
        rc = vb_vs_retrieve_view(self, h_types, h_paths, s_host_cb, p);
    if (rc == 0 && !p->host_ref)
        return p->host_name ? vb_error_set(VB_ENOTFOUND, "host %s does not mount datastore %s",
                                           p->host_name, p->ds_name)
                            : vb_error_set(VB_ENOTFOUND, "no host mounts datastore %s", p->ds_name);
    if (rc == 0 && p->compute_type)
        rc = vb_vs_retrieve_object(self, p->compute_type, p->compute_ref, "resourcePool", s_pool_cb,
                                   p);
    if (rc == 0 && !p->pool_ref)
        return vb_error_set(VB_ENOTFOUND, "the host of datastore %s has no resource pool",
                            p->ds_name);
    if (rc == 0)
        rc = vb_vs_retrieve_view(self, dc_types, dc_paths, s_dc_cb, p);
    if (rc == 0 && !p->folder_ref)
        return vb_error_set(VB_ENOTFOUND, "no datacenter holds datastore %s", p->ds_name);
    return rc;
}

/* One disk's deviceChange: a new thin disk of `capacity` bytes at `unit` of the controller. */
static int s_put_disk(vb_buf_t *b, const char *ds, long key, int unit, uint64_t capacity)
{
    int rc = vb_buf_puts(b, "<deviceChange><operation>add</operation>"
                            "<fileOperation>create</fileOperation>"
                            "<device xsi:type=\"VirtualDisk\">");
    if (rc == 0)
        rc = vb_buf_printf(b, "<key>%ld</key><backing xsi:type=\"VirtualDiskFlatVer2BackingInfo\">",
                           key);
    if (rc == 0)
        rc = vb_buf_puts(b, "<fileName>[");
    if (rc == 0)
        rc = vb_buf_put_escaped(b, ds);
    if (rc == 0)
        rc = vb_buf_printf(b,
                           "]</fileName><diskMode>persistent</diskMode>"
                           "<thinProvisioned>true</thinProvisioned></backing>"
                           "<controllerKey>%d</controllerKey><unitNumber>%d</unitNumber>"
                           "<capacityInKB>%" PRIu64 "</capacityInKB>"
                           "<capacityInBytes>%" PRIu64 "</capacityInBytes></device>"
                           "</deviceChange>",
                           VS_SCSI_KEY, unit, (capacity + 1023) / 1024, capacity);
    return rc;
}

/* A disk key as vCenter spells it (a number); 2000 + position when it is not one. */
static long s_disk_key(const vb_inv_new_disk_t *d, size_t i)
{
    char *end = NULL;
    long k = d->key ? strtol(d->key, &end, 10) : 0;
    return d->key && end && *end == '\0' && k > 0 && k < 1000000 ? k : 2000 + (long)i;
}

static int s_config(const char *name, const char *ds, const vb_inv_new_disk_t *disks, size_t n,
                    vb_buf_t *b)
{
    int rc = vb_buf_puts(b, "<config>");
    if (rc == 0)
        rc = vb_buf_put_elem(b, "name", name);
    if (rc == 0)
        rc = vb_buf_puts(b, "<guestId>otherGuest64</guestId><files><vmPathName>[");
    if (rc == 0)
        rc = vb_buf_put_escaped(b, ds);
    if (rc == 0)
        rc = vb_buf_printf(b,
                           "]</vmPathName></files><deviceChange><operation>add</operation>"
                           "<device xsi:type=\"ParaVirtualSCSIController\"><key>%d</key>"
                           "<busNumber>0</busNumber><sharedBus>noSharing</sharedBus></device>"
                           "</deviceChange>",
                           VS_SCSI_KEY);
    int unit = 0;
    for (size_t i = 0; rc == 0 && i < n; i++, unit++) {
        if (unit == 7)
            unit++;
        rc = s_put_disk(b, ds, s_disk_key(&disks[i], i), unit, disks[i].capacity);
    }
    if (rc == 0)
        rc = vb_buf_puts(b, "</config>");
    return rc;
}

int vb_vsphere_create_vm(vb_vsphere_t *self, const char *name, const char *host,
                         const char *datastore, const vb_inv_new_disk_t *disks, size_t n)
{
    if (n > VS_SCSI_UNITS - 1)
        return vb_error_set(VB_EUNSUPPORTED,
                            "a new VM gets its disks on one SCSI controller: at most %d, not %zu",
                            VS_SCSI_UNITS - 1, n);
    char *id = NULL;
    int rc = vb_vs_find_vm(self, name, &id);
    free(id);
    if (rc == 0)
        return vb_error_set(VB_EEXISTS, "a VM named %s exists already on %s", name,
                            vb_soap_base_url(self->soap));
    if (rc != VB_ENOTFOUND)
        return rc;
    s_place_t p = {.ds_name = datastore, .host_name = host};
    vb_buf_t args = {0};
    char *vm_ref = NULL, what[512];
    snprintf(what, sizeof what, "creating VM %s on datastore %s", name, datastore);
    rc = s_find_place(self, &p);
    if (rc == 0)
        rc = s_config(name, datastore, disks, n, &args);
    if (rc == 0)
        rc = vb_buf_put_moref(&args, "pool", "ResourcePool", p.pool_ref);
    if (rc == 0)
        rc = vb_buf_put_moref(&args, "host", "HostSystem", p.host_ref);
    if (rc == 0)
        rc =
            vb_vs_run_task(self, "CreateVM_Task", "Folder", p.folder_ref, args.data, what, &vm_ref);
    if (rc == 0)
        VB_LOG_INFO("vsphere", "vm created name=\"%s\" id=%s datastore=\"%s\" host=%s disks=%zu",
                    name, vm_ref ? vm_ref : "?", datastore, p.host_ref, n);
    free(vm_ref);
    vb_buf_free(&args);
    s_place_free(&p);
    return rc;
}
