/* store — where a repository's bytes live: named objects behind one table of operations.
 *
 * A store holds immutable-by-convention objects under names such as "config",
 * "chunks/ab/abcd…", "indexes/rp1-2000.idx" or "manifests/…". It knows nothing of what the bytes
 * mean: chunk encoding (hashing, compression, encryption) and the naming scheme are the
 * repository's (repo.h); the store only keeps bytes under names. No code outside a store
 * implementation turns a name into a file path.
 *
 * Names: 1..VB_STORE_NAME_MAX characters; '/'-separated components of [A-Za-z0-9._-], none empty
 * and none starting with '.' (names starting with '.' are the store's own: temp files of writers
 * in flight, objects a conditional remove set aside).
 *
 * A store is opened from a location string. "file:///srv/repo" or a plain path "/srv/repo" is a
 * POSIX directory (store_posix.c); "s3://BUCKET/PREFIX?endpoint=https://HOST:PORT&region=R" is
 * a bucket of an S3 server (store_s3.c, which documents how each operation maps to S3). Another
 * kind of store is one more row in the scheme table of store.c and one more file implementing
 * vb_store_ops_t.
 *
 * Durability: a put is atomic (readers see the whole object or none) but, unless
 * VB_STORE_DURABLE is given, durable only after the next vb_store_barrier(). Write order across
 * objects (packs before the index naming them) is the caller's: barrier between the steps.
 *
 * Threads: a vb_store_t may be used by any number of threads at once. */
#ifndef VB_STORE_H
#define VB_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "error.h"

#define VB_STORE_NAME_MAX 512

/* put flags */
#define VB_STORE_REPLACE 1u /* overwrite an existing object (default: put-if-absent) */
#define VB_STORE_DURABLE 2u /* durable when put returns (default: at the next barrier) */

typedef struct vb_store vb_store_t;

typedef struct {
    uint64_t size;
    time_t mtime;        /* last write or freshen */
    time_t retain_until; /* Object Lock: not removable before this time; 0 none (stat only) */
} vb_store_stat_t;

/* Object Lock (S3): every object written gets a retention of `seconds` from the write. */
typedef struct {
    int64_t seconds; /* 0: no lock */
    bool governance; /* GOVERNANCE (an admin may bypass it) instead of COMPLIANCE */
} vb_store_lock_t;

/* What a location alone does not say (and must not: it travels on the wire). Zeroed: none. */
typedef struct {
    const char *credentials_file; /* S3: the access key file (repository_credentials_file) */
    bool create_bucket;           /* S3: create the bucket when it is missing */
    /* S3: when lock.seconds > 0, open makes the bucket with Object Lock (create_bucket) or
     * checks the existing one has it (VB_EPOLICY otherwise), and writes get the retention */
    vb_store_lock_t lock;
    /* Pack uploads a repository keeps in flight while its workers fill the next pack (packed.h;
     * 1..VB_STORE_PUTS_IN_FLIGHT_MAX); 0: the store's default (vb_store_ops_t.puts_in_flight) */
    unsigned puts_in_flight;
} vb_store_opts_t;

#define VB_STORE_PUTS_IN_FLIGHT_MAX 32

/* Called once per object by list. Return 0 to go on, > 0 to stop listing (list returns 0), < 0
 * to stop with that error. The callback may remove or freshen the object it is given. */
typedef int (*vb_store_list_fn)(void *arg, const char *name, const vb_store_stat_t *st);

/* One kind of store. Every operation is required; names reaching them are already checked.
 * Each returns 0 or a negative VB_E* code with the message set, naming the store's location. */
