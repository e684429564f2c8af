/* vSphere provider: XML, SOAP faults, inventory building and changed-area parsing, from canned
 * answers shaped as the vSphere Web Services API reference describes them. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vsphere/soap.h"
#include "vsphere/vs_internal.h"
#include "vsphere/vsphere.h"
#include "vsphere/xml.h"

#define ENV_OPEN(xsi_prefix)                                                                       \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"                                                   \
    "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" "               \
    "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "                                              \
    "xmlns:" xsi_prefix "=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>"
#define ENV_CLOSE "</soapenv:Body></soapenv:Envelope>"

static const vb_xml_node_t *parse_ok(const char *xml, const char *method, vb_xml_doc_t **doc)
{
    const vb_xml_node_t *resp = NULL;
    vb_soap_fault_t fault = {0};
    int rc = vb_soap_parse(xml, strlen(xml), 200, method, doc, &resp, &fault);
    cr_assert_eq(rc, 0, "parse failed: %s", vb_error_msg());
    cr_assert_not_null(resp);
    vb_soap_fault_clear(&fault);
    return resp;
}

/* ---- XML ---- */

Test(vsphere_xml, xsi_type_under_any_prefix)
{
    static const char *const prefixes[] = {"xsi", "XMLSchema-instance", "q1"};
    for (size_t i = 0; i < 3; i++) {
        char xml[512];
        snprintf(xml, sizeof xml,
                 "<r xmlns:%s=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:v=\"urn:vim25\">"
                 "<val %s:type=\"v:ArrayOfVirtualDevice\"/><other xsi2:type=\"x\" "
                 "xmlns:xsi2=\"urn:not-xsi\"/></r>",
                 prefixes[i], prefixes[i]);
        vb_xml_doc_t *doc = NULL;
        cr_assert_eq(vb_xml_parse(xml, strlen(xml), &doc), 0, "%s", vb_error_msg());
        const vb_xml_node_t *r = vb_xml_root(doc);
        cr_assert_str_eq(vb_xml_xsi_type(vb_xml_child(r, "val")), "ArrayOfVirtualDevice");
        /* a "type" attribute in another namespace is not xsi:type */
        cr_assert_null(vb_xml_xsi_type(vb_xml_child(r, "other")));
        vb_xml_doc_destroy(&doc);
        cr_assert_null(doc);
    }
}

Test(vsphere_xml, entities_and_text_are_decoded)
{
    const char *xml = "<a><b>x &amp; y &lt;z&gt; &#233;</b><c type=\"Datastore\">ds&amp;1</c></a>";
    vb_xml_doc_t *doc = NULL;
    cr_assert_eq(vb_xml_parse(xml, strlen(xml), &doc), 0);
    cr_assert_str_eq(vb_xml_path_text(vb_xml_root(doc), "b"), "x & y <z> \xc3\xa9");
    cr_assert_str_eq(vb_xml_path_text(vb_xml_root(doc), "c"), "ds&1");
    cr_assert_str_eq(vb_xml_attr(vb_xml_child(vb_xml_root(doc), "c"), NULL, "type"), "Datastore");
    vb_xml_doc_destroy(&doc);
}

Test(vsphere_xml, doctype_and_malformed_input_are_refused)
{
    const char *bomb = "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x \"xxxxxxxx\">]><a>&x;</a>";
    vb_xml_doc_t *doc = NULL;
    cr_assert_eq(vb_xml_parse(bomb, strlen(bomb), &doc), VB_EPROTO);
    cr_assert_null(doc);
    cr_assert(strstr(vb_error_msg(), "DOCTYPE"), "%s", vb_error_msg());
    const char *bad = "<a>\n<b></a>";
    cr_assert_eq(vb_xml_parse(bad, strlen(bad), &doc), VB_EPROTO);
    cr_assert(strstr(vb_error_msg(), "line 2"), "%s", vb_error_msg());
}

Test(vsphere_xml, escaping_on_the_way_out)
{
    vb_buf_t b = {0};
    cr_assert_eq(vb_buf_put_moref(&b, "obj", "Datastore", "/vmfs/a&b<c>\"d'@group-s5"), 0);
    cr_assert_str_eq(b.data, "<obj type=\"Datastore\">/vmfs/a&amp;b&lt;c&gt;&quot;d&apos;@group-s5"
                             "</obj>");
    /* what we write parses back to the same value */
    vb_xml_doc_t *doc = NULL;
    cr_assert_eq(vb_xml_parse(b.data, b.len, &doc), 0);
    cr_assert_str_eq(vb_xml_root(doc)->text, "/vmfs/a&b<c>\"d'@group-s5");
    vb_xml_doc_destroy(&doc);
    b.len = 0;
    cr_assert_eq(vb_buf_put_elem(&b, "password", "pa\x01ss"), VB_EINVAL);
    vb_buf_free(&b);
}

