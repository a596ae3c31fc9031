/* Unit tests for the response cache: keys, lifetimes, TTL aging, LRU eviction (segmented: names
 * asked once do not push out the names in use), growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pkt.h"

#include "cache.h"
#include "dnsmsg.h"

#define IN 1
#define CH 3
#define T0 1000000u /* the clock at the first insert, in ms */

/* ---- a small packet builder ---- */

static void header(struct pkt *p, uint16_t flags, uint16_t an, uint16_t ns, uint16_t ar)
{
    p->n = 0;
    put16(p, 0x1234);
    put16(p, flags);
    put16(p, 1);
    put16(p, an);
    put16(p, ns);
    put16(p, ar);
}

static void question(struct pkt *p, const char *name, uint16_t qtype, uint16_t qclass)
{
    put_name(p, name);
    put16(p, qtype);
    put16(p, qclass);
}

/* A record owned by the question name; returns the offset of its TTL field. */
static size_t rr_a(struct pkt *p, uint32_t ttl, uint32_t addr)
{
    put16(p, 0xC00C);
    put16(p, TYPE_A);
    put16(p, IN);
    size_t at = p->n;
    put32(p, ttl);
    put16(p, 4);
    put32(p, addr);
    return at;
}

static size_t rr_ns(struct pkt *p, uint32_t ttl)
{
    put16(p, 0xC00C);
    put16(p, TYPE_NS);
    put16(p, IN);
    size_t at = p->n;
    put32(p, ttl);
    put16(p, 17);
    put_name(p, "ns1.example.net"); /* 17 bytes */
    return at;
}

/* Glue for ns1.example.net, uncompressed. */
static size_t rr_glue(struct pkt *p, uint32_t ttl)
{
    put_name(p, "ns1.example.net");
    put16(p, TYPE_A);
    put16(p, IN);
    size_t at = p->n;
    put32(p, ttl);
    put16(p, 4);
    put32(p, 0xC6336401);
    return at;
}

static size_t rr_soa(struct pkt *p, uint32_t ttl, uint32_t minimum)
{
    put16(p, 0xC00C);
    put16(p, TYPE_SOA);
    put16(p, IN);
    size_t at = p->n;
    put32(p, ttl);
    size_t rdlen_at = p->n;
    put16(p, 0);
    size_t rdata = p->n;
    put_name(p, "ns.example");
    put_name(p, "hostmaster.example");
    put32(p, 2024010101); /* serial */
    put32(p, 7200);       /* refresh */
    put32(p, 900);        /* retry */
    put32(p, 1209600);    /* expire */
    put32(p, minimum);
    p->b[rdlen_at] = (uint8_t)((p->n - rdata) >> 8);
    p->b[rdlen_at + 1] = (uint8_t)(p->n - rdata);
    return at;
}

/* An OPT record with the DO bit (its TTL field holds flags); returns that field's offset. */
static size_t opt_do(struct pkt *p)
{
    put8(p, 0);
    put16(p, TYPE_OPT);
    put16(p, 1232);
    size_t at = p->n;
    put32(p, 0x00008000);
    put16(p, 0);
    return at;
}

static uint32_t get32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* ---- replies and keys ---- */

struct reply {
    struct pkt p;
    struct dnsmsg_reply_info info;
};

static void scan(struct reply *r)
{
    assert_int_equal(dnsmsg_reply_scan(r->p.b, r->p.n, &r->info), 0);
}

/* NOERROR with one A record; returns the answer's TTL offset (its address follows at +6). */
static size_t a_reply(struct reply *r, const char *name, uint16_t qtype, uint16_t qclass,
                      uint32_t ttl, uint32_t addr)
{
    header(&r->p, 0x8180, 1, 0, 0);
    question(&r->p, name, qtype, qclass);
    size_t at = rr_a(&r->p, ttl, addr);
    scan(r);
    return at;
}

/* A question name in wire form. */
struct qname {
    uint8_t b[DNS_MAX_NAME];
    size_t n;
};

static struct qname wire(const char *dotted)
{
    struct pkt p = {.n = 0};
    put_name(&p, dotted);
    struct qname q = {.n = p.n};
    memcpy(q.b, p.b, p.n);
    return q;
}

