/* SPDX-License-Identifier: Apache-2.0 */
/* The one HTTP/1.x message parser of Weft (RFC 9112 framing, RFC 9110 field
 * syntax): request heads, response heads and bodies (Content-Length,
 * chunked with trailers, until close), incremental and pure. Bytes are
 * pushed in as they arrive and come back as events; the parser never does
 * I/O and never grows past its limits.
 *
 * Why not a package: Debian 12 has no C llhttp (node-llhttp is JavaScript
 * for Node's own build), picohttpparser is not packaged, and
 * libhttp-parser2.9 is the archived joyent parser whose defaults accept
 * what a proxy must refuse here. So it is written here, strict, fuzzed
 * (fuzz/fuzz_lib_http1.c) and compared with h11 over the fuzz corpus
 * (tests/integration/test_http1.py).
 *
 * Strict means: CRLF only (a bare CR is an error, and so is a bare LF but in
 * a response's head and trailers, RFC 9112 2.2), no obs-fold,
 * field names are tokens with no space before the colon, values have no
 * control characters, one Content-Length (digits only), Transfer-Encoding
 * only "chunked" and never next to a Content-Length or in HTTP/1.0, a Host
 * in every HTTP/1.1 request and never two, chunk sizes that fit in 63 bits.
 * Lenient only where the RFCs ask it: empty lines before a request line are
 * skipped (9112 2.2), HTTP/1.2+ reads as 1.1 (9110 2.5), empty list elements
 * are ignored (9110 5.6.1), "HTTP/1.1 200" may omit an empty reason's SP.
 * Every error has its own code, a text and the status a server answers. */
#ifndef WEFT_HTTP1_H
#define WEFT_HTTP1_H
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define HTTP1_MAX_HEAD_DEFAULT (32 * 1024) /* start line + field lines + empty line */
#define HTTP1_MAX_FIELDS_DEFAULT 100
#define HTTP1_MAX_CHUNK_LINE 4096          /* chunk-size, extensions and CRLF */
#define HTTP1_KEEP 4096                    /* bytes a buffer or field table keeps between messages */

enum http1_kind {
    HTTP1_REQUEST,
    HTTP1_RESPONSE,
};

/* What one http1_parse() call found. */
enum http1_event {
    HTTP1_NEED_MORE, /* every byte given was consumed; feed more */
    HTTP1_HEAD,      /* the head is complete: p->msg and the fields are set */
    HTTP1_BODY,      /* *body, *body_len: body bytes (decoded from chunks), pointing into the input */
    HTTP1_DONE,      /* the message is complete (trailers, if any, are set); the next bytes start the next */
    HTTP1_CLOSED,    /* http1_finish() only: the peer closed between messages */
    HTTP1_ERROR,     /* p->error says why; the parser stays in error */
};

enum http1_error {
    HTTP1_E_NONE = 0,
    HTTP1_E_BARE_CR,            /* CR not followed by LF */
    HTTP1_E_BARE_LF,            /* LF not preceded by CR */
    HTTP1_E_REQUEST_LINE,       /* not method SP request-target SP HTTP-version */
    HTTP1_E_METHOD,             /* method is not a token */
    HTTP1_E_TARGET,             /* request-target: bad character or form */
    HTTP1_E_VERSION,            /* not HTTP/DIGIT.DIGIT */
    HTTP1_E_VERSION_UNSUPPORTED,/* a major version other than 1 */
    HTTP1_E_STATUS_LINE,        /* not HTTP-version SP 3DIGIT [SP reason] */
    HTTP1_E_STATUS,             /* status code outside 100-599 */
    HTTP1_E_REASON,             /* control character in the reason phrase */
    HTTP1_E_FIELD_NAME,         /* empty field name or a character that is not tchar */
    HTTP1_E_SPACE_BEFORE_COLON, /* "Name : value" */
    HTTP1_E_NO_COLON,           /* a field line without ':' */
    HTTP1_E_OBS_FOLD,           /* a line starting with SP or HTAB (also right after the start line) */
    HTTP1_E_FIELD_VALUE,        /* control character (other than HTAB) in a value */
    HTTP1_E_REQUEST_LINE_TOO_LONG, /* the head limit reached inside the request line (414) */
    HTTP1_E_HEAD_TOO_LARGE,     /* the head (or the trailers) over max_head (431) */
    HTTP1_E_TOO_MANY_FIELDS,    /* more than max_fields field lines (431) */
    HTTP1_E_HOST,               /* HTTP/1.1 request without Host, two Hosts, or a bad Host value */
    HTTP1_E_CONTENT_LENGTH,     /* not 1*DIGIT, or over 2^63-1 */
    HTTP1_E_CONTENT_LENGTH_DUP, /* Content-Length twice (same value or not) or as a list */
    HTTP1_E_CL_AND_TE,          /* both Content-Length and Transfer-Encoding */
    HTTP1_E_TE_NOT_CHUNKED,     /* Transfer-Encoding whose last coding is not chunked, or chunked twice */
    HTTP1_E_TE_UNSUPPORTED,     /* a coding other than chunked (gzip, chunked) (501) */
    HTTP1_E_TE_HTTP10,          /* Transfer-Encoding in an HTTP/1.0 message */
    HTTP1_E_CHUNK_SIZE,         /* chunk-size is not 1*HEXDIG */
    HTTP1_E_CHUNK_SIZE_OVERFLOW,/* chunk-size over 2^63-1 */
    HTTP1_E_CHUNK_EXT,          /* bad chunk extension */
    HTTP1_E_CHUNK_LINE_TOO_LONG,/* chunk-size line over HTTP1_MAX_CHUNK_LINE */
    HTTP1_E_CHUNK_CRLF,         /* chunk data not followed by CRLF */
    HTTP1_E_BODY_TOO_LARGE,     /* body over max_body (413) */
    HTTP1_E_TRUNCATED,          /* the peer closed inside a message */
    HTTP1_E_COUNT,
};

