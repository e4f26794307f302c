/* test_report.c — report.html (report.c, report_data.c, report_svg.c, report_out.c): the
 * page rendered from a state database built here with the store's DDL (cmocka).
 *
 * Each test builds STATE/routefs.db in a fresh directory under /var/tmp with SCHEMA_DDL
 * (a copy of the schema in the lead's notes; src/store_schema.c will be its source: swap
 * the string for that when it lands), inserts rows, renders with a fixed "now", and
 * checks the page: numbers, SVG marks, escaping of hostile strings, no script and no
 * network reference, the empty state, and a 100k-row ledger in bounded time and size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "report.h"
#include "report_impl.h"

/* The time bound of the 100k-row test: ~0.2 s natively; valgrind and the sanitizers are
 * 20-50x slower. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#else
#define SLOW_BUILD 0
#endif

/* The state store's DDL, verbatim (one string, so that it is easy to swap). */
static const char SCHEMA_DDL[] =
    "CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS dirs(  path TEXT PRIMARY KEY, parent TEXT NOT NULL, name TEXT NOT NULL,  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL) WITHOUT ROWID;\n"
    "CREATE INDEX IF NOT EXISTS dirs_by_parent ON dirs(parent);\n"
    "CREATE TABLE IF NOT EXISTS prompts(  id INTEGER PRIMARY KEY,  path TEXT NOT NULL UNIQUE, dir TEXT NOT NULL, name TEXT NOT NULL,  gen INTEGER NOT NULL, state INTEGER NOT NULL, writing INTEGER NOT NULL DEFAULT 0,  size INTEGER NOT NULL, hash INTEGER NOT NULL,  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,  atime_ns INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,  created_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL DEFAULT 0,  park_count INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0,  sent INTEGER NOT NULL DEFAULT 0, out_size INTEGER NOT NULL DEFAULT 0,  meta TEXT, err TEXT, out BLOB, data BLOB NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS prompts_by_dir ON prompts(dir);\n"
    "CREATE UNIQUE INDEX IF NOT EXISTS prompts_by_gen ON prompts(gen);\n"
    "CREATE INDEX IF NOT EXISTS prompts_unfinished ON prompts(state) WHERE state <= 2 OR writing;\n"
    "CREATE TABLE IF NOT EXISTS ledger(  id INTEGER PRIMARY KEY, ref TEXT NOT NULL, at_ms INTEGER NOT NULL,  path TEXT, tier TEXT NOT NULL, tag TEXT, provider TEXT NOT NULL, model TEXT NOT NULL,  upstream TEXT, cost_nusd INTEGER, estimated INTEGER NOT NULL DEFAULT 0, note TEXT,  prompt_tokens INTEGER, completion_tokens INTEGER, host TEXT);\n"
    "CREATE INDEX IF NOT EXISTS ledger_by_time ON ledger(at_ms);\n"
    "CREATE TABLE IF NOT EXISTS spend_days(  day INTEGER NOT NULL, tier TEXT NOT NULL, tag TEXT NOT NULL, provider TEXT NOT NULL,  model TEXT NOT NULL, upstream TEXT NOT NULL,  nusd INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,  unpriced INTEGER NOT NULL DEFAULT 0, estimated INTEGER NOT NULL DEFAULT 0,  PRIMARY KEY(day, tier, tag, provider, model, upstream)) WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS activity(  seq INTEGER PRIMARY KEY, off INTEGER NOT NULL, at_ms INTEGER NOT NULL,  line TEXT NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS activity_by_off ON activity(off);\n"
    "CREATE TABLE IF NOT EXISTS provider_days(  day INTEGER NOT NULL, provider TEXT NOT NULL,  requests INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,  fallbacks INTEGER NOT NULL DEFAULT 0, latency_ms_sum INTEGER NOT NULL DEFAULT 0,  b0 INTEGER NOT NULL DEFAULT 0, b1 INTEGER NOT NULL DEFAULT 0,  b2 INTEGER NOT NULL DEFAULT 0, b3 INTEGER NOT NULL DEFAULT 0,  b4 INTEGER NOT NULL DEFAULT 0, b5 INTEGER NOT NULL DEFAULT 0,  b6 INTEGER NOT NULL DEFAULT 0, b7 INTEGER NOT NULL DEFAULT 0,  b8 INTEGER NOT NULL DEFAULT 0, b9 INTEGER NOT NULL DEFAULT 0,  PRIMARY KEY(day, provider)) WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS events(  id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,  provider TEXT, model TEXT, detail TEXT);\n"
    "CREATE INDEX IF NOT EXISTS events_by_time ON events(at_ms);\n"
    "CREATE TABLE IF NOT EXISTS prices(  model TEXT NOT NULL, provider TEXT NOT NULL, source TEXT NOT NULL,  prompt_per_m REAL NOT NULL, completion_per_m REAL NOT NULL,  request_usd REAL NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL,  PRIMARY KEY(model, provider, source)) WITHOUT ROWID;\n"
    "CREATE TABLE IF NOT EXISTS kv(  key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID;\n";

