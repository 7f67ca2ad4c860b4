/* SPDX-License-Identifier: Apache-2.0 */
/* Discovery's answers for outbound destinations: the parser of the
 * server's stream messages, the store of snapshots, and the dial decision
 * (see dest.h). The mutex orders a get against a swap and guards the queue
 * of wanted subscriptions; everything else is the writer's thread alone. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dest.h"
#include "errbuf.h"
#include "parse.h"
#include "xalloc.h"

/* ---------- ids and addresses ---------- */

static int dest_parse_hostport(const char *s, struct sockaddr_storage *out)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *port;
    memset(out, 0, sizeof *out);
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host)
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        port = close + 2;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
            return -EINVAL;
        in6->sin6_family = AF_INET6;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host)
            return -EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
            return -EINVAL;
        in->sin_family = AF_INET;
    }
    uint16_t p;
    if (parse_port(port, &p) < 0)
        return -EINVAL;
    if (out->ss_family == AF_INET)
        ((struct sockaddr_in *)out)->sin_port = htons(p);
    else
        ((struct sockaddr_in6 *)out)->sin6_port = htons(p);
    return 0;
}

int dest_parse_id(const char *id, struct sockaddr_storage *dst)
{
    memset(dst, 0, sizeof *dst);
    if (strlen(id) > DEST_MAX_ID)
        return -EINVAL;
    if (strncmp(id, "destination:", 12) == 0)
        return dest_parse_hostport(id + 12, dst);
    if (strncmp(id, "policy:", 7) == 0) {
        const char *slash = strchr(id + 7, '/');
        if (!slash || slash == id + 7 || !slash[1])
            return -EINVAL;
        if (!spiffe_valid_namespace(id + 7, (size_t)(slash - id - 7)) ||
            !spiffe_valid_sa(slash + 1, strlen(slash + 1)))
            return -EINVAL;
        dst->ss_family = AF_UNSPEC;
        return 0;
    }
    return -EINVAL;
}

void dest_format_id(const struct sockaddr_storage *dst, char *out, size_t outlen)
{
    char a[INET6_ADDRSTRLEN] = "?";
    if (dst->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)dst;
        inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof a);
        snprintf(out, outlen, "destination:[%s]:%u", a, (unsigned)ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)dst;
        inet_ntop(AF_INET, &in->sin_addr, a, sizeof a);
        snprintf(out, outlen, "destination:%s:%u", a, (unsigned)ntohs(in->sin_port));
    }
}

/* Orders keys: family, address bytes, port. */
static int dest_cmp(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return a->ss_family < b->ss_family ? -1 : 1;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
        int c = memcmp(&x->sin_addr, &y->sin_addr, 4);
        if (c)
            return c;
        return ntohs(x->sin_port) < ntohs(y->sin_port) ? -1 : ntohs(x->sin_port) > ntohs(y->sin_port);
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
    int c = memcmp(&x->sin6_addr, &y->sin6_addr, 16);
    if (c)
        return c;
    return ntohs(x->sin6_port) < ntohs(y->sin6_port) ? -1 : ntohs(x->sin6_port) > ntohs(y->sin6_port);
}

/* ---------- answers ---------- */

void dest_answer_free(struct dest_answer *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->neps; i++)
        free(a->eps[i].identity);
    free(a->eps);
    free(a->identity);
    free(a->error);
    free(a);
}

/* A boolean field that must be present. */
static int dest_bool(const json_t *o, const char *key, unsigned *out, const char *where, char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_boolean(v)) {
        errbuf_set(err, errlen, "%s.%s: expected a boolean", where, key);
        return -EINVAL;
    }
    *out = json_is_true(v) ? 1 : 0;
    return 0;
}

