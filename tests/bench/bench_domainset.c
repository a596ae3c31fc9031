/*
 * Microbenchmark: load N names into a domainset (text, as the list loader does), then time
 * lookups of wire names: a third exact hits, a third subdomains of entries (subtree hits), a
 * third misses. Prints ns per lookup and bytes per name.
 *
 *   bench_domainset [N=1000000] [LOOKUPS=5000000]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "domainset.h"
#include "pkt.h"

static uint64_t rng = 42;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void random_name(char *out, size_t *len, uint32_t i)
{
    static const char *const tlds[] = {"com", "net", "org", "io", "cn", "de", "ru", "co.uk"};
    int n =
        sprintf(out, "%s%x-%u.%s", (i % 3) ? "metrics." : "", next() & 0xffffff, i, tlds[i % 8]);
    *len = (size_t)n;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    size_t lookups = argc > 2 ? strtoul(argv[2], NULL, 10) : 5000000;
    char(*names)[64] = malloc(n * sizeof *names);
    size_t *lens = malloc(n * sizeof *lens);
    for (size_t i = 0; i < n; i++)
        random_name(names[i], &lens[i], (uint32_t)i);

    double t0 = now();
    struct domainset *s = domainset_create(n, 0x1234);
    for (size_t i = 0; i < n; i++)
        domainset_add(s, names[i], lens[i], i % 2 == 0, (uint16_t)(i % 40));
    double t1 = now();

    /* Prepare the query names in wire form up front, as a server receives them. */
    size_t nq = 300000;
    uint8_t(*wire)[300] = malloc(nq * sizeof *wire);
    size_t *wlen = malloc(nq * sizeof *wlen);
    for (size_t q = 0; q < nq; q++) {
        char buf[128];
        size_t i = next() % n;
        size_t len;
        switch (q % 3) {
        case 0: /* the entry itself */
            memcpy(buf, names[i], lens[i]);
            len = lens[i];
            break;
        case 1: /* a subdomain: hits when the entry is a subtree (even i) */
            len = (size_t)sprintf(buf, "www.%.*s", (int)lens[i], names[i]);
            break;
        default: /* a name that is not listed */
            len = (size_t)sprintf(buf, "x%u.miss-%u.example.com", next(), next());
            break;
        }
        wlen[q] = name_to_wire(buf, len, wire[q]);
    }
    size_t hits = 0;
    struct domainset_hit hit;
    double t2 = now();
    for (size_t k = 0; k < lookups; k++) {
        size_t q = k % nq;
        hits += domainset_match_wire(s, wire[q], wlen[q], &hit);
    }
    double t3 = now();
    printf("domainset: %zu names loaded in %.3f s (%.0f ns/name), %.1f bytes/name\n", n, t1 - t0,
           (t1 - t0) * 1e9 / (double)n, (double)domainset_memory(s) / (double)n);
    printf("domainset: %zu lookups, %.1f%% hits: %.0f ns per lookup\n", lookups,
           100.0 * (double)hits / (double)lookups, (t3 - t2) * 1e9 / (double)lookups);
    domainset_destroy(s);
    free(names);
    free(lens);
    free(wire);
    free(wlen);
    return 0;
}
