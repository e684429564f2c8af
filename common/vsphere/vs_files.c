/* vs_files — the datastore HTTP file service: GET with Range, HEAD, PUT, adaptive single or
 * double encoding of names, and the parallel extent reader agents use. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "disk/disk_uri.h"
#include "log.h"
#include "vsphere/vs_internal.h"

#define PIECE_MAX (4u * 1024u * 1024u) /* one GET never asks for more than this */
#define READER_THREADS_MAX 32

int vb_vsphere_split_ds_path(const char *p, char **ds_out, char **path_out)
{
    *ds_out = *path_out = NULL;
    const char *end = p && p[0] == '[' ? strchr(p, ']') : NULL;
    if (!end || end == p + 1)
        return vb_error_set(VB_EINVAL, "'%s' is not a datastore path ([datastore] dir/file)",
                            p ? p : "");
    const char *rest = end + 1;
    while (*rest == ' ')
        rest++;
    if (!*rest)
        return vb_error_set(VB_EINVAL, "datastore path '%s' names no file", p);
    *ds_out = strndup(p + 1, (size_t)(end - p - 1));
    *path_out = strdup(rest);
    if (!*ds_out || !*path_out) {
        free(*ds_out);
        free(*path_out);
        *ds_out = *path_out = NULL;
        return vb_error_set(VB_ENOMEM, "out of memory");
    }
    return 0;
}

char *vb_vsphere_flat_path(const char *descriptor)
{
    size_t n = strlen(descriptor);
    char *out = NULL;
    if (n > 5 && strcmp(descriptor + n - 5, ".vmdk") == 0) {
        if (asprintf(&out, "%.*s-flat.vmdk", (int)(n - 5), descriptor) < 0)
            out = NULL;
    } else {
        out = strdup(descriptor);
    }
    if (!out)
        vb_error_set(VB_ENOMEM, "out of memory");
    return out;
}

static char *s_pct(const char *s, bool keep_slash)
{
    return vb_disk_uri_escape(s, keep_slash ? "/" : NULL);
}

char *vb_vsphere_encode_path(const char *path, vb_vs_encoding_t enc)
{
    char *once = s_pct(path, true);
    if (!once || enc != VB_VS_ENC_DOUBLE) {
        if (!once)
            vb_error_set(VB_ENOMEM, "out of memory");
        return once;
    }
    char *twice = s_pct(once, true);
    free(once);
    if (!twice)
        vb_error_set(VB_ENOMEM, "out of memory");
    return twice;
}

vb_vs_encoding_t vb_vsphere_file_encoding(const vb_vsphere_t *self)
{
    return self->enc;
}

/* ---- which datacenter a datastore is in (the file service's dcPath) ---- */

typedef struct {
    char type; /* 'F' folder, 'D' datacenter, 'S' datastore */
    char *ref;
    char *name;
    char *parent;
    char **ds; /* datacenter: its datastores */
    size_t nds;
} s_ent_t;

typedef struct {
    s_ent_t *v;
    size_t n;
    size_t cap;
} s_ents_t;

static void s_ents_free(s_ents_t *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].ref);
        free(e->v[i].name);
        free(e->v[i].parent);
        for (size_t k = 0; k < e->v[i].nds; k++)
            free(e->v[i].ds[k]);
        free(e->v[i].ds);
    }
    free(e->v);
}

static char *s_dup_or_null(const char *s, bool *oom)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *oom = true;
    return d;
}

static int s_ent_cb(void *ud, const vb_xml_node_t *oc)
{
    s_ents_t *e = ud;
    const vb_xml_node_t *obj = vb_xml_child(oc, "obj");
    const char *type = vb_xml_attr(obj, NULL, "type");
    if (!obj || !type)
        return vb_error_set(VB_EPROTO, "ObjectContent without an object reference");
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 32;
        s_ent_t *v = realloc(e->v, cap * sizeof *v);
        if (!v)
            return vb_error_set(VB_ENOMEM, "out of memory");
        e->v = v;
        e->cap = cap;
    }
    s_ent_t *x = &e->v[e->n++];
    memset(x, 0, sizeof *x);
    bool oom = false;
    const vb_xml_node_t *name = vb_vs_prop(oc, "name");
    const vb_xml_node_t *parent = vb_vs_prop(oc, "parent");
    x->type = strcmp(type, "Datacenter") == 0 ? 'D' : strcmp(type, "Datastore") == 0 ? 'S' : 'F';
    x->ref = s_dup_or_null(obj->text, &oom);
    x->name = s_dup_or_null(name ? name->text : obj->text, &oom);
    x->parent = s_dup_or_null(parent ? parent->text : NULL, &oom);
    const vb_xml_node_t *dss = vb_vs_prop(oc, "datastore");
    for (const vb_xml_node_t *d = vb_xml_child(dss, NULL); d && !oom; d = vb_xml_next(d, NULL)) {
        char **nd = realloc(x->ds, (x->nds + 1) * sizeof *nd);
        if (!nd)
            break;
        x->ds = nd;
        if ((x->ds[x->nds] = s_dup_or_null(d->text, &oom)))
            x->nds++;
    }
    return oom ? vb_error_set(VB_ENOMEM, "out of memory") : 0;
}

