#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "log.h"
#include "namedir.h"
#include "wire.h"

#define CKPT_PAGES 1000 /* WAL growth (4 KiB pages) between checkpoints */

enum stmt {
    S_INSERT,
    S_DOMAIN_ADD,
    S_CLIENT_GET,
    S_CLIENT_ADD,
    S_LIST_GET,
    S_LIST_ADD,
    S_UPSTREAM_GET,
    S_UPSTREAM_ADD,
    S_COUNT,
    S_EXPIRE,
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_INSERT_MANY,
    S_DOMAIN_SEEN,
    S_CLIENT_SEEN,
    S_DOMAIN_EXPIRE,
    S_CLIENT_EXPIRE,
    S_DOMAIN_NAME,
    S_DOMAIN_ALL,
    S_DATA_VERSION,
    S_MAX,
};

static const char *const stmt_sql[S_MAX] = {
    [S_INSERT] = "INSERT INTO log(id, client, domain, qtype, status, list, rcode, upstream, "
                 "duration, flags) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [S_DOMAIN_ADD] = "INSERT INTO domains(name, hash, last_seen) VALUES (?1, ?2, ?3)",
    [S_CLIENT_GET] = "SELECT id FROM clients WHERE addr = ?1 AND mac = ?2 AND name = ?3",
    [S_CLIENT_ADD] = "INSERT INTO clients(addr, mac, name) VALUES (?1, ?2, ?3)",
    [S_LIST_GET] = "SELECT id FROM lists WHERE name = ?1 AND vendor = ?2 AND category = ?3",
    [S_LIST_ADD] = "INSERT INTO lists(name, vendor, category) VALUES (?1, ?2, ?3)",
    [S_UPSTREAM_GET] = "SELECT id FROM upstreams WHERE addr = ?1",
    [S_UPSTREAM_ADD] = "INSERT INTO upstreams(addr) VALUES (?1)",
    [S_COUNT] = "INSERT INTO counters(hour, queries, logged, not_logged, dropped) "
                "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(hour) DO UPDATE SET "
                "queries = queries + excluded.queries, logged = logged + excluded.logged, "
                "not_logged = not_logged + excluded.not_logged, "
                "dropped = dropped + excluded.dropped",
    [S_EXPIRE] = "DELETE FROM log WHERE id < ?1 AND id <= "
                 "COALESCE((SELECT id FROM log ORDER BY id LIMIT 1 OFFSET ?2), ?1)",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_INSERT_MANY] = NULL, /* built in db_open: DB_INSERT_MANY rows of 10 values */
    [S_DOMAIN_SEEN] = "UPDATE domains SET last_seen = ?2 WHERE id = ?1 AND last_seen < ?2",
    [S_CLIENT_SEEN] = "UPDATE clients SET last_seen = ?2 WHERE id = ?1 AND last_seen < ?2",
    [S_DOMAIN_EXPIRE] = "DELETE FROM domains WHERE id IN "
                        "(SELECT id FROM domains WHERE last_seen < ?1 LIMIT ?2) "
                        "RETURNING id, hash",
    [S_CLIENT_EXPIRE] = "DELETE FROM clients WHERE id IN "
                        "(SELECT id FROM clients WHERE last_seen < ?1 LIMIT ?2)",
    [S_DOMAIN_NAME] = "SELECT name FROM domains WHERE id = ?1",
    [S_DOMAIN_ALL] = "SELECT id, hash FROM domains",
    [S_DATA_VERSION] = "PRAGMA data_version",
};

/* Names added or deleted by the open transaction: undone in the directory on rollback. */
struct dir_change {
    int64_t id;
    uint32_t hash;
    bool added;
};

static int load_dir(struct db *d);

struct db {
    sqlite3 *conn;
    struct ckpt *ckpt; /* NULL: SQLite's automatic checkpoint, in the commits */
    unsigned busy_ms;
    sqlite3_stmt *st[S_MAX];
    int64_t last_id;
    struct namedir dir;         /* every name in the file: hash -> ids (schema 3) */
    struct dir_change *changes; /* of the open transaction */
    size_t n_changes, cap_changes;
    int64_t data_version; /* changes when another connection commits */
    unsigned generation;  /* loads of the directory (db_generation) */
    bool dir_valid;       /* false after a failed load: no name can be looked up */
};

