/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 6902 JSON Patch from the difference of two JSON documents, with RFC 6901
 * pointer escaping. Objects are compared key by key; arrays element by
 * element when their lengths match, otherwise as inserted or removed runs
 * between a common prefix and suffix, and replaced whole when neither fits.
 * Applying the result to `from` gives exactly `to`. Pure. */
#ifndef WEFT_WEBHOOK_PATCH_H
#define WEFT_WEBHOOK_PATCH_H
#include <jansson.h>
#include <stddef.h>

/* Returns a new JSON array of operations ([] when equal). */
json_t *patch_diff(json_t *from, json_t *to);
/* Appends the RFC 6901 escape of one reference token ("~" -> "~0", "/" -> "~1")
 * to out (NUL-terminated, at most outlen bytes); 0 or -ENOSPC. */
int patch_escape_token(const char *token, char *out, size_t outlen);

#endif
