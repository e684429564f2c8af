/* vbak lab create|up|down: a whole site on this machine — coordinator, agents, their configs,
 * keys and the enrollment token — for the demo, the tests and for trying vbak out. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <czmq.h>

#include "cli.h"
#include "cli_lab_site.h"
#include "keys.h"
#include "lab/lab.h"
#include "lab/site.h"
#include "repo/repo.h"
#include "path.h"
#include "netport.h"
#include "proc.h"
#include "site_setup.h"

typedef struct {
    const char *dir;
    vb_lab_options_t site;
    int64_t heartbeat_ms;
    int64_t liveness;
    uint64_t chunk_size;
    bool encrypt;
    const char *repository; /* NULL: DIR/repo */
    char repo_creds[PATH_MAX]; /* S3 access key file (absolute), "" when none */
    int64_t format; /* repository format; 0: the default (VB_REPO_FORMAT_VERSION) */
} s_create_opts_t;

static int s_usage_lab(FILE *out)
{
    fputs("Usage: vbak lab COMMAND DIR [OPTIONS]\n"
          "A lab site: a simulated vSphere site with a coordinator and agents on this machine.\n\n"
          "  vbak lab create DIR [--proxies N] [--vms N] [--disk-size SIZE] [--seed S]\n"
          "                      [--chunk-size SIZE] [--encrypt] [--format 1|2] [--heartbeat-ms MS]\n"
          "                      [--liveness N] [--repository URL --repository-credentials FILE]\n"
          "                      [--host-address HOST=IPV4]...\n"
          "      write a site: site.json and disk images, coordinator.conf, agent-N.conf,\n"
          "      vbak.conf, keys, the enrollment token and a repository (DIR/repo, or the\n"
          "      s3:// URL, its bucket made when missing, with the access key in FILE)\n"
          "  vbak lab up DIR      start what is not running (disk servers, coordinator, agents);\n"
          "                       returns when the coordinator answers\n"
          "  vbak lab up DIR --host HOST   start only the disk servers of HOST, on the address\n"
          "                       it was given (--host-address), e.g. in its network namespace\n"
          "  vbak lab down DIR    stop everything the site runs\n",
          out);
    fputs(vb_cli_lab_site_usage(), out);
    return out == stdout ? 0 : 2;
}

/* The disk servers' ports of the site in dir: ports[0..2]. */
static int s_site_ports(const char *dir, int ports[3])
{
    vb_lab_site_t *site;
    int rc = vb_lab_site_open(dir, false, &site);
    if (rc)
        return rc;
    json_t *net = json_object_get(vb_lab_site_root(site), "network");
    static const char *keys[] = {"nbd_port", "tls_port", "luks_port"};
    for (int i = 0; i < 3; i++)
        ports[i] = (int)json_integer_value(json_object_get(net, keys[i]));
    vb_lab_site_destroy(&site);
    return 0;
}

static int s_mkdir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) != 0 && errno != EEXIST)
        return vb_error_set(VB_EIO, "cannot make %s: %s", path, strerror(errno));
    return 0;
}

static int s_init_repo(const s_create_opts_t *o, const char *dir, char *key_file, size_t cap)
{
    char path[PATH_MAX];
    key_file[0] = '\0';
    if (o->encrypt) {
        (void)vb_pathf(key_file, cap, "%s/keys/repository.key", dir);
        unsigned char raw[64];
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
            return vb_error_set(VB_EIO, "no random bytes: %s", strerror(errno));
        mode_t old = umask(077);
        FILE *f = fopen(key_file, "w");
        umask(old);
        if (!f || fwrite(raw, 1, sizeof raw, f) != sizeof raw || fclose(f) != 0)
            return vb_error_set(VB_EIO, "cannot write %s: %s", key_file, strerror(errno));
    }
    (void)vb_pathf(path, sizeof path, "%s/repo", dir);
    vb_repo_params_t params = {.chunk_size = (uint32_t)o->chunk_size,
                               .compression_level = 3,
                               .key_file = o->encrypt ? key_file : NULL,
                               .store = {.credentials_file = o->repo_creds[0] ? o->repo_creds : NULL,
                                         .create_bucket = true},
                               .format = (int)o->format};
    return vb_repo_init(o->repository ? o->repository : path, &params);
}

