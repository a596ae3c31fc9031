#include "upstream.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dotpool.h"
#include "log.h"
#include "netaddr.h"
#include "wire.h"

#define BUCKETS 4096 /* power of two */

/*
 * Plain-DNS tries share connected UDP sockets: each server has one current socket, which takes
 * UDP_SOCK_USES queries and is then retired (it closes when its last try is over) for a fresh
 * one on a new kernel-random port. A socket, socket() + connect() + epoll registration + close()
 * per query were most of a cache miss's cost. What a blind spoofer must guess stays the same:
 * the port is random and unobservable off the path (a connected socket takes datagrams only
 * from its server, and a probe from anyone else draws the same ICMP unreachable as a closed
 * port), and the ID is 16 random bits, distinct among the tries waiting on the socket.
 */
#define UDP_SOCK_USES    100
#define UDP_SOCK_BUCKETS 64 /* power of two: tries waiting on a socket, by ID */

/*
 * Plain queries made while the loop handles one round of events (a batch of client queries,
 * say) leave together: queued here, sent with one sendmmsg per socket right after the round
 * (check phase), or before the loop would block again (prepare phase) when they were made
 * outside one (a timer's failover).
 */
#define OUTQ 64

/*
 * Replies are read with recvmmsg, up to RECV_SLOTS at a time (libuv gives each datagram a
 * 64 KiB slot of the buffer): a server answers a round's queries together, and reading them
 * one by one took a system call each plus one to find the socket empty (1.8 per reply in the
 * mixed benchmark).
 */
#define RECV_SLOTS 8
#define RECV_SLOT  65536

/*
 * The servers a question was first asked with; shared by reference until the last try. A reload
 * makes a new list, so tls:// servers get new connections (made with the new tls_ca) and the old
 * ones close when the last question using them is over.
 */
struct server_list {
    unsigned refs;
    size_t n;
    struct dotpool **pools; /* per server: its DoT connections (NULL: plain); NULL if no tls:// */
    struct udp_sock **udp;  /* per server: the socket new plain tries go on (NULL: none yet) */
    struct sockaddr_storage addr[];
};

struct pend;
struct upstream;

/*
 * A connected UDP socket to one server, shared by up to UDP_SOCK_USES tries. Lives from its
 * first try until it is retired (used up, its server list gone, or an error) and its last try
 * is over; freed in the close callback.
 */
struct udp_sock {
    uv_udp_t handle;
    struct upstream *up;
    struct udp_sock **slot; /* the server list's pointer to it while current; NULL: retired */
    unsigned uses;          /* tries sent on it */
    unsigned waiting;       /* tries waiting on it for their reply */
    struct sockaddr_storage server;
    struct pend *byid[UDP_SOCK_BUCKETS];
};

/* A datagram that could not leave at once (EAGAIN): its own copy, freed when it is sent. */
struct udp_send {
    uv_udp_send_t req;
    uint8_t msg[];
};

/* One TCP try (after TC=1): lives from connect until the socket is closed. */
struct tcp_try {
    uv_tcp_t handle;
    uv_connect_t connect;
    uv_write_t write;
    struct pend *pend;
    uint8_t out[2 + DNSMSG_SMALL_MAX];
    uint8_t *in;
    size_t in_len, in_cap;
};

/*
 * A question in flight: lives from the first client's upstream_resolve() until it is answered
 * or failed; freed in its timer's close callback.
 */
struct pend {
    struct pend *next_in_bucket;
    struct upstream *up;
    uint32_t hash;
    uint8_t qname_len;
    uint16_t qtype, qclass;
    bool cd, do_bit;
    struct upstream_waiter *waiters;
    struct server_list *servers;
    unsigned first;    /* server index of the first try */
    unsigned tries;    /* tries started */
    unsigned server;   /* server index of the current try */
    uint64_t deadline; /* loop time after which clients get SERVFAIL */
    uint16_t id;       /* ID of the current try */
    size_t query_len;
    struct udp_sock *sock;     /* the current UDP try's socket */
    struct pend *next_on_sock; /* in sock->byid[id % UDP_SOCK_BUCKETS] */
    struct tcp_try *tcp;
    struct dotpool_query dot; /* the current try, when on a tls:// server's connection */
    uv_timer_t timer;
    uint8_t n_carried; /* loop markers of other telesinks, passed on (dnsmsg_loop_markers) */
    uint8_t carried[DNSMSG_LOOP_CARRY * DNSMSG_LOOP_MARKER_LEN];
    uint8_t qname[DNS_MAX_NAME]; /* lower case */
    uint8_t query[DNSMSG_SMALL_MAX];
};

