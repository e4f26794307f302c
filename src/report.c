/* report.c — report.html: the public API (report.h), the page's sections in order, and
 * `routefs report STATE`.  The data comes from report_data.c, the charts from
 * report_svg.c, and every database string is printed through rp_esc (report_out.c).
 *
 * The page is self-contained: one <style>, inline SVG, no script, no font, image or link
 * that leaves the file; a Content-Security-Policy meta tag forbids them all, so that even
 * a mistake in escaping could not run or fetch anything. */
#include "report.h"
#include "clock.h"
#include "report_impl.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "version.h"

static const char page_css[] =
    ":root{color-scheme:light}"
    "body{font:15px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;margin:0;"
    "background:#f5f6f8;color:#1f2933}"
    "main{max-width:1200px;margin:0 auto;padding:12px 16px 32px}"
    "h1{font-size:1.5em;margin:.3em 0 .1em}"
    "h2{font-size:1.15em;margin:1.5em 0 .5em;padding-bottom:.2em;border-bottom:1px solid #d5dae1}"
    "h3{font-size:1em;margin:.2em 0 .4em}"
    ".meta{color:#52606d;font-size:.9em;margin:.1em 0}"
    ".card{background:#fff;border:1px solid #e1e5ea;border-radius:8px;padding:10px 14px;"
    "margin:10px 0}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:10px}"
    ".cards .card{margin:0}"
    ".big{font-size:1.5em;font-weight:600;font-variant-numeric:tabular-nums}"
    ".two{display:grid;grid-template-columns:1fr;gap:10px}"
    "@media (min-width:900px){.two{grid-template-columns:1fr 1fr}}"
    ".two .card{margin:0;min-width:0}"
    ".scroll{overflow-x:auto}"
    /* a chart wider than a phone scrolls, and starts scrolled to today (the right) */
    ".scroll.end{direction:rtl}.scroll.end>svg{direction:ltr}"
    "svg.chart{width:100%;min-width:520px;height:auto;display:block}"
    "@media (max-width:700px){#daily-spend{min-width:600px}"
    "#daily-spend .axis,#daily-spend .cap-label{font-size:20px}td.barcell,th.barcell{display:none}}"
    "svg.gauge{width:100%;max-width:420px;height:18px;display:block;margin:6px 0}"
    "svg.latency{width:160px;height:32px;display:block}"
    ".grid{stroke:#e4e7eb;stroke-width:1}"
    ".axis{font-size:13px;fill:#616e7c}"
    ".axis-line{stroke:#9aa5b1;stroke-width:1}"
    ".cap-line{stroke:#c62828;stroke-width:1.5;stroke-dasharray:6 4}"
    ".cap-label{font-size:13px;fill:#c62828}"
    ".track{fill:#e4e7eb}.fill.ok{fill:#2e7d32}.fill.near{fill:#ef6c00}.fill.over{fill:#c62828}"
    ".mark{stroke:#52606d;stroke-width:1}"
    ".req{fill:#90a4ae}.fail{fill:#c62828}.fb{fill:#ef6c00}.lat{fill:#4e79a7}"
    "table{border-collapse:collapse;width:100%;font-size:.92em}"
    "th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #edf0f3;vertical-align:top}"
    "th{font-weight:600;color:#3e4c59}"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    "td.name{overflow-wrap:break-word}"
    "td.path{overflow-wrap:anywhere;min-width:9em}"
    "td.barcell{width:22%;min-width:60px}"
    ".hbar{display:block;height:10px;background:#4e79a7;border-radius:2px;min-width:1px}"
    ".legend{font-size:.9em;margin:.4em 0}.legend span{display:inline-block;margin-right:14px}"
    ".sw{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px;"
    "vertical-align:middle}"
    ".empty{color:#52606d;font-style:italic}"
    ".banner{background:#fff8e1;border:1px solid #f0c36d;border-radius:8px;padding:12px 14px;"
    "margin:10px 0;font-size:1.05em}"
    ".bad{color:#b71c1c;font-weight:600}.warn{color:#b45309}"
    ".est{color:#b45309;font-size:.85em}"
    "footer{margin-top:2em;color:#52606d;font-size:.85em}"
    "footer p{margin:.4em 0}";

