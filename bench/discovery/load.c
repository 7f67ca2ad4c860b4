/* SPDX-License-Identifier: Apache-2.0 */
/* Simulated proxies for bench/discovery: CONNS TLS 1.3 + HTTP/2 connections
 * to weft-discovery, each with one /v1/stream subscribed to SUBS
 * destinations (the first id of IDFILE on every stream, the rest spread),
 * acknowledging every answer. Measures (1) the time from the first connect
 * to every stream holding all its first answers (a resynchronisation after a
 * restart), then (2) rewrites CHANGE_FILE (FROM replaced by TO, by rename),
 * and measures per stream the time until the first id's new answer arrives.
 * One process, epoll, non-blocking sockets, at most 128 handshakes in
 * flight. Prints one JSON line.
 *
 * Every server message is checked as it arrives (load_check): one well-formed
 * JSON object (strict RFC 8259 syntax, UTF-8, no trailing bytes), a "hello",
 * or an "answer" whose id is one of the stream's subscriptions, with an
 * integer version and an "answer" object of format version 1 and kind
 * "service" for that destination. A stream holds its first answers when
 * each of its SUBS subscriptions has had one. Anything else (an "error", a
 * message that does not check, an answer for an id never subscribed) ends
 * the run with exit 1 and what was wrong. The check scans each line once
 * without allocating: the client is one process on one CPU and must not be
 * the bench's limit (jansson's parse of 40,000 answers was most of its CPU).
 * `load --self-test` runs the check on good and broken lines.
 *
 * With LOAD_CHANGE_FIFO set, the change is made by whoever reads that FIFO
 * (bench/discovery/apiserver.py writes it to the API server): load writes
 * one line to it instead of rewriting CHANGE_FILE, and the latency counts
 * from that write.
 *
 * Then, with LOAD_HOLD_S set, keeps every stream open (reading, acking) that
 * many seconds more, so the server can be measured idle with them.
 *
 *   load PORT CA CERT KEY CONNS SUBS IDFILE CHANGE_FILE FROM TO TIMEOUT_S */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { LOAD_LINE_MAX = 1 << 20, LOAD_DEPTH_MAX = 64 };

struct conn {
    int fd;
    SSL *ssl;
    nghttp2_session *h2;
    int32_t sid;
    int hs;          /* 1 handshaking, 2 up */
    uint32_t events; /* what epoll waits for on fd */
    char *out;       /* request body not yet taken by nghttp2 */
    size_t olen, ocap;
    int deferred;
    char *wbuf; /* bytes SSL_write has yet to take */
    size_t wlen, woff, wcap;
    char *line; /* a message split across DATA frames */
    size_t llen, lcap;
    const char **sub; /* this stream's subscriptions */
    unsigned char *got; /* per subscription: its first answer arrived */
    int answers;        /* subscriptions holding their first answer */
    int changed;        /* the first id's answer after the change arrived */
    double latency;
    long long first_version;
};

static char **ids;
static int nids, subs;
static double t_change;
static int phase;
static int synced_conns, changed_conns;
static struct conn *conns; /* all CONNS of them, for a message naming its stream */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- The check: strict JSON syntax without building a tree. ---- */

struct span {
    const char *p;
    size_t n;
};

static const char *load_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* One UTF-8 sequence at p (p[0] >= 0x80), shortest form, no surrogates. */
static const char *load_utf8(const char *p, const char *e)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t n = (size_t)(e - p);
    if (u[0] >= 0xc2 && u[0] <= 0xdf)
        return n >= 2 && (u[1] & 0xc0) == 0x80 ? p + 2 : NULL;
    if (u[0] >= 0xe0 && u[0] <= 0xef) {
        if (n < 3 || (u[1] & 0xc0) != 0x80 || (u[2] & 0xc0) != 0x80)
            return NULL;
        if ((u[0] == 0xe0 && u[1] < 0xa0) || (u[0] == 0xed && u[1] >= 0xa0))
            return NULL;
        return p + 3;
    }
    if (u[0] >= 0xf0 && u[0] <= 0xf4) {
        if (n < 4 || (u[1] & 0xc0) != 0x80 || (u[2] & 0xc0) != 0x80 || (u[3] & 0xc0) != 0x80)
            return NULL;
        if ((u[0] == 0xf0 && u[1] < 0x90) || (u[0] == 0xf4 && u[1] >= 0x90))
            return NULL;
        return p + 4;
    }
    return NULL;
}