struct upstream {
    uv_loop_t *loop;
    struct server_list *servers;
    unsigned timeout_ms, max_pending;
    unsigned preferred; /* the server that answered last: asked first */
    struct upstream_stats *stats;
    size_t nwaiting; /* clients waiting for an answer: max_pending caps these */
    size_t npending; /* entries in the table */
    size_t nalive;   /* entries and UDP sockets not yet freed (closing ones included) */
    bool closing;
    size_t rand_pos;
    uint8_t rand[256];
    struct pend *buckets[BUCKETS];
    uv_check_t flush_after;    /* both active while queries are queued */
    uv_prepare_t flush_before; /* both closed by upstream_close (nalive counts them) */
    unsigned nout;
    struct udp_sock *out_sock[OUTQ];
    struct mmsghdr out_msg[OUTQ];
    struct iovec out_iov[OUTQ];
    uint8_t out_buf[OUTQ][DNSMSG_SMALL_MAX];
    uint8_t *rbuf; /* RECV_SLOTS slots of RECV_SLOT bytes; only the loop thread reads */
};

static void pend_try(struct pend *p);
static void udp_sock_retire(struct udp_sock *s);
static void dot_reply(struct dotpool_query *q, const uint8_t *msg, size_t len);
static void dot_failed(struct dotpool_query *q);

static void fill_random(uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            abort(); /* no CSPRNG: refuse to send guessable IDs */
        }
        got += (size_t)n;
    }
}

/* n (<= 16) random bytes from this loop's pool, refilled from getrandom() when empty. */
static void random_bytes(struct upstream *u, uint8_t *out, size_t n)
{
    if (u->rand_pos + n > sizeof u->rand) {
        fill_random(u->rand, sizeof u->rand);
        u->rand_pos = 0;
    }
    memcpy(out, u->rand + u->rand_pos, n);
    u->rand_pos += n;
}

/*
 * The secret our loop markers are made with (dnsmsg.h): one per process, so that a query sent
 * by any serving loop is recognised by every other one.
 */
static uint8_t loop_key[DNSMSG_LOOP_KEY_LEN];
static uv_once_t loop_key_once = UV_ONCE_INIT;

static void loop_key_init(void)
{
    fill_random(loop_key, sizeof loop_key);
}

bool upstream_query_is_ours(const uint8_t *pkt, size_t len, const struct dnsmsg_query *q)
{
    if (!q->edns || q->opt_rdlen < 4 + DNSMSG_LOOP_MARKER_LEN)
        return false;
    uv_once(&loop_key_once, loop_key_init);
    return dnsmsg_query_has_loop_marker(pkt, len, q, loop_key);
}

/* A new ID and loop marker for the next try, and the query that carries them. */
static void pend_build_query(struct pend *p)
{
    uint8_t id[2], nonce[8], marker[DNSMSG_LOOP_MARKER_LEN];
    random_bytes(p->up, id, sizeof id);
    random_bytes(p->up, nonce, sizeof nonce);
    dnsmsg_loop_marker(loop_key, nonce, marker);
    p->id = (uint16_t)(id[0] << 8 | id[1]);
    p->query_len =
        dnsmsg_upstream_query(p->qname, p->qname_len, p->qtype, p->qclass, p->id, p->cd, p->do_bit,
                              marker, p->carried, p->n_carried, p->query, sizeof p->query);
}

static void server_list_unref(struct server_list *l)
{
    if (!l || --l->refs > 0)
        return;
    for (size_t i = 0; l->pools && i < l->n; i++) {
        if (l->pools[i])
            dotpool_close(l->pools[i]);
    }
    for (size_t i = 0; i < l->n; i++) {
        if (l->udp[i])
            udp_sock_retire(l->udp[i]);
    }
    free(l->pools);
    free(l->udp);
    free(l);
}

