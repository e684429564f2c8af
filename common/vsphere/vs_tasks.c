/* vs_tasks — tasks (CreateSnapshot_Task, RemoveSnapshot_Task) polled to completion, and
 * QueryChangedDiskAreas. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "vsphere/vs_internal.h"

int vb_vs_task_info_parse(const vb_xml_node_t *info, const char *what, bool *done,
                          char **result_out)
{
    *done = false;
    if (result_out)
        *result_out = NULL;
    const char *state = vb_xml_path_text(info, "state");
    if (!info || !state)
        return vb_error_set(VB_EPROTO, "%s: task answer without info.state", what);
    if (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0)
        return 0;
    if (strcmp(state, "success") == 0) {
        *done = true;
        /* a ManagedObjectReference is the result's text; an ID (an FCD snapshot's) its <id> */
        const char *result = vb_xml_path_text(info, "result");
        if (result && !*result && vb_xml_path_text(info, "result/id"))
            result = vb_xml_path_text(info, "result/id");
        if (result && result_out && !(*result_out = strdup(result)))
            return vb_error_set(VB_ENOMEM, "out of memory");
        return 0;
    }
    if (strcmp(state, "error") == 0) {
        *done = true;
        const vb_xml_node_t *err = vb_xml_child(info, "error");
        const char *ft = vb_xml_xsi_type(vb_xml_child(err, "fault"));
        const char *msg = vb_xml_path_text(err, "localizedMessage");
        return vb_error_set(vb_soap_fault_code(ft), "%s failed: %s%s%s", what,
                            ft ? ft : "unknown fault", msg && msg[0] ? ": " : "", msg ? msg : "");
    }
    return vb_error_set(VB_EPROTO, "%s: task state '%.40s' is not a TaskInfoState", what, state);
}

typedef struct {
    const char *what;
    bool seen;
    bool done;
    char *result;
} s_task_t;

