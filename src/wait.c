/* wait.c — `routefs wait [--timeout S] PATH...`: block until every job under PATHs has
 * ended, for scripts, make and cron jobs that submit a batch and want to know when it is
 * over and whether it went well.
 *
 * A PATH is a prompt file (NAME.out, NAME.meta and NAME.err stand for their prompt, so a
 * glob like M/tier/a* works), a tier or tag directory (walked recursively), or the mount
 * root (every tier).  A job is a prompt: a regular file inside a tier, at any depth (tag
 * directories nest), whose name is neither a result (NAME.out/.meta/.err) nor one that
 * editors and sync tools use for work in progress (a dotfile, NAME~, .swp, .swx, .tmp,
 * .part, .partial: the rule the filesystem itself applies, so these never start jobs).
 * A job has ended when NAME.meta says "state": "done" or "failed".
 *
 * The mount answers stat, readdir and reads of NAME.meta at once (only NAME.out blocks),
 * so this polls: every POLL_MS it walks the directories again, so prompts that arrive
 * while it waits are waited for too and prompts deleted are forgotten, and reads the
 * .meta of each job not yet seen to end.  An ended job's .meta is not read again.  A
 * big tree makes a walk slow; the next walk then waits a few times as long as that one
 * took, so the poller never keeps the daemon busy.
 *
 * An empty prompt starts no job and never gets a NAME.meta; one that has stayed empty
 * and without results for EMPTY_GRACE_MS is not counted (until someone writes it).
 *
 * Progress goes to stderr (stdout stays free for the caller): on a terminal a bar with
 * done / failed / pending, the rate of the last seconds and an ETA, redrawn about five
 * times a second; otherwise a plain line every --interval seconds.  Then a summary line
 * and one line per failed job with its error.
 *
 * Exit status: 0 every job done, 1 some failed, 2 usage error, timeout or the mount went
 * away, 128+N interrupted by signal N. */
#include "names.h"
#include "wait.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "hmap.h"

#define POLL_MS            200       /* redraw / poll period: about five times a second */
#define SCAN_MAX_GAP_MS    5000      /* a slow walk never delays the next beyond this */
#define EMPTY_GRACE_MS     1000      /* an empty prompt older than this is no job */
#define META_MAX           (1 << 20) /* a .meta larger than this is not ours */
#define DEFAULT_INTERVAL_S 5.0       /* plain progress line period when not a terminal */
#define RATE_SAMPLES       11        /* one a second: the rate is over the last ~10 s */
#define LIST_MAX           20        /* failed / pending jobs named in the final report */
#define FUSE_SUPER_MAGIC   0x65735546

#define EXIT_OK      0
#define EXIT_FAILED  1
#define EXIT_USAGE   2

typedef enum {
    J_PENDING,   /* no result yet (or the .meta could not be read this time) */
    J_EMPTY,     /* an empty prompt without results: no job, not counted */
    J_GONE,      /* the prompt was deleted while we waited: not counted */
    J_DONE,      /* final */
    J_FAILED     /* final */
} wjob_state;

typedef struct wjob {
    char *path;          /* absolute path of the prompt; owned */
    const char *shown;   /* the path under the mount root (points into path) */
    wjob_state state;
    char phase[16];      /* pending: the .meta "state" (writing, queued, running, parked...) */
    char *error;         /* failed: why; owned, may be NULL */
    unsigned gen;        /* the last walk that found the prompt */
} wjob;

typedef struct target {
    char *path;          /* absolute, symlinks resolved; owned */
    char *root;          /* the mount root it is under; owned */
    dev_t dev;           /* the mount's device: a change means it was unmounted */
    int depth;           /* components below the root: 0 root, 1 tier, 2+ tag or prompt */
    int is_dir;
} target;

typedef struct counts {
    size_t done, failed, pending, parked, total, gone;
} counts;

