/* Unit tests for the configuration: defaults, every section, errors with file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include "config.h"

static struct config *load(const char *text, int expect_rc, char *err, size_t errlen)
{
    struct config *c = config_create();
    assert_non_null(c);
    int rc = config_load_string(c, text, strlen(text), "t.conf", err, errlen);
    assert_int_equal(rc, expect_rc);
    return c;
}

static void test_defaults(void **state)
{
    (void)state;
    struct config *c = config_create();
    assert_int_equal(c->n_listen, 2);
    assert_int_equal(netaddr_port((struct sockaddr *)&c->listen[0]), 8053);
    assert_int_equal(c->listen[1].ss_family, AF_INET6);
    assert_int_equal(c->timeout_ms, 1500);
    assert_int_equal(c->tcp_idle_ms, 10000);
    assert_int_equal(c->blocking_mode, DNSMSG_BLOCK_NXDOMAIN);
    assert_int_equal(c->block_ttl, 300);
    assert_string_equal(c->db, "telesink.db");
    assert_true(c->log_allowed);
    assert_false(c->anonymize_clients);
    assert_int_equal(c->retention_days, 90);
    /* Loopback, RFC 1918, CGNAT, link-local, ULA are allowed; a public address is not. */
    struct sockaddr_storage ss;
    const char *inside[] = {"127.0.0.5",   "10.1.2.3", "172.31.0.1", "192.168.1.1", "100.64.0.1",
                            "169.254.9.9", "::1",      "fe80::1",    "fd00::1"};
    for (size_t i = 0; i < sizeof inside / sizeof *inside; i++) {
        assert_int_equal(netaddr_parse(inside[i], 0, &ss), 0);
        bool ok = false;
        for (size_t k = 0; k < c->n_allow; k++)
            ok = ok || cidr_contains(&c->allow[k], (struct sockaddr *)&ss);
        assert_true(ok);
    }
    assert_int_equal(netaddr_parse("8.8.8.8", 0, &ss), 0);
    for (size_t k = 0; k < c->n_allow; k++)
        assert_false(cidr_contains(&c->allow[k], (struct sockaddr *)&ss));
    config_destroy(c);
}

static void test_full_file(void **state)
{
    (void)state;
    char err[256];
    struct config *c = load("\xEF\xBB\xBF# a comment\r\n"
                            "[server]\r\n"
                            "listen = 127.0.0.1:5300, [::1]:5300 ; inline comment\n"
                            "allow = 127.0.0.0/8 192.168.0.0/16\n"
                            "blocking_mode = null\n"
                            "block_ttl = 60\n"
                            "threads = 1\n"
                            "[upstream]\n"
                            "servers = 9.9.9.9, [2620:fe::fe]:53, 127.0.0.1:5353\n"
                            "timeout_ms = 800\n"
                            "[lists]\n"
                            "paths = /a, /b\n"
                            "vendors = xiaomi, samsung\n"
                            "[log]\n"
                            "db = /var/lib/telesink/q.db\n"
                            "log_allowed = no\n"
                            "trusted_forwarders = 192.168.1.2\n"
                            "[clients]\n"
                            "192.168.1.23 = redmi-note-8\n"
                            "aa:bb:cc:dd:ee:ff = living-room-tv\n"
                            "fe80::1 = router\n",
                            0, err, sizeof err);
    assert_int_equal(c->n_listen, 2);
    assert_int_equal(netaddr_port((struct sockaddr *)&c->listen[1]), 5300);
    assert_int_equal(c->n_allow, 2);
    assert_int_equal(c->blocking_mode, DNSMSG_BLOCK_NULL);
    assert_int_equal(c->block_ttl, 60);
    assert_int_equal(c->threads, 1);
    assert_int_equal(c->n_upstreams, 3);
    assert_int_equal(netaddr_port((struct sockaddr *)&c->upstreams[0]), 53);
    assert_int_equal(netaddr_port((struct sockaddr *)&c->upstreams[2]), 5353);
    assert_int_equal(c->timeout_ms, 800);
    assert_int_equal(c->n_list_paths, 2);
    assert_int_equal(c->n_vendors, 2);
    assert_string_equal(c->db, "/var/lib/telesink/q.db");
    assert_false(c->log_allowed);
    assert_int_equal(c->n_trusted_forwarders, 1);
    assert_int_equal(c->n_clients, 3);
    /* Keys with ':' are whole keys (MAC and IPv6 addresses). */
    assert_string_equal(c->clients[1].key, "aa:bb:cc:dd:ee:ff");
    assert_string_equal(c->clients[1].name, "living-room-tv");
    assert_string_equal(c->clients[2].key, "fe80::1");
    config_destroy(c);
}

