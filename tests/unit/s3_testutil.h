/* Helpers for the tests that run against the Ceph RGW the ctest fixture "rgw" starts
 * (tests/tools/rgw start $VB_RGW_DIR --tls; its environment file is $VB_RGW_ENV). Header only. */
#ifndef VB_S3_TESTUTIL_H
#define VB_S3_TESTUTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char endpoint[256];     /* http://127.0.0.1:PORT */
    char tls_endpoint[256]; /* https://localhost:PORT */
    char ca[1024];          /* the CA that signed the TLS endpoint's certificate */
    char other_ca[1024];    /* a CA that did not */
    char access[128];
    char secret[128];
    char region[64];
} tu_rgw_t;

static inline void tu_rgw_set(tu_rgw_t *g, const char *key, const char *value)
{
    static const struct {
        const char *key;
        size_t off, size;
    } keys[] = {
        {"VB_RGW_ENDPOINT", offsetof(tu_rgw_t, endpoint), sizeof g->endpoint},
        {"VB_RGW_TLS_ENDPOINT", offsetof(tu_rgw_t, tls_endpoint), sizeof g->tls_endpoint},
        {"VB_RGW_CA", offsetof(tu_rgw_t, ca), sizeof g->ca},
        {"VB_RGW_OTHER_CA", offsetof(tu_rgw_t, other_ca), sizeof g->other_ca},
        {"VB_RGW_ACCESS_KEY", offsetof(tu_rgw_t, access), sizeof g->access},
        {"VB_RGW_SECRET_KEY", offsetof(tu_rgw_t, secret), sizeof g->secret},
        {"VB_RGW_REGION", offsetof(tu_rgw_t, region), sizeof g->region},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i].key) == 0)
            snprintf((char *)g + keys[i].off, keys[i].size, "%s", value);
}

/* Reads the fixture's environment file; fails the test when there is none. */
static inline void tu_rgw_load(tu_rgw_t *g)
{
    const char *env = getenv("VB_RGW_ENV");
    memset(g, 0, sizeof *g);
    cr_assert(env && *env, "VB_RGW_ENV is not set: run this test with ctest, whose fixture "
                           "'rgw' starts a Ceph RGW (tests/tools/rgw)");
    FILE *f = fopen(env, "r");
    cr_assert_not_null(f, "%s: %s (did the rgw/start fixture run?)", env, strerror(errno));
    char line[1200];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            tu_rgw_set(g, line, eq + 1);
        }
    }
    fclose(f);
    cr_assert(g->endpoint[0] && g->secret[0], "%s lacks the endpoint or the keys", env);
}

/* Writes a credentials file DIR/NAME (mode 0600) with the fixture's access key and `secret`. */
static inline void tu_rgw_creds(const tu_rgw_t *g, const char *dir, const char *name,
                                const char *secret, char *path, size_t pathsz)
{
    snprintf(path, pathsz, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fprintf(f, "access_key_id = \"%s\"\nsecret_access_key = \"%s\"\n", g->access, secret);
    fclose(f);
    cr_assert_eq(chmod(path, 0600), 0);
}

/* A bucket name no other test uses. */
static inline void tu_rgw_bucket(char *out, size_t n)
{
    static unsigned seq;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, n, "vbt-%ld-%u-%ld", (long)getpid(), seq++, (long)(ts.tv_nsec % 100000));
}

/* Waits (polling the clock) until the wall clock is past `t` by at least one second, so an
 * object written now has a later whole-second mtime than one written at t. */
static inline void tu_clock_past(time_t t)
{
    while (time(NULL) <= t) {
        struct timespec d = {0, 50 * 1000 * 1000};
        nanosleep(&d, NULL);
    }
}

#endif
