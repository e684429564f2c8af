/* jobs_restore — restores of a restore point to files, into its VM, or into a new VM. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs_internal.h"
#include "log.h"
#include "path.h"
#include "policy/explain.h"
#include "timefmt.h"
#include "wire.h"

/* ---- restores ---- */

static bool s_window_all_holes(const vb_index_t *index, uint64_t offset, uint64_t length)
{
    uint64_t first = offset / index->chunk_size;
    uint64_t last = (offset + length + index->chunk_size - 1) / index->chunk_size;
    for (uint64_t i = first; i < last && i < index->count; i++)
        if (!vb_digest_is_zero(&index->digests[i]))
            return false;
    return true;
}

static int s_restore_plan_disk(vb_jobs_t *self, jb_disk_t *d, bool skip_holes)
{
    vb_plan_task_t *plan = NULL;
    size_t n = 0;
    int rc =
        vb_plan_windows(d->index->capacity, d->index->chunk_size, self->cfg.task_bytes, &plan, &n);
    size_t keep = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        if (skip_holes && s_window_all_holes(d->index, plan[i].offset, plan[i].length)) {
            free(plan[i].extents);
            continue;
        }
        plan[keep++] = plan[i];
    }
    if (!rc && keep)
        rc = jb_add_tasks(self, d, VB_TASK_RESTORE, plan, keep);
    vb_plan_free(&plan, keep);
    return rc;
}

/* Which VM restore may go into: refused while it has snapshots (snapshot contention), unless
 * the user asked to delete them first: then their names go to `req` (the preparation thread
 * deletes them). */
static int s_check_target_vm(const vb_inventory_t *inv, const char *vm_name, bool delete_snapshots,
                             vb_restore_prep_request_t *req)
{
    const vb_inv_vm_t *vm = vb_inventory_find_vm(inv, vm_name);
    if (!vm)
        return vb_error_set(VB_ENOTFOUND,
                            "VM %s is not in the inventory (restore it to a "
                            "directory instead)",
                            vm_name);
    if (vm->snapshot_count == 0)
        return 0;
    if (!delete_snapshots)
        return vb_error_set(VB_EPOLICY,
                            "VM %s has %zu snapshot(s) (first: %s); restoring into a VM with "
                            "snapshots is refused: the restore would contend with the snapshot "
                            "(VDDK best practice). Delete the snapshots (--delete-snapshots) or "
                            "restore to a new location (--to-dir)",
                            vm_name, vm->snapshot_count, vm->snapshots[0]);
    req->vm = strdup(vm_name);
    req->snapshots = calloc(vm->snapshot_count, sizeof *req->snapshots);
    for (size_t i = 0; i < vm->snapshot_count; i++)
        req->snapshots[req->nsnapshots++] = strdup(vm->snapshots[i]);
    return 0;
}

static void s_own_vm(jb_vmrun_t *vm, const vb_restore_point_t *rp)
{
    vm->own.name = strdup(rp->vm);
    vm->own.host = strdup("");
    vm->own.is_fcd = rp->is_fcd;
    vm->own.disks = calloc(rp->disk_count ? rp->disk_count : 1, sizeof *vm->own.disks);
    vm->own.disk_count = rp->disk_count;
    for (size_t i = 0; i < rp->disk_count; i++) {
        vm->own.disks[i].key = strdup(rp->disks[i].key);
        vm->own.disks[i].name = strdup(rp->disks[i].name ? rp->disks[i].name : rp->disks[i].key);
        vm->own.disks[i].datastore = strdup(rp->disks[i].datastore ? rp->disks[i].datastore : "");
        vm->own.disks[i].capacity = rp->disks[i].capacity;
    }
}

/* Appends name to out[*n] as a file name part: '/' and control characters become '_' (a name
 * never makes a directory or an unprintable file name), every other byte stays as it is; at most
 * max bytes, cut at a UTF-8 character boundary. */
