/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the gRPC health messages: the request's exact bytes (with
 * the one- and two-byte length forms and the limit) and the response parser
 * on good, unknown-field and broken input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "grpc_health.h"

static void test_request_bytes(void **state)
{
    (void)state;
    unsigned char out[5 + 3 + GRPC_HEALTH_MAX_SERVICE];
    /* proto3 leaves an empty string out: an empty message. */
    assert_int_equal(grpc_health_request("", out, sizeof out), 5);
    assert_memory_equal(out, "\0\0\0\0\0", 5);
    assert_int_equal(grpc_health_request("app", out, sizeof out), 10);
    assert_memory_equal(out, "\0\0\0\0\5\x0a\3app", 10);

    char svc[GRPC_HEALTH_MAX_SERVICE + 2];
    memset(svc, 's', sizeof svc);
    svc[127] = '\0'; /* the longest one-byte length */
    assert_int_equal(grpc_health_request(svc, out, sizeof out), 5 + 2 + 127);
    assert_memory_equal(out, "\0\0\0\0\x81\x0a\x7f", 7);
    svc[127] = 's';
    svc[128] = '\0'; /* varint 128 = 0x80 0x01 */
    assert_int_equal(grpc_health_request(svc, out, sizeof out), 5 + 3 + 128);
    assert_memory_equal(out, "\0\0\0\0\x83\x0a\x80\x01", 8);
    svc[128] = 's';
    svc[GRPC_HEALTH_MAX_SERVICE] = '\0';
    assert_int_equal(grpc_health_request(svc, out, sizeof out), 5 + 3 + GRPC_HEALTH_MAX_SERVICE);
    assert_int_equal(out[6], 0x80 | (GRPC_HEALTH_MAX_SERVICE & 0x7f));
    assert_int_equal(out[7], GRPC_HEALTH_MAX_SERVICE >> 7);
    svc[GRPC_HEALTH_MAX_SERVICE] = 's';
    svc[GRPC_HEALTH_MAX_SERVICE + 1] = '\0';
    assert_int_equal(grpc_health_request(svc, out, sizeof out), -EINVAL);
    assert_int_equal(grpc_health_request("app", out, 9), -ENOSPC);
}

static void test_parse_response(void **state)
{
    (void)state;
    int st = -7;
    assert_int_equal(grpc_health_parse_response((const unsigned char *)"\0\0\0\0\2\x08\x01", 7, &st), 0);
    assert_int_equal(st, GRPC_STATUS_SERVING);
    assert_int_equal(grpc_health_parse_response((const unsigned char *)"\0\0\0\0\2\x08\x02", 7, &st), 0);
    assert_int_equal(st, GRPC_STATUS_NOT_SERVING);
    /* Empty message: the default, UNKNOWN. */
    assert_int_equal(grpc_health_parse_response((const unsigned char *)"\0\0\0\0\0", 5, &st), 0);
    assert_int_equal(st, GRPC_STATUS_UNKNOWN);
    /* Unknown fields of every wire type are skipped. */
    const unsigned char extra[] = {0, 0, 0, 0, 19, 0x10, 0x96, 0x01, 0x19, 1, 2, 3, 4, 5, 6, 7, 8,
                                   0x22, 1, 'x', 0x2d, 1, 2, 3, 4, 0x08, 0x01};
    assert_int_equal(grpc_health_parse_response(extra, sizeof extra - 2, &st), -EBADMSG); /* length says 19 */
    unsigned char fixed[sizeof extra];
    memcpy(fixed, extra, sizeof extra);
    fixed[4] = (unsigned char)(sizeof extra - 5);
    assert_int_equal(grpc_health_parse_response(fixed, sizeof fixed, &st), 0);
    assert_int_equal(st, GRPC_STATUS_SERVING);

    const char *bad[] = {
        "",                      /* no prefix */
        "\0\0\0\0",              /* short prefix */
        "\1\0\0\0\2\x08\x01",    /* compressed */
        "\0\0\0\0\3\x08\x01",    /* length over the bytes */
        "\0\0\0\0\1\x08\x01",    /* bytes over the length */
        "\0\0\0\0\1\x08",        /* field without value */
        "\0\0\0\0\2\x0b\x01",    /* wire type 3 */
        "\0\0\0\0\2\x12\x05",    /* length-delimited past the end */
        "\0\0\0\0\2\x08\x80",    /* unfinished varint */
    };
    const size_t lens[] = {0, 4, 7, 7, 7, 6, 7, 7, 7};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (grpc_health_parse_response((const unsigned char *)bad[i], lens[i], &st) != -EBADMSG)
            fail_msg("accepted case %zu", i);
    /* An eleven-byte varint. */
    const unsigned char longv[] = {0, 0, 0, 0, 12, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(grpc_health_parse_response(longv, sizeof longv, &st), -EBADMSG);
    assert_string_equal(grpc_health_status_name(GRPC_STATUS_SERVICE_UNKNOWN), "SERVICE_UNKNOWN");
    assert_string_equal(grpc_health_status_name(42), "unrecognized");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_bytes),
        cmocka_unit_test(test_parse_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
