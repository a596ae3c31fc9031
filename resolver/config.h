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
    unsigned max_pending; /* upstream questions in flight per thread */
    size_t cache_size;    /* bytes of response cache per thread; 0 = no cache */
    unsigned rate_limit;  /* queries a client may send per rate_limit_s seconds; 0 = no limit */
    unsigned rate_limit_s;
    enum log_level log_level;

    /* [upstream] */
    struct sockaddr_storage *upstreams;
    size_t n_upstreams;
    unsigned timeout_ms;

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
 * Fill in what is still unset: upstreams from resolv_conf (skipping addresses we listen on).
 * Returns 0 or -1 with a message.
 */
int config_finish(struct config *c, const char *resolv_conf, char *err, size_t errlen);

#endif
