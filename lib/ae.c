/* SPDX-License-Identifier: Apache-2.0 */
/* The event loop proper: per-fd interest and callbacks,
 * timers in a heap, cross-thread wakeup through an eventfd. The fd table grows on demand up to
 * the set size, so an idle proxy does not pay for RLIMIT_NOFILE slots. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ae.h"
#include "ae_backend.h"
#include "clock.h"
#include "xalloc.h"

#define AE_MAX_FIRED 512

struct ae_file {
    int mask;
    int soon;       /* events ae_file_soon asked for, not yet delivered */
    ae_file_proc *proc;
    void *data;
};

/* Timers live in a slot table (an id names a slot and its generation, so a
 * stale id never cancels the slot's next timer) and are ordered by a binary
 * min-heap of slot numbers on (when, seq): adding, cancelling and firing are
 * O(log n) and the loop's wait is the heap's top. seq keeps timers due at the
 * same millisecond in the order they were armed. */
struct ae_timer {
    uint64_t when_ms;
    uint64_t seq;
    ae_timer_proc *proc;
    void *data;
    uint32_t gen;        /* bumped when the slot is freed */
    int heap;            /* index in the heap; AE_TIMER_FREE / _FIRING otherwise */
    int cancelled;       /* deleted while its callback runs */
    int next_free;
};

#define AE_TIMER_FREE (-1)
#define AE_TIMER_FIRING (-2)

struct ae_loop {
    struct ae_backend *backend;
    int setsize;
    int nfiles;               /* slots allocated in files */
    struct ae_file *files;
    struct ae_timer *timers;  /* slots */
    int ntimers, free_timer;  /* slots allocated; head of the free list (-1: none) */
    int *heap;                /* slot numbers, a min-heap on (when_ms, seq) */
    int nheap;
    int *due;                 /* this round's expired slots */
    int *soon, *soon_next;    /* fds with events to deliver this round; those asked for while delivering */
    int nsoon_next, soon_cap, soon_next_cap;
    int soon_current;         /* the fd whose soon events are being delivered, -1 */
    uint64_t timer_seq;
    int stop;
    uint64_t now_ms;
    int wake_fd;
    void (*wake_proc)(struct ae_loop *, void *);
    void *wake_data;
    void (*before_proc)(struct ae_loop *, void *);
    void *before_data;
    void *data;
    struct ae_fired fired[AE_MAX_FIRED];
};

static uint64_t ae_clock_ms(void)
{
    return clock_mono_ms();
}

static void ae_wake_read(struct ae_loop *loop, int fd, void *data, int mask)
{
    (void)data;
    (void)mask;
    uint64_t v;
    while (read(fd, &v, sizeof v) == (ssize_t)sizeof v) {
    }
    if (loop->wake_proc)
        loop->wake_proc(loop, loop->wake_data);
}

struct ae_loop *ae_loop_new(int setsize)
{
    struct ae_loop *loop = xcalloc(1, sizeof *loop);
    loop->setsize = setsize;
    loop->backend = ae_backend_new(setsize);
    loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!loop->backend || loop->wake_fd < 0)
        goto fail;
    loop->now_ms = ae_clock_ms();
    loop->free_timer = -1;
    loop->soon_current = -1;
    if (ae_file_add(loop, loop->wake_fd, AE_READABLE, ae_wake_read, NULL) < 0)
        goto fail;
    return loop;
fail:
    ae_loop_free(loop);
    return NULL;
}

void ae_loop_free(struct ae_loop *loop)
{
    if (!loop)
        return;
    free(loop->timers);
    free(loop->heap);
    free(loop->due);
    free(loop->soon);
    free(loop->soon_next);
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
    ae_backend_free(loop->backend);
    free(loop->files);
    free(loop);
}

