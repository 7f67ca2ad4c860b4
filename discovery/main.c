/* SPDX-License-Identifier: Apache-2.0 */
/* weft-discovery: for now the offline shell around the pure core. `answer`
 * loads Kubernetes objects from a directory of YAML/JSON files (and, if
 * given, a file of watch events), asks one question and prints the answer
 * JSON: the same answers the streaming server will send, for golden tests
 * and for seeing what a proxy would be told. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "answer.h"
#include "objdir.h"
#include "serve.h"
#include "buf.h"
#include "settings.h"
#include "spiffe.h"
#include "store.h"
#include "xalloc.h"
#include "yamljson.h"

#define MAX_EVENTS_BYTES (16 * 1024 * 1024)   /* the --events file */

struct options {
    const char *objects, *events, *config, *trust_domain;
    const char *destination, *pod_policy, *caller, *caller_ip;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: weft-discovery answer --objects DIR --trust-domain TD [--events FILE] [--config FILE]\n"
            "                             (--destination ADDR:PORT | --pod-policy NS/NAME [--caller ID --caller-ip IP])\n"
            "\n"
            "Weft's discovery core, offline: reads Kubernetes objects (Services, EndpointSlices, Pods,\n"
            "Namespaces, Gateway API HTTPRoutes and GRPCRoutes) and prints what a proxy would be told.\n"
            "`weft-discovery serve --help` for the server that streams these answers to proxies.\n"
            "\n"
            "  --objects DIR              *.yaml, *.yml and *.json files (multi-document YAML and kind: List\n"
            "                             allowed), applied as ADDED in file-name order; kinds discovery does\n"
            "                             not watch are skipped\n"
            "  --events FILE              then these watch events, one JSON object per line, as the API streams them\n"
            "  --trust-domain TD          SPIFFE trust domain of the identities in the answers\n"
            "  --config FILE              mesh configuration for --pod-policy (default /etc/weft/config/mesh.yaml)\n"
            "  --destination ADDR:PORT    where a connection to ADDR:PORT ([IPv6]:PORT) leads\n"
            "  --pod-policy NS/NAME       the inbound policy in force for that pod\n"
            "  --caller ID --caller-ip IP answer --pod-policy only if this caller may ask for it\n"
            "  --help, --version\n"
            "\n"
            "Exit 0 with the answer, 1 when the answer is an error (printed as one), 2 for bad input.\n");
}

static int parse_flags(int argc, char **argv, struct options *o)
{
    enum { F_OBJECTS = 256, F_EVENTS, F_CONFIG, F_TD, F_DEST, F_POLICY, F_CALLER, F_CALLER_IP, F_HELP, F_VERSION };
    static const struct option flags[] = {
        {"objects", required_argument, NULL, F_OBJECTS},
        {"events", required_argument, NULL, F_EVENTS},
        {"config", required_argument, NULL, F_CONFIG},
        {"trust-domain", required_argument, NULL, F_TD},
        {"destination", required_argument, NULL, F_DEST},
        {"pod-policy", required_argument, NULL, F_POLICY},
        {"caller", required_argument, NULL, F_CALLER},
        {"caller-ip", required_argument, NULL, F_CALLER_IP},
        {"help", no_argument, NULL, F_HELP},
        {"version", no_argument, NULL, F_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", flags, NULL)) != -1) {
        switch (c) {
        case F_OBJECTS: o->objects = optarg; break;
        case F_EVENTS: o->events = optarg; break;
        case F_CONFIG: o->config = optarg; break;
        case F_TD: o->trust_domain = optarg; break;
        case F_DEST: o->destination = optarg; break;
        case F_POLICY: o->pod_policy = optarg; break;
        case F_CALLER: o->caller = optarg; break;
        case F_CALLER_IP: o->caller_ip = optarg; break;
        case F_HELP: usage(stdout); exit(0);
        case F_VERSION: printf("weft-discovery %s\n", WEFT_VERSION); exit(0);
        default: usage(stderr); return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weft-discovery: unexpected argument \"%s\"\n", argv[optind]);
        return -EINVAL;
    }
    if (!o->objects || !o->trust_domain) {
        fprintf(stderr, "weft-discovery: --objects and --trust-domain are required\n");
        return -EINVAL;
    }
    if (!spiffe_valid_trust_domain(o->trust_domain, strlen(o->trust_domain))) {
        fprintf(stderr, "weft-discovery: --trust-domain \"%s\": expected lower-case letters, digits, '.', '-' and '_'\n",
                o->trust_domain);
        return -EINVAL;
    }
    if (!o->destination == !o->pod_policy) {
        fprintf(stderr, "weft-discovery: give one of --destination and --pod-policy\n");
        return -EINVAL;
    }
    if (!o->caller != !o->caller_ip || (o->caller && !o->pod_policy)) {
        fprintf(stderr, "weft-discovery: --caller and --caller-ip go together, with --pod-policy\n");
        return -EINVAL;
    }
    return 0;
}

static int load_events(struct store *s, const char *path)
{
    char err[1024];
    struct buf b;
    int rc = -EINVAL;
    buf_init(&b, MAX_EVENTS_BYTES);
    int read = buf_read_file(&b, path);
    if (read < 0) {
        fprintf(stderr, "weft-discovery: %s: %s\n", path, read == -E2BIG ? "larger than 16 MiB" : strerror(-read));
        goto out;
    }
    const char *p = b.data, *end = b.data + b.len;
    for (size_t line = 1; p && p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len > 0 && store_apply_event(s, p, len, err, sizeof err) < 0) {
            fprintf(stderr, "weft-discovery: %s:%zu: %s\n", path, line, err);
            goto out;
        }
        p = nl ? nl + 1 : end;
    }
    rc = 0;
out:
    buf_free(&b);
    return rc;
}

