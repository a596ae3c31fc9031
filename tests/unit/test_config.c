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
#include "tlscert.h"

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

/* [server] tls_listen, tls_cert, tls_key, tls_max_connections (the DoT listener). */
static void test_tls_listen(void **state)
{
    (void)state;
    char err[256];
    struct config *c = config_create();
    assert_int_equal(c->n_tls_listen, 0); /* off by default */
    assert_int_equal(c->tls_max_connections, 256);
    config_destroy(c);
    c = load("[server]\ntls_listen = 192.0.2.1, [::1]:8853\ntls_cert = /c.pem\ntls_key = /k.pem\n"
             "tls_max_connections = 9\n",
             0, err, sizeof err);
    assert_int_equal(c->n_tls_listen, 2);
    assert_int_equal(netaddr_port((struct sockaddr *)&c->tls_listen[0]), 853);
    assert_int_equal(netaddr_port((struct sockaddr *)&c->tls_listen[1]), 8853);
    assert_string_equal(c->tls_cert, "/c.pem");
    assert_string_equal(c->tls_key, "/k.pem");
    assert_int_equal(c->tls_max_connections, 9);
    assert_int_equal(config_set(c, "server", "listen", "192.0.2.1:5300", err, sizeof err), 0);
    assert_int_equal(config_finish(c, "/nonexistent", err, sizeof err), -1); /* no upstream */
    assert_int_equal(config_set(c, "upstream", "servers", "192.0.2.9", err, sizeof err), 0);
    assert_int_equal(config_finish(c, "/nonexistent", err, sizeof err), 0);
    /* Off again; then the cert and key are not needed. */
    assert_int_equal(config_set(c, "server", "tls_listen", "off", err, sizeof err), 0);
    assert_int_equal(c->n_tls_listen, 0);
    assert_int_equal(config_set(c, "server", "tls_key", "", err, sizeof err), 0);
    assert_null(c->tls_key);
    assert_int_equal(config_finish(c, "/nonexistent", err, sizeof err), 0);
    config_destroy(c);

    /* Errors name the line; the missing files name the line of tls_listen. */
    expect_error("[server]\ntls_listen = 192.0.2.1:99999\n", "t.conf:2: tls_listen: ");
    expect_error("[server]\n\ntls_max_connections = 0\n", "t.conf:3: tls_max_connections: ");
    const char *finish_bad[][2] = {
        {"[server]\n\ntls_listen = 127.0.0.1:853\ntls_cert = /c.pem\n",
         "t.conf:3: tls_listen needs tls_cert and tls_key"},
        {"[server]\ntls_key = /k.pem\ntls_listen = 127.0.0.1:853\n", "t.conf:3: tls_listen needs"},
        /* The TCP port of a DNS listener: with SO_REUSEPORT both would bind and share it. */
        {"[server]\nlisten = 127.0.0.1:853\ntls_listen = 127.0.0.1:853\ntls_cert = c\n"
         "tls_key = k\n",
         "t.conf:3: tls_listen 127.0.0.1:853 takes the TCP port of a listen address"},
        {"[server]\nlisten = 0.0.0.0:853\ntls_listen = 127.0.0.1:853\ntls_cert = c\ntls_key = k\n",
         "takes the TCP port"},
        {"[server]\nlisten = [::1]:853\ntls_listen = [::]:853\ntls_cert = c\ntls_key = k\n",
         "takes the TCP port"},
    };
    for (size_t i = 0; i < sizeof finish_bad / sizeof *finish_bad; i++) {
        c = load(finish_bad[i][0], 0, err, sizeof err);
        config_set(c, "upstream", "servers", "192.0.2.9", err, sizeof err);
        err[0] = '\0';
        assert_int_equal(config_finish(c, "/nonexistent", err, sizeof err), -1);
        print_message("%s\n", err);
        assert_non_null(strstr(err, finish_bad[i][1]));
        config_destroy(c);
    }
    /* Other families and ports do not overlap. */
    c = load("[server]\nlisten = 0.0.0.0:853, 127.0.0.1:53\ntls_listen = [::]:853, 127.0.0.1:8853\n"
             "tls_cert = c\ntls_key = k\n",
             0, err, sizeof err);
    config_set(c, "upstream", "servers", "192.0.2.9", err, sizeof err);
    assert_int_equal(config_finish(c, "/nonexistent", err, sizeof err), 0);
    config_destroy(c);
}

