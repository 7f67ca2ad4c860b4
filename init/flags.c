/* SPDX-License-Identifier: Apache-2.0 */
/* Strict parsing of weft-init's flags with getopt_long (`--flag value` and
 * `--flag=value`). Every value goes through lib/parse.c; a bad one yields a
 * message naming the flag and the value, and nothing else happens. */
#include "flags.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

enum {
    OPT_PROXY_UID = 1000,
    OPT_PROXY_GID,
    OPT_INBOUND_PORT,
    OPT_OUTBOUND_PORT,
    OPT_SKIP_IN,
    OPT_SKIP_OUT,
    OPT_SKIP_CIDRS,
    OPT_IPV6,
    OPT_MODE,
    OPT_DRY_RUN,
    OPT_CLEANUP,
};

static const struct option long_options[] = {
    {"proxy-uid", required_argument, NULL, OPT_PROXY_UID},
    {"proxy-gid", required_argument, NULL, OPT_PROXY_GID},
    {"inbound-port", required_argument, NULL, OPT_INBOUND_PORT},
    {"outbound-port", required_argument, NULL, OPT_OUTBOUND_PORT},
    {"skip-inbound-ports", required_argument, NULL, OPT_SKIP_IN},
    {"skip-outbound-ports", required_argument, NULL, OPT_SKIP_OUT},
    {"skip-outbound-cidrs", required_argument, NULL, OPT_SKIP_CIDRS},
    {"ipv6", required_argument, NULL, OPT_IPV6},
    {"mode", required_argument, NULL, OPT_MODE},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"cleanup", no_argument, NULL, OPT_CLEANUP},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char usage_text[] =
    "usage: weft-init [flags]\n"
    "Writes the pod's nat capture rules (chains WEFT_INBOUND, WEFT_IN_REDIRECT,\n"
    "WEFT_OUTPUT, WEFT_REDIRECT) with one iptables-restore --noflush per family.\n"
    "\n"
    "  --proxy-uid UID             proxy uid, never captured (default 15100, not 0)\n"
    "  --proxy-gid GID             proxy gid, never captured (default 15100, not 0)\n"
    "  --inbound-port PORT         where captured inbound TCP lands (default 15006)\n"
    "  --outbound-port PORT        where captured outbound TCP lands (default 15001)\n"
    "  --skip-inbound-ports LIST   ports not captured inbound; 15020 always is skipped\n"
    "  --skip-outbound-ports LIST  destination ports not captured outbound\n"
    "  --skip-outbound-cidrs LIST  destination CIDRs (IPv4 or IPv6) not captured\n"
    "  --ipv6 auto|true|false      also write ip6tables rules (auto: if the pod has\n"
    "                              a non-link-local IPv6 address)\n"
    "  --mode auto|nft|legacy      iptables backend (auto: nft unless legacy tables\n"
    "                              hold rules)\n"
    "  --dry-run                   print the restore input for a pod without weft\n"
    "                              rules (with --cleanup: holding them); run nothing\n"
    "  --cleanup                   remove every WEFT_* chain and jump, nothing else\n"
    "  --help                      this text\n"
    "LISTs are comma-separated and may be empty. Exit: 0 done, 1 failed (rules as\n"
    "before), 2 bad flags (nothing done).\n";

const char *flags_usage(void)
{
    return usage_text;
}

const char *flags_ipv6_name(enum flags_ipv6 v)
{
    return v == FLAGS_IPV6_TRUE ? "true" : v == FLAGS_IPV6_FALSE ? "false" : "auto";
}

const char *flags_mode_name(enum flags_mode m)
{
    return m == FLAGS_MODE_NFT ? "nft" : m == FLAGS_MODE_LEGACY ? "legacy" : "auto";
}

/* Appends p to ports[*n] unless present; the caller bounds *n. */
static void ports_add_unique(uint16_t *ports, size_t *n, uint16_t p)
{
    for (size_t i = 0; i < *n; i++)
        if (ports[i] == p)
            return;
    ports[(*n)++] = p;
}

