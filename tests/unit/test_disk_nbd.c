/* The nbd backend against real nbdkit servers: plain and TLS, IPv4 and IPv6, X.509 and PSK. */
#include <pthread.h>

#include "disk/disk.h"
#include "disk_test_nbdkit.h"

static char s_dir[512];
static char s_img[600];
static char s_certs[600];
static char s_psk[600];
static tserver_t s_srv;

static void setup(void)
{
    tdir_make(s_dir, sizeof s_dir);
    snprintf(s_img, sizeof s_img, "%s/disk.img", s_dir);
    snprintf(s_certs, sizeof s_certs, "%s/pki", s_dir);
    snprintf(s_psk, sizeof s_psk, "%s/keys.psk", s_dir);
    timg_make(s_img);
    psk_make(s_psk, "vbak", 1);
}

static void teardown(void)
{
    nbdkit_stop(&s_srv);
    tdir_rm(s_dir);
}

TestSuite(disk_nbd, .init = setup, .fini = teardown);

static void serve(const char *addr, const char *tls_arg)
{
    char file_arg[700];
    snprintf(file_arg, sizeof file_arg, "file=%s", s_img);
    const char *args[] = {tls_arg ? "--tls=require" : "file", tls_arg ? tls_arg : file_arg,
                          tls_arg ? "file" : NULL, file_arg, NULL};
    s_srv = nbdkit_start(addr, args);
}

static int try_open(const char *uri, vb_disk_conn_t **conn, vb_disk_t **d)
{
    vb_disk_connect_params_t p = {.read_only = true};
    cr_assert_eq(vb_disk_connect(&p, conn), 0);
    return vb_disk_open_uri(*conn, uri, NULL, d);
}

/* Opens uri, checks every byte and the allocation map, closes. */
static void check_uri(const char *uri, const char *mode)
{
    vb_disk_conn_t *conn = NULL;
    vb_disk_t *d = NULL;
    int rc = try_open(uri, &conn, &d);
    cr_assert_eq(rc, 0, "open %s: %s", uri, vb_error_msg());
    vb_disk_info_t info;
    cr_assert_eq(vb_disk_get_info(d, &info), 0);
    cr_assert_eq(info.capacity, TIMG_SIZE);
    cr_assert_str_eq(info.mode, mode);
    TIMG_CHECK_ALL(d);
    vb_extent_list_t map = {0};
    bool exact = false;
    cr_assert_eq(vb_disk_query_allocated_blocks(d, 0, 0, &map, &exact), 0, "%s", vb_error_msg());
    cr_assert(exact, "base:allocation answered");
    TIMG_CHECK_MAP(map);
    vb_extent_list_free(&map);
    cr_assert_eq(vb_disk_close(&d), 0);
    vb_disk_disconnect(&conn);
}

static void expect_refused(const char *uri, int code, const char *needle1, const char *needle2)
{
    vb_disk_conn_t *conn = NULL;
    vb_disk_t *d = NULL;
    int rc = try_open(uri, &conn, &d);
    cr_assert_eq(rc, code, "open %s gave %d: %s", uri, rc, vb_error_msg());
    cr_assert_null(d);
    cr_assert(strstr(vb_error_msg(), needle1), "'%s' not in: %s", needle1, vb_error_msg());
    if (needle2)
        cr_assert(strstr(vb_error_msg(), needle2), "'%s' not in: %s", needle2, vb_error_msg());
    vb_disk_disconnect(&conn);
}

Test(disk_nbd, plain_ipv4)
{
    serve("127.0.0.1", NULL);
    char uri[128];
    snprintf(uri, sizeof uri, "nbd://127.0.0.1:%d/disk0", s_srv.port);
    check_uri(uri, "nbd");
}

Test(disk_nbd, plain_ipv6)
{
    serve("::1", NULL);
    char uri[128];
    snprintf(uri, sizeof uri, "nbd://[::1]:%d/disk0", s_srv.port);
    check_uri(uri, "nbd");
}

