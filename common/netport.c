#include "netport.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

/* The lowest port handed to outgoing connections; 32768 when the kernel does not say. */
static int s_ephemeral_low(void)
{
    int low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2 || low < 1024 || low > 65535)
            low = 32768;
        fclose(f);
    }
    return low;
}

static bool s_bindable(int family, int port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok;
    if (family == AF_INET6) {
        int one = 1;
        struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                                 .sin6_port = htons((uint16_t)port),
                                 .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        ok = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0 &&
             bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    }
    close(fd);
    return ok;
}

int vb_netport_pick(bool with_ipv6, const int *avoid, size_t n_avoid, int *port)
{
    enum { S_LOWEST = 10000, S_ATTEMPTS = 500 };
    int low = s_ephemeral_low();
    /* When the ephemeral range starts low there is no room below it: draw above it instead. */
    int first = low - S_LOWEST >= 4096 ? S_LOWEST : 61000;
    int span = low - S_LOWEST >= 4096 ? low - S_LOWEST : 65535 - 61000;
    for (int attempt = 0; attempt < S_ATTEMPTS; attempt++) {
        unsigned r;
        if (getrandom(&r, sizeof r, 0) != sizeof r)
            return vb_error_set(VB_EIO, "getrandom: %s", strerror(errno));
        int p = first + (int)(r % (unsigned)span);
        bool taken = false;
        for (size_t i = 0; i < n_avoid && !taken; i++)
            taken = avoid[i] == p;
        if (!taken && s_bindable(AF_INET, p) && (!with_ipv6 || s_bindable(AF_INET6, p))) {
            *port = p;
            return 0;
        }
    }
    return vb_error_set(VB_EIO, "cannot find a TCP port free on 127.0.0.1%s",
                        with_ipv6 ? " and [::1]" : "");
}
