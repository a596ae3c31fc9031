#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ALPN "dot" (DNS over TLS in the IANA registry), in protocol-list form. */
static const unsigned char alpn_dot[] = {3, 'd', 'o', 't'};

/*
 * Lives from tls_server_ctx / tls_client_ctx until the last tls_ctx_unref: the creator holds
 * one reference and every session one more. Never changed once a session uses it.
 */
struct tls_ctx {
    SSL_CTX *ssl_ctx;
    atomic_uint refs;
    char *wild;     /* server: the certificate's wildcard names without "*.", lower case, each
                       NUL-terminated, an empty one last; NULL for a client context */
    char desc[192]; /* server: names, serial and expiry of the certificate, for logs */
};

/* Lives from tls_conn_new until tls_conn_free. The SSL owns both memory BIOs. */
struct tls_conn {
    struct tls_ctx *ctx; /* one reference */
    SSL *ssl;
    BIO *in;  /* ciphertext fed and not yet consumed by OpenSSL */
    BIO *out; /* ciphertext OpenSSL produced and the caller has not taken */
    enum tls_state state;
    bool shut; /* tls_conn_shutdown was called */
    char err[128];
};

/*
 * The reason of the first error on this thread's OpenSSL error queue into out (with the text
 * OpenSSL attached to it when with_data: which file, what it expected); the queue is emptied.
 */
static void ssl_reason(char *out, size_t outlen, bool with_data)
{
    const char *data = NULL, *r = NULL;
    int flags = 0;
    char sys[64];
    unsigned long e = ERR_peek_error_data(&data, &flags);
    if (!e)
        r = "unknown error";
    else if (ERR_SYSTEM_ERROR(e))
        r = strerror_r(ERR_GET_REASON(e), sys, sizeof sys); /* "No such file or directory" */
    else
        r = ERR_reason_error_string(e);
    if (!r)
        ERR_error_string_n(e, out, outlen);
    else if (with_data && !ERR_SYSTEM_ERROR(e) && data && (flags & ERR_TXT_STRING) && *data)
        snprintf(out, outlen, "%s (%s)", r, data);
    else
        snprintf(out, outlen, "%s", r);
    ERR_clear_error();
}

static void ctx_error(char *err, size_t errlen, const char *what)
{
    char reason[192];
    ssl_reason(reason, sizeof reason, true);
    if (errlen > 0)
        snprintf(err, errlen, "%s: %s", what, reason);
}

static struct tls_ctx *ctx_wrap(SSL_CTX *s)
{
    struct tls_ctx *ctx = malloc(sizeof *ctx);
    if (!ctx) {
        SSL_CTX_free(s);
        return NULL;
    }
    ctx->ssl_ctx = s;
    atomic_init(&ctx->refs, 1);
    ctx->wild = NULL;
    ctx->desc[0] = '\0';
    return ctx;
}

/* What both sides share: TLS 1.2 at least, no renegotiation, no buffers kept while idle. */
static SSL_CTX *ctx_new(const SSL_METHOD *method)
{
    SSL_CTX *s = SSL_CTX_new(method);
    if (!s)
        return NULL;
    if (!SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION)) {
        SSL_CTX_free(s);
        return NULL;
    }
    SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    return s;
}

/* Agree on "dot" when the client offers it; otherwise carry on without ALPN (RFC 7858 does
 * not require it, and Android's Private DNS and kdig differ). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, alpn_dot, sizeof alpn_dot, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Append one more "*.suffix" name's suffix (lower case) to the NUL-separated list in *wild. */
static bool wild_add(char **wild, size_t *len, const unsigned char *suffix, size_t n)
{
    char *w = realloc(*wild, *len + n + 2);
    if (!w)
        return false;
    for (size_t i = 0; i < n; i++)
        w[*len + i] = (char)(suffix[i] >= 'A' && suffix[i] <= 'Z' ? suffix[i] + 32 : suffix[i]);
    *len += n;
    w[(*len)++] = '\0';
    w[*len] = '\0';
    *wild = w;
    return true;
}

/* What a server context needs to know of its certificate: its wildcard names (for
 * tls_conn_client_name) and, for logs, its names, serial and expiry. false: out of memory. */
