/* Unit tests for the pure packet module: query checks, error answers, reply rewriting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pkt.h"
#include <ldns/ldns.h>

#include "dnsmsg.h"
#include "wire.h"

/* ---- a small packet builder ---- */

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
    size_t n = dnsmsg_upstream_query(name, sizeof name, TYPE_A, 1, 0x5555, true, true, NULL, NULL,
                                     0, out, sizeof out);
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

/* The OPT's RDLENGTH is the last two bytes make_reply() wrote: add n empty options. */
static void add_options(struct pkt *p, unsigned n, uint16_t claimed_len)
{
    size_t rdlen_at = p->n - 2;
    for (unsigned i = 0; i < n; i++) {
        put16(p, (uint16_t)(65001 + i));
        put16(p, claimed_len);
    }
    p->b[rdlen_at] = (uint8_t)((4 * n) >> 8);
    p->b[rdlen_at + 1] = (uint8_t)(4 * n);
}

/* Hostile upstreams (issue 8): what ldns accepts but we do not. */
static void test_reply_scan_hostile(void **state)
{
    (void)state;
    struct pkt p;
    struct dnsmsg_reply_info info;

    /* EDNS options: a few are fine, more than 64 are not, nor one longer than the RDATA. */
    make_reply(&p, 1, "example.com", true);
    add_options(&p, 64, 0);
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), 0);
    make_reply(&p, 1, "example.com", true);
    add_options(&p, 65, 0);
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), -1);
    make_reply(&p, 1, "example.com", true);
    add_options(&p, 1, 8); /* claims 8 bytes, has none */
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), -1);

    /* Bytes after the last record. */
    make_reply(&p, 1, "example.com", false);
    put16(&p, 0xDEAD);
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), -1);

    /* A CNAME whose target is a forward pointer (to the next record's owner). */
    header(&p, 1, 0x8180, 1, 2, 0, 0);
    question(&p, "example.com", TYPE_A);
    put16(&p, 0xC00C);
    put16(&p, TYPE_CNAME);
    put16(&p, 1);
    put32(&p, 60);
    put16(&p, 2);
    put16(&p, (uint16_t)(0xC000 | (p.n + 2)));
    put_name(&p, "tracker.test");
    put16(&p, TYPE_A);
    put16(&p, 1);
    put32(&p, 60);
    put16(&p, 4);
    put32(&p, 0xC0000201);
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), -1);

    /* A CNAME target with RDATA left over after the name. */
    header(&p, 1, 0x8180, 1, 1, 0, 0);
    question(&p, "example.com", TYPE_A);
    put16(&p, 0xC00C);
    put16(&p, TYPE_CNAME);
    put16(&p, 1);
    put32(&p, 60);
    put16(&p, 4);
    put16(&p, 0xC00C);
    put16(&p, 0);
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

/* ---- blocked answers ---- */

static uint32_t get32(const uint8_t *b)
{
    return (uint32_t)get16(b) << 16 | get16(b + 2);
}

/* A query for name/type whose client set AA, Z and CD (AA and Z must never be echoed). */
static void block_query(struct dnsmsg_query *q, const char *name, uint16_t type, bool edns)
{
    struct pkt p;
    simple_query(&p, name, type, edns);
    p.b[2] |= 0x04;        /* AA */
    p.b[3] |= 0x40 | 0x10; /* Z and CD */
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, q), DNSMSG_OK);
}

/* Header checks common to every blocked answer; returns the offset just past the question. */
static size_t check_block_header(const struct dnsmsg_query *q, const uint8_t *out, unsigned rcode,
                                 uint16_t an, uint16_t ns, uint16_t ar)
{
    assert_int_equal(get16(out), q->id);
    uint16_t flags = get16(out + 2);
    assert_true(flags & 0x8000); /* QR */
    assert_int_equal((flags >> 11) & 0x0F, 0);
    assert_false(flags & 0x0400); /* AA */
    assert_false(flags & 0x0200); /* TC */
    assert_true(flags & 0x0100);  /* RD as asked */
    assert_true(flags & 0x0080);  /* RA */
    assert_false(flags & 0x0040); /* Z */
    assert_true(flags & 0x0010);  /* CD as asked */
    assert_int_equal(flags & 0x0F, rcode);
    assert_int_equal(get16(out + 4), 1);
    assert_int_equal(get16(out + 6), an);
    assert_int_equal(get16(out + 8), ns);
    assert_int_equal(get16(out + 10), ar);
    /* The question as the client sent it, letter case included. */
    assert_memory_equal(out + 12, q->qname, q->qname_len);
    assert_int_equal(get16(out + 12 + q->qname_len), q->qtype);
    assert_int_equal(get16(out + 12 + q->qname_len + 2), q->qclass);
    return DNS_HEADER_LEN + q->qname_len + 4;
}

