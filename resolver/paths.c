#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/* Fixed at compile time (CMakeLists.txt): the source tree's lists, and GNUInstallDirs' relative
 * install directories. */
#ifndef TELESINK_LISTS_DIR
#define TELESINK_LISTS_DIR "lists"
#endif
#ifndef TELESINK_INSTALL_BINDIR
#define TELESINK_INSTALL_BINDIR "bin"
#endif
#ifndef TELESINK_INSTALL_DATADIR
#define TELESINK_INSTALL_DATADIR "share"
#endif
#ifndef TELESINK_INSTALL_SYSCONFDIR
#define TELESINK_INSTALL_SYSCONFDIR "etc"
#endif

/* out = dir/rel, or rel when it is absolute. 0, or -1 when it does not fit. */
static int join(char *out, size_t len, const char *dir, const char *rel)
{
    int n;
    if (rel[0] == '/')
        n = snprintf(out, len, "%s", rel);
    else
        n = snprintf(out, len, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", rel);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int paths_install_prefix(const char *exe, const char *bindir, char *out, size_t len)
{
    const char *slash = strrchr(exe, '/');
    size_t blen = strlen(bindir);
    while (blen > 0 && bindir[blen - 1] == '/')
        blen--;
    if (exe[0] != '/' || !slash || blen == 0 || bindir[0] == '/')
        return -1;
    size_t dlen = (size_t)(slash - exe); /* the executable's directory: exe[0, dlen) */
    if (dlen < blen + 1 || memcmp(exe + dlen - blen, bindir, blen) != 0 ||
        exe[dlen - blen - 1] != '/')
        return -1;
    size_t plen = dlen - blen - 1;
    while (plen > 0 && exe[plen - 1] == '/')
        plen--;
    if (plen == 0) /* /bin/telesink: the prefix is the root */
        plen = 1;
    if (plen >= len)
        return -1;
    memcpy(out, exe, plen);
    out[plen] = '\0';
    return 0;
}

int paths_sysconfdir(const char *prefix, const char *sysconfdir, char *out, size_t len)
{
    /* GNUInstallDirs: for the prefix /usr (and /), the configuration lives in /etc. */
    if (sysconfdir[0] != '/' &&
        (strcmp(prefix, "/usr") == 0 || strcmp(prefix, "/usr/") == 0 || strcmp(prefix, "/") == 0))
        return join(out, len, "/", sysconfdir);
    return join(out, len, prefix, sysconfdir);
}

/* The prefix this executable was installed into, or -1 when it does not look installed. */
static int self_prefix(char *prefix, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0'; /* a replaced binary reads "... (deleted)": only its directory is used */
    return paths_install_prefix(exe, TELESINK_INSTALL_BINDIR, prefix, len);
}

const char *paths_lists_dir(char *buf, size_t len)
{
    char prefix[PATH_MAX], data[PATH_MAX];
    struct stat st;
    if (self_prefix(prefix, sizeof prefix) == 0 &&
        join(data, sizeof data, prefix, TELESINK_INSTALL_DATADIR) == 0 &&
        join(buf, len, data, "telesink/lists") == 0 && stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
        return buf;
    return TELESINK_LISTS_DIR;
}

const char *paths_config_file(char *buf, size_t len)
{
    char prefix[PATH_MAX], etc[PATH_MAX];
    if (self_prefix(prefix, sizeof prefix) == 0 &&
        paths_sysconfdir(prefix, TELESINK_INSTALL_SYSCONFDIR, etc, sizeof etc) == 0 &&
        join(buf, len, etc, "telesink/telesink.conf") == 0 && access(buf, F_OK) == 0)
        return buf;
    return CONFIG_DEFAULT_PATH;
}
