/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/2 adapter over libnghttp2 (see http_h2.h): memory I/O, whole
 * header blocks, send queues with deferred data providers, manual stream
 * windows, trailers and the graceful drain. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "http_h2.h"
#include "xalloc.h"

#define H2_CONN_WINDOW (1024 * 1024) /* given back on receipt: only pacing, not memory (see h2_on_data) */
#define H2_MAX_STREAM_ID 0x7fffffffu

struct h2_idx {
    uint32_t no, nl, vo, vl; /* offsets and lengths in h2_inblock.mem */
};

/* The header block being received. A connection receives one at a time (RFC
 * 9113 4.3: nothing comes between a HEADERS and its CONTINUATIONs), so the
 * connection holds it, not each stream, and keeps the memory for the next
 * block unless a large one grew it past H2_BLOCK_KEEP: two allocations per
 * request fewer. */
struct h2_inblock {
    char *mem;
    size_t len, cap;
    struct h2_idx *idx;
    size_t n, idxcap;
    size_t bytes;           /* RFC 9113 6.5.2 size of the block so far */
    unsigned too_large : 1;
};
#define H2_BLOCK_KEEP 4096  /* bytes of names and values (and of index) kept between blocks */
/* The frames of one flush are gathered into the connection's output. Up to
 * this much it keeps the memory for the next flush; a larger flush gets
 * H2_OUT_CHUNK at once and lets it go when sent. Allocating it for every
 * flush was 64 KiB each time, and glibc consolidates its free chunks on
 * every free that large. */
#define H2_OUT_KEEP 4096

struct h2_stream {
    h2_conn *h;
    int32_t id;
    void *user;
    struct {
        char *data;
        size_t off, len, cap;
    } out;                  /* body bytes queued, not yet framed */
    nghttp2_nv *trailers;   /* to send once out drains; names and values in tr_mem */
    size_t ntrailers;
    char *tr_mem;
    uint32_t reset_code;    /* what we reset it with */
    uint32_t reset_later;   /* h2_reset_flushed's code, sent once out drains; 0: none */
    unsigned head_sent : 1, out_eof : 1, deferred : 1, reset : 1;
    unsigned head_seen : 1, too_large : 1, internal : 1;
    unsigned full : 1, notify : 1, reset_pending : 1;
    h2_stream *prev, *next;
};

struct h2_conn {
    nghttp2_session *s;
    enum h2_role role;
    struct h2_limits lim;
    struct h2_events ev;
    void *ctx;
    h2_stream *streams;
    struct h2_inblock blk;
    nghttp2_nv *nv;         /* the head being submitted (h2_nv) */
    size_t nvcap;
    unsigned nopen;         /* streams we opened (client) or the peer did (server), not yet closed */
    struct {
        uint8_t *data;
        size_t off, len, cap;
    } out;
    struct h2_stats stats;
    unsigned draining : 1;  /* h2_drain called */
    unsigned drain_ping : 1; /* server: notice sent, waiting for the PING ack */
    unsigned goaway_recv : 1;
    unsigned fatal : 1;
    unsigned notify : 1;    /* some stream has notify set */
};

void h2_limits_default(struct h2_limits *l)
{
    l->max_streams = H2_DEFAULT_MAX_STREAMS;
    l->max_header_list = H2_DEFAULT_MAX_HEADER_LIST;
    l->window = H2_DEFAULT_WINDOW;
}

static h2_stream *h2_stream_new(h2_conn *h, int32_t id, void *user)
{
    h2_stream *st = xcalloc(1, sizeof *st);
    st->h = h;
    st->id = id;
    st->user = user;
    st->next = h->streams;
    if (h->streams)
        h->streams->prev = st;
    h->streams = st;
    h->nopen++;
    h->stats.streams++;
    return st;
}

static void h2_stream_free(h2_conn *h, h2_stream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        h->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    h->nopen--;
    free(st->out.data);
    free(st->trailers);
    free(st->tr_mem);
    free(st);
}

static h2_stream *h2_stream_by_id(h2_conn *h, int32_t id)
{
    h2_stream *st = nghttp2_session_get_stream_user_data(h->s, id);
    if (st)
        return st;
    /* A request whose HEADERS never went out has no nghttp2 stream yet. */
    for (st = h->streams; st; st = st->next)
        if (st->id == id)
            return st;
    return NULL;
}

/* ---- receiving ---- */

static void h2_inblock_reset(struct h2_inblock *b)
{
    b->len = b->n = b->bytes = 0;
    b->too_large = 0;
}