/* The SOA at off: owner a pointer to the question, class IN, TTL and MINIMUM = ttl. */
static size_t check_soa(const uint8_t *out, size_t n, size_t off, uint32_t ttl)
{
    assert_true(off + 12 <= n);
    assert_int_equal(get16(out + off), 0xC000 | DNS_HEADER_LEN);
    assert_int_equal(get16(out + off + 2), TYPE_SOA);
    assert_int_equal(get16(out + off + 4), 1);
    assert_int_equal(get32(out + off + 6), ttl);
    uint16_t rdlen = get16(out + off + 10);
    assert_true(off + 12 + rdlen <= n);
    assert_int_equal(get32(out + off + 12 + rdlen - 4), ttl); /* MINIMUM */
    return 12u + rdlen;
}

/* ldns accepts the answer; returns the parsed packet (the caller frees it). */
static ldns_pkt *ldns_parse(const uint8_t *out, size_t n)
{
    ldns_pkt *pkt = NULL;
    assert_int_equal(ldns_wire2pkt(&pkt, out, n), LDNS_STATUS_OK);
    assert_non_null(pkt);
    return pkt;
}

/* ldns's reading of the authority SOA agrees: owner = the question, TTL, MINIMUM, MNAME. */
static void ldns_check_soa(ldns_pkt *pkt, uint32_t ttl)
{
    ldns_rr_list *auth = ldns_pkt_authority(pkt);
    assert_int_equal(ldns_rr_list_rr_count(auth), 1);
    ldns_rr *soa = ldns_rr_list_rr(auth, 0);
    assert_int_equal(ldns_rr_get_type(soa), LDNS_RR_TYPE_SOA);
    ldns_rr *qrr = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
    assert_int_equal(ldns_dname_compare(ldns_rr_owner(soa), ldns_rr_owner(qrr)), 0);
    assert_int_equal(ldns_rr_ttl(soa), ttl);
    assert_int_equal(ldns_rdf2native_int32(ldns_rr_rdf(soa, 6)), ttl);
    char *mname = ldns_rdf2str(ldns_rr_rdf(soa, 0));
    assert_string_equal(mname, DNSMSG_SOA_MNAME ".");
    free(mname);
}

static void test_block_nxdomain(void **state)
{
    (void)state;
    struct dnsmsg_query q;
    block_query(&q, "Tracking.MIUI.com", TYPE_A, false);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_NXDOMAIN, 1234, "blocked", out, sizeof out);
    size_t qend = check_block_header(&q, out, RCODE_NXDOMAIN, 0, 1, 0);
    size_t soa = check_soa(out, n, qend, 1234);
    assert_int_equal(n, qend + soa); /* nothing else: no OPT without EDNS */

    ldns_pkt *pkt = ldns_parse(out, n);
    assert_int_equal(ldns_pkt_get_rcode(pkt), LDNS_RCODE_NXDOMAIN);
    assert_false(ldns_pkt_aa(pkt));
    assert_true(ldns_pkt_ra(pkt));
    assert_false(ldns_pkt_edns(pkt));
    ldns_check_soa(pkt, 1234);
    ldns_pkt_free(pkt);

    /* Another TTL, another SOA. */
    n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_NXDOMAIN, 7, "blocked", out, sizeof out);
    check_soa(out, n, qend, 7);
}

