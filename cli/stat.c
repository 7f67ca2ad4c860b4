/* SPDX-License-Identifier: Apache-2.0 */
/* weftctl stat's parser and table; see stat.h. The parser reads the text
 * exposition format's sample lines (name, optional {labels}, value, optional
 * timestamp) strictly and skips comments; it is fuzzed with the rest of the
 * snapshot evaluation. */
#include "stat.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "hostport.h"
#include "xalloc.h"

static int name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

/* Parses one sample line in place (line is a writable copy). */
static int parse_line(char *line, size_t lineno,
                      void (*fn)(void *, const char *, const struct prom_label *, size_t, double), void *arg,
                      char *err, size_t errlen)
{
    struct prom_label labels[STAT_MAX_LABELS];
    size_t n = 0;
    char *p = line;
    if (!name_char(*p, 1))
        goto bad;
    while (name_char(*p, 0))
        p++;
    char *name_end = p;
    if (*p == '{') {
        *name_end = '\0';
        p++;
        while (*p != '}') {
            char *ln = p;
            if (!name_char(*p, 1))
                goto bad;
            while (name_char(*p, 0))
                p++;
            if (*p != '=' || p[1] != '"' || n == STAT_MAX_LABELS)
                goto bad;
            *p = '\0';
            p += 2;
            char *v = p, *w = p;
            while (*p != '"') {
                if (!*p)
                    goto bad;
                if (*p == '\\') {
                    p++;
                    if (*p == 'n')
                        *w++ = '\n';
                    else if (*p == '\\' || *p == '"')
                        *w++ = *p;
                    else
                        goto bad;
                    p++;
                } else {
                    *w++ = *p++;
                }
            }
            *w = '\0';
            p++;
            labels[n].name = ln;
            labels[n].value = v;
            n++;
            if (*p == ',')
                p++;
            else if (*p != '}')
                goto bad;
        }
        p++; /* past '}' */
        if (*p != ' ')
            goto bad;
    } else {
        if (*p != ' ')
            goto bad;
        *name_end = '\0';
        p++;
    }
    while (*p == ' ')
        p++;
    char *end;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || errno == ERANGE)
        goto bad;
    while (*end == ' ')
        end++;
    if (*end) { /* a timestamp */
        char *tend;
        strtoll(end, &tend, 10);
        if (tend == end || *tend)
            goto bad;
    }
    fn(arg, line, labels, n, v);
    return 0;
bad:
    errbuf_set(err, errlen, "line %zu is not a Prometheus sample", lineno);
    return -1;
}

int prom_parse(const char *text, size_t len,
               void (*fn)(void *arg, const char *name, const struct prom_label *labels, size_t nlabels, double value),
               void *arg, char *err, size_t errlen)
{
    char *line = xmalloc(STAT_MAX_LINE + 1);
    size_t lineno = 0;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t l = nl ? (size_t)(nl - (text + i)) : len - i;
        lineno++;
        if (l > STAT_MAX_LINE) {
            errbuf_set(err, errlen, "line %zu is longer than %d bytes", lineno, STAT_MAX_LINE);
            rc = -1;
            break;
        }
        memcpy(line, text + i, l);
        line[l] = '\0';
        if (memchr(line, '\0', l)) {
            errbuf_set(err, errlen, "line %zu holds a NUL byte", lineno);
            rc = -1;
            break;
        }
        if (l && line[l - 1] == '\r')
            line[l - 1] = '\0';
        if (line[0] && line[0] != '#')
            rc = parse_line(line, lineno, fn, arg, err, errlen);
        i += l + 1;
    }
    free(line);
    return rc;
}

static const char *label(const struct prom_label *l, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].name, name) == 0)
            return l[i].value;
    return "";
}

