/* SPDX-License-Identifier: Apache-2.0 */
/* The injection settings: one table of every value the templates use, where
 * each comes from in mesh.yaml, which `weft.dev/<key>` annotation may override
 * it, and how it is checked. Values merge mesh config < namespace
 * annotations < pod annotations; a value that does not parse is an error that
 * names the key, the value and where it was found. Pure: no I/O. In lib/
 * because weft-webhook (injection) and weft-discovery (a pod's inbound policy
 * in force) must merge them the same way. */
#ifndef WEFT_SETTINGS_H
#define WEFT_SETTINGS_H
#include <jansson.h>
#include <stddef.h>

#define SETTINGS_ANNOTATION_PREFIX "weft.dev/"
/* Written by weft-webhook on the pods it injects (JSON: what was injected,
 * the template version); weft-discovery counts a pod with it as meshed. */
#define SETTINGS_STATUS_ANNOTATION SETTINGS_ANNOTATION_PREFIX "status"
/* Ports of a pod or Service whose traffic is never inspected (read by weft-discovery). */
#define SETTINGS_OPAQUE_PORTS_ANNOTATION SETTINGS_ANNOTATION_PREFIX "opaque-ports"

/* Builds the base values (value name -> JSON) from a parsed mesh.yaml
 * document. Returns a new object, or NULL with "mesh.yaml: <path>: ..." in err. */
json_t *settings_from_mesh(json_t *mesh, char *err, size_t errlen);
/* Returns a new object: base overridden by the weft.dev/ annotations of the
 * namespace, then of the pod (either may be NULL). NULL with the message in
 * err when an annotation does not parse or is not a known setting. */
json_t *settings_resolve(json_t *base, json_t *ns_annotations, const char *ns_name, json_t *pod_annotations,
                         char *err, size_t errlen);

#endif
