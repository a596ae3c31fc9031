/*
 * Unit tests for the TLS sessions: a test CA and certificates are made at start-up, then server
 * and client sessions run against each other purely in memory (bytes pumped between them).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "tls.h"
#include "tlscert.h"

static char dir[] = "/tmp/test_tls.XXXXXX";
static char ca_pem[64], other_ca_pem[64], server_pem[64], server_key[64], renewed_pem[64],
    renewed_key[64], garbage_pem[64];

#define HOST "redmi.dns.example.test"

static int make_certs(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", dir);
    snprintf(other_ca_pem, sizeof other_ca_pem, "%s/other-ca.pem", dir);
    snprintf(server_pem, sizeof server_pem, "%s/server.pem", dir);
    snprintf(server_key, sizeof server_key, "%s/server.key", dir);
    snprintf(renewed_pem, sizeof renewed_pem, "%s/renewed.pem", dir);
    snprintf(renewed_key, sizeof renewed_key, "%s/renewed.key", dir);
    snprintf(garbage_pem, sizeof garbage_pem, "%s/garbage.pem", dir);

    EVP_PKEY *ca_key = tc_key(), *other_key = tc_key(), *k1 = tc_key(), *k2 = tc_key();
    X509 *ca = tc_cert(ca_key, "telesink test CA", NULL, 1, NULL, NULL);
    X509 *other = tc_cert(other_key, "some other CA", NULL, 1, NULL, NULL);
    /* The certificate a phone's Private DNS name matches, and its renewal, which also covers
     * the bare name (so a test can tell which one a server presented). */
    X509 *s1 = tc_cert(k1, "dns.example.test", "DNS:*.dns.example.test", 2, ca, ca_key);
    X509 *s2 = tc_cert(k2, "dns.example.test", "DNS:*.dns.example.test,DNS:dns.example.test", 3, ca,
                       ca_key);
    tc_write(ca_pem, ca, NULL);
    tc_write(other_ca_pem, other, NULL);
    tc_write(server_pem, s1, NULL);
    tc_write(server_key, NULL, k1);
    tc_write(renewed_pem, s2, NULL);
    tc_write(renewed_key, NULL, k2);
    FILE *f = fopen(garbage_pem, "w");
    if (!f)
        return -1;
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    X509_free(ca);
    X509_free(other);
    X509_free(s1);
    X509_free(s2);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    return 0;
}

static int remove_certs(void **state)
{
    (void)state;
    const char *files[] = {ca_pem,      other_ca_pem, server_pem, server_key,
                           renewed_pem, renewed_key,  garbage_pem};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(dir);
    return 0;
}

static struct tls_ctx *server_ctx(void)
{
    char err[256] = "";
    struct tls_ctx *ctx = tls_server_ctx(server_pem, server_key, err, sizeof err);
    if (!ctx)
        fail_msg("server ctx: %s", err);
    return ctx;
}

static struct tls_ctx *client_ctx(const char *ca)
{
    char err[256] = "";
    struct tls_ctx *ctx = tls_client_ctx(ca, err, sizeof err);
    if (!ctx)
        fail_msg("client ctx: %s", err);
    return ctx;
}

/* Move every pending byte each way until neither side has anything to send. */
static void pump(struct tls_conn *a, struct tls_conn *b)
{
    static uint8_t buf[65536];
    for (;;) {
        size_t n, moved = 0;
        while ((n = tls_conn_take(a, buf, sizeof buf)) > 0) {
            int r = tls_conn_feed(b, buf, n);
            assert_true(r == 0 || r == -EPROTO);
            moved += n;
        }
        while ((n = tls_conn_take(b, buf, sizeof buf)) > 0) {
            int r = tls_conn_feed(a, buf, n);
            assert_true(r == 0 || r == -EPROTO);
            moved += n;
        }
        if (!moved)
            return;
    }
}

struct pair {
    struct tls_ctx *sctx, *cctx;
    struct tls_conn *s, *c;
};

