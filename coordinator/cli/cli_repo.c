#include "cli_repo.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cli.h"
#include "config.h"
#include "error.h"
#include "repo/idxobj.h"
#include "repo/repo.h"
#include "repo/undelete.h"

static const char s_help[] =
    "usage: vbak repo init PATH|URL [--chunk-size SIZE] [--compression zstd:N|none]\n"
    "                           [--encrypt KEYFILE] [--format 1|2] [--pack-size SIZE]\n"
    "                           [--credentials FILE] [--create-bucket]\n"
    "                           [--object-lock DAYS|SECONDSs [--lock-mode compliance|governance]]\n"
    "       vbak repo stats PATH|URL [--json] [--credentials FILE]\n"
    "       vbak repo repair-index PATH\n"
    "       vbak repo undelete URL [--dry-run] [--json] [--credentials FILE]\n"
    "\n"
    "PATH is a directory; URL is s3://BUCKET/PREFIX?endpoint=https://HOST:PORT&region=R\n"
    "(http:// only for a loopback endpoint; &ca=FILE for a private CA) with the access key in\n"
    "--credentials FILE, else in vbak.conf's repository_credentials_file (VBAK_CONFIG):\n"
    "  access_key_id = \"...\"  and  secret_access_key = \"...\", mode 0600.\n"
    "\n"
    "init   create a repository in PATH (a new or empty directory) or URL (an empty prefix;\n"
    "       always format 2 on S3)\n"
    "       --create-bucket         S3: create the bucket when it does not exist\n"
    "       --object-lock DAYS      S3: every object gets an Object Lock retention of DAYS\n"
    "                               (\"30s\": seconds) from its write; the bucket must have\n"
    "                               Object Lock (made so by --create-bucket)\n"
    "       --lock-mode MODE        compliance (default: nobody can delete before the end) or\n"
    "                               governance (an admin with the right may bypass it)\n"
    "       --chunk-size SIZE       64K..4M, a power of two (default 1M); smaller chunks store\n"
    "                               scattered changes more tightly, larger ones mean fewer files\n"
    "       --compression zstd:N    zstd level 1..19 (default zstd:3), or none\n"
    "       --encrypt KEYFILE       encrypt chunks with AES-256-GCM under a key derived from\n"
    "                               KEYFILE (at least 32 bytes; created with 32 random bytes\n"
    "                               when it does not exist). Keep it safe: without it the\n"
    "                               backups cannot be read.\n"
    "       --format 1|2            2 (default): chunks in packs found through index\n"
    "                               objects; 1: a file per chunk (older vbak reads only 1)\n"
    "       --pack-size SIZE        format 2: pack size, 4M..128M (default 16M)\n"
    "stats  chunks, bytes stored, logical bytes, dedup and compression ratios\n"
    "       --json                  print one JSON object\n"
    "repair-index  format 2: rebuild the chunk index from the packs' trailers alone (the\n"
    "       index objects may be damaged or deleted); says how many packs could not be read\n"
    "undelete  S3 with Object Lock: bring back every object a delete marker hides while its\n"
    "       version is still locked (a plain DELETE by anyone holding the keys), and rebuild\n"
    "       the chunk index from the packs when it then misses one\n"
    "       --dry-run               say what would be brought back, change nothing\n"
    "       --json                  print one JSON object\n";

void vb_cli_repo_credentials(const char *given, char *out, size_t outsz)
{
    vb_cli_settings_t s = {0};
    const char *conf = getenv("VBAK_CONFIG");
    out[0] = '\0';
    if (given) {
        snprintf(out, outsz, "%s", given);
        return;
    }
    if (!conf || !*conf || vb_config_defaults(vb_cli_config_table, &s) != 0)
        return;
    if (vb_config_load_file(vb_cli_config_table, &s, conf) == 0 && s.repository_credentials_file)
        snprintf(out, outsz, "%s", s.repository_credentials_file);
    vb_error_clear();
    vb_config_free(vb_cli_config_table, &s);
}

