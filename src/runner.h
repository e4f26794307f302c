/* runner.h — executes one attempt of a job and reports its outcome, once.
 *
 * jobs.c decides (with router.c) which hop to try; it hands the runner an attempt plan:
 * copies and references of everything the attempt needs, so the runner never touches
 * the job table.  The runner works on the upstream loop thread: it waits for the
 * provider's limits (plimit.h), asks the breaker, reserves the worst case against the
 * caps in force now (budget.h, prices.h), builds the request (openai.c), sends it
 * (upstream.c), reads the answer as it streams (stream.c, feeding NAME.live), classifies
 * it (router_classify), settles its cost (cost.h) and reports to jobs.c through the
 * report callback.  It decides nothing about fallback.
 *
 * A cancelled attempt (the prompt was rewritten or deleted) is aborted on the wire; what
 * it had streamed is billed as an estimate and reported as AR_CANCELLED. */
#ifndef RF_RUNNER_H
#define RF_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "budget.h"
#include "config.h"
#include "live.h"
#include "openai.h"
#include "router.h"
#include "store.h"
#include "store_ledger.h"
#include "upstream.h"

typedef struct attempt attempt;

/* What one attempt is to do.  Built under the jobs lock; every field owned or held. */
typedef struct attempt_plan {
    char *key;               /* the prompt's mount path */
    int64_t gen;
    char *tier_name, *tag;   /* tag NULL = none */
    blob *prompt;            /* held */
    char **params;           /* owned copy: request parameters the prompt uses */
    size_t nparams;
    rf_config *route_cfg;    /* held: the config the job started under (route, tier) */
    const rf_tier *tier;     /* inside route_cfg */
    size_t hop_index;
    int attempt_no;          /* 1-based, on this hop */
    unsigned seq;            /* the job's attempt number, for the ledger reference */
    live_buf *live;          /* held: reset at start, fed as the answer streams */
} attempt_plan;

void attempt_plan_free(attempt_plan *p);

typedef enum {
    AR_ANSWER = 0,   /* a request was sent: outcome says how it went */
    AR_SKIPPED,      /* not sent: this hop cannot be used now (error says why) */
    AR_REFUSED,      /* not sent: the job cannot run at all (a cap, an unusable prompt) */
    AR_CANCELLED     /* cancelled: only what was billed matters */
} attempt_kind;

typedef struct attempt_report {
    attempt_kind kind;
    rf_outcome outcome;      /* AR_ANSWER */
    int timed_out;           /* any kind of timeout (whole, first token, stall) */
    long http_status;        /* 0 when none */
    long retry_after_ms;     /* -1 when absent */
    long latency_ms;
    int64_t sent_ms;         /* wall clock */
    long tokens;             /* content chunks received, -1 unknown */
    long retry_in_ms;        /* AR_SKIPPED: > 0 = this hop again after that long */
    int hops_covered;        /* route hops the request covered (OpenRouter "models"), >= 1 */
    int served_offset;       /* success: the covered hop that served is hop_index + this */
    char error[640];         /* one line when not a success */
    char error_detail[OPENAI_DETAIL_MAX];   /* "" or what OpenRouter's error body says about
                                the providers it tried (openai_error_info.detail_json) */
    openai_completion comp;  /* AR_ANSWER success: the answer (owned) */
    /* billing: set when this attempt was billed (success, or a cancelled stream) */
    int billed;
    ledger_row ledger;       /* owned */
} attempt_report;

/* Called once per attempt, on the loop thread, without any lock.  Takes ownership of
 * plan and of what report holds (attempt_report_clear frees it). */
typedef void (*runner_report_fn)(attempt *a, attempt_plan *plan, attempt_report *report);

void attempt_report_clear(attempt_report *r);

typedef struct runner_deps {
    upstream *up;
    rf_breakers *breakers;
    budget *budget;
    store *store;
    runner_report_fn report;
    /* The config in force now: caps and prices are those at the moment of each send. */
    rf_config *(*current_config)(void);
} runner_deps;

void runner_init(const runner_deps *deps);
/* After upstream_stop: free what attempts still hold (their callbacks never run). */
void runner_shutdown(void);

/* An attempt for plan (takes it), not started yet: memory only, so it may be made under
 * the jobs lock.  Two references: the runner's and the caller's (runner_release).  NULL
 * when out of memory (plan freed). */
attempt *runner_new(attempt_plan *plan);
/* Start it on the loop thread.  Call without the jobs lock. */
void runner_go(attempt *a);
/* Abort an attempt, from any thread, without waiting: its report (AR_CANCELLED, or the
 * answer if it came first) still arrives.  Call without the jobs lock. */
void runner_cancel(attempt *a);
void runner_release(attempt *a);

/* For status: attempts in flight and streamed tokens of all running attempts. */
size_t runner_in_flight(void);

#endif
