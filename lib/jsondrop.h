/* SPDX-License-Identifier: Apache-2.0 */
/* Drops one member name from every object of a JSON text before it is
 * parsed: a list page of Pods from the API server is half managedFields
 * (server-side apply's bookkeeping, thousands of tiny objects), which no
 * reader of lib/k8s uses; client-go's informers strip it too
 * (TransformStripManagedFields), after decoding. Here it goes before
 * jansson builds and frees a tree of it. */
#ifndef WEFT_JSONDROP_H
#define WEFT_JSONDROP_H
#include <stddef.h>
#include <sys/types.h>

#define JSONDROP_MAX_DEPTH 2048 /* jansson's own nesting limit */

/* Copies the JSON text in[0, n) into out (room for n bytes, apart from
 * in) compacted (whitespace between tokens left out) and without any
 * object member whose key is exactly name (as raw text, no escapes).
 * Strings, numbers and literals are copied as they are. Returns the length
 * written, or -EINVAL when in is not one well-formed JSON value (RFC 8259,
 * UTF-8) nested at most
 * JSONDROP_MAX_DEPTH deep: then parse in itself, for its error. A number
 * jansson would refuse (an integer past 64 bits) inside a dropped member is
 * dropped with it. */
ssize_t jsondrop_member(const char *in, size_t n, const char *name, char *out);

#endif