int stat_hist_add(struct stat_hist *h, double le, double count)
{
    size_t i = 0;
    while (i < h->n && h->le[i] < le)
        i++;
    if (i < h->n && h->le[i] == le) {
        h->count[i] += count;
        return 0;
    }
    if (h->n == STAT_MAX_BUCKETS) {
        h->overflow = 1;
        return -1;
    }
    memmove(&h->le[i + 1], &h->le[i], (h->n - i) * sizeof *h->le);
    memmove(&h->count[i + 1], &h->count[i], (h->n - i) * sizeof *h->count);
    h->le[i] = le;
    h->count[i] = count;
    h->n++;
    return 0;
}

double stat_quantile(const struct stat_hist *h, double q)
{
    /* promql/quantile.go's bucketQuantile, step by step, so weftctl without
     * a Prometheus prints what histogram_quantile() would. */
    if (h->overflow || h->n < 2 || !isinf(h->le[h->n - 1]) || q < 0 || q > 1 || isnan(q))
        return NAN;
    double count[STAT_MAX_BUCKETS];
    /* Counts must not fall with the bound (series read at slightly
     * different moments can make them); Prometheus evens them out too. */
    for (size_t i = 0; i < h->n; i++)
        count[i] = i && h->count[i] < count[i - 1] ? count[i - 1] : h->count[i];
    double total = count[h->n - 1];
    if (!(total > 0))
        return NAN;
    double rank = q * total;
    size_t b = 0;
    while (b < h->n - 1 && count[b] < rank)
        b++;
    if (b == h->n - 1)
        return h->le[h->n - 2];
    if (b == 0 && h->le[0] <= 0)
        return h->le[0];
    double start = 0, end = h->le[b], in = count[b];
    if (b > 0) {
        start = h->le[b - 1];
        in -= count[b - 1];
        rank -= count[b - 1];
    }
    return in > 0 ? start + (end - start) * (rank / in) : start;
}

static void add_sample(void *arg, const char *name, const struct prom_label *l, size_t n, double v)
{
    struct stat_row *r = arg;
    if (!isfinite(v))
        return;
    int dir = strcmp(label(l, n, "direction"), "outbound") == 0;
    int tls = strcmp(label(l, n, "tls"), "true") == 0;
    if (strncmp(name, "weft_proxy_http_", 16) == 0) {
        /* The workload as a server: what its proxies received. */
        if (strcmp(label(l, n, "direction"), "inbound") != 0)
            return;
        const char *peer = label(l, n, "peer");
        if (strcmp(name, "weft_proxy_http_requests_total") == 0) {
            r->requests += v;
            if (strcmp(peer, "overflow") == 0)
                r->req_overflow += v;
            else if (*peer)
                r->req_mtls += v;
        } else if (strcmp(name, "weft_proxy_http_responses_total") == 0) {
            if (strcmp(label(l, n, "classification"), "success") == 0)
                r->success += v;
        } else if (strcmp(name, "weft_proxy_http_request_duration_seconds_bucket") == 0) {
            const char *le = label(l, n, "le");
            char *end;
            double bound = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, &end);
            if (strcmp(le, "+Inf") == 0 || (*le && !*end && isfinite(bound)))
                stat_hist_add(&r->latency, bound, v);
        }
        return;
    }
    if (strcmp(name, "weft_proxy_connections_opened_total") == 0) {
        r->opened[dir] += v;
        if (tls)
            r->mtls[dir] += v;
        if (!dir && strcmp(label(l, n, "authz"), "denied") == 0)
            r->denied += v;
    } else if (strcmp(name, "weft_proxy_connections_open") == 0) {
        r->open += v;
    } else if (strcmp(name, "weft_proxy_received_bytes_total") == 0) {
        r->bytes_in += v;
    } else if (strcmp(name, "weft_proxy_sent_bytes_total") == 0) {
        r->bytes_out += v;
    } else if (strcmp(name, "weft_proxy_inbound_refused_total") == 0) {
        r->refused += v;
    } else if (strcmp(name, "weft_proxy_ready") == 0) {
        r->ready += v == 1;
    } else if (strcmp(name, "weft_proxy_certificate_expiry_timestamp_seconds") == 0 && v > 0) {
        if (r->cert_expiry == 0 || v < r->cert_expiry)
            r->cert_expiry = v;
    }
}