/* ---- small formatting helpers ---- */

/* 1234567 -> "1,234,567"; buf >= 32 bytes. */
static char *fmt_count(char *buf, int64_t v)
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "%lld", (long long)(v < 0 ? -v : v));
    size_t o = 0;
    if (v < 0)
        buf[o++] = '-';
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

static void td_money(strbuf *b, int64_t nusd)
{
    char m[32];
    sb_printf(b, "<td class=\"n\">%s</td>", rp_money(m, rp_usd(nusd)));
}

static void td_count(strbuf *b, int64_t v)
{
    char c[32];
    sb_printf(b, "<td class=\"n\">%s</td>", fmt_count(c, v));
}

/* A database string in a cell; cls "name" (breaks only when it must) or "path". */
static void td_str(strbuf *b, const char *cls, const char *s, const char *if_empty)
{
    sb_printf(b, "<td class=\"%s\">", cls);
    if (s && *s)
        rp_esc(b, s, RP_TEXT_MAX);
    else
        sb_printf(b, "<span class=\"empty\">%s</span>", if_empty);
    sb_put(b, "</td>");
}

static void td_text(strbuf *b, const char *s, const char *if_empty)
{
    td_str(b, "name", s, if_empty);
}

static void td_bar(strbuf *b, double v, double max)
{
    double pct = max > 0 && v > 0 ? v / max * 100 : 0;
    sb_printf(b, "<td class=\"barcell\"><span class=\"hbar\" style=\"width:%.1f%%\"></span></td>",
              pct > 100 ? 100 : pct);
}

static void cap_text(strbuf *b, double cap)
{
    char m[32];
    if (cap >= 0)
        sb_put(b, rp_money(m, cap));
    else
        sb_put(b, "none");
}

/* "$1.20 of $5.00 (24 %)" or "$1.20 (no cap)". */
static void spent_vs_cap(strbuf *b, int64_t spent, double cap)
{
    char m[32], c[32];
    double usd = rp_usd(spent);
    if (cap < 0) {
        sb_printf(b, "<div class=\"big\">%s</div><div class=\"meta\">no cap</div>",
                  rp_money(m, usd));
        return;
    }
    double pct = cap > 0 ? usd / cap * 100 : (usd > 0 ? 100 : 0);
    sb_printf(b, "<div class=\"big\">%s <span class=\"meta\">of %s</span></div>"
                 "<div class=\"meta%s\">%.0f %% of the cap%s</div>",
              rp_money(m, usd), rp_money(c, cap), pct >= 100 ? " bad" : pct >= 80 ? " warn" : "",
              pct, pct >= 100 ? ": reached" : pct >= 80 ? ": over 80 %" : "");
}

/* ---- sections ---- */

static void section_header(strbuf *b, const report_opts *o, const rp_data *d)
{
    char t[32];
    sb_put(b, "<header><h1>");
    rp_esc(b, o->title ? o->title : "routefs report", RP_TEXT_MAX);
    sb_printf(b, "</h1><p class=\"meta\" id=\"generated\">Generated %s", rp_time(t, d->now_ms));
    if (o->state_dir) {
        sb_put(b, " &middot; state directory <code>");
        rp_esc(b, o->state_dir, PATH_MAX);
        sb_put(b, "</code>");
    }
    sb_put(b, "</p><p class=\"meta\" id=\"caps\">Caps in force: daily ");
    cap_text(b, o->daily_cap_usd);
    sb_put(b, ", monthly ");
    cap_text(b, o->monthly_cap_usd);
    for (size_t i = 0; o->cfg && i < o->cfg->tiers_len; i++) {
        if (o->cfg->tiers[i].daily_usd < 0)
            continue;
        sb_put(b, ", tier ");
        rp_esc(b, o->cfg->tiers[i].name, RP_TEXT_MAX);
        sb_put(b, " daily ");
        cap_text(b, o->cfg->tiers[i].daily_usd);
    }
    sb_printf(b, ".</p><p class=\"meta\">Days are UTC days; charts cover the last %d.</p>"
                 "</header>", d->days);
    if (d->store_failing_now)
        sb_put(b, "<div class=\"banner bad\" id=\"store-failing\">The state store is failing: "
                  "new prompts are refused until it works again (see the log).</div>");
}