static void insert(struct cache *c, const char *name, uint16_t qtype, uint16_t qclass, bool do_bit,
                   bool cd_bit, const struct reply *r, uint64_t now)
{
    struct qname q = wire(name);
    cache_insert(c, q.b, q.n, qtype, qclass, do_bit, cd_bit, r->p.b, r->p.n, &r->info, now);
}

static uint8_t out[DNS_MAX_UDP];

static size_t lookup(struct cache *c, const char *name, uint16_t qtype, uint16_t qclass,
                     bool do_bit, bool cd_bit, uint64_t now, struct dnsmsg_reply_info *info)
{
    struct qname q = wire(name);
    return cache_lookup(c, q.b, q.n, qtype, qclass, do_bit, cd_bit, now, out, sizeof out, info);
}

/* Insert a plain A answer for name (IN, no DO/CD) and look it up in one call each. */
static void insert_a(struct cache *c, const char *name, uint32_t ttl, uint32_t addr, uint64_t now)
{
    struct reply r;
    a_reply(&r, name, TYPE_A, IN, ttl, addr);
    insert(c, name, TYPE_A, IN, false, false, &r, now);
}

static size_t lookup_a(struct cache *c, const char *name, uint64_t now)
{
    struct dnsmsg_reply_info info;
    return lookup(c, name, TYPE_A, IN, false, false, now, &info);
}

static struct cache_stats stats(const struct cache *c)
{
    struct cache_stats s;
    cache_get_stats(c, &s);
    return s;
}

static void assert_same_info(const struct dnsmsg_reply_info *a, const struct dnsmsg_reply_info *b)
{
    assert_int_equal(a->rcode, b->rcode);
    assert_int_equal(a->tc, b->tc);
    assert_int_equal(a->question_end, b->question_end);
    assert_int_equal(a->end, b->end);
    assert_int_equal(a->records, b->records);
    assert_int_equal(a->an, b->an);
    assert_int_equal(a->ns, b->ns);
    assert_int_equal(a->ar, b->ar);
    assert_int_equal(a->has_opt, b->has_opt);
    assert_int_equal(a->opt_off, b->opt_off);
    assert_int_equal(a->opt_rdata, b->opt_rdata);
    assert_int_equal(a->opt_rdlen, b->opt_rdlen);
}

/* ---- tests ---- */

static void test_miss_then_hit(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20);
    assert_non_null(c);
    struct reply r;
    header(&r.p, 0x8180, 1, 0, 1);
    question(&r.p, "www.example.com", TYPE_A, IN);
    rr_a(&r.p, 300, 0xC0000201);
    opt_do(&r.p);
    scan(&r);

    struct dnsmsg_reply_info info;
    assert_int_equal(lookup(c, "www.example.com", TYPE_A, IN, false, false, T0, &info), 0);
    insert(c, "www.example.com", TYPE_A, IN, false, false, &r, T0);
    memset(&info, 0xAA, sizeof info);
    size_t n = lookup(c, "www.example.com", TYPE_A, IN, false, false, T0 + 999, &info);
    assert_int_equal(n, r.p.n);
    assert_memory_equal(out, r.p.b, n); /* under a second: byte for byte */
    assert_same_info(&info, &r.info);

    /* An output buffer one byte short: a miss, and the entry stays. */
    struct qname q = wire("www.example.com");
    assert_int_equal(cache_lookup(c, q.b, q.n, TYPE_A, IN, false, false, T0, out, r.p.n - 1, &info),
                     0);
    assert_int_equal(lookup(c, "www.example.com", TYPE_A, IN, false, false, T0, &info), r.p.n);

    struct cache_stats s = stats(c);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.misses, 2);
    assert_int_equal(s.entries, 1);
    cache_destroy(c);
}

static void test_case_insensitive(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20);
    insert_a(c, "WWW.Example.COM", 300, 1, T0);
    assert_int_not_equal(lookup_a(c, "www.example.com", T0), 0);
    assert_int_not_equal(lookup_a(c, "WWW.EXAMPLE.COM", T0), 0);
    assert_int_not_equal(lookup_a(c, "wWw.eXaMpLe.cOm", T0), 0);
    assert_int_equal(lookup_a(c, "www.exbmple.com", T0), 0);
    assert_int_equal(lookup_a(c, "www.example.co", T0), 0);
    assert_int_equal(lookup_a(c, "www.example.com.x", T0), 0);

    /* Inserting the same name in another case replaces the entry. */
    insert_a(c, "www.EXAMPLE.com", 300, 2, T0);
    assert_int_equal(stats(c).entries, 1);
    cache_destroy(c);
}

