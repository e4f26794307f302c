/* test_redact.c — the redactor (src/redact.c): echo forms x positions, special keys,
 * overlapping and many keys, empty input, in-place use, key swaps under readers, speed
 * (also on long runs of escape characters), keys learned one at a time.
 *
 * The echo table is crossed with the position table: every form of a key is put at the
 * start, middle and end of a text, inside a JSON string and glued to other text, and the
 * result must be exactly the text with the form replaced by the expected marker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "redact.h"

#define KEY "sk-or-v1-0123456789abcdefABCDEF/wxyz"  /* 36 bytes (whole base64 groups) */

static void set_keys(const char *const *keys, size_t n)
{
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(redact_set_keys(keys, n, &err), 0);
}

static void set_one(const char *key)
{
    set_keys(&key, 1);
}

static int teardown_keys(void **state)
{
    (void)state;
    set_keys(NULL, 0);
    return 0;
}

/* ---- encoders for building echo forms ---- */

/* Every byte of s as \u00XX (upper-case hex when upper). */
static char *json_escape_all(const char *s, int upper)
{
    char *out = malloc(6 * strlen(s) + 1), *o = out;
    assert_non_null(out);
    for (; *s; s++)
        o += sprintf(o, upper ? "\\u%04X" : "\\u%04x", (unsigned char)*s);
    *o = '\0';
    return out;
}

/* Every byte of s as %XX. */
static char *percent_all(const char *s, int upper)
{
    char *out = malloc(3 * strlen(s) + 1), *o = out;
    assert_non_null(out);
    for (; *s; s++)
        o += sprintf(o, upper ? "%%%02X" : "%%%02x", (unsigned char)*s);
    *o = '\0';
    return out;
}

/* Every byte of s but letters and digits as %XX, percent-encoded again `times` more
 * times ("%252D" for '-' once more). */
static char *percent_again(const char *s, int times)
{
    char *out = malloc((3 + 2 * (size_t)times) * strlen(s) + 1), *o = out;
    assert_non_null(out);
    for (; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')) {
            *o++ = *s;
            continue;
        }
        *o++ = '%';
        for (int i = 0; i < times; i++)
            o += sprintf(o, "25");
        o += sprintf(o, "%02X", (unsigned char)*s);
    }
    *o = '\0';
    return out;
}

static char *base64(const unsigned char *s, size_t len, int url)
{
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * (len + 2) / 3 + 1), *o = out;
    assert_non_null(out);
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        for (int c = 0; c < 4; c++) {
            char ch = c <= (int)(len - i) ? std[(v >> (18 - 6 * c)) & 63] : '=';
            if (url && ch == '+')
                ch = '-';
            if (url && ch == '/')
                ch = '_';
            *o++ = ch;
        }
    }
    *o = '\0';
    return out;
}

/* ---- the echo table ---- */

typedef struct echo_form {
    const char *name;
    char *text;               /* what the server sends back (owned) */
    char *marker;             /* what it becomes (owned) */
} echo_form;

static echo_form forms[40];
static size_t n_forms;