/* Matches `--name VALUE` or `--name=VALUE`; advances *i past a separate value. */
static bool s_opt(int argc, char **argv, int *i, const char *name, const char **value,
                  FILE *err, int *rc)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return false;
    if (argv[*i][n] == '=') {
        *value = argv[*i] + n + 1;
        return true;
    }
    if (argv[*i][n] != '\0')
        return false;
    if (*i + 1 >= argc) {
        fprintf(err, "vbak repo: %s needs a value\n", name);
        *rc = 2;
        return true;
    }
    *value = argv[++*i];
    return true;
}

/* Creates a key file with 32 random bytes when it does not exist yet. */
static int s_ensure_key(const char *path, FILE *out, FILE *err)
{
    if (access(path, F_OK) == 0)
        return 0;
    unsigned char key[32];
    if (RAND_bytes(key, sizeof key) != 1) {
        fprintf(err, "vbak repo: no random bytes for a new key\n");
        return 1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, key, sizeof key) == (ssize_t)sizeof key && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        fprintf(err, "vbak repo: cannot create key file %s: %s\n", path, strerror(e));
        return 1;
    }
    fprintf(out, "created key file %s (32 random bytes); keep a copy in a safe place\n", path);
    return 0;
}

/* --object-lock N[d|s] (days; seconds with "s", for tests) and --lock-mode → lock. */
static int s_lock_opts(const char *days, const char *mode, vb_store_lock_t *lock, FILE *err)
{
    if (!days && !mode)
        return 0;
    size_t n = days ? strlen(days) : 0;
    char num[32];
    int64_t v = 0, unit = n && days[n - 1] == 's' ? 1 : 86400;
    if (n && (days[n - 1] == 's' || days[n - 1] == 'd'))
        n--;
    snprintf(num, sizeof num, "%.*s", (int)(n < sizeof num ? n : 0), days ? days : "");
    if (!days || vb_parse_i64(num, 1, INT64_C(36500) * 86400 / unit, "--object-lock", &v) != 0) {
        fprintf(err, "vbak repo init: --object-lock DAYS (or SECONDSs) is %s\n",
                days ? "a positive number" : "needed with --lock-mode");
        return 2;
    }
    if (mode && strcmp(mode, "compliance") && strcmp(mode, "governance")) {
        fprintf(err, "vbak repo init: --lock-mode %s: compliance or governance\n", mode);
        return 2;
    }
    lock->seconds = v * unit;
    lock->governance = mode && strcmp(mode, "governance") == 0;
    return 0;
}