static const rp_row *find_row(const rp_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->rows[i].name && strcmp(t->rows[i].name, name) == 0)
            return &t->rows[i];
    return NULL;
}

static void section_spend(strbuf *b, const report_opts *o, const rp_data *d)
{
    char c[32], m[32];
    sb_put(b, "<section id=\"spend\"><h2>Spend</h2>");
    if (!d->has_ledger)
        sb_put(b, "<div class=\"banner\" id=\"no-spend\"><strong>No spend yet.</strong> The "
                  "ledger is empty: no request has been billed with this state directory.</div>");
    sb_put(b, "<div class=\"cards\"><div class=\"card\" id=\"today\"><h3>Today (UTC)</h3>");
    spent_vs_cap(b, d->all.today, o->daily_cap_usd);
    if (o->daily_cap_usd >= 0)
        rp_svg_gauge(b, "gauge-today", "Today against the daily cap", d->all.today,
                     o->daily_cap_usd);
    sb_put(b, "</div><div class=\"card\" id=\"month\"><h3>This month (UTC)</h3>");
    spent_vs_cap(b, d->all.month, o->monthly_cap_usd);
    if (o->monthly_cap_usd >= 0)
        rp_svg_gauge(b, "gauge-month", "This month against the monthly cap", d->all.month,
                     o->monthly_cap_usd);
    sb_printf(b, "</div><div class=\"card\" id=\"total\"><h3>All time</h3>"
                 "<div class=\"big\">%s</div><div class=\"meta\">%s billed %s",
              rp_money(m, rp_usd(d->all.total)), fmt_count(c, d->all.requests),
              d->all.requests == 1 ? "request" : "requests");
    if (d->all.estimated)
        sb_printf(b, ", %s with an estimated cost", fmt_count(c, d->all.estimated));
    sb_put(b, "</div>");
    if (d->all.unpriced)
        sb_printf(b, "<div class=\"meta warn\" id=\"unpriced\">%s %s without a known "
                     "price %s not in these sums</div>", fmt_count(c, d->all.unpriced),
                  d->all.unpriced == 1 ? "request" : "requests",
                  d->all.unpriced == 1 ? "is" : "are");
    sb_put(b, "</div>");
    for (size_t i = 0; o->cfg && i < o->cfg->tiers_len; i++) {
        const rf_tier *t = &o->cfg->tiers[i];
        if (t->daily_usd < 0)
            continue;
        const rp_row *r = find_row(&d->by_tier, t->name);
        char id[32];
        snprintf(id, sizeof id, "gauge-tier-%zu", i);
        sb_put(b, "<div class=\"card\"><h3>Tier ");
        rp_esc(b, t->name, RP_TEXT_MAX);
        sb_put(b, " today</h3>");
        spent_vs_cap(b, r ? r->a.today : 0, t->daily_usd);
        rp_svg_gauge(b, id, "Tier today against its daily cap", r ? r->a.today : 0, t->daily_usd);
        sb_put(b, "</div>");
    }
    sb_put(b, "</div>");
    if (d->has_ledger) {
        sb_printf(b, "<div class=\"card\"><h3>Spend per day, last %d days, by tier</h3>"
                     "<div class=\"scroll end\">", d->days);
        rp_svg_daily(b, d, o->daily_cap_usd);
        sb_put(b, "</div><div class=\"legend\">");
        for (size_t t = 0; t < d->ntiers; t++) {
            sb_printf(b, "<span><i class=\"sw\" style=\"background:%s\"></i>", rp_tier_colour(t));
            rp_esc(b, d->tiers[t], RP_TEXT_MAX);
            sb_put(b, "</span>");
        }
        if (o->daily_cap_usd >= 0)
            sb_printf(b, "<span class=\"cap-label\">- - daily cap %s</span>",
                      rp_money(m, o->daily_cap_usd));
        if (!d->ntiers)
            sb_put(b, "<span class=\"empty\">nothing spent in these days</span>");
        sb_put(b, "</div></div>");
    }
    sb_put(b, "</section>");
}