static int load_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Bytes a string's scan must stop at: the quote, a backslash, control
 * characters and UTF-8's lead and continuation bytes; the rest (most of an
 * answer) is skipped with one table look-up each. */
static unsigned char load_special[256];

static void load_init(void)
{
    for (int c = 0; c < 256; c++)
        load_special[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}

/* A string at p (on its quote); *raw gets its bytes between the quotes. */
static const char *load_string(const char *p, const char *e, struct span *raw)
{
    const char *s = ++p;
    while (p < e) {
        while (p < e && !load_special[(unsigned char)*p])
            p++;
        if (p >= e)
            break;
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            if (raw)
                *raw = (struct span){s, (size_t)(p - s)};
            return p + 1;
        }
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            if (++p >= e)
                return NULL;
            if (*p == 'u') {
                if (e - p < 5 || !load_hex(p[1]) || !load_hex(p[2]) || !load_hex(p[3]) || !load_hex(p[4]))
                    return NULL;
                p += 5;
            } else if (strchr("\"\\/bfnrt", *p) && *p) {
                p++;
            } else {
                return NULL;
            }
        } else if (c >= 0x80) {
            if (!(p = load_utf8(p, e)))
                return NULL;
        } else {
            p++;
        }
    }
    return NULL;
}

static const char *load_digits(const char *p, const char *e)
{
    const char *s = p;
    while (p < e && *p >= '0' && *p <= '9')
        p++;
    return p > s ? p : NULL;
}

static const char *load_number(const char *p, const char *e)
{
    if (p < e && *p == '-')
        p++;
    if (p < e && *p == '0')
        p++;
    else if (!(p = load_digits(p, e)))
        return NULL;
    if (p < e && *p == '.' && !(p = load_digits(p + 1, e)))
        return NULL;
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (!(p = load_digits(p, e)))
            return NULL;
    }
    return p;
}

static const char *load_value(const char *p, const char *e, int depth);

/* The members of the object at p (on its brace), each value checked; for a
 * key of keys[k] (raw bytes, no escapes), vals[k] gets the value's span. */
static const char *load_object(const char *p, const char *e, int depth, const char *const *keys, struct span *vals,
                               int nkeys)
{
    if (depth > LOAD_DEPTH_MAX)
        return NULL;
    p = load_ws(p + 1, e);
    if (p < e && *p == '}')
        return p + 1;
    for (;;) {
        struct span key;
        if (p >= e || *p != '"' || !(p = load_string(p, e, &key)))
            return NULL;
        p = load_ws(p, e);
        if (p >= e || *p != ':')
            return NULL;
        p = load_ws(p + 1, e);
        const char *v = p;
        if (!(p = load_value(p, e, depth + 1)))
            return NULL;
        for (int k = 0; k < nkeys; k++)
            if (key.n == strlen(keys[k]) && memcmp(key.p, keys[k], key.n) == 0)
                vals[k] = (struct span){v, (size_t)(p - v)};
        p = load_ws(p, e);
        if (p < e && *p == '}')
            return p + 1;
        if (p >= e || *p != ',')
            return NULL;
        p = load_ws(p + 1, e);
    }
}

