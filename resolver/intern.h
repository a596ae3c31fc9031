/*
 * intern: short strings stored once for the life of the process, so that a pointer can stand
 * for them anywhere (a query log record carries a DoT client's name as 8 bytes instead of 64).
 * Any thread may intern; the table is bounded (INTERN_MAX strings of INTERN_LEN bytes at most)
 * because its strings are never freed while the process runs: a peer that sends a new SNI name
 * with every connection fills it, after which new names are not interned (NULL).
 */
#ifndef TELESINK_INTERN_H
#define TELESINK_INTERN_H

#include <stddef.h>

#define INTERN_MAX 16384
#define INTERN_LEN 63

/* The one copy of s[0..len) (len <= INTERN_LEN, no NUL inside), or NULL when the table is full,
 * len is 0 or too long, or memory ran out. */
const char *intern(const char *s, size_t len);

/* Free everything (at exit, after every user is gone: for leak checkers). */
void intern_free_all(void);

#endif
