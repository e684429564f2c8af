#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"

void vb_trace_write(const char *env_var, const char *what, const void *data, size_t len)
{
    static atomic_uint seq;
    const char *dir = getenv(env_var);
    if (!dir || !*dir)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%ld-%06u-%s", dir, (long)getpid(), atomic_fetch_add(&seq, 1),
             what);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -1 : len ? vb_pwrite_full(fd, data, len, 0) : 0;
    if (rc != 0)
        VB_LOG_WARN("trace", "trace not written path=%s error=%s", path,
                    fd < 0 ? strerror(errno) : "write failed");
    if (fd >= 0)
        close(fd);
}