static struct {
    target *targets;
    size_t ntargets;
    hmap *by_path;       /* absolute prompt path -> wjob */
    wjob **jobs;         /* in order of discovery */
    size_t njobs, cap;
    unsigned gen;
    int fatal;           /* set by a walk: the mount is gone */
    char fatal_msg[PATH_MAX + 128];
    struct { int64_t t; size_t ended; } samples[RATE_SAMPLES];
    size_t nsamples, sample_head;
} W;

static volatile sig_atomic_t got_signal;

/* ---- small helpers ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    /* EINTR: a signal arrived; the main loop looks at got_signal. */
    (void)nanosleep(&ts, NULL);
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

/* "1.5s", "12s", "3m05s", "2h10m". */
static void format_duration(double secs, char *buf, size_t len)
{
    if (!isfinite(secs) || secs < 0) {
        snprintf(buf, len, "--");
        return;
    }
    long s = (long)(secs + 0.5);
    if (secs < 9.95)
        snprintf(buf, len, "%.1fs", secs);
    else if (s < 60)
        snprintf(buf, len, "%lds", s);
    else if (s < 3600)
        snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(buf, len, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
}

/* "30", "2.5", "30s", "5m", "1h": seconds.  -1 when it is not a duration. */
static double parse_seconds(const char *s)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0)
        return -1;
    if (!strcmp(end, "") || !strcmp(end, "s"))
        return v;
    if (!strcmp(end, "m"))
        return v * 60;
    if (!strcmp(end, "h"))
        return v * 3600;
    if (!strcmp(end, "d"))
        return v * 86400;
    return -1;
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
        free(W.targets[i].root);
    }
    free(W.targets);
    W.targets = NULL;
    W.ntargets = 0;
}

/* Resolve one command-line path into a target.  0 added, 1 skipped, -1 usage error. */
static int add_target(const char *arg)
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
    if (find_mount_root(abs, &t.root, &t.dev, arg) < 0) {
        free(abs);
        return -1;
    }
    t.depth = path_depth(abs, t.root);
    if (!t.is_dir && t.depth < 2) {
        fprintf(stderr, "routefs wait: %s: not a prompt: files at the mount root are not jobs\n",
                arg);
        free(t.path);
        free(t.root);
        return -1;
    }
    target *p = realloc(W.targets, (W.ntargets + 1) * sizeof *W.targets);
    if (!p) {
        fprintf(stderr, "routefs wait: out of memory\n");
        free(t.path);
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
        }
    }
    cJSON_Delete(doc);
}

/* A prompt found by a walk (or named on the command line).  -1: out of memory. */
static int visit(const char *path, const target *t)
{
    wjob *j = job_get(path, t);
    if (!j)
        return -1;
    j->gen = W.gen;
    if (j->state != J_DONE && j->state != J_FAILED)
        refresh(j);
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
static int scan(void)
{
    W.gen++;
    for (size_t i = 0; i < W.ntargets && !W.fatal; i++) {
        const target *t = &W.targets[i];
        struct stat st;
        if (stat(t->root, &st) != 0 || st.st_dev != t->dev) {
            W.fatal = 1;
            snprintf(W.fatal_msg, sizeof W.fatal_msg, "%s is no longer mounted", t->root);
            break;
        }
        if (t->is_dir && stat(t->path, &st) != 0) {
            W.fatal = 1;   /* a tier removed from the config, or a tag directory deleted */
            snprintf(W.fatal_msg, sizeof W.fatal_msg, "%s: %s", t->path, strerror(errno));
            break;
        }
        int r = t->is_dir ? walk(t->path, t->depth, t) : visit(t->path, t);
        if (r < 0) {
            snprintf(W.fatal_msg, sizeof W.fatal_msg, "out of memory");
            W.fatal = 1;
        }
    }
    if (W.fatal)
        return -1;
    for (size_t i = 0; i < W.njobs; i++)
        if (W.jobs[i]->gen != W.gen)
            W.jobs[i]->state = J_GONE;   /* deleted (with its results) while we waited */
    return 0;
}

static counts count_jobs(void)
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
            break;
        case J_GONE: c.gone++; break;
        case J_EMPTY: break;
        }
    }
    c.total = c.done + c.failed + c.pending;
    return c;
}

