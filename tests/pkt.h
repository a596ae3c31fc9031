/*
 * pkt: a tiny DNS packet builder and name converter shared by the unit tests, fuzz targets and
 * benchmarks (never by telesink itself). Header-only; writes past 4096 bytes abort.
 */
#ifndef TELESINK_TESTS_PKT_H
#define TELESINK_TESTS_PKT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct pkt {
    uint8_t b[4096];
    size_t n;
};

static inline void put8(struct pkt *p, uint8_t v)
{
    if (p->n >= sizeof p->b)
        abort();
    p->b[p->n++] = v;
}

static inline void put16(struct pkt *p, uint16_t v)
{
    put8(p, (uint8_t)(v >> 8));
    put8(p, (uint8_t)v);
}

static inline void put32(struct pkt *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p, (uint16_t)v);
}

/* "a.b.c" (len bytes, no trailing dot) as wire labels ending with the root; returns the length. */
static inline size_t name_to_wire(const char *name, size_t len, uint8_t *wire)
{
    size_t w = 0, start = 0;
    for (size_t k = 0; k <= len && len > 0; k++) {
        if (k == len || name[k] == '.') {
            wire[w++] = (uint8_t)(k - start);
            memcpy(wire + w, name + start, k - start);
            w += k - start;
            start = k + 1;
        }
    }
    wire[w++] = 0;
    return w;
}

static inline void put_name(struct pkt *p, const char *dotted)
{
    size_t len = strlen(dotted);
    if (p->n + len + 2 > sizeof p->b)
        abort();
    p->n += name_to_wire(dotted, len, p->b + p->n);
}

#endif
