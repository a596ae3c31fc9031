/*
 * Upstream reply path: bytes -> match against the question -> scan -> CNAME targets (cloaking)
 * -> cache insert and lookup a second later -> the rewritten answer for a client with and
 * without EDNS, over UDP (512) and TCP (65535). The reply's own question is used when it is
 * well-formed, so the fuzzer reaches matching replies.
 */
#include <stdint.h>
#include <string.h>

#include "cache.h"
#include "dnsmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool count_name(void *ctx, const uint8_t *name, size_t len)
{
    if (len == 0 || len > DNS_MAX_NAME || name[len - 1] != 0)
        __builtin_trap(); /* a CNAME target is a whole wire name */
    (*(unsigned *)ctx)++;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cache *cache;
    if (!cache)
        cache = cache_create(256 << 10);
    struct dnsmsg_query q;
    memset(&q, 0, sizeof q);
    static const uint8_t name[] = {7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0};
    /* Use the reply's own question when it is well-formed, else example.com. */
    size_t qlen = sizeof name;
    const uint8_t *qname = name;
    uint8_t tmp[DNS_MAX_NAME];
    if (size > DNS_HEADER_LEN) {
        size_t pos = DNS_HEADER_LEN, n = 0;
        while (pos < size && n < DNS_MAX_NAME) {
            uint8_t l = data[pos];
            if (l & 0xC0 || pos + 1u + l > size || n + 1u + l > DNS_MAX_NAME)
                break;
            memcpy(tmp + n, data + pos, 1u + l);
            n += 1u + l;
            pos += 1u + l;
            if (l == 0) {
                qname = tmp;
                qlen = n;
                break;
            }
        }
    }
    memcpy(q.qname, qname, qlen);
    q.qname_len = (uint8_t)qlen;
    q.has_question = true;
    q.id = 0xBEEF;
    size_t tpos = DNS_HEADER_LEN + qlen;
    q.qtype = tpos + 4 <= size ? (uint16_t)(data[tpos] << 8 | data[tpos + 1]) : 1;
    q.qclass = tpos + 4 <= size ? (uint16_t)(data[tpos + 2] << 8 | data[tpos + 3]) : 1;
    uint16_t id = size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 0;

    if (!dnsmsg_reply_matches(data, size, id, q.qname, q.qname_len, q.qtype, q.qclass))
        return 0;
    struct dnsmsg_reply_info info;
    if (dnsmsg_reply_scan(data, size, &info) < 0)
        return 0;
    unsigned cnames = 0;
    dnsmsg_reply_cnames(data, size, &info, count_name, &cnames);
    if (cnames > info.an)
        __builtin_trap();

    static uint8_t out[DNS_MAX_UDP + 2];
    /* Through the cache: what comes back a second later must rewrite just as safely. */
    static uint8_t cached[DNS_MAX_UDP];
    struct dnsmsg_reply_info cinfo;
    cache_insert(cache, q.qname, q.qname_len, q.qtype, q.qclass, false, false, data, size, &info,
                 1000);
    size_t clen = cache_lookup(cache, q.qname, q.qname_len, q.qtype, q.qclass, false, false, 2000,
                               cached, sizeof cached, &cinfo);
    if (clen > 0) {
        q.edns = false;
        q.udp_size = 512;
        if (dnsmsg_client_reply(&q, cached, clen, &cinfo, 512, out, sizeof out) > 512)
            __builtin_trap();
    }
    for (int edns = 0; edns < 2; edns++) {
        q.edns = edns;
        q.udp_size = edns ? 1232 : 512;
        size_t limits[2] = {q.udp_size, DNS_MAX_UDP};
        for (int l = 0; l < 2; l++) {
            size_t n = dnsmsg_client_reply(&q, data, size, &info, limits[l], out, sizeof out);
            if (n > limits[l])
                __builtin_trap();
        }
    }
    return 0;
}
