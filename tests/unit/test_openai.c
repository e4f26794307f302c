/* test_openai.c — request building, request parameters and response parsing (cmocka).
 *
 * JSON in these tables is written with ` for " (bq() converts) so it stays readable.
 * Every table row is its own cmocka test, named in the table.  Error bodies are in
 * test_openai_error.c; shared helpers in openai_test.h. */
#include "openai_test.h"

/* ---- openai_build_request ---- */

typedef struct build_case {
    const char *name;
    const char *prompt;          /* ` for " */
    const char *system_prompt;
    int max_tokens;
    const char *user;
    const char *prefs;           /* ` for " */
    const char *expected;        /* body, ` for "; NULL when an error is expected */
    int error_code;
    const char *error;
    int stream;
    const char *models;          /* names joined with ',' (NULL: none) */
    const char *service_tier;
    const char *session_id;
} build_case;

#define USER_HI "{`role`:`user`,`content`:`hi`}"

static const build_case build_cases[] = {
    {"build_plain_text", "Summarise this.\n\n", NULL, 100, NULL, NULL,
     "{`model`:`m`,`messages`:[{`role`:`user`,`content`:`Summarise this.`}],`max_tokens`:100,"
     "`stream`:false}", 0, NULL},
    {"build_plain_keeps_leading_and_inner_space", "  one\n\ntwo \t\r\n", NULL, 5, NULL, NULL,
     "{`model`:`m`,`messages`:[{`role`:`user`,`content`:`  one\\n\\ntwo`}],`max_tokens`:5,"
     "`stream`:false}", 0, NULL},
    {"build_plain_escapes", "say \"hi\" \\ bye", NULL, 5, NULL, NULL,
     "{`model`:`m`,`messages`:[{`role`:`user`,`content`:`say \\`hi\\` \\\\ bye`}],`max_tokens`:5,"
     "`stream`:false}", 0, NULL},
    {"build_plain_utf8", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9D\x84\x9E\n", NULL, 5, NULL, NULL,
     "{`model`:`m`,`messages`:[{`role`:`user`,`content`:`caf\xC3\xA9 \xE2\x82\xAC \xF0\x9D\x84\x9E`}],"
     "`max_tokens`:5,`stream`:false}", 0, NULL},
    {"build_plain_system_user_prefs", "hi\n", "Be brief.", 800, "pipeline:rss",
     "{`order`:[`Anthropic`],`allow_fallbacks`:false}",
     "{`model`:`m`,`messages`:[{`role`:`system`,`content`:`Be brief.`}," USER_HI "],"
     "`max_tokens`:800,`stream`:false,`user`:`pipeline:rss`,"
     "`provider`:{`order`:[`Anthropic`],`allow_fallbacks`:false}}", 0, NULL},
    {"build_json_params_kept_route_dropped",
     "{`model`:`x`,`messages`:[" USER_HI "],`temperature`:0.2,`stream`:true,`route`:`fallback`,"
     "`max_tokens`:5000,`response_format`:{`type`:`json_object`},`stream_options`:{`include_usage`:true}}\n",
     NULL, 1000, NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`temperature`:0.2,`response_format`:{`type`:`json_object`},"
     "`max_tokens`:1000,`stream`:false}", 0, NULL},
    {"build_json_max_tokens_below_cap", "{`messages`:[" USER_HI "],`max_tokens`:50}", NULL, 1000,
     NULL, NULL, "{`model`:`m`,`messages`:[" USER_HI "],`max_tokens`:50,`stream`:false}", 0, NULL},
    {"build_json_max_tokens_null", "{`messages`:[" USER_HI "],`max_tokens`:null}", NULL, 1000,
     NULL, NULL, "{`model`:`m`,`messages`:[" USER_HI "],`max_tokens`:1000,`stream`:false}", 0, NULL},
    {"build_json_max_completion_tokens_capped",
     "{`messages`:[" USER_HI "],`max_completion_tokens`:5000}", NULL, 300, NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`max_completion_tokens`:300,`stream`:false}", 0, NULL},
    {"build_json_both_max_names",
     "{`messages`:[" USER_HI "],`max_tokens`:80,`max_completion_tokens`:60}", NULL, 100, NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`max_completion_tokens`:60,`stream`:false}", 0, NULL},
    {"build_json_user_overwritten", "{`user`:`alice`,`messages`:[" USER_HI "]}", NULL, 10,
     "pipeline:x", NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`max_tokens`:10,`stream`:false,`user`:`pipeline:x`}",
     0, NULL},
    {"build_json_user_kept", "{`messages`:[" USER_HI "],`user`:`alice`}", NULL, 10, NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`user`:`alice`,`max_tokens`:10,`stream`:false}", 0, NULL},
    {"build_json_provider_replaced", "{`messages`:[" USER_HI "],`provider`:{`order`:[`B`]}}", NULL,
     10, NULL, "{`order`:[`A`]}",
     "{`model`:`m`,`messages`:[" USER_HI "],`max_tokens`:10,`stream`:false,`provider`:{`order`:[`A`]}}",
     0, NULL},
    {"build_json_provider_kept", "{`messages`:[" USER_HI "],`provider`:{`order`:[`B`]}}", NULL, 10,
     NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`provider`:{`order`:[`B`]},`max_tokens`:10,`stream`:false}",
     0, NULL},
    {"build_json_system_prepended", "{`messages`:[" USER_HI "]}", "S", 10, NULL, NULL,
     "{`model`:`m`,`messages`:[{`role`:`system`,`content`:`S`}," USER_HI "],`max_tokens`:10,"
     "`stream`:false}", 0, NULL},
    {"build_json_system_not_doubled", "{`messages`:[{`role`:`system`,`content`:`X`}," USER_HI "]}",
     "S", 10, NULL, NULL,
     "{`model`:`m`,`messages`:[{`role`:`system`,`content`:`X`}," USER_HI "],`max_tokens`:10,"
     "`stream`:false}", 0, NULL},
    {"build_json_odd_first_message", "{`messages`:[7]}", "S", 10, NULL, NULL,
     "{`model`:`m`,`messages`:[{`role`:`system`,`content`:`S`},7],`max_tokens`:10,`stream`:false}",
     0, NULL},
    {"build_json_duplicate_keys_first_wins",
     "{`messages`:[" USER_HI "],`temperature`:1,`temperature`:2,`messages`:[]}", NULL, 10, NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`temperature`:1,`max_tokens`:10,`stream`:false}", 0, NULL},
    {"build_json_without_messages_is_text", "{`prompt`:`hi`}", NULL, 10, NULL, NULL,
     "{`model`:`m`,`messages`:[{`role`:`user`,`content`:`{\\`prompt\\`:\\`hi\\`}`}],`max_tokens`:10,"
     "`stream`:false}", 0, NULL},
    {"build_json_with_trailing_text_is_text", "{`messages`:[]} ok", NULL, 10, NULL, NULL,
     "{`model`:`m`,`messages`:[{`role`:`user`,`content`:`{\\`messages\\`:[]} ok`}],`max_tokens`:10,"
     "`stream`:false}", 0, NULL},
    {"build_json_array_is_text", "[1]", NULL, 10, NULL, NULL,
     "{`model`:`m`,`messages`:[{`role`:`user`,`content`:`[1]`}],`max_tokens`:10,`stream`:false}",
     0, NULL},
    {"build_messages_not_array", "{`messages`:`hi`}", NULL, 10, NULL, NULL, NULL, EINVAL,
     "prompt is JSON with \"messages\" but messages is not an array"},
    {"build_messages_null", "{`messages`:null}", NULL, 10, NULL, NULL, NULL, EINVAL,
     "prompt is JSON with \"messages\" but messages is not an array"},
    {"build_messages_empty", "{`messages`:[]}", NULL, 10, NULL, NULL, NULL, EINVAL,
     "prompt is JSON with \"messages\" but messages is empty"},
    {"build_max_tokens_string", "{`messages`:[" USER_HI "],`max_tokens`:`many`}", NULL, 10, NULL,
     NULL, NULL, EINVAL, "prompt's \"max_tokens\" is not a positive integer"},
    {"build_max_completion_tokens_zero", "{`messages`:[" USER_HI "],`max_completion_tokens`:0}",
     NULL, 10, NULL, NULL, NULL, EINVAL,
     "prompt's \"max_completion_tokens\" is not a positive integer"},
    {"build_invalid_utf8", "caf\xE9", NULL, 10, NULL, NULL, NULL, EILSEQ,
     "prompt is not valid UTF-8 text"},
    {"build_overlong_utf8", "a\xC0\xAF", NULL, 10, NULL, NULL, NULL, EILSEQ,
     "prompt is not valid UTF-8 text"},
    {"build_surrogate_utf8", "a\xED\xA0\x80", NULL, 10, NULL, NULL, NULL, EILSEQ,
     "prompt is not valid UTF-8 text"},
    {"build_truncated_utf8", "a\xE2\x82", NULL, 10, NULL, NULL, NULL, EILSEQ,
     "prompt is not valid UTF-8 text"},
    {"build_invalid_utf8_in_json", "{`messages`:[{`role`:`user`,`content`:`\xFF`}]}", NULL, 10,
     NULL, NULL, NULL, EILSEQ, "prompt is not valid UTF-8 text"},
    {"build_empty_prompt", "", NULL, 10, NULL, NULL, NULL, EINVAL, "prompt is empty"},
    {"build_blank_prompt", " \n\r\n", NULL, 10, NULL, NULL, NULL, EINVAL, "prompt is empty"},
    {"build_bad_prefs", "hi", NULL, 10, NULL, "[`A`]", NULL, EINVAL,
     "tier provider preferences are not a JSON object"},
    /* streaming */
    {"build_stream_plain", "hi", NULL, 10, NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`max_tokens`:10,`stream`:true,"
     "`stream_options`:{`include_usage`:true}}", .stream = 1},
    {"build_stream_json_prompt_overridden",
     "{`messages`:[" USER_HI "],`stream`:false,`stream_options`:{`include_usage`:false,`x`:1},"
     "`seed`:3}", NULL, 10, NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`seed`:3,`max_tokens`:10,`stream`:true,"
     "`stream_options`:{`include_usage`:true}}", .stream = 1},
    {"build_no_stream_json_prompt_stream_options_dropped",
     "{`messages`:[" USER_HI "],`stream`:true,`stream_options`:{`include_usage`:true}}", NULL,
     10, NULL, NULL, "{`model`:`m`,`messages`:[" USER_HI "],`max_tokens`:10,`stream`:false}"},
    /* OpenRouter server-side fallback */
    {"build_models", "hi", NULL, 10, NULL, NULL,
     "{`model`:`a/x`,`models`:[`a/x`,`b/y:free`],`messages`:[" USER_HI "],`max_tokens`:10,"
     "`stream`:false}", .models = "a/x,b/y:free"},
    {"build_models_one", "hi", NULL, 10, NULL, NULL,
     "{`model`:`a/x`,`models`:[`a/x`],`messages`:[" USER_HI "],`max_tokens`:10,`stream`:false}",
     .models = "a/x"},
    {"build_prompt_models_dropped", "{`models`:[`evil/x`],`messages`:[" USER_HI "]}", NULL, 10,
     NULL, NULL, "{`model`:`m`,`messages`:[" USER_HI "],`max_tokens`:10,`stream`:false}"},
    {"build_prompt_models_replaced", "{`models`:[`evil/x`],`messages`:[" USER_HI "]}", NULL, 10,
     NULL, NULL,
     "{`model`:`a`,`models`:[`a`,`b`],`messages`:[" USER_HI "],`max_tokens`:10,`stream`:false}",
     .models = "a,b"},
    {"build_models_empty_name", "hi", NULL, 10, NULL, NULL, NULL, EINVAL,
     "models list has an empty name", .models = "a,"},
    /* service_tier and session_id */
    {"build_service_tier", "hi", NULL, 10, NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`max_tokens`:10,`stream`:false,`service_tier`:`flex`}",
     .service_tier = "flex"},
    {"build_service_tier_replaces_prompts",
     "{`service_tier`:`priority`,`messages`:[" USER_HI "]}", NULL, 10, NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`max_tokens`:10,`stream`:false,`service_tier`:`flex`}",
     .service_tier = "flex"},
    {"build_service_tier_prompts_kept", "{`service_tier`:`priority`,`messages`:[" USER_HI "]}",
     NULL, 10, NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`service_tier`:`priority`,`max_tokens`:10,"
     "`stream`:false}"},
    {"build_session_id", "hi", NULL, 10, NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`max_tokens`:10,`stream`:false,`session_id`:`job-7`}",
     .session_id = "job-7"},
    {"build_session_id_replaces_prompts", "{`messages`:[" USER_HI "],`session_id`:`mine`}", NULL,
     10, NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`max_tokens`:10,`stream`:false,`session_id`:`job-7`}",
     .session_id = "job-7"},
    {"build_session_id_prompts_kept", "{`messages`:[" USER_HI "],`session_id`:`mine`}", NULL, 10,
     NULL, NULL,
     "{`model`:`m`,`messages`:[" USER_HI "],`session_id`:`mine`,`max_tokens`:10,`stream`:false}"},
    {"build_every_field", "{`messages`:[" USER_HI "],`temperature`:0}", "S", 100,
     "pipeline:t", "{`sort`:`price`}",
     "{`model`:`a/x`,`models`:[`a/x`,`b/y`],`messages`:[{`role`:`system`,`content`:`S`},"
     USER_HI "],`temperature`:0,`max_tokens`:100,`stream`:true,"
     "`stream_options`:{`include_usage`:true},`user`:`pipeline:t`,`provider`:{`sort`:`price`},"
     "`service_tier`:`default`,`session_id`:`s1`}",
     .stream = 1, .models = "a/x,b/y", .service_tier = "default", .session_id = "s1"},
};

