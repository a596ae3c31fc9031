#include "qlog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clients.h"
#include "db.h"
#include "idmap.h"
#include "intern.h"
#include "log.h"
#include "neigh.h"
#include "threads.h"
#include "wire.h"

#define BATCH_MAX       16384
#define BUSY_TIMEOUT_MS 250
#define REOPEN_MS       5000
#define FAULT_LOG_MS    60000
#define MAINTAIN_MS     60000
#define EXPIRE_CHUNK    5000
#define WAL_LIMIT       (64LL << 20)
/* Rows between the writer's offers of the core (see offer_rows): ~50 µs of work at low rates,
 * ~200 µs when the serving loops keep the writer busy. OFFER_RATE_DIV: records a second per
 * row between offers (32,768/s -> 64 rows, 131,072/s -> 256). */
#define OFFER_ROWS_MIN 64
#define OFFER_ROWS_MAX 256
#define OFFER_RATE_DIV 512

/* ---- rings ------------------------------------------------------------------------------- */

/* Single producer (a serving loop), single consumer (the writer). */
struct qlog_ring {
    _Alignas(64) _Atomic uint32_t head; /* next slot the producer fills */
    _Alignas(64) _Atomic uint32_t tail; /* next slot the writer reads */
    _Alignas(64) _Atomic uint64_t dropped;
    _Atomic uint64_t unlogged;
    uint32_t mask;
    struct qlog *q;
    struct qlog_record *slots;
    uint64_t seen_dropped, seen_unlogged; /* writer only: counts already accounted for */
};

/* A list as the log knows it: interned once, never freed before qlog_destroy. */
struct list_ident {
    char *name, *vendor, *category;
    int64_t db_id; /* 0 until written with the current database */
};

struct hour_count {
    int64_t hour;
    uint64_t queries, logged, not_logged, dropped;
};

struct qlog {
    struct qlog_ring *rings;
    unsigned nrings;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* guards cfg, idents, stop */
    pthread_cond_t wake;
    bool stop;
    struct config *cfg;
    struct list_ident *idents;
    size_t n_idents;

    /* Writer thread only. */
    struct db *db;
    char *path;
    uint64_t next_open_ms, last_fault_ms, next_maintain_ms;
    unsigned faults_hidden;
    bool fault_shown; /* a fault was logged and no recovery since: say when logging resumes */
    struct idmap domains, clients, upstreams;
    int64_t *list_ids; /* db id per list ident (writer's copy) */
    size_t n_list_ids;
    bool clients_stale; /* set by qlog_reload: client names may have changed */
    int64_t hour;       /* the writer's current hour (unix seconds / 3600) */
    struct neigh *neigh;
    uint8_t key[16]; /* keys the client hash (anonymize_clients) */
    bool have_key;
    struct hour_count pending[4];
    size_t n_pending;
    struct qlog_record *batch;
    unsigned db_generation;   /* db_generation() when the cached ids were last valid */
    uint64_t last_collect_ns; /* when collect last took the rings' records */
    _Atomic uint64_t logged, dropped_full, dropped_fault, unlogged;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ms(void)
{
    return mono_ns() / 1000000;
}

struct qlog *qlog_create(struct config *cfg, unsigned nrings)
{
    if (nrings == 0)
        return NULL;
    struct qlog *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->rings = aligned_alloc(64, sizeof *q->rings * nrings);
    q->batch = malloc(sizeof *q->batch * BATCH_MAX);
    q->path = strdup(cfg->db);
    if (!q->rings || !q->batch || !q->path)
        goto fail;
    memset(q->rings, 0, sizeof *q->rings * nrings);
    q->nrings = nrings;
    /* Split the queue between the rings, each a power of two. */
    uint32_t per = 1;
    while (per * 2 <= (uint32_t)(cfg->log_queue / nrings) && per < (1u << 24))
        per *= 2;
    for (unsigned i = 0; i < nrings; i++) {
        struct qlog_ring *r = &q->rings[i];
        r->q = q;
        r->mask = per - 1;
        r->slots = calloc(per, sizeof *r->slots);
        if (!r->slots)
            goto fail;
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->wake, &ca);
    pthread_condattr_destroy(&ca);
    q->cfg = config_ref(cfg);
    /* Sized for a busy network: a name used again within 131,072 new names stays cached (two
     * tables of at most 262,144 slots: 12 MiB). */
    idmap_init(&q->domains, 1u << 14, 1u << 18);
    idmap_init(&q->clients, 1u << 10, 1u << 13);
    idmap_init(&q->upstreams, 1u << 4, 1u << 7);
    return q;
fail:
    if (q->rings) {
        for (unsigned i = 0; i < nrings; i++)
            free(q->rings[i].slots);
    }
    free(q->rings);
    free(q->batch);
    free(q->path);
    free(q);
    return NULL;
}

struct qlog_ring *qlog_ring(struct qlog *q, unsigned index)
{
    return &q->rings[index];
}

struct qlog_record *qlog_reserve(struct qlog_ring *r)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail > r->mask) {
        atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
        return NULL;
    }
    struct qlog_record *rec = &r->slots[head & r->mask];
    rec->long_name = NULL;
    return rec;
}