typedef struct vb_store_ops {
    const char *scheme; /* location prefix "<scheme>://" */
    /* Large puts (packs) worth keeping in flight at once by default: 1 where a put is a local
     * write, more where each is a network round trip that one stream cannot fill. */
    unsigned puts_in_flight;
    /* Opens the store at `where` (the location without "<scheme>://"); create: make it when
     * missing; opts never NULL. *state is handed to every other operation. */
    int (*open)(const char *where, bool create, const vb_store_opts_t *opts, void **state);
    void (*close)(void *state);
    /* Writes the concatenation of iov[0..iovcnt) as `name`. VB_EEXISTS when the object exists
     * and VB_STORE_REPLACE is not given (nothing changed); VB_ENOSPC when the store is full
     * (nothing left behind). */
    int (*put)(void *state, const char *name, const struct iovec *iov, int iovcnt,
               unsigned flags);
    /* Reads the whole object into buf (capacity cap); *len the object's size. VB_ENOTFOUND;
     * VB_ECORRUPT when it holds more than cap bytes. A 4096-aligned buf and cap lets a store
     * bypass the page cache. */
    int (*get)(void *state, const char *name, void *buf, size_t cap, size_t *len);
    /* Reads up to len bytes at off; *got < len only where the object ends. VB_ENOTFOUND. A
     * 4096-aligned buf, off and len lets a store bypass the page cache. */
    int (*get_range)(void *state, const char *name, uint64_t off, void *buf, size_t len,
                     size_t *got);
    /* Size and mtime (exists when 0). VB_ENOTFOUND. */
    int (*stat)(void *state, const char *name, vb_store_stat_t *st);
    /* Sets the mtime to now (garbage collection spares recently used objects). VB_ENOTFOUND. */
    int (*freshen)(void *state, const char *name);
    /* Calls fn for each object whose name starts with prefix, in no particular order, with
     * memory bounded whatever the number of objects. */
    int (*list)(void *state, const char *prefix, vb_store_list_fn fn, void *arg);
    /* Removes an object. unless_since != 0: only when its mtime is older than unless_since,
     * checked atomically against a concurrent freshen; VB_EBUSY (kept) otherwise. VB_ENOTFOUND.
     * An object under Object Lock: VB_EPOLICY naming its retain-until, nothing changed (stat
     * says when). On a versioned bucket the version is deleted, not hidden. */
    int (*remove)(void *state, const char *name, time_t unless_since);
    /* Hides an object from get, stat and list even under Object Lock (S3: a delete marker; the
     * locked bytes stay on the server until the retention ends). A store without versions
     * removes it. VB_ENOTFOUND. */
    int (*hide)(void *state, const char *name);
    /* Sets the retention of the objects written from now on (lock.seconds 0: none).
     * VB_EUNSUPPORTED for a store without Object Lock when lock.seconds > 0. */
    int (*set_lock)(void *state, const vb_store_lock_t *lock);
    /* Object Lock: the retention of the object's current version is set to end the lock's
     * seconds from now (one request), so that an object still in use stays locked.
     * VB_EUNSUPPORTED for a store without a lock. VB_ENOTFOUND. */
    int (*extend_lock)(void *state, const char *name);
    /* Calls fn for each object under prefix that is hidden (S3: its current version is a delete
     * marker) while an older version still exists, with that version's size, mtime and
     * retain_until (0: not locked). A store without versions lists nothing. */
    int (*list_hidden)(void *state, const char *prefix, vb_store_list_fn fn, void *arg);
    /* Brings a hidden object back: removes the delete markers above its newest version (S3:
     * DELETE ?versionId=<marker>, which Object Lock allows). VB_ENOTFOUND when it is not hidden
     * (or the store has no versions). */
    int (*unhide)(void *state, const char *name);
    /* Renames an object, replacing `to`. VB_ENOTFOUND. */
    int (*move)(void *state, const char *from, const char *to);
    /* Makes every put, move and remove made so far through this handle durable (another
     * process makes its own writes durable with its own barrier); with none pending it may
     * return at once (a directory: no sync after only VB_STORE_DURABLE puts). everything:
     * whatever anyone wrote into the store is made durable too (vb_store_barrier_all). */
    int (*barrier)(void *state, bool everything);
    /* Removes the leftovers of writers that crashed (temp objects older than older_than) and
     * puts back objects an interrupted conditional remove set aside. *removed counts the
     * leftovers removed (or that would be, with dry_run). */
    int (*cleanup)(void *state, time_t older_than, bool dry_run, uint64_t *removed);
    /* The local file path of an object, for tools and tests; VB_EUNSUPPORTED when the store
     * has none. */
    int (*local_path)(void *state, const char *name, char *out, size_t outsz);
} vb_store_ops_t;

/* Opens the store a location names. create: make an empty store when missing. NULL with the
 * message set: unknown scheme (VB_EUNSUPPORTED), missing (VB_ENOTFOUND), VB_EIO. */
vb_store_t *vb_store_open(const char *location, bool create);
/* As vb_store_open, with the options a location does not carry (opts may be NULL). */
vb_store_t *vb_store_open_opts(const char *location, bool create, const vb_store_opts_t *opts);
/* Is `location` an S3 one ("s3://...")? */
bool vb_store_is_s3(const char *location);
void vb_store_destroy(vb_store_t **self_p);

const char *vb_store_location(const vb_store_t *self); /* borrowed */
/* How many pack uploads a writer keeps in flight: vb_store_opts_t.puts_in_flight, or the
 * store's default. */
unsigned vb_store_puts_in_flight(const vb_store_t *self);

