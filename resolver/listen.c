#include "listen.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "intern.h"
#include "log.h"
#include "netaddr.h"
#include "tls.h"

/* recvmmsg: libuv splits the buffer into 64 KiB slots, one datagram each. */
#define UDP_SLOT    65536
#define UDP_BATCH   16
#define TCP_BACKLOG 128
/* Stop reading from a client that does not read its answers once this much is queued. */
#define TCP_MAX_QUEUED (256 * 1024)

/* DoT: ciphertext is read into a per-loop buffer (fed to the session at once), and an answer
 * is framed there too before it is encrypted; ciphertext goes out in chunks of TLS_OUT. */
#define TLS_BUF    (2 + 65535)
#define TLS_OUT    16384
#define TLS_RECORD 16384 /* the most plaintext one TLS record carries */

/*
 * UDP answers are queued per socket and leave together in one sendmmsg: those made while a
 * recvmmsg batch is handled at the batch's end; the others (an upstream's replies, a timer's
 * SERVFAIL or stale answer) right after the loop's round of I/O callbacks (check phase), or
 * before the loop would block again (prepare phase) when a timer made them. A forwarded answer
 * sent on its own cost twice the CPU of one sent in a batch (perf, the mixed benchmark).
 */
#define SEND_SLOT 4096 /* larger answers are sent on their own */

struct listen_udp {
    uv_udp_t handle;
    struct listen *l;
    char *buf; /* UDP_BATCH slots, reused for every batch */
    int fd;
    bool in_batch; /* inside the callbacks of one recvmmsg batch */
    unsigned nsend;
    struct mmsghdr msgs[UDP_BATCH];
    struct iovec iov[UDP_BATCH];
    struct sockaddr_storage peers[UDP_BATCH];
    uint8_t *sendbuf; /* UDP_BATCH slots of SEND_SLOT bytes */
};

struct listen_tcp {
    uv_tcp_t handle;
    struct listen *l;
    bool tls; /* a DoT listener */
};

/*
 * A client's TCP connection: lives from accept until both handles are closed and no query it
 * carried is still held (inflight == 0).
 */
struct listen_conn {
    uv_tcp_t handle;
    uv_timer_t idle;
    uv_shutdown_t shutdown;
    struct listen *l;
    struct listen_conn *prev, *next;
    struct sockaddr_storage peer;
    unsigned inflight; /* queries held by the serving side */
    unsigned handles;  /* open libuv handles: 2 until closed */
    bool closing;      /* uv_close called */
    bool reading;      /* uv_read_start in effect */
    bool eof;          /* the client sent FIN: answer what it asked, then close */
    bool processing;   /* inside conn_process: callbacks must not re-enter it */
    bool finishing;    /* uv_shutdown issued: close once queued answers are written */
    uint8_t *buf;
    size_t len, cap;

    /* DNS over TLS */
    bool dot;             /* counted against tls_max_connections */
    bool open;            /* the handshake is done */
    struct tls_conn *tls; /* the session between the socket and buf (plaintext) */
    const char *name;     /* the client's name from its SNI (interned), or NULL */
};

/* Lives from listen_start until every handle is closed and every connection freed. */
struct listen {
    uv_loop_t *loop;
    struct listen_udp *udp;
    struct listen_tcp *tcp;
    size_t n;
    struct listen_conn *conns;
    unsigned nconns;  /* allocated connections (closing ones included) */
    unsigned nopen;   /* connections not closing: the cap applies to these */
    unsigned handles; /* open UDP and TCP server handles */
    bool closing;
    struct listen_opts opts;
    listen_query_cb cb;
    void *ctx;
    struct listen_stats *stats;
    uv_check_t flush_after;    /* both active while answers made outside a batch wait */
    uv_prepare_t flush_before; /* (see SEND_SLOT); counted in handles */

    /* DNS over TLS */
    struct listen_tcp *dot; /* server handles (n_dot of them; counted in handles) */
    size_t n_dot;
    unsigned nopen_tls;  /* connections not closing: tls_max_connections applies */
    struct tls_ctx *tls; /* the certificate new connections get (a reference) */
    uint8_t *tls_buf;    /* TLS_BUF bytes: ciphertext read, or an answer being framed */
    uint8_t *tls_out;    /* TLS_OUT bytes: ciphertext on its way to the socket */
};

