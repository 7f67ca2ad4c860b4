/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of proxy/classify.c on real ClientHellos made by OpenSSL (with
 * weft/1 or weft/h2, with other ALPNs, without ALPN), every prefix of them, and
 * plaintext. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include <openssl/ssl.h>

#include "classify.h"

/* A ClientHello as OpenSSL would send it; alpn in wire format or NULL. */
static size_t client_hello(const unsigned char *alpn, size_t alpnlen, unsigned char *out, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, rb, wb);
    if (alpn)
        assert_int_equal(SSL_set_alpn_protos(ssl, alpn, (unsigned)alpnlen), 0);
    assert_int_equal(SSL_connect(ssl), -1); /* wants to read the ServerHello */
    int n = BIO_read(wb, out, (int)cap);
    assert_true(n > 0);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return (size_t)n;
}

static void test_hellos(void **state)
{
    (void)state;
    unsigned char buf[4096];
    static const unsigned char weft[] = "\x06weft/1", both[] = "\x02h2\x06weft/1", h2[] = "\x02h2\x08http/1.1",
                               near[] = "\x06weft/2", wh2[] = "\x07weft/h2", nearh2[] = "\x07weft/h3";
    struct {
        const unsigned char *alpn;
        size_t len;
        enum classify_result want;
    } cases[] = {
        {weft, sizeof weft - 1, CLASSIFY_WEFT_TLS},
        {both, sizeof both - 1, CLASSIFY_WEFT_TLS},
        {h2, sizeof h2 - 1, CLASSIFY_OTHER_TLS},
        {near, sizeof near - 1, CLASSIFY_OTHER_TLS},
        {wh2, sizeof wh2 - 1, CLASSIFY_WEFT_TLS}, /* a pooled HTTP/2 connection between proxies */
        {nearh2, sizeof nearh2 - 1, CLASSIFY_OTHER_TLS},
        {NULL, 0, CLASSIFY_OTHER_TLS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = client_hello(cases[i].alpn, cases[i].len, buf, sizeof buf);
        assert_int_equal(classify_first_bytes(buf, n), cases[i].want);
        /* Extra bytes after the record change nothing. */
        unsigned char more[4200];
        memcpy(more, buf, n);
        memset(more + n, 'x', 64);
        assert_int_equal(classify_first_bytes(more, n + 64), cases[i].want);
        /* Every strict prefix: never a wrong final answer. */
        for (size_t k = 0; k < n; k++) {
            enum classify_result r = classify_first_bytes(buf, k);
            if (r != CLASSIFY_NEED_MORE && r != cases[i].want)
                fail_msg("case %zu prefix %zu: %s", i, k, classify_name(r));
        }
        assert_int_equal(classify_first_bytes(buf, 5), CLASSIFY_NEED_MORE);
    }
}

static void test_plaintext(void **state)
{
    (void)state;
    const char *plain[] = {"GET / HTTP/1.1\r\n", "x", "\x16\x04", "\x16\x03\x05", "SSH-2.0-OpenSSH\r\n",
                           "\x15\x03\x03\x00\x02"};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        assert_int_equal(classify_first_bytes((const unsigned char *)plain[i], strlen(plain[i])), CLASSIFY_PLAINTEXT);
    assert_int_equal(classify_first_bytes((const unsigned char *)"", 0), CLASSIFY_NEED_MORE);
    assert_int_equal(classify_first_bytes((const unsigned char *)"\x16", 1), CLASSIFY_NEED_MORE);
    assert_int_equal(classify_first_bytes((const unsigned char *)"\x16\x03", 2), CLASSIFY_NEED_MORE);
    /* A record length of zero or beyond 2^14 is not TLS. */
    const unsigned char zero[] = {0x16, 0x03, 0x01, 0x00, 0x00};
    const unsigned char huge[] = {0x16, 0x03, 0x01, 0x40, 0x01};
    assert_int_equal(classify_first_bytes(zero, sizeof zero), CLASSIFY_PLAINTEXT);
    assert_int_equal(classify_first_bytes(huge, sizeof huge), CLASSIFY_PLAINTEXT);
    /* A complete record that is not a ClientHello. */
    const unsigned char sh[] = {0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00};
    assert_int_equal(classify_first_bytes(sh, sizeof sh), CLASSIFY_OTHER_TLS);
    /* A hello whose declared length overruns its record. */
    const unsigned char over[] = {0x16, 0x03, 0x03, 0x00, 0x04, 0x01, 0x00, 0x10, 0x00};
    assert_int_equal(classify_first_bytes(over, sizeof over), CLASSIFY_OTHER_TLS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hellos),
        cmocka_unit_test(test_plaintext),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
