#include "cli.h"

#include <locale.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include <czmq.h>

#include "keys.h"
#include "wire.h"

const vb_conf_key_t vb_cli_config_table[] = {
    {"control_endpoint", VB_CONF_STR, offsetof(vb_cli_settings_t, control_endpoint), NULL, 0, 0,
     true, "the coordinator's control endpoint"},
    {"coordinator_public_key", VB_CONF_STR, offsetof(vb_cli_settings_t, coordinator_public_key),
     NULL, 0, 0, true, "the coordinator's CURVE public key (Z85)"},
    {"admin_key", VB_CONF_STR, offsetof(vb_cli_settings_t, admin_key), NULL, 0, 0, true,
     "this CLI's admin key pair (public file; <file>_secret beside it)"},
    {"site", VB_CONF_STR, offsetof(vb_cli_settings_t, site), NULL, 0, 0, false,
     "lab site directory"},
    {"timeout_ms", VB_CONF_INT, offsetof(vb_cli_settings_t, timeout_ms), "5000", 100, 3600000,
     false, "how long to wait for the coordinator"},
    {"repository_credentials_file", VB_CONF_STR,
     offsetof(vb_cli_settings_t, repository_credentials_file), NULL, 0, 0, false,
     "access key file of an s3:// repository (mode 0600)"},
    VB_CONF_END};

int vb_cli_load_config(vb_cli_t *cli, const char *path)
{
    int rc = vb_config_defaults(vb_cli_config_table, &cli->settings);
    if (rc)
        return rc;
    if (!path)
        path = getenv("VBAK_CONFIG");
    if (!path || !*path)
        return vb_error_set(VB_EINVAL, "no configuration: give --config FILE or set VBAK_CONFIG "
                                       "(a lab site has DIR/vbak.conf)");
    cli->config_path = path;
    if ((rc = vb_config_load_file(vb_cli_config_table, &cli->settings, path)) != 0)
        return rc;
    for (size_t i = 0; i < cli->noverrides; i++)
        if ((rc = vb_config_override(vb_cli_config_table, &cli->settings, cli->overrides[i])))
            return rc;
    if ((rc = vb_config_check_required(vb_cli_config_table, &cli->settings)) != 0)
        return vb_error_prefix(rc, "%s", path);
    cli->configured = true;
    return 0;
}

/* The event number of one message from a socket monitor (0 when unreadable). */
static uint16_t s_monitor_event(zsock_t *monitor)
{
    zmsg_t *msg = zmsg_recv(monitor);
    zframe_t *f = msg ? zmsg_first(msg) : NULL;
    uint16_t event = 0;
    if (f && zframe_size(f) >= 6)
        memcpy(&event, zframe_data(f), sizeof event);
    zmsg_destroy(&msg);
    return event;
}

/* A monitor of sock's failed CURVE handshakes, attached before it connects: the handshake runs
 * on ZeroMQ's I/O thread as soon as the connection is up, so a monitor attached later can miss a
 * refusal that came first (and then wait out the whole timeout). NULL when none could be made. */
static zsock_t *s_watch_handshake(zsock_t *sock)
{
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://vbak-cli-monitor-%p", (void *)sock);
    if (zmq_socket_monitor(zsock_resolve(sock), endpoint,
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) !=
        0)
        return NULL;
    return zsock_new_pair(endpoint);
}

static void s_unwatch_handshake(zsock_t *sock, zsock_t **monitor_p)
{
    if (!sock || !*monitor_p)
        return;
    zmq_socket_monitor(zsock_resolve(sock), NULL, 0);
    zsock_destroy(monitor_p);
}

/* Waits for the coordinator's answer on `sock`, watching the CURVE handshake: a coordinator that
 * refuses this CLI's key says so (ZAP denial reaches the client as a failed handshake), so the
 * refusal is named at once instead of waiting out the timeout. 0 when an answer is ready. */
