/* test_openai_error.c — error bodies of providers (openai_parse_error*, cmocka): one test
 * per table row, then truncation and bounds.  Shared helpers in openai_test.h. */
#include "openai_test.h"

/* ---- openai_parse_error ---- */

typedef struct error_case {
    const char *name;
    const char *body;            /* ` for " */
    const char *msg;
    int context_length;
    int unsupported_param;
    int http_status;             /* 0: unknown */
    int content_policy, insufficient_credits, key_limit;
    const char *detail;          /* expected detail_json, ` for " (NULL: "") */
} error_case;

static const error_case error_cases[] = {
    {"error_openai_context_length",
     "{`error`:{`message`:`This model's maximum context length is 8192 tokens. However, your "
     "messages resulted in 9000 tokens.`,`type`:`invalid_request_error`,`param`:`messages`,"
     "`code`:`context_length_exceeded`}}",
     "This model's maximum context length is 8192 tokens. However, your messages resulted in "
     "9000 tokens.", 1, 0},
    {"error_context_code_only", "{`error`:{`message`:`Bad request`,`code`:`context_length_exceeded`}}",
     "Bad request", 1, 0},
    {"error_too_many_tokens_top_level", "{`message`:`Too Many Tokens in request`}",
     "Too Many Tokens in request", 1, 0},
    {"error_unsupported_parameter",
     "{`error`:{`message`:`Unsupported parameter: 'max_tokens' is not supported with this model.`,"
     "`type`:`invalid_request_error`,`param`:`max_tokens`,`code`:`unsupported_parameter`}}",
     "Unsupported parameter: 'max_tokens' is not supported with this model.", 0, 1},
    {"error_unsupported_value_code",
     "{`error`:{`message`:`Unsupported value: 'temperature' does not support 0.2`,"
     "`code`:`unsupported_value`}}",
     "Unsupported value: 'temperature' does not support 0.2", 0, 1},
    {"error_not_supported", "{`error`:{`message`:`tools NOT SUPPORTED by this model`}}",
     "tools NOT SUPPORTED by this model", 0, 1},
    {"error_ollama_string", "{`error`:`model 'llama3' not found, try pulling it first`}",
     "model 'llama3' not found, try pulling it first", 0, 0},
    {"error_openrouter_raw",
     "{`error`:{`message`:`Provider returned error`,`code`:400,`metadata`:{`raw`:"
     "`{\\`error\\`:{\\`message\\`:\\`prompt is too long: context_length_exceeded\\`}}`,"
     "`provider_name`:`Anthropic`}}}",
     "Provider returned error", 1, 0, .detail = "{`provider_name`:`Anthropic`}"},
    {"error_message_wrong_type_falls_back", "{`error`:{`message`:5},`message`:`fallback`}",
     "fallback", 0, 0},
    {"error_json_string_body", "`Service Unavailable`", "Service Unavailable", 0, 0},
    {"error_json_without_message", "{`detail`:`x`}", "", 0, 0},
    {"error_json_array", "[1,2]", "", 0, 0},
    {"error_message_newlines", "{`error`:{`message`:`line1\\n\\tline2\\r\\n`}}", "line1 line2", 0, 0},
    {"error_html", "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>\r\n",
     "<html> <head><title>502 Bad Gateway</title></head> </html>", 0, 0},
    {"error_text_control_and_bad_utf8", "bad\x01\x02gate\xff way\n", "bad gate? way", 0, 0},
    {"error_text_context_length", "Error: context length exceeded", "Error: context length exceeded",
     1, 0},
    {"error_empty_body", "", "", 0, 0},
    /* content policy: fails the job */
    {"error_openai_content_policy",
     "{`error`:{`message`:`Your request was rejected as a result of our safety system.`,"
     "`type`:`invalid_request_error`,`param`:null,`code`:`content_policy_violation`}}",
     "Your request was rejected as a result of our safety system.", 0, 0, 400, 1, 0, 0},
    {"error_azure_content_filter",
     "{`error`:{`message`:`The response was filtered due to the prompt triggering Azure "
     "OpenAI's content management policy. Please modify your prompt and retry.`,`type`:null,"
     "`param`:`prompt`,`code`:`content_filter`,`status`:400,`innererror`:{`code`:"
     "`ResponsibleAIPolicyViolation`,`content_filter_result`:{`hate`:{`filtered`:true,"
     "`severity`:`high`}}}}}",
     "The response was filtered due to the prompt triggering Azure OpenAI's content management "
     "policy. Please modify your prompt and retry.", 0, 0, 400, 1, 0, 0},
    {"error_content_filter_code_only", "{`error`:{`message`:`Bad request`,`code`:`content_filter`}}",
     "Bad request", 0, 0, 0, 1, 0, 0},
    {"error_content_policy_type_only",
     "{`error`:{`message`:`Rejected`,`type`:`content_policy_violation`}}", "Rejected", 0, 0, 400,
     1, 0, 0},
    {"error_openrouter_raw_content_filter",
     "{`error`:{`message`:`Provider returned error`,`code`:400,`metadata`:{`raw`:{`error`:"
     "{`code`:`content_filter`,`message`:`filtered`}},`provider_name`:`Azure`}}}",
     "Provider returned error", 0, 0, 0, 1, 0, 0, "{`provider_name`:`Azure`}"},
    {"error_openrouter_moderation",
     "{`error`:{`code`:403,`message`:`openai/gpt-4o requires moderation on OpenRouter. Your "
     "input was flagged for \\`harassment\\`. No credits were charged.`,`metadata`:{`reasons`:"
     "[`harassment`],`flagged_input`:`...`,`provider_name`:`OpenAI`,`model_slug`:`openai/gpt-4o`}}}",
     "openai/gpt-4o requires moderation on OpenRouter. Your input was flagged for "
     "\"harassment\". No credits were charged.", 0, 0, 403, 1, 0, 0,
     "{`provider_name`:`OpenAI`}"},
    {"error_content_filter_wording_on_503",
     "{`error`:{`message`:`content_filter service unavailable`}}",
     "content_filter service unavailable", 0, 0, 503, 0, 0, 0},
    {"error_content_filter_wording_on_429", "{`error`:{`message`:`content policy check busy`}}",
     "content policy check busy", 0, 0, 429, 0, 0, 0},
    /* credits */
    {"error_openrouter_insufficient_credits",
     "{`error`:{`message`:`Insufficient credits. Add more using https://openrouter.ai/credits`,"
     "`code`:402}}",
     "Insufficient credits. Add more using https://openrouter.ai/credits", 0, 0, 402, 0, 1, 0},
    {"error_402_status_from_code", "{`error`:{`message`:`Payment required`,`code`:402}}",
     "Payment required", 0, 0, 0, 0, 1, 0},
    {"error_402_without_wording", "{`error`:{`message`:`Payment required`}}", "Payment required",
     0, 0, 402, 0, 1, 0},
    {"error_openrouter_afford",
     "{`error`:{`message`:`This request requires more credits, or fewer max_tokens. You "
     "requested up to 4096 tokens, but can only afford 1200.`,`code`:402}}",
     "This request requires more credits, or fewer max_tokens. You requested up to 4096 tokens, "
     "but can only afford 1200.", 0, 0, 0, 0, 1, 0},
    {"error_anthropic_credit_balance",
     "{`type`:`error`,`error`:{`type`:`invalid_request_error`,`message`:`Your credit balance "
     "is too low to access the Anthropic API.`}}",
     "Your credit balance is too low to access the Anthropic API.", 0, 0, 400, 0, 1, 0},
    {"error_openai_insufficient_quota",
     "{`error`:{`message`:`You exceeded your current quota, please check your plan and billing "
     "details.`,`type`:`insufficient_quota`,`param`:null,`code`:`insufficient_quota`}}",
     "You exceeded your current quota, please check your plan and billing details.", 0, 0, 429,
     0, 1, 0},
    /* key limits */
    {"error_openrouter_key_limit",
     "{`error`:{`message`:`Key limit exceeded (total limit). Manage it using "
     "https://openrouter.ai/settings/keys`,`code`:403}}",
     "Key limit exceeded (total limit). Manage it using https://openrouter.ai/settings/keys", 0, 0,
     403, 0, 0, 1},
    {"error_workspace_limit", "{`error`:{`message`:`Workspace spend limit reached`,`code`:403}}",
     "Workspace spend limit reached", 0, 0, 0, 0, 0, 1},
    {"error_403_limit_code", "{`error`:{`message`:`Forbidden`,`code`:`key_limit_exceeded`}}",
     "Forbidden", 0, 0, 403, 0, 0, 1},
    {"error_403_forbidden_only", "{`error`:{`message`:`Forbidden`,`code`:403}}", "Forbidden", 0,
     0, 403, 0, 0, 0},
    {"error_429_rate_limit_exceeded", "{`error`:`Rate limit exceeded: free-models-per-day`}",
     "Rate limit exceeded: free-models-per-day", 0, 0, 429, 0, 0, 0},
    /* OpenRouter metadata */
    {"error_openrouter_provider_raw",
     "{`error`:{`message`:`Provider returned error`,`code`:502,`metadata`:{`raw`:`{\\n  "
     "\\`error\\`: {\\n    \\`code\\`: 500,\\n    \\`message\\`: \\`An internal error "
     "has occurred.\\`,\\n    \\`status\\`: \\`INTERNAL\\`\\n  }\\n}\\n`,"
     "`provider_name`:`Google AI Studio`,`isDownstreamPipeClean`:true,"
     "`isErrorUpstreamFault`:true}},`user_id`:`user_2s8c`}",
     "Provider returned error", 0, 0, 502, 0, 0, 0, "{`provider_name`:`Google AI Studio`}"},
    {"error_openrouter_previous_errors",
     "{`error`:{`message`:`No endpoints found`,`code`:503,`metadata`:{`provider_name`:null,"
     "`previous_errors`:[{`provider`:`Together`,`status`:429,`message`:`rate limited`},"
     "{`provider`:`Fireworks`,`status`:502}],`availability`:{`Together`:`degraded`}}}}",
     "No endpoints found", 0, 0, 503, 0, 0, 0,
     "{`availability`:{`Together`:`degraded`},`previous_errors`:[{`provider`:`Together`,"
     "`status`:429,`message`:`rate limited`},{`provider`:`Fireworks`,`status`:502}]}"},
    {"error_availability_outside_metadata",
     "{`error`:{`message`:`busy`,`availability`:[`A`,`B`],`metadata`:{}}}", "busy", 0, 0, 503, 0,
     0, 0, "{`availability`:[`A`,`B`]}"},
    {"error_detail_sanitized",
     "{`error`:{`message`:`x`,`metadata`:{`provider_name`:`bad\xff\xc0name`,"
     "`previous_errors`:[{`m\xfe`:`\xed\xa0\x80`}]}}}", "x", 0, 0, 0, 0, 0, 0,
     "{`provider_name`:`bad??name`,`previous_errors`:[{`m?`:`???`}]}"},
    {"error_detail_not_object_metadata", "{`error`:{`message`:`x`,`metadata`:`raw text`}}", "x",
     0, 0, 0, 0, 0, 0},
};