static void test_build_case(void **state)
{
    const build_case *c = *state;
    char *prompt_text = bq(c->prompt), *prefs = bq(c->prefs);
    size_t len = strlen(prompt_text);
    char *prompt = exact_copy(prompt_text, len);
    free(prompt_text);
    /* "a,b" -> {"a", "b"} (empty names kept) */
    char *models_text = c->models ? strdup(c->models) : NULL;
    const char *models[8];
    size_t n_models = 0;
    for (char *at = models_text; at && n_models < 8;) {
        models[n_models++] = at;
        char *comma = strchr(at, ',');
        if (comma)
            *comma = '\0';
        at = comma ? comma + 1 : NULL;
    }
    openai_request_in in = {.model = "m", .prompt = prompt, .prompt_len = len,
                            .system_prompt = c->system_prompt, .max_tokens = c->max_tokens,
                            .user = c->user, .provider_prefs_json = prefs,
                            .stream = c->stream, .models = c->models ? models : NULL,
                            .n_models = n_models, .service_tier = c->service_tier,
                            .session_id = c->session_id};
    rf_err err;
    rf_err_clear(&err);
    char *body = openai_build_request(&in, &err);
    free(prompt);
    free(prefs);
    free(models_text);
    if (c->expected) {
        if (!body)
            fail_msg("build failed: %s", err.msg);
        char *expected = bq(c->expected);
        assert_string_equal(body, expected);
        free(expected);
    } else {
        assert_null(body);
        assert_int_equal(err.code, c->error_code);
        assert_string_equal(err.msg, c->error);
    }
    free(body);
}

