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

/* Appends "/<escaped token>" to path; 0, or -ENOSPC when it does not fit. */
static int push_token(struct buf *path, const char *token)
{
    char esc[PATCH_MAX_POINTER];
    if (patch_escape_token(token, esc, sizeof esc) < 0 || buf_append(path, "/", 1) < 0)
        return -ENOSPC;
    return buf_append(path, esc, strlen(esc));
}

static void pop_to(struct buf *path, size_t len)
{
    path->len = len;
    path->data[len] = '\0';
}

static void add_op(json_t *ops, const char *op, const char *path, json_t *value)
{
    json_t *o = json_pack("{s:s, s:s}", "op", op, "path", path);
    if (value)
        json_object_set(o, "value", value); /* borrows value */
    json_array_append_new(ops, o);          /* steals o */
}

static void diff_node(json_t *ops, struct buf *path, json_t *from, json_t *to);

/* Diffs from and to at path + "/<token>". */
static void with_token(json_t *ops, struct buf *path, const char *token, json_t *from, json_t *to)
{
    size_t saved = path->len;
    if (push_token(path, token) == 0)
        diff_node(ops, path, from, to);
    pop_to(path, saved);
}

static void diff_object(json_t *ops, struct buf *path, json_t *from, json_t *to)
{
    const char *key;
    json_t *value;
    size_t saved = path->len;
    json_object_foreach(from, key, value) {
        if (!json_object_get(to, key) && push_token(path, key) == 0)
            add_op(ops, "remove", path->data, NULL);
        pop_to(path, saved);
    }
    json_object_foreach(to, key, value) {
        json_t *old = json_object_get(from, key);
        if (old)
            with_token(ops, path, key, old, value);
        else if (push_token(path, key) == 0)
            add_op(ops, "add", path->data, value);
        pop_to(path, saved);
    }
}

static void diff_array(json_t *ops, struct buf *path, json_t *from, json_t *to)
{
    size_t nf = json_array_size(from), nt = json_array_size(to);
    char index[24];
    size_t saved = path->len;
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
    if (pre + suf == nf) { /* only insertions */
        for (size_t i = pre; i < nt - suf; i++) {
            snprintf(index, sizeof index, "%zu", i);
            if (push_token(path, index) == 0)
                add_op(ops, "add", path->data, json_array_get(to, i));
            pop_to(path, saved);
        }
    } else if (pre + suf == nt) { /* only removals; each shifts the rest down */
        snprintf(index, sizeof index, "%zu", pre);
        if (push_token(path, index) == 0)
            for (size_t i = pre; i < nf - suf; i++)
                add_op(ops, "remove", path->data, NULL);
        pop_to(path, saved);
    } else {
        add_op(ops, "replace", path->data, to);
    }
}

static void diff_node(json_t *ops, struct buf *path, json_t *from, json_t *to)
{
    if (json_is_object(from) && json_is_object(to))
        diff_object(ops, path, from, to);
    else if (json_is_array(from) && json_is_array(to))
        diff_array(ops, path, from, to);
    else if (!json_equal(from, to))
        add_op(ops, "replace", path->data, to);
}

json_t *patch_diff(json_t *from, json_t *to)
{
    json_t *ops = json_array();
    struct buf path;
    buf_init(&path, 1 << 20);
    buf_append(&path, "", 0); /* path->data is "" from here on */
    diff_node(ops, &path, from, to);
    buf_free(&path);
    return ops;
}