static int ae_file_slot(struct ae_loop *loop, int fd)
{
    if (fd < 0 || fd >= loop->setsize)
        return -ERANGE;
    if (fd >= loop->nfiles) {
        int n = loop->nfiles ? loop->nfiles : 64;
        while (n <= fd)
            n *= 2;
        if (n > loop->setsize)
            n = loop->setsize;
        loop->files = xrealloc(loop->files, (size_t)n * sizeof *loop->files);
        memset(loop->files + loop->nfiles, 0, (size_t)(n - loop->nfiles) * sizeof *loop->files);
        loop->nfiles = n;
    }
    return 0;
}

int ae_file_set(struct ae_loop *loop, int fd, int mask, ae_file_proc *proc, void *data)
{
    int r = ae_file_slot(loop, fd);
    if (r < 0)
        return r;
    struct ae_file *f = &loop->files[fd];
    r = ae_backend_set(loop->backend, fd, f->mask, mask);
    if (r < 0)
        return r;
    f->mask = mask;
    if (mask == AE_NONE)
        f->soon = 0;
    f->proc = proc;
    f->data = data;
    return 0;
}

int ae_file_add(struct ae_loop *loop, int fd, int mask, ae_file_proc *proc, void *data)
{
    int r = ae_file_slot(loop, fd);
    if (r < 0)
        return r;
    return ae_file_set(loop, fd, loop->files[fd].mask | mask, proc, data);
}

void ae_file_del(struct ae_loop *loop, int fd, int mask)
{
    if (fd < 0 || fd >= loop->nfiles)
        return;
    struct ae_file *f = &loop->files[fd];
    int nm = f->mask & ~mask;
    if (ae_backend_set(loop->backend, fd, f->mask, nm) == 0)
        f->mask = nm;
    if (f->mask == AE_NONE)
        f->soon = 0;
}

int ae_file_soon(struct ae_loop *loop, int fd, int mask)
{
    if (fd < 0 || fd >= loop->nfiles || loop->files[fd].mask == AE_NONE)
        return -ENOENT;
    if (fd == loop->soon_current)
        return -EAGAIN;
    struct ae_file *f = &loop->files[fd];
    if (!f->soon) {
        if (loop->nsoon_next == loop->soon_next_cap) {
            loop->soon_next_cap = loop->soon_next_cap ? 2 * loop->soon_next_cap : 64;
            loop->soon_next = xrealloc(loop->soon_next, (size_t)loop->soon_next_cap * sizeof *loop->soon_next);
        }
        loop->soon_next[loop->nsoon_next++] = fd;
    }
    f->soon |= mask;
    return 0;
}

/* Delivers the events asked for so far; those asked for meanwhile wait for
 * the next round (whose wait then does not block), so a callback that keeps
 * asking cannot hold the loop. */
static void ae_soon_run(struct ae_loop *loop)
{
    int n = loop->nsoon_next;
    if (!n)
        return;
    int *list = loop->soon_next, cap = loop->soon_next_cap;
    loop->soon_next = loop->soon;
    loop->soon_next_cap = loop->soon_cap;
    loop->soon = list;
    loop->soon_cap = cap;
    loop->nsoon_next = 0;
    for (int i = 0; i < n; i++) {
        int fd = list[i];
        struct ae_file *f = &loop->files[fd];
        int m = f->soon;
        f->soon = 0;
        if (!m || !f->proc)
            continue;
        loop->soon_current = fd;
        f->proc(loop, fd, f->data, m);
        loop->soon_current = -1;
    }
}

int ae_file_mask(struct ae_loop *loop, int fd)
{
    if (fd < 0 || fd >= loop->nfiles)
        return AE_NONE;
    return loop->files[fd].mask;
}

static int ae_timer_less(const struct ae_loop *loop, int a, int b)
{
    const struct ae_timer *x = &loop->timers[a], *y = &loop->timers[b];
    return x->when_ms < y->when_ms || (x->when_ms == y->when_ms && x->seq < y->seq);
}

