/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.x parser; see http1.h. Heads and trailers are gathered a byte at a
 * time into bounded buffers and checked a line at a time as each line ends,
 * so an error is found at the same byte however the input is split; framing
 * is decided once the empty line arrives. Body bytes are never copied: they
 * come back as spans of the caller's input. */
#include "http1.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xalloc.h"

#define HTTP1_MAX_HEAD_CAP (1u << 30) /* spans are 32-bit */

enum {
    S_HEAD,        /* start line and field lines */
    S_LENGTH,      /* Content-Length body */
    S_CHUNK_LINE,  /* chunk-size [ext] CRLF */
    S_CHUNK_DATA,
    S_CHUNK_CR,
    S_CHUNK_LF,
    S_TRAILER,     /* trailer section after the last chunk */
    S_UNTIL_CLOSE, /* response body until the peer closes */
    S_EMIT_DONE,   /* complete; HTTP1_DONE not yet returned */
    S_DONE,        /* HTTP1_DONE returned; the next call starts a new message */
    S_ERROR,
};

/* tchar of RFC 9110 5.6.2, as a table: names are checked a byte at a time. */
static const unsigned char http1_tchars[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1,
    ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
    ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static int http1_tchar(unsigned char c)
{
    return http1_tchars[c];
}

int http1_is_token(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!http1_tchar((unsigned char)s[i]))
            return 0;
    return len > 0;
}

static int http1_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* field-vchar / SP / HTAB (obs-text included): no controls, no DEL. */
static int http1_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int http1_ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && strncasecmp(a, b, blen) == 0;
}

/* Between messages a buffer keeps its memory for the next one unless a
 * large message grew it past HTTP1_KEEP: a connection's parser otherwise
 * allocates its head, and its field table, again for every message. */
static void http1_buf_between(struct buf *b)
{
    if (b->cap > HTTP1_KEEP)
        buf_free(b);
    else
        buf_reset(b);
}

static void http1_spans_between(struct http1_span **arr, size_t *cap)
{
    if (*cap * sizeof **arr > HTTP1_KEEP) {
        free(*arr);
        *arr = NULL;
        *cap = 0;
    }
}

static void http1_reset_msg(struct http1_parser *p)
{
    memset(&p->msg, 0, sizeof p->msg);
    p->msg.content_length = -1;
    http1_buf_between(&p->head);
    http1_buf_between(&p->trailer);
    http1_buf_between(&p->line);
    http1_spans_between(&p->fields, &p->fields_cap);
    http1_spans_between(&p->trailers, &p->trailers_cap);
    p->nfields = p->ntrailers = 0;
    p->line_start = 0;
    p->lines = 0;
    p->prev_cr = 0;
    p->host_seen = p->cl_seen = p->te_seen = 0;
    p->conn_close = p->conn_keep_alive = p->conn_upgrade = p->upgrade_field = 0;
    p->te_chunked = p->te_other = p->te_last_chunked = 0;
    p->body_left = p->body_total = 0;
    p->count = 0;
    p->t_off = p->t_len = p->r_off = 0;
    p->state = S_HEAD;
}

void http1_init(struct http1_parser *p, enum http1_kind kind, const struct http1_limits *limits)
{
    memset(p, 0, sizeof *p);
    p->kind = kind;
    if (limits)
        p->lim = *limits;
    if (!p->lim.max_head)
        p->lim.max_head = HTTP1_MAX_HEAD_DEFAULT;
    if (p->lim.max_head > HTTP1_MAX_HEAD_CAP)
        p->lim.max_head = HTTP1_MAX_HEAD_CAP;
    if (!p->lim.max_fields)
        p->lim.max_fields = HTTP1_MAX_FIELDS_DEFAULT;
    buf_init(&p->head, p->lim.max_head);
    buf_init(&p->trailer, p->lim.max_head);
    buf_init(&p->line, HTTP1_MAX_CHUNK_LINE);
    http1_reset_msg(p);
}

void http1_free(struct http1_parser *p)
{
    buf_free(&p->head);
    buf_free(&p->trailer);
    buf_free(&p->line);
    free(p->fields);
    free(p->trailers);
    p->fields = p->trailers = NULL;
    p->fields_cap = p->trailers_cap = 0;
}

void http1_response_to(struct http1_parser *p, const char *method, size_t len)
{
    /* Methods are case-sensitive (RFC 9110 9.1). */
    p->request_no_body = len == 4 && memcmp(method, "HEAD", 4) == 0;
    p->request_connect = len == 7 && memcmp(method, "CONNECT", 7) == 0;
}

