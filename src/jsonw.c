/* jsonw.c — see jsonw.h. */
#include "jsonw.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonfmt.h"
#include "strbuf.h"

enum { LEVEL_HAS_MEMBERS = 1, LEVEL_ARRAY = 2 };   /* jsonw.level[] bits */

/* A misuse (unbalanced, too deep) or text that does not parse: no document. */
static void fail(jsonw *w)
{
    w->out.failed = 1;
}

static void indent(jsonw *w, int depth)
{
    static const char spaces[2 * JW_MAX_DEPTH] = "                                ";
    sb_putn(&w->out, spaces, 2 * (size_t)depth);   /* depth <= JW_MAX_DEPTH (jw_open) */
}

/* A JSON string as cJSON escapes it: quote, backslash and control bytes; the rest (UTF-8
 * included) as it is. */
static void quoted(jsonw *w, const char *s)
{
    sb_putn(&w->out, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sb_putn(&w->out, run, (size_t)(s - run));
        run = s + 1;
        char esc[8];
        switch (c) {
        case '"': sb_put(&w->out, "\\\""); break;
        case '\\': sb_put(&w->out, "\\\\"); break;
        case '\b': sb_put(&w->out, "\\b"); break;
        case '\f': sb_put(&w->out, "\\f"); break;
        case '\n': sb_put(&w->out, "\\n"); break;
        case '\r': sb_put(&w->out, "\\r"); break;
        case '\t': sb_put(&w->out, "\\t"); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(&w->out, esc);
        }
    }
    sb_putn(&w->out, run, (size_t)(s - run));
    sb_putn(&w->out, "\"", 1);
}

/* What comes before a value: the separator from the previous member, the line break and
 * indent (pretty), and the key. */
static void member(jsonw *w, const char *key)
{
    if (w->out.failed || w->depth == 0)
        return;
    unsigned char *level = &w->level[w->depth - 1];
    if (*level & LEVEL_HAS_MEMBERS)
        sb_putn(&w->out, ",", 1);
    else
        *level |= LEVEL_HAS_MEMBERS;
    if (w->pretty) {
        sb_putn(&w->out, "\n", 1);
        indent(w, w->depth);
    }
    if (key) {
        quoted(w, key);
        sb_put(&w->out, w->pretty ? ": " : ":");
    }
}

void jw_init(jsonw *w, int pretty)
{
    memset(w, 0, sizeof *w);
    w->pretty = pretty;
    sb_reserve(&w->out, 1024);   /* a meta is about 1 KiB: one allocation */
}

void jw_open(jsonw *w, const char *key, char bracket)
{
    member(w, key);
    sb_putn(&w->out, bracket == '[' ? "[" : "{", 1);
    if (w->depth >= JW_MAX_DEPTH)
        fail(w);   /* deeper than any document routefs writes */
    else
        w->level[w->depth++] = bracket == '[' ? LEVEL_ARRAY : 0;
}

void jw_close(jsonw *w)
{
    if (w->out.failed || w->depth == 0) {
        fail(w);
        return;
    }
    unsigned char level = w->level[--w->depth];
    int had = (level & LEVEL_HAS_MEMBERS) != 0;
    int array = (level & LEVEL_ARRAY) != 0;
    if (had && w->pretty) {
        sb_putn(&w->out, "\n", 1);
        indent(w, w->depth);
    }
    sb_putn(&w->out, array ? "]" : "}", 1);
}

void jw_str(jsonw *w, const char *key, const char *s)
{
    member(w, key);
    if (s)
        quoted(w, s);
    else
        sb_put(&w->out, "null");
}

void jw_int(jsonw *w, const char *key, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    member(w, key);
    sb_put(&w->out, buf);
}

/* Printed by cJSON itself, so a cost reads exactly as a cJSON tree would print it
 * (integers in int's range as such, else %1.15g unless that does not read back). */
void jw_num(jsonw *w, const char *key, double v)
{
    char buf[64];
    cJSON n = {.type = cJSON_Number};
    cJSON_SetNumberHelper(&n, v);
    if (!cJSON_PrintPreallocated(&n, buf, (int)sizeof buf - 5, 0)) {   /* 5: cJSON's margin */
        fail(w);
        return;
    }
    member(w, key);
    sb_put(&w->out, buf);
}

void jw_bool(jsonw *w, const char *key, int v)
{
    member(w, key);
    sb_put(&w->out, v ? "true" : "false");
}

void jw_null(jsonw *w, const char *key)
{
    member(w, key);
    sb_put(&w->out, "null");
}

void jw_json(jsonw *w, const char *key, const char *text)
{
    if (w->out.failed)
        return;
    cJSON *doc = cJSON_Parse(text);
    if (!doc) {
        fail(w);
        return;
    }
    member(w, key);
    if (w->pretty) {
        json_put_pretty(&w->out, doc, w->depth);
    } else {
        char *line = cJSON_PrintUnformatted(doc);
        if (line)
            sb_put(&w->out, line);
        else
            fail(w);
        free(line);
    }
    cJSON_Delete(doc);
}

char *jw_finish(jsonw *w, int newline)
{
    if (w->depth != 0 || w->out.len == 0)
        fail(w);   /* left open, or nothing written */
    if (newline)
        sb_putn(&w->out, "\n", 1);
    char *text = sb_take(&w->out, NULL);
    memset(w, 0, sizeof *w);
    return text;
}
