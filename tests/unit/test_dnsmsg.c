/* Unit tests for the pure packet module: query checks, error answers, reply rewriting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dnsmsg.h"

/* ---- a small packet builder ---- */

struct pkt {
    uint8_t b[4096];
    size_t n;
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

static void put32(struct pkt *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p, (uint16_t)v);
}

static void put_name(struct pkt *p, const char *dotted)
{
    while (*dotted) {
        const char *dot = strchr(dotted, '.');
        size_t l = dot ? (size_t)(dot - dotted) : strlen(dotted);
        put8(p, (uint8_t)l);
        memcpy(p->b + p->n, dotted, l);
        p->n += l;
        dotted += l + (dot ? 1 : 0);
    }
    put8(p, 0);
}

static void header(struct pkt *p, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an,
                   uint16_t ns, uint16_t ar)
{
    p->n = 0;
    put16(p, id);
    put16(p, flags);
    put16(p, qd);
    put16(p, an);
    put16(p, ns);
    put16(p, ar);
}

static void question(struct pkt *p, const char *name, uint16_t type)
{
    put_name(p, name);
    put16(p, type);
    put16(p, 1);
}

static void opt(struct pkt *p, uint16_t size, uint8_t ext_rcode, uint8_t version, bool do_bit)
{
    put8(p, 0);
    put16(p, TYPE_OPT);
    put16(p, size);
    put32(p, (uint32_t)ext_rcode << 24 | (uint32_t)version << 16 | (do_bit ? 0x8000u : 0));
    put16(p, 0);
}

static void simple_query(struct pkt *p, const char *name, uint16_t type, bool edns)
{
    header(p, 0xABCD, 0x0100, 1, 0, 0, edns ? 1 : 0);
    question(p, name, type);
    if (edns)
        opt(p, 4096, 0, 0, true);
}

static uint16_t get16(const uint8_t *b)
{
    return (uint16_t)(b[0] << 8 | b[1]);
}

/* ---- query checks ---- */

static void test_parse_ok_keeps_case(void **state)
{
    (void)state;
    struct pkt p;
    simple_query(&p, "WwW.ExAmple.COM", TYPE_AAAA, false);
    struct dnsmsg_query q;
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_OK);
    assert_int_equal(q.id, 0xABCD);
    assert_true(q.rd);
    assert_int_equal(q.qtype, TYPE_AAAA);
    assert_int_equal(q.qname_len, 17);
    assert_memory_equal(q.qname, "\3WwW\7ExAmple\3COM\0", 17);
    assert_false(q.edns);
    assert_int_equal(q.udp_size, 512);
}

static void test_parse_edns(void **state)
{
    (void)state;
    struct pkt p;
    simple_query(&p, "example.com", TYPE_A, true);
    struct dnsmsg_query q;
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_OK);
    assert_true(q.edns);
    assert_true(q.do_bit);
    assert_int_equal(q.udp_size, 4096);

    /* Sizes below 512 count as 512. */
    header(&p, 1, 0x0100, 1, 0, 0, 1);
    question(&p, "example.com", TYPE_A);
    opt(&p, 100, 0, 0, false);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_OK);
    assert_int_equal(q.udp_size, 512);
    assert_false(q.do_bit);
}

static void test_parse_drop(void **state)
{
    (void)state;
    struct pkt p;
    struct dnsmsg_query q;
    simple_query(&p, "example.com", TYPE_A, false);
    assert_int_equal(dnsmsg_parse_query(p.b, 11, &q), DNSMSG_DROP);
    p.b[2] |= 0x80; /* QR */
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_DROP);
}

