/*
 * config: the INI file and the command-line flags, turned into one immutable struct config.
 *
 * Parsing order: built-in defaults, then the file (every key optional), then the flags, then
 * config_finish() fills what is still unset (upstreams from /etc/resolv.conf). Errors carry
 * "FILE:LINE: message" so an operator can jump to the bad line. After config_finish() the struct
 * is read-only and shared by every serving thread; a reload builds a new one.
 *
 * The INI reader is our own (about 80 lines): libinih splits keys at the first ':' as well as
 * '=', which breaks the [clients] section (MAC and IPv6 addresses as keys) and reports only the
 * first error's line without its message.
 */
#ifndef TELESINK_CONFIG_H
#define TELESINK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dnsmsg.h"
#include "log.h"
#include "netaddr.h"

#define CONFIG_DEFAULT_PATH "/etc/telesink/telesink.conf"
#define CONFIG_DEFAULT_PORT 8053
/* DNS over TLS (RFC 7858) */
#define CONFIG_DEFAULT_TLS_PORT 853

struct tls_ctx;

struct client_name {
    char *key; /* an address or a MAC, as written */
    char *name;
};

struct config {
    unsigned refs; /* config_ref / config_unref: shared by the serving threads */
    char *path;    /* the file read, NULL for built-in defaults */

    /* [server] */
    struct sockaddr_storage *listen;
    size_t n_listen;
    struct cidr *allow;
    size_t n_allow;
    enum dnsmsg_block_mode blocking_mode;
    uint32_t block_ttl;
    unsigned threads; /* 0 = one per core */
    char *user;
    unsigned tcp_idle_ms;
    unsigned tcp_max_connections;
    /* DNS over TLS (RFC 7858; TCP only): none = off. The certificate chain and key are PEM
     * files, read at start and again on SIGHUP. */
    struct sockaddr_storage *tls_listen;
    size_t n_tls_listen;
    char *tls_cert, *tls_key;
    unsigned tls_max_connections; /* per serving loop, apart from tcp_max_connections */
    char *tls_listen_at;          /* "FILE:LINE" where tls_listen was set, for messages */

    unsigned max_pending; /* queries waiting for upstreams per thread (each client counts) */
    size_t cache_size;    /* bytes of response cache per thread; 0 = no cache */
    unsigned rate_limit;  /* queries a client may send per rate_limit_s seconds; 0 = no limit */
    unsigned rate_limit_s;
    enum log_level log_level;

    /* [upstream] */
    struct sockaddr_storage *upstreams;
    char **upstream_tls; /* per upstream: NULL = plain DNS; tls:// = DNS over TLS, and this is
                            the name its certificate must match (#NAME, or else the address) */
    size_t n_upstreams;
    unsigned timeout_ms;
    char *tls_ca;                     /* [upstream] tls_ca; NULL = the system CA store */
    struct tls_ctx *upstream_tls_ctx; /* for tls:// upstreams: tls_ca's, or (config_finish) the
                                         system store's; one reference, dropped with c */

    /* [lists] */
    char **list_paths;
    size_t n_list_paths;
    char **vendors; /* empty = all */
    size_t n_vendors;
    char **allow_lists;
    size_t n_allow_lists;
    bool strict;
    bool canary_doh;          /* use-application-dns.net -> NXDOMAIN */
    bool canary_icloud_relay; /* mask(-h2).icloud.com -> NXDOMAIN */

    /* [log] */
    bool log_enabled; /* [log] enabled: write the query log at all */
    char *db;
    unsigned retention_days;
    bool log_allowed;
    bool anonymize_clients;
    unsigned flush_ms;
    unsigned log_queue; /* records the serving threads may queue for the writer */
    struct cidr *trusted_forwarders;
    size_t n_trusted_forwarders;

    /* [clients] */
    struct client_name *clients;
    size_t n_clients;
};

/* A config holding the built-in defaults, or NULL when out of memory. */
struct config *config_create(void);
void config_destroy(struct config *c);
/* Reference counting across threads; the last unref destroys. */
struct config *config_ref(struct config *c);
void config_unref(struct config *c);

/*
 * Read an INI file into c. Returns 0, or -1 with "PATH:LINE: message" in err. A missing file
 * is an error here: the caller decides whether the file was optional.
 */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* Same, from memory; name is used in messages (tests and the fuzzer). */
int config_load_string(struct config *c, const char *text, size_t len, const char *name, char *err,
                       size_t errlen);

/* Set one key as if it were written in the file (used by the command-line flags). */
int config_set(struct config *c, const char *section, const char *key, const char *value, char *err,
               size_t errlen);

/*
 * Fill in what is still unset: upstreams from resolv_conf (skipping addresses we listen on),
 * and the TLS context of tls:// upstreams when tls_ca did not make one.
 * Returns 0 or -1 with a message.
 */
int config_finish(struct config *c, const char *resolv_conf, char *err, size_t errlen);

/* Upstream i as written in a configuration: "192.0.2.53:53", "tls://[2001:db8::1]:853#dns.example"
 * (tls:// without #NAME when the address itself is verified). Always NUL-terminates. */
void config_format_upstream(const struct config *c, size_t i, char *buf, size_t len);

#endif
