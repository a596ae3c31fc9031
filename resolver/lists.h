/*
 * lists: reading list files, one line at a time.
 *
 * Three readings of a line, chosen by the file:
 *   LIST_OWN    our curated `*.list` files: a plain name blocks the name and its subdomains,
 *               the header (`# vendor:`, `# category:`, `# description:`) describes the list,
 *               and an entry's inline comment carries `source:` and `breaks:` fields;
 *   LIST_THIRD  any other block list, read the way Pi-hole reads it: a plain name or a hosts
 *               line (`0.0.0.0 a b`) blocks exactly those names, `*.name` and `||name^` block the
 *               name and its subdomains, `@@||name^` is an exception (an allow entry);
 *   LIST_ALLOW  allow lists (`*.allow`, `[lists] allow`): the same syntax, every entry allows.
 * A rule we do not support (adblock modifiers, regexes, `*` anywhere but a leading `*.`) is
 * reported as unsupported and never half-applied; a bad name is reported as invalid. UTF-8 BOM,
 * CRLF, `#` and `!` comments and inline ` #` comments are accepted everywhere.
 *
 * Pure apart from lists_read_file(), which maps a file and feeds its lines to a callback.
 */
#ifndef TELESINK_LISTS_H
#define TELESINK_LISTS_H

#include <stdbool.h>
#include <stddef.h>

#define LISTS_MAX_NAME           253
#define LISTS_MAX_NAMES_PER_LINE 16

enum list_format { LIST_OWN, LIST_THIRD, LIST_ALLOW };

enum line_type {
    LINE_BLANK,       /* empty or a comment */
    LINE_HEADER,      /* `# key: value` before the first entry of a LIST_OWN file */
    LINE_ENTRY,       /* one or more names */
    LINE_UNSUPPORTED, /* a rule we do not support: skipped, counted */
    LINE_INVALID,     /* a malformed name: skipped, reported with file:line */
};

struct list_line {
    enum line_type type;
    bool allow;   /* the names are allowed, not blocked */
    bool subtree; /* the names cover their subdomains */
    size_t n_names;
    const char *names[LISTS_MAX_NAMES_PER_LINE]; /* lower case, no trailing dot; point into buf */
    size_t lens[LISTS_MAX_NAMES_PER_LINE];
    const char *key, *value; /* LINE_HEADER: e.g. "vendor", "Xiaomi" */
    const char *source;      /* LIST_OWN entries: the inline `source:` text, or NULL */
    const char *breaks;      /* LIST_OWN entries: the inline `breaks:` text, or NULL */
    const char *error;       /* LINE_INVALID / LINE_UNSUPPORTED: why */
    char buf[1024];
};

/*
 * Parse one line (without its newline; a trailing CR is ignored). in_header says whether no
 * entry has been seen yet in this file (header lines are only read there). The result points
 * into out->buf and stays valid until out is reused.
 */
void lists_parse_line(const char *line, size_t len, enum list_format fmt, bool in_header,
                      struct list_line *out);

/*
 * Validate and normalise a name: lower case, trailing dot dropped, labels of 1-63 bytes of
 * [a-z0-9_-], at most 253 bytes. Returns the length written to out (>= 1), or 0 when invalid.
 */
size_t lists_normalize_name(const char *in, size_t len, char *out);

/* The reading of a file, from its name: `*.list` LIST_OWN, `*.allow` LIST_ALLOW, else LIST_THIRD.
 */
enum list_format lists_format_of(const char *path);

/*
 * Read a file and call fn for each line (1-based line numbers; a BOM on the first line is
 * skipped). Stops when fn returns non-zero and returns that value; returns 0 at the end, or
 * -errno when the file cannot be read.
 */
typedef int (*lists_line_fn)(void *ctx, unsigned lineno, const char *line, size_t len);
int lists_read_file(const char *path, lists_line_fn fn, void *ctx);

/*
 * Call fn for path, or, when it is a directory, for every list file in it (sorted by name:
 * `*.list`, `*.allow`, `*.txt`, `*.hosts`, `*.domains`, `*.adblock`; other files and
 * subdirectories are skipped, a dangling link is an error). Each file's reading is LIST_ALLOW
 * when force_allow, else lists_format_of(). Returns 0, fn's non-zero result, or -1 with
 * "path: reason" in err.
 */
typedef int (*lists_file_fn)(void *ctx, const char *path, enum list_format fmt);
int lists_each_file(const char *path, bool force_allow, lists_file_fn fn, void *ctx, char *err,
                    size_t errlen);

/* Categories a curated list may have. */
bool lists_category_known(const char *category);

#endif
