#include "listcmd.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "lists.h"
#include "paths.h"
#include "policy.h"
#include "wire.h"

#define EXIT_USAGE 2

/* ---- the catalog: every entry with its text and place -------------------------------------- */

struct file_info {
    char *path, *name, *vendor, *category, *description;
    enum list_format fmt;
    bool excluded; /* not loaded by the config (vendors = ...) */
    unsigned blocked, breaking, allowed, invalid, unsupported;
};

struct entry {
    char *name;
    uint32_t file, line;
    int32_t next; /* next entry with the same name, -1 at the end */
    bool subtree, allow, breaks, has_source;
};

struct problem {
    uint32_t file, line;
    bool error;
    char *msg;
};

struct catalog {
    struct file_info *files;
    size_t n_files;
    struct entry *entries;
    size_t n_entries, cap_entries;
    struct problem *problems;
    size_t n_problems;
    int32_t *slots; /* name -> first entry index, open addressing; -1 empty */
    size_t n_slots;
    const struct config *cfg;
    bool check; /* collect problems for `lists check` */
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "telesink lists: out of memory\n");
        exit(1);
    }
    return q;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) {
        fprintf(stderr, "telesink lists: out of memory\n");
        exit(1);
    }
    return d;
}

static uint64_t str_hash(const char *s, size_t n)
{
    return fnv1a(s, n, FNV1A_SEED);
}

static void map_grow(struct catalog *c)
{
    size_t n = c->n_slots ? c->n_slots * 2 : 1024;
    int32_t *slots = xrealloc(NULL, n * sizeof *slots);
    for (size_t i = 0; i < n; i++)
        slots[i] = -1;
    for (size_t i = 0; i < c->n_slots; i++) {
        int32_t e = c->slots[i];
        if (e < 0)
            continue;
        const char *name = c->entries[e].name;
        size_t j = str_hash(name, strlen(name)) & (n - 1);
        while (slots[j] >= 0)
            j = (j + 1) & (n - 1);
        slots[j] = e;
    }
    free(c->slots);
    c->slots = slots;
    c->n_slots = n;
}

/* The first entry with this name, or -1. */
static int32_t map_find(const struct catalog *c, const char *name, size_t len)
{
    if (!c->n_slots)
        return -1;
    size_t j = str_hash(name, len) & (c->n_slots - 1);
    while (c->slots[j] >= 0) {
        const char *e = c->entries[c->slots[j]].name;
        if (strlen(e) == len && memcmp(e, name, len) == 0)
            return c->slots[j];
        j = (j + 1) & (c->n_slots - 1);
    }
    return -1;
}

static void add_entry(struct catalog *c, const char *name, size_t len, uint32_t file, uint32_t line,
                      const struct list_line *l)
{
    if (c->n_entries == c->cap_entries) {
        c->cap_entries = c->cap_entries ? c->cap_entries * 2 : 1024;
        c->entries = xrealloc(c->entries, c->cap_entries * sizeof *c->entries);
    }
    if ((c->n_entries + 1) * 2 > c->n_slots)
        map_grow(c);
    struct entry *e = &c->entries[c->n_entries];
    e->name = xrealloc(NULL, len + 1);
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    e->file = file;
    e->line = line;
    e->subtree = l->subtree;
    e->allow = l->allow;
    e->breaks = l->breaks != NULL;
    e->has_source = l->source != NULL;
    e->next = -1;
    size_t j = str_hash(name, len) & (c->n_slots - 1);
    while (c->slots[j] >= 0) {
        int32_t other = c->slots[j];
        if (strcmp(c->entries[other].name, e->name) == 0) {
            /* Chain behind the existing entries of this name. */
            while (c->entries[other].next >= 0)
                other = c->entries[other].next;
            c->entries[other].next = (int32_t)c->n_entries;
            c->n_entries++;
            return;
        }
        j = (j + 1) & (c->n_slots - 1);
    }
    c->slots[j] = (int32_t)c->n_entries;
    c->n_entries++;
}