Test(disk_nbd, x509_ipv4_literal_and_host_name_are_verified_and_read)
{
    certs_make(s_certs, "IP:127.0.0.1,DNS:localhost", NULL);
    char arg[700];
    snprintf(arg, sizeof arg, "--tls-certificates=%s", s_certs);
    serve("127.0.0.1", arg);
    char uri[1024];
    snprintf(uri, sizeof uri, "nbds://127.0.0.1:%d/disk0?tls-certificates=%s/client", s_srv.port,
             s_certs);
    check_uri(uri, "nbdssl");
    snprintf(uri, sizeof uri, "nbds://localhost:%d/disk0?tls-certificates=%s/client", s_srv.port,
             s_certs);
    check_uri(uri, "nbdssl");
}

Test(disk_nbd, x509_from_another_ca_is_refused)
{
    char other[700];
    snprintf(other, sizeof other, "%s/other-ca", s_dir);
    certs_make(s_certs, "IP:127.0.0.1,DNS:localhost", NULL);
    certs_make(other, "IP:127.0.0.1,DNS:localhost", NULL);
    char arg[800];
    snprintf(arg, sizeof arg, "--tls-certificates=%s", other);
    serve("127.0.0.1", arg);
    char uri[1024], ca[700];
    snprintf(ca, sizeof ca, "%s/client", s_certs);
    snprintf(uri, sizeof uri, "nbds://127.0.0.1:%d/disk0?tls-certificates=%s", s_srv.port, ca);
    expect_refused(uri, VB_EAUTH, "TLS verification", ca);
}

Test(disk_nbd, x509_for_another_host_name_is_refused)
{
    char ca[700], wrong[700];
    snprintf(ca, sizeof ca, "%s/ca", s_dir);
    snprintf(wrong, sizeof wrong, "%s/wrong-host", s_dir);
    certs_make(ca, "DNS:localhost", NULL);
    certs_make(wrong, "DNS:other.example", ca); /* same CA, another name */
    char arg[800];
    snprintf(arg, sizeof arg, "--tls-certificates=%s", wrong);
    serve("127.0.0.1", arg);
    char uri[1024];
    snprintf(uri, sizeof uri, "nbds://127.0.0.1:%d/disk0?tls-certificates=%s/client", s_srv.port,
             ca);
    expect_refused(uri, VB_EAUTH, "TLS verification", "127.0.0.1");
}

Test(disk_nbd, x509_to_an_ipv6_literal_is_refused_with_the_reason)
{
    certs_make(s_certs, "IP:::1,DNS:localhost", NULL);
    char arg[700];
    snprintf(arg, sizeof arg, "--tls-certificates=%s", s_certs);
    serve("::1", arg);
    char uri[1024];
    snprintf(uri, sizeof uri, "nbds://[::1]:%d/disk0?tls-certificates=%s/client", s_srv.port,
             s_certs);
    expect_refused(uri, VB_EPOLICY, "IPv6 literal", "certificate check");
}

Test(disk_nbd, psk_over_ipv6_and_ipv4)
{
    char arg[700];
    snprintf(arg, sizeof arg, "--tls-psk=%s", s_psk);
    serve("::1", arg);
    char uri[1024];
    snprintf(uri, sizeof uri, "nbds://vbak@[::1]:%d/disk0?tls-psk-file=%s", s_srv.port, s_psk);
    check_uri(uri, "nbdssl");
    nbdkit_stop(&s_srv);
    serve("127.0.0.1", arg);
    snprintf(uri, sizeof uri, "nbds://127.0.0.1:%d/disk0?tls-psk-file=%s&tls-username=vbak",
             s_srv.port, s_psk);
    check_uri(uri, "nbdssl");
}