static void test_parse_formerr(void **state)
{
    (void)state;
    struct pkt p;
    struct dnsmsg_query q;

    header(&p, 1, 0x0100, 0, 0, 0, 0); /* no question */
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_FORMERR);
    assert_false(q.has_question);

    header(&p, 1, 0x0100, 2, 0, 0, 0); /* two questions */
    question(&p, "a.example", TYPE_A);
    question(&p, "b.example", TYPE_A);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_FORMERR);

    simple_query(&p, "example.com", TYPE_A, false); /* cut inside the name */
    assert_int_equal(dnsmsg_parse_query(p.b, 16, &q), DNSMSG_FORMERR);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n - 1, &q), DNSMSG_FORMERR);

    header(&p, 1, 0x0100, 1, 0, 0, 0); /* a compression pointer in the question */
    put16(&p, 0xC000);
    put16(&p, TYPE_A);
    put16(&p, 1);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_FORMERR);

    header(&p, 1, 0x0100, 1, 0, 0, 0); /* a name longer than 255 bytes */
    for (int i = 0; i < 5; i++) {
        put8(&p, 63);
        memset(p.b + p.n, 'a', 63);
        p.n += 63;
    }
    put8(&p, 0);
    put16(&p, TYPE_A);
    put16(&p, 1);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_FORMERR);

    simple_query(&p, "example.com", TYPE_A, false); /* trailing garbage */
    put8(&p, 0xFF);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_FORMERR);

    header(&p, 1, 0x0100, 1, 1, 0, 0); /* an answer record in a query */
    question(&p, "example.com", TYPE_A);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_FORMERR);

    header(&p, 1, 0x0100, 1, 0, 0, 2); /* two additional records */
    question(&p, "example.com", TYPE_A);
    opt(&p, 1232, 0, 0, false);
    opt(&p, 1232, 0, 0, false);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_FORMERR);
    assert_true(q.has_question); /* the FORMERR still echoes the question */

    header(&p, 1, 0x0100, 1, 0, 0, 1); /* a TSIG record */
    question(&p, "example.com", TYPE_A);
    put_name(&p, "key.example");
    put16(&p, TYPE_TSIG);
    put16(&p, 255);
    put32(&p, 0);
    put16(&p, 0);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_FORMERR);

    header(&p, 1, 0x0100, 1, 0, 0, 1); /* an OPT whose option overruns its RDATA */
    question(&p, "example.com", TYPE_A);
    put8(&p, 0);
    put16(&p, TYPE_OPT);
    put16(&p, 1232);
    put32(&p, 0);
    put16(&p, 4);
    put16(&p, 10);
    put16(&p, 8); /* says 8 bytes of data, has 0 */
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_FORMERR);
}

static void test_parse_notimp_badvers_refused(void **state)
{
    (void)state;
    struct pkt p;
    struct dnsmsg_query q;
    header(&p, 1, 0x2000 | 0x0100, 1, 0, 0, 0); /* opcode 4 (NOTIFY) */
    question(&p, "example.com", TYPE_SOA);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_NOTIMP);
    assert_int_equal(q.opcode, 4);

    header(&p, 1, 0x0100, 1, 0, 0, 1);
    question(&p, "example.com", TYPE_A);
    opt(&p, 1232, 0, 1, false);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_BADVERS);
    assert_true(q.edns);

    simple_query(&p, "example.com", TYPE_AXFR, false);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_REFUSED);
}

static void test_parse_dotted_label(void **state)
{
    (void)state;
    /* "a.b" as one label stays one label of length 3. */
    struct pkt p;
    header(&p, 1, 0x0100, 1, 0, 0, 0);
    put8(&p, 3);
    memcpy(p.b + p.n, "a.b", 3);
    p.n += 3;
    put_name(&p, "example");
    put16(&p, TYPE_A);
    put16(&p, 1);
    struct dnsmsg_query q;
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_OK);
    assert_int_equal(q.qname[0], 3);
    assert_int_equal(q.qname_len, 4 + 8 + 1);
}

/* ---- error answers ---- */

static void test_error_reply_flags(void **state)
{
    (void)state;
    struct pkt p;
    simple_query(&p, "Example.com", TYPE_A, false);
    p.b[2] |= 0x04;        /* AA set by the client: never echoed */
    p.b[3] |= 0x40 | 0x10; /* Z and CD */
    struct dnsmsg_query q;
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_OK);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_error_reply(&q, RCODE_REFUSED, out, sizeof out);
    assert_int_equal(n, p.n);
    assert_int_equal(get16(out), 0xABCD);
    uint16_t flags = get16(out + 2);
    assert_true(flags & 0x8000);  /* QR */
    assert_false(flags & 0x0400); /* AA */
    assert_true(flags & 0x0100);  /* RD copied */
    assert_true(flags & 0x0080);  /* RA */
    assert_false(flags & 0x0040); /* Z */
    assert_true(flags & 0x0010);  /* CD copied */
    assert_int_equal(flags & 0x0F, RCODE_REFUSED);
    assert_int_equal(get16(out + 4), 1);
    assert_int_equal(get16(out + 10), 0);              /* no OPT without EDNS */
    assert_memory_equal(out + 12, p.b + 12, p.n - 12); /* question echoed, case kept */
}

