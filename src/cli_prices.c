/* cli_prices.c — `routefs prices [--state STATE] [--config FILE] [MODEL...]`: every price
 * routefs knows and where it came from, without a mount.
 *
 * Sources, in the order they apply (prices.h, config_price_is_free): free providers
 * ("free": true: nothing they serve costs anything), the config's "prices" (an entry
 * naming a provider before a model-only one), OpenRouter's published list (kept in the state database by the mount, with its fetch time; it
 * applies to OpenRouter-kind providers), and the highest rate observed per provider.  The
 * database is only read (SQLite WAL), so this works while the state is mounted; the
 * config is only parsed (its key files are not read: no key is needed to show prices). */
#include "cli_prices.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "store.h"

#define CONFIG_MAX_BYTES (1024 * 1024)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: routefs prices [--state STATE] [--config FILE] [MODEL...]\n"
            "\n"
            "Print every price routefs knows, one line per price, and where it came from:\n"
            "  free        a provider with \"free\": true (MODEL * = every model)\n"
            "  config      \"prices\" in the config (PROVIDER * = any provider)\n"
            "  openrouter  OpenRouter's published list (GET /api/v1/models), kept in the\n"
            "              state by the mount; applies to OpenRouter-kind providers\n"
            "  observed    the highest rate a provider was seen to charge for a model\n"
            "Columns: MODEL PROVIDER SOURCE PROMPT_PER_M COMPLETION_PER_M REQUEST_USD UPDATED\n"
            "(USD per million tokens, USD per request; UPDATED is when the mount fetched or\n"
            "observed the price, ISO 8601 UTC, - for the config).  Lines are sorted by model,\n"
            "then in the order the sources apply: for a model and provider the first line\n"
            "that matches is the price a request is reserved and billed at.  With MODELs,\n"
            "only their lines; a variant (MODEL:nitro, :floor, ...) that OpenRouter does not\n"
            "list on its own shows its base model's published price, as the mount uses it.\n"
            "\n"
            "  -s, --state STATE  state directory (default: $XDG_STATE_HOME/routefs, else\n"
            "                     ~/.local/state/routefs); works while it is mounted\n"
            "  -c, --config FILE  the config (default: STATE/config.json when it exists)\n"
            "\n"
            "Exit status: 0 done, 1 an error or a MODEL with no known price, 2 usage.\n");
}

typedef struct price_line {
    char *model, *provider;  /* owned; "*" = any */
    const char *source;      /* static */
    int rank;                /* the order sources apply in */
    double prompt, completion, request;
    int64_t updated_ms;      /* 0 = none shown */
} price_line;

typedef struct lines {
    price_line *v;
    size_t n, cap;
    int oom;
} lines;

static void add(lines *ls, const char *model, const char *provider, const char *source,
                int rank, double p, double c, double r, int64_t updated_ms)
{
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 64;
        price_line *v = realloc(ls->v, cap * sizeof *v);
        if (!v) {
            ls->oom = 1;
            return;
        }
        ls->v = v;
        ls->cap = cap;
    }
    price_line *l = &ls->v[ls->n];
    *l = (price_line){strdup(model), strdup(provider && *provider ? provider : "*"), source,
                      rank, p, c, r, updated_ms};
    if (!l->model || !l->provider) {
        free(l->model);
        free(l->provider);
        ls->oom = 1;
        return;
    }
    ls->n++;
}

static int by_model(const void *a, const void *b)
{
    const price_line *x = a, *y = b;
    int c = strcmp(x->model, y->model);
    if (c == 0)
        c = x->rank - y->rank;
    if (c == 0)
        c = strcmp(x->provider, y->provider);
    return c;
}

static char *default_state_dir(void)
{
    char *out = NULL;
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg && asprintf(&out, "%s/routefs", xdg) < 0)
        out = NULL;
    else if (!(xdg && *xdg) && home && *home && asprintf(&out, "%s/.local/state/routefs", home) < 0)
        out = NULL;
    return out;
}

/* Parse the config at path (text only: key files are not needed here).  0 with *cfg,
 * 1 when the default one does not exist, -1 with a message printed. */
