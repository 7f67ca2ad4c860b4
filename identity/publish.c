/* SPDX-License-Identifier: Apache-2.0 */
#include "clock.h"
#include "publish.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "errbuf.h"
#include "log.h"
#include "metrics.h"

/* ---- pure parts ---- */

json_t *publish_configmap(const json_t *existing, const char *ns, const char *pem)
{
    json_t *cm = existing ? json_deep_copy(existing)
                          : json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
                                      "name", PUBLISH_CONFIGMAP, "namespace", ns);
    json_t *meta = json_object_get(cm, "metadata");
    json_t *labels = json_object_get(meta, "labels");
    if (!json_is_object(labels)) {
        labels = json_object();
        json_object_set_new(meta, "labels", labels);
    }
    json_object_set_new(labels, "app.kubernetes.io/managed-by", json_string(PUBLISH_MANAGED_BY));
    json_t *data = json_object_get(cm, "data");
    if (!json_is_object(data)) {
        data = json_object();
        json_object_set_new(cm, "data", data);
    }
    json_object_set_new(data, PUBLISH_KEY, json_string(pem));
    return cm;
}

int publish_is_current(const json_t *configmap, const char *pem)
{
    const char *have = json_string_value(json_object_get(json_object_get(configmap, "data"), PUBLISH_KEY));
    return have && strcmp(have, pem) == 0;
}

int publish_query_escape(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    *p == '-' || *p == '_' || *p == '.' || *p == '~';
        char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        if ((plain ? buf_append(out, p, 1) : buf_append(out, esc, 3)) < 0)
            return -E2BIG;
    }
    return 0;
}

int publish_check_bundle(const char *pem, size_t len, char *err, size_t errlen)
{
    if (len > PUBLISH_MAX_BUNDLE) {
        errbuf_set(err, errlen, "%zu bytes, over the %d a ConfigMap copy may hold", len, PUBLISH_MAX_BUNDLE);
        return -EINVAL;
    }
    if (strlen(pem) != len) {
        errbuf_set(err, errlen, "contains a NUL byte");
        return -EINVAL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        errbuf_set(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* Every block is read, whatever its type: a private key pasted into the
     * bundle must stop here, not be copied into every namespace. */
    int blocks = 0, rc = 0;
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long derlen = 0;
    while (rc == 0 && PEM_read_bio(bio, &name, &header, &der, &derlen)) {
        blocks++;
        const unsigned char *p = der;
        X509 *x = strcmp(name, "CERTIFICATE") == 0 ? d2i_X509(NULL, &p, derlen) : NULL;
        if (strcmp(name, "CERTIFICATE") != 0) {
            errbuf_set(err, errlen, "PEM block %d is a %.40s, not a CERTIFICATE", blocks, name);
            rc = -EINVAL;
        } else if (!x || p != der + derlen) {
            errbuf_set(err, errlen, "certificate %d does not parse", blocks);
            rc = -EINVAL;
        }
        X509_free(x);
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
    }
    if (rc == 0 && ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
        errbuf_set(err, errlen, "PEM block %d is malformed", blocks + 1);
        rc = -EINVAL;
    } else if (rc == 0 && blocks == 0) {
        errbuf_set(err, errlen, "no PEM certificate in it");
        rc = -EINVAL;
    }
    ERR_clear_error();
    BIO_free(bio);
    return rc;
}

/* ---- the thread ---- */

enum { RESULT_CREATED, RESULT_UPDATED, RESULT_UNCHANGED, RESULT_FAILED, RESULT_COUNT };

static struct metrics_counter results[RESULT_COUNT] = {
    {.labels = "result=\"created\""},
    {.labels = "result=\"updated\""},
    {.labels = "result=\"unchanged\""},
    {.labels = "result=\"failed\""},
};

static struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int running, stop;
    struct k8s_client *kube;
    const char *bundle_file;
    char *list_path;
    long interval;
    char *pem;        /* the bundle last read */
    json_t *verified; /* namespace uid -> when its copy was last seen to carry pem */
    char last_error[512];
    int round_failed;
} pub = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Logs a failure only when it differs from the previous one: a broken API
 * server would otherwise log the same line every interval. */
static void publish_failed(const char *what, const char *ns, const char *err)
{
    char line[sizeof pub.last_error];
    snprintf(line, sizeof line, "%s %s %s", what, ns, err);
    metrics_inc(&results[RESULT_FAILED]);
    pub.round_failed = 1;
    if (strcmp(line, pub.last_error) == 0)
        return;
    snprintf(pub.last_error, sizeof pub.last_error, "%s", line);
    log_warn("trust bundle not published", "step=\"%s\" namespace=%s error=\"%s\"", what, ns, err);
}

static int dns_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

/* Makes ns's copy current: 0 when it is (or now is), -1 when not. */
static int publish_namespace(const char *ns)
{
    char path[160], err[512];
    long status = 0;
    json_t *have = NULL, *answer = NULL, *want;
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps/" PUBLISH_CONFIGMAP, ns);
    int rc = k8s_request(pub.kube, "GET", path, NULL, &status, &have, err, sizeof err);
    if (rc < 0 || (status != 200 && status != 404)) {
        publish_failed("read", ns, err);
        json_decref(have);
        return -1;
    }
    if (status == 200 && publish_is_current(have, pub.pem)) {
        metrics_inc(&results[RESULT_UNCHANGED]);
        json_decref(have);
        return 0;
    }
    int create = status == 404;
    want = publish_configmap(create ? NULL : have, ns, pub.pem);
    if (create)
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps", ns);
    rc = k8s_request(pub.kube, create ? "POST" : "PUT", path, want, &status, &answer, err, sizeof err);
    json_decref(want);
    json_decref(have);
    json_decref(answer);
    if (rc < 0 || status != (create ? 201 : 200)) {
        /* 409 (created or changed meanwhile) included: the next round reads it again. */
        publish_failed(create ? "create" : "update", ns, err);
        return -1;
    }
    metrics_inc(&results[create ? RESULT_CREATED : RESULT_UPDATED]);
    log_info(create ? "trust bundle published" : "trust bundle updated", "namespace=%s", ns);
    return 0;
}

/* Reads the bundle file; a new bundle forgets which copies were current. */
static int publish_read_bundle(void)
{
    struct buf b;
    char err[256];
    buf_init(&b, PUBLISH_MAX_BUNDLE + 1);
    int rc = buf_read_file(&b, pub.bundle_file);
    if (rc < 0) {
        publish_failed("read bundle", pub.bundle_file, rc == -E2BIG ? "too large" : strerror(-rc));
    } else if ((rc = publish_check_bundle(buf_cstr(&b), b.len, err, sizeof err)) < 0) {
        publish_failed("check bundle", pub.bundle_file, err);
    } else if (!pub.pem || strcmp(pub.pem, buf_cstr(&b)) != 0) {
        free(pub.pem);
        pub.pem = buf_steal(&b, NULL);
        json_object_clear(pub.verified);
    }
    buf_free(&b);
    return rc;
}

static void publish_round(void)
{
    char err[512];
    long status = 0;
    json_t *list = NULL;
    pub.round_failed = 0;
    /* A broken bundle file leaves the last good one in force, for new
     * namespaces too. */
    if (publish_read_bundle() < 0 && !pub.pem)
        return;
    int rc = k8s_request(pub.kube, "GET", pub.list_path, NULL, &status, &list, err, sizeof err);
    if (rc < 0 || status != 200) {
        publish_failed("list namespaces", "-", err);
        json_decref(list);
        return;
    }
    json_t *verified = json_object(), *item;
    size_t i;
    time_t now = time(NULL);
    json_array_foreach(json_object_get(list, "items"), i, item) {
        json_t *meta = json_object_get(item, "metadata");
        const char *ns = json_string_value(json_object_get(meta, "name"));
        const char *uid = json_string_value(json_object_get(meta, "uid"));
        const char *phase = json_string_value(json_object_get(json_object_get(item, "status"), "phase"));
        if (!ns || !uid || !dns_label(ns) || (phase && strcmp(phase, "Terminating") == 0))
            continue;
        json_t *seen = json_object_get(pub.verified, uid);
        if (seen && now - (time_t)json_integer_value(seen) < PUBLISH_RESYNC_SECONDS)
            json_object_set(verified, uid, seen);
        else if (publish_namespace(ns) == 0)
            json_object_set_new(verified, uid, json_integer(now));
    }
    json_decref(pub.verified);
    pub.verified = verified;
    json_decref(list);
    if (!pub.round_failed)
        pub.last_error[0] = '\0'; /* the next failure is news again */
}

static void *publish_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pub.mu);
    while (!pub.stop) {
        pthread_mutex_unlock(&pub.mu);
        publish_round();
        pthread_mutex_lock(&pub.mu);
        struct timespec until = clock_mono_deadline((long)pub.interval * 1000L);
        while (!pub.stop && pthread_cond_timedwait(&pub.wake, &pub.mu, &until) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&pub.mu);
    return NULL;
}

