/* import01.c — bring a routefs 0.1.0 state directory into the state store, once.
 *
 * 0.1.0 kept files: tiers/<tier>/<tags...>/NAME with NAME.out|.meta|.err beside it
 * (results staged as .rfs-tmp.NAME.gN.*, park records as .rfs-tmp.NAME.park), root/ for
 * scratch files at the mount root, ledger.jsonl and activity.jsonl.  On the first mount
 * of such a directory every prompt, result, tag directory, ledger record and activity
 * line becomes a row (one transaction: all or nothing), scratch files and dot
 * directories are copied to files/, and the old files are moved aside into backup-0.1/,
 * untouched.  Nothing is sent by the import itself: unfinished prompts resume as usual. */
#include "import01.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blob.h"
#include "hmap.h"
#include "log.h"
#include "names.h"
#include "scratch.h"
#include "store_prompts.h"

#define PROMPT_MAX_01 (1024 * 1024)
#define LEDGER_MAX (256u * 1024 * 1024)

typedef struct import_ctx {
    store *st;
    store_conn *w;
    int dirfd;                /* the state directory */
    long prompts, results, dirs, scratch, ledger, activity, skipped;
} import_ctx;

/* ---- small file helpers on the state directory ---- */

static int read_file(int dirfd, const char *rel, size_t max, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > max) {
        close(fd);
        return -EFBIG;
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    size_t n = 0;
    while (buf && n < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)sb.st_size - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf)
        return -ENOMEM;
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

static int exists(int dirfd, const char *rel)
{
    return faccessat(dirfd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static int step(store_conn *w, sqlite3_stmt *s, rf_err *err)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : store_fail(w, rc, err, "import");
}

/* ---- prompts, results, directories ---- */

static const char SQL_PROMPT[] =
    "INSERT OR REPLACE INTO prompts(path, dir, name, gen, state, writing, size, hash, mode, uid,"
    " gid, atime_ns, mtime_ns, ctime_ns, created_ms, finished_ms, park_count, next_attempt_ms,"
    " out_size, meta, err, out, data) VALUES(?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9, ?10, ?11,"
    " ?12, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)";
static const char SQL_DIR[] =
    "INSERT OR IGNORE INTO dirs(path, parent, name, mode, uid, gid, mtime_ns, ctime_ns)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)";

static int64_t ns_of(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

/* A park record of 0.1.0 that answers this prompt (same hash). */
static void read_park(import_ctx *c, const char *dir_rel, const char *name, uint64_t hash,
                      int *count, int64_t *next_ms)
{
    char rel[PATH_MAX];
    char *text = NULL;
    size_t len = 0;
    *count = 0;
    *next_ms = 0;
    snprintf(rel, sizeof rel, "%s/.rfs-tmp.%s.park", dir_rel, name);
    if (read_file(c->dirfd, rel, 4096, &text, &len) < 0)
        return;
    cJSON *o = cJSON_Parse(text);
    free(text);
    char want[24];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)hash);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "prompt_hash");
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(o, "park_count");
    const cJSON *nx = cJSON_GetObjectItemCaseSensitive(o, "next_attempt_ms");
    if (cJSON_IsString(h) && !strcmp(h->valuestring, want) && cJSON_IsNumber(pc) &&
        cJSON_IsNumber(nx) && pc->valuedouble >= 1 && pc->valuedouble < 1000) {
        *count = (int)pc->valuedouble;
        *next_ms = (int64_t)nx->valuedouble;
    }
    cJSON_Delete(o);
}

