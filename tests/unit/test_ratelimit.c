/* Unit tests for the per-client rate limit: burst, refill, notices, eviction, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "ratelimit.h"

#define S 1000000000ULL /* one second in ns */

static struct ratelimit_key v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    struct ratelimit_key k;
    memset(&k, 0, sizeof k);
    k.kind = RATELIMIT_V4;
    k.prefix = 32;
    k.bytes[0] = a;
    k.bytes[1] = b;
    k.bytes[2] = c;
    k.bytes[3] = d;
    return k;
}

/* How many of n queries sent at `now` pass. */
static unsigned passes(struct ratelimit *rl, const struct ratelimit_key *k, unsigned n,
                       unsigned limit, unsigned seconds, uint64_t now)
{
    unsigned ok = 0;
    for (unsigned i = 0; i < n; i++)
        ok += ratelimit_check(rl, k, limit, seconds, now) == RATELIMIT_PASS;
    return ok;
}

static void test_burst_then_refused(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_create(42);
    struct ratelimit_key a = v4(10, 0, 0, 1);
    uint64_t t = 1000 * S;
    assert_int_equal(passes(rl, &a, 20, 20, 3600, t), 20);
    /* The 21st is refused and noticed; later ones are refused quietly. */
    assert_int_equal(ratelimit_check(rl, &a, 20, 3600, t), RATELIMIT_REFUSE_NOTICE);
    assert_int_equal(ratelimit_check(rl, &a, 20, 3600, t + S), RATELIMIT_REFUSE);
    assert_int_equal(ratelimit_check(rl, &a, 20, 3600, t + 100 * S), RATELIMIT_REFUSE);
    ratelimit_destroy(rl);
}

static void test_other_clients_unaffected(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_create(1);
    struct ratelimit_key a = v4(10, 0, 0, 1), b = v4(10, 0, 0, 2);
    uint64_t t = 5 * S;
    assert_int_equal(passes(rl, &a, 100, 10, 60, t), 10);
    assert_int_equal(passes(rl, &b, 10, 10, 60, t), 10);
    /* The same bytes as a MAC are another client. */
    struct ratelimit_key m = a;
    m.kind = RATELIMIT_MAC;
    m.prefix = 48;
    assert_int_equal(passes(rl, &m, 10, 10, 60, t), 10);
    /* So is the /24 a forwarder gave as Client Subnet. */
    struct ratelimit_key net = v4(10, 0, 0, 0);
    net.prefix = 24;
    assert_int_equal(passes(rl, &net, 10, 10, 60, t), 10);
    ratelimit_destroy(rl);
}

static void test_refill_one_per_interval(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_create(7);
    struct ratelimit_key a = v4(192, 168, 1, 23);
    uint64_t t = 10 * S;
    /* 60 per 60 s: one more every second once the burst is spent. */
    assert_int_equal(passes(rl, &a, 60, 60, 60, t), 60);
    assert_int_equal(passes(rl, &a, 1, 60, 60, t + S / 2), 0);
    assert_int_equal(passes(rl, &a, 5, 60, 60, t + S), 1);
    assert_int_equal(passes(rl, &a, 5, 60, 60, t + 3 * S), 2);
    /* After a whole window of silence the full burst is back. */
    assert_int_equal(passes(rl, &a, 100, 60, 60, t + 200 * S), 60);
    ratelimit_destroy(rl);
}

static void test_flooder_gets_the_limit_per_window(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_create(9);
    struct ratelimit_key a = v4(10, 1, 2, 3);
    /* 100/10 s, while the client sends 100 a second for 60 s: refusals cost it nothing, so it
     * gets the burst plus one per 0.1 s. */
    unsigned ok = 0, notices = 0;
    for (uint64_t ms = 0; ms < 60000; ms += 10) {
        enum ratelimit_verdict v = ratelimit_check(rl, &a, 100, 10, 1000 * S + ms * 1000000);
        ok += v == RATELIMIT_PASS;
        notices += v == RATELIMIT_REFUSE_NOTICE;
    }
    assert_in_range(ok, 100 + 590, 100 + 600);
    /* Noticed once per 10 s window, not per query. */
    assert_in_range(notices, 5, 6);
    ratelimit_destroy(rl);
}

static void test_limits_may_change(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_create(3);
    struct ratelimit_key a = v4(10, 0, 0, 9);
    assert_int_equal(passes(rl, &a, 10, 5, 60, S), 5);
    /* A reload raises the limit: the 5 queries it sent count against the new one. */
    assert_int_equal(passes(rl, &a, 1000, 1000, 60, S), 995);
    /* And lowers it: the client owes 1000 queries, more than a window of the new limit. */
    assert_int_equal(passes(rl, &a, 10, 10, 60, S), 0);
    assert_int_equal(passes(rl, &a, 10, 10, 60, S + 6 * S), 1);
    ratelimit_destroy(rl);
}

static void test_spoofed_flood_cannot_evict_a_limited_client(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_create(11);
    struct ratelimit_key bad = v4(10, 9, 9, 9);
    uint64_t t = 100 * S;
    assert_int_equal(passes(rl, &bad, 50, 50, 60, t), 50);
    /* 100,000 spoofed sources, one query each: many times the table's size. */
    for (unsigned i = 0; i < 100000; i++) {
        struct ratelimit_key k = v4(172, 16, (uint8_t)(i >> 8), (uint8_t)i);
        k.bytes[1] = (uint8_t)(16 + (i >> 16));
        assert_int_equal(ratelimit_check(rl, &k, 50, 60, t + 1), RATELIMIT_PASS);
    }
    /* The flooding client is still remembered and still limited. */
    assert_int_equal(passes(rl, &bad, 10, 50, 60, t + 2), 0);
    ratelimit_destroy(rl);
}

struct hammer {
    struct ratelimit *rl;
    struct ratelimit_key key;
    unsigned ok;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    h->ok = passes(h->rl, &h->key, 200000, 1000, 60, 50 * S);
    return NULL;
}

static void test_threads_share_one_count(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_create(5);
    struct hammer h[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){.rl = rl, .key = v4(10, 0, 0, 77)};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
    }
    unsigned total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += h[i].ok;
    }
    /* However the queries were spread over the threads, the client got its limit, exactly. */
    assert_int_equal(total, 1000);
    ratelimit_destroy(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refused),
        cmocka_unit_test(test_other_clients_unaffected),
        cmocka_unit_test(test_refill_one_per_interval),
        cmocka_unit_test(test_flooder_gets_the_limit_per_window),
        cmocka_unit_test(test_limits_may_change),
        cmocka_unit_test(test_spoofed_flood_cannot_evict_a_limited_client),
        cmocka_unit_test(test_threads_share_one_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
