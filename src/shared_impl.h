/* shared_impl.h — what the shared*.c files share: the module state, a queued request
 * (op), the command builder, and the functions each file provides to the others.
 *
 *   shared.c         start/stop, the queue, the thread, batching, health
 *   shared_conn.c    the connection (connect, AUTH, SELECT, SCRIPT LOAD, TIME), state, clocks
 *   shared_lua.c     the Lua scripts (texts and names)
 *   shared_budget.c  windows: reserve, settle, release, host floors, the spend cache
 *   shared_limits.c  rate, slots, breakers (and their cache), probes, the sync script
 *   shared_reply.c   parsing every reply (pure; fuzzed)
 *
 * Threads: "thread-only" fields are touched by the shared thread alone (after start);
 * `mu` guards the queue and the health fields; `cache_mu` guards the caches that
 * callers read (windows, breakers).  Never both at once. */
#ifndef RF_SHARED_IMPL_H
#define RF_SHARED_IMPL_H

#include <pthread.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

#include "hmap.h"
#include "shared.h"
#include "shared_reply.h"

#define SHARED_KEY_MAX        1800     /* one Redis key, NUL included */
#define SHARED_FIELD_MAX      1600     /* an escaped breaker field "PROV[:MODEL]" */
#define SHARED_WATCH_MAX      32       /* windows kept fresh in the spend cache */
#define SHARED_BREAKERS_MAX   4096     /* breakers kept in the cache */
#define SHARED_TRIES_MAX      20       /* error replies a deferred request survives */
#define SHARED_IO_TIMEOUT_MS  1000     /* connect and per-reply timeout */
#define SHARED_WINDOW_LIFE_MS (400LL * 86400000)   /* window keys outlive their last write */
#define SHARED_SETTLED_LIFE_MS (86400000LL)        /* settled ids remembered */
#define SHARED_RTT_RING       1024
#define SHARED_BATCH_MAX      512      /* requests per pipelined round trip */
#define SHARED_BACKOFF_MIN_MS 100      /* reconnect backoff: doubles from here */
#define SHARED_BACKOFF_MAX_MS 5000     /* up to here */
#define SHARED_PENDING_MAX    1024     /* local publishes kept over a stale sync */

/* ---- the scripts (shared_lua.c) ---- */

typedef enum {
    LUA_RESERVE = 0, LUA_SETTLE, LUA_RELEASE, LUA_FLOOR, LUA_SYNC, LUA_RATE, LUA_SLOT,
    LUA_PROBE_CLAIM, LUA_PROBE_RELEASE, LUA_BREAKER, LUA__COUNT
} shared_lua;

const char *shared_lua_text(shared_lua which);
const char *shared_lua_name(shared_lua which);

/* ---- a request ---- */

typedef enum {
    OP_RESERVE = 0, OP_SETTLE, OP_RELEASE, OP_FLOOR,          /* shared_budget.c */
    OP_RATE, OP_SLOT, OP_SLOT_RELEASE, OP_BREAKER, OP_PROBE,  /* shared_limits.c */
    OP_PROBE_RELEASE, OP_SYNC
} shared_op_kind;

typedef struct shared_op {
    struct shared_op *next;
    shared_op_kind kind;
    int tries;                  /* error replies so far */
    int noscript;               /* already re-run after a NOSCRIPT */
    shared_caps caps;           /* reserve, settle; release: the windows when known */
    char id[SHARED_ID_MAX];     /* reservation or lease id; "" = none */
    char *field;                /* owned: escaped provider, or breaker field; or NULL */
    int64_t nusd;               /* reserve amount, settle actual, floor */
    int64_t until_ms;           /* breaker publish: wall clock */
    long n1, n2;                /* rate: interval_us; slot: max, lease_ms; probe: lease_ms */
    int open;                   /* breaker publish */
    uint64_t seq;               /* breaker publish: order of publishes (see cache) */
    char reason[SHARED_REASON_MAX + 1];
    union {
        shared_reserve_cb reserve;
        shared_done_cb done;
        shared_rate_cb rate;
        shared_slot_cb slot;
        shared_probe_cb probe;
    } cb;                       /* NULL = nobody to tell */
    void *ud;
} shared_op;