static void ae_heap_place(struct ae_loop *loop, int i, int slot)
{
    loop->heap[i] = slot;
    loop->timers[slot].heap = i;
}

static void ae_heap_up(struct ae_loop *loop, int i)
{
    int slot = loop->heap[i];
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!ae_timer_less(loop, slot, loop->heap[parent]))
            break;
        ae_heap_place(loop, i, loop->heap[parent]);
        i = parent;
    }
    ae_heap_place(loop, i, slot);
}

static void ae_heap_down(struct ae_loop *loop, int i)
{
    int slot = loop->heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= loop->nheap)
            break;
        if (c + 1 < loop->nheap && ae_timer_less(loop, loop->heap[c + 1], loop->heap[c]))
            c++;
        if (!ae_timer_less(loop, loop->heap[c], slot))
            break;
        ae_heap_place(loop, i, loop->heap[c]);
        i = c;
    }
    ae_heap_place(loop, i, slot);
}

static void ae_heap_push(struct ae_loop *loop, int slot)
{
    loop->timers[slot].seq = loop->timer_seq++;
    loop->nheap++;
    ae_heap_place(loop, loop->nheap - 1, slot);
    ae_heap_up(loop, loop->nheap - 1);
}

static void ae_heap_remove(struct ae_loop *loop, int i)
{
    int last = loop->heap[--loop->nheap];
    if (i == loop->nheap)
        return;
    ae_heap_place(loop, i, last);
    if (i > 0 && ae_timer_less(loop, last, loop->heap[(i - 1) / 2]))
        ae_heap_up(loop, i);
    else
        ae_heap_down(loop, i);
}

static void ae_timer_free_slot(struct ae_loop *loop, int slot)
{
    struct ae_timer *t = &loop->timers[slot];
    t->gen++;
    t->heap = AE_TIMER_FREE;
    t->proc = NULL;
    t->data = NULL;
    t->next_free = loop->free_timer;
    loop->free_timer = slot;
}

long long ae_timer_add(struct ae_loop *loop, long ms, ae_timer_proc *proc, void *data)
{
    if (loop->free_timer < 0) {
        int n = loop->ntimers ? loop->ntimers * 2 : 16;
        loop->timers = xrealloc(loop->timers, (size_t)n * sizeof *loop->timers);
        loop->heap = xrealloc(loop->heap, (size_t)n * sizeof *loop->heap);
        loop->due = xrealloc(loop->due, (size_t)n * sizeof *loop->due);
        for (int i = n - 1; i >= loop->ntimers; i--) {
            loop->timers[i] = (struct ae_timer){.heap = AE_TIMER_FREE, .gen = 1, .next_free = loop->free_timer};
            loop->free_timer = i;
        }
        loop->ntimers = n;
    }
    int slot = loop->free_timer;
    struct ae_timer *t = &loop->timers[slot];
    loop->free_timer = t->next_free;
    t->when_ms = ae_clock_ms() + (uint64_t)(ms < 0 ? 0 : ms);
    t->proc = proc;
    t->data = data;
    t->cancelled = 0;
    ae_heap_push(loop, slot);
    /* ids are > 0: the generation (from 1) in the high half, the slot below. */
    return ((long long)(t->gen & 0x7fffffffu) << 32) | (long long)(uint32_t)slot;
}

/* The slot an id names while it is armed or firing, or -1. */
static int ae_timer_slot(struct ae_loop *loop, long long id)
{
    if (id <= 0)
        return -1;
    int slot = (int)(uint32_t)(id & 0xffffffffu);
    uint32_t gen = (uint32_t)(id >> 32);
    if (slot >= loop->ntimers || (loop->timers[slot].gen & 0x7fffffffu) != gen ||
        loop->timers[slot].heap == AE_TIMER_FREE)
        return -1;
    return slot;
}