/* tls_names[i] (tls_names may be NULL): NULL for plain DNS, else DNS over TLS verified for it. */
static struct server_list *server_list_create(struct upstream *u,
                                              const struct sockaddr_storage *servers,
                                              const char *const *tls_names, size_t n,
                                              struct tls_ctx *tls_ctx)
{
    static const struct dotpool_callbacks cb = {.reply = dot_reply, .failed = dot_failed};
    struct server_list *l = malloc(sizeof *l + n * sizeof l->addr[0]);
    if (!l)
        return NULL;
    l->refs = 1;
    l->n = n;
    l->pools = NULL;
    if (!(l->udp = calloc(n ? n : 1, sizeof *l->udp))) {
        free(l);
        return NULL;
    }
    memcpy(l->addr, servers, n * sizeof l->addr[0]);
    for (size_t i = 0; tls_names && i < n; i++) {
        if (!tls_names[i])
            continue;
        if (!l->pools && !(l->pools = calloc(n, sizeof *l->pools)))
            goto fail;
        if (!tls_ctx ||
            !(l->pools[i] = dotpool_create(u->loop, (const struct sockaddr *)&servers[i],
                                           tls_names[i], tls_ctx, u->timeout_ms, &cb, u->stats)))
            goto fail;
    }
    return l;
fail:
    server_list_unref(l);
    return NULL;
}

static uint32_t question_hash(const uint8_t *name, size_t len, uint16_t qtype, uint16_t qclass,
                              bool cd, bool do_bit)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ name[i]) * 16777619u;
    uint32_t tail = (uint32_t)qtype << 16 ^ qclass ^ (uint32_t)cd << 30 ^ (uint32_t)do_bit << 31;
    for (int i = 0; i < 4; i++)
        h = (h ^ ((tail >> (8 * i)) & 0xFF)) * 16777619u;
    return h;
}

struct upstream *upstream_create(uv_loop_t *loop, const struct sockaddr_storage *servers,
                                 const char *const *tls_names, size_t n_servers,
                                 struct tls_ctx *tls_ctx, unsigned timeout_ms, unsigned max_pending,
                                 struct upstream_stats *stats)
{
    struct upstream *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->loop = loop;
    u->stats = stats;
    u->rand_pos = sizeof u->rand; /* fill on first use */
    uv_once(&loop_key_once, loop_key_init);
    u->rbuf = malloc((size_t)RECV_SLOTS * RECV_SLOT);
    if (!u->rbuf || upstream_configure(u, servers, tls_names, n_servers, tls_ctx, timeout_ms,
                                       max_pending) < 0) {
        free(u->rbuf);
        free(u);
        return NULL;
    }
    uv_check_init(loop, &u->flush_after);
    uv_prepare_init(loop, &u->flush_before);
    u->flush_after.data = u;
    u->flush_before.data = u;
    return u;
}

int upstream_configure(struct upstream *u, const struct sockaddr_storage *servers,
                       const char *const *tls_names, size_t n_servers, struct tls_ctx *tls_ctx,
                       unsigned timeout_ms, unsigned max_pending)
{
    unsigned old_timeout = u->timeout_ms;
    u->timeout_ms = timeout_ms; /* the new pools' connect and handshake limit */
    struct server_list *l = server_list_create(u, servers, tls_names, n_servers, tls_ctx);
    if (!l) {
        u->timeout_ms = old_timeout;
        return -ENOMEM;
    }
    server_list_unref(u->servers);
    u->servers = l;
    u->timeout_ms = timeout_ms;
    u->max_pending = max_pending;
    u->preferred = 0;
    return 0;
}

size_t upstream_pending(const struct upstream *u)
{
    return u->npending;
}

static void tcp_try_free(uv_handle_t *h)
{
    struct tcp_try *t = h->data;
    free(t->in);
    free(t);
}

/* The struct is freed once the last pending entry and socket are gone after upstream_close. */
static void upstream_release(struct upstream *u)
{
    if (--u->nalive == 0 && u->closing) {
        free(u->rbuf);
        free(u);
    }
}

static void udp_sock_free(uv_handle_t *h)
{
    struct udp_sock *s = h->data;
    struct upstream *u = s->up;
    free(s);
    upstream_release(u);
}

/* No new tries on s; it closes once no try waits on it. */
static void udp_sock_retire(struct udp_sock *s)
{
    if (s->slot) {
        *s->slot = NULL;
        s->slot = NULL;
    }
    if (s->waiting == 0 && !uv_is_closing((uv_handle_t *)&s->handle))
        uv_close((uv_handle_t *)&s->handle, udp_sock_free);
}

