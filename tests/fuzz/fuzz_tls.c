/*
 * DoT sessions: bytes from a client -> a server session (ClientHello parsing, alerts), and the
 * same bytes from an upstream -> a client session (ServerHello, certificates); then read,
 * write and shut down whatever survived.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tls.h"
#include "tlscert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tls_ctx *server_ctx, *client_ctx;

/* Both contexts for the whole run: a self-signed certificate made with the first input. */
static void setup(void)
{
    char dir[] = "/tmp/fuzz_tls.XXXXXX", cert[64], key[64], err[256];
    if (!mkdtemp(dir))
        abort();
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    EVP_PKEY *k = tc_key();
    X509 *x = tc_cert(k, "dns.example.test", "DNS:*.dns.example.test", 1, NULL, NULL);
    tc_write(cert, x, NULL);
    tc_write(key, NULL, k);
    server_ctx = tls_server_ctx(cert, key, err, sizeof err);
    client_ctx = tls_client_ctx(cert, err, sizeof err);
    if (!server_ctx || !client_ctx) {
        fprintf(stderr, "fuzz_tls: %s\n", err);
        abort();
    }
    unlink(cert);
    unlink(key);
    rmdir(dir);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void run(struct tls_conn *c, const uint8_t *data, size_t size)
{
    uint8_t buf[4096];
    if (!c)
        abort();
    tls_conn_take(c, buf, sizeof buf); /* a client's ClientHello */
    int r = tls_conn_feed(c, data, size);
    if (r != 0 && r != -EPROTO && r != -ENOBUFS)
        __builtin_trap();
    ssize_t n;
    while ((n = tls_conn_read(c, buf, sizeof buf)) > 0)
        if (tls_conn_write(c, buf, (size_t)n) != 0)
            __builtin_trap();
    if (n != 0 && n != -EAGAIN && n != -EPROTO)
        __builtin_trap();
    if ((n == -EPROTO) != (tls_conn_state(c) == TLS_FAILED) ||
        (n == -EPROTO && !*tls_conn_error(c)))
        __builtin_trap();
    (void)tls_conn_sni(c);
    (void)tls_conn_alpn_dot(c);
    tls_conn_shutdown(c);
    while (tls_conn_take(c, buf, sizeof buf) > 0)
        ;
    tls_conn_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server_ctx)
        setup();
    run(tls_conn_new(server_ctx, NULL), data, size);
    run(tls_conn_new(client_ctx, "redmi.dns.example.test"), data, size);
    return 0;
}
