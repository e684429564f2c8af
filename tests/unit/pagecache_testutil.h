/* What the page cache holds of a file, for the tests of writes and reads that bypass it
 * (O_DIRECT). Static functions, included by unit tests only. */
#ifndef VB_PAGECACHE_TESTUTIL_H
#define VB_PAGECACHE_TESTUTIL_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

/* tmpfs keeps every file in the page cache: there is nothing to bypass. */
static inline bool tpc_bypassable(const char *path)
{
    struct statfs fs;
    cr_assert_eq(statfs(path, &fs), 0, "statfs %s", path);
    return fs.f_type != TMPFS_MAGIC;
}

/* Pages of [off, off + len) of the file at path (off page-aligned, len at most 1 MiB) that sit
 * in the page cache. */
static inline size_t tpc_cached_pages(const char *path, uint64_t off, size_t len)
{
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0, "open %s", path);
    uint8_t *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);
    cr_assert_neq(map, MAP_FAILED);
    unsigned char vec[256];
    size_t pages = (len + 4095) / 4096, cached = 0;
    cr_assert_leq(pages, sizeof vec);
    cr_assert_eq(mincore(map, len, vec), 0);
    for (size_t i = 0; i < pages; i++)
        cached += vec[i] & 1;
    munmap(map, len);
    close(fd);
    return cached;
}

#endif