Test(vsphere_xml, buffer_limit_holds)
{
    vb_buf_t b = {.limit = 8};
    cr_assert_eq(vb_buf_puts(&b, "12345678"), 0);
    cr_assert_eq(vb_buf_puts(&b, "9"), VB_ENOMEM);
    cr_assert_eq(b.len, 8);
    vb_buf_free(&b);
}

/* ---- faults ---- */

Test(vsphere_soap, invalid_login_fault_is_an_auth_error)
{
    const char *xml = ENV_OPEN("xsi") "<soapenv:Fault><faultcode>ServerFaultCode</faultcode>"
                                      "<faultstring>Cannot complete login due to an incorrect user "
                                      "name or password.</faultstring>"
                                      "<detail><InvalidLoginFault xmlns=\"urn:vim25\" "
                                      "xsi:type=\"InvalidLogin\"></InvalidLoginFault>"
                                      "</detail></soapenv:Fault>" ENV_CLOSE;
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    vb_soap_fault_t f = {0};
    int rc = vb_soap_parse(xml, strlen(xml), 500, "Login", &doc, &resp, &f);
    cr_assert_eq(rc, VB_EAUTH);
    cr_assert_null(doc);
    cr_assert_str_eq(f.name, "InvalidLogin");
    cr_assert(strstr(vb_error_msg(), "Login: InvalidLogin: Cannot complete login"), "%s",
              vb_error_msg());
    vb_soap_fault_clear(&f);
}

Test(vsphere_soap, fault_type_from_element_name_or_odd_prefix)
{
    /* The simulator's shape: its own prefix for the instance namespace, set on the detail. */
    const char *xml =
        ENV_OPEN("XMLSchema-instance") "<soapenv:Fault><faultcode>ServerFaultCode</faultcode>"
                                       "<faultstring>vm-42 does not implement: "
                                       "QueryChangedDiskAreas</faultstring>"
                                       "<detail><Fault "
                                       "xmlns:XMLSchema-instance=\"http://www.w3.org/2001/"
                                       "XMLSchema-instance\" "
                                       "XMLSchema-instance:type=\"MethodNotFound\"><receiver "
                                       "type=\"VirtualMachine\">vm-42"
                                       "</receiver><method>QueryChangedDiskAreas</method></Fault></"
                                       "detail></soapenv:Fault>" ENV_CLOSE;
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    vb_soap_fault_t f = {0};
    cr_assert_eq(vb_soap_parse(xml, strlen(xml), 500, "QueryChangedDiskAreas", &doc, &resp, &f),
                 VB_EUNSUPPORTED);
    cr_assert_str_eq(f.name, "MethodNotFound");
    vb_soap_fault_clear(&f);

    const char *xml2 = ENV_OPEN(
        "xsi") "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring></faultstring>"
               "<detail><NotAuthenticatedFault xmlns=\"urn:vim25\"><object type=\"Folder\">group-d1"
               "</object><privilegeId>System.View</privilegeId></NotAuthenticatedFault></detail>"
               "</soapenv:Fault>" ENV_CLOSE;
    cr_assert_eq(vb_soap_parse(xml2, strlen(xml2), 500, "RetrievePropertiesEx", &doc, &resp, &f),
                 VB_EAUTH);
    cr_assert_str_eq(f.name, "NotAuthenticated");
    vb_soap_fault_clear(&f);
}

Test(vsphere_soap, unexpected_answers_are_protocol_errors)
{
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    vb_soap_fault_t f = {0};
    const char *html = "<html><body>Service Unavailable</body></html>";
    cr_assert_eq(vb_soap_parse(html, strlen(html), 503, "Login", &doc, &resp, &f), VB_EPROTO);
    cr_assert(strstr(vb_error_msg(), "not a SOAP envelope"), "%s", vb_error_msg());
    const char *other = ENV_OPEN("xsi") "<LogoutResponse xmlns=\"urn:vim25\"/>" ENV_CLOSE;
    cr_assert_eq(vb_soap_parse(other, strlen(other), 200, "Login", &doc, &resp, &f), VB_EPROTO);
    cr_assert_eq(vb_soap_parse("", 0, 502, "Login", &doc, &resp, &f), VB_EPROTO);
    cr_assert(strstr(vb_error_msg(), "502"), "%s", vb_error_msg());
}

/* ---- thumbprints and versions ---- */

Test(vsphere_soap, thumbprints)
{
    unsigned char sha[32];
    char txt[96];
    const char *tp = "3f:a1:00:ff:10:20:30:40:50:60:70:80:90:a0:b0:c0:d0:e0:f0:01:02:03:04:05:06:"
                     "07:08:09:0a:0b:0c:0d";
    cr_assert_eq(vb_soap_parse_thumbprint(tp, sha), 0, "%s", vb_error_msg());
    vb_soap_format_thumbprint(sha, txt);
    cr_assert_str_eq(txt, "3F:A1:00:FF:10:20:30:40:50:60:70:80:90:A0:B0:C0:D0:E0:F0:01:02:03:04:"
                          "05:06:07:08:09:0A:0B:0C:0D");
    cr_assert_eq(vb_soap_parse_thumbprint("3FA100FF1020304050607080"
                                          "90A0B0C0D0E0F00102030405"
                                          "060708090A0B0C0D",
                                          sha),
                 0);
    cr_assert_eq(vb_soap_parse_thumbprint("AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:"
                                          "CD:EF:01",
                                          sha),
                 VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "SHA-1"), "%s", vb_error_msg());
    cr_assert_eq(vb_soap_parse_thumbprint("zz:11", sha), VB_EINVAL);
}

