/* Client query path: bytes -> header/question/EDNS checks -> error answer or upstream query. */
#include <stdint.h>
#include <string.h>

#include "dnsmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dnsmsg_query q;
    uint8_t out[DNSMSG_SMALL_MAX];
    enum dnsmsg_verdict v = dnsmsg_parse_query(data, size, &q);
    if (v == DNSMSG_OK) {
        uint8_t lower[DNS_MAX_NAME];
        dnsmsg_name_lower(q.qname, q.qname_len, lower);
        size_t n = dnsmsg_upstream_query(lower, q.qname_len, q.qtype, q.qclass, 0x1234, q.cd,
                                         q.do_bit, out, sizeof out);
        /* What we send must itself be a query we would accept. */
        struct dnsmsg_query back;
        if (n == 0 || dnsmsg_parse_query(out, n, &back) != DNSMSG_OK)
            __builtin_trap();
    } else if (v != DNSMSG_DROP) {
        unsigned rcode = v == DNSMSG_BADVERS ? RCODE_BADVERS : RCODE_FORMERR;
        if (dnsmsg_error_reply(&q, rcode, out, sizeof out) < DNS_HEADER_LEN)
            __builtin_trap();
    }
    return 0;
}
