/* upstream.h — the one libcurl multi event loop that carries every provider request.
 *
 * One thread runs curl_multi_poll over all requests in flight, so a thousand jobs cost a
 * thousand easy handles, not a thousand threads.  Other threads hand work in with
 * upstream_submit / upstream_after (thread-safe, never block on the network); completion
 * callbacks and timers run on the loop thread, one at a time. */
#ifndef RF_UPSTREAM_H
#define RF_UPSTREAM_H

#include <stddef.h>
#include "err.h"
#include "router.h"

typedef struct upstream upstream;

typedef struct upstream_request {
    char *url;               /* owned: full URL */
    char *body;              /* owned: JSON body (POST); NULL = GET */
    char *api_key;           /* owned: Bearer key or NULL; never logged */
    long timeout_ms;         /* whole-attempt timeout (connect included) */
    size_t max_response;     /* bytes; larger bodies fail with RF_TE_TOO_LARGE */
    char *extra_headers[4];  /* owned, "Name: value", NULL-terminated early */
} upstream_request;

typedef struct upstream_result {
    rf_transport_error transport;  /* RF_TE_NONE when an HTTP response arrived whole */
    char error[256];         /* transport error text (curl's), "" when none */
    long http_status;        /* 0 when transport failed */
    char *body;              /* NUL-terminated, may be NULL when empty */
    size_t body_len;
    long retry_after_ms;     /* parsed Retry-After, -1 when absent/unparseable */
    long latency_ms;         /* submit-to-done, on the loop's clock */
} upstream_result;

/* Runs on the loop thread.  `res` and the request are freed by upstream after it returns;
 * take res->body by setting it to NULL if you want to keep it. */
typedef void (*upstream_done_fn)(upstream_result *res, void *ud);
typedef void (*upstream_timer_fn)(void *ud);

/* Start the loop thread.  NULL with err on failure. */
upstream *upstream_start(rf_err *err);

/* Stop: requests in flight are abandoned without their callbacks being run; pending
 * timers are dropped.  Joins the thread and frees everything. */
void upstream_stop(upstream *up);

/* Hand a request to the loop; takes ownership of req (and its strings) whatever happens.
 * Returns a request id > 0 usable with upstream_cancel, or -1 with err. */
long upstream_submit(upstream *up, upstream_request *req, upstream_done_fn done, void *ud,
                     rf_err *err);

/* Cancel a submitted request: its callback is never run afterwards (if it is running right
 * now on the loop thread, this waits for it to return, unless called from the loop thread
 * itself).  Unknown or finished ids are ignored. */
void upstream_cancel(upstream *up, long id);

/* Run fn(ud) on the loop thread after delay_ms.  Returns a timer id > 0, or -1 with err. */
long upstream_after(upstream *up, long delay_ms, upstream_timer_fn fn, void *ud, rf_err *err);

/* Cancel a timer; same guarantee as upstream_cancel. */
void upstream_cancel_timer(upstream *up, long id);

/* Requests currently in flight (for status). */
size_t upstream_in_flight(upstream *up);

#endif
