/* soap — the vSphere Web Services transport: SOAP envelopes over HTTPS with libcurl, answers
 * parsed with xml.h, faults turned into VB_E* codes with clear messages, and the TLS policy
 * (a CA file, a pinned SHA-256 thumbprint, or the system CAs; never unverified).
 *
 * A vb_soap_t is one endpoint with one session cookie; it is used by one thread at a time. The
 * file service and the parallel reader make their own curl handles with vb_soap_setup_handle so
 * that they share the TLS policy and the cookie. */
#ifndef VB_VSPHERE_SOAP_H
#define VB_VSPHERE_SOAP_H

#include <curl/curl.h>
#include <stdbool.h>

#include "error.h"
#include "vsphere/xml.h"

/* A fault from the server: name is the fault type without the "Fault" suffix ("InvalidLogin",
 * "NotAuthenticated", "MethodNotFound", ...; "" when the answer named none). */
typedef struct {
    char *name;
    char *message;
} vb_soap_fault_t;

void vb_soap_fault_clear(vb_soap_fault_t *f);

/* The VB_E* code a fault type maps to: InvalidLogin/NotAuthenticated/NoPermission -> VB_EAUTH,
 * MethodNotFound/NotSupported/NotImplemented -> VB_EUNSUPPORTED, InvalidPowerState/
 * InvalidState/TaskInProgress -> VB_EBUSY/VB_EPOLICY, ManagedObjectNotFound/NotFound/
 * FileNotFound -> VB_ENOTFOUND, others -> VB_EPROTO. */
int vb_soap_fault_code(const char *fault_name);

/* Parses one SOAP answer for `method`. On success *doc_out (caller owns) holds the document and
 * *resp_out the <methodResponse> element. A SOAP fault fills *fault (caller clears) and returns
 * vb_soap_fault_code with the message "<method>: <name>: <faultstring>". Anything else is
 * VB_EPROTO naming what was wrong. */
int vb_soap_parse(const char *body, size_t len, long http_status, const char *method,
                  vb_xml_doc_t **doc_out, const vb_xml_node_t **resp_out,
                  vb_soap_fault_t *fault) VB_WUR;

/* Parses "AB:CD:..." (colons optional, any case) into 32 bytes; VB_EINVAL otherwise, with a
 * special word for 20-byte SHA-1 thumbprints, which are not accepted. */
int vb_soap_parse_thumbprint(const char *text, unsigned char out[32]) VB_WUR;
/* Formats 32 bytes as upper-case colon-separated hex into out (at least 96 bytes). */
void vb_soap_format_thumbprint(const unsigned char sha[32], char out[96]);

typedef struct {
    const char *url;        /* "https://host[:port]" (a path, e.g. "/sdk", is replaced) */
    const char *ca_file;    /* PEM file of CAs to verify with; NULL: see thumbprint */
    const char *thumbprint; /* pinned SHA-256 of the leaf certificate; NULL: CA file or system */
    long timeout_s;         /* per request; 0: 300 */
} vb_soap_options_t;

typedef struct vb_soap vb_soap_t;

/* NULL on failure (message set): a URL that is not https, a malformed thumbprint. */
vb_soap_t *vb_soap_new(const vb_soap_options_t *opts);
void vb_soap_destroy(vb_soap_t **self_p);

/* Sends <method xmlns="urn:vim25"><_this type=this_type>this_value</_this>{args}</method>;
 * args is already-escaped XML. Output as vb_soap_parse. */
int vb_soap_call(vb_soap_t *self, const char *method, const char *this_type, const char *this_value,
                 const char *args, vb_xml_doc_t **doc_out, const vb_xml_node_t **resp_out,
                 vb_soap_fault_t *fault) VB_WUR;

/* The API version sent in SOAPAction ("urn:vim25/<version>"). */
int vb_soap_set_version(vb_soap_t *self, const char *api_version) VB_WUR;
/* The session cookie ("vmware_soap_session=..."), NULL before a login. Borrowed. */
const char *vb_soap_cookie(const vb_soap_t *self);
void vb_soap_forget_cookie(vb_soap_t *self);
/* "https://host:port", no trailing slash. Borrowed. */
const char *vb_soap_base_url(const vb_soap_t *self);
/* The SHA-256 thumbprint (colon hex) of the certificate the server presented on the SOAP
 * connection, once a verified handshake saw one; NULL before. Borrowed. */
const char *vb_soap_server_thumbprint(const vb_soap_t *self);

/* Per-handle TLS state: filled while the handshake runs. */
typedef struct {
    const struct vb_soap *soap;
    char received[96]; /* the leaf certificate's SHA-256, colon hex; "" when not seen */
    bool mismatch;     /* pinned and the leaf did not match */
    bool rejected;     /* the last certificate seen failed the check (pin or chain) */
} vb_soap_tls_t;

/* Applies the TLS policy, timeouts and the session cookie to a fresh curl handle. tls must live
 * as long as the handle (its connections keep a pointer to it): declare it beside the handle. */
int vb_soap_setup_handle(const vb_soap_t *self, CURL *h, vb_soap_tls_t *tls) VB_WUR;
/* Turns a failed transfer into a message: TLS failures name the expected and received
 * thumbprints. what: "POST /sdk", "GET /folder/...". Returns the code. */
int vb_soap_transfer_error(const vb_soap_t *self, CURLcode cc, const char *errbuf,
                           const vb_soap_tls_t *tls, const char *what);

#endif