/* A TLS handshake the network cut (vCenter blinking) is an outage, retried; one that failed on
 * the certificate is an authentication error, never retried. */
Test(vsphere_soap, a_cut_handshake_is_an_outage_not_a_certificate_error)
{
    vb_soap_options_t o = {.url = "https://vc.example:443", .ca_file = "/nonexistent/ca.pem"};
    vb_soap_t *s = vb_soap_new(&o);
    cr_assert_not_null(s, "%s", vb_error_msg());
    vb_soap_tls_t seen_ok = {.soap = s, .received = "AB:CD"}, rejected = seen_ok;
    rejected.rejected = true;
    const char *reset = "Recv failure: Connection reset by peer";
    /* cut before any certificate arrived, or after one that passed */
    cr_expect_eq(vb_soap_transfer_error(s, CURLE_SSL_CONNECT_ERROR, reset, NULL, " login"), VB_EIO);
    cr_expect(strstr(vb_error_msg(), "TLS handshake failed (Recv failure: Connection reset"),
              "%s", vb_error_msg());
    cr_expect_eq(vb_soap_transfer_error(s, CURLE_SSL_CONNECT_ERROR, reset, &seen_ok, " login"),
                 VB_EIO);
    /* the certificate failed the check */
    cr_expect_eq(vb_soap_transfer_error(s, CURLE_SSL_CONNECT_ERROR,
                                        "SSL routines::certificate verify failed", &rejected,
                                        " login"),
                 VB_EAUTH);
    cr_expect_eq(vb_soap_transfer_error(s, CURLE_PEER_FAILED_VERIFICATION,
                                        "SSL certificate problem: self-signed certificate", NULL,
                                        " login"),
                 VB_EAUTH);
    vb_soap_destroy(&s);
}

Test(vsphere_version, supported_range_is_6_5_through_8_x)
{
    cr_assert_eq(vb_vsphere_check_api_version("6.5"), 0);
    cr_assert_eq(vb_vsphere_check_api_version("6.7.3"), 0);
    cr_assert_eq(vb_vsphere_check_api_version("7.0.3.0"), 0);
    cr_assert_eq(vb_vsphere_check_api_version("8.0.2.0"), 0);
    cr_assert_eq(vb_vsphere_check_api_version("6.0"), VB_EUNSUPPORTED);
    cr_assert(strstr(vb_error_msg(), "6.5 through 8.x"), "%s", vb_error_msg());
    cr_assert_eq(vb_vsphere_check_api_version("5.5"), VB_EUNSUPPORTED);
    cr_assert_eq(vb_vsphere_check_api_version("9.0.0.0"), VB_EUNSUPPORTED);
    cr_assert(strstr(vb_error_msg(), "upgrade vbak"), "%s", vb_error_msg());
    cr_assert_eq(vb_vsphere_check_api_version("banana"), VB_EPROTO);
    cr_assert_eq(vb_vsphere_check_api_version(""), VB_EPROTO);
}

/* ---- inventory from RetrievePropertiesEx ---- */

/* One page as vCenter sends it: a VM with two disks (one a linked clone child with a changeId),
 * its snapshot tree, two datastores with their host mounts, two hosts. The datastore moref is
 * an odd string, escaped in the XML. */