/* A SPIFFE ID of our trust domain, copied. */
static int dest_identity(const json_t *v, const char *trust_domain, char **out, const char *where, char *err,
                         size_t errlen)
{
    const char *s = json_string_value(v);
    struct spiffe_id id;
    if (!s || spiffe_parse(s, strlen(s), &id) < 0) {
        errbuf_set(err, errlen, "%s.identity: expected a SPIFFE ID", where);
        return -EINVAL;
    }
    if (strcmp(id.trust_domain, trust_domain) != 0) {
        errbuf_set(err, errlen, "%s.identity: %.200s is not of trust domain %.200s", where, s, trust_domain);
        return -EINVAL;
    }
    *out = xstrdup(s);
    return 0;
}

static int dest_parse_endpoint(const json_t *e, int family, const char *trust_domain, struct dest_endpoint *ep,
                               size_t i, char *err, size_t errlen)
{
    char where[64];
    snprintf(where, sizeof where, "service.endpoints[%zu]", i);
    const char *addr = json_string_value(json_object_get(e, "address"));
    json_t *port = json_object_get(e, "port");
    unsigned ready, serving, terminating, meshed, opaque = 0;
    memset(ep, 0, sizeof *ep);
    if (!json_is_object(e)) {
        errbuf_set(err, errlen, "%s: expected an object", where);
        return -EINVAL;
    }
    if (!json_is_integer(port) || json_integer_value(port) < 1 || json_integer_value(port) > 65535) {
        errbuf_set(err, errlen, "%s.port: expected an integer 1-65535", where);
        return -EINVAL;
    }
    uint16_t p = (uint16_t)json_integer_value(port);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ep->addr;
        if (!addr || inet_pton(AF_INET, addr, &in->sin_addr) != 1) {
            errbuf_set(err, errlen, "%s.address: expected an IPv4 address", where);
            return -EINVAL;
        }
        in->sin_family = AF_INET;
        in->sin_port = htons(p);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ep->addr;
        if (!addr || inet_pton(AF_INET6, addr, &in6->sin6_addr) != 1) {
            errbuf_set(err, errlen, "%s.address: expected an IPv6 address", where);
            return -EINVAL;
        }
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(p);
    }
    if (dest_bool(e, "ready", &ready, where, err, errlen) < 0 ||
        dest_bool(e, "serving", &serving, where, err, errlen) < 0 ||
        dest_bool(e, "terminating", &terminating, where, err, errlen) < 0 ||
        dest_bool(e, "meshed", &meshed, where, err, errlen) < 0)
        return -EINVAL;
    if (json_object_get(e, "opaque") && dest_bool(e, "opaque", &opaque, where, err, errlen) < 0)
        return -EINVAL;
    ep->ready = ready;
    ep->serving = serving;
    ep->terminating = terminating;
    ep->meshed = meshed;
    ep->opaque = opaque;
    if (meshed)
        return dest_identity(json_object_get(e, "identity"), trust_domain, &ep->identity, where, err, errlen);
    return 0;
}

int dest_parse_addr(const char *hostport, struct sockaddr_storage *dst)
{
    return dest_parse_hostport(hostport, dst);
}

/* service.timeouts (optional): each member optional, an integer of ms in
 * [min, DEST_MAX_TIMEOUT_MS]; unknown members are ignored (added later
 * within version 1). */
static int dest_parse_timeouts(const json_t *t, struct dest_timeouts *out, char *err, size_t errlen)
{
    static const struct {
        const char *key;
        long min;
        size_t off;
    } keys[] = {
        {"requestMs", 0, offsetof(struct dest_timeouts, request_ms)},
        {"responseHeaderMs", 0, offsetof(struct dest_timeouts, header_ms)},
        {"idleMs", 1, offsetof(struct dest_timeouts, idle_ms)},
    };
    if (!t)
        return 0;
    if (!json_is_object(t)) {
        errbuf_set(err, errlen, "service.timeouts: expected an object");
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const json_t *v = json_object_get(t, keys[i].key);
        if (!v)
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < keys[i].min ||
            json_integer_value(v) > DEST_MAX_TIMEOUT_MS) {
            errbuf_set(err, errlen, "service.timeouts.%s: expected an integer %ld-%d", keys[i].key, keys[i].min,
                       DEST_MAX_TIMEOUT_MS);
            return -EINVAL;
        }
        *(long *)((char *)out + keys[i].off) = (long)json_integer_value(v);
    }
    return 0;
}

