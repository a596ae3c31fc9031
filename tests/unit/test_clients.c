/* Unit tests for client identity: Client Subnet and add-mac options, [clients] names, neighbours.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "clients.h"
#include "config.h"
#include "dnsmsg.h"
#include "neigh.h"

/* ---- a query builder: header, question, an OPT record with options ---- */

struct pkt {
    uint8_t b[1024];
    size_t n;
    size_t rdlen_at; /* where the OPT's RDLENGTH goes */
};

static void put8(struct pkt *p, uint8_t v)
{
    p->b[p->n++] = v;
}

static void put16(struct pkt *p, uint16_t v)
{
    put8(p, (uint8_t)(v >> 8));
    put8(p, (uint8_t)v);
}

static void put_bytes(struct pkt *p, const void *data, size_t len)
{
    memcpy(p->b + p->n, data, len);
    p->n += len;
}

/* A query for example.com A with an empty OPT record; add_option() appends to it. */
static void start_query(struct pkt *p)
{
    static const uint8_t hdr[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1};
    static const uint8_t q[] = "\7example\3com\0\0\1\0\1";
    p->n = 0;
    put_bytes(p, hdr, sizeof hdr);
    put_bytes(p, q, sizeof q - 1);
    put8(p, 0);         /* owner: root */
    put16(p, TYPE_OPT); /* type */
    put16(p, 1232);     /* UDP size */
    put16(p, 0);        /* extended rcode, version */
    put16(p, 0);        /* flags */
    p->rdlen_at = p->n;
    put16(p, 0);
}

static void add_option(struct pkt *p, uint16_t code, const void *data, size_t len)
{
    put16(p, code);
    put16(p, (uint16_t)len);
    put_bytes(p, data, len);
    size_t rdlen = p->n - p->rdlen_at - 2;
    p->b[p->rdlen_at] = (uint8_t)(rdlen >> 8);
    p->b[p->rdlen_at + 1] = (uint8_t)rdlen;
}

static void add_text_option(struct pkt *p, uint16_t code, const char *text)
{
    add_option(p, code, text, strlen(text));
}

/* Client Subnet: FAMILY, SOURCE PREFIX-LENGTH, SCOPE 0, then the address bytes given. */
static void add_ecs(struct pkt *p, uint16_t family, uint8_t prefix, const uint8_t *addr,
                    size_t addr_len)
{
    uint8_t data[4 + 32];
    data[0] = (uint8_t)(family >> 8);
    data[1] = (uint8_t)family;
    data[2] = prefix;
    data[3] = 0;
    if (addr_len > 0)
        memcpy(data + 4, addr, addr_len);
    add_option(p, EDNS_OPT_ECS, data, 4 + addr_len);
}

static void add_cookie_and_padding(struct pkt *p, bool cookie, bool padding)
{
    static const uint8_t cookie_bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t pad[13];
    if (cookie)
        add_option(p, 10, cookie_bytes, sizeof cookie_bytes);
    if (padding)
        add_option(p, 12, pad, sizeof pad);
}

static const uint8_t MAC_A[6] = {0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
static const uint8_t MAC_B[6] = {0x02, 0x00, 0x5e, 0x10, 0x20, 0x30};

/* The packet came from 198.51.100.7:4242 (a trusted forwarder); read its options into id. */
static int run(const struct pkt *p, struct client_id *id)
{
    struct dnsmsg_query q;
    assert_int_equal(dnsmsg_parse_query(p->b, p->n, &q), DNSMSG_OK);
    assert_true(q.edns);
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = htons(4242)};
    inet_pton(AF_INET, "198.51.100.7", &src.sin_addr);
    clients_from_source((const struct sockaddr *)&src, id);
    return clients_from_edns(p->b, p->n, &q, id);
}

static void assert_addr(const struct client_id *id, const char *text, uint8_t prefix)
{
    char buf[NETADDR_STRLEN];
    netaddr_format((const struct sockaddr *)&id->addr, false, buf, sizeof buf);
    assert_string_equal(buf, text);
    assert_int_equal(id->prefix, prefix);
    assert_int_equal(netaddr_port((const struct sockaddr *)&id->addr), 4242);
}

