/* events.h — M/events: one JSON line per job as it ends, from the moment the file is
 * opened, for pipelines that react to finished work without polling.
 *
 * Reading it blocks like a pipe until the next job ends; `while read -r e; do ...; done <
 * M/events`, `jq --unbuffered . M/events` and `tail -f` work.  Each open is a reader of
 * its own: it sees the jobs that end after it opened, in order.  Offsets are honoured
 * (shells read ahead and seek back to the end of a line), so a reader's recent bytes are
 * kept.  A reader that falls more than EVENTS_KEEP lines behind is told how many it lost.
 *
 * Ctrl-C interrupts a waiting read (EINTR); O_NONBLOCK reads give EAGAIN.  Thread-safe. */
#ifndef RF_EVENTS_H
#define RF_EVENTS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <stddef.h>

#define EVENTS_KEEP 4096   /* lines kept for readers that are behind */

typedef struct events_reader events_reader;

/* A job ended: its line (JSON, no '\n', copied).  Wakes waiting readers. */
void events_publish(const char *line, size_t len);

events_reader *events_open(int nonblock);   /* NULL when out of memory */
/* Answer a read: now when this reader has bytes at off, else when the next job ends. */
void events_read(fuse_req_t req, events_reader *r, size_t size, off_t off);
void events_close(events_reader *r);
/* At shutdown: every waiting reader gets EINTR, later reads too. */
void events_shutdown(void);

#endif
