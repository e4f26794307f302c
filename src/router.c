/* router.c — routing policy: what an attempt's outcome means, how long to wait before
 * retrying, which providers/models are healthy enough to try, and which hop goes next.
 *
 * No I/O here.  Circuit breakers are in breakers.c.  The runner reports attempts and asks for decisions; everything that
 * decides "retry, fall back or fail" lives in router_classify's rule table, and
 * everything that decides "which hop" lives in router_next_hop.
 *
 */
#include "jsonfmt.h"
#include "router.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------------------------- */
/* Outcomes                                                                            */
/* ---------------------------------------------------------------------------------- */

const char *router_outcome_name(rf_outcome o)
{
    switch (o) {
    case RF_OUT_SUCCESS:       return "success";
    case RF_OUT_RETRY:         return "retry";
    case RF_OUT_NEXT_HOP:      return "next-hop";
    case RF_OUT_NEXT_HOP_DOWN: return "next-hop-down";
    case RF_OUT_FAIL_JOB:      return "fail-job";
    }
    return "unknown";
}

/* Modifiers on a status rule. */
enum {
    RULE_PLAIN = 0,
    RULE_CHECK_BODY,        /* 2xx: a body that did not parse is the provider's failure */
    RULE_RETRY_AFTER,       /* 429/503: a Retry-After over the tier's cap means go elsewhere */
    RULE_REQUEST_ERROR      /* 400/413/422: context-length and unsupported-parameter errors
                               are about this hop, not the request, so fall back */
};

/* The status table: the first rule whose range holds the status wins. */
static const struct status_rule {
    long lo, hi;
    rf_outcome outcome;
    int modifier;
} status_rules[] = {
    { 200, 299, RF_OUT_SUCCESS,       RULE_CHECK_BODY    },
    { 400, 400, RF_OUT_FAIL_JOB,      RULE_REQUEST_ERROR },
    { 401, 404, RF_OUT_NEXT_HOP_DOWN, RULE_PLAIN         }, /* auth, billing, forbidden, not found */
    { 408, 408, RF_OUT_RETRY,         RULE_PLAIN         }, /* request timeout: transient */
    { 413, 413, RF_OUT_FAIL_JOB,      RULE_REQUEST_ERROR },
    { 422, 422, RF_OUT_FAIL_JOB,      RULE_REQUEST_ERROR },
    { 429, 429, RF_OUT_RETRY,         RULE_RETRY_AFTER   },
    { 400, 499, RF_OUT_FAIL_JOB,      RULE_PLAIN         }, /* any other request error */
    { 503, 503, RF_OUT_RETRY,         RULE_RETRY_AFTER   },
    { 500, 599, RF_OUT_RETRY,         RULE_PLAIN         }, /* 500, 502, 504, ... */
    { LONG_MIN, LONG_MAX, RF_OUT_NEXT_HOP, RULE_PLAIN    }, /* 1xx, 3xx, nonsense */
};

/* Transport failures, indexed by rf_transport_error. */
static const rf_outcome transport_rules[] = {
    [RF_TE_NONE]        = RF_OUT_SUCCESS,  /* unused: NONE goes to the status table */
    [RF_TE_CONNECT]     = RF_OUT_RETRY,
    [RF_TE_TIMEOUT]     = RF_OUT_RETRY,
    [RF_TE_TRUNCATED]   = RF_OUT_RETRY,
    [RF_TE_TOO_LARGE]   = RF_OUT_NEXT_HOP, /* the same hop would send the same huge body */
    [RF_TE_OTHER]       = RF_OUT_RETRY,
    [RF_TE_FIRST_TOKEN] = RF_OUT_RETRY,    /* the three timeouts alike */
    [RF_TE_STALL]       = RF_OUT_RETRY,
    [RF_TE_RESET]       = RF_OUT_RETRY,    /* like a refused connection */
    [RF_TE_TLS]         = RF_OUT_RETRY,
    [RF_TE_ABORTED]     = RF_OUT_NEXT_HOP, /* the caller refused the stream, like a
                                              2xx body that does not parse */
};

rf_outcome router_classify(const rf_attempt *a, long retry_after_max_ms)
{
    if (a->transport == RF_TE_NONE && a->content_policy && a->http_status >= 400 &&
        a->http_status < 500)
        return RF_OUT_FAIL_JOB;   /* refused for its content: another model will not help */
    if (a->transport != RF_TE_NONE) {
        if ((size_t)a->transport < sizeof transport_rules / sizeof transport_rules[0])
            return transport_rules[a->transport];
        return RF_OUT_RETRY;
    }

    const struct status_rule *r = status_rules;
    while (a->http_status < r->lo || a->http_status > r->hi)
        r++;  /* the last rule matches everything */

    switch (r->modifier) {
    case RULE_CHECK_BODY:
        /* Malformed, error object, no choices, empty: the provider failed.  Retrying the
         * same hop would likely fail again and may be billed again. */
        return a->parse_status != 0 ? RF_OUT_NEXT_HOP : r->outcome;
    case RULE_RETRY_AFTER:
        return a->retry_after_ms > retry_after_max_ms ? RF_OUT_NEXT_HOP : r->outcome;
    case RULE_REQUEST_ERROR:
        return a->context_length || a->unsupported_param ? RF_OUT_NEXT_HOP : r->outcome;
    default:
        return r->outcome;
    }
}

