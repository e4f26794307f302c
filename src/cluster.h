/* cluster.h — this mount as one host among several on a shared prefix (the config's
 * "shared" section): whether to ask Redis now, what a cap means while it is down, the
 * windows a job's spend goes to, breakers seen by other hosts, and the shared state in
 * status, providers.json, spend.json and metrics.prom.
 *
 * shared.h does the talking to Redis; this module decides what this host makes of it.
 * Without a "shared" section every function here says "off" and changes nothing.  The
 * section is read at mount: a live edit of it is refused with a message (remount to
 * change where the shared state lives).
 *
 * Thread-safe: the state is set at start and stop (single-threaded), the rest only reads
 * it or calls into shared.c, which never blocks. */
#ifndef RF_CLUSTER_H
#define RF_CLUSTER_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "breakers.h"
#include "budget.h"
#include "config.h"
#include "err.h"
#include "shared.h"

/* What an attempt does about shared state right now. */
typedef enum {
    CLUSTER_OFF = 0,   /* no "shared" section: everything local */
    CLUSTER_ON,        /* Redis answers (connected or degraded): ask it */
    CLUSTER_WAIT,      /* Redis is down, "on_shared_down": "wait": whatever needs it waits */
    CLUSTER_LOCAL      /* Redis is down, "local": enforce local_share of caps and limits */
} cluster_posture;

/* Start the shared state for cfg->shared (nothing when NULL).  state_path: the state
 * directory, which with the host name makes this host's id ("HOST:1a2b3c4d").  Tells
 * Redis what this host's ledger already holds for today and this month (overall and per
 * tier), so a Redis that started empty still sees every host's spend.  Installs the
 * remote view of breakers (breakers_set_remote).  0, or -1 with err (bad host name,
 * rediss://, a password variable unset...). */
int cluster_start(const rf_config *cfg, const char *state_path, budget *b, rf_breakers *brk,
                  rf_err *err);

/* Stop: every request still waiting on Redis gets its callback (ECANCELED) before this
 * returns.  Call after upstream_stop and before runner_shutdown. */
void cluster_stop(void);

/* NULL when off.  Borrowed; valid until cluster_stop. */
shared *cluster_shared(void);

/* The posture now; *share (may be NULL) = local_share under CLUSTER_LOCAL, else 1. */
cluster_posture cluster_now(double *share);

/* The shared windows a job of tier spends in under cfg, with cfg's caps. */
int cluster_caps(const rf_config *cfg, const char *tier, shared_caps *out, rf_err *err);

/* A cap already used up by every host's settled spend (the last totals seen, never a
 * round trip): -1 with EDQUOT and "daily cap $5.00 reached: $5.01 spent (all hosts)",
 * else 0.  For open()/write() of a prompt, like budget_check_admission. */
int cluster_check_admission(const rf_config *cfg, const char *tier, rf_err *err);

/* A local breaker transition: publish it to the other hosts (open with its end, closed). */
void cluster_breaker_event(const breaker_event *ev);

/* Views for the virtual files.  cJSON objects the caller frees; NULL when off (or out of
 * memory).  spend: {"state", "host", "prefix", "windows": {"daily"|"monthly"|"tier:T":
 * {"window", "cap", "spent", "reserved", "this_host", "at"}}}; providers: {"state",
 * "host", "breakers": [{"provider", "model", "reopens_at", "host", "reason"}]}. */
cJSON *cluster_spend_json(const rf_config *cfg);
cJSON *cluster_providers_json(void);

/* One line for status ("shared: connected to 127.0.0.1:6379/0, prefix team-a, ..."),
 * malloc'd without '\n'; NULL when off. */
char *cluster_status_line(void);

/* metrics.prom lines (routefs_shared_*), malloc'd; NULL when off. */
char *cluster_metrics_text(void);

#endif