static void add_problem(struct catalog *c, uint32_t file, uint32_t line, bool error,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add_problem(struct catalog *c, uint32_t file, uint32_t line, bool error,
                        const char *fmt, ...)
{
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->problems = xrealloc(c->problems, (c->n_problems + 1) * sizeof *c->problems);
    c->problems[c->n_problems++] = (struct problem){file, line, error, xstrdup(buf)};
}

struct reading {
    struct catalog *c;
    uint32_t file;
    bool in_header;
    struct list_line line;
};

static int read_line(void *ctx, unsigned lineno, const char *text, size_t len)
{
    struct reading *r = ctx;
    struct catalog *c = r->c;
    struct file_info *f = &c->files[r->file];
    struct list_line *l = &r->line;
    lists_parse_line(text, len, f->fmt, r->in_header, l);
    switch (l->type) {
    case LINE_BLANK:
        return 0;
    case LINE_HEADER: {
        char **field = strcmp(l->key, "vendor") == 0     ? &f->vendor
                       : strcmp(l->key, "category") == 0 ? &f->category
                                                         : &f->description;
        free(*field);
        *field = xstrdup(l->value);
        return 0;
    }
    case LINE_INVALID:
        f->invalid++;
        add_problem(c, r->file, lineno, true, "%s: %.*s", l->error, (int)(len > 120 ? 120 : len),
                    text);
        return 0;
    case LINE_UNSUPPORTED:
        f->unsupported++;
        add_problem(c, r->file, lineno, f->fmt == LIST_OWN, "%s: %.*s", l->error,
                    (int)(len > 120 ? 120 : len), text);
        return 0;
    case LINE_ENTRY:
        break;
    }
    if (r->in_header) {
        r->in_header = false;
        if (f->fmt == LIST_OWN && c->cfg && !policy_vendor_wanted(c->cfg, f->name, f->vendor) &&
            !c->check)
            f->excluded = true;
    }
    if (f->excluded)
        return 0;
    for (size_t i = 0; i < l->n_names; i++) {
        add_entry(c, l->names[i], l->lens[i], r->file, lineno, l);
        if (l->allow)
            f->allowed++;
        else if (l->breaks)
            f->breaking++;
        else
            f->blocked++;
    }
    return 0;
}

static int load_file(struct catalog *c, const char *path, enum list_format fmt)
{
    c->files = xrealloc(c->files, (c->n_files + 1) * sizeof *c->files);
    struct file_info *f = &c->files[c->n_files];
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    const char *base = strrchr(path, '/');
    f->name = xstrdup(base ? base + 1 : path);
    char *dot = strrchr(f->name, '.');
    if (dot && dot != f->name)
        *dot = '\0';
    f->fmt = fmt;
    struct reading *r = xrealloc(NULL, sizeof *r);
    r->c = c;
    r->file = (uint32_t)c->n_files;
    r->in_header = true;
    c->n_files++;
    int rc = lists_read_file(path, read_line, r);
    free(r);
    if (rc < 0) {
        fprintf(stderr, "telesink lists: %s: %s\n", path, strerror(-rc));
        return -1;
    }
    return 0;
}

static int load_one(void *ctx, const char *path, enum list_format fmt)
{
    return load_file(ctx, path, fmt);
}

static int load_path(struct catalog *c, const char *path, bool force_allow)
{
    char err[512] = "";
    int rc = lists_each_file(path, force_allow, load_one, c, err, sizeof err);
    if (rc < 0 && err[0])
        fprintf(stderr, "telesink lists: %s\n", err);
    return rc < 0 ? -1 : 0;
}

static void catalog_free(struct catalog *c)
{
    for (size_t i = 0; i < c->n_files; i++) {
        struct file_info *f = &c->files[i];
        free(f->path);
        free(f->name);
        free(f->vendor);
        free(f->category);
        free(f->description);
    }
    for (size_t i = 0; i < c->n_entries; i++)
        free(c->entries[i].name);
    for (size_t i = 0; i < c->n_problems; i++)
        free(c->problems[i].msg);
    free(c->files);
    free(c->entries);
    free(c->problems);
    free(c->slots);
}

/* Does entry e cover `name` when found at this depth (0 = the name itself)? */
static bool covers(const struct entry *e, unsigned depth)
{
    return e->subtree || depth == 0;
}

/* Call fn for every entry covering name (a normalised text name), most specific first. */
typedef void (*cover_fn)(void *ctx, const struct entry *e, int32_t index, unsigned depth);

static void for_covering(const struct catalog *c, const char *name, cover_fn fn, void *ctx)
{
    size_t len = strlen(name);
    unsigned depth = 0;
    for (size_t off = 0; off < len; depth++) {
        for (int32_t i = map_find(c, name + off, len - off); i >= 0; i = c->entries[i].next) {
            if (covers(&c->entries[i], depth))
                fn(ctx, &c->entries[i], i, depth);
        }
        const char *dot = memchr(name + off, '.', len - off);
        if (!dot)
            break;
        off = (size_t)(dot - name) + 1;
    }
}

/* ---- configuration ------------------------------------------------------------------------ */

static struct config *load_config(const char *path)
{
    char err[512];
    struct config *c = config_create();
    if (!c) {
        fprintf(stderr, "telesink lists: out of memory\n");
        return NULL;
    }
    char conf[PATH_MAX];
    const char *def = paths_config_file(conf, sizeof conf);
    if (!path && access(def, F_OK) == 0)
        path = def;
    if (path && config_load_file(c, path, err, sizeof err) < 0) {
        fprintf(stderr, "telesink lists: %s\n", err);
        config_destroy(c);
        return NULL;
    }
    return c;
}

/* Load what the config names, or only `paths` when given. */
static int catalog_load(struct catalog *c, const struct config *cfg, char **paths, int n_paths)
{
    if (n_paths > 0) {
        for (int i = 0; i < n_paths; i++) {
            if (load_path(c, paths[i], false) < 0)
                return -1;
        }
        return 0;
    }
    for (size_t i = 0; i < cfg->n_list_paths; i++) {
        if (load_path(c, cfg->list_paths[i], false) < 0)
            return -1;
    }
    for (size_t i = 0; i < cfg->n_allow_lists; i++) {
        if (load_path(c, cfg->allow_lists[i], true) < 0)
            return -1;
    }
    return 0;
}

/* ---- lists check -------------------------------------------------------------------------- */

struct shadow_ctx {
    const struct catalog *c;
    const struct entry *allow;
    struct catalog *out;
};

/* An allow entry is covered by a default block entry of a curated list: it would be blocked. */
static void check_blocks_allowed(void *ctx, const struct entry *e, int32_t index, unsigned depth)
{
    (void)index, (void)depth;
    struct shadow_ctx *s = ctx;
    const struct file_info *bf = &s->c->files[e->file];
    const struct file_info *af = &s->c->files[s->allow->file];
    if (e->allow || e->breaks)
        return;
    bool curated = bf->fmt == LIST_OWN;
    add_problem(s->out, e->file, e->line, curated, "'%s' (%s) would block '%s', allowed at %s:%u",
                e->name, e->subtree ? "with its subdomains" : "exact", s->allow->name, af->path,
                s->allow->line);
}

struct allowed_ctx {
    bool found;
    const struct entry *by;
};

static void find_allow(void *ctx, const struct entry *e, int32_t index, unsigned depth)
{
    (void)index, (void)depth;
    struct allowed_ctx *a = ctx;
    if (e->allow && !a->found) {
        a->found = true;
        a->by = e;
    }
}

static int cmd_check(struct catalog *c)
{
    /* Per curated file: a header with a known category, and unique vendors. */
    for (size_t i = 0; i < c->n_files; i++) {
        struct file_info *f = &c->files[i];
        if (f->fmt != LIST_OWN)
            continue;
        if (!f->vendor)
            add_problem(c, (uint32_t)i, 1, true, "missing '# vendor:' header");
        if (!f->category)
            add_problem(c, (uint32_t)i, 1, true, "missing '# category:' header");
        else if (!lists_category_known(f->category))
            add_problem(c, (uint32_t)i, 1, true,
                        "unknown category '%s' (telemetry, analytics, ads, crash-reporting, "
                        "tracking)",
                        f->category);
        for (size_t k = 0; k < i; k++) {
            struct file_info *g = &c->files[k];
            if (g->fmt == LIST_OWN && f->vendor && g->vendor &&
                strcasecmp(f->vendor, g->vendor) == 0)
                add_problem(c, (uint32_t)i, 1, true, "vendor '%s' is also the vendor of %s",
                            f->vendor, g->path);
        }
    }
    for (size_t i = 0; i < c->n_entries; i++) {
        const struct entry *e = &c->entries[i];
        const struct file_info *f = &c->files[e->file];
        if (f->fmt == LIST_OWN && !e->allow && !e->has_source)
            add_problem(c, e->file, e->line, true, "'%s' has no '# source:'", e->name);
        /* Duplicates: an earlier entry with the same name, kind and polarity. */
        int32_t first = map_find(c, e->name, strlen(e->name));
        for (int32_t k = first; k >= 0 && (size_t)k < i; k = c->entries[k].next) {
            const struct entry *o = &c->entries[k];
            if (o->subtree == e->subtree && o->allow == e->allow) {
                add_problem(c, e->file, e->line, f->fmt == LIST_OWN, "'%s' duplicates %s:%u",
                            e->name, c->files[o->file].path, o->line);
                break;
            }
        }
        if (e->allow) {
            /* Which block entries would block this allowed name? */
            struct shadow_ctx s = {c, e, c};
            for_covering(c, e->name, check_blocks_allowed, &s);
        } else {
            /* A block entry inside an allowed subtree never blocks anything. */
            struct allowed_ctx a = {false, NULL};
            for_covering(c, e->name, find_allow, &a);
            if (a.found && a.by->subtree && strcmp(a.by->name, e->name) != 0)
                add_problem(c, e->file, e->line, f->fmt == LIST_OWN,
                            "'%s' is inside '*.%s' allowed at %s:%u: it never blocks", e->name,
                            a.by->name, c->files[a.by->file].path, a.by->line);
        }
    }

    unsigned errors = 0, warnings = 0;
    for (size_t i = 0; i < c->n_problems; i++) {
        const struct problem *p = &c->problems[i];
        printf("%s:%u: %s: %s\n", c->files[p->file].path, p->line, p->error ? "error" : "warning",
               p->msg);
        if (p->error)
            errors++;
        else
            warnings++;
    }
    printf("\n%-28s %-16s %-20s %8s %8s %8s\n", "vendor", "category", "file", "blocked", "breaks",
           "allowed");
    unsigned tb = 0, tk = 0, ta = 0;
    for (size_t i = 0; i < c->n_files; i++) {
        const struct file_info *f = &c->files[i];
        const char *base = strrchr(f->path, '/');
        printf("%-28s %-16s %-20s %8u %8u %8u\n", f->vendor ? f->vendor : f->name,
               f->category ? f->category : (f->fmt == LIST_ALLOW ? "allow" : "-"),
               base ? base + 1 : f->path, f->blocked, f->breaking, f->allowed);
        tb += f->blocked;
        tk += f->breaking;
        ta += f->allowed;
    }
    printf("%-28s %-16s %-20s %8u %8u %8u\n", "total", "", "", tb, tk, ta);
    printf("\n%zu files, %u errors, %u warnings\n", c->n_files, errors, warnings);
    return errors ? 1 : 0;
}

/* ---- lists match -------------------------------------------------------------------------- */

static void print_match(void *ctx, const struct entry *e, int32_t index, unsigned depth)
{
    (void)index, (void)depth;
    const struct catalog *c = ctx;
    const struct file_info *f = &c->files[e->file];
    printf("  %s %s:%u  %s%s  vendor %s, category %s%s\n", e->allow ? "allow" : "block", f->path,
           e->line, e->name, e->subtree ? " (and subdomains)" : "", f->vendor ? f->vendor : f->name,
           f->category ? f->category : (e->allow ? "allow" : "unknown"),
           e->breaks ? " (# breaks: not blocked unless strict = yes)" : "");
}

static int cmd_match(struct catalog *c, const struct config *cfg, const char *query)
{
    char name[LISTS_MAX_NAME + 2];
    size_t len = lists_normalize_name(query, strlen(query), name);
    if (len == 0) {
        fprintf(stderr, "telesink lists match: '%s' is not a domain name\n", query);
        return EXIT_USAGE;
    }
    name[len] = '\0';
    char err[512];
    struct policy *p = policy_build(cfg, 1, NULL, NULL, err, sizeof err);
    if (!p) {
        fprintf(stderr, "telesink lists: %s\n", err);
        return 1;
    }
    struct policy_verdict v;
    policy_check_text(p, name, len, &v);
    printf("%s\n", name);
    for_covering(c, name, print_match, c);
    int rc;
    if (v.blocked) {
        const struct policy_list *l = policy_list(p, v.list);
        printf("blocked: %s (%s, %s)%s\n", l->vendor, l->name, l->category,
               l->always_nxdomain ? ", always NXDOMAIN" : "");
        rc = 0;
    } else {
        struct allowed_ctx a = {false, NULL};
        for_covering(c, name, find_allow, &a);
        if (a.found)
            printf("not blocked: allowed by %s:%u\n", c->files[a.by->file].path, a.by->line);
        else
            printf("not blocked\n");
        rc = 1;
    }
    policy_unref(p);
    return rc;
}

/* ---- lists export ------------------------------------------------------------------------- */

static bool exportable(const struct catalog *c, const struct entry *e, const struct config *cfg,
                       char **vendors, int n_vendors, bool allow)
{
    const struct file_info *f = &c->files[e->file];
    if (f->excluded || e->allow != allow || (e->breaks && !cfg->strict))
        return false;
    if (n_vendors == 0)
        return true;
    for (int k = 0; k < n_vendors; k++) {
        if (strcasecmp(vendors[k], f->name) == 0 ||
            (f->vendor && strcasecmp(vendors[k], f->vendor) == 0))
            return true;
    }
    return false;
}

static int cmd_export(struct catalog *c, const struct config *cfg, const char *format,
                      char **vendors, int n_vendors, bool allow, const char *output)
{
    enum { F_DOMAINS, F_HOSTS, F_ADBLOCK } fmt;
    if (strcmp(format, "domains") == 0)
        fmt = F_DOMAINS;
    else if (strcmp(format, "hosts") == 0)
        fmt = F_HOSTS;
    else if (strcmp(format, "adblock") == 0)
        fmt = F_ADBLOCK;
    else {
        fprintf(stderr, "telesink lists export: --format '%s' is not domains, hosts or adblock\n",
                format);
        return EXIT_USAGE;
    }
    char tmp[4096];
    FILE *out = stdout;
    if (output) {
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", output, (int)getpid());
        out = fopen(tmp, "w");
        if (!out) {
            fprintf(stderr, "telesink lists export: %s: %s\n", tmp, strerror(errno));
            return 1;
        }
    }
    const char *cm = fmt == F_ADBLOCK ? "!" : "#";
    fprintf(out, "%s Title: telesink %s\n", cm, allow ? "allowlist" : "blocklist");
    fprintf(out,
            "%s Generated by `telesink lists export --format %s`; sources: the telesink "
            "lists/README.md attributions\n",
            cm, format);
    if (fmt != F_ADBLOCK && !allow)
        fprintf(out,
                "%s Pi-hole and AdGuard Home read these names as exact; use --format "
                "adblock to keep subdomain blocking\n",
                cm);
    unsigned written = 0;
    for (size_t i = 0; i < c->n_entries; i++) {
        const struct entry *e = &c->entries[i];
        if (!exportable(c, e, cfg, vendors, n_vendors, allow))
            continue;
        /* One line per name and kind: the first exported entry of a name and kind wins. */
        bool dup = false;
        for (int32_t k = map_find(c, e->name, strlen(e->name)); k >= 0 && (size_t)k < i && !dup;
             k = c->entries[k].next) {
            const struct entry *o = &c->entries[k];
            dup = o->subtree == e->subtree && exportable(c, o, cfg, vendors, n_vendors, allow);
        }
        if (dup)
            continue;
        switch (fmt) {
        case F_DOMAINS:
            fprintf(out, "%s\n", e->name);
            break;
        case F_HOSTS:
            fprintf(out, "0.0.0.0 %s\n", e->name);
            break;
        case F_ADBLOCK:
            fprintf(out, "%s%s%s^\n", allow ? "@@" : "", e->subtree ? "||" : "|", e->name);
            break;
        }
        written++;
    }
    if (output) {
        if (fflush(out) != 0 || fsync(fileno(out)) != 0 || fclose(out) != 0 ||
            rename(tmp, output) != 0) {
            fprintf(stderr, "telesink lists export: %s: %s\n", output, strerror(errno));
            unlink(tmp);
            return 1;
        }
        fprintf(stderr, "telesink lists export: %u names written to %s\n", written, output);
    }
    return 0;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: telesink lists check [--config FILE] [PATH...]\n"
               "       telesink lists match [--config FILE] NAME\n"
               "       telesink lists export [--config FILE] [--format domains|hosts|adblock]\n"
               "                             [--vendor NAME]... [--allow] [--output FILE]\n"
               "\n"
               "check   lint list files (default: the configured lists): bad lines, duplicates,\n"
               "        curated entries without '# source:' or that would block an allowed name;\n"
               "        prints counts per vendor; exit 1 on errors\n"
               "match   which list, vendor and line block NAME, or which allow entry saves it;\n"
               "        exit 0 when blocked, 1 when not\n"
               "export  the blocking entries for Pi-hole or AdGuard Home (adblock keeps subdomain\n"
               "        blocking: ||name^); --allow exports the allow entries instead\n");
}

