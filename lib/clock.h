/* SPDX-License-Identifier: Apache-2.0 */
/* The monotonic clock, read one way everywhere: elapsed times and deadlines
 * never follow wall-clock steps. */
#ifndef WEFT_CLOCK_H
#define WEFT_CLOCK_H
#include <stdint.h>
#include <time.h>

uint64_t clock_mono_ns(void);
uint64_t clock_mono_ms(void);
/* CLOCK_MONOTONIC now + ms, normalized: the absolute deadline of a
 * pthread_cond_timedwait on a condition variable set to CLOCK_MONOTONIC. */
struct timespec clock_mono_deadline(long ms);

#endif