int stat_add_metrics(struct stat_row *row, const char *text, size_t len, char *err, size_t errlen)
{
    struct stat_row copy = *row;
    if (prom_parse(text, len, add_sample, &copy, err, errlen) < 0)
        return -1; /* all or nothing: a half-read proxy would skew the sums */
    copy.scraped++;
    *row = copy;
    return 0;
}

static const char *sget(const json_t *v, const char *a, const char *b)
{
    json_t *x = json_object_get(v, a);
    return json_string_value(b ? json_object_get(x, b) : x);
}

/* The row a pod belongs to for kind. */
static void row_name(const json_t *pod, const char *kind, char *out, size_t outlen)
{
    const char *ns = sget(pod, "metadata", "namespace"), *name = sget(pod, "metadata", "name");
    if (strcmp(kind, "ns") == 0) {
        snprintf(out, outlen, "%s", ns ? ns : "?");
        return;
    }
    if (strcmp(kind, "deploy") == 0) {
        /* a Deployment's pods belong to its ReplicaSet <deployment>-<pod-template-hash> */
        json_t *refs = json_object_get(json_object_get(pod, "metadata"), "ownerReferences");
        const char *hash = json_string_value(
            json_object_get(json_object_get(json_object_get(pod, "metadata"), "labels"), "pod-template-hash"));
        size_t i;
        json_t *r;
        json_array_foreach(refs, i, r) {
            const char *k = sget(r, "kind", NULL), *rn = sget(r, "name", NULL);
            size_t rl = rn ? strlen(rn) : 0, hl = hash ? strlen(hash) : 0;
            if (k && rn && hash && strcmp(k, "ReplicaSet") == 0 && rl > hl + 1 && rn[rl - hl - 1] == '-' &&
                strcmp(rn + rl - hl, hash) == 0) {
                snprintf(out, outlen, "%s/%.*s", ns ? ns : "?", (int)(rl - hl - 1), rn);
                return;
            }
        }
        snprintf(out, outlen, "%s/%s (no Deployment)", ns ? ns : "?", name ? name : "?");
        return;
    }
    snprintf(out, outlen, "%s/%s", ns ? ns : "?", name ? name : "?");
}

static void human_bytes(double b, char *out, size_t outlen)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        u++;
    }
    snprintf(out, outlen, u ? "%.1f%s" : "%.0f%s", b, units[u]);
}

/* The rows of a snapshot (a new array, *nrows of them) and its time. */
/* cur minus prev (the same proxy's earlier reading); a counter that went
 * down (the proxy restarted) counts from zero. */
static void delta(struct stat_row *cur, const struct stat_row *prev)
{
    double *c[] = {&cur->opened[0], &cur->opened[1], &cur->mtls[0], &cur->mtls[1], &cur->denied,
                   &cur->bytes_in, &cur->bytes_out, &cur->refused};
    const double *p[] = {&prev->opened[0], &prev->opened[1], &prev->mtls[0], &prev->mtls[1], &prev->denied,
                         &prev->bytes_in, &prev->bytes_out, &prev->refused};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        *c[i] = *c[i] >= *p[i] ? *c[i] - *p[i] : *c[i];
    /* The request figures go together: fewer requests than before means the
     * proxy restarted, and all of them count from zero. */
    if (cur->requests < prev->requests)
        return;
    cur->requests -= prev->requests;
    cur->success = cur->success >= prev->success ? cur->success - prev->success : cur->success;
    cur->req_mtls = cur->req_mtls >= prev->req_mtls ? cur->req_mtls - prev->req_mtls : cur->req_mtls;
    cur->req_overflow = cur->req_overflow >= prev->req_overflow ? cur->req_overflow - prev->req_overflow
                                                                : cur->req_overflow;
    for (size_t i = 0; i < cur->latency.n; i++)
        for (size_t k = 0; k < prev->latency.n; k++)
            if (prev->latency.le[k] == cur->latency.le[i] && cur->latency.count[i] >= prev->latency.count[k])
                cur->latency.count[i] -= prev->latency.count[k];
}

