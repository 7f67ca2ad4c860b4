/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl stat`'s pure part: a Prometheus text parser (what weft-proxy's
 * /metrics writes) and the per-row sums of what the proxies export today:
 * connections by direction, mTLS and authorization, open connections, bytes,
 * plaintext refused under STRICT, readiness and certificate expiry. There
 * are no per-request metrics in weft-proxy yet, so no request or success
 * rate and no latency: the table says so rather than show zeros. */
#ifndef WEFT_CLI_STAT_H
#define WEFT_CLI_STAT_H
#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"

#define STAT_MAX_LINE (64 * 1024)
#define STAT_MAX_LABELS 16

struct prom_label {
    const char *name, *value; /* NUL-terminated, valid during the callback only */
};

/* Calls fn for every sample of text. 0, or -1 with err naming the line
 * that does not parse (nothing after it is read). */
int prom_parse(const char *text, size_t len,
               void (*fn)(void *arg, const char *name, const struct prom_label *labels, size_t nlabels, double value),
               void *arg, char *err, size_t errlen);

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
    char first_error[512]; /* a pod whose metrics could not be read */
    unsigned errors;
};

/* Adds one proxy's /metrics text to row. 0, or -1 with err. */
int stat_add_metrics(struct stat_row *row, const char *text, size_t len, char *err, size_t errlen);

/* The table of a snapshot {"now", "kind": "pod"|"deploy"|"ns", "pods": [Pod
 * with "weftctlMetrics": text, {"fetchError"}, or null when it is not
 * running]} into out. With prev (an earlier snapshot of the same kind, may
 * be NULL) connections and bytes are per second since it, denials and
 * refusals counts since it. 0, 1 when some proxies could not be read, or -1
 * with err for a malformed snapshot. */
int stat_render(const json_t *snapshot, const json_t *prev, struct buf *out, char *err, size_t errlen);

#endif