/* The message is complete. A final response answers its request: the
 * method given for it is forgotten, so http1_response_to() may name the
 * next request's at once. */
static enum http1_event http1_done(struct http1_parser *p)
{
    p->state = S_DONE;
    if (p->kind == HTTP1_RESPONSE && p->msg.status >= 200)
        p->request_no_body = p->request_connect = 0;
    return HTTP1_DONE;
}

static enum http1_event http1_fail(struct http1_parser *p, enum http1_error e)
{
    p->error = e;
    p->state = S_ERROR;
    return HTTP1_ERROR;
}

/* ---------- start lines ---------- */

/* "HTTP/" DIGIT "." DIGIT at s (8 bytes available): 0, or an error. */
static enum http1_error http1_version(struct http1_parser *p, const char *s)
{
    if (memcmp(s, "HTTP/", 5) != 0 || s[5] < '0' || s[5] > '9' || s[6] != '.' || s[7] < '0' || s[7] > '9')
        return HTTP1_E_VERSION;
    if (s[5] != '1')
        return HTTP1_E_VERSION_UNSUPPORTED;
    p->msg.version_minor = s[7] == '0' ? 0 : 1;
    return HTTP1_E_NONE;
}

/* authority-form of CONNECT: host ":" port, nothing else. */
static int http1_authority_form(const char *t, size_t n)
{
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strchr("/?#@", t[i]))
            return 0;
        if (t[i] == ':')
            colon = t + i;
    }
    if (!colon || colon == t || colon == t + n - 1)
        return 0;
    for (const char *q = colon + 1; q < t + n; q++)
        if (*q < '0' || *q > '9')
            return 0;
    return 1;
}

static int http1_absolute_form(const char *t, size_t n)
{
    size_t i = 0;
    if (!n || !((t[0] >= 'a' && t[0] <= 'z') || (t[0] >= 'A' && t[0] <= 'Z')))
        return 0;
    for (i = 1; i < n && t[i] != ':'; i++) {
        unsigned char c = (unsigned char)t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '-' || c == '.'))
            return 0;
    }
    return i < n;
}

static enum http1_error http1_request_line(struct http1_parser *p, const char *l, size_t n)
{
    const char *sp1 = memchr(l, ' ', n);
    if (!sp1 || sp1 == l)
        return HTTP1_E_REQUEST_LINE;
    for (const char *q = l; q < sp1; q++)
        if (!http1_tchar((unsigned char)*q))
            return HTTP1_E_METHOD;
    const char *t = sp1 + 1, *end = l + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t)
        return HTTP1_E_REQUEST_LINE;
    size_t tlen = (size_t)(sp2 - t);
    for (const char *q = t; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f || *q == '#')
            return HTTP1_E_TARGET;
    if (end - (sp2 + 1) != 8)
        return memchr(sp2 + 1, ' ', (size_t)(end - sp2 - 1)) ? HTTP1_E_REQUEST_LINE : HTTP1_E_VERSION;
    enum http1_error e = http1_version(p, sp2 + 1);
    if (e)
        return e;
    size_t mlen = (size_t)(sp1 - l);
    int connect = mlen == 7 && memcmp(l, "CONNECT", 7) == 0;
    int options = mlen == 7 && memcmp(l, "OPTIONS", 7) == 0;
    if (connect) {
        if (!http1_authority_form(t, tlen))
            return HTTP1_E_TARGET;
    } else if (tlen == 1 && t[0] == '*') {
        if (!options)
            return HTTP1_E_TARGET;
    } else if (t[0] != '/' && !http1_absolute_form(t, tlen)) {
        return HTTP1_E_TARGET;
    }
    p->msg.method_len = mlen;
    p->t_off = (size_t)(t - l);
    p->t_len = tlen;
    return HTTP1_E_NONE;
}

