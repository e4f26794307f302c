/* shared.h — budget windows, provider limits and circuit breakers shared by every host
 * on one Redis (or Valkey) prefix: the "shared" config section.
 *
 * Redis is never on a FUSE path and never blocks a caller.  The module owns one thread,
 * "rfs-shared", which owns the connection (hiredis, blocking I/O with a 1 s timeout).
 * Callers queue requests; each accepted request gets exactly one callback, on the
 * shared thread, with no lock of this module held (a callback may queue more requests;
 * it must not call shared_stop and should return quickly: hop to your own thread).
 * Every cross-host decision is one Lua script run with EVALSHA (loaded with SCRIPT LOAD
 * on each connect, re-loaded and retried once on NOSCRIPT), so it is atomic across hosts,
 * and every time in it is the Redis server's TIME: hosts' clocks never matter.
 * Requests queued together go out pipelined: one round trip per batch.
 *
 * Connection: redis://HOST:PORT/DB; AUTH with the password from the environment
 * variable cfg->password_env (read once at start, never logged or put in a message);
 * SELECT db.  A lost connection is retried with exponential backoff, 100 ms doubling to
 * 5 s.  rediss:// is refused at start: Debian 12's hiredis (0.14) has no TLS.
 *
 * While Redis is unreachable (state DOWN):
 *   - reserve, rate, slot and probe requests get ENOTCONN at once (the caller decides:
 *     wait, or enforce its local share);
 *   - settle, release, slot release, probe release, host-spent and breaker publish
 *     requests are kept in memory (at most SHARED_DEFERRED_MAX) and applied in the order
 *     they were made when the connection is back; their callback fires then.  Settles are idempotent
 *     (a settled-id set in Redis), so one that may have been applied when the connection
 *     dropped is not counted twice.  Spend made while down without a shared reservation
 *     is settled the same way: shared_settle with reservation_id NULL.
 *   - a request whose outcome is unknown because the connection dropped while it was in
 *     flight gets ENOTCONN; a reservation or slot it may have taken is released when the
 *     connection is back (else its TTL frees it).
 * On reconnect the module also re-asserts this host's share of every window it knows
 * (the most it has seen acknowledged, and what shared_host_spent told it), so a Redis
 * that restarted empty gets back each live host's spend instead of starting at $0.
 *
 * Amounts are integer nano-USD (1 USD = 1e9), 0 .. SHARED_NUSD_MAX (2^53 - 1, about
 * $9 million: Lua numbers are doubles and hold integers exactly only up to 2^53).
 *
 * Cap guarantee: a reservation is granted only when, in every capped window,
 *     spent + reserved (all hosts, expired reservations purged) + amount <= cap.
 * So the windows' spent can exceed a cap only by what settles add beyond their
 * reservations: spent <= cap + sum over requests in flight of max(0, actual - reserved).
 * A reservation not settled or released within cfg->reservation_ttl_ms (server time)
 * stops counting: a host that died stops holding the budget after the TTL.
 *
 * ---- Key layout (P = cfg->prefix; every key starts with "P:") ----
 *   P:win:W          hash   one budget window W (e.g. "day:2026-11-26", "month:2026-11",
 *                           "tier:fast:day:2026-11-26"; see shared_caps_standard):
 *                           "spent" = settled nusd of all hosts, "reserved" = sum of the
 *                           live reservations' amounts, "h:HOST" = nusd settled by HOST
 *   P:win:W:exp      zset   reservation id -> expiry (server ms); purged by every script
 *                           that reads the window (expired ids give their amount back)
 *   P:win:W:amt      hash   reservation id -> amount (nusd)
 *                           (the three window keys live 400 days after their last write)
 *   P:settled        zset   settled reservation id -> server ms; for idempotent settles;
 *                           entries older than 24 h are purged
 *   P:rate:PROV      string GCRA theoretical arrival time (server µs) of provider PROV
 *   P:slots:PROV     zset   in-flight lease id -> lease expiry (server ms)
 *   P:brk            hash   breaker field -> "1|UNTIL_MS|AT_MS|HOST|REASON" (server ms);
 *                           field "PROV" is provider-wide, "PROV:MODEL" provider+model;
 *                           a closed breaker has no field
 *   P:probe:FIELD    string the host holding the half-open probe of breaker FIELD (PX)
 * PROV, MODEL and tier names are written %XX-escaped where a byte is not one of
 * A-Z a-z 0-9 . _ - / @ + = (so ':' and '|' in names cannot be confused); host ids are
 * restricted to those bytes and ':' (shared_start).  Nothing else may write these keys.
 * One server (Redis >= 5 or Valkey); not Redis Cluster aware.
 *
 * Resetting a shared budget: stop every host, delete P:win:*, move each host's ledger
 * aside (a host re-asserts its ledger's share, see shared_host_spent). */
