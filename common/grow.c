#include "grow.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int vb_grow_by_one(void *items_p, size_t count, size_t *cap, size_t item_size, size_t first_cap,
                   const char *what)
{
    if (count < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : first_cap;
    if (ncap <= *cap || ncap > SIZE_MAX / item_size)
        return vb_error_set(VB_ENOMEM, "too many %s", what);
    void *old;
    memcpy(&old, items_p, sizeof old); /* the caller's pointer, whatever its item type */
    void *grown = realloc(old, ncap * item_size);
    if (!grown)
        return vb_error_set(VB_ENOMEM, "out of memory for %s", what);
    memcpy(items_p, &grown, sizeof grown);
    *cap = ncap;
    return 0;
}