static const char *const k_page = ENV_OPEN(
    "xsi") "<RetrievePropertiesExResponse xmlns=\"urn:vim25\"><returnval>"
           "<token>tok-1&amp;2</token>"
           "<objects><obj type=\"HostSystem\">host-10</obj>"
           "<propSet><name>name</name><val "
           "xsi:type=\"xsd:string\">esx-01.lab</val></propSet></objects>"
           "<objects><obj type=\"HostSystem\">host-12</obj>"
           "<propSet><name>name</name><val "
           "xsi:type=\"xsd:string\">esx-02.lab</val></propSet></objects>"
           "<objects><obj type=\"Datastore\">/vmfs/volumes/5f0c&amp;x@group-s5</obj>"
           "<propSet><name>host</name><val xsi:type=\"ArrayOfDatastoreHostMount\">"
           "<DatastoreHostMount xsi:type=\"DatastoreHostMount\"><key "
           "type=\"HostSystem\">host-10</key>"
           "<mountInfo><path>/vmfs/volumes/5f0c</path><accessMode>readWrite</accessMode>"
           "<mounted>true</mounted><accessible>true</accessible></mountInfo></DatastoreHostMount>"
           "<DatastoreHostMount xsi:type=\"DatastoreHostMount\"><key "
           "type=\"HostSystem\">host-12</key>"
           "<mountInfo><accessMode>readWrite</accessMode><mounted>true</mounted></mountInfo>"
           "</DatastoreHostMount></val></propSet>"
           "<propSet><name>name</name><val xsi:type=\"xsd:string\">vmfs-01</val></propSet>"
           "<propSet><name>info</name><val xsi:type=\"VmfsDatastoreInfo\"><name>vmfs-01</name>"
           "<url>ds:///vmfs/volumes/5f0c/</url><vmfs><type>VMFS</type><name>vmfs-01</name>"
           "<extent><diskName>naa.600a0980383</diskName><partition>1</partition></extent>"
           "<extent><diskName>naa.600a0980384</diskName><partition>1</partition></extent>"
           "</vmfs></val></propSet>"
           "<propSet><name>summary.type</name><val xsi:type=\"xsd:string\">VMFS</val></propSet>"
           "<propSet><name>summary.url</name><val "
           "xsi:type=\"xsd:string\">ds:///vmfs/volumes/5f0c/</val>"
           "</propSet></objects>"
           "<objects><obj type=\"Datastore\">datastore-77</obj>"
           "<propSet><name>host</name><val xsi:type=\"ArrayOfDatastoreHostMount\">"
           "<DatastoreHostMount><key "
           "type=\"HostSystem\">host-12</key><mountInfo><mounted>true</mounted>"
           "</mountInfo></DatastoreHostMount><DatastoreHostMount><key "
           "type=\"HostSystem\">host-10</key>"
           "<mountInfo><mounted>false</mounted></mountInfo></DatastoreHostMount></val></propSet>"
           "<propSet><name>name</name><val xsi:type=\"xsd:string\">vsanDatastore</val></propSet>"
           "<propSet><name>info</name><val xsi:type=\"VsanDatastoreInfo\"><name>vsanDatastore"
           "</name></val></propSet>"
           "<propSet><name>summary.type</name><val xsi:type=\"xsd:string\">vsan</val></propSet>"
           "</objects>"
           "<objects><obj type=\"VirtualMachine\">vm-42</obj>"
           "<propSet><name>config.hardware.device</name><val xsi:type=\"ArrayOfVirtualDevice\">"
           "<VirtualDevice xsi:type=\"VirtualLsiLogicController\"><key>1000</key></VirtualDevice>"
           "<VirtualDevice xsi:type=\"VirtualDisk\"><key>2000</key><deviceInfo><label>Hard disk 1"
           "</label><summary>16,777,216 KB</summary></deviceInfo>"
           "<backing xsi:type=\"VirtualDiskFlatVer2BackingInfo\"><fileName>[vmfs-01] web 01/web "
           "01.vmdk"
           "</fileName><datastore type=\"Datastore\">/vmfs/volumes/5f0c&amp;x@group-s5</datastore>"
           "<diskMode>persistent</diskMode><thinProvisioned>true</thinProvisioned>"
           "<changeId>52 de 7a 11 0b 8f 36 2e-ab 6d 3c 19 15 e2 f6 4e/17</changeId>"
           "<parent xsi:type=\"VirtualDiskFlatVer2BackingInfo\"><fileName>[vsanDatastore] "
           "base/base.vmdk"
           "</fileName><datastore type=\"Datastore\">datastore-77</datastore></parent></backing>"
           "<controllerKey>1000</controllerKey><unitNumber>0</unitNumber>"
           "<capacityInKB>16777216</capacityInKB><capacityInBytes>17179869184</capacityInBytes>"
           "</VirtualDevice>"
           "<VirtualDevice xsi:type=\"VirtualDisk\"><key>2001</key><deviceInfo><label>Hard disk 2"
           "</label></deviceInfo><backing xsi:type=\"VirtualDiskFlatVer2BackingInfo\"><fileName>"
           "[vsanDatastore] 0a1b/web 01_1.vmdk</fileName><datastore type=\"Datastore\">datastore-77"
           "</datastore><keyId><keyId>k1</keyId></keyId></backing><capacityInKB>1024</capacityInKB>"
           "</VirtualDevice></val></propSet>"
           "<propSet><name>name</name><val xsi:type=\"xsd:string\">web 01</val></propSet>"
           "<propSet><name>runtime.host</name><val type=\"HostSystem\" "
           "xsi:type=\"ManagedObjectReference\">"
           "host-12</val></propSet>"
           "<propSet><name>snapshot</name><val xsi:type=\"VirtualMachineSnapshotInfo\">"
           "<currentSnapshot type=\"VirtualMachineSnapshot\">snapshot-3</currentSnapshot>"
           "<rootSnapshotList><snapshot type=\"VirtualMachineSnapshot\">snapshot-1</snapshot>"
           "<vm type=\"VirtualMachine\">vm-42</vm><name>before upgrade</name><id>1</id>"
           "<childSnapshotList><snapshot type=\"VirtualMachineSnapshot\">snapshot-3</snapshot>"
           "<name>after "
           "upgrade</name><id>3</id></childSnapshotList></rootSnapshotList></val></propSet>"
           "</objects>"
           "</returnval></RetrievePropertiesExResponse>" ENV_CLOSE;

