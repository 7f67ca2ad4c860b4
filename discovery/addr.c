/* SPDX-License-Identifier: Apache-2.0 */
/* See addr.h. */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "parse.h"

int addr_canon_ip(const char *in, char out[ADDR_MAX_TEXT], int *family)
{
    unsigned char bytes[16];
    int fam = strchr(in, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(fam, in, bytes) != 1 || !inet_ntop(fam, bytes, out, ADDR_MAX_TEXT))
        return -EINVAL;
    *family = fam;
    return 0;
}

int addr_parse_dest(const char *s, struct addr_dest *out)
{
    char host[ADDR_MAX_TEXT];
    const char *port;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        hlen = (size_t)(close - s - 1);
        memcpy(host, s + 1, hlen < sizeof host ? hlen : 0);
        port = close + 2;
        if (!memchr(s + 1, ':', hlen))
            return -EINVAL; /* brackets are for IPv6 only */
    } else {
        const char *colon = strchr(s, ':');
        if (!colon || strchr(colon + 1, ':'))
            return -EINVAL; /* IPv6 must be bracketed */
        hlen = (size_t)(colon - s);
        memcpy(host, s, hlen < sizeof host ? hlen : 0);
        port = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof host)
        return -EINVAL;
    host[hlen] = '\0';
    if (addr_canon_ip(host, out->ip, &out->family) < 0 || parse_port(port, &out->port) < 0)
        return -EINVAL;
    return 0;
}

int addr_family(const char *canon)
{
    return strchr(canon, ':') ? AF_INET6 : AF_INET;
}

int addr_compare(const char *a, const char *b)
{
    unsigned char x[16] = {0}, y[16] = {0};
    int fa = addr_family(a), fb = addr_family(b);
    if (fa != fb)
        return fa == AF_INET ? -1 : 1;
    if (inet_pton(fa, a, x) != 1 || inet_pton(fb, b, y) != 1)
        return strcmp(a, b);
    return memcmp(x, y, fa == AF_INET ? 4 : 16);
}
