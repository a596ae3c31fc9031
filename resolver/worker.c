#include "worker.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsmsg.h"
#include "log.h"
#include "netaddr.h"

/* Queries a single TCP connection may have in flight before we stop reading from it. */
#define TCP_MAX_INFLIGHT 64

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
    struct config *cfg;            /* loop thread only */
    struct policy *policy;         /* loop thread only */
    _Atomic(struct update *) next; /* handed over by worker_reload */
    atomic_bool stop;
    bool stopped;
    int loop_close_rc;
    struct listen *listen;
    struct upstream *upstream;
    struct worker_stats stats;
    uint8_t answer[2 + DNS_MAX_UDP]; /* scratch for building one answer */
};

/* A forwarded query: lives from upstream_resolve() until its answer is sent or dropped. */
struct query {
    struct upstream_waiter waiter; /* first: the upstream callback gets this pointer */
    struct worker *w;
    struct listen_origin origin;
    struct dnsmsg_query q;
};

static bool client_allowed(const struct config *cfg, const struct sockaddr *peer)
{
    for (size_t i = 0; i < cfg->n_allow; i++) {
        if (cidr_contains(&cfg->allow[i], peer))
            return true;
    }
    return false;
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
static void answer_blocked(struct worker *w, const struct listen_origin *from,
                           const struct dnsmsg_query *q, const struct policy_verdict *v,
                           bool via_cname)
{
    const struct policy_list *l = policy_list(w->policy, v->list);
    enum dnsmsg_block_mode mode =
        l->always_nxdomain ? DNSMSG_BLOCK_NXDOMAIN : w->cfg->blocking_mode;
    char text[DNSMSG_EDE_TEXT_MAX + 1];
    snprintf(text, sizeof text, "blocked by telesink: %s (%s)%s", l->vendor, l->name,
             via_cname ? " via CNAME" : "");
    w->stats.blocked++;
    if (via_cname)
        w->stats.blocked_cname++;
    size_t n = dnsmsg_block_reply(q, mode, w->cfg->block_ttl, text, w->answer, sizeof w->answer);
    if (n > 0)
        listen_respond(from, w->answer, n);
    if (log_enabled(LOG_DEBUG)) {
        char a[NETADDR_STRLEN];
        netaddr_format((const struct sockaddr *)&from->peer, false, a, sizeof a);
        log_debug("worker", "%s: %s", a, text);
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

static void query_done(struct upstream_waiter *waiter, int status, const uint8_t *reply, size_t len,
                       const struct dnsmsg_reply_info *info)
{
    struct query *qr = (struct query *)waiter;
    struct worker *w = qr->w;
    if (status != -ESHUTDOWN && listen_origin_open(&qr->origin)) {
        /* Over UDP: the client's size, but never above ours (no fragments, no amplification). */
        size_t limit = DNS_MAX_UDP;
        if (qr->origin.udp)
            limit = qr->q.udp_size < DNSMSG_EDNS_SIZE ? qr->q.udp_size : DNSMSG_EDNS_SIZE;
        size_t n = 0;
        /* CNAME cloaking: a tracker hidden behind a first-party name is still blocked. */
        struct cname_check cc = {.policy = w->policy};
        if (status == 0 && info->an > 0 &&
            dnsmsg_reply_cnames(reply, len, info, cname_blocked, &cc)) {
            answer_blocked(w, &qr->origin, &qr->q, &cc.verdict, true);
            listen_release(&qr->origin);
            free(qr);
            return;
        }
        if (status == 0)
            n = dnsmsg_client_reply(&qr->q, reply, len, info, limit, w->answer, sizeof w->answer);
        if (n > 0) {
            listen_respond(&qr->origin, w->answer, n);
        } else {
            w->stats.servfail++;
            answer_error(w, &qr->origin, &qr->q, RCODE_SERVFAIL);
        }
    }
    listen_release(&qr->origin);
    free(qr);
}

static void forward(struct worker *w, const struct listen_origin *from,
                    const struct dnsmsg_query *q)
{
    struct query *qr = malloc(sizeof *qr);
    if (!qr) {
        w->stats.servfail++;
        answer_error(w, from, q, RCODE_SERVFAIL);
        return;
    }
    qr->w = w;
    qr->waiter.done = query_done;
    qr->q = *q;
    listen_hold(from, &qr->origin);
    w->stats.forwarded++;
    int rc = upstream_resolve(w->upstream, &qr->q, &qr->waiter);
    if (rc < 0) {
        w->stats.servfail++;
        answer_error(w, from, q, RCODE_SERVFAIL);
        listen_release(&qr->origin);
        free(qr);
    }
}

static void on_query(void *ctx, const struct listen_origin *from, const uint8_t *pkt, size_t len)
{
    struct worker *w = ctx;
    struct dnsmsg_query q;
    w->stats.queries++;
    enum dnsmsg_verdict v = dnsmsg_parse_query(pkt, len, &q);
    if (v == DNSMSG_DROP) {
        w->stats.dropped++;
        return;
    }
    /* Strangers get REFUSED whatever they sent, and nothing is forwarded for them. */
    if (!client_allowed(w->cfg, (const struct sockaddr *)&from->peer)) {
        w->stats.refused++;
        if (log_enabled(LOG_DEBUG)) {
            char a[NETADDR_STRLEN];
            netaddr_format((const struct sockaddr *)&from->peer, false, a, sizeof a);
            log_debug("worker", "refused %s: not in allow", a);
        }
        answer_error(w, from, &q, RCODE_REFUSED);
        return;
    }
    switch (v) {
    case DNSMSG_OK: {
        struct policy_verdict pv;
        policy_check(w->policy, q.qname, q.qname_len, &pv);
        if (pv.blocked)
            answer_blocked(w, from, &q, &pv, false);
        else
            forward(w, from, &q);
        return;
    }
    case DNSMSG_FORMERR:
        w->stats.formerr++;
        answer_error(w, from, &q, RCODE_FORMERR);
        return;
    case DNSMSG_NOTIMP:
        w->stats.notimp++;
        answer_error(w, from, &q, RCODE_NOTIMP);
        return;
    case DNSMSG_BADVERS:
        w->stats.badvers++;
        answer_error(w, from, &q, RCODE_BADVERS);
        return;
    case DNSMSG_REFUSED:
        w->stats.refused++;
        answer_error(w, from, &q, RCODE_REFUSED);
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
    };
    return o;
}

static void apply_update(struct worker *w, struct update *u)
{
    struct config *cfg = u->cfg;
    if (upstream_configure(w->upstream, cfg->upstreams, cfg->n_upstreams, cfg->timeout_ms,
                           cfg->max_pending) < 0) {
        log_error("worker", "reload: out of memory; keeping the old configuration");
        update_free(u);
        return;
    }
    struct listen_opts o = listen_opts_from(cfg);
    listen_set_opts(w->listen, &o);
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
    if (atomic_load(&w->stop) && !w->stopped) {
        w->stopped = true;
        listen_close(w->listen);
        upstream_close(w->upstream); /* waiters are freed without an answer */
        uv_close((uv_handle_t *)&w->wakeup, NULL);
    }
}

struct worker *worker_create(unsigned index, struct config *cfg, struct policy *policy,
                             struct listen_addr *addrs, size_t n_addrs)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->index = index;
    int rc = uv_loop_init(&w->loop);
    if (rc < 0) {
        log_error("worker", "loop: %s", uv_strerror(rc));
        free(w);
        return NULL;
    }
    w->cfg = config_ref(cfg);
    w->policy = policy_ref(policy);
    atomic_init(&w->next, NULL);
    atomic_init(&w->stop, false);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    w->upstream = upstream_create(&w->loop, cfg->upstreams, cfg->n_upstreams, cfg->timeout_ms,
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
        free(w);
        return NULL;
    }
    return w;
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
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
    config_unref(w->cfg);
    policy_unref(w->policy);
    free(w);
}
