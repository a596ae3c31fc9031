/*
 * upstream: questions forwarded to the upstream resolvers, asynchronously.
 *
 * One `struct upstream` per serving loop. Each distinct question in flight is a pending entry
 * (coalesced: a second client asking the same name, type, class, DO and CD bits joins the first
 * one's wait instead of sending again). Every try uses a fresh UDP socket (a kernel-random
 * source port) and a fresh ID from getrandom(); a reply is accepted only from the address and
 * port we sent to, with that ID and that question; anything else is counted and ignored, and
 * the genuine reply is still awaited. Every query carries our loop marker (dnsmsg.h), so that
 * one forwarded back to us is recognised (upstream_query_is_ours) and answered SERVFAIL instead
 * of going round again. A try times out after timeout_ms and the next server is
 * asked; a reply with TC=1 is asked again over TCP; all waiters fail (SERVFAIL) when every
 * server failed or UPSTREAM_BUDGET_MS has passed.
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
    uint64_t overloaded;  /* questions refused because max_pending were in flight */
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

/* servers are copied. Returns NULL when out of memory. */
struct upstream *upstream_create(uv_loop_t *loop, const struct sockaddr_storage *servers,
                                 size_t n_servers, unsigned timeout_ms, unsigned max_pending,
                                 struct upstream_stats *stats);

/* New servers and timeout for questions asked from now on (a reload). Returns 0 or -ENOMEM. */
int upstream_configure(struct upstream *u, const struct sockaddr_storage *servers, size_t n_servers,
                       unsigned timeout_ms, unsigned max_pending);

/*
 * Ask q's question (it must be DNSMSG_OK). Returns 0 when w will be called back, or a negative
 * errno (-EBUSY: too many questions in flight) when it will not.
 */
int upstream_resolve(struct upstream *u, const struct dnsmsg_query *q, struct upstream_waiter *w);

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
