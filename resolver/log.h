/*
 * log: leveled diagnostics for the daemon and the tools.
 *
 * Messages go to stderr (journald adds the timestamp when run as a service), one line each,
 * tagged with the module that wrote them: "telesink: warn [upstream] ...". Per-packet detail is
 * logged only at debug level. Safe to call from any thread: each message is one write(2).
 */
#ifndef TELESINK_LOG_H
#define TELESINK_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Parse "error|warn|info|debug"; returns 0 and sets *out, or -1 for an unknown name. */
int log_level_parse(const char *name, enum log_level *out);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_enabled(lvl)    ((lvl) <= log_get_level())
#define log_error(mod, ...) log_msg(LOG_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...)  log_msg(LOG_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...)  log_msg(LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...)                                                                        \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, mod, __VA_ARGS__);                                                  \
    } while (0)

#endif