static void s_name_part(const char *name, size_t max, char *out, size_t *n)
{
    size_t len = strlen(name);
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)name[len] & 0xC0) == 0x80)
            len--;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        out[(*n)++] = (c == '/' || c < 0x20 || c == 0x7f) ? '_' : (char)c;
    }
}

/* The image of disk `key` of VM `vm` restored to `dir`: DIR/<vm>-<key>.raw, the names as the
 * inventory spells them (README, restore): spaces, '%', '#', '?', non-ASCII and vCenter's "%2f"
 * (its escape of '/') stay as they are; '/' and control characters become '_'. */
static int s_dest_path(const char *dir, const char *vm, const char *key, char *buf, size_t size)
{
    char name[NAME_MAX + 1];
    size_t n = 0;
    s_name_part(vm, 200, name, &n);
    name[n++] = '-';
    s_name_part(key, NAME_MAX - n - 4, name, &n);
    memcpy(name + n, ".raw", 5);
    return vb_pathf(buf, size, "%s/%s", dir, name);
}

/* Makes the image files of a restore to a directory before the job exists, so a restore that
 * cannot write them is refused at once, and a disk with no data (no task) still gets its image:
 * sparse, at full capacity, mode 0600 whatever the umask (it holds a disk's data). A file that
 * exists is refused, never overwritten. On failure the images made so far are removed. */
static int s_create_images(char **dests, vb_index_t **indexes, size_t count)
{
    int rc = 0;
    size_t made = 0;
    for (; made < count && !rc; made++) {
        int fd = open(dests[made], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = errno == EEXIST
                     ? vb_error_set(VB_EEXISTS, "%s exists; remove it or restore elsewhere",
                                    dests[made])
                     : vb_error_set(VB_EIO, "cannot create %s: %s", dests[made], strerror(errno));
            break;
        }
        if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)indexes[made]->capacity) != 0)
            rc = vb_error_set(VB_EIO, "cannot size %s: %s", dests[made], strerror(errno));
        close(fd);
    }
    for (size_t i = 0; rc && i < made; i++)
        unlink(dests[i]);
    return rc;
}

/* --to-dir DIR: made with any missing parents (0700: it will hold disk images); an existing
 * directory is fine, anything else that exists there is refused before a job is made. */
static int s_prepare_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return vb_error_set(VB_EINVAL, "--to-dir %s is not a directory", dir);
    int rc = vb_mkdir_p(dir, 0700);
    if (!rc && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        rc = vb_error_set(VB_EINVAL, "--to-dir %s is not a directory", dir);
    return rc;
}

/* Where a new VM of `need` bytes goes without --datastore: the datastore of the restore
 * point's first disk (`source`) when it has room or its free space is unknown, else the datastore
 * with the most free space that has room, said in `notes`. */
static int s_new_vm_datastore(const vb_inventory_t *inv, const char *source, uint64_t need,
                              const char **out, json_t *notes)
{
    const vb_inv_datastore_t *src = source ? vb_inventory_find_datastore(inv, source) : NULL;
    if (source && (!src || !src->free_space || src->free_space >= need)) {
        *out = source;
        return 0;
    }
    const vb_inv_datastore_t *best = NULL;
    for (size_t i = 0; i < inv->datastore_count; i++) {
        const vb_inv_datastore_t *d = &inv->datastores[i];
        if (d->host_count && d->free_space >= need && (!best || d->free_space > best->free_space))
            best = d;
    }
    if (!best && !source)
        return vb_error_set(VB_EINVAL, "the restore point does not say which datastore its disks "
                                       "were on: name one with --datastore");
    if (!best)
        return vb_error_set(VB_ENOSPC,
                            "datastore %s has %llu bytes free, less than the new VM's %llu, and "
                            "no other datastore has room: free space or name one with --datastore",
                            source, (unsigned long long)src->free_space, (unsigned long long)need);
    char note[512];
    snprintf(note, sizeof note,
             "datastore %s has %llu bytes free, less than the new VM's %llu: the new VM is on "
             "%s, the datastore with the most free space (%llu bytes)",
             source ? source : "(unknown)", (unsigned long long)(src ? src->free_space : 0),
             (unsigned long long)need, best->name, (unsigned long long)best->free_space);
    json_array_append_new(notes, json_string(note));
    *out = best->name;
    return 0;
}

