/* Unit tests for list files: the three line formats, name validation, reading a file. */
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

#include "lists.h"

/* ---- helpers ---- */

static struct list_line L;

static enum line_type parse(const char *text, enum list_format fmt, bool in_header)
{
    memset(&L, 0xA5, sizeof L); /* stale contents must not leak into the result */
    lists_parse_line(text, strlen(text), fmt, in_header, &L);
    return L.type;
}

/* The line is one entry of exactly these names. */
static void expect_names(size_t n, const char *const *names)
{
    assert_int_equal(L.type, LINE_ENTRY);
    assert_int_equal(L.n_names, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(L.lens[i], strlen(names[i]));
        assert_memory_equal(L.names[i], names[i], L.lens[i]);
    }
}

static void expect_one(const char *text, enum list_format fmt, const char *name, bool subtree,
                       bool allow)
{
    parse(text, fmt, false);
    const char *names[] = {name};
    expect_names(1, names);
    assert_int_equal(L.subtree, subtree);
    assert_int_equal(L.allow, allow);
}

static void expect_type(const char *text, enum list_format fmt, enum line_type type)
{
    assert_int_equal(parse(text, fmt, false), type);
    assert_int_equal(L.n_names, 0);
    if (type == LINE_INVALID || type == LINE_UNSUPPORTED) {
        assert_non_null(L.error);
        assert_true(strlen(L.error) > 0);
    }
}

static size_t norm(const char *in, char *out)
{
    return lists_normalize_name(in, strlen(in), out);
}

/* ---- LIST_OWN ---- */

static void test_own_plain_name_is_subtree(void **state)
{
    (void)state;
    expect_one("data.mistat.xiaomi.com", LIST_OWN, "data.mistat.xiaomi.com", true, false);
    expect_one("Tracking.MIUI.com.", LIST_OWN, "tracking.miui.com", true, false);
    expect_one("*.ads.example", LIST_OWN, "ads.example", true, false);
    expect_one("||abp.example^", LIST_OWN, "abp.example", true, false);
    assert_null(L.source);
    assert_null(L.breaks);
}

static void test_own_header(void **state)
{
    (void)state;
    assert_int_equal(parse("# vendor: Xiaomi", LIST_OWN, true), LINE_HEADER);
    assert_string_equal(L.key, "vendor");
    assert_string_equal(L.value, "Xiaomi");
    assert_int_equal(parse("#   Category:   telemetry  \t", LIST_OWN, true), LINE_HEADER);
    assert_string_equal(L.key, "category");
    assert_string_equal(L.value, "telemetry");
    assert_int_equal(parse("# description: MIUI analytics: mistat, tracking", LIST_OWN, true),
                     LINE_HEADER);
    assert_string_equal(L.key, "description");
    assert_string_equal(L.value, "MIUI analytics: mistat, tracking");
    assert_int_equal(parse("# vendor: Xiaomi\r", LIST_OWN, true), LINE_HEADER);
    assert_string_equal(L.value, "Xiaomi");

    /* Other keys and plain comments are just comments. */
    assert_int_equal(parse("# source: somewhere", LIST_OWN, true), LINE_BLANK);
    assert_int_equal(parse("# just a comment", LIST_OWN, true), LINE_BLANK);
    assert_int_equal(parse("#", LIST_OWN, true), LINE_BLANK);
    /* Only in the header, and only in our own lists. */
    assert_int_equal(parse("# vendor: Other", LIST_OWN, false), LINE_BLANK);
    assert_int_equal(parse("# vendor: Other", LIST_THIRD, true), LINE_BLANK);
    assert_int_equal(parse("# vendor: Other", LIST_ALLOW, true), LINE_BLANK);
}

