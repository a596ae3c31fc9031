#include "neigh.h"

#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"

/* The kernel never puts more than 32 KiB into one dump datagram (netlink_recvmsg caps it). */
#define NEIGH_BUF 32768
/* Entries kept from one dump; a home LAN has tens. */
#define NEIGH_MAX 16384
/* A dump that takes longer than this is abandoned: the caller is a serving loop. */
#define NEIGH_RECV_TIMEOUT_MS 500

struct neigh_entry {
    int family; /* AF_INET or AF_INET6 */
    int ifindex;
    uint8_t addr[16]; /* 4 or 16 bytes used */
    uint8_t mac[6];
};

/* Lives from neigh_create() to neigh_destroy(), owned by one serving thread. */
struct neigh {
    unsigned refresh_ms;
    bool dumped; /* a dump was tried, at dumped_at */
    uint64_t dumped_at;
    uint32_t seq;
    struct neigh_entry *v; /* heap: the table from the last dump that succeeded */
    size_t n;
    uint8_t *buf; /* heap, NEIGH_BUF bytes: the receive buffer */
};

/* A table being filled by one dump. */
struct table {
    struct neigh_entry *v;
    size_t n, cap;
};

struct neigh *neigh_create(unsigned refresh_ms)
{
    struct neigh *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->buf = malloc(NEIGH_BUF);
    if (!n->buf) {
        free(n);
        return NULL;
    }
    n->refresh_ms = refresh_ms;
    return n;
}

void neigh_destroy(struct neigh *n)
{
    if (!n)
        return;
    free(n->v);
    free(n->buf);
    free(n);
}

static bool mac_is_zero(const uint8_t *mac)
{
    static const uint8_t zero[6];
    return memcmp(mac, zero, 6) == 0;
}

/* One RTM_NEWNEIGH message: add it to t when it has a usable address and MAC. */
static void add_entry(struct table *t, const uint8_t *msg, size_t len)
{
    size_t off = NLMSG_ALIGN(sizeof(struct ndmsg));
    if (len < off)
        return;
    struct ndmsg ndm;
    memcpy(&ndm, msg, sizeof ndm);
    if (ndm.ndm_family != AF_INET && ndm.ndm_family != AF_INET6)
        return;
    if (ndm.ndm_state & (NUD_FAILED | NUD_INCOMPLETE))
        return;
    if (ndm.ndm_type != RTN_UNICAST)
        return; /* multicast, broadcast and our own addresses are not devices */

    struct neigh_entry e = {.family = ndm.ndm_family, .ifindex = ndm.ndm_ifindex};
    size_t alen = ndm.ndm_family == AF_INET ? 4 : 16;
    bool have_dst = false, have_mac = false;
    while (len - off >= sizeof(struct rtattr)) {
        struct rtattr rta;
        memcpy(&rta, msg + off, sizeof rta);
        if (rta.rta_len < sizeof rta || rta.rta_len > len - off)
            return; /* malformed: drop the entry */
        const uint8_t *data = msg + off + RTA_LENGTH(0);
        size_t dlen = rta.rta_len - RTA_LENGTH(0);
        switch (rta.rta_type & NLA_TYPE_MASK) {
        case NDA_DST:
            if (dlen == alen) {
                memcpy(e.addr, data, alen);
                have_dst = true;
            }
            break;
        case NDA_LLADDR:
            if (dlen == 6) {
                memcpy(e.mac, data, 6);
                have_mac = !mac_is_zero(e.mac);
            }
            break;
        default:
            break;
        }
        size_t step = RTA_ALIGN(rta.rta_len);
        if (step >= len - off)
            break;
        off += step;
    }
    if (!have_dst || !have_mac || t->n >= NEIGH_MAX)
        return;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        struct neigh_entry *v = realloc(t->v, cap * sizeof *v);
        if (!v)
            return; /* out of memory: a shorter table */
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = e;
}

/*
 * Walk one datagram of the dump. Returns 1 when the dump goes on, 0 at NLMSG_DONE, or a
 * negative errno (NLMSG_ERROR, or a message that does not fit).
 */
