/*
 * Report input and output: the first line is a WHEN for report_parse_when (relative, date,
 * time, zone); the other lines become the device, vendor and domain names of a synthetic
 * report, rendered in all four formats. The JSON must parse back with the same names, the
 * HTML must not contain a tag the names smuggled in, the CSV must have one line per domain.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p += n + (nl != NULL);
    return s;
}

static bool utf8_ok(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *when = line(&p, end);
    int64_t ms = -1, base = 1795413600000LL;
    if (report_parse_when(when, base, &ms) == 0) {
        bool relative = when[0] >= '1' && when[0] <= '9' && strlen(when) < 10;
        if (ms < 0 || (relative && ms >= base))
            abort();
    }
    free(when);

    char *name = line(&p, end), *vendor = line(&p, end), *d1 = line(&p, end), *d2 = line(&p, end);
    struct report_domain domains[2] = {
        {.name = d1, .hits = 3, .prev_hits = 1, .first_ms = base - 7200000, .last_ms = base - 1},
        {.name = d2, .hits = 1, .first_ms = base - 3600000, .last_ms = base - 3600000},
    };
    struct report_vendor v = {.vendor = vendor,
                              .category = "telemetry",
                              .hits = 4,
                              .prev_hits = 1,
                              .first_ms = base - 7200000,
                              .last_ms = base - 1,
                              .domains = domains,
                              .n_domains = 2};
    const char *addrs[1] = {"192.168.1.2"};
    struct report_client c = {.addr = addrs[0],
                              .name = *name ? name : NULL,
                              .addrs = addrs,
                              .n_addrs = 1,
                              .queries = 10,
                              .blocked = 4,
                              .first_ms = base - 7200000,
                              .last_ms = base - 1,
                              .vendors = &v,
                              .n_vendors = 1};
    struct report_bucket buckets[24] = {{10, 4}};
    struct report r = {.since_ms = base - 86400000,
                       .until_ms = base,
                       .prev_since_ms = base - 2 * 86400000,
                       .log_start_ms = base - 3 * 86400000,
                       .compared = true,
                       .queries = 10,
                       .blocked = 4,
                       .n_vendors = 1,
                       .clients = &c,
                       .n_clients = 1,
                       .bucket_ms = 3600000,
                       .buckets = buckets,
                       .n_buckets = 24};
    for (int f = REPORT_TEXT; f <= REPORT_HTML; f++) {
        char *out = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&out, &len);
        if (report_write(&r, (enum report_format)f, 5, m) != 0)
            abort();
        fclose(m);
        if (f == REPORT_JSON) {
            json_error_t e;
            json_t *j = json_loadb(out, len, 0, &e);
            if (!j)
                abort(); /* names that are not UTF-8 must still make valid JSON */
            json_t *jc = json_array_get(json_object_get(j, "clients"), 0);
            json_t *jv = json_array_get(json_object_get(jc, "vendors"), 0);
            const char *got = json_string_value(json_object_get(jv, "vendor"));
            if (!got || (json_string_length(json_object_get(jv, "vendor")) == strlen(vendor) &&
                         utf8_ok(vendor) && strcmp(got, vendor) != 0))
                abort();
            json_decref(j);
        }
        if (f == REPORT_HTML) {
            /* Every '<' in the page is one of ours: the names must have been escaped. */
            for (char *lt = strchr(out, '<'); lt; lt = strchr(lt + 1, '<')) {
                if (strncmp(lt + 1, "script", 6) == 0 || strncmp(lt + 1, "img", 3) == 0 ||
                    strncmp(lt + 1, "iframe", 6) == 0)
                    abort();
            }
        }
        free(out);
    }
    free(name);
    free(vendor);
    free(d1);
    free(d2);
    return 0;
}
