/* undelete — brings back a repository's objects that delete markers hide on an S3 bucket with
 * Object Lock.
 *
 * Anyone holding the bucket's keys may send a DELETE without versionId (a script, a "vbak prune
 * --keep-last 0", an attacker): on a versioned bucket it only adds a delete marker, which hides
 * the object while its locked version stays. vbak itself never leaves a marker over a version
 * whose lock has ended (it deletes such objects by version id), and hides a still-locked one only
 * where it had to drop it early (index objects a collection merged, the manifest and disk indexes
 * of a pruned restore point, older catalog copies). A version still locked is therefore taken as
 * not deleted: every hidden object whose newest version is still under Object Lock is brought back
 * (the markers above it are deleted by version id, which Object Lock allows), except chunk index
 * objects: those a collection merged may name packs it has deleted since, so instead of bringing
 * them back the chunk index is rebuilt from the packs' trailers (vb_idxobj_repair) whenever a pack
 * is then missing from it. A pack no index object names (visible or hidden) written within the
 * last VB_UNDELETE_GRACE_S is a running backup's, whose commit will index it: it is counted
 * (young) and no reason to rebuild. A restore point pruned within its lock period comes back
 * too (prune it again). Hidden objects whose lock has ended stay hidden. */
#ifndef VB_REPO_UNDELETE_H
#define VB_REPO_UNDELETE_H

#include <stdbool.h>
#include <stdint.h>

#include "repo/idxobj.h"
#include "repo/store.h"

/* Packs this recent that no index object names belong to a backup still writing. A backup's
 * task commits its packs when it ends: a day is far longer than one runs. */
#define VB_UNDELETE_GRACE_S (24 * 3600)

typedef struct vb_undelete_stats_s {
    uint64_t
        brought_back; /* hidden objects with a locked version brought back (dry run: would be) */
    uint64_t packs, indexes, manifests, other; /* of them: packs/, indexes/, manifests/, the rest */
    uint64_t bytes;                            /* their bytes */
    uint64_t index_objects;    /* hidden chunk index objects with a locked version, left hidden */
    uint64_t expired;          /* hidden objects whose lock has ended, left hidden */
    uint64_t unindexed;        /* packs the chunk index did not name (after bringing them back) */
    uint64_t young;            /* packs no index object names written within the grace period
                                * (a backup still writing): no reason to rebuild, left alone */
    bool index_rebuilt;        /* the chunk index was rebuilt from the packs (dry run: would be) */
    vb_idxobj_repair_t repair; /* what the rebuild did */
} vb_undelete_stats_t;

/* Brings back what delete markers hide, as above. dry_run: changes nothing, counts what would be
 * brought back (unindexed then counts the visible packs alone). */
int vb_undelete_run(vb_store_t *store, bool dry_run, vb_undelete_stats_t *out) VB_WUR;

#endif