/* The metrics text of pod ns/name in pods (an earlier reading), or NULL. */
static const char *earlier_text(const json_t *pods, const json_t *pod)
{
    const char *ns = sget(pod, "metadata", "namespace"), *name = sget(pod, "metadata", "name");
    size_t i;
    json_t *q;
    json_array_foreach(pods, i, q) {
        const char *qn = sget(q, "metadata", "namespace"), *qm = sget(q, "metadata", "name");
        if (ns && name && qn && qm && strcmp(ns, qn) == 0 && strcmp(name, qm) == 0)
            return json_string_value(json_object_get(q, "weftctlMetrics"));
    }
    return NULL;
}

static void add_row(struct stat_row *to, const struct stat_row *r)
{
    for (int d = 0; d < 2; d++) {
        to->opened[d] += r->opened[d];
        to->mtls[d] += r->mtls[d];
    }
    to->denied += r->denied;
    to->open += r->open;
    to->bytes_in += r->bytes_in;
    to->bytes_out += r->bytes_out;
    to->refused += r->refused;
    to->ready += r->ready;
    to->scraped += r->scraped;
    to->requests += r->requests;
    to->success += r->success;
    to->req_mtls += r->req_mtls;
    to->req_overflow += r->req_overflow;
    for (size_t i = 0; i < r->latency.n; i++)
        stat_hist_add(&to->latency, r->latency.le[i], r->latency.count[i]);
    to->latency.overflow |= r->latency.overflow;
    if (r->cert_expiry > 0 && (to->cert_expiry == 0 || r->cert_expiry < to->cert_expiry))
        to->cert_expiry = r->cert_expiry;
}

static int snapshot_ok(const json_t *snap, char *err, size_t errlen)
{
    const char *kind = sget(snap, "kind", NULL);
    if (!kind || (strcmp(kind, "pod") != 0 && strcmp(kind, "deploy") != 0 && strcmp(kind, "ns") != 0) ||
        !json_is_array(json_object_get(snap, "pods")) || !json_is_integer(json_object_get(snap, "now"))) {
        errbuf_set(err, errlen, "the snapshot lacks kind (pod, deploy, ns), pods or now (Unix seconds)");
        return 0;
    }
    return 1;
}

/* The rows of a snapshot (a new array, *nrows of them); with prev_pods (an
 * earlier reading's pods) each proxy's counters are the difference since it,
 * a proxy not in the earlier reading counting from zero. */
static struct stat_row *rows_of(const json_t *snap, const json_t *prev_pods, size_t *nrows_out)
{
    const char *kind = sget(snap, "kind", NULL);
    json_t *pods = json_object_get(snap, "pods");
    size_t n = json_array_size(pods), nrows = 0;
    struct stat_row *rows = xcalloc(n ? n : 1, sizeof *rows);
    size_t i;
    json_t *p;
    json_array_foreach(pods, i, p) {
        char name[320];
        row_name(p, kind, name, sizeof name);
        struct stat_row *r = NULL;
        for (size_t k = 0; k < nrows && !r; k++)
            if (strcmp(rows[k].name, name) == 0)
                r = &rows[k];
        if (!r) {
            r = &rows[nrows++];
            snprintf(r->name, sizeof r->name, "%s", name);
        }
        r->pods++;
        json_t *ann = json_object_get(json_object_get(p, "metadata"), "annotations");
        if (!json_object_get(ann, "weft.dev/status"))
            continue;
        r->meshed++;
        json_t *m = json_object_get(p, "weftctlMetrics");
        if (json_is_null(m))
            continue; /* not running: no proxy to read yet; it shows as meshed but not ready */
        const char *text = json_string_value(m);
        const char *fe = json_string_value(json_object_get(m, "fetchError"));
        char perr[256] = "";
        struct stat_row pr, pp;
        memset(&pr, 0, sizeof pr);
        if (!text || stat_add_metrics(&pr, text, strlen(text), perr, sizeof perr) < 0) {
            if (!r->errors++)
                snprintf(r->first_error, sizeof r->first_error, "%s: %s", sget(p, "metadata", "name"),
                         fe ? fe : perr[0] ? perr : "no metrics");
            continue;
        }
        const char *before = prev_pods ? earlier_text(prev_pods, p) : NULL;
        memset(&pp, 0, sizeof pp);
        if (before && stat_add_metrics(&pp, before, strlen(before), perr, sizeof perr) == 0)
            delta(&pr, &pp);
        add_row(r, &pr);
    }
    *nrows_out = nrows;
    return rows;
}