static char *dupf(const char *s)
{
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

/* marker: a string literal, or (after the base64 forms) an owned string */
static void add_form_owned(const char *name, char *text, char *marker)
{
    assert_true(n_forms < sizeof forms / sizeof forms[0]);
    forms[n_forms++] = (echo_form){name, text, marker};
}

static void add_form(const char *name, char *text, const char *marker)
{
    add_form_owned(name, text, dupf(marker));
}

static void build_forms(void)
{
    char buf[512];
    n_forms = 0;
    add_form("raw", dupf(KEY), "[REDACTED]");
    add_form("upper", dupf("SK-OR-V1-0123456789ABCDEFABCDEF/WXYZ"), "[REDACTED]");
    add_form("lower", dupf("sk-or-v1-0123456789abcdefabcdef/wxyz"), "[REDACTED]");
    add_form("json_u_all", json_escape_all(KEY, 0), "[REDACTED]");
    add_form("json_u_all_upper_hex", json_escape_all(KEY, 1), "[REDACTED]");
    add_form("json_u_dashes", dupf("sk\\u002dor\\u002dv1\\u002d0123456789abcdefABCDEF\\/wxyz"),
             "[REDACTED]");
    add_form("json_escaped_slash", dupf("sk-or-v1-0123456789abcdefABCDEF\\/wxyz"), "[REDACTED]");
    add_form("percent_all", percent_all(KEY, 0), "[REDACTED]");
    add_form("percent_all_upper", percent_all(KEY, 1), "[REDACTED]");
    add_form("percent_dashes_mixed_case", dupf("sk%2dor%2Dv1%2d0123456789abcdefABCDEF%2fwxyz"),
             "[REDACTED]");
    add_form("mixed_encodings", dupf("s%6B\\u002dOR-v1%2D0123\\u0034567%389abcdef\\u0041BCDEF\\/wxyz"),
             "[REDACTED]");
    /* encoded twice and more: a JSON text quoted in a JSON string, a URL encoded again */
    add_form("json_twice", dupf("sk\\\\u002dor\\\\u002dv1\\\\u002d0123456789abcdefABCDEF"
                                "\\\\\\/wxyz"), "[REDACTED]");
    add_form("json_four_times", dupf("sk\\\\\\\\u002dor-v1\\\\\\\\u002D0123456789abcdef"
                                     "ABCDEF/wxyz"), "[REDACTED]");
    add_form("percent_twice", percent_again(KEY, 1), "[REDACTED]");
    add_form("percent_four_times", percent_again(KEY, 3), "[REDACTED]");
    add_form("twice_mixed", dupf("sk%252Dor\\\\u002dv1%2D0123\\u0034567%25389abcdefABCDEF%252fwxyz"),
             "[REDACTED]");
    add_form("prefix_8", dupf("sk-or-v1"), "***");
    add_form("prefix_9_escaped", dupf("sk\\u002dor-v1-"), "[REDACTED]");   /* 14 bytes of text */
    add_form("prefix_20", dupf("sk-or-v1-0123456789a"), "[REDACTED]");
    add_form("prefix_with_ellipsis", dupf("sk-or-v1-0123..."), "[REDACTED]...");
    snprintf(buf, sizeof buf, "%s", KEY);
    add_form("base64", base64((const unsigned char *)buf, strlen(buf), 0), "[REDACTED]");
    add_form("base64url", base64((const unsigned char *)buf, strlen(buf), 1), "[REDACTED]");
    /* "Basic base64(user:key)": the key starts at byte 5, so the first 7 characters are
     * (partly) the user's and the last one and the padding partly not the key's */
    snprintf(buf, sizeof buf, "user:%s", KEY);
    char *basic = base64((const unsigned char *)buf, strlen(buf), 0);
    size_t blen = strlen(basic);
    char *want = malloc(blen + 1);
    assert_non_null(want);
    snprintf(want, blen + 1, "%.7s[REDACTED]%s", basic, basic + blen - 2);
    add_form_owned("base64_basic_auth", basic, want);
}

static void free_forms(void)
{
    for (size_t i = 0; i < n_forms; i++) {
        free(forms[i].text);
        free(forms[i].marker);
    }
    n_forms = 0;
}

typedef struct position {
    const char *name;
    const char *fmt;          /* one %s: the form, or the marker */
} position;

static const position positions[] = {
    {"alone", "%s"},
    {"start", "%s is not a valid key"},
    {"middle", "Incorrect API key provided: %s. Check it."},
    {"end", "Incorrect API key provided: %s"},
    {"json_string", "{\"error\":{\"message\":\"bad key \\\"%s\\\"\",\"code\":401}}"},
    {"glued", "xx%syy"},
    {"newlines", "line one\n%s\nline three"},
};

static char *format(const char *fmt, const char *s)
{
    size_t n = strlen(fmt) + strlen(s) + 1;
    char *out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, fmt, s);
    return out;
}

