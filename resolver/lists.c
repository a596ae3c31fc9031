#include "lists.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

size_t lists_normalize_name(const char *in, size_t len, char *out)
{
    if (len > 0 && in[len - 1] == '.')
        len--; /* a trailing dot is the root: the same name */
    if (len == 0 || len > LISTS_MAX_NAME)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '.') {
            if (label == 0)
                return 0; /* empty label: "a..b" or ".a" */
            label = 0;
            out[i] = '.';
            continue;
        }
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
        if (++label > 63)
            return 0;
        out[i] = (char)c;
    }
    if (label == 0)
        return 0; /* "name.." : an empty last label */
    return len;
}

/* An IPv4 or IPv6 address as the first column of a hosts line (cheap test, no parsing). */
static bool looks_like_ip(const char *s, size_t n)
{
    if (n == 0)
        return false;
    bool colon = false, digits_dots = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ':')
            colon = true;
        else if (!(isdigit((unsigned char)c) || c == '.'))
            digits_dots = false;
        if (!(isxdigit((unsigned char)c) || c == '.' || c == ':' || c == '%'))
            return false;
    }
    if (colon)
        return true;
    if (!digits_dots)
        return false;
    int dots = 0;
    for (size_t i = 0; i < n; i++)
        dots += s[i] == '.';
    return dots == 3;
}

static bool is_local_hostname(const char *s, size_t n)
{
    static const char *const local[] = {"localhost",      "localhost.localdomain", "local",
                                        "broadcasthost",  "ip6-localhost",         "ip6-loopback",
                                        "ip6-localnet",   "ip6-mcastprefix",       "ip6-allnodes",
                                        "ip6-allrouters", "ip6-allhosts",          "0.0.0.0"};
    for (size_t i = 0; i < sizeof local / sizeof *local; i++) {
        if (strlen(local[i]) == n && strncasecmp(s, local[i], n) == 0)
            return true;
    }
    return false;
}

/* Read `source:` and `breaks:` out of an inline comment ("# source: X # breaks: Y"). */
static void parse_fields(char *comment, struct list_line *out)
{
    char *save = NULL;
    for (char *seg = strtok_r(comment, "#", &save); seg; seg = strtok_r(NULL, "#", &save)) {
        while (is_space(*seg))
            seg++;
        char *end = seg + strlen(seg);
        while (end > seg && is_space(end[-1]))
            *--end = '\0';
        if (strncasecmp(seg, "source:", 7) == 0) {
            seg += 7;
            while (is_space(*seg))
                seg++;
            if (*seg)
                out->source = seg;
        } else if (strncasecmp(seg, "breaks:", 7) == 0) {
            seg += 7;
            while (is_space(*seg))
                seg++;
            if (*seg)
                out->breaks = seg;
        }
    }
}

static void set_invalid(struct list_line *out, const char *why)
{
    out->type = LINE_INVALID;
    out->error = why;
    out->n_names = 0;
}

static void set_unsupported(struct list_line *out, const char *why)
{
    out->type = LINE_UNSUPPORTED;
    out->error = why;
    out->n_names = 0;
}

/* Append a normalised name to out; false (and out marked invalid) when it is not a name. */
static bool add_name(struct list_line *out, char **cursor, const char *name, size_t len)
{
    if (out->n_names == LISTS_MAX_NAMES_PER_LINE) {
        set_unsupported(out, "more names on one line than supported");
        return false;
    }
    char *dst = *cursor;
    size_t n = lists_normalize_name(name, len, dst);
    if (n == 0) {
        set_invalid(out, "not a valid domain name");
        return false;
    }
    dst[n] = '\0';
    out->names[out->n_names] = dst;
    out->lens[out->n_names] = n;
    out->n_names++;
    *cursor = dst + n + 1;
    return true;
}

void lists_parse_line(const char *line, size_t len, enum list_format fmt, bool in_header,
                      struct list_line *out)
{
    out->type = LINE_BLANK;
    out->allow = fmt == LIST_ALLOW;
    out->subtree = false;
    out->n_names = 0;
    out->key = out->value = out->source = out->breaks = out->error = NULL;

