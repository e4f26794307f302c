/* prices.h — what a hop costs, from wherever routefs knows it.
 *
 * In order: the price configured in config.json ("prices"; a free provider or a zero
 * price is an explicit free model); else OpenRouter's published price for the model
 * (GET /api/v1/models, for OpenRouter-kind providers, kept in the state store so an
 * offline mount has it); else the highest rate this model has been observed to charge
 * (a provider reporting more than the reservation raises it, and an observed rate above
 * the configured or published one replaces it: source "observed").  A hop with no price
 * from any of these is unpriced.  Thread-safe (one mutex, a leaf). */
#ifndef RF_PRICES_H
#define RF_PRICES_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

typedef struct hop_price {
    double prompt_per_m;      /* USD per million prompt tokens */
    double completion_per_m;  /* USD per million completion tokens */
    double request_usd;       /* USD per request */
    const char *source;       /* static: "config", "free", "openrouter", "observed" */
} hop_price;

typedef struct store store;

/* Load published and observed prices from the store (st may be NULL: start empty). */
int prices_init(store *st, rf_err *err);
void prices_shutdown(void);

/* The price of provider/model under cfg: 1 with *out filled, 0 when unpriced. */
int prices_lookup(const rf_config *cfg, const char *provider, const char *model,
                  hop_price *out);

/* A provider charged more than the reservation assumed for a request of prompt_tokens and
 * completion_tokens (either may be -1 = unknown): raise the model's observed rate so later
 * reservations bound what it really costs, and keep it in the store.  Returns 1 when
 * the rate went up. */
int prices_observe(const char *provider, const char *model, double cost_usd,
                   long prompt_tokens, long completion_tokens, size_t prompt_bytes,
                   int max_tokens);

/* Replace the published (OpenRouter) prices: model -> price per million tokens. */
typedef struct published_price {
    const char *model;
    double prompt_per_m, completion_per_m, request_usd;
} published_price;
int prices_set_published(const published_price *rows, size_t n, rf_err *err);
/* How many published prices are known, and when they were fetched (0 = never). */
size_t prices_published_count(int64_t *updated_ms);

/* Every known price, for `routefs prices` and the report: fn per row. */
void prices_each(const rf_config *cfg,
                 void (*fn)(const char *provider, const char *model, const hop_price *p,
                            void *ud),
                 void *ud);

#endif
