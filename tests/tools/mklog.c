/*
 * mklog: build a query-log database with exactly known content, for the tests of `telesink
 * report`. Rows go through the real storage code (db.c) the way the qlog writer puts them
 * there: in time order, in one transaction, so ids come out as (ms << 10) | sequence.
 *
 *   mklog DB < SPEC
 *
 * DB is created when missing; an existing one is appended to. SPEC has one record a line,
 * fields separated by TABs; a line starting with `#` is a comment, blank lines are ignored:
 *
 *   q  TS_MS  ADDR  MAC  NAME  QNAME  QTYPE  STATUS  LIST  VENDOR  CATEGORY  RCODE  UPSTREAM
 *      DURATION_US  [FLAGS]
 *   c  HOUR  QUERIES  LOGGED  NOT_LOGGED  DROPPED
 *
 * `-` is empty for MAC, NAME, VENDOR and CATEGORY, and none for LIST and UPSTREAM (VENDOR and
 * CATEGORY must then be `-` too). QTYPE and RCODE are numbers or names, STATUS is
 * blocked|forwarded|cached|refused|failed, FLAGS is DB_FLAG_* (default 0). The q records are
 * sorted by TS_MS (stable) before they are written; c records are added with db_count.
 *
 * Exit 0 when written, 1 on a database error, 2 on a usage error or a bad line (nothing is
 * written then).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db.h"

#define MAX_FIELDS 16

/* One q record; the strings point into buf (owned), the row's ids are resolved when written. */
struct query {
    size_t line; /* makes the sort stable */
    char *buf;
    const char *addr, *mac, *name, *qname, *list, *vendor, *category, *upstream;
    struct db_row row;
};

struct count {
    int64_t hour, queries, logged, not_logged, dropped;
};

struct code {
    const char *name;
    int value;
};

/* The names of db.c's qtypes, rcodes and statuses tables. */
static const struct code qtypes[] = {
    {"A", 1},      {"NS", 2},    {"CNAME", 5},   {"SOA", 6},    {"PTR", 12},   {"HINFO", 13},
    {"MX", 15},    {"TXT", 16},  {"AAAA", 28},   {"SRV", 33},   {"NAPTR", 35}, {"DS", 43},
    {"RRSIG", 46}, {"NSEC", 47}, {"DNSKEY", 48}, {"NSEC3", 50}, {"TLSA", 52},  {"SVCB", 64},
    {"HTTPS", 65}, {"SPF", 99},  {"ANY", 255},   {"CAA", 257},  {NULL, 0},
};
static const struct code rcodes[] = {
    {"NOERROR", 0},  {"FORMERR", 1},  {"SERVFAIL", 2},   {"NXDOMAIN", 3}, {"NOTIMP", 4},
    {"REFUSED", 5},  {"YXDOMAIN", 6}, {"YXRRSET", 7},    {"NXRRSET", 8},  {"NOTAUTH", 9},
    {"NOTZONE", 10}, {"BADVERS", 16}, {"BADCOOKIE", 23}, {NULL, 0},
};
static const struct code statuses[] = {
    {"blocked", DB_BLOCKED}, {"forwarded", DB_FORWARDED}, {"cached", DB_CACHED},
    {"refused", DB_REFUSED}, {"failed", DB_FAILED},       {NULL, 0},
};

