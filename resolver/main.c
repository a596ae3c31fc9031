/*
 * main: the command line. `telesink serve` binds, starts one worker per thread and waits for
 * signals (SIGTERM/SIGINT stop, SIGHUP reloads); `telesink version` prints the version.
 * Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "intern.h"
#include "listcmd.h"
#include "listen.h"
#include "log.h"
#include "netaddr.h"
#include "paths.h"
#include "policy.h"
#include "privs.h"
#include "qlog.h"
#include "ratelimit.h"
#include "reportcmd.h"
#include "tls.h"
#include "worker.h"

#ifndef TELESINK_VERSION
#define TELESINK_VERSION "0.0.0"
#endif

#define EXIT_USAGE 2

/* Flags given to `serve`: applied over the file at start and again at every reload. */
struct serve_flags {
    const char *config; /* --config, or NULL for the default path when it exists */
    const char *resolv; /* --resolv-conf */
    char *listen;       /* comma-joined --listen values */
    char *upstream;     /* comma-joined --upstream values */
    char *lists;        /* comma-joined --lists values */
    const char *db;
    const char *log_level;
};

/* The running daemon: lives for the whole of `serve`. */
struct daemon_state {
    struct serve_flags flags;
    struct config *cfg;
    struct policy *policy;
    struct qlog *qlog;
    struct ratelimit *ratelimit; /* per-client query counts, shared by every worker */
    struct tls_ctx *tls;         /* the DoT certificate served to new connections; NULL: no DoT */
    struct worker **workers;
    unsigned nworkers;
    uv_loop_t *loop;
    uv_signal_t sigterm, sigint, sighup;
    int db_lock; /* <db>.lock, held while serving; -1: none */
};

static void append_item(char **list, const char *item)
{
    size_t old = *list ? strlen(*list) : 0;
    char *n = realloc(*list, old + strlen(item) + 3);
    if (!n)
        abort();
    if (old)
        memcpy(n + old, ", ", 3);
    else
        n[0] = '\0';
    strcat(n, item);
    *list = n;
}

static void usage_main(FILE *out)
{
    fprintf(out, "usage: telesink <command> [options]\n"
                 "\n"
                 "commands:\n"
                 "  serve     run the DNS sinkhole (UDP and TCP)\n"
                 "  report    which devices tried to reach which vendors, and what is new\n"
                 "  lists     check, match or export the block lists\n"
                 "  version   print the version\n"
                 "\n"
                 "`telesink <command> --help` describes each command.\n");
}

static void usage_serve(FILE *out)
{
    char conf[PATH_MAX];
    fprintf(
        out,
        "usage: telesink serve [options]\n"
        "\n"
        "  --config FILE          configuration file (default %s\n"
        "                         when it exists)\n"
        "  --listen ADDR:PORT     listen here, UDP and TCP; repeatable (default 127.0.0.1:8053,\n"
        "                         [::1]:8053; port 0 picks a free port)\n"
        "  --upstream ADDR[:PORT] forward to this resolver; repeatable (default: the\n"
        "                         nameservers in /etc/resolv.conf); DNS over TLS:\n"
        "                         tls://ADDR[:PORT]#NAME (port 853, certificate for NAME)\n"
        "  --lists PATH           list file or directory; repeatable\n"
        "  --db FILE              query log database\n"
        "  --log-level LEVEL      error, warn, info (default) or debug\n"
        "  --resolv-conf FILE     where to read default upstreams (default /etc/resolv.conf)\n"
        "  --help                 this text\n"
        "\n"
        "Signals: SIGTERM/SIGINT stop (exit 0), SIGHUP reloads the configuration.\n",
        paths_config_file(conf, sizeof conf));
}

/* Defaults, then the file, then the flags, then what is still unset. NULL on error (printed). */
static struct config *build_config(const struct serve_flags *f)
{
    char err[512];
    struct config *c = config_create();
    if (!c) {
        log_error("config", "out of memory");
        return NULL;
    }
    char conf[PATH_MAX];
    const char *path = f->config, *def = paths_config_file(conf, sizeof conf);
    if (!path && access(def, F_OK) == 0)
        path = def;
    if (path && config_load_file(c, path, err, sizeof err) < 0)
        goto fail;
    struct {
        const char *section, *key, *value;
    } sets[] = {
        {"server", "listen", f->listen},       {"upstream", "servers", f->upstream},
        {"lists", "paths", f->lists},          {"log", "db", f->db},
        {"server", "log_level", f->log_level},
    };
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        if (sets[i].value &&
            config_set(c, sets[i].section, sets[i].key, sets[i].value, err, sizeof err) < 0) {
            log_error("config", "command line: %s", err);
            config_destroy(c);
            return NULL;
        }
    }
    if (config_finish(c, f->resolv ? f->resolv : "/etc/resolv.conf", err, sizeof err) < 0)
        goto fail;
    return c;
