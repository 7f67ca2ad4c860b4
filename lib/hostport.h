/* SPDX-License-Identifier: Apache-2.0 */
/* "host:port" and "[v6]:port" split into their parts, one way for every
 * flag and setting that names an address. */
#ifndef WEFT_HOSTPORT_H
#define WEFT_HOSTPORT_H
#include <stddef.h>

/* Copies the host (without brackets; may be empty, as in ":8444") and the
 * port digits. A bare IPv6 address needs brackets; the port is decimal
 * 0-65535. 0, or -EINVAL when s does not read so or a part does not fit. */
int hostport_split(const char *s, char *host, size_t hostlen, char *port, size_t portlen);

#endif
