#include "lab/lab_util.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

uint64_t vb_lab_rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t vb_lab_hash_u64(uint64_t h, uint64_t v)
{
    uint64_t s = h ^ (v * 0xff51afd7ed558ccdull);
    return vb_lab_rand_next(&s);
}

uint64_t vb_lab_hash_str(uint64_t h, const char *s)
{
    uint64_t f = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        f ^= (unsigned char)*s;
        f *= 0x100000001b3ull;
    }
    return vb_lab_hash_u64(h, f);
}

void vb_lab_fill(uint64_t seed, unsigned char *buf, size_t len)
{
    uint64_t state = seed;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v = vb_lab_rand_next(&state);
        memcpy(buf + i, &v, 8);
    }
    if (i < len) {
        uint64_t v = vb_lab_rand_next(&state);
        memcpy(buf + i, &v, len - i);
    }
}

char *vb_lab_strf(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0) {
        vb_error_set(VB_ENOMEM, "out of memory formatting a string");
        return NULL;
    }
    return out;
}

void vb_lab_last_line(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\n");
        line[n] = '\0';
        if (n > 0)
            snprintf(buf, size, "%s", line);
    }
    fclose(f);
}

int vb_lab_run(const char *const argv[], const char *log_path)
{
    posix_spawn_file_actions_t fa;
    int rc = 0;
    pid_t pid;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return vb_error_set(VB_ENOMEM, "cannot prepare to run %s", argv[0]);
    const char *out = log_path ? log_path : "/dev/null";
    if (posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) != 0 ||
        posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0600) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, 1, 2) != 0 ||
        posix_spawn_file_actions_addclosefrom_np(&fa, 3) != 0) {
        rc = vb_error_set(VB_ENOMEM, "cannot prepare to run %s", argv[0]);
        goto out;
    }
    int err = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    if (err != 0) {
        rc = vb_error_set(VB_EIO, "cannot run %s: %s", argv[0], strerror(err));
        goto out;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            rc = vb_error_set(VB_EIO, "waiting for %s: %s", argv[0], strerror(errno));
            goto out;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char last[512];
        vb_lab_last_line(log_path, last, sizeof last);
        rc = vb_error_set(
            VB_EIO, "%s failed (%s %d)%s%s", argv[0], WIFEXITED(status) ? "exit status" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), last[0] ? ": " : "", last);
    }
out:
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

static int s_copy_range(int in, int out, off_t off, off_t len, const char *src)
{
    while (len > 0) {
        loff_t a = off, b = off;
        ssize_t n = copy_file_range(in, &a, out, &b, (size_t)len, 0);
        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP)) {
            char buf[65536];
            size_t want = len < (off_t)sizeof buf ? (size_t)len : sizeof buf;
            n = pread(in, buf, want, off);
            if (n > 0 && pwrite(out, buf, (size_t)n, off) != n)
                n = -1;
        }
        if (n < 0)
            return vb_error_set(VB_EIO, "copying %s: %s", src, strerror(errno));
        if (n == 0)
            return vb_error_set(VB_EIO, "copying %s: file shrank", src);
        off += n;
        len -= n;
    }
    return 0;
}

int vb_lab_copy_sparse(const char *src, const char *dst)
{
    int rc = 0;
    char *tmp = NULL;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = -1;
    if (in < 0)
        return vb_error_set(errno == ENOENT ? VB_ENOTFOUND : VB_EIO, "cannot open %s: %s", src,
                            strerror(errno));
    struct stat st;
    if (fstat(in, &st) < 0) {
        rc = vb_error_set(VB_EIO, "cannot stat %s: %s", src, strerror(errno));
        goto out;
    }
    /* Written under a temporary name and renamed when complete: a process killed mid-copy
     * leaves a ".tmp." file that vb_lab_sweep_interrupted recognises, never a half image under
     * the final name. */
    if (!(tmp = vb_lab_strf("%s.tmp.%ld", dst, (long)getpid()))) {
        rc = VB_ENOMEM;
        goto out;
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        rc = vb_error_set(VB_EIO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (ftruncate(out, st.st_size) < 0) {
        rc = vb_error_set(VB_EIO, "cannot size %s: %s", dst, strerror(errno));
        goto out;
    }
    off_t pos = 0;
    while (pos < st.st_size) {
        off_t data = lseek(in, pos, SEEK_DATA);
        if (data < 0)
            break; /* ENXIO: only a hole remains */
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0)
            hole = st.st_size;
        rc = s_copy_range(in, out, data, hole - data, src);
        if (rc)
            goto out;
        pos = hole;
    }
    if (fsync(out) < 0)
        rc = vb_error_set(VB_EIO, "cannot sync %s: %s", dst, strerror(errno));
    else if (rename(tmp, dst) < 0)
        rc = vb_error_set(VB_EIO, "cannot rename %s: %s", tmp, strerror(errno));
out:
    if (out >= 0)
        close(out);
    if (rc && tmp)
        unlink(tmp);
    free(tmp);
    close(in);
    return rc;
}

int vb_lab_file_extents(const char *path, uint64_t start, uint64_t limit, vb_extent_list_t *out)
{
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vb_error_set(errno == ENOENT ? VB_ENOTFOUND : VB_EIO, "cannot open %s: %s", path,
                            strerror(errno));
    off_t pos = (off_t)start;
    while ((uint64_t)pos < limit) {
        off_t data = lseek(fd, pos, SEEK_DATA);
        if (data < 0 || (uint64_t)data >= limit)
            break;
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0 || (uint64_t)hole > limit)
            hole = (off_t)limit;
        rc = vb_extent_list_add(out, (uint64_t)data, (uint64_t)(hole - data));
        if (rc)
            break;
        pos = hole;
    }
    close(fd);
    return rc;
}

int vb_lab_write_file(const char *path, const char *text, unsigned mode)
{
    int rc = 0;
    char *tmp = vb_lab_strf("%s.tmp.%ld", path, (long)getpid());
    if (!tmp)
        return VB_ENOMEM;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        rc = vb_error_set(VB_EIO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    if (n != (ssize_t)len || fsync(fd) < 0) {
        rc = vb_error_set(VB_EIO, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        rc = vb_error_set(VB_EIO, "cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
    }
out:
    free(tmp);
    return rc;
}

int vb_lab_mkdir(const char *path, unsigned mode)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return vb_error_set(VB_EIO, "cannot create directory %s: %s", path, strerror(errno));
    return 0;
}
