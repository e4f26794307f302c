/* openrouter_http.c — the openrouter thread's blocking GETs (openrouter_int.h).
 *
 * One libcurl easy handle, reused so the connection to OpenRouter stays open between
 * fetches.  These requests are rare and never on a FUSE or upstream thread, so a blocking
 * curl_easy_perform is the simple and right tool here; the progress callback lets or_stop
 * abort a transfer within a second. */
#include "openrouter_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"

struct or_http {
    CURL *easy;
};

typedef struct sink {
    char *buf;
    size_t len, cap, max;
    int too_large;
} sink;

typedef struct progress {
    const int *stop;
} progress;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    sink *s = ud;
    size_t add = size * n;
    if (s->len + add > s->max) {
        s->too_large = 1;
        return 0;   /* aborts the transfer */
    }
    if (s->len + add + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 16384;
        while (cap < s->len + add + 1)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb)
            return 0;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, add);
    s->len += add;
    s->buf[s->len] = '\0';
    return add;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const progress *p = ud;
    return p->stop && __atomic_load_n(p->stop, __ATOMIC_ACQUIRE) ? 1 : 0;
}

or_http *or_http_new(void)
{
    or_http *h = calloc(1, sizeof *h);
    if (h && !(h->easy = curl_easy_init())) {
        free(h);
        return NULL;
    }
    return h;
}

void or_http_free(or_http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->easy);
    free(h);
}

/* The Authorization header, in a list of its own; the copy is wiped by free_headers. */
static struct curl_slist *auth_headers(const char *key)
{
    struct curl_slist *list = curl_slist_append(NULL, "Accept: application/json");
    if (!list || !key || !*key)
        return list;
    for (const char *c = key; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)   /* would split the header */
            return list;
    size_t n = strlen("Authorization: Bearer ") + strlen(key) + 1;
    char *line = malloc(n);
    if (!line)
        return list;
    snprintf(line, n, "Authorization: Bearer %s", key);
    struct curl_slist *l = curl_slist_append(list, line);
    explicit_bzero(line, n);
    free(line);
    return l ? l : list;
}

static void free_headers(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l; l = l->next)
        explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(list);
}

int or_http_get(or_http *h, const char *url, const char *key, long timeout_ms,
                size_t max_body, const int *stop, or_http_result *res)
{
    memset(res, 0, sizeof *res);
    sink s = {.max = max_body};
    progress pr = {stop};
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = auth_headers(key);
    CURL *e = h->easy;
    curl_easy_reset(e);   /* keeps the open connection, drops every option */
    CURLcode rc = CURLE_OK;
#define OPT(o, v) (rc == CURLE_OK ? (rc = curl_easy_setopt(e, o, v)) : rc)
    OPT(CURLOPT_URL, url);
    OPT(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    OPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    OPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    OPT(CURLOPT_FOLLOWLOCATION, 0L);
    OPT(CURLOPT_ACCEPT_ENCODING, "");   /* the models list is large; gzip is welcome */
    OPT(CURLOPT_TIMEOUT_MS, timeout_ms);
    OPT(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    OPT(CURLOPT_USERAGENT, "routefs");
    OPT(CURLOPT_HTTPHEADER, headers);
    OPT(CURLOPT_WRITEFUNCTION, on_body);
    OPT(CURLOPT_WRITEDATA, (void *)&s);
    OPT(CURLOPT_NOPROGRESS, 0L);
    OPT(CURLOPT_XFERINFOFUNCTION, on_progress);
    OPT(CURLOPT_XFERINFODATA, (void *)&pr);
    OPT(CURLOPT_ERRORBUFFER, errbuf);
    OPT(CURLOPT_HTTPGET, 1L);
#undef OPT
    if (rc == CURLE_OK)
        rc = curl_easy_perform(e);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, (char *)NULL);
    free_headers(headers);
    if (rc != CURLE_OK) {
        if (s.too_large)
            snprintf(res->error, sizeof res->error, "the answer is larger than %zu bytes",
                     max_body);
        else if (rc == CURLE_ABORTED_BY_CALLBACK)
            snprintf(res->error, sizeof res->error, "stopped");
        else
            snprintf(res->error, sizeof res->error, "%s",
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        res->error[strcspn(res->error, "\r\n")] = '\0';
        free(s.buf);
        return -1;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &res->status);
    if (s.buf) {
        s.len = redact_inplace(s.buf, s.len);
        s.buf[s.len] = '\0';
    }
    res->body = s.buf;
    res->len = s.len;
    return 0;
}