static void test_key_fields(void **state)
{
    (void)state;
    static const struct {
        uint16_t qtype, qclass;
        bool do_bit, cd_bit;
    } keys[] = {
        {TYPE_A, IN, false, false}, {TYPE_A, IN, true, false},     {TYPE_A, IN, false, true},
        {TYPE_A, IN, true, true},   {TYPE_AAAA, IN, false, false}, {TYPE_A, CH, false, false},
    };
    const size_t nkeys = sizeof keys / sizeof *keys;
    struct cache *c = cache_create(1 << 20);
    size_t addr_at = 0;
    for (size_t i = 0; i < nkeys; i++) {
        struct reply r;
        addr_at =
            a_reply(&r, "example.com", keys[i].qtype, keys[i].qclass, 300, (uint32_t)(100 + i)) + 6;
        insert(c, "example.com", keys[i].qtype, keys[i].qclass, keys[i].do_bit, keys[i].cd_bit, &r,
               T0);
    }
    assert_int_equal(stats(c).entries, nkeys);
    for (size_t i = 0; i < nkeys; i++) {
        struct dnsmsg_reply_info info;
        size_t n = lookup(c, "example.com", keys[i].qtype, keys[i].qclass, keys[i].do_bit,
                          keys[i].cd_bit, T0, &info);
        assert_int_not_equal(n, 0);
        assert_int_equal(get32(out + addr_at), 100 + i);
    }
    /* Combinations never inserted miss. */
    struct dnsmsg_reply_info info;
    assert_int_equal(lookup(c, "example.com", TYPE_AAAA, IN, true, false, T0, &info), 0);
    assert_int_equal(lookup(c, "example.com", TYPE_A, CH, false, true, T0, &info), 0);
    assert_int_equal(lookup(c, "example.com", 16, IN, false, false, T0, &info), 0);
    cache_destroy(c);
}

static void test_ttl_decrement(void **state)
{
    (void)state;
    struct reply r;
    header(&r.p, 0x8180, 1, 1, 2);
    question(&r.p, "www.example.com", TYPE_A, IN);
    size_t an = rr_a(&r.p, 300, 0xC0000201);
    size_t ns = rr_ns(&r.p, 600);
    size_t ar = rr_glue(&r.p, 100);
    size_t opt = opt_do(&r.p);
    scan(&r);
    assert_int_equal(r.info.records, 3);

    struct cache *c = cache_create(1 << 20);
    insert(c, "www.example.com", TYPE_A, IN, true, false, &r, T0);
    struct dnsmsg_reply_info info;
    size_t n = lookup(c, "www.example.com", TYPE_A, IN, true, false, T0 + 2500, &info);
    assert_int_equal(n, r.p.n);
    assert_int_equal(get32(out + an), 298);
    assert_int_equal(get32(out + ns), 598);
    assert_int_equal(get32(out + ar), 98);
    assert_int_equal(get32(out + opt), 0x00008000); /* the OPT's flags are not a TTL */
    assert_same_info(&info, &r.info);
    /* Nothing else changed. */
    uint8_t expect[sizeof r.p.b];
    memcpy(expect, r.p.b, r.p.n);
    memcpy(expect + an, out + an, 4);
    memcpy(expect + ns, out + ns, 4);
    memcpy(expect + ar, out + ar, 4);
    assert_memory_equal(out, expect, n);

    /* The stored copy is not aged: each hit counts from the insert. */
    n = lookup(c, "www.example.com", TYPE_A, IN, true, false, T0 + 2999, &info);
    assert_int_equal(get32(out + an), 298);
    n = lookup(c, "www.example.com", TYPE_A, IN, true, false, T0 + 3000, &info);
    assert_int_equal(get32(out + an), 297);
    assert_int_equal(get32(out + ns), 597);
    n = lookup(c, "www.example.com", TYPE_A, IN, true, false, T0 + 999, &info);
    assert_int_equal(get32(out + an), 300);

    /* Glue with a shorter TTL than the answer stops at 0. */
    header(&r.p, 0x8180, 1, 0, 1);
    question(&r.p, "www.example.org", TYPE_A, IN);
    an = rr_a(&r.p, 300, 1);
    ar = rr_glue(&r.p, 3);
    scan(&r);
    insert(c, "www.example.org", TYPE_A, IN, false, false, &r, T0);
    n = lookup(c, "www.example.org", TYPE_A, IN, false, false, T0 + 5000, &info);
    assert_int_equal(n, r.p.n);
    assert_int_equal(get32(out + an), 295);
    assert_int_equal(get32(out + ar), 0);
    cache_destroy(c);
}

