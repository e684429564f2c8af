#include "vsphere/soap.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "trace.h"

#define SOAP_MAX_ANSWER (256u * 1024u * 1024u)

struct vb_soap {
    char *base; /* https://host:port */
    char *sdk;  /* base + /sdk */
    char *ca_file;
    bool pinned;
    unsigned char pin[32];
    long timeout_s;
    char *action; /* SOAPAction header line */
    char *cookie; /* "vmware_soap_session=..." or NULL */
    CURL *h;
    vb_soap_tls_t tls;          /* lives as long as h: OpenSSL keeps a pointer to it */
    char server_thumbprint[96]; /* the leaf seen on the last verified handshake; "" none yet */
};

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;
static void s_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void vb_soap_fault_clear(vb_soap_fault_t *f)
{
    if (!f)
        return;
    free(f->name);
    free(f->message);
    f->name = f->message = NULL;
}

int vb_soap_fault_code(const char *n)
{
    static const struct {
        const char *name;
        int code;
    } map[] = {
        {"InvalidLogin", VB_EAUTH},
        {"NotAuthenticated", VB_EAUTH},
        {"NoPermission", VB_EAUTH},
        {"InvalidCertificate", VB_EAUTH},
        {"MethodNotFound", VB_EUNSUPPORTED},
        {"NotSupported", VB_EUNSUPPORTED},
        {"NotImplemented", VB_EUNSUPPORTED},
        {"InvalidPowerState", VB_EPOLICY},
        {"InvalidState", VB_EPOLICY},
        {"SnapshotFault", VB_EPOLICY},
        {"TaskInProgress", VB_EBUSY},
        {"ResourceInUse", VB_EBUSY},
        {"ManagedObjectNotFound", VB_ENOTFOUND},
        {"NotFound", VB_ENOTFOUND},
        {"FileNotFound", VB_ENOTFOUND},
        {"InvalidArgument", VB_EINVAL},
        {"InvalidRequest", VB_EPROTO},
        {"RequestCanceled", VB_EIO},
    };
    if (!n)
        return VB_EPROTO;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].name, n) == 0)
            return map[i].code;
    return VB_EPROTO;
}

static char *s_fault_name(const vb_xml_node_t *detail)
{
    const vb_xml_node_t *d = vb_xml_child(detail, NULL);
    if (!d)
        return strdup("");
    const char *t = vb_xml_xsi_type(d);
    if (t)
        return strdup(t);
    size_t n = strlen(d->name);
    if (n > 5 && strcmp(d->name + n - 5, "Fault") == 0)
        return strndup(d->name, n - 5);
    return strdup(d->name);
}

int vb_soap_parse(const char *body, size_t len, long http_status, const char *method,
                  vb_xml_doc_t **doc_out, const vb_xml_node_t **resp_out, vb_soap_fault_t *fault)
{
    vb_xml_doc_t *doc = NULL;
    int rc = 0;
    *doc_out = NULL;
    *resp_out = NULL;
    if (len == 0) {
        return vb_error_set(VB_EPROTO, "%s: empty answer with HTTP status %ld", method,
                            http_status);
    }
    rc = vb_xml_parse(body, len, &doc);
    if (rc != 0)
        return vb_error_prefix(rc, "%s: HTTP %ld answer", method, http_status);
    const vb_xml_node_t *env = vb_xml_root(doc);
    if (!env->ns || strcmp(env->ns, VB_XML_NS_SOAPENV) != 0 || strcmp(env->name, "Envelope")) {
        rc = vb_error_set(VB_EPROTO, "%s: HTTP %ld answer is not a SOAP envelope (<%s>)", method,
                          http_status, env->name);
        goto out;
    }
    const vb_xml_node_t *b = vb_xml_child(env, "Body");
    const vb_xml_node_t *first = vb_xml_child(b, NULL);
    if (!first) {
        rc = vb_error_set(VB_EPROTO, "%s: SOAP answer has an empty body", method);
        goto out;
    }
    if (strcmp(first->name, "Fault") == 0) {
        const char *fs = vb_xml_path_text(first, "faultstring");
        fault->name = s_fault_name(vb_xml_child(first, "detail"));
        fault->message = strdup(fs ? fs : "");
        if (!fault->name || !fault->message) {
            rc = vb_error_set(VB_ENOMEM, "out of memory");
            goto out;
        }
        rc = vb_error_set(vb_soap_fault_code(fault->name), "%s: %s%s%s", method,
                          fault->name[0] ? fault->name : "SOAP fault",
                          fault->message[0] ? ": " : "", fault->message);
        goto out;
    }
    size_t ml = strlen(method);
    if (strncmp(first->name, method, ml) != 0 || strcmp(first->name + ml, "Response") != 0) {
        rc = vb_error_set(VB_EPROTO, "%s: expected <%sResponse>, got <%s>", method, method,
                          first->name);
        goto out;
    }
    if (http_status < 200 || http_status > 299) {
        rc = vb_error_set(VB_EPROTO, "%s: HTTP status %ld with a normal answer", method,
                          http_status);
        goto out;
    }
    *resp_out = first;
out:
    if (rc != 0)
        vb_xml_doc_destroy(&doc);
    *doc_out = doc;
    return rc;
}