Test(disk_nbd, wrong_psk_is_refused_naming_the_file)
{
    char arg[700], wrong[700];
    snprintf(arg, sizeof arg, "--tls-psk=%s", s_psk);
    snprintf(wrong, sizeof wrong, "%s/wrong.psk", s_dir);
    psk_make(wrong, "vbak", 2);
    serve("::1", arg);
    char uri[1024];
    snprintf(uri, sizeof uri, "nbds://vbak@[::1]:%d/disk0?tls-psk-file=%s", s_srv.port, wrong);
    expect_refused(uri, VB_EAUTH, "TLS-PSK authentication", wrong);
}

Test(disk_nbd, plain_client_to_a_tls_only_server_is_refused)
{
    char arg[700];
    snprintf(arg, sizeof arg, "--tls-psk=%s", s_psk);
    serve("127.0.0.1", arg);
    char uri[128];
    snprintf(uri, sizeof uri, "nbd://127.0.0.1:%d/disk0", s_srv.port);
    vb_disk_conn_t *conn = NULL;
    vb_disk_t *d = NULL;
    cr_assert_neq(try_open(uri, &conn, &d), 0);
    cr_assert_null(d);
    cr_assert(strstr(vb_error_msg(), "127.0.0.1 port"), "%s", vb_error_msg());
    vb_disk_disconnect(&conn);
}

Test(disk_nbd, unreachable_server_names_host_and_port)
{
    serve("127.0.0.1", NULL);
    int port = s_srv.port;
    nbdkit_stop(&s_srv); /* the port is closed now */
    char uri[128], want[64];
    snprintf(uri, sizeof uri, "nbd://127.0.0.1:%d/disk0", port);
    snprintf(want, sizeof want, "cannot reach 127.0.0.1 port %d", port);
    expect_refused(uri, VB_EIO, want, "refused");
}

Test(disk_nbd, without_base_allocation_everything_is_read)
{
    char file_arg[700];
    snprintf(file_arg, sizeof file_arg, "file=%s", s_img);
    const char *args[] = {"--no-sr", "file", file_arg, NULL};
    s_srv = nbdkit_start("127.0.0.1", args);
    char uri[128];
    snprintf(uri, sizeof uri, "nbd://127.0.0.1:%d/", s_srv.port);
    vb_disk_conn_t *conn = NULL;
    vb_disk_t *d = NULL;
    cr_assert_eq(try_open(uri, &conn, &d), 0, "%s", vb_error_msg());
    vb_extent_list_t map = {0};
    bool exact = true;
    cr_assert_eq(vb_disk_query_allocated_blocks(d, 0, 0, &map, &exact), 0);
    cr_assert_not(exact);
    cr_assert_eq(map.count, 1);
    cr_assert_eq(map.items[0].offset, 0);
    cr_assert_eq(map.items[0].length, TIMG_SIZE);
    vb_extent_list_free(&map);
    TIMG_CHECK_ALL(d);
    cr_assert_eq(vb_disk_close(&d), 0);
    vb_disk_disconnect(&conn);
}

typedef struct {
    vb_disk_t *disk;
    uint64_t start;
    int query_rc;
    bool same;
} reader_t;

static void *reader(void *arg)
{
    reader_t *r = arg;
    vb_extent_list_t map = {0};
    r->query_rc = vb_disk_query_allocated_blocks(r->disk, 0, 0, &map, NULL);
    vb_extent_list_free(&map);
    uint8_t *buf = malloc(256 * KiB);
    r->same = buf != NULL;
    for (uint64_t o = r->start; r->same && o < r->start + 1 * MiB; o += 256 * KiB) {
        if (vb_disk_read(r->disk, buf, 256 * KiB, o) != 0)
            r->same = false;
        for (size_t k = 0; r->same && k < 256 * KiB; k++)
            r->same = buf[k] == timg_expect(o + k);
    }
    free(buf);
    return NULL;
}

