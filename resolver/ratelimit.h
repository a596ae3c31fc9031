/*
 * ratelimit: how many queries each client may send, counted across every serving thread.
 *
 * SO_REUSEPORT spreads one client's source ports over all serving threads, so the count must
 * be shared: one table for the process, split into sets of RATELIMIT_WAYS entries, each set
 * behind its own mutex (threads meet on a set only when their clients hash to it, and hold it
 * for a few comparisons). A client's limit therefore holds exactly, whatever thread it reaches.
 *
 * The algorithm is GCRA (a token bucket kept as one timestamp per client): every query admitted
 * moves the client's "theoretical arrival time" (TAT) on by seconds/limit; a query is refused
 * while the TAT lies more than one window minus one interval ahead. A client may thus send
 * `limit` queries at once and then one every seconds/limit; one that keeps flooding gets
 * exactly `limit` answers per window, and refused queries cost it nothing more.
 *
 * Memory is fixed at creation (RATELIMIT_SETS * RATELIMIT_WAYS entries, ~200 KiB). A new client
 * takes the entry of its set with the earliest TAT: an idle client's (which has nothing left to
 * remember) or one well within its limit, never a client that is being limited while a
 * less-limited one is there; so a flood of spoofed sources cannot grow the table, and cannot
 * free a flooding client from its limit by pushing it out. Sets are chosen by a keyed hash.
 *
 * Pure: no sockets, no event loop; the caller passes the time.
 */
#ifndef TELESINK_RATELIMIT_H
#define TELESINK_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define RATELIMIT_SETS 512 /* power of two */
#define RATELIMIT_WAYS 8

/* Who is counted: an address (or an ECS prefix), or a MAC a trusted forwarder named. */
enum ratelimit_kind {
    RATELIMIT_V4 = 1,
    RATELIMIT_V6 = 2,
    RATELIMIT_MAC = 3,
};

struct ratelimit_key {
    uint8_t kind;   /* enum ratelimit_kind */
    uint8_t prefix; /* bits of bytes that count (addresses); 48 for a MAC */
    uint8_t bytes[16];
};

enum ratelimit_verdict {
    RATELIMIT_PASS = 0,
    RATELIMIT_REFUSE,        /* over the limit */
    RATELIMIT_REFUSE_NOTICE, /* over the limit, and the first refusal in this window: log it */
};

struct ratelimit;

/* An empty table whose set index is keyed by seed. NULL when out of memory. */
struct ratelimit *ratelimit_create(uint64_t seed);
void ratelimit_destroy(struct ratelimit *rl);

/*
 * Count one query from key at now_ns (a monotonic clock) against `limit` queries per `seconds`
 * (limit > 0, seconds > 0; they may change between calls, e.g. on a reload: what a client owes
 * is then carried over in queries, not in time). A refused query is not counted.
 * RATELIMIT_REFUSE_NOTICE is returned at most once per `seconds` per client. Thread-safe.
 */
enum ratelimit_verdict ratelimit_check(struct ratelimit *rl, const struct ratelimit_key *key,
                                       unsigned limit, unsigned seconds, uint64_t now_ns);

#endif
