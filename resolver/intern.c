#include "intern.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define SLOTS (2 * INTERN_MAX) /* power of two: at most half full */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char **slot; /* SLOTS entries, NULL = empty; allocated on first use */
static size_t count;

const char *intern(const char *s, size_t len)
{
    if (len == 0 || len > INTERN_LEN || memchr(s, '\0', len))
        return NULL;
    uint64_t h = fmix64(fnv1a(s, len, FNV1A_SEED));
    const char *found = NULL;
    pthread_mutex_lock(&lock);
    if (!slot)
        slot = calloc(SLOTS, sizeof *slot);
    for (size_t i = h & (SLOTS - 1); slot; i = (i + 1) & (SLOTS - 1)) {
        if (!slot[i]) {
            if (count == INTERN_MAX)
                break;
            char *copy = malloc(len + 1);
            if (copy) {
                memcpy(copy, s, len);
                copy[len] = '\0';
                slot[i] = copy;
                count++;
            }
            found = copy;
            break;
        }
        if (strncmp(slot[i], s, len) == 0 && slot[i][len] == '\0') {
            found = slot[i];
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

void intern_free_all(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; slot && i < SLOTS; i++)
        free(slot[i]);
    free(slot);
    slot = NULL;
    count = 0;
    pthread_mutex_unlock(&lock);
}
