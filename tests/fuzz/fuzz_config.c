/* Config parser: bytes -> INI reader -> key handlers -> finish (with no resolv.conf needed). */
#include <stdint.h>
#include <stdio.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_set_level(LOG_ERROR);
        quiet = 1;
    }
    struct config *c = config_create();
    char err[512];
    if (config_load_string(c, (const char *)data, size, "fuzz.conf", err, sizeof err) == 0) {
        if (c->n_upstreams > 0)
            config_finish(c, "/nonexistent", err, sizeof err);
    }
    config_destroy(c);
    return 0;
}