static void test_echo_forms(void **state)
{
    (void)state;
    set_one(KEY);
    build_forms();
    for (size_t f = 0; f < n_forms; f++) {
        for (size_t p = 0; p < sizeof positions / sizeof positions[0]; p++) {
            char *text = format(positions[p].fmt, forms[f].text);
            char *got = redact_dup(text);
            assert_non_null(got);
            assert_true(strlen(got) <= strlen(text));
            char *want = format(positions[p].fmt, forms[f].marker);
            if (strcmp(got, want) != 0)
                fail_msg("form %s at %s:\n  text %s\n  got  %s\n  want %s", forms[f].name,
                         positions[p].name, text, got, want);
            free(want);
            /* nothing of the key's first 8 characters is left, in any case */
            if (strcasestr(got, "sk-or-v1"))
                fail_msg("form %s at %s: key prefix left in %s", forms[f].name,
                         positions[p].name, got);
            free(got);
            free(text);
        }
    }
    free_forms();
}

/* ---- what is not a key stays ---- */

static void test_leaves_other_text(void **state)
{
    (void)state;
    set_one(KEY);
    static const char *const same[] = {
        "", "hello", "sk-or-v", "sk-or-", "SK-OR-V", "sk-or-x1-0123", "sk\\u002dor-v",
        "%zz%2 \\u12 \\uZZZZ \\q \\", "%", "\\u", "\\ud800\\u0041", "sk-or-v%31",  /* %31 is '1' */
        "a sk-or-v2-0123456789 b",
        "\\\\\\\\\\\\ %2525zz %25 %2525 \\\\u12 sk\\\\u002dor-v",   /* runs, not keys */
        "sk%252Dor%252Dv", "sk\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\u002dor-v1",  /* 16 backslashes: too deep */
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char *got = redact_dup(same[i]);
        assert_non_null(got);
        if (strcmp(same[i], "sk-or-v%31") == 0) {
            assert_string_equal(got, "[REDACTED]");   /* decoded, it is the 8-byte prefix */
        } else if (strcmp(got, same[i]) != 0) {
            fail_msg("changed %s into %s", same[i], got);
        }
        free(got);
    }
}

/* ---- special keys ---- */

static void expect_redacted(const char *text, const char *want)
{
    char *got = redact_dup(text);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("text %s\n  got  %s\n  want %s", text, got, want);
    free(got);
}

static void test_regex_special_key(void **state)
{
    (void)state;
    const char *key = "a.b*c+d?e(f)g[h]i{j}k|l^m$n\\o";
    set_one(key);
    expect_redacted("x a.b*c+d?e(f)g[h]i{j}k|l^m$n\\o y", "x [REDACTED] y");
    /* JSON writes the backslash as \\ */
    expect_redacted("{\"k\":\"a.b*c+d?e(f)g[h]i{j}k|l^m$n\\\\o\"}", "{\"k\":\"[REDACTED]\"}");
    /* the regex meanings do not apply: "aXb" is not "a.b" */
    expect_redacted("aXbbbc+d?e(f)g", "aXbbbc+d?e(f)g");
    expect_redacted("a.b*c+d?", "***");                        /* an 8-byte prefix */
}

static void test_short_key_whole_only(void **state)
{
    (void)state;
    set_one("pw123");
    expect_redacted("redis said pw123!", "redis said ***!");
    expect_redacted("PW123", "***");
    expect_redacted("pw12 pw1234", "pw12 ***4");
    expect_redacted("p%77123", "***");
    set_one("ab");
    expect_redacted("xabx", "x**x");
}

static void test_non_ascii_key(void **state)
{
    (void)state;
    set_one("cl\xc3\xa9-secr\xc3\xa8te-\xf0\x9f\x98\x80-xyz");   /* clé-secrète-😀-xyz */
    expect_redacted("k=cl\\u00e9-secr\\u00E8te-\\ud83d\\ude00-xyz;",
                    "k=[REDACTED];");
    expect_redacted("k=cl%C3%A9-secr%c3%a8te-%F0%9F%98%80-xyz;", "k=[REDACTED];");
}