static void test_build_nul_byte(void **state)
{
    (void)state;
    static const char prompt[] = "binary\0file";
    openai_request_in in = {.model = "m", .prompt = prompt, .prompt_len = sizeof prompt - 1,
                            .max_tokens = 10};
    rf_err err;
    assert_null(openai_build_request(&in, &err));
    assert_int_equal(err.code, EILSEQ);
    assert_string_equal(err.msg, "prompt contains a NUL byte (not text)");
}

static void test_build_no_model(void **state)
{
    (void)state;
    openai_request_in in = {.model = NULL, .prompt = "hi", .prompt_len = 2, .max_tokens = 10};
    rf_err err;
    assert_null(openai_build_request(&in, &err));
    assert_int_equal(err.code, EINVAL);
    assert_string_equal(err.msg, "no model given");

    /* models given: model may be NULL; an empty list (n_models 0) is no list */
    static const char *const models[] = {"a/x", NULL};
    in.models = models;
    in.n_models = 1;
    char *body = openai_build_request(&in, &err);
    assert_non_null(body);
    assert_string_equal(body, "{\"model\":\"a/x\",\"models\":[\"a/x\"],\"messages\":"
                              "[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":10,"
                              "\"stream\":false}");
    free(body);
    in.n_models = 0;
    assert_null(openai_build_request(&in, &err));
    assert_string_equal(err.msg, "no model given");
    in.models = models + 1;   /* {NULL} */
    in.n_models = 1;
    assert_null(openai_build_request(&in, &err));
    assert_string_equal(err.msg, "models list has an empty name");
}

