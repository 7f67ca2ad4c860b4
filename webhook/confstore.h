/* SPDX-License-Identifier: Apache-2.0 */
/* The webhook's configuration (mesh.yaml and the templates) as immutable,
 * reference-counted snapshots, so a ConfigMap update takes effect without a
 * restart: confstore_refresh() notices changed files (inode, size, mtime, as
 * Kubernetes swaps ConfigMap volumes by symlink), loads a whole new snapshot
 * and swaps it in; a request keeps the snapshot it started with. A change
 * that does not load leaves the previous snapshot in force. Thread-safe. */
#ifndef WEFT_WEBHOOK_CONFSTORE_H
#define WEFT_WEBHOOK_CONFSTORE_H
#include <stddef.h>

#include "inject.h"
#include "template.h"

struct conf {
    struct templates templates;
    struct inject_config inject; /* points into templates */
};

struct confstore;

/* Loads the first snapshot; NULL with the file and problem in err. */
struct confstore *confstore_new(const char *mesh_path, const char *templates_dir, char *err, size_t errlen);
void confstore_free(struct confstore *s);
/* The current snapshot, held until confstore_put(). */
const struct conf *confstore_get(struct confstore *s);
void confstore_put(struct confstore *s, const struct conf *c);
/* 1 when a new snapshot was taken, 0 when nothing changed, -EINVAL (err
 * filled) when the changed files do not load. */
int confstore_refresh(struct confstore *s, char *err, size_t errlen);
/* Loads without a store (the check subcommand): 0 or -EINVAL with err. */
int conf_load(const char *mesh_path, const char *templates_dir, struct conf *out, char *err, size_t errlen);
void conf_free(struct conf *c);

#endif