static void test_overlapping_keys(void **state)
{
    (void)state;
    const char *keys[] = {"AAAABBBBCCCC", "CCCCDDDDEEEE"};
    set_keys(keys, 2);
    expect_redacted("<AAAABBBBCCCCDDDDEEEE>", "<[REDACTED]>");
    expect_redacted("<AAAABBBBCCCC><CCCCDDDDEEEE>", "<[REDACTED]><[REDACTED]>");
    expect_redacted("AAAABBBBCCCCCCCCDDDDEEEE", "[REDACTED]");    /* touching: one span */

    const char *nested[] = {"secret-token-1234", "secret-token-1234-extended"};
    set_keys(nested, 2);
    expect_redacted("k=secret-token-1234-extended;", "k=[REDACTED];");
    /* "secret-token-1234-" is a prefix of the longer key: the '-' goes too */
    expect_redacted("k=secret-token-1234-other;", "k=[REDACTED]other;");
    expect_redacted("k=secret-token-1234.", "k=[REDACTED].");
}

static void test_many_keys(void **state)
{
    (void)state;
    enum { N = 200 };
    char *keys[N];
    for (int i = 0; i < N; i++) {
        keys[i] = malloc(40);
        assert_non_null(keys[i]);
        snprintf(keys[i], 40, "key-%03d-%08x-tail", i, (unsigned)(i * 2654435761u));
    }
    set_keys((const char *const *)keys, N);
    char text[N * 48 + 1];
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s\n", keys[i]);
    char *got = redact_dup(text);
    assert_non_null(got);
    char want[N * 12 + 1];
    len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(want + len, sizeof want - len, "[REDACTED]\n");
    assert_string_equal(got, want);
    free(got);
    for (int i = 0; i < N; i++)
        free(keys[i]);
}

/* ---- empty and NULL ---- */

static void test_empty_and_null(void **state)
{
    (void)state;
    rf_err err;
    assert_int_equal(redact_set_keys(NULL, 0, &err), 0);
    expect_redacted("sk-or-v1-anything", "sk-or-v1-anything");    /* no keys: unchanged */
    const char *holes[] = {NULL, "", KEY, NULL};
    set_keys(holes, 4);
    expect_redacted("a " KEY " b", "a [REDACTED] b");
    expect_redacted("", "");
    assert_null(redact_dup(NULL));
    assert_int_equal(redact_inplace(NULL, 10), 0);
    char one[] = "x";
    assert_int_equal(redact_inplace(one, 0), 0);
    assert_int_equal(redact_set_keys(NULL, 3, &err), 0);          /* no array: nothing */
    expect_redacted(KEY, KEY);
}

/* ---- in place ---- */

static void test_inplace(void **state)
{
    (void)state;
    set_one(KEY);
    /* not NUL-terminated: the bytes after len are not read or written */
    const char src[] = "key=" KEY ";";
    size_t len = sizeof src - 1;
    char *buf = malloc(len + 8);
    assert_non_null(buf);
    memcpy(buf, src, len);
    memset(buf + len, '#', 8);
    size_t n = redact_inplace(buf, len);
    assert_int_equal(n, strlen("key=[REDACTED];"));
    assert_memory_equal(buf, "key=[REDACTED];", n);
    assert_int_equal(buf[n], '\0');
    assert_memory_equal(buf + len, "########", 8);

    /* nothing to redact: same length, bytes untouched, no NUL written */
    memcpy(buf, "nothing here at all", 19);
    assert_int_equal(redact_inplace(buf, 19), 19);
    assert_memory_equal(buf, "nothing here at all", 19);
    free(buf);

    /* text with NUL bytes inside (a binary body) */
    char bin[] = "a\0" KEY "\0b";
    n = redact_inplace(bin, sizeof bin - 1);
    assert_int_equal(n, 2 + 10 + 2);
    assert_memory_equal(bin, "a\0[REDACTED]\0b", n);
}