static void expect_error(const char *text, const char *message)
{
    char err[256];
    struct config *c = load(text, -1, err, sizeof err);
    if (!strstr(err, message))
        fail_msg("error '%s' does not contain '%s'", err, message);
    config_destroy(c);
}

static void test_errors_name_the_line(void **state)
{
    (void)state;
    expect_error("[server]\nlisten = 127.0.0.1:8053\nblocking_mode = maybe\n", "t.conf:3: ");
    expect_error("[server]\nlisten = 127.0.0.1:8053\nblocking_mode = maybe\n", "maybe");
    expect_error("[server]\n\nlisten = 300.1.1.1\n", "t.conf:3: listen");
    expect_error("[server]\nlisten = 127.0.0.1:70000\n", "t.conf:2:");
    expect_error("[nope]\n", "t.conf:1: unknown section [nope]");
    expect_error("listen = 1.2.3.4\n", "t.conf:1: 'listen' is outside a [section]");
    expect_error("[server]\nfrobnicate = 1\n", "t.conf:2: unknown key 'frobnicate' in [server]");
    expect_error("[server]\njust a line\n", "t.conf:2: expected 'key = value'");
    expect_error("[server\n", "t.conf:1: section header");
    expect_error("[upstream]\ntimeout_ms = -5\n", "t.conf:2: timeout_ms");
    expect_error("[upstream]\nservers = 1.2.3.4:0\n", "t.conf:2: upstream");
    expect_error("[log]\nlog_allowed = perhaps\n", "t.conf:2: log_allowed");
    expect_error("[server]\nallow = 10.0.0.0/33\n", "t.conf:2: allow");
    expect_error("[clients]\n1.2.3.4 =\n", "t.conf:2: client");
}

