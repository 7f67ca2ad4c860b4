/* SPDX-License-Identifier: Apache-2.0 */
/* The identity client; see identity_client.h. One thread: request, install,
 * sleep until renewal (or the next retry), again. The thread's only shared
 * state is the credential store (thread-safe) and the counters below. */
#include "errbuf.h"
#include "identity_client.h"
#include "hostport.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "clock.h"
#include "k8s.h"
#include "log.h"
#include "metrics.h"
#include "spiffe.h"
#include "xalloc.h"

/* ---------- pure parts ---------- */

long idc_renew_delay_ms(time_t now, time_t issued_at, time_t not_after, double r)
{
    if (r < 0 || r >= 1)
        r = 0;
    double lifetime = (double)(not_after - issued_at);
    if (lifetime < 0)
        lifetime = 0;
    double at = (double)issued_at + lifetime * (0.5 + 0.2 * r);
    double ms = (at - (double)now) * 1000.0;
    if (ms < IDC_MIN_DELAY_MS)
        return IDC_MIN_DELAY_MS;
    if (ms > 365.0 * 86400 * 1000)
        ms = 365.0 * 86400 * 1000;
    return (long)ms;
}

long idc_backoff_ms(unsigned failures, double r, time_t now, time_t not_after)
{
    if (r < 0 || r >= 1)
        r = 0;
    double ms = IDC_BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < failures && ms < IDC_BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > IDC_BACKOFF_MAX_MS)
        ms = IDC_BACKOFF_MAX_MS;
    ms *= 0.8 + 0.4 * r;
    if (not_after > 0) {
        double half = (double)(not_after - now) * 500.0;
        if (ms > half)
            ms = half;
    }
    return ms < IDC_MIN_DELAY_MS ? IDC_MIN_DELAY_MS : (long)ms;
}

int idc_make_csr(EVP_PKEY *key, const char *spiffe_uri, char **pem, char *err, size_t errlen)
{
    int rc = -EINVAL;
    X509_REQ *req = X509_REQ_new();
    GENERAL_NAMES *sans = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *ext = NULL;
    BIO *bio = NULL;
    *pem = NULL;
    if (!req || !sans || !gn || !ia5 || !exts || ASN1_STRING_set(ia5, spiffe_uri, (int)strlen(spiffe_uri)) != 1) {
        errbuf_set(err, errlen, "cannot build the CSR");
        goto out;
    }
    GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
    ia5 = NULL;
    sk_GENERAL_NAME_push(sans, gn);
    gn = NULL;
    ext = X509V3_EXT_i2d(NID_subject_alt_name, 1, sans);
    if (!ext || !sk_X509_EXTENSION_push(exts, ext)) {
        errbuf_set(err, errlen, "cannot build the CSR's SAN");
        goto out;
    }
    ext = NULL; /* owned by exts */
    if (X509_REQ_set_version(req, 0) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
        X509_REQ_add_extensions(req, exts) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
        errbuf_set(err, errlen, "cannot sign the CSR");
        goto out;
    }
    bio = BIO_new(BIO_s_mem());
    char *data;
    if (!bio || PEM_write_bio_X509_REQ(bio, req) != 1) {
        errbuf_set(err, errlen, "cannot encode the CSR");
        goto out;
    }
    long n = BIO_get_mem_data(bio, &data);
    *pem = xstrndup(data, (size_t)n);
    rc = 0;
out:
    ERR_clear_error();
    BIO_free(bio);
    X509_EXTENSION_free(ext);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(sans);
    X509_REQ_free(req);
    return rc;
}

static int parse_rfc3339(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
    if (!end || *end)
        return -EINVAL;
    *out = timegm(&tm);
    return 0;
}