/* "folder/sub/dc": the datacenter's names from below the root folder down. */
static int s_inventory_path(const s_ents_t *e, const s_ent_t *dc, const char *root, char **out)
{
    const s_ent_t *chain[64];
    size_t n = 0, len = 0;
    for (const s_ent_t *cur = dc; cur && n < 64;) {
        chain[n++] = cur;
        len += strlen(cur->name) + 1;
        if (!cur->parent || strcmp(cur->parent, root) == 0)
            break;
        const s_ent_t *up = NULL;
        for (size_t i = 0; i < e->n && !up; i++)
            if (strcmp(e->v[i].ref, cur->parent) == 0)
                up = &e->v[i];
        cur = up;
    }
    char *p = malloc(len + 1);
    if (!p)
        return vb_error_set(VB_ENOMEM, "out of memory");
    p[0] = '\0';
    size_t at = 0;
    for (size_t i = n; i-- > 0;) {
        size_t l = strlen(chain[i]->name);
        memcpy(p + at, chain[i]->name, l);
        at += l;
        if (i)
            p[at++] = '/';
    }
    p[at] = '\0';
    *out = p;
    return 0;
}

static void s_dcmap_clear(vb_vsphere_t *self)
{
    for (size_t i = 0; i < self->dcmap_n; i++) {
        free(self->dcmap_ds[i]);
        free(self->dcmap_dc[i]);
    }
    free(self->dcmap_ds);
    free(self->dcmap_dc);
    self->dcmap_ds = self->dcmap_dc = NULL;
    self->dcmap_n = 0;
}

/* Adds (ds name, dc path); a name met in two datacenters keeps a NULL path. Takes dc. */
static int s_dcmap_put(vb_vsphere_t *self, const char *ds, char *dc)
{
    for (size_t i = 0; i < self->dcmap_n; i++) {
        if (strcmp(self->dcmap_ds[i], ds) != 0)
            continue;
        if (!self->dcmap_dc[i] || strcmp(self->dcmap_dc[i], dc) != 0) {
            free(self->dcmap_dc[i]);
            self->dcmap_dc[i] = NULL;
        }
        free(dc);
        return 0;
    }
    char **a = realloc(self->dcmap_ds, (self->dcmap_n + 1) * sizeof *a);
    if (a)
        self->dcmap_ds = a;
    char **b = a ? realloc(self->dcmap_dc, (self->dcmap_n + 1) * sizeof *b) : NULL;
    if (b)
        self->dcmap_dc = b;
    char *name = b ? strdup(ds) : NULL;
    if (!name) {
        free(dc);
        return vb_error_set(VB_ENOMEM, "out of memory");
    }
    self->dcmap_ds[self->dcmap_n] = name;
    self->dcmap_dc[self->dcmap_n] = dc;
    self->dcmap_n++;
    return 0;
}

static int s_dcmap_build(vb_vsphere_t *self)
{
    static const char *const types[] = {"Folder", "Datacenter", "Datastore", NULL};
    static const char *const paths[] = {"name,parent", "name,parent,datastore", "name", NULL};
    s_ents_t e = {0};
    s_dcmap_clear(self);
    int rc = vb_vs_retrieve_view(self, types, paths, s_ent_cb, &e);
    for (size_t i = 0; rc == 0 && i < e.n; i++) {
        if (e.v[i].type != 'D')
            continue;
        for (size_t k = 0; rc == 0 && k < e.v[i].nds; k++) {
            const s_ent_t *ds = NULL;
            for (size_t j = 0; j < e.n && !ds; j++)
                if (e.v[j].type == 'S' && strcmp(e.v[j].ref, e.v[i].ds[k]) == 0)
                    ds = &e.v[j];
            char *path = NULL;
            if (ds)
                rc = s_inventory_path(&e, &e.v[i], self->root_folder, &path);
            if (ds && rc == 0)
                rc = s_dcmap_put(self, ds->name, path);
        }
    }
    s_ents_free(&e);
    return rc;
}