static void test_own_inline_fields(void **state)
{
    (void)state;
    parse("sa.api.intl.miui.com    # source: NextDNS xiaomi (MIT); palant.info 2020 # breaks: "
          "Mi Browser sync",
          LIST_OWN, false);
    const char *n1[] = {"sa.api.intl.miui.com"};
    expect_names(1, n1);
    assert_true(L.subtree);
    assert_non_null(L.source);
    assert_string_equal(L.source, "NextDNS xiaomi (MIT); palant.info 2020");
    assert_non_null(L.breaks);
    assert_string_equal(L.breaks, "Mi Browser sync");

    parse("a.example\t# source: doc  \r", LIST_OWN, false);
    const char *n2[] = {"a.example"};
    expect_names(1, n2);
    assert_string_equal(L.source, "doc");
    assert_null(L.breaks);

    parse("b.example # breaks: login # source: report", LIST_OWN, false);
    assert_string_equal(L.breaks, "login");
    assert_string_equal(L.source, "report");

    parse("c.example # a plain remark", LIST_OWN, false);
    expect_names(1, (const char *const[]){"c.example"});
    assert_null(L.source);
    assert_null(L.breaks);

    /* Third-party lists carry no fields: a "breaks:" there means nothing. */
    parse("d.example # source: x # breaks: y", LIST_THIRD, false);
    expect_names(1, (const char *const[]){"d.example"});
    assert_null(L.breaks);
    assert_null(L.source);
}

/* ---- LIST_THIRD ---- */

static void test_third_plain_and_hosts(void **state)
{
    (void)state;
    expect_one("ads.example.com", LIST_THIRD, "ads.example.com", false, false);
    expect_one("ADS.Example.com.", LIST_THIRD, "ads.example.com", false, false);

    parse("0.0.0.0 a.com b.com", LIST_THIRD, false);
    expect_names(2, (const char *const[]){"a.com", "b.com"});
    assert_false(L.subtree);
    assert_false(L.allow);
    parse("127.0.0.1\tTracker.example", LIST_THIRD, false);
    expect_names(1, (const char *const[]){"tracker.example"});
    parse(":: v6.example", LIST_THIRD, false);
    expect_names(1, (const char *const[]){"v6.example"});
    parse("0.0.0.0 localhost x.example", LIST_THIRD, false);
    expect_names(1, (const char *const[]){"x.example"});
    assert_false(L.subtree);

    /* A hosts line in our own format stays exact too. */
    parse("0.0.0.0 own.example", LIST_OWN, false);
    expect_names(1, (const char *const[]){"own.example"});
    assert_false(L.subtree);

    expect_type("127.0.0.1 localhost", LIST_THIRD, LINE_BLANK);
    expect_type("::1 ip6-localhost", LIST_THIRD, LINE_BLANK);
    expect_type("::1 localhost ip6-localhost ip6-loopback", LIST_THIRD, LINE_BLANK);
    expect_type("255.255.255.255 broadcasthost", LIST_THIRD, LINE_BLANK);
    expect_type("0.0.0.0 0.0.0.0", LIST_THIRD, LINE_BLANK);
}

static void test_third_hosts_many_names(void **state)
{
    (void)state;
    char line[1024] = "0.0.0.0";
    for (int i = 0; i < LISTS_MAX_NAMES_PER_LINE; i++)
        snprintf(line + strlen(line), sizeof line - strlen(line), " n%d.example", i);
    parse(line, LIST_THIRD, false);
    assert_int_equal(L.type, LINE_ENTRY);
    assert_int_equal(L.n_names, LISTS_MAX_NAMES_PER_LINE);
    assert_memory_equal(L.names[LISTS_MAX_NAMES_PER_LINE - 1], "n15.example", 11);
    /* One more than supported: skipped as a whole, never half-applied. */
    strcat(line, " extra.example");
    expect_type(line, LIST_THIRD, LINE_UNSUPPORTED);
}

static void test_third_wildcard_and_adblock(void **state)
{
    (void)state;
    expect_one("*.wild.example", LIST_THIRD, "wild.example", true, false);
    expect_one("||ads.example^", LIST_THIRD, "ads.example", true, false);
    expect_one("@@||good.example^", LIST_THIRD, "good.example", true, true);
    expect_one("||ADS.example^  ", LIST_THIRD, "ads.example", true, false);
    /* "|name^" is exactly the name (AdGuard's reading; `lists export` writes exact entries so). */
    expect_one("|exact.example^", LIST_THIRD, "exact.example", false, false);
    expect_one("@@|exact.example^", LIST_THIRD, "exact.example", false, true);
}

