/*
 * threads: what a thread is, told to the kernel. A serving loop asks for a short scheduling
 * slice so that a query arriving while another thread (the log writer, a neighbour process)
 * holds its core preempts that thread; the log writer is a batch thread, which never preempts
 * anyone on waking. Both are named (`top -H`, /proc/PID/task/TID/comm).
 *
 * The slice is a hint to Linux's EEVDF scheduler (6.12 and later honour it for SCHED_OTHER
 * through sched_setattr's sched_runtime; older kernels ignore it); neither needs privilege, and
 * the thread's nice value is kept. Measured in alternating benchmark runs (3 each way, the
 * serving thread and the writer on one core): p99 at 10k qps blocked 102-114 -> 82-89 µs,
 * mixed 149-223 -> 151-169.
 *
 * Not always at once: EEVDF lets a woken thread preempt only while it is "eligible" (it has
 * not had more than its share of the core lately), and a serving loop near saturation has
 * had more. It then waits until the writer offers the core (qlog.c: every 64 rows, ~50 µs,
 * while records come at up to 32k a second, rising to every 256 at 131k a second; while its
 * queue is under three quarters full), sleeps, or the next tick (4 ms at HZ=250). Until
 * 2026-11-24 the writer stopped offering at an eighth full, which near saturation was every
 * drain: `perf sched timehist` at blocked saturation saw 63 waits of over 50 µs in 2 s (of
 * ~11,800 wakeups), up to 4.4 ms, and dnsperf's core was 94% busy (99.5% against dnsdist).
 * With the offers kept: 98%. Tried and not kept: the writer at nice 10 (its share counts 9x;
 * ab.sh, medians of 3: CPU per query blocked 5.09 -> 5.52 µs, mixed 6.17 -> 6.89, QPS within
 * noise) and SCHED_IDLE (the log starves at saturation: 35% of mixed dropped; leaving
 * SCHED_IDLE again needs RLIMIT_NICE).
 */
#ifndef TELESINK_THREADS_H
#define TELESINK_THREADS_H

#define THREADS_SERVING_SLICE_NS 100000 /* the shortest slice Linux accepts */

/* The calling thread serves queries: named "serve<index>", short slice. */
void threads_serving(unsigned index);

/* The calling thread works in the background (name <= 15 bytes): SCHED_BATCH. */
void threads_background(const char *name);

#endif