static void h2_inblock_free(struct h2_inblock *b)
{
    free(b->mem);
    free(b->idx);
    *b = (struct h2_inblock){0};
}

/* After a block: its memory kept for the next one unless it grew large. */
static void h2_inblock_done(struct h2_inblock *b)
{
    if (b->cap > H2_BLOCK_KEEP || b->idxcap * sizeof *b->idx > H2_BLOCK_KEEP)
        h2_inblock_free(b);
    h2_inblock_reset(b);
}

static int h2_on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    h2_conn *h = user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    h2_stream *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (!st && h->role == H2_SERVER && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        st = h2_stream_new(h, frame->hd.stream_id, NULL);
        nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, st);
    }
    if (st)
        h2_inblock_reset(&h->blk);
    return 0;
}

static void h2_inblock_append(struct h2_inblock *b, const uint8_t *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n)
            cap *= 2;
        b->mem = xrealloc(b->mem, cap);
        b->cap = cap;
    }
    memcpy(b->mem + b->len, p, n);
    b->len += n;
}

static int h2_on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    (void)flags;
    h2_conn *h = user;
    struct h2_inblock *b = &h->blk;
    if (!nghttp2_session_get_stream_user_data(s, frame->hd.stream_id) || b->too_large)
        return 0;
    /* The list size counts every field received, kept or not, so memory is
     * bounded by max_header_list whatever the peer sends. */
    b->bytes += namelen + valuelen + 32;
    if (b->bytes > h->lim.max_header_list || b->n >= H2_MAX_FIELDS) {
        b->too_large = 1;
        h->stats.too_large++;
        return 0;
    }
    if (b->n == b->idxcap) {
        b->idxcap = b->idxcap ? b->idxcap * 2 : 16;
        b->idx = xrealloc(b->idx, b->idxcap * sizeof *b->idx);
    }
    struct h2_idx *x = &b->idx[b->n++];
    x->no = (uint32_t)b->len;
    x->nl = (uint32_t)namelen;
    h2_inblock_append(b, name, namelen);
    x->vo = (uint32_t)b->len;
    x->vl = (uint32_t)valuelen;
    h2_inblock_append(b, value, valuelen);
    return 0;
}

const struct h2_field *h2_field_find(const struct h2_field *f, size_t n, const char *name)
{
    size_t l = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (f[i].namelen == l && memcmp(f[i].name, name, l) == 0)
            return &f[i];
    return NULL;
}

static void h2_answer_431(h2_conn *h, h2_stream *st)
{
    static const char status[] = ":status", code[] = "431";
    nghttp2_nv nv = {(uint8_t *)status, (uint8_t *)code, sizeof status - 1, sizeof code - 1, NGHTTP2_NV_FLAG_NONE};
    st->internal = 1; /* the consumer never hears of it */
    st->head_sent = 1;
    st->out_eof = 1;
    nghttp2_submit_response(h->s, st->id, &nv, 1, NULL);
}

static void h2_deliver_block(h2_conn *h, h2_stream *st, int end)
{
    struct h2_inblock *b = &h->blk;
    struct h2_field fields[H2_MAX_FIELDS];
    for (size_t i = 0; i < b->n; i++) {
        fields[i].name = b->mem + b->idx[i].no;
        fields[i].namelen = b->idx[i].nl;
        fields[i].value = b->mem + b->idx[i].vo;
        fields[i].valuelen = b->idx[i].vl;
    }
    enum h2_block kind = H2_BLOCK_TRAILERS;
    if (!st->head_seen) {
        kind = H2_BLOCK_HEAD;
        if (h->role == H2_CLIENT) {
            const struct h2_field *f = h2_field_find(fields, b->n, ":status");
            if (f && f->valuelen == 3 && f->value[0] == '1')
                kind = H2_BLOCK_INFO;
        }
        if (kind == H2_BLOCK_HEAD)
            st->head_seen = 1;
    }
    if (h->ev.on_headers)
        h->ev.on_headers(h->ctx, st, kind, fields, b->n, end);
    h2_inblock_done(b); /* the fields were valid during the call only */
}

/* Client, on GOAWAY: requests still queued behind the stream limit will
 * never be sent (nghttp2 keeps them queued), so they end here as refused,
 * and the RST cancels the queued HEADERS. */
