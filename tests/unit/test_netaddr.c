/* Unit tests for address and prefix parsing and matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "netaddr.h"

static void roundtrip(const char *in, uint16_t def, const char *want)
{
    struct sockaddr_storage ss;
    assert_int_equal(netaddr_parse(in, def, &ss), 0);
    char out[NETADDR_STRLEN];
    netaddr_format((struct sockaddr *)&ss, true, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_parse(void **state)
{
    (void)state;
    roundtrip("127.0.0.1", 53, "127.0.0.1:53");
    roundtrip("127.0.0.1:8053", 53, "127.0.0.1:8053");
    roundtrip("::1", 53, "[::1]:53");
    roundtrip("[::1]", 53, "[::1]:53");
    roundtrip("[2001:db8::1]:5353", 53, "[2001:db8::1]:5353");
    roundtrip("0.0.0.0:0", 53, "0.0.0.0:0");
    struct sockaddr_storage ss;
    const char *bad[] = {"",       "1.2.3",  "1.2.3.4:",        "1.2.3.4:65536", "[::1",
                         "[::1]x", "[::1]:", "host.example:53", "1.2.3.4:5x",    "[]:53"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (netaddr_parse(bad[i], 53, &ss) == 0)
            fail_msg("'%s' parsed", bad[i]);
    }
}

static bool in(const char *net, const char *addr)
{
    struct cidr c;
    struct sockaddr_storage ss;
    assert_int_equal(cidr_parse(net, &c), 0);
    assert_int_equal(netaddr_parse(addr, 0, &ss), 0);
    return cidr_contains(&c, (struct sockaddr *)&ss);
}

static void test_cidr(void **state)
{
    (void)state;
    assert_true(in("10.0.0.0/8", "10.255.1.1"));
    assert_false(in("10.0.0.0/8", "11.0.0.1"));
    assert_true(in("172.16.0.0/12", "172.31.255.255"));
    assert_false(in("172.16.0.0/12", "172.32.0.0"));
    assert_true(in("192.168.1.7", "192.168.1.7"));
    assert_false(in("192.168.1.7", "192.168.1.8"));
    assert_true(in("0.0.0.0/0", "8.8.8.8"));
    assert_true(in("fc00::/7", "fd12::1"));
    assert_false(in("fc00::/7", "fe00::1"));
    assert_true(in("10.0.0.0/8", "::ffff:10.1.1.1")); /* v4-mapped counts as v4 */
    assert_false(in("::/0", "10.1.1.1"));
    assert_true(in("10.1.2.3/8", "10.9.9.9")); /* host bits are cleared */
    struct cidr c;
    assert_int_equal(cidr_parse("10.0.0.0/33", &c), -1);
    assert_int_equal(cidr_parse("::/129", &c), -1);
    assert_int_equal(cidr_parse("10.0.0.0/", &c), -1);
    assert_int_equal(cidr_parse("10.0.0.0/x", &c), -1);
    assert_int_equal(cidr_parse("nonsense", &c), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_cidr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
