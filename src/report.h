/* report.h — report.html: one self-contained page (inline SVG and CSS, no script, nothing
 * fetched from the network) about spend, providers, breakers and jobs, rendered from the
 * state database (STATE/routefs.db; the schema is store_schema.c's).
 *
 * The mount serves it as MOUNT/report.html; `routefs report STATE > report.html` renders
 * the same page without a mount, from a read-only connection.
 *
 * Every string that comes from the database (paths, model and provider names, errors) is
 * HTML-escaped by one function (report_out.c).  Days are UTC days (day = at_ms / 86400000),
 * as in spend_days and provider_days. */
#ifndef RF_REPORT_H
#define RF_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

#include "config.h"
#include "err.h"

#define REPORT_DEFAULT_DAYS 30
#define REPORT_MAX_DAYS 366
/* provider_days.b0 .. b9: attempts with latency <= 100, 250, 500, 1000, 2500, 5000, 10000,
 * 30000, 60000 ms, and the rest (STORE_LATENCY_BOUNDS_MS in store_ledger.h). */
#define REPORT_LATENCY_BUCKETS 10

typedef struct report_opts {
    int days;                 /* days of history in the charts, 1..REPORT_MAX_DAYS */
    double daily_cap_usd;     /* < 0 = no daily cap */
    double monthly_cap_usd;   /* < 0 = no monthly cap */
    const rf_config *cfg;     /* borrowed, may be NULL: when set, its tier caps are shown */
    const char *title;        /* NULL = "routefs report" */
    const char *state_dir;    /* shown in the header; NULL = not shown */
    int64_t now_ms;           /* "now", ms since the epoch (UTC); 0 = the real clock */
} report_opts;

/* Defaults: 30 days, the caps of cfg (none when cfg is NULL), cfg kept for tier caps,
 * the given now_ms (0 = the real clock). */
void report_opts_init(report_opts *o, const rf_config *cfg, int64_t now_ms);

/* The page, malloc'd and NUL-terminated (caller frees), its length in *len.  Reads db in
 * one read transaction (BEGIN .. COMMIT; when db is already in a transaction, in that
 * one) and never writes.  NULL with err: EINVAL for bad options, EIO with SQLite's message
 * (e.g. "no such table: ledger" for a database that is not a routefs state store),
 * ENOMEM. */
char *report_render(sqlite3 *db, const report_opts *o, size_t *len, rf_err *err);

/* Estimate the q-quantile (0 < q < 1) of a latency histogram (buckets as above), as
 * Prometheus's histogram_quantile does: find the bucket that holds the q·N-th attempt and
 * interpolate linearly inside it.  Returns 0 with the estimate in *ms; 1 when it falls in
 * the first bucket (*ms = 100: "≤ 100 ms", there is no lower bound worth interpolating
 * from); 2 when it falls in the last, open bucket (*ms = 60000: "> 60 s"); -1 when the
 * histogram is empty. */
int report_latency_quantile(const int64_t buckets[REPORT_LATENCY_BUCKETS], double q,
                            double *ms);

/* `routefs report STATE [--config FILE] [--days N]` (argv[0] is "report"): the page on
 * stdout.  Opens STATE/routefs.db with SQLITE_OPEN_READONLY; the caps come from --config
 * FILE, else STATE/config.json when it exists.  Exit status 0, 1 on an error (one line on
 * stderr), 2 on a usage error. */
int report_main(int argc, char **argv);

#endif
