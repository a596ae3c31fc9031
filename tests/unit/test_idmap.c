/* Unit tests for the query log's id caches: lookups through hash collisions, growth, the two
 * generations (keys in use survive a rotation, unused ones are forgotten after one), stamps
 * kept when a key moves, clearing, and keys too long to cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "idmap.h"

/* The key "k<i>" and a hash with few distinct low bits, so that keys collide in the table. */
static const char *key(unsigned i, char *buf)
{
    snprintf(buf, 16, "k%u", i);
    return buf;
}

static uint64_t hash(unsigned i)
{
    return ((uint64_t)i << 32) | (i % 3) | 0x100;
}

static int64_t lookup(struct idmap *m, unsigned i)
{
    char b[16];
    const char *k = key(i, b);
    const struct idslot *s = idmap_get(m, k, strlen(k), hash(i));
    return s ? s->id : 0;
}

static void put(struct idmap *m, unsigned i, uint16_t stamp)
{
    char b[16];
    const char *k = key(i, b);
    assert_null(idmap_get(m, k, strlen(k), hash(i)));
    struct idslot *s = idmap_put(m, k, strlen(k), hash(i), 1000 + i, stamp);
    assert_non_null(s);
    assert_int_equal(s->id, 1000 + i);
}

static void test_get_put_collisions_and_growth(void **state)
{
    (void)state;
    struct idmap m;
    idmap_init(&m, 4, 1024);
    assert_int_equal(lookup(&m, 1), 0);
    for (unsigned i = 1; i <= 300; i++)
        put(&m, i, (uint16_t)i);
    assert_true(m.cur.slots >= 512); /* grew, and never rotated */
    assert_int_equal(m.old.count, 0);
    for (unsigned i = 1; i <= 300; i++)
        assert_int_equal(lookup(&m, i), 1000 + i);
    /* Same hash, other bytes; same bytes, other length: not found. */
    char b[16];
    assert_null(idmap_get(&m, "x7", 2, hash(7)));
    assert_null(idmap_get(&m, key(7, b), 1, hash(7))); /* "k" */
    assert_int_equal(lookup(&m, 301), 0);
    idmap_free(&m);
}

static void test_generations(void **state)
{
    (void)state;
    struct idmap m;
    idmap_init(&m, 16, 16); /* each table holds 8 keys */
    for (unsigned i = 0; i < 8; i++)
        put(&m, i, (uint16_t)(50 + i));
    assert_int_equal(m.cur.count, 8);
    put(&m, 8, 58); /* the current table was full: it becomes the previous one */
    assert_int_equal(m.old.count, 8);
    assert_int_equal(m.cur.count, 1);
    /* Key 0 is used again: it moves into the current table with its stamp. */
    char b[16];
    const char *k0 = key(0, b);
    struct idslot *s = idmap_get(&m, k0, strlen(k0), hash(0));
    assert_non_null(s);
    assert_int_equal(s->id, 1000);
    assert_int_equal(s->stamp, 50);
    s->stamp = 77; /* the caller's changes stay with the moved slot */
    assert_int_equal(m.cur.count, 2);
    for (unsigned i = 9; i < 15; i++)
        put(&m, i, 0);
    assert_int_equal(m.cur.count, 8);
    put(&m, 15, 0); /* second rotation: keys 1-7 were not used for a whole generation */
    for (unsigned i = 1; i < 8; i++)
        assert_int_equal(lookup(&m, i), 0);
    s = idmap_get(&m, k0, strlen(k0), hash(0));
    assert_non_null(s);
    assert_int_equal(s->stamp, 77);
    for (unsigned i = 8; i < 16; i++)
        assert_int_equal(lookup(&m, i), 1000 + i);
    idmap_free(&m);
}

/* Moving keys back into a full current table rotates it too: nothing is lost that was used. */
static void test_moves_through_rotations(void **state)
{
    (void)state;
    struct idmap m;
    idmap_init(&m, 8, 8); /* 4 keys a table */
    for (unsigned i = 0; i < 200; i++) {
        put(&m, i, (uint16_t)i);
        /* The last three keys stay in use all along. */
        for (unsigned j = i >= 3 ? i - 3 : 0; j < i; j++)
            assert_int_equal(lookup(&m, j), 1000 + j);
    }
    idmap_free(&m);
}

static void test_clear_and_long_keys(void **state)
{
    (void)state;
    struct idmap m;
    idmap_init(&m, 16, 64);
    for (unsigned i = 0; i < 40; i++)
        put(&m, i, 0);
    assert_int_not_equal(m.old.count, 0);
    idmap_clear(&m);
    for (unsigned i = 0; i < 40; i++)
        assert_int_equal(lookup(&m, i), 0);
    put(&m, 3, 0);
    assert_int_equal(lookup(&m, 3), 1003);
    /* A key longer than the arena's first size (a small table's), then one too long. */
    char long_key[3000];
    memset(long_key, 'a', sizeof long_key);
    struct idmap small;
    idmap_init(&small, 4, 8);
    assert_non_null(idmap_put(&small, long_key, sizeof long_key, 43, 8, 0));
    const struct idslot *s = idmap_get(&small, long_key, sizeof long_key, 43);
    assert_non_null(s);
    assert_int_equal(s->id, 8);
    idmap_free(&small);
    size_t n = IDMAP_KEY_MAX + 1;
    char *big = calloc(1, n);
    assert_non_null(big);
    assert_null(idmap_put(&m, big, n, 42, 9, 0));
    assert_null(idmap_get(&m, big, n, 42));
    free(big);
    idmap_free(&m);
    idmap_free(&m); /* twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_put_collisions_and_growth),
        cmocka_unit_test(test_generations),
        cmocka_unit_test(test_moves_through_rotations),
        cmocka_unit_test(test_clear_and_long_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
