#include "vsphere/xml.h"

#include <errno.h>
#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Expat joins namespace URI and local name with this byte; a URI cannot contain a space. */
#define NS_SEP ' '

struct vb_xml_doc {
    vb_xml_node_t *root;
    vb_xml_node_t *cur;
    size_t depth;
    size_t nodes;
    int rc; /* first failure inside a callback */
    XML_Parser parser;
};

static void s_free_node(vb_xml_node_t *n)
{
    /* Iterative over siblings, recursive over depth (bounded by VB_XML_MAX_DEPTH). */
    while (n) {
        vb_xml_node_t *next = n->next;
        s_free_node(n->first_child);
        for (vb_xml_attr_t *a = n->attrs; a;) {
            vb_xml_attr_t *an = a->next;
            free(a->ns);
            free(a->name);
            free(a->value);
            free(a);
            a = an;
        }
        free(n->ns);
        free(n->name);
        free(n->text);
        free(n);
        n = next;
    }
}

void vb_xml_doc_destroy(vb_xml_doc_t **doc_p)
{
    if (!doc_p || !*doc_p)
        return;
    s_free_node((*doc_p)->root);
    free(*doc_p);
    *doc_p = NULL;
}

const vb_xml_node_t *vb_xml_root(const vb_xml_doc_t *doc)
{
    return doc ? doc->root : NULL;
}

/* Splits expat's "uri<SEP>local" (or "local") into two fresh strings. */
static int s_split_name(const char *full, char **ns, char **name)
{
    const char *sep = strchr(full, NS_SEP);
    *ns = NULL;
    if (sep) {
        *ns = strndup(full, (size_t)(sep - full));
        *name = strdup(sep + 1);
    } else {
        *name = strdup(full);
    }
    if (!*name || (sep && !*ns)) {
        free(*ns);
        free(*name);
        *ns = *name = NULL;
        return VB_ENOMEM;
    }
    return 0;
}

static void s_fail(vb_xml_doc_t *doc, int rc)
{
    if (doc->rc == 0)
        doc->rc = rc;
    XML_StopParser(doc->parser, XML_FALSE);
}

static void XMLCALL s_start(void *ud, const XML_Char *el, const XML_Char **attrs)
{
    vb_xml_doc_t *doc = ud;
    if (doc->rc)
        return;
    if (doc->depth >= VB_XML_MAX_DEPTH || doc->nodes >= VB_XML_MAX_NODES) {
        vb_error_set(VB_ENOMEM, "XML document nests deeper than %d or has more than %u elements",
                     VB_XML_MAX_DEPTH, VB_XML_MAX_NODES);
        s_fail(doc, VB_ENOMEM);
        return;
    }
    vb_xml_node_t *n = calloc(1, sizeof *n);
    if (!n || s_split_name(el, &n->ns, &n->name) != 0) {
        free(n);
        vb_error_set(VB_ENOMEM, "out of memory parsing XML");
        s_fail(doc, VB_ENOMEM);
        return;
    }
    n->parent = doc->cur;
    if (doc->cur) {
        if (doc->cur->last_child)
            doc->cur->last_child->next = n;
        else
            doc->cur->first_child = n;
        doc->cur->last_child = n;
    } else if (!doc->root) {
        doc->root = n;
    } else {
        s_free_node(n);
        return; /* expat refuses a second root anyway */
    }
    doc->cur = n;
    doc->depth++;
    doc->nodes++;
    vb_xml_attr_t **tail = &n->attrs;
    for (size_t i = 0; attrs[i]; i += 2) {
        vb_xml_attr_t *a = calloc(1, sizeof *a);
        if (!a || s_split_name(attrs[i], &a->ns, &a->name) != 0 ||
            !(a->value = strdup(attrs[i + 1]))) {
            if (a) {
                free(a->ns);
                free(a->name);
                free(a);
            }
            vb_error_set(VB_ENOMEM, "out of memory parsing XML");
            s_fail(doc, VB_ENOMEM);
            return;
        }
        *tail = a;
        tail = &a->next;
    }
}

