/* SPDX-License-Identifier: Apache-2.0 */
/* `weftctl kubeconfig` (which cluster, user and namespace weftctl would
 * use, without connecting) and `weftctl version` (weftctl's and, unless
 * --client, the API server's and the control plane's). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "cmds.h"

static void usage_kubeconfig(FILE *f)
{
    fprintf(f, "usage: weftctl kubeconfig [--contexts] [flags]\n"
               "\n"
               "Prints the context, cluster, server, user, how it authenticates and the namespace\n"
               "weftctl's cluster commands would use, as read from the kubeconfig, without\n"
               "connecting or reading the credentials' files.\n"
               "\n"
               "      --contexts               the names of the kubeconfig's contexts, one a line\n" CLUSTER_USAGE
               "  -h, --help\n"
               "\n"
               "Exit status: 0 done, 2 bad flags or a kubeconfig that does not resolve.\n");
}

static void usage_version(FILE *f)
{
    fprintf(f, "usage: weftctl version [--client] [flags]\n"
               "\n"
               "Prints weftctl's version, then the API server's and the Weft control plane's (the\n"
               "image tags of the weft-webhook and weft-identity Deployments in weft-system).\n"
               "\n"
               "      --client                 weftctl's version only, without a cluster\n" CLUSTER_USAGE
               "  -h, --help\n"
               "\n"
               "Exit status: 0 done, 1 the cluster could not be asked, 2 bad flags or kubeconfig.\n");
}

static int parse(int argc, char **argv, const char *cmd, int *client, struct kubeconfig_options *o,
                 void (*usage)(FILE *))
{
    enum { F_CLIENT = 256, F_CONTEXTS };
    static const struct option flags[] = {
        CLUSTER_LONG_OPTIONS,
        {"client", no_argument, NULL, F_CLIENT},
        {"contexts", no_argument, NULL, F_CONTEXTS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":n:h", flags, NULL)) != -1) {
        if (cluster_flag(c, optarg, o))
            continue;
        if ((c == F_CLIENT && strcmp(cmd, "version") == 0) || (c == F_CONTEXTS && strcmp(cmd, "kubeconfig") == 0)) {
            *client = 1;
        } else if (c == 'h') {
            usage(stdout);
            return 0;
        } else if (c == ':') {
            fprintf(stderr, "weftctl %s: %s needs a value\n", cmd, argv[optind - 1]);
            return 2;
        } else {
            fprintf(stderr, "weftctl %s: unknown flag \"%s\" (weftctl %s --help)\n", cmd, argv[optind - 1], cmd);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weftctl %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
        return 2;
    }
    return -1;
}

static const char *auth_kind(const struct kube_target *t, char *out, size_t outlen)
{
    if (t->cert.data || t->cert.file)
        snprintf(out, outlen, "client certificate %s", t->cert.file ? t->cert.file : "(inline data)");
    else if (t->token)
        snprintf(out, outlen, "bearer token (inline)");
    else if (t->token_file)
        snprintf(out, outlen, "bearer token from %s", t->token_file);
    else if (t->has_exec)
        snprintf(out, outlen, "exec plugin %s (%s)", t->exec.command, t->exec.api_version);
    else
        snprintf(out, outlen, "none (anonymous)");
    return out;
}

int cmd_kubeconfig(int argc, char **argv)
{
    struct kubeconfig_options o = {0};
    struct kube_target t;
    char err[2048], auth[1200];
    int names = 0;
    int rc = parse(argc, argv, "kubeconfig", &names, &o, usage_kubeconfig);
    if (rc >= 0)
        return rc;
    if (names) {
        struct buf b;
        buf_init(&b, 1024 * 1024);
        rc = kubeconfig_context_names(&o, &b, err, sizeof err);
        if (rc < 0)
            fprintf(stderr, "weftctl kubeconfig: %s\n", err);
        else if (b.len)
            fwrite(b.data, 1, b.len, stdout);
        buf_free(&b);
        return rc < 0 ? 2 : 0;
    }
    if (kubeconfig_load(&o, &t, err, sizeof err) < 0) {
        fprintf(stderr, "weftctl kubeconfig: %s\n", err);
        return 2;
    }
    char tls[1200];
    if (t.insecure)
        snprintf(tls, sizeof tls, "not verified (insecure-skip-tls-verify)");
    else if (t.ca.file)
        snprintf(tls, sizeof tls, "verified against %s", t.ca.file);
    else if (t.ca.data)
        snprintf(tls, sizeof tls, "verified against certificate-authority-data");
    else
        snprintf(tls, sizeof tls, "verified against the system's certificate authorities");
    printf("context:    %s\n"
           "cluster:    %s\n"
           "server:     %s\n"
           "tls:        %s\n"
           "user:       %s\n"
           "auth:       %s\n"
           "namespace:  %s\n",
           t.context, t.cluster, t.server, tls, t.user ? t.user : "(none)", auth_kind(&t, auth, sizeof auth), t.ns);
    if (t.tls_server_name)
        printf("tls name:   %s\n", t.tls_server_name);
    kube_target_free(&t);
    return 0;
}

/* The tag of the first container image of Deployment weft-system/name, or NULL. */
static int deployment_tag(struct kubeclient *c, const char *name, char *out, size_t outlen, char *err,
                          size_t errlen)
{
    char path[256];
    long status;
    json_t *d = NULL;
    snprintf(path, sizeof path, "/apis/apps/v1/namespaces/weft-system/deployments/%s", name);
    int r = kubeclient_json(c, "GET", path, NULL, &status, &d, err, errlen);
    if (r < 0 || status != 200) {
        json_decref(d);
        if (r == 0 && status == 404)
            snprintf(out, outlen, "not installed");
        return r < 0 || status != 404 ? -1 : 0;
    }
    json_t *ctrs = json_object_get(json_object_get(json_object_get(json_object_get(d, "spec"), "template"), "spec"),
                                   "containers");
    const char *image = json_string_value(json_object_get(json_array_get(ctrs, 0), "image"));
    const char *colon = image ? strrchr(image, ':') : NULL;
    snprintf(out, outlen, "%s", colon && !strchr(colon, '/') ? colon + 1 : image ? image : "unknown");
    json_decref(d);
    return 0;
}