static void bad(size_t line, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void bad(size_t line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "mklog: line %zu: ", line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 64;
    p = realloc(p, *cap * size);
    if (!p) {
        fprintf(stderr, "mklog: out of memory\n");
        exit(1);
    }
    return p;
}

/* A decimal number in [0, max]; the field's name goes into the error. */
static int64_t number(size_t line, const char *what, const char *s, int64_t max)
{
    char *end;
    errno = 0;
    long long v = s[0] >= '0' && s[0] <= '9' ? strtoll(s, &end, 10) : -1;
    if (v < 0 || errno || *end || v > max)
        bad(line, "%s: '%s' is not a number from 0 to %lld", what, s, (long long)max);
    return v;
}

/* A number in [0, max], or a name from the table (case-insensitive). */
static int code(size_t line, const char *what, const char *s, const struct code *t, int max)
{
    for (; t->name; t++)
        if (strcasecmp(s, t->name) == 0)
            return t->value;
    if (max == 0 || !(s[0] >= '0' && s[0] <= '9'))
        bad(line, "%s: unknown '%s'", what, s);
    return (int)number(line, what, s, max);
}

static const char *text(const char *s)
{
    return strcmp(s, "-") == 0 ? "" : s;
}

static void parse_query(struct query *q, size_t line, char **f, int n)
{
    if (n != 14 && n != 15)
        bad(line, "a q record has 14 or 15 fields, not %d", n);
    q->line = line;
    /* The id is ms << 10 in a signed 64-bit integer. */
    q->row.ts_ms = (uint64_t)number(line, "TS_MS", f[1], (INT64_C(1) << 53) - 1);
    if (!*f[2] || strcmp(f[2], "-") == 0)
        bad(line, "ADDR is empty");
    if (!*f[5] || strcmp(f[5], "-") == 0)
        bad(line, "QNAME is empty");
    q->addr = f[2];
    q->mac = text(f[3]);
    q->name = text(f[4]);
    q->qname = f[5];
    q->row.qtype = (uint16_t)code(line, "QTYPE", f[6], qtypes, 65535);
    q->row.status = (uint8_t)code(line, "STATUS", f[7], statuses, 0);
    q->list = *text(f[8]) ? f[8] : NULL;
    q->vendor = text(f[9]);
    q->category = text(f[10]);
    if (!q->list && (*q->vendor || *q->category))
        bad(line, "VENDOR or CATEGORY without a LIST");
    q->row.rcode = (uint16_t)code(line, "RCODE", f[11], rcodes, 65535);
    q->upstream = *text(f[12]) ? f[12] : NULL;
    q->row.duration_us = (uint32_t)number(line, "DURATION_US", f[13], UINT32_MAX);
    q->row.flags = n == 15 ? (uint8_t)number(line, "FLAGS", f[14], 255) : 0;
}

static void parse_count(struct count *c, size_t line, char **f, int n)
{
    if (n != 6)
        bad(line, "a c record has 6 fields, not %d", n);
    c->hour = number(line, "HOUR", f[1], INT64_MAX);
    c->queries = number(line, "QUERIES", f[2], INT64_MAX);
    c->logged = number(line, "LOGGED", f[3], INT64_MAX);
    c->not_logged = number(line, "NOT_LOGGED", f[4], INT64_MAX);
    c->dropped = number(line, "DROPPED", f[5], INT64_MAX);
}

static int by_time(const void *a, const void *b)
{
    const struct query *x = a, *y = b;
    if (x->row.ts_ms != y->row.ts_ms)
        return x->row.ts_ms < y->row.ts_ms ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* The row of a record with its ids, inserting clients, names, lists and upstreams when new. */
static int resolve(struct db *d, const struct query *q, struct db_row *row)
{
    int rc = SQLITE_OK;
    int64_t hour = (int64_t)(q->row.ts_ms / 3600000);
    *row = q->row;
    row->client = db_client_id(d, q->addr, q->mac, q->name, hour, &rc);
    if (rc == SQLITE_OK)
        row->domain = db_domain_id(d, q->qname, strlen(q->qname), hour, &rc);
    if (rc == SQLITE_OK && q->list)
        row->list = db_list_id(d, q->list, q->vendor, q->category, &rc);
    if (rc == SQLITE_OK && q->upstream)
        row->upstream = db_upstream_id(d, q->upstream, &rc);
    return rc;
}

/* Everything in one transaction, batched like qlog.c's write_batch. 0, or 1 on an error. */
static int write_db(const char *path, const struct query *q, size_t nq, const struct count *c,
                    size_t nc)
{
    int rc;
    char err[256];
    struct db *d = db_open(path, 5000, &rc, err, sizeof err);
    if (!d) {
        fprintf(stderr, "mklog: %s\n", err);
        return 1;
    }
    rc = db_begin(d);
    struct db_row rows[DB_INSERT_MANY];
    size_t k = 0;
    for (size_t i = 0; rc == SQLITE_OK && i < nq; i++) {
        rc = resolve(d, &q[i], &rows[k++]);
        if (rc == SQLITE_OK && (k == DB_INSERT_MANY || i + 1 == nq)) {
            rc = db_insert_many(d, rows, k);
            k = 0;
        }
    }
    for (size_t i = 0; rc == SQLITE_OK && i < nc; i++)
        rc = db_count(d, c[i].hour, (uint64_t)c[i].queries, (uint64_t)c[i].logged,
                      (uint64_t)c[i].not_logged, (uint64_t)c[i].dropped);
    if (rc == SQLITE_OK)
        rc = db_commit(d);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "mklog: %s: %s\n", path, sqlite3_errstr(rc));
        db_rollback(d);
    }
    db_close(d);
    return rc == SQLITE_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mklog DB < SPEC\n");
        return 2;
    }
    struct query *q = NULL;
    struct count *c = NULL;
    size_t nq = 0, nc = 0, qcap = 0, ccap = 0, line = 0, len = 0;
    char *buf = NULL;
    while (getline(&buf, &len, stdin) >= 0) {
        line++;
        buf[strcspn(buf, "\r\n")] = '\0';
        size_t lead = strspn(buf, " \t");
        if (buf[lead] == '\0' || buf[lead] == '#')
            continue;
        char *f[MAX_FIELDS], *s = strdup(buf);
        int n = 0;
        if (!s) {
            fprintf(stderr, "mklog: out of memory\n");
            return 1;
        }
        for (char *p = s, *field; (field = strsep(&p, "\t")) != NULL; n++)
            if (n < MAX_FIELDS)
                f[n] = field;
        if (strcmp(f[0], "q") == 0) {
            q = grow(q, &qcap, nq, sizeof *q);
            q[nq] = (struct query){.buf = s};
            parse_query(&q[nq++], line, f, n);
        } else if (strcmp(f[0], "c") == 0) {
            c = grow(c, &ccap, nc, sizeof *c);
            parse_count(&c[nc++], line, f, n);
            free(s);
        } else {
            bad(line, "unknown record type '%s' (q or c)", f[0]);
        }
    }
    if (ferror(stdin)) {
        fprintf(stderr, "mklog: reading the spec: %s\n", strerror(errno));
        return 1;
    }
    free(buf);
    if (nq)
        qsort(q, nq, sizeof *q, by_time);
    int status = write_db(argv[1], q, nq, c, nc);
    for (size_t i = 0; i < nq; i++)
        free(q[i].buf);
    free(q);
    free(c);
    return status;
}