static int dest_parse_service(const json_t *svc, struct dest_answer *a, const char *trust_domain, char *err,
                              size_t errlen)
{
    const json_t *port = json_object_get(svc, "port"), *eps = json_object_get(svc, "endpoints");
    const json_t *opq = json_object_get(svc, "opaque");
    if (!json_is_object(svc)) {
        errbuf_set(err, errlen, "service: expected an object");
        return -EINVAL;
    }
    if (!json_is_object(port)) {
        errbuf_set(err, errlen, "service.port: expected an object");
        return -EINVAL;
    }
    const json_t *ap = json_object_get(port, "appProtocol");
    if (ap) {
        const char *s = json_string_value(ap);
        if (!s || !*s || strlen(s) > DEST_MAX_APP_PROTOCOL) {
            errbuf_set(err, errlen, "service.port.appProtocol: expected a string of 1-%d bytes", DEST_MAX_APP_PROTOCOL);
            return -EINVAL;
        }
        snprintf(a->app_protocol, sizeof a->app_protocol, "%s", s);
    }
    if (opq && !json_is_boolean(opq)) {
        errbuf_set(err, errlen, "service.opaque: expected a boolean");
        return -EINVAL;
    }
    a->opaque = json_is_true(opq);
    if (dest_parse_timeouts(json_object_get(svc, "timeouts"), &a->timeouts, err, errlen) < 0)
        return -EINVAL;
    if (!json_is_array(eps)) {
        errbuf_set(err, errlen, "service.endpoints: expected a list");
        return -EINVAL;
    }
    size_t n = json_array_size(eps);
    if (n > DEST_MAX_ENDPOINTS) {
        errbuf_set(err, errlen, "service.endpoints: %zu endpoints, at most %d", n, DEST_MAX_ENDPOINTS);
        return -EINVAL;
    }
    a->eps = n ? xcalloc(n, sizeof *a->eps) : NULL;
    for (size_t i = 0; i < n; i++) {
        if (dest_parse_endpoint(json_array_get(eps, i), a->dst.ss_family, trust_domain, &a->eps[i], i, err,
                                errlen) < 0) {
            a->neps = i + 1; /* freed with the answer */
            return -EINVAL;
        }
        a->neps = i + 1;
    }
    return 0;
}

static int dest_parse_policy(const json_t *o, struct dest_answer *a, char *err, size_t errlen)
{
    const char *mode = json_string_value(json_object_get(o, "mtlsMode"));
    const char *pol = json_string_value(json_object_get(o, "inboundPolicy"));
    const json_t *allow = json_object_get(o, "allowFrom");
    if (!mode || (strcmp(mode, "STRICT") != 0 && strcmp(mode, "PERMISSIVE") != 0)) {
        errbuf_set(err, errlen, "mtlsMode: expected STRICT or PERMISSIVE");
        return -EINVAL;
    }
    a->policy.mtls_mode = strcmp(mode, "STRICT") == 0 ? MTLS_STRICT : MTLS_PERMISSIVE;
    if (!pol || authz_parse_policy(pol, &a->policy.policy) < 0) {
        errbuf_set(err, errlen, "inboundPolicy: expected same-namespace, mesh, deny or allow-all");
        return -EINVAL;
    }
    if (allow && !json_is_array(allow)) {
        errbuf_set(err, errlen, "allowFrom: expected a list");
        return -EINVAL;
    }
    size_t n = json_array_size(allow);
    if (n > AUTHZ_MAX_RULES) {
        errbuf_set(err, errlen, "allowFrom: %zu entries, at most %d", n, AUTHZ_MAX_RULES);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(allow, i));
        size_t one = 0;
        char e2[200];
        /* One item at a time, so a comma inside an item is an error too. */
        if (!s || strchr(s, ',') || authz_parse_allow_from(s, &a->policy.rules[i], &one, e2, sizeof e2) < 0 ||
            one != 1) {
            errbuf_set(err, errlen, "allowFrom[%zu]: expected ns/sa or ns/*", i);
            return -EINVAL;
        }
    }
    a->policy.nrules = n;
    return 0;
}

