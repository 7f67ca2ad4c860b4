/* SPDX-License-Identifier: Apache-2.0 */
/* Workloads -> their pod templates -> the webhook's injector; see workload.h.
 * Uninjection removes exactly the names weft.dev/status lists. The probes the
 * injector rewrote are not put back: WEFT_APP_PROBES holds them with named
 * ports resolved and defaults filled in (scheme, path, timeoutSeconds), so
 * the original cannot be told apart from its resolved form, and a pod with
 * such a probe is refused rather than given a probe it never had, unless the
 * caller asks for the resolved form (workload_ctx.resolved_probes). */
#include "workload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"


enum mode { MODE_INJECT, MODE_UNINJECT };

static const char *string_at(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* "Deployment shop/web" for messages. */
static void describe(json_t *obj, char *out, size_t outlen)
{
    json_t *meta = json_object_get(obj, "metadata");
    const char *kind = string_at(obj, "kind");
    const char *ns = string_at(meta, "namespace");
    const char *name = string_at(meta, "name");
    if (!name)
        name = string_at(meta, "generateName");
    snprintf(out, outlen, "%s %s/%s", kind ? kind : "(no kind)", ns ? ns : WORKLOAD_DEFAULT_NAMESPACE,
             name ? name : "(no name)");
}

/* Where the pod template of a kind lives, from the object: the parent object
 * and key holding it. 1 when the kind has one, 0 for other kinds. */
static int template_slot(json_t *obj, json_t **parent, const char **key)
{
    static const char *const templated[] = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job",
                                            "ReplicationController", NULL};
    const char *kind = string_at(obj, "kind");
    if (!kind)
        return 0;
    for (const char *const *k = templated; *k; k++)
        if (strcmp(kind, *k) == 0) {
            *parent = json_object_get(obj, "spec");
            *key = "template";
            return 1;
        }
    if (strcmp(kind, "CronJob") == 0) {
        *parent = json_object_get(json_object_get(json_object_get(obj, "spec"), "jobTemplate"), "spec");
        *key = "template";
        return 1;
    }
    return 0;
}

static int is_list(json_t *obj)
{
    const char *kind = string_at(obj, "kind");
    size_t n = kind ? strlen(kind) : 0;
    return n >= 4 && strcmp(kind + n - 4, "List") == 0 && json_is_array(json_object_get(obj, "items"));
}

static int name_listed(json_t *names, const char *name)
{
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n)
        if (name && json_string_value(n) && strcmp(json_string_value(n), name) == 0)
            return 1;
    return 0;
}

/* Removes spec[list]'s items named in names; drops the list when it ends empty. */
static void remove_listed(json_t *spec, const char *list, json_t *names)
{
    json_t *arr = json_object_get(spec, list);
    if (!json_is_array(arr))
        return;
    for (size_t i = json_array_size(arr); i-- > 0;)
        if (name_listed(names, string_at(json_array_get(arr, i), "name")))
            json_array_remove(arr, i);
    if (json_array_size(arr) == 0)
        json_object_del(spec, list);
}

/* Puts back, or refuses, each probe of container the injector rewrote
 * (httpGet to /app-health/<container>/<kind>): 0 or -EINVAL with err. With
 * recorded NULL nothing is put back and any such probe is refused. */
