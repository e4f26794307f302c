/* store_ledger.h — what a finished job leaves in the state store, committed together:
 * its results, its ledger rows and their daily totals, its activity line and its
 * providers' daily attempt counts.  Also the activity log as a file, events, prices and
 * small named values.
 *
 * A finished job is one job_commit: its answer and its bill go into the same
 * transaction, so they can never be separated, and the commit is durable (one WAL sync
 * per group) and held while the store fails, so a paid answer is never dropped.  A
 * commit for a prompt that was rewritten or deleted meanwhile still records its ledger
 * rows (the provider billed them) and leaves the prompt alone. */
#ifndef RF_STORE_LEDGER_H
#define RF_STORE_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "store.h"
#include "store_prompts.h"

/* One billed request.  Every string is owned (ledger_row_clear frees them). */
typedef struct ledger_row {
    char *ref;              /* unique: "tier/p#gen#n", the meta's ledger_id */
    int64_t at_ms;
    char *path;             /* the prompt, or NULL */
    char *tier, *tag;       /* tag NULL = none */
    char *provider, *model; /* the config provider and the model sent */
    char *upstream;         /* who served inside it (OpenRouter's "provider"), or NULL */
    int has_cost;           /* 0: no price known, counted as unpriced */
    int64_t cost_nusd;      /* nano-USD */
    int estimated;          /* the cost is routefs's estimate, not the provider's report */
    char *note;             /* why estimated ("no usage reported", ...), or NULL */
    long prompt_tokens, completion_tokens;   /* -1 unknown */
} ledger_row;

void ledger_row_clear(ledger_row *r);

/* One attempt of a job, for the providers' daily counts. */
typedef struct attempt_stat {
    char *provider;         /* owned */
    int failed;
    int fell_back;          /* the job gave up on this provider for a later hop */
    long latency_ms;
    int64_t at_ms;
} attempt_stat;

/* Upper bounds (ms) of the latency buckets b0..b8 of provider_days; b9 is the rest. */
#define STORE_LATENCY_BUCKETS 10
extern const long store_latency_bounds_ms[STORE_LATENCY_BUCKETS - 1];

typedef struct job_commit job_commit;
struct job_commit {
    store_op op;            /* first; internal */
    /* The results; path NULL = ledger rows only. */
    char *path;             /* owned */
    int64_t gen;
    prompt_state state;     /* PS_DONE or PS_FAILED */
    int64_t finished_ms;
    char *out;              /* owned (PS_DONE) */
    size_t out_len;
    char *meta;             /* owned: compact JSON */
    char *err;              /* owned (PS_FAILED): one line */
    char *activity;         /* owned: one JSON line (its '\n' added when missing), or NULL */
    char *event;            /* owned: the line for M/events (not stored), or NULL */
    ledger_row *ledger;     /* owned array */
    size_t nledger;
    attempt_stat *attempts; /* owned array */
    size_t nattempts;
    /* Outcome, then the callback (writer thread); the commit is freed after it. */
    int installed;          /* the prompt row took the results (still that generation) */
    void (*on_done)(job_commit *c, int status, const rf_err *err);
    void *ud;
};

job_commit *job_commit_new(void);             /* zeroed; NULL when out of memory */
void job_commit_free(job_commit *c);
/* Takes ownership: held and durable; on_done once it is in the database. */
void sl_submit(store *st, job_commit *c);

/* ---- spend, read back at mount ---- */

typedef struct spend_day_row {
    int64_t day;            /* UTC day number (ms / 86400000) */
    const char *tier, *tag, *provider, *model, *upstream;   /* "" = none */
    int64_t nusd;
    long requests, unpriced, estimated;
} spend_day_row;

int sl_fold_spend(store *st, int (*fn)(const spend_day_row *r, void *ud), void *ud,
                  rf_err *err);

/* ---- activity.jsonl ---- */

/* The file's size (bytes from the oldest kept line to the end). */
int64_t sl_activity_size(store *st);
/* Up to size bytes from offset off of the file into buf: bytes copied, or -errno. */
long sl_activity_read(store *st, int64_t off, char *buf, size_t size, rf_err *err);
/* Forget lines older than before_ms (asynchronous). */
void sl_activity_prune(store *st, int64_t before_ms);

/* ---- events, prices, named values ---- */

/* kind e.g. "breaker_open", "breaker_close", "store_failing"; asynchronous, best effort. */
void sl_event(store *st, const char *kind, const char *provider, const char *model,
              const char *detail);

typedef struct price_row {
    const char *model, *provider, *source;   /* provider "" = any; source "openrouter" |
                                                 "observed" */
    double prompt_per_m, completion_per_m, request_usd;
    int64_t updated_ms;
} price_row;
/* Replace every row of source with rows (synchronous, on the caller's thread). */
int sl_prices_replace(store *st, const char *source, const price_row *rows, size_t n,
                      rf_err *err);
/* Insert or update one row (asynchronous). */
void sl_price_put(store *st, const price_row *row);
int sl_prices_load(store *st, int (*fn)(const price_row *r, void *ud), void *ud, rf_err *err);

/* A named value (JSON text), e.g. "openrouter.key". */
void sl_kv_put(store *st, const char *key, const char *value);
/* malloc'd value, or NULL (absent: *updated_ms 0). */
char *sl_kv_get(store *st, const char *key, int64_t *updated_ms);

#endif
