/* Unit tests for the report: reading WHEN (relative, dates, times, zones, the invalid ones), and
 * collecting from a real SQLite file written with db.c — window edges, devices by name, MAC or
 * address, vendors, the previous window. The renderings are checked end to end
 * (tests/e2e/test_report.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"
#include "report.h"

#define H   3600000LL
#define D   (24 * H)
#define NOW 1795413600000LL /* 2026-11-23T06:00:00Z */

static void set_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

static int64_t when(const char *s)
{
    int64_t ms = -1;
    assert_int_equal(report_parse_when(s, NOW, &ms), 0);
    return ms;
}

static void test_relative(void **state)
{
    (void)state;
    assert_int_equal(when("now"), NOW);
    assert_int_equal(when("24h"), NOW - D);
    assert_int_equal(when("90m"), NOW - 90 * 60000LL);
    assert_int_equal(when("7d"), NOW - 7 * D);
    assert_int_equal(when("2w"), NOW - 14 * D);
}

static void test_absolute(void **state)
{
    (void)state;
    set_tz("UTC");
    assert_int_equal(when("2026-11-23"), NOW - 6 * H);
    assert_int_equal(when("2026-11-23T06:00"), NOW);
    assert_int_equal(when("2026-11-23 06:00:30"), NOW + 30000);
    assert_int_equal(when("2026-11-23T06:00:00Z"), NOW);
    assert_int_equal(when("2026-11-23T07:00+01:00"), NOW);
    assert_int_equal(when("2026-11-23T05:30-0030"), NOW);
    assert_int_equal(when("2028-02-29"), 1835395200000LL); /* a leap day */
    /* Without a zone: local time, with its daylight saving. */
    set_tz("Europe/Berlin");
    assert_int_equal(when("2026-11-23T07:00"), NOW);     /* CET, +01:00 */
    assert_int_equal(when("2026-07-01"), 1782856800000); /* CEST: 2026-06-30T22:00Z */
    assert_int_equal(when("2026-11-23T06:00Z"), NOW);
    set_tz("UTC");
}

static void test_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "yesterday",
        "24",
        "0h",
        "-3h",
        "+3h",
        "3x",
        "3hh",
        "1000000w",
        "2026-13-01",
        "2026-02-29",
        "2026-11-31",
        "2026-1-01",
        "26-11-01",
        "2026-11-01T24:00",
        "2026-11-01T06:60",
        "2026-11-01T06",
        "2026-11-01T06:00+2",
        "2026-11-01T06:00+25:00",
        "2026-11-01T06:00 Z",
        "2026-11-01x",
        "1969-12-31",
        "3300w",
        "21000d",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ms = 42;
        if (report_parse_when(bad[i], NOW, &ms) != -1)
            fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(ms, 42);
    }
    enum report_format f;
    assert_int_equal(report_parse_format("html", &f), 0);
    assert_int_equal(f, REPORT_HTML);
    assert_int_equal(report_parse_format("HTML", &f), -1);
}

/* ---- collecting ------------------------------------------------------------------------------ */

struct fixture {
    char dir[64], path[96];
    struct db *db;
    int64_t list_x, list_s;
};