static void test_block_null_a(void **state)
{
    (void)state;
    struct dnsmsg_query q;
    block_query(&q, "data.mistat.xiaomi.com", TYPE_A, false);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_NULL, 600, "blocked", out, sizeof out);
    size_t qend = check_block_header(&q, out, RCODE_NOERROR, 1, 0, 0);
    assert_int_equal(n, qend + 12 + 4);
    assert_int_equal(get16(out + qend), 0xC000 | DNS_HEADER_LEN);
    assert_int_equal(get16(out + qend + 2), TYPE_A);
    assert_int_equal(get16(out + qend + 4), 1);
    assert_int_equal(get32(out + qend + 6), 600);
    assert_int_equal(get16(out + qend + 10), 4);
    assert_int_equal(get32(out + qend + 12), 0); /* 0.0.0.0 */

    ldns_pkt *pkt = ldns_parse(out, n);
    assert_int_equal(ldns_pkt_get_rcode(pkt), LDNS_RCODE_NOERROR);
    ldns_rr *a = ldns_rr_list_rr(ldns_pkt_answer(pkt), 0);
    assert_int_equal(ldns_rr_get_type(a), LDNS_RR_TYPE_A);
    assert_int_equal(ldns_rr_ttl(a), 600);
    char *addr = ldns_rdf2str(ldns_rr_rdf(a, 0));
    assert_string_equal(addr, "0.0.0.0");
    free(addr);
    ldns_pkt_free(pkt);
}

static void test_block_null_aaaa(void **state)
{
    (void)state;
    struct dnsmsg_query q;
    block_query(&q, "tracking.miui.com", TYPE_AAAA, false);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_NULL, 42, "blocked", out, sizeof out);
    size_t qend = check_block_header(&q, out, RCODE_NOERROR, 1, 0, 0);
    assert_int_equal(n, qend + 12 + 16);
    assert_int_equal(get16(out + qend + 2), TYPE_AAAA);
    assert_int_equal(get32(out + qend + 6), 42);
    assert_int_equal(get16(out + qend + 10), 16);
    static const uint8_t zero[16] = {0};
    assert_memory_equal(out + qend + 12, zero, 16); /* :: */

    ldns_pkt *pkt = ldns_parse(out, n);
    ldns_rr *aaaa = ldns_rr_list_rr(ldns_pkt_answer(pkt), 0);
    assert_int_equal(ldns_rr_get_type(aaaa), LDNS_RR_TYPE_AAAA);
    char *addr = ldns_rdf2str(ldns_rr_rdf(aaaa, 0));
    assert_string_equal(addr, "::");
    free(addr);
    ldns_pkt_free(pkt);
}

static void test_block_null_other_type(void **state)
{
    (void)state;
    struct dnsmsg_query q;
    block_query(&q, "tracking.miui.com", 16 /* TXT */, false);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_NULL, 99, "blocked", out, sizeof out);
    size_t qend = check_block_header(&q, out, RCODE_NOERROR, 0, 1, 0);
    assert_int_equal(n, qend + check_soa(out, n, qend, 99));
    ldns_pkt *pkt = ldns_parse(out, n);
    assert_int_equal(ldns_pkt_get_rcode(pkt), LDNS_RCODE_NOERROR);
    assert_int_equal(ldns_pkt_ancount(pkt), 0);
    ldns_check_soa(pkt, 99);
    ldns_pkt_free(pkt);
}

static void test_block_refused(void **state)
{
    (void)state;
    struct dnsmsg_query q;
    block_query(&q, "tracking.miui.com", TYPE_A, false);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_REFUSED, 300, "blocked", out, sizeof out);
    size_t qend = check_block_header(&q, out, RCODE_REFUSED, 0, 0, 0);
    assert_int_equal(n, qend);
    ldns_pkt *pkt = ldns_parse(out, n);
    assert_int_equal(ldns_pkt_get_rcode(pkt), LDNS_RCODE_REFUSED);
    ldns_pkt_free(pkt);
}

static void test_block_nodata(void **state)
{
    (void)state;
    struct dnsmsg_query q;
    block_query(&q, "tracking.miui.com", TYPE_AAAA, false);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_NODATA, 3600, "blocked", out, sizeof out);
    size_t qend = check_block_header(&q, out, RCODE_NOERROR, 0, 1, 0);
    assert_int_equal(n, qend + check_soa(out, n, qend, 3600));
    ldns_pkt *pkt = ldns_parse(out, n);
    assert_int_equal(ldns_pkt_get_rcode(pkt), LDNS_RCODE_NOERROR);
    assert_int_equal(ldns_pkt_ancount(pkt), 0);
    ldns_check_soa(pkt, 3600);
    ldns_pkt_free(pkt);
}

