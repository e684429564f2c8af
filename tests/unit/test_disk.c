/* Disk access front and the file backend. */
#include <errno.h>
#include <pthread.h>

#include "disk/disk.h"
#include "disk/disk_uri.h"
#include "disk_test_util.h"
#include "fileio.h"
#include "pagecache_testutil.h"

static char s_dir[512];
static char s_img[600];

static void setup(void)
{
    tdir_make(s_dir, sizeof s_dir);
    snprintf(s_img, sizeof s_img, "%s/disk.img", s_dir);
    timg_make(s_img);
}

static void teardown(void)
{
    tdir_rm(s_dir);
}

TestSuite(disk_file, .init = setup, .fini = teardown);

static vb_disk_t *open_ro(vb_disk_conn_t **conn, const char *uri)
{
    vb_disk_connect_params_t p = {.read_only = true};
    cr_assert_eq(vb_disk_connect(&p, conn), 0, "%s", vb_error_msg());
    vb_disk_t *d = NULL;
    int rc = vb_disk_open_uri(*conn, uri, NULL, &d);
    cr_assert_eq(rc, 0, "open %s: %s", uri, vb_error_msg());
    return d;
}

Test(disk_file, reads_every_byte_through_a_path_and_a_file_uri)
{
    char uri[700];
    snprintf(uri, sizeof uri, "file://%s", s_img);
    const char *uris[] = {s_img, uri};
    for (size_t i = 0; i < 2; i++) {
        vb_disk_conn_t *conn = NULL;
        vb_disk_t *d = open_ro(&conn, uris[i]);
        vb_disk_info_t info;
        cr_assert_eq(vb_disk_get_info(d, &info), 0);
        cr_assert_eq(info.capacity, TIMG_SIZE);
        cr_assert_str_eq(info.mode, "file");
        cr_assert_str_eq(info.backend, "file");
        TIMG_CHECK_ALL(d);
        cr_assert_eq(vb_disk_close(&d), 0);
        cr_assert_null(d);
        vb_disk_disconnect(&conn);
        cr_assert_null(conn);
    }
}

Test(disk_file, allocated_map_matches_the_holes)
{
    vb_disk_conn_t *conn = NULL;
    vb_disk_t *d = open_ro(&conn, s_img);
    vb_extent_list_t map = {0};
    bool exact = false;
    cr_assert_eq(vb_disk_query_allocated_blocks(d, 0, 0, &map, &exact), 0, "%s", vb_error_msg());
    cr_assert(exact);
    TIMG_CHECK_MAP(map);
    vb_extent_list_free(&map);
    /* A window that cuts the second extent. */
    cr_assert_eq(vb_disk_query_allocated_blocks(d, 1 * MiB + 64 * KiB, 2 * MiB, &map, &exact), 0);
    cr_assert_eq(map.count, 1);
    cr_assert_eq(map.items[0].offset, 1 * MiB + 64 * KiB);
    cr_assert_eq(map.items[0].length, 128 * KiB);
    vb_extent_list_free(&map);
    cr_assert_eq(vb_disk_close(&d), 0);
    vb_disk_disconnect(&conn);
}

typedef struct {
    vb_disk_t *disk;
    int query_rc;
    char query_msg[512];
    int read_rc;
    uint8_t byte;
} thread_probe_t;

static void *worker(void *arg)
{
    thread_probe_t *t = arg;
    vb_extent_list_t map = {0};
    t->query_rc = vb_disk_query_allocated_blocks(t->disk, 0, 0, &map, NULL);
    snprintf(t->query_msg, sizeof t->query_msg, "%s", vb_error_msg());
    vb_extent_list_free(&map);
    t->read_rc = vb_disk_read(t->disk, &t->byte, 1, 1 * MiB + 5);
    return NULL;
}

Test(disk_file, query_from_a_worker_thread_is_refused_but_reads_work)
{
    vb_disk_conn_t *conn = NULL;
    vb_disk_t *d = open_ro(&conn, s_img);
    thread_probe_t t = {.disk = d};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, worker, &t), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(t.query_rc, VB_EPOLICY);
    cr_assert(strstr(t.query_msg, "thread other than the one that opened"), "%s", t.query_msg);
    cr_assert_eq(t.read_rc, 0);
    cr_assert_eq(t.byte, timg_byte(1 * MiB + 5));
    /* The opening thread still may. */
    vb_extent_list_t map = {0};
    cr_assert_eq(vb_disk_query_allocated_blocks(d, 0, 0, &map, NULL), 0);
    TIMG_CHECK_MAP(map);
    vb_extent_list_free(&map);
    cr_assert_eq(vb_disk_close(&d), 0);
    vb_disk_disconnect(&conn);
}