/* Restore to a new VM: checks that VM `name` can be made with one empty disk per disk of the
 * restore point (same keys, names and capacities) on `datastore` (NULL: s_new_vm_datastore) and
 * puts it in `req`; the preparation thread creates it. An encrypted source disk becomes a plain
 * disk holding its plaintext; `notes` gets a line saying so. */
static int s_new_vm_request(vb_jobs_t *self, const vb_restore_point_t *rp, vb_index_t **indexes,
                            const char *name, const char *datastore, const vb_inventory_t *inv,
                            json_t *notes, vb_restore_prep_request_t *req)
{
    vb_provider_t *p = self->cfg.provider;
    if (!p->ops->create_vm)
        return vb_error_set(VB_EUNSUPPORTED,
                            "restore to a new VM: creating a VM is not "
                            "supported by this provider (%s)",
                            p->ops->name);
    if (vb_inventory_find_vm(inv, name))
        return vb_error_set(VB_EEXISTS,
                            "a VM or FCD named %s exists already; choose another "
                            "name for the new VM (or restore into it with --to-vm)",
                            name);
    if (datastore && !vb_inventory_find_datastore(inv, datastore))
        return vb_error_set(VB_ENOTFOUND,
                            "restore to a new VM: datastore %s is not in the inventory", datastore);
    uint64_t need = 0;
    for (size_t i = 0; i < rp->disk_count; i++)
        need += indexes[i] ? indexes[i]->capacity : rp->disks[i].capacity;
    const char *source = rp->disk_count ? rp->disks[0].datastore : NULL;
    int rc = datastore ? 0
                       : s_new_vm_datastore(inv, source && source[0] ? source : NULL, need,
                                            &datastore, notes);
    if (rc)
        return vb_error_prefix(rc, "restore point %lld to a new VM", (long long)rp->id);
    req->disks = calloc(rp->disk_count ? rp->disk_count : 1, sizeof *req->disks);
    if (!req->disks)
        return vb_error_set(VB_ENOMEM, "out of memory");
    req->new_vm = strdup(name);
    req->datastore = strdup(datastore);
    req->ndisks = rp->disk_count;
    const vb_inv_vm_t *src = vb_inventory_find_vm(inv, rp->vm);
    for (size_t i = 0; i < rp->disk_count; i++) {
        req->disks[i].key = rp->disks[i].key ? strdup(rp->disks[i].key) : NULL;
        req->disks[i].name = rp->disks[i].name ? strdup(rp->disks[i].name) : NULL;
        req->disks[i].capacity = indexes[i] ? indexes[i]->capacity : rp->disks[i].capacity;
        for (size_t k = 0; src && k < src->disk_count; k++) {
            if (!src->disks[k].encrypted || !streq(src->disks[k].key, rp->disks[i].key))
                continue;
            char note[512];
            snprintf(note, sizeof note,
                     "disk %s of %s is encrypted: the new VM's disk is a plain "
                     "disk holding its plaintext (encrypt it in vSphere if "
                     "it must stay encrypted)",
                     rp->disks[i].key, rp->vm);
            json_array_append_new(notes, json_string(note));
        }
    }
    return 0;
}

/* What a restore's tasks are planned from: kept on its VM while the preparation runs. */
struct jb_restore_setup {
    vb_restore_point_t rp;
    vb_index_t **indexes; /* per disk of rp */
    char **dests;         /* restore to a directory: the image per disk */
    bool to_dir;
    char *target; /* the VM restored into (its own, or the new one) */
};