static void test_expiry_at_min_ttl(void **state)
{
    (void)state;
    struct reply r;
    header(&r.p, 0x8180, 2, 1, 0);
    question(&r.p, "www.example.com", TYPE_A, IN);
    rr_a(&r.p, 60, 1);
    rr_a(&r.p, 45, 2);
    size_t ns = rr_ns(&r.p, 30); /* the authority section counts too */
    scan(&r);
    struct cache *c = cache_create(1 << 20);
    insert(c, "www.example.com", TYPE_A, IN, false, false, &r, T0);

    struct dnsmsg_reply_info info;
    assert_int_not_equal(lookup(c, "www.example.com", TYPE_A, IN, false, false, T0 + 29999, &info),
                         0);
    assert_int_equal(get32(out + ns), 1);
    assert_int_equal(lookup(c, "www.example.com", TYPE_A, IN, false, false, T0 + 30000, &info), 0);
    struct cache_stats s = stats(c);
    assert_int_equal(s.expired, 1);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);
    assert_int_equal(s.misses, 1);
    /* Gone: a later lookup is a plain miss. */
    assert_int_equal(lookup(c, "www.example.com", TYPE_A, IN, false, false, T0 + 30000, &info), 0);
    assert_int_equal(stats(c).expired, 1);

    /* Without an authority section the answers' minimum rules. */
    header(&r.p, 0x8180, 2, 0, 0);
    question(&r.p, "www.example.com", TYPE_A, IN);
    rr_a(&r.p, 60, 1);
    rr_a(&r.p, 45, 2);
    scan(&r);
    insert(c, "www.example.com", TYPE_A, IN, false, false, &r, T0);
    assert_int_not_equal(lookup_a(c, "www.example.com", T0 + 44999), 0);
    assert_int_equal(lookup_a(c, "www.example.com", T0 + 45000), 0);
    cache_destroy(c);
}

static void test_negative_nxdomain(void **state)
{
    (void)state;
    struct reply r;
    header(&r.p, 0x8183, 0, 1, 0);
    question(&r.p, "gone.example.com", TYPE_A, IN);
    size_t soa = rr_soa(&r.p, 3600, 300);
    scan(&r);
    assert_int_equal(r.info.rcode, RCODE_NXDOMAIN);
    struct cache *c = cache_create(1 << 20);
    insert(c, "gone.example.com", TYPE_A, IN, false, false, &r, T0);

    struct dnsmsg_reply_info info;
    size_t n = lookup(c, "gone.example.com", TYPE_A, IN, false, false, T0 + 299999, &info);
    assert_int_equal(n, r.p.n);
    assert_int_equal(info.rcode, RCODE_NXDOMAIN);
    assert_int_equal(get32(out + soa), 3600 - 299);
    assert_int_equal(lookup(c, "gone.example.com", TYPE_A, IN, false, false, T0 + 300000, &info),
                     0);
    assert_int_equal(stats(c).expired, 1);

    /* The other way round: SOA TTL 200, MINIMUM 900 -> 200. */
    header(&r.p, 0x8183, 0, 1, 0);
    question(&r.p, "gone.example.com", TYPE_A, IN);
    rr_soa(&r.p, 200, 900);
    scan(&r);
    insert(c, "gone.example.com", TYPE_A, IN, false, false, &r, T0);
    assert_int_not_equal(lookup_a(c, "gone.example.com", T0 + 199999), 0);
    assert_int_equal(lookup_a(c, "gone.example.com", T0 + 200000), 0);
    cache_destroy(c);
}

