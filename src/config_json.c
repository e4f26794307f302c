/* config_json.c — the JSON layer of the config parser: the document's syntax (errors give
 * line and column), keys (unknown and duplicate ones), and typed field getters whose
 * errors name the failing path, e.g. "tiers.fast.max_tokens: expected a positive integer".
 * Also the small string and file helpers the config_*.c files share (config_impl.h). */
#include "config_impl.h"
#include "jsonfmt.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- errors and paths ---- */

/* Fail with EINVAL and "PATH: message", or just "message" when path is "" (top level). */
int cfg_fail_at(rf_err *err, const char *path, const char *fmt, ...)
{
    char msg[sizeof ((rf_err *)0)->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (path[0] == '\0')
        return rf_err_set(err, EINVAL, "%s", msg);
    return rf_err_set(err, EINVAL, "%s: %s", path, msg);
}

int cfg_out_of_memory(rf_err *err)
{
    return rf_err_set(err, ENOMEM, "out of memory");
}

/* A path cut short by PATH_LEN ends in "...". */
static void mark_if_cut(char *dst, int written)
{
    if (written < 0 || written >= PATH_LEN)
        memcpy(dst + PATH_LEN - 4, "...", 4);
}

/* dst = "parent.key" (or "key" at the top level). */
void cfg_path_key(char *dst, const char *parent, const char *key)
{
    mark_if_cut(dst, snprintf(dst, PATH_LEN, "%s%s%s", parent, parent[0] ? "." : "", key));
}

/* dst = "parent[i]". */
void cfg_path_index(char *dst, const char *parent, size_t i)
{
    mark_if_cut(dst, snprintf(dst, PATH_LEN, "%s[%zu]", parent, i));
}

/* ---- small helpers ---- */

int cfg_in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

int cfg_has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* *dst = copy of src (NULL stays NULL). */
int cfg_dup_into(char **dst, const char *src, rf_err *err)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : cfg_out_of_memory(err);
}

/* A copy of s[0..len) without leading and trailing whitespace, or NULL (out of memory). */
char *cfg_dup_trimmed(const char *s, size_t len)
{
    while (len > 0 && isspace((unsigned char)s[0])) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    return strndup(s, len);
}