/* A latency in seconds as the table shows it; "-" when there is none. */
static void fmt_latency(double s, char *out, size_t outlen)
{
    if (isnan(s))
        snprintf(out, outlen, "-");
    else if (s < 0.01)
        snprintf(out, outlen, "%.2fms", s * 1000);
    else if (s < 1)
        snprintf(out, outlen, "%.0fms", s * 1000);
    else
        snprintf(out, outlen, "%.2fs", s);
}

static const char stat_head[] = "%-40s %7s %7s %9s %9s %6s %6s %7s %9s %9s %10s %8s %8s %8s %8s %8s %8s\n";

int stat_render(const json_t *snap, const json_t *prev, struct buf *out, char *err, size_t errlen)
{
    size_t nrows = 0;
    double now, secs = 0;
    if (!snapshot_ok(snap, err, errlen) || (prev && !snapshot_ok(prev, err, errlen)))
        return -1;
    now = (double)json_integer_value(json_object_get(snap, "now"));
    json_t *win = json_object_get(snap, "window");
    if (win && (!json_is_integer(win) || json_integer_value(win) < 1 || json_integer_value(win) > 86400)) {
        errbuf_set(err, errlen, "the snapshot's window is not a whole number of seconds from 1 to 86400");
        return -1;
    }
    if (win) {
        if (prev) {
            errbuf_set(err, errlen, "a snapshot with a window (from a Prometheus) holds rates already: no earlier one");
            return -1;
        }
        secs = (double)json_integer_value(win);
    } else if (prev) {
        secs = now - (double)json_integer_value(json_object_get(prev, "now"));
        if (secs <= 0) {
            errbuf_set(err, errlen, "the earlier snapshot is not earlier");
            return -1;
        }
    }
    int rates = prev || win;
    struct stat_row *rows = rows_of(snap, prev ? json_object_get(prev, "pods") : NULL, &nrows);
    if (rates)
        buf_appendf(out, stat_head, "NAME", "MESHED", "READY", "CONNS-IN/s", "CONNS-OUT/s", "MTLS", "DENIED",
                    "REFUSED", "BYTES-IN/s", "BYTES-OUT/s", "CERT-LEFT", "SUCCESS", "RPS", "P50", "P95", "P99",
                    "REQ-MTLS");
    else
        buf_appendf(out, stat_head, "NAME", "MESHED", "READY", "CONNS-IN", "CONNS-OUT", "MTLS", "DENIED", "REFUSED",
                    "BYTES-IN", "BYTES-OUT", "CERT-LEFT", "SUCCESS", "REQS", "P50", "P95", "P99", "REQ-MTLS");
    double div = rates ? secs : 1;
    for (size_t k = 0; k < nrows; k++) {
        struct stat_row *r = &rows[k];
        char meshed[32], ready[32], mtls[16] = "-", bin[32], bout[32], cert[32] = "-";
        char succ[16] = "-", reqs[32] = "-", p50[16], p95[16], p99[16], rmtls[16] = "-";
        snprintf(meshed, sizeof meshed, "%u/%u", r->meshed, r->pods);
        snprintf(ready, sizeof ready, "%u/%u", r->ready, r->meshed);
        double total = r->opened[0] + r->opened[1];
        if (total > 0)
            snprintf(mtls, sizeof mtls, "%.0f%%", 100.0 * (r->mtls[0] + r->mtls[1]) / total);
        human_bytes(r->bytes_in / div, bin, sizeof bin);
        human_bytes(r->bytes_out / div, bout, sizeof bout);
        if (r->cert_expiry > 0) {
            double left = r->cert_expiry - now;
            if (left <= 0)
                snprintf(cert, sizeof cert, "expired");
            else if (left < 3600)
                snprintf(cert, sizeof cert, "%.0fm", left / 60);
            else
                snprintf(cert, sizeof cert, "%.1fh", left / 3600);
        }
        /* Request figures: the success share counts a request without an
         * answer as failed; the mTLS share leaves out the overflow set,
         * whose callers are not known. */
        snprintf(reqs, sizeof reqs, rates ? "%.1f" : "%.0f", r->requests / div);
        if (r->requests > 0) {
            double share = r->success >= r->requests ? 1 : r->success / r->requests;
            snprintf(succ, sizeof succ, "%.2f%%", 100.0 * share);
        }
        double known = r->requests - r->req_overflow;
        if (known > 0)
            snprintf(rmtls, sizeof rmtls, "%.0f%%", 100.0 * (r->req_mtls > known ? known : r->req_mtls) / known);
        fmt_latency(stat_quantile(&r->latency, 0.50), p50, sizeof p50);
        fmt_latency(stat_quantile(&r->latency, 0.95), p95, sizeof p95);
        fmt_latency(stat_quantile(&r->latency, 0.99), p99, sizeof p99);
        if (r->scraped == 0) {
            buf_appendf(out, stat_head, r->name, meshed, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-",
                        "-", "-", "-");
        } else {
            char in[32], outc[32], den[32], ref[32];
            snprintf(in, sizeof in, rates ? "%.1f" : "%.0f", r->opened[0] / div);
            snprintf(outc, sizeof outc, rates ? "%.1f" : "%.0f", r->opened[1] / div);
            snprintf(den, sizeof den, "%.0f", r->denied);
            snprintf(ref, sizeof ref, "%.0f", r->refused);
            buf_appendf(out, stat_head, r->name, meshed, ready, in, outc, mtls, den, ref, bin, bout, cert, succ, reqs,
                        p50, p95, p99, rmtls);
        }
    }
    int errors = 0; /* 1: some proxies were not read, the caller's exit status says so */
    for (size_t k = 0; k < nrows; k++)
        if (rows[k].errors) {
            errors = 1;
            buf_appendf(out, "%s: %u proxies not read; first: %s\n", rows[k].name, rows[k].errors,
                        rows[k].first_error);
        }
    for (size_t k = 0; k < nrows; k++)
        if (rows[k].latency.overflow)
            buf_appendf(out, "%s: latency histograms with more than %d bounds: no quantiles\n", rows[k].name,
                        STAT_MAX_BUCKETS);
    if (win)
        buf_appendf(out, "\nPer second over the last %.0f s as Prometheus has it (DENIED, REFUSED: counts in that "
                         "time; increase() over the window), summed over the pods it has;\n", secs);
    else if (prev)
        buf_appendf(out, "\nPer second over the last %.0f s (DENIED, REFUSED: counts in that time), summed over the "
                         "proxies read;\n", secs);
    else
        buf_appendf(out, "\nTotals since each proxy started, summed over the proxies read;\n");
    buf_appendf(out, "CONNS: connections accepted; MTLS: their share over mTLS; DENIED: inbound refused by policy; "
                     "REFUSED: plaintext refused under STRICT;\nCERT-LEFT: the soonest workload certificate expiry. "
                     "Requests received (inbound HTTP): SUCCESS: not 5xx, no gRPC error, not answered by the "
                     "proxy;\n%s; P50, P95, P99: to the end of the response, from the histogram buckets; REQ-MTLS: "
                     "their share from a caller with a SPIFFE ID.\n",
                rates ? "RPS: requests per second" : "REQS: requests");
    free(rows);
    return errors;
}