bool qlog_has_room(struct qlog_ring *r)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    return head - atomic_load_explicit(&r->tail, memory_order_acquire) <= r->mask;
}

void qlog_commit(struct qlog_ring *r)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed) + 1;
    atomic_store_explicit(&r->head, head, memory_order_release);
    /* Wake the writer early when a ring is half full; otherwise it comes every flush_ms. */
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (head - tail == (r->mask + 1) / 2)
        pthread_cond_signal(&r->q->wake);
}

void qlog_count_unlogged(struct qlog_ring *r)
{
    atomic_fetch_add_explicit(&r->unlogged, 1, memory_order_relaxed);
}

void qlog_set_name(struct qlog_record *rec, const uint8_t *wire, size_t len)
{
    char text[DNS_MAX_NAME + 1];
    size_t n = 0;
    for (size_t pos = 0; pos < len && wire[pos] != 0;) {
        uint8_t l = wire[pos];
        if (pos + 1u + l > len)
            break;
        if (n)
            text[n++] = '.';
        for (size_t i = 0; i < l; i++) {
            uint8_t c = wire[pos + 1 + i];
            text[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        pos += 1u + l;
    }
    if (n == 0)
        text[n++] = '.'; /* the root */
    rec->name_len = (uint8_t)n;
    if (n <= QLOG_NAME_INLINE) {
        memcpy(rec->name, text, n);
    } else {
        rec->long_name = malloc(n); /* rare: names longer than 96 bytes */
        if (rec->long_name)
            memcpy(rec->long_name, text, n);
        else
            rec->name_len = 0;
    }
}

void qlog_register_lists(struct qlog *q, struct policy *p)
{
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < policy_list_count(p); i++) {
        const struct policy_list *l = policy_list(p, (uint16_t)i);
        size_t k = 0;
        for (; k < q->n_idents; k++) {
            struct list_ident *id = &q->idents[k];
            if (strcmp(id->name, l->name) == 0 && strcmp(id->vendor, l->vendor) == 0 &&
                strcmp(id->category, l->category) == 0)
                break;
        }
        if (k == q->n_idents) {
            struct list_ident *n = realloc(q->idents, (q->n_idents + 1) * sizeof *n);
            if (!n)
                break;
            q->idents = n;
            struct list_ident *id = &q->idents[q->n_idents];
            id->name = strdup(l->name);
            id->vendor = strdup(l->vendor);
            id->category = strdup(l->category);
            id->db_id = 0;
            if (!id->name || !id->vendor || !id->category) {
                free(id->name);
                free(id->vendor);
                free(id->category);
                break;
            }
            q->n_idents++;
        }
        policy_set_log_id(p, (uint16_t)i, (uint32_t)k + 1);
    }
    pthread_mutex_unlock(&q->lock);
}

void qlog_reload(struct qlog *q, struct config *cfg)
{
    pthread_mutex_lock(&q->lock);
    struct config *old = q->cfg;
    q->cfg = config_ref(cfg);
    q->clients_stale = true;
    pthread_mutex_unlock(&q->lock);
    config_unref(old);
}

void qlog_get_stats(struct qlog *q, struct qlog_stats *out)
{
    out->logged = atomic_load(&q->logged);
    out->dropped_full = 0;
    out->unlogged = 0;
    for (unsigned i = 0; i < q->nrings; i++) {
        out->dropped_full += atomic_load(&q->rings[i].dropped);
        out->unlogged += atomic_load(&q->rings[i].unlogged);
    }
    out->dropped_fault = atomic_load(&q->dropped_fault);
}

/* ---- writer-side helpers ------------------------------------------------------------------ */

static uint64_t bytes_hash(const void *p, size_t n)
{
    uint64_t h = fmix64(fnv1a(p, n, FNV1A_SEED ^ n));
    return h ? h : 1;
}

/* The anonymisation key lives beside the database, so hashes stay the same across restarts. */
static void load_key(struct qlog *q)
{
    q->have_key = true;
    char path[4096];
    snprintf(path, sizeof path, "%s.key", q->path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, q->key, sizeof q->key);
        close(fd);
        if (n == (ssize_t)sizeof q->key)
            return;
    }
    if (getrandom(q->key, sizeof q->key, 0) != (ssize_t)sizeof q->key)
        log_warn("qlog", "getrandom failed: client hashes are weak");
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, q->key, sizeof q->key) != (ssize_t)sizeof q->key)
        log_warn("qlog", "%s: %s: anonymised client ids will change at restart", path,
                 strerror(errno));
    if (fd >= 0)
        close(fd);
}