static int load_config(const char *path, int explicit, rf_config **cfg)
{
    *cfg = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (!explicit && errno == ENOENT)
            return 1;
        fprintf(stderr, "routefs prices: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *text = malloc(CONFIG_MAX_BYTES + 1);
    size_t n = text ? fread(text, 1, CONFIG_MAX_BYTES + 1, f) : 0;
    int bad = !text || ferror(f) || n > CONFIG_MAX_BYTES;
    fclose(f);
    rf_err err;
    rf_err_clear(&err);
    int r = 0;
    if (bad) {
        fprintf(stderr, "routefs prices: %s: %s\n", path,
                !text ? "out of memory" : n > CONFIG_MAX_BYTES ? "larger than 1 MiB"
                                                               : "read error");
        r = -1;
    } else if (config_parse(text, n, cfg, &err) < 0) {
        fprintf(stderr, "routefs prices: %s: %s\n", path, err.msg);
        r = -1;
    }
    free(text);
    return r;
}

static void add_config(lines *ls, const rf_config *cfg)
{
    for (size_t i = 0; cfg && i < cfg->prices_len; i++) {
        const rf_price *p = &cfg->prices[i];
        add(ls, p->model, p->provider, "config", p->provider ? 1 : 2, p->prompt_per_m,
            p->completion_per_m, 0, 0);
    }
}

/* Free providers: one line per wanted model (or one for every model, "*"). */
static void add_free(lines *ls, const rf_config *cfg, char **models, int nmodels)
{
    for (size_t i = 0; cfg && i < cfg->providers_len; i++) {
        if (!cfg->providers[i].is_free)
            continue;
        for (int m = 0; m < (nmodels ? nmodels : 1); m++)
            add(ls, nmodels ? models[m] : "*", cfg->providers[i].name, "free", 0, 0, 0, 0, 0);
    }
}

static const char SQL_PRICES[] =
    "SELECT model, provider, source, prompt_per_m, completion_per_m, request_usd, updated_ms"
    " FROM prices WHERE source IN ('openrouter', 'observed')";

/* The prices kept in STATE/routefs.db: 0, 1 when there is no database, -1 (printed). */
static int add_state(lines *ls, const char *state)
{
    char db_path[PATH_MAX];
    if (snprintf(db_path, sizeof db_path, "%s/%s", state, STORE_DB_NAME) >= (int)sizeof db_path) {
        fprintf(stderr, "routefs prices: %s: path too long\n", state);
        return -1;
    }
    struct stat sb;
    if (stat(db_path, &sb) < 0 && errno == ENOENT)
        return 1;
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int rc = access(db_path, R_OK) < 0 ? SQLITE_CANTOPEN
                                       : sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_prepare_v2(db, SQL_PRICES, -1, &s, NULL);
    }
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(s);
        if (rc != SQLITE_ROW)
            break;
        const char *model = (const char *)sqlite3_column_text(s, 0);
        const char *provider = (const char *)sqlite3_column_text(s, 1);
        const char *source = (const char *)sqlite3_column_text(s, 2);
        if (!model || !source)
            continue;
        int published = !strcmp(source, "openrouter");
        add(ls, model, published ? NULL : provider, published ? "openrouter" : "observed",
            published ? 3 : 4, sqlite3_column_double(s, 3), sqlite3_column_double(s, 4),
            sqlite3_column_double(s, 5), sqlite3_column_int64(s, 6));
    }
    int r = 0;
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "routefs prices: %s: %s\n", db_path,
                db ? sqlite3_errmsg(db) : strerror(errno ? errno : EACCES));
        r = -1;
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return r;
}

/* A variant asked for by name ("m:nitro", ":floor", ...) with no published line of its
 * own: its base model's published price, as the mount applies it (prices_lookup). */
static void add_variants(lines *ls, char **models, int nmodels)
{
    for (int m = 0; m < nmodels; m++) {
        const char *colon = strrchr(models[m], ':');
        if (!colon || colon == models[m])
            continue;
        size_t base_len = (size_t)(colon - models[m]);
        int own = 0;
        const price_line *base = NULL;
        for (size_t i = 0; i < ls->n; i++) {
            const price_line *l = &ls->v[i];
            if (strcmp(l->source, "openrouter") != 0)
                continue;
            if (!strcmp(l->model, models[m]))
                own = 1;
            else if (strlen(l->model) == base_len && !strncmp(l->model, models[m], base_len))
                base = l;
        }
        if (!own && base) {
            price_line b = *base;   /* add may move the array */
            add(ls, models[m], NULL, "openrouter", b.rank, b.prompt, b.completion, b.request,
                b.updated_ms);
        }
    }
}

static int wanted(const char *model, char **models, int nmodels)
{
    for (int i = 0; i < nmodels; i++)
        if (!strcmp(models[i], model))
            return 1;
    return nmodels == 0;
}

static void number(char *buf, size_t len, double v)
{
    snprintf(buf, len, "%.10g", v);
}

