#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "clients.h"
#include "db.h"
#include "dnsmsg.h"
#include "log.h"
#include "netaddr.h"
#include "threads.h"
#include "tls.h"

/* Queries a single TCP connection may have in flight before we stop reading from it. */
#define TCP_MAX_INFLIGHT 64
/* A forwarding loop is logged at most this often (by all threads together). */
#define LOOP_NOTICE_NS (60 * 1000000000ULL)

/* A reload handed to a worker: owned by whoever holds the pointer. */
struct update {
    struct config *cfg;
    struct policy *policy;
};

struct worker {
    unsigned index;
    uv_loop_t loop;
    uv_async_t wakeup;
    uv_thread_t thread;
    struct config *cfg;                 /* loop thread only */
    struct policy *policy;              /* loop thread only */
    _Atomic(struct update *) next;      /* handed over by worker_reload */
    _Atomic(struct tls_ctx *) next_tls; /* a renewed certificate, from worker_set_tls */
    atomic_bool stop;
    bool stopped;
    int loop_close_rc;
    struct listen *listen;
    struct upstream *upstream;
    struct qlog_ring *qlog;      /* this loop's queue to the log writer; NULL: no log */
    struct cache *cache;         /* this loop's response cache; NULL: none */
    struct ratelimit *ratelimit; /* shared by every worker, owned by main; NULL: no limit */
    struct worker_stats stats;
    int64_t wall_offset_ns;          /* CLOCK_REALTIME minus uv_hrtime(), refreshed each second */
    uint64_t wall_offset_at;         /* uv_hrtime() of that refresh */
    uint8_t answer[2 + DNS_MAX_UDP]; /* scratch for building one answer */
    uint8_t cached[DNS_MAX_UDP];     /* scratch for a reply taken from the cache */
};

/* A query being answered: its question, who asked, and since when. */
struct ask {
    struct dnsmsg_query q;
    struct qlog_client client;
    uint64_t start_ns; /* uv_hrtime() when it arrived */
};

/* A forwarded query: lives from upstream_resolve() until its answer is sent or dropped. */
struct query {
    struct upstream_waiter waiter; /* first: the upstream callback gets this pointer */
    struct worker *w;
    struct listen_origin origin;
    struct ask a;
};

static bool in_cidrs(const struct cidr *v, size_t n, const struct sockaddr *peer)
{
    for (size_t i = 0; i < n; i++) {
        if (cidr_contains(&v[i], peer))
            return true;
    }
    return false;
}

/*
 * Who is asking: the packet's source, or, when that is a trusted forwarder (a Pi-hole, a
 * router's dnsmasq), the device it names in EDNS Client Subnet / dnsmasq's add-mac option.
 * From anyone else those options are ignored. (They are never passed upstream either way.)
 */
static void identify(const struct worker *w, const struct listen_origin *from, const uint8_t *pkt,
                     size_t len, struct ask *a)
{
    struct client_id id;
    const struct sockaddr *peer = (const struct sockaddr *)&from->peer;
    struct qlog_client *c = &a->client;
    memset(c, 0, sizeof *c);
    c->name = from->conn ? listen_origin_name(from) : NULL; /* DoT: the SNI's (interned) */
    if (peer->sa_family == AF_INET &&
        !(a->q.edns && in_cidrs(w->cfg->trusted_forwarders, w->cfg->n_trusted_forwarders, peer))) {
        /* The common case, without the detour through struct client_id. */
        c->family = AF_INET;
        memcpy(c->addr, &((const struct sockaddr_in *)peer)->sin_addr, 4);
        c->prefix = 32;
        return;
    }
    clients_from_source(peer, &id);
    if (a->q.edns && in_cidrs(w->cfg->trusted_forwarders, w->cfg->n_trusted_forwarders, peer))
        clients_from_edns(pkt, len, &a->q, &id);
    const struct sockaddr *sa = (const struct sockaddr *)&id.addr;
    if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, mapped, 12) == 0 && id.prefix == 128) {
            c->family = AF_INET;
            memcpy(c->addr, b + 12, 4);
            c->prefix = 32;
        } else {
            c->family = AF_INET6;
            memcpy(c->addr, b, 16);
            c->prefix = id.prefix;
        }
    } else {
        c->family = AF_INET;
        memcpy(c->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        c->prefix = id.prefix;
    }
    c->has_mac = id.has_mac;
    memcpy(c->mac, id.mac, 6);
    c->from_edns = id.from_edns;
}

