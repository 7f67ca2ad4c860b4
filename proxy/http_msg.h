/* SPDX-License-Identifier: Apache-2.0 */
/* The version-independent model of one HTTP exchange (a request and its
 * response), where the HTTP/1 and HTTP/2 sides and the request filter chain
 * meet. A "downstream" side is where requests arrive (an HTTP/1 server
 * connection, an HTTP/2 server stream); an "upstream" side is where they go
 * (an HTTP/1 client connection to the app or a plain endpoint, an HTTP/2
 * stream of a pooled weft/h2 connection). Neither side knows the other's
 * version: each turns its wire format into struct http_head and data calls
 * and back, so HTTP/1 -> HTTP/2 -> HTTP/1 needs no pairwise translation.
 *
 * Flow (design.md, L7): the downstream side hands the request head to
 * http_exchange_request_head(), which runs the fixed, ordered filter array
 * (proxy/http_filter.c: authz -> route, later -> timeout -> metrics) and
 * then the upstream side's ops; the upstream side hands the response back
 * through http_exchange_response_head() the other way. Body data and
 * trailers take the same path. Any filter, or the upstream side failing,
 * may answer the request itself with http_exchange_local_reply() (502, 503,
 * 504 with a short text body naming the cause), which the downstream side
 * sends like any response, so metrics and the access log see it too.
 *
 * Memory: every span in a head or a data call points into the calling
 * side's buffers (the HTTP/1 parser's, nghttp2's) and is valid for that call
 * only. A side that must keep something copies it. Worker thread only: an
 * exchange lives and dies on the loop of the connection it arrived on. */
#ifndef WEFT_PROXY_HTTP_MSG_H
#define WEFT_PROXY_HTTP_MSG_H
#include <stddef.h>
#include <stdint.h>

#include "pmetrics.h"

/* Bounds a head must respect on every side, whatever its version: the
 * HTTP/1 parser's defaults (lib/http1.h), so a request accepted by one side
 * is never too big for the other. An HTTP/2 side maps them to
 * SETTINGS_MAX_HEADER_LIST_SIZE and a field count. */
#define HTTP_MSG_MAX_FIELDS 100
#define HTTP_MSG_MAX_HEAD (32 * 1024) /* sum of names and values */
#define HTTP_MSG_METHOD_MAX 24        /* kept copy for metrics and the log; longer methods are cut */

struct http_span {
    const char *p; /* not NUL-terminated; NULL with len 0 when absent */
    size_t len;
};

struct http_field {
    struct http_span name, value; /* name as received (HTTP/2: lower case) */
};

/* A request head, a response head, or trailers (fields only). The request
 * line's parts are HTTP/2's pseudo-headers because they are the richer
 * model: an HTTP/1 side fills authority from Host (or an absolute-form
 * target) and path from an origin-form target; an HTTP/2 side fills them
 * from :authority and :path. fields never hold pseudo-headers, Host, or
 * connection-specific (hop-by-hop) fields: each side drops those when
 * reading (http_field_is_hop_by_hop) and writes its own framing, so
 * Transfer-Encoding, Connection and Keep-Alive never leak across. */
struct http_head {
    struct http_span method;    /* requests */
    struct http_span scheme;    /* requests: "http" or "https"; HTTP/1 origin-form: "http" */
    struct http_span authority; /* requests: host[:port]; CONNECT: the tunnel's target */
    struct http_span path;      /* requests: path and query; empty for CONNECT (and OPTIONS *: "*") */
    int status;                 /* responses: 100-599; 0 in requests and trailers */
    const struct http_field *fields;
    size_t nfields;
    int64_t content_length;     /* the declared length, -1 when unknown (chunked, HTTP/2 without one) */
    struct http_span upgrade;   /* request: the Upgrade protocols asked for (hop-by-hop, so apart);
                                 * a 101 response: what was switched to */
    unsigned end_stream : 1;    /* nothing follows this head: no body, no trailers */
    unsigned expect_continue : 1; /* request: Expect: 100-continue (the upstream side forwards a 100) */
};

/* Why the proxy answered a request itself, or why an exchange ended early.
 * Each maps to one status and one metric label (http_cause_status/name). */
