#include "ckpt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "threads.h"

#define AUTOCHECKPOINT_PAGES 1000 /* SQLite's default, given back to the writer on stop */

struct ckpt {
    sqlite3 *writer;
    sqlite3 *conn; /* the checkpointer's own */
    char *path;
    int pages;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop, wanted; /* under lock */
    bool failing;      /* the thread's: the last checkpoint failed (said once) */
    /* The WAL's length in frames when the last checkpoint ran: the hook asks for the next one
     * `pages` frames later. Measured from the last checkpoint rather than from what it copied
     * back: a reader that holds an old snapshot stops the copying, and asking again at every
     * commit would only spin. */
    atomic_int last_frames;
    atomic_int wal_frames; /* at the writer's last commit */
    atomic_uint_fast64_t runs, failures;
};

/* The writer's WAL hook: after each commit, with the WAL's length in frames. */
static int on_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    struct ckpt *c = arg;
    atomic_store_explicit(&c->wal_frames, frames, memory_order_relaxed);
    int last = atomic_load_explicit(&c->last_frames, memory_order_relaxed);
    if (frames < last)
        last = 0; /* the WAL started over */
    if (frames - last < c->pages)
        return SQLITE_OK;
    pthread_mutex_lock(&c->lock);
    c->wanted = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    return SQLITE_OK;
}

static void run_one(struct ckpt *c)
{
    int frames = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(c->conn, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &done);
    /* Another checkpoint is running (the writer's, now and then): the next commit asks again. */
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return;
    if (rc != SQLITE_OK || frames < 0) {
        atomic_fetch_add(&c->failures, 1);
        if (!c->failing)
            log_warn("qlog", "%s: checkpoint: %s (the WAL grows until one succeeds)", c->path,
                     rc != SQLITE_OK ? sqlite3_errmsg(c->conn) : "the file is not in WAL mode");
        c->failing = true;
        /* The next try once the WAL has grown by `pages` again, not at every commit. */
        atomic_store_explicit(&c->last_frames, atomic_load(&c->wal_frames), memory_order_relaxed);
        return;
    }
    atomic_store_explicit(&c->last_frames, frames, memory_order_relaxed);
    atomic_fetch_add(&c->runs, 1);
    if (c->failing)
        log_info("qlog", "%s: checkpoints work again", c->path);
    c->failing = false;
}

static void *ckpt_main(void *arg)
{
    struct ckpt *c = arg;
    threads_background("qlog-ckpt");
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->stop && !c->wanted)
            pthread_cond_wait(&c->wake, &c->lock);
        if (c->stop)
            break;
        c->wanted = false;
        pthread_mutex_unlock(&c->lock);
        run_one(c);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

struct ckpt *ckpt_start(sqlite3 *writer, const char *path, int pages, char *err, size_t errlen)
{
    struct ckpt *c = calloc(1, sizeof *c);
    char *p = strdup(path);
    if (!c || !p) {
        snprintf(err, errlen, "out of memory");
        free(c);
        free(p);
        return NULL;
    }
    c->writer = writer;
    c->path = p;
    c->pages = pages > 0 ? pages : AUTOCHECKPOINT_PAGES;
    int rc = sqlite3_open_v2(path, &c->conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    /* A read first: a connection that has not read the file has not opened its WAL either,
     * and its checkpoints do nothing (and say the WAL has -1 frames). */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(c->conn, "PRAGMA schema_version", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s", c->conn ? sqlite3_errmsg(c->conn) : sqlite3_errstr(rc));
        goto fail;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    if ((rc = pthread_create(&c->thread, NULL, ckpt_main, c)) != 0) {
        snprintf(err, errlen, "starting a thread: %s", strerror(rc));
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->wake);
        goto fail;
    }
    /* The WAL hook is also where SQLite's automatic checkpoint lives: this replaces it. */
    sqlite3_wal_hook(writer, on_commit, c);
    return c;
fail:
    sqlite3_close_v2(c->conn);
    free(c->path);
    free(c);
    return NULL;
}

void ckpt_stop(struct ckpt *c)
{
    if (!c)
        return;
    sqlite3_wal_autocheckpoint(c->writer, AUTOCHECKPOINT_PAGES); /* the hook goes */
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->wake);
    sqlite3_close_v2(c->conn);
    free(c->path);
    free(c);
}

uint64_t ckpt_runs(const struct ckpt *c)
{
    return c ? atomic_load(&c->runs) : 0;
}

uint64_t ckpt_failures(const struct ckpt *c)
{
    return c ? atomic_load(&c->failures) : 0;
}

int ckpt_wal_frames(const struct ckpt *c)
{
    return atomic_load_explicit(&c->wal_frames, memory_order_relaxed);
}
