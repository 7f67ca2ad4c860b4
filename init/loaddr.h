/* SPDX-License-Identifier: Apache-2.0 */
/* The IPv6 inbound passthrough source (lib/passthrough.h) as an address on
 * lo: weft-proxy binds it to hand inbound traffic to the app, and IPv6 has
 * no spare loopback addresses as 127.0.0.0/8 has. Added with the IPv6 rules,
 * removed by --cleanup, through rtnetlink (the init image has no ip(8)). */
#ifndef WEFT_INIT_LOADDR_H
#define WEFT_INIT_LOADDR_H
#include <stddef.h>

/* 1 when the address was added, 0 when it was already there, or -errno
 * with err filled. */
int loaddr_add(char *err, size_t errlen);
/* 1 when removed, 0 when it was not there, or -errno with err filled. */
int loaddr_del(char *err, size_t errlen);

#endif