void ae_timer_del(struct ae_loop *loop, long long id)
{
    int slot = ae_timer_slot(loop, id);
    if (slot < 0)
        return;
    struct ae_timer *t = &loop->timers[slot];
    if (t->heap == AE_TIMER_FIRING) {
        t->cancelled = 1; /* freed once its callback (or this round) is done */
        return;
    }
    ae_heap_remove(loop, t->heap);
    ae_timer_free_slot(loop, slot);
}

int ae_timer_pending(struct ae_loop *loop, long long id)
{
    int slot = ae_timer_slot(loop, id);
    return slot >= 0 && !loop->timers[slot].cancelled;
}

static int ae_timers_wait_ms(struct ae_loop *loop)
{
    if (!loop->nheap)
        return -1;
    const struct ae_timer *t = &loop->timers[loop->heap[0]];
    uint64_t now = ae_clock_ms();
    uint64_t d = t->when_ms > now ? t->when_ms - now : 0;
    return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

static void ae_timers_run(struct ae_loop *loop)
{
    /* Take every expired timer off the heap first: one that a callback arms
     * (or re-arms) for now runs next round, after the loop polled, so a
     * zero-delay timer cannot starve file events. */
    int ndue = 0;
    while (loop->nheap && loop->timers[loop->heap[0]].when_ms <= loop->now_ms) {
        int slot = loop->heap[0];
        ae_heap_remove(loop, 0);
        loop->timers[slot].heap = AE_TIMER_FIRING;
        loop->due[ndue++] = slot;
    }
    for (int i = 0; i < ndue; i++) {
        int slot = loop->due[i];
        struct ae_timer *t = &loop->timers[slot];
        long again = -1;
        if (!t->cancelled) {
            long long id = ((long long)(t->gen & 0x7fffffffu) << 32) | (long long)(uint32_t)slot;
            again = t->proc(loop, id, t->data);
            t = &loop->timers[slot]; /* the callback may have grown the table */
        }
        if (again < 0 || t->cancelled) {
            ae_timer_free_slot(loop, slot);
        } else {
            t->when_ms = loop->now_ms + (uint64_t)again;
            ae_heap_push(loop, slot);
        }
    }
}

void ae_run(struct ae_loop *loop)
{
    loop->stop = 0;
    while (!loop->stop) {
        if (loop->before_proc)
            loop->before_proc(loop, loop->before_data);
        int wait = loop->nsoon_next ? 0 : ae_timers_wait_ms(loop);
        int n = ae_backend_poll(loop->backend, loop->fired, AE_MAX_FIRED, wait);
        loop->now_ms = ae_clock_ms();
        for (int i = 0; i < n; i++) {
            int fd = loop->fired[i].fd;
            if (fd >= loop->nfiles)
                continue;
            /* Re-read the slot for each call: an earlier callback of this
             * round may have removed or replaced the fd. */
            struct ae_file *f = &loop->files[fd];
            int m = loop->fired[i].mask & f->mask;
            if (m && f->proc)
                f->proc(loop, fd, f->data, m);
        }
        ae_timers_run(loop);
        ae_soon_run(loop);
    }
}

void ae_stop(struct ae_loop *loop)
{
    loop->stop = 1;
}

void ae_wakeup(struct ae_loop *loop)
{
    uint64_t one = 1;
    ssize_t r = write(loop->wake_fd, &one, sizeof one);
    (void)r;
}

void ae_set_wakeup(struct ae_loop *loop, void (*proc)(struct ae_loop *, void *), void *data)
{
    loop->wake_proc = proc;
    loop->wake_data = data;
}

void ae_set_before_poll(struct ae_loop *loop, void (*proc)(struct ae_loop *, void *), void *data)
{
    loop->before_proc = proc;
    loop->before_data = data;
}

uint64_t ae_now_ms(struct ae_loop *loop)
{
    return loop->now_ms;
}

void *ae_loop_data(struct ae_loop *loop)
{
    return loop->data;
}

void ae_set_loop_data(struct ae_loop *loop, void *data)
{
    loop->data = data;
}
