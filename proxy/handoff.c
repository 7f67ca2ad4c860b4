/* SPDX-License-Identifier: Apache-2.0 */
#include "handoff.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>

#include "log.h"
#include "passthrough.h"

int handoff_is_source(const struct sockaddr_storage *a)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (a->ss_family == AF_INET)
        return inet_pton(AF_INET, PASSTHROUGH_SOURCE_V4, &v4) == 1 &&
               ((const struct sockaddr_in *)a)->sin_addr.s_addr == v4.s_addr;
    return a->ss_family == AF_INET6 && inet_pton(AF_INET6, PASSTHROUGH_SOURCE_V6, &v6) == 1 &&
           memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &v6, sizeof v6) == 0;
}

int handoff_bind(int fd, int family)
{
    static atomic_int warned;
    int one = 1;
    struct sockaddr_storage src = {.ss_family = (sa_family_t)family};
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (family == AF_INET)
        inet_pton(AF_INET, PASSTHROUGH_SOURCE_V4, &((struct sockaddr_in *)&src)->sin_addr);
    else
        inet_pton(AF_INET6, PASSTHROUGH_SOURCE_V6, &((struct sockaddr_in6 *)&src)->sin6_addr);
    /* Ports are then chosen per destination, not reserved at bind. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, len) == 0)
        return 0;
    if (!atomic_exchange(&warned, 1))
        log_error("cannot bind the inbound passthrough source", "address=%s error=\"%s\"",
                  family == AF_INET ? PASSTHROUGH_SOURCE_V4 : PASSTHROUGH_SOURCE_V6 " (weft-init adds it to lo)",
                  strerror(errno));
    return -1;
}
