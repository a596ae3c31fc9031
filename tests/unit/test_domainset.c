/* Unit tests for the domain set: exact and subtree entries, wire and text lookups, growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "domainset.h"
#include "lists.h"

#define SEED 0x0123456789ABCDEFULL

/* ---- helpers ---- */

/* A dotted name in wire form (every '.' separates labels). Returns the length. */
static size_t to_wire(const char *dotted, uint8_t *out)
{
    size_t n = 0;
    while (*dotted) {
        const char *dot = strchr(dotted, '.');
        size_t l = dot ? (size_t)(dot - dotted) : strlen(dotted);
        out[n++] = (uint8_t)l;
        memcpy(out + n, dotted, l);
        n += l;
        dotted += l + (dot ? 1 : 0);
    }
    out[n++] = 0;
    return n;
}

static void add(struct domainset *s, const char *name, bool subtree, uint16_t source)
{
    assert_int_equal(domainset_add(s, name, strlen(name), subtree, source), DOMAINSET_ADDED);
}

static bool match_text(const struct domainset *s, const char *name, struct domainset_hit *hit)
{
    struct domainset_hit tmp;
    return domainset_match_text(s, name, strlen(name), hit ? hit : &tmp);
}

static bool match_wire(const struct domainset *s, const char *dotted, struct domainset_hit *hit)
{
    uint8_t wire[1024];
    struct domainset_hit tmp;
    size_t n = to_wire(dotted, wire);
    return domainset_match_wire(s, wire, n, hit ? hit : &tmp);
}

/* Text and wire lookups must give the same answer; returns it. */
static bool match(const struct domainset *s, const char *name, struct domainset_hit *hit)
{
    struct domainset_hit th = {0}, wh = {0};
    bool t = match_text(s, name, &th);
    bool w = match_wire(s, name, &wh);
    assert_int_equal(t, w);
    if (t) {
        assert_int_equal(th.source, wh.source);
        assert_int_equal(th.subtree, wh.subtree);
        assert_int_equal(th.depth, wh.depth);
        if (hit)
            *hit = th;
    }
    return t;
}

/* ---- tests ---- */

static void test_exact_matches_only_the_name(void **state)
{
    (void)state;
    struct domainset *s = domainset_create(16, SEED);
    assert_non_null(s);
    add(s, "ads.example.com", false, 1);
    assert_true(match(s, "ads.example.com", NULL));
    assert_false(match(s, "x.ads.example.com", NULL));
    assert_false(match(s, "a.b.ads.example.com", NULL));
    assert_false(match(s, "example.com", NULL));
    assert_false(match(s, "com", NULL));
    assert_false(match(s, "ads.example.org", NULL));
    assert_false(match(s, "dads.example.com", NULL));
    domainset_destroy(s);
}

static void test_subtree_matches_descendants(void **state)
{
    (void)state;
    struct domainset *s = domainset_create(16, SEED);
    add(s, "example.com", true, 4);
    struct domainset_hit hit;
    assert_true(match(s, "example.com", &hit));
    assert_int_equal(hit.depth, 0);
    assert_true(match(s, "www.example.com", &hit));
    assert_int_equal(hit.depth, 1);
    assert_true(match(s, "a.b.c.example.com", &hit));
    assert_int_equal(hit.depth, 3);
    /* Not the parent, not a sibling sharing characters but not labels. */
    assert_false(match(s, "com", NULL));
    assert_false(match(s, "xample.com", NULL));
    assert_false(match(s, "badexample.com", NULL));
    assert_false(match(s, "example.co", NULL));
    assert_false(match(s, "example.com.evil", NULL));
    assert_false(match(s, "www.example.org", NULL));
    domainset_destroy(s);
}

static void test_case_insensitive(void **state)
{
    (void)state;
    struct domainset *s = domainset_create(16, SEED);
    add(s, "Tracker.EXAMPLE.com", false, 2);
    add(s, "metrics.example.NET", true, 3);
    struct domainset_hit hit;
    assert_true(match(s, "tracker.example.com", &hit));
    assert_int_equal(hit.source, 2);
    assert_true(match(s, "TRACKER.EXAMPLE.COM", &hit));
    assert_true(match(s, "tRaCkEr.ExAmPlE.cOm", &hit));
    assert_true(match(s, "Metrics.Example.Net", &hit));
    assert_int_equal(hit.source, 3);
    assert_true(match(s, "EU.METRICS.EXAMPLE.NET", &hit));
    assert_int_equal(hit.depth, 1);
    /* A raw wire name with mixed case, as a client sends it. */
    static const uint8_t wire[] = "\7TrAcKeR\7Example\3COM";
    assert_true(domainset_match_wire(s, wire, sizeof wire, &hit));
    assert_int_equal(hit.source, 2);
    domainset_destroy(s);
}