/* Nothing taken: still the forwarder's own address, no MAC, not from EDNS. */
static void assert_untouched(const struct client_id *id)
{
    assert_addr(id, "198.51.100.7", 32);
    assert_false(id->has_mac);
    assert_false(id->from_edns);
}

/* ---- the packet's source ---- */

static void test_from_source(void **state)
{
    (void)state;
    struct client_id id;
    struct sockaddr_storage ss;

    assert_int_equal(netaddr_parse("192.0.2.9:53000", 53, &ss), 0);
    clients_from_source((const struct sockaddr *)&ss, &id);
    assert_int_equal(id.addr.ss_family, AF_INET);
    assert_int_equal(id.prefix, 32);
    assert_false(id.has_mac);
    assert_false(id.from_edns);
    assert_true(netaddr_equal((const struct sockaddr *)&id.addr, (const struct sockaddr *)&ss));

    assert_int_equal(netaddr_parse("[2001:db8::7]:5300", 53, &ss), 0);
    clients_from_source((const struct sockaddr *)&ss, &id);
    assert_int_equal(id.addr.ss_family, AF_INET6);
    assert_int_equal(id.prefix, 128);
    assert_true(netaddr_equal((const struct sockaddr *)&id.addr, (const struct sockaddr *)&ss));

    /* A v4-mapped source (a dual-stack socket) is the IPv4 device. */
    assert_int_equal(netaddr_parse("[::ffff:192.0.2.9]:5300", 53, &ss), 0);
    clients_from_source((const struct sockaddr *)&ss, &id);
    assert_int_equal(id.addr.ss_family, AF_INET);
    assert_int_equal(id.prefix, 32);
    char buf[NETADDR_STRLEN];
    netaddr_format((const struct sockaddr *)&id.addr, true, buf, sizeof buf);
    assert_string_equal(buf, "192.0.2.9:5300");
}

/* ---- Client Subnet ---- */

static void test_ecs_v4_24(void **state)
{
    (void)state;
    struct pkt p;
    struct client_id id;
    start_query(&p);
    add_ecs(&p, 1, 24, (const uint8_t[]){192, 0, 2}, 3);
    assert_int_equal(run(&p, &id), CLIENTS_ECS);
    assert_addr(&id, "192.0.2.0", 24);
    assert_true(id.from_edns);
    assert_false(id.has_mac);
}

static void test_ecs_v4_32(void **state)
{
    (void)state;
    struct pkt p;
    struct client_id id;
    start_query(&p);
    add_ecs(&p, 1, 32, (const uint8_t[]){10, 1, 2, 3}, 4);
    assert_int_equal(run(&p, &id), CLIENTS_ECS);
    assert_addr(&id, "10.1.2.3", 32);
    assert_true(id.from_edns);

    /* A prefix that is not a multiple of 8, bits past it zero. */
    start_query(&p);
    add_ecs(&p, 1, 20, (const uint8_t[]){10, 1, 0x20}, 3);
    assert_int_equal(run(&p, &id), CLIENTS_ECS);
    assert_addr(&id, "10.1.32.0", 20);
}

static void test_ecs_v6_56(void **state)
{
    (void)state;
    struct pkt p;
    struct client_id id;
    start_query(&p);
    add_ecs(&p, 2, 56, (const uint8_t[]){0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56}, 7);
    assert_int_equal(run(&p, &id), CLIENTS_ECS);
    assert_int_equal(id.addr.ss_family, AF_INET6);
    assert_addr(&id, "2001:db8:1234:5600::", 56);
    assert_true(id.from_edns);
}

static void test_ecs_v6_128(void **state)
{
    (void)state;
    struct pkt p;
    struct client_id id;
    uint8_t a[16];
    inet_pton(AF_INET6, "2001:db8::1:2", a);
    start_query(&p);
    add_ecs(&p, 2, 128, a, 16);
    assert_int_equal(run(&p, &id), CLIENTS_ECS);
    assert_addr(&id, "2001:db8::1:2", 128);
}