static enum http1_error http1_status_line(struct http1_parser *p, const char *l, size_t n)
{
    if (n < 5 || memcmp(l, "HTTP/", 5) != 0)
        return HTTP1_E_STATUS_LINE;
    if (n < 8)
        return HTTP1_E_VERSION;
    enum http1_error e = http1_version(p, l);
    if (e)
        return e;
    if (n < 12 || l[8] != ' ')
        return HTTP1_E_STATUS_LINE;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (l[i] < '0' || l[i] > '9')
            return HTTP1_E_STATUS_LINE;
        st = st * 10 + (l[i] - '0');
    }
    /* "HTTP/1.1 200" without the SP before an empty reason is accepted. */
    if (n > 12 && l[12] != ' ')
        return HTTP1_E_STATUS_LINE;
    for (size_t i = 13; i < n; i++)
        if (!http1_value_char((unsigned char)l[i]))
            return HTTP1_E_REASON;
    if (st < 100 || st > 599)
        return HTTP1_E_STATUS;
    p->msg.status = st;
    p->r_off = n > 12 ? 13 : 12;
    return HTTP1_E_NONE;
}

/* ---------- field lines ---------- */

/* Calls fn on each non-empty element of a comma-separated list. */
static void http1_list(const char *v, size_t n, void (*fn)(struct http1_parser *, const char *, size_t),
                       struct http1_parser *p)
{
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (s < e && http1_ws((unsigned char)v[s]))
            s++;
        while (e > s && http1_ws((unsigned char)v[e - 1]))
            e--;
        if (e > s)
            fn(p, v + s, e - s);
        i++;
    }
}

static void http1_connection_token(struct http1_parser *p, const char *t, size_t n)
{
    if (http1_ieq(t, n, "close"))
        p->conn_close = 1;
    else if (http1_ieq(t, n, "keep-alive"))
        p->conn_keep_alive = 1;
    else if (http1_ieq(t, n, "upgrade"))
        p->conn_upgrade = 1;
}

static void http1_te_coding(struct http1_parser *p, const char *t, size_t n)
{
    if (http1_ieq(t, n, "chunked")) {
        p->te_chunked++;
        p->te_last_chunked = 1;
    } else {
        p->te_other++;
        p->te_last_chunked = 0;
    }
}

/* Host = uri-host [ ":" port ]: unreserved, pct-encoded, sub-delims, ':' and
 * the brackets of an IP-literal; empty is allowed (RFC 9112 3.2). */
static int http1_host_value(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("-._~%!$&'()*+,;=:[]", c)))
            return 0;
    }
    return 1;
}

/* Framing fields of the head; trailers are only stored. */
static enum http1_error http1_head_field(struct http1_parser *p, const char *name, size_t nlen, const char *v,
                                         size_t vlen)
{
    if (http1_ieq(name, nlen, "content-length")) {
        if (p->cl_seen || memchr(v, ',', vlen))
            return HTTP1_E_CONTENT_LENGTH_DUP;
        p->cl_seen = 1;
        if (!vlen)
            return HTTP1_E_CONTENT_LENGTH;
        uint64_t x = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return HTTP1_E_CONTENT_LENGTH;
            unsigned d = (unsigned)(v[i] - '0');
            if (x > ((uint64_t)INT64_MAX - d) / 10)
                return HTTP1_E_CONTENT_LENGTH;
            x = x * 10 + d;
        }
        p->msg.content_length = (int64_t)x;
    } else if (http1_ieq(name, nlen, "transfer-encoding")) {
        p->te_seen = 1;
        http1_list(v, vlen, http1_te_coding, p);
    } else if (http1_ieq(name, nlen, "host") && p->kind == HTTP1_REQUEST) {
        if (p->host_seen || !http1_host_value(v, vlen))
            return HTTP1_E_HOST;
        p->host_seen = 1;
    } else if (http1_ieq(name, nlen, "connection")) {
        http1_list(v, vlen, http1_connection_token, p);
    } else if (http1_ieq(name, nlen, "upgrade")) {
        p->upgrade_field = 1;
    } else if (http1_ieq(name, nlen, "expect") && p->kind == HTTP1_REQUEST) {
        if (http1_ieq(v, vlen, "100-continue"))
            p->msg.expect_continue = 1;
    }
    return HTTP1_E_NONE;
}