static void breakdown(strbuf *b, const char *id, const char *title, const char *what,
                      const rp_table *t, const char *if_empty)
{
    char c[32];
    sb_printf(b, "<div class=\"card\" id=\"%s\"><h3>%s</h3>", id, title);
    if (!t->n) {
        sb_put(b, "<p class=\"empty\">nothing billed</p></div>");
        return;
    }
    double max = 0;
    for (size_t i = 0; i < t->n; i++)
        if (rp_usd(t->rows[i].a.total) > max)
            max = rp_usd(t->rows[i].a.total);
    sb_printf(b, "<div class=\"scroll\"><table><thead><tr><th>%s</th><th class=\"barcell\"></th>"
                 "<th class=\"n\">total</th><th class=\"n\">today</th>"
                 "<th class=\"n\">this month</th><th class=\"n\">requests</th></tr></thead><tbody>",
              what);
    for (size_t i = 0; i < t->n; i++) {
        const rp_row *r = &t->rows[i];
        sb_put(b, "<tr>");
        td_text(b, r->name, if_empty);
        td_bar(b, rp_usd(r->a.total), max);
        td_money(b, r->a.total);
        td_money(b, r->a.today);
        td_money(b, r->a.month);
        td_count(b, r->a.requests);
        sb_put(b, "</tr>");
    }
    if (t->more) {
        sb_printf(b, "<tr><td class=\"empty\">%s more</td><td class=\"barcell\"></td>", fmt_count(c, (int64_t)t->more));
        td_money(b, t->rest.total);
        td_money(b, t->rest.today);
        td_money(b, t->rest.month);
        td_count(b, t->rest.requests);
        sb_put(b, "</tr>");
    }
    sb_put(b, "</tbody></table></div></div>");
}

static void section_breakdowns(strbuf *b, const rp_data *d)
{
    if (!d->has_ledger)
        return;
    sb_put(b, "<section id=\"breakdowns\"><h2>Where the money went</h2><div class=\"two\">");
    breakdown(b, "by-tier", "By tier", "tier", &d->by_tier, "(none)");
    breakdown(b, "by-provider", "By provider", "provider", &d->by_provider, "(none)");
    breakdown(b, "by-model", "By model", "model", &d->by_model, "(none)");
    breakdown(b, "by-tag", "By tag", "tag", &d->by_tag, "(no tag)");
    breakdown(b, "by-upstream", "By upstream provider (inside OpenRouter)", "upstream",
              &d->by_upstream, "(direct, or not reported)");
    sb_put(b, "</div></section>");
}

