/* wait_scan.c — what `routefs wait` waits for: the command-line paths (targets), the
 * jobs found under them, and each job's state (see wait.c for the rules).  A walk of
 * every target is one wscan_scan; it also notices a mount that went away. */
#include "names.h"
#include "wait_impl.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "hmap.h"

#define EMPTY_GRACE_MS     1000      /* an empty prompt older than this is no job */
#define META_MAX           (1 << 20) /* a .meta larger than this is not ours */
#define FUSE_SUPER_MAGIC   0x65735546

struct wtarget {
    char *path;          /* absolute, symlinks resolved; owned */
    char *given;         /* the same place as the command line spelled it; owned */
    char *root;          /* the mount root it is under; owned */
    dev_t dev;           /* the mount's device: a change means it was unmounted */
    int depth;           /* components below the root: 0 root, 1 tier, 2+ tag or prompt */
    int is_dir;
};
typedef struct wtarget target;

static struct {
    target *targets;
    size_t ntargets;
    hmap *by_path;       /* absolute prompt path -> wjob */
    wjob **jobs;         /* in order of discovery */
    size_t njobs, cap;
    unsigned gen;
    int fatal;           /* set by a walk: the mount is gone */
    int fatal_status;    /* the exit status that goes with it */
    void (*on_done)(const char *path);   /* --each */
    char fatal_msg[PATH_MAX + 128];
} W;

