/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/detect.c: the HTTP/2 preface whole, cut and broken;
 * HTTP/1.0 and 1.1 request lines of every form, cut at each byte; the early
 * opaque answer for binary and server-first-looking bytes; the request-line
 * limit at DETECT_MAX_BYTES and one byte past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"

static enum detect_result det(const char *s)
{
    return detect_protocol((const unsigned char *)s, strlen(s));
}

static void test_h2_preface(void **state)
{
    (void)state;
    static const char pre[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert_int_equal(detect_protocol((const unsigned char *)pre, 24), DETECT_H2);
    for (size_t k = 0; k < 24; k++)
        assert_int_equal(detect_protocol((const unsigned char *)pre, k), DETECT_NEED_MORE);
    /* Frames after it do not matter. */
    assert_int_equal(detect_protocol((const unsigned char *)"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4", 28), DETECT_H2);
    /* Diverging after the request-line-shaped part is not HTTP/1 either. */
    assert_int_equal(det("PRI * HTTP/2.0\r\n\r\nXM"), DETECT_OPAQUE);
    assert_int_equal(det("PRI * HTTP/2.1"), DETECT_OPAQUE);
}

static void test_http1_lines(void **state)
{
    (void)state;
    const char *good[] = {
        "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /a/b?c=d&e HTTP/1.0\r\n",
        "OPTIONS * HTTP/1.1\r\n",
        "CONNECT db.example:443 HTTP/1.1\r\n",
        "GET http://a.example/x HTTP/1.1\r\n",
        "\r\nGET / HTTP/1.1\r\n",           /* an empty line first (RFC 9112 2.2) */
        "M-SEARCH /x HTTP/1.1\r\n",         /* any token is a method */
        "GET / HTTP/1.9\r\n",               /* 1.x reads as 1.1 */
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        assert_int_equal(det(good[i]), DETECT_HTTP1);
        /* Every cut before the line's end waits. */
        const char *lf = strstr(good[i], "HTTP/1.");
        size_t end = (size_t)(strchr(lf, '\n') - good[i]) + 1;
        for (size_t k = 0; k < end; k++)
            assert_int_equal(detect_protocol((const unsigned char *)good[i], k), DETECT_NEED_MORE);
    }
}

static void test_opaque_early(void **state)
{
    (void)state;
    const char *bad[] = {
        "\x16\x03\x01\x00\xa5\x01", /* a TLS ClientHello: decided on its first byte */
        "SSH-2.0-OpenSSH_9.2\r\n",   /* a token, but no SP before the LF */
        "*1\r\n$4\r\nPING\r\n",      /* Redis */
        "GET  / HTTP/1.1\r\n",       /* two spaces */
        "GET / HTTP/2\r\n",
        "GET / HTTP/1.1\n",          /* bare LF */
        "GET / HTTP/1.1\rX",
        "GET /\x7f HTTP/1.1\r\n",
        "G(T / HTTP/1.1\r\n",
        " GET / HTTP/1.1\r\n",
        "\r\r",
        "GET / http/1.1\r\n",
        "GET / HTTP/1.12\r\n",
        "GET * HTTP/1.1\r\n",        /* shaped like one, but lib/http1 allows "*" for OPTIONS only */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(det(bad[i]), DETECT_OPAQUE);
    assert_int_equal(detect_protocol((const unsigned char *)"\0", 1), DETECT_OPAQUE);
    assert_int_equal(detect_protocol((const unsigned char *)"", 0), DETECT_NEED_MORE);
    assert_int_equal(det("GET"), DETECT_NEED_MORE);
    assert_int_equal(det("SSH-2.0-Open"), DETECT_NEED_MORE); /* could still be a method */
}

/* "GET /aaaa... HTTP/1.1\r\n" of exactly len bytes. */
static char *line_of(size_t len)
{
    char *s = malloc(len + 1);
    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', len - 5 - 11);
    memcpy(s + len - 11, " HTTP/1.1\r\n", 11);
    s[len] = '\0';
    return s;
}

static void test_request_line_limit(void **state)
{
    (void)state;
    char *at = line_of(DETECT_MAX_BYTES);
    assert_int_equal(detect_protocol((const unsigned char *)at, DETECT_MAX_BYTES), DETECT_HTTP1);
    assert_int_equal(detect_protocol((const unsigned char *)at, DETECT_MAX_BYTES - 1), DETECT_NEED_MORE);
    char *past = line_of(DETECT_MAX_BYTES + 1);
    assert_int_equal(detect_protocol((const unsigned char *)past, DETECT_MAX_BYTES + 1), DETECT_OPAQUE);
    /* The limit alone decides: the same prefix is opaque however long the input. */
    assert_int_equal(detect_protocol((const unsigned char *)past, DETECT_MAX_BYTES), DETECT_OPAQUE);
    assert_int_equal(detect_protocol((const unsigned char *)past, DETECT_MAX_BYTES - 1), DETECT_NEED_MORE);
    free(at);
    free(past);
    /* Empty lines count towards it too. */
    char *crlfs = malloc(DETECT_MAX_BYTES);
    for (size_t i = 0; i < DETECT_MAX_BYTES; i += 2)
        memcpy(crlfs + i, "\r\n", 2);
    assert_int_equal(detect_protocol((const unsigned char *)crlfs, DETECT_MAX_BYTES), DETECT_OPAQUE);
    free(crlfs);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(detect_name(DETECT_HTTP1), "http1");
    assert_string_equal(detect_name(DETECT_H2), "h2");
    assert_string_equal(detect_name(DETECT_OPAQUE), "opaque");
    assert_string_equal(detect_name(DETECT_TIMEOUT), "timeout");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h2_preface),
        cmocka_unit_test(test_http1_lines),
        cmocka_unit_test(test_opaque_early),
        cmocka_unit_test(test_request_line_limit),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests_name("proxy/detect", tests, NULL, NULL);
}
