/* test_jsonw.c — jsonw.c writes the same text as building a cJSON tree and printing it
 * (json_print_line, pretty and compact): documents are parsed from JSON, written back
 * through jsonw member by member, and the two texts compared; plus what fails (an
 * unclosed document, embedded text that does not parse) (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "jsonfmt.h"
#include "jsonw.h"

/* Write item (a member named key, or NULL) through w.  Strings named "embedded" are JSON
 * text to write with jw_json, standing for the value they hold. */
static void write_item(jsonw *w, const char *key, const cJSON *item)
{
    if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
        jw_open(w, key, cJSON_IsArray(item) ? '[' : '{');
        for (const cJSON *el = item->child; el; el = el->next)
            write_item(w, cJSON_IsObject(item) ? el->string : NULL, el);
        jw_close(w);
    } else if (cJSON_IsString(item) && key && !strcmp(key, "embedded")) {
        jw_json(w, key, item->valuestring);
    } else if (cJSON_IsString(item)) {
        jw_str(w, key, item->valuestring);
    } else if (cJSON_IsNumber(item)) {
        jw_num(w, key, item->valuedouble);
    } else if (cJSON_IsBool(item)) {
        jw_bool(w, key, cJSON_IsTrue(item));
    } else {
        jw_null(w, key);
    }
}

/* The tree cJSON would print: "embedded" strings replaced by what they hold. */
static void expand_embedded(cJSON *item)
{
    for (cJSON *el = item->child; el; el = el->next) {
        if (cJSON_IsString(el) && el->string && !strcmp(el->string, "embedded")) {
            cJSON *v = cJSON_Parse(el->valuestring);
            assert_non_null(v);
            assert_true(cJSON_ReplaceItemInObjectCaseSensitive(item, "embedded", v));
            el = v;
        } else {
            expand_embedded(el);
        }
    }
}

static void assert_same_text(const char *json)
{
    cJSON *doc = cJSON_Parse(json);
    assert_non_null(doc);
    for (int pretty = 0; pretty <= 1; pretty++) {
        jsonw w;
        jw_init(&w, pretty);
        write_item(&w, NULL, doc);
        char *got = jw_finish(&w, 1);
        cJSON *tree = cJSON_Duplicate(doc, 1);
        expand_embedded(tree);
        char *want = json_print_line(tree, pretty);
        cJSON_Delete(tree);
        assert_non_null(got);
        assert_non_null(want);
        assert_string_equal(got, want);
        free(got);
        free(want);
    }
    cJSON_Delete(doc);
}

static void test_a_meta_like_document(void **state)
{
    (void)state;
    assert_same_text(
        "{\"file\": \"p1.txt\", \"tier\": \"bulk\", \"tag\": null, \"state\": \"done\","
        " \"route\": [{\"provider\": \"a\", \"model\": \"m/1\"}, {\"provider\": \"b\", \"model\": \"m\"}],"
        " \"hops\": [{\"provider\": \"a\", \"status\": 429, \"error\": \"rate limited\","
        "   \"latency_ms\": 51, \"at\": \"2026-12-03T08:49:03.593Z\", \"tokens\": 0},"
        "   {\"provider\": \"b\", \"status\": null, \"error\": null, \"latency_ms\": 0}],"
        " \"fallback\": true, \"tokens\": {\"prompt\": 12, \"completion\": null},"
        " \"cost\": 0.000146, \"cost_estimated\": true, \"started_at\": null}");
}

static void test_strings_are_escaped_as_cjson_does(void **state)
{
    (void)state;
    assert_same_text("{\"s\": \"quote \\\" backslash \\\\ slash / tab \\t nl \\n cr \\r\","
                     " \"ctl\": \"\\u0001\\u001f\\b\\f\\u007f\", \"utf8\": \"h\\u00e9llo \\u2603\","
                     " \"k\\\"ey\": \"\", \"empty\": {}, \"none\": []}");
}

static void test_numbers_print_as_cjson_prints_them(void **state)
{
    (void)state;
    assert_same_text("{\"a\": 0, \"b\": -5, \"c\": 2147483647, \"d\": 2147483648,"
                     " \"e\": -2147483649, \"f\": 123456789012, \"g\": 0.1, \"h\": 1e-9,"
                     " \"i\": 0.30000000000000004, \"j\": 2.5, \"k\": -0.000001234,"
                     " \"l\": 1e300, \"m\": 3.14159265358979}");
    /* and the integers jw_int writes */
    jsonw w;
    jw_init(&w, 0);
    jw_open(&w, NULL, '{');
    jw_int(&w, "n", -42);
    jw_int(&w, "big", 1700000000000LL);
    jw_close(&w);
    char *text = jw_finish(&w, 1);
    assert_string_equal(text, "{\"n\":-42,\"big\":1700000000000}\n");
    free(text);
    /* and without the newline (the events line) */
    jw_init(&w, 0);
    jw_open(&w, NULL, '{');
    jw_num(&w, "cost", 0.5);
    jw_close(&w);
    text = jw_finish(&w, 0);
    assert_string_equal(text, "{\"cost\":0.5}");
    free(text);
}

static void test_embedded_json_is_laid_out_in_place(void **state)
{
    (void)state;
    assert_same_text("{\"hops\": [{\"provider\": \"or\", \"embedded\":"
                     " \"{\\\"tried\\\": [{\\\"p\\\": \\\"x\\\", \\\"ok\\\": false}],"
                     " \\\"ids\\\": [1, 2, 3]}\"}], \"embedded\": \"[]\"}");
}

static void test_nested_arrays_and_empty_containers(void **state)
{
    (void)state;
    assert_same_text("[{\"a\": [{}, []]}, [[{\"b\": {\"c\": {}}}]], {}]");
    assert_same_text("{}");
    assert_same_text("[]");
}

static void test_what_fails(void **state)
{
    (void)state;
    jsonw w;
    /* unclosed */
    jw_init(&w, 1);
    jw_open(&w, NULL, '{');
    jw_str(&w, "a", "b");
    assert_null(jw_finish(&w, 1));
    /* closed once too often */
    jw_init(&w, 0);
    jw_open(&w, NULL, '{');
    jw_close(&w);
    jw_close(&w);
    assert_null(jw_finish(&w, 1));
    /* embedded text that does not parse */
    jw_init(&w, 0);
    jw_open(&w, NULL, '{');
    jw_json(&w, "x", "{not json");
    jw_close(&w);
    assert_null(jw_finish(&w, 1));
    /* deeper than JW_MAX_DEPTH */
    jw_init(&w, 0);
    for (int i = 0; i <= JW_MAX_DEPTH; i++)
        jw_open(&w, NULL, '[');
    for (int i = 0; i <= JW_MAX_DEPTH; i++)
        jw_close(&w);
    assert_null(jw_finish(&w, 1));
    /* nothing written */
    jw_init(&w, 0);
    assert_null(jw_finish(&w, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_meta_like_document),
        cmocka_unit_test(test_strings_are_escaped_as_cjson_does),
        cmocka_unit_test(test_numbers_print_as_cjson_prints_them),
        cmocka_unit_test(test_embedded_json_is_laid_out_in_place),
        cmocka_unit_test(test_nested_arrays_and_empty_containers),
        cmocka_unit_test(test_what_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
