/* SPDX-License-Identifier: Apache-2.0 */
/* Drives lib/http1.c for tests/integration/test_http1.py: parses the bytes of
 * each file named (one connection's worth each, then the peer closes) and
 * prints one JSON line per file with every message parsed and how the
 * connection ended, so the test can compare it with h11's reading. Bytes go
 * to JSON as Latin-1 (\u00XX for anything but printable ASCII).
 *
 *   http1_driver request STEP FILE...
 *   http1_driver response STEP METHOD FILE...
 * STEP: bytes per feed (0: all at once); METHOD: what the responses answer
 * ("-" for GET). Parsing stops after a message that does not keep the
 * connection alive, after a CONNECT request, a 101 or a 2xx to CONNECT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http1.h"

static void put_str(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            putchar(c);
        else
            printf("\\u%04x", c);
    }
    putchar('"');
}

static void put_fields(const struct http1_parser *p, int trailer)
{
    const char *n, *v;
    size_t nl, vl;
    putchar('[');
    for (size_t i = 0;; i++) {
        int rc = trailer ? http1_trailer(p, i, &n, &nl, &v, &vl) : http1_field(p, i, &n, &nl, &v, &vl);
        if (rc < 0)
            break;
        printf("%s[", i ? "," : "");
        put_str(n, nl);
        putchar(',');
        put_str(v, vl);
        putchar(']');
    }
    putchar(']');
}

/* Prints the message whose head p holds; the body and the closing brace come later. */
static void put_head(const struct http1_parser *p, int first)
{
    const struct http1_msg *m = &p->msg;
    printf("%s{\"version\":\"1.%d\",", first ? "" : ",", m->version_minor);
    if (p->kind == HTTP1_REQUEST) {
        printf("\"method\":");
        put_str(m->method, m->method_len);
        printf(",\"target\":");
        put_str(m->target, m->target_len);
    } else {
        printf("\"status\":%d,\"reason\":", m->status);
        put_str(m->reason, m->reason_len);
    }
    printf(",\"keep_alive\":%s,\"chunked\":%s,\"until_close\":%s,\"content_length\":%lld,\"headers\":",
           m->keep_alive ? "true" : "false", m->chunked ? "true" : "false", m->until_close ? "true" : "false",
           (long long)m->content_length);
    put_fields(p, 0);
}

static int parse_one(enum http1_kind kind, size_t step, const char *method, const struct buf *in)
{
    struct http1_parser p;
    struct buf body;
    size_t off = 0;
    int nmsg = 0, in_msg = 0, stop = 0;
    enum http1_event ev = HTTP1_NEED_MORE;
    http1_init(&p, kind, NULL);
    buf_init(&body, (size_t)-1);
    if (kind == HTTP1_RESPONSE)
        http1_response_to(&p, method, strlen(method));
    printf("{\"messages\":[");
    while (!stop && ev != HTTP1_ERROR) {
        size_t n = in->len - off;
        if (step && n > step)
            n = step;
        const char *b;
        size_t used, bl;
        int closed = 0;
        ev = http1_parse(&p, in->data + off, n, &used, &b, &bl); /* with n 0 too: a DONE may be waiting */
        off += used;
        if (ev == HTTP1_BODY)
            buf_append(&body, b, bl);
        if (ev == HTTP1_NEED_MORE && n == 0) {
            ev = http1_finish(&p);
            closed = 1;
        }
        if (ev == HTTP1_HEAD) {
            put_head(&p, nmsg++ == 0);
            in_msg = 1;
        } else if (ev == HTTP1_DONE) {
            printf(",\"body\":");
            put_str(body.data, body.len);
            printf(",\"trailers\":");
            put_fields(&p, 1);
            printf("}");
            buf_reset(&body);
            in_msg = 0;
            int st = p.msg.status;
            if (kind == HTTP1_REQUEST ? !p.msg.keep_alive
                                      : st == 101 || (st >= 200 && !p.msg.keep_alive) ||
                                            (!strcmp(method, "CONNECT") && st >= 200 && st < 300))
                stop = 1; /* a 1xx's own framing says nothing of the connection */
            if (kind == HTTP1_REQUEST && p.msg.method_len == 7 && !memcmp(p.msg.method, "CONNECT", 7))
                stop = 1; /* answered 2xx, the rest is the tunnel */
            if (kind == HTTP1_RESPONSE && st >= 200)
                http1_response_to(&p, method, strlen(method));
            if (closed)
                stop = 1; /* finished by the close */
        } else if (ev == HTTP1_CLOSED) {
            stop = 1;
        }
    }
    if (in_msg)
        printf(",\"incomplete\":true}");
    printf("],\"result\":\"%s\",\"error\":\"%s\",\"error_status\":%d,\"rest\":%zu}\n",
           ev == HTTP1_ERROR ? "error" : "ok", http1_error_name(p.error), http1_error_status(p.error),
           in->len - off);
    buf_free(&body);
    http1_free(&p);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: http1_driver request STEP FILE... | response STEP METHOD FILE...\n");
        return 2;
    }
    enum http1_kind kind = strcmp(argv[1], "response") == 0 ? HTTP1_RESPONSE : HTTP1_REQUEST;
    size_t step = strtoul(argv[2], NULL, 10);
    int first = 3;
    const char *method = "GET";
    if (kind == HTTP1_RESPONSE) {
        if (strcmp(argv[3], "-") != 0)
            method = argv[3];
        first = 4;
    }
    for (int i = first; i < argc; i++) {
        struct buf in;
        buf_init(&in, 16u << 20);
        if (buf_read_file(&in, argv[i]) < 0) {
            fprintf(stderr, "http1_driver: cannot read %s\n", argv[i]);
            return 1;
        }
        parse_one(kind, step, method, &in);
        buf_free(&in);
    }
    return 0;
}
