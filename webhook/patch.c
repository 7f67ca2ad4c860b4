/* SPDX-License-Identifier: Apache-2.0 */
/* JSON diff -> JSON Patch; see patch.h. */
#include "patch.h"

#include <errno.h>
#include <string.h>

#include "buf.h"

#define PATCH_MAX_POINTER 4096

int patch_escape_token(const char *token, char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *p = token; *p; p++) {
        const char *rep = *p == '~' ? "~0" : *p == '/' ? "~1" : NULL;
        size_t len = rep ? 2 : 1;
        if (n + len >= outlen)
            return -ENOSPC;
        memcpy(out + n, rep ? rep : p, len);
        n += len;
    }
    if (n >= outlen)
        return -ENOSPC;
    out[n] = '\0';
    return 0;
}

static void add_op(json_t *ops, const char *op, const char *path, json_t *value)
{
    json_t *o = json_pack("{s:s, s:s}", "op", op, "path", path);
    if (value)
        json_object_set(o, "value", value); /* borrows value */
    json_array_append_new(ops, o);          /* steals o */
}

static void diff_node(json_t *ops, struct buf *path, json_t *from, json_t *to);

/* Runs fn with path temporarily extended by "/<token>". */
static void with_token(json_t *ops, struct buf *path, const char *token, json_t *from, json_t *to)
{
    char esc[PATCH_MAX_POINTER];
    size_t saved = path->len;
    if (patch_escape_token(token, esc, sizeof esc) == 0 && buf_appendf(path, "/%s", esc) == 0)
        diff_node(ops, path, from, to);
    path->len = saved;
    buf_cstr(path);
}

static void diff_object(json_t *ops, struct buf *path, json_t *from, json_t *to)
{
    const char *key;
    json_t *value;
    char esc[PATCH_MAX_POINTER];
    size_t saved = path->len;
    json_object_foreach(from, key, value) {
        if (!json_object_get(to, key) && patch_escape_token(key, esc, sizeof esc) == 0 &&
            buf_appendf(path, "/%s", esc) == 0) {
            add_op(ops, "remove", buf_cstr(path), NULL);
            path->len = saved;
            buf_cstr(path);
        }
    }
    json_object_foreach(to, key, value) {
        json_t *old = json_object_get(from, key);
        if (old) {
            with_token(ops, path, key, old, value);
        } else if (patch_escape_token(key, esc, sizeof esc) == 0 && buf_appendf(path, "/%s", esc) == 0) {
            add_op(ops, "add", buf_cstr(path), value);
            path->len = saved;
            buf_cstr(path);
        }
    }
}

static void diff_array(json_t *ops, struct buf *path, json_t *from, json_t *to)
{
    size_t nf = json_array_size(from), nt = json_array_size(to);
    char index[24];
    if (nf == nt) {
        for (size_t i = 0; i < nf; i++) {
            snprintf(index, sizeof index, "%zu", i);
            with_token(ops, path, index, json_array_get(from, i), json_array_get(to, i));
        }
        return;
    }
    size_t min = nf < nt ? nf : nt, pre = 0, suf = 0;
    while (pre < min && json_equal(json_array_get(from, pre), json_array_get(to, pre)))
        pre++;
    while (suf < min - pre && json_equal(json_array_get(from, nf - 1 - suf), json_array_get(to, nt - 1 - suf)))
        suf++;
    size_t saved = path->len;
    if (pre + suf == nf) { /* only insertions */
        for (size_t i = pre; i < nt - suf; i++) {
            buf_appendf(path, "/%zu", i);
            add_op(ops, "add", buf_cstr(path), json_array_get(to, i));
            path->len = saved;
        }
    } else if (pre + suf == nt) { /* only removals; each shifts the rest down */
        buf_appendf(path, "/%zu", pre);
        for (size_t i = pre; i < nf - suf; i++)
            add_op(ops, "remove", buf_cstr(path), NULL);
        path->len = saved;
    } else {
        add_op(ops, "replace", buf_cstr(path), to);
    }
    buf_cstr(path);
}

static void diff_node(json_t *ops, struct buf *path, json_t *from, json_t *to)
{
    if (json_is_object(from) && json_is_object(to))
        diff_object(ops, path, from, to);
    else if (json_is_array(from) && json_is_array(to))
        diff_array(ops, path, from, to);
    else if (!json_equal(from, to))
        add_op(ops, "replace", path->len ? buf_cstr(path) : "", to);
}

json_t *patch_diff(json_t *from, json_t *to)
{
    json_t *ops = json_array();
    struct buf path;
    buf_init(&path, 1 << 20);
    buf_append(&path, "", 0);
    diff_node(ops, &path, from, to);
    buf_free(&path);
    return ops;
}
