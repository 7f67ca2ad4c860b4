/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of lib/ae.c and its epoll backend: file events with masks,
 * interest changes, timers (one-shot, re-armed, deleted; the heap's order
 * over thousands, stale ids, deletion from callbacks, zero-delay re-arming
 * that must not starve file events), the before-poll hook, a wakeup from
 * another thread, and events delivered without the poller (ae_file_soon). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "ae.h"
#include "clock.h"

struct state {
    int reads, writes, timer_runs, rearmed_runs, deleted_runs, wakeups, before;
    int fds[2];
    long long deleted_id;
};

static void on_file(struct ae_loop *loop, int fd, void *data, int mask)
{
    struct state *st = data;
    char c;
    if (mask & AE_READABLE) {
        assert_int_equal(read(fd, &c, 1), 1);
        st->reads++;
        ae_file_del(loop, fd, AE_READABLE);
    }
    if (mask & AE_WRITABLE) {
        st->writes++;
        ae_file_del(loop, fd, AE_WRITABLE);
    }
}

static long on_once(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    ((struct state *)data)->timer_runs++;
    return -1;
}

static long on_rearm(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    struct state *st = data;
    if (++st->rearmed_runs == 3) {
        ae_stop(loop);
        return -1;
    }
    return 5;
}

static long on_deleted(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    ((struct state *)data)->deleted_runs++;
    return -1;
}

static void on_before(struct ae_loop *loop, void *data)
{
    (void)loop;
    ((struct state *)data)->before++;
}

static void test_files_and_timers(void **state)
{
    (void)state;
    struct state st = {0};
    struct ae_loop *loop = ae_loop_new(1024);
    assert_non_null(loop);
    assert_int_equal(pipe2(st.fds, O_NONBLOCK), 0);
    assert_int_equal(ae_file_add(loop, st.fds[0], AE_READABLE, on_file, &st), 0);
    assert_int_equal(ae_file_add(loop, st.fds[1], AE_WRITABLE, on_file, &st), 0);
    assert_int_equal(ae_file_mask(loop, st.fds[0]), AE_READABLE);
    assert_int_equal(ae_file_add(loop, 5000, AE_READABLE, on_file, &st), -ERANGE);
    assert_int_equal(write(st.fds[1], "x", 1), 1);
    ae_timer_add(loop, 1, on_once, &st);
    long long del = ae_timer_add(loop, 2, on_deleted, &st);
    ae_timer_del(loop, del);
    ae_timer_add(loop, 5, on_rearm, &st);
    ae_set_before_poll(loop, on_before, &st);
    ae_run(loop);
    assert_int_equal(st.reads, 1);
    assert_int_equal(st.writes, 1);
    assert_int_equal(st.timer_runs, 1);
    assert_int_equal(st.rearmed_runs, 3);
    assert_int_equal(st.deleted_runs, 0);
    assert_true(st.before >= 3);
    assert_int_equal(ae_file_mask(loop, st.fds[0]), AE_NONE);
    /* ae_file_set replaces the interest exactly. */
    assert_int_equal(ae_file_set(loop, st.fds[1], AE_WRITABLE | AE_READABLE, on_file, &st), 0);
    assert_int_equal(ae_file_mask(loop, st.fds[1]), AE_WRITABLE | AE_READABLE);
    assert_int_equal(ae_file_set(loop, st.fds[1], AE_NONE, on_file, &st), 0);
    assert_int_equal(ae_file_mask(loop, st.fds[1]), AE_NONE);
    close(st.fds[0]);
    close(st.fds[1]);
    ae_loop_free(loop);
}

static void on_wakeup(struct ae_loop *loop, void *data)
{
    ((struct state *)data)->wakeups++;
    ae_stop(loop);
}

static void *waker(void *arg)
{
    usleep(20000);
    ae_wakeup(arg);
    return NULL;
}