/* ---- thumbprints ---- */

static int s_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int vb_soap_parse_thumbprint(const char *text, unsigned char out[32])
{
    size_t n = 0;
    const char *p = text;
    unsigned char buf[64];
    while (*p) {
        if (*p == ':' || *p == ' ') {
            p++;
            continue;
        }
        int hi = s_hex((unsigned char)p[0]);
        int lo = p[1] ? s_hex((unsigned char)p[1]) : -1;
        if (hi < 0 || lo < 0 || n >= sizeof buf)
            return vb_error_set(VB_EINVAL, "thumbprint '%.120s' is not colon-separated hex", text);
        buf[n++] = (unsigned char)(hi << 4 | lo);
        p += 2;
    }
    if (n == 20)
        return vb_error_set(VB_EINVAL,
                            "thumbprint '%.120s' is a SHA-1 thumbprint; give the "
                            "SHA-256 thumbprint (32 bytes)",
                            text);
    if (n != 32)
        return vb_error_set(VB_EINVAL,
                            "thumbprint '%.120s' has %zu bytes, a SHA-256 "
                            "thumbprint has 32",
                            text, n);
    memcpy(out, buf, 32);
    return 0;
}

void vb_soap_format_thumbprint(const unsigned char sha[32], char out[96])
{
    static const char hx[] = "0123456789ABCDEF";
    for (size_t i = 0; i < 32; i++) {
        out[i * 3] = hx[sha[i] >> 4];
        out[i * 3 + 1] = hx[sha[i] & 15];
        out[i * 3 + 2] = i == 31 ? '\0' : ':';
    }
}

/* ---- TLS ---- */

/* Replaces OpenSSL's chain verification for this connection: the leaf's SHA-256 is always
 * recorded (for messages); pinned, the pin alone decides; otherwise normal verification. */
static int s_cert_verify(X509_STORE_CTX *x, void *arg)
{
    vb_soap_tls_t *tls = arg;
    X509 *leaf = X509_STORE_CTX_get0_cert(x);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!leaf || X509_digest(leaf, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    vb_soap_format_thumbprint(md, tls->received);
    if (tls->soap->pinned) {
        if (memcmp(md, tls->soap->pin, 32) == 0) {
            X509_STORE_CTX_set_error(x, X509_V_OK);
            tls->rejected = false;
            return 1;
        }
        tls->mismatch = tls->rejected = true;
        X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    int ok = X509_verify_cert(x);
    tls->rejected = ok != 1;
    return ok;
}

static CURLcode s_ssl_ctx(CURL *h, void *sslctx, void *arg)
{
    (void)h;
    SSL_CTX *ctx = sslctx;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, s_cert_verify, arg);
    return CURLE_OK;
}

int vb_soap_setup_handle(const vb_soap_t *self, CURL *h, vb_soap_tls_t *tls)
{
    memset(tls, 0, sizeof *tls);
    tls->soap = self;
    CURLcode c = CURLE_OK;
    c |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    c |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    c |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    c |= curl_easy_setopt(h, CURLOPT_TIMEOUT, self->timeout_s);
    c |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    /* A pinned thumbprint is how administrators trust a host whose name is not in its
     * certificate (ESXi by IP); the pin is stronger than a name check. */
    c |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, self->pinned ? 0L : 2L);
    c |= curl_easy_setopt(h, CURLOPT_SSL_SESSIONID_CACHE, 0L);
    if (self->ca_file)
        c |= curl_easy_setopt(h, CURLOPT_CAINFO, self->ca_file);
    c |= curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, s_ssl_ctx);
    c |= curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, tls);
    if (self->cookie)
        c |= curl_easy_setopt(h, CURLOPT_COOKIE, self->cookie);
    if (c != CURLE_OK)
        return vb_error_set(VB_EIO, "libcurl refused an option (is it built with OpenSSL?)");
    return 0;
}