#define HOSTILE_MODEL "<script>alert(1)</script>"
#define HOSTILE_PATH "fast/\"><img src=x onerror=alert(1)>.txt"

/* "Now" for every test: 2024-05-15 12:00:00 UTC, day 19858; May began on day 19844. */
#define NOW_MS 1715774400000LL
#define TODAY 19858LL
#define MONTH_START 19844LL
#define USD(x) ((long long)((x) * 1e9 + 0.5))

/* ---- fixture: a directory with routefs.db, open read-write for the inserts ---- */

typedef struct fixture {
    char dir[64];
    char path[128];
    sqlite3 *db;
} fixture;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("SQL failed (%s): %.200s", msg ? msg : "?", sql);
    sqlite3_free(msg);
}

static void execf(sqlite3 *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    assert_non_null(sql);
    exec_ok(db, sql);
    sqlite3_free(sql);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/var/tmp/rfs-report-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/routefs.db", fx->dir);
    assert_int_equal(sqlite3_open(fx->path, &fx->db), SQLITE_OK);
    exec_ok(fx->db, "PRAGMA journal_mode=WAL");
    exec_ok(fx->db, SCHEMA_DDL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    sqlite3_close(fx->db);
    nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void spend(sqlite3 *db, long long day, const char *tier, const char *tag,
                  const char *provider, const char *model, const char *upstream, double usd,
                  int requests, int unpriced, int estimated)
{
    execf(db, "INSERT INTO spend_days VALUES (%lld, %Q, %Q, %Q, %Q, %Q, %lld, %d, %d, %d)", day,
          tier, tag, provider, model, upstream, USD(usd), requests, unpriced, estimated);
}

static void ledger(sqlite3 *db, long long at_ms, const char *path, const char *tier,
                   const char *provider, const char *model, const char *upstream, double usd,
                   int estimated)
{
    execf(db, "INSERT INTO ledger(ref, at_ms, path, tier, provider, model, upstream, cost_nusd, "
              "estimated) VALUES ('r%lld-%q', %lld, %Q, %Q, %Q, %Q, %Q, %lld, %d)",
          at_ms, path ? path : "", at_ms, path, tier, provider, model, upstream, USD(usd), estimated);
}

static void prompt(sqlite3 *db, int gen, const char *path, int state, const char *err,
                   long long when_ms)
{
    execf(db, "INSERT INTO prompts(path, dir, name, gen, state, size, hash, mode, uid, gid, "
              "atime_ns, mtime_ns, ctime_ns, created_ms, finished_ms, park_count, "
              "next_attempt_ms, err, data) VALUES (%Q, 'fast', 'x', %d, %d, 1, 0, 420, 0, 0, 0, "
              "0, 0, 0, %lld, %d, %lld, %Q, x'41')",
          path, gen, state, state == 4 ? when_ms : 0, state == 1 ? 2 : 0,
          state == 1 ? when_ms : 0, err);
}

/* The rows most tests use:
 *   today (day 19858): fast/openrouter/openai/gpt-4o $1.50 (3 requests, upstream OpenAI),
 *                      slow/local/llama $0.25 (tag news, 1 request, estimated)
 *   day 19850 (this month): fast/openrouter/anthropic/claude $3.00 (2 requests)
 *   day 19844 (1 May): fast/openrouter/openai/gpt-4o $0.05
 *   day 19843 (30 April): slow/local/llama $0.50
 *   day 19840 (27 April, in the 30-day window): slow/local/llama $2.00
 *   day 19800 (outside the window): fast/openrouter/openai/gpt-4o $10.00
 * Totals: today $1.75, month $4.80, all $17.30, 17 requests. */
static void fill(sqlite3 *db)
{
    exec_ok(db, "BEGIN");
    spend(db, TODAY, "fast", "", "openrouter", "openai/gpt-4o", "OpenAI", 1.5, 3, 0, 0);
    spend(db, TODAY, "slow", "news", "local", "llama", "", 0.25, 1, 0, 1);
    spend(db, 19850, "fast", "", "openrouter", "anthropic/claude", "Anthropic", 3.0, 2, 1, 0);
    spend(db, 19844, "fast", "", "openrouter", "openai/gpt-4o", "OpenAI", 0.05, 1, 0, 0);
    spend(db, 19843, "slow", "", "local", "llama", "", 0.5, 1, 0, 0);
    spend(db, 19840, "slow", "", "local", "llama", "", 2.0, 4, 0, 0);
    spend(db, 19800, "fast", "", "openrouter", "openai/gpt-4o", "OpenAI", 10.0, 5, 0, 0);
    ledger(db, NOW_MS - 3600000, "fast/a.txt", "fast", "openrouter", "openai/gpt-4o", "OpenAI",
           0.9, 0);
    ledger(db, NOW_MS - 7200000, "fast/b.txt", "fast", "openrouter", "openai/gpt-4o", "OpenAI",
           0.6, 0);
    ledger(db, NOW_MS - 60000, "slow/news/c.txt", "slow", "local", "llama", NULL, 0.25, 1);
    ledger(db, (19850 * DAY_MS) + 1000, NULL, "fast", "openrouter", "anthropic/claude",
           "Anthropic", 3.0, 0);
    ledger(db, 19800 * DAY_MS, "fast/old.txt", "fast", "openrouter", "openai/gpt-4o", "OpenAI",
           10.0, 0);
    /* provider_days: openrouter today 8 requests, 2 failures, 1 fallback; 4 in <=100 ms,
     * 4 in 250-500 ms -> p50 "<= 100 ms", p95 ~ 250 + 250 * (7.6 - 4) / 4 = 475 ms */
    exec_ok(db, "INSERT INTO provider_days VALUES (19858, 'openrouter', 8, 2, 1, 1600, "
                "4, 0, 4, 0, 0, 0, 0, 0, 0, 0)");
    exec_ok(db, "INSERT INTO provider_days VALUES (19855, 'local', 5, 0, 0, 9000, "
                "0, 0, 0, 0, 5, 0, 0, 0, 0, 0)");
    exec_ok(db, "INSERT INTO provider_days VALUES (19700, 'ancient', 99, 99, 0, 0, "
                "0, 0, 0, 0, 0, 0, 0, 0, 0, 99)");
    execf(db, "INSERT INTO events(at_ms, kind, provider, model, detail) VALUES "
              "(%lld, 'breaker_open', 'openrouter', 'openai/gpt-4o', '5 failures: HTTP 502'), "
              "(%lld, 'breaker_open', 'openrouter', NULL, 'refused'), "
              "(%lld, 'breaker_close', 'openrouter', NULL, NULL), "
              "(%lld, 'breaker_open', 'local', 'llama', 'timeout'), "
              "(%lld, 'store_failing', NULL, NULL, 'disk full'), "
              "(%lld, 'store_ok', NULL, NULL, NULL)",
          NOW_MS - 600000, NOW_MS - 500000, NOW_MS - 400000, NOW_MS - 86400000LL * 5,
          NOW_MS - 300000, NOW_MS - 200000);
    prompt(db, 1, "fast/parked.txt", 1, "all 2 hops failed: HTTP 503\nsecond line", NOW_MS + 60000);
    prompt(db, 2, "fast/failed.txt", 4, "HTTP 400: bad request\n", NOW_MS - 1000);
    prompt(db, 3, "fast/done.txt", 3, NULL, 0);
    exec_ok(db, "COMMIT");
}

static char *render(sqlite3 *db, double daily, double monthly, size_t *len)
{
    report_opts o;
    report_opts_init(&o, NULL, NOW_MS);
    o.daily_cap_usd = daily;
    o.monthly_cap_usd = monthly;
    o.state_dir = "/var/lib/routefs-test";
    rf_err err;
    rf_err_clear(&err);
    char *page = report_render(db, &o, len, &err);
    if (!page)
        fail_msg("report_render: %s", err.msg);
    assert_int_equal(strlen(page), *len);
    return page;
}

/* The part of page from `id="ID"` to the next "</table>" (or the end); owned. */
static char *region(const char *page, const char *id)
{
    char key[80];
    snprintf(key, sizeof key, "id=\"%s\"", id);
    const char *start = strstr(page, key);
    if (!start)
        fail_msg("no element with %s", key);
    const char *end = strstr(start, "</table>");
    size_t n = end ? (size_t)(end - start) : strlen(start);
    char *r = strndup(start, n);
    assert_non_null(r);
    return r;
}

/* Every needle, in this order, in hay. */
static void assert_in_order(const char *hay, const char *const *needles)
{
    const char *at = hay;
    for (size_t i = 0; needles[i]; i++) {
        const char *p = strstr(at, needles[i]);
        if (!p)
            fail_msg("missing (in order) \"%s\" after: %.300s", needles[i], at);
        at = p + strlen(needles[i]);
    }
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* No script, no event handler, nothing that would load from anywhere: every tag of the
 * page (escaped text has no '<', so these are the real ones) is looked at. */
static void assert_self_contained(const char *page)
{
    static const char *const banned_tags[] = {"<script", "<img", "<link", "<iframe", "<object",
                                              "<embed", "<base", "<form", "<image", "<use",
                                              "<foreignobject", "<audio", "<video", NULL};
    assert_null(strcasestr(page, "http://"));
    assert_null(strcasestr(page, "https://"));
    for (const char *lt = strchr(page, '<'); lt; lt = strchr(lt + 1, '<')) {
        const char *gt = strchr(lt, '>');
        assert_non_null(gt);
        char *tag = strndup(lt, (size_t)(gt - lt + 1));
        assert_non_null(tag);
        for (char *c = tag; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        for (size_t i = 0; banned_tags[i]; i++) {
            size_t n = strlen(banned_tags[i]);
            if (!strncmp(tag, banned_tags[i], n) && (tag[n] == ' ' || tag[n] == '>' || tag[n] == '/'))
                fail_msg("banned tag: %s", tag);
        }
        if (strstr(tag, "src=") || strstr(tag, "href=") || strstr(tag, "url("))
            fail_msg("a reference in: %s", tag);
        for (const char *on = strstr(tag, " on"); on; on = strstr(on + 1, " on")) {
            const char *e = on + 3;
            while (*e >= 'a' && *e <= 'z')
                e++;
            if (*e == '=')
                fail_msg("an event handler in: %s", tag);
        }
        free(tag);
    }
    const char *style = strstr(page, "<style>");
    assert_non_null(style);
    char *css = strndup(style, (size_t)(strstr(style, "</style>") - style));
    assert_null(strstr(css, "url("));
    assert_null(strstr(css, "@import"));
    assert_null(strstr(css, "@font-face"));
    free(css);
    assert_int_equal(count(page, "<style>"), 1);
    assert_non_null(strstr(page, "<meta http-equiv=\"Content-Security-Policy\" "
                                 "content=\"default-src 'none'; style-src 'unsafe-inline'\">"));
}

/* ---- the page ---- */

static void test_spend_numbers(void **state)
{
    fixture *fx = *state;
    fill(fx->db);
    size_t len;
    char *page = render(fx->db, 2.0, 40.0, &len);
    assert_self_contained(page);
    assert_non_null(strstr(page, "Generated 2024-05-15 12:00 UTC"));
    assert_non_null(strstr(page, "<code>/var/lib/routefs-test</code>"));
    assert_non_null(strstr(page, "Caps in force: daily $2.00, monthly $40.00"));
    assert_null(strstr(page, "id=\"no-spend\""));

    char *r = region(page, "today");
    assert_in_order(r, (const char *[]){"$1.75 <span class=\"meta\">of $2.00", "88 %", NULL});
    assert_non_null(strstr(r, "id=\"gauge-today\""));
    assert_non_null(strstr(r, "class=\"fill near\""));   /* 88 %: the warning colour */
    free(r);
    r = region(page, "month");
    assert_in_order(r, (const char *[]){"$4.80 <span class=\"meta\">of $40.00", "12 %", NULL});
    assert_non_null(strstr(r, "class=\"fill ok\""));
    free(r);
    r = region(page, "total");
    assert_in_order(r, (const char *[]){"$17.30", "17 billed requests", "1 with an estimated",
                                        "1 request without a known price", NULL});
    free(r);

    r = region(page, "by-provider");
    assert_in_order(r, (const char *[]){">openrouter</td>", "width:100.0%", "$14.55</td>",
                                        "$1.50</td>", "$4.55</td>", ">11</td>",
                                        ">local</td>", "$2.75</td>", "$0.25</td>",
                                        "$0.25</td>", ">6</td>", NULL});
    free(r);
    r = region(page, "by-tag");
    assert_in_order(r, (const char *[]){"(no tag)", "$17.05", "news", "$0.25", NULL});
    free(r);
    r = region(page, "by-upstream");
    assert_in_order(r, (const char *[]){"OpenAI", "$11.55", "Anthropic", "$3.00",
                                        "(direct, or not reported)", "$2.75", NULL});
    free(r);
    r = region(page, "by-model");
    assert_in_order(r, (const char *[]){"openai/gpt-4o", "anthropic/claude", "llama", NULL});
    free(r);
    free(page);
}

static void test_svg_charts(void **state)
{
    fixture *fx = *state;
    fill(fx->db);
    size_t len;
    char *page = render(fx->db, 2.0, -1, &len);
    /* the daily chart: one bar per (day, tier) with spend in the 30-day window: today
     * fast + slow, days 19850 and 19844 fast, 19843 and 19840 slow; 19800 is outside. */
    assert_non_null(strstr(page, "<svg class=\"chart\" id=\"daily-spend\" viewBox=\"0 0 960 300\""));
    char *chart = strndup(strstr(page, "id=\"daily-spend\""),
                          (size_t)(strstr(strstr(page, "id=\"daily-spend\""), "</svg>") -
                                   strstr(page, "id=\"daily-spend\"")));
    assert_int_equal(count(chart, "<rect class=\"bar\""), 6);
    assert_non_null(strstr(chart, "<title>2024-05-15 fast: $1.50 (day $1.75)</title>"));
    assert_non_null(strstr(chart, "<title>2024-04-27 slow: $2.00 (day $2.00)</title>"));
    assert_null(strstr(chart, "$10.00 (day"));
    assert_int_equal(count(chart, "class=\"cap-line\""), 1);
    assert_non_null(strstr(chart, "daily cap $2.00</text>"));
    free(chart);
    /* no monthly cap: no gauge, "no cap" */
    assert_null(strstr(page, "id=\"gauge-month\""));
    char *r = region(page, "month");
    assert_non_null(strstr(r, "no cap"));
    free(r);
    /* providers: the window's two, per-day charts, latency estimates */
    assert_int_equal(count(page, "<svg class=\"chart provider-days\""), 2);
    assert_int_equal(count(page, "<svg class=\"latency\""), 2);
    assert_null(strstr(page, "ancient"));
    r = region(page, "provider-table");
    assert_in_order(r, (const char *[]){">openrouter</td>", ">8</td>", ">2</td>", "25.0 %",
                                        ">1</td>", "\xE2\x89\xA4 100 ms", "\xE2\x89\x88 475 ms",
                                        "200 ms", NULL});
    assert_in_order(r, (const char *[]){">local</td>", ">5</td>", ">0</td>", "0.0 %",
                                        "\xE2\x89\x88 1.8 s", "\xE2\x89\x88 2.4 s", "1800 ms",
                                        NULL});
    free(r);
    assert_non_null(strstr(page, "id=\"latency-note\""));
    /* breakers: openrouter opened twice (10 and 8 minutes ago), local once 5 days ago */
    r = region(page, "breaker-counts");
    assert_in_order(r, (const char *[]){">openrouter</td>", ">2</td>", "2024-05-15 11:51 UTC",
                                        ">local</td>", ">1</td>", "2024-05-10 12:00 UTC", NULL});
    free(r);
    r = region(page, "breaker-events");
    assert_in_order(r, (const char *[]){"11:51 UTC", "(all models)", "refused",
                                        "11:50 UTC", "openai/gpt-4o", "5 failures: HTTP 502",
                                        "2024-05-10", "timeout", NULL});
    free(r);
    assert_non_null(strstr(page, "The state store failed 1 time"));
    assert_null(strstr(page, "id=\"store-failing\""));   /* store_ok came after */
    /* the costliest requests of the window: $3.00 (prompt removed), $0.90, $0.60, $0.25 est. */
    r = region(page, "costly-table");
    assert_in_order(r, (const char *[]){"(prompt removed)", "$3.00", "fast/a.txt", "$0.90",
                                        "fast/b.txt", "$0.60", "slow/news/c.txt", "$0.25 <span "
                                        "class=\"est\"", NULL});
    assert_null(strstr(r, "old.txt"));
    free(r);
    /* jobs: parked with its next attempt and the first line of its error; failed */
    r = region(page, "parked");
    assert_in_order(r, (const char *[]){"Parked", ": 1</h3>", "fast/parked.txt", "parked (2",
                                        "2024-05-15 12:01 UTC", "all 2 hops failed: HTTP 503",
                                        NULL});
    assert_null(strstr(r, "second line"));
    free(r);
    r = region(page, "failed");
    assert_in_order(r, (const char *[]){": 1</h3>", "fast/failed.txt", "HTTP 400: bad request",
                                        NULL});
    assert_null(strstr(r, "done.txt"));
    free(r);
    free(page);
}

static void test_hostile_strings_escaped(void **state)
{
    fixture *fx = *state;
    exec_ok(fx->db, "BEGIN");
    spend(fx->db, TODAY, "t<b>", "tag&amp;", "p'q", HOSTILE_MODEL, "up\"stream", 1.0, 1, 0, 0);
    ledger(fx->db, NOW_MS - 1000, HOSTILE_PATH, "t<b>", "p'q", HOSTILE_MODEL, "<i>up</i>", 1.0, 0);
    execf(fx->db, "INSERT INTO provider_days(day, provider, requests, b0) VALUES "
                  "(%lld, '</td><script>x()</script>', 1, 1)", TODAY);
    execf(fx->db, "INSERT INTO events(at_ms, kind, provider, model, detail) VALUES "
                  "(%lld, 'breaker_open', '<svg onload=alert(1)>', %Q, "
                  "'<style>body{display:none}</style>')", NOW_MS - 1000, HOSTILE_MODEL);
    /* invalid UTF-8 (a lone continuation byte, a truncated sequence: one U+FFFD each, as
     * browsers decode) and a control character */
    prompt(fx->db, 1, "fast/bad\x80name\xE2\x82.txt", 4, "err \x01 <script>", NOW_MS - 10);
    exec_ok(fx->db, "COMMIT");
    size_t len;
    report_opts o;
    report_opts_init(&o, NULL, NOW_MS);
    o.title = "<b>My</b> \"report\"";
    o.state_dir = "/state/<dir>";
    rf_err err;
    char *page = report_render(fx->db, &o, &len, &err);
    assert_non_null(page);
    assert_self_contained(page);
    assert_null(strstr(page, HOSTILE_MODEL));
    assert_non_null(strstr(page, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_null(strstr(page, "<svg onload"));
    assert_non_null(strstr(page, "&lt;svg onload=alert(1)&gt;"));
    assert_null(strstr(page, "<style>body"));
    assert_null(strstr(page, "<i>up</i>"));
    assert_null(strstr(page, "<b>"));
    assert_non_null(strstr(page, "<title>&lt;b&gt;My&lt;/b&gt; &quot;report&quot;</title>"));
    assert_non_null(strstr(page, "/state/&lt;dir&gt;"));
    assert_non_null(strstr(page, "fast/&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.txt"));
    assert_non_null(strstr(page, "p&#39;q"));
    assert_non_null(strstr(page, "tag&amp;amp;"));
    assert_non_null(strstr(page, "&lt;/td&gt;&lt;script&gt;x()&lt;/script&gt;"));
    assert_non_null(strstr(page, "fast/bad\xEF\xBF\xBDname\xEF\xBF\xBD.txt"));
    assert_non_null(strstr(page, "err \xEF\xBF\xBD &lt;script&gt;"));
    free(page);
}

static void test_empty_database(void **state)
{
    fixture *fx = *state;
    size_t len;
    char *page = render(fx->db, 5.0, 100.0, &len);
    assert_self_contained(page);
    assert_non_null(strstr(page, "id=\"no-spend\""));
    assert_non_null(strstr(page, "No spend yet."));
    assert_null(strstr(page, "id=\"daily-spend\""));
    assert_null(strstr(page, "id=\"by-provider\""));
    char *r = region(page, "today");
    assert_non_null(strstr(r, "$0.00 <span class=\"meta\">of $5.00"));
    free(r);
    assert_non_null(strstr(page, "No requests in these days."));
    assert_non_null(strstr(page, "No breaker opened."));
    r = region(page, "parked");
    assert_non_null(strstr(r, ": 0</h3>"));
    free(r);
    assert_non_null(strstr(page, "</html>\n"));
    free(page);

    /* spend rows without ledger rows (cannot happen, but the ledger decides) */
    spend(fx->db, TODAY, "fast", "", "p", "m", "", 1.0, 1, 0, 0);
    page = render(fx->db, -1, -1, &len);
    assert_non_null(strstr(page, "id=\"no-spend\""));
    assert_non_null(strstr(page, "Caps in force: daily none, monthly none"));
    free(page);
}

static void test_tier_caps_and_days(void **state)
{
    fixture *fx = *state;
    fill(fx->db);
    rf_tier tiers[] = {{.name = "fast", .daily_usd = 1.0}, {.name = "slow", .daily_usd = -1},
                       {.name = "idle", .daily_usd = 3.0}};
    rf_config cfg = {.tiers = tiers, .tiers_len = 3, .daily_usd = 2.0, .monthly_usd = -1,
                     .refcount = 1};
    report_opts o;
    report_opts_init(&o, &cfg, NOW_MS);
    assert_int_equal(o.days, 30);
    assert_true(o.daily_cap_usd == 2.0 && o.monthly_cap_usd < 0);
    o.days = 7;
    size_t len;
    rf_err err;
    char *page = report_render(fx->db, &o, &len, &err);
    assert_non_null(page);
    assert_non_null(strstr(page, "tier fast daily $1.00, tier idle daily $3.00."));
    assert_non_null(strstr(page, "id=\"gauge-tier-0\""));
    assert_non_null(strstr(page, "id=\"gauge-tier-2\""));
    assert_null(strstr(page, "id=\"gauge-tier-1\""));
    /* fast spent $1.50 of its $1.00 today: over */
    assert_in_order(page, (const char *[]){"Tier fast today", "$1.50 <span class=\"meta\">of $1.00",
                                           "150 %", "class=\"fill over\"", NULL});
    /* 7 days: day 19850 (5 May... 8 May) is out, only today's two bars */
    char *chart = strstr(page, "id=\"daily-spend\"");
    assert_non_null(chart);
    assert_int_equal(count(chart, "<rect class=\"bar\""), 2);
    assert_non_null(strstr(page, "last 7 days"));
    free(page);

    o.days = 0;
    assert_null(report_render(fx->db, &o, &len, &err));
    assert_int_equal(err.code, EINVAL);
    o.days = REPORT_MAX_DAYS + 1;
    assert_null(report_render(fx->db, &o, &len, &err));
    assert_int_equal(err.code, EINVAL);
}

static void test_not_a_state_db_and_caller_txn(void **state)
{
    fixture *fx = *state;
    sqlite3 *other;
    char path[160];
    snprintf(path, sizeof path, "%s/other.db", fx->dir);
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    report_opts o;
    report_opts_init(&o, NULL, NOW_MS);
    size_t len;
    rf_err err;
    rf_err_clear(&err);
    assert_null(report_render(other, &o, &len, &err));
    assert_int_equal(err.code, EIO);
    assert_non_null(strstr(err.msg, "no such table"));
    assert_int_equal(sqlite3_get_autocommit(other), 1);   /* the failed read was rolled back */
    sqlite3_close(other);

    /* inside the caller's transaction: rendered in it, and the transaction stays open */
    fill(fx->db);
    exec_ok(fx->db, "BEGIN");
    char *page = report_render(fx->db, &o, &len, &err);
    assert_non_null(page);
    assert_int_equal(sqlite3_get_autocommit(fx->db), 0);
    exec_ok(fx->db, "COMMIT");
    free(page);
}

/* 100k ledger rows over 60 days, 500 models, 50 providers, 5000 events, 3000 parked and
 * 3000 failed jobs: the page stays small and is rendered quickly. */
static void test_huge_ledger_bounded(void **state)
{
    fixture *fx = *state;
    exec_ok(fx->db, "BEGIN");
    execf(fx->db,
          "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 99999) "
          "INSERT INTO ledger(ref, at_ms, path, tier, tag, provider, model, upstream, cost_nusd, "
          "estimated) SELECT 'r' || i, %lld - (i %% 60) * 86400000 - i, "
          "'tier' || (i %% 12) || '/job-' || i || '.txt', 'tier' || (i %% 12), 'tag' || (i %% 40), "
          "'prov' || (i %% 50), 'vendor/model-' || (i %% 500), 'up' || (i %% 30), "
          "1000 + (i * 7919) %% 90000000, i %% 9 = 0 FROM c",
          NOW_MS);
    exec_ok(fx->db,
            "INSERT INTO spend_days SELECT at_ms / 86400000, tier, tag, provider, model, upstream, "
            "SUM(cost_nusd), COUNT(*), 0, SUM(estimated) FROM ledger "
            "GROUP BY 1, 2, 3, 4, 5, 6");
    execf(fx->db,
          "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 2999) "
          "INSERT INTO provider_days(day, provider, requests, failures, fallbacks, b0, b3, b9) "
          "SELECT %lld - i / 50, 'prov' || (i %% 50), 100, i %% 7, i %% 3, 50, 49, 1 FROM c",
          TODAY);
    execf(fx->db,
          "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 4999) "
          "INSERT INTO events(at_ms, kind, provider, model, detail) SELECT %lld - i * 60000, "
          "'breaker_open', 'prov' || (i %% 50), 'vendor/model-' || (i %% 500), 'HTTP 502' FROM c",
          NOW_MS);
    execf(fx->db,
          "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 5999) "
          "INSERT INTO prompts(path, dir, name, gen, state, size, hash, mode, uid, gid, atime_ns, "
          "mtime_ns, ctime_ns, created_ms, finished_ms, next_attempt_ms, err, data) "
          "SELECT 'tier1/p' || i, 'tier1', 'p' || i, i, CASE WHEN i %% 2 THEN 1 ELSE 4 END, 1, 0, "
          "420, 0, 0, 0, 0, 0, 0, %lld - i, %lld + i, 'error ' || i || char(10) || 'more', "
          "zeroblob(1000) FROM c",
          NOW_MS, NOW_MS);
    exec_ok(fx->db, "COMMIT");

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t len;
    char *page = render(fx->db, 500.0, 10000.0, &len);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("[ INFO     ] 100k-row ledger: report rendered in %.3f s, %zu bytes\n", secs, len);
    assert_self_contained(page);
    assert_true(len < 1024 * 1024);
    assert_true(secs < (RUNNING_ON_VALGRIND || SLOW_BUILD ? 40.0 : 3.0));
    char *r = region(page, "by-model");
    assert_int_equal(count(r, "<tr>"), RP_MAX_BREAKDOWN + 2);   /* header, 25 rows, "more" */
    assert_non_null(strstr(r, "475 more"));
    free(r);
    r = region(page, "costly-table");
    assert_int_equal(count(r, "<tr>"), RP_MAX_COSTLY + 1);
    free(r);
    r = region(page, "parked");
    assert_non_null(strstr(r, ": 3,000</h3>"));
    assert_non_null(strstr(r, "2,950 more not shown"));
    free(r);
    r = region(page, "breaker-events");
    assert_int_equal(count(r, "<tr>"), RP_MAX_EVENTS + 1);
    free(r);
    assert_non_null(strstr(page, "30 more providers not shown"));
    assert_int_equal(count(page, "<svg class=\"chart provider-days\""), RP_MAX_PROVIDER_CHARTS);
    assert_int_equal(count(page, "<svg class=\"latency\""), RP_MAX_PROVIDERS);
    free(page);
}

/* ---- the pieces ---- */

static void test_latency_quantiles(void **state)
{
    double ms;
    int64_t empty[10] = {0};
    assert_int_equal(report_latency_quantile(empty, 0.5, &ms), -1);
    int64_t first[10] = {7};
    assert_int_equal(report_latency_quantile(first, 0.95, &ms), 1);
    assert_true(ms == 100);
    int64_t second[10] = {0, 10};   /* all in (100, 250] */
    assert_int_equal(report_latency_quantile(second, 0.5, &ms), 0);
    assert_float_equal(ms, 175, 1e-9);
    assert_int_equal(report_latency_quantile(second, 0.95, &ms), 0);
    assert_float_equal(ms, 242.5, 1e-9);
    int64_t mixed[10] = {50, 0, 50};
    assert_int_equal(report_latency_quantile(mixed, 0.5, &ms), 1);   /* the 50th is in b0 */
    assert_int_equal(report_latency_quantile(mixed, 0.95, &ms), 0);
    assert_float_equal(ms, 475, 1e-9);
    int64_t slow[10] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 3};
    assert_int_equal(report_latency_quantile(slow, 0.5, &ms), 2);
    assert_true(ms == 60000);
    assert_int_equal(report_latency_quantile(slow, 0.2, &ms), 0);    /* in (30 s, 60 s] */
    assert_float_equal(ms, 30000 + 30000 * 0.8, 1e-9);
    char buf[48];
    assert_string_equal(rp_latency(buf, sizeof buf, second, 0.5), "\xE2\x89\x88 175 ms");
    assert_string_equal(rp_latency(buf, sizeof buf, first, 0.5), "\xE2\x89\xA4 100 ms");
    assert_string_equal(rp_latency(buf, sizeof buf, slow, 0.5), "> 60 s");
    assert_string_equal(rp_latency(buf, sizeof buf, empty, 0.5), "\xE2\x80\x93");
}

static void test_money_and_dates(void **state)
{
    char m[32];
    assert_string_equal(rp_money(m, 0), "$0.00");
    assert_string_equal(rp_money(m, 1.234), "$1.23");
    assert_string_equal(rp_money(m, 1234.5), "$1,234.50");
    assert_string_equal(rp_money(m, 20000), "$20,000.00");
    assert_string_equal(rp_money(m, 999.999), "$1,000.00");
    assert_string_equal(rp_money(m, 123456789.126), "$123,456,789.13");
    assert_string_equal(rp_money(m, 100), "$100.00");
    assert_string_equal(rp_money(m, -1234), "-$1,234.00");
    assert_string_equal(rp_money(m, 0.5), "$0.50");
    assert_string_equal(rp_money(m, 0.125), "$0.125");
    assert_string_equal(rp_money(m, 0.0123), "$0.0123");
    assert_string_equal(rp_money(m, 0.000012), "$0.000012");
    assert_string_equal(rp_money(m, 0.0000001), "<$0.000001");
    assert_string_equal(rp_money(m, -2), "-$2.00");
    assert_string_equal(rp_day(m, TODAY), "2024-05-15");
    assert_string_equal(rp_day(m, MONTH_START), "2024-05-01");
    assert_string_equal(rp_time(m, NOW_MS + 59999), "2024-05-15 12:00 UTC");
    assert_string_equal(rp_time(m, 0), "\xE2\x80\x93");
}

static void test_escape(void **state)
{
    strbuf b = {0};
    rp_esc(&b, "a<b>&\"c'\td\n", 100);
    assert_string_equal(b.data, "a&lt;b&gt;&amp;&quot;c&#39;\td\xEF\xBF\xBD");
    b.len = 0;
    rp_esc(&b, "h\xC3\xA9llo \xF0\x9F\x98\x80", 100);   /* valid UTF-8 kept */
    assert_string_equal(b.data, "h\xC3\xA9llo \xF0\x9F\x98\x80");
    b.len = 0;
    rp_esc(&b, "\xC0\xAF \xED\xA0\x80 \xF5", 100);        /* overlong, surrogate, > U+10FFFF */
    assert_int_equal(count(b.data, "\xEF\xBF\xBD"), 2 + 3 + 1);
    b.len = 0;
    rp_esc(&b, "abc\xC3\xA9xyz", 4);                      /* cut before the 2-byte é */
    assert_string_equal(b.data, "abc\xE2\x80\xA6");
    b.len = 0;
    rp_esc(&b, NULL, 10);
    assert_int_equal(b.len, 0);
    free(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spend_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svg_charts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_strings_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tier_caps_and_days, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_state_db_and_caller_txn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_ledger_bounded, setup, teardown),
        cmocka_unit_test(test_latency_quantiles),
        cmocka_unit_test(test_money_and_dates),
        cmocka_unit_test(test_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
