/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation that never returns NULL: out of memory aborts the process, so the
 * pod restarts instead of every caller carrying a dead error branch. */
#ifndef WEFT_XALLOC_H
#define WEFT_XALLOC_H
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formats into a new string the caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