static void test_error_reply_badvers(void **state)
{
    (void)state;
    struct pkt p;
    header(&p, 7, 0x0100, 1, 0, 0, 1);
    question(&p, "example.com", TYPE_A);
    opt(&p, 1232, 0, 2, true);
    struct dnsmsg_query q;
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_BADVERS);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_error_reply(&q, RCODE_BADVERS, out, sizeof out);
    assert_int_equal(get16(out + 2) & 0x0F, 0); /* BADVERS = 16: low bits 0 ... */
    assert_int_equal(get16(out + 10), 1);
    const uint8_t *o = out + n - 11;
    assert_int_equal(o[0], 0);
    assert_int_equal(get16(o + 1), TYPE_OPT);
    assert_int_equal(o[5], 1); /* ... high bits 1 in the OPT */
    assert_int_equal(o[6], 0); /* version 0 */
    assert_true(o[7] & 0x80);  /* DO copied */
}

static void test_error_reply_no_question(void **state)
{
    (void)state;
    struct pkt p;
    header(&p, 9, 0x0100, 0, 0, 0, 0);
    struct dnsmsg_query q;
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_FORMERR);
    uint8_t out[DNSMSG_SMALL_MAX];
    assert_int_equal(dnsmsg_error_reply(&q, RCODE_FORMERR, out, sizeof out), 12);
    assert_int_equal(get16(out + 4), 0);
    assert_int_equal(get16(out + 2) & 0x0F, RCODE_FORMERR);
}

/* ---- upstream side ---- */

static void test_upstream_query(void **state)
{
    (void)state;
    uint8_t name[] = "\7example\3com";
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n =
        dnsmsg_upstream_query(name, sizeof name, TYPE_A, 1, 0x5555, true, true, out, sizeof out);
    struct dnsmsg_query q;
    assert_int_equal(dnsmsg_parse_query(out, n, &q), DNSMSG_OK);
    assert_int_equal(q.id, 0x5555);
    assert_true(q.rd);
    assert_true(q.cd);
    assert_true(q.edns);
    assert_true(q.do_bit);
    assert_int_equal(q.udp_size, DNSMSG_EDNS_SIZE);
}

/* A reply to "example.com A" with a CNAME and an A record, compressed, and an OPT. */
static void make_reply(struct pkt *p, uint16_t id, const char *qname, bool with_opt)
{
    header(p, id, 0x8180, 1, 2, 0, with_opt ? 1 : 0);
    question(p, qname, TYPE_A);
    put16(p, 0xC00C); /* -> the question name */
    put16(p, TYPE_CNAME);
    put16(p, 1);
    put32(p, 300);
    size_t rdlen_at = p->n;
    put16(p, 0);
    size_t target = p->n;
    put8(p, 3);
    memcpy(p->b + p->n, "cdn", 3);
    p->n += 3;
    put16(p, 0xC00C);
    p->b[rdlen_at + 1] = (uint8_t)(p->n - target);
    put16(p, (uint16_t)(0xC000 | target));
    put16(p, TYPE_A);
    put16(p, 1);
    put32(p, 60);
    put16(p, 4);
    put32(p, 0xC0000201);
    if (with_opt)
        opt(p, 1232, 0, 0, false);
}

static void test_reply_matches(void **state)
{
    (void)state;
    struct pkt p;
    make_reply(&p, 0x1111, "EXAMPLE.com", true);
    uint8_t name[] = "\7example\3com";
    assert_true(dnsmsg_reply_matches(p.b, p.n, 0x1111, name, sizeof name, TYPE_A, 1));
    assert_false(dnsmsg_reply_matches(p.b, p.n, 0x1112, name, sizeof name, TYPE_A, 1));
    assert_false(dnsmsg_reply_matches(p.b, p.n, 0x1111, name, sizeof name, TYPE_AAAA, 1));
    assert_false(dnsmsg_reply_matches(p.b, p.n, 0x1111, name, sizeof name, TYPE_A, 3));
    uint8_t other[] = "\7exampla\3com";
    assert_false(dnsmsg_reply_matches(p.b, p.n, 0x1111, other, sizeof other, TYPE_A, 1));
    p.b[2] &= 0x7F; /* not a response */
    assert_false(dnsmsg_reply_matches(p.b, p.n, 0x1111, name, sizeof name, TYPE_A, 1));
}

static void test_reply_scan_good(void **state)
{
    (void)state;
    struct pkt p;
    make_reply(&p, 1, "example.com", true);
    struct dnsmsg_reply_info info;
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), 0);
    assert_int_equal(info.an, 2);
    assert_int_equal(info.ar, 0);
    assert_true(info.has_opt);
    assert_int_equal(info.end, info.opt_off);
    assert_int_equal(info.rcode, 0);
    assert_false(info.tc);
}

