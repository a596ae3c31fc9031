/*
 * tls: DNS-over-TLS sessions (RFC 7858), for the DoT listener and for DoT upstreams.
 *
 * A tls_conn is one TLS session driven entirely through memory: OpenSSL never sees a socket.
 * The network side (listen.c, upstream.c) owns the socket and moves bytes:
 *
 *   socket read  --ciphertext-->  tls_conn_feed()               drives the handshake
 *                                 tls_conn_read()  --plaintext-->  DNS framing (2-byte lengths)
 *   DNS answer   --plaintext-->   tls_conn_write()
 *                                 tls_conn_take()  --ciphertext-->  socket write
 *
 * Nothing here blocks, touches the event loop (no uv.h) or reads a clock: timeouts are the
 * caller's. After every feed, read and write the caller sends what tls_conn_pending() says is
 * waiting (handshake messages, session tickets, alerts, encrypted answers, close_notify).
 *
 * A read callback thus looks like:
 *
 *   tls_conn_feed(c, buf, n);          (-EPROTO: failed, see below)
 *   while ((r = tls_conn_read(c, pt, sizeof pt)) > 0) handle(pt, r);
 *   if (r == 0)        the peer sent close_notify: tls_conn_shutdown, send, close
 *   if (r == -EPROTO)  failed (tls_conn_error says why): send what is pending (an alert), close
 *   if (r == -EAGAIN)  nothing more until the next socket read (handshake or a partial record)
 *   send tls_conn_take(c, ...) while tls_conn_pending(c) > 0
 *
 * A context holds the configuration shared by many sessions (certificate and key, or the
 * trusted CAs). Contexts are reference-counted and immutable once sessions use them: a SIGHUP
 * builds a new server context from the renewed certificate and swaps it in for new connections
 * (how the pointer reaches the serving threads is the caller's business), while every session
 * keeps a reference to the context it was made from. Refcounts are atomic; a context may be
 * used from several threads, one tls_conn only from one thread at a time.
 *
 * Memory is bounded by what the caller does: plaintext is read into the caller's buffers;
 * ciphertext fed and not yet read is at most TLS_FEED_MAX (tls_conn_feed refuses more, which a
 * caller that reads until -EAGAIN after each feed of at most 64 KiB never sees; one that stops
 * reading plaintext, e.g. with too many queries in flight, stops reading the socket too);
 * ciphertext out grows only by what the caller writes (plus record overhead) and the
 * protocol's own messages, so the caller caps it by not writing while tls_conn_pending() is
 * large. OpenSSL's buffers are released while a session is idle.
 */
#ifndef TELESINK_TLS_H
#define TELESINK_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The most ciphertext fed and not yet read a session holds (a few 16 KiB records). */
#define TLS_FEED_MAX (128u * 1024u)

struct tls_ctx;
struct tls_conn;

/*
 * A server context: the certificate chain (PEM: the leaf first, then intermediates) and its
 * private key (PEM). TLS 1.2 and 1.3; ALPN "dot" is accepted when the client offers it, and a
 * client offering no ALPN (or other protocols only) is served without it; any SNI is accepted
 * (tls_conn_sni reads it); resumption by stateless session tickets (keys per context, so a
 * reload starts new tickets). NULL on error, with a message naming the file and OpenSSL's
 * reason in err (e.g. "/etc/telesink/key.pem: key values mismatch"). Holds one reference.
 */
struct tls_ctx *tls_server_ctx(const char *cert_pem_path, const char *key_pem_path, char *err,
                               size_t errlen);

/*
 * A client context: the peer's chain is verified against the CAs in ca_file (PEM), or against
 * the system store (OpenSSL's default paths) when ca_file is NULL; each session also verifies
 * the host name given to tls_conn_new. TLS 1.2 and 1.3, ALPN "dot" offered. NULL on error, with
 * a message in err. Holds one reference.
 */
struct tls_ctx *tls_client_ctx(const char *ca_file, char *err, size_t errlen);

/* Limit a context to TLS 1.2 (version 12) or allow 1.3 again (13, the default); before use.
 * 0, or -EINVAL for another version. For tests, benchmarks and odd peers. */
int tls_ctx_set_max_version(struct tls_ctx *ctx, unsigned version);

/* A server context's certificate, for logs: its DNS names, serial and expiry
 * ("*.dns.example.org; serial 03A1..., expires 2027-02-20 06:00 UTC"). "" for a client context. */