static void section_providers(strbuf *b, const rp_data *d)
{
    char c[32], p50[48], p95[48], mean[48];
    sb_printf(b, "<section id=\"providers\"><h2>Providers, last %d days</h2>", d->days);
    if (!d->nproviders) {
        sb_put(b, "<p class=\"empty\">No requests in these days.</p></section>");
        return;
    }
    sb_put(b, "<div class=\"card\"><div class=\"scroll\"><table id=\"provider-table\"><thead><tr>"
              "<th>provider</th><th class=\"n\">requests</th><th class=\"n\">failures</th>"
              "<th class=\"n\">failure rate</th><th class=\"n\">fallbacks</th>"
              "<th class=\"n\">latency p50<sup>1</sup></th><th class=\"n\">p95<sup>1</sup></th>"
              "<th class=\"n\">mean</th><th>latency histogram</th>"
              "<th class=\"n\">breaker openings</th></tr></thead><tbody>");
    for (size_t i = 0; i < d->nproviders; i++) {
        const rp_provider *p = &d->providers[i];
        int64_t n = 0;
        for (int k = 0; k < REPORT_LATENCY_BUCKETS; k++)
            n += p->buckets[k];
        if (n > 0)
            snprintf(mean, sizeof mean, "%.0f ms", (double)p->latency_ms_sum / (double)n);
        else
            snprintf(mean, sizeof mean, "\xE2\x80\x93");
        sb_put(b, "<tr>");
        td_text(b, p->name, "(none)");
        td_count(b, p->total_requests);
        td_count(b, p->total_failures);
        if (p->total_requests > 0)
            sb_printf(b, "<td class=\"n\">%.1f %%</td>",
                      100.0 * (double)p->total_failures / (double)p->total_requests);
        else
            sb_put(b, "<td class=\"n\">\xE2\x80\x93</td>");
        td_count(b, p->total_fallbacks);
        sb_printf(b, "<td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td>",
                  rp_latency(p50, sizeof p50, p->buckets, 0.5),
                  rp_latency(p95, sizeof p95, p->buckets, 0.95), mean);
        rp_svg_latency(b, p);
        sb_put(b, "</td>");
        td_count(b, p->breaker_opens);
        sb_put(b, "</tr>");
    }
    if (d->providers_more)
        sb_printf(b, "<tr><td class=\"empty\" colspan=\"10\">%s more providers not shown</td></tr>",
                  fmt_count(c, (int64_t)d->providers_more));
    sb_put(b, "</tbody></table></div></div>");
    if (d->nproviders > RP_MAX_PROVIDER_CHARTS)
        sb_printf(b, "<p class=\"meta\">Per day, the %d busiest providers:</p>",
                  RP_MAX_PROVIDER_CHARTS);
    sb_put(b, "<div class=\"two\">");
    for (size_t i = 0; i < d->nproviders && i < RP_MAX_PROVIDER_CHARTS; i++) {
        sb_put(b, "<div class=\"card provider-card\"><h3>");
        rp_esc(b, d->providers[i].name, RP_TEXT_MAX);
        sb_put(b, "</h3><div class=\"scroll end\">");
        rp_svg_provider_days(b, d, &d->providers[i]);
        sb_put(b, "</div></div>");
    }
    sb_put(b, "</div><p class=\"legend\"><span><i class=\"sw\" style=\"background:#90a4ae\">"
              "</i>requests</span><span><i class=\"sw\" style=\"background:#c62828\"></i>failures"
              "</span><span><i class=\"sw\" style=\"background:#ef6c00;border-radius:5px\"></i>"
              "fallbacks (jobs that left the provider for a later hop)</span></p></section>");
}

static void section_breakers(strbuf *b, const rp_data *d)
{
    char c[32], t[32];
    sb_printf(b, "<section id=\"breakers\"><h2>Circuit breakers</h2><div class=\"two\">"
                 "<div class=\"card\"><h3>Openings per provider, last %d days</h3>", d->days);
    if (!d->nopens) {
        sb_put(b, "<p class=\"empty\">No breaker opened.</p>");
    } else {
        sb_put(b, "<table id=\"breaker-counts\"><thead><tr><th>provider</th>"
                  "<th class=\"n\">openings</th><th>last</th></tr></thead><tbody>");
        for (size_t i = 0; i < d->nopens; i++) {
            sb_put(b, "<tr>");
            td_text(b, d->opens[i].name, "(none)");
            td_count(b, d->opens[i].count);
            sb_printf(b, "<td>%s</td></tr>", rp_time(t, d->opens[i].last_ms));
        }
        sb_printf(b, "</tbody></table><p class=\"meta\">%s %s in all.</p>",
                  fmt_count(c, d->opens_total), d->opens_total == 1 ? "opening" : "openings");
    }
    if (d->store_failures)
        sb_printf(b, "<p class=\"warn\" id=\"store-failures\">The state store failed %s %s "
                     "(last %s).</p>", fmt_count(c, d->store_failures),
                  d->store_failures == 1 ? "time" : "times",
                  rp_time(t, d->store_failure_last_ms));
    sb_printf(b, "</div><div class=\"card\"><h3>The last %d openings</h3>", RP_MAX_EVENTS);
    if (!d->nevents) {
        sb_put(b, "<p class=\"empty\">None.</p>");
    } else {
        sb_put(b, "<div class=\"scroll\"><table id=\"breaker-events\"><thead><tr><th>when</th>"
                  "<th>provider</th><th>model</th><th>why</th></tr></thead><tbody>");
        for (size_t i = 0; i < d->nevents; i++) {
            const rp_event *e = &d->events[i];
            sb_printf(b, "<tr><td class=\"n\">%s</td>", rp_time(t, e->at_ms));
            td_text(b, e->provider, "(none)");
            td_text(b, e->model, "(all models)");
            sb_put(b, "<td class=\"path\">");
            rp_esc(b, e->detail, RP_ERR_MAX);
            sb_put(b, "</td></tr>");
        }
        sb_put(b, "</tbody></table></div>");
    }
    sb_put(b, "</div></div></section>");
}

