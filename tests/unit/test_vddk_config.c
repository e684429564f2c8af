/* The VDDK config file an agent writes, and the vSphere version support check. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "vddk/vddk_config.h"

#define LEGAL "(legal: letters A-Z a-z, digits, '_', '-', '.', space)"

static char s_dir[512];
static char s_path[600];

static void s_mkdirs(void)
{
    const char *base = getenv("VB_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    if (mkdir(base, 0755) != 0 && errno != EEXIST)
        cr_assert_fail("mkdir %s: %s", base, strerror(errno));
    snprintf(s_dir, sizeof s_dir, "%s/vddk-config-XXXXXX", base);
    cr_assert_not_null(mkdtemp(s_dir), "mkdtemp: %s", strerror(errno));
    snprintf(s_path, sizeof s_path, "%s/vddk.conf", s_dir);
}

static void s_rmdirs(void)
{
    DIR *d = opendir(s_dir);
    if (!d)
        return;
    struct dirent *e;
    char p[1200];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", s_dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(s_dir);
}

static size_t s_entries(void)
{
    DIR *d = opendir(s_dir);
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

TestSuite(vddk_config, .init = s_mkdirs, .fini = s_rmdirs);

/* ---- phone-home strings ---- */

Test(vddk_config, legal_phone_home_strings_pass)
{
    const char *ok[] = {"vbak", "Acme_Backup-Pro 2", "0.1.0", "vbak 0.1.0 build 7", "A", "z9_-. "};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_expect_eq(vb_vddk_check_phone_home(VB_VDDK_KEY_PRODUCT_NAME, ok[i]), 0, "'%s': %s",
                     ok[i], vb_error_msg());
}

typedef struct {
    const char *value;
    const char *message;
} bad_t;

Test(vddk_config, each_illegal_character_class_is_named)
{
    const bad_t bad[] = {
        {"Acme/Backup", "vixDiskLib.phoneHome.ProductName: '/' at position 5 of \"Acme/Backup\" is "
                        "not allowed " LEGAL},
        {"Acme:1", "vixDiskLib.phoneHome.ProductName: ':' at position 5 of \"Acme:1\" is not "
                   "allowed " LEGAL},
        {"say \"hi\"",
         "vixDiskLib.phoneHome.ProductName: a double quote (\") at position 5 of \"say \"hi\"\" is "
         "not allowed " LEGAL},
        {"it's",
         "vixDiskLib.phoneHome.ProductName: a single quote (') at position 3 of \"it's\" is not "
         "allowed " LEGAL},
        {"a+b",
         "vixDiskLib.phoneHome.ProductName: '+' at position 2 of \"a+b\" is not allowed " LEGAL},
        {"tab\there", "vixDiskLib.phoneHome.ProductName: a control character (byte 0x09) at "
                      "position 4 is not allowed " LEGAL},
        {"line\n", "vixDiskLib.phoneHome.ProductName: a control character (byte 0x0a) at "
                   "position 5 is not allowed " LEGAL},
        {"Acm\xc3\xa9", "vixDiskLib.phoneHome.ProductName: a non-ASCII character (byte 0xc3) at "
                        "position 4 of \"Acm\xc3\xa9\" is not allowed " LEGAL},
        {"", "vixDiskLib.phoneHome.ProductName: the value is empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(vb_vddk_check_phone_home(VB_VDDK_KEY_PRODUCT_NAME, bad[i].value), VB_EINVAL,
                     "'%s' passed", bad[i].value);
        cr_expect_str_eq(vb_error_msg(), bad[i].message);
    }
    char longer[VB_VDDK_PHONE_HOME_MAX + 2];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    cr_expect_eq(vb_vddk_check_phone_home(VB_VDDK_KEY_PRODUCT_VERSION, longer), VB_EINVAL);
    cr_expect_str_eq(vb_error_msg(),
                     "vixDiskLib.phoneHome.ProductVersion: 129 characters is longer than the 128 "
                     "accepted");
}