int idc_parse_answer(const json_t *answer, const char *expect_uri, char **pem, size_t *len, time_t *not_after,
                     char *err, size_t errlen)
{
    const char *cert = json_string_value(json_object_get(answer, "certificate"));
    const char *id = json_string_value(json_object_get(answer, "spiffeId"));
    const json_t *chain = json_object_get(answer, "chain");
    *pem = NULL;
    if (!cert || !json_is_array(chain) || !strstr(cert, "-----BEGIN CERTIFICATE-----")) {
        errbuf_set(err, errlen, "answer has no certificate or chain");
        return -EINVAL;
    }
    if (!id || strcmp(id, expect_uri) != 0) {
        errbuf_set(err, errlen, "answer is for %.200s, not %.200s", id ? id : "no identity", expect_uri);
        return -EINVAL;
    }
    if (parse_rfc3339(json_string_value(json_object_get(answer, "notAfter")), not_after) < 0) {
        errbuf_set(err, errlen, "answer has no valid notAfter");
        return -EINVAL;
    }
    struct buf b;
    buf_init(&b, IDC_MAX_ANSWER);
    int rc = buf_append(&b, cert, strlen(cert));
    if (rc == 0 && cert[strlen(cert) - 1] != '\n')
        rc = buf_append(&b, "\n", 1);
    size_t i;
    const json_t *item;
    json_array_foreach(chain, i, item)
    {
        const char *c = json_string_value(item);
        if (!c) {
            rc = -EINVAL;
            break;
        }
        if (rc == 0)
            rc = buf_append(&b, c, strlen(c));
        if (rc == 0 && *c && c[strlen(c) - 1] != '\n')
            rc = buf_append(&b, "\n", 1);
    }
    if (rc < 0) {
        buf_free(&b);
        errbuf_set(err, errlen, "answer's chain is not a list of PEM strings or too large");
        return -EINVAL;
    }
    *pem = buf_steal(&b, len);
    return 0;
}

int idc_split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
    if (hostport_split(addr, host, hostlen, port, portlen) < 0 || !*host || strspn(port, "0") == strlen(port))
        return -EINVAL;
    return 0;
}

/* ---------- the thread ---------- */

struct idc {
    struct creds *creds;
    char host[256], port[8];
    char *server_name, *token_file, *trust_bundle;
    char uri[SPIFFE_MAX_ID];
    struct k8s_client *kube;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};

static struct idc *g_idc;
static struct metrics_counter renewals[2] = {
    {.labels = "result=\"success\""},
    {.labels = "result=\"failure\""},
};

int identity_client_render_metrics(struct buf *out)
{
    return metrics_counters(out, "weft_proxy_identity_renewals_total",
                            "Certificate requests to weft-identity, by result.", renewals, 2);
}

static double rand01(void)
{
    unsigned int v;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
        return 0.5;
    return (double)v / 4294967296.0;
}

/* One request: 0 with the new certificate installed, or -errno with err. */
static int renew_once(struct idc *st, time_t *not_after, char *err, size_t errlen)
{
    int rc;
    EVP_PKEY *key = NULL;
    char *csr = NULL, *pem = NULL;
    json_t *body = NULL, *answer = NULL;
    size_t len = 0;
    if (!st->kube) {
        st->kube = k8s_client_new(st->host, st->port, st->trust_bundle, st->token_file, err, errlen);
        if (!st->kube)
            return -ENOENT;
        k8s_client_set_max_response(st->kube, IDC_MAX_ANSWER);
        if ((rc = k8s_client_set_server_name(st->kube, st->server_name)) < 0) {
            errbuf_set(err, errlen, "WEFT_IDENTITY_SERVER_NAME=\"%s\" is not a host name", st->server_name);
            k8s_client_free(st->kube);
            st->kube = NULL;
            return rc;
        }
    }
    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!key) {
        errbuf_set(err, errlen, "cannot make a P-256 key");
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = idc_make_csr(key, st->uri, &csr, err, errlen)) < 0)
        goto out;
    body = json_pack("{s:s}", "csr", csr); /* copies csr */
    long status = 0;
    rc = k8s_request(st->kube, "POST", IDC_PATH, body, &status, &answer, err, errlen);
    if (rc < 0)
        goto out;
    if (status != 200) {
        const json_t *e = json_object_get(answer, "error");
        const char *reason = json_string_value(json_object_get(e, "reason"));
        const char *message = json_string_value(json_object_get(e, "message"));
        errbuf_set(err, errlen, "weft-identity answered %ld %s: %s", status, reason ? reason : "",
               message ? message : "(no message)");
        rc = status == 503 ? -EAGAIN : -EACCES;
        goto out;
    }
    if ((rc = idc_parse_answer(answer, st->uri, &pem, &len, not_after, err, errlen)) < 0)
        goto out;
    /* The store takes its own reference on key; ours goes below. */
    rc = creds_set_identity_pem(st->creds, pem, len, key, err, errlen);
out:
    if (pem) {
        explicit_bzero(pem, len);
        free(pem);
    }
    free(csr);
    json_decref(body);
    json_decref(answer);
    EVP_PKEY_free(key); /* the only copy outside the store: freed, never written anywhere */
    return rc;
}

