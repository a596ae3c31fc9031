#include "namedir.h"

#include <stdlib.h>
#include <string.h>

#define NAMEDIR_MIN 1024

static size_t home(const struct namedir *d, uint32_t hash)
{
    return hash & (d->cap - 1);
}

static void place(struct namedir *d, uint32_t hash, int64_t id)
{
    size_t i = home(d, hash);
    while (d->slot[i].id != 0)
        i = (i + 1) & (d->cap - 1);
    d->slot[i] = (struct namedir_slot){.id = id, .hash = hash};
}

static int grow(struct namedir *d)
{
    size_t cap = d->cap ? d->cap * 2 : NAMEDIR_MIN;
    if (cap > SIZE_MAX / sizeof *d->slot)
        return -1;
    struct namedir_slot *old = d->slot;
    size_t old_cap = d->cap;
    /* calloc: a large table's pages stay untouched (not resident) until slots land on them. */
    d->slot = calloc(cap, sizeof *d->slot);
    if (!d->slot) {
        d->slot = old;
        return -1;
    }
    d->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].id != 0)
            place(d, old[i].hash, old[i].id);
    }
    free(old);
    return 0;
}

int namedir_add(struct namedir *d, uint32_t hash, int64_t id)
{
    if ((d->count + 1) * 4 > d->cap * 3 && grow(d) != 0)
        return -1;
    place(d, hash, id);
    d->count++;
    return 0;
}

bool namedir_remove(struct namedir *d, uint32_t hash, int64_t id)
{
    if (d->cap == 0)
        return false;
    size_t mask = d->cap - 1, i = home(d, hash);
    while (d->slot[i].id != id || d->slot[i].hash != hash) {
        if (d->slot[i].id == 0)
            return false;
        i = (i + 1) & mask;
    }
    /* Shift back every following slot of the run that may move into the hole: one whose home
     * is not cyclically in (hole, j]. */
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        if (d->slot[j].id == 0)
            break;
        size_t h = home(d, d->slot[j].hash);
        bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
        if (!stays) {
            d->slot[i] = d->slot[j];
            i = j;
        }
    }
    d->slot[i] = (struct namedir_slot){0};
    d->count--;
    return true;
}

int64_t namedir_next(const struct namedir *d, uint32_t hash, size_t *cursor)
{
    if (d->cap == 0)
        return 0;
    /* *cursor counts the slots already looked at from the hash's home. */
    for (size_t i = (home(d, hash) + *cursor) & (d->cap - 1); *cursor < d->cap;
         i = (i + 1) & (d->cap - 1)) {
        const struct namedir_slot *s = &d->slot[i];
        ++*cursor;
        if (s->id == 0)
            return 0;
        if (s->hash == hash)
            return s->id;
    }
    return 0;
}

void namedir_clear(struct namedir *d)
{
    if (d->slot)
        memset(d->slot, 0, d->cap * sizeof *d->slot);
    d->count = 0;
}

void namedir_free(struct namedir *d)
{
    free(d->slot);
    *d = (struct namedir){0};
}