/* One field line l[0..n) at offset off of buffer b (CRLF excluded). */
static enum http1_error http1_field_line(struct http1_parser *p, int trailer, const char *l, size_t n,
                                         size_t off)
{
    struct http1_span **arr = trailer ? &p->trailers : &p->fields;
    size_t *cnt = trailer ? &p->ntrailers : &p->nfields;
    size_t *cap = trailer ? &p->trailers_cap : &p->fields_cap;
    if (http1_ws((unsigned char)l[0]))
        return HTTP1_E_OBS_FOLD;
    if (*cnt >= p->lim.max_fields)
        return HTTP1_E_TOO_MANY_FIELDS;
    const char *colon = memchr(l, ':', n);
    if (!colon)
        return HTTP1_E_NO_COLON;
    if (colon == l)
        return HTTP1_E_FIELD_NAME;
    if (http1_ws((unsigned char)colon[-1]))
        return HTTP1_E_SPACE_BEFORE_COLON;
    for (const char *q = l; q < colon; q++)
        if (!http1_tchar((unsigned char)*q))
            return HTTP1_E_FIELD_NAME;
    const char *v = colon + 1, *end = l + n;
    for (const char *q = v; q < end; q++)
        if (!http1_value_char((unsigned char)*q))
            return HTTP1_E_FIELD_VALUE;
    while (v < end && http1_ws((unsigned char)*v))
        v++;
    while (end > v && http1_ws((unsigned char)end[-1]))
        end--;
    if (!trailer) {
        enum http1_error e = http1_head_field(p, l, (size_t)(colon - l), v, (size_t)(end - v));
        if (e)
            return e;
    }
    if (*cnt == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        if (*cap > p->lim.max_fields)
            *cap = p->lim.max_fields;
        *arr = xrealloc(*arr, *cap * sizeof **arr);
    }
    struct http1_span *s = &(*arr)[(*cnt)++];
    s->name_off = (uint32_t)off;
    s->name_len = (uint32_t)(colon - l);
    s->value_off = (uint32_t)(off + (size_t)(v - l));
    s->value_len = (uint32_t)(end - v);
    return HTTP1_E_NONE;
}

/* ---------- end of the head: framing (RFC 9112 6) ---------- */

static enum http1_error http1_framing(struct http1_parser *p)
{
    struct http1_msg *m = &p->msg;
    const char *h = p->head.data;
    if (p->kind == HTTP1_REQUEST) {
        m->method = h;
        m->target = h + p->t_off;
        m->target_len = p->t_len;
        if (m->version_minor == 1 && !p->host_seen)
            return HTTP1_E_HOST;
    } else {
        const char *eol = memchr(h, '\n', p->head.len); /* the status line starts the head */
        if (eol && eol > h && eol[-1] == '\r')
            eol--;
        m->reason = h + p->r_off;
        m->reason_len = eol ? (size_t)(eol - m->reason) : 0;
    }
    if (p->te_seen && p->cl_seen)
        return HTTP1_E_CL_AND_TE;
    if (p->te_seen && m->version_minor == 0)
        return HTTP1_E_TE_HTTP10;
    if (p->te_seen) {
        if (!p->te_last_chunked || p->te_chunked > 1)
            return HTTP1_E_TE_NOT_CHUNKED;
        if (p->te_other)
            return HTTP1_E_TE_UNSUPPORTED;
        m->chunked = 1;
    }
    m->keep_alive = m->version_minor == 1 ? !p->conn_close : p->conn_keep_alive && !p->conn_close;
    m->upgrade = p->conn_upgrade && p->upgrade_field;
    if (p->kind == HTTP1_RESPONSE) {
        int st = m->status;
        if (st == 101)
            m->upgrade = 1;
        if ((st >= 100 && st < 200) || st == 204 || st == 304 || p->request_no_body ||
            (p->request_connect && st >= 200 && st < 300)) {
            m->no_body = 1;
            return HTTP1_E_NONE;
        }
        if (!m->chunked && m->content_length < 0) {
            m->until_close = 1;
            m->keep_alive = 0;
            return HTTP1_E_NONE;
        }
    }
    if (!m->chunked && m->content_length <= 0) {
        m->no_body = 1;
        return HTTP1_E_NONE;
    }
    if (!m->chunked && p->lim.max_body && (uint64_t)m->content_length > p->lim.max_body)
        return HTTP1_E_BODY_TOO_LARGE;
    if (!m->chunked)
        p->body_left = (uint64_t)m->content_length;
    return HTTP1_E_NONE;
}

static int http1_next_state(const struct http1_parser *p)
{
    if (p->msg.no_body)
        return S_EMIT_DONE;
    if (p->msg.chunked)
        return S_CHUNK_LINE;
    if (p->msg.until_close)
        return S_UNTIL_CLOSE;
    return S_LENGTH;
}

/* ---------- sections: head and trailers, a byte at a time ---------- */

/* A line ended (its eol_len bytes of CRLF or LF at the end of b). 1 at the
 * end of the section, 0 to go on, or an error. */