static void test_ecs_malformed(void **state)
{
    (void)state;
    struct pkt p;
    struct client_id id;
    static const uint8_t v4[5] = {192, 0, 2, 1, 9};
    static const uint8_t v6[17] = {0x20, 0x01, 0x0d, 0xb8};

    /* Shorter than FAMILY, SOURCE and SCOPE. */
    start_query(&p);
    add_option(&p, EDNS_OPT_ECS, (const uint8_t[]){0, 1, 24}, 3);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);

    /* Fewer address bytes than the prefix needs. */
    start_query(&p);
    add_ecs(&p, 1, 24, v4, 2);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);

    /* More address bytes than the prefix needs. */
    start_query(&p);
    add_ecs(&p, 1, 24, v4, 4);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);

    /* Prefix 33 for IPv4 (with the 5 bytes it would need), 129 for IPv6. */
    start_query(&p);
    add_ecs(&p, 1, 33, v4, 5);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);
    start_query(&p);
    add_ecs(&p, 2, 129, v6, 17);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);

    /* Non-zero bits past the prefix: 192.0.3.0/23 and 192.0.2.1/31. */
    start_query(&p);
    add_ecs(&p, 1, 23, (const uint8_t[]){192, 0, 3}, 3);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);
    start_query(&p);
    add_ecs(&p, 1, 31, (const uint8_t[]){192, 0, 2, 1}, 4);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);

    /* Unknown families. */
    start_query(&p);
    add_ecs(&p, 3, 24, v4, 3);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);
    start_query(&p);
    add_ecs(&p, 0, 24, v4, 3);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);
}

static void test_ecs_prefix_zero(void **state)
{
    (void)state;
    struct pkt p;
    struct client_id id;
    /* dnsmasq's default --add-subnet: well-formed, but it names no device. */
    start_query(&p);
    add_ecs(&p, 1, 0, NULL, 0);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);
    start_query(&p);
    add_ecs(&p, 2, 0, NULL, 0);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);
}

static void test_ecs_first_wellformed_counts(void **state)
{
    (void)state;
    struct pkt p;
    struct client_id id;
    start_query(&p);
    add_ecs(&p, 1, 24, (const uint8_t[]){192, 0, 2, 7}, 4); /* malformed: skipped */
    add_ecs(&p, 1, 32, (const uint8_t[]){192, 0, 2, 7}, 4);
    add_ecs(&p, 1, 32, (const uint8_t[]){192, 0, 2, 8}, 4);
    assert_int_equal(run(&p, &id), CLIENTS_ECS);
    assert_addr(&id, "192.0.2.7", 32);
}

/* ---- add-mac ---- */

static void test_mac_binary(void **state)
{
    (void)state;
    struct pkt p;
    struct client_id id;
    start_query(&p);
    add_option(&p, EDNS_OPT_MAC, MAC_A, 6);
    assert_int_equal(run(&p, &id), CLIENTS_MAC);
    assert_true(id.has_mac);
    assert_memory_equal(id.mac, MAC_A, 6);
    assert_true(id.from_edns);
    assert_addr(&id, "198.51.100.7", 32); /* the address stays the packet's source */
}

static void test_mac_text(void **state)
{
    (void)state;
    static const char *const forms[] = {"aa:bb:cc:dd:ee:ff", "AA:BB:CC:DD:EE:FF",
                                        "aa-bb-cc-dd-ee-ff", "Aa-bB-cC-Dd-eE-Ff"};
    static const uint16_t codes[] = {EDNS_OPT_MAC, EDNS_OPT_DEVICEID};
    for (size_t c = 0; c < 2; c++) {
        for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
            struct pkt p;
            struct client_id id;
            start_query(&p);
            add_text_option(&p, codes[c], forms[i]);
            assert_int_equal(run(&p, &id), CLIENTS_MAC);
            assert_true(id.has_mac);
            assert_memory_equal(id.mac, MAC_A, 6);
            assert_true(id.from_edns);
        }
    }
}

