/* sim.h — routefs-sim internals shared between its files.
 *
 * routefs-sim is a fake OpenAI/OpenRouter-compatible provider for tests, benchmarks and
 * the offline demo.  The pieces:
 *   sim.c        command line, the HTTP daemon, signals, shutdown (help.c: --help text)
 *   http.c       the request handler: routing, control and stats endpoints, reply helpers
 *   chat.c       one chat request: the models tried, the verdict, accounting, the
 *                generation record it leaves behind
 *   reply.c      what a chat reply says: content, usage, cost, error bodies
 *   stream.c     streamed (SSE) chat replies, paced by the timer
 *   echo.c       the forms in which a hostile provider echoes the caller's key
 *   behaviour.c  parsing behaviours (what a model does)
 *   state.c      per-model request statistics and the installed behaviours
 *   openrouter.c the OpenRouter extras: /api/v1/models, /api/v1/key, /api/v1/generation
 *   hostile.c    the hostile-provider corpus: bad bodies (hostile_stream.c: bad framing
 *                and pacing, raw socket writes)
 *   timer.c      the wake-up thread that resumes suspended connections when their delay ends
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
#define SIM_LIVENESS_CHECK_NS (500ULL * 1000 * 1000)   /* waiting connections look this often */

/* ---- sim.c ---- */

extern bool sim_quiet;                  /* --quiet: no informational lines on stderr */
extern atomic_bool sim_stopping;        /* set once shutdown has begun */
extern const char sim_usage_text[];     /* help.c: the --help text */

/* One informational line on stderr, prefixed "routefs-sim: "; silent under --quiet. */
void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic clock in nanoseconds: delays and fail_for_ms are measured on it. */
uint64_t sim_now_ns(void);

/* Milliseconds since the sim started, on the monotonic clock (arrivals_ms). */
uint64_t sim_uptime_ms(void);

/* Length of the longest prefix of s[0..len) that is at most max bytes and does not end
 * inside a UTF-8 sequence, so cutting there keeps valid UTF-8 valid. */
size_t sim_utf8_cut(const char *s, size_t len, size_t max);

/* ---- behaviour.c ---- */

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
    SIM_MODE_RESET_BEFORE_HEADERS,   /* a TCP reset instead of any response (chat.c) */
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
    SIM_MODE_LONG_HEADER,       /* raw: written to the socket, see hostile_stream.c */
    SIM_MODE_NO_STATUS_LINE,    /* raw */
    SIM_MODE_HEADERS_ONLY,      /* raw */
    SIM_MODE_SHORT_LENGTH,      /* raw */
};
#define SIM_MODE_FIRST_HOSTILE SIM_MODE_MISSING_CHOICES

enum sim_usage_mode {
    SIM_USAGE_FULL,     /* tokens and, when priced, cost */
    SIM_USAGE_TOKENS,   /* tokens only */
    SIM_USAGE_NONE,     /* no usage block at all */
};

/* How a reply echoes the caller's key (echo_auth, echo_auth_ok); see echo.c. */
enum sim_echo {
    SIM_ECHO_NONE,
    SIM_ECHO_RAW,
    SIM_ECHO_JSON_ESCAPED,
    SIM_ECHO_PERCENT,
    SIM_ECHO_UPPER,
    SIM_ECHO_LOWER,
    SIM_ECHO_PREFIX8,
    SIM_ECHO_ALL,
};

/* One entry of fail_pattern: a status (0 = the mode's own) and a mode. */
typedef struct sim_pattern_step {
    int status;
    enum sim_mode mode;
} sim_pattern_step;

/* How a streamed reply unfolds; -1 = off for the counts. */
typedef struct sim_stream_spec {
    long first_token_ms;        /* wait before the first content token */
    long token_ms;              /* wait between tokens */
    long keepalive_ms;          /* ": OPENROUTER PROCESSING" this often while silent; 0 off */
    long cut_after;             /* close after N tokens, unfinished */
    long stall_after, stall_ms; /* after N tokens silence for M ms, then close */
    long malformed_at;          /* the N-th data event is invalid JSON */
    long error_at;              /* after N tokens an error chunk ends the stream */
    bool no_done, no_finish, finish_error;
} sim_stream_spec;