static bool ctx_read_cert(struct tls_ctx *ctx)
{
    X509 *x = SSL_CTX_get0_certificate(ctx->ssl_ctx);
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    size_t len = 0, used = 0;
    bool ok = (ctx->wild = calloc(1, 1)) != NULL; /* the empty list */
    for (int i = 0; ok && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
        size_t n = (size_t)ASN1_STRING_length(g->d.dNSName);
        if (used < sizeof ctx->desc)
            used += (size_t)snprintf(ctx->desc + used, sizeof ctx->desc - used, "%s%.*s",
                                     used ? ", " : "", (int)n, (const char *)d);
        if (n > 2 && d[0] == '*' && d[1] == '.' && !memchr(d, '\0', n))
            ok = wild_add(&ctx->wild, &len, d + 2, n - 2);
    }
    GENERAL_NAMES_free(names);
    BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hexserial = serial ? BN_bn2hex(serial) : NULL;
    struct tm tm;
    char expires[32] = "?";
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
        strftime(expires, sizeof expires, "%Y-%m-%d %H:%M UTC", &tm);
    if (used < sizeof ctx->desc)
        snprintf(ctx->desc + used, sizeof ctx->desc - used, "%sserial %s, expires %s",
                 used ? "; " : "", hexserial ? hexserial : "?", expires);
    OPENSSL_free(hexserial);
    BN_free(serial);
    ERR_clear_error();
    return ok;
}

struct tls_ctx *tls_server_ctx(const char *cert_pem_path, const char *key_pem_path, char *err,
                               size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *s = ctx_new(TLS_server_method());
    if (!s) {
        ctx_error(err, errlen, "TLS server context");
        return NULL;
    }
    /* Stateless tickets only: no per-session state kept on the server. */
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(s, alpn_select, NULL);
    if (SSL_CTX_use_certificate_chain_file(s, cert_pem_path) != 1) {
        ctx_error(err, errlen, cert_pem_path);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(s, key_pem_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s) != 1) { /* "key values mismatch": not the cert's key */
        ctx_error(err, errlen, key_pem_path);
        goto fail;
    }
    struct tls_ctx *ctx = ctx_wrap(s);
    if (!ctx || !ctx_read_cert(ctx)) {
        snprintf(err, errlen, "out of memory");
        tls_ctx_unref(ctx);
        return NULL;
    }
    return ctx;
fail:
    SSL_CTX_free(s);
    return NULL;
}

struct tls_ctx *tls_client_ctx(const char *ca_file, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *s = ctx_new(TLS_client_method());
    if (!s) {
        ctx_error(err, errlen, "TLS client context");
        return NULL;
    }
    SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
    if (ca_file ? SSL_CTX_load_verify_file(s, ca_file) != 1
                : SSL_CTX_set_default_verify_paths(s) != 1) {
        ctx_error(err, errlen, ca_file ? ca_file : "system CA store");
        goto fail;
    }
    if (SSL_CTX_set_alpn_protos(s, alpn_dot, sizeof alpn_dot) != 0) { /* 0 is success here */
        ctx_error(err, errlen, "ALPN");
        goto fail;
    }
    struct tls_ctx *ctx = ctx_wrap(s);
    if (!ctx)
        snprintf(err, errlen, "out of memory");
    return ctx;
fail:
    SSL_CTX_free(s);
    return NULL;
}

int tls_ctx_set_max_version(struct tls_ctx *ctx, unsigned version)
{
    int v = version == 12 ? TLS1_2_VERSION : version == 13 ? TLS1_3_VERSION : 0;
    if (!v || !SSL_CTX_set_max_proto_version(ctx->ssl_ctx, v))
        return -EINVAL;
    return 0;
}

struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx)
{
    if (ctx)
        atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    return ctx;
}

void tls_ctx_unref(struct tls_ctx *ctx)
{
    if (!ctx || atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx->wild);
    free(ctx);
}

const char *tls_ctx_describe(const struct tls_ctx *ctx)
{
    return ctx->desc;
}

/* The session cannot go on: remember why, for tls_conn_error. */
static void conn_fail(struct tls_conn *c)
{
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) {
        ERR_clear_error();
        snprintf(c->err, sizeof c->err, "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
    } else {
        ssl_reason(c->err, sizeof c->err, false);
    }
    c->state = TLS_FAILED;
}

/* One more step of the handshake with what has been fed so far. */
static int conn_handshake(struct tls_conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->state = TLS_OPEN;
        return 0;
    }
    if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ)
        return 0;
    conn_fail(c);
    return -EPROTO;
}

static bool is_ip_literal(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *host)
{
    struct tls_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    ERR_clear_error();
    c->ssl = SSL_new(ctx->ssl_ctx);
    c->in = BIO_new(BIO_s_mem());
    c->out = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->in || !c->out) {
        BIO_free(c->in);
        BIO_free(c->out);
        goto fail;
    }
    /* An empty BIO reads as "try again" (the default for a writable memory BIO, made explicit). */
    BIO_set_mem_eof_return(c->in, -1);
    BIO_set_mem_eof_return(c->out, -1);
    SSL_set_bio(c->ssl, c->in, c->out); /* the SSL owns both from here */
    c->ctx = tls_ctx_ref(ctx);
    c->state = TLS_HANDSHAKING;
    if (SSL_is_server(c->ssl)) {
        SSL_set_accept_state(c->ssl);
        return c;
    }
    SSL_set_connect_state(c->ssl);
    if (host && *host) {
        if (is_ip_literal(host)) {
            if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) != 1)
                goto fail;
        } else {
            SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (SSL_set1_host(c->ssl, host) != 1 || SSL_set_tlsext_host_name(c->ssl, host) != 1)
                goto fail;
        }
    }
    /* The ClientHello, pending at once. */
    if (conn_handshake(c) < 0)
        goto fail;
    return c;
