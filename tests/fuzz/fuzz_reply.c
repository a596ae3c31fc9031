/*
 * Upstream reply path: bytes -> match against the question -> scan -> the rewritten answer for
 * a client with and without EDNS, over UDP (512) and TCP (65535). The first bytes of the input
 * pick the question, so the fuzzer can reach matching replies.
 */
#include <stdint.h>
#include <string.h>

#include "dnsmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
    static uint8_t out[DNS_MAX_UDP + 2];
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
