/* SPDX-License-Identifier: Apache-2.0 */
/* YAML (one document) to a jansson value, with YAML 1.2 core-schema typing of
 * plain scalars: null, true/false, integers and floats become JSON types;
 * quoted scalars stay strings. Anchors, aliases and tags other than the core
 * ones are refused: Weft's YAML is configuration, not a serialization format. */
#ifndef WEFT_YAMLJSON_H
#define WEFT_YAMLJSON_H
#include <jansson.h>
#include <stddef.h>

#define YAMLJSON_MAX_DEPTH 64
#define YAMLJSON_MAX_BYTES (1024 * 1024)

/* Returns a new reference, or NULL with "<name>:<line>:<col>: <problem>" in err. */
json_t *yamljson_parse(const char *text, size_t len, const char *name, char *err, size_t errlen);
/* Every document of a multi-document stream ("---" between them), in order,
 * as a new array; empty documents are left out. Same limits and errors. */
json_t *yamljson_parse_all(const char *text, size_t len, const char *name, char *err, size_t errlen);
/* Reads and parses a file of at most YAMLJSON_MAX_BYTES. */
json_t *yamljson_load_file(const char *path, char *err, size_t errlen);

#endif