static int import_prompt(import_ctx *c, const char *path, const char *dir_rel, const char *name,
                         rf_err *err)
{
    char rel[PATH_MAX + 16];
    snprintf(rel, sizeof rel, "%s/%s", dir_rel, name);
    struct stat sb;
    char *data = NULL, *out = NULL, *meta = NULL, *errline = NULL;
    size_t len = 0, out_len = 0, meta_len = 0, err_len = 0;
    if (fstatat(c->dirfd, rel, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
        read_file(c->dirfd, rel, PROMPT_MAX_01, &data, &len) < 0) {
        c->skipped++;
        return 0;   /* unreadable or too large (0.1.0 never ran those either) */
    }
    uint64_t hash = blob_hash(data, len);
    char res[PATH_MAX + 32];
    snprintf(res, sizeof res, "%s.out", rel);
    int has_out = read_file(c->dirfd, res, 64u << 20, &out, &out_len) == 0;
    snprintf(res, sizeof res, "%s.err", rel);
    int has_err = !has_out && read_file(c->dirfd, res, 1 << 20, &errline, &err_len) == 0;
    snprintf(res, sizeof res, "%s.meta", rel);
    if ((has_out || has_err) && read_file(c->dirfd, res, 1 << 20, &meta, &meta_len) < 0)
        meta = strdup("{}\n");
    int park_count = 0;
    int64_t next_ms = 0;
    prompt_state state = has_out ? PS_DONE : has_err ? PS_FAILED : len ? PS_PENDING : PS_EMPTY;
    if (state == PS_PENDING) {
        read_park(c, dir_rel, name, hash, &park_count, &next_ms);
        if (park_count > 0)
            state = PS_PARKED;
    }
    const char *slash = strrchr(path, '/');
    char *dir = strndup(path, (size_t)(slash - path));
    sqlite3_stmt *s = dir ? store_stmt(c->w, SQL_PROMPT, err) : NULL;
    int r = -1;
    if (s) {
        int64_t mt = ns_of(&sb.st_mtim);
        sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, dir, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, store_next_generation(c->st));
        sqlite3_bind_int(s, 5, (int)state);
        sqlite3_bind_int64(s, 6, (sqlite3_int64)len);
        sqlite3_bind_int64(s, 7, (sqlite3_int64)hash);
        sqlite3_bind_int(s, 8, (int)(sb.st_mode & 07777));
        sqlite3_bind_int64(s, 9, sb.st_uid);
        sqlite3_bind_int64(s, 10, sb.st_gid);
        sqlite3_bind_int64(s, 11, ns_of(&sb.st_atim));
        sqlite3_bind_int64(s, 12, mt);
        sqlite3_bind_int64(s, 13, mt / 1000000);
        sqlite3_bind_int64(s, 14, has_out || has_err ? mt / 1000000 : 0);
        sqlite3_bind_int(s, 15, park_count);
        sqlite3_bind_int64(s, 16, next_ms);
        sqlite3_bind_int64(s, 17, (sqlite3_int64)out_len);
        if (meta)
            sqlite3_bind_text(s, 18, meta, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(s, 18);
        if (errline)
            sqlite3_bind_text(s, 19, errline, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(s, 19);
        if (has_out)
            sqlite3_bind_blob(s, 20, out_len ? out : "", (int)out_len, SQLITE_STATIC);
        else
            sqlite3_bind_null(s, 20);
        sqlite3_bind_blob(s, 21, len ? data : "", (int)len, SQLITE_STATIC);
        r = step(c->w, s, err);
    } else if (!dir) {
        rf_err_set(err, ENOMEM, "out of memory");
    }
    free(dir);
    free(data);
    free(out);
    free(meta);
    free(errline);
    if (r == 0) {
        c->prompts++;
        c->results += has_out || has_err;
    }
    return r;
}

static int import_tag_dir(import_ctx *c, const char *path, const struct stat *sb, rf_err *err)
{
    const char *slash = strrchr(path, '/');
    char *parent = strndup(path, (size_t)(slash - path));
    sqlite3_stmt *s = parent ? store_stmt(c->w, SQL_DIR, err) : NULL;
    int r = -1;
    if (s) {
        sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, parent, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, slash + 1, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 4, (int)(sb->st_mode & 07777));
        sqlite3_bind_int64(s, 5, sb->st_uid);
        sqlite3_bind_int64(s, 6, sb->st_gid);
        sqlite3_bind_int64(s, 7, ns_of(&sb->st_mtim));
        r = step(c->w, s, err);
    }
    free(parent);
    c->dirs += r == 0;
    return r;
}

/* Copy a plain file or a whole directory tree into scratch space (files/). */
static void copy_to_scratch(import_ctx *c, const char *rel, const char *scratch_path)
{
    struct stat sb;
    if (fstatat(c->dirfd, rel, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        return;
    if (S_ISDIR(sb.st_mode)) {
        scratch_mkdir(scratch_path, sb.st_mode & 07777);
        int fd = openat(c->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char r2[PATH_MAX], s2[PATH_MAX];
            if (snprintf(r2, sizeof r2, "%s/%s", rel, de->d_name) < (int)sizeof r2 &&
                snprintf(s2, sizeof s2, "%s/%s", scratch_path, de->d_name) < (int)sizeof s2)
                copy_to_scratch(c, r2, s2);
        }
        if (d)
            closedir(d);
        else if (fd >= 0)
            close(fd);
        return;
    }
    if (!S_ISREG(sb.st_mode))
        return;
    char *data = NULL;
    size_t len = 0;
    rf_err err;
    if (read_file(c->dirfd, rel, 64u << 20, &data, &len) == 0 &&
        scratch_write_atomic(scratch_path, data, len, &err) == 0) {
        scratch_chmod(scratch_path, sb.st_mode & 07777);
        c->scratch++;
    }
    free(data);
}

/* One directory of tiers/: dir_rel is its path in the state directory ("tiers/t/a"),
 * path its mount path ("t/a"). */
static int import_dir(import_ctx *c, const char *dir_rel, const char *path, int depth,
                      rf_err *err)
{
    int fd = openat(c->dirfd, dir_rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        const char *nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..") || !strncmp(nm, ".rfs-tmp.", 9))
            continue;
        char rel[PATH_MAX], mpath[PATH_MAX], scratch_path[PATH_MAX + 16];
        if (snprintf(rel, sizeof rel, "%s/%s", dir_rel, nm) >= (int)sizeof rel ||
            snprintf(mpath, sizeof mpath, "%s/%s", path, nm) >= (int)sizeof mpath)
            continue;
        snprintf(scratch_path, sizeof scratch_path, "tiers/%s", mpath);
        struct stat sb;
        if (fstatat(c->dirfd, rel, &sb, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (name_is_temp(nm)) {
            copy_to_scratch(c, rel, scratch_path);   /* dot directories, editor files */
        } else if (S_ISDIR(sb.st_mode)) {
            r = depth < 64 ? import_tag_dir(c, mpath, &sb, err) : 0;
            if (r == 0 && depth < 64)
                r = import_dir(c, rel, mpath, depth + 1, err);
        } else if (S_ISREG(sb.st_mode) && name_result_kind(nm) < 0) {
            r = import_prompt(c, mpath, dir_rel, nm, err);
        }
    }
    closedir(d);
    return r;
}

/* ---- the ledger and the activity log ---- */

static const char SQL_LEDGER[] =
    "INSERT INTO ledger(ref, at_ms, tier, tag, provider, model, cost_nusd, prompt_tokens,"
    " completion_tokens, path) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
static const char SQL_SPEND_DAY[] =
    "INSERT INTO spend_days(day, tier, tag, provider, model, upstream, nusd, requests,"
    " unpriced, estimated) VALUES(?1, ?2, ?3, ?4, ?5, '', ?6, 1, ?7, 0)"
    " ON CONFLICT DO UPDATE SET nusd = nusd + excluded.nusd, requests = requests + 1,"
    " unpriced = unpriced + excluded.unpriced";
static const char SQL_ACTIVITY[] = "INSERT INTO activity(off, at_ms, line) VALUES(?1, ?2, ?3)";

static const char *str_field(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void bind_opt(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

static int64_t day_of(int64_t ms)
{
    return ms >= 0 ? ms / 86400000LL : -((-ms + 86400000LL - 1) / 86400000LL);
}

/* One ledger line: records with a repeated id count once (0.1.0's rule). */
static int import_ledger_line(import_ctx *c, char *line, hmap *ids, rf_err *err)
{
    cJSON *o = cJSON_Parse(line);
    const char *id = str_field(o, "id");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "at_ms");
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(o, "cost");
    int ok = id && *id && cJSON_IsNumber(at) && fabs(at->valuedouble) < 1e15 &&
             (!cost || cJSON_IsNull(cost) ||
              (cJSON_IsNumber(cost) && isfinite(cost->valuedouble) && cost->valuedouble >= 0 &&
               cost->valuedouble < 1e6));
    if (!ok || hmap_get(ids, id)) {
        c->skipped += !ok;
        cJSON_Delete(o);
        return 0;
    }
    hmap_put(ids, id, ids);
    int64_t at_ms = (int64_t)at->valuedouble;
    int priced = cJSON_IsNumber(cost);
    int64_t nusd = priced ? (int64_t)llround(cost->valuedouble * 1e9) : 0;
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(o, "prompt_tokens");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(o, "completion_tokens");
    const char *tier = str_field(o, "tier"), *tag = str_field(o, "tag");
    const char *provider = str_field(o, "provider"), *model = str_field(o, "model");
    sqlite3_stmt *s = store_stmt(c->w, SQL_LEDGER, err);
    int r = -1;
    if (s) {
        bind_opt(s, 1, id);
        sqlite3_bind_int64(s, 2, at_ms);
        bind_opt(s, 3, tier ? tier : "");
        bind_opt(s, 4, tag);
        bind_opt(s, 5, provider ? provider : "");
        bind_opt(s, 6, model ? model : "");
        if (priced)
            sqlite3_bind_int64(s, 7, nusd);
        else
            sqlite3_bind_null(s, 7);
        if (cJSON_IsNumber(pt))
            sqlite3_bind_int64(s, 8, (sqlite3_int64)pt->valuedouble);
        else
            sqlite3_bind_null(s, 8);
        if (cJSON_IsNumber(ct))
            sqlite3_bind_int64(s, 9, (sqlite3_int64)ct->valuedouble);
        else
            sqlite3_bind_null(s, 9);
        /* 0.1.0's ids are "tier/tags/name#gen#ms#seq": the prompt's path, as rows of
         * this version have it */
        const char *hash_mark = strchr(id, '#');
        if (hash_mark && hash_mark > id)
            sqlite3_bind_text(s, 10, id, (int)(hash_mark - id), SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(s, 10);
        r = step(c->w, s, err);
    }
    sqlite3_stmt *d = r == 0 ? store_stmt(c->w, SQL_SPEND_DAY, err) : NULL;
    if (d) {
        sqlite3_bind_int64(d, 1, day_of(at_ms));
        bind_opt(d, 2, tier ? tier : "");
        bind_opt(d, 3, tag ? tag : "");
        bind_opt(d, 4, provider ? provider : "");
        bind_opt(d, 5, model ? model : "");
        sqlite3_bind_int64(d, 6, nusd);
        sqlite3_bind_int(d, 7, !priced);
        r = step(c->w, d, err);
    } else if (r == 0) {
        r = -1;
    }
    cJSON_Delete(o);
    c->ledger += r == 0;
    return r;
}

static int import_lines(import_ctx *c, const char *rel, int ledger, rf_err *err)
{
    char *text = NULL;
    size_t len = 0;
    if (!exists(c->dirfd, rel))
        return 0;
    int e = read_file(c->dirfd, rel, LEDGER_MAX, &text, &len);
    if (e < 0)
        return rf_err_set(err, -e, "import: %s: %s", rel, strerror(-e));
    hmap *ids = ledger ? hmap_new() : NULL;
    if (ledger && !ids) {
        free(text);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    int64_t off = 0;
    int r = 0;
    for (char *line = text, *nl; r == 0 && line < text + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(text + len - line));
        if (!nl)
            break;   /* a torn last line (0.1.0 cut these off too) */
        *nl = '\0';
        if (!*line)
            continue;
        if (ledger) {
            r = import_ledger_line(c, line, ids, err);
            continue;
        }
        cJSON *o = cJSON_Parse(line);
        const char *t = str_field(o, "time");
        struct tm tm = {0};
        int64_t at_ms = t && strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) ? (int64_t)timegm(&tm) * 1000 : 0;
        cJSON_Delete(o);
        *nl = '\n';
        sqlite3_stmt *s = store_stmt(c->w, SQL_ACTIVITY, err);
        if (!s) {
            r = -1;
            break;
        }
        size_t n = (size_t)(nl - line) + 1;
        sqlite3_bind_int64(s, 1, off);
        sqlite3_bind_int64(s, 2, at_ms);
        sqlite3_bind_text(s, 3, line, (int)n, SQLITE_STATIC);
        r = step(c->w, s, err);
        off += (int64_t)n;
        c->activity += r == 0;
    }
    hmap_free(ids);
    free(text);
    return r;
}

/* ---- the driver ---- */

static int import_all(store_conn *w, void *ud, rf_err *err)
{
    import_ctx *c = ud;
    c->w = w;
    int fd = openat(c->dirfd, "tiers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    int r = 0;
    while (r == 0 && d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char rel[PATH_MAX];
        snprintf(rel, sizeof rel, "tiers/%s", de->d_name);
        r = import_dir(c, rel, de->d_name, 0, err);
    }
    if (d)
        closedir(d);
    else if (fd >= 0)
        close(fd);
    if (r == 0)
        copy_to_scratch(c, "root", "root");
    if (r == 0)
        r = import_lines(c, "ledger.jsonl", 1, err);
    if (r == 0)
        r = import_lines(c, "activity.jsonl", 0, err);
    if (r == 0) {
        static const char SQL_MARK[] =
            "INSERT OR REPLACE INTO info(key, value) VALUES('imported', '0.1.0 state directory')";
        sqlite3_stmt *s = store_stmt(w, SQL_MARK, err);
        r = s ? step(w, s, err) : -1;
    }
    return r;
}

int import01_run(store *st, rf_err *err)
{
    int dirfd = store_dirfd(st);
    struct stat sb;
    if (fstatat(dirfd, "tiers", &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(sb.st_mode))
        return 0;   /* not a 0.1.0 state directory (or imported already: moved aside) */
    if (scratch_init(dirfd, err) < 0)
        return -1;
    import_ctx c = {.st = st, .dirfd = dirfd};
    if (store_direct(st, import_all, &c, err) < 0) {
        rf_err tmp = *err;
        rf_err_set(err, tmp.code, "importing the 0.1.0 state directory: %s (nothing changed)",
                   tmp.msg);
        return -1;
    }
    if (mkdirat(dirfd, "backup-0.1", 0700) < 0 && errno != EEXIST)
        return rf_err_set(err, errno, "cannot create backup-0.1: %s", strerror(errno));
    static const char *const old[] = {"tiers", "root", "ledger.jsonl", "activity.jsonl"};
    for (size_t i = 0; i < sizeof old / sizeof *old; i++) {
        char to[64];
        snprintf(to, sizeof to, "backup-0.1/%s", old[i]);
        if (exists(dirfd, old[i]) && renameat(dirfd, old[i], dirfd, to) < 0)
            return rf_err_set(err, errno, "cannot move %s aside: %s", old[i], strerror(errno));
    }
    LOG_INFO("imported a 0.1.0 state directory: %ld prompts (%ld with results), %ld tag "
             "directories, %ld scratch files, %ld ledger records, %ld activity lines, %ld "
             "skipped; the old files are in backup-0.1/", c.prompts, c.results, c.dirs,
             c.scratch, c.ledger, c.activity, c.skipped);
    return 0;
}