static void test_third_unsupported(void **state)
{
    (void)state;
    const char *lines[] = {
        "||ads.com^$third-party",
        "||ads.com^$important",
        "||ads.com",
        "||ads.*.com^",
        "/regex/",
        "/^ad[0-9]+\\.example\\.com$/",
        "ads*.com",
        "ad.*.example.com",
        "*ads.example.com",
        "|http://x.com",
        "|http://x.com^",
        "@@ads.com",
        "@@|",
        "|x.com^^",
        "0.0.0.0 *.x.com",
        "0.0.0.0 ads*.com",
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        print_message("unsupported? %s\n", lines[i]);
        expect_type(lines[i], LIST_THIRD, LINE_UNSUPPORTED);
    }
}

static void test_third_invalid(void **state)
{
    (void)state;
    char label64[128], name254[300];
    memset(label64, 'a', 64);
    strcpy(label64 + 64, ".example");
    /* 63 + 1 + 63 + 1 + 63 + 1 + 62 = 254 */
    memset(name254, 'b', 254);
    name254[63] = name254[127] = name254[191] = '.';
    name254[254] = '\0';
    const char *lines[] = {
        "bad_label..com",
        ".leading.example",
        label64,
        name254,
        "ex ample.com",
        "ads.example.com extra",
        "b\xc3\xbc"
        "cher.example",
        "spa ce",
        "0.0.0.0 bad..name",
        "0.0.0.0 good.example bad..name",
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        print_message("invalid? %s\n", lines[i]);
        expect_type(lines[i], LIST_THIRD, LINE_INVALID);
    }
    /* The same limits apply to our own lists and allow lists. */
    expect_type("bad_label..com", LIST_OWN, LINE_INVALID);
    expect_type("ex ample.com", LIST_ALLOW, LINE_INVALID);
}

/* ---- LIST_ALLOW ---- */

static void test_allow_entries(void **state)
{
    (void)state;
    expect_one("update.miui.com", LIST_ALLOW, "update.miui.com", false, true);
    expect_one("*.d.miui.com", LIST_ALLOW, "d.miui.com", true, true);
    expect_one("||ok.example^", LIST_ALLOW, "ok.example", true, true);
    expect_one("@@||ok.example^", LIST_ALLOW, "ok.example", true, true);
    expect_one("time.example    # reason: NTP # source: doc", LIST_ALLOW, "time.example", false,
               true);
    parse("0.0.0.0 a.example b.example", LIST_ALLOW, false);
    expect_names(2, (const char *const[]){"a.example", "b.example"});
    assert_true(L.allow);
    assert_false(L.subtree);
    /* No header reading in allow lists. */
    expect_type("# vendor: x", LIST_ALLOW, LINE_BLANK);
}

/* ---- comments, whitespace, line endings ---- */

static void test_comments_and_whitespace(void **state)
{
    (void)state;
    expect_type("", LIST_THIRD, LINE_BLANK);
    expect_type("   \t  ", LIST_THIRD, LINE_BLANK);
    expect_type("\r", LIST_THIRD, LINE_BLANK);
    expect_type("# comment", LIST_THIRD, LINE_BLANK);
    expect_type("   # indented comment", LIST_THIRD, LINE_BLANK);
    expect_type("! Title: EasyPrivacy", LIST_THIRD, LINE_BLANK);
    expect_type("[Adblock Plus 2.0]", LIST_THIRD, LINE_BLANK);
    expect_type("[Adblock Plus 2.0]\r", LIST_THIRD, LINE_BLANK);
    expect_type("! comment", LIST_OWN, LINE_BLANK);

    expect_one("ads.example\r", LIST_THIRD, "ads.example", false, false);
    expect_one("  \tads.example \t ", LIST_THIRD, "ads.example", false, false);
    expect_one("ads.example # inline comment\r", LIST_THIRD, "ads.example", false, false);
    expect_one("ads.example\t#comment", LIST_THIRD, "ads.example", false, false);
    expect_one("*.ads.example   # comment", LIST_THIRD, "ads.example", true, false);
    expect_one("||ads.example^ # comment", LIST_THIRD, "ads.example", true, false);
    parse("0.0.0.0 a.example b.example # comment c.example\r", LIST_THIRD, false);
    expect_names(2, (const char *const[]){"a.example", "b.example"});

    /* A line cut at len: the bytes after it are not read. */
    const char *longer = "ads.example.com";
    lists_parse_line(longer, 11, LIST_THIRD, false, &L);
    expect_names(1, (const char *const[]){"ads.example"});
}