Test(disk_file, open_falls_back_in_preference_order_and_says_why)
{
    vb_disk_connect_params_t p = {.modes = "san:hotadd:nbd", .read_only = true};
    vb_disk_conn_t *conn = NULL;
    cr_assert_eq(vb_disk_connect(&p, &conn), 0);
    char missing[700];
    snprintf(missing, sizeof missing, "%s/lun-not-visible.img", s_dir);
    vb_disk_route_t routes[] = {{"hotadd", s_img}, {"san", missing}};
    vb_disk_t *d = NULL;
    cr_assert_eq(vb_disk_open(conn, routes, 2, "snap-1", &d), 0, "%s", vb_error_msg());
    cr_assert_str_eq(vb_disk_mode(d), "hotadd");
    cr_assert_eq(vb_disk_attempt_count(d), 1);
    cr_assert(strstr(vb_disk_attempt(d, 0), "san ("), "%s", vb_disk_attempt(d, 0));
    cr_assert(strstr(vb_disk_attempt(d, 0), "lun-not-visible.img"), "%s", vb_disk_attempt(d, 0));
    vb_disk_info_t info;
    cr_assert_eq(vb_disk_get_info(d, &info), 0);
    cr_assert_str_eq(info.snapshot, "snap-1");
    cr_assert_eq(vb_disk_close(&d), 0);

    /* Only the missing route: every attempt's reason in the error. */
    cr_assert_eq(vb_disk_open(conn, &routes[1], 1, NULL, &d), VB_ENOTFOUND);
    cr_assert_null(d);
    cr_assert(strstr(vb_error_msg(), "san ("), "%s", vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "No such file"), "%s", vb_error_msg());
    /* A route offering no allowed mode. */
    vb_disk_route_t only_file = {"file", s_img};
    cr_assert_eq(vb_disk_open(conn, &only_file, 1, NULL, &d), VB_ENOTFOUND);
    cr_assert(strstr(vb_error_msg(), "modes"), "%s", vb_error_msg());
    vb_disk_disconnect(&conn);
}

Test(disk_file, unknown_mode_and_bad_route_are_refused)
{
    vb_disk_connect_params_t p = {.modes = "san:warp"};
    vb_disk_conn_t *conn = NULL;
    cr_assert_eq(vb_disk_connect(&p, &conn), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "warp"), "%s", vb_error_msg());
    cr_assert_null(conn);
    cr_assert_eq(vb_disk_connect(NULL, &conn), 0);
    vb_disk_route_t r = {"nbd", s_img};
    vb_disk_t *d = NULL;
    cr_assert_eq(vb_disk_open(conn, &r, 1, NULL, &d), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "file://"), "%s", vb_error_msg());
    vb_disk_disconnect(&conn);
}

Test(disk_file, writes_land_and_bounds_are_checked)
{
    vb_disk_conn_t *conn = NULL;
    cr_assert_eq(vb_disk_connect(NULL, &conn), 0);
    vb_disk_t *d = NULL;
    cr_assert_eq(vb_disk_open_uri(conn, s_img, NULL, &d), 0, "%s", vb_error_msg());
    uint8_t buf[4096];
    memset(buf, 0xAB, sizeof buf);
    cr_assert_eq(vb_disk_write(d, buf, sizeof buf, 2 * MiB), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_disk_read(d, buf, 8, TIMG_SIZE - 4), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "past the end"), "%s", vb_error_msg());
    cr_assert_eq(vb_disk_close(&d), 0);
    vb_disk_disconnect(&conn);

    vb_disk_t *r = open_ro(&conn, s_img);
    uint8_t back[4096];
    cr_assert_eq(vb_disk_read(r, back, sizeof back, 2 * MiB), 0);
    cr_assert_eq(memcmp(buf, back, sizeof back), 0);
    cr_assert_eq(vb_disk_write(r, buf, 512, 0), VB_EPOLICY);
    cr_assert(strstr(vb_error_msg(), "read-only"));
    cr_assert_eq(vb_disk_close(&r), 0);
    vb_disk_disconnect(&conn);
}

/* A restore writes aligned chunks: they go past the page cache (O_DIRECT), an unaligned tail
 * or buffer through it, every byte lands, and what was not written stays a hole. */
