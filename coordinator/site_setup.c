#include "site_setup.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "coordinator.h"
#include "keys.h"
#include "path.h"

/* The files site init makes, relative to DIR; none may exist beforehand. */
static const char *const s_site_files[] = {"coordinator.conf", "vbak.conf", "keys/coordinator.key",
                                           "keys/admin.key", "keys/enrollment.token"};

static void s_write_pairs(FILE *f, const vb_conf_pair_t *pairs)
{
    for (size_t i = 0; pairs && pairs[i].key; i++)
        if (pairs[i].value)
            vb_config_write(f, pairs[i].key, pairs[i].value);
}

/* Writes `path` (mode 0644, new) with a title comment and the given pairs. */
static int s_write_conf(const char *path, const char *title, const char *by,
                        const vb_conf_pair_t *pairs, const vb_conf_pair_t *extra,
                        const char *trailer)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return vb_error_set(e == EEXIST ? VB_EEXISTS : VB_EIO, "cannot write %s: %s", path,
                            strerror(e));
    }
    fprintf(f, "# %s (written by %s)\n", title, by ? by : "vbak site init");
    s_write_pairs(f, pairs);
    s_write_pairs(f, extra);
    if (trailer)
        fputs(trailer, f);
    if (fclose(f) != 0)
        return vb_error_set(VB_EIO, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

static int s_refuse_existing(const char *dir)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof s_site_files / sizeof *s_site_files; i++) {
        if (vb_pathf(path, sizeof path, "%s/%s", dir, s_site_files[i]) != 0)
            return vb_error_set(VB_EINVAL, "the path %s is too long", dir);
        if (access(path, F_OK) == 0)
            return vb_error_set(VB_EEXISTS,
                                "%s exists already: a site is set up in %s (nothing "
                                "was changed)",
                                path, dir);
    }
    return 0;
}

static const char s_vsphere_hint[] =
    "# provider = vsphere: the vCenter to log in to (see README, coordinator.conf)\n"
    "# vsphere_url = \"https://vcenter.example.com\"\n"
    "# vsphere_user = \"backup@vsphere.local\"\n"
    "# vsphere_password_file = \"/etc/vbak/vsphere.password\"\n"
    "# vsphere_ca_file = \"/etc/vbak/vcenter-ca.pem\"\n";

/* The endpoint the CLI of vbak.conf connects to: the control endpoint, or for a wildcard bind
 * (every address of the host) its loopback address of the same family, said in so many words:
 * a CLI would otherwise connect to 0.0.0.0, which reaches this host only by accident. */
