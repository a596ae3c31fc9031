#include "report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "wire.h"

/* ---- memory: everything a report points to lives in one arena ----------------------------- */

struct report_arena {
    struct report_arena *next;
    size_t used, size;
    max_align_t data[];
};

static void *arena_alloc(struct report_arena **a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!*a || (*a)->size - (*a)->used < n) {
        size_t size = n > 65536 ? n : 65536;
        struct report_arena *c = malloc(sizeof *c + size);
        if (!c)
            return NULL;
        c->next = *a;
        c->used = 0;
        c->size = size;
        *a = c;
    }
    void *p = (char *)(*a)->data + (*a)->used;
    (*a)->used += n;
    return p;
}

static const char *arena_strdup(struct report_arena **a, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static void arena_free(struct report_arena *a)
{
    while (a) {
        struct report_arena *next = a->next;
        free(a);
        a = next;
    }
}

/* ---- WHEN ---------------------------------------------------------------------------------- */

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* Read exactly n digits. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static int parse_relative(const char *s, int64_t base_ms, int64_t *ms)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (end == s || errno || s[0] == '-' || s[0] == '+' || n == 0 || strlen(end) != 1)
        return -1;
    int64_t unit;
    switch (*end) {
    case 'm':
        unit = 60000;
        break;
    case 'h':
        unit = 3600000;
        break;
    case 'd':
        unit = 86400000;
        break;
    case 'w':
        unit = 7 * 86400000LL;
        break;
    default:
        return -1;
    }
    if (n > (unsigned long long)(100 * 366 * 86400000LL / unit)) /* a century is enough */
        return -1;
    if ((int64_t)n * unit > base_ms)
        return -1; /* before 1970: the log has nothing there, and windows start at 0 */
    *ms = base_ms - (int64_t)n * unit;
    return 0;
}

int report_parse_when(const char *s, int64_t base_ms, int64_t *ms)
{
    if (!s || !*s)
        return -1;
    if (strcmp(s, "now") == 0) {
        *ms = base_ms;
        return 0;
    }
    if (s[0] >= '0' && s[0] <= '9' && strlen(s) < 10)
        return parse_relative(s, base_ms, ms);

    const char *p = s;
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo))
        return -1;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
            return -1;
        if (*p == ':' && (p++, !digits(&p, 2, &sec)))
            return -1;
        if (h > 23 || mi > 59 || sec > 59)
            return -1;
    }
    bool utc = false;
    long offset = 0;
    if (*p == 'Z') {
        utc = true;
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (!digits(&p, 2, &oh))
            return -1;
        if (*p == ':')
            p++;
        if (!digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        utc = true;
        offset = sign * (oh * 3600L + om * 60L);
    }
    if (*p)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    tm.tm_isdst = -1;
    time_t t = utc ? timegm(&tm) - offset : mktime(&tm);
    if (t == (time_t)-1 && !(utc && y == 1969))
        return -1;
    *ms = (int64_t)t * 1000;
    return 0;
}

int report_parse_format(const char *s, enum report_format *f)
{
    static const char *const names[] = {"text", "json", "csv", "html"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *f = (enum report_format)i;
            return 0;
        }
    }
    return -1;
}

/* ---- a string -> index table (devices, vendors) ------------------------------------------- */

struct strmap {
    const char **keys;
    uint32_t *idx;
    size_t cap, n;
};

static uint64_t str_hash(const char *s)
{
    return fnv1a(s, strlen(s), FNV1A_SEED);
}

/* The index of key, added (as n) when missing. -1 on memory failure. */
static int64_t strmap_get(struct strmap *m, struct report_arena **a, const char *key)
{
    if (m->n * 2 >= m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        const char **keys = calloc(cap, sizeof *keys);
        uint32_t *idx = calloc(cap, sizeof *idx);
        if (!keys || !idx) {
            free(keys);
            free(idx);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i])
                continue;
            size_t j = str_hash(m->keys[i]) & (cap - 1);
            while (keys[j])
                j = (j + 1) & (cap - 1);
            keys[j] = m->keys[i];
            idx[j] = m->idx[i];
        }
        free(m->keys);
        free(m->idx);
        m->keys = keys;
        m->idx = idx;
        m->cap = cap;
    }
    size_t j = str_hash(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (strcmp(m->keys[j], key) == 0)
            return m->idx[j];
        j = (j + 1) & (m->cap - 1);
    }
    if (!(m->keys[j] = arena_strdup(a, key)))
        return -1;
    m->idx[j] = (uint32_t)m->n;
    return (int64_t)m->n++;
}