/* The dcPath for a datastore: the option, or the datacenter that holds it. Borrowed. */
static int s_dc_for(vb_vsphere_t *self, const char *ds, const char **dc_out)
{
    if (self->datacenter) {
        *dc_out = self->datacenter;
        return 0;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < self->dcmap_n; i++) {
            if (strcmp(self->dcmap_ds[i], ds) != 0)
                continue;
            if (!self->dcmap_dc[i])
                return vb_error_set(VB_EINVAL,
                                    "datastore '%s' exists in several datacenters; "
                                    "set the datacenter",
                                    ds);
            *dc_out = self->dcmap_dc[i];
            return 0;
        }
        int rc = pass == 0 ? s_dcmap_build(self) : 0; /* new datastores since the last look */
        if (rc != 0)
            return rc;
    }
    return vb_error_set(VB_ENOTFOUND, "no datastore named '%s' on %s", ds,
                        vb_soap_base_url(self->soap));
}

int vb_vs_datacenter_of(vb_vsphere_t *self, const char *ds, const char **dc_out)
{
    return s_dc_for(self, ds, dc_out);
}

/* https://host/folder/<encoded path>?dcPath=<dc>&dsName=<ds> (caller owns). */
static int s_url(vb_vsphere_t *self, const char *ds_file, vb_vs_encoding_t enc, char **url_out,
                 bool *special_out)
{
    char *ds = NULL, *path = NULL, *epath = NULL, *eds = NULL, *edc = NULL, *single = NULL;
    const char *dc = NULL;
    *url_out = NULL;
    int rc = vb_vsphere_split_ds_path(ds_file, &ds, &path);
    if (rc == 0)
        rc = s_dc_for(self, ds, &dc);
    if (rc != 0) {
        free(ds);
        free(path);
        return rc;
    }
    epath = vb_vsphere_encode_path(path, enc);
    single = vb_vsphere_encode_path(path, VB_VS_ENC_SINGLE);
    eds = s_pct(ds, false);
    edc = s_pct(dc, true);
    if (!epath || !single || !eds || !edc ||
        asprintf(url_out, "%s/folder/%s?dcPath=%s&dsName=%s", vb_soap_base_url(self->soap), epath,
                 edc, eds) < 0) {
        *url_out = NULL;
        rc = vb_error_set(VB_ENOMEM, "out of memory");
    }
    /* Single and double encodings differ only when the single one has a '%'. */
    if (special_out)
        *special_out = single && strchr(single, '%') != NULL;
    free(ds);
    free(path);
    free(epath);
    free(single);
    free(eds);
    free(edc);
    return rc;
}

/* ---- one HTTP request on a handle ---- */

typedef struct {
    char *dst;
    size_t cap;
    size_t got;
    uint64_t skip; /* a server that ignored Range: bytes to drop first */
    bool full;
} s_sink_t;

static size_t s_sink_write(char *ptr, size_t size, size_t n, void *ud)
{
    s_sink_t *s = ud;
    size_t len = size * n, used = 0;
    if (s->skip) {
        size_t k = s->skip < len ? (size_t)s->skip : len;
        s->skip -= k;
        used = k;
    }
    size_t want = len - used;
    if (want > s->cap - s->got) {
        want = s->cap - s->got;
        s->full = true;
    }
    if (want)
        memcpy(s->dst + s->got, ptr + used, want);
    s->got += want;
    return s->full ? 0 : len; /* past the window: stop the transfer */
}

typedef struct {
    const char *data;
    size_t len;
    size_t pos;
} s_src_t;

static size_t s_src_read(char *buf, size_t size, size_t n, void *ud)
{
    s_src_t *s = ud;
    size_t k = size * n;
    if (k > s->len - s->pos)
        k = s->len - s->pos;
    memcpy(buf, s->data + s->pos, k);
    s->pos += k;
    return k;
}

typedef enum { HTTP_GET, HTTP_HEAD, HTTP_PUT } s_method_t;

/* One request's state: what goes out, what comes back. */
typedef struct {
    s_method_t m;
    uint64_t offset;
    s_sink_t sink;
    s_src_t src;
    int64_t range_total; /* from "Content-Range: bytes a-b/total", -1 when absent */
    char range[64];
    char errbuf[CURL_ERROR_SIZE];
} s_req_t;

