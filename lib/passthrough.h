/* SPDX-License-Identifier: Apache-2.0 */
/* The source address weft-proxy hands inbound traffic to the app from, at
 * the connection's original destination (the pod IP, as without a mesh), and
 * that weft-init's rules let pass uncaptured. A loopback address nothing else
 * uses, so an app bound only to 127.0.0.1 stays unreachable from other pods,
 * as in plain Kubernetes (Istio made the same change in 1.10 with the same
 * address). IPv6 has a single loopback address, so weft-init adds ::6/128 to
 * lo. */
#ifndef WEFT_PASSTHROUGH_H
#define WEFT_PASSTHROUGH_H

#define PASSTHROUGH_SOURCE_V4 "127.0.0.6"
#define PASSTHROUGH_SOURCE_V6 "::6"

#endif