/* A server session on sctx and a client one on cctx for host, handshake pumped through. */
static void pair_open(struct pair *p, struct tls_ctx *sctx, struct tls_ctx *cctx, const char *host)
{
    p->sctx = sctx;
    p->cctx = cctx;
    p->s = tls_conn_new(sctx, NULL);
    p->c = tls_conn_new(cctx, host);
    assert_non_null(p->s);
    assert_non_null(p->c);
    assert_int_equal(tls_conn_state(p->s), TLS_HANDSHAKING);
    assert_int_equal(tls_conn_state(p->c), TLS_HANDSHAKING);
    assert_true(tls_conn_pending(p->c) > 0); /* the ClientHello */
    pump(p->c, p->s);
}

static void pair_close(struct pair *p)
{
    tls_conn_free(p->s);
    tls_conn_free(p->c);
    tls_ctx_unref(p->sctx);
    tls_ctx_unref(p->cctx);
}

/* A growing byte string. */
struct bytes {
    uint8_t *b;
    size_t n, cap;
};

static void bytes_add(struct bytes *s, const uint8_t *p, size_t n)
{
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2;
        s->b = realloc(s->b, s->cap);
        assert_non_null(s->b);
    }
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

/* A DNS-over-TCP-framed message of some size: 2-byte length, then a pattern made from seed. */
static size_t message(unsigned seed, size_t len, uint8_t *out)
{
    out[0] = (uint8_t)(len >> 8);
    out[1] = (uint8_t)len;
    for (size_t j = 0; j < len; j++)
        out[2 + j] = (uint8_t)(seed * 31u + j * 7u);
    return len + 2;
}

/* Write n messages of varied sizes (one over 16 KiB) from c, remembering what was sent. */
static void write_messages(struct tls_conn *c, unsigned n, unsigned seed, struct bytes *sent)
{
    static uint8_t m[65537];
    for (unsigned i = 0; i < n; i++) {
        size_t len = i == 7 ? 20000 : 12 + (i * 97u + seed) % 500;
        size_t k = message(seed + i, len, m);
        assert_int_equal(tls_conn_write(c, m, k), 0);
        bytes_add(sent, m, k);
    }
}

/* Read c until it wants more input, cap bytes at a time, appending to got. */
static void drain(struct tls_conn *c, size_t cap, struct bytes *got)
{
    static uint8_t buf[65536];
    ssize_t r;
    while ((r = tls_conn_read(c, buf, cap)) > 0)
        bytes_add(got, buf, (size_t)r);
    assert_int_equal(r, -EAGAIN);
}

/* Take all of from's pending ciphertext. */
static void take_all(struct tls_conn *from, struct bytes *wire)
{
    uint8_t buf[4096];
    size_t n;
    while ((n = tls_conn_take(from, buf, sizeof buf)) > 0)
        bytes_add(wire, buf, n);
    assert_int_equal(tls_conn_pending(from), 0);
}

static void assert_same(const struct bytes *a, const struct bytes *b)
{
    assert_int_equal(a->n, b->n);
    assert_memory_equal(a->b, b->b, a->n);
}

static void handshake(unsigned max_version, const char *version)
{
    struct tls_ctx *cctx = client_ctx(ca_pem);
    if (max_version)
        assert_int_equal(tls_ctx_set_max_version(cctx, max_version), 0);
    struct pair p;
    pair_open(&p, server_ctx(), cctx, HOST);
    assert_int_equal(tls_conn_state(p.s), TLS_OPEN);
    assert_int_equal(tls_conn_state(p.c), TLS_OPEN);
    assert_string_equal(tls_conn_version(p.s), version);
    assert_string_equal(tls_conn_version(p.c), version);
    assert_string_equal(tls_conn_error(p.s), "");
    assert_string_equal(tls_conn_error(p.c), "");
    /* The server sees the name the phone was configured with (the wildcard certificate covers
     * it), and both agreed on ALPN "dot". */
    assert_non_null(tls_conn_sni(p.s));
    assert_string_equal(tls_conn_sni(p.s), HOST);
    assert_true(tls_conn_alpn_dot(p.s));
    assert_true(tls_conn_alpn_dot(p.c));
    /* Nothing to read yet; session tickets (TLS 1.3) are consumed quietly. */
    uint8_t buf[16];
    assert_int_equal(tls_conn_read(p.c, buf, sizeof buf), -EAGAIN);
    assert_int_equal(tls_conn_read(p.s, buf, sizeof buf), -EAGAIN);
    pair_close(&p);
}