/* ---- openai_request_params ---- */

typedef struct params_case {
    const char *name;
    const char *prompt;          /* ` for " */
    const char *expected;        /* names joined with ',' */
} params_case;

static const params_case params_cases[] = {
    {"params_plain_text", "hello", "max_tokens"},
    {"params_json_without_messages", "{`temperature`:1}", "max_tokens"},
    {"params_json_request",
     "{`model`:`x`,`messages`:[],`stream`:true,`user`:`u`,`route`:`fallback`,`provider`:{},"
     "`temperature`:0.2,`tools`:[],`stream_options`:{},`response_format`:{}}",
     "max_tokens,temperature,tools,response_format"},
    {"params_own_max_tokens_once", "{`messages`:[],`top_p`:1,`max_tokens`:5}", "max_tokens,top_p"},
    {"params_max_completion_tokens", "{`messages`:[],`max_completion_tokens`:5}",
     "max_tokens,max_completion_tokens"},
    {"params_duplicates_once", "{`messages`:[],`seed`:1,`seed`:2}", "max_tokens,seed"},
    {"params_models_owned", "{`messages`:[],`models`:[`a`],`service_tier`:`flex`,`session_id`:`s`}",
     "max_tokens,service_tier,session_id"},
};

static void test_params_case(void **state)
{
    const params_case *c = *state;
    char *prompt_text = bq(c->prompt);
    size_t len = strlen(prompt_text);
    char *prompt = exact_copy(prompt_text, len);
    free(prompt_text);
    char **names = NULL;
    size_t n = openai_request_params(prompt, len, &names);
    free(prompt);
    char joined[512] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s", i ? "," : "",
                 names[i]);
    assert_string_equal(joined, c->expected);
    openai_free_names(names, n);
}

static void test_params_empty_prompt(void **state)
{
    (void)state;
    char **names = NULL;
    size_t n = openai_request_params(NULL, 0, &names);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "max_tokens");
    openai_free_names(names, n);
    openai_free_names(NULL, 0);
}

/* ---- openai_parse_response ---- */

typedef struct response_case {
    const char *name;
    const char *body;            /* ` for " */
    openai_status status;
    const char *content;         /* OK: expected fields; NULL = expected NULL */
    const char *model, *provider, *id, *finish_reason;
    long prompt_tokens, completion_tokens;
    int has_cost;
    double cost;
    const char *error;           /* not OK: expected err.msg */
    int cost_invalid;
    const char *service_tier;
} response_case;

#define CHOICE(message) "{`choices`:[{`message`:" message "}]}"

static const response_case response_cases[] = {
    {"response_ok_full",
     "{`id`:`gen-1`,`model`:`openai/gpt-4o`,`provider`:`OpenAI`,`choices`:[{`index`:0,"
     "`message`:{`role`:`assistant`,`content`:`Hello`},`finish_reason`:`stop`}],"
     "`usage`:{`prompt_tokens`:10,`completion_tokens`:5,`total_tokens`:15,`cost`:0.00042}}\n",
     OPENAI_OK, "Hello", "openai/gpt-4o", "OpenAI", "gen-1", "stop", 10, 5, 1, 0.00042, NULL},
    {"response_ok_minimal", CHOICE("{`content`:`x`}"), OPENAI_OK, "x", NULL, NULL, NULL, NULL,
     -1, -1, 0, 0, NULL},
    {"response_ok_tool_calls",
     "{`choices`:[{`message`:{`role`:`assistant`,`content`:null,`tool_calls`:[{`id`:`c1`,"
     "`type`:`function`,`function`:{`name`:`f`,`arguments`:`{}`}}]},`finish_reason`:`tool_calls`}]}",
     OPENAI_OK,
     "[{`id`:`c1`,`type`:`function`,`function`:{`name`:`f`,`arguments`:`{}`}}]",
     NULL, NULL, NULL, "tool_calls", -1, -1, 0, 0, NULL},
    {"response_ok_empty_content_tool_calls",
     CHOICE("{`content`:``,`tool_calls`:[{`id`:`c2`}]}"), OPENAI_OK, "[{`id`:`c2`}]", NULL, NULL,
     NULL, NULL, -1, -1, 0, 0, NULL},
    {"response_ok_content_parts",
     CHOICE("{`content`:[{`type`:`text`,`text`:`a`},{`type`:`image_url`},7,{`type`:`text`,`text`:`b`}]}"),
     OPENAI_OK, "ab", NULL, NULL, NULL, NULL, -1, -1, 0, 0, NULL},
    {"response_ok_wrong_typed_metadata",
     "{`id`:{},`model`:5,`provider`:[],`choices`:[{`message`:{`content`:`x`},`finish_reason`:1}],"
     "`usage`:{`prompt_tokens`:`10`,`completion_tokens`:-3,`cost`:`0.1`}}",
     OPENAI_OK, "x", NULL, NULL, NULL, NULL, -1, -1, 0, 0, NULL, .cost_invalid = 1},
    {"response_ok_usage_not_object",
     "{`choices`:[{`message`:{`content`:`x`}}],`usage`:[{`prompt_tokens`:1}]}",
     OPENAI_OK, "x", NULL, NULL, NULL, NULL, -1, -1, 0, 0, NULL},
    {"response_ok_absurd_usage",
     "{`choices`:[{`message`:{`content`:`x`}}],`usage`:{`prompt_tokens`:1e300,"
     "`completion_tokens`:7,`cost`:-0.5}}",
     OPENAI_OK, "x", NULL, NULL, NULL, NULL, -1, 7, 0, 0, NULL, .cost_invalid = 1},
    {"response_ok_cost_null", "{`choices`:[{`message`:{`content`:`x`}}],`usage`:{`cost`:null}}",
     OPENAI_OK, "x", NULL, NULL, NULL, NULL, -1, -1, 0, 0, NULL, .cost_invalid = 1},
    {"response_ok_cost_infinite", "{`choices`:[{`message`:{`content`:`x`}}],`usage`:{`cost`:1e999}}",
     OPENAI_OK, "x", NULL, NULL, NULL, NULL, -1, -1, 0, 0, NULL, .cost_invalid = 1},
    {"response_ok_cost_absent", "{`choices`:[{`message`:{`content`:`x`}}],`usage`:{`total_tokens`:3}}",
     OPENAI_OK, "x", NULL, NULL, NULL, NULL, -1, -1, 0, 0, NULL, .cost_invalid = 0},
    {"response_ok_service_tier",
     "{`service_tier`:`default`,`choices`:[{`message`:{`content`:`x`}}]}",
     OPENAI_OK, "x", NULL, NULL, NULL, NULL, -1, -1, 0, 0, NULL, .service_tier = "default"},
    {"response_ok_service_tier_wrong_type",
     "{`service_tier`:1,`choices`:[{`message`:{`content`:`x`}}]}",
     OPENAI_OK, "x", NULL, NULL, NULL, NULL, -1, -1, 0, 0, NULL},
    {"response_ok_zero_cost",
     "{`choices`:[{`message`:{`content`:`x`}}],`usage`:{`prompt_tokens`:0,`completion_tokens`:0,"
     "`cost`:0}}",
     OPENAI_OK, "x", NULL, NULL, NULL, NULL, 0, 0, 1, 0, NULL},
    {"response_ok_error_null",
     "{`error`:null,`choices`:[{`message`:{`content`:`fine`}}]}",
     OPENAI_OK, "fine", NULL, NULL, NULL, NULL, -1, -1, 0, 0, NULL},
    {"response_error_object", "{`error`:{`message`:`Upstream overloaded`,`code`:502}}",
     OPENAI_ERROR_OBJECT, .error = "provider returned an error object: 'Upstream overloaded' (code 502)"},
    {"response_error_object_string_code",
     "{`error`:{`message`:`Rate\\nlimited`,`code`:`rate_limit_exceeded`}}",
     OPENAI_ERROR_OBJECT,
     .error = "provider returned an error object: 'Rate limited' (code rate_limit_exceeded)"},
    {"response_error_object_no_message", "{`error`:{}}", OPENAI_ERROR_OBJECT,
     .error = "provider returned an error object"},
    {"response_error_object_message_wrong_type", "{`error`:{`message`:[1],`code`:{}}}",
     OPENAI_ERROR_OBJECT, .error = "provider returned an error object"},
    {"response_error_string", "{`error`:`model not loaded`}", OPENAI_ERROR_OBJECT,
     .error = "provider returned an error object: 'model not loaded'"},
    {"response_error_beside_choices",
     "{`error`:{`message`:`x`},`choices`:[{`message`:{`content`:`y`}}]}", OPENAI_ERROR_OBJECT,
     .error = "provider returned an error object: 'x'"},
    {"response_no_choices", "{`id`:`x`}", OPENAI_NO_CHOICES,
     .error = "provider returned no choices"},
    {"response_empty_choices", "{`choices`:[]}", OPENAI_NO_CHOICES,
     .error = "provider returned no choices"},
    {"response_choices_object", "{`choices`:{`message`:{`content`:`x`}}}", OPENAI_NO_CHOICES,
     .error = "provider returned no choices"},
    {"response_choice_not_object", "{`choices`:[`hi`]}", OPENAI_NO_CHOICES,
     .error = "provider returned a malformed choice"},
    {"response_finish_error",
     "{`choices`:[{`message`:{`content`:`partial`},`finish_reason`:`error`,"
     "`error`:{`message`:`upstream died`,`code`:502}}]}",
     OPENAI_FINISH_ERROR,
     .error = "provider finished with finish_reason \"error\": 'upstream died' (code 502)"},
    {"response_finish_error_bare", "{`choices`:[{`finish_reason`:`error`}]}", OPENAI_FINISH_ERROR,
     .error = "provider finished with finish_reason \"error\""},
    {"response_empty_content", CHOICE("{`content`:``}"), OPENAI_EMPTY_CONTENT,
     .error = "provider returned an empty message"},
    {"response_null_content", CHOICE("{`content`:null}"), OPENAI_EMPTY_CONTENT,
     .error = "provider returned an empty message"},
    {"response_null_content_empty_tool_calls", CHOICE("{`content`:null,`tool_calls`:[]}"),
     OPENAI_EMPTY_CONTENT, .error = "provider returned an empty message"},
    {"response_tool_calls_wrong_type", CHOICE("{`tool_calls`:{`id`:1}}"),
     OPENAI_EMPTY_CONTENT, .error = "provider returned an empty message"},
    {"response_content_number", CHOICE("{`content`:5}"), OPENAI_EMPTY_CONTENT,
     .error = "provider returned an empty message"},
    {"response_content_parts_no_text", CHOICE("{`content`:[{`type`:`text`,`text`:``},{`text`:`x`}]}"),
     OPENAI_EMPTY_CONTENT, .error = "provider returned an empty message"},
    {"response_message_missing", "{`choices`:[{`finish_reason`:`stop`}]}", OPENAI_EMPTY_CONTENT,
     .error = "provider returned an empty message"},
    {"response_message_string", CHOICE("`hi`"), OPENAI_EMPTY_CONTENT,
     .error = "provider returned an empty message"},
    {"response_not_json", "<html>502</html>", OPENAI_NOT_JSON,
     .error = "provider returned a body that is not JSON (16 bytes)"},
    {"response_empty_body", "", OPENAI_NOT_JSON, .error = "provider returned an empty body"},
    {"response_truncated", "{`choices`:[{`message`:{`content`:`hel", OPENAI_NOT_JSON,
     .error = "provider returned a body that is not JSON (38 bytes)"},
    {"response_array", "[{`choices`:[]}]", OPENAI_NOT_JSON,
     .error = "provider returned JSON that is not an object"},
    {"response_null", "null", OPENAI_NOT_JSON,
     .error = "provider returned JSON that is not an object"},
    {"response_two_documents", "{`choices`:[]}{`x`:1}", OPENAI_NOT_JSON,
     .error = "provider returned a body that is not JSON (21 bytes)"},
};