static const char *load_value(const char *p, const char *e, int depth)
{
    if (p >= e || depth > LOAD_DEPTH_MAX)
        return NULL;
    switch (*p) {
    case '{':
        return load_object(p, e, depth, NULL, NULL, 0);
    case '[':
        p = load_ws(p + 1, e);
        if (p < e && *p == ']')
            return p + 1;
        for (;;) {
            if (!(p = load_value(p, e, depth + 1)))
                return NULL;
            p = load_ws(p, e);
            if (p < e && *p == ']')
                return p + 1;
            if (p >= e || *p != ',')
                return NULL;
            p = load_ws(p + 1, e);
        }
    case '"':
        return load_string(p, e, NULL);
    case 't':
        return e - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return e - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return e - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        return load_number(p, e);
    }
}

static int span_is(struct span s, const char *lit)
{
    return s.p && s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* A quoted string value without escapes, as raw bytes. */
static int span_plain_string(struct span s, struct span *out)
{
    if (!s.p || s.n < 2 || s.p[0] != '"' || memchr(s.p, '\\', s.n))
        return 0;
    *out = (struct span){s.p + 1, s.n - 2};
    return 1;
}

enum { LOAD_HELLO = 1, LOAD_ANSWER = 2 };

/* One server message (without its newline) checked against the stream's
 * subscriptions: LOAD_HELLO, LOAD_ANSWER with *sub its subscription's index
 * and *version, or 0 with *why saying what was wrong. */
static int load_check(const char *line, size_t len, const char *const *sub, int nsub, int *which, long long *version,
                      const char **why)
{
    static const char *const top[] = {"type", "id", "version", "answer"};
    static const char *const inner[] = {"version", "kind", "destination", "service"};
    struct span v[4] = {{0}}, a[4] = {{0}}, type, id, dest;
    const char *e = line + len;
    if (len && line[len - 1] == '\r')
        e--;
    const char *p = load_ws(line, e);
    if (p >= e || *p != '{') {
        *why = "not a JSON object";
        return 0;
    }
    if (!(p = load_object(p, e, 0, top, v, 4)) || load_ws(p, e) != e) {
        *why = "not well-formed JSON";
        return 0;
    }
    if (!span_plain_string(v[0], &type)) {
        *why = "no string \"type\"";
        return 0;
    }
    if (span_is(type, "hello"))
        return LOAD_HELLO;
    if (span_is(type, "error")) {
        *why = "an error message";
        return 0;
    }
    if (!span_is(type, "answer")) {
        *why = "an unknown \"type\"";
        return 0;
    }
    if (!span_plain_string(v[1], &id)) {
        *why = "an answer without a string \"id\"";
        return 0;
    }
    *which = -1;
    for (int k = 0; k < nsub && *which < 0; k++)
        if (id.n == strlen(sub[k]) && memcmp(id.p, sub[k], id.n) == 0)
            *which = k;
    if (*which < 0) {
        *why = "an answer for an id this stream never subscribed";
        return 0;
    }
    char num[32], *end;
    if (!v[2].p || v[2].n >= sizeof num || v[2].p[0] == '-' || !memchr("0123456789", v[2].p[0], 10)) {
        *why = "an answer without a non-negative integer \"version\"";
        return 0;
    }
    memcpy(num, v[2].p, v[2].n);
    num[v[2].n] = '\0';
    errno = 0;
    *version = strtoll(num, &end, 10);
    if (errno || *end) {
        *why = "an answer without a non-negative integer \"version\"";
        return 0;
    }
    if (!v[3].p || v[3].p[0] != '{') {
        *why = "an answer without an \"answer\" object";
        return 0;
    }
    /* The inner object was checked with the rest; read its own members. */
    load_object(v[3].p, v[3].p + v[3].n, 1, inner, a, 4);
    if (!span_is(a[0], "1")) {
        *why = "an answer whose format \"version\" is not 1";
        return 0;
    }
    static const char prefix[] = "destination:";
    if (!span_is(a[1], "\"service\"") || !span_plain_string(a[2], &dest) || id.n < sizeof prefix - 1 ||
        dest.n != id.n - (sizeof prefix - 1) || memcmp(dest.p, id.p + sizeof prefix - 1, dest.n) != 0 ||
        !a[3].p || a[3].p[0] != '{') {
        *why = "an answer that is not the \"service\" of its destination";
        return 0;
    }
    return LOAD_ANSWER;
}

/* ---- The connections. ---- */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "load: out of memory\n");
        exit(1);
    }
    return q;
}