/* ---- from a Prometheus ---- */

/* Each query's per-pod sum, written back as the family add_sample reads,
 * with the labels it keeps; counters as increase() over the window. */
static const struct {
    const char *family, *promql, *keep, *fixed;
} stat_queries[STAT_NQUERIES] = {
    {"weft_proxy_connections_opened_total",
     "sum by (namespace, pod, direction, tls, authz) (increase(weft_proxy_connections_opened_total[%us]))",
     "direction,tls,authz", ""},
    {"weft_proxy_connections_open", "sum by (namespace, pod) (weft_proxy_connections_open)", "", ""},
    {"weft_proxy_received_bytes_total", "sum by (namespace, pod) (increase(weft_proxy_received_bytes_total[%us]))", "",
     ""},
    {"weft_proxy_sent_bytes_total", "sum by (namespace, pod) (increase(weft_proxy_sent_bytes_total[%us]))", "", ""},
    {"weft_proxy_inbound_refused_total",
     "sum by (namespace, pod) (increase(weft_proxy_inbound_refused_total[%us]))", "", ""},
    {"weft_proxy_ready", "max by (namespace, pod) (weft_proxy_ready)", "", ""},
    {"weft_proxy_certificate_expiry_timestamp_seconds",
     "min by (namespace, pod) (weft_proxy_certificate_expiry_timestamp_seconds)", "", ""},
    {"weft_proxy_http_requests_total",
     "sum by (namespace, pod, peer) (increase(weft_proxy_http_requests_total{direction=\"inbound\"}[%us]))", "peer",
     "direction=\"inbound\""},
    {"weft_proxy_http_responses_total",
     "sum by (namespace, pod, classification) "
     "(increase(weft_proxy_http_responses_total{direction=\"inbound\"}[%us]))",
     "classification", "direction=\"inbound\""},
    {"weft_proxy_http_request_duration_seconds_bucket",
     "sum by (namespace, pod, le) "
     "(increase(weft_proxy_http_request_duration_seconds_bucket{direction=\"inbound\"}[%us]))",
     "le", "direction=\"inbound\""},
};

