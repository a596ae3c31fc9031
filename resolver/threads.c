#include "threads.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

/* The kernel's struct sched_attr (linux/sched/types.h clashes with glibc's sched.h). */
struct kernel_sched_attr {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
    uint32_t sched_util_min, sched_util_max;
};

void threads_serving(unsigned index)
{
    char name[16];
    snprintf(name, sizeof name, "serve%u", index);
#if defined(SYS_sched_getattr) && defined(SYS_sched_setattr)
    struct kernel_sched_attr a;
    memset(&a, 0, sizeof a);
    /* Read first: sched_setattr sets the nice value too, and ours must stay what it was. A
     * thread with a policy chosen from outside (chrt, systemd CPUSchedulingPolicy=) keeps it. */
    if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) == 0 && a.sched_policy == SCHED_OTHER) {
        a.size = sizeof a;
        a.sched_flags = 0;
        a.sched_runtime = THREADS_SERVING_SLICE_NS;
        if (syscall(SYS_sched_setattr, 0, &a, 0) != 0)
            log_debug("threads", "%s: no short scheduling slice: %s", name, strerror(errno));
    }
#endif
    /* Named last: a thread with its name has its scheduling (the e2e test relies on it). */
    pthread_setname_np(pthread_self(), name);
}

void threads_background(const char *name)
{
    struct sched_param p;
    int policy;
    if (pthread_getschedparam(pthread_self(), &policy, &p) == 0 && policy == SCHED_OTHER) {
        p.sched_priority = 0;
        int rc = pthread_setschedparam(pthread_self(), SCHED_BATCH, &p);
        if (rc != 0)
            log_debug("threads", "%s: not SCHED_BATCH: %s", name, strerror(rc));
    }
    pthread_setname_np(pthread_self(), name); /* last, as above */
}
