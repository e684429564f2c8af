/* fuzz_repo — the repository's own formats as a damaged or tampered repository would hand them
 * back, read through the store interface by the functions that read them for real: a pack's
 * trailer, a chunk index object, a restore point manifest, a disk index, and a stored chunk image
 * (header, zstd, AES-256-GCM in the encrypted repository, digest check). The first byte picks the
 * reader (and, for chunks, the repository); the rest is the object. Two format 2 repositories
 * (one encrypted) are made once in a scratch directory. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/chunkidx.h"
#include "repo/idxobj.h"
#include "repo/index.h"
#include "repo/manifest.h"
#include "repo/pack.h"
#include "repo/repo.h"
#include "repo/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_CHUNK (256u * 1024u) /* the lab's chunk size, as the seeds were written */

static char s_dir[64];
static vb_repo_t *s_repo[2]; /* plain, encrypted */
static vb_repo_worker_t *s_worker[2];

static void s_cleanup(void)
{
    for (int i = 0; i < 2; i++) {
        vb_repo_worker_destroy(&s_worker[i]);
        vb_repo_destroy(&s_repo[i]);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_repo: could not remove %s\n", s_dir);
}

static int s_make(int i, const char *key)
{
    char path[128];
    snprintf(path, sizeof path, "%s/repo%d", s_dir, i);
    vb_repo_params_t p = {
        .chunk_size = S_CHUNK, .compression_level = 1, .key_file = key, .format = 2};
    if (vb_repo_init(path, &p) != 0 || !(s_repo[i] = vb_repo_open(path, key)) ||
        !(s_worker[i] = vb_repo_worker_new(s_repo[i])))
        return -1;
    return 0;
}

static int s_setup(void)
{
    if (s_dir[0])
        return s_repo[1] ? 0 : -1;
    snprintf(s_dir, sizeof s_dir, "/tmp/vbak-fuzz-repo.XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    atexit(s_cleanup);
    char key[128];
    snprintf(key, sizeof key, "%s/key", s_dir);
    int fd = open(key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    uint8_t k[64];
    for (size_t i = 0; i < sizeof k; i++)
        k[i] = (uint8_t)(i * 151 + 7);
    if (fd < 0 || write(fd, k, sizeof k) != (ssize_t)sizeof k) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return s_make(0, NULL) || s_make(1, key) ? -1 : 0;
}

static void s_pack(vb_store_t *st, const uint8_t *d, size_t n)
{
    vb_pack_id_t id;
    memset(&id, 0xab, sizeof id);
    char name[VB_PACK_NAME_LEN];
    vb_pack_name(&id, name);
    vb_pack_entry_t *ents = NULL;
    size_t count = 0;
    if (vb_store_put(st, name, d, n, 0) == 0 && vb_pack_read_trailer(st, &id, &ents, &count) == 0)
        free(ents);
}

static void s_index_object(vb_store_t *st, const uint8_t *d, size_t n)
{
    const char *name = "index/abababababababababababababab01";
    vb_chunkidx_t *ci = vb_chunkidx_new();
    if (ci && vb_store_put(st, name, d, n, 0) == 0)
        (void)vb_idxobj_load_one(st, name, ci);
    vb_chunkidx_destroy(&ci);
}

static void s_manifest(vb_store_t *st, const uint8_t *d, size_t n)
{
    char name[64];
    vb_manifest_t m = {0};
    if (vb_manifest_name(1, name, sizeof name) == 0 && vb_store_put(st, name, d, n, 0) == 0 &&
        vb_manifest_read(st, 1, &m) == 0)
        vb_manifest_clear(&m);
}

static void s_disk_index(vb_store_t *st, const uint8_t *d, size_t n)
{
    vb_index_t *idx = NULL;
    if (vb_store_put(st, "indexes/fuzz.idx", d, n, 0) == 0 &&
        vb_index_read(s_repo[0], "fuzz", &idx) == 0)
        vb_index_destroy(&idx);
}

/* A chunk image: the first VB_DIGEST_LEN bytes are the digest it claims to hold. */
static void s_chunk(int which, const uint8_t *d, size_t n)
{
    if (n < VB_DIGEST_LEN)
        return;
    vb_digest_t digest;
    memcpy(digest.b, d, VB_DIGEST_LEN);
    size_t len = n - VB_DIGEST_LEN, got = 0;
    uint8_t *img = malloc(len ? len : 1), *out = malloc(S_CHUNK);
    if (img && out) {
        memcpy(img, d + VB_DIGEST_LEN, len);
        (void)vb_repo_chunk_decode(s_worker[which], &digest, img, len, out, S_CHUNK, &got);
    }
    free(img);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 22) || s_setup() != 0)
        return 0;
    vb_store_t *st = vb_repo_store(s_repo[0]);
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (data[0] % 6) {
    case 0:
        s_pack(st, d, n);
        break;
    case 1:
        s_index_object(st, d, n);
        break;
    case 2:
        s_manifest(st, d, n);
        break;
    case 3:
        s_disk_index(st, d, n);
        break;
    case 4:
        s_chunk(0, d, n);
        break;
    default:
        s_chunk(1, d, n);
        break;
    }
    vb_error_clear();
    return 0;
}