static void strmap_free(struct strmap *m)
{
    free(m->keys);
    free(m->idx);
}

/* ---- hits per (device, vendor, domain) ----------------------------------------------------- */

/*
 * Every blocked row of both windows becomes one 16-byte record keyed by device, vendor and
 * domain; a radix sort then brings each (device, vendor, domain) together, in the order the
 * report needs. Sequential memory instead of a hash probe per row: a 10M-row day with millions
 * of distinct names stays a fraction of a second.
 */
#define KEY_DEV_BITS    20
#define KEY_VENDOR_BITS 12
#define KEY_DOMAIN_BITS 32

struct brow {
    uint64_t key; /* dev << 44 | vendor << 32 | domain */
    int64_t ms;
};

struct brows {
    struct brow *v;
    size_t n, cap;
};

static uint64_t brow_key(uint32_t dev, uint32_t vendor, uint32_t domain)
{
    return (uint64_t)dev << (KEY_VENDOR_BITS + KEY_DOMAIN_BITS) | (uint64_t)vendor << 32 | domain;
}

static bool brows_add(struct brows *b, uint64_t key, int64_t ms)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        struct brow *v = realloc(b->v, cap * sizeof *v);
        if (!v)
            return false;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = (struct brow){key, ms};
    return true;
}

/* LSD radix sort on the low `bits` of the key, 11 bits a pass. Stable: time order is kept. */
static bool brows_sort(struct brows *b, unsigned bits)
{
    if (b->n < 2)
        return true;
    struct brow *tmp = malloc(b->n * sizeof *tmp), *src = b->v, *dst = tmp;
    if (!tmp)
        return false;
    for (unsigned shift = 0; shift < bits; shift += 11) {
        size_t count[2049] = {0};
        for (size_t i = 0; i < b->n; i++)
            count[((src[i].key >> shift) & 2047) + 1]++;
        for (size_t i = 1; i < 2049; i++)
            count[i] += count[i - 1];
        for (size_t i = 0; i < b->n; i++)
            dst[count[(src[i].key >> shift) & 2047]++] = src[i];
        struct brow *t = src;
        src = dst;
        dst = t;
    }
    if (src != b->v)
        memcpy(b->v, src, b->n * sizeof *src);
    free(tmp);
    return true;
}

/* One (device, vendor, domain) after the sort. */
struct hit {
    uint32_t dev, vendor, domain;
    uint32_t rank; /* the domain's place in name order */
    uint64_t hits, prev_hits;
    int64_t first_ms, last_ms;
};

/* ---- collecting ------------------------------------------------------------------------------ */

/* One row of the clients table. */
struct crow {
    const char *addr, *mac, *name;
    int32_t dev; /* -1: no such id, or filtered out */
    int64_t last_ms;
};

/* One device while collecting. */
struct dev {
    const char *name, *mac;
    const char *addr;
    int64_t addr_ms;
    uint64_t queries, blocked, prev_queries, prev_blocked;
    uint64_t status[REPORT_STATUSES];
    int64_t first_ms, last_ms;
    bool wanted;
};

struct vend {
    const char *vendor, *category;
};

struct collect {
    sqlite3 *db;
    struct report *r;
    struct report_arena *arena;
    char *err;
    size_t errlen;
    struct crow *crows;
    size_t n_crows;
    struct dev *devs;
    size_t n_devs, cap_devs;
    struct strmap dev_keys, vendor_keys;
    struct vend *vends;
    size_t cap_vends;
    int32_t *list_vendor; /* list id -> vendor index */
    size_t n_lists;
    struct brows brows;
    const char **names; /* domain id -> name, filled as needed */
    size_t n_names;
};

