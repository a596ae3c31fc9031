#include "cache.h"

#include "wire.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 1024u /* a power of two; doubles when entries outnumber buckets */

/* The share of max_bytes that entries hit since they were stored may keep (segmented LRU). */
#define PROTECTED_PCT 80u

#define KEY_DO 0x01u
#define KEY_CD 0x02u

/*
 * One cached reply. Lives from cache_insert until it is replaced, evicted, found expired or the
 * cache is destroyed; one allocation holds the struct, then ttl_off[nttl], then the lower-case
 * question name, then the reply bytes as the upstream sent them (TTLs clamped to CACHE_MAX_TTL).
 */
struct cache_entry {
    struct cache_entry *chain;       /* next in the same hash bucket */
    struct cache_entry *prev, *next; /* its segment's LRU list: prev is more recently used */
    uint64_t hash;
    uint64_t stored_ms;
    struct dnsmsg_reply_info info; /* the scan of the stored bytes */
    uint32_t ttl;                  /* lifetime in seconds, 1 .. CACHE_MAX_TTL */
    uint32_t len;                  /* reply bytes */
    uint16_t qtype, qclass;
    uint16_t nttl; /* TTL fields to patch on a hit: one per record kept, OPT excluded */
    uint8_t qname_len;
    uint8_t flags;      /* KEY_DO | KEY_CD */
    uint8_t seg;        /* SEG_PROBATION or SEG_PROTECTED */
    uint16_t ttl_off[]; /* offset of each record's TTL field in the reply */
};

/*
 * Segmented LRU: a new entry starts on probation; a hit moves it to the protected segment, which
 * may hold PROTECTED_PCT of max_bytes (past that its least recently used go back to probation).
 * Evictions take probation's least recently used first. Names asked once (a busy network's
 * unique telemetry hostnames, a scan) then push out only each other, not the names in use: with
 * one LRU list, at 10% never-seen names a tenth of the popular names' answers in the benchmark's
 * mixed workload came from upstream again (their p90 latency 64-72 µs against dnsdist's 54-60).
 */
enum { SEG_PROBATION, SEG_PROTECTED };

struct lru {
    struct cache_entry *head, *tail; /* most and least recently used */
    size_t bytes;
};

struct cache {
    size_t max_bytes;
    size_t protected_max;
    size_t entries;
    size_t nbuckets; /* a power of two */
    struct cache_entry **buckets;
    struct lru seg[2];
    uint64_t seed;
    uint64_t hits, misses, inserts, evictions, expired;
};

static inline uint8_t *entry_qname(struct cache_entry *e)
{
    return (uint8_t *)(e->ttl_off + e->nttl);
}

static inline uint8_t *entry_reply(struct cache_entry *e)
{
    return entry_qname(e) + e->qname_len;
}

static inline size_t entry_size(size_t nttl, size_t qname_len, size_t len)
{
    return sizeof(struct cache_entry) + nttl * sizeof(uint16_t) + qname_len + len;
}

/* What an entry counts against max_bytes: its allocation and its share of the bucket array. */
static inline size_t entry_cost(const struct cache_entry *e)
{
    return entry_size(e->nttl, e->qname_len, e->len) + sizeof(struct cache_entry *);
}

/* FNV-1a over the lower-cased name, keyed by the cache's seed, then the rest of the key. */
static uint64_t key_hash(uint64_t seed, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                         uint16_t qclass, unsigned flags)
{
    uint64_t h = seed;
    for (size_t i = 0; i < qname_len; i++)
        h = (h ^ dns_lower(qname[i])) * 0x100000001b3ULL;
    h ^= (uint64_t)qtype << 32 | (uint64_t)qclass << 16 | flags;
    return fmix64(h);
}

