#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

typedef struct {
    char *name;
    int64_t slots;
    bool tls;
    char *path;
} settings_t;

static const vb_conf_key_t s_table[] = {
    {"name", VB_CONF_STR, offsetof(settings_t, name), NULL, 0, 0, true, "agent name"},
    {"slots", VB_CONF_INT, offsetof(settings_t, slots), "4", 1, 64, false, "task slots"},
    {"tls", VB_CONF_BOOL, offsetof(settings_t, tls), "true", 0, 0, false, "use TLS"},
    {"path", VB_CONF_STR, offsetof(settings_t, path), "/var/lib/vbak", 0, 0, false, "state"},
    VB_CONF_END};

static char s_file[64];

static void write_conf(const char *text)
{
    strcpy(s_file, "/tmp/vbak-conf-XXXXXX");
    int fd = mkstemp(s_file);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static int load(settings_t *s, const char *text)
{
    memset(s, 0, sizeof *s);
    cr_assert_eq(vb_config_defaults(s_table, s), 0);
    write_conf(text);
    int rc = vb_config_load_file(s_table, s, s_file);
    unlink(s_file);
    return rc;
}

Test(config, defaults_then_file_values)
{
    settings_t s;
    cr_assert_eq(load(&s, "# comment\n\nname = \"agent 1\"\nslots = 8\ntls = false\n"), 0,
                 "%s", vb_error_msg());
    cr_assert_str_eq(s.name, "agent 1");
    cr_assert_eq(s.slots, 8);
    cr_assert_eq(s.tls, false);
    cr_assert_str_eq(s.path, "/var/lib/vbak");
    cr_assert_eq(vb_config_check_required(s_table, &s), 0);
    vb_config_free(s_table, &s);
    cr_assert_null(s.name);
}

Test(config, bare_word_and_quoted_escape)
{
    settings_t s;
    cr_assert_eq(load(&s, "name=agent-2   # trailing comment\npath = \"/a \\\"b\\\"\"\n"), 0,
                 "%s", vb_error_msg());
    cr_assert_str_eq(s.name, "agent-2");
    cr_assert_str_eq(s.path, "/a \"b\"");
    vb_config_free(s_table, &s);
}

Test(config, unknown_key_names_file_and_line)
{
    settings_t s;
    cr_assert_eq(load(&s, "name = \"x\"\ncolour = \"blue\"\n"), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), ":2: unknown key 'colour'"), "%s", vb_error_msg());
    vb_config_free(s_table, &s);
}

Test(config, out_of_range_number_is_an_error)
{
    settings_t s;
    cr_assert_eq(load(&s, "slots = 65\n"), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), ":1:"), "%s", vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "out of range 1..64"), "%s", vb_error_msg());
    vb_config_free(s_table, &s);
    cr_assert_eq(load(&s, "slots = 4x\n"), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "not a number"), "%s", vb_error_msg());
    vb_config_free(s_table, &s);
}

Test(config, spaces_need_quotes)
{
    settings_t s;
    cr_assert_eq(load(&s, "name = agent one\n"), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "need quotes"), "%s", vb_error_msg());
    vb_config_free(s_table, &s);
    cr_assert_eq(load(&s, "name = \"unterminated\n"), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "missing closing quote"), "%s", vb_error_msg());
    vb_config_free(s_table, &s);
}

Test(config, bad_boolean_and_missing_equals)
{
    settings_t s;
    cr_assert_eq(load(&s, "tls = maybe\n"), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "not a boolean"), "%s", vb_error_msg());
    vb_config_free(s_table, &s);
    cr_assert_eq(load(&s, "name \"x\"\n"), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), ":1: expected key"), "%s", vb_error_msg());
    vb_config_free(s_table, &s);
}

Test(config, required_key_and_override)
{
    settings_t s;
    cr_assert_eq(load(&s, "slots = 2\n"), 0);
    cr_assert_eq(vb_config_check_required(s_table, &s), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "'name'"), "%s", vb_error_msg());
    cr_assert_eq(vb_config_override(s_table, &s, "--name=agent-9"), 0);
    cr_assert_eq(vb_config_override(s_table, &s, "--slots=16"), 0);
    cr_assert_str_eq(s.name, "agent-9");
    cr_assert_eq(s.slots, 16);
    cr_assert_eq(vb_config_override(s_table, &s, "--slots=0"), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "--slots"), "%s", vb_error_msg());
    cr_assert_eq(vb_config_override(s_table, &s, "--nope=1"), VB_EINVAL);
    vb_config_free(s_table, &s);
}

Test(config, a_directory_is_not_a_configuration_file)
{
    settings_t s;
    cr_assert_eq(vb_config_defaults(s_table, &s), 0);
    cr_assert_eq(vb_config_load_file(s_table, &s, "/tmp"), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "/tmp is a directory"), "%s", vb_error_msg());
    vb_config_free(s_table, &s);
}

Test(config, overrides_are_recognised_by_key)
{
    cr_assert(vb_config_is_override(s_table, "--slots=3"));
    cr_assert(vb_config_is_override(s_table, "--name=x=y"));
    cr_assert_not(vb_config_is_override(s_table, "--nope=1"));
    cr_assert_not(vb_config_is_override(s_table, "--slots"));
    cr_assert_not(vb_config_is_override(s_table, "slots=3"));
}

Test(config, writer_round_trips_through_parser)
{
    settings_t s;
    char text[256];
    FILE *m = fmemopen(text, sizeof text, "w");
    vb_config_write(m, "name", "we \"quote\" \\ things");
    fclose(m);
    cr_assert_eq(load(&s, text), 0, "%s", vb_error_msg());
    cr_assert_str_eq(s.name, "we \"quote\" \\ things");
    vb_config_free(s_table, &s);
}

Test(config, sizes)
{
    uint64_t v;
    cr_assert_eq(vb_parse_size("64K", "size", &v), 0);
    cr_assert_eq(v, 65536);
    cr_assert_eq(vb_parse_size("4MiB", "size", &v), 0);
    cr_assert_eq(v, 4u << 20);
    cr_assert_eq(vb_parse_size("2G", "size", &v), 0);
    cr_assert_eq(v, 2ull << 30);
    cr_assert_eq(vb_parse_size("12", "size", &v), 0);
    cr_assert_eq(v, 12);
    cr_assert_eq(vb_parse_size("-1", "size", &v), VB_EINVAL);
    cr_assert_eq(vb_parse_size("3Q", "size", &v), VB_EINVAL);
}
