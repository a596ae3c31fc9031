#include "domainset.h"

#include "wire.h"

#include <stdlib.h>
#include <string.h>

#define MAX_LABELS 128
#define EMPTY      0
/* Grow when more than 7/8 full; size for 4/5 full. Linear probing stays short below that. */
#define GROW_NUM 7
#define GROW_DEN 8

struct domainset {
    uint64_t seed;
    size_t cap;     /* slots */
    size_t count;   /* distinct names */
    uint64_t *keys; /* 0 = empty slot */
    uint32_t *srcs; /* high 16 bits: subtree source + 1; low 16 bits: exact source + 1 */
};

static const uint8_t lower_tab[256] = {
#define R(i)   [i] = (uint8_t)((i) >= 'A' && (i) <= 'Z' ? (i) + 32 : (i))
#define R4(i)  R(i), R(i + 1), R(i + 2), R(i + 3)
#define R16(i) R4(i), R4(i + 4), R4(i + 8), R4(i + 12)
#define R64(i) R16(i), R16(i + 16), R16(i + 32), R16(i + 48)
    R64(0),
    R64(64),
    R64(128),
    R64(192),
#undef R
#undef R4
#undef R16
#undef R64
};

/* One label, case-folded, length included. */
static inline uint64_t label_hash(uint64_t seed, const uint8_t *p, size_t n)
{
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ULL);
    for (size_t i = 0; i < n; i++)
        h = (h ^ lower_tab[p[i]]) * 0x100000001b3ULL;
    return h;
}

/* The hash of a suffix: its parent's hash extended by one more label on the left. */
static inline uint64_t extend(uint64_t parent, uint64_t label)
{
    uint64_t h = fmix64(parent * 0x9E3779B97F4A7C15ULL ^ label);
    return h == EMPTY ? 1 : h;
}

static inline size_t slot_of(const struct domainset *s, uint64_t key)
{
    return (size_t)(((unsigned __int128)key * s->cap) >> 64);
}

static int alloc_table(struct domainset *s, size_t cap)
{
    s->keys = calloc(cap, sizeof *s->keys);
    s->srcs = calloc(cap, sizeof *s->srcs);
    if (!s->keys || !s->srcs) {
        free(s->keys);
        free(s->srcs);
        return -1;
    }
    s->cap = cap;
    return 0;
}

static size_t cap_for(size_t n)
{
    size_t cap = n + n / 4 + 16;
    return cap;
}

struct domainset *domainset_create(size_t expected, uint64_t seed)
{
    struct domainset *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->seed = seed;
    if (alloc_table(s, cap_for(expected)) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

void domainset_destroy(struct domainset *s)
{
    if (!s)
        return;
    free(s->keys);
    free(s->srcs);
    free(s);
}

static size_t find_slot(const struct domainset *s, uint64_t key)
{
    size_t i = slot_of(s, key);
    while (s->keys[i] != EMPTY && s->keys[i] != key)
        i = i + 1 == s->cap ? 0 : i + 1;
    return i;
}

static int grow(struct domainset *s)
{
    struct domainset old = *s;
    if (alloc_table(s, old.cap * 2) < 0) {
        *s = old;
        return -1;
    }
    for (size_t i = 0; i < old.cap; i++) {
        if (old.keys[i] != EMPTY) {
            size_t j = find_slot(s, old.keys[i]);
            s->keys[j] = old.keys[i];
            s->srcs[j] = old.srcs[i];
        }
    }
    free(old.keys);
    free(old.srcs);
    return 0;
}

/* Hash of a whole text name: labels from the right. */
static uint64_t text_hash(uint64_t seed, const char *name, size_t len)
{
    uint64_t h = seed;
    size_t end = len;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && name[start - 1] != '.')
            start--;
        h = extend(h, label_hash(seed, (const uint8_t *)name + start, end - start));
        end = start > 0 ? start - 1 : 0;
    }
    return h;
}

