/* le — the little-endian integers of the repository's on-disk formats (chunk headers, disk
 * indexes, packs and their trailers, index objects), written and read byte by byte so that the
 * layout does not depend on the host. */
#ifndef VB_REPO_LE_H
#define VB_REPO_LE_H

#include <stdint.h>

/* Writes the low `bytes` bytes of v at p, least significant first. */
static inline void vb_le_put(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Reads `bytes` bytes at p, least significant first. */
static inline uint64_t vb_le_get(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#endif