/* The contract for people and scripts (DESIGN.md): the same in every schema version. */
#define QUERIES_VIEW                                                                               \
    "CREATE VIEW queries AS SELECT "                                                               \
    "  (l.id >> 10) / 1000.0 AS ts, c.addr AS client, NULLIF(c.name, '') AS client_name, "         \
    "  NULLIF(c.mac, '') AS client_mac, d.name AS qname, "                                         \
    "  COALESCE(t.name, 'TYPE' || l.qtype) AS qtype, s.name AS status, li.vendor AS vendor, "      \
    "  li.name AS list, li.category AS category, COALESCE(r.name, 'RCODE' || l.rcode) AS rcode, "  \
    "  u.addr AS upstream, l.duration / 1000.0 AS duration_ms, (l.flags & 1) != 0 AS via_cname, "  \
    "  l.id AS id "                                                                                \
    "FROM log l JOIN clients c ON c.id = l.client JOIN domains d ON d.id = l.domain "              \
    "  JOIN statuses s ON s.id = l.status LEFT JOIN qtypes t ON t.id = l.qtype "                   \
    "  LEFT JOIN rcodes r ON r.id = l.rcode LEFT JOIN lists li ON li.id = l.list "                 \
    "  LEFT JOIN upstreams u ON u.id = l.upstream;"

/* Version 1: the first released schema. Later versions add a step each (see migrate). */
static const char schema_v1[] =
    "CREATE TABLE domains (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
    "  last_seen INTEGER NOT NULL DEFAULT 0);" /* hour: names and clients expire too */
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
    "  (99,'SPF'),(255,'ANY'),(257,'CAA');" QUERIES_VIEW "PRAGMA user_version = 1;";

/*
 * Version 2: names are found by a 32-bit hash of their bytes (an integer index) instead of a
 * UNIQUE index on the text. A log that sees many new names (a busy network, a benchmark's cache
 * misses) inserted each into a text index at a random place, ~10 µs a name; the integer index
 * costs a third of that. The writer is the only one adding names, so a lookup before each
 * insert keeps them unique.
 */
static const char schema_v2_step[] =
    "DROP VIEW queries;"
    "CREATE TABLE domains_v2 (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "  hash INTEGER NOT NULL, last_seen INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO domains_v2(id, name, hash, last_seen) "
    "  SELECT id, name, telesink_name_hash(name), last_seen FROM domains;"
    "DROP TABLE domains;"
    "ALTER TABLE domains_v2 RENAME TO domains;"
    "CREATE INDEX domains_hash ON domains(hash);" QUERIES_VIEW "PRAGMA user_version = 2;";

/*
 * Version 3: no index on the hash any more. The writer keeps every name's (hash, id) in memory
 * (namedir.h) and reads a candidate's name by id: with random hashes, each commit of a log that
 * saw a few thousand new names rewrote most of the index's pages into the WAL.
 */
static const char schema_v3_step[] = "DROP INDEX IF EXISTS domains_hash; PRAGMA user_version = 3;";

/* Part of the file format (schema 2): the stored hash of a name. Never change it. */
int64_t db_name_hash(const char *name, size_t len)
{
    return (int64_t)(uint32_t)(fmix64(fnv1a(name, len, FNV1A_SEED)) >> 32);
}

static void sql_name_hash(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *name = (const char *)sqlite3_value_text(argv[0]);
    int len = sqlite3_value_bytes(argv[0]);
    sqlite3_result_int64(ctx, db_name_hash(name ? name : "", name ? (size_t)len : 0));
}