/* ---- lists_normalize_name ---- */

static void test_normalize_name(void **state)
{
    (void)state;
    char out[512];
    assert_int_equal(norm("ExAmPle.COM", out), 11);
    assert_memory_equal(out, "example.com", 11);
    assert_int_equal(norm("example.com.", out), 11);
    assert_memory_equal(out, "example.com", 11);
    assert_int_equal(norm("_dmarc.x-y.example", out), 18);
    assert_memory_equal(out, "_dmarc.x-y.example", 18);
    assert_int_equal(norm("XN--Bcher-KVA.example", out), 21);
    assert_memory_equal(out, "xn--bcher-kva.example", 21);
    assert_int_equal(norm("a", out), 1);
    assert_int_equal(norm("1.2.3.4", out), 7);
}

static void test_normalize_limits(void **state)
{
    (void)state;
    char in[512], out[512];
    /* 63-byte labels are fine, 64 are not. */
    memset(in, 'x', 63);
    strcpy(in + 63, ".com");
    assert_int_equal(norm(in, out), 67);
    memset(in, 'x', 64);
    strcpy(in + 64, ".com");
    assert_int_equal(norm(in, out), 0);
    memset(in, 'x', 64);
    in[64] = '\0';
    assert_int_equal(norm(in, out), 0);
    strcpy(in, "com.");
    memset(in + 4, 'x', 64);
    in[68] = '\0';
    assert_int_equal(norm(in, out), 0);

    /* 253 bytes are fine (with or without the root dot), 254 are not. */
    memset(in, 'y', 253);
    in[63] = in[127] = in[191] = '.';
    in[253] = '\0';
    assert_int_equal(norm(in, out), 253);
    in[253] = '.';
    in[254] = '\0';
    assert_int_equal(norm(in, out), 253);
    memset(in, 'y', 254);
    in[63] = in[127] = in[191] = '.';
    in[254] = '\0';
    assert_int_equal(norm(in, out), 0);
    in[254] = '.';
    in[255] = '\0';
    assert_int_equal(norm(in, out), 0);
}

static void test_normalize_bad_characters(void **state)
{
    (void)state;
    char out[512];
    assert_int_equal(norm("b\xc3\xbc"
                          "cher.example",
                          out),
                     0);
    assert_int_equal(norm("\xff.example", out), 0);
    assert_int_equal(norm("ads*.example", out), 0);
    assert_int_equal(norm("a b.example", out), 0);
    assert_int_equal(norm("a/b.example", out), 0);
    assert_int_equal(norm("a:b.example", out), 0);
    assert_int_equal(norm("a@b.example", out), 0);
    assert_int_equal(lists_normalize_name("a\0b.example", 11, out), 0);
}

static void test_normalize_empty_labels(void **state)
{
    (void)state;
    char out[512];
    assert_int_equal(norm("", out), 0);
    assert_int_equal(norm(".", out), 0);
    assert_int_equal(norm("..", out), 0);
    assert_int_equal(norm(".example", out), 0);
    assert_int_equal(norm("a..b", out), 0);
    /* Only one trailing dot is the root; a second one leaves an empty last label. */
    assert_int_equal(norm("example.com..", out), 0);
    assert_int_equal(norm("a..", out), 0);
}

/* A name with two trailing dots must be reported, not loaded as "name." (which never matches). */
static void test_parse_double_trailing_dot_invalid(void **state)
{
    (void)state;
    expect_type("ads.example..", LIST_THIRD, LINE_INVALID);
    expect_type("0.0.0.0 ads.example..", LIST_THIRD, LINE_INVALID);
    expect_type("||ads.example..^", LIST_THIRD, LINE_INVALID);
}