/* The OPT at the end of out carries exactly one option: EDE INFO-CODE 15 with this text. */
static void check_ede(const uint8_t *out, size_t n, const char *text, size_t tlen)
{
    assert_true(n >= 11 + 6 + tlen);
    const uint8_t *o = out + n - (11 + 6 + tlen);
    assert_int_equal(o[0], 0); /* root owner */
    assert_int_equal(get16(o + 1), TYPE_OPT);
    assert_int_equal(o[5], 0); /* no extended rcode bits */
    assert_int_equal(o[6], 0); /* version 0 */
    assert_int_equal(get16(o + 9), 6 + tlen);
    assert_int_equal(get16(o + 11), 15); /* option: Extended DNS Error */
    assert_int_equal(get16(o + 13), 2 + tlen);
    assert_int_equal(get16(o + 15), 15); /* INFO-CODE 15: Blocked */
    assert_memory_equal(o + 17, text, tlen);

    ldns_pkt *pkt = ldns_parse(out, n);
    assert_true(ldns_pkt_edns(pkt));
    ldns_edns_option_list *opts = ldns_pkt_edns_get_option_list(pkt);
    assert_non_null(opts);
    assert_int_equal(ldns_edns_option_list_get_count(opts), 1);
    ldns_edns_option *ede = ldns_edns_option_list_get_option(opts, 0);
    assert_int_equal(ldns_edns_get_code(ede), 15);
    assert_int_equal(ldns_edns_get_size(ede), 2 + tlen);
    const uint8_t *d = ldns_edns_get_data(ede);
    assert_int_equal(get16(d), 15);
    assert_memory_equal(d + 2, text, tlen);
    ldns_pkt_free(pkt);
}

static void test_block_edns_ede(void **state)
{
    (void)state;
    const char *text = "telemetry: xiaomi (data.mistat.xiaomi.com)";
    static const struct {
        enum dnsmsg_block_mode mode;
        uint16_t qtype;
        unsigned rcode;
        uint16_t an, ns;
    } modes[] = {
        {DNSMSG_BLOCK_NXDOMAIN, TYPE_A, RCODE_NXDOMAIN, 0, 1},
        {DNSMSG_BLOCK_NULL, TYPE_A, RCODE_NOERROR, 1, 0},
        {DNSMSG_BLOCK_NULL, TYPE_AAAA, RCODE_NOERROR, 1, 0},
        {DNSMSG_BLOCK_NULL, 16, RCODE_NOERROR, 0, 1},
        {DNSMSG_BLOCK_REFUSED, TYPE_A, RCODE_REFUSED, 0, 0},
        {DNSMSG_BLOCK_NODATA, TYPE_A, RCODE_NOERROR, 0, 1},
    };
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        struct dnsmsg_query q;
        block_query(&q, "Data.Mistat.Xiaomi.com", modes[i].qtype, true);
        uint8_t out[DNSMSG_SMALL_MAX];
        size_t n = dnsmsg_block_reply(&q, modes[i].mode, 300, text, out, sizeof out);
        size_t qend = check_block_header(&q, out, modes[i].rcode, modes[i].an, modes[i].ns, 1);
        check_ede(out, n, text, strlen(text));
        if (modes[i].ns)
            check_soa(out, n, qend, 300);

        /* The same without EDNS: no OPT, nothing else changes. */
        block_query(&q, "Data.Mistat.Xiaomi.com", modes[i].qtype, false);
        size_t m = dnsmsg_block_reply(&q, modes[i].mode, 300, text, out, sizeof out);
        check_block_header(&q, out, modes[i].rcode, modes[i].an, modes[i].ns, 0);
        assert_int_equal(m, n - (11 + 6 + strlen(text)));
        ldns_pkt *pkt = ldns_parse(out, m);
        assert_false(ldns_pkt_edns(pkt));
        ldns_pkt_free(pkt);
    }
}

