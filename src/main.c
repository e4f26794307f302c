/* main.c — the command line: mount (routefs MOUNTPOINT ...), `routefs check FILE`,
 * `routefs schema`, `routefs wait`, `routefs umount`, `routefs report`, `routefs export`,
 * start-up and orderly shutdown of the modules.  Signals, systemd notification and the
 * umount control are service.c's; the calls into it are marked "service hook". */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "budget.h"
#include "cluster.h"
#include "config.h"
#include "cli_export.h"
#include "cli_rerun.h"
#include "cli_prices.h"
#include "fs.h"
#include "import01.h"
#include "jobs.h"
#include "kcache.h"
#include "liveconf.h"
#include "log.h"
#include "metrics.h"
#include "openrouter.h"
#include "paths.h"
#include "prices.h"
#include "prompts.h"
#include "results.h"
#include "report.h"
#include "router.h"
#include "runner.h"
#include "scratch.h"
#include "service.h"
#include "store.h"
#include "store_ledger.h"
#include "upstream.h"
#include "version.h"
#include "vfiles.h"
#include "wait.h"

#define BREAKER_THRESHOLD 5
#define BREAKER_COOLDOWN_MS 30000

typedef struct options {
    const char *mountpoint;
    const char *config_path;   /* NULL: STATE/config.json */
    char *owned_config;        /* owned copy when it came from -o config= */
    char *owned_log;           /* owned copy when it came from -o log= */
    char *fuse_opts_left;      /* owned: -o options that are FUSE's, after ours are taken */
    char *state_dir;           /* owned */
    const char *log_path;
    const char *fuse_opts;
    int foreground;
    int debug;
    int shared_read;           /* -o shared_read: virtual files readable by the group */
} options;

/* Every breaker transition: counted for metrics.prom, kept for report.html. */
static void on_breaker_event(const breaker_event *ev, void *ud)
{
    static const char *const to_name[] = {"closed", "open", "half_open"};
    static const char *const kind[] = {"breaker_close", "breaker_open", "breaker_half_open"};
    int to = ev->to >= RF_BREAKER_CLOSED && ev->to <= RF_BREAKER_HALF_OPEN ? (int)ev->to : 0;
    metrics_breaker(ev->provider, ev->model, to_name[to]);
    sl_event((store *)ud, kind[to], ev->provider, ev->model, ev->reason);
    cluster_breaker_event(ev);   /* other hosts skip it too */
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: routefs [SOURCE] MOUNTPOINT [--config FILE] [--state DIR] [--log FILE] [-f] [-d]\n"
            "               [-o OPTS]\n"
            "       routefs check FILE   (see 'routefs check --help')\n"
            "       routefs schema       print config.json's JSON Schema\n"
            "       routefs wait [--timeout S] [--each] PATH...   (see 'routefs wait --help')\n"
            "       routefs umount [--timeout S] MOUNTPOINT   (see 'routefs umount --help')\n"
            "       routefs report STATE [--config FILE] [--days N] > report.html\n"
            "       routefs export STATE DIR [--tier TIER]...\n"
            "       routefs rerun PROMPT...   run prompts again although unchanged\n"
            "       routefs prices [--state STATE] [--config FILE] [MODEL...]\n"
            "\n"
            "Mount a filesystem that turns prompt files into routed LLM chat completions.\n"
            "\n"
            "  -c, --config FILE  routing config (default: STATE/config.json)\n"
            "  -s, --state DIR    state directory (default: $XDG_STATE_HOME/routefs,\n"
            "                     else ~/.local/state/routefs)\n"
            "  -l, --log FILE     daemon log (default: STATE/routefs.log; stderr with -f)\n"
            "  -f, --foreground   stay in the foreground\n"
            "  -d, --debug        debug logging (prompts stay out of the log) and FUSE tracing\n"
            "  -o OPTS            mount options: config=FILE, state=DIR, log=FILE and\n"
            "                     shared_read (virtual files readable by your group) are\n"
            "                     routefs's own, the rest go to FUSE (e.g. allow_other)\n"
            "  SOURCE             optional (mount.fuse3 passes one): a config file, else ignored\n"
            "  -h, --help         this text\n"
            "  -V, --version      print the version\n"
            "\n"
            "check FILE validates a config offline and exits nonzero when it is invalid.\n"
            "Unmount with: routefs umount MOUNTPOINT (wakes waiting readers), or\n"
            "fusermount3 -u MOUNTPOINT (refused with EBUSY while a reader waits).\n"
            "SIGTERM/SIGINT unmount and exit 0; SIGHUP reopens the log and re-reads the config.\n");
}

static char *default_state_dir(void)
{
    char *out = NULL;
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    if (xdg && *xdg) {
        if (asprintf(&out, "%s/routefs", xdg) < 0)
            out = NULL;
    } else if (home && *home) {
        if (asprintf(&out, "%s/.local/state/routefs", home) < 0)
            out = NULL;
    }
    return out;
}

