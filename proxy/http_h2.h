/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/2 adapter: one HTTP/2 connection (server or client role) over
 * libnghttp2, with memory I/O only. Bytes read from the peer go in with
 * h2_input; the frames to send come out of h2_output; nothing here touches a
 * socket, so unit tests wire two of them back to back and the fuzzer feeds
 * one arbitrary bytes.
 *
 * What this layer adds to nghttp2:
 * - whole header blocks: a stream's head (request or response) and its
 *   trailers arrive as one array of fields, bounded by the header list size
 *   we advertise (a request past it is answered 431 here, a response or
 *   trailers past it reset the stream: RFC 9113 10.5.1);
 * - backpressure both ways. Receiving: the stream's window is given back
 *   only when the consumer says it passed bytes on (h2_consume), so a slow
 *   reader stops its sender after one window; the connection's window is
 *   given back at once, so one stalled stream never blocks the others.
 *   Sending: h2_submit_data queues bytes on the stream, framed as the
 *   peer's windows allow; past H2_STREAM_OUT_HIGH the producer should stop
 *   reading its source until on_writable says the queue drained;
 * - trailers after queued data, and a graceful GOAWAY drain (a shutdown
 *   notice, one PING round trip, then the final GOAWAY with the last stream
 *   processed, as nghttpx does), after which streams in flight finish.
 *
 * A connection belongs to one thread. Callbacks run from inside h2_input
 * and h2_output; they may submit, reset and consume, but not h2_free. */
#ifndef WEFT_PROXY_HTTP_H2_H
#define WEFT_PROXY_HTTP_H2_H
#include <stddef.h>
#include <stdint.h>

/* SETTINGS we advertise, unless the caller sets others. */
#define H2_DEFAULT_MAX_STREAMS 100          /* SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 asks >= 100) */
#define H2_DEFAULT_MAX_HEADER_LIST (32 * 1024) /* SETTINGS_MAX_HEADER_LIST_SIZE, RFC 9113 6.5.2 accounting */
#define H2_DEFAULT_WINDOW (64 * 1024)       /* SETTINGS_INITIAL_WINDOW_SIZE: what one stream may have unread */
#define H2_MAX_FIELDS 256                   /* header fields per block; more is "too large" */
#define H2_STREAM_OUT_HIGH (64 * 1024)      /* queued on a stream: stop feeding it */
#define H2_STREAM_OUT_MAX (4 * H2_STREAM_OUT_HIGH) /* h2_submit_data refuses past this */
#define H2_OUT_CHUNK (64 * 1024)            /* h2_output gathers frames up to about this much */
/* Streams the peer may reset (server role): a burst, then so many a second,
 * past which libnghttp2 ends the connection with GOAWAY(INTERNAL_ERROR):
 * its rapid-reset limit (CVE-2023-44487; upstream 1.57, and Debian's
 * 1.52.0-1+deb12u1 backport), set explicitly with these, its defaults. */
#define H2_RESET_BURST 1000
#define H2_RESET_PER_SEC 33

/* HTTP/2 error codes (RFC 9113 7) the proxy uses by name. */
#define H2_NO_ERROR 0x0u
#define H2_PROTOCOL_ERROR 0x1u
#define H2_INTERNAL_ERROR 0x2u
#define H2_REFUSED_STREAM 0x7u
#define H2_CANCEL 0x8u

enum h2_role { H2_SERVER, H2_CLIENT };

struct h2_limits {
    uint32_t max_streams;     /* concurrent streams the peer may open */
    uint32_t max_header_list; /* bytes (name + value + 32 per field) a received block may have */
    uint32_t window;          /* per-stream receive window */
};
void h2_limits_default(struct h2_limits *l);

struct h2_field {               /* not NUL-terminated */
    const char *name;
    size_t namelen;
    const char *value;
    size_t valuelen;
};

enum h2_block {
    H2_BLOCK_HEAD,     /* the request (server) or the final response (client) head */
    H2_BLOCK_INFO,     /* a 1xx response head (client) */
    H2_BLOCK_TRAILERS,
};

typedef struct h2_conn h2_conn;
typedef struct h2_stream h2_stream;

/* What the consumer hears. Fields and data are valid during the call only. */
struct h2_events {
    /* end: the block came with END_STREAM (on_end follows as well). */
    void (*on_headers)(void *ctx, h2_stream *st, enum h2_block kind, const struct h2_field *f, size_t n, int end);
    /* Give the window back with h2_consume once len bytes were passed on. */
    void (*on_data)(void *ctx, h2_stream *st, const uint8_t *p, size_t len);
    /* The peer finished sending (END_STREAM), after its last head, data or trailers. */
    void (*on_end)(void *ctx, h2_stream *st);
    /* The stream is gone: code H2_NO_ERROR when both sides finished, else
     * the RST_STREAM or GOAWAY code (H2_REFUSED_STREAM: the peer did not
     * process it, safe to retry elsewhere). st is freed after the call. */
    void (*on_close)(void *ctx, h2_stream *st, uint32_t code);
    /* The stream's send queue fell below H2_STREAM_OUT_HIGH after being above it. */
    void (*on_writable)(void *ctx, h2_stream *st);
    /* The peer sent GOAWAY: streams above last_id were not processed (they
     * close with H2_REFUSED_STREAM); no new ones may be opened. */
    void (*on_goaway)(void *ctx, int32_t last_id, uint32_t code);
};

