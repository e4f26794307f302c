/* timer.c — resumes suspended connections when their wake time comes.
 *
 * A delayed request must not hold one of libmicrohttpd's few worker threads, so its
 * handler suspends the connection and hands it here.  One thread keeps a min-heap of
 * (wake time, connection) and sleeps on a condition variable until the earliest one is
 * due.  MHD_resume_connection() is called outside the heap lock: a connection is pushed
 * only after it was suspended, so it can never be resumed before that. */
#include "sim.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RESUME_BATCH 256   /* connections resumed per trip outside the lock */

typedef struct wake_entry {
    uint64_t at_ns;
    struct MHD_Connection *conn;
} wake_entry;

static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t heap_changed;
static wake_entry *heap;
static size_t heap_len, heap_cap;
static bool timer_stopping;
static bool timer_running;
static pthread_t timer_thread;

static void heap_swap(size_t a, size_t b)
{
    wake_entry t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
}

static void heap_push(wake_entry e)
{
    size_t i = heap_len++;
    heap[i] = e;
    while (i > 0 && heap[(i - 1) / 2].at_ns > heap[i].at_ns) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static wake_entry heap_pop(void)
{
    wake_entry top = heap[0];
    heap[0] = heap[--heap_len];
    size_t i = 0;
    for (;;) {
        size_t left = 2 * i + 1, right = left + 1, least = i;
        if (left < heap_len && heap[left].at_ns < heap[least].at_ns)
            least = left;
        if (right < heap_len && heap[right].at_ns < heap[least].at_ns)
            least = right;
        if (least == i)
            break;
        heap_swap(i, least);
        i = least;
    }
    return top;
}

bool sim_timer_suspend(struct MHD_Connection *conn, uint64_t wake_ns)
{
    pthread_mutex_lock(&heap_lock);
    if (timer_stopping) {
        pthread_mutex_unlock(&heap_lock);
        return false;
    }
    if (heap_len == heap_cap) {
        size_t cap = heap_cap ? heap_cap * 2 : 1024;
        wake_entry *grown = realloc(heap, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&heap_lock);
            return false;
        }
        heap = grown;
        heap_cap = cap;
    }
    MHD_suspend_connection(conn);
    heap_push((wake_entry){.at_ns = wake_ns, .conn = conn});
    if (heap[0].conn == conn)   /* new earliest: the sleeper must wake sooner */
        pthread_cond_signal(&heap_changed);
    pthread_mutex_unlock(&heap_lock);
    return true;
}

static void *timer_main(void *arg)
{
    struct MHD_Connection *due[RESUME_BATCH];

    pthread_mutex_lock(&heap_lock);
    for (;;) {
        size_t ndue = 0;
        uint64_t now = sim_now_ns();
        while (heap_len > 0 && ndue < RESUME_BATCH && (timer_stopping || heap[0].at_ns <= now))
            due[ndue++] = heap_pop().conn;
        if (ndue > 0) {
            pthread_mutex_unlock(&heap_lock);
            for (size_t i = 0; i < ndue; i++)
                MHD_resume_connection(due[i]);
            pthread_mutex_lock(&heap_lock);
            continue;
        }
        if (timer_stopping)
            break;   /* and the heap is empty */
        if (heap_len == 0) {
            pthread_cond_wait(&heap_changed, &heap_lock);
        } else {
            struct timespec until = {
                .tv_sec = (time_t)(heap[0].at_ns / 1000000000ULL),
                .tv_nsec = (long)(heap[0].at_ns % 1000000000ULL),
            };
            int rc = pthread_cond_timedwait(&heap_changed, &heap_lock, &until);
            if (rc != 0 && rc != ETIMEDOUT) {
                fprintf(stderr, "routefs-sim: timer wait: %s\n", strerror(rc));
                abort();
            }
        }
    }
    pthread_mutex_unlock(&heap_lock);
    return NULL;
}

int sim_timer_start(void)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc == 0) {
        /* Wake times are on the monotonic clock, so must the wait be. */
        rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        if (rc == 0)
            rc = pthread_cond_init(&heap_changed, &attr);
        pthread_condattr_destroy(&attr);
    }
    if (rc == 0) {
        rc = pthread_create(&timer_thread, NULL, timer_main, NULL);
        if (rc != 0)
            pthread_cond_destroy(&heap_changed);
    }
    if (rc != 0) {
        fprintf(stderr, "routefs-sim: timer thread: %s\n", strerror(rc));
        return -1;
    }
    timer_running = true;
    return 0;
}

void sim_timer_stop(void)
{
    if (!timer_running)
        return;
    pthread_mutex_lock(&heap_lock);
    timer_stopping = true;
    pthread_cond_signal(&heap_changed);
    pthread_mutex_unlock(&heap_lock);
    pthread_join(timer_thread, NULL);
    pthread_cond_destroy(&heap_changed);
    free(heap);
    heap = NULL;
    heap_len = heap_cap = 0;
    timer_running = false;
}