int cfg_valid_env_name(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* http:// or https://, something after it, no spaces or control characters. */
/* Read a whole file of at most max bytes into a malloc'd NUL-terminated buffer.
 * Returns 0, or an errno value (EFBIG when the file is larger than max). */
int cfg_read_whole_file(const char *path, size_t max, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    char *buf = malloc(max + 2);
    if (!buf) {
        close(fd);
        return ENOMEM;
    }
    size_t len = 0;
    while (len <= max) {
        ssize_t n = read(fd, buf + len, max + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (len > max) {
        free(buf);
        return EFBIG;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

/* ---- JSON syntax ---- */

/* 1-based line and column (in characters) of byte offset `offset`. */
static void line_column(const char *text, size_t offset, size_t *line, size_t *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *column = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            (*column)++;
        }
    }
}

/* Parse exactly one JSON value filling text[0..len) (surrounding whitespace allowed).
 * The position in a syntax error is cJSON's.  cJSON gets a NUL-terminated copy one byte
 * longer, so a document cut short fails just past its end rather than on its last
 * character. */
cJSON *cfg_parse_document(const char *text, size_t len, rf_err *err)
{
    size_t line, column;
    size_t start = 0;
    while (start < len && (unsigned char)text[start] <= ' ' && text[start] != '\0')
        start++;
    if (start == len)
        return cfg_fail_at(err, "", "config is empty"), NULL;
    const char *nul = memchr(text, '\0', len);
    if (nul) {   /* cJSON would take it for whitespace */
        line_column(text, (size_t)(nul - text), &line, &column);
        return cfg_fail_at(err, "", "line %zu, column %zu: invalid JSON (NUL byte)", line, column),
               NULL;
    }

    char *copy = malloc(len + 1);
    if (!copy)
        return cfg_out_of_memory(err), NULL;
    memcpy(copy, text, len);
    copy[len] = '\0';
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 0);
    size_t offset = end ? (size_t)(end - copy) : 0;
    free(copy);
    if (doc) {
        while (offset < len && (unsigned char)text[offset] <= ' ')
            offset++;
        if (offset >= len)
            return doc;
        cJSON_Delete(doc);
    }
    line_column(text, offset < len ? offset : len, &line, &column);
    cfg_fail_at(err, "", "line %zu, column %zu: invalid JSON", line, column);
    return NULL;
}

/* ---- structure and typed fields ---- */

/* Every key of obj must be in `allowed` (NULL: any key) and appear once.  `what` names a
 * key in the duplicate message: "field", "provider", "tier", "model". */
int cfg_check_keys(const cJSON *obj, const char *path, const char *const *allowed,
                   const char *what, rf_err *err)
{
    unsigned char *repeated = json_repeated_keys(obj);
    if (!repeated)
        return cfg_out_of_memory(err);
    int rc = 0;
    size_t i = 0;
    for (const cJSON *item = obj->child; item && rc == 0; item = item->next, i++) {
        if (repeated[i])
            rc = cfg_fail_at(err, path, "duplicate %s \"%s\"", what, item->string);
        else if (allowed && !cfg_in_list(allowed, item->string))
            rc = cfg_fail_at(err, path, "unknown field \"%s\"", item->string);
    }
    free(repeated);
    return rc;
}

/* The same duplicate check through a whole subtree (objects passed through unvalidated). */
int cfg_check_no_duplicates_deep(const cJSON *item, const char *path, rf_err *err)
{
    if (cJSON_IsObject(item) && cfg_check_keys(item, path, NULL, "field", err) < 0)
        return -1;
    size_t i = 0;
    for (const cJSON *child = item->child; child; child = child->next, i++) {
        char child_path[PATH_LEN];
        if (cJSON_IsObject(item))
            cfg_path_key(child_path, path, child->string);
        else
            cfg_path_index(child_path, path, i);
        if (cfg_check_no_duplicates_deep(child, child_path, err) < 0)
            return -1;
    }
    return 0;
}

/* obj[key], with JSON null counted as absent. */
const cJSON *cfg_field(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(v) ? NULL : v;
}

/* *out = obj[key] (borrowed) or NULL when absent. */
int cfg_get_string(const cJSON *obj, const char *path, const char *key, int flags,
                   const char **out, rf_err *err)
{
    const cJSON *v = cfg_field(obj, key);
    *out = NULL;
    if (!v)
        return (flags & FIELD_REQUIRED)
               ? cfg_fail_at(err, path, "missing required field \"%s\"", key) : 0;
    char p[PATH_LEN];
    cfg_path_key(p, path, key);
    if (!cJSON_IsString(v) || ((flags & FIELD_NONEMPTY) && v->valuestring[0] == '\0'))
        return cfg_fail_at(err, p, (flags & FIELD_NONEMPTY) ? "expected a non-empty string"
                                                            : "expected a string");
    *out = v->valuestring;
    return 0;
}

/* An integral number in [min, max] (max is at most INT_MAX). */
int cfg_int_value(const cJSON *v, const char *path, long min, long max, long *out,
                  rf_err *err)
{
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (d == floor(d) && d >= (double)min && d <= (double)max) {
        *out = (long)d;
        return 0;
    }
    if (max == INT_MAX && d == floor(d) && d > (double)max)
        return cfg_fail_at(err, path, "too large (at most %d)", INT_MAX);
    if (max == INT_MAX)
        return cfg_fail_at(err, path, "expected a %s integer",
                           min > 0 ? "positive" : "non-negative");
    return cfg_fail_at(err, path, "expected an integer from %ld to %ld", min, max);
}

int cfg_get_int(const cJSON *obj, const char *path, const char *key, long min, long max,
                long dflt, long *out, rf_err *err)
{
    const cJSON *v = cfg_field(obj, key);
    *out = dflt;
    if (!v)
        return 0;
    char p[PATH_LEN];
    cfg_path_key(p, path, key);
    return cfg_int_value(v, p, min, max, out, err);
}

/* An int-typed field: get_int through a long. */
int cfg_get_int_field(const cJSON *obj, const char *path, const char *key, int min, int max,
                      int dflt, int *out, rf_err *err)
{
    long v;
    if (cfg_get_int(obj, path, key, min, max, dflt, &v, err) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* A finite number >= 0 (USD amounts, prices). */
int cfg_get_amount(const cJSON *obj, const char *path, const char *key, int flags,
                   double dflt, double *out, rf_err *err)
{
    const cJSON *v = cfg_field(obj, key);
    *out = dflt;
    if (!v)
        return (flags & FIELD_REQUIRED)
               ? cfg_fail_at(err, path, "missing required field \"%s\"", key) : 0;
    char p[PATH_LEN];
    cfg_path_key(p, path, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
        return cfg_fail_at(err, p, "expected a non-negative number");
    *out = v->valuedouble;
    return 0;
}

int cfg_get_bool(const cJSON *obj, const char *path, const char *key, int dflt, int *out,
                 rf_err *err)
{
    const cJSON *v = cfg_field(obj, key);
    *out = dflt;
    if (!v)
        return 0;
    if (!cJSON_IsBool(v)) {
        char p[PATH_LEN];
        cfg_path_key(p, path, key);
        return cfg_fail_at(err, p, "expected true or false");
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* An object-valued section/entry: must be an object, keys checked. */
int cfg_check_object(const cJSON *obj, const char *path, const char *const *allowed,
                     rf_err *err)
{
    if (!cJSON_IsObject(obj))
        return cfg_fail_at(err, path, "expected an object");
    return cfg_check_keys(obj, path, allowed, "field", err);
}