int vb_soap_transfer_error(const vb_soap_t *self, CURLcode cc, const char *errbuf,
                           const vb_soap_tls_t *tls, const char *what)
{
    const char *detail = errbuf && errbuf[0] ? errbuf : curl_easy_strerror(cc);
    if (tls && tls->mismatch) {
        char exp[96];
        vb_soap_format_thumbprint(self->pin, exp);
        return vb_error_set(VB_EAUTH,
                            "%s%s: certificate thumbprint mismatch: expected SHA-256 %s, "
                            "server presented %s; refusing the connection",
                            self->base, what, exp, tls->received);
    }
    /* a handshake that failed without our check rejecting the certificate (the network cut it:
     * a reset, an early EOF) is an outage to ride out, not a certificate to distrust */
    if (cc == CURLE_SSL_CONNECT_ERROR && !(tls && tls->rejected))
        return vb_error_set(VB_EIO, "%s%s: the TLS handshake failed (%s)", self->base, what,
                            detail);
    if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
        cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_SSL_CERTPROBLEM) {
        return vb_error_set(VB_EAUTH, "%s%s: TLS verification failed (%s)%s%s%s", self->base, what,
                            detail, tls && tls->received[0] ? "; server thumbprint SHA-256 " : "",
                            tls ? tls->received : "",
                            self->ca_file ? "" : "; give a CA file or pin the thumbprint");
    }
    if (cc == CURLE_OPERATION_TIMEDOUT)
        return vb_error_set(VB_ETIMEOUT, "%s%s: no answer in time (%s)", self->base, what, detail);
    return vb_error_set(VB_EIO, "%s%s: %s", self->base, what, detail);
}

/* ---- endpoint ---- */

vb_soap_t *vb_soap_new(const vb_soap_options_t *opts)
{
    pthread_once(&s_curl_once, s_curl_init);
    vb_soap_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    if (!opts->url || strncmp(opts->url, "https://", 8) != 0 || !opts->url[8]) {
        vb_error_set(VB_EINVAL, "vSphere URL '%s' must start with https://",
                     opts->url ? opts->url : "");
        goto fail;
    }
    const char *host = opts->url + 8;
    size_t hl = strcspn(host, "/?#");
    self->base = strndup(opts->url, 8 + hl);
    if (!self->base || asprintf(&self->sdk, "%s/sdk", self->base) < 0) {
        self->sdk = NULL;
        vb_error_set(VB_ENOMEM, "out of memory");
        goto fail;
    }
    if (opts->thumbprint && opts->thumbprint[0]) {
        if (vb_soap_parse_thumbprint(opts->thumbprint, self->pin) != 0)
            goto fail;
        self->pinned = true;
    }
    if (opts->ca_file && opts->ca_file[0] && !(self->ca_file = strdup(opts->ca_file))) {
        vb_error_set(VB_ENOMEM, "out of memory");
        goto fail;
    }
    self->timeout_s = opts->timeout_s > 0 ? opts->timeout_s : 300;
    if (vb_soap_set_version(self, "6.5") != 0)
        goto fail;
    self->h = curl_easy_init();
    if (!self->h) {
        vb_error_set(VB_ENOMEM, "cannot create a libcurl handle");
        goto fail;
    }
    return self;
fail:
    vb_soap_destroy(&self);
    return NULL;
}

void vb_soap_destroy(vb_soap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vb_soap_t *self = *self_p;
    if (self->h)
        curl_easy_cleanup(self->h);
    free(self->base);
    free(self->sdk);
    free(self->ca_file);
    free(self->action);
    free(self->cookie);
    free(self);
    *self_p = NULL;
}

int vb_soap_set_version(vb_soap_t *self, const char *v)
{
    char *a = NULL;
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.')
            return vb_error_set(VB_EPROTO, "API version '%.40s' has odd characters", v);
    if (asprintf(&a, "SOAPAction: \"urn:vim25/%s\"", v) < 0)
        return vb_error_set(VB_ENOMEM, "out of memory");
    free(self->action);
    self->action = a;
    return 0;
}

const char *vb_soap_cookie(const vb_soap_t *self)
{
    return self->cookie;
}

void vb_soap_forget_cookie(vb_soap_t *self)
{
    free(self->cookie);
    self->cookie = NULL;
}

const char *vb_soap_base_url(const vb_soap_t *self)
{
    return self->base;
}

const char *vb_soap_server_thumbprint(const vb_soap_t *self)
{
    return self->server_thumbprint[0] ? self->server_thumbprint : NULL;
}

static size_t s_write(char *ptr, size_t size, size_t n, void *ud)
{
    vb_buf_t *b = ud;
    if (vb_buf_append(b, ptr, size * n) != 0)
        return 0;
    return size * n;
}

