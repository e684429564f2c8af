/* Catalog copies in the repository: a copy taken while the catalog is open holds its rows, names
 * sort by time, and only the newest `keep` stay. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "catalog/catalog.h"
#include "catalog_copy.h"
#include "repo_testutil.h"

Test(catalog_copy, copies_hold_the_catalog_and_only_the_newest_are_kept)
{
    char *dir = tu_tmpdir();
    char cat_path[4200], repo[4200], copy[4300];
    snprintf(cat_path, sizeof cat_path, "%s/catalog.db", dir);
    snprintf(repo, sizeof repo, "%s/repo", dir);
    vb_catalog_t *cat = vb_catalog_open(cat_path);
    cr_assert_not_null(cat, "%s", vb_error_msg());
    vb_job_t job = {.kind = VB_JOB_PRUNE, .started = 1000};
    int64_t id = 0;
    cr_assert_eq(vb_catalog_job_create(cat, &job, &id), 0, "%s", vb_error_msg());
    vb_store_t *store = vb_store_open(repo, true);
    cr_assert_not_null(store, "%s", vb_error_msg());

    char names[3][VB_STORE_NAME_MAX];
    int64_t t0 = INT64_C(1796630000000);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(
            vb_catalog_copy_put(cat_path, store, 2, t0 + i * 1500, names[i], sizeof names[i]), 0,
            "%s", vb_error_msg());
    cr_assert_str_eq(names[0], "catalog/catalog-20261207T075320Z-000.db");
    cr_assert_not(vb_store_exists(store, names[0]), "the oldest copy beyond keep stays");
    cr_assert(vb_store_exists(store, names[1]));
    cr_assert(vb_store_exists(store, names[2]));

    /* the copy is a catalog in its own right: it opens and shows the job */
    cr_assert_eq(vb_store_local_path(store, names[2], copy, sizeof copy), 0, "%s", vb_error_msg());
    vb_catalog_t *back = vb_catalog_open(copy);
    cr_assert_not_null(back, "%s", vb_error_msg());
    vb_job_t got = {0};
    cr_assert_eq(vb_catalog_job_get(back, id, &got), 0, "%s", vb_error_msg());
    cr_assert_eq(got.kind, VB_JOB_PRUNE);
    vb_job_clear(&got);
    vb_catalog_destroy(&back);

    char stray[4300];
    snprintf(stray, sizeof stray, "%s.copy-%d", cat_path, (int)getpid());
    cr_assert_neq(access(stray, F_OK), 0, "the temp copy is left behind");
    vb_store_destroy(&store);
    vb_catalog_destroy(&cat);
    tu_rmrf(dir);
}