static int restore_probes(json_t *container, json_t *recorded, char *err, size_t errlen)
{
    static const char *const fields[] = {"livenessProbe", "readinessProbe", "startupProbe"};
    const char *cname = string_at(container, "name");
    char prefix[512];
    snprintf(prefix, sizeof prefix, "/app-health/%s/", cname ? cname : "");
    for (size_t k = 0; k < sizeof fields / sizeof *fields; k++) {
        json_t *probe = json_object_get(container, fields[k]);
        const char *path = string_at(json_object_get(probe, "httpGet"), "path");
        if (!path || strncmp(path, prefix, strlen(prefix)) != 0)
            continue;
        if (!recorded) {
            errbuf_set(err, errlen,
                     "container %s %s was rewritten to weft-proxy's /app-health, and the original cannot be "
                     "restored exactly (WEFT_APP_PROBES keeps it with named ports resolved and scheme and path "
                     "filled in); uninject refuses rather than guess: --resolved-probes puts that resolved form "
                     "back",
                     cname, fields[k]);
            return -EINVAL;
        }
        json_t *orig = json_object_get(recorded, path + strlen("/app-health/"));
        const char *key;
        json_t *v;
        if (!json_is_object(orig)) {
            errbuf_set(err, errlen, "container %s %s was rewritten, but WEFT_APP_PROBES has no %s", cname, fields[k],
                     path + strlen("/app-health/"));
            return -EINVAL;
        }
        /* An httpGet original takes its place back; another action goes
         * where the injector put httpGet, at the end. */
        if (!json_object_get(orig, "httpGet"))
            json_object_del(probe, "httpGet");
        /* timeoutSeconds was never changed: the probe still has the user's, or none. */
        json_object_foreach(orig, key, v)
            if (strcmp(key, "timeoutSeconds") != 0)
                json_object_set(probe, key, v); /* borrows v */
    }
    return 0;
}

/* Uninjects pod (a copy the caller owns) in place: 0, 1 when it was not
 * injected, or -EINVAL with err. */
static int uninject_pod(json_t *pod, int resolved_probes, char *err, size_t errlen)
{
    json_t *meta = json_object_get(pod, "metadata");
    json_t *ann = json_object_get(meta, "annotations");
    json_t *spec = json_object_get(pod, "spec");
    const char *text = string_at(ann, INJECT_STATUS_ANNOTATION);
    json_t *recorded = NULL;
    int rc = -EINVAL;
    if (!text)
        return 1;
    json_t *st = json_loads(text, 0, NULL);
    json_t *inits = json_object_get(st, "initContainers"), *ctrs = json_object_get(st, "containers");
    json_t *vols = json_object_get(st, "volumes");
    if (!json_is_object(st) || !json_is_array(inits) || !json_is_array(ctrs) || !json_is_array(vols) ||
        !json_is_object(spec)) {
        errbuf_set(err, errlen, "its %s annotation is not one weft injection writes", INJECT_STATUS_ANNOTATION);
        goto out;
    }
    if (resolved_probes && !(recorded = inject_recorded_probes(spec)))
        recorded = json_object();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(spec, "containers"), i, c)
        if (!name_listed(ctrs, string_at(c, "name")) && restore_probes(c, recorded, err, errlen) < 0)
            goto out;
    remove_listed(spec, "initContainers", inits);
    remove_listed(spec, "containers", ctrs);
    remove_listed(spec, "volumes", vols);
    json_object_del(ann, INJECT_STATUS_ANNOTATION);
    /* With the proxy as containers[0] the injector named the app as
     * kubectl's default container; without the proxy that is the first
     * container anyway, so the annotation is dropped when it names it. */
    const char *dflt = string_at(ann, "kubectl.kubernetes.io/default-container");
    const char *first = string_at(json_array_get(json_object_get(spec, "containers"), 0), "name");
    if (json_array_size(ctrs) > 0 && dflt && first && strcmp(dflt, first) == 0)
        json_object_del(ann, "kubectl.kubernetes.io/default-container");
    if (json_object_size(ann) == 0)
        json_object_del(meta, "annotations");
    rc = 0;
out:
    json_decref(recorded);
    json_decref(st);
    return rc;
}

static const char *namespace_of(json_t *obj)
{
    const char *ns = string_at(json_object_get(obj, "metadata"), "namespace");
    return ns && *ns ? ns : WORKLOAD_DEFAULT_NAMESPACE;
}

/* Injects or uninjects one pod (borrowed) of owner (for its namespace and
 * name): a new reference, or NULL with err. */