int cmd_version(int argc, char **argv)
{
    struct kubeconfig_options o = {0};
    struct kube_target t;
    struct kubeclient *c;
    int client = 0;
    char err[2048];
    int rc = parse(argc, argv, "version", &client, &o, usage_version);
    if (rc >= 0)
        return rc;
    printf("weftctl %s\n", WEFT_VERSION);
    if (client)
        return 0;
    fflush(stdout);
    if (cluster_connect(&o, &t, &c, err, sizeof err) < 0) {
        fprintf(stderr, "weftctl version: %s\n", err);
        return 2;
    }
    long status;
    json_t *v = NULL;
    rc = 1;
    if (kubeclient_json(c, "GET", "/version", NULL, &status, &v, err, sizeof err) < 0 || status != 200) {
        fprintf(stderr, "weftctl version: %s\n", err);
        goto out;
    }
    const char *git = json_string_value(json_object_get(v, "gitVersion"));
    printf("Kubernetes %s\n", git ? git : "unknown");
    static const char *const parts[] = {"weft-webhook", "weft-identity", "weft-discovery"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        char tag[256];
        if (deployment_tag(c, parts[i], tag, sizeof tag, err, sizeof err) < 0) {
            fprintf(stderr, "weftctl version: %s\n", err);
            goto out;
        }
        printf("%s %s\n", parts[i], tag);
    }
    rc = 0;
out:
    json_decref(v);
    kubeclient_free(c);
    kube_target_free(&t);
    return rc;
}