/* ---- small helpers ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ".out", ".meta" or ".err" when name is a result file, else NULL. */
static const char *result_suffix(const char *name)
{
    int r = name_result_kind(name);
    return r >= 0 ? name_result_suffix[r] : NULL;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void set_fatal(const char *path, int err)
{
    if (W.fatal)
        return;
    W.fatal = 1;
    W.fatal_status = EXIT_GONE;
    snprintf(W.fatal_msg, sizeof W.fatal_msg, "%s: %s (did the routefs daemon stop?)", path,
             strerror(err));
}

/* Read a small file whole, NUL-terminated.  0, or -errno. */
static int read_small(const char *path, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= META_MAX) {
                free(buf);
                close(fd);
                return -EFBIG;
            }
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                close(fd);
                return -ENOMEM;
            }
            buf = p;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (close(fd) != 0) {
        int e = errno;
        free(buf);
        return -e;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* ---- targets: the paths on the command line ---- */

/* The root of the mount path is on: climb while the parent is on the same device.
 * Then make sure it is a routefs mount (a FUSE file system with spend.json at the root). */
static int find_mount_root(const char *abs, char **root, dev_t *dev, const char *arg)
{
    struct stat st;
    if (stat(abs, &st) != 0) {
        fprintf(stderr, "routefs wait: %s: %s\n", arg, strerror(errno));
        return -1;
    }
    char cur[PATH_MAX];
    if (snprintf(cur, sizeof cur, "%s", abs) >= (int)sizeof cur) {
        fprintf(stderr, "routefs wait: %s: %s\n", arg, strerror(ENAMETOOLONG));
        return -1;
    }
    while (strcmp(cur, "/") != 0) {
        char parent[PATH_MAX];
        memcpy(parent, cur, strlen(cur) + 1);
        char *slash = strrchr(parent, '/');
        if (slash == parent)
            slash[1] = '\0';
        else
            *slash = '\0';
        struct stat ps;
        if (stat(parent, &ps) != 0) {
            fprintf(stderr, "routefs wait: %s: %s\n", parent, strerror(errno));
            return -1;
        }
        if (ps.st_dev != st.st_dev)
            break;
        memcpy(cur, parent, strlen(parent) + 1);
    }
    struct statfs sf;
    char probe[PATH_MAX + 16];
    struct stat ps;
    snprintf(probe, sizeof probe, "%s/spend.json", strcmp(cur, "/") ? cur : "");
    if (statfs(cur, &sf) != 0 || sf.f_type != FUSE_SUPER_MAGIC || stat(probe, &ps) != 0) {
        fprintf(stderr, "routefs wait: %s: not inside a routefs mount\n", arg);
        return -1;
    }
    if (!(*root = strdup(cur))) {
        fprintf(stderr, "routefs wait: out of memory\n");
        return -1;
    }
    *dev = st.st_dev;
    return 0;
}

static int path_depth(const char *abs, const char *root)
{
    size_t rl = strlen(root);
    const char *p = abs + (rl == 1 ? 0 : rl);   /* "/x/y" under "/": from the start */
    int depth = 0;
    for (; *p; p++)
        if (*p == '/' && p[1] && p[1] != '/')
            depth++;
    return depth;
}

static void free_targets(void)
{
    for (size_t i = 0; i < W.ntargets; i++) {
        free(W.targets[i].path);
        free(W.targets[i].given);
        free(W.targets[i].root);
    }
    free(W.targets);
    W.targets = NULL;
    W.ntargets = 0;
}

/* The command-line spelling of the place abs names, for --each: arg without trailing
 * slashes, and without the result suffix when abs dropped one (NAME.out stands for NAME).
 * malloc'd; NULL when out of memory. */
static char *given_spelling(const char *arg, const char *abs)
{
    char *g = strdup(arg);
    if (!g)
        return NULL;
    for (size_t n = strlen(g); n > 1 && g[n - 1] == '/'; n--)
        g[n - 1] = '\0';
    const char *suffix = result_suffix(base_name(g));
    if (suffix && !result_suffix(base_name(abs)))
        g[strlen(g) - strlen(suffix)] = '\0';
    return g;
}

/* Resolve one command-line path into a target.  0 added, 1 skipped, -1 usage error. */
int wscan_add_target(const char *arg)
{
    char *abs = realpath(arg, NULL);
    if (!abs) {
        fprintf(stderr, "routefs wait: %s: %s\n", arg, strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(abs, &st) != 0) {
        fprintf(stderr, "routefs wait: %s: %s\n", arg, strerror(errno));
        free(abs);
        return -1;
    }
    if (S_ISREG(st.st_mode)) {
        const char *suffix = result_suffix(base_name(abs));
        if (suffix) {
            /* NAME.out / .meta / .err: wait for NAME */
            abs[strlen(abs) - strlen(suffix)] = '\0';
            if (lstat(abs, &st) != 0 || !S_ISREG(st.st_mode)) {
                fprintf(stderr, "routefs wait: %s: its prompt %s is gone\n", arg, abs);
                free(abs);
                return -1;
            }
        } else if (name_is_temp(base_name(abs))) {
            fprintf(stderr, "routefs wait: %s: skipped: a temporary name never starts a job\n",
                    arg);
            free(abs);
            return 1;
        }
    } else if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "routefs wait: %s: not a prompt file or a directory\n", arg);
        free(abs);
        return -1;
    }
    target t = {.path = abs, .is_dir = S_ISDIR(st.st_mode)};
    if (!(t.given = given_spelling(arg, abs))) {
        fprintf(stderr, "routefs wait: out of memory\n");
        free(abs);
        return -1;
    }
    if (find_mount_root(abs, &t.root, &t.dev, arg) < 0) {
        free(abs);
        free(t.given);
        return -1;
    }
    t.depth = path_depth(abs, t.root);
    if (!t.is_dir && t.depth < 2) {
        fprintf(stderr, "routefs wait: %s: not a prompt: files at the mount root are not jobs\n",
                arg);
        free(t.path);
        free(t.given);
        free(t.root);
        return -1;
    }
    target *p = realloc(W.targets, (W.ntargets + 1) * sizeof *W.targets);
    if (!p) {
        fprintf(stderr, "routefs wait: out of memory\n");
        free(t.path);
        free(t.given);
        free(t.root);
        return -1;
    }
    W.targets = p;
    W.targets[W.ntargets++] = t;
    return 0;
}

/* ---- jobs ---- */

static wjob *job_get(const char *path, const target *t)
{
    wjob *j = hmap_get(W.by_path, path);
    if (j)
        return j;
    if (W.njobs == W.cap) {
        size_t cap = W.cap ? W.cap * 2 : 64;
        wjob **p = realloc(W.jobs, cap * sizeof *p);
        if (!p)
            return NULL;
        W.jobs = p;
        W.cap = cap;
    }
    if (!(j = calloc(1, sizeof *j)))
        return NULL;
    if (!(j->path = strdup(path))) {
        free(j);
        return NULL;
    }
    size_t rl = strlen(t->root);
    j->shown = j->path + (rl == 1 ? 1 : rl + 1);
    j->state = J_PENDING;
    j->found_by = t;
    if (hmap_put(W.by_path, path, j) < 0) {
        free(j->path);
        free(j);
        return NULL;
    }
    W.jobs[W.njobs++] = j;
    return j;
}

