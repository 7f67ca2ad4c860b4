/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the HTTP/1 head rewriting of weft-proxy
 * (proxy/http_h1.c) between two lib/http1 parsers. The first byte picks a
 * request or a response and the framing parameters; the rest is a head.
 * Whatever lib/http1 accepts, the head the proxy writes from it must parse
 * again without error, as one message with the same method and target (or
 * status), no connection-specific field of the input, and the same length
 * when one was declared: a rewritten head that another parser could read
 * differently would be a smuggling hole. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/http1.h"
#include "../proxy/http_h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether a field the input's Connection named survived (ours excepted). */
static int h1f_leaked(const struct http1_parser *in, const struct http1_parser *out)
{
    size_t clen = 0;
    const char *conn = http1_get(in, "connection", &clen);
    for (size_t i = 0;; i++) {
        const char *n, *v;
        size_t nl, vl;
        if (http1_field(out, i, &n, &nl, &v, &vl) < 0)
            return 0;
        if (http_name_is(n, nl, "connection") || http_name_is(n, nl, "upgrade") ||
            http_name_is(n, nl, "transfer-encoding") || http_name_is(n, nl, "host") ||
            http_name_is(n, nl, "content-length"))
            continue; /* written by the proxy itself */
        if (http_field_is_hop_by_hop(n, nl, conn, clen))
            return 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1, used = 0;
    int response = mode & 1;
    struct http1_parser p, q;
    http1_init(&p, response ? HTTP1_RESPONSE : HTTP1_REQUEST, NULL);
    const char *method = (mode & 2) ? "HEAD" : (mode & 4) ? "CONNECT" : "GET";
    if (response)
        http1_response_to(&p, method, strlen(method));
    if (http1_parse(&p, in, len, &used, NULL, NULL) != HTTP1_HEAD) {
        http1_free(&p);
        return 0;
    }
    struct http_head h;
    struct http_field *f = NULL;
    size_t cap = 0;
    struct buf out;
    http_h1_head_from(&p, &h, &f, &cap);
    if (!response && !http_h1_request_ok(&h)) { /* refused with 400, never written */
        free(f);
        http1_free(&p);
        return 0;
    }
    buf_init(&out, 1 << 20);
    int bodiless = 0, close_after = (mode >> 3) & 1, minor = (mode >> 4) & 1;
    if (response) {
        if (strcmp(method, "HEAD") == 0)
            bodiless = 1;
        else if (strcmp(method, "CONNECT") == 0 && h.status >= 200 && h.status < 300)
            bodiless = 2;
        if (http_h1_write_response(&out, &h, minor, (mode >> 5) & 1, bodiless, &close_after) < 0)
            abort();
    } else {
        if (!h.authority.len) /* the client side writes the destination then */
            h.authority = (struct http_span){"198.18.1.1:80", 13};
        if (http_h1_write_request(&out, &h) < 0)
            abort();
    }
    /* The proxy adds at most four fields of its own (Host, Connection,
     * Upgrade, the framing) to what the input had. */
    http1_init(&q, response ? HTTP1_RESPONSE : HTTP1_REQUEST,
               &(struct http1_limits){.max_head = 1 << 20, .max_fields = HTTP1_MAX_FIELDS_DEFAULT + 4});
    if (response)
        http1_response_to(&q, method, strlen(method));
    size_t used2 = 0;
    if (http1_parse(&q, out.data, out.len, &used2, NULL, NULL) != HTTP1_HEAD)
        abort(); /* what the proxy writes always parses */
    const struct http1_msg *a = &p.msg, *b = &q.msg;
    if (response) {
        if (a->status != b->status)
            abort();
    } else if (a->method_len != b->method_len || memcmp(a->method, b->method, a->method_len) != 0) {
        abort();
    } else if (!(a->method_len == 7 && memcmp(a->method, "CONNECT", 7) == 0) &&
               (a->target_len != b->target_len || memcmp(a->target, b->target, a->target_len) != 0)) {
        abort();
    }
    int connect = !response && a->method_len == 7 && memcmp(a->method, "CONNECT", 7) == 0;
    if (!a->chunked && a->content_length >= 0 && !connect && !(response && (a->status == 204 || bodiless == 2)) &&
        !(response && a->status < 200) && b->content_length != a->content_length)
        abort(); /* a declared length survives */
    if (b->chunked && b->content_length >= 0)
        abort();
    if (h1f_leaked(&p, &q))
        abort();
    http1_free(&q);
    buf_free(&out);
    free(f);
    http1_free(&p);
    return 0;
}
