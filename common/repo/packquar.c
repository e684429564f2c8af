#include "repo/packquar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PREFIX VB_REPO_QUARANTINE_DIR "/"
#define S_PACK_PREFIX_LEN (sizeof "packs/" - 1 + 3) /* packs/ab/ */

void vb_packquar_name(const vb_digest_t *digest, const vb_pack_id_t *pack,
                      char out[VB_PACKQUAR_NAME_LEN])
{
    char hex[VB_DIGEST_HEX_LEN + 1], pname[VB_PACK_NAME_LEN];
    vb_digest_hex(digest, hex);
    vb_pack_name(pack, pname);
    snprintf(out, VB_PACKQUAR_NAME_LEN, S_PREFIX "%s-%s", hex, pname + S_PACK_PREFIX_LEN);
}

/* Parses a record name; false when `name` is not one (a format 1 quarantined chunk file). */
static bool s_parse(const char *name, vb_digest_t *digest, vb_pack_id_t *pack)
{
    const char *hex = name + sizeof S_PREFIX - 1, *id = hex + VB_DIGEST_HEX_LEN + 1;
    char dhex[VB_DIGEST_HEX_LEN + 1], pname[VB_PACK_NAME_LEN];
    if (strlen(name) != VB_PACKQUAR_NAME_LEN - 1 || strncmp(name, S_PREFIX, sizeof S_PREFIX - 1) ||
        hex[VB_DIGEST_HEX_LEN] != '-')
        return false;
    memcpy(dhex, hex, VB_DIGEST_HEX_LEN);
    dhex[VB_DIGEST_HEX_LEN] = '\0';
    snprintf(pname, sizeof pname, "packs/%.2s/%s", id, id);
    bool ok = vb_digest_parse(dhex, digest) == 0 && vb_pack_parse_name(pname, pack) == 0;
    vb_error_clear();
    return ok;
}

typedef struct {
    vb_packquar_fn fn;
    void *arg;
} s_list_t;

static int s_list_one(void *arg, const char *name, const vb_store_stat_t *st)
{
    s_list_t *l = arg;
    vb_digest_t d;
    vb_pack_id_t p;
    return s_parse(name, &d, &p) ? l->fn(l->arg, &d, &p, name, st) : 0;
}

int vb_packquar_list(vb_store_t *store, vb_packquar_fn fn, void *arg)
{
    s_list_t l = {fn, arg};
    return vb_store_list(store, S_PREFIX, s_list_one, &l);
}

int vb_packquar_put(vb_store_t *store, const vb_digest_t *digest, const vb_chunkidx_loc_t *loc)
{
    char name[VB_PACKQUAR_NAME_LEN], pack[VB_PACK_NAME_LEN];
    uint8_t *img = malloc(loc->length ? loc->length : 1);
    if (!img)
        return vb_error_set(VB_ENOMEM, "out of memory");
    size_t got = 0;
    vb_pack_name(&loc->pack, pack);
    if (vb_store_get_range(store, pack, loc->offset, img, loc->length, &got) != 0) {
        got = 0; /* the record without the image still sets the copy aside */
        vb_error_clear();
    }
    vb_packquar_name(digest, &loc->pack, name);
    int rc = vb_store_put(store, name, img, got, VB_STORE_DURABLE);
    free(img);
    if (rc == VB_EEXISTS) {
        vb_error_clear();
        return 0;
    }
    return rc;
}

static int s_exclude_one(void *arg, const vb_digest_t *digest, const vb_pack_id_t *pack,
                         const char *name, const vb_store_stat_t *st)
{
    (void)name;
    (void)st;
    return vb_chunkidx_exclude(arg, digest, pack);
}

int vb_packquar_exclude(vb_store_t *store, vb_chunkidx_t *ci)
{
    return vb_packquar_list(store, s_exclude_one, ci);
}

static int s_any(void *arg, const char *name, const vb_store_stat_t *st)
{
    (void)name;
    (void)st;
    *(bool *)arg = true;
    return 1;
}

bool vb_packquar_has(vb_store_t *store, const vb_digest_t *digest)
{
    char prefix[sizeof S_PREFIX + VB_DIGEST_HEX_LEN + 1], hex[VB_DIGEST_HEX_LEN + 1];
    bool any = false;
    vb_digest_hex(digest, hex);
    snprintf(prefix, sizeof prefix, S_PREFIX "%s-", hex);
    if (vb_store_list(store, prefix, s_any, &any) != 0)
        vb_error_clear();
    return any;
}

typedef struct {
    vb_store_t *store;
    time_t before;
    bool dry_run;
    uint64_t removed;
} s_expire_t;

static int s_expire_one(void *arg, const vb_digest_t *digest, const vb_pack_id_t *pack,
                        const char *name, const vb_store_stat_t *st)
{
    (void)digest;
    s_expire_t *e = arg;
    char pname[VB_PACK_NAME_LEN];
    vb_pack_name(pack, pname);
    if (st->mtime >= e->before || vb_store_exists(e->store, pname))
        return 0; /* while its pack exists, the record keeps the bad copy out of the index */
    if (e->dry_run || vb_store_remove(e->store, name, 0) == 0)
        e->removed++;
    vb_error_clear();
    return 0;
}

int vb_packquar_expire(vb_store_t *store, time_t before, bool dry_run, uint64_t *removed)
{
    s_expire_t e = {.store = store, .before = before, .dry_run = dry_run};
    int rc = vb_packquar_list(store, s_expire_one, &e);
    *removed = e.removed;
    return rc;
}
