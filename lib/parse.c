/* SPDX-License-Identifier: Apache-2.0 */
/* Pure, allocation-free parsers; fuzzed through fuzz/fuzz_lib_parse.c. */
#include "parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    if (!s || !*s)
        return -EINVAL;
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        if (v > (max - (unsigned long)(*p - '0')) / 10)
            return -EINVAL;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

int parse_port(const char *s, uint16_t *out)
{
    unsigned long v;
    if (parse_uint(s, 1, 65535, &v) < 0)
        return -EINVAL;
    *out = (uint16_t)v;
    return 0;
}

/* Calls item() for each trimmed comma-separated item of s. */
static int each_item(const char *s, int (*item)(const char *text, void *ctx), void *ctx)
{
    char buf[64];
    const char *p = s;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *a = p, *b = p + len;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (a == b || (size_t)(b - a) >= sizeof buf)
            return -EINVAL;
        memcpy(buf, a, (size_t)(b - a));
        buf[b - a] = '\0';
        int rc = item(buf, ctx);
        if (rc < 0)
            return rc;
        if (!end)
            break;
        p = end + 1;
        if (!*p)
            return -EINVAL; /* trailing comma */
    }
    return 0;
}

struct port_acc {
    uint16_t *ports;
    size_t n;
};

static int add_port(const char *text, void *ctx)
{
    struct port_acc *acc = ctx;
    if (acc->n >= PARSE_MAX_LIST)
        return -EINVAL;
    return parse_port(text, &acc->ports[acc->n++]);
}

int parse_port_list(const char *s, uint16_t *ports, size_t *count)
{
    struct port_acc acc = {ports, 0};
    int rc = each_item(s ? s : "", add_port, &acc);
    if (rc == 0)
        *count = acc.n;
    return rc;
}

int parse_cidr(const char *s, struct parse_cidr *out)
{
    char addr[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof addr)
        return -EINVAL;
    memcpy(addr, s, alen);
    addr[alen] = '\0';

    struct parse_cidr c = {0};
    if (inet_pton(AF_INET, addr, c.addr) == 1)
        c.family = AF_INET;
    else if (inet_pton(AF_INET6, addr, c.addr) == 1)
        c.family = AF_INET6;
    else
        return -EINVAL;
    unsigned long bits = c.family == AF_INET ? 32 : 128;
    unsigned long prefix = bits;
    if (slash && parse_uint(slash + 1, 0, bits, &prefix) < 0)
        return -EINVAL;
    c.prefix = (unsigned)prefix;
    for (unsigned i = c.prefix; i < bits; i++)
        if (c.addr[i / 8] & (0x80 >> (i % 8)))
            return -EINVAL;
    char canon[INET6_ADDRSTRLEN];
    inet_ntop(c.family, c.addr, canon, sizeof canon);
    snprintf(c.text, sizeof c.text, "%s/%u", canon, c.prefix);
    *out = c;
    return 0;
}

struct cidr_acc {
    struct parse_cidr *cidrs;
    size_t n;
};

static int add_cidr(const char *text, void *ctx)
{
    struct cidr_acc *acc = ctx;
    if (acc->n >= PARSE_MAX_LIST)
        return -EINVAL;
    return parse_cidr(text, &acc->cidrs[acc->n++]);
}

int parse_cidr_list(const char *s, struct parse_cidr *cidrs, size_t *count)
{
    struct cidr_acc acc = {cidrs, 0};
    int rc = each_item(s ? s : "", add_cidr, &acc);
    if (rc == 0)
        *count = acc.n;
    return rc;
}

int parse_cidr_contains(const struct parse_cidr *cidr, int family, const void *addr)
{
    if (cidr->family != family)
        return 0;
    const unsigned char *a = addr;
    unsigned full = cidr->prefix / 8, rest = cidr->prefix % 8;
    if (memcmp(a, cidr->addr, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (cidr->addr[full] & mask);
}

/* Kubernetes' quantity grammar: sign? digits (. digits)? suffix, where the
 * suffix is a binary SI (Ki..Ei), a decimal SI (n u m "" k M G T P E) or an
 * exponent (e|E sign? digits). Signs are refused: no resource is negative. */
int parse_k8s_quantity(const char *s)
{
    const char *p = s;
    size_t digits = 0;
    if (!p || !*p)
        return -EINVAL;
    while (isdigit((unsigned char)*p))
        p++, digits++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p))
            p++, digits++;
    }
    if (digits == 0)
        return -EINVAL;
    static const char *const suffixes[] = {"", "n", "u", "m", "k", "M", "G", "T", "P", "E",
                                           "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
        if (strcmp(p, suffixes[i]) == 0)
            return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!*p)
            return -EINVAL;
        while (isdigit((unsigned char)*p))
            p++;
        return *p ? -EINVAL : 0;
    }
    return -EINVAL;
}

int parse_bool(const char *s, int *out)
{
    if (strcmp(s, "true") == 0)
        *out = 1;
    else if (strcmp(s, "false") == 0)
        *out = 0;
    else
        return -EINVAL;
    return 0;
}