fail:
    log_error("config", "%s", err);
    config_destroy(c);
    return NULL;
}

static void addr_list(const struct sockaddr_storage *a, size_t n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        char one[NETADDR_STRLEN];
        netaddr_format((const struct sockaddr *)&a[i], true, one, sizeof one);
        int w = snprintf(buf + used, len - used, "%s%s", i ? " " : "", one);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* The upstreams as written: "192.0.2.53:53 tls://192.0.2.1:853#dns.example". */
static void upstream_list(const struct config *c, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->n_upstreams && used < len; i++) {
        char one[NETADDR_STRLEN + DNS_MAX_NAME + 8];
        config_format_upstream(c, i, one, sizeof one);
        int w = snprintf(buf + used, len - used, "%s%s", i ? " " : "", one);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static void log_list_problem(void *ctx, const char *path, unsigned line, const char *why,
                             const char *text, size_t len)
{
    (void)ctx;
    if (line == 0)
        log_warn("lists", "%s: %s", path, why);
    else
        log_warn("lists", "%s:%u: %s: %.*s", path, line, why, (int)(len > 200 ? 200 : len), text);
}

static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    return seed;
}

/* Load the lists cfg names; NULL (logged) when a path cannot be read. */
static struct policy *load_policy(const struct config *cfg)
{
    char err[512];
    struct policy *p = policy_build(cfg, random_seed(), log_list_problem, NULL, err, sizeof err);
    if (!p) {
        log_error("lists", "%s", err);
        return NULL;
    }
    unsigned invalid = 0, unsupported = 0, breaking = 0;
    for (size_t i = 0; i < policy_list_count(p); i++) {
        const struct policy_list *l = policy_list(p, (uint16_t)i);
        invalid += l->invalid;
        unsupported += l->unsupported;
        breaking += l->breaking;
    }
    log_info("lists",
             "%zu lists: %zu names blocked, %zu allowed (%zu KiB); skipped %u invalid, %u "
             "unsupported, %u breaking (strict = %s)",
             policy_list_count(p), policy_blocked_names(p), policy_allowed_names(p),
             policy_memory(p) / 1024, invalid, unsupported, breaking, cfg->strict ? "yes" : "no");
    return p;
}

static bool same_addrs(const struct sockaddr_storage *a, size_t na,
                       const struct sockaddr_storage *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        if (!netaddr_equal((const struct sockaddr *)&a[i], (const struct sockaddr *)&b[i]))
            return false;
    }
    return true;
}

static bool same_listen(const struct config *a, const struct config *b)
{
    return same_addrs(a->listen, a->n_listen, b->listen, b->n_listen);
}

/* The DoT certificate and key of cfg, or NULL (logged with the file and OpenSSL's reason). */
static struct tls_ctx *load_certificate(const struct config *cfg)
{
    char err[512];
    struct tls_ctx *ctx = tls_server_ctx(cfg->tls_cert, cfg->tls_key, err, sizeof err);
    if (!ctx)
        log_error("tls", "%s", err);
    else
        log_info("tls", "certificate %s: %s", cfg->tls_cert, tls_ctx_describe(ctx));
    return ctx;
}

/* SIGHUP with DoT: a renewed certificate for new connections; a bad one keeps the old. */
static void reload_certificate(struct daemon_state *d, const struct config *c)
{
    if (!d->tls)
        return;
    if (c->n_tls_listen == 0) {
        log_warn("main", "reload: tls_listen changes only on restart; keeping the certificate");
        return;
    }
    struct tls_ctx *ctx = load_certificate(c);
    if (!ctx) {
        log_error("main", "reload: still serving the previous certificate");
        return;
    }
    for (unsigned i = 0; i < d->nworkers; i++)
        worker_set_tls(d->workers[i], ctx);
    tls_ctx_unref(d->tls);
    d->tls = ctx;
}