/* What a model does.  Immutable once installed; a request holds a reference while it
 * builds its reply, so replacing a behaviour never pulls it from under a request. */
typedef struct sim_behaviour {
    long latency_ms;            /* delay before responding, 0 = none */
    int status;                 /* HTTP status while failing, 0 = mode's own */
    enum sim_mode mode;
    long fail_first;            /* fail only the first N requests; -1 = no limit */
    long fail_for_ms;           /* fail only this long after install; -1 = no limit */
    sim_pattern_step *fail_pattern;   /* owned; per-request status/mode, or NULL */
    size_t fail_pattern_len;
    bool fail_pattern_repeat;   /* cycle through it, else plain "ok" once it ran out */
    bool has_cost;
    double cost;                /* usage.cost (and the charge, unless charge_usd/price) */
    bool has_charge;
    double charge_usd;          /* what each 2xx answer is billed */
    bool has_price;
    double price_prompt, price_completion;   /* USD per million tokens */
    enum sim_usage_mode usage;
    char *report_cost;          /* JSON text put in usage.cost as it is, or NULL */
    long prompt_tokens;         /* usage overrides, -1 = computed */
    long completion_tokens;
    long tokens;                /* reply of exactly N tokens "tok1 tok2 ...", -1 = off */
    bool key_limit;             /* while failing: 403 "Key limit exceeded" */
    long generation_delay_ms;   /* /api/v1/generation knows a generation this long after */
    char *error_metadata;       /* JSON object text for error.metadata, or NULL */
    enum sim_echo echo_auth;    /* while failing: 401 echoing the key in this form */
    enum sim_echo echo_auth_ok; /* 200 whose "model" echoes the key in this form */
    sim_stream_spec stream;
    char *retry_after;          /* Retry-After header while failing, or NULL */
    char *error_message;        /* message of status errors, or NULL for the default */
    char *content;              /* reply content, or NULL for the echo */
    char *provider;             /* reply "provider", or NULL for "Sim" */
    char *served_model;         /* reply "model", or NULL for the requested one */
    uint64_t installed_ns;      /* when it was installed (sim_now_ns) */
    uint64_t generation;        /* unique per install: fail_first counts restart on change */
    atomic_int refs;
} sim_behaviour;

/* Parse a behaviour object; the key "model" is skipped when skip_model is set.  Unknown
 * keys and wrong types are errors (a typo in a test script must not pass silently).
 * Returns NULL with a message in err on failure. */
sim_behaviour *sim_behaviour_parse(const cJSON *obj, bool skip_model, char *err, size_t errlen);
sim_behaviour *sim_behaviour_new(void);   /* the plain default; NULL when out of memory */
sim_behaviour *sim_behaviour_ref(sim_behaviour *b);
void sim_behaviour_release(sim_behaviour *b);

/* ---- state.c ---- */

/* What one attempt of a chat request at one model should do, decided under the state
 * lock; the reply builders also read the request facts below it. */
typedef struct sim_verdict {
    sim_behaviour *behaviour;   /* referenced: pass to sim_behaviour_release() */
    bool failing;               /* the behaviour's faults apply; else it is a plain "ok" */
    enum sim_mode mode;         /* effective mode (SIM_MODE_OK when not failing) */
    unsigned int status;        /* effective forced status, 0 = the mode's own */
    uint64_t serial;            /* 1, 2, 3, ... over all chat requests: the reply id */
    /* Set by chat.c before a reply is built; all borrowed, NULL when absent. */
    const char *service_tier;   /* echoed from the request */
    const cJSON *or_metadata;   /* openrouter_metadata to attach to a success */
    const char *model_literal;  /* JSON text replacing "model" (echo_auth_ok) */
} sim_verdict;

