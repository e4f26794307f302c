/* budget.h — spend: the append-only ledger, reservations, caps and their windows,
 * breakdowns.
 *
 * routefs is the single writer of its user's spend, so it can reserve before it sends:
 * a job reserves the worst case of a hop (estimated prompt tokens + max_tokens at that
 * hop's price) before the request leaves, and settles the real cost afterwards.  Caps
 * (daily = UTC day, monthly = UTC calendar month, optional per-tier daily) are checked
 * against spent + reserved, so hundreds of jobs in flight cannot overshoot them.
 *
 * Ledger: STATE/ledger.jsonl, one JSON object per settled request, appended with one
 * write(2).  Durability comes from the commit thread's syncfs, which runs before the job
 * is reported done (commit.h).  On open the ledger is replayed: records are deduplicated
 * by id, and a torn last line (a crash mid-append) is ignored with a warning and cut off.
 *
 * Thread-safe (one mutex). */
#ifndef RF_BUDGET_H
#define RF_BUDGET_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "err.h"
#include "store.h"

typedef struct budget budget;

typedef int64_t (*budget_clock_fn)(void);   /* wall clock, ms since the epoch (UTC) */

/* Open and replay STATE/ledger.jsonl.  clock NULL = the real clock (tests inject one).
 * Warnings (torn line, bad records skipped) go to the log; only I/O errors fail. */
budget *budget_open(store *st, budget_clock_fn clock, rf_err *err);
void budget_close(budget *b);

/* Worst-case cost of sending a prompt of prompt_bytes to hop with max_tokens:
 * (prompt_bytes / 3 + 16) prompt tokens — generous for English and code, where a token
 * averages ~4 bytes — plus max_tokens completion tokens, at the configured price.
 * *known = 0 (and 0 returned) when the hop has no configured price. */
double budget_worst_case(const rf_config *cfg, const rf_hop *hop, size_t prompt_bytes,
                         int max_tokens, int *known);

/* Reserve amount for tier under cfg's caps.  Returns a reservation id > 0, or -1 with
 * err->code EDQUOT (it can never fit: spent + amount > cap) or EAGAIN (it fits once the
 * requests in flight settle: wait and try again) and a message naming the cap, e.g.
 * "daily cap $5.00 reached: $4.97 spent, $0.05 reserved" (or "monthly cap", or
 * "tier fast daily cap").  amount 0 always succeeds (nothing to reserve). */
long budget_reserve(budget *b, const rf_config *cfg, const char *tier, double amount,
                    rf_err *err);

/* Give a reservation back (the hop failed or was never sent).  Unknown ids are ignored. */
void budget_release(budget *b, long reservation);

typedef struct budget_record {
    const char *id;          /* unique per settled request (job key + generation + time) */
    const char *tier;
    const char *tag;         /* NULL = none */
    const char *provider;    /* config provider name that served */
    const char *model;
    double cost;             /* USD; ignored when !has_cost */
    int has_cost;            /* 0: price unknown, counted as a request with cost null */
    long prompt_tokens, completion_tokens;   /* -1 unknown */
    int64_t at_ms;           /* when it was settled */
} budget_record;

/* Release the reservation (if > 0) and append the record to the ledger (not fsync'd:
 * see above).  A record with an id already in the ledger is not counted again. */
int budget_settle(budget *b, long reservation, const budget_record *rec, rf_err *err);

/* Would a new prompt for tier be refused right now because a cap is already used up
 * by settled spend (spent >= cap)?  0 = fine; -1 with EDQUOT and the message otherwise.
 * Lets open()/write() of a prompt fail early with "Disk quota exceeded". */
int budget_check_admission(budget *b, const rf_config *cfg, const char *tier, rf_err *err);

/* spend.json: {"currency":"USD","total","today","this_month","reserved",
 *   "caps":{"daily":{"cap","spent","reserved","remaining"}|null,"monthly":{...}|null,
 *           "tiers":{"T":{...}}},
 *   "requests":{"total","today","this_month","unpriced"},
 *   "by_tier":{...},"by_tag":{...},"by_provider":{...},"by_model":{...}}  (each breakdown:
 *   NAME -> {"total","today","this_month","requests"}).  malloc'd, ends with '\n'. */
char *budget_spend_json(budget *b, const rf_config *cfg);

/* One line for `status`, e.g. "spend: today $0.12 of $5.00 daily (2%), month $3.40 of
 * $100.00 (3%), $0.05 reserved; 2 requests without a known price".  malloc'd, no '\n'. */
char *budget_status_line(budget *b, const rf_config *cfg);

/* Totals for metrics: spent today, this month; reserved now. */
void budget_totals(budget *b, double *today, double *month, double *reserved);

#endif
