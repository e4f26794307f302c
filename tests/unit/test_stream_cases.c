/* test_stream_cases.c — the SSE parser (src/stream.c) on tables of cases, one cmocka
 * test each: SSE framing rules, tool calls streamed in pieces, usage and cost.  Helpers
 * in stream_test.h; streams written with ` for ". */
#include "stream_test.h"

/* ---- SSE rules ---- */

typedef struct sse_case {
    const char *name;
    const char *stream;          /* ` for " */
    openai_status status;
    const char *content;         /* OK: expected content */
    const char *finish_reason;   /* OK: expected (NULL: none) */
    const char *error;           /* not OK: expected err.msg */
} sse_case;


static const sse_case sse_cases[] = {
    {"sse_lf", DATA("a", "null") DATA("b", "`stop`"), OPENAI_OK, "ab", "stop", NULL},
    {"sse_crlf", "data: " CHUNK("{`content`:`a`}", "`stop`") "\r\n\r\n", OPENAI_OK, "a", "stop",
     NULL},
    {"sse_cr_only", "data: " CHUNK("{`content`:`a`}", "null") "\r\rdata: [DONE]\r\r",
     OPENAI_OK, "a", NULL, NULL},
    {"sse_mixed_line_ends", "data: " CHUNK("{`content`:`a`}", "null") "\r\n\n"
     "data: " CHUNK("{`content`:`b`}", "`stop`") "\n\r", OPENAI_OK, "ab", "stop", NULL},
    {"sse_no_space_after_colon", "data:" CHUNK("{`content`:`a`}", "`stop`") "\n\n", OPENAI_OK,
     "a", "stop", NULL},
    {"sse_only_one_space_removed", "data:  " CHUNK("{`content`:`a`}", "`stop`") "\n\n",
     OPENAI_OK, "a", "stop", NULL},
    {"sse_one_space_removed_per_line",   /* seen in a string that spans data lines */
     "data: {`choices`:[{`delta`:{`content`:`a\ndata:  b\ndata:c\ndata: `},"
     "`finish_reason`:`stop`}]}\n\n", OPENAI_OK, "a\n b\nc\n", "stop", NULL},
    {"sse_comments_ignored", ": OPENROUTER PROCESSING\n\n:\n" DATA("a", "null")
     ": OPENROUTER PROCESSING\n\n" DATA("b", "`stop`") ": bye\n", OPENAI_OK, "ab", "stop",
     NULL},
    {"sse_comment_inside_event", "data: {`choices`:[{`delta`:\n: keep-alive\n"
     "data: {`content`:`a`},`finish_reason`:`stop`}]}\n\n", OPENAI_OK, "a", "stop", NULL},
    {"sse_multiline_data_joined", "data: {`choices`:\ndata: [{`delta`:{`content`:\n"
     "data: `x`},`finish_reason`:`stop`}]}\n\n", OPENAI_OK, "x", "stop", NULL},
    {"sse_fields_ignored", "event: message\nid: 7\nretry: 10\nfoo: bar\nid\n"
     DATA("a", "`stop`"), OPENAI_OK, "a", "stop", NULL},
    {"sse_event_without_data_ignored", "event: ping\n\nid: 3\n\n" DATA("a", "`stop`"),
     OPENAI_OK, "a", "stop", NULL},
    {"sse_empty_data_ignored", "data:\n\ndata: \n\ndata\n\n" DATA("a", "`stop`"), OPENAI_OK,
     "a", "stop", NULL},
    {"sse_leading_blank_lines", "\n\n\r\n  \n" DATA("a", "`stop`"), OPENAI_OK, "a", "stop",
     NULL},
    {"sse_bom", "\xEF\xBB\xBF" DATA("a", "`stop`"), OPENAI_OK, "a", "stop", NULL},
    {"sse_done_ends_stream", DATA("a", "null") "data: [DONE]\n\n" "data: {broken\n\n"
     DATA("ignored", "`stop`"), OPENAI_OK, "a", NULL, NULL},
    {"sse_done_with_spaces", DATA("a", "null") "data:   [DONE]  \n\n", OPENAI_OK, "a", NULL,
     NULL},
    {"sse_final_event_without_blank_line", DATA("a", "null") "data: [DONE]\n", OPENAI_OK, "a",
     NULL, NULL},
    {"sse_final_line_without_line_end", DATA("a", "null") "data: [DONE]", OPENAI_OK, "a", NULL,
     NULL},
    {"sse_final_chunk_without_line_end",
     "data: " CHUNK("{`content`:`a`}", "null") "\n\ndata: " CHUNK("{`content`:`b`}", "`stop`"),
     OPENAI_OK, "ab", "stop", NULL},
    {"sse_cut_final_event_dropped_after_finish", DATA("a", "`stop`") "data: {`choices`:[],`us",
     OPENAI_OK, "a", "stop", NULL},
    {"sse_cut_final_event_truncated", DATA("a", "null") "data: {`choices`:[{`delta`:{`cont",
     OPENAI_TRUNCATED, .error = "stream ended without a finish reason or [DONE]: truncated"},
    {"sse_other_choice_index_skipped",
     "data: {`choices`:[{`index`:1,`delta`:{`content`:`B`}}]}\n\n"
     "data: {`choices`:[{`index`:1,`delta`:{`content`:`B`}},{`index`:0,`delta`:{`content`:`A`}}]}\n\n"
     "data: {`choices`:[{`index`:0,`delta`:{},`finish_reason`:`stop`}]}\n\n",
     OPENAI_OK, "A", "stop", NULL},
    {"sse_content_parts", "data: {`choices`:[{`delta`:{`content`:[{`type`:`text`,`text`:`a`},"
     "{`type`:`image_url`},{`type`:`text`,`text`:`b`}]},`finish_reason`:`stop`}]}\n\n",
     OPENAI_OK, "ab", "stop", NULL},
    {"sse_finish_reason_last_wins", DATA("a", "`length`") DATA("", "`stop`"), OPENAI_OK, "a",
     "stop", NULL},
    {"sse_content_filter_finish_kept", DATA("partial", "`content_filter`"), OPENAI_OK,
     "partial", "content_filter", NULL},
    /* JSON bodies: a provider that answered "stream": true with a whole response */
    {"json_body_completion", "  \n{`choices`:[{`message`:{`content`:`whole`},"
     "`finish_reason`:`stop`}]}\n", OPENAI_OK, "whole", "stop", NULL},
    {"json_body_after_bom", "\xEF\xBB\xBF{`choices`:[{`message`:{`content`:`whole`},"
     "`finish_reason`:`stop`}]}\n", OPENAI_OK, "whole", "stop", NULL},
    {"sse_after_bom", "\xEF\xBB\xBF" DATA("a", "`stop`"), OPENAI_OK, "a", "stop", NULL},
    {"json_body_error", "{`error`:{`message`:`Rate limited`,`code`:429}}", OPENAI_ERROR_OBJECT,
     .error = "provider returned an error object: 'Rate limited' (code 429)"},
    {"json_body_truncated", "{`choices`:[{`message`:{`content`:`who", OPENAI_NOT_JSON,
     .error = "provider returned a body that is not JSON (38 bytes)"},
    /* endings */
    {"end_done_only", DATA("a", "null") "data: [DONE]\n\n", OPENAI_OK, "a", NULL, NULL},
    {"end_finish_only", DATA("a", "`stop`"), OPENAI_OK, "a", "stop", NULL},
    {"end_neither_truncated", DATA("a", "null") DATA("b", "null"), OPENAI_TRUNCATED,
     .error = "stream ended without a finish reason or [DONE]: truncated"},
    {"end_empty_stream", "", OPENAI_TRUNCATED,
     .error = "stream ended without a finish reason or [DONE]: truncated"},
    {"end_only_keepalives", ": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n",
     OPENAI_TRUNCATED, .error = "stream ended without a finish reason or [DONE]: truncated"},
    {"end_finish_no_content", DATA("", "`stop`") "data: [DONE]\n\n", OPENAI_EMPTY_CONTENT,
     .error = "provider returned an empty message"},
    {"end_done_no_content", "data: [DONE]\n\n", OPENAI_EMPTY_CONTENT,
     .error = "provider returned an empty message"},
    {"end_reasoning_only", "data: " CHUNK("{`reasoning`:`hmm`}", "`stop`") "\n\n",
     OPENAI_EMPTY_CONTENT, .error = "provider returned an empty message"},
    {"end_incomplete_utf8", DATA("caf\xC3", "`stop`"), OPENAI_NOT_JSON,
     .error = "provider returned text that is not valid UTF-8"},
    /* failures */
    {"fail_error_chunk_openrouter",
     DATA("partial", "null") "data: {`id`:`gen-1`,`object`:`chat.completion.chunk`,"
     "`provider`:`Together`,`error`:{`code`:502,`message`:`Upstream overloaded`},"
     "`choices`:[{`index`:0,`delta`:{`content`:``},`finish_reason`:`error`}]}\n\n",
     OPENAI_ERROR_OBJECT, .error = "provider error mid-stream: 'Upstream overloaded' (code 502)"},
    {"fail_error_chunk_openai", DATA("x", "null")
     "data: {`error`: {`message`: `The server had an error while processing your request.`,"
     " `type`: `server_error`}}\n\n", OPENAI_ERROR_OBJECT,
     .error = "provider error mid-stream: 'The server had an error while processing your "
              "request.'"},
    {"fail_error_string", "data: {`error`:`overloaded`}\n\n", OPENAI_ERROR_OBJECT,
     .error = "provider error mid-stream: 'overloaded'"},
    {"fail_error_vllm", "data: {`object`:`error`,`message`:`engine dead`,`code`:500}\n\n",
     OPENAI_ERROR_OBJECT, .error = "provider error mid-stream: 'engine dead'"},
    {"fail_error_empty_object", "data: {`error`:{}}\n\n", OPENAI_ERROR_OBJECT,
     .error = "provider error mid-stream"},
    {"fail_finish_error", DATA("partial", "`error`"), OPENAI_FINISH_ERROR,
     .error = "provider finished with finish_reason \"error\""},
    {"fail_finish_error_with_message",
     "data: {`choices`:[{`delta`:{},`finish_reason`:`error`,`error`:{`message`:`cut`,"
     "`code`:`server_error`}}]}\n\n", OPENAI_FINISH_ERROR,
     .error = "provider finished with finish_reason \"error\": 'cut' (code server_error)"},
    {"fail_malformed_event_number", DATA("a", "null") DATA("b", "null") ": x\n\n"
     "data: {`choices`: [\n\n", OPENAI_NOT_JSON, .error = "malformed SSE event 3: not JSON"},
    {"fail_malformed_text", "data: OPENROUTER PROCESSING\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: not JSON"},
    {"fail_two_documents", "data: {}{}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: not JSON"},
    {"fail_not_object_array", "data: [1]\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: not a JSON object"},
    {"fail_not_object_string", "data: `hi`\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: not a JSON object"},
    {"fail_choices_not_array", "data: {`choices`:{`0`:{}}}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: choices is not an array"},
    {"fail_choice_not_object", "data: {`choices`:[`a`]}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: choice is not an object"},
    {"fail_delta_not_object", "data: {`choices`:[{`delta`:`a`}]}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: delta is not an object"},
    {"fail_content_not_text", "data: {`choices`:[{`delta`:{`content`:5}}]}\n\n",
     OPENAI_NOT_JSON, .error = "malformed SSE event 1: delta.content is not text"},
    {"fail_tool_calls_not_array", "data: {`choices`:[{`delta`:{`tool_calls`:{}}}]}\n\n",
     OPENAI_NOT_JSON, .error = "malformed SSE event 1: delta.tool_calls is not an array"},
    {"fail_tool_call_not_object", "data: {`choices`:[{`delta`:{`tool_calls`:[1]}}]}\n\n",
     OPENAI_NOT_JSON, .error = "malformed SSE event 1: tool call is not an object"},
    {"fail_tool_call_index_negative",
     "data: {`choices`:[{`delta`:{`tool_calls`:[{`index`:-1}]}}]}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: bad tool call index"},
    {"fail_tool_call_index_fraction",
     "data: {`choices`:[{`delta`:{`tool_calls`:[{`index`:0.5}]}}]}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: bad tool call index"},
    {"fail_tool_call_index_huge",
     "data: {`choices`:[{`delta`:{`tool_calls`:[{`index`:128}]}}]}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: bad tool call index"},
    {"fail_tool_call_index_string",
     "data: {`choices`:[{`delta`:{`tool_calls`:[{`index`:`0`}]}}]}\n\n", OPENAI_NOT_JSON,
     .error = "malformed SSE event 1: bad tool call index"},
    {"fail_invalid_utf8", DATA("ok", "null") DATA("caf\xE9!", "`stop`"), OPENAI_NOT_JSON,
     .error = "SSE event 2: content is not valid UTF-8"},
    {"fail_surrogate_utf8", DATA("\xED\xA0\x80", "`stop`"), OPENAI_NOT_JSON,
     .error = "SSE event 1: content is not valid UTF-8"},
    {"fail_escaped_nul", DATA("a\\u0000b", "`stop`"), OPENAI_NOT_JSON,
     .error = "SSE event 1: text contains a NUL character"},
    {"fail_tool_call_bad_utf8",
     "data: {`choices`:[{`delta`:{`tool_calls`:[{`index`:0,`function`:{`name`:`f`,"
     "`arguments`:`\xFF`}}]},`finish_reason`:`tool_calls`}]}\n\n", OPENAI_NOT_JSON,
     .error = "provider returned a tool call that is not valid UTF-8"},
    {"fail_error_after_finish", DATA("a", "`stop`") "data: {`error`:{`message`:`late`}}\n\n",
     OPENAI_ERROR_OBJECT, .error = "provider error mid-stream: 'late'"},
};