void jb_restore_setup_free(jb_restore_setup_t **st_p)
{
    if (!st_p || !*st_p)
        return;
    jb_restore_setup_t *st = *st_p;
    for (size_t i = 0; i < st->rp.disk_count; i++) {
        if (st->indexes)
            vb_index_destroy(&st->indexes[i]);
        if (st->dests)
            free(st->dests[i]);
    }
    free(st->indexes);
    free(st->dests);
    free(st->target);
    vb_restore_point_clear(&st->rp);
    free(st);
    *st_p = NULL;
}

/* The restore's VM and disks as the (prepared) inventory has them, and its tasks. */
static void s_restore_setup(vb_jobs_t *self, jb_vmrun_t *vm, jb_restore_setup_t *st)
{
    jb_job_t *job = vm->job;
    const vb_restore_point_t *rp = &st->rp;
    const vb_inv_vm_t *target = st->to_dir ? NULL : vb_inventory_find_vm(job->inv, st->target);
    if (!st->to_dir && !target) {
        vb_error_set(VB_ENOTFOUND, "VM %s is not in the inventory any more", st->target);
        jb_vm_fail(self, vm, vb_error_msg());
        return;
    }
    free(vm->name);
    vm->name = NULL;
    if (target) {
        jb_vmrun_init(job, vm, target);
    } else {
        s_own_vm(vm, rp);
        jb_vmrun_init(job, vm, &vm->own);
    }
    vm->ndisks = vm->disks_left = rp->disk_count;
    int rc = 0;
    for (size_t i = 0; i < rp->disk_count && !rc; i++) {
        jb_disk_t *d = &vm->disks[i];
        for (size_t k = 0; k < vm->inv->disk_count; k++)
            if (streq(vm->inv->disks[k].key, rp->disks[i].key))
                d->inv = &vm->inv->disks[k];
        d->index = st->indexes[i];
        st->indexes[i] = NULL;
        d->dest_path = st->dests[i];
        st->dests[i] = NULL;
        if (!st->to_dir)
            jb_set_routes(self, d, NULL);
        if (!(rc = jb_register_disk(self, d)))
            rc = s_restore_plan_disk(self, d, !job->to_vm);
    }
    for (size_t i = 0; !rc && i < vm->ndisks && !vm->finished; i++)
        if (vm->disks[i].tasks_left == 0)
            jb_disk_done(self, &vm->disks[i]);
    if (rc && !vm->finished)
        jb_vm_fail(self, vm, vb_error_msg());
}

static int s_on_restore_prep(zloop_t *loop, zsock_t *reader, void *arg)
{
    jb_vmrun_t *vm = arg;
    vb_jobs_t *self = vm->job->engine;
    vb_restore_prep_result_t *res = vb_restore_prep_receive(vm->prep);
    zloop_reader_end(loop, reader);
    zactor_destroy(&vm->prep);
    jb_restore_setup_t *st = vm->setup;
    vm->setup = NULL;
    if (vm->finished) /* cancelled while it was being prepared */
        VB_LOG_INFO("jobs", "restore_prepared_after_end job=%lld vm=%s", (long long)vm->job->id,
                    vm->name);
    else if (!res || res->rc)
        jb_vm_fail(self, vm, res ? res->error : "the restore's preparation thread died");
    else {
        vb_inventory_free(&vm->job->inv);
        vm->job->inv = res->inv;
        res->inv = NULL;
        s_restore_setup(self, vm, st);
    }
    jb_restore_setup_free(&st);
    vb_restore_prep_result_free(&res);
    jb_dispatch(self);
    jb_reap(self);
    return 0;
}

/* Runs the preparation `req` (taken) for the restore on `vm`: on a thread when the coordinator
 * has an event loop, its tasks planned when it is done; else here and now. */