#ifndef RF_SHARED_H
#define RF_SHARED_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "err.h"

typedef struct shared shared;

#define SHARED_NUSD_MAX      ((int64_t)9007199254740991)   /* 2^53 - 1 */
#define SHARED_WINDOWS_MAX   4        /* windows per shared_caps */
#define SHARED_WINDOW_MAX    200      /* bytes of a window name, NUL excluded */
#define SHARED_LABEL_MAX     160      /* bytes of a cap label, NUL excluded */
#define SHARED_HOST_ID_MAX   128      /* bytes of a host id */
#define SHARED_ID_MAX        192      /* bytes of a reservation or lease id, NUL included */
#define SHARED_NAME_MAX      256      /* bytes of a provider or model name */
#define SHARED_REASON_MAX    200      /* bytes of a breaker reason kept */
#define SHARED_DEFERRED_MAX  20000    /* requests kept while Redis is down (~2 KB each) */

/* ---- start, stop, health ---- */

/* Start the shared thread for cfg (copied; cfg may be freed afterwards).  Does not wait
 * for Redis: the first connection is made on the shared thread (see shared_health).
 * host_id: a stable name of this host, e.g. hostname + a hash of the state directory:
 * 1..SHARED_HOST_ID_MAX bytes of A-Z a-z 0-9 . _ - : @ + = /.  Reservations,
 * leases, probes and per-host spend are attributed to it.
 * NULL with err: EINVAL (bad host_id or cfg; cfg->password_env names an unset or empty
 * variable), ENOTSUP (rediss://), ENOMEM, or the pthread error. */
shared *shared_start(const rf_shared_cfg *cfg, const char *host_id, rf_err *err);

/* Stop the thread and join it (waits for a batch in flight: at most about 1 s).  Every
 * request still queued or kept for later gets its callback with ECANCELED first (from
 * the shared thread); deferred settles lost this way are logged with their sum.
 * Reservations and leases held in Redis are left to their TTLs.  NULL is a no-op. */
void shared_stop(shared *s);

typedef enum {
    SHARED_DOWN = 0,         /* no connection (never connected, lost, or AUTH refused) */
    SHARED_DEGRADED,         /* connected, but a command failed (an error reply, a reply
                                that does not parse) in the last 5 x breaker_sync_ms
                                (1 s .. 10 s) */
    SHARED_CONNECTED
} shared_state;

const char *shared_state_name(shared_state st);   /* "down", "degraded", "connected" */

typedef struct shared_health_info {
    shared_state state;
    int64_t since_ms;        /* wall clock (ms since the epoch) of entering state */
    char last_error[256];    /* the latest failure, "" when none; never a password */
    uint64_t round_trips;    /* pipelined batches answered by Redis */
    uint64_t commands;       /* commands answered by Redis */
    uint64_t connects;       /* successful connections (1 + reconnects) */
    long rtt_mean_us;        /* round-trip time of a batch: mean over all, */
    long rtt_p50_us;         /* and median / 99th percentile of the last 1024; -1 = none */
    long rtt_p99_us;
    int64_t clock_offset_ms; /* Redis TIME minus this host's clock, at the last connect */
    size_t queued;           /* requests waiting for the shared thread */
    size_t deferred;         /* requests kept until Redis is back */
    int64_t deferred_nusd;   /* spend in the deferred settles */
} shared_health_info;

/* A snapshot; never blocks on Redis. */
void shared_health(shared *s, shared_health_info *out);

/* ---- budget windows ---- */

typedef struct shared_window {
    char key[SHARED_WINDOW_MAX + 1];    /* window name: A-Z a-z 0-9 and : . _ - / @ + = % */
    char label[SHARED_LABEL_MAX + 1];   /* for messages: "daily cap", "tier fast daily cap" */
    int64_t cap_nusd;                   /* < 0 = no cap: tracked, never refuses */
} shared_window;

/* The windows a reservation or a settle applies to. */
typedef struct shared_caps {
    int n;
    shared_window w[SHARED_WINDOWS_MAX];
} shared_caps;

/* The windows budget.c uses: "day:YYYY-MM-DD" ("daily cap") and "month:YYYY-MM"
 * ("monthly cap") of the UTC date of now_ms, and, when tier is not NULL,
 * "tier:TIER:day:YYYY-MM-DD" ("tier TIER daily cap"; TIER escaped).  Caps < 0 = none;
 * windows without a cap are still tracked.  0, or -1 with EINVAL (tier too long). */
