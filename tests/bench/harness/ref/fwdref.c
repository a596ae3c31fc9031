/*
 * fwdref: the ceiling of the mixed workload for a server that forwards its cache misses.
 *
 * The harness's trivial responder (harness/ref/refdns.c) answers everything itself, so in the
 * mixed workload it never wakes the NSD upstream that shares the client's core with dnsperf.
 * A real forwarder must: 10% of the mixed queries are names nobody has asked before. This is the
 * least work that can do it: one thread, recvmmsg/sendmmsg on both sides, the query rewritten in
 * place and answered at once (NXDOMAIN) unless its first label is one of the generator's unique
 * miss names ([uv]<digits>-<hex>), which go to the upstream on one connected socket with a fresh
 * ID and come back to the client with theirs. No parsing beyond the first label, no cache, no
 * log, no timeouts (a lost upstream reply loses the query). Whatever dnsperf reaches against
 * this is the best QPS any forwarding server can show in the mixed workload on this machine.
 *
 * Build: gcc -O2 -o fwdref fwdref.c
 * Usage: fwdref ADDR PORT UPSTREAM_ADDR UPSTREAM_PORT
 * Stops on SIGINT/SIGTERM.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define BUFSZ 1232
#define SLOTS 65536 /* upstream IDs: one slot each */

static volatile sig_atomic_t stop;
static void on_sig(int s)
{
    (void)s;
    stop = 1;
}

struct slot {
    bool used;
    uint16_t client_id;
    struct sockaddr_in client;
};

static struct slot slots[SLOTS];
static uint16_t next_id;

/* A generator miss name: first label [uv][<rep>x]<digits>-<hex> ("u2x": repetition 2). */
static bool is_miss(const unsigned char *p, size_t n)
{
    if (n < 13 + 4)
        return false;
    size_t len = p[12];
    if (len < 4 || 13 + len > n || (p[13] != 'u' && p[13] != 'v'))
        return false;
    size_t i = 1;
    while (i < len && isdigit(p[13 + i]))
        i++;
    if (i > 1 && i < len && p[13 + i] == 'x') { /* a repetition's stream */
        size_t at = ++i;
        while (i < len && isdigit(p[13 + i]))
            i++;
        if (i == at)
            return false;
    }
    if (i == 1 || i >= len || p[13 + i] != '-')
        return false;
    for (i++; i < len; i++)
        if (!isxdigit(p[13 + i]))
            return false;
    return true;
}

/* The query rewritten into an empty NXDOMAIN answer; 0 to drop it. */
static size_t nxdomain(unsigned char *p, size_t n)
{
    if (n < 12 || (p[2] & 0x80))
        return 0;
    size_t off = 12;
    while (off < n && p[off] != 0) {
        if (p[off] & 0xC0)
            return 0;
        off += (size_t)p[off] + 1;
    }
    off += 1 + 4;
    if (off > n)
        return 0;
    p[2] = (unsigned char)(0x80 | (p[2] & 0x79));
    p[3] = 0x83;
    p[4] = 0, p[5] = 1;
    memset(p + 6, 0, 6);
    return off;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: fwdref ADDR PORT UPSTREAM_ADDR UPSTREAM_PORT\n");
        return 2;
    }
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    struct sockaddr_in up = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[4]))};
    if (inet_pton(AF_INET, argv[1], &me.sin_addr) != 1 || inet_pton(AF_INET, argv[3], &up.sin_addr) != 1) {
        fprintf(stderr, "fwdref: IPv4 addresses only\n");
        return 2;
    }
    int one = 1;
    int cs = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int us = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    setsockopt(cs, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(cs, (struct sockaddr *)&me, sizeof me) != 0 || connect(us, (struct sockaddr *)&up, sizeof up) != 0) {
        perror("fwdref");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = cs};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs, &ev);
    ev.data.fd = us;
    epoll_ctl(ep, EPOLL_CTL_ADD, us, &ev);
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);

    static unsigned char in[BATCH][BUFSZ], fwd[BATCH][BUFSZ];
    static struct mmsghdr im[BATCH], om[BATCH], fm[BATCH];
    static struct iovec iv[BATCH], ov[BATCH], fv[BATCH];
    static struct sockaddr_in from[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iv[i] = (struct iovec){in[i], BUFSZ};
        im[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_iov = &iv[i], .msg_iovlen = 1};
    }
    while (!stop) {
        struct epoll_event evs[2];
        int ne = epoll_wait(ep, evs, 2, 200);
        for (int e = 0; e < ne; e++) {
            int fd = evs[e].data.fd;
            for (;;) { /* drain the socket, one batch at a time */
                for (int i = 0; i < BATCH; i++) {
                    im[i].msg_hdr.msg_namelen = sizeof from[i];
                    iv[i].iov_len = BUFSZ;
                }
                int n = recvmmsg(fd, im, BATCH, MSG_DONTWAIT, NULL);
                if (n <= 0)
                    break;
                int no = 0, nf = 0;
                for (int i = 0; i < n; i++) {
                    unsigned char *p = in[i];
                    size_t len = im[i].msg_len;
                    if (len < 12)
                        continue;
                    if (fd == us) { /* an upstream reply: back to its client */
                        uint16_t id = (uint16_t)(p[0] << 8 | p[1]);
                        struct slot *s = &slots[id];
                        if (!s->used)
                            continue;
                        s->used = false;
                        p[0] = (unsigned char)(s->client_id >> 8), p[1] = (unsigned char)s->client_id;
                        from[i] = s->client;
                        ov[no] = (struct iovec){p, len};
                        om[no].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i],
                                                         .msg_iov = &ov[no], .msg_iovlen = 1};
                        no++;
                    } else if (is_miss(p, len) && !(p[2] & 0x80)) {
                        uint16_t id = next_id++;
                        struct slot *s = &slots[id];
                        s->used = true;
                        s->client_id = (uint16_t)(p[0] << 8 | p[1]);
                        s->client = from[i];
                        memcpy(fwd[nf], p, len);
                        fwd[nf][0] = (unsigned char)(id >> 8), fwd[nf][1] = (unsigned char)id;
                        fv[nf] = (struct iovec){fwd[nf], len};
                        fm[nf].msg_hdr = (struct msghdr){.msg_iov = &fv[nf], .msg_iovlen = 1};
                        nf++;
                    } else if ((len = nxdomain(p, len)) > 0) {
                        ov[no] = (struct iovec){p, len};
                        om[no].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i],
                                                         .msg_iov = &ov[no], .msg_iovlen = 1};
                        no++;
                    }
                }
                for (int k = 0; k < no;) {
                    int s = sendmmsg(cs, om + k, (unsigned)(no - k), 0);
                    if (s <= 0)
                        break;
                    k += s;
                }
                for (int k = 0; k < nf;) {
                    int s = sendmmsg(us, fm + k, (unsigned)(nf - k), 0);
                    if (s <= 0)
                        break;
                    k += s;
                }
                if (n < BATCH)
                    break;
            }
        }
    }
    return 0;
}