int domainset_add(struct domainset *s, const char *name, size_t len, bool subtree, uint16_t source)
{
    if ((s->count + 1) * GROW_DEN > s->cap * GROW_NUM && grow(s) < 0)
        return -1;
    uint64_t key = text_hash(s->seed, name, len);
    size_t i = find_slot(s, key);
    uint32_t bit = subtree ? (uint32_t)(source + 1) << 16 : (uint32_t)(source + 1);
    uint32_t mask = subtree ? 0xFFFF0000u : 0x0000FFFFu;
    if (s->keys[i] == EMPTY) {
        s->keys[i] = key;
        s->srcs[i] = bit;
        s->count++;
        return DOMAINSET_ADDED;
    }
    if (s->srcs[i] & mask)
        return DOMAINSET_DUPLICATE;
    s->srcs[i] |= bit;
    return DOMAINSET_ADDED;
}

/* Probe the suffix hashes from the longest (the name) to the shortest (the TLD). */
static bool match_hashes(const struct domainset *s, const uint64_t *suffix, size_t n,
                         struct domainset_hit *hit)
{
    for (size_t d = 0; d < n; d++) {
        uint64_t key = suffix[d];
        size_t i = slot_of(s, key);
        while (s->keys[i] != EMPTY) {
            if (s->keys[i] == key) {
                uint32_t src = s->srcs[i];
                if (d == 0 && (src & 0xFFFF)) {
                    /* The name itself is an exact entry: the most specific source wins. */
                    hit->source = (uint16_t)((src & 0xFFFF) - 1);
                    hit->subtree = false;
                    hit->depth = 0;
                    return true;
                }
                if (src >> 16) {
                    hit->source = (uint16_t)((src >> 16) - 1);
                    hit->subtree = true;
                    hit->depth = (uint8_t)d;
                    return true;
                }
                break; /* an exact entry for a parent: not a match */
            }
            i = i + 1 == s->cap ? 0 : i + 1;
        }
    }
    return false;
}

bool domainset_match_wire(const struct domainset *s, const uint8_t *wire, size_t len,
                          struct domainset_hit *hit)
{
    size_t off[MAX_LABELS];
    size_t n = 0, pos = 0;
    while (pos < len && wire[pos] != 0) {
        if (n == MAX_LABELS || wire[pos] > 63 || pos + 1 + wire[pos] > len)
            return false;
        off[n++] = pos;
        pos += 1u + wire[pos];
    }
    if (n == 0)
        return false;
    uint64_t suffix[MAX_LABELS];
    uint64_t h = s->seed;
    for (size_t k = n; k-- > 0;) {
        h = extend(h, label_hash(s->seed, wire + off[k] + 1, wire[off[k]]));
        suffix[k] = h;
    }
    return match_hashes(s, suffix, n, hit);
}

bool domainset_match_text(const struct domainset *s, const char *name, size_t len,
                          struct domainset_hit *hit)
{
    size_t start[MAX_LABELS], end[MAX_LABELS];
    size_t n = 0, pos = 0;
    while (pos < len) {
        if (n == MAX_LABELS)
            return false;
        size_t e = pos;
        while (e < len && name[e] != '.')
            e++;
        start[n] = pos;
        end[n++] = e;
        pos = e + 1;
    }
    if (n == 0)
        return false;
    uint64_t suffix[MAX_LABELS];
    uint64_t h = s->seed;
    for (size_t k = n; k-- > 0;) {
        h = extend(h, label_hash(s->seed, (const uint8_t *)name + start[k], end[k] - start[k]));
        suffix[k] = h;
    }
    return match_hashes(s, suffix, n, hit);
}

size_t domainset_count(const struct domainset *s)
{
    return s->count;
}

size_t domainset_memory(const struct domainset *s)
{
    return s->cap * (sizeof *s->keys + sizeof *s->srcs);
}
