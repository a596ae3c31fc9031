/* Unit tests for the query log's name directory: lookups through collisions, removal that
 * shifts runs back (also across the end of the table), growth, against a plain array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "namedir.h"

/* Every id the directory gives for hash, as a bit per id below 64 (the model's ids are small). */
static uint64_t ids_for(const struct namedir *d, uint32_t hash)
{
    uint64_t bits = 0;
    size_t cursor = 0;
    int64_t id;
    while ((id = namedir_next(d, hash, &cursor)) != 0) {
        assert_true(id > 0 && id < 64);
        assert_false(bits & (1ULL << id)); /* each id once */
        bits |= 1ULL << id;
    }
    return bits;
}

static void test_collisions_and_removal(void **state)
{
    (void)state;
    struct namedir d = {0};
    assert_int_equal(namedir_next(&d, 7, &(size_t){0}), 0);
    assert_false(namedir_remove(&d, 7, 1));
    /* Three ids on one hash, one on the next home slot, one on the table's last slot (its run
     * wraps to slot 0). */
    assert_int_equal(namedir_add(&d, 5, 1), 0);
    assert_int_equal(namedir_add(&d, 5, 2), 0);
    assert_int_equal(namedir_add(&d, 6, 3), 0);
    assert_int_equal(namedir_add(&d, 5, 4), 0);
    assert_int_equal(namedir_add(&d, 1023, 5), 0);
    assert_int_equal(namedir_add(&d, 1023, 6), 0);
    assert_int_equal(namedir_add(&d, 0, 7), 0);
    assert_int_equal(ids_for(&d, 5), 1 << 1 | 1 << 2 | 1 << 4);
    assert_int_equal(ids_for(&d, 6), 1 << 3);
    assert_int_equal(ids_for(&d, 1023), 1 << 5 | 1 << 6);
    assert_int_equal(ids_for(&d, 0), 1 << 7);
    assert_int_equal(ids_for(&d, 9), 0);
    assert_false(namedir_remove(&d, 5, 3)); /* right id, wrong hash */
    assert_true(namedir_remove(&d, 5, 1));
    assert_int_equal(ids_for(&d, 5), 1 << 2 | 1 << 4);
    assert_int_equal(ids_for(&d, 6), 1 << 3);
    assert_true(namedir_remove(&d, 1023, 5));
    assert_int_equal(ids_for(&d, 1023), 1 << 6);
    assert_int_equal(ids_for(&d, 0), 1 << 7);
    assert_int_equal(d.count, 5);
    namedir_clear(&d);
    assert_int_equal(ids_for(&d, 5), 0);
    assert_int_equal(d.count, 0);
    namedir_free(&d);
}

/* Random adds and removes over a few hashes that crowd together, through several growths,
 * checked against an array after every step. */
static void test_against_a_model(void **state)
{
    (void)state;
    enum { IDS = 63 };
    int64_t model[IDS + 1] = {0}; /* id -> hash + 1, 0 = absent */
    struct namedir d = {0};
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    for (int step = 0; step < 200000; step++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int64_t id = 1 + (int64_t)(rng % IDS);
        /* Hashes near the end of a 1024-slot table and a few far apart: runs wrap. */
        static const uint32_t hashes[] = {1020, 1021, 1023, 0, 2, 70000, 0xffffffffu};
        uint32_t hash = hashes[(rng >> 20) % 7];
        if (model[id]) {
            assert_true(namedir_remove(&d, (uint32_t)(model[id] - 1), id));
            model[id] = 0;
        } else {
            assert_int_equal(namedir_add(&d, hash, id), 0);
            model[id] = (int64_t)hash + 1;
        }
        if (step % 97 == 0) {
            for (size_t h = 0; h < 7; h++) {
                uint64_t want = 0;
                for (int i = 1; i <= IDS; i++)
                    want |= (uint64_t)(model[i] == (int64_t)hashes[h] + 1) << i;
                assert_int_equal(ids_for(&d, hashes[h]), want);
            }
        }
    }
    /* Many more names: the table grows and keeps them all. */
    namedir_clear(&d);
    for (uint32_t i = 1; i <= 100000; i++)
        assert_int_equal(namedir_add(&d, i * 2654435761u, i), 0);
    assert_true(d.cap >= 131072 && d.count == 100000);
    for (uint32_t i = 1; i <= 100000; i += 999) {
        size_t cursor = 0;
        int64_t id;
        while ((id = namedir_next(&d, i * 2654435761u, &cursor)) != 0 && id != (int64_t)i)
            ;
        assert_int_equal(id, i);
    }
    namedir_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collisions_and_removal),
        cmocka_unit_test(test_against_a_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