Test(disk_nbd, workers_read_concurrently_but_may_not_query)
{
    char arg[700];
    snprintf(arg, sizeof arg, "--tls-psk=%s", s_psk);
    serve("::1", arg);
    char uri[1024];
    snprintf(uri, sizeof uri, "nbds://vbak@[::1]:%d/disk0?tls-psk-file=%s", s_srv.port, s_psk);
    vb_disk_conn_t *conn = NULL;
    vb_disk_t *d = NULL;
    cr_assert_eq(try_open(uri, &conn, &d), 0, "%s", vb_error_msg());
    reader_t r[2] = {{d, 0, 0, false}, {d, 1 * MiB, 0, false}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, reader, &r[i]), 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert_eq(r[i].query_rc, VB_EPOLICY);
        cr_assert(r[i].same, "worker %d read the right bytes", i);
    }
    cr_assert_eq(vb_disk_close(&d), 0);
    vb_disk_disconnect(&conn);
}

Test(disk_nbd, luks_encrypted_disk_over_psk_ipv6_reads_the_plain_bytes)
{
    char enc[700], cmd[2048];
    snprintf(enc, sizeof enc, "%s/enc.img", s_dir);
    snprintf(cmd, sizeof cmd, "bash \"$VB_SRC/tests/tools/luks-image\" '%s' '%s' s3cret >/dev/null",
             s_img, enc);
    run_ok(cmd);
    char psk_arg[800], file_arg[800];
    snprintf(psk_arg, sizeof psk_arg, "--tls-psk=%s", s_psk);
    snprintf(file_arg, sizeof file_arg, "file=%s", enc);
    const char *args[] = {"--tls=require",     psk_arg, "--filter=luks", "file", file_arg,
                          "passphrase=s3cret", NULL};
    s_srv = nbdkit_start("::1", args);
    char uri[1024];
    snprintf(uri, sizeof uri, "nbds://vbak@[::1]:%d/enc?tls-psk-file=%s", s_srv.port, s_psk);
    vb_disk_conn_t *conn = NULL;
    vb_disk_t *d = NULL;
    cr_assert_eq(try_open(uri, &conn, &d), 0, "%s", vb_error_msg());
    vb_disk_info_t info;
    cr_assert_eq(vb_disk_get_info(d, &info), 0);
    cr_assert_eq(info.capacity, TIMG_SIZE);
    TIMG_CHECK_ALL(d);
    vb_extent_list_t map = {0};
    cr_assert_eq(vb_disk_query_allocated_blocks(d, 0, 0, &map, NULL), 0);
    /* Whatever the filter reports, every data extent must be inside the map. */
    for (size_t i = 0; i < TIMG_NEXTENTS; i++) {
        bool covered = false;
        for (size_t j = 0; j < map.count && !covered; j++)
            covered = map.items[j].offset <= s_timg_extents[i][0] &&
                      map.items[j].offset + map.items[j].length >=
                          s_timg_extents[i][0] + s_timg_extents[i][1];
        cr_assert(covered, "data extent %zu is in the map", i);
    }
    vb_extent_list_free(&map);
    cr_assert_eq(vb_disk_close(&d), 0);
    vb_disk_disconnect(&conn);
}

Test(disk_nbd, writes_through_nbd_land_in_the_image)
{
    serve("127.0.0.1", NULL);
    char uri[128];
    snprintf(uri, sizeof uri, "nbd://127.0.0.1:%d/disk0", s_srv.port);
    vb_disk_conn_t *conn = NULL;
    cr_assert_eq(vb_disk_connect(NULL, &conn), 0);
    vb_disk_t *d = NULL;
    cr_assert_eq(vb_disk_open_uri(conn, uri, NULL, &d), 0, "%s", vb_error_msg());
    uint8_t buf[8192];
    memset(buf, 0x5A, sizeof buf);
    cr_assert_eq(vb_disk_write(d, buf, sizeof buf, 2 * MiB), 0, "%s", vb_error_msg());
    cr_assert_eq(vb_disk_close(&d), 0);
    vb_disk_disconnect(&conn);
    int fd = open(s_img, O_RDONLY);
    uint8_t back[8192];
    cr_assert_eq(pread(fd, back, sizeof back, 2 * MiB), (ssize_t)sizeof back);
    close(fd);
    cr_assert_eq(memcmp(buf, back, sizeof buf), 0);
}