static void s_cli_endpoint(const char *bind, char *out, size_t cap)
{
    static const struct {
        const char *wild, *loop;
    } map[] = {{"://0.0.0.0:", "://127.0.0.1:"}, {"://*:", "://127.0.0.1:"}, {"://[::]:", "://[::1]:"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        const char *at = strstr(bind, map[i].wild);
        if (at) {
            snprintf(out, cap, "%.*s%s%s", (int)(at - bind), bind, map[i].loop,
                     at + strlen(map[i].wild));
            return;
        }
    }
    snprintf(out, cap, "%s", bind);
}

static int s_write_confs(const vb_site_init_t *o, zcert_t *server, zcert_t *admin)
{
    char coord[PATH_MAX], cli[PATH_MAX], catalog[PATH_MAX], skey[PATH_MAX], akey[PATH_MAX],
        token[PATH_MAX];
    (void)vb_pathf(coord, sizeof coord, "%s/coordinator.conf", o->dir);
    (void)vb_pathf(cli, sizeof cli, "%s/vbak.conf", o->dir);
    if (o->catalog)
        (void)vb_pathf(catalog, sizeof catalog, "%s", o->catalog);
    else
        (void)vb_pathf(catalog, sizeof catalog, "%s/catalog.db", o->dir);
    (void)vb_pathf(skey, sizeof skey, "%s/keys/coordinator.key", o->dir);
    (void)vb_pathf(akey, sizeof akey, "%s/keys/admin.key", o->dir);
    (void)vb_pathf(token, sizeof token, "%s/keys/enrollment.token", o->dir);
    const char *control = o->control_endpoint ? o->control_endpoint : "tcp://127.0.0.1:7111";
    char cli_control[512];
    s_cli_endpoint(control, cli_control, sizeof cli_control);
    const char *provider = o->provider ? o->provider : "lab";
    vb_conf_pair_t cp[] = {{"agent_endpoint", o->agent_endpoint},
                           {"control_endpoint", control},
                           {"catalog", catalog},
                           {"server_key", skey},
                           {"enrollment_token_file", token},
                           {"admin_keys", zcert_public_txt(admin)},
                           {"provider", provider},
                           {"repository", o->repository},
                           {NULL, NULL}};
    vb_conf_pair_t vp[] = {{"control_endpoint", cli_control},
                           {"coordinator_public_key", zcert_public_txt(server)},
                           {"admin_key", akey},
                           {NULL, NULL}};
    int rc = s_write_conf(coord, "vbak coordinator", o->written_by, cp, o->coordinator_extra,
                          strcmp(provider, "vsphere") == 0 ? s_vsphere_hint : NULL);
    if (!rc)
        rc = s_write_conf(cli, "vbak admin CLI", o->written_by, vp, o->cli_extra, NULL);
    return rc;
}

int vb_site_init(const vb_site_init_t *o)
{
    char path[PATH_MAX];
    zcert_t *server = NULL, *admin = NULL;
    int rc = 0;
    if (!o->agent_endpoint || strncmp(o->agent_endpoint, "tcp://", 6) != 0)
        return vb_error_set(VB_EINVAL, "the agent endpoint must be tcp://HOST:PORT (got %s)",
                            o->agent_endpoint ? o->agent_endpoint : "nothing");
    if (o->provider && strcmp(o->provider, "lab") != 0 && strcmp(o->provider, "vsphere") != 0)
        return vb_error_set(VB_EINVAL, "provider must be lab or vsphere (got %s)", o->provider);
    if ((rc = vb_mkdir_p(o->dir, 0755)) != 0 || (rc = s_refuse_existing(o->dir)) != 0)
        return rc;
    (void)vb_pathf(path, sizeof path, "%s/keys", o->dir);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return vb_error_set(VB_EIO, "cannot make %s: %s", path, strerror(errno));
    (void)vb_pathf(path, sizeof path, "%s/keys/coordinator.key", o->dir);
    if ((rc = vb_keys_create(path, &server)) != 0)
        goto out;
    (void)vb_pathf(path, sizeof path, "%s/keys/admin.key", o->dir);
    if ((rc = vb_keys_create(path, &admin)) != 0)
        goto out;
    (void)vb_pathf(path, sizeof path, "%s/keys/enrollment.token", o->dir);
    if ((rc = vb_keys_write_token(path, false)) != 0)
        goto out;
    rc = s_write_confs(o, server, admin);
out:
    zcert_destroy(&server);
    zcert_destroy(&admin);
    return rc;
}

/* ---- agent.conf ---- */

static bool s_name_ok(const char *name)
{
    if (!name || !*name || strlen(name) > 64)
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
            return false;
    return true;
}

/* The endpoint agents connect to: a wildcard bind address is no address to connect to. */
static int s_connect_endpoint(const char *bind, const char *given, const char **out)
{
    if (given) {
        *out = given;
        return 0;
    }
    if (strstr(bind, "://0.0.0.0:") || strstr(bind, "://*:") || strstr(bind, "://[::]:"))
        return vb_error_set(VB_EINVAL,
                            "the coordinator listens on %s, which agents cannot connect to; give "
                            "--endpoint tcp://HOST:PORT with the coordinator's address",
                            bind);
    *out = bind;
    return 0;
}

static int s_agent_write(const vb_coord_settings_t *s, const char *server_key,
                         const vb_site_agent_t *a, FILE *out)
{
    const char *endpoint = NULL;
    char slots[32] = "";
    int rc = s_connect_endpoint(s->agent_endpoint, a->endpoint, &endpoint);
    if (rc)
        return rc;
    if (a->slots)
        snprintf(slots, sizeof slots, "%ld", a->slots);
    vb_conf_pair_t pairs[] = {
        {"name", a->name},
        {"coordinator_endpoint", endpoint},
        {"coordinator_public_key", server_key},
        {"enrollment_token_file", a->token_file ? a->token_file : s->enrollment_token_file},
        {"state_dir", a->state_dir ? a->state_dir : "/var/lib/vbak/agent"},
        {"host", a->host},
        {"datastore", a->datastore},
        {"luns", a->luns},
        {"slots", a->slots ? slots : NULL},
        {NULL, NULL}};
    fprintf(out, "# vbak agent %s (written by %s)\n", a->name,
            a->written_by ? a->written_by : "vbak site agent-conf");
    s_write_pairs(out, pairs);
    s_write_pairs(out, a->extra);
    if (fflush(out) != 0 || ferror(out))
        return vb_error_set(VB_EIO, "cannot write agent.conf: %s", strerror(errno));
    return 0;
}

int vb_site_agent_conf(const char *dir, const vb_site_agent_t *a, FILE *out)
{
    char path[PATH_MAX];
    if (!s_name_ok(a->name))
        return vb_error_set(VB_EINVAL,
                            "agent name '%s' must be 1-64 letters, digits, '-', '_' "
                            "or '.'",
                            a->name ? a->name : "");
    if (a->slots < 0 || a->slots > 1024)
        return vb_error_set(VB_EINVAL, "slots must be 1 to 1024 (got %ld)", a->slots);
    if (vb_pathf(path, sizeof path, "%s/coordinator.conf", dir) != 0)
        return vb_error_set(VB_EINVAL, "the path %s is too long", dir);
    vb_coord_settings_t s;
    zcert_t *cert = NULL;
    int rc = vb_config_defaults(vb_coord_config_table, &s);
    if (!rc)
        rc = vb_config_load_file(vb_coord_config_table, &s, path);
    if (!rc)
        rc = vb_config_check_required(vb_coord_config_table, &s);
    if (!rc)
        rc = vb_keys_load(s.server_key, &cert);
    if (!rc)
        rc = s_agent_write(&s, zcert_public_txt(cert), a, out);
    zcert_destroy(&cert);
    vb_config_free(vb_coord_config_table, &s);
    return rc;
}