/* ---- long texts and speed ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* valgrind runs code tens of times slower, the sanitizers a few times. */
static double slowdown(void)
{
    const char *preload = getenv("LD_PRELOAD");
    if (preload && (strstr(preload, "vgpreload") || strstr(preload, "valgrind")))
        return 100;
#if defined(__SANITIZE_ADDRESS__)
    return 10;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 10;
#endif
#endif
    return 1;
}

static void test_one_mib_ten_keys(void **state)
{
    (void)state;
    char *keys[10];
    for (int i = 0; i < 10; i++) {
        keys[i] = malloc(64);
        assert_non_null(keys[i]);
        snprintf(keys[i], 64, "sk-or-v1-%02d%040x", i, (unsigned)(i * 40503u + 7));
    }
    set_keys((const char *const *)keys, 10);

    /* English-like text with backslashes and percent signs, and the keys in it */
    size_t len = 1024 * 1024;
    char *text = malloc(len + 1);
    assert_non_null(text);
    static const char filler[] =
        "The quick brown fox jumps over the lazy dog; sk-or-v is a prefix, 50% \\n off, "
        "{\"skip\": \"s\\u006b\"} sssss kkkkk ------ ";
    for (size_t i = 0; i < len; i++)
        text[i] = filler[i % (sizeof filler - 1)];
    text[len] = '\0';
    size_t planted = 0;
    for (size_t off = 1000; off + 64 < len; off += len / 37) {
        const char *k = keys[planted % 10];
        memcpy(text + off, k, strlen(k));
        planted++;
    }

    double t0 = now_ms();
    size_t n = redact_inplace(text, len);
    double elapsed = now_ms() - t0;
    double limit = 100 * slowdown();
    print_message("1 MiB, 10 keys: %.1f ms (limit %.0f ms)\n", elapsed, limit);
    assert_true(elapsed < limit);

    size_t markers = 0;
    for (const char *p = text; (p = strstr(p, "[REDACTED]")); p += 10)
        markers++;
    assert_int_equal(markers, planted);
    assert_true(n < len);
    for (int i = 0; i < 10; i++) {
        assert_null(strstr(text, keys[i]));
        free(keys[i]);
    }
    free(text);
}

/* Runs of backslashes and of "%25" (what the twice-encoded forms are made of) cost a
 * bounded look-ahead each, not one that grows with the run. */
static void test_long_escape_runs(void **state)
{
    (void)state;
    set_one(KEY);
    size_t len = 1024 * 1024;
    char *text = malloc(len + 1);
    assert_non_null(text);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < len; i++)
            text[i] = pass == 0 ? '\\' : "%25"[i % 3];
        text[len] = '\0';
        double t0 = now_ms();
        size_t n = redact_inplace(text, len);
        double elapsed = now_ms() - t0;
        print_message("1 MiB of %s: %.1f ms\n", pass == 0 ? "backslashes" : "%25", elapsed);
        assert_int_equal(n, len);                       /* nothing in it is a key */
        assert_true(elapsed < 200 * slowdown());
    }
    free(text);
}

/* ---- keys learned one at a time (a key file rewritten after the config was applied) ---- */

