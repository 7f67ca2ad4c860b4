/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes objects from a directory of manifests into a store: every
 * *.yaml, *.yml and *.json file (not hidden, not in subdirectories), in
 * file-name order, multi-document YAML and kind: List allowed, each object
 * applied as ADDED; kinds discovery does not watch are skipped. Used by
 * `weft-discovery answer` and by the directory source of `serve`. */
#ifndef WEFT_DISCOVERY_OBJDIR_H
#define WEFT_DISCOVERY_OBJDIR_H
#include <stddef.h>

#include "store.h"

#define OBJDIR_MAX_FILES 4096

/* 0, or -EINVAL with err naming the file, the document and the field. The
 * store may hold part of the directory after a failure. */
int objdir_load(struct store *s, const char *dir, char *err, size_t errlen);

#endif
