/*
 * paths: where the bundled lists and the default configuration file are.
 *
 * An installed telesink finds them relative to its own executable, so that a tree installed
 * with `cmake --install build --prefix DIR` (a prefix not known when compiling) works as it is:
 * DIR/bin/telesink reads DIR/share/telesink/lists and DIR/etc/telesink/telesink.conf (for the
 * prefix /usr the configuration is in /etc, as GNUInstallDirs puts it). A binary that is not
 * in an install tree (build/telesink), or whose installed files are missing, uses the paths
 * fixed at compile time: the source tree's lists/ and CONFIG_DEFAULT_PATH.
 *
 * paths_install_prefix() and paths_sysconfdir() are pure; the other two read /proc/self/exe
 * and look at the file system.
 */
#ifndef TELESINK_PATHS_H
#define TELESINK_PATHS_H

#include <stddef.h>

/*
 * The install prefix of an executable at exe when it sits in PREFIX/bindir (bindir relative,
 * e.g. "bin"): writes PREFIX ("/" for /bin/telesink) and returns 0, or returns -1 when exe is
 * not there (or out is too small).
 */
int paths_install_prefix(const char *exe, const char *bindir, char *out, size_t len);

/*
 * The configuration directory of a prefix, as `cmake --install` places it: sysconfdir itself
 * when absolute, "/etc" for the prefixes /usr and /, else PREFIX/sysconfdir. 0, or -1 when out
 * is too small.
 */
int paths_sysconfdir(const char *prefix, const char *sysconfdir, char *out, size_t len);

/* The default `[lists] paths`: the installed lists directory when it exists, else the source
 * tree's. Returns buf or a static string. */
const char *paths_lists_dir(char *buf, size_t len);

/* The default configuration file: the installed one when it exists, else CONFIG_DEFAULT_PATH
 * (which may not exist either: the caller checks). Returns buf or a static string. */
const char *paths_config_file(char *buf, size_t len);

#endif