static int sql_fail(struct collect *c, const char *what)
{
    snprintf(c->err, c->errlen, "%s: %s", what, sqlite3_errmsg(c->db));
    return REPORT_ERROR;
}

static int nomem(struct collect *c)
{
    snprintf(c->err, c->errlen, "out of memory");
    return REPORT_ERROR;
}

static bool matches(const struct crow *row, const char *client)
{
    return strcmp(row->addr, client) == 0 || (row->name && strcmp(row->name, client) == 0) ||
           (row->mac && strcasecmp(row->mac, client) == 0);
}

/* A device is its configured name, else its MAC, else its address. */
static int load_clients(struct collect *c, const char *client)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT max(id) FROM clients", -1, &st, NULL) != SQLITE_OK)
        return sql_fail(c, "reading clients");
    int64_t max = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (max < 0 || max > 100000000)
        return sql_fail(c, "client ids out of range");
    c->n_crows = (size_t)max + 1;
    if (!(c->crows = calloc(c->n_crows, sizeof *c->crows)))
        return nomem(c);
    for (size_t i = 0; i < c->n_crows; i++)
        c->crows[i].dev = -1;
    if (sqlite3_prepare_v2(c->db, "SELECT id, addr, mac, name FROM clients", -1, &st, NULL) !=
        SQLITE_OK)
        return sql_fail(c, "reading clients");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        if (id < 0 || id >= (int64_t)c->n_crows)
            continue;
        const char *addr = (const char *)sqlite3_column_text(st, 1);
        const char *mac = (const char *)sqlite3_column_text(st, 2);
        const char *name = (const char *)sqlite3_column_text(st, 3);
        struct crow *row = &c->crows[id];
        row->addr = arena_strdup(&c->arena, addr ? addr : "");
        row->mac = mac && *mac ? arena_strdup(&c->arena, mac) : NULL;
        row->name = name && *name ? arena_strdup(&c->arena, name) : NULL;
        if (!row->addr || (mac && *mac && !row->mac) || (name && *name && !row->name))
            break;
        char key[512];
        snprintf(key, sizeof key, "%s%s",
                 row->name  ? "n:"
                 : row->mac ? "m:"
                            : "a:",
                 row->name  ? row->name
                 : row->mac ? row->mac
                            : row->addr);
        int64_t dev = strmap_get(&c->dev_keys, &c->arena, key);
        if (dev < 0)
            break;
        if ((size_t)dev == c->n_devs) {
            if (c->n_devs == c->cap_devs) {
                size_t cap = c->cap_devs ? c->cap_devs * 2 : 64;
                struct dev *d = realloc(c->devs, cap * sizeof *d);
                if (!d)
                    break;
                c->devs = d;
                c->cap_devs = cap;
            }
            c->devs[c->n_devs++] = (struct dev){.name = row->name, .mac = row->mac};
        }
        if (!client || matches(row, client))
            c->devs[dev].wanted = true;
        row->dev = (int32_t)dev;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rc == SQLITE_ROW ? nomem(c) : sql_fail(c, "reading clients");
    for (size_t i = 0; i < c->n_crows; i++)
        if (c->crows[i].dev >= 0 && !c->devs[c->crows[i].dev].wanted)
            c->crows[i].dev = -1;
    return 0;
}