static void test_sse_case(void **state)
{
    const sse_case *c = *state;
    result r;
    run_bq(c->stream, &r);
    if (r.status != c->status)
        fail_msg("status %d, expected %d (%s)", r.status, c->status, r.err.msg);
    if (c->status == OPENAI_OK) {
        char *content = bq(c->content);
        assert_string_equal(r.c.content, content);
        free(content);
        assert_string_or_null(r.c.finish_reason, c->finish_reason);
        assert_int_equal(r.err.code, 0);
    } else {
        assert_zeroed(&r.c);
        assert_string_equal(r.err.msg, c->error);
        assert_true(r.err.code != 0);
        /* a failure seen while feeding is reported by stream_error as well */
        if (r.failed_feed)
            assert_string_equal(r.stream_error, c->error);
        else
            assert_string_equal(r.stream_error, "");
    }
    result_free(&r);
}

/* ---- tool calls ---- */

typedef struct tool_case {
    const char *name;
    const char *stream;          /* ` for " */
    const char *content;         /* ` for " */
} tool_case;

#define TOOL_DELTA(calls) "data: {`choices`:[{`index`:0,`delta`:{`tool_calls`:" calls "}}]}\n\n"
#define TOOL_END "data: {`choices`:[{`delta`:{},`finish_reason`:`tool_calls`}]}\n\n"

