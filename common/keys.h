/* keys — CURVE key pairs on disk (czmq zcert format: `<path>` public, `<path>_secret` secret).
 *
 * Secret files are created with mode 0600 in a directory that is not world-readable. */
#ifndef VB_KEYS_H
#define VB_KEYS_H

#include <czmq.h>
#include <stdbool.h>

#include "error.h"

#define VB_KEY_Z85_LEN 40

/* Loads the key pair at `path` (needs `<path>_secret`); VB_ENOTFOUND when absent. */
int vb_keys_load(const char *path, zcert_t **out) VB_WUR;

/* Loads the pair at `path`, or makes a new one and saves it (secret 0600) when absent;
 * *created says which happened. */
int vb_keys_load_or_create(const char *path, zcert_t **out, bool *created) VB_WUR;

/* Makes a new pair and saves it at `path` (secret 0600). Fails with VB_EEXISTS if present. */
int vb_keys_create(const char *path, zcert_t **out) VB_WUR;

/* True when `text` is a 40-character Z85 CURVE public key. */
bool vb_keys_z85_valid(const char *text);

/* Reads a one-line secret (an enrollment token) from a file, trimming white space; caller
 * frees. Refuses a file readable by group or others, and a token shorter than 16 bytes. */
int vb_keys_read_token(const char *path, char **out) VB_WUR;

/* Writes a new random enrollment token (48 hex characters and a newline) to `path`, mode 0600,
 * through a temporary file renamed over it. VB_EEXISTS when the file exists and !replace. */
int vb_keys_write_token(const char *path, bool replace) VB_WUR;

/* Constant-time comparison of two NUL-terminated secrets. */
bool vb_keys_secret_equal(const char *a, const char *b);

#endif
