/* Helpers shared by the repository and pipeline unit tests (header only: one copy per test
 * executable). */
#ifndef VB_REPO_TESTUTIL_H
#define VB_REPO_TESTUTIL_H

/* Test paths live under a short temp directory; snprintf truncation there is not a concern. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static inline char *tu_tmpdir(void)
{
    const char *base = getenv("VB_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0755);
    char *path = malloc(4096);
    cr_assert_not_null(path);
    snprintf(path, 4096, "%s/vbak-repo-XXXXXX", base);
    cr_assert_not_null(mkdtemp(path), "mkdtemp under %s: %s", base, strerror(errno));
    return path;
}

static inline int tu_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void tu_rmrf(char *path)
{
    if (path)
        nftw(path, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}

/* Deterministic pseudo-random bytes (xorshift64*), so failures reproduce. */
static inline void tu_fill_random(void *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i += 8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t v = x * 0x2545F4914F6CDD1Dull;
        size_t n = len - i < 8 ? len - i : 8;
        memcpy(p + i, &v, n);
    }
}

/* Text-like data that zstd compresses well. */
static inline void tu_fill_text(void *buf, size_t len, uint64_t seed)
{
    static const char words[] = "backup restore chunk digest index extent agent repository ";
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)words[(i + seed) % (sizeof words - 1)];
    if (len >= 8)
        memcpy(p, &seed, 8);
}

/* Flips one bit of the byte at `at` in a file. */
static inline void tu_flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x40;
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

static inline void tu_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static inline void tu_write_key(const char *path, uint64_t seed)
{
    uint8_t key[32];
    tu_fill_random(key, sizeof key, seed);
    tu_write_file(path, key, sizeof key);
}

/* Counts regular files under dir (recursively) whose name starts with prefix ("" = all). */
static inline size_t tu_count_files(const char *dir, const char *prefix)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(sub, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            n += tu_count_files(sub, prefix);
        else if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static inline void tu_write_id_map(const char *file, const char *text)
{
    int fd = open(file, O_WRONLY);
    if (fd >= 0) {
        (void)!write(fd, text, strlen(text));
        close(fd);
    }
}

/* Child side: a private mount namespace (as root; otherwise inside a new user namespace, which
 * needs a single-threaded process: hence the fork) with a tmpfs of `size` on `dir`. Returns NULL
 * or what failed. */
static inline const char *tu_enter_small_fs(const char *dir, const char *size, char *msg,
                                            size_t msgsz)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWNS) != 0) {
        int err = errno;
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
            snprintf(msg, msgsz,
                     "cannot create a mount namespace for a small tmpfs (%s; user namespace: "
                     "%s): run the tests as root or enable unprivileged user namespaces",
                     strerror(err), strerror(errno));
            return msg;
        }
        char map[64];
        tu_write_id_map("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "%u %u 1", (unsigned)uid, (unsigned)uid);
        tu_write_id_map("/proc/self/uid_map", map);
        snprintf(map, sizeof map, "%u %u 1", (unsigned)gid, (unsigned)gid);
        tu_write_id_map("/proc/self/gid_map", map);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(msg, msgsz, "make / private: %s", strerror(errno));
        return msg;
    }
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s", size);
    if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0) {
        snprintf(msg, msgsz, "mount tmpfs on %s: %s", dir, strerror(errno));
        return msg;
    }
    return NULL;
}

/* A scenario run on the small file system: returns NULL when all its checks hold, else what
 * failed (written into msg). It runs in a child process and must not use cr_assert. */
typedef const char *(*tu_fs_scenario_t)(const char *mnt, char *msg, size_t msgsz);

/* Mounts a tmpfs of `size` (e.g. "4m") on `dir` in a private mount namespace of a forked child
 * and runs `scenario` there; the mount disappears with the child. Fails the test loudly when no
 * namespace can be made: the full-file-system tests must not silently pass. */
static inline void tu_run_on_small_fs(const char *dir, const char *size, tu_fs_scenario_t scenario)
{
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        static char msg[2048];
        close(pfd[0]);
        const char *fail = tu_enter_small_fs(dir, size, msg, sizeof msg);
        if (!fail)
            fail = scenario(dir, msg, sizeof msg);
        umount(dir);
        if (fail)
            (void)!write(pfd[1], fail, strlen(fail));
        _exit(fail ? 1 : 0);
    }
    close(pfd[1]);
    char text[2048];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof text - 1 && (r = read(pfd[0], text + n, sizeof text - 1 - n)) > 0)
        n += (size_t)r;
    text[n] = '\0';
    close(pfd[0]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
              n ? text : "the scenario process crashed");
}

/* For scenarios: `TU_CHECK(cond, fmt, ...)` returns the formatted message when cond is false. */
#define TU_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(msg, msgsz, __VA_ARGS__);                                                     \
            return msg;                                                                            \
        }                                                                                          \
    } while (0)

#endif
