#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Problems logged per file before only the counts are kept. */
#define PROBLEMS_PER_FILE 20

struct policy {
    unsigned refs;
    struct domainset *block;
    struct domainset *allow;
    struct policy_list *lists;
    size_t n_lists;
};

/* State while one file is read. */
struct load {
    struct policy *p;
    const struct config *cfg;
    struct policy_list *list;
    uint16_t index;
    bool in_header;
    bool skip_file; /* excluded by `vendors` */
    unsigned problems;
    policy_problem_fn problem;
    void *ctx;
    int error; /* -ENOMEM */
    struct list_line line;
};

static void list_free(struct policy_list *l)
{
    free(l->path);
    free(l->name);
    free(l->vendor);
    free(l->category);
    free(l->description);
    free(l->ede);
}

static void policy_free(struct policy *p)
{
    domainset_destroy(p->block);
    domainset_destroy(p->allow);
    for (size_t i = 0; i < p->n_lists; i++)
        list_free(&p->lists[i]);
    free(p->lists);
    free(p);
}

struct policy *policy_ref(struct policy *p)
{
    __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

void policy_unref(struct policy *p)
{
    if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
        policy_free(p);
}

static struct policy_list *add_list(struct policy *p, const char *path, enum list_format fmt)
{
    if (p->n_lists >= DOMAINSET_MAX_SOURCE)
        return NULL;
    struct policy_list *n = realloc(p->lists, (p->n_lists + 1) * sizeof *n);
    if (!n)
        return NULL;
    p->lists = n;
    struct policy_list *l = &p->lists[p->n_lists];
    memset(l, 0, sizeof *l);
    l->path = strdup(path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    l->name = strdup(base);
    if (l->name) {
        char *dot = strrchr(l->name, '.');
        if (dot && dot != l->name)
            *dot = '\0';
    }
    l->format = fmt;
    if (!l->path || !l->name) {
        list_free(l);
        return NULL;
    }
    p->n_lists++;
    return l;
}

bool policy_vendor_wanted(const struct config *cfg, const char *name, const char *vendor)
{
    if (cfg->n_vendors == 0)
        return true;
    for (size_t i = 0; i < cfg->n_vendors; i++) {
        if (strcasecmp(cfg->vendors[i], name) == 0 ||
            (vendor && strcasecmp(cfg->vendors[i], vendor) == 0))
            return true;
    }
    return false;
}

static void report(struct load *ld, unsigned lineno, const char *why, const char *text, size_t len)
{
    if (ld->problem && ++ld->problems <= PROBLEMS_PER_FILE)
        ld->problem(ld->ctx, ld->list->path, lineno, why, text, len);
}

static int on_line(void *ctx, unsigned lineno, const char *text, size_t len)
{
    struct load *ld = ctx;
    struct policy_list *l = ld->list;
    struct list_line *line = &ld->line;
    lists_parse_line(text, len, l->format, ld->in_header, line);
    switch (line->type) {
    case LINE_BLANK:
        return 0;
    case LINE_HEADER: {
        char **field = strcmp(line->key, "vendor") == 0     ? &l->vendor
                       : strcmp(line->key, "category") == 0 ? &l->category
                                                            : &l->description;
        free(*field);
        *field = strdup(line->value);
        return 0;
    }
    case LINE_INVALID:
        l->invalid++;
        report(ld, lineno, line->error, text, len);
        return 0;
    case LINE_UNSUPPORTED:
        l->unsupported++;
        report(ld, lineno, line->error, text, len);
        return 0;
    case LINE_ENTRY:
        break;
    }
    if (ld->in_header) {
        ld->in_header = false;
        /* The header is complete: is this vendor wanted at all? */
        if (l->format == LIST_OWN && !policy_vendor_wanted(ld->cfg, l->name, l->vendor)) {
            ld->skip_file = true;
            return 1;
        }
    }
    if (line->breaks && !ld->cfg->strict && !line->allow) {
        l->breaking++;
        return 0;
    }
    struct domainset *set = line->allow ? ld->p->allow : ld->p->block;
    for (size_t i = 0; i < line->n_names; i++) {
        int rc = domainset_add(set, line->names[i], line->lens[i], line->subtree, ld->index);
        if (rc < 0) {
            ld->error = -ENOMEM;
            return 1;
        }
        if (rc == DOMAINSET_DUPLICATE)
            l->duplicates++;
        else if (line->allow)
            l->allowed++;
        else
            l->blocked++;
    }
    return 0;
}

static int count_line(void *ctx, unsigned lineno, const char *text, size_t len)
{
    (void)lineno, (void)text, (void)len;
    (*(size_t *)ctx)++;
    return 0;
}

static int load_file(struct policy *p, const struct config *cfg, const char *path,
                     enum list_format fmt, policy_problem_fn problem, void *ctx, char *err,
                     size_t errlen)
{
    struct load *ld = calloc(1, sizeof *ld);
    if (!ld) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ld->p = p;
    ld->cfg = cfg;
    ld->problem = problem;
    ld->ctx = ctx;
    ld->in_header = true;
    ld->list = add_list(p, path, fmt);
    if (!ld->list) {
        snprintf(err, errlen, "%s: out of memory or too many lists", path);
        free(ld);
        return -1;
    }
    ld->index = (uint16_t)(p->n_lists - 1);
    int rc = lists_read_file(path, on_line, ld);
    struct policy_list *l = ld->list;
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
    } else if (ld->error) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = -1;
    } else {
        rc = 0;
        if (ld->skip_file) {
            /* Not this vendor: forget the list (nothing was added from it). */
            list_free(l);
            p->n_lists--;
        } else {
            if (!l->vendor)
                l->vendor = strdup(l->name);
            if (!l->category)
                l->category = strdup("unknown");
            if (!l->vendor || !l->category) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
            }
            if (problem && ld->problems > PROBLEMS_PER_FILE)
                problem(ctx, path, 0, "more problems not shown", NULL, 0);
        }
    }
    free(ld);
    return rc < 0 ? -1 : 0;
}

