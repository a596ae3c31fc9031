#include "dotpool.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsmsg.h"
#include "log.h"
#include "netaddr.h"
#include "tls.h"

#define SLOT_MASK      (DOTPOOL_SLOTS - 1)
#define OUT_MAX        (16 * 1024 + 256) /* one TLS record with its header and tag */
#define READ_MAX       (16 * 1024 + 256)
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 8000
#define NOTICE_MS      60000
#define PAD_BLOCK      128 /* RFC 8467's recommended block length for queries */

enum conn_state { CONNECTING, HANDSHAKING, OPEN, CLOSING };

/*
 * One connection: lives from conn_open until both its handles are closed (freed in the last
 * close callback). Holds a reference on its pool. Off the pool's list once CLOSING.
 */
struct dotpool_conn {
    struct dotpool_conn *next;
    struct dotpool *pool;
    uv_tcp_t tcp;
    uv_timer_t timer; /* the connect and handshake deadline, then the idle timeout */
    uv_connect_t connect;
    uv_write_t write;
    struct tls_conn *tls;
    enum conn_state state;
    bool writing;         /* a uv_write of out is under way */
    bool quiet;           /* woken from idle by a query, and nothing from the server since */
    unsigned handles;     /* still open */
    unsigned inflight;    /* queries in slot[] */
    uint64_t answered_at; /* loop time of the last message from the server (or of the start) */
    uint8_t *in;          /* plaintext read: framed messages being reassembled */
    size_t in_len, in_cap;
    struct dotpool_query *slot[DOTPOOL_SLOTS]; /* by ID & SLOT_MASK */
    uint8_t out[OUT_MAX];                      /* ciphertext being written */
};

/* Lives from dotpool_create until dotpool_close and the last connection's close callback. */
struct dotpool {
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    char name[DNS_MAX_NAME + 1];
    char label[NETADDR_STRLEN + DNS_MAX_NAME + 8]; /* tls://ADDR:PORT#NAME, for the log */
    struct tls_ctx *ctx;
    struct dotpool_callbacks cb;
    struct upstream_stats *stats;
    unsigned timeout_ms;
    unsigned refs; /* the owner's, until dotpool_close, and one per connection */
    bool closing;
    struct dotpool_conn *conns;
    unsigned nconns;
    unsigned fails;      /* connection attempts failed in a row */
    uint64_t retry_at;   /* no new connection before this loop time */
    uint64_t noticed_at; /* when a failure was last logged */
    bool broken;         /* one was logged, and no connection has worked since */
    char noticed[128];   /* the failure last logged ("" none) */
    uint8_t rbuf[READ_MAX];
};

static void conn_timer(uv_timer_t *t);
static int pool_place(struct dotpool *p, struct dotpool_query *q);

struct dotpool *dotpool_create(uv_loop_t *loop, const struct sockaddr *addr, const char *name,
                               struct tls_ctx *ctx, unsigned timeout_ms,
                               const struct dotpool_callbacks *cb, struct upstream_stats *stats)
{
    if (strlen(name) > DNS_MAX_NAME)
        return NULL;
    struct dotpool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->loop = loop;
    memcpy(&p->addr, addr, netaddr_len(addr));
    strcpy(p->name, name);
    char a[NETADDR_STRLEN], bare[NETADDR_STRLEN];
    netaddr_format(addr, true, a, sizeof a);
    netaddr_format(addr, false, bare, sizeof bare);
    bool same = strcmp(name, bare) == 0;
    snprintf(p->label, sizeof p->label, "tls://%s%s%s", a, same ? "" : "#", same ? "" : name);
    p->ctx = tls_ctx_ref(ctx);
    p->timeout_ms = timeout_ms;
    p->cb = *cb;
    p->stats = stats;
    p->refs = 1;
    return p;
}

static void pool_unref(struct dotpool *p)
{
    if (--p->refs > 0)
        return;
    tls_ctx_unref(p->ctx);
    free(p);
}

static void conn_free(uv_handle_t *h)
{
    struct dotpool_conn *c = h->data;
    if (--c->handles > 0)
        return;
    struct dotpool *p = c->pool;
    tls_conn_free(c->tls);
    free(c->in);
    free(c);
    pool_unref(p);
}