/* An answer object for the subscription whose key is dst (AF_UNSPEC: a
 * policy id). */
static int dest_parse_answer(const json_t *o, const struct sockaddr_storage *dst, const char *trust_domain,
                             struct dest_answer **out, char *err, size_t errlen)
{
    struct dest_answer *a = xcalloc(1, sizeof *a);
    a->timeouts.request_ms = a->timeouts.header_ms = a->timeouts.idle_ms = -1; /* unset: the settings apply */
    const json_t *ver = json_object_get(o, "version");
    const char *kind = json_string_value(json_object_get(o, "kind"));
    int r = -EINVAL;
    *out = NULL;
    if (!json_is_object(o)) {
        errbuf_set(err, errlen, "answer: expected an object");
        goto out;
    }
    if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
        errbuf_set(err, errlen, "answer.version: expected 1, the version this proxy reads");
        goto out;
    }
    if (!kind) {
        errbuf_set(err, errlen, "answer.kind: expected a string");
        goto out;
    }
    if (strcmp(kind, "error") == 0) {
        const char *e = json_string_value(json_object_get(o, "error"));
        a->kind = DEST_KIND_ERROR;
        a->error = xstrdup(e ? e : "");
        r = 0;
        goto out;
    }
    if (dst->ss_family == AF_UNSPEC) {
        if (strcmp(kind, "policy") != 0) {
            errbuf_set(err, errlen, "answer.kind: %.40s for a policy subscription", kind);
            goto out;
        }
        a->kind = DEST_KIND_POLICY;
        r = dest_parse_policy(o, a, err, errlen);
        goto out;
    }
    const char *d = json_string_value(json_object_get(o, "destination"));
    if (!d || dest_parse_hostport(d, &a->dst) < 0 || dest_cmp(&a->dst, dst) != 0) {
        errbuf_set(err, errlen, "answer.destination: expected the address subscribed to");
        goto out;
    }
    if (strcmp(kind, "service") == 0) {
        a->kind = DEST_KIND_SERVICE;
        r = dest_parse_service(json_object_get(o, "service"), a, trust_domain, err, errlen);
    } else if (strcmp(kind, "pod") == 0) {
        const json_t *pod = json_object_get(o, "pod");
        const json_t *opq = json_object_get(pod, "opaque");
        a->kind = DEST_KIND_POD;
        if (!json_is_object(pod)) {
            errbuf_set(err, errlen, "pod: expected an object");
            goto out;
        }
        if (opq && !json_is_boolean(opq)) {
            errbuf_set(err, errlen, "pod.opaque: expected a boolean");
            goto out;
        }
        a->opaque = json_is_true(opq);
        r = dest_identity(json_object_get(pod, "identity"), trust_domain, &a->identity, "pod", err, errlen);
    } else if (strcmp(kind, "unknown") == 0) {
        a->kind = DEST_KIND_UNKNOWN;
        r = 0;
    } else {
        errbuf_set(err, errlen, "answer.kind: unknown kind %.40s", kind);
    }
out:
    if (r < 0)
        dest_answer_free(a);
    else
        *out = a;
    return r;
}

void dest_msg_clear(struct dest_msg *m)
{
    dest_answer_free(m->answer);
    memset(m, 0, sizeof *m);
}