int shared_caps_standard(shared_caps *caps, int64_t now_ms, int64_t daily_cap_nusd,
                         int64_t monthly_cap_nusd, const char *tier,
                         int64_t tier_daily_cap_nusd, rf_err *err);

/* Append one window.  0, or -1 with EINVAL (full, bad key, cap above SHARED_NUSD_MAX). */
int shared_caps_add(shared_caps *caps, const char *key, const char *label, int64_t cap_nusd,
                    rf_err *err);

/* status: 0 = done; EDQUOT = can never fit (spent + amount > cap); EAGAIN = fits once
 * reservations in flight settle; ENOTCONN = Redis unreachable (or the connection dropped
 * with the request in flight); EIO = Redis answered with an error or a reply that does
 * not parse (msg says which); ECANCELED = shared_stop.  msg: one line, "" on success;
 * both strings are borrowed for the call only. */
typedef void (*shared_reserve_cb)(void *ud, int status, const char *reservation_id,
                                  const char *msg);
typedef void (*shared_done_cb)(void *ud, int status, const char *msg);

/* Every request function below returns 0 when the request is queued (its callback, if
 * not NULL, will be called exactly once), or -1 with err (EINVAL for bad arguments,
 * ENOMEM, ENOBUFS when SHARED_DEFERRED_MAX requests are already kept) and no callback. */

/* Reserve nusd in every window of caps (1..SHARED_WINDOWS_MAX windows) for
 * cfg->reservation_ttl_ms.  On status 0, reservation_id names it (copy it): pass it to
 * shared_settle or shared_release.  On EDQUOT/EAGAIN msg names the window, e.g.
 * "daily cap $5.00 reached: $4.97 spent, $0.05 reserved (all hosts)"; EDQUOT outranks
 * EAGAIN when several windows refuse.  nusd 0 always succeeds.  1 round trip. */
int shared_reserve(shared *s, const shared_caps *caps, int64_t nusd, shared_reserve_cb cb,
                   void *ud, rf_err *err);

/* Add actual_nusd to the spent of every window of caps (total and this host's field),
 * and drop the reservation from the windows it was made in — atomically.  A reservation
 * that expired meanwhile is still charged; reservation_id NULL charges without one.
 * Settling the same id twice charges once.  Deferred while Redis is down (see above).
 * 1 round trip. */
int shared_settle(shared *s, const char *reservation_id, int64_t actual_nusd,
                  const shared_caps *caps, shared_done_cb cb, void *ud, rf_err *err);

/* Give a reservation back (the hop failed or was never sent).  Unknown ids: status 0,
 * no round trip.  Deferred while Redis is down. */
int shared_release(shared *s, const char *reservation_id, shared_done_cb cb, void *ud,
                   rf_err *err);

/* This host has spent at least nusd in window (from its own ledger, at mount): raise its
 * share in Redis to nusd if lower (the total grows by the difference).  The module
 * re-asserts it, and every share it has seen acknowledged since, on every reconnect.
 * nusd must not include spend handed to shared_settle that may still be deferred (it
 * would then count twice): call it at start, before settling in that window.  Fire and
 * forget; deferred while down. */
int shared_host_spent(shared *s, const char *window, int64_t nusd, rf_err *err);

typedef struct shared_window_spend {
    int known;               /* 0 = not seen yet: asked for the first time just now (it is
                                fetched within breaker_sync_ms) */
    int64_t spent_nusd;      /* all hosts */
    int64_t reserved_nusd;   /* all hosts, live reservations */
    int64_t host_nusd;       /* this host's part of spent */
    int64_t at_ms;           /* wall clock of the data */
} shared_window_spend;

typedef struct shared_spend_info {
    int n;                   /* = caps->n */
    shared_window_spend w[SHARED_WINDOWS_MAX];
} shared_spend_info;

/* The last known totals of caps' windows, from the local cache (refreshed every
 * breaker_sync_ms and by every reserve/settle/release reply).  Never blocks.  A window
 * asked for is kept fresh from then on (the 32 most recently used). */
void shared_spend(shared *s, const shared_caps *caps, shared_spend_info *out);

/* ---- provider limits ---- */

/* status as above; wait_ms: how long from the callback to wait before sending (0 = now). */
typedef void (*shared_rate_cb)(void *ud, int status, long wait_ms);
/* status 0 = lease taken (lease_id, borrowed for the call: copy it); EAGAIN = all
 * max_concurrent slots are held (retry_ms: when the first lease runs out, a hint). */