/* Hand the query to the log writer (never waits: a full queue drops and counts it). */
static void log_query(struct worker *w, const struct ask *a, uint8_t status, unsigned rcode,
                      uint32_t list, uint8_t flags, const struct sockaddr *upstream)
{
    if (!w->qlog || !a->q.has_question)
        return;
    if (!w->cfg->log_allowed && status != DB_BLOCKED) {
        qlog_count_unlogged(w->qlog);
        return;
    }
    struct qlog_record *r = qlog_reserve(w->qlog);
    if (!r)
        return;
    /* One monotonic read per logged query; the wall clock is derived from it (the offset is
     * read again every second, so a clock step shows within a second). */
    uint64_t end = uv_hrtime();
    if (end - w->wall_offset_at > 1000000000ULL || w->wall_offset_at == 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        w->wall_offset_ns = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec - (int64_t)end;
        w->wall_offset_at = end;
    }
    r->ts_ms = (uint64_t)((int64_t)end + w->wall_offset_ns) / 1000000;
    uint64_t took = (end - a->start_ns) / 1000;
    r->duration_us = took > UINT32_MAX ? UINT32_MAX : (uint32_t)took;
    r->list = list;
    r->qtype = a->q.qtype;
    r->rcode = (uint16_t)rcode;
    r->status = status;
    r->flags = (uint8_t)(flags | (a->client.from_edns ? DB_FLAG_FORWARDED : 0));
    r->client = a->client;
    r->upstream_family = 0;
    if (upstream && upstream->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)upstream;
        r->upstream_family = AF_INET;
        memcpy(r->upstream, &sin->sin_addr, 4);
        r->upstream_port = ntohs(sin->sin_port);
    } else if (upstream && upstream->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)upstream;
        r->upstream_family = AF_INET6;
        memcpy(r->upstream, &sin6->sin6_addr, 16);
        r->upstream_port = ntohs(sin6->sin6_port);
    }
    qlog_set_name(r, a->q.qname, a->q.qname_len);
    qlog_commit(w->qlog);
}

static void answer_error(struct worker *w, const struct listen_origin *from,
                         const struct dnsmsg_query *q, unsigned rcode)
{
    size_t n = dnsmsg_error_reply(q, rcode, w->answer, sizeof w->answer);
    if (n > 0)
        listen_respond(from, w->answer, n);
}

static void update_free(struct update *u)
{
    if (!u)
        return;
    config_unref(u->cfg);
    policy_unref(u->policy);
    free(u);
}