static void test_response_case(void **state)
{
    const response_case *c = *state;
    char *text = bq(c->body);
    size_t len = strlen(text);
    char *body = exact_copy(text, len);
    free(text);
    openai_completion out;
    memset(&out, 0xAB, sizeof out);
    rf_err err;
    rf_err_clear(&err);
    openai_status status = openai_parse_response(body, len, &out, &err);
    free(body);
    if (status != c->status)
        fail_msg("status %d, expected %d (%s)", status, c->status, err.msg);
    if (c->status != OPENAI_OK) {
        openai_completion zero;
        memset(&zero, 0, sizeof zero);
        assert_memory_equal(&out, &zero, sizeof out);
        assert_string_equal(err.msg, c->error);
        return;
    }
    char *content = bq(c->content);
    assert_string_equal(out.content, content);
    free(content);
    assert_string_or_null(out.model, c->model);
    assert_string_or_null(out.provider, c->provider);
    assert_string_or_null(out.id, c->id);
    assert_string_or_null(out.finish_reason, c->finish_reason);
    assert_int_equal(out.prompt_tokens, c->prompt_tokens);
    assert_int_equal(out.completion_tokens, c->completion_tokens);
    assert_int_equal(out.has_cost, c->has_cost);
    assert_int_equal(out.cost_invalid, c->cost_invalid);
    assert_string_or_null(out.service_tier, c->service_tier);
    assert_true(out.cost == c->cost);
    openai_completion_free(&out);
    openai_completion_free(NULL);
}