struct conn_write {
    uv_write_t req;
    size_t len;
    uint8_t data[];
};

struct udp_send {
    uv_udp_send_t req;
    uint8_t data[];
};

static void listen_maybe_free(struct listen *l)
{
    if (l->closing && l->handles == 0 && l->nconns == 0) {
        for (size_t i = 0; i < l->n; i++) {
            free(l->udp[i].buf);
            free(l->udp[i].sendbuf);
        }
        free(l->udp);
        free(l->tcp);
        free(l->dot);
        free(l->tls_buf);
        free(l->tls_out);
        tls_ctx_unref(l->tls);
        free(l);
    }
}

/* ---- binding ------------------------------------------------------------------------------ */

static int open_socket(int type, const struct sockaddr_storage *a, bool reuseport, char *err,
                       size_t errlen)
{
    char text[NETADDR_STRLEN];
    netaddr_format((const struct sockaddr *)a, true, text, sizeof text);
    int fd = socket(a->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket: %s", text, strerror(errno));
        return -1;
    }
    int one = 1;
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        snprintf(err, errlen, "%s: SO_REUSEPORT: %s", text, strerror(errno));
        close(fd);
        return -1;
    }
    if (a->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)a, netaddr_len((const struct sockaddr *)a)) < 0) {
        snprintf(err, errlen, "%s (%s): bind: %s", text, type == SOCK_STREAM ? "tcp" : "udp",
                 strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void close_fds(int *fds, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

void listen_addrs_free(struct listen_addr *a, size_t n, unsigned nloops)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++) {
        if (a[i].fds)
            close_fds(a[i].fds, 2 * nloops);
        free(a[i].fds);
    }
    free(a);
}

/* The port the kernel gave fd, into a. */
static void take_port(int fd, struct sockaddr_storage *a)
{
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    netaddr_set_port(a, netaddr_port((struct sockaddr *)&bound));
}

/* listen_bind, or with udp false listen_bind_tls. */
static int bind_all(const struct sockaddr_storage *addrs, size_t n, unsigned nloops, bool udp,
                    struct listen_addr **out, char *err, size_t errlen)
{
    struct listen_addr *a = calloc(n ? n : 1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    bool reuseport = nloops > 1;
    for (size_t i = 0; i < n; i++) {
        a[i].addr = addrs[i];
        a[i].fds = malloc(2 * nloops * sizeof(int));
        if (!a[i].fds) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        for (unsigned k = 0; k < 2 * nloops; k++)
            a[i].fds[k] = -1;

        /* Port 0: let the kernel pick a UDP port, then take the same port for TCP. */
        bool any_port = netaddr_port((const struct sockaddr *)&a[i].addr) == 0;
        for (int attempt = 0;; attempt++) {
            if (any_port)
                netaddr_set_port(&a[i].addr, 0);
            if (udp) {
                a[i].fds[0] = open_socket(SOCK_DGRAM, &a[i].addr, reuseport, err, errlen);
                if (a[i].fds[0] < 0)
                    goto fail;
                if (any_port)
                    take_port(a[i].fds[0], &a[i].addr);
            }
            a[i].fds[1] = open_socket(SOCK_STREAM, &a[i].addr, reuseport, err, errlen);
            if (a[i].fds[1] >= 0) {
                if (any_port && !udp)
                    take_port(a[i].fds[1], &a[i].addr);
                break;
            }
            close_fds(a[i].fds, 1);
            if (!udp || !any_port || attempt >= 20)
                goto fail;
        }
        for (unsigned k = 1; k < nloops; k++) {
            a[i].fds[2 * k] = udp ? open_socket(SOCK_DGRAM, &a[i].addr, true, err, errlen) : -1;
            if (udp && a[i].fds[2 * k] < 0)
                goto fail;
            a[i].fds[2 * k + 1] = open_socket(SOCK_STREAM, &a[i].addr, true, err, errlen);
            if (a[i].fds[2 * k + 1] < 0)
                goto fail;
        }
    }
    *out = a;
    return 0;
fail:
    listen_addrs_free(a, n, nloops);
    return -1;
}

int listen_bind(const struct sockaddr_storage *addrs, size_t n, unsigned nloops,
                struct listen_addr **out, char *err, size_t errlen)
{
    return bind_all(addrs, n, nloops, true, out, err, errlen);
}

int listen_bind_tls(const struct sockaddr_storage *addrs, size_t n, unsigned nloops,
                    struct listen_addr **out, char *err, size_t errlen)
{
    return bind_all(addrs, n, nloops, false, out, err, errlen);
}

/* ---- responses ---------------------------------------------------------------------------- */

static void udp_sent(uv_udp_send_t *req, int status)
{
    struct udp_send *s = (struct udp_send *)req;
    if (status < 0 && status != UV_ECANCELED)
        log_debug("listen", "udp send: %s", uv_strerror(status));
    free(s);
}

static void conn_process(struct listen_conn *c);

static void conn_written(uv_write_t *req, int status)
{
    struct listen_conn *c = req->data;
    if (status < 0 && status != UV_ECANCELED)
        log_debug("listen", "tcp write: %s", uv_strerror(status));
    free(req);
    /* Room in the write queue again: read more queries if reading had paused for it. */
    if (!c->closing && status == 0)
        conn_process(c);
}

bool listen_origin_open(const struct listen_origin *o)
{
    if (o->udp)
        return !o->udp->l->closing;
    return o->conn && !o->conn->closing;
}

/* One answer now; queued in libuv (a copy) when the socket buffer is full. */
static void udp_send_one(struct listen_udp *u, const uint8_t *pkt, size_t len,
                         const struct sockaddr *peer)
{
    uv_buf_t b = uv_buf_init((char *)pkt, (unsigned)len);
    int rc = uv_udp_try_send(&u->handle, &b, 1, peer);
    if (rc == UV_EAGAIN || rc == UV_ENOSYS) {
        struct udp_send *s = malloc(sizeof *s + len);
        if (!s) {
            u->l->stats->send_errors++;
            return;
        }
        memcpy(s->data, pkt, len);
        b = uv_buf_init((char *)s->data, (unsigned)len);
        rc = uv_udp_send(&s->req, &u->handle, &b, 1, peer, udp_sent);
        if (rc < 0)
            free(s);
    }
    if (rc < 0) {
        u->l->stats->send_errors++;
        log_debug("listen", "udp send: %s", uv_strerror(rc));
    }
}

/* Send the answers queued during a batch: one system call for all of them. */
static void udp_flush(struct listen_udp *u)
{
    unsigned i = 0;
    while (i < u->nsend) {
        int sent = sendmmsg(u->fd, &u->msgs[i], u->nsend - i, MSG_DONTWAIT);
        if (sent > 0) {
            i += (unsigned)sent;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            break;                  /* the rest through libuv's queue, below */
        u->l->stats->send_errors++; /* this one cannot be sent (e.g. unreachable): next */
        log_debug("listen", "udp send: %s", strerror(errno));
        i++;
    }
    for (; i < u->nsend; i++)
        udp_send_one(u, u->iov[i].iov_base, u->iov[i].iov_len,
                     (const struct sockaddr *)&u->peers[i]);
    u->nsend = 0;
}

/* Send the answers made outside a batch (a batch sends its own before it ends). */
static void flush_queued(struct listen *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->udp[i].nsend)
            udp_flush(&l->udp[i]);
    uv_check_stop(&l->flush_after);
    uv_prepare_stop(&l->flush_before);
}

static void flush_after_cb(uv_check_t *h)
{
    flush_queued(h->data);
}

static void flush_before_cb(uv_prepare_t *h)
{
    flush_queued(h->data);
}

/*
 * Write bufs as far as the socket takes them now and queue a copy of the rest. Order is kept:
 * once anything is queued, uv_try_write takes nothing until the queue has drained.
 */
static void conn_send(struct listen_conn *c, const uv_buf_t *bufs, unsigned nbufs)
{
    int done = uv_try_write((uv_stream_t *)&c->handle, bufs, nbufs);
    if (done == UV_EAGAIN || done == UV_ENOSYS)
        done = 0;
    if (done < 0) {
        c->l->stats->send_errors++;
        return;
    }
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    if ((size_t)done == total)
        return;
    /* Queue what the kernel did not take. */
    size_t rest = total - (size_t)done, skip = (size_t)done, at = 0;
    struct conn_write *w = malloc(sizeof *w + rest);
    if (!w) {
        c->l->stats->send_errors++;
        return;
    }
    w->len = rest;
    for (unsigned i = 0; i < nbufs; i++) {
        size_t n = bufs[i].len;
        if (skip >= n) {
            skip -= n;
            continue;
        }
        memcpy(w->data + at, bufs[i].base + skip, n - skip);
        at += n - skip;
        skip = 0;
    }
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)rest);
    w->req.data = c;
    if (uv_write(&w->req, (uv_stream_t *)&c->handle, &b, 1, conn_written) < 0) {
        c->l->stats->send_errors++;
        free(w);
    }
}