static void XMLCALL s_end(void *ud, const XML_Char *el)
{
    (void)el;
    vb_xml_doc_t *doc = ud;
    if (doc->rc || !doc->cur)
        return;
    if (!doc->cur->text) {
        doc->cur->text = strdup("");
        if (!doc->cur->text) {
            s_fail(doc, vb_error_set(VB_ENOMEM, "out of memory parsing XML"));
            return;
        }
    }
    doc->cur = doc->cur->parent;
    doc->depth--;
}

static void XMLCALL s_chars(void *ud, const XML_Char *s, int len)
{
    vb_xml_doc_t *doc = ud;
    if (doc->rc || !doc->cur || len <= 0)
        return;
    vb_xml_node_t *n = doc->cur;
    char *t = realloc(n->text, n->text_len + (size_t)len + 1);
    if (!t) {
        s_fail(doc, vb_error_set(VB_ENOMEM, "out of memory parsing XML"));
        return;
    }
    memcpy(t + n->text_len, s, (size_t)len);
    n->text_len += (size_t)len;
    t[n->text_len] = '\0';
    n->text = t;
}

static void XMLCALL s_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                              const XML_Char *pubid, int has_internal)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal;
    vb_xml_doc_t *doc = ud;
    vb_error_set(VB_EPROTO, "XML answer carries a DOCTYPE, which a SOAP message never does");
    s_fail(doc, VB_EPROTO);
}

int vb_xml_parse(const char *data, size_t len, vb_xml_doc_t **out)
{
    int rc = 0;
    *out = NULL;
    if (len > VB_XML_MAX_INPUT || len > (size_t)INT32_MAX)
        return vb_error_set(VB_ENOMEM, "XML answer of %zu bytes exceeds the %u byte limit", len,
                            VB_XML_MAX_INPUT);
    vb_xml_doc_t *doc = calloc(1, sizeof *doc);
    if (!doc)
        return vb_error_set(VB_ENOMEM, "out of memory parsing XML");
    doc->parser = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (!doc->parser) {
        rc = vb_error_set(VB_ENOMEM, "cannot create an XML parser");
        goto out;
    }
    XML_SetUserData(doc->parser, doc);
    XML_SetElementHandler(doc->parser, s_start, s_end);
    XML_SetCharacterDataHandler(doc->parser, s_chars);
    XML_SetStartDoctypeDeclHandler(doc->parser, s_doctype);
    if (XML_Parse(doc->parser, data, (int)len, XML_TRUE) == XML_STATUS_ERROR) {
        if (doc->rc) {
            rc = doc->rc;
        } else {
            rc = vb_error_set(VB_EPROTO, "malformed XML at line %lu: %s",
                              (unsigned long)XML_GetCurrentLineNumber(doc->parser),
                              XML_ErrorString(XML_GetErrorCode(doc->parser)));
        }
        goto out;
    }
    if (doc->rc) {
        rc = doc->rc;
        goto out;
    }
    if (!doc->root) {
        rc = vb_error_set(VB_EPROTO, "empty XML document");
        goto out;
    }
out:
    if (doc->parser)
        XML_ParserFree(doc->parser);
    doc->parser = NULL;
    if (rc != 0)
        vb_xml_doc_destroy(&doc);
    *out = doc;
    return rc;
}

