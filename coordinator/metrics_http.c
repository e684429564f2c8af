#include "metrics_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

struct vb_metrics_http {
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;
    char *text; /* the last published exposition; guarded by lock */
};

/* "1.2.3.4:9464" or "[::1]:9464" into a socket address. */
static int s_parse(const char *address, struct sockaddr_storage *ss, bool *v6)
{
    char host[64];
    const char *colon = strrchr(address, ':');
    int64_t port;
    if (!colon || colon == address || vb_parse_i64(colon + 1, 1, 65535, "metrics port", &port))
        return vb_error_set(VB_EINVAL, "metrics_endpoint '%s' is not ADDRESS:PORT", address);
    const char *h = address;
    size_t len = (size_t)(colon - address);
    if (*h == '[' && len >= 2 && h[len - 1] == ']') {
        h++;
        len -= 2;
    }
    if (len >= sizeof host)
        return vb_error_set(VB_EINVAL, "metrics_endpoint '%s': address too long", address);
    memcpy(host, h, len);
    host[len] = '\0';
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *v6 = false;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *v6 = true;
    } else {
        return vb_error_set(VB_EINVAL,
                            "metrics_endpoint '%s': '%s' is not an IPv4 or IPv6 "
                            "address",
                            address, host);
    }
    return 0;
}

static enum MHD_Result s_reply(struct MHD_Connection *c, unsigned status, char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            status == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8"
                                                  : "text/plain; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    vb_metrics_http_t *self = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return s_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("only GET\n"));
    if (strcmp(url, "/metrics") != 0)
        return s_reply(c, MHD_HTTP_NOT_FOUND, strdup("not found: the metrics are at /metrics\n"));
    pthread_mutex_lock(&self->lock);
    char *body = strdup(self->text ? self->text : "");
    pthread_mutex_unlock(&self->lock);
    if (!body)
        return MHD_NO;
    return s_reply(c, MHD_HTTP_OK, body);
}

vb_metrics_http_t *vb_metrics_http_new(const char *address)
{
    struct sockaddr_storage ss;
    bool v6 = false;
    if (s_parse(address, &ss, &v6) != 0)
        return NULL;
    vb_metrics_http_t *self = calloc(1, sizeof *self);
    if (!self) {
        vb_error_set(VB_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | (v6 ? MHD_USE_IPv6 : 0);
    self->daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, s_handle, self, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!self->daemon) {
        vb_error_set(VB_EIO, "cannot serve metrics on %s (address in use or not local?)", address);
        vb_metrics_http_destroy(&self);
        return NULL;
    }
    VB_LOG_INFO("metrics", "listening address=%s path=/metrics", address);
    return self;
}

void vb_metrics_http_publish(vb_metrics_http_t *self, char *text)
{
    pthread_mutex_lock(&self->lock);
    char *old = self->text;
    self->text = text;
    pthread_mutex_unlock(&self->lock);
    free(old);
}

void vb_metrics_http_destroy(vb_metrics_http_t **self_p)
{
    vb_metrics_http_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->daemon)
        MHD_stop_daemon(self->daemon);
    pthread_mutex_destroy(&self->lock);
    free(self->text);
    free(self);
    *self_p = NULL;
}