/* The site's keys, token, coordinator.conf and vbak.conf, made as `vbak site init` makes them,
 * with the lab's own keys added. */
static int s_write_site_confs(const s_create_opts_t *o, const char *dir, const int ports[2],
                              const char *key_file)
{
    char endpoint[64], control[64], hb[32], live[32], pid[PATH_MAX], repo[PATH_MAX];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", ports[0]);
    snprintf(control, sizeof control, "tcp://127.0.0.1:%d", ports[1]);
    snprintf(hb, sizeof hb, "%lld", (long long)o->heartbeat_ms);
    snprintf(live, sizeof live, "%lld", (long long)o->liveness);
    (void)vb_pathf(pid, sizeof pid, "%s/run/coordinator.pid", dir);
    (void)vb_pathf(repo, sizeof repo, "%s/repo", dir);
    const char *creds = o->repo_creds[0] ? o->repo_creds : NULL;
    const vb_conf_pair_t coord[] = {{"heartbeat_interval_ms", hb},
                                    {"liveness", live},
                                    {"pid_file", pid},
                                    {"site", dir},
                                    {"repository_key_file", key_file[0] ? key_file : NULL},
                                    {"repository_credentials_file", creds},
                                    {NULL, NULL}};
    const vb_conf_pair_t cli[] = {{"site", dir}, {"repository_credentials_file", creds},
                                  {NULL, NULL}};
    vb_site_init_t init = {dir,   endpoint, control, "lab", o->repository ? o->repository : repo,
                           NULL,  coord,    cli,     "vbak lab create"};
    return vb_site_init(&init);
}

/* agent-N.conf for each proxy VM of the site, made as `vbak site agent-conf` makes them. */
static int s_write_agent_conf(const s_create_opts_t *o, const char *dir, int n,
                              const vb_inv_proxy_t *proxy, const char *key_file)
{
    char name[32], luns[1024] = "", state[PATH_MAX], pid[PATH_MAX], path[PATH_MAX];
    char hb[32], live[32], reconnect[32];
    for (size_t l = 0, used = 0; l < proxy->lun_count; l++) {
        int w = snprintf(luns + used, sizeof luns - used, "%s%s", l ? "," : "", proxy->luns[l]);
        if (w < 0 || (size_t)w >= sizeof luns - used)
            break;
        used += (size_t)w;
    }
    snprintf(name, sizeof name, "agent-%d", n);
    snprintf(hb, sizeof hb, "%lld", (long long)o->heartbeat_ms);
    snprintf(live, sizeof live, "%lld", (long long)o->liveness);
    snprintf(reconnect, sizeof reconnect, "%lld",
             (long long)(o->heartbeat_ms < 1000 ? o->heartbeat_ms : 1000));
    (void)vb_pathf(state, sizeof state, "%s/state/%s", dir, name);
    (void)vb_pathf(pid, sizeof pid, "%s/run/%s.pid", dir, name);
    (void)vb_pathf(path, sizeof path, "%s/%s.conf", dir, name);
    const vb_conf_pair_t extra[] = {{"proxy_vm", proxy->name},
                                    {"transports", "san,hotadd,nbdssl,nbd"},
                                    {"repository_key_file", key_file[0] ? key_file : NULL},
                                    {"repository_credentials_file",
                                     o->repo_creds[0] ? o->repo_creds : NULL},
                                    {"heartbeat_interval_ms", hb},
                                    {"liveness", live},
                                    {"reconnect_initial_ms", reconnect},
                                    {"pid_file", pid},
                                    {NULL, NULL}};
    vb_site_agent_t a = {name, NULL, state, NULL, proxy->host, proxy->datastore, luns, 4, extra,
                         "vbak lab create"};
    FILE *f = fopen(path, "w");
    if (!f)
        return vb_error_set(VB_EIO, "cannot write %s: %s", path, strerror(errno));
    int rc = vb_site_agent_conf(dir, &a, f);
    if (fclose(f) != 0 && !rc)
        rc = vb_error_set(VB_EIO, "cannot write %s: %s", path, strerror(errno));
    return rc;
}

