/* sim.c — routefs-sim: an OpenAI- and OpenRouter-compatible fake provider with scripted
 * latency, faults and billing, for routefs's tests, benchmarks and offline demo.
 *
 * This file is the process: command line, the libmicrohttpd daemon (a small pool of
 * epoll threads), the announced port, and a clean stop on SIGTERM/SIGINT.  The main
 * thread does nothing but wait for the signal.  See sim.h for the other pieces. */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCRIPT_MAX (16 * 1024 * 1024)   /* a script is a few lines; refuse anything absurd */
#define CONNECTION_LIMIT 10000
#define CONNECTION_MEMORY (16 * 1024)   /* MHD per-connection pool: headers, buffers */
#define FD_RESERVE 64                   /* descriptors kept free for listen, epoll, files */

bool sim_quiet;
atomic_bool sim_stopping;
static uint64_t started_ns;

void sim_log(const char *fmt, ...)
{
    if (sim_quiet)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *p = line; *p; p++)   /* one event, one line: bodies may be pretty-printed */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "routefs-sim: %s\n", line);
}

uint64_t sim_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);   /* cannot fail with a valid clock id */
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t sim_uptime_ms(void)
{
    return (sim_now_ns() - started_ns) / 1000000ULL;
}

size_t sim_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t cut = max;
    /* Back off over continuation bytes (10xxxxxx) to the start of the cut character. */
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

/* MHD's own error messages, silenced by --quiet.  What MHD prints when we close a
 * connection on purpose ("close", "truncated", "reset", raw modes, cut and stalled
 * streams) or when a client gave up on a paced body ("drip", "chunked_forever", "huge",
 * a stream) is not an error. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    if (sim_quiet)
        return;
    vsnprintf(line, sizeof line, fmt, ap);
    if (strstr(line, "Application reported internal error") ||
        strstr(line, "application reported error generating data") ||
        strstr(line, "application error generating response") ||
        strstr(line, "The socket is no longer available for sending"))
        return;
    fprintf(stderr, "routefs-sim: libmicrohttpd: %s%s", line,
            line[0] && line[strlen(line) - 1] == '\n' ? "" : "\n");
}

/* Parse a whole number in [lo, hi]; false on anything else. */
static bool parse_long(const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Read and parse the script file; NULL (and a message) on failure. */
static cJSON *load_script(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "routefs-sim: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *text = malloc(SCRIPT_MAX + 1);
    size_t len = text ? fread(text, 1, SCRIPT_MAX + 1, f) : 0;
    bool read_error = ferror(f);
    fclose(f);
    if (!text || read_error || len > SCRIPT_MAX) {
        fprintf(stderr, "routefs-sim: %s: %s\n", path,
                !text ? "out of memory" : read_error ? "read error" : "too large");
        free(text);
        return NULL;
    }
    text[len] = '\0';
    cJSON *script = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(script)) {
        fprintf(stderr, "routefs-sim: %s: not a JSON object\n", path);
        cJSON_Delete(script);
        return NULL;
    }
    return script;
}

/* Write "PORT\n" to path via a temporary file and rename, so a reader never sees a
 * half-written number. */
static int write_port_file(const char *path, unsigned int port)
{
    char tmp[PATH_MAX];
    char line[16];
    int len = snprintf(line, sizeof line, "%u\n", port);
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        fprintf(stderr, "routefs-sim: %s: path too long\n", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "routefs-sim: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    const char *failed = NULL;   /* the file whose step failed, errno set by it */
    errno = 0;                   /* a short write sets none: reported as EIO */
    if (write(fd, line, (size_t)len) != len)
        failed = tmp;
    if (close(fd) < 0 && !failed)
        failed = tmp;
    if (!failed && rename(tmp, path) < 0)
        failed = path;
    if (failed) {
        fprintf(stderr, "routefs-sim: %s: %s\n", failed, strerror(errno ? errno : EIO));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Thousands of concurrent connections need thousands of descriptors: take what the hard
 * limit allows and return how many there are. */
static rlim_t raise_fd_limit(void)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) < 0)
        return 1024;
    if (lim.rlim_cur >= lim.rlim_max)
        return lim.rlim_cur;
    struct rlimit raised = lim;
    /* An unlimited hard limit is still capped by fs.nr_open; 2^20 is its usual value. */
    raised.rlim_cur = lim.rlim_max == RLIM_INFINITY ? 1048576 : lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) < 0)
        return lim.rlim_cur;
    return raised.rlim_cur;
}

