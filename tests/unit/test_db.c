/* Unit tests for the query log's storage: row ids under clock changes, expiry of rows, names
 * and clients, and the queries view. A real SQLite file in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"

#define T 1790000000000ULL /* a wall-clock millisecond in 2026 */

static char path[256];

static struct db *open_fresh(void)
{
    char dir[] = "/tmp/telesink-db-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/q.db", dir);
    int rc;
    char err[256];
    struct db *d = db_open(path, 100, &rc, err, sizeof err);
    assert_non_null(d);
    return d;
}

static void cleanup(struct db *d)
{
    db_close(d);
    char f[300];
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(f, sizeof f, "%s%s", path, suffix[i]);
        unlink(f);
    }
    *strrchr(path, '/') = '\0';
    rmdir(path);
}

static struct db_row row_at(struct db *d, uint64_t ms)
{
    int rc;
    struct db_row r = {.ts_ms = ms, .qtype = 1, .status = DB_FORWARDED, .duration_us = 5};
    r.domain = db_domain_id(d, "example.test", 12, (int64_t)(ms / 3600000), &rc);
    r.client = db_client_id(d, "192.0.2.1", "", "", (int64_t)(ms / 3600000), &rc);
    assert_true(r.domain > 0 && r.client > 0);
    return r;
}

/* The ids in the table, in order. */
static size_t ids(int64_t *out, size_t cap)
{
    sqlite3 *c;
    assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(c, "SELECT id FROM log ORDER BY id", -1, &st, NULL),
                     SQLITE_OK);
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < cap)
        out[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(c);
    return n;
}

static void insert_at(struct db *d, uint64_t ms)
{
    struct db_row r = row_at(d, ms);
    assert_int_equal(db_begin(d), SQLITE_OK);
    assert_int_equal(db_insert(d, &r), SQLITE_OK);
    assert_int_equal(db_commit(d), SQLITE_OK);
}

static void test_ids_follow_the_clock(void **state)
{
    (void)state;
    struct db *d = open_fresh();
    insert_at(d, T);
    insert_at(d, T);           /* same millisecond: the next sequence number */
    insert_at(d, T - 500);     /* a small step back: order kept, one past the last */
    insert_at(d, T - 3600000); /* an hour back: the id follows the clock */
    insert_at(d, T - 3600000);
    int64_t v[8];
    assert_int_equal(ids(v, 8), 5);
    assert_int_equal(v[0], (int64_t)((T - 3600000) << 10));
    assert_int_equal(v[1], (int64_t)((T - 3600000) << 10) + 1);
    assert_int_equal(v[2], (int64_t)(T << 10));
    assert_int_equal(v[3], (int64_t)(T << 10) + 1);
    assert_int_equal(v[4], (int64_t)(T << 10) + 2);
    cleanup(d);
}

static void test_step_back_onto_taken_ids(void **state)
{
    (void)state;
    struct db *d = open_fresh();
    insert_at(d, T - 5000);
    insert_at(d, T - 5000);
    insert_at(d, T);
    insert_at(d, T - 5000); /* back onto a millisecond that already has two rows: the next free */
    /* The rows after it continue from there, through the 32-row statement. */
    struct db_row rows[DB_INSERT_MANY];
    for (size_t i = 0; i < DB_INSERT_MANY; i++)
        rows[i] = row_at(d, T - 5000);
    assert_int_equal(db_begin(d), SQLITE_OK);
    assert_int_equal(db_insert_many(d, rows, DB_INSERT_MANY), SQLITE_OK);
    assert_int_equal(db_commit(d), SQLITE_OK);
    int64_t v[64];
    size_t n = ids(v, 64);
    assert_int_equal(n, 4 + DB_INSERT_MANY);
    size_t at_t = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n)
            assert_true(v[i] < v[i + 1]); /* distinct: the table's key */
        /* Every row keeps its true time: one at T, all the others at T - 5 s. */
        assert_true(v[i] >> 10 == (int64_t)(T - 5000) || v[i] >> 10 == (int64_t)T);
        at_t += v[i] >> 10 == (int64_t)T;
    }
    assert_int_equal(at_t, 1);
    cleanup(d);
}

static int64_t count(const char *sql)
{
    sqlite3 *c;
    assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(c);
    return v;
}

static void test_expiry_rows_then_names(void **state)
{
    (void)state;
    struct db *d = open_fresh();
    int rc;
    int64_t old_hour = (int64_t)((T - 86400000ULL * 3) / 3600000);
    struct db_row r = {.ts_ms = T - 86400000ULL * 3, .qtype = 1, .status = DB_BLOCKED};
    r.domain = db_domain_id(d, "old.example.test", 16, old_hour, &rc);
    r.client = db_client_id(d, "192.0.2.9", "", "", old_hour, &rc);
    assert_int_equal(db_begin(d), SQLITE_OK);
    for (int i = 0; i < 7; i++)
        assert_int_equal(db_insert(d, &r), SQLITE_OK);
    assert_int_equal(db_commit(d), SQLITE_OK);
    insert_at(d, T);
    uint64_t cutoff = T - 86400000ULL;
    /* Small chunks: 3, 3, 1, then nothing. */
    assert_int_equal(db_expire(d, cutoff, 3), 3);
    assert_int_equal(db_expire(d, cutoff, 3), 3);
    assert_int_equal(db_expire(d, cutoff, 3), 1);
    assert_int_equal(db_expire(d, cutoff, 3), 0);
    assert_int_equal(count("SELECT count(*) FROM log"), 1);
    assert_int_equal(db_expire_names(d, (int64_t)(cutoff / 3600000) - 1, 100), 2);
    assert_int_equal(count("SELECT count(*) FROM domains"), 1);
    assert_int_equal(count("SELECT count(*) FROM clients"), 1);
    assert_int_equal(count("SELECT count(*) FROM queries WHERE qname = 'example.test' AND "
                           "status = 'forwarded' AND qtype = 'A' AND rcode = 'NOERROR'"),
                     1);
    cleanup(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_follow_the_clock),
        cmocka_unit_test(test_step_back_onto_taken_ids),
        cmocka_unit_test(test_expiry_rows_then_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
