/* SPDX-License-Identifier: Apache-2.0 */
/* Client messages and the line framer of the proxy protocol; see proto.h. */
#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "xalloc.h"

#define PREFIX_DEST "destination:"
#define PREFIX_POLICY "policy:"

int proto_parse_id(const char *id, size_t len, struct proto_msg *m, char *err, size_t errlen)
{
    char text[PROTO_MAX_ID + 1];
    if (len > PROTO_MAX_ID || memchr(id, '\0', len)) {
        errbuf_set(err, errlen, "id: longer than %d bytes or not text", PROTO_MAX_ID);
        return -EINVAL;
    }
    memcpy(text, id, len);
    text[len] = '\0';
    size_t dl = strlen(PREFIX_DEST), pl = strlen(PREFIX_POLICY);
    if (len > dl && memcmp(text, PREFIX_DEST, dl) == 0) {
        if (addr_parse_dest(text + dl, &m->dest) < 0) {
            errbuf_set(err, errlen, "id \"%.80s\": expected destination:IPv4:PORT or destination:[IPv6]:PORT",
                       text);
            return -EINVAL;
        }
        m->sub = PROTO_SUB_DESTINATION;
        if (m->dest.family == AF_INET6)
            snprintf(m->id, sizeof m->id, PREFIX_DEST "[%s]:%u", m->dest.ip, m->dest.port);
        else
            snprintf(m->id, sizeof m->id, PREFIX_DEST "%s:%u", m->dest.ip, m->dest.port);
        return 0;
    }
    if (len > pl && memcmp(text, PREFIX_POLICY, pl) == 0) {
        const char *ns = text + pl, *slash = strchr(ns, '/');
        size_t nl = slash ? (size_t)(slash - ns) : 0;
        if (!slash || !spiffe_valid_namespace(ns, nl) || !spiffe_valid_sa(slash + 1, strlen(slash + 1))) {
            errbuf_set(err, errlen, "id \"%.80s\": expected policy:NAMESPACE/POD", text);
            return -EINVAL;
        }
        m->sub = PROTO_SUB_POLICY;
        memcpy(m->ns, ns, nl);
        m->ns[nl] = '\0';
        snprintf(m->name, sizeof m->name, "%s", slash + 1);
        snprintf(m->id, sizeof m->id, PREFIX_POLICY "%s/%s", m->ns, m->name);
        return 0;
    }
    errbuf_set(err, errlen, "id \"%.80s\": expected destination:ADDR:PORT or policy:NAMESPACE/POD", text);
    return -EINVAL;
}

int proto_parse(const char *line, size_t len, struct proto_msg *m, char *err, size_t errlen)
{
    static const char *const types[] = {"subscribe", "unsubscribe", "ack", "nack"};
    json_error_t jerr;
    int rc = -EINVAL;
    memset(m, 0, sizeof *m);
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        errbuf_set(err, errlen, "not JSON: %s at byte %d", jerr.text, jerr.position);
        return -EINVAL;
    }
    if (!json_is_object(o)) {
        errbuf_set(err, errlen, "expected a JSON object");
        goto out;
    }
    json_t *type = json_object_get(o, "type"), *id = json_object_get(o, "id");
    int t = -1;
    for (int i = 0; i < 4 && json_is_string(type); i++)
        if (strcmp(json_string_value(type), types[i]) == 0)
            t = i;
    if (t < 0) {
        errbuf_set(err, errlen, "type: expected subscribe, unsubscribe, ack or nack");
        goto out;
    }
    m->type = (enum proto_type)t;
    if (!json_is_string(id)) {
        errbuf_set(err, errlen, "id: expected a string");
        goto out;
    }
    if (proto_parse_id(json_string_value(id), json_string_length(id), m, err, errlen) < 0)
        goto out;
    if (m->type == PROTO_ACK || m->type == PROTO_NACK) {
        json_t *v = json_object_get(o, "version");
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            errbuf_set(err, errlen, "version: expected a positive integer");
            goto out;
        }
        m->version = (uint64_t)json_integer_value(v);
    }
    if (m->type == PROTO_NACK) {
        json_t *r = json_object_get(o, "reason");
        if (!json_is_string(r) || json_string_length(r) == 0 || json_string_length(r) > PROTO_MAX_REASON ||
            strlen(json_string_value(r)) != json_string_length(r)) {
            errbuf_set(err, errlen, "reason: expected a string of 1-%d bytes", PROTO_MAX_REASON);
            goto out;
        }
        snprintf(m->reason, sizeof m->reason, "%s", json_string_value(r));
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

void proto_framer_init(struct proto_framer *f, size_t max)
{
    f->max = max;
    f->skipped = 0;
    buf_init(&f->line, max);
}

void proto_framer_free(struct proto_framer *f)
{
    buf_free(&f->line);
}

static int proto_deliver(struct proto_framer *f, proto_line_fn *fn, void *arg)
{
    size_t n = f->line.len;
    if (n > 0 && f->line.data[n - 1] == '\r')
        n--;
    int rc = fn(arg, f->line.data ? f->line.data : "", n, 0);
    buf_reset(&f->line);
    return rc;
}

int proto_framer_feed(struct proto_framer *f, const char *data, size_t len, proto_line_fn *fn, void *arg)
{
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (data + i)) : len - i;
        int rc = 0;
        if (f->skipped) {
            f->skipped += n;
        } else if (f->line.len + n > f->max) {
            /* Reported once, then dropped up to its newline. */
            f->skipped = f->line.len + n;
            buf_reset(&f->line);
            rc = fn(arg, NULL, f->skipped, 1);
        } else {
            buf_append(&f->line, data + i, n); /* within max: cannot fail */
        }
        i += n;
        if (rc)
            return rc;
        if (nl) {
            i++;
            if (f->skipped)
                f->skipped = 0;
            else if ((rc = proto_deliver(f, fn, arg)) != 0)
                return rc;
        }
    }
    return 0;
}

int proto_framer_finish(struct proto_framer *f, proto_line_fn *fn, void *arg)
{
    if (f->skipped || f->line.len == 0) {
        f->skipped = 0;
        return 0;
    }
    return proto_deliver(f, fn, arg);
}

char *proto_line(json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(msg);
    if (!text)
        abort(); /* only out of memory: every message is built from valid values */
    size_t n = strlen(text);
    char *line = xmalloc(n + 2);
    memcpy(line, text, n);
    line[n] = '\n';
    line[n + 1] = '\0';
    free(text);
    return line;
}
