#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "paths.h"
#include "tls.h"

#define MAX_LINE 4096

static const char *const default_allow[] = {
    "127.0.0.0/8",   "::1/128",        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
    "100.64.0.0/10", "169.254.0.0/16", "fe80::/10",  "fc00::/7",
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort(); /* out of memory while configuring: nothing sensible to do */
    return d;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        abort();
    return q;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/*
 * Split a comma- (or space-) separated value into items, calling fn for each. Stops at the first
 * item fn rejects.
 */
typedef int (*item_fn)(struct config *c, const char *item, char *err, size_t errlen);

static int for_each_item(struct config *c, const char *value, item_fn fn, char *err, size_t errlen)
{
    char *copy = xstrdup(value);
    int rc = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ", \t", &save); tok;
         tok = strtok_r(NULL, ", \t", &save)) {
        if ((rc = fn(c, tok, err, errlen)) < 0)
            break;
    }
    free(copy);
    return rc;
}

static int parse_uint(const char *v, unsigned long min, unsigned long max, unsigned long *out)
{
    if (!isdigit((unsigned char)*v))
        return -1;
    errno = 0;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || *end != '\0' || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int add_listen(struct config *c, const char *item, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (netaddr_parse(item, CONFIG_DEFAULT_PORT, &ss) < 0) {
        set_err(err, errlen, "listen: '%s' is not ADDR[:PORT] (IPv6 as [ADDR]:PORT)", item);
        return -1;
    }
    c->listen = xrealloc(c->listen, (c->n_listen + 1) * sizeof *c->listen);
    c->listen[c->n_listen++] = ss;
    return 0;
}

static int add_tls_listen(struct config *c, const char *item, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (netaddr_parse(item, CONFIG_DEFAULT_TLS_PORT, &ss) < 0) {
        set_err(err, errlen, "tls_listen: '%s' is not ADDR[:PORT] (IPv6 as [ADDR]:PORT)", item);
        return -1;
    }
    c->tls_listen = xrealloc(c->tls_listen, (c->n_tls_listen + 1) * sizeof *c->tls_listen);
    c->tls_listen[c->n_tls_listen++] = ss;
    return 0;
}

/* tls_name: NULL for plain DNS, else the name a tls:// server's certificate must match. */
static void push_upstream(struct config *c, const struct sockaddr_storage *ss, const char *tls_name)
{
    c->upstreams = xrealloc(c->upstreams, (c->n_upstreams + 1) * sizeof *c->upstreams);
    c->upstream_tls = xrealloc(c->upstream_tls, (c->n_upstreams + 1) * sizeof *c->upstream_tls);
    c->upstream_tls[c->n_upstreams] = tls_name ? xstrdup(tls_name) : NULL;
    c->upstreams[c->n_upstreams++] = *ss;
}

static void clear_upstreams(struct config *c)
{
    for (size_t i = 0; i < c->n_upstreams; i++)
        free(c->upstream_tls[i]);
    c->n_upstreams = 0;
}

/* A name to verify a certificate against: an IP literal, or a host name (lower-cased here). */
static bool tls_name_ok(char *name)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1)
        return true;
    size_t len = strlen(name), label = 0;
    if (len > 0 && name[len - 1] == '.')
        name[--len] = '\0';
    if (len == 0 || len > 253)
        return false;
    for (char *p = name; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
        if (*p == '.' ? label == 0 : !isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return false;
        label = *p == '.' ? 0 : label + 1;
        if (label > 63)
            return false;
    }
    return label > 0;
}

/*
 * "ADDR[:PORT]": plain DNS (port 53). "tls://ADDR[:PORT][#NAME]": DNS over TLS (port 853), the
 * certificate verified for NAME (also sent as SNI), or without #NAME for the address itself
 * (an IP address in the certificate, as 1.1.1.1 and 9.9.9.9 have).
 */
