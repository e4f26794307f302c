/* report_data.c — everything report.html shows, read from the state database with
 * read-only SQL (the schema is store_schema.c's; see the lead's notes).  Spend comes from
 * spend_days (the ledger's totals per UTC day), the costliest requests from the ledger,
 * requests/failures/latency from provider_days, breakers from events, jobs from prompts.
 * Every list is bounded (report_impl.h), so the page is too. */
#include "report_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A prepared statement; q_step turns SQLite's errors into rf_err. */
typedef struct q {
    sqlite3_stmt *st;
} q;

static int q_prepare(sqlite3 *db, q *s, const char *sql, rf_err *err)
{
    if (sqlite3_prepare_v2(db, sql, -1, &s->st, NULL) != SQLITE_OK) {
        s->st = NULL;
        return rf_err_set(err, EIO, "state database: %s", sqlite3_errmsg(db));
    }
    return 0;
}

/* SQLITE_ROW: 1, SQLITE_DONE: 0, anything else -1 with err. */
static int q_step(sqlite3 *db, q *s, rf_err *err)
{
    int rc = sqlite3_step(s->st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return rf_err_set(err, EIO, "state database: %s", sqlite3_errmsg(db));
}

static void q_done(q *s)
{
    sqlite3_finalize(s->st);
    s->st = NULL;
}

/* Column text copied (owned), NULL for SQL NULL; *oom set when the copy failed. */
static char *col_text(q *s, int i, int *oom)
{
    const unsigned char *t = sqlite3_column_text(s->st, i);
    if (!t)
        return NULL;
    char *c = strdup((const char *)t);
    if (!c)
        *oom = 1;
    return c;
}

/* The first line of a column's text (owned), without its "\n". */
static char *col_first_line(q *s, int i, int *oom)
{
    char *t = col_text(s, i, oom);
    if (t)
        t[strcspn(t, "\r\n")] = '\0';
    return t;
}

static int oom_err(rf_err *err)
{
    return rf_err_set(err, ENOMEM, "report: out of memory");
}

/* ---- spend ---- */

/* One group of spend_days rows: total, today, this month, request counts. */
#define AMOUNT_COLUMNS                                                                  \
    "SUM(nusd), SUM(CASE WHEN day = ?1 THEN nusd ELSE 0 END), "                         \
    "SUM(CASE WHEN day BETWEEN ?2 AND ?1 THEN nusd ELSE 0 END), "                       \
    "SUM(requests), SUM(unpriced), SUM(estimated)"

static void read_amount(q *s, int first, rp_amount *a)
{
    a->total = sqlite3_column_int64(s->st, first);
    a->today = sqlite3_column_int64(s->st, first + 1);
    a->month = sqlite3_column_int64(s->st, first + 2);
    a->requests = sqlite3_column_int64(s->st, first + 3);
    a->unpriced = sqlite3_column_int64(s->st, first + 4);
    a->estimated = sqlite3_column_int64(s->st, first + 5);
}

static void add_amount(rp_amount *to, const rp_amount *a)
{
    to->total += a->total;
    to->today += a->today;
    to->month += a->month;
    to->requests += a->requests;
    to->unpriced += a->unpriced;
    to->estimated += a->estimated;
}

static void bind_days(q *s, const rp_data *d)
{
    sqlite3_bind_int64(s->st, 1, d->today);
    sqlite3_bind_int64(s->st, 2, d->month_start);
}

static int load_totals(sqlite3 *db, rp_data *d, rf_err *err)
{
    q s;
    if (q_prepare(db, &s, "SELECT " AMOUNT_COLUMNS " FROM spend_days", err) < 0)
        return -1;
    bind_days(&s, d);
    int rc = q_step(db, &s, err);
    if (rc == 1)
        read_amount(&s, 0, &d->all);
    q_done(&s);
    if (rc < 0)
        return -1;
    if (q_prepare(db, &s, "SELECT EXISTS(SELECT 1 FROM ledger)", err) < 0)
        return -1;
    rc = q_step(db, &s, err);
    if (rc == 1)
        d->has_ledger = sqlite3_column_int(s.st, 0);
    q_done(&s);
    return rc < 0 ? -1 : 0;
}

/* A breakdown by one spend_days column (a fixed name from this file, never input). */
static int load_breakdown(sqlite3 *db, rp_data *d, const char *column, rp_table *t,
                          rf_err *err)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT %s, " AMOUNT_COLUMNS " FROM spend_days GROUP BY %s "
             "ORDER BY 2 DESC, 1",
             column, column);
    q s;
    if (q_prepare(db, &s, sql, err) < 0)
        return -1;
    bind_days(&s, d);
    if (!(t->rows = calloc(RP_MAX_BREAKDOWN, sizeof *t->rows))) {
        q_done(&s);
        return oom_err(err);
    }
    int rc, oom = 0;
    while ((rc = q_step(db, &s, err)) == 1) {
        rp_amount a;
        read_amount(&s, 1, &a);
        if (t->n < RP_MAX_BREAKDOWN) {
            t->rows[t->n].name = col_text(&s, 0, &oom);
            t->rows[t->n++].a = a;
        } else {
            t->more++;
            add_amount(&t->rest, &a);
        }
    }
    q_done(&s);
    if (rc < 0)
        return -1;
    return oom ? oom_err(err) : 0;
}