static void job_set_error(wjob *j, const char *msg)
{
    free(j->error);
    j->error = msg ? strdup(msg) : NULL;
    if (j->error) {
        char *nl = strchr(j->error, '\n');
        if (nl)
            *nl = '\0';
    }
}

/* A failed job's reason when its .meta has none: the first line of NAME.err. */
static void job_error_from_err_file(wjob *j)
{
    char path[PATH_MAX + 8];
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s.err", j->path);
    if (read_small(path, &text, &len) == 0 && len > 0)
        job_set_error(j, text);
    free(text);
}

/* No NAME.meta: a job about to be registered, a failed one with only NAME.err, or an
 * empty prompt that will never be a job. */
static void refresh_without_meta(wjob *j)
{
    char path[PATH_MAX + 8];
    struct stat st;
    snprintf(path, sizeof path, "%s.err", j->path);
    if (stat(path, &st) == 0) {
        j->state = J_FAILED;
        job_error_from_err_file(j);
        return;
    }
    if (lstat(j->path, &st) != 0) {
        if (errno == ENOTCONN)
            set_fatal(j->path, errno);
        else if (errno == ENOENT)
            j->state = J_GONE;
        return;   /* anything else: try again on the next walk */
    }
    snprintf(path, sizeof path, "%s.out", j->path);
    struct stat out;
    int64_t age = wall_ms() - ((int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000);
    if (st.st_size == 0 && age >= EMPTY_GRACE_MS && stat(path, &out) != 0 && errno == ENOENT)
        j->state = J_EMPTY;
    else
        j->state = J_PENDING;
    j->phase[0] = '\0';
    j->tokens = 0;
}

/* Read NAME.meta and update the job's state. */
static void refresh(wjob *j)
{
    char path[PATH_MAX + 8];
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s.meta", j->path);
    int r = read_small(path, &text, &len);
    if (r == -ENOENT) {
        refresh_without_meta(j);
        return;
    }
    if (r == -ENOTCONN) {
        set_fatal(path, ENOTCONN);
        return;
    }
    j->state = J_PENDING;
    j->tokens = 0;
    if (r < 0)
        return;   /* e.g. a prompt being replaced this instant: the next walk sees it */
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(doc, "state");
    if (cJSON_IsString(state)) {
        const char *s = state->valuestring;
        if (!strcmp(s, "done")) {
            j->state = J_DONE;
        } else if (!strcmp(s, "failed")) {
            j->state = J_FAILED;
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
            if (cJSON_IsString(e))
                job_set_error(j, e->valuestring);
            else
                job_error_from_err_file(j);
        } else {
            snprintf(j->phase, sizeof j->phase, "%s", s);
            /* a running job's .meta counts what its attempt has streamed so far */
            const cJSON *tk = cJSON_GetObjectItemCaseSensitive(doc, "tokens_so_far");
            if (cJSON_IsNumber(tk) && tk->valuedouble >= 0 && tk->valuedouble < 1e15)
                j->tokens = (long)tk->valuedouble;
        }
    }
    cJSON_Delete(doc);
}

/* --each: the prompt's path as the command line spelled its directory. */
static void report_done(const wjob *j)
{
    const target *t = j->found_by;
    const char *rest = j->path + strlen(t->path);   /* "" or "/tag/name" */
    char *shown = NULL;
    if (asprintf(&shown, "%s%s", t->given, rest) < 0)
        return;   /* out of memory: the summary still counts it */
    W.on_done(shown);
    free(shown);
}

/* A prompt found by a walk (or named on the command line).  -1: out of memory. */
static int visit(const char *path, const target *t)
{
    wjob *j = job_get(path, t);
    if (!j)
        return -1;
    j->gen = W.gen;
    if (j->state != J_DONE && j->state != J_FAILED) {
        refresh(j);
        if (j->state == J_DONE && W.on_done)
            report_done(j);
    }
    return 0;
}

/* Walk a directory depth components below the mount root.  -1: out of memory. */
static int walk(const char *dir, int depth, const target *t)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOTCONN)
            set_fatal(dir, errno);
        return 0;   /* a tag directory removed meanwhile, or unreadable: nothing to wait for */
    }
    int r = 0;
    struct dirent *de;
    char path[PATH_MAX];
    for (;;) {
        errno = 0;
        if (!(de = readdir(d))) {
            if (errno == ENOTCONN)
                set_fatal(dir, errno);
            break;
        }
        const char *name = de->d_name;
        if (!strcmp(name, ".") || !strcmp(name, ".."))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", strcmp(dir, "/") ? dir : "", name) >=
            (int)sizeof path)
            continue;
        unsigned char type = de->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st;
            if (lstat(path, &st) != 0)
                continue;
            type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
        }
        if (type == DT_DIR)
            r = walk(path, depth + 1, t);
        else if (type == DT_REG && depth >= 1 && name_is_prompt(name))
            r = visit(path, t);
        if (r < 0 || W.fatal)
            break;
    }
    if (closedir(d) != 0 && errno == ENOTCONN)
        set_fatal(dir, errno);
    return r;
}