static int add_upstream(struct config *c, const char *item, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    bool tls = strncasecmp(item, "tls://", 6) == 0;
    const char *addr = tls ? item + 6 : item, *hash = strchr(addr, '#');
    char text[NETADDR_STRLEN], name[DNS_MAX_NAME + 1];
    size_t alen = hash ? (size_t)(hash - addr) : strlen(addr);
    if (!tls && (hash || strstr(item, "://"))) {
        set_err(err, errlen,
                "upstream: '%s': DNS over TLS is tls://ADDR[:PORT]#NAME, plain DNS ADDR[:PORT]",
                item);
        return -1;
    }
    if (alen < sizeof text) {
        memcpy(text, addr, alen);
        text[alen] = '\0';
    }
    if (alen >= sizeof text || netaddr_parse(text, tls ? 853 : 53, &ss) < 0 ||
        netaddr_port((struct sockaddr *)&ss) == 0) {
        if (tls)
            set_err(err, errlen, "upstream: '%s' is not tls://ADDR[:PORT]#NAME (IPv6 as [ADDR])",
                    item);
        else
            set_err(err, errlen, "upstream: '%s' is not ADDR[:PORT] (IPv6 as [ADDR]:PORT)", item);
        return -1;
    }
    if (hash && (strlen(hash + 1) >= sizeof name || !tls_name_ok(strcpy(name, hash + 1)))) {
        set_err(err, errlen, "upstream: '%s': '%s' is not a host name to verify", item, hash + 1);
        return -1;
    }
    if (tls && !hash)
        netaddr_format((struct sockaddr *)&ss, false, name, sizeof name);
    push_upstream(c, &ss, tls ? name : NULL);
    return 0;
}

static int add_cidr(struct cidr **v, size_t *n, const char *key, const char *item, char *err,
                    size_t errlen)
{
    struct cidr cidr;
    if (cidr_parse(item, &cidr) < 0) {
        set_err(err, errlen, "%s: '%s' is not an address or ADDR/PREFIX", key, item);
        return -1;
    }
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = cidr;
    return 0;
}

static int add_allow(struct config *c, const char *item, char *err, size_t errlen)
{
    return add_cidr(&c->allow, &c->n_allow, "allow", item, err, errlen);
}

static int add_trusted(struct config *c, const char *item, char *err, size_t errlen)
{
    return add_cidr(&c->trusted_forwarders, &c->n_trusted_forwarders, "trusted_forwarders", item,
                    err, errlen);
}

static void add_str(char ***v, size_t *n, const char *item)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = xstrdup(item);
}

static int add_list_path(struct config *c, const char *item, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    add_str(&c->list_paths, &c->n_list_paths, item);
    return 0;
}

static int add_allow_list(struct config *c, const char *item, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    add_str(&c->allow_lists, &c->n_allow_lists, item);
    return 0;
}

static int add_vendor(struct config *c, const char *item, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    if (strcasecmp(item, "all") == 0)
        return 0;
    add_str(&c->vendors, &c->n_vendors, item);
    return 0;
}

struct config *config_create(void)
{
    struct config *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    char err[128];
    add_listen(c, "127.0.0.1:8053", err, sizeof err);
    add_listen(c, "[::1]:8053", err, sizeof err);
    for (size_t i = 0; i < sizeof default_allow / sizeof *default_allow; i++)
        add_allow(c, default_allow[i], err, sizeof err);
    c->refs = 1;
    c->blocking_mode = DNSMSG_BLOCK_NXDOMAIN;
    c->block_ttl = 300;
    c->tcp_idle_ms = 10000;
    c->tcp_max_connections = 256;
    c->tls_max_connections = 256;
    c->max_pending = 8192;
    c->cache_size = 8u << 20;
    c->rate_limit = 1000; /* Pi-hole's RATE_LIMIT default */
    c->rate_limit_s = 60;
    c->log_level = LOG_INFO;
    c->timeout_ms = 1500;
    char lists[PATH_MAX];
    add_str(&c->list_paths, &c->n_list_paths, paths_lists_dir(lists, sizeof lists));
    c->canary_doh = true;
    c->canary_icloud_relay = true;
    c->db = xstrdup("telesink.db");
    c->retention_days = 90;
    c->log_enabled = true;
    c->log_allowed = true;
    c->flush_ms = 1000;
    c->log_queue = 65536;
    return c;
}