fail:
    ERR_clear_error();
    tls_conn_free(c);
    return NULL;
}

void tls_conn_free(struct tls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
    tls_ctx_unref(c->ctx);
    free(c);
}

int tls_conn_feed(struct tls_conn *c, const uint8_t *data, size_t len)
{
    if (c->state == TLS_FAILED)
        return -EPROTO;
    if (c->state == TLS_CLOSED || len == 0)
        return 0;
    if (len > TLS_FEED_MAX || BIO_ctrl_pending(c->in) > TLS_FEED_MAX - len)
        return -ENOBUFS;
    if (BIO_write(c->in, data, (int)len) != (int)len) {
        ERR_clear_error();
        return -ENOMEM;
    }
    return c->state == TLS_HANDSHAKING ? conn_handshake(c) : 0;
}

ssize_t tls_conn_read(struct tls_conn *c, uint8_t *buf, size_t cap)
{
    switch (c->state) {
    case TLS_FAILED:
        return -EPROTO;
    case TLS_CLOSED:
        return 0;
    case TLS_HANDSHAKING:
        return -EAGAIN;
    case TLS_OPEN:
        break;
    }
    if (cap == 0)
        return -EINVAL;
    size_t n;
    ERR_clear_error();
    int r = SSL_read_ex(c->ssl, buf, cap, &n);
    if (r == 1)
        return (ssize_t)n;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        c->state = TLS_CLOSED;
        return 0;
    default:
        conn_fail(c);
        return -EPROTO;
    }
}

int tls_conn_write(struct tls_conn *c, const uint8_t *data, size_t len)
{
    if (c->state == TLS_FAILED)
        return -EPROTO;
    if (c->shut)
        return -EPIPE;
    if (c->state == TLS_HANDSHAKING)
        return -EAGAIN;
    if (len == 0)
        return 0;
    /* A memory BIO never refuses a write, so without partial-write mode all of it goes out. */
    size_t n;
    ERR_clear_error();
    if (SSL_write_ex(c->ssl, data, len, &n) == 1 && n == len)
        return 0;
    conn_fail(c);
    return -EPROTO;
}

size_t tls_conn_pending(const struct tls_conn *c)
{
    return BIO_ctrl_pending(c->out);
}

size_t tls_conn_take(struct tls_conn *c, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    if (cap > 0 && BIO_read_ex(c->out, buf, cap, &n) != 1)
        n = 0;
    ERR_clear_error();
    return n;
}

void tls_conn_shutdown(struct tls_conn *c)
{
    if (c->shut)
        return;
    c->shut = true;
    if (c->state == TLS_OPEN || c->state == TLS_CLOSED) {
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl); /* queues close_notify; we do not wait for the peer's */
        ERR_clear_error();
    }
}

enum tls_state tls_conn_state(const struct tls_conn *c)
{
    return c->state;
}

const char *tls_conn_error(const struct tls_conn *c)
{
    return c->err;
}

const char *tls_conn_sni(const struct tls_conn *c)
{
    return SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *tls_conn_version(const struct tls_conn *c)
{
    return SSL_get_version(c->ssl);
}

bool tls_conn_alpn_dot(const struct tls_conn *c)
{
    const unsigned char *p;
    unsigned int len;
    SSL_get0_alpn_selected(c->ssl, &p, &len);
    return len == 3 && memcmp(p, "dot", 3) == 0;
}

size_t tls_conn_client_name(const struct tls_conn *c, char *out, size_t cap)
{
    const char *sni = tls_conn_sni(c);
    if (!sni || !c->ctx->wild)
        return 0;
    size_t len = strlen(sni);
    if (len > 0 && sni[len - 1] == '.')
        len--;
    const char *dot = memchr(sni, '.', len);
    size_t n = dot ? (size_t)(dot - sni) : 0;
    if (n == 0 || n > 63 || n >= cap)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = sni[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-'))
            return 0;
    }
    const char *rest = dot + 1;
    size_t rlen = len - n - 1;
    for (const char *w = c->ctx->wild; *w; w += strlen(w) + 1) {
        if (strlen(w) == rlen && strncasecmp(w, rest, rlen) == 0) {
            for (size_t i = 0; i < n; i++)
                out[i] = (char)(sni[i] >= 'A' && sni[i] <= 'Z' ? sni[i] + 32 : sni[i]);
            out[n] = '\0';
            return n;
        }
    }
    return 0;
}
