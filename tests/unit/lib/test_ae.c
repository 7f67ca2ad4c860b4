/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/ae.c and its epoll backend: file events with masks,
 * interest changes, timers (one-shot, re-armed, deleted), the before-poll
 * hook and a wakeup from another thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "ae.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_and_timers),
        cmocka_unit_test(test_wakeup_from_another_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
