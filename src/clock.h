/* clock.h — the two clocks routefs uses.  The monotonic clock for everything that
 * measures time (timers, backoff, breakers, latencies); the wall clock only for budget
 * windows and timestamps shown to people. */
#ifndef RF_CLOCK_H
#define RF_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t now_wall_ms(void);
int64_t now_mono_ms(void);
int64_t now_mono_us(void);   /* the same clock in microseconds */
/* ISO-8601 UTC with milliseconds into buf (>= 32 bytes). */
void format_time_ms(int64_t ms, char *buf, size_t len);

#endif
