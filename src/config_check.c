/* config_check.c — config rules that are more than a type or a range.
 *
 * The parser (config_parse.c) calls the rules on single fields and on fields that depend
 * on each other: URLs that must not carry credentials (base_url, shared.redis), strings
 * sent upstream or used as key names, tier timeouts that must fit in timeout_ms, "free"
 * only where it can be true.  Then the checks that need more than the text:
 * config_check_key_files (the files api_key_file names) and config_key_warnings (the
 * environment api_key_env reads), which warns rather than fails.
 *
 * No message ever contains a URL's credentials or a key: they name the field and what is
 * wrong with it. */
#include "config_impl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REDIS_DEFAULT_HOST "127.0.0.1"
#define REDIS_DEFAULT_PORT 6379

/* ---- URLs ---- */

/* The authority of a URL: from `start` up to the first '/', '?' or '#'. */
static size_t authority_len(const char *start)
{
    return strcspn(start, "/?#");
}

static int has_space_or_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return 1;
    return 0;
}

/* http:// or https://, a host, no spaces or control characters, no user:password@. */
int cfg_check_base_url(const char *url, const char *path, rf_err *err)
{
    size_t scheme;
    if (strncasecmp(url, "http://", 7) == 0)
        scheme = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        scheme = 8;
    else
        scheme = 0;
    if (scheme == 0 || url[scheme] == '\0' || url[scheme] == '/' || has_space_or_control(url))
        return cfg_fail_at(err, path, "expected an http:// or https:// URL");
    if (memchr(url + scheme, '@', authority_len(url + scheme)))
        return cfg_fail_at(err, path, "credentials in the URL are not allowed; "
                                      "use api_key_env or api_key_file");
    return 0;
}

/* Digits only, value in [min, max]. */
static int parse_decimal(const char *s, size_t len, long min, long max, long *out)
{
    if (len == 0 || len > 10)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* redis://[HOST][:PORT][/DB] or rediss://...: HOST may be [IPv6]; no user:password@, no
 * query.  Fills tls, host (owned), port and db. */
int cfg_parse_redis_url(const char *url, const char *path, rf_shared_cfg *s, rf_err *err)
{
    static const char expected[] =
        "expected redis://[HOST][:PORT][/DB] or rediss://[HOST][:PORT][/DB]";
    size_t scheme;
    if (strncasecmp(url, "redis://", 8) == 0)
        scheme = 8, s->tls = 0;
    else if (strncasecmp(url, "rediss://", 9) == 0)
        scheme = 9, s->tls = 1;
    else
        return cfg_fail_at(err, path, "%s", expected);
    if (has_space_or_control(url))
        return cfg_fail_at(err, path, "%s", expected);
    const char *auth = url + scheme;
    size_t auth_len = authority_len(auth);
    if (memchr(auth, '@', auth_len))
        return cfg_fail_at(err, path,
                           "credentials in the URL are not allowed; use shared.password_env");
    if (strpbrk(url, "?#"))
        return cfg_fail_at(err, path, "%s", expected);

    /* host */
    const char *host = auth, *host_end, *after;
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', auth_len);
        if (!close || close == auth + 1)
            return cfg_fail_at(err, path, "%s", expected);
        host = auth + 1;
        host_end = close;
        after = close + 1;
    } else {
        host_end = auth;
        while (host_end < auth + auth_len && *host_end != ':')
            host_end++;
        if (memchr(auth, '[', (size_t)(host_end - auth)) ||
            memchr(auth, ']', (size_t)(host_end - auth)))
            return cfg_fail_at(err, path, "%s", expected);
        after = host_end;
    }

    /* port */
    long port = REDIS_DEFAULT_PORT;
    const char *auth_end = auth + auth_len;
    if (after < auth_end) {
        if (*after != ':')
            return cfg_fail_at(err, path, "%s", expected);
        if (parse_decimal(after + 1, (size_t)(auth_end - after - 1), 1, 65535, &port) < 0)
            return cfg_fail_at(err, path, "port must be from 1 to 65535");
    }

    /* database */
    long db = 0;
    if (*auth_end == '/' && auth_end[1] != '\0' &&
        parse_decimal(auth_end + 1, strlen(auth_end + 1), 0, INT_MAX, &db) < 0)
        return cfg_fail_at(err, path, "database must be a non-negative integer");

    s->port = (int)port;
    s->db = (int)db;
    s->host = host_end > host ? strndup(host, (size_t)(host_end - host))
                              : strdup(REDIS_DEFAULT_HOST);
    return s->host ? 0 : cfg_out_of_memory(err);
}

