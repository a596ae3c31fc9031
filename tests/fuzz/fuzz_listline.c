/*
 * List-line parser: bytes -> lines -> lists_parse_line in every reading -> the names into a
 * domain set, each of which must then match (as text and as wire).
 */
#include <stdint.h>
#include <string.h>

#include "domainset.h"
#include "lists.h"
#include "pkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct list_line line;
    struct domainset *set = domainset_create(4, 42);
    if (!set)
        return 0;
    const char *text = (const char *)data;
    size_t pos = 0;
    bool header = true;
    while (pos <= size) {
        const char *nl = memchr(text + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - text) : size;
        for (int fmt = LIST_OWN; fmt <= LIST_ALLOW; fmt++) {
            lists_parse_line(text + pos, end - pos, (enum list_format)fmt, header, &line);
            if (line.type != LINE_ENTRY)
                continue;
            header = false;
            for (size_t i = 0; i < line.n_names; i++) {
                const char *name = line.names[i];
                size_t len = line.lens[i];
                if (len == 0 || len > LISTS_MAX_NAME || strlen(name) != len)
                    __builtin_trap();
                domainset_add(set, name, len, line.subtree, (uint16_t)fmt);
                struct domainset_hit hit;
                if (!domainset_match_text(set, name, len, &hit))
                    __builtin_trap();
                /* The same name in wire form must match too. */
                uint8_t wire[LISTS_MAX_NAME + 2];
                size_t w = name_to_wire(name, len, wire);
                if (!domainset_match_wire(set, wire, w, &hit))
                    __builtin_trap();
            }
        }
        if (!nl)
            break;
        pos = end + 1;
    }
    domainset_destroy(set);
    return 0;
}
