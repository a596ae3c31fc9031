/*
 * report_fmt: the report's four renderings. Text is for cron mail (72 columns, most hits first),
 * JSON follows the contract in DESIGN.md and adds the rest, CSV has one row per device x vendor
 * x domain, HTML is one self-contained page (inline CSS and SVG, a CSP that forbids fetching).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report.h"

/* ---- small formatting helpers --------------------------------------------------------------- */

/* 12345 -> "12,345" */
static const char *count(uint64_t n, char buf[32])
{
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%" PRIu64, n), o = 0;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

enum tstyle { T_ISO, T_TEXT, T_SHORT };

/*
 * Local time with the zone looked up once per hour (a CSV of millions of rows formats two times
 * a row): when the UTC offset is the same at both ends of the hour, every second in it is
 * UTC + offset; an hour with a transition in it asks localtime_r each time.
 */
static void local_tm(int64_t ms, struct tm *tm)
{
    static int64_t hour = -1;
    static struct tm start;
    static bool steady;
    time_t s = (time_t)(ms / 1000);
    if (s / 3600 != hour) {
        struct tm last;
        time_t t0 = s / 3600 * 3600, t1 = t0 + 3599;
        localtime_r(&t0, &start);
        localtime_r(&t1, &last);
        steady = start.tm_gmtoff == last.tm_gmtoff && start.tm_isdst == last.tm_isdst;
        hour = s / 3600;
    }
    if (!steady) {
        localtime_r(&s, tm);
        return;
    }
    time_t local = s + start.tm_gmtoff;
    gmtime_r(&local, tm);
    tm->tm_gmtoff = start.tm_gmtoff;
    tm->tm_zone = start.tm_zone;
    tm->tm_isdst = start.tm_isdst;
}

static const char *when(int64_t ms, enum tstyle style, char buf[40])
{
    struct tm tm;
    local_tm(ms, &tm);
    if (style != T_ISO) {
        strftime(buf, 40, style == T_TEXT ? "%Y-%m-%d %H:%M" : "%m-%d %H:%M", &tm);
        return buf;
    }
    char zone[8];
    strftime(zone, sizeof zone, "%z", &tm); /* +0100 -> +01:00 */
    size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 40 - n, "%.3s:%.2s", zone, zone + 3);
    return buf;
}

/* "24 hours", "7 days", "90 minutes" */
static const char *span(int64_t ms, char buf[40])
{
    if (ms % 86400000 == 0 && ms > 86400000)
        snprintf(buf, 40, "%" PRId64 " days", ms / 86400000);
    else if (ms % 3600000 == 0)
        snprintf(buf, 40, "%" PRId64 " hour%s", ms / 3600000, ms == 3600000 ? "" : "s");
    else
        snprintf(buf, 40, "%" PRId64 " minutes", (ms + 59999) / 60000);
    return buf;
}