Test(vsphere_inventory, retrieve_properties_page_builds_the_inventory)
{
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = parse_ok(k_page, "RetrievePropertiesEx", &doc);
    vb_vs_builder_t *b = vb_vs_builder_new();
    char *token = NULL;
    cr_assert_eq(vb_vs_walk_result(vb_xml_child(resp, "returnval"), vb_vs_builder_add, b, &token),
                 0, "%s", vb_error_msg());
    cr_assert_str_eq(token, "tok-1&2");
    free(token);
    vb_inventory_t *inv = NULL;
    cr_assert_eq(vb_vs_builder_finish(b, &inv), 0, "%s", vb_error_msg());
    vb_vs_builder_destroy(&b);
    vb_xml_doc_destroy(&doc);

    cr_assert_eq(inv->host_count, 2);
    cr_assert_eq(inv->datastore_count, 2);
    const vb_inv_datastore_t *vmfs = vb_inventory_find_datastore(inv, "vmfs-01");
    cr_assert_not_null(vmfs);
    cr_assert_str_eq(vmfs->type, "VMFS");
    cr_assert_str_eq(vmfs->url, "ds:///vmfs/volumes/5f0c/");
    cr_assert_eq(vmfs->host_count, 2);
    cr_assert_str_eq(vmfs->hosts[0], "esx-01.lab");
    cr_assert_str_eq(vmfs->hosts[1], "esx-02.lab");
    cr_assert_str_eq(vmfs->lun, "naa.600a0980383", "the first extent's disk is the LUN");
    const vb_inv_datastore_t *vsan = vb_inventory_find_datastore(inv, "vsanDatastore");
    cr_assert_str_eq(vsan->type, "vsan");
    cr_assert_eq(vsan->host_count, 1, "an unmounted host does not count");
    cr_assert_null(vsan->lun, "vSAN has no LUN");
    cr_assert_str_eq(vsan->hosts[0], "esx-02.lab");

    const vb_inv_vm_t *vm = vb_inventory_find_vm(inv, "web 01");
    cr_assert_not_null(vm);
    cr_assert_str_eq(vm->id, "vm-42");
    cr_assert_str_eq(vm->host, "esx-02.lab");
    cr_assert(vm->linked_clone);
    cr_assert_eq(vm->snapshot_count, 2);
    cr_assert_str_eq(vm->snapshots[0], "before upgrade");
    cr_assert_str_eq(vm->snapshots[1], "after upgrade");
    cr_assert_eq(vm->disk_count, 2, "the controller is not a disk");
    const vb_inv_disk_t *d0 = &vm->disks[0];
    cr_assert_str_eq(d0->key, "2000");
    cr_assert_str_eq(d0->name, "Hard disk 1");
    cr_assert_str_eq(d0->datastore, "vmfs-01");
    cr_assert_str_eq(d0->path, "[vmfs-01] web 01/web 01.vmdk");
    cr_assert_eq(d0->capacity, 17179869184ULL);
    cr_assert_str_eq(d0->change_id, "52 de 7a 11 0b 8f 36 2e-ab 6d 3c 19 15 e2 f6 4e/17");
    cr_assert_str_eq(d0->parent, "[vsanDatastore] base/base.vmdk");
    cr_assert_not(d0->encrypted);
    const vb_inv_disk_t *d1 = &vm->disks[1];
    cr_assert_str_eq(d1->datastore, "vsanDatastore");
    cr_assert_eq(d1->capacity, 1024 * 1024, "capacityInKB when capacityInBytes is absent");
    cr_assert_null(d1->change_id);
    cr_assert_null(d1->parent);
    cr_assert(d1->encrypted);
    vb_inventory_free(&inv);
}

Test(vsphere_inventory, not_authenticated_in_missing_set_is_an_auth_error)
{
    const char *xml = ENV_OPEN(
        "XMLSchema-instance") "<RetrievePropertiesExResponse "
                              "xmlns=\"urn:vim25\"><returnval><objects>"
                              "<obj "
                              "type=\"VirtualMachine\">vm-1</obj><missingSet><path>name</"
                              "path><fault>"
                              "<fault XMLSchema-instance:type=\"NotAuthenticated\"><object "
                              "type=\"VirtualMachine\">vm-1"
                              "</object><privilegeId>System.View</privilegeId></"
                              "fault><localizedMessage>"
                              "</localizedMessage></fault></missingSet></objects></returnval>"
                              "</RetrievePropertiesExResponse>" ENV_CLOSE;
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = parse_ok(xml, "RetrievePropertiesEx", &doc);
    vb_vs_builder_t *b = vb_vs_builder_new();
    char *token = NULL;
    cr_assert_eq(vb_vs_walk_result(vb_xml_child(resp, "returnval"), vb_vs_builder_add, b, &token),
                 VB_EAUTH);
    vb_vs_builder_destroy(&b);
    vb_xml_doc_destroy(&doc);
}

