/*
 * policy: which names are blocked, and why.
 *
 * policy_build() reads every configured list (files, or directories of `*.list`, `*.allow` and
 * third-party `*.txt`, `*.hosts`, `*.domains`, `*.adblock` files) into two domain sets, block
 * and allow, and keeps what each list is (file, vendor, category) so that every decision can
 * name its source. The result is immutable and shared by the serving threads; a reload builds a
 * new one and swaps it in (reference counted). The bypass canaries (Firefox's DoH canary and
 * iCloud Private Relay) are pseudo-lists that always answer NXDOMAIN.
 *
 * An allow entry always wins: a name that matches any allow entry is never blocked.
 * Pure apart from reading the list files.
 */
#ifndef TELESINK_POLICY_H
#define TELESINK_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "domainset.h"
#include "lists.h"

/* One loaded list file (or a canary pseudo-list). */
struct policy_list {
    char *path;        /* as found; "(canary)" for pseudo-lists */
    char *name;        /* file name without directory and extension: the list's id in logs */
    char *vendor;      /* header vendor, else the name */
    char *category;    /* header category, else "unknown" */
    char *description; /* may be NULL */
    enum list_format format;
    bool always_nxdomain; /* canaries: NXDOMAIN whatever the blocking mode */
    unsigned blocked;     /* block entries added */
    unsigned allowed;     /* allow entries added */
    unsigned duplicates;  /* entries already present */
    unsigned invalid;     /* lines with a bad name: skipped */
    unsigned unsupported; /* rules we do not support: skipped */
    unsigned breaking;    /* `# breaks:` entries skipped (strict = no) */
    uint32_t log_id;      /* the query log's id for this list (qlog_register_lists), 0 unset */
    char *ede;            /* "blocked by telesink: VENDOR (NAME)", the answers' EDE text */
};

struct policy;

/* A problem found while loading: file, line and why (for the log). */
typedef void (*policy_problem_fn)(void *ctx, const char *path, unsigned line, const char *why,
                                  const char *text, size_t len);

/*
 * Load the lists cfg names. seed keys the domain sets' hash (take it from getrandom). Problems
 * in lines are reported through problem (may be NULL) and skipped. Returns NULL with a message
 * in err when a configured path cannot be read or memory runs out.
 */
struct policy *policy_build(const struct config *cfg, uint64_t seed, policy_problem_fn problem,
                            void *ctx, char *err, size_t errlen);

/* `[lists] vendors`: is a curated list with this file name and vendor wanted? */
bool policy_vendor_wanted(const struct config *cfg, const char *name, const char *vendor);

struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);

struct policy_verdict {
    bool blocked;
    uint16_t list; /* the list that blocked it */
    bool subtree;  /* matched a subtree entry */
};

/* Decide for a wire-format name. Allocation-free; safe from any thread. */
void policy_check(const struct policy *p, const uint8_t *wire, size_t len,
                  struct policy_verdict *v);

/* Same for a text name (the `lists match` command, tests). */
void policy_check_text(const struct policy *p, const char *name, size_t len,
                       struct policy_verdict *v);

const struct policy_list *policy_list(const struct policy *p, uint16_t index);
/* Set a list's log id; only before the policy is shared with other threads. */
void policy_set_log_id(struct policy *p, uint16_t index, uint32_t log_id);
size_t policy_list_count(const struct policy *p);
size_t policy_blocked_names(const struct policy *p);
size_t policy_allowed_names(const struct policy *p);
size_t policy_memory(const struct policy *p);

#endif
