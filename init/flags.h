/* SPDX-License-Identifier: Apache-2.0 */
/* weft-init's command line: the flags the webhook stamps into the init
 * container, parsed strictly into a struct init_config. Pure: no I/O, so the
 * same code is unit-tested, golden-tested and fuzzed (fuzz/fuzz_init_flags.c). */
#ifndef WEFT_INIT_FLAGS_H
#define WEFT_INIT_FLAGS_H
#include <stddef.h>
#include <stdint.h>

#include "parse.h"

#define FLAGS_ADMIN_PORT 15020 /* proxy admin port: never captured inbound */
#define FLAGS_MAX_PORTS (PARSE_MAX_LIST + 1) /* a list plus the admin port */

enum flags_ipv6 { FLAGS_IPV6_AUTO, FLAGS_IPV6_TRUE, FLAGS_IPV6_FALSE };
enum flags_mode { FLAGS_MODE_AUTO, FLAGS_MODE_NFT, FLAGS_MODE_LEGACY };

struct init_config {
    unsigned long proxy_uid;  /* traffic of this uid is never captured outbound */
    unsigned long proxy_gid;  /* nor of this gid */
    uint16_t inbound_port;    /* captured inbound TCP lands here */
    uint16_t outbound_port;   /* captured outbound TCP lands here */
    uint16_t skip_in[FLAGS_MAX_PORTS]; /* deduplicated, admin port first */
    size_t nskip_in;
    uint16_t skip_out[PARSE_MAX_LIST]; /* deduplicated, in flag order */
    size_t nskip_out;
    struct parse_cidr skip_cidrs[PARSE_MAX_LIST]; /* both families, deduplicated */
    size_t nskip_cidrs;
    enum flags_ipv6 ipv6;
    enum flags_mode mode;
    int dry_run;              /* print the restore input, change nothing */
    int cleanup;              /* remove what weft-init added */
    int help;
};

/* Fills cfg with the design's defaults, then applies argv. Returns 0, or
 * -EINVAL with a one-line message in err naming the flag and the value.
 * Uses getopt_long, so it resets getopt's globals (optind) first. */
int flags_parse(int argc, char *const argv[], struct init_config *cfg, char *err, size_t errlen);
/* The --help text. */
const char *flags_usage(void);
const char *flags_ipv6_name(enum flags_ipv6 v);
const char *flags_mode_name(enum flags_mode m);

#endif
