/* vsphere — session: ServiceContent, version check, Login/Logout, re-login; the provider. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk/disk_uri.h"
#include "fileio.h"
#include "log.h"
#include "vsphere/vs_internal.h"

/* The supported range: vSphere 6.5 (N-2 of 7.0) up to the 8.x line (N+1). */
#define VS_MIN_MAJOR 6
#define VS_MIN_MINOR 5
#define VS_MAX_MAJOR 8

int vb_vsphere_check_api_version(const char *v)
{
    if (!v || !*v)
        return vb_error_set(VB_EPROTO, "the server did not state its API version");
    char *end = NULL;
    errno = 0;
    unsigned long major = strtoul(v, &end, 10);
    unsigned long minor = 0;
    if (end == v || errno)
        return vb_error_set(VB_EPROTO, "API version '%.40s' is not a version number", v);
    if (*end == '.') {
        const char *m = end + 1;
        minor = strtoul(m, &end, 10);
        if (end == m)
            return vb_error_set(VB_EPROTO, "API version '%.40s' is not a version number", v);
    }
    bool too_old = major < VS_MIN_MAJOR || (major == VS_MIN_MAJOR && minor < VS_MIN_MINOR);
    if (too_old || major > VS_MAX_MAJOR)
        return vb_error_set(VB_EUNSUPPORTED,
                            "vSphere API version %s is not supported: vbak "
                            "supports vSphere %d.%d through %d.x (N-2 to N+1); %s",
                            v, VS_MIN_MAJOR, VS_MIN_MINOR, VS_MAX_MAJOR,
                            too_old ? "upgrade vCenter/ESXi" : "upgrade vbak");
    return 0;
}

static int s_dup_text(const vb_xml_node_t *n, const char *path, char **out, bool required)
{
    const char *t = vb_xml_path_text(n, path);
    if (!t) {
        if (required)
            return vb_error_set(VB_EPROTO, "ServiceContent has no %s", path);
        return 0;
    }
    *out = strdup(t);
    return *out ? 0 : vb_error_set(VB_ENOMEM, "out of memory");
}

static int s_service_content(vb_vsphere_t *self)
{
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    vb_soap_fault_t fault = {0};
    int rc = vb_soap_call(self->soap, "RetrieveServiceContent", "ServiceInstance",
                          "ServiceInstance", NULL, &doc, &resp, &fault);
    vb_soap_fault_clear(&fault);
    if (rc != 0)
        return rc;
    const vb_xml_node_t *sc = vb_xml_child(resp, "returnval");
    rc = s_dup_text(sc, "rootFolder", &self->root_folder, true);
    if (rc == 0)
        rc = s_dup_text(sc, "propertyCollector", &self->property_collector, true);
    if (rc == 0)
        rc = s_dup_text(sc, "viewManager", &self->view_manager, true);
    if (rc == 0)
        rc = s_dup_text(sc, "sessionManager", &self->session_manager, true);
    if (rc == 0)
        rc = s_dup_text(sc, "authorizationManager", &self->authorization_manager, false);
    if (rc == 0)
        rc = s_dup_text(sc, "vStorageObjectManager", &self->vstorage_object_manager, false);
    if (rc == 0)
        rc = s_dup_text(sc, "about/apiVersion", &self->api_version, true);
    if (rc == 0)
        rc = s_dup_text(sc, "about/fullName", &self->about, false);
    vb_xml_doc_destroy(&doc);
    if (rc != 0)
        return rc;
    rc = vb_vsphere_check_api_version(self->api_version);
    if (rc != 0)
        return vb_error_prefix(rc, "%s (%s)", vb_soap_base_url(self->soap),
                               self->about ? self->about : "unknown product");
    return vb_soap_set_version(self->soap, self->api_version);
}