typedef void (*shared_slot_cb)(void *ud, int status, const char *lease_id, long retry_ms);
/* status 0: granted 1 = this host probes, 0 = another host holds the probe. */
typedef void (*shared_probe_cb)(void *ud, int status, int granted);

/* Book the next send slot on provider for all hosts together (rpm 1..1000000): GCRA with
 * no burst, i.e. one send every ceil(60e6 / rpm) µs of server time, so no 60 s window
 * ever holds more than rpm sends.  The booking is final: send after wait_ms without
 * asking again.  1 round trip. */
int shared_rate_acquire(shared *s, const char *provider, int rpm, shared_rate_cb cb, void *ud,
                        rf_err *err);

/* Take one of max_concurrent (1..100000) in-flight slots on provider across hosts, for at
 * most lease_ms (100..86400000; pick more than the attempt can last: a dead host's slots
 * free themselves when their lease runs out).  1 round trip. */
int shared_slot_acquire(shared *s, const char *provider, int max_concurrent, long lease_ms,
                        shared_slot_cb cb, void *ud, rf_err *err);

/* Free a slot taken with shared_slot_acquire.  Fire and forget; deferred while down. */
int shared_slot_release(shared *s, const char *provider, const char *lease_id, rf_err *err);

/* ---- circuit breakers ---- */

/* Tell every host that the breaker of provider (model NULL: provider-wide) or
 * provider+model opened until until_unix_ms (this host's clock; sent as the time left,
 * so other hosts see the same duration on theirs), or closed (open 0: until ignored).
 * reason: one line kept for providers.json (cut to SHARED_REASON_MAX; control
 * characters become spaces), may be NULL.  Updates the local cache at once.  Fire and forget;
 * deferred while down (an open whose time has passed by then is dropped). */
int shared_breaker_publish(shared *s, const char *provider, const char *model, int open,
                           int64_t until_unix_ms, const char *reason, rf_err *err);

/* Is the breaker named exactly (provider, model NULL = provider-wide; a model's breaker
 * does not include the provider-wide one: ask both) open according to the cache, which
 * holds every host's published breakers as of at most breaker_sync_ms ago (plus one
 * round trip)?  1 = open, with *until_ms (may be NULL) the time it reopens for a probe,
 * on this host's wall clock; 0 = closed or expired.  Never blocks. */
int shared_breaker_open(shared *s, const char *provider, const char *model, int64_t *until_ms);

/* Like shared_breaker_open, but also tells a breaker whose open period has run out and
 * that nobody has closed yet (its host is probing it, or died): SHARED_BREAKER_EXPIRED.
 * A host that wants to send through such a breaker claims the probe first
 * (shared_probe_claim), so that one host probes, not all.  Never blocks. */
typedef enum {
    SHARED_BREAKER_CLOSED = 0,
    SHARED_BREAKER_OPEN,      /* *until_ms = when it admits a probe (this host's clock) */
    SHARED_BREAKER_EXPIRED    /* open period over, not closed: probe before sending */
} shared_breaker_view;
shared_breaker_view shared_breaker_state(shared *s, const char *provider, const char *model,
                                         int64_t *until_ms);

typedef struct shared_breaker_info {
    char provider[SHARED_NAME_MAX + 1];
    char model[SHARED_NAME_MAX + 1];      /* "" = provider-wide */
    int64_t until_ms;                     /* this host's wall clock */
    int64_t at_ms;                        /* when it was published, this host's clock */
    char host[SHARED_HOST_ID_MAX + 1];    /* who published it */
    char reason[SHARED_REASON_MAX + 1];
} shared_breaker_info;

/* The open breakers in the cache (until still ahead): up to max copied into out; returns
 * how many there are (may exceed max).  For providers.json.  Never blocks. */
size_t shared_breaker_list(shared *s, shared_breaker_info *out, size_t max);

/* Claim the half-open probe of a breaker for lease_ms (100..3600000) so that one host
 * probes, not all: granted to exactly one claimant until the lease runs out or the holder
 * calls shared_probe_release, and never while the breaker is open on the server (a
 * failed probe publishes the breaker open again before it releases the claim, so the
 * next claimant waits for the new open period).  1 round trip. */
int shared_probe_claim(shared *s, const char *provider, const char *model, long lease_ms,
                       shared_probe_cb cb, void *ud, rf_err *err);

/* Give the probe back (it finished) if this host holds it.  Fire and forget. */
int shared_probe_release(shared *s, const char *provider, const char *model, rf_err *err);

#endif