static void test_reply_scan_malformed(void **state)
{
    (void)state;
    struct pkt p;
    struct dnsmsg_reply_info info;

    make_reply(&p, 1, "example.com", false);
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n - 1, &info), -1); /* RDATA cut short */

    make_reply(&p, 1, "example.com", false);
    p.b[7] = 3; /* ANCOUNT 3, two present */
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), -1);

    make_reply(&p, 1, "example.com", false);
    p.b[29 + 1] = 0xFF; /* the first answer's pointer now points forward */
    p.b[29] = 0xC0;
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), -1);

    /* A pointer to itself: a loop. */
    header(&p, 1, 0x8180, 1, 1, 0, 0);
    question(&p, "example.com", TYPE_A);
    size_t self = p.n;
    put16(&p, (uint16_t)(0xC000 | self));
    put16(&p, TYPE_A);
    put16(&p, 1);
    put32(&p, 1);
    put16(&p, 4);
    put32(&p, 0);
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), -1);

    /* Two OPT records. */
    make_reply(&p, 1, "example.com", true);
    p.b[11] = 2;
    opt(&p, 1232, 0, 0, false);
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), -1);

    /* RDLENGTH larger than what is left. */
    header(&p, 1, 0x8180, 1, 1, 0, 0);
    question(&p, "example.com", TYPE_A);
    put16(&p, 0xC00C);
    put16(&p, TYPE_A);
    put16(&p, 1);
    put32(&p, 1);
    put16(&p, 400);
    put32(&p, 0);
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), -1);
}

static void client_query(struct dnsmsg_query *q, const char *name, bool edns, uint16_t size)
{
    struct pkt p;
    header(&p, 0x4242, 0x0100, 1, 0, 0, edns ? 1 : 0);
    question(&p, name, TYPE_A);
    if (edns)
        opt(&p, size, 0, 0, false);
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, q), DNSMSG_OK);
}

static void test_client_reply_rewrite(void **state)
{
    (void)state;
    struct pkt p;
    make_reply(&p, 0x9999, "example.com", true);
    struct dnsmsg_reply_info info;
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), 0);

    struct dnsmsg_query q;
    client_query(&q, "ExAmPlE.CoM", false, 0);
    uint8_t out[DNS_MAX_UDP];
    size_t n = dnsmsg_client_reply(&q, p.b, p.n, &info, 512, out, sizeof out);
    assert_int_equal(n, p.n - 11); /* the OPT is gone */
    assert_int_equal(get16(out), 0x4242);
    assert_int_equal(get16(out + 10), 0);
    assert_memory_equal(out + 12, "\7ExAmPlE\3CoM", 12); /* the client's letter case */
    assert_memory_equal(out + 29, p.b + 29, n - 29);     /* records unchanged */

    client_query(&q, "example.com", true, 1232);
    n = dnsmsg_client_reply(&q, p.b, p.n, &info, 1232, out, sizeof out);
    assert_int_equal(n, p.n);
    assert_int_equal(get16(out + 10), 1);
    assert_int_equal(get16(out + n - 10), TYPE_OPT);
}

static void test_client_reply_truncates(void **state)
{
    (void)state;
    /* A reply with 40 A records: 29 + 40 * 16 bytes > 512. */
    struct pkt p;
    header(&p, 5, 0x8180, 1, 40, 0, 0);
    question(&p, "big.example", TYPE_A);
    for (int i = 0; i < 40; i++) {
        put16(&p, 0xC00C);
        put16(&p, TYPE_A);
        put16(&p, 1);
        put32(&p, 60);
        put16(&p, 4);
        put32(&p, (uint32_t)i);
    }
    struct dnsmsg_reply_info info;
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), 0);
    struct dnsmsg_query q;
    client_query(&q, "big.example", false, 0);
    uint8_t out[DNS_MAX_UDP];
    size_t n = dnsmsg_client_reply(&q, p.b, p.n, &info, 512, out, sizeof out);
    assert_true(n <= 512);
    assert_true(get16(out + 2) & 0x0200); /* TC */
    assert_int_equal(get16(out + 6), 0);
    /* Over TCP it all fits. */
    n = dnsmsg_client_reply(&q, p.b, p.n, &info, DNS_MAX_UDP, out, sizeof out);
    assert_int_equal(n, p.n);
    assert_false(get16(out + 2) & 0x0200);
    /* An EDNS client with room gets it all over UDP too. */
    client_query(&q, "big.example", true, 1232);
    n = dnsmsg_client_reply(&q, p.b, p.n, &info, q.udp_size, out, sizeof out);
    assert_int_equal(n, p.n + 11);
    assert_false(get16(out + 2) & 0x0200);
}

