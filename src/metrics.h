/* metrics.h — counters and a latency histogram for metrics.prom (Prometheus text format).
 *
 * The runner counts what happens; vfiles.c renders it.  Counters live for the daemon's
 * lifetime (Prometheus handles resets).  Thread-safe. */
#ifndef RF_METRICS_H
#define RF_METRICS_H

/* One attempt on a hop finished: outcome is router_outcome_name's ("success", "retry",
 * "next-hop", "next-hop-down", "fail-job"). */
void metrics_attempt(const char *tier, const char *provider, const char *outcome,
                     long latency_ms);
/* A job ended: outcome "done" or "failed". */
void metrics_job(const char *tier, const char *outcome);
/* A job fell back from provider to a later hop of tier's route. */
void metrics_fallback(const char *tier, const char *provider);

/* Append the exposition text of every counter and the histogram; malloc'd. */
char *metrics_render(void);

/* Free everything (at shutdown). */
void metrics_reset(void);

#endif