static void queue_line(struct conn *c, const char *s, size_t n)
{
    if (c->olen + n > c->ocap) {
        c->ocap = (c->olen + n) * 2;
        c->out = xrealloc(c->out, c->ocap);
    }
    memcpy(c->out + c->olen, s, n);
    c->olen += n;
    if (c->deferred) {
        c->deferred = 0;
        nghttp2_session_resume_data(c->h2, c->sid);
    }
}

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    (void)s, (void)id, (void)flags, (void)src;
    struct conn *c = user;
    if (c->olen == 0) {
        c->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = c->olen < len ? c->olen : len;
    memcpy(buf, c->out, n);
    memmove(c->out, c->out + n, c->olen - n);
    c->olen -= n;
    return (ssize_t)n;
}

static void on_message(struct conn *c, const char *line, size_t len)
{
    int which = -1;
    long long v = 0;
    const char *why = NULL;
    int kind = load_check(line, len, c->sub, subs, &which, &v, &why);
    if (kind == LOAD_HELLO)
        return;
    if (kind != LOAD_ANSWER) {
        fprintf(stderr, "load: stream %d: %s: %.300s\n", (int)(c - conns), why, line);
        exit(1);
    }
    char ack[600];
    int n = snprintf(ack, sizeof ack, "{\"type\":\"ack\",\"id\":\"%s\",\"version\":%lld}\n", c->sub[which], v);
    queue_line(c, ack, (size_t)n);
    if (!c->got[which]) {
        c->got[which] = 1;
        if (which == 0)
            c->first_version = v;
        if (++c->answers == subs)
            synced_conns++;
    } else if (phase == 2 && !c->changed && which == 0 && v != c->first_version) {
        c->changed = 1;
        c->latency = now() - t_change;
        changed_conns++;
    }
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
    (void)s, (void)flags, (void)id;
    struct conn *c = user;
    const char *p = (const char *)data, *e = p + len;
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        size_t n = (size_t)((nl ? nl : e) - p);
        if (c->llen + n > LOAD_LINE_MAX) {
            fprintf(stderr, "load: a server message over %d bytes\n", LOAD_LINE_MAX);
            exit(1);
        }
        if (nl && c->llen == 0) {
            on_message(c, p, n); /* a whole line in this chunk: no copy */
        } else {
            if (c->llen + n > c->lcap) {
                c->lcap = (c->llen + n) * 2;
                c->line = xrealloc(c->line, c->lcap);
            }
            memcpy(c->line + c->llen, p, n);
            c->llen += n;
            if (nl) {
                on_message(c, c->line, c->llen);
                c->llen = 0;
            }
        }
        p += n + (nl != NULL);
    }
    return 0;
}

/* Everything nghttp2 has to send, through TLS; 0 done or blocked, -1 failed. */
static int flush(struct conn *c)
{
    for (;;) {
        if (c->woff == c->wlen) {
            c->woff = c->wlen = 0;
            /* Gather nghttp2's frames into one TLS write (one record, one syscall). */
            for (;;) {
                const uint8_t *d;
                ssize_t n = nghttp2_session_mem_send(c->h2, &d);
                if (n < 0)
                    return -1;
                if (n == 0)
                    break;
                if (c->wlen + (size_t)n > c->wcap) {
                    c->wcap = (c->wlen + (size_t)n) * 2;
                    c->wbuf = xrealloc(c->wbuf, c->wcap);
                }
                memcpy(c->wbuf + c->wlen, d, (size_t)n);
                c->wlen += (size_t)n;
                if (c->wlen >= 16384)
                    break;
            }
            if (c->wlen == 0)
                return 0;
        }
        int w = SSL_write(c->ssl, c->wbuf + c->woff, (int)(c->wlen - c->woff));
        if (w <= 0) {
            int e = SSL_get_error(c->ssl, w);
            return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -1;
        }
        c->woff += (size_t)w;
    }
}