Test(disk_file, aligned_writes_bypass_the_page_cache_and_tails_land)
{
    vb_disk_conn_t *conn = NULL;
    cr_assert_eq(vb_disk_connect(NULL, &conn), 0);
    vb_disk_t *d = NULL;
    cr_assert_eq(vb_disk_open_uri(conn, s_img, NULL, &d), 0, "%s", vb_error_msg());
    void *mem = NULL;
    cr_assert_eq(posix_memalign(&mem, 4096, 256 * KiB + 4096), 0);
    uint8_t *buf = mem;
    for (size_t i = 0; i < 256 * KiB + 4096; i++)
        buf[i] = timg_byte(i + 7);
    /* aligned; aligned with a 100-byte tail; an unaligned buffer (all of it buffered) */
    cr_assert_eq(vb_disk_write(d, buf, 256 * KiB, 2 * MiB), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_disk_write(d, buf, 64 * KiB + 100, 4 * MiB), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_disk_write(d, buf + 1, 64 * KiB, 5 * MiB), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_disk_close(&d), 0, "%s", vb_error_msg());
    vb_disk_disconnect(&conn);

    if (tpc_bypassable(s_img))
        cr_expect_eq(tpc_cached_pages(s_img, 2 * MiB, 256 * KiB), 0,
                     "aligned writes went through the page cache");
    int fd = open(s_img, O_RDONLY);
    cr_assert(fd >= 0);
    uint8_t *back = malloc(256 * KiB);
    cr_assert_eq(vb_pread_full(fd, back, 256 * KiB, 2 * MiB), 0);
    cr_assert_eq(memcmp(back, buf, 256 * KiB), 0);
    cr_assert_eq(vb_pread_full(fd, back, 64 * KiB + 101, 4 * MiB), 0);
    cr_assert_eq(memcmp(back, buf, 64 * KiB + 100), 0);
    cr_assert_eq(back[64 * KiB + 100], 0, "the byte after the tail is still a hole's zero");
    cr_assert_eq(vb_pread_full(fd, back, 64 * KiB, 5 * MiB), 0);
    cr_assert_eq(memcmp(back, buf + 1, 64 * KiB), 0);
    cr_assert_eq(lseek(fd, 2 * MiB + 256 * KiB, SEEK_DATA), 3 * MiB + 64 * KiB,
                 "the hole after the aligned write stays a hole");
    close(fd);
    free(back);
    free(mem);
}

TestSuite(disk_uri);

Test(disk_uri, parses_every_form_the_lab_prints)
{
    vb_disk_uri_t u;
    cr_assert_eq(vb_disk_uri_parse("nbd://127.0.0.1:10809/vm1-disk0", &u), 0);
    cr_assert_str_eq(u.scheme, "nbd");
    cr_assert_str_eq(u.host, "127.0.0.1");
    cr_assert_not(u.host_v6);
    cr_assert_eq(u.port, 10809);
    cr_assert_str_eq(u.path, "vm1-disk0");
    vb_disk_uri_free(&u);

    cr_assert_eq(vb_disk_uri_parse("nbds://alice@[::1]:2000/ex%20port?tls-psk-file=/k/psk%2Bx", &u),
                 0);
    cr_assert_str_eq(u.scheme, "nbds");
    cr_assert_str_eq(u.user, "alice");
    cr_assert_str_eq(u.host, "::1");
    cr_assert(u.host_v6);
    cr_assert_eq(u.port, 2000);
    cr_assert_str_eq(u.path, "ex port");
    cr_assert_str_eq(vb_disk_uri_get(&u, "tls-psk-file"), "/k/psk+x");
    char hp[64];
    vb_disk_uri_hostport(&u, hp, sizeof hp);
    cr_assert_str_eq(hp, "[::1]:2000");
    vb_disk_uri_free(&u);

    cr_assert_eq(vb_disk_uri_parse("vddk://esx1/?file=[ds 1] vm/vm.vmdk&thumbprint=AA:BB", &u), 0);
    cr_assert_str_eq(vb_disk_uri_get(&u, "file"), "[ds 1] vm/vm.vmdk");
    cr_assert_eq(u.port, 0);
    vb_disk_uri_free(&u);

    cr_assert_eq(vb_disk_uri_parse("file:///var/lab/a%25b.img", &u), 0);
    cr_assert_str_eq(u.path, "/var/lab/a%b.img");
    vb_disk_uri_free(&u);
}

/* Names a user gives VMs and disks, as vCenter spells them ("%2f" is its escape of '/'). */
static const char *const s_names[] = {
    "ab%41cd #x",   "db #2 50% ça", "q?x=1&y=2",           "a%2fb", "100%",    "%", "%%41",
    "sp  ace+plus", "ü€ 漢字",      "[ds 1] vm/disk.vmdk", "x%00y", "#?&=@:;",
};