static const tool_case tool_cases[] = {
    {"tools_whole_in_one_delta",
     TOOL_DELTA("[{`index`:0,`id`:`c1`,`type`:`function`,`function`:{`name`:`f`,"
                "`arguments`:`{\\`a\\`:1}`}}]") TOOL_END,
     "[{`id`:`c1`,`type`:`function`,`function`:{`name`:`f`,`arguments`:`{\\`a\\`:1}`}}]"},
    {"tools_without_index_by_id",
     TOOL_DELTA("[{`id`:`c1`,`function`:{`name`:`f`,`arguments`:`{`}}]")
     TOOL_DELTA("[{`function`:{`arguments`:`}`}}]")
     TOOL_DELTA("[{`id`:`c2`,`function`:{`name`:`g`,`arguments`:`[]`}}]") TOOL_END,
     "[{`id`:`c1`,`type`:`function`,`function`:{`name`:`f`,`arguments`:`{}`}},"
     "{`id`:`c2`,`type`:`function`,`function`:{`name`:`g`,`arguments`:`[]`}}]"},
    {"tools_without_index_same_id_repeated",
     TOOL_DELTA("[{`id`:`c1`,`function`:{`name`:`f`,`arguments`:`1`}}]")
     TOOL_DELTA("[{`id`:`c1`,`function`:{`name`:`f`,`arguments`:`2`}}]") TOOL_END,
     "[{`id`:`c1`,`type`:`function`,`function`:{`name`:`f`,`arguments`:`12`}}]"},
    {"tools_skipped_index", TOOL_DELTA("[{`index`:2,`function`:{`name`:`h`}}]") TOOL_END,
     "[{`type`:`function`,`function`:{`name`:`h`,`arguments`:``}}]"},
    {"tools_first_name_kept",
     TOOL_DELTA("[{`index`:0,`function`:{`name`:`f`}}]")
     TOOL_DELTA("[{`index`:0,`function`:{`name`:`other`,`arguments`:`x`}}]") TOOL_END,
     "[{`type`:`function`,`function`:{`name`:`f`,`arguments`:`x`}}]"},
    {"tools_with_content_content_wins",
     TOOL_DELTA("[{`index`:0,`function`:{`name`:`f`}}]") DATA("I will call f.", "`tool_calls`"),
     "I will call f."},
    {"tools_last_index_127", TOOL_DELTA("[{`index`:127,`function`:{`name`:`z`}}]") TOOL_END,
     "[{`type`:`function`,`function`:{`name`:`z`,`arguments`:``}}]"},
};

