#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

/* glibc wraps neither capget nor capset; libcap would be a dependency for two system calls. */
static int caps_get(struct __user_cap_data_struct data[2])
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    memset(data, 0, 2 * sizeof *data);
    return (int)syscall(SYS_capget, &hdr, data);
}

static bool caps_held(void)
{
    struct __user_cap_data_struct d[2];
    if (caps_get(d) < 0)
        return true; /* cannot tell: try to drop them anyway */
    /* The ambient set is a subset of the permitted one. */
    for (int i = 0; i < 2; i++) {
        if (d[i].effective || d[i].permitted || d[i].inheritable)
            return true;
    }
    return false;
}

/* Empty the ambient, inheritable, permitted and effective sets. */
static int caps_clear(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -1;
    return (int)syscall(SYS_capset, &hdr, d);
}

/* Drop every capability from the bounding set (needs CAP_SETPCAP: call while still root). */
static int bounding_clear(void)
{
    for (unsigned long cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return -1;
    }
    return 0;
}

static int become(const char *user)
{
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        log_error("main", "user %s does not exist", user);
        return -1;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (uid == 0) {
        log_error("main", "user = %s: that is root; name an unprivileged user", user);
        return -1;
    }
    if (bounding_clear() < 0)
        log_warn("main", "cannot empty the capability bounding set: %s", strerror(errno));
    if (setgroups(0, NULL) < 0 || initgroups(user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        log_error("main", "cannot become %s: %s", user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0 || setgid(0) == 0) {
        log_error("main", "still able to regain root after dropping to %s", user);
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        log_warn("main", "cannot set no_new_privs: %s", strerror(errno));
    return 0;
}

int privs_drop(const char *user)
{
    if (user && geteuid() == 0) {
        if (become(user) < 0)
            return -1;
    } else if (user) {
        log_warn("main", "user = %s ignored: not running as root", user);
    }
    if (geteuid() == 0 || !caps_held())
        return 0;
    /* An unprivileged process with capabilities (systemd's AmbientCapabilities): the sockets
     * are bound, nothing needs them any more. */
    if (caps_clear() < 0 || caps_held()) {
        log_error("main", "cannot drop capabilities: %s", strerror(errno));
        return -1;
    }
    log_info("main", "capabilities dropped after binding");
    return 0;
}
