/* openai.h — chat-completion request building and response parsing (cJSON).
 *
 * The one place that knows the OpenAI wire format and OpenRouter's extensions
 * ("provider" preferences, "models", "session_id" in the request; "provider" and
 * usage.cost in the response; error metadata).  A streamed response (SSE) is framed and
 * accumulated by stream.c, which reads each chunk by the same rules (the helpers at the
 * end of this header).  Pure functions: no I/O, no globals, so they are unit-tested and
 * fuzzed directly. */
#ifndef RF_OPENAI_H
#define RF_OPENAI_H

#include <stddef.h>
#include "err.h"

typedef struct openai_request_in {
    const char *model;               /* the hop's model (overrides any "model" in a JSON prompt);
                                        ignored when models is given */
    const char *const *models;       /* OpenRouter server-side fallback: n_models names, or NULL.
                                        When given, "models": [...] is sent and "model" is
                                        models[0] (a prompt's own "models" is always dropped) */
    size_t n_models;
    const char *prompt;              /* the prompt file's bytes */
    size_t prompt_len;
    const char *system_prompt;       /* tier system prompt or NULL; prepended unless the JSON
                                        prompt already starts with a system message */
    int max_tokens;                  /* the tier cap: request's own value is min()'d with it;
                                        always sent */
    int stream;                      /* 1: "stream": true and "stream_options":
                                        {"include_usage": true}; 0: "stream": false */
    const char *user;                /* "pipeline:<tag>" or NULL */
    const char *provider_prefs_json; /* OpenRouter "provider" object (compact JSON) or NULL */
    const char *service_tier;        /* "service_tier" or NULL (a prompt's own is kept then) */
    const char *session_id;          /* OpenRouter "session_id" (sticky routing) or NULL (a
                                        prompt's own is kept then) */
} openai_request_in;

/* Build the JSON body for POST /chat/completions.  A prompt that parses as a JSON object
 * with a "messages" array is a full chat request (its other parameters are kept, "model"
 * is replaced, "stream" and "stream_options" are set from in->stream, the deprecated
 * "route" field and "models" are dropped); anything else is the text of one user message.
 * Returns a malloc'd string, or NULL with err (EINVAL: e.g. "prompt is JSON with
 * \"messages\" but messages is not an array", "models list has an empty name"; EILSEQ
 * when the prompt is not valid UTF-8). */
char *openai_build_request(const openai_request_in *in, rf_err *err);

/* Names of the request parameters a prompt uses beyond model/messages (e.g. "temperature",
 * "tools", "response_format"), for require_parameters.  Always includes "max_tokens".
 * Returns count; *names is a malloc'd array of malloc'd strings (free with
 * openai_free_names). */
size_t openai_request_params(const char *prompt, size_t prompt_len, char ***names);
void openai_free_names(char **names, size_t n);

/* The max_tokens a request built from this prompt will carry: the prompt's own
 * max_tokens / max_completion_tokens (the smaller) capped by tier_cap, else tier_cap.
 * For the budget's worst case, so it matches what is sent. */
int openai_effective_max_tokens(const char *prompt, size_t prompt_len, int tier_cap);

typedef enum {
    OPENAI_OK = 0,
    OPENAI_NOT_JSON,         /* body is not JSON / truncated / not an object */
    OPENAI_ERROR_OBJECT,     /* top-level "error" object in a 200 */
    OPENAI_NO_CHOICES,       /* missing or empty "choices" */
    OPENAI_FINISH_ERROR,     /* finish_reason "error" */
    OPENAI_EMPTY_CONTENT,    /* no message content (null or "") and no tool calls */
    OPENAI_TRUNCATED         /* a stream ended without a finish reason or [DONE] (stream.c) */
} openai_status;

typedef struct openai_completion {
    char *content;           /* assistant text, malloc'd ("" never: that is EMPTY_CONTENT) */
    char *model;             /* response "model", malloc'd or NULL */
    char *provider;          /* response "provider" (OpenRouter), malloc'd or NULL */
    char *finish_reason;     /* malloc'd or NULL */
    char *id;                /* response "id", malloc'd or NULL */
    char *service_tier;      /* response "service_tier", malloc'd or NULL */
    char *or_metadata;       /* response "openrouter_metadata" (X-OpenRouter-Metadata:
                                enabled) as compact JSON, malloc'd or NULL */
    long prompt_tokens;      /* -1 when not reported */
    long completion_tokens;  /* -1 when not reported */
    double cost;             /* usage.cost in USD when has_cost, else 0 */
    int has_cost;            /* usage.cost is a finite number >= 0 */
    int cost_invalid;        /* usage.cost is present but not that (a string, null, negative,
                                out of range): "provider reported a nonsense cost" */
} openai_completion;

