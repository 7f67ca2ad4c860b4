/* SPDX-License-Identifier: Apache-2.0 */
/* The one way a function fills its caller's error buffer (Redis anet's `err`
 * argument): a message for a person, naming what was wrong. */
#ifndef WEFT_ERRBUF_H
#define WEFT_ERRBUF_H
#include <stddef.h>

/* Formats into err (at most errlen bytes, always terminated); a NULL err or
 * a zero errlen is allowed and writes nothing. */
void errbuf_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