/* Why a connection failed, for the operator: the same reason at most once a minute per pool. */
static void pool_notice(struct dotpool *p, const char *why)
{
    uint64_t now = uv_now(p->loop);
    p->broken = true;
    if (strncmp(p->noticed, why, sizeof p->noticed - 1) == 0 && now - p->noticed_at < NOTICE_MS) {
        log_debug("upstream", "%s: %s", p->label, why);
        return;
    }
    snprintf(p->noticed, sizeof p->noticed, "%s", why);
    p->noticed_at = now;
    log_warn("upstream", "%s: %s; failing over (the same failure is logged at most once a minute)",
             p->label, why);
}

/*
 * The end of c: off the pool, its handles closing, every query on it handed back (or, resend,
 * moved once to another connection). why is NULL for an orderly close (idle, the server closing
 * an idle connection, the pool closed); else the failure, counted and logged, and a failed
 * attempt to connect starts the backoff.
 */
static void conn_end(struct dotpool_conn *c, const char *why, bool resend)
{
    if (c->state == CLOSING)
        return;
    struct dotpool *p = c->pool;
    bool was_open = c->state == OPEN;
    c->state = CLOSING;
    struct dotpool_conn **pp = &p->conns;
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    p->nconns--;
    if (why) {
        p->stats->tls_failures++;
        if (!was_open) {
            unsigned shift = p->fails < 6 ? p->fails : 6;
            uint64_t wait = (uint64_t)BACKOFF_MIN_MS << shift;
            p->fails++;
            p->retry_at = uv_now(p->loop) + (wait < BACKOFF_MAX_MS ? wait : BACKOFF_MAX_MS);
        }
        pool_notice(p, why);
    } else {
        log_debug("upstream", "%s: connection closed", p->label);
    }
    uv_close((uv_handle_t *)&c->timer, conn_free);
    uv_close((uv_handle_t *)&c->tcp, conn_free);
    for (unsigned s = 0; s < DOTPOOL_SLOTS && c->inflight > 0; s++) {
        struct dotpool_query *q = c->slot[s];
        if (!q)
            continue;
        c->slot[s] = NULL;
        c->inflight--;
        q->conn = NULL;
        if (resend && !q->resent) {
            q->resent = true;
            if (pool_place(p, q) == 0)
                continue;
        }
        p->cb.failed(q); /* may send again, on this pool too: c is no longer on it */
    }
}

static void conn_close(struct dotpool_conn *c, const char *why)
{
    conn_end(c, why, false);
}

/*
 * The server ended an open connection (FIN, close_notify, reset). Queries written since it was
 * last idle, with nothing heard since, crossed the server's own idle timeout (RFC 7766 6.2.1):
 * they go once more on a new connection, and that is no failure. Otherwise it is one.
 */
static void conn_closed_by_server(struct dotpool_conn *c, const char *why)
{
    if (c->inflight > 0 && c->quiet)
        log_debug("upstream", "%s: %s; its %u queries go on a new connection", c->pool->label, why,
                  c->inflight);
    conn_end(c, c->inflight > 0 && !c->quiet ? why : NULL, c->quiet);
}

static void conn_written(uv_write_t *req, int status);