static size_t s_req_header(char *ptr, size_t size, size_t n, void *ud)
{
    s_req_t *r = ud;
    size_t len = size * n;
    static const char key[] = "content-range:";
    if (len > sizeof key - 1 && strncasecmp(ptr, key, sizeof key - 1) == 0) {
        const char *slash = memchr(ptr, '/', len);
        if (slash && slash + 1 < ptr + len && slash[1] >= '0' && slash[1] <= '9')
            r->range_total = strtoll(slash + 1, NULL, 10);
    }
    return len;
}

static int s_req_setopt(CURL *h, s_req_t *r, const char *url, size_t len)
{
    CURLcode c = curl_easy_setopt(h, CURLOPT_URL, url);
    c |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
    c |= curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s_req_header);
    c |= curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    if (r->m == HTTP_HEAD || (r->m == HTTP_GET && len == 0)) {
        c |= curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (r->m == HTTP_GET) {
        snprintf(r->range, sizeof r->range, "%llu-%llu", (unsigned long long)r->offset,
                 (unsigned long long)(r->offset + len - 1));
        c |= curl_easy_setopt(h, CURLOPT_RANGE, r->range);
        c |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_sink_write);
        c |= curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->sink);
    } else {
        c |= curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        c |= curl_easy_setopt(h, CURLOPT_READFUNCTION, s_src_read);
        c |= curl_easy_setopt(h, CURLOPT_READDATA, &r->src);
        c |= curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    }
    return c == CURLE_OK ? 0 : vb_error_set(VB_EIO, "libcurl refused an option");
}

/* Performs the request and turns the outcome into a code: 404 -> VB_ENOTFOUND, 401/403 ->
 * VB_EAUTH, other non-2xx -> VB_EIO; a GET starting past the end (416) reads nothing. */
static int s_req_perform(const vb_soap_t *soap, CURL *h, s_req_t *r, const vb_soap_tls_t *tls,
                         const char *what, long *status_out)
{
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    *status_out = status;
    if (cc == CURLE_WRITE_ERROR && r->sink.full)
        cc = CURLE_OK; /* we stopped the transfer once the window was full */
    if (cc != CURLE_OK)
        return vb_soap_transfer_error(soap, cc, r->errbuf, tls, what);
    if (status == 404)
        return vb_error_set(VB_ENOTFOUND, "%s: HTTP 404", what);
    if (status == 401 || status == 403)
        return vb_error_set(VB_EAUTH, "%s: HTTP %ld (session not accepted by the file service)",
                            what, status);
    if (r->m == HTTP_GET && status == 416) {
        r->sink.got = 0;
        return 0;
    }
    if (status < 200 || status > 299)
        return vb_error_set(VB_EIO, "%s: HTTP %ld", what, status);
    return 0;
}

/* A one-byte ranged GET whose answer states the file's size in Content-Range. */
static int s_http_range_total(const vb_soap_t *soap, CURL *h, vb_soap_tls_t *tls, const char *url,
                              char *byte, size_t *got, int64_t *total)
{
    s_req_t r = {.m = HTTP_GET, .sink = {.dst = byte, .cap = 1}, .range_total = -1};
    const char *what = strstr(url, "/folder/") ? strstr(url, "/folder/") : url;
    long status = 0;
    curl_easy_reset(h);
    int rc = vb_soap_setup_handle(soap, h, tls);
    if (rc == 0)
        rc = s_req_setopt(h, &r, url, 1);
    if (rc == 0)
        rc = s_req_perform(soap, h, &r, tls, what, &status);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    *got = r.sink.got;
    *total = status == 416 ? 0 : r.range_total;
    if (rc == 0 && status == 200) {
        curl_off_t cl = -1;
        curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        *total = cl;
    }
    return rc;
}

/* Runs one request. GET: [offset, offset+len) into buf (*got_out). HEAD: *size_out (from
 * Content-Length, or from a one-byte ranged GET where HEAD is not served). PUT: data. */
