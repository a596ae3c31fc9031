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

/* path: a file in a new temporary directory. */
static void new_path(void)
{
    char dir[] = "/tmp/telesink-db-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/q.db", dir);
}

static struct db *open_path(void)
{
    int rc;
    char err[256];
    struct db *d = db_open(path, 100, &rc, err, sizeof err);
    assert_non_null(d);
    return d;
}

static struct db *open_fresh(void)
{
    new_path();
    return open_path();
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

/* The schema as telesink 0.1 released it (user_version 1), with a few rows. */
static const char log_v1[] =
    "CREATE TABLE domains (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
    "  last_seen INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE clients (id INTEGER PRIMARY KEY, addr TEXT NOT NULL, mac TEXT NOT NULL, "
    "  name TEXT NOT NULL, last_seen INTEGER NOT NULL DEFAULT 0, UNIQUE(addr, mac, name));"
    "CREATE TABLE lists (id INTEGER PRIMARY KEY, name TEXT NOT NULL, vendor TEXT NOT NULL, "
    "  category TEXT NOT NULL, UNIQUE(name, vendor, category));"
    "CREATE TABLE upstreams (id INTEGER PRIMARY KEY, addr TEXT NOT NULL UNIQUE);"
    "CREATE TABLE qtypes (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
    "CREATE TABLE rcodes (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
    "CREATE TABLE statuses (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
    /* id = (unix milliseconds << 10) | sequence: time order without an index on time. */
    "CREATE TABLE log (id INTEGER PRIMARY KEY, client INTEGER NOT NULL, "
    "  domain INTEGER NOT NULL, qtype INTEGER NOT NULL, status INTEGER NOT NULL, list INTEGER, "
    "  rcode INTEGER NOT NULL, upstream INTEGER, duration INTEGER NOT NULL, "
    "  flags INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE counters (hour INTEGER PRIMARY KEY, queries INTEGER NOT NULL DEFAULT 0, "
    "  logged INTEGER NOT NULL DEFAULT 0, not_logged INTEGER NOT NULL DEFAULT 0, "
    "  dropped INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO statuses VALUES (1,'blocked'),(2,'forwarded'),(3,'cached'),(4,'refused'),"
    "  (5,'failed');"
    "INSERT INTO rcodes VALUES (0,'NOERROR'),(1,'FORMERR'),(2,'SERVFAIL'),(3,'NXDOMAIN'),"
    "  (4,'NOTIMP'),(5,'REFUSED'),(6,'YXDOMAIN'),(7,'YXRRSET'),(8,'NXRRSET'),(9,'NOTAUTH'),"
    "  (10,'NOTZONE'),(16,'BADVERS'),(23,'BADCOOKIE');"
    "INSERT INTO qtypes VALUES (1,'A'),(2,'NS'),(5,'CNAME'),(6,'SOA'),(12,'PTR'),(13,'HINFO'),"
    "  (15,'MX'),(16,'TXT'),(28,'AAAA'),(33,'SRV'),(35,'NAPTR'),(43,'DS'),(46,'RRSIG'),"
    "  (47,'NSEC'),(48,'DNSKEY'),(50,'NSEC3'),(52,'TLSA'),(64,'SVCB'),(65,'HTTPS'),"
    "  (99,'SPF'),(255,'ANY'),(257,'CAA');"
    "CREATE VIEW queries AS SELECT "
    "  (l.id >> 10) / 1000.0 AS ts, c.addr AS client, NULLIF(c.name, '') AS client_name, "
    "  NULLIF(c.mac, '') AS client_mac, d.name AS qname, "
    "  COALESCE(t.name, 'TYPE' || l.qtype) AS qtype, s.name AS status, li.vendor AS vendor, "
    "  li.name AS list, li.category AS category, COALESCE(r.name, 'RCODE' || l.rcode) AS rcode, "
    "  u.addr AS upstream, l.duration / 1000.0 AS duration_ms, (l.flags & 1) != 0 AS via_cname, "
    "  l.id AS id "
    "FROM log l JOIN clients c ON c.id = l.client JOIN domains d ON d.id = l.domain "
    "  JOIN statuses s ON s.id = l.status LEFT JOIN qtypes t ON t.id = l.qtype "
    "  LEFT JOIN rcodes r ON r.id = l.rcode LEFT JOIN lists li ON li.id = l.list "
    "  LEFT JOIN upstreams u ON u.id = l.upstream;"
    "INSERT INTO domains VALUES (5, 'a.example.test', 100), (9, 'b.example.test', 100);"
    "INSERT INTO clients VALUES (1, '192.0.2.1', '', '', 100);"
    "INSERT INTO log(id, client, domain, qtype, status, rcode, duration) "
    "  VALUES (1832960000000000, 1, 9, 1, 2, 0, 1000);"
    "PRAGMA user_version = 1;";

/* A version 1 file is brought to version 3: names keep their ids, get their hash, and are
 * found without any index on the names. */
static void test_migrates_version_1(void **state)
{
    (void)state;
    new_path();
    sqlite3 *c;
    assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c, log_v1, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(c);

    int rc;
    struct db *d = open_path();
    assert_int_equal(count("PRAGMA user_version"), 3);
    assert_int_equal(count("SELECT hash FROM domains WHERE id = 9"),
                     db_name_hash("b.example.test", 14));
    assert_int_equal(count("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                           "tbl_name = 'domains'"),
                     0);
    /* Old names keep their ids, a new one gets its own, once. */
    assert_int_equal(db_domain_id(d, "b.example.test", 14, 200, &rc), 9);
    assert_int_equal(db_domain_id(d, "a.example.test", 14, 200, &rc), 5);
    int64_t c1 = db_domain_id(d, "c.example.test", 14, 200, &rc);
    assert_true(c1 > 9);
    assert_int_equal(db_domain_id(d, "c.example.test", 14, 200, &rc), c1);
    assert_int_equal(count("SELECT count(*) FROM domains"), 3);
    assert_int_equal(count("SELECT last_seen FROM domains WHERE id = 9"), 200);
    /* The view is back, over the same rows. */
    assert_int_equal(count("SELECT count(*) FROM queries WHERE qname = 'b.example.test' AND "
                           "client = '192.0.2.1' AND status = 'forwarded'"),
                     1);
    cleanup(d);
}

/* Run SQL on a second connection (another writer, as far as d can tell). */
static void other_writer(const char *sql)
{
    sqlite3 *c;
    assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(c);
}

/* Two names with the same 32-bit hash (found by search; checked here) get an id each. */
static void test_names_sharing_a_hash(void **state)
{
    (void)state;
    static const char a[] = "n54871.collide.test", b[] = "n82005.collide.test";
    assert_int_equal(db_name_hash(a, strlen(a)), db_name_hash(b, strlen(b)));
    struct db *d = open_fresh();
    int rc;
    assert_int_equal(db_begin(d), SQLITE_OK);
    int64_t ia = db_domain_id(d, a, strlen(a), 1, &rc);
    int64_t ib = db_domain_id(d, b, strlen(b), 1, &rc);
    assert_true(ia > 0 && ib > 0 && ia != ib);
    assert_int_equal(db_domain_id(d, b, strlen(b), 1, &rc), ib);
    assert_int_equal(db_domain_id(d, a, strlen(a), 1, &rc), ia);
    assert_int_equal(db_commit(d), SQLITE_OK);
    /* A reopened file finds them again (the directory is read back from the table). */
    db_close(d);
    d = open_path();
    assert_int_equal(db_domain_id(d, a, strlen(a), 2, &rc), ia);
    assert_int_equal(db_domain_id(d, b, strlen(b), 2, &rc), ib);
    assert_int_equal(count("SELECT count(*) FROM domains"), 2);
    cleanup(d);
}

/* A rolled-back transaction's names are gone from the file and from the directory; names
 * another connection added or deleted meanwhile are seen at the next transaction. */
static void test_names_after_rollback_and_other_writers(void **state)
{
    (void)state;
    struct db *d = open_fresh();
    int rc;
    assert_int_equal(db_begin(d), SQLITE_OK);
    int64_t gone = db_domain_id(d, "rolled.back.test", 16, 1, &rc);
    assert_true(gone > 0);
    db_rollback(d);
    assert_int_equal(count("SELECT count(*) FROM domains"), 0);
    /* The rowid is free again: a different name takes it; the first is new once more. */
    assert_int_equal(db_domain_id(d, "other.test", 10, 1, &rc), gone);
    int64_t again = db_domain_id(d, "rolled.back.test", 16, 1, &rc);
    assert_true(again > gone);
    assert_int_equal(db_domain_id(d, "rolled.back.test", 16, 1, &rc), again);

    /* Another writer adds a name and deletes one. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO domains(id, name, hash, last_seen) VALUES (100, 'theirs.test', %lld, 1);"
             "DELETE FROM domains WHERE id = %lld;",
             (long long)db_name_hash("theirs.test", 11), (long long)again);
    other_writer(sql);
    assert_int_equal(db_begin(d), SQLITE_OK);
    assert_int_equal(db_domain_id(d, "theirs.test", 11, 1, &rc), 100);
    int64_t back = db_domain_id(d, "rolled.back.test", 16, 1, &rc);
    assert_true(back > 0 && back != again);
    assert_int_equal(db_commit(d), SQLITE_OK);
    assert_int_equal(count("SELECT count(*) FROM domains WHERE name = 'theirs.test'"), 1);
    assert_int_equal(count("SELECT count(*) FROM domains WHERE name = 'rolled.back.test'"), 1);
    cleanup(d);
}

/* Expiry that fails halfway (here: the clients' delete) leaves the names it had deleted in
 * the directory: they are still in the file, and must not be added a second time. */
static void test_failed_expiry_keeps_names(void **state)
{
    (void)state;
    struct db *d = open_fresh();
    int rc;
    int64_t id = db_domain_id(d, "stale.example.test", 18, 1, &rc);
    assert_true(db_client_id(d, "192.0.2.7", "", "", 1, &rc) > 0);
    other_writer(
        "CREATE TRIGGER keep BEFORE DELETE ON clients BEGIN SELECT RAISE(ABORT, 'no'); END;");
    assert_true(db_expire_names(d, 100, 10) < 0);
    assert_int_equal(count("SELECT count(*) FROM domains"), 1);
    assert_int_equal(db_domain_id(d, "stale.example.test", 18, 2, &rc), id);
    assert_int_equal(count("SELECT count(*) FROM domains"), 1);
    /* Without the trigger the name goes, and comes back as a new one. */
    other_writer("DROP TRIGGER keep;");
    assert_int_equal(db_expire_names(d, 100, 10), 2);
    int64_t fresh = db_domain_id(d, "stale.example.test", 18, 200, &rc);
    assert_true(fresh > 0);
    assert_int_equal(count("SELECT count(*) FROM domains"), 1);
    cleanup(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_follow_the_clock),
        cmocka_unit_test(test_step_back_onto_taken_ids),
        cmocka_unit_test(test_expiry_rows_then_names),
        cmocka_unit_test(test_migrates_version_1),
        cmocka_unit_test(test_names_sharing_a_hash),
        cmocka_unit_test(test_names_after_rollback_and_other_writers),
        cmocka_unit_test(test_failed_expiry_keeps_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