int dest_parse_msg(const char *line, size_t len, const char *trust_domain, struct dest_msg *m, char *err,
                   size_t errlen)
{
    json_error_t je;
    int r = -EINVAL;
    memset(m, 0, sizeof *m);
    if (len > DEST_MAX_LINE) {
        errbuf_set(err, errlen, "message of %zu bytes, at most %d", len, DEST_MAX_LINE);
        return -EINVAL;
    }
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je); /* new reference */
    if (!o) {
        errbuf_set(err, errlen, "not JSON: %s", je.text);
        return -EINVAL;
    }
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!json_is_object(o) || !type) {
        errbuf_set(err, errlen, "expected an object with a type");
        goto out;
    }
    if (strcmp(type, "hello") == 0) {
        const json_t *proto = json_object_get(o, "protocol");
        const json_t *subs = json_object_get(json_object_get(o, "limits"), "subscriptions");
        m->type = DEST_MSG_HELLO;
        if (!json_is_integer(proto) || json_integer_value(proto) != 1) {
            errbuf_set(err, errlen, "hello.protocol: expected 1, the version this proxy speaks");
            goto out;
        }
        if (subs && (!json_is_integer(subs) || json_integer_value(subs) < 1)) {
            errbuf_set(err, errlen, "hello.limits.subscriptions: expected a positive integer");
            goto out;
        }
        m->max_subscriptions = subs ? (unsigned long)json_integer_value(subs) : DEST_MAX_ENTRIES;
        r = 0;
    } else if (strcmp(type, "error") == 0) {
        const char *code = json_string_value(json_object_get(o, "code"));
        const char *text = json_string_value(json_object_get(o, "error"));
        const char *id = json_string_value(json_object_get(o, "id"));
        m->type = DEST_MSG_ERROR;
        snprintf(m->code, sizeof m->code, "%s", code ? code : "");
        snprintf(m->error, sizeof m->error, "%s", text ? text : "");
        if (id && strlen(id) <= DEST_MAX_ID)
            memcpy(m->id, id, strlen(id) + 1);
        r = 0;
    } else if (strcmp(type, "answer") == 0) {
        const char *id = json_string_value(json_object_get(o, "id"));
        const json_t *ver = json_object_get(o, "version");
        struct sockaddr_storage key;
        m->type = DEST_MSG_HELLO; /* not nackable until the id and version are read */
        if (!id || dest_parse_id(id, &key) < 0) {
            errbuf_set(err, errlen, "answer.id: expected a subscription id");
            goto out;
        }
        if (!json_is_integer(ver) || json_integer_value(ver) < 1) {
            errbuf_set(err, errlen, "answer.version: expected a positive integer");
            goto out;
        }
        m->type = DEST_MSG_ANSWER;
        memcpy(m->id, id, strlen(id) + 1);
        m->version = (uint64_t)json_integer_value(ver);
        r = dest_parse_answer(json_object_get(o, "answer"), &key, trust_domain, &m->answer, err, errlen);
    } else {
        errbuf_set(err, errlen, "unknown message type %.40s", type);
    }
out:
    json_decref(o);
    return r;
}

/* ---------- the store ---------- */

struct dest_store {
    pthread_mutex_t mu;
    struct dest_snap *current;
    atomic_uint_fast64_t generation;
    struct sockaddr_storage wants[DEST_MAX_WANTS];
    size_t nwants;
    void (*on_publish)(void *);
    void *on_publish_arg;
};

static void dest_entry_put(struct dest_entry *e)
{
    if (e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) {
        dest_answer_free(e->ans);
        free(e);
    }
}

static struct dest_snap *dest_snap_alloc(size_t n, uint64_t generation)
{
    struct dest_snap *s = xcalloc(1, sizeof *s);
    atomic_init(&s->refs, 1);
    s->generation = generation;
    s->n = n;
    s->v = n ? xcalloc(n, sizeof *s->v) : NULL;
    return s;
}