static double pct(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* "new", "+12", "-3", "same"; "" when there is nothing to compare with. */
static const char *change(const struct report *r, uint64_t now, uint64_t prev, char buf[32])
{
    if (!r->compared)
        buf[0] = '\0';
    else if (!prev)
        snprintf(buf, 32, "new");
    else if (now == prev)
        snprintf(buf, 32, "same");
    else
        snprintf(buf, 32, "%+" PRId64, (int64_t)(now - prev));
    return buf;
}

static const char *label(const struct report_client *c)
{
    return c->name ? c->name : c->mac ? c->mac : c->addr;
}

static size_t new_domains(const struct report_vendor *v)
{
    size_t n = 0;
    for (size_t i = 0; i < v->n_domains; i++)
        n += !v->domains[i].prev_hits;
    return n;
}

/* ---- text ------------------------------------------------------------------------------------ */

static void text_notes(const struct report *r, FILE *f)
{
    char a[40], b[32];
    if (r->log_start_ms > r->since_ms)
        fprintf(f, "The log starts at %s, inside this window.\n", when(r->log_start_ms, T_TEXT, a));
    if (r->dropped)
        fprintf(f, "Log incomplete: %s queries not logged (queue full or database fault).\n",
                count(r->dropped, b));
    if (r->not_logged)
        fprintf(f, "%s allowed queries were counted, not logged (log_allowed = no).\n",
                count(r->not_logged, b));
}

/* Append "item" to a line of at most 72 columns, wrapping with an indent of 4. */
static void wrap(FILE *f, size_t *col, const char *item, bool first)
{
    size_t len = strlen(item) + (first ? 0 : 2);
    if (!first && *col + len > 72) {
        fputs(",\n    ", f);
        *col = 4;
        len -= 2;
    } else if (!first) {
        fputs(", ", f);
    }
    fputs(item, f);
    *col += len;
}

enum { NEW_DEVICES_SHOWN = 12 };

/* One line per device with something new: "redmi: Xiaomi (new, 800 hits), Apple (2 new domains)" */
static void text_new(const struct report *r, FILE *f)
{
    char s[40], b[32], item[160];
    if (!r->compared) {
        fprintf(f, "Nothing to compare with: the log starts at %s.\n",
                when(r->log_start_ms, T_TEXT, s));
        return;
    }
    size_t devices = 0;
    for (size_t i = 0; i < r->n_clients; i++) {
        const struct report_client *c = &r->clients[i];
        bool any = false;
        size_t col = 0;
        for (size_t k = 0; k < c->n_vendors; k++) {
            const struct report_vendor *v = &c->vendors[k];
            size_t nd = new_domains(v);
            if (v->prev_hits && !nd)
                continue;
            if (!any && devices++ == 0)
                fprintf(f, "New since the %s before:\n", span(r->until_ms - r->since_ms, s));
            if (!any && devices > NEW_DEVICES_SHOWN)
                break;
            if (!any) {
                snprintf(item, sizeof item, "  %s%s: ", label(c),
                         c->prev_queries ? "" : " (new device)");
                fputs(item, f);
                col = strlen(item);
            }
            if (!v->prev_hits)
                snprintf(item, sizeof item, "%s (new, %s hit%s)", v->vendor, count(v->hits, b),
                         v->hits == 1 ? "" : "s");
            else
                snprintf(item, sizeof item, "%s (%zu new domain%s)", v->vendor, nd,
                         nd == 1 ? "" : "s");
            wrap(f, &col, item, !any);
            any = true;
        }
        if (any && devices <= NEW_DEVICES_SHOWN)
            fputc('\n', f);
    }
    if (devices > NEW_DEVICES_SHOWN)
        fprintf(f, "  and %zu more devices\n", devices - NEW_DEVICES_SHOWN);
    if (!devices)
        fprintf(f, "Nothing new since the %s before.\n", span(r->until_ms - r->since_ms, s));
}

static void text_client(const struct report *r, const struct report_client *c, unsigned top,
                        FILE *f)
{
    char a[40], b[32], d[32], e[40];
    fprintf(f, "\n%s", label(c));
    if (c->name && c->mac)
        fprintf(f, "  %s  %s", c->addr, c->mac);
    else if (c->name || c->mac)
        fprintf(f, "  %s", c->addr);
    if (c->n_addrs > 1)
        fprintf(f, "  (+%zu more address%s)", c->n_addrs - 1, c->n_addrs == 2 ? "" : "es");
    fputc('\n', f);
    if (!c->blocked) {
        fprintf(f, "  %s queries, nothing blocked\n", count(c->queries, b));
        return;
    }
    fprintf(f, "  %s queries, %s blocked (%.1f%%)", count(c->queries, b), count(c->blocked, d),
            pct(c->blocked, c->queries));
    if (r->compared)
        fprintf(f, "; %s in the %s before", count(c->prev_blocked, b),
                span(r->until_ms - r->since_ms, e));
    fprintf(f, "\n  first hit %s, last hit %s\n", when(c->first_ms, T_TEXT, a),
            when(c->last_ms, T_TEXT, e));
    for (size_t k = 0; k < c->n_vendors; k++) {
        const struct report_vendor *v = &c->vendors[k];
        char name[64];
        snprintf(name, sizeof name, "%s%s%s%s", v->vendor, *v->category ? " (" : "", v->category,
                 *v->category ? ")" : "");
        fprintf(f, "  %-46s %10s  %s\n", name, count(v->hits, b),
                change(r, v->hits, v->prev_hits, d));
        size_t shown = v->n_domains < top ? v->n_domains : top;
        for (size_t i = 0; i < shown; i++) {
            const struct report_domain *dm = &v->domains[i];
            if (strlen(dm->name) > 44)
                fprintf(f, "    %s\n    %-44s %10s  %s\n", dm->name, "", count(dm->hits, b),
                        change(r, dm->hits, dm->prev_hits, d));
            else
                fprintf(f, "    %-44s %10s  %s\n", dm->name, count(dm->hits, b),
                        change(r, dm->hits, dm->prev_hits, d));
        }
        if (v->n_domains > shown)
            fprintf(f, "    and %zu more domain%s\n", v->n_domains - shown,
                    v->n_domains - shown == 1 ? "" : "s");
    }
}

static void write_text(const struct report *r, unsigned top, FILE *f)
{
    char a[40], b[40], s[40], n1[32], n2[32];
    fprintf(f, "telesink report: the %s to %s\n", span(r->until_ms - r->since_ms, s),
            when(r->until_ms, T_TEXT, a));
    time_t t = (time_t)(r->until_ms / 1000);
    struct tm tm;
    char zone[16];
    strftime(zone, sizeof zone, "%Z", localtime_r(&t, &tm));
    fprintf(f, "Window %s - %s (%s).\n\n", when(r->since_ms, T_TEXT, a),
            when(r->until_ms, T_TEXT, b), zone);
    fprintf(f, "%zu device%s, %s queries, %s blocked (%.1f%%)", r->n_clients,
            r->n_clients == 1 ? "" : "s", count(r->queries, n1), count(r->blocked, n2),
            pct(r->blocked, r->queries));
    if (r->blocked)
        fprintf(f, " to %zu vendor%s", r->n_vendors, r->n_vendors == 1 ? "" : "s");
    fprintf(f, ".\n");
    if (r->compared)
        fprintf(f, "The %s before: %s queries, %s blocked.\n", s, count(r->prev_queries, n1),
                count(r->prev_blocked, n2));
    text_new(r, f);
    text_notes(r, f);
    for (size_t i = 0; i < r->n_clients; i++)
        text_client(r, &r->clients[i], top, f);
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static json_t *jtime(int64_t ms)
{
    char buf[40];
    return ms ? json_string(when(ms, T_ISO, buf)) : json_null();
}

/* A JSON string; bytes that are not UTF-8 (a name from an old list or config) become '?'. */
static json_t *jstr(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = strdup(s);
    if (!copy)
        return json_null();
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j ? j : json_null();
}

static json_t *jint(uint64_t n)
{
    return json_integer((json_int_t)n);
}

static json_t *jnew(const struct report *r, uint64_t prev)
{
    return r->compared ? json_boolean(!prev) : json_null();
}

static json_t *json_vendor(const struct report *r, const struct report_vendor *v, unsigned top)
{
    json_t *o = json_object(), *domains = json_array();
    json_object_set_new(o, "vendor", jstr(v->vendor));
    json_object_set_new(o, "category", jstr(v->category));
    json_object_set_new(o, "hits", jint(v->hits));
    json_object_set_new(o, "previous_hits", jint(v->prev_hits));
    json_object_set_new(o, "change", json_integer((json_int_t)v->hits - (json_int_t)v->prev_hits));
    json_object_set_new(o, "new", jnew(r, v->prev_hits));
    json_object_set_new(o, "first_hit", jtime(v->first_ms));
    json_object_set_new(o, "last_hit", jtime(v->last_ms));
    size_t shown = v->n_domains < top ? v->n_domains : top;
    for (size_t i = 0; i < shown; i++) {
        const struct report_domain *d = &v->domains[i];
        json_t *jd = json_object();
        json_object_set_new(jd, "domain", jstr(d->name));
        json_object_set_new(jd, "hits", jint(d->hits));
        json_object_set_new(jd, "previous_hits", jint(d->prev_hits));
        json_object_set_new(jd, "new", jnew(r, d->prev_hits));
        json_object_set_new(jd, "first_hit", jtime(d->first_ms));
        json_object_set_new(jd, "last_hit", jtime(d->last_ms));
        json_array_append_new(domains, jd);
    }
    json_object_set_new(o, "domains", domains);
    json_object_set_new(o, "more_domains", jint(v->n_domains - shown));
    return o;
}

static json_t *json_client(const struct report *r, const struct report_client *c, unsigned top)
{
    static const char *const status[REPORT_STATUSES] = {
        NULL, "blocked", "forwarded", "cached", "refused", "failed",
    };
    json_t *o = json_object(), *addrs = json_array(), *st = json_object(), *vs = json_array();
    json_object_set_new(o, "client", jstr(c->addr));
    json_object_set_new(o, "name", jstr(c->name));
    json_object_set_new(o, "mac", jstr(c->mac));
    for (size_t i = 0; i < c->n_addrs; i++)
        json_array_append_new(addrs, jstr(c->addrs[i]));
    json_object_set_new(o, "addresses", addrs);
    json_object_set_new(o, "queries", jint(c->queries));
    json_object_set_new(o, "blocked", jint(c->blocked));
    json_t *prev = json_object();
    json_object_set_new(prev, "queries", jint(c->prev_queries));
    json_object_set_new(prev, "blocked", jint(c->prev_blocked));
    json_object_set_new(o, "previous", prev);
    json_object_set_new(o, "new_device", jnew(r, c->prev_queries));
    for (int i = 1; i < REPORT_STATUSES; i++)
        json_object_set_new(st, status[i], jint(c->status[i]));
    json_object_set_new(o, "statuses", st);
    json_object_set_new(o, "first_hit", jtime(c->first_ms));
    json_object_set_new(o, "last_hit", jtime(c->last_ms));
    for (size_t i = 0; i < c->n_vendors; i++)
        json_array_append_new(vs, json_vendor(r, &c->vendors[i], top));
    json_object_set_new(o, "vendors", vs);
    return o;
}

static int write_json(const struct report *r, unsigned top, FILE *f)
{
    json_t *root = json_object(), *totals = json_object(), *prev = json_object(),
           *log = json_object(), *clients = json_array(), *tl = json_object(), *tq = json_array(),
           *tb = json_array();
    json_object_set_new(root, "since", jtime(r->since_ms));
    json_object_set_new(root, "until", jtime(r->until_ms));
    json_object_set_new(totals, "queries", jint(r->queries));
    json_object_set_new(totals, "blocked", jint(r->blocked));
    json_object_set_new(totals, "clients", jint(r->n_clients));
    json_object_set_new(totals, "vendors", jint(r->n_vendors));
    json_object_set_new(root, "totals", totals);
    json_object_set_new(prev, "since", jtime(r->prev_since_ms));
    json_object_set_new(prev, "until", jtime(r->since_ms));
    json_object_set_new(prev, "compared", json_boolean(r->compared));
    json_object_set_new(prev, "queries", jint(r->prev_queries));
    json_object_set_new(prev, "blocked", jint(r->prev_blocked));
    json_object_set_new(root, "previous", prev);
    json_object_set_new(log, "complete", json_boolean(!r->dropped));
    json_object_set_new(log, "starts", jtime(r->log_start_ms));
    json_object_set_new(log, "covers_window",
                        json_boolean(r->log_start_ms && r->log_start_ms <= r->since_ms));
    json_object_set_new(log, "seen", jint(r->seen));
    json_object_set_new(log, "logged", jint(r->logged));
    json_object_set_new(log, "not_logged", jint(r->not_logged));
    json_object_set_new(log, "dropped", jint(r->dropped));
    json_object_set_new(root, "log", log);
    for (size_t i = 0; i < r->n_clients; i++)
        json_array_append_new(clients, json_client(r, &r->clients[i], top));
    json_object_set_new(root, "clients", clients);
    json_object_set_new(tl, "start", jtime(r->since_ms));
    json_object_set_new(tl, "bucket_seconds", jint((uint64_t)(r->bucket_ms / 1000)));
    for (size_t i = 0; i < r->n_buckets; i++) {
        json_array_append_new(tq, jint(r->buckets[i].queries));
        json_array_append_new(tb, jint(r->buckets[i].blocked));
    }
    json_object_set_new(tl, "queries", tq);
    json_object_set_new(tl, "blocked", tb);
    json_object_set_new(root, "timeline", tl);
    int rc = json_dumpf(root, f, JSON_INDENT(2));
    json_decref(root);
    if (rc == 0)
        fputc('\n', f);
    return rc;
}

/* ---- CSV ------------------------------------------------------------------------------------- */

static void csv_field(const char *s, FILE *f)
{
    if (!s)
        s = "";
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_csv(const struct report *r, FILE *f)
{
    fputs("client,name,mac,vendor,category,domain,hits,previous_hits,new,first_seen,last_seen\r\n",
          f);
    for (size_t i = 0; i < r->n_clients; i++) {
        const struct report_client *c = &r->clients[i];
        for (size_t k = 0; k < c->n_vendors; k++) {
            const struct report_vendor *v = &c->vendors[k];
            for (size_t j = 0; j < v->n_domains; j++) {
                const struct report_domain *d = &v->domains[j];
                char a[40], b[40];
                const char *fields[] = {c->addr, c->name, c->mac, v->vendor, v->category, d->name};
                for (size_t x = 0; x < sizeof fields / sizeof *fields; x++) {
                    csv_field(fields[x], f);
                    fputc(',', f);
                }
                fprintf(f, "%" PRIu64 ",%" PRIu64 ",%s,%s,%s\r\n", d->hits, d->prev_hits,
                        !r->compared   ? ""
                        : d->prev_hits ? "no"
                                       : "yes",
                        when(d->first_ms, T_ISO, a), when(d->last_ms, T_ISO, b));
            }
        }
    }
}

/* ---- HTML ------------------------------------------------------------------------------------ */

static void esc(const char *s, FILE *f)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static const char html_style[] =
    "body{font:15px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;"
    "max-width:60rem;padding:1rem;color:#1d2329;background:#fff}"
    "h1{font-size:1.4rem;margin:0}h2{font-size:1.15rem;margin:1.6rem 0 .4rem}"
    ".window{color:#5b6670;margin:.2rem 0 1rem}"
    ".cards{display:flex;flex-wrap:wrap;gap:.5rem}"
    ".card{flex:1 1 7rem;border:1px solid #d9dee3;border-radius:.5rem;padding:.5rem .7rem}"
    ".card b{display:block;font-size:1.3rem}"
    ".note{background:#fff4d6;border-left:4px solid #e0a100;padding:.4rem .7rem}"
    ".new{color:#b3261e;font-weight:600}"
    "svg{width:100%;height:auto;display:block;margin:.4rem 0}"
    "svg.vendors{max-width:34rem}svg.timeline{max-width:40rem}"
    "svg text{font:11px sans-serif;fill:#1d2329}.timeline text{font-size:9px}"
    ".q{fill:#c5ccd3}.b{fill:#d6453d}"
    ".scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}"
    "th,td{text-align:left;padding:.25rem .4rem;border-bottom:1px solid #eceff1;"
    "white-space:nowrap}td.n,th.n{text-align:right}"
    "section.client{border-top:2px solid #d9dee3;margin-top:1.2rem}"
    "small{color:#5b6670;font-weight:normal}";

static void html_timeline(const struct report *r, FILE *f)
{
    char a[40], b[40];
    const double w = 360, h = 90;
    uint64_t max = 1;
    for (size_t i = 0; i < r->n_buckets; i++)
        if (r->buckets[i].queries > max)
            max = r->buckets[i].queries;
    fprintf(f,
            "<svg class=\"timeline\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
            "aria-label=\"Queries and blocked queries per %s\">\n",
            w, h + 16, r->bucket_ms == 3600000 ? "hour" : "day");
    double bw = w / (double)r->n_buckets;
    for (size_t i = 0; i < r->n_buckets; i++) {
        const struct report_bucket *k = &r->buckets[i];
        double hq = h * (double)k->queries / (double)max, hb = h * (double)k->blocked / (double)max;
        fprintf(f,
                "<g><title>%s: %" PRIu64 " queries, %" PRIu64 " blocked</title>"
                "<rect class=\"q\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>"
                "<rect class=\"b\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/></g>\n",
                when(r->since_ms + (int64_t)i * r->bucket_ms, T_TEXT, a), k->queries, k->blocked,
                i * bw, h - hq, bw * 0.9, hq, i * bw, h - hb, bw * 0.9, hb);
    }
    fprintf(f,
            "<text x=\"0\" y=\"%.0f\">%s</text><text x=\"%.0f\" y=\"%.0f\" "
            "text-anchor=\"end\">%s</text></svg>\n",
            h + 13, when(r->since_ms, T_TEXT, a), w, h + 13, when(r->until_ms, T_TEXT, b));
}

static void html_bars(const struct report_client *c, uint64_t max, FILE *f)
{
    const double row = 20, lw = 125, bw = 190;
    char n[32];
    fprintf(f,
            "<svg class=\"vendors\" viewBox=\"0 0 360 %.0f\" role=\"img\" "
            "aria-label=\"Blocked queries per vendor\">\n",
            row * (double)c->n_vendors + 4);
    for (size_t i = 0; i < c->n_vendors; i++) {
        const struct report_vendor *v = &c->vendors[i];
        double y = row * (double)i, len = bw * (double)v->hits / (double)max;
        if (len < 1)
            len = 1;
        fprintf(f, "<g><title>");
        esc(v->vendor, f);
        fprintf(f, ": %s</title><text x=\"0\" y=\"%.0f\">", count(v->hits, n), y + 14);
        char cut[24]; /* the label column fits about 20 characters */
        snprintf(cut, sizeof cut, "%s", v->vendor);
        if (strlen(v->vendor) >= sizeof cut)
            memcpy(cut + sizeof cut - 4, "...", 4);
        esc(cut, f);
        fprintf(f,
                "</text><rect class=\"b\" x=\"%.0f\" y=\"%.0f\" width=\"%.2f\" height=\"14\"/>"
                "<text x=\"%.2f\" y=\"%.0f\">%s</text></g>\n",
                lw, y + 3, len, lw + len + 4, y + 14, n);
    }
    fputs("</svg>\n", f);
}

static void html_client(const struct report *r, const struct report_client *c, unsigned top,
                        uint64_t max, FILE *f)
{
    char a[40], b[40], n1[32], n2[32], ch[32];
    fputs("<section class=\"client\"><h2>", f);
    esc(label(c), f);
    if (c->name || c->mac || c->n_addrs > 1) {
        fputs(" <small>", f);
        if (c->name || c->mac)
            esc(c->addr, f);
        if (c->name && c->mac) {
            fputs(" · ", f);
            esc(c->mac, f);
        }
        if (c->n_addrs > 1)
            fprintf(f, " (+%zu more)", c->n_addrs - 1);
        fputs("</small>", f);
    }
    fputs("</h2>\n", f);
    if (!c->blocked) {
        fprintf(f, "<p>%s queries, nothing blocked.</p></section>\n", count(c->queries, n1));
        return;
    }
    fprintf(f, "<p>%s queries, %s blocked (%.1f%%)", count(c->queries, n1), count(c->blocked, n2),
            pct(c->blocked, c->queries));
    if (r->compared)
        fprintf(f, "; %s in the %s before", count(c->prev_blocked, n1),
                span(r->until_ms - r->since_ms, a));
    if (c->blocked)
        fprintf(f, ". First hit %s, last hit %s", when(c->first_ms, T_TEXT, a),
                when(c->last_ms, T_TEXT, b));
    fputs(".</p>\n", f);
    if (!c->n_vendors) {
        fputs("</section>\n", f);
        return;
    }
    html_bars(c, max, f);
    fputs("<div class=\"scroll\"><table><thead><tr><th>Vendor / domain</th><th class=\"n\">Hits"
          "</th><th>Change</th><th>First</th><th>Last</th></tr></thead><tbody>\n",
          f);
    for (size_t k = 0; k < c->n_vendors; k++) {
        const struct report_vendor *v = &c->vendors[k];
        change(r, v->hits, v->prev_hits, ch);
        fputs("<tr><th>", f);
        esc(v->vendor, f);
        fprintf(f, "</th><td class=\"n\">%s</td><td%s>%s</td><td>%s</td><td>%s</td></tr>\n",
                count(v->hits, n1), strcmp(ch, "new") ? "" : " class=\"new\"", ch,
                when(v->first_ms, T_SHORT, a), when(v->last_ms, T_SHORT, b));
        size_t shown = v->n_domains < top ? v->n_domains : top;
        for (size_t i = 0; i < shown; i++) {
            const struct report_domain *d = &v->domains[i];
            change(r, d->hits, d->prev_hits, ch);
            fputs("<tr><td>", f);
            esc(d->name, f);
            fprintf(f, "</td><td class=\"n\">%s</td><td%s>%s</td><td>%s</td><td>%s</td></tr>\n",
                    count(d->hits, n1), strcmp(ch, "new") ? "" : " class=\"new\"", ch,
                    when(d->first_ms, T_SHORT, a), when(d->last_ms, T_SHORT, b));
        }
        if (v->n_domains > shown)
            fprintf(f, "<tr><td colspan=\"5\">and %zu more</td></tr>\n", v->n_domains - shown);
    }
    fputs("</tbody></table></div></section>\n", f);
}

static void write_html(const struct report *r, unsigned top, FILE *f)
{
    char a[40], b[40], s[40], n[32];
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'\">\n",
          f);
    fprintf(f, "<title>telesink report %s - %s</title>\n<style>%s</style></head><body>\n",
            when(r->since_ms, T_TEXT, a), when(r->until_ms, T_TEXT, b), html_style);
    fprintf(f, "<h1>telesink report</h1><p class=\"window\">The %s to %s</p>\n",
            span(r->until_ms - r->since_ms, s), when(r->until_ms, T_TEXT, a));
    fprintf(f, "<div class=\"cards\"><div class=\"card\"><b>%zu</b>devices</div>", r->n_clients);
    fprintf(f, "<div class=\"card\"><b>%s</b>queries</div>", count(r->queries, n));
    fprintf(f, "<div class=\"card\"><b>%s</b>blocked (%.1f%%)</div>", count(r->blocked, n),
            pct(r->blocked, r->queries));
    fprintf(f, "<div class=\"card\"><b>%zu</b>vendors</div></div>\n", r->n_vendors);

    /* The notes and "what is new" are the text report's, as HTML. */
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m) {
        text_new(r, m);
        text_notes(r, m);
        fclose(m);
        fputs("<div class=\"note\">", f);
        for (char *line = buf, *end; line && *line; line = end ? end + 1 : NULL) {
            end = strchr(line, '\n');
            if (end)
                *end = '\0';
            esc(line, f);
            fputs("<br>\n", f);
        }
        fputs("</div>\n", f);
        free(buf);
    }
    fprintf(f, "<h2>Queries per %s</h2>\n", r->bucket_ms == 3600000 ? "hour" : "day");
    html_timeline(r, f);
    uint64_t max = 1;
    for (size_t i = 0; i < r->n_clients; i++)
        for (size_t k = 0; k < r->clients[i].n_vendors; k++)
            if (r->clients[i].vendors[k].hits > max)
                max = r->clients[i].vendors[k].hits;
    for (size_t i = 0; i < r->n_clients; i++)
        html_client(r, &r->clients[i], top, max, f);
    fputs("<p class=\"window\">Made by telesink. Hits are DNS queries answered by a block.</p>\n"
          "</body></html>\n",
          f);
}

int report_write(const struct report *r, enum report_format fmt, unsigned top, FILE *f)
{
    switch (fmt) {
    case REPORT_TEXT:
        write_text(r, top, f);
        break;
    case REPORT_JSON:
        if (write_json(r, top, f) < 0)
            return -1;
        break;
    case REPORT_CSV:
        write_csv(r, f);
        break;
    case REPORT_HTML:
        write_html(r, top, f);
        break;
    }
    return ferror(f) ? -1 : 0;
}