static void hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* A fault: logged at most once a minute, with how many were not shown. */
static void fault(struct qlog *q, const char *what, int rc)
{
    uint64_t now = mono_ms();
    if (q->last_fault_ms && now - q->last_fault_ms < FAULT_LOG_MS) {
        q->faults_hidden++;
        return;
    }
    if (q->faults_hidden)
        log_error("qlog",
                  "%s: %s: %s (and %u more faults in the last minute); DNS is not "
                  "affected, queries are dropped from the log and counted",
                  q->path, what, sqlite3_errstr(rc), q->faults_hidden);
    else
        log_error("qlog",
                  "%s: %s: %s; DNS is not affected, queries are dropped from the log "
                  "and counted",
                  q->path, what, sqlite3_errstr(rc));
    q->last_fault_ms = now;
    q->faults_hidden = 0;
    q->fault_shown = true;
}

static void forget_ids(struct qlog *q)
{
    idmap_clear(&q->domains);
    idmap_clear(&q->clients);
    idmap_clear(&q->upstreams);
    if (q->list_ids)
        memset(q->list_ids, 0, q->n_list_ids * sizeof *q->list_ids);
}

static void close_db(struct qlog *q)
{
    db_close(q->db);
    q->db = NULL;
    forget_ids(q);
    q->next_open_ms = mono_ms() + REOPEN_MS;
}

/* Move a corrupt database (and its WAL and shared memory) aside and start a new one. */
static void move_aside(struct qlog *q, const char *why)
{
    char stamp[32], from[4096], to[4096];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(from, sizeof from, "%s%s", q->path, suffix[i]);
        snprintf(to, sizeof to, "%s.corrupt-%s%s", q->path, stamp, suffix[i]);
        rename(from, to);
    }
    log_error("qlog", "%s is corrupt (%s): moved aside to %s.corrupt-%s, starting a new log",
              q->path, why, q->path, stamp);
}

static bool is_corrupt(int rc)
{
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

static void open_db(struct qlog *q)
{
    char err[512];
    int rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        q->db = db_open(q->path, BUSY_TIMEOUT_MS, &rc, err, sizeof err);
        if (q->db && (rc = db_check(q->db, err, sizeof err)) != SQLITE_OK) {
            db_close(q->db);
            q->db = NULL;
        }
        if (q->db) {
            q->db_generation = db_generation(q->db);
            return;
        }
        if (!is_corrupt(rc))
            break;
        move_aside(q, err);
    }
    fault(q, err, rc);
    q->next_open_ms = mono_ms() + REOPEN_MS;
}

