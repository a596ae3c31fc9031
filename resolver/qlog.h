/*
 * qlog: the query log's queue and writer thread.
 *
 * Each serving loop owns one single-producer ring of fixed-size records. Filling a record is a
 * few stores and one release; a full ring drops the record and counts it: a serving thread
 * never waits for the disk. One writer thread (the only SQLite write connection, see db.h)
 * drains every ring at least every flush_ms, writes each batch in one transaction with prepared
 * statements, resolves names/clients/lists/upstreams to ids through in-memory caches, looks up
 * LAN clients' MACs in the kernel's neighbour table, expires old rows in small chunks and keeps
 * the WAL checkpointed.
 *
 * Faults never reach the resolver: a full disk, a read-only or locked file drops the batch
 * (counted, logged at most once a minute) and the writer retries; a corrupt file is moved aside
 * and a new one started. Counts of what was seen, logged, not logged (log_allowed = no) and
 * dropped are kept per hour in the database, so reports can say when the log is incomplete.
 */
#ifndef TELESINK_QLOG_H
#define TELESINK_QLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "policy.h"

#define QLOG_DEFAULT_QUEUE 65536
#define QLOG_NAME_INLINE   96

/* A client as the record carries it (the writer turns it into text, a MAC and a name). */
struct qlog_client {
    uint8_t family; /* AF_INET, AF_INET6 */
    uint8_t prefix; /* < 32/128 when an ECS subnet was all a forwarder gave */
    bool has_mac;
    bool from_edns; /* identity given by a trusted forwarder */
    uint8_t addr[16];
    uint8_t mac[6];
    uint8_t zero[6]; /* explicit padding, kept 0: the bytes before name are a cache key */
    /* The device's own name (DoT SNI, see listen_origin_name), interned (intern.h): it lives as
     * long as the process. NULL = none. It wins over a [clients] name for the address or MAC. */
    const char *name;
};

/* One query, as logged. Filled in place in the ring by qlog_reserve()/qlog_commit(). */
struct qlog_record {
    uint64_t ts_ms; /* wall clock when answered */
    uint32_t duration_us;
    uint32_t list; /* policy_list.log_id, 0 = none */
    uint16_t qtype, rcode;
    uint8_t status; /* enum db_status */
    uint8_t flags;  /* DB_FLAG_* */
    uint8_t name_len;
    uint8_t upstream_family; /* 0 = none */
    uint16_t upstream_port;
    uint8_t upstream[16];
    struct qlog_client client;
    char *long_name; /* names longer than QLOG_NAME_INLINE (heap; the writer frees it) */
    char name[QLOG_NAME_INLINE];
};

struct qlog;
struct qlog_ring;

/* nrings rings (one per serving loop) sharing cfg's queue size. Takes a reference on cfg. */
struct qlog *qlog_create(struct config *cfg, unsigned nrings);
/* Start the writer thread (it opens the database). Returns 0 or a negative errno. */
int qlog_start(struct qlog *q);
struct qlog_ring *qlog_ring(struct qlog *q, unsigned index);

/* A record to fill, or NULL when the ring is full (the query is counted as dropped). */
struct qlog_record *qlog_reserve(struct qlog_ring *r);
/* Whether qlog_reserve() would succeed now (for benchmarks that wait instead of dropping). */
bool qlog_has_room(struct qlog_ring *r);
/* Publish the record returned by the last qlog_reserve(). */
void qlog_commit(struct qlog_ring *r);
/* A query deliberately not logged (log_allowed = no): counted only. */
void qlog_count_unlogged(struct qlog_ring *r);
/* Set the name of a reserved record (lower-cased wire name -> text). */
void qlog_set_name(struct qlog_record *rec, const uint8_t *wire, size_t len);

/* Give every list of p a log id (main thread, before p is shared). */
void qlog_register_lists(struct qlog *q, struct policy *p);
/* A new configuration for the writer (client names, anonymisation, retention). */
void qlog_reload(struct qlog *q, struct config *cfg);

/* Drain every ring, write, close the database and join the writer. Rings must be idle. */
void qlog_stop(struct qlog *q);
void qlog_destroy(struct qlog *q);

struct qlog_stats {
    uint64_t logged, dropped_full, dropped_fault, unlogged;
};
void qlog_get_stats(struct qlog *q, struct qlog_stats *out);

#endif