static void test_handshake_tls13(void **state)
{
    (void)state;
    handshake(0, "TLSv1.3");
}

static void test_handshake_tls12(void **state)
{
    (void)state;
    handshake(12, "TLSv1.2");
}

/* Pipelined messages both ways: byte by byte into the server (every prefix of every record is
 * seen), read back 7 bytes at a time; then all answers in one feed; then both ways at once. */
static void pipelined(unsigned max_version)
{
    struct tls_ctx *cctx = client_ctx(ca_pem);
    if (max_version)
        assert_int_equal(tls_ctx_set_max_version(cctx, max_version), 0);
    struct pair p;
    pair_open(&p, server_ctx(), cctx, HOST);
    assert_int_equal(tls_conn_state(p.s), TLS_OPEN);

    struct bytes sent = {0}, got = {0}, wire = {0};
    write_messages(p.c, 40, 1, &sent);
    take_all(p.c, &wire);
    for (size_t i = 0; i < wire.n; i++) {
        assert_int_equal(tls_conn_feed(p.s, wire.b + i, 1), 0);
        drain(p.s, 7, &got);
    }
    assert_same(&sent, &got);

    sent.n = got.n = wire.n = 0;
    write_messages(p.s, 300, 2, &sent);
    take_all(p.s, &wire);
    for (size_t off = 0; off < wire.n; off += 65536) { /* one socket read's worth at a time */
        size_t n = wire.n - off < 65536 ? wire.n - off : 65536;
        assert_int_equal(tls_conn_feed(p.c, wire.b + off, n), 0);
        drain(p.c, 65536, &got);
    }
    assert_same(&sent, &got);

    struct bytes sent2 = {0}, got2 = {0};
    sent.n = got.n = 0;
    write_messages(p.c, 20, 3, &sent);
    write_messages(p.s, 20, 4, &sent2);
    pump(p.c, p.s);
    drain(p.s, 1000, &got);
    drain(p.c, 1000, &got2);
    assert_same(&sent, &got);
    assert_same(&sent2, &got2);
    assert_int_equal(tls_conn_state(p.s), TLS_OPEN);
    assert_int_equal(tls_conn_state(p.c), TLS_OPEN);

    free(sent.b);
    free(got.b);
    free(wire.b);
    free(sent2.b);
    free(got2.b);
    pair_close(&p);
}

static void test_pipelined_tls13(void **state)
{
    (void)state;
    pipelined(0);
}

static void test_pipelined_tls12(void **state)
{
    (void)state;
    pipelined(12);
}

/* Two queries' records cut into two reads at every byte boundary. */
static void test_split_every_boundary(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, server_ctx(), client_ctx(ca_pem), HOST);
    struct bytes sent = {0}, got = {0}, wire = {0};
    size_t len = 0;
    for (size_t k = 0;; k++) {
        uint8_t m[128];
        sent.n = got.n = wire.n = 0;
        for (unsigned i = 0; i < 2; i++) {
            size_t n = message((unsigned)k + i, 33 + 27 * i, m);
            assert_int_equal(tls_conn_write(p.c, m, n), 0);
            bytes_add(&sent, m, n);
        }
        take_all(p.c, &wire);
        if (k == 0)
            len = wire.n;
        assert_int_equal(wire.n, len); /* the same sizes make the same record lengths */
        assert_int_equal(tls_conn_feed(p.s, wire.b, k), 0);
        drain(p.s, 4096, &got);
        assert_int_equal(tls_conn_feed(p.s, wire.b + k, len - k), 0);
        drain(p.s, 4096, &got);
        assert_same(&sent, &got);
        if (k == len)
            break;
    }
    free(sent.b);
    free(got.b);
    free(wire.b);
    pair_close(&p);
}

