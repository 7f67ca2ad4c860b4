/* SPDX-License-Identifier: Apache-2.0 */
/* A growable byte buffer with a hard maximum (curl's dynbuf): every buffer
 * that grows from input says how large it may get. */
#ifndef WEFT_BUF_H
#define WEFT_BUF_H
#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;  /* always NUL-terminated when len > 0 or after buf_cstr() */
    size_t len;
    size_t cap;
    size_t max;  /* buf_append fails with -E2BIG past this many bytes */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* 0, or -E2BIG (buffer unchanged) when the result would exceed max. */
int buf_append(struct buf *b, const void *data, size_t len);
/* The digits of v in base 10 or 16 (lowercase), as printf's %llu or %llx
 * would write them, into out (not NUL-terminated); returns their number.
 * For the numbers in each request's framing: printf cost more than the
 * rest of writing a head. */
#define UINT_TEXT_MAX 20
size_t uint_text(char out[UINT_TEXT_MAX], unsigned long long v, unsigned base);
int buf_append_uint(struct buf *b, unsigned long long v, unsigned base);
int buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vappendf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
const char *buf_cstr(struct buf *b);
/* Appends the whole file at path (or stdin for "-"): 0, -errno when it
 * cannot be read, or -E2BIG when it would exceed the buffer's max. */
int buf_read_file(struct buf *b, const char *path);
/* Hands the bytes to the caller (free() them); the buffer is left empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif
