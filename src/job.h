/* job.h — the job record shared by jobs.c (lifecycle, queues, readers), runner.c (hop
 * attempts) and meta.c (its JSON form).  Not a public API: everything else goes through
 * jobs.h.  Every field is protected by the jobs lock (jobs_lock()/jobs_unlock()). */
#ifndef RF_JOB_H
#define RF_JOB_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"

typedef enum {
    JOB_WRITING = 0,   /* prompt open for writing; starts on last release */
    JOB_QUEUED,        /* waiting for a tier slot */
    JOB_RUNNING,       /* attempts in progress (incl. backoff waits) */
    JOB_PARKED,        /* every hop failed; whole route retried later */
    JOB_COMMITTING,    /* result being made durable */
    JOB_DONE,
    JOB_FAILED
} job_state;

const char *job_state_name(job_state s);

typedef struct job_hop {
    char *provider;        /* config provider name */
    char *model;
    long status;           /* HTTP status, 0 when none */
    char *error;           /* one line, or NULL on success */
    long latency_ms;
    int attempt;           /* 1-based attempt number on this hop */
    int64_t at_ms;         /* wall clock when sent */
} job_hop;

typedef struct waiter waiter;

typedef struct job {
    char *key;             /* mount-relative prompt path: "tier/tag.../name" */
    char *tier_name;       /* first component of key */
    char *tag;             /* directories between tier and name joined by '/', or NULL */
    char *name;            /* last component */
    job_state state;
    unsigned generation;   /* bumped on rewrite/removal: stale callbacks compare it */
    int writers;           /* open write handles on the prompt */
    int refs;              /* table + in-flight attempt/timer/commit each hold one */
    int in_table;          /* still the current job for key */

    rf_config *cfg;        /* the config the job started under (held) */
    const rf_tier *tier;   /* inside cfg */
    char *prompt;          /* owned bytes of the prompt */
    size_t prompt_len;
    uint64_t prompt_hash;  /* FNV-1a of the prompt, recorded in the meta */
    char **params;         /* request parameters used, for require_parameters */
    size_t nparams;

    size_t hop_index;      /* current hop in tier->route */
    int hop_attempts;      /* attempts made on the current hop */
    int hop_sent;          /* a request really left for the current hop */
    int park_count;        /* times parked so far */
    int64_t next_attempt_ms; /* parked: when the route is retried */
    long upstream_id;      /* request in flight, 0 = none */
    long timer_id;         /* backoff/park timer, 0 = none */
    char *slot_provider;   /* holds an in-flight slot on this provider (plimit.h), owned */
    unsigned seed;         /* jitter PRNG state */

    job_hop *hops;         /* every attempt, in order */
    size_t nhops, caphops;

    /* outcome */
    char *served_provider; /* response "provider", else config provider name */
    char *served_endpoint; /* config provider name that served */
    char *served_model;    /* response "model", else the hop's model */
    long prompt_tokens, completion_tokens;
    double cost;
    int has_cost;
    int fallback;          /* served by a hop other than the route's first */
    char *ledger_id;       /* the served attempt's ledger record id (owned) */
    char *error;           /* failure reason, one line */
    char *content;         /* the completion text until it is committed (owned) */
    char *refusal;         /* set while writing: fail with this instead of starting */
    size_t content_len;

    int64_t created_ms, started_ms, finished_ms;

    waiter *waiters;       /* readers blocked on NAME.out */
    struct job *queue_next;/* tier queue link */
} job;

/* meta.c: NAME.meta (pretty) and the activity.jsonl line (compact, with '\n').
 * malloc'd; NULL on allocation failure. */
char *job_meta_json(const job *j);
char *job_activity_line(const job *j);

/* ISO-8601 UTC with milliseconds into buf (>= 32 bytes). */
void format_time_ms(int64_t ms, char *buf, size_t len);
int64_t now_wall_ms(void);
int64_t now_mono_ms(void);

#endif
