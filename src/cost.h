/* cost.h — what an attempt costs: the one place that turns what a provider reported
 * (usage.cost, token counts, or nothing) and what routefs reserved into the amount that
 * is billed, and says when that amount is an estimate.
 *
 * The rules (README, "Spend"):
 *   - a reported usage.cost that is a finite number >= 0 is the cost — unless it is
 *     absurd (more than COST_ABSURD_FACTOR times the reservation's worst case and more
 *     than COST_ABSURD_MIN_USD), which is never stored: the worst case is billed instead;
 *   - a reported cost that is not a number, infinite or negative: the worst case;
 *   - no reported cost but token counts and a price: tokens x price;
 *   - no usage at all: the worst case, marked estimated;
 *   - a cancelled stream: the tokens received x the completion price (plus the prompt),
 *     marked estimated;
 *   - no price known and nothing reported: unpriced (counted, cost unknown). */
#ifndef RF_COST_H
#define RF_COST_H

#include <stdint.h>

#include "openai.h"
#include "prices.h"

#define COST_ABSURD_FACTOR 1000.0
#define COST_ABSURD_MIN_USD 100.0

typedef struct cost_result {
    int has_cost;             /* 0: unpriced */
    int64_t nusd;             /* what is billed, nano-USD */
    int estimated;            /* nusd is routefs's estimate */
    int over_reservation;     /* the provider reported more than the worst case */
    int nonsense;             /* the provider reported a cost that was not stored */
    char note[200];           /* why estimated / what was odd, "" when nothing */
} cost_result;

/* A completed answer.  price NULL = unpriced; worst_usd: the reservation's worst case. */
void cost_of_answer(const openai_completion *comp, const hop_price *price, double worst_usd,
                    size_t prompt_bytes, cost_result *out);

/* A stream cut short (cancelled, stalled, failed mid-way) after tokens content chunks:
 * what the provider probably billed.  price NULL = unpriced. */
void cost_of_partial(long tokens, const hop_price *price, size_t prompt_bytes,
                     cost_result *out);

/* A request cancelled in flight (its prompt changed or went): a stream is billed as
 * cost_of_partial from the tokens seen; an unstreamed request at its worst case, estimated
 * (the provider may finish and charge it).  price NULL = unpriced. */
void cost_of_cancelled(const hop_price *price, double worst_usd, int streamed, long tokens,
                       size_t prompt_bytes, cost_result *out);

/* What routefs learns from an answer billed as c (comp: what the provider reported; price
 * NULL when unpriced): a provider that charged more than the reservation, or an unpriced
 * model that reported its cost, raises the model's observed rate (prices_observe), which
 * later reservations use, and the log says so; a cost that was not stored is logged and
 * counted for status (budget_warn_cost). */
typedef struct budget budget;
void cost_learn(budget *b, const char *provider, const char *model, const hop_price *price,
                double worst_usd, const openai_completion *comp, const cost_result *c,
                size_t prompt_bytes, int max_tokens);

/* Why a hop without a price is not sent (capped: a spend cap applies; else the tier has
 * require_price), and how to price it. */
void cost_unpriced_reason(char *buf, size_t len, const char *provider, const char *model,
                          int capped);

int64_t cost_usd_to_nusd(double usd);
double cost_nusd_to_usd(int64_t nusd);

#endif