/* The lists' answer: the configured mode (canaries: always NXDOMAIN), naming the list. */
static void answer_blocked(struct worker *w, const struct listen_origin *from, const struct ask *a,
                           const struct policy_verdict *v, bool via_cname)
{
    const struct dnsmsg_query *q = &a->q;
    const struct policy_list *l = policy_list(w->policy, v->list);
    enum dnsmsg_block_mode mode =
        l->always_nxdomain ? DNSMSG_BLOCK_NXDOMAIN : w->cfg->blocking_mode;
    char buf[DNSMSG_EDE_TEXT_MAX + 1];
    const char *text = l->ede;
    if (via_cname) { /* rare: only the answer path formats */
        snprintf(buf, sizeof buf, "%s via CNAME", l->ede);
        text = buf;
    }
    w->stats.blocked++;
    if (via_cname)
        w->stats.blocked_cname++;
    size_t n = dnsmsg_block_reply(q, mode, w->cfg->block_ttl, text, w->answer, sizeof w->answer);
    if (n > 0)
        listen_respond(from, w->answer, n);
    static const unsigned mode_rcode[] = {[DNSMSG_BLOCK_NXDOMAIN] = RCODE_NXDOMAIN,
                                          [DNSMSG_BLOCK_NULL] = RCODE_NOERROR,
                                          [DNSMSG_BLOCK_REFUSED] = RCODE_REFUSED,
                                          [DNSMSG_BLOCK_NODATA] = RCODE_NOERROR};
    log_query(w, a, DB_BLOCKED, mode_rcode[mode], l->log_id, via_cname ? DB_FLAG_VIA_CNAME : 0,
              NULL);
    if (log_enabled(LOG_DEBUG)) {
        char peer[NETADDR_STRLEN];
        netaddr_format((const struct sockaddr *)&from->peer, false, peer, sizeof peer);
        log_debug("worker", "%s: %s", peer, text);
    }
}

struct cname_check {
    const struct policy *policy;
    struct policy_verdict verdict;
};

static bool cname_blocked(void *ctx, const uint8_t *name, size_t len)
{
    struct cname_check *c = ctx;
    policy_check(c->policy, name, len, &c->verdict);
    return c->verdict.blocked;
}

/*
 * Answer the client from an upstream reply (fresh, or from the cache): CNAME cloaking first,
 * then the reply rewritten for this client. Returns false when no answer could be built.
 */
static bool deliver(struct worker *w, const struct listen_origin *to, const struct ask *a,
                    const uint8_t *reply, size_t len, const struct dnsmsg_reply_info *info,
                    uint8_t status, const struct sockaddr *server)
{
    /* CNAME cloaking: a tracker hidden behind a first-party name is still blocked. */
    struct cname_check cc = {.policy = w->policy};
    if (info->an > 0 && dnsmsg_reply_cnames(reply, len, info, cname_blocked, &cc)) {
        answer_blocked(w, to, a, &cc.verdict, true);
        return true;
    }
    /* Over UDP: the client's size, but never above ours (no fragments, no amplification). */
    size_t limit = DNS_MAX_UDP;
    if (to->udp)
        limit = a->q.udp_size < DNSMSG_EDNS_SIZE ? a->q.udp_size : DNSMSG_EDNS_SIZE;
    size_t n = dnsmsg_client_reply(&a->q, reply, len, info, limit, w->answer, sizeof w->answer);
    if (n == 0)
        return false;
    listen_respond(to, w->answer, n);
    unsigned rcode = info->rcode > 15 && !a->q.edns ? RCODE_SERVFAIL : info->rcode;
    log_query(w, a, status, rcode, 0, 0, server);
    return true;
}

static void query_done(struct upstream_waiter *waiter, int status, const uint8_t *reply, size_t len,
                       const struct dnsmsg_reply_info *info)
{
    struct query *qr = (struct query *)waiter;
    struct worker *w = qr->w;
    if (status == 0 && waiter->first && w->cache) {
        const struct dnsmsg_query *q = &qr->a.q;
        cache_insert(w->cache, q->qname, q->qname_len, q->qtype, q->qclass, q->do_bit, q->cd, reply,
                     len, info, uv_now(&w->loop));
    }
    if (status != -ESHUTDOWN && listen_origin_open(&qr->origin)) {
        if (status != 0 ||
            !deliver(w, &qr->origin, &qr->a, reply, len, info, DB_FORWARDED, waiter->server)) {
            w->stats.servfail++;
            answer_error(w, &qr->origin, &qr->a.q, RCODE_SERVFAIL);
            log_query(w, &qr->a, DB_FAILED, RCODE_SERVFAIL, 0, 0, NULL);
        }
    }
    listen_release(&qr->origin);
    free(qr);
}