static int s_init(int argc, char **argv, FILE *out, FILE *err)
{
    const char *path = NULL, *size = NULL, *comp = NULL, *key = NULL, *format = NULL, *pack = NULL,
               *creds = NULL, *lock = NULL, *lock_mode = NULL;
    bool create_bucket = false;
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "--create-bucket") == 0) {
            create_bucket = true;
            continue;
        }
        if (s_opt(argc, argv, &i, "--credentials", &creds, err, &rc) ||
            s_opt(argc, argv, &i, "--chunk-size", &size, err, &rc) ||
            s_opt(argc, argv, &i, "--format", &format, err, &rc) ||
            s_opt(argc, argv, &i, "--pack-size", &pack, err, &rc) ||
            s_opt(argc, argv, &i, "--compression", &comp, err, &rc) ||
            s_opt(argc, argv, &i, "--encrypt", &key, err, &rc) ||
            s_opt(argc, argv, &i, "--object-lock", &lock, err, &rc) ||
            s_opt(argc, argv, &i, "--lock-mode", &lock_mode, err, &rc))
            continue;
        if (argv[i][0] == '-' || path) {
            fprintf(err, "vbak repo init: unexpected argument '%s' (see vbak repo --help)\n",
                    argv[i]);
            return 2;
        }
        path = argv[i];
    }
    if (rc)
        return rc;
    if (!path) {
        fprintf(err, "vbak repo init: missing PATH (see vbak repo --help)\n");
        return 2;
    }
    vb_repo_params_t p = {.chunk_size = 0, .compression_level = 3, .key_file = key};
    uint64_t cs = 0;
    if (size && vb_parse_size(size, "--chunk-size", &cs) != 0) {
        fprintf(err, "vbak repo init: %s\n", vb_error_msg());
        return 2;
    }
    if (size && (cs == 0 || cs > UINT32_MAX)) {
        fprintf(err, "vbak repo init: --chunk-size %s: must be 64K..4M, a power of two\n", size);
        return 2;
    }
    p.chunk_size = (uint32_t)cs;
    int64_t fmt = VB_REPO_FORMAT_VERSION;
    uint64_t ps = 0;
    if ((format && vb_parse_i64(format, 1, 2, "--format", &fmt) != 0) ||
        (pack && vb_parse_size(pack, "--pack-size", &ps) != 0)) {
        fprintf(err, "vbak repo init: %s\n", vb_error_msg());
        return 2;
    }
    if (pack && (fmt != 2 || ps > UINT32_MAX || ps == 0)) {
        fprintf(err, "vbak repo init: --pack-size %s: for --format 2, 4M..128M\n", pack);
        return 2;
    }
    p.format = (int)fmt;
    p.pack_size = (uint32_t)ps;
    if (comp && vb_repo_parse_compression(comp, &p.compression_level) != 0) {
        fprintf(err, "vbak repo init: %s\n", vb_error_msg());
        return 2;
    }
    char cred_file[4096];
    vb_cli_repo_credentials(creds, cred_file, sizeof cred_file);
    p.store = (vb_store_opts_t){.credentials_file = cred_file[0] ? cred_file : NULL,
                                .create_bucket = create_bucket};
    if ((rc = s_lock_opts(lock, lock_mode, &p.store.lock, err)) != 0)
        return rc;
    if (key && (rc = s_ensure_key(key, out, err)) != 0)
        return rc;
    if (vb_repo_init(path, &p) != 0) {
        fprintf(err, "vbak repo init: %s\n", vb_error_msg());
        return 1;
    }
    fprintf(out, "initialised repository %s (chunk size %" PRIu32 " KiB, compression ", path,
            (p.chunk_size ? p.chunk_size : VB_REPO_CHUNK_DEFAULT) / 1024);
    if (p.compression_level)
        fprintf(out, "zstd:%d", p.compression_level);
    else
        fprintf(out, "none");
    fprintf(out, ", encryption %s", key ? "aes-256-gcm" : "none");
    if (p.store.lock.seconds)
        fprintf(out, ", Object Lock %s %" PRId64 " s",
                p.store.lock.governance ? "governance" : "compliance", p.store.lock.seconds);
    if (fmt == 2)
        fprintf(out, ", format 2, packs of %" PRIu32 " MiB",
                (p.pack_size ? p.pack_size : 16u << 20) >> 20);
    else
        fprintf(out, ", format 1, a file per chunk");
    fprintf(out, ")\n");
    return 0;
}