/* Send the session's pending ciphertext: one write at a time, the rest waits in the session. */
static void conn_flush(struct dotpool_conn *c)
{
    while (c->state != CONNECTING && c->state != CLOSING && !c->writing &&
           tls_conn_pending(c->tls) > 0) {
        size_t n = tls_conn_take(c->tls, c->out, sizeof c->out);
        uv_buf_t b = uv_buf_init((char *)c->out, (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (w == UV_EAGAIN)
            w = 0;
        if (w < 0) {
            conn_close(c, uv_strerror(w));
            return;
        }
        if ((size_t)w == n)
            continue;
        b = uv_buf_init((char *)c->out + w, (unsigned)(n - (size_t)w));
        int rc = uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, conn_written);
        if (rc < 0) {
            conn_close(c, uv_strerror(rc));
            return;
        }
        c->writing = true;
    }
}

static void conn_written(uv_write_t *req, int status)
{
    struct dotpool_conn *c = req->data;
    c->writing = false;
    if (c->state == CLOSING)
        return;
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    conn_flush(c);
}

/* The session failed (a bad certificate, a protocol error): send its alert, then close. */
static void conn_fail_tls(struct dotpool_conn *c)
{
    char why[192];
    const char *e = tls_conn_error(c->tls);
    snprintf(why, sizeof why, "%s%s",
             c->state == OPEN ? "TLS: " : "TLS handshake failed: ", *e ? e : "unknown error");
    conn_flush(c);
    conn_close(c, why);
}

/* An orderly end: our close_notify (best effort: what fits the socket now), then close. */
static void conn_shutdown(struct dotpool_conn *c, const char *why)
{
    if (c->state == OPEN) {
        tls_conn_shutdown(c->tls);
        if (!c->writing && tls_conn_pending(c->tls) > 0) {
            size_t n = tls_conn_take(c->tls, c->out, sizeof c->out);
            uv_buf_t b = uv_buf_init((char *)c->out, (unsigned)n);
            (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        }
    }
    conn_close(c, why);
}

/*
 * RFC 8467: pad a query of ours (dnsmsg_upstream_query: the question, then one OPT record, last)
 * with an EDNS Padding option to a multiple of PAD_BLOCK bytes, so that its length does not
 * tell the name's. m has room for PAD_BLOCK + 3 more bytes. Returns the new length (len when the
 * query is not of that shape).
 */
static size_t pad_query(uint8_t *m, size_t len)
{
    size_t off = 12;
    while (off < len && m[off] != 0 && m[off] < 64)
        off += 1u + m[off];
    off += 5; /* the root label, type and class */
    if (len < 12 || m[10] != 0 || m[11] != 1 || off + 11 > len || m[off] != 0 || m[off + 1] != 0 ||
        m[off + 2] != 41)
        return len;
    size_t rdlen = (size_t)(m[off + 9] << 8 | m[off + 10]);
    if (off + 11 + rdlen != len)
        return len;
    size_t pad = (PAD_BLOCK - (len + 4) % PAD_BLOCK) % PAD_BLOCK;
    m[len] = 0;
    m[len + 1] = 12; /* Padding */
    m[len + 2] = (uint8_t)(pad >> 8);
    m[len + 3] = (uint8_t)pad;
    memset(m + len + 4, 0, pad);
    rdlen += 4 + pad;
    m[off + 9] = (uint8_t)(rdlen >> 8);
    m[off + 10] = (uint8_t)rdlen;
    return len + 4 + pad;
}

/* Encrypt q's query, padded and framed (RFC 7766: a 2-byte length); 0 or -EPROTO. */
static int conn_write_query(struct dotpool_conn *c, const struct dotpool_query *q)
{
    uint8_t frame[2 + DNSMSG_SMALL_MAX + 4 + PAD_BLOCK];
    memcpy(frame + 2, q->msg, q->len);
    size_t n = pad_query(frame + 2, q->len);
    frame[0] = (uint8_t)(n >> 8);
    frame[1] = (uint8_t)n;
    if (tls_conn_write(c->tls, frame, 2 + n) < 0)
        return -EPROTO;
    c->pool->stats->sent++;
    return 0;
}

/* The handshake is done: the server's certificate verified. Write what waited for it. */
static void conn_opened(struct dotpool_conn *c)
{
    struct dotpool *p = c->pool;
    c->state = OPEN;
    c->answered_at = uv_now(p->loop);
    p->stats->tls_handshakes++;
    p->fails = 0;
    p->retry_at = 0;
    if (p->broken)
        log_info("upstream", "%s: connected again (%s)", p->label, tls_conn_version(c->tls));
    else
        log_debug("upstream", "%s: connected (%s%s)", p->label, tls_conn_version(c->tls),
                  tls_conn_alpn_dot(c->tls) ? ", ALPN dot" : "");
    p->broken = false;
    uv_timer_stop(&c->timer);
    for (unsigned s = 0, left = c->inflight; left > 0; s++) {
        if (!c->slot[s])
            continue;
        left--;
        if (conn_write_query(c, c->slot[s]) < 0) {
            conn_fail_tls(c);
            return;
        }
    }
    if (c->inflight == 0)
        uv_timer_start(&c->timer, conn_timer, DOTPOOL_IDLE_MS, 0);
}

/* One DNS message from the server. */
static void conn_message(struct dotpool_conn *c, const uint8_t *msg, size_t len)
{
    struct dotpool *p = c->pool;
    c->answered_at = uv_now(p->loop);
    if (len < 12 || !(msg[2] & 0x80)) {
        conn_close(c, "the server sent something that is not a DNS reply");
        return;
    }
    c->quiet = false;
    uint16_t id = (uint16_t)(msg[0] << 8 | msg[1]);
    struct dotpool_query *q = c->slot[id & SLOT_MASK];
    if (!q || q->id != id) {
        p->stats->mismatched++; /* a late answer to a try that timed out, or a wrong ID */
        log_debug("upstream", "%s: ignored an answer with an ID not in flight", p->label);
        return;
    }
    p->cb.reply(q, msg, len);
}

/* Room to read plaintext into: at least the whole message being reassembled, and 4 KiB. */
static bool conn_room(struct dotpool_conn *c)
{
    size_t need = 4096;
    if (c->in_len >= 2 && 2u + (size_t)(c->in[0] << 8 | c->in[1]) > need)
        need = 2u + (size_t)(c->in[0] << 8 | c->in[1]);
    if (c->in_cap >= need)
        return true;
    uint8_t *n = realloc(c->in, need);
    if (!n)
        return false;
    c->in = n;
    c->in_cap = need;
    return true;
}

/* Decrypt what the socket brought and hand out every complete message. */
static void conn_receive(struct dotpool_conn *c)
{
    for (;;) {
        if (!conn_room(c)) {
            conn_close(c, "out of memory");
            return;
        }
        ssize_t r = tls_conn_read(c->tls, c->in + c->in_len, c->in_cap - c->in_len);
        if (r == -EAGAIN)
            return;
        if (r == 0) { /* close_notify: an idle connection's normal end */
            tls_conn_shutdown(c->tls);
            conn_flush(c);
            conn_closed_by_server(c, "closed by the server (close_notify)");
            return;
        }
        if (r < 0) {
            conn_fail_tls(c);
            return;
        }
        c->in_len += (size_t)r;
        size_t off = 0;
        while (c->in_len - off >= 2) {
            size_t n = (size_t)(c->in[off] << 8 | c->in[off + 1]);
            if (c->in_len - off - 2 < n)
                break;
            conn_message(c, c->in + off + 2, n);
            if (c->state == CLOSING)
                return;
            off += 2 + n;
        }
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct dotpool_conn *c = h->data;
    /* Fed to the session at once in conn_read: one buffer per pool is enough. */
    buf->base = (char *)c->pool->rbuf;
    buf->len = sizeof c->pool->rbuf;
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct dotpool_conn *c = s->data;
    if (c->state == CLOSING || nread == 0)
        return;
    if (nread < 0) {
        const char *why = nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread);
        if (c->state == OPEN && (nread == UV_EOF || nread == UV_ECONNRESET))
            conn_closed_by_server(c, why);
        else
            conn_close(c, why);
        return;
    }
    bool handshaking = c->state == HANDSHAKING;
    if (tls_conn_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread) < 0) {
        conn_fail_tls(c);
        return;
    }
    if (handshaking && tls_conn_state(c->tls) == TLS_OPEN)
        conn_opened(c);
    if (c->state == OPEN)
        conn_receive(c);
    conn_flush(c);
}

static void conn_connected(uv_connect_t *req, int status)
{
    struct dotpool_conn *c = req->data;
    if (c->state == CLOSING)
        return;
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    c->state = HANDSHAKING;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
    if (rc < 0) {
        conn_close(c, uv_strerror(rc));
        return;
    }
    conn_flush(c); /* the ClientHello */
}

static void conn_timer(uv_timer_t *t)
{
    struct dotpool_conn *c = t->data;
    if (c->state == OPEN) /* only started while nothing is in flight */
        conn_shutdown(c, NULL);
    else
        conn_close(c, c->state == CONNECTING ? "connect timed out" : "TLS handshake timed out");
}

/* A new connection, on the pool's list; NULL (the failure counted) when it cannot start. */
static struct dotpool_conn *conn_open(struct dotpool *p)
{
    struct dotpool_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->tls = tls_conn_new(p->ctx, p->name);
    if (!c->tls || uv_tcp_init(p->loop, &c->tcp) < 0) {
        tls_conn_free(c->tls);
        free(c);
        return NULL;
    }
    uv_timer_init(p->loop, &c->timer);
    c->tcp.data = c->timer.data = c->connect.data = c->write.data = c;
    c->handles = 2;
    c->pool = p;
    p->refs++;
    c->next = p->conns;
    p->conns = c;
    p->nconns++;
    c->state = CONNECTING;
    c->answered_at = uv_now(p->loop);
    uv_timer_start(&c->timer, conn_timer, p->timeout_ms, 0);
    uv_tcp_nodelay(&c->tcp, 1); /* queries are small and pipelined */
    int rc =
        uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&p->addr, conn_connected);
    if (rc < 0) {
        conn_close(c, uv_strerror(rc));
        return NULL;
    }
    return c;
}