static int ep;

static void want(struct conn *c, uint32_t ev)
{
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) < 0) {
        perror("load: epoll_ctl");
        exit(1);
    }
    c->events = ev;
}

/* A stream's reads and writes after its handshake. */
static void serve(struct conn *c, int i)
{
    char in[16384];
    int n;
    while ((n = SSL_read(c->ssl, in, sizeof in)) > 0)
        if (nghttp2_session_mem_recv(c->h2, (const uint8_t *)in, (size_t)n) < 0) {
            fprintf(stderr, "load: stream %d: HTTP/2 error from the server\n", i);
            exit(1);
        }
    int e = SSL_get_error(c->ssl, n);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        fprintf(stderr, "load: stream %d: the connection ended (%s)\n", i,
                e == SSL_ERROR_ZERO_RETURN ? "closed by the server" : "TLS error");
        exit(1);
    }
    if (flush(c) < 0) {
        fprintf(stderr, "load: stream %d: write failed\n", i);
        exit(1);
    }
    want(c, EPOLLIN | (c->woff < c->wlen || e == SSL_ERROR_WANT_WRITE ? EPOLLOUT : 0));
}

static nghttp2_session_callbacks *cbs;

/* The handshake's next step; once up, the stream's request and its
 * subscriptions. Returns 1 when the connection came up. */
static int handshake(struct conn *c, int i)
{
    int r = SSL_connect(c->ssl);
    if (r != 1) {
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            want(c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
            return 0;
        }
        fprintf(stderr, "load: TLS %d failed\n", i);
        ERR_print_errors_fp(stderr);
        exit(1);
    }
    c->hs = 2;
    nghttp2_session_client_new(&c->h2, cbs, c);
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, NULL, 0);
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
        {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0},
        {(uint8_t *)":authority", (uint8_t *)"127.0.0.1", 10, 9, 0},
        {(uint8_t *)":path", (uint8_t *)"/v1/stream", 5, 10, 0},
    };
    nghttp2_data_provider prd = {.read_callback = body_read};
    c->sid = nghttp2_submit_request(c->h2, NULL, nv, 4, &prd, c);
    for (int j = 0; j < subs; j++) {
        char line[600];
        int n = snprintf(line, sizeof line, "{\"type\":\"subscribe\",\"id\":\"%s\"}\n", c->sub[j]);
        queue_line(c, line, (size_t)n);
    }
    serve(c, i);
    return 1;
}

/* Waits up to ms for events and handles them; returns the connections that
 * came up. */
static int poll_once(struct conn *cs, int ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, ms), up = 0;
    if (n < 0 && errno != EINTR) {
        perror("load: epoll_wait");
        exit(1);
    }
    for (int k = 0; k < n; k++) {
        struct conn *c = evs[k].data.ptr;
        int i = (int)(c - cs);
        if (c->hs == 1)
            up += handshake(c, i);
        else
            serve(c, i);
    }
    return up;
}

/* Seconds this process was runnable but waited for a CPU (schedstat): with
 * client_cpu_connect_s, whether the connect phase was the client's CPU,
 * the machine's other work, or waiting on the server. */
static double wait_s(void)
{
    unsigned long long run = 0, wait = 0;
    FILE *f = fopen("/proc/self/schedstat", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &run, &wait) != 2)
            wait = 0;
        fclose(f);
    }
    return (double)wait / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A whole decimal argument in [min, max], or exit naming it. */
static long arg_long(const char *name, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "load: %s \"%s\": expected an integer in [%ld, %ld]\n", name, s, min, max);
        exit(2);
    }
    return v;
}