static int s_print_json(FILE *out, const vb_repo_t *r, const vb_repo_stats_t *st)
{
    json_t *o =
        json_pack("{s:s, s:i, s:I, s:i, s:b, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I}", "path",
                  vb_repo_path(r), "format_version", vb_repo_format(r), "chunk_size",
                  (json_int_t)vb_repo_chunk_size(r), "compression_level",
                  vb_repo_compression_level(r), "encrypted", vb_repo_encrypted(r), "chunks",
                  (json_int_t)st->chunks, "stored_bytes", (json_int_t)st->stored_bytes, "raw_bytes",
                  (json_int_t)st->raw_bytes, "logical_bytes", (json_int_t)st->logical_bytes,
                  "indexes", (json_int_t)st->indexes, "dedup_ratio", st->dedup_ratio,
                  "compression_ratio", st->compression_ratio, "packs", (json_int_t)st->packs);
    if (o && st->lock.seconds > 0)
        json_object_set_new(o, "object_lock",
                            json_pack("{s:I, s:s, s:I, s:I, s:I}", "seconds",
                                      (json_int_t)st->lock.seconds, "mode",
                                      st->lock.governance ? "governance" : "compliance",
                                      "locked_objects", (json_int_t)st->locked_objects,
                                      "locked_bytes", (json_int_t)st->locked_bytes,
                                      "earliest_unlock", (json_int_t)st->earliest_unlock));
    if (!o)
        return -1;
    int rc = json_dumpf(o, out, JSON_COMPACT);
    fputc('\n', out);
    json_decref(o);
    return rc;
}

static void s_print_lock(FILE *out, const vb_repo_stats_t *st)
{
    if (st->lock.seconds <= 0)
        return;
    char date[32] = "-";
    struct tm tm;
    if (st->earliest_unlock && gmtime_r(&st->earliest_unlock, &tm))
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", &tm);
    fprintf(out, "object lock        %s, %" PRId64 " s per object written\n",
            st->lock.governance ? "governance" : "compliance", st->lock.seconds);
    fprintf(out, "locked             %" PRIu64 " object(s), %.1f MiB, earliest unlock %s\n",
            st->locked_objects, (double)st->locked_bytes / (1024.0 * 1024.0), date);
}

static void s_print_text(FILE *out, const vb_repo_t *r, const vb_repo_stats_t *st)
{
    const double mib = 1024.0 * 1024.0;
    fprintf(out, "repository         %s\n", vb_repo_path(r));
    fprintf(out, "format version     %d\n", vb_repo_format(r));
    if (vb_repo_format(r) == VB_REPO_FORMAT_PACKED)
        fprintf(out, "pack size          %" PRIu32 " MiB\n", vb_repo_pack_size(r) >> 20);
    fprintf(out, "chunk size         %" PRIu32 " KiB\n", vb_repo_chunk_size(r) / 1024);
    if (vb_repo_compression_level(r))
        fprintf(out, "compression        zstd:%d\n", vb_repo_compression_level(r));
    else
        fprintf(out, "compression        none\n");
    fprintf(out, "encryption         %s\n", vb_repo_encrypted(r) ? "aes-256-gcm" : "none");
    s_print_lock(out, st);
    fprintf(out, "indexes            %" PRIu64 "\n", st->indexes);
    fprintf(out, "chunks             %" PRIu64 "\n", st->chunks);
    if (vb_repo_format(r) == VB_REPO_FORMAT_PACKED)
        fprintf(out, "packs              %" PRIu64 "\n", st->packs);
    fprintf(out, "logical bytes      %" PRIu64 " (%.1f MiB)\n", st->logical_bytes,
            (double)st->logical_bytes / mib);
    fprintf(out, "unique raw bytes   %" PRIu64 " (%.1f MiB)\n", st->raw_bytes,
            (double)st->raw_bytes / mib);
    fprintf(out, "stored bytes       %" PRIu64 " (%.1f MiB)\n", st->stored_bytes,
            (double)st->stored_bytes / mib);
    fprintf(out, "dedup ratio        %.2f\n", st->dedup_ratio);
    fprintf(out, "compression ratio  %.2f\n", st->compression_ratio);
}

/* The arguments of a command on one repository: URL [--json] [--dry-run (when allowed)]
 * [--credentials FILE]; so->credentials_file points into cred (the file, or the configured
 * one). 0, or the exit status (2) after a message naming `cmd`. */
typedef struct {
    const char *path;
    bool json, dry_run;
    char cred[4096];
    vb_store_opts_t so;
} s_repo_args_t;

