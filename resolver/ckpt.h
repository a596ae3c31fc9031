/*
 * ckpt: checkpoints a WAL database from a thread of its own, with a connection of its own, so
 * that the writer never waits for them.
 *
 * SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1000 pages: the
 * committing thread copies the pages back into the database and waits for two fsyncs. For the
 * query log that thread is the one that keeps up with the serving loops, and while it waits
 * nothing drains their queues. ckpt_start turns the writer's automatic checkpoint off and
 * installs a WAL hook on the writer's connection that wakes the checkpointer instead; the
 * checkpointer runs PASSIVE checkpoints (they never block the writer, and the writer never
 * blocks them: SQLite lets one checkpoint run beside one writer).
 *
 * The writer still syncs the WAL's header when it starts the WAL over (SQLite does that in the
 * first commit after a checkpoint that copied everything back). And while it commits without
 * pause, a checkpoint seldom catches up with the WAL's end, so the WAL grows past `pages` until
 * one does (here: to 38 MB in 10 s at 150k logged queries a second, then started over at the
 * 16 MiB journal_size_limit); db_checkpoint truncates it past 64 MiB.
 */
#ifndef TELESINK_CKPT_H
#define TELESINK_CKPT_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct ckpt;

/*
 * Start checkpointing `path`, whose writer is `writer` (a WAL-mode connection). `pages`: the
 * WAL growth that asks for a checkpoint (SQLite's default is 1000). NULL when the thread or its
 * connection cannot be had: then the writer keeps SQLite's automatic checkpoint, and err says
 * why.
 */
struct ckpt *ckpt_start(sqlite3 *writer, const char *path, int pages, char *err, size_t errlen);

/* Stop the thread and close its connection; the writer's automatic checkpoint is back on. Call
 * before closing the writer's connection. */
void ckpt_stop(struct ckpt *c);

/* The WAL's length in frames at the writer's last commit. */
int ckpt_wal_frames(const struct ckpt *c);

/* Checkpoints run and failed (not counting those that found another checkpoint running). */
uint64_t ckpt_runs(const struct ckpt *c);
uint64_t ckpt_failures(const struct ckpt *c);

#endif