/* The check against lines it must take and lines it must refuse. */
static int self_test(void)
{
    static const char *const sub[] = {"destination:10.96.0.1:80", "destination:10.96.0.2:80"};
    static const char good[] =
        "{\"type\":\"answer\",\"id\":\"destination:10.96.0.2:80\",\"version\":7,\"answer\":{\"version\":1,\"kind\":"
        "\"service\",\"destination\":\"10.96.0.2:80\",\"service\":{\"name\":\"s\\u00e9\",\"endpoints\":[{\"ready\":"
        "true,\"w\":-1.5e+3,\"z\":null,\"n\":\"\xc3\xa9\"}]}}}";
    struct {
        const char *line;
        int want;
    } cases[] = {
        {good, LOAD_ANSWER},
        {"{\"type\":\"hello\",\"protocol\":1,\"identity\":\"x\",\"limits\":{\"subscriptions\":64}}", LOAD_HELLO},
        {"", 0},
        {"[1]", 0},
        {"{\"type\":\"error\",\"code\":\"malformed\",\"error\":\"x\"}", 0},
        {"{\"type\":\"answer\",\"id\":\"destination:10.96.0.3:80\",\"version\":7,\"answer\":{\"version\":1,\"kind\":"
         "\"service\",\"destination\":\"10.96.0.3:80\",\"service\":{}}}",
         0}, /* not subscribed */
        {"{\"type\":\"answer\",\"id\":\"destination:10.96.0.2:80\",\"version\":7,\"answer\":{\"version\":1,\"kind\":"
         "\"service\",\"destination\":\"10.96.0.1:80\",\"service\":{}}}",
         0}, /* another destination's answer */
        {"{\"type\":\"answer\",\"id\":\"destination:10.96.0.2:80\",\"version\":7,\"answer\":{\"version\":2,\"kind\":"
         "\"service\",\"destination\":\"10.96.0.2:80\",\"service\":{}}}",
         0}, /* format version 2 */
        {"{\"type\":\"answer\",\"id\":\"destination:10.96.0.2:80\",\"version\":7,\"answer\":{\"version\":1,\"kind\":"
         "\"unknown\",\"destination\":\"10.96.0.2:80\"}}",
         0}, /* not a Service */
        {"{\"type\":\"answer\",\"id\":\"destination:10.96.0.2:80\",\"version\":\"7\",\"answer\":{\"version\":1,"
         "\"kind\":\"service\",\"destination\":\"10.96.0.2:80\",\"service\":{}}}",
         0}, /* version a string */
        {"{\"type\":\"answer\",\"id\":\"destination:10.96.0.2:80\",\"version\":7}", 0}, /* no answer */
        {"{\"type\":\"answer\",\"id\":\"destination:10.96.0.2:80\",\"version\":7,\"answer\":{\"version\":1,\"kind\":"
         "\"service\",\"destination\":\"10.96.0.2:80\",\"service\":{}}}x",
         0}, /* trailing bytes */
        {"{\"type\":\"answer\",\"id\":\"destination:10.96.0.2:80\",\"version\":7,\"answer\":{\"version\":1,\"kind\":"
         "\"service\",\"destination\":\"10.96.0.2:80\",\"service\":{\"a\":[1,]}}}",
         0}, /* a trailing comma */
        {"{\"type\":\"answer\",\"id\":\"destination:10.96.0.2:80\",\"version\":7,\"answer\":{\"version\":1,\"kind\":"
         "\"service\",\"destination\":\"10.96.0.2:80\",\"service\":{\"a\":\"\xc3\"}}}",
         0}, /* cut UTF-8 */
        {"{\"type\":\"answer\",\"id\":\"destination:10.96.0.2:80\",\"version\":7,\"answer\":{\"version\":1,\"kind\":"
         "\"service\",\"destination\":\"10.96.0.2:80\",\"service\":{\"a\":01}}}",
         0}, /* a leading zero */
        {"{\"type\":\"answer\",\"id\":\"destination:10.96.0.2:80\",\"version\":7,\"answer\":{\"version\":1,\"kind\":"
         "\"service\",\"destination\":\"10.96.0.2:80\",\"service\":{\"a\":\"x\x01\"}}}",
         0}, /* a control character in a string */
        {"{\"type\":\"answer\",\"id\":\"destination:10.96.0.2:80\",\"version\":7,\"answer\":{\"version\":1,\"kind\":"
         "\"service\",\"destination\":\"10.96.0.2:80\",\"service\":{\"a\":\"\\q\"}}}",
         0}, /* an unknown escape */
    };
    int failed = 0;
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int which = -1;
        long long v = -1;
        const char *why = NULL;
        int got = load_check(cases[k].line, strlen(cases[k].line), sub, 2, &which, &v, &why);
        if (got != cases[k].want || (got == LOAD_ANSWER && (which != 1 || v != 7))) {
            fprintf(stderr, "load self-test: case %zu: got %d (%s), want %d\n", k, got, why ? why : "-",
                    cases[k].want);
            failed = 1;
        }
    }
    /* Every cut of the good line short of its end is refused. */
    for (size_t n = 0; n < sizeof good - 1; n++) {
        int which;
        long long v;
        const char *why;
        if (load_check(good, n, sub, 2, &which, &v, &why)) {
            fprintf(stderr, "load self-test: the good line cut at %zu bytes was taken\n", n);
            failed = 1;
        }
    }
    printf("load self-test: %s\n", failed ? "FAILED" : "passed");
    return failed;
}

