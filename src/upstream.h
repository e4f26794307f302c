/* upstream.h — the one libcurl event loop that carries every provider request.
 *
 * Model.  One thread ("rfs-upstream") owns a curl multi handle driven by
 * curl_multi_socket_action over epoll: curl tells the loop which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when to call it back (CURLMOPT_TIMERFUNCTION), so a wake-up
 * costs O(sockets that are ready), not O(requests in flight).  Other threads hand work in
 * with upstream_submit / upstream_after / upstream_post / upstream_cancel: these take a
 * lock, queue, and wake the loop through an eventfd; they never block on the network.
 * Every callback (on_data, done, timers, posts) runs on the loop thread, one at a time.
 *
 * Time.  Every deadline and latency is on CLOCK_MONOTONIC.  A request can carry three
 * limits, each measured from upstream_submit:
 *   timeout_ms              the whole attempt                      -> RF_TE_TIMEOUT
 *   first_token_timeout_ms  until the first PROGRESS               -> RF_TE_FIRST_TOKEN
 *   stall_timeout_ms        the longest silence between PROGRESS
 *                           events, once the first one has arrived -> RF_TE_STALL
 * The error text names the limit that fired ("no first token within 2000 ms").
 *
 * Streaming.  With on_data set, each chunk of the response body is handed to it as it
 * arrives and a 2xx body is not kept (res->body NULL); what on_data returns says whether
 * a token arrived (PROGRESS) or only bytes (CONTINUE, e.g. SSE comments), or stops the
 * transfer (ABORT).  A non-2xx body is also handed to on_data, and is collected as well
 * (capped by max_response) so the caller can parse the error; for such a body every byte
 * counts as progress.  Without on_data the whole body is collected and every body byte
 * is progress.  Response headers are never progress.
 *
 * File descriptors.  At start the loop takes a socket budget: the RLIMIT_NOFILE soft limit
 * minus a reserve of 64 for the rest of the daemon, at least 8.  curl never holds more
 * connections than that; transfers beyond it wait inside curl for a free connection.  A
 * socket that cannot be opened (EMFILE/ENFILE) fails its transfer with RF_TE_CONNECT,
 * "too many open files".  So that one tier whose provider never answers cannot hold every
 * connection while another tier's requests wait behind it, the budget (less 4 kept for
 * lookups outside any tier) is divided among the config's tiers when their concurrency
 * adds up to more: upstream_tier_share, which the job dispatcher applies.
 *
 * Secrets.  The API key lives only in the request's header list, wiped before it is
 * freed.  Error text never contains it; bodies (collected or streamed) have every raw copy
 * of it replaced by "[REDACTED]" before anyone sees them (the other forms a server may
 * echo it in are redact.c's, at the sinks). */
#ifndef RF_UPSTREAM_H
#define RF_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "router.h"

typedef struct upstream upstream;

#define UPSTREAM_MAX_HEADERS 8

/* What on_data returns. */
enum {
    UPSTREAM_DATA_CONTINUE = 0,  /* bytes seen, no token: satisfies neither timer */
    UPSTREAM_DATA_PROGRESS = 1,  /* a token arrived: satisfies first-token, resets stall */
    UPSTREAM_DATA_ABORT = 2      /* stop the transfer now: done runs with RF_TE_ABORTED */
};

/* Runs on the loop thread with each chunk of the body (borrowed for the call), whatever
 * the status: http_status tells a 2xx stream from an error body (which is also collected
 * into res->body).  ud is upstream_submit's ud. */
typedef int (*upstream_data_fn)(const char *chunk, size_t len, long http_status, void *ud);

typedef struct upstream_request {
    char *url;               /* owned: full URL (http or https) */
    char *body;              /* owned: JSON body (POST); NULL = GET */
    char *api_key;           /* owned: Bearer key or NULL; never logged, wiped when freed */
    long timeout_ms;         /* whole attempt from submit (connect included); 0 = none */
    long first_token_timeout_ms;  /* submit to first progress; 0 = none */
    long stall_timeout_ms;   /* longest silence between progress after the first; 0 = none */
    size_t max_response;     /* body bytes taken, streamed or kept; more fails with
                                RF_TE_TOO_LARGE; 0 = no cap */
    upstream_data_fn on_data;     /* NULL = collect the whole body */
    char *extra_headers[UPSTREAM_MAX_HEADERS];  /* owned, "Name: value"; NULL ends early */
} upstream_request;

