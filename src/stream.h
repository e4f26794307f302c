/* stream.h — an incremental parser for streamed chat completions (Server-Sent Events).
 *
 * Bytes are fed as they arrive from the transfer, cut anywhere (inside a line, a CRLF or a
 * UTF-8 sequence); the result does not depend on where.  SSE framing: lines end with \n,
 * \r\n or \r; ':' lines are comments (OpenRouter's ": OPENROUTER PROCESSING" keep-alives);
 * "data:" fields (one optional space after the colon) of one event are joined with \n and
 * an empty line dispatches the event; "event:", "id:", "retry:" and unknown fields are
 * ignored; a UTF-8 BOM before the first line and whitespace before the first byte of the
 * stream are skipped; "data: [DONE]" ends the stream (everything after it is ignored).
 * Each data event is one chat.completion.chunk, read by the same rules as a whole response
 * (openai.h).  A body that starts with '{' is not SSE but a whole JSON response (a
 * provider that ignored "stream": true, or an error object): it is kept and parsed by
 * openai_parse_response at the end.
 *
 * Pure: no I/O, no globals, no locks (one parser per transfer). */
#ifndef RF_STREAM_H
#define RF_STREAM_H

#include <stddef.h>
#include "err.h"
#include "openai.h"

typedef struct stream_parser stream_parser;

#define STREAM_MORE       0    /* nothing new for the reader (framing, metadata, keep-alive) */
#define STREAM_PROGRESS   1    /* new content, reasoning or tool-call text: "a token" */
#define STREAM_FAILED   (-1)   /* the attempt has failed; stream_error says why */

#define STREAM_MAX_DEFAULT  ((size_t)64 << 20)  /* max_bytes when 0 is given */
#define STREAM_TOOL_CALLS_MAX 128               /* tool-call indexes 0..127 */

/* A parser that accepts at most max_bytes bytes of stream (0: STREAM_MAX_DEFAULT); more
 * fails it.  NULL when out of memory.  Owned by the caller: stream_free. */
stream_parser *stream_new(size_t max_bytes);
void stream_free(stream_parser *p);

/* Feed the next len bytes (data is borrowed for the call).  Returns STREAM_PROGRESS when
 * they completed events carrying text, STREAM_MORE when not (also after [DONE], whose
 * trailing bytes are ignored), STREAM_FAILED when the stream has failed: a mid-stream error
 * chunk ({"error": ...}, {"object": "error"}), finish_reason "error", a data event that is
 * not JSON or not an object, a malformed choice / delta / tool call, invalid UTF-8 or a
 * NUL in the text, more than max_bytes, or out of memory.  Once failed, every later feed
 * returns STREAM_FAILED and changes nothing. */
int stream_feed(stream_parser *p, const char *data, size_t len);

/* Why the stream failed, one line (e.g. "malformed SSE event 10: not JSON",
 * "provider error mid-stream: 'Upstream overloaded' (code 502)"); "" while it has not. */
const char *stream_error(const stream_parser *p);

/* The data of the event that carried a provider error (error chunk or finish_reason
 * "error"), for openai_parse_error_status(0, ...): its flags and detail.  *len set; NULL
 * when the failure was not a provider error.  Borrowed: valid until stream_free. */
const char *stream_error_body(const stream_parser *p, size_t *len);

/* The content so far, for a live view: *len bytes of valid UTF-8 ending at a complete
 * character (an incomplete sequence at the end is held back).  Borrowed: valid until the
 * next feed / finish / free.  "" (0) after stream_finish moved the content out. */
const char *stream_text(const stream_parser *p, size_t *len);

/* Chunks that carried content, reasoning or tool-call text so far: an estimate of the
 * tokens received (to bill a cancelled stream). */
long stream_tokens(const stream_parser *p);

/* 1 once "data: [DONE]" was seen (the transfer may be closed). */
int stream_ended(const stream_parser *p);

/* At the end of the transfer, once.  A final event without its blank line (or its last
 * line without a line end) is dispatched first; if that event is not JSON it was cut
 * off and is dropped.  Returns:
 *   OPENAI_OK          a finish_reason other than "error", or [DONE], was seen, and there
 *                      is content or tool calls; *out filled as openai_parse_response
 *                      fills it (the content moves out of the parser; tool calls with no
 *                      content become their JSON array; usage absent: tokens -1, has_cost
 *                      0).  Free with openai_completion_free.
 *   OPENAI_TRUNCATED   neither a finish reason nor [DONE]: "stream ended without a finish
 *                      reason or [DONE]: truncated" (EIO)
 *   OPENAI_EMPTY_CONTENT  finished but no content and no tool calls (EIO)
 *   the failure's status when the stream failed (err = stream_error): OPENAI_ERROR_OBJECT
 *                      (error chunk), OPENAI_FINISH_ERROR, or OPENAI_NOT_JSON (malformed
 *                      event EIO, bad text EILSEQ, too large EFBIG, out of memory ENOMEM)
 *   a JSON body's openai_parse_response status.
 * Not OK: *out zeroed, err filled.  A second call returns OPENAI_NOT_JSON (EINVAL). */
openai_status stream_finish(stream_parser *p, openai_completion *out, rf_err *err);

#endif
