/* SPDX-License-Identifier: Apache-2.0 */
/* libyaml event stream -> jansson tree; see yamljson.h for the typing rules. */
#include "yamljson.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "buf.h"

struct frame {
    json_t *node;  /* object or array being filled (borrowed from its parent, or the root) */
    char *key;     /* pending mapping key, owned */
};

static int is_int(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int is_float(const char *s)
{
    char *end;
    if (!*s || strchr(s, '_') || strcmp(s, "-") == 0)
        return 0;
    /* Only decimal forms: strtod also takes hex, inf and nan. */
    for (const char *p = s; *p; p++)
        if (!strchr("0123456789+-.eE", *p))
            return 0;
    strtod(s, &end);
    return *end == '\0';
}

static json_t *plain_scalar(const char *s)
{
    if (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0)
        return json_null();
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return json_true();
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return json_false();
    if (is_int(s)) {
        errno = 0;
        long long v = strtoll(s, NULL, 10);
        if (errno == 0)
            return json_integer(v);
    }
    if (is_float(s))
        return json_real(strtod(s, NULL));
    return json_string(s);
}

static json_t *scalar_value(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (tag && strcmp(tag, YAML_STR_TAG) == 0)
        return json_stringn(v, ev->data.scalar.length);
    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
        return plain_scalar(v);
    return json_stringn(v, ev->data.scalar.length);
}

/* Attaches a new value to the frame on top (steals value). */
static int attach(struct frame *top, json_t *value, char *err, size_t errlen, const yaml_event_t *ev, const char *name)
{
    if (json_is_array(top->node))
        return json_array_append_new(top->node, value);
    if (top->key) {
        if (json_object_get(top->node, top->key)) {
            snprintf(err, errlen, "%s:%zu:%zu: duplicate key \"%s\"", name, ev->start_mark.line + 1,
                     ev->start_mark.column + 1, top->key);
            json_decref(value);
            return -1;
        }
        int rc = json_object_set_new(top->node, top->key, value);
        free(top->key);
        top->key = NULL;
        return rc;
    }
    if (!json_is_string(value)) {
        snprintf(err, errlen, "%s:%zu:%zu: mapping keys must be strings", name, ev->start_mark.line + 1,
                 ev->start_mark.column + 1);
        json_decref(value);
        return -1;
    }
    top->key = strdup(json_string_value(value));
    json_decref(value);
    return top->key ? 0 : -1;
}

/* One document (multi == 0: a second one is an error), or every document of
 * the stream appended to a new array (multi == 1; empty documents skipped). */
static json_t *parse(const char *text, size_t len, const char *name, int multi, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    struct frame stack[YAMLJSON_MAX_DEPTH + 1];
    int depth = 0, done = 0;
    json_t *root = NULL, *docs = multi ? json_array() : NULL;

    err[0] = '\0';
    if (len > YAMLJSON_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes", name, YAMLJSON_MAX_BYTES);
        return NULL;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    memset(stack, 0, sizeof stack);

    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            snprintf(err, errlen, "%s:%zu:%zu: %s", name, parser.problem_mark.line + 1,
                     parser.problem_mark.column + 1, parser.problem ? parser.problem : "parse error");
            goto fail;
        }
        json_t *value = NULL;
        int push = 0;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_END_EVENT:
            if (multi && root) {
                if (!json_is_null(root))
                    json_array_append(docs, root);
                json_decref(root);
                root = NULL;
            }
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (root) {
                snprintf(err, errlen, "%s:%zu: only one YAML document is allowed", name, ev.start_mark.line + 1);
                yaml_event_delete(&ev);
                goto fail;
            }
            break;
        case YAML_ALIAS_EVENT:
            snprintf(err, errlen, "%s:%zu:%zu: aliases are not supported", name, ev.start_mark.line + 1,
                     ev.start_mark.column + 1);
            yaml_event_delete(&ev);
            goto fail;
        case YAML_SCALAR_EVENT:
            if (ev.data.scalar.anchor) {
                snprintf(err, errlen, "%s:%zu:%zu: anchors are not supported", name, ev.start_mark.line + 1,
                         ev.start_mark.column + 1);
                yaml_event_delete(&ev);
                goto fail;
            }
            value = scalar_value(&ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            value = json_array();
            push = 1;
            break;
        case YAML_MAPPING_START_EVENT:
            value = json_object();
            push = 1;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            free(stack[depth].key);
            stack[depth].key = NULL;
            depth--;
            break;
        default:
            break;
        }
        if (value) {
            if (depth == 0) {
                root = value;
            } else if (attach(&stack[depth], value, err, errlen, &ev, name) < 0) {
                yaml_event_delete(&ev);
                goto fail;
            }
            if (push) {
                if (depth == YAMLJSON_MAX_DEPTH) {
                    snprintf(err, errlen, "%s:%zu: nested deeper than %d levels", name, ev.start_mark.line + 1,
                             YAMLJSON_MAX_DEPTH);
                    yaml_event_delete(&ev);
                    goto fail;
                }
                stack[++depth].node = value;
                stack[depth].key = NULL;
            }
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (multi)
        return docs;
    if (!root)
        root = json_null();
    return root;

fail:
    for (int i = 0; i <= depth && i <= YAMLJSON_MAX_DEPTH; i++)
        free(stack[i].key);
    json_decref(root);
    json_decref(docs);
    yaml_parser_delete(&parser);
    return NULL;
}

json_t *yamljson_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    return parse(text, len, name, 0, err, errlen);
}

json_t *yamljson_parse_all(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    return parse(text, len, name, 1, err, errlen);
}

json_t *yamljson_load_file(const char *path, char *err, size_t errlen)
{
    struct buf b;
    buf_init(&b, YAMLJSON_MAX_BYTES);
    json_t *out = NULL;
    int rc = buf_read_file(&b, path);
    if (rc == -E2BIG)
        snprintf(err, errlen, "%s: larger than %d bytes", path, YAMLJSON_MAX_BYTES);
    else if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
    else
        out = yamljson_parse(b.data, b.len, path, err, errlen);
    buf_free(&b);
    return out;
}