/*
 * A client that is not telesink on sctx: plain OpenSSL, TLS 1.2, no SNI, ALPN as given (or
 * none), resuming *session when there is one (stateless tickets), and keeping its session there.
 */
static void raw_client(struct tls_ctx *sctx, const unsigned char *alpn, unsigned alpn_len,
                       SSL_SESSION **session)
{
    struct tls_conn *s = tls_conn_new(sctx, NULL);
    SSL_CTX *rc = SSL_CTX_new(TLS_client_method());
    assert_non_null(rc);
    assert_int_equal(SSL_CTX_set_max_proto_version(rc, TLS1_2_VERSION), 1);
    assert_int_equal(SSL_CTX_load_verify_file(rc, ca_pem), 1);
    SSL_CTX_set_verify(rc, SSL_VERIFY_PEER, NULL);
    SSL *r = SSL_new(rc);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    SSL_set_bio(r, in, out);
    SSL_set_connect_state(r);
    assert_int_equal(SSL_set1_host(r, "any.dns.example.test"), 1);
    if (alpn)
        assert_int_equal(SSL_set_alpn_protos(r, alpn, alpn_len), 0);
    bool resuming = *session != NULL;
    if (resuming)
        assert_int_equal(SSL_set_session(r, *session), 1);

    uint8_t buf[16384];
    int done = 0;
    for (int round = 0; round < 10 && !done; round++) {
        done = SSL_do_handshake(r) == 1;
        int n;
        while ((n = BIO_read(out, buf, sizeof buf)) > 0)
            assert_int_equal(tls_conn_feed(s, buf, (size_t)n), 0);
        size_t m;
        while ((m = tls_conn_take(s, buf, sizeof buf)) > 0)
            assert_int_equal(BIO_write(in, buf, (int)m), (int)m);
    }
    assert_true(done);
    assert_int_equal(tls_conn_state(s), TLS_OPEN);
    assert_null(tls_conn_sni(s));
    assert_false(tls_conn_alpn_dot(s));
    assert_string_equal(tls_conn_version(s), "TLSv1.2");
    assert_int_equal(SSL_session_reused(r), resuming);

    /* A query in, an answer out. */
    uint8_t q[64], a[64];
    size_t qn = message(9, 40, q);
    assert_int_equal(SSL_write(r, q, (int)qn), (int)qn);
    int n;
    while ((n = BIO_read(out, buf, sizeof buf)) > 0)
        assert_int_equal(tls_conn_feed(s, buf, (size_t)n), 0);
    assert_int_equal(tls_conn_read(s, a, sizeof a), (ssize_t)qn);
    assert_memory_equal(q, a, qn);
    assert_int_equal(tls_conn_write(s, q, qn), 0);
    size_t m;
    while ((m = tls_conn_take(s, buf, sizeof buf)) > 0)
        assert_int_equal(BIO_write(in, buf, (int)m), (int)m);
    assert_int_equal(SSL_read(r, a, sizeof a), (int)qn);
    assert_memory_equal(q, a, qn);

    SSL_shutdown(r); /* OpenSSL will not resume a session freed without close_notify */
    SSL_SESSION_free(*session);
    *session = SSL_get1_session(r);
    SSL_free(r);
    SSL_CTX_free(rc);
    tls_conn_free(s);
}

static void test_client_without_alpn_or_sni(void **state)
{
    (void)state;
    struct tls_ctx *sctx = server_ctx();
    SSL_SESSION *session = NULL;
    raw_client(sctx, NULL, 0, &session);
    static const unsigned char h2[] = {2, 'h', '2'};
    raw_client(sctx, h2, sizeof h2, &session); /* another protocol only: served without ALPN */
    SSL_SESSION_free(session);
    tls_ctx_unref(sctx);
}

/* A client that expected another name gives up with a reason fit for a log line, and tells
 * the server with an alert. */
