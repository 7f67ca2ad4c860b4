/* SPDX-License-Identifier: Apache-2.0 */
/* The event loop proper: per-fd interest and callbacks, a short timer list,
 * cross-thread wakeup through an eventfd. The fd table grows on demand up to
 * the set size, so an idle proxy does not pay for RLIMIT_NOFILE slots. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ae.h"
#include "ae_backend.h"
#include "xalloc.h"

#define AE_MAX_FIRED 512

struct ae_file {
    int mask;
    ae_file_proc *proc;
    void *data;
};

struct ae_timer {
    long long id;
    uint64_t when_ms;
    ae_timer_proc *proc;
    void *data;
    int deleted;
    struct ae_timer *next;
};

struct ae_loop {
    struct ae_backend *backend;
    int setsize;
    int nfiles;               /* slots allocated in files */
    struct ae_file *files;
    struct ae_timer *timers;  /* unsorted; a loop holds only a handful */
    long long next_timer_id;
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
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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
    loop->next_timer_id = 1;
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
    while (loop->timers) {
        struct ae_timer *t = loop->timers;
        loop->timers = t->next;
        free(t);
    }
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
}

int ae_file_mask(struct ae_loop *loop, int fd)
{
    if (fd < 0 || fd >= loop->nfiles)
        return AE_NONE;
    return loop->files[fd].mask;
}

long long ae_timer_add(struct ae_loop *loop, long ms, ae_timer_proc *proc, void *data)
{
    struct ae_timer *t = xcalloc(1, sizeof *t);
    t->id = loop->next_timer_id++;
    t->when_ms = ae_clock_ms() + (uint64_t)(ms < 0 ? 0 : ms);
    t->proc = proc;
    t->data = data;
    t->next = loop->timers;
    loop->timers = t;
    return t->id;
}

void ae_timer_del(struct ae_loop *loop, long long id)
{
    for (struct ae_timer *t = loop->timers; t; t = t->next)
        if (t->id == id)
            t->deleted = 1; /* freed by the loop, never under a running callback */
}

static int ae_timers_wait_ms(struct ae_loop *loop)
{
    long best = -1;
    for (struct ae_timer *t = loop->timers; t; t = t->next) {
        if (t->deleted)
            continue;
        long d = t->when_ms > loop->now_ms ? (long)(t->when_ms - loop->now_ms) : 0;
        if (best < 0 || d < best)
            best = d;
    }
    return (int)best;
}

static void ae_timers_run(struct ae_loop *loop)
{
    /* Timers added by callbacks go to the head and are not seen this round. */
    struct ae_timer **pp = &loop->timers;
    for (struct ae_timer *t = loop->timers; t; t = t->next) {
        if (t->deleted || t->when_ms > loop->now_ms)
            continue;
        long again = t->proc(loop, t->id, t->data);
        if (again < 0)
            t->deleted = 1;
        else
            t->when_ms = loop->now_ms + (uint64_t)again;
    }
    while (*pp) {
        struct ae_timer *t = *pp;
        if (t->deleted) {
            *pp = t->next;
            free(t);
        } else {
            pp = &t->next;
        }
    }
}

void ae_run(struct ae_loop *loop)
{
    loop->stop = 0;
    while (!loop->stop) {
        if (loop->before_proc)
            loop->before_proc(loop, loop->before_data);
        int n = ae_backend_poll(loop->backend, loop->fired, AE_MAX_FIRED, ae_timers_wait_ms(loop));
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