static int s_login(vb_vsphere_t *self)
{
    vb_buf_t args = {0};
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    vb_soap_fault_t fault = {0};
    int rc = vb_buf_put_elem(&args, "userName", self->user);
    if (rc == 0)
        rc = vb_buf_put_elem(&args, "password", self->password);
    if (rc == 0) {
        vb_soap_forget_cookie(self->soap);
        rc = vb_soap_call(self->soap, "Login", "SessionManager", self->session_manager, args.data,
                          &doc, &resp, &fault);
    }
    if (rc != 0 && fault.name && strcmp(fault.name, "InvalidLogin") == 0)
        rc = vb_error_prefix(VB_EAUTH, "%s refused user '%s' (wrong user name or password)",
                             vb_soap_base_url(self->soap), self->user);
    else if (rc == 0 && !vb_soap_cookie(self->soap))
        rc = vb_error_set(VB_EPROTO, "Login succeeded but the server set no session cookie");
    if (rc == 0) {
        self->logged_in = true;
        self->logins++;
        VB_LOG_INFO("vsphere", "login url=%s user=%s api=%s", vb_soap_base_url(self->soap),
                    self->user, self->api_version);
    }
    vb_soap_fault_clear(&fault);
    vb_xml_doc_destroy(&doc);
    if (args.data)
        explicit_bzero(args.data, args.cap);
    vb_buf_free(&args);
    return rc;
}

int vb_vs_call(vb_vsphere_t *self, const char *method, const char *this_type,
               const char *this_value, const char *args, vb_xml_doc_t **doc_out,
               const vb_xml_node_t **resp_out)
{
    vb_soap_fault_t fault = {0};
    int rc = 0;
    if (!vb_soap_cookie(self->soap))
        rc = s_login(self);
    if (rc == 0)
        rc = vb_soap_call(self->soap, method, this_type, this_value, args, doc_out, resp_out,
                          &fault);
    if (rc == VB_EAUTH && fault.name && strcmp(fault.name, "NotAuthenticated") == 0) {
        VB_LOG_INFO("vsphere", "session expired, logging in again method=%s", method);
        vb_soap_fault_clear(&fault);
        self->logged_in = false;
        rc = s_login(self);
        if (rc == 0)
            rc = vb_soap_call(self->soap, method, this_type, this_value, args, doc_out, resp_out,
                              &fault);
    }
    snprintf(self->last_fault, sizeof self->last_fault, "%s", fault.name ? fault.name : "");
    vb_soap_fault_clear(&fault);
    return rc;
}