static void test_tool_case(void **state)
{
    const tool_case *c = *state;
    result r;
    run_bq(c->stream, &r);
    if (r.status != OPENAI_OK)
        fail_msg("status %d: %s", r.status, r.err.msg);
    char *content = bq(c->content);
    assert_string_equal(r.c.content, content);
    free(content);
    assert_string_equal(r.c.finish_reason, "tool_calls");
    result_free(&r);
}

/* ---- usage and cost ---- */

typedef struct usage_case {
    const char *name;
    const char *usage_chunks;    /* ` for ": events after the content */
    long prompt_tokens, completion_tokens;
    int has_cost, cost_invalid;
    double cost;
} usage_case;

#define USAGE(u) "data: {`choices`:[],`usage`:" u "}\n\n"

static const usage_case usage_cases[] = {
    {"usage_absent", "", -1, -1, 0, 0, 0},
    {"usage_null", USAGE("null"), -1, -1, 0, 0, 0},
    {"usage_tokens_only", USAGE("{`prompt_tokens`:5,`completion_tokens`:2}"), 5, 2, 0, 0, 0},
    {"usage_cost", USAGE("{`prompt_tokens`:5,`completion_tokens`:2,`cost`:0.25}"), 5, 2, 1, 0,
     0.25},
    {"usage_cost_zero", USAGE("{`cost`:0}"), -1, -1, 1, 0, 0},
    {"usage_cost_negative_zero", USAGE("{`cost`:-0.0}"), -1, -1, 1, 0, 0},
    {"usage_cost_string", USAGE("{`cost`:`0.25`}"), -1, -1, 0, 1, 0},
    {"usage_cost_null", USAGE("{`cost`:null}"), -1, -1, 0, 1, 0},
    {"usage_cost_negative", USAGE("{`cost`:-1}"), -1, -1, 0, 1, 0},
    {"usage_cost_infinite", USAGE("{`cost`:1e999}"), -1, -1, 0, 1, 0},
    {"usage_cost_object", USAGE("{`cost`:{`usd`:1}}"), -1, -1, 0, 1, 0},
    {"usage_bad_tokens", USAGE("{`prompt_tokens`:-3,`completion_tokens`:`7`}"), -1, -1, 0, 0, 0},
    {"usage_later_overrides", USAGE("{`prompt_tokens`:5,`completion_tokens`:1,`cost`:`x`}")
     USAGE("{`completion_tokens`:9,`cost`:0.5}"), 5, 9, 1, 0, 0.5},
    {"usage_later_invalid_cost_overrides", USAGE("{`cost`:0.5}") USAGE("{`cost`:null}"), -1, -1,
     0, 1, 0},
    {"usage_not_object", USAGE("[{`prompt_tokens`:1}]"), -1, -1, 0, 0, 0},
    {"usage_with_content_chunk",
     "data: {`choices`:[{`delta`:{`content`:`!`}}],`usage`:{`prompt_tokens`:3,`cost`:1}}\n\n",
     3, -1, 1, 0, 1},
};

