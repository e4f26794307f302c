/* jsonw.h — writing one JSON document straight into text, member by member, laid out as
 * jsonfmt.h prints (jq's layout) or compact (one line, as cJSON_PrintUnformatted), with
 * no cJSON tree in between.
 *
 * For documents written on every job (NAME.meta, its activity.jsonl line, its events
 * line), where building a tree of dozens of nodes and printing it was about a sixth of
 * the upstream thread's samples in bench-scale.  The text is the same as json_print_line gives for the same
 * document as long as its arrays hold objects or arrays (jsonfmt puts short arrays of
 * scalars on one line; this writer has no scalar array members).
 *
 * Errors: out of memory marks the writer failed; every later call is a no-op and
 * jw_finish gives NULL.  Nothing else can fail, except jw_json with text that does not
 * parse (the same). */
#ifndef RF_JSONW_H
#define RF_JSONW_H

#include <stddef.h>

#include "strbuf.h"

#define JW_MAX_DEPTH 16

typedef struct jsonw {
    strbuf out;                  /* the text so far; out.failed: no document */
    int pretty, depth;
    unsigned char level[JW_MAX_DEPTH];   /* each open level: array?  members yet? */
} jsonw;

/* A writer for one document; pretty: jq's layout, else one line. */
void jw_init(jsonw *w, int pretty);
/* Open an object ('{') or array ('['): the document itself (key NULL, first), a member
 * of the object being written (key), or an element of the array (key NULL). */
void jw_open(jsonw *w, const char *key, char bracket);
void jw_close(jsonw *w);
/* Scalar members (key NULL inside an array is not supported: see the top). */
void jw_str(jsonw *w, const char *key, const char *s);   /* s NULL: null */
void jw_int(jsonw *w, const char *key, long long v);
void jw_num(jsonw *w, const char *key, double v);         /* printed by cJSON */
void jw_bool(jsonw *w, const char *key, int v);
void jw_null(jsonw *w, const char *key);
/* A member whose value is the JSON in text, laid out like the rest. */
void jw_json(jsonw *w, const char *key, const char *text);
/* The text, ending in '\n' when newline is set (malloc'd, the caller frees it), or NULL
 * when out of memory, when the document was left open or nothing was written.  The
 * writer is empty afterwards. */
char *jw_finish(jsonw *w, int newline);

#endif
