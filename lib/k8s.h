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
#include <stddef.h>

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

#endif
