/* report_impl.h — what the report's files share (not public: see report.h).
 *
 *   report_out.c   the page buffer, THE one HTML escaper, money / date formatting
 *   report_data.c  loads everything the page shows from the state database (read-only SQL)
 *   report_svg.c   the inline-SVG charts and gauges
 *   report.c       the public API, the page's sections, `routefs report`
 *
 * Money is carried as nano-USD (int64, the ledger's unit) until it is printed. */
#ifndef RF_REPORT_IMPL_H
#define RF_REPORT_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

#include "err.h"
#include "report.h"
#include "strbuf.h"

#define DAY_MS 86400000LL

/* How much of each kind of row the page shows: the page stays bounded whatever the
 * database holds. */
#define RP_MAX_TIERS_STACKED 8     /* tiers drawn in the daily chart; the rest is "other" */
#define RP_MAX_BREAKDOWN 25        /* rows per spend breakdown table */
#define RP_MAX_PROVIDERS 20        /* providers in the request / latency section */
#define RP_MAX_PROVIDER_CHARTS 12  /* of them, with a per-day chart */
#define RP_MAX_EVENTS 20           /* last breaker openings listed */
#define RP_MAX_COSTLY 20           /* most expensive requests */
#define RP_MAX_JOBS 50             /* parked and failed jobs listed, each */
#define RP_TEXT_MAX 200            /* bytes of a path, model or name shown */
#define RP_ERR_MAX 300             /* bytes of an error line shown */

/* ---- the page buffer (report_out.c) ---- */

/* The page is a strbuf (strbuf.h): sb_put and sb_printf for markup written by the report
 * itself; a failed allocation drops the page. */
/* THE escaper: every string that came from the database (or the config, or the command
 * line) goes through it.  & < > " ' become entities; control characters and bytes that
 * are not UTF-8 become U+FFFD; more than max bytes are cut at a character boundary and
 * end in "…".  Safe in text and in double-quoted attributes.  NULL prints nothing. */
void rp_esc(strbuf *b, const char *s, size_t max);

/* "$12.34", "$20,000.00", "$0.0123", "$0.000012", "$0.00"; buf of at least 32 bytes (an
 * amount too large for it is cut: past $10^20 nothing is sensible); returns buf. */
char *rp_money(char *buf, double usd);
static inline double rp_usd(int64_t nusd) { return (double)nusd / 1e9; }
/* UTC: "2024-05-03" for a day number, "2024-05-03 14:22 UTC" for ms; buf >= 32 bytes. */
char *rp_day(char *buf, int64_t day);
char *rp_time(char *buf, int64_t ms);
/* "≈ 420 ms", "≈ 1.8 s", "≤ 100 ms", "> 60 s", "–": a latency estimate for the page. */
char *rp_latency(char *buf, size_t len, const int64_t buckets[REPORT_LATENCY_BUCKETS], double q);

/* ---- what the page shows (report_data.c) ---- */

typedef struct rp_amount {
    int64_t total, today, month;      /* nano-USD */
    int64_t requests, unpriced, estimated;
} rp_amount;

typedef struct rp_row {
    char *name;                       /* owned */
    rp_amount a;
} rp_row;

typedef struct rp_table {
    rp_row *rows;                     /* owned, n of them, by total spend descending */
    size_t n;
    size_t more;                      /* rows not loaded (past the limit) */
    rp_amount rest;                   /* their sum */
} rp_table;

typedef struct rp_provider {
    char *name;                       /* owned */
    int64_t *requests, *failures, *fallbacks;   /* owned, one per day of the window */
    int64_t total_requests, total_failures, total_fallbacks, latency_ms_sum;
    int64_t buckets[REPORT_LATENCY_BUCKETS];
    int64_t breaker_opens;            /* in the window */
} rp_provider;

typedef struct rp_count {
    char *name;                       /* owned */
    int64_t count, last_ms;
} rp_count;

typedef struct rp_event {
    int64_t at_ms;
    char *provider, *model, *detail;  /* owned, may be NULL */
} rp_event;

typedef struct rp_costly {
    char *path, *tier, *provider, *model, *upstream;   /* owned, may be NULL */
    int64_t nusd, at_ms;
    int estimated;
} rp_costly;

typedef struct rp_job {
    char *path, *err;                 /* owned; err is its first line, may be NULL */
    int64_t when_ms;                  /* parked: next attempt; failed: when it finished */
    int64_t park_count;
} rp_job;

typedef struct rp_data {
    int days;                         /* the window: days first_day .. today */
    int64_t now_ms, today, first_day, month_start;
    int has_ledger;                   /* 0: "no spend yet" */
    rp_amount all;                    /* every day */

    char *tiers[RP_MAX_TIERS_STACKED + 1];   /* owned; last may be "other" */
    size_t ntiers;
    int64_t *daily;                   /* owned: days x ntiers nano-USD, row-major by day */

    rp_table by_tier, by_provider, by_model, by_tag, by_upstream;

    rp_provider *providers;           /* owned, by requests in the window, descending */
    size_t nproviders, providers_more;

    rp_count *opens;                  /* breaker openings in the window, by provider */
    size_t nopens;
    int64_t opens_total;              /* in the window */
    rp_event *events;                 /* the last RP_MAX_EVENTS openings, newest first */
    size_t nevents;
    int64_t store_failures, store_failure_last_ms;   /* in the window */
    int store_failing_now;            /* the last store event is "store_failing" */

    rp_costly *costly;
    size_t ncostly;

    rp_job *parked, *failed;
    size_t nparked, nfailed;
    int64_t parked_total, failed_total;
} rp_data;

/* Fill d (zeroed by the caller) from db for the window of days ending at now_ms's UTC day.
 * Runs in the caller's read transaction.  -1 with err (EIO and SQLite's message, e.g. a
 * database without the routefs schema). */
int rp_load(sqlite3 *db, int days, int64_t now_ms, rp_data *d, rf_err *err);
void rp_data_free(rp_data *d);

/* ---- the charts (report_svg.c) ---- */

/* Spend per UTC day stacked by tier, the daily cap (< 0: none) as a dashed line. */
void rp_svg_daily(strbuf *b, const rp_data *d, double daily_cap_usd);
/* A horizontal gauge: spent against cap (< 0: no cap, the bar shows spend only). */
void rp_svg_gauge(strbuf *b, const char *id, const char *label, int64_t spent_nusd,
                  double cap_usd);
/* Requests, failures and fallbacks per day of one provider. */
void rp_svg_provider_days(strbuf *b, const rp_data *d, const rp_provider *p);
/* The latency histogram of one provider (ten bars). */
void rp_svg_latency(strbuf *b, const rp_provider *p);
/* The fill colour of tier i in the stacked chart (and its legend). */
const char *rp_tier_colour(size_t i);

#endif
