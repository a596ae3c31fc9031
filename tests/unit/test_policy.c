/* Unit tests for the policy: list files in a directory, allow entries, strict, vendors, canaries.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "policy.h"

#define SEED 0x5eed5eed12345678ULL

/* ---- temporary list directories ---- */

static char *make_dir(void)
{
    char tmpl[] = "/tmp/telesink-policy-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void write_file(const char *dir, const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
    assert_int_equal(fclose(f), 0);
}

static void remove_dir(char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        assert_int_equal(unlink(path), 0);
    }
    closedir(d);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* ---- problems reported while loading ---- */

struct problem {
    char path[512];
    unsigned line;
    char why[128];
    char text[256];
};

struct problems {
    unsigned n;
    struct problem p[64];
};

static void on_problem(void *ctx, const char *path, unsigned line, const char *why,
                       const char *text, size_t len)
{
    struct problems *ps = ctx;
    assert_non_null(path);
    assert_non_null(why);
    if (ps->n < 64) {
        struct problem *p = &ps->p[ps->n];
        snprintf(p->path, sizeof p->path, "%s", path);
        p->line = line;
        snprintf(p->why, sizeof p->why, "%s", why);
        snprintf(p->text, sizeof p->text, "%.*s", (int)len, text ? text : "");
    }
    ps->n++;
}

/* ---- building ---- */

static struct config *cfg_for(const char *paths)
{
    struct config *c = config_create();
    assert_non_null(c);
    char err[256];
    assert_int_equal(config_set(c, "lists", "paths", paths, err, sizeof err), 0);
    return c;
}

static void cfg_set(struct config *c, const char *key, const char *value)
{
    char err[256];
    assert_int_equal(config_set(c, "lists", key, value, err, sizeof err), 0);
}

static struct policy *build(const struct config *c, struct problems *ps)
{
    char err[512] = "";
    struct policy *p = policy_build(c, SEED, ps ? on_problem : NULL, ps, err, sizeof err);
    if (!p)
        print_error("policy_build: %s\n", err);
    assert_non_null(p);
    return p;
}

static size_t to_wire(const char *dotted, uint8_t *out)
{
    size_t n = 0;
    while (*dotted) {
        const char *dot = strchr(dotted, '.');
        size_t l = dot ? (size_t)(dot - dotted) : strlen(dotted);
        out[n++] = (uint8_t)l;
        memcpy(out + n, dotted, l);
        n += l;
        dotted += l + (dot ? 1 : 0);
    }
    out[n++] = 0;
    return n;
}

