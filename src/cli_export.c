/* cli_export.c — `routefs export STATE DIR [--tier T]...`: the prompts and results of a
 * state directory as plain files, for people who want them without a mount.
 *
 * DIR/<tier>/<tags...>/NAME holds the prompt's bytes, NAME.out the completion of a
 * finished job, NAME.meta its meta, NAME.err the reason a failed job failed — the same
 * names and bytes the mount shows.  Times are kept (a result's are its job's end).  The
 * database is only read, so this works while the state is mounted (SQLite WAL). */
#include "cli_export.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_prompts.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: routefs export STATE DIR [--tier TIER]...\n"
               "\n"
               "Write the prompts and results kept in the state directory STATE as plain files\n"
               "under DIR (DIR/TIER/.../NAME, NAME.out, NAME.meta, NAME.err).  Works while\n"
               "STATE is mounted.  Exit status: 0 done, 1 an error, 2 usage.\n");
}

static int mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return mkdir(buf, 0700) < 0 && errno != EEXIST ? -errno : 0;
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode,
                      int64_t mtime_ns)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -errno;
    const char *p = data;
    int r = 0;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            r = -errno;
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    if (r == 0 && mtime_ns > 0) {
        struct timespec ts[2] = {{mtime_ns / 1000000000LL, mtime_ns % 1000000000LL},
                                 {mtime_ns / 1000000000LL, mtime_ns % 1000000000LL}};
        futimens(fd, ts);
    }
    if (close(fd) < 0 && r == 0)
        r = -errno;
    return r;
}

/* Is tier (the path's first component) one of the wanted ones? */
static int wanted(const char *path, char **tiers, int ntiers)
{
    if (ntiers == 0)
        return 1;
    size_t n = strcspn(path, "/");
    for (int i = 0; i < ntiers; i++)
        if (strlen(tiers[i]) == n && !strncmp(tiers[i], path, n))
            return 1;
    return 0;
}

static const char SQL_ALL[] =
    "SELECT path, state, mode, mtime_ns, finished_ms, data, out, meta, err FROM prompts"
    " WHERE writing = 0 ORDER BY id";

int export_main(int argc, char **argv)
{
    char *tiers[64];
    int ntiers = 0;
    const char *args[2];
    int nargs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--tier") && i + 1 < argc && ntiers < 64) {
            tiers[ntiers++] = argv[++i];
        } else if (argv[i][0] == '-' || nargs == 2) {
            usage(stderr);
            return 2;
        } else {
            args[nargs++] = argv[i];
        }
    }
    if (nargs != 2) {
        usage(stderr);
        return 2;
    }
    char db_path[PATH_MAX];
    snprintf(db_path, sizeof db_path, "%s/%s", args[0], STORE_DB_NAME);
    sqlite3 *db = NULL;
    if (access(db_path, R_OK) < 0 ||
        sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "routefs export: %s: %s\n", db_path,
                db ? sqlite3_errmsg(db) : strerror(errno));
        sqlite3_close(db);
        return 1;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, SQL_ALL, -1, &s, NULL) != SQLITE_OK) {
        fprintf(stderr, "routefs export: %s: %s\n", db_path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return 1;
    }
    long prompts = 0, results = 0;
    int status = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_text(s, 0);
        if (!path || strstr(path, "..") || path[0] == '/' || !wanted(path, tiers, ntiers))
            continue;
        prompt_state state = (prompt_state)sqlite3_column_int(s, 1);
        mode_t mode = (mode_t)sqlite3_column_int(s, 2) & 0777;
        int64_t mtime = sqlite3_column_int64(s, 3);
        int64_t finished_ns = sqlite3_column_int64(s, 4) * 1000000LL;
        char file[PATH_MAX + 16];
        if (snprintf(file, sizeof file, "%s/%s", args[1], path) >= (int)sizeof(file) - 8)
            continue;
        char *slash = strrchr(file, '/');
        *slash = '\0';
        int r = mkdirs(file);
        *slash = '/';
        if (r == 0)
            r = write_file(file, sqlite3_column_blob(s, 5), (size_t)sqlite3_column_bytes(s, 5),
                           mode ? mode : 0600, mtime);
        size_t base = strlen(file);
        if (r == 0 && state == PS_DONE && sqlite3_column_type(s, 6) != SQLITE_NULL) {
            strcpy(file + base, ".out");
            r = write_file(file, sqlite3_column_blob(s, 6), (size_t)sqlite3_column_bytes(s, 6),
                           0600, finished_ns);
            results++;
        }
        if (r == 0 && state == PS_FAILED && sqlite3_column_type(s, 8) != SQLITE_NULL) {
            strcpy(file + base, ".err");
            r = write_file(file, sqlite3_column_text(s, 8), (size_t)sqlite3_column_bytes(s, 8),
                           0600, finished_ns);
            results++;
        }
        if (r == 0 && (state == PS_DONE || state == PS_FAILED) &&
            sqlite3_column_type(s, 7) != SQLITE_NULL) {
            strcpy(file + base, ".meta");
            r = write_file(file, sqlite3_column_text(s, 7), (size_t)sqlite3_column_bytes(s, 7),
                           0600, finished_ns);
        }
        file[base] = '\0';
        if (r < 0) {
            fprintf(stderr, "routefs export: %s: %s\n", file, strerror(-r));
            status = 1;
            break;
        }
        prompts++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        fprintf(stderr, "routefs export: %s: %s\n", db_path, sqlite3_errmsg(db));
        status = 1;
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    if (status == 0)
        fprintf(stderr, "routefs export: %ld prompts, %ld results written to %s\n", prompts,
                results, args[1]);
    return status;
}