/* Print the lines in columns; returns 0, or -1 when stdout failed. */
static int print_lines(const lines *ls)
{
    static const char *const head[] = {"MODEL", "PROVIDER", "SOURCE", "PROMPT_PER_M",
                                       "COMPLETION_PER_M", "REQUEST_USD", "UPDATED"};
    enum { NCOL = 7 };
    size_t width[NCOL];
    for (int c = 0; c < NCOL; c++)
        width[c] = strlen(head[c]);
    char (*cells)[NCOL][64] = calloc(ls->n ? ls->n : 1, sizeof *cells);
    if (!cells)
        return -1;
    for (size_t i = 0; i < ls->n; i++) {
        const price_line *l = &ls->v[i];
        snprintf(cells[i][2], 64, "%s", l->source);
        number(cells[i][3], 64, l->prompt);
        number(cells[i][4], 64, l->completion);
        number(cells[i][5], 64, l->request);
        if (l->updated_ms > 0)
            format_time_ms(l->updated_ms, cells[i][6], 64);
        else
            snprintf(cells[i][6], 64, "-");
        size_t w[NCOL] = {strlen(l->model), strlen(l->provider)};
        for (int c = 2; c < NCOL; c++)
            w[c] = strlen(cells[i][c]);
        for (int c = 0; c < NCOL; c++)
            if (w[c] > width[c])
                width[c] = w[c];
    }
    for (int c = 0; c < NCOL; c++)
        printf("%-*s%s", c == NCOL - 1 ? 0 : (int)width[c], head[c], c == NCOL - 1 ? "\n" : "  ");
    for (size_t i = 0; i < ls->n; i++) {
        const char *col[NCOL] = {ls->v[i].model, ls->v[i].provider};
        for (int c = 2; c < NCOL; c++)
            col[c] = cells[i][c];
        for (int c = 0; c < NCOL; c++)
            printf("%-*s%s", c == NCOL - 1 ? 0 : (int)width[c], col[c],
                   c == NCOL - 1 ? "\n" : "  ");
    }
    free(cells);
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : -1;
}

int prices_main(int argc, char **argv)
{
    const char *state = NULL, *config_path = NULL;
    char **models = calloc((size_t)argc + 1, sizeof *models);
    int nmodels = 0, options_done = 0;
    if (!models) {
        fprintf(stderr, "routefs prices: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            usage(stdout);
            free(models);
            return 0;
        }
        if (!options_done && !strcmp(a, "--")) {
            options_done = 1;
        } else if (!options_done && (!strcmp(a, "-s") || !strcmp(a, "--state") ||
                                     !strcmp(a, "-c") || !strcmp(a, "--config"))) {
            if (i + 1 >= argc) {
                usage(stderr);
                free(models);
                return 2;
            }
            *(a[1] == 's' || !strcmp(a, "--state") ? &state : &config_path) = argv[++i];
        } else if (!options_done && a[0] == '-' && a[1]) {
            fprintf(stderr, "routefs prices: unknown option %s\n", a);
            usage(stderr);
            free(models);
            return 2;
        } else {
            models[nmodels++] = argv[i];
        }
    }
    char *state_owned = state ? NULL : default_state_dir();
    if (!state)
        state = state_owned;
    int status = 0;
    rf_config *cfg = NULL;
    lines ls = {0};
    char cfg_default[PATH_MAX];
    if (!state) {
        fprintf(stderr, "routefs prices: no state directory: pass --state STATE or set HOME\n");
        status = 1;
        goto out;
    }
    if (!config_path &&
        snprintf(cfg_default, sizeof cfg_default, "%s/config.json", state) >= (int)sizeof cfg_default) {
        fprintf(stderr, "routefs prices: %s: path too long\n", state);
        status = 1;
        goto out;
    }
    int have_cfg = load_config(config_path ? config_path : cfg_default, config_path != NULL, &cfg);
    int have_db = have_cfg < 0 ? -1 : add_state(&ls, state);
    if (have_cfg < 0 || have_db < 0) {
        status = 1;
        goto out;
    }
    if (have_cfg == 1 && have_db == 1) {
        fprintf(stderr, "routefs prices: nothing known: no %s/%s and no %s\n", state,
                STORE_DB_NAME, cfg_default);
        status = 1;
        goto out;
    }
    add_config(&ls, cfg);
    add_free(&ls, cfg, models, nmodels);
    add_variants(&ls, models, nmodels);
    if (ls.oom) {
        fprintf(stderr, "routefs prices: out of memory\n");
        status = 1;
        goto out;
    }
    size_t kept = 0;
    for (size_t i = 0; i < ls.n; i++) {
        if (wanted(ls.v[i].model, models, nmodels))
            ls.v[kept++] = ls.v[i];
        else {
            free(ls.v[i].model);
            free(ls.v[i].provider);
        }
    }
    ls.n = kept;
    qsort(ls.v, ls.n, sizeof *ls.v, by_model);
    for (int m = 0; m < nmodels; m++) {
        int found = 0;
        for (size_t i = 0; i < ls.n && !found; i++)
            found = !strcmp(ls.v[i].model, models[m]);
        if (!found) {
            fprintf(stderr, "routefs prices: %s: no price known\n", models[m]);
            status = 1;
        }
    }
    if (print_lines(&ls) < 0) {
        fprintf(stderr, "routefs prices: cannot write the list: %s\n", strerror(errno));
        status = 1;
    }
out:
    for (size_t i = 0; i < ls.n; i++) {
        free(ls.v[i].model);
        free(ls.v[i].provider);
    }
    free(ls.v);
    config_unref(cfg);
    free(state_owned);
    free(models);
    return status;
}
