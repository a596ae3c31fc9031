/*
 * upstream: questions forwarded to the upstream resolvers, asynchronously.
 *
 * One `struct upstream` per serving loop. Each distinct question in flight is a pending entry
 * (coalesced: a second client asking the same name, type, class, DO and CD bits joins the first
 * one's wait instead of sending again). Tries go on UDP sockets connected to the server, each
 * on a kernel-random source port and used for at most 100 tries (then a fresh one), with a fresh
 * ID from getrandom() distinct from the other tries waiting on that socket; a reply is accepted
 * only from the address and port we sent to (the kernel drops anything else), with a waiting
 * try's ID and that try's question; anything else is counted and ignored, and the genuine reply
 * is still awaited.
 * Every query carries our loop marker (dnsmsg.h), so that one forwarded back to us is
 * recognised (upstream_query_is_ours) and answered SERVFAIL instead of going round again. A try
 * times out after timeout_ms, or ends at once on an ICMP unreachable (with every other try on
 * that socket), and the next server is
 * asked; a reply with TC=1 is asked again over TCP; all waiters fail (SERVFAIL) when every
 * server failed or UPSTREAM_BUDGET_MS has passed. At most max_pending clients wait at once.
 *
 * A tls:// server is asked over DNS over TLS instead: its tries go on the persistent,
 * pipelined connections of its dotpool (dotpool.h), with the same timeout and failover; a
 * connection that fails (refused, reset, a certificate that does not verify) fails its tries
 * over at once.
 *
 * The loop side calls upstream_resolve(); the answer arrives through the waiter's callback,
 * which the module calls after removing the pending entry, so a callback may resolve again.
 */
#ifndef TELESINK_UPSTREAM_H
#define TELESINK_UPSTREAM_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "dnsmsg.h"

/* A client never waits longer than this for SERVFAIL. */
#define UPSTREAM_BUDGET_MS 4500

struct upstream_stats {
    uint64_t sent;        /* datagrams and TCP queries sent */
    uint64_t answered;    /* questions answered by an upstream */
    uint64_t failed;      /* questions failed (SERVFAIL to their clients) */
    uint64_t coalesced;   /* clients that joined a question already in flight */
    uint64_t timeouts;    /* tries that timed out */
    uint64_t tcp_retries; /* TC=1 replies asked again over TCP */
    uint64_t bad_source;  /* datagrams from an address or port we did not send to */
    uint64_t mismatched;  /* from the right server but the wrong ID or question */
    uint64_t malformed;   /* matching replies that failed the scan */
    uint64_t overloaded;  /* queries refused because max_pending clients were waiting */
    uint64_t unreachable; /* tries ended at once by ICMP port unreachable (connection refused) */

    /* tls:// servers (their queries count in sent, their stray answers in mismatched) */
    uint64_t tls_handshakes; /* connections opened (handshake done, certificate verified) */
    uint64_t tls_failures;   /* connections that failed (their tries failed over at once) */
};

/*
 * A client waiting for an answer. Embedded in the caller's own query object, which must stay
 * valid until done() is called. done() gets the reply (valid only during the call) or
 * status < 0 with reply NULL.
 */
struct upstream_waiter {
    struct upstream_waiter *next;
    /* Set before done() is called: the server that answered (NULL on failure), and whether
     * this is the first waiter called with this reply (the one that should cache it). */
    const struct sockaddr *server;
    bool first;
    void (*done)(struct upstream_waiter *w, int status, const uint8_t *reply, size_t len,
                 const struct dnsmsg_reply_info *info);
};

struct upstream;
struct tls_ctx;

/*
 * servers are copied. tls_names (NULL: every server is plain DNS) has n_servers entries: NULL
 * for plain DNS, else the name (or IP literal) the server's certificate must match, verified
 * with tls_ctx (referenced). Returns NULL when out of memory.
 */
struct upstream *upstream_create(uv_loop_t *loop, const struct sockaddr_storage *servers,
                                 const char *const *tls_names, size_t n_servers,
                                 struct tls_ctx *tls_ctx, unsigned timeout_ms, unsigned max_pending,
                                 struct upstream_stats *stats);

/* New servers and timeout for questions asked from now on (a reload); DoT connections to the
 * old servers close when no question uses them any more. Returns 0 or -ENOMEM. */
int upstream_configure(struct upstream *u, const struct sockaddr_storage *servers,
                       const char *const *tls_names, size_t n_servers, struct tls_ctx *tls_ctx,
                       unsigned timeout_ms, unsigned max_pending);

/*
 * Ask q's question (it must be DNSMSG_OK). carried: the n_carried loop markers of other
 * telesinks the client's query carried (dnsmsg_loop_markers), passed on with ours. Returns 0
 * when w will be called back, or a negative errno (-EBUSY: max_pending clients are already
 * waiting) when it will not.
 */
int upstream_resolve(struct upstream *u, const struct dnsmsg_query *q, const uint8_t *carried,
                     size_t n_carried, struct upstream_waiter *w);

/*
 * Did this very process send q (a query dnsmsg_parse_query() accepted)? True when it carries
 * our loop marker: an upstream forwarded our own query back to us. Any thread may ask.
 */
bool upstream_query_is_ours(const uint8_t *pkt, size_t len, const struct dnsmsg_query *q);

/* Number of questions in flight. */
size_t upstream_pending(const struct upstream *u);

/*
 * Fail every pending question (waiters are called with status < 0) and close all handles; the
 * struct is freed once the loop has run their close callbacks.
 */
void upstream_close(struct upstream *u);

#endif