Test(vddk_config, illegal_phone_home_refuses_the_file)
{
    vb_vddk_config_t cfg;
    vb_vddk_config_init(&cfg, "/var/lib/vbak/vddk-tmp/proxy-1");
    cfg.product_version = "1.0/beta";
    cr_assert_eq(vb_vddk_config_write(&cfg, s_path), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "vixDiskLib.phoneHome.ProductVersion: '/' at position 4 of "
                                     "\"1.0/beta\" is not allowed " LEGAL);
    cr_assert_eq(access(s_path, F_OK), -1, "a refused config was written");
    cr_assert_eq(s_entries(), 0, "a temp file was left behind");
}

/* ---- other settings ---- */

Test(vddk_config, tmp_directory_is_required_and_absolute)
{
    vb_vddk_config_t cfg;
    vb_vddk_config_init(&cfg, NULL);
    cr_assert_eq(vb_vddk_config_validate(&cfg), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(),
                     "tmpDirectory: is not set (a fixed folder per agent is required)");
    cfg.tmp_directory = "vddk-tmp";
    cr_assert_eq(vb_vddk_config_validate(&cfg), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "tmpDirectory: 'vddk-tmp' is not an absolute path");
    cfg.tmp_directory = "/var/lib/\"x\"";
    cr_assert_eq(vb_vddk_config_validate(&cfg), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "tmpDirectory: '/var/lib/\"x\"' contains a double quote");
    cfg.tmp_directory = "/var/lib/vbak/vddk-tmp/proxy-1";
    cr_assert_eq(vb_vddk_config_validate(&cfg), 0, "%s", vb_error_msg());
}

Test(vddk_config, fixed_tmp_directory_per_agent)
{
    char buf[256];
    cr_assert_eq(vb_vddk_tmp_directory("/var/lib/vbak/", "proxy-1", buf, sizeof buf), 0, "%s",
                 vb_error_msg());
    cr_assert_str_eq(buf, "/var/lib/vbak/vddk-tmp/proxy-1");
    /* the same agent gets the same folder every time, another agent another one */
    char again[256], other[256];
    cr_assert_eq(vb_vddk_tmp_directory("/var/lib/vbak", "proxy-1", again, sizeof again), 0);
    cr_assert_str_eq(again, buf);
    cr_assert_eq(vb_vddk_tmp_directory("/var/lib/vbak", "proxy-2", other, sizeof other), 0);
    cr_assert_str_neq(other, buf);

    cr_assert_eq(vb_vddk_tmp_directory("/var/lib/vbak", "../etc", buf, sizeof buf), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "VDDK tmpDirectory: agent name '../etc' has a character "
                                     "(byte 0x2f) other than letters, digits, '_', '-', '.'");
    cr_assert_eq(vb_vddk_tmp_directory("/var/lib/vbak", "..", buf, sizeof buf), VB_EINVAL);
    cr_assert_eq(vb_vddk_tmp_directory("relative", "proxy-1", buf, sizeof buf), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "VDDK tmpDirectory: state directory 'relative' is not "
                                     "absolute");
    cr_assert_eq(vb_vddk_tmp_directory("/var/lib/vbak", "proxy-1", buf, 10), VB_ENOMEM);
}

