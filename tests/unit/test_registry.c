/* registry: token rotation and agent removal, driven in process on a scratch catalog. */
#include <criterion/criterion.h>
#include <string.h>

#include "catalog_testutil.h"
#include "registry.h"

TestSuite(registry, .init = catalog_setup, .fini = catalog_teardown);

#define TOKEN_A "token-aaaaaaaaaaaaaaaaaaaaaaaa"
#define TOKEN_B "token-bbbbbbbbbbbbbbbbbbbbbbbb"
#define KEY_1 "KEY1KEY1KEY1KEY1KEY1KEY1KEY1KEY1KEY1KEY1"
#define KEY_2 "KEY2KEY2KEY2KEY2KEY2KEY2KEY2KEY2KEY2KEY2"
#define KEY_3 "KEY3KEY3KEY3KEY3KEY3KEY3KEY3KEY3KEY3KEY3"

/* What the listener heard: the last agent and whether it went online or offline. */
typedef struct {
    char name[32];
    int online_events, offline_events;
} s_heard_t;

static void s_listen(void *arg, const vb_agent_record_t *rec, bool online)
{
    s_heard_t *h = arg;
    snprintf(h->name, sizeof h->name, "%s", rec->name);
    *(online ? &h->online_events : &h->offline_events) += 1;
}

static int s_enroll(vb_registry_t *reg, const char *key, const char *name, const char *token)
{
    Vbak__AgentFacts facts = VBAK__AGENT_FACTS__INIT;
    facts.name = (char *)name;
    facts.slots = 2;
    Vbak__Enroll msg = VBAK__ENROLL__INIT;
    msg.token = (char *)token;
    msg.facts = &facts;
    zframe_t *rid = zframe_new("r", 1);
    int rc = vb_registry_enroll(reg, key, rid, &msg, 1000);
    zframe_destroy(&rid);
    return rc;
}

static int s_register(vb_registry_t *reg, const char *key, const char *name)
{
    Vbak__AgentFacts facts = VBAK__AGENT_FACTS__INIT;
    facts.name = (char *)name;
    facts.slots = 2;
    Vbak__Register msg = VBAK__REGISTER__INIT;
    msg.facts = &facts;
    zframe_t *rid = zframe_new("r", 1);
    int rc = vb_registry_register(reg, key, rid, &msg, 2000);
    zframe_destroy(&rid);
    return rc;
}

Test(registry, rotated_token_refuses_the_old_one_for_new_agents_only)
{
    vb_catalog_t *cat = open_cat();
    vb_registry_t *reg = vb_registry_new(cat, TOKEN_A, 0);
    cr_assert_not_null(reg);
    cr_assert_eq(s_enroll(reg, KEY_1, "agent-1", TOKEN_A), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_registry_set_token(reg, TOKEN_B), 0);
    cr_assert_eq(s_enroll(reg, KEY_2, "agent-2", TOKEN_A), VB_EAUTH);
    cr_assert(strstr(vb_error_msg(), "enrollment token refused"), "%s", vb_error_msg());
    cr_assert_eq(vb_registry_counters(reg)->refused_token, 1);
    /* the enrolled agent is recognised by its key, whatever token it still holds */
    cr_assert_eq(s_enroll(reg, KEY_1, "agent-1", TOKEN_A), 0, "%s", vb_error_msg());
    cr_assert_eq(s_register(reg, KEY_1, "agent-1"), 0, "%s", vb_error_msg());
    cr_assert_eq(s_enroll(reg, KEY_2, "agent-2", TOKEN_B), 0, "%s", vb_error_msg());
    vb_registry_destroy(&reg);
    vb_catalog_destroy(&cat);
}

Test(registry, removed_agent_is_refused_for_good_and_its_name_is_free)
{
    vb_catalog_t *cat = open_cat();
    vb_registry_t *reg = vb_registry_new(cat, TOKEN_A, 0);
    s_heard_t heard = {0};
    vb_registry_set_listener(reg, s_listen, &heard);
    cr_assert_eq(s_enroll(reg, KEY_1, "agent-1", TOKEN_A), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_registry_remove(reg, "agent-9", 3000), VB_ENOTFOUND);
    cr_assert_eq(vb_registry_remove(reg, "agent-1", 3000), 0, "%s", vb_error_msg());
    /* the job engine hears it go away: its running tasks are requeued there */
    cr_assert_eq(heard.offline_events, 1);
    cr_assert_str_eq(heard.name, "agent-1");
    json_t *agents = vb_registry_agents_json(reg);
    cr_assert_eq(json_array_size(agents), 0);
    json_decref(agents);
    cr_assert_eq(s_register(reg, KEY_1, "agent-1"), VB_EAUTH);
    cr_assert_eq(s_enroll(reg, KEY_1, "agent-1", TOKEN_A), VB_EAUTH);
    cr_assert(strstr(vb_error_msg(), "was removed from this site"), "%s", vb_error_msg());
    cr_assert_eq(vb_registry_counters(reg)->refused_removed_key, 1);
    zframe_t *rid = zframe_new("r", 1);
    cr_assert_neq(vb_registry_heard(reg, KEY_1, rid, 4000), 0);
    zframe_destroy(&rid);
    vb_registry_destroy(&reg);
    /* a restarted coordinator still refuses the key; a reinstalled proxy takes the name */
    reg = vb_registry_new(cat, TOKEN_A, 0);
    cr_assert_eq(s_enroll(reg, KEY_1, "agent-1", TOKEN_A), VB_EAUTH);
    cr_assert_eq(s_enroll(reg, KEY_3, "agent-1", TOKEN_A), 0, "%s", vb_error_msg());
    vb_registry_destroy(&reg);
    vb_catalog_destroy(&cat);
}