static struct hour_count *hour_of(struct qlog *q, int64_t hour)
{
    for (size_t i = 0; i < q->n_pending; i++) {
        if (q->pending[i].hour == hour)
            return &q->pending[i];
    }
    if (q->n_pending == sizeof q->pending / sizeof *q->pending) {
        /* Keep the newest hours; fold the oldest into the next one. */
        q->pending[1].queries += q->pending[0].queries;
        q->pending[1].logged += q->pending[0].logged;
        q->pending[1].not_logged += q->pending[0].not_logged;
        q->pending[1].dropped += q->pending[0].dropped;
        memmove(q->pending, q->pending + 1, (q->n_pending - 1) * sizeof *q->pending);
        q->n_pending--;
    }
    struct hour_count *h = &q->pending[q->n_pending++];
    memset(h, 0, sizeof *h);
    h->hour = hour;
    return h;
}

static void client_text(struct qlog *q, const struct config *cfg, const struct qlog_client *c,
                        char *addr, size_t addrlen, char *mac, bool *have_mac, uint8_t macb[6])
{
    uint8_t plen = c->family == AF_INET ? 4 : 16;
    *have_mac = c->has_mac;
    if (c->has_mac)
        memcpy(macb, c->mac, 6);
    if (!c->has_mac && !c->from_edns && q->neigh) {
        /* A LAN client: the kernel knows its MAC when it spoke to us recently. */
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        if (c->family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, c->addr, 4);
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, c->addr, 16);
        }
        *have_mac = neigh_lookup(q->neigh, (struct sockaddr *)&ss, mono_ms(), macb);
    }
    if (cfg->anonymize_clients) {
        if (!q->have_key)
            load_key(q);
        uint8_t buf[18];
        memcpy(buf, c->addr, plen);
        buf[plen] = c->prefix;
        uint64_t h = siphash24(q->key, buf, plen + 1u);
        uint8_t hb[8];
        memcpy(hb, &h, 8);
        char hx[17];
        hex(hb, 8, hx);
        snprintf(addr, addrlen, "anon-%s", hx);
        if (*have_mac) {
            h = siphash24(q->key, macb, 6);
            memcpy(hb, &h, 8);
            hex(hb, 8, hx);
            snprintf(mac, 24, "anon-%s", hx);
        } else {
            mac[0] = '\0';
        }
        return;
    }
    char text[INET6_ADDRSTRLEN];
    inet_ntop(c->family, c->addr, text, sizeof text);
    if (c->prefix < plen * 8)
        snprintf(addr, addrlen, "%s/%u", text, c->prefix);
    else
        snprintf(addr, addrlen, "%s", text);
    if (*have_mac)
        clients_format_mac(macb, mac);
    else
        mac[0] = '\0';
}

/* The db id of a list ident (interned by qlog_register_lists), inserting the list if new. */
static int64_t list_id(struct qlog *q, uint32_t ident, int *rc)
{
    *rc = SQLITE_OK;
    if (ident == 0)
        return 0;
    if (ident > q->n_list_ids) {
        int64_t *n = realloc(q->list_ids, (ident + 64) * sizeof *n);
        if (!n)
            return 0;
        memset(n + q->n_list_ids, 0, (ident + 64 - q->n_list_ids) * sizeof *n);
        q->list_ids = n;
        q->n_list_ids = ident + 64;
    }
    if (q->list_ids[ident - 1] == 0) {
        pthread_mutex_lock(&q->lock);
        if (ident <= q->n_idents) {
            struct list_ident *li = &q->idents[ident - 1];
            q->list_ids[ident - 1] = db_list_id(q->db, li->name, li->vendor, li->category, rc);
        }
        pthread_mutex_unlock(&q->lock);
    }
    return q->list_ids[ident - 1];
}