static void section_costly(strbuf *b, const rp_data *d)
{
    char t[32];
    if (!d->has_ledger)
        return;
    sb_printf(b, "<section id=\"costly\"><h2>The most expensive requests, last %d days</h2>"
                 "<div class=\"card\">", d->days);
    if (!d->ncostly) {
        sb_put(b, "<p class=\"empty\">No priced request in these days.</p></div></section>");
        return;
    }
    sb_put(b, "<div class=\"scroll\"><table id=\"costly-table\"><thead><tr><th>prompt</th>"
              "<th>model</th><th>provider</th><th class=\"n\">cost</th><th class=\"n\">when</th>"
              "</tr></thead><tbody>");
    for (size_t i = 0; i < d->ncostly; i++) {
        const rp_costly *c = &d->costly[i];
        sb_put(b, "<tr>");
        td_str(b, "path", c->path, "(prompt removed)");
        td_text(b, c->model, "?");
        sb_put(b, "<td class=\"name\">");
        rp_esc(b, c->provider, RP_TEXT_MAX);
        if (c->upstream && *c->upstream) {
            sb_put(b, " <span class=\"meta\">via ");
            rp_esc(b, c->upstream, RP_TEXT_MAX);
            sb_put(b, "</span>");
        }
        sb_put(b, "</td>");
        char m[32];
        sb_printf(b, "<td class=\"n\">%s%s</td><td class=\"n\">%s</td></tr>",
                  rp_money(m, rp_usd(c->nusd)),
                  c->estimated ? " <span class=\"est\" title=\"estimated\">est.<sup>2</sup></span>"
                               : "",
                  rp_time(t, c->at_ms));
    }
    sb_put(b, "</tbody></table></div></div></section>");
}

static void jobs_table(strbuf *b, const char *id, const char *title, const rp_job *jobs,
                       size_t n, int64_t total, int parked)
{
    char c[32], t[32];
    sb_printf(b, "<div class=\"card\" id=\"%s\"><h3>%s: %s</h3>", id, title, fmt_count(c, total));
    if (!n) {
        sb_put(b, "<p class=\"empty\">None.</p></div>");
        return;
    }
    sb_printf(b, "<div class=\"scroll\"><table><thead><tr><th>prompt</th><th>state</th>"
                 "<th>%s</th><th>error</th></tr></thead><tbody>",
              parked ? "next attempt" : "finished");
    for (size_t i = 0; i < n; i++) {
        sb_put(b, "<tr>");
        td_str(b, "path", jobs[i].path, "?");
        if (parked)
            sb_printf(b, "<td>parked (%lld&times;)</td>", (long long)jobs[i].park_count);
        else
            sb_put(b, "<td class=\"bad\">failed</td>");
        sb_printf(b, "<td class=\"n\">%s</td><td class=\"path\">", rp_time(t, jobs[i].when_ms));
        rp_esc(b, jobs[i].err, RP_ERR_MAX);
        sb_put(b, "</td></tr>");
    }
    if ((int64_t)n < total)
        sb_printf(b, "<tr><td class=\"empty\" colspan=\"4\">%s more not shown</td></tr>",
                  fmt_count(c, total - (int64_t)n));
    sb_put(b, "</tbody></table></div></div>");
}