static int s_wait_answer(vb_cli_t *cli, zsock_t *sock, zsock_t *monitor, zcert_t *cert)
{
    const vb_cli_settings_t *s = &cli->settings;
    zpoller_t *poller = zpoller_new(sock, monitor, NULL);
    int64_t deadline = zclock_mono() + s->timeout_ms;
    int rc = VB_ETIMEOUT;
    uint16_t event = 0;
    while (rc == VB_ETIMEOUT && !event) {
        int64_t left = deadline - zclock_mono();
        void *ready = left > 0 ? zpoller_wait(poller, (int)left) : NULL;
        if (ready == sock)
            rc = 0;
        else if (ready && ready == monitor)
            event = s_monitor_event(monitor);
        else if (!ready)
            break;
    }
    zpoller_destroy(&poller);
    if (rc == 0)
        return 0;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        return vb_error_set(VB_EAUTH,
                            "the coordinator at %s refused this CLI's admin key %s (from %s): "
                            "add it to admin_keys in coordinator.conf",
                            s->control_endpoint, zcert_public_txt(cert), s->admin_key);
    if (event)
        return vb_error_set(VB_EPROTO,
                            "the CURVE handshake with the coordinator at %s failed (is "
                            "coordinator_public_key right?)",
                            s->control_endpoint);
    return vb_error_set(VB_ETIMEOUT,
                        "the coordinator at %s did not answer within %lld ms (is it running? is "
                        "its public key %.10s... right? is this CLI's admin key %s, from %s, in "
                        "its admin_keys?)",
                        s->control_endpoint, (long long)s->timeout_ms, s->coordinator_public_key,
                        zcert_public_txt(cert), s->admin_key);
}

int vb_cli_call(vb_cli_t *cli, const char *command, json_t *args, json_t **result)
{
    *result = NULL;
    if (!cli->configured) {
        json_decref(args);
        return vb_error_set(VB_EINVAL, "no configuration: give --config FILE or set VBAK_CONFIG "
                                       "(a lab site has DIR/vbak.conf)");
    }
    const vb_cli_settings_t *s = &cli->settings;
    zcert_t *cert = NULL;
    zsock_t *sock = NULL, *monitor = NULL;
    zframe_t *frame = NULL;
    vb_envelope_t *env = NULL;
    char *args_text = args ? json_dumps(args, JSON_COMPACT) : NULL;
    json_decref(args);
    int rc = vb_keys_load(s->admin_key, &cert);
    if (rc)
        goto out;
    sock = zsock_new(ZMQ_DEALER);
    zcert_apply(cert, sock);
    zsock_set_curve_serverkey(sock, s->coordinator_public_key);
    zsock_set_linger(sock, 0);
    monitor = s_watch_handshake(sock);
    if (zsock_connect(sock, "%s", s->control_endpoint) != 0) {
        rc = vb_error_set(VB_EINVAL, "bad control_endpoint '%s'", s->control_endpoint);
        goto out;
    }
    Vbak__AdminRequest req = VBAK__ADMIN_REQUEST__INIT;
    req.command = (char *)command;
    req.args_json = args_text ? args_text : "{}";
    vb_envelope_t out_env = VBAK__ENVELOPE__INIT;
    out_env.body_case = VBAK__ENVELOPE__BODY_ADMIN_REQUEST;
    out_env.admin_request = &req;
    if ((rc = vb_wire_send(sock, NULL, &out_env)) != 0)
        goto out;
    if ((rc = s_wait_answer(cli, sock, monitor, cert)) != 0)
        goto out;
    frame = zframe_recv(sock);
    if (!frame || (rc = vb_wire_unpack(zframe_data(frame), zframe_size(frame), 1u << 30, &env))) {
        rc = vb_error_set(VB_EPROTO, "the coordinator's answer is not readable");
        goto out;
    }
    if (env->body_case != VBAK__ENVELOPE__BODY_ADMIN_REPLY) {
        rc = vb_error_set(VB_EPROTO, "the coordinator answered with %s", vb_wire_body_name(env));
        goto out;
    }
    if (env->admin_reply->code != 0) {
        rc = vb_error_set(env->admin_reply->code, "%s", env->admin_reply->message);
        goto out;
    }
    json_error_t jerr;
    *result = json_loads(env->admin_reply->result_json, JSON_DECODE_ANY, &jerr);
    if (!*result)
        rc = vb_error_set(VB_EPROTO, "the coordinator's answer is not JSON: %s", jerr.text);
out:
    vb_wire_free(&env);
    zframe_destroy(&frame);
    s_unwatch_handshake(sock, &monitor);
    zsock_destroy(&sock);
    zcert_destroy(&cert);
    free(args_text);
    return rc;
}