void dest_snap_put(const struct dest_snap *cs)
{
    struct dest_snap *s = (struct dest_snap *)cs; /* the count is the one mutable field */
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->n; i++)
        dest_entry_put(s->v[i]);
    free(s->v);
    free(s);
}

struct dest_store *dest_store_new(void)
{
    struct dest_store *st = xcalloc(1, sizeof *st);
    pthread_mutex_init(&st->mu, NULL);
    st->current = dest_snap_alloc(0, 1);
    atomic_init(&st->generation, 1);
    return st;
}

void dest_store_free(struct dest_store *st)
{
    if (!st)
        return;
    dest_snap_put(st->current);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

const struct dest_snap *dest_store_get(struct dest_store *st)
{
    pthread_mutex_lock(&st->mu);
    struct dest_snap *s = st->current;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&st->mu);
    return s;
}

void dest_store_on_publish(struct dest_store *st, void (*fn)(void *), void *arg)
{
    st->on_publish = fn;
    st->on_publish_arg = arg;
}

uint64_t dest_store_generation(struct dest_store *st)
{
    return atomic_load(&st->generation);
}

static size_t dest_snap_lower(const struct dest_snap *s, const struct sockaddr_storage *dst)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (dest_cmp(&s->v[mid]->dst, dst) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct dest_entry *dest_snap_find(const struct dest_snap *s, const struct sockaddr_storage *dst)
{
    size_t i = dest_snap_lower(s, dst);
    return i < s->n && dest_cmp(&s->v[i]->dst, dst) == 0 ? s->v[i] : NULL;
}

int dest_store_timeouts(struct dest_store *st, const struct sockaddr_storage *dst, struct dest_timeouts *out)
{
    const struct dest_snap *snap = dest_store_get(st);
    const struct dest_entry *e = dest_snap_find(snap, dst);
    int found = e && e->state == DEST_READY && e->ans && e->ans->kind == DEST_KIND_SERVICE;
    if (found)
        *out = e->ans->timeouts;
    else
        out->request_ms = out->header_ms = out->idle_ms = -1;
    dest_snap_put(snap);
    return found;
}

int dest_store_want(struct dest_store *st, const struct sockaddr_storage *dst)
{
    int r = 1;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->nwants; i++)
        if (dest_cmp(&st->wants[i], dst) == 0) {
            r = 0;
            goto out;
        }
    if (st->nwants == DEST_MAX_WANTS) {
        r = -ENOSPC;
        goto out;
    }
    st->wants[st->nwants++] = *dst;
out:
    pthread_mutex_unlock(&st->mu);
    return r;
}

size_t dest_store_take_wants(struct dest_store *st, struct sockaddr_storage *out, size_t max)
{
    pthread_mutex_lock(&st->mu);
    size_t n = st->nwants < max ? st->nwants : max;
    memcpy(out, st->wants, n * sizeof *out);
    memmove(st->wants, st->wants + n, (st->nwants - n) * sizeof *st->wants);
    st->nwants -= n;
    pthread_mutex_unlock(&st->mu);
    return n;
}

/* Publishes next (the writer's new snapshot); the old one goes with its
 * last holder. */
static void dest_store_publish(struct dest_store *st, struct dest_snap *next)
{
    pthread_mutex_lock(&st->mu);
    struct dest_snap *old = st->current;
    next->generation = old->generation + 1;
    st->current = next;
    atomic_store(&st->generation, next->generation);
    pthread_mutex_unlock(&st->mu);
    dest_snap_put(old);
    if (st->on_publish)
        st->on_publish(st->on_publish_arg);
}

/* The writer's own view: only its thread swaps, so no pin is needed. */
static struct dest_snap *dest_store_cur(struct dest_store *st)
{
    return st->current;
}

/* A copy of the current snapshot with slot i replaced by e (e NULL:
 * removed; insert: e goes in before i). References: the copy takes one on
 * every entry it keeps; e's own reference moves in. */
