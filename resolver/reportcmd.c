/*
 * reportcmd: `telesink report` — flags, the database path from the config, the window, and an
 * atomic --output (a temporary file in the same directory, renamed over the target).
 *
 * Exit codes: 0 ok, 1 runtime failure, 2 usage (bad flag, bad --since/--until), 3 no query log
 * at the path, 4 nothing logged in the window.
 */
#include "reportcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "paths.h"
#include "report.h"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_NODB = 3, EXIT_EMPTY = 4 };

static void usage(FILE *f)
{
    fprintf(f, "usage: telesink report [--config FILE] [--db FILE] [--since WHEN] [--until WHEN]\n"
               "                       [--client ADDR|NAME|MAC] [--format text|json|csv|html]\n"
               "                       [--top N] [--output FILE]\n"
               "\n"
               "Which devices tried to reach which vendors' telemetry in a window, how often, and\n"
               "what is new against the window of the same length before it.\n"
               "\n"
               "  --db FILE        the query log (default: [log] db of the config)\n"
               "  --since WHEN     start of the window (default 24h before --until)\n"
               "  --until WHEN     end of the window (default now)\n"
               "                   WHEN: 90m, 24h, 7d, 2w (before now, or before --until for\n"
               "                   --since), 2026-11-01 (local midnight), 2026-11-01T06:00[:SS]\n"
               "                   with an optional Z or +01:00, or now\n"
               "  --client WHO     only the device with this address, name or MAC\n"
               "  --format FMT     text (default; for cron mail), json, csv or html\n"
               "  --top N          domains shown per vendor (default 5; csv lists all)\n"
               "  --output FILE    write FILE atomically instead of standard output\n"
               "\n"
               "Exit codes: 0 ok, 1 failure, 2 usage, 3 no query log, 4 nothing logged in the "
               "window.\n");
}

/* Write to a temporary file next to path, then rename it over path. */
static int write_atomic(const char *path, const struct report *r, enum report_format fmt,
                        unsigned top)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dirname(copy),
             strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
    free(copy);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "telesink report: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    fchmod(fd, 0644);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    int rc = report_write(r, fmt, top, f);
    if (fflush(f) != 0 || fsync(fd) != 0)
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0) {
        fprintf(stderr, "telesink report: writing %s: %s\n", path, strerror(errno));
        unlink(tmp);
    }
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int report_main(int argc, char **argv)
{
    enum { O_CONFIG = 256, O_DB, O_SINCE, O_UNTIL, O_CLIENT, O_FORMAT, O_TOP, O_OUTPUT, O_HELP };
    static const struct option opts[] = {
        {"config", required_argument, NULL, O_CONFIG},
        {"db", required_argument, NULL, O_DB},
        {"since", required_argument, NULL, O_SINCE},
        {"until", required_argument, NULL, O_UNTIL},
        {"client", required_argument, NULL, O_CLIENT},
        {"format", required_argument, NULL, O_FORMAT},
        {"top", required_argument, NULL, O_TOP},
        {"output", required_argument, NULL, O_OUTPUT},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *db = NULL, *since = "24h", *until = "now", *client = NULL;
    const char *output = NULL;
    enum report_format fmt = REPORT_TEXT;
    unsigned long top = 5;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (opt) {
        case O_CONFIG:
            config = optarg;
            break;
        case O_DB:
            db = optarg;
            break;
        case O_SINCE:
            since = optarg;
            break;
        case O_UNTIL:
            until = optarg;
            break;
        case O_CLIENT:
            client = optarg;
            break;
        case O_OUTPUT:
            output = optarg;
            break;
        case O_FORMAT:
            if (report_parse_format(optarg, &fmt) < 0) {
                fprintf(stderr, "telesink report: --format: '%s' is not text, json, csv or html\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case O_TOP:
            top = strtoul(optarg, &end, 10);
            if (*end || !*optarg || top > 100000) {
                fprintf(stderr, "telesink report: --top: '%s' is not a number\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "telesink report: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }

    struct config *cfg = NULL;
    if (!db) {
        char err[512], conf[PATH_MAX];
        const char *def = paths_config_file(conf, sizeof conf); /* an installed one first */
        if (!config && access(def, F_OK) == 0)
            config = def;
        if (!(cfg = config_create()))
            return EXIT_RUNTIME;
        if (config && config_load_file(cfg, config, err, sizeof err) < 0) {
            fprintf(stderr, "telesink report: %s\n", err);
            config_destroy(cfg);
            return EXIT_USAGE;
        }
        db = cfg->db;
    }

    int64_t now = now_ms(), since_ms, until_ms;
    int rc = EXIT_USAGE;
    if (report_parse_when(until, now, &until_ms) < 0) {
        fprintf(stderr,
                "telesink report: --until: cannot read '%s' (use now, 24h, 7d, 2026-11-01 or "
                "2026-11-01T06:00)\n",
                until);
        goto out;
    }
    if (report_parse_when(since, until_ms, &since_ms) < 0) {
        fprintf(stderr,
                "telesink report: --since: cannot read '%s' (use 24h, 7d, 2026-11-01 or "
                "2026-11-01T06:00)\n",
                since);
        goto out;
    }
    if (since_ms >= until_ms) {
        fprintf(stderr, "telesink report: --since (%s) is not before --until (%s)\n", since, until);
        goto out;
    }

    char err[512];
    struct report *r;
    int c = report_collect(db, since_ms, until_ms, client, &r, err, sizeof err);
    if (c == REPORT_NODB) {
        fprintf(stderr, "telesink report: %s\n", err);
        rc = EXIT_NODB;
        goto out;
    }
    if (c != 0) {
        fprintf(stderr, "telesink report: %s: %s\n", db, err);
        rc = EXIT_RUNTIME;
        goto out;
    }
    if (r->queries == 0) {
        fprintf(stderr, "telesink report: nothing logged%s%s between %s and %s in %s\n",
                client ? " for " : "", client ? client : "", since, until, db);
        report_free(r);
        rc = EXIT_EMPTY;
        goto out;
    }
    if (output)
        rc = write_atomic(output, r, fmt, (unsigned)top) == 0 ? 0 : EXIT_RUNTIME;
    else
        rc = report_write(r, fmt, (unsigned)top, stdout) == 0 && fflush(stdout) == 0 ? 0
                                                                                     : EXIT_RUNTIME;
    report_free(r);
out:
    config_destroy(cfg);
    return rc;
}
