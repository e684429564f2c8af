/* grow — room for one more item in an array that doubles as it fills.
 *
 *   if ((rc = VB_GROW(list->items, list->count, list->cap, 16, "restore points")))
 *       return rc;
 *   list->items[list->count++] = item;
 *
 * The array stays as it was when growing fails (VB_ENOMEM naming `what`). */
#ifndef VB_GROW_H
#define VB_GROW_H

#include <stddef.h>

#include "error.h"

/* items_p points to the array pointer (any item type); cap is updated on growth. */
int vb_grow_by_one(void *items_p, size_t count, size_t *cap, size_t item_size, size_t first_cap,
                   const char *what) VB_WUR;

#define VB_GROW(items, count, cap, first_cap, what)                                                \
    vb_grow_by_one(&(items), (count), &(cap), sizeof *(items), (first_cap), (what))

#endif