/* VB_EINVAL unless `name` is a valid object name. */
int vb_store_check_name(const char *name) VB_WUR;

/* The operations above, with the name checked first. */
int vb_store_put(vb_store_t *self, const char *name, const void *buf, size_t len,
                 unsigned flags) VB_WUR;
int vb_store_putv(vb_store_t *self, const char *name, const struct iovec *iov, int iovcnt,
                  unsigned flags) VB_WUR;
int vb_store_get(vb_store_t *self, const char *name, void *buf, size_t cap, size_t *len) VB_WUR;
int vb_store_get_range(vb_store_t *self, const char *name, uint64_t off, void *buf, size_t len,
                       size_t *got) VB_WUR;
int vb_store_stat(vb_store_t *self, const char *name, vb_store_stat_t *st) VB_WUR;
/* Leaves the calling thread's error message and code as they were. */
bool vb_store_exists(vb_store_t *self, const char *name);
int vb_store_freshen(vb_store_t *self, const char *name) VB_WUR;
/* prefix "" lists every object. */
int vb_store_list(vb_store_t *self, const char *prefix, vb_store_list_fn fn, void *arg) VB_WUR;
int vb_store_remove(vb_store_t *self, const char *name, time_t unless_since) VB_WUR;
int vb_store_hide(vb_store_t *self, const char *name) VB_WUR;
/* Removes an object, or hides it when Object Lock keeps it (metadata such as index objects and
 * manifests, whose locked bytes may stay on the server while nothing lists them). */
int vb_store_remove_or_hide(vb_store_t *self, const char *name) VB_WUR;
/* Hidden objects (list_hidden above): prefix "" lists every one. */
int vb_store_list_hidden(vb_store_t *self, const char *prefix, vb_store_list_fn fn,
                         void *arg) VB_WUR;
int vb_store_unhide(vb_store_t *self, const char *name) VB_WUR;
int vb_store_set_lock(vb_store_t *self, const vb_store_lock_t *lock) VB_WUR;
int vb_store_extend_lock(vb_store_t *self, const char *name) VB_WUR;
/* The retention writes get (opts.lock at open or set_lock; seconds 0: none). Borrowed. */
const vb_store_lock_t *vb_store_lock(const vb_store_t *self);
int vb_store_move(vb_store_t *self, const char *from, const char *to) VB_WUR;
int vb_store_barrier(vb_store_t *self) VB_WUR;
/* The barrier over every object of the store, whoever wrote it: for a caller that relies on an
 * object another handle or process put without VB_STORE_DURABLE (a format 1 chunk found in
 * place, which its writer syncs only at its own next barrier). */
int vb_store_barrier_all(vb_store_t *self) VB_WUR;
/* A barrier of this handle failed: every later one fails too, since what the failed sync covered
 * may be lost and a later sync may not say so. Whoever keeps a handle for long opens the
 * repository again (the agent's repocache, the coordinator's engine). */
bool vb_store_broken(const vb_store_t *self);
int vb_store_cleanup(vb_store_t *self, time_t older_than, bool dry_run,
                     uint64_t *removed) VB_WUR;
int vb_store_local_path(vb_store_t *self, const char *name, char *out, size_t outsz) VB_WUR;

/* Uploads the calling thread makes from now on give up once *flag is true (NULL: never): a
 * put not begun fails at once, one under way stops at its next chance (S3: the transfer is
 * aborted and not retried; a multipart upload is aborted), with VB_EBUSY and "abandoned" in the
 * message; the caller must treat the object as not written (an S3 upload aborted after its
 * last byte may still complete on the server: an unlisted pack, which GC removes). Reads,
 * removes and the rest are not affected.
 * For the pack uploads of a task that ends without a commit (packup.h). The flag is borrowed
 * and must outlive the thread's store calls. */
void vb_store_abandon_when(const atomic_bool *flag);
/* Has the calling thread's flag (vb_store_abandon_when) been raised? For store implementations;
 * sets the message (naming `name`) when it has. */
bool vb_store_abandoned(const char *name);

/* Reads a whole object of at most `max` bytes into a new buffer (caller frees *out).
 * VB_ENOTFOUND; VB_ECORRUPT when larger than max. */
int vb_store_get_alloc(vb_store_t *self, const char *name, size_t max, void **out,
                       size_t *len) VB_WUR;

/* The POSIX directory store (store_posix.c). */
extern const vb_store_ops_t vb_store_posix_ops;
/* The S3 store (store_s3.c). */
extern const vb_store_ops_t vb_store_s3_ops;

#endif