static void test_wakeup_from_another_thread(void **state)
{
    (void)state;
    struct state st = {0};
    struct ae_loop *loop = ae_loop_new(64);
    ae_set_wakeup(loop, on_wakeup, &st);
    int x = 7;
    ae_set_loop_data(loop, &x);
    assert_ptr_equal(ae_loop_data(loop), &x);
    pthread_t t;
    pthread_create(&t, NULL, waker, loop);
    uint64_t t0 = ae_now_ms(loop);
    ae_run(loop); /* no timers, no files: only the wakeup can end it */
    pthread_join(t, NULL);
    assert_int_equal(st.wakeups, 1);
    assert_true(ae_now_ms(loop) >= t0 + 10);
    ae_loop_free(loop);
}


/* ---- the timer heap ---- */

#define NORDER 3000

struct order {
    struct ae_loop *loop;
    uint64_t lo[NORDER], hi[NORDER], fired_at[NORDER]; /* the deadline lies in [lo, hi] */
    int fired_seq[NORDER];
    long long id[NORDER];
    int nfired, expect;
};

struct order_arg {
    struct order *o;
    int i;
};

static long on_order(struct ae_loop *loop, long long id, void *data)
{
    struct order_arg *a = data;
    struct order *o = a->o;
    assert_int_equal(id, o->id[a->i]);
    o->fired_at[a->i] = ae_now_ms(loop);
    o->fired_seq[a->i] = o->nfired++;
    if (o->nfired == o->expect)
        ae_stop(loop);
    return -1;
}

static void test_timer_heap_order(void **state)
{
    (void)state;
    static struct order o;
    static struct order_arg args[NORDER];
    memset(&o, 0, sizeof o);
    o.loop = ae_loop_new(64);
    srand(7);
    for (int i = 0; i < NORDER; i++) {
        long ms = rand() % 60;
        args[i] = (struct order_arg){&o, i};
        o.lo[i] = clock_mono_ms() + (uint64_t)ms;
        o.id[i] = ae_timer_add(o.loop, ms, on_order, &args[i]);
        o.hi[i] = clock_mono_ms() + (uint64_t)ms;
        assert_true(o.id[i] > 0);
        o.fired_seq[i] = -1;
    }
    /* Delete every third, from anywhere in the heap. */
    for (int i = 0; i < NORDER; i += 3) {
        assert_int_equal(ae_timer_pending(o.loop, o.id[i]), 1);
        ae_timer_del(o.loop, o.id[i]);
        assert_int_equal(ae_timer_pending(o.loop, o.id[i]), 0);
        ae_timer_del(o.loop, o.id[i]); /* twice is harmless */
    }
    o.expect = NORDER - (NORDER + 2) / 3;
    ae_run(o.loop);
    assert_int_equal(o.nfired, o.expect);
    for (int i = 0; i < NORDER; i++) {
        if (i % 3 == 0) {
            assert_int_equal(o.fired_seq[i], -1);
            continue;
        }
        assert_true(o.fired_at[i] >= o.lo[i]); /* never early */
        for (int j = 0; j < NORDER; j++) {
            if (j % 3 == 0 || i == j)
                continue;
            /* An earlier deadline (or the same one, armed earlier) ran first. */
            if (o.hi[j] < o.lo[i] || (o.lo[j] == o.hi[j] && o.lo[i] == o.hi[i] && o.lo[j] == o.lo[i] && j < i))
                assert_true(o.fired_seq[j] < o.fired_seq[i]);
        }
    }
    ae_loop_free(o.loop);
}

static long on_count(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    (*(int *)data)++;
    return -1;
}

static long on_stop(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    (void)data;
    ae_stop(loop);
    return -1;
}