/* Does v answer with an error (non-2xx status, a fault mode, a key limit or key echo)?
 * Such an attempt makes a request with "models" move on to the next model. */
bool sim_verdict_is_error(const sim_verdict *v);

/* Install the startup behaviours: script (an object model -> behaviour, may be NULL; the
 * key "models" is the /api/v1/models list, not a model) and default_latency_ms (>= 0
 * overrides the latency of "*").  Returns -1 with err set. */
int sim_state_init(const cJSON *script, long default_latency_ms, char *err, size_t errlen);
void sim_state_free(void);

/* Count one chat request (valid or not) in "total"; returns its serial (the reply id). */
uint64_t sim_state_count_request(void);

/* Count an attempt at model for the current request: remember its body and Authorization
 * header (auth may be NULL), its arrival, and decide what it gets.  A refused attempt (a
 * key over its limit) is counted but does not advance fail_first/fail_pattern. */
void sim_state_record(const char *model, uint64_t serial, const char *body, size_t body_len,
                      const char *auth, bool stream, bool refused, sim_verdict *out);

/* Count a chat request that never named a model (bad JSON and the like): only "total". */
void sim_state_record_invalid(void);

/* One more (delta 1) or one fewer (-1) request of model in flight. */
void sim_state_in_flight(const char *model, int delta);

/* Bill usd to model (a 2xx answer went out). */
void sim_state_charge(const char *model, double usd);

/* A stream of model ended: add its tokens, and count it cancelled when the client left. */
void sim_state_stream_done(const char *model, uint64_t tokens_sent, bool cancelled);

/* Count a request to an OpenRouter endpoint, by its /api/v1 name. */
void sim_state_count_endpoint(const char *name);

/* Replace the behaviour of model ("*" = the default); takes over b's reference.
 * Returns -1 when out of memory (b is then released). */
int sim_state_set_behaviour(const char *model, sim_behaviour *b);

/* [{"id": M, "prompt": USD/Mtok, "completion": USD/Mtok}] for every model whose behaviour
 * has a price, sorted by id; NULL when out of memory. */
cJSON *sim_state_priced_models(void);

/* Back to the startup behaviours, all counts zeroed. */
void sim_state_reset(void);

/* The /stats document, malloc'd; NULL when out of memory. */
char *sim_state_stats_json(void);

/* ---- http.c ---- */

enum sim_phase {
    SIM_PHASE_RECEIVING,   /* headers and body still arriving, nothing decided */
    SIM_PHASE_WAITING,     /* decided; suspended until due (or forever, for "hang") */
    SIM_PHASE_SENT,        /* the reply is queued */
};

enum sim_outcome {
    SIM_OUTCOME_REPLY,     /* queue `response` */
    SIM_OUTCOME_CLOSE,     /* drop the connection without a word */
    SIM_OUTCOME_HANG,      /* never answer */
    SIM_OUTCOME_RAW,       /* write `raw` to the socket ourselves, then close */
    SIM_OUTCOME_RESET,     /* a TCP reset, no byte of response */
};

struct sim_chat;   /* chat.c: one chat request's bookkeeping */

/* One HTTP request, across the many calls libmicrohttpd makes for it. */
typedef struct sim_exchange {
    enum sim_phase phase;
    char *body;                      /* request body, NUL-terminated once non-NULL */
    size_t body_len, body_cap;
    bool body_too_large;
    enum sim_outcome outcome;
    struct MHD_Response *response;   /* the reply to queue once due */
    char *raw;                       /* SIM_OUTCOME_RAW: the bytes to write once due */
    size_t raw_len;
    unsigned int status;             /* of `response` or `raw` */
    uint64_t due_ns;                 /* when the reply (or close) is due */
    struct sim_chat *chat;           /* owned; chat requests only */
} sim_exchange;

/* The libmicrohttpd access handler (MHD_AccessHandlerCallback); cls is unused. */
enum MHD_Result sim_http_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **req_cls);

/* Frees what sim_http_handle() attached to a request (MHD_OPTION_NOTIFY_COMPLETED). */
void sim_http_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                        enum MHD_RequestTerminationCode toe);

