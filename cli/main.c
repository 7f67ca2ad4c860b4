/* SPDX-License-Identifier: Apache-2.0 */
/* weftctl: the mesh user's command line. This file dispatches commands and
 * holds the offline `inject` and `uninject`, which run manifests through the
 * webhook's own core and templates (webhook/inject.c via cli/workload.c);
 * the other commands are in their own files (cmds.h). All or nothing: a
 * refused object writes nothing to stdout. Exit 0 done, 1 an object refused,
 * 2 bad input (flags, files, YAML, configuration). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cluster.h"
#include "clusterconf.h"
#include "cmds.h"
#include "../webhook/confstore.h"
#include "workload.h"
#include "xalloc.h"
#include "yamljson.h"
#include "yamlout.h"

struct options {
    const char *file, *config, *templates, *ns_annotations;
    int resolved_probes;
    int from_cluster, config_given; /* --from-cluster; --config or --templates given */
    struct kubeconfig_options ko;
};

static void usage_main(FILE *f)
{
    fprintf(f, "usage: weftctl COMMAND [flags]\n"
               "\n"
               "The Weft service mesh's command line.\n"
               "\n"
               "offline:\n"
               "  inject       add weft-init and weft-proxy to the pods of manifests\n"
               "  uninject     remove what inject added\n"
               "  install      print the control plane's manifests with new certificates, for kubectl apply -f -\n"
               "  completion   print a bash or zsh completion script\n"
               "with a cluster (kubeconfig as kubectl reads it):\n"
               "  check        check the cluster for Weft, or before installing it (--pre)\n"
               "  authz why    say whether a service account may reach a Service's port, and why\n"
               "  stat         connections, mTLS share, denials and bytes of the meshed pods' proxies\n"
               "  version      print weftctl's version and the cluster's (--client: weftctl's only)\n"
               "  kubeconfig   print the context, server, user and namespace weftctl would use\n"
               "\n"
               "`weftctl COMMAND --help` says more about each.\n");
}

static void usage_inject(FILE *f, const char *cmd)
{
    int in = strcmp(cmd, "inject") == 0;
    fprintf(f,
            "usage: weftctl %s -f FILE|- [flags]\n"
            "\n"
            "%s\n"
            "Reads Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController,\n"
            "Job and CronJob objects and List objects of them, as multi-document YAML or JSON;\n"
            "other kinds pass through unchanged. YAML in gives YAML out, JSON in gives JSON out.\n"
            "Nothing is written to stdout unless every object succeeds: a refused object is named\n"
            "(document number, kind, namespace/name) with the webhook's message on stderr, exit 1.\n"
            "\n"
            "  -f, --filename FILE          the manifests, or - for stdin (at most 1 MiB)\n",
            cmd,
            in ? "Injects weft-init and weft-proxy into every pod template, offline, with the webhook's\n"
                 "own injector and templates: the result is what weft-webhook would admit. Injecting an\n"
                 "injected object changes nothing."
               : "Removes what inject added, as the pod's weft.dev/status annotation records it: the\n"
                 "injected init containers, the proxy (native sidecar or container), the volumes and the\n"
                 "annotation. A pod whose probes inject rewrote is refused (exit 1): their originals\n"
                 "cannot be restored exactly, unless --resolved-probes is given.");
    if (in)
        fprintf(f,
                "      --config FILE            mesh configuration (default templates/mesh.yaml)\n"
                "      --templates DIR          injection templates (default templates)\n"
                "      --namespace-annotations K=V,...\n"
                "                               the namespace's weft.dev/ annotations (offline, there is\n"
                "                               none to read: without this flag it has none); a piece\n"
                "                               without '=' continues the value before it, so\n"
                "                               weft.dev/skip-inbound-ports=80,443 is one annotation.\n"
                "                               Objects without metadata.namespace are in \"default\".\n"
                "      --from-cluster           the cluster's configuration instead: ConfigMaps\n"
                "                               weft-system/weft-config and weft-templates, and each\n"
                "                               object's Namespace annotations, as weft-webhook reads them\n"
                "      --kubeconfig FILE        with --from-cluster: the kubeconfig (default $KUBECONFIG, else\n"
                "                               ~/.kube/config)\n"
                "      --context NAME           with --from-cluster: the kubeconfig context\n");
    else
        fprintf(f,
                "      --resolved-probes        put rewritten probes back as weft-proxy's WEFT_APP_PROBES\n"
                "                               holds them: named ports as their numbers, httpGet scheme\n"
                "                               and path filled in (HTTP, /); the rest as written\n");
    fprintf(f, "  -h, --help\n"
               "\n"
               "Exit status: 0 done, 1 an object refused, 2 bad flags, input or configuration.\n");
}