static void test_error_case(void **state)
{
    const error_case *c = *state;
    char *text = bq(c->body);
    size_t len = strlen(text);
    char *body = exact_copy(text, len);
    free(text);
    openai_error_info info;
    memset(&info, 0xAB, sizeof info);
    openai_parse_error_status(c->http_status, body, len, &info);
    if (c->http_status == 0) {   /* the old entry point is the same with the status unknown */
        openai_error_info old;
        openai_parse_error(body, len, &old);
        assert_memory_equal(&old, &info, sizeof info);
    }
    free(body);
    char *msg = bq(c->msg);
    assert_string_equal(info.msg, msg);
    free(msg);
    assert_int_equal(info.context_length, c->context_length);
    assert_int_equal(info.unsupported_param, c->unsupported_param);
    assert_int_equal(info.content_policy, c->content_policy);
    assert_int_equal(info.insufficient_credits, c->insufficient_credits);
    assert_int_equal(info.key_limit, c->key_limit);
    char *detail = bq(c->detail ? c->detail : "");
    assert_string_equal(info.detail_json, detail);
    free(detail);
}

static void test_error_truncation(void **state)
{
    (void)state;
    openai_error_info info;
    char body[1024], expected[512];

    /* a non-JSON body keeps its first 200 bytes */
    memset(body, 'a', 300);
    openai_parse_error(body, 300, &info);
    memset(expected, 'a', 200);
    expected[200] = '\0';
    assert_string_equal(info.msg, expected);

    /* a long JSON message fills msg, cut at a character boundary */
    memset(expected, 'b', 254);
    expected[254] = '\0';
    snprintf(body, sizeof body, "{\"error\":{\"message\":\"%s\xC3\xA9 tail\"}}", expected);
    openai_parse_error(body, strlen(body), &info);
    assert_string_equal(info.msg, expected);

    memset(expected, 'c', 400);
    expected[400] = '\0';
    snprintf(body, sizeof body, "{\"message\":\"%s\"}", expected);
    openai_parse_error(body, strlen(body), &info);
    assert_int_equal(strlen(info.msg), sizeof info.msg - 1);

    openai_parse_error(NULL, 0, &info);
    assert_string_equal(info.msg, "");
    assert_int_equal(info.context_length, 0);
    assert_int_equal(info.unsupported_param, 0);
    openai_parse_error_status(402, NULL, 0, &info);
    assert_int_equal(info.insufficient_credits, 1);
    assert_int_equal(info.content_policy + info.key_limit + info.context_length, 0);
    assert_string_equal(info.detail_json, "");
}