/* ---- rate and ETA ---- */

static void rate_sample(int64_t now, size_t ended)
{
    if (W.nsamples > 0) {
        size_t last = (W.sample_head + W.nsamples - 1) % RATE_SAMPLES;
        if (now - W.samples[last].t < 1000)
            return;
    }
    size_t slot = (W.sample_head + W.nsamples) % RATE_SAMPLES;
    if (W.nsamples == RATE_SAMPLES)
        W.sample_head = (W.sample_head + 1) % RATE_SAMPLES;
    else
        W.nsamples++;
    W.samples[slot].t = now;
    W.samples[slot].ended = ended;
}

/* Jobs ended per second over the last ~10 s; negative when not known yet. */
static double rate_now(int64_t now, size_t ended)
{
    if (W.nsamples == 0)
        return -1;
    int64_t t = W.samples[W.sample_head].t;
    size_t then = W.samples[W.sample_head].ended;
    if (now - t < 500)
        return -1;
    return ended > then ? (double)(ended - then) * 1000.0 / (double)(now - t) : 0.0;
}

/* "3.1/s<sep>ETA 9s"; "--" for what is not known yet. */
static void format_rate_eta(double rate, size_t pending, const char *sep, char *buf, size_t len)
{
    char eta[32];
    if (rate > 0)
        format_duration((double)pending / rate, eta, sizeof eta);
    else
        snprintf(eta, sizeof eta, "--");
    if (rate < 0)
        snprintf(buf, len, "--/s%sETA --", sep);
    else
        snprintf(buf, len, "%.1f/s%sETA %s", rate, sep, eta);
}

/* ---- output ---- */

static int terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_col < 20)
        return 80;
    return ws.ws_col;
}

/* The bar: [####xx------]  12/40  done 11  failed 1  pending 28  3.1/s  ETA 9s */
static void draw_bar(const counts *c, double rate)
{
    char stats[256], re[64], parked[32] = "";
    format_rate_eta(rate, c->pending, "  ", re, sizeof re);
    if (c->parked)
        snprintf(parked, sizeof parked, " (%zu parked)", c->parked);
    snprintf(stats, sizeof stats, " %zu/%zu  done %zu  failed %zu  pending %zu%s  %s",
             c->done + c->failed, c->total, c->done, c->failed, c->pending, parked, re);
    int cols = terminal_width() - 1;   /* never the last column: no wrap */
    int slen = (int)strlen(stats);
    char line[512];
    int n = 0;
    int room = cols - slen - 2, width = 0;   /* a few fixed widths: the bar does not jitter */
    for (int w = 40; w >= 10 && !width; w -= 10)
        if (room >= w)
            width = w;
    if (width && c->total > 0) {
        int ndone = (int)((double)c->done * width / (double)c->total);
        int nfail = (int)((double)(c->done + c->failed) * width / (double)c->total) - ndone;
        line[n++] = '[';
        for (int i = 0; i < width; i++)
            line[n++] = i < ndone ? '#' : i < ndone + nfail ? 'x' : '-';
        line[n++] = ']';
    }
    snprintf(line + n, sizeof line - (size_t)n, "%s", stats);
    if ((int)strlen(line) > cols && cols > 0)
        line[cols] = '\0';
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
}