/* "k=v,k2=v2" into a JSON object; a piece without '=' continues the previous value. */
static json_t *parse_annotations(const char *text)
{
    json_t *out = json_object();
    char *copy = xstrdup(text), *key = NULL, *value = NULL;
    for (char *piece = copy, *next; piece; piece = next) {
        char *comma = strchr(piece, ',');
        next = comma ? comma + 1 : NULL;
        if (comma)
            *comma = '\0';
        char *eq = strchr(piece, '=');
        if (!eq) {
            if (!key)
                goto bad;
            piece[-1] = ','; /* part of the value: put the comma back */
            continue;
        }
        if (key)
            json_object_set_new(out, key, json_string(value)); /* steals the string */
        *eq = '\0';
        key = piece;
        value = eq + 1;
        if (!*key)
            goto bad;
    }
    if (!key)
        goto bad;
    json_object_set_new(out, key, json_string(value));
    free(copy);
    return out;
bad:
    free(copy);
    json_decref(out);
    return NULL;
}

static void note(void *ctx, const char *where, const char *what)
{
    (void)ctx;
    fprintf(stderr, "weftctl: %s: left as it is: %s\n", where, what);
}

/* Whether the input is JSON: its first non-blank byte opens an object or array. */
static int looks_json(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r\n", s[i]))
            return s[i] == '{' || s[i] == '[';
    return 0;
}

static int run(const char *cmd, const struct options *o)
{
    struct conf conf;
    int have_conf = 0, rc = 2;
    json_t *ns_ann = NULL, *docs = NULL, *outs = json_array();
    struct buf in, out;
    char err[2048];
    buf_init(&in, YAMLJSON_MAX_BYTES);
    buf_init(&out, 16 * YAMLJSON_MAX_BYTES);
    int inject = strcmp(cmd, "inject") == 0;

    struct kube_target t;
    struct kubeclient *kc = NULL;
    struct clusterconf_ns lookup = {NULL, NULL};
    if (inject && o->from_cluster) {
        if (cluster_connect(&o->ko, &t, &kc, err, sizeof err) < 0) {
            fprintf(stderr, "weftctl: %s\n", err);
            goto out;
        }
        if (clusterconf_load(kc, &conf, err, sizeof err) < 0) {
            fprintf(stderr, "weftctl: %s\n", err);
            goto out;
        }
        have_conf = 1;
        lookup.client = kc;
        lookup.cache = json_object();
    } else if (inject) {
        if (conf_load(o->config, o->templates, &conf, err, sizeof err) < 0) {
            fprintf(stderr, "weftctl: %s\n", err);
            goto out;
        }
        have_conf = 1;
        if (o->ns_annotations && !(ns_ann = parse_annotations(o->ns_annotations))) {
            fprintf(stderr, "weftctl: --namespace-annotations \"%s\": expected key=value,...\n", o->ns_annotations);
            goto out;
        }
    }
    const char *name = strcmp(o->file, "-") == 0 ? "stdin" : o->file;
    int read = buf_read_file(&in, o->file);
    if (read < 0) {
        fprintf(stderr, "weftctl: %s: %s\n", name, read == -E2BIG ? "larger than 1 MiB" : strerror(-read));
        goto out;
    }
    if (!(docs = yamljson_parse_all(in.data ? in.data : "", in.len, name, err, sizeof err))) {
        fprintf(stderr, "weftctl: %s\n", err);
        goto out;
    }
    struct workload_ctx w = {.conf = have_conf ? &conf.inject : NULL,
                             .ns_annotations = ns_ann,
                             .note = note,
                             .resolved_probes = o->resolved_probes,
                             .ns_lookup = kc ? clusterconf_ns_lookup : NULL,
                             .lookup_ctx = &lookup};
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc) {
        char where[320];
        snprintf(where, sizeof where, "%s: document %zu", name, i + 1);
        json_t *done = inject ? workload_inject(&w, doc, where, err, sizeof err)
                              : workload_uninject(&w, doc, where, err, sizeof err);
        if (!done) {
            fprintf(stderr, "weftctl: %s\n", err);
            rc = 1;
            goto out;
        }
        json_array_append_new(outs, done); /* steals done */
    }
    if (looks_json(in.data ? in.data : "", in.len)) {
        json_array_foreach(outs, i, doc) {
            char *text = json_dumps(doc, JSON_INDENT(2) | JSON_ENCODE_ANY);
            int bad = buf_appendf(&out, "%s\n", text) < 0;
            free(text);
            if (bad) {
                fprintf(stderr, "weftctl: the output would be larger than 16 MiB\n");
                goto out;
            }
        }
    } else if (yamlout_write(outs, &out, err, sizeof err) < 0) {
        fprintf(stderr, "weftctl: %s\n", err);
        goto out;
    }
    if (out.len && fwrite(out.data, 1, out.len, stdout) != out.len) {
        fprintf(stderr, "weftctl: stdout: %s\n", strerror(errno));
        goto out;
    }
    rc = fflush(stdout) == 0 ? 0 : 2;
