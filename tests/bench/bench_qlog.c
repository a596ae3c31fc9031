/*
 * Query log writer benchmark: push N records through the real queue and writer thread into a
 * fresh SQLite file, as fast as the writer takes them, and report records per second and bytes
 * on disk per logged query (indexes and the name/client tables included).
 *
 *   bench_qlog DB [N=10000000] [LISTS_DIR]
 *
 * The records look like a household's day: 200 clients, 50,000 distinct names (a Zipf-like
 * mix), A/AAAA, 30% blocked by one of the bundled lists, the rest forwarded to one of two
 * upstreams, timestamps spread over the last 24 hours. UNIQUE_PCT=10 in the environment makes
 * that share of the records ask a name never seen before (the benchmark's mixed workload).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "qlog.h"
#include "pkt.h"

static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_qlog DB [N] [LISTS_DIR]\n");
        return 2;
    }
    const char *path = argv[1];
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000000;
    const char *lists = argc > 3 ? argv[3] : "lists";
    char err[512];
    static const char *const suffix[] = {"", "-wal", "-shm", ".key"};
    for (int i = 0; i < 4; i++) {
        snprintf(err, sizeof err, "%s%s", path, suffix[i]);
        unlink(err);
    }
    log_set_level(LOG_WARN);
    struct config *cfg = config_create();
    config_set(cfg, "log", "db", path, err, sizeof err);
    config_set(cfg, "log", "retention_days", "0", err, sizeof err);
    config_set(cfg, "lists", "paths", lists, err, sizeof err);
    struct policy *p = policy_build(cfg, 1, NULL, NULL, err, sizeof err);
    if (!p) {
        fprintf(stderr, "lists: %s\n", err);
        return 1;
    }
    struct qlog *q = qlog_create(cfg, 1);
    qlog_register_lists(q, p);
    qlog_start(q);
    struct qlog_ring *ring = qlog_ring(q, 0);

    enum { NAMES = 50000, CLIENTS = 200 };
    static uint8_t wire[NAMES][64];
    static size_t wlen[NAMES];
    for (size_t i = 0; i < NAMES; i++) {
        char name[64];
        static const char *const tld[] = {"com", "net", "org", "io", "cn"};
        snprintf(name, sizeof name, "%s%llx.example%u.%s", i % 3 ? "api." : "",
                 (unsigned long long)(next() & 0xfffff), (unsigned)(i % 97), tld[i % 5]);
        wlen[i] = name_to_wire(name, strlen(name), wire[i]);
    }
    size_t nlists = policy_list_count(p);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    uint64_t end_ms = (uint64_t)rt.tv_sec * 1000, start_ms = end_ms - 86400000ULL;

    const char *up = getenv("UNIQUE_PCT");
    unsigned unique_pct = up ? (unsigned)strtoul(up, NULL, 10) : 0;

    double t0 = now();
    size_t spins = 0;
    for (size_t i = 0; i < n; i++) {
        while (!qlog_has_room(ring))
            spins++; /* the benchmark waits; telesink itself would drop and count */
        struct qlog_record *r = qlog_reserve(ring);
        uint64_t x = next();
        size_t name = (size_t)((x % NAMES) * (x % NAMES) / NAMES); /* skewed to popular names */
        r->ts_ms = start_ms + (uint64_t)((double)i / (double)n * 86400000.0);
        r->duration_us = (uint32_t)(x >> 40) % 20000;
        bool blocked = (x >> 20) % 10 < 3;
        r->status = blocked ? DB_BLOCKED : DB_FORWARDED;
        r->list = blocked ? policy_list(p, (uint16_t)((x >> 8) % nlists))->log_id : 0;
        r->qtype = (x >> 30) & 1 ? 28 : 1;
        r->rcode = blocked ? 3 : 0;
        r->flags = 0;
        memset(&r->client, 0, sizeof r->client);
        r->client.family = AF_INET;
        r->client.prefix = 32;
        uint8_t c[4] = {192, 168, 1, (uint8_t)(1 + (x >> 50) % CLIENTS)};
        memcpy(r->client.addr, c, 4);
        r->upstream_family = blocked ? 0 : AF_INET;
        uint8_t u[4] = {9, 9, 9, (uint8_t)(9 + ((x >> 12) & 1))};
        memcpy(r->upstream, u, 4);
        r->upstream_port = 53;
        if ((x >> 56) % 100 < unique_pct) {
            char fresh[64];
            uint8_t w[64];
            int len = snprintf(fresh, sizeof fresh, "w%llx.miss.example.net",
                               (unsigned long long)(next() & 0xffffffffffffULL));
            qlog_set_name(r, w, name_to_wire(fresh, (size_t)len, w));
        } else {
            qlog_set_name(r, wire[name], wlen[name]);
        }
        qlog_commit(ring);
    }
    double t1 = now();
    qlog_stop(q);
    double t2 = now();
    struct qlog_stats st;
    qlog_get_stats(q, &st);
    struct stat sb;
    stat(path, &sb);
    printf("qlog: %zu records written in %.2f s: %.0f records/s (producer waited %zu spins)\n", n,
           t2 - t0, (double)n / (t2 - t0), spins);
    printf("qlog: logged %llu, dropped %llu; %s is %.1f MB: %.1f bytes per query\n",
           (unsigned long long)st.logged, (unsigned long long)(st.dropped_full + st.dropped_fault),
           path, (double)sb.st_size / 1e6, (double)sb.st_size / (double)n);
    (void)t1;
    qlog_destroy(q);
    policy_unref(p);
    config_destroy(cfg);
    return 0;
}
