/*
 * clients: who sent a query, as the query log should name it.
 *
 * The identity starts as the packet's source address. When the packet comes from a trusted
 * forwarder (a dnsmasq or Pi-hole in front of us, [log] trusted_forwarders), the forwarder may
 * say who its client was in EDNS options: Client Subnet (option 8, RFC 7871; dnsmasq
 * --add-subnet) and the MAC address (dnsmasq --add-mac: option 65001 with the raw bytes, or
 * with --add-mac=text / --add-mac=base64 option 65073 with "aa:bb:cc:dd:ee:ff" / 8 base64
 * characters). The caller decides whom to trust; this module only reads what it is handed.
 * A MAC for a client on our own LAN comes from the neighbour table instead (neigh.h).
 *
 * Pure: no sockets, no event loop, no globals.
 */
#ifndef TELESINK_CLIENTS_H
#define TELESINK_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "dnsmsg.h"

/* EDNS option codes read here. */
#define EDNS_OPT_ECS      8     /* RFC 7871 Client Subnet */
#define EDNS_OPT_MAC      65001 /* dnsmasq --add-mac (binary; private use, dyndns.org) */
#define EDNS_OPT_DEVICEID 65073 /* dnsmasq --add-mac=text|base64 (private use, Nominum) */

/* The bits clients_from_edns() returns. */
enum {
    CLIENTS_ECS = 1, /* addr/prefix came from Client Subnet */
    CLIENTS_MAC = 2, /* mac came from an add-mac option */
};

/* Length of "aa:bb:cc:dd:ee:ff" plus the NUL. */
#define CLIENTS_MAC_STRLEN 18

/* One query's client. Lives on the stack or in the log record it describes. */
struct client_id {
    struct sockaddr_storage addr; /* the device: the packet's source, or the ECS address */
    uint8_t prefix;               /* prefix length of addr (32/128 for a full address) */
    bool has_mac;
    uint8_t mac[6];
    bool from_edns; /* addr or mac came from a (trusted) forwarder's EDNS options */
};

/*
 * Start from the packet's source address (a v4-mapped IPv6 source becomes plain IPv4, so that
 * one device has one identity on a dual-stack socket). Clears everything else.
 */
void clients_from_source(const struct sockaddr *src, struct client_id *out);

/*
 * Read Client Subnet and add-mac from the OPT RDATA of a query that dnsmsg_parse_query()
 * accepted (q->opt_rdata / q->opt_rdlen locate it in pkt). A well-formed Client Subnet with a
 * non-zero SOURCE PREFIX-LENGTH replaces out->addr and out->prefix (keeping the port of the
 * original source); one with prefix 0 carries no address (dnsmasq's default marker) and is
 * skipped. A MAC from option 65001 (6 bytes) or 65073 (17-byte text or 8-byte base64; 65001
 * wins when both are present) fills out->mac. Sets out->from_edns when either was taken.
 * Malformed options are ignored, never trusted; the first well-formed one of each kind counts.
 * Returns CLIENTS_ECS | CLIENTS_MAC, or 0. Call it only for trusted forwarders.
 */
int clients_from_edns(const uint8_t *pkt, size_t len, const struct dnsmsg_query *q,
                      struct client_id *out);

/* "aa:bb:cc:dd:ee:ff" (lower case) into buf (>= CLIENTS_MAC_STRLEN bytes). */
void clients_format_mac(const uint8_t mac[6], char *buf);

/* Parse "aa:bb:cc:dd:ee:ff" or "AA-BB-CC-DD-EE-FF" (one separator throughout). 0 or -1. */
int clients_parse_mac(const char *text, uint8_t mac[6]);

/*
 * The configured name for this client, or NULL. [clients] keys are MACs, addresses or CIDR
 * prefixes: a MAC key wins over any address key; among address keys the longest prefix that
 * contains the client wins, and only when the client's own prefix is at least as long (an ECS
 * /24 does not match a /32 key). Keys that are none of these are skipped.
 */
const char *clients_name(const struct config *cfg, const struct client_id *id);

#endif