static int64_t client_id(struct qlog *q, const struct config *cfg, const struct qlog_client *c,
                         int *rc)
{
    *rc = SQLITE_OK;
    /* The key: the struct up to the name, and the name's bytes (it is last, and mostly none). */
    uint8_t key[offsetof(struct qlog_client, name) + INTERN_LEN];
    size_t klen = offsetof(struct qlog_client, name), nlen = c->name ? strlen(c->name) : 0;
    memcpy(key, c, klen);
    if (nlen > INTERN_LEN)
        nlen = INTERN_LEN;
    if (nlen)
        memcpy(key + klen, c->name, nlen);
    klen += nlen;
    uint64_t h = bytes_hash(key, klen);
    const struct idslot *s = idmap_get(&q->clients, key, klen, h);
    if (s)
        return s->id;
    /* First time this batch of caches sees the client: its text, MAC and configured name. */
    char addr[80], mac[24];
    uint8_t macb[6] = {0};
    bool have_mac;
    client_text(q, cfg, c, addr, sizeof addr, mac, &have_mac, macb);
    struct client_id cid;
    memset(&cid, 0, sizeof cid);
    cid.addr.ss_family = c->family;
    if (c->family == AF_INET)
        memcpy(&((struct sockaddr_in *)&cid.addr)->sin_addr, c->addr, 4);
    else
        memcpy(&((struct sockaddr_in6 *)&cid.addr)->sin6_addr, c->addr, 16);
    cid.prefix = c->prefix;
    cid.has_mac = have_mac;
    memcpy(cid.mac, macb, 6);
    const char *name = c->name ? c->name : clients_name(cfg, &cid);
    int64_t id = db_client_id(q->db, addr, mac, name ? name : "", q->hour, rc);
    /* A MAC found in the neighbour table is remembered with the address for a while only:
     * the clients' cache is cleared every minute (maintain) and when reloaded. */
    if (id > 0)
        idmap_put(&q->clients, key, klen, h, id, 0);
    return id;
}

static int64_t upstream_id(struct qlog *q, const struct qlog_record *rec, int *rc)
{
    *rc = SQLITE_OK;
    uint8_t key[19];
    key[0] = rec->upstream_family;
    memcpy(key + 1, rec->upstream, 16);
    key[17] = (uint8_t)(rec->upstream_port >> 8);
    key[18] = (uint8_t)rec->upstream_port;
    uint64_t h = bytes_hash(key, sizeof key);
    const struct idslot *s = idmap_get(&q->upstreams, key, sizeof key, h);
    if (s)
        return s->id;
    char text[INET6_ADDRSTRLEN], up[64];
    inet_ntop(rec->upstream_family, rec->upstream, text, sizeof text);
    snprintf(up, sizeof up, rec->upstream_family == AF_INET6 ? "[%s]:%u" : "%s:%u", text,
             rec->upstream_port);
    int64_t id = db_upstream_id(q->db, up, rc);
    if (id > 0)
        idmap_put(&q->upstreams, key, sizeof key, h, id, 0);
    return id;
}

static int64_t domain_id(struct qlog *q, const char *name, size_t len, uint64_t h, int *rc)
{
    *rc = SQLITE_OK;
    struct idslot *s = idmap_get(&q->domains, name, len, h);
    if (s) {
        /* The name's last_seen, for retention: recorded once an hour while it is in use. */
        if (s->stamp != (uint16_t)q->hour) {
            if ((*rc = db_domain_seen(q->db, s->id, q->hour)) != SQLITE_OK)
                return 0;
            s->stamp = (uint16_t)q->hour;
        }
        return s->id;
    }
    int64_t id = db_domain_id(q->db, name, len, q->hour, rc);
    if (id > 0)
        idmap_put(&q->domains, name, len, h, id, (uint16_t)q->hour);
    return id;
}

/* A record as a row: every id resolved. */
static int make_row(struct qlog *q, const struct config *cfg, const struct qlog_record *rec,
                    uint64_t name_hash, struct db_row *row)
{
    int rc;
    row->ts_ms = rec->ts_ms;
    row->qtype = rec->qtype;
    row->rcode = rec->rcode;
    row->status = rec->status;
    row->flags = rec->flags;
    row->duration_us = rec->duration_us;
    const char *name = rec->long_name ? rec->long_name : rec->name;
    if ((row->domain = domain_id(q, name, rec->name_len, name_hash, &rc)) == 0)
        return rc ? rc : SQLITE_ERROR;
    if ((row->client = client_id(q, cfg, &rec->client, &rc)) == 0)
        return rc ? rc : SQLITE_ERROR;
    row->list = list_id(q, rec->list, &rc);
    if (rc != SQLITE_OK)
        return rc;
    row->upstream = 0;
    if (rec->upstream_family && (row->upstream = upstream_id(q, rec, &rc)) == 0)
        return rc ? rc : SQLITE_ERROR;
    return SQLITE_OK;
}

