/* SPDX-License-Identifier: Apache-2.0 */
/* JSON values written as a YAML stream (libyaml's emitter), one document each,
 * in block style. Strings that a YAML 1.1 or 1.2 reader (kubectl's included)
 * would take for another type are quoted, so the output reads back as the
 * same JSON through lib/yamljson.c and through kubectl. Pure. */
#ifndef WEFT_YAMLOUT_H
#define WEFT_YAMLOUT_H
#include <jansson.h>

#include "buf.h"

/* Appends docs (an array of documents) to out: 0, or -EINVAL with err. */
int yamlout_write(json_t *docs, struct buf *out, char *err, size_t errlen);

#endif