/* ---- lists_format_of ---- */

static void test_format_of(void **state)
{
    (void)state;
    assert_int_equal(lists_format_of("lists/xiaomi.list"), LIST_OWN);
    assert_int_equal(lists_format_of("/etc/telesink/essential.allow"), LIST_ALLOW);
    assert_int_equal(lists_format_of("hosts.txt"), LIST_THIRD);
    assert_int_equal(lists_format_of("x.hosts"), LIST_THIRD);
    assert_int_equal(lists_format_of("x.domains"), LIST_THIRD);
    assert_int_equal(lists_format_of("easyprivacy.adblock"), LIST_THIRD);
    assert_int_equal(lists_format_of("a.list.txt"), LIST_THIRD);
    assert_int_equal(lists_format_of("a.allow.bak"), LIST_THIRD);
    assert_int_equal(lists_format_of("a.listx"), LIST_THIRD);
    assert_int_equal(lists_format_of("dir.list/file"), LIST_THIRD);
}

/* ---- lists_read_file ---- */

struct seen {
    unsigned calls;
    unsigned stop_at;
    unsigned linenos[16];
    char lines[16][64];
    size_t lens[16];
};

static int collect(void *ctx, unsigned lineno, const char *line, size_t len)
{
    struct seen *s = ctx;
    assert_true(s->calls < 16);
    assert_true(len < 64);
    s->linenos[s->calls] = lineno;
    memcpy(s->lines[s->calls], line, len);
    s->lines[s->calls][len] = '\0';
    s->lens[s->calls] = len;
    s->calls++;
    return s->stop_at && lineno == s->stop_at ? 7 : 0;
}

