/* SPDX-License-Identifier: Apache-2.0 */
/* weft-init: the I/O shell around init/rules.c. Parses flags, looks at the
 * pod (IPv6, iptables backend, current nat rules via iptables-save), builds
 * every family's restore input first, then applies one `iptables-restore
 * --noflush` per family; if a later family fails, the earlier ones are put
 * back to what iptables-save showed before. Exit 0 done, 1 failed, 2 bad
 * flags (nothing done). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "flags.h"
#include "loaddr.h"
#include "log.h"
#include "passthrough.h"
#include "rules.h"
#include "run.h"

#define CMD_TIMEOUT_MS 30000
#define SAVE_MAX (4 * 1024 * 1024) /* bytes of iptables-save output we accept */
#define STDERR_MAX 8192

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct family {
    int af;
    const char *name;        /* ipv4 | ipv6 */
    char save[64];           /* e.g. iptables-nft-save */
    char restore[64];        /* e.g. iptables-nft-restore */
    struct buf before;       /* iptables-save -t nat output before we changed anything */
    struct rules_state state;
    struct buf text;         /* the restore input we apply */
    size_t changes;          /* cleanup: lines that change something */
    int applied;
};

/* Escapes s for a logfmt quoted value: newlines become " | ", quotes \". */
static const char *logfmt_quote(const char *s, char *dst, size_t dstlen)
{
    size_t j = 0;
    for (; s && *s && j + 4 < dstlen; s++) {
        if (*s == '\n') {
            if (s[1])
                dst[j++] = ' ', dst[j++] = '|', dst[j++] = ' ';
        } else if (*s == '"' || *s == '\\') {
            dst[j++] = '\\', dst[j++] = *s;
        } else if ((unsigned char)*s >= 0x20) {
            dst[j++] = *s;
        }
    }
    dst[j] = '\0';
    return dst;
}

/* Whether this network namespace has an IPv6 stack at all, and whether the
 * pod uses it (an address beyond loopback and link-local). */
static void ipv6_probe(int *stack, int *in_use)
{
    struct buf b, d;
    buf_init(&b, 1 << 20);
    buf_init(&d, 64);
    *stack = buf_read_file(&b, "/proc/net/if_inet6") == 0;
    if (*stack && buf_read_file(&d, "/proc/sys/net/ipv6/conf/all/disable_ipv6") == 0 &&
        buf_cstr(&d)[0] == '1')
        *stack = 0;
    *in_use = *stack && rules_ipv6_in_use(buf_cstr(&b));
    buf_free(&b);
    buf_free(&d);
}

/* Whether the legacy (x_tables) backend holds any rule in this namespace.
 * /proc/net/ip{,6}_tables_names lists loaded legacy tables; only when one is
 * loaded is iptables-legacy-save worth running. */
static int legacy_has_rules(void)
{
    static const char *const names[] = {"/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"};
    static const char *const saves[] = {"iptables-legacy-save", "ip6tables-legacy-save"};
    int found = 0;
    for (size_t i = 0; i < 2 && !found; i++) {
        struct buf t, out;
        buf_init(&t, 4096);
        buf_init(&out, SAVE_MAX);
        if (buf_read_file(&t, names[i]) == 0 && t.len > 0 && run_in_path(saves[i])) {
            char *argv[] = {(char *)saves[i], NULL};
            if (run_command(argv, NULL, 0, &out, NULL, CMD_TIMEOUT_MS) == 0)
                found = rules_save_has_rules(buf_cstr(&out));
        }
        buf_free(&t);
        buf_free(&out);
    }
    return found;
}