const char *tls_ctx_describe(const struct tls_ctx *ctx);

/* Take another reference (returns ctx); drop one (the last frees the context). NULL is ignored. */
struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx);
void tls_ctx_unref(struct tls_ctx *ctx);

enum tls_state {
    TLS_HANDSHAKING, /* the handshake is under way: feed the peer's bytes, send what is pending */
    TLS_OPEN,        /* handshake done: application data flows both ways */
    TLS_CLOSED,      /* the peer sent close_notify: nothing more will be read */
    TLS_FAILED,      /* fatal error (tls_conn_error says which): send what is pending, close */
};

/*
 * A session on ctx, which it holds a reference to until tls_conn_free. On a server context
 * host is ignored (pass NULL). On a client context host is the name the peer's certificate must
 * match
 * (also sent as SNI) or an IP address literal (matched against the certificate's IP addresses;
 * no SNI); NULL verifies the chain only. A client session has its ClientHello pending at once:
 * take and send it as soon as the socket is connected. NULL when out of memory or when host is
 * unusable (e.g. longer than 255 bytes).
 */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *host);
void tls_conn_free(struct tls_conn *c);

/*
 * Ciphertext read from the socket. Advances the handshake (check tls_conn_state: it may now be
 * TLS_OPEN, and there may be output to send). 0 when taken (also when discarded because the
 * peer already closed), -EPROTO when the session has failed (now or before), -ENOBUFS when it
 * would hold more than TLS_FEED_MAX unread (nothing taken: read first), -ENOMEM.
 */
int tls_conn_feed(struct tls_conn *c, const uint8_t *data, size_t len);

/*
 * Decrypted application data into buf (at most cap bytes). Like read(2): > 0 bytes read (call
 * again: more may be buffered), 0 the peer closed with close_notify (every byte it sent before
 * has been returned; whatever follows the close_notify is ignored), -EAGAIN nothing more until
 * more ciphertext is fed (also while the handshake is under way), -EPROTO failed
 * (tls_conn_error says why).
 */
ssize_t tls_conn_read(struct tls_conn *c, uint8_t *buf, size_t cap);

/*
 * Encrypt len bytes of application data; all of it is then pending as ciphertext (at most 16 KiB
 * per record). 0 on success, -EAGAIN while the handshake is under way (nothing written: write
 * once the state is TLS_OPEN), -EPIPE after tls_conn_shutdown, -EPROTO failed.
 */
int tls_conn_write(struct tls_conn *c, const uint8_t *data, size_t len);

/* Ciphertext waiting to be sent, in bytes. */
size_t tls_conn_pending(const struct tls_conn *c);

/* Move up to cap bytes of pending ciphertext into buf; returns how many. */
size_t tls_conn_take(struct tls_conn *c, uint8_t *buf, size_t cap);

/*
 * Queue a close_notify (when the handshake is done and nothing failed); later writes return
 * -EPIPE. Send what is pending, then close the socket: there is no need to wait for the peer's
 * close_notify. Calling it again does nothing.
 */
void tls_conn_shutdown(struct tls_conn *c);

enum tls_state tls_conn_state(const struct tls_conn *c);

/* Why the session failed, for logs ("certificate verify failed: hostname mismatch", "wrong
 * version number", "tlsv1 alert unknown ca"); "" unless the state is TLS_FAILED. */
const char *tls_conn_error(const struct tls_conn *c);

/* Server side: the name the client sent as SNI, or NULL when it sent none or the ClientHello
 * has not arrived yet. As sent (at most 255 bytes, no NUL, otherwise unchecked): validate and
 * lower-case it before using it as a name. */
const char *tls_conn_sni(const struct tls_conn *c);

/*
 * Server side: the client's name in its SNI, when the SNI is exactly one label under a wildcard
 * name of the certificate this session serves (with *.dns.example.org, "redmi.dns.example.org"
 * gives "redmi"; "a.b.dns.example.org" and "dns.example.org" give nothing). The label must be
 * letters, digits and hyphens (at most 63); it is copied lower-cased into out, NUL-terminated.
 * Returns its length, or 0 (no SNI yet, another name, a bad label, or cap too small).
 */
size_t tls_conn_client_name(const struct tls_conn *c, char *out, size_t cap);

/* Once open: "TLSv1.2" or "TLSv1.3"; whether ALPN "dot" was agreed. */
const char *tls_conn_version(const struct tls_conn *c);
bool tls_conn_alpn_dot(const struct tls_conn *c);

#endif