static void test_usage_case(void **state)
{
    const usage_case *c = *state;
    char stream[2048];
    snprintf(stream, sizeof stream, "%s%s%s", DATA("x", "`stop`"), c->usage_chunks,
             "data: [DONE]\n\n");
    result r;
    run_bq(stream, &r);
    if (r.status != OPENAI_OK)
        fail_msg("status %d: %s", r.status, r.err.msg);
    assert_int_equal(r.c.prompt_tokens, c->prompt_tokens);
    assert_int_equal(r.c.completion_tokens, c->completion_tokens);
    assert_int_equal(r.c.has_cost, c->has_cost);
    assert_int_equal(r.c.cost_invalid, c->cost_invalid);
    assert_true(r.c.cost == c->cost);
    assert_false(signbit(r.c.cost));
    result_free(&r);
}

int main(void)
{
    struct CMUnitTest tests[COUNT(sse_cases) + COUNT(tool_cases) + COUNT(usage_cases)];
    size_t n = 0;
    for (size_t i = 0; i < COUNT(sse_cases); i++)
        tests[n++] = (struct CMUnitTest){sse_cases[i].name, test_sse_case, NULL, NULL,
                                         (void *)&sse_cases[i]};
    for (size_t i = 0; i < COUNT(tool_cases); i++)
        tests[n++] = (struct CMUnitTest){tool_cases[i].name, test_tool_case, NULL, NULL,
                                         (void *)&tool_cases[i]};
    for (size_t i = 0; i < COUNT(usage_cases); i++)
        tests[n++] = (struct CMUnitTest){usage_cases[i].name, test_usage_case, NULL, NULL,
                                         (void *)&usage_cases[i]};
    return _cmocka_run_group_tests("stream_cases", tests, n, NULL, NULL);
}
