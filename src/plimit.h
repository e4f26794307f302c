/* plimit.h — client-side provider limits, so a batch never runs into a provider's 429s:
 * requests per minute (spaced evenly: one request every 60000/rpm ms, no bursts) and
 * requests in flight.
 *
 * Not thread-safe: the runner calls it under the jobs lock. */
#ifndef RF_PLIMIT_H
#define RF_PLIMIT_H

#include <stdint.h>

typedef struct plimits plimits;

plimits *plimits_new(void);
void plimits_free(plimits *pl);

/* Take an in-flight slot on provider (limit 0 = unlimited).  1 = taken; 0 = full: wait
 * for plimit_release of another request and try again. */
int plimit_take_slot(plimits *pl, const char *provider, int max_concurrent);

/* A request on provider finished: its slot is free. */
void plimit_release_slot(plimits *pl, const char *provider);

/* Book the next send time on provider (rpm 0 = unlimited).  Returns how many ms from
 * now_ms the request must wait (0 = go now).  The booking is final: the caller sends at
 * that time without asking again. */
long plimit_book_send(plimits *pl, const char *provider, int rpm, int64_t now_ms);

/* Park an item (opaque to plimit) until a slot on provider frees; FIFO. -1 when out of
 * memory. */
int plimit_wait(plimits *pl, const char *provider, void *item);
/* The longest-waiting item for provider, or NULL. */
void *plimit_next_waiter(plimits *pl, const char *provider);

/* Any waiting item of any provider (to drop them all at shutdown), or NULL. */
void *plimit_any_waiter(plimits *pl);

/* Requests in flight on provider (for providers.json). */
int plimit_in_flight(plimits *pl, const char *provider);

#endif