static int s_read_password_file(const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return vb_error_set(VB_EIO, "cannot open password file %s: %s", path, strerror(errno));
    int rc = vb_secret_file_check(path, "password file");
    if (rc) {
        fclose(f);
        return rc;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    if (n < 0) {
        free(line);
        return vb_error_set(VB_EINVAL, "password file %s is empty", path);
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    *out = line;
    return 0;
}

vb_vsphere_t *vb_vsphere_new(const vb_vsphere_options_t *opts)
{
    vb_vsphere_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    if (!opts->user || !opts->user[0]) {
        vb_error_set(VB_EINVAL, "vSphere user name missing");
        goto fail;
    }
    if (opts->password_file && opts->password_file[0]) {
        if (s_read_password_file(opts->password_file, &self->password) != 0)
            goto fail;
    } else if (opts->password) {
        self->password = strdup(opts->password);
    } else {
        vb_error_set(VB_EINVAL, "vSphere password missing (password or password file)");
        goto fail;
    }
    self->user = strdup(opts->user);
    if ((opts->password_file && opts->password_file[0] &&
         !(self->password_file = strdup(opts->password_file))) ||
        (opts->ca_file && opts->ca_file[0] && !(self->ca_file = strdup(opts->ca_file))) ||
        (opts->thumbprint && opts->thumbprint[0] && !(self->thumbprint = strdup(opts->thumbprint)))) {
        vb_error_set(VB_ENOMEM, "out of memory");
        goto fail;
    }
    if (opts->datacenter && opts->datacenter[0])
        self->datacenter = strdup(opts->datacenter);
    if (!self->user || !self->password ||
        (opts->datacenter && opts->datacenter[0] && !self->datacenter)) {
        vb_error_set(VB_ENOMEM, "out of memory");
        goto fail;
    }
    self->task_timeout_s = opts->task_timeout_s > 0 ? opts->task_timeout_s : 3600;
    self->page_objects = opts->page_objects > 0 ? opts->page_objects : 100;
    self->enc_try = opts->encoding == VB_VS_ENC_DOUBLE ? VB_VS_ENC_DOUBLE : VB_VS_ENC_SINGLE;
    vb_soap_options_t so = {.url = opts->url,
                            .ca_file = opts->ca_file,
                            .thumbprint = opts->thumbprint,
                            .timeout_s = opts->timeout_s};
    self->soap = vb_soap_new(&so);
    if (!self->soap || s_service_content(self) != 0 || s_login(self) != 0)
        goto fail;
    return self;
fail:
    vb_vsphere_destroy(&self);
    return NULL;
}

int vb_vsphere_logout(vb_vsphere_t *self)
{
    if (!self->logged_in)
        return 0;
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    vb_soap_fault_t fault = {0};
    int rc = vb_soap_call(self->soap, "Logout", "SessionManager", self->session_manager, NULL, &doc,
                          &resp, &fault);
    vb_soap_fault_clear(&fault);
    vb_xml_doc_destroy(&doc);
    self->logged_in = false;
    /* The cookie is kept: it is how a test (and a real expiry) shows the server forgot us. */
    return rc;
}

void vb_vsphere_destroy(vb_vsphere_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_vsphere_t *self = *self_p;
    if (self->soap && self->logged_in) {
        int rc = vb_vsphere_logout(self);
        if (rc != 0)
            VB_LOG_DEBUG("vsphere", "logout failed: %s", vb_error_msg());
    }
    if (self->file_h)
        curl_easy_cleanup(self->file_h);
    vb_soap_destroy(&self->soap);
    if (self->password)
        explicit_bzero(self->password, strlen(self->password));
    free(self->password);
    free(self->user);
    free(self->datacenter);
    free(self->password_file);
    free(self->ca_file);
    free(self->thumbprint);
    for (size_t i = 0; i < self->dcmap_n; i++) {
        free(self->dcmap_ds[i]);
        free(self->dcmap_dc[i]);
    }
    free(self->dcmap_ds);
    free(self->dcmap_dc);
    free(self->root_folder);
    free(self->property_collector);
    free(self->view_manager);
    free(self->session_manager);
    free(self->authorization_manager);
    free(self->vstorage_object_manager);
    free(self->api_version);
    free(self->about);
    free(self);
    *self_p = NULL;
}

const char *vb_vsphere_api_version(const vb_vsphere_t *self)
{
    return self->api_version;
}

const char *vb_vsphere_about(const vb_vsphere_t *self)
{
    return self->about ? self->about : "";
}

unsigned vb_vsphere_login_count(const vb_vsphere_t *self)
{
    return self->logins;
}

int vb_vs_relogin(vb_vsphere_t *self)
{
    self->logged_in = false;
    return s_login(self);
}

/* ---- provider ---- */

static int s_p_inventory(vb_provider_t *p, vb_inventory_t **out)
{
    return vb_vsphere_inventory(p->impl, out);
}

/* A name no VM has may be a First Class Disk's: *fcd filled (the caller clears it) and 0; when
 * there is no such FCD either, the VM call's VB_ENOTFOUND with its own message. Other codes
 * stay. */
static int s_fcd_instead(vb_vsphere_t *vs, int rc, const char *name, vb_vs_fcd_t *fcd)
{
    if (rc != VB_ENOTFOUND)
        return rc;
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", vb_error_msg());
    int frc = vb_vs_fcd_find(vs, name, fcd);
    if (frc == VB_ENOTFOUND)
        return vb_error_set(rc, "%s", saved);
    return frc;
}

static int s_p_snap_create(vb_provider_t *p, const char *vm, const char *name, char **id)
{
    vb_vs_fcd_t fcd = {0};
    int rc = vb_vsphere_snapshot_create(p->impl, vm, name, "vbak backup", id);
    if (rc == VB_ENOTFOUND && (rc = s_fcd_instead(p->impl, rc, vm, &fcd)) == 0)
        rc = vb_vs_fcd_snapshot_create(p->impl, &fcd, name, id);
    vb_vs_fcd_clear(&fcd);
    return rc;
}

static int s_p_snap_remove(vb_provider_t *p, const char *vm, const char *id)
{
    vb_vs_fcd_t fcd = {0};
    int rc = vb_vsphere_snapshot_remove(p->impl, vm, id);
    /* VB_ENOTFOUND means "removed" to the caller: only a lookup that found no FCD either may
     * leave it; a failed lookup gives its own code */
    if (rc == VB_ENOTFOUND && (rc = s_fcd_instead(p->impl, rc, vm, &fcd)) == 0)
        rc = vb_vs_fcd_snapshot_remove(p->impl, &fcd, id);
    vb_vs_fcd_clear(&fcd);
    return rc;
}

/* An FCD's key is its id, a VM disk's a device number. */
static bool s_is_fcd_key(const char *disk_key)
{
    return disk_key[0] && strspn(disk_key, "0123456789") != strlen(disk_key);
}

static int s_p_changed(vb_provider_t *p, const char *vm, const char *disk_key,
                       const char *snapshot_id, uint64_t start, const char *change_id,
                       vb_extent_list_t *out, char **new_change_id_out)
{
    if (s_is_fcd_key(disk_key))
        return vb_vs_fcd_changed_areas(p->impl, disk_key, snapshot_id, start, change_id, out,
                                       new_change_id_out);
    return vb_vsphere_changed_areas(p->impl, vm, disk_key, snapshot_id, start, change_id, out,
                                    new_change_id_out);
}

/* A vddk:// route reads the disk at the snapshot whose moref it names (VixDiskLib_ConnectEx's
 * snapshotRef); the file service route already names the file the snapshot froze. */
/* (An FCD's vddk:// route takes its snapshot id the same way: disk_vddk.c gives it to
 * VixDiskLib as the vStorageObject spec's ssId.) */
static char *s_p_uri_at_snapshot(vb_provider_t *p, const char *uri, const char *snapshot_id)
{
    (void)p;
    if (strncmp(uri, "vddk://", 7) != 0)
        return strdup(uri);
    char *esc = vb_disk_uri_escape(snapshot_id, NULL), *out = NULL;
    if (esc && asprintf(&out, "%s&snapshot=%s", uri, esc) < 0)
        out = NULL;
    free(esc);
    if (!out)
        vb_error_set(VB_ENOMEM, "out of memory");
    return out;
}

/* PrepareForAccess/EndAccess block Storage vMotion of a VM; a First Class Disk has no VM to
 * prepare (its relocation goes through the VStorageObjectManager, not RelocateVM_Task). */
static int s_p_prepare(vb_provider_t *p, const char *vm, const char *who)
{
    vb_vs_fcd_t fcd = {0};
    int rc = vb_vsphere_prepare_for_access(p->impl, vm, who);
    if (rc == VB_ENOTFOUND && (rc = s_fcd_instead(p->impl, rc, vm, &fcd)) == 0)
        VB_LOG_INFO("vsphere", "prepare_for_access fcd=\"%s\" id=%s: no VM, nothing to block",
                    fcd.name, fcd.id);
    vb_vs_fcd_clear(&fcd);
    return rc;
}

static int s_p_end_access(vb_provider_t *p, const char *vm)
{
    vb_vs_fcd_t fcd = {0};
    int rc = vb_vsphere_end_access(p->impl, vm);
    if (rc == VB_ENOTFOUND)
        rc = s_fcd_instead(p->impl, rc, vm, &fcd);
    vb_vs_fcd_clear(&fcd);
    return rc;
}

static int s_p_create_vm(vb_provider_t *p, const char *name, const char *host,
                         const char *datastore, const vb_inv_new_disk_t *disks, size_t n)
{
    return vb_vsphere_create_vm(p->impl, name, host, datastore, disks, n);
}

static const char *s_p_server_version(vb_provider_t *p)
{
    return vb_vsphere_api_version(p->impl);
}

static void s_p_destroy(vb_provider_t *p)
{
    vb_vsphere_t *vs = p->impl;
    vb_vsphere_destroy(&vs);
    free(p);
}

static const vb_provider_ops_t s_ops = {
    .name = "vsphere",
    .inventory = s_p_inventory,
    .snapshot_create = s_p_snap_create,
    .snapshot_remove = s_p_snap_remove,
    .changed_areas = s_p_changed,
    .uri_at_snapshot = s_p_uri_at_snapshot,
    .prepare_for_access = s_p_prepare,
    .end_access = s_p_end_access,
    .create_vm = s_p_create_vm,
    .server_version = s_p_server_version,
    .destroy = s_p_destroy,
};

vb_provider_t *vb_vsphere_provider_new(const vb_vsphere_options_t *opts)
{
    vb_provider_t *p = calloc(1, sizeof *p);
    if (!p) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    p->ops = &s_ops;
    p->impl = vb_vsphere_new(opts);
    if (!p->impl) {
        free(p);
        return NULL;
    }
    return p;
}

vb_vsphere_t *vb_vsphere_provider_session(vb_provider_t *provider)
{
    if (!provider || provider->ops != &s_ops)
        return NULL;
    return provider->impl;
}
