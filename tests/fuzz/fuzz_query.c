/* Client query path: bytes -> header/question/EDNS checks -> error answer or upstream query. */
#include <stdint.h>
#include <string.h>

#include "dnsmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key[DNSMSG_LOOP_KEY_LEN] = {1, 2,  3,  4,  5,  6,  7,  8,
                                                     9, 10, 11, 12, 13, 14, 15, 16};
    static const uint8_t nonce[8] = {8, 7, 6, 5, 4, 3, 2, 1};
    struct dnsmsg_query q;
    uint8_t out[DNSMSG_SMALL_MAX];
    enum dnsmsg_verdict v = dnsmsg_parse_query(data, size, &q);
    if (v == DNSMSG_OK) {
        uint8_t lower[DNS_MAX_NAME], marker[DNSMSG_LOOP_MARKER_LEN];
        dnsmsg_name_lower(q.qname, q.qname_len, lower);
        dnsmsg_loop_marker(key, nonce, marker);
        uint8_t carried[DNSMSG_LOOP_CARRY * DNSMSG_LOOP_MARKER_LEN];
        size_t nc = dnsmsg_loop_markers(data, size, &q, carried);
        if (nc > DNSMSG_LOOP_CARRY)
            __builtin_trap();
        size_t n = dnsmsg_upstream_query(lower, q.qname_len, q.qtype, q.qclass, 0x1234, q.cd,
                                         q.do_bit, marker, carried, nc, out, sizeof out);
        /* What we send must itself be a query we would accept, and recognise as ours. */
        struct dnsmsg_query back;
        if (n == 0 || dnsmsg_parse_query(out, n, &back) != DNSMSG_OK ||
            !dnsmsg_query_has_loop_marker(out, n, &back, key))
            __builtin_trap();
        (void)dnsmsg_query_has_loop_marker(data, size, &q, key);
        if (dnsmsg_any_reply(&q, 300, out, sizeof out) < DNS_HEADER_LEN)
            __builtin_trap();
    } else if (v != DNSMSG_DROP) {
        unsigned rcode = v == DNSMSG_BADVERS ? RCODE_BADVERS : RCODE_FORMERR;
        if (dnsmsg_error_reply(&q, rcode, out, sizeof out) < DNS_HEADER_LEN ||
            dnsmsg_error_reply_ede(&q, rcode, EDE_OTHER, "fuzz", out, sizeof out) < DNS_HEADER_LEN)
            __builtin_trap();
    }
    return 0;
}
