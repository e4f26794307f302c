/* service.c — see service.h.
 *
 * Why the loop ends the way it does.  fuse_session_loop_mt's main thread sleeps in
 * sem_wait until a worker leaves its loop; a worker leaves when it sees the session's exit
 * flag after a read of /dev/fuse.  So a stop request sets the flag (fuse_session_exit) and
 * then makes sure one of those two threads wakes up: a signal handler re-sends the signal
 * to the main thread when it ran in another one (a handler without SA_RESTART makes
 * sem_wait return EINTR), and the umount control runs in a worker, which leaves its loop
 * right after replying.  libfuse's own handlers also store the signal number as the
 * session's error, which made the loop return it and the daemon exit 1; ours do not.
 *
 * The loop then cancels its idle workers with pthread_cancel.  glibc loads libgcc_s.so.1
 * for that on first use and aborts the process when it cannot ("libgcc_s.so.1 must be
 * installed for pthread_cancel to work"), e.g. when every descriptor is taken at a low fd
 * limit.  It is loaded at start-up instead (the Makefile links it too).
 *
 * Readers waiting on NAME.out are answered EINTR by jobs_shutdown, which main.c runs
 * after the loop and before the unmount, while /dev/fuse is still open.  Programs that
 * retry an interrupted read (GNU cat does) send the read again; it finds the loop gone and
 * fails with ENOTCONN or ECONNABORTED once the daemon closes the device. */
#include "service.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include "clock.h"
#include "config.h"
#include "jobs.h"
#include "liveconf.h"
#include "log.h"

#define UMOUNT_DEFAULT_TIMEOUT_S 10.0
#define UMOUNT_POLL_MS           50

typedef enum { STOP_NONE = 0, STOP_SIGNAL, STOP_CONTROL } stop_cause;

static struct {
    struct fuse_session *se;      /* borrowed; NULL when there is no loop to end */
    pthread_t main_thread;        /* the thread that runs fuse_session_loop_mt */
    volatile sig_atomic_t stop_signal;   /* the first SIGTERM/SIGINT, 0 if none */
    volatile sig_atomic_t stopping;      /* the loop has returned: ignore stop signals */
    int stop_cause;               /* a stop_cause, read and written atomically */
    int reload_pipe[2];
    pthread_t reloader;
    int reloader_started;
    char mountpoint[PATH_MAX];
    size_t tiers;
} S = {.reload_pipe = {-1, -1}};

static void *unwinder;   /* libgcc_s, kept loaded for the life of the process */

/* ---- systemd notification ---- */

/* sd_notify is a no-op without NOTIFY_SOCKET; its errors are not worth more than a
 * debug line (the service manager decides what a missing READY=1 means). */
static void notify(const char *text)
{
    int r = sd_notify(0, text);
    if (r < 0)
        LOG_DEBUG("sd_notify: %s", strerror(-r));
}

static void notify_status(const char *extra)
{
    char text[PATH_MAX + 128];
    snprintf(text, sizeof text, "STATUS=mounted at %s, %zu tier%s%s%s", S.mountpoint, S.tiers,
             S.tiers == 1 ? "" : "s", extra ? "; " : "", extra ? extra : "");
    notify(text);
}

/* ---- signals ---- */

static void on_stop_signal(int sig)
{
    int saved = errno;
    if (!S.stopping) {
        if (!S.stop_signal)
            S.stop_signal = sig;
        struct fuse_session *se = __atomic_load_n(&S.se, __ATOMIC_ACQUIRE);
        if (se) {
            fuse_session_exit(se);   /* sets a flag: async-signal-safe */
            if (!pthread_equal(pthread_self(), S.main_thread))
                pthread_kill(S.main_thread, sig);   /* wake its sem_wait */
        }
    }
    errno = saved;
}

static void on_sighup(int sig)
{
    (void)sig;
    int saved = errno;
    char c = 1;
    if (S.reload_pipe[1] >= 0) {
        ssize_t w = write(S.reload_pipe[1], &c, 1);
        (void)w;   /* a full pipe already holds a pending reload */
    }
    errno = saved;
}

/* A handler that does nothing: unlike SIG_IGN it is not inherited by programs we exec
 * (fusermount3), and a write to a closed socket returns EPIPE instead of killing us. */
static void on_sigpipe(int sig)
{
    (void)sig;
}

static int set_handler(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL);
}

static void preload_unwinder(void)
{
    if (unwinder)
        return;
    unwinder = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE);
    if (!unwinder)
        LOG_WARN("cannot load libgcc_s.so.1 (%s): the daemon may abort when it stops at a "
                 "low open-file limit", dlerror());
}

