/*
 * listcmd: `telesink lists check|export|match`, the offline view of the lists.
 *
 * Unlike the serving path (policy, domainset: hashes only), these commands keep every entry's
 * text, file and line, so they can say which line blocks a name, lint the curated lists, and
 * write them out in the formats Pi-hole and AdGuard Home import.
 */
#ifndef TELESINK_LISTCMD_H
#define TELESINK_LISTCMD_H

/* argv[0] is "lists". Returns the process exit code. */
int listcmd_main(int argc, char **argv);

#endif