static struct dest_snap *dest_snap_edit(const struct dest_snap *cur, size_t i, struct dest_entry *e, int insert)
{
    size_t n = cur->n + (insert ? 1 : 0) - (!insert && !e ? 1 : 0);
    struct dest_snap *s = dest_snap_alloc(n, 0);
    size_t k = 0;
    for (size_t j = 0; j < cur->n; j++) {
        if (j == i) {
            if (insert) {
                s->v[k++] = e;
            } else {
                if (e)
                    s->v[k++] = e;
                continue; /* the replaced or removed entry: not kept */
            }
        }
        atomic_fetch_add_explicit(&cur->v[j]->refs, 1, memory_order_relaxed);
        s->v[k++] = cur->v[j];
    }
    if (insert && i == cur->n)
        s->v[k++] = e;
    return s;
}

static struct dest_entry *dest_entry_new(const struct sockaddr_storage *dst, const struct dest_entry *prev,
                                         uint64_t now_ms)
{
    struct dest_entry *e = xcalloc(1, sizeof *e);
    atomic_init(&e->refs, 1);
    e->dst = *dst;
    atomic_init(&e->rr, prev ? atomic_load(&((struct dest_entry *)prev)->rr) : 0);
    atomic_init(&e->last_used_ms, prev ? atomic_load(&((struct dest_entry *)prev)->last_used_ms) : now_ms);
    return e;
}

int dest_store_add_pending(struct dest_store *st, const struct sockaddr_storage *dst, uint64_t now_ms)
{
    struct dest_snap *cur = dest_store_cur(st);
    size_t i = dest_snap_lower(cur, dst);
    if (i < cur->n && dest_cmp(&cur->v[i]->dst, dst) == 0)
        return 0;
    if (cur->n >= DEST_MAX_ENTRIES)
        return -ENOSPC;
    struct dest_entry *e = dest_entry_new(dst, NULL, now_ms);
    e->state = DEST_PENDING;
    dest_store_publish(st, dest_snap_edit(cur, i, e, 1));
    return 0;
}

int dest_store_fail(struct dest_store *st, const struct sockaddr_storage *dst)
{
    struct dest_snap *cur = dest_store_cur(st);
    size_t i = dest_snap_lower(cur, dst);
    if (i == cur->n || dest_cmp(&cur->v[i]->dst, dst) != 0)
        return -ENOENT;
    if (cur->v[i]->state != DEST_PENDING)
        return 0; /* a good answer stays; a failed one is failed already */
    struct dest_entry *e = dest_entry_new(dst, cur->v[i], 0);
    e->state = DEST_FAILED;
    dest_store_publish(st, dest_snap_edit(cur, i, e, 0));
    return 0;
}

int dest_store_apply(struct dest_store *st, const struct sockaddr_storage *dst, struct dest_answer *ans,
                     uint64_t version, uint64_t epoch)
{
    struct dest_snap *cur = dest_store_cur(st);
    size_t i = dest_snap_lower(cur, dst);
    if (i == cur->n || dest_cmp(&cur->v[i]->dst, dst) != 0) {
        dest_answer_free(ans);
        return -ENOENT;
    }
    const struct dest_entry *old = cur->v[i];
    /* Versions grow per server process; a new connection (epoch) starts over. */
    if (old->state == DEST_READY && old->epoch == epoch && version <= old->version) {
        dest_answer_free(ans);
        return -ESTALE;
    }
    if (ans->kind == DEST_KIND_ERROR) {
        dest_answer_free(ans);
        return old->state == DEST_PENDING ? dest_store_fail(st, dst) : 0;
    }
    struct dest_entry *e = dest_entry_new(dst, old, 0);
    e->state = DEST_READY;
    e->ans = ans;
    e->version = version;
    e->epoch = epoch;
    dest_store_publish(st, dest_snap_edit(cur, i, e, 0));
    return 0;
}