/* p's try on its socket is over: a late reply to its ID is ignored from now on. */
static void udp_sock_detach(struct pend *p)
{
    struct udp_sock *s = p->sock;
    struct pend **pp = &s->byid[p->id & (UDP_SOCK_BUCKETS - 1)];
    while (*pp && *pp != p)
        pp = &(*pp)->next_on_sock;
    if (*pp)
        *pp = p->next_on_sock;
    p->sock = NULL;
    s->waiting--;
    if (!s->slot)
        udp_sock_retire(s);
}

static struct pend *udp_sock_find(const struct udp_sock *s, uint16_t id)
{
    struct pend *p = s->byid[id & (UDP_SOCK_BUCKETS - 1)];
    while (p && p->id != id)
        p = p->next_on_sock;
    return p;
}

/* End the current tries: late packets find no pending entry. */
static void pend_stop_tries(struct pend *p)
{
    if (p->sock)
        udp_sock_detach(p);
    if (p->tcp) {
        p->tcp->pend = NULL;
        uv_close((uv_handle_t *)&p->tcp->handle, tcp_try_free);
        p->tcp = NULL;
    }
    dotpool_cancel(&p->dot);
}

static void pend_free(uv_handle_t *h)
{
    struct pend *p = h->data;
    struct upstream *u = p->up;
    server_list_unref(p->servers);
    free(p);
    upstream_release(u);
}

static void pend_unlink(struct pend *p)
{
    struct upstream *u = p->up;
    struct pend **pp = &u->buckets[p->hash & (BUCKETS - 1)];
    while (*pp && *pp != p)
        pp = &(*pp)->next_in_bucket;
    if (*pp) {
        *pp = p->next_in_bucket;
        u->npending--;
    }
}

/*
 * The question is over: out of the table, tries and timer stopped, then every waiter called.
 * Nothing of p is touched after the callbacks start.
 */
static void pend_finish(struct pend *p, int status, const uint8_t *reply, size_t len,
                        const struct dnsmsg_reply_info *info)
{
    struct upstream *u = p->up;
    pend_unlink(p);
    pend_stop_tries(p);
    uv_timer_stop(&p->timer);
    struct upstream_waiter *w = p->waiters;
    p->waiters = NULL;
    uv_close((uv_handle_t *)&p->timer, pend_free);
    if (status < 0)
        u->stats->failed++;
    else
        u->stats->answered++;
    const struct sockaddr *server =
        status == 0 ? (const struct sockaddr *)&p->servers->addr[p->server] : NULL;
    bool first = true;
    while (w) {
        struct upstream_waiter *next = w->next;
        u->nwaiting--;
        w->server = server;
        w->first = first;
        first = false;
        w->done(w, status, reply, len, info);
        w = next;
    }
}

/* The current try failed at once (socket error): move on to the next server. */
static void pend_next(struct pend *p)
{
    pend_stop_tries(p);
    pend_try(p);
}

static void on_reply(struct pend *p, const uint8_t *pkt, size_t len, bool via_tcp);
static void pend_timeout(uv_timer_t *timer);

/* The current try's server failed (silent, unreachable): ask it last from now on. */
static void pend_demote_server(struct pend *p)
{
    struct upstream *u = p->up;
    if (u->servers == p->servers && u->preferred == p->server)
        u->preferred = (p->server + 1) % (unsigned)u->servers->n;
}

/*
 * s failed (an ICMP unreachable reported as ECONNREFUSED, or a send error): no new tries on
 * it, and every try waiting on it goes on to the next server at once.
 */
