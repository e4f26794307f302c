/* budget.h — spend: reservations, caps and their windows, breakdowns.
 *
 * routefs reserves before it sends: a job reserves the worst case of a hop (estimated
 * prompt tokens + max_tokens at that hop's price) before the request leaves, and settles
 * the real cost afterwards.  Caps (daily = UTC day, monthly = UTC calendar month,
 * optional per-tier daily) are checked against spent + reserved, so hundreds of jobs in
 * flight cannot overshoot them.  Caps are those of the config passed at each call: the
 * one in force at the moment of the send.
 *
 * The ledger rows themselves are written to the state store with each result
 * (store_ledger.h); budget_settle only counts them here.  At open, the tallies are
 * rebuilt from the store's daily totals.
 *
 * Thread-safe (one mutex, a leaf in the lock order). */
#ifndef RF_BUDGET_H
#define RF_BUDGET_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "err.h"
#include "store.h"
#include "prices.h"
#include "store_ledger.h"

typedef struct budget budget;

typedef int64_t (*budget_clock_fn)(void);   /* wall clock, ms since the epoch (UTC) */

/* Open: the tallies from the store's daily totals (st NULL: start empty, for tests).
 * clock NULL = the real clock (tests inject one). */
budget *budget_open(store *st, budget_clock_fn clock, rf_err *err);
void budget_close(budget *b);

/* Worst-case cost in USD of sending a prompt of prompt_bytes with max_tokens at price:
 * (prompt_bytes / 3 + 16) prompt tokens — generous for English and code, where a token
 * averages ~4 bytes — plus max_tokens completion tokens, plus the price per request.
 * 0 when price is NULL. */
double budget_worst_case(const hop_price *price, size_t prompt_bytes, int max_tokens);

/* Does any cap (daily, monthly, the tier's daily) apply to a job of tier under cfg? */
int budget_caps_apply(const rf_config *cfg, const char *tier);

/* Reserve amount for tier under cfg's caps.  Returns a reservation id > 0, or -1 with
 * err->code EDQUOT (it can never fit: spent + amount > cap) or EAGAIN (it fits once the
 * requests in flight settle: wait and try again) and a message naming the cap, e.g.
 * "daily cap $5.00 reached: $4.97 spent, $0.05 reserved" (or "monthly cap", or
 * "tier fast daily cap").  amount 0 always succeeds (nothing to reserve). */
long budget_reserve(budget *b, const rf_config *cfg, const char *tier, double amount,
                    rf_err *err);

/* budget_reserve with every cap scaled by share (0 < share <= 1): this host's part of a
 * cap it enforces alone while the shared state is unreachable ("on_shared_down":
 * "local").  Messages say "this host's share of the daily cap $2.50 reached: ...". */
long budget_reserve_share(budget *b, const rf_config *cfg, const char *tier, double amount,
                          double share, rf_err *err);

/* Give a reservation back (the hop failed or was never sent).  Unknown ids are ignored. */
void budget_release(budget *b, long reservation);

/* Release the reservation (if > 0) and count the billed request (row, may be NULL). */
void budget_settle(budget *b, long reservation, const ledger_row *row);

/* Would a new prompt for tier be refused right now because a cap is already used up
 * by settled spend (spent >= cap)?  0 = fine; -1 with EDQUOT and the message otherwise.
 * Lets open()/write() of a prompt fail early with "Disk quota exceeded". */
int budget_check_admission(budget *b, const rf_config *cfg, const char *tier, rf_err *err);

/* spend.json: {"currency":"USD","total","today","this_month","reserved",
 *   "caps":{"daily":{"cap","spent","reserved","remaining"}|null,"monthly":{...}|null,
 *           "tiers":{"T":{...}}},
 *   "requests":{"total","today","this_month","unpriced","estimated"},
 *   "by_tier","by_tag","by_provider","by_model","by_upstream": {...}}  (each breakdown:
 *   NAME -> {"total","today","this_month","requests"}).  malloc'd, ends with '\n'. */
char *budget_spend_json(budget *b, const rf_config *cfg);

/* The spend lines of `status`, malloc'd, lines separated by '\n' (none at the end):
 *   "spend: today $0.12 of $5.00 daily cap (2%), this month $3.40 of $100.00 (3%), $0.05
 *    reserved; 2 requests without a known price (cost unknown); 1 request billed at
 *    routefs's estimate (...)"
 * then one line per provider out of budget (budget_provider_out), per provider/model whose
 * reported costs were not stored (budget_warn_cost), and per hop of cfg priced at an
 * observed rate: above its configured price ("the configured price is too low") or with
 * no price configured. */
char *budget_status_line(budget *b, const rf_config *cfg);

/* What this host spent today and this month (UTC), overall (tier NULL) or in one tier;
 * nano-USD.  For the shared windows at mount (cluster.c). */
void budget_spent_now(budget *b, const char *tier, int64_t *today_nusd, int64_t *month_nusd);

/* ---- providers that say the money is gone ---- */

/* provider answered 402 (insufficient credits) or a key / workspace limit: nothing is sent
 * to it for the next for_ms (its Retry-After; <= 0: BUDGET_FUNDS_WAIT_MS).  A mark is only
 * ever extended by answers still in flight.  why: one line for status and NAME.meta. */
#define BUDGET_FUNDS_WAIT_MS 30000
void budget_provider_out(budget *b, const char *provider, long for_ms, const char *why);
/* Is provider out of budget now?  0 = no; 1 with why[len] filled: "provider P is out of
 * budget until TIME: REASON".  A mark whose time has passed is forgotten. */
int budget_provider_blocked(budget *b, const char *provider, char *why, size_t len);
/* providers.json (json, owned: freed or returned) with every provider that is out of
 * budget marked: "state": "out of budget", "out_of_budget_until" (UTC) and
 * "out_of_budget_reason".  Returns the text to show (malloc'd). */
char *budget_mark_providers(budget *b, char *json);

/* An answer of provider/model whose reported cost was not stored (not a number, negative,
 * absurd): counted for status with the last note. */
void budget_warn_cost(budget *b, const char *provider, const char *model, const char *note);

/* Totals for metrics: spent today, this month; reserved now. */
void budget_totals(budget *b, double *today, double *month, double *reserved);

#endif