static int http1_line_done(struct http1_parser *p, int trailer, size_t eol_len, enum http1_error *err)
{
    struct buf *b = trailer ? &p->trailer : &p->head;
    const char *l = b->data + p->line_start;
    size_t n = b->len - p->line_start - eol_len;
    if (n == 0) {
        if (!trailer && p->lines == 0) {
            if (p->kind == HTTP1_RESPONSE) {
                *err = HTTP1_E_STATUS_LINE;
                return -1;
            }
            b->len = p->line_start; /* RFC 9112 2.2: empty lines before a request line are ignored */
            return 0;
        }
        return 1;
    }
    if (!trailer && p->lines == 0)
        *err = p->kind == HTTP1_REQUEST ? http1_request_line(p, l, n) : http1_status_line(p, l, n);
    else
        *err = http1_field_line(p, trailer, l, n, p->line_start);
    if (*err)
        return -1;
    p->lines++;
    p->line_start = b->len;
    return 0;
}

/* Consumes bytes of a head or trailer section from data[*i..len). 1 when
 * the section ended, 0 when all was consumed, -1 on error (p->error). */
static int http1_section(struct http1_parser *p, int trailer, const char *data, size_t len, size_t *i)
{
    struct buf *b = trailer ? &p->trailer : &p->head;
    size_t start = *i, k = *i;
    int rc = 0;
    enum http1_error e = HTTP1_E_NONE;
    for (; k < len; k++) {
        /* Fast path: a run of bytes that are neither CR nor LF, within the limit. */
        if (!p->prev_cr) {
            size_t end = len - k < p->lim.max_head - p->count ? len : k + (p->lim.max_head - p->count);
            size_t j = k;
            while (j < end && data[j] != '\r' && data[j] != '\n')
                j++;
            p->count += j - k;
            k = j;
            if (k == len)
                break;
        }
        unsigned char c = (unsigned char)data[k];
        if (++p->count > p->lim.max_head) {
            e = !trailer && p->kind == HTTP1_REQUEST && p->lines == 0 ? HTTP1_E_REQUEST_LINE_TOO_LONG
                                                                       : HTTP1_E_HEAD_TOO_LARGE;
            rc = -1;
            break;
        }
        if (p->prev_cr && c != '\n') {
            e = HTTP1_E_BARE_CR;
            rc = -1;
            break;
        }
        /* A response's head and trailers may end lines with a bare LF (RFC 9112
         * 2.2 lets a recipient accept it): busybox httpd passes a CGI's LF-only
         * header lines through. A response comes from the app the proxy serves
         * and is written on with CRLF, so this cannot desynchronise anyone;
         * requests, where smuggling lives, stay CRLF only. */
        if (c == '\n' && !p->prev_cr && p->kind == HTTP1_REQUEST) {
            e = HTTP1_E_BARE_LF;
            rc = -1;
            break;
        }
        size_t eol_len = p->prev_cr ? 2 : 1;
        p->prev_cr = c == '\r';
        if (c != '\n')
            continue;
        buf_append(b, data + start, k + 1 - start); /* fits: count bounds the buffer */
        start = k + 1;
        rc = http1_line_done(p, trailer, eol_len, &e);
        if (rc != 0) {
            k++;
            break;
        }
    }
    if (rc == 0 && k > start)
        buf_append(b, data + start, k - start);
    *i = k;
    if (rc < 0)
        http1_fail(p, e);
    return rc;
}

/* ---------- chunk-size lines ---------- */

static const char *http1_skip_ws(const char *s, const char *end)
{
    while (s < end && http1_ws((unsigned char)*s))
        s++;
    return s;
}

static const char *http1_skip_token(const char *s, const char *end)
{
    while (s < end && http1_tchar((unsigned char)*s))
        s++;
    return s;
}

/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) */
static int http1_chunk_ext(const char *s, const char *end)
{
    for (;;) {
        s = http1_skip_ws(s, end);
        if (s == end)
            return 1;
        if (*s != ';')
            return 0;
        s = http1_skip_ws(s + 1, end);
        const char *t = http1_skip_token(s, end);
        if (t == s)
            return 0;
        s = http1_skip_ws(t, end);
        if (s == end || *s != '=')
            continue;
        s = http1_skip_ws(s + 1, end);
        if (s < end && *s == '"') {
            for (s++;; s++) {
                if (s == end)
                    return 0;
                unsigned char c = (unsigned char)*s;
                if (c == '"')
                    break;
                if (c == '\\') {
                    if (++s == end || !http1_value_char((unsigned char)*s))
                        return 0;
                } else if (!http1_value_char(c)) {
                    return 0;
                }
            }
            s++;
        } else {
            t = http1_skip_token(s, end);
            if (t == s)
                return 0;
            s = t;
        }
    }
}