static json_t *one_pod(const struct workload_ctx *w, enum mode m, json_t *owner, json_t *pod, const char *where,
                       char *err, size_t errlen)
{
    char what[512], msg[1024];
    describe(owner, what, sizeof what);
    if (!json_is_object(pod)) {
        errbuf_set(err, errlen, "%s (%s): no pod template where the kind keeps it", where, what);
        return NULL;
    }
    json_t *p = json_deep_copy(pod);
    /* A pod template may leave metadata out; the injector writes its status there. */
    int had_meta = json_is_object(json_object_get(p, "metadata"));
    if (!had_meta)
        json_object_set_new(p, "metadata", json_object()); /* steals the object */
    if (m == MODE_UNINJECT) {
        int rc = uninject_pod(p, w->resolved_probes, msg, sizeof msg);
        if (rc < 0) {
            errbuf_set(err, errlen, "%s (%s): %s", where, what, msg);
            json_decref(p);
            return NULL;
        }
        /* The injection wrote metadata (its annotations), so an empty one
         * left now is the injector's, not the user's. */
        if (rc == 0 && json_object_size(json_object_get(p, "metadata")) == 0)
            json_object_del(p, "metadata");
        if (rc == 1) {
            json_decref(p);
            return json_incref(pod);
        }
        return p;
    }
    struct inject_result r;
    json_t *ns_ann = w->ns_annotations;
    if (w->ns_lookup && w->ns_lookup(w->lookup_ctx, namespace_of(owner), &ns_ann, msg, sizeof msg) < 0) {
        errbuf_set(err, errlen, "%s (%s): namespace %s: %s", where, what, namespace_of(owner), msg);
        json_decref(p);
        return NULL;
    }
    json_t *injected = inject_pod_build(w->conf, namespace_of(owner), p, ns_ann, &r);
    json_decref(p);
    if (r.outcome == INJECT_DENIED) {
        errbuf_set(err, errlen, "%s (%s): %s", where, what, r.message);
        return NULL;
    }
    if (!injected) {
        if (w->note) {
            char full[832];
            snprintf(full, sizeof full, "%s (%s)", where, what);
            w->note(w->note_ctx, full, r.message);
        }
        return json_incref(pod);
    }
    return injected;
}

static json_t *one_doc(const struct workload_ctx *w, enum mode m, json_t *doc, const char *where, char *err,
                       size_t errlen)
{
    json_t *parent;
    const char *key;
    if (!json_is_object(doc))
        return json_incref(doc);
    if (is_list(doc)) {
        json_t *out = json_deep_copy(doc), *items = json_object_get(out, "items"), *item;
        size_t i;
        json_array_foreach(items, i, item) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s item %zu", where, i + 1);
            json_t *done = one_doc(w, m, item, sub, err, errlen);
            if (!done) {
                json_decref(out);
                return NULL;
            }
            json_array_set_new(items, i, done); /* steals done */
        }
        return out;
    }
    const char *kind = string_at(doc, "kind");
    if (kind && strcmp(kind, "Pod") == 0)
        return one_pod(w, m, doc, doc, where, err, errlen);
    if (!template_slot(doc, &parent, &key))
        return json_incref(doc);
    json_t *pod = one_pod(w, m, doc, json_object_get(parent, key), where, err, errlen);
    if (!pod)
        return NULL;
    json_t *out = json_deep_copy(doc);
    json_t *slot_parent;
    template_slot(out, &slot_parent, &key);
    json_object_set_new(slot_parent, key, pod); /* steals pod */
    return out;
}

json_t *workload_inject(const struct workload_ctx *w, json_t *doc, const char *where, char *err, size_t errlen)
{
    return one_doc(w, MODE_INJECT, doc, where, err, errlen);
}

json_t *workload_uninject(const struct workload_ctx *w, json_t *doc, const char *where, char *err, size_t errlen)
{
    return one_doc(w, MODE_UNINJECT, doc, where, err, errlen);
}