static int s_write_site(const s_create_opts_t *o, const char *dir)
{
    char path[PATH_MAX];
    const char *subdirs[] = {"keys", "run", "log", "state"};
    for (size_t i = 0; i < 4; i++) {
        (void)vb_pathf(path, sizeof path, "%s/%s", dir, subdirs[i]);
        if (s_mkdir(path, i == 0 || i == 3 ? 0700 : 0755) != 0)
            return VB_EIO;
    }
    char key_file[PATH_MAX] = "";
    int rc = vb_lab_site_create(dir, &o->site);
    if (rc)
        vb_error_prefix(rc, "lab site");
    if (!rc)
        rc = s_init_repo(o, dir, key_file, sizeof key_file);
    vb_provider_t *provider = rc ? NULL : vb_lab_provider_new(dir);
    vb_inventory_t *inv = NULL;
    if (!rc && (!provider || (rc = provider->ops->inventory(provider, &inv)) != 0))
        rc = rc ? rc : VB_EIO;
    if (!rc && inv->proxy_count == 0)
        rc = vb_error_set(VB_EINVAL, "the lab site has no proxy VMs");
    /* The daemons' ports: apart from each other and from the disk servers' (not bound yet). */
    int ports[5] = {0};
    if (!rc)
        rc = s_site_ports(dir, ports);
    if (!rc)
        rc = vb_netport_pick(false, ports, 3, &ports[3]);
    if (!rc)
        rc = vb_netport_pick(false, ports, 4, &ports[4]);
    if (!rc)
        rc = s_write_site_confs(o, dir, &ports[3], key_file);
    for (int n = 1; !rc && n <= (int)inv->proxy_count; n++)
        rc = s_write_agent_conf(o, dir, n, &inv->proxies[n - 1], key_file);
    vb_inventory_free(&inv);
    vb_provider_destroy(&provider);
    return rc;
}

static int s_parse_int_opt(const char *name, const char *value, int64_t min, int64_t max,
                           int64_t *out)
{
    if (!value)
        return vb_error_set(VB_EINVAL, "%s needs a value", name);
    return vb_parse_i64(value, min, max, name, out);
}