static void test_mac_base64(void **state)
{
    (void)state;
    struct pkt p;
    struct client_id id;
    /* aa:bb:cc:dd:ee:ff as dnsmasq --add-mac=base64 encodes it (option 65073). */
    start_query(&p);
    add_text_option(&p, EDNS_OPT_DEVICEID, "qrvM3e7/");
    assert_int_equal(run(&p, &id), CLIENTS_MAC);
    assert_memory_equal(id.mac, MAC_A, 6);

    /* And in 65001. */
    start_query(&p);
    add_text_option(&p, EDNS_OPT_MAC, "qrvM3e7/");
    assert_int_equal(run(&p, &id), CLIENTS_MAC);
    assert_memory_equal(id.mac, MAC_A, 6);

    /* 02:00:5e:10:20:30 uses '+'-free, digit-bearing characters. */
    start_query(&p);
    add_text_option(&p, EDNS_OPT_DEVICEID, "AgBeECAw");
    assert_int_equal(run(&p, &id), CLIENTS_MAC);
    assert_memory_equal(id.mac, MAC_B, 6);
}

static void test_mac_malformed(void **state)
{
    (void)state;
    static const char *const bad_text[] = {
        "aa:bb:cc:dd:ee:f",   /* 16 bytes */
        "aa:bb:cc:dd:ee:ff:", /* 18 bytes */
        "aa:bb:cc:dd:ee:gg",  /* not hex */
        "aa:bb-cc:dd:ee:ff",  /* mixed separators */
        "aa.bb.cc.dd.ee.ff",  /* another separator */
        "qrvM3e7=",           /* base64 padding */
        "qrvM3e7!",           /* outside the alphabet */
        "qrvM3e-_",           /* the URL-safe alphabet */
        "qrvM3e7",            /* 7 characters */
        "00:00:00:00:00:00",  /* no MAC at all */
        "AAAAAAAA",           /* the same in base64 */
    };
    for (size_t i = 0; i < sizeof bad_text / sizeof bad_text[0]; i++) {
        struct pkt p;
        struct client_id id;
        start_query(&p);
        add_text_option(&p, EDNS_OPT_DEVICEID, bad_text[i]);
        add_text_option(&p, EDNS_OPT_MAC, bad_text[i]);
        assert_int_equal(run(&p, &id), 0);
        assert_untouched(&id);
    }

    struct pkt p;
    struct client_id id;
    static const uint8_t raw[8] = {0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01, 0x02};
    /* Binary of the wrong length: 5, 7, 0 bytes. */
    start_query(&p);
    add_option(&p, EDNS_OPT_MAC, raw, 5);
    add_option(&p, EDNS_OPT_MAC, raw, 7);
    add_option(&p, EDNS_OPT_MAC, raw, 0);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);
    /* 6 raw bytes are not a form of 65073 (text or base64 only). */
    start_query(&p);
    add_option(&p, EDNS_OPT_DEVICEID, raw, 6);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);
    /* An all-zero binary MAC. */
    start_query(&p);
    add_option(&p, EDNS_OPT_MAC, (const uint8_t[6]){0}, 6);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);
}

static void test_mac_65001_wins(void **state)
{
    (void)state;
    struct pkt p;
    struct client_id id;
    /* --add-mac and --add-mac=text together: the binary option, whatever the order. */
    start_query(&p);
    add_text_option(&p, EDNS_OPT_DEVICEID, "aa:bb:cc:dd:ee:ff");
    add_option(&p, EDNS_OPT_MAC, MAC_B, 6);
    assert_int_equal(run(&p, &id), CLIENTS_MAC);
    assert_memory_equal(id.mac, MAC_B, 6);

    start_query(&p);
    add_option(&p, EDNS_OPT_MAC, MAC_B, 6);
    add_text_option(&p, EDNS_OPT_DEVICEID, "aa:bb:cc:dd:ee:ff");
    assert_int_equal(run(&p, &id), CLIENTS_MAC);
    assert_memory_equal(id.mac, MAC_B, 6);

    /* A malformed 65001 does not hide a good 65073. */
    start_query(&p);
    add_option(&p, EDNS_OPT_MAC, MAC_B, 5);
    add_text_option(&p, EDNS_OPT_DEVICEID, "qrvM3e7/");
    assert_int_equal(run(&p, &id), CLIENTS_MAC);
    assert_memory_equal(id.mac, MAC_A, 6);
}