static void udp_sock_failed(struct udp_sock *s, int err)
{
    struct upstream *u = s->up;
    log_debug("upstream", "udp: %s", uv_strerror(err));
    udp_sock_retire(s);
    /* s is freed only in a later close callback, however its tries end. */
    for (size_t b = 0; b < UDP_SOCK_BUCKETS; b++) {
        struct pend *p;
        while ((p = s->byid[b]) != NULL) {
            if (err == UV_ECONNREFUSED)
                u->stats->unreachable++;
            pend_demote_server(p);
            pend_next(p);
        }
    }
}

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct udp_sock *s = h->data;
    /* Only the loop thread runs callbacks, so one buffer per upstream is enough. */
    buf->base = (char *)s->up->rbuf;
    buf->len = (size_t)RECV_SLOTS * RECV_SLOT;
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                     unsigned flags)
{
    struct udp_sock *s = h->data;
    struct upstream *u = s->up;
    if (nread < 0) {
        /* The socket is connected, so the kernel reports an ICMP port unreachable (nobody
         * serves DNS there) here, as ECONNREFUSED: its tries go on to the next server. */
        udp_sock_failed(s, (int)nread);
        return;
    }
    if (nread == 0 && addr == NULL)
        return; /* the end of a batch, or nothing more to read */
    if (!netaddr_equal(addr, (const struct sockaddr *)&s->server)) {
        u->stats->bad_source++;
        if (log_enabled(LOG_DEBUG)) {
            char a[NETADDR_STRLEN];
            netaddr_format(addr, true, a, sizeof a);
            log_debug("upstream", "ignored a datagram from %s: not the server asked", a);
        }
        return;
    }
    const uint8_t *msg = (const uint8_t *)buf->base; /* this datagram's slot */
    struct pend *p = nread >= DNS_HEADER_LEN ? udp_sock_find(s, rd16(msg)) : NULL;
    if (!p) { /* a late reply to a try that timed out, or a guess */
        u->stats->mismatched++;
        log_debug("upstream", "ignored a reply with an ID no try waits for");
        return;
    }
    if (flags & UV_UDP_PARTIAL) {
        u->stats->malformed++;
        return;
    }
    on_reply(p, msg, (size_t)nread, false);
}

static void tcp_written(uv_write_t *req, int status)
{
    struct tcp_try *t = req->data;
    if (status < 0 && t->pend) {
        log_debug("upstream", "tcp write: %s", uv_strerror(status));
        pend_next(t->pend);
    }
}

static void tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct tcp_try *t = h->data;
    size_t need = 2 + DNSMSG_SMALL_MAX;
    if (t->in_len >= 2)
        need = 2u + (size_t)(t->in[0] << 8 | t->in[1]);
    if (need <= t->in_len)
        need = t->in_len + 1; /* a second message: room to notice it, ignored later */
    if (t->in_cap < need) {
        uint8_t *n = realloc(t->in, need);
        if (!n) {
            buf->base = NULL;
            buf->len = 0;
            return;
        }
        t->in = n;
        t->in_cap = need;
    }
    buf->base = (char *)t->in + t->in_len;
    buf->len = t->in_cap - t->in_len;
}

static void tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct tcp_try *t = s->data;
    struct pend *p = t->pend;
    if (!p)
        return;
    if (nread < 0) {
        log_debug("upstream", "tcp read: %s", uv_strerror((int)nread));
        pend_next(p);
        return;
    }
    t->in_len += (size_t)nread;
    if (t->in_len < 2)
        return;
    size_t msg = (size_t)(t->in[0] << 8 | t->in[1]);
    if (t->in_len < 2 + msg)
        return;
    on_reply(p, t->in + 2, msg, true);
    /* If the reply did not match, this connection has nothing more to give. */
    if (t->pend)
        pend_next(t->pend);
}

static void tcp_connected(uv_connect_t *req, int status)
{
    struct tcp_try *t = req->data;
    struct pend *p = t->pend;
    if (!p)
        return;
    if (status < 0) {
        log_debug("upstream", "tcp connect: %s", uv_strerror(status));
        pend_next(p);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)t->out, (unsigned)(2 + p->query_len));
    t->write.data = t;
    int rc = uv_write(&t->write, (uv_stream_t *)&t->handle, &b, 1, tcp_written);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&t->handle, tcp_alloc, tcp_read);
    if (rc < 0) {
        pend_next(p);
        return;
    }
    p->up->stats->sent++;
}

/* Ask the current server again over TCP (it set TC=1). */
static void pend_tcp(struct pend *p)
{
    struct upstream *u = p->up;
    pend_stop_tries(p);
    struct tcp_try *t = calloc(1, sizeof *t);
    if (!t) {
        pend_try(p);
        return;
    }
    t->pend = p;
    t->handle.data = t;
    t->connect.data = t;
    pend_build_query(p);
    t->out[0] = (uint8_t)(p->query_len >> 8);
    t->out[1] = (uint8_t)p->query_len;
    memcpy(t->out + 2, p->query, p->query_len);
    if (uv_tcp_init(u->loop, &t->handle) < 0) {
        free(t);
        pend_try(p);
        return;
    }
    p->tcp = t;
    u->stats->tcp_retries++;
    /* A fresh timeout for the TCP try, still inside the question's budget. */
    uint64_t now = uv_now(u->loop), wait = u->timeout_ms;
    if (now + wait > p->deadline)
        wait = p->deadline > now ? p->deadline - now : 0;
    uv_timer_start(&p->timer, pend_timeout, wait, 0);
    int rc = uv_tcp_connect(&t->connect, &t->handle,
                            (const struct sockaddr *)&p->servers->addr[p->server], tcp_connected);
    if (rc < 0)
        pend_next(p);
}

