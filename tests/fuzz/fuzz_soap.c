/* fuzz_soap — what a vCenter (or anything answering on its address) sends back: the SOAP
 * envelope and fault parser, then what each answer feeds — the RetrievePropertiesEx result walk
 * into the inventory builder, a TaskInfo, a DiskChangeInfo, a First Class Disk (RetrieveVStorageObject)
 * — and a server thumbprint. The first
 * byte picks the entry point; the seeds are answers of the simulator (VBAK_SOAP_TRACE_DIR). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inventory/inventory.h"
#include "vsphere/soap.h"
#include "vsphere/vs_internal.h"
#include "vsphere/vsphere.h"
#include "vsphere/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_inventory(const vb_xml_node_t *resp)
{
    vb_vs_builder_t *b = vb_vs_builder_new();
    char *token = NULL;
    if (!b)
        return;
    if (vb_vs_walk_result(vb_xml_child(resp, "returnval"), vb_vs_builder_add, b, &token) == 0) {
        vb_inventory_t *inv = NULL;
        if (vb_vs_builder_finish(b, &inv) == 0)
            vb_inventory_free(&inv);
    }
    free(token);
    vb_vs_builder_destroy(&b);
}

static int s_task_info_of(void *ud, const vb_xml_node_t *object_content)
{
    (void)ud;
    bool done = false;
    char *result = NULL;
    const vb_xml_node_t *info = vb_vs_prop(object_content, "info");
    if (info && vb_vs_task_info_parse(info, "task", &done, &result) == 0)
        free(result);
    return 0;
}

static void s_task_info(const vb_xml_node_t *resp)
{
    char *token = NULL;
    if (vb_vs_walk_result(vb_xml_child(resp, "returnval"), s_task_info_of, NULL, &token) == 0)
        free(token);
}

static void s_changed_areas(const vb_xml_node_t *resp)
{
    vb_extent_list_t ext = {0};
    uint64_t start = 0, length = 0;
    (void)vb_vsphere_parse_disk_change_info(vb_xml_child(resp, "returnval"), &ext, &start, &length);
    vb_extent_list_free(&ext);
}

static void s_fcd(const vb_xml_node_t *resp)
{
    vb_vs_fcd_t fcd = {0};
    if (vb_vs_fcd_parse(resp, "fcd-id", "datastore-1", &fcd) == 0)
        vb_vs_fcd_clear(&fcd);
}

/* What each answer is read as, by the method it answers. */
static const struct {
    const char *method;
    void (*read)(const vb_xml_node_t *resp);
} s_answers[] = {
    {"RetrievePropertiesEx", s_inventory},
    {"ContinueRetrievePropertiesEx", s_inventory},
    {"RetrievePropertiesEx", s_task_info},
    {"QueryChangedDiskAreas", s_changed_areas},
    {"Login", NULL},
    {"CreateSnapshot_Task", NULL},
    {"RetrieveVStorageObject", s_fcd},
};
#define S_ANSWERS (sizeof s_answers / sizeof s_answers[0])

static void s_thumbprint(const uint8_t *data, size_t size)
{
    char text[256];
    unsigned char sha[32], again[32];
    char back[96];
    if (size >= sizeof text)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    if (vb_soap_parse_thumbprint(text, sha) != 0)
        return;
    vb_soap_format_thumbprint(sha, back);
    if (vb_soap_parse_thumbprint(back, again) != 0 || memcmp(sha, again, 32) != 0)
        abort(); /* what is printed must parse back to the same bytes */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t mode = data[0] % (S_ANSWERS + 1);
    data++, size--;
    if (mode == S_ANSWERS) {
        s_thumbprint(data, size);
        return 0;
    }
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    vb_soap_fault_t fault = {0};
    if (vb_soap_parse((const char *)data, size, 200, s_answers[mode].method, &doc, &resp, &fault) ==
            0 &&
        s_answers[mode].read)
        s_answers[mode].read(resp);
    vb_soap_fault_clear(&fault);
    vb_xml_doc_destroy(&doc);
    return 0;
}