/* Act on a decided exchange: wait (suspended) until due, then reply, close or reset. */
enum MHD_Result sim_http_proceed(struct MHD_Connection *conn, sim_exchange *ex);

/* A response owning text (malloc'd; freed here on failure); NULL when out of memory. */
struct MHD_Response *sim_text_response(char *text, size_t len, const char *content_type);

/* A JSON response from doc, which is consumed; NULL when out of memory. */
struct MHD_Response *sim_json_response(cJSON *doc);

/* A response from a string constant: no copy, nothing to free. */
struct MHD_Response *sim_static_response(const char *text, const char *content_type);

/* {"error":{"message":..., "type":..., "code":...}}; type may be NULL. */
cJSON *sim_error_doc(const char *message, const char *type, int code);

/* Queue r (consumed); a NULL r means we ran out of memory: drop the connection. */
enum MHD_Result sim_queue_reply(struct MHD_Connection *conn, unsigned int status,
                                struct MHD_Response *r);

/* Parse a request body as a JSON object; NULL when it is not one. */
cJSON *sim_parse_body(const sim_exchange *ex);

/* The client closed its end while we were waiting? */
bool sim_peer_gone(struct MHD_Connection *conn);

/* ---- chat.c ---- */

/* POST .../chat/completions: decide, and reply or wait (ex->phase) as decided. */
enum MHD_Result sim_chat_handle(struct MHD_Connection *conn, sim_exchange *ex);

/* The reply of ex (status) went out: bill it when 2xx. */
void sim_chat_sent(struct sim_chat *chat, unsigned int status);

/* The request ended (toe as libmicrohttpd says): settle counts, keep the generation. */
void sim_chat_completed(struct sim_chat *chat, enum MHD_RequestTerminationCode toe);
void sim_chat_free(struct sim_chat *chat);

/* ---- reply.c ---- */

/* What a chat reply carries, worked out once for the body, the stream and the bill. */
typedef struct sim_usage {
    char *content;              /* owned; NULL = JSON null */
    long prompt_tokens, completion_tokens;
    double charge;              /* what the sim bills for a 2xx answer */
    bool has_usage;             /* a usage block at all */
    bool has_cost;              /* usage.cost present */
    const char *cost_literal;   /* borrowed JSON text for usage.cost, or NULL: charge */
} sim_usage;

/* Work out content, tokens and cost of the reply to request at model under v and mode
 * (ok, finish_error, empty_content change the content).  -1 when out of memory. */
int sim_usage_plan(const cJSON *request, const char *model, const sim_verdict *v,
                   enum sim_mode mode, sim_usage *out);
void sim_usage_free(sim_usage *u);

/* The usage object of u (NULL when u has none, or out of memory: check u->has_usage). */
cJSON *sim_usage_json(const sim_usage *u);

/* The chat.completion document answering request (mode decides the content,
 * finish_reason and whether there is a choice at all: ok, finish_error, empty_content,
 * no_choices); NULL when out of memory. */
cJSON *sim_completion_doc(const cJSON *request, const char *model, const sim_verdict *v,
                          enum sim_mode mode);

/* The "model" of a reply: the behaviour's served_model, else the requested one. */
const char *sim_served_model(const sim_verdict *v, const char *model);
const char *sim_provider_name(const sim_verdict *v);

/* An OpenRouter-style error body {"error":{"code":N,"message":...,"metadata":...}};
 * metadata (JSON object text) may be NULL.  NULL when out of memory. */
cJSON *sim_or_error_doc(int code, const char *message, const char *metadata);

/* Build the reply for a chat request that is to be answered at once (not streamed, not
 * raw, not a close); sets *status.  auth (may be NULL) feeds echo_auth. */
struct MHD_Response *sim_chat_reply(struct MHD_Connection *conn, const cJSON *request,
                                    const char *model, const sim_verdict *v,
                                    const char *auth, unsigned int *status);

