/*
 * db: the query log's SQLite schema and statements. Used by the qlog writer thread only (one
 * write connection); `telesink report` opens the same file read-only.
 *
 * Schema (user_version 3): `log` holds one row per query, keyed by an id that is the time in
 * milliseconds shifted left 10 bits plus a sequence number, so rows are in time order and a time
 * window is a rowid range without any extra index (about 34 bytes per row on disk). Names,
 * clients, lists and upstreams are stored once each and referenced by id (a name is found by a
 * 32-bit hash of its bytes, db_name_hash, stored with it and kept in memory by the writer's
 * connection: namedir.h). `counters` keeps, per
 * hour, how many queries were seen, logged, deliberately not logged (log_allowed = no) and
 * dropped (queue full or database fault), so a report can say when the log is incomplete. The
 * `queries` view is the contract for people and scripts.
 */
#ifndef TELESINK_DB_H
#define TELESINK_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DB_SCHEMA_VERSION 3

enum db_status {
    DB_BLOCKED = 1,
    DB_FORWARDED = 2,
    DB_CACHED = 3,
    DB_REFUSED = 4,
    DB_FAILED = 5,
};

#define DB_FLAG_VIA_CNAME 1 /* blocked because of an upstream answer's CNAME chain */
#define DB_FLAG_FORWARDED 2 /* the client identity came from a trusted forwarder's EDNS */

struct db;

/*
 * Open (creating with mode 0640 when missing) and bring the schema to DB_SCHEMA_VERSION: WAL,
 * synchronous=NORMAL, busy_timeout_ms. Returns NULL with the SQLite error code in *rc and a
 * message in err.
 */
struct db *db_open(const char *path, unsigned busy_timeout_ms, int *rc, char *err, size_t errlen);
void db_close(struct db *d);

/* PRAGMA quick_check: 0 when "ok", else the SQLite error code (SQLITE_CORRUPT for bad content). */
int db_check(struct db *d, char *err, size_t errlen);

/*
 * BEGIN IMMEDIATE (re-reading the names first when another connection wrote since), COMMIT,
 * ROLLBACK. A rollback also takes back what the transaction did to the writer's names in
 * memory, also after SQLite rolled back by itself (a full disk): call it after any failure.
 */
int db_begin(struct db *d);
int db_commit(struct db *d);
void db_rollback(struct db *d);

/* Changes when the names were read (again) from the file, as db_begin does after another
 * connection wrote: ids the caller cached may be gone (names, clients, lists, upstreams). */
unsigned db_generation(const struct db *d);

/* Ids for the normalised columns (inserted when new). 0 on error, *rc set. */
/* Names and clients also record the hour they were last used (for retention). */
int64_t db_domain_id(struct db *d, const char *name, size_t len, int64_t hour, int *rc);
/* Record that name `id` (from db_domain_id) was used in this hour. */
int db_domain_seen(struct db *d, int64_t id, int64_t hour);
/* The hash stored with a name (part of the file format since schema 2). */
int64_t db_name_hash(const char *name, size_t len);
int64_t db_client_id(struct db *d, const char *addr, const char *mac, const char *name,
                     int64_t hour, int *rc);
int64_t db_list_id(struct db *d, const char *name, const char *vendor, const char *category,
                   int *rc);
int64_t db_upstream_id(struct db *d, const char *addr, int *rc);

struct db_row {
    uint64_t ts_ms;                         /* wall clock */
    int64_t client, domain, list, upstream; /* list/upstream 0 = none */
    uint16_t qtype, rcode;
    uint8_t status, flags;
    uint32_t duration_us;
};

/* Append one query. Returns SQLITE_OK or the SQLite error code. */
int db_insert(struct db *d, const struct db_row *row);

/* Append n <= DB_INSERT_MANY queries with one statement (fewer VM steps per row). */
#define DB_INSERT_MANY 32
int db_insert_many(struct db *d, const struct db_row *rows, size_t n);

/* Add to the hourly counters. */
int db_count(struct db *d, int64_t hour, uint64_t queries, uint64_t logged, uint64_t not_logged,
             uint64_t dropped);

/*
 * Delete up to `chunk` rows older than cutoff_ms (one small transaction). Returns the number
 * deleted (0 when nothing is left to delete) or a negative SQLite error code.
 */
int db_expire(struct db *d, uint64_t cutoff_ms, int chunk);

/*
 * Delete up to `chunk` names and up to `chunk` clients not used since cutoff_hour (rows that
 * use them are older still and already gone). Returns the number deleted or -error.
 */
int db_expire_names(struct db *d, int64_t cutoff_hour, int chunk);

/* A truncating checkpoint when the WAL is larger than limit bytes (the WAL only grows that
 * large while readers hold it); a passive one first when there is no checkpoint thread. */
void db_checkpoint(struct db *d, int64_t wal_limit);

/* Bytes of the database file (page_count * page_size). */
int64_t db_size(struct db *d);

#endif