Test(vsphere_inventory, bad_numbers_are_refused_with_a_reason)
{
    const char *xml = ENV_OPEN(
        "xsi") "<RetrievePropertiesExResponse xmlns=\"urn:vim25\"><returnval><objects>"
               "<obj type=\"VirtualMachine\">vm-1</obj><propSet><name>config.hardware.device</name>"
               "<val xsi:type=\"ArrayOfVirtualDevice\"><VirtualDevice "
               "xsi:type=\"VirtualDisk\"><key>2000"
               "</key><capacityInKB>lots</capacityInKB></VirtualDevice></val></propSet></objects>"
               "</returnval></RetrievePropertiesExResponse>" ENV_CLOSE;
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = parse_ok(xml, "RetrievePropertiesEx", &doc);
    vb_vs_builder_t *b = vb_vs_builder_new();
    char *token = NULL;
    cr_assert_eq(vb_vs_walk_result(vb_xml_child(resp, "returnval"), vb_vs_builder_add, b, &token),
                 VB_EPROTO);
    cr_assert(strstr(vb_error_msg(), "capacityInKB"), "%s", vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "vm-1"), "%s", vb_error_msg());
    vb_vs_builder_destroy(&b);
    vb_xml_doc_destroy(&doc);
}

Test(vsphere_inventory, empty_answer_has_no_returnval)
{
    const char *xml =
        ENV_OPEN("xsi") "<RetrievePropertiesExResponse xmlns=\"urn:vim25\"/>" ENV_CLOSE;
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = parse_ok(xml, "RetrievePropertiesEx", &doc);
    vb_vs_builder_t *b = vb_vs_builder_new();
    char *token = (char *)"x";
    cr_assert_eq(vb_vs_walk_result(vb_xml_child(resp, "returnval"), vb_vs_builder_add, b, &token),
                 0);
    cr_assert_null(token);
    vb_inventory_t *inv = NULL;
    cr_assert_eq(vb_vs_builder_finish(b, &inv), 0);
    cr_assert_eq(inv->vm_count + inv->datastore_count + inv->host_count, 0);
    vb_inventory_free(&inv);
    vb_vs_builder_destroy(&b);
    vb_xml_doc_destroy(&doc);
}

/* ---- QueryChangedDiskAreas ---- */

Test(vsphere_cbt, disk_change_info_areas_in_order)
{
    const char *xml = ENV_OPEN(
        "xsi") "<QueryChangedDiskAreasResponse xmlns=\"urn:vim25\"><returnval>"
               "<startOffset>0</startOffset><length>17179869184</length>"
               "<changedArea><start>0</start><length>65536</length></changedArea>"
               "<changedArea><start>65536</start><length>131072</length></changedArea>"
               "<changedArea><start>1073741824</start><length>1048576</length></changedArea>"
               "</returnval></QueryChangedDiskAreasResponse>" ENV_CLOSE;
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = parse_ok(xml, "QueryChangedDiskAreas", &doc);
    vb_extent_list_t list = {0};
    uint64_t s = 1, l = 0;
    cr_assert_eq(vb_vsphere_parse_disk_change_info(vb_xml_child(resp, "returnval"), &list, &s, &l),
                 0, "%s", vb_error_msg());
    cr_assert_eq(s, 0);
    cr_assert_eq(l, 17179869184ULL);
    cr_assert_eq(list.count, 2, "adjacent areas merge");
    cr_assert_eq(list.items[0].offset, 0);
    cr_assert_eq(list.items[0].length, 196608);
    cr_assert_eq(list.items[1].offset, 1073741824);
    cr_assert_eq(list.items[1].length, 1048576);
    vb_extent_list_free(&list);
    vb_xml_doc_destroy(&doc);
}

Test(vsphere_cbt, partial_span_and_no_changes)
{
    /* The server may answer for a part of the disk only; no changedArea means no changes. */
    const char *xml =
        ENV_OPEN("xsi") "<QueryChangedDiskAreasResponse xmlns=\"urn:vim25\"><returnval>"
                        "<startOffset>4294967296</startOffset><length>2147483648</length>"
                        "</returnval></QueryChangedDiskAreasResponse>" ENV_CLOSE;
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = parse_ok(xml, "QueryChangedDiskAreas", &doc);
    vb_extent_list_t list = {0};
    uint64_t s = 0, l = 0;
    cr_assert_eq(vb_vsphere_parse_disk_change_info(vb_xml_child(resp, "returnval"), &list, &s, &l),
                 0);
    cr_assert_eq(s, 4294967296ULL);
    cr_assert_eq(l, 2147483648ULL);
    cr_assert_eq(list.count, 0);
    vb_xml_doc_destroy(&doc);
}