static void test_timer_stale_id(void **state)
{
    (void)state;
    struct ae_loop *loop = ae_loop_new(64);
    int first = 0, second = 0;
    long long a = ae_timer_add(loop, 0, on_count, &first);
    ae_timer_add(loop, 5, on_stop, NULL);
    ae_run(loop);
    assert_int_equal(first, 1);
    assert_int_equal(ae_timer_pending(loop, a), 0);
    /* The freed slot is reused; the old id must not reach the new timer. */
    long long b = ae_timer_add(loop, 0, on_count, &second);
    assert_int_not_equal(a, b);
    ae_timer_del(loop, a);
    ae_timer_del(loop, 0);
    ae_timer_del(loop, -3);
    ae_timer_del(loop, (long long)1 << 40);
    assert_int_equal(ae_timer_pending(loop, b), 1);
    ae_timer_add(loop, 5, on_stop, NULL);
    ae_run(loop);
    assert_int_equal(second, 1);
    ae_loop_free(loop);
}

struct cancel {
    long long victim, self;
    int victim_runs, self_runs;
};

static long on_cancel_other(struct ae_loop *loop, long long id, void *data)
{
    struct cancel *c = data;
    ae_timer_del(loop, c->victim); /* due in this same round */
    ae_timer_del(loop, id);        /* and itself: the re-arm below is void */
    c->self_runs++;
    return 1;
}

static long on_victim(struct ae_loop *loop, long long id, void *data)
{
    (void)loop;
    (void)id;
    ((struct cancel *)data)->victim_runs++;
    return -1;
}

static void test_timer_delete_from_callback(void **state)
{
    (void)state;
    struct ae_loop *loop = ae_loop_new(64);
    struct cancel c = {0};
    c.self = ae_timer_add(loop, 0, on_cancel_other, &c);
    c.victim = ae_timer_add(loop, 0, on_victim, &c); /* same deadline, armed later */
    ae_timer_add(loop, 30, on_stop, NULL);
    ae_run(loop);
    assert_int_equal(c.self_runs, 1);
    assert_int_equal(c.victim_runs, 0);
    assert_int_equal(ae_timer_pending(loop, c.self), 0);
    ae_loop_free(loop);
}

struct spin {
    int fds[2];
    int timer_runs, reads;
};

static long on_spin(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    struct spin *sp = data;
    if (++sp->timer_runs == 50) {
        ae_stop(loop);
        return -1;
    }
    return 0; /* due again at once */
}

static void on_spin_read(struct ae_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)mask;
    struct spin *sp = data;
    char c;
    if (read(fd, &c, 1) == 1)
        sp->reads++;
    assert_int_equal(write(sp->fds[1], "y", 1), 1);
}

static void test_timer_zero_delay_does_not_starve_files(void **state)
{
    (void)state;
    struct ae_loop *loop = ae_loop_new(64);
    struct spin sp = {0};
    assert_int_equal(pipe2(sp.fds, O_NONBLOCK), 0);
    assert_int_equal(write(sp.fds[1], "x", 1), 1);
    assert_int_equal(ae_file_add(loop, sp.fds[0], AE_READABLE, on_spin_read, &sp), 0);
    ae_timer_add(loop, 0, on_spin, &sp);
    ae_run(loop);
    assert_int_equal(sp.timer_runs, 50);
    /* One timer run per poll round, and the pipe is readable every round. */
    assert_true(sp.reads >= 49);
    close(sp.fds[0]);
    close(sp.fds[1]);
    ae_loop_free(loop);
}

static void test_timer_many_added_and_deleted(void **state)
{
    (void)state;
    enum { N = 100000 };
    struct ae_loop *loop = ae_loop_new(64);
    static long long ids[N];
    int runs = 0;
    for (int i = 0; i < N; i++)
        ids[i] = ae_timer_add(loop, 1000 + i % 977, on_count, &runs);
    srand(11);
    for (int i = N - 1; i > 0; i--) { /* delete in a random order */
        int j = rand() % (i + 1);
        long long t = ids[i];
        ids[i] = ids[j];
        ids[j] = t;
    }
    for (int i = 0; i < N; i++)
        ae_timer_del(loop, ids[i]);
    for (int i = 0; i < N; i++)
        assert_int_equal(ae_timer_pending(loop, ids[i]), 0);
    ae_timer_add(loop, 1, on_stop, NULL);
    ae_run(loop); /* returns at once: nothing else is left to wait for */
    assert_int_equal(runs, 0);
    ae_loop_free(loop);
}

