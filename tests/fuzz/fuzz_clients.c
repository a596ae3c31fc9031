/* Client identity: bytes -> query checks -> Client Subnet and add-mac from the OPT record. */
#include <stdint.h>
#include <string.h>

#include <netinet/in.h>

#include "clients.h"
#include "dnsmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dnsmsg_query q;
    if (dnsmsg_parse_query(data, size, &q) != DNSMSG_OK || !q.edns)
        return 0;
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = htons(5353)};
    struct client_id id;
    clients_from_source((const struct sockaddr *)&src, &id);
    int found = clients_from_edns(data, size, &q, &id);
    /* What we took must be consistent: an address within its family's width, the source port. */
    if ((found & CLIENTS_ECS) &&
        (id.prefix == 0 || id.prefix > 128 || (id.addr.ss_family == AF_INET && id.prefix > 32)))
        __builtin_trap();
    if ((found & CLIENTS_MAC) && !id.has_mac)
        __builtin_trap();
    if (found && (!id.from_edns || netaddr_port((const struct sockaddr *)&id.addr) != 5353))
        __builtin_trap();
    /* A MAC we print reads back as the same MAC. */
    char text[CLIENTS_MAC_STRLEN];
    uint8_t back[6];
    clients_format_mac(id.mac, text);
    if (clients_parse_mac(text, back) != 0 || memcmp(back, id.mac, 6) != 0)
        __builtin_trap();
    return 0;
}
