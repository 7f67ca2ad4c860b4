/* SPDX-License-Identifier: Apache-2.0 */
/* The app's original probes (WEFT_APP_PROBES, stamped by the webhook) and
 * running one of them against the app, where the kubelet would, for
 * /app-health. Parsing is pure and fuzzed; probes_run does blocking I/O
 * bounded by the probe's timeout and is called on the admin thread only. */
#ifndef WEFT_PROXY_PROBES_H
#define WEFT_PROXY_PROBES_H
#include <stddef.h>
#include <stdint.h>

#define PROBES_MAX 64           /* entries in WEFT_APP_PROBES */
#define PROBES_MAX_HEADERS 16
#define PROBES_MAX_JSON (64 * 1024)
#define PROBES_MAX_PATH 1024
#define PROBES_MAX_HEADER 1024  /* name or value */

enum probe_kind { PROBE_LIVEZ, PROBE_READYZ, PROBE_STARTUPZ };
enum probe_type { PROBE_HTTP, PROBE_TCP, PROBE_GRPC };

struct probe_header {
    char *name;
    char *value;
};

struct probe {
    char *container;
    enum probe_kind kind;
    enum probe_type type;
    uint16_t port;
    int https;                  /* scheme HTTPS: TLS without verification, like the kubelet */
    char *path;                 /* HTTP only, starts with '/' */
    char *service;              /* gRPC only: the health service name, "" for the server */
    char *host;                 /* Host header value from httpHeaders, or NULL: the address probed */
    struct probe_header headers[PROBES_MAX_HEADERS];
    size_t nheaders;
    unsigned timeout_ms;        /* timeoutSeconds, default 1 s like the kubelet */
};

struct probes {
    struct probe items[PROBES_MAX];
    size_t n;
};

/* Parses the JSON object; 0 or -EINVAL with "<key>: <problem>" in err.
 * An empty string is an empty set. */
int probes_parse(const char *json, size_t len, struct probes *out, char *err, size_t errlen);
void probes_free(struct probes *p);
const struct probe *probes_find(const struct probes *p, const char *container, const char *kind);
const char *probes_kind_name(enum probe_kind k);

struct probe_result {
    int ok;          /* the kubelet would count it a success */
    int http_status; /* 0 for TCP, gRPC or no answer */
    char detail[192];
};
/* Runs the probe against <pod_ip>:<port>, where the kubelet would send it,
 * through the passthrough handoff (handoff.h); against 127.0.0.1 when
 * pod_ip is empty. An HTTP GET, a TCP connect, or the gRPC health check
 * (grpc_health.h). */
void probes_run(const struct probe *p, const char *pod_ip, struct probe_result *res);
/* Reads an HTTP/1.x answer's head from fd (through ssl when not NULL) with
 * lib/http1, past 1xx interim answers other than 101: its status, or 0 with
 * why in err (closed, timed out, or what was malformed). Blocking; the
 * socket's timeouts bound it. */
#define PROBES_MAX_RESPONSE_HEAD (64 * 1024)
struct ssl_st;
int probes_read_status(int fd, struct ssl_st *ssl, char *err, size_t errlen);
/* Pure helper for probes_run and tests: formats the HTTP request, with
 * default_host as Host unless the probe names one (the kubelet's rule). */
int probes_format_request(const struct probe *p, const char *default_host, char *out, size_t outlen);

#endif