static void wrong_host(const char *host)
{
    struct pair p;
    pair_open(&p, server_ctx(), client_ctx(ca_pem), host);
    assert_int_equal(tls_conn_state(p.c), TLS_FAILED);
    print_message("%s: client: %s; server: %s\n", host, tls_conn_error(p.c), tls_conn_error(p.s));
    assert_string_equal(tls_conn_error(p.c), "certificate verify failed: hostname mismatch");
    assert_int_equal(tls_conn_state(p.s), TLS_FAILED);
    assert_true(strlen(tls_conn_error(p.s)) > 0);
    uint8_t buf[16];
    assert_int_equal(tls_conn_read(p.c, buf, sizeof buf), -EPROTO);
    assert_int_equal(tls_conn_write(p.c, buf, sizeof buf), -EPROTO);
    assert_int_equal(tls_conn_feed(p.c, buf, sizeof buf), -EPROTO);
    pair_close(&p);
}

static void test_hostname_mismatch(void **state)
{
    (void)state;
    wrong_host("dns.other.test");
    wrong_host("dns.example.test");     /* a wildcard does not cover its parent */
    wrong_host("a.b.dns.example.test"); /* nor two labels */
}

static void test_untrusted_ca(void **state)
{
    (void)state;
    const char *cas[] = {other_ca_pem, NULL}; /* another CA; the system store */
    for (int i = 0; i < 2; i++) {
        struct pair p;
        pair_open(&p, server_ctx(), client_ctx(cas[i]), HOST);
        print_message("%s: client: %s; server: %s\n", cas[i] ? "other CA" : "system store",
                      tls_conn_error(p.c), tls_conn_error(p.s));
        assert_int_equal(tls_conn_state(p.c), TLS_FAILED);
        assert_string_equal(tls_conn_error(p.c),
                            "certificate verify failed: unable to get local issuer certificate");
        assert_int_equal(tls_conn_state(p.s), TLS_FAILED);
        assert_non_null(strstr(tls_conn_error(p.s), "unknown ca"));
        pair_close(&p);
    }
}

/* SIGHUP with a renewed certificate: new sessions get it, an open one carries on with its own. */
static void test_reload_keeps_old_sessions(void **state)
{
    (void)state;
    struct tls_ctx *current = server_ctx();
    struct tls_ctx *cctx = client_ctx(ca_pem);

    struct pair old;
    pair_open(&old, tls_ctx_ref(current), tls_ctx_ref(cctx), HOST);
    assert_int_equal(tls_conn_state(old.c), TLS_OPEN);
    /* The first certificate does not cover the bare name. */
    struct pair bare;
    pair_open(&bare, tls_ctx_ref(current), tls_ctx_ref(cctx), "dns.example.test");
    assert_int_equal(tls_conn_state(bare.c), TLS_FAILED);
    pair_close(&bare);

    char err[256];
    struct tls_ctx *renewed = tls_server_ctx(renewed_pem, renewed_key, err, sizeof err);
    assert_non_null(renewed);
    tls_ctx_unref(current); /* the swap: only the old session holds the old context now */
    current = renewed;

    pair_open(&bare, tls_ctx_ref(current), tls_ctx_ref(cctx), "dns.example.test");
    assert_int_equal(tls_conn_state(bare.c), TLS_OPEN);
    assert_int_equal(tls_conn_state(bare.s), TLS_OPEN);
    pair_close(&bare);

    struct bytes sent = {0}, got = {0}, sent2 = {0}, got2 = {0};
    write_messages(old.c, 10, 5, &sent);
    write_messages(old.s, 10, 6, &sent2);
    pump(old.c, old.s);
    drain(old.s, 4096, &got);
    drain(old.c, 4096, &got2);
    assert_same(&sent, &got);
    assert_same(&sent2, &got2);
    pair_close(&old); /* frees the old context */
    free(sent.b);
    free(got.b);
    free(sent2.b);
    free(got2.b);
    tls_ctx_unref(current);
    tls_ctx_unref(cctx);
}