static int load_lists(struct collect *c)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT max(id) FROM lists", -1, &st, NULL) != SQLITE_OK)
        return sql_fail(c, "reading lists");
    int64_t max = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (max < 0 || max > 10000000)
        return sql_fail(c, "list ids out of range");
    c->n_lists = (size_t)max + 1;
    if (!(c->list_vendor = malloc(c->n_lists * sizeof *c->list_vendor)))
        return nomem(c);
    /* Index 0 is for blocked rows without a list (none today; older or foreign rows). */
    if (strmap_get(&c->vendor_keys, &c->arena, "(unknown)") != 0)
        return nomem(c);
    c->cap_vends = 64;
    if (!(c->vends = calloc(c->cap_vends, sizeof *c->vends)))
        return nomem(c);
    c->vends[0] = (struct vend){"(unknown)", ""};
    for (size_t i = 0; i < c->n_lists; i++)
        c->list_vendor[i] = 0;
    if (sqlite3_prepare_v2(c->db, "SELECT id, vendor, category FROM lists", -1, &st, NULL) !=
        SQLITE_OK)
        return sql_fail(c, "reading lists");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *vendor = (const char *)sqlite3_column_text(st, 1);
        const char *category = (const char *)sqlite3_column_text(st, 2);
        if (id < 0 || id >= (int64_t)c->n_lists || !vendor)
            continue;
        int64_t v = strmap_get(&c->vendor_keys, &c->arena, vendor);
        if (v < 0)
            break;
        if ((size_t)v >= c->cap_vends) {
            struct vend *n = realloc(c->vends, c->cap_vends * 2 * sizeof *n);
            if (!n)
                break;
            c->vends = n;
            c->cap_vends *= 2;
        }
        if (!c->vends[v].vendor) {
            c->vends[v].vendor = arena_strdup(&c->arena, vendor);
            c->vends[v].category = arena_strdup(&c->arena, category ? category : "");
        }
        c->list_vendor[id] = (int32_t)v;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rc == SQLITE_ROW ? nomem(c) : sql_fail(c, "reading lists");
    return 0;
}

static int64_t scalar(struct collect *c, const char *sql, int64_t a, int64_t b)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, a);
    sqlite3_bind_int64(st, 2, b);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The one pass over the rows of both windows. */
static int scan(struct collect *c)
{
    struct report *r = c->r;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT id, client, status, list, domain FROM log "
                           "WHERE id >= ?1 AND id < ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_fail(c, "reading the log");
    sqlite3_bind_int64(st, 1, r->prev_since_ms << 10);
    sqlite3_bind_int64(st, 2, r->until_ms << 10);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0), client = sqlite3_column_int64(st, 1);
        if (client < 0 || client >= (int64_t)c->n_crows || c->crows[client].dev < 0)
            continue;
        struct crow *row = &c->crows[client];
        struct dev *d = &c->devs[row->dev];
        int64_t ms = id >> 10;
        bool now = ms >= r->since_ms;
        int status = sqlite3_column_int(st, 2);
        bool blocked = status == DB_BLOCKED;
        if (now) {
            d->queries++;
            if (status > 0 && status < REPORT_STATUSES)
                d->status[status]++;
            if (ms >= row->last_ms)
                row->last_ms = ms;
            struct report_bucket *b = &r->buckets[(ms - r->since_ms) / r->bucket_ms];
            b->queries++;
            b->blocked += blocked;
        } else {
            d->prev_queries++;
        }
        if (!blocked)
            continue;
        int64_t list = sqlite3_column_int64(st, 3);
        uint32_t vendor =
            list > 0 && list < (int64_t)c->n_lists ? (uint32_t)c->list_vendor[list] : 0;
        int64_t domain = sqlite3_column_int64(st, 4);
        if (domain < 0 || domain > UINT32_MAX)
            domain = 0;
        if (!brows_add(&c->brows, brow_key((uint32_t)row->dev, vendor, (uint32_t)domain), ms)) {
            sqlite3_finalize(st);
            return nomem(c);
        }
        if (now) {
            d->blocked++;
            if (!d->first_ms)
                d->first_ms = ms;
            d->last_ms = ms;
        } else {
            d->prev_blocked++;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sql_fail(c, "reading the log");
    return 0;
}