static void h2_refuse_unsent(h2_conn *h)
{
    h2_stream *st = h->streams;
    while (st) {
        if (st->id > 0 && !nghttp2_session_find_stream(h->s, st->id)) {
            int32_t id = st->id;
            if (h->ev.on_close)
                h->ev.on_close(h->ctx, st, H2_REFUSED_STREAM);
            h2_stream_free(h, st);
            nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, id, H2_REFUSED_STREAM);
            st = h->streams; /* the list changed: start over */
            continue;
        }
        st = st->next;
    }
}

static int h2_on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    h2_conn *h = user;
    h2_stream *st = frame->hd.stream_id ? nghttp2_session_get_stream_user_data(s, frame->hd.stream_id) : NULL;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (!st || st->internal) {
            h2_inblock_done(&h->blk); /* a block nobody hears of keeps no memory either */
            return 0;
        }
        if (h->blk.too_large) {
            h2_inblock_done(&h->blk);
            st->too_large = 1;
            if (h->role == H2_SERVER && !st->head_seen)
                h2_answer_431(h, st);
            else
                h2_reset(h, st, H2_INTERNAL_ERROR);
            return 0;
        }
        h2_deliver_block(h, st, (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
        break;
    case NGHTTP2_DATA:
        if (!st || st->internal)
            return 0;
        break;
    case NGHTTP2_RST_STREAM:
        h->stats.resets_recv++;
        return 0;
    case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && h->drain_ping) {
            /* A round trip after the notice: whatever the peer sent before
             * seeing it has arrived, so the last stream id is final. */
            h->drain_ping = 0;
            nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s), H2_NO_ERROR,
                                  NULL, 0);
        }
        return 0;
    case NGHTTP2_GOAWAY:
        h->stats.goaway_recv++;
        h->goaway_recv = 1;
        if (h->role == H2_CLIENT)
            h2_refuse_unsent(h);
        if (h->ev.on_goaway)
            h->ev.on_goaway(h->ctx, frame->goaway.last_stream_id, frame->goaway.error_code);
        return 0;
    default:
        return 0;
    }
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && h->ev.on_end)
        h->ev.on_end(h->ctx, st);
    return 0;
}

static int h2_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
    (void)flags;
    h2_conn *h = user;
    h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
    /* The connection window comes back at once; the stream's only when the
     * consumer has passed the bytes on (h2_consume). */
    nghttp2_session_consume_connection(s, len);
    if (!st || st->internal || st->reset) {
        nghttp2_session_consume_stream(s, id, len);
        return 0;
    }
    if (h->ev.on_data)
        h->ev.on_data(h->ctx, st, data, len);
    else
        nghttp2_session_consume_stream(s, id, len);
    return 0;
}

static int h2_on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
    h2_conn *h = user;
    h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    if (st->reset && code == H2_NO_ERROR)
        code = st->reset_code; /* it closed before our RST went out: the reset is what happened */
    if (!st->internal && h->ev.on_close)
        h->ev.on_close(h->ctx, st, code);
    h2_stream_free(h, st);
    return 0;
}

static int h2_on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    (void)s;
    h2_conn *h = user;
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
        h->stats.resets_sent++;
        if (frame->rst_stream.error_code == H2_REFUSED_STREAM)
            h->stats.refused++;
    }
    return 0;
}

static int h2_on_frame_not_send(nghttp2_session *s, const nghttp2_frame *frame, int err, void *user)
{
    (void)s;
    (void)err;
    h2_conn *h = user;
    if (frame->hd.type != NGHTTP2_HEADERS || h->role != H2_CLIENT)
        return 0;
    /* A request that never went out (GOAWAY came first): nghttp2 opened no
     * stream, so no close callback follows. The peer did not see it. */
    h2_stream *st = h2_stream_by_id(h, frame->hd.stream_id);
    if (!st || nghttp2_session_find_stream(h->s, st->id))
        return 0;
    if (h->ev.on_close)
        h->ev.on_close(h->ctx, st, H2_REFUSED_STREAM);
    h2_stream_free(h, st);
    return 0;
}

/* ---- sending ---- */

