/* upstream_int.h — private to upstream*.c: the shapes the upstream module's files share.
 *
 *   upstream.c       public API: start/stop, submit, timers, posts, cancel; the id map
 *   upstream_xfer.c  one transfer: its easy handle, curl's data callbacks, its result
 *   upstream_loop.c  the loop thread: epoll + eventfd, curl's socket/timer callbacks, the
 *                    timer heap, the deadline heap, posts, completion
 *
 * Ownership and locking.  Every live request, timer and post ("entry") is in the id map
 * from submission until it is freed, so upstream_cancel can find it from any thread and
 * flag it under up->lock.  The loop checks that flag, under the same lock, right before
 * any callback (on_data, done, timer, post) and records which id it is running; a
 * canceller on another thread waits while its id is the one running.  So once
 * upstream_cancel returns, no callback of that entry runs any more.
 *
 * up->lock guards: the inbox, the id map, the cancel queue, the timer heap (upstream_after
 * reserves heap space so the loop never fails to place a timer), running_id, stop.
 * Loop thread only: the curl handles, each entry's `where`, the post queue, the deadline
 * heap and everything in a request below its "loop thread" line. */
#ifndef RF_UPSTREAM_INT_H
#define RF_UPSTREAM_INT_H

#include "upstream.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define AUTH_PREFIX "Authorization: Bearer "
#define NO_DEADLINE INT64_MAX

typedef enum {
    WHERE_INBOX = 0,   /* submitted, not yet taken in by the loop */
    WHERE_MULTI,       /* a request whose easy handle is in the multi handle */
    WHERE_HEAP,        /* a timer waiting in the heap */
    WHERE_POSTS,       /* a post waiting in the post queue */
    WHERE_LOOSE        /* held by the loop while it completes it; freed by that code */
} entry_where;

typedef enum { KIND_REQUEST = 0, KIND_TIMER, KIND_POST } entry_kind;

/* The common head of a request, a timer and a post. */
typedef struct entry {
    long id;
    entry_kind kind;
    int cancelled;           /* lock */
    int queued_cancel;       /* lock: on up->cancel_head */
    entry_where where;       /* loop thread */
    struct entry *hnext;     /* lock: id map chain */
    struct entry *next;      /* lock: inbox link; loop: post queue / failed-list link */
    struct entry *cnext;     /* lock: cancel queue link */
} entry;

typedef struct request {
    entry e;                 /* first: a request is an entry */
    upstream *up;            /* borrowed */
    CURL *easy;              /* owned */
    struct curl_slist *headers;  /* owned; holds the Authorization header: wiped before free */
    const char *key;         /* inside `headers`, for scrubbing; NULL when no key */
    size_t key_len;
    char *url, *body;        /* owned */
    size_t max_response;     /* 0 = no cap */
    upstream_done_fn done;
    upstream_data_fn on_data;
    void *ud;
    int64_t submitted_ms;
    long timeout_ms, first_token_ms, stall_ms;
    long connect_ms;         /* curl's connect limit */
    atomic_uint_fast64_t bytes;  /* body bytes received; read by other threads */

    /* ---- loop thread ---- */
    int64_t whole_due;       /* submitted + timeout_ms, or NO_DEADLINE */
    int64_t dl_key;          /* this request's key in the deadline heap (<= its deadline) */
    size_t dl_idx;           /* index in the deadline heap, SIZE_MAX when not in it */
    int dl_reserved;         /* holds a slot of the deadline heap's capacity */
    int progressed;          /* a first progress came */
    int64_t first_progress_ms, last_progress_ms, last_byte_ms;
    int got_response;        /* a header or body byte arrived */
    long status;             /* the response's status, read at its first body byte */
    int status_known;
    int collect;             /* keep the body in buf */
    int too_large;           /* the write callback refused: over max_response */
    int out_of_memory;       /* the write callback refused: no memory */
    int socket_errno;        /* why our opensocket callback could not open one, or 0 */
    rf_transport_error fail; /* set by a deadline, an ABORT or the loop; overrides curl */
    char fail_text[160];
    char *buf;               /* owned: collected body so far, NUL-terminated */
    size_t len, cap;
    char *held;              /* owned: streamed bytes held back (could start the key) */
    size_t held_len;
    char *scratch;           /* owned: held + new chunk, while scrubbing */
    size_t scratch_cap;
    long retry_after_ms;
    char errbuf[CURL_ERROR_SIZE];
} request;

typedef struct timer {
    entry e;                 /* first: a timer (or post) is an entry */
    int64_t due_ms;
    size_t heap_idx;
    upstream_timer_fn fn;
    void *ud;
} timer;

struct upstream {
    pthread_t thread;
    CURLM *multi;
    int epfd;                /* epoll: curl's sockets and the wake eventfd */
    int wakefd;              /* eventfd: other threads write to wake the loop */
    long socket_budget;

    pthread_mutex_t lock;
    pthread_cond_t callback_done;   /* broadcast whenever a callback returns */
    int stop;
    long next_id;
    long running_id;                /* the entry whose callback runs now, 0 = none */
    pthread_t loop_tid;
    int loop_tid_set;
    entry *inbox_head, *inbox_tail;
    entry *cancel_head;
    entry **buckets;                /* id map, chained; power-of-two size */
    size_t nbuckets, nentries;
    timer **heap;                   /* min-heap on (due_ms, id) */
    size_t heap_len, heap_cap;
    size_t timers_live;             /* timers in inbox or heap: heap_cap >= this */

    atomic_size_t in_flight;

    /* ---- loop thread ---- */
    int64_t curl_due_us;            /* when curl wants socket_action(TIMEOUT); INT64_MAX none */
    request **dl;                   /* deadline heap: min on dl_key */
    size_t dl_len, dl_cap, dl_reserved;
    entry *posts_head, *posts_tail; /* posts in FIFO order */
    entry *failed_head, *failed_tail;  /* requests the loop could not take in */
    int last_errno;                 /* last epoll failure, to log changes only */
    CURLMcode last_mc;              /* last multi failure, to log changes only */
};


/* upstream.c */
void upstream_map_remove(upstream *up, entry *e);   /* lock held */
void entry_free(upstream *up, entry *e);            /* whatever kind; no callback */

/* upstream_xfer.c */
int xfer_prepare(request *r, upstream_request *req, rf_err *err);  /* headers + easy */
void xfer_finish(request *r, CURLcode code, upstream_result *res); /* fill res */
void xfer_flush_held(request *r);   /* hand held-back streamed bytes to on_data */
void request_free(upstream *up, request *r);
void free_secret(char *s);

/* upstream_loop.c */
int loop_init(upstream *up, rf_err *err);   /* epoll, eventfd, curl callbacks */
void loop_cleanup(upstream *up);            /* after the thread is gone */
void *loop_main(void *arg);
void loop_wake(upstream *up);
int callback_begin(upstream *up, entry *e);  /* 1: run it, then callback_end */
void callback_end(upstream *up);
void deadline_update(upstream *up, request *r);  /* its deadline may have moved earlier */
int64_t request_deadline(const request *r);

/* Descriptor accounting of connections (upstream.c): may a socket keep this number, and
 * one more open / one closed. */
int upstream_socket_fd_ok(int fd);
void upstream_socket_opened(void);
void upstream_socket_closed(void);

#endif