void config_destroy(struct config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->listen);
    free(c->allow);
    free(c->user);
    free(c->tls_listen);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->tls_listen_at);
    clear_upstreams(c);
    free(c->upstreams);
    free(c->upstream_tls);
    free(c->tls_ca);
    tls_ctx_unref(c->upstream_tls_ctx);
    free_strv(c->list_paths, c->n_list_paths);
    free_strv(c->vendors, c->n_vendors);
    free_strv(c->allow_lists, c->n_allow_lists);
    free(c->db);
    free(c->trusted_forwarders);
    for (size_t i = 0; i < c->n_clients; i++) {
        free(c->clients[i].key);
        free(c->clients[i].name);
    }
    free(c->clients);
    free(c);
}

struct config *config_ref(struct config *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

void config_unref(struct config *c)
{
    if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
        config_destroy(c);
}

/* "QUERIES/SECONDS" (Pi-hole's RATE_LIMIT syntax), or "0" (or Pi-hole's "0/0"): no limit. */
static int parse_rate_limit(struct config *c, const char *v, char *err, size_t errlen)
{
    char num[16];
    unsigned long n, s = 60;
    const char *slash = strchr(v, '/');
    size_t len = slash ? (size_t)(slash - v) : strlen(v);
    if (len == 0 || len >= sizeof num)
        goto bad;
    memcpy(num, v, len);
    num[len] = '\0';
    if (parse_uint(num, 0, 1000000, &n) < 0 || (slash && parse_uint(slash + 1, 0, 86400, &s) < 0))
        goto bad;
    if (n > 0 && (!slash || s == 0))
        goto bad; /* "1000" alone, or "1000/0": per what? */
    c->rate_limit = (unsigned)n;
    c->rate_limit_s = (unsigned)s;
    return 0;
bad:
    set_err(err, errlen,
            "rate_limit: '%s' is not QUERIES/SECONDS like 1000/60 (1-1000000 queries in "
            "1-86400 s), or 0 for no limit",
            v);
    return -1;
}

/*
 * Keys that hold a list are replaced, not appended to, when they are set again: the file
 * replaces the defaults and a flag replaces the file.
 */
static int set_server(struct config *c, const char *key, const char *v, char *err, size_t errlen)
{
    unsigned long n;
    if (strcmp(key, "listen") == 0) {
        c->n_listen = 0;
        if (for_each_item(c, v, add_listen, err, errlen) < 0)
            return -1;
        if (c->n_listen == 0) {
            set_err(err, errlen, "listen: at least one address is needed");
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "allow") == 0) {
        c->n_allow = 0;
        return for_each_item(c, v, add_allow, err, errlen);
    }
    if (strcmp(key, "blocking_mode") == 0) {
        static const char *const modes[] = {"nxdomain", "null", "refused", "nodata"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(v, modes[i]) == 0) {
                c->blocking_mode = (enum dnsmsg_block_mode)i;
                return 0;
            }
        }
        set_err(err, errlen, "blocking_mode: '%s' is not nxdomain, null, refused or nodata", v);
        return -1;
    }
    if (strcmp(key, "block_ttl") == 0) {
        if (parse_uint(v, 0, 604800, &n) < 0) {
            set_err(err, errlen, "block_ttl: '%s' is not a number of seconds (0-604800)", v);
            return -1;
        }
        c->block_ttl = (uint32_t)n;
        return 0;
    }
    if (strcmp(key, "threads") == 0) {
        if (parse_uint(v, 0, 256, &n) < 0) {
            set_err(err, errlen, "threads: '%s' is not 0 (one per core) to 256", v);
            return -1;
        }
        c->threads = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "user") == 0) {
        free(c->user);
        c->user = *v ? xstrdup(v) : NULL;
        return 0;
    }
    if (strcmp(key, "tcp_idle_timeout_ms") == 0) {
        if (parse_uint(v, 100, 3600000, &n) < 0) {
            set_err(err, errlen, "tcp_idle_timeout_ms: '%s' is not 100-3600000", v);
            return -1;
        }
        c->tcp_idle_ms = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "tcp_max_connections") == 0) {
        if (parse_uint(v, 1, 65536, &n) < 0) {
            set_err(err, errlen, "tcp_max_connections: '%s' is not 1-65536", v);
            return -1;
        }
        c->tcp_max_connections = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "tls_listen") == 0) {
        c->n_tls_listen = 0;
        return strcasecmp(v, "off") == 0 ? 0 : for_each_item(c, v, add_tls_listen, err, errlen);
    }
    if (strcmp(key, "tls_cert") == 0 || strcmp(key, "tls_key") == 0) {
        char **path = key[4] == 'c' ? &c->tls_cert : &c->tls_key;
        free(*path);
        *path = *v ? xstrdup(v) : NULL;
        return 0;
    }
    if (strcmp(key, "tls_max_connections") == 0) {
        if (parse_uint(v, 1, 65536, &n) < 0) {
            set_err(err, errlen, "tls_max_connections: '%s' is not 1-65536", v);
            return -1;
        }
        c->tls_max_connections = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "max_pending") == 0) {
        if (parse_uint(v, 1, 1000000, &n) < 0) {
            set_err(err, errlen, "max_pending: '%s' is not 1-1000000", v);
            return -1;
        }
        c->max_pending = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "cache_size") == 0) {
        /* Bytes, or with a K, M or G suffix. */
        char num[32];
        size_t len = strlen(v);
        unsigned long mult = 1;
        if (len > 0 && len < sizeof num) {
            char last = v[len - 1];
            mult = last == 'K' || last == 'k'   ? 1ul << 10
                   : last == 'M' || last == 'm' ? 1ul << 20
                   : last == 'G' || last == 'g' ? 1ul << 30
                                                : 1;
            memcpy(num, v, len + 1);
            if (mult > 1)
                num[len - 1] = '\0';
        }
        if (len == 0 || len >= sizeof num || parse_uint(num, 0, 1ul << 40, &n) < 0 ||
            n > (1ul << 40) / mult) {
            set_err(err, errlen, "cache_size: '%s' is not a size like 8M (0 turns the cache off)",
                    v);
            return -1;
        }
        c->cache_size = (size_t)(n * mult);
        return 0;
    }
    if (strcmp(key, "rate_limit") == 0)
        return parse_rate_limit(c, v, err, errlen);
    if (strcmp(key, "log_level") == 0) {
        if (log_level_parse(v, &c->log_level) < 0) {
            set_err(err, errlen, "log_level: '%s' is not error, warn, info or debug", v);
            return -1;
        }
        return 0;
    }
    set_err(err, errlen, "unknown key '%s' in [server]", key);
    return -1;
}