/* ---- both, in any order, among other options ---- */

static void test_both_any_order(void **state)
{
    (void)state;
    const uint8_t net[3] = {192, 168, 7};
    for (int order = 0; order < 4; order++) {
        struct pkt p;
        struct client_id id;
        start_query(&p);
        switch (order) {
        case 0: /* cookie, ECS, padding, MAC */
            add_cookie_and_padding(&p, true, false);
            add_ecs(&p, 1, 24, net, 3);
            add_cookie_and_padding(&p, false, true);
            add_option(&p, EDNS_OPT_MAC, MAC_A, 6);
            break;
        case 1: /* MAC, padding, ECS, cookie */
            add_option(&p, EDNS_OPT_MAC, MAC_A, 6);
            add_cookie_and_padding(&p, false, true);
            add_ecs(&p, 1, 24, net, 3);
            add_cookie_and_padding(&p, true, false);
            break;
        case 2: /* ECS, MAC (base64), then cookie and padding */
            add_ecs(&p, 1, 24, net, 3);
            add_text_option(&p, EDNS_OPT_DEVICEID, "qrvM3e7/");
            add_cookie_and_padding(&p, true, true);
            break;
        default: /* cookie and padding, MAC (text), ECS */
            add_cookie_and_padding(&p, true, true);
            add_text_option(&p, EDNS_OPT_DEVICEID, "AA-BB-CC-DD-EE-FF");
            add_ecs(&p, 1, 24, net, 3);
            break;
        }
        assert_int_equal(run(&p, &id), CLIENTS_ECS | CLIENTS_MAC);
        assert_addr(&id, "192.168.7.0", 24);
        assert_true(id.has_mac);
        assert_memory_equal(id.mac, MAC_A, 6);
        assert_true(id.from_edns);
    }
}

static void test_no_options(void **state)
{
    (void)state;
    struct pkt p;
    struct client_id id;
    /* An OPT record with no options, then one with only a cookie and padding. */
    start_query(&p);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);
    add_cookie_and_padding(&p, true, true);
    assert_int_equal(run(&p, &id), 0);
    assert_untouched(&id);

    /* No EDNS at all. */
    static const uint8_t plain[] = "\x12\x34\x01\x00\0\1\0\0\0\0\0\0\7example\3com\0\0\1\0\1";
    struct dnsmsg_query q;
    assert_int_equal(dnsmsg_parse_query(plain, sizeof plain - 1, &q), DNSMSG_OK);
    assert_int_equal(clients_from_edns(plain, sizeof plain - 1, &q, &id), 0);
}

/* ---- MAC text ---- */

static void test_format_parse_mac(void **state)
{
    (void)state;
    char buf[CLIENTS_MAC_STRLEN];
    clients_format_mac(MAC_A, buf);
    assert_string_equal(buf, "aa:bb:cc:dd:ee:ff");
    clients_format_mac(MAC_B, buf);
    assert_string_equal(buf, "02:00:5e:10:20:30");

    uint8_t mac[6];
    assert_int_equal(clients_parse_mac("aa:bb:cc:dd:ee:ff", mac), 0);
    assert_memory_equal(mac, MAC_A, 6);
    assert_int_equal(clients_parse_mac("AA-BB-CC-DD-EE-FF", mac), 0);
    assert_memory_equal(mac, MAC_A, 6);
    assert_int_equal(clients_parse_mac("02:00:5E:10:20:30", mac), 0);
    assert_memory_equal(mac, MAC_B, 6);

    static const char *const bad[] = {"",
                                      "aa:bb:cc:dd:ee",
                                      "aa:bb:cc:dd:ee:ff0",
                                      "aa:bb:cc:dd:ee:ff:00",
                                      "aabb.ccdd.eeff",
                                      "aa:bb:cc:dd:ee:gg",
                                      "aa:bb-cc:dd:ee:ff",
                                      "a:bb:cc:dd:ee:fff",
                                      " aa:bb:cc:dd:ee:f",
                                      "192.168.1.1"};
    memcpy(mac, MAC_B, 6);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(clients_parse_mac(bad[i], mac), -1);
        assert_memory_equal(mac, MAC_B, 6); /* untouched on failure */
    }
}

