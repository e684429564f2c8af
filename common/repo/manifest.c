#include "repo/manifest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"

#define S_FORMAT "vbak-manifest"
#define S_SUFFIX ".json"
#define S_MAX_BYTES (16u << 20) /* a manifest of thousands of disks is still far below */

void vb_manifest_clear(vb_manifest_t *m)
{
    if (!m)
        return;
    vb_restore_point_clear(&m->rp);
    free(m->vm_id);
    free(m->provider);
    memset(m, 0, sizeof *m);
}

void vb_manifests_free(vb_manifest_t **ms_p, size_t count)
{
    if (!ms_p || !*ms_p)
        return;
    for (size_t i = 0; i < count; i++)
        vb_manifest_clear(&(*ms_p)[i]);
    free(*ms_p);
    *ms_p = NULL;
}

int vb_manifest_name(int64_t rp_id, char *buf, size_t size)
{
    int n = snprintf(buf, size, VB_MANIFEST_PREFIX "rp%" PRId64 S_SUFFIX, rp_id);
    if (n < 0 || (size_t)n >= size || rp_id <= 0)
        return vb_error_set(VB_EINVAL, "manifest: bad restore point id %" PRId64, rp_id);
    return 0;
}

/* ---- to JSON ---- */

static json_t *s_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *s_id_or_null(int64_t id)
{
    return id ? json_integer(id) : json_null();
}

static json_t *s_disk_to_json(const vb_rp_disk_t *d)
{
    json_t *modes = json_array();
    for (size_t i = 0; modes && i < d->transport_count; i++)
        json_array_append_new(modes, json_string(d->transports[i]));
    return json_pack("{s:s, s:s, s:s, s:I, s:o, s:o, s:I, s:I, s:I, s:o}", "key", d->key, "name",
                     d->name ? d->name : "", "datastore", d->datastore ? d->datastore : "",
                     "capacity", (json_int_t)d->capacity, "change_id", s_str_or_null(d->change_id),
                     "index", s_str_or_null(d->index_path), "logical_bytes",
                     (json_int_t)d->logical_bytes, "new_bytes", (json_int_t)d->new_bytes,
                     "chunk_count", (json_int_t)d->chunk_count, "transports", modes);
}

json_t *vb_manifest_to_json(const vb_manifest_t *m)
{
    const vb_restore_point_t *rp = &m->rp;
    json_t *disks = json_array();
    for (size_t i = 0; disks && i < rp->disk_count; i++)
        if (json_array_append_new(disks, s_disk_to_json(&rp->disks[i])) != 0) {
            json_decref(disks);
            return NULL;
        }
    return json_pack("{s:s, s:i, s:I, s:s, s:o, s:b, s:o, s:o, s:I, s:I, s:s, s:o, s:I, s:o}",
                     "format", S_FORMAT, "version", VB_MANIFEST_VERSION, "restore_point",
                     (json_int_t)rp->id, "vm", rp->vm, "vm_id", s_str_or_null(m->vm_id), "is_fcd",
                     rp->is_fcd, "provider", s_str_or_null(m->provider), "job",
                     s_id_or_null(rp->job_id), "created", (json_int_t)rp->created, "completed",
                     (json_int_t)rp->completed, "kind", vb_rp_kind_name(rp->kind), "parent",
                     s_id_or_null(rp->parent_id), "chunk_size", (json_int_t)m->chunk_size, "disks",
                     disks);
}

/* ---- from JSON ---- */

/* Optional string field: absent or null gives NULL. */
static int s_opt_str(const json_t *o, const char *key, char **out)
{
    const json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = strdup(json_string_value(v));
    return *out ? 0 : -1;
}

/* Integer field >= 0; absent or null gives 0 unless required. */
static int s_uint(const json_t *o, const char *key, bool required, int64_t *out)
{
    const json_t *v = json_object_get(o, key);
    *out = 0;
    if (!v || json_is_null(v))
        return required ? -1 : 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

static int s_disk_from_json(const json_t *j, vb_rp_disk_t *d)
{
    int64_t cap, logical, fresh, chunks;
    const json_t *modes = json_object_get(j, "transports");
    if (!json_is_object(j) || s_opt_str(j, "key", &d->key) || !d->key ||
        s_opt_str(j, "name", &d->name) || s_opt_str(j, "datastore", &d->datastore) ||
        s_opt_str(j, "change_id", &d->change_id) || s_opt_str(j, "index", &d->index_path) ||
        !d->index_path || s_uint(j, "capacity", true, &cap) ||
        s_uint(j, "logical_bytes", false, &logical) || s_uint(j, "new_bytes", false, &fresh) ||
        s_uint(j, "chunk_count", false, &chunks) || (modes && !json_is_array(modes)))
        return -1;
    d->capacity = (uint64_t)cap;
    d->logical_bytes = (uint64_t)logical;
    d->new_bytes = (uint64_t)fresh;
    d->chunk_count = (uint64_t)chunks;
    size_t n = json_array_size(modes);
    d->transports = calloc(n ? n : 1, sizeof *d->transports);
    if (!d->transports)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(modes, i));
        if (!s || !(d->transports[d->transport_count++] = strdup(s)))
            return -1;
    }
    return 0;
}

static int s_disks_from_json(const json_t *arr, vb_restore_point_t *rp)
{
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0)
        return -1;
    rp->disks = calloc(n, sizeof *rp->disks);
    if (!rp->disks)
        return -1;
    for (size_t i = 0; i < n; i++) {
        rp->disk_count++;
        if (s_disk_from_json(json_array_get(arr, i), &rp->disks[i]) != 0)
            return -1;
    }
    return 0;
}

