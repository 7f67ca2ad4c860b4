/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl install`: the shell around install.c. It runs `kubectl kustomize`
 * on manifests/ (the same output `kubectl apply -k` applies) and the
 * project's certificate scripts (scripts/make-ca.sh, manifests/
 * gen-webhook-cert.sh --no-apply, manifests/discovery/gen-discovery-cert.sh
 * --no-apply) in a private temporary directory that is
 * removed before weftctl exits, then prints everything at once: nothing is
 * printed unless every step worked. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmds.h"
#include "errbuf.h"
#include "install.h"
#include "proc.h"
#include "xalloc.h"
#include "yamljson.h"
#include "yamlout.h"

#define MAX_OUTPUT (16 * 1024 * 1024)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: weftctl install [--set key=value]... [flags] | kubectl apply -f -\n"
            "\n"
            "Prints Weft's control plane: the kustomize output of manifests/ (what kubectl apply -k\n"
            "applies) with certificates made by scripts/make-ca.sh, manifests/gen-webhook-cert.sh and\n"
            "manifests/discovery/gen-discovery-cert.sh: the Secrets weft-identity-issuer,\n"
            "weft-identity-tls, weft-webhook-tls and weft-discovery-tls, the trust anchor in ConfigMap\n"
            "weft-trust-bundle and the webhook's caBundle. The private keys are in the output (for\n"
            "kubectl apply) and nowhere else: the files are removed.\n"
            "\n"
            "      --set KEY=VALUE          certificates.days=N  lifetime of the issuer and serving\n"
            "                                                    certificates (default 365; the root 10x)\n"
            "                               certManager=true     the webhook's certificate from cert-manager\n"
            "                                                    (manifests/overlays/cert-manager)\n"
            "                               webhook.replicas=N   weft-webhook's replicas (default 2)\n"
            "                               mesh.PATH=VALUE      a key of mesh.yaml (weft-config), dotted,\n"
            "                                                    e.g. mesh.defaults.mtlsMode=PERMISSIVE;\n"
            "                                                    checked as weft-webhook checks it\n"
            "      --manifests DIR          the kustomize base (default manifests)\n"
            "      --kustomized FILE        read the kustomize output from FILE (- for stdin) instead\n"
            "                               of running kubectl kustomize\n"
            "      --certs-dir DIR          take the certificates from DIR instead of making them:\n"
            "                               DIR/identity/ as make-ca.sh writes it (root.crt,\n"
            "                               intermediate.crt/.key, identity.crt/.key), DIR/webhook/ as\n"
            "                               gen-webhook-cert.sh --out writes it (ca.crt, tls.crt/.key),\n"
            "                               DIR/discovery/ as gen-discovery-cert.sh --out writes it\n"
            "                               (tls.crt/.key, signed by DIR/identity's intermediate)\n"
            "  -h, --help\n"
            "\n"
            "KUBECTL (default kubectl) names the kubectl to run.\n"
            "Exit status: 0 done, 1 kubectl or a certificate script failed, 2 bad flags, --set,\n"
            "manifests or certificate files.\n");
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

static char *read_text(const char *dir, const char *name, char *err, size_t errlen)
{
    char path[4096];
    struct buf b;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    buf_init(&b, 1024 * 1024);
    int r = buf_read_file(&b, path);
    if (r < 0 || b.len == 0) {
        errbuf_set(err, errlen, "%s: %s", path, r < 0 ? strerror(-r) : "empty");
        buf_free(&b);
        return NULL;
    }
    size_t len;
    return buf_steal(&b, &len);
}

/* Runs argv; on failure err holds its stderr. 0, or 1 (a helper failed). */
static int helper(char *const argv[], struct buf *out, char *err, size_t errlen)
{
    struct buf eb;
    buf_init(&eb, 64 * 1024);
    int st = proc_run(argv, out, &eb, err, errlen);
    if (st > 0) {
        size_t n = eb.len;
        while (n && eb.data[n - 1] == '\n')
            n--;
        errbuf_set(err, errlen, "%s exited with status %d: %.*s", argv[0], st, (int)n, n ? eb.data : "");
    }
    buf_free(&eb);
    return st == 0 ? 0 : 1;
}

int cmd_install(int argc, char **argv)
{
    enum { F_SET = 256, F_MANIFESTS, F_KUSTOMIZED, F_CERTS };
    static const struct option flags[] = {
        {"set", required_argument, NULL, F_SET},
        {"manifests", required_argument, NULL, F_MANIFESTS},
        {"kustomized", required_argument, NULL, F_KUSTOMIZED},
        {"certs-dir", required_argument, NULL, F_CERTS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct install_settings s;
    const char *manifests = "manifests", *kustomized = NULL, *certs_dir = NULL;
    char err[4096], tmp[64] = "";
    int rc = 2, c, days_set = 0;
    json_t *docs = NULL, *out = NULL;
    char *files[10] = {0};
    struct buf kout, yout;
    buf_init(&kout, MAX_OUTPUT);
    buf_init(&yout, MAX_OUTPUT);
    install_settings_init(&s);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", flags, NULL)) != -1) {
        switch (c) {
        case F_SET:
            if (install_set(&s, optarg, err, sizeof err) < 0) {
                fprintf(stderr, "weftctl install: %s\n", err);
                goto out;
            }
            days_set |= strncmp(optarg, "certificates.days=", 18) == 0;
            break;
        case F_MANIFESTS: manifests = optarg; break;
        case F_KUSTOMIZED: kustomized = optarg; break;
        case F_CERTS: certs_dir = optarg; break;
        case 'h': usage(stdout); rc = 0; goto out;
        case ':': fprintf(stderr, "weftctl install: %s needs a value\n", argv[optind - 1]); goto out;
        default:
            fprintf(stderr, "weftctl install: unknown flag \"%s\" (weftctl install --help)\n", argv[optind - 1]);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weftctl install: unexpected argument \"%s\"\n", argv[optind]);
        goto out;
    }
    if (certs_dir && days_set) {
        fprintf(stderr, "weftctl install: --set certificates.days does nothing with --certs-dir (its "
                        "certificates are made already)\n");
        goto out;
    }
    /* the manifests */
    char kdir[4096];
    snprintf(kdir, sizeof kdir, "%s%s", manifests, s.cert_manager ? "/overlays/cert-manager" : "");
    const char *kname = kustomized ? (strcmp(kustomized, "-") == 0 ? "stdin" : kustomized) : "kubectl kustomize";
    if (kustomized) {
        int r = buf_read_file(&kout, kustomized);
        if (r < 0) {
            fprintf(stderr, "weftctl install: %s: %s\n", kname, strerror(-r));
            goto out;
        }
    } else {
        const char *kubectl = getenv("KUBECTL") && *getenv("KUBECTL") ? getenv("KUBECTL") : "kubectl";
        char *kargv[] = {(char *)kubectl, "kustomize", kdir, NULL};
        if (helper(kargv, &kout, err, sizeof err) != 0) {
            fprintf(stderr, "weftctl install: %s\n", err);
            rc = 1;
            goto out;
        }
    }
    if (!(docs = yamljson_parse_all(kout.data ? kout.data : "", kout.len, kname, err, sizeof err))) {
        fprintf(stderr, "weftctl install: %s\n", err);
        goto out;
    }
    /* the certificates */
    const char *dir = certs_dir;
    char idir[128], wdir[128], ddir[128], days[16];
    if (!dir) {
        snprintf(tmp, sizeof tmp, "%s/weftctl-install-XXXXXX", getenv("TMPDIR") && *getenv("TMPDIR") &&
                 strlen(getenv("TMPDIR")) < 32 ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmp)) { /* mode 0700: the keys are only ours while they exist */
            fprintf(stderr, "weftctl install: %s: %s\n", tmp, strerror(errno));
            tmp[0] = '\0';
            goto out;
        }
        dir = tmp;
        snprintf(idir, sizeof idir, "%s/identity", tmp);
        snprintf(wdir, sizeof wdir, "%s/webhook", tmp);
        snprintf(ddir, sizeof ddir, "%s/discovery", tmp);
        snprintf(days, sizeof days, "%d", s.days);
        char makeca[4200], genweb[4200], gendisc[4200];
        snprintf(makeca, sizeof makeca, "%s/../scripts/make-ca.sh", manifests);
        snprintf(genweb, sizeof genweb, "%s/gen-webhook-cert.sh", manifests);
        snprintf(gendisc, sizeof gendisc, "%s/discovery/gen-discovery-cert.sh", manifests);
        char *a1[] = {"bash", makeca, idir, "--days", days, NULL};
        char *a2[] = {"bash", genweb, "--out", wdir, "--no-apply", "--days", days, NULL};
        char *a3[] = {"bash", gendisc, "--ca-dir", idir, "--out", ddir, "--no-apply", "--days", days, NULL};
        struct buf ignored;
        buf_init(&ignored, 64 * 1024);
        int h = helper(a1, &ignored, err, sizeof err);
        if (h == 0 && !s.cert_manager)
            h = helper(a2, &ignored, err, sizeof err);
        if (h == 0)
            h = helper(a3, &ignored, err, sizeof err);
        buf_free(&ignored);
        if (h != 0) {
            fprintf(stderr, "weftctl install: %s\n", err);
            rc = 1;
            goto out;
        }
    }
    static const char *const names[10] = {"identity/root.crt",     "identity/intermediate.crt",
                                          "identity/intermediate.key", "identity/identity.crt",
                                          "identity/identity.key", "webhook/ca.crt",
                                          "webhook/tls.crt",       "webhook/tls.key",
                                          "discovery/tls.crt",     "discovery/tls.key"};
    for (int i = 0; i < 10; i++) {
        if (s.cert_manager && i >= 5 && i < 8) /* cert-manager makes the webhook's */
            continue;
        if (!(files[i] = read_text(dir, names[i], err, sizeof err))) {
            fprintf(stderr, "weftctl install: %s\n", err);
            goto out;
        }
    }
    struct install_certs certs = {files[0], files[1], files[2], files[3], files[4],
                                  files[5], files[6], files[7], files[8], files[9]};
    if (!(out = install_render(docs, &certs, &s, err, sizeof err))) {
        fprintf(stderr, "weftctl install: %s\n", err);
        goto out;
    }
    if (yamlout_write(out, &yout, err, sizeof err) < 0) {
        fprintf(stderr, "weftctl install: %s\n", err);
        goto out;
    }
    if (fwrite(yout.data, 1, yout.len, stdout) != yout.len || fflush(stdout) != 0) {
        fprintf(stderr, "weftctl install: stdout: %s\n", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (tmp[0])
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (int i = 0; i < 10; i++) {
        if (files[i]) {
            explicit_bzero(files[i], strlen(files[i]));
            free(files[i]);
        }
    }
    if (yout.data)
        explicit_bzero(yout.data, yout.len);
    buf_free(&kout);
    buf_free(&yout);
    json_decref(docs);
    json_decref(out);
    install_settings_free(&s);
    return rc;
}
