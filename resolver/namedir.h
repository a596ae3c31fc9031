/*
 * namedir: where the query log finds a name's row, kept in memory instead of in an index of
 * the database. It maps the 32-bit hash stored with every name (db_name_hash) to the ids of the
 * names with that hash; the caller reads a candidate's name by id to tell collisions apart.
 *
 * Why not an index: new names hash to random places, so every commit of a busy log rewrote
 * most of an on-disk hash index into the WAL (at 10% never-seen names the writer ran at half
 * its speed). Here an insert is a slot write, and the table holds no name bytes: 16 bytes a
 * slot, at most 3/4 full, so 21-43 bytes per name in the log (1M names: 32 MiB).
 *
 * Open addressing with linear probing from the hash's low bits; removal shifts the following
 * slots back (no tombstones), so a table that lives for months of retention stays fast.
 * Not thread-safe: the log writer owns it.
 */
#ifndef TELESINK_NAMEDIR_H
#define TELESINK_NAMEDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct namedir_slot {
    int64_t id; /* 0 = empty (SQLite rowids of names start at 1) */
    uint32_t hash;
    uint32_t unused;
};

struct namedir {
    struct namedir_slot *slot;
    size_t cap; /* 0 or a power of two */
    size_t count;
};

/* Add (hash, id); id > 0 and not already present. -1 when out of memory (nothing changed). */
int namedir_add(struct namedir *d, uint32_t hash, int64_t id);

/* Remove (hash, id); false when it was not there. */
bool namedir_remove(struct namedir *d, uint32_t hash, int64_t id);

/*
 * The ids with this hash, one per call: start with *cursor = 0; returns 0 when there are no
 * more. The table must not change between the calls.
 */
int64_t namedir_next(const struct namedir *d, uint32_t hash, size_t *cursor);

/* Empty it (keeping the memory) / free it. */
void namedir_clear(struct namedir *d);
void namedir_free(struct namedir *d);

#endif
