/* SPDX-License-Identifier: Apache-2.0 */
/* How weft-proxy reaches the app in its own pod: at the address a caller
 * from outside would use (the original destination, or the pod IP for
 * probes), from the passthrough source of lib/passthrough.h, which
 * weft-init's rules exempt from capture. Used by inbound sessions and by
 * /app-health. */
#ifndef WEFT_PROXY_HANDOFF_H
#define WEFT_PROXY_HANDOFF_H
#include <sys/socket.h>

/* Binds fd (AF_INET or AF_INET6, not yet connected) to the passthrough
 * source; the port is picked at connect. 0, or -1 (logged once per process:
 * without it the connection would be captured again, so there is no
 * fallback). */
int handoff_bind(int fd, int family);
/* Whether a is the passthrough source address. */
int handoff_is_source(const struct sockaddr_storage *a);

#endif