static void on_reply(struct pend *p, const uint8_t *pkt, size_t len, bool via_tcp)
{
    struct upstream *u = p->up;
    if (!dnsmsg_reply_matches(pkt, len, p->id, p->qname, p->qname_len, p->qtype, p->qclass)) {
        u->stats->mismatched++;
        log_debug("upstream", "ignored a reply with the wrong ID or question");
        return;
    }
    /* Truncated: ask over TCP before judging the rest (a cut reply may keep its full counts). */
    if (!via_tcp && (pkt[2] & 0x02)) {
        pend_tcp(p);
        return;
    }
    struct dnsmsg_reply_info info;
    if (dnsmsg_reply_scan(pkt, len, &info) < 0) {
        u->stats->malformed++;
        log_debug("upstream", "malformed reply: SERVFAIL");
        pend_finish(p, -EPROTO, NULL, 0, NULL);
        return;
    }
    if ((info.rcode == RCODE_SERVFAIL || info.rcode == RCODE_REFUSED) && p->tries < p->servers->n) {
        /* This server could not help; another might. */
        pend_next(p);
        return;
    }
    u->preferred = p->server;
    pend_finish(p, 0, pkt, len, &info);
}

static void pend_timeout(uv_timer_t *timer)
{
    struct pend *p = timer->data;
    struct upstream *u = p->up;
    u->stats->timeouts++;
    if (log_enabled(LOG_DEBUG)) {
        char a[NETADDR_STRLEN];
        netaddr_format((const struct sockaddr *)&p->servers->addr[p->server], true, a, sizeof a);
        log_debug("upstream", "no answer from %s in time", a);
    }
    pend_demote_server(p);
    dotpool_timed_out(&p->dot); /* off its connection, which is closed if it has gone silent */
    pend_next(p);
}

/* An answer on a DoT connection with the ID the pool gave this try: checked like any other. */
static void dot_reply(struct dotpool_query *q, const uint8_t *msg, size_t len)
{
    struct pend *p = (struct pend *)((char *)q - offsetof(struct pend, dot));
    p->id = q->id;
    on_reply(p, msg, len, true);
}

/* The try's DoT connection failed (refused, reset, a bad certificate): the next server now. */
static void dot_failed(struct dotpool_query *q)
{
    struct pend *p = (struct pend *)((char *)q - offsetof(struct pend, dot));
    pend_demote_server(p);
    pend_next(p);
}

/*
 * The socket plain tries to server i of l go on: the current one, or a new one connected to the
 * server (bound to the wildcard address and a port the kernel picks: datagrams from anyone else
 * never reach it, and an ICMP unreachable is reported to it, see udp_recv). NULL on failure.
 */
static struct udp_sock *udp_sock_get(struct upstream *u, struct server_list *l, unsigned i)
{
    if (l->udp[i])
        return l->udp[i];
    struct udp_sock *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->up = u;
    s->handle.data = s;
    memcpy(&s->server, &l->addr[i], sizeof s->server);
    int rc = uv_udp_init_ex(u->loop, &s->handle, AF_UNSPEC | UV_UDP_RECVMMSG);
    if (rc < 0) {
        free(s);
        log_debug("upstream", "udp socket: %s", uv_strerror(rc));
        return NULL;
    }
    u->nalive++;
    rc = uv_udp_connect(&s->handle, (const struct sockaddr *)&s->server);
    if (rc == 0)
        rc = uv_udp_recv_start(&s->handle, udp_alloc, udp_recv);
    if (rc < 0) {
        log_debug("upstream", "udp socket: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&s->handle, udp_sock_free);
        return NULL;
    }
    s->slot = &l->udp[i];
    l->udp[i] = s;
    return s;
}

static void udp_send_done(uv_udp_send_t *req, int status)
{
    (void)status; /* a lost datagram is a try that times out */
    free(req->data);
}

/* Send msg on s now, or queue a copy of it when the socket's buffer is full. */
static int udp_sock_send(struct udp_sock *s, const uint8_t *msg, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)msg, (unsigned)len);
    int rc = uv_udp_try_send(&s->handle, &b, 1, NULL);
    if (rc != UV_EAGAIN)
        return rc < 0 ? rc : 0;
    struct udp_send *q = malloc(sizeof *q + len);
    if (!q)
        return UV_ENOMEM;
    memcpy(q->msg, msg, len);
    q->req.data = q;
    b = uv_buf_init((char *)q->msg, (unsigned)len);
    rc = uv_udp_send(&q->req, &s->handle, &b, 1, NULL, udp_send_done);
    if (rc < 0)
        free(q);
    return rc;
}