/* One pass over every target.  -1: out of memory or the mount is gone (W.fatal). */
int wscan_scan(void)
{
    W.gen++;
    for (size_t i = 0; i < W.ntargets && !W.fatal; i++) {
        const target *t = &W.targets[i];
        struct stat st;
        if (stat(t->root, &st) != 0 || st.st_dev != t->dev) {
            W.fatal = 1;
            W.fatal_status = EXIT_GONE;
            snprintf(W.fatal_msg, sizeof W.fatal_msg, "%s is no longer mounted", t->root);
            break;
        }
        if (t->is_dir && stat(t->path, &st) != 0) {
            W.fatal = 1;   /* a tier removed from the config, or a tag directory deleted */
            W.fatal_status = EXIT_GONE;
            snprintf(W.fatal_msg, sizeof W.fatal_msg, "%s: %s", t->path, strerror(errno));
            break;
        }
        int r = t->is_dir ? walk(t->path, t->depth, t) : visit(t->path, t);
        if (r < 0) {
            snprintf(W.fatal_msg, sizeof W.fatal_msg, "out of memory");
            W.fatal = 1;
            W.fatal_status = EXIT_USAGE;   /* no better code: it is not the jobs' fault */
        }
    }
    if (W.fatal)
        return -1;
    for (size_t i = 0; i < W.njobs; i++)
        if (W.jobs[i]->gen != W.gen)
            W.jobs[i]->state = J_GONE;   /* deleted (with its results) while we waited */
    return 0;
}

counts wscan_count(void)
{
    counts c = {0};
    for (size_t i = 0; i < W.njobs; i++) {
        const wjob *j = W.jobs[i];
        switch (j->state) {
        case J_DONE: c.done++; break;
        case J_FAILED: c.failed++; break;
        case J_PENDING:
            c.pending++;
            if (!strcmp(j->phase, "parked"))
                c.parked++;
            if (!strcmp(j->phase, "running")) {
                c.running++;
                c.tokens += j->tokens;
            }
            break;
        case J_GONE: c.gone++; break;
        case J_EMPTY: break;
        }
    }
    c.total = c.done + c.failed + c.pending;
    return c;
}

int wscan_init(void)
{
    memset(&W, 0, sizeof W);
    return (W.by_path = hmap_new()) ? 0 : -1;
}

void wscan_free(void)
{
    for (size_t i = 0; i < W.njobs; i++) {
        free(W.jobs[i]->path);
        free(W.jobs[i]->error);
        free(W.jobs[i]);
    }
    free(W.jobs);
    W.jobs = NULL;
    W.njobs = W.cap = 0;
    hmap_free(W.by_path);
    W.by_path = NULL;
    free_targets();
}

void wscan_on_done(void (*fn)(const char *path))
{
    W.on_done = fn;
}

const char *wscan_fatal(int *exit_status)
{
    *exit_status = W.fatal_status;
    return W.fatal_msg;
}

wjob *const *wscan_jobs(size_t *n)
{
    *n = W.njobs;
    return W.jobs;
}