static void section_jobs(strbuf *b, const rp_data *d)
{
    sb_put(b, "<section id=\"jobs\"><h2>Jobs that need a look</h2>");
    jobs_table(b, "parked", "Parked (every hop failed; retried on the park schedule)", d->parked,
               d->nparked, d->parked_total, 1);
    jobs_table(b, "failed", "Failed (NAME.err says why; rewrite the prompt to retry)", d->failed,
               d->nfailed, d->failed_total, 0);
    sb_put(b, "</section>");
}

static void section_footer(strbuf *b)
{
    sb_put(b, "<footer><p id=\"latency-note\"><sup>1</sup> Latency quantiles are estimated "
              "from each provider's histogram of attempt latencies (buckets up to 100, 250, "
              "500 ms, 1, 2.5, 5, 10, 30 and 60 s, and above): the bucket that holds the "
              "quantile is found and the value interpolated linearly inside it, as "
              "Prometheus's histogram_quantile does. A quantile in the first bucket is shown "
              "as &le; 100 ms, one in the last as &gt; 60 s. The mean is exact.</p>"
              "<p><sup>2</sup> est.: the provider reported no cost, so routefs estimated it "
              "from the tokens and the price it knew (or billed the worst case).</p>"
              "<p>routefs " ROUTEFS_VERSION ". This page is self-contained: it runs no script "
              "and loads nothing from the network.</p></footer>");
}

/* ---- the API ---- */

void report_opts_init(report_opts *o, const rf_config *cfg, int64_t now_ms)
{
    memset(o, 0, sizeof *o);
    o->days = REPORT_DEFAULT_DAYS;
    o->daily_cap_usd = cfg ? cfg->daily_usd : -1;
    o->monthly_cap_usd = cfg ? cfg->monthly_usd : -1;
    o->cfg = cfg;
    o->now_ms = now_ms;
}

char *report_render(sqlite3 *db, const report_opts *o, size_t *len, rf_err *err)
{
    *len = 0;
    if (!db || !o || o->days < 1 || o->days > REPORT_MAX_DAYS) {
        rf_err_set(err, EINVAL, "report: days must be 1 to %d", REPORT_MAX_DAYS);
        return NULL;
    }
    rp_data d;
    memset(&d, 0, sizeof d);
    int64_t now = o->now_ms > 0 ? o->now_ms : now_wall_ms();
    int own_txn = sqlite3_get_autocommit(db);   /* else the caller's transaction is used */
    if (own_txn && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        rf_err_set(err, EIO, "state database: %s", sqlite3_errmsg(db));
        return NULL;
    }
    int rc = rp_load(db, o->days, now, &d, err);
    if (own_txn)
        sqlite3_exec(db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    if (rc < 0) {
        rp_data_free(&d);
        return NULL;
    }

    strbuf b = {0};
    sb_reserve(&b, 16384);   /* a page grows from 16 KiB, not from 256 bytes */
    sb_put(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
               "style-src 'unsafe-inline'\"><meta name=\"referrer\" content=\"no-referrer\">"
               "<title>");
    rp_esc(&b, o->title ? o->title : "routefs report", RP_TEXT_MAX);
    sb_put(&b, "</title><style>");
    sb_put(&b, page_css);
    sb_put(&b, "</style></head>\n<body><main>\n");
    section_header(&b, o, &d);
    section_spend(&b, o, &d);
    section_breakdowns(&b, &d);
    section_providers(&b, &d);
    section_breakers(&b, &d);
    section_costly(&b, &d);
    section_jobs(&b, &d);
    section_footer(&b);
    sb_put(&b, "\n</main></body></html>\n");
    rp_data_free(&d);
    char *page = sb_take(&b, len);
    if (!page)
        rf_err_set(err, ENOMEM, "report: out of memory");
    return page;
}

/* ---- routefs report STATE [--config FILE] [--days N] ---- */

static void report_usage(FILE *f)
{
    fprintf(f,
            "usage: routefs report STATE [--config FILE] [--days N] > report.html\n"
            "\n"
            "Render report.html (spend, providers, breakers, jobs) from the state directory\n"
            "STATE without a mount.  The database is opened read-only, so this is safe while\n"
            "routefs runs.  Caps come from --config FILE, else STATE/config.json if present.\n"
            "\n"
            "  -c, --config FILE  the config whose caps the page shows\n"
            "  -n, --days N       days of history in the charts (1-%d, default %d)\n"
            "  -h, --help         this text\n"
            "\n"
            "Exit status: 0 written, 1 error, 2 usage error.\n",
            REPORT_MAX_DAYS, REPORT_DEFAULT_DAYS);
}

static int parse_days(const char *s, int *days)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > REPORT_MAX_DAYS)
        return -1;
    *days = (int)v;
    return 0;
}