static int tier_index(const rp_data *d, const char *tier)
{
    for (size_t i = 0; i < d->ntiers; i++)
        if (d->tiers[i] && strcmp(d->tiers[i], tier) == 0)
            return (int)i;
    return -1;
}

/* The stacked daily chart: the RP_MAX_TIERS_STACKED tiers that spent most in the window
 * get their own colour, the rest are summed as "other". */
static int load_daily(sqlite3 *db, rp_data *d, rf_err *err)
{
    q s;
    if (q_prepare(db, &s,
                  "SELECT tier, SUM(nusd) FROM spend_days WHERE day BETWEEN ?1 AND ?2 "
                  "GROUP BY tier ORDER BY 2 DESC, 1", err) < 0)
        return -1;
    sqlite3_bind_int64(s.st, 1, d->first_day);
    sqlite3_bind_int64(s.st, 2, d->today);
    int rc, oom = 0, other = 0;
    while ((rc = q_step(db, &s, err)) == 1) {
        if (d->ntiers < RP_MAX_TIERS_STACKED)
            d->tiers[d->ntiers++] = col_text(&s, 0, &oom);
        else
            other = 1;
    }
    q_done(&s);
    if (rc < 0)
        return -1;
    if (other && !(d->tiers[d->ntiers++] = strdup("other")))
        oom = 1;
    if (oom)
        return oom_err(err);
    if (!(d->daily = calloc((size_t)d->days * (d->ntiers ? d->ntiers : 1), sizeof *d->daily)))
        return oom_err(err);
    if (q_prepare(db, &s,
                  "SELECT day, tier, SUM(nusd) FROM spend_days WHERE day BETWEEN ?1 AND ?2 "
                  "GROUP BY day, tier", err) < 0)
        return -1;
    sqlite3_bind_int64(s.st, 1, d->first_day);
    sqlite3_bind_int64(s.st, 2, d->today);
    while ((rc = q_step(db, &s, err)) == 1) {
        int64_t day = sqlite3_column_int64(s.st, 0);
        const char *tier = (const char *)sqlite3_column_text(s.st, 1);
        int ti = tier ? tier_index(d, tier) : -1;
        if (ti < 0)
            ti = other ? (int)d->ntiers - 1 : -1;
        if (ti >= 0 && day >= d->first_day && day <= d->today)
            d->daily[(size_t)(day - d->first_day) * d->ntiers + (size_t)ti] +=
                sqlite3_column_int64(s.st, 2);
    }
    q_done(&s);
    return rc < 0 ? -1 : 0;
}

/* ---- providers: requests, failures, fallbacks, latency; breaker openings ---- */

static rp_provider *find_provider(rp_data *d, const char *name)
{
    for (size_t i = 0; name && i < d->nproviders; i++)
        if (strcmp(d->providers[i].name, name) == 0)
            return &d->providers[i];
    return NULL;
}