static int s_task_cb(void *ud, const vb_xml_node_t *oc)
{
    s_task_t *t = ud;
    free(t->result);
    t->result = NULL;
    t->seen = true;
    return vb_vs_task_info_parse(vb_vs_prop(oc, "info"), t->what, &t->done, &t->result);
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int vb_vs_wait_task(vb_vsphere_t *self, const char *task, const char *what, char **result_out)
{
    s_task_t t = {.what = what};
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long delay_ms = 10;
    int rc = 0;
    if (result_out)
        *result_out = NULL;
    for (;;) {
        t.seen = false;
        rc = vb_vs_retrieve_object(self, "Task", task, "info", s_task_cb, &t);
        if (rc != 0)
            break;
        if (!t.seen) {
            rc = vb_error_set(VB_ENOTFOUND, "%s: task %s vanished", what, task);
            break;
        }
        if (t.done) {
            if (result_out) {
                *result_out = t.result;
                t.result = NULL;
            }
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > self->task_timeout_s) {
            rc = vb_error_set(VB_ETIMEOUT, "%s: task %s not finished after %ld s", what, task,
                              self->task_timeout_s);
            break;
        }
        s_sleep_ms(delay_ms);
        delay_ms = delay_ms * 2 > 1000 ? 1000 : delay_ms * 2;
    }
    free(t.result);
    return rc;
}

int vb_vs_run_task(vb_vsphere_t *self, const char *method, const char *type, const char *value,
                      const char *args, const char *what, char **result_out)
{
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    char *task = NULL;
    int rc = vb_vs_call(self, method, type, value, args, &doc, &resp);
    if (rc != 0) {
        rc = vb_error_prefix(rc, "%s", what);
        goto out;
    }
    const char *t = vb_xml_path_text(resp, "returnval");
    if (!t || !*t) {
        rc = vb_error_set(VB_EPROTO, "%s: %s answered no task", what, method);
        goto out;
    }
    task = strdup(t);
    vb_xml_doc_destroy(&doc);
    if (!task) {
        rc = vb_error_set(VB_ENOMEM, "out of memory");
        goto out;
    }
    rc = vb_vs_wait_task(self, task, what, result_out);
out:
    free(task);
    vb_xml_doc_destroy(&doc);
    return rc;
}

int vb_vsphere_snapshot_create(vb_vsphere_t *self, const char *vm, const char *name,
                               const char *description, char **snapshot_id_out)
{
    char *vm_id = NULL;
    char what[256];
    vb_buf_t args = {0};
    *snapshot_id_out = NULL;
    int rc = vb_vs_find_vm(self, vm, &vm_id);
    if (rc != 0)
        return rc;
    snprintf(what, sizeof what, "snapshot '%s' of VM %s", name, vm);
    rc = vb_buf_put_elem(&args, "name", name);
    if (rc == 0)
        rc = vb_buf_put_elem(&args, "description", description ? description : "");
    if (rc == 0)
        rc = vb_buf_puts(&args, "<memory>false</memory><quiesce>false</quiesce>");
    if (rc == 0)
        rc = vb_vs_run_task(self, "CreateSnapshot_Task", "VirtualMachine", vm_id, args.data, what,
                        snapshot_id_out);
    if (rc == 0 && !*snapshot_id_out)
        rc = vb_error_set(VB_EPROTO, "%s: the task gave no snapshot reference", what);
    if (rc == 0)
        VB_LOG_INFO("vsphere", "snapshot created vm=%s name=%s id=%s", vm, name, *snapshot_id_out);
    free(vm_id);
    vb_buf_free(&args);
    return rc;
}

/* Finds a snapshot (by id or name) in the VM's snapshot tree. */
typedef struct {
    const char *want;
    char *id;
    int matches;
} s_snapfind_t;

static int s_snap_walk(s_snapfind_t *f, const vb_xml_node_t *parent, const char *elem, int depth)
{
    if (depth > 64)
        return vb_error_set(VB_EPROTO, "snapshot tree deeper than 64");
    for (const vb_xml_node_t *t = vb_xml_child(parent, elem); t; t = vb_xml_next(t, elem)) {
        const char *id = vb_xml_path_text(t, "snapshot");
        const char *name = vb_xml_path_text(t, "name");
        if (id && (strcmp(id, f->want) == 0 || (name && strcmp(name, f->want) == 0))) {
            f->matches++;
            if (!f->id && !(f->id = strdup(id)))
                return vb_error_set(VB_ENOMEM, "out of memory");
        }
        int rc = s_snap_walk(f, t, "childSnapshotList", depth + 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int s_snap_cb(void *ud, const vb_xml_node_t *oc)
{
    const vb_xml_node_t *snap = vb_vs_prop(oc, "snapshot");
    return snap ? s_snap_walk(ud, snap, "rootSnapshotList", 0) : 0;
}

int vb_vsphere_snapshot_remove(vb_vsphere_t *self, const char *vm, const char *snapshot)
{
    char *vm_id = NULL;
    char what[256];
    s_snapfind_t f = {.want = snapshot};
    int rc = vb_vs_find_vm(self, vm, &vm_id);
    if (rc != 0)
        return rc;
    rc = vb_vs_retrieve_object(self, "VirtualMachine", vm_id, "snapshot", s_snap_cb, &f);
    if (rc == 0 && f.matches == 0)
        rc = vb_error_set(VB_ENOTFOUND, "VM %s has no snapshot '%s'", vm, snapshot);
    else if (rc == 0 && f.matches > 1)
        rc = vb_error_set(VB_EINVAL, "VM %s has %d snapshots named '%s'; give the id", vm,
                          f.matches, snapshot);
    if (rc == 0) {
        snprintf(what, sizeof what, "removing snapshot '%s' of VM %s", snapshot, vm);
        rc = vb_vs_run_task(self, "RemoveSnapshot_Task", "VirtualMachineSnapshot", f.id,
                        "<removeChildren>false</removeChildren><consolidate>true</consolidate>",
                        what, NULL);
    }
    if (rc == 0)
        VB_LOG_INFO("vsphere", "snapshot removed vm=%s id=%s", vm, f.id);
    free(f.id);
    free(vm_id);
    return rc;
}

/* ---- changed block tracking ---- */

int vb_vsphere_parse_disk_change_info(const vb_xml_node_t *info, vb_extent_list_t *out,
                                      uint64_t *span_start, uint64_t *span_length)
{
    int64_t s = 0, l = 0;
    int rc = vb_xml_i64(vb_xml_child(info, "startOffset"), "DiskChangeInfo.startOffset", &s);
    if (rc == 0)
        rc = vb_xml_i64(vb_xml_child(info, "length"), "DiskChangeInfo.length", &l);
    if (rc != 0)
        return rc;
    if (s < 0 || l < 0 || s > INT64_MAX - l)
        return vb_error_set(VB_EPROTO, "DiskChangeInfo span %lld+%lld is invalid", (long long)s,
                            (long long)l);
    uint64_t prev_end = (uint64_t)s;
    for (const vb_xml_node_t *a = vb_xml_child(info, "changedArea"); a;
         a = vb_xml_next(a, "changedArea")) {
        int64_t as = 0, al = 0;
        rc = vb_xml_i64(vb_xml_child(a, "start"), "changedArea.start", &as);
        if (rc == 0)
            rc = vb_xml_i64(vb_xml_child(a, "length"), "changedArea.length", &al);
        if (rc != 0)
            return rc;
        if (as < 0 || al < 0 || as > INT64_MAX - al || (uint64_t)as < prev_end ||
            (uint64_t)(as + al) > (uint64_t)(s + l))
            return vb_error_set(VB_EPROTO,
                                "changedArea %lld+%lld is out of order or outside "
                                "the span %lld+%lld",
                                (long long)as, (long long)al, (long long)s, (long long)l);
        rc = vb_extent_list_add(out, (uint64_t)as, (uint64_t)al);
        if (rc != 0)
            return rc;
        prev_end = (uint64_t)(as + al);
    }
    *span_start = (uint64_t)s;
    *span_length = (uint64_t)l;
    return 0;
}

typedef struct {
    const char *key;
    uint64_t capacity;
    char *change_id;
    char *file;
    bool found;
} s_disk_t;

static int s_disk_cb(void *ud, const vb_xml_node_t *oc)
{
    s_disk_t *d = ud;
    const vb_xml_node_t *devs = vb_vs_prop(oc, "config.hardware.device");
    for (const vb_xml_node_t *dev = vb_xml_child(devs, NULL); dev; dev = vb_xml_next(dev, NULL)) {
        const char *t = vb_xml_xsi_type(dev);
        const char *k = vb_xml_path_text(dev, "key");
        if (!t || strcmp(t, "VirtualDisk") != 0 || !k || strcmp(k, d->key) != 0)
            continue;
        int64_t cap = 0;
        const vb_xml_node_t *cb = vb_xml_child(dev, "capacityInBytes");
        int rc = cb ? vb_xml_i64(cb, "capacityInBytes", &cap)
                    : vb_xml_i64(vb_xml_child(dev, "capacityInKB"), "capacityInKB", &cap);
        if (rc != 0)
            return rc;
        if (!cb)
            cap *= 1024;
        d->capacity = cap > 0 ? (uint64_t)cap : 0;
        const char *cid = vb_xml_path_text(dev, "backing/changeId");
        if (cid && !(d->change_id = strdup(cid)))
            return vb_error_set(VB_ENOMEM, "out of memory");
        const char *file = vb_xml_path_text(dev, "backing/fileName");
        if (file && !(d->file = strdup(file)))
            return vb_error_set(VB_ENOMEM, "out of memory");
        d->found = true;
    }
    return 0;
}

static int s_cbt_on_cb(void *ud, const vb_xml_node_t *oc)
{
    const vb_xml_node_t *on = vb_vs_prop(oc, "config.changeTrackingEnabled");
    *(bool *)ud = on && on->text && strcmp(on->text, "true") == 0;
    return 0;
}

/* A disk without a change ID: say whether tracking is off, or on and not started yet (it gets
 * its first change ID with the next snapshot after it was turned on). */
static int s_no_change_id(vb_vsphere_t *self, const char *vm, const char *vm_id,
                          const char *disk_key)
{
    bool on = false;
    if (vb_vs_retrieve_object(self, "VirtualMachine", vm_id, "config.changeTrackingEnabled",
                              s_cbt_on_cb, &on) != 0)
        on = false;
    if (on)
        return vb_error_set(VB_EUNSUPPORTED,
                            "changed block tracking is on for VM %s but disk %s has no change ID "
                            "yet: the first backup is full",
                            vm, disk_key);
    return vb_error_set(VB_EUNSUPPORTED,
                        "changed block tracking is off for VM %s (disk %s has no change ID): "
                        "every backup is full until it is turned on",
                        vm, disk_key);
}

bool vb_vs_fault_in(const char *name, const char *const *set)
{
    for (size_t i = 0; set[i]; i++)
        if (strcmp(name, set[i]) == 0)
            return true;
    return false;
}

int vb_vs_changed_span(vb_vsphere_t *self, const char *method, const char *this_type,
                       const char *this_value, const char *args, const char *what,
                       const char *change_id, uint64_t pos, vb_extent_list_t *out,
                       uint64_t *next_out)
{
    static const char *const unsupported[] = {"MethodNotFound", "NotSupported", "NotImplemented",
                                              NULL};
    static const char *const unknown_id[] = {"FileFault", "InvalidArgument", "NotFound",
                                             "FileNotFound", NULL};
    vb_xml_doc_t *doc = NULL;
    const vb_xml_node_t *resp = NULL;
    VB_LOG_DEBUG("vsphere", "%s %s from=%llu", method, what, (unsigned long long)pos);
    int rc = vb_vs_call(self, method, this_type, this_value, args, &doc, &resp);
    if (rc != 0 && vb_vs_fault_in(self->last_fault, unsupported))
        rc = vb_error_prefix(VB_EUNSUPPORTED, "changed block tracking is unavailable for %s",
                             what);
    else if (rc != 0 && vb_vs_fault_in(self->last_fault, unknown_id))
        rc = vb_error_prefix(VB_ENOTFOUND,
                             "change ID '%s' of %s is not known to the server (change tracking "
                             "was reset?)",
                             change_id, what);
    uint64_t s = 0, l = 0;
    if (rc == 0)
        rc = vb_vsphere_parse_disk_change_info(vb_xml_child(resp, "returnval"), out, &s, &l);
    if (rc == 0 && (l == 0 || s + l <= pos))
        rc = vb_error_set(VB_EPROTO, "changed areas of %s from %llu made no progress", what,
                          (unsigned long long)pos);
    *next_out = s + l;
    vb_xml_doc_destroy(&doc);
    return rc;
}

/* One QueryChangedDiskAreas of a VM's disk from pos; *next_out where its span ends. */
static int s_query_span(vb_vsphere_t *self, const char *vm, const char *vm_id, const char *disk_key,
                        const char *snapshot_id, const char *change_id, uint64_t pos,
                        vb_extent_list_t *out, uint64_t *next_out)
{
    vb_buf_t args = {0};
    char what[256];
    int rc = 0;
    if (snapshot_id)
        rc = vb_buf_put_moref(&args, "snapshot", "VirtualMachineSnapshot", snapshot_id);
    if (rc == 0)
        rc = vb_buf_printf(&args, "<deviceKey>%s</deviceKey><startOffset>%llu</startOffset>",
                           disk_key, (unsigned long long)pos);
    if (rc == 0)
        rc = vb_buf_put_elem(&args, "changeId", change_id);
    snprintf(what, sizeof what, "disk %s of VM %s", disk_key, vm);
    if (rc == 0)
        rc = vb_vs_changed_span(self, "QueryChangedDiskAreas", "VirtualMachine", vm_id, args.data,
                                what, change_id, pos, out, next_out);
    vb_buf_free(&args);
    return rc;
}

int vb_vsphere_changed_areas(vb_vsphere_t *self, const char *vm, const char *disk_key,
                             const char *snapshot_id, uint64_t start, const char *change_id,
                             vb_extent_list_t *out, char **new_change_id_out)
{
    char *vm_id = NULL;
    s_disk_t disk = {.key = disk_key};
    if (new_change_id_out)
        *new_change_id_out = NULL;
    if (!change_id || !*change_id)
        change_id = "*";
    if (!disk_key[0] || strspn(disk_key, "0123456789") != strlen(disk_key) || strlen(disk_key) > 11)
        return vb_error_set(VB_EINVAL, "disk key '%.40s' is not a device key", disk_key);
    int rc = vb_vs_find_vm(self, vm, &vm_id);
    if (rc != 0)
        return rc;
    /* The disk as the snapshot saw it: its capacity bounds the loop, its changeId is the
     * change ID the next incremental starts from; without one, tracking is off. */
    if (snapshot_id)
        rc = vb_vs_retrieve_object(self, "VirtualMachineSnapshot", snapshot_id,
                                   "config.hardware.device", s_disk_cb, &disk);
    else
        rc = vb_vs_retrieve_object(self, "VirtualMachine", vm_id, "config.hardware.device",
                                   s_disk_cb, &disk);
    if (rc == 0 && !disk.found)
        rc = vb_error_set(VB_ENOTFOUND, "VM %s has no disk with key %s", vm, disk_key);
    else if (rc == 0 && !disk.change_id)
        rc = s_no_change_id(self, vm, vm_id, disk_key);
    for (uint64_t pos = start; rc == 0 && pos < disk.capacity;)
        rc = s_query_span(self, vm, vm_id, disk_key, snapshot_id, change_id, pos, out, &pos);
    if (rc == 0 && new_change_id_out) {
        *new_change_id_out = disk.change_id;
        disk.change_id = NULL;
    }
    free(disk.change_id);
    free(disk.file);
    free(vm_id);
    return rc;
}

int vb_vsphere_snapshot_disk_path(vb_vsphere_t *self, const char *snapshot_id, const char *disk_key,
                                  char **path_out)
{
    s_disk_t disk = {.key = disk_key};
    *path_out = NULL;
    int rc = vb_vs_retrieve_object(self, "VirtualMachineSnapshot", snapshot_id,
                                   "config.hardware.device", s_disk_cb, &disk);
    if (rc == 0 && (!disk.found || !disk.file))
        rc = vb_error_set(VB_ENOTFOUND, "snapshot %s has no disk with key %s", snapshot_id,
                          disk_key);
    if (rc == 0) {
        *path_out = disk.file;
        disk.file = NULL;
    }
    free(disk.file);
    free(disk.change_id);
    return rc;
}
