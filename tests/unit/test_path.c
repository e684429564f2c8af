#include <criterion/criterion.h>
#include <string.h>

#include "path.h"

Test(path, pathf_refuses_a_name_that_does_not_fit)
{
    char buf[8];
    cr_assert_eq(vb_pathf(buf, sizeof buf, "%s/%s", "ab", "cd"), 0);
    cr_assert_str_eq(buf, "ab/cd");
    cr_assert_eq(vb_pathf(buf, sizeof buf, "%s/%s", "abcd", "efgh"), VB_EINVAL);
}

/* Directory entries of a guest file system are untrusted: only one plain component may be
 * created under the directory `vbak files get` writes to. */
Test(path, a_component_is_one_plain_name)
{
    const char *good[] = {"motd", "a b", "caf\xc3\xa9", "...", ".hidden", "x..y"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        cr_expect_eq(vb_path_check_component(good[i]), 0, "%s", good[i]);
    const char *bad[] = {"", ".", "..", "../etc", "a/b", "/", "/etc/passwd"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_eq(vb_path_check_component(bad[i]), VB_ECORRUPT, "%s", bad[i]);
        cr_expect(strstr(vb_error_msg(), "not a file name"), "%s", vb_error_msg());
    }
    cr_expect_eq(vb_path_check_component(NULL), VB_ECORRUPT);
}

/* vbak umount finds its mount in /proc/self/mountinfo, where the kernel escapes a space in the
 * mount point as \040: a directory with a space in its name must still be found. */
Test(path, mountinfo_lines_are_unescaped)
{
    char mnt[64], src[64];
    const char *line = "712 29 0:61 / /tmp/x/mnt\\040dir\\134b rw,nosuid,nodev shared:1 - fuse "
                       "vbak-mount-4242 rw,user_id=0,group_id=0\n";
    cr_assert_eq(vb_mountinfo_line(line, mnt, sizeof mnt, src, sizeof src), 0, "%s",
                 vb_error_msg());
    cr_expect_str_eq(mnt, "/tmp/x/mnt dir\\b");
    cr_expect_str_eq(src, "vbak-mount-4242");
    /* optional fields before the separator do not move the source */
    line = "1 2 0:3 / /m rw - ext4 /dev/sda1 rw\n";
    cr_assert_eq(vb_mountinfo_line(line, mnt, sizeof mnt, src, sizeof src), 0);
    cr_expect_str_eq(mnt, "/m");
    cr_expect_str_eq(src, "/dev/sda1");
    char tiny[4];
    cr_expect_eq(vb_mountinfo_line(line, tiny, sizeof tiny, src, sizeof src), 0);
    cr_expect_eq(vb_mountinfo_line("1 2 0:3 / /averylongname rw - x y z", tiny, sizeof tiny, src,
                                   sizeof src),
                 VB_EINVAL);
    cr_expect_eq(vb_mountinfo_line("garbage", mnt, sizeof mnt, src, sizeof src), VB_EINVAL);
    cr_expect_eq(vb_mountinfo_line("1 2 3 4 - fuse", mnt, sizeof mnt, src, sizeof src), VB_EINVAL);
}