static void test_block_ede_text_cut(void **state)
{
    (void)state;
    char text[300];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    text[DNSMSG_EDE_TEXT_MAX - 1] = 'y'; /* the last byte kept */
    text[DNSMSG_EDE_TEXT_MAX] = 'z';     /* the first byte cut */
    struct dnsmsg_query q;
    block_query(&q, "a-rather-long-label-for-a-blocked-name.tracking.example.com", TYPE_A, true);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_NXDOMAIN, 300, text, out, sizeof out);
    assert_true(n <= sizeof out);
    check_ede(out, n, text, DNSMSG_EDE_TEXT_MAX);
    assert_int_equal(out[n - 1], 'y');

    /* One byte over: cut too. */
    text[DNSMSG_EDE_TEXT_MAX + 1] = '\0';
    n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_NXDOMAIN, 300, text, out, sizeof out);
    check_ede(out, n, text, DNSMSG_EDE_TEXT_MAX);
    assert_int_equal(out[n - 1], 'y');

    /* Exactly DNSMSG_EDE_TEXT_MAX bytes are kept whole; a short text is not padded. */
    text[DNSMSG_EDE_TEXT_MAX] = '\0';
    n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_NXDOMAIN, 300, text, out, sizeof out);
    check_ede(out, n, text, DNSMSG_EDE_TEXT_MAX);
    n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_NXDOMAIN, 300, "ab", out, sizeof out);
    check_ede(out, n, "ab", 2);
    n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_NXDOMAIN, 300, "", out, sizeof out);
    check_ede(out, n, "", 0);
}

/* ---- CNAME targets of a reply ---- */

struct cnames {
    unsigned n;
    unsigned stop_after;
    uint8_t name[4][DNS_MAX_NAME];
    size_t len[4];
};

static bool collect_cname(void *ctx, const uint8_t *name, size_t len)
{
    struct cnames *c = ctx;
    assert_true(c->n < 4);
    assert_true(len <= DNS_MAX_NAME);
    memcpy(c->name[c->n], name, len);
    c->len[c->n] = len;
    c->n++;
    return c->stop_after && c->n == c->stop_after;
}

/* a.example.com CNAME b.example.com CNAME c.b.example.com A 192.0.2.1, all compressed. */
static void cname_chain_reply(struct pkt *p)
{
    header(p, 7, 0x8180, 1, 3, 0, 0);
    question(p, "a.example.com", TYPE_A); /* "example.com" at offset 14 */
    put16(p, 0xC00C);
    put16(p, TYPE_CNAME);
    put16(p, 1);
    put32(p, 300);
    put16(p, 4);
    size_t t1 = p->n;
    put8(p, 1);
    put8(p, 'b');
    put16(p, 0xC00E); /* -> example.com */
    put16(p, (uint16_t)(0xC000 | t1));
    put16(p, TYPE_CNAME);
    put16(p, 1);
    put32(p, 300);
    put16(p, 4);
    size_t t2 = p->n;
    put8(p, 1);
    put8(p, 'c');
    put16(p, (uint16_t)(0xC000 | t1)); /* -> b.example.com */
    put16(p, (uint16_t)(0xC000 | t2));
    put16(p, TYPE_A);
    put16(p, 1);
    put32(p, 60);
    put16(p, 4);
    put32(p, 0xC0000201);
}

static void test_reply_cnames_chain(void **state)
{
    (void)state;
    struct pkt p;
    cname_chain_reply(&p);
    struct dnsmsg_reply_info info;
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), 0);
    assert_int_equal(info.an, 3);
    struct cnames c = {0};
    assert_false(dnsmsg_reply_cnames(p.b, p.n, &info, collect_cname, &c));
    assert_int_equal(c.n, 2);
    static const uint8_t b[] = "\1b\7example\3com";
    static const uint8_t cb[] = "\1c\1b\7example\3com";
    assert_int_equal(c.len[0], sizeof b);
    assert_memory_equal(c.name[0], b, sizeof b);
    assert_int_equal(c.len[1], sizeof cb);
    assert_memory_equal(c.name[1], cb, sizeof cb);

    /* fn returning true stops the walk and is reported. */
    struct cnames first = {.stop_after = 1};
    assert_true(dnsmsg_reply_cnames(p.b, p.n, &info, collect_cname, &first));
    assert_int_equal(first.n, 1);
    assert_memory_equal(first.name[0], b, sizeof b);
}