/* ---------------------------------------------------------------------------------- */
/* Backoff and Retry-After                                                             */
/* ---------------------------------------------------------------------------------- */

long router_backoff_ms(int attempt, long base_ms, long cap_ms, long retry_after_ms,
                       unsigned *seed)
{
    if (retry_after_ms >= 0)
        return retry_after_ms;
    if (base_ms <= 0 || cap_ms <= 0)
        return 0;

    /* ceiling = min(cap, base * 2^attempt), doubling step by step so it cannot overflow */
    long ceiling = base_ms < cap_ms ? base_ms : cap_ms;
    for (int i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;

    unsigned local_seed = (unsigned)time(NULL);
    if (!seed)
        seed = &local_seed;
    /* rand_r yields 31 bits; two draws make the modulo bias negligible for any ceiling */
    uint64_t r = ((uint64_t)(unsigned)rand_r(seed) << 31) ^ (uint64_t)(unsigned)rand_r(seed);
    return (long)(r % ((uint64_t)ceiling + 1));
}

/* Retry-After values are clamped to this (~68 years) so callers can add them to a
 * timestamp without overflow. */
#define RETRY_AFTER_MAX_SECONDS ((int64_t)INT32_MAX)

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    return s;
}

static long seconds_to_ms(int64_t seconds)
{
    if (seconds < 0)
        return 0;
    if (seconds > RETRY_AFTER_MAX_SECONDS)
        seconds = RETRY_AFTER_MAX_SECONDS;
    return (long)(seconds * 1000);
}

long router_parse_retry_after(const char *value, int64_t now_unix)
{
    if (!value)
        return -1;
    const char *s = skip_space(value);
    if (!*s)
        return -1;

    if (*s >= '0' && *s <= '9') {  /* delta-seconds */
        int64_t seconds = 0;
        for (; *s >= '0' && *s <= '9'; s++)
            if (seconds <= RETRY_AFTER_MAX_SECONDS)
                seconds = seconds * 10 + (*s - '0');
        return *skip_space(s) ? -1 : seconds_to_ms(seconds);
    }

    /* HTTP-date: the IMF-fixdate every server sends, and the two obsolete forms RFC 9110
     * still asks recipients to accept. */
    static const char *const formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT",   /* Sun, 06 Nov 1994 08:49:37 GMT */
        "%A, %d-%b-%y %H:%M:%S GMT",   /* Sunday, 06-Nov-94 08:49:37 GMT */
        "%a %b %d %H:%M:%S %Y",        /* Sun Nov  6 08:49:37 1994 */
    };
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(s, formats[i], &tm);
        if (!end || *skip_space(end))
            continue;
        time_t when = timegm(&tm);
        if (when == (time_t)-1)
            continue;
        int64_t delta = (int64_t)when - now_unix;
        return seconds_to_ms(delta);  /* past dates: 0, retry now */
    }
    return -1;
}

static const rf_provider *find_provider(const rf_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->providers_len; i++)
        if (strcmp(cfg->providers[i].name, name) == 0)
            return &cfg->providers[i];
    return NULL;
}

/* Parameters every chat-completions endpoint takes, listed or not. */
static int implicit_param(const char *name)
{
    return strcmp(name, "model") == 0 || strcmp(name, "messages") == 0 ||
           strcmp(name, "stream") == 0;
}

int router_hop_supports(const rf_config *cfg, const rf_hop *hop,
                        char *const *params, size_t nparams)
{
    const rf_provider *p = find_provider(cfg, hop->provider);
    if (!p)
        return 0;
    if (!p->supported_params)
        return 1;  /* unknown list: assume everything */
    for (size_t i = 0; i < nparams; i++) {
        if (implicit_param(params[i]))
            continue;
        size_t j = 0;
        while (j < p->supported_params_len && strcmp(p->supported_params[j], params[i]) != 0)
            j++;
        if (j == p->supported_params_len)
            return 0;
    }
    return 1;
}