/* A FIFO of ops. */
typedef struct shared_opq {
    shared_op *head, *tail;
    size_t len;
} shared_opq;

void shared_opq_push(shared_opq *q, shared_op *op);
shared_op *shared_opq_pop(shared_opq *q);

/* ---- the command being built ---- */

#define SHARED_CMD_ARGS 256
typedef struct shared_cmd {
    int argc;
    size_t off[SHARED_CMD_ARGS], len[SHARED_CMD_ARGS];   /* into pool */
    char *pool;                 /* owned */
    size_t used, cap;
    int failed;                 /* out of memory or too many arguments */
} shared_cmd;

void shared_cmd_reset(shared_cmd *c);
void shared_cmd_arg(shared_cmd *c, const char *s, size_t len);
void shared_cmd_str(shared_cmd *c, const char *s);
void shared_cmd_fmt(shared_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* EVALSHA sha(which) numkeys: the caller adds the keys, then the arguments. */
void shared_cmd_evalsha(shared *s, shared_cmd *c, shared_lua which, int numkeys);

/* ---- the spend cache (cache_mu) ---- */

typedef struct shared_watch {
    char key[SHARED_WINDOW_MAX + 1];
    int known;
    int64_t spent, reserved, host, at_ms;
    int64_t floor;              /* this host's share to re-assert on reconnect; 0 = none */
    uint64_t used;              /* LRU stamp */
} shared_watch;

/* A breaker in the cache, on this host's wall clock. */
typedef struct shared_cached_breaker {
    char field[SHARED_FIELD_MAX];
    int open;                   /* pending entries: 0 = a close */
    shared_breaker_info info;
} shared_cached_breaker;

/* ---- the module ---- */

struct shared {
    /* configuration: immutable after start */
    char *host;                 /* owned */
    int port, db;
    char *password;             /* owned, wiped at stop; NULL = no AUTH */
    char *prefix;               /* owned */
    char host_id[SHARED_HOST_ID_MAX + 1];
    char boot[17];              /* random hex of this start, in every id */
    long reservation_ttl_ms, sync_ms;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;        /* CLOCK_MONOTONIC */
    /* under mu */
    shared_opq queue;
    int stopping;
    uint64_t next_id;
    shared_state state;
    int64_t since_ms;
    char last_error[256];
    uint64_t publish_seq;       /* breaker publishes queued so far */
    uint64_t round_trips, commands, connects;
    uint64_t rtt_total_us;
    long rtt_ring[SHARED_RTT_RING];
    size_t rtt_n;
    int64_t clock_offset_ms;
    size_t deferred_len;        /* mirror of the thread's list, for health */
    int64_t deferred_nusd;

    /* thread-only */
    redisContext *conn;
    char sha[LUA__COUNT][41];
    shared_opq deferred;        /* kept until Redis is back */
    int replay_due;             /* send the deferred ops with the next batch */
    int floors_due;             /* send this host's floors with the next batch */
    uint64_t taken_seq;         /* highest publish seq taken from the queue */
    shared_op *sent[SHARED_BATCH_MAX];   /* the batch in flight */
    redisReply *replies[SHARED_BATCH_MAX];   /* its replies, owned until answered */
    char sync_keys[SHARED_WATCH_MAX][SHARED_WINDOW_MAX + 1];   /* windows of the sync */
    int nsync_keys;
    hmap *reservations;         /* id -> shared_resv (owned) */
    shared_cmd cmd;
    int64_t next_sync_ms, next_connect_ms;   /* monotonic */
    int64_t degraded_until_ms;  /* monotonic: DEGRADED at least until then */
    long backoff_ms;

    /* under cache_mu */
    pthread_mutex_t cache_mu;
    shared_watch watch[SHARED_WATCH_MAX];
    int nwatch;
    uint64_t watch_clock;
    shared_cached_breaker *breakers;   /* owned array */
    size_t nbreakers;
    shared_cached_breaker *pending;    /* owned: local publishes newer than the last sync */
    uint64_t *pending_seq;             /* owned, parallel to pending */
    size_t npending;
};

/* ---- shared_conn.c ---- */

/* Connect, AUTH, SELECT, load the scripts, read TIME: s->conn set and CONNECTED, or
 * DOWN with the next attempt after the backoff. */
void shared_connect(shared *s);
void shared_disconnect(shared *s);
/* The connection failed (what: the step; why: the reason): disconnect, DOWN, backoff. */
void shared_conn_failed(shared *s, const char *what, const char *why);
/* SCRIPT LOAD every script (pipelined).  0, or -1 with msg. */
int shared_load_scripts(shared *s, char *msg, size_t msglen);
/* Enter st; text (NULL = keep the last error) becomes the last error, without the
 * password.  Logs changes. */
void shared_set_state(shared *s, shared_state st, const char *text);
void shared_count_round_trip(shared *s, size_t commands, int64_t us);

/* ---- shared.c ---- */

/* Allocate a zeroed op of kind (NULL on ENOMEM, with err set). */
shared_op *shared_op_new(shared_op_kind kind, rf_err *err);
void shared_op_free(shared_op *op);      /* NULL is a no-op */
/* Queue op (owned by the module from here on); -1 with ENOBUFS and op freed when the
 * deferred list is full and op would have to wait in it. */
int shared_enqueue(shared *s, shared_op *op, rf_err *err);
/* The same, and *seq = the op's publish sequence number (taken under the queue lock). */
int shared_enqueue_seq(shared *s, shared_op *op, uint64_t *seq, rf_err *err);
/* A new id "HOST/BOOT/N" into out[SHARED_ID_MAX]. */
void shared_new_id(shared *s, char *out);
/* Does op wait in the deferred list while Redis is down? */
int shared_op_deferrable(const shared_op *op);

/* ---- per-file handlers, called by shared.c on the thread ----
 * build: 1 = a command is in s->cmd; 0 = nothing to send: the op was completed (its
 *        callback called) right there.
 * finish: the reply (not an error reply) parsed; 0 = callback called; -1 = the reply did
 *        not parse (err says why: shared.c calls fail with EIO and degrades).
 * fail: call the callback with status and msg (ENOTCONN, EIO, ECANCELED, ENOBUFS).
 * lost: the connection dropped with op in flight: call back ENOTCONN; returns 1 when
 *        op was turned into a deferred clean-up (keep it), 0 when it can be freed. */
int shared_budget_build(shared *s, shared_op *op);
int shared_budget_finish(shared *s, shared_op *op, const redisReply *r, rf_err *err);
void shared_budget_fail(shared *s, shared_op *op, int status, const char *msg);
int shared_budget_lost(shared *s, shared_op *op);
/* Append floor ops for every watched window with a floor (on reconnect) to q. */
void shared_budget_floors(shared *s, shared_opq *q);
/* Drop reservations whose TTL passed long ago (the caller forgot them). */
void shared_budget_sweep(shared *s);
void shared_budget_free(shared *s);

int shared_limits_build(shared *s, shared_op *op);
int shared_limits_finish(shared *s, shared_op *op, const redisReply *r, rf_err *err);
void shared_limits_fail(shared *s, shared_op *op, int status, const char *msg);
int shared_limits_lost(shared *s, shared_op *op);
void shared_limits_free(shared *s);

/* Store Redis's totals of windows keys[0..n) in the cache (cache_mu taken inside); this
 * host's share seen there raises its floor. */
void shared_watch_update(shared *s, char keys[][SHARED_WINDOW_MAX + 1], const shreply_win *w,
                         int n);
/* The watched window keys, copied (cache_mu taken inside); returns how many. */
int shared_watch_keys(shared *s, char keys[][SHARED_WINDOW_MAX + 1], int max);

#endif
