/*
 * dotpool: DNS-over-TLS connections (RFC 7858) to one upstream server, for one serving loop.
 *
 * upstream.c keeps one pool per tls:// server and hands it each try's query; the pool owns the
 * sockets (libuv TCP) and the TLS sessions (tls.h, memory BIOs) and gives back the answers.
 *
 * - Reuse and pipelining: a query goes on the first connection with room, so one connection
 *   normally carries everything; up to DOTPOOL_SLOTS queries are in flight on it at once, each
 *   with an ID unique on that connection (the pool picks it: answers are matched by ID here, and
 *   by ID and question by the caller), answered in any order. Only when every connection is
 *   full is another opened, up to DOTPOOL_MAX_CONNS.
 * - Queries sent while a connection is still connecting or in its handshake wait on it and are
 *   written as soon as the handshake completes. Each is padded to a multiple of 128 bytes
 *   (EDNS Padding, RFC 8467), so that its size does not give the name away.
 * - A connection idle for DOTPOOL_IDLE_MS is closed with a close_notify; a close_notify (or a
 *   FIN) from the server closes it too. Either way the next query opens a new one. Queries that
 *   crossed the server's own idle close (written to a connection that had been idle, nothing
 *   heard since) go once more on a new connection instead of failing (RFC 7766 6.2.1).
 * - Failure: a connection refused or reset, a handshake that fails or does not finish within
 *   the timeout, a certificate that does not verify (untrusted CA, wrong name), a server closing
 *   with queries in flight, bytes that are not DNS, or an open connection that answered nothing
 *   for the timeout while a query timed out: the connection is closed and every query on it is
 *   handed back at once (failed callback) for the caller to fail over. The reason is logged,
 *   at most once a minute per pool. After a failed connection attempt the pool refuses queries
 *   for a while (backoff, 250 ms doubling up to 8 s; a handshake that completes resets it), so
 *   a broken server costs one attempt per backoff step rather than one per query.
 *
 * Memory: about 20 KiB per connection plus its reassembly buffer (up to one 64 KiB answer);
 * nothing is allocated per query.
 */
#ifndef TELESINK_DOTPOOL_H
#define TELESINK_DOTPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "upstream.h"

#define DOTPOOL_SLOTS     256 /* queries in flight on one connection (a power of two) */
#define DOTPOOL_MAX_CONNS 4
#define DOTPOOL_IDLE_MS   10000

struct tls_ctx;
struct dotpool;
struct dotpool_conn;

/* A query on a pool: embedded in the caller's object, which must outlive its time on a
 * connection (until the reply or failed callback, dotpool_cancel or dotpool_timed_out).
 * Zero-initialised before first use. */
struct dotpool_query {
    struct dotpool_conn *conn; /* NULL when on no connection */
    uint8_t *msg; /* the query (the caller's bytes), written once the handshake is done */
    uint16_t len;
    uint16_t id; /* the ID the pool gave it (msg's first two bytes) */
    bool resent; /* moved to a new connection once already */
};

struct dotpool_callbacks {
    /* A message from the server with q's ID (valid only during the call). q is still on its
     * connection: the caller takes it off (dotpool_cancel) when the answer is accepted or it
     * gives up; otherwise q goes on waiting. */
    void (*reply)(struct dotpool_query *q, const uint8_t *msg, size_t len);
    /* q's connection failed; q is off it already. */
    void (*failed)(struct dotpool_query *q);
};

/*
 * A pool for the server at addr whose certificate must match name (a host name, also sent as
 * SNI, or an IP literal), verified with ctx (a reference is taken). timeout_ms bounds the
 * connect and the handshake. Counts into stats (sent, mismatched, tls_handshakes,
 * tls_failures). NULL when out of memory.
 */
struct dotpool *dotpool_create(uv_loop_t *loop, const struct sockaddr *addr, const char *name,
                               struct tls_ctx *ctx, unsigned timeout_ms,
                               const struct dotpool_callbacks *cb, struct upstream_stats *stats);

/*
 * Send the query msg (len bytes, at most DNSMSG_SMALL_MAX) on one of the pool's connections,
 * opening one if needed. The pool sets its ID (the first two bytes of msg; q->id) and keeps a
 * pointer to msg until q leaves the connection. Returns 0 (q is on a connection; its callbacks
 * may already have run when an immediate failure was known), -EAGAIN while backing off after
 * failed connection attempts, -EBUSY when every connection is full, or another negative errno
 * when no connection could be started: then try another server.
 */
int dotpool_send(struct dotpool *pool, struct dotpool_query *q, uint8_t *msg, size_t len);

/* Take q off its connection (no-op when it is on none); a late answer is then ignored. */
void dotpool_cancel(struct dotpool_query *q);

/*
 * q's try timed out: it leaves its connection, and the connection is closed as dead (its
 * other queries failed over) when nothing has come back on it for the pool's timeout.
 */
void dotpool_timed_out(struct dotpool_query *q);

/*
 * The owner lets go (no query may still be on the pool): every connection is closed, with a
 * close_notify when open; the pool is freed when their handles are.
 */
void dotpool_close(struct dotpool *pool);

#endif
