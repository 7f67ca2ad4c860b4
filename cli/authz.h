/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl authz why`'s decision, pure: a snapshot (the caller NS/SA, the
 * Service and port, the pods behind it, both namespaces, mesh.yaml) in, an
 * explanation out. Nothing is decided here: the values come from
 * lib/settings (merged as weft-webhook merges them into the proxy's
 * environment) and the verdict from the proxy's own authz_check()
 * (proxy/authz.c); this file says which of them applied and why. */
#ifndef WEFT_CLI_AUTHZ_H
#define WEFT_CLI_AUTHZ_H
#include <jansson.h>

#include "buf.h"

#define AUTHZ_WHY_MAX_PODS 10 /* pods explained one by one; the rest counted */
/* --method: above the longest registered method (UPDATEREDIRECTREF, 17). */
#define AUTHZ_MAX_METHOD 32
/* --path: the request-line length RFC 9112 3 asks every recipient to support. */
#define AUTHZ_MAX_PATH 8000

/* Writes the explanation to out. Returns 0 when every pod behind the port
 * admits the caller, 1 when one refuses it, or -1 when the snapshot cannot
 * be judged (no such port, no mesh.yaml, an annotation that does not parse)
 * with err saying why. */
int authz_why(const json_t *snapshot, struct buf *out, char *err, size_t errlen);

#endif
