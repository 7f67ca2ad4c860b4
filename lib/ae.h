/* SPDX-License-Identifier: Apache-2.0 */
/* A tiny event loop in the style of Redis `ae`: file events with a read/write
 * mask and one callback per direction, timers in a heap, run/stop. The polling
 * backend (epoll) lives alone in ae_epoll.c behind ae_backend.h; nothing else
 * in the proxy calls epoll. One loop belongs to one thread: every function
 * except ae_wakeup must be called on the loop's thread (or before it runs). */
#ifndef WEFT_PROXY_AE_H
#define WEFT_PROXY_AE_H
#include <stdint.h>

#define AE_NONE 0
#define AE_READABLE 1
#define AE_WRITABLE 2

struct ae_loop;
typedef void ae_file_proc(struct ae_loop *loop, int fd, void *data, int mask);
/* Returns the next delay in ms to re-arm, or -1 to delete the timer. */
typedef long ae_timer_proc(struct ae_loop *loop, long long id, void *data);

/* setsize: the highest fd + 1 the loop will hold; 0 or -errno. */
struct ae_loop *ae_loop_new(int setsize);
void ae_loop_free(struct ae_loop *loop);
/* Registers interest in mask for fd (adding to what is there); both
 * directions share one data pointer. 0 or -errno (-ERANGE past setsize). */
int ae_file_add(struct ae_loop *loop, int fd, int mask, ae_file_proc *proc, void *data);
/* Removes mask from fd's interest; with all bits gone the fd leaves the loop. */
void ae_file_del(struct ae_loop *loop, int fd, int mask);
/* Sets fd's interest to exactly mask (adding or removing bits); 0 or -errno. */
int ae_file_set(struct ae_loop *loop, int fd, int mask, ae_file_proc *proc, void *data);
int ae_file_mask(struct ae_loop *loop, int fd);
/* Has fd's callback called with mask at the end of this round, without
 * asking the poller: for a socket known writable, that saves the two
 * epoll_ctl calls and the extra wait of registering writability for one
 * burst of output. Events asked for during that delivery come the next
 * round. 0; -ENOENT when fd is not in the loop; -EAGAIN when asked from the
 * callback of fd's own delivery (the caller registers with the poller then,
 * so a callback that does not make progress waits for the poller). Removing
 * the fd from the loop cancels them. */
int ae_file_soon(struct ae_loop *loop, int fd, int mask);

/* Fires once after ms milliseconds (then as often as the callback re-arms
 * it); returns an id > 0. Timers are a heap: each costs O(log n) to add,
 * delete or fire, so one per connection deadline is cheap. Timers due in the
 * same round run in the order of their deadlines, then of arming. */
long long ae_timer_add(struct ae_loop *loop, long ms, ae_timer_proc *proc, void *data);
/* Cancels a timer; an id that already fired (without re-arming), was
 * deleted, or is 0 is ignored, even when its slot holds a newer timer. Safe
 * from any callback, including the timer's own. */
void ae_timer_del(struct ae_loop *loop, long long id);
/* 1 while the timer is armed (or running and not deleted). */
int ae_timer_pending(struct ae_loop *loop, long long id);

/* Runs until ae_stop. */
void ae_run(struct ae_loop *loop);
void ae_stop(struct ae_loop *loop);
/* Any thread: makes a blocked ae_run return to its loop promptly and call
 * the wakeup callback (set with ae_set_wakeup) on the loop's thread. */
void ae_wakeup(struct ae_loop *loop);
void ae_set_wakeup(struct ae_loop *loop, void (*proc)(struct ae_loop *, void *), void *data);
/* Called on the loop's thread before each wait: deferred work such as
 * freeing connections that callbacks of this round closed. */
void ae_set_before_poll(struct ae_loop *loop, void (*proc)(struct ae_loop *, void *), void *data);
/* Monotonic milliseconds, cached once per loop iteration. */
uint64_t ae_now_ms(struct ae_loop *loop);
void *ae_loop_data(struct ae_loop *loop);
void ae_set_loop_data(struct ae_loop *loop, void *data);

#endif