static ssize_t h2_read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                            nghttp2_data_source *src, void *user)
{
    h2_conn *h = user;
    h2_stream *st = src->ptr;
    size_t n = st->out.len - st->out.off;
    if (n > len)
        n = len;
    if (n)
        memcpy(buf, st->out.data + st->out.off, n);
    st->out.off += n;
    if (st->out.data && st->out.off == st->out.len) { /* idle streams hold no buffer */
        free(st->out.data);
        st->out.data = NULL;
        st->out.off = st->out.len = st->out.cap = 0;
    }
    if (st->full && h2_stream_queued(st) < H2_STREAM_OUT_HIGH) {
        st->full = 0;
        st->notify = 1; /* told after mem_send returns, not from inside it */
        h->notify = 1;
    }
    if (h2_stream_queued(st) == 0 && st->reset_pending) {
        if (n)
            return (ssize_t)n; /* these bytes first, the reset on the next call */
        st->reset_pending = 0;
        st->reset = 1;
        st->reset_code = st->reset_later;
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, st->reset_later);
        return NGHTTP2_ERR_DEFERRED;
    }
    if (h2_stream_queued(st) == 0 && st->out_eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->trailers) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            int r = nghttp2_submit_trailer(s, id, st->trailers, st->ntrailers); /* copies them */
            free(st->trailers);
            free(st->tr_mem);
            st->trailers = NULL;
            st->tr_mem = NULL;
            if (r != 0)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        return (ssize_t)n;
    }
    if (n == 0) {
        st->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* An nghttp2_nv array over the caller's fields (nghttp2 copies them), in
 * the connection's array, kept for the next head like the block received
 * (h2_nv_done). */
static nghttp2_nv *h2_nv(h2_conn *h, const struct h2_field *f, size_t n)
{
    if (n > h->nvcap) {
        h->nvcap = n > 16 ? n : 16;
        h->nv = xrealloc(h->nv, h->nvcap * sizeof *h->nv);
    }
    nghttp2_nv *nv = h->nv;
    for (size_t i = 0; i < n; i++) {
        nv[i].name = (uint8_t *)(uintptr_t)f[i].name;
        nv[i].namelen = f[i].namelen;
        nv[i].value = (uint8_t *)(uintptr_t)f[i].value;
        nv[i].valuelen = f[i].valuelen;
        nv[i].flags = NGHTTP2_NV_FLAG_NONE;
    }
    return nv;
}

static void h2_nv_done(h2_conn *h)
{
    if (h->nvcap * sizeof *h->nv > H2_BLOCK_KEEP) {
        free(h->nv);
        h->nv = NULL;
        h->nvcap = 0;
    }
}

h2_stream *h2_submit_request(h2_conn *h, const struct h2_field *f, size_t n, int end, void *user, int *err)
{
    *err = 0;
    if (h->role != H2_CLIENT) {
        *err = -EINVAL;
        return NULL;
    }
    if (h->goaway_recv || h->draining || h->fatal ||
        nghttp2_session_get_next_stream_id(h->s) > H2_MAX_STREAM_ID) {
        *err = -EPIPE;
        return NULL;
    }
    h2_stream *st = h2_stream_new(h, 0, user);
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = h2_read_body};
    int32_t id = nghttp2_submit_request(h->s, NULL, h2_nv(h, f, n), n, end ? NULL : &prd, st);
    h2_nv_done(h);
    if (id < 0) {
        h2_stream_free(h, st);
        h->stats.streams--;
        *err = -EINVAL;
        return NULL;
    }
    st->id = id;
    st->head_sent = 1;
    st->out_eof = end ? 1 : 0;
    return st;
}

int h2_submit_response(h2_conn *h, h2_stream *st, const struct h2_field *f, size_t n, int end)
{
    if (h->role != H2_SERVER || st->reset)
        return -EPIPE;
    if (st->head_sent)
        return -EINVAL; /* the final head went out already */
    const struct h2_field *status = h2_field_find(f, n, ":status");
    nghttp2_nv *nv = h2_nv(h, f, n);
    int r;
    if (status && status->valuelen == 3 && status->value[0] == '1') {
        /* Informational: more heads follow on the same stream. */
        r = nghttp2_submit_headers(h->s, NGHTTP2_FLAG_NONE, st->id, NULL, nv, n, NULL);
    } else {
        nghttp2_data_provider prd = {.source.ptr = st, .read_callback = h2_read_body};
        r = nghttp2_submit_response(h->s, st->id, nv, n, end ? NULL : &prd);
        if (r == 0) {
            st->head_sent = 1;
            st->out_eof = end ? 1 : 0;
        }
    }
    h2_nv_done(h);
    return r == 0 ? 0 : -EINVAL;
}

static void h2_resume(h2_conn *h, h2_stream *st)
{
    if (st->deferred) {
        st->deferred = 0;
        nghttp2_session_resume_data(h->s, st->id);
    }
}

