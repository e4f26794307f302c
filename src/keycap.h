/* keycap.h — an OpenRouter key's own remaining limit as one more cap on reservations.
 *
 * OpenRouter reports what a key may still spend ("limit_remaining" of GET /key,
 * openrouter.h) as of its last fetch, every few minutes.  Between fetches this module
 * takes off what this mount spent through the key since then (settled answers, counted
 * from 5 s before the fetch, since OpenRouter's usage lags a little: it errs on the side
 * of refusing) and what is reserved in flight, so a routefs cap and the dashboard's limit
 * cannot disagree silently: a hop whose worst case does not fit the key is not sent.
 *
 * Amounts in nano-USD.  Thread-safe (one mutex, a leaf). */
#ifndef RF_KEYCAP_H
#define RF_KEYCAP_H

#include <stdint.h>

#include "err.h"

/* Reserve nusd against provider's key.  0 = fits (or the key has no known limit: then
 * nothing is recorded and *held is 0); *held = what to pass to keycap_settle/release.
 * -1 with err: EDQUOT (it can never fit until the key's limit resets: "OpenRouter key
 * limit of or: $0.40 left (as of 12:00:03Z), $0.05 spent since"), EAGAIN (it fits once
 * reservations in flight settle), ENOMEM. */
int keycap_reserve(const char *provider, int64_t nusd, int64_t *held, rf_err *err);

/* The reservation held (0: none) is over: actual_nusd was spent through the key
 * (0 when nothing was billed). */
void keycap_settle(const char *provider, int64_t held, int64_t actual_nusd);

/* Forget everything (unmount, tests). */
void keycap_reset(void);

#endif
