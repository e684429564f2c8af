/* daemon: the service manager notification (sd_notify's datagram protocol) as systemd's
 * Type=notify receives it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"

/* A datagram socket bound to `name` (a path, or '@' + an abstract name), as systemd makes. */
static int s_listen(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(addr.sun_path, name, len);
    if (name[0] == '@')
        addr.sun_path[0] = '\0';
    cr_assert_eq(bind(fd, (struct sockaddr *)&addr,
                      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)),
                 0);
    return fd;
}

static void s_expect(int fd, const char *want)
{
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    cr_assert_gt(n, 0, "no notification arrived");
    buf[n] = '\0';
    char expected[512];
    snprintf(expected, sizeof expected, "%s\nMAINPID=%ld", want, (long)getpid());
    cr_assert_str_eq(buf, expected);
}

Test(daemon, notify_path_socket)
{
    char dir[] = "/tmp/vbak-notify-XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = s_listen(path);
    setenv("NOTIFY_SOCKET", path, 1);
    cr_assert_eq(vb_daemon_notify("READY=1"), 0, "%s", vb_error_msg());
    s_expect(fd, "READY=1");
    cr_assert_eq(vb_daemon_notify("STOPPING=1"), 0, "%s", vb_error_msg());
    s_expect(fd, "STOPPING=1");
    close(fd);
    unlink(path);
    rmdir(dir);
}

Test(daemon, notify_abstract_socket)
{
    char name[64];
    snprintf(name, sizeof name, "@vbak-test-notify-%ld", (long)getpid());
    int fd = s_listen(name);
    setenv("NOTIFY_SOCKET", name, 1);
    cr_assert_eq(vb_daemon_notify("READY=1"), 0, "%s", vb_error_msg());
    s_expect(fd, "READY=1");
    close(fd);
}

Test(daemon, notify_without_service_manager_does_nothing)
{
    unsetenv("NOTIFY_SOCKET");
    cr_assert_eq(vb_daemon_notify("READY=1"), 0);
}

Test(daemon, notify_unreachable_socket_is_an_error)
{
    setenv("NOTIFY_SOCKET", "/nonexistent/vbak/notify", 1);
    cr_assert_eq(vb_daemon_notify("READY=1"), VB_EIO);
    cr_assert(strstr(vb_error_msg(), "/nonexistent/vbak/notify") != NULL, "%s", vb_error_msg());
    setenv("NOTIFY_SOCKET", "relative", 1);
    cr_assert_eq(vb_daemon_notify("READY=1"), VB_EINVAL);
}