/* [upstream] servers = tls://ADDR[:PORT][#NAME], mixed with plain servers; tls_ca. */
static void test_tls_upstreams(void **state)
{
    (void)state;
    char err[256], a[NETADDR_STRLEN + 300];
    struct config *c = load("[upstream]\nservers = tls://192.0.2.1#Dns.Example., 192.0.2.2, "
                            "TLS://[2001:db8::1]:8853, tls://192.0.2.3:853#192.0.2.30\n",
                            0, err, sizeof err);
    assert_int_equal(c->n_upstreams, 4);
    assert_int_equal(netaddr_port((struct sockaddr *)&c->upstreams[0]), 853);
    assert_string_equal(c->upstream_tls[0], "dns.example"); /* lower case, no trailing dot */
    assert_null(c->upstream_tls[1]);
    assert_int_equal(netaddr_port((struct sockaddr *)&c->upstreams[1]), 53);
    assert_string_equal(c->upstream_tls[2], "2001:db8::1"); /* no #NAME: the address */
    assert_string_equal(c->upstream_tls[3], "192.0.2.30");
    const char *shown[] = {"tls://192.0.2.1:853#dns.example", "192.0.2.2:53",
                           "tls://[2001:db8::1]:8853", "tls://192.0.2.3:853#192.0.2.30"};
    for (size_t i = 0; i < 4; i++) {
        config_format_upstream(c, i, a, sizeof a);
        assert_string_equal(a, shown[i]);
    }
    assert_null(c->upstream_tls_ctx);
    assert_int_equal(config_finish(c, "/nonexistent", err, sizeof err), 0);
    assert_non_null(c->upstream_tls_ctx); /* the system store */
    /* A flag replaces the list, names and all. */
    assert_int_equal(config_set(c, "upstream", "servers", "192.0.2.9", err, sizeof err), 0);
    assert_int_equal(c->n_upstreams, 1);
    assert_null(c->upstream_tls[0]);
    config_destroy(c);

    /* tls_ca: loaded when read. */
    char ca[] = "/tmp/telesink-test-ca-XXXXXX";
    int fd = mkstemp(ca);
    assert_true(fd >= 0);
    close(fd);
    EVP_PKEY *k = tc_key();
    X509 *x = tc_cert(k, "test CA", NULL, 1, NULL, NULL);
    tc_write(ca, x, NULL);
    X509_free(x);
    EVP_PKEY_free(k);
    char text[256];
    snprintf(text, sizeof text, "[upstream]\ntls_ca = %s\nservers = tls://192.0.2.1#a.example\n",
             ca);
    c = load(text, 0, err, sizeof err);
    assert_string_equal(c->tls_ca, ca);
    assert_non_null(c->upstream_tls_ctx);
    assert_int_equal(config_finish(c, "/nonexistent", err, sizeof err), 0);
    config_destroy(c);
    unlink(ca);

    expect_error("[upstream]\n\ntls_ca = /nonexistent/ca.pem\n",
                 "t.conf:3: tls_ca: '/nonexistent/ca.pem': No such file");
    expect_error("[upstream]\ntls_ca = /tmp\n", "t.conf:2: tls_ca: '/tmp': not a regular file");
    expect_error("[upstream]\ntls_ca = /dev/null\n", "not a regular file");
    expect_error("[upstream]\nservers = 192.0.2.1#dns.example\n",
                 "t.conf:2: upstream: '192.0.2.1#dns.example': DNS over TLS is tls://");
    expect_error("[upstream]\nservers = https://192.0.2.1\n", "DNS over TLS is tls://");
    expect_error("[upstream]\nservers = tls://dns.example\n",
                 "t.conf:2: upstream: 'tls://dns.example' is not tls://ADDR[:PORT]#NAME");
    expect_error("[upstream]\nservers = tls://192.0.2.1:0#a.example\n", "is not tls://");
    const char *bad_names[] = {"tls://192.0.2.1#", "tls://192.0.2.1#a..example",
                               "tls://192.0.2.1#a!b", "tls://192.0.2.1#a/b", "tls://192.0.2.1#."};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        snprintf(text, sizeof text, "[upstream]\nservers = %s\n", bad_names[i]);
        expect_error(text, "is not a host name to verify");
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
        cmocka_unit_test(test_tls_listen),
        cmocka_unit_test(test_tls_upstreams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
