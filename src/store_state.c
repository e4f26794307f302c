/* store_state.c — the small asynchronous writes of a prompt's job state (store_prompts.h):
 * the end of writing, the state and park schedule, the mark that a request went out.
 * Each is one UPDATE in an op that owns a copy of its path; all but the mark are held
 * while the store fails.  Its own file only because store_prompts.c is at the 800-line
 * limit (the end of writing is also where a closed prompt's job starts:
 * sp_end_write_then). */
#include "store_prompts.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

enum state_kind { END_WRITE, SET_STATE, MARK_SENT };   /* index of state_sql[] */

typedef struct state_op {
    store_op op;               /* first */
    char *path;                /* owned */
    int64_t gen, next_attempt_ms;
    enum state_kind kind;
    prompt_state state;
    int park_count;
    sp_queued_fn then;         /* end_write: once stored */
} state_op;

static const char SQL_END_WRITE[] = "UPDATE prompts SET writing = 0 WHERE path = ?1";
static const char SQL_SET_STATE[] =
    "UPDATE prompts SET state = ?3, park_count = ?4, next_attempt_ms = ?5"
    " WHERE gen = ?2";
static const char SQL_MARK_SENT[] = "UPDATE prompts SET sent = 1 WHERE gen = ?2";
static const char *const state_sql[] = {SQL_END_WRITE, SQL_SET_STATE, SQL_MARK_SENT};

static int apply_state(store_conn *w, store_op *op, rf_err *err)
{
    state_op *o = (state_op *)op;
    sqlite3_stmt *s = store_stmt(w, state_sql[o->kind], err);
    if (!s)
        return -1;
    sqlite3_bind_text(s, 1, o->path, -1, SQLITE_STATIC);
    if (o->kind != END_WRITE)
        sqlite3_bind_int64(s, 2, o->gen);
    if (o->kind == SET_STATE) {
        sqlite3_bind_int(s, 3, (int)o->state);
        sqlite3_bind_int(s, 4, o->park_count);
        sqlite3_bind_int64(s, 5, o->next_attempt_ms);
    }
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return store_fail(w, rc, err, "record a job's state");
    return 0;   /* no row changed: the prompt moved on, which is fine */
}

static void state_done(store_op *op, int status, const rf_err *err)
{
    state_op *o = (state_op *)op;
    if (o->then)
        o->then(o->path, o->gen, NULL, status, err);
    free(o->path);
    free(o);
}

static int submit_state(store *st, const char *path, enum state_kind kind, int64_t gen,
                        prompt_state state, int park_count, int64_t next_ms, sp_queued_fn then,
                        unsigned extra_flags)
{
    state_op *o = calloc(1, sizeof *o);
    if (!o || !(o->path = strdup(path))) {
        free(o);
        return -ENOMEM;   /* set_state, mark_sent: the state is still right in memory */
    }
    o->op.apply = apply_state;
    o->op.done = state_done;
    o->op.flags = (kind == MARK_SENT ? 0 : STORE_OP_HELD) | STORE_OP_ONE_CHANGE | extra_flags;
    o->op.key = kind == END_WRITE ? o->path : NULL;   /* writing = 1 shows in reads */
    o->then = then;
    o->kind = kind;
    o->gen = gen;
    o->state = state;
    o->park_count = park_count;
    o->next_attempt_ms = next_ms;
    store_submit(st, &o->op);
    return 0;
}

void sp_end_write(store *st, const char *path)
{
    (void)submit_state(st, path, END_WRITE, 0, PS_PENDING, 0, 0, NULL, 0);
}

int sp_end_write_then(store *st, const char *path, int64_t gen, int urgent, sp_queued_fn then)
{
    return submit_state(st, path, END_WRITE, gen, PS_PENDING, 0, 0, then,
                        urgent ? STORE_OP_URGENT : 0);
}

void sp_set_state(store *st, const char *path, int64_t gen, prompt_state state, int park_count,
                  int64_t next_attempt_ms)
{
    (void)submit_state(st, path, SET_STATE, gen, state, park_count, next_attempt_ms, NULL, 0);
}

void sp_mark_sent(store *st, const char *path, int64_t gen)
{
    (void)submit_state(st, path, MARK_SENT, gen, PS_PENDING, 0, 0, NULL, 0);
}
