#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define NS_PER_S 1000000000ULL

/* One client: lives in its slot until a new client of the same set takes it. */
struct entry {
    uint64_t tat;          /* theoretical arrival time (ns); 0 = a free slot */
    uint64_t notice_until; /* refusals before this time are not noticed again */
    uint64_t interval;     /* the emission interval tat was counted in */
    struct ratelimit_key key;
};

struct set {
    pthread_mutex_t lock;
    struct entry e[RATELIMIT_WAYS];
};

struct ratelimit {
    uint64_t seed;
    struct set sets[RATELIMIT_SETS];
};

struct ratelimit *ratelimit_create(uint64_t seed)
{
    struct ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->seed = seed;
    for (size_t i = 0; i < RATELIMIT_SETS; i++)
        pthread_mutex_init(&rl->sets[i].lock, NULL);
    return rl;
}

void ratelimit_destroy(struct ratelimit *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < RATELIMIT_SETS; i++)
        pthread_mutex_destroy(&rl->sets[i].lock);
    free(rl);
}

static uint64_t key_hash(const struct ratelimit *rl, const struct ratelimit_key *k)
{
    uint64_t a, b;
    memcpy(&a, k->bytes, 8);
    memcpy(&b, k->bytes + 8, 8);
    uint64_t h = fmix64(a ^ rl->seed);
    h = fmix64(h ^ b);
    return fmix64(h ^ ((uint64_t)k->kind << 8 | k->prefix) ^ (rl->seed >> 17));
}

static bool key_equal(const struct ratelimit_key *a, const struct ratelimit_key *b)
{
    return a->kind == b->kind && a->prefix == b->prefix &&
           memcmp(a->bytes, b->bytes, sizeof a->bytes) == 0;
}

/* The client's entry, or the one it takes over: a free slot, else the earliest TAT. */
static struct entry *find_or_evict(struct set *s, const struct ratelimit_key *key, bool *found)
{
    struct entry *victim = &s->e[0];
    for (size_t i = 0; i < RATELIMIT_WAYS; i++) {
        struct entry *e = &s->e[i];
        if (e->tat != 0 && key_equal(&e->key, key)) {
            *found = true;
            return e;
        }
        if (e->tat < victim->tat)
            victim = e;
    }
    *found = false;
    return victim;
}

/*
 * A reload changed the limit: what the client owes, in queries, now costs the new interval (so
 * a raised limit frees a limited client at once, and a lowered one holds it to the new rate).
 */
static void rescale(struct entry *e, unsigned limit, uint64_t interval, uint64_t now_ns)
{
    if (e->tat > now_ns) {
        uint64_t owed = (e->tat - now_ns + e->interval - 1) / e->interval;
        e->tat = now_ns + (owed < limit ? owed : limit) * interval;
    }
    e->interval = interval;
}

enum ratelimit_verdict ratelimit_check(struct ratelimit *rl, const struct ratelimit_key *key,
                                       unsigned limit, unsigned seconds, uint64_t now_ns)
{
    uint64_t window = (uint64_t)seconds * NS_PER_S;
    uint64_t interval = window / limit; /* emission interval: the time one query "costs" */
    uint64_t tolerance = window - interval;
    struct set *s = &rl->sets[key_hash(rl, key) & (RATELIMIT_SETS - 1)];
    enum ratelimit_verdict v = RATELIMIT_PASS;

    pthread_mutex_lock(&s->lock);
    bool found;
    struct entry *e = find_or_evict(s, key, &found);
    if (found && e->interval != interval)
        rescale(e, limit, interval, now_ns);
    if (!found) {
        e->key = *key;
        e->tat = now_ns + interval;
        e->notice_until = 0;
        e->interval = interval;
    } else if (e->tat > now_ns + tolerance) {
        v = RATELIMIT_REFUSE;
        if (now_ns >= e->notice_until) {
            v = RATELIMIT_REFUSE_NOTICE;
            e->notice_until = now_ns + window;
        }
    } else {
        e->tat = (e->tat > now_ns ? e->tat : now_ns) + interval;
    }
    pthread_mutex_unlock(&s->lock);
    return v;
}
