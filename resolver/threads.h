/*
 * threads: what a thread is, told to the kernel. A serving loop asks for a short scheduling
 * slice so that a query arriving while another thread (the log writer, a neighbour process)
 * holds its core preempts that thread at once; the log writer is a batch thread, which never
 * preempts anyone on waking. Both are named (`top -H`, /proc/PID/task/TID/comm).
 *
 * The slice is a hint to Linux's EEVDF scheduler (6.12 and later honour it for SCHED_OTHER
 * through sched_setattr's sched_runtime; older kernels ignore it); neither needs privilege, and
 * the thread's nice value is kept. Measured in alternating benchmark runs (3 each way, the
 * serving thread and the writer on one core): p99 at 10k qps blocked 102-114 -> 82-89 µs,
 * mixed 149-223 -> 151-169.
 */
#ifndef TELESINK_THREADS_H
#define TELESINK_THREADS_H

#define THREADS_SERVING_SLICE_NS 100000 /* the shortest slice Linux accepts */

/* The calling thread serves queries: named "serve<index>", short slice. */
void threads_serving(unsigned index);

/* The calling thread works in the background (name <= 15 bytes): SCHED_BATCH. */
void threads_background(const char *name);

#endif