int main(int argc, char **argv)
{
    load_init();
    if (argc == 2 && strcmp(argv[1], "--self-test") == 0)
        return self_test();
    if (argc != 12) {
        fprintf(stderr, "usage: load PORT CA CERT KEY CONNS SUBS IDFILE CHANGE_FILE FROM TO TIMEOUT_S\n"
                        "       load --self-test\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int port = (int)arg_long("PORT", argv[1], 1, 65535), nconns = (int)arg_long("CONNS", argv[5], 1, 100000);
    subs = (int)arg_long("SUBS", argv[6], 1, 1000);
    double timeout = atof(argv[11]);
    struct rlimit rl = {(rlim_t)nconns + 64, (rlim_t)nconns + 64};
    setrlimit(RLIMIT_NOFILE, &rl);
    FILE *f = fopen(argv[7], "r");
    char buf[512];
    ids = calloc(100000, sizeof *ids);
    while (f && nids < 100000 && fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        ids[nids++] = strdup(buf);
    }
    if (f)
        fclose(f);
    if (nids < subs) {
        fprintf(stderr, "need at least %d ids\n", subs);
        return 2;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_load_verify_locations(ctx, argv[2], NULL);
    SSL_CTX_use_certificate_chain_file(ctx, argv[3]);
    SSL_CTX_use_PrivateKey_file(ctx, argv[4], SSL_FILETYPE_PEM);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3);
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    struct conn *cs = conns = calloc((size_t)nconns, sizeof *cs);
    for (int i = 0; i < nconns; i++) {
        cs[i].sub = calloc((size_t)subs, sizeof *cs[i].sub);
        cs[i].got = calloc((size_t)subs, 1);
        for (int j = 0; j < subs; j++)
            cs[i].sub[j] = j == 0 ? ids[0] : ids[1 + ((size_t)i * (size_t)(subs - 1) + (size_t)j) % (size_t)(nids - 1)];
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    phase = 1;
    double t0 = now(), deadline = t0 + timeout;
    /* Handshakes overlap, at most 128 in flight, as a fleet reconnecting
     * would. Connected streams are served too: on a loaded machine the
     * connect phase can outlast the server's keep-alive (a PING after 30 s
     * idle, closed 10 s later without its ACK). */
    int started = 0, ready = 0;
    while (ready < nconns) {
        while (started < nconns && started - ready < 128) {
            struct conn *c = &cs[started];
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
            inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
                fprintf(stderr, "connect %d: %s\n", started, strerror(errno));
                return 1;
            }
            c->ssl = SSL_new(ctx);
            SSL_set_fd(c->ssl, c->fd);
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), "127.0.0.1");
            c->hs = 1;
            /* The socket writable is the TCP connect done: the ClientHello goes then. */
            c->events = EPOLLOUT;
            struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
            started++;
        }
        ready += poll_once(cs, 100);
        static double next_trace;
        if (getenv("LOAD_TRACE") && now() >= next_trace) {
            fprintf(stderr, "load: %.3f s: %d started, %d up, %d synced\n", now() - t0, started, ready, synced_conns);
            next_trace = now() + 0.25;
        }
        if (now() > deadline) {
            fprintf(stderr, "load: %d of %d connections up in %.0f s\n", ready, nconns, timeout);
            return 1;
        }
    }
    double t_connected = now() - t0;
    struct rusage ru; /* the client's own CPU while the fleet connected: is it the limit? */
    getrusage(RUSAGE_SELF, &ru);
    double cpu_connected = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    double wait_connected = wait_s();
    if (getenv("LOAD_TRACE")) /* how the connect went: streams up and synced over time */
        fprintf(stderr, "load: connected %.3f s, %d synced\n", t_connected, synced_conns);
    double t_synced = -1;
    deadline = now() + timeout;
    double *lat = calloc((size_t)nconns, sizeof *lat);
    while (now() < deadline) {
        poll_once(cs, 100);
        if (phase == 1 && synced_conns == nconns) {
            if (getenv("LOAD_CHANGE_FIFO")) {
                t_synced = now() - t0;
                FILE *fifo = fopen(getenv("LOAD_CHANGE_FIFO"), "w");
                if (!fifo) {
                    fprintf(stderr, "%s: %s\n", getenv("LOAD_CHANGE_FIFO"), strerror(errno));
                    return 1;
                }
                phase = 2;
                t_change = now();
                fputs("change\n", fifo);
                fclose(fifo);
            } else {
                t_synced = now() - t0;
                /* the change: FROM -> TO in CHANGE_FILE, written aside then renamed */
                FILE *in = fopen(argv[8], "r");
                static char text[64 << 20];
                size_t tl = in ? fread(text, 1, sizeof text - 1, in) : 0;
                if (in)
                    fclose(in);
                text[tl] = '\0';
                char *at = strstr(text, argv[9]);
                if (!at) {
                    fprintf(stderr, "%s not in %s\n", argv[9], argv[8]);
                    return 1;
                }
                char tmp[4200];
                snprintf(tmp, sizeof tmp, "%s.tmp", argv[8]);
                FILE *o = fopen(tmp, "w");
                fwrite(text, 1, (size_t)(at - text), o);
                fputs(argv[10], o);
                fputs(at + strlen(argv[9]), o);
                fclose(o);
                phase = 2;
                t_change = now();
                rename(tmp, argv[8]);
            }
        } else if (phase == 2 && changed_conns == nconns) {
            break;
        }
    }
    int n = 0;
    for (int i = 0; i < nconns; i++)
        if (cs[i].changed)
            lat[n++] = cs[i].latency;
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    printf("{\"conns\":%d,\"subs\":%d,\"connect_s\":%.3f,\"client_cpu_connect_s\":%.3f,\"client_wait_connect_s\":%.3f,"
           "\"synced_s\":%.3f,\"pushed\":%d,"
           "\"push_p50_ms\":%.1f,\"push_p99_ms\":%.1f,\"push_max_ms\":%.1f}\n",
           nconns, subs, t_connected, cpu_connected, wait_connected, t_synced, n, n ? lat[n / 2] * 1000 : -1,
           n ? lat[(size_t)((n - 1) * 0.99)] * 1000 : -1, n ? lat[n - 1] * 1000 : -1);
    fflush(stdout);
    double hold = getenv("LOAD_HOLD_S") ? atof(getenv("LOAD_HOLD_S")) : 0, until = now() + hold;
    while (now() < until)
        poll_once(cs, 100);
    return n == nconns ? 0 : 1;
}
