/* jsonfmt.c — see jsonfmt.h. */
#include "jsonfmt.h"

#include <stdlib.h>
#include <string.h>

typedef struct pretty_buf {
    char *data;
    size_t len, cap;
    int failed;
} pretty_buf;

static void pretty_put(pretty_buf *pb, const char *s, size_t n)
{
    if (pb->failed)
        return;
    if (pb->len + n + 1 > pb->cap) {
        size_t cap = (pb->cap + n + 1) * 2;
        char *d = realloc(pb->data, cap);
        if (!d) {
            pb->failed = 1;
            return;
        }
        pb->data = d;
        pb->cap = cap;
    }
    memcpy(pb->data + pb->len, s, n);
    pb->len += n;
    pb->data[pb->len] = '\0';
}

static void pretty_str(pretty_buf *pb, const char *s)
{
    pretty_put(pb, s, strlen(s));
}

static void pretty_indent(pretty_buf *pb, int depth)
{
    for (int i = 0; i < depth; i++)
        pretty_put(pb, "  ", 2);
}

static void pretty_scalar(pretty_buf *pb, const cJSON *item)
{
    /* Most scalars are short: printed on the stack, not through an allocation each
     * (with the 5 spare bytes cJSON's manual asks for). */
    char small[256];
    if (cJSON_PrintPreallocated((cJSON *)item, small, (int)sizeof small - 5, 0)) {
        pretty_str(pb, small);
        return;
    }
    char *text = cJSON_PrintUnformatted(item);
    if (!text) {
        pb->failed = 1;
        return;
    }
    pretty_str(pb, text);
    free(text);
}

static int is_short_scalar_array(const cJSON *arr)
{
    size_t width = 0;
    const cJSON *el;
    cJSON_ArrayForEach(el, arr) {
        if (cJSON_IsObject(el) || cJSON_IsArray(el))
            return 0;
        width += (cJSON_IsString(el) ? strlen(el->valuestring) : 8) + 4;
    }
    return width <= 72;
}

static void pretty_value(pretty_buf *pb, const cJSON *item, int depth)
{
    const cJSON *el;
    if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
        int obj = cJSON_IsObject(item);
        if (!item->child) {
            pretty_str(pb, obj ? "{}" : "[]");
            return;
        }
        if (!obj && is_short_scalar_array(item)) {
            pretty_str(pb, "[");
            cJSON_ArrayForEach(el, item) {
                pretty_scalar(pb, el);
                if (el->next)
                    pretty_str(pb, ", ");
            }
            pretty_str(pb, "]");
            return;
        }
        pretty_str(pb, obj ? "{\n" : "[\n");
        cJSON_ArrayForEach(el, item) {
            pretty_indent(pb, depth + 1);
            if (obj) {
                cJSON key = {.type = cJSON_String, .valuestring = el->string};
                pretty_scalar(pb, &key);
                pretty_str(pb, ": ");
            }
            pretty_value(pb, el, depth + 1);
            pretty_str(pb, el->next ? ",\n" : "\n");
        }
        pretty_indent(pb, depth);
        pretty_str(pb, obj ? "}" : "]");
        return;
    }
    pretty_scalar(pb, item);
}

char *json_print_pretty(const cJSON *doc)
{
    return json_print_pretty_at(doc, 0);
}

char *json_print_pretty_at(const cJSON *doc, int depth)
{
    pretty_buf pb = {0};
    pretty_value(&pb, doc, depth);
    if (pb.failed) {
        free(pb.data);
        return NULL;
    }
    return pb.data;
}


typedef struct key_pos {
    const char *key;
    size_t pos;
} key_pos;

static int by_key_then_pos(const void *a, const void *b)
{
    const key_pos *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

unsigned char *json_repeated_keys(const cJSON *obj)
{
    size_t n = (size_t)cJSON_GetArraySize(obj);
    key_pos *keys = malloc((n ? n : 1) * sizeof *keys);
    unsigned char *repeated = calloc(n ? n : 1, 1);
    if (!keys || !repeated) {
        free(keys);
        free(repeated);
        return NULL;
    }
    size_t i = 0;
    for (const cJSON *item = obj->child; item && i < n; item = item->next, i++)
        keys[i] = (key_pos){item->string ? item->string : "", i};
    qsort(keys, i, sizeof *keys, by_key_then_pos);
    for (size_t j = 1; j < i; j++)
        if (strcmp(keys[j].key, keys[j - 1].key) == 0)
            repeated[keys[j].pos] = 1;
    free(keys);
    return repeated;
}

char *json_print_line(const cJSON *doc, int pretty)
{
    char *text = pretty ? json_print_pretty(doc) : cJSON_PrintUnformatted(doc);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *out = realloc(text, n + 2);
    if (!out) {
        free(text);
        return NULL;
    }
    out[n] = '\n';
    out[n + 1] = '\0';
    return out;
}

int json_parses(const char *text)
{
    cJSON *doc = cJSON_Parse(text);
    cJSON_Delete(doc);
    return doc != NULL;
}
