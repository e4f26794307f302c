/* echo.c — the forms in which a careless or hostile provider reflects the caller's API
 * key back (echo_auth, echo_auth_ok), so routefs's redaction can be tested against each.
 *
 * The result is JSON text, not a C string: the json_escaped form must reach the client as
 * "\u002d" escapes inside a JSON string, which no JSON printer would write for '-'. */
#include "sim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    enum sim_echo form;
} echo_names[] = {
    {"raw", SIM_ECHO_RAW},       {"json_escaped", SIM_ECHO_JSON_ESCAPED},
    {"percent", SIM_ECHO_PERCENT}, {"upper", SIM_ECHO_UPPER},
    {"lower", SIM_ECHO_LOWER},   {"prefix8", SIM_ECHO_PREFIX8},
    {"all", SIM_ECHO_ALL},
};

bool sim_echo_parse(const char *name, enum sim_echo *out)
{
    for (size_t i = 0; i < sizeof echo_names / sizeof echo_names[0]; i++)
        if (strcmp(echo_names[i].name, name) == 0) {
            *out = echo_names[i].form;
            return true;
        }
    return false;
}

const char *sim_auth_key(const char *auth)
{
    if (!auth)
        return "";
    if (strncasecmp(auth, "Bearer ", 7) == 0)
        auth += 7;
    while (*auth == ' ')
        auth++;
    return auth;
}

/* A growable byte buffer; `failed` once an allocation failed. */
typedef struct text_buf {
    char *data;
    size_t len, cap;
    bool failed;
} text_buf;

static void put(text_buf *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 128;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *grown = realloc(t->data, cap);
        if (!grown) {
            t->failed = true;
            return;
        }
        t->data = grown;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void put_str(text_buf *t, const char *s)
{
    put(t, s, strlen(s));
}

/* s[0..n) as JSON string content (no quotes); with dashes, '-' and '_' as \u escapes. */
static void put_json(text_buf *t, const char *s, size_t n, bool dashes)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(t, esc, 2);
        } else if (c < 0x20 || (dashes && (c == '-' || c == '_'))) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(t, esc, 6);
        } else {
            put(t, (const char *)&c, 1);
        }
    }
}

/* key in one form (not "all") as JSON string content. */
static void put_form(text_buf *t, const char *key, enum sim_echo form)
{
    size_t n = strlen(key);
    switch (form) {
    case SIM_ECHO_JSON_ESCAPED:
        put_json(t, key, n, true);
        break;
    case SIM_ECHO_PERCENT:   /* everything but letters and digits, so '-' and '_' too */
        for (size_t i = 0; i < n; i++) {
            char esc[4];
            if (isalnum((unsigned char)key[i])) {
                put(t, key + i, 1);
            } else {
                snprintf(esc, sizeof esc, "%%%02X", (unsigned char)key[i]);
                put(t, esc, 3);
            }
        }
        break;
    case SIM_ECHO_UPPER:
    case SIM_ECHO_LOWER:
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)key[i];
            char changed = (char)(form == SIM_ECHO_UPPER ? toupper(c) : tolower(c));
            put_json(t, &changed, 1, false);
        }
        break;
    case SIM_ECHO_PREFIX8: {   /* the first half of the key, at least 8 characters */
        size_t keep = (n + 1) / 2 > 8 ? (n + 1) / 2 : 8;
        put_json(t, key, keep < n ? keep : n, false);
        put_str(t, "****");
        break;
    }
    default:
        put_json(t, key, n, false);
        break;
    }
}

char *sim_echo_literal(const char *prefix, const char *key, enum sim_echo form)
{
    static const struct {
        const char *label;
        enum sim_echo form;
    } every[] = {
        {"raw=", SIM_ECHO_RAW},         {" json_escaped=", SIM_ECHO_JSON_ESCAPED},
        {" percent=", SIM_ECHO_PERCENT}, {" upper=", SIM_ECHO_UPPER},
        {" lower=", SIM_ECHO_LOWER},     {" prefix8=", SIM_ECHO_PREFIX8},
    };
    text_buf t = {0};
    put_str(&t, "\"");
    put_json(&t, prefix, strlen(prefix), false);
    if (form == SIM_ECHO_ALL) {
        for (size_t i = 0; i < sizeof every / sizeof every[0]; i++) {
            put_str(&t, every[i].label);
            put_form(&t, key, every[i].form);
        }
    } else {
        put_form(&t, key, form);
    }
    put_str(&t, "\"");
    if (t.failed) {
        free(t.data);
        return NULL;
    }
    return t.data;
}