static enum http1_error http1_chunk_line(struct http1_parser *p)
{
    const char *s = p->line.data, *end = s + p->line.len - 2;
    uint64_t v = 0;
    const char *q = s;
    for (; q < end; q++) {
        unsigned char c = (unsigned char)*q;
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            break;
        if (v > ((uint64_t)INT64_MAX - d) / 16)
            return HTTP1_E_CHUNK_SIZE_OVERFLOW;
        v = v * 16 + d;
    }
    if (q == s || (q < end && *q != ';' && !http1_ws((unsigned char)*q)))
        return HTTP1_E_CHUNK_SIZE;
    if (!http1_chunk_ext(q, end))
        return HTTP1_E_CHUNK_EXT;
    if (v && p->lim.max_body && v > p->lim.max_body - p->body_total)
        return HTTP1_E_BODY_TOO_LARGE;
    p->body_left = v;
    return HTTP1_E_NONE;
}

/* ---------- the driver ---------- */

enum http1_event http1_parse(struct http1_parser *p, const char *data, size_t len, size_t *used,
                             const char **body, size_t *body_len)
{
    size_t i = 0;
    enum http1_event ev = HTTP1_NEED_MORE;
    if (body)
        *body = NULL;
    if (body_len)
        *body_len = 0;
    if (p->state == S_DONE && len > 0) /* the last message stays readable until the next one's bytes */
        http1_reset_msg(p);
    while (ev == HTTP1_NEED_MORE && (i < len || p->state == S_EMIT_DONE || p->state == S_ERROR)) {
        switch (p->state) {
        case S_HEAD: {
            int rc = http1_section(p, 0, data, len, &i);
            if (rc < 0) {
                ev = HTTP1_ERROR;
            } else if (rc == 1) {
                enum http1_error e = http1_framing(p);
                if (e) {
                    ev = http1_fail(p, e);
                } else {
                    p->state = http1_next_state(p);
                    ev = HTTP1_HEAD;
                }
            }
            break;
        }
        case S_LENGTH:
        case S_CHUNK_DATA:
        case S_UNTIL_CLOSE: {
            size_t take = len - i;
            if (p->state != S_UNTIL_CLOSE && take > p->body_left)
                take = (size_t)p->body_left;
            if (p->state == S_UNTIL_CLOSE && p->lim.max_body && take > p->lim.max_body - p->body_total) {
                take = (size_t)(p->lim.max_body - p->body_total);
                if (!take) {
                    ev = http1_fail(p, HTTP1_E_BODY_TOO_LARGE);
                    break;
                }
            }
            if (body)
                *body = data + i;
            if (body_len)
                *body_len = take;
            i += take;
            p->body_total += take;
            if (p->state == S_LENGTH) {
                p->body_left -= take;
                if (!p->body_left)
                    p->state = S_EMIT_DONE;
            } else if (p->state == S_CHUNK_DATA) {
                p->body_left -= take;
                if (!p->body_left)
                    p->state = S_CHUNK_CR;
            }
            ev = HTTP1_BODY;
            break;
        }
        case S_CHUNK_LINE: {
            unsigned char c = (unsigned char)data[i++];
            if (p->line.len >= HTTP1_MAX_CHUNK_LINE) {
                ev = http1_fail(p, HTTP1_E_CHUNK_LINE_TOO_LONG);
                break;
            }
            if (p->prev_cr && c != '\n') {
                ev = http1_fail(p, HTTP1_E_BARE_CR);
                break;
            }
            if (c == '\n' && !p->prev_cr) {
                ev = http1_fail(p, HTTP1_E_BARE_LF);
                break;
            }
            p->prev_cr = c == '\r';
            buf_append(&p->line, &c, 1); /* fits: checked above */
            if (c != '\n')
                break;
            enum http1_error e = http1_chunk_line(p);
            buf_reset(&p->line);
            if (e) {
                ev = http1_fail(p, e);
            } else if (p->body_left == 0) {
                p->state = S_TRAILER;
                p->count = 0;
                p->line_start = 0;
                p->lines = 0;
            } else {
                p->state = S_CHUNK_DATA;
            }
            break;
        }
        case S_CHUNK_CR:
        case S_CHUNK_LF:
            if (data[i++] != (p->state == S_CHUNK_CR ? '\r' : '\n')) {
                ev = http1_fail(p, HTTP1_E_CHUNK_CRLF);
                break;
            }
            p->state = p->state == S_CHUNK_CR ? S_CHUNK_LF : S_CHUNK_LINE;
            break;
        case S_TRAILER: {
            int rc = http1_section(p, 1, data, len, &i);
            if (rc < 0) {
                ev = HTTP1_ERROR;
            } else if (rc == 1) {
                ev = http1_done(p);
            }
            break;
        }
        case S_EMIT_DONE:
            ev = http1_done(p);
            break;
        case S_DONE:
            /* Not reached: bytes after DONE reset the parser above. */
            ev = HTTP1_NEED_MORE;
            i = len;
            break;
        case S_ERROR:
        default:
            ev = HTTP1_ERROR;
            break;
        }
    }
    if (used)
        *used = i;
    return ev;
}