static void test_negative_nodata(void **state)
{
    (void)state;
    struct reply r;
    header(&r.p, 0x8180, 0, 1, 1);
    question(&r.p, "www.example.com", TYPE_AAAA, IN);
    rr_soa(&r.p, 120, 600);
    opt_do(&r.p);
    scan(&r);
    struct cache *c = cache_create(1 << 20);
    insert(c, "www.example.com", TYPE_AAAA, IN, false, false, &r, T0);
    struct dnsmsg_reply_info info;
    assert_int_equal(lookup(c, "www.example.com", TYPE_AAAA, IN, false, false, T0 + 119999, &info),
                     r.p.n);
    assert_int_equal(info.an, 0);
    assert_int_equal(info.ns, 1);
    assert_int_equal(lookup(c, "www.example.com", TYPE_AAAA, IN, false, false, T0 + 120000, &info),
                     0);
    cache_destroy(c);
}

/* An answer plus a SOA (a CNAME chain that ends in NODATA): the SOA minimum bounds it. */
static void test_answer_with_soa_bounded_by_minimum(void **state)
{
    (void)state;
    struct reply r;
    header(&r.p, 0x8180, 1, 1, 0);
    question(&r.p, "www.example.com", TYPE_AAAA, IN);
    rr_a(&r.p, 300, 0x0A000001); /* stands for the CNAME record: the lifetime rule is the point */
    rr_soa(&r.p, 300, 3);
    scan(&r);
    struct cache *c = cache_create(1 << 20);
    insert(c, "www.example.com", TYPE_AAAA, IN, false, false, &r, T0);
    struct dnsmsg_reply_info info;
    assert_int_equal(lookup(c, "www.example.com", TYPE_AAAA, IN, false, false, T0 + 2999, &info),
                     r.p.n);
    assert_int_equal(lookup(c, "www.example.com", TYPE_AAAA, IN, false, false, T0 + 3000, &info),
                     0);
    cache_destroy(c);
}

static void test_negative_without_soa(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20);
    struct reply r;
    header(&r.p, 0x8183, 0, 0, 0); /* NXDOMAIN, nothing else */
    question(&r.p, "gone.example.com", TYPE_A, IN);
    scan(&r);
    insert(c, "gone.example.com", TYPE_A, IN, false, false, &r, T0);
    assert_int_equal(lookup_a(c, "gone.example.com", T0), 0);

    header(&r.p, 0x8180, 0, 1, 0); /* NOERROR, no answer, only an NS: a referral */
    question(&r.p, "www.example.com", TYPE_A, IN);
    rr_ns(&r.p, 3600);
    scan(&r);
    insert(c, "www.example.com", TYPE_A, IN, false, false, &r, T0);
    assert_int_equal(lookup_a(c, "www.example.com", T0), 0);

    struct cache_stats s = stats(c);
    assert_int_equal(s.inserts, 0);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);
    cache_destroy(c);
}

static void test_servfail_five_seconds(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20);
    struct reply r;
    header(&r.p, 0x8182, 0, 0, 1);
    question(&r.p, "broken.example", TYPE_A, IN);
    opt_do(&r.p);
    scan(&r);
    insert(c, "broken.example", TYPE_A, IN, false, false, &r, T0);
    struct dnsmsg_reply_info info;
    assert_int_equal(lookup(c, "broken.example", TYPE_A, IN, false, false, T0 + 4999, &info),
                     r.p.n);
    assert_int_equal(info.rcode, RCODE_SERVFAIL);
    assert_int_equal(lookup(c, "broken.example", TYPE_A, IN, false, false, T0 + 5000, &info), 0);

    /* Records in a SERVFAIL do not make it live longer. */
    header(&r.p, 0x8182, 1, 0, 0);
    question(&r.p, "broken.example", TYPE_A, IN);
    rr_a(&r.p, 3600, 1);
    scan(&r);
    insert(c, "broken.example", TYPE_A, IN, false, false, &r, T0);
    assert_int_not_equal(lookup_a(c, "broken.example", T0 + 4999), 0);
    assert_int_equal(lookup_a(c, "broken.example", T0 + 5000), 0);
    cache_destroy(c);
}

