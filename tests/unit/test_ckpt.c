/* Unit tests for the checkpoint thread: it checkpoints once the WAL has grown by `pages`, the
 * writer's own automatic checkpoint is off meanwhile and back after ckpt_stop, a reader that
 * holds the WAL does not make it spin, and a file it cannot open leaves the writer as it was.
 * Real SQLite files in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckpt.h"

static char path[256];

static sqlite3 *open_conn(void)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    return db;
}

/* A new WAL database with one table; returns the writer's connection. */
static sqlite3 *new_db(void)
{
    char dir[] = "/tmp/telesink-ckpt-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/q.db", dir);
    sqlite3 *w = open_conn();
    assert_int_equal(
        sqlite3_exec(w, "PRAGMA journal_mode = WAL; CREATE TABLE t(x BLOB);", NULL, NULL, NULL),
        SQLITE_OK);
    return w;
}

/* One transaction of n rows of about a page each: the WAL grows by about n frames. */
static void commit_rows(sqlite3 *w, int n)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO t SELECT randomblob(3000) FROM (WITH RECURSIVE c(i) AS (SELECT 1 "
             "UNION ALL SELECT i + 1 FROM c WHERE i < %d) SELECT i FROM c);",
             n);
    assert_int_equal(sqlite3_exec(w, sql, NULL, NULL, NULL), SQLITE_OK);
}

/* The WAL's length in frames, as another connection sees it: a passive checkpoint reports it
 * (and copies back what is left, so the tests call it only as their last check). */
static int wal_frames(sqlite3 *other)
{
    int frames = -1, done = -1;
    assert_int_equal(
        sqlite3_wal_checkpoint_v2(other, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &done),
        SQLITE_OK);
    return frames;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait (up to 10 s) until the checkpointer has run at least n times. */
static void wait_runs(struct ckpt *c, uint64_t n)
{
    double until = now_s() + 10;
    while (ckpt_runs(c) < n && now_s() < until)
        usleep(1000);
    assert_true(ckpt_runs(c) >= n);
}

/* The checkpointer for writer w of the test's database. */
static struct ckpt *start(sqlite3 *w, int pages)
{
    char err[256] = "";
    struct ckpt *c = ckpt_start(w, path, pages, err, sizeof err);
    if (!c)
        fail_msg("ckpt_start: %s", err);
    return c;
}

static void remove_db(void)
{
    char f[300];
    for (const char *s = ""; s; s = !*s ? "-wal" : strcmp(s, "-wal") == 0 ? "-shm" : NULL) {
        snprintf(f, sizeof f, "%s%s", path, s);
        unlink(f);
    }
    *strrchr(path, '/') = '\0';
    rmdir(path);
}

static void test_checkpoints_in_its_own_thread(void **state)
{
    (void)state;
    sqlite3 *w = new_db();
    struct ckpt *c = start(w, 64);
    assert_int_equal(ckpt_runs(c), 0);
    commit_rows(w, 20); /* under 64 frames: nothing asked */
    assert_int_equal(ckpt_runs(c), 0);
    commit_rows(w, 60); /* past 64: the thread checkpoints everything */
    wait_runs(c, 1);
    /* Copied back: the writer's next transaction starts the WAL over. */
    commit_rows(w, 1);
    assert_in_range(ckpt_wal_frames(c), 1, 8);
    assert_int_equal(ckpt_failures(c), 0);
    ckpt_stop(c);
    sqlite3_close(w);
    remove_db();
}

static void test_writer_does_not_checkpoint(void **state)
{
    (void)state;
    sqlite3 *w = new_db();
    sqlite3 *other = open_conn();
    /* A threshold the test never reaches: any checkpoint would be the writer's own. */
    struct ckpt *c = start(w, 100000);
    for (int i = 0; i < 12; i++)
        commit_rows(w, 100);
    /* SQLite's automatic checkpoint would have started the WAL over past 1000 frames. */
    assert_true(ckpt_wal_frames(c) > 1200);
    assert_int_equal(ckpt_runs(c), 0);
    /* After stop the writer checkpoints again by itself: the next commit past 1000 frames
     * copies everything back, so the WAL starts over at the one after. */
    ckpt_stop(c);
    commit_rows(w, 1);
    commit_rows(w, 1);
    assert_true(wal_frames(other) < 10);
    sqlite3_close(other);
    sqlite3_close(w);
    remove_db();
}

static void test_reader_holding_the_wal_does_not_make_it_spin(void **state)
{
    (void)state;
    sqlite3 *w = new_db();
    commit_rows(w, 1);
    sqlite3 *reader = open_conn();
    assert_int_equal(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM t;", NULL, NULL, NULL),
                     SQLITE_OK);
    struct ckpt *c = start(w, 16);
    /* 100 commits of 5-6 frames: a checkpoint asked every 16 frames is at most one per 16 of
     * them (~35); asking at every commit once the reader stops the copying would be up to 100. */
    for (int i = 0; i < 100; i++) {
        commit_rows(w, 4);
        usleep(1000); /* time for the thread to keep pace, so that spinning would show */
    }
    wait_runs(c, 1);
    uint64_t runs = ckpt_runs(c);
    int frames = ckpt_wal_frames(c);
    assert_true(frames > 400); /* the WAL could not start over under the reader */
    assert_in_range(runs, 1, (uint64_t)frames / 16 + 1);
    assert_int_equal(sqlite3_exec(reader, "COMMIT;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(reader);
    ckpt_stop(c);
    sqlite3_close(w);
    remove_db();
}

static void test_cannot_open(void **state)
{
    (void)state;
    sqlite3 *w = new_db();
    char missing[300], err[256] = "";
    snprintf(missing, sizeof missing, "%s.missing/q.db", path);
    assert_null(ckpt_start(w, missing, 64, err, sizeof err));
    assert_true(strlen(err) > 0);
    /* The writer keeps SQLite's automatic checkpoint: past 1000 frames the WAL starts over. */
    for (int i = 0; i < 12; i++)
        commit_rows(w, 100);
    sqlite3 *other = open_conn();
    assert_true(wal_frames(other) < 1000);
    sqlite3_close(other);
    sqlite3_close(w);
    remove_db();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoints_in_its_own_thread),
        cmocka_unit_test(test_writer_does_not_checkpoint),
        cmocka_unit_test(test_reader_holding_the_wal_does_not_make_it_spin),
        cmocka_unit_test(test_cannot_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