Test(vsphere_cbt, areas_outside_the_span_or_out_of_order_are_refused)
{
    static const char *const bad[] = {
        "<startOffset>0</startOffset><length>1000</length>"
        "<changedArea><start>900</start><length>200</length></changedArea>",
        "<startOffset>0</startOffset><length>1000</length>"
        "<changedArea><start>500</start><length>10</length></changedArea>"
        "<changedArea><start>100</start><length>10</length></changedArea>",
        "<startOffset>0</startOffset><length>1000</length>"
        "<changedArea><start>-5</start><length>10</length></changedArea>",
        "<startOffset>0</startOffset>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char xml[1024];
        snprintf(xml, sizeof xml, "<returnval>%s</returnval>", bad[i]);
        vb_xml_doc_t *doc = NULL;
        cr_assert_eq(vb_xml_parse(xml, strlen(xml), &doc), 0);
        vb_extent_list_t list = {0};
        uint64_t s = 0, l = 0;
        cr_assert_eq(vb_vsphere_parse_disk_change_info(vb_xml_root(doc), &list, &s, &l), VB_EPROTO,
                     "case %zu accepted", i);
        vb_extent_list_free(&list);
        vb_xml_doc_destroy(&doc);
    }
}

/* ---- file service names ---- */

Test(vsphere_files, datastore_paths_and_encodings)
{
    char *ds = NULL, *path = NULL;
    cr_assert_eq(vb_vsphere_split_ds_path("[NFS store 1] vm 1/disk #1 50%.vmdk", &ds, &path), 0);
    cr_assert_str_eq(ds, "NFS store 1");
    cr_assert_str_eq(path, "vm 1/disk #1 50%.vmdk");
    char *flat = vb_vsphere_flat_path(path);
    cr_assert_str_eq(flat, "vm 1/disk #1 50%-flat.vmdk");
    char *one = vb_vsphere_encode_path(flat, VB_VS_ENC_SINGLE);
    char *two = vb_vsphere_encode_path(flat, VB_VS_ENC_DOUBLE);
    cr_assert_str_eq(one, "vm%201/disk%20%231%2050%25-flat.vmdk");
    cr_assert_str_eq(two, "vm%25201/disk%2520%25231%252050%2525-flat.vmdk");
    free(one);
    free(two);
    one = vb_vsphere_encode_path("caf\xc3\xa9/a+b&c=d?.vmdk", VB_VS_ENC_SINGLE);
    cr_assert_str_eq(one, "caf%C3%A9/a%2Bb%26c%3Dd%3F.vmdk");
    free(one);
    free(flat);
    free(ds);
    free(path);
    cr_assert_eq(vb_vsphere_split_ds_path("no brackets.vmdk", &ds, &path), VB_EINVAL);
    cr_assert_eq(vb_vsphere_split_ds_path("[ds]", &ds, &path), VB_EINVAL);
    cr_assert_eq(vb_vsphere_split_ds_path("[] x", &ds, &path), VB_EINVAL);
}

/* ---- tasks ---- */

static int task_outcome(const char *info_xml, bool *done, char **result)
{
    vb_xml_doc_t *doc = NULL;
    cr_assert_eq(vb_xml_parse(info_xml, strlen(info_xml), &doc), 0, "%s", vb_error_msg());
    int rc = vb_vs_task_info_parse(vb_xml_root(doc), "snapshot 'b' of VM web", done, result);
    vb_xml_doc_destroy(&doc);
    return rc;
}

Test(vsphere_tasks, task_states)
{
    bool done = true;
    char *result = NULL;
    cr_assert_eq(task_outcome("<val><key>task-9</key><state>running</state><progress>40</progress>"
                              "</val>",
                              &done, &result),
                 0);
    cr_assert_not(done);
    cr_assert_null(result);
    cr_assert_eq(task_outcome("<val xmlns:x=\"http://www.w3.org/2001/XMLSchema-instance\"><state>"
                              "success</state><result type=\"VirtualMachineSnapshot\" "
                              "x:type=\"ManagedObjectReference\">snapshot-77</result></val>",
                              &done, &result),
                 0);
    cr_assert(done);
    cr_assert_str_eq(result, "snapshot-77");
    free(result);
}

Test(vsphere_tasks, task_error_carries_the_fault)
{
    bool done = false;
    char *result = NULL;
    int rc = task_outcome(
        "<info xmlns:XMLSchema-instance=\"http://www.w3.org/2001/XMLSchema-instance\">"
        "<state>error</state><error><fault XMLSchema-instance:type=\"InvalidPowerState\">"
        "<requestedState>poweredOn</requestedState><existingState>poweredOff</existingState>"
        "</fault><localizedMessage>The attempted operation cannot be performed in the current "
        "state (Powered off).</localizedMessage></error></info>",
        &done, &result);
    cr_assert_eq(rc, VB_EPOLICY);
    cr_assert(done);
    cr_assert_str_eq(vb_error_msg(),
                     "snapshot 'b' of VM web failed: InvalidPowerState: The "
                     "attempted operation cannot be performed in the current state (Powered off).");
    rc = task_outcome("<info><state>error</state><error><fault xmlns:i=\"http://www.w3.org/2001/"
                      "XMLSchema-instance\" i:type=\"TaskInProgress\"/></error></info>",
                      &done, &result);
    cr_assert_eq(rc, VB_EBUSY);
    cr_assert(strstr(vb_error_msg(), "TaskInProgress"), "%s", vb_error_msg());
    cr_assert_eq(task_outcome("<info><state>exploded</state></info>", &done, &result), VB_EPROTO);
    cr_assert_eq(task_outcome("<info/>", &done, &result), VB_EPROTO);
}

