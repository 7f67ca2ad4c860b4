/* SPDX-License-Identifier: Apache-2.0 */
/* Template loading (files -> JSON, version hash) and rendering; see template.h. */
#include "template.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "xalloc.h"
#include "yamljson.h"

/* Marks a node the render removes from its parent. */
static json_t removed_marker;
#define REMOVED (&removed_marker)

struct render {
    json_t *values;
    const char *name;
    char *err;
    size_t errlen;
    int failed;
};

static json_t *lookup(struct render *r, const char *name, size_t len)
{
    char key[64];
    if (len >= sizeof key)
        goto unknown;
    memcpy(key, name, len);
    key[len] = '\0';
    json_t *v = json_object_get(r->values, key);
    if (v)
        return v;
unknown:
    if (!r->failed)
        snprintf(r->err, r->errlen, "template %s: unknown value ${%.*s}", r->name, (int)len, name);
    r->failed = 1;
    return NULL;
}

static int append_value_text(struct buf *out, json_t *v)
{
    if (json_is_string(v))
        return buf_append(out, json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        return buf_appendf(out, "%lld", (long long)json_integer_value(v));
    if (json_is_boolean(v))
        return buf_appendf(out, "%s", json_is_true(v) ? "true" : "false");
    return 0; /* null inserts nothing */
}

static json_t *render_string(struct render *r, const char *s)
{
    size_t len = strlen(s);
    if (len > 3 && s[0] == '$' && s[1] == '{' && s[len - 1] == '}' && !memchr(s + 2, '}', len - 3)) {
        json_t *v = lookup(r, s + 2, len - 3);
        if (!v)
            return NULL;
        return json_is_null(v) ? REMOVED : json_incref(v);
    }
    if (!strstr(s, "${"))
        return json_string(s);
    struct buf out;
    buf_init(&out, TEMPLATE_MAX_BYTES);
    const char *p = s;
    const char *open;
    while ((open = strstr(p, "${")) != NULL) {
        const char *close = strchr(open, '}');
        if (!close) {
            snprintf(r->err, r->errlen, "template %s: unterminated ${ in \"%s\"", r->name, s);
            r->failed = 1;
            buf_free(&out);
            return NULL;
        }
        buf_append(&out, p, (size_t)(open - p));
        json_t *v = lookup(r, open + 2, (size_t)(close - open - 2));
        if (!v) {
            buf_free(&out);
            return NULL;
        }
        append_value_text(&out, v);
        p = close + 1;
    }
    buf_append(&out, p, strlen(p));
    json_t *result = json_stringn(out.data ? out.data : "", out.len);
    buf_free(&out);
    return result;
}

static json_t *render_node(struct render *r, json_t *node);

static json_t *render_object(struct render *r, json_t *node)
{
    json_t *cond = json_object_get(node, "_if");
    if (cond) {
        json_t *v = json_is_string(cond) ? lookup(r, json_string_value(cond), json_string_length(cond)) : NULL;
        if (!v) {
            if (!r->failed)
                snprintf(r->err, r->errlen, "template %s: _if needs a value name", r->name);
            r->failed = 1;
            return NULL;
        }
        if (!json_is_true(v))
            return REMOVED;
    }
    json_t *out = json_object();
    const char *key;
    json_t *child;
    json_object_foreach(node, key, child) {
        if (strcmp(key, "_if") == 0)
            continue;
        json_t *v = render_node(r, child);
        if (!v) {
            json_decref(out);
            return NULL;
        }
        if (v != REMOVED)
            json_object_set_new(out, key, v); /* steals v */
    }
    return out;
}

static json_t *render_array(struct render *r, json_t *node)
{
    json_t *out = json_array();
    size_t i;
    json_t *child;
    json_array_foreach(node, i, child) {
        json_t *v = render_node(r, child);
        if (!v) {
            json_decref(out);
            return NULL;
        }
        if (v != REMOVED)
            json_array_append_new(out, v); /* steals v */
    }
    return out;
}

static json_t *render_node(struct render *r, json_t *node)
{
    if (json_is_object(node))
        return render_object(r, node);
    if (json_is_array(node))
        return render_array(r, node);
    if (json_is_string(node))
        return render_string(r, json_string_value(node));
    return json_incref(node);
}

json_t *template_render(json_t *tmpl, json_t *values, const char *name, char *err, size_t errlen)
{
    struct render r = {values, name, err, errlen, 0};
    json_t *out = render_node(&r, tmpl);
    if (out == REMOVED) {
        snprintf(err, errlen, "template %s: the whole template was removed", name);
        return NULL;
    }
    return out;
}

/* Every name node uses, in ${} and _if, whatever the conditions: 0 or -1
 * with r->err set by lookup(). */
static int check_node(struct render *r, json_t *node)
{
    if (json_is_object(node)) {
        json_t *cond = json_object_get(node, "_if");
        if (cond && (!json_is_string(cond) || !lookup(r, json_string_value(cond), json_string_length(cond)))) {
            if (!r->failed)
                snprintf(r->err, r->errlen, "template %s: _if needs a value name", r->name);
            r->failed = 1;
            return -1;
        }
        const char *key;
        json_t *child;
        json_object_foreach(node, key, child)
            if (strcmp(key, "_if") != 0 && check_node(r, child) < 0)
                return -1;
    } else if (json_is_array(node)) {
        size_t i;
        json_t *child;
        json_array_foreach(node, i, child)
            if (check_node(r, child) < 0)
                return -1;
    } else if (json_is_string(node)) {
        const char *s = json_string_value(node), *open;
        while ((open = strstr(s, "${")) != NULL) {
            const char *close = strchr(open, '}');
            if (!close) {
                snprintf(r->err, r->errlen, "template %s: unterminated ${ in \"%s\"", r->name, json_string_value(node));
                r->failed = 1;
                return -1;
            }
            if (!lookup(r, open + 2, (size_t)(close - open - 2)))
                return -1;
            s = close + 1;
        }
    }
    return 0;
}

int template_check(json_t *tmpl, json_t *names, const char *name, char *err, size_t errlen)
{
    struct render r = {names, name, err, errlen, 0};
    return check_node(&r, tmpl) < 0 ? -EINVAL : 0;
}

static json_t *load_one(const char *dir, const char *file, int want_array, EVP_MD_CTX *hash, char *err,
                        size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    struct buf b;
    buf_init(&b, TEMPLATE_MAX_BYTES);
    json_t *doc = NULL;
    int rc = buf_read_file(&b, path);
    if (rc < 0) {
        if (rc == -E2BIG)
            snprintf(err, errlen, "%s: larger than %d bytes", path, TEMPLATE_MAX_BYTES);
        else
            snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        goto out;
    }
    EVP_DigestUpdate(hash, file, strlen(file) + 1);
    EVP_DigestUpdate(hash, b.data, b.len);
    doc = yamljson_parse(b.data, b.len, path, err, errlen);
    if (doc && (want_array ? !json_is_array(doc) : !json_is_object(doc))) {
        snprintf(err, errlen, "%s: must be a %s", path, want_array ? "list" : "mapping");
        json_decref(doc);
        doc = NULL;
    }
out:
    buf_free(&b);
    return doc;
}

int templates_load(const char *dir, struct templates *out, char *err, size_t errlen)
{
    struct templates t = {0};
    EVP_MD_CTX *hash = EVP_MD_CTX_new();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    int rc = -EINVAL;
    EVP_DigestInit_ex(hash, EVP_sha256(), NULL);
    if (!(t.init_container = load_one(dir, "init-container.yaml", 0, hash, err, errlen)) ||
        !(t.proxy_container = load_one(dir, "proxy-container.yaml", 0, hash, err, errlen)) ||
        !(t.volumes = load_one(dir, "volumes.yaml", 1, hash, err, errlen))) {
        templates_free(&t);
        goto out;
    }
    EVP_DigestFinal_ex(hash, digest, &dlen);
    for (int i = 0; i < 8; i++)
        snprintf(t.version + 2 * i, 3, "%02x", digest[i]);
    *out = t;
    rc = 0;
out:
    EVP_MD_CTX_free(hash);
    return rc;
}

void templates_free(struct templates *t)
{
    json_decref(t->init_container);
    json_decref(t->proxy_container);
    json_decref(t->volumes);
    memset(t, 0, sizeof *t);
}