/*
 * Hash the names of n records and start loading their cache slots, then their keys: the name
 * cache is megabytes, and a lookup that waits for memory costs more than the SQLite insert.
 * With the loads of a whole chunk in flight at once, make_row finds them in cache.
 */
static void prefetch_names(const struct qlog *q, const struct qlog_record *recs, size_t n,
                           uint64_t *hashes)
{
    for (size_t i = 0; i < n; i++) {
        const char *name = recs[i].long_name ? recs[i].long_name : recs[i].name;
        hashes[i] = bytes_hash(name, recs[i].name_len);
        idmap_prefetch_slot(&q->domains, hashes[i]);
    }
    for (size_t i = 0; i < n; i++)
        idmap_prefetch_key(&q->domains, hashes[i]);
}

/*
 * Is any ring three quarters full? Then the writer is falling behind its serving loop, close
 * to dropping records. Not less: the writer is woken when a ring is half full (qlog_commit),
 * and at an eighth, as this was until 2026-11-24, every drain near saturation started
 * "behind" and ran its 16,384 rows without offering the core once (15-24 ms of CPU, the
 * serving thread waiting until the scheduler's tick; measured by timing the writer between
 * its offers).
 */
static bool backlogged(const struct qlog *q)
{
    for (unsigned i = 0; i < q->nrings; i++) {
        const struct qlog_ring *r = &q->rings[i];
        uint32_t used = atomic_load_explicit(&r->head, memory_order_relaxed) -
                        atomic_load_explicit(&r->tail, memory_order_relaxed);
        if (used > (r->mask + 1) / 4 * 3)
            return true;
    }
    return false;
}

/*
 * How many rows the writer writes between offers of the core, from the rate the records came
 * at (n in the ns since the last collect). Like a network card's adaptive interrupt
 * moderation: at a household's rates the serving loop mostly sleeps, a query that arrives
 * during a batch should wait ~50 µs at most, and offers are cheap (few are taken). When the
 * serving loops are busy, queries queue anyway, and each offer taken is a pair of context
 * switches that leaves the serving loop a small batch and cold caches: measured on one core,
 * mixed workload, 6 runs each, the writer offering every 256 rows instead of 64 served
 * 157-169k qps instead of 144-155k, the serving thread 0.5 µs a query cheaper.
 */
static size_t offer_rows(size_t n, uint64_t ns)
{
    uint64_t rate = ns ? (uint64_t)n * 1000000000u / ns : UINT64_MAX;
    uint64_t rows = rate / OFFER_RATE_DIV;
    return rows < OFFER_ROWS_MIN ? OFFER_ROWS_MIN : rows > OFFER_ROWS_MAX ? OFFER_ROWS_MAX : rows;
}

/* Write n records (and the pending hourly counts) in one transaction, offering the core every
 * offer rows. */
static int write_batch(struct qlog *q, const struct config *cfg, size_t n, size_t offer)
{
    int rc = db_begin(q->db);
    if (db_generation(q->db) != q->db_generation) {
        forget_ids(q); /* another connection wrote: a cached id may be gone */
        q->db_generation = db_generation(q->db);
    }
    struct db_row rows[DB_INSERT_MANY];
    uint64_t hashes[DB_INSERT_MANY];
    size_t since_yield = 0;
    for (size_t i = 0; rc == SQLITE_OK && i < n; i += DB_INSERT_MANY) {
        size_t k = n - i < DB_INSERT_MANY ? n - i : DB_INSERT_MANY;
        prefetch_names(q, &q->batch[i], k, hashes);
        for (size_t j = 0; rc == SQLITE_OK && j < k; j++)
            rc = make_row(q, cfg, &q->batch[i + j], hashes[j], &rows[j]);
        if (rc == SQLITE_OK)
            rc = db_insert_many(q->db, rows, k);
        /* Let a serving loop that has queries waiting on this core go first: the log can wait,
         * a client should not (without this, p99 latency at 10k qps was the writer's bursts).
         * Every offer rows (offer_rows), and only while the queue has room: when it fills,
         * the writer takes its fair share. */
        if ((since_yield += k) >= offer) {
            since_yield = 0;
            if (!backlogged(q))
                sched_yield();
        }
    }
    for (size_t i = 0; rc == SQLITE_OK && i < q->n_pending; i++) {
        struct hour_count *h = &q->pending[i];
        rc = db_count(q->db, h->hour, h->queries, h->logged, h->not_logged, h->dropped);
    }
    if (rc == SQLITE_OK)
        rc = db_commit(q->db);
    if (rc != SQLITE_OK) {
        db_rollback(q->db);
        forget_ids(q); /* ids inserted by the rolled-back transaction do not exist */
        return rc;
    }
    q->n_pending = 0;
    return SQLITE_OK;
}