static void test_not_cached(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20);
    static const uint16_t flags[] = {
        0x8185, /* REFUSED */
        0x8181, /* FORMERR */
        0x8184, /* NOTIMP */
        0x8380, /* NOERROR with TC=1 */
    };
    struct reply r;
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        header(&r.p, flags[i], 1, 1, 0);
        question(&r.p, "www.example.com", TYPE_A, IN);
        rr_a(&r.p, 300, 1);
        rr_soa(&r.p, 300, 300);
        scan(&r);
        insert(c, "www.example.com", TYPE_A, IN, false, false, &r, T0);
        assert_int_equal(lookup_a(c, "www.example.com", T0), 0);
    }

    /* An extended rcode (BADVERS) in the OPT. */
    header(&r.p, 0x8180, 1, 0, 1);
    question(&r.p, "www.example.com", TYPE_A, IN);
    rr_a(&r.p, 300, 1);
    put8(&r.p, 0);
    put16(&r.p, TYPE_OPT);
    put16(&r.p, 1232);
    put32(&r.p, 0x01000000);
    put16(&r.p, 0);
    scan(&r);
    assert_int_equal(r.info.rcode, RCODE_BADVERS);
    insert(c, "www.example.com", TYPE_A, IN, false, false, &r, T0);
    assert_int_equal(lookup_a(c, "www.example.com", T0), 0);

    /* Zero TTLs: in the answer, in the authority section, or one with the top bit set. */
    insert_a(c, "www.example.com", 0, 1, T0);
    assert_int_equal(lookup_a(c, "www.example.com", T0), 0);
    header(&r.p, 0x8180, 1, 1, 0);
    question(&r.p, "www.example.com", TYPE_A, IN);
    rr_a(&r.p, 300, 1);
    rr_ns(&r.p, 0);
    scan(&r);
    insert(c, "www.example.com", TYPE_A, IN, false, false, &r, T0);
    assert_int_equal(lookup_a(c, "www.example.com", T0), 0);
    insert_a(c, "www.example.com", 0x80000001u, 1, T0);
    assert_int_equal(lookup_a(c, "www.example.com", T0), 0);
    /* And a negative answer whose SOA MINIMUM is 0. */
    header(&r.p, 0x8183, 0, 1, 0);
    question(&r.p, "www.example.com", TYPE_A, IN);
    rr_soa(&r.p, 3600, 0);
    scan(&r);
    insert(c, "www.example.com", TYPE_A, IN, false, false, &r, T0);
    assert_int_equal(lookup_a(c, "www.example.com", T0), 0);

    assert_int_equal(stats(c).inserts, 0);
    assert_int_equal(stats(c).entries, 0);
    cache_destroy(c);
}

static void test_ttl_cap(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20);
    struct reply r;
    size_t an = a_reply(&r, "long.example", TYPE_A, IN, 1000000, 1);
    insert(c, "long.example", TYPE_A, IN, false, false, &r, T0);
    assert_int_equal(lookup_a(c, "long.example", T0), r.p.n);
    assert_int_equal(get32(out + an), 86400); /* clients see the cap too */
    assert_int_equal(lookup_a(c, "long.example", T0 + 86399999), r.p.n);
    assert_int_equal(get32(out + an), 1);
    assert_int_equal(lookup_a(c, "long.example", T0 + 86400000), 0);
    cache_destroy(c);
}

static void test_lru_eviction(void **state)
{
    (void)state;
    /* Learn the cost of one entry, then allow three and a half. */
    struct cache *probe = cache_create(1 << 20);
    insert_a(probe, "a.example", 300, 1, T0);
    size_t cost = stats(probe).bytes;
    assert_true(cost > 40); /* the reply plus overhead */
    cache_destroy(probe);

    struct cache *c = cache_create(3 * cost + cost / 2);
    insert_a(c, "a.example", 300, 1, T0);
    insert_a(c, "b.example", 300, 2, T0);
    insert_a(c, "c.example", 300, 3, T0);
    assert_int_equal(stats(c).entries, 3);
    assert_int_equal(stats(c).evictions, 0);
    assert_int_equal(stats(c).bytes, 3 * cost);

    /* A hit on a protects it: b is now the least recently used. */
    assert_int_not_equal(lookup_a(c, "a.example", T0), 0);
    insert_a(c, "d.example", 300, 4, T0);
    struct cache_stats s = stats(c);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.entries, 3);
    assert_true(s.bytes <= 3 * cost + cost / 2);
    assert_int_equal(lookup_a(c, "b.example", T0), 0);
    /* Order now (most recent first) after these hits: d, c, a. */
    assert_int_not_equal(lookup_a(c, "a.example", T0), 0);
    assert_int_not_equal(lookup_a(c, "c.example", T0), 0);
    assert_int_not_equal(lookup_a(c, "d.example", T0), 0);
    insert_a(c, "e.example", 300, 5, T0);
    assert_int_equal(stats(c).evictions, 2);
    assert_int_equal(lookup_a(c, "a.example", T0), 0);
    assert_int_not_equal(lookup_a(c, "c.example", T0), 0);
    assert_int_not_equal(lookup_a(c, "d.example", T0), 0);
    assert_int_not_equal(lookup_a(c, "e.example", T0), 0);
    cache_destroy(c);
}

