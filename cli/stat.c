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

static void add_sample(void *arg, const char *name, const struct prom_label *l, size_t n, double v)
{
    struct stat_row *r = arg;
    if (!isfinite(v))
        return;
    int dir = strcmp(label(l, n, "direction"), "outbound") == 0;
    int tls = strcmp(label(l, n, "tls"), "true") == 0;
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

int stat_render(const json_t *snap, const json_t *prev, struct buf *out, char *err, size_t errlen)
{
    size_t nrows = 0;
    double now, secs = 0;
    if (!snapshot_ok(snap, err, errlen) || (prev && !snapshot_ok(prev, err, errlen)))
        return -1;
    now = (double)json_integer_value(json_object_get(snap, "now"));
    if (prev) {
        secs = now - (double)json_integer_value(json_object_get(prev, "now"));
        if (secs <= 0) {
            errbuf_set(err, errlen, "the earlier snapshot is not earlier");
            return -1;
        }
    }
    struct stat_row *rows = rows_of(snap, prev ? json_object_get(prev, "pods") : NULL, &nrows);
    if (prev)
        buf_appendf(out, "%-40s %7s %7s %9s %9s %6s %6s %7s %9s %9s %10s\n", "NAME", "MESHED", "READY", "CONNS-IN/s",
                    "CONNS-OUT/s", "MTLS", "DENIED", "REFUSED", "BYTES-IN/s", "BYTES-OUT/s", "CERT-LEFT");
    else
        buf_appendf(out, "%-40s %7s %7s %9s %9s %6s %6s %7s %9s %9s %10s\n", "NAME", "MESHED", "READY", "CONNS-IN",
                    "CONNS-OUT", "MTLS", "DENIED", "REFUSED", "BYTES-IN", "BYTES-OUT", "CERT-LEFT");
    double div = prev ? secs : 1;
    for (size_t k = 0; k < nrows; k++) {
        struct stat_row *r = &rows[k];
        char meshed[32], ready[32], mtls[16] = "-", bin[32], bout[32], cert[32] = "-";
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
        if (r->scraped == 0) {
            buf_appendf(out, "%-40s %7s %7s %9s %9s %6s %6s %7s %9s %9s %10s\n", r->name, meshed, "-", "-", "-", "-",
                        "-", "-", "-", "-", "-");
        } else {
            buf_appendf(out, prev ? "%-40s %7s %7s %9.1f %9.1f %6s %6.0f %7.0f %9s %9s %10s\n"
                                  : "%-40s %7s %7s %9.0f %9.0f %6s %6.0f %7.0f %9s %9s %10s\n",
                        r->name, meshed, ready, r->opened[0] / div, r->opened[1] / div, mtls, r->denied, r->refused,
                        bin, bout, cert);
        }
    }
    int errors = 0; /* 1: some proxies were not read, the caller's exit status says so */
    for (size_t k = 0; k < nrows; k++)
        if (rows[k].errors) {
            errors = 1;
            buf_appendf(out, "%s: %u proxies not read; first: %s\n", rows[k].name, rows[k].errors,
                        rows[k].first_error);
        }
    if (prev)
        buf_appendf(out, "\nPer second over the last %.0f s (DENIED, REFUSED: counts in that time), summed over the "
                         "proxies read (CONNS: connections accepted; MTLS: their share over mTLS;\nDENIED: inbound "
                         "refused by policy; REFUSED: plaintext refused under STRICT; CERT-LEFT: the soonest workload "
                         "certificate expiry).\nRequest rate, success rate and latency: weft-proxy does not export "
                         "per-request metrics yet.\n", secs);
    else
        buf_appendf(out, "\nTotals since each proxy started, summed over the proxies read (CONNS: connections "
                     "accepted; MTLS: their share over mTLS;\nDENIED: inbound refused by policy; REFUSED: "
                     "plaintext refused under STRICT; CERT-LEFT: the soonest workload certificate expiry).\n"
                     "Request rate, success rate and latency: weft-proxy does not export per-request metrics yet.\n");
    free(rows);
    return errors;
}
