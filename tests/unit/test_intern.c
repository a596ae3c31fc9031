/* Unit tests for intern: one copy per string, bounded, safe from several threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "intern.h"

static void test_one_copy(void **state)
{
    (void)state;
    char buf[] = "phone-anna";
    const char *a = intern(buf, strlen(buf));
    assert_non_null(a);
    assert_string_equal(a, "phone-anna");
    assert_ptr_not_equal(a, buf);
    buf[0] = 'P'; /* the copy is its own */
    assert_string_equal(a, "phone-anna");
    assert_ptr_equal(intern("phone-anna", 10), a);
    assert_ptr_equal(intern("phone-annaXYZ", 10), a); /* only len bytes count */
    const char *b = intern("phone-ann", 9);
    assert_non_null(b);
    assert_ptr_not_equal(b, a);
    intern_free_all();
}

static void test_refused(void **state)
{
    (void)state;
    char longest[INTERN_LEN + 2];
    memset(longest, 'a', sizeof longest);
    assert_null(intern("", 0));
    assert_null(intern("a\0b", 3));
    assert_null(intern(longest, INTERN_LEN + 1));
    assert_non_null(intern(longest, INTERN_LEN));
    intern_free_all();
}

static void test_full_table_keeps_what_it_has(void **state)
{
    (void)state;
    char name[32];
    const char *first = intern("device-0", 8);
    for (int i = 1; i < INTERN_MAX; i++) {
        int n = snprintf(name, sizeof name, "device-%d", i);
        assert_non_null(intern(name, (size_t)n));
    }
    assert_null(intern("one-too-many", 12));
    assert_ptr_equal(intern("device-0", 8), first); /* still found */
    int n = snprintf(name, sizeof name, "device-%d", INTERN_MAX - 1);
    assert_non_null(intern(name, (size_t)n));
    intern_free_all();
    assert_non_null(intern("one-too-many", 12)); /* room again after a reset */
    intern_free_all();
}

static void *intern_many(void *arg)
{
    const char **out = arg;
    char name[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(name, sizeof name, "shared-%d", i);
        out[i] = intern(name, (size_t)n);
    }
    return NULL;
}

static void test_threads_get_the_same_copies(void **state)
{
    (void)state;
    static const char *got[4][1000];
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, intern_many, got[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int k = 0; k < 1000; k++) {
        assert_non_null(got[0][k]);
        for (int i = 1; i < 4; i++)
            assert_ptr_equal(got[i][k], got[0][k]);
    }
    intern_free_all();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_copy),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_full_table_keeps_what_it_has),
        cmocka_unit_test(test_threads_get_the_same_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
