#include "repo/s3xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "vsphere/xml.h"

int vb_s3_time_parse(const char *text, time_t *out)
{
    struct tm tm = {0};
    int n = 0;
    if (!text ||
        sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6 ||
        tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
        return vb_error_set(VB_EPROTO, "S3 answer: time '%s' is not ISO 8601",
                            text ? text : "(none)");
    const char *rest = text + n;
    if (*rest == '.')
        rest += 1 + strspn(rest + 1, "0123456789");
    if (strcmp(rest, "Z") != 0 && *rest)
        return vb_error_set(VB_EPROTO, "S3 answer: time '%s' is not in UTC", text);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = timegm(&tm);
    return 0;
}

/* Parses and checks that the root element is `root`. */
static int s_doc(const char *data, size_t len, const char *root, vb_xml_doc_t **doc)
{
    int rc = vb_xml_parse(data, len, doc);
    if (rc)
        return vb_error_prefix(rc, "S3 answer");
    const vb_xml_node_t *r = vb_xml_root(*doc);
    if (!r || strcmp(r->name, root) != 0) {
        rc = vb_error_set(VB_EPROTO, "S3 answer: <%.64s> where <%s> was expected",
                          r ? r->name : "(nothing)", root);
        vb_xml_doc_destroy(doc); /* after the message: it names the root element */
    }
    return rc;
}

/* A copy of the text at path; NULL with *rc set when missing (required) or out of memory. */
static char *s_text(const vb_xml_node_t *n, const char *path, bool required, int *rc)
{
    const char *t = vb_xml_path_text(n, path);
    if (!t) {
        if (required && *rc == 0)
            *rc = vb_error_set(VB_EPROTO, "S3 answer: <%s> without <%s>", n->name, path);
        return NULL;
    }
    char *copy = strdup(t);
    if (!copy && *rc == 0)
        *rc = vb_error_set(VB_ENOMEM, "out of memory reading an S3 answer");
    return copy;
}

static bool s_true(const vb_xml_node_t *n, const char *path)
{
    const char *t = vb_xml_path_text(n, path);
    return t && strcmp(t, "true") == 0;
}

static int s_object(const vb_xml_node_t *c, vb_s3_object_t *o)
{
    int rc = 0;
    int64_t size = 0;
    const vb_xml_node_t *sz = vb_xml_child(c, "Size");
    o->key = s_text(c, "Key", true, &rc);
    if (rc == 0 && !sz)
        rc = vb_error_set(VB_EPROTO, "S3 answer: <Contents> without <Size>");
    if (rc == 0)
        rc = vb_xml_i64(sz, "S3 object size", &size);
    if (rc == 0 && size < 0)
        rc = vb_error_set(VB_EPROTO, "S3 answer: negative object size");
    if (rc == 0)
        rc = vb_s3_time_parse(vb_xml_path_text(c, "LastModified"), &o->mtime);
    o->size = (uint64_t)size;
    return rc;
}

int vb_s3_list_parse(const char *data, size_t len, vb_s3_list_t *out)
{
    vb_xml_doc_t *doc = NULL;
    size_t cap = 0;
    memset(out, 0, sizeof *out);
    int rc = s_doc(data, len, "ListBucketResult", &doc);
    if (rc)
        return rc;
    const vb_xml_node_t *root = vb_xml_root(doc);
    for (const vb_xml_node_t *c = vb_xml_child(root, "Contents"); c && rc == 0;
         c = vb_xml_next(c, "Contents")) {
        if ((rc = VB_GROW(out->objs, out->n, cap, 64, "S3 listing")) == 0) {
            memset(&out->objs[out->n], 0, sizeof out->objs[0]);
            rc = s_object(c, &out->objs[out->n++]);
        }
    }
    out->truncated = s_true(root, "IsTruncated");
    if (rc == 0 && out->truncated)
        out->next_token = s_text(root, "NextContinuationToken", true, &rc);
    vb_xml_doc_destroy(&doc);
    return rc;
}

void vb_s3_list_free(vb_s3_list_t *l)
{
    for (size_t i = 0; l && i < l->n; i++)
        free(l->objs[i].key);
    if (l) {
        free(l->objs);
        free(l->next_token);
        memset(l, 0, sizeof *l);
    }
}

static int s_upload(const vb_xml_node_t *c, vb_s3_upload_t *u)
{
    int rc = 0;
    u->key = s_text(c, "Key", true, &rc);
    u->upload_id = s_text(c, "UploadId", true, &rc);
    return rc ? rc : vb_s3_time_parse(vb_xml_path_text(c, "Initiated"), &u->initiated);
}

int vb_s3_uploads_parse(const char *data, size_t len, vb_s3_uploads_t *out)
{
    vb_xml_doc_t *doc = NULL;
    size_t cap = 0;
    memset(out, 0, sizeof *out);
    int rc = s_doc(data, len, "ListMultipartUploadsResult", &doc);
    if (rc)
        return rc;
    const vb_xml_node_t *root = vb_xml_root(doc);
    for (const vb_xml_node_t *c = vb_xml_child(root, "Upload"); c && rc == 0;
         c = vb_xml_next(c, "Upload")) {
        if ((rc = VB_GROW(out->ups, out->n, cap, 16, "S3 upload listing")) == 0) {
            memset(&out->ups[out->n], 0, sizeof out->ups[0]);
            rc = s_upload(c, &out->ups[out->n++]);
        }
    }
    out->truncated = s_true(root, "IsTruncated");
    if (rc == 0 && out->truncated) {
        out->next_key = s_text(root, "NextKeyMarker", true, &rc);
        out->next_upload_id = s_text(root, "NextUploadIdMarker", true, &rc);
    }
    vb_xml_doc_destroy(&doc);
    return rc;
}

void vb_s3_uploads_free(vb_s3_uploads_t *u)
{
    for (size_t i = 0; u && i < u->n; i++) {
        free(u->ups[i].key);
        free(u->ups[i].upload_id);
    }
    if (u) {
        free(u->ups);
        free(u->next_key);
        free(u->next_upload_id);
        memset(u, 0, sizeof *u);
    }
}

/* A <Version> or a <DeleteMarker> (which has no size). */
static int s_version(const vb_xml_node_t *c, vb_s3_version_t *v)
{
    int rc = 0;
    int64_t size = 0;
    v->marker = strcmp(c->name, "DeleteMarker") == 0;
    v->latest = s_true(c, "IsLatest");
    v->key = s_text(c, "Key", true, &rc);
    v->version_id = s_text(c, "VersionId", true, &rc);
    const vb_xml_node_t *sz = vb_xml_child(c, "Size");
    if (rc == 0 && !v->marker && !sz)
        rc = vb_error_set(VB_EPROTO, "S3 answer: <Version> without <Size>");
    if (rc == 0 && sz)
        rc = vb_xml_i64(sz, "S3 object size", &size);
    if (rc == 0 && size < 0)
        rc = vb_error_set(VB_EPROTO, "S3 answer: negative object size");
    if (rc == 0)
        rc = vb_s3_time_parse(vb_xml_path_text(c, "LastModified"), &v->mtime);
    v->size = (uint64_t)size;
    return rc;
}

int vb_s3_versions_parse(const char *data, size_t len, vb_s3_versions_t *out)
{
    vb_xml_doc_t *doc = NULL;
    size_t cap = 0;
    memset(out, 0, sizeof *out);
    int rc = s_doc(data, len, "ListVersionsResult", &doc);
    if (rc)
        return rc;
    const vb_xml_node_t *root = vb_xml_root(doc);
    for (const vb_xml_node_t *c = vb_xml_child(root, NULL); c && rc == 0;
         c = vb_xml_next(c, NULL)) {
        if (strcmp(c->name, "Version") != 0 && strcmp(c->name, "DeleteMarker") != 0)
            continue;
        if ((rc = VB_GROW(out->vers, out->n, cap, 64, "S3 version listing")) == 0) {
            memset(&out->vers[out->n], 0, sizeof out->vers[0]);
            rc = s_version(c, &out->vers[out->n++]);
        }
    }
    out->truncated = s_true(root, "IsTruncated");
    if (rc == 0 && out->truncated) {
        out->next_key = s_text(root, "NextKeyMarker", true, &rc);
        out->next_version_id = s_text(root, "NextVersionIdMarker", true, &rc);
    }
    vb_xml_doc_destroy(&doc);
    return rc;
}

void vb_s3_versions_free(vb_s3_versions_t *v)
{
    for (size_t i = 0; v && i < v->n; i++) {
        free(v->vers[i].key);
        free(v->vers[i].version_id);
    }
    if (v) {
        free(v->vers);
        free(v->next_key);
        free(v->next_version_id);
        memset(v, 0, sizeof *v);
    }
}

int vb_s3_initiate_parse(const char *data, size_t len, char **upload_id)
{
    vb_xml_doc_t *doc = NULL;
    *upload_id = NULL;
    int rc = s_doc(data, len, "InitiateMultipartUploadResult", &doc);
    if (rc == 0)
        *upload_id = s_text(vb_xml_root(doc), "UploadId", true, &rc);
    if (rc == 0 && !**upload_id) {
        free(*upload_id);
        *upload_id = NULL;
        rc = vb_error_set(VB_EPROTO, "S3 answer: an empty UploadId");
    }
    vb_xml_doc_destroy(&doc);
    return rc;
}

int vb_s3_error_parse(const char *data, size_t len, vb_s3_error_t *out)
{
    vb_xml_doc_t *doc = NULL;
    int rc = 0;
    memset(out, 0, sizeof *out);
    if (len == 0 || s_doc(data, len, "Error", &doc) != 0) {
        vb_error_clear(); /* not an error body: the caller reports the HTTP status alone */
        return 0;
    }
    out->code = s_text(vb_xml_root(doc), "Code", false, &rc);
    out->message = s_text(vb_xml_root(doc), "Message", false, &rc);
    vb_xml_doc_destroy(&doc);
    if (rc == VB_ENOMEM) {
        vb_s3_error_free(out);
        return rc;
    }
    return 0;
}

void vb_s3_error_free(vb_s3_error_t *e)
{
    if (!e)
        return;
    free(e->code);
    free(e->message);
    e->code = e->message = NULL;
}