static void test_reply_cnames_none(void **state)
{
    (void)state;
    struct pkt p;
    header(&p, 7, 0x8180, 1, 2, 0, 1);
    question(&p, "plain.example.com", TYPE_A);
    for (int i = 0; i < 2; i++) {
        put16(&p, 0xC00C);
        put16(&p, TYPE_A);
        put16(&p, 1);
        put32(&p, 60);
        put16(&p, 4);
        put32(&p, (uint32_t)i); /* 0.0.0.0 reads as a root name: must not be taken for one */
    }
    opt(&p, 1232, 0, 0, false);
    struct dnsmsg_reply_info info;
    assert_int_equal(dnsmsg_reply_scan(p.b, p.n, &info), 0);
    struct cnames c = {0};
    assert_false(dnsmsg_reply_cnames(p.b, p.n, &info, collect_cname, &c));
    assert_int_equal(c.n, 0);

    /* An NXDOMAIN with only a SOA in the authority section: none either. */
    struct dnsmsg_query q;
    block_query(&q, "gone.example.com", TYPE_A, false);
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_block_reply(&q, DNSMSG_BLOCK_NXDOMAIN, 300, "x", out, sizeof out);
    assert_int_equal(dnsmsg_reply_scan(out, n, &info), 0);
    assert_false(dnsmsg_reply_cnames(out, n, &info, collect_cname, &c));
    assert_int_equal(c.n, 0);
}

/* ---- loop markers, ANY, error answers with an EDE ---- */

static void test_siphash_reference_vector(void **state)
{
    (void)state;
    /* The SipHash-2-4 paper's test vector: key 00..0f, message 00..0e. */
    uint8_t key[16], msg[15];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    assert_true(siphash24(key, msg, sizeof msg) == 0xa129ca6149be45e5ULL);
}

static void test_loop_marker_round_trip(void **state)
{
    (void)state;
    uint8_t key[DNSMSG_LOOP_KEY_LEN] = {1, 2, 3}, other[DNSMSG_LOOP_KEY_LEN] = {3, 2, 1};
    uint8_t nonce[8] = {9, 9, 9, 9, 1, 2, 3, 4}, marker[DNSMSG_LOOP_MARKER_LEN];
    dnsmsg_loop_marker(key, nonce, marker);
    assert_memory_equal(marker, nonce, 8);
    uint8_t name[] = "\7example\3com";
    uint8_t out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_upstream_query(name, sizeof name, TYPE_A, 1, 0x7777, false, false, marker,
                                     NULL, 0, out, sizeof out);
    struct dnsmsg_query q;
    assert_int_equal(dnsmsg_parse_query(out, n, &q), DNSMSG_OK);
    assert_int_equal(q.opt_rdlen, 4 + DNSMSG_LOOP_MARKER_LEN);
    assert_int_equal(get16(out + q.opt_rdata), DNSMSG_LOOP_OPTION);
    assert_true(dnsmsg_query_has_loop_marker(out, n, &q, key));
    /* Another process's marker (another key) is not ours. */
    assert_false(dnsmsg_query_has_loop_marker(out, n, &q, other));
    /* Nor is a forged one: the tag no longer matches the nonce. */
    out[q.opt_rdata + 4] ^= 1;
    assert_false(dnsmsg_query_has_loop_marker(out, n, &q, key));
    /* Without a marker there is no option at all. */
    n = dnsmsg_upstream_query(name, sizeof name, TYPE_A, 1, 0x7777, false, false, NULL, NULL, 0,
                              out, sizeof out);
    assert_int_equal(dnsmsg_parse_query(out, n, &q), DNSMSG_OK);
    assert_int_equal(q.opt_rdlen, 0);
    assert_false(dnsmsg_query_has_loop_marker(out, n, &q, key));
}