/* -o takes routefs's own settings too (config=, state=, log=), so that an /etc/fstab
 * line through mount.fuse3 can carry them; the rest is FUSE's.  Several -o accumulate. */
static int take_mount_options(const char *list, options *o)
{
    char *copy = strdup(list);
    if (!copy)
        return -1;
    char *save = NULL;
    for (char *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        if (!strcmp(opt, "shared_read")) {
            o->shared_read = 1;
            continue;
        }
        char **ours = !strncmp(opt, "config=", 7) ? &o->owned_config
                    : !strncmp(opt, "state=", 6)  ? &o->state_dir
                    : !strncmp(opt, "log=", 4)    ? &o->owned_log : NULL;
        if (ours) {
            free(*ours);
            if (!(*ours = strdup(strchr(opt, '=') + 1)))
                goto oom;
            continue;
        }
        size_t have = o->fuse_opts_left ? strlen(o->fuse_opts_left) : 0;
        char *grown = realloc(o->fuse_opts_left, have + strlen(opt) + 2);
        if (!grown)
            goto oom;
        sprintf(grown + have, "%s%s", have ? "," : "", opt);
        o->fuse_opts_left = grown;
    }
    free(copy);
    if (o->owned_config)
        o->config_path = o->owned_config;
    if (o->owned_log)
        o->log_path = o->owned_log;
    return 0;
oom:
    free(copy);
    return -1;
}

static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"state", required_argument, NULL, 's'},
        {"log", required_argument, NULL, 'l'},    {"foreground", no_argument, NULL, 'f'},
        {"debug", no_argument, NULL, 'd'},        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:s:l:fdo:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config_path = optarg; break;
        case 's': free(o->state_dir); o->state_dir = strdup(optarg); break;
        case 'l': o->log_path = optarg; break;
        case 'f': o->foreground = 1; break;
        case 'd': o->debug = 1; break;
        case 'o':
            if (take_mount_options(optarg, o) < 0) {
                fprintf(stderr, "routefs: out of memory\n");
                return -1;
            }
            break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("routefs %s\n", ROUTEFS_VERSION); exit(0);
        default:
            fprintf(stderr, "routefs: try 'routefs --help'\n");
            return -1;
        }
    }
    /* `routefs [SOURCE] MOUNTPOINT`: mount.fuse3 (an /etc/fstab line) passes a source
     * first.  A source that is a file is the config, unless one was given otherwise. */
    int positional = argc - optind;
    if (positional < 1 || positional > 2) {
        fprintf(stderr, positional < 1 ? "routefs: missing MOUNTPOINT (try 'routefs --help')\n"
                                       : "routefs: too many arguments (try 'routefs --help')\n");
        return -1;
    }
    if (positional == 2) {
        struct stat st;
        if (!o->config_path && stat(argv[optind], &st) == 0 && S_ISREG(st.st_mode))
            o->config_path = argv[optind];
        optind++;
    }
    o->mountpoint = argv[optind];
    o->fuse_opts = o->fuse_opts_left;
    if (!o->state_dir && !(o->state_dir = default_state_dir())) {
        fprintf(stderr, "routefs: no state directory: pass --state DIR or set HOME\n");
        return -1;
    }
    return 0;
}

static void check_usage(FILE *f)
{
    fprintf(f,
            "usage: routefs check [--] FILE\n"
            "\n"
            "Validate a config offline, with the same code and messages as the mount, and\n"
            "check the key files it names.  Prints \"FILE: ok (...)\" and then any warnings\n"
            "(an api_key_env that is unset or does not name a key) on stderr.\n"
            "Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error.\n");
}

/* routefs check [--] FILE; argv[0] is "check". */
static int cmd_check(int argc, char **argv)
{
    const char *path = NULL;
    int files = 0, options_done = 0;
    for (int i = 1; i < argc; i++) {
        if (!options_done && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))) {
            check_usage(stdout);
            return 0;
        }
        if (!options_done && !strcmp(argv[i], "--")) {
            options_done = 1;
        } else if (!options_done && argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "routefs check: unknown option %s\n", argv[i]);
            check_usage(stderr);
            return 2;
        } else {
            path = argv[i];
            files++;
        }
    }
    if (files != 1) {
        check_usage(stderr);
        return 2;
    }

    rf_config *cfg = NULL;
    rf_err err;
    rf_err_clear(&err);
    if (config_load_file(path, &cfg, &err) < 0) {   /* key files included */
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("%s: ok (%zu tier%s, %zu provider%s)\n", path, cfg->tiers_len,
           cfg->tiers_len == 1 ? "" : "s", cfg->providers_len, cfg->providers_len == 1 ? "" : "s");
    fflush(stdout);
    char **warnings = NULL;
    size_t n = config_key_warnings(cfg, &warnings);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s: warning: %s\n", path, warnings[i]);
    config_free_strings(warnings, n);
    config_unref(cfg);
    return 0;
}