/* Every truncation and many single-byte corruptions of real bodies: never a crash, and
 * the result is consistent (OK has content; otherwise *out is zeroed). */
static void check_consistent(const char *body, size_t len)
{
    char *copy = exact_copy(body, len);
    openai_completion out;
    rf_err err;
    openai_status status = openai_parse_response(copy, len, &out, &err);
    if (status == OPENAI_OK) {
        assert_non_null(out.content);
        assert_true(out.content[0] != '\0');
    } else {
        assert_null(out.content);
        assert_true(err.msg[0] != '\0');
    }
    openai_completion_free(&out);
    openai_error_info info;
    openai_parse_error(copy, len, &info);
    assert_true(strlen(info.msg) < sizeof info.msg);
    assert_null(strchr(info.msg, '\n'));
    free(copy);
}

static void test_response_mangled(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"id\":\"gen-1\",\"model\":\"m\",\"provider\":\"P\",\"choices\":[{\"message\":{\"role\":"
        "\"assistant\",\"content\":\"Hello \\u00e9\\ud83d\\ude00\",\"tool_calls\":[{\"id\":\"c\"}]},"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,"
        "\"cost\":0.1}}",
        "{\"error\":{\"message\":\"This model's maximum context length is 8192 tokens\","
        "\"code\":\"context_length_exceeded\",\"metadata\":{\"raw\":\"x\"}}}",
    };
    static const char flips[] = {'\0', '"', '{', '}', '[', ']', ',', ':', '\\', 'x', '1', '\xff'};
    for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++) {
        size_t len = strlen(bodies[b]);
        for (size_t cut = 0; cut <= len; cut++)
            check_consistent(bodies[b], cut);
        char *mutated = strdup(bodies[b]);
        assert_non_null(mutated);
        for (size_t i = 0; i < len; i++) {
            for (size_t f = 0; f < sizeof flips; f++) {
                char saved = mutated[i];
                mutated[i] = flips[f];
                check_consistent(mutated, len);
                mutated[i] = saved;
            }
        }
        free(mutated);
    }
}

