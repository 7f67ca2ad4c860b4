/* SPDX-License-Identifier: Apache-2.0 */
/* See hostport.h. */
#include "hostport.h"

#include <errno.h>
#include <string.h>

int hostport_split(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *h = s, *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -EINVAL; /* a bare IPv6 address needs brackets */
        hl = (size_t)(colon - s);
    }
    size_t pl = strlen(colon + 1);
    if (hl >= hostlen || pl == 0 || pl >= portlen)
        return -EINVAL;
    unsigned long v = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 65535)
            return -EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl + 1);
    return 0;
}