static void forward(struct worker *w, const struct listen_origin *from, const struct ask *a,
                    const uint8_t *pkt, size_t len)
{
    struct query *qr = malloc(sizeof *qr);
    if (!qr) {
        w->stats.servfail++;
        answer_error(w, from, &a->q, RCODE_SERVFAIL);
        log_query(w, a, DB_FAILED, RCODE_SERVFAIL, 0, 0, NULL);
        return;
    }
    qr->w = w;
    qr->waiter.done = query_done;
    qr->a = *a;
    listen_hold(from, &qr->origin);
    w->stats.forwarded++;
    /* Another telesink's markers, if it forwards to us: passed on (see dnsmsg_loop_markers). */
    uint8_t carried[DNSMSG_LOOP_CARRY * DNSMSG_LOOP_MARKER_LEN];
    size_t n_carried = dnsmsg_loop_markers(pkt, len, &a->q, carried);
    int rc = upstream_resolve(w->upstream, &qr->a.q, carried, n_carried, &qr->waiter);
    if (rc < 0) {
        w->stats.servfail++;
        answer_error(w, from, &a->q, RCODE_SERVFAIL);
        log_query(w, a, DB_FAILED, RCODE_SERVFAIL, 0, 0, NULL);
        listen_release(&qr->origin);
        free(qr);
    }
}

/* uv_hrtime() of the last forwarding-loop notice, shared by every worker (0: none yet). */
static _Atomic uint64_t loop_noticed_at;

/* Our own query came back: SERVFAIL (with a reason for whoever looks), never forwarded again. */
static void answer_loop(struct worker *w, const struct listen_origin *from, const struct ask *a)
{
    w->stats.loops++;
    size_t n =
        dnsmsg_error_reply_ede(&a->q, RCODE_SERVFAIL, EDE_OTHER,
                               "forwarding loop detected by telesink", w->answer, sizeof w->answer);
    if (n > 0)
        listen_respond(from, w->answer, n);
    log_query(w, a, DB_FAILED, RCODE_SERVFAIL, 0, 0, NULL);
    uint64_t last = atomic_load_explicit(&loop_noticed_at, memory_order_relaxed);
    if ((last == 0 || a->start_ns - last >= LOOP_NOTICE_NS) &&
        atomic_compare_exchange_strong(&loop_noticed_at, &last, a->start_ns)) {
        char peer[NETADDR_STRLEN];
        netaddr_format((const struct sockaddr *)&from->peer, true, peer, sizeof peer);
        log_warn("worker",
                 "forwarding loop: a query we sent upstream came back to us from %s; an upstream "
                 "forwards to telesink itself (check [upstream] servers). Answering SERVFAIL "
                 "(logged at most once a minute)",
                 peer);
    }
}

/* RFC 8482: a minimal answer to ANY, so that telesink cannot be used as an amplifier. */
static void answer_any(struct worker *w, const struct listen_origin *from, const struct ask *a)
{
    w->stats.any++;
    size_t n = dnsmsg_any_reply(&a->q, w->cfg->block_ttl, w->answer, sizeof w->answer);
    if (n > 0)
        listen_respond(from, w->answer, n);
    log_query(w, a, DB_REFUSED, RCODE_NOERROR, 0, 0, NULL);
}

/*
 * What the rate limit counts a query as: the client as identified (the MAC or the Client Subnet
 * a trusted forwarder gave, else the source address, v4-mapped IPv6 as IPv4).
 */
static void limit_key(const struct qlog_client *c, struct ratelimit_key *k)
{
    memset(k, 0, sizeof *k);
    if (c->has_mac) {
        k->kind = RATELIMIT_MAC;
        k->prefix = 48;
        memcpy(k->bytes, c->mac, 6);
        return;
    }
    k->kind = c->family == AF_INET ? RATELIMIT_V4 : RATELIMIT_V6;
    k->prefix = c->prefix;
    memcpy(k->bytes, c->addr, c->family == AF_INET ? 4 : 16);
}

