/* netport: a chosen port lies outside the kernel's ephemeral range, is free on both loopback
 * families when asked, and is none of the ports to avoid. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netport.h"

static int s_listen(int family, int port)
{
    int fd = socket(family, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    int rc;
    if (family == AF_INET6) {
        int one = 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                                 .sin6_port = htons((uint16_t)port),
                                 .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    }
    cr_assert_eq(rc, 0, "port %d is not free on family %d", port, family);
    cr_assert_eq(listen(fd, 1), 0);
    return fd;
}

Test(netport, outside_the_ephemeral_range_and_free_on_both_families)
{
    int low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        cr_assert_eq(fscanf(f, "%d %d", &low, &high), 2);
        fclose(f);
    }
    for (int i = 0; i < 50; i++) {
        int port = 0;
        cr_assert_eq(vb_netport_pick(true, NULL, 0, &port), 0, "%s", vb_error_msg());
        cr_assert(port < low || port > high, "port %d is in the ephemeral range %d-%d", port, low,
                  high);
        int a = s_listen(AF_INET, port), b = s_listen(AF_INET6, port);
        close(a);
        close(b);
    }
}

Test(netport, avoids_the_ports_given_and_ports_in_use)
{
    int avoid[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(vb_netport_pick(true, avoid, (size_t)i, &avoid[i]), 0);
    cr_assert(avoid[0] != avoid[1] && avoid[1] != avoid[2] && avoid[0] != avoid[2]);
    /* hold many ports; none of them is ever chosen */
    enum { N = 200 };
    int held[N], fds[N];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(vb_netport_pick(false, held, (size_t)i, &held[i]), 0);
        fds[i] = s_listen(AF_INET, held[i]);
    }
    for (int i = 0; i < 200; i++) {
        int port;
        cr_assert_eq(vb_netport_pick(false, NULL, 0, &port), 0);
        for (int j = 0; j < N; j++)
            cr_assert_neq(port, held[j], "chose port %d, which is in use", port);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
}