/* Whatever arrives on the DoT port that is not TLS fails the session cleanly. */
static void test_garbage(void **state)
{
    (void)state;
    struct tls_ctx *sctx = server_ctx();
    uint8_t random[3000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof random; i++) {
        x = x * 1103515245u + 12345u;
        random[i] = (uint8_t)(x >> 16);
    }
    static const uint8_t dns_over_tcp[] = {0x00, 0x1d, 0x12, 0x34, 0x01, 0x00, 0x00, 0x01,
                                           0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 'e',
                                           'x',  'a',  'm',  'p',  'l',  'e',  0x03, 'c',
                                           'o',  'm',  0x00, 0x00, 0x01, 0x00, 0x01};
    static const uint8_t http[] = "GET /dns-query HTTP/1.1\r\nHost: x\r\n\r\n";
    static const uint8_t bad_version[] = {0x16, 0x09, 0x09, 0x00, 0x05, 1, 2, 3, 4, 5};
    static const uint8_t huge_record[] = {0x16, 0x03, 0x01, 0xff, 0xff, 0x01};
    struct {
        const char *what;
        const uint8_t *b;
        size_t n;
    } inputs[] = {
        {"random", random, sizeof random},
        {"plain DNS over TCP", dns_over_tcp, sizeof dns_over_tcp},
        {"HTTP", http, sizeof http - 1},
        {"bad version", bad_version, sizeof bad_version},
        {"oversized record", huge_record, sizeof huge_record},
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        struct tls_conn *s = tls_conn_new(sctx, NULL);
        assert_non_null(s);
        assert_int_equal(tls_conn_feed(s, inputs[i].b, inputs[i].n), -EPROTO);
        print_message("%s: %s (%zu bytes to send)\n", inputs[i].what, tls_conn_error(s),
                      tls_conn_pending(s));
        assert_int_equal(tls_conn_state(s), TLS_FAILED);
        assert_true(strlen(tls_conn_error(s)) > 0);
        assert_true(tls_conn_pending(s) < 64); /* at most an alert */
        uint8_t buf[64];
        assert_int_equal(tls_conn_read(s, buf, sizeof buf), -EPROTO);
        assert_int_equal(tls_conn_write(s, buf, sizeof buf), -EPROTO);
        assert_int_equal(tls_conn_feed(s, buf, sizeof buf), -EPROTO);
        tls_conn_shutdown(s);
        tls_conn_take(s, buf, sizeof buf);
        tls_conn_free(s);
    }

    /* Garbage inside an open session: the record does not authenticate. */
    struct pair p;
    pair_open(&p, sctx, client_ctx(ca_pem), HOST);
    uint8_t rec[64] = {0x17, 0x03, 0x03, 0x00, 59};
    memcpy(rec + 5, random, sizeof rec - 5);
    assert_int_equal(tls_conn_feed(p.s, rec, sizeof rec), 0);
    uint8_t buf[64];
    assert_int_equal(tls_conn_read(p.s, buf, sizeof buf), -EPROTO);
    print_message("forged record: %s\n", tls_conn_error(p.s));
    assert_int_equal(tls_conn_state(p.s), TLS_FAILED);
    pair_close(&p);
}