/* ---- [clients] names ---- */

static void id_for(const char *addr, const uint8_t *mac, struct client_id *id)
{
    struct sockaddr_storage ss;
    assert_int_equal(netaddr_parse(addr, 53, &ss), 0);
    clients_from_source((const struct sockaddr *)&ss, id);
    if (mac) {
        id->has_mac = true;
        memcpy(id->mac, mac, 6);
    }
}

static void test_clients_name(void **state)
{
    (void)state;
    struct config *c = config_create();
    assert_non_null(c);
    char err[256];
    assert_int_equal(config_set(c, "clients", "192.168.1.23", "redmi-note-8", err, sizeof err), 0);
    assert_int_equal(config_set(c, "clients", "2001:db8::5", "laptop", err, sizeof err), 0);
    assert_int_equal(config_set(c, "clients", "192.168.1.0/24", "lan", err, sizeof err), 0);
    /* The MAC keys come last, and still win. */
    assert_int_equal(
        config_set(c, "clients", "aa:bb:cc:dd:ee:ff", "living-room-tv", err, sizeof err), 0);
    assert_int_equal(config_set(c, "clients", "02-00-5E-10-20-30", "printer", err, sizeof err), 0);
    assert_int_equal(config_set(c, "clients", "not-an-address", "ignored", err, sizeof err), 0);

    struct client_id id;
    id_for("192.168.1.23", NULL, &id);
    assert_string_equal(clients_name(c, &id), "redmi-note-8");
    id_for("[::ffff:192.168.1.23]:5353", NULL, &id);
    assert_string_equal(clients_name(c, &id), "redmi-note-8");
    id_for("2001:db8::5", NULL, &id);
    assert_string_equal(clients_name(c, &id), "laptop");
    id_for("2001:db8::6", NULL, &id);
    assert_null(clients_name(c, &id));

    /* Longest prefix among address keys. */
    id_for("192.168.1.99", NULL, &id);
    assert_string_equal(clients_name(c, &id), "lan");
    id_for("10.0.0.1", NULL, &id);
    assert_null(clients_name(c, &id));

    /* A MAC wins over an address, in either case and separator. */
    id_for("192.168.1.23", MAC_A, &id);
    assert_string_equal(clients_name(c, &id), "living-room-tv");
    id_for("2001:db8::5", MAC_B, &id);
    assert_string_equal(clients_name(c, &id), "printer");
    /* An unknown MAC falls back to the address. */
    static const uint8_t other[6] = {0x02, 0, 0, 0, 0, 1};
    id_for("192.168.1.23", other, &id);
    assert_string_equal(clients_name(c, &id), "redmi-note-8");

    /* An ECS /24 is not the /32 device, but it is the /24 network. */
    id_for("192.168.1.23", NULL, &id);
    ((struct sockaddr_in *)&id.addr)->sin_addr.s_addr = htonl(0xC0A80100);
    id.prefix = 24;
    assert_string_equal(clients_name(c, &id), "lan");
    id.prefix = 16;
    assert_null(clients_name(c, &id));

    /* No [clients] at all. */
    struct config *empty = config_create();
    assert_non_null(empty);
    id_for("192.168.1.23", MAC_A, &id);
    assert_null(clients_name(empty, &id));
    config_destroy(empty);
    config_destroy(c);
}

/* ---- the kernel's neighbour table ---- */