int vb_cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vbak: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

void vb_cli_print_json(json_t *value)
{
    json_dumpf(value, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fputc('\n', stdout);
}

struct vb_table {
    size_t ncols;
    zlistx_t *rows; /* char ** of ncols strings */
};

static void s_row_destroy(void **item)
{
    char **row = *item;
    if (!row)
        return;
    for (size_t i = 0; row[i]; i++)
        free(row[i]);
    free(row);
    *item = NULL;
}

vb_table_t *vb_table_new(size_t ncols, const char *const *headers)
{
    vb_table_t *self = calloc(1, sizeof *self);
    self->ncols = ncols;
    self->rows = zlistx_new();
    zlistx_set_destructor(self->rows, s_row_destroy);
    vb_table_add(self, headers);
    return self;
}

void vb_table_add(vb_table_t *self, const char *const *cells)
{
    char **row = calloc(self->ncols + 1, sizeof *row);
    for (size_t i = 0; i < self->ncols; i++)
        row[i] = strdup(cells[i] ? cells[i] : "");
    zlistx_add_end(self->rows, row);
}

size_t vb_cli_text_width(const char *text)
{
    /* UTF-8 decoded whatever the process locale is; a byte that does not decode counts as one
     * column, a character wcwidth() does not know counts as one */
    locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    locale_t old = utf8 ? uselocale(utf8) : (locale_t)0;
    mbstate_t st;
    memset(&st, 0, sizeof st);
    size_t width = 0, left = strlen(text);
    while (left > 0) {
        wchar_t wc;
        size_t n = mbrtowc(&wc, text, left, &st);
        if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
            memset(&st, 0, sizeof st);
            n = 1;
            width++;
        } else {
            int w = utf8 ? wcwidth(wc) : -1;
            width += w < 0 ? 1 : (size_t)w;
        }
        text += n;
        left -= n;
    }
    if (utf8) {
        uselocale(old);
        freelocale(utf8);
    }
    return width;
}

void vb_cli_print_padded(FILE *out, const char *text, size_t width)
{
    fputs(text, out);
    for (size_t w = vb_cli_text_width(text); w < width; w++)
        fputc(' ', out);
}

void vb_table_print(vb_table_t *self, FILE *out)
{
    size_t width[32] = {0};
    for (char **row = zlistx_first(self->rows); row; row = zlistx_next(self->rows))
        for (size_t i = 0; i < self->ncols && i < 32; i++) {
            size_t w = vb_cli_text_width(row[i]);
            if (w > width[i])
                width[i] = w;
        }
    for (char **row = zlistx_first(self->rows); row; row = zlistx_next(self->rows)) {
        for (size_t i = 0; i < self->ncols; i++) {
            if (i + 1 == self->ncols) {
                fprintf(out, "%s\n", row[i]);
            } else {
                vb_cli_print_padded(out, row[i], i < 32 ? width[i] : 0);
                fputs("  ", out);
            }
        }
    }
}

void vb_table_destroy(vb_table_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zlistx_destroy(&(*self_p)->rows);
    free(*self_p);
    *self_p = NULL;
}