/*
 * Send the queued queries: consecutive ones on the same socket in one sendmmsg. A socket that
 * fails has its tries go on to the next server, which may queue again: sent before returning.
 */
static void upstream_flush(struct upstream *u)
{
    struct udp_sock *failed[OUTQ];
    int failed_err[OUTQ];
    while (u->nout > 0) {
        unsigned n = u->nout, nfailed = 0;
        for (unsigned i = 0, j; i < n; i = j) {
            struct udp_sock *s = u->out_sock[i];
            for (j = i + 1; j < n && u->out_sock[j] == s;)
                j++;
            uv_os_fd_t fd;
            if (uv_fileno((const uv_handle_t *)&s->handle, &fd) < 0)
                continue; /* closed meanwhile: its tries are over */
            unsigned k = i;
            int err = 0;
            while (k < j) {
                int sent = sendmmsg(fd, &u->out_msg[k], j - k, MSG_DONTWAIT);
                if (sent > 0) {
                    k += (unsigned)sent;
                    u->stats->sent += (unsigned)sent;
                } else if (errno != EINTR) {
                    err = -errno;
                    break;
                }
            }
            /* A full socket buffer: the rest through libuv's queue (a copy each). */
            for (; err == UV_EAGAIN && k < j; k++) {
                err = udp_sock_send(s, u->out_buf[k], u->out_iov[k].iov_len);
                if (err == 0)
                    u->stats->sent++;
            }
            if (k < j && err < 0) { /* e.g. the error an ICMP unreachable left on it */
                failed[nfailed] = s;
                failed_err[nfailed++] = err;
            }
        }
        u->nout = 0;
        for (unsigned i = 0; i < nfailed; i++)
            udp_sock_failed(failed[i], failed_err[i]); /* its tries: the next server */
    }
    uv_check_stop(&u->flush_after);
    uv_prepare_stop(&u->flush_before);
}

static void flush_closed(uv_handle_t *h)
{
    upstream_release(h->data);
}

static void flush_after_cb(uv_check_t *h)
{
    upstream_flush(h->data);
}

static void flush_before_cb(uv_prepare_t *h)
{
    upstream_flush(h->data);
}

/* Queue msg (p's query) for s, to leave with the others of this round. */
static void udp_queue(struct upstream *u, struct udp_sock *s, const uint8_t *msg, size_t len)
{
    if (u->nout == OUTQ)
        upstream_flush(u);
    if (u->nout == 0) {
        uv_check_start(&u->flush_after, flush_after_cb);
        uv_prepare_start(&u->flush_before, flush_before_cb);
    }
    unsigned k = u->nout++;
    memcpy(u->out_buf[k], msg, len);
    u->out_sock[k] = s;
    u->out_iov[k] = (struct iovec){.iov_base = u->out_buf[k], .iov_len = len};
    u->out_msg[k].msg_hdr = (struct msghdr){.msg_iov = &u->out_iov[k], .msg_iovlen = 1};
}