static int bad(char *err, size_t errlen, const char *flag, const char *value, const char *why)
{
    /* A long list is cut, so the reason still fits in err. */
    int cut = strlen(value) > 96;
    snprintf(err, errlen, "invalid value \"%.*s%s\" for --%s: %s", cut ? 80 : 96, value, cut ? "..." : "",
             flag, why);
    return -EINVAL;
}

/* For a list that did not parse, says why: the first item that is not a
 * port (or CIDR), an empty item, or too many items. */
static void list_why(const char *v, int cidrs, char *why, size_t whylen)
{
    size_t items = 0;
    const char *p = v;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[64];
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        items++;
        if (len == 0) {
            snprintf(why, whylen, "item %zu is empty", items);
            return;
        }
        if (len >= sizeof item) {
            snprintf(why, whylen, "item %zu is too long", items);
            return;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        struct parse_cidr c;
        uint16_t port;
        if (cidrs ? parse_cidr(item, &c) < 0 : parse_port(item, &port) < 0) {
            snprintf(why, whylen, "\"%s\" is not %s", item,
                     cidrs ? "a CIDR (address[/prefix], host bits zero)" : "a port in 1-65535");
            return;
        }
        if (!end)
            break;
        p = end + 1;
    }
    snprintf(why, whylen, "more than %d items", PARSE_MAX_LIST);
}

static int parse_id(const char *flag, const char *v, unsigned long *out, char *err, size_t errlen)
{
    unsigned long id;
    /* 4294967295 is (uid_t)-1, "no id" to the kernel. */
    if (parse_uint(v, 0, 4294967294UL, &id) < 0)
        return bad(err, errlen, flag, v, "not a number in 1-4294967294");
    if (id == 0)
        return bad(err, errlen, flag, v, "0 is root; the proxy must not run as root");
    *out = id;
    return 0;
}

static int parse_one_port(const char *flag, const char *v, uint16_t *out, char *err, size_t errlen)
{
    if (parse_port(v, out) < 0)
        return bad(err, errlen, flag, v, "not a port in 1-65535");
    return 0;
}

static int parse_ports(const char *flag, const char *v, uint16_t *dst, size_t *ndst, int with_admin,
                       char *err, size_t errlen)
{
    uint16_t ports[PARSE_MAX_LIST];
    size_t n = 0;
    char why[128];
    if (parse_port_list(v, ports, &n) < 0) {
        list_why(v, 0, why, sizeof why);
        return bad(err, errlen, flag, v, why);
    }
    *ndst = 0;
    if (with_admin)
        dst[(*ndst)++] = FLAGS_ADMIN_PORT;
    for (size_t i = 0; i < n; i++)
        ports_add_unique(dst, ndst, ports[i]);
    return 0;
}

static int parse_cidrs(const char *v, struct init_config *cfg, char *err, size_t errlen)
{
    struct parse_cidr cidrs[PARSE_MAX_LIST];
    size_t n = 0;
    char why[128];
    if (parse_cidr_list(v, cidrs, &n) < 0) {
        list_why(v, 1, why, sizeof why);
        return bad(err, errlen, "skip-outbound-cidrs", v, why);
    }
    cfg->nskip_cidrs = 0;
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        for (size_t j = 0; j < cfg->nskip_cidrs; j++)
            dup |= strcmp(cfg->skip_cidrs[j].text, cidrs[i].text) == 0;
        if (!dup)
            cfg->skip_cidrs[cfg->nskip_cidrs++] = cidrs[i];
    }
    return 0;
}

