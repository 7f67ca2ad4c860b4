/* SPDX-License-Identifier: Apache-2.0 */
/* See jsondrop.h. A strict scanner that writes as it reads; a member to
 * drop is scanned (it must be well-formed too) and not written. */
#include "jsondrop.h"

#include <errno.h>
#include <string.h>

struct jsondrop {
    const char *p, *e;
    char *o;  /* write cursor */
    int skip; /* > 0: inside a dropped member, nothing is written */
    const char *name;
    size_t nlen;
};

static void jsondrop_put(struct jsondrop *d, const char *s, size_t n)
{
    if (!d->skip) {
        memcpy(d->o, s, n);
        d->o += n;
    }
}

static void jsondrop_ws(struct jsondrop *d)
{
    while (d->p < d->e && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

/* One UTF-8 sequence (lead byte >= 0x80): shortest form, no surrogates, at most U+10FFFF. */
static int jsondrop_utf8(struct jsondrop *d)
{
    const unsigned char *u = (const unsigned char *)d->p;
    size_t n = (size_t)(d->e - d->p), len;
    if (u[0] >= 0xc2 && u[0] <= 0xdf)
        len = 2;
    else if (u[0] >= 0xe0 && u[0] <= 0xef)
        len = 3;
    else if (u[0] >= 0xf0 && u[0] <= 0xf4)
        len = 4;
    else
        return -1;
    if (n < len)
        return -1;
    for (size_t i = 1; i < len; i++)
        if ((u[i] & 0xc0) != 0x80)
            return -1;
    if ((u[0] == 0xe0 && u[1] < 0xa0) || (u[0] == 0xed && u[1] >= 0xa0) || (u[0] == 0xf0 && u[1] < 0x90) ||
        (u[0] == 0xf4 && u[1] >= 0x90))
        return -1;
    d->p += len;
    return 0;
}

static int jsondrop_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int jsondrop_hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        if (!jsondrop_hex(p[i]))
            return -1;
        *v = *v << 4 | (unsigned)(p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
    }
    return 0;
}

/* A string (on its quote), copied; *key_is_name: its raw text is d->name. */
static int jsondrop_string(struct jsondrop *d, int *key_is_name)
{
    const char *s = d->p++;
    while (d->p < d->e) {
        unsigned char c = (unsigned char)*d->p;
        if (c == '"') {
            d->p++;
            if (key_is_name)
                *key_is_name = (size_t)(d->p - s) == d->nlen + 2 && memcmp(s + 1, d->name, d->nlen) == 0;
            jsondrop_put(d, s, (size_t)(d->p - s));
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (d->e - d->p < 2)
                return -1;
            char x = d->p[1];
            if (x == 'u') {
                unsigned v, w;
                if (d->e - d->p < 6 || jsondrop_hex4(d->p + 2, &v) < 0)
                    return -1;
                d->p += 6;
                /* A surrogate must pair, as jansson requires. */
                if (v >= 0xdc00 && v <= 0xdfff)
                    return -1;
                if (v >= 0xd800 && v <= 0xdbff) {
                    if (d->e - d->p < 6 || d->p[0] != '\\' || d->p[1] != 'u' || jsondrop_hex4(d->p + 2, &w) < 0 ||
                        w < 0xdc00 || w > 0xdfff)
                        return -1;
                    d->p += 6;
                }
                /* jansson refuses \u0000 (no JSON_ALLOW_NUL) */
                if (v == 0)
                    return -1;
            } else if (x == '"' || x == '\\' || x == '/' || x == 'b' || x == 'f' || x == 'n' || x == 'r' ||
                       x == 't') {
                d->p += 2;
            } else {
                return -1;
            }
        } else if (c >= 0x80) {
            if (jsondrop_utf8(d) < 0)
                return -1;
        } else {
            d->p++;
        }
    }
    return -1;
}

static int jsondrop_digits(struct jsondrop *d)
{
    const char *s = d->p;
    while (d->p < d->e && *d->p >= '0' && *d->p <= '9')
        d->p++;
    return d->p > s ? 0 : -1;
}

static int jsondrop_number(struct jsondrop *d)
{
    const char *s = d->p;
    if (d->p < d->e && *d->p == '-')
        d->p++;
    if (d->p < d->e && *d->p == '0')
        d->p++;
    else if (jsondrop_digits(d) < 0)
        return -1;
    if (d->p < d->e && *d->p == '.') {
        d->p++;
        if (jsondrop_digits(d) < 0)
            return -1;
    }
    if (d->p < d->e && (*d->p == 'e' || *d->p == 'E')) {
        d->p++;
        if (d->p < d->e && (*d->p == '+' || *d->p == '-'))
            d->p++;
        if (jsondrop_digits(d) < 0)
            return -1;
    }
    jsondrop_put(d, s, (size_t)(d->p - s));
    return 0;
}

static int jsondrop_literal(struct jsondrop *d, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(d->e - d->p) < n || memcmp(d->p, lit, n) != 0)
        return -1;
    jsondrop_put(d, d->p, n);
    d->p += n;
    return 0;
}