/* Most hits first, then by name. */
static int cmp_hit(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    if (x->hits != y->hits)
        return x->hits > y->hits ? -1 : 1;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

static int cmp_vendor(const void *a, const void *b)
{
    const struct report_vendor *x = a, *y = b;
    if (x->hits != y->hits)
        return x->hits > y->hits ? -1 : 1;
    return strcmp(x->vendor, y->vendor);
}

static const char *client_label(const struct report_client *cl)
{
    return cl->name ? cl->name : cl->mac ? cl->mac : cl->addr;
}

static int cmp_client(const void *a, const void *b)
{
    const struct report_client *x = a, *y = b;
    if (x->blocked != y->blocked)
        return x->blocked > y->blocked ? -1 : 1;
    if (x->queries != y->queries)
        return x->queries > y->queries ? -1 : 1;
    return strcmp(client_label(x), client_label(y));
}

/*
 * The log keeps a name's bytes as asked; a report shows them the way dig does: anything but
 * printable ASCII as \DDD, so a name cannot add lines to a mail or markup to a page.
 */
static const char *presentation(struct collect *c, const void *blob, size_t len)
{
    const unsigned char *b = blob;
    char *out = arena_alloc(&c->arena, len * 4 + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (b[i] > 0x20 && b[i] < 0x7f && b[i] != '\\' && b[i] != '"')
            out[n++] = (char)b[i];
        else
            n += (size_t)sprintf(out + n, "\\%03u", b[i]);
    }
    out[n] = '\0';
    return out;
}

/* Domain names, each looked up once (a device x vendor table repeats them). */
static const char *domain_name(struct collect *c, sqlite3_stmt *st, int64_t id)
{
    if (id <= 0)
        return "(unknown)";
    if ((size_t)id < c->n_names && c->names[id])
        return c->names[id];
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, id);
    const char *name = "(expired)";
    if (sqlite3_step(st) == SQLITE_ROW)
        name = presentation(c, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    if (name && (size_t)id < c->n_names)
        c->names[id] = name;
    return name;
}

static int cmp_name(const void *a, const void *b, void *names)
{
    const char *const *n = names;
    return strcmp(n[*(const uint32_t *)a], n[*(const uint32_t *)b]);
}

/*
 * Look up the name of every domain with hits in the window and give each hit its name's rank,
 * so that sorting compares integers (a big day has millions of hits and many ties).
 */
static int rank_names(struct collect *c, struct hit *all, size_t n, sqlite3_stmt *st)
{
    for (size_t i = 0; i < n; i++)
        if (all[i].hits && !domain_name(c, st, all[i].domain))
            return nomem(c);
    if (!c->n_names) { /* no table: name order falls back to id order */
        for (size_t i = 0; i < n; i++)
            all[i].rank = all[i].domain;
        return 0;
    }
    uint32_t *ids = malloc((c->n_names) * sizeof *ids), *rank = calloc(c->n_names, sizeof *rank);
    if (!ids || !rank) {
        free(ids);
        free(rank);
        return nomem(c);
    }
    size_t k = 0;
    for (size_t id = 1; id < c->n_names; id++)
        if (c->names[id])
            ids[k++] = (uint32_t)id;
    qsort_r(ids, k, sizeof *ids, cmp_name, c->names);
    for (size_t i = 0; i < k; i++)
        rank[ids[i]] = (uint32_t)i + 1;
    for (size_t i = 0; i < n; i++)
        all[i].rank = (size_t)all[i].domain < c->n_names ? rank[all[i].domain] : 0;
    free(ids);
    free(rank);
    return 0;
}

/* Turn the per-device sums and the hit table into the report's clients, vendors, domains. */
static int build(struct collect *c)
{
    struct report *r = c->r;
    /* Sort the blocked rows by (device, vendor, domain), then fold each key into one hit. */
    if (!brows_sort(&c->brows, KEY_DEV_BITS + KEY_VENDOR_BITS + KEY_DOMAIN_BITS))
        return nomem(c);
    size_t n = 0;
    for (size_t i = 0; i < c->brows.n; i++)
        n += i == 0 || c->brows.v[i].key != c->brows.v[i - 1].key;
    struct hit *all = malloc((n ? n : 1) * sizeof *all);
    if (!all)
        return nomem(c);
    n = 0;
    for (size_t i = 0; i < c->brows.n; i++) {
        const struct brow *b = &c->brows.v[i];
        if (i == 0 || b->key != b[-1].key)
            all[n++] = (struct hit){
                .dev = (uint32_t)(b->key >> (KEY_VENDOR_BITS + KEY_DOMAIN_BITS)),
                .vendor = (uint32_t)(b->key >> 32) & ((1u << KEY_VENDOR_BITS) - 1),
                .domain = (uint32_t)b->key,
            };
        struct hit *h = &all[n - 1];
        if (b->ms < r->since_ms) {
            h->prev_hits++;
        } else {
            if (!h->hits++)
                h->first_ms = b->ms;
            h->last_ms = b->ms;
        }
    }
    free(c->brows.v);
    c->brows = (struct brows){0};

    size_t n_clients = 0;
    for (size_t i = 0; i < c->n_devs; i++)
        n_clients += c->devs[i].queries > 0;
    r->clients = arena_alloc(&c->arena, (n_clients ? n_clients : 1) * sizeof *r->clients);
    /* Which devices, and how many of their addresses, are in the window. */
    size_t *dev_client = calloc(c->n_devs ? c->n_devs : 1, sizeof *dev_client);
    size_t *n_addrs = calloc(c->n_devs ? c->n_devs : 1, sizeof *n_addrs);
    bool *vendor_hit = calloc(c->vendor_keys.n ? c->vendor_keys.n : 1, sizeof *vendor_hit);
    sqlite3_stmt *names = NULL;
    int rc = REPORT_ERROR;
    if (!r->clients || !dev_client || !n_addrs || !vendor_hit) {
        nomem(c);
        goto out;
    }
    int64_t max_domain = scalar(c, "SELECT max(id) FROM domains", 0, 0);
    if (max_domain >= 0 && max_domain < 100000000) {
        c->n_names = (size_t)max_domain + 1;
        c->names = calloc(c->n_names, sizeof *c->names);
        if (!c->names)
            c->n_names = 0;
    }
    if (sqlite3_prepare_v2(c->db, "SELECT name FROM domains WHERE id = ?1", -1, &names, NULL) !=
        SQLITE_OK) {
        sql_fail(c, "reading names");
        goto out;
    }
    if (rank_names(c, all, n, names) < 0)
        goto out;
    for (size_t i = 0; i < c->n_crows; i++)
        if (c->crows[i].dev >= 0 && c->crows[i].last_ms)
            n_addrs[c->crows[i].dev]++;
    for (size_t i = 0; i < c->n_devs; i++) {
        struct dev *d = &c->devs[i];
        if (!d->queries)
            continue;
        dev_client[i] = r->n_clients;
        struct report_client *cl = &r->clients[r->n_clients++];
        *cl = (struct report_client){
            .name = d->name,
            .mac = d->mac,
            .queries = d->queries,
            .blocked = d->blocked,
            .prev_queries = d->prev_queries,
            .prev_blocked = d->prev_blocked,
            .first_ms = d->first_ms,
            .last_ms = d->last_ms,
        };
        memcpy(cl->status, d->status, sizeof cl->status);
        if (!(cl->addrs = arena_alloc(&c->arena, n_addrs[i] * sizeof *cl->addrs + 1))) {
            nomem(c);
            goto out;
        }
        r->queries += d->queries;
        r->blocked += d->blocked;
        r->prev_queries += d->prev_queries;
        r->prev_blocked += d->prev_blocked;
    }
    /* Addresses: the latest one first, then the others in the order of their client ids. */
    for (size_t i = 0; i < c->n_crows; i++) {
        struct crow *row = &c->crows[i];
        if (row->dev < 0 || !row->last_ms)
            continue;
        struct report_client *cl = &r->clients[dev_client[row->dev]];
        struct dev *d = &c->devs[row->dev];
        bool dup = false;
        for (size_t k = 0; k < cl->n_addrs; k++)
            dup |= strcmp(cl->addrs[k], row->addr) == 0;
        if (!dup)
            cl->addrs[cl->n_addrs++] = row->addr;
        if (row->last_ms >= d->addr_ms) {
            d->addr_ms = row->last_ms;
            cl->addr = row->addr;
        }
    }
    for (size_t i = 0; i < r->n_clients; i++) {
        struct report_client *cl = &r->clients[i];
        for (size_t k = 0; k < cl->n_addrs; k++) { /* latest first */
            if (strcmp(cl->addrs[k], cl->addr) == 0) {
                memmove(cl->addrs + 1, cl->addrs, k * sizeof *cl->addrs);
                cl->addrs[0] = cl->addr;
                break;
            }
        }
    }
    /* Vendors per device (current window hits; previous-only hits count toward the change). */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && all[j].dev == all[i].dev && all[j].vendor == all[i].vendor)
            j++;
        struct dev *d = &c->devs[all[i].dev];
        if (d->queries) {
            struct report_client *cl = &r->clients[dev_client[all[i].dev]];
            if (!cl->vendors) {
                size_t runs = 0; /* vendors of this device: runs until the device changes */
                for (size_t k = i; k < n && all[k].dev == all[i].dev; k++)
                    runs += k == i || all[k].vendor != all[k - 1].vendor;
                if (!(cl->vendors = arena_alloc(&c->arena, runs * sizeof *cl->vendors))) {
                    nomem(c);
                    goto out;
                }
            }
            struct report_vendor v = {
                .vendor = c->vends[all[i].vendor].vendor,
                .category = c->vends[all[i].vendor].category,
            };
            qsort(all + i, j - i, sizeof *all, cmp_hit);
            size_t nd = 0;
            for (size_t k = i; k < j; k++)
                nd += all[k].hits > 0;
            v.domains = arena_alloc(&c->arena, (nd ? nd : 1) * sizeof *v.domains);
            if (!v.domains) {
                nomem(c);
                goto out;
            }
            for (size_t k = i; k < j; k++) {
                struct hit *h = &all[k];
                v.hits += h->hits;
                v.prev_hits += h->prev_hits;
                if (!h->hits)
                    continue;
                if (!v.first_ms || h->first_ms < v.first_ms)
                    v.first_ms = h->first_ms;
                if (h->last_ms > v.last_ms)
                    v.last_ms = h->last_ms;
                const char *name = domain_name(c, names, h->domain);
                if (!name) {
                    nomem(c);
                    goto out;
                }
                v.domains[v.n_domains++] = (struct report_domain){
                    .name = name,
                    .hits = h->hits,
                    .prev_hits = h->prev_hits,
                    .first_ms = h->first_ms,
                    .last_ms = h->last_ms,
                };
            }
            if (v.hits) {
                cl->vendors[cl->n_vendors++] = v;
                vendor_hit[all[i].vendor] = true;
            }
        }
        i = j;
    }
    for (size_t i = 0; i < r->n_clients; i++)
        if (r->clients[i].n_vendors) /* vendors is NULL for a device with no hits */
            qsort(r->clients[i].vendors, r->clients[i].n_vendors, sizeof *r->clients[i].vendors,
                  cmp_vendor);
    qsort(r->clients, r->n_clients, sizeof *r->clients, cmp_client);
    for (size_t i = 0; i < c->vendor_keys.n; i++)
        r->n_vendors += vendor_hit[i];
    rc = 0;
