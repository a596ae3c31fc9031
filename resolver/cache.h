/*
 * cache: upstream replies kept for reuse, one cache per serving thread.
 *
 * The forwarding side inserts every reply it scanned (dnsmsg_reply_scan) under the question it
 * asked; the serving side looks a client's question up before forwarding it, and on a hit passes
 * the bytes through dnsmsg_client_reply like a fresh upstream reply.
 *
 * Key: the question name (lower-cased), type, class, and the DO and CD bits. Lifetime (RFC 2181,
 * RFC 2308): a NOERROR answer lives as long as the smallest TTL in its answer and authority
 * sections; NXDOMAIN and NODATA as min(SOA TTL, SOA MINIMUM) of the authority section's SOA (and
 * not at all without one); SERVFAIL 5 seconds; every lifetime at most 86400 s. REFUSED, FORMERR,
 * other rcodes, TC=1 replies and zero lifetimes are not kept. A hit returns the reply with every
 * record's TTL lowered by the whole seconds it spent in the cache (the OPT record is left alone).
 *
 * Entries are one allocation each (the reply, the lower-case name, the offsets of the TTL fields
 * and the scan result), found through a chained hash table that doubles when it holds more
 * entries than buckets, and kept on a segmented LRU list: a new entry is on probation until its
 * first hit moves it to the protected segment (at most 80% of max_bytes); when max_bytes would
 * be exceeded the least recently used on probation go first, so names asked only once push out
 * each other, not the names in use. A hit does one hash, one compare, one copy and the TTL patch;
 * it never allocates and never parses the packet.
 *
 * Pure: no I/O, no event loop, no globals, no locking (one instance per thread).
 */
#ifndef TELESINK_CACHE_H
#define TELESINK_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dnsmsg.h"

/* The longest a reply is kept, and how long a SERVFAIL is. */
#define CACHE_MAX_TTL      86400u
#define CACHE_SERVFAIL_TTL 5u

struct cache;

/*
 * An empty cache holding at most max_bytes of replies plus per-entry overhead (each entry costs
 * the size of its allocation: the reply, its name, 2 bytes per record and a fixed header).
 * Replies larger than max_bytes / 4 are never kept. NULL when out of memory.
 */
struct cache *cache_create(size_t max_bytes);
void cache_destroy(struct cache *c);

/*
 * Keep a scanned upstream reply (dnsmsg_reply_scan returned 0 for reply/len/info) for this
 * question, replacing any entry with the same key. Replies that may not be cached, do not fit, or
 * meet an allocation failure are silently skipped. qname is uncompressed wire form (any case).
 * now_ms is a monotonic clock in milliseconds.
 */
void cache_insert(struct cache *c, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                  uint16_t qclass, bool do_bit, bool cd_bit, const uint8_t *reply, size_t len,
                  const struct dnsmsg_reply_info *info, uint64_t now_ms);

/*
 * On a hit: the stored reply with every TTL decreased by floor((now_ms - stored_ms) / 1000) (never
 * below 0) written to out, *info set to its scan result (valid for those bytes), and the length
 * returned. 0 on a miss: no entry, an entry whose lifetime ran out (it is removed), or cap too
 * small for the reply.
 */
size_t cache_lookup(struct cache *c, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                    uint16_t qclass, bool do_bit, bool cd_bit, uint64_t now_ms, uint8_t *out,
                    size_t cap, struct dnsmsg_reply_info *info);

struct cache_stats {
    uint64_t hits, misses; /* lookups: every one counts as exactly one of them */
    uint64_t inserts;      /* replies stored (replacements included) */
    uint64_t evictions;    /* entries dropped to make room */
    uint64_t expired;      /* entries found past their lifetime by a lookup */
    size_t bytes;          /* what max_bytes bounds */
    size_t entries;
    size_t buckets; /* hash table size */
};

void cache_get_stats(const struct cache *c, struct cache_stats *out);

#endif
