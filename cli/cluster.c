/* SPDX-License-Identifier: Apache-2.0 */
/* Shared cluster flags and connection; see cluster.h. */
#include "cluster.h"

#include <stdio.h>
#include <string.h>

#include "errbuf.h"

#define MAX_METRICS (4 * 1024 * 1024)

int cluster_flag(int c, const char *arg, struct kubeconfig_options *o)
{
    switch (c) {
    case CLUSTER_F_KUBECONFIG: o->kubeconfig = arg; return 1;
    case CLUSTER_F_CONTEXT: o->context = arg; return 1;
    case 'n': o->ns = arg; return 1;
    default: return 0;
    }
}

int cluster_connect(const struct kubeconfig_options *o, struct kube_target *t, struct kubeclient **c, char *err,
                    size_t errlen)
{
    *c = NULL;
    if (kubeconfig_load(o, t, err, errlen) < 0)
        return -1;
    if (kubeconfig_credentials(t, err, errlen) < 0 || !(*c = kubeclient_new(t, err, errlen))) {
        kube_target_free(t);
        return -1;
    }
    return 0;
}

/* The pod's weft-admin container port (the proxy's admin server), else 15020. */
static long admin_port(json_t *pod)
{
    static const char *const lists[] = {"initContainers", "containers"};
    for (size_t l = 0; l < 2; l++) {
        size_t i, k;
        json_t *c, *p;
        json_array_foreach(json_object_get(json_object_get(pod, "spec"), lists[l]), i, c)
            json_array_foreach(json_object_get(c, "ports"), k, p) {
            const char *n = json_string_value(json_object_get(p, "name"));
            if (n && strcmp(n, "weft-admin") == 0)
                return (long)json_integer_value(json_object_get(p, "containerPort"));
        }
    }
    return 15020;
}

json_t *cluster_pod_metrics(struct kubeclient *c, json_t *pod)
{
    json_t *meta = json_object_get(pod, "metadata");
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *name = json_string_value(json_object_get(meta, "name"));
    char path[512], err[1024];
    long status;
    struct buf body;
    json_t *m;
    buf_init(&body, MAX_METRICS);
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s:%ld/proxy/metrics", ns ? ns : "", name ? name : "",
             admin_port(pod));
    int r = kubeclient_raw(c, "GET", path, NULL, &status, &body, err, sizeof err);
    if (r == 0 && status == 200) {
        m = json_string(buf_cstr(&body));
    } else {
        if (r == 0) {
            /* the API server's answer for a proxy it could not reach: a Status or its text */
            json_t *st = body.len ? json_loadb(body.data, body.len, 0, NULL) : NULL;
            const char *msg = json_string_value(json_object_get(st, "message"));
            errbuf_set(err, sizeof err, "HTTP %ld: %.300s", status, msg ? msg : body.len ? buf_cstr(&body) : "");
            json_decref(st);
        }
        m = json_pack("{s:s}", "fetchError", err);
    }
    buf_free(&body);
    return m ? m : json_pack("{s:s}", "fetchError", "not text");
}