static int s_create(int argc, char **argv)
{
    s_create_opts_t o = {NULL, {0, 0, 0, 0, NULL}, 1000, 3, 256 * 1024, false, NULL, "", 0};
    const char *host_addresses[17] = {NULL};
    size_t naddr = 0;
    o.site.host_addresses = host_addresses;
    for (int i = 1; i < argc; i++) {
        int64_t v;
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help"))
            return s_usage_lab(stdout);
        if (!strcmp(argv[i], "--proxies") || !strcmp(argv[i], "--vms")) {
            if (s_parse_int_opt(argv[i], next, 1, 64, &v))
                return vb_cli_fail("%s", vb_error_msg()) + 1;
            *(argv[i][2] == 'p' ? &o.site.proxies : &o.site.vms) = (int)v;
            i++;
        } else if (!strcmp(argv[i], "--disk-size") || !strcmp(argv[i], "--chunk-size")) {
            uint64_t size;
            if (!next || vb_parse_size(next, argv[i], &size) != 0)
                return vb_cli_fail("%s", next ? vb_error_msg() : "--disk-size needs a size") + 1;
            *(argv[i][2] == 'd' ? &o.site.disk_size : &o.chunk_size) = size;
            i++;
        } else if (!strcmp(argv[i], "--seed")) {
            if (s_parse_int_opt("--seed", next, 1, INT64_MAX, &v))
                return vb_cli_fail("%s", vb_error_msg()) + 1;
            o.site.seed = (uint64_t)v;
            i++;
        } else if (!strcmp(argv[i], "--encrypt")) {
            o.encrypt = true;
        } else if (!strcmp(argv[i], "--host-address")) {
            if (!next || naddr == 16)
                return vb_cli_fail("lab create: --host-address needs HOST=IPV4 (at most 16)") + 1;
            host_addresses[naddr++] = next;
            i++;
        } else if (!strcmp(argv[i], "--repository") ||
                   !strcmp(argv[i], "--repository-credentials")) {
            if (!next)
                return vb_cli_fail("lab create: %s needs a value", argv[i]) + 1;
            if (argv[i][12] == '\0')
                o.repository = next;
            else if (!realpath(next, o.repo_creds))
                return vb_cli_fail("lab create: %s: %s", next, strerror(errno)) + 1;
            i++;
        } else if (!strcmp(argv[i], "--format")) {
            if (s_parse_int_opt("--format", next, 1, 2, &o.format))
                return vb_cli_fail("%s", vb_error_msg()) + 1;
            i++;
        } else if (!strcmp(argv[i], "--heartbeat-ms")) {
            if (s_parse_int_opt("--heartbeat-ms", next, 50, 60000, &o.heartbeat_ms))
                return vb_cli_fail("%s", vb_error_msg()) + 1;
            i++;
        } else if (!strcmp(argv[i], "--liveness")) {
            if (s_parse_int_opt("--liveness", next, 1, 100, &o.liveness))
                return vb_cli_fail("%s", vb_error_msg()) + 1;
            i++;
        } else if (argv[i][0] == '-' || o.dir) {
            return vb_cli_fail("lab create: unexpected argument '%s' (see --help)", argv[i]) + 1;
        } else {
            o.dir = argv[i];
        }
    }
    if (!o.dir)
        return vb_cli_fail("lab create: which directory? (vbak lab create DIR)") + 1;
    if (o.repository && vb_store_is_s3(o.repository) && !o.repo_creds[0])
        return vb_cli_fail("lab create: an s3:// --repository needs --repository-credentials "
                           "FILE") + 1;
    if (vb_mkdir_p(o.dir, 0755) != 0)
        return vb_cli_fail("%s", vb_error_msg());
    char dir[PATH_MAX];
    if (!realpath(o.dir, dir))
        return vb_cli_fail("%s: %s", o.dir, strerror(errno));
    if (strlen(dir) > PATH_MAX - 128) /* every name below is built from dir + a short suffix */
        return vb_cli_fail("lab create: the path %s is too long", dir);
    char probe[PATH_MAX];
    (void)vb_pathf(probe, sizeof probe, "%s/coordinator.conf", dir);
    if (access(probe, F_OK) == 0)
        return vb_cli_fail("lab create: %s holds a site already (vbak lab down it and remove it "
                           "first)", dir);
    if (s_write_site(&o, dir) != 0)
        return vb_cli_fail("lab create: %s", vb_error_msg());
    printf("lab site created in %s with %d agents\n"
           "  start it:   vbak lab up %s\n"
           "  use it:     export VBAK_CONFIG=%s/vbak.conf\n",
           dir, o.site.proxies ? o.site.proxies : 4, dir, dir);
    return 0;
}

/* ---- up / down ---- */

typedef struct {
    char dir[PATH_MAX];
    char *bindir;
} s_site_t;

static int s_open_site(s_site_t *site, int argc, char **argv, const char *verb)
{
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help"))
            return s_usage_lab(stdout) - 1;
        if (argv[i][0] == '-' || dir)
            return vb_error_set(VB_EINVAL, "lab %s: unexpected argument '%s'", verb, argv[i]);
        dir = argv[i];
    }
    if (!dir)
        return vb_error_set(VB_EINVAL, "lab %s: which site? (vbak lab %s DIR)", verb, verb);
    if (!realpath(dir, site->dir))
        return vb_error_set(VB_ENOTFOUND, "lab %s: %s: %s", verb, dir, strerror(errno));
    if (strlen(site->dir) > PATH_MAX - 128)
        return vb_error_set(VB_EINVAL, "lab %s: the path %s is too long", verb, site->dir);
    char probe[PATH_MAX];
    (void)vb_pathf(probe, sizeof probe, "%s/coordinator.conf", site->dir);
    if (access(probe, R_OK) != 0)
        return vb_error_set(VB_ENOTFOUND, "lab %s: %s is not a lab site (no coordinator.conf)",
                            verb, site->dir);
    site->bindir = vb_proc_self_dir();
    return 0;
}