enum http1_event http1_finish(struct http1_parser *p)
{
    switch (p->state) {
    case S_UNTIL_CLOSE:
    case S_EMIT_DONE:
        return http1_done(p);
    case S_DONE:
        if (p->kind == HTTP1_RESPONSE && p->msg.status < 200)
            return http1_fail(p, HTTP1_E_TRUNCATED); /* an interim answer, then no final one */
        return HTTP1_CLOSED;
    case S_HEAD:
        if (p->head.len == 0 && !p->prev_cr)
            return HTTP1_CLOSED;
        return http1_fail(p, HTTP1_E_TRUNCATED);
    case S_ERROR:
        return HTTP1_ERROR;
    default:
        return http1_fail(p, HTTP1_E_TRUNCATED);
    }
}

/* ---------- access ---------- */

static int http1_span_get(const struct buf *b, const struct http1_span *arr, size_t n, size_t i,
                          const char **name, size_t *name_len, const char **value, size_t *value_len)
{
    if (i >= n)
        return -1;
    const struct http1_span *s = &arr[i];
    if (name)
        *name = b->data + s->name_off;
    if (name_len)
        *name_len = s->name_len;
    if (value)
        *value = b->data + s->value_off;
    if (value_len)
        *value_len = s->value_len;
    return 0;
}

int http1_field(const struct http1_parser *p, size_t i, const char **name, size_t *name_len, const char **value,
                size_t *value_len)
{
    return http1_span_get(&p->head, p->fields, p->nfields, i, name, name_len, value, value_len);
}

int http1_trailer(const struct http1_parser *p, size_t i, const char **name, size_t *name_len,
                  const char **value, size_t *value_len)
{
    return http1_span_get(&p->trailer, p->trailers, p->ntrailers, i, name, name_len, value, value_len);
}

const char *http1_get(const struct http1_parser *p, const char *name, size_t *value_len)
{
    for (size_t i = 0; i < p->nfields; i++) {
        const char *n, *v;
        size_t nl, vl;
        http1_field(p, i, &n, &nl, &v, &vl);
        if (http1_ieq(n, nl, name)) {
            if (value_len)
                *value_len = vl;
            return v;
        }
    }
    return NULL;
}

/* ---------- errors ---------- */