struct h2_stats {
    uint64_t streams;           /* streams opened (either side) */
    uint64_t refused;           /* RST_STREAM(REFUSED_STREAM) we sent: over the stream limit */
    uint64_t resets_sent, resets_recv;
    uint64_t too_large;         /* header blocks over max_header_list */
    uint64_t goaway_recv;
};

/* limits NULL: the defaults. The preface and SETTINGS are queued at once
 * (h2_output has them). Never NULL: out of memory aborts. */
h2_conn *h2_new(enum h2_role role, const struct h2_limits *limits, const struct h2_events *ev, void *ctx);
/* Frees every stream without calling back. Not from inside a callback. */
void h2_free(h2_conn *h);

/* Bytes from the peer, all of them: 0, or a negative nghttp2 error (bad
 * preface, protocol error, flood) after which the connection is over: send
 * what h2_output still has (the GOAWAY saying why), then close. */
int h2_input(h2_conn *h, const uint8_t *p, size_t len);
/* The frames ready to send: a pointer to *len bytes (0: nothing to send),
 * valid until the next h2_* call; tell how much went out with h2_sent. A
 * negative return is a fatal error, as for h2_input. */
int h2_output(h2_conn *h, const uint8_t **p, size_t *len);
void h2_sent(h2_conn *h, size_t n);
/* 1 when the connection has nothing left to do: both sides sent GOAWAY (or
 * a fatal error) and no stream is open, or the peer can send nothing more;
 * and all output was taken. The caller closes it then. */
int h2_done(const h2_conn *h);
/* 1 while more bytes from the peer are expected. */
int h2_wants_input(const h2_conn *h);
const char *h2_strerror(int err);

/* Client role: a new request stream. end: the head is the whole request.
 * NULL (with *err set) when no stream can be opened (after GOAWAY, out of
 * stream ids) or the head is invalid. */
h2_stream *h2_submit_request(h2_conn *h, const struct h2_field *f, size_t n, int end, void *user, int *err);
/* Server role: the response head (1xx first if wanted: end 0, then the final). */
int h2_submit_response(h2_conn *h, h2_stream *st, const struct h2_field *f, size_t n, int end);
/* Queues body bytes (len may be 0 with end 1). 0, -ENOBUFS past
 * H2_STREAM_OUT_MAX, -EPIPE when the stream already ended or was reset. */
int h2_submit_data(h2_conn *h, h2_stream *st, const void *p, size_t len, int end);
/* Ends the stream with trailers after the queued data. */
int h2_submit_trailers(h2_conn *h, h2_stream *st, const struct h2_field *f, size_t n);
/* RST_STREAM with code; on_close follows. */
int h2_reset(h2_conn *h, h2_stream *st, uint32_t code);
/* The same once the head and body already queued on the stream went out:
 * how a proxy passes on an upstream's reset without losing the bytes that
 * came before it (nghttp2 would drop them for an immediate reset). */
int h2_reset_flushed(h2_conn *h, h2_stream *st, uint32_t code);
/* The consumer passed len received bytes on: the stream's window grows back. */
void h2_consume(h2_conn *h, h2_stream *st, size_t len);
/* Graceful drain: no new streams; those in flight finish. */
void h2_drain(h2_conn *h);
/* Ends the connection now with GOAWAY(code); streams close. */
void h2_terminate(h2_conn *h, uint32_t code);

/* Client role: whether a new stream may be opened now (no GOAWAY either
 * way, fewer open streams than the peer allows, stream ids left). */
int h2_can_open(const h2_conn *h);
unsigned h2_open_streams(const h2_conn *h);
/* The peer's SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS came). */
uint32_t h2_peer_max_streams(const h2_conn *h);
const struct h2_stats *h2_get_stats(const h2_conn *h);

int32_t h2_stream_id(const h2_stream *st);
void *h2_stream_user(const h2_stream *st);
void h2_stream_set_user(h2_stream *st, void *user);
/* Bytes queued on the stream and not yet framed. */
size_t h2_stream_queued(const h2_stream *st);
/* 1 when a header block on it was over max_header_list. */
int h2_stream_too_large(const h2_stream *st);

/* Finds a field by (lowercase) name in a block; NULL when absent. */
const struct h2_field *h2_field_find(const struct h2_field *f, size_t n, const char *name);

#endif
