/* SPDX-License-Identifier: Apache-2.0 */
/* Builds weft-init's iptables-restore input from a config and from what
 * iptables-save shows, and reads the two bits of system text the I/O shell
 * hands in (/proc/net/if_inet6, iptables-save). See rules.h for how one
 * restore per family stays idempotent. */
#include "rules.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "passthrough.h"

static const struct {
    enum rules_chain bit;
    const char *name;
} chains[] = {
    {RULES_CHAIN_INBOUND, "WEFT_INBOUND"},
    {RULES_CHAIN_IN_REDIRECT, "WEFT_IN_REDIRECT"},
    {RULES_CHAIN_OUTPUT, "WEFT_OUTPUT"},
    {RULES_CHAIN_REDIRECT, "WEFT_REDIRECT"},
};
#define NCHAINS (sizeof chains / sizeof *chains)

/* The two rules weft-init adds to chains it does not own. */
static const struct {
    const char *chain;
    const char *spec;
} hooks[] = {
    {"PREROUTING", "-p tcp -j WEFT_INBOUND"},
    {"OUTPUT", "-p tcp -j WEFT_OUTPUT"},
};
#define NHOOKS (sizeof hooks / sizeof *hooks)

static unsigned chain_bit(const char *name, size_t len)
{
    for (size_t i = 0; i < NCHAINS; i++)
        if (strlen(chains[i].name) == len && memcmp(chains[i].name, name, len) == 0)
            return chains[i].bit;
    return 0;
}

/* The target after the last " -j " of a rule, as [*t, *t + *tlen). */
static int rule_target(const char *spec, size_t len, const char **t, size_t *tlen)
{
    const char *found = NULL;
    for (const char *p = spec; p + 4 <= spec + len; p++)
        if (memcmp(p, "-j ", 3) == 0 && (p == spec || p[-1] == ' '))
            found = p + 3;
    if (!found)
        return -1;
    const char *e = found;
    while (e < spec + len && *e != ' ')
        e++;
    *t = found;
    *tlen = (size_t)(e - found);
    return 0;
}

int rules_scan_save(const char *text, struct rules_state *st)
{
    int in_nat = 0, rc = 0;
    memset(st, 0, sizeof *st);
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *next = nl ? nl + 1 : NULL;
        if (len && line[len - 1] == '\r')
            len--;
        if (len == 0 || line[0] == '#') {
            /* comment or blank */
        } else if (line[0] == '*') {
            in_nat = len == 4 && memcmp(line, "*nat", 4) == 0;
        } else if (len == 6 && memcmp(line, "COMMIT", 6) == 0) {
            in_nat = 0;
        } else if (!in_nat) {
            /* another table */
        } else if (line[0] == ':') {
            const char *sp = memchr(line, ' ', len);
            st->chains |= chain_bit(line + 1, sp ? (size_t)(sp - line - 1) : len - 1);
        } else if (len > 3 && memcmp(line, "-A ", 3) == 0) {
            const char *name = line + 3;
            const char *sp = memchr(name, ' ', len - 3);
            if (!sp) {
                rc = -EINVAL;
                goto out;
            }
            size_t nlen = (size_t)(sp - name);
            const char *spec = sp + 1;
            size_t slen = len - (size_t)(spec - line);
            const char *t;
            size_t tlen;
            st->nrules++;
            if (chain_bit(name, nlen) || rule_target(spec, slen, &t, &tlen) < 0 || !chain_bit(t, tlen))
                goto next;
            if (st->njumps == RULES_MAX_JUMPS || nlen >= sizeof st->jumps[0].chain ||
                slen >= sizeof st->jumps[0].spec) {
                rc = -E2BIG;
                goto out;
            }
            struct rules_jump *j = &st->jumps[st->njumps++];
            memcpy(j->chain, name, nlen);
            j->chain[nlen] = '\0';
            memcpy(j->spec, spec, slen);
            j->spec[slen] = '\0';
        } else {
            rc = -EINVAL;
            goto out;
        }
    next:
        line = next;
    }
out:
    return rc;
}