static int set_upstream(struct config *c, const char *key, const char *v, char *err, size_t errlen)
{
    unsigned long n;
    if (strcmp(key, "servers") == 0) {
        clear_upstreams(c);
        return for_each_item(c, v, add_upstream, err, errlen);
    }
    if (strcmp(key, "tls_ca") == 0) {
        /* Loaded now, so that a bad file is reported with its line. */
        free(c->tls_ca);
        c->tls_ca = NULL;
        tls_ctx_unref(c->upstream_tls_ctx);
        c->upstream_tls_ctx = NULL;
        if (!*v)
            return 0; /* the system store */
        struct stat st;
        int rc = stat(v, &st);
        if (rc < 0 || !S_ISREG(st.st_mode)) {
            set_err(err, errlen, "tls_ca: '%s': %s", v,
                    rc < 0 ? strerror(errno) : "not a regular file");
            return -1;
        }
        char why[256];
        if (!(c->upstream_tls_ctx = tls_client_ctx(v, why, sizeof why))) {
            set_err(err, errlen, "tls_ca: %s", why);
            return -1;
        }
        c->tls_ca = xstrdup(v);
        return 0;
    }
    if (strcmp(key, "timeout_ms") == 0) {
        if (parse_uint(v, 10, 60000, &n) < 0) {
            set_err(err, errlen, "timeout_ms: '%s' is not 10-60000", v);
            return -1;
        }
        c->timeout_ms = (unsigned)n;
        return 0;
    }
    set_err(err, errlen, "unknown key '%s' in [upstream]", key);
    return -1;
}

