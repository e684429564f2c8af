/* admin_args — the argument schema of a control command, checked once before its handler runs.
 *
 * A control command's arguments come as a JSON object from the control socket. Each command's
 * row in the command table (admin.c) names its arguments: a name, a JSON type, required or not,
 * and bounds (integers: the value; strings: the length in bytes; arrays: the item count) or a
 * list of allowed strings. vb_args_check refuses, with a message that names the command and the
 * argument, an object with an argument the schema does not name, a value of another type, a
 * value outside its bounds, or a required argument left out. A JSON null stands for an optional
 * argument not given. Handlers then read the arguments with vb_args_int / _bool / _str, which
 * give the value or the stated default for one not given. */
#ifndef VB_ADMIN_ARGS_H
#define VB_ADMIN_ARGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef enum {
    VB_ARG_INT,     /* a JSON integer between min and max */
    VB_ARG_BOOL,    /* true or false */
    VB_ARG_STRING,  /* a string of min to max bytes (max 0: VB_ARG_STRING_MAX), one of `choices`
                       when they are given */
    VB_ARG_STRINGS, /* an array of min to max strings (max 0: VB_ARG_ITEMS_MAX), each of at most
                       VB_ARG_STRING_MAX bytes */
    VB_ARG_OBJECTS, /* an array of min to max JSON objects (max 0: VB_ARG_ITEMS_MAX) */
} vb_arg_type_t;

#define VB_ARG_STRING_MAX 4096
#define VB_ARG_ITEMS_MAX 100000

typedef struct {
    const char *name; /* NULL ends a schema */
    vb_arg_type_t type;
    bool required;
    int64_t min, max;
    const char *const *choices; /* VB_ARG_STRING: NULL-terminated allowed values, or NULL */
} vb_arg_t;

#define VB_ARGS_END                                                                                \
    {                                                                                              \
        NULL, VB_ARG_INT, false, 0, 0, NULL                                                        \
    }

/* Checks `args` (borrowed; must be a JSON object) against `schema` for `command` (used in the
 * messages). 0, or VB_EINVAL with a message such as "backup: unknown argument 'vmm'",
 * "restore: 'rp' must be an integer", "restore: missing argument 'rp'" or "prune:
 * 'repack_below' must be between 0 and 100". */
int vb_args_check(const char *command, const vb_arg_t *schema, json_t *args) VB_WUR;

/* Readers of checked arguments. The value of `name`, or `absent` (int), false (bool) or NULL
 * (string, borrowed from args) when it was not given or is null. */
int64_t vb_args_int(const json_t *args, const char *name, int64_t absent);
bool vb_args_bool(const json_t *args, const char *name);
const char *vb_args_str(const json_t *args, const char *name);

/* Copies at most the first 64 bytes of untrusted `text` into out (size > 0), with every byte that
 * is not printable ASCII as '?', so that it can go into a message. Returns out. */
const char *vb_args_printable(const char *text, char *out, size_t size);

#endif
