/* Unit tests for finding the install prefix and the configuration directory (paths.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "paths.h"

static void prefix_is(const char *exe, const char *bindir, const char *want)
{
    char out[256];
    int rc = paths_install_prefix(exe, bindir, out, sizeof out);
    if (!want) {
        if (rc == 0)
            fail_msg("%s (bindir %s): prefix '%s', want none", exe, bindir, out);
        return;
    }
    if (rc != 0)
        fail_msg("%s (bindir %s): no prefix, want '%s'", exe, bindir, want);
    assert_string_equal(out, want);
}

static void test_install_prefix(void **state)
{
    (void)state;
    prefix_is("/usr/bin/telesink", "bin", "/usr");
    prefix_is("/usr/local/bin/telesink", "bin", "/usr/local");
    prefix_is("/tmp/x/bin/telesink", "bin", "/tmp/x");
    prefix_is("/tmp/x//bin/telesink", "bin", "/tmp/x");
    prefix_is("/bin/telesink", "bin", "/");
    prefix_is("/opt/t/bin/telesink (deleted)", "bin", "/opt/t"); /* replaced while running */
    prefix_is("/opt/t/lib/exec/telesink", "lib/exec", "/opt/t");
    prefix_is("/opt/t/bin/telesink", "bin/", "/opt/t");
    /* Not an install tree: a build directory, a different bin, relative or odd input. */
    prefix_is("/work/main/build/telesink", "bin", NULL);
    prefix_is("/usr/sbin/telesink", "bin", NULL);
    prefix_is("/usr/bin", "bin", NULL);
    prefix_is("bin/telesink", "bin", NULL);
    prefix_is("telesink", "bin", NULL);
    prefix_is("", "bin", NULL);
    prefix_is("/usr/bin/telesink", "", NULL);
    prefix_is("/usr/bin/telesink", "/usr/bin", NULL);
}

static void test_install_prefix_small_buffer(void **state)
{
    (void)state;
    char out[5];
    assert_int_equal(paths_install_prefix("/usr/bin/telesink", "bin", out, sizeof out), 0);
    assert_string_equal(out, "/usr");
    assert_int_equal(paths_install_prefix("/usr/local/bin/telesink", "bin", out, sizeof out), -1);
}

static void etc_is(const char *prefix, const char *sysconfdir, const char *want)
{
    char out[256];
    assert_int_equal(paths_sysconfdir(prefix, sysconfdir, out, sizeof out), 0);
    assert_string_equal(out, want);
}

static void test_sysconfdir(void **state)
{
    (void)state;
    etc_is("/usr", "etc", "/etc"); /* GNUInstallDirs: /usr's configuration is in /etc */
    etc_is("/", "etc", "/etc");
    etc_is("/usr/local", "etc", "/usr/local/etc");
    etc_is("/tmp/x", "etc", "/tmp/x/etc");
    etc_is("/tmp/x", "/etc", "/etc"); /* configured absolute */
    etc_is("/usr", "/srv/conf", "/srv/conf");
    char out[8];
    assert_int_equal(paths_sysconfdir("/usr/local", "etc", out, sizeof out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_install_prefix),
        cmocka_unit_test(test_install_prefix_small_buffer),
        cmocka_unit_test(test_sysconfdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