static int s_start(s_site_t *site, const char *name, const char *program, bool *started)
{
    char pid[PATH_MAX], conf[PATH_MAX], log[PATH_MAX], bin[PATH_MAX];
    (void)vb_pathf(pid, sizeof pid, "%s/run/%s.pid", site->dir, name);
    (void)vb_pathf(conf, sizeof conf, "%s/%s.conf", site->dir, name);
    (void)vb_pathf(log, sizeof log, "%s/log/%s.log", site->dir, name);
    (void)vb_pathf(bin, sizeof bin, "%s/%s", site->bindir, program);
    *started = false;
    if (vb_proc_running(pid, conf, NULL))
        return 0;
    char *argv[] = {bin, "--config", conf, NULL};
    pid_t child;
    int rc = vb_proc_spawn(argv, log, pid, &child);
    if (rc)
        return rc;
    *started = true;
    return 0;
}

static int s_wait_coordinator(s_site_t *site, json_t **agents)
{
    vb_cli_t cli = {0};
    char conf[PATH_MAX], pid[PATH_MAX], coordinator_conf[PATH_MAX];
    (void)vb_pathf(conf, sizeof conf, "%s/vbak.conf", site->dir);
    (void)vb_pathf(pid, sizeof pid, "%s/run/coordinator.pid", site->dir);
    (void)vb_pathf(coordinator_conf, sizeof coordinator_conf, "%s/coordinator.conf", site->dir);
    int rc = vb_cli_load_config(&cli, conf);
    cli.settings.timeout_ms = 500;
    for (int tries = 0; !rc && tries < 40; tries++) {
        json_t *res = NULL;
        if (vb_cli_call(&cli, "agents", NULL, &res) == 0) {
            *agents = res;
            break;
        }
        if (!vb_proc_running(pid, coordinator_conf, NULL)) {
            rc = vb_error_set(VB_EIO, "the coordinator stopped; see %s/log/coordinator.log",
                              site->dir);
            break;
        }
        if (tries == 39)
            rc = vb_error_set(VB_ETIMEOUT, "the coordinator did not answer in 20 s; see "
                                           "%s/log/coordinator.log", site->dir);
    }
    vb_config_free(vb_cli_config_table, &cli.settings);
    return rc;
}

static int s_agent_names(const char *dir, zlistx_t *names)
{
    DIR *d = opendir(dir);
    if (!d)
        return vb_error_set(VB_EIO, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "agent-", 6) == 0 && n > 5 && !strcmp(e->d_name + n - 5, ".conf")) {
            char *name = strndup(e->d_name, n - 5);
            zlistx_add_end(names, name);
            free(name);
        }
    }
    closedir(d);
    zlistx_sort(names);
    return 0;
}

