/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/2 blocks to and from struct http_head (see http_h2_map.h). */
#include <errno.h>
#include <string.h>

#include "buf.h"
#include "http_h2_map.h"

static int h2map_is(const struct h2_field *f, const char *lit)
{
    size_t l = strlen(lit);
    return f->namelen == l && memcmp(f->name, lit, l) == 0;
}

/* A decimal number of at most 18 digits; -1 when it is not one. */
static long long h2map_number(const char *p, size_t len)
{
    long long v = 0;
    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

int h2map_head_from(const struct h2_field *f, size_t n, int is_request, struct http_head *h, struct http_field *out,
                    size_t cap, struct http_span *proto)
{
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    if (proto)
        *proto = (struct http_span){NULL, 0};
    size_t total = 0, k = 0;
    const struct h2_field *conn = h2_field_find(f, n, "connection"); /* refused by nghttp2; kept for safety */
    for (size_t i = 0; i < n; i++) {
        struct http_span v = {f[i].value, f[i].valuelen};
        total += f[i].namelen + f[i].valuelen;
        if (total > HTTP_MSG_MAX_HEAD)
            return -E2BIG;
        if (f[i].namelen && f[i].name[0] == ':') {
            if (is_request && h2map_is(&f[i], ":method"))
                h->method = v;
            else if (is_request && h2map_is(&f[i], ":scheme"))
                h->scheme = v;
            else if (is_request && h2map_is(&f[i], ":authority"))
                h->authority = v;
            else if (is_request && h2map_is(&f[i], ":path"))
                h->path = v;
            else if (!is_request && h2map_is(&f[i], ":status")) {
                long long s = h2map_number(v.p, v.len);
                if (s < 100 || s > 599)
                    return -EINVAL;
                h->status = (int)s;
            }
            continue; /* nghttp2 refused unknown pseudo-headers already */
        }
        if (h2map_is(&f[i], "content-length")) {
            long long l = h2map_number(v.p, v.len);
            if (l < 0)
                return -EINVAL;
            h->content_length = l;
            continue;
        }
        if (h2map_is(&f[i], H2MAP_PROTO_FIELD)) {
            if (proto)
                *proto = v;
            continue;
        }
        if (is_request && h2map_is(&f[i], "host")) {
            if (!h->authority.len)
                h->authority = v;
            continue;
        }
        if (http_field_is_hop_by_hop(f[i].name, f[i].namelen, conn ? conn->value : NULL, conn ? conn->valuelen : 0))
            continue;
        if (k == cap)
            return -E2BIG;
        out[k].name = (struct http_span){f[i].name, f[i].namelen};
        out[k].value = v;
        k++;
    }
    h->fields = out;
    h->nfields = k;
    return 0;
}

static int h2map_add(struct h2map_out *o, const char *name, size_t namelen, const char *value, size_t valuelen,
                     int lower)
{
    if (o->n == H2MAP_MAX_OUT || o->used + namelen + valuelen > sizeof o->mem)
        return -E2BIG;
    char *m = o->mem + o->used;
    for (size_t i = 0; i < namelen; i++) {
        char c = name[i];
        m[i] = lower && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    memcpy(m + namelen, value, valuelen);
    o->f[o->n++] = (struct h2_field){m, namelen, m + namelen, valuelen};
    o->used += namelen + valuelen;
    return 0;
}

static int h2map_lit(struct h2map_out *o, const char *name, const struct http_span *v)
{
    return h2map_add(o, name, strlen(name), v->p ? v->p : "", v->len, 0);
}

static int h2map_is_grpc(const struct http_head *h)
{
    for (size_t i = 0; i < h->nfields; i++)
        if (http_name_is(h->fields[i].name.p, h->fields[i].name.len, "content-type"))
            return h->fields[i].value.len >= 16 && strncmp(h->fields[i].value.p, "application/grpc", 16) == 0;
    return 0;
}

int h2map_block(const struct http_head *h, int is_request, const char *proto, struct h2map_out *o)
{
    int r = 0;
    char num[UINT_TEXT_MAX];
    o->n = o->used = 0;
    if (is_request) {
        r |= h2map_lit(o, ":method", &h->method);
        if (!http_name_is(h->method.p, h->method.len, "CONNECT")) {
            struct http_span http = {"http", 4};
            r |= h2map_lit(o, ":scheme", h->scheme.len ? &h->scheme : &http);
            r |= h2map_lit(o, ":path", &h->path);
        }
        if (h->authority.len)
            r |= h2map_lit(o, ":authority", &h->authority);
    } else if (h->status) {
        r |= h2map_add(o, ":status", 7, num, uint_text(num, (unsigned)h->status, 10), 0);
    }
    for (size_t i = 0; i < h->nfields && r == 0; i++) {
        const struct http_field *f = &h->fields[i];
        /* The model holds no connection-specific fields; te: trailers is
         * the one HTTP/2 allows (gRPC asks for it), added below. */
        if (http_name_is(f->name.p, f->name.len, "te") || http_name_is(f->name.p, f->name.len, H2MAP_PROTO_FIELD))
            continue;
        r |= h2map_add(o, f->name.p, f->name.len, f->value.p, f->value.len, 1);
    }
    if (r == 0 && (is_request || h->status) && h->content_length >= 0) {
        r |= h2map_add(o, "content-length", 14, num, uint_text(num, (unsigned long long)h->content_length, 10), 0);
    }
    if (r == 0 && is_request && h2map_is_grpc(h))
        r |= h2map_add(o, "te", 2, "trailers", 8, 0);
    if (r == 0 && is_request && proto)
        r |= h2map_add(o, H2MAP_PROTO_FIELD, strlen(H2MAP_PROTO_FIELD), proto, strlen(proto), 0);
    return r ? -E2BIG : 0;
}

int h2map_grpc_status(const struct http_head *h)
{
    for (size_t i = 0; i < h->nfields; i++)
        if (http_name_is(h->fields[i].name.p, h->fields[i].name.len, "grpc-status")) {
            long long v = h2map_number(h->fields[i].value.p, h->fields[i].value.len);
            return v >= 0 && v <= 99 ? (int)v : -1;
        }
    return -1;
}
