/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for lib/http1.c. The first byte picks requests or
 * responses (bit 7), the method responses answer (bits 5-6: GET, HEAD,
 * CONNECT) and a feed size (bits 0-4); the rest is one connection's bytes,
 * parsed whole and in pieces of that size, then closed. Both readings must
 * agree event for event (heads, fields, body bytes, trailers, the error),
 * every call must make progress, and no limit may be passed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct http1_limits lim = {.max_head = 2048, .max_fields = 16, .max_body = 8192};

static void note(struct buf *t, const char *s, size_t n)
{
    if (buf_append(t, s, n) < 0)
        abort();
}

static void note_fields(struct buf *t, const struct http1_parser *p, int trailer)
{
    const char *n, *v;
    size_t nl, vl;
    size_t count = 0;
    for (size_t i = 0;; i++) {
        int rc = trailer ? http1_trailer(p, i, &n, &nl, &v, &vl) : http1_field(p, i, &n, &nl, &v, &vl);
        if (rc < 0)
            break;
        if (nl == 0 || memchr(n, ':', nl) || memchr(v, '\r', vl) || memchr(v, '\n', vl))
            abort();
        note(t, n, nl);
        note(t, ":", 1);
        note(t, v, vl);
        note(t, "\n", 1);
        count++;
    }
    if (count > lim.max_fields)
        abort();
}

/* Parses the whole input in pieces of step bytes into a transcript. */
static enum http1_error run(enum http1_kind kind, const char *method, const char *in, size_t n, size_t step,
                            struct buf *t)
{
    struct http1_parser p;
    size_t off = 0, calls = 0;
    struct buf body; /* this message's body so far: pieces differ with the feed size, the bytes may not */
    buf_init(&body, lim.max_body);
    http1_init(&p, kind, &lim);
    if (kind == HTTP1_RESPONSE)
        http1_response_to(&p, method, strlen(method));
    for (;;) {
        size_t take = n - off < step ? n - off : step;
        const char *b = NULL;
        size_t used = 0, bl = 0;
        enum http1_event ev = http1_parse(&p, in + off, take, &used, &b, &bl);
        if (used > take || ++calls > 4 * n + 64)
            abort();
        off += used;
        if (ev == HTTP1_NEED_MORE && used != take)
            abort();
        int closed = 0;
        if (ev == HTTP1_NEED_MORE && take == 0) {
            ev = http1_finish(&p);
            closed = 1;
        }
        if (ev == HTTP1_HEAD) {
            const struct http1_msg *m = &p.msg;
            note(t, "H", 1);
            if (kind == HTTP1_REQUEST) {
                note(t, m->method, m->method_len);
                note(t, m->target, m->target_len);
            } else {
                if (m->status < 100 || m->status > 599)
                    abort();
                note(t, (const char *)&m->status, sizeof m->status);
                note(t, m->reason, m->reason_len);
            }
            if (m->chunked && m->content_length >= 0)
                abort();
            note_fields(t, &p, 0);
        } else if (ev == HTTP1_BODY) {
            if (!bl || b < in + off - used || b + bl > in + off)
                abort();
            note(&body, b, bl); /* aborts past max_body */
        } else if (ev == HTTP1_DONE) {
            note(t, "B", 1);
            note(t, (const char *)&body.len, sizeof body.len);
            note(t, body.data, body.len);
            buf_reset(&body);
            note(t, "D", 1);
            note_fields(t, &p, 1);
            if (closed || p.msg.status == 101 || (kind == HTTP1_RESPONSE && !strcmp(method, "CONNECT") &&
                                                 p.msg.status >= 200 && p.msg.status < 300))
                break;
            if (kind == HTTP1_RESPONSE && p.msg.status >= 200)
                http1_response_to(&p, method, strlen(method));
        } else if (ev == HTTP1_CLOSED || ev == HTTP1_ERROR) {
            break;
        }
    }
    enum http1_error e = p.error;
    if (e >= HTTP1_E_COUNT || !http1_strerror(e) || http1_error_status(e) < 200)
        abort();
    note(t, "E", 1);
    note(t, (const char *)&e, sizeof e);
    note(t, (const char *)&body.len, sizeof body.len);
    note(t, body.data, body.len);
    buf_free(&body);
    http1_free(&p);
    return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "HEAD", "CONNECT", "GET"};
    if (size < 1)
        return 0;
    enum http1_kind kind = data[0] & 0x80 ? HTTP1_RESPONSE : HTTP1_REQUEST;
    const char *method = methods[(data[0] >> 5) & 3];
    size_t step = (size_t)(data[0] & 0x1f) + 1;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    struct buf a, b;
    buf_init(&a, 1u << 26);
    buf_init(&b, 1u << 26);
    enum http1_error ea = run(kind, method, in, n, n ? n : 1, &a);
    enum http1_error eb = run(kind, method, in, n, step, &b);
    if (ea != eb || a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
        abort();
    buf_free(&a);
    buf_free(&b);
    return 0;
}
