/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl stat`'s pure part: a Prometheus text parser (what weft-proxy's
 * /metrics writes) and the per-row sums of what the proxies export:
 * requests received (inbound), their success rate, p50/p95/p99 latency from
 * the merged histogram buckets and their share over mTLS; connections by
 * direction, mTLS and authorization, open connections, bytes, plaintext
 * refused under STRICT, readiness and certificate expiry. The same table
 * comes from a Prometheus: stat_prom_text() turns its per-pod query
 * results into the text the sums read. */
#ifndef WEFT_CLI_STAT_H
#define WEFT_CLI_STAT_H
#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"

#define STAT_MAX_LINE (64 * 1024)
#define STAT_MAX_LABELS 16
#define STAT_MAX_BUCKETS 32 /* distinct le bounds of a histogram; weft-proxy has 15 */

struct prom_label {
    const char *name, *value; /* NUL-terminated, valid during the callback only */
};

/* Calls fn for every sample of text. 0, or -1 with err naming the line
 * that does not parse (nothing after it is read). */
int prom_parse(const char *text, size_t len,
               void (*fn)(void *arg, const char *name, const struct prom_label *labels, size_t nlabels, double value),
               void *arg, char *err, size_t errlen);

/* A histogram merged over series: cumulative counts by upper bound (le),
 * ascending, the last +Inf when present. */
struct stat_hist {
    size_t n;
    double le[STAT_MAX_BUCKETS];
    double count[STAT_MAX_BUCKETS];
    int overflow;          /* more distinct bounds than STAT_MAX_BUCKETS: quantiles are not given */
};

/* Adds count to the bucket le (merging series); 0, or -1 once the bounds
 * exceed STAT_MAX_BUCKETS (h->overflow set). */
int stat_hist_add(struct stat_hist *h, double le, double count);
/* The q-quantile (0 <= q <= 1) as Prometheus' histogram_quantile() computes
 * it: linear within the bucket that holds rank q * total, the highest finite
 * bound when that is +Inf. NaN without observations, without a +Inf bucket,
 * or with fewer than two buckets. */
double stat_quantile(const struct stat_hist *h, double q);

struct stat_row {
    char name[320];        /* pod, Deployment or namespace, "ns/name" */
    unsigned pods, meshed, scraped, ready;
    double opened[2];      /* inbound, outbound */
    double mtls[2];        /* of those, over TLS */
    double denied;         /* inbound, authz="denied" */
    double open;
    double bytes_in, bytes_out;
    double refused;        /* plaintext refused under STRICT */
    double cert_expiry;    /* the soonest weft_proxy_certificate_expiry_timestamp_seconds; 0 none */
    /* Requests the row's proxies received (direction="inbound"): */
    double requests;       /* weft_proxy_http_requests_total */
    double success;        /* weft_proxy_http_responses_total{classification="success"} */
    double req_mtls;       /* requests from a caller with a SPIFFE ID */
    double req_overflow;   /* requests in the overflow set: their caller is not known */
    struct stat_hist latency; /* weft_proxy_http_request_duration_seconds, merged */
    char first_error[512]; /* a pod whose metrics could not be read */
    unsigned errors;
};

/* Adds one proxy's /metrics text to row. 0, or -1 with err. */
int stat_add_metrics(struct stat_row *row, const char *text, size_t len, char *err, size_t errlen);

/* The table of a snapshot {"now", "kind": "pod"|"deploy"|"ns", "pods": [Pod
 * with "weftctlMetrics": text, {"fetchError"}, or null when it is not
 * running]} into out. With prev (an earlier snapshot of the same kind, may
 * be NULL) requests, connections and bytes are per second since it,
 * denials and refusals counts since it, success rate, latency and mTLS share
 * over the requests since it. A snapshot with "window": SECONDS (from a
 * Prometheus) holds increases over that window already: rates without prev.
 * 0, 1 when some proxies could not be read, or -1 with err for a malformed
 * snapshot. */
int stat_render(const json_t *snapshot, const json_t *prev, struct buf *out, char *err, size_t errlen);

/* The per-pod sums weftctl asks a Prometheus for, in PromQL over window
 * seconds: STAT_NQUERIES queries; each result's samples keep their namespace
 * and pod labels (the ones Prometheus' Kubernetes pod discovery is commonly
 * relabelled into). */
#define STAT_NQUERIES 10
/* --prometheus URL: http[s]://host[:port][/prefix] (port 80, or 443, by
 * default) into *tls (1 for https), host, port and prefix (no trailing slash;
 * "" for none). 0, or -1 with err saying what is wrong (another scheme, no
 * host, a bad port, a user, a query or fragment). */
int stat_prom_url(const char *url, int *tls, char *host, size_t hostlen, char *port, size_t portlen, char *prefix,
                  size_t prefixlen, char *err, size_t errlen);
/* Query i (0 <= i < STAT_NQUERIES) into out. */
void stat_prom_query(int i, unsigned window, char *out, size_t outlen);
/* Adds the answer of query i (the JSON body of /api/v1/query) to texts, an
 * object from "namespace/pod" to the Prometheus text of that pod's sums
 * (what weftctlMetrics holds). 0, or -1 with err naming what is wrong with
 * the answer (status not success, no vector, a sample without namespace and
 * pod, a value that is not a number). */
int stat_prom_text(int i, const json_t *answer, json_t *texts, char *err, size_t errlen);
/* stat_prom.c (I/O): every query against the Prometheus at url, over window
 * seconds, evaluated at Unix time at (0: now): the texts object above, or
 * NULL with err. An https server is verified against the PEM certificates of
 * ca_file, or the system's (ca_file NULL). */
json_t *stat_prom_fetch(const char *url, const char *ca_file, unsigned window, long long at, char *err,
                        size_t errlen);

#endif