void stat_prom_query(int i, unsigned window, char *out, size_t outlen)
{
    if (i < 0 || i >= STAT_NQUERIES) {
        snprintf(out, outlen, "%s", "");
        return;
    }
    /* Every query has at most one %u, the window. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(out, outlen, stat_queries[i].promql, window);
#pragma GCC diagnostic pop
}

static void prom_escape(struct buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            buf_appendf(b, "\\%c", *v);
        else if (*v == '\n')
            buf_append(b, "\\n", 2);
        else
            buf_append(b, v, 1);
    }
}

int stat_prom_text(int i, const json_t *answer, json_t *texts, char *err, size_t errlen)
{
    if (i < 0 || i >= STAT_NQUERIES) {
        errbuf_set(err, errlen, "no query %d", i);
        return -1;
    }
    const char *status = sget(answer, "status", NULL);
    json_t *data = json_object_get(answer, "data");
    if (!status || strcmp(status, "success") != 0) {
        const char *e = sget(answer, "error", NULL);
        errbuf_set(err, errlen, "Prometheus answered %s: %s", status ? status : "no status", e ? e : "(no error)");
        return -1;
    }
    const char *type = sget(data, "resultType", NULL);
    json_t *result = json_object_get(data, "result");
    if (!type || strcmp(type, "vector") != 0 || !json_is_array(result)) {
        errbuf_set(err, errlen, "Prometheus's answer is not an instant vector (resultType %s)", type ? type : "missing");
        return -1;
    }
    struct buf line;
    buf_init(&line, STAT_MAX_LINE);
    int rc = 0;
    size_t k;
    json_t *sample;
    json_array_foreach(result, k, sample) {
        json_t *metric = json_object_get(sample, "metric"), *value = json_object_get(sample, "value");
        const char *ns = sget(metric, "namespace", NULL), *pod = sget(metric, "pod", NULL);
        const char *v = json_string_value(json_array_get(value, 1));
        if (!ns || !pod) {
            errbuf_set(err, errlen, "a sample of %s has no namespace and pod labels: the scrape configuration must "
                       "give the proxies' series those (as Kubernetes pod discovery relabelled does)",
                       stat_queries[i].family);
            rc = -1;
            break;
        }
        char *end = NULL;
        errno = 0;
        if (v && *v && !strchr(" \t\n\v\f\r", *v))
            strtod(v, &end);
        /* What prom_parse reads back: a number, NaN or Inf, nothing else. */
        if (!end || *end || errno == ERANGE) {
            errbuf_set(err, errlen, "a sample of %s for %s/%s has no numeric value", stat_queries[i].family, ns, pod);
            rc = -1;
            break;
        }
        buf_reset(&line);
        buf_appendf(&line, "%s{%s", stat_queries[i].family, stat_queries[i].fixed);
        int first = !*stat_queries[i].fixed;
        /* The kept labels, in the query's order. */
        char keep[64];
        snprintf(keep, sizeof keep, "%s", stat_queries[i].keep);
        for (char *p = keep, *next; p && *p; p = next) {
            next = strchr(p, ',');
            if (next)
                *next++ = '\0';
            const char *lv = sget(metric, p, NULL);
            buf_appendf(&line, "%s%s=\"", first ? "" : ",", p);
            prom_escape(&line, lv ? lv : "");
            buf_append(&line, "\"", 1);
            first = 0;
        }
        /* The value as Prometheus wrote it: a float, NaN or +Inf, which the
         * text parser reads and the sums skip when not finite. */
        if (buf_appendf(&line, "} %s\n", v) < 0) {
            errbuf_set(err, errlen, "a sample of %s for %s/%s is longer than %d bytes", stat_queries[i].family, ns,
                       pod, STAT_MAX_LINE);
            rc = -1;
            break;
        }
        char key[320];
        snprintf(key, sizeof key, "%s/%s", ns, pod);
        const char *had = json_string_value(json_object_get(texts, key));
        char *joined = xasprintf("%s%s", had ? had : "", buf_cstr(&line));
        json_object_set_new(texts, key, json_string(joined));
        free(joined);
    }
    buf_free(&line);
    return rc;
}

