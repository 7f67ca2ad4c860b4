/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: weft-proxy's HTTP/2 adapter (proxy/http_h2.c) as a
 * server fed arbitrary bytes, in chunks the input's first byte sizes. The
 * consumer acts like the proxy: it answers each finished request with a
 * body and trailers, gives windows back, resets every fifth stream and
 * drains the connection once, so the send paths (deferred data, trailers,
 * RST, GOAWAY) run on whatever the peer does. Checks the adapter's own
 * bookkeeping: open streams never exceed the advertised limit, no header
 * block past the list size reaches the consumer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../proxy/http_h2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX_STREAMS 8
#define FZ_MAX_HEADER_LIST 4096

struct fz {
    h2_conn *h;
    unsigned heads;
};

static void fz_headers(void *ctx, h2_stream *st, enum h2_block kind, const struct h2_field *f, size_t n,
                       int end)
{
    (void)end;
    struct fz *z = ctx;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += f[i].namelen + f[i].valuelen + 32;
    if (bytes > FZ_MAX_HEADER_LIST || n > H2_MAX_FIELDS)
        abort();
    if (h2_open_streams(z->h) > FZ_MAX_STREAMS)
        abort();
    if (kind == H2_BLOCK_HEAD && ++z->heads % 5 == 0)
        h2_reset(z->h, st, H2_CANCEL);
}

static void fz_data(void *ctx, h2_stream *st, const uint8_t *p, size_t len)
{
    (void)p;
    struct fz *z = ctx;
    h2_consume(z->h, st, len);
}

static void fz_end(void *ctx, h2_stream *st)
{
    struct fz *z = ctx;
    struct h2_field head[] = {{":status", 7, "200", 3}};
    struct h2_field tr[] = {{"grpc-status", 11, "0", 1}};
    if (h2_submit_response(z->h, st, head, 1, 0) == 0 && h2_submit_data(z->h, st, "hello", 5, 0) == 0)
        h2_submit_trailers(z->h, st, tr, 1);
}

static void fz_close(void *ctx, h2_stream *st, uint32_t code)
{
    (void)ctx;
    (void)st;
    (void)code;
}

static void fz_writable(void *ctx, h2_stream *st)
{
    (void)ctx;
    (void)st;
}

static void fz_goaway(void *ctx, int32_t last, uint32_t code)
{
    (void)ctx;
    (void)last;
    (void)code;
}

static const struct h2_events fz_events = {fz_headers, fz_data, fz_end, fz_close, fz_writable, fz_goaway};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)data[0] * 4 + 1;
    data++;
    size--;
    struct h2_limits lim = {.max_streams = FZ_MAX_STREAMS, .max_header_list = FZ_MAX_HEADER_LIST, .window = 1024};
    struct fz z = {0};
    z.h = h2_new(H2_SERVER, &lim, &fz_events, &z);
    size_t off = 0;
    int drained = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        int r = h2_input(z.h, data + off, n);
        off += n;
        for (int i = 0; i < 64; i++) { /* what it answers goes nowhere, as to a peer that reads everything */
            const uint8_t *p;
            size_t len;
            if (h2_output(z.h, &p, &len) < 0 || len == 0)
                break;
            h2_sent(z.h, len);
        }
        if (r < 0 || h2_done(z.h))
            break;
        if (!drained && off > size / 2) {
            h2_drain(z.h);
            drained = 1;
        }
    }
    h2_free(z.h);
    return 0;
}