static int s_http(const vb_soap_t *soap, CURL *h, vb_soap_tls_t *tls, s_method_t m, const char *url,
                  uint64_t offset, size_t len, void *buf, size_t *got_out, uint64_t *size_out,
                  const void *data)
{
    s_req_t r = {.m = m,
                 .offset = offset,
                 .sink = {.dst = buf, .cap = len},
                 .src = {.data = data, .len = len},
                 .range_total = -1};
    const char *what = strstr(url, "/folder/") ? strstr(url, "/folder/") : url;
    long status = 0;
    curl_easy_reset(h);
    int rc = vb_soap_setup_handle(soap, h, tls);
    if (rc == 0)
        rc = s_req_setopt(h, &r, url, len);
    if (rc == 0)
        rc = s_req_perform(soap, h, &r, tls, what, &status);
    if (rc == 0 && m == HTTP_GET && status == 200 && offset > 0 && len > 0) {
        /* The server ignored Range and sent the file from byte 0: fetch again, skipping. */
        r.sink = (s_sink_t){.dst = buf, .cap = len, .skip = offset};
        curl_easy_setopt(h, CURLOPT_RANGE, NULL);
        rc = s_req_perform(soap, h, &r, tls, what, &status);
    }
    curl_off_t cl = -1;
    if (rc == 0 && m == HTTP_HEAD)
        curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    bool head_unserved = m == HTTP_HEAD && (rc == VB_EIO || (rc == 0 && cl < 0));
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    if (head_unserved) {
        /* No HEAD (or no length in it): GET one byte and read the total of Content-Range. */
        char byte;
        size_t got = 0;
        rc = s_http_range_total(soap, h, tls, url, &byte, &got, &r.range_total);
        if (rc == 0 && r.range_total < 0)
            rc = vb_error_set(VB_EPROTO, "%s: the file service states no size", what);
        cl = r.range_total;
    }
    if (rc == 0 && got_out)
        *got_out = r.sink.got;
    if (rc == 0 && size_out)
        *size_out = (uint64_t)cl;
    return rc;
}

/* Runs a request with the encoding the server was found to need; on 404 for a name where the
 * encodings differ, the other one; learns what worked. *url_out (optional) is the URL that
 * worked. */
static int s_adaptive(vb_vsphere_t *self, s_method_t m, const char *ds_file, uint64_t offset,
                      size_t len, void *buf, size_t *got, uint64_t *size, const void *data,
                      char **url_out)
{
    vb_vs_encoding_t first = self->enc != VB_VS_ENC_UNKNOWN ? self->enc : self->enc_try;
    vb_vs_encoding_t order[2] = {first,
                                 first == VB_VS_ENC_SINGLE ? VB_VS_ENC_DOUBLE : VB_VS_ENC_SINGLE};
    char *url = NULL;
    bool special = false;
    int rc = 0;
    if (!self->file_h && !(self->file_h = curl_easy_init()))
        return vb_error_set(VB_ENOMEM, "cannot create a libcurl handle");
    CURL *h = self->file_h;
    bool http_404 = false;
    for (int i = 0; i < 2; i++) {
        free(url);
        url = NULL;
        rc = s_url(self, ds_file, order[i], &url, &special);
        if (rc != 0)
            break;
        rc = s_http(self->soap, h, &self->file_tls, m, url, offset, len, buf, got, size, data);
        if (rc == 0 && special && self->enc != order[i]) {
            if (self->enc != VB_VS_ENC_UNKNOWN || i > 0)
                VB_LOG_INFO("vsphere", "file service needs %s encoding url=%s",
                            order[i] == VB_VS_ENC_DOUBLE ? "double" : "single",
                            vb_soap_base_url(self->soap));
            self->enc = order[i];
        }
        /* PUT creates: a 404 does not tell the encoding apart. Names without a '%' once
         * encoded read the same either way. */
        http_404 = rc == VB_ENOTFOUND;
        if (rc != VB_ENOTFOUND || !special || m == HTTP_PUT)
            break;
    }
    if (http_404)
        rc = vb_error_set(VB_ENOTFOUND, "%s: not found on %s%s", ds_file,
                          vb_soap_base_url(self->soap),
                          special ? " (tried single and double encoding)" : "");
    if (rc == 0 && url_out) {
        *url_out = url;
        url = NULL;
    }
    free(url);
    return rc;
}

int vb_vsphere_file_get(vb_vsphere_t *self, const char *ds_file, uint64_t offset, size_t length,
                        void *buf, size_t *got_out)
{
    size_t got = 0;
    int rc = s_adaptive(self, HTTP_GET, ds_file, offset, length, buf, &got, NULL, NULL, NULL);
    if (got_out)
        *got_out = rc == 0 ? got : 0;
    return rc;
}

int vb_vsphere_file_size(vb_vsphere_t *self, const char *ds_file, uint64_t *size_out)
{
    return s_adaptive(self, HTTP_HEAD, ds_file, 0, 0, NULL, NULL, size_out, NULL, NULL);
}