out:
    sqlite3_finalize(names);
    free(all);
    free(dev_client);
    free(n_addrs);
    free(vendor_hit);
    return rc;
}

static int open_db(struct collect *c, const char *path)
{
    if (access(path, F_OK) < 0) {
        snprintf(c->err, c->errlen, "no query log at %s: %s", path, strerror(errno));
        return REPORT_NODB;
    }
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        return sql_fail(c, path);
    sqlite3_busy_timeout(c->db, 5000);
    /* Read the file through a mapping: no read(2) per page on a long scan. */
    sqlite3_exec(c->db, "PRAGMA mmap_size = 4294967296", NULL, NULL, NULL);
    sqlite3_stmt *st;
    int version = -1;
    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            version = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    if (version < 0) {
        int e = sqlite3_errcode(c->db);
        snprintf(c->err, c->errlen, "%s: %s", path,
                 e == SQLITE_NOTADB ? "not a telesink query log" : sqlite3_errmsg(c->db));
        return e == SQLITE_NOTADB ? REPORT_NODB : REPORT_ERROR;
    }
    if (version == 0) {
        snprintf(c->err, c->errlen, "%s: not a telesink query log (no schema)", path);
        return REPORT_NODB;
    }
    if (version > DB_SCHEMA_VERSION) {
        snprintf(c->err, c->errlen, "%s: schema version %d is newer than this telesink (%d)", path,
                 version, DB_SCHEMA_VERSION);
        return REPORT_ERROR;
    }
    return 0;
}

