/*
 * tlscert: test CAs, certificates and keys made with OpenSSL at test time, written as PEM files
 * for tls_server_ctx / tls_client_ctx. Shared by the TLS unit test and fuzz target (never by
 * telesink itself). Header-only; any OpenSSL failure aborts.
 */
#ifndef TELESINK_TESTS_TLSCERT_H
#define TELESINK_TESTS_TLSCERT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static inline void tc_check(int ok)
{
    if (!ok)
        abort();
}

/* A fresh P-256 key. */
static inline EVP_PKEY *tc_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    tc_check(k != NULL);
    return k;
}

static inline void tc_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    tc_check(e != NULL && X509_add_ext(cert, e, -1) == 1);
    X509_EXTENSION_free(e);
}

/*
 * A certificate for key with common name cn, valid from an hour ago for a day. A CA when san is
 * NULL (self-signed when issuer is NULL), else a server certificate for san ("DNS:a,DNS:b")
 * signed by issuer / issuer_key.
 */
static inline X509 *tc_cert(EVP_PKEY *key, const char *cn, const char *san, long serial,
                            X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    tc_check(x != NULL && X509_set_version(x, 2) == 1);
    tc_check(ASN1_INTEGER_set(X509_get_serialNumber(x), serial) == 1);
    tc_check(X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL);
    tc_check(X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL);
    tc_check(X509_set_pubkey(x, key) == 1);
    X509_NAME *name = X509_get_subject_name(x);
    tc_check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                        0) == 1);
    if (!issuer) {
        issuer = x;
        issuer_key = key;
    }
    tc_check(X509_set_issuer_name(x, X509_get_subject_name(issuer)) == 1);
    if (!san) {
        tc_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
        tc_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        tc_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
        tc_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
        tc_ext(x, issuer, NID_ext_key_usage, "serverAuth");
        tc_ext(x, issuer, NID_subject_alt_name, san);
    }
    tc_ext(x, issuer, NID_subject_key_identifier, "hash");
    tc_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
    tc_check(X509_sign(x, issuer_key, EVP_sha256()) > 0);
    return x;
}

/* Write a certificate (and optionally a key) as PEM to path. */
static inline void tc_write(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    tc_check(f != NULL);
    if (cert)
        tc_check(PEM_write_X509(f, cert) == 1);
    if (key)
        tc_check(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1);
    tc_check(fclose(f) == 0);
}

#endif
