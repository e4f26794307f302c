/* shared_reply.h — the one place that interprets what Redis sends back to shared.c:
 * every script result, status, TIME and SCRIPT LOAD reply, and the breaker entries
 * stored in Redis by other hosts.  Pure functions of a redisReply tree (no I/O, no
 * state), so that tests/fuzz/fuzz_shared.c can feed them any bytes through hiredis's
 * redisReader.  Also the key-component escaping of shared.h's key layout.
 *
 * Internal to the shared*.c files, the fuzz target and the tests. */
#ifndef RF_SHARED_REPLY_H
#define RF_SHARED_REPLY_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

#include "err.h"
#include "shared.h"

#define SHREPLY_BUDGET_MAX  8       /* windows in one budget reply (a settle: 2 x 4) */
#define SHREPLY_WINDOWS_MAX 64      /* windows in one sync reply */

/* ---- key components ---- */

/* Escape src[0..len) for a key: bytes other than A-Z a-z 0-9 . _ - / @ + = become %XX
 * (upper-case hex).  Writes at most cap bytes including the NUL; returns the length, or
 * -1 when it does not fit (dst then holds ""). */
long shreply_escape(const char *src, size_t len, char *dst, size_t cap);

/* The inverse: %XX (either case) decoded, every other byte must be one that
 * shreply_escape keeps.  -1 (dst "") on a bad escape, a byte that should have been
 * escaped, a decoded NUL, or when it does not fit in cap (including the NUL). */
long shreply_unescape(const char *src, size_t len, char *dst, size_t cap);

/* ---- budget scripts (reserve, settle, release, host floor) ----
 * Reply: an array of 3 + 3 * nwin integers {code, idx, now_ms, then per window spent,
 * reserved, host share}, nwin 1 .. SHREPLY_BUDGET_MAX.  code 0 .. max_code; idx 0 when code is 0, else 1 .. nwin (the
 * window that refused, for reserve); every amount 0 .. SHARED_NUSD_MAX (a negative
 * reserved, possible only if the keys were tampered with, reads as 0). */
typedef struct shreply_win {
    int64_t spent, reserved, host;
} shreply_win;

typedef struct shreply_budget {
    int code;
    int idx;                 /* 1-based; 0 = none */
    int64_t now_ms;          /* Redis server time */
    int n;
    shreply_win w[SHREPLY_BUDGET_MAX];
} shreply_budget;

/* 0, or -1 with EIO and a message naming what was wrong ("reserve: ..."). */
int shreply_budget_parse(const redisReply *r, const char *what, int nwin, int max_code,
                         shreply_budget *out, rf_err *err);

/* ---- limits ---- */

/* Rate script: {wait_us >= 0, slot_us >= 0}. */
int shreply_rate_parse(const redisReply *r, int64_t *wait_us, int64_t *slot_us, rf_err *err);

/* Slot script: {granted 0|1, count >= 0, retry_ms >= 0}. */
int shreply_slot_parse(const redisReply *r, int *granted, long *count, long *retry_ms,
                       rf_err *err);

/* SET ... NX: status "OK" = 1, nil = 0. */
int shreply_set_nx_parse(const redisReply *r, int *granted, rf_err *err);

/* ---- breakers ---- */

typedef struct shreply_breaker {
    char provider[SHARED_NAME_MAX + 1];
    char model[SHARED_NAME_MAX + 1];        /* "" = provider-wide */
    int64_t until_ms, at_ms;                /* Redis server time */
    char host[SHARED_HOST_ID_MAX + 1];
    char reason[SHARED_REASON_MAX + 1];     /* control characters replaced by ' ' */
} shreply_breaker;

/* A P:brk field, "PROV" or "PROV:MODEL" (escaped components, PROV not empty), into
 * b->provider and b->model.  0, or -1 when it is not one. */
int shreply_breaker_field(const char *field, size_t len, shreply_breaker *b);

/* A P:brk value, "1|UNTIL|AT|HOST|REASON", into b's other fields.  UNTIL and AT are
 * decimal 0 .. SHARED_NUSD_MAX; HOST is 1 .. SHARED_HOST_ID_MAX bytes without '|' or
 * control characters; REASON is the rest (cut).  0, or -1. */
int shreply_breaker_value(const char *value, size_t len, shreply_breaker *b);

/* Sync script: {now_ms, {field, value, ...}, {spent, reserved, host} x nwin}.  Breaker
 * entries that do not parse are skipped and counted in skipped. */
typedef struct shreply_sync {
    int64_t now_ms;
    shreply_breaker *breakers;   /* owned (malloc'd), nbreakers entries; NULL when none */
    size_t nbreakers;
    size_t skipped;
    int n;
    shreply_win w[SHREPLY_WINDOWS_MAX];
} shreply_sync;

/* 0 (free out with shreply_sync_free), or -1 with EIO (or ENOMEM) and out zeroed. */
int shreply_sync_parse(const redisReply *r, int nwin, shreply_sync *out, rf_err *err);
void shreply_sync_free(shreply_sync *out);

/* ---- connection ---- */

/* An integer reply. */
int shreply_integer_parse(const redisReply *r, long long *v, rf_err *err);

/* TIME: {seconds, microseconds} as decimal strings -> ms since the epoch. */
int shreply_time_parse(const redisReply *r, int64_t *ms, rf_err *err);

/* SCRIPT LOAD: 40 hex digits (lower-cased into sha[41]). */
int shreply_sha_parse(const redisReply *r, char sha[41], rf_err *err);

/* A status reply equal to expect ("OK", "PONG"). */
int shreply_status_parse(const redisReply *r, const char *expect, rf_err *err);

/* Is r an error reply?  If so, 1 with its text in buf (one line: control characters
 * replaced by ' ', cut to fit); else 0 (buf ""). */
int shreply_error_text(const redisReply *r, char *buf, size_t len);

/* Is r the error NOSCRIPT (the script cache was flushed: load and run again)? */
int shreply_is_noscript(const redisReply *r);

#endif
