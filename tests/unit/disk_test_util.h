/* Helpers shared by the disk unit tests: a temp dir, a sparse test image with known holes, and
 * its expected allocation map. Static functions, included by test_disk*.c only. */
#ifndef VB_DISK_TEST_UTIL_H
#define VB_DISK_TEST_UTIL_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define TIMG_SIZE (6 * MiB + 64 * KiB)

/* Data extents of the test image (offset, length); everything else is a hole. */
static const uint64_t s_timg_extents[][2] = {
    {0, 64 * KiB},
    {1 * MiB, 192 * KiB},
    {3 * MiB + 64 * KiB, 64 * KiB},
    {TIMG_SIZE - 64 * KiB, 64 * KiB},
};
#define TIMG_NEXTENTS (sizeof s_timg_extents / sizeof s_timg_extents[0])

static inline uint8_t timg_byte(uint64_t off)
{
    uint64_t x = off * 0x9E3779B97F4A7C15ull;
    return (uint8_t)((x >> 56) | 1); /* never 0, so data never reads as a hole */
}

/* A fresh directory under $VB_TEST_TMP (or /tmp); caller removes it with tdir_rm. */
static inline void tdir_make(char *out, size_t cap)
{
    const char *base = getenv("VB_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", base);
    cr_assert_eq(system(cmd), 0);
    snprintf(out, cap, "%s/vbdisk-XXXXXX", base);
    cr_assert_not_null(mkdtemp(out));
}

static inline void tdir_rm(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Writes the sparse test image to path. */
static inline void timg_make(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(fd >= 0, "create %s", path);
    cr_assert_eq(ftruncate(fd, (off_t)TIMG_SIZE), 0);
    for (size_t i = 0; i < TIMG_NEXTENTS; i++) {
        uint64_t off = s_timg_extents[i][0], len = s_timg_extents[i][1];
        uint8_t *buf = malloc(len);
        cr_assert_not_null(buf);
        for (uint64_t j = 0; j < len; j++)
            buf[j] = timg_byte(off + j);
        cr_assert_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
        free(buf);
    }
    cr_assert_eq(close(fd), 0);
}

/* The byte the test image holds at off. */
static inline uint8_t timg_expect(uint64_t off)
{
    for (size_t i = 0; i < TIMG_NEXTENTS; i++)
        if (off >= s_timg_extents[i][0] && off < s_timg_extents[i][0] + s_timg_extents[i][1])
            return timg_byte(off);
    return 0;
}

/* Reads the whole image through buf-sized reads with fn and compares with what it holds. */
#define TIMG_CHECK_ALL(disk)                                                                       \
    do {                                                                                           \
        size_t step_ = 1 * MiB + 4096;                                                             \
        uint8_t *b_ = malloc(step_);                                                               \
        cr_assert_not_null(b_);                                                                    \
        for (uint64_t o_ = 0; o_ < TIMG_SIZE; o_ += step_) {                                       \
            size_t n_ = TIMG_SIZE - o_ < step_ ? (size_t)(TIMG_SIZE - o_) : step_;                 \
            int rc_ = vb_disk_read((disk), b_, n_, o_);                                            \
            cr_assert_eq(rc_, 0, "read at %llu: %s", (unsigned long long)o_, vb_error_msg());      \
            for (size_t k_ = 0; k_ < n_; k_++)                                                     \
                if (b_[k_] != timg_expect(o_ + k_))                                                \
                    cr_assert_fail("byte %llu differs", (unsigned long long)(o_ + k_));            \
        }                                                                                          \
        free(b_);                                                                                  \
    } while (0)

/* The allocation map equals the image's data extents exactly. */
#define TIMG_CHECK_MAP(list)                                                                       \
    do {                                                                                           \
        cr_assert_eq((list).count, TIMG_NEXTENTS, "extent count %zu", (list).count);               \
        for (size_t i_ = 0; i_ < TIMG_NEXTENTS; i_++) {                                            \
            cr_expect_eq((list).items[i_].offset, s_timg_extents[i_][0], "extent %zu offset", i_); \
            cr_expect_eq((list).items[i_].length, s_timg_extents[i_][1], "extent %zu length", i_); \
        }                                                                                          \
    } while (0)

#endif
