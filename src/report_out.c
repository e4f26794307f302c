/* report_out.c — the report page's output: a growing buffer, the one HTML escaper that
 * every database string goes through, and the formatting of money, UTC dates and latency
 * estimates.  See report_impl.h. */
#include "report_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* provider_days.b0..b8's upper bounds in ms; b9 is open (store_ledger.h's
 * STORE_LATENCY_BOUNDS_MS, repeated here until the store lands). */
static const double latency_bound_ms[REPORT_LATENCY_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
};

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one (overlong
 * forms, surrogates and code points past U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* Bytes to replace by one U+FFFD at an invalid sequence: the lead byte and the
 * continuation bytes that were a valid start (the "maximal subpart", as browsers do). */
static size_t invalid_len(const unsigned char *s)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (n == 1 || s[1] < lo || s[1] > hi)
        return 1;
    size_t i = 2;
    while (i < n && s[i] >= 0x80 && s[i] <= 0xBF)
        i++;
    return i;
}

void rp_esc(strbuf *b, const char *str, size_t max)
{
    if (!str)
        return;
    const unsigned char *s = (const unsigned char *)str;
    size_t used = 0;
    while (*s) {
        size_t n = utf8_len(s);
        size_t step = n ? n : invalid_len(s);
        if (used + step > max) {
            sb_put(b, "\xE2\x80\xA6");   /* … */
            return;
        }
        used += step;
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default:
            if (!n || (*s < 0x20 && *s != '\t') || *s == 0x7F)
                rep = "\xEF\xBF\xBD";    /* U+FFFD */
        }
        if (rep)
            sb_put(b, rep);
        else
            sb_putn(b, (const char *)s, n);
        s += step;
    }
}

char *rp_money(char *buf, double usd)
{
    const char *sign = "";
    if (usd < 0) {
        sign = "-";
        usd = -usd;
    }
    if (!isfinite(usd)) {
        snprintf(buf, 32, "?");
        return buf;
    }
    if (usd == 0) {
        snprintf(buf, 32, "$0.00");
        return buf;
    }
    if (usd < 0.000001) {
        snprintf(buf, 32, "%s<$0.000001", sign);
        return buf;
    }
    /* Dollars to the cent; below a dollar three significant digits, so that the many
     * sub-cent requests of a cheap model do not all read "$0.00". */
    int decimals = 2;
    if (usd < 1) {
        decimals = 2 - (int)floor(log10(usd));
        if (decimals < 2)
            decimals = 2;
        if (decimals > 6)
            decimals = 6;
    }
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%.*f", decimals, usd);
    char *dot = strchr(digits, '.');
    while (dot && n > 0 && digits[n - 1] == '0' && (digits + n - 1) - dot > 2)
        digits[--n] = '\0';
    /* thousands separators in the dollars: $20,000.00 */
    size_t whole = dot ? (size_t)(dot - digits) : (size_t)n, o = 0;
    o += (size_t)snprintf(buf, 32, "%s$", sign);
    for (size_t i = 0; i < (size_t)n && o < 30; i++) {
        if (i < whole && i && (whole - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

char *rp_day(char *buf, int64_t day)
{
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, 32, "%Y-%m-%d", &tm))
        snprintf(buf, 32, "day %lld", (long long)day);
    return buf;
}

char *rp_time(char *buf, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, 32, "%Y-%m-%d %H:%M UTC", &tm))
        snprintf(buf, 32, "\xE2\x80\x93");   /* – */
    return buf;
}

int report_latency_quantile(const int64_t buckets[REPORT_LATENCY_BUCKETS], double q,
                            double *ms)
{
    double total = 0;
    for (int i = 0; i < REPORT_LATENCY_BUCKETS; i++)
        total += buckets[i] > 0 ? (double)buckets[i] : 0;
    *ms = 0;
    if (total <= 0)
        return -1;
    if (q < 0) q = 0;
    if (q > 1) q = 1;
    double rank = q * total, below = 0;
    int i = 0;
    for (; i < REPORT_LATENCY_BUCKETS - 1; i++) {
        double c = buckets[i] > 0 ? (double)buckets[i] : 0;
        if (c > 0 && below + c >= rank)
            break;
        below += c;
    }
    if (i == 0) {
        *ms = latency_bound_ms[0];
        return 1;
    }
    if (i == REPORT_LATENCY_BUCKETS - 1) {
        *ms = latency_bound_ms[REPORT_LATENCY_BUCKETS - 2];
        return 2;
    }
    double lo = latency_bound_ms[i - 1], hi = latency_bound_ms[i];
    double frac = (rank - below) / (double)buckets[i];
    *ms = lo + (hi - lo) * (frac < 0 ? 0 : frac > 1 ? 1 : frac);
    return 0;
}

static void put_ms(char *buf, size_t len, const char *prefix, double ms)
{
    if (ms < 1000)
        snprintf(buf, len, "%s%.0f ms", prefix, ms);
    else if (ms < 10000)
        snprintf(buf, len, "%s%.1f s", prefix, ms / 1000);
    else
        snprintf(buf, len, "%s%.0f s", prefix, ms / 1000);
}

char *rp_latency(char *buf, size_t len, const int64_t buckets[REPORT_LATENCY_BUCKETS], double q)
{
    double ms;
    switch (report_latency_quantile(buckets, q, &ms)) {
    case 0: put_ms(buf, len, "\xE2\x89\x88 ", ms); break;     /* ≈ */
    case 1: put_ms(buf, len, "\xE2\x89\xA4 ", ms); break;     /* ≤ */
    case 2: put_ms(buf, len, "> ", ms); break;
    default: snprintf(buf, len, "\xE2\x80\x93"); break;       /* – */
    }
    return buf;
}