static int print_answer(json_t *a)
{
    char *text = json_dumps(a, JSON_INDENT(2));
    printf("%s\n", text);
    free(text);
    return 0;
}

/* The --pod-policy answer; returns the exit code. */
static int pod_policy(const struct options *o, struct store *s)
{
    char err[1024], ns[SPIFFE_MAX_NAMESPACE + 1];
    json_t *mesh = NULL, *values = NULL, *a = NULL;
    int rc = 2;
    const char *slash = strchr(o->pod_policy, '/');
    size_t nslen = slash ? (size_t)(slash - o->pod_policy) : 0;
    if (!slash || !spiffe_valid_namespace(o->pod_policy, nslen) || !spiffe_valid_sa(slash + 1, strlen(slash + 1))) {
        fprintf(stderr, "weft-discovery: --pod-policy \"%s\": expected NAMESPACE/NAME\n", o->pod_policy);
        goto out;
    }
    memcpy(ns, o->pod_policy, nslen);
    ns[nslen] = '\0';
    const char *config = o->config ? o->config : "/etc/weft/config/mesh.yaml";
    if (!(mesh = yamljson_load_file(config, err, sizeof err)) || !(values = settings_from_mesh(mesh, err, sizeof err))) {
        fprintf(stderr, "weft-discovery: %s\n", err);
        goto out;
    }
    if (o->caller &&
        answer_authorize_policy(s, o->trust_domain, o->caller, o->caller_ip, ns, slash + 1, err, sizeof err) < 0) {
        a = json_pack("{s:i, s:s, s:s}", "version", ANSWER_FORMAT_VERSION, "kind", "error", "error", err);
        print_answer(a);
        rc = 1;
        goto out;
    }
    rc = answer_pod_policy(s, values, o->trust_domain, ns, slash + 1, &a) < 0 ? 1 : 0;
    print_answer(a);
out:
    json_decref(a);
    json_decref(values);
    json_decref(mesh);
    return rc;
}

static int run_answer(const struct options *o)
{
    struct store *s = store_new(NULL);
    struct addr_dest dest;
    int rc = 2;
    if (o->destination && addr_parse_dest(o->destination, &dest) < 0) {
        fprintf(stderr, "weft-discovery: --destination \"%s\": expected IPv4:PORT or [IPv6]:PORT\n", o->destination);
        goto out;
    }
    char err[1024];
    if (objdir_load(s, o->objects, err, sizeof err) < 0) {
        fprintf(stderr, "weft-discovery: %s\n", err);
        goto out;
    }
    if (o->events && load_events(s, o->events) < 0)
        goto out;
    if (o->pod_policy) {
        rc = pod_policy(o, s);
        goto out;
    }
    json_t *a = answer_destination(s, o->trust_domain, &dest);
    print_answer(a);
    json_decref(a);
    rc = 0;
out:
    store_free(s);
    return rc;
}

int main(int argc, char **argv)
{
    struct options o = {0};
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("weft-discovery %s\n", WEFT_VERSION);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "serve") == 0)
        return serve_main(argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "answer") != 0) {
        fprintf(stderr, "weft-discovery: expected a command: answer or serve\n");
        usage(stderr);
        return 2;
    }
    if (parse_flags(argc - 1, argv + 1, &o) < 0)
        return 2;
    return run_answer(&o);
}