/* Start the next try, or fail the question when every server was tried or time is up. */
static void pend_try(struct pend *p)
{
    struct upstream *u = p->up;
    uint64_t now = uv_now(u->loop);
    if (p->tries >= p->servers->n || now >= p->deadline) {
        pend_finish(p, -ETIMEDOUT, NULL, 0, NULL);
        return;
    }
    p->server = (p->first + p->tries) % (unsigned)p->servers->n;
    p->tries++;

    uint64_t wait = u->timeout_ms;
    if (now + wait > p->deadline)
        wait = p->deadline - now;
    uv_timer_start(&p->timer, pend_timeout, wait, 0);

    struct dotpool *pool = p->servers->pools ? p->servers->pools[p->server] : NULL;
    if (pool) {
        pend_build_query(p);
        int rc = dotpool_send(pool, &p->dot, p->query, p->query_len);
        if (rc < 0) { /* backing off after failures, or no connection: the next server at once */
            log_debug("upstream", "tls: server skipped: %s",
                      rc == -EAGAIN  ? "waiting after failed connections"
                      : rc == -EBUSY ? "its connections are full"
                                     : strerror(-rc));
            pend_demote_server(p);
            pend_next(p);
        }
        return; /* p may be over already when the pool knew of a failure at once */
    }

    struct udp_sock *sock = udp_sock_get(u, p->servers, p->server);
    if (!sock) {
        pend_next(p);
        return;
    }
    /* A fresh ID for this try, distinct from those waiting on the same socket. */
    do
        pend_build_query(p);
    while (udp_sock_find(sock, p->id));
    struct pend **head = &sock->byid[p->id & (UDP_SOCK_BUCKETS - 1)];
    p->next_on_sock = *head;
    *head = p;
    p->sock = sock;
    sock->waiting++;
    if (++sock->uses >= UDP_SOCK_USES)
        udp_sock_retire(sock); /* closes once the last of its tries is over */
    udp_queue(u, sock, p->query, p->query_len);
}

int upstream_resolve(struct upstream *u, const struct dnsmsg_query *q, const uint8_t *carried,
                     size_t n_carried, struct upstream_waiter *w)
{
    if (u->closing)
        return -ESHUTDOWN;
    /* Every client waiting counts, those joining a question in flight too: memory stays
     * bounded however many ask the same name of a silent upstream. */
    if (u->nwaiting >= u->max_pending) {
        u->stats->overloaded++;
        return -EBUSY;
    }
    uint8_t name[DNS_MAX_NAME];
    dnsmsg_name_lower(q->qname, q->qname_len, name);
    uint32_t h = question_hash(name, q->qname_len, q->qtype, q->qclass, q->cd, q->do_bit);

    for (struct pend *p = u->buckets[h & (BUCKETS - 1)]; p; p = p->next_in_bucket) {
        if (p->hash == h && p->qname_len == q->qname_len && p->qtype == q->qtype &&
            p->qclass == q->qclass && p->cd == q->cd && p->do_bit == q->do_bit &&
            memcmp(p->qname, name, q->qname_len) == 0) {
            w->next = p->waiters;
            p->waiters = w;
            u->nwaiting++;
            u->stats->coalesced++;
            return 0;
        }
    }
    struct pend *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    memset(p, 0, offsetof(struct pend, qname));
    p->up = u;
    p->hash = h;
    memcpy(p->qname, name, q->qname_len);
    p->qname_len = q->qname_len;
    p->n_carried = (uint8_t)(n_carried < DNSMSG_LOOP_CARRY ? n_carried : DNSMSG_LOOP_CARRY);
    if (p->n_carried)
        memcpy(p->carried, carried, p->n_carried * (size_t)DNSMSG_LOOP_MARKER_LEN);
    p->qtype = q->qtype;
    p->qclass = q->qclass;
    p->cd = q->cd;
    p->do_bit = q->do_bit;
    w->next = NULL;
    p->waiters = w;
    p->servers = u->servers;
    p->servers->refs++;
    p->first = u->preferred % (unsigned)p->servers->n;
    p->deadline = uv_now(u->loop) + UPSTREAM_BUDGET_MS;
    uv_timer_init(u->loop, &p->timer);
    p->timer.data = p;

    p->next_in_bucket = u->buckets[h & (BUCKETS - 1)];
    u->buckets[h & (BUCKETS - 1)] = p;
    u->npending++;
    u->nalive++;
    u->nwaiting++;
    pend_try(p);
    return 0;
}

void upstream_close(struct upstream *u)
{
    u->closing = true;
    for (size_t b = 0; b < BUCKETS; b++) {
        while (u->buckets[b])
            pend_finish(u->buckets[b], -ESHUTDOWN, NULL, 0, NULL);
    }
    u->nout = 0; /* queued queries of questions now over */
    u->nalive += 2;
    uv_close((uv_handle_t *)&u->flush_after, flush_closed);
    uv_close((uv_handle_t *)&u->flush_before, flush_closed);
    server_list_unref(u->servers); /* its sockets close once their tries are over */
    u->servers = NULL;
}
