/* wait.c — `routefs wait [--timeout S] [--each] PATH...`: block until every job under
 * PATHs has ended, for scripts, make and cron jobs that submit a batch and want to know
 * when it is over and whether it went well.
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
 * done / failed / pending, the rate of the last seconds, an ETA and, while jobs stream,
 * the tokens they have received so far (their .meta's tokens_so_far), redrawn about five
 * times a second; otherwise a plain line every --interval seconds, which also says how
 * many jobs run.  Then a summary line and one line per failed job with its error.  With
 * --each, stdout gets the path of each prompt whose job is done, one per line and flushed
 * as it is seen to end (for `| xargs`); the path is spelled from the PATH argument that
 * found it.
 *
 * Exit status: 0 every job done, 1 some failed, 2 usage error, 3 timeout, 4 the mount (or
 * a directory waited on) went away, 128+N interrupted by signal N. */
#include "wait.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "wait_impl.h"

#define POLL_MS            200       /* redraw / poll period: about five times a second */
#define SCAN_MAX_GAP_MS    5000      /* a slow walk never delays the next beyond this */
#define DEFAULT_INTERVAL_S 5.0       /* plain progress line period when not a terminal */
#define RATE_SAMPLES       11        /* one a second: the rate is over the last ~10 s */
#define LIST_MAX           20        /* failed / pending jobs named in the final report */

static struct {
    struct { int64_t t; size_t ended; } samples[RATE_SAMPLES];
    size_t nsamples, sample_head;
} W;

static volatile sig_atomic_t got_signal;

/* ---- small helpers ---- */

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    /* EINTR: a signal arrived; the main loop looks at got_signal. */
    (void)nanosleep(&ts, NULL);
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

/* "<sep>2 running, 57 tokens so far" while jobs stream; "" otherwise. */
static void format_running(const counts *c, const char *sep, char *buf, size_t len)
{
    buf[0] = '\0';
    if (c->running)
        snprintf(buf, len, "%s%zu running, %ld token%s so far", sep, c->running, c->tokens,
                 c->tokens == 1 ? "" : "s");
}

/* The bar: [####xx------]  12/40  done 11  failed 1  pending 28  3.1/s  ETA 9s  57 tok
 * (the tokens running jobs received so far, kept short so that the bar fits in 80 columns) */
static void draw_bar(const counts *c, double rate)
{
    char stats[320], re[64], parked[32] = "", running[40] = "";
    format_rate_eta(rate, c->pending, "  ", re, sizeof re);
    if (c->running)
        snprintf(running, sizeof running, "  %ld tok", c->tokens);
    if (c->parked)
        snprintf(parked, sizeof parked, " (%zu parked)", c->parked);
    snprintf(stats, sizeof stats, " %zu/%zu  done %zu  failed %zu  pending %zu%s  %s%s",
             c->done + c->failed, c->total, c->done, c->failed, c->pending, parked, re,
             running);
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
    char re[64], parked[32] = "", running[80];
    format_rate_eta(rate, c->pending, ", ", re, sizeof re);
    format_running(c, "; ", running, sizeof running);
    if (c->parked)
        snprintf(parked, sizeof parked, " (%zu parked)", c->parked);
    fprintf(stderr, "routefs wait: %zu/%zu ended: %zu done, %zu failed, %zu pending%s; %s%s\n",
            c->done + c->failed, c->total, c->done, c->failed, c->pending, parked, re, running);
    fflush(stderr);
}

static int by_shown(const void *a, const void *b)
{
    return strcmp((*(wjob *const *)a)->shown, (*(wjob *const *)b)->shown);
}

/* Name up to LIST_MAX jobs in state s, sorted: "routefs wait: failed: tier/a.txt: why". */
static void list_jobs(wjob_state s, const char *label)
{
    size_t njobs = 0, n = 0;
    wjob *const *jobs = wscan_jobs(&njobs);
    for (size_t i = 0; i < njobs; i++)
        n += jobs[i]->state == s;
    if (n == 0)
        return;
    wjob **sel = malloc(n * sizeof *sel);
    if (!sel)
        return;
    size_t k = 0;
    for (size_t i = 0; i < njobs; i++)
        if (jobs[i]->state == s)
            sel[k++] = jobs[i];
    qsort(sel, n, sizeof *sel, by_shown);
    for (size_t i = 0; i < n && i < LIST_MAX; i++) {
        const wjob *j = sel[i];
        if (s == J_FAILED)
            fprintf(stderr, "routefs wait: %s: %s: %s\n", label, j->shown,
                    j->error ? j->error : "(no reason recorded)");
        else if (!strcmp(j->phase, "running"))
            fprintf(stderr, "routefs wait: %s: %s (running, %ld token%s)\n", label, j->shown,
                    j->tokens, j->tokens == 1 ? "" : "s");
        else
            fprintf(stderr, "routefs wait: %s: %s%s%s%s\n", label, j->shown,
                    j->phase[0] ? " (" : "", j->phase, j->phase[0] ? ")" : "");
    }
    if (n > LIST_MAX)
        fprintf(stderr, "routefs wait: ... and %zu more %s\n", n - LIST_MAX, label);
    free(sel);
}