typedef struct upstream_result {
    rf_transport_error transport;  /* RF_TE_NONE when an HTTP response arrived whole */
    char error[256];         /* what went wrong, one line, "" when transport is NONE */
    long http_status;        /* 0 when transport != NONE */
    char *body;              /* NUL-terminated collected body; NULL when empty or streamed */
    size_t body_len;
    size_t bytes_received;   /* body bytes that arrived, streamed or collected */
    long retry_after_ms;     /* parsed Retry-After, -1 when absent/unparseable */
    long latency_ms;         /* submit to done */
    long first_token_ms;     /* submit to the first progress; -1 when none came */
} upstream_result;

/* Runs on the loop thread, once per request unless it was cancelled.  `res` and the
 * request are freed by upstream after it returns; take res->body by setting it to NULL. */
typedef void (*upstream_done_fn)(upstream_result *res, void *ud);
typedef void (*upstream_timer_fn)(void *ud);

/* Start the loop thread.  NULL with err on failure. */
upstream *upstream_start(rf_err *err);

/* Stop: requests in flight are abandoned without their callbacks being run; pending
 * timers and posts are dropped.  Sets a flag, wakes and joins the thread (no thread
 * cancellation), frees everything.  Not from the loop thread. */
void upstream_stop(upstream *up);

/* Hand a request to the loop; takes ownership of req (and its strings) whatever happens.
 * Returns a request id > 0 usable with upstream_cancel, or -1 with err. */
long upstream_submit(upstream *up, upstream_request *req, upstream_done_fn done, void *ud,
                     rf_err *err);

/* Free a request that was never submitted (its key wiped).  NULL is ignored. */
void upstream_request_free(upstream_request *req);

/* Cancel a submitted request: neither on_data nor done runs for it afterwards (if one is
 * running right now on the loop thread, this waits for it to return, unless called from
 * the loop thread itself), and its transfer is removed promptly, closing its connection.
 * Returns the body bytes received for it so far, or -1 when the id is unknown or already
 * finished (then nothing happens).  Because it may wait for a callback, never call it
 * holding a lock that a callback takes. */
int64_t upstream_cancel(upstream *up, long id);

/* Body bytes received so far by a live request; -1 when the id is unknown or finished. */
int64_t upstream_bytes_received(upstream *up, long id);

/* Run fn(ud) on the loop thread after delay_ms.  Returns a timer id > 0, or -1 with err. */
long upstream_after(upstream *up, long delay_ms, upstream_timer_fn fn, void *ud, rf_err *err);

/* Run fn(ud) on the loop thread as soon as possible, after every post made before it
 * (FIFO) and before the loop next waits.  Returns an id > 0 for upstream_cancel_timer,
 * or -1 with err. */
long upstream_post(upstream *up, upstream_timer_fn fn, void *ud, rf_err *err);

/* Cancel a timer or post; same guarantee as upstream_cancel.  Unknown ids are ignored. */
void upstream_cancel_timer(upstream *up, long id);

/* Requests currently in flight (submitted, callback not yet finished). */
size_t upstream_in_flight(upstream *up);

/* The most connections the loop will hold open at once (see "File descriptors"). */
long upstream_socket_budget(upstream *up);

/* How many jobs of tier t (a tier of cfg) may be in flight at once: its concurrency, or
 * less when the running loop's socket budget cannot hold every tier's concurrency; then
 * a max-min fair share: tiers wanting little keep all of it, the others get equal shares
 * of the rest, each at least 1.  t->concurrency when no loop runs; 1 when t is NULL. */
int upstream_tier_share(const rf_config *cfg, const rf_tier *t);

/* ---- descriptors (process-wide; see "File descriptors") ----
 * The top of the descriptor table (1/8 of the limit, at most 32) is kept for the store
 * and the daemon's own files: a connection's socket that would fall into it is closed
 * and fails as EMFILE.  Something else that can fail or wait, such as a scratch file,
 * must also leave room for the connections the tiers may still open. */
typedef enum { UPSTREAM_FD_SOCKET = 0, UPSTREAM_FD_SCRATCH } upstream_fd_use;

/* May the caller keep descriptor fd, just opened for a scratch file, with cfg's tiers
 * in force?  0: close it and fail with EMFILE (and count it with upstream_fd_shortage).
 * 1 when no loop runs. */
int upstream_fd_may_keep(int fd, const rf_config *cfg);
/* Count a descriptor that was refused or could not be had (EMFILE/ENFILE). */
void upstream_fd_shortage(upstream_fd_use what);
/* How many were counted; the last one's monotonic time and use, the descriptor limit
 * (any pointer may be NULL). */
long upstream_fd_shortages(int64_t *last_ms, upstream_fd_use *last_what, long *limit);

#endif