static const struct {
    const char *name, *text;
    int status;
} http1_errors[HTTP1_E_COUNT] = {
    [HTTP1_E_NONE] = {"HTTP1_E_NONE", "no error", 200},
    [HTTP1_E_BARE_CR] = {"HTTP1_E_BARE_CR", "CR not followed by LF", 400},
    [HTTP1_E_BARE_LF] = {"HTTP1_E_BARE_LF", "LF without CR before it", 400},
    [HTTP1_E_REQUEST_LINE] = {"HTTP1_E_REQUEST_LINE", "request line is not method SP target SP version", 400},
    [HTTP1_E_METHOD] = {"HTTP1_E_METHOD", "method is not a token", 400},
    [HTTP1_E_TARGET] = {"HTTP1_E_TARGET", "request-target has a bad character or form", 400},
    [HTTP1_E_VERSION] = {"HTTP1_E_VERSION", "HTTP version is not HTTP/DIGIT.DIGIT", 400},
    [HTTP1_E_VERSION_UNSUPPORTED] = {"HTTP1_E_VERSION_UNSUPPORTED", "HTTP major version is not 1", 505},
    [HTTP1_E_STATUS_LINE] = {"HTTP1_E_STATUS_LINE", "status line is not version SP 3DIGIT SP reason", 400},
    [HTTP1_E_STATUS] = {"HTTP1_E_STATUS", "status code outside 100-599", 400},
    [HTTP1_E_REASON] = {"HTTP1_E_REASON", "control character in the reason phrase", 400},
    [HTTP1_E_FIELD_NAME] = {"HTTP1_E_FIELD_NAME", "field name is empty or not a token", 400},
    [HTTP1_E_SPACE_BEFORE_COLON] = {"HTTP1_E_SPACE_BEFORE_COLON", "whitespace between field name and colon", 400},
    [HTTP1_E_NO_COLON] = {"HTTP1_E_NO_COLON", "field line without a colon", 400},
    [HTTP1_E_OBS_FOLD] = {"HTTP1_E_OBS_FOLD", "line folding (obs-fold) or whitespace before the first field", 400},
    [HTTP1_E_FIELD_VALUE] = {"HTTP1_E_FIELD_VALUE", "control character in a field value", 400},
    [HTTP1_E_REQUEST_LINE_TOO_LONG] = {"HTTP1_E_REQUEST_LINE_TOO_LONG", "request line longer than the head limit",
                                       414},
    [HTTP1_E_HEAD_TOO_LARGE] = {"HTTP1_E_HEAD_TOO_LARGE", "header section larger than the limit", 431},
    [HTTP1_E_TOO_MANY_FIELDS] = {"HTTP1_E_TOO_MANY_FIELDS", "more header fields than the limit", 431},
    [HTTP1_E_HOST] = {"HTTP1_E_HOST", "Host missing from an HTTP/1.1 request, repeated, or invalid", 400},
    [HTTP1_E_CONTENT_LENGTH] = {"HTTP1_E_CONTENT_LENGTH", "Content-Length is not a number below 2^63", 400},
    [HTTP1_E_CONTENT_LENGTH_DUP] = {"HTTP1_E_CONTENT_LENGTH_DUP", "Content-Length repeated or a list", 400},
    [HTTP1_E_CL_AND_TE] = {"HTTP1_E_CL_AND_TE", "both Content-Length and Transfer-Encoding", 400},
    [HTTP1_E_TE_NOT_CHUNKED] = {"HTTP1_E_TE_NOT_CHUNKED", "Transfer-Encoding does not end in one chunked", 400},
    [HTTP1_E_TE_UNSUPPORTED] = {"HTTP1_E_TE_UNSUPPORTED", "transfer coding other than chunked", 501},
    [HTTP1_E_TE_HTTP10] = {"HTTP1_E_TE_HTTP10", "Transfer-Encoding in an HTTP/1.0 message", 400},
    [HTTP1_E_CHUNK_SIZE] = {"HTTP1_E_CHUNK_SIZE", "chunk size is not hexadecimal", 400},
    [HTTP1_E_CHUNK_SIZE_OVERFLOW] = {"HTTP1_E_CHUNK_SIZE_OVERFLOW", "chunk size over 2^63-1", 400},
    [HTTP1_E_CHUNK_EXT] = {"HTTP1_E_CHUNK_EXT", "malformed chunk extension", 400},
    [HTTP1_E_CHUNK_LINE_TOO_LONG] = {"HTTP1_E_CHUNK_LINE_TOO_LONG", "chunk size line longer than the limit", 400},
    [HTTP1_E_CHUNK_CRLF] = {"HTTP1_E_CHUNK_CRLF", "chunk data not followed by CRLF", 400},
    [HTTP1_E_BODY_TOO_LARGE] = {"HTTP1_E_BODY_TOO_LARGE", "body larger than the limit", 413},
    [HTTP1_E_TRUNCATED] = {"HTTP1_E_TRUNCATED", "connection closed inside a message", 400},
};

const char *http1_error_name(enum http1_error e)
{
    return (unsigned)e < HTTP1_E_COUNT ? http1_errors[e].name : "HTTP1_E_UNKNOWN";
}

const char *http1_strerror(enum http1_error e)
{
    return (unsigned)e < HTTP1_E_COUNT ? http1_errors[e].text : "unknown error";
}

int http1_error_status(enum http1_error e)
{
    return (unsigned)e < HTTP1_E_COUNT ? http1_errors[e].status : 400;
}

const char *http1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : "";
    }
}