static int s_repo_args(const char *cmd, bool dry_run_ok, int argc, char **argv, FILE *err,
                       s_repo_args_t *a)
{
    const char *creds = NULL;
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            a->json = true;
        } else if (dry_run_ok && strcmp(argv[i], "--dry-run") == 0) {
            a->dry_run = true;
        } else if (s_opt(argc, argv, &i, "--credentials", &creds, err, &rc)) {
            continue;
        } else if (argv[i][0] == '-' || a->path) {
            fprintf(err, "vbak repo %s: unexpected argument '%s' (see vbak repo --help)\n", cmd,
                    argv[i]);
            return 2;
        } else {
            a->path = argv[i];
        }
    }
    if (!a->path) {
        fprintf(err, "vbak repo %s: missing URL (see vbak repo --help)\n", cmd);
        return 2;
    }
    if (rc)
        return rc;
    vb_cli_repo_credentials(creds, a->cred, sizeof a->cred);
    a->so = (vb_store_opts_t){.credentials_file = a->cred[0] ? a->cred : NULL};
    return 0;
}

static int s_stats(int argc, char **argv, FILE *out, FILE *err)
{
    s_repo_args_t a = {0};
    int rc = s_repo_args("stats", false, argc, argv, err, &a);
    if (rc)
        return rc;
    const char *path = a.path;
    bool json = a.json;
    vb_repo_t *r = vb_repo_open_opts(path, NULL, &a.so); /* headers and indexes: no key needed */
    if (!r) {
        fprintf(err, "vbak repo stats: %s\n", vb_error_msg());
        return 1;
    }
    vb_repo_stats_t st;
    if (vb_repo_stats(r, &st) != 0) {
        fprintf(err, "vbak repo stats: %s\n", vb_error_msg());
        rc = 1;
    } else if (json) {
        if (s_print_json(out, r, &st) != 0) {
            fprintf(err, "vbak repo stats: cannot write JSON\n");
            rc = 1;
        }
    } else {
        s_print_text(out, r, &st);
    }
    vb_repo_destroy(&r);
    return rc;
}

static int s_repair_index(int argc, char **argv, FILE *out, FILE *err)
{
    if (argc != 3 || argv[2][0] == '-') {
        fprintf(err, "vbak repo repair-index: expected PATH (see vbak repo --help)\n");
        return 2;
    }
    vb_idxobj_repair_t st;
    char cred_file[4096];
    vb_cli_repo_credentials(NULL, cred_file, sizeof cred_file); /* vbak.conf's, for S3 */
    vb_store_opts_t so = {.credentials_file = cred_file[0] ? cred_file : NULL};
    if (vb_repo_repair_index_opts(argv[2], &so, &st) != 0) {
        fprintf(err, "vbak repo repair-index: %s\n", vb_error_msg());
        return 1;
    }
    fprintf(out,
            "rebuilt the chunk index of %s from %" PRIu64 " pack(s): %" PRIu64
            " chunk(s); removed %" PRIu64 " old index object(s)\n",
            argv[2], st.packs, st.chunks, st.removed);
    if (st.bad_packs) {
        fprintf(err,
                "vbak repo repair-index: %" PRIu64 " pack(s) have a damaged or missing trailer: "
                "their chunks are lost (the log names them); restore points that use them "
                "fail verify\n",
                st.bad_packs);
        return 1;
    }
    return 0;
}

