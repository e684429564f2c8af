/* catalog_testutil — the fixture the catalog tests share: a fresh directory per test with
 * s_path naming a catalog file in it, removed afterwards. Include once per test file, then
 * `TestSuite(name, .init = catalog_setup, .fini = catalog_teardown);`. */
#ifndef VB_CATALOG_TESTUTIL_H
#define VB_CATALOG_TESTUTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "catalog/catalog.h"

static char s_dir[64];
static char s_path[128];

static void catalog_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/vbak-catalog-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_path, sizeof s_path, "%s/catalog.db", s_dir);
}

static void catalog_teardown(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq(system(cmd), 0);
}

/* Opens the test's catalog; fails the test with the message when it cannot. */
static inline vb_catalog_t *open_cat(void)
{
    vb_catalog_t *cat = vb_catalog_open(s_path);
    cr_assert_not_null(cat, "%s", vb_error_msg());
    return cat;
}

#endif
