/* SPDX-License-Identifier: Apache-2.0 */
/* A small Kubernetes API client: HTTPS (OpenSSL, TLS 1.2+, server verified
 * against a CA file and the host name or IP), a bearer token re-read from its
 * file at most once a minute (projected tokens rotate), JSON bodies (jansson),
 * short timeouts and a bounded response size. One client is shared by many
 * threads: each request takes its own connection, from a small pool of
 * kept-alive ones when there is one. The process must ignore SIGPIPE (every
 * Weft binary does), as a peer may close a connection while we write.
 *
 * Responses are read with lib/http1's parser; the reader around it is
 * exported for the unit tests. */
#ifndef WEFT_K8S_H
#define WEFT_K8S_H
#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http1.h"

#define K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define K8S_TOKEN_REFRESH_SECONDS 60
#define K8S_CONNECT_TIMEOUT_MS 2000
#define K8S_IO_TIMEOUT_MS 5000            /* whole request: connect, write, wait, read */
#define K8S_MAX_RESPONSE (4 * 1024 * 1024) /* body bytes */
#define K8S_MAX_HEAD (32 * 1024)          /* status line + headers */
#define K8S_MAX_TOKEN (64 * 1024)
#define K8S_POOL_MAX 8                     /* idle kept-alive connections */

struct k8s_client;

/* host: DNS name, IPv4 or IPv6 literal (no brackets); port: decimal. ca_file
 * is required; token_file may be NULL (no Authorization header). Both files
 * are read now, so a misconfiguration fails here. NULL with a message in err
 * on failure. */
struct k8s_client *k8s_client_new(const char *host, const char *port, const char *ca_file,
                                  const char *token_file, char *err, size_t errlen);
/* KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and the service account's
 * token and ca.crt; NULL with a message when not running in a cluster. */
struct k8s_client *k8s_client_in_cluster(char *err, size_t errlen);
void k8s_client_free(struct k8s_client *c);

/* Tuning, for tests and callers with other needs; call before sharing the
 * client between threads. Zero keeps the current value. */
void k8s_client_set_timeouts(struct k8s_client *c, int connect_ms, int io_ms);
void k8s_client_set_max_response(struct k8s_client *c, size_t bytes);
void k8s_client_set_token_refresh(struct k8s_client *c, int seconds);
/* Verifies the server as name (DNS name or IP literal) instead of the host
 * connected to, and sends it as SNI and Host (a Service reached by address). */
int k8s_client_set_server_name(struct k8s_client *c, const char *name);

/* One request. method: upper-case token ("GET", "POST"...); path: absolute,
 * with query, already escaped ("/api/v1/namespaces/shop"); body is borrowed
 * and may be NULL. Returns 0 when an HTTP answer arrived, whatever its status:
 * *status is the code and *response a new reference to the JSON body (NULL
 * when the body was empty or not JSON; err then says so). For a status >= 400,
 * err holds the Status object's message and reason. Returns a negative errno
 * when no answer arrived: -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH...,
 * -EPROTO (TLS failure, e.g. certificate not verified), -EBADMSG (not HTTP),
 * -EFBIG (response over the limit), -EINVAL (bad method or path), with err
 * saying what happened. Thread-safe. */
int k8s_request(struct k8s_client *c, const char *method, const char *path, json_t *body,
                long *status, json_t **response, char *err, size_t errlen);

/* Pure parts, exported for tests. */

/* The response reader: lib/http1.h's parser plus the decoded body. Feed it
 * bytes as they arrive. */
enum k8s_http_state {
    K8S_HTTP_HEAD,     /* before the final (non-1xx) head */
    K8S_HTTP_BODY,     /* Content-Length or chunked body */
    K8S_HTTP_BODY_EOF, /* neither: body runs until the peer closes */
    K8S_HTTP_DONE,
};

struct k8s_http_response {
    enum k8s_http_state state;
    long status;
    long long content_length; /* -1 when absent */
    int chunked;
    int keep_alive;           /* the connection may carry another request */
    struct http1_parser parser; /* parser.error says why a feed failed */
    struct buf body;          /* decoded body, at most max_body bytes */
    int head_only;            /* answer to HEAD: no body whatever the headers say */
    char content_type[128];
};