/* ---- main: fixed tests, then one test per table row ---- */

/* X-OpenRouter-Metadata: the answer's openrouter_metadata object kept as given; anything
 * but an object is not kept; service_tier recorded. */
static void test_or_metadata(void **state)
{
    (void)state;
    const char *ok = "{\"choices\":[{\"message\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}],"
                     "\"service_tier\":\"flex\",\"openrouter_metadata\":{\"strategy\":\"fallback\","
                     "\"attempts\":[{\"model\":\"a\",\"status\":502},{\"model\":\"b\",\"status\":200}]}}";
    openai_completion out;
    rf_err err;
    assert_int_equal(openai_parse_response(ok, strlen(ok), &out, &err), OPENAI_OK);
    assert_non_null(out.or_metadata);
    assert_string_equal(out.or_metadata, "{\"strategy\":\"fallback\",\"attempts\":"
                        "[{\"model\":\"a\",\"status\":502},{\"model\":\"b\",\"status\":200}]}");
    assert_string_equal(out.service_tier, "flex");
    openai_completion_free(&out);
    const char *not_object = "{\"choices\":[{\"message\":{\"content\":\"hi\"}}],"
                             "\"openrouter_metadata\":[1,2]}";
    assert_int_equal(openai_parse_response(not_object, strlen(not_object), &out, &err), OPENAI_OK);
    assert_null(out.or_metadata);
    assert_null(out.service_tier);
    openai_completion_free(&out);
}

/* The max_tokens the budget reserves for must be the one sent. */
static void test_effective_max_tokens(void **state)
{
    static const struct {
        const char *prompt;
        int want;
    } rows[] = {
        {"plain text", 800},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":100}", 100},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":5000}", 800},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
         "\"max_completion_tokens\":50,\"max_tokens\":70}", 50},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-3}", 800},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 800},
        {"{\"max_tokens\":10}", 800},   /* no messages: plain text, the tier's cap */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(openai_effective_max_tokens(rows[i].prompt, strlen(rows[i].prompt), 800),
                         rows[i].want);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_build_nul_byte),
        cmocka_unit_test(test_build_no_model),
        cmocka_unit_test(test_params_empty_prompt),
        cmocka_unit_test(test_response_mangled),
        cmocka_unit_test(test_effective_max_tokens),
        cmocka_unit_test(test_or_metadata),
    };
    struct CMUnitTest tests[COUNT(fixed) + COUNT(build_cases) + COUNT(params_cases) +
                            COUNT(response_cases)];
    size_t n = 0;
    for (size_t i = 0; i < COUNT(fixed); i++)
        tests[n++] = fixed[i];
    for (size_t i = 0; i < COUNT(build_cases); i++)
        tests[n++] = (struct CMUnitTest){build_cases[i].name, test_build_case, NULL, NULL,
                                         (void *)&build_cases[i]};
    for (size_t i = 0; i < COUNT(params_cases); i++)
        tests[n++] = (struct CMUnitTest){params_cases[i].name, test_params_case, NULL, NULL,
                                         (void *)&params_cases[i]};
    for (size_t i = 0; i < COUNT(response_cases); i++)
        tests[n++] = (struct CMUnitTest){response_cases[i].name, test_response_case, NULL, NULL,
                                         (void *)&response_cases[i]};
    return _cmocka_run_group_tests("openai", tests, n, NULL, NULL);
}

