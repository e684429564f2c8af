#include "repo/gc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "repo/index.h"

/* Open-addressing set of digests; the zero digest marks an empty slot (never inserted). */
typedef struct {
    vb_digest_t *slots;
    size_t cap; /* power of two */
    size_t count;
} s_set_t;

static size_t s_hash(const vb_digest_t *d)
{
    size_t h;
    memcpy(&h, d->b, sizeof h); /* digests are uniformly distributed already */
    return h;
}

static int s_set_grow(s_set_t *set)
{
    size_t ncap = set->cap ? set->cap * 2 : 1024;
    vb_digest_t *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return vb_error_set(VB_ENOMEM, "gc: out of memory for the mark set");
    for (size_t i = 0; i < set->cap; i++) {
        if (vb_digest_is_zero(&set->slots[i]))
            continue;
        size_t j = s_hash(&set->slots[i]) & (ncap - 1);
        while (!vb_digest_is_zero(&ns[j]))
            j = (j + 1) & (ncap - 1);
        ns[j] = set->slots[i];
    }
    free(set->slots);
    set->slots = ns;
    set->cap = ncap;
    return 0;
}

static int s_set_add(s_set_t *set, const vb_digest_t *d)
{
    if ((set->count + 1) * 2 > set->cap) {
        int rc = s_set_grow(set);
        if (rc)
            return rc;
    }
    size_t j = s_hash(d) & (set->cap - 1);
    while (!vb_digest_is_zero(&set->slots[j])) {
        if (memcmp(set->slots[j].b, d->b, VB_DIGEST_LEN) == 0)
            return 0;
        j = (j + 1) & (set->cap - 1);
    }
    set->slots[j] = *d;
    set->count++;
    return 0;
}

static bool s_set_has(const s_set_t *set, const vb_digest_t *d)
{
    if (!set->cap)
        return false;
    size_t j = s_hash(d) & (set->cap - 1);
    while (!vb_digest_is_zero(&set->slots[j])) {
        if (memcmp(set->slots[j].b, d->b, VB_DIGEST_LEN) == 0)
            return true;
        j = (j + 1) & (set->cap - 1);
    }
    return false;
}

static bool s_in(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] && strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* Whether GC marks from index *name: not when it is dropped (dry run of prune), nor when no
 * restore point owns it and it was written before the oldest running job started (left by a
 * backup that failed before its commit): then its name moves into owners->orphans. */
static int s_skip_index(vb_repo_t *repo, vb_gc_owners_t *owners, char **name, time_t cutoff,
                        bool *skip)
{
    char path[4096];
    struct stat st;
    *skip = false;
    if (!owners)
        return 0;
    if (s_in(owners->dropped, owners->dropped_count, *name)) {
        *skip = true; /* as good as gone: keeps nothing alive */
        return 0;
    }
    if (s_in(owners->owned, owners->owned_count, *name))
        return 0;
    snprintf(path, sizeof path, "%s/indexes/%s.idx", vb_repo_path(repo), *name);
    if (stat(path, &st) != 0 || st.st_mtim.tv_sec >= cutoff)
        return 0; /* gone, or maybe a running job's: mark from it if it is there */
    char **grown = realloc(owners->orphans, (owners->orphan_count + 1) * sizeof *grown);
    if (!grown)
        return vb_error_set(VB_ENOMEM, "gc: out of memory");
    owners->orphans = grown;
    owners->orphans[owners->orphan_count++] = *name;
    *name = NULL;
    *skip = true;
    VB_LOG_WARN("gc", "orphan_index repo=%s index=%s (no restore point owns it: ignored)",
                vb_repo_path(repo), owners->orphans[owners->orphan_count - 1]);
    return 0;
}

static int s_mark(vb_repo_t *repo, vb_gc_owners_t *owners, time_t cutoff, s_set_t *set)
{
    char **names = NULL;
    size_t n = 0;
    int rc = vb_index_list(repo, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool skip = false;
        if ((rc = s_skip_index(repo, owners, &names[i], cutoff, &skip)) != 0 || skip)
            continue;
        vb_index_t *idx = NULL;
        if ((rc = vb_index_read(repo, names[i], &idx)) != 0) {
            rc = vb_error_prefix(rc, "gc: cannot mark from index %s; nothing swept", names[i]);
            break;
        }
        for (uint64_t c = 0; rc == 0 && c < idx->count; c++)
            if (!vb_digest_is_zero(&idx->digests[c]))
                rc = s_set_add(set, &idx->digests[c]);
        vb_index_destroy(&idx);
    }
    vb_index_list_free(names, n);
    return rc;
}

/* Entries of one shard directory, read before anything in it is renamed or removed. */
static int s_list_dir(int dfd, char ***out, size_t *count)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return vb_error_set(VB_EIO, "gc: cannot read a shard directory: %s", strerror(errno));
    }
    rewinddir(d);
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = vb_error_set(VB_ENOMEM, "gc: out of memory");
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = vb_error_set(VB_ENOMEM, "gc: out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    *out = names;
    *count = n;
    return rc;
}

/* Moves an unreferenced old chunk aside, re-checks its mtime (a writer may have just touched
 * it: put refreshes the mtime of a chunk it finds existing), then removes or restores it. */
