/* chunkcache — a bounded cache of decoded chunks, with read-ahead, for readers that serve a
 * restore point's disks (the nbdkit plugin behind `vbak serve`).
 *
 * Entries are keyed by chunk digest (equal content read through two disks is cached once) and
 * hold the raw bytes of one chunk each. The cache holds at most capacity / chunk_size entries
 * (at least 2); the least recently used entry that no reader is copying is replaced. A chunk is
 * loaded once however many threads ask for it at the same time: the first one loads, the others
 * wait for it. A failed load caches nothing (every reader gets the error of its own load).
 *
 * Read-ahead: vb_chunkcache_prefetch() queues a chunk for the cache's own loader threads, which
 * load it into the cache so that the reader that asks for it next finds it there. The queue is
 * bounded; a prefetch that finds the chunk cached, loading or queued, or the queue full, is
 * dropped (read-ahead is a hint, never a wait).
 *
 * Threads: every function may be called from any number of threads at once. `load` is called
 * from readers' threads and from the loader threads, concurrently. */
#ifndef VB_CHUNKCACHE_H
#define VB_CHUNKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "repo/repo.h"

/* Loads chunk `digest` into buf (capacity cap = the cache's chunk size); sets *len_out to its
 * length. 0 or a negative VB_E* code with the message set on the calling thread. */
typedef int (*vb_chunk_load_fn)(void *arg, const vb_digest_t *digest, void *buf, size_t cap,
                                size_t *len_out);

typedef struct vb_chunkcache vb_chunkcache_t;

typedef struct {
    uint64_t hits;       /* reads served from the cache */
    uint64_t misses;     /* reads that loaded the chunk themselves */
    uint64_t waits;      /* reads that waited for another thread's load */
    uint64_t prefetched; /* chunks the loader threads loaded */
    uint64_t evictions;  /* entries replaced */
} vb_chunkcache_stats_t;

/* A cache of about capacity bytes of chunks of chunk_size bytes, with `loaders` read-ahead
 * threads (0: no read-ahead) and a read-ahead queue of queue_depth chunks (0: 4 x loaders).
 * NULL on failure (message set). Start it in the process that will use it (threads do not
 * survive a fork). */
vb_chunkcache_t *vb_chunkcache_new(size_t capacity, size_t chunk_size, unsigned loaders,
                                   unsigned queue_depth, vb_chunk_load_fn load, void *load_arg);
/* Stops the loader threads (queued prefetches are dropped) and frees everything. */
void vb_chunkcache_destroy(vb_chunkcache_t **self_p);

/* Copies len bytes at offset `off` within chunk `digest` into out, loading the chunk when it is
 * not cached. Returns 0; VB_EINVAL when off + len passes the chunk's length (message names it);
 * or the error of the load. */
int vb_chunkcache_read(vb_chunkcache_t *self, const vb_digest_t *digest, size_t off, size_t len,
                       void *out) VB_WUR;

/* Queues chunk `digest` for the loader threads (see above). Never blocks on a load. */
void vb_chunkcache_prefetch(vb_chunkcache_t *self, const vb_digest_t *digest);

/* Entries the cache can hold. */
size_t vb_chunkcache_slots(const vb_chunkcache_t *self);

void vb_chunkcache_stats(vb_chunkcache_t *self, vb_chunkcache_stats_t *out);

#endif