int h2_submit_data(h2_conn *h, h2_stream *st, const void *p, size_t len, int end)
{
    if (!st->head_sent || st->out_eof || st->reset)
        return -EPIPE;
    size_t q = h2_stream_queued(st);
    if (q + len > H2_STREAM_OUT_MAX)
        return -ENOBUFS;
    if (len) {
        if (st->out.off && st->out.len + len > st->out.cap) {
            memmove(st->out.data, st->out.data + st->out.off, q);
            st->out.len = q;
            st->out.off = 0;
        }
        if (st->out.len + len > st->out.cap) {
            st->out.cap = st->out.len + len;
            st->out.data = xrealloc(st->out.data, st->out.cap);
        }
        memcpy(st->out.data + st->out.len, p, len);
        st->out.len += len;
        if (q + len >= H2_STREAM_OUT_HIGH)
            st->full = 1;
    }
    if (end)
        st->out_eof = 1;
    h2_resume(h, st);
    return 0;
}

int h2_submit_trailers(h2_conn *h, h2_stream *st, const struct h2_field *f, size_t n)
{
    if (!st->head_sent || st->out_eof || st->reset)
        return -EPIPE;
    if (n == 0)
        return h2_submit_data(h, st, NULL, 0, 1);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += f[i].namelen + f[i].valuelen;
    /* Kept until the body's last byte is framed (h2_read_body). */
    st->tr_mem = xmalloc(total ? total : 1);
    st->trailers = xcalloc(n, sizeof *st->trailers);
    st->ntrailers = n;
    char *m = st->tr_mem;
    for (size_t i = 0; i < n; i++) {
        memcpy(m, f[i].name, f[i].namelen);
        st->trailers[i].name = (uint8_t *)m;
        st->trailers[i].namelen = f[i].namelen;
        m += f[i].namelen;
        memcpy(m, f[i].value, f[i].valuelen);
        st->trailers[i].value = (uint8_t *)m;
        st->trailers[i].valuelen = f[i].valuelen;
        m += f[i].valuelen;
        st->trailers[i].flags = NGHTTP2_NV_FLAG_NONE;
    }
    st->out_eof = 1;
    h2_resume(h, st);
    return 0;
}

int h2_reset(h2_conn *h, h2_stream *st, uint32_t code)
{
    if (st->reset)
        return 0;
    st->reset = 1;
    st->reset_code = code;
    st->out_eof = 1;
    return nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, code) == 0 ? 0 : -EINVAL;
}

int h2_reset_flushed(h2_conn *h, h2_stream *st, uint32_t code)
{
    /* Only a body still to be framed by h2_read_body can go first; a head
     * submitted with END_STREAM has nothing left to lose. */
    if (st->reset || st->reset_pending || !st->head_sent || (st->out_eof && !h2_stream_queued(st) && !st->trailers))
        return h2_reset(h, st, code);
    st->reset_pending = 1;
    st->reset_later = code;
    st->out_eof = 1; /* nothing more may be queued */
    free(st->trailers);
    free(st->tr_mem);
    st->trailers = NULL;
    st->tr_mem = NULL;
    h2_resume(h, st);
    return 0;
}

void h2_consume(h2_conn *h, h2_stream *st, size_t len)
{
    if (len)
        nghttp2_session_consume_stream(h->s, st->id, len);
}

void h2_drain(h2_conn *h)
{
    if (h->draining || h->fatal)
        return;
    h->draining = 1;
    if (h->role == H2_SERVER) {
        nghttp2_submit_shutdown_notice(h->s);
        nghttp2_submit_ping(h->s, NGHTTP2_FLAG_NONE, NULL);
        h->drain_ping = 1;
    } else {
        nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, 0, H2_NO_ERROR, NULL, 0);
    }
}

void h2_terminate(h2_conn *h, uint32_t code)
{
    h->draining = 1;
    h->drain_ping = 0;
    nghttp2_session_terminate_session(h->s, code);
}

/* ---- the connection ---- */

h2_conn *h2_new(enum h2_role role, const struct h2_limits *limits, const struct h2_events *ev, void *ctx)
{
    h2_conn *h = xcalloc(1, sizeof *h);
    h->role = role;
    if (limits)
        h->lim = *limits;
    else
        h2_limits_default(&h->lim);
    h->ev = *ev;
    h->ctx = ctx;
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
        abort(); /* out of memory, as xmalloc would */
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, h2_on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, h2_on_frame_not_send);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, H2_DEFAULT_MAX_STREAMS);
    /* Explicit, as Debian's 1.52.0-1+deb12u1 backport and upstream 1.57 set
     * by default: the library ends the connection (GOAWAY INTERNAL_ERROR). */
    nghttp2_option_set_stream_reset_rate_limit(opt, H2_RESET_BURST, H2_RESET_PER_SEC);
    if (role == H2_CLIENT)
        nghttp2_option_set_max_reserved_remote_streams(opt, 0);
    int r = role == H2_SERVER ? nghttp2_session_server_new2(&h->s, cb, h, opt)
                              : nghttp2_session_client_new2(&h->s, cb, h, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (r != 0)
        abort();
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h->lim.max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, h->lim.window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, h->lim.max_header_list},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
    nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
    return h;
}