static int jsondrop_value(struct jsondrop *d, int depth);

static int jsondrop_object(struct jsondrop *d, int depth)
{
    jsondrop_put(d, "{", 1);
    d->p++;
    jsondrop_ws(d);
    if (d->p < d->e && *d->p == '}') {
        d->p++;
        jsondrop_put(d, "}", 1);
        return 0;
    }
    int written = 0; /* members written so far: a comma goes before the next */
    for (;;) {
        if (d->p >= d->e || *d->p != '"')
            return -1;
        /* The key is read before it is known whether it is written: look ahead. */
        struct jsondrop probe = *d;
        probe.skip = 1;
        int drop = 0;
        if (jsondrop_string(&probe, &drop) < 0)
            return -1;
        if (drop)
            d->skip++;
        else if (written++)
            jsondrop_put(d, ",", 1);
        if (jsondrop_string(d, NULL) < 0)
            return -1;
        jsondrop_ws(d);
        if (d->p >= d->e || *d->p != ':')
            return -1;
        d->p++;
        jsondrop_put(d, ":", 1);
        jsondrop_ws(d);
        if (jsondrop_value(d, depth + 1) < 0)
            return -1;
        if (drop)
            d->skip--;
        jsondrop_ws(d);
        if (d->p < d->e && *d->p == '}') {
            d->p++;
            jsondrop_put(d, "}", 1);
            return 0;
        }
        if (d->p >= d->e || *d->p != ',')
            return -1;
        d->p++;
        jsondrop_ws(d);
    }
}

static int jsondrop_array(struct jsondrop *d, int depth)
{
    jsondrop_put(d, "[", 1);
    d->p++;
    jsondrop_ws(d);
    if (d->p < d->e && *d->p == ']') {
        d->p++;
        jsondrop_put(d, "]", 1);
        return 0;
    }
    for (;;) {
        if (jsondrop_value(d, depth + 1) < 0)
            return -1;
        jsondrop_ws(d);
        if (d->p < d->e && *d->p == ']') {
            d->p++;
            jsondrop_put(d, "]", 1);
            return 0;
        }
        if (d->p >= d->e || *d->p != ',')
            return -1;
        d->p++;
        jsondrop_put(d, ",", 1);
        jsondrop_ws(d);
    }
}

static int jsondrop_value(struct jsondrop *d, int depth)
{
    if (d->p >= d->e || depth > JSONDROP_MAX_DEPTH)
        return -1;
    switch (*d->p) {
    case '{':
        return jsondrop_object(d, depth);
    case '[':
        return jsondrop_array(d, depth);
    case '"':
        return jsondrop_string(d, NULL);
    case 't':
        return jsondrop_literal(d, "true");
    case 'f':
        return jsondrop_literal(d, "false");
    case 'n':
        return jsondrop_literal(d, "null");
    default:
        return jsondrop_number(d);
    }
}

ssize_t jsondrop_member(const char *in, size_t n, const char *name, char *out)
{
    struct jsondrop d = {.p = in, .e = in + n, .o = out, .name = name, .nlen = strlen(name)};
    jsondrop_ws(&d);
    if (jsondrop_value(&d, 1) < 0)
        return -EINVAL;
    jsondrop_ws(&d);
    if (d.p != d.e)
        return -EINVAL;
    return d.o - out;
}