/* Picks the save/restore programs of every family; 0 or -ENOENT. */
static int backend_pick(const struct init_config *cfg, struct family *fams, size_t n)
{
    const char *variant;
    const char *why;
    if (cfg->mode == FLAGS_MODE_LEGACY) {
        variant = "-legacy", why = "--mode legacy";
    } else if (cfg->mode == FLAGS_MODE_NFT) {
        variant = "-nft", why = "--mode nft";
    } else if (legacy_has_rules()) {
        variant = "-legacy", why = "legacy tables hold rules";
    } else {
        variant = "-nft", why = "no rules in legacy tables";
    }
    for (size_t i = 0; i < n; i++) {
        const char *base = fams[i].af == AF_INET6 ? "ip6tables" : "iptables";
        snprintf(fams[i].save, sizeof fams[i].save, "%s%s-save", base, variant);
        snprintf(fams[i].restore, sizeof fams[i].restore, "%s%s-restore", base, variant);
        if (!run_in_path(fams[i].restore) && cfg->mode == FLAGS_MODE_AUTO) {
            /* A distribution that ships only the default names. */
            snprintf(fams[i].save, sizeof fams[i].save, "%s-save", base);
            snprintf(fams[i].restore, sizeof fams[i].restore, "%s-restore", base);
        }
        if (!run_in_path(fams[i].restore) || !run_in_path(fams[i].save)) {
            log_error("iptables not found", "family=%s need=\"%s %s\" mode=%s", fams[i].name,
                      fams[i].save, fams[i].restore, flags_mode_name(cfg->mode));
            return -ENOENT;
        }
    }
    log_info("backend selected", "backend=%s reason=\"%s\" restore=%s", variant + 1, why,
             n ? fams[0].restore : "-");
    return 0;
}

static int family_save(struct family *f)
{
    char *argv[] = {f->save, "-t", "nat", NULL};
    struct buf err;
    char q[1024];
    buf_init(&err, STDERR_MAX);
    int rc = run_command(argv, NULL, 0, &f->before, &err, CMD_TIMEOUT_MS);
    if (rc != 0) {
        log_error("iptables-save failed", "family=%s cmd=\"%s -t nat\" exit=%d stderr=\"%s\"", f->name,
                  f->save, rc, logfmt_quote(buf_cstr(&err), q, sizeof q));
        rc = -EIO;
        goto out;
    }
    if (f->before.len >= f->before.max) {
        log_error("iptables-save output too large", "family=%s max_bytes=%zu", f->name, f->before.max);
        rc = -E2BIG;
        goto out;
    }
    if ((rc = rules_scan_save(buf_cstr(&f->before), &f->state)) < 0)
        log_error("cannot read iptables-save output", "family=%s cmd=\"%s -t nat\" error=%s", f->name,
                  f->save, strerror(-rc));
out:
    buf_free(&err);
    return rc;
}

/* Feeds text to restore (--noflush unless flush); 0 or -EIO, logged. */
static int family_restore(struct family *f, const struct buf *text, int noflush)
{
    /* Legacy iptables serialises writers with a lock file shared by the
     * whole mount namespace; wait for it rather than fail. */
    int legacy = strstr(f->restore, "-legacy-") != NULL;
    char *argv[4] = {f->restore, NULL, NULL, NULL}, **a = argv + 1;
    if (noflush)
        *a++ = "--noflush";
    if (legacy)
        *a++ = "--wait=10";
    struct buf err;
    char q[2048];
    buf_init(&err, STDERR_MAX);
    int rc = run_command(argv, text->data, text->len, NULL, &err, CMD_TIMEOUT_MS);
    if (rc != 0) {
        log_error("iptables-restore failed", "family=%s cmd=\"%s%s\" exit=%d stderr=\"%s\"", f->name,
                  f->restore, noflush ? " --noflush" : "", rc,
                  logfmt_quote(rc < 0 ? strerror(-rc) : buf_cstr(&err), q, sizeof q));
        rc = -EIO;
    }
    buf_free(&err);
    return rc;
}

/* --dry-run reads nothing from iptables, so its output depends on the flags
 * alone: the input a real run feeds to a namespace without WEFT rules (the
 * init container's case), or with --cleanup to one holding exactly them. */