/* close_notify: what came before it is read, then 0 (EOF); what follows it is ignored. */
static void test_close_notify(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, server_ctx(), client_ctx(ca_pem), HOST);
    struct bytes sent = {0}, got = {0}, wire = {0};
    write_messages(p.c, 3, 7, &sent);
    tls_conn_shutdown(p.c);
    tls_conn_shutdown(p.c); /* again: nothing more */
    assert_int_equal(tls_conn_write(p.c, sent.b, 10), -EPIPE);
    take_all(p.c, &wire);
    bytes_add(&wire, (const uint8_t *)"trailing junk", 13);
    assert_int_equal(tls_conn_feed(p.s, wire.b, wire.n), 0);
    uint8_t buf[4096];
    ssize_t r;
    while ((r = tls_conn_read(p.s, buf, sizeof buf)) > 0)
        bytes_add(&got, buf, (size_t)r);
    assert_int_equal(r, 0);
    assert_same(&sent, &got);
    assert_int_equal(tls_conn_state(p.s), TLS_CLOSED);
    assert_int_equal(tls_conn_read(p.s, buf, sizeof buf), 0);
    assert_int_equal(tls_conn_feed(p.s, buf, 100), 0); /* discarded */
    assert_string_equal(tls_conn_error(p.s), "");

    /* The server answers with its own close_notify, which the client reads as EOF. */
    tls_conn_shutdown(p.s);
    assert_true(tls_conn_pending(p.s) > 0);
    pump(p.s, p.c);
    assert_int_equal(tls_conn_read(p.c, buf, sizeof buf), 0);
    assert_int_equal(tls_conn_state(p.c), TLS_CLOSED);
    free(sent.b);
    free(got.b);
    free(wire.b);
    pair_close(&p);
}

/* Before the handshake is done nothing can be written or read; shutdown sends nothing. */
static void test_before_handshake(void **state)
{
    (void)state;
    struct tls_ctx *cctx = client_ctx(ca_pem);
    struct tls_conn *c = tls_conn_new(cctx, HOST);
    uint8_t buf[16] = {0};
    size_t hello = tls_conn_pending(c);
    assert_true(hello > 0);
    assert_int_equal(tls_conn_write(c, buf, sizeof buf), -EAGAIN);
    assert_int_equal(tls_conn_read(c, buf, sizeof buf), -EAGAIN);
    assert_int_equal(tls_conn_write(c, buf, 0), -EAGAIN);
    tls_conn_shutdown(c);
    assert_int_equal(tls_conn_pending(c), hello);
    assert_int_equal(tls_conn_write(c, buf, sizeof buf), -EPIPE);
    tls_conn_free(c);

    /* An IP address literal is checked against the certificate's addresses (it has none). */
    struct pair p;
    pair_open(&p, server_ctx(), tls_ctx_ref(cctx), "192.0.2.53");
    assert_null(tls_conn_sni(p.s));
    assert_int_equal(tls_conn_state(p.c), TLS_FAILED);
    assert_string_equal(tls_conn_error(p.c), "certificate verify failed: IP address mismatch");
    pair_close(&p);
    tls_ctx_unref(cctx);
}

/* Input fed and not read is bounded. */
static void test_feed_limit(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, server_ctx(), client_ctx(ca_pem), HOST);
    struct bytes sent = {0}, got = {0}, wire = {0};
    write_messages(p.c, 700, 8, &sent);
    take_all(p.c, &wire);
    assert_true(wire.n > TLS_FEED_MAX + 65536);
    size_t off = 0, refused = 0;
    while (off < wire.n) {
        size_t n = wire.n - off < 16384 ? wire.n - off : 16384;
        int r = tls_conn_feed(p.s, wire.b + off, n);
        if (r == -ENOBUFS) {
            refused++;
            drain(p.s, 65536, &got); /* the caller reads, then feeds again */
            continue;
        }
        assert_int_equal(r, 0);
        off += n;
    }
    drain(p.s, 65536, &got);
    assert_true(refused > 0);
    assert_same(&sent, &got);
    assert_int_equal(tls_conn_feed(p.s, wire.b, TLS_FEED_MAX + 1), -ENOBUFS);
    free(sent.b);
    free(got.b);
    free(wire.b);
    pair_close(&p);
}