static void on_reload(uv_signal_t *h, int signum)
{
    (void)signum;
    struct daemon_state *d = h->data;
    log_info("main", "SIGHUP: reloading the configuration");
    struct config *c = build_config(&d->flags);
    struct policy *p = c ? load_policy(c) : NULL;
    if (!p) {
        log_error("main", "reload failed; still serving with the previous configuration");
        config_unref(c);
        return;
    }
    if (d->qlog) {
        qlog_register_lists(d->qlog, p);
        qlog_reload(d->qlog, c);
    }
    if (c->log_enabled != d->cfg->log_enabled)
        log_warn("main", "reload: [log] enabled changes only on restart");
    if (strcmp(c->db, d->cfg->db) != 0)
        log_warn("main", "reload: the query log database changes only on restart");
    if (!same_listen(c, d->cfg))
        log_warn("main", "reload: listen addresses change only on restart");
    if (!same_addrs(c->tls_listen, c->n_tls_listen, d->cfg->tls_listen, d->cfg->n_tls_listen))
        log_warn("main", "reload: tls_listen addresses change only on restart");
    reload_certificate(d, c);
    if (c->threads != d->cfg->threads)
        log_warn("main", "reload: threads change only on restart");
    log_set_level(c->log_level);
    for (unsigned i = 0; i < d->nworkers; i++)
        worker_reload(d->workers[i], c, p);
    config_unref(d->cfg);
    policy_unref(d->policy);
    d->cfg = c;
    d->policy = p;
    char ups[512];
    upstream_list(c, ups, sizeof ups);
    log_info("main", "reloaded: upstreams %s", ups);
}