const vb_xml_node_t *vb_xml_next(const vb_xml_node_t *node, const char *name)
{
    for (const vb_xml_node_t *n = node ? node->next : NULL; n; n = n->next)
        if (!name || strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

const vb_xml_node_t *vb_xml_child(const vb_xml_node_t *node, const char *name)
{
    if (!node || !node->first_child)
        return NULL;
    const vb_xml_node_t *n = node->first_child;
    if (!name || strcmp(n->name, name) == 0)
        return n;
    return vb_xml_next(n, name);
}

const vb_xml_node_t *vb_xml_path(const vb_xml_node_t *node, const char *path)
{
    char step[128];
    const char *p = path;
    while (node && *p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || n >= sizeof step)
            return NULL;
        memcpy(step, p, n);
        step[n] = '\0';
        node = vb_xml_child(node, step);
        p += n + (slash ? 1 : 0);
    }
    return node;
}

const char *vb_xml_path_text(const vb_xml_node_t *node, const char *path)
{
    const vb_xml_node_t *n = vb_xml_path(node, path);
    return n ? n->text : NULL;
}

const char *vb_xml_attr(const vb_xml_node_t *node, const char *ns, const char *name)
{
    if (!node)
        return NULL;
    for (const vb_xml_attr_t *a = node->attrs; a; a = a->next) {
        if (strcmp(a->name, name) != 0)
            continue;
        if ((!ns && !a->ns) || (ns && a->ns && strcmp(ns, a->ns) == 0))
            return a->value;
    }
    return NULL;
}

const char *vb_xml_xsi_type(const vb_xml_node_t *node)
{
    const char *t = vb_xml_attr(node, VB_XML_NS_XSI, "type");
    if (!t)
        return NULL;
    const char *colon = strrchr(t, ':');
    return colon ? colon + 1 : t;
}

int vb_xml_i64(const vb_xml_node_t *node, const char *what, int64_t *out)
{
    if (!node)
        return vb_error_set(VB_EPROTO, "%s is missing", what);
    const char *s = node->text;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    while (end && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (errno != 0 || end == s || !end || *end != '\0')
        return vb_error_set(VB_EPROTO, "%s is not an integer: '%.40s'", what, node->text);
    *out = (int64_t)v;
    return 0;
}

/* ---- buffer ---- */

int vb_buf_append(vb_buf_t *b, const void *data, size_t len)
{
    size_t limit = b->limit ? b->limit : VB_XML_MAX_INPUT;
    if (len > limit || b->len > limit - len)
        return vb_error_set(VB_ENOMEM, "buffer would exceed its %zu byte limit", limit);
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return vb_error_set(VB_ENOMEM, "out of memory for a %zu byte buffer", cap);
        b->data = d;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int vb_buf_puts(vb_buf_t *b, const char *s)
{
    return vb_buf_append(b, s, strlen(s));
}

int vb_buf_printf(vb_buf_t *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return vb_error_set(VB_EINVAL, "cannot format '%s'", fmt);
    if ((size_t)n < sizeof small)
        return vb_buf_append(b, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return vb_error_set(VB_ENOMEM, "out of memory formatting");
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = vb_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

int vb_buf_put_escaped(vb_buf_t *b, const char *s)
{
    const char *run = s;
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        const char *ent = NULL;
        switch (c) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&apos;";
            break;
        case '\r':
            ent = "&#13;";
            break;
        default:
            if (c != 0 && c < 0x20 && c != '\t' && c != '\n')
                return vb_error_set(VB_EINVAL, "control character 0x%02x cannot go into XML", c);
        }
        if (ent || c == 0) {
            int rc = vb_buf_append(b, run, (size_t)(p - run));
            if (rc == 0 && ent)
                rc = vb_buf_puts(b, ent);
            if (rc != 0 || c == 0)
                return rc;
            run = p + 1;
        }
    }
}

int vb_buf_put_elem(vb_buf_t *b, const char *tag, const char *text)
{
    int rc = vb_buf_printf(b, "<%s>", tag);
    if (rc == 0)
        rc = vb_buf_put_escaped(b, text);
    if (rc == 0)
        rc = vb_buf_printf(b, "</%s>", tag);
    return rc;
}

int vb_buf_put_moref(vb_buf_t *b, const char *tag, const char *type, const char *value)
{
    int rc = vb_buf_printf(b, "<%s type=\"", tag);
    if (rc == 0)
        rc = vb_buf_put_escaped(b, type);
    if (rc == 0)
        rc = vb_buf_puts(b, "\">");
    if (rc == 0)
        rc = vb_buf_put_escaped(b, value);
    if (rc == 0)
        rc = vb_buf_printf(b, "</%s>", tag);
    return rc;
}

void vb_buf_free(vb_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