static void test_ctx_errors(void **state)
{
    (void)state;
    char err[256];
    char missing[96];
    snprintf(missing, sizeof missing, "%s/missing.pem", dir);
    struct {
        const char *cert, *key, *expect;
    } cases[] = {
        {missing, server_key, "No such file or directory"},
        {garbage_pem, server_key, garbage_pem},
        {server_pem, missing, missing},
        {server_pem, renewed_key, "key values mismatch"},
        {server_pem, server_pem, server_pem}, /* no key in it */
        {server_key, server_key, "no start line"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        assert_null(tls_server_ctx(cases[i].cert, cases[i].key, err, sizeof err));
        print_message("server: %s\n", err);
        assert_non_null(strstr(err, cases[i].expect));
    }
    err[0] = '\0';
    assert_null(tls_client_ctx(missing, err, sizeof err));
    print_message("client: %s\n", err);
    assert_non_null(strstr(err, missing));
    assert_null(tls_client_ctx(garbage_pem, err, sizeof err));
    print_message("client: %s\n", err);
    assert_non_null(strstr(err, garbage_pem));
    assert_null(tls_client_ctx(server_key, err, sizeof err));
    print_message("client: %s\n", err);
    assert_non_null(strstr(err, "no certificate or crl found"));

    struct tls_ctx *ctx = client_ctx(NULL);
    assert_int_equal(tls_ctx_set_max_version(ctx, 11), -EINVAL);
    assert_int_equal(tls_ctx_set_max_version(ctx, 13), 0);
    assert_ptr_equal(tls_ctx_ref(ctx), ctx);
    tls_ctx_unref(ctx);
    tls_ctx_unref(ctx);
    tls_ctx_unref(NULL);
    assert_null(tls_ctx_ref(NULL));
    tls_conn_free(NULL);
}

/* The client's name from its SNI: exactly one label under a wildcard name of the certificate. */
static void test_client_name(void **state)
{
    (void)state;
    struct tls_ctx *sctx = server_ctx(), *cctx = client_ctx(ca_pem);
    const char *long_label = "a123456789b123456789c123456789d123456789e123456789f123456789abcd"
                             ".dns.example.test"; /* 64 characters */
    struct {
        const char *sni, *name;
    } cases[] = {
        {HOST, "redmi"},
        {"Pixel-7.DNS.Example.TEST", "pixel-7"},
        {"redmi.dns.example.test.", "redmi"},
        {"a.b.dns.example.test", ""},
        {"dns.example.test", ""},
        {".dns.example.test", ""},
        {"bad_label.dns.example.test", ""},
        {"redmi.dns.example.test.evil", ""},
        {"redmi.xdns.example.test", ""},
        {"redmi.other.test", ""},
        {long_label, ""},
        {NULL, ""}, /* no SNI */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tls_conn *s = tls_conn_new(sctx, NULL), *c = tls_conn_new(cctx, cases[i].sni);
        assert_non_null(s);
        assert_non_null(c);
        char out[64] = "unchanged";
        assert_int_equal(tls_conn_client_name(s, out, sizeof out), 0); /* no ClientHello yet */
        uint8_t hello[4096];
        size_t n = tls_conn_take(c, hello, sizeof hello);
        assert_int_equal(tls_conn_feed(s, hello, n), 0);
        assert_int_equal(tls_conn_client_name(s, out, sizeof out), strlen(cases[i].name));
        if (cases[i].name[0])
            assert_string_equal(out, cases[i].name);
        assert_int_equal(tls_conn_client_name(s, out, 5), 0); /* no room for "redmi" + NUL */
        assert_int_equal(tls_conn_client_name(c, out, sizeof out), 0); /* client side */
        tls_conn_free(s);
        tls_conn_free(c);
    }
    assert_non_null(strstr(tls_ctx_describe(sctx), "*.dns.example.test; serial 02, expires "));
    assert_string_equal(tls_ctx_describe(cctx), "");
    tls_ctx_unref(sctx);
    tls_ctx_unref(cctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_tls13),
        cmocka_unit_test(test_handshake_tls12),
        cmocka_unit_test(test_pipelined_tls13),
        cmocka_unit_test(test_pipelined_tls12),
        cmocka_unit_test(test_split_every_boundary),
        cmocka_unit_test(test_client_without_alpn_or_sni),
        cmocka_unit_test(test_hostname_mismatch),
        cmocka_unit_test(test_untrusted_ca),
        cmocka_unit_test(test_reload_keeps_old_sessions),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_before_handshake),
        cmocka_unit_test(test_feed_limit),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_client_name),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