struct build {
    struct policy *p;
    const struct config *cfg;
    policy_problem_fn problem;
    void *ctx;
    char *err;
    size_t errlen;
    size_t lines;
    bool counting;
};

static int build_file(void *ctx, const char *path, enum list_format fmt)
{
    struct build *b = ctx;
    if (b->counting) {
        int rc = lists_read_file(path, count_line, &b->lines);
        if (rc < 0) {
            snprintf(b->err, b->errlen, "%s: %s", path, strerror(-rc));
            return -1;
        }
        return 0;
    }
    return load_file(b->p, b->cfg, path, fmt, b->problem, b->ctx, b->err, b->errlen);
}

static int walk_all(struct build *b)
{
    const struct config *cfg = b->cfg;
    for (size_t i = 0; i < cfg->n_list_paths; i++) {
        if (lists_each_file(cfg->list_paths[i], false, build_file, b, b->err, b->errlen) < 0)
            return -1;
    }
    for (size_t i = 0; i < cfg->n_allow_lists; i++) {
        if (lists_each_file(cfg->allow_lists[i], true, build_file, b, b->err, b->errlen) < 0)
            return -1;
    }
    return 0;
}

static int add_canary(struct policy *p, const char *name, const char *vendor,
                      const char *const *names, size_t n)
{
    struct policy_list *l = add_list(p, "(canary)", LIST_OWN);
    if (!l)
        return -1;
    free(l->name);
    l->name = strdup(name);
    l->vendor = strdup(vendor);
    l->category = strdup("canary");
    l->always_nxdomain = true;
    if (!l->name || !l->vendor || !l->category)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (domainset_add(p->block, names[i], strlen(names[i]), false, (uint16_t)(p->n_lists - 1)) <
            0)
            return -1;
        l->blocked++;
    }
    return 0;
}

struct policy *policy_build(const struct config *cfg, uint64_t seed, policy_problem_fn problem,
                            void *ctx, char *err, size_t errlen)
{
    struct policy *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->refs = 1;
    struct build b = {.p = p,
                      .cfg = cfg,
                      .problem = problem,
                      .ctx = ctx,
                      .err = err,
                      .errlen = errlen,
                      .counting = true};
    /* First count lines, so the set is allocated once at its final size. */
    if (walk_all(&b) < 0)
        goto fail;
    p->block = domainset_create(b.lines + 8, seed);
    p->allow = domainset_create(64, seed ^ 0x5bd1e995u);
    if (!p->block || !p->allow) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Canaries first: a list naming the same name must not take their place. */
    static const char *const doh[] = {"use-application-dns.net"};
    static const char *const relay[] = {"mask.icloud.com", "mask-h2.icloud.com"};
    if ((cfg->canary_doh &&
         add_canary(p, "canary-firefox-doh", "Firefox DoH canary", doh, 1) < 0) ||
        (cfg->canary_icloud_relay &&
         add_canary(p, "canary-icloud-private-relay", "iCloud Private Relay", relay, 2) < 0)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    b.counting = false;
    if (walk_all(&b) < 0)
        goto fail;
    /* The Extended DNS Error text of each list's answers, made once. */
    for (size_t i = 0; i < p->n_lists; i++) {
        struct policy_list *l = &p->lists[i];
        if (asprintf(&l->ede, "blocked by telesink: %s (%s)", l->vendor, l->name) < 0) {
            l->ede = NULL;
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    return p;
fail:
    policy_free(p);
    return NULL;
}

/* Allow entries win, except over the canaries (an allowed icloud.com must not open the relay). */
static void decide(const struct policy *p, bool blocked, const struct domainset_hit *hit,
                   bool allowed, struct policy_verdict *v)
{
    v->blocked = blocked && (!allowed || p->lists[hit->source].always_nxdomain);
    v->list = blocked ? hit->source : 0;
    v->subtree = blocked && hit->subtree;
}

void policy_check(const struct policy *p, const uint8_t *wire, size_t len, struct policy_verdict *v)
{
    struct domainset_hit hit, ahit;
    bool blocked = domainset_match_wire(p->block, wire, len, &hit);
    /* Allow entries are few: look them up only for names that would be blocked. */
    bool allowed = blocked && domainset_count(p->allow) > 0 &&
                   domainset_match_wire(p->allow, wire, len, &ahit);
    decide(p, blocked, &hit, allowed, v);
}

void policy_check_text(const struct policy *p, const char *name, size_t len,
                       struct policy_verdict *v)
{
    struct domainset_hit hit, ahit;
    bool blocked = domainset_match_text(p->block, name, len, &hit);
    bool allowed = blocked && domainset_count(p->allow) > 0 &&
                   domainset_match_text(p->allow, name, len, &ahit);
    decide(p, blocked, &hit, allowed, v);
}

const struct policy_list *policy_list(const struct policy *p, uint16_t index)
{
    return index < p->n_lists ? &p->lists[index] : NULL;
}

void policy_set_log_id(struct policy *p, uint16_t index, uint32_t log_id)
{
    if (index < p->n_lists)
        p->lists[index].log_id = log_id;
}

size_t policy_list_count(const struct policy *p)
{
    return p->n_lists;
}

size_t policy_blocked_names(const struct policy *p)
{
    return domainset_count(p->block);
}

size_t policy_allowed_names(const struct policy *p)
{
    return domainset_count(p->allow);
}

size_t policy_memory(const struct policy *p)
{
    return domainset_memory(p->block) + domainset_memory(p->allow);
}