int stat_prom_url(const char *url, int *tls, char *host, size_t hostlen, char *port, size_t portlen, char *prefix,
                  size_t prefixlen, char *err, size_t errlen)
{
    *tls = strncmp(url, "https://", 8) == 0;
    if (!*tls && strncmp(url, "http://", 7) != 0) {
        errbuf_set(err, errlen, "--prometheus \"%s\": expected http[s]://host[:port][/prefix]", url);
        return -1;
    }
    const char *hp = url + (*tls ? 8 : 7), *slash = strchr(hp, '/');
    size_t hl = slash ? (size_t)(slash - hp) : strlen(hp);
    char authority[300];
    if (strpbrk(url, "?#") || strchr(hp, '@') || hl == 0 || hl >= sizeof authority) {
        errbuf_set(err, errlen, "--prometheus \"%s\": expected http[s]://host[:port][/prefix] (no user, query or "
                   "fragment)", url);
        return -1;
    }
    memcpy(authority, hp, hl);
    authority[hl] = '\0';
    /* A host alone (or a bracketed v6 address) gets port 80, or 443. */
    int has_port = authority[hl - 1] != ']' && strrchr(authority, ':') &&
                   (authority[0] != '[' || strrchr(authority, ':') > strchr(authority, ']'));
    char with[310];
    snprintf(with, sizeof with, "%s%s", authority, has_port ? "" : *tls ? ":443" : ":80");
    if (hostport_split(with, host, hostlen, port, portlen) < 0 || !*host || !*port || strspn(port, "0") == strlen(port)) {
        errbuf_set(err, errlen, "--prometheus \"%s\": \"%s\" is not host:port with a port 1-65535", url, authority);
        return -1;
    }
    const char *p = slash ? slash : "";
    size_t pl = strlen(p);
    while (pl && p[pl - 1] == '/')
        pl--;
    if (pl >= prefixlen) {
        errbuf_set(err, errlen, "--prometheus \"%s\": the path is longer than %zu bytes", url, prefixlen - 1);
        return -1;
    }
    memcpy(prefix, p, pl);
    prefix[pl] = '\0';
    return 0;
}