/* ---- the command ---- */

/* --each: one finished prompt per line, at once, for a pipe into xargs. */
static void print_done(const char *path)
{
    printf("%s\n", path);
    fflush(stdout);
}

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
            "usage: routefs wait [--timeout S] [--interval S] [--quiet] [--each] PATH...\n"
            "\n"
            "Wait until every job under PATHs has ended.  A PATH is a prompt file in a tier\n"
            "(NAME.out, .meta or .err stand for their prompt), a tier or tag directory\n"
            "(walked recursively; prompts added meanwhile are waited for too), or the\n"
            "mount root.  Progress goes to stderr: a bar on a terminal, else a line every\n"
            "few seconds, with the tokens running jobs have received so far; then a\n"
            "summary and one line per failed job.\n"
            "\n"
            "  -t, --timeout S    give up after S seconds (suffix s, m, h or d allowed)\n"
            "  -i, --interval S   seconds between progress lines when stderr is not a\n"
            "                     terminal (default 5; 0: only the summary)\n"
            "  -q, --quiet        no progress and no summary; failures are still named\n"
            "  -e, --each         print the path of each prompt whose job is done on stdout,\n"
            "                     one per line, as it ends (for | xargs); failed ones are\n"
            "                     named on stderr at the end\n"
            "  -h, --help         this text\n"
            "\n"
            "Exit status: 0 every job done, 1 some failed, 2 usage error, 3 timed out,\n"
            "4 the mount (or a directory waited on) went away, 128+N signal N.\n");
}

int wait_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, 't'}, {"interval", required_argument, NULL, 'i'},
        {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        {"each", no_argument, NULL, 'e'},
        {NULL, 0, NULL, 0},
    };
    double timeout_s = -1, interval_s = DEFAULT_INTERVAL_S;
    int quiet = 0, each = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "t:i:qeh", longopts, NULL)) != -1) {
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
        case 'e': each = 1; break;
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
    if (wscan_init() < 0) {
        fprintf(stderr, "routefs wait: out of memory\n");
        return EXIT_USAGE;
    }
    for (int i = optind; i < argc; i++)
        if (wscan_add_target(argv[i]) < 0)
            goto out;
    if (install_signals() != 0) {
        fprintf(stderr, "routefs wait: cannot install signal handlers: %s\n", strerror(errno));
        goto out;
    }
    if (each)
        wscan_on_done(print_done);

    const char *term = getenv("TERM");
    int bar = !quiet && isatty(STDERR_FILENO) && !(term && !strcmp(term, "dumb"));
    int64_t t0 = now_mono_ms();
    int64_t deadline = timeout_s >= 0 ? t0 + (int64_t)(timeout_s * 1000.0) : INT64_MAX;
    int64_t next_scan = t0, next_line = t0, interval_ms = (int64_t)(interval_s * 1000.0);
    int drawn = 0, timed_out = 0;
    counts cn = {0};
    for (;;) {
        int64_t now = now_mono_ms();
        if (now >= next_scan) {
            if (wscan_scan() < 0) {
                if (drawn)
                    clear_bar();
                fprintf(stderr, "routefs wait: %s\n", wscan_fatal(&status));
                goto out;
            }
            int64_t after = now_mono_ms(), cost = after - now;
            next_scan = now + (cost * 4 > POLL_MS ? cost * 4 : POLL_MS);
            if (next_scan > now + SCAN_MAX_GAP_MS)
                next_scan = now + SCAN_MAX_GAP_MS;
            cn = wscan_count();
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
    format_duration((double)(now_mono_ms() - t0) / 1000.0, took, sizeof took);
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
        status = EXIT_TIMEOUT;
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
    wscan_free();
    return status;
}