int router_next_hop(rf_breakers *b, const rf_config *cfg, const rf_tier *tier, size_t start,
                    char *const *params, size_t nparams, int64_t now_ms, long *wait_ms)
{
    if (wait_ms)
        *wait_ms = 0;
    size_t end = tier->allow_fallbacks ? tier->route_len : (tier->route_len > 0 ? 1 : 0);
    int best = -1;
    int64_t best_at = 0;
    for (size_t i = start; i < end; i++) {
        const rf_hop *hop = &tier->route[i];
        if (tier->require_parameters && !router_hop_supports(cfg, hop, params, nparams))
            continue;
        /* ready_at only looks: the half-open probe slot is taken by breakers_allow */
        int64_t at = breakers_ready_at(b, hop->provider, hop->model, now_ms);
        if (at <= now_ms)
            return (int)i;
        if (best < 0 || at < best_at) {
            best = (int)i;
            best_at = at;
        }
    }
    if (best >= 0 && wait_ms) {
        int64_t wait = best_at - now_ms;
        *wait_ms = wait > LONG_MAX ? LONG_MAX : (long)wait;
    }
    return best;
}

/* ---------------------------------------------------------------------------------- */
/* Decisions                                                                           */
/* ---------------------------------------------------------------------------------- */

/* The next eligible hop from start, or parking / exhaustion when none is left. */
static void choose_from(rf_breakers *b, const route_state *s, size_t start, int64_t now_ms,
                        route_decision *d)
{
    long wait_ms = 0;
    int idx = router_next_hop(b, s->cfg, s->tier, start, s->params, s->nparams, now_ms,
                              &wait_ms);
    if (idx < 0) {
        const rf_tier *t = s->tier;
        if (t->on_exhausted == RF_EXHAUSTED_QUEUE && (size_t)s->park_count < t->park_schedule_len) {
            d->action = RD_PARK;
            d->delay_ms = t->park_schedule_ms[s->park_count];
        } else {
            d->action = RD_EXHAUSTED;
        }
        return;
    }
    d->action = RD_SEND;
    d->hop_index = (size_t)idx;
    d->new_hop = (size_t)idx != s->hop_index || start != s->hop_index;
    d->delay_ms = wait_ms;   /* > 0 when every remaining hop's breaker is open */
}

void router_first(rf_breakers *b, const route_state *s, int64_t now_ms, route_decision *d)
{
    memset(d, 0, sizeof *d);
    d->fell_from = -1;
    route_state first = *s;
    first.hop_index = 0;
    choose_from(b, &first, 0, now_ms, d);
    d->new_hop = 1;
}

/* Give up on the current hop (and the hops its request covered). */
static void next_hop(rf_breakers *b, const route_state *s, int covered, int64_t now_ms,
                     route_decision *d)
{
    choose_from(b, s, s->hop_index + (size_t)(covered > 0 ? covered : 1), now_ms, d);
    d->new_hop = 1;
    if (s->hop_sent && d->action == RD_SEND)
        d->fell_from = (long)s->hop_index;
}

void router_after(rf_breakers *b, const route_state *s, const route_outcome *o, int64_t now_ms,
                  route_decision *d)
{
    memset(d, 0, sizeof *d);
    d->fell_from = -1;
    const rf_tier *t = s->tier;
    const rf_hop *hop = &t->route[s->hop_index];
    switch (o->event) {
    case RO_REFUSED:
        d->action = RD_FAIL;
        return;
    case RO_SKIPPED:
        if (o->retry_in_ms > 0) {
            /* e.g. a half-open breaker's one probe is out: fall back if the route allows,
             * else wait for it */
            if (t->allow_fallbacks && s->hop_index + 1 < t->route_len) {
                next_hop(b, s, o->hops_covered, now_ms, d);
                if (d->action == RD_SEND)
                    return;
            }
            memset(d, 0, sizeof *d);
            d->fell_from = -1;
            d->action = RD_SEND;
            d->hop_index = s->hop_index;
            d->delay_ms = o->retry_in_ms;
            return;
        }
        next_hop(b, s, o->hops_covered, now_ms, d);
        return;
    case RO_ANSWERED:
        break;
    }
    switch (o->outcome) {
    case RF_OUT_SUCCESS:
        d->action = RD_SUCCESS;
        return;
    case RF_OUT_FAIL_JOB:
        d->action = RD_FAIL;
        return;
    case RF_OUT_RETRY:
        /* A timeout moves on at once: retrying a silent provider only multiplies the wait.
         * Once this failure has opened the hop's breaker, waiting out a backoff would only
         * delay the fallback the breaker forces anyway. */
        if ((!o->timed_out || t->retry_on_timeout) && s->hop_attempts + 1 <= t->retries &&
            breakers_ready_at(b, hop->provider, hop->model, now_ms) <= now_ms) {
            d->action = RD_SEND;
            d->hop_index = s->hop_index;
            d->delay_ms = router_backoff_ms(s->hop_attempts, t->retry_base_ms, t->retry_cap_ms,
                                            o->retry_after_ms, s->seed);
            return;
        }
        next_hop(b, s, o->hops_covered, now_ms, d);
        return;
    case RF_OUT_NEXT_HOP:
    case RF_OUT_NEXT_HOP_DOWN:
        next_hop(b, s, o->hops_covered, now_ms, d);
        return;
    }
}