static void on_stop(uv_signal_t *h, int signum)
{
    struct daemon_state *d = h->data;
    log_info("main", "%s: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
    for (unsigned i = 0; i < d->nworkers; i++)
        worker_stop(d->workers[i]);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
}

static void print_stats(const struct worker_stats *s)
{
    log_info(
        "main",
        "stats: queries=%llu blocked=%llu blocked_cname=%llu cached=%llu forwarded=%llu "
        "answered=%llu "
        "servfail=%llu refused=%llu "
        "formerr=%llu notimp=%llu badvers=%llu dropped=%llu coalesced=%llu "
        "upstream_timeouts=%llu tcp_retries=%llu bad_source=%llu mismatched=%llu "
        "malformed=%llu overloaded=%llu tcp_accepted=%llu tcp_refused=%llu "
        "ratelimited=%llu forwarding_loops=%llu any=%llu upstream_sent=%llu "
        "tls_accepted=%llu tls_refused=%llu tls_failed=%llu upstream_tls_handshakes=%llu "
        "upstream_tls_failures=%llu upstream_unreachable=%llu tcp_idle_closed=%llu",
        (unsigned long long)s->queries, (unsigned long long)s->blocked,
        (unsigned long long)s->blocked_cname, (unsigned long long)s->cached,
        (unsigned long long)s->forwarded, (unsigned long long)s->upstream.answered,
        (unsigned long long)s->servfail, (unsigned long long)s->refused,
        (unsigned long long)s->formerr, (unsigned long long)s->notimp,
        (unsigned long long)s->badvers, (unsigned long long)s->dropped,
        (unsigned long long)s->upstream.coalesced, (unsigned long long)s->upstream.timeouts,
        (unsigned long long)s->upstream.tcp_retries, (unsigned long long)s->upstream.bad_source,
        (unsigned long long)s->upstream.mismatched, (unsigned long long)s->upstream.malformed,
        (unsigned long long)s->upstream.overloaded, (unsigned long long)s->listen.tcp_accepted,
        (unsigned long long)s->listen.tcp_refused, (unsigned long long)s->ratelimited,
        (unsigned long long)s->loops, (unsigned long long)s->any,
        (unsigned long long)s->upstream.sent, (unsigned long long)s->listen.tls_accepted,
        (unsigned long long)s->listen.tls_refused, (unsigned long long)s->listen.tls_failed,
        (unsigned long long)s->upstream.tls_handshakes,
        (unsigned long long)s->upstream.tls_failures, (unsigned long long)s->upstream.unreachable,
        (unsigned long long)s->listen.tcp_idle_closed);
}

/* The one-line startup summary: where it listens and forwards, what it blocks, where it logs. */
static void log_ready(const struct daemon_state *d, const struct listen_addr *addrs,
                      const struct listen_addr *tls_addrs)
{
    const struct config *c = d->cfg;
    char lst[1024], ups[512], paths[1024], db[PATH_MAX + 64], cwd[PATH_MAX], who[300] = "";
    char dot[1024 + 8] = "";
    struct sockaddr_storage bound[64];
    size_t nb = c->n_listen < 64 ? c->n_listen : 64;
    for (size_t i = 0; i < nb; i++)
        bound[i] = addrs[i].addr;
    addr_list(bound, nb, lst, sizeof lst);
    nb = c->n_tls_listen < 64 ? c->n_tls_listen : 64;
    for (size_t i = 0; i < nb; i++)
        bound[i] = tls_addrs[i].addr;
    if (nb > 0) {
        memcpy(dot, "; dot ", 7);
        addr_list(bound, nb, dot + 6, sizeof dot - 6);
    }
    upstream_list(c, ups, sizeof ups);
    size_t used = 0, files = 0;
    paths[0] = '\0';
    for (size_t i = 0; i < c->n_list_paths && used < sizeof paths; i++) {
        int w =
            snprintf(paths + used, sizeof paths - used, "%s%s", i ? ", " : "", c->list_paths[i]);
        used += w > 0 ? (size_t)w : 0;
    }
    for (size_t i = 0; i < policy_list_count(d->policy); i++)
        files += !policy_list(d->policy, (uint16_t)i)->always_nxdomain;
    if (!c->log_enabled)
        snprintf(db, sizeof db, "off ([log] enabled = no)");
    else if (c->db[0] != '/' && getcwd(cwd, sizeof cwd))
        snprintf(db, sizeof db, "%s/%s", cwd, c->db);
    else
        snprintf(db, sizeof db, "%s", c->db);
    if (geteuid() != 0) { /* dropped to [server] user, or started unprivileged (systemd) */
        struct passwd *pw = getpwuid(geteuid());
        if (pw)
            snprintf(who, sizeof who, " user %s;", pw->pw_name);
        else
            snprintf(who, sizeof who, " uid %u;", (unsigned)geteuid());
    }
    log_info("main",
             "ready: listening on %s (udp, tcp)%s; upstreams %s; lists %s (%zu file%s, %zu names "
             "blocked, %zu allowed); db %s;%s %u thread%s; config %s",
             lst, dot, ups, paths, files, files == 1 ? "" : "s", policy_blocked_names(d->policy),
             policy_allowed_names(d->policy), db, who, d->nworkers, d->nworkers == 1 ? "" : "s",
             c->path ? c->path : "built-in defaults");
}

/*
 * Descriptors for the worst the configuration allows: every TCP and DoT connection slot of
 * every serving loop, its listening sockets, upstream sockets and connections (UPSTREAM_FDS, a
 * generous bound), and the query log's files. The usual soft limit (1024) is below that on two
 * cores with the defaults, the hard limit usually is not: the soft one is raised as far as
 * needed, and a hard one too low is said at startup rather than found as EMFILE under load.
 */
#define UPSTREAM_FDS 128

static void raise_nofile(const struct config *cfg, unsigned nworkers)
{
    rlim_t per_loop = (rlim_t)cfg->tcp_max_connections + cfg->tls_max_connections +
                      2 * (rlim_t)(cfg->n_listen + cfg->n_tls_listen) + UPSTREAM_FDS;
    rlim_t need = (rlim_t)nworkers * per_loop + 64;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = was;
    if (rl.rlim_cur < need)
        log_warn("main",
                 "open files: the limit is %llu, and %u threads of tcp_max_connections and "
                 "tls_max_connections may need %llu: raise the hard limit (LimitNOFILE=)",
                 (unsigned long long)rl.rlim_cur, nworkers, (unsigned long long)need);
    else
        log_debug("main", "open files: limit raised from %llu to %llu", (unsigned long long)was,
                  (unsigned long long)rl.rlim_cur);
}

/*
 * One server per query log: an exclusive flock on "<db>.lock" (which holds the pid), taken
 * before binding. Without it a second `serve` with the same configuration would start
 * without a word: SO_REUSEPORT lets it bind the same port, so the kernel would split the
 * clients between the two, and both would write the one log. Returns the descriptor (kept
 * open while serving), -1 when the lock could not be made (serving goes on: the log will say
 * what is wrong with its directory), -2 when another process holds it.
 */
static int lock_db(const char *db)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s.lock", db) >= (int)sizeof path)
        return -1;
    bool rw = true;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EACCES) {
        /* Made by another user (root, before dropping privileges): a read-only descriptor
         * locks it all the same. */
        rw = false;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        log_warn("main", "%s: %s (not checking for another server on this log)", path,
                 strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        if (e == EWOULDBLOCK) {
            char who[48] = "";
            if (*pid)
                snprintf(who, sizeof who, " (pid %s)", pid);
            log_error("main",
                      "%s: another telesink%s serves with this query log: stop it first, or "
                      "give this one another --db",
                      db, who);
            return -2;
        }
        log_warn("main", "%s: %s (not checking for another server on this log)", path, strerror(e));
        return -1;
    }
    if (rw) {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
            log_debug("main", "%s: writing the pid: %s", path, strerror(errno));
    }
    return fd;
}

