/* openai.h — chat-completion request building and response parsing (cJSON).
 *
 * The one place that knows the OpenAI wire format and OpenRouter's extensions
 * ("provider" preferences in the request; "provider" and usage.cost in the response).
 * Pure functions: no I/O, no globals, so they are unit-tested and fuzzed directly. */
#ifndef RF_OPENAI_H
#define RF_OPENAI_H

#include <stddef.h>
#include "err.h"

typedef struct openai_request_in {
    const char *model;               /* the hop's model (overrides any "model" in a JSON prompt) */
    const char *prompt;              /* the prompt file's bytes */
    size_t prompt_len;
    const char *system_prompt;       /* tier system prompt or NULL; prepended unless the JSON
                                        prompt already starts with a system message */
    int max_tokens;                  /* the tier cap: request's own value is min()'d with it;
                                        always sent */
    const char *user;                /* "pipeline:<tag>" or NULL */
    const char *provider_prefs_json; /* OpenRouter "provider" object (compact JSON) or NULL */
} openai_request_in;

/* Build the JSON body for POST /chat/completions.  A prompt that parses as a JSON object
 * with a "messages" array is a full chat request (its other parameters are kept, "model"
 * is replaced, "stream" is forced false, the deprecated "route" field is dropped);
 * anything else is the text of one user message.  Returns a malloc'd string, or NULL with
 * err (EINVAL: e.g. "prompt is JSON with \"messages\" but messages is not an array";
 * EILSEQ when a plain-text prompt is not valid UTF-8). */
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
    OPENAI_EMPTY_CONTENT     /* no message content (null or "") and no tool calls */
} openai_status;

typedef struct openai_completion {
    char *content;           /* assistant text, malloc'd ("" never: that is EMPTY_CONTENT) */
    char *model;             /* response "model", malloc'd or NULL */
    char *provider;          /* response "provider" (OpenRouter), malloc'd or NULL */
    char *finish_reason;     /* malloc'd or NULL */
    char *id;                /* response "id", malloc'd or NULL */
    long prompt_tokens;      /* -1 when not reported */
    long completion_tokens;  /* -1 when not reported */
    double cost;             /* usage.cost in USD when has_cost */
    int has_cost;
    int cost_invalid;        /* a usage.cost was reported but is not a finite number >= 0 */
} openai_completion;

/* Parse a 2xx body.  Returns OPENAI_OK with *out filled (free with openai_completion_free),
 * or another status with err->msg describing it in one line (e.g. "provider returned an
 * error object: 'Upstream overloaded' (code 502)") and *out zeroed. */
openai_status openai_parse_response(const char *body, size_t len, openai_completion *out,
                                    rf_err *err);
void openai_completion_free(openai_completion *c);

/* What a non-2xx (or error-object) body says.  Fills msg (one line, truncated, "" when the
 * body has no recognisable message) and the flags used for routing decisions. */
typedef struct openai_error_info {
    char msg[256];
    int context_length;      /* context length / too many tokens exceeded */
    int unsupported_param;   /* a parameter the model/provider does not support */
} openai_error_info;
void openai_parse_error(const char *body, size_t len, openai_error_info *info);

#endif