static void add(struct fixture *fx, int64_t ts, const char *addr, const char *mac, const char *name,
                const char *qname, uint8_t status, int64_t list)
{
    int rc = 0;
    int64_t hour = ts / H;
    struct db_row row = {
        .ts_ms = (uint64_t)ts,
        .client = db_client_id(fx->db, addr, mac, name, hour, &rc),
        .domain = db_domain_id(fx->db, qname, strlen(qname), hour, &rc),
        .list = list,
        .qtype = 1,
        .rcode = status == DB_BLOCKED ? 3 : 0,
        .status = status,
    };
    assert_int_equal(rc, 0);
    assert_int_equal(db_insert(fx->db, &row), 0);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/telesink-report-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/q.db", fx->dir);
    int rc;
    char err[256];
    fx->db = db_open(fx->path, 100, &rc, err, sizeof err);
    assert_non_null(fx->db);
    assert_int_equal(db_begin(fx->db), 0);
    fx->list_x = db_list_id(fx->db, "x.list", "Xiaomi", "telemetry", &rc);
    fx->list_s = db_list_id(fx->db, "s.list", "Sensors Analytics", "analytics", &rc);
    /* previous window */
    add(fx, NOW - 2 * D, "10.0.0.9", "", "", "first.example", DB_FORWARDED, 0); /* at its start */
    add(fx, NOW - D - H, "10.0.0.2", "", "phone", "m.xiaomi.test", DB_BLOCKED, fx->list_x);
    /* window */
    add(fx, NOW - D, "10.0.0.2", "", "phone", "m.xiaomi.test", DB_BLOCKED, fx->list_x);
    add(fx, NOW - D + 1, "10.0.0.3", "", "phone", "s.sensors.test", DB_BLOCKED, fx->list_s);
    add(fx, NOW - 5 * H, "10.0.0.7", "02:00:00:00:00:07", "", "a.example", DB_CACHED, 0);
    add(fx, NOW - 4 * H, "10.0.0.8", "02:00:00:00:00:07", "", "m.xiaomi.test", DB_BLOCKED,
        fx->list_x);
    add(fx, NOW - 1, "10.0.0.9", "", "", "b.example", DB_FORWARDED, 0);
    add(fx, NOW, "10.0.0.9", "", "", "after.example", DB_FORWARDED, 0); /* at until: out */
    assert_int_equal(db_commit(fx->db), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    db_close(fx->db);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static const struct report_client *find(const struct report *r, const char *label)
{
    for (size_t i = 0; i < r->n_clients; i++) {
        const struct report_client *c = &r->clients[i];
        if ((c->name && strcmp(c->name, label) == 0) ||
            (!c->name && c->mac && strcmp(c->mac, label) == 0) ||
            (!c->name && !c->mac && strcmp(c->addr, label) == 0))
            return c;
    }
    fail_msg("no device %s", label);
    return NULL;
}

static void test_collect(void **state)
{
    struct fixture *fx = *state;
    struct report *r;
    char err[256];
    assert_int_equal(report_collect(fx->path, NOW - D, NOW, NULL, &r, err, sizeof err), 0);
    assert_int_equal(r->queries, 5);
    assert_int_equal(r->blocked, 3);
    assert_int_equal(r->prev_queries, 2);
    assert_int_equal(r->prev_blocked, 1);
    assert_int_equal(r->n_vendors, 2);
    assert_true(r->compared);
    assert_int_equal(r->log_start_ms, NOW - 2 * D);
    assert_int_equal(r->n_clients, 3);
    assert_int_equal(r->n_buckets, 24);
    assert_int_equal(r->buckets[0].queries, 2);
    assert_int_equal(r->buckets[23].queries, 1);

    /* The phone: one device by its name across two addresses, the latest one shown. */
    const struct report_client *phone = find(r, "phone");
    assert_ptr_equal(phone, &r->clients[0]); /* most blocked first */
    assert_string_equal(phone->addr, "10.0.0.3");
    assert_int_equal(phone->n_addrs, 2);
    assert_int_equal(phone->queries, 2);
    assert_int_equal(phone->blocked, 2);
    assert_int_equal(phone->prev_blocked, 1);
    assert_int_equal(phone->n_vendors, 2);
    /* Equal hits: by vendor name. */
    assert_string_equal(phone->vendors[0].vendor, "Sensors Analytics");
    assert_int_equal(phone->vendors[0].prev_hits, 0);
    assert_string_equal(phone->vendors[1].vendor, "Xiaomi");
    assert_int_equal(phone->vendors[1].hits, 1);
    assert_int_equal(phone->vendors[1].prev_hits, 1);
    assert_string_equal(phone->vendors[1].domains[0].name, "m.xiaomi.test");
    assert_int_equal(phone->first_ms, NOW - D);
    assert_int_equal(phone->last_ms, NOW - D + 1);

    /* No name but a MAC: one device across addresses. */
    const struct report_client *mac = find(r, "02:00:00:00:00:07");
    assert_int_equal(mac->queries, 2);
    assert_int_equal(mac->status[DB_CACHED], 1);
    assert_string_equal(mac->addr, "10.0.0.8");

    const struct report_client *plain = find(r, "10.0.0.9");
    assert_int_equal(plain->queries, 1);
    assert_int_equal(plain->prev_queries, 1);
    assert_int_equal(plain->n_vendors, 0);
    report_free(r);

    /* --client by an address of the phone narrows to the whole phone. */
    assert_int_equal(report_collect(fx->path, NOW - D, NOW, "10.0.0.2", &r, err, sizeof err), 0);
    assert_int_equal(r->n_clients, 1);
    assert_int_equal(r->queries, 2);
    report_free(r);

    /* A window before any row: nothing, and nothing to compare with. */
    assert_int_equal(report_collect(fx->path, NOW - 9 * D, NOW - 8 * D, NULL, &r, err, sizeof err),
                     0);
    assert_int_equal(r->queries, 0);
    assert_false(r->compared);
    report_free(r);
}

static void test_no_database(void **state)
{
    (void)state;
    struct report *r = (struct report *)1;
    char err[256];
    assert_int_equal(report_collect("/nonexistent/q.db", 0, 1000, NULL, &r, err, sizeof err),
                     REPORT_NODB);
    assert_null(r);
    assert_non_null(strstr(err, "/nonexistent/q.db"));
}

int main(void)
{
    set_tz("UTC");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative),
        cmocka_unit_test(test_absolute),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test_setup_teardown(test_collect, setup, teardown),
        cmocka_unit_test(test_no_database),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
