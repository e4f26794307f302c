/* report_svg.c — report.html's charts, drawn as inline SVG: spend per day stacked by
 * tier with the daily cap, cap gauges, requests/failures/fallbacks per provider per day,
 * latency histograms.  Every chart has a viewBox (it scales with the page), a <title>
 * for screen readers, and a <title> per mark (the browser's tooltip).  Colours come from
 * the page's CSS classes, except the tier palette. */
#include "report_impl.h"

#include <math.h>
#include <stdio.h>

/* Colour-blind-friendly (Tableau 10); the last is "other". */
static const char *const tier_colours[RP_MAX_TIERS_STACKED + 1] = {
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f",
    "#bab0ac",
};

const char *rp_tier_colour(size_t i)
{
    return tier_colours[i < RP_MAX_TIERS_STACKED ? i : RP_MAX_TIERS_STACKED];
}

/* A round axis step (1, 2 or 5 × 10^k) for about four grid lines up to max. */
static double nice_step(double max)
{
    if (!(max > 0))
        return 1;
    double raw = max / 4, mag = pow(10, floor(log10(raw))), norm = raw / mag;
    return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

/* "05-03" under every k-th day. */
static void x_labels(strbuf *b, const rp_data *d, double x0, double slot, double y)
{
    int every = (d->days + 7) / 8;
    for (int i = 0; i < d->days; i++) {
        if ((d->days - 1 - i) % every)
            continue;   /* count back from today, so that today is always labelled */
        char day[32];
        rp_day(day, d->first_day + i);
        sb_printf(b, "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>",
                  x0 + slot * (i + 0.5), y, day + 5);
    }
}

void rp_svg_daily(strbuf *b, const rp_data *d, double daily_cap_usd)
{
    const double W = 960, H = 300, L = 70, R = 12, T = 14, B = 34;
    const double pw = W - L - R, ph = H - T - B;
    double max = 0;
    for (int i = 0; i < d->days; i++) {
        double day = 0;
        for (size_t t = 0; t < d->ntiers; t++)
            day += rp_usd(d->daily[(size_t)i * d->ntiers + t]);
        if (day > max)
            max = day;
    }
    if (daily_cap_usd > max)
        max = daily_cap_usd;
    double step = nice_step(max * 1.05), top = step * ceil(max * 1.05 / step);
    if (!(top > 0))
        top = step;
    double slot = pw / d->days, bw = slot * 0.78 > 1 ? slot * 0.78 : 1;
    char m[32], day[32];

    sb_printf(b, "<svg class=\"chart\" id=\"daily-spend\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
                 "aria-labelledby=\"daily-spend-title\"><title id=\"daily-spend-title\">Spend "
                 "per UTC day, last %d days, stacked by tier</title>", W, H, d->days);
    for (double v = 0; v <= top + step / 2; v += step) {
        double y = T + ph - v / top * ph;
        sb_printf(b, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                     "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
                  L, W - R, y, y, L - 6, y + 4, rp_money(m, v));
    }
    for (int i = 0; i < d->days; i++) {
        double y = T + ph, total = 0;
        for (size_t t = 0; t < d->ntiers; t++)
            total += rp_usd(d->daily[(size_t)i * d->ntiers + t]);
        rp_day(day, d->first_day + i);
        for (size_t t = 0; t < d->ntiers; t++) {
            double usd = rp_usd(d->daily[(size_t)i * d->ntiers + t]);
            if (usd <= 0)
                continue;
            double h = usd / top * ph;
            y -= h;
            char tm[32];
            sb_printf(b, "<rect class=\"bar\" x=\"%.1f\" y=\"%.2f\" width=\"%.1f\" "
                         "height=\"%.2f\" fill=\"%s\"><title>%s ",
                      L + slot * i + (slot - bw) / 2, y, bw, h < 0.5 ? 0.5 : h,
                      rp_tier_colour(t), day);
            rp_esc(b, d->tiers[t], RP_TEXT_MAX);
            sb_printf(b, ": %s (day %s)</title></rect>", rp_money(m, usd), rp_money(tm, total));
        }
    }
    if (daily_cap_usd >= 0) {
        double y = T + ph - daily_cap_usd / top * ph;
        sb_printf(b, "<line class=\"cap-line\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                     "<text class=\"cap-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">"
                     "daily cap %s</text>",
                  L, W - R, y, y, W - R - 4, y - 5, rp_money(m, daily_cap_usd));
    }
    sb_printf(b, "<line class=\"axis-line\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>",
              L, W - R, T + ph, T + ph);
    x_labels(b, d, L, slot, H - B + 18);
    sb_put(b, "</svg>");
}

void rp_svg_gauge(strbuf *b, const char *id, const char *label, int64_t spent_nusd,
                  double cap_usd)
{
    const double W = 320, H = 18;
    double spent = rp_usd(spent_nusd), frac = cap_usd > 0 ? spent / cap_usd : spent > 0;
    if (cap_usd < 0)
        frac = 0;
    const char *cls = frac >= 1 ? "over" : frac >= 0.8 ? "near" : "ok";
    double w = (frac > 1 ? 1 : frac) * W;
    char m[32], c[32];
    sb_printf(b, "<svg class=\"gauge\" id=\"%s\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">"
                 "<title>", id, W, H);
    rp_esc(b, label, RP_TEXT_MAX);
    if (cap_usd >= 0)
        sb_printf(b, ": %s of %s</title>", rp_money(m, spent), rp_money(c, cap_usd));
    else
        sb_printf(b, ": %s, no cap</title>", rp_money(m, spent));
    sb_printf(b, "<rect class=\"track\" x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" rx=\"4\"/>",
              W, H);
    if (w > 0)
        sb_printf(b, "<rect class=\"fill %s\" x=\"0\" y=\"0\" width=\"%.1f\" height=\"%.0f\" "
                     "rx=\"4\"/>", cls, w < 2 ? 2 : w, H);
    if (cap_usd >= 0)   /* where the 80 % warning starts */
        sb_printf(b, "<line class=\"mark\" x1=\"%.0f\" x2=\"%.0f\" y1=\"0\" y2=\"%.0f\"/>",
                  W * 0.8, W * 0.8, H);
    sb_put(b, "</svg>");
}

void rp_svg_provider_days(strbuf *b, const rp_data *d, const rp_provider *p)
{
    const double W = 560, H = 150, L = 44, R = 10, T = 10, B = 26;
    const double pw = W - L - R, ph = H - T - B;
    int64_t max = 1;
    for (int i = 0; i < d->days; i++) {
        if (p->requests[i] > max) max = p->requests[i];
        if (p->fallbacks[i] > max) max = p->fallbacks[i];
    }
    double step = nice_step((double)max), top = step * ceil((double)max / step);
    if (step < 1) {
        step = 1;
        top = (double)max;
    }
    double slot = pw / d->days, bw = slot * 0.7 > 1 ? slot * 0.7 : 1;
    char day[32];
    sb_printf(b, "<svg class=\"chart provider-days\" viewBox=\"0 0 %.0f %.0f\" role=\"img\"><title>", W, H);
    rp_esc(b, p->name, RP_TEXT_MAX);
    sb_put(b, ": requests, failures and fallbacks per UTC day</title>");
    for (double v = 0; v <= top + step / 2; v += step) {
        double y = T + ph - v / top * ph;
        sb_printf(b, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                     "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>",
                  L, W - R, y, y, L - 6, y + 4, v);
    }
    for (int i = 0; i < d->days; i++) {
        if (!p->requests[i] && !p->fallbacks[i])
            continue;
        double x = L + slot * i + (slot - bw) / 2;
        double hr = (double)p->requests[i] / top * ph, hf = (double)p->failures[i] / top * ph;
        rp_day(day, d->first_day + i);
        sb_printf(b, "<g><title>%s: %lld requests, %lld failures, %lld fallbacks</title>", day,
                  (long long)p->requests[i], (long long)p->failures[i],
                  (long long)p->fallbacks[i]);
        if (hr > 0)
            sb_printf(b, "<rect class=\"req\" x=\"%.1f\" y=\"%.2f\" width=\"%.1f\" height=\"%.2f\"/>",
                      x, T + ph - hr, bw, hr);
        if (hf > 0)
            sb_printf(b, "<rect class=\"fail\" x=\"%.1f\" y=\"%.2f\" width=\"%.1f\" height=\"%.2f\"/>",
                      x, T + ph - hf, bw, hf < 0.5 ? 0.5 : hf);
        if (p->fallbacks[i] > 0)
            sb_printf(b, "<circle class=\"fb\" cx=\"%.1f\" cy=\"%.2f\" r=\"3\"/>", x + bw / 2,
                      T + ph - (double)p->fallbacks[i] / top * ph);
        sb_put(b, "</g>");
    }
    sb_printf(b, "<line class=\"axis-line\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>",
              L, W - R, T + ph, T + ph);
    x_labels(b, d, L, slot, H - B + 18);
    sb_put(b, "</svg>");
}

void rp_svg_latency(strbuf *b, const rp_provider *p)
{
    static const char *const names[REPORT_LATENCY_BUCKETS] = {
        "\xE2\x89\xA4 100 ms", "100\xE2\x80\x93" "250 ms", "250\xE2\x80\x93" "500 ms",
        "0.5\xE2\x80\x93" "1 s", "1\xE2\x80\x93" "2.5 s", "2.5\xE2\x80\x93" "5 s",
        "5\xE2\x80\x93" "10 s", "10\xE2\x80\x93" "30 s", "30\xE2\x80\x93" "60 s", "> 60 s",
    };
    const double W = 160, H = 32, bw = W / REPORT_LATENCY_BUCKETS;
    int64_t max = 0;
    for (int i = 0; i < REPORT_LATENCY_BUCKETS; i++)
        if (p->buckets[i] > max)
            max = p->buckets[i];
    sb_printf(b, "<svg class=\"latency\" viewBox=\"0 0 %.0f %.0f\" role=\"img\"><title>", W, H);
    rp_esc(b, p->name, RP_TEXT_MAX);
    sb_put(b, ": attempts per latency bucket</title>");
    sb_printf(b, "<line class=\"axis-line\" x1=\"0\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\"/>",
              W, H - 0.5, H - 0.5);
    for (int i = 0; max > 0 && i < REPORT_LATENCY_BUCKETS; i++) {
        double h = (double)p->buckets[i] / (double)max * (H - 2);
        sb_printf(b, "<rect class=\"lat\" x=\"%.1f\" y=\"%.2f\" width=\"%.1f\" height=\"%.2f\">"
                     "<title>%s: %lld</title></rect>",
                  i * bw + 1, H - 1 - h, bw - 2, h, names[i], (long long)p->buckets[i]);
    }
    sb_put(b, "</svg>");
}
