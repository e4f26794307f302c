/* job.h — the record of one unfinished job, shared by jobs.c (its owner: every state
 * change), jobs_wait.c (readers waiting on it), recover.c and meta.c (its JSON form).
 * The runner never sees it: it gets an attempt plan (runner.h) and reports back.
 *
 * Every field is protected by the jobs lock (jobs_lock_held() asserts it). */
#ifndef RF_JOB_H
#define RF_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "clock.h"
#include "config.h"
#include "live.h"
#include "store_ledger.h"
#include "store_prompts.h"

typedef enum {
    JOB_WRITING = 0,   /* a writer has the prompt open and no job runs: starts at the
                          last close, if the content is new */
    JOB_QUEUED,        /* waiting for a tier slot (or for the store to work again) */
    JOB_RUNNING,       /* attempts in progress (sending, backoff, limits) */
    JOB_PARKED,        /* every hop failed; the whole route is retried later */
    JOB_COMMITTING,    /* decided; the result is being made durable */
    JOB_DONE,          /* these two only on the way out of memory */
    JOB_FAILED
} job_state;

const char *job_state_name(job_state s);

typedef struct job_hop {
    char *provider;        /* config provider name (owned) */
    char *model;           /* owned */
    long status;           /* HTTP status, 0 when none */
    char *error;           /* one line, or NULL on success (owned) */
    char *detail;          /* OpenRouter's error.metadata (previous_errors, availability,
                              provider_name) as compact JSON, or NULL (owned) */
    long latency_ms;
    int attempt;           /* 1-based attempt number on this hop */
    int64_t at_ms;         /* wall clock when sent */
    long tokens;           /* content chunks received (streams), -1 unknown */
} job_hop;

typedef struct waiter waiter;
typedef struct attempt attempt;

typedef struct job {
    char *key;             /* mount path of the prompt: "tier/tag.../name" (owned) */
    char *tier_name;       /* first component of key (owned) */
    char *tag;             /* the directories between tier and name, or NULL (owned) */
    char *name;            /* last component (owned) */
    job_state state;
    int64_t gen;           /* the store's generation of the content this job answers */
    int writers;           /* open write handles on the prompt */
    int refs;              /* the table, a queue, a timer, an attempt, a commit */
    int in_table;

    /* What the store holds for gen when no job runs (a finished prompt being rewritten):
     * restored when the new content turns out to be the same. */
    prompt_state stored_state;
    int content_new;       /* gen is new content that has not run yet */
    char *refusal;         /* the content must not run: the job fails with this (owned) */

    blob *prompt;          /* the content (held), NULL until known */
    uint64_t prompt_hash;
    char **params;         /* request parameters used, for require_parameters (owned) */
    size_t nparams;
    rf_config *cfg;        /* the config the job started under: its route (held) */
    const rf_tier *tier;   /* inside cfg */

    /* routing */
    size_t hop_index;      /* current hop in tier->route */
    int hop_attempts;      /* attempts made on the current hop */
    int hop_sent;          /* a request really left for the current hop */
    int park_count;
    int64_t next_attempt_ms;   /* parked: wall clock of the next try */
    attempt *attempt;      /* in flight (runner-owned; the job holds a reference) */
    long timer_id;         /* sequence of the armed timer: a stale one fires into nothing */
    int timer_armed;       /* a timer will fire (the watchdog restarts jobs left without) */
    int commit_submitted;  /* COMMITTING: its commit is queued in the store */
    unsigned seq;          /* attempts started, for ledger references */
    unsigned seed;         /* jitter PRNG state */
    live_buf *live;        /* what the current attempt has streamed (held) */
    int resent;            /* re-sent after a crash that caught it in flight */

    job_hop *hops;         /* every attempt, in order (owned) */
    size_t nhops, caphops;

    /* outcome */
    char *served_provider; /* response "provider", else the config provider (owned) */
    char *served_endpoint; /* config provider that served (owned) */
    char *served_model;    /* response "model", else the hop's model (owned) */
    char *generation_id;   /* OpenRouter's id of the answer, for or_enrich (owned) */
    char *service_tier;    /* the answer's "service_tier", or NULL (owned) */
    char *or_metadata;     /* the answer's "openrouter_metadata" (compact JSON) or NULL (owned) */
    long prompt_tokens, completion_tokens;
    int64_t cost_nusd;
    int has_cost, cost_estimated;
    char *cost_note;       /* why the cost is an estimate (owned) */
    int fallback;          /* served by a hop other than the route's first */
    char *ledger_ref;      /* the served attempt's ledger reference (owned) */
    ledger_row bill;       /* the served attempt's ledger row, committed with the result */
    int billed;
    char *error;           /* failure reason, one line (owned) */
    char *content;         /* the completion until it is committed (owned) */
    size_t content_len;

    int64_t created_ms, started_ms, finished_ms;

    waiter *waiters;       /* readers blocked on NAME.out */
    struct job *queue_next;/* tier queue link */
} job;

/* meta.c: NAME.meta (pretty), malloc'd; NULL on allocation failure. */
char *job_meta_json(const job *j, int pretty);
/* The finished job's NAME.meta (pretty) and its activity.jsonl line (compact, with its
 * '\n'), both malloc'd: 0, or -1 with both NULL on allocation failure. */
int job_meta_and_activity(const job *j, char **meta, char **activity);
/* The line M/events shows when the job ends (compact, no '\n'). */
char *job_event_line(const job *j);


#endif
