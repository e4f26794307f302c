/* keycap.c — see keycap.h.
 *
 * Per provider: the fetch time of the key snapshot last seen, the sum reserved in flight,
 * and the recent settles (time, amount) in a ring, so that what was spent since any
 * fetch can be summed.  Settles older than RECENT_MS are dropped: the key is fetched
 * every 5 minutes, so anything older is in OpenRouter's own figure. */
#include "keycap.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "openrouter.h"

#define RING 4096                 /* settles remembered per key */
#define RECENT_MS (15 * 60000)    /* how far back they are kept */
#define LAG_MS 5000               /* OpenRouter's usage may lag its answers this much */

typedef struct settle_rec {
    int64_t at_ms;
    int64_t nusd;
} settle_rec;

typedef struct key_state {
    char *provider;           /* owned */
    int64_t reserved;         /* in flight */
    settle_rec ring[RING];
    size_t head, len;         /* oldest at head */
    struct key_state *next;
} key_state;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static key_state *keys;       /* a handful: one per OpenRouter provider */

static key_state *find(const char *provider, int create)
{
    for (key_state *k = keys; k; k = k->next)
        if (!strcmp(k->provider, provider))
            return k;
    if (!create)
        return NULL;
    key_state *k = calloc(1, sizeof *k);
    if (!k || !(k->provider = strdup(provider))) {
        free(k);
        return NULL;
    }
    k->next = keys;
    keys = k;
    return k;
}

/* Spent through the key since since_ms; drops what is too old to matter. */
static int64_t spent_since(key_state *k, int64_t since_ms, int64_t now_ms)
{
    while (k->len && k->ring[k->head].at_ms < now_ms - RECENT_MS) {
        k->head = (k->head + 1) % RING;
        k->len--;
    }
    int64_t sum = 0;
    for (size_t i = 0; i < k->len; i++) {
        const settle_rec *r = &k->ring[(k->head + i) % RING];
        if (r->at_ms >= since_ms)
            sum += r->nusd;
    }
    return sum;
}

int keycap_reserve(const char *provider, int64_t nusd, int64_t *held, rf_err *err)
{
    *held = 0;
    int64_t remaining, age_ms;
    if (nusd <= 0 || !or_key_remaining_nusd(provider, &remaining, &age_ms))
        return 0;
    int64_t now = now_wall_ms();
    int64_t fetched = now - age_ms;
    pthread_mutex_lock(&mu);
    key_state *k = find(provider, 1);
    if (!k) {
        pthread_mutex_unlock(&mu);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    int64_t spent = spent_since(k, fetched - LAG_MS, now);
    int64_t left = remaining - spent;
    int rc = 0;
    if (nusd > left || nusd > left - k->reserved) {
        char at[40];
        format_time_ms(fetched, at, sizeof at);
        rc = rf_err_set(err, nusd > left ? EDQUOT : EAGAIN,
                        "OpenRouter key limit of %s: $%.4f left (as of %s), $%.4f spent and "
                        "$%.4f reserved since; this request may cost $%.4f", provider,
                        remaining / 1e9, at, spent / 1e9, k->reserved / 1e9, nusd / 1e9);
    } else {
        k->reserved += nusd;
        *held = nusd;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

void keycap_settle(const char *provider, int64_t held, int64_t actual_nusd)
{
    if (held <= 0 && actual_nusd <= 0)
        return;
    pthread_mutex_lock(&mu);
    key_state *k = find(provider, actual_nusd > 0);
    if (k) {
        k->reserved -= held;
        if (k->reserved < 0)
            k->reserved = 0;
        if (actual_nusd > 0) {
            if (k->len == RING) {   /* full: fold the oldest into the next */
                settle_rec *o = &k->ring[k->head];
                k->head = (k->head + 1) % RING;
                k->len--;
                k->ring[k->head].nusd += o->nusd;
            }
            k->ring[(k->head + k->len) % RING] = (settle_rec){now_wall_ms(), actual_nusd};
            k->len++;
        }
    }
    pthread_mutex_unlock(&mu);
}

void keycap_reset(void)
{
    pthread_mutex_lock(&mu);
    while (keys) {
        key_state *k = keys;
        keys = k->next;
        free(k->provider);
        free(k);
    }
    pthread_mutex_unlock(&mu);
}