static void test_learn_key(void **state)
{
    (void)state;
    rf_err err;
    rf_err_clear(&err);
    set_one(KEY);
    expect_redacted("new=sk-rotated-0123456789", "new=sk-rotated-0123456789");
    assert_int_equal(redact_learn_key("sk-rotated-0123456789", &err), 0);
    expect_redacted("new=sk-rotated-0123456789 old=" KEY, "new=[REDACTED] old=[REDACTED]");
    /* its other forms too: the learned key is a secret like the others */
    expect_redacted("sk\\u002drotated%2D0123456789", "[REDACTED]");
    assert_int_equal(redact_learn_key("sk-rotated-0123456789", &err), 0);   /* known */
    assert_int_equal(redact_learn_key("", &err), 0);
    assert_int_equal(redact_learn_key(NULL, &err), 0);
    expect_redacted("" KEY, "[REDACTED]");
    /* the next config's set replaces everything, learned keys included */
    set_one("another-secret-abc");
    expect_redacted("sk-rotated-0123456789", "sk-rotated-0123456789");
    /* learning into an empty set */
    set_keys(NULL, 0);
    assert_int_equal(redact_learn_key("first-learned-key-1", &err), 0);
    expect_redacted("x first-learned-key-1 y", "x [REDACTED] y");
}

static void *learner(void *arg)
{
    char key[64];
    rf_err err;
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "learned-%ld-%02d-0123456789", (long)(intptr_t)arg, i);
        if (redact_learn_key(key, &err) < 0)
            return (void *)1;
    }
    return NULL;
}

/* Learners in parallel lose nobody's key: every learned one is redacted afterwards. */
static void test_learn_in_parallel(void **state)
{
    (void)state;
    set_one(KEY);
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, learner, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 4; i++) {
        void *rc;
        assert_int_equal(pthread_join(t[i], &rc), 0);
        assert_null(rc);
    }
    char text[64];
    for (long i = 0; i < 4; i++)
        for (int k = 0; k < 50; k++) {
            snprintf(text, sizeof text, "learned-%ld-%02d-0123456789", i, k);
            expect_redacted(text, "[REDACTED]");
        }
    expect_redacted(KEY, "[REDACTED]");
}

/* ---- keys swapped while readers redact ---- */

static volatile int stop_readers;

static void *reader(void *arg)
{
    (void)arg;
    long bad = 0;
    while (!__atomic_load_n(&stop_readers, __ATOMIC_RELAXED)) {
        char *got = redact_dup("a=" KEY " b=second-secret-value-42");
        if (!got || strcmp(got, "a=[REDACTED] b=[REDACTED]") != 0)
            bad++;
        free(got);
    }
    return (void *)bad;
}

static void test_swap_under_readers(void **state)
{
    (void)state;
    const char *ab[] = {KEY, "second-secret-value-42"};
    const char *ba[] = {"second-secret-value-42", KEY, "a-third-one-never-seen"};
    set_keys(ab, 2);
    pthread_t threads[3];
    stop_readers = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, reader, NULL), 0);
    for (int i = 0; i < 2000; i++) {
        if (i % 2)
            set_keys(ab, 2);
        else
            set_keys(ba, 3);
    }
    __atomic_store_n(&stop_readers, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 3; i++) {
        void *bad;
        assert_int_equal(pthread_join(threads[i], &bad), 0);
        assert_int_equal((long)bad, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_echo_forms, teardown_keys),
        cmocka_unit_test_teardown(test_leaves_other_text, teardown_keys),
        cmocka_unit_test_teardown(test_regex_special_key, teardown_keys),
        cmocka_unit_test_teardown(test_short_key_whole_only, teardown_keys),
        cmocka_unit_test_teardown(test_non_ascii_key, teardown_keys),
        cmocka_unit_test_teardown(test_overlapping_keys, teardown_keys),
        cmocka_unit_test_teardown(test_many_keys, teardown_keys),
        cmocka_unit_test_teardown(test_empty_and_null, teardown_keys),
        cmocka_unit_test_teardown(test_inplace, teardown_keys),
        cmocka_unit_test_teardown(test_one_mib_ten_keys, teardown_keys),
        cmocka_unit_test_teardown(test_long_escape_runs, teardown_keys),
        cmocka_unit_test_teardown(test_learn_key, teardown_keys),
        cmocka_unit_test_teardown(test_learn_in_parallel, teardown_keys),
        cmocka_unit_test_teardown(test_swap_under_readers, teardown_keys),
    };
    return cmocka_run_group_tests_name("redact", tests, NULL, NULL);
}