/* Names of one length: "<prefix><i>.example". */
static const char *nth(char *buf, size_t size, char prefix, int i)
{
    snprintf(buf, size, "%c%04d.example", prefix, i);
    return buf;
}

static void insert_range(struct cache *c, char prefix, int from, int to)
{
    char name[32];
    for (int i = from; i < to; i++)
        insert_a(c, nth(name, sizeof name, prefix, i), 300, (uint32_t)i, T0);
}

/* Look names from..to-1 up (a hit counts as a use) and check each was there or not. */
static void assert_cached(struct cache *c, char prefix, int from, int to, bool cached)
{
    char name[32];
    for (int i = from; i < to; i++) {
        size_t n = lookup_a(c, nth(name, sizeof name, prefix, i), T0);
        if (cached)
            assert_int_not_equal(n, 0);
        else
            assert_int_equal(n, 0);
    }
}

/* Names asked once push out each other, not the names in use (segmented LRU); the names in use
 * are limited to 80% of the cache, past which their least recently used go back on probation. */
static void test_scan_resistance(void **state)
{
    (void)state;
    struct cache *probe = cache_create(1 << 20);
    insert_range(probe, 'p', 0, 1);
    size_t cost = stats(probe).bytes; /* every name here costs the same */
    cache_destroy(probe);

    struct cache *c = cache_create(20 * cost); /* 20 entries; 16 protected at most */
    insert_range(c, 'p', 0, 10);               /* ten names in use: asked, then asked again */
    assert_cached(c, 'p', 0, 10, true);
    insert_range(c, 'u', 0, 1000); /* a thousand names asked once */
    struct cache_stats s = stats(c);
    assert_int_equal(s.entries, 20);
    assert_int_equal(s.evictions, 990);
    assert_cached(c, 'p', 0, 10, true);
    assert_cached(c, 'u', 0, 990, false);
    /* The ten most recent one-time names are still there; a hit promotes them too. */
    assert_cached(c, 'u', 990, 1000, true);
    /* Now 20 names were hit: 16 fit the protected share. The 4 least recently used of them
     * (p0000-p0003) went back on probation and are the first to go. */
    insert_range(c, 'x', 0, 4);
    assert_cached(c, 'p', 0, 4, false);
    assert_cached(c, 'p', 4, 10, true);
    cache_destroy(c);
}

static void test_replace(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20);
    struct reply r;
    size_t an = a_reply(&r, "www.example.com", TYPE_A, IN, 300, 1);
    insert(c, "www.example.com", TYPE_A, IN, false, false, &r, T0);
    size_t cost = stats(c).bytes;
    a_reply(&r, "www.example.com", TYPE_A, IN, 60, 2);
    insert(c, "www.example.com", TYPE_A, IN, false, false, &r, T0 + 10000);

    struct cache_stats s = stats(c);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.inserts, 2);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(s.bytes, cost);
    assert_int_equal(lookup_a(c, "www.example.com", T0 + 10000), r.p.n);
    assert_int_equal(get32(out + an), 60);
    assert_int_equal(get32(out + an + 6), 2);
    /* The new entry's lifetime, counted from the new insert. */
    assert_int_not_equal(lookup_a(c, "www.example.com", T0 + 69999), 0);
    assert_int_equal(lookup_a(c, "www.example.com", T0 + 70000), 0);
    cache_destroy(c);
}