static int set_lists(struct config *c, const char *key, const char *v, char *err, size_t errlen)
{
    if (strcmp(key, "paths") == 0) {
        free_strv(c->list_paths, c->n_list_paths);
        c->list_paths = NULL;
        c->n_list_paths = 0;
        return for_each_item(c, v, add_list_path, err, errlen);
    }
    if (strcmp(key, "vendors") == 0) {
        free_strv(c->vendors, c->n_vendors);
        c->vendors = NULL;
        c->n_vendors = 0;
        return for_each_item(c, v, add_vendor, err, errlen);
    }
    if (strcmp(key, "allow") == 0) {
        free_strv(c->allow_lists, c->n_allow_lists);
        c->allow_lists = NULL;
        c->n_allow_lists = 0;
        return for_each_item(c, v, add_allow_list, err, errlen);
    }
    bool *flag = strcmp(key, "strict") == 0                ? &c->strict
                 : strcmp(key, "canary_doh") == 0          ? &c->canary_doh
                 : strcmp(key, "canary_icloud_relay") == 0 ? &c->canary_icloud_relay
                                                           : NULL;
    if (flag) {
        if (parse_bool(v, flag) < 0) {
            set_err(err, errlen, "%s: '%s' is not yes or no", key, v);
            return -1;
        }
        return 0;
    }
    set_err(err, errlen, "unknown key '%s' in [lists]", key);
    return -1;
}

static int set_log(struct config *c, const char *key, const char *v, char *err, size_t errlen)
{
    unsigned long n;
    bool *flag = NULL;
    if (strcmp(key, "db") == 0) {
        if (!*v) {
            set_err(err, errlen, "db: a file name is needed");
            return -1;
        }
        free(c->db);
        c->db = xstrdup(v);
        return 0;
    }
    if (strcmp(key, "retention_days") == 0) {
        if (parse_uint(v, 0, 36500, &n) < 0) {
            set_err(err, errlen, "retention_days: '%s' is not 0 (keep all) to 36500", v);
            return -1;
        }
        c->retention_days = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "flush_ms") == 0) {
        if (parse_uint(v, 10, 60000, &n) < 0) {
            set_err(err, errlen, "flush_ms: '%s' is not 10-60000", v);
            return -1;
        }
        c->flush_ms = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "queue_size") == 0) {
        if (parse_uint(v, 64, 16777216, &n) < 0) {
            set_err(err, errlen, "queue_size: '%s' is not 64-16777216", v);
            return -1;
        }
        c->log_queue = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "trusted_forwarders") == 0) {
        c->n_trusted_forwarders = 0;
        return for_each_item(c, v, add_trusted, err, errlen);
    }
    if (strcmp(key, "enabled") == 0)
        flag = &c->log_enabled;
    else if (strcmp(key, "log_allowed") == 0)
        flag = &c->log_allowed;
    else if (strcmp(key, "anonymize_clients") == 0)
        flag = &c->anonymize_clients;
    if (flag) {
        if (parse_bool(v, flag) < 0) {
            set_err(err, errlen, "%s: '%s' is not yes or no", key, v);
            return -1;
        }
        return 0;
    }
    set_err(err, errlen, "unknown key '%s' in [log]", key);
    return -1;
}