static void format_limit_key(const struct ratelimit_key *k, char *buf, size_t len)
{
    char addr[NETADDR_STRLEN];
    if (k->kind == RATELIMIT_MAC) {
        clients_format_mac(k->bytes, addr);
        snprintf(buf, len, "MAC %s", addr);
        return;
    }
    int family = k->kind == RATELIMIT_V4 ? AF_INET : AF_INET6;
    inet_ntop(family, k->bytes, addr, sizeof addr);
    if (k->prefix < (family == AF_INET ? 32 : 128))
        snprintf(buf, len, "%s/%u", addr, k->prefix);
    else
        snprintf(buf, len, "%s", addr);
}

/* Is this client over [server] rate_limit? Notices it in the log once per window. */
static bool over_limit(struct worker *w, const struct ask *a)
{
    const struct config *cfg = w->cfg;
    if (!w->ratelimit || cfg->rate_limit == 0)
        return false;
    struct ratelimit_key k;
    limit_key(&a->client, &k);
    enum ratelimit_verdict v =
        ratelimit_check(w->ratelimit, &k, cfg->rate_limit, cfg->rate_limit_s, a->start_ns);
    if (v == RATELIMIT_REFUSE_NOTICE) {
        char who[NETADDR_STRLEN + 8];
        format_limit_key(&k, who, sizeof who);
        log_warn("worker",
                 "rate limit: %s sent more than %u queries in %u s; refusing the excess "
                 "(logged once per client per %u s)",
                 who, cfg->rate_limit, cfg->rate_limit_s, cfg->rate_limit_s);
    }
    return v != RATELIMIT_PASS;
}

/* A well-formed question from an allowed client, within its limit. */
static void answer_query(struct worker *w, const struct listen_origin *from, const struct ask *a,
                         const uint8_t *pkt, size_t len)
{
    struct policy_verdict pv;
    policy_check(w->policy, a->q.qname, a->q.qname_len, &pv);
    if (pv.blocked) {
        answer_blocked(w, from, a, &pv, false);
        return;
    }
    if (a->q.qtype == TYPE_ANY) {
        answer_any(w, from, a);
        return;
    }
    if (w->cache) {
        struct dnsmsg_reply_info info;
        size_t n =
            cache_lookup(w->cache, a->q.qname, a->q.qname_len, a->q.qtype, a->q.qclass, a->q.do_bit,
                         a->q.cd, uv_now(&w->loop), w->cached, sizeof w->cached, &info);
        if (n > 0 && deliver(w, from, a, w->cached, n, &info, DB_CACHED, NULL)) {
            w->stats.cached++;
            return;
        }
    }
    forward(w, from, a, pkt, len);
}

