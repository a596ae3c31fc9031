/*
 * domainset: a compact set of domain names matched by label suffix.
 *
 * Each entry is a name marked "subtree" (the name and everything below it) or "exact" (the name
 * only), remembering which source (list) added it. A query matches when the name itself is an
 * exact or subtree entry, or any parent of it is a subtree entry. The most specific entry is
 * reported: the name itself before its parents, and at the name itself an exact entry before a
 * subtree one; among entries of one name and kind, the first source added.
 *
 * Names are never stored: an entry is the 64-bit keyed hash of its label sequence (lower-cased,
 * each label with its length, so the wire label "a.b" is one label and never equals "a"."b"),
 * in an open-addressing table of 8-byte keys plus 4 bytes of sources: about 15 bytes per name
 * at the load factor used, 1M names in ~15 MiB. A lookup hashes each label once and probes once
 * per label. With a random seed per set, a false match needs a 64-bit collision (2^-64 per
 * probe). The text of an entry (for `lists match`, `lists export`) comes from the list files.
 *
 * Pure: no I/O, no globals. Built by one thread, then read-only and shared by all.
 */
#ifndef TELESINK_DOMAINSET_H
#define TELESINK_DOMAINSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DOMAINSET_MAX_SOURCE 0xFFFEu

struct domainset;

struct domainset_hit {
    uint16_t source; /* the source that added the matching entry */
    bool subtree;    /* matched a subtree entry (else the exact name) */
    uint8_t depth;   /* labels between the query name and the entry (0 = the name itself) */
};

/* An empty set sized for `expected` names (it grows when needed). NULL when out of memory. */
struct domainset *domainset_create(size_t expected, uint64_t seed);
void domainset_destroy(struct domainset *s);

enum domainset_add_result { DOMAINSET_ADDED = 0, DOMAINSET_DUPLICATE = 1 };

/*
 * Add a name in text form ("ads.example.com", already validated: labels of 1-63 bytes separated
 * by single dots, no trailing dot; any letter case). Returns DOMAINSET_ADDED, DOMAINSET_DUPLICATE
 * (the same name of the same kind was there: the first source is kept) or -1 (out of memory).
 */
int domainset_add(struct domainset *s, const char *name, size_t len, bool subtree, uint16_t source);

/* Match a wire-format name (as in a packet, uncompressed). True with *hit filled on a match. */
bool domainset_match_wire(const struct domainset *s, const uint8_t *wire, size_t len,
                          struct domainset_hit *hit);

/* Match a text name (same rules as domainset_add). */
bool domainset_match_text(const struct domainset *s, const char *name, size_t len,
                          struct domainset_hit *hit);

size_t domainset_count(const struct domainset *s);
/* Bytes held by the table. */
size_t domainset_memory(const struct domainset *s);

#endif