static void print_dry_run(const struct init_config *cfg, struct family *fams, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        printf("# %s: %s-restore --noflush, %s\n", fams[i].name,
               fams[i].af == AF_INET6 ? "ip6tables" : "iptables",
               cfg->cleanup ? "namespace holding weft's rules" : "namespace without weft's rules");
        fwrite(fams[i].text.data, 1, fams[i].text.len, stdout);
        if (fams[i].af == AF_INET6)
            printf("# ipv6: %s %s/128 %s lo (the inbound passthrough source)\n", cfg->cleanup ? "remove" : "add",
                   PASSTHROUGH_SOURCE_V6, cfg->cleanup ? "from" : "to");
    }
}

/* In --dry-run --cleanup, the state of a pod holding exactly weft's rules. */
static void state_of_weft(struct rules_state *st)
{
    memset(st, 0, sizeof *st);
    st->chains = RULES_CHAIN_INBOUND | RULES_CHAIN_IN_REDIRECT | RULES_CHAIN_OUTPUT | RULES_CHAIN_REDIRECT;
    st->njumps = 2;
    snprintf(st->jumps[0].chain, sizeof st->jumps[0].chain, "PREROUTING");
    snprintf(st->jumps[0].spec, sizeof st->jumps[0].spec, "-p tcp -j WEFT_INBOUND");
    snprintf(st->jumps[1].chain, sizeof st->jumps[1].chain, "OUTPUT");
    snprintf(st->jumps[1].spec, sizeof st->jumps[1].spec, "-p tcp -j WEFT_OUTPUT");
}