size_t dest_store_expire(struct dest_store *st, uint64_t now_ms, uint64_t idle_ms, struct sockaddr_storage *out,
                         size_t max)
{
    struct dest_snap *cur = dest_store_cur(st);
    size_t removed = 0, keep = 0;
    for (size_t i = 0; i < cur->n; i++) {
        uint64_t used = atomic_load(&cur->v[i]->last_used_ms);
        if (removed < max && now_ms >= used && now_ms - used >= idle_ms)
            out[removed++] = cur->v[i]->dst;
        else
            keep++;
    }
    if (!removed)
        return 0;
    struct dest_snap *s = dest_snap_alloc(keep, 0);
    size_t k = 0, r = 0;
    for (size_t i = 0; i < cur->n; i++) {
        if (r < removed && dest_cmp(&cur->v[i]->dst, &out[r]) == 0) {
            r++;
            continue;
        }
        atomic_fetch_add_explicit(&cur->v[i]->refs, 1, memory_order_relaxed);
        s->v[k++] = cur->v[i];
    }
    dest_store_publish(st, s);
    return removed;
}

size_t dest_store_count(struct dest_store *st)
{
    return dest_store_cur(st)->n;
}

/* ---------- the dial decision ---------- */

const char *dest_route_name(enum dest_route r)
{
    static const char *names[] = {"fallback", "wait", "plain", "mtls", "no_endpoint"};
    return (unsigned)r < sizeof names / sizeof *names ? names[r] : "?";
}

void dest_choose(const struct dest_entry *ce, const struct sockaddr_storage *orig, uint64_t now_ms,
                 struct dest_target *t)
{
    struct dest_entry *e = (struct dest_entry *)ce; /* the atomics are the mutable part */
    memset(t, 0, sizeof *t);
    t->app_protocol = "";
    t->addr = *orig;
    if (!e) {
        t->route = DEST_ROUTE_FALLBACK;
        return;
    }
    atomic_store_explicit(&e->last_used_ms, now_ms, memory_order_relaxed);
    if (e->state == DEST_PENDING) {
        t->route = DEST_ROUTE_WAIT;
        return;
    }
    if (e->state == DEST_FAILED) {
        t->route = DEST_ROUTE_FALLBACK;
        return;
    }
    const struct dest_answer *a = e->ans;
    t->opaque = a->opaque;
    switch (a->kind) {
    case DEST_KIND_POD:
        t->route = DEST_ROUTE_MTLS;
        t->expect_id = a->identity;
        return;
    case DEST_KIND_SERVICE:
        break;
    default: /* unknown (policy and error never reach a destination entry) */
        t->route = DEST_ROUTE_PLAIN;
        return;
    }
    t->app_protocol = a->app_protocol;
    /* Ready and not terminating first; when there are none, serving
     * terminating endpoints still take connections (kube-proxy does this). */
    size_t nready = 0, nserving = 0;
    for (size_t i = 0; i < a->neps; i++) {
        if (a->eps[i].ready && !a->eps[i].terminating)
            nready++;
        else if (a->eps[i].serving)
            nserving++;
    }
    int use_ready = nready > 0;
    size_t n = use_ready ? nready : nserving;
    if (n == 0) {
        t->route = DEST_ROUTE_NO_ENDPOINT;
        return;
    }
    size_t pick = (size_t)(atomic_fetch_add_explicit(&e->rr, 1, memory_order_relaxed) % n);
    for (size_t i = 0; i < a->neps; i++) {
        const struct dest_endpoint *ep = &a->eps[i];
        int eligible = use_ready ? (ep->ready && !ep->terminating) : (!(ep->ready && !ep->terminating) && ep->serving);
        if (!eligible || pick--)
            continue;
        t->addr = ep->addr;
        t->opaque = a->opaque || ep->opaque;
        if (ep->meshed) {
            t->route = DEST_ROUTE_MTLS;
            t->expect_id = ep->identity;
        } else {
            t->route = DEST_ROUTE_PLAIN;
        }
        return;
    }
}