int rules_save_has_rules(const char *text)
{
    for (const char *p = text; p && *p;) {
        if (strncmp(p, "-A ", 3) == 0)
            return 1;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return 0;
}

int rules_ipv6_in_use(const char *if_inet6)
{
    /* Lines: "<32 hex addr> <ifindex> <prefixlen> <scope> <flags> <name>";
     * scope 00 is global (includes ULA), 20 link, 10 host. */
    for (const char *p = if_inet6; p && *p;) {
        char addr[33], name[32];
        unsigned idx, plen, scope, fl;
        if (sscanf(p, "%32s %x %x %x %x %31s", addr, &idx, &plen, &scope, &fl, name) == 6 &&
            strcmp(name, "lo") != 0 && (scope & 0xf0) != 0x20 && (scope & 0xf0) != 0x10)
            return 1;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return 0;
}

/* buf_appendf that remembers the first error, so the builder reads as a list
 * of rules instead of a ladder of checks. */
struct out {
    struct buf *b;
    int rc;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct out *o, const char *fmt, ...)
{
    if (o->rc < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    o->rc = buf_vappendf(o->b, fmt, ap);
    va_end(ap);
}

/* Which of st's jumps stay: the first copy of each canonical hook jump.
 * keep[i] for st->jumps[i]; have[h] whether hooks[h] is among them. */
static void jumps_plan(const struct rules_state *st, int keep[RULES_MAX_JUMPS], int have[NHOOKS])
{
    memset(have, 0, NHOOKS * sizeof *have);
    for (size_t i = 0; st && i < st->njumps; i++) {
        keep[i] = 0;
        for (size_t h = 0; h < NHOOKS; h++) {
            if (!have[h] && strcmp(st->jumps[i].chain, hooks[h].chain) == 0 &&
                strcmp(st->jumps[i].spec, hooks[h].spec) == 0) {
                have[h] = 1;
                keep[i] = 1;
            }
        }
    }
}

int rules_build_apply(const struct init_config *cfg, int family, const struct rules_state *st,
                      struct buf *b)
{
    struct out o = {b, 0};
    const int v6 = family == AF_INET6;
    const char *loopback = v6 ? "::1/128" : "127.0.0.0/8";
    int keep[RULES_MAX_JUMPS], have[NHOOKS];

    emit(&o, "*nat\n");
    for (size_t i = 0; i < NCHAINS; i++)
        emit(&o, ":%s - [0:0]\n", chains[i].name);

    /* Inbound: every TCP port but the skipped ones goes to the inbound port. */
    for (size_t i = 0; i < cfg->nskip_in; i++)
        emit(&o, "-A WEFT_INBOUND -p tcp --dport %u -j RETURN\n", cfg->skip_in[i]);
    emit(&o, "-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT\n");
    emit(&o, "-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports %u\n", cfg->inbound_port);

    /* Outbound, first match wins:
     * 0. the proxy handing inbound traffic to the app from the passthrough
     *    source (lib/passthrough.h) is left alone, or it would loop;
     * 1. the proxy dialling a local non-loopback address (its own pod IP, as
     *    when the app calls its own Service) goes through WEFT_INBOUND, so it
     *    meets inbound policy and skipped inbound ports stay skipped;
     * 2. anything else of the proxy's uid or gid is left alone (no loops);
     * 3. app-to-app over loopback is left alone;
     * 4. skipped ports and CIDRs are left alone; the rest is redirected. */
    emit(&o, "-A WEFT_OUTPUT -s %s -o lo -j RETURN\n", v6 ? PASSTHROUGH_SOURCE_V6 "/128" : PASSTHROUGH_SOURCE_V4 "/32");
    emit(&o, "-A WEFT_OUTPUT -o lo ! -d %s -m owner --uid-owner %lu -j WEFT_INBOUND\n", loopback,
         cfg->proxy_uid);
    emit(&o, "-A WEFT_OUTPUT -o lo ! -d %s -m owner --gid-owner %lu -j WEFT_INBOUND\n", loopback,
         cfg->proxy_gid);
    emit(&o, "-A WEFT_OUTPUT -m owner --uid-owner %lu -j RETURN\n", cfg->proxy_uid);
    emit(&o, "-A WEFT_OUTPUT -m owner --gid-owner %lu -j RETURN\n", cfg->proxy_gid);
    emit(&o, "-A WEFT_OUTPUT -o lo -j RETURN\n");
    for (size_t i = 0; i < cfg->nskip_out; i++)
        emit(&o, "-A WEFT_OUTPUT -p tcp --dport %u -j RETURN\n", cfg->skip_out[i]);
    for (size_t i = 0; i < cfg->nskip_cidrs; i++)
        if (cfg->skip_cidrs[i].family == family)
            emit(&o, "-A WEFT_OUTPUT -d %s -j RETURN\n", cfg->skip_cidrs[i].text);
    emit(&o, "-A WEFT_OUTPUT -p tcp -j WEFT_REDIRECT\n");
    emit(&o, "-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports %u\n", cfg->outbound_port);

    /* Jumps from the built-in chains: drop strays and duplicates, add what
     * is missing, leave an existing correct jump where it is. */
    jumps_plan(st, keep, have);
    for (size_t i = 0; st && i < st->njumps; i++)
        if (!keep[i])
            emit(&o, "-D %s %s\n", st->jumps[i].chain, st->jumps[i].spec);
    for (size_t h = 0; h < NHOOKS; h++)
        if (!have[h])
            emit(&o, "-A %s %s\n", hooks[h].chain, hooks[h].spec);
    emit(&o, "COMMIT\n");
    return o.rc;
}

int rules_build_cleanup(const struct rules_state *st, struct buf *b, size_t *changes)
{
    struct out o = {b, 0};
    size_t n = 0;
    emit(&o, "*nat\n");
    for (size_t i = 0; i < st->njumps; i++, n++)
        emit(&o, "-D %s %s\n", st->jumps[i].chain, st->jumps[i].spec);
    /* Flush all first: the chains jump to each other, and a chain still
     * referenced cannot be deleted. */
    for (size_t i = 0; i < NCHAINS; i++)
        if (st->chains & chains[i].bit)
            emit(&o, "-F %s\n", chains[i].name), n++;
    for (size_t i = 0; i < NCHAINS; i++)
        if (st->chains & chains[i].bit)
            emit(&o, "-X %s\n", chains[i].name), n++;
    emit(&o, "COMMIT\n");
    *changes = n;
    return o.rc;
}