int dotpool_send(struct dotpool *p, struct dotpool_query *q, uint8_t *msg, size_t len)
{
    if (len < 12 || len > DNSMSG_SMALL_MAX)
        return -EINVAL;
    q->msg = msg;
    q->len = (uint16_t)len;
    q->resent = false;
    return pool_place(p, q);
}

/* q (its msg set) on a connection with room: written now when it is open, else when it is. */
static int pool_place(struct dotpool *p, struct dotpool_query *q)
{
    if (p->closing)
        return -ESHUTDOWN;
    if (uv_now(p->loop) < p->retry_at)
        return -EAGAIN;
    struct dotpool_conn *c = p->conns;
    while (c && c->inflight >= DOTPOOL_SLOTS)
        c = c->next;
    if (!c && p->nconns >= DOTPOOL_MAX_CONNS)
        return -EBUSY;
    if (!c && !(c = conn_open(p)))
        return -ECONNREFUSED;
    /* The caller's random ID, moved to the nearest free slot: unique on this connection. */
    uint8_t *msg = q->msg;
    uint16_t id = (uint16_t)(msg[0] << 8 | msg[1]);
    while (c->slot[id & SLOT_MASK])
        id = (uint16_t)((id & ~SLOT_MASK) | ((id + 1) & SLOT_MASK));
    msg[0] = (uint8_t)(id >> 8);
    msg[1] = (uint8_t)id;
    q->conn = c;
    q->id = id;
    c->slot[id & SLOT_MASK] = q;
    if (c->state == OPEN && c->inflight == 0) {
        uv_timer_stop(&c->timer); /* no longer idle */
        c->quiet = true;
    }
    c->inflight++;
    if (c->state == OPEN) {
        if (conn_write_query(c, q) < 0)
            conn_fail_tls(c);
        else
            conn_flush(c);
    }
    return 0;
}

void dotpool_cancel(struct dotpool_query *q)
{
    struct dotpool_conn *c = q->conn;
    if (!c)
        return;
    c->slot[q->id & SLOT_MASK] = NULL;
    c->inflight--;
    q->conn = NULL;
    if (c->inflight == 0 && c->state == OPEN)
        uv_timer_start(&c->timer, conn_timer, DOTPOOL_IDLE_MS, 0);
}

void dotpool_timed_out(struct dotpool_query *q)
{
    struct dotpool_conn *c = q->conn;
    if (!c)
        return;
    dotpool_cancel(q);
    if (uv_now(c->pool->loop) - c->answered_at < c->pool->timeout_ms)
        return;
    conn_close(c, c->state == OPEN          ? "no answer in time"
                  : c->state == HANDSHAKING ? "TLS handshake timed out"
                                            : "connect timed out");
}

void dotpool_close(struct dotpool *p)
{
    p->closing = true;
    while (p->conns)
        conn_shutdown(p->conns, NULL);
    pool_unref(p);
}
