/*
 * netaddr: socket addresses and CIDR prefixes as text.
 *
 * Pure helpers shared by config (parsing "ADDR:PORT" and "NET/LEN"), the listeners (access
 * control) and the log (printing a client). No I/O.
 */
#ifndef TELESINK_NETADDR_H
#define TELESINK_NETADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Long enough for "[ffff:...:ffff%ifname]:65535". */
#define NETADDR_STRLEN 80

struct cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network address, host bits cleared */
    uint8_t prefix;   /* prefix length in bits */
};

/*
 * Parse "1.2.3.4", "1.2.3.4:53", "::1", "[::1]" or "[::1]:53" into *out. A missing port becomes
 * default_port. Returns 0, or -1 when the text is not an address (port 0 is allowed: "any free").
 */
int netaddr_parse(const char *text, uint16_t default_port, struct sockaddr_storage *out);

/* Parse "10.0.0.0/8", "fc00::/7" or a bare address (a /32 or /128). Returns 0 or -1. */
int cidr_parse(const char *text, struct cidr *out);

/* True when sa (AF_INET or AF_INET6; v4-mapped v6 is matched as v4) lies inside c. */
bool cidr_contains(const struct cidr *c, const struct sockaddr *sa);

/* Format as "1.2.3.4:53" or "[::1]:53" (with_port) or the bare address. Always NUL-terminates. */
void netaddr_format(const struct sockaddr *sa, bool with_port, char *buf, size_t len);

uint16_t netaddr_port(const struct sockaddr *sa);
void netaddr_set_port(struct sockaddr_storage *sa, uint16_t port);
socklen_t netaddr_len(const struct sockaddr *sa);
/* Same family, address and port. */
bool netaddr_equal(const struct sockaddr *a, const struct sockaddr *b);

#endif
