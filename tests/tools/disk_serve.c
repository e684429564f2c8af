/* disk_serve — starts a server on an ephemeral loopback port without a port race:
 *   disk_serve ADDR PORTFILE -- nbdkit ARGS...
 * binds ADDR:0, writes the port number to PORTFILE, then execs the command with the listening
 * socket as fd 3 and LISTEN_PID/LISTEN_FDS set (systemd socket activation, which nbdkit accepts).
 * Connections queue on the socket until the server accepts them. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 5 || strcmp(argv[3], "--") != 0) {
        fprintf(stderr, "usage: disk_serve ADDR PORTFILE -- COMMAND ARGS...\n");
        return 2;
    }
    const char *addr = argv[1];
    bool v6 = strchr(addr, ':') != NULL;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        sl = sizeof *a;
        if (inet_pton(AF_INET6, addr, &a->sin6_addr) != 1)
            goto bad_addr;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        sl = sizeof *a;
        if (inet_pton(AF_INET, addr, &a->sin_addr) != 1)
            goto bad_addr;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 16) != 0) {
        perror("disk_serve: socket");
        return 1;
    }
    sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        perror("disk_serve: getsockname");
        return 1;
    }
    int port = v6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[2]);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, argv[2]) != 0) {
        perror("disk_serve: port file");
        return 1;
    }
    if (fd != 3) {
        if (dup2(fd, 3) < 0) {
            perror("disk_serve: dup2");
            return 1;
        }
        close(fd);
    }
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
    execvp(argv[4], argv + 4);
    perror("disk_serve: exec");
    return 127;
bad_addr:
    fprintf(stderr, "disk_serve: bad address %s\n", addr);
    return 2;
}
