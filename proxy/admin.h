/* SPDX-License-Identifier: Apache-2.0 */
/* The admin server on :15020 (its own thread, blocking I/O, one short-lived
 * thread per request so a slow app probe never delays another): /live,
 * /ready, /metrics, /app-health/<container>/<kind>, POST /shutdown from
 * loopback. It also drives the periodic certificate-file reload. */
#ifndef WEFT_PROXY_ADMIN_H
#define WEFT_PROXY_ADMIN_H
#include <stddef.h>

#include "proxy.h"

#define ADMIN_MAX_REQUEST 8192 /* request head bytes (lib/http1): more is 431, a longer request line 414 */
#define ADMIN_MAX_FIELDS 64    /* request header fields: more is 431 */
#define ADMIN_MAX_INFLIGHT 32

struct admin;
/* Binds the port now (errors name it), serves from a new thread. */
struct admin *admin_start(struct proxy *px, char *err, size_t errlen);
void admin_stop(struct admin *a);

/* Pure routing, for tests: fills status, content type and body. */
struct admin_response {
    int status;
    const char *type;
    struct buf body;
    int shutdown; /* the caller should start the drain after answering */
};
void admin_route(struct proxy *px, const char *method, const char *path, int from_loopback,
                 struct admin_response *res);

#endif