static void s_undelete_text(FILE *out, const char *path, bool dry_run,
                            const vb_undelete_stats_t *st)
{
    const char *verb = dry_run ? "would bring back" : "brought back";
    fprintf(out,
            "%s %" PRIu64 " object(s) (%.1f MiB) hidden by delete markers over locked versions "
            "in %s: %" PRIu64 " pack(s), %" PRIu64 " disk index(es), %" PRIu64
            " manifest(s), %" PRIu64 " other\n",
            verb, st->brought_back, (double)st->bytes / (1024.0 * 1024.0), path, st->packs,
            st->indexes, st->manifests, st->other);
    if (st->index_rebuilt && dry_run)
        fprintf(out, "would rebuild the chunk index: %" PRIu64 " pack(s) are not in it\n",
                st->unindexed);
    else if (st->index_rebuilt)
        fprintf(out,
                "rebuilt the chunk index from %" PRIu64 " pack(s): %" PRIu64 " chunk(s) (%" PRIu64
                " pack(s) were not in it)\n",
                st->repair.packs, st->repair.chunks, st->unindexed);
    if (st->young)
        fprintf(out,
                "skipped %" PRIu64 " pack(s) written within the last %d h that no index object "
                "names (a backup still writing them): the chunk index was not rebuilt for them\n",
                st->young, VB_UNDELETE_GRACE_S / 3600);
    if (st->index_objects || st->expired)
        fprintf(out,
                "left hidden: %" PRIu64 " chunk index object(s) (the index comes from the packs), "
                "%" PRIu64 " object(s) whose lock has ended\n",
                st->index_objects, st->expired);
}

static int s_undelete_json(FILE *out, bool dry_run, const vb_undelete_stats_t *st)
{
    json_t *o = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I}", "dry_run",
                          dry_run, "brought_back", (json_int_t)st->brought_back, "bytes",
                          (json_int_t)st->bytes, "packs", (json_int_t)st->packs, "indexes",
                          (json_int_t)st->indexes, "manifests", (json_int_t)st->manifests, "other",
                          (json_int_t)st->other, "index_objects_hidden",
                          (json_int_t)st->index_objects, "expired_hidden", (json_int_t)st->expired,
                          "index_rebuilt", st->index_rebuilt, "unindexed_packs",
                          (json_int_t)st->unindexed, "young_packs", (json_int_t)st->young);
    int rc = o && json_dumpf(o, out, JSON_COMPACT) == 0 ? 0 : -1;
    fputc('\n', out);
    json_decref(o);
    return rc;
}

static int s_undelete(int argc, char **argv, FILE *out, FILE *err)
{
    s_repo_args_t a = {0};
    int rc = s_repo_args("undelete", true, argc, argv, err, &a);
    if (rc)
        return rc;
    const char *path = a.path;
    bool json = a.json, dry_run = a.dry_run;
    vb_undelete_stats_t st;
    if (vb_repo_undelete_opts(path, &a.so, dry_run, &st) != 0) {
        fprintf(err, "vbak repo undelete: %s\n", vb_error_msg());
        return 1;
    }
    if (!json) {
        s_undelete_text(out, path, dry_run, &st);
    } else if (s_undelete_json(out, dry_run, &st) != 0) {
        fprintf(err, "vbak repo undelete: cannot write JSON\n");
        return 1;
    }
    if (st.repair.bad_packs) {
        fprintf(err,
                "vbak repo undelete: %" PRIu64 " pack(s) have a damaged or missing trailer: "
                "their chunks are lost (the log names them)\n",
                st.repair.bad_packs);
        return 1;
    }
    return 0;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv, FILE *out, FILE *err);
} s_commands[] = {
    {"init", s_init},
    {"stats", s_stats},
    {"repair-index", s_repair_index},
    {"undelete", s_undelete},
};

int vb_cli_repo_io(int argc, char **argv, FILE *out, FILE *err)
{
    if (argc < 2) {
        fprintf(err, "vbak repo: missing command (init, stats, repair-index, undelete); see vbak "
                     "repo --help\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(s_help, out);
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(s_help, out);
            return 0;
        }
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (!strcmp(cmd, s_commands[i].name))
            return s_commands[i].run(argc, argv, out, err);
    fprintf(err,
            "vbak repo: unknown command '%s' (init, stats, repair-index, undelete); see vbak repo "
            "--help\n",
            cmd);
    return 2;
}

int vb_cli_repo(int argc, char **argv)
{
    return vb_cli_repo_io(argc, argv, stdout, stderr);
}