/* Check a name as text and as wire (in upper case there): both must agree. */
static struct policy_verdict check(const struct policy *p, const char *name)
{
    struct policy_verdict vt, vw;
    memset(&vt, 0xAA, sizeof vt);
    memset(&vw, 0x55, sizeof vw);
    policy_check_text(p, name, strlen(name), &vt);
    char upper[300];
    size_t i = 0;
    for (; name[i]; i++)
        upper[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    upper[i] = '\0';
    uint8_t wire[300];
    size_t n = to_wire(upper, wire);
    policy_check(p, wire, n, &vw);
    assert_int_equal(vt.blocked, vw.blocked);
    if (vt.blocked) {
        assert_int_equal(vt.list, vw.list);
        assert_int_equal(vt.subtree, vw.subtree);
    }
    return vt;
}

static bool blocked(const struct policy *p, const char *name)
{
    return check(p, name).blocked;
}

/* The list that blocks name (which must be blocked). */
static const struct policy_list *blocker(const struct policy *p, const char *name)
{
    struct policy_verdict v = check(p, name);
    if (!v.blocked)
        print_error("not blocked: %s\n", name);
    assert_true(v.blocked);
    const struct policy_list *l = policy_list(p, v.list);
    assert_non_null(l);
    return l;
}

static const struct policy_list *find_list(const struct policy *p, const char *name)
{
    for (size_t i = 0; i < policy_list_count(p); i++) {
        const struct policy_list *l = policy_list(p, (uint16_t)i);
        if (strcmp(l->name, name) == 0)
            return l;
    }
    return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---- tests ---- */

static void test_own_list_header(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_file(dir, "acme.list",
               "# vendor: Acme\n"
               "# category: telemetry\n"
               "# description: Acme phone-home endpoints\n"
               "#\n"
               "metrics.acme.example    # source: test\n"
               "# vendor: NotAcme\n"
               "logs.acme.example\n");
    write_file(dir, "README.md", "not a list: bad..name\n");
    write_file(dir, ".hidden.list", "hidden.example\n");
    struct config *c = cfg_for(dir);
    cfg_set(c, "canary_doh", "no");
    cfg_set(c, "canary_icloud_relay", "no");
    struct problems ps = {0};
    struct policy *p = build(c, &ps);
    assert_int_equal(ps.n, 0);
    assert_int_equal(policy_list_count(p), 1);

    const struct policy_list *l = blocker(p, "metrics.acme.example");
    assert_string_equal(l->name, "acme");
    assert_string_equal(l->vendor, "Acme"); /* a header line after an entry changes nothing */
    assert_string_equal(l->category, "telemetry");
    assert_non_null(l->description);
    assert_string_equal(l->description, "Acme phone-home endpoints");
    assert_true(ends_with(l->path, "/acme.list"));
    assert_int_equal(l->format, LIST_OWN);
    assert_false(l->always_nxdomain);
    assert_int_equal(l->blocked, 2);
    assert_int_equal(l->invalid + l->unsupported + l->duplicates + l->breaking, 0);

    /* Our lists block the name and its subdomains, not the parent. */
    assert_true(check(p, "metrics.acme.example").subtree);
    assert_true(blocked(p, "eu.metrics.acme.example"));
    assert_true(blocked(p, "logs.acme.example"));
    assert_false(blocked(p, "acme.example"));
    assert_false(blocked(p, "www.acme.example"));
    assert_false(blocked(p, "hidden.example"));
    assert_int_equal(policy_blocked_names(p), 2);
    assert_int_equal(policy_allowed_names(p), 0);

    policy_unref(p);
    config_destroy(c);
    remove_dir(dir);
}

static void test_third_party_list(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_file(dir, "someads.txt",
               "# a third-party list\n"
               "tracker.example\n"
               "0.0.0.0 a.example b.example\n"
               "127.0.0.1 localhost\n"
               "*.wild.example\n"
               "||abp.example^\n"
               "tracker.example\n");
    write_file(dir, "more.hosts", "0.0.0.0 hosts.example\n");
    struct config *c = cfg_for(dir);
    cfg_set(c, "canary_doh", "no");
    cfg_set(c, "canary_icloud_relay", "no");
    struct policy *p = build(c, NULL);
    assert_int_equal(policy_list_count(p), 2);

    const struct policy_list *l = blocker(p, "tracker.example");
    assert_string_equal(l->name, "someads");
    assert_string_equal(l->vendor, "someads");
    assert_string_equal(l->category, "unknown");
    assert_null(l->description);
    assert_int_equal(l->format, LIST_THIRD);
    assert_int_equal(l->blocked, 5);
    assert_int_equal(l->duplicates, 1);

    /* Plain names and hosts lines are exact. */
    assert_false(check(p, "tracker.example").subtree);
    assert_false(blocked(p, "sub.tracker.example"));
    assert_true(blocked(p, "a.example"));
    assert_true(blocked(p, "b.example"));
    assert_false(blocked(p, "x.a.example"));
    assert_false(blocked(p, "localhost"));
    /* `*.name` and `||name^` are subtrees. */
    assert_true(blocked(p, "wild.example"));
    assert_true(check(p, "x.y.wild.example").subtree);
    assert_true(blocked(p, "abp.example"));
    assert_true(blocked(p, "cdn.abp.example"));
    assert_false(blocked(p, "example"));

    l = blocker(p, "hosts.example");
    assert_string_equal(l->name, "more");
    assert_string_equal(l->vendor, "more");

    policy_unref(p);
    config_destroy(c);
    remove_dir(dir);
}

static void test_allow_precedence(void **state)
{
    (void)state;
    char *dir = make_dir();
    char *extra = make_dir();
    write_file(dir, "block.txt",
               "||example.net^\n"
               "api.example.org\n"
               "cdn.example.org\n"
               "*.example.com\n"
               "@@||ok.example.net^\n");
    write_file(dir, "mine.allow",
               "good.example.net\n"
               "*.sub.example.net\n");
    write_file(extra, "user.txt", "api.example.org\n*.keep.example.com\n");
    char extra_path[512];
    snprintf(extra_path, sizeof extra_path, "%s/user.txt", extra);
    struct config *c = cfg_for(dir);
    cfg_set(c, "allow", extra_path);
    cfg_set(c, "canary_doh", "no");
    cfg_set(c, "canary_icloud_relay", "no");
    struct policy *p = build(c, NULL);

    /* The baseline: blocked. */
    assert_true(blocked(p, "ads.example.net"));
    assert_true(blocked(p, "cdn.example.org"));
    assert_true(blocked(p, "www.example.com"));
    /* A *.allow file in the directory: exact and subtree. */
    assert_false(blocked(p, "good.example.net"));
    assert_true(blocked(p, "x.good.example.net"));
    assert_false(blocked(p, "sub.example.net"));
    assert_false(blocked(p, "a.b.sub.example.net"));
    /* `@@||name^` in the third-party list itself. */
    assert_false(blocked(p, "ok.example.net"));
    assert_false(blocked(p, "deep.ok.example.net"));
    /* [lists] allow: read as an allow list whatever its extension. */
    assert_false(blocked(p, "api.example.org"));
    assert_false(blocked(p, "keep.example.com"));
    assert_false(blocked(p, "x.keep.example.com"));

    const struct policy_list *l = find_list(p, "mine");
    assert_non_null(l);
    assert_int_equal(l->format, LIST_ALLOW);
    assert_int_equal(l->allowed, 2);
    assert_int_equal(l->blocked, 0);
    l = find_list(p, "block");
    assert_non_null(l);
    assert_int_equal(l->blocked, 4);
    assert_int_equal(l->allowed, 1);
    l = find_list(p, "user");
    assert_non_null(l);
    assert_int_equal(l->format, LIST_ALLOW);
    assert_int_equal(l->allowed, 2);
    assert_int_equal(l->blocked, 0);
    assert_int_equal(policy_allowed_names(p), 5);

    policy_unref(p);
    config_destroy(c);
    remove_dir(dir);
    remove_dir(extra);
}

static void test_breaks_skipped_unless_strict(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_file(dir, "dual.list",
               "# vendor: Dual\n"
               "# category: telemetry\n"
               "plain.dual.example    # source: doc\n"
               "sync.dual.example    # source: doc # breaks: achievements sync\n"
               "more.dual.example # breaks: login\n");
    write_file(dir, "z-keep.allow", "more.dual.example\n");
    for (int strict = 0; strict < 2; strict++) {
        struct config *c = cfg_for(dir);
        cfg_set(c, "strict", strict ? "yes" : "no");
        cfg_set(c, "canary_doh", "no");
        cfg_set(c, "canary_icloud_relay", "no");
        struct policy *p = build(c, NULL);
        const struct policy_list *l = find_list(p, "dual");
        assert_non_null(l);
        assert_int_equal(l->format, LIST_OWN);
        assert_true(blocked(p, "plain.dual.example"));
        assert_int_equal(blocked(p, "sync.dual.example"), strict);
        assert_int_equal(blocked(p, "a.sync.dual.example"), strict);
        assert_false(blocked(p, "more.dual.example")); /* allow still wins in strict mode */
        assert_int_equal(l->breaking, strict ? 0 : 2);
        assert_int_equal(l->blocked, strict ? 3 : 1);
        policy_unref(p);
        config_destroy(c);
    }
    remove_dir(dir);
}

static void test_vendors_filter(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_file(dir, "xiaomi.list",
               "# vendor: Xiaomi\n# category: telemetry\nmistat.xiaomi.example\n");
    write_file(dir, "samsung-tv.list",
               "# vendor: Samsung\n# category: telemetry\nlog.samsung.example\n");
    write_file(dir, "roku.list", "# vendor: Roku\n# category: telemetry\nlogs.roku.example\n");
    write_file(dir, "keep.allow", "ok.mistat.xiaomi.example\n");

    struct config *c = cfg_for(dir);
    cfg_set(c, "vendors", "xiaomi");
    cfg_set(c, "canary_doh", "no");
    cfg_set(c, "canary_icloud_relay", "no");
    struct policy *p = build(c, NULL);
    assert_true(blocked(p, "mistat.xiaomi.example"));
    assert_true(blocked(p, "a.mistat.xiaomi.example"));
    assert_false(blocked(p, "ok.mistat.xiaomi.example")); /* *.allow still loaded */
    assert_false(blocked(p, "log.samsung.example"));
    assert_false(blocked(p, "logs.roku.example"));
    assert_int_equal(policy_list_count(p), 2);
    assert_non_null(find_list(p, "xiaomi"));
    assert_non_null(find_list(p, "keep"));
    assert_null(find_list(p, "roku"));
    assert_string_equal(blocker(p, "mistat.xiaomi.example")->vendor, "Xiaomi");
    assert_int_equal(policy_blocked_names(p), 1);
    policy_unref(p);

    /* A vendor named by its header rather than its file name; several vendors. */
    cfg_set(c, "vendors", "Samsung, roku");
    p = build(c, NULL);
    assert_false(blocked(p, "mistat.xiaomi.example"));
    assert_true(blocked(p, "log.samsung.example"));
    assert_true(blocked(p, "logs.roku.example"));
    assert_string_equal(blocker(p, "log.samsung.example")->name, "samsung-tv");
    assert_int_equal(policy_list_count(p), 3);
    policy_unref(p);

    /* "all" is every list. */
    cfg_set(c, "vendors", "all");
    p = build(c, NULL);
    assert_true(blocked(p, "mistat.xiaomi.example"));
    assert_true(blocked(p, "log.samsung.example"));
    assert_true(blocked(p, "logs.roku.example"));
    policy_unref(p);
    config_destroy(c);
    remove_dir(dir);
}

static void test_problems_reported(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_file(dir, "third.txt",
               "good.example\n"           /* 1 */
               "bad_label..com\n"         /* 2 invalid */
               "||ads.com^$third-party\n" /* 3 unsupported */
               "# comment\n"              /* 4 */
               "/regex/\n"                /* 5 unsupported */
               "ex ample.com\r\n"         /* 6 invalid */
               "\n"                       /* 7 */
               "ads*.com\n"               /* 8 unsupported */
               "fine.example");           /* 9 */
    write_file(dir, "own.list",
               "\xEF\xBB\xBF# vendor: Own\n" /* 1 */
               "# category: ads\n"           /* 2 */
               "ok.own.example\n"            /* 3 */
               "bad..own.example\n");        /* 4 invalid */
    struct config *c = cfg_for(dir);
    cfg_set(c, "canary_doh", "no");
    cfg_set(c, "canary_icloud_relay", "no");
    struct problems ps = {0};
    struct policy *p = build(c, &ps);

    const struct policy_list *t = find_list(p, "third");
    assert_non_null(t);
    assert_int_equal(t->invalid, 2);
    assert_int_equal(t->unsupported, 3);
    assert_int_equal(t->blocked, 2);
    const struct policy_list *o = find_list(p, "own");
    assert_non_null(o);
    assert_int_equal(o->invalid, 1);
    assert_int_equal(o->unsupported, 0);
    assert_string_equal(o->vendor, "Own"); /* the BOM is not part of the header line */

    /* Files are read in name order: own.list, then third.txt. */
    assert_int_equal(ps.n, 6);
    static const struct {
        const char *file;
        unsigned line;
        const char *text;
    } want[] = {
        {"/own.list", 4, "bad..own.example"},        {"/third.txt", 2, "bad_label..com"},
        {"/third.txt", 3, "||ads.com^$third-party"}, {"/third.txt", 5, "/regex/"},
        {"/third.txt", 6, "ex ample.com"},           {"/third.txt", 8, "ads*.com"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        assert_true(ends_with(ps.p[i].path, want[i].file));
        assert_int_equal(strncmp(ps.p[i].path, dir, strlen(dir)), 0);
        assert_int_equal(ps.p[i].line, want[i].line);
        assert_int_equal(strncmp(ps.p[i].text, want[i].text, strlen(want[i].text)), 0);
        assert_true(strlen(ps.p[i].why) > 0);
    }
    assert_true(blocked(p, "good.example"));
    assert_true(blocked(p, "fine.example"));
    assert_true(blocked(p, "ok.own.example"));
    assert_false(blocked(p, "ads.com"));

    /* Without a callback the counts are the same. */
    struct policy *q = build(c, NULL);
    assert_int_equal(find_list(q, "third")->invalid, 2);
    assert_int_equal(find_list(q, "third")->unsupported, 3);
    policy_unref(q);

    policy_unref(p);
    config_destroy(c);
    remove_dir(dir);
}

static const char *const canaries[] = {"use-application-dns.net", "mask.icloud.com",
                                       "mask-h2.icloud.com"};

static void test_canaries_default(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_file(dir, "empty.txt", "# nothing\n");
    struct config *c = cfg_for(dir);
    struct policy *p = build(c, NULL);
    for (size_t i = 0; i < 3; i++) {
        const struct policy_list *l = blocker(p, canaries[i]);
        assert_true(l->always_nxdomain);
        assert_false(check(p, canaries[i]).subtree);
    }
    assert_false(blocked(p, "icloud.com"));
    assert_false(blocked(p, "www.icloud.com"));
    assert_false(blocked(p, "application-dns.net"));
    policy_unref(p);

    /* canary_doh = no: only the DoH canary goes. */
    cfg_set(c, "canary_doh", "no");
    p = build(c, NULL);
    assert_false(blocked(p, "use-application-dns.net"));
    assert_true(blocker(p, "mask.icloud.com")->always_nxdomain);
    assert_true(blocker(p, "mask-h2.icloud.com")->always_nxdomain);
    policy_unref(p);

    /* canary_icloud_relay = no too: none left. */
    cfg_set(c, "canary_icloud_relay", "no");
    p = build(c, NULL);
    for (size_t i = 0; i < 3; i++)
        assert_false(blocked(p, canaries[i]));
    assert_int_equal(policy_list_count(p), 1);
    policy_unref(p);

    /* And the relay canary alone. */
    cfg_set(c, "canary_doh", "yes");
    p = build(c, NULL);
    assert_true(blocker(p, "use-application-dns.net")->always_nxdomain);
    assert_false(blocked(p, "mask.icloud.com"));
    policy_unref(p);
    config_destroy(c);
    remove_dir(dir);
}

static void test_canaries_not_allowed(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_file(dir, "apple.allow", "*.icloud.com\nuse-application-dns.net\n");
    write_file(dir, "apple.txt", "||icloud.com^\n");
    struct config *c = cfg_for(dir);
    struct policy *p = build(c, NULL);
    /* The allow entry works for everything else under icloud.com ... */
    assert_false(blocked(p, "www.icloud.com"));
    assert_false(blocked(p, "icloud.com"));
    /* ... but never opens the canaries. */
    for (size_t i = 0; i < 3; i++)
        assert_true(blocker(p, canaries[i])->always_nxdomain);
    policy_unref(p);
    config_destroy(c);
    remove_dir(dir);
}

/*
 * A block list that also names a canary must not take the canary's place: the canary stays
 * NXDOMAIN (always_nxdomain) and an allow entry still does not open it.
 */
static void test_canary_listed_by_a_list(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_file(dir, "apple.allow", "*.icloud.com\n");
    write_file(dir, "relay.txt", "mask.icloud.com\n");                      /* exact */
    write_file(dir, "relay.list", "# vendor: Relay\nmask-h2.icloud.com\n"); /* subtree */
    struct config *c = cfg_for(dir);
    struct policy *p = build(c, NULL);
    struct policy_verdict v1 = check(p, "mask.icloud.com");
    struct policy_verdict v2 = check(p, "mask-h2.icloud.com");
    const struct policy_list *l1 = policy_list(p, v1.list);
    const struct policy_list *l2 = policy_list(p, v2.list);
    bool nx1 = l1 && l1->always_nxdomain, nx2 = l2 && l2->always_nxdomain;
    policy_unref(p);
    config_destroy(c);
    remove_dir(dir);
    assert_true(v1.blocked);
    assert_true(nx1);
    assert_true(v2.blocked);
    assert_true(nx2);
}

static void test_missing_path(void **state)
{
    (void)state;
    char *dir = make_dir();
    char missing[512], err[512];
    snprintf(missing, sizeof missing, "%s/no-such-dir", dir);
    struct config *c = cfg_for(missing);
    err[0] = '\0';
    assert_null(policy_build(c, SEED, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, missing));
    config_destroy(c);

    /* A missing [lists] allow file too. */
    write_file(dir, "a.txt", "a.example\n");
    snprintf(missing, sizeof missing, "%s/no-such.allow", dir);
    c = cfg_for(dir);
    cfg_set(c, "allow", missing);
    err[0] = '\0';
    assert_null(policy_build(c, SEED, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, missing));
    config_destroy(c);

    /* A single file as a path works. */
    char file[512];
    snprintf(file, sizeof file, "%s/a.txt", dir);
    c = cfg_for(file);
    struct policy *p = build(c, NULL);
    assert_true(blocked(p, "a.example"));
    policy_unref(p);
    config_destroy(c);
    remove_dir(dir);
}

static void test_refcount(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_file(dir, "a.txt", "a.example\n");
    struct config *c = cfg_for(dir);
    struct policy *p = build(c, NULL);
    assert_ptr_equal(policy_ref(p), p);
    policy_unref(p);
    assert_true(blocked(p, "a.example")); /* still alive: one reference left */
    assert_true(policy_memory(p) > 0);
    policy_unref(p);
    config_destroy(c);
    remove_dir(dir);
}

static void test_bundled_lists(void **state)
{
    (void)state;
    struct config *c = cfg_for(LISTS_DIR);
    struct problems ps = {0};
    struct policy *p = build(c, &ps);
    for (unsigned i = 0; i < ps.n && i < 64; i++)
        print_error("%s:%u: %s: %s\n", ps.p[i].path, ps.p[i].line, ps.p[i].why, ps.p[i].text);
    assert_int_equal(ps.n, 0);
    size_t files = 0;
    for (size_t i = 0; i < policy_list_count(p); i++) {
        const struct policy_list *l = policy_list(p, (uint16_t)i);
        assert_int_equal(l->invalid, 0);
        assert_int_equal(l->unsupported, 0);
        if (l->format == LIST_OWN && !l->always_nxdomain) {
            files++;
            assert_true(lists_category_known(l->category));
        }
    }
    assert_true(files >= 1);
    assert_true(policy_blocked_names(p) > 0);
    assert_true(policy_allowed_names(p) > 0);
    assert_null(policy_list(p, (uint16_t)policy_list_count(p)));

    const struct policy_list *l = blocker(p, "data.mistat.xiaomi.com");
    assert_string_equal(l->vendor, "Xiaomi");
    assert_string_equal(l->name, "xiaomi");
    assert_true(blocked(p, "tracking.miui.com"));
    assert_true(blocked(p, "sub.data.mistat.xiaomi.com"));
    assert_false(blocked(p, "xiaomi.com"));
    policy_unref(p);
    config_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_list_header),
        cmocka_unit_test(test_third_party_list),
        cmocka_unit_test(test_allow_precedence),
        cmocka_unit_test(test_breaks_skipped_unless_strict),
        cmocka_unit_test(test_vendors_filter),
        cmocka_unit_test(test_problems_reported),
        cmocka_unit_test(test_canaries_default),
        cmocka_unit_test(test_canaries_not_allowed),
        cmocka_unit_test(test_canary_listed_by_a_list),
        cmocka_unit_test(test_missing_path),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_bundled_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