    while (len > 0 && is_space(line[0])) {
        line++;
        len--;
    }
    while (len > 0 && (is_space(line[len - 1]) || line[len - 1] == '\n')) {
        len--;
    }
    if (len == 0 || line[0] == '!' || line[0] == '[')
        return; /* blank, an adblock comment, or "[Adblock Plus 2.0]" */
    if (len >= sizeof out->buf / 2) {
        set_unsupported(out, "line too long");
        return;
    }
    if (memchr(line, '\0', len)) {
        set_invalid(out, "NUL byte in line");
        return;
    }

    /* The comment half of buf holds the comment, the other half the names. */
    char *names = out->buf, *comment = out->buf + sizeof out->buf / 2;
    if (line[0] == '#') {
        if (fmt == LIST_OWN && in_header) {
            memcpy(comment, line + 1, len - 1);
            comment[len - 1] = '\0';
            char *k = comment;
            while (is_space(*k))
                k++;
            char *colon = strchr(k, ':');
            if (colon) {
                *colon = '\0';
                char *v = colon + 1;
                while (is_space(*v))
                    v++;
                for (char *p = k; *p; p++)
                    *p = (char)tolower((unsigned char)*p);
                if (strcmp(k, "vendor") == 0 || strcmp(k, "category") == 0 ||
                    strcmp(k, "description") == 0) {
                    char *end = v + strlen(v);
                    while (end > v && is_space(end[-1]))
                        *--end = '\0';
                    out->type = LINE_HEADER;
                    out->key = k;
                    out->value = v;
                }
            }
        }
        return;
    }

    /* Split off an inline comment: '#' after whitespace. */
    size_t body = len;
    for (size_t i = 1; i < len; i++) {
        if (line[i] == '#' && is_space(line[i - 1])) {
            body = i;
            break;
        }
    }
    if (body < len) {
        memcpy(comment, line + body + 1, len - body - 1);
        comment[len - body - 1] = '\0';
        if (fmt == LIST_OWN)
            parse_fields(comment, out);
    }
    while (body > 0 && is_space(line[body - 1]))
        body--;
    const char *s = line;
    size_t n = body;
    char *cursor = names;

    /* Adblock-style rules: "||name^" (the name and its subdomains), "|name^" (exactly the name,
     * as AdGuard reads it and `lists export` writes exact entries), each with an optional "@@"
     * (an exception). */
    bool exception = n >= 2 && s[0] == '@' && s[1] == '@';
    if (exception) {
        s += 2;
        n -= 2;
    }
    if (n >= 1 && s[0] == '|') {
        bool subtree = n >= 2 && s[1] == '|';
        s += subtree ? 2 : 1;
        n -= subtree ? 2 : 1;
        if (memchr(s, '$', n)) {
            set_unsupported(out, "adblock rule with modifiers");
            return;
        }
        if (n > 0 && s[n - 1] == '^')
            n--;
        else {
            set_unsupported(out, "adblock rule without a closing '^'");
            return;
        }
        if (memchr(s, '$', n) || memchr(s, '*', n) || memchr(s, '^', n) || memchr(s, '|', n) ||
            memchr(s, '/', n)) {
            set_unsupported(out, "adblock rule with modifiers or patterns");
            return;
        }
        if (!add_name(out, &cursor, s, n))
            return;
        out->type = LINE_ENTRY;
        out->subtree = subtree;
        out->allow = out->allow || exception;
        return;
    }
    if (exception) {
        set_unsupported(out, "exception rule other than @@||name^ or @@|name^");
        return;
    }
    if (memchr(s, '$', n) || memchr(s, '/', n) || memchr(s, '|', n) || memchr(s, '^', n)) {
        set_unsupported(out, "adblock or regex rule we do not support");
        return;
    }

