#include "repo_census.h"

#include <stdint.h>
#include <time.h>

#include "repo/store.h"

typedef struct {
    uint64_t objects, bytes;
    atomic_bool *stop;
    bool stopped;
} s_tally_t;

static int s_count(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)name;
    s_tally_t *t = arg;
    if (t->stop && atomic_load(t->stop)) {
        t->stopped = true;
        return 1;
    }
    t->objects++;
    t->bytes += st->size;
    return 0;
}

int vb_repo_census(const char *location, const char *credentials_file, atomic_bool *stop,
                   json_t **out)
{
    *out = NULL;
    vb_store_t *store =
        vb_store_open_opts(location, false, &(vb_store_opts_t){.credentials_file = credentials_file});
    if (!store)
        return vb_error_code() ? vb_error_code() : VB_EIO;
    s_tally_t t = {0, 0, stop, false};
    int rc = vb_store_list(store, "", s_count, &t);
    if (!rc && t.stopped)
        rc = vb_error_set(VB_EBUSY, "listing of %s given up: the coordinator stops", location);
    if (!rc) {
        *out = json_pack("{s:I, s:I, s:I}", "objects", (json_int_t)t.objects, "bytes",
                         (json_int_t)t.bytes, "at", (json_int_t)time(NULL));
        if (!*out)
            rc = vb_error_set(VB_ENOMEM, "out of memory");
    }
    vb_store_destroy(&store);
    return rc;
}
