/* plimit.c — see plimit.h. */
#include "plimit.h"

#include <stdlib.h>

#include "hmap.h"

typedef struct waiting {
    void *item;
    struct waiting *next;
} waiting;

typedef struct provider_limit {
    int in_flight;
    int64_t next_send_ms;    /* earliest time the next request may leave */
    waiting *head, *tail;    /* waiting for an in-flight slot */
} provider_limit;

struct plimits {
    hmap *by_provider;       /* name -> provider_limit */
};

plimits *plimits_new(void)
{
    plimits *pl = calloc(1, sizeof *pl);
    if (pl && !(pl->by_provider = hmap_new())) {
        free(pl);
        pl = NULL;
    }
    return pl;
}

void plimits_free(plimits *pl)
{
    if (!pl)
        return;
    for (hmap_iter it = {0}; hmap_next(pl->by_provider, &it);) {
        provider_limit *l = it.value;
        while (l->head) {
            waiting *w = l->head;
            l->head = w->next;
            free(w);   /* items belong to the caller, who drops them at shutdown */
        }
        free(l);
    }
    hmap_free(pl->by_provider);
    free(pl);
}

/* The record for provider; NULL only when out of memory (limits then do not apply). */
static provider_limit *limit_for(plimits *pl, const char *provider)
{
    provider_limit *l = hmap_get(pl->by_provider, provider);
    if (l)
        return l;
    l = calloc(1, sizeof *l);
    if (l && hmap_put(pl->by_provider, provider, l) < 0) {
        free(l);
        l = NULL;
    }
    return l;
}

int plimit_take_slot(plimits *pl, const char *provider, int max_concurrent)
{
    provider_limit *l = limit_for(pl, provider);
    if (!l)
        return 1;
    if (max_concurrent > 0 && l->in_flight >= max_concurrent)
        return 0;
    l->in_flight++;
    return 1;
}

void plimit_release_slot(plimits *pl, const char *provider)
{
    provider_limit *l = hmap_get(pl->by_provider, provider);
    if (l && l->in_flight > 0)
        l->in_flight--;
}

long plimit_book_send(plimits *pl, const char *provider, int rpm, int64_t now_ms)
{
    if (rpm <= 0)
        return 0;
    provider_limit *l = limit_for(pl, provider);
    if (!l)
        return 0;
    int64_t interval = 60000 / rpm > 0 ? 60000 / rpm : 1;
    int64_t at = l->next_send_ms > now_ms ? l->next_send_ms : now_ms;
    l->next_send_ms = at + interval;
    return (long)(at - now_ms);
}

int plimit_wait(plimits *pl, const char *provider, void *item)
{
    provider_limit *l = limit_for(pl, provider);
    waiting *w = l ? malloc(sizeof *w) : NULL;
    if (!w)
        return -1;
    w->item = item;
    w->next = NULL;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
    return 0;
}

void *plimit_next_waiter(plimits *pl, const char *provider)
{
    provider_limit *l = hmap_get(pl->by_provider, provider);
    if (!l || !l->head)
        return NULL;
    waiting *w = l->head;
    l->head = w->next;
    if (!l->head)
        l->tail = NULL;
    void *item = w->item;
    free(w);
    return item;
}

void *plimit_any_waiter(plimits *pl)
{
    for (hmap_iter it = {0}; hmap_next(pl->by_provider, &it);) {
        void *item = plimit_next_waiter(pl, it.key);
        if (item)
            return item;
    }
    return NULL;
}

int plimit_in_flight(plimits *pl, const char *provider)
{
    provider_limit *l = hmap_get(pl->by_provider, provider);
    return l ? l->in_flight : 0;
}
