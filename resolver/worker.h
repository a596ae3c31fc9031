/*
 * worker: one serving thread, its own libuv loop, listeners and upstream table.
 *
 * This is where a query's path is glued together: listen hands over bytes, dnsmsg checks them,
 * the access list decides who may ask and the rate limit how often, upstream forwards, and the
 * answer goes back through listen. Workers share nothing mutable; the main thread talks to them
 * only through an async handle (a new config on reload, stop on SIGTERM).
 */
#ifndef TELESINK_WORKER_H
#define TELESINK_WORKER_H

#include <stdint.h>

#include "config.h"
#include "listen.h"
#include "policy.h"
#include "qlog.h"
#include "ratelimit.h"
#include "upstream.h"

struct worker_stats {
    uint64_t queries;       /* packets received */
    uint64_t dropped;       /* too short to answer, or responses */
    uint64_t formerr;       /* answered FORMERR */
    uint64_t notimp;        /* answered NOTIMP */
    uint64_t badvers;       /* answered BADVERS */
    uint64_t refused;       /* answered REFUSED: outside `allow`, or a zone transfer */
    uint64_t blocked;       /* answered from the lists */
    uint64_t blocked_cname; /* of those: found through an upstream answer's CNAME chain */
    uint64_t cached;        /* answered from the response cache */
    uint64_t forwarded;     /* sent to the upstream table */
    uint64_t servfail;      /* answered SERVFAIL */
    uint64_t ratelimited;   /* answered REFUSED: the client is over [server] rate_limit */
    uint64_t loops;         /* our own queries that came back to us (answered SERVFAIL) */
    uint64_t any;           /* ANY questions answered with the RFC 8482 HINFO */
    struct upstream_stats upstream;
    struct listen_stats listen;
};

struct worker;

/*
 * A worker for loop `index` using the sockets bound in addrs (their fds are taken). Takes a
 * reference on cfg and on policy. Queries are logged through qlog (may be NULL) and counted
 * against the per-client limits in ratelimit, which every worker shares (may be NULL: no
 * limit; it must outlive the worker). Returns NULL on failure (logged).
 */
struct worker *worker_create(unsigned index, struct config *cfg, struct policy *policy,
                             struct qlog_ring *qlog, struct ratelimit *ratelimit,
                             struct listen_addr *addrs, size_t n_addrs);
/* Before worker_start: also serve DNS over TLS on addrs (bound by listen_bind_tls; their fds
 * are taken) with ctx's certificate (a reference is taken). 0 or a negative errno. */
int worker_add_tls(struct worker *w, struct listen_addr *addrs, size_t n_addrs,
                   struct tls_ctx *ctx);
/* From any thread: new DoT connections get ctx (a renewed certificate; a reference is taken). */
void worker_set_tls(struct worker *w, struct tls_ctx *ctx);
/* Run the loop in a new thread. Returns 0 or a negative errno. */
int worker_start(struct worker *w);
/* From any thread: use cfg and policy (references are taken) for queries from now on. */
void worker_reload(struct worker *w, struct config *cfg, struct policy *policy);
/* From any thread: stop reading, close everything, end the loop. */
void worker_stop(struct worker *w);
/* Wait for the thread; returns 0 when its loop closed cleanly. */
int worker_join(struct worker *w);
/* Add this worker's counters to *sum (after worker_join). */
void worker_stats_add(const struct worker *w, struct worker_stats *sum);
void worker_destroy(struct worker *w);

#endif
