/* sim.h — routefs-sim internals shared between its files.
 *
 * routefs-sim is a fake OpenAI-compatible provider for tests, benchmarks and the offline
 * demo.  The pieces:
 *   sim.c    command line, the HTTP daemon, signals, shutdown
 *   http.c   the request handler: routing, chat replies, control and stats endpoints
 *   state.c  behaviours (what a model does) and per-model request statistics
 *   hostile.c the hostile-provider corpus: bad bodies, bad framing, bad pacing
 *   timer.c  the wake-up thread that resumes suspended connections when their delay ends
 * Delays never hold a thread: a delayed connection is suspended in libmicrohttpd and the
 * timer resumes it, so thousands of slow requests cost memory, not threads. */
#ifndef RFS_SIM_H
#define RFS_SIM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#ifndef ROUTEFS_VERSION
#define ROUTEFS_VERSION "0.1.0"
#endif

#define SIM_LAST_BODY_MAX (64 * 1024)   /* bytes of a request body kept for /stats */

/* ---- sim.c ---- */

extern bool sim_quiet;                  /* --quiet: no informational lines on stderr */
extern atomic_bool sim_stopping;        /* set once shutdown has begun */

/* One informational line on stderr, prefixed "routefs-sim: "; silent under --quiet. */
void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic clock in nanoseconds: delays and fail_for_ms are measured on it. */
uint64_t sim_now_ns(void);

/* Length of the longest prefix of s[0..len) that is at most max bytes and does not end
 * inside a UTF-8 sequence, so cutting there keeps valid UTF-8 valid. */
size_t sim_utf8_cut(const char *s, size_t len, size_t max);

/* ---- http.c ---- */

/* The libmicrohttpd access handler (MHD_AccessHandlerCallback); cls is unused. */
enum MHD_Result sim_http_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **req_cls);

/* Frees what sim_http_handle() attached to a request (MHD_OPTION_NOTIFY_COMPLETED). */
void sim_http_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                        enum MHD_RequestTerminationCode toe);

/* ---- state.c ---- */

enum sim_mode {
    SIM_MODE_OK,
    SIM_MODE_HANG,
    SIM_MODE_CLOSE,
    SIM_MODE_MALFORMED,
    SIM_MODE_TRUNCATED,
    SIM_MODE_ERROR_OBJECT,
    SIM_MODE_FINISH_ERROR,
    SIM_MODE_NO_CHOICES,
    SIM_MODE_EMPTY_CONTENT,
    SIM_MODE_HTML,
    /* The hostile-provider corpus (hostile.c): from here on, every mode is built there. */
    SIM_MODE_MISSING_CHOICES,
    SIM_MODE_CHOICES_NOT_ARRAY,
    SIM_MODE_MESSAGE_NOT_OBJECT,
    SIM_MODE_CONTENT_NUMBER,
    SIM_MODE_INVALID_UTF8,
    SIM_MODE_NUL_CONTENT,
    SIM_MODE_DUP_KEYS,
    SIM_MODE_USAGE_GARBAGE,
    SIM_MODE_TOP_ARRAY,
    SIM_MODE_OBJECT_ERROR,
    SIM_MODE_EMPTY_BODY,
    SIM_MODE_TRAILING_GARBAGE,
    SIM_MODE_BOM,
    SIM_MODE_BINARY_BODY,
    SIM_MODE_DEEP_NESTING,
    SIM_MODE_TEXT_PLAIN,
    SIM_MODE_GZIP,
    SIM_MODE_SSE,
    SIM_MODE_REDIRECT,
    SIM_MODE_RETRY_AFTER_YEARS,
    SIM_MODE_STATUS_204,
    SIM_MODE_STATUS_304,
    SIM_MODE_INTERIM_ONLY,
    SIM_MODE_CONFLICTING_LENGTH,
    SIM_MODE_RESET,
    SIM_MODE_HUGE,
    SIM_MODE_HUGE_CHUNKED,
    SIM_MODE_DRIP,
    SIM_MODE_CHUNKED_FOREVER,
    SIM_MODE_LONG_HEADER,       /* raw: written to the socket, see hostile.c */
    SIM_MODE_NO_STATUS_LINE,    /* raw */
    SIM_MODE_HEADERS_ONLY,      /* raw */
    SIM_MODE_SHORT_LENGTH,      /* raw */
};
#define SIM_MODE_FIRST_HOSTILE SIM_MODE_MISSING_CHOICES

/* What a model does.  Immutable once installed; a request holds a reference while it
 * builds its reply, so replacing a behaviour never pulls it from under a request. */