static void on_query(void *ctx, const struct listen_origin *from, const uint8_t *pkt, size_t len)
{
    struct worker *w = ctx;
    struct ask a;
    w->stats.queries++;
    enum dnsmsg_verdict v = dnsmsg_parse_query(pkt, len, &a.q);
    if (v == DNSMSG_DROP) {
        w->stats.dropped++;
        return;
    }
    a.start_ns = uv_hrtime();
    identify(w, from, pkt, len, &a); /* for the rate limit and (well-formed questions) the log */
    /* Strangers get REFUSED whatever they sent, and nothing is forwarded for them. */
    if (!in_cidrs(w->cfg->allow, w->cfg->n_allow, (const struct sockaddr *)&from->peer)) {
        w->stats.refused++;
        if (log_enabled(LOG_DEBUG)) {
            char text[NETADDR_STRLEN];
            netaddr_format((const struct sockaddr *)&from->peer, false, text, sizeof text);
            log_debug("worker", "refused %s: not in allow", text);
        }
        answer_error(w, from, &a.q, RCODE_REFUSED);
        if (v == DNSMSG_OK)
            log_query(w, &a, DB_REFUSED, RCODE_REFUSED, 0, 0, NULL);
        return;
    }
    /* Before the rate limit: a looped query is ours, not the forwarder's client's. */
    if (v == DNSMSG_OK && upstream_query_is_ours(pkt, len, &a.q)) {
        answer_loop(w, from, &a);
        return;
    }
    /* Over the limit: REFUSED, counted but not logged (a flood must not flood the log). */
    if (over_limit(w, &a)) {
        w->stats.ratelimited++;
        answer_error(w, from, &a.q, RCODE_REFUSED);
        if (v == DNSMSG_OK && w->qlog)
            qlog_count_unlogged(w->qlog);
        return;
    }
    switch (v) {
    case DNSMSG_OK:
        answer_query(w, from, &a, pkt, len);
        return;
    case DNSMSG_FORMERR:
        w->stats.formerr++;
        answer_error(w, from, &a.q, RCODE_FORMERR);
        return;
    case DNSMSG_NOTIMP:
        w->stats.notimp++;
        answer_error(w, from, &a.q, RCODE_NOTIMP);
        return;
    case DNSMSG_BADVERS:
        w->stats.badvers++;
        answer_error(w, from, &a.q, RCODE_BADVERS);
        return;
    case DNSMSG_REFUSED:
        w->stats.refused++;
        answer_error(w, from, &a.q, RCODE_REFUSED);
        return;
    case DNSMSG_DROP:
        break;
    }
}

static struct listen_opts listen_opts_from(const struct config *cfg)
{
    struct listen_opts o = {
        .tcp_idle_ms = cfg->tcp_idle_ms,
        .tcp_max_connections = cfg->tcp_max_connections,
        .tcp_max_inflight = TCP_MAX_INFLIGHT,
        .tls_max_connections = cfg->tls_max_connections,
    };
    return o;
}

static void apply_update(struct worker *w, struct update *u)
{
    struct config *cfg = u->cfg;
    if (upstream_configure(w->upstream, cfg->upstreams, (const char *const *)cfg->upstream_tls,
                           cfg->n_upstreams, cfg->upstream_tls_ctx, cfg->timeout_ms,
                           cfg->max_pending) < 0) {
        log_error("worker", "reload: out of memory; keeping the old configuration");
        update_free(u);
        return;
    }
    struct listen_opts o = listen_opts_from(cfg);
    listen_set_opts(w->listen, &o);
    /* Upstreams or the cache size may have changed: start with an empty cache (as unbound's
     * reload does). A failed allocation keeps the old one. */
    struct cache *fresh = cfg->cache_size ? cache_create(cfg->cache_size) : NULL;
    if (fresh || cfg->cache_size == 0) {
        cache_destroy(w->cache);
        w->cache = fresh;
    }
    /* Swap: the old config and policy are freed when the last thread lets go of them. */
    struct config *old_cfg = w->cfg;
    struct policy *old_policy = w->policy;
    w->cfg = cfg;
    w->policy = u->policy;
    u->cfg = old_cfg;
    u->policy = old_policy;
    update_free(u);
}

static void on_wakeup(uv_async_t *a)
{
    struct worker *w = a->data;
    struct update *u = atomic_exchange(&w->next, NULL);
    if (u && !w->stopped)
        apply_update(w, u);
    else
        update_free(u);
    struct tls_ctx *tls = atomic_exchange(&w->next_tls, NULL);
    if (tls && !w->stopped)
        listen_set_tls(w->listen, tls);
    tls_ctx_unref(tls);
    if (atomic_load(&w->stop) && !w->stopped) {
        w->stopped = true;
        listen_close(w->listen);
        upstream_close(w->upstream); /* waiters are freed without an answer */
        uv_close((uv_handle_t *)&w->wakeup, NULL);
    }
}