int report_collect(const char *path, int64_t since_ms, int64_t until_ms, const char *client,
                   struct report **out, char *err, size_t errlen)
{
    struct collect c = {.err = err, .errlen = errlen};
    *out = NULL;
    if (since_ms >= until_ms || since_ms < 0) {
        snprintf(err, errlen, "the window is empty");
        return REPORT_ERROR;
    }
    int rc = open_db(&c, path);
    if (rc)
        goto out;
    rc = REPORT_ERROR;
    if (!(c.r = arena_alloc(&c.arena, sizeof *c.r))) {
        nomem(&c);
        goto out;
    }
    struct report *r = c.r;
    *r = (struct report){.since_ms = since_ms, .until_ms = until_ms};
    r->prev_since_ms = since_ms - (until_ms - since_ms);
    if (r->prev_since_ms < 0)
        r->prev_since_ms = 0;
    r->bucket_ms = until_ms - since_ms > 7 * 86400000LL ? 86400000LL : 3600000LL;
    r->n_buckets = (size_t)((until_ms - since_ms + r->bucket_ms - 1) / r->bucket_ms);
    if (r->n_buckets > 100000) {
        snprintf(err, errlen, "the window is too long");
        goto out;
    }
    r->buckets = arena_alloc(&c.arena, r->n_buckets * sizeof *r->buckets);
    if (!r->buckets) {
        nomem(&c);
        goto out;
    }
    memset(r->buckets, 0, r->n_buckets * sizeof *r->buckets);
    /* One read transaction: every query below sees the same snapshot. */
    if (sqlite3_exec(c.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        sql_fail(&c, "starting a read");
        goto out;
    }
    if ((rc = load_clients(&c, client)) || (rc = load_lists(&c)))
        goto out;
    if (c.n_devs >= 1u << KEY_DEV_BITS || c.vendor_keys.n >= 1u << KEY_VENDOR_BITS) {
        snprintf(err, errlen, "too many devices (%zu) or vendors (%zu) for one report", c.n_devs,
                 c.vendor_keys.n);
        rc = REPORT_ERROR;
        goto out;
    }
    if ((rc = scan(&c)) || (rc = build(&c)))
        goto out;
    rc = REPORT_ERROR;
    int64_t first = scalar(&c, "SELECT min(id) FROM log", 0, 0);
    int64_t hours[2] = {since_ms / 3600000, (until_ms + 3599999) / 3600000};
    static const char *const counter_sql[4] = {
        "SELECT sum(queries) FROM counters WHERE hour >= ?1 AND hour < ?2",
        "SELECT sum(logged) FROM counters WHERE hour >= ?1 AND hour < ?2",
        "SELECT sum(not_logged) FROM counters WHERE hour >= ?1 AND hour < ?2",
        "SELECT sum(dropped) FROM counters WHERE hour >= ?1 AND hour < ?2",
    };
    uint64_t *dst[4] = {&r->seen, &r->logged, &r->not_logged, &r->dropped};
    for (int i = 0; i < 4; i++) {
        int64_t v = scalar(&c, counter_sql[i], hours[0], hours[1]);
        if (v < 0) {
            sql_fail(&c, "reading counters");
            goto out;
        }
        *dst[i] = (uint64_t)v;
    }
    if (first < 0) {
        sql_fail(&c, "reading the log");
        goto out;
    }
    r->log_start_ms = first >> 10;
    r->compared = first > 0 && r->log_start_ms < since_ms;
    sqlite3_exec(c.db, "COMMIT", NULL, NULL, NULL);
    r->arena = c.arena;
    c.arena = NULL;
    *out = r;
    rc = 0;
out:
    free(c.crows);
    free(c.devs);
    free(c.vends);
    free(c.list_vendor);
    free(c.brows.v);
    free(c.names);
    strmap_free(&c.dev_keys);
    strmap_free(&c.vendor_keys);
    arena_free(c.arena);
    sqlite3_close_v2(c.db);
    return rc;
}

void report_free(struct report *r)
{
    if (r)
        arena_free(r->arena);
}