enum http_cause {
    HTTP_CAUSE_NONE,
    HTTP_CAUSE_REFUSED,          /* 502: connect refused (or unreachable) */
    HTTP_CAUSE_RESET,            /* 502: the upstream closed or reset before a complete response */
    HTTP_CAUSE_TLS,              /* 502: the mTLS handshake with the upstream proxy failed */
    HTTP_CAUSE_BAD_RESPONSE,     /* 502: the upstream's response did not parse */
    HTTP_CAUSE_CONNECT_TIMEOUT,  /* 504: no connection within WEFT_CONNECT_TIMEOUT_MS */
    HTTP_CAUSE_REQUEST_TIMEOUT,  /* 504: the whole exchange over the request timeout */
    HTTP_CAUSE_HEADER_TIMEOUT,   /* 504: no response head within the response-header timeout */
    HTTP_CAUSE_NO_UPSTREAM,      /* 503: nowhere to send it */
    HTTP_CAUSE_DRAINING,         /* 503: the proxy is shutting down */
    HTTP_CAUSE_BAD_REQUEST,      /* 4xx from the downstream parser; the status comes with it */
    HTTP_CAUSE_DOWNSTREAM_GONE,  /* the client went away mid-exchange: nobody to answer */
    HTTP_CAUSE_DENIED,           /* 403: the caller's identity is not authorized (inbound) */
    HTTP_CAUSE_COUNT,
};

/* How a side answers a call that carries bytes. A side always takes what it
 * is given (buffering within its own bound); HTTP_PAUSE says "not now, stop
 * producing": the caller stops reading its peer until the side calls
 * http_exchange_resume_*(). That keeps memory per exchange bounded by one
 * read plus the side's buffer without partial-accept bookkeeping. It is
 * also how nghttp2's deferred data providers work. */
enum http_rc {
    HTTP_OK = 0,
    HTTP_PAUSE = 1,
    HTTP_FAIL = -1, /* the side failed; it has called http_exchange_abort() or will not take more */
};

struct http_exchange;

/* One side's operations: the half of the exchange that travels towards it.
 * The upstream side's head gets the request head; the downstream side's
 * head gets response heads (1xx interim ones first, except 101, which is
 * final). data's end_stream ends the message; trailers end it too. */
struct http_side_ops {
    const char *name;
    enum http_rc (*head)(struct http_exchange *x, const struct http_head *h);
    enum http_rc (*data)(struct http_exchange *x, const char *p, size_t len, int end_stream);
    enum http_rc (*trailers)(struct http_exchange *x, const struct http_head *t);
    /* The other side can take bytes again after it said HTTP_PAUSE. */
    void (*resume)(struct http_exchange *x);
    /* The exchange ends early (cause says why): drop what is in flight.
     * The downstream side gets it only once a response head was sent (else
     * it gets a local reply instead); the upstream side resets or closes. */
    void (*abort)(struct http_exchange *x, enum http_cause cause);
    /* The exchange is about to be freed (http_exchange_release): a side
     * whose state outlives the exchange (a pooled HTTP/2 stream still
     * closing) lets go of it here. May be NULL. */
    void (*release)(struct http_exchange *x);
};

/* Filter hooks return CONTINUE to pass the call on, or STOP when the filter
 * took it over: it answered with http_exchange_local_reply() (authz deny,
 * a timeout) or swallowed the call. Configuration supplies parameters; the
 * order is fixed in proxy/http_filter.c. */
enum http_filter_rc { HTTP_FILTER_CONTINUE, HTTP_FILTER_STOP };

struct http_filter {
    const char *name;
    /* Each may be NULL. Request hooks run in array order, response hooks in
     * reverse (the filter next to the upstream sees the response first). */
    enum http_filter_rc (*request_head)(struct http_exchange *x, struct http_head *h);
    enum http_filter_rc (*response_head)(struct http_exchange *x, struct http_head *h);
    enum http_filter_rc (*data)(struct http_exchange *x, int to_upstream, const char *p, size_t len,
                                int end_stream);
    /* Once per exchange, when both directions ended or it was aborted:
     * where metrics are recorded and the access log line written. */
    void (*done)(struct http_exchange *x);
};

struct worker;
struct proxy_config;

/* One request and its response. The downstream side creates it (embedded
 * in its connection or stream), fills the who/where part and the ops, and
 * calls http_exchange_begin. Filters keep their state in the fields below:
 * a small fixed set, since the chain is fixed at compile time. */
struct http_exchange {
    struct worker *w;                /* the loop, the metrics, the pool */
    const struct proxy_config *cfg;  /* the pinned snapshot of the connection */
    enum pm_dir dir;
    const struct http_side_ops *down_ops, *up_ops;
    void *down, *up;                 /* each side's own state */
    const char *peer;                /* inbound: the caller's SPIFFE ID, "" when plaintext */
    const char *dst;                 /* the destination as host:port, for metrics and the log */

    /* What the exchange saw, for the done hooks. */
    char method[HTTP_MSG_METHOD_MAX + 1];
    char path[256];                  /* the path without its query (never logged: it may hold secrets), cut */
    char authority[128];
    int status;                      /* final status sent downstream; 0 before a response head */
    int grpc_status;                 /* grpc-status of the response (trailers or a trailers-only head) when grpc */
    enum http_cause cause;           /* HTTP_CAUSE_NONE unless the proxy answered or it ended early */
    uint64_t start_ns, head_ns, end_ns; /* request head in, response head out, done */
    uint64_t req_bytes, resp_bytes;  /* body bytes each way */