static int read_datagram(struct table *t, const uint8_t *buf, size_t len, uint32_t seq)
{
    size_t off = 0;
    while (len - off >= sizeof(struct nlmsghdr)) {
        struct nlmsghdr h;
        memcpy(&h, buf + off, sizeof h);
        if (h.nlmsg_len < sizeof h || h.nlmsg_len > len - off)
            return -EBADMSG;
        const uint8_t *payload = buf + off + NLMSG_HDRLEN;
        size_t plen = h.nlmsg_len - NLMSG_HDRLEN;
        if (h.nlmsg_seq == seq) {
            if (h.nlmsg_type == NLMSG_DONE)
                return 0;
            if (h.nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr err;
                if (plen < sizeof err)
                    return -EBADMSG;
                memcpy(&err, payload, sizeof err);
                return err.error < 0 ? err.error : -EPROTO;
            }
            if (h.nlmsg_type == RTM_NEWNEIGH)
                add_entry(t, payload, plen);
        }
        size_t step = NLMSG_ALIGN(h.nlmsg_len);
        if (step >= len - off)
            break;
        off += step;
    }
    return 1;
}

/* One RTM_GETNEIGH dump into t. Returns 0 or a negative errno; t may hold entries either way. */
static int dump(struct neigh *n, struct table *t)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    int rc;
    struct timeval tv = {.tv_sec = 0, .tv_usec = NEIGH_RECV_TIMEOUT_MS * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
        rc = -errno;
        goto out;
    }

    struct {
        struct nlmsghdr h;
        struct ndmsg ndm;
    } req;
    memset(&req, 0, sizeof req);
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.ndm);
    req.h.nlmsg_type = RTM_GETNEIGH;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = ++n->seq;
    req.ndm.ndm_family = AF_UNSPEC;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t sent;
    do {
        sent = sendto(fd, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) {
        rc = -errno;
        goto out;
    }
    if ((size_t)sent != req.h.nlmsg_len) {
        rc = -EIO;
        goto out;
    }

    for (;;) {
        struct sockaddr_nl from;
        struct iovec iov = {.iov_base = n->buf, .iov_len = NEIGH_BUF};
        struct msghdr mh = {
            .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
        ssize_t got = recvmsg(fd, &mh, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -errno;
            goto out;
        }
        if (got == 0 || (mh.msg_flags & MSG_TRUNC)) {
            rc = -EMSGSIZE;
            goto out;
        }
        if (mh.msg_namelen < sizeof from || from.nl_pid != 0)
            continue; /* only the kernel answers a dump */
        rc = read_datagram(t, n->buf, (size_t)got, n->seq);
        if (rc <= 0)
            goto out;
    }
out:
    close(fd);
    return rc;
}

static bool find(const struct neigh *n, int family, const uint8_t *addr, uint32_t scope,
                 uint8_t mac[6])
{
    size_t alen = family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < n->n; i++) {
        const struct neigh_entry *e = &n->v[i];
        if (e->family != family || memcmp(e->addr, addr, alen) != 0)
            continue;
        /* A link-local address names a device only together with its link. */
        if (scope != 0 && (uint32_t)e->ifindex != scope)
            continue;
        memcpy(mac, e->mac, 6);
        return true;
    }
    return false;
}

bool neigh_lookup(struct neigh *n, const struct sockaddr *addr, uint64_t now_ms, uint8_t mac[6])
{
    uint8_t key[16];
    int family;
    uint32_t scope = 0;
    if (addr->sa_family == AF_INET) {
        family = AF_INET;
        memcpy(key, &((const struct sockaddr_in *)addr)->sin_addr, 4);
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)addr;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            family = AF_INET;
            memcpy(key, s6->sin6_addr.s6_addr + 12, 4);
        } else {
            family = AF_INET6;
            memcpy(key, &s6->sin6_addr, 16);
            if (IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr))
                scope = s6->sin6_scope_id;
        }
    } else {
        return false;
    }

    /* A fresh table answers from memory; an old one is read again first, hit or not (an
     * address handed to another device must not keep the previous device's MAC). */
    if (n->dumped && now_ms - n->dumped_at < n->refresh_ms)
        return find(n, family, key, scope, mac);
    n->dumped = true;
    n->dumped_at = now_ms;

    struct table t = {0};
    int rc = dump(n, &t);
    if (rc < 0) {
        /* Keep the old table: a failed dump says nothing about the devices in it. */
        log_debug("neigh", "neighbour dump failed: %s", strerror(-rc));
        free(t.v);
        return find(n, family, key, scope, mac);
    }
    free(n->v);
    n->v = t.v;
    n->n = t.n;
    return find(n, family, key, scope, mac);
}