int service_signals_install(struct fuse_session *se, rf_err *err)
{
    preload_unwinder();
    S.main_thread = pthread_self();
    S.stop_signal = 0;
    S.stopping = 0;
    __atomic_store_n(&S.stop_cause, STOP_NONE, __ATOMIC_RELAXED);
    __atomic_store_n(&S.se, se, __ATOMIC_RELEASE);
    /* No SA_RESTART for the stop signals: the loop's sem_wait and the workers' reads of
     * /dev/fuse must return EINTR to notice the exit flag. */
    if (set_handler(SIGTERM, on_stop_signal, 0) != 0 ||
        set_handler(SIGINT, on_stop_signal, 0) != 0 ||
        set_handler(SIGHUP, SIG_IGN, 0) != 0 ||
        set_handler(SIGPIPE, on_sigpipe, SA_RESTART) != 0)
        return rf_err_set(err, errno, "cannot install signal handlers: %s", strerror(errno));
    return 0;
}

void service_signals_remove(void)
{
    __atomic_store_n(&S.se, NULL, __ATOMIC_RELEASE);
}

/* ---- SIGHUP: reopen the log, re-read the config ---- */

static void *reload_thread(void *arg)
{
    (void)arg;
    (void)pthread_setname_np(pthread_self(), "rfs-reload");  /* for top -H, perf; cosmetic */
    for (;;) {
        char c;
        ssize_t r = read(S.reload_pipe[0], &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != 1 || c != 1)
            break;
        if (rf_log_reopen() < 0)
            LOG_ERROR("SIGHUP: cannot reopen the log file: %s", strerror(errno));
        else if (!rf_log_is_journal())
            LOG_INFO("SIGHUP: log file reopened");
        rf_err err;
        rf_err_clear(&err);
        int ok = liveconf_reload(&err) == 0;   /* logs and records its own refusal */
        rf_config *cfg = jobs_config();
        if (cfg)
            S.tiers = cfg->tiers_len;
        config_unref(cfg);
        notify_status(ok ? "config reloaded" : "config reload refused (see status)");
    }
    return NULL;
}

int service_reload_start(rf_err *err)
{
    /* The handler's end never blocks: a full pipe already holds a pending reload. */
    if (pipe2(S.reload_pipe, O_CLOEXEC) != 0 ||
        fcntl(S.reload_pipe[1], F_SETFL, O_NONBLOCK) != 0) {
        int e = errno;
        if (S.reload_pipe[0] >= 0) {
            close(S.reload_pipe[0]);
            close(S.reload_pipe[1]);
        }
        S.reload_pipe[0] = S.reload_pipe[1] = -1;
        return rf_err_set(err, e, "SIGHUP reloads are off: pipe: %s", strerror(e));
    }
    /* The thread inherits our signal mask: block what it must not take, so that stop
     * signals land where they wake the loop at once. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int r = pthread_create(&S.reloader, NULL, reload_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        close(S.reload_pipe[0]);
        close(S.reload_pipe[1]);
        S.reload_pipe[0] = S.reload_pipe[1] = -1;
        return rf_err_set(err, r, "SIGHUP reloads are off: thread: %s", strerror(r));
    }
    S.reloader_started = 1;
    if (set_handler(SIGHUP, on_sighup, SA_RESTART) != 0)
        return rf_err_set(err, errno, "SIGHUP reloads are off: sigaction: %s", strerror(errno));
    return 0;
}

void service_reload_stop(void)
{
    set_handler(SIGHUP, SIG_IGN, 0);
    if (S.reloader_started) {
        char stop = 0;
        while (write(S.reload_pipe[1], &stop, 1) < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};   /* full: it drains */
            nanosleep(&ts, NULL);
        }
        pthread_join(S.reloader, NULL);
        S.reloader_started = 0;
    }
    if (S.reload_pipe[0] >= 0) {
        close(S.reload_pipe[0]);
        close(S.reload_pipe[1]);
        S.reload_pipe[0] = S.reload_pipe[1] = -1;
    }
}

/* ---- life cycle ---- */

void service_ready(const char *mountpoint, size_t tiers)
{
    snprintf(S.mountpoint, sizeof S.mountpoint, "%s", mountpoint);
    S.tiers = tiers;
    char text[PATH_MAX + 128];
    snprintf(text, sizeof text, "READY=1\nSTATUS=mounted at %s, %zu tier%s", S.mountpoint,
             tiers, tiers == 1 ? "" : "s");
    notify(text);
}

