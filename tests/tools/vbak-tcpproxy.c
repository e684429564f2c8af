/* vbak-tcpproxy — a TCP relay for tests that need a network blip between vbak and a server.
 *
 *   vbak-tcpproxy --to HOST:PORT --port-file FILE [--outage-ms MS] [--reset TEXT [--times N]]
 *
 * Listens on an ephemeral port of 127.0.0.1 (written to FILE once it listens) and relays every
 * connection to HOST:PORT byte for byte (TLS passes through untouched). SIGUSR1 starts an outage
 * of MS milliseconds (default 3000): every open connection is reset and every new one is reset at
 * once until it ends, as a peer sees a vCenter whose network blinks. SIGUSR2: the next answer of
 * the server is dropped and its connection reset, both sides (the server did the request; the
 * client never hears so); an HTTP interim answer (100 Continue) before it passes.
 * --reset TEXT: the first N (default 1) requests (plain HTTP) whose bytes contain TEXT are not
 * relayed; their connection is reset instead, as a network blip that hits that request (libcurl
 * itself resends a request once on a new connection when a reused one died: N = 2 gets past
 * that). SIGTERM stops it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_PAIRS 128

typedef struct {
    int fd[2]; /* client, server; -1 when free */
} s_pair_t;

static volatile sig_atomic_t s_outage_requested;
static volatile sig_atomic_t s_lose_requested;
static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    if (sig == SIGUSR1)
        s_outage_requested = 1;
    else if (sig == SIGUSR2)
        s_lose_requested = 1;
    else
        s_stop = 1;
}

static long long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Closes with a reset (RST), as a connection cut by the network looks to its peer. */
static void s_reset(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void s_pair_close(s_pair_t *p, bool reset)
{
    for (int i = 0; i < 2; i++) {
        if (p->fd[i] < 0)
            continue;
        if (reset)
            s_reset(p->fd[i]);
        else
            close(p->fd[i]);
        p->fd[i] = -1;
    }
}

static int s_connect_upstream(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Relays what one side has to the other; false when the pair is done. */
static bool s_relay(s_pair_t *p, int from)
{
    char buf[65536];
    ssize_t n = read(p->fd[from], buf, sizeof buf);
    if (n <= 0)
        return false;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(p->fd[1 - from], buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        off += w;
    }
    return true;
}

/* Does what the client sends next contain `text`? */
static bool s_request_has(int fd, const char *text)
{
    char head[4096];
    ssize_t n = recv(fd, head, sizeof head, MSG_PEEK);
    return n > 0 && memmem(head, (size_t)n, text, strlen(text)) != NULL;
}

/* Is what the server sends next an HTTP interim answer ("HTTP/1.1 100 Continue")? */
static bool s_interim(int fd)
{
    char head[16] = "";
    ssize_t n = recv(fd, head, sizeof head - 1, MSG_PEEK);
    return n >= 12 && strncmp(head, "HTTP/1.1 1", 10) == 0;
}

static int s_listen(const char *port_file)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("vbak-tcpproxy: listen");
        exit(1);
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", ntohs(a.sin_port)) < 0 || fclose(f) != 0 ||
        rename(tmp, port_file) != 0) {
        perror("vbak-tcpproxy: port file");
        exit(1);
    }
    return fd;
}

static void s_accept(int lfd, s_pair_t *pairs, bool outage, const char *host, const char *port)
{
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    if (outage) {
        s_reset(c);
        return;
    }
    for (int i = 0; i < S_MAX_PAIRS; i++) {
        if (pairs[i].fd[0] >= 0)
            continue;
        int s = s_connect_upstream(host, port);
        if (s < 0)
            break;
        pairs[i].fd[0] = c;
        pairs[i].fd[1] = s;
        return;
    }
    s_reset(c);
}

int main(int argc, char **argv)
{
    const char *to = NULL, *port_file = NULL, *reset = NULL;
    long reset_times = 1;
    long long outage_ms = 3000;
    bool lose = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--to"))
            to = argv[i + 1];
        else if (!strcmp(argv[i], "--port-file"))
            port_file = argv[i + 1];
        else if (!strcmp(argv[i], "--outage-ms"))
            outage_ms = strtoll(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--reset"))
            reset = argv[i + 1];
        else if (!strcmp(argv[i], "--times"))
            reset_times = strtol(argv[i + 1], NULL, 10);
    }
    const char *colon = to ? strrchr(to, ':') : NULL;
    if (!colon || !port_file || outage_ms <= 0) {
        fprintf(stderr, "usage: vbak-tcpproxy --to HOST:PORT --port-file FILE [--outage-ms MS] "
                        "[--reset TEXT [--times N]]\n");
        return 2;
    }
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - to), to);
    const char *port = colon + 1;
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int lfd = s_listen(port_file);
    static s_pair_t pairs[S_MAX_PAIRS];
    for (int i = 0; i < S_MAX_PAIRS; i++)
        pairs[i].fd[0] = pairs[i].fd[1] = -1;
    long long outage_until = 0;
    while (!s_stop) {
        if (s_outage_requested) {
            s_outage_requested = 0;
            outage_until = s_now_ms() + outage_ms;
            for (int i = 0; i < S_MAX_PAIRS; i++)
                s_pair_close(&pairs[i], true);
            fprintf(stderr, "vbak-tcpproxy: outage for %lld ms\n", outage_ms);
        }
        if (s_lose_requested) {
            s_lose_requested = 0;
            lose = true;
        }
        struct pollfd pfd[1 + 2 * S_MAX_PAIRS];
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < S_MAX_PAIRS; i++)
            for (int k = 0; k < 2; k++)
                pfd[n++] = (struct pollfd){.fd = pairs[i].fd[k], .events = POLLIN};
        if (poll(pfd, (nfds_t)n, 200) < 0 && errno != EINTR)
            break;
        bool outage = s_now_ms() < outage_until;
        if (pfd[0].revents & POLLIN)
            s_accept(lfd, pairs, outage, host, port);
        for (int i = 0; i < S_MAX_PAIRS; i++)
            for (int k = 0; k < 2; k++) {
                if (pairs[i].fd[k] < 0 || !(pfd[1 + 2 * i + k].revents & (POLLIN | POLLHUP)))
                    continue;
                if (k == 0 && reset && reset_times > 0 && s_request_has(pairs[i].fd[0], reset)) {
                    reset_times--;
                    s_pair_close(&pairs[i], true);
                    fprintf(stderr, "vbak-tcpproxy: reset a matching request\n");
                } else if (k == 1 && lose && !s_interim(pairs[i].fd[1])) {
                    lose = false;
                    s_pair_close(&pairs[i], true);
                    fprintf(stderr, "vbak-tcpproxy: lost an answer\n");
                } else if (!s_relay(&pairs[i], k)) {
                    s_pair_close(&pairs[i], false);
                }
            }
    }
    for (int i = 0; i < S_MAX_PAIRS; i++)
        s_pair_close(&pairs[i], false);
    close(lfd);
    return 0;
}
