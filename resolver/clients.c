#include "clients.h"

#include "wire.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static bool mac_is_zero(const uint8_t mac[6])
{
    static const uint8_t zero[6];
    return memcmp(mac, zero, 6) == 0;
}

void clients_from_source(const struct sockaddr *src, struct client_id *out)
{
    memset(out, 0, sizeof *out);
    if (src->sa_family == AF_INET) {
        memcpy(&out->addr, src, sizeof(struct sockaddr_in));
        out->prefix = 32;
    } else if (src->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)src;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&out->addr;
            s4->sin_family = AF_INET;
            s4->sin_port = s6->sin6_port;
            memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
            out->prefix = 32;
        } else {
            memcpy(&out->addr, src, sizeof(struct sockaddr_in6));
            out->prefix = 128;
        }
    } else {
        out->addr.ss_family = AF_UNSPEC;
    }
}

/*
 * Client Subnet (RFC 7871 section 6): FAMILY, SOURCE PREFIX-LENGTH, SCOPE PREFIX-LENGTH, then
 * exactly ceil(SOURCE / 8) address bytes with the bits past SOURCE zero. Returns true and fills
 * out when the option is well-formed and carries an address (SOURCE > 0).
 */
static bool read_ecs(const uint8_t *p, size_t n, struct client_id *out)
{
    if (n < 4)
        return false;
    uint16_t family = rd16(p);
    unsigned source = p[2];
    unsigned width;
    if (family == 1)
        width = 32;
    else if (family == 2)
        width = 128;
    else
        return false;
    size_t nbytes = (source + 7) / 8;
    if (source > width || n != 4 + nbytes)
        return false;
    if (source % 8 != 0 && (p[4 + nbytes - 1] & (0xFFu >> (source % 8))) != 0)
        return false;
    if (source == 0)
        return false; /* "no address, and add none upstream": nothing to identify */

    uint16_t port = 0;
    if (out->addr.ss_family == AF_INET)
        port = ((const struct sockaddr_in *)&out->addr)->sin_port;
    else if (out->addr.ss_family == AF_INET6)
        port = ((const struct sockaddr_in6 *)&out->addr)->sin6_port;
    memset(&out->addr, 0, sizeof out->addr);
    if (family == 1) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&out->addr;
        s4->sin_family = AF_INET;
        s4->sin_port = port;
        memcpy(&s4->sin_addr, p + 4, nbytes);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->addr;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = port;
        memcpy(&s6->sin6_addr, p + 4, nbytes);
    }
    out->prefix = (uint8_t)source;
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "aa:bb:cc:dd:ee:ff" or with '-', exactly 17 bytes, one separator throughout. */
static int parse_mac_text(const char *s, size_t n, uint8_t mac[6])
{
    if (n != 17 || (s[2] != ':' && s[2] != '-'))
        return -1;
    uint8_t out[6];
    for (size_t i = 0; i < 6; i++) {
        const char *g = s + 3 * i;
        if (i < 5 && g[2] != s[2])
            return -1;
        int hi = hex_digit(g[0]), lo = hex_digit(g[1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(mac, out, 6);
    return 0;
}

static int base64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* dnsmasq's encoding: two groups of 3 bytes, 4 characters each, standard alphabet, no '='. */
static int parse_mac_base64(const uint8_t *s, size_t n, uint8_t mac[6])
{
    if (n != 8)
        return -1;
    uint8_t out[6];
    for (size_t g = 0; g < 2; g++) {
        uint32_t v = 0;
        for (size_t i = 0; i < 4; i++) {
            int d = base64_value(s[4 * g + i]);
            if (d < 0)
                return -1;
            v = v << 6 | (uint32_t)d;
        }
        out[3 * g] = (uint8_t)(v >> 16);
        out[3 * g + 1] = (uint8_t)(v >> 8);
        out[3 * g + 2] = (uint8_t)v;
    }
    memcpy(mac, out, 6);
    return 0;
}

/* The three forms of dnsmasq's --add-mac, told apart by length. */
static bool read_mac(uint16_t code, const uint8_t *p, size_t n, uint8_t mac[6])
{
    uint8_t m[6];
    int rc = -1;
    if (n == 6 && code == EDNS_OPT_MAC) {
        memcpy(m, p, 6);
        rc = 0;
    } else if (n == 17) {
        rc = parse_mac_text((const char *)p, n, m);
    } else if (n == 8) {
        rc = parse_mac_base64(p, n, m);
    }
    if (rc < 0)
        return false;
    if (mac_is_zero(m))
        return false;
    memcpy(mac, m, 6);
    return true;
}

int clients_from_edns(const uint8_t *pkt, size_t len, const struct dnsmsg_query *q,
                      struct client_id *out)
{
    if (!q->edns || (size_t)q->opt_rdata + q->opt_rdlen > len)
        return 0;
    const uint8_t *p = pkt + q->opt_rdata, *end = p + q->opt_rdlen;
    int found = 0;
    bool mac_65001 = false;
    uint8_t mac[6];
    while (end - p >= 4) {
        uint16_t code = rd16(p), n = rd16(p + 2);
        const uint8_t *data = p + 4;
        if ((size_t)(end - data) < n)
            break; /* dnsmsg_parse_query() checked this; do not rely on it */
        p = data + n;
        if (code == EDNS_OPT_ECS) {
            if (!(found & CLIENTS_ECS) && read_ecs(data, n, out))
                found |= CLIENTS_ECS;
        } else if (code == EDNS_OPT_MAC || code == EDNS_OPT_DEVICEID) {
            /* 65001 (what plain --add-mac sends) wins over 65073 (text and base64). */
            if (mac_65001 || ((found & CLIENTS_MAC) && code != EDNS_OPT_MAC))
                continue;
            if (read_mac(code, data, n, mac)) {
                found |= CLIENTS_MAC;
                mac_65001 = code == EDNS_OPT_MAC;
            }
        }
    }
    if (found & CLIENTS_MAC) {
        out->has_mac = true;
        memcpy(out->mac, mac, 6);
    }
    if (found)
        out->from_edns = true;
    return found;
}

void clients_format_mac(const uint8_t mac[6], char *buf)
{
    snprintf(buf, CLIENTS_MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
             mac[3], mac[4], mac[5]);
}

int clients_parse_mac(const char *text, uint8_t mac[6])
{
    return parse_mac_text(text, strlen(text), mac);
}

/* True when id lies inside c and is at least as specific. */
static bool cidr_matches(const struct cidr *c, const struct client_id *id)
{
    return id->prefix >= c->prefix && cidr_contains(c, (const struct sockaddr *)&id->addr);
}

const char *clients_name(const struct config *cfg, const struct client_id *id)
{
    const char *best = NULL;
    int best_prefix = -1;
    for (size_t i = 0; i < cfg->n_clients; i++) {
        const struct client_name *cn = &cfg->clients[i];
        uint8_t mac[6];
        struct cidr c;
        if (clients_parse_mac(cn->key, mac) == 0) {
            if (id->has_mac && memcmp(mac, id->mac, 6) == 0)
                return cn->name;
        } else if (cidr_parse(cn->key, &c) == 0) {
            if ((int)c.prefix > best_prefix && cidr_matches(&c, id)) {
                best = cn->name;
                best_prefix = c.prefix;
            }
        }
    }
    return best;
}
