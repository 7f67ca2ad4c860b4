/* SPDX-License-Identifier: Apache-2.0 */
/* `weft-discovery serve`: the long-running shell around the store, its
 * source (the API server, or a directory of manifests) and the proxy-facing
 * server, with /metrics, /healthz and /readyz on a plain HTTP port. */
#ifndef WEFT_DISCOVERY_SERVE_H
#define WEFT_DISCOVERY_SERVE_H

/* argv[0] is "serve". Returns the exit code. */
int serve_main(int argc, char **argv);

#endif
