#include "cli_catalog.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "cli_repo.h"
#include "error.h"
#include "repo/index.h"
#include "repo/manifest.h"
#include "repo/repo.h"

static const char s_help[] =
    "usage: vbak catalog rebuild --repo PATH --catalog NEW.db\n"
    "\n"
    "rebuild  recreate the catalog's restore points, their chains and the change IDs the next\n"
    "         incremental backup starts from, from the repository's restore point manifests\n"
    "         alone (the coordinator may be stopped). NEW.db must not exist: an existing\n"
    "         catalog is never overwritten. Start the coordinator with catalog = NEW.db.\n";

typedef struct {
    const char *repo, *catalog;
} s_args_t;

static int s_parse(int argc, char **argv, s_args_t *a, FILE *err)
{
    for (int i = 2; i < argc; i++) {
        const char **slot = !strcmp(argv[i], "--repo")      ? &a->repo
                            : !strcmp(argv[i], "--catalog") ? &a->catalog
                                                            : NULL;
        if (!slot || i + 1 >= argc) {
            fprintf(err, "vbak catalog rebuild: %s '%s' (see vbak catalog --help)\n",
                    slot ? "missing value for" : "unknown argument", argv[i]);
            return 2;
        }
        *slot = argv[++i];
    }
    if (!a->repo || !a->catalog) {
        fprintf(err, "vbak catalog rebuild: --repo PATH and --catalog NEW.db are required\n");
        return 2;
    }
    return 0;
}

/* A manifest whose disk indexes are all in the repository can be rebuilt; else `err` says why. */
static bool s_usable(vb_repo_t *repo, const vb_manifest_t *m, FILE *err)
{
    if (m->chunk_size && m->chunk_size != vb_repo_chunk_size(repo)) {
        fprintf(err,
                "vbak catalog rebuild: restore point %lld of %s: chunk size %u is not the "
                "repository's: not rebuilt\n",
                (long long)m->rp.id, m->rp.vm, m->chunk_size);
        return false;
    }
    for (size_t i = 0; i < m->rp.disk_count; i++) {
        vb_store_stat_t st;
        if (vb_index_stat(repo, m->rp.disks[i].index_path, &st) != 0) {
            fprintf(err,
                    "vbak catalog rebuild: restore point %lld of %s: disk %s: index %s: %s: "
                    "not rebuilt\n",
                    (long long)m->rp.id, m->rp.vm, m->rp.disks[i].key, m->rp.disks[i].index_path,
                    vb_error_msg());
            return false;
        }
    }
    return true;
}

/* Imports every usable manifest (oldest first, so parents come before children) in one
 * transaction. *skipped counts those that were not. */
static int s_import_all(vb_catalog_t *cat, vb_repo_t *repo, const vb_manifest_t *ms, size_t n,
                        size_t *imported, size_t *skipped, FILE *err)
{
    int rc = vb_catalog_begin(cat);
    for (size_t i = 0; !rc && i < n; i++) {
        if (!s_usable(repo, &ms[i], err)) {
            (*skipped)++;
            continue;
        }
        if ((rc = vb_catalog_restore_point_import(cat, &ms[i].rp)) == 0)
            (*imported)++;
    }
    if (!rc)
        return vb_catalog_commit(cat);
    vb_catalog_rollback(cat);
    return rc;
}

static void s_unlink_catalog(const char *path)
{
    char side[4096];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

static int s_rebuild(int argc, char **argv, FILE *out, FILE *err)
{
    s_args_t a = {0};
    int rc = s_parse(argc, argv, &a, err);
    if (rc)
        return rc;
    if (access(a.catalog, F_OK) == 0) {
        fprintf(err,
                "vbak catalog rebuild: %s exists: refusing to overwrite a catalog (name a "
                "new file)\n",
                a.catalog);
        return 1;
    }
    char cred_file[4096];
    vb_cli_repo_credentials(NULL, cred_file, sizeof cred_file);
    vb_store_opts_t so = {.credentials_file = cred_file[0] ? cred_file : NULL};
    vb_repo_t *repo = vb_repo_open_opts(a.repo, NULL, &so);
    vb_manifest_t *ms = NULL;
    size_t n = 0, imported = 0, skipped = 0;
    vb_catalog_t *cat = NULL;
    rc = repo ? vb_manifest_list(vb_repo_store(repo), &ms, &n) : vb_error_code();
    if (!rc && !(cat = vb_catalog_open(a.catalog)))
        rc = vb_error_code();
    if (!rc)
        rc = s_import_all(cat, repo, ms, n, &imported, &skipped, err);
    if (rc)
        fprintf(err, "vbak catalog rebuild: %s\n", vb_error_msg());
    else
        fprintf(out, "rebuilt %zu restore point(s) from %zu manifest(s) of %s into %s\n", imported,
                n, a.repo, a.catalog);
    vb_catalog_destroy(&cat);
    if (rc && access(a.catalog, F_OK) == 0) /* ours (it did not exist): nothing worth keeping */
        s_unlink_catalog(a.catalog);
    vb_manifests_free(&ms, n);
    vb_repo_destroy(&repo);
    return rc || skipped ? 1 : 0;
}

int vb_cli_catalog_io(int argc, char **argv, FILE *out, FILE *err)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "help")) {
            fputs(s_help, out);
            return 0;
        }
    if (argc >= 2 && !strcmp(argv[1], "rebuild"))
        return s_rebuild(argc, argv, out, err);
    fprintf(err, "vbak catalog: %s (rebuild); see vbak catalog --help\n",
            argc < 2 ? "missing command" : "unknown command");
    return 2;
}