static void test_trailing_dot_normalised(void **state)
{
    (void)state;
    /* lists_normalize_name accepts the trailing dot; domainset_add takes what it returns. */
    const char *text = "Phone.Home.Example.";
    char norm[LISTS_MAX_NAME + 1];
    size_t n = lists_normalize_name(text, strlen(text), norm);
    assert_int_equal(n, strlen("phone.home.example"));
    assert_memory_equal(norm, "phone.home.example", n);
    struct domainset *s = domainset_create(16, SEED);
    assert_int_equal(domainset_add(s, norm, n, false, 0), DOMAINSET_ADDED);
    assert_true(match(s, "phone.home.example", NULL));
    assert_true(match(s, "PHONE.home.example", NULL));
    assert_false(match(s, "home.example", NULL));
    domainset_destroy(s);
}

static void test_wire_label_with_dot(void **state)
{
    (void)state;
    struct domainset *s = domainset_create(16, SEED);
    add(s, "b.example.com", true, 1);
    add(s, "a.b.example.com", false, 2);
    add(s, "a.b.example.com", true, 3);
    /* The single label "a.b" under example.com: neither entry. */
    static const uint8_t dotted[] = "\3a.b\7example\3com";
    struct domainset_hit hit;
    assert_false(domainset_match_wire(s, dotted, sizeof dotted, &hit));
    /* The same bytes read as two labels do match. */
    static const uint8_t two[] = "\1a\1b\7example\3com";
    assert_true(domainset_match_wire(s, two, sizeof two, &hit));
    assert_int_equal(hit.source, 2); /* at the name itself the exact entry is the most specific */
    assert_false(hit.subtree);
    static const uint8_t x_two[] = "\1x\1a\1b\7example\3com";
    assert_true(domainset_match_wire(s, x_two, sizeof x_two, &hit));
    assert_int_equal(hit.source, 3);
    assert_int_equal(hit.depth, 1);
    /* And below it: "x" + "a.b" + example.com is still not under b.example.com. */
    static const uint8_t below[] = "\1x\3a.b\7example\3com";
    assert_false(domainset_match_wire(s, below, sizeof below, &hit));
    domainset_destroy(s);
}

static void test_punycode_labels(void **state)
{
    (void)state;
    struct domainset *s = domainset_create(16, SEED);
    add(s, "xn--bcher-kva.example", true, 7);
    struct domainset_hit hit;
    assert_true(match(s, "xn--bcher-kva.example", &hit));
    assert_int_equal(hit.source, 7);
    assert_true(match(s, "www.XN--BCHER-KVA.example", &hit));
    assert_int_equal(hit.depth, 1);
    assert_false(match(s, "xn--bcher-kvb.example", NULL));
    assert_false(match(s, "bcher-kva.example", NULL));
    domainset_destroy(s);
}

static void test_hit_fields(void **state)
{
    (void)state;
    struct domainset *s = domainset_create(16, SEED);
    add(s, "example.org", true, 3);
    add(s, "www.example.org", false, 5);
    add(s, "ads.example.org", true, 9);
    struct domainset_hit hit;

    assert_true(match(s, "www.example.org", &hit)); /* the exact entry itself */
    assert_int_equal(hit.source, 5);
    assert_false(hit.subtree);
    assert_int_equal(hit.depth, 0);

    assert_true(match(s, "x.www.example.org", &hit)); /* exact does not cover it: the parent */
    assert_int_equal(hit.source, 3);
    assert_true(hit.subtree);
    assert_int_equal(hit.depth, 2);

    assert_true(match(s, "example.org", &hit));
    assert_int_equal(hit.source, 3);
    assert_true(hit.subtree);
    assert_int_equal(hit.depth, 0);

    assert_true(match(s, "b.a.ads.example.org", &hit)); /* the nearest subtree wins */
    assert_int_equal(hit.source, 9);
    assert_true(hit.subtree);
    assert_int_equal(hit.depth, 2);

    /* The largest source number survives the round trip. */
    add(s, "last.example", false, DOMAINSET_MAX_SOURCE);
    assert_true(match(s, "last.example", &hit));
    assert_int_equal(hit.source, DOMAINSET_MAX_SOURCE);
    add(s, "zero.example", true, 0);
    assert_true(match(s, "a.zero.example", &hit));
    assert_int_equal(hit.source, 0);
    domainset_destroy(s);
}