void service_stopping(void)
{
    S.stopping = 1;
    /* The shutdown is bounded; a second signal must not interrupt its system calls. */
    set_handler(SIGTERM, SIG_IGN, 0);
    set_handler(SIGINT, SIG_IGN, 0);
    int sig = S.stop_signal;
    if (sig)
        LOG_INFO("%s: unmounting", sig == SIGINT ? "SIGINT" : "SIGTERM");
    else if (__atomic_load_n(&S.stop_cause, __ATOMIC_ACQUIRE) == STOP_CONTROL)
        LOG_INFO("routefs umount: unmounting");
    else
        LOG_INFO("unmounted");
    notify("STOPPING=1\nSTATUS=unmounting");
}

int service_control(const char *value, size_t size)
{
    if (!(size == 6 && !memcmp(value, "umount", 6)))
        return -EINVAL;
    struct fuse_session *se = __atomic_load_n(&S.se, __ATOMIC_ACQUIRE);
    __atomic_store_n(&S.stop_cause, STOP_CONTROL, __ATOMIC_RELEASE);
    if (se)
        fuse_session_exit(se);   /* this worker leaves its loop after replying */
    return 0;
}

/* ---- routefs umount ---- */

/* "10", "2.5", "30s", "1m": seconds; -1 when it is not a duration. */
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
    return -1;
}

/* Undo mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
static void unescape_mountinfo(char *s)
{
    char *out = s;
    for (char *in = s; *in; in++) {
        if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
            in[3] >= '0' && in[3] <= '7') {
            *out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
            in += 3;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
}

/* The topmost mount at path: its id and file system type.  1 found, 0 not a mount
 * point, -1 mountinfo unreadable (errno). */
static int find_mount(const char *path, long *id, char *type, size_t type_len)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    while (getline(&line, &cap, f) > 0) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER */
        char *save = NULL;
        char *f_id = strtok_r(line, " \n", &save);
        char *field = NULL;
        for (int i = 0; i < 3 && f_id; i++)
            field = strtok_r(NULL, " \n", &save);
        char *mnt = field ? strtok_r(NULL, " \n", &save) : NULL;
        if (!mnt)
            continue;
        char *tok;
        while ((tok = strtok_r(NULL, " \n", &save)) && strcmp(tok, "-") != 0)
            ;
        char *fstype = tok ? strtok_r(NULL, " \n", &save) : NULL;
        if (!fstype)
            continue;
        unescape_mountinfo(mnt);
        if (strcmp(mnt, path) != 0)
            continue;
        found = 1;   /* later lines are mounted on top: keep the last */
        *id = strtol(f_id, NULL, 10);
        snprintf(type, type_len, "%s", fstype);
    }
    free(line);
    fclose(f);
    return found;
}

/* Still mounted: the mount with that id is in the table. */
static int mount_present(const char *path, long id)
{
    long now_id = -1;
    char type[64];
    return find_mount(path, &now_id, type, sizeof type) == 1 && now_id == id;
}

/* MOUNTPOINT as an absolute path, found without touching the mount itself (a stat of a
 * hung daemon's root would hang): the parent directory resolved, then the last component.
 * malloc'd; NULL with errno. */
static char *mount_path(const char *arg)
{
    char *copy = strdup(arg);
    if (!copy)
        return NULL;
    for (size_t n = strlen(copy); n > 1 && copy[n - 1] == '/'; n--)
        copy[n - 1] = '\0';
    char *slash = strrchr(copy, '/');
    const char *dir = slash ? (slash == copy ? "/" : copy) : ".";
    const char *last = slash ? slash + 1 : copy;
    if (slash && slash != copy)
        *slash = '\0';
    char *out = NULL;
    if (!*last || !strcmp(last, ".") || !strcmp(last, "..")) {
        out = realpath(arg, NULL);   /* "/", "x/.", "x/..": no last component to keep */
    } else {
        char *parent = realpath(dir, NULL);
        if (parent && asprintf(&out, "%s/%s", strcmp(parent, "/") ? parent : "", last) < 0)
            out = NULL;
        int e = errno;
        free(parent);
        errno = e;
    }
    int e = errno;
    free(copy);
    errno = e;
    return out;
}

/* Send the umount control from a child process: a daemon that is stopped or hung never
 * answers, and only a fatal signal ends a FUSE request that is not answered.  0 sent,
 * -errno refused, -ETIMEDOUT no answer before deadline (the child is killed). */
