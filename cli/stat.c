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

int stat_render(const json_t *snap, struct buf *out, char *err, size_t errlen)
{
    const char *kind = sget(snap, "kind", NULL);
    json_t *pods = json_object_get(snap, "pods");
    json_t *nowv = json_object_get(snap, "now");
    if (!kind || (strcmp(kind, "pod") != 0 && strcmp(kind, "deploy") != 0 && strcmp(kind, "ns") != 0) ||
        !json_is_array(pods) || !json_is_integer(nowv)) {
        errbuf_set(err, errlen, "the snapshot lacks kind (pod, deploy, ns), pods or now (Unix seconds)");
        return -1;
    }
    double now = (double)json_integer_value(nowv);
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
        if (!text || stat_add_metrics(r, text, strlen(text), perr, sizeof perr) < 0) {
            if (!r->errors++)
                snprintf(r->first_error, sizeof r->first_error, "%s: %s", sget(p, "metadata", "name"),
                         fe ? fe : perr[0] ? perr : "no metrics");
        }
    }
    buf_appendf(out, "%-40s %7s %7s %9s %9s %6s %6s %7s %9s %9s %10s\n", "NAME", "MESHED", "READY", "CONNS-IN",
                "CONNS-OUT", "MTLS", "DENIED", "REFUSED", "BYTES-IN", "BYTES-OUT", "CERT-LEFT");
    for (size_t k = 0; k < nrows; k++) {
        struct stat_row *r = &rows[k];
        char meshed[32], ready[32], mtls[16] = "-", bin[32], bout[32], cert[32] = "-";
        snprintf(meshed, sizeof meshed, "%u/%u", r->meshed, r->pods);
        snprintf(ready, sizeof ready, "%u/%u", r->ready, r->meshed);
        double total = r->opened[0] + r->opened[1];
        if (total > 0)
            snprintf(mtls, sizeof mtls, "%.0f%%", 100.0 * (r->mtls[0] + r->mtls[1]) / total);
        human_bytes(r->bytes_in, bin, sizeof bin);
        human_bytes(r->bytes_out, bout, sizeof bout);
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
            buf_appendf(out, "%-40s %7s %7s %9.0f %9.0f %6s %6.0f %7.0f %9s %9s %10s\n", r->name, meshed, ready,
                        r->opened[0], r->opened[1], mtls, r->denied, r->refused, bin, bout, cert);
        }
    }
    int errors = 0; /* 1: some proxies were not read, the caller's exit status says so */
    for (size_t k = 0; k < nrows; k++)
        if (rows[k].errors) {
            errors = 1;
            buf_appendf(out, "%s: %u proxies not read; first: %s\n", rows[k].name, rows[k].errors,
                        rows[k].first_error);
        }
    buf_appendf(out, "\nTotals since each proxy started, summed over the proxies read (CONNS: connections "
                     "accepted; MTLS: their share over mTLS;\nDENIED: inbound refused by policy; REFUSED: "
                     "plaintext refused under STRICT; CERT-LEFT: the soonest workload certificate expiry).\n"
                     "Request rate, success rate and latency: weft-proxy does not export per-request metrics yet.\n");
    free(rows);
    return errors;
}