static void test_duplicates(void **state)
{
    (void)state;
    struct domainset *s = domainset_create(16, SEED);
    const char *n = "dup.example";
    assert_int_equal(domainset_add(s, n, strlen(n), false, 1), DOMAINSET_ADDED);
    assert_int_equal(domainset_add(s, n, strlen(n), false, 2), DOMAINSET_DUPLICATE);
    assert_int_equal(domainset_add(s, "DUP.Example", 11, false, 3), DOMAINSET_DUPLICATE);
    assert_int_equal(domainset_count(s), 1);
    struct domainset_hit hit;
    assert_true(match(s, n, &hit));
    assert_int_equal(hit.source, 1); /* the first source is kept */
    assert_false(hit.subtree);

    /* The same name as a subtree, from another source: recorded too. */
    assert_int_equal(domainset_add(s, n, strlen(n), true, 4), DOMAINSET_ADDED);
    assert_true(match(s, "sub.dup.example", &hit));
    assert_int_equal(hit.source, 4);
    assert_true(hit.subtree);
    assert_int_equal(hit.depth, 1);
    /* At the name itself the exact entry is reported before the subtree one. */
    assert_true(match(s, n, &hit));
    assert_int_equal(hit.source, 1);
    assert_false(hit.subtree);
    /* Both kinds are now present: adding either again is a duplicate. */
    assert_int_equal(domainset_add(s, n, strlen(n), true, 5), DOMAINSET_DUPLICATE);
    assert_int_equal(domainset_add(s, n, strlen(n), false, 6), DOMAINSET_DUPLICATE);
    assert_true(match(s, "sub.dup.example", &hit));
    assert_int_equal(hit.source, 4);

    /* Subtree first, then exact: the exact one is recorded, the subtree source still kept. */
    assert_int_equal(domainset_add(s, "two.example", 11, true, 7), DOMAINSET_ADDED);
    assert_int_equal(domainset_add(s, "two.example", 11, false, 8), DOMAINSET_ADDED);
    assert_int_equal(domainset_add(s, "two.example", 11, false, 9), DOMAINSET_DUPLICATE);
    assert_true(match(s, "a.two.example", &hit));
    assert_int_equal(hit.source, 7);
    assert_true(hit.subtree);
    assert_true(match(s, "two.example", &hit));
    assert_int_equal(hit.source, 8);
    assert_false(hit.subtree);
    domainset_destroy(s);
}

static void test_growth(void **state)
{
    (void)state;
    enum { N = 100000 };
    struct domainset *s = domainset_create(1, SEED);
    assert_non_null(s);
    size_t before = domainset_memory(s);
    char name[64];
    for (unsigned i = 0; i < N; i++) {
        int len = snprintf(name, sizeof name, "host%u.zone%u.example", i, i % 97);
        assert_int_equal(domainset_add(s, name, (size_t)len, i % 2 == 0, (uint16_t)(i % 1000)),
                         DOMAINSET_ADDED);
    }
    assert_int_equal(domainset_count(s), N);
    assert_true(domainset_memory(s) > before);
    assert_true(domainset_memory(s) >= (size_t)N * 12);
    struct domainset_hit hit;
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof name, "host%u.zone%u.example", i, i % 97);
        assert_true(match_text(s, name, &hit));
        assert_int_equal(hit.source, i % 1000);
        assert_int_equal(hit.subtree, i % 2 == 0);
        if (i % 97 == 0) /* the wire path too, on a sample */
            assert_true(match(s, name, NULL));
    }
    /* Names never added: other numbers, other zones, descendants of exact entries. */
    for (unsigned i = N; i < N + 20000; i++) {
        snprintf(name, sizeof name, "host%u.zone%u.example", i, i % 97);
        assert_false(match_text(s, name, NULL));
    }
    for (unsigned i = 0; i < 20000; i++) {
        snprintf(name, sizeof name, "host%u.zone%u.example", i, (i + 1) % 97);
        assert_false(match_text(s, name, NULL));
        snprintf(name, sizeof name, "x.host%u.zone%u.example", i, i % 97);
        assert_int_equal(match_text(s, name, NULL), i % 2 == 0);
    }
    assert_false(match(s, "zone1.example", NULL));
    assert_false(match(s, "example", NULL));
    domainset_destroy(s);
}

