/* netport — choosing a loopback TCP port now for a server that binds it later (lab sites).
 *
 * Ports are drawn at random from below the kernel's ephemeral range
 * (/proc/sys/net/ipv4/ip_local_port_range): a port from inside it can be handed to any outgoing
 * connection between the choice and the bind, and the bind then fails. A chosen port is free at
 * the moment of choosing, on 127.0.0.1 and, when asked, on [::1] too. */
#ifndef VB_NETPORT_H
#define VB_NETPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Sets *port to a port free now on 127.0.0.1 (and [::1] when with_ipv6) and not in avoid[]. */
int vb_netport_pick(bool with_ipv6, const int *avoid, size_t n_avoid, int *port) VB_WUR;

#endif