static int load_providers(sqlite3 *db, rp_data *d, rf_err *err)
{
    q s;
    if (q_prepare(db, &s,
                  "SELECT provider, SUM(requests) FROM provider_days WHERE day BETWEEN ?1 AND ?2 "
                  "GROUP BY provider ORDER BY 2 DESC, 1", err) < 0)
        return -1;
    sqlite3_bind_int64(s.st, 1, d->first_day);
    sqlite3_bind_int64(s.st, 2, d->today);
    if (!(d->providers = calloc(RP_MAX_PROVIDERS, sizeof *d->providers))) {
        q_done(&s);
        return oom_err(err);
    }
    int rc, oom = 0;
    while ((rc = q_step(db, &s, err)) == 1) {
        if (d->nproviders >= RP_MAX_PROVIDERS) {
            d->providers_more++;
            continue;
        }
        rp_provider *p = &d->providers[d->nproviders];
        p->name = col_text(&s, 0, &oom);
        p->requests = calloc((size_t)d->days, sizeof *p->requests);
        p->failures = calloc((size_t)d->days, sizeof *p->failures);
        p->fallbacks = calloc((size_t)d->days, sizeof *p->fallbacks);
        d->nproviders++;
        if (!p->name || !p->requests || !p->failures || !p->fallbacks)
            oom = 1;
    }
    q_done(&s);
    if (rc < 0)
        return -1;
    if (oom)
        return oom_err(err);
    if (q_prepare(db, &s,
                  "SELECT day, provider, requests, failures, fallbacks, latency_ms_sum, "
                  "b0, b1, b2, b3, b4, b5, b6, b7, b8, b9 FROM provider_days "
                  "WHERE day BETWEEN ?1 AND ?2", err) < 0)
        return -1;
    sqlite3_bind_int64(s.st, 1, d->first_day);
    sqlite3_bind_int64(s.st, 2, d->today);
    while ((rc = q_step(db, &s, err)) == 1) {
        rp_provider *p = find_provider(d, (const char *)sqlite3_column_text(s.st, 1));
        if (!p)
            continue;
        size_t day = (size_t)(sqlite3_column_int64(s.st, 0) - d->first_day);
        p->requests[day] += sqlite3_column_int64(s.st, 2);
        p->failures[day] += sqlite3_column_int64(s.st, 3);
        p->fallbacks[day] += sqlite3_column_int64(s.st, 4);
        p->total_requests += sqlite3_column_int64(s.st, 2);
        p->total_failures += sqlite3_column_int64(s.st, 3);
        p->total_fallbacks += sqlite3_column_int64(s.st, 4);
        p->latency_ms_sum += sqlite3_column_int64(s.st, 5);
        for (int b = 0; b < REPORT_LATENCY_BUCKETS; b++)
            p->buckets[b] += sqlite3_column_int64(s.st, 6 + b);
    }
    q_done(&s);
    return rc < 0 ? -1 : 0;
}