/* ---- stream.c ---- */

typedef struct sim_stream sim_stream;   /* shared by the response and its request */

/* What a stream did, read once it is over. */
typedef struct sim_stream_outcome {
    bool ended_by_us;           /* finished, cut or stalled as planned: not the client */
    uint64_t tokens_sent;
    uint64_t first_token_ns;    /* when the first content token went out, 0 = never */
    const char *finish_reason;  /* "stop", "error", or NULL when it never finished */
} sim_stream_outcome;

/* A text/event-stream response streaming the reply to request; *out gets a reference to
 * the stream (release it with sim_stream_release).  NULL when out of memory. */
struct MHD_Response *sim_stream_response(struct MHD_Connection *conn, const cJSON *request,
                                         const char *model, const sim_verdict *v,
                                         bool include_usage, sim_stream **out);
void sim_stream_get_outcome(sim_stream *s, sim_stream_outcome *out);
void sim_stream_release(sim_stream *s);

/* The reply content split into stream tokens: whitespace-separated words, each with the
 * whitespace before it, so they concatenate back to content.  *count tokens; returns
 * malloc'd offsets (count + 1 of them, the last = strlen), NULL when out of memory. */
size_t *sim_stream_tokens(const char *content, size_t *count);

/* ---- echo.c ---- */

/* The key of an Authorization header: the value without "Bearer ". */
const char *sim_auth_key(const char *auth);

/* A JSON string literal (quotes included) of prefix then key in form, malloc'd; NULL
 * when out of memory. */
char *sim_echo_literal(const char *prefix, const char *key, enum sim_echo form);

/* Parse an echo form name; false when unknown. */
bool sim_echo_parse(const char *name, enum sim_echo *out);

/* ---- openrouter.c ---- */

/* Startup /api/v1/models content: script_models ([...] or {"data": [...]}, may be NULL:
 * derived from the priced behaviours).  -1 with err set. */
int sim_or_init(const cJSON *script_models, char *err, size_t errlen);
void sim_or_reset(void);   /* startup models, no key settings, no usage, no generations */
void sim_or_free(void);

/* Is the key of auth (NULL = no header) over the /control/key limit?  Then retry_after
 * gets the seconds until its reset ("" when it never resets). */
bool sim_key_over_limit(const char *auth, char *retry_after, size_t len);

/* Bill usd to the key of auth. */
void sim_key_charge(const char *auth, double usd);

/* Keep a generation record (data is consumed) for /api/v1/generation, known from
 * available_ns on; the oldest goes past SIM_GENERATIONS_KEPT. */
#define SIM_GENERATIONS_KEPT 10000
void sim_generation_store(const char *id, cJSON *data, uint64_t available_ns);

/* The endpoints: GET /api/v1/models, /api/v1/key, /api/v1/generation?id=;
 * POST /control/models, /control/key. */
enum MHD_Result sim_or_models(struct MHD_Connection *conn);
enum MHD_Result sim_or_key(struct MHD_Connection *conn);
enum MHD_Result sim_or_generation(struct MHD_Connection *conn);
enum MHD_Result sim_or_control_models(struct MHD_Connection *conn, const sim_exchange *ex);
enum MHD_Result sim_or_control_key(struct MHD_Connection *conn, const sim_exchange *ex);

/* ---- hostile.c, hostile_stream.c ---- */

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

/* Make conn's connection end with a TCP reset (RST) the moment it is closed. */
void sim_socket_reset(struct MHD_Connection *conn);

/* hostile_stream.c: the framing-over-time bodies (text consumed; NULL when out of memory). */
struct MHD_Response *sim_huge_response(const cJSON *request, const char *model,
                                       const sim_verdict *v, bool chunked);
struct MHD_Response *sim_paced_response(struct MHD_Connection *conn, char *text, size_t len,
                                        bool forever);
struct MHD_Response *sim_reset_response(struct MHD_Connection *conn, char *text, size_t len);
struct MHD_Response *sim_conflicting_length_response(char *text, size_t len);

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