static int s_kind(const json_t *j, vb_rp_kind_t *out)
{
    const char *k = json_string_value(json_object_get(j, "kind"));
    for (int i = VB_RP_FULL; k && i <= VB_RP_INCREMENTAL; i++)
        if (strcmp(k, vb_rp_kind_name((vb_rp_kind_t)i)) == 0) {
            *out = (vb_rp_kind_t)i;
            return 0;
        }
    return -1;
}

int vb_manifest_from_json(const json_t *j, const char *what, vb_manifest_t *out)
{
    memset(out, 0, sizeof *out);
    const char *format = json_string_value(json_object_get(j, "format"));
    int64_t version = 0, chunk = 0;
    if (!format || strcmp(format, S_FORMAT) != 0 || s_uint(j, "version", true, &version))
        return vb_error_set(VB_ECORRUPT, "%s is not a vbak restore point manifest", what);
    if (version > VB_MANIFEST_VERSION)
        return vb_error_set(VB_EUNSUPPORTED,
                            "%s has manifest version %" PRId64 "; this vbak reads up to %d", what,
                            version, VB_MANIFEST_VERSION);
    vb_restore_point_t *rp = &out->rp;
    rp->state = VB_RP_COMPLETE;
    if (s_uint(j, "restore_point", true, &rp->id) || rp->id == 0 || s_opt_str(j, "vm", &rp->vm) ||
        !rp->vm || s_opt_str(j, "vm_id", &out->vm_id) || s_opt_str(j, "provider", &out->provider) ||
        s_uint(j, "job", false, &rp->job_id) || s_uint(j, "created", true, &rp->created) ||
        s_uint(j, "completed", false, &rp->completed) || s_kind(j, &rp->kind) ||
        s_uint(j, "parent", false, &rp->parent_id) || s_uint(j, "chunk_size", false, &chunk) ||
        chunk > UINT32_MAX || s_disks_from_json(json_object_get(j, "disks"), rp)) {
        vb_manifest_clear(out);
        return vb_error_set(VB_ECORRUPT, "%s: a field is missing or has the wrong type", what);
    }
    rp->is_fcd = json_is_true(json_object_get(j, "is_fcd"));
    out->chunk_size = (uint32_t)chunk;
    return 0;
}

/* ---- store ---- */

int vb_manifest_write(vb_store_t *store, const vb_manifest_t *m)
{
    char name[VB_STORE_NAME_MAX];
    int rc = vb_manifest_name(m->rp.id, name, sizeof name);
    if (rc)
        return rc;
    json_t *j = vb_manifest_to_json(m);
    char *text = j ? json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (!text)
        return vb_error_set(VB_ENOMEM, "out of memory for manifest %s", name);
    rc = vb_store_put(store, name, text, strlen(text), VB_STORE_REPLACE | VB_STORE_DURABLE);
    free(text);
    return rc ? vb_error_prefix(rc, "writing manifest %s", name) : 0;
}

static int s_read_named(vb_store_t *store, const char *name, vb_manifest_t *out)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = vb_store_get_alloc(store, name, S_MAX_BYTES, &buf, &len);
    if (rc)
        return rc;
    json_error_t jerr;
    json_t *j = json_loadb(buf, len, 0, &jerr);
    free(buf);
    if (!j)
        return vb_error_set(VB_ECORRUPT, "manifest %s in %s is not JSON: %s (line %d)", name,
                            vb_store_location(store), jerr.text, jerr.line);
    char what[VB_STORE_NAME_MAX + 64];
    snprintf(what, sizeof what, "manifest %s", name);
    rc = vb_manifest_from_json(j, what, out);
    json_decref(j);
    return rc;
}

int vb_manifest_read(vb_store_t *store, int64_t rp_id, vb_manifest_t *out)
{
    char name[VB_STORE_NAME_MAX];
    memset(out, 0, sizeof *out);
    int rc = vb_manifest_name(rp_id, name, sizeof name);
    return rc ? rc : s_read_named(store, name, out);
}

int vb_manifest_remove(vb_store_t *store, int64_t rp_id)
{
    char name[VB_STORE_NAME_MAX];
    int rc = vb_manifest_name(rp_id, name, sizeof name);
    return rc ? rc : vb_store_remove_or_hide(store, name);
}

typedef struct {
    vb_store_t *store;
    vb_manifest_t *ms;
    size_t n, cap;
} s_list_t;

static int s_collect(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)st;
    s_list_t *l = arg;
    size_t len = strlen(name);
    if (len < strlen(S_SUFFIX) || strcmp(name + len - strlen(S_SUFFIX), S_SUFFIX) != 0)
        return 0; /* not a manifest (a future kind of object under the prefix) */
    int rc = VB_GROW(l->ms, l->n, l->cap, 16, "manifests");
    if (!rc)
        rc = s_read_named(l->store, name, &l->ms[l->n]);
    if (!rc)
        l->n++;
    return rc;
}

static int s_cmp_id(const void *a, const void *b)
{
    int64_t x = ((const vb_manifest_t *)a)->rp.id, y = ((const vb_manifest_t *)b)->rp.id;
    return (x > y) - (x < y);
}

int vb_manifest_list(vb_store_t *store, vb_manifest_t **out, size_t *count)
{
    s_list_t l = {.store = store};
    *out = NULL;
    *count = 0;
    int rc = vb_store_list(store, VB_MANIFEST_PREFIX, s_collect, &l);
    if (rc) {
        vb_manifests_free(&l.ms, l.n);
        return rc;
    }
    if (l.n)
        qsort(l.ms, l.n, sizeof *l.ms, s_cmp_id);
    *out = l.ms;
    *count = l.n;
    return 0;
}