void k8s_http_response_init(struct k8s_http_response *r, size_t max_body);
void k8s_http_response_free(struct k8s_http_response *r);
/* Consumes bytes; *used says how many (less than len only once DONE: the rest
 * belongs to no request and makes the connection unusable). Returns 1 when
 * the response is complete, 0 when more is needed, -EBADMSG when malformed,
 * -EFBIG when the head or body exceeds its limit. */
int k8s_http_response_feed(struct k8s_http_response *r, const char *data, size_t len, size_t *used);
/* The peer closed: 1 if that completes the response (body until EOF), else
 * -EBADMSG (truncated). */
int k8s_http_response_eof(struct k8s_http_response *r);

/* Writes the request head into out (Host, Authorization when token is not
 * NULL, Accept, Content-Type and Content-Length when body_len is given or
 * has_body). 0, or -EINVAL for a method, path, host or token that could
 * smuggle a header, or -E2BIG. */
int k8s_http_request_head(struct buf *out, const char *method, const char *path, const char *host,
                          const char *port, const char *token, int has_body, size_t body_len);

/* "message (reason Forbidden)" from a Kubernetes Status object, or a generic
 * text when the body is not one. */
void k8s_status_message(const json_t *body, long status, char *out, size_t outlen);

/* Reads a token file: at most K8S_MAX_TOKEN bytes, surrounding whitespace
 * trimmed, no control characters inside. Returns 0 and a new string in *out,
 * or a negative errno with err filled. */
int k8s_read_token(const char *path, char **out, char *err, size_t errlen);


/* ---------- list + watch, as client-go's informers (reflectors) do ----------
 *
 * k8s_watch_run lists a resource (in pages), then watches it from the list's
 * resourceVersion with bookmarks, forever, until *stop becomes nonzero:
 *   - a watch that ends (timeoutSeconds, the server closing) is restarted
 *     from the last resourceVersion seen, at once;
 *   - 410 Gone (an ERROR event or status, the resourceVersion compacted
 *     away, an expired continue token) lists again, at once;
 *   - any other failure (connect, TLS, HTTP error, malformed or oversize
 *     event) waits a jittered, exponentially growing delay, then watches from
 *     the last resourceVersion (or lists, if no list completed yet); the
 *     delay starts over after a watch that stayed healthy for healthy_ms.
 * Objects are handed to fn on the calling thread, in order. Each list starts
 * with K8S_WATCH_RESET and ends with K8S_WATCH_SYNCED: an object the caller
 * holds but did not get between the two was deleted while we were not
 * watching (client-go's Replace).
 *
 * With absent_recheck_ms set, a 404 on the list means the resource is not
 * served at all (a CustomResourceDefinition not installed, as istiod reads
 * it): fn gets K8S_WATCH_ABSENT (the caller holds none of that resource and
 * counts it as listed), the transition is logged once, and the list is tried
 * again after a jittered k8s_recheck_delay, so a CRD installed later is
 * watched with no restart. A 404 on a watch (the CRD deleted) lists again. */
enum k8s_watch_kind {
    K8S_WATCH_RESET,    /* a list begins; object NULL */
    K8S_WATCH_ADDED,    /* list items arrive as ADDED too */
    K8S_WATCH_MODIFIED,
    K8S_WATCH_DELETED,
    K8S_WATCH_BOOKMARK, /* object: the bookmark (only metadata.resourceVersion is meaningful) */
    K8S_WATCH_SYNCED,   /* the list is complete; object NULL */
    K8S_WATCH_ABSENT,   /* with absent_recheck_ms: the list answered 404, the resource is not served; object NULL */
};

/* object is borrowed; it has kind and apiVersion even for list items (the
 * API server leaves them out of a list's items; they are put back). */
typedef void k8s_watch_fn(void *arg, enum k8s_watch_kind kind, json_t *object, const char *resource_version);

#define K8S_WATCH_MAX_EVENT (3 * 1024 * 1024)       /* one event line: the API server's request limit */
#define K8S_LIST_MAX_RESPONSE (64 * 1024 * 1024)    /* one list page */
#define K8S_LIST_PAGE 500                           /* client-go's default page size */

