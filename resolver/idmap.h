/*
 * idmap: the query log writer's caches of database ids, bytes -> id (names, binary client and
 * upstream keys), so that a logged query costs a lookup here instead of one in SQLite.
 *
 * Two generations: new keys go into the current table, doubled when half full up to
 * max_slots; when that is half full, it becomes the previous table and the current one starts
 * empty. A key found only in the previous table moves back into the current one, so the keys
 * in use survive a rotation and only those not used for a whole generation are forgotten.
 * (Until 2026-11-24 a full cache was cleared whole, and so every minute: every name a busy
 * network used went back to the database at once, the writer fell behind its queue and
 * dropped records.)
 *
 * A slot holds the hash, the id, a 16-bit stamp the caller may use (the log: the hour a name's
 * use was last recorded) and where the key's bytes are in its table's arena, so a lookup reads
 * one slot and one key. Open addressing, linear probing, no removal. Not thread-safe.
 */
#ifndef TELESINK_IDMAP_H
#define TELESINK_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDMAP_KEY_MAX UINT16_MAX

struct idslot {
    uint64_t hash; /* 0 = empty */
    int64_t id;
    uint32_t key;   /* offset in the table's keys */
    uint16_t len;   /* of the key */
    uint16_t stamp; /* the caller's */
};

struct idtable {
    size_t slots; /* a power of two */
    struct idslot *slot;
    char *keys;
    size_t keys_used, keys_cap;
    size_t count;
};

struct idmap {
    struct idtable cur, old;
    size_t max_slots; /* of each table: at most max_slots / 2 keys in each */
};

/* An empty map whose current table starts with `slots` (powers of two, slots <= max_slots).
 * Nothing is allocated until the first put. */
void idmap_init(struct idmap *m, size_t slots, size_t max_slots);

/* The slot cached for the key (h: its hash, never 0), or NULL. A key found in the previous
 * table moves into the current one (the slot returned is the moved one). The slot stays valid
 * until the next idmap_get, idmap_put or idmap_clear. */
struct idslot *idmap_get(struct idmap *m, const void *key, size_t len, uint64_t h);

/* Cache a key that idmap_get did not find. NULL when it was not cached (out of memory, or a
 * key longer than IDMAP_KEY_MAX): the caller asks the database again next time. */
struct idslot *idmap_put(struct idmap *m, const void *key, size_t len, uint64_t h, int64_t id,
                         uint16_t stamp);

/* Forget every key (both tables; the memory of slots is returned to the system). */
void idmap_clear(struct idmap *m);
void idmap_free(struct idmap *m);

/* Start loading the current table's slot for h, and then its key if the slot holds h: for a
 * batch of lookups, whose memory loads are then in flight together. */
static inline void idmap_prefetch_slot(const struct idmap *m, uint64_t h)
{
    if (m->cur.slot)
        __builtin_prefetch(&m->cur.slot[h & (m->cur.slots - 1)]);
}

static inline void idmap_prefetch_key(const struct idmap *m, uint64_t h)
{
    if (!m->cur.slot)
        return;
    const struct idslot *s = &m->cur.slot[h & (m->cur.slots - 1)];
    if (s->hash == h)
        __builtin_prefetch(m->cur.keys + s->key);
}

#endif
