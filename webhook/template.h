/* SPDX-License-Identifier: Apache-2.0 */
/* Injection templates: YAML files turned into JSON and rendered with the
 * resolved settings. Rules, kept deliberately small:
 *  - "${name}" as a whole scalar inserts the value with its JSON type; a null
 *    value removes the mapping key or list item that holds it;
 *  - "${name}" inside other text inserts the value as text;
 *  - a mapping with the key `_if: name` is kept (without `_if`) only when the
 *    value is true, otherwise the key or item holding it is removed.
 * An unknown name is an error naming the template and the name. Pure. */
#ifndef WEFT_WEBHOOK_TEMPLATE_H
#define WEFT_WEBHOOK_TEMPLATE_H
#include <jansson.h>
#include <stddef.h>

#define TEMPLATE_MAX_BYTES (256 * 1024) /* one template file */

struct templates {
    json_t *init_container;  /* templates/init-container.yaml */
    json_t *proxy_container; /* templates/proxy-container.yaml */
    json_t *volumes;         /* templates/volumes.yaml, a list */
    char version[17];        /* first 16 hex digits of SHA-256 over the three files */
};

/* Loads the three templates from dir; 0 or -errno with the file and problem in err. */
int templates_load(const char *dir, struct templates *out, char *err, size_t errlen);
void templates_free(struct templates *t);
/* Checks that every name tmpl uses (in ${} and _if, in every branch) is a
 * key of names: 0, or -EINVAL with the template and name in err. */
int template_check(json_t *tmpl, json_t *names, const char *name, char *err, size_t errlen);
/* Renders one template; returns a new reference or NULL with the reason in err. */
json_t *template_render(json_t *tmpl, json_t *values, const char *name, char *err, size_t errlen);

#endif
