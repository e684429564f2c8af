#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "catalog_testutil.h"

TestSuite(catalog, .init = catalog_setup, .fini = catalog_teardown);

static vb_agent_record_t agent(const char *name, const char *key)
{
    static char *luns[] = {"naa.600a0b80001", "naa.600a0b80002"};
    static char *transports[] = {"san", "nbdssl", "nbd"};
    vb_agent_record_t r = {0};
    r.name = (char *)name;
    r.public_key = (char *)key;
    r.host = "esx-01";
    r.datastore = "vmfs-01";
    r.luns = luns;
    r.lun_count = 2;
    r.os = "Debian 12";
    r.slots = 4;
    r.transports = transports;
    r.transport_count = 3;
    r.version = "0.1.0";
    return r;
}

Test(catalog, enroll_and_read_back)
{
    vb_catalog_t *cat = vb_catalog_open(s_path);
    cr_assert_not_null(cat, "%s", vb_error_msg());
    vb_agent_record_t a = agent("agent-1", "KEY1KEY1KEY1KEY1KEY1KEY1KEY1KEY1KEY1KEY1");
    cr_assert_eq(vb_catalog_agent_enroll(cat, &a, 1700000000123), 0, "%s", vb_error_msg());
    vb_agent_record_t got;
    cr_assert_eq(vb_catalog_agent_by_name(cat, "agent-1", &got), 0);
    cr_assert_str_eq(got.public_key, a.public_key);
    cr_assert_str_eq(got.state, "online");
    cr_assert_eq(got.lun_count, 2);
    cr_assert_str_eq(got.luns[1], "naa.600a0b80002");
    cr_assert_eq(got.transport_count, 3);
    cr_assert_str_eq(got.transports[0], "san");
    cr_assert_eq(got.slots, 4);
    cr_assert_eq(got.last_seen, 1700000000123);
    vb_agent_record_clear(&got);
    vb_catalog_destroy(&cat);
    cr_assert_null(cat);
    vb_catalog_destroy(&cat);
}

Test(catalog, name_and_key_are_unique)
{
    vb_catalog_t *cat = vb_catalog_open(s_path);
    vb_agent_record_t a = agent("agent-1", "KEY1");
    cr_assert_eq(vb_catalog_agent_enroll(cat, &a, 1), 0);
    vb_agent_record_t same_name = agent("agent-1", "KEY2");
    cr_assert_eq(vb_catalog_agent_enroll(cat, &same_name, 2), VB_EEXISTS);
    vb_agent_record_t same_key = agent("agent-2", "KEY1");
    cr_assert_eq(vb_catalog_agent_enroll(cat, &same_key, 2), VB_EEXISTS);
    vb_agent_record_t *list = NULL;
    size_t n = 0;
    cr_assert_eq(vb_catalog_agents_list(cat, &list, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(list[0].public_key, "KEY1");
    vb_agent_records_free(&list, n);
    vb_catalog_destroy(&cat);
}

Test(catalog, update_facts_cannot_take_another_name)
{
    vb_catalog_t *cat = vb_catalog_open(s_path);
    vb_agent_record_t a = agent("agent-1", "KEY1"), b = agent("agent-2", "KEY2");
    cr_assert_eq(vb_catalog_agent_enroll(cat, &a, 1), 0);
    cr_assert_eq(vb_catalog_agent_enroll(cat, &b, 1), 0);
    b.name = "agent-1";
    cr_assert_eq(vb_catalog_agent_update_facts(cat, &b, 5), VB_EEXISTS);
    b.name = "agent-2";
    b.slots = 9;
    cr_assert_eq(vb_catalog_agent_update_facts(cat, &b, 5), 0);
    vb_agent_record_t unknown = agent("agent-3", "KEY3");
    cr_assert_eq(vb_catalog_agent_update_facts(cat, &unknown, 5), VB_ENOTFOUND);
    vb_agent_record_t got;
    cr_assert_eq(vb_catalog_agent_by_key(cat, "KEY2", &got), 0);
    cr_assert_eq(got.slots, 9);
    vb_agent_record_clear(&got);
    vb_catalog_destroy(&cat);
}

Test(catalog, state_survives_reopen_and_schema_is_versioned)
{
    vb_catalog_t *cat = vb_catalog_open(s_path);
    vb_agent_record_t a = agent("agent-1", "KEY1");
    cr_assert_eq(vb_catalog_agent_enroll(cat, &a, 1), 0);
    cr_assert_eq(vb_catalog_agent_set_state(cat, "KEY1", "lost", 77), 0);
    cr_assert_eq(vb_catalog_agent_set_state(cat, "NOPE", "lost", 77), VB_ENOTFOUND);
    vb_catalog_destroy(&cat);

    cat = vb_catalog_open(s_path);
    cr_assert_not_null(cat);
    vb_agent_record_t got;
    cr_assert_eq(vb_catalog_agent_by_name(cat, "agent-1", &got), 0);
    cr_assert_str_eq(got.state, "lost");
    cr_assert_eq(got.last_seen, 77);
    vb_agent_record_clear(&got);
    vb_catalog_destroy(&cat);
}

Test(catalog, newer_schema_refused)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'PRAGMA user_version = 999'", s_path);
    cr_assert_eq(system(cmd), 0);
    vb_catalog_t *cat = vb_catalog_open(s_path);
    cr_assert_null(cat);
    cr_assert(strstr(vb_error_msg(), "schema version 999"), "%s", vb_error_msg());
}

Test(catalog, not_a_database_is_a_clear_error)
{
    FILE *f = fopen(s_path, "w");
    fputs("this is not a database, it is a text file with enough bytes to matter..........", f);
    fclose(f);
    vb_catalog_t *cat = vb_catalog_open(s_path);
    cr_assert_null(cat);
    cr_assert(strstr(vb_error_msg(), s_path), "%s", vb_error_msg());
}