/* Send whatever ciphertext the session has waiting (handshake, answers, tickets, alerts). */
static void tls_flush(struct listen_conn *c)
{
    size_t n;
    while ((n = tls_conn_take(c->tls, c->l->tls_out, TLS_OUT)) > 0) {
        uv_buf_t b = uv_buf_init((char *)c->l->tls_out, (unsigned)n);
        conn_send(c, &b, 1);
    }
}

/* A DoT answer: framed as over TCP, in one TLS record (two writes would make two). */
static void tls_respond(struct listen_conn *c, const uint8_t prefix[2], const uint8_t *pkt,
                        size_t len)
{
    uint8_t *frame = c->l->tls_buf;
    memcpy(frame, prefix, 2);
    memcpy(frame + 2, pkt, len);
    if (tls_conn_write(c->tls, frame, len + 2) < 0) {
        c->l->stats->send_errors++; /* the session failed or is shutting down */
        return;
    }
    tls_flush(c);
}

const char *listen_origin_name(const struct listen_origin *o)
{
    return o->conn ? o->conn->name : NULL;
}

void listen_respond(const struct listen_origin *o, const uint8_t *pkt, size_t len)
{
    if (o->udp) {
        struct listen_udp *u = o->udp;
        if (u->l->closing)
            return;
        const struct sockaddr *peer = (const struct sockaddr *)&o->peer;
        if (u->sendbuf && len <= SEND_SLOT) {
            if (u->nsend == UDP_BATCH)
                udp_flush(u);
            if (!u->in_batch && !uv_is_active((uv_handle_t *)&u->l->flush_after)) {
                uv_check_start(&u->l->flush_after, flush_after_cb);
                uv_prepare_start(&u->l->flush_before, flush_before_cb);
            }
            unsigned k = u->nsend++;
            uint8_t *slot = u->sendbuf + (size_t)k * SEND_SLOT;
            memcpy(slot, pkt, len);
            memcpy(&u->peers[k], peer, netaddr_len(peer));
            u->iov[k] = (struct iovec){.iov_base = slot, .iov_len = len};
            u->msgs[k].msg_hdr = (struct msghdr){
                .msg_name = &u->peers[k],
                .msg_namelen = netaddr_len(peer),
                .msg_iov = &u->iov[k],
                .msg_iovlen = 1,
            };
            return;
        }
        udp_send_one(u, pkt, len, peer);
        return;
    }
    struct listen_conn *c = o->conn;
    if (!c || c->closing || len > 65535)
        return;
    uint8_t prefix[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    if (c->tls) {
        tls_respond(c, prefix, pkt, len);
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init((char *)prefix, 2), uv_buf_init((char *)pkt, (unsigned)len)};
    conn_send(c, bufs, 2);
}

/* ---- TCP connections ---------------------------------------------------------------------- */

static void conn_close(struct listen_conn *c);

static void conn_maybe_free(struct listen_conn *c)
{
    if (c->handles > 0 || c->inflight > 0)
        return;
    struct listen *l = c->l;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    l->nconns--;
    tls_conn_free(c->tls);
    free(c->buf);
    free(c);
    listen_maybe_free(l);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct listen_conn *c = h->data;
    c->handles--;
    conn_maybe_free(c);
}

static void conn_close(struct listen_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->dot)
        c->l->nopen_tls--;
    else
        c->l->nopen--;
    uv_close((uv_handle_t *)&c->handle, conn_handle_closed);
    uv_close((uv_handle_t *)&c->idle, conn_handle_closed);
}