int vb_vsphere_file_put(vb_vsphere_t *self, const char *ds_file, const void *data, size_t len)
{
    return s_adaptive(self, HTTP_PUT, ds_file, 0, len, NULL, NULL, NULL, data, NULL);
}

/* ---- parallel reader ---- */

typedef struct {
    uint64_t offset; /* in the file */
    size_t len;
    size_t dst_off; /* in dst */
} s_piece_t;

typedef struct {
    const vb_soap_t *soap;
    const char *url;
    s_piece_t *pieces;
    size_t count;
    char *dst;
    pthread_mutex_t mu;
    size_t next;
    int rc;
    char msg[1024];
} s_job_t;

static void *s_worker(void *arg)
{
    s_job_t *job = arg;
    vb_soap_tls_t tls; /* as long-lived as h */
    CURL *h = curl_easy_init();
    int rc = h ? 0 : vb_error_set(VB_ENOMEM, "cannot create a libcurl handle");
    for (;;) {
        pthread_mutex_lock(&job->mu);
        if (rc != 0 && job->rc == 0) {
            job->rc = rc;
            snprintf(job->msg, sizeof job->msg, "%s", vb_error_msg());
        }
        size_t i = job->rc == 0 && job->next < job->count ? job->next++ : job->count;
        pthread_mutex_unlock(&job->mu);
        if (i >= job->count)
            break;
        s_piece_t *p = &job->pieces[i];
        size_t got = 0;
        rc = s_http(job->soap, h, &tls, HTTP_GET, job->url, p->offset, p->len,
                    job->dst + p->dst_off, &got, NULL, NULL);
        if (rc == 0 && got != p->len)
            rc = vb_error_set(VB_EIO,
                              "short read at offset %llu: %zu of %zu bytes (file ends "
                              "before the extent)",
                              (unsigned long long)p->offset, got, p->len);
    }
    if (h)
        curl_easy_cleanup(h);
    return NULL;
}

int vb_vsphere_file_read_extents(vb_vsphere_t *self, const char *ds_file,
                                 const vb_extent_t *extents, size_t count, unsigned threads,
                                 void *dst)
{
    s_job_t job = {.soap = self->soap, .dst = dst};
    char *url = NULL;
    pthread_t tids[READER_THREADS_MAX];
    unsigned started = 0;
    size_t npieces = 0, pos = 0;
    int rc = 0;
    for (size_t i = 0; i < count; i++)
        npieces += (size_t)((extents[i].length + PIECE_MAX - 1) / PIECE_MAX);
    if (npieces == 0)
        return 0;
    /* Learn the encoding (and that the file exists) once, on this thread. */
    uint64_t size = 0;
    rc = s_adaptive(self, HTTP_HEAD, ds_file, 0, 0, NULL, NULL, &size, NULL, &url);
    if (rc != 0)
        return rc;
    job.pieces = calloc(npieces, sizeof *job.pieces);
    if (!job.pieces) {
        rc = vb_error_set(VB_ENOMEM, "out of memory for %zu pieces", npieces);
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        if (extents[i].offset + extents[i].length > size) {
            rc = vb_error_set(VB_EINVAL, "%s: extent %llu+%llu ends past the file's %llu bytes",
                              ds_file, (unsigned long long)extents[i].offset,
                              (unsigned long long)extents[i].length, (unsigned long long)size);
            goto out;
        }
        for (uint64_t o = 0; o < extents[i].length; o += PIECE_MAX) {
            uint64_t l = extents[i].length - o < PIECE_MAX ? extents[i].length - o : PIECE_MAX;
            job.pieces[job.count++] = (s_piece_t){extents[i].offset + o, (size_t)l, pos};
            pos += (size_t)l;
        }
    }
    job.url = url;
    pthread_mutex_init(&job.mu, NULL);
    if (threads == 0)
        threads = 1;
    if (threads > READER_THREADS_MAX)
        threads = READER_THREADS_MAX;
    if (threads > job.count)
        threads = (unsigned)job.count;
    for (; started < threads; started++)
        if (pthread_create(&tids[started], NULL, s_worker, &job) != 0)
            break;
    if (started == 0) {
        s_worker(&job); /* no thread could start: read here */
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    pthread_mutex_destroy(&job.mu);
    if (job.rc != 0)
        rc = vb_error_set(job.rc, "%s: %s", ds_file, job.msg);
    else
        VB_LOG_DEBUG("vsphere", "read file=%s pieces=%zu threads=%u", ds_file, job.count, started);
out:
    free(job.pieces);
    free(url);
    return rc;
}