static int exec(struct db *d, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(d->conn, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc;
}

static int user_version(struct db *d, int *version)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(d->conn, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Bring an existing file up to DB_SCHEMA_VERSION, one version at a time, in one transaction. */
static int migrate(struct db *d, char *err, size_t errlen)
{
    int version = 0;
    int rc = user_version(d, &version);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "reading the schema version: %s", sqlite3_errmsg(d->conn));
        return rc;
    }
    if (version == DB_SCHEMA_VERSION)
        return SQLITE_OK;
    if (version > DB_SCHEMA_VERSION) {
        snprintf(err, errlen, "schema version %d is newer than this telesink (%d)", version,
                 DB_SCHEMA_VERSION);
        return SQLITE_ERROR;
    }
    if ((rc = sqlite3_create_function_v2(d->conn, "telesink_name_hash", 1,
                                         SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_name_hash,
                                         NULL, NULL, NULL)) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(d->conn));
        return rc;
    }
    if ((rc = exec(d, "BEGIN IMMEDIATE", err, errlen)) != SQLITE_OK)
        return rc;
    if (version == 0)
        rc = exec(d, schema_v1, err, errlen);
    if (rc == SQLITE_OK && version < 2)
        rc = exec(d, schema_v2_step, err, errlen);
    if (rc == SQLITE_OK && version < 3)
        rc = exec(d, schema_v3_step, err, errlen);
    /* version 3 -> 4 goes here when the schema changes. */
    if (rc != SQLITE_OK) {
        sqlite3_exec(d->conn, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return exec(d, "COMMIT", err, errlen);
}

/* Create the file ourselves so that it gets mode 0640 (SQLite would use 0644). */
static int create_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
        return errno == EEXIST ? 0 : -errno;
    fchmod(fd, 0640); /* whatever the umask */
    close(fd);
    return 0;
}

void db_close(struct db *d)
{
    if (!d)
        return;
    ckpt_stop(d->ckpt);
    for (int i = 0; i < S_MAX; i++)
        sqlite3_finalize(d->st[i]);
    sqlite3_close_v2(d->conn);
    namedir_free(&d->dir);
    free(d->changes);
    free(d);
}

struct db *db_open(const char *path, unsigned busy_timeout_ms, int *rc, char *err, size_t errlen)
{
    struct db *d = calloc(1, sizeof *d);
    if (!d) {
        *rc = SQLITE_NOMEM;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int e = create_file(path);
    if (e < 0) {
        *rc = SQLITE_CANTOPEN;
        snprintf(err, errlen, "%s: %s", path, strerror(-e));
        free(d);
        return NULL;
    }
    *rc = sqlite3_open_v2(path, &d->conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (*rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, d->conn ? sqlite3_errmsg(d->conn) : "cannot open");
        db_close(d);
        return NULL;
    }
    sqlite3_extended_result_codes(d->conn, 0);
    d->busy_ms = busy_timeout_ms;
    sqlite3_busy_timeout(d->conn, (int)busy_timeout_ms);
    /* WAL: readers (report, sqlite3) never block the writer; NORMAL: a crash of this process
     * loses nothing committed, a power loss at most the last transactions. Checkpoints every
     * 4 MiB of WAL (SQLite's default: 64 MiB cut the writer's work at 10% new names by a
     * fifth, but made each checkpoint long), run by a thread of their own (ckpt.h) so that the
     * writer never waits for their fsyncs. */
    if ((*rc = exec(d,
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                    "PRAGMA journal_size_limit = 16777216; PRAGMA foreign_keys = OFF; "
                    "PRAGMA cache_size = -8192;",
                    err, errlen)) != SQLITE_OK ||
        (*rc = migrate(d, err, errlen)) != SQLITE_OK) {
        db_close(d);
        return NULL;
    }
    char many[64 + DB_INSERT_MANY * 24];
    int used = snprintf(many, sizeof many,
                        "INSERT INTO log(id, client, domain, qtype, status, list, rcode, "
                        "upstream, duration, flags) VALUES ");
    for (int r = 0; r < DB_INSERT_MANY; r++)
        used += snprintf(many + used, sizeof many - (size_t)used, "%s(?,?,?,?,?,?,?,?,?,?)",
                         r ? "," : "");
    for (int i = 0; i < S_MAX; i++) {
        const char *sql = i == S_INSERT_MANY ? many : stmt_sql[i];
        *rc = sqlite3_prepare_v3(d->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &d->st[i], NULL);
        if (*rc != SQLITE_OK) {
            snprintf(err, errlen, "preparing statements: %s", sqlite3_errmsg(d->conn));
            db_close(d);
            return NULL;
        }
    }
    char why[256];
    if (!(d->ckpt = ckpt_start(d->conn, path, CKPT_PAGES, why, sizeof why)))
        log_warn("qlog", "%s: checkpoints in the writer's commits (no checkpoint thread: %s)", path,
                 why);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->conn, "SELECT max(id) FROM log", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            d->last_id = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    if ((*rc = load_dir(d)) != SQLITE_OK) {
        snprintf(err, errlen, "reading the names: %s", sqlite3_errstr(*rc));
        db_close(d);
        return NULL;
    }
    return d;
}

int db_check(struct db *d, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(d->conn, "PRAGMA quick_check", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(d->conn));
        return rc;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *res = (const char *)sqlite3_column_text(st, 0);
        if (res && strcmp(res, "ok") == 0) {
            rc = SQLITE_OK;
        } else {
            /* The first problem is enough for a log line; the report can be long. */
            size_t first = res ? strcspn(res, "\n") : 0;
            snprintf(err, errlen, "quick_check: %.*s", (int)first, res ? res : "");
            rc = SQLITE_CORRUPT;
        }
    } else {
        snprintf(err, errlen, "%s", sqlite3_errmsg(d->conn));
    }
    sqlite3_finalize(st);
    return rc;
}

