/* config — VDDK-style configuration files (`key = "value"`), driven by one table per daemon.
 *
 * A table of vb_conf_key_t names every key, its type, default, range and where it is stored in the
 * caller's settings struct (by offset). Loading a file sets keys in order; an unknown key, a value
 * that does not parse, an out-of-range number or an unquoted value with spaces is an error whose
 * message names file:line. `--key=value` command-line overrides use the same setter.
 *
 * Storage: VB_CONF_STR keys are `char *` (owned by the struct, freed by vb_config_free);
 * VB_CONF_INT keys are `int64_t`; VB_CONF_BOOL keys are `bool`. */
#ifndef VB_CONFIG_H
#define VB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

typedef enum { VB_CONF_STR, VB_CONF_INT, VB_CONF_BOOL } vb_conf_type_t;

typedef struct {
    const char *name;
    vb_conf_type_t type;
    size_t offset;       /* offsetof(settings struct, field) */
    const char *def;     /* default as text; NULL: no default (NULL string / 0) */
    int64_t min, max;    /* VB_CONF_INT range, inclusive */
    bool required;       /* must be set by the file or an override */
    const char *help;    /* one line for --help and the README */
} vb_conf_key_t;

/* Table ends with an entry whose name is NULL. */
#define VB_CONF_END {NULL, VB_CONF_STR, 0, NULL, 0, 0, false, NULL}

/* Sets every key to its default. Returns 0 or VB_EINVAL/VB_ENOMEM (bad default: a table bug). */
int vb_config_defaults(const vb_conf_key_t *table, void *settings) VB_WUR;

/* Parses `path` and sets the keys it names. Errors name path:line. */
int vb_config_load_file(const vb_conf_key_t *table, void *settings, const char *path) VB_WUR;
/* As vb_config_load_file, from an open stream (not closed); `path` names it in messages. */
int vb_config_load_stream(const vb_conf_key_t *table, void *settings, FILE *f,
                          const char *path) VB_WUR;

/* Sets one key from text; `where` (e.g. "file:12" or "--slots") prefixes any error message. */
int vb_config_set(const vb_conf_key_t *table, void *settings, const char *key, const char *value,
                  const char *where) VB_WUR;

/* Applies an override written `--key=value` (or `key=value`). */
int vb_config_override(const vb_conf_key_t *table, void *settings, const char *arg) VB_WUR;

/* Is `arg` an override `--key=value` of a key that the table has (dashes or underscores)? */
bool vb_config_is_override(const vb_conf_key_t *table, const char *arg);

/* Returns VB_EINVAL naming the first required key that is still unset. */
int vb_config_check_required(const vb_conf_key_t *table, const void *settings) VB_WUR;

/* Frees the strings the table owns in `settings`. */
void vb_config_free(const vb_conf_key_t *table, void *settings);

/* Prints `  key  (default)  help` lines for --help. */
void vb_config_print_help(const vb_conf_key_t *table, FILE *out);

/* Writes `key = "value"` with the quoting and escaping the parser reads back. */
void vb_config_write(FILE *out, const char *key, const char *value);

/* Parses an unsigned decimal integer with range check; `what` names it in the error. */
int vb_parse_i64(const char *text, int64_t min, int64_t max, const char *what, int64_t *out) VB_WUR;

/* Parses a size with an optional K/M/G/T suffix (binary units, "KiB" also accepted). */
int vb_parse_size(const char *text, const char *what, uint64_t *out) VB_WUR;

#endif