struct k8s_watch_opts {
    const char *path;       /* collection, e.g. "/api/v1/pods" or "/apis/discovery.k8s.io/v1/endpointslices" */
    size_t max_event;       /* 0: K8S_WATCH_MAX_EVENT */
    int page_limit;         /* 0: K8S_LIST_PAGE */
    int backoff_initial_ms; /* 0: 800 (client-go's) */
    int backoff_max_ms;     /* 0: 30000 */
    int healthy_ms;         /* 0: 60000; a watch open this long resets the backoff */
    int timeout_min_s;      /* 0: 300; timeoutSeconds is drawn from [min, 2 min) as client-go does */
    int idle_ms;            /* 0: timeoutSeconds + 30 s; no byte for this long is a failure */
    int absent_recheck_ms;  /* 0: a 404 is a failure like any other; else see K8S_WATCH_ABSENT */
    const char *drop_member; /* NULL, or a member name left out of every object of the list pages and
                                watch events before they are parsed (jsondrop.h): "managedFields" */
};

/* Counters and state any thread may read while the watch runs. */
struct k8s_watch_stats {
    atomic_int connected;               /* a watch stream is open and the list behind it complete */
    atomic_uint_fast64_t last_ok_ms;    /* monotonic ms at which the cache was last known current */
    atomic_uint_fast64_t started_ms;
    atomic_uint_fast64_t lists;         /* lists completed */
    atomic_uint_fast64_t watches;       /* watch streams opened */
    atomic_uint_fast64_t events;        /* ADDED/MODIFIED/DELETED received on watches */
    atomic_uint_fast64_t bookmarks;
    atomic_uint_fast64_t gone;          /* 410s that forced a list */
    atomic_uint_fast64_t errors;        /* failures followed by a backoff */
    atomic_uint_fast64_t oversize;      /* events over max_event (counted in errors too) */
    atomic_uint_fast64_t last_backoff_ms;
    atomic_int absent;                  /* the last list answered 404: the resource is not served */
    atomic_uint_fast64_t absent_checks; /* lists that answered 404 */
    char last_error[256];               /* written under no lock: for logs of this thread only */
};

/* Blocks until *stop; returns 0 then. Safe to run one per thread on one
 * shared client. */
int k8s_watch_run(struct k8s_client *c, const struct k8s_watch_opts *opts, k8s_watch_fn *fn, void *arg,
                  const atomic_int *stop, struct k8s_watch_stats *stats);
/* Seconds the cache may be behind the API server: 0 while a watch is open on
 * a complete list, else the time since it last was (or since the start). */
double k8s_watch_staleness_seconds(const struct k8s_watch_stats *stats, uint64_t now_ms);
/* CLOCK_MONOTONIC milliseconds, the clock of the stats. */
uint64_t k8s_monotonic_ms(void);

/* Jittered exponential backoff (pure): each delay is drawn uniformly from
 * [d/2, d], then d doubles up to max; reset starts again from initial. The
 * jitter keeps a fleet of clients from retrying in step after an outage. */
struct k8s_backoff {
    uint32_t initial_ms, max_ms, cur_ms;
    uint64_t rng; /* xorshift state, nonzero */
};
void k8s_backoff_init(struct k8s_backoff *b, uint32_t initial_ms, uint32_t max_ms, uint64_t seed);
uint32_t k8s_backoff_next(struct k8s_backoff *b);
void k8s_backoff_reset(struct k8s_backoff *b);
/* The wait before listing an absent resource again: drawn uniformly from
 * [3/4, 5/4] of base_ms with b's generator, so a fleet of replicas does not
 * poll the API server in step. */
uint32_t k8s_recheck_delay(struct k8s_backoff *b, uint32_t base_ms);

/* Splits one complete watch event line into its type and object (a new
 * reference) and the object's metadata.resourceVersion (borrowed from it).
 * 0, -EINVAL when it is not a watch event. For ERROR, *code is the Status's
 * code (0 when absent). Pure, exported for tests. */
int k8s_watch_parse_event(const char *line, size_t len, enum k8s_watch_kind *kind, json_t **object,
                          const char **resource_version, long *code, char *err, size_t errlen);

#endif