static void test_grows_100k(void **state)
{
    (void)state;
    enum { N = 100000 };
    struct cache *c = cache_create((size_t)64 << 20);
    size_t initial = stats(c).buckets;
    char name[32];
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof name, "Host%u.Example", i);
        struct reply r;
        a_reply(&r, name, TYPE_A, IN, 300, i);
        insert(c, name, TYPE_A, IN, false, false, &r, T0);
    }
    struct cache_stats s = stats(c);
    assert_int_equal(s.entries, N);
    assert_int_equal(s.evictions, 0);
    assert_true(s.buckets > initial);
    assert_true(s.buckets >= N);
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof name, "host%u.example", i);
        size_t n = lookup_a(c, name, T0 + 1000);
        assert_int_not_equal(n, 0);
        /* Names differ in length, so find this reply's address from its end. */
        assert_int_equal(get32(out + n - 4), i);
    }
    s = stats(c);
    assert_int_equal(s.hits, N);
    assert_int_equal(s.misses, 0);
    cache_destroy(c);
}

static void test_oversized(void **state)
{
    (void)state;
    struct cache *c = cache_create(8192); /* replies up to 2048 bytes */
    struct reply r;
    for (int pass = 0; pass < 2; pass++) {
        unsigned count = pass == 0 ? 130 : 120; /* 29 + 16 * count bytes: 2109, then 1949 */
        header(&r.p, 0x8180, (uint16_t)count, 0, 0);
        question(&r.p, "big.example", TYPE_A, IN);
        for (unsigned i = 0; i < count; i++)
            rr_a(&r.p, 300, i);
        scan(&r);
        insert(c, "big.example", TYPE_A, IN, false, false, &r, T0);
        if (pass == 0) {
            assert_true(r.p.n > 2048);
            assert_int_equal(lookup_a(c, "big.example", T0), 0);
            assert_int_equal(stats(c).inserts, 0);
        } else {
            assert_true(r.p.n <= 2048);
            assert_int_equal(lookup_a(c, "big.example", T0), r.p.n);
            assert_true(stats(c).bytes <= 8192);
        }
    }
    cache_destroy(c);

    /* A cache too small for anything keeps nothing and does not break. */
    c = cache_create(16);
    insert_a(c, "a.example", 300, 1, T0);
    assert_int_equal(lookup_a(c, "a.example", T0), 0);
    assert_int_equal(stats(c).entries, 0);
    cache_destroy(c);
}

static void test_stats(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20);
    struct cache_stats s = stats(c);
    assert_int_equal(s.hits + s.misses + s.inserts + s.evictions + s.expired, 0);
    assert_int_equal(s.bytes, 0);
    assert_int_equal(s.entries, 0);

    assert_int_equal(lookup_a(c, "a.example", T0), 0);     /* miss */
    insert_a(c, "a.example", 10, 1, T0);                   /* insert */
    insert_a(c, "b.example", 300, 2, T0);                  /* insert */
    assert_int_not_equal(lookup_a(c, "a.example", T0), 0); /* hit */
    assert_int_not_equal(lookup_a(c, "b.example", T0), 0); /* hit */
    assert_int_equal(lookup_a(c, "c.example", T0), 0);     /* miss */
    struct reply r;
    header(&r.p, 0x8185, 0, 0, 0);
    question(&r.p, "c.example", TYPE_A, IN);
    scan(&r);
    insert(c, "c.example", TYPE_A, IN, false, false, &r, T0); /* REFUSED: no insert */
    s = stats(c);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.misses, 2);
    assert_int_equal(s.inserts, 2);
    assert_int_equal(s.entries, 2);
    size_t two = s.bytes;

    assert_int_equal(lookup_a(c, "a.example", T0 + 10000), 0); /* expired: a miss */
    s = stats(c);
    assert_int_equal(s.expired, 1);
    assert_int_equal(s.misses, 3);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.bytes, two / 2); /* both entries had the same size */
    assert_int_equal(s.evictions, 0);
    cache_destroy(c);
    cache_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_miss_then_hit),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_key_fields),
        cmocka_unit_test(test_ttl_decrement),
        cmocka_unit_test(test_expiry_at_min_ttl),
        cmocka_unit_test(test_negative_nxdomain),
        cmocka_unit_test(test_negative_nodata),
        cmocka_unit_test(test_answer_with_soa_bounded_by_minimum),
        cmocka_unit_test(test_negative_without_soa),
        cmocka_unit_test(test_servfail_five_seconds),
        cmocka_unit_test(test_not_cached),
        cmocka_unit_test(test_ttl_cap),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_scan_resistance),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_grows_100k),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