static void s_restore_prepare(vb_jobs_t *self, jb_vmrun_t *vm, vb_restore_prep_request_t *req)
{
    if (!self->cfg.loop || !self->cfg.provider_factory) {
        vb_restore_prep_result_t *res = vb_restore_prep_run(req, self->cfg.provider);
        vb_restore_prep_request_free(&req);
        if (res->rc)
            jb_vm_fail(self, vm, res->error);
        else {
            vb_inventory_free(&vm->job->inv);
            vm->job->inv = res->inv;
            res->inv = NULL;
            s_restore_setup(self, vm, vm->setup);
        }
        jb_restore_setup_free(&vm->setup);
        vb_restore_prep_result_free(&res);
        return;
    }
    vm->prep = vb_restore_prep_start(req, self->cfg.provider_factory, self->cfg.factory_ctx);
    if (!vm->prep)
        jb_vm_fail(self, vm, vb_error_msg());
    else
        zloop_reader(self->cfg.loop, (zsock_t *)vm->prep, s_on_restore_prep, vm);
}

/* The restore point's disks checked against the target and their indexes read into `st`. */
static int s_restore_disks(vb_jobs_t *self, jb_restore_setup_t *st, const char *to_dir,
                           const vb_inv_vm_t *target)
{
    const vb_restore_point_t *rp = &st->rp;
    for (size_t i = 0; i < rp->disk_count; i++) {
        const vb_rp_disk_t *rd = &rp->disks[i];
        int rc = jb_read_index(self, rd->index_path, &st->indexes[i]);
        if (rc)
            return vb_error_prefix(rc, "disk %s", rd->key);
        if (to_dir) {
            char path[PATH_MAX];
            if ((rc = s_dest_path(to_dir, rp->vm, rd->key, path, sizeof path)) != 0)
                return rc;
            st->dests[i] = strdup(path);
            continue;
        }
        if (!target)
            continue;
        const vb_inv_disk_t *now = NULL;
        for (size_t k = 0; k < target->disk_count; k++)
            if (streq(target->disks[k].key, rd->key))
                now = &target->disks[k];
        if (!now)
            return vb_error_set(VB_ENOTFOUND, "VM %s has no disk %s any more", target->name,
                                rd->key);
        if (now->capacity < st->indexes[i]->capacity)
            return vb_error_set(VB_EINVAL,
                                "disk %s of %s is smaller now (%llu bytes) than in the restore "
                                "point (%llu)",
                                rd->key, target->name, (unsigned long long)now->capacity,
                                (unsigned long long)st->indexes[i]->capacity);
    }
    return 0;
}

/* The restore's catalog job row. */
static int s_restore_job_row(vb_jobs_t *self, const vb_restore_point_t *rp, const char *to_dir,
                             const char *new_vm, json_t *notes, int64_t *id)
{
    vb_job_t row = {0};
    vb_job_vm_t jv = {0};
    jv.vm = new_vm ? (char *)new_vm : rp->vm;
    jv.is_fcd = rp->is_fcd && !new_vm;
    jv.restore_point_id = rp->id;
    row.kind = VB_JOB_RESTORE;
    row.started = jb_now();
    row.vms = &jv;
    row.vm_count = 1;
    char opts[64];
    snprintf(opts, sizeof opts, "{\"to\": \"%s\"}", to_dir ? "dir" : "vm");
    json_t *o =
        new_vm ? json_pack("{s:s, s:s, s:O}", "to", "new-vm", "vm", new_vm, "notes", notes) : NULL;
    char *new_opts = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    row.options = new_opts ? new_opts : opts;
    int rc = vb_catalog_job_create(self->cfg.catalog, &row, id);
    free(new_opts);
    return rc;
}

/* Accepts a restore at once: what can be checked quickly is checked here (refusals are the
 * command's answer); what is slow on a vCenter (deleting snapshots, creating the new VM) runs on
 * the preparation thread, and the job's tasks are planned when it is done. */