static int run_serve(struct serve_flags *flags)
{
    struct daemon_state d = {.flags = *flags, .db_lock = -1};
    struct listen_addr *addrs = NULL, *tls_addrs = NULL;
    int status = 1;
    char err[512];

    d.cfg = build_config(&d.flags);
    if (!d.cfg)
        return EXIT_USAGE;
    log_set_level(d.cfg->log_level);
    d.policy = load_policy(d.cfg);
    if (!d.policy) {
        config_unref(d.cfg);
        return 1;
    }
    d.nworkers = d.cfg->threads ? d.cfg->threads : uv_available_parallelism();
    if (d.nworkers == 0)
        d.nworkers = 1;
    raise_nofile(d.cfg, d.nworkers);

    if (d.cfg->log_enabled && (d.db_lock = lock_db(d.cfg->db)) == -2)
        goto out;
    if (d.cfg->n_tls_listen > 0 && !(d.tls = load_certificate(d.cfg))) {
        status = EXIT_USAGE;
        goto out;
    }
    if (listen_bind(d.cfg->listen, d.cfg->n_listen, d.nworkers, &addrs, err, sizeof err) < 0 ||
        listen_bind_tls(d.cfg->tls_listen, d.cfg->n_tls_listen, d.nworkers, &tls_addrs, err,
                        sizeof err) < 0) {
        log_error("listen", "%s", err);
        goto out;
    }
    if (privs_drop(d.cfg->user) < 0)
        goto out;

    signal(SIGPIPE, SIG_IGN);
    if (d.cfg->log_enabled) {
        d.qlog = qlog_create(d.cfg, d.nworkers);
        if (!d.qlog) {
            log_error("main", "out of memory for the query log queue");
            goto out;
        }
        qlog_register_lists(d.qlog, d.policy);
        if (qlog_start(d.qlog) < 0) {
            log_error("main", "cannot start the query log writer");
            goto out;
        }
    }
    d.loop = uv_default_loop();
    d.ratelimit = ratelimit_create(random_seed());
    d.workers = calloc(d.nworkers, sizeof *d.workers);
    if (!d.workers || !d.ratelimit)
        goto out;
    for (unsigned i = 0; i < d.nworkers; i++) {
        d.workers[i] = worker_create(i, d.cfg, d.policy, d.qlog ? qlog_ring(d.qlog, i) : NULL,
                                     d.ratelimit, addrs, d.cfg->n_listen);
        if (!d.workers[i])
            goto out;
        if (d.tls && worker_add_tls(d.workers[i], tls_addrs, d.cfg->n_tls_listen, d.tls) < 0) {
            log_error("main", "out of memory for the DoT listeners");
            goto out;
        }
    }
    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    uv_signal_init(d.loop, &d.sighup);
    d.sigterm.data = d.sigint.data = d.sighup.data = &d;
    uv_signal_start(&d.sigterm, on_stop, SIGTERM);
    uv_signal_start(&d.sigint, on_stop, SIGINT);
    uv_signal_start(&d.sighup, on_reload, SIGHUP);

    unsigned started = 0;
    for (; started < d.nworkers; started++) {
        if (worker_start(d.workers[started]) < 0) {
            log_error("main", "cannot start thread %u", started);
            break;
        }
    }
    if (started == d.nworkers) {
        log_ready(&d, addrs, tls_addrs);
        uv_run(d.loop, UV_RUN_DEFAULT);
        status = 0;
    } else {
        on_stop(&d.sigterm, SIGTERM);
        uv_run(d.loop, UV_RUN_DEFAULT);
    }

    struct worker_stats total;
    memset(&total, 0, sizeof total);
    for (unsigned i = 0; i < started; i++) {
        if (worker_join(d.workers[i]) != 0)
            status = 1;
        worker_stats_add(d.workers[i], &total);
    }
    print_stats(&total);
    /* Every loop has stopped: the writer drains the queues, commits and closes the file. */
    struct qlog_stats qs = {0};
    if (d.qlog) {
        qlog_stop(d.qlog);
        qlog_get_stats(d.qlog, &qs);
    }
    log_info("main",
             "query log: logged=%llu not_logged=%llu dropped_queue_full=%llu "
             "dropped_db_fault=%llu",
             (unsigned long long)qs.logged, (unsigned long long)qs.unlogged,
             (unsigned long long)qs.dropped_full, (unsigned long long)qs.dropped_fault);
    if (uv_loop_close(d.loop) != 0) {
        log_error("main", "main loop closed with handles still open");
        status = 1;
    }
out:
    if (d.workers) {
        for (unsigned i = 0; i < d.nworkers; i++)
            worker_destroy(d.workers[i]);
        free(d.workers);
    }
    listen_addrs_free(addrs, d.cfg ? d.cfg->n_listen : 0, d.nworkers);
    listen_addrs_free(tls_addrs, d.cfg ? d.cfg->n_tls_listen : 0, d.nworkers);
    tls_ctx_unref(d.tls);
    qlog_destroy(d.qlog);
    ratelimit_destroy(d.ratelimit);
    config_unref(d.cfg);
    policy_unref(d.policy);
    intern_free_all(); /* the loops and the log writer, its users, are gone */
    if (d.db_lock >= 0)
        close(d.db_lock); /* the file stays: removing it would race the next server's lock */
    return status;
}