void listen_hold(const struct listen_origin *from, struct listen_origin *copy)
{
    *copy = *from;
    if (copy->conn)
        copy->conn->inflight++;
}

void listen_release(struct listen_origin *o)
{
    struct listen_conn *c = o->conn;
    o->conn = NULL;
    o->udp = NULL;
    if (!c)
        return;
    c->inflight--;
    if (c->closing) {
        conn_maybe_free(c);
        return;
    }
    conn_process(c); /* takes buffered queries, resumes reading, or finishes after EOF */
}

static size_t conn_queued(const struct listen_conn *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->handle);
}

static void conn_idle(uv_timer_t *t)
{
    struct listen_conn *c = t->data;
    if (c->inflight > 0 || conn_queued(c) > 0 || c->finishing) {
        /* Still answering: the client is waiting on us, not idle. */
        uv_timer_start(&c->idle, conn_idle, c->l->opts.tcp_idle_ms, 0);
        return;
    }
    c->l->stats->tcp_idle_closed++;
    if (c->tls && c->open) {
        /* A clean end for DoT: close_notify first (it fits: nothing else is queued). */
        tls_conn_shutdown(c->tls);
        tls_flush(c);
    }
    conn_close(c);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct listen_conn *c = h->data;
    size_t want = c->len + 4096;
    if (c->len >= 2) {
        size_t frame = 2u + (size_t)(c->buf[0] << 8 | c->buf[1]);
        if (frame > want)
            want = frame;
    }
    if (want > c->cap) {
        uint8_t *n = realloc(c->buf, want);
        if (!n) {
            buf->base = NULL;
            buf->len = 0;
            return;
        }
        c->buf = n;
        c->cap = want;
    }
    buf->base = (char *)c->buf + c->len;
    buf->len = c->cap - c->len;
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void tls_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void tls_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_read_start(struct listen_conn *c)
{
    c->reading = uv_read_start((uv_stream_t *)&c->handle, c->tls ? tls_alloc : conn_alloc,
                               c->tls ? tls_read : conn_read) == 0;
}

static void conn_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)status;
    conn_close(req->data);
}