/* A -> B -> A: B passes A's marker on with its own, and A recognises it. */
static void test_loop_markers_carried(void **state)
{
    (void)state;
    uint8_t a_key[DNSMSG_LOOP_KEY_LEN] = {1}, b_key[DNSMSG_LOOP_KEY_LEN] = {2};
    uint8_t nonce[8] = {5}, a_marker[DNSMSG_LOOP_MARKER_LEN], b_marker[DNSMSG_LOOP_MARKER_LEN];
    dnsmsg_loop_marker(a_key, nonce, a_marker);
    dnsmsg_loop_marker(b_key, nonce, b_marker);
    uint8_t name[] = "\7example\3com";
    uint8_t a_out[DNSMSG_SMALL_MAX], b_out[DNSMSG_SMALL_MAX];
    size_t n = dnsmsg_upstream_query(name, sizeof name, TYPE_A, 1, 1, false, false, a_marker, NULL,
                                     0, a_out, sizeof a_out);
    struct dnsmsg_query q;
    assert_int_equal(dnsmsg_parse_query(a_out, n, &q), DNSMSG_OK);
    /* B receives A's query: one marker to carry, not B's own. */
    uint8_t carried[DNSMSG_LOOP_CARRY * DNSMSG_LOOP_MARKER_LEN];
    assert_false(dnsmsg_query_has_loop_marker(a_out, n, &q, b_key));
    assert_int_equal(dnsmsg_loop_markers(a_out, n, &q, carried), 1);
    assert_memory_equal(carried, a_marker, DNSMSG_LOOP_MARKER_LEN);
    n = dnsmsg_upstream_query(name, sizeof name, TYPE_A, 1, 2, false, false, b_marker, carried, 1,
                              b_out, sizeof b_out);
    assert_int_equal(dnsmsg_parse_query(b_out, n, &q), DNSMSG_OK);
    assert_int_equal(q.opt_rdlen, 2 * (4 + DNSMSG_LOOP_MARKER_LEN));
    assert_true(dnsmsg_query_has_loop_marker(b_out, n, &q, a_key)); /* back at A: a loop */
    assert_true(dnsmsg_query_has_loop_marker(b_out, n, &q, b_key));
    /* Never more than DNSMSG_LOOP_CARRY carried: a long chain cannot grow the query. */
    uint8_t many[5 * DNSMSG_LOOP_MARKER_LEN];
    for (int i = 0; i < 5; i++)
        memcpy(many + i * DNSMSG_LOOP_MARKER_LEN, a_marker, DNSMSG_LOOP_MARKER_LEN);
    n = dnsmsg_upstream_query(name, sizeof name, TYPE_A, 1, 3, false, false, b_marker, many, 5,
                              b_out, sizeof b_out);
    assert_int_equal(dnsmsg_parse_query(b_out, n, &q), DNSMSG_OK);
    assert_int_equal(q.opt_rdlen, (1 + DNSMSG_LOOP_CARRY) * (4 + DNSMSG_LOOP_MARKER_LEN));
    assert_int_equal(dnsmsg_loop_markers(b_out, n, &q, carried), DNSMSG_LOOP_CARRY);
    /* The longest name still fits in a small query with every marker. */
    uint8_t longest[DNS_MAX_NAME]; /* labels of 63, 63, 63 and 61 bytes: 255 on the wire */
    memset(longest, 'a', sizeof longest);
    longest[0] = longest[64] = longest[128] = 63;
    longest[192] = 61;
    longest[254] = 0;
    n = dnsmsg_upstream_query(longest, 255, TYPE_A, 1, 4, false, true, b_marker, many, 5, b_out,
                              sizeof b_out);
    assert_true(n > 0 && n <= DNSMSG_SMALL_MAX);
}

static void test_loop_marker_among_other_options(void **state)
{
    (void)state;
    /* A forwarder (dnsmasq --add-mac, --add-subnet) adds its options around ours. */
    uint8_t key[DNSMSG_LOOP_KEY_LEN] = {7}, nonce[8] = {1}, marker[DNSMSG_LOOP_MARKER_LEN];
    dnsmsg_loop_marker(key, nonce, marker);
    struct pkt p;
    header(&p, 1, 0x0100, 1, 0, 0, 1);
    question(&p, "example.com", TYPE_A);
    put8(&p, 0);
    put16(&p, TYPE_OPT);
    put16(&p, 1232);
    put32(&p, 0);
    put16(&p, (uint16_t)(4 + 6 + 4 + DNSMSG_LOOP_MARKER_LEN + 4 + 8));
    put16(&p, 65001); /* add-mac */
    put16(&p, 6);
    for (int i = 0; i < 6; i++)
        put8(&p, (uint8_t)(0xa0 + i));
    put16(&p, DNSMSG_LOOP_OPTION);
    put16(&p, DNSMSG_LOOP_MARKER_LEN);
    for (int i = 0; i < DNSMSG_LOOP_MARKER_LEN; i++)
        put8(&p, marker[i]);
    put16(&p, 8); /* Client Subnet 10.0.0.1/32 */
    put16(&p, 8);
    put16(&p, 1);
    put8(&p, 32);
    put8(&p, 0);
    put32(&p, 0x0a000001);
    struct dnsmsg_query q;
    assert_int_equal(dnsmsg_parse_query(p.b, p.n, &q), DNSMSG_OK);
    assert_true(dnsmsg_query_has_loop_marker(p.b, p.n, &q, key));
}