static void test_file_errors(void **state)
{
    (void)state;
    char err[256];
    struct config *c = config_create();
    assert_int_equal(config_load_file(c, "/nonexistent/telesink.conf", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/telesink.conf: No such file"));
    config_destroy(c);
}

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/telesink-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_resolv_conf(void **state)
{
    (void)state;
    char err[256];
    char *path = write_tmp("# generated\nsearch lan\nnameserver 127.0.0.1\n"
                           "nameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver ::1\n");
    struct config *c = config_create();
    /* Listening on 127.0.0.1:53 ourselves: that nameserver is skipped as a loop. */
    assert_int_equal(config_set(c, "server", "listen", "127.0.0.1:53", err, sizeof err), 0);
    assert_int_equal(config_finish(c, path, err, sizeof err), 0);
    assert_int_equal(c->n_upstreams, 2);
    char a[NETADDR_STRLEN];
    netaddr_format((struct sockaddr *)&c->upstreams[0], true, a, sizeof a);
    assert_string_equal(a, "192.0.2.53:53");
    netaddr_format((struct sockaddr *)&c->upstreams[1], true, a, sizeof a);
    assert_string_equal(a, "[::1]:53");
    config_destroy(c);

    /* Nothing usable: a clear error. */
    free(path);
    path = write_tmp("nameserver 127.0.0.1\n");
    c = config_create();
    assert_int_equal(config_set(c, "server", "listen", "0.0.0.0:53", err, sizeof err), 0);
    assert_int_equal(config_finish(c, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "no usable nameserver"));
    config_destroy(c);
    unlink(path);
    free(path);

    /* An explicit upstream that is ourselves is refused. */
    c = config_create();
    assert_int_equal(config_set(c, "upstream", "servers", "127.0.0.1:8053", err, sizeof err), 0);
    assert_int_equal(config_finish(c, "/nonexistent", err, sizeof err), -1);
    assert_non_null(strstr(err, "own listen"));
    config_destroy(c);
}

static void test_flags_replace_lists(void **state)
{
    (void)state;
    char err[256];
    struct config *c = load("[upstream]\nservers = 1.1.1.1\n", 0, err, sizeof err);
    assert_int_equal(config_set(c, "upstream", "servers", "9.9.9.9, 8.8.8.8", err, sizeof err), 0);
    assert_int_equal(c->n_upstreams, 2);
    config_destroy(c);
}

/* A wildcard listener also answers on every address of this host: none may be an upstream. */
static void test_own_interface_address_refused(void **state)
{
    (void)state;
    struct ifaddrs *list, *i;
    char addr[INET_ADDRSTRLEN] = "";
    assert_int_equal(getifaddrs(&list), 0);
    for (i = list; i && !addr[0]; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        const struct in_addr *a = &((struct sockaddr_in *)i->ifa_addr)->sin_addr;
        if (ntohl(a->s_addr) >> 24 != 127) /* loopback is refused without asking the kernel */
            inet_ntop(AF_INET, a, addr, sizeof addr);
    }
    freeifaddrs(list);
    if (!addr[0])
        skip();
    char err[256], up[64];
    snprintf(up, sizeof up, "%s:5300", addr);
    struct config *c = config_create();
    assert_int_equal(config_set(c, "server", "listen", "0.0.0.0:5300", err, sizeof err), 0);
    assert_int_equal(config_set(c, "upstream", "servers", up, err, sizeof err), 0);
    assert_int_equal(config_finish(c, "/nonexistent", err, sizeof err), -1);
    assert_non_null(strstr(err, "own listen"));
    /* Another port of the same address is someone else. */
    snprintf(up, sizeof up, "%s:5301", addr);
    assert_int_equal(config_set(c, "upstream", "servers", up, err, sizeof err), 0);
    assert_int_equal(config_finish(c, "/nonexistent", err, sizeof err), 0);
    config_destroy(c);
}

static void test_rate_limit(void **state)
{
    (void)state;
    char err[256];
    struct config *c = config_create();
    assert_int_equal(c->rate_limit, 1000); /* Pi-hole's default: 1000 queries a minute */
    assert_int_equal(c->rate_limit_s, 60);
    config_destroy(c);
    c = load("[server]\nrate_limit = 50/2\n", 0, err, sizeof err);
    assert_int_equal(c->rate_limit, 50);
    assert_int_equal(c->rate_limit_s, 2);
    config_destroy(c);
    c = load("[server]\nrate_limit = 0\n", 0, err, sizeof err);
    assert_int_equal(c->rate_limit, 0);
    config_destroy(c);
    c = load("[server]\nrate_limit = 0/0\n", 0, err, sizeof err); /* Pi-hole's way to say off */
    assert_int_equal(c->rate_limit, 0);
    config_destroy(c);
    const char *bad[] = {"1000",       "abc",     "10/0",    "/60",    "10/", "-1/60",
                         "1000001/60", "5/86401", "10/60/2", "1e3/60", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[64];
        snprintf(text, sizeof text, "[server]\n\nrate_limit = %s\n", bad[i]);
        expect_error(text, "t.conf:3: rate_limit: ");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_resolv_conf),
        cmocka_unit_test(test_flags_replace_lists),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_own_interface_address_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
