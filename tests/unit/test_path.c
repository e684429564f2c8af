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