int main(int argc, char **argv)
{
    struct init_config cfg;
    struct family fams[2];
    size_t nfam = 0;
    char err[512];
    int rc = EXIT_FAIL;

    if (flags_parse(argc, argv, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "weft-init: %s (see --help)\n", err);
        return EXIT_USAGE;
    }
    if (cfg.help) {
        fputs(flags_usage(), stdout);
        return 0;
    }

    int v6_stack, v6_in_use, v6 = 0;
    ipv6_probe(&v6_stack, &v6_in_use);
    if (cfg.ipv6 == FLAGS_IPV6_TRUE && cfg.dry_run) {
        v6 = 1; /* only printing: the text does not depend on this pod */
    } else if (cfg.ipv6 == FLAGS_IPV6_TRUE) {
        if (!v6_stack) {
            log_error("IPv6 requested but this network namespace has no IPv6",
                      "flag=--ipv6 value=true hint=\"use --ipv6 auto or false\"");
            return EXIT_FAIL;
        }
        v6 = 1;
    } else if (cfg.ipv6 == FLAGS_IPV6_AUTO) {
        /* Cleanup looks wherever rules could be; apply only where used. */
        v6 = cfg.cleanup ? v6_stack : v6_in_use;
        if (!v6)
            log_info("IPv4 only", "ipv6=auto reason=\"%s\"",
                     v6_stack ? "no IPv6 address beyond loopback and link-local" : "no IPv6 stack");
    }

    memset(fams, 0, sizeof fams);
    fams[nfam].af = AF_INET, fams[nfam++].name = "ipv4";
    if (v6)
        fams[nfam].af = AF_INET6, fams[nfam++].name = "ipv6";
    for (size_t i = 0; i < nfam; i++) {
        buf_init(&fams[i].before, SAVE_MAX);
        buf_init(&fams[i].text, RULES_MAX_TEXT);
    }

    if (cfg.dry_run) {
        for (size_t i = 0; i < nfam; i++) {
            int brc;
            if (cfg.cleanup) {
                state_of_weft(&fams[i].state);
                brc = rules_build_cleanup(&fams[i].state, &fams[i].text, &fams[i].changes);
            } else {
                brc = rules_build_apply(&cfg, fams[i].af, NULL, &fams[i].text);
            }
            if (brc < 0) {
                log_error("cannot build rules", "family=%s error=%s", fams[i].name, strerror(-brc));
                goto out;
            }
        }
        print_dry_run(&cfg, fams, nfam);
        rc = fflush(stdout) == 0 ? 0 : EXIT_FAIL;
        goto out;
    }

    if (backend_pick(&cfg, fams, nfam) < 0)
        goto out;

    /* Read everything and build every text before changing anything. */
    for (size_t i = 0; i < nfam; i++) {
        if (family_save(&fams[i]) < 0) {
            /* Cleanup under --ipv6 auto looks at IPv6 only in case rules are
             * there; a namespace whose ip6tables cannot even be read has none. */
            if (cfg.cleanup && cfg.ipv6 == FLAGS_IPV6_AUTO && fams[i].af == AF_INET6) {
                log_warn("skipping IPv6 cleanup", "reason=\"ip6tables-save failed\"");
                buf_free(&fams[i].before);
                buf_free(&fams[i].text);
                nfam = i;
                break;
            }
            goto out;
        }
        int brc = cfg.cleanup ? rules_build_cleanup(&fams[i].state, &fams[i].text, &fams[i].changes)
                              : rules_build_apply(&cfg, fams[i].af, &fams[i].state, &fams[i].text);
        if (brc < 0) {
            log_error("cannot build rules", "family=%s error=%s", fams[i].name, strerror(-brc));
            goto out;
        }
    }

    /* The address first: if it cannot be added, nothing has changed yet. */
    int added_addr = 0;
    if (!cfg.cleanup && nfam > 1 && (added_addr = loaddr_add(err, sizeof err)) < 0) {
        log_error("cannot add the inbound passthrough source", "error=\"%s\"", err);
        goto out;
    }
    for (size_t i = 0; i < nfam; i++) {
        if (cfg.cleanup && fams[i].changes == 0) {
            log_info("nothing to clean up", "family=%s", fams[i].name);
            continue;
        }
        if (family_restore(&fams[i], &fams[i].text, 1) < 0) {
            for (size_t j = 0; j < i; j++) {
                if (!fams[j].applied)
                    continue;
                /* A plain restore of the saved nat table puts it back exactly. */
                if (family_restore(&fams[j], &fams[j].before, 0) == 0)
                    log_warn("rolled back", "family=%s", fams[j].name);
                else
                    log_error("rollback failed; rules may be incomplete", "family=%s", fams[j].name);
            }
            if (added_addr == 1 && loaddr_del(err, sizeof err) < 0)
                log_error("rollback failed", "error=\"%s\"", err);
            goto out;
        }
        fams[i].applied = 1;
        if (cfg.cleanup)
            log_info("rules removed", "family=%s restore=\"%s --noflush\" lines=%zu", fams[i].name,
                     fams[i].restore, fams[i].changes);
        else
            log_info("rules applied",
                     "family=%s restore=\"%s --noflush\" proxy_uid=%lu proxy_gid=%lu inbound_port=%u "
                     "outbound_port=%u skip_inbound_ports=%zu skip_outbound_ports=%zu skip_cidrs=%zu",
                     fams[i].name, fams[i].restore, cfg.proxy_uid, cfg.proxy_gid, cfg.inbound_port,
                     cfg.outbound_port, cfg.nskip_in, cfg.nskip_out, cfg.nskip_cidrs);
    }
    if (cfg.cleanup && nfam > 1) {
        int r = loaddr_del(err, sizeof err);
        if (r < 0) {
            log_error("cannot remove the inbound passthrough source", "error=\"%s\"", err);
            goto out;
        }
        if (r == 1)
            log_info("address removed", "address=%s/128 dev=lo", PASSTHROUGH_SOURCE_V6);
    } else if (added_addr == 1) {
        log_info("address added", "address=%s/128 dev=lo reason=\"inbound passthrough source\"",
                 PASSTHROUGH_SOURCE_V6);
    }
    rc = 0;
out:
    for (size_t i = 0; i < nfam; i++) {
        buf_free(&fams[i].before);
        buf_free(&fams[i].text);
    }
    return rc;
}