struct http1_limits {
    size_t max_head;   /* bytes of the head, CRLFs included; trailers get as many again */
    size_t max_fields; /* field lines of the head; trailers get as many again */
    uint64_t max_body; /* decoded body bytes; 0 for no limit */
};

/* The message whose head was last parsed. Pointers point into the parser
 * and are valid from HTTP1_HEAD until bytes are given after HTTP1_DONE (or
 * http1_free); they are not NUL-terminated. So are the fields. */
struct http1_msg {
    int version_minor;          /* 0 or 1 (HTTP/1.2+ reads as 1.1, RFC 9110 2.5); major is always 1 */
    const char *method;         /* requests */
    size_t method_len;
    const char *target;         /* requests: the request-target as sent */
    size_t target_len;
    int status;                 /* responses: 100-599 */
    const char *reason;         /* responses; may be empty */
    size_t reason_len;
    int64_t content_length;     /* -1 when absent */
    unsigned chunked : 1;       /* Transfer-Encoding: chunked */
    unsigned until_close : 1;   /* response body runs until the peer closes */
    unsigned no_body : 1;       /* framing says no body (1xx, 204, 304, HEAD, CONNECT 2xx, request without length) */
    unsigned keep_alive : 1;    /* another message may follow on this connection */
    unsigned upgrade : 1;       /* Connection: upgrade with an Upgrade field (or a 101) */
    unsigned expect_continue : 1; /* request: Expect: 100-continue */
};

struct http1_span { /* internal: a field's place in its buffer */
    uint32_t name_off, name_len, value_off, value_len;
};

struct http1_parser {
    enum http1_kind kind;
    struct http1_limits lim;
    enum http1_error error;
    struct http1_msg msg;
    int state;                  /* internal from here on */
    struct buf head, trailer, line;
    struct http1_span *fields, *trailers;
    size_t nfields, ntrailers, fields_cap, trailers_cap;
    size_t line_start;          /* offset of the current line in the buffer being filled */
    int lines;                  /* complete lines of the current head or trailer section */
    int prev_cr;
    int host_seen, cl_seen, te_seen, conn_close, conn_keep_alive, conn_upgrade, upgrade_field;
    uint64_t body_left, body_total;
    int request_no_body;        /* responses: the request was HEAD */
    int request_connect;        /* responses: the request was CONNECT */
    size_t count;               /* bytes of the current head or trailer section, blank lines skipped included */
    size_t t_off, t_len, r_off; /* request-target and reason within head */
    int te_chunked, te_other, te_last_chunked;
};

/* limits may be NULL, or a member 0, for the defaults (no body limit).
 * Allocates nothing until bytes arrive, then at most about twice max_head
 * (head and trailers) plus HTTP1_MAX_CHUNK_LINE and the field tables;
 * between messages it keeps no more than HTTP1_KEEP of each. */
void http1_init(struct http1_parser *p, enum http1_kind kind, const struct http1_limits *limits);
void http1_free(struct http1_parser *p);
/* Responses: the method of the request this response answers (HEAD has no
 * body, a 2xx to CONNECT is a tunnel with none); kept across 1xx, forgotten
 * at the final response's HTTP1_DONE (so call it then for the next one). */
void http1_response_to(struct http1_parser *p, const char *method, size_t len);

/* Consumes data up to and including the next event and says how many bytes
 * in *used (all of them for HTTP1_NEED_MORE; fewer after HTTP1_HEAD, BODY
 * and DONE, where the caller calls again with the rest, even when no byte
 * is left: a head without a body is HTTP1_HEAD, then HTTP1_DONE consuming
 * nothing). Call until HTTP1_NEED_MORE before waiting for input. For HTTP1_BODY,
 * *body and *body_len give the bytes; they may be NULL otherwise. After a
 * 101, or a 2xx to CONNECT, the bytes after HTTP1_DONE are not HTTP: stop
 * parsing. */
enum http1_event http1_parse(struct http1_parser *p, const char *data, size_t len, size_t *used,
                             const char **body, size_t *body_len);
/* The peer closed: HTTP1_DONE when that ends a body read until close,
 * HTTP1_CLOSED between messages, else HTTP1_ERROR (HTTP1_E_TRUNCATED, also
 * after a 1xx with no final response). */
enum http1_event http1_finish(struct http1_parser *p);

/* Field lines of the head (trailers: http1_trailer) in order, names and
 * values as sent, values without surrounding whitespace. 0, or -1 past the
 * end. */
int http1_field(const struct http1_parser *p, size_t i, const char **name, size_t *name_len, const char **value,
                size_t *value_len);
int http1_trailer(const struct http1_parser *p, size_t i, const char **name, size_t *name_len,
                  const char **value, size_t *value_len);
/* The value of the first head field called name (case-insensitive), or NULL. */
const char *http1_get(const struct http1_parser *p, const char *name, size_t *value_len);

/* "HTTP1_E_OBS_FOLD"-style name, a sentence for a person, and the status a
 * server answers a request with this error (400, 413, 414, 431, 501, 505). */
/* Whether s[0..len) is a non-empty token (RFC 9110 5.6.2): a method, a field name. */
int http1_is_token(const char *s, size_t len);
/* The reason phrase a response of this status carries (RFC 9110 15); "" for
 * a status without a registered one here ("OK" below 300). */
const char *http1_reason(int status);
const char *http1_error_name(enum http1_error e);
const char *http1_strerror(enum http1_error e);
int http1_error_status(enum http1_error e);

#endif