Test(vddk_config, nfc_buffers_within_16_mib_per_session)
{
    vb_vddk_config_t cfg;
    vb_vddk_config_init(&cfg, "/tmp/x");
    cfg.nfc_buf_size_64k = 16; /* 1 MiB × 4 buffers: the tuning people use */
    cfg.nfc_buf_count = 4;
    cr_assert_eq(vb_vddk_config_validate(&cfg), 0, "%s", vb_error_msg());
    cfg.nfc_buf_size_64k = 64; /* 4 MiB × 4 = 16 MiB: the limit itself */
    cr_assert_eq(vb_vddk_config_validate(&cfg), 0, "%s", vb_error_msg());
    cfg.nfc_buf_count = 5;
    cr_assert_eq(vb_vddk_config_validate(&cfg), VB_EINVAL);
    cr_assert_str_eq(
        vb_error_msg(),
        "vixDiskLib.nfcAio.Session.BufSizeIn64KB x vixDiskLib.nfcAio.Session.BufCount: "
        "64 x 64 KiB x 5 buffers is more than the 16 MiB per NFC session VDDK accepts "
        "(disk opens would fail)");
    /* an unset count is VDDK's default of 4 */
    cfg.nfc_buf_count = 0;
    cfg.nfc_buf_size_64k = 65;
    cr_assert_eq(vb_vddk_config_validate(&cfg), VB_EINVAL);
    cfg.nfc_buf_size_64k = -1;
    cr_assert_eq(vb_vddk_config_validate(&cfg), VB_EINVAL);
    cr_assert_str_eq(vb_error_msg(), "vixDiskLib.nfcAio.Session.BufSizeIn64KB: -1 is negative (0 "
                                     "keeps VDDK's default)");
    cfg.nfc_buf_size_64k = INT64_MAX;
    cfg.nfc_buf_count = INT64_MAX;
    cr_assert_eq(vb_vddk_config_validate(&cfg), VB_EINVAL);
}

/* ---- the file ---- */

Test(vddk_config, quotes_only_when_there_is_a_space)
{
    vb_vddk_config_t cfg;
    vb_vddk_config_init(&cfg, "/var/lib/vbak/vddk-tmp/proxy-1");
    cfg.product_name = "Acme Backup";
    cfg.product_version = "2.1.0";
    cfg.no_nfc_session = true;
    cr_assert_eq(vb_vddk_config_write(&cfg, s_path), 0, "%s", vb_error_msg());
    const char *text = s_slurp(s_path);
    cr_assert(strstr(text, "\ntmpDirectory = /var/lib/vbak/vddk-tmp/proxy-1\n"), "%s", text);
    cr_assert(strstr(text, "\nvixDiskLib.phoneHome.ProductName = \"Acme Backup\"\n"), "%s", text);
    cr_assert(strstr(text, "\nvixDiskLib.phoneHome.ProductVersion = 2.1.0\n"), "%s", text);
    cr_assert(strstr(text, "\nvixDiskLib.transport.hotadd.NoNfcSession = 1\n"), "%s", text);
    /* NFC buffers left at VDDK's defaults are not written */
    cr_assert_null(strstr(text, "nfcAio"), "%s", text);
    cr_assert_null(strstr(text, "DatabaseDir"), "%s", text);
}

Test(vddk_config, default_vendor_details)
{
    vb_vddk_config_t cfg;
    vb_vddk_config_init(&cfg, "/var/lib/vbak/vddk-tmp/proxy-1");
    cr_assert_eq(vb_vddk_config_write(&cfg, s_path), 0, "%s", vb_error_msg());
    const char *text = s_slurp(s_path);
    cr_assert(strstr(text, "\nvixDiskLib.phoneHome.ProductName = vbak\n"), "%s", text);
    cr_assert(strstr(text, "\nvixDiskLib.phoneHome.ProductVersion = " VB_VERSION "\n"), "%s", text);
    cr_assert(strstr(text, "\nvixDiskLib.transport.hotadd.NoNfcSession = 0\n"), "%s", text);
}

typedef struct {
    char *tmp_directory;
    char *product_name;
    char *product_version;
    char *database_dir;
    bool no_nfc_session;
    int64_t buf_size;
    int64_t buf_count;
} read_back_t;

static const vb_conf_key_t s_vddk_keys[] = {
    {VB_VDDK_KEY_TMP_DIRECTORY, VB_CONF_STR, offsetof(read_back_t, tmp_directory), NULL, 0, 0, true,
     NULL},
    {VB_VDDK_KEY_PRODUCT_NAME, VB_CONF_STR, offsetof(read_back_t, product_name), NULL, 0, 0, false,
     NULL},
    {VB_VDDK_KEY_PRODUCT_VERSION, VB_CONF_STR, offsetof(read_back_t, product_version), NULL, 0, 0,
     false, NULL},
    {VB_VDDK_KEY_DATABASE_DIR, VB_CONF_STR, offsetof(read_back_t, database_dir), NULL, 0, 0, false,
     NULL},
    {VB_VDDK_KEY_NO_NFC_SESSION, VB_CONF_BOOL, offsetof(read_back_t, no_nfc_session), NULL, 0, 0,
     false, NULL},
    {VB_VDDK_KEY_NFC_BUF_SIZE, VB_CONF_INT, offsetof(read_back_t, buf_size), NULL, 1, 256, false,
     NULL},
    {VB_VDDK_KEY_NFC_BUF_COUNT, VB_CONF_INT, offsetof(read_back_t, buf_count), NULL, 1, 256, false,
     NULL},
    VB_CONF_END};