/* Close once the queued answers are written (RFC 7766 6.2.1); DoT says close_notify first. */
static void conn_finish(struct listen_conn *c)
{
    c->finishing = true;
    if (c->tls) {
        tls_conn_shutdown(c->tls);
        tls_flush(c);
    }
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->handle, conn_shutdown_done) < 0)
        conn_close(c);
}

/*
 * Hand every complete frame in the buffer to the callback while the connection has room (in
 * flight below the cap, write queue below TCP_MAX_QUEUED); then read or pause accordingly, and
 * after the client's EOF close once everything is answered and written. Callbacks that answer
 * at once (errors, blocked names) release their hold inside the loop: the `processing` flag
 * keeps them from re-entering, and the loop re-checks the room itself.
 */
static void conn_process(struct listen_conn *c)
{
    struct listen *l = c->l;
    if (c->processing || c->closing)
        return;
    c->processing = true;
    size_t off = 0;
    struct listen_origin o = {.peer = c->peer, .udp = NULL, .conn = c};
    while (!c->closing && c->len - off >= 2 && c->inflight < l->opts.tcp_max_inflight &&
           conn_queued(c) < TCP_MAX_QUEUED) {
        size_t m = (size_t)(c->buf[off] << 8 | c->buf[off + 1]);
        if (c->len - off < 2 + m)
            break;
        l->stats->tcp_in++;
        l->cb(l->ctx, &o, c->buf + off + 2, m);
        off += 2 + m;
    }
    c->processing = false;
    if (c->closing)
        return;
    if (off > 0) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    bool room = c->inflight < l->opts.tcp_max_inflight && conn_queued(c) < TCP_MAX_QUEUED;
    bool want = room && !c->eof;
    if (want && !c->reading) {
        conn_read_start(c);
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->handle);
        c->reading = false;
    }
    bool pending_frame = c->len >= 2 && c->len >= 2u + (size_t)(c->buf[0] << 8 | c->buf[1]);
    if (c->eof && c->inflight == 0 && !pending_frame && !c->finishing)
        conn_finish(c); /* queued answers reach the client before the FIN */
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct listen_conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF) {
            log_debug("listen", "tcp read: %s", uv_strerror((int)nread));
            conn_close(c);
            return;
        }
        /* The client is done sending; answer what it asked, then close. */
        c->eof = true;
        conn_process(c);
        return;
    }
    c->len += (size_t)nread;
    uv_timer_start(&c->idle, conn_idle, c->l->opts.tcp_idle_ms, 0);
    conn_process(c);
}