static void test_client_reply_extended_rcode(void **state)
{
    (void)state;
    struct pkt p;
    header(&p, 5, 0x8180, 1, 0, 0, 1);
    question(&p, "example.com", TYPE_A);
    opt(&p, 1232, 1, 0, false); /* extended rcode 16 (BADVERS/BADSIG) */
    struct dnsmsg_reply_info info;
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), 0);
    assert_int_equal(info.rcode, 16);
    struct dnsmsg_query q;
    client_query(&q, "example.com", false, 0);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_client_reply(&q, p.b, p.n, &info, 512, out, sizeof out);
    assert_int_equal(n, 29);
    assert_int_equal(get16(out + 2) & 0x0F, RCODE_SERVFAIL);
}

static void test_client_reply_keeps_ede(void **state)
{
    (void)state;
    struct pkt p;
    header(&p, 5, 0x8182, 1, 0, 0, 1); /* SERVFAIL */
    question(&p, "example.com", TYPE_A);
    put8(&p, 0);
    put16(&p, TYPE_OPT);
    put16(&p, 1232);
    put32(&p, 0);
    put16(&p, 4 + 2 + 4); /* an EDE option and an empty cookie option */
    put16(&p, 15);
    put16(&p, 2);
    put16(&p, 22); /* No Reachable Authority */
    put16(&p, 10);
    put16(&p, 0);
    struct dnsmsg_reply_info info;
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), 0);
    struct dnsmsg_query q;
    client_query(&q, "example.com", true, 1232);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_client_reply(&q, p.b, p.n, &info, 1232, out, sizeof out);
    /* Our OPT with only the EDE option. */
    assert_int_equal(n, 29 + 11 + 6);
    assert_int_equal(get16(out + 29 + 9), 6);
    assert_int_equal(get16(out + 29 + 11), 15);
    assert_int_equal(get16(out + 29 + 15), 22);
}

static void test_client_reply_no_records(void **state)
{
    (void)state;
    /* NXDOMAIN with nothing but the question: the answer is exactly header + question. */
    struct pkt p;
    header(&p, 5, 0x8183, 1, 0, 0, 0);
    question(&p, "nope.example", TYPE_A);
    struct dnsmsg_reply_info info;
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), 0);
    assert_int_equal(info.end, p.n);
    struct dnsmsg_query q;
    client_query(&q, "NOPE.example", false, 0);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_client_reply(&q, p.b, p.n, &info, 512, out, sizeof out);
    assert_int_equal(n, p.n);
    assert_false(get16(out + 2) & 0x0200);
    assert_int_equal(get16(out + 2) & 0x0F, RCODE_NXDOMAIN);
}

static void test_rcode_names(void **state)
{
    (void)state;
    char buf[16];
    assert_string_equal(dnsmsg_rcode_name(3, buf, sizeof buf), "NXDOMAIN");
    assert_string_equal(dnsmsg_rcode_name(16, buf, sizeof buf), "BADVERS");
    assert_string_equal(dnsmsg_rcode_name(42, buf, sizeof buf), "RCODE42");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok_keeps_case),
        cmocka_unit_test(test_parse_edns),
        cmocka_unit_test(test_parse_drop),
        cmocka_unit_test(test_parse_formerr),
        cmocka_unit_test(test_parse_notimp_badvers_refused),
        cmocka_unit_test(test_parse_dotted_label),
        cmocka_unit_test(test_error_reply_flags),
        cmocka_unit_test(test_error_reply_badvers),
        cmocka_unit_test(test_error_reply_no_question),
        cmocka_unit_test(test_upstream_query),
        cmocka_unit_test(test_reply_matches),
        cmocka_unit_test(test_reply_scan_good),
        cmocka_unit_test(test_reply_scan_malformed),
        cmocka_unit_test(test_client_reply_rewrite),
        cmocka_unit_test(test_client_reply_truncates),
        cmocka_unit_test(test_client_reply_extended_rcode),
        cmocka_unit_test(test_client_reply_keeps_ede),
        cmocka_unit_test(test_client_reply_no_records),
        cmocka_unit_test(test_rcode_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
