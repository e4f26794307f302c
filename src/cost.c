/* cost.c — see cost.h. */
#include "cost.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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
                     "provider reported a cost that is not a number: billed the worst case");
        } else {
            snprintf(out->note, sizeof out->note,
                     "provider reported a cost that is not a number and no price is known");
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
