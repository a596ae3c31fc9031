/*
 * neigh: the MAC address of a client on our own LAN, from the kernel's neighbour table.
 *
 * One NETLINK_ROUTE RTM_GETNEIGH dump (ARP and IPv6 NDP together) fills a small table; a lookup
 * that misses dumps again when the table is older than refresh_ms, so a new device is found on
 * its first queries and an unknown address costs at most one dump per refresh_ms. Entries that
 * are FAILED or INCOMPLETE, not unicast, or without a 6-byte non-zero link-layer address
 * are left out. A socket error is "not found", never fatal: the table stays as it was.
 *
 * Does I/O (one short blocking netlink exchange per refresh), no event loop. Not thread-safe:
 * each serving thread owns its own.
 */
#ifndef TELESINK_NEIGH_H
#define TELESINK_NEIGH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct neigh;

/* An empty table (the first lookup dumps), or NULL when out of memory. */
struct neigh *neigh_create(unsigned refresh_ms);
void neigh_destroy(struct neigh *n);

/*
 * The MAC for this address (AF_INET, AF_INET6, or v4-mapped IPv6 looked up as IPv4), dumping
 * the kernel's table again when it is older than refresh_ms and the address is not in it.
 * now_ms is the caller's monotonic clock. Returns true and fills mac when found.
 */
bool neigh_lookup(struct neigh *n, const struct sockaddr *addr, uint64_t now_ms, uint8_t mac[6]);

#endif