static int load_events(sqlite3 *db, rp_data *d, rf_err *err)
{
    int64_t since = d->first_day * DAY_MS;
    q s;
    if (q_prepare(db, &s,
                  "SELECT COALESCE(provider, ''), COUNT(*), MAX(at_ms) FROM events "
                  "WHERE kind = 'breaker_open' AND at_ms >= ?1 GROUP BY 1 ORDER BY 2 DESC, 1",
                  err) < 0)
        return -1;
    sqlite3_bind_int64(s.st, 1, since);
    if (!(d->opens = calloc(RP_MAX_PROVIDERS, sizeof *d->opens))) {
        q_done(&s);
        return oom_err(err);
    }
    int rc, oom = 0;
    while ((rc = q_step(db, &s, err)) == 1) {
        int64_t n = sqlite3_column_int64(s.st, 1);
        d->opens_total += n;
        rp_provider *p = find_provider(d, (const char *)sqlite3_column_text(s.st, 0));
        if (p)
            p->breaker_opens = n;
        if (d->nopens < RP_MAX_PROVIDERS) {
            rp_count *c = &d->opens[d->nopens++];
            c->name = col_text(&s, 0, &oom);
            c->count = n;
            c->last_ms = sqlite3_column_int64(s.st, 2);
        }
    }
    q_done(&s);
    if (rc < 0)
        return -1;
    if (q_prepare(db, &s,
                  "SELECT at_ms, provider, model, detail FROM events WHERE kind = 'breaker_open' "
                  "ORDER BY at_ms DESC, id DESC LIMIT ?1", err) < 0)
        return -1;
    sqlite3_bind_int(s.st, 1, RP_MAX_EVENTS);
    if (!(d->events = calloc(RP_MAX_EVENTS, sizeof *d->events))) {
        q_done(&s);
        return oom_err(err);
    }
    while ((rc = q_step(db, &s, err)) == 1 && d->nevents < RP_MAX_EVENTS) {
        rp_event *e = &d->events[d->nevents++];
        e->at_ms = sqlite3_column_int64(s.st, 0);
        e->provider = col_text(&s, 1, &oom);
        e->model = col_text(&s, 2, &oom);
        e->detail = col_first_line(&s, 3, &oom);
    }
    q_done(&s);
    if (rc < 0)
        return -1;
    if (q_prepare(db, &s,
                  "SELECT COUNT(*), MAX(at_ms) FROM events "
                  "WHERE kind = 'store_failing' AND at_ms >= ?1", err) < 0)
        return -1;
    sqlite3_bind_int64(s.st, 1, since);
    if ((rc = q_step(db, &s, err)) == 1) {
        d->store_failures = sqlite3_column_int64(s.st, 0);
        d->store_failure_last_ms = sqlite3_column_int64(s.st, 1);
    }
    q_done(&s);
    if (rc < 0)
        return -1;
    if (q_prepare(db, &s,
                  "SELECT kind FROM events WHERE kind IN ('store_failing', 'store_ok') "
                  "ORDER BY at_ms DESC, id DESC LIMIT 1", err) < 0)
        return -1;
    if ((rc = q_step(db, &s, err)) == 1) {
        const char *k = (const char *)sqlite3_column_text(s.st, 0);
        d->store_failing_now = k && strcmp(k, "store_failing") == 0;
    }
    q_done(&s);
    if (rc < 0)
        return -1;
    return oom ? oom_err(err) : 0;
}

/* ---- the costliest requests, and the jobs that need a look ---- */

static int load_costly(sqlite3 *db, rp_data *d, rf_err *err)
{
    q s;
    if (q_prepare(db, &s,
                  "SELECT path, tier, provider, model, upstream, cost_nusd, estimated, at_ms "
                  "FROM ledger WHERE at_ms >= ?1 AND cost_nusd IS NOT NULL "
                  "ORDER BY cost_nusd DESC, at_ms DESC LIMIT ?2", err) < 0)
        return -1;
    sqlite3_bind_int64(s.st, 1, d->first_day * DAY_MS);
    sqlite3_bind_int(s.st, 2, RP_MAX_COSTLY);
    if (!(d->costly = calloc(RP_MAX_COSTLY, sizeof *d->costly))) {
        q_done(&s);
        return oom_err(err);
    }
    int rc, oom = 0;
    while ((rc = q_step(db, &s, err)) == 1 && d->ncostly < RP_MAX_COSTLY) {
        rp_costly *c = &d->costly[d->ncostly++];
        c->path = col_text(&s, 0, &oom);
        c->tier = col_text(&s, 1, &oom);
        c->provider = col_text(&s, 2, &oom);
        c->model = col_text(&s, 3, &oom);
        c->upstream = col_text(&s, 4, &oom);
        c->nusd = sqlite3_column_int64(s.st, 5);
        c->estimated = sqlite3_column_int(s.st, 6) != 0;
        c->at_ms = sqlite3_column_int64(s.st, 7);
    }
    q_done(&s);
    if (rc < 0)
        return -1;
    return oom ? oom_err(err) : 0;
}

