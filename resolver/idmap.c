/* idmap: the query log writer's two-generation caches of database ids (see idmap.h). */
#include "idmap.h"

#include <stdlib.h>
#include <string.h>

void idmap_init(struct idmap *m, size_t slots, size_t max_slots)
{
    *m = (struct idmap){.cur = {.slots = slots}, .max_slots = max_slots};
}

static void table_clear(struct idtable *t)
{
    /* Freed rather than zeroed: the next put gets fresh zero pages from the kernel, resident
     * only as slots are used (a memset would make all of a table's slots resident). */
    free(t->slot);
    t->slot = NULL;
    t->keys_used = 0;
    t->count = 0;
}

void idmap_clear(struct idmap *m)
{
    table_clear(&m->cur);
    table_clear(&m->old);
}

void idmap_free(struct idmap *m)
{
    struct idtable *t[] = {&m->cur, &m->old};
    for (size_t i = 0; i < 2; i++) {
        free(t[i]->slot);
        free(t[i]->keys);
        *t[i] = (struct idtable){.slots = t[i]->slots};
    }
}

static struct idslot *table_get(const struct idtable *t, const void *key, size_t len, uint64_t h)
{
    if (!t->slot)
        return NULL;
    for (size_t i = h & (t->slots - 1); t->slot[i].hash; i = (i + 1) & (t->slots - 1)) {
        struct idslot *s = &t->slot[i];
        if (s->hash == h && s->len == len && memcmp(t->keys + s->key, key, len) == 0)
            return s;
    }
    return NULL;
}

/* Twice the slots, the same keys. false when out of memory. */
static bool table_grow(struct idtable *t)
{
    size_t slots = t->slots * 2;
    struct idslot *n = calloc(slots, sizeof *n);
    if (!n)
        return false;
    for (size_t i = 0; t->slot && i < t->slots; i++) {
        if (!t->slot[i].hash)
            continue;
        size_t j = t->slot[i].hash & (slots - 1);
        while (n[j].hash)
            j = (j + 1) & (slots - 1);
        n[j] = t->slot[i];
    }
    free(t->slot);
    t->slot = n;
    t->slots = slots;
    return true;
}

/* The current table is half full at its largest: it becomes the previous one. The new current
 * table takes the old one's key arena and starts at full size (untouched pages cost nothing). */
static void idmap_rotate(struct idmap *m)
{
    struct idtable gone = m->old;
    m->old = m->cur;
    free(gone.slot);
    m->cur = (struct idtable){.slots = m->old.slots, .keys = gone.keys, .keys_cap = gone.keys_cap};
}

/* Add a key known to be absent from the current table; NULL when out of memory (then the key
 * is simply not cached: it is looked up in the database again next time). */
struct idslot *idmap_put(struct idmap *m, const void *key, size_t len, uint64_t h, int64_t id,
                         uint16_t stamp)
{
    struct idtable *t = &m->cur;
    if (len > IDMAP_KEY_MAX)
        return NULL;
    if (t->count * 2 >= t->slots && (t->slots >= m->max_slots || !table_grow(t))) {
        idmap_rotate(m); /* also when the growth failed: the current table cannot take more */
        t = &m->cur;
    }
    size_t need = t->keys_used + len;
    if (need > UINT32_MAX) { /* offsets are 32 bits: start a new generation */
        idmap_rotate(m);
        t = &m->cur;
        need = len;
    }
    if (need > t->keys_cap) {
        size_t cap = t->keys_cap ? t->keys_cap : t->slots * 16;
        while (cap < need)
            cap *= 2;
        char *keys = realloc(t->keys, cap);
        if (!keys)
            return NULL;
        t->keys = keys;
        t->keys_cap = cap;
    }
    if (!t->slot && !(t->slot = calloc(t->slots, sizeof *t->slot)))
        return NULL;
    size_t i = h & (t->slots - 1);
    while (t->slot[i].hash)
        i = (i + 1) & (t->slots - 1);
    memcpy(t->keys + t->keys_used, key, len);
    t->slot[i] = (struct idslot){h, id, (uint32_t)t->keys_used, (uint16_t)len, stamp};
    t->keys_used += len;
    t->count++;
    return &t->slot[i];
}

/* The slot cached for this key, or NULL; a key found in the previous table moves into the
 * current one. */
struct idslot *idmap_get(struct idmap *m, const void *key, size_t len, uint64_t h)
{
    struct idslot *s = table_get(&m->cur, key, len, h);
    if (s || !(s = table_get(&m->old, key, len, h)))
        return s;
    struct idslot was = *s;
    struct idslot *moved = idmap_put(m, key, len, h, was.id, was.stamp);
    if (moved)
        return moved;
    return table_get(&m->old, key, len, h); /* not moved: a rotation may have emptied old */
}
