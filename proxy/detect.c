/* SPDX-License-Identifier: Apache-2.0 */
/* See detect.h. A small scanner decides early on the shape of a request
 * line (method token SP target SP "HTTP/" DIGIT "." DIGIT CRLF); once the
 * line is complete, lib/http1 (the parser the HTTP stages will use) has the
 * last word, so what detection calls HTTP/1 is what the codec accepts. */
#include <string.h>

#include "detect.h"
#include "http1.h"

static const char detect_h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define DETECT_H2_LEN (sizeof detect_h2_preface - 1)

static int detect_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

enum detect_state { D_LEAD_CR, D_LEAD_LF, D_METHOD, D_TARGET, D_VERSION, D_LF };

/* 1: p[0..len) is a request line that ends at *end (after its LF); 0: a
 * prefix of one; -1: not one. */
static int detect_request_line(const unsigned char *p, size_t len, size_t *end)
{
    static const char version[] = "HTTP/1.";
    enum detect_state st = D_LEAD_CR;
    size_t tok = 0; /* bytes of the current part */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        switch (st) {
        case D_LEAD_CR: /* empty lines before the request line are allowed (RFC 9112 2.2) */
            if (c == '\r') {
                st = D_LEAD_LF;
                break;
            }
            st = D_METHOD;
            /* fall through */
        case D_METHOD:
            if (c == ' ' && tok > 0) {
                st = D_TARGET;
                tok = 0;
            } else if (detect_tchar(c)) {
                tok++;
            } else {
                return -1;
            }
            break;
        case D_LEAD_LF:
            if (c != '\n')
                return -1;
            st = D_LEAD_CR;
            break;
        case D_TARGET:
            if (c == ' ' && tok > 0) {
                st = D_VERSION;
                tok = 0;
            } else if (c > 0x20 && c < 0x7f) {
                tok++;
            } else {
                return -1;
            }
            break;
        case D_VERSION:
            if (tok < sizeof version - 1) {
                if (c != (unsigned char)version[tok])
                    return -1;
            } else if (tok == sizeof version - 1) {
                if (c < '0' || c > '9')
                    return -1;
            } else if (c != '\r') {
                return -1;
            } else {
                st = D_LF;
            }
            tok++;
            break;
        case D_LF:
            if (c != '\n')
                return -1;
            *end = i + 1;
            return 1;
        }
    }
    return 0;
}

/* lib/http1 reads the request line (and nothing after it) without error. */
static int detect_http1_confirms(const unsigned char *p, size_t len)
{
    struct http1_parser hp;
    struct http1_limits lim = {.max_head = DETECT_MAX_BYTES + 1, .max_fields = 1};
    size_t used = 0;
    http1_init(&hp, HTTP1_REQUEST, &lim);
    enum http1_event e = http1_parse(&hp, (const char *)p, len, &used, NULL, NULL);
    http1_free(&hp);
    return e == HTTP1_NEED_MORE;
}

enum detect_result detect_protocol(const unsigned char *p, size_t len)
{
    if (len > DETECT_MAX_BYTES)
        len = DETECT_MAX_BYTES;
    size_t n = len < DETECT_H2_LEN ? len : DETECT_H2_LEN;
    if (memcmp(p, detect_h2_preface, n) == 0)
        return len >= DETECT_H2_LEN ? DETECT_H2 : DETECT_NEED_MORE;
    size_t end = 0;
    int r = detect_request_line(p, len, &end);
    if (r < 0)
        return DETECT_OPAQUE;
    if (r == 0)
        return len == DETECT_MAX_BYTES ? DETECT_OPAQUE : DETECT_NEED_MORE;
    return detect_http1_confirms(p, end) ? DETECT_HTTP1 : DETECT_OPAQUE;
}

const char *detect_name(enum detect_result r)
{
    switch (r) {
    case DETECT_NEED_MORE: return "need_more";
    case DETECT_HTTP1: return "http1";
    case DETECT_H2: return "h2";
    case DETECT_OPAQUE: return "opaque";
    case DETECT_TIMEOUT: return "timeout";
    default: return "?";
    }
}
