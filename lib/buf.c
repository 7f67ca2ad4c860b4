/* SPDX-License-Identifier: Apache-2.0 */
/* Growable bounded buffer; see buf.h. */
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void buf_free(struct buf *b)
{
    free(b->data);
    buf_init(b, b->max);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static void reserve(struct buf *b, size_t need)
{
    if (need + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need + 1)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
    if (len > b->max - b->len)
        return -E2BIG;
    reserve(b, b->len + len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

size_t uint_text(char out[UINT_TEXT_MAX], unsigned long long v, unsigned base)
{
    char rev[UINT_TEXT_MAX];
    size_t n = 0;
    do {
        rev[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    return n;
}

int buf_append_uint(struct buf *b, unsigned long long v, unsigned base)
{
    char digits[UINT_TEXT_MAX];
    return buf_append(b, digits, uint_text(digits, v, base));
}

int buf_vappendf(struct buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0 || (size_t)n > b->max - b->len) {
        va_end(again);
        return n < 0 ? -EINVAL : -E2BIG;
    }
    reserve(b, b->len + (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
    va_end(again);
    b->len += (size_t)n;
    return 0;
}

int buf_appendf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

const char *buf_cstr(struct buf *b)
{
    reserve(b, b->len);
    b->data[b->len] = '\0';
    return b->data;
}

char *buf_steal(struct buf *b, size_t *len)
{
    char *out = (char *)buf_cstr(b);
    if (len)
        *len = b->len;
    buf_init(b, b->max);
    return out;
}

int buf_read_file(struct buf *b, const char *path)
{
    int stdin_wanted = path[0] == '-' && path[1] == '\0';
    FILE *f = stdin_wanted ? stdin : fopen(path, "rbe");
    if (!f)
        return -errno;
    char chunk[8192];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = buf_append(b, chunk, n);
    if (rc == 0 && ferror(f))
        rc = -EIO;
    if (!stdin_wanted)
        fclose(f);
    buf_cstr(b);
    return rc;
}
