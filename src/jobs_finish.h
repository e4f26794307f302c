/* jobs_finish.h — what a job leaves behind: the hops it records as it goes, and, once
 * decided, the commit of its result (meta, .out or .err, activity line, ledger row,
 * providers' daily counts).  Internal to jobs.c; every function runs under the jobs lock
 * and does no I/O. */
#ifndef RF_JOBS_FINISH_H
#define RF_JOBS_FINISH_H

#include "job.h"
#include "store_ledger.h"

/* Append an attempt to the job's hops (a failed allocation loses the line, not the job). */
void jobs_record_hop(job *j, const char *provider, const char *model, long status,
                     const char *error, const char *detail, long latency_ms, int64_t at_ms,
                     long tokens);

/* "all 2 hops failed: a/m1: HTTP 503 ...; b/m2: connection refused".  malloc'd. */
char *jobs_exhausted_message(const job *j);

/* The commit of a decided job (state COMMITTING, outcome fields filled): the completion
 * text and the ledger row move into it.  NULL when out of memory (the job is unchanged
 * and may try again). */
job_commit *jobs_finish_build(job *j);

/* A commit of ledger rows alone (a stale or cancelled attempt's bill); takes the row. */
job_commit *jobs_ledger_commit(ledger_row *row);

#endif
