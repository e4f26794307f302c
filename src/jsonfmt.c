/* jsonfmt.c — see jsonfmt.h. */
#include "jsonfmt.h"

#include <stdlib.h>
#include <string.h>

static void pretty_indent(strbuf *pb, int depth)
{
    for (int i = 0; i < depth; i++)
        sb_putn(pb, "  ", 2);
}

static void pretty_scalar(strbuf *pb, const cJSON *item)
{
    /* Most scalars are short: printed on the stack, not through an allocation each
     * (with the 5 spare bytes cJSON's manual asks for). */
    char small[256];
    if (cJSON_PrintPreallocated((cJSON *)item, small, (int)sizeof small - 5, 0)) {
        sb_put(pb, small);
        return;
    }
    char *text = cJSON_PrintUnformatted(item);
    if (!text) {
        pb->failed = 1;
        return;
    }
    sb_put(pb, text);
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

void json_put_pretty(strbuf *pb, const cJSON *item, int depth)
{
    const cJSON *el;
    if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
        int obj = cJSON_IsObject(item);
        if (!item->child) {
            sb_put(pb, obj ? "{}" : "[]");
            return;
        }
        if (!obj && is_short_scalar_array(item)) {
            sb_put(pb, "[");
            cJSON_ArrayForEach(el, item) {
                pretty_scalar(pb, el);
                if (el->next)
                    sb_put(pb, ", ");
            }
            sb_put(pb, "]");
            return;
        }
        sb_put(pb, obj ? "{\n" : "[\n");
        cJSON_ArrayForEach(el, item) {
            pretty_indent(pb, depth + 1);
            if (obj) {
                cJSON key = {.type = cJSON_String, .valuestring = el->string};
                pretty_scalar(pb, &key);
                sb_put(pb, ": ");
            }
            json_put_pretty(pb, el, depth + 1);
            sb_put(pb, el->next ? ",\n" : "\n");
        }
        pretty_indent(pb, depth);
        sb_put(pb, obj ? "}" : "]");
        return;
    }
    pretty_scalar(pb, item);
}

char *json_print_pretty(const cJSON *doc)
{
    strbuf b = {0};
    json_put_pretty(&b, doc, 0);
    return sb_take(&b, NULL);
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
    strbuf b = {0};
    if (pretty) {
        json_put_pretty(&b, doc, 0);
    } else {
        char *line = cJSON_PrintUnformatted(doc);
        if (!line)
            return NULL;
        sb_put(&b, line);
        free(line);
    }
    sb_put(&b, "\n");
    return sb_take(&b, NULL);
}

int json_parses(const char *text)
{
    cJSON *doc = cJSON_Parse(text);
    cJSON_Delete(doc);
    return doc != NULL;
}
