/* metrics_http — serves the Prometheus text at GET /metrics from its own thread (libmicrohttpd).
 *
 * The coordinator's loop renders the text and hands it over with vb_metrics_http_publish(); a
 * scrape copies the last text under a mutex held for the copy only, so a slow or stuck scraper
 * never holds up the loop, and the server never reads the coordinator's state. */
#ifndef VB_METRICS_HTTP_H
#define VB_METRICS_HTTP_H

#include "error.h"

typedef struct vb_metrics_http vb_metrics_http_t;

/* Listens on `address`: "IPv4:PORT" or "[IPv6]:PORT" (literal addresses). NULL with the message
 * set when the address does not parse or cannot be bound. */
vb_metrics_http_t *vb_metrics_http_new(const char *address);

/* Replaces the text served (takes ownership of `text`, malloc'd). */
void vb_metrics_http_publish(vb_metrics_http_t *self, char *text);

/* Stops the server thread; NULL-safe, sets *self_p to NULL. */
void vb_metrics_http_destroy(vb_metrics_http_t **self_p);

#endif