int vb_jobs_restore(vb_jobs_t *self, json_t *args, json_t **result)
{
    int rc = jb_ready(self);
    if (rc)
        return rc;
    json_int_t rp_id = json_integer_value(json_object_get(args, "rp"));
    const char *to_dir = json_string_value(json_object_get(args, "to_dir"));
    bool to_vm = json_is_true(json_object_get(args, "to_vm"));
    bool delete_snapshots = json_is_true(json_object_get(args, "delete_snapshots"));
    const char *new_vm = json_string_value(json_object_get(args, "new_vm"));
    const char *datastore = json_string_value(json_object_get(args, "datastore"));
    if (!!to_dir + to_vm + !!new_vm != 1)
        return vb_error_set(VB_EINVAL,
                            "say where to restore: one of --to-dir DIR, --to-vm, --new-vm NAME");
    if (datastore && !new_vm)
        return vb_error_set(VB_EINVAL, "--datastore goes with --new-vm");
    if (to_dir && to_dir[0] != '/')
        return vb_error_set(VB_EINVAL, "--to-dir needs an absolute path");
    jb_restore_setup_t *st = calloc(1, sizeof *st);
    if ((rc = vb_catalog_restore_point_get(self->cfg.catalog, rp_id, &st->rp)) != 0) {
        free(st);
        return vb_error_set(rc, "restore point %lld does not exist", (long long)rp_id);
    }
    const vb_restore_point_t *rp = &st->rp;
    size_t n = rp->disk_count ? rp->disk_count : 1;
    st->indexes = calloc(n, sizeof *st->indexes);
    st->dests = calloc(n, sizeof *st->dests);
    st->to_dir = to_dir != NULL;
    st->target = strdup(new_vm ? new_vm : rp->vm);
    vb_restore_prep_request_t *req = calloc(1, sizeof *req);
    vb_inventory_t *inv = NULL;
    json_t *notes = json_array();
    rc = jb_inventory(self, &inv);
    if (!rc && to_vm)
        rc = s_check_target_vm(inv, rp->vm, delete_snapshots, req);
    if (!rc && to_dir)
        rc = s_prepare_dir(to_dir);
    if (!rc)
        rc = s_restore_disks(self, st, to_dir, to_vm ? vb_inventory_find_vm(inv, rp->vm) : NULL);
    bool images = false;
    if (!rc && to_dir)
        images = (rc = s_create_images(st->dests, st->indexes, rp->disk_count)) == 0;
    if (!rc && new_vm)
        rc = s_new_vm_request(self, rp, st->indexes, new_vm, datastore, inv, notes, req);
    int64_t id = 0;
    if (!rc)
        rc = s_restore_job_row(self, rp, to_dir, new_vm, notes, &id);
    for (size_t i = 0; rc && images && i < rp->disk_count; i++)
        unlink(st->dests[i]); /* no job will write them */
    if (!rc) {
        jb_job_t *job = jb_job_new(self, id, VB_JOB_RESTORE, inv, 1);
        inv = NULL;
        job->to_vm = to_vm; /* write_zeros: a new VM's disks read as zeros already */
        jb_vmrun_t *vm = &job->vms[0];
        vm->job = job;
        vm->name = strdup(st->target);
        *result = json_pack("{s:I}", "job", (json_int_t)id);
        if (new_vm)
            json_object_set_new(*result, "new_vm",
                                json_pack("{s:s, s:O}", "name", new_vm, "notes", notes));
        VB_LOG_INFO("jobs", "restore_started job=%lld rp=%lld vm=%s to=%s", (long long)id,
                    (long long)rp->id, rp->vm,
                    to_dir   ? to_dir
                    : new_vm ? new_vm
                             : "the VM");
        vm->setup = st;
        st = NULL;
        if (req->nsnapshots || req->new_vm) {
            s_restore_prepare(self, vm, req);
            req = NULL;
        } else {
            s_restore_setup(self, vm, vm->setup);
            jb_restore_setup_free(&vm->setup);
        }
    }
    vb_restore_prep_request_free(&req);
    jb_restore_setup_free(&st);
    json_decref(notes);
    vb_inventory_free(&inv);
    jb_dispatch(self);
    jb_reap(self);
    return rc;
}

vb_provider_t *vb_jobs_provider(vb_jobs_t *self)
{
    return self->cfg.provider;
}
