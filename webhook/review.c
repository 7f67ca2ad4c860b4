/* SPDX-License-Identifier: Apache-2.0 */
/* AdmissionReview parsing and answering; see review.h. */
#include "review.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xalloc.h"

static const char *string_at(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* Messages quote the request (a token jansson choked on, an annotation
 * value) and are cut to fit their buffer, so they may hold bytes that are not
 * UTF-8, which JSON cannot carry: those become '?'. */
static void make_utf8(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : (*p >> 5) == 0x6 ? 2 : (*p >> 4) == 0xe ? 3 : (*p >> 3) == 0x1e ? 4 : 0;
        size_t i = 1;
        while (n && i < n && (p[i] & 0xc0) == 0x80)
            i++;
        if (n == 0 || i < n || (n == 2 && *p < 0xc2)) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

static void set_body(struct review_result *out, json_t *doc)
{
    out->body = json_dumps(doc, JSON_COMPACT);
    out->len = strlen(out->body);
    json_decref(doc);
}

static void bad_request(struct review_result *out, const char *why)
{
    out->http_status = 400;
    out->outcome = REVIEW_ERROR;
    out->reason = "bad-request";
    snprintf(out->message, sizeof out->message, "%s", why);
    make_utf8(out->message);
    set_body(out, json_pack("{s:s}", "error", out->message));
}

static char *base64(const char *data, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
    return out;
}

/* The answer: allowed with an optional patch, or refused with a message.
 * Written by hand around the base64 patch, which needs no escaping: dumping
 * it through jansson again would cost as much as building it. */
static void answer(struct review_result *out, const char *uid, int allowed, int code, json_t *patch)
{
    struct buf b;
    buf_init(&b, 4 * REVIEW_MAX_BODY);
    json_t *uid_value = json_string(uid); /* valid UTF-8: it came from json_loadb */
    char *uid_json = json_dumps(uid_value, JSON_ENCODE_ANY);
    json_decref(uid_value);
    buf_appendf(&b, "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":%s,"
                    "\"allowed\":%s", uid_json ? uid_json : "\"\"", allowed ? "true" : "false");
    if (!allowed) {
        make_utf8(out->message);
        json_t *status = json_pack("{s:i, s:s}", "code", code, "message", out->message);
        char *text = json_dumps(status, JSON_COMPACT);
        buf_appendf(&b, ",\"status\":%s", text);
        free(text);
        json_decref(status);
    }
    if (patch && json_array_size(patch) > 0) {
        char *text = json_dumps(patch, JSON_COMPACT);
        char *b64 = base64(text, strlen(text));
        buf_appendf(&b, ",\"patchType\":\"JSONPatch\",\"patch\":\"%s\"", b64);
        free(b64);
        free(text);
    }
    buf_append(&b, "}}", 2);
    free(uid_json);
    out->http_status = 200;
    out->body = buf_steal(&b, &out->len);
}

static void handle_request(const struct inject_config *c, json_t *req, review_ns_lookup lookup, void *ctx,
                           struct review_result *out)
{
    const char *uid = string_at(req, "uid");
    json_t *kind = json_object_get(req, "kind");
    json_t *pod = json_object_get(req, "object");
    json_t *meta = json_object_get(pod, "metadata");
    const char *ns = string_at(req, "namespace");
    if (!ns || !*ns)
        ns = string_at(meta, "namespace");
    const char *name = string_at(meta, "name");
    if (!name || !*name)
        name = string_at(meta, "generateName");
    snprintf(out->pod, sizeof out->pod, "%s/%s", ns ? ns : "", name ? name : "");

    const char *group = string_at(kind, "group");
    const char *k = string_at(kind, "kind");
    const char *sub = string_at(req, "subResource");
    const char *op = string_at(req, "operation");
    if (!k || strcmp(k, "Pod") != 0 || (group && *group) || (sub && *sub)) {
        snprintf(out->message, sizeof out->message, "not a Pod (%s)", k ? k : "no kind");
        out->outcome = REVIEW_SKIPPED;
        out->reason = "not-a-pod";
        answer(out, uid, 1, 0, NULL);
        return;
    }
    if (op && strcmp(op, "CREATE") != 0) {
        snprintf(out->message, sizeof out->message, "operation %s: pods are injected on CREATE", op);
        out->outcome = REVIEW_SKIPPED;
        out->reason = "not-create";
        answer(out, uid, 1, 0, NULL);
        return;
    }
    if (!json_is_object(pod) || !ns || !*ns) {
        snprintf(out->message, sizeof out->message, "request.object is not a Pod with a namespace");
        out->outcome = REVIEW_DENIED;
        out->reason = "invalid-pod";
        answer(out, uid, 0, 400, NULL);
        return;
    }

    struct inject_result r;
    json_t *ns_annotations = NULL;
    if (!inject_screen(c, ns, pod, &r)) {
        char err[512];
        if (lookup && lookup(ctx, ns, &ns_annotations, err, sizeof err) < 0) {
            snprintf(out->message, sizeof out->message,
                     "cannot read namespace %s from the Kubernetes API (%s); refusing to inject without its "
                     "weft.dev annotations",
                     ns, err);
            out->outcome = REVIEW_ERROR;
            out->reason = "namespace-unavailable";
            answer(out, uid, 0, 503, NULL);
        return;
        }
        inject_pod(c, ns, pod, ns_annotations, &r);
        json_decref(ns_annotations);
    }
    snprintf(out->message, sizeof out->message, "%s", r.message);
    out->reason = r.reason;
    switch (r.outcome) {
    case INJECT_INJECTED:
        out->outcome = REVIEW_INJECTED;
        answer(out, uid, 1, 0, r.patch);
        break;
    case INJECT_SKIPPED:
        out->outcome = REVIEW_SKIPPED;
        answer(out, uid, 1, 0, NULL);
        break;
    case INJECT_DENIED:
        out->outcome = REVIEW_DENIED;
        answer(out, uid, 0, 400, NULL);
        break;
    }
    json_decref(r.patch);
}

void review_handle(const struct inject_config *c, const char *body, size_t len, review_ns_lookup lookup,
                   void *lookup_ctx, struct review_result *out)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    if (len > REVIEW_MAX_BODY) {
        out->http_status = 413;
        out->outcome = REVIEW_ERROR;
        out->reason = "too-large";
        snprintf(out->message, sizeof out->message, "body larger than %d bytes", REVIEW_MAX_BODY);
        set_body(out, json_pack("{s:s}", "error", out->message));
        return;
    }
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        char why[256];
        snprintf(why, sizeof why, "body is not JSON: %s at line %d column %d", jerr.text, jerr.line, jerr.column);
        bad_request(out, why);
        return;
    }
    json_t *req = json_object_get(doc, "request");
    const char *api = string_at(doc, "apiVersion");
    const char *kind = string_at(doc, "kind");
    const char *uid = string_at(req, "uid");
    if (!api || strcmp(api, "admission.k8s.io/v1") != 0)
        bad_request(out, "body is not an AdmissionReview: apiVersion must be admission.k8s.io/v1");
    else if (!kind || strcmp(kind, "AdmissionReview") != 0)
        bad_request(out, "body is not an AdmissionReview: kind must be AdmissionReview");
    else if (!json_is_object(req) || !uid || !*uid)
        bad_request(out, "body is not an AdmissionReview: request.uid is missing");
    else {
        snprintf(out->uid, sizeof out->uid, "%s", uid);
        handle_request(c, req, lookup, lookup_ctx, out);
    }
    json_decref(doc);
}
