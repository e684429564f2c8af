/* site_setup and the shipped example configs: what `vbak site init` / `agent-conf` write and
 * what deploy/examples holds load with the daemons' own config tables. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "cli.h"
#include "coordinator.h"
#include "site_setup.h"

static char s_dir[64];

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/vbak-site-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(site_setup, .init = s_setup, .fini = s_teardown);

static void s_load(const vb_conf_key_t *table, void *settings, const char *path)
{
    cr_assert_eq(vb_config_defaults(table, settings), 0);
    cr_assert_eq(vb_config_load_file(table, settings, path), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_config_check_required(table, settings), 0, "%s", vb_error_msg());
}

Test(site_setup, example_configs_load)
{
    const char *src = getenv("VB_SRC");
    cr_assert_not_null(src);
    char path[512];
    vb_coord_settings_t c;
    snprintf(path, sizeof path, "%s/deploy/examples/coordinator.conf", src);
    s_load(vb_coord_config_table, &c, path);
    cr_assert_str_eq(c.metrics_endpoint, "127.0.0.1:9464");
    vb_config_free(vb_coord_config_table, &c);
    vb_agent_settings_t a;
    snprintf(path, sizeof path, "%s/deploy/examples/agent.conf", src);
    s_load(vb_agent_config_table, &a, path);
    vb_config_free(vb_agent_config_table, &a);
    vb_cli_settings_t v;
    snprintf(path, sizeof path, "%s/deploy/examples/vbak.conf", src);
    s_load(vb_cli_config_table, &v, path);
    vb_config_free(vb_cli_config_table, &v);
}

Test(site_setup, init_writes_loadable_configs_and_refuses_a_second_time)
{
    char catalog[128], path[128];
    snprintf(catalog, sizeof catalog, "%s/var/catalog.db", s_dir);
    vb_site_init_t o = {0};
    o.dir = s_dir;
    o.agent_endpoint = "tcp://0.0.0.0:7110";
    o.catalog = catalog;
    o.provider = "vsphere";
    cr_assert_eq(vb_site_init(&o), 0, "%s", vb_error_msg());
    vb_coord_settings_t c;
    snprintf(path, sizeof path, "%s/coordinator.conf", s_dir);
    s_load(vb_coord_config_table, &c, path);
    cr_assert_str_eq(c.catalog, catalog);
    cr_assert_str_eq(c.provider, "vsphere");
    vb_config_free(vb_coord_config_table, &c);
    struct stat st;
    snprintf(path, sizeof path, "%s/keys/enrollment.token", s_dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(vb_site_init(&o), VB_EEXISTS);
    /* a wildcard listen address is no address for an agent: --endpoint is asked for */
    vb_site_agent_t a = {0};
    a.name = "proxy-01";
    FILE *out = tmpfile();
    cr_assert_eq(vb_site_agent_conf(s_dir, &a, out), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "--endpoint"), "%s", vb_error_msg());
    a.endpoint = "tcp://10.0.0.5:7110";
    a.name = "bad name";
    cr_assert_eq(vb_site_agent_conf(s_dir, &a, out), VB_EINVAL);
    a.name = "proxy-01";
    cr_assert_eq(vb_site_agent_conf(s_dir, &a, out), 0, "%s", vb_error_msg());
    fclose(out);
}

/* A control socket bound to every address: the site's vbak.conf connects to loopback of the same
 * family, said as such, never to the wildcard (0.0.0.0 reaches this host only by accident). */
Test(site_setup, a_wildcard_control_endpoint_gives_the_cli_a_loopback_address)
{
    static const struct {
        const char *bind, *cli;
    } cases[] = {{"tcp://0.0.0.0:7111", "tcp://127.0.0.1:7111"},
                 {"tcp://*:7111", "tcp://127.0.0.1:7111"},
                 {"tcp://[::]:7111", "tcp://[::1]:7111"},
                 {"tcp://10.0.0.5:7111", "tcp://10.0.0.5:7111"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char dir[128], path[160];
        snprintf(dir, sizeof dir, "%s/site%zu", s_dir, i);
        vb_site_init_t o = {0};
        o.dir = dir;
        o.agent_endpoint = "tcp://10.0.0.5:7110";
        o.control_endpoint = cases[i].bind;
        cr_assert_eq(vb_site_init(&o), 0, "%s", vb_error_msg());
        vb_coord_settings_t c;
        snprintf(path, sizeof path, "%s/coordinator.conf", dir);
        s_load(vb_coord_config_table, &c, path);
        cr_expect_str_eq(c.control_endpoint, cases[i].bind);
        vb_config_free(vb_coord_config_table, &c);
        vb_cli_settings_t v;
        snprintf(path, sizeof path, "%s/vbak.conf", dir);
        s_load(vb_cli_config_table, &v, path);
        cr_expect_str_eq(v.control_endpoint, cases[i].cli);
        vb_config_free(vb_cli_config_table, &v);
    }
}