/* detail_json stays within its buffer: arrays keep the elements that fit, strings are cut
 * at 256 bytes, and a part too big on its own is left out; each time "truncated" says so. */
static void test_error_detail_bounded(void **state)
{
    (void)state;
    size_t cap = 64 * 1024;
    char *body = malloc(cap);
    assert_non_null(body);
    openai_error_info info;

    /* 200 previous errors of ~60 bytes: some fit */
    size_t at = (size_t)snprintf(body, cap, "{\"error\":{\"message\":\"m\",\"metadata\":{"
                                            "\"provider_name\":\"P\",\"previous_errors\":[");
    for (int i = 0; i < 200; i++)
        at += (size_t)snprintf(body + at, cap - at, "%s{\"provider\":\"Provider-%03d\","
                               "\"status\":502,\"message\":\"bad gateway\"}", i ? "," : "", i);
    at += (size_t)snprintf(body + at, cap - at, "]}}}");
    openai_parse_error(body, at, &info);
    size_t len = strlen(info.detail_json);
    assert_true(len > 1500 && len < sizeof info.detail_json);
    assert_true(strncmp(info.detail_json, "{\"provider_name\":\"P\",\"previous_errors\":"
                        "[{\"provider\":\"Provider-000\"", 60) == 0);
    assert_true(strcmp(info.detail_json + len - 19, "],\"truncated\":true}") == 0);

    /* a 1000-byte string is cut to 256 bytes (at a character boundary) */
    at = (size_t)snprintf(body, cap, "{\"error\":{\"metadata\":{\"provider_name\":\"");
    for (int i = 0; i < 500; i++)
        at += (size_t)snprintf(body + at, cap - at, "\xC3\xA9");
    at += (size_t)snprintf(body + at, cap - at, "\"}}}");
    openai_parse_error(body, at, &info);
    char expected[512] = "{\"provider_name\":\"";
    for (int i = 0; i < 128; i++)
        strcat(expected, "\xC3\xA9");
    strcat(expected, "\"}");
    assert_string_equal(info.detail_json, expected);

    /* an availability object bigger than the buffer is left out; the array still fits */
    at = (size_t)snprintf(body, cap, "{\"error\":{\"metadata\":{\"availability\":{");
    for (int i = 0; i < 100; i++)
        at += (size_t)snprintf(body + at, cap - at, "%s\"provider-%03d\":\"unavailable now\"",
                               i ? "," : "", i);
    at += (size_t)snprintf(body + at, cap - at, "},\"previous_errors\":[1,2]}}}");
    openai_parse_error(body, at, &info);
    assert_string_equal(info.detail_json, "{\"previous_errors\":[1,2],\"truncated\":true}");

    /* nothing to say: no error object, or nothing but null parts */
    openai_parse_error("{\"message\":\"x\"}", 15, &info);
    assert_string_equal(info.detail_json, "");
    openai_parse_error("{\"error\":{\"metadata\":{\"provider_name\":null}}}", 45, &info);
    assert_string_equal(info.detail_json, "");
    free(body);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_error_truncation),
        cmocka_unit_test(test_error_detail_bounded),
    };
    struct CMUnitTest tests[COUNT(fixed) + COUNT(error_cases)];
    size_t n = 0;
    for (size_t i = 0; i < COUNT(fixed); i++)
        tests[n++] = fixed[i];
    for (size_t i = 0; i < COUNT(error_cases); i++)
        tests[n++] = (struct CMUnitTest){error_cases[i].name, test_error_case, NULL, NULL,
                                         (void *)&error_cases[i]};
    return _cmocka_run_group_tests("openai_error", tests, n, NULL, NULL);
}
