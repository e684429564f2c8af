/* jobs_fetch — what a backup or restore reads from the repository before it runs on the loop:
 * the repository itself (opening an s3:// one is a GET of its config with the store's retries)
 * and a restore's source indexes, read on the command's worker (server.c) and lent to the
 * engine for the command. */
#include <stdlib.h>
#include <string.h>

#include "jobs_internal.h"
#include "log.h"

typedef struct {
    char *path;
    vb_index_t *index;
    int rc;
    char *error;
} s_fetched_t;

struct vb_jobs_fetch {
    char *repository, *key_file, *credentials_file; /* set when the engine had none open */
    vb_repo_t *borrowed;                            /* else the engine's (outlives the worker) */
    s_fetched_t *indexes;
    size_t nindexes;
    vb_repo_t *repo; /* opened on the worker */
    int repo_rc;
    char *repo_error;
};

void vb_jobs_fetch_free(vb_jobs_fetch_t **f_p)
{
    if (!f_p || !*f_p)
        return;
    vb_jobs_fetch_t *f = *f_p;
    for (size_t i = 0; i < f->nindexes; i++) {
        free(f->indexes[i].path);
        vb_index_destroy(&f->indexes[i].index);
        free(f->indexes[i].error);
    }
    free(f->indexes);
    vb_repo_destroy(&f->repo);
    free(f->repository);
    free(f->key_file);
    free(f->credentials_file);
    free(f->repo_error);
    free(f);
    *f_p = NULL;
}

static char *s_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The index paths of the restore point the restore names (none when it does not exist: the
 * command says so). */
static void s_restore_indexes(vb_jobs_t *self, json_t *args, vb_jobs_fetch_t *f)
{
    vb_restore_point_t rp = {0};
    json_int_t id = json_integer_value(json_object_get(args, "rp"));
    if (vb_catalog_restore_point_get(self->cfg.catalog, id, &rp) != 0) {
        vb_error_clear();
        return;
    }
    f->indexes = calloc(rp.disk_count ? rp.disk_count : 1, sizeof *f->indexes);
    for (size_t i = 0; f->indexes && i < rp.disk_count; i++)
        if (rp.disks[i].index_path)
            f->indexes[f->nindexes++].path = strdup(rp.disks[i].index_path);
    vb_restore_point_clear(&rp);
}

/* The engine's handle, once a sync of it failed (vb_store_broken: every later commit on it
 * fails), is replaced by the next backup or restore: its worker opens the repository again and
 * vb_jobs_lend_fetch swaps the new handle in. Until then the engine keeps the broken one (jobs
 * running meanwhile still read its chunk size, and their commits fail, which is safe). */
static bool s_repo_broken(const vb_jobs_t *self)
{
    return self->repo && vb_store_broken(vb_repo_store(self->repo));
}

/* Sets the broken handle aside for good (closed when the engine ends: a worker may still use
 * it) and takes `fresh` in its place. */
static void s_replace_broken(vb_jobs_t *self, vb_repo_t **fresh)
{
    vb_repo_t **grown = realloc(self->retired, (self->nretired + 1) * sizeof *grown);
    if (!grown)
        return; /* the broken one stays: its commits keep failing, which is safe */
    self->retired = grown;
    self->retired[self->nretired++] = self->repo;
    self->repo = *fresh;
    *fresh = NULL;
    VB_LOG_WARN("jobs", "repository_reopened repository=%s reason=\"a sync of the old handle "
                        "failed\"",
                self->repository);
}

vb_jobs_fetch_t *vb_jobs_fetch_new(vb_jobs_t *self, const char *command, json_t *args)
{
    bool restore = streq(command, "restore"), reopen = s_repo_broken(self);
    if ((!restore && !streq(command, "backup")) || !self->repository ||
        (self->repo && !reopen && !restore))
        return NULL;
    vb_jobs_fetch_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->borrowed = reopen ? NULL : self->repo;
    if (!f->borrowed) {
        f->repository = strdup(self->repository);
        f->key_file = s_dup(self->key_file);
        f->credentials_file = s_dup(self->cfg.repository_credentials_file);
    }
    if (restore)
        s_restore_indexes(self, args, f);
    return f;
}

void vb_jobs_fetch_run(vb_jobs_fetch_t *f)
{
    vb_repo_t *repo = f->borrowed;
    if (!repo) {
        vb_store_opts_t so = {.credentials_file = f->credentials_file};
        repo = f->repo = vb_repo_open_opts(f->repository, f->key_file, &so);
    }
    if (!repo) {
        f->repo_rc = vb_error_code() ? vb_error_code() : VB_EIO;
        f->repo_error = strdup(vb_error_msg());
        return;
    }
    for (size_t i = 0; i < f->nindexes; i++) {
        s_fetched_t *x = &f->indexes[i];
        if ((x->rc = vb_index_read(repo, x->path, &x->index)) != 0)
            x->error = strdup(vb_error_msg());
    }
}

void vb_jobs_lend_fetch(vb_jobs_t *self, vb_jobs_fetch_t *f)
{
    vb_jobs_fetch_free(&self->fetched);
    if (f && f->repo && !self->repo) {
        self->repo = f->repo; /* kept for the engine's lifetime */
        f->repo = NULL;
        VB_LOG_INFO("jobs", "repository_open repository=%s", self->repository);
    } else if (f && f->repo && s_repo_broken(self)) {
        s_replace_broken(self, &f->repo);
    }
    self->fetched = f;
}

int jb_fetched_repo_error(vb_jobs_t *self)
{
    const vb_jobs_fetch_t *f = self->fetched;
    if (!f || !f->repo_rc)
        return 0;
    return vb_error_set(f->repo_rc, "%s", f->repo_error ? f->repo_error : "cannot open");
}

int jb_read_index(vb_jobs_t *self, const char *path, vb_index_t **out)
{
    for (size_t i = 0; self->fetched && i < self->fetched->nindexes; i++) {
        s_fetched_t *x = &self->fetched->indexes[i];
        if (!streq(x->path, path) || (!x->index && !x->rc))
            continue;
        int rc = x->rc;
        if (rc)
            vb_error_set(rc, "%s", x->error ? x->error : "cannot read");
        *out = x->index;
        x->index = NULL;
        x->rc = 0;
        return rc;
    }
    if (self->cfg.loop) /* a worker reads them before the command runs; it did not */
        return vb_error_set(VB_EIO, "index %s was not read ahead of the restore", path);
    return vb_index_read(self->repo, path, out);
}