/* ---- strings and relations ---- */

int cfg_check_plain_string(const char *s, const char *path, size_t max_bytes, int no_space,
                           rf_err *err)
{
    if (cfg_has_control_chars(s))
        return cfg_fail_at(err, path, "must not contain control characters");
    if (no_space && strpbrk(s, " "))
        return cfg_fail_at(err, path, "must not contain whitespace");
    if (max_bytes && strlen(s) > max_bytes)
        return cfg_fail_at(err, path, "too long (at most %zu bytes)", max_bytes);
    return 0;
}

/* A first-token or stall timeout longer than the whole attempt can never fire: refused
 * when written that way, lowered to timeout_ms when it is the default. */
static int fit_timeout(long *value, int given, long timeout_ms, const char *path,
                       const char *key, rf_err *err)
{
    if (*value <= timeout_ms)
        return 0;
    if (given) {
        char p[PATH_LEN];
        cfg_path_key(p, path, key);
        return cfg_fail_at(err, p, "must not exceed timeout_ms (%ld)", timeout_ms);
    }
    *value = timeout_ms;
    return 0;
}

int cfg_check_tier_timeouts(rf_tier *t, const char *path, int first_token_given, int stall_given,
                            rf_err *err)
{
    if (fit_timeout(&t->first_token_timeout_ms, first_token_given, t->timeout_ms, path,
                    "first_token_timeout_ms", err) < 0 ||
        fit_timeout(&t->stall_timeout_ms, stall_given, t->timeout_ms, path, "stall_timeout_ms",
                    err) < 0)
        return -1;
    return 0;
}

/* OpenRouter bills per model, free or not: a whole OpenRouter provider is never free. */
int cfg_check_provider_free(const rf_provider *p, const char *path, rf_err *err)
{
    if (!p->is_free || p->kind != RF_KIND_OPENROUTER)
        return 0;
    char fp[PATH_LEN];
    cfg_path_key(fp, path, "free");
    return cfg_fail_at(err, fp, "not allowed on a provider of kind openrouter, which bills per "
                       "model; give its free models a zero price in \"prices\"");
}

/* ---- key files ---- */

__attribute__((format(printf, 3, 4)))
static int key_file_error(rf_err *err, const rf_provider *p, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return rf_err_set(err, EINVAL, "providers.%s.api_key_file %s: %s", p->name, p->api_key_file,
                      reason);
}

/* The file's content: one line, trailing "\n" or "\r\n" allowed, no other control
 * characters, not blank, at most KEY_LINE_MAX_BYTES. */
static int check_key_text(const rf_provider *p, const char *text, size_t len, rf_err *err)
{
    if (len > 0 && text[len - 1] == '\n') {
        len--;
        if (len > 0 && text[len - 1] == '\r')
            len--;
    }
    if (memchr(text, '\n', len))
        return key_file_error(err, p, "more than one line");
    if (len > KEY_LINE_MAX_BYTES)
        return key_file_error(err, p, "longer than 4 KiB");
    size_t blank = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == ' ' || c == '\t') {
            blank++;
            continue;
        }
        if (c < 0x20 || c == 0x7f)
            return key_file_error(err, p, "contains control characters");
    }
    if (blank == len)
        return key_file_error(err, p, "empty");
    return 0;
}

