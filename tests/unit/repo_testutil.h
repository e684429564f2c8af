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

/* Mounts a tmpfs of `size` (e.g. "4m") on dir in a private mount namespace of this test process
 * (the mount disappears with the process). As root a mount namespace suffices; otherwise a user
 * namespace is tried. Fails the test loudly when neither works: the full-file-system test must
 * not silently pass. */
static inline void tu_mount_small_fs(const char *dir, const char *size)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWNS) != 0) {
        int err = errno;
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            cr_assert_fail("cannot create a mount namespace for a small tmpfs (%s; user namespace: "
                     "%s): run the tests as root or enable unprivileged user namespaces",
                     strerror(err), strerror(errno));
        char map[64];
        tu_write_id_map("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "%u %u 1", (unsigned)uid, (unsigned)uid);
        tu_write_id_map("/proc/self/uid_map", map);
        snprintf(map, sizeof map, "%u %u 1", (unsigned)gid, (unsigned)gid);
        tu_write_id_map("/proc/self/gid_map", map);
    }
    cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "make / private: %s",
                 strerror(errno));
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s", size);
    cr_assert_eq(mount("tmpfs", dir, "tmpfs", 0, opts), 0, "mount tmpfs on %s: %s", dir,
                 strerror(errno));
}

#endif
