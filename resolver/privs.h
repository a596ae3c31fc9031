/*
 * privs: giving up privileges once the sockets are bound.
 *
 * telesink needs privilege for one thing only: binding port 53. Two ways to get it, and both
 * end with a process that holds no capability at all:
 *   - started as root with `[server] user = NAME`: every capability is dropped from the
 *     bounding set, the process becomes NAME with NAME's groups (setgroups, setgid, setuid),
 *     and no_new_privs is set; a process that could still regain root is an error;
 *   - started as an unprivileged user holding capabilities (systemd's
 *     AmbientCapabilities=CAP_NET_BIND_SERVICE): the ambient, permitted and effective sets are
 *     cleared.
 * Started as root without `user`, nothing changes (and nothing is dropped).
 */
#ifndef TELESINK_PRIVS_H
#define TELESINK_PRIVS_H

/* Drop what is described above. 0, or -1 (logged) when the process must not go on. */
int privs_drop(const char *user);

#endif