static int check_key_file(const rf_provider *p, rf_err *err)
{
    char buf[128];
    struct stat st, fst;
    if (stat(p->api_key_file, &st) < 0)
        return key_file_error(err, p, "%s", strerror_r(errno, buf, sizeof buf));
    /* stat first: opening a FIFO or a device only to look at it could block or act */
    if (!S_ISREG(st.st_mode))
        return key_file_error(err, p, "not a regular file");
    if (st.st_uid != geteuid())
        return key_file_error(err, p, "not owned by you");
    if (st.st_mode & 044)
        return key_file_error(err, p, "readable by group or others (chmod 600 it)");
    if (st.st_mode & 077)
        return key_file_error(err, p, "writable or executable by group or others (chmod 600 it)");
    if (st.st_size > KEY_LINE_MAX_BYTES + 2)
        return key_file_error(err, p, "longer than 4 KiB");

    int fd = open(p->api_key_file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return key_file_error(err, p, "%s", strerror_r(errno, buf, sizeof buf));
    if (fstat(fd, &fst) < 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
        close(fd);
        return key_file_error(err, p, "changed while it was checked");
    }
    char text[KEY_LINE_MAX_BYTES + 3];
    size_t len = 0;
    while (len < sizeof text) {
        ssize_t n = read(fd, text + len, sizeof text - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return key_file_error(err, p, "%s", strerror_r(e, buf, sizeof buf));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    int rc = len == sizeof text ? key_file_error(err, p, "longer than 4 KiB")
                                : check_key_text(p, text, len, err);
    explicit_bzero(text, sizeof text);
    return rc;
}

int config_check_key_files(const rf_config *cfg, rf_err *err)
{
    for (size_t i = 0; i < cfg->providers_len; i++)
        if (cfg->providers[i].api_key_file && check_key_file(&cfg->providers[i], err) < 0)
            return -1;
    return 0;
}

/* ---- key warnings ---- */

/* Variables that hold something else than a secret: sending one as a key is a mistake. */
static const char *const not_secret_names[] = {
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "LANG", "LANGUAGE", "TERM",
    "TZ", "HOSTNAME", "MAIL", "EDITOR", "VISUAL", "DISPLAY", "TMPDIR", NULL
};
static const char *const not_secret_prefixes[] = {"LC_", "LD_", "XDG_", NULL};
static const char *const secret_words[] = {"KEY", "TOKEN", "SECRET", "API", "AUTH", "PASS", NULL};

static int is_not_secret_name(const char *name)
{
    if (cfg_in_list(not_secret_names, name))
        return 1;
    for (const char *const *p = not_secret_prefixes; *p; p++)
        if (strncmp(name, *p, strlen(*p)) == 0)
            return 1;
    return 0;
}

static int looks_like_secret_name(const char *name)
{
    for (const char *const *w = secret_words; *w; w++)
        if (strcasestr(name, *w))
            return 1;
    return 0;
}

static int is_unset(const char *name)
{
    const char *v = getenv(name);
    return !v || v[strspn(v, " \t\r\n")] == '\0';
}

typedef struct warning_list {
    char **items;
    size_t n, cap;
} warning_list;

__attribute__((format(printf, 2, 3)))
static void warn(warning_list *w, const char *fmt, ...)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 8;
        char **items = realloc(w->items, cap * sizeof *items);
        if (!items)
            return;
        w->items = items;
        w->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *line = NULL;
    int rc = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (rc >= 0)
        w->items[w->n++] = line;
}

/* `field` names the setting ("providers.or.api_key_env"), `what` the secret ("API key"),
 * `consequence` what an unset variable means. */
static void check_secret_env(warning_list *w, const char *field, const char *name,
                             const char *what, const char *consequence)
{
    if (is_not_secret_name(name))
        warn(w, "%s: %s is not a secret variable: its value would be sent as the %s", field,
             name, what);
    else if (!looks_like_secret_name(name))
        warn(w, "%s: %s does not look like a key variable (no KEY, TOKEN, SECRET, API, AUTH "
             "or PASS in its name)", field, name);
    if (is_unset(name))
        warn(w, "%s: %s is not set: %s", field, name, consequence);
}

size_t config_key_warnings(const rf_config *cfg, char ***warnings)
{
    warning_list w = {0};
    char field_name[PATH_LEN], consequence[PATH_LEN];
    for (size_t i = 0; i < cfg->providers_len; i++) {
        const rf_provider *p = &cfg->providers[i];
        if (!p->api_key_env)
            continue;
        snprintf(field_name, sizeof field_name, "providers.%s.api_key_env", p->name);
        snprintf(consequence, sizeof consequence, "requests to %s will fail", p->name);
        check_secret_env(&w, field_name, p->api_key_env, "API key", consequence);
    }
    if (cfg->shared && cfg->shared->password_env)
        check_secret_env(&w, "shared.password_env", cfg->shared->password_env,
                         "Redis password", "Redis gets no password");
    if (w.n == 0) {
        free(w.items);
        w.items = NULL;
    }
    *warnings = w.items;
    return w.n;
}

void config_free_strings(char **list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}