out:
    buf_free(&in);
    buf_free(&out);
    json_decref(docs);
    json_decref(outs);
    json_decref(ns_ann);
    if (have_conf)
        conf_free(&conf);
    json_decref(lookup.cache);
    if (kc) {
        kubeclient_free(kc);
        kube_target_free(&t);
    }
    return rc;
}

static int cmd_inject(const char *cmd, int argc, char **argv)
{
    enum { F_CONFIG = 256, F_TEMPLATES, F_NS_ANN, F_RESOLVED, F_FROM_CLUSTER };
    static const struct option inject_flags[] = {
        CLUSTER_LONG_OPTIONS,
        {"from-cluster", no_argument, NULL, F_FROM_CLUSTER},
        {"filename", required_argument, NULL, 'f'},
        {"config", required_argument, NULL, F_CONFIG},
        {"templates", required_argument, NULL, F_TEMPLATES},
        {"namespace-annotations", required_argument, NULL, F_NS_ANN},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const struct option uninject_flags[] = {
        {"filename", required_argument, NULL, 'f'},
        {"resolved-probes", no_argument, NULL, F_RESOLVED},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct options o = {.config = "templates/mesh.yaml", .templates = "templates"};
    int in = strcmp(cmd, "inject") == 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, in ? ":f:n:h" : ":f:h", in ? inject_flags : uninject_flags, NULL)) != -1) {
        if (in && cluster_flag(c, optarg, &o.ko)) {
            if (c == 'n') {
                fprintf(stderr, "weftctl inject: -n has no meaning here: an object's namespace is its own "
                                "metadata.namespace (default \"default\")\n");
                return 2;
            }
            continue;
        }
        switch (c) {
        case 'f': o.file = optarg; break;
        case F_FROM_CLUSTER: o.from_cluster = 1; break;
        case F_CONFIG: o.config = optarg; o.config_given = 1; break;
        case F_TEMPLATES: o.templates = optarg; o.config_given = 1; break;
        case F_NS_ANN: o.ns_annotations = optarg; break;
        case F_RESOLVED: o.resolved_probes = 1; break;
        case 'h': usage_inject(stdout, cmd); return 0;
        case ':':
            fprintf(stderr, "weftctl %s: %s needs a value\n", cmd, argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "weftctl %s: unknown flag \"%s\" (weftctl %s --help)\n", cmd, argv[optind - 1], cmd);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weftctl %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
        return 2;
    }
    if (!o.file) {
        fprintf(stderr, "weftctl %s: -f FILE (or -f - for stdin) is required\n", cmd);
        return 2;
    }
    if (o.from_cluster && (o.config_given || o.ns_annotations)) {
        fprintf(stderr, "weftctl inject: --from-cluster reads the configuration and namespace annotations from "
                        "the cluster: --config, --templates and --namespace-annotations exclude it\n");
        return 2;
    }
    if (!o.from_cluster && (o.ko.kubeconfig || o.ko.context)) {
        fprintf(stderr, "weftctl inject: --kubeconfig and --context need --from-cluster\n");
        return 2;
    }
    return run(cmd, &o);
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;
    if (!cmd) {
        usage_main(stderr);
        return 2;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage_main(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("weftctl %s\n", WEFT_VERSION);
        return 0;
    }
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {
        {"version", cmd_version},
        {"kubeconfig", cmd_kubeconfig},
        {"check", cmd_check},
        {"install", cmd_install},
        {"authz", cmd_authz},
        {"completion", cmd_completion},
        {"stat", cmd_stat},
    };
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    if (strcmp(cmd, "inject") == 0 || strcmp(cmd, "uninject") == 0)
        return cmd_inject(cmd, argc - 1, argv + 1);
    fprintf(stderr, "weftctl: unknown command \"%s\" (weftctl --help)\n", cmd);
    return 2;
}