struct soon_state {
    struct ae_loop *loop;
    int a, b;              /* read ends of two idle pipes, registered readable */
    int a_calls, b_calls, a_mask, self_again, before;
};

static void soon_on_b(struct ae_loop *loop, int fd, void *data, int mask)
{
    (void)fd;
    struct soon_state *st = data;
    assert_int_equal(mask, AE_WRITABLE);
    st->b_calls++;
    ae_stop(loop);
}

static void soon_on_a(struct ae_loop *loop, int fd, void *data, int mask)
{
    struct soon_state *st = data;
    st->a_calls++;
    st->a_mask = mask;
    st->self_again = ae_file_soon(loop, fd, AE_WRITABLE);
    assert_int_equal(ae_file_soon(loop, st->b, AE_WRITABLE), 0);
}

static void soon_before(struct ae_loop *loop, void *data)
{
    (void)loop;
    ((struct soon_state *)data)->before++;
}

static long soon_give_up(struct ae_loop *loop, long long id, void *data)
{
    (void)id;
    (void)data;
    ae_stop(loop);
    return -1;
}

/* An fd's asked-for event arrives at the end of the round, once however often
 * it was asked; asking from its own delivery is refused (the caller then
 * registers with the poller); one asked for during a delivery comes the next
 * round, whose wait does not block; removing the fd cancels its event. */
static void test_soon_events(void **state)
{
    (void)state;
    int pa[2], pb[2];
    assert_int_equal(pipe(pa), 0);
    assert_int_equal(pipe(pb), 0);
    struct ae_loop *loop = ae_loop_new(1024);
    struct soon_state st = {.loop = loop, .a = pa[0], .b = pb[0]};
    assert_int_equal(ae_file_soon(loop, st.a, AE_WRITABLE), -ENOENT);
    assert_int_equal(ae_file_add(loop, st.a, AE_READABLE, soon_on_a, &st), 0);
    assert_int_equal(ae_file_add(loop, st.b, AE_READABLE, soon_on_b, &st), 0);
    ae_set_before_poll(loop, soon_before, &st);
    assert_int_equal(ae_file_soon(loop, st.a, AE_WRITABLE), 0);
    assert_int_equal(ae_file_soon(loop, st.a, AE_WRITABLE), 0);
    ae_timer_add(loop, 5000, soon_give_up, NULL);
    uint64_t t0 = clock_mono_ms();
    ae_run(loop);
    assert_true(clock_mono_ms() - t0 < 2500); /* the idle pipes never woke the poller */
    assert_int_equal(st.a_calls, 1);
    assert_int_equal(st.a_mask, AE_WRITABLE);
    assert_int_equal(st.self_again, -EAGAIN);
    assert_int_equal(st.b_calls, 1);
    assert_int_equal(st.before, 2);

    assert_int_equal(ae_file_soon(loop, st.b, AE_WRITABLE), 0);
    ae_file_del(loop, st.b, AE_READABLE);
    assert_int_equal(ae_file_soon(loop, st.b, AE_WRITABLE), -ENOENT);
    ae_timer_add(loop, 20, soon_give_up, NULL);
    ae_run(loop);
    assert_int_equal(st.b_calls, 1);
    ae_loop_free(loop);
    for (int i = 0; i < 2; i++) {
        close(pa[i]);
        close(pb[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_and_timers),
        cmocka_unit_test(test_wakeup_from_another_thread),
        cmocka_unit_test(test_timer_heap_order),
        cmocka_unit_test(test_timer_stale_id),
        cmocka_unit_test(test_timer_delete_from_callback),
        cmocka_unit_test(test_timer_zero_delay_does_not_starve_files),
        cmocka_unit_test(test_timer_many_added_and_deleted),
        cmocka_unit_test(test_soon_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
