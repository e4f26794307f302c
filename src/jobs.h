/* jobs.h — the job table: one job per prompt whose answer is not settled yet.
 *
 * jobs.c owns every job's state: each change goes through one function (job_set_state)
 * that asserts the lock is held and the transition is allowed.  A job lives in memory
 * from the moment its prompt has new content until its result is durable in the store;
 * then it leaves (finished jobs are rows of the store, read on demand).  The per-tier
 * queues and concurrency limits, the decisions after each attempt (with router.c), the
 * commits of results and the readers waiting for them (jobs_wait.c) are here too.
 *
 * Threads: FUSE workers call the prompt lifecycle functions (through prompts.c, which
 * serialises each prompt's operations and does its store I/O first); the runner reports
 * attempts on the upstream loop thread; the store's writer reports commits.  Nothing
 * here does disk, database or network I/O, reads a key file or parses a prompt while
 * holding the jobs lock: side effects decided under the lock are carried out after it
 * is released.
 *
 * Lock order (outermost first):
 *   prompt stripe locks (prompts.c)  ->  the jobs lock  ->  leaf locks (the store's queue,
 *   budget, breakers, plimit, live buffers, upstream's inbox, keycap, the openrouter and
 *   shared modules' queues, metrics, the log).
 * The wake and changed callbacks are called with no lock held. */
#ifndef RF_JOBS_H
#define RF_JOBS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "blob.h"
#include "budget.h"
#include "config.h"
#include "job.h"
#include "live.h"
#include "router.h"
#include "store.h"
#include "store_prompts.h"
#include "upstream.h"

/* A reader whose job ended: the edge (fs.c) answers it; gen is the generation whose
 * result to read (0 when there is none: answer EIO).  req is opaque here. */
typedef void (*jobs_wake_fn)(void *req, const char *key, int64_t gen, off_t off, size_t size,
                             int shutting_down);
/* The daemon changed the results of key: drop kernel caches for them. */
typedef void (*jobs_changed_fn)(const char *key);

/* What the job machinery works with; all borrowed, all outlive jobs_shutdown. */
typedef struct jobs_deps {
    store *st;
    upstream *up;
    rf_breakers *breakers;
    budget *budget;
    jobs_wake_fn wake;
    jobs_changed_fn changed;
} jobs_deps;

int jobs_init(const jobs_deps *deps, rf_err *err);
/* Stop dispatching, cancel what is in flight, answer every waiting reader (EINTR), free
 * the table and the timers that never fired (call it after upstream_stop).  Unfinished
 * jobs stay pending in the store and resume at the next mount. */
void jobs_shutdown(void);

/* The config new jobs start under (takes a reference of its own); caps and prices are
 * always read from the one in force at each send. */
void jobs_set_config(rf_config *cfg);
/* A new reference to the current config (release with config_unref); never blocks on
 * the jobs lock. */
rf_config *jobs_config(void);

/* ---- the prompt lifecycle (prompts.c, under the prompt's stripe lock) ---- */

/* A prompt's content with what was parsed from it outside the lock (owned; the jobs
 * functions move what they keep out of it and free the rest with job_input_clear). */
typedef struct job_input {
    blob *content;       /* held; NULL or empty = an empty prompt */
    char **params;       /* request parameters the prompt uses (openai_request_params) */
    size_t nparams;
} job_input;

/* Parse content's parameters (call without any lock); takes a reference of content. */
void job_input_make(job_input *in, blob *content);
void job_input_clear(job_input *in);

/* A writer opened key; row is what the store holds for it now. */
void jobs_writer_opened(const char *key, const prompt_row *row);
/* A writer's flush stored new content as generation gen: the job for older content (if
 * any) is cancelled; the new one starts when the last writer closes.  content NULL or
 * empty: an empty prompt, no job. */
void jobs_content_changed(const char *key, int64_t gen, job_input *in);
/* The last writer closed key. */
void jobs_writer_closed(const char *key);
/* 1 when key's job, were its last writer to close now, would start at once: new content,
 * one writer, a free slot in its tier and nothing queued there.  A hint (the store then
 * commits the close without gathering, up to 10 ms sooner); it may be stale at once. */
int jobs_would_start_now(const char *key);
/* A complete prompt arrived at key as generation gen (renamed in from scratch space, or a
 * re-run): start it now. */
void jobs_prompt_installed(const char *key, int64_t gen, job_input *in);
/* A writer closed key after a refused write (too large: why): stored as generation gen,
 * it fails with why once the last writer is gone, and nothing is sent. */
void jobs_prompt_refused(const char *key, int64_t gen, job_input *in, const char *why);
/* The prompt of generation gen at key is gone (deleted or replaced): cancel its job. */
void jobs_prompt_removed(const char *key, int64_t gen);
/* The prompt moved from one path to another (its row and results moved with it). */
void jobs_prompt_renamed(const char *from, const char *to);

/* ---- what the mount shows ---- */

/* Is there an unfinished job for key?  Fills *state and *gen when so. */
int jobs_active(const char *key, job_state *state, int64_t *gen);
/* NAME.meta of an unfinished job (malloc'd, pretty), NULL when none is active. */
char *jobs_meta(const char *key);
/* The live buffer of key's running attempt (held: live_unref), NULL when none. */
live_buf *jobs_live(const char *key);
/* Counts of unfinished jobs in a tier by state (index job_state). */
void jobs_tier_counts(const char *tier, int counts[JOB_FAILED + 1]);
/* Tokens streamed so far by running jobs, and how many are running. */
void jobs_streaming(long *tokens, int *running);
/* Jobs re-sent after the last recovery because a crash caught their request in flight. */
long jobs_resent_after_recovery(void);
/* Jobs failed at the last recovery instead (resend_in_flight false; recover.c). */
long jobs_not_resent_after_recovery(void);

/* ---- readers of NAME.out (jobs_wait.c; see fs.c for the protocol) ----
 *   jobs_wait_begin:  1 = registered (not yet armed), 0 = no active job: read now.
 *   jobs_wait_arm:    after registering the interrupt callback: JOBS_WAIT_ARMED (the wake
 *                     callback will come), JOBS_WAIT_ENDED (read now), or
 *                     JOBS_WAIT_INTERRUPTED (answer EINTR now).
 *   jobs_wait_interrupt: from the interrupt callback; 1 = the caller must answer EINTR. */
enum { JOBS_WAIT_ARMED = 0, JOBS_WAIT_ENDED, JOBS_WAIT_INTERRUPTED };
int jobs_wait_begin(const char *key, void *req, off_t off, size_t size);
int jobs_wait_arm(void *req);
int jobs_wait_interrupt(void *req);

/* ---- the store ---- */

/* The store's health changed (its listener): resume dispatch when it works again. */
void jobs_store_health(int failing, void *ud);

/* Resume every unfinished job in the store (recover.c, at mount). */
void jobs_recover(void);

#endif