int publish_start(struct k8s_client *kube, const char *bundle_file, const char *label_selector, long interval)
{
    struct buf path;
    buf_init(&path, 4096);
    if (buf_appendf(&path, "/api/v1/namespaces?labelSelector=") < 0 || publish_query_escape(&path, label_selector) < 0) {
        buf_free(&path);
        return -E2BIG;
    }
    pub.list_path = buf_steal(&path, NULL);
    pub.kube = kube;
    pub.bundle_file = bundle_file;
    pub.interval = interval;
    pub.stop = 0;
    pub.verified = json_object();
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pub.wake, &attr);
    pthread_condattr_destroy(&attr);
    int rc = pthread_create(&pub.thread, NULL, publish_main, NULL);
    if (rc != 0) {
        publish_stop();
        return -rc;
    }
    pub.running = 1;
    log_info("publishing the trust bundle", "configmap=" PUBLISH_CONFIGMAP " selector=\"%s\" interval=%ld",
             label_selector, interval);
    return 0;
}

void publish_stop(void)
{
    if (pub.running) {
        pthread_mutex_lock(&pub.mu);
        pub.stop = 1;
        pthread_cond_signal(&pub.wake);
        pthread_mutex_unlock(&pub.mu);
        pthread_join(pub.thread, NULL);
        pub.running = 0;
    }
    if (pub.list_path) {
        pthread_cond_destroy(&pub.wake);
        free(pub.list_path);
        pub.list_path = NULL;
    }
    json_decref(pub.verified);
    pub.verified = NULL;
    free(pub.pem);
    pub.pem = NULL;
}

void publish_render_metrics(struct buf *out)
{
    metrics_counters(out, "weft_identity_trust_bundle_publish_total",
                     "Checks of ConfigMap " PUBLISH_CONFIGMAP " in opted-in namespaces, by result.", results,
                     RESULT_COUNT);
}