static void clear_bar(void)
{
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

static void print_line(const counts *c, double rate)
{
    char re[64], parked[32] = "";
    format_rate_eta(rate, c->pending, ", ", re, sizeof re);
    if (c->parked)
        snprintf(parked, sizeof parked, " (%zu parked)", c->parked);
    fprintf(stderr, "routefs wait: %zu/%zu ended: %zu done, %zu failed, %zu pending%s; %s\n",
            c->done + c->failed, c->total, c->done, c->failed, c->pending, parked, re);
    fflush(stderr);
}

static int by_shown(const void *a, const void *b)
{
    return strcmp((*(wjob *const *)a)->shown, (*(wjob *const *)b)->shown);
}

/* Name up to LIST_MAX jobs in state s, sorted: "routefs wait: failed: tier/a.txt: why". */
static void list_jobs(wjob_state s, const char *label)
{
    size_t n = 0;
    for (size_t i = 0; i < W.njobs; i++)
        n += W.jobs[i]->state == s;
    if (n == 0)
        return;
    wjob **sel = malloc(n * sizeof *sel);
    if (!sel)
        return;
    size_t k = 0;
    for (size_t i = 0; i < W.njobs; i++)
        if (W.jobs[i]->state == s)
            sel[k++] = W.jobs[i];
    qsort(sel, n, sizeof *sel, by_shown);
    for (size_t i = 0; i < n && i < LIST_MAX; i++) {
        const wjob *j = sel[i];
        if (s == J_FAILED)
            fprintf(stderr, "routefs wait: %s: %s: %s\n", label, j->shown,
                    j->error ? j->error : "(no reason recorded)");
        else
            fprintf(stderr, "routefs wait: %s: %s%s%s%s\n", label, j->shown,
                    j->phase[0] ? " (" : "", j->phase, j->phase[0] ? ")" : "");
    }
    if (n > LIST_MAX)
        fprintf(stderr, "routefs wait: ... and %zu more %s\n", n - LIST_MAX, label);
    free(sel);
}

/* ---- the command ---- */

static void on_signal(int sig)
{
    got_signal = sig;
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    if (sigemptyset(&sa.sa_mask) != 0)
        return -1;
    sa.sa_flags = 0;   /* no SA_RESTART: the sleep ends at once */
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGHUP, &sa, NULL) != 0)
        return -1;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: routefs wait [--timeout S] [--interval S] [--quiet] PATH...\n"
            "\n"
            "Wait until every job under PATHs has ended.  A PATH is a prompt file in a tier\n"
            "(NAME.out, .meta or .err stand for their prompt), a tier or tag directory\n"
            "(walked recursively; prompts added meanwhile are waited for too), or the\n"
            "mount root.  Progress goes to stderr: a bar on a terminal, else a line every\n"
            "few seconds; then a summary and one line per failed job.\n"
            "\n"
            "  -t, --timeout S    give up after S seconds (suffix s, m, h or d allowed)\n"
            "  -i, --interval S   seconds between progress lines when stderr is not a\n"
            "                     terminal (default 5; 0: only the summary)\n"
            "  -q, --quiet        no progress and no summary; failures are still named\n"
            "  -h, --help         this text\n"
            "\n"
            "Exit status: 0 all jobs done, 1 some failed, 2 usage error or timeout.\n");
}