static int set_client(struct config *c, const char *key, const char *v, char *err, size_t errlen)
{
    if (!*v) {
        set_err(err, errlen, "client '%s': a name is needed", key);
        return -1;
    }
    for (size_t i = 0; i < c->n_clients; i++) {
        if (strcasecmp(c->clients[i].key, key) == 0) {
            free(c->clients[i].name);
            c->clients[i].name = xstrdup(v);
            return 0;
        }
    }
    c->clients = xrealloc(c->clients, (c->n_clients + 1) * sizeof *c->clients);
    c->clients[c->n_clients].key = xstrdup(key);
    c->clients[c->n_clients].name = xstrdup(v);
    c->n_clients++;
    return 0;
}

int config_set(struct config *c, const char *section, const char *key, const char *value, char *err,
               size_t errlen)
{
    if (strcmp(section, "server") == 0)
        return set_server(c, key, value, err, errlen);
    if (strcmp(section, "upstream") == 0)
        return set_upstream(c, key, value, err, errlen);
    if (strcmp(section, "lists") == 0)
        return set_lists(c, key, value, err, errlen);
    if (strcmp(section, "log") == 0)
        return set_log(c, key, value, err, errlen);
    if (strcmp(section, "clients") == 0)
        return set_client(c, key, value, err, errlen);
    set_err(err, errlen, "unknown section [%s]", section);
    return -1;
}

/* Cut an inline comment: '#' or ';' at the start or after whitespace. */
static void strip_comment(char *s)
{
    for (char *p = s; *p; p++) {
        if ((*p == '#' || *p == ';') && (p == s || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            return;
        }
    }
}

int config_load_string(struct config *c, const char *text, size_t len, const char *name, char *err,
                       size_t errlen)
{
    char section[64] = "";
    char line[MAX_LINE];
    char msg[512];
    size_t pos = 0;
    unsigned lineno = 0;

    while (pos < len) {
        size_t start = pos;
        while (pos < len && text[pos] != '\n')
            pos++;
        size_t n = pos - start;
        pos++; /* past the newline */
        lineno++;
        if (n >= sizeof line) {
            set_err(err, errlen, "%s:%u: line longer than %d bytes", name, lineno, MAX_LINE - 1);
            return -1;
        }
        memcpy(line, text + start, n);
        line[n] = '\0';
        if (memchr(line, '\0', n)) {
            set_err(err, errlen, "%s:%u: NUL byte in line", name, lineno);
            return -1;
        }
        char *s = line;
        if (lineno == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
            (unsigned char)s[2] == 0xBF)
            s += 3; /* UTF-8 BOM */
        strip_comment(s);
        s = trim(s);
        if (*s == '\0')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || close[1] != '\0') {
                set_err(err, errlen, "%s:%u: section header needs a closing ']'", name, lineno);
                return -1;
            }
            *close = '\0';
            char *sec = trim(s + 1);
            static const char *const known[] = {"server", "upstream", "lists", "log", "clients"};
            bool ok = false;
            for (size_t i = 0; i < sizeof known / sizeof *known; i++)
                ok = ok || strcmp(sec, known[i]) == 0;
            if (!ok) {
                set_err(err, errlen,
                        "%s:%u: unknown section [%s] (server, upstream, lists, log, clients)", name,
                        lineno, sec);
                return -1;
            }
            snprintf(section, sizeof section, "%s", sec);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            set_err(err, errlen, "%s:%u: expected 'key = value'", name, lineno);
            return -1;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (*key == '\0') {
            set_err(err, errlen, "%s:%u: missing key before '='", name, lineno);
            return -1;
        }
        if (section[0] == '\0') {
            set_err(err, errlen, "%s:%u: '%s' is outside a [section]", name, lineno, key);
            return -1;
        }
        if (config_set(c, section, key, value, msg, sizeof msg) < 0) {
            set_err(err, errlen, "%s:%u: %s", name, lineno, msg);
            return -1;
        }
        if (strcmp(section, "server") == 0 && strcmp(key, "tls_listen") == 0) {
            snprintf(msg, sizeof msg, "%s:%u", name, lineno); /* for config_finish's checks */
            free(c->tls_listen_at);
            c->tls_listen_at = xstrdup(msg);
        }
    }
    return 0;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n > cap) {
            cap = (len + n) * 2;
            buf = xrealloc(buf, cap);
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    int read_error = ferror(f);
    fclose(f);
    if (read_error) {
        free(buf);
        set_err(err, errlen, "%s: read error", path);
        return -1;
    }
    /* Normalise CRLF: the reader splits on '\n' and trims the '\r' as whitespace. */
    int rc = config_load_string(c, buf ? buf : "", len, path, err, errlen);
    free(buf);
    if (rc == 0) {
        free(c->path);
        c->path = xstrdup(path);
    }
    return rc;
}