static char *temp_file(const char *content, size_t len)
{
    static char path[64];
    strcpy(path, "/tmp/telesink-lists-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_read_file_bom_crlf(void **state)
{
    (void)state;
    static const char content[] = "\xEF\xBB\xBF"
                                  "first.example\r\n"
                                  "# comment\r\n"
                                  "\r\n"
                                  "0.0.0.0 a.example b.example\r\n"
                                  "last.example";
    char *path = temp_file(content, sizeof content - 1);
    struct seen s = {0};
    assert_int_equal(lists_read_file(path, collect, &s), 0);
    assert_int_equal(s.calls, 5);
    for (unsigned i = 0; i < s.calls; i++)
        assert_int_equal(s.linenos[i], i + 1);
    /* The BOM is not part of line 1; a line carries its CR but not its LF. */
    assert_string_equal(s.lines[0], "first.example\r");
    assert_string_equal(s.lines[2], "\r");
    assert_string_equal(s.lines[4], "last.example"); /* no final newline */

    /* The lines parse as entries, CR and all. */
    lists_parse_line(s.lines[0], s.lens[0], LIST_THIRD, true, &L);
    expect_names(1, (const char *const[]){"first.example"});
    lists_parse_line(s.lines[2], s.lens[2], LIST_THIRD, false, &L);
    assert_int_equal(L.type, LINE_BLANK);
    lists_parse_line(s.lines[3], s.lens[3], LIST_THIRD, false, &L);
    expect_names(2, (const char *const[]){"a.example", "b.example"});
    lists_parse_line(s.lines[4], s.lens[4], LIST_THIRD, false, &L);
    expect_names(1, (const char *const[]){"last.example"});

    /* A non-zero return stops the reading and is passed back. */
    struct seen stop = {.stop_at = 2};
    assert_int_equal(lists_read_file(path, collect, &stop), 7);
    assert_int_equal(stop.calls, 2);
    unlink(path);
}

static void test_read_file_header_after_bom(void **state)
{
    (void)state;
    static const char content[] = "\xEF\xBB\xBF# vendor: Acme\n# category: ads\nx.example\n";
    char *path = temp_file(content, sizeof content - 1);
    struct seen s = {0};
    assert_int_equal(lists_read_file(path, collect, &s), 0);
    assert_int_equal(s.calls, 3); /* a final newline adds no empty line */
    lists_parse_line(s.lines[0], s.lens[0], LIST_OWN, true, &L);
    assert_int_equal(L.type, LINE_HEADER);
    assert_string_equal(L.key, "vendor");
    assert_string_equal(L.value, "Acme");
    unlink(path);
}

static void test_read_file_empty_and_missing(void **state)
{
    (void)state;
    char *path = temp_file("", 0);
    struct seen s = {0};
    assert_int_equal(lists_read_file(path, collect, &s), 0);
    assert_int_equal(s.calls, 0);
    unlink(path);
    assert_int_equal(lists_read_file(path, collect, &s), -ENOENT);
    assert_int_equal(lists_read_file("/nonexistent/telesink/x.list", collect, &s), -ENOENT);
    assert_int_equal(s.calls, 0);
}

/* Counts lines and checks each against what was written: "n<lineno>.example", or the long line. */
struct big {
    unsigned calls;
    unsigned long_line; /* its line number */
    size_t long_len;
    bool ok;
};

static int check_big(void *ctx, unsigned lineno, const char *line, size_t len)
{
    struct big *b = ctx;
    b->calls++;
    if (lineno != b->calls)
        b->ok = false;
    if (lineno == b->long_line) {
        if (len != b->long_len || line[0] != 'L' || line[len - 1] != 'L')
            b->ok = false;
        return 0;
    }
    char want[32];
    int n = snprintf(want, sizeof want, "n%u.example", lineno);
    if (len != (size_t)n + 1 || memcmp(line, want, (size_t)n) != 0 || line[n] != '\r')
        b->ok = false;
    return 0;
}

/* A file of several MB: lines cross every read boundary, one line is longer than any buffer. */
static void test_read_file_large(void **state)
{
    (void)state;
    char path[] = "/tmp/telesink-lists-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    struct big b = {.long_line = 50001, .long_len = 3u << 20, .ok = true};
    fputs("\xEF\xBB\xBF", f);
    unsigned lines = 120000;
    for (unsigned i = 1; i <= lines; i++) {
        if (i == b.long_line) {
            fputc('L', f);
            for (size_t k = 2; k < b.long_len; k++)
                fputc('x', f);
            fputs("L\n", f);
        } else {
            fprintf(f, "n%u.example\r\n", i);
        }
    }
    assert_int_equal(fclose(f), 0);
    assert_int_equal(lists_read_file(path, check_big, &b), 0);
    unlink(path);
    assert_int_equal(b.calls, lines);
    assert_true(b.ok);
}

static void test_category_known(void **state)
{
    (void)state;
    assert_true(lists_category_known("telemetry"));
    assert_true(lists_category_known("analytics"));
    assert_true(lists_category_known("ads"));
    assert_true(lists_category_known("crash-reporting"));
    assert_true(lists_category_known("tracking"));
    assert_false(lists_category_known("unknown"));
    assert_false(lists_category_known("Telemetry "));
    assert_false(lists_category_known(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_plain_name_is_subtree),
        cmocka_unit_test(test_own_header),
        cmocka_unit_test(test_own_inline_fields),
        cmocka_unit_test(test_third_plain_and_hosts),
        cmocka_unit_test(test_third_hosts_many_names),
        cmocka_unit_test(test_third_wildcard_and_adblock),
        cmocka_unit_test(test_third_unsupported),
        cmocka_unit_test(test_third_invalid),
        cmocka_unit_test(test_allow_entries),
        cmocka_unit_test(test_comments_and_whitespace),
        cmocka_unit_test(test_normalize_name),
        cmocka_unit_test(test_normalize_limits),
        cmocka_unit_test(test_normalize_bad_characters),
        cmocka_unit_test(test_normalize_empty_labels),
        cmocka_unit_test(test_parse_double_trailing_dot_invalid),
        cmocka_unit_test(test_format_of),
        cmocka_unit_test(test_read_file_bom_crlf),
        cmocka_unit_test(test_read_file_header_after_bom),
        cmocka_unit_test(test_read_file_empty_and_missing),
        cmocka_unit_test(test_read_file_large),
        cmocka_unit_test(test_category_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