/* ---- DNS over TLS: the session between the socket and the framing ------------------------- */

static void tls_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct listen_conn *c = h->data;
    *buf = uv_buf_init((char *)c->l->tls_buf, TLS_BUF);
}

/* Room for at least `want` more bytes of plaintext in the framing buffer. 0 or -ENOMEM. */
static int conn_reserve(struct listen_conn *c, size_t want)
{
    if (c->cap - c->len >= want)
        return 0;
    uint8_t *n = realloc(c->buf, c->len + want);
    if (!n)
        return -ENOMEM;
    c->buf = n;
    c->cap = c->len + want;
    return 0;
}

/* The session failed (not TLS, a bad handshake or record): send its alert, then close. */
static void tls_fail(struct listen_conn *c, int err)
{
    c->l->stats->tls_failed++;
    if (log_enabled(LOG_DEBUG)) {
        char peer[NETADDR_STRLEN];
        netaddr_format((const struct sockaddr *)&c->peer, true, peer, sizeof peer);
        log_debug("listen", "%s: TLS: %s", peer,
                  err == -EPROTO ? tls_conn_error(c->tls) : strerror(-err));
    }
    tls_flush(c);
    c->eof = true; /* nothing more is read */
    c->len = 0;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->handle);
        c->reading = false;
    }
    if (!c->finishing)
        conn_finish(c);
}

/*
 * Ciphertext from the socket: feed it to the session, decrypt everything it yields into the
 * framing buffer, send what the session has to say, then go on as over TCP. The plaintext
 * held is at most a partial frame plus one read: reading stops with the TCP caps.
 */
static void tls_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct listen_conn *c = s->data;
    if (nread <= 0) {
        conn_read(s, nread, buf); /* EOF and errors as over TCP */
        return;
    }
    ssize_t r = tls_conn_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread);
    while (r == 0 && (r = conn_reserve(c, TLS_RECORD)) == 0 &&
           (r = tls_conn_read(c->tls, c->buf + c->len, c->cap - c->len)) > 0) {
        c->len += (size_t)r;
        r = 0;
    }
    tls_flush(c);
    if (r != 0 && r != -EAGAIN) {
        tls_fail(c, (int)r);
        return;
    }
    enum tls_state st = tls_conn_state(c->tls);
    if (st == TLS_CLOSED)
        c->eof = true; /* close_notify: answer what it asked, then close */
    if (!c->open && (st == TLS_OPEN || st == TLS_CLOSED)) {
        c->open = true;
        char name[INTERN_LEN + 1];
        size_t n = tls_conn_client_name(c->tls, name, sizeof name);
        c->name = n ? intern(name, n) : NULL; /* NULL: none, or no room left for it */
    }
    /* Until the handshake is done the timer runs from accept: a handshake that trickles in
     * or never completes is closed like an idle connection. */
    if (c->open)
        uv_timer_start(&c->idle, conn_idle, c->l->opts.tcp_idle_ms, 0);
    conn_process(c);
}