/* Is sa (port aside) the address of one of this host's interfaces? */
static bool is_interface_address(const struct sockaddr *sa)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) < 0)
        return false;
    bool found = false;
    for (struct ifaddrs *i = list; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != sa->sa_family)
            continue;
        struct sockaddr_storage a;
        memcpy(&a, i->ifa_addr, netaddr_len(i->ifa_addr));
        netaddr_set_port(&a, netaddr_port(sa));
        found = netaddr_equal((const struct sockaddr *)&a, sa);
    }
    freeifaddrs(list);
    return found;
}

/*
 * Is this upstream one of our own listen sockets (a forwarding loop)? Caught here: the same
 * address, or a wildcard listener's port on loopback or on any address of this host. Loops
 * through another forwarder, or through a port only known after binding (port 0), are caught
 * at run time by the marker on our queries (upstream_query_is_ours).
 */
static bool is_own_address(const struct config *c, const struct sockaddr_storage *up)
{
    const struct sockaddr *u = (const struct sockaddr *)up;
    for (size_t i = 0; i < c->n_listen; i++) {
        const struct sockaddr *l = (const struct sockaddr *)&c->listen[i];
        if (netaddr_equal(l, u))
            return true;
        if (l->sa_family == u->sa_family && netaddr_port(l) == netaddr_port(u)) {
            struct cidr any;
            cidr_parse(l->sa_family == AF_INET ? "0.0.0.0/32" : "::/128", &any);
            struct cidr lo;
            cidr_parse(l->sa_family == AF_INET ? "127.0.0.0/8" : "::1/128", &lo);
            if (cidr_contains(&any, l) && (cidr_contains(&lo, u) || is_interface_address(u)))
                return true;
        }
    }
    return false;
}

/* Would a DoT listener take the TCP port of a DNS listener (the same port on the same address,
 * or on a wildcard of the same family)? With SO_REUSEPORT both would bind and share clients. */
static bool overlaps_listen(const struct config *c, const struct sockaddr *t)
{
    if (netaddr_port(t) == 0)
        return false;
    struct cidr any;
    cidr_parse(t->sa_family == AF_INET ? "0.0.0.0/32" : "::/128", &any);
    for (size_t i = 0; i < c->n_listen; i++) {
        const struct sockaddr *l = (const struct sockaddr *)&c->listen[i];
        if (l->sa_family == t->sa_family && netaddr_port(l) == netaddr_port(t) &&
            (netaddr_equal(l, t) || cidr_contains(&any, l) || cidr_contains(&any, t)))
            return true;
    }
    return false;
}