/* Resolve host:port to a socket address for MHD_OPTION_SOCK_ADDR. */
static int resolve_host(const char *host, unsigned int port, struct sockaddr_storage *addr)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *found;
    char service[16];
    snprintf(service, sizeof service, "%u", port);
    int rc = getaddrinfo(host, service, &hints, &found);
    if (rc != 0) {
        fprintf(stderr, "routefs-sim: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    memcpy(addr, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"port-file", required_argument, NULL, 'f'},
        {"script", required_argument, NULL, 's'},
        {"latency-ms", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    started_ns = sim_now_ns();
    const char *host = "127.0.0.1", *port_file = NULL, *script_path = NULL;
    long port = 0, latency_ms = -1, threads = 2;
    int opt;

    while ((opt = getopt_long(argc, argv, "H:p:f:s:l:t:qhV", options, NULL)) != -1) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'f': port_file = optarg; break;
        case 's': script_path = optarg; break;
        case 'q': sim_quiet = true; break;
        case 'p':
            if (!parse_long(optarg, 0, 65535, &port))
                goto usage_error;
            break;
        case 'l':
            if (!parse_long(optarg, 0, 86400000, &latency_ms))
                goto usage_error;
            break;
        case 't':
            if (!parse_long(optarg, 1, 256, &threads))
                goto usage_error;
            break;
        case 'h':
            fputs(sim_usage_text, stdout);
            return 0;
        case 'V':
            puts("routefs-sim " ROUTEFS_VERSION);
            return 0;
        default:
            goto usage_error;
        }
    }
    if (optind != argc)
        goto usage_error;

    cJSON *script = NULL;
    if (script_path && !(script = load_script(script_path)))
        return 1;
    char err[256];
    int rc = sim_state_init(script, latency_ms, err, sizeof err);
    if (rc == 0)
        rc = sim_or_init(cJSON_GetObjectItemCaseSensitive(script, "models"), err, sizeof err);
    cJSON_Delete(script);
    if (rc < 0) {
        fprintf(stderr, "routefs-sim: %s: %s\n", script_path ? script_path : "startup", err);
        sim_or_free();
        sim_state_free();
        return 1;
    }

    struct sockaddr_storage addr;
    if (resolve_host(host, (unsigned int)port, &addr) < 0) {
        sim_or_free();
        sim_state_free();
        return 1;
    }

    /* Every thread started from here on inherits the mask; only sigwait() below sees
     * SIGTERM and SIGINT. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    if ((rc = pthread_sigmask(SIG_BLOCK, &stop_signals, NULL)) != 0) {
        fprintf(stderr, "routefs-sim: pthread_sigmask: %s\n", strerror(rc));
        sim_or_free();
        sim_state_free();
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);   /* a client gone mid-write must not kill us */

    rlim_t fds = raise_fd_limit();
    unsigned int connection_limit = CONNECTION_LIMIT;
    if (fds < CONNECTION_LIMIT + FD_RESERVE)
        connection_limit = fds > 2 * FD_RESERVE ? (unsigned int)(fds - FD_RESERVE) : 64;

    if (sim_timer_start() < 0) {
        sim_or_free();
        sim_state_free();
        return 1;
    }

    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* A pool of one is no pool, and MHD warns about it: give the option only for two+. */
    struct MHD_OptionItem pool_option[] = {
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_Daemon *daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, sim_http_handle, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,   /* first, or MHD logs on its own */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, sim_http_completed, NULL,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, 300u,   /* reap idle keep-alive clients */
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
        /* MHD's 32 KiB default is zeroed on every request and multiplied by thousands of
         * waiting connections; our requests' headers are small (bodies are streamed). */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
        MHD_OPTION_ARRAY, pool_option,
        MHD_OPTION_END);
    if (!daemon) {
        fprintf(stderr, "routefs-sim: cannot listen on %s:%ld\n", host, port);
        sim_timer_stop();
        sim_or_free();
        sim_state_free();
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    unsigned int bound_port = info ? info->port : (unsigned int)port;

    bool bracket = addr.ss_family == AF_INET6 && strchr(host, ':');
    printf("routefs-sim listening on %s%s%s:%u\n", bracket ? "[" : "", host, bracket ? "]" : "",
           bound_port);
    fflush(stdout);
    rc = 0;
    if (port_file && write_port_file(port_file, bound_port) < 0)
        rc = 1;

    if (rc == 0) {
        int signo = 0;
        int wait_rc = sigwait(&stop_signals, &signo);
        if (wait_rc != 0) {
            fprintf(stderr, "routefs-sim: sigwait: %s\n", strerror(wait_rc));
            rc = 1;
        } else {
            sim_log("%s: stopping", signo == SIGTERM ? "SIGTERM" : "SIGINT");
        }
    }

    /* Order matters: handlers stop suspending, the timer resumes every waiting connection,
     * and only then may the daemon stop (MHD aborts on a still-suspended connection). */
    atomic_store(&sim_stopping, true);
    sim_timer_stop();
    MHD_stop_daemon(daemon);
    sim_or_free();
    sim_state_free();
    return rc;

usage_error:
    fprintf(stderr, "usage: routefs-sim [--host ADDR] [--port N] [--port-file FILE] "
                    "[--script FILE] [--latency-ms N] [--threads N] [--quiet] "
                    "[--help] [--version]\n");
    return 2;
}
