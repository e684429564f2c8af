/* vbak-notify-listen — the service manager's end of sd_notify for tests of Type=notify.
 *
 *   vbak-notify-listen SOCKET TIMEOUT_MS
 *
 * Binds a datagram socket at the path SOCKET (what systemd passes as $NOTIFY_SOCKET), prints each
 * notification it receives on stdout (its lines joined by spaces, one notification per line) and
 * exits 0 once one holds the line READY=1; exit status 1 when none did within TIMEOUT_MS, 2 on a
 * usage or socket error. The socket is removed at exit. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Prints one notification on a line; true when it holds the line READY=1. */
static int s_print(char *msg)
{
    int ready = 0;
    for (char *line = msg, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        ready |= strcmp(line, "READY=1") == 0;
        printf("%s%s", line, next ? " " : "\n");
    }
    fflush(stdout);
    return ready;
}

int main(int argc, char **argv)
{
    char *end = NULL;
    long timeout = argc == 3 ? strtol(argv[2], &end, 10) : -1;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (argc != 3 || !end || *end || timeout < 0 || strlen(argv[1]) >= sizeof addr.sun_path) {
        fprintf(stderr, "usage: vbak-notify-listen SOCKET TIMEOUT_MS\n");
        return 2;
    }
    memcpy(addr.sun_path, argv[1], strlen(argv[1]));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "vbak-notify-listen: %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    int rc = 1;
    for (long deadline = s_now_ms() + timeout, left; (left = deadline - s_now_ms()) > 0;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n < 0)
            continue;
        buf[n] = '\0';
        if (s_print(buf)) {
            rc = 0;
            break;
        }
    }
    close(fd);
    unlink(argv[1]);
    return rc;
}
