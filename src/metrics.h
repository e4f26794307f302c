/* metrics.h — monotonic counters and a latency histogram for metrics.prom (Prometheus
 * text exposition format 0.0.4).
 *
 * The runner, the job table, the budget, the breakers and the store count what happens;
 * vfiles.c renders the gauges (jobs by state, provider_up, spend, caps) and appends
 * metrics_render()'s text.  Counters live for the daemon's lifetime (Prometheus handles
 * resets).  Thread-safe (one mutex).
 *
 * Families rendered by metrics_render (each with # HELP and # TYPE, always, even before
 * its first sample, so that dashboards and alert rules find the name):
 *   routefs_jobs_total{tier,outcome}                 counter  jobs ended: done, failed
 *   routefs_attempts_total{tier,provider,outcome}    counter  attempts, by router outcome
 *   routefs_retries_total{tier,provider}             counter  attempts followed by a retry
 *   routefs_fallbacks_total{tier,from}               counter  jobs that fell back from a provider
 *   routefs_spend_usd_total{tier,provider,model}     counter  USD settled (exact to 1e-9)
 *   routefs_breaker_transitions_total{provider,model,to}  counter  breaker state changes
 *   routefs_store_failures_total                     counter  state-store operations that failed
 *   routefs_attempt_duration_seconds{tier,provider}  histogram  attempt latency
 * Label values are escaped as the format says (\\, \", \n). */
#ifndef RF_METRICS_H
#define RF_METRICS_H

/* One attempt on a hop finished: outcome is router_outcome_name's ("success", "retry",
 * "next-hop", "next-hop-down", "fail-job").  latency_ms < 0: not measured (no histogram
 * sample). */
void metrics_attempt(const char *tier, const char *provider, const char *outcome,
                     long latency_ms);
/* A job ended: outcome "done" or "failed". */
void metrics_job(const char *tier, const char *outcome);
/* A job fell back from provider to a later hop of tier's route. */
void metrics_fallback(const char *tier, const char *provider);
/* A cost was settled: usd for tier, the provider that served and its model.  Negative,
 * NaN, infinite and absurd (> $1e9) amounts are ignored: a counter never goes down.  Kept
 * in nano-USD, so sums are exact.  A 0 cost still creates the series (free models show).
 * Call it where budget_settle records a cost (has_cost), once per settled record. */
void metrics_spend(const char *tier, const char *provider, const char *model, double usd);
/* A breaker changed state.  model NULL or "" = the provider-wide breaker (label model="").
 * to: "open", "half_open" or "closed" (RF_BREAKER_OPEN, _HALF_OPEN, _CLOSED). */
void metrics_breaker(const char *provider, const char *model, const char *to);
/* A state-store operation failed (a write, commit or sync that the store reported). */
void metrics_store_failure(void);

/* value escaped for a label value of the exposition format (\\, \", \n), for the gauges
 * that vfiles.c renders; malloc'd (caller frees), NULL when out of memory.  NULL -> "". */
char *metrics_label_value(const char *value);

/* The exposition text of every family above; malloc'd (caller frees), NULL when out of
 * memory. */
char *metrics_render(void);

/* Free everything (at shutdown; tests call it between cases). */
void metrics_reset(void);

#endif
