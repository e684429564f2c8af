/* fuzz_s3_xml — what an S3 server (or anything answering on its address) sends back as XML: a
 * ListObjectsV2 page, a ListMultipartUploads page, a ListObjectVersions page, an
 * InitiateMultipartUpload result, an error body, and the ISO 8601 times inside them. The first byte
 * picks the parser; the seeds are Ceph RGW's real answers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/s3xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_list(const char *d, size_t n)
{
    vb_s3_list_t l;
    if (vb_s3_list_parse(d, n, &l) == 0) {
        for (size_t i = 0; i < l.n; i++)
            if (!l.objs[i].key)
                abort(); /* a parsed entry always has its key */
        if (l.truncated && !l.next_token)
            abort(); /* a truncated page always says where to go on */
    }
    vb_s3_list_free(&l);
}

static void s_uploads(const char *d, size_t n)
{
    vb_s3_uploads_t u;
    if (vb_s3_uploads_parse(d, n, &u) == 0)
        for (size_t i = 0; i < u.n; i++)
            if (!u.ups[i].key || !u.ups[i].upload_id)
                abort();
    vb_s3_uploads_free(&u);
}

static void s_versions(const char *d, size_t n)
{
    vb_s3_versions_t v;
    if (vb_s3_versions_parse(d, n, &v) == 0) {
        for (size_t i = 0; i < v.n; i++)
            if (!v.vers[i].key || !v.vers[i].version_id)
                abort(); /* every entry names its key and version */
        if (v.truncated && (!v.next_key || !v.next_version_id))
            abort();
    }
    vb_s3_versions_free(&v);
}

static void s_initiate(const char *d, size_t n)
{
    char *id = NULL;
    if (vb_s3_initiate_parse(d, n, &id) == 0 && (!id || !*id))
        abort();
    free(id);
}

static void s_error(const char *d, size_t n)
{
    vb_s3_error_t e;
    if (vb_s3_error_parse(d, n, &e) == 0)
        vb_s3_error_free(&e);
}

static void s_time(const char *d, size_t n)
{
    char text[64];
    time_t t;
    if (n >= sizeof text)
        return;
    memcpy(text, d, n);
    text[n] = '\0';
    (void)vb_s3_time_parse(text, &t);
}

static void (*const s_parsers[])(const char *, size_t) = {s_list,  s_uploads, s_initiate,
                                                          s_error, s_time,    s_versions};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t mode = data[0] % (sizeof s_parsers / sizeof s_parsers[0]);
    s_parsers[mode]((const char *)data + 1, size - 1);
    return 0;
}
