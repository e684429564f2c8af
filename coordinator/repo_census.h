/* repo_census — how many objects and bytes the repository holds, for `vbak status` and
 * /metrics (vbak_repository_objects, vbak_repository_bytes).
 *
 * One listing of the whole store (a directory walk, or ListObjectsV2 pages on S3): slow on a
 * large repository, so it runs on the census worker, never on the coordinator's loop, and at
 * most once per `repository_census_s`. */
#ifndef VB_REPO_CENSUS_H
#define VB_REPO_CENSUS_H

#include <jansson.h>
#include <stdatomic.h>

#include "error.h"

/* Lists the store at `location` (a directory or s3:// URL; `credentials_file` for S3, may be
 * NULL) and sets *out to {"objects": N, "bytes": B, "at": UNIX_S} (caller owns). Opens nothing
 * for writing and reads no object. `stop` (may be NULL), once set by another thread, ends the
 * listing at the next object: VB_EBUSY, *out NULL. A negative code with the message set when
 * the store cannot be opened or listed. */
int vb_repo_census(const char *location, const char *credentials_file, atomic_bool *stop,
                   json_t **out) VB_WUR;

#endif
