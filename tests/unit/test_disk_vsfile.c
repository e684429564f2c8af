/* The vsfile:// route (datastore HTTP file service): what the disk layer checks before it talks
 * to a server. Reads against the vCenter simulator are in tests/integration/
 * test_vsphere_backup.sh. */
#include <criterion/criterion.h>
#include <string.h>

#include "disk/disk.h"

#define GOOD "vsfile://127.0.0.1:1/?ds=vmfs-01&path=vm%201/vm%201-flat.vmdk&user=admin&password-file=/nonexistent/pw"

static int s_open(const char *modes, bool read_only, const char *route_mode, const char *uri)
{
    vb_disk_connect_params_t p = {.modes = modes, .read_only = read_only};
    vb_disk_conn_t *conn = NULL;
    cr_assert_eq(vb_disk_connect(&p, &conn), 0, "%s", vb_error_msg());
    vb_disk_route_t r = {route_mode, uri};
    vb_disk_t *d = NULL;
    int rc = vb_disk_open(conn, &r, 1, "snapshot-1", &d);
    cr_assert_null(d);
    vb_disk_disconnect(&conn);
    return rc;
}

Test(disk_vsfile, the_uri_stands_for_mode_vsfile)
{
    char mode[16];
    cr_assert_eq(vb_disk_uri_mode(GOOD, mode, sizeof mode), 0, "%s", vb_error_msg());
    cr_assert_str_eq(mode, "vsfile");
    vb_disk_connect_params_t p = {.modes = "vsfile:nbd"};
    vb_disk_conn_t *conn = NULL;
    cr_assert_eq(vb_disk_connect(&p, &conn), 0, "%s", vb_error_msg());
    vb_disk_disconnect(&conn);
}

Test(disk_vsfile, writing_is_refused_before_any_connection)
{
    int rc = s_open("vsfile", false, NULL, GOOD);
    cr_assert_eq(rc, VB_EPOLICY, "%s", vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "read-only"), "%s", vb_error_msg());
    cr_assert(strstr(vb_error_msg(), "restore to a file"), "%s", vb_error_msg());
}

Test(disk_vsfile, unknown_and_missing_parameters_are_named)
{
    int rc = s_open("vsfile", true, NULL, GOOD "&passwrd=x");
    cr_assert_eq(rc, VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "unknown parameter 'passwrd'"), "%s", vb_error_msg());
    rc = s_open("vsfile", true, NULL,
                "vsfile://127.0.0.1:1/?ds=vmfs-01&user=admin&password-file=/nonexistent/pw");
    cr_assert(rc < 0);
    cr_assert(strstr(vb_error_msg(), "needs path="), "%s", vb_error_msg());
    rc = s_open("vsfile", true, NULL, "vsfile://127.0.0.1:1/?ds=a&path=b&user=admin");
    cr_assert(strstr(vb_error_msg(), "needs password-file="), "%s", vb_error_msg());
    rc = s_open("vsfile", true, NULL, GOOD "&ca-file=/x.pem&thumbprint=AA:BB");
    cr_assert(strstr(vb_error_msg(), "not both"), "%s", vb_error_msg());
}

Test(disk_vsfile, a_route_cannot_pass_the_file_service_off_as_nbdssl)
{
    int rc = s_open("nbdssl", true, "nbdssl", GOOD);
    cr_assert_eq(rc, VB_EINVAL);
    cr_assert(strstr(vb_error_msg(), "vsfile:// URI cannot stand for mode 'nbdssl'"), "%s",
              vb_error_msg());
}

Test(disk_vsfile, an_unreadable_password_file_is_named_and_never_a_password)
{
    int rc = s_open("vsfile", true, "vsfile", GOOD);
    cr_assert(rc < 0);
    cr_assert(strstr(vb_error_msg(), "/nonexistent/pw"), "%s", vb_error_msg());
}