static int send_control(const char *path, int64_t deadline)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int r = setxattr(path, SERVICE_CONTROL_XATTR, "umount", 6, 0) == 0 ? 0 : errno;
        _exit(r > 255 ? 255 : r);
    }
    for (;;) {
        int wstatus;
        pid_t w = waitpid(pid, &wstatus, WNOHANG);
        if (w == pid)
            return WIFEXITED(wstatus) ? -WEXITSTATUS(wstatus) : -EIO;
        if (w < 0 && errno != EINTR)
            return -errno;
        if (now_mono_ms() >= deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
                ;
            return -ETIMEDOUT;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void umount_usage(FILE *f)
{
    fprintf(f,
            "usage: routefs umount [--timeout S] MOUNTPOINT\n"
            "\n"
            "Unmount a routefs mount even while readers wait on NAME.out: the daemon\n"
            "answers them EINTR, unmounts and exits; unfinished jobs resume at the next\n"
            "mount.  Waits until the mount is gone.  (fusermount3 -u refuses with EBUSY\n"
            "while a reader waits.)\n"
            "\n"
            "  -t, --timeout S    wait at most S seconds (default 10; suffix s or m)\n"
            "  -h, --help         this text\n"
            "\n"
            "Exit status: 0 unmounted, 1 the daemon could not be asked (permission, or a\n"
            "dead mount: use fusermount3 -u -z), 2 usage error, 3 timed out (still\n"
            "mounted), 4 not a routefs mount.\n");
}

int service_umount_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    double timeout_s = UMOUNT_DEFAULT_TIMEOUT_S;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            if ((timeout_s = parse_seconds(optarg)) < 0) {
                fprintf(stderr, "routefs umount: --timeout: '%s' is not a number of seconds\n",
                        optarg);
                return UMOUNT_EXIT_USAGE;
            }
            break;
        case 'h':
            umount_usage(stdout);
            return UMOUNT_EXIT_OK;
        default:
            if (optopt == 't')
                fprintf(stderr, "routefs umount: option --timeout needs a value\n");
            else
                fprintf(stderr, "routefs umount: unknown option %s\n", argv[optind - 1]);
            umount_usage(stderr);
            return UMOUNT_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "routefs umount: %s\n",
                optind >= argc ? "no MOUNTPOINT given" : "one MOUNTPOINT only");
        umount_usage(stderr);
        return UMOUNT_EXIT_USAGE;
    }
    const char *arg = argv[optind];
    char *path = mount_path(arg);
    if (!path) {
        fprintf(stderr, "routefs umount: %s: %s\n", arg, strerror(errno));
        return errno == ENOENT || errno == ENOTDIR ? UMOUNT_EXIT_NOT_ROUTEFS
                                                   : UMOUNT_EXIT_FAILED;
    }
    int status = UMOUNT_EXIT_FAILED;
    long id = -1;
    char type[64] = "";
    int r = find_mount(path, &id, type, sizeof type);
    struct stat st;
    if (r == 0 && lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        char *target = realpath(arg, NULL);   /* a symlink to the mount point */
        if (target) {
            free(path);
            path = target;
            r = find_mount(path, &id, type, sizeof type);
        }
    }
    if (r < 0) {
        fprintf(stderr, "routefs umount: /proc/self/mountinfo: %s\n", strerror(errno));
        goto out;
    }
    if (r == 0 || strcmp(type, "fuse.routefs") != 0) {
        if (r == 0)
            fprintf(stderr, "routefs umount: %s: not a mount point\n", arg);
        else
            fprintf(stderr, "routefs umount: %s: not a routefs mount (a %s mount)\n", arg, type);
        status = UMOUNT_EXIT_NOT_ROUTEFS;
        goto out;
    }
    int64_t deadline = now_mono_ms() + (int64_t)(timeout_s * 1000.0);
    int sent = send_control(path, deadline);
    if (sent == -ETIMEDOUT) {
        fprintf(stderr, "routefs umount: %s: the daemon did not answer within %gs (stopped or "
                        "hung?); fusermount3 -u -z %s detaches the mount\n", arg, timeout_s, arg);
        status = UMOUNT_EXIT_TIMEOUT;
        goto out;
    }
    if (sent < 0) {
        int e = -sent;
        if (e == ENOTCONN)
            fprintf(stderr, "routefs umount: %s: the daemon is gone (%s); unmount with "
                            "fusermount3 -u -z %s\n", arg, strerror(e), arg);
        else if (e == ENOTSUP || e == EOPNOTSUPP)
            fprintf(stderr, "routefs umount: %s: the daemon does not take the umount control "
                            "(an older routefs?); use fusermount3 -u -z %s\n", arg, arg);
        else
            fprintf(stderr, "routefs umount: %s: %s\n", arg, strerror(e));
        goto out;
    }
    for (;;) {
        if (!mount_present(path, id)) {
            status = UMOUNT_EXIT_OK;
            break;
        }
        if (now_mono_ms() >= deadline) {
            fprintf(stderr, "routefs umount: %s: still mounted after %gs (the daemon is "
                            "shutting down; try again, or fusermount3 -u -z)\n", arg, timeout_s);
            status = UMOUNT_EXIT_TIMEOUT;
            break;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = UMOUNT_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
out:
    free(path);
    return status;
}