static struct cache_entry *find(struct cache *c, uint64_t h, const uint8_t *qname, size_t qname_len,
                                uint16_t qtype, uint16_t qclass, unsigned flags)
{
    for (struct cache_entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->chain) {
        if (e->hash != h || e->qtype != qtype || e->qclass != qclass || e->flags != flags ||
            e->qname_len != qname_len)
            continue;
        const uint8_t *stored = entry_qname(e);
        size_t i = 0;
        while (i < qname_len && stored[i] == dns_lower(qname[i]))
            i++;
        if (i == qname_len)
            return e;
    }
    return NULL;
}

static void lru_unlink(struct cache *c, struct cache_entry *e)
{
    struct lru *l = &c->seg[e->seg];
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    l->bytes -= entry_cost(e);
}

static void lru_push_front(struct cache *c, struct cache_entry *e, unsigned seg)
{
    struct lru *l = &c->seg[seg];
    e->seg = (uint8_t)seg;
    e->prev = NULL;
    e->next = l->head;
    if (l->head)
        l->head->prev = e;
    else
        l->tail = e;
    l->head = e;
    l->bytes += entry_cost(e);
}

static size_t cache_bytes(const struct cache *c)
{
    return c->seg[SEG_PROBATION].bytes + c->seg[SEG_PROTECTED].bytes;
}

/* Unlink e from its bucket and its LRU list, and free it. */
static void remove_entry(struct cache *c, struct cache_entry *e)
{
    struct cache_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    lru_unlink(c, e);
    c->entries--;
    free(e);
}