int flags_parse(int argc, char *const argv[], struct init_config *cfg, char *err, size_t errlen)
{
    int rc = 0;
    memset(cfg, 0, sizeof *cfg);
    cfg->proxy_uid = 15100;
    cfg->proxy_gid = 15100;
    cfg->inbound_port = 15006;
    cfg->outbound_port = 15001;
    cfg->skip_in[0] = FLAGS_ADMIN_PORT;
    cfg->nskip_in = 1;
    cfg->ipv6 = FLAGS_IPV6_AUTO;
    cfg->mode = FLAGS_MODE_AUTO;
    if (errlen)
        err[0] = '\0';

    optind = 0; /* glibc: full re-initialisation, so parsing twice works */
    opterr = 0;
    for (;;) {
        int longidx = -1;
        int c = getopt_long(argc, argv, "+:h", long_options, &longidx);
        if (c == -1)
            break;
        const char *v = optarg;
        if (longidx >= 0) {
            /* getopt_long takes unambiguous prefixes (--dry); a stamped
             * command line never needs them, so refuse them. */
            const char *tok = optarg && optarg == argv[optind - 1] ? argv[optind - 2] : argv[optind - 1];
            size_t nlen = strlen(long_options[longidx].name);
            if (strncmp(tok, "--", 2) != 0 || strncmp(tok + 2, long_options[longidx].name, nlen) != 0 ||
                (tok[2 + nlen] != '\0' && tok[2 + nlen] != '=')) {
                snprintf(err, errlen, "unknown flag \"%s\" (did you mean --%s?)", tok,
                         long_options[longidx].name);
                rc = -EINVAL;
                goto out;
            }
        }
        switch (c) {
        case OPT_PROXY_UID:
            rc = parse_id("proxy-uid", v, &cfg->proxy_uid, err, errlen);
            break;
        case OPT_PROXY_GID:
            rc = parse_id("proxy-gid", v, &cfg->proxy_gid, err, errlen);
            break;
        case OPT_INBOUND_PORT:
            rc = parse_one_port("inbound-port", v, &cfg->inbound_port, err, errlen);
            break;
        case OPT_OUTBOUND_PORT:
            rc = parse_one_port("outbound-port", v, &cfg->outbound_port, err, errlen);
            break;
        case OPT_SKIP_IN:
            rc = parse_ports("skip-inbound-ports", v, cfg->skip_in, &cfg->nskip_in, 1, err, errlen);
            break;
        case OPT_SKIP_OUT:
            rc = parse_ports("skip-outbound-ports", v, cfg->skip_out, &cfg->nskip_out, 0, err,
                             errlen);
            break;
        case OPT_SKIP_CIDRS:
            rc = parse_cidrs(v, cfg, err, errlen);
            break;
        case OPT_IPV6:
            if (strcmp(v, "auto") == 0)
                cfg->ipv6 = FLAGS_IPV6_AUTO;
            else if (strcmp(v, "true") == 0)
                cfg->ipv6 = FLAGS_IPV6_TRUE;
            else if (strcmp(v, "false") == 0)
                cfg->ipv6 = FLAGS_IPV6_FALSE;
            else
                rc = bad(err, errlen, "ipv6", v, "expected auto, true or false");
            break;
        case OPT_MODE:
            if (strcmp(v, "auto") == 0)
                cfg->mode = FLAGS_MODE_AUTO;
            else if (strcmp(v, "nft") == 0)
                cfg->mode = FLAGS_MODE_NFT;
            else if (strcmp(v, "legacy") == 0)
                cfg->mode = FLAGS_MODE_LEGACY;
            else
                rc = bad(err, errlen, "mode", v, "expected auto, nft or legacy");
            break;
        case OPT_DRY_RUN:
            cfg->dry_run = 1;
            break;
        case OPT_CLEANUP:
            cfg->cleanup = 1;
            break;
        case 'h':
            cfg->help = 1;
            break;
        case ':':
            /* optind already moved past the flag missing its value. */
            snprintf(err, errlen, "flag %s needs a value", argv[optind - 1]);
            rc = -EINVAL;
            break;
        default:
            snprintf(err, errlen, "unknown flag \"%s\"", argv[optind - 1]);
            rc = -EINVAL;
            break;
        }
        if (rc < 0)
            goto out;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument \"%s\"", argv[optind]);
        rc = -EINVAL;
        goto out;
    }
    if (cfg->inbound_port == cfg->outbound_port) {
        snprintf(err, errlen, "--inbound-port and --outbound-port are both %u; they must differ",
                 cfg->inbound_port);
        rc = -EINVAL;
        goto out;
    }
out:
    return rc;
}