    /* The timeout filter's state: the timeouts in force (the Service's from
     * discovery, else the settings; http_timeout_for) and their timers. */
    long long req_timer, hdr_timer;
    unsigned timeout_req_ms, timeout_hdr_ms, timeout_idle_ms;

    unsigned begun : 1, req_done : 1, resp_done : 1, resp_head_sent : 1, finished : 1;
    unsigned proxy_error : 1;        /* the proxy answered (local reply) */
    unsigned grpc : 1;               /* grpc_status was read from the response */
    unsigned tunnel : 1;             /* after a 101 or a 2xx to CONNECT: bytes, not HTTP */
};

/* Start: records the start time. */
void http_exchange_begin(struct http_exchange *x);
/* From the downstream side: the request, through the filters to up_ops. */
enum http_rc http_exchange_request_head(struct http_exchange *x, struct http_head *h);
enum http_rc http_exchange_request_data(struct http_exchange *x, const char *p, size_t len, int end_stream);
enum http_rc http_exchange_request_trailers(struct http_exchange *x, struct http_head *t);
/* From the upstream side: the response, through the filters to down_ops. */
enum http_rc http_exchange_response_head(struct http_exchange *x, struct http_head *h);
enum http_rc http_exchange_response_data(struct http_exchange *x, const char *p, size_t len, int end_stream);
enum http_rc http_exchange_response_trailers(struct http_exchange *x, struct http_head *t);
/* After HTTP_PAUSE: the side that paused says it can take more. */
void http_exchange_resume_upstream(struct http_exchange *x);   /* the upstream side can take request bytes */
void http_exchange_resume_downstream(struct http_exchange *x); /* the downstream side can take response bytes */
/* The proxy answers: status from the cause (or `status` when the cause is
 * HTTP_CAUSE_BAD_REQUEST), a text/plain body naming the cause. Before a
 * response head went downstream it is sent as the response and the
 * upstream side is aborted; after, the downstream side is aborted (a
 * response cannot be replaced). Then the exchange is done. */
void http_exchange_local_reply(struct http_exchange *x, enum http_cause cause, int status, const char *detail);
/* The rest of an upstream side that answers each request at its head with
 * http_exchange_local_reply() (a Service without endpoints, a denied
 * caller): such a side supplies its head and these, which take nothing. */
enum http_rc http_refusing_data(struct http_exchange *x, const char *p, size_t len, int end_stream);
enum http_rc http_refusing_trailers(struct http_exchange *x, const struct http_head *t);
void http_refusing_resume(struct http_exchange *x);
void http_refusing_abort(struct http_exchange *x, enum http_cause cause);
/* Either side: ends the exchange early without an answer (the client went
 * away, a tunnel closed). Both sides get abort except the caller's. */
void http_exchange_abort(struct http_exchange *x, enum http_cause cause, int from_upstream);
/* Runs the done hooks once both directions ended (sides call it when they
 * finish their half; a no-op until then and after the first run). */
void http_exchange_maybe_done(struct http_exchange *x);
/* Cancels what the filters armed; called by the downstream side before it
 * frees an exchange (done hooks already ran, or the connection closed). */
void http_exchange_release(struct http_exchange *x);
/* How long the downstream connection may stay idle after this exchange:
 * its destination Service's idle timeout, else WEFT_HTTP_IDLE_TIMEOUT_MS. */
unsigned http_exchange_idle_ms(const struct http_exchange *x);

/* Pure helpers shared by the HTTP/1 and HTTP/2 sides (proxy/http_msg.c). */
int http_cause_status(enum http_cause c);
const char *http_cause_name(enum http_cause c); /* the metric label: "refused", "reset", ... */
/* Whether a field is connection-specific and must not be forwarded (RFC
 * 9110 7.6.1, RFC 9113 8.2.2): Connection, Keep-Alive, Proxy-Connection,
 * TE, Transfer-Encoding, Upgrade, and any field the Connection field names
 * (connection: its value, may be empty). Host is not hop-by-hop but goes
 * into the authority. */
int http_field_is_hop_by_hop(const char *name, size_t len, const char *connection, size_t connection_len);
/* Case-insensitive name comparison with a NUL-terminated literal. */
int http_name_is(const char *name, size_t len, const char *lit);
/* Copies a request target's path without its query (and without a
 * fragment) into out (NUL-terminated, cut to outlen - 1). */
void http_path_no_query(const char *target, size_t len, char *out, size_t outlen);

#endif