/* Sleeps ms or until stopped; 1 when stopped. */
static int idc_sleep(struct idc *st, long ms)
{
    struct timespec ts = clock_mono_deadline(ms);
    pthread_mutex_lock(&st->mu);
    while (!st->stop && pthread_cond_timedwait(&st->cv, &st->mu, &ts) == 0) {
    }
    int stop = st->stop;
    pthread_mutex_unlock(&st->mu);
    return stop;
}

static void *idc_run(void *arg)
{
    struct idc *st = arg;
    unsigned failures = 0;
    time_t issued_at = 0, not_after = 0;
    char err[512];
    for (;;) {
        time_t got_not_after = 0;
        err[0] = '\0';
        int rc = renew_once(st, &got_not_after, err, sizeof err);
        time_t now = time(NULL);
        long delay;
        if (rc == 0) {
            metrics_inc(&renewals[0]);
            failures = 0;
            issued_at = now;
            not_after = got_not_after;
            delay = idc_renew_delay_ms(now, issued_at, not_after, rand01());
            log_info("certificate installed", "spiffe_id=%s not_after=%lld renew_in_ms=%ld", st->uri,
                     (long long)not_after, delay);
        } else {
            metrics_inc(&renewals[1]);
            failures++;
            if (not_after && not_after <= now)
                not_after = 0; /* expired: we hold nothing valid any more */
            delay = idc_backoff_ms(failures, rand01(), now, not_after);
            /* Renewal starts at half the lifetime; with a third left it is late. */
            int late = not_after ? (not_after - now) * 3 < not_after - issued_at : failures >= 5;
            log_event(late ? LOG_ERROR : LOG_WARN,
                      not_after ? "certificate renewal failed" : "no certificate yet from weft-identity",
                      "spiffe_id=%s error=\"%s\" failures=%u retry_in_ms=%ld expires_in_s=%lld", st->uri, err,
                      failures, delay, not_after ? (long long)(not_after - now) : -1LL);
        }
        if (idc_sleep(st, delay))
            break;
    }
    return NULL;
}

int identity_client_start(struct ae_loop *loop, struct creds *creds, const struct proxy_config *cfg)
{
    (void)loop; /* the client runs on its own thread, never on a worker's loop */
    if (g_idc)
        return -EALREADY;
    struct idc *st = xcalloc(1, sizeof *st);
    int rc = -EINVAL;
    if (idc_split_addr(cfg->identity_addr, st->host, sizeof st->host, st->port, sizeof st->port) < 0) {
        log_error("WEFT_IDENTITY_ADDR is not host:port", "value=\"%s\"", cfg->identity_addr);
        goto fail;
    }
    if (spiffe_format(cfg->trust_domain, cfg->pod_namespace, cfg->service_account, st->uri, sizeof st->uri) < 0) {
        log_error("no SPIFFE identity for this pod", "trust_domain=%s namespace=%s service_account=%s",
                  cfg->trust_domain, cfg->pod_namespace, cfg->service_account);
        goto fail;
    }
    st->creds = creds;
    st->server_name = xstrdup(*cfg->identity_server_name ? cfg->identity_server_name : st->host);
    for (const char *p = st->server_name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(".-:", *p))) {
            log_error("WEFT_IDENTITY_SERVER_NAME is not a host name", "value=\"%s\"", st->server_name);
            goto fail;
        }
    }
    st->token_file = xstrdup(cfg->token_file);
    st->trust_bundle = xstrdup(cfg->trust_bundle);
    pthread_mutex_init(&st->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    rc = -pthread_create(&st->thread, &attr, idc_run, st);
    pthread_attr_destroy(&attr);
    if (rc < 0) {
        pthread_cond_destroy(&st->cv);
        pthread_mutex_destroy(&st->mu);
        goto fail;
    }
    g_idc = st;
    log_info("identity client started", "addr=%s server_name=%s spiffe_id=%s", cfg->identity_addr,
             st->server_name, st->uri);
    return 0;
fail:
    free(st->server_name);
    free(st->token_file);
    free(st->trust_bundle);
    free(st);
    return rc;
}

void identity_client_stop(void)
{
    struct idc *st = g_idc;
    if (!st)
        return;
    pthread_mutex_lock(&st->mu);
    st->stop = 1;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    pthread_join(st->thread, NULL);
    k8s_client_free(st->kube);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st->server_name);
    free(st->token_file);
    free(st->trust_bundle);
    free(st);
    g_idc = NULL;
}
