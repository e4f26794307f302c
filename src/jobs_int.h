/* jobs_int.h — what jobs.c shares with its helpers: jobs_life.c (a prompt's writers),
 * jobs_report.c (attempt reports and commits), jobs_wait.c (readers waiting on NAME.out)
 * and recover.c (resuming jobs at mount).  Not a public API. */
#ifndef RF_JOBS_INT_H
#define RF_JOBS_INT_H

#include "hmap.h"
#include "jobs.h"
#include "runner.h"
#include "store_ledger.h"

void jobs_lock(void);
void jobs_unlock(void);
int jobs_lock_held(void);       /* for assertions */

/* The job for key in the table, or NULL.  Lock held. */
job *jobs_find(const char *key);
/* The job attempt att runs for: by key, else (renamed meanwhile) the one that holds att;
 * else whatever key names (or NULL): then att is not its current attempt. */
job *jobs_find_attempt(const char *key, const attempt *att);

/* Wakes decided under the lock, delivered after it (jobs_wait.c). */
typedef struct pending_wake pending_wake;

/* ---- side effects decided under the lock, carried out after it (jobs.c) ---- */

typedef enum { A_GO, A_CANCEL, A_RELEASE, A_TIMER, A_COMMIT, A_STATE, A_CHANGED } act_kind;

typedef struct act {
    act_kind kind;
    struct act *next;
    attempt *att;              /* A_GO, A_CANCEL, A_RELEASE */
    job *j;                    /* A_TIMER (held) */
    struct act *tprev, *tnext; /* A_TIMER, armed: the pending timers (freed at shutdown) */
    long delay_ms;
    unsigned timer_seq;
    job_commit *commit;        /* A_COMMIT (owned) */
    char *key;                 /* A_STATE, A_CHANGED (owned) */
    int64_t gen, next_ms;
    prompt_state pstate;
    int park_count;
} act;

typedef struct actions {
    act *head, **tail;
    pending_wake *wakes;
} actions;

#define ACTIONS_INIT(a) { NULL, &(a).head, NULL }

/* Queue a side effect (NULL when out of memory: logged; the watchdog covers jobs). */
act *act_add(actions *acts, act_kind kind);
/* Carry them out; call without the lock. */
void run_actions(actions *acts);
void note_changed(actions *acts, const char *key);

/* ---- the job record and its states (jobs.c; lock held) ---- */

job *job_for_key(const char *key);                  /* created (WRITING) if absent */
int job_set_key(job *j, const char *key);
void job_unref(job *j);
void job_set_state(job *j, job_state to);
void job_clear_outcome(job *j);
void job_stop(job *j, actions *acts);               /* cancel, disarm, leave queue/slot */
void job_fail(job *j, const char *why, actions *acts);
void enqueue(job *j, actions *acts);
/* A job of tier t (in cfg) queued now would start at once: a free slot, nothing queued. */
int tier_would_start(const char *tier, const rf_config *cfg, const rf_tier *t);
void arm_timer(job *j, long delay_ms, actions *acts);
void table_remove(job *j);
int jobs_stopping(void);
hmap *jobs_table(void);                              /* the table, for iteration */
store *jobs_store(void);
rf_breakers *jobs_breakers(void);
/* The router's decision carried out (jobs.c); queue the commit of a COMMITTING job. */
void job_apply_decision(job *j, const route_decision *d, actions *acts);
void job_submit_commit(job *j, actions *acts);
/* jobs_report.c: the runner's report callback, and the commit's. */
void jobs_on_attempt_report(attempt *att, attempt_plan *plan, attempt_report *r);
void jobs_on_commit_done(job_commit *c, int status, const rf_err *err);
/* Move j to another key in the table: 0, or -1 when out of memory (j then left it). */
int job_rekey(job *j, const char *to);
/* Count one more job re-sent after a crash (add 1), or read the count (add 0). */
long jobs_resent_count(int add);
/* jobs_life.c */
void job_take_content(job *j, int64_t gen, job_input *in, actions *acts);
void job_start(job *j, actions *acts);
/* A new config is in force: the unfinished jobs of tiers it no longer has are cancelled
 * (their request aborted on the wire) and fail.  Lock held. */
void jobs_cancel_removed_tiers(const rf_config *cfg, actions *acts);

/* ---- waiting readers (jobs_wait.c) ---- */


/* Detach every waiter of j: armed ones go onto *wakes to be answered with the result of
 * generation gen (0 = none: EIO); ones still arming are told to read for themselves.
 * Lock held. */
void waiters_collect(job *j, int64_t gen, pending_wake **wakes);
/* Answer them (no lock held). */
void waiters_deliver(pending_wake *wakes, jobs_wake_fn wake, int shutting_down);
/* Armed waiters left unanswered by a failed allocation (the watchdog; lock held). */
void waiters_sweep(pending_wake **wakes);
/* At shutdown: every waiter still registered, detached (lock held). */
void waiters_collect_all(pending_wake **wakes);

/* ---- recovery (recover.c) ---- */

/* A prompt found unfinished in the store at mount: take it back into the table (started,
 * parked or marked incomplete as its row says).  Returns 1 when a job was started. */
int jobs_resume(const char *key, const prompt_row *row, job_input *in, int resend_ok);

#endif