static void reject_closed(uv_handle_t *h)
{
    free(h);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct listen_tcp *t = server->data;
    struct listen *l = t->l;
    if (status < 0) {
        log_warn("listen", "accept: %s", uv_strerror(status));
        return;
    }
    unsigned *nopen = t->tls ? &l->nopen_tls : &l->nopen;
    if (*nopen >= (t->tls ? l->opts.tls_max_connections : l->opts.tcp_max_connections)) {
        /* Over the cap: accept and close at once, so the backlog does not fill. */
        uv_tcp_t *reject = malloc(sizeof *reject);
        if (!reject)
            return;
        uv_tcp_init(l->loop, reject);
        if (uv_accept(server, (uv_stream_t *)reject) == 0)
            *(t->tls ? &l->stats->tls_refused : &l->stats->tcp_refused) += 1;
        uv_close((uv_handle_t *)reject, reject_closed);
        return;
    }
    struct listen_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->l = l;
    uv_tcp_init(l->loop, &c->handle);
    uv_timer_init(l->loop, &c->idle);
    c->handle.data = c;
    c->idle.data = c;
    c->handles = 2;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    c->dot = t->tls;
    (*nopen)++;
    if (uv_accept(server, (uv_stream_t *)&c->handle) < 0 ||
        (t->tls && !(c->tls = tls_conn_new(l->tls, NULL)))) {
        conn_close(c);
        return;
    }
    int plen = sizeof c->peer;
    uv_tcp_getpeername(&c->handle, (struct sockaddr *)&c->peer, &plen);
    uv_tcp_nodelay(&c->handle, 1);
    *(t->tls ? &l->stats->tls_accepted : &l->stats->tcp_accepted) += 1;
    uv_timer_start(&c->idle, conn_idle, l->opts.tcp_idle_ms, 0);
    conn_read_start(c);
}

/* ---- UDP ---------------------------------------------------------------------------------- */

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct listen_udp *u = h->data;
    buf->base = u->buf;
    buf->len = (size_t)UDP_SLOT * UDP_BATCH;
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                     unsigned flags)
{
    struct listen_udp *u = h->data;
    if (nread == 0 && addr == NULL) {
        /* End of a batch (or nothing to read; the buffer is ours, nothing to free): the
         * answers made meanwhile leave now, together. */
        u->in_batch = false;
        if (u->nsend)
            udp_flush(u);
        return;
    }
    if (nread < 0) {
        log_debug("listen", "udp receive: %s", uv_strerror((int)nread));
        return;
    }
    u->in_batch = true; /* libuv ends every batch of datagrams with the call above */
    if (flags & UV_UDP_PARTIAL)
        return; /* longer than 64 KiB: not a DNS query */
    struct listen_origin o = {.udp = u, .conn = NULL};
    memcpy(&o.peer, addr, netaddr_len(addr));
    u->l->stats->udp_in++;
    u->l->cb(u->l->ctx, &o, (const uint8_t *)buf->base, (size_t)nread);
}

static void server_closed(uv_handle_t *h)
{
    struct listen *l = h->data;
    l->handles--;
    listen_maybe_free(l);
}

/* A listening TCP socket (DNS, or DoT when tls) on *fd, which it owns from here on. */
static void tcp_open(struct listen *l, struct listen_tcp *t, int *fd, const char *text, bool tls)
{
    t->l = l;
    t->tls = tls;
    uv_tcp_init(l->loop, &t->handle);
    t->handle.data = t;
    l->handles++;
    int rc = uv_tcp_open(&t->handle, *fd);
    if (rc == 0) {
        *fd = -1;
        rc = uv_listen((uv_stream_t *)&t->handle, TCP_BACKLOG, on_connection);
    }
    if (rc < 0)
        log_error("listen", "%s (%s): %s", text, tls ? "dot" : "tcp", uv_strerror(rc));
}