/* Run a statement to completion; SQLITE_OK or the error. The statement is reset. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* PRAGMA data_version: the same value until another connection commits. */
static int data_version(struct db *d, int64_t *v)
{
    sqlite3_stmt *st = d->st[S_DATA_VERSION];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* (Re)build the name directory from the file: at open, and after another connection wrote. */
static int load_dir(struct db *d)
{
    namedir_clear(&d->dir);
    d->n_changes = 0;
    d->dir_valid = false;
    /* The version first: a commit by someone else between the two reads only costs a reload. */
    int rc = data_version(d, &d->data_version);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *st = d->st[S_DOMAIN_ALL];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (namedir_add(&d->dir, (uint32_t)sqlite3_column_int64(st, 1),
                        sqlite3_column_int64(st, 0)) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        namedir_clear(&d->dir);
        return rc;
    }
    d->dir_valid = true;
    d->generation++;
    return SQLITE_OK;
}

unsigned db_generation(const struct db *d)
{
    return d->generation;
}

int db_begin(struct db *d)
{
    int rc = run(d->st[S_BEGIN]);
    if (rc != SQLITE_OK)
        return rc;
    /* Another writer (a second telesink on the same file, someone with the sqlite3 shell)
     * may have added or deleted names: the directory must be exact, or a name gets two ids. */
    int64_t v = d->data_version;
    if ((rc = data_version(d, &v)) == SQLITE_OK && (v != d->data_version || !d->dir_valid))
        rc = load_dir(d);
    if (rc != SQLITE_OK)
        db_rollback(d);
    return rc;
}

int db_commit(struct db *d)
{
    int rc = run(d->st[S_COMMIT]);
    if (rc == SQLITE_OK)
        d->n_changes = 0;
    return rc;
}

void db_rollback(struct db *d)
{
    if (!sqlite3_get_autocommit(d->conn))
        run(d->st[S_ROLLBACK]);
    /* Whatever the transaction did to the names is undone, newest first (SQLite may have
     * rolled back on its own already: a full disk, an I/O error). */
    while (d->n_changes > 0) {
        const struct dir_change *c = &d->changes[--d->n_changes];
        if (c->added)
            namedir_remove(&d->dir, c->hash, c->id);
        else if (namedir_add(&d->dir, c->hash, c->id) != 0)
            d->dir_valid = false; /* out of memory: read the names again at the next begin */
    }
}

/* Room for one more change, so that recording it after the database changed cannot fail. */
static int reserve_change(struct db *d)
{
    if (d->n_changes == d->cap_changes) {
        size_t cap = d->cap_changes ? d->cap_changes * 2 : 256;
        struct dir_change *c = realloc(d->changes, cap * sizeof *c);
        if (!c)
            return SQLITE_NOMEM;
        d->changes = c;
        d->cap_changes = cap;
    }
    return SQLITE_OK;
}

static void note_change(struct db *d, uint32_t hash, int64_t id, bool added)
{
    if (sqlite3_get_autocommit(d->conn))
        return; /* no transaction open: the statement committed by itself */
    d->changes[d->n_changes++] = (struct dir_change){.id = id, .hash = hash, .added = added};
}

/* SELECT then INSERT: ids of the small tables. The caller caches them. */
static int64_t get_or_add(struct db *d, enum stmt get, enum stmt add, const char *const *v,
                          const int *len, int n, int *rc)
{
    sqlite3_stmt *g = d->st[get];
    for (int i = 0; i < n; i++)
        sqlite3_bind_text(g, i + 1, v[i], len[i], SQLITE_STATIC);
    int step = sqlite3_step(g);
    int64_t id = step == SQLITE_ROW ? sqlite3_column_int64(g, 0) : 0;
    sqlite3_reset(g);
    sqlite3_clear_bindings(g);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        *rc = step;
        return 0;
    }
    if (id > 0) {
        *rc = SQLITE_OK;
        return id;
    }
    sqlite3_stmt *a = d->st[add];
    for (int i = 0; i < n; i++)
        sqlite3_bind_text(a, i + 1, v[i], len[i], SQLITE_STATIC);
    *rc = run(a);
    return *rc == SQLITE_OK ? sqlite3_last_insert_rowid(d->conn) : 0;
}