/* Take up to BATCH_MAX records from the rings into q->batch. */
static size_t collect(struct qlog *q, int64_t hour)
{
    size_t n = 0;
    for (unsigned i = 0; i < q->nrings; i++) {
        struct qlog_ring *r = &q->rings[i];
        uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        while (tail != head && n < BATCH_MAX)
            q->batch[n++] = r->slots[tail++ & r->mask];
        atomic_store_explicit(&r->tail, tail, memory_order_release);
        /* Drops and deliberate non-logging since the last batch count for this hour. */
        uint64_t d = atomic_load_explicit(&r->dropped, memory_order_relaxed);
        uint64_t u = atomic_load_explicit(&r->unlogged, memory_order_relaxed);
        if (d != r->seen_dropped || u != r->seen_unlogged) {
            struct hour_count *h = hour_of(q, hour);
            h->dropped += d - r->seen_dropped;
            h->queries += (d - r->seen_dropped) + (u - r->seen_unlogged);
            h->not_logged += u - r->seen_unlogged;
            r->seen_dropped = d;
            r->seen_unlogged = u;
        }
    }
    return n;
}

static int by_time(const void *a, const void *b)
{
    uint64_t x = ((const struct qlog_record *)a)->ts_ms, y = ((const struct qlog_record *)b)->ts_ms;
    return x < y ? -1 : x > y;
}

static bool rings_empty(struct qlog *q)
{
    for (unsigned i = 0; i < q->nrings; i++) {
        if (atomic_load(&q->rings[i].head) != atomic_load(&q->rings[i].tail))
            return false;
    }
    return true;
}

static void maintain(struct qlog *q, const struct config *cfg)
{
    if (cfg->retention_days > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        uint64_t cutoff = now_ms - (uint64_t)cfg->retention_days * 86400000ULL;
        /* Small chunks, a few per round: never a long lock, and new queries keep flowing. */
        for (int round = 0; round < 10; round++) {
            int deleted = db_expire(q->db, cutoff, EXPIRE_CHUNK);
            if (deleted < 0) {
                fault(q, "expiring old rows", -deleted);
                break;
            }
            if (deleted < EXPIRE_CHUNK)
                break;
        }
        /* Then the names and clients no row uses any more (an hour of margin: a name's use is
         * recorded in the first hour it is used in, a client's within a minute). */
        int64_t cutoff_hour = (int64_t)(cutoff / 3600000) - 1;
        for (int round = 0; round < 10; round++) {
            int deleted = db_expire_names(q->db, cutoff_hour, EXPIRE_CHUNK);
            if (deleted < 0) {
                fault(q, "expiring old names", -deleted);
                break;
            }
            if (deleted > 0)
                idmap_clear(&q->domains); /* a cached id may be gone */
            if (deleted < EXPIRE_CHUNK)
                break;
        }
    }
    db_checkpoint(q->db, WAL_LIMIT);
    /* Look clients up again now and then: that records when they were last used (for
     * retention), and a LAN client's MAC may have appeared meanwhile. Names record their use
     * as they go (domain_id). */
    idmap_clear(&q->clients);
}