void h2_free(h2_conn *h)
{
    if (!h)
        return;
    while (h->streams)
        h2_stream_free(h, h->streams); /* nghttp2_session_del does not call back */
    nghttp2_session_del(h->s);
    h2_inblock_free(&h->blk);
    free(h->nv);
    free(h->out.data);
    free(h);
}

int h2_input(h2_conn *h, const uint8_t *p, size_t len)
{
    if (h->fatal)
        return NGHTTP2_ERR_EOF;
    ssize_t r = nghttp2_session_mem_recv(h->s, p, len);
    if (r < 0) {
        h->fatal = 1;
        return (int)r;
    }
    return 0;
}

static void h2_notify_writable(h2_conn *h)
{
    if (!h->notify)
        return;
    h->notify = 0;
    h2_stream *next;
    for (h2_stream *st = h->streams; st; st = next) {
        next = st->next; /* the callback may reset st, never free it */
        if (st->notify) {
            st->notify = 0;
            if (h->ev.on_writable)
                h->ev.on_writable(h->ctx, st);
        }
    }
}

int h2_output(h2_conn *h, const uint8_t **p, size_t *len)
{
    if (h->out.off == h->out.len) {
        h->out.off = h->out.len = 0;
        while (h->out.len < H2_OUT_CHUNK) {
            const uint8_t *d;
            ssize_t n = nghttp2_session_mem_send(h->s, &d);
            if (n < 0) {
                h->fatal = 1;
                return (int)n;
            }
            if (n == 0)
                break;
            size_t need = h->out.len + (size_t)n;
            if (need > h->out.cap) {
                h->out.cap = need <= H2_OUT_KEEP ? H2_OUT_KEEP : need > H2_OUT_CHUNK ? need : H2_OUT_CHUNK;
                h->out.data = xrealloc(h->out.data, h->out.cap);
            }
            memcpy(h->out.data + h->out.len, d, (size_t)n);
            h->out.len += (size_t)n;
        }
        h2_notify_writable(h);
    }
    *p = h->out.data + h->out.off;
    *len = h->out.len - h->out.off;
    return 0;
}

void h2_sent(h2_conn *h, size_t n)
{
    h->out.off += n;
    if (h->out.off >= h->out.len && h->out.cap > H2_OUT_KEEP) {
        free(h->out.data);
        h->out.data = NULL;
        h->out.off = h->out.len = h->out.cap = 0;
    }
}

int h2_done(const h2_conn *h)
{
    if (h->out.off != h->out.len)
        return 0;
    if (h->fatal)
        return !nghttp2_session_want_write(h->s);
    if (h->drain_ping)
        return 0; /* a request may be on its way: wait for the PING's ack */
    return !nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s);
}

int h2_wants_input(const h2_conn *h)
{
    return !h->fatal && nghttp2_session_want_read(h->s);
}

const char *h2_strerror(int err)
{
    return nghttp2_strerror(err);
}

int h2_can_open(const h2_conn *h)
{
    return h->role == H2_CLIENT && !h->goaway_recv && !h->draining && !h->fatal &&
           h->nopen < h2_peer_max_streams(h) && nghttp2_session_get_next_stream_id(h->s) <= H2_MAX_STREAM_ID;
}

unsigned h2_open_streams(const h2_conn *h)
{
    return h->nopen;
}

uint32_t h2_peer_max_streams(const h2_conn *h)
{
    return nghttp2_session_get_remote_settings(h->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

const struct h2_stats *h2_get_stats(const h2_conn *h)
{
    return &h->stats;
}

int32_t h2_stream_id(const h2_stream *st)
{
    return st->id;
}

void *h2_stream_user(const h2_stream *st)
{
    return st->user;
}

void h2_stream_set_user(h2_stream *st, void *user)
{
    st->user = user;
}

size_t h2_stream_queued(const h2_stream *st)
{
    return st->out.len - st->out.off;
}

int h2_stream_too_large(const h2_stream *st)
{
    return st->too_large;
}