/* Mark a name or client as used in this hour (retention deletes the ones not used since). */
static int64_t seen(struct db *d, enum stmt st, int64_t id, int64_t hour, int *rc)
{
    if (id <= 0)
        return id;
    sqlite3_bind_int64(d->st[st], 1, id);
    sqlite3_bind_int64(d->st[st], 2, hour);
    *rc = run(d->st[st]);
    return *rc == SQLITE_OK ? id : 0;
}

/* Is row `id` this name? (Two names share a 32-bit hash now and then.) */
static int name_is(struct db *d, int64_t id, const char *name, size_t len, bool *same)
{
    sqlite3_stmt *st = d->st[S_DOMAIN_NAME];
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    *same = rc == SQLITE_ROW && (size_t)sqlite3_column_bytes(st, 0) == len &&
            memcmp(sqlite3_column_blob(st, 0), name, len) == 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The directory's candidates for the name's hash, each checked by reading its name; a new name
 * is inserted with its hour. This runs for every name the writer has not cached, a tenth of the
 * queries in a busy log; a new name (no candidate at all, nearly always) costs only the insert. */
int64_t db_domain_id(struct db *d, const char *name, size_t len, int64_t hour, int *rc)
{
    uint32_t h = (uint32_t)db_name_hash(name, len);
    size_t cursor = 0;
    int64_t id;
    *rc = d->dir_valid ? SQLITE_OK : SQLITE_NOMEM;
    if (*rc != SQLITE_OK)
        return 0; /* the next db_begin reads the names again */
    while ((id = namedir_next(&d->dir, h, &cursor)) != 0) {
        bool same;
        if ((*rc = name_is(d, id, name, len, &same)) != SQLITE_OK)
            return 0;
        if (same)
            return seen(d, S_DOMAIN_SEEN, id, hour, rc);
    }
    if ((*rc = reserve_change(d)) != SQLITE_OK)
        return 0;
    sqlite3_stmt *a = d->st[S_DOMAIN_ADD];
    sqlite3_bind_text(a, 1, name, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(a, 2, h);
    sqlite3_bind_int64(a, 3, hour);
    if ((*rc = run(a)) != SQLITE_OK)
        return 0;
    id = sqlite3_last_insert_rowid(d->conn);
    if (namedir_add(&d->dir, h, id) != 0) {
        d->dir_valid = false; /* read again at the next begin, whatever becomes of the row */
        *rc = SQLITE_NOMEM;
        return 0;
    }
    note_change(d, h, id, true);
    return id;
}

int db_domain_seen(struct db *d, int64_t id, int64_t hour)
{
    int rc = SQLITE_OK;
    seen(d, S_DOMAIN_SEEN, id, hour, &rc);
    return rc;
}

int64_t db_client_id(struct db *d, const char *addr, const char *mac, const char *name,
                     int64_t hour, int *rc)
{
    const char *v[] = {addr, mac ? mac : "", name ? name : ""};
    int l[] = {-1, -1, -1};
    return seen(d, S_CLIENT_SEEN, get_or_add(d, S_CLIENT_GET, S_CLIENT_ADD, v, l, 3, rc), hour, rc);
}

/* Run a bound DELETE in one small transaction; the rows deleted, or -error. */
static int delete_in_transaction(struct db *d, sqlite3_stmt *st)
{
    int rc = db_begin(d), deleted = 0;
    if (rc == SQLITE_OK) {
        rc = run(st);
        deleted = sqlite3_changes(d->conn);
    }
    if (rc == SQLITE_OK)
        rc = db_commit(d);
    if (rc != SQLITE_OK) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        db_rollback(d);
        return -rc;
    }
    return deleted;
}

/* The names deleted go from the directory too (back in if the transaction rolls back). */
static int expire_domains(struct db *d, int64_t cutoff_hour, int chunk, int *deleted)
{
    sqlite3_stmt *st = d->st[S_DOMAIN_EXPIRE];
    sqlite3_bind_int64(st, 1, cutoff_hour);
    sqlite3_bind_int(st, 2, chunk);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        uint32_t h = (uint32_t)sqlite3_column_int64(st, 1);
        if ((rc = reserve_change(d)) != SQLITE_OK)
            break;
        if (namedir_remove(&d->dir, h, id))
            note_change(d, h, id, false);
        ++*deleted;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int db_expire_names(struct db *d, int64_t cutoff_hour, int chunk)
{
    int deleted = 0;
    int rc = db_begin(d);
    if (rc == SQLITE_OK)
        rc = expire_domains(d, cutoff_hour, chunk, &deleted);
    if (rc == SQLITE_OK) {
        sqlite3_stmt *st = d->st[S_CLIENT_EXPIRE];
        sqlite3_bind_int64(st, 1, cutoff_hour);
        sqlite3_bind_int(st, 2, chunk);
        rc = run(st);
        deleted += sqlite3_changes(d->conn);
    }
    if (rc == SQLITE_OK)
        rc = db_commit(d);
    if (rc != SQLITE_OK) {
        db_rollback(d);
        return -rc;
    }
    return deleted;
}

int64_t db_list_id(struct db *d, const char *name, const char *vendor, const char *category,
                   int *rc)
{
    const char *v[] = {name, vendor, category};
    int l[] = {-1, -1, -1};
    return get_or_add(d, S_LIST_GET, S_LIST_ADD, v, l, 3, rc);
}

int64_t db_upstream_id(struct db *d, const char *addr, int *rc)
{
    const char *v[] = {addr};
    int l[] = {-1};
    return get_or_add(d, S_UPSTREAM_GET, S_UPSTREAM_ADD, v, l, 1, rc);
}

/* Bind one row's 10 values starting at parameter `first`; returns the row id used. */
/* Backward steps of the clock smaller than this keep ids (and times) increasing. */
#define JITTER_MS 1000

/*
 * The row id for a time: (ms << 10) plus a sequence for rows in the same millisecond. Rows are
 * written in time order, so an id at or below the last one means the same millisecond, or
 * the clock stepped back a little: take the next id. After a larger step back the id follows
 * the clock (the time must stay true), and may then meet rows already there: the caller
 * inserts those rows one by one, skipping taken ids (see db_insert).
 */
static int64_t next_id(int64_t last, uint64_t ts_ms, bool *stepped_back)
{
    int64_t id = (int64_t)(ts_ms << 10);
    *stepped_back = false;
    if (id > last)
        return id;
    if (last - id < ((int64_t)JITTER_MS << 10))
        return last + 1;
    *stepped_back = true;
    return id;
}

static int64_t bind_row(struct db *d, sqlite3_stmt *st, int first, const struct db_row *row,
                        int64_t id)
{
    (void)d;
    sqlite3_bind_int64(st, first, id);
    sqlite3_bind_int64(st, first + 1, row->client);
    sqlite3_bind_int64(st, first + 2, row->domain);
    sqlite3_bind_int(st, first + 3, row->qtype);
    sqlite3_bind_int(st, first + 4, row->status);
    if (row->list)
        sqlite3_bind_int64(st, first + 5, row->list);
    else
        sqlite3_bind_null(st, first + 5);
    sqlite3_bind_int(st, first + 6, row->rcode);
    if (row->upstream)
        sqlite3_bind_int64(st, first + 7, row->upstream);
    else
        sqlite3_bind_null(st, first + 7);
    sqlite3_bind_int64(st, first + 8, row->duration_us);
    sqlite3_bind_int(st, first + 9, row->flags);
    return id;
}

int db_insert(struct db *d, const struct db_row *row)
{
    bool back;
    int64_t id = next_id(d->last_id, row->ts_ms, &back);
    /* After the clock stepped back, ids of that millisecond may be taken: try the next ones. */
    for (int tries = 0; tries < 1024; tries++, id++) {
        bind_row(d, d->st[S_INSERT], 1, row, id);
        int rc = run(d->st[S_INSERT]);
        if (rc == SQLITE_OK) {
            d->last_id = id;
            return rc;
        }
        if (rc != SQLITE_CONSTRAINT || !back)
            return rc;
    }
    return SQLITE_CONSTRAINT;
}

int db_insert_many(struct db *d, const struct db_row *rows, size_t n)
{
    int64_t ids[DB_INSERT_MANY];
    bool many = n == DB_INSERT_MANY;
    int64_t last = d->last_id;
    for (size_t i = 0; many && i < n; i++) {
        bool back;
        last = ids[i] = next_id(last, rows[i].ts_ms, &back);
        many = !back;
    }
    if (!many) {
        for (size_t i = 0; i < n; i++) {
            int rc = db_insert(d, &rows[i]);
            if (rc != SQLITE_OK)
                return rc;
        }
        return SQLITE_OK;
    }
    sqlite3_stmt *st = d->st[S_INSERT_MANY];
    for (size_t i = 0; i < DB_INSERT_MANY; i++)
        bind_row(d, st, (int)(1 + 10 * i), &rows[i], ids[i]);
    int rc = run(st);
    if (rc == SQLITE_OK)
        d->last_id = last;
    return rc;
}

int db_count(struct db *d, int64_t hour, uint64_t queries, uint64_t logged, uint64_t not_logged,
             uint64_t dropped)
{
    sqlite3_stmt *st = d->st[S_COUNT];
    sqlite3_bind_int64(st, 1, hour);
    sqlite3_bind_int64(st, 2, (int64_t)queries);
    sqlite3_bind_int64(st, 3, (int64_t)logged);
    sqlite3_bind_int64(st, 4, (int64_t)not_logged);
    sqlite3_bind_int64(st, 5, (int64_t)dropped);
    return run(st);
}

int db_expire(struct db *d, uint64_t cutoff_ms, int chunk)
{
    sqlite3_stmt *st = d->st[S_EXPIRE];
    sqlite3_bind_int64(st, 1, (int64_t)(cutoff_ms << 10));
    sqlite3_bind_int(st, 2, chunk - 1);
    return delete_in_transaction(d, st);
}

void db_checkpoint(struct db *d, int64_t wal_limit)
{
    int wal_frames = 0, done = 0;
    if (d->ckpt) /* the checkpoint thread copies the pages back; TRUNCATE copies what is left */
        done = wal_frames = ckpt_wal_frames(d->ckpt);
    else
        sqlite3_wal_checkpoint_v2(d->conn, NULL, SQLITE_CHECKPOINT_PASSIVE, &wal_frames, &done);
    int64_t wal_bytes = (int64_t)wal_frames * 4096;
    if (wal_bytes > wal_limit && done == wal_frames) {
        /* Copy back what is left and start the WAL over so the file shrinks. Without
         * waiting: a reader that started meanwhile (`telesink report`) must not stall the
         * writer; the next checkpoint tries again. */
        sqlite3_busy_timeout(d->conn, 0);
        sqlite3_wal_checkpoint_v2(d->conn, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_busy_timeout(d->conn, (int)d->busy_ms);
    }
}

int64_t db_size(struct db *d)
{
    sqlite3_stmt *st;
    int64_t size = 0;
    if (sqlite3_prepare_v2(d->conn,
                           "SELECT page_count * page_size FROM pragma_page_count(), "
                           "pragma_page_size()",
                           -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            size = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return size;
}