static int cmd_serve(int argc, char **argv)
{
    enum { O_CONFIG = 1, O_LISTEN, O_UPSTREAM, O_LISTS, O_DB, O_LOGLEVEL, O_RESOLV, O_HELP };
    static const struct option opts[] = {
        {"config", required_argument, NULL, O_CONFIG},
        {"listen", required_argument, NULL, O_LISTEN},
        {"upstream", required_argument, NULL, O_UPSTREAM},
        {"lists", required_argument, NULL, O_LISTS},
        {"db", required_argument, NULL, O_DB},
        {"log-level", required_argument, NULL, O_LOGLEVEL},
        {"resolv-conf", required_argument, NULL, O_RESOLV},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct serve_flags f = {0};
    int opt, rc;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (opt) {
        case O_CONFIG:
            f.config = optarg;
            break;
        case O_LISTEN:
            append_item(&f.listen, optarg);
            break;
        case O_UPSTREAM:
            append_item(&f.upstream, optarg);
            break;
        case O_LISTS:
            append_item(&f.lists, optarg);
            break;
        case O_DB:
            f.db = optarg;
            break;
        case O_LOGLEVEL: {
            enum log_level l;
            if (log_level_parse(optarg, &l) < 0) {
                fprintf(stderr,
                        "telesink serve: --log-level: '%s' is not error, warn, info or "
                        "debug\n",
                        optarg);
                rc = EXIT_USAGE;
                goto out;
            }
            f.log_level = optarg;
            break;
        }
        case O_RESOLV:
            f.resolv = optarg;
            break;
        case O_HELP:
            usage_serve(stdout);
            rc = 0;
            goto out;
        case ':':
            fprintf(stderr, "telesink serve: %s needs a value\n", argv[optind - 1]);
            usage_serve(stderr);
            rc = EXIT_USAGE;
            goto out;
        default:
            fprintf(stderr, "telesink serve: unknown option '%s'\n", argv[optind - 1]);
            usage_serve(stderr);
            rc = EXIT_USAGE;
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "telesink serve: unexpected argument '%s'\n", argv[optind]);
        rc = EXIT_USAGE;
        goto out;
    }
    rc = run_serve(&f);
out:
    free(f.listen);
    free(f.upstream);
    free(f.lists);
    return rc;
}

static int cmd_version(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("usage: telesink version\n\nPrints the version and the library versions.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "telesink version: unexpected argument '%s'\n", argv[1]);
        return EXIT_USAGE;
    }
    printf("telesink %s (libuv %s)\n", TELESINK_VERSION, uv_version_string());
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "lists") == 0)
        return listcmd_main(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return report_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
        return cmd_version(argc - 1, argv + 1);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage_main(stdout);
        return 0;
    }
    fprintf(stderr, "telesink: unknown command '%s'\n", cmd);
    usage_main(stderr);
    return EXIT_USAGE;
}
