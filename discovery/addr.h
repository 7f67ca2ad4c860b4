/* SPDX-License-Identifier: Apache-2.0 */
/* Addresses as discovery keeps and compares them: one canonical text per IP
 * (inet_ntop's), so "fd00:0::1" in an EndpointSlice and "fd00::1" in a
 * question are the same endpoint, and "IP:port" / "[IPv6]:port" questions. */
#ifndef WEFT_DISCOVERY_ADDR_H
#define WEFT_DISCOVERY_ADDR_H
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define ADDR_MAX_TEXT INET6_ADDRSTRLEN    /* canonical IP text, with its NUL */
#define ADDR_MAX_DEST (INET6_ADDRSTRLEN + 8) /* "[IPv6]:65535" */

struct addr_dest {
    int family;                /* AF_INET or AF_INET6 */
    char ip[ADDR_MAX_TEXT];    /* canonical */
    uint16_t port;
};

/* An IPv4 or IPv6 address (no port, no brackets, no zone) to its canonical
 * text: 0 with out and *family set, or -EINVAL. */
int addr_canon_ip(const char *in, char out[ADDR_MAX_TEXT], int *family);
/* "10.96.0.10:80" or "[fd00::a]:80": 0 or -EINVAL. */
int addr_parse_dest(const char *s, struct addr_dest *out);
/* The address family of canonical text (AF_INET6 when it has a ':'). */
int addr_family(const char *canon);
/* Orders canonical addresses numerically, IPv4 before IPv6 (for sorted output). */
int addr_compare(const char *a, const char *b);

#endif