Test(disk_uri, every_name_round_trips_through_escape_and_parse)
{
    for (size_t i = 0; i < sizeof s_names / sizeof s_names[0]; i++) {
        char path[300], uri[1000];
        snprintf(path, sizeof path, "/restore/dir/%s-2000.raw", s_names[i]);
        char *file = vb_disk_uri_file(path);
        cr_assert_not_null(file);
        vb_disk_uri_t u;
        cr_assert_eq(vb_disk_uri_parse(file, &u), 0, "%s: %s", file, vb_error_msg());
        cr_assert_str_eq(u.scheme, "file");
        cr_assert_str_eq(u.path, path, "%s came back as %s (via %s)", path, u.path, file);
        cr_assert_eq(u.nparams, 0, "%s grew a query", file);
        vb_disk_uri_free(&u);
        free(file);

        char *exp = vb_disk_uri_escape(s_names[i], NULL);
        char *val = vb_disk_uri_escape(s_names[i], "/:");
        snprintf(uri, sizeof uri, "nbd://h:1/%s?file=%s&k=v", exp, val);
        cr_assert_eq(vb_disk_uri_parse(uri, &u), 0, "%s: %s", uri, vb_error_msg());
        cr_assert_str_eq(u.path, s_names[i], "export %s came back as %s", s_names[i], u.path);
        cr_assert_str_eq(vb_disk_uri_get(&u, "file"), s_names[i]);
        cr_assert_str_eq(vb_disk_uri_get(&u, "k"), "v");
        vb_disk_uri_free(&u);
        free(exp);
        free(val);
    }
}

Test(disk_file, a_file_uri_made_from_any_name_opens_that_file)
{
    for (size_t i = 0; i < sizeof s_names / sizeof s_names[0]; i++) {
        if (strchr(s_names[i], '/'))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s-2000.raw", s_dir, s_names[i]);
        cr_assert_eq(link(s_img, path), 0, "%s: %s", path, strerror(errno));
        char *uri = vb_disk_uri_file(path);
        vb_disk_conn_t *conn = NULL;
        vb_disk_t *d = open_ro(&conn, uri);
        TIMG_CHECK_ALL(d);
        cr_assert_eq(vb_disk_close(&d), 0);
        vb_disk_disconnect(&conn);
        free(uri);
        cr_assert_eq(unlink(path), 0);
    }
}

Test(disk_uri, refuses_malformed_uris_with_a_reason)
{
    vb_disk_uri_t u;
    cr_assert_eq(vb_disk_uri_parse("nbd://h:99999/x", &u), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "port"));
    cr_assert_eq(vb_disk_uri_parse("nbd://[::1:10809/x", &u), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "]"));
    cr_assert_eq(vb_disk_uri_parse("http://h/x", &u), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "http"));
    cr_assert_eq(vb_disk_uri_parse("relative/path.img", &u), VB_EINVAL);
    cr_assert_eq(vb_disk_uri_parse("nbd://h/x?a=1&a=2", &u), VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "twice"));
    cr_assert_eq(vb_disk_uri_parse("file://h/x", &u), VB_EINVAL);
    cr_assert_eq(vb_disk_uri_parse("nbd://h/x%2", &u), VB_EINVAL);
    cr_assert_eq(vb_disk_uri_parse("nbd://h/x%00", &u), VB_EINVAL);
}

Test(disk_file, unknown_uri_parameters_are_refused)
{
    vb_disk_conn_t *conn = NULL;
    cr_assert_eq(vb_disk_connect(NULL, &conn), 0);
    vb_disk_t *d = NULL;
    cr_assert_eq(vb_disk_open_uri(conn, "nbd://127.0.0.1:1/x?tls-certificates=/etc/pki", NULL, &d),
                 VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "need nbds://"), "%s", vb_error_msg());
    cr_assert_eq(vb_disk_open_uri(conn, "nbds://127.0.0.1:1/x?tls-certificate=/etc/pki", NULL, &d),
                 VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "'tls-certificate'"), "%s", vb_error_msg());
    cr_assert_eq(vb_disk_open_uri(conn, "vddk://h/?file=[a] b.vmdk&thumbprnt=AA", NULL, &d),
                 VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "thumbprnt"), "%s", vb_error_msg());
    cr_assert_null(d);
    vb_disk_disconnect(&conn);
}