/* Keeps the session cookie vCenter sets at Login (name=value, attributes dropped). */
static size_t s_header(char *ptr, size_t size, size_t n, void *ud)
{
    vb_soap_t *self = ud;
    size_t len = size * n;
    static const char key[] = "set-cookie:";
    if (len > sizeof key - 1 && strncasecmp(ptr, key, sizeof key - 1) == 0) {
        const char *v = ptr + sizeof key - 1;
        const char *end = ptr + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        const char *stop = v;
        while (stop < end && *stop != ';' && *stop != '\r' && *stop != '\n')
            stop++;
        if (stop - v > 20 && strncmp(v, "vmware_soap_session=", 20) == 0) {
            char *c = strndup(v, (size_t)(stop - v));
            if (c) {
                free(self->cookie);
                self->cookie = c;
            }
        }
    }
    return len;
}

int vb_soap_call(vb_soap_t *self, const char *method, const char *this_type, const char *this_value,
                 const char *args, vb_xml_doc_t **doc_out, const vb_xml_node_t **resp_out,
                 vb_soap_fault_t *fault)
{
    vb_buf_t req = {0}, ans = {.limit = SOAP_MAX_ANSWER};
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    vb_soap_tls_t *tls = &self->tls;
    int rc = vb_buf_printf(&req,
                           "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                           "<soapenv:Envelope xmlns:soapenv=\"" VB_XML_NS_SOAPENV "\" "
                           "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "
                           "xmlns:xsi=\"" VB_XML_NS_XSI "\"><soapenv:Body>"
                           "<%s xmlns=\"urn:vim25\">",
                           method);
    if (rc == 0)
        rc = vb_buf_put_moref(&req, "_this", this_type, this_value);
    if (rc == 0 && args)
        rc = vb_buf_puts(&req, args);
    if (rc == 0)
        rc = vb_buf_printf(&req, "</%s></soapenv:Body></soapenv:Envelope>", method);
    if (rc != 0)
        goto out;
    curl_easy_reset(self->h);
    rc = vb_soap_setup_handle(self, self->h, tls);
    if (rc != 0)
        goto out;
    hdrs = curl_slist_append(hdrs, "Content-Type: text/xml; charset=utf-8");
    if (hdrs)
        hdrs = curl_slist_append(hdrs, self->action);
    if (!hdrs) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    CURLcode c = CURLE_OK;
    c |= curl_easy_setopt(self->h, CURLOPT_URL, self->sdk);
    c |= curl_easy_setopt(self->h, CURLOPT_HTTPHEADER, hdrs);
    c |= curl_easy_setopt(self->h, CURLOPT_POSTFIELDS, req.data);
    c |= curl_easy_setopt(self->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req.len);
    c |= curl_easy_setopt(self->h, CURLOPT_WRITEFUNCTION, s_write);
    c |= curl_easy_setopt(self->h, CURLOPT_WRITEDATA, &ans);
    c |= curl_easy_setopt(self->h, CURLOPT_HEADERFUNCTION, s_header);
    c |= curl_easy_setopt(self->h, CURLOPT_HEADERDATA, self);
    c |= curl_easy_setopt(self->h, CURLOPT_ERRORBUFFER, errbuf);
    if (c != CURLE_OK) {
        rc = vb_error_set(VB_EIO, "libcurl refused an option");
        goto out;
    }
    VB_LOG_DEBUG("vsphere", "call method=%s this=%s", method, this_value);
    CURLcode cc = curl_easy_perform(self->h);
    if (cc != CURLE_OK) {
        char what[160];
        snprintf(what, sizeof what, "/sdk %s", method);
        rc = vb_soap_transfer_error(self, cc, errbuf, tls, what);
        goto out;
    }
    /* a reused connection has no handshake: keep what the last one saw */
    if (tls->received[0])
        snprintf(self->server_thumbprint, sizeof self->server_thumbprint, "%s", tls->received);
    long status = 0;
    curl_easy_getinfo(self->h, CURLINFO_RESPONSE_CODE, &status);
    if (status == 401 || status == 403) {
        rc = vb_error_set(VB_EAUTH, "%s: HTTP %ld from %s", method, status, self->sdk);
        goto out;
    }
    char what[128];
    snprintf(what, sizeof what, "%s.xml", method);
    vb_trace_write(VB_TRACE_SOAP_ENV, what, ans.data, ans.len);
    rc = vb_soap_parse(ans.data ? ans.data : "", ans.len, status, method, doc_out, resp_out, fault);
out:
    curl_slist_free_all(hdrs);
    if (self->h) {
        curl_easy_setopt(self->h, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(self->h, CURLOPT_HTTPHEADER, NULL);
    }
    if (req.data) /* Login carries the password */
        explicit_bzero(req.data, req.cap);
    vb_buf_free(&req);
    vb_buf_free(&ans);
    return rc;
}