/* Double the bucket array; on allocation failure keep the old one (chains just get longer). */
static void grow(struct cache *c)
{
    size_t n = c->nbuckets * 2;
    struct cache_entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct cache_entry *e = c->buckets[i];
        while (e) {
            struct cache_entry *next = e->chain;
            size_t slot = e->hash & (n - 1);
            e->chain = b[slot];
            b[slot] = e;
            e = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

struct cache *cache_create(size_t max_bytes)
{
    struct cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->buckets = calloc(INITIAL_BUCKETS, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    c->nbuckets = INITIAL_BUCKETS;
    c->max_bytes = max_bytes;
    c->protected_max = max_bytes / 100 * PROTECTED_PCT + max_bytes % 100 * PROTECTED_PCT / 100;
    /*
     * Clients choose the names, so the hash is keyed. With no entropy source in a pure module the
     * key comes from addresses that ASLR randomises (heap, stack, code): not cryptographic, but
     * enough that chains cannot be precomputed offline.
     */
    uintptr_t stack = (uintptr_t)&c;
    c->seed = fmix64((uint64_t)(uintptr_t)c ^ fmix64((uint64_t)stack) ^
                     fmix64((uint64_t)(uintptr_t)&cache_create + 0x9E3779B97F4A7C15ULL));
    return c;
}

void cache_destroy(struct cache *c)
{
    if (!c)
        return;
    for (unsigned seg = 0; seg < 2; seg++) {
        struct cache_entry *e = c->seg[seg].head;
        while (e) {
            struct cache_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(c->buckets);
    free(c);
}

/* Skip a name as it stands in a record (up to and including its end or first pointer). */
static int skip_name(const uint8_t *pkt, size_t end, size_t *pos)
{
    size_t p = *pos;
    for (;;) {
        if (p >= end)
            return -1;
        uint8_t l = pkt[p];
        if ((l & 0xC0) == 0xC0) {
            if (p + 2 > end)
                return -1;
            *pos = p + 2;
            return 0;
        }
        if (l & 0xC0)
            return -1;
        p += 1u + l;
        if (l == 0) {
            *pos = p;
            return 0;
        }
    }
}

/* A record's TTL as we keep it: above 2^31 - 1 reads as 0 (RFC 2181 8), then capped. */
static inline uint32_t clamp_ttl(uint32_t v)
{
    if (v & 0x80000000u)
        return 0;
    return v > CACHE_MAX_TTL ? CACHE_MAX_TTL : v;
}

/*
 * Walk the records kept in the entry's copy of the reply: note where each TTL field is, clamp it
 * in place, and work out the entry's lifetime. Returns 0 with *ttl set (possibly 0: not to be
 * cached), or -1 when the reply is not cacheable or the walk fails.
 */
static int scan_ttls(struct cache_entry *e, uint32_t *ttl)
{
    uint8_t *pkt = entry_reply(e);
    const struct dnsmsg_reply_info *info = &e->info;
    size_t end = info->end, pos = info->question_end;
    uint32_t min_ttl = CACHE_MAX_TTL;
    bool have_soa = false;
    uint32_t soa_minimum = 0;

    for (unsigned i = 0; i < e->nttl; i++) {
        unsigned section = i < info->an ? 0 : i < (unsigned)info->an + info->ns ? 1 : 2;
        if (skip_name(pkt, end, &pos) < 0 || pos + 10 > end)
            return -1;
        uint16_t type = rd16(pkt + pos);
        uint16_t rdlen = rd16(pkt + pos + 8);
        size_t rdata = pos + 10;
        if (type == TYPE_OPT || rdata + rdlen > end)
            return -1; /* dnsmsg_reply_scan keeps the OPT out of the records it counts */
        uint32_t v = clamp_ttl(rd32(pkt + pos + 4));
        wr32(pkt + pos + 4, v);
        e->ttl_off[i] = (uint16_t)(pos + 4);
        if (section < 2 && v < min_ttl)
            min_ttl = v;
        if (section == 1 && type == TYPE_SOA && !have_soa && rdlen >= 22) {
            /* MNAME, RNAME, then five 32-bit fields: MINIMUM is the last. */
            size_t p = rdata;
            if (skip_name(pkt, rdata + rdlen, &p) == 0 && skip_name(pkt, rdata + rdlen, &p) == 0 &&
                p + 20 == rdata + rdlen) {
                have_soa = true;
                soa_minimum = clamp_ttl(rd32(pkt + rdata + rdlen - 4));
            }
        }
        pos = rdata + rdlen;
    }

    switch (info->rcode) {
    case RCODE_SERVFAIL:
        *ttl = CACHE_SERVFAIL_TTL;
        return 0;
    case RCODE_NOERROR:
        if (info->an > 0) {
            /* A SOA beside answers means a CNAME chain that ends in NODATA: the negative part
             * lives no longer than the SOA minimum (RFC 2308 5). */
            *ttl = have_soa && soa_minimum < min_ttl ? soa_minimum : min_ttl;
            return 0;
        }
        /* NODATA: a negative answer like NXDOMAIN. */
        /* fallthrough */
    case RCODE_NXDOMAIN:
        /*
         * RFC 2308 5: min(SOA TTL, SOA MINIMUM). min_ttl covers the SOA's own TTL and any other
         * answer or authority record (a CNAME before the NXDOMAIN, NSEC records), which must not
         * outlive their TTLs either.
         */
        if (!have_soa)
            return -1;
        *ttl = min_ttl < soa_minimum ? min_ttl : soa_minimum;
        return 0;
    default:
        return -1;
    }
}

void cache_insert(struct cache *c, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                  uint16_t qclass, bool do_bit, bool cd_bit, const uint8_t *reply, size_t len,
                  const struct dnsmsg_reply_info *info, uint64_t now_ms)
{
    if (qname_len == 0 || qname_len > DNS_MAX_NAME || len > DNS_MAX_UDP || len > c->max_bytes / 4)
        return;
    if (info->tc || (info->rcode != RCODE_NOERROR && info->rcode != RCODE_NXDOMAIN &&
                     info->rcode != RCODE_SERVFAIL))
        return;
    if (info->question_end > info->end || info->end > len)
        return;
    size_t size = entry_size(info->records, qname_len, len);
    if (size + sizeof(struct cache_entry *) > c->max_bytes)
        return;

    struct cache_entry *e = malloc(size);
    if (!e)
        return;
    e->info = *info;
    e->len = (uint32_t)len;
    e->qtype = qtype;
    e->qclass = qclass;
    e->nttl = info->records;
    e->qname_len = (uint8_t)qname_len;
    e->flags = (do_bit ? KEY_DO : 0) | (cd_bit ? KEY_CD : 0);
    e->stored_ms = now_ms;
    for (size_t i = 0; i < qname_len; i++)
        entry_qname(e)[i] = dns_lower(qname[i]);
    memcpy(entry_reply(e), reply, len);
    uint32_t ttl = 0;
    if (scan_ttls(e, &ttl) < 0 || ttl == 0) {
        free(e);
        return;
    }
    e->ttl = ttl;
    e->hash = key_hash(c->seed, qname, qname_len, qtype, qclass, e->flags);

    struct cache_entry *old = find(c, e->hash, qname, qname_len, qtype, qclass, e->flags);
    if (old)
        remove_entry(c, old);
    size_t cost = entry_cost(e);
    while (cache_bytes(c) + cost > c->max_bytes) {
        struct cache_entry *victim = c->seg[SEG_PROBATION].tail;
        if (!victim && !(victim = c->seg[SEG_PROTECTED].tail))
            break;
        remove_entry(c, victim);
        c->evictions++;
    }

    size_t slot = e->hash & (c->nbuckets - 1);
    e->chain = c->buckets[slot];
    c->buckets[slot] = e;
    lru_push_front(c, e, SEG_PROBATION);
    c->entries++;
    c->inserts++;
    if (c->entries > c->nbuckets)
        grow(c);
}

size_t cache_lookup(struct cache *c, const uint8_t *qname, size_t qname_len, uint16_t qtype,
                    uint16_t qclass, bool do_bit, bool cd_bit, uint64_t now_ms, uint8_t *out,
                    size_t cap, struct dnsmsg_reply_info *info)
{
    unsigned flags = (do_bit ? KEY_DO : 0) | (cd_bit ? KEY_CD : 0);
    struct cache_entry *e = NULL;
    if (qname_len > 0 && qname_len <= DNS_MAX_NAME)
        e = find(c, key_hash(c->seed, qname, qname_len, qtype, qclass, flags), qname, qname_len,
                 qtype, qclass, flags);
    if (!e) {
        c->misses++;
        return 0;
    }
    uint64_t age = now_ms > e->stored_ms ? (now_ms - e->stored_ms) / 1000 : 0;
    if (age >= e->ttl) {
        remove_entry(c, e);
        c->expired++;
        c->misses++;
        return 0;
    }
    if (e->len > cap) {
        c->misses++;
        return 0;
    }

    const uint8_t *stored = entry_reply(e);
    memcpy(out, stored, e->len);
    if (age > 0) {
        uint32_t dec = (uint32_t)age;
        for (unsigned i = 0; i < e->nttl; i++) {
            uint32_t v = rd32(stored + e->ttl_off[i]);
            wr32(out + e->ttl_off[i], v > dec ? v - dec : 0);
        }
    }
    *info = e->info;
    if (e->seg == SEG_PROBATION) {
        lru_unlink(c, e);
        lru_push_front(c, e, SEG_PROTECTED);
        struct lru *p = &c->seg[SEG_PROTECTED];
        while (p->bytes > c->protected_max && p->tail != e) {
            struct cache_entry *old = p->tail;
            lru_unlink(c, old);
            lru_push_front(c, old, SEG_PROBATION);
        }
    } else if (c->seg[SEG_PROTECTED].head != e) {
        lru_unlink(c, e);
        lru_push_front(c, e, SEG_PROTECTED);
    }
    c->hits++;
    return e->len;
}

void cache_get_stats(const struct cache *c, struct cache_stats *out)
{
    out->hits = c->hits;
    out->misses = c->misses;
    out->inserts = c->inserts;
    out->evictions = c->evictions;
    out->expired = c->expired;
    out->bytes = cache_bytes(c);
    out->entries = c->entries;
    out->buckets = c->nbuckets;
}
