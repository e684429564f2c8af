/* wire_check — see wire_check.h. */
#include "wire_check.h"

#include <stdbool.h>
#include <string.h>

#include "repo/repo.h"

static bool s_name_char(char c)
{
    return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
           c == '-' || c == '_' || c == '.';
}

int vb_wire_check_facts(const Vbak__AgentFacts *facts)
{
    if (!facts || !facts->name || !*facts->name || strlen(facts->name) > 64)
        return vb_error_set(VB_EINVAL, "an agent must give a name of 1 to 64 characters");
    for (const char *p = facts->name; *p; p++)
        if (!s_name_char(*p))
            return vb_error_set(VB_EINVAL, "agent name '%s' has characters other than letters, "
                                           "digits, '-', '_' and '.'", facts->name);
    if (facts->slots < 1 || facts->slots > 1024)
        return vb_error_set(VB_EINVAL, "agent '%s' offers %u task slots (1 to 1024)", facts->name,
                            facts->slots);
    const char *v = facts->vddk_version ? facts->vddk_version : "";
    if (strlen(v) > 31 || strspn(v, "0123456789.") != strlen(v))
        return vb_error_set(VB_EINVAL, "agent '%s' gives a VixDiskLib version that is not up to 31 "
                                       "digits and dots", facts->name);
    const char *m = facts->machine ? facts->machine : "";
    for (const char *p = m; *p; p++)
        if (!s_name_char(*p) && *p != '@')
            return vb_error_set(VB_EINVAL, "agent '%s' names its machine with characters other "
                                           "than letters, digits, '-', '_', '.' and '@'",
                                facts->name);
    if (strlen(m) > 127 || facts->cpus > 65536)
        return vb_error_set(VB_EINVAL, "agent '%s' names a machine of more than 127 characters "
                                       "or more than 65536 CPUs", facts->name);
    return 0;
}

static bool s_chunk_fits(const Vbak__ChunkRef *c, const vb_wire_window_t *w, bool first,
                         uint64_t prev)
{
    if (!c || !w->chunk_size || c->offset % w->chunk_size)
        return false;
    if (c->offset < w->offset || c->offset - w->offset >= w->length)
        return false;
    if (!first && c->offset <= prev)
        return false;
    return c->digest.len == 0 || c->digest.len == VB_DIGEST_LEN;
}

int vb_wire_check_result_chunks(const Vbak__TaskResult *r, const vb_wire_window_t *w)
{
    if (r->n_chunks != w->chunks_expected)
        return vb_error_set(VB_EPROTO, "result has %zu chunks, the task covers %llu", r->n_chunks,
                            (unsigned long long)w->chunks_expected);
    uint64_t prev = 0;
    for (size_t i = 0; i < r->n_chunks; i++) {
        if (!s_chunk_fits(r->chunks[i], w, i == 0, prev))
            return vb_error_set(VB_EPROTO, "result chunk %zu (offset %llu) does not fit the task",
                                i, r->chunks[i] ? (unsigned long long)r->chunks[i]->offset : 0ull);
        prev = r->chunks[i]->offset;
    }
    return 0;
}

static int s_check_restore(const Vbak__TaskAssign *a)
{
    if (a->n_extents != 1 || !a->extents[0] || !a->chunk_size)
        return vb_error_set(VB_EPROTO, "a restore task needs exactly one extent and a chunk size");
    uint64_t base = a->extents[0]->offset, len = a->extents[0]->length;
    uint64_t chunks = len / a->chunk_size + (len % a->chunk_size != 0);
    if (base % a->chunk_size || chunks != a->n_digests || base > a->capacity ||
        len > a->capacity - base)
        return vb_error_set(VB_EPROTO, "restore task %llu: extent and digests do not match",
                            (unsigned long long)a->task_id);
    for (size_t i = 0; i < a->n_digests; i++)
        if (a->digests[i].len != 0 && a->digests[i].len != VB_DIGEST_LEN)
            return vb_error_set(VB_EPROTO, "restore task: a digest of %zu bytes",
                                a->digests[i].len);
    return 0;
}

int vb_wire_check_assign(const Vbak__TaskAssign *a)
{
    if (a->n_routes == 0)
        return vb_error_set(VB_EPROTO, "the task names no way to the disk");
    for (size_t i = 0; i < a->n_routes; i++)
        if (!a->routes[i] || !a->routes[i]->uri || !*a->routes[i]->uri)
            return vb_error_set(VB_EPROTO, "route %zu of the task has no URI", i);
    switch (a->kind) {
    case VBAK__TASK_KIND__TASK_KIND_MAP:
    case VBAK__TASK_KIND__TASK_KIND_BACKUP: return 0;
    case VBAK__TASK_KIND__TASK_KIND_RESTORE: return s_check_restore(a);
    default: return vb_error_set(VB_EPROTO, "unknown task kind %d", (int)a->kind);
    }
}