struct listen *listen_start(uv_loop_t *loop, struct listen_addr *addrs, size_t n,
                            unsigned loop_index, const struct listen_opts *opts, listen_query_cb cb,
                            void *ctx, struct listen_stats *stats)
{
    struct listen *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->loop = loop;
    l->opts = *opts;
    l->cb = cb;
    l->ctx = ctx;
    l->stats = stats;
    l->udp = calloc(n, sizeof *l->udp);
    l->tcp = calloc(n, sizeof *l->tcp);
    if (!l->udp || !l->tcp) {
        free(l->udp);
        free(l->tcp);
        free(l);
        return NULL;
    }
    l->n = n;
    uv_check_init(loop, &l->flush_after);
    uv_prepare_init(loop, &l->flush_before);
    l->flush_after.data = l->flush_before.data = l;
    l->handles += 2;
    for (size_t i = 0; i < n; i++) {
        struct listen_udp *u = &l->udp[i];
        struct listen_tcp *t = &l->tcp[i];
        int *fd = &addrs[i].fds[2 * loop_index];
        char text[NETADDR_STRLEN];
        netaddr_format((const struct sockaddr *)&addrs[i].addr, true, text, sizeof text);

        u->l = l;
        u->buf = malloc((size_t)UDP_SLOT * UDP_BATCH);
        u->sendbuf = malloc((size_t)SEND_SLOT * UDP_BATCH); /* NULL: answers go one by one */
        uv_udp_init_ex(loop, &u->handle, AF_UNSPEC | UV_UDP_RECVMMSG);
        u->handle.data = u;
        l->handles++;
        int rc = u->buf ? uv_udp_open(&u->handle, fd[0]) : UV_ENOMEM;
        if (rc == 0) {
            u->fd = fd[0];
            fd[0] = -1;
            rc = uv_udp_recv_start(&u->handle, udp_alloc, udp_recv);
        }
        if (rc < 0)
            log_error("listen", "%s (udp): %s", text, uv_strerror(rc));

        tcp_open(l, t, &fd[1], text, false);
    }
    return l;
}

void listen_set_opts(struct listen *l, const struct listen_opts *opts)
{
    l->opts = *opts;
}

int listen_start_tls(struct listen *l, struct listen_addr *addrs, size_t n, unsigned loop_index,
                     struct tls_ctx *ctx)
{
    if (n == 0)
        return 0;
    l->dot = calloc(n, sizeof *l->dot);
    l->tls_buf = malloc(TLS_BUF);
    l->tls_out = malloc(TLS_OUT);
    if (!l->dot || !l->tls_buf || !l->tls_out) {
        free(l->dot);
        free(l->tls_buf);
        free(l->tls_out);
        l->dot = NULL;
        l->tls_buf = l->tls_out = NULL;
        return -ENOMEM;
    }
    l->tls = tls_ctx_ref(ctx);
    l->n_dot = n;
    for (size_t i = 0; i < n; i++) {
        char text[NETADDR_STRLEN];
        netaddr_format((const struct sockaddr *)&addrs[i].addr, true, text, sizeof text);
        tcp_open(l, &l->dot[i], &addrs[i].fds[2 * loop_index + 1], text, true);
    }
    return 0;
}

void listen_set_tls(struct listen *l, struct tls_ctx *ctx)
{
    if (!l->tls)
        return; /* no DoT listener */
    tls_ctx_ref(ctx);
    tls_ctx_unref(l->tls);
    l->tls = ctx;
}

void listen_close(struct listen *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->udp[i].nsend)
            udp_flush(&l->udp[i]);
    l->closing = true;
    uv_close((uv_handle_t *)&l->flush_after, server_closed);
    uv_close((uv_handle_t *)&l->flush_before, server_closed);
    for (size_t i = 0; i < l->n; i++) {
        l->udp[i].handle.data = l;
        l->tcp[i].handle.data = l;
        uv_close((uv_handle_t *)&l->udp[i].handle, server_closed);
        uv_close((uv_handle_t *)&l->tcp[i].handle, server_closed);
    }
    for (size_t i = 0; i < l->n_dot; i++) {
        l->dot[i].handle.data = l;
        uv_close((uv_handle_t *)&l->dot[i].handle, server_closed);
    }
    for (struct listen_conn *c = l->conns; c; c = c->next)
        conn_close(c);
    listen_maybe_free(l);
}
