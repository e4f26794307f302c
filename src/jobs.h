/* jobs.h — jobs: one per prompt file.  Their states, the per-tier queues and concurrency
 * limits, readers waiting on unfinished results, durable completion and recovery.
 *
 * A job is named by its key, the prompt's path inside the mount ("tier/tag/name").  Only
 * unfinished jobs live in memory; a finished job is its files in the store
 * (tiers/KEY.out|.meta|.err), which is what the filesystem reads.
 *
 * Thread-safety: every function takes the jobs lock itself.  Callbacks (wake, changed)
 * are called without it. */
#ifndef RF_JOBS_H
#define RF_JOBS_H

#include <stddef.h>
#include <sys/types.h>
#include "budget.h"
#include "commit.h"
#include "config.h"
#include "job.h"
#include "router.h"
#include "store.h"
#include "upstream.h"

/* A reader whose job ended: the edge (fs.c) re-runs the read.  req is opaque here. */
typedef void (*jobs_wake_fn)(void *req, const char *key, off_t off, size_t size);
/* The daemon changed the results of key: drop kernel caches for them. */
typedef void (*jobs_changed_fn)(const char *key);

/* What the job machinery works with; all borrowed, all outlive jobs_shutdown. */
typedef struct jobs_deps {
    store *st;
    upstream *up;
    rf_breakers *breakers;
    committer *commit;
    budget *budget;
    jobs_wake_fn wake;
    jobs_changed_fn changed;
} jobs_deps;

int jobs_init(const jobs_deps *deps, rf_err *err);
/* Cancel timers, answer every waiting reader with EINTR-equivalent wake, free all. */
void jobs_shutdown(void);

/* The config new jobs start under (takes a reference of its own). */
void jobs_set_config(rf_config *cfg);
/* A new reference to the current config; release with config_unref. */
rf_config *jobs_config(void);

/* Prompt lifecycle, driven by the filesystem. */
void jobs_prompt_open_write(const char *key);   /* a writer opened/created the prompt */
void jobs_prompt_close_write(const char *key);  /* a writer released it */
void jobs_prompt_installed(const char *key);    /* complete prompt renamed into place */
/* A writer released the prompt after a refused write (why: one line): the job fails with
 * that reason once the last writer is gone, and nothing is sent. */
void jobs_prompt_refused(const char *key, const char *why);
void jobs_prompt_removed(const char *key);      /* prompt deleted: cancel, remove results */

/* Resume every prompt in the store that has no result (after a crash or remount). */
void jobs_recover(void);

/* Is there an unfinished job for key?  Fills *state when so. */
int jobs_active(const char *key, job_state *state);
/* NAME.meta of an unfinished job (malloc'd), NULL when none is active. */
char *jobs_meta(const char *key);

/* Readers of NAME.out — see fs.c for the protocol with fuse_req_interrupt_func:
 *   jobs_wait_begin:  1 = registered (not yet armed), 0 = no active job: read now.
 *   jobs_wait_arm:    after registering the interrupt callback.  Returns
 *                     JOBS_WAIT_ARMED (the wake callback will come), JOBS_WAIT_ENDED (read
 *                     now), or JOBS_WAIT_INTERRUPTED (answer EINTR now).
 *   jobs_wait_interrupt: from the interrupt callback; 1 = caller must answer EINTR. */
enum { JOBS_WAIT_ARMED = 0, JOBS_WAIT_ENDED, JOBS_WAIT_INTERRUPTED };
int jobs_wait_begin(const char *key, void *req, off_t off, size_t size);
int jobs_wait_arm(void *req);
int jobs_wait_interrupt(void *req);

/* Counts of unfinished jobs in a tier by state (index job_state). */
void jobs_tier_counts(const char *tier, int counts[JOB_FAILED + 1]);

/* ---- for runner.c only ---- */
void jobs_lock(void);
void jobs_unlock(void);
/* The job's outcome is decided (j->state DONE or FAILED, fields filled): make it durable,
 * then wake readers.  Lock held.  Writes the result files before it returns. */
void jobs_job_finished(job *j);
/* The same in three steps, so that the disk writes can run without the lock:
 * jobs_finish_prepare (lock held) decides and builds the commit; jobs_finish_stage writes
 * the result files under their staged names (any thread, no lock: recovery can install
 * them from there); jobs_finish_submit hands them to the committer, which installs them
 * unless the job was rewritten or removed meanwhile, then wakes readers.  prepare returns
 * NULL when out of memory (logged); stage and submit accept NULL. */
commit_item *jobs_finish_prepare(job *j);
void jobs_finish_stage(commit_item *item);
void jobs_finish_submit(commit_item *item);
/* The job was just parked (j->park_count, j->next_attempt_ms set): record its schedule
 * in the store so that a remount keeps it.  Lock held. */
void jobs_job_parked(job *j);
/* A parked job's timer fired: queue it again for a tier slot.  Lock held. */
void jobs_job_requeue(job *j);
/* The job left RUNNING (parked): free its tier slot.  Lock held. */
void jobs_job_release_slot(job *j);
/* Drop one reference (lock held); frees the job at zero. */
void jobs_job_unref(job *j);

#endif