typedef struct sim_behaviour {
    long latency_ms;            /* delay before responding, 0 = none */
    int status;                 /* HTTP status while failing, 0 = mode's own */
    enum sim_mode mode;
    long fail_first;            /* fail only the first N requests; -1 = no limit */
    long fail_for_ms;           /* fail only this long after install; -1 = no limit */
    bool has_cost;
    double cost;                /* usage.cost */
    char *retry_after;          /* Retry-After header while failing, or NULL */
    char *error_message;        /* message of status errors, or NULL for the default */
    char *content;              /* reply content, or NULL for the echo */
    char *provider;             /* reply "provider", or NULL for "Sim" */
    char *served_model;         /* reply "model", or NULL for the requested one */
    uint64_t installed_ns;      /* when it was installed (sim_now_ns) */
    uint64_t generation;        /* unique per install: fail_first counts restart on change */
    atomic_int refs;
} sim_behaviour;

/* What one chat request should do, decided under the state lock. */
typedef struct sim_verdict {
    sim_behaviour *behaviour;   /* referenced: pass to sim_behaviour_release() */
    bool failing;               /* status/mode/retry_after apply; else it is a plain "ok" */
    uint64_t serial;            /* 1, 2, 3, ... over all chat requests: the reply id */
} sim_verdict;

/* Parse a behaviour object; the key "model" is skipped when skip_model is set.  Unknown
 * keys and wrong types are errors (a typo in a test script must not pass silently).
 * Returns NULL with a message in err on failure. */
sim_behaviour *sim_behaviour_parse(const cJSON *obj, bool skip_model, char *err, size_t errlen);
void sim_behaviour_release(sim_behaviour *b);

/* Install the startup behaviours: script (an object model -> behaviour, may be NULL) and
 * default_latency_ms (>= 0 overrides the latency of "*").  Returns -1 with err set. */
int sim_state_init(const cJSON *script, long default_latency_ms, char *err, size_t errlen);
void sim_state_free(void);

/* Count a chat request for model, remember its body and Authorization header (auth may be
 * NULL), and decide what it gets. */
void sim_state_record(const char *model, const char *body, size_t body_len, const char *auth,
                      sim_verdict *out);

/* Count a chat request that never named a model (bad JSON and the like): only "total". */
void sim_state_record_invalid(void);

/* Replace the behaviour of model ("*" = the default); takes over b's reference.
 * Returns -1 when out of memory (b is then released). */
int sim_state_set_behaviour(const char *model, sim_behaviour *b);

/* Back to the startup behaviours, all counts zeroed. */
void sim_state_reset(void);

/* The /stats document, malloc'd; NULL when out of memory. */
char *sim_state_stats_json(void);

/* ---- http.c (continued) ---- */

/* The chat.completion document answering request (mode decides the content,
 * finish_reason and whether there is a choice at all: ok, finish_error, empty_content,
 * no_choices); NULL when out of memory. */
cJSON *sim_completion_doc(const cJSON *request, const char *model, const sim_verdict *v,
                          enum sim_mode mode);

/* A response owning text (malloc'd; freed here on failure); NULL when out of memory. */
struct MHD_Response *sim_text_response(char *text, size_t len, const char *content_type);

/* ---- hostile.c ---- */

/* Is mode built by hostile.c (a corpus entry added after "html")? */
static inline bool sim_mode_is_hostile(enum sim_mode mode)
{
    return mode >= SIM_MODE_FIRST_HOSTILE;
}

/* Does mode bypass libmicrohttpd's framing (bytes written straight to the socket)? */
bool sim_hostile_is_raw(enum sim_mode mode);

/* The response of a hostile mode that libmicrohttpd frames; sets *status (forced, when
 * nonzero, replaces the mode's own status).  conn is kept by the paced and resetting
 * bodies (it outlives its response).  NULL when out of memory. */
struct MHD_Response *sim_hostile_response(struct MHD_Connection *conn, const cJSON *request,
                                          const char *model, const sim_verdict *v,
                                          enum sim_mode mode, unsigned int forced,
                                          unsigned int *status);

/* The bytes of a raw mode, malloc'd, to be written to the socket as they are before the
 * connection is closed; NULL when out of memory. */
char *sim_hostile_raw(const cJSON *request, const char *model, const sim_verdict *v,
                      enum sim_mode mode, unsigned int forced, size_t *len);

/* Write len bytes to conn's socket, behind libmicrohttpd's back (only before any response
 * was queued on it), waiting at most a few seconds for room.  False when the peer went
 * away or time ran out. */
bool sim_raw_send(struct MHD_Connection *conn, const char *data, size_t len);

/* ---- timer.c ---- */

int sim_timer_start(void);

/* Suspend conn (from inside its access handler or content reader) and resume it at
 * wake_ns.  Returns false, leaving conn alone, once the timer is stopping or when out of
 * memory. */
bool sim_timer_suspend(struct MHD_Connection *conn, uint64_t wake_ns);

/* Resume every connection still waiting and stop the thread.  After this returns no
 * connection is suspended, so MHD_stop_daemon() is safe. */
void sim_timer_stop(void);

#endif
