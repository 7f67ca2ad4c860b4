/* SPDX-License-Identifier: Apache-2.0 */
/* Strict parsers for the small values Weft takes from flags, annotations and
 * the environment: numbers, ports, port lists, CIDRs. Each returns 0 or
 * -EINVAL and never accepts trailing garbage, signs or empty items. */
#ifndef WEFT_PARSE_H
#define WEFT_PARSE_H
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define PARSE_MAX_LIST 64 /* items in one port or CIDR list */

struct parse_cidr {
    int family;        /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;
    char text[64];     /* canonical "addr/prefix" */
};

/* Decimal, no sign, no leading '+', value in [min, max]. */
int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);
/* 1..65535 */
int parse_port(const char *s, uint16_t *out);
/* "80,443, 8080": comma list, blanks around items allowed, empty string is an
 * empty list, "*" is not a port. Writes at most PARSE_MAX_LIST ports. */
int parse_port_list(const char *s, uint16_t *ports, size_t *count);
/* "10.0.0.0/8" or "fd00::/8"; a bare address means /32 or /128. Host bits
 * must be zero. */
int parse_cidr(const char *s, struct parse_cidr *out);
int parse_cidr_list(const char *s, struct parse_cidr *cidrs, size_t *count);
/* Whether addr (family-sized bytes) falls inside cidr. */
int parse_cidr_contains(const struct parse_cidr *cidr, int family, const void *addr);
/* Kubernetes quantities: CPU ("100m", "0.5", "2") and memory ("64Mi", "1G",
 * "128974848"). Only checks the syntax Kubernetes accepts. */
int parse_k8s_quantity(const char *s);
/* "true"/"false" */
int parse_bool(const char *s, int *out);

#endif
