/* runner.h — drives one job through its tier's route: picks hops (router_next_hop),
 * builds requests (openai.c), sends them (upstream.c), classifies outcomes
 * (router_classify), retries, falls back, parks.  Callbacks run on the upstream loop
 * thread under the jobs lock. */
#ifndef RF_RUNNER_H
#define RF_RUNNER_H

#include "budget.h"
#include "job.h"
#include "router.h"
#include "upstream.h"

void runner_init(upstream *up, rf_breakers *breakers, budget *b);

/* Start (or restart, after parking) the job's attempts.  Lock held; j->state becomes
 * RUNNING. */
void runner_start(job *j);

/* Park the job until at_ms (wall-clock ms) and record its schedule in the store; it
 * then joins the tier queue.  For a job parked before a remount (park_count restored).
 * Lock held; the job holds no tier slot. */
void runner_park_until(job *j, int64_t at_ms);

/* Stop everything in flight for the job (its generation was already bumped, so any
 * callback already under way drops itself).  Lock held. */
void runner_cancel(job *j);

/* After upstream_stop: free what in-flight attempts and timers held (their callbacks
 * will never run).  Lock not held. */
void runner_shutdown(void);

#endif