static int s_sweep_one(int sfd, const char *name, time_t cutoff, bool *swept, uint64_t *bytes)
{
    char aside[128];
    struct stat st;
    *swept = false;
    snprintf(aside, sizeof aside, ".gc.%s", name);
    if (renameat(sfd, name, sfd, aside) != 0)
        return errno == ENOENT ? 0 : vb_error_set(VB_EIO, "gc: %s: %s", name, strerror(errno));
    if (fstatat(sfd, aside, &st, 0) == 0 && st.st_mtim.tv_sec < cutoff) {
        if (unlinkat(sfd, aside, 0) != 0)
            return vb_error_set(VB_EIO, "gc: removing %s: %s", name, strerror(errno));
        *swept = true;
        *bytes = (uint64_t)st.st_size;
        return 0;
    }
    /* Touched meanwhile: put it back (a writer may have re-created it with equal content). */
    if (renameat(sfd, aside, sfd, name) != 0)
        return vb_error_set(VB_EIO, "gc: restoring %s: %s", name, strerror(errno));
    return 0;
}

static int s_sweep_shard(int sfd, const s_set_t *set, time_t cutoff, bool dry_run,
                         vb_gc_stats_t *st)
{
    char **names = NULL;
    size_t n = 0;
    int rc = s_list_dir(sfd, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = names[i];
        struct stat s;
        if (fstatat(sfd, name, &s, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* gone meanwhile */
        if (strncmp(name, ".gc.", 4) == 0) {
            /* Left by an interrupted collection: restore unless the chunk exists again. */
            if (faccessat(sfd, name + 4, F_OK, 0) == 0)
                (void)unlinkat(sfd, name, 0);
            else
                (void)renameat(sfd, name, sfd, name + 4);
            continue;
        }
        if (strncmp(name, ".tmp.", 5) == 0) {
            if (s.st_mtim.tv_sec < cutoff) {
                if (!dry_run)
                    (void)unlinkat(sfd, name, 0);
                st->temp_removed++;
            }
            continue;
        }
        vb_digest_t d;
        if (strlen(name) != VB_DIGEST_HEX_LEN || vb_digest_parse(name, &d) != 0) {
            vb_error_clear();
            continue; /* not ours: leave it alone */
        }
        if (s_set_has(set, &d))
            continue;
        if (s.st_mtim.tv_sec >= cutoff) {
            st->kept_recent++;
            continue;
        }
        if (dry_run) {
            st->swept++;
            st->swept_bytes += (uint64_t)s.st_size;
            continue;
        }
        bool swept = false;
        uint64_t bytes = 0;
        rc = s_sweep_one(sfd, name, cutoff, &swept, &bytes);
        if (swept) {
            st->swept++;
            st->swept_bytes += bytes;
        } else if (rc == 0) {
            st->kept_recent++;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Removes quarantined chunks moved there more than VB_GC_QUARANTINE_DAYS ago. */
static int s_sweep_quarantine(vb_repo_t *repo, bool dry_run, vb_gc_stats_t *st)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", vb_repo_path(repo), VB_REPO_QUARANTINE_DIR);
    int qfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (qfd < 0)
        return errno == ENOENT ? 0 : vb_error_set(VB_EIO, "gc: %s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    time_t before = time(NULL) - (time_t)VB_GC_QUARANTINE_DAYS * 86400;
    int rc = s_list_dir(qfd, &names, &n);
    for (size_t i = 0; i < n; i++) {
        struct stat s;
        if (rc == 0 && fstatat(qfd, names[i], &s, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(s.st_mode) &&
            s.st_mtim.tv_sec < before && (dry_run || unlinkat(qfd, names[i], 0) == 0))
            st->quarantine_removed++;
        free(names[i]);
    }
    free(names);
    close(qfd);
    return rc;
}

int vb_repo_gc(vb_repo_t *self, time_t cutoff, bool dry_run, vb_gc_stats_t *out)
{
    return vb_repo_gc_owned(self, NULL, cutoff, dry_run, out);
}

int vb_repo_gc_owned(vb_repo_t *self, vb_gc_owners_t *owners, time_t cutoff, bool dry_run,
                     vb_gc_stats_t *out)
{
    s_set_t set = {0};
    vb_gc_stats_t st = {0};
    char dir[4096];
    int rc = s_mark(self, owners, cutoff, &set);
    st.orphan_indexes = owners ? owners->orphan_count : 0;
    if (rc)
        goto out;
    st.marked = set.count;
    snprintf(dir, sizeof dir, "%s/chunks", vb_repo_path(self));
    int cfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cfd < 0) {
        rc = vb_error_set(VB_EIO, "gc: %s: %s", dir, strerror(errno));
        goto out;
    }
    for (int i = 0; rc == 0 && i < 256; i++) {
        char shard[3];
        snprintf(shard, sizeof shard, "%02x", i);
        int sfd = openat(cfd, shard, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sfd < 0) {
            rc = vb_error_set(VB_EIO, "gc: %s/%s: %s", dir, shard, strerror(errno));
            break;
        }
        rc = s_sweep_shard(sfd, &set, cutoff, dry_run, &st);
        close(sfd);
    }
    close(cfd);
    if (rc == 0)
        rc = s_sweep_quarantine(self, dry_run, &st);
    VB_LOG_INFO("gc", "done repo=%s marked=%llu swept=%llu bytes=%llu kept_recent=%llu dry_run=%d",
                vb_repo_path(self), (unsigned long long)st.marked, (unsigned long long)st.swept,
                (unsigned long long)st.swept_bytes, (unsigned long long)st.kept_recent, dry_run);
out:
    free(set.slots);
    if (out)
        *out = st;
    return rc;
}
