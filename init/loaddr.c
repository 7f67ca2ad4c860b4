/* SPDX-License-Identifier: Apache-2.0 */
#include "loaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errbuf.h"
#include "passthrough.h"

/* One RTM_NEWADDR or RTM_DELADDR for PASSTHROUGH_SOURCE_V6/128 on lo and its
 * acknowledgement: 0 or the kernel's -errno. */
static int loaddr_request(int type, int flags, char *err, size_t errlen)
{
    struct {
        struct nlmsghdr nh;
        struct ifaddrmsg ifa;
        char attrs[2 * RTA_SPACE(16)];
    } req;
    memset(&req, 0, sizeof req);
    unsigned lo = if_nametoindex("lo");
    if (!lo) {
        errbuf_set(err, errlen, "no lo interface: %s", strerror(errno));
        return -ENODEV;
    }
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof req.ifa);
    req.nh.nlmsg_type = (unsigned short)type;
    req.nh.nlmsg_flags = (unsigned short)(NLM_F_REQUEST | NLM_F_ACK | flags);
    req.nh.nlmsg_seq = 1;
    req.ifa.ifa_family = AF_INET6;
    req.ifa.ifa_prefixlen = 128;
    req.ifa.ifa_flags = IFA_F_NODAD;
    req.ifa.ifa_scope = RT_SCOPE_HOST;
    req.ifa.ifa_index = lo;
    struct in6_addr addr;
    inet_pton(AF_INET6, PASSTHROUGH_SOURCE_V6, &addr);
    for (int attr = IFA_LOCAL; attr >= IFA_ADDRESS; attr--) {
        struct rtattr *rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
        rta->rta_type = (unsigned short)attr;
        rta->rta_len = RTA_LENGTH(sizeof addr);
        memcpy(RTA_DATA(rta), &addr, sizeof addr);
        req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
    }

    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) {
        int e = errno;
        errbuf_set(err, errlen, "netlink socket: %s", strerror(e));
        return -e;
    }
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int rc = -EPROTO;
    union {
        struct nlmsghdr nh;
        char bytes[4096];
    } ans;
    if (sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        rc = -errno;
        errbuf_set(err, errlen, "netlink send: %s", strerror(-rc));
    } else {
        ssize_t n = recv(fd, &ans, sizeof ans, 0);
        if (n < 0) {
            rc = -errno;
            errbuf_set(err, errlen, "netlink answer: %s", strerror(-rc));
        } else if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && ans.nh.nlmsg_type == NLMSG_ERROR) {
            rc = ((struct nlmsgerr *)NLMSG_DATA(&ans.nh))->error;
            if (rc < 0)
                errbuf_set(err, errlen, "%s %s/128 on lo: %s", type == RTM_NEWADDR ? "adding" : "removing",
                           PASSTHROUGH_SOURCE_V6, strerror(-rc));
        } else {
            errbuf_set(err, errlen, "netlink: unexpected answer");
        }
    }
    close(fd);
    return rc;
}

int loaddr_add(char *err, size_t errlen)
{
    int rc = loaddr_request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, err, errlen);
    return rc == 0 ? 1 : rc == -EEXIST ? 0 : rc;
}

int loaddr_del(char *err, size_t errlen)
{
    int rc = loaddr_request(RTM_DELADDR, 0, err, errlen);
    return rc == 0 ? 1 : rc == -EADDRNOTAVAIL ? 0 : rc;
}
