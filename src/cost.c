/* cost.c — see cost.h. */
#include "cost.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "budget.h"
#include "log.h"

#define NUSD_PER_USD 1e9
#define NUSD_MAX 1000000000000000000LL   /* $1e9: larger amounts are clamped */

int64_t cost_usd_to_nusd(double usd)
{
    if (!isfinite(usd) || usd <= 0)
        return 0;
    if (usd >= (double)NUSD_MAX / NUSD_PER_USD)
        return NUSD_MAX;
    return (int64_t)llround(usd * NUSD_PER_USD);
}

double cost_nusd_to_usd(int64_t nusd)
{
    return (double)nusd / NUSD_PER_USD;
}

static void bill(cost_result *out, double usd, int estimated)
{
    out->has_cost = 1;
    out->nusd = cost_usd_to_nusd(usd);
    out->estimated = estimated;
}

static double tokens_cost(const hop_price *p, double prompt_tokens, double completion_tokens)
{
    return (prompt_tokens * p->prompt_per_m + completion_tokens * p->completion_per_m) / 1e6 +
           p->request_usd;
}

void cost_of_answer(const openai_completion *comp, const hop_price *price, double worst_usd,
                    size_t prompt_bytes, cost_result *out)
{
    memset(out, 0, sizeof *out);
    if (comp->has_cost) {
        double c = comp->cost;
        if (isfinite(c) && c >= 0 && !(c > COST_ABSURD_FACTOR * worst_usd && c > COST_ABSURD_MIN_USD)) {
            bill(out, c, 0);
            out->over_reservation = worst_usd > 0 && c > worst_usd;
            return;
        }
        out->nonsense = 1;
        if (price) {
            bill(out, worst_usd, 1);
            snprintf(out->note, sizeof out->note,
                     "provider reported an absurd cost ($%g): billed the worst case", c);
        } else {
            snprintf(out->note, sizeof out->note,
                     "provider reported an absurd cost ($%g) and no price is known: unpriced", c);
        }
        return;
    }
    if (comp->cost_invalid) {
        out->nonsense = 1;
        if (price) {
            bill(out, worst_usd, 1);
            snprintf(out->note, sizeof out->note,
                     "provider reported a cost that is not a number >= 0: billed the worst case");
        } else {
            snprintf(out->note, sizeof out->note,
                     "provider reported a cost that is not a number >= 0 and no price is known");
        }
        return;
    }
    if (!price)
        return;   /* unpriced: counted, cost unknown */
    if (comp->prompt_tokens >= 0 && comp->completion_tokens >= 0) {
        bill(out, tokens_cost(price, (double)comp->prompt_tokens, (double)comp->completion_tokens), 0);
        return;
    }
    bill(out, worst_usd, 1);
    snprintf(out->note, sizeof out->note, "no usage reported: billed the worst case");
    (void)prompt_bytes;
}

void cost_of_partial(long tokens, const hop_price *price, size_t prompt_bytes, cost_result *out)
{
    memset(out, 0, sizeof *out);
    if (!price || tokens < 0)
        return;
    bill(out, tokens_cost(price, (double)(prompt_bytes / 3 + 16), (double)tokens), 1);
    snprintf(out->note, sizeof out->note, "stream ended early after %ld token%s: estimated",
             tokens, tokens == 1 ? "" : "s");
}

void cost_of_cancelled(const hop_price *price, double worst_usd, int streamed, long tokens,
                       size_t prompt_bytes, cost_result *out)
{
    if (streamed) {
        cost_of_partial(tokens, price, prompt_bytes, out);
        return;
    }
    memset(out, 0, sizeof *out);
    if (price) {
        bill(out, worst_usd, 1);
        snprintf(out->note, sizeof out->note, "cancelled in flight: billed the worst case");
    }
}

void cost_learn(budget *b, const char *provider, const char *model, const hop_price *price,
                double worst_usd, const openai_completion *comp, const cost_result *c,
                size_t prompt_bytes, int max_tokens)
{
    int unpriced_cost = !price && c->has_cost && !c->estimated && c->nusd > 0;
    if ((c->over_reservation || unpriced_cost) &&
        prices_observe(provider, model, comp->cost, comp->prompt_tokens, comp->completion_tokens,
                       prompt_bytes, max_tokens)) {
        if (c->over_reservation)
            LOG_WARN("%s on %s charged $%.6f, more than the $%.6f reserved: the %s price is too "
                     "low; later reservations use the observed rate", model, provider,
                     comp->cost, worst_usd,
                     price && price->source && !strcmp(price->source, "openrouter")
                         ? "published" : "configured");
        else
            LOG_INFO("%s on %s has no price and charged $%.6f: later reservations use the "
                     "observed rate", model, provider, comp->cost);
    }
    if (c->nonsense) {
        LOG_WARN("%s on %s: %s", model, provider, c->note);
        if (b)
            budget_warn_cost(b, provider, model, c->note);
    }
}

void cost_unpriced_reason(char *buf, size_t len, const char *provider, const char *model,
                          int capped)
{
    snprintf(buf, len,
             "no price known for %s on %s while %s: add \"prices\": {\"%s\": "
             "{\"prompt\": USD_PER_M, \"completion\": USD_PER_M}} to config.json "
             "(a price of 0, or \"free\": true on its provider, for a free model)",
             model, provider, capped ? "a spend cap applies" : "the tier has require_price", model);
}