static zlistx_t *s_names_new(void)
{
    zlistx_t *names = zlistx_new();
    zlistx_set_destructor(names, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_duplicator(names, (zlistx_duplicator_fn *)strdup);
    zlistx_set_comparator(names, (zlistx_comparator_fn *)strcmp);
    return names;
}

/* `lab up DIR --host HOST`: only that host's disk servers, on its own address. */
static int s_up_host(int argc, char **argv, int at)
{
    if (at + 1 >= argc)
        return vb_cli_fail("lab up: --host needs a host name") + 1;
    const char *host = argv[at + 1];
    char **rest = calloc((size_t)argc, sizeof *rest);
    if (!rest)
        return vb_cli_fail("out of memory");
    int n = 0;
    for (int i = 0; i < argc; i++)
        if (i != at && i != at + 1)
            rest[n++] = argv[i];
    s_site_t site = {0};
    int rc = s_open_site(&site, n, rest, "up");
    free(rest);
    if (rc == -1)
        return 0;
    if (!rc && (rc = vb_lab_serve_host_start(site.dir, host)) == 0)
        printf("started the disk servers of host %s (nbdkit: NBD and NBD over TLS)\n", host);
    free(site.bindir);
    return rc ? vb_cli_fail("lab up: %s", vb_error_msg()) : 0;
}

static int s_up(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--host"))
            return s_up_host(argc, argv, i);
    s_site_t site = {0};
    int rc = s_open_site(&site, argc, argv, "up");
    if (rc == -1)
        return 0;
    if (rc)
        return vb_cli_fail("%s", vb_error_msg());
    bool started;
    json_t *agents = NULL;
    zlistx_t *names = s_names_new();
    int serving = 0;
    if ((rc = vb_lab_serve_running(site.dir, &serving)) != 0)
        goto out;
    if (!serving && (rc = vb_lab_serve_start(site.dir)) != 0)
        goto out;
    if (!serving)
        printf("started the hosts' disk servers (nbdkit: NBD and NBD over TLS, IPv4 and IPv6)\n");
    if ((rc = s_start(&site, "coordinator", "vbak-coordinator", &started)) != 0)
        goto out;
    if (started)
        printf("started coordinator\n");
    if ((rc = s_wait_coordinator(&site, &agents)) != 0)
        goto out;
    if ((rc = s_agent_names(site.dir, names)) != 0)
        goto out;
    int count = 0;
    for (const char *n = zlistx_first(names); n; n = zlistx_next(names)) {
        if ((rc = s_start(&site, n, "vbak-agent", &started)) != 0)
            goto out;
        count += started;
    }
    printf("lab site %s is up: coordinator and %zu agent%s (%d started now)\n"
           "  export VBAK_CONFIG=%s/vbak.conf; vbak agents\n",
           site.dir, zlistx_size(names), zlistx_size(names) == 1 ? "" : "s", count, site.dir);
out:
    json_decref(agents);
    zlistx_destroy(&names);
    free(site.bindir);
    return rc ? vb_cli_fail("lab up: %s", vb_error_msg()) : 0;
}

static int s_down(int argc, char **argv)
{
    s_site_t site = {0};
    int rc = s_open_site(&site, argc, argv, "down");
    if (rc == -1)
        return 0;
    if (rc)
        return vb_cli_fail("%s", vb_error_msg());
    zlistx_t *names = s_names_new();
    rc = s_agent_names(site.dir, names);
    char pid[PATH_MAX], conf[PATH_MAX];
    int failures = 0;
    for (const char *n = zlistx_first(names); !rc && n; n = zlistx_next(names)) {
        (void)vb_pathf(pid, sizeof pid, "%s/run/%s.pid", site.dir, n);
        (void)vb_pathf(conf, sizeof conf, "%s/%s.conf", site.dir, n);
        if (vb_proc_stop(pid, conf, 5000) != 0) {
            vb_cli_fail("lab down: %s: %s", n, vb_error_msg());
            failures++;
        }
    }
    (void)vb_pathf(pid, sizeof pid, "%s/run/coordinator.pid", site.dir);
    (void)vb_pathf(conf, sizeof conf, "%s/coordinator.conf", site.dir);
    if (!rc && vb_proc_stop(pid, conf, 5000) != 0) {
        vb_cli_fail("lab down: coordinator: %s", vb_error_msg());
        failures++;
    }
    if (!rc && vb_lab_serve_stop(site.dir) != 0) {
        vb_cli_fail("lab down: disk servers: %s", vb_error_msg());
        failures++;
    }
    zlistx_destroy(&names);
    free(site.bindir);
    if (rc)
        return vb_cli_fail("lab down: %s", vb_error_msg());
    if (failures)
        return 1;
    printf("lab site %s is down\n", site.dir);
    return 0;
}

int vb_cli_lab(vb_cli_t *cli, int argc, char **argv)
{
    (void)cli;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return s_usage_lab(argc < 2 ? stderr : stdout);
    if (!strcmp(argv[1], "create"))
        return s_create(argc - 1, argv + 1);
    if (!strcmp(argv[1], "up"))
        return s_up(argc - 1, argv + 1);
    if (!strcmp(argv[1], "down"))
        return s_down(argc - 1, argv + 1);
    if (vb_cli_lab_site_handles(argv[1]))
        return vb_cli_lab_site(argc - 1, argv + 1);
    return vb_cli_fail("lab: unknown command '%s' (see vbak lab --help)", argv[1]) + 1;
}
