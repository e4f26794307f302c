/* jsonw.c — see jsonw.h. */
#include "jsonw.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonfmt.h"

enum { LEVEL_HAS_MEMBERS = 1, LEVEL_ARRAY = 2 };   /* jsonw.level[] bits */

static void put(jsonw *w, const char *s, size_t n)
{
    if (w->failed)
        return;
    if (w->len + n + 2 > w->cap) {   /* room for the final '\n' and NUL */
        size_t cap = w->cap ? w->cap : 1024;   /* a meta is about 1 KiB */
        while (w->len + n + 2 > cap)
            cap *= 2;
        char *d = realloc(w->data, cap);
        if (!d) {
            w->failed = 1;
            return;
        }
        w->data = d;
        w->cap = cap;
    }
    memcpy(w->data + w->len, s, n);
    w->len += n;
}

static void puts_(jsonw *w, const char *s)
{
    put(w, s, strlen(s));
}

static void indent(jsonw *w, int depth)
{
    static const char spaces[2 * JW_MAX_DEPTH] = "                                ";
    put(w, spaces, 2 * (size_t)(depth < JW_MAX_DEPTH ? depth : JW_MAX_DEPTH));
}

/* A JSON string as cJSON escapes it: quote, backslash and control bytes; the rest (UTF-8
 * included) as it is. */
static void quoted(jsonw *w, const char *s)
{
    put(w, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(w, run, (size_t)(s - run));
        run = s + 1;
        char esc[8];
        switch (c) {
        case '"': puts_(w, "\\\""); break;
        case '\\': puts_(w, "\\\\"); break;
        case '\b': puts_(w, "\\b"); break;
        case '\f': puts_(w, "\\f"); break;
        case '\n': puts_(w, "\\n"); break;
        case '\r': puts_(w, "\\r"); break;
        case '\t': puts_(w, "\\t"); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            puts_(w, esc);
        }
    }
    put(w, run, (size_t)(s - run));
    put(w, "\"", 1);
}

/* What comes before a value: the separator from the previous member, the line break and
 * indent (pretty), and the key. */
static void member(jsonw *w, const char *key)
{
    if (w->failed || w->depth == 0)
        return;
    unsigned char *level = &w->level[w->depth - 1];
    if (*level & LEVEL_HAS_MEMBERS)
        put(w, ",", 1);
    else
        *level |= LEVEL_HAS_MEMBERS;
    if (w->pretty) {
        put(w, "\n", 1);
        indent(w, w->depth);
    }
    if (key) {
        quoted(w, key);
        if (w->pretty)
            put(w, ": ", 2);
        else
            put(w, ":", 1);
    }
}

void jw_init(jsonw *w, int pretty)
{
    memset(w, 0, sizeof *w);
    w->pretty = pretty;
}

void jw_open(jsonw *w, const char *key, char bracket)
{
    member(w, key);
    put(w, bracket == '[' ? "[" : "{", 1);
    if (w->depth >= JW_MAX_DEPTH)
        w->failed = 1;   /* deeper than any document routefs writes */
    else
        w->level[w->depth++] = bracket == '[' ? LEVEL_ARRAY : 0;
}

void jw_close(jsonw *w)
{
    if (w->failed || w->depth == 0) {
        w->failed = 1;
        return;
    }
    unsigned char level = w->level[--w->depth];
    int had = (level & LEVEL_HAS_MEMBERS) != 0;
    int array = (level & LEVEL_ARRAY) != 0;
    if (had && w->pretty) {
        put(w, "\n", 1);
        indent(w, w->depth);
    }
    put(w, array ? "]" : "}", 1);
}

void jw_str(jsonw *w, const char *key, const char *s)
{
    member(w, key);
    if (s)
        quoted(w, s);
    else
        puts_(w, "null");
}

void jw_int(jsonw *w, const char *key, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    member(w, key);
    puts_(w, buf);
}

/* cJSON's print_number: integers in int's range as such, other values with 15
 * significant digits unless that does not read back as the same double. */
void jw_num(jsonw *w, const char *key, double v)
{
    char buf[64];
    if (isnan(v) || isinf(v)) {
        strcpy(buf, "null");
    } else {
        double clamped = v >= 2147483647.0 ? 2147483647.0 : v <= -2147483648.0 ? -2147483648.0 : v;
        if (v == (double)(int)clamped) {
            snprintf(buf, sizeof buf, "%d", (int)clamped);
        } else {
            snprintf(buf, sizeof buf, "%1.15g", v);
            double back = strtod(buf, NULL);
            double big = fabs(back) > fabs(v) ? fabs(back) : fabs(v);
            if (!(fabs(back - v) <= big * 2.220446049250313e-16))
                snprintf(buf, sizeof buf, "%1.17g", v);
        }
    }
    member(w, key);
    puts_(w, buf);
}

void jw_bool(jsonw *w, const char *key, int v)
{
    member(w, key);
    puts_(w, v ? "true" : "false");
}

void jw_null(jsonw *w, const char *key)
{
    member(w, key);
    puts_(w, "null");
}

void jw_json(jsonw *w, const char *key, const char *text)
{
    if (w->failed)
        return;
    cJSON *doc = cJSON_Parse(text);
    char *laid = !doc ? NULL
                 : w->pretty ? json_print_pretty_at(doc, w->depth)
                             : cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!laid) {
        w->failed = 1;
        return;
    }
    member(w, key);
    puts_(w, laid);
    free(laid);
}

char *jw_finish(jsonw *w)
{
    char *text = NULL;
    if (!w->failed && w->depth == 0 && w->data) {
        w->data[w->len++] = '\n';   /* put() kept room for both */
        w->data[w->len] = '\0';
        text = w->data;
    } else {
        free(w->data);
    }
    memset(w, 0, sizeof *w);
    return text;
}