static void test_neigh_loopback(void **state)
{
    (void)state;
    neigh_destroy(NULL);
    struct neigh *n = neigh_create(1000);
    assert_non_null(n);
    uint8_t mac[6];
    struct sockaddr_storage ss;
    assert_int_equal(netaddr_parse("127.0.0.1", 53, &ss), 0);
    assert_false(neigh_lookup(n, (const struct sockaddr *)&ss, 1, mac));
    assert_false(neigh_lookup(n, (const struct sockaddr *)&ss, 2, mac));    /* no new dump */
    assert_false(neigh_lookup(n, (const struct sockaddr *)&ss, 5000, mac)); /* dumps again */
    assert_int_equal(netaddr_parse("::1", 53, &ss), 0);
    assert_false(neigh_lookup(n, (const struct sockaddr *)&ss, 10000, mac));
    assert_int_equal(netaddr_parse("[::ffff:127.0.0.1]:53", 53, &ss), 0);
    assert_false(neigh_lookup(n, (const struct sockaddr *)&ss, 20000, mac));
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    assert_false(neigh_lookup(n, &unspec, 30000, mac));
    neigh_destroy(n);
}

/* An entry `ip neigh` shows with a usable link-layer address: 0, or -1 when there is none. */
static int ip_neigh_entry(char *addr, size_t addr_len, uint8_t mac[6])
{
    FILE *f = popen("ip neigh show 2>/dev/null", "r");
    if (!f)
        return -1;
    char line[512];
    int rc = -1;
    while (rc < 0 && fgets(line, sizeof line, f)) {
        char a[128], lladdr[64];
        const char *ll = strstr(line, " lladdr ");
        if (!ll || strstr(line, "FAILED") || strstr(line, "INCOMPLETE"))
            continue;
        if (sscanf(line, "%127s", a) != 1 || sscanf(ll, " lladdr %63s", lladdr) != 1)
            continue;
        if (clients_parse_mac(lladdr, mac) < 0 || memcmp(mac, (uint8_t[6]){0}, 6) == 0)
            continue;
        snprintf(addr, addr_len, "%s", a);
        rc = 0;
    }
    pclose(f);
    return rc;
}

static void test_neigh_kernel_entry(void **state)
{
    (void)state;
    char addr[128];
    uint8_t want[6], got[6];
    struct sockaddr_storage ss;
    if (ip_neigh_entry(addr, sizeof addr, want) < 0 || netaddr_parse(addr, 53, &ss) < 0) {
        skip(); /* no neighbour with a MAC on this machine */
        return;
    }
    struct neigh *n = neigh_create(1000);
    assert_non_null(n);
    bool found = neigh_lookup(n, (const struct sockaddr *)&ss, 1, got);
    if (!found) {
        /* The entry may have been garbage-collected since `ip neigh` ran. */
        char again[128];
        uint8_t mac2[6];
        if (ip_neigh_entry(again, sizeof again, mac2) == 0 && strcmp(again, addr) == 0)
            fail_msg("neighbour %s not found", addr);
    } else {
        assert_memory_equal(got, want, 6);
        /* Found again from the table, without a dump. */
        memset(got, 0, 6);
        assert_true(neigh_lookup(n, (const struct sockaddr *)&ss, 2, got));
        assert_memory_equal(got, want, 6);
    }
    neigh_destroy(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_source),
        cmocka_unit_test(test_ecs_v4_24),
        cmocka_unit_test(test_ecs_v4_32),
        cmocka_unit_test(test_ecs_v6_56),
        cmocka_unit_test(test_ecs_v6_128),
        cmocka_unit_test(test_ecs_malformed),
        cmocka_unit_test(test_ecs_prefix_zero),
        cmocka_unit_test(test_ecs_first_wellformed_counts),
        cmocka_unit_test(test_mac_binary),
        cmocka_unit_test(test_mac_text),
        cmocka_unit_test(test_mac_base64),
        cmocka_unit_test(test_mac_malformed),
        cmocka_unit_test(test_mac_65001_wins),
        cmocka_unit_test(test_both_any_order),
        cmocka_unit_test(test_no_options),
        cmocka_unit_test(test_format_parse_mac),
        cmocka_unit_test(test_clients_name),
        cmocka_unit_test(test_neigh_loopback),
        cmocka_unit_test(test_neigh_kernel_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