/* Jobs in one state: how many, and the first RP_MAX_JOBS in the given order. */
static int load_jobs(sqlite3 *db, int state, const char *sql_list, rp_job **out, size_t *n,
                     int64_t *total, rf_err *err)
{
    q s;
    if (q_prepare(db, &s, "SELECT COUNT(*) FROM prompts WHERE state = ?1", err) < 0)
        return -1;
    sqlite3_bind_int(s.st, 1, state);
    int rc = q_step(db, &s, err);
    if (rc == 1)
        *total = sqlite3_column_int64(s.st, 0);
    q_done(&s);
    if (rc < 0)
        return -1;
    if (q_prepare(db, &s, sql_list, err) < 0)
        return -1;
    sqlite3_bind_int(s.st, 1, state);
    sqlite3_bind_int(s.st, 2, RP_MAX_JOBS);
    if (!(*out = calloc(RP_MAX_JOBS, sizeof **out))) {
        q_done(&s);
        return oom_err(err);
    }
    int oom = 0;
    while ((rc = q_step(db, &s, err)) == 1 && *n < RP_MAX_JOBS) {
        rp_job *j = &(*out)[(*n)++];
        j->path = col_text(&s, 0, &oom);
        j->err = col_first_line(&s, 1, &oom);
        j->when_ms = sqlite3_column_int64(s.st, 2);
        j->park_count = sqlite3_column_int64(s.st, 3);
    }
    q_done(&s);
    if (rc < 0)
        return -1;
    return oom ? oom_err(err) : 0;
}

/* ---- the window ---- */

static int64_t month_start_day(int64_t now_ms)
{
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return now_ms / DAY_MS;
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (int64_t)timegm(&tm) / 86400;
}

int rp_load(sqlite3 *db, int days, int64_t now_ms, rp_data *d, rf_err *err)
{
    d->days = days;
    d->now_ms = now_ms;
    d->today = now_ms / DAY_MS;
    d->first_day = d->today - days + 1;
    d->month_start = month_start_day(now_ms);
    if (load_totals(db, d, err) < 0 || load_daily(db, d, err) < 0 ||
        load_breakdown(db, d, "tier", &d->by_tier, err) < 0 ||
        load_breakdown(db, d, "provider", &d->by_provider, err) < 0 ||
        load_breakdown(db, d, "model", &d->by_model, err) < 0 ||
        load_breakdown(db, d, "tag", &d->by_tag, err) < 0 ||
        load_breakdown(db, d, "upstream", &d->by_upstream, err) < 0 ||
        load_providers(db, d, err) < 0 || load_events(db, d, err) < 0 ||
        load_costly(db, d, err) < 0)
        return -1;
    if (load_jobs(db, 1,
                  "SELECT path, err, next_attempt_ms, park_count FROM prompts WHERE state = ?1 "
                  "ORDER BY next_attempt_ms, path LIMIT ?2",
                  &d->parked, &d->nparked, &d->parked_total, err) < 0 ||
        load_jobs(db, 4,
                  "SELECT path, err, finished_ms, park_count FROM prompts WHERE state = ?1 "
                  "ORDER BY finished_ms DESC, path LIMIT ?2",
                  &d->failed, &d->nfailed, &d->failed_total, err) < 0)
        return -1;
    return 0;
}

static void free_table(rp_table *t)
{
    for (size_t i = 0; t->rows && i < t->n; i++)
        free(t->rows[i].name);
    free(t->rows);
}

static void free_jobs(rp_job *j, size_t n)
{
    for (size_t i = 0; j && i < n; i++) {
        free(j[i].path);
        free(j[i].err);
    }
    free(j);
}

void rp_data_free(rp_data *d)
{
    for (size_t i = 0; i < d->ntiers; i++)
        free(d->tiers[i]);
    free(d->daily);
    free_table(&d->by_tier);
    free_table(&d->by_provider);
    free_table(&d->by_model);
    free_table(&d->by_tag);
    free_table(&d->by_upstream);
    for (size_t i = 0; d->providers && i < d->nproviders; i++) {
        free(d->providers[i].name);
        free(d->providers[i].requests);
        free(d->providers[i].failures);
        free(d->providers[i].fallbacks);
    }
    free(d->providers);
    for (size_t i = 0; d->opens && i < d->nopens; i++)
        free(d->opens[i].name);
    free(d->opens);
    for (size_t i = 0; d->events && i < d->nevents; i++) {
        free(d->events[i].provider);
        free(d->events[i].model);
        free(d->events[i].detail);
    }
    free(d->events);
    for (size_t i = 0; d->costly && i < d->ncostly; i++) {
        free(d->costly[i].path);
        free(d->costly[i].tier);
        free(d->costly[i].provider);
        free(d->costly[i].model);
        free(d->costly[i].upstream);
    }
    free(d->costly);
    free_jobs(d->parked, d->nparked);
    free_jobs(d->failed, d->nfailed);
    memset(d, 0, sizeof *d);
}
