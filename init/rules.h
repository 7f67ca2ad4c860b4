/* SPDX-License-Identifier: Apache-2.0 */
/* The pure core of weft-init: config (+ what iptables-save shows today) →
 * the exact iptables-restore input for one address family. Nothing here
 * execs or reads files; main.c does that around these functions.
 *
 * Idempotence works like this: every WEFT_* chain is declared in the restore
 * input (`:WEFT_INBOUND - [0:0]`), which under --noflush flushes and refills
 * it, and the only rules weft-init puts into chains it does not own — the
 * jumps from PREROUTING and OUTPUT — are added only when `iptables-save -t
 * nat` (read just before) does not already show exactly them. Stray or
 * duplicate jumps into WEFT_* are deleted in the same restore, so one
 * transaction per family takes any earlier state to the same final rules. */
#ifndef WEFT_INIT_RULES_H
#define WEFT_INIT_RULES_H
#include <stddef.h>

#include "buf.h"
#include "flags.h"

#define RULES_MAX_JUMPS 16   /* jumps into WEFT_* chains we accept finding */
#define RULES_MAX_SPEC 1024  /* bytes of one such rule's text in iptables-save */
#define RULES_MAX_TEXT (256 * 1024) /* bound of a generated restore input */

/* WEFT_* chains, as bits of rules_state.chains. */
enum rules_chain {
    RULES_CHAIN_INBOUND = 1 << 0,     /* WEFT_INBOUND */
    RULES_CHAIN_IN_REDIRECT = 1 << 1, /* WEFT_IN_REDIRECT */
    RULES_CHAIN_OUTPUT = 1 << 2,      /* WEFT_OUTPUT */
    RULES_CHAIN_REDIRECT = 1 << 3,    /* WEFT_REDIRECT */
};

struct rules_jump {
    char chain[32];              /* the chain holding the rule, e.g. PREROUTING */
    char spec[RULES_MAX_SPEC];   /* the rule after "-A <chain> ", verbatim */
};

/* What one family's nat table holds of ours, from iptables-save. */
struct rules_state {
    unsigned chains;             /* enum rules_chain bits present */
    size_t njumps;
    struct rules_jump jumps[RULES_MAX_JUMPS]; /* rules in other chains targeting WEFT_* */
    size_t nrules;               /* every -A line of the nat table (any chain) */
};

/* Reads iptables-save output (any tables; only *nat is looked at) into st.
 * 0, or -E2BIG when more than RULES_MAX_JUMPS jumps or a longer rule is met,
 * or -EINVAL for text that is not iptables-save output. */
int rules_scan_save(const char *text, struct rules_state *st);
/* Whether iptables-save output of any table holds at least one rule. */
int rules_save_has_rules(const char *text);

/* Appends the restore input that installs the capture rules for family
 * (AF_INET or AF_INET6) given the current state st (NULL: a namespace
 * without any WEFT rules). 0 or -E2BIG. */
int rules_build_apply(const struct init_config *cfg, int family, const struct rules_state *st,
                      struct buf *out);
/* Appends the restore input that removes every WEFT_* chain in st and every
 * jump into them, and nothing else. Sets *changes to how many lines it
 * wrote that change something (0: nothing of ours is there). */
int rules_build_cleanup(const struct rules_state *st, struct buf *out, size_t *changes);
/* Whether /proc/net/if_inet6 text shows an IPv6 address outside loopback
 * that is not link-local (the pod has IPv6 to capture). */
int rules_ipv6_in_use(const char *if_inet6);

#endif