/* routefs schema: config.json's JSON Schema on stdout; argv[0] is "schema". */
static int cmd_schema(int argc, char **argv)
{
    static const char usage_text[] =
        "usage: routefs schema\n"
        "\n"
        "Print the JSON Schema (draft 2020-12) of config.json on stdout\n"
        "(the same text as examples/config.schema.json).\n";
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (argc != 1) {
        fputs(usage_text, stderr);
        return 2;
    }
    fputs(config_schema_json(), stdout);
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}

/* The mount point must be an existing directory that is not already a mount. */
static int check_mountpoint(const char *mnt, rf_err *err)
{
    struct stat st, parent;
    if (stat(mnt, &st) < 0)
        return rf_err_set(err, errno, "mount point %s: %s", mnt, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return rf_err_set(err, ENOTDIR, "mount point %s: not a directory", mnt);
    char up[PATH_MAX];
    snprintf(up, sizeof up, "%s/..", mnt);
    if (stat(up, &parent) == 0 && parent.st_dev != st.st_dev)
        return rf_err_set(err, EBUSY, "mount point %s is busy: something is mounted there", mnt);
    return 0;
}

/* A thousand requests in flight are a thousand sockets: lift the soft fd limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            LOG_WARN("cannot raise the open-file limit: %s", strerror(errno));
    }
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "wait"))
        return wait_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "check"))
        return cmd_check(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "schema"))
        return cmd_schema(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "export"))
        return export_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "rerun"))
        return rerun_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "report"))
        return report_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "umount"))   /* service hook: the umount command */
        return service_umount_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "prices"))
        return prices_main(argc - 1, argv + 1);

    options o = {0};
    if (parse_options(argc, argv, &o) < 0)
        return 2;

    rf_err err;
    rf_err_clear(&err);
    int status = 1;
    rf_config *cfg = NULL;
    store *st = NULL;
    struct fuse_session *se = NULL;
    upstream *up = NULL;
    rf_breakers *breakers = NULL;
    budget *spend = NULL;
    int mounted = 0, jobs_ready = 0, prices_ready = 0;
    char config_file[PATH_MAX];
    char *abs_config = NULL, *abs_mnt = NULL;   /* owned */

    /* Absolute paths: the daemon changes to / when it detaches, and SIGHUP re-reads. */
    abs_config = o.config_path ? realpath(o.config_path, NULL) : NULL;
    if (o.config_path)
        snprintf(config_file, sizeof config_file, "%s", abs_config ? abs_config : o.config_path);
    else
        snprintf(config_file, sizeof config_file, "%s/config.json", o.state_dir);
    if (config_load_file(config_file, &cfg, &err) < 0) {
        if (!o.config_path && err.code == ENOENT)
            fprintf(stderr, "routefs: no config: pass --config FILE (see examples/) or put one "
                            "at %s\n", config_file);
        else
            fprintf(stderr, "routefs: %s\n", err.msg);
        goto out;
    }
    if (check_mountpoint(o.mountpoint, &err) < 0) {
        fprintf(stderr, "routefs: %s\n", err.msg);
        goto out;
    }
    abs_mnt = realpath(o.mountpoint, NULL);
    if (abs_mnt)
        o.mountpoint = abs_mnt;
    umask(077);   /* the state directory and everything in it: owner only */
    if (!(st = store_open(o.state_dir, &err))) {
        fprintf(stderr, "routefs: %s\n", err.msg);
        goto out;
    }
    char log_default[PATH_MAX];
    snprintf(log_default, sizeof log_default, "%s/routefs.log", store_path(st));
    const char *log_path = o.log_path ? o.log_path : (o.foreground ? NULL : log_default);
    if (rf_log_open(log_path) < 0) {
        fprintf(stderr, "routefs: cannot open log %s: %s\n", log_path, strerror(errno));
        goto out;
    }
    rf_log_set_level(o.debug ? RF_LOG_DEBUG : RF_LOG_INFO);
    if (import01_run(st, &err) < 0) {   /* a 0.1.0 state directory comes through intact */
        fprintf(stderr, "routefs: %s\n", err.msg);
        goto out;
    }
    if (scratch_init(store_dirfd(st), &err) < 0 || prices_init(st, &err) < 0) {
        fprintf(stderr, "routefs: %s\n", err.msg);
        goto out;
    }
    prices_ready = 1;
    if (!(spend = budget_open(st, NULL, &err))) {
        fprintf(stderr, "routefs: spend: %s\n", err.msg);
        goto out;
    }

    /* FUSE arguments: our program name, -o fsname/subtype, user options, -d. */
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    if (fuse_opt_add_arg(&args, argv[0]) || fuse_opt_add_arg(&args, "-o") ||
        fuse_opt_add_arg(&args, "fsname=routefs,subtype=routefs,default_permissions") ||
        (o.fuse_opts && (fuse_opt_add_arg(&args, "-o") || fuse_opt_add_arg(&args, o.fuse_opts))) ||
        (o.debug && fuse_opt_add_arg(&args, "-d"))) {
        fprintf(stderr, "routefs: out of memory\n");
        fuse_opt_free_args(&args);
        goto out;
    }
    se = fs_session_new(&args, st, &err);
    fuse_opt_free_args(&args);
    if (!se) {
        fprintf(stderr, "routefs: %s\n", err.msg);
        goto out;
    }
    /* service hook: SIGTERM/SIGINT end the loop (exit 0), SIGPIPE ignored, libgcc_s
     * loaded for the loop's pthread_cancel; instead of fuse_set_signal_handlers. */
    if (service_signals_install(se, &err) < 0) {
        fprintf(stderr, "routefs: %s\n", err.msg);
        goto out;
    }
    if (fuse_session_mount(se, o.mountpoint) != 0) {
        fprintf(stderr, "routefs: cannot mount %s (is fuse3 installed and /dev/fuse usable?)\n",
                o.mountpoint);
        goto out;
    }
    mounted = 1;
    /* Threads start after this: fork would lose them. */
    if (fuse_daemonize(o.foreground) != 0) {
        LOG_ERROR("cannot daemonize");
        goto out;
    }

    raise_fd_limit();
    paths_init(o.shared_read);
    prompts_init(st, spend);
    results_init(st);
    if (store_start(st, &err) < 0 ||
        !(breakers = breakers_new(BREAKER_THRESHOLD, BREAKER_COOLDOWN_MS)) ||
        (breakers_set_listener(breakers, on_breaker_event, st), 0) ||
        cluster_start(cfg, store_path(st), spend, breakers, &err) < 0 ||
        !(up = upstream_start(&err)) ||
        jobs_init(&(jobs_deps){.st = st, .up = up, .breakers = breakers, .budget = spend,
                               .wake = results_wake_reader, .changed = kcache_results_changed},
                  &err) < 0 ||
        kcache_start(se, &err) < 0) {
        LOG_ERROR("start-up failed: %s", err.msg[0] ? err.msg : "out of memory");
        goto out;
    }
    jobs_ready = 1;
    vfiles_init(st, breakers, spend, o.mountpoint);
    liveconf_init(config_file);
    liveconf_start(cfg);
    if (or_start(st, jobs_config, &err) < 0) {   /* OpenRouter's prices, key, generations */
        LOG_ERROR("start-up failed: %s", err.msg);
        goto out;
    }
    /* service hook: SIGHUP reopens the log and re-reads the config (rfs-reload) */
    if (service_reload_start(&err) < 0)
        LOG_WARN("%s", err.msg);

    LOG_INFO("routefs %s mounted at %s (state %s, config %s, %zu tiers)", ROUTEFS_VERSION,
             o.mountpoint, store_path(st), config_file, cfg->tiers_len);
    jobs_recover();
    service_ready(o.mountpoint, cfg->tiers_len);   /* service hook: sd_notify READY=1 */

    /* clone_fd: each worker reads its own clone of /dev/fuse (less contention on one
     * queue when many prompts are copied in at once) */
    struct fuse_loop_config loop = {.clone_fd = 1, .max_idle_threads = 10};
    status = fuse_session_loop_mt(se, &loop) == 0 ? 0 : 1;
    service_stopping();   /* service hook: logs why, sd_notify STOPPING=1 */

out:
    service_reload_stop();      /* service hook: no SIGHUP reloads from here on */
    upstream_stop(up);          /* no more attempts, timers or runner steps after this */
    cluster_stop();             /* replies still due from Redis arrive (ECANCELED) */
    or_stop();                  /* OpenRouter lookups: before the store and prices go */
    if (jobs_ready) {
        jobs_shutdown();        /* waiting readers get EINTR; unfinished jobs resume next mount */
        runner_shutdown();
    }
    kcache_stop();
    if (se) {
        if (mounted)
            fuse_session_unmount(se);
        service_signals_remove();   /* service hook: instead of fuse_remove_signal_handlers */
    }
    fs_session_destroy();
    prompts_shutdown();
    breakers_free(breakers);
    metrics_reset();
    budget_close(spend);
    if (prices_ready)
        prices_shutdown();
    store_close(st);            /* what was decided reaches the disk */
    scratch_close();
    config_unref(cfg);
    free(o.state_dir);
    free(abs_config);
    free(abs_mnt);
    free(o.owned_config);
    free(o.owned_log);
    free(o.fuse_opts_left);
    return status;
}
