/* lab_nbd_psk — reads a whole disk to stdout from an
 * `nbds://USER@[ADDR]:PORT/EXPORT?tls-psk-file=F` URI the way vbak's disk layer does for IPv6: it
 * connects the socket itself (libnbd's own connect would send the IPv6 literal as TLS SNI) and runs
 * TLS-PSK over it. Exit 0 when every byte was read, 1 with the reason on stderr otherwise (a wrong
 * key fails the handshake). */
#include <arpa/inet.h>
#include <errno.h>
#include <libnbd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int s_hex(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes [s, e) into a new string. */
static char *s_decode(const char *s, const char *e)
{
    char *out = malloc((size_t)(e - s) + 1), *p = out;
    if (!out)
        return NULL;
    for (; s < e; s++) {
        if (*s == '%' && e - s >= 3 && s_hex(s[1]) >= 0 && s_hex(s[2]) >= 0) {
            *p++ = (char)(s_hex(s[1]) * 16 + s_hex(s[2]));
            s += 2;
        } else {
            *p++ = *s;
        }
    }
    *p = '\0';
    return out;
}

int main(int argc, char **argv)
{
    if (argc != 2 || strncmp(argv[1], "nbds://", 7) != 0) {
        fprintf(stderr, "usage: lab_nbd_psk nbds://USER@[ADDR]:PORT/EXPORT?tls-psk-file=FILE\n");
        return 2;
    }
    const char *u = argv[1] + 7;
    const char *at = strchr(u, '@'), *lb = strchr(u, '['), *rb = strchr(u, ']');
    const char *slash = rb ? strchr(rb, '/') : NULL, *q = slash ? strchr(slash, '?') : NULL;
    const char *key = "tls-psk-file=";
    if (!at || !lb || !rb || lb != at + 1 || rb[1] != ':' || !slash || !q ||
        strncmp(q + 1, key, strlen(key)) != 0) {
        fprintf(stderr, "lab_nbd_psk: cannot parse %s\n", argv[1]);
        return 2;
    }
    char *user = s_decode(u, at), *addr = s_decode(lb + 1, rb);
    char *exp = s_decode(slash + 1, q), *psk = s_decode(q + 1 + strlen(key), q + strlen(q));
    int port = atoi(rb + 2);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    int rc = 1;
    struct nbd_handle *h = nbd_create();
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!h || fd < 0 || inet_pton(AF_INET6, addr, &sa.sin6_addr) != 1) {
        fprintf(stderr, "lab_nbd_psk: bad address %s\n", addr);
        goto out;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "lab_nbd_psk: connect [%s]:%d: %s\n", addr, port, strerror(errno));
        goto out;
    }
    if (nbd_set_tls(h, LIBNBD_TLS_REQUIRE) == -1 || nbd_set_tls_psk_file(h, psk) == -1 ||
        nbd_set_tls_username(h, user) == -1 || nbd_set_export_name(h, exp) == -1 ||
        nbd_connect_socket(h, fd) == -1) {
        fprintf(stderr, "lab_nbd_psk: %s\n", nbd_get_error());
        fd = -1; /* the handle owns it now or it was closed */
        goto out;
    }
    fd = -1;
    int64_t size = nbd_get_size(h);
    static char buf[1 << 20];
    for (int64_t off = 0; size >= 0 && off < size;) {
        size_t n = size - off < (int64_t)sizeof buf ? (size_t)(size - off) : sizeof buf;
        if (nbd_pread(h, buf, n, (uint64_t)off, 0) == -1) {
            fprintf(stderr, "lab_nbd_psk: read at %lld: %s\n", (long long)off, nbd_get_error());
            goto out;
        }
        if (fwrite(buf, 1, n, stdout) != n) {
            fprintf(stderr, "lab_nbd_psk: write: %s\n", strerror(errno));
            goto out;
        }
        off += (int64_t)n;
    }
    rc = size >= 0 && fflush(stdout) == 0 ? 0 : 1;
    nbd_shutdown(h, 0);
out:
    if (fd >= 0)
        close(fd);
    nbd_close(h);
    free(user);
    free(addr);
    free(exp);
    free(psk);
    return rc;
}
