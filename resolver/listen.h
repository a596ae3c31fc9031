/*
 * listen: the client-facing sockets of one serving loop.
 *
 * UDP (recvmmsg batches through libuv) and TCP (2-byte length framing, any number of pipelined
 * queries per connection, an idle timeout, a cap on connections per loop and on queries in
 * flight per connection). Every query's bytes go to one callback with a `struct listen_origin`
 * saying where to send the answer; the answer goes back through listen_respond(), and a TCP
 * connection stays allocated until every query it carried has been answered or released.
 *
 * DNS over TLS (RFC 7858) is TCP with a TLS session (tls.h, on memory buffers) between the
 * socket and the same framing: the same pipelining, caps and idle timeout (which also bounds a
 * handshake that never completes), its own connection cap. Only the byte transport differs:
 * the query callback sees a DoT query as a TCP one, plus the client's name from its SNI.
 *
 * Sockets are bound by listen_bind() in the main thread (before privileges are dropped), one
 * set per loop with SO_REUSEPORT, and handed to each loop's listen_start().
 */
#ifndef TELESINK_LISTEN_H
#define TELESINK_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* One address, bound once per serving loop: fds[2*i] is UDP, fds[2*i+1] is TCP of loop i. */
struct listen_addr {
    struct sockaddr_storage addr; /* as bound: port 0 in the config becomes the real port */
    int *fds;
};

/*
 * Bind every address for nloops loops. Port 0 picks a port that is free for both UDP and TCP.
 * Returns 0, or -1 with a message in err (nothing is left open).
 */
int listen_bind(const struct sockaddr_storage *addrs, size_t n, unsigned nloops,
                struct listen_addr **out, char *err, size_t errlen);
/* The same for DNS-over-TLS addresses: TCP only (the UDP fds stay -1). */
int listen_bind_tls(const struct sockaddr_storage *addrs, size_t n, unsigned nloops,
                    struct listen_addr **out, char *err, size_t errlen);
/* Close the fds not yet handed to a loop (fd -1 marks those taken) and free the array. */
void listen_addrs_free(struct listen_addr *a, size_t n, unsigned nloops);

struct listen_udp;
struct listen_conn;

/* Where a query came from and where its answer goes. Copied into each query. */
struct listen_origin {
    struct sockaddr_storage peer;
    struct listen_udp *udp;   /* set for UDP */
    struct listen_conn *conn; /* set for TCP; a reference while held */
};

struct listen_stats {
    uint64_t udp_in, tcp_in; /* queries received */
    uint64_t tcp_accepted, tcp_refused, tcp_idle_closed;
    uint64_t send_errors;
    uint64_t tls_accepted, tls_refused; /* DoT connections, as tcp_* */
    uint64_t tls_failed;                /* DoT sessions closed on a TLS error (bad handshake) */
};

typedef void (*listen_query_cb)(void *ctx, const struct listen_origin *from, const uint8_t *pkt,
                                size_t len);

struct listen_opts {
    unsigned tcp_idle_ms;
    unsigned tcp_max_connections;
    unsigned tcp_max_inflight; /* per connection: reading pauses at this many */
    unsigned tls_max_connections;
};

struct listen;

/* Open this loop's sockets (fds are owned from here on and set to -1 in addrs). */
struct listen *listen_start(uv_loop_t *loop, struct listen_addr *addrs, size_t n,
                            unsigned loop_index, const struct listen_opts *opts, listen_query_cb cb,
                            void *ctx, struct listen_stats *stats);
void listen_set_opts(struct listen *l, const struct listen_opts *opts);

struct tls_ctx;
/*
 * Open this loop's DNS-over-TLS sockets (bound by listen_bind_tls), serving ctx's certificate
 * (a reference is taken). 0, or -ENOMEM (nothing opened).
 */
int listen_start_tls(struct listen *l, struct listen_addr *addrs, size_t n, unsigned loop_index,
                     struct tls_ctx *ctx);
/* New DoT connections get ctx (a renewed certificate) from now on; open ones keep theirs. */
void listen_set_tls(struct listen *l, struct tls_ctx *ctx);

/* For a DoT query: the client's own name from its SNI (tls_conn_client_name), else NULL. */
const char *listen_origin_name(const struct listen_origin *o);

/*
 * Keep `from` usable after the callback returns (TCP: takes a reference on the connection).
 * Every hold is paired with one listen_release().
 */
void listen_hold(const struct listen_origin *from, struct listen_origin *copy);
void listen_release(struct listen_origin *o);

/* Send an answer. For TCP the length prefix is added here. A closed connection drops it. */
void listen_respond(const struct listen_origin *o, const uint8_t *pkt, size_t len);

/* True when the answer can still be delivered (UDP, or an open TCP connection). */
bool listen_origin_open(const struct listen_origin *o);

/* Stop reading and close every socket and connection; freed from the close callbacks. */
void listen_close(struct listen *l);

#endif