Test(vddk_config, round_trip_and_mode_0644)
{
    vb_vddk_config_t cfg = {
        .tmp_directory = "/var/lib/vbak agent/vddk-tmp/proxy-1",
        .product_name = "vbak Backup",
        .product_version = "0.1.0-rc.1",
        .database_dir = "/var/lib/vbak/phone-home",
        .no_nfc_session = true,
        .nfc_buf_size_64k = 16,
        .nfc_buf_count = 4,
    };
    mode_t old = umask(077); /* the file is 0644 whatever the process umask */
    int rc = vb_vddk_config_write(&cfg, s_path);
    umask(old);
    cr_assert_eq(rc, 0, "%s", vb_error_msg());
    struct stat st;
    cr_assert_eq(stat(s_path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0644, "mode %o", (unsigned)(st.st_mode & 07777));
    cr_assert_eq(s_entries(), 1, "a temp file was left behind");

    read_back_t back;
    memset(&back, 0, sizeof back);
    cr_assert_eq(vb_config_defaults(s_vddk_keys, &back), 0);
    cr_assert_eq(vb_config_load_file(s_vddk_keys, &back, s_path), 0, "%s", vb_error_msg());
    cr_assert_str_eq(back.tmp_directory, cfg.tmp_directory);
    cr_assert_str_eq(back.product_name, cfg.product_name);
    cr_assert_str_eq(back.product_version, cfg.product_version);
    cr_assert_str_eq(back.database_dir, cfg.database_dir);
    cr_assert(back.no_nfc_session);
    cr_assert_eq(back.buf_size, 16);
    cr_assert_eq(back.buf_count, 4);
    vb_config_free(s_vddk_keys, &back);
}

Test(vddk_config, rewrite_replaces_the_old_file)
{
    vb_vddk_config_t cfg;
    vb_vddk_config_init(&cfg, "/srv/a");
    cr_assert_eq(vb_vddk_config_write(&cfg, s_path), 0, "%s", vb_error_msg());
    cfg.tmp_directory = "/srv/b";
    cr_assert_eq(vb_vddk_config_write(&cfg, s_path), 0, "%s", vb_error_msg());
    const char *text = s_slurp(s_path);
    cr_assert(strstr(text, "tmpDirectory = /srv/b\n"), "%s", text);
    cr_assert_null(strstr(text, "/srv/a"), "%s", text);
    /* a refused rewrite keeps the previous file */
    cfg.product_name = "bad|name";
    cr_assert_eq(vb_vddk_config_write(&cfg, s_path), VB_EINVAL);
    text = s_slurp(s_path);
    cr_assert(strstr(text, "tmpDirectory = /srv/b\n"), "%s", text);
    cr_assert_eq(s_entries(), 1);
}

Test(vddk_config, unwritable_directory_is_a_clear_error)
{
    char path[700];
    snprintf(path, sizeof path, "%s/missing/vddk.conf", s_dir);
    vb_vddk_config_t cfg;
    vb_vddk_config_init(&cfg, "/srv/a");
    cr_assert_eq(vb_vddk_config_write(&cfg, path), VB_EIO);
    cr_assert(strstr(vb_error_msg(), path), "%s", vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "No such file or directory"), "%s", vb_error_msg());
}

/* ---- version support ---- */