int listcmd_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "check") != 0 && strcmp(sub, "match") != 0 && strcmp(sub, "export") != 0) {
        fprintf(stderr, "telesink lists: unknown command '%s'\n", sub);
        usage(stderr);
        return EXIT_USAGE;
    }
    enum { O_CONFIG = 1, O_FORMAT, O_VENDOR, O_OUTPUT, O_ALLOW, O_HELP };
    static const struct option opts[] = {
        {"config", required_argument, NULL, O_CONFIG},
        {"format", required_argument, NULL, O_FORMAT},
        {"vendor", required_argument, NULL, O_VENDOR},
        {"output", required_argument, NULL, O_OUTPUT},
        {"allow", no_argument, NULL, O_ALLOW},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *format = "domains", *output = NULL;
    char **vendors = NULL;
    int n_vendors = 0, opt, rc = EXIT_USAGE;
    bool allow = false;
    bool is_export = strcmp(sub, "export") == 0;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc - 1, argv + 1, ":", opts, NULL)) != -1) {
        if (!is_export && (opt == O_FORMAT || opt == O_VENDOR || opt == O_OUTPUT || opt == O_ALLOW))
            opt = '?';
        switch (opt) {
        case O_CONFIG:
            config = optarg;
            break;
        case O_FORMAT:
            format = optarg;
            break;
        case O_VENDOR:
            vendors = xrealloc(vendors, (size_t)(n_vendors + 1) * sizeof *vendors);
            vendors[n_vendors++] = optarg;
            break;
        case O_OUTPUT:
            output = optarg;
            break;
        case O_ALLOW:
            allow = true;
            break;
        case O_HELP:
            usage(stdout);
            free(vendors);
            return 0;
        case ':':
            fprintf(stderr, "telesink lists %s: %s needs a value\n", sub, argv[optind]);
            free(vendors);
            return EXIT_USAGE;
        default:
            fprintf(stderr, "telesink lists %s: unknown option '%s'\n", sub, argv[optind]);
            free(vendors);
            return EXIT_USAGE;
        }
    }
    char **rest = argv + 1 + optind;
    int n_rest = argc - 1 - optind;
    if ((strcmp(sub, "match") == 0 && n_rest != 1) || (is_export && n_rest != 0)) {
        fprintf(stderr, "telesink lists %s: wrong number of arguments\n", sub);
        usage(stderr);
        free(vendors);
        return EXIT_USAGE;
    }
    struct config *cfg = load_config(config);
    if (!cfg) {
        free(vendors);
        return EXIT_USAGE;
    }
    struct catalog c = {.cfg = cfg, .check = strcmp(sub, "check") == 0};
    bool own_paths = c.check && n_rest > 0;
    if (catalog_load(&c, cfg, own_paths ? rest : NULL, own_paths ? n_rest : 0) < 0) {
        rc = 1;
    } else if (c.check) {
        rc = cmd_check(&c);
    } else if (is_export) {
        rc = cmd_export(&c, cfg, format, vendors, n_vendors, allow, output);
    } else {
        rc = cmd_match(&c, cfg, rest[0]);
    }
    catalog_free(&c);
    config_destroy(cfg);
    free(vendors);
    return rc;
}