static void *writer_main(void *arg)
{
    struct qlog *q = arg;
    threads_background("qlog");
    q->neigh = neigh_create(10000);
    for (;;) {
        pthread_mutex_lock(&q->lock);
        unsigned flush_ms = q->cfg->flush_ms;
        if (!q->stop) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += flush_ms / 1000;
            until.tv_nsec += (long)(flush_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&q->wake, &q->lock, &until);
        }
        bool stopping = q->stop;
        struct config *cfg = config_ref(q->cfg);
        bool stale = q->clients_stale;
        q->clients_stale = false;
        pthread_mutex_unlock(&q->lock);
        if (stale)
            idmap_clear(&q->clients); /* names or anonymisation may have changed */

        if (!q->db && mono_ms() >= q->next_open_ms)
            open_db(q);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t hour = (int64_t)now.tv_sec / 3600;
        q->hour = hour;
        size_t n;
        do {
            uint64_t t = mono_ns();
            n = collect(q, hour);
            size_t offer = offer_rows(n, t - q->last_collect_ns);
            q->last_collect_ns = t;
            /* The rings are drained one after the other: put the batch back in time order. */
            if (q->nrings > 1)
                qsort(q->batch, n, sizeof *q->batch, by_time);
            size_t logged = n;
            int rc = SQLITE_OK;
            if (n > 0)
                hour_of(q, hour)->queries += n;
            if (q->db && (n > 0 || q->n_pending > 0)) {
                struct hour_count *h = n > 0 ? hour_of(q, hour) : NULL;
                if (h)
                    h->logged += n;
                rc = write_batch(q, cfg, n, offer);
                if (rc != SQLITE_OK) {
                    if (h) { /* hour_of again: write_batch may not have kept h in place */
                        h = hour_of(q, hour);
                        h->logged -= n;
                        h->dropped += n;
                    }
                    logged = 0;
                    fault(q, "writing", rc);
                    if (is_corrupt(rc)) {
                        move_aside(q, sqlite3_errstr(rc));
                        close_db(q);
                        q->next_open_ms = 0;
                    } else if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED && rc != SQLITE_FULL) {
                        close_db(q); /* read-only, I/O error: reopen later */
                    }
                } else if (q->fault_shown) {
                    log_info("qlog", "%s: logging again", q->path);
                    q->fault_shown = false;
                }
            } else if (n > 0) {
                hour_of(q, hour)->dropped += n;
                logged = 0;
            }
            atomic_fetch_add(&q->logged, logged);
            atomic_fetch_add(&q->dropped_fault, n - logged);
            for (size_t i = 0; i < n; i++)
                free(q->batch[i].long_name);
        } while (n == BATCH_MAX);

        if (q->db && mono_ms() >= q->next_maintain_ms) {
            maintain(q, cfg);
            q->next_maintain_ms = mono_ms() + MAINTAIN_MS;
        }
        config_unref(cfg);
        if (stopping && rings_empty(q))
            break;
    }
    db_close(q->db);
    q->db = NULL;
    neigh_destroy(q->neigh);
    return NULL;
}

int qlog_start(struct qlog *q)
{
    int rc = pthread_create(&q->thread, NULL, writer_main, q);
    if (rc != 0)
        return -rc;
    q->started = true;
    return 0;
}

void qlog_stop(struct qlog *q)
{
    if (!q->started)
        return;
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->thread, NULL);
    q->started = false;
}

void qlog_destroy(struct qlog *q)
{
    if (!q)
        return;
    qlog_stop(q);
    for (unsigned i = 0; i < q->nrings; i++) {
        struct qlog_ring *r = &q->rings[i];
        for (uint32_t t = atomic_load(&r->tail); t != atomic_load(&r->head); t++)
            free(r->slots[t & r->mask].long_name);
        free(r->slots);
    }
    for (size_t i = 0; i < q->n_idents; i++) {
        free(q->idents[i].name);
        free(q->idents[i].vendor);
        free(q->idents[i].category);
    }
    free(q->idents);
    idmap_free(&q->domains);
    idmap_free(&q->clients);
    idmap_free(&q->upstreams);
    free(q->list_ids);
    free(q->rings);
    free(q->batch);
    free(q->path);
    config_unref(q->cfg);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->wake);
    free(q);
}