Test(vddk_version, supported_range_is_6_5_through_8_x)
{
    const char *ok[] = {"6.5",     "6.5.0", "6.7",   "6.7.3", "6.7 U3",  "7.0",    "7.0.3",
                        "7.0.3.1", "7.0U3", "7.0u2", "8.0",   "8.0.2.0", "8.0 U2", "8.1"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_expect_eq(vb_vddk_check_server_version(ok[i]), 0, "%s: %s", ok[i], vb_error_msg());
}

Test(vddk_version, outside_the_range_is_refused_with_the_range)
{
    const struct {
        const char *version;
        const char *shown;
    } bad[] = {{"6.0", "6.0"},    {"6.0.0", "6.0"}, {"5.5", "5.5"},
               {"5.5 U3", "5.5"}, {"9.0", "9.0"},   {"9.0.1", "9.0"},
               {"6.6", "6.6"},    {"10.0", "10.0"}, {"4.1", "4.1"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(vb_vddk_check_server_version(bad[i].version), VB_EUNSUPPORTED, "%s passed",
                     bad[i].version);
        char want[256];
        snprintf(want, sizeof want,
                 "vSphere %s is not supported: vbak supports vSphere 6.5, 6.7, 7.0 and 8.x (VDDK "
                 "7.0: N-2 to N+1)",
                 bad[i].shown);
        cr_expect_str_eq(vb_error_msg(), want);
    }
}

Test(vddk_version, garbage_is_not_a_version)
{
    const char *bad[] = {"", "seven", "7", "7.", ".0", "7.x", "7.0.", "7.0;rm", "70000.0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(vb_vddk_check_server_version(bad[i]), VB_EINVAL, "'%s' accepted", bad[i]);
        char want[128];
        snprintf(want, sizeof want, "'%s' is not a vSphere version (expected e.g. 7.0.3)", bad[i]);
        cr_expect_str_eq(vb_error_msg(), want);
    }
    cr_expect_eq(vb_vddk_check_server_version(NULL), VB_EINVAL);
}

/* ---- VDDK x vSphere: N-2 ... N+1 of the VDDK's release line ---- */

Test(vddk_compat, vddk_7_0_supports_6_5_through_8_0)
{
    const char *ok[] = {"6.5", "6.7.3", "7.0.3.0", "8.0.2.0"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_expect_eq(vb_vddk_check_compat("7.0.3", ok[i]), 0, "%s: %s", ok[i], vb_error_msg());
    cr_expect_eq(vb_vddk_check_compat("6.7.0", "6.0"), 0, "%s", vb_error_msg());
    cr_expect_eq(vb_vddk_check_compat("8.0.1", "9.0"), 0, "%s", vb_error_msg());
}

Test(vddk_compat, outside_names_both_versions_and_the_range)
{
    cr_assert_eq(vb_vddk_check_compat("8.0.1", "6.5"), VB_EUNSUPPORTED);
    cr_expect_str_eq(vb_error_msg(),
                     "VDDK 8.0.1 does not support vSphere 6.5: VDDK 8.0 supports vSphere 6.7 "
                     "through 9.0 (N-2 to N+1); install a VDDK release for vSphere 6.5 on this "
                     "proxy");
    cr_assert_eq(vb_vddk_check_compat("6.5.0", "7.0.3.0"), VB_EUNSUPPORTED);
    cr_expect(strstr(vb_error_msg(), "VDDK 6.5 supports vSphere 5.5 through 6.7"), "%s",
              vb_error_msg());
    cr_expect_eq(vb_vddk_check_compat("7.0.3", "6.0"), VB_EUNSUPPORTED);
}

Test(vddk_compat, garbage_is_refused)
{
    cr_expect_eq(vb_vddk_check_compat("seven", "7.0"), VB_EINVAL);
    cr_expect_str_eq(vb_error_msg(), "'seven' is not a VDDK version (expected e.g. 7.0.3)");
    cr_expect_eq(vb_vddk_check_compat("7.0", NULL), VB_EINVAL);
    cr_expect_eq(vb_vddk_check_compat("6.6.0", "7.0"), VB_EINVAL);
}