struct worker *worker_create(unsigned index, struct config *cfg, struct policy *policy,
                             struct qlog_ring *qlog, struct ratelimit *ratelimit,
                             struct listen_addr *addrs, size_t n_addrs)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->index = index;
    w->qlog = qlog;
    w->ratelimit = ratelimit;
    if (cfg->cache_size > 0 && (w->cache = cache_create(cfg->cache_size)) == NULL) {
        free(w);
        return NULL;
    }
    int rc = uv_loop_init(&w->loop);
    if (rc < 0) {
        log_error("worker", "loop: %s", uv_strerror(rc));
        free(w);
        return NULL;
    }
    w->cfg = config_ref(cfg);
    w->policy = policy_ref(policy);
    atomic_init(&w->next, NULL);
    atomic_init(&w->next_tls, NULL);
    atomic_init(&w->stop, false);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    w->upstream = upstream_create(&w->loop, cfg->upstreams, (const char *const *)cfg->upstream_tls,
                                  cfg->n_upstreams, cfg->upstream_tls_ctx, cfg->timeout_ms,
                                  cfg->max_pending, &w->stats.upstream);
    struct listen_opts o = listen_opts_from(cfg);
    if (w->upstream)
        w->listen =
            listen_start(&w->loop, addrs, n_addrs, index, &o, on_query, w, &w->stats.listen);
    if (!w->upstream || !w->listen) {
        log_error("worker", "out of memory");
        /* Unwind through the loop so that every handle is closed properly. */
        if (w->listen)
            listen_close(w->listen);
        if (w->upstream)
            upstream_close(w->upstream);
        uv_close((uv_handle_t *)&w->wakeup, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        config_unref(w->cfg);
        policy_unref(w->policy);
        cache_destroy(w->cache);
        free(w);
        return NULL;
    }
    return w;
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
    threads_serving(w->index);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    w->loop_close_rc = uv_loop_close(&w->loop);
}

int worker_start(struct worker *w)
{
    return uv_thread_create(&w->thread, worker_main, w);
}

void worker_reload(struct worker *w, struct config *cfg, struct policy *policy)
{
    struct update *u = malloc(sizeof *u);
    if (!u) {
        log_error("worker", "reload: out of memory");
        return;
    }
    u->cfg = config_ref(cfg);
    u->policy = policy_ref(policy);
    /* A reload not yet picked up is replaced by this newer one. */
    update_free(atomic_exchange(&w->next, u));
    uv_async_send(&w->wakeup);
}

int worker_add_tls(struct worker *w, struct listen_addr *addrs, size_t n_addrs, struct tls_ctx *ctx)
{
    return listen_start_tls(w->listen, addrs, n_addrs, w->index, ctx);
}

void worker_set_tls(struct worker *w, struct tls_ctx *ctx)
{
    /* A certificate not yet picked up is replaced by this newer one. */
    tls_ctx_unref(atomic_exchange(&w->next_tls, tls_ctx_ref(ctx)));
    uv_async_send(&w->wakeup);
}

void worker_stop(struct worker *w)
{
    atomic_store(&w->stop, true);
    uv_async_send(&w->wakeup);
}

int worker_join(struct worker *w)
{
    uv_thread_join(&w->thread);
    if (w->loop_close_rc != 0)
        log_error("worker", "loop %u closed with handles still open: %s", w->index,
                  uv_strerror(w->loop_close_rc));
    return w->loop_close_rc;
}

void worker_stats_add(const struct worker *w, struct worker_stats *sum)
{
    /* Every field is a uint64_t counter: add them as an array. */
    const uint64_t *src = (const uint64_t *)&w->stats;
    uint64_t *dst = (uint64_t *)sum;
    for (size_t i = 0; i < sizeof w->stats / sizeof(uint64_t); i++)
        dst[i] += src[i];
}

void worker_destroy(struct worker *w)
{
    if (!w)
        return;
    update_free(atomic_exchange(&w->next, NULL));
    tls_ctx_unref(atomic_exchange(&w->next_tls, NULL));
    config_unref(w->cfg);
    policy_unref(w->policy);
    cache_destroy(w->cache);
    free(w);
}
