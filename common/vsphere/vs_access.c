/* vs_access — PrepareForAccess / EndAccess as VixDiskLib does them through vCenter: the
 * AuthorizationManager's DisableMethods / EnableMethods of RelocateVM_Task on the VM, so no
 * Storage vMotion moves its disks while a backup reads them. One source id ("vbak") for both, so
 * the EndAccess of a coordinator that restarted re-enables what an earlier run disabled. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vsphere/vs_internal.h"

#define VS_ACCESS_SOURCE "vbak"
#define VS_ACCESS_METHOD "RelocateVM_Task"

static int s_call(vb_vsphere_t *self, const char *method, const char *vm, const char *who)
{
    if (!self->authorization_manager)
        return vb_error_set(VB_EUNSUPPORTED, "%s has no AuthorizationManager: cannot %s",
                            vb_soap_base_url(self->soap), method);
    char *vm_id = NULL;
    int rc = vb_vs_find_vm(self, vm, &vm_id);
    if (rc != 0)
        return rc;
    vb_buf_t args = {0};
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    rc = vb_buf_put_moref(&args, "entity", "VirtualMachine", vm_id);
    if (rc == 0 && who) /* DisableMethods: DisabledMethodRequest {method, reasonId} */
        rc = vb_buf_puts(&args, "<method><method>" VS_ACCESS_METHOD "</method></method>");
    else if (rc == 0)
        rc = vb_buf_put_elem(&args, "method", VS_ACCESS_METHOD);
    if (rc == 0)
        rc = vb_buf_put_elem(&args, "sourceId", VS_ACCESS_SOURCE);
    if (rc == 0)
        rc = vb_vs_call(self, method, "AuthorizationManager", self->authorization_manager,
                        args.data, &doc, &resp);
    if (rc != 0)
        rc = vb_error_prefix(rc, "%s of VM %s (%s)", method, vm, vm_id);
    else
        VB_LOG_INFO("vsphere", "%s vm=\"%s\" id=%s method=%s who=\"%s\"", method, vm, vm_id,
                    VS_ACCESS_METHOD, who ? who : "");
    vb_xml_doc_destroy(&doc);
    vb_buf_free(&args);
    free(vm_id);
    return rc;
}

int vb_vsphere_prepare_for_access(vb_vsphere_t *self, const char *vm, const char *who)
{
    return s_call(self, "DisableMethods", vm, who ? who : VS_ACCESS_SOURCE);
}

int vb_vsphere_end_access(vb_vsphere_t *self, const char *vm)
{
    return s_call(self, "EnableMethods", vm, NULL);
}