int wait_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, 't'}, {"interval", required_argument, NULL, 'i'},
        {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    double timeout_s = -1, interval_s = DEFAULT_INTERVAL_S;
    int quiet = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "t:i:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            if ((timeout_s = parse_seconds(optarg)) < 0) {
                fprintf(stderr, "routefs wait: --timeout: '%s' is not a number of seconds\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'i':
            if ((interval_s = parse_seconds(optarg)) < 0) {
                fprintf(stderr, "routefs wait: --interval: '%s' is not a number of seconds\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return EXIT_OK;
        default:
            if (optopt && optopt != '?')
                fprintf(stderr, "routefs wait: option -%c %s\n", optopt,
                        strchr("ti", optopt) ? "needs a value" : "is unknown");
            else
                fprintf(stderr, "routefs wait: unknown option %s\n", argv[optind - 1]);
            fprintf(stderr, "routefs wait: try 'routefs wait --help'\n");
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "routefs wait: no PATH given (try 'routefs wait --help')\n");
        return EXIT_USAGE;
    }

    int status = EXIT_USAGE;
    if (!(W.by_path = hmap_new())) {
        fprintf(stderr, "routefs wait: out of memory\n");
        return EXIT_USAGE;
    }
    for (int i = optind; i < argc; i++)
        if (add_target(argv[i]) < 0)
            goto out;
    if (install_signals() != 0) {
        fprintf(stderr, "routefs wait: cannot install signal handlers: %s\n", strerror(errno));
        goto out;
    }

    const char *term = getenv("TERM");
    int bar = !quiet && isatty(STDERR_FILENO) && !(term && !strcmp(term, "dumb"));
    int64_t t0 = mono_ms();
    int64_t deadline = timeout_s >= 0 ? t0 + (int64_t)(timeout_s * 1000.0) : INT64_MAX;
    int64_t next_scan = t0, next_line = t0, interval_ms = (int64_t)(interval_s * 1000.0);
    int drawn = 0, timed_out = 0;
    counts cn = {0};
    for (;;) {
        int64_t now = mono_ms();
        if (now >= next_scan) {
            if (scan() < 0) {
                if (drawn)
                    clear_bar();
                fprintf(stderr, "routefs wait: %s\n", W.fatal_msg);
                goto out;
            }
            int64_t after = mono_ms(), cost = after - now;
            next_scan = now + (cost * 4 > POLL_MS ? cost * 4 : POLL_MS);
            if (next_scan > now + SCAN_MAX_GAP_MS)
                next_scan = now + SCAN_MAX_GAP_MS;
            cn = count_jobs();
            rate_sample(after, cn.done + cn.failed);
            now = after;
        }
        if (cn.pending == 0)
            break;
        if (got_signal)
            break;
        if (now >= deadline) {
            timed_out = 1;
            break;
        }
        double rate = rate_now(now, cn.done + cn.failed);
        if (bar) {
            draw_bar(&cn, rate);
            drawn = 1;
        } else if (!quiet && interval_ms > 0 && now >= next_line) {
            print_line(&cn, rate);
            next_line = now + interval_ms;
        }
        int64_t wake = now + POLL_MS;
        if (next_scan < wake)
            wake = next_scan;
        if (deadline < wake)
            wake = deadline;
        sleep_ms(wake - now);
    }
    if (drawn)
        clear_bar();

    char took[32];
    format_duration((double)(mono_ms() - t0) / 1000.0, took, sizeof took);
    if (got_signal) {
        fprintf(stderr, "routefs wait: interrupted: %zu of %zu jobs still pending\n",
                cn.pending, cn.total);
        status = 128 + got_signal;
    } else if (timed_out) {
        fprintf(stderr, "routefs wait: timed out after %s: %zu of %zu jobs still pending "
                        "(%zu done, %zu failed)\n",
                took, cn.pending, cn.total, cn.done, cn.failed);
        list_jobs(J_PENDING, "pending");
        list_jobs(J_FAILED, "failed");
        status = EXIT_USAGE;
    } else {
        char gone[64] = "";
        if (cn.gone)
            snprintf(gone, sizeof gone, "; %zu prompt%s deleted meanwhile", cn.gone,
                     cn.gone == 1 ? "" : "s");
        if (!quiet && cn.total == 0)
            fprintf(stderr, "routefs wait: no jobs under the given paths%s\n", gone);
        else if (!quiet)
            fprintf(stderr, "routefs wait: %zu job%s: %zu done, %zu failed (%s)%s\n", cn.total,
                    cn.total == 1 ? "" : "s", cn.done, cn.failed, took, gone);
        list_jobs(J_FAILED, "failed");
        status = cn.failed ? EXIT_FAILED : EXIT_OK;
    }

out:
    for (size_t i = 0; i < W.njobs; i++) {
        free(W.jobs[i]->path);
        free(W.jobs[i]->error);
        free(W.jobs[i]);
    }
    free(W.jobs);
    hmap_free(W.by_path);
    free_targets();
    return status;
}