    /* Whitespace-separated tokens: a name, or a hosts line "ADDR name [name...]". */
    const char *tok[LISTS_MAX_NAMES_PER_LINE + 2];
    size_t tlen[LISTS_MAX_NAMES_PER_LINE + 2];
    size_t ntok = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && is_space(s[i]))
            i++;
        if (i >= n)
            break;
        size_t start = i;
        while (i < n && !is_space(s[i]))
            i++;
        if (ntok == LISTS_MAX_NAMES_PER_LINE + 1) {
            set_unsupported(out, "more names on one line than supported");
            return;
        }
        tok[ntok] = s + start;
        tlen[ntok++] = i - start;
    }
    size_t first = 0;
    bool hosts = ntok >= 1 && looks_like_ip(tok[0], tlen[0]);
    if (hosts) {
        first = 1;
    } else if (ntok > 1) {
        set_invalid(out, "several words that are not a hosts line");
        return;
    }
    for (size_t t = first; t < ntok; t++) {
        const char *name = tok[t];
        size_t nl = tlen[t];
        bool star = nl >= 2 && name[0] == '*' && name[1] == '.';
        if (star) {
            if (hosts) {
                set_unsupported(out, "wildcard in a hosts line");
                return;
            }
            name += 2;
            nl -= 2;
            out->subtree = true;
        }
        if (memchr(name, '*', nl)) {
            set_unsupported(out, "'*' other than a leading '*.'");
            return;
        }
        if (hosts && is_local_hostname(name, nl))
            continue;
        if (!add_name(out, &cursor, name, nl))
            return;
    }
    if (out->n_names == 0)
        return; /* "127.0.0.1 localhost" and friends */
    out->type = LINE_ENTRY;
    if (fmt == LIST_OWN && !hosts)
        out->subtree = true; /* our own lists: a plain name is a subtree */
}

enum list_format lists_format_of(const char *path)
{
    size_t n = strlen(path);
    if (n >= 5 && strcmp(path + n - 5, ".list") == 0)
        return LIST_OWN;
    if (n >= 6 && strcmp(path + n - 6, ".allow") == 0)
        return LIST_ALLOW;
    return LIST_THIRD;
}

/*
 * read() in chunks rather than mmap: a mapped 25 MB list would count in the process's RSS while
 * it is read, and the lists are read once, front to back.
 */
int lists_read_file(const char *path, lists_line_fn fn, void *ctx)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    size_t cap = 256 * 1024, have = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    int rc = 0;
    unsigned lineno = 0;
    bool first = true, eof = false;
    while (rc == 0 && !eof) {
        if (have == cap) {
            /* One line longer than the buffer: grow (lines are short; this is rare). */
            char *n = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
            if (!n) {
                rc = -ENOMEM;
                break;
            }
            buf = n;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + have, cap - have);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        eof = got == 0;
        have += (size_t)got;
        size_t pos = 0;
        if (first && have >= 3) {
            if (memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
                pos = 3;
            first = false;
        }
        for (;;) {
            const char *nl = memchr(buf + pos, '\n', have - pos);
            if (!nl && !(eof && pos < have))
                break;
            size_t end = nl ? (size_t)(nl - buf) : have;
            lineno++;
            if ((rc = fn(ctx, lineno, buf + pos, end - pos)) != 0)
                break;
            pos = nl ? end + 1 : have;
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
    }
    free(buf);
    close(fd);
    return rc;
}

static bool wanted_extension(const char *name)
{
    static const char *const ext[] = {".list", ".allow", ".txt", ".hosts", ".domains", ".adblock"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        size_t e = strlen(ext[i]);
        if (n > e && strcmp(name + n - e, ext[i]) == 0)
            return true;
    }
    return false;
}

static int filter_entry(const struct dirent *d)
{
    return d->d_name[0] != '.' && wanted_extension(d->d_name);
}

int lists_each_file(const char *path, bool force_allow, lists_file_fn fn, void *ctx, char *err,
                    size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return fn(ctx, path, force_allow ? LIST_ALLOW : lists_format_of(path));
    struct dirent **names;
    int n = scandir(path, &names, filter_entry, alphasort);
    if (n < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, names[i]->d_name);
        if (rc == 0 && stat(full, &st) < 0) {
            /* A dangling link or a file gone missing is an error, not a list to skip. */
            snprintf(err, errlen, "%s: %s", full, strerror(errno));
            rc = -1;
        } else if (rc == 0 && S_ISREG(st.st_mode)) {
            rc = fn(ctx, full, force_allow ? LIST_ALLOW : lists_format_of(full));
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

bool lists_category_known(const char *category)
{
    static const char *const known[] = {"telemetry", "analytics", "ads", "crash-reporting",
                                        "tracking"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        if (strcmp(category, known[i]) == 0)
            return true;
    }
    return false;
}