/* Parse a 2xx body.  Returns OPENAI_OK with *out filled (free with openai_completion_free),
 * or another status with err->msg describing it in one line (e.g. "provider returned an
 * error object: 'Upstream overloaded' (code 502)") and *out zeroed. */
openai_status openai_parse_response(const char *body, size_t len, openai_completion *out,
                                    rf_err *err);
void openai_completion_free(openai_completion *c);

/* What a non-2xx (or error-object) body says.  Fills msg (one line, truncated, "" when the
 * body has no recognisable message) and the flags used for routing decisions.  Each flag
 * is 0 or 1; phrases are matched (case-insensitively) in the message, error.code and
 * error.type, and OpenRouter's error.metadata.raw (the upstream provider's own error). */
#define OPENAI_DETAIL_MAX 2048
typedef struct openai_error_info {
    char msg[256];
    int context_length;      /* context length / too many tokens exceeded */
    int unsupported_param;   /* a parameter the model/provider does not support */
    int content_policy;      /* refused for its content: code/type content_policy_violation
                                or content_filter, "content management policy" / "content
                                policy" wording, or OpenRouter moderation metadata (reasons,
                                flagged_input); never for 429 / 5xx.  Fails the job. */
    int insufficient_credits;/* 402, or credits/quota wording (OpenAI insufficient_quota) */
    int key_limit;           /* 403 about a key / workspace / spend limit ("limit exceeded") */
    char detail_json[OPENAI_DETAIL_MAX]; /* "" or a compact JSON object for the meta, with
                                the keys present among "provider_name" (error.metadata),
                                "availability" (error.metadata or error), "previous_errors"
                                (error.metadata), and "truncated": true when elements were
                                left out to fit.  Valid UTF-8; strings cut at 256 bytes. */
} openai_error_info;

/* http_status: the response's status, or 0 when unknown (then a numeric error.code, which
 * OpenRouter sets to the HTTP status, stands in for it). */
void openai_parse_error_status(int http_status, const char *body, size_t len,
                               openai_error_info *info);
/* The same with the status unknown. */
void openai_parse_error(const char *body, size_t len, openai_error_info *info);

/* ---- shared by openai.c, openai_error.c and stream.c: a streamed chunk is read by the
 * same rules as a whole response ---- */
struct cJSON;

/* Length of the valid UTF-8 sequence at s (n >= 1 bytes available); 0 when invalid or cut
 * short (overlong forms, surrogates and code points past U+10FFFF are invalid). */
size_t openai_utf8_char_len(const unsigned char *s, size_t n);
/* 1 when the len bytes at s are whole, valid UTF-8 (by openai_utf8_char_len's rules). */
int openai_valid_utf8(const char *s, size_t len);

/* Exactly one JSON value in text[0..len) (surrounding whitespace allowed), or NULL.
 * The caller owns the result (cJSON_Delete). */
struct cJSON *openai_parse_json(const char *text, size_t len);

/* OpenRouter's "openrouter_metadata" object of a response (or chunk) doc as compact JSON
 * (malloc'd), kept as given; NULL when absent, not an object, over 16 KiB printed or not
 * valid UTF-8.  *oom set when out of memory. */
char *openai_or_metadata(const struct cJSON *doc, int *oom);

/* Does JSON text contain a NUL byte or a \u0000 escape (which cJSON cuts strings at)? */
int openai_json_has_nul(const char *text, size_t len);

/* err (EIO) = "<what>: 'message' (code X)", or "<what>[ (code X)]" when obj (an error body,
 * or an object with an "error" member) has no message. */
void openai_describe_error(rf_err *err, const char *what, const struct cJSON *obj);

/* Copy what usage (an object, else nothing) reports into out: prompt_tokens and
 * completion_tokens when present (-1 when not sensible numbers), and cost when present
 * (has_cost / cost_invalid as documented in openai_completion).  Absent keys leave out
 * unchanged, so a stream's later usage overrides an earlier one key by key. */
void openai_read_usage(const struct cJSON *usage, openai_completion *out);

#endif
