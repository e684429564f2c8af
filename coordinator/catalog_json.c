#include "catalog_json.h"

#include <string.h>

#include "timefmt.h"

json_t *vb_json_time(int64_t unix_ms)
{
    char buf[40];
    if (!unix_ms || vb_time_format_utc(unix_ms, false, buf, sizeof buf) != 0)
        return json_null();
    return json_string(buf);
}

static json_t *s_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* "a\nb" -> ["a", "b"]; NULL -> [] */
static json_t *s_lines(const char *text)
{
    json_t *arr = json_array();
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        json_array_append_new(arr, json_stringn(p, n));
        p = nl ? nl + 1 : p + n;
    }
    return arr;
}

json_t *vb_json_job(const vb_job_t *job, bool details)
{
    json_t *vms = json_array(), *detail = json_array();
    for (size_t i = 0; i < job->vm_count; i++) {
        const vb_job_vm_t *v = &job->vms[i];
        json_array_append_new(vms, json_string(v->vm));
        /* a snapshot still there after its VM ended is being removed in the background */
        bool pending = v->state != VB_JOB_RUNNING && (v->snapshot_state == VB_SNAP_REQUESTED ||
                                                      v->snapshot_state == VB_SNAP_CREATED);
        json_t *row = json_pack(
            "{s:s, s:b, s:s, s:o, s:o, s:o, s:o, s:s, s:o, s:b, s:o, s:o}", "vm", v->vm, "fcd",
            v->is_fcd, "state", vb_job_state_name(v->state), "mode",
            v->has_mode ? json_string(vb_rp_kind_name(v->mode)) : json_null(), "mode_reason",
            s_str(v->mode_reason), "restore_point",
            v->restore_point_id ? json_integer(v->restore_point_id) : json_null(), "snapshot",
            s_str(v->snapshot_name), "snapshot_state", vb_snap_state_name(v->snapshot_state),
            "error", s_str(v->error), "snapshot_pending", pending, "snapshot_error",
            s_str(v->snapshot_error), "notes", s_lines(v->notes));
        /* the job engine's JSON per phase (phases.h); [] until written */
        json_t *timing = v->timing ? json_loads(v->timing, 0, NULL) : NULL;
        json_object_set_new(row, "timing", json_is_array(timing) ? timing : json_array());
        if (timing && !json_is_array(timing))
            json_decref(timing);
        json_array_append_new(detail, row);
    }
    json_t *out = json_pack("{s:I, s:s, s:s, s:o, s:o, s:o, s:o, s:b}", "id", (json_int_t)job->id,
                            "kind", vb_job_kind_name(job->kind), "state",
                            vb_job_state_name(job->state), "vms", vms, "started",
                            vb_json_time(job->started), "finished", vb_json_time(job->finished),
                            "error", s_str(job->error), "full", job->full);
    if (details)
        json_object_set_new(out, "vm_details", detail);
    else
        json_decref(detail);
    return out;
}

json_t *vb_json_task(const vb_task_t *t)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:i, s:i, s:o, s:I, s:I}",
                     "id", (json_int_t)t->id, "vm", t->vm, "disk", t->disk_key, "kind",
                     vb_task_kind_name(t->kind), "state", vb_task_state_name(t->state), "offset",
                     (json_int_t)t->offset, "length", (json_int_t)t->length, "agent",
                     s_str(t->agent), "transport", s_str(t->transport), "reason",
                     s_str(t->transport_reason), "attempts", (int)t->attempts, "failures",
                     (int)t->failures, "error", s_str(t->error), "bytes", (json_int_t)t->bytes,
                     "read_bytes", (json_int_t)t->read_bytes);
}

json_t *vb_json_restore_point(const vb_restore_point_t *rp, bool with_disks)
{
    json_t *out = json_pack(
        "{s:I, s:s, s:b, s:o, s:s, s:s, s:o, s:I, s:s, s:o, s:o}", "id", (json_int_t)rp->id, "vm",
        rp->vm, "fcd", rp->is_fcd, "created", vb_json_time(rp->created), "kind",
        vb_rp_kind_name(rp->kind), "state", vb_rp_state_name(rp->state), "parent",
        rp->parent_id ? json_integer(rp->parent_id) : json_null(), "job", (json_int_t)rp->job_id,
        "verify", vb_verify_state_name(rp->verify_state), "verified_at",
        vb_json_time(rp->verified_at), "verify_error", s_str(rp->verify_error));
    if (!with_disks)
        return out;
    json_t *disks = json_array();
    for (size_t i = 0; i < rp->disk_count; i++) {
        const vb_rp_disk_t *d = &rp->disks[i];
        json_t *tr = json_array();
        for (size_t k = 0; k < d->transport_count; k++)
            json_array_append_new(tr, json_string(d->transports[k]));
        json_array_append_new(
            disks, json_pack("{s:s, s:o, s:o, s:I, s:o, s:o, s:I, s:I, s:I, s:o}", "key", d->key,
                             "name", s_str(d->name), "datastore", s_str(d->datastore), "capacity",
                             (json_int_t)d->capacity, "change_id", s_str(d->change_id), "index",
                             s_str(d->index_path), "logical_bytes", (json_int_t)d->logical_bytes,
                             "new_bytes", (json_int_t)d->new_bytes, "chunks",
                             (json_int_t)d->chunk_count, "transports", tr));
    }
    json_object_set_new(out, "disks", disks);
    return out;
}