static void test_long_and_malformed_wire(void **state)
{
    (void)state;
    struct domainset *s = domainset_create(16, SEED);
    add(s, "www", true, 1);
    add(s, "deep", false, 2);
    struct domainset_hit hit;

    /* 127 labels of one byte: 255 bytes, the longest legal name. Not in the set. */
    uint8_t wire[1024];
    size_t n = 0;
    for (int i = 0; i < 127; i++) {
        wire[n++] = 1;
        wire[n++] = 'a';
    }
    wire[n++] = 0;
    assert_int_equal(n, 255);
    assert_false(domainset_match_wire(s, wire, n, &hit));

    /* The same with a subtree entry for its last label: a match 126 labels deep. */
    add(s, "a", true, 3);
    assert_true(domainset_match_wire(s, wire, n, &hit));
    assert_int_equal(hit.source, 3);
    assert_int_equal(hit.depth, 126);

    /* And as an exact entry of all 127 labels (253 bytes of text). */
    char text[256];
    size_t t = 0;
    for (int i = 0; i < 127; i++) {
        if (i)
            text[t++] = '.';
        text[t++] = 'b';
    }
    assert_int_equal(t, 253);
    assert_int_equal(domainset_add(s, text, t, false, 4), DOMAINSET_ADDED);
    for (size_t i = 1; i < 255; i += 2)
        wire[i] = 'B';
    assert_true(domainset_match_wire(s, wire, n, &hit));
    assert_int_equal(hit.source, 4);
    assert_false(hit.subtree);
    assert_true(domainset_match_text(s, text, t, &hit));
    assert_int_equal(hit.source, 4);

    /* Far more labels than any name has: no match, no overflow. */
    n = 0;
    for (int i = 0; i < 300; i++) {
        wire[n++] = 1;
        wire[n++] = 'a';
    }
    wire[n++] = 0;
    assert_false(domainset_match_wire(s, wire, n, &hit));

    /* A label longer than what is left: "\3www\7ex" (cut). */
    static const uint8_t cut[] = "\3www\7example\3com";
    assert_false(domainset_match_wire(s, cut, 6, &hit));
    assert_false(domainset_match_wire(s, cut, 4 + 8 + 2, &hit));
    /* Bytes past len are not read, even when they would complete a matching name. */
    struct domainset *com = domainset_create(4, SEED);
    add(com, "com", true, 5);
    static const uint8_t full[] = "\7example\3com";
    assert_true(domainset_match_wire(com, full, sizeof full, &hit));
    assert_false(domainset_match_wire(com, full, 10, &hit));
    assert_false(domainset_match_wire(com, full, 11, &hit));
    domainset_destroy(com);
    /* A label length of 64 and a compression pointer are not plain labels. */
    uint8_t big[70] = {64};
    memset(big + 1, 'w', 64);
    big[65] = 0;
    assert_false(domainset_match_wire(s, big, 66, &hit));
    /* ... even when the labels after it would match ("www" is a subtree entry). */
    memcpy(big + 65, "\3www", 5);
    assert_false(domainset_match_wire(s, big, 70, &hit));
    static const uint8_t ptr[] = "\4deep\xC0\x0C";
    assert_false(domainset_match_wire(s, ptr, sizeof ptr - 1, &hit));
    /* The root and an empty buffer match nothing. */
    static const uint8_t root[] = "";
    assert_false(domainset_match_wire(s, root, 1, &hit));
    assert_false(domainset_match_wire(s, root, 0, &hit));
    /* Sanity: the intact name does match. */
    static const uint8_t www[] = "\3www";
    assert_true(domainset_match_wire(s, www, sizeof www, &hit));
    assert_int_equal(hit.source, 1);
    domainset_destroy(s);
}

static void test_seed_independent(void **state)
{
    (void)state;
    /* Any seed (zero included) gives the same answers. */
    const uint64_t seeds[] = {0, 1, 0xFFFFFFFFFFFFFFFFULL, SEED};
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        struct domainset *s = domainset_create(4, seeds[i]);
        add(s, "a.example", true, 1);
        add(s, "b.example", false, 2);
        assert_true(match(s, "x.a.example", NULL));
        assert_true(match(s, "b.example", NULL));
        assert_false(match(s, "x.b.example", NULL));
        assert_false(match(s, "example", NULL));
        assert_int_equal(domainset_count(s), 2);
        domainset_destroy(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_matches_only_the_name),
        cmocka_unit_test(test_subtree_matches_descendants),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_trailing_dot_normalised),
        cmocka_unit_test(test_wire_label_with_dot),
        cmocka_unit_test(test_punycode_labels),
        cmocka_unit_test(test_hit_fields),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_long_and_malformed_wire),
        cmocka_unit_test(test_seed_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
