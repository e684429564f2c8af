/* xml — a small namespace-aware DOM over libexpat for vSphere SOAP answers, and the growable,
 * size-limited buffer the SOAP requests are written into.
 *
 * Parsing keeps element names as (namespace URI, local name), character data per element, and
 * attributes with their namespace resolved, so `xsi:type` is found whatever prefix the server
 * bound the XML Schema instance namespace to (real vCenter says `xsi:`, govmomi's simulator says
 * `XMLSchema-instance:`). Documents with a DOCTYPE are refused (no entity expansion), and depth,
 * node count and input size are bounded. Nodes are owned by their document. */
#ifndef VB_VSPHERE_XML_H
#define VB_VSPHERE_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define VB_XML_NS_XSI "http://www.w3.org/2001/XMLSchema-instance"
#define VB_XML_NS_SOAPENV "http://schemas.xmlsoap.org/soap/envelope/"
#define VB_XML_MAX_INPUT (256u * 1024u * 1024u)
#define VB_XML_MAX_DEPTH 256
#define VB_XML_MAX_NODES (8u * 1024u * 1024u)

typedef struct vb_xml_attr {
    char *ns;   /* namespace URI; NULL for an unprefixed attribute */
    char *name; /* local name */
    char *value;
    struct vb_xml_attr *next;
} vb_xml_attr_t;

typedef struct vb_xml_node {
    char *ns;   /* namespace URI; NULL when the element has none */
    char *name; /* local name */
    char *text; /* the element's own character data, "" when none */
    size_t text_len;
    vb_xml_attr_t *attrs;
    struct vb_xml_node *parent;
    struct vb_xml_node *first_child;
    struct vb_xml_node *last_child;
    struct vb_xml_node *next;
} vb_xml_node_t;

typedef struct vb_xml_doc vb_xml_doc_t;

/* Parses len bytes. *out (caller owns, free with vb_xml_doc_destroy) on success; VB_EPROTO with
 * the line and expat's reason on malformed input; VB_ENOMEM past a limit. */
int vb_xml_parse(const char *data, size_t len, vb_xml_doc_t **out) VB_WUR;
void vb_xml_doc_destroy(vb_xml_doc_t **doc_p);
const vb_xml_node_t *vb_xml_root(const vb_xml_doc_t *doc);

/* First child element with this local name (any namespace); NULL when none. name NULL: any. */
const vb_xml_node_t *vb_xml_child(const vb_xml_node_t *node, const char *name);
/* The next sibling after node with this local name (NULL: any). */
const vb_xml_node_t *vb_xml_next(const vb_xml_node_t *node, const char *name);
/* Follows local names separated by '/', e.g. "deviceInfo/label". NULL when a step is missing. */
const vb_xml_node_t *vb_xml_path(const vb_xml_node_t *node, const char *path);
/* Text of vb_xml_path(node, path); NULL when missing. Borrowed. */
const char *vb_xml_path_text(const vb_xml_node_t *node, const char *path);
/* An attribute by namespace URI (NULL: unprefixed) and local name; NULL when absent. */
const char *vb_xml_attr(const vb_xml_node_t *node, const char *ns, const char *name);
/* The local part of the node's xsi:type ("VirtualDisk" for "vim25:VirtualDisk"); NULL if none. */
const char *vb_xml_xsi_type(const vb_xml_node_t *node);
/* Parses the node's text as a decimal integer; VB_EPROTO naming `what` when it is not one. */
int vb_xml_i64(const vb_xml_node_t *node, const char *what, int64_t *out) VB_WUR;

/* A growable byte buffer with a hard limit; always NUL-terminated when data != NULL. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    size_t limit; /* 0: VB_XML_MAX_INPUT */
} vb_buf_t;

int vb_buf_append(vb_buf_t *b, const void *data, size_t len) VB_WUR;
int vb_buf_puts(vb_buf_t *b, const char *s) VB_WUR;
int vb_buf_printf(vb_buf_t *b, const char *fmt, ...) VB_PRINTF(2, 3) VB_WUR;
/* Appends s with &, <, >, " and ' written as entities; control characters other than tab, LF
 * and CR are refused (VB_EINVAL): XML 1.0 cannot carry them. */
int vb_buf_put_escaped(vb_buf_t *b, const char *s) VB_WUR;
/* Appends <tag>escaped text</tag>. */
int vb_buf_put_elem(vb_buf_t *b, const char *tag, const char *text) VB_WUR;
/* Appends <tag type="type">escaped value</tag>, the shape of a ManagedObjectReference. */
int vb_buf_put_moref(vb_buf_t *b, const char *tag, const char *type, const char *value) VB_WUR;
void vb_buf_free(vb_buf_t *b);

#endif
