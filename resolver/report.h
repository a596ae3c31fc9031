/*
 * report: the per-client telemetry report, read from the query log.
 *
 * report_collect() opens the database read-only (in WAL mode a reader never blocks the writer)
 * and reads, in one snapshot, the window [since, until) and the window of the same length just
 * before it. One pass over the `log` rows of both windows (a rowid range: ids are time-ordered)
 * aggregates per device: queries, blocked queries, hits per vendor and per domain, first and
 * last hit, and the previous window's hits for "what is new". Rows from the same device under
 * several addresses are one device when it has a name ([clients]) or a known MAC.
 *
 * report_write() renders the result as text (cron mail), JSON (the contract in DESIGN.md plus
 * more), CSV (client x vendor x domain) or one self-contained HTML page. No uv.h here.
 */
#ifndef TELESINK_REPORT_H
#define TELESINK_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum report_format { REPORT_TEXT, REPORT_JSON, REPORT_CSV, REPORT_HTML };

/* report_collect() results besides 0. */
#define REPORT_ERROR -1 /* SQLite or memory: message in err */
#define REPORT_NODB  -2 /* no such file, or not a telesink query log */

/*
 * WHEN: "90m", "24h", "7d", "2w" before base_ms; "now"; "2026-11-01" (local midnight);
 * "2026-11-01T06:00", "2026-11-01 06:00:30", optionally followed by "Z" or "+01:00" (else local
 * time). Returns 0 and sets *ms, or -1.
 */
int report_parse_when(const char *s, int64_t base_ms, int64_t *ms);

/* Parse "text|json|csv|html". */
int report_parse_format(const char *s, enum report_format *f);

struct report_domain {
    const char *name;
    uint64_t hits, prev_hits;
    int64_t first_ms, last_ms;
};

struct report_vendor {
    const char *vendor, *category;
    uint64_t hits, prev_hits;
    int64_t first_ms, last_ms;
    struct report_domain *domains; /* most hits first, then by name */
    size_t n_domains;
};

enum { REPORT_STATUSES = 6 }; /* index: enum db_status (1 blocked .. 5 failed) */

struct report_client {
    const char *addr; /* the address of its latest query in the window */
    const char *name; /* configured name, or NULL */
    const char *mac;  /* or NULL */
    const char **addrs;
    size_t n_addrs; /* every address it used in the window */
    uint64_t queries, blocked, prev_queries, prev_blocked;
    uint64_t status[REPORT_STATUSES];
    int64_t first_ms, last_ms;     /* first and last blocked query; 0 when none */
    struct report_vendor *vendors; /* most hits first */
    size_t n_vendors;
};

struct report_bucket {
    uint64_t queries, blocked;
};

struct report {
    int64_t since_ms, until_ms, prev_since_ms;
    int64_t log_start_ms; /* the oldest row in the log, 0 when empty */
    bool compared;        /* the log reaches back before since: "new" means something */
    uint64_t queries, blocked, prev_queries, prev_blocked;
    size_t n_vendors; /* distinct vendors hit in the window */
    /* From the hourly counters of the hours the window touches. */
    uint64_t seen, logged, not_logged, dropped;
    struct report_client *clients; /* most blocked first, then most queries, then by name */
    size_t n_clients;
    int64_t bucket_ms; /* timeline: an hour, or a day for windows over a week */
    struct report_bucket *buckets;
    size_t n_buckets;
    struct report_arena *arena; /* owns every string and array above */
};

/*
 * Read the report for [since_ms, until_ms) from the database at path. `client` (or NULL)
 * narrows it to the devices with that address, name or MAC. Returns 0, REPORT_NODB or
 * REPORT_ERROR with a message in err.
 */
int report_collect(const char *path, int64_t since_ms, int64_t until_ms, const char *client,
                   struct report **out, char *err, size_t errlen);
void report_free(struct report *r);

/* Render. `top` domains per vendor (CSV lists all). Returns 0, or -1 when writing failed. */
int report_write(const struct report *r, enum report_format f, unsigned top, FILE *out);

#endif