static void test_any_reply_is_minimal(void **state)
{
    (void)state;
    for (int edns = 0; edns < 2; edns++) {
        struct dnsmsg_query q;
        block_query(&q, "Example.COM", TYPE_ANY, edns);
        uint8_t out[DNSMSG_SMALL_MAX];
        size_t n = dnsmsg_any_reply(&q, 300, out, sizeof out);
        check_block_header(&q, out, RCODE_NOERROR, 1, 0, (uint16_t)edns);
        /* Header, question, a 21-byte HINFO, and our OPT when the client sent one. */
        assert_int_equal(n, 12 + 13 + 4 + 12 + 9 + (edns ? 11 : 0));
        ldns_pkt *pkt = ldns_parse(out, n);
        ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(pkt), 0);
        assert_int_equal(ldns_rr_get_type(rr), LDNS_RR_TYPE_HINFO);
        assert_int_equal(ldns_rr_get_class(rr), LDNS_RR_CLASS_IN);
        assert_int_equal(ldns_rr_ttl(rr), 300);
        char *cpu = ldns_rdf2str(ldns_rr_rdf(rr, 0)), *os = ldns_rdf2str(ldns_rr_rdf(rr, 1));
        assert_string_equal(cpu, "\"RFC8482\"");
        assert_string_equal(os, "\"\"");
        free(cpu);
        free(os);
        assert_int_equal(ldns_pkt_edns(pkt), edns);
        ldns_pkt_free(pkt);
    }
}

static void test_error_reply_ede(void **state)
{
    (void)state;
    struct dnsmsg_query q;
    block_query(&q, "loop.example", TYPE_A, true);
    uint8_t out[DNSMSG_SMALL_MAX];
    const char *text = "forwarding loop";
    size_t n = dnsmsg_error_reply_ede(&q, RCODE_SERVFAIL, EDE_OTHER, text, out, sizeof out);
    check_block_header(&q, out, RCODE_SERVFAIL, 0, 0, 1);
    const uint8_t *o = out + n - (11 + 6 + strlen(text));
    assert_int_equal(get16(o + 11), 15);        /* option: Extended DNS Error */
    assert_int_equal(get16(o + 15), EDE_OTHER); /* INFO-CODE */
    assert_memory_equal(o + 17, text, strlen(text));
    ldns_pkt_free(ldns_parse(out, n));
    /* Without EDNS: the plain error answer. */
    block_query(&q, "loop.example", TYPE_A, false);
    uint8_t plain[DNSMSG_SMALL_MAX];
    n = dnsmsg_error_reply_ede(&q, RCODE_SERVFAIL, EDE_OTHER, text, out, sizeof out);
    assert_int_equal(n, dnsmsg_error_reply(&q, RCODE_SERVFAIL, plain, sizeof plain));
    assert_memory_equal(out, plain, n);
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
        cmocka_unit_test(test_reply_scan_hostile),
        cmocka_unit_test(test_client_reply_rewrite),
        cmocka_unit_test(test_client_reply_truncates),
        cmocka_unit_test(test_client_reply_extended_rcode),
        cmocka_unit_test(test_client_reply_keeps_ede),
        cmocka_unit_test(test_client_reply_no_records),
        cmocka_unit_test(test_rcode_names),
        cmocka_unit_test(test_block_nxdomain),
        cmocka_unit_test(test_block_null_a),
        cmocka_unit_test(test_block_null_aaaa),
        cmocka_unit_test(test_block_null_other_type),
        cmocka_unit_test(test_block_refused),
        cmocka_unit_test(test_block_nodata),
        cmocka_unit_test(test_block_edns_ede),
        cmocka_unit_test(test_block_ede_text_cut),
        cmocka_unit_test(test_reply_cnames_chain),
        cmocka_unit_test(test_reply_cnames_none),
        cmocka_unit_test(test_siphash_reference_vector),
        cmocka_unit_test(test_loop_marker_round_trip),
        cmocka_unit_test(test_loop_markers_carried),
        cmocka_unit_test(test_loop_marker_among_other_options),
        cmocka_unit_test(test_any_reply_is_minimal),
        cmocka_unit_test(test_error_reply_ede),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
