/* s3xml — what an S3 server's XML answers say, as plain structs: a ListObjectsV2 page, a
 * ListMultipartUploads page, a ListObjectVersions page, an InitiateMultipartUpload result and an
 * error body.
 *
 * Pure functions from bytes to a struct (no I/O), parsed with the project's expat DOM
 * (vsphere/xml.h: no DOCTYPE, bounded depth, nodes and size), so the fuzz target
 * tests/fuzz/fuzz_s3_xml.c drives them directly. Element names are matched by local name
 * whatever the namespace (AWS and RGW bind the 2006-03-01 namespace, some servers none).
 * Each parse returns 0 with *out filled (caller frees it with the matching _free, which is safe
 * on a zeroed or half-filled struct), or VB_EPROTO naming what was wrong. */
#ifndef VB_REPO_S3XML_H
#define VB_REPO_S3XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"

typedef struct {
    char *key;
    uint64_t size;
    time_t mtime; /* LastModified, whole seconds */
} vb_s3_object_t;

/* One page of ListObjectsV2. */
typedef struct {
    vb_s3_object_t *objs;
    size_t n;
    bool truncated;
    char *next_token; /* NextContinuationToken; NULL when the listing is complete */
} vb_s3_list_t;

typedef struct {
    char *key;
    char *upload_id;
    time_t initiated;
} vb_s3_upload_t;

/* One page of ListMultipartUploads. */
typedef struct {
    vb_s3_upload_t *ups;
    size_t n;
    bool truncated;
    char *next_key; /* NextKeyMarker / NextUploadIdMarker; NULL when complete */
    char *next_upload_id;
} vb_s3_uploads_t;

/* One entry of ListObjectVersions: a version of a key, or a delete marker. */
typedef struct {
    char *key;
    char *version_id;
    bool marker; /* a <DeleteMarker> (no bytes), not a <Version> */
    bool latest; /* IsLatest: the key's current entry */
    uint64_t size;
    time_t mtime;
} vb_s3_version_t;

/* One page of ListObjectVersions: entries in the answer's order (per key, newest first). */
typedef struct {
    vb_s3_version_t *vers;
    size_t n;
    bool truncated;
    char *next_key; /* NextKeyMarker / NextVersionIdMarker; NULL when complete */
    char *next_version_id;
} vb_s3_versions_t;

/* An <Error> body. code NULL when the body is not one (an empty or non-XML body). */
typedef struct {
    char *code;
    char *message;
} vb_s3_error_t;

int vb_s3_list_parse(const char *data, size_t len, vb_s3_list_t *out) VB_WUR;
void vb_s3_list_free(vb_s3_list_t *l);

int vb_s3_uploads_parse(const char *data, size_t len, vb_s3_uploads_t *out) VB_WUR;
void vb_s3_uploads_free(vb_s3_uploads_t *u);

int vb_s3_versions_parse(const char *data, size_t len, vb_s3_versions_t *out) VB_WUR;
void vb_s3_versions_free(vb_s3_versions_t *v);

/* InitiateMultipartUploadResult: *upload_id (caller frees). */
int vb_s3_initiate_parse(const char *data, size_t len, char **upload_id) VB_WUR;

/* Never fails on a body that is not an error: out->code stays NULL. VB_ENOMEM only. */
int vb_s3_error_parse(const char *data, size_t len, vb_s3_error_t *out) VB_WUR;
void vb_s3_error_free(vb_s3_error_t *e);

/* ISO 8601 as S3 writes it ("2026-12-07T09:33:06.344Z", fraction optional) → seconds since the
 * epoch. VB_EPROTO otherwise. */
int vb_s3_time_parse(const char *text, time_t *out) VB_WUR;

#endif