int report_main(int argc, char **argv)
{
    const char *state = NULL, *config_path = NULL;
    int days = REPORT_DEFAULT_DAYS, options_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            report_usage(stdout);
            return 0;
        } else if (!options_done && !strcmp(a, "--")) {
            options_done = 1;
        } else if (!options_done && (!strcmp(a, "-c") || !strcmp(a, "--config") ||
                                     !strcmp(a, "-n") || !strcmp(a, "--days"))) {
            if (i + 1 >= argc) {
                fprintf(stderr, "routefs report: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (a[1] == 'c' || a[2] == 'c') {
                config_path = v;
            } else if (parse_days(v, &days) < 0) {
                fprintf(stderr, "routefs report: --days: expected 1 to %d, got \"%s\"\n",
                        REPORT_MAX_DAYS, v);
                return 2;
            }
        } else if (!options_done && a[0] == '-' && a[1]) {
            fprintf(stderr, "routefs report: unknown option %s (try 'routefs report --help')\n", a);
            return 2;
        } else if (state) {
            fprintf(stderr, "routefs report: one state directory only (try 'routefs report --help')\n");
            return 2;
        } else {
            state = a;
        }
    }
    if (!state) {
        report_usage(stderr);
        return 2;
    }

    char db_path[PATH_MAX], cfg_path[PATH_MAX];
    struct stat sb;
    if (snprintf(db_path, sizeof db_path, "%s/routefs.db", state) >= (int)sizeof db_path ||
        snprintf(cfg_path, sizeof cfg_path, "%s/config.json", state) >= (int)sizeof cfg_path) {
        fprintf(stderr, "routefs report: %s: path too long\n", state);
        return 1;
    }
    if (stat(db_path, &sb) < 0) {
        fprintf(stderr, "routefs report: %s: %s%s\n", db_path, strerror(errno),
                errno == ENOENT ? " (is this a routefs state directory?)" : "");
        return 1;
    }

    rf_config *cfg = NULL;
    rf_err err;
    rf_err_clear(&err);
    if (config_path) {
        if (config_load_file(config_path, &cfg, &err) < 0) {
            fprintf(stderr, "routefs report: %s\n", err.msg);
            return 1;
        }
    } else if (stat(cfg_path, &sb) == 0 && config_load_file(cfg_path, &cfg, &err) < 0) {
        fprintf(stderr, "routefs report: warning: %s; caps not shown\n", err.msg);
        cfg = NULL;
    }

    sqlite3 *db = NULL;
    int status = 1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "routefs report: %s: %s\n", db_path,
                db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, 5000);   /* the daemon may be checkpointing */
    report_opts o;
    report_opts_init(&o, cfg, 0);
    o.days = days;
    char *abs_state = realpath(state, NULL);
    o.state_dir = abs_state ? abs_state : state;
    size_t len;
    char *page = report_render(db, &o, &len, &err);
    free(abs_state);
    if (!page) {
        fprintf(stderr, "routefs report: %s: %s\n", db_path, err.msg);
        goto out;
    }
    if (fwrite(page, 1, len, stdout) != len || fflush(stdout) != 0)
        fprintf(stderr, "routefs report: writing the page: %s\n", strerror(errno));
    else
        status = 0;
    free(page);
out:
    sqlite3_close(db);
    config_unref(cfg);
    return status;
}