/* ---- refusals before any answer ---- */

Test(vsphere_session, refusals_name_their_reason)
{
    vb_vsphere_options_t o = {.url = "http://vcenter.example", .user = "u", .password = "p"};
    cr_assert_null(vb_vsphere_provider_new(&o));
    cr_assert_eq(vb_error_code(), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "must start with https://"), "%s", vb_error_msg());

    o.url = "https://127.0.0.1:1";
    o.user = NULL;
    cr_assert_null(vb_vsphere_new(&o));
    cr_assert(strstr(vb_error_msg(), "user name missing"), "%s", vb_error_msg());

    o.user = "u";
    o.thumbprint = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01";
    cr_assert_null(vb_vsphere_new(&o));
    cr_assert(strstr(vb_error_msg(), "SHA-1"), "%s", vb_error_msg());

    o.thumbprint = NULL;
    o.password = NULL;
    o.password_file = "/nonexistent/vbak/password";
    cr_assert_null(vb_vsphere_new(&o));
    cr_assert(strstr(vb_error_msg(), "cannot open password file /nonexistent/vbak/password"), "%s",
              vb_error_msg());

    /* a password file others may read is refused as the enrollment token file is */
    char pw[] = "/tmp/vbak-test-password-XXXXXX";
    int fd = mkstemp(pw);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "secret\n", 7), 7);
    close(fd);
    cr_assert_eq(chmod(pw, 0644), 0);
    o.password_file = pw;
    cr_assert_null(vb_vsphere_new(&o));
    cr_assert_eq(vb_error_code(), VB_EAUTH);
    cr_assert(strstr(vb_error_msg(), "password file") && strstr(vb_error_msg(), pw) &&
                  strstr(vb_error_msg(), "mode 644") && strstr(vb_error_msg(), "chmod 600 it"),
              "%s", vb_error_msg());
    /* once private it is read (and the login then fails for want of a server) */
    cr_assert_eq(chmod(pw, 0600), 0);
    cr_assert_null(vb_vsphere_new(&o));
    cr_assert_eq(vb_error_code(), VB_EIO, "%s", vb_error_msg());
    unlink(pw);

    /* nothing listens on port 1: the message names the endpoint and the call */
    o.password_file = NULL;
    o.password = "p";
    cr_assert_null(vb_vsphere_new(&o));
    cr_assert_eq(vb_error_code(), VB_EIO);
    cr_assert(strstr(vb_error_msg(), "https://127.0.0.1:1/sdk RetrieveServiceContent"), "%s",
              vb_error_msg());

    cr_assert_null(vb_vsphere_provider_session(NULL));
}

/* RetrieveVStorageObject's answer: a capacity in MB whose bytes do not fit 64 bits is refused, not
 * wrapped into a small disk. */
#define FCD_ANSWER(mb)                                                                             \
    ENV_OPEN("xsi") "<RetrieveVStorageObjectResponse xmlns=\"urn:vim25\"><returnval><config>"      \
                    "<name>app data #1</name><capacityInMB>" mb "</capacityInMB><backing>"         \
                    "<filePath>[vmfs-01] fcd/a.vmdk</filePath></backing></config></returnval>"     \
                    "</RetrieveVStorageObjectResponse>" ENV_CLOSE

Test(vsphere_fcd, answer_parsed_and_capacity_bounded)
{
    vb_xml_doc_t *doc = NULL;
    vb_vs_fcd_t f = {0};
    const vb_xml_node_t *resp = parse_ok(FCD_ANSWER("64"), "RetrieveVStorageObject", &doc);
    cr_assert_eq(vb_vs_fcd_parse(resp, "id-1", "datastore-61", &f), 0, "%s", vb_error_msg());
    cr_expect_str_eq(f.name, "app data #1");
    cr_expect_str_eq(f.path, "[vmfs-01] fcd/a.vmdk");
    cr_expect_eq(f.capacity, 64ull << 20);
    vb_vs_fcd_clear(&f);
    vb_xml_doc_destroy(&doc);
    resp = parse_ok(FCD_ANSWER("17592186044416"), "RetrieveVStorageObject", &doc); /* 2^44 MB */
    cr_expect_eq(vb_vs_fcd_parse(resp, "id-1", "datastore-61", &f), VB_EPROTO);
    cr_expect(strstr(vb_error_msg(), "capacity of 17592186044416 MB"), "%s", vb_error_msg());
    cr_expect_null(f.name);
    vb_xml_doc_destroy(&doc);
}
