/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/probes.c's answer reading (probes_read_status, which
 * wait-ready shares): answers written into a socketpair, then closed; the
 * status past 1xx interim answers, 101, and each way of getting none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probes.h"

/* Writes the pieces (NULL-terminated) and closes, then reads the status. */
static int status_of(char *why, size_t whylen, const char *const *pieces, size_t repeat_len)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        for (size_t i = 0; pieces[i]; i++) {
            (void)!write(sv[1], pieces[i], strlen(pieces[i]));
            usleep(2000);
        }
        for (size_t i = 0; i < repeat_len; i++)
            (void)!write(sv[1], "x", 1);
        _exit(0);
    }
    close(sv[1]);
    int st = probes_read_status(sv[0], NULL, why, whylen);
    close(sv[0]);
    int wst;
    waitpid(pid, &wst, 0);
    return st;
}

static void test_statuses(void **state)
{
    (void)state;
    char why[96] = "";
    const char *ok[] = {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL};
    assert_int_equal(status_of(why, sizeof why, ok, 0), 200);
    /* Split anywhere, and a status without a reason. */
    const char *split[] = {"HTTP/1", ".0 50", "3\r\nX: y\r", "\n\r\n", NULL};
    assert_int_equal(status_of(why, sizeof why, split, 0), 503);
    /* Interim answers are skipped, as the kubelet's Go client does; a 101 is an answer. */
    const char *interim[] = {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n",
                             "HTTP/1.1 404 Not Found\r\n\r\n", NULL};
    assert_int_equal(status_of(why, sizeof why, interim, 0), 404);
    const char *sw[] = {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", NULL};
    assert_int_equal(status_of(why, sizeof why, sw, 0), 101);
    /* The body does not matter, however long or never ending. */
    const char *body[] = {"HTTP/1.1 302 Found\r\n\r\n", NULL};
    assert_int_equal(status_of(why, sizeof why, body, 100000), 302);
}

static void test_no_status(void **state)
{
    (void)state;
    char why[96];
    const char *none[] = {NULL};
    assert_int_equal(status_of(why, sizeof why, none, 0), 0);
    assert_string_equal(why, "closed before a status");
    const char *partial[] = {"HTTP/1.1 200 OK\r\nX: y\r\n", NULL};
    assert_int_equal(status_of(why, sizeof why, partial, 0), 0);
    assert_string_equal(why, "closed before a status");
    const char *fold[] = {"HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", NULL};
    assert_int_equal(status_of(why, sizeof why, fold, 0), 0);
    assert_non_null(strstr(why, "obs-fold"));
    const char *junk[] = {"SSH-2.0-OpenSSH_9.2\r\n", NULL};
    assert_int_equal(status_of(why, sizeof why, junk, 0), 0);
    assert_non_null(strstr(why, "status line"));
    /* The head limit: a field that fills it, one byte past. */
    static char big[PROBES_MAX_RESPONSE_HEAD + 64];
    size_t n = (size_t)snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nX: ");
    size_t fill = PROBES_MAX_RESPONSE_HEAD - n - 4; /* then CRLF CRLF */
    memset(big + n, 'v', fill);
    memcpy(big + n + fill, "\r\n\r\n", 5);
    const char *at[] = {big, NULL};
    assert_int_equal(status_of(why, sizeof why, at, 0), 200);
    memset(big + n, 'v', fill + 1);
    memcpy(big + n + fill + 1, "\r\n\r\n", 5);
    assert_int_equal(status_of(why, sizeof why, at, 0), 0);
    assert_non_null(strstr(why, "larger than the limit"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_no_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