/* tls_listen needs a certificate and a key, and ports of its own. */
static int check_tls(const struct config *c, char *err, size_t errlen)
{
    const char *at = c->tls_listen_at ? c->tls_listen_at : "tls_listen";
    if (c->n_tls_listen == 0)
        return 0;
    if (!c->tls_cert || !c->tls_key) {
        set_err(err, errlen, "%s: tls_listen needs tls_cert and tls_key (PEM files) in [server]",
                at);
        return -1;
    }
    for (size_t i = 0; i < c->n_tls_listen; i++) {
        if (overlaps_listen(c, (const struct sockaddr *)&c->tls_listen[i])) {
            char a[NETADDR_STRLEN];
            netaddr_format((const struct sockaddr *)&c->tls_listen[i], true, a, sizeof a);
            set_err(err, errlen, "%s: tls_listen %s takes the TCP port of a listen address", at, a);
            return -1;
        }
    }
    return 0;
}

int config_finish(struct config *c, const char *resolv_conf, char *err, size_t errlen)
{
    if (check_tls(c, err, errlen) < 0)
        return -1;
    if (c->n_upstreams == 0) {
        FILE *f = fopen(resolv_conf, "r");
        if (!f) {
            set_err(err, errlen, "no upstream configured and %s: %s", resolv_conf, strerror(errno));
            return -1;
        }
        char line[512];
        unsigned lineno = 0;
        while (fgets(line, sizeof line, f)) {
            lineno++;
            char *s = trim(line);
            if (strncmp(s, "nameserver", 10) != 0 || !isspace((unsigned char)s[10]))
                continue;
            char *addr = trim(s + 10);
            char *sp = addr;
            while (*sp && !isspace((unsigned char)*sp))
                sp++;
            *sp = '\0';
            char *pct = strchr(addr, '%'); /* fe80::1%eth0: scope ids are not supported */
            struct sockaddr_storage ss;
            if (pct || netaddr_parse(addr, 53, &ss) < 0) {
                log_warn("config", "%s:%u: skipping nameserver '%s'", resolv_conf, lineno, addr);
                continue;
            }
            if (is_own_address(c, &ss)) {
                log_info("config", "%s:%u: skipping nameserver %s: that is telesink itself",
                         resolv_conf, lineno, addr);
                continue;
            }
            push_upstream(c, &ss, NULL);
        }
        fclose(f);
        if (c->n_upstreams == 0) {
            set_err(err, errlen,
                    "no upstream: %s lists no usable nameserver; set [upstream] servers or "
                    "--upstream",
                    resolv_conf);
            return -1;
        }
    }
    for (size_t i = 0; i < c->n_upstreams; i++) {
        if (is_own_address(c, &c->upstreams[i])) {
            char a[NETADDR_STRLEN];
            netaddr_format((struct sockaddr *)&c->upstreams[i], true, a, sizeof a);
            set_err(err, errlen, "upstream %s is one of telesink's own listen addresses", a);
            return -1;
        }
        if (c->upstream_tls[i] && !c->upstream_tls_ctx) {
            char why[256];
            if (!(c->upstream_tls_ctx = tls_client_ctx(NULL, why, sizeof why))) {
                set_err(err, errlen, "tls:// upstreams: %s", why);
                return -1;
            }
        }
    }
    return 0;
}

void config_format_upstream(const struct config *c, size_t i, char *buf, size_t len)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->upstreams[i];
    const char *name = c->upstream_tls[i];
    char a[NETADDR_STRLEN], bare[NETADDR_STRLEN];
    netaddr_format(sa, true, a, sizeof a);
    netaddr_format(sa, false, bare, sizeof bare);
    bool same = !name || strcmp(name, bare) == 0; /* no #NAME: the address is verified */
    snprintf(buf, len, "%s%s%s%s", name ? "tls://" : "", a, same ? "" : "#", same ? "" : name);
}
